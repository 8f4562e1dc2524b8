//! `muster sql init | queries`: for `mail_host.backend = "sql"`, make
//! Muster's table (or check Postfix Admin's), and print the Dovecot and
//! Postfix settings that read the same database.

use clap::Subcommand;

use super::EXIT_UNUSABLE;
use crate::config::{Config, MailHostBackend, SqlLayout};
use crate::provision::MailHost;
use crate::provision::sql::{Server, SqlHost};

#[derive(Subcommand, Debug)]
pub enum SqlCommand {
    /// Create Muster's table (layout "muster") or check Postfix Admin's,
    /// then print the Dovecot and Postfix settings to paste.
    Init,
    /// Print the Dovecot and Postfix settings only.
    Queries,
}

pub async fn run(config: Config, cmd: SqlCommand) -> anyhow::Result<u8> {
    if config.mail_host.backend != MailHostBackend::Sql {
        eprintln!("error: mail_host.backend is not \"sql\"; set it and mail_host.sql.url first");
        return Ok(EXIT_UNUSABLE);
    }
    let url = config
        .mail_host
        .sql
        .url
        .as_ref()
        .map(|u| u.expose().to_string())
        .unwrap_or_default();
    let host = SqlHost::from_config(&config)?;
    if let SqlCommand::Init = cmd {
        let host = std::sync::Arc::new(host);
        let h = host.clone();
        let checked = tokio::task::spawn_blocking(move || {
            h.init()?;
            h.check()
        })
        .await?;
        match checked {
            Ok(said) => println!("# {said}"),
            Err(e) => {
                eprintln!("error: {e}");
                if config.mail_host.sql.layout == SqlLayout::Postfixadmin {
                    eprintln!(
                        "Postfix Admin's tables (mailbox, alias, domain) must exist: Muster does not make them."
                    );
                }
                return Ok(EXIT_UNUSABLE);
            }
        }
        print(&config, &host, &url);
        return Ok(0);
    }
    print(&config, &host, &url);
    Ok(0)
}

fn print(config: &Config, host: &SqlHost, url: &str) {
    let Some(server) = Server::of(url) else {
        return;
    };
    let queries = host.queries();
    let scheme = serde_json::to_value(config.mail_host.hash_scheme)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "ARGON2ID".into());
    println!(
        "# {}. Give Dovecot and Postfix a user that may read it;",
        host.describe()
    );
    println!("# PASSWORD below is that user's.\n");
    println!("# Dovecot: /etc/dovecot/dovecot-sql.conf.ext");
    print!("{}", queries.dovecot_conf(&server, "PASSWORD", &scheme));
    println!(
        "\n# Dovecot: in conf.d/auth-sql.conf.ext (and !include it)\npassdb {{\n  driver = sql\n  args = /etc/dovecot/dovecot-sql.conf.ext\n}}\nuserdb {{\n  driver = sql\n  args = /etc/dovecot/dovecot-sql.conf.ext\n}}\n"
    );
    for (setting, file, contents) in queries.postfix_maps(&server, "PASSWORD") {
        println!("# Postfix: /etc/postfix/{file}");
        print!("{contents}");
        println!(
            "# and in main.cf: {setting} = {}:/etc/postfix/{file}\n",
            server.postfix_type()
        );
    }
}
