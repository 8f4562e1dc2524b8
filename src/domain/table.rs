//! Reading a roster file into records: encoding, delimiter, header and
//! quoting. Column meaning is left to the caller's [`TableSpec`]; every
//! record keeps the line of the file it starts on, so errors can name it.

/// One column a table may carry, with the header names that mean it.
#[derive(Debug)]
pub struct ColumnSpec {
    pub name: &'static str,
    pub aliases: &'static [&'static str],
}

/// The columns of one kind of roster, and their order when no header is given.
#[derive(Debug)]
pub struct TableSpec {
    pub columns: &'static [ColumnSpec],
}

/// One data row: the 1-based line it starts on and the value of each
/// column of the spec (by index), trimmed, `None` when absent or empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub line: usize,
    pub values: Vec<Option<String>>,
    /// A problem with the row's shape (too many fields), reported per row.
    pub problem: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    #[error(
        "line {line}: the file is not valid UTF-8; save it as UTF-8 (or UTF-16 with a byte order mark)"
    )]
    Encoding { line: usize },
    #[error("the file is UTF-16 but has an odd number of bytes; it looks truncated")]
    TruncatedUtf16,
    #[error("the list is empty: add one row per recipient")]
    Empty,
    #[error("the file has a header row (line {line}) but no rows under it")]
    HeaderOnly { line: usize },
    #[error(
        "line {line}, column {column}: the header {found:?} is not a known column; known columns: {known}"
    )]
    UnknownColumn {
        line: usize,
        column: usize,
        found: String,
        known: String,
    },
    #[error("line {line}: the header names the column {name:?} twice")]
    DuplicateColumn { line: usize, name: String },
    #[error("line {line}: the header has no {name} column")]
    MissingColumn { line: usize, name: &'static str },
    #[error("line {line}: {message}")]
    Syntax { line: usize, message: String },
    #[error(
        "the list has {rows} rows; one batch holds at most {limit}: split it into several batches"
    )]
    TooManyRows { rows: usize, limit: usize },
}

impl TableError {
    /// The stable machine code for this error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Encoding { .. } | Self::TruncatedUtf16 => "bad_encoding",
            Self::Empty => "empty",
            Self::HeaderOnly { .. } => "header_only",
            Self::UnknownColumn { .. } => "unknown_column",
            Self::DuplicateColumn { .. } => "duplicate_column",
            Self::MissingColumn { .. } => "missing_column",
            Self::Syntax { .. } => "syntax",
            Self::TooManyRows { .. } => "too_many_rows",
        }
    }

    pub fn line(&self) -> Option<usize> {
        match self {
            Self::Encoding { line }
            | Self::HeaderOnly { line }
            | Self::UnknownColumn { line, .. }
            | Self::DuplicateColumn { line, .. }
            | Self::MissingColumn { line, .. }
            | Self::Syntax { line, .. } => Some(*line),
            _ => None,
        }
    }
}

/// Turns uploaded bytes into text: UTF-8 with or without BOM, or UTF-16
/// (either byte order) with a BOM.
pub fn decode(bytes: &[u8]) -> Result<String, TableError> {
    if let Some(rest) = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]) {
        return utf8(rest);
    }
    let utf16 = |rest: &[u8], from: fn([u8; 2]) -> u16| -> Result<String, TableError> {
        if !rest.len().is_multiple_of(2) {
            return Err(TableError::TruncatedUtf16);
        }
        let units = rest.chunks_exact(2).map(|c| from([c[0], c[1]]));
        let mut text = String::with_capacity(rest.len() / 2);
        let mut line = 1;
        for ch in char::decode_utf16(units) {
            match ch {
                Ok(c) => {
                    if c == '\n' {
                        line += 1;
                    }
                    text.push(c);
                }
                Err(_) => return Err(TableError::Encoding { line }),
            }
        }
        Ok(text)
    };
    if let Some(rest) = bytes.strip_prefix(&[0xFF, 0xFE]) {
        return utf16(rest, u16::from_le_bytes);
    }
    if let Some(rest) = bytes.strip_prefix(&[0xFE, 0xFF]) {
        return utf16(rest, u16::from_be_bytes);
    }
    utf8(bytes)
}

