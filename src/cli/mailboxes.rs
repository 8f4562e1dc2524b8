//! `muster mailboxes list | allocation | suspend | restore | remove |
//! forget`: the mailboxes Muster manages.

use std::sync::Arc;

use clap::Subcommand;

use crate::config::Config;
use crate::provision::MailFolder;
use crate::service::{Muster, ServiceError, SystemClock, size_words};
use crate::store::Actor;

#[derive(Subcommand, Debug)]
pub enum MailboxesCommand {
    /// The domain's mailboxes, with allocations and who made them.
    List {
        #[arg(long)]
        domain: Option<String>,
        /// Text to find in the address.
        #[arg(long)]
        search: Option<String>,
    },
    /// Give a mailbox Muster made a new allocation: `500`, `500MB`, `2GB`,
    /// or `shared` for the shared pool. A bigger one must fit the pool.
    Allocation { address: String, size: String },
    /// Refuse the mailboxes' logins; their mail still arrives.
    Suspend {
        #[arg(required = true)]
        addresses: Vec<String>,
    },
    /// Allow suspended mailboxes' logins again.
    Restore {
        #[arg(required = true)]
        addresses: Vec<String>,
    },
    /// Send a mailbox's owner a single-use link (valid 24 hours) to choose a
    /// new password, to --to or the address it was invited at.
    ResetPassword {
        address: String,
        #[arg(long)]
        to: Option<String>,
        /// en or de (default: the invite's language).
        #[arg(long)]
        locale: Option<String>,
    },
    /// Remove mailboxes Muster made from the mail server (login and
    /// address); their mail folders stay unless --delete-mail.
    Remove {
        #[arg(required = true)]
        addresses: Vec<String>,
        #[arg(long)]
        delete_mail: bool,
    },
    /// Forget mailboxes Muster created that were removed from the mail
    /// host on purpose, so Muster stops refusing to provision for them.
    Forget {
        #[arg(required = true)]
        addresses: Vec<String>,
    },
}

pub async fn run(config: Config, cmd: MailboxesCommand) -> anyhow::Result<u8> {
    let muster = Arc::new(Muster::open(Arc::new(config), Arc::new(SystemClock))?);
    match cmd {
        MailboxesCommand::ResetPassword {
            address,
            to,
            locale,
        } => reset_password(&muster, &address, to.as_deref(), locale.as_deref()).await,
        MailboxesCommand::List { domain, search } => list(&muster, domain, search),
        MailboxesCommand::Allocation { address, size } => {
            let mb = match parse_size(&size) {
                Ok(mb) => mb,
                Err(e) => {
                    eprintln!("error: {e}");
                    return Ok(super::EXIT_UNUSABLE);
                }
            };
            each(&[address], |a| {
                let m = muster.set_allocation(a, mb, &Actor::cli())?;
                Ok(format!(
                    "{a}: allocation {}",
                    m.record
                        .storage_allocation_mb
                        .map(size_words)
                        .unwrap_or_else(|| "shared pool".into())
                ))
            })
        }
        MailboxesCommand::Suspend { addresses } => each(&addresses, |a| {
            muster.set_suspended(a, true, &Actor::cli())?;
            Ok(format!(
                "{a}: suspended (logins refused, mail still accepted)"
            ))
        }),
        MailboxesCommand::Restore { addresses } => each(&addresses, |a| {
            muster.set_suspended(a, false, &Actor::cli())?;
            Ok(format!("{a}: restored"))
        }),
        MailboxesCommand::Remove {
            addresses,
            delete_mail,
        } => each(&addresses, |a| {
            Ok(
                match muster.remove_mailbox(a, delete_mail, &Actor::cli())? {
                    MailFolder::Kept(p) => format!("{a}: removed; its mail folder {p} is kept"),
                    MailFolder::Deleted(p) => format!("{a}: removed with its mail folder {p}"),
                    MailFolder::Absent(p) => format!("{a}: removed; it had no mail folder at {p}"),
                    MailFolder::NotDeleted { path, why } => format!(
                        "{a}: removed; its mail folder {path} could not be deleted ({why}): delete it as the mail server's user"
                    ),
                    MailFolder::Unknown => format!("{a}: removed"),
                },
            )
        }),
        MailboxesCommand::Forget { addresses } => {
            let forgotten = muster.forget_mailboxes(&addresses, &Actor::cli())?;
            for a in &forgotten {
                println!("forgot {a}");
            }
            if forgotten.len() < addresses.len() {
                println!(
                    "{} of the addresses given are not mailboxes Muster created; nothing to forget there",
                    addresses.len() - forgotten.len()
                );
            }
            match muster.host_damage()? {
                Some(d) => {
                    println!("still missing: {d}");
                    Ok(super::EXIT_PROBLEMS)
                }
                None => Ok(0),
            }
        }
    }
}

