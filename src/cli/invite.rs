//! `muster invite --domain D FILE`: creates a batch in the local store and
//! sends it, showing progress until every invite is sent or failed.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use super::output::read_limited;
use super::preview::render;
use super::{EXIT_PROBLEMS, EXIT_UNUSABLE};
use crate::config::Config;
use crate::domain::duration::HumanDuration;
use crate::domain::preview::visible;
use crate::domain::roster::RosterFormat;
use crate::service::{BatchRequest, Muster, RosterInput, RowLimit, ServiceError, SystemClock};
use crate::store::Actor;

#[derive(Args, Debug)]
pub struct InviteArgs {
    /// The hosted domain for the new mailboxes (may be left out when only one is hosted).
    #[arg(long)]
    domain: Option<String>,
    /// Link lifetime, shorter than the default if wanted (e.g. 7d, 48h; at most 30d).
    #[arg(long)]
    expires: Option<String>,
    /// When to remind recipients who have not used their link, e.g.
    /// "50%,48h" (a share of the link's life, or a time before it expires);
    /// default: invites.reminders.
    #[arg(long, value_name = "WHEN", conflicts_with = "no_reminders")]
    reminders: Option<String>,
    /// Send no reminders for this batch.
    #[arg(long)]
    no_reminders: bool,
    /// Send the clean rows and leave the flagged ones out.
    #[arg(long)]
    only_clean: bool,
    /// Read FILE as a pasted list (one email per line) instead of CSV.
    #[arg(long)]
    lines: bool,
    /// Send to a running Muster through its API instead of the local store
    /// (any number of rows, in calls of at most 100).
    #[arg(long, requires = "token")]
    api: Option<String>,
    /// API token for --api (or MUSTER_API_TOKEN).
    #[arg(long, env = "MUSTER_API_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The roster: CSV or a list of emails; `-` reads standard input.
    file: PathBuf,
}

