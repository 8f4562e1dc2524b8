//! `muster preview --domain D FILE`: the preview as a table or JSON.

use std::path::PathBuf;

use clap::Args;

use super::output::{cell, read_limited};
use super::{EXIT_PROBLEMS, EXIT_UNUSABLE, muster_for_reading};
use crate::config::Config;
use crate::domain::preview::InvitePreview;
use crate::domain::roster::RosterFormat;
use crate::service::{RosterInput, RowLimit, ServiceError};

#[derive(Args, Debug)]
pub struct PreviewArgs {
    /// The hosted domain for the new mailboxes (may be left out when only one is hosted).
    #[arg(long)]
    domain: Option<String>,
    /// Read FILE as a pasted list (one email per line) instead of CSV.
    #[arg(long)]
    lines: bool,
    /// Print the preview as JSON.
    #[arg(long)]
    json: bool,
    /// The roster: CSV or a list of emails; `-` reads standard input.
    file: PathBuf,
}

pub fn run(config: Config, args: PreviewArgs) -> anyhow::Result<u8> {
    let bytes = read_limited(&args.file, config.invites.upload_limit_bytes)?;
    let format = if args.lines {
        RosterFormat::Lines
    } else {
        RosterFormat::Csv
    };
    let muster = muster_for_reading(config)?;
    let rows = match muster.roster(RosterInput::Upload { bytes, format }, RowLimit::Batch) {
        Ok(rows) => rows,
        Err(ServiceError::Roster(e)) => {
            eprintln!("error: {}: {e}", args.file.display());
            return Ok(EXIT_UNUSABLE);
        }
        Err(e) => return Err(e.into()),
    };
    let (_, preview) = muster.preview(args.domain.as_deref(), &rows, RowLimit::Batch)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&preview)?);
    } else {
        print!("{}", render(&preview));
    }
    Ok(if preview.flagged_rows > 0 {
        EXIT_PROBLEMS
    } else {
        0
    })
}

/// The preview as a plain-text table, one row per line plus its problems.
pub fn render(p: &InvitePreview) -> String {
    let c = &p.capacity;
    let mut out = format!(
        "Preview for {}: {} rows, {} clean, {} flagged\n\n",
        c.domain,
        p.rows.len(),
        p.clean_rows,
        p.flagged_rows
    );
    out.push_str(&format!(
        "{} {} {} {} {}\n",
        cell("LINE", 5),
        cell("RECIPIENT", 32),
        cell("MAILBOX", 32),
        cell("MB", 8),
        "PROBLEMS"
    ));
    for r in &p.rows {
        let line = r
            .line
            .map(|l| l.to_string())
            .unwrap_or_else(|| (r.index + 1).to_string());
        let problems = if r.flags.is_empty() {
            "-".to_string()
        } else {
            r.flags
                .iter()
                .map(|f| format!("{}: {}", f.code.as_str(), f.message))
                .collect::<Vec<_>>()
                .join("; ")
        };
        out.push_str(&format!(
            "{} {} {} {} {}\n",
            cell(&line, 5),
            cell(&r.recipient_email, 32),
            cell(r.mailbox.as_deref().unwrap_or("-"), 32),
            cell(
                &r.storage_allocation_mb
                    .map(|m| m.to_string())
                    .unwrap_or_else(|| "shared".into()),
                8
            ),
            problems
        ));
    }
    let host = c
        .host_limit
        .map(|n| format!(", mail server allows {n}"))
        .unwrap_or_default();
    out.push_str(&format!(
        "\nMailboxes on {}: cap {}{host}, existing {}, pending {}, this batch {}, left after {}\n",
        c.domain, c.cap, c.existing, c.pending, c.this_batch, c.left_after
    ));
    out.push_str(&format!(
        "Storage pool: {} MB, allocated {} MB, this batch {} MB, left after {} MB\n",
        c.pool_mb, c.pool_allocated_mb, c.batch_allocated_mb, c.pool_left_after_mb
    ));
    out
}