fn utf8(bytes: &[u8]) -> Result<String, TableError> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(s.to_string()),
        Err(e) => {
            let line = 1 + bytes[..e.valid_up_to()]
                .iter()
                .filter(|b| **b == b'\n')
                .count();
            Err(TableError::Encoding { line })
        }
    }
}

/// Whitespace of any kind, and the invisible characters a copy from a
/// spreadsheet or a web page leaves around a value.
pub fn is_blank_char(c: char) -> bool {
    c.is_whitespace() || matches!(c, '\u{200B}' | '\u{2060}' | '\u{FEFF}')
}

/// A value without surrounding whitespace of any kind (R2).
pub fn trim_blank(s: &str) -> &str {
    s.trim_matches(is_blank_char)
}

/// Picks `,` `;` or tab: the one found outside quotes on the most of the
/// first lines. `None` when no line has any (a one-column list). Tabs or
/// spaces around a line's value are not delimiters: a column copied from a
/// spreadsheet often carries them.
fn sniff_delimiter(text: &str) -> Option<u8> {
    let mut votes = [(b'\t', 0usize), (b';', 0), (b',', 0)];
    for line in text
        .lines()
        .map(trim_blank)
        .filter(|l| !l.is_empty())
        .take(20)
    {
        let mut in_quotes = false;
        let mut seen = [false; 3];
        for b in line.bytes() {
            if b == b'"' {
                in_quotes = !in_quotes;
            } else if !in_quotes {
                for (i, (d, _)) in votes.iter().enumerate() {
                    if b == *d {
                        seen[i] = true;
                    }
                }
            }
        }
        for (i, s) in seen.iter().enumerate() {
            if *s {
                votes[i].1 += 1;
            }
        }
    }
    // Ties go to the earlier entry: tab, then semicolon, then comma, since
    // a semicolon or tab file often carries commas inside names.
    let (delim, count) = votes
        .iter()
        .copied()
        .fold((0u8, 0usize), |best, v| if v.1 > best.1 { v } else { best });
    (count > 0).then_some(delim)
}

fn normalise_header(s: &str) -> String {
    s.trim()
        .to_lowercase()
        .chars()
        .map(|c| if c == ' ' || c == '-' { '_' } else { c })
        .collect()
}

impl TableSpec {
    fn column_for(&self, header: &str) -> Option<usize> {
        let h = normalise_header(header);
        self.columns
            .iter()
            .position(|c| c.name == h || c.aliases.contains(&h.as_str()))
    }