pub async fn run(config: Config, args: InviteArgs) -> anyhow::Result<u8> {
    let expires_in = match args.expires.as_deref().map(HumanDuration::parse) {
        Some(Ok(d)) => Some(d),
        Some(Err(e)) => {
            eprintln!("error: --expires: {e}");
            return Ok(EXIT_UNUSABLE);
        }
        None => None,
    };
    let reminders = if args.no_reminders {
        Some(Vec::new())
    } else {
        args.reminders.as_deref().map(|r| {
            r.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
    };
    let format = if args.lines {
        RosterFormat::Lines
    } else {
        RosterFormat::Csv
    };
    if let (Some(url), Some(token)) = (args.api.clone(), args.token.clone()) {
        // Any length: the server takes it 100 rows at a time.
        let bytes = read_limited(&args.file, 256 * 1024 * 1024)?;
        let rows = match crate::domain::roster::parse_invite_roster(&bytes, format, usize::MAX) {
            Ok(rows) => rows,
            Err(e) => {
                eprintln!("error: {}: {e}", args.file.display());
                return Ok(EXIT_UNUSABLE);
            }
        };
        return super::api_client::run(
            super::api_client::ApiTarget { url, token },
            rows,
            super::api_client::BatchOptions {
                domain: args.domain,
                expires: args.expires,
                reminders,
            },
            args.only_clean,
            super::api_client::Sizes {
                call: config.invites.api_call_limit,
                window: config.invites.batch_limit,
            },
        )
        .await;
    }
    let bytes = read_limited(&args.file, config.invites.upload_limit_bytes)?;
    let muster = Arc::new(Muster::open(Arc::new(config), Arc::new(SystemClock))?);
    let rows = match muster.roster(RosterInput::Upload { bytes, format }, RowLimit::Batch) {
        Ok(rows) => rows,
        Err(ServiceError::Roster(e)) => {
            eprintln!("error: {}: {e}", args.file.display());
            return Ok(EXIT_UNUSABLE);
        }
        Err(e) => return Err(e.into()),
    };
    let created = match muster.create_batch(BatchRequest {
        domain: args.domain.clone(),
        rows,
        expires_in,
        reminders,
        only_clean: args.only_clean,
        actor: Actor::cli(),
        limit: RowLimit::Batch,
    }) {
        Ok(c) => c,
        Err(ServiceError::Flagged { preview, .. }) => {
            print!("{}", render(&preview));
            eprintln!(
                "\n{}",
                super::output::flagged_refusal(preview.flagged_rows, preview.clean_rows)
            );
            return Ok(EXIT_PROBLEMS);
        }
        Err(ServiceError::NothingClean { preview }) => {
            print!("{}", render(&preview));
            eprintln!("\nNothing was sent: no row is clean.");
            return Ok(EXIT_PROBLEMS);
        }
        Err(e @ ServiceError::DomainRequired(_)) => {
            eprintln!("error: {e}; name it with --domain");
            return Ok(EXIT_UNUSABLE);
        }
        Err(
            e @ (ServiceError::UnknownDomain { .. }
            | ServiceError::Expiry { .. }
            | ServiceError::Reminders(_)),
        ) => {
            eprintln!("error: {e}");
            return Ok(EXIT_UNUSABLE);
        }
        Err(e) => return Err(e.into()),
    };
    let batch_id = created.batch.id.clone();
    let total = created.invites.len() as u64;
    println!(
        "Batch {batch_id}: {total} {} for {} (links expire after {}; reminders: {}).",
        if total == 1 { "invite" } else { "invites" },
        created.batch.domain,
        HumanDuration::from_secs(created.batch.expires_in_secs),
        crate::domain::reminders::ReminderPlan::stored(&created.batch.reminders)
    );
    if created.preview.flagged_rows > 0 {
        println!(
            "{} flagged {} left out.",
            created.preview.flagged_rows,
            if created.preview.flagged_rows == 1 {
                "row was"
            } else {
                "rows were"
            }
        );
    }

    let ids: Vec<String> = created.invites.iter().map(|i| i.id.clone()).collect();
    let interrupted = send_and_wait(&muster, &ids).await?;
    let (_, invites) = muster.batch_invites(&batch_id)?;
    let failed = summarise(&invites);
    if interrupted {
        println!(
            "Stopped before every invite was sent; the rest stay queued and `muster serve` sends them."
        );
        return Ok(EXIT_PROBLEMS);
    }
    Ok(if failed == 0 { 0 } else { EXIT_PROBLEMS })
}

/// Runs the delivery worker until every invite in `ids` is sent or failed,
/// with a progress bar on a terminal and plain lines otherwise. True when
/// interrupted with Ctrl-C (the rest stay queued).
pub async fn send_and_wait(muster: &Arc<Muster>, ids: &[String]) -> anyhow::Result<bool> {
    use tokio::sync::broadcast::error::RecvError;
    let total = ids.len() as u64;
    let outbox = muster.config.writes_outbox();
    // Listening before the worker starts, so no outcome is missed; the
    // store is read once, and again only if this falls behind.
    let mut events = muster.queue.subscribe();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let worker = crate::mail::worker::spawn(muster.clone(), stop_rx)?;
    let read_all = || -> anyhow::Result<HashMap<String, &'static str>> {
        ids.iter()
            .map(|id| Ok((id.clone(), muster.get_invite(id)?.delivery_state)))
            .collect()
    };
    let mut states = read_all()?;
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let mut last_line = String::new();
    let mut last_shown = std::time::Instant::now() - Duration::from_secs(1);
    let interrupted = loop {
        let count = |s: &str| states.values().filter(|x| **x == s).count() as u64;
        // A withdrawn email (revoked while sending) is done as a failed one is.
        let (sent, failed, deferred) = (
            count("sent") + count("in_outbox"),
            count("failed") + count("withdrawn"),
            count("deferred"),
        );
        let done = sent + failed == total;
        // At most a few lines a second, and always the last one.
        if done || last_shown.elapsed() >= Duration::from_millis(200) {
            last_shown = std::time::Instant::now();
            let line = if outbox {
                format!("written to the outbox {sent} of {total}, {failed} failed")
            } else {
                format!("sent {sent} of {total}, {failed} failed, {deferred} deferred")
            };
            match &bar {
                Some(bar) => {
                    bar.set_position(sent + failed);
                    bar.set_message(format!("{failed} failed, {deferred} deferred"));
                }
                None if line != last_line => println!("{line}"),
                None => {}
            }
            last_line = line;
        }
        if done {
            break false;
        }
        tokio::select! {
            event = events.recv() => match event {
                Ok(r) => {
                    if let Some(state) = states.get_mut(&r.invite_id) {
                        *state = r.state;
                    }
                }
                Err(RecvError::Lagged(_)) => states = read_all()?,
                Err(RecvError::Closed) => break false,
            },
            // A safety net, should an outcome come some other way.
            _ = tokio::time::sleep(Duration::from_secs(5)) => states = read_all()?,
            _ = tokio::signal::ctrl_c() => break true,
        }
    };
    if let Some(bar) = &bar {
        bar.finish();
    }
    let _ = stop_tx.send(true);
    let _ = worker.await;
    Ok(interrupted)
}

/// Prints "N sent, M failed." (and how many only reached the outbox) and
/// each failure; returns the failures.
pub fn summarise(invites: &[crate::service::InviteView]) -> usize {
    let failed: Vec<_> = invites
        .iter()
        .filter(|i| i.delivery_state == "failed")
        .collect();
    let count = |state: &str| invites.iter().filter(|i| i.delivery_state == state).count();
    let (sent, outbox) = (count("sent"), count("in_outbox"));
    if outbox > 0 {
        println!(
            "{sent} sent, {outbox} in the outbox (no SMTP relay configured: not on their way), {} failed.",
            failed.len()
        );
    } else {
        println!("{sent} sent, {} failed.", failed.len());
    }
    for f in &failed {
        println!(
            "  failed: {} ({}): {}",
            f.recipient_email,
            f.mailbox,
            visible(f.delivery_detail.as_deref().unwrap_or(""))
        );
    }
    failed.len()
}
