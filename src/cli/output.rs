//! Reading roster files for commands, with the upload size limit.

use std::io::Read;
use std::path::Path;

/// Reads FILE (or stdin for `-`) without taking in more than `limit` bytes.
pub fn read_limited(path: &Path, limit: usize) -> anyhow::Result<Vec<u8>> {
    let mut reader: Box<dyn Read> = if path.as_os_str() == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(
            std::fs::File::open(path)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?,
        )
    };
    let mut bytes = Vec::new();
    reader
        .by_ref()
        .take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    if bytes.len() > limit {
        anyhow::bail!(
            "{} is larger than {} bytes (invites.upload_limit_bytes); split the list",
            path.display(),
            limit
        );
    }
    Ok(bytes)
}

/// Pads or cuts `s` to `width` characters, its control characters shown
/// as escapes (a roster's cell could otherwise drive the terminal).
pub fn cell(s: &str, width: usize) -> String {
    let s = crate::domain::preview::visible(s);
    let n = s.chars().count();
    if n > width {
        let mut out: String = s.chars().take(width.saturating_sub(1)).collect();
        out.push('…');
        out
    } else {
        format!("{s}{}", " ".repeat(width - n))
    }
}

/// Why nothing was sent: the flagged rows, and what to do.
pub fn flagged_refusal(flagged: usize, clean: usize) -> String {
    let (rows, them) = match flagged {
        1 => ("1 row is".to_string(), "it"),
        n => (format!("{n} rows are"), "them"),
    };
    format!(
        "Nothing was sent: {rows} flagged. Fix {them}, or pass --only-clean to send the {clean} clean rows."
    )
}

/// A time as people read it in a line of output: to the minute, in UTC.
pub fn minute_utc(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!("{} {:02}:{:02} UTC", t.date(), t.hour(), t.minute())
}
