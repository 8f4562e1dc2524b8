//! `muster invites list | resend | revoke`: the pending list from the
//! command line.

use std::sync::Arc;

use clap::{Args, Subcommand};

use super::invite::{send_and_wait, summarise};
use super::output::cell;
use super::{EXIT_PROBLEMS, muster_for_reading};
use crate::config::Config;
use crate::service::{Muster, ServiceError, SystemClock};
use crate::store::Actor;
use crate::store::view::InviteFilter;

#[derive(Subcommand, Debug)]
pub enum InvitesCommand {
    /// List invites, newest first.
    List(ListArgs),
    /// Send a fresh link (new token, new expiry); the old link dies at once.
    Resend(ResendArgs),
    /// Withdraw invites: the links die and their places under the cap free up.
    Revoke { ids: Vec<String> },
}

#[derive(Args, Debug)]
pub struct ResendArgs {
    /// The invites to resend.
    #[arg(
        conflicts_with = "pending_for",
        required_unless_present = "pending_for"
    )]
    ids: Vec<String>,
    /// Instead of naming them: every invite still waiting (link live or
    /// expired, not used or revoked) whose link went out at least this long
    /// ago, e.g. 7d.
    #[arg(long, value_name = "WAIT")]
    pending_for: Option<String>,
    /// With --pending-for: only this batch.
    #[arg(long, requires = "pending_for")]
    batch: Option<String>,
    /// With --pending-for: list which invites, and resend nothing.
    #[arg(long, requires = "pending_for")]
    dry_run: bool,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    #[arg(long)]
    batch: Option<String>,
    /// A link state (live, redeemed, revoked, expired, blocked), a delivery
    /// state (queued, sent, deferred, failed, withdrawn), `pending`, `expiring` (within a week),
    /// `new_link_requested`, or `setup_failed` (the link works; the mailbox could
    /// not be made).
    #[arg(long)]
    state: Option<String>,
    /// Text to find in the recipient, mailbox or display name.
    #[arg(long)]
    search: Option<String>,
    /// How many to show (at most 500).
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// Where to go on: the cursor the previous page printed.
    #[arg(long)]
    cursor: Option<String>,
    #[arg(long)]
    json: bool,
}

pub async fn run(config: Config, cmd: InvitesCommand) -> anyhow::Result<u8> {
    match cmd {
        InvitesCommand::List(args) => list(config, args),
        InvitesCommand::Resend(args) => match args.pending_for.clone() {
            Some(wait) => resend_pending(config, &wait, args).await,
            None => change(config, args.ids, true).await,
        },
        InvitesCommand::Revoke { ids } => change(config, ids, false).await,
    }
}

fn list(config: Config, args: ListArgs) -> anyhow::Result<u8> {
    let muster = muster_for_reading(config)?;
    let filter = InviteFilter {
        batch_id: args.batch,
        state: args.state,
        text: args.search,
    };
    let (invites, next_cursor) =
        muster.list_invites(&filter, args.cursor.as_deref(), args.limit)?;
    // On stderr, so that --json output stays one array.
    let more = || {
        if let Some(c) = &next_cursor {
            eprintln!("more: run again with --cursor {c} for the next page");
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&invites)?);
        more();
        return Ok(0);
    }
    println!(
        "{} {} {} {} {} {} NOTE",
        cell("ID", 26),
        cell("RECIPIENT", 28),
        cell("MAILBOX", 28),
        cell("LINK", 9),
        cell("DELIVERY", 9),
        cell("EXPIRES (UTC)", 16)
    );
    for i in &invites {
        let note = if let Some(at) = i.new_link_requested_at {
            format!("new link requested {}", at.date())
        } else {
            i.last_error
                .clone()
                .or_else(|| i.delivery_detail.clone())
                .unwrap_or_default()
        };
        let expires = format!(
            "{} {:02}:{:02}",
            i.expires_at.date(),
            i.expires_at.hour(),
            i.expires_at.minute()
        );
        println!(
            "{} {} {} {} {} {} {}",
            cell(&i.id, 26),
            cell(&i.recipient_email, 28),
            cell(&i.mailbox, 28),
            cell(i.link_state, 9),
            cell(i.delivery_state, 9),
            cell(&expires, 16),
            note
        );
    }
    more();
    Ok(0)
}

