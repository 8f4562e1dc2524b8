//! The `muster` command line. `src/main.rs` only calls [`main`].

mod accounts;
mod api_check;
mod api_client;
mod dkim;
mod dns_report;
mod invite;
mod invites;
mod mailboxes;
mod ops;
mod output;
mod preview;
mod serve;
mod sql;
mod test_send;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::service::{Muster, ServiceError, SystemClock};
use crate::store::{Store, StoreError};

#[derive(Parser, Debug)]
#[command(
    name = "muster",
    version,
    about = "Invite a whole team to new mailboxes on your own Dovecot and Postfix"
)]
pub struct Cli {
    /// Configuration file (default: config/muster.toml when present, else built-in defaults).
    #[arg(long, global = true, env = "MUSTER_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the HTTP server and the delivery worker.
    Serve,
    /// Show what a roster would become, and every problem with it.
    Preview(preview::PreviewArgs),
    /// Create a batch of invites from a roster and send it.
    Invite(invite::InviteArgs),
    /// List, resend or revoke invites.
    #[command(subcommand)]
    Invites(invites::InvitesCommand),
    /// The mailboxes Muster created.
    #[command(subcommand)]
    Mailboxes(mailboxes::MailboxesCommand),
    /// Admin accounts for the web app.
    #[command(subcommand)]
    Admin(accounts::AdminCommand),
    /// API tokens for automation.
    #[command(subcommand)]
    Token(accounts::TokenCommand),
    /// Serve the MCP tools over stdio against the local store (for desktop MCP clients).
    Mcp,
    /// Check the configuration, the SMTP relay, the mail host files and the public URL.
    Check {
        /// Instead: the DNS records each domain needs to receive mail and
        /// to have Muster's mail trusted (MX, SPF, DKIM, DMARC, reverse
        /// DNS), what is published now, and what to change.
        #[arg(long)]
        deliverability: bool,
    },
    /// For an SQL mail host: make Muster's table and print the Dovecot and Postfix settings.
    #[command(subcommand)]
    Sql(sql::SqlCommand),
    /// DKIM signing keys and the DNS records they need.
    #[command(subcommand)]
    Dkim(dkim::DkimCommand),
    /// Send one invite-shaped test the way invites go, and say whether it
    /// was taken and how SPF, DKIM and DMARC judge it.
    TestSend(test_send::TestSendArgs),
    /// Exit 0 when the local server answers /healthz (for container health checks).
    Health {
        /// The server's base URL (default: from `listen`).
        #[arg(long)]
        url: Option<String>,
    },
    /// Write a consistent copy of the store, also while Muster runs.
    Backup {
        file: PathBuf,
        /// Replace FILE if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Put a backup in place of the store (Muster must be stopped).
    Restore { file: PathBuf },
    /// Print an example muster.toml that documents every setting and its
    /// default (works with no configuration, or a broken one).
    ExampleConfig,
}

/// Every setting, documented, as the repository's config/muster.example.toml.
const EXAMPLE_CONFIG: &str = include_str!("../../config/muster.example.toml");

/// Exit codes: 0 fine, 1 the work found problems (flagged rows, failed
/// invites), 2 the command could not run (bad input or configuration).
pub const EXIT_PROBLEMS: u8 = 1;
pub const EXIT_UNUSABLE: u8 = 2;

pub fn main() -> ExitCode {
    crate::app::return_freed_memory();
    // One TLS provider for the SMTP relay and the API client.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    if let Command::ExampleConfig = cli.command {
        print!("{EXAMPLE_CONFIG}");
        return ExitCode::SUCCESS;
    }
    let loaded = Config::load(cli.config.as_deref(), std::env::vars());
    if let Command::Check {
        deliverability: false,
    } = cli.command
    {
        // With no file, Muster runs on its defaults (and the environment):
        // say so rather than name a file that is not there.
        let source = match &cli.config {
            Some(p) => p.display().to_string(),
            None if std::path::Path::new(crate::config::DEFAULT_CONFIG_PATH).exists() => {
                crate::config::DEFAULT_CONFIG_PATH.to_string()
            }
            None => format!(
                "no {}: the defaults and MUSTER_* variables",
                crate::config::DEFAULT_CONFIG_PATH
            ),
        };
        let runtime = tokio::runtime::Runtime::new().expect("the runtime starts");
        return match runtime.block_on(ops::check(loaded, &source)) {
            Ok(code) => ExitCode::from(code),
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(EXIT_UNUSABLE)
            }
        };
    }
    let config = match loaded {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_UNUSABLE);
        }
    };
    init_logging(&config, matches!(cli.command, Command::Serve));
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_UNUSABLE);
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve => serve::run(config).await,
            Command::Preview(args) => preview::run(config, args),
            Command::Invite(args) => invite::run(config, args).await,
            Command::Invites(cmd) => invites::run(config, cmd).await,
            Command::Mailboxes(cmd) => mailboxes::run(config, cmd).await,
            Command::Admin(cmd) => accounts::admin(config, cmd),
            Command::Token(cmd) => accounts::token(config, cmd),
            Command::Mcp => mcp(config).await,
            Command::Sql(cmd) => sql::run(config, cmd).await,
            Command::Dkim(cmd) => dkim::run(config, cmd),
            Command::TestSend(args) => test_send::run(config, args).await,
            Command::Check { deliverability: _ } => dns_report::run(config).await,
            Command::Health { url } => ops::health(config, url).await,
            Command::Backup { file, force } => ops::backup(config, file, force),
            Command::Restore { file } => ops::restore(config, file),
            Command::ExampleConfig => unreachable!("printed before the configuration is read"),
        }
    });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_UNUSABLE)
        }
    }
}

fn init_logging(config: &Config, serving: bool) {
    use tracing_subscriber::EnvFilter;
    // Commands other than serve print their own results; keep logs to warnings.
    let default = if serving {
        config.log.level.as_str()
    } else {
        "warn"
    };
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colour codes only on a terminal, not in a log file or journal.
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match config.log.format {
        crate::config::LogFormat::Json => builder.json().try_init(),
        crate::config::LogFormat::Text => builder.try_init(),
    };
}

/// Muster for commands that only read: the store opened for writing when
/// free (which also repairs it after a crash), else read-only beside a
/// running server; the link key is not needed to read.
fn muster_for_reading(config: Config) -> Result<Muster, ServiceError> {
    let path = config.store_path();
    let store = if !crate::service::store_is_new(&config)? {
        match Store::open(&path) {
            Ok(s) => s,
            Err(StoreError::Locked(_)) => Store::open_read_only(&path)?,
            Err(e) => return Err(e.into()),
        }
    } else {
        Store::in_memory()?
    };
    let config = Arc::new(config);
    let host = crate::provision::from_config(&config)?;
    let key = crate::domain::token::LinkKey::from_bytes([0; 32]);
    Ok(Muster::new(config, store, host, Arc::new(SystemClock), key))
}

/// `muster mcp`: MCP over stdio. Invites created here are sent by a
/// delivery worker running for as long as the client keeps the process.
async fn mcp(config: Config) -> anyhow::Result<u8> {
    let muster = Arc::new(Muster::open(Arc::new(config), Arc::new(SystemClock))?);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let worker = crate::mail::worker::spawn(muster.clone(), stop_rx)?;
    let served = crate::http::mcp::serve_stdio(muster).await;
    let _ = stop_tx.send(true);
    let _ = worker.await;
    served?;
    Ok(0)
}
