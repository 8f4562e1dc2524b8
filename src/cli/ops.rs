//! Operations commands: `muster health`, `muster check`, `muster backup`
//! and `muster restore`.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{EXIT_PROBLEMS, EXIT_UNUSABLE};
use crate::config::{Config, MailHostBackend};
use crate::mail::smtp::Relay;
use crate::store::{Store, StoreError};

/// The URL of this configuration's own server, for `health`.
fn local_url(config: &Config) -> String {
    let mut listen = config.listen;
    // Listening everywhere: this host answers on loopback.
    if listen.ip().is_unspecified() {
        listen.set_ip(match listen.ip() {
            std::net::IpAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::IpAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    format!("http://{listen}")
}

/// `muster health`: exit 0 when the local server answers /healthz (for the
/// container HEALTHCHECK).
pub async fn health(config: Config, url: Option<String>) -> anyhow::Result<u8> {
    let base = url.unwrap_or_else(|| local_url(&config));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    match client
        .get(format!("{}/healthz", base.trim_end_matches('/')))
        .send()
        .await
    {
        Ok(r) if r.status().is_success() => {
            println!("healthy");
            Ok(0)
        }
        Ok(r) => {
            println!("unhealthy: /healthz answered {}", r.status());
            Ok(EXIT_PROBLEMS)
        }
        Err(e) => {
            println!("unhealthy: {e}");
            Ok(EXIT_PROBLEMS)
        }
    }
}

struct Report {
    failures: usize,
}

impl Report {
    fn ok(&mut self, what: &str) {
        println!("ok    {what}");
    }

    /// Not a problem, but worth knowing (and what to do about it).
    fn note(&mut self, what: &str, then: &str) {
        println!("note  {what}\n      then: {then}");
    }

    fn fail(&mut self, what: &str, fix: &str) {
        self.failures += 1;
        println!("FAIL  {what}\n      fix: {fix}");
    }
}

/// One mail host file: present (or creatable), writable, and with the
/// owner and mode Dovecot needs.
fn check_file(r: &mut Report, label: &str, path: &Path, explicit: bool, secret: bool, key: &str) {
    let Ok(meta) = std::fs::metadata(path) else {
        if explicit {
            // Muster's user writes it; Dovecot reads the passwd-file as
            // its group, Postfix the map's compiled form as root.
            let (owner, mode) = if secret {
                ("muster:dovecot", 640)
            } else {
                ("muster", 644)
            };
            r.fail(
                &format!("{label} {} does not exist", path.display()),
                &format!(
                    "create it (touch {p}; chown {owner} {p}; chmod {mode} {p}), or correct {key}",
                    p = path.display()
                ),
            );
        } else {
            let dir = path.parent().unwrap_or(Path::new("."));
            let dir_ok = std::fs::create_dir_all(dir).is_ok()
                && std::fs::metadata(dir).is_ok_and(|m| crate::provision::writable(dir, &m));
            let group = crate::provision::dovecot_gid().filter(|_| secret);
            if dir_ok && group.is_some_and(|gid| !crate::provision::may_give_group(gid)) {
                r.fail(
                    &format!(
                        "{label} {} will be created with the first mailbox, but Muster's user is not in the dovecot group, so Dovecot could not read it",
                        path.display()
                    ),
                    &format!(
                        "add Muster's user to the group (usermod -aG dovecot muster), or create the file now: touch {p}; chgrp dovecot {p}; chmod 640 {p}",
                        p = path.display()
                    ),
                );
            } else if dir_ok {
                let group = if group.is_some() {
                    ", group dovecot"
                } else {
                    ""
                };
                r.ok(&format!(
                    "{label} {} will be created with the first mailbox (mode 640{group})",
                    path.display()
                ));
            } else {
                r.fail(
                    &format!("{label}: cannot create {}", path.display()),
                    &format!("make {} writable by Muster, or set {key}", dir.display()),
                );
            }
        }
        return;
    };
    if !crate::provision::writable(path, &meta) {
        r.fail(
            &format!("{label} {} is not writable by Muster", path.display()),
            &format!(
                "give Muster's user write access (e.g. chown muster:dovecot {p}; chmod 640 {p})",
                p = path.display()
            ),
        );
        return;
    }
    if let Some(problem) = crate::provision::append_problem(path) {
        let fix = match problem {
            crate::provision::ProvisionError::Unterminated { .. } => {
                format!("open {} and end its last line", path.display())
            }
            _ => format!("let Muster's user read {}", path.display()),
        };
        r.fail(&format!("{label}: {problem}"), &fix);
        return;
    }
    let mode = meta.permissions().mode() & 0o777;
    if secret && mode & 0o004 != 0 {
        r.fail(
            &format!(
                "{label} {} is readable by everyone (mode {mode:o}) and holds password hashes",
                path.display()
            ),
            &format!("chmod 640 {}", path.display()),
        );
        return;
    }
    if secret
        && let Some(gid) = crate::provision::dovecot_gid()
        && meta.gid() != gid
        && mode & 0o004 == 0
    {
        r.fail(
            &format!(
                "{label} {} belongs to group {}, so Dovecot cannot read it",
                path.display(),
                crate::provision::group_name(meta.gid())
            ),
            &format!("chgrp dovecot {}; chmod 640 {0}", path.display()),
        );
        return;
    }
    // Dovecot reads it as its group: the group needs the read bit, and
    // its folder the search bit.
    if secret && let Some(gid) = crate::provision::dovecot_gid() {
        if meta.gid() == gid && mode & 0o044 == 0 {
            r.fail(
                &format!(
                    "{label} {} has mode {mode:o}: its group dovecot cannot read it, so Dovecot refuses every login",
                    path.display()
                ),
                &format!("chmod 640 {}", path.display()),
            );
            return;
        }
        // Its own folder: the one the install makes for it.
        if let Some(dir) = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .filter(|d| {
                std::fs::metadata(d).is_ok_and(|m| {
                    let mode = m.permissions().mode();
                    let group_may = m.gid() == gid && mode & 0o010 != 0;
                    mode & 0o001 == 0 && !group_may
                })
            })
        {
            r.fail(
                &format!(
                    "Dovecot cannot reach {label} {}: the folder {} lets neither its group dovecot nor others through",
                    path.display(),
                    dir.display()
                ),
                &format!("chgrp dovecot {d}; chmod g+x {d}", d = dir.display()),
            );
            return;
        }
    }
    r.ok(&format!(
        "{label} {} is writable (group {}, mode {mode:o})",
        path.display(),
        crate::provision::group_name(meta.gid())
    ));
}

/// `muster check`: the configuration, the relay, the mail host files and
/// the public URL, one line each with a fix for each failure.
pub async fn check(
    config: Result<Config, crate::config::ConfigError>,
    source: &str,
) -> anyhow::Result<u8> {
    let mut r = Report { failures: 0 };
    let config = match config {
        Ok(c) => {
            r.ok(&format!("configuration ({source}) is valid"));
            c
        }
        Err(e) => {
            r.fail(
                &format!("configuration ({source}): {e}"),
                "correct the setting named above; `muster example-config` documents every setting",
            );
            return Ok(EXIT_PROBLEMS);
        }
    };

    // The data folder and the store.
    let data = &config.data_dir;
    if std::fs::create_dir_all(data).is_ok()
        && std::fs::metadata(data).is_ok_and(|m| crate::provision::writable(data, &m))
    {
        r.ok(&format!("data folder {} is writable", data.display()));
    } else {
        r.fail(
            &format!("data folder {} is not writable", data.display()),
            "create it and give Muster's user write access, or set data_dir",
        );
    }

    // Direct delivery: the resolver answers (the sender's own domain).
    if config.smtp_mode() == crate::config::SmtpMode::Direct {
        let domain = config.sender_domain();
        match crate::dns::Dns::from_config(&config.dns) {
            Ok(dns) => match dns.mx(&domain).await {
                Ok(_) | Err(crate::dns::LookupError::NoRecords(_)) => r.ok(&format!(
                    "direct delivery: {} answer (asked for the MX of {domain})",
                    dns.servers
                )),
                Err(e) => r.fail(
                    &format!("direct delivery: {e}"),
                    "check dns.resolvers, or that this host can ask DNS",
                ),
            },
            Err(e) => r.fail(&format!("direct delivery: {e}"), "check dns.resolvers"),
        }
    }
    // DKIM: the keys Muster signs with.
    match crate::mail::dkim::Signer::load(&config) {
        Ok(Some(signer)) => r.ok(&format!(
            "DKIM: signing as {} with {}",
            signer.domain(),
            signer.selectors().join(", ")
        )),
        Ok(None) if !config.dkim.sign => r.note(
            "DKIM: signing is off (dkim.sign = false)",
            "set dkim.sign = true to sign",
        ),
        Ok(None) if config.writes_outbox() => {
            r.ok("DKIM: no key for the sender's domain (`muster dkim generate` makes one)")
        }
        // Unsigned mail still leaves, but large providers trust it less.
        Ok(None) => r.note(
            if config.smtp_mode() == crate::config::SmtpMode::Direct {
                "DKIM: no key for the sender's domain, so invites leave unsigned and big providers may file them as spam"
            } else {
                "DKIM: no key for the sender's domain, so invites are signed only if the relay signs them"
            },
            "`muster dkim generate --domain D`, then publish the TXT record it prints (or let the relay sign)",
        ),
        Err(e) => r.fail(
            &format!("{e}"),
            "make a new key with `muster dkim generate`",
        ),
    }

    // The relay: connect, EHLO, STARTTLS and AUTH, then QUIT without sending.
    match Relay::from_config(&config) {
        Ok(None) if config.writes_outbox() => r.ok(&format!(
            "no SMTP relay configured: invites are written to {}",
            config.outbox_dir().display()
        )),
        Ok(None) => {}
        Ok(Some(relay)) => match relay.connect().await {
            Ok(conn) => {
                conn.quit().await;
                r.ok(&format!(
                    "SMTP relay {} accepted the connection (tls = {}{})",
                    relay.address,
                    config.smtp.tls.name(),
                    if config.smtp.username.is_some() {
                        ", AUTH"
                    } else {
                        ""
                    }
                ));
            }
            Err(outcome) => {
                let why = outcome.to_string();
                r.fail(
                    &format!("SMTP relay {}: {why}", relay.address),
                    "check smtp.host, smtp.port (MUSTER_SMTP_PORT) and smtp.tls, that the relay runs, and smtp.username/password",
                );
            }
        },
        Err(e) => r.fail(&format!("SMTP relay: {e}"), "check the smtp settings"),
    }

    // The mail host.
    match config.mail_host.backend {
        MailHostBackend::PasswdFile => {
            check_file(
                &mut r,
                "Dovecot passwd-file",
                &config.passwd_file(),
                config.mail_host.passwd_file.is_some(),
                true,
                "mail_host.passwd_file",
            );
            check_file(
                &mut r,
                "Postfix map",
                &config.postfix_map(),
                config.mail_host.postfix_map.is_some(),
                false,
                "mail_host.postfix_map",
            );
            if let Some(cmd) = &config.mail_host.reload_command {
                let program = cmd.split_whitespace().next().unwrap_or("");
                let found = std::process::Command::new("sh")
                    .arg("-c")
                    .arg(format!("command -v {program}"))
                    .output()
                    .is_ok_and(|o| o.status.success());
                if found {
                    r.ok(&format!("reload command `{cmd}`: {program} is installed"));
                } else {
                    r.fail(
                        &format!("reload command `{cmd}`: {program} is not found"),
                        "install it or correct mail_host.reload_command",
                    );
                }
            }
        }
        MailHostBackend::Sql => match crate::provision::sql::SqlHost::from_config(&config) {
            Ok(host) => match tokio::task::spawn_blocking(move || host.check()).await {
                Ok(Ok(said)) => r.ok(&said),
                Ok(Err(e)) => r.fail(
                    &e.to_string(),
                    "check mail_host.sql (url, layout, tls) and that the database runs; for the muster layout run `muster sql init`",
                ),
                Err(e) => r.fail(&format!("mail database: {e}"), "check mail_host.sql"),
            },
            Err(e) => r.fail(&e.to_string(), "check mail_host.sql.url"),
        },
        MailHostBackend::Command => {
            let host = crate::provision::from_config(&config)?;
            match tokio::task::spawn_blocking(move || host.list()).await {
                Ok(Ok(index)) => r.ok(&format!(
                    "mail host command lists {} mailboxes",
                    index.len()
                )),
                Ok(Err(e)) => r.fail(
                    &format!("mail host command: {e}"),
                    "fix the program in mail_host.command",
                ),
                Err(e) => r.fail(
                    &format!("mail host command: {e}"),
                    "fix the program in mail_host.command",
                ),
            }
        }
    }

    // Every mailbox Muster created is still on the host.
    match super::muster_for_reading(config.clone()).map(|m| m.host_damage()) {
        Ok(Ok(None)) => r.ok("every mailbox Muster created is on the mail host"),
        Ok(Ok(Some(damage))) => r.fail(
            &damage.to_string(),
            "restore the passwd-file and map from a backup; for mailboxes removed on purpose, `muster mailboxes forget ADDRESS...`",
        ),
        Ok(Err(e)) | Err(e) => r.fail(
            &format!("cannot compare the store with the mail host: {e}"),
            "check the data folder and the mail host settings",
        ),
    }

    // The public URL: where links point. A local one is right for a
    // trial on this machine, not for invites that leave it.
    // (A note, not a failure: a test on one machine may mean it.)
    if config.public_url.is_local() {
        let leaving = if config.writes_outbox() {
            String::new()
        } else {
            format!(" (and invites leave by {} mode)", config.smtp_mode().name())
        };
        r.note(
            &format!(
                "public URL {} names this machine only: the links in invites open on no other{leaving}",
                config.public_url()
            ),
            "unless every recipient sits at this machine, set public_url (MUSTER_PUBLIC_URL) to the address people reach Muster at, e.g. https://muster.example.org",
        );
    }
    // Where Muster is reachable from elsewhere, so are its metrics.
    if config.http.metrics_token.is_none()
        && !(config.public_url.is_local() && config.listen.ip().is_loopback())
    {
        r.note(
            "/metrics answers anyone who reaches Muster (invite and sign-in counts)",
            "set http.metrics_token (MUSTER_HTTP_METRICS_TOKEN) and give it to the scraper, or keep /metrics from the outside at the proxy",
        );
    }
    // Behind a proxy every limit counts X-Forwarded-For, which anyone who
    // reaches the port itself can write.
    if config.http.behind_proxy && !config.listen.ip().is_loopback() {
        r.note(
            &format!(
                "http.behind_proxy is on and Muster listens on {}: a client that reaches that port without the proxy names its own address in X-Forwarded-For, past every per-address limit",
                config.listen
            ),
            "listen on 127.0.0.1 (or a socket only the proxy reaches), or firewall the port so only the proxy connects",
        );
    }
    let url = format!("{}/healthz", config.public_url());
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let answer = match client.get(&url).send().await {
        Ok(resp) => {
            let status = resp.status();
            Ok((status, resp.text().await.unwrap_or_default()))
        }
        Err(e) => Err(e),
    };
    match answer {
        Ok((status, body)) if status.is_success() && body.trim() == "ok" => r.ok(&format!(
            "public URL {} reaches Muster",
            config.public_url()
        )),
        Ok((status, _)) => r.fail(
            &format!(
                "public URL {}: /healthz answered {status}, not Muster",
                config.public_url()
            ),
            "point the reverse proxy at Muster's listen address, or correct public_url",
        ),
        // Before the first start nothing answers anywhere: that is a note.
        Err(_) if !answers_locally(&client, config.listen).await => r.note(
            &format!(
                "Muster is not running yet (nothing answers on {}), so the public URL {} was not tried",
                config.listen,
                config.public_url()
            ),
            "start Muster (`systemctl start muster` or `muster serve`), then run `muster check` again",
        ),
        Err(e) => r.fail(
            &format!("public URL {} is not reachable: {e}", config.public_url()),
            "Muster runs but is not reached at public_url: check DNS and the reverse proxy, or correct public_url",
        ),
    }

    if r.failures == 0 {
        println!("\nAll checks passed.");
        Ok(0)
    } else {
        println!("\n{} check(s) failed.", r.failures);
        Ok(EXIT_PROBLEMS)
    }
}

/// Whether Muster answers /healthz on its own listen address.
async fn answers_locally(client: &reqwest::Client, listen: std::net::SocketAddr) -> bool {
    let mut addr = listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    match client.get(format!("http://{addr}/healthz")).send().await {
        Ok(resp) => resp.status().is_success(),
        Err(_) => false,
    }
}

/// `muster backup FILE`: a consistent copy of the store, also while
/// `muster serve` runs.
pub fn backup(config: Config, dest: PathBuf, force: bool) -> anyhow::Result<u8> {
    if dest.exists() && !force {
        eprintln!(
            "error: {} exists; choose another name or pass --force",
            dest.display()
        );
        return Ok(EXIT_UNUSABLE);
    }
    let path = config.store_path();
    // Opening a missing store would make an empty one, and back that up.
    if crate::service::store_is_new(&config)? {
        eprintln!(
            "error: there is no store at {} to back up (data_dir is {})",
            path.display(),
            config.data_dir.display()
        );
        return Ok(EXIT_UNUSABLE);
    }
    let store = match Store::open(&path) {
        Ok(s) => s,
        Err(StoreError::Locked(_)) => Store::open_read_only(&path)?,
        Err(e) => return Err(e.into()),
    };
    let tmp = dest.with_extension("muster-partial");
    let _ = std::fs::remove_file(&tmp);
    store.backup_to(&tmp)?;
    let copy = Store::open(&tmp)?;
    let invites = copy.read()?.invite_count()?;
    let batches = copy.read()?.batches()?.len();
    drop(copy);
    std::fs::rename(&tmp, &dest)?;
    println!(
        "Backup written to {}: {invites} invites in {batches} batches.",
        dest.display()
    );
    println!(
        "Keep {} with it: links cannot be rebuilt without that key.",
        config.data_dir.join("link.key").display()
    );
    Ok(0)
}

/// `muster restore FILE`: puts a backup in place of the store; Muster must
/// be stopped. The replaced store is kept beside it.
pub fn restore(config: Config, src: PathBuf) -> anyhow::Result<u8> {
    let live = config.store_path();
    // Opening a missing or empty file would make it an empty store, and
    // put that in place of everything.
    if std::fs::metadata(&src).map_or(true, |m| m.len() == 0) {
        eprintln!(
            "error: {} is missing or empty; name a file `muster backup` wrote",
            src.display()
        );
        return Ok(EXIT_UNUSABLE);
    }
    // Holding the live store open proves no server runs, and keeps one from starting.
    let guard = match Store::open(&live) {
        Ok(s) => Some(s),
        Err(e @ StoreError::Locked(_)) => {
            eprintln!("error: {e}");
            return Ok(EXIT_UNUSABLE);
        }
        // No server runs on a store it cannot open: replaced, as asked.
        Err(StoreError::Damaged(_)) => {
            eprintln!(
                "The store {} is damaged; it is replaced (make sure no `muster serve` still runs on it).",
                live.display()
            );
            None
        }
        Err(e) => return Err(e.into()),
    };
    let (invites, batches) = {
        let backup = Store::open_read_only(&src)
            .map_err(|e| anyhow::anyhow!("{} is not a usable backup: {e}", src.display()))?;
        let view = backup.read()?;
        (view.invite_count()?, view.batches()?.len())
    };
    let staged = live.with_extension("redb.restoring");
    std::fs::copy(&src, &staged)?;
    // Restored by root (`sudo muster restore`), the store keeps the owner
    // the service runs as, or the service could not open it.
    if crate::provision::running_as_root()
        && let Ok(meta) = std::fs::metadata(&live)
    {
        std::os::unix::fs::chown(&staged, Some(meta.uid()), Some(meta.gid()))?;
    }
    std::fs::File::open(&staged)?.sync_all()?;
    let stamp = time::OffsetDateTime::now_utc().unix_timestamp();
    let kept = live.with_extension(format!("redb.before-restore-{stamp}"));
    std::fs::rename(&live, &kept)?;
    std::fs::rename(&staged, &live)?;
    drop(guard);
    Store::open(&live)?;
    println!(
        "Restored {} ({invites} invites in {batches} batches). The previous store is kept as {}.",
        src.display(),
        kept.display()
    );
    Ok(0)
}