/// Sends the reset link and waits until it is sent (or in the outbox).
async fn reset_password(
    muster: &Arc<Muster>,
    address: &str,
    to: Option<&str>,
    locale: Option<&str>,
) -> anyhow::Result<u8> {
    let sent = match muster.send_password_reset(address, to, locale, &Actor::cli()) {
        Ok(v) => v,
        Err(e @ (ServiceError::NotManaged(_) | ServiceError::ResetRecipient(_))) => {
            println!("{address}: {e}");
            return Ok(super::EXIT_PROBLEMS);
        }
        Err(e) => return Err(e.into()),
    };
    println!(
        "{}: a link to choose a new password goes to {} (invite {}, expires {})",
        sent.mailbox,
        sent.recipient_email,
        sent.id,
        super::output::minute_utc(sent.expires_at)
    );
    super::invite::send_and_wait(muster, std::slice::from_ref(&sent.id)).await?;
    let failed = super::invite::summarise(&[muster.get_invite(&sent.id)?]);
    Ok(if failed == 0 { 0 } else { super::EXIT_PROBLEMS })
}

/// Runs `act` for each address, saying what happened; refusals are
/// counted and the rest go on.
fn each(
    addresses: &[String],
    mut act: impl FnMut(&str) -> Result<String, ServiceError>,
) -> anyhow::Result<u8> {
    let mut problems = 0;
    for a in addresses {
        match act(a) {
            Ok(said) => println!("{said}"),
            Err(e @ (ServiceError::NotManaged(_) | ServiceError::Allocation(_))) => {
                println!("{a}: {e}");
                problems += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(if problems == 0 {
        0
    } else {
        super::EXIT_PROBLEMS
    })
}

/// `500`, `500MB`, `2GB`, `1.5GB` or `shared`.
fn parse_size(raw: &str) -> Result<Option<u64>, String> {
    let s = raw.trim().to_lowercase().replace(' ', "");
    if s == "shared" {
        return Ok(None);
    }
    let (num, factor) = if let Some(n) = s.strip_suffix("gb").or_else(|| s.strip_suffix('g')) {
        (n, 1024.0)
    } else if let Some(n) = s.strip_suffix("mb").or_else(|| s.strip_suffix('m')) {
        (n, 1.0)
    } else {
        (s.as_str(), 1.0)
    };
    match num.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 1.0 / factor && v * factor <= u64::MAX as f64 => {
            Ok(Some((v * factor).ceil() as u64))
        }
        _ => Err(format!(
            "{raw:?} is not a size: give MB (500), 500MB, 2GB, or `shared` for the shared pool"
        )),
    }
}

fn list(muster: &Muster, domain: Option<String>, search: Option<String>) -> anyhow::Result<u8> {
    let domain = muster.resolve_domain(domain.as_deref())?;
    let view = muster.view()?;
    let wanted = search.unwrap_or_default().to_lowercase();
    println!(
        "{} {} {} MADE BY MUSTER",
        super::output::cell("ADDRESS", 36),
        super::output::cell("ALLOCATION", 12),
        super::output::cell("STATE", 10)
    );
    for m in muster.host_index()?.mailboxes_in(domain.as_str()) {
        if !m.address.contains(&wanted) {
            continue;
        }
        let record = view.created_mailbox(&m.address)?;
        println!(
            "{} {} {} {}",
            super::output::cell(&m.address, 36),
            super::output::cell(
                &m.quota_mb
                    .map(size_words)
                    .unwrap_or_else(|| "shared".into()),
                12
            ),
            super::output::cell(if m.suspended { "suspended" } else { "active" }, 10),
            if record.is_some() { "yes" } else { "no" }
        );
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_as_people_write_them() {
        assert_eq!(parse_size("500"), Ok(Some(500)));
        assert_eq!(parse_size("500 MB"), Ok(Some(500)));
        assert_eq!(parse_size("2GB"), Ok(Some(2048)));
        assert_eq!(parse_size("1.5g"), Ok(Some(1536)));
        assert_eq!(parse_size("Shared"), Ok(None));
        assert!(parse_size("0").is_err());
        assert!(parse_size("lots").is_err());
    }
}
