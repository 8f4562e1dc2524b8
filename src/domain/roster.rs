//! Rosters (R2, R3): the rows an admin hands in for bulk invites or bulk
//! creation, read from a pasted list, a CSV file or API items.

use super::table::{ColumnSpec, Record, TableError, TableSpec};

/// How the admin handed the list in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RosterFormat {
    /// One recipient email per line (R2).
    Lines,
    /// CSV with an optional header (R3).
    Csv,
}

pub static INVITE_COLUMNS: TableSpec = TableSpec {
    columns: &[
        ColumnSpec {
            name: "recipient_email",
            aliases: &[
                "email",
                "e_mail",
                "email_address",
                "recipient",
                "address",
                "mail",
            ],
        },
        ColumnSpec {
            name: "storage_allocation_mb",
            aliases: &[
                "allocation_mb",
                "storage_mb",
                "allocation",
                "storage",
                "quota_mb",
                "quota",
            ],
        },
        ColumnSpec {
            name: "local_part",
            aliases: &["mailbox", "username", "user"],
        },
        ColumnSpec {
            name: "display_name",
            aliases: &["name", "full_name"],
        },
        ColumnSpec {
            name: "locale",
            aliases: &["language", "lang"],
        },
    ],
};

pub static CREATION_COLUMNS: TableSpec = TableSpec {
    columns: &[
        ColumnSpec {
            name: "local_part",
            aliases: &["mailbox", "username", "user"],
        },
        ColumnSpec {
            name: "password",
            aliases: &["pass"],
        },
        ColumnSpec {
            name: "storage_allocation_mb",
            aliases: &[
                "allocation_mb",
                "storage_mb",
                "allocation",
                "storage",
                "quota_mb",
                "quota",
            ],
        },
        ColumnSpec {
            name: "display_name",
            aliases: &["name", "full_name"],
        },
    ],
};

/// One row of a bulk-invite roster, as handed in (values not yet checked).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InviteRow {
    /// The file's own line, when the row came from a file or a pasted list.
    pub line: Option<usize>,
    pub recipient_email: String,
    pub storage_allocation_mb: Option<String>,
    pub local_part: Option<String>,
    pub display_name: Option<String>,
    pub locale: Option<String>,
    /// A problem with the row's shape found while reading it.
    pub problem: Option<String>,
}

impl InviteRow {
    /// A row with only the recipient filled in (the rest take the defaults).
    pub fn to(recipient_email: impl Into<String>) -> Self {
        Self {
            recipient_email: recipient_email.into(),
            ..Self::default()
        }
    }
}

/// One row of a bulk-creation roster (R13).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreationRow {
    pub line: Option<usize>,
    pub local_part: String,
    /// A password, or `None`/"generate" for a generated one.
    pub password: Option<String>,
    pub storage_allocation_mb: Option<String>,
    pub display_name: Option<String>,
    pub problem: Option<String>,
}

/// A display name as a person meant it: a line break inside a quoted CSV
/// field (Excel's Alt+Enter) becomes one space, so the name stays one line
/// and no header can be made of it.
fn fold_lines(name: Option<String>) -> Option<String> {
    name.map(|n| {
        n.split(['\r', '\n'])
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    })
    .filter(|n| !n.is_empty())
}

fn read(
    spec: &TableSpec,
    bytes: &[u8],
    format: RosterFormat,
    max_rows: usize,
) -> Result<Vec<Record>, TableError> {
    let text = super::table::decode(bytes)?;
    match format {
        RosterFormat::Lines => spec.parse_lines(&text, max_rows),
        RosterFormat::Csv => spec.parse_csv(&text, max_rows),
    }
}

pub fn parse_invite_roster(
    bytes: &[u8],
    format: RosterFormat,
    max_rows: usize,
) -> Result<Vec<InviteRow>, TableError> {
    Ok(read(&INVITE_COLUMNS, bytes, format, max_rows)?
        .into_iter()
        .map(|r| {
            let [email, allocation, local_part, display_name, locale]: [Option<String>; 5] =
                r.values.try_into().unwrap_or_default();
            InviteRow {
                line: Some(r.line),
                recipient_email: email.unwrap_or_default(),
                storage_allocation_mb: allocation,
                local_part,
                display_name: fold_lines(display_name),
                locale,
                problem: r.problem,
            }
        })
        .collect())
}

