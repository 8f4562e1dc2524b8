//! `muster admin add | reset-password` and `muster token create | list | revoke`.

use std::io::{BufRead, IsTerminal};
use std::sync::Arc;

use clap::Subcommand;

use crate::config::Config;
use crate::service::{AdminError, Muster, ServiceError, SystemClock};
use crate::store::{Actor, StoreError};

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Create an admin account (asks for the password; reads it from stdin when not a terminal).
    Add { email: String },
    /// Set a new password for an admin; their sessions end.
    ResetPassword { email: String },
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Create an API token; the secret is printed once.
    Create {
        #[arg(long)]
        name: String,
    },
    /// List API tokens (never their secrets).
    List,
    /// Revoke an API token by id.
    Revoke { id: String },
}

fn read_password() -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ")?;
        let second = rpassword::prompt_password("Password again: ")?;
        if first != second {
            anyhow::bail!("the two passwords do not match");
        }
        Ok(first)
    } else {
        let mut line = String::new();
        if std::io::stdin().lock().read_line(&mut line)? == 0 {
            anyhow::bail!(
                "no password on standard input: run it in a terminal to be asked, or pipe the password in (e.g. from a password manager)"
            );
        }
        Ok(line.trim_end_matches(['\n', '\r']).to_string())
    }
}

fn open(config: Config) -> anyhow::Result<Muster> {
    Ok(Muster::open(Arc::new(config), Arc::new(SystemClock))?)
}

pub fn admin(config: Config, cmd: AdminCommand) -> anyhow::Result<u8> {
    let muster = open(config)?;
    let password = read_password()?;
    let result = match &cmd {
        AdminCommand::Add { email } => muster.add_admin(email, &password, &Actor::cli()).map(|e| {
            println!(
                "Admin {e} created; sign in at {}/login",
                muster.config.public_url()
            );
        }),
        AdminCommand::ResetPassword { email } => muster
            .set_admin_password(email, &password, &Actor::cli())
            .map(|_| println!("The password of {email} was changed; their sessions ended.")),
    };
    match result {
        Ok(()) => Ok(0),
        Err(
            e @ (AdminError::Policy(_)
            | AdminError::BadEmail(..)
            | AdminError::Exists(_)
            | AdminError::NoSuchAdmin(_)),
        ) => {
            eprintln!("error: {e}");
            Ok(super::EXIT_UNUSABLE)
        }
        Err(e) => Err(e.into()),
    }
}

pub fn token(config: Config, cmd: TokenCommand) -> anyhow::Result<u8> {
    // The API needs a token to make one: while the server runs, the web
    // app is the way.
    let muster = match Muster::open(Arc::new(config), Arc::new(SystemClock)) {
        Ok(m) => m,
        Err(ServiceError::Store(StoreError::Locked(path))) => {
            eprintln!(
                "error: the store {} is in use by `muster serve`: make and revoke tokens on the web app's API tokens page, or stop the server first",
                path.display()
            );
            return Ok(super::EXIT_UNUSABLE);
        }
        Err(e) => return Err(e.into()),
    };
    match cmd {
        TokenCommand::Create { name } => {
            let (token, secret) = muster.create_api_token(&name, &Actor::cli())?;
            eprintln!(
                "API token {:?} created (id {}). Its secret is shown this once:",
                token.name, token.id
            );
            println!("{secret}");
        }
        TokenCommand::List => {
            for t in muster.api_tokens()? {
                println!(
                    "{}  {:<30} created {}  last used {}  {}",
                    t.id,
                    t.name,
                    t.created_at.date(),
                    t.last_used_at
                        .map(|d| d.date().to_string())
                        .unwrap_or_else(|| "never".into()),
                    if t.revoked_at.is_some() {
                        "revoked"
                    } else {
                        "active"
                    }
                );
            }
        }
        TokenCommand::Revoke { id } => {
            let t = muster.revoke_api_token(&id, &Actor::cli())?;
            println!("API token {:?} ({}) revoked.", t.name, t.id);
        }
    }
    Ok(0)
}