/// `resend --pending-for WAIT`: the list first, then (unless a dry run)
/// a fresh link for each, sent before the command returns.
async fn resend_pending(config: Config, wait: &str, args: ResendArgs) -> anyhow::Result<u8> {
    let wait = match crate::domain::duration::HumanDuration::parse(wait) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("error: --pending-for: {e}");
            return Ok(super::EXIT_UNUSABLE);
        }
    };
    let muster = Arc::new(Muster::open(Arc::new(config), Arc::new(SystemClock))?);
    let candidates = match muster.resend_candidates(wait, args.batch.as_deref()) {
        Ok(c) => c,
        Err(e @ (ServiceError::Wait(_) | ServiceError::NoBatch(_))) => {
            eprintln!("error: {e}");
            return Ok(super::EXIT_UNUSABLE);
        }
        Err(e) => return Err(e.into()),
    };
    println!(
        "{} invites still waiting {wait} or more after their link went out:",
        candidates.len()
    );
    for c in &candidates {
        println!(
            "{} {} {} link sent {} ({})",
            cell(&c.invite.id, 26),
            cell(&c.invite.recipient_email, 28),
            cell(&c.invite.mailbox, 28),
            c.link_sent_at.date(),
            c.invite.link_state
        );
    }
    if args.dry_run || candidates.is_empty() {
        return Ok(0);
    }
    let ids: Vec<String> = candidates.iter().map(|c| c.invite.id.clone()).collect();
    let done = muster.resend_pending(wait, args.batch.as_deref(), Some(&ids), &Actor::cli())?;
    for (id, why) in &done.skipped {
        println!("{id}: skipped: {why}");
    }
    let resent: Vec<String> = done.resent.iter().map(|v| v.id.clone()).collect();
    println!("Fresh links for {} invites; sending.", resent.len());
    let mut problems = done.skipped.len();
    if !resent.is_empty() {
        send_and_wait(&muster, &resent).await?;
        let views: Vec<_> = resent
            .iter()
            .map(|id| muster.get_invite(id))
            .collect::<Result<_, _>>()?;
        problems += summarise(&views);
    }
    Ok(if problems == 0 { 0 } else { EXIT_PROBLEMS })
}

async fn change(config: Config, ids: Vec<String>, resend: bool) -> anyhow::Result<u8> {
    if ids.is_empty() {
        anyhow::bail!("name at least one invite id (see `muster invites list`)");
    }
    let muster = Arc::new(Muster::open(Arc::new(config), Arc::new(SystemClock))?);
    let mut problems = 0;
    let mut resent = Vec::new();
    for id in &ids {
        let result = if resend {
            muster.resend(id, &Actor::cli())
        } else {
            muster.revoke(id, &Actor::cli())
        };
        match result {
            Ok(v) if resend => {
                println!(
                    "{}: new link for {}, expires {}",
                    v.id,
                    v.mailbox,
                    super::output::minute_utc(v.expires_at)
                );
                resent.push(v.id);
            }
            Ok(v) => println!("{}: revoked {}", v.id, v.mailbox),
            Err(e @ ServiceError::NoInvite(_)) => {
                println!("{id}: {e}");
                problems += 1;
            }
            Err(ServiceError::Transition(e)) => {
                let verb = if resend { "resend" } else { "revoke" };
                println!("{id}: cannot {verb} it: {e}");
                problems += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
    if !resent.is_empty() {
        send_and_wait(&muster, &resent).await?;
        let views: Vec<_> = resent
            .iter()
            .map(|id| muster.get_invite(id))
            .collect::<Result<_, _>>()?;
        problems += summarise(&views);
    }
    Ok(if problems == 0 { 0 } else { EXIT_PROBLEMS })
}