pub fn parse_creation_roster(
    bytes: &[u8],
    max_rows: usize,
) -> Result<Vec<CreationRow>, TableError> {
    Ok(read(&CREATION_COLUMNS, bytes, RosterFormat::Csv, max_rows)?
        .into_iter()
        .map(|r| {
            let [local_part, password, allocation, display_name]: [Option<String>; 4] =
                r.values.try_into().unwrap_or_default();
            CreationRow {
                line: Some(r.line),
                local_part: local_part.unwrap_or_default(),
                password,
                storage_allocation_mb: allocation,
                display_name: fold_lines(display_name),
                problem: r.problem,
            }
        })
        .collect())
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocationError {
    #[error("the allocation {0:?} is not a size; write MB (500), 500MB or 2GB")]
    NotNumber(String),
    #[error("the allocation {0:?} is negative; use a positive number of MB")]
    Negative(String),
    #[error("the allocation is 0; leave it empty to use the shared pool")]
    Zero,
    #[error("the allocation {0:?} is not a whole number; use whole MB")]
    Fractional(String),
    #[error("the allocation {0:?} is too large")]
    TooLarge(String),
}

/// The largest dedicated allocation accepted: 1 PiB, far above any pool,
/// so sums of 500 rows never overflow.
pub const MAX_ALLOCATION_MB: u64 = 1 << 30;

/// Parses an allocation in MB: a positive whole number, with or without
/// MB, or GB (R4).
pub fn parse_allocation(raw: &str) -> Result<u64, AllocationError> {
    let s = raw.trim();
    // Gigabytes, as people write sizes: 2GB, 1.5GB (1 GB = 1024 MB).
    if let Some(gb) = s
        .strip_suffix("GB")
        .or_else(|| s.strip_suffix("gb"))
        .map(str::trim)
        .filter(|g| !g.is_empty() && g.bytes().all(|b| b.is_ascii_digit() || b == b'.'))
    {
        let mb = gb
            .parse::<f64>()
            .map_err(|_| AllocationError::NotNumber(raw.to_string()))?
            * 1024.0;
        if mb.fract() != 0.0 {
            return Err(AllocationError::Fractional(raw.to_string()));
        }
        return match mb as u64 {
            0 => Err(AllocationError::Zero),
            n if n <= MAX_ALLOCATION_MB => Ok(n),
            _ => Err(AllocationError::TooLarge(raw.to_string())),
        };
    }
    let s = s
        .strip_suffix("MB")
        .or_else(|| s.strip_suffix("mb"))
        .unwrap_or(s)
        .trim();
    if s.starts_with('-') {
        return Err(AllocationError::Negative(raw.to_string()));
    }
    let digits = s.strip_prefix('+').unwrap_or(s);
    if digits.contains(['.', ','])
        && digits
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.' || c == ',')
    {
        return Err(AllocationError::Fractional(raw.to_string()));
    }
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AllocationError::NotNumber(raw.to_string()));
    }
    match digits.parse::<u64>() {
        Ok(0) => Err(AllocationError::Zero),
        Ok(n) if n <= MAX_ALLOCATION_MB => Ok(n),
        _ => Err(AllocationError::TooLarge(raw.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn csv(s: &str) -> Result<Vec<InviteRow>, TableError> {
        parse_invite_roster(s.as_bytes(), RosterFormat::Csv, 500)
    }

    #[test]
    fn pasted_list_skips_blank_lines_and_spaces() {
        let rows = parse_invite_roster(
            b"  a@example.org \n\n\t\nb@example.org\r\n",
            RosterFormat::Lines,
            500,
        )
        .unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].recipient_email, "a@example.org");
        assert_eq!(rows[1].line, Some(4));
    }

    #[test]
    fn five_hundred_rows_pass_and_501_are_refused() {
        let list = |n: usize| {
            (0..n)
                .map(|i| format!("u{i}@example.org\n"))
                .collect::<String>()
        };
        assert_eq!(
            parse_invite_roster(list(500).as_bytes(), RosterFormat::Lines, 500)
                .unwrap()
                .len(),
            500
        );
        assert_eq!(
            parse_invite_roster(list(501).as_bytes(), RosterFormat::Lines, 500),
            Err(TableError::TooManyRows {
                rows: 501,
                limit: 500
            })
        );
        assert_eq!(
            csv(&format!("email\n{}", list(501))),
            Err(TableError::TooManyRows {
                rows: 501,
                limit: 500
            })
        );
    }

    #[test]
    fn header_in_any_order_with_optional_columns() {
        let rows =
            csv("locale,Storage MB,Email,local_part,display_name\nde,2048,Jane@x.org,jd,\"Doe, Jane\"\n")
                .unwrap();
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!(r.line, Some(2));
        assert_eq!(r.recipient_email, "Jane@x.org");
        assert_eq!(r.storage_allocation_mb.as_deref(), Some("2048"));
        assert_eq!(r.local_part.as_deref(), Some("jd"));
        assert_eq!(r.display_name.as_deref(), Some("Doe, Jane"));
        assert_eq!(r.locale.as_deref(), Some("de"));
    }

    #[test]
    fn no_header_reads_email_then_allocation() {
        let rows = csv("a@x.org,100\nb@x.org\n").unwrap();
        assert_eq!(rows[0].storage_allocation_mb.as_deref(), Some("100"));
        assert_eq!(rows[1].storage_allocation_mb, None);
    }

    #[test]
    fn quoted_fields_with_commas_and_newlines_keep_their_line() {
        let rows = csv("email,display_name\n\"a@x.org\",\"Doe,\nJane\"\nb@x.org,Bob\n").unwrap();
        // The line break inside the name (Alt+Enter in Excel) folds into a space.
        assert_eq!(rows[0].display_name.as_deref(), Some("Doe, Jane"));
        assert_eq!(rows[0].line, Some(2));
        assert_eq!(rows[1].line, Some(4));
    }

    #[test]
    fn a_pasted_column_with_tabs_and_odd_spaces_stays_one_column() {
        // Copied from a spreadsheet: tabs, a no-break space, a zero-width space.
        let text =
            "\tdave@example.net\t\n\u{a0}erin@example.net\u{200b}\n  \t\nfrank@example.net \t\n";
        for format in [RosterFormat::Csv, RosterFormat::Lines] {
            let rows = parse_invite_roster(text.as_bytes(), format, 500).unwrap();
            let emails: Vec<&str> = rows.iter().map(|r| r.recipient_email.as_str()).collect();
            assert_eq!(
                emails,
                ["dave@example.net", "erin@example.net", "frank@example.net"],
                "{format:?}"
            );
            assert!(
                rows.iter()
                    .all(|r| r.storage_allocation_mb.is_none() && r.problem.is_none())
            );
            assert_eq!(rows[2].line, Some(4));
        }
        // A real tab-separated file still splits.
        let rows = csv("dave@example.net\t100\n").unwrap();
        assert_eq!(rows[0].storage_allocation_mb.as_deref(), Some("100"));
    }

    #[test]
    fn semicolon_and_tab_delimiters_are_sniffed() {
        let rows = csv("email;allocation\na@x.org;5\n").unwrap();
        assert_eq!(rows[0].storage_allocation_mb.as_deref(), Some("5"));
        let rows = csv("email\tdisplay_name\na@x.org\tSmith, Ann\n").unwrap();
        assert_eq!(rows[0].display_name.as_deref(), Some("Smith, Ann"));
    }

    #[test]
    fn byte_order_marks_and_utf16() {
        let mut utf8 = vec![0xEF, 0xBB, 0xBF];
        utf8.extend_from_slice(b"email\r\na@x.org\r\n");
        assert_eq!(
            parse_invite_roster(&utf8, RosterFormat::Csv, 500).unwrap()[0].recipient_email,
            "a@x.org"
        );
        for le in [true, false] {
            let mut bytes = if le {
                vec![0xFF, 0xFE]
            } else {
                vec![0xFE, 0xFF]
            };
            for u in "email,quota\r\nzoë@x.org,7\r\n".encode_utf16() {
                bytes.extend_from_slice(&if le { u.to_le_bytes() } else { u.to_be_bytes() });
            }
            let rows = parse_invite_roster(&bytes, RosterFormat::Csv, 500).unwrap();
            assert_eq!(rows[0].recipient_email, "zoë@x.org");
            assert_eq!(rows[0].storage_allocation_mb.as_deref(), Some("7"));
        }
        assert_eq!(
            parse_invite_roster(&[0xFF, 0xFE, 0x41], RosterFormat::Csv, 500),
            Err(TableError::TruncatedUtf16)
        );
    }

    #[test]
    fn invalid_utf8_names_its_line() {
        assert_eq!(
            parse_invite_roster(b"a@x.org\nb\xff@x.org\n", RosterFormat::Csv, 500),
            Err(TableError::Encoding { line: 2 })
        );
    }

    #[test]
    fn empty_and_header_only_files() {
        assert_eq!(csv(""), Err(TableError::Empty));
        assert_eq!(csv("\n \n"), Err(TableError::Empty));
        assert_eq!(
            csv("email,allocation\n\n"),
            Err(TableError::HeaderOnly { line: 1 })
        );
    }

    #[test]
    fn unknown_header_names_line_and_column() {
        let err = csv("email,shoe_size\na@x.org,9\n").unwrap_err();
        assert!(matches!(
            err,
            TableError::UnknownColumn {
                line: 1,
                column: 2,
                ..
            }
        ));
        assert!(err.to_string().contains("shoe_size"));
        assert!(matches!(
            csv("display_name\nJane\n"),
            Err(TableError::MissingColumn { line: 1, .. })
        ));
    }

    #[test]
    fn extra_fields_are_a_row_problem() {
        let rows = csv("a@x.org,1,a,b,c,d\n").unwrap();
        assert!(rows[0].problem.as_deref().unwrap().contains("6 fields"));
    }

    #[test]
    fn allocations() {
        assert_eq!(parse_allocation("2048"), Ok(2048));
        assert_eq!(parse_allocation(" 20 MB"), Ok(20));
        assert_eq!(parse_allocation("2GB"), Ok(2048));
        assert_eq!(parse_allocation("1.5 gb"), Ok(1536));
        assert!(matches!(
            parse_allocation("0.0001GB"),
            Err(AllocationError::Fractional(_))
        ));
        assert_eq!(parse_allocation("0GB"), Err(AllocationError::Zero));
        assert!(matches!(
            parse_allocation("lots"),
            Err(AllocationError::NotNumber(_))
        ));
        assert!(matches!(
            parse_allocation("-5"),
            Err(AllocationError::Negative(_))
        ));
        assert_eq!(parse_allocation("0"), Err(AllocationError::Zero));
        assert!(matches!(
            parse_allocation("1.5"),
            Err(AllocationError::Fractional(_))
        ));
        assert!(matches!(
            parse_allocation("99999999999999999999999"),
            Err(AllocationError::TooLarge(_))
        ));
        assert!(matches!(
            parse_allocation(&(MAX_ALLOCATION_MB + 1).to_string()),
            Err(AllocationError::TooLarge(_))
        ));
    }

    #[test]
    fn creation_roster() {
        let rows = parse_creation_roster(
            b"local_part,password,quota\njane,generate,100\nbob,,\n",
            500,
        )
        .unwrap();
        assert_eq!(rows[0].password.as_deref(), Some("generate"));
        assert_eq!(rows[1].password, None);
    }

    /// A line is blank when it holds nothing but spaces and delimiters.
    fn is_blank(line: &str) -> bool {
        line.chars().all(|c| c.is_whitespace() || c == ',')
    }

    proptest! {
        #[test]
        fn never_panics_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = parse_invite_roster(&bytes, RosterFormat::Csv, 500);
            let _ = parse_invite_roster(&bytes, RosterFormat::Lines, 500);
            let _ = parse_creation_roster(&bytes, 500);
        }

        #[test]
        fn every_non_blank_line_yields_a_row_or_names_its_line(
            lines in proptest::collection::vec("[a-z@. ,0-9]{0,30}", 1..40),
            crlf in any::<bool>(),
        ) {
            let text = lines.join(if crlf { "\r\n" } else { "\n" });
            match parse_invite_roster(text.as_bytes(), RosterFormat::Csv, 500) {
                Ok(rows) => {
                    let got: Vec<usize> = rows.iter().filter_map(|r| r.line).collect();
                    let mut want: Vec<usize> = lines.iter().enumerate()
                        .filter(|(_, l)| !is_blank(l)).map(|(i, _)| i + 1).collect();
                    // A first line that reads as a header is not a row.
                    if got.first() != want.first() && !want.is_empty() {
                        want.remove(0);
                    }
                    prop_assert_eq!(got, want);
                }
                Err(e) => {
                    if let Some(line) = e.line() {
                        prop_assert!(line >= 1 && line <= lines.len());
                        prop_assert!(!is_blank(&lines[line - 1]));
                    } else {
                        prop_assert!(matches!(e, TableError::Empty));
                        prop_assert!(lines.iter().all(|l| is_blank(l)));
                    }
                }
            }
            let pasted = parse_invite_roster(text.as_bytes(), RosterFormat::Lines, 500);
            if let Ok(rows) = pasted {
                let non_blank = lines.iter().filter(|l| !l.trim().is_empty()).count();
                prop_assert_eq!(rows.len(), non_blank);
            }
        }
    }
}