    fn known(&self) -> String {
        self.columns
            .iter()
            .map(|c| c.name)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Reads CSV text. The first column of the spec is required. A first
    /// record counts as a header when none of its fields holds an `@` and
    /// at least one names a known column.
    pub fn parse_csv(&self, text: &str, max_rows: usize) -> Result<Vec<Record>, TableError> {
        let delimiter = sniff_delimiter(text).unwrap_or(b',');
        // The csv crate's own line count skips leading blank lines; count
        // from byte offsets instead so errors name the file's real line.
        let newlines: Vec<usize> = text
            .bytes()
            .enumerate()
            .filter(|(_, b)| *b == b'\n')
            .map(|(i, _)| i)
            .collect();
        // A record's position can point at blank lines the reader skipped
        // before it: step over line breaks to the record's first byte.
        let line_at = |byte: u64| {
            let start = byte as usize
                + text.as_bytes()[(byte as usize).min(text.len())..]
                    .iter()
                    .take_while(|b| **b == b'\n' || **b == b'\r')
                    .count();
            1 + newlines.partition_point(|&nl| nl < start)
        };
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .trim(csv::Trim::All)
            .delimiter(delimiter)
            .from_reader(text.as_bytes());
        let mut mapping: Option<Vec<usize>> = None;
        let mut header_line = None;
        let mut records = Vec::new();
        let mut raw = csv::StringRecord::new();
        loop {
            let more = reader
                .read_record(&mut raw)
                .map_err(|e| TableError::Syntax {
                    line: e.position().map(|p| line_at(p.byte())).unwrap_or(0),
                    message: csv_message(&e),
                })?;
            if !more {
                break;
            }
            let line = raw.position().map(|p| line_at(p.byte())).unwrap_or(0);
            if raw.iter().all(|f| trim_blank(f).is_empty()) {
                continue;
            }
            if mapping.is_none() && header_line.is_none() && records.is_empty() {
                let looks_like_header = !raw.iter().any(|f| f.contains('@'))
                    && raw.iter().any(|f| self.column_for(f).is_some());
                if looks_like_header {
                    mapping = Some(self.header_mapping(&raw, line)?);
                    header_line = Some(line);
                    continue;
                }
            }
            records.push(self.record(&raw, line, mapping.as_deref()));
        }
        if records.is_empty() {
            return Err(match header_line {
                Some(line) => TableError::HeaderOnly { line },
                None => TableError::Empty,
            });
        }
        if records.len() > max_rows {
            return Err(TableError::TooManyRows {
                rows: records.len(),
                limit: max_rows,
            });
        }
        Ok(records)
    }

    /// Reads a pasted list: one value of the first column per line.
    pub fn parse_lines(&self, text: &str, max_rows: usize) -> Result<Vec<Record>, TableError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let records: Vec<Record> = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !trim_blank(l).is_empty())
            .map(|(i, l)| {
                let mut values = vec![None; self.columns.len()];
                values[0] = Some(trim_blank(l).to_string());
                Record {
                    line: i + 1,
                    values,
                    problem: None,
                }
            })
            .collect();
        if records.is_empty() {
            return Err(TableError::Empty);
        }
        if records.len() > max_rows {
            return Err(TableError::TooManyRows {
                rows: records.len(),
                limit: max_rows,
            });
        }
        Ok(records)
    }

    fn header_mapping(
        &self,
        raw: &csv::StringRecord,
        line: usize,
    ) -> Result<Vec<usize>, TableError> {
        let mut mapping = Vec::with_capacity(raw.len());
        for (i, field) in raw.iter().enumerate() {
            let Some(col) = self.column_for(field) else {
                return Err(TableError::UnknownColumn {
                    line,
                    column: i + 1,
                    found: field.to_string(),
                    known: self.known(),
                });
            };
            if mapping.contains(&col) {
                return Err(TableError::DuplicateColumn {
                    line,
                    name: self.columns[col].name.to_string(),
                });
            }
            mapping.push(col);
        }
        if !mapping.contains(&0) {
            return Err(TableError::MissingColumn {
                line,
                name: self.columns[0].name,
            });
        }
        Ok(mapping)
    }

    fn record(&self, raw: &csv::StringRecord, line: usize, mapping: Option<&[usize]>) -> Record {
        let mut values = vec![None; self.columns.len()];
        let mut problem = None;
        for (i, field) in raw.iter().enumerate() {
            let field = trim_blank(field);
            let col = match mapping {
                Some(m) => m.get(i).copied(),
                None => (i < self.columns.len()).then_some(i),
            };
            match col {
                Some(c) => values[c] = (!field.is_empty()).then(|| field.to_string()),
                None if field.is_empty() => {}
                None => {
                    problem = Some(match mapping {
                        Some(m) => format!(
                            "the row has {} fields but the header names {}",
                            raw.len(),
                            m.len()
                        ),
                        None => format!(
                            "the row has {} fields; without a header row the columns are read as {}",
                            raw.len(),
                            self.known()
                        ),
                    });
                }
            }
        }
        Record {
            line,
            values,
            problem,
        }
    }
}

fn csv_message(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::Utf8 { .. } => "the file is not valid UTF-8".to_string(),
        _ => "the row could not be read as CSV; check its quotes".to_string(),
    }
}
