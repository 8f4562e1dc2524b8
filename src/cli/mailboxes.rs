//! `muster mailboxes forget`: the mailboxes Muster manages.

use std::sync::Arc;

use clap::Subcommand;

use crate::config::Config;
use crate::service::{Muster, SystemClock};
use crate::store::Actor;

#[derive(Subcommand, Debug)]
pub enum MailboxesCommand {
    /// Forget mailboxes Muster created that were removed from the mail
    /// host on purpose, so Muster stops refusing to provision for them.
    Forget {
        #[arg(required = true)]
        addresses: Vec<String>,
    },
}

pub fn run(config: Config, cmd: MailboxesCommand) -> anyhow::Result<u8> {
    let muster = Muster::open(Arc::new(config), Arc::new(SystemClock))?;
    match cmd {
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
