//! Operations: `muster check` against the real stack, SIGTERM during a
//! batch, backup under load and restore, `/metrics` and `/readyz`, the
//! systemd unit and the static binary the container ships.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::support::app::TestApp;
use crate::support::mailstack::{self, Stack};
use crate::support::smtp_peer::Peer;
use crate::support::*;
use muster::store::Store;
use serde_json::json;

async fn stop(mut child: Child) -> std::process::ExitStatus {
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap()
}

fn cli(args: Vec<String>) -> tokio::task::JoinHandle<std::process::Output> {
    tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        run(muster(&refs), None)
    })
}

/// `muster check` with the configuration file at `path`.
async fn check_with(path: &Path) -> std::process::Output {
    cli(vec![
        "--config".into(),
        path.display().to_string(),
        "check".into(),
    ])
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_against_the_real_stack() {
    if !mailstack::available() {
        return;
    }
    let t = TestDir::new();
    let stack = Stack::start(t.path(), "team.example");
    let mut config = t.config();
    stack.configure(&mut config);
    let port = free_port();
    config.listen = format!("127.0.0.1:{port}").parse().unwrap();
    config.public_url =
        muster::config::HttpUrl::parse(&format!("http://127.0.0.1:{port}")).unwrap();
    let app = TestApp::on(config.clone()).await;
    let good = t.write_config(&config);

    let out = check_with(&good).await;
    let stdout = text(&out.stdout);
    assert_exit(&out, 0);
    for line in [
        "ok    configuration",
        "ok    data folder",
        &format!(
            "ok    SMTP relay 127.0.0.1:{} accepted the connection",
            stack.postfix.port
        ),
        "ok    Dovecot passwd-file",
        "ok    Postfix map",
        "ok    reload command `postfix -c",
        "ok    public URL",
        // Links to this machine: said, not failed (a test on one machine).
        "note  public URL http://127.0.0.1:",
        "names this machine only: the links in invites open on no other (and invites leave by relay mode)",
        "All checks passed.",
    ] {
        assert!(stdout.contains(line), "{line:?} in\n{stdout}");
    }

    // A wrong relay port, and a passwd-file Muster cannot write: each named, with its fix.
    let mut bad = config.clone();
    bad.smtp.port = free_port();
    let bad_path = t.write("bad.toml", toml::to_string(&bad).unwrap());
    std::fs::set_permissions(&stack.passwd, std::fs::Permissions::from_mode(0o440)).unwrap();
    let out = check_with(&bad_path).await;
    let stdout = text(&out.stdout);
    assert_exit(&out, 1);
    assert!(
        stdout.contains(&format!("FAIL  SMTP relay 127.0.0.1:{}", bad.smtp.port)),
        "{stdout}"
    );
    assert!(
        stdout.contains("fix: check smtp.host, smtp.port (MUSTER_SMTP_PORT)"),
        "{stdout}"
    );
    assert!(stdout.contains("is not writable by Muster"), "{stdout}");
    assert!(
        stdout.contains("fix: give Muster's user write access"),
        "{stdout}"
    );
    assert!(stdout.contains("2 check(s) failed."), "{stdout}");

    // A bad setting is reported as a failed check too.
    let broken = t.write("broken.toml", "[smtp]\nport = \"twenty-five\"\n");
    let out = check_with(&broken).await;
    assert_exit(&out, 1);
    assert!(
        text(&out.stdout).contains("FAIL  configuration"),
        "{}",
        text(&out.stdout)
    );
    app.shutdown().await;

    // Before the first start (README's VPS steps run the check then), a
    // server that is not running yet is a note, not a failure.
    std::fs::set_permissions(&stack.passwd, std::fs::Permissions::from_mode(0o640)).unwrap();
    let out = check_with(&good).await;
    let stdout = text(&out.stdout);
    assert_exit(&out, 0);
    assert!(
        stdout.contains("note  Muster is not running yet")
            && stdout.contains("then: start Muster")
            && stdout.contains("All checks passed."),
        "{stdout}"
    );
    assert!(!stdout.contains("behind_proxy"), "{stdout}");
    // A passwd-file its group cannot read locks every login out.
    std::fs::set_permissions(&stack.passwd, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = check_with(&good).await;
    let said = text(&out.stdout);
    std::fs::set_permissions(&stack.passwd, std::fs::Permissions::from_mode(0o640)).unwrap();
    assert_exit(&out, 1);
    assert!(
        said.contains("has mode 600: its group dovecot cannot read it")
            && said.contains(&format!("fix: chmod 640 {}", stack.passwd.display())),
        "{said}"
    );
    // Behind a proxy, a port the world reaches lets anyone name its own
    // client address: said, with the fix.
    let mut exposed = config.clone();
    exposed.http.behind_proxy = true;
    exposed.listen = format!("0.0.0.0:{}", free_port()).parse().unwrap();
    let exposed_path = t.write("exposed.toml", toml::to_string(&exposed).unwrap());
    let out = check_with(&exposed_path).await;
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("note  http.behind_proxy is on and Muster listens on 0.0.0.0:")
            && stdout.contains("listen on 127.0.0.1"),
        "{stdout}"
    );
}

/// SIGTERM while a batch goes out to a slow relay: the transaction in
/// flight finishes, nothing is lost, and the next start sends the rest,
/// each exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_during_a_batch_loses_nothing() {
    let peer = Peer::start(vec![]).await;
    // Slow enough that the batch is still going when SIGTERM lands, on a
    // busy machine too (80 messages left take some 4 s).
    peer.set_delay(Duration::from_millis(100));
    let t = TestDir::new();
    let mut config = t.config();
    let port = free_port();
    config.listen = format!("127.0.0.1:{port}").parse().unwrap();
    config.public_url =
        muster::config::HttpUrl::parse(&format!("http://127.0.0.1:{port}")).unwrap();
    config.domains[0].mailbox_cap = 500;
    config.smtp.host = Some("127.0.0.1".into());
    config.smtp.port = peer.port;
    config.smtp.tls = muster::config::SmtpTls::None;
    config.smtp.rate_per_minute = 0;
    config.smtp.connections = 2;
    let path = t.write_config(&config);
    let token = text(
        &cli(vec![
            "--config".into(),
            path.display().to_string(),
            "token".into(),
            "create".into(),
            "--name".into(),
            "t".into(),
        ])
        .await
        .unwrap()
        .stdout,
    )
    .trim()
    .to_string();
    let url = format!("http://127.0.0.1:{port}");

    let server = spawn_serve(&path);
    wait_healthy(&url, Duration::from_secs(30)).await;
    let items: Vec<_> = (0..100).map(|i| json!({"local_part": format!("p{i}"), "recipient_email": format!("p{i}@elsewhere.org")})).collect();
    let r = http()
        .post(format!("{url}/api/v1/mailboxes/invites:bulk"))
        .bearer_auth(&token)
        .json(&json!({"items": items}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let p = peer.clone();
    tokio::task::spawn_blocking(move || {
        wait_for("20 sent", Duration::from_secs(60), || {
            (p.received().len() >= 20).then_some(())
        })
    })
    .await
    .unwrap();
    let status = stop(server).await;
    assert!(status.success(), "a clean exit on SIGTERM: {status}");
    let before = peer.received().len();
    assert!(before < 100, "stopped mid-batch");

    let server = spawn_serve(&path);
    let p = peer.clone();
    tokio::task::spawn_blocking(move || {
        wait_for("all 100", Duration::from_secs(120), || {
            (p.received().len() >= 100).then_some(())
        })
    })
    .await
    .unwrap();
    stop(server).await;
    let received = peer.received();
    let distinct: std::collections::HashSet<&str> =
        received.iter().map(|r| r.message_id.as_str()).collect();
    assert_eq!(distinct.len(), 100);
    assert_eq!(received.len(), 100, "a graceful stop sends nothing twice");
    let store = Store::open(&config.store_path()).unwrap();
    assert_eq!(
        store
            .read()
            .unwrap()
            .due_task_count(time::OffsetDateTime::now_utc())
            .unwrap(),
        0
    );
}

/// Backups taken while the server is busy are consistent; a restore puts
/// the same invites back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backup_under_load_restore_and_compare() {
    let t = TestDir::new();
    let mut config = t.config();
    let port = free_port();
    config.listen = format!("127.0.0.1:{port}").parse().unwrap();
    config.public_url =
        muster::config::HttpUrl::parse(&format!("http://127.0.0.1:{port}")).unwrap();
    config.domains[0].mailbox_cap = 100_000;
    config.http.api_rate_per_minute = 100_000;
    let path = t.write_config(&config);
    let cfg = path.display().to_string();
    let token = text(
        &cli(vec![
            "--config".into(),
            cfg.clone(),
            "token".into(),
            "create".into(),
            "--name".into(),
            "load".into(),
        ])
        .await
        .unwrap()
        .stdout,
    )
    .trim()
    .to_string();
    let url = format!("http://127.0.0.1:{port}");
    let server = spawn_serve(&path);
    wait_healthy(&url, Duration::from_secs(30)).await;

    // Load: batches of 50 as fast as the server takes them.
    let stop_load = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (url, token, stop_load) = (url.clone(), token.clone(), stop_load.clone());
        tokio::spawn(async move {
            let client = http();
            let mut n = 0;
            while !stop_load.load(std::sync::atomic::Ordering::SeqCst) {
                let items: Vec<_> = (0..50).map(|i| json!({"local_part": format!("b{n}u{i}"), "recipient_email": format!("b{n}u{i}@elsewhere.org")})).collect();
                let r = client
                    .post(format!("{url}/api/v1/mailboxes/invites:bulk"))
                    .bearer_auth(&token)
                    .json(&json!({"items": items}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201);
                n += 1;
            }
            n
        })
    };
    let backup = t.path().join("during.redb");
    let out = cli(vec![
        "--config".into(),
        cfg.clone(),
        "backup".into(),
        backup.display().to_string(),
    ])
    .await
    .unwrap();
    assert_exit(&out, 0);
    assert!(text(&out.stdout).contains("Backup written to"));
    stop_load.store(true, std::sync::atomic::Ordering::SeqCst);
    let batches_made = load.await.unwrap();
    assert!(batches_made > 0);

    // The copy taken under load is consistent: every batch whole, counts right.
    {
        let copy = Store::open(&backup).unwrap();
        let view = copy.read().unwrap();
        for b in view.batches().unwrap() {
            assert_eq!(
                view.invites_of_batch(&b.id).unwrap().len(),
                b.invite_count,
                "batch {} is whole",
                b.id
            );
        }
        let total = view.invite_count().unwrap();
        assert_eq!(
            view.pending_count("team.example", time::OffsetDateTime::now_utc())
                .unwrap(),
            total
        );
    }

    // After the load: a backup equals the live store; restore it into a
    // fresh installation and compare.
    let final_backup = t.path().join("final.redb");
    let out = cli(vec![
        "--config".into(),
        cfg.clone(),
        "backup".into(),
        final_backup.display().to_string(),
    ])
    .await
    .unwrap();
    assert_exit(&out, 0);
    assert_eq!(stop(server).await.code(), Some(0));
    let ids = |p: &Path| -> Vec<(String, String)> {
        let s = Store::open(p).unwrap();
        let view = s.read().unwrap();
        let page = view
            .list_invites(
                &Default::default(),
                None,
                100_000,
                time::OffsetDateTime::now_utc(),
            )
            .unwrap();
        page.invites
            .iter()
            .map(|i| (i.id.clone(), i.mailbox.to_string()))
            .collect()
    };
    let live = ids(&config.store_path());
    assert_eq!(live.len(), batches_made * 50);

    let t2 = TestDir::new();
    let mut fresh = t2.config();
    fresh.domains[0].mailbox_cap = 100_000;
    let fresh_port = free_port();
    fresh.listen = format!("127.0.0.1:{fresh_port}").parse().unwrap();
    let fresh_path = t2.write_config(&fresh);
    // Refused while a server holds the store.
    let running = spawn_serve(&fresh_path);
    wait_healthy(
        &format!("http://127.0.0.1:{fresh_port}"),
        Duration::from_secs(30),
    )
    .await;
    let out = cli(vec![
        "--config".into(),
        fresh_path.display().to_string(),
        "restore".into(),
        final_backup.display().to_string(),
    ])
    .await
    .unwrap();
    assert_exit(&out, 2);
    assert!(text(&out.stderr).contains("in use by another Muster process"));
    // A token cannot come from the API without one: the web app is named.
    let out = cli(vec![
        "--config".into(),
        fresh_path.display().to_string(),
        "token".into(),
        "create".into(),
        "--name".into(),
        "hr".into(),
    ])
    .await
    .unwrap();
    assert_exit(&out, 2);
    assert!(
        text(&out.stderr).contains("make and revoke tokens on the web app's API tokens page"),
        "{}",
        text(&out.stderr)
    );
    stop(running).await;
    // The key kept with the backup replaces the one this server made.
    std::fs::copy(config.data_dir.join("link.key"), t2.data().join("link.key")).unwrap();
    // The service's own user owns the store; root restores it (sudo).
    std::os::unix::fs::chown(fresh.store_path(), Some(12_345), Some(12_346)).unwrap();
    let out = cli(vec![
        "--config".into(),
        fresh_path.display().to_string(),
        "restore".into(),
        final_backup.display().to_string(),
    ])
    .await
    .unwrap();
    assert_exit(&out, 0);
    use std::os::unix::fs::MetadataExt;
    let restored = std::fs::metadata(fresh.store_path()).unwrap();
    assert_eq!(
        (restored.uid(), restored.gid()),
        (12_345, 12_346),
        "owner kept"
    );
    assert_eq!(
        ids(&fresh.store_path()),
        live,
        "the restored store holds the same invites"
    );
}

/// A data folder whose store is gone or empty beside its link key, or
/// whose key is gone beside a store with invites, is refused in words
/// instead of starting afresh; a damaged store is named, not a crash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_folder_missing_its_store_or_its_key_is_refused() {
    let t = TestDir::new();
    let config = t.write_config(&t.config());
    let roster = t.write("team.csv", "email\njane@elsewhere.org\n");
    let c = config.display().to_string();
    let muster_says = |args: &[&str]| {
        let mut all = vec!["--config".to_string(), c.clone()];
        all.extend(args.iter().map(|a| a.to_string()));
        cli(all)
    };
    let out = muster_says(&["invite", roster.to_str().unwrap()])
        .await
        .unwrap();
    assert_exit(&out, 0);
    let store = t.data().join("muster.redb");
    let key = t.data().join("link.key");
    let kept = t.path().join("kept.redb");
    std::fs::rename(&store, &kept).unwrap();
    for (what, args) in [
        ("serve", vec!["serve"]),
        ("list", vec!["invites", "list"]),
        ("backup", vec!["backup", "b.redb"]),
    ] {
        let out = muster_says(&args).await.unwrap();
        assert_ne!(out.status.code(), Some(0), "{what}");
        let said = text(&out.stderr);
        assert!(
            said.contains("no store at") || said.contains("is missing or empty, but"),
            "{what}: {said}"
        );
        assert!(!store.exists(), "{what} made a new store");
    }
    // A mistyped backup is refused, not restored as an empty store.
    let out = muster_says(&["restore", "no-such-backup.redb"])
        .await
        .unwrap();
    assert_exit(&out, 2);
    assert!(text(&out.stderr).contains("no-such-backup.redb is missing or empty"));
    assert!(!store.exists() && !t.path().join("no-such-backup.redb").exists());
    // An empty file is no store either.
    std::fs::write(&store, b"").unwrap();
    let out = muster_says(&["serve"]).await.unwrap();
    assert!(
        text(&out.stderr).contains("muster restore FILE"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(std::fs::metadata(&store).unwrap().len(), 0);
    // Back in place, but the key is gone: refused, and no new key made.
    std::fs::rename(&kept, &store).unwrap();
    std::fs::rename(&key, t.path().join("kept.key")).unwrap();
    let out = muster_says(&["serve"]).await.unwrap();
    let said = text(&out.stderr);
    assert!(
        said.contains("link.key is missing, but the store"),
        "{said}"
    );
    assert!(
        said.contains("(invites: 1, admins: 0, webhook endpoints: 0)"),
        "{said}"
    );
    assert!(!key.exists());
    // A damaged store is named, with what to do.
    std::fs::rename(t.path().join("kept.key"), &key).unwrap();
    let mut bytes = std::fs::read(&store).unwrap();
    for b in &mut bytes[4096..] {
        *b = 0x5a;
    }
    std::fs::write(&store, &bytes).unwrap();
    let out = muster_says(&["invites", "list"]).await.unwrap();
    let said = text(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert_ne!(out.status.code(), Some(101), "a panic: {said}");
    assert!(said.contains("muster.redb"), "{said}");
    assert!(!said.contains("panicked"), "{said}");
}

fn parse_metrics(text: &str) -> std::collections::HashMap<String, f64> {
    let mut out = std::collections::HashMap::new();
    let mut typed = std::collections::HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let name = parts.next().unwrap();
            let kind = parts.next().unwrap();
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            typed.insert(name.to_string());
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (key, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad sample line {line:?}"));
        let name = key.split('{').next().unwrap();
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "bad metric name in {line:?}"
        );
        let family = name
            .trim_end_matches("_bucket")
            .trim_end_matches("_sum")
            .trim_end_matches("_count");
        assert!(
            typed.contains(name) || typed.contains(family),
            "{name} has no TYPE line before it"
        );
        if key.contains('{') {
            assert!(
                key.ends_with('}') && key.contains("=\""),
                "bad labels in {line:?}"
            );
        }
        let v: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        out.insert(key.to_string(), v);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_as_prometheus_text_and_move() {
    let t = TestDir::new();
    let app = TestApp::on(t.config()).await;
    let client = http();
    let get = |p: &'static str| {
        let client = client.clone();
        let url = app.url();
        async move { client.get(format!("{url}{p}")).send().await.unwrap() }
    };
    let r = get("/metrics").await;
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let before = parse_metrics(&r.text().await.unwrap());
    assert_eq!(before["muster_sends_total"], 0.0);
    assert_eq!(before["muster_queue_depth"], 0.0);

    let created = app.muster.create_batch(invite_batch(3, "m")).unwrap();
    let sent = wait_for_async(
        "three sends in the metrics",
        Duration::from_secs(20),
        || async {
            let m = parse_metrics(&get("/metrics").await.text().await.unwrap());
            (m["muster_sends_total"] == 3.0).then_some(m)
        },
    )
    .await;
    assert_eq!(sent["muster_invites{link_state=\"live\"}"], 3.0);
    assert_eq!(sent["muster_invite_deliveries{state=\"in_outbox\"}"], 3.0);
    assert_eq!(sent["muster_invite_deliveries{state=\"sent\"}"], 0.0);
    assert_eq!(sent["muster_invites_created_total"], 3.0);
    assert_eq!(sent["muster_delivery_latency_seconds_count"], 3.0);
    assert_eq!(
        sent["muster_delivery_latency_seconds_bucket{le=\"+Inf\"}"],
        3.0
    );
    assert_eq!(sent["muster_worker_up"], 1.0);

    // A redemption moves its counter and the states.
    let token = app.muster.invite_token(&created.invites[0]).unwrap();
    let (status, _) = submit_password(
        &client,
        &format!("{}/invite/{}", app.url(), token.as_str()),
        PASSWORD,
        PASSWORD,
    )
    .await;
    assert_eq!(status, 200);
    let after = parse_metrics(&get("/metrics").await.text().await.unwrap());
    assert_eq!(after["muster_redemptions_total"], 1.0);
    assert_eq!(after["muster_invites{link_state=\"redeemed\"}"], 1.0);
    assert_eq!(after["muster_invites{link_state=\"live\"}"], 2.0);

    let ready = get("/readyz").await;
    assert_eq!(ready.status(), 200);
    assert_eq!(ready.text().await.unwrap(), "ready\n");
    app.shutdown().await;
}

/// With `http.metrics_token` set, a scraper must send it; nothing else
/// reads the metrics, and the other operations endpoints stay open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_answer_only_the_token_when_one_is_set() {
    const TOKEN: &str = "4f1c9a0e7b2d4c8e9f3a6b5d";
    let app = TestApp::spawn(|c| {
        c.http.metrics_token = Some(muster::config::Secret::new(TOKEN));
    })
    .await;
    let client = http();
    let url = format!("{}/metrics", app.url());
    for sent in [None, Some("Bearer wrong-token-of-some-length"), Some(TOKEN)] {
        let mut req = client.get(&url);
        if let Some(h) = sent {
            req = req.header("authorization", h);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 401, "{sent:?}");
        assert_eq!(r.headers()["www-authenticate"], "Bearer realm=\"metrics\"");
        assert!(r.text().await.unwrap().contains("http.metrics_token"));
    }
    let r = client.get(&url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let m = parse_metrics(&r.text().await.unwrap());
    assert_eq!(m["muster_worker_up"], 1.0);
    let ready = client
        .get(format!("{}/readyz", app.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    app.shutdown().await;
}

#[test]
fn the_systemd_unit_verifies() {
    if !require(
        "systemd-analyze (apt package systemd)",
        have_command("systemd-analyze"),
    ) {
        return;
    }
    let t = TestDir::new();
    let unit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/muster.service"),
    )
    .unwrap();
    for must in [
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "SupplementaryGroups=dovecot",
        "ReadWritePaths=",
    ] {
        assert!(unit.contains(must), "{must}");
    }
    // Verify it with the binary where the unit expects one.
    let unit = unit.replace("/usr/local/bin/muster", BIN);
    let path = t.write("muster.service", unit);
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr).trim(), "", "no warnings");
}

fn static_binary() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/x86_64-unknown-linux-musl/static-check/muster")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_static_binary_builds_and_runs() {
    if !require(
        "the static musl build (scripts/test builds it: cargo build --profile static-check --target x86_64-unknown-linux-musl)",
        static_binary().exists(),
    ) {
        return;
    }
    let ldd = std::process::Command::new("ldd")
        .arg(static_binary())
        .output()
        .unwrap();
    let said = format!("{}{}", text(&ldd.stdout), text(&ldd.stderr));
    assert!(
        said.contains("statically linked") || said.contains("not a dynamic executable"),
        "{said}"
    );
    let out = std::process::Command::new(static_binary())
        .arg("--version")
        .output()
        .unwrap();
    assert!(text(&out.stdout).starts_with("muster "));
    // As the container runs it: configured by environment only, then its own health check.
    let t = TestDir::new();
    let port = free_port();
    let env = [
        ("MUSTER_DATA_DIR", t.data().display().to_string()),
        ("MUSTER_LISTEN", format!("0.0.0.0:{port}")),
        ("MUSTER_PUBLIC_URL", format!("http://127.0.0.1:{port}")),
    ];
    let mut server = std::process::Command::new(static_binary())
        .arg("serve")
        .envs(env.clone())
        .current_dir(t.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_healthy(&format!("http://127.0.0.1:{port}"), Duration::from_secs(30)).await;
    let health = std::process::Command::new(static_binary())
        .arg("health")
        .envs(env)
        .current_dir(t.path())
        .output()
        .unwrap();
    assert!(health.status.success(), "{}", text(&health.stdout));
    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    assert!(server.wait().unwrap().success());
}

/// The passwd-file Muster makes in its data folder is given to the
/// dovecot group, so Dovecot can read it: `muster check` says so before
/// the first mailbox and passes after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_passwd_file_muster_makes_is_dovecots_to_read() {
    if !mailstack::available() {
        return;
    }
    let gid = muster::provision::dovecot_gid().expect("Dovecot's package makes its group");
    let t = TestDir::new();
    let config = t.config();
    let path = t.write_config(&config);
    let check = || async {
        let out = check_with(&path).await;
        text(&out.stdout)
            .lines()
            .find(|l| l.contains("Dovecot passwd-file"))
            .unwrap_or_default()
            .to_string()
    };
    let before = check().await;
    assert!(
        before.starts_with("ok    Dovecot passwd-file")
            && before.ends_with("will be created with the first mailbox (mode 640, group dovecot)"),
        "{before}"
    );
    let app = TestApp::on(config).await;
    let batch = app.muster.create_batch(invite_batch(1, "first")).unwrap();
    let token = app.muster.invite_token(&batch.invites[0]).unwrap();
    app.muster
        .redeem(token.as_str(), PASSWORD, PASSWORD)
        .expect("the first mailbox is made");
    app.shutdown().await;
    let passwd = t.data().join("dovecot/passwd");
    let meta = std::fs::metadata(&passwd).unwrap();
    assert_eq!(
        (meta.gid(), meta.permissions().mode() & 0o777),
        (gid, 0o640)
    );
    let after = check().await;
    assert!(
        after.starts_with("ok    Dovecot passwd-file")
            && after.contains("(group dovecot, mode 640)"),
        "{after}"
    );
}

/// A binary on its own documents its settings: a broken setting names the
/// command that prints them, and that command works with it broken.
#[test]
fn the_binary_prints_its_example_configuration_even_with_a_broken_one() {
    let out = run(
        muster(&["check"]).env("MUSTER_SMTP_PORT", "twenty-five"),
        None,
    );
    assert_exit(&out, 1);
    assert!(
        text(&out.stdout).contains("`muster example-config` documents every setting"),
        "{}",
        text(&out.stdout)
    );
    let out = run(
        muster(&["example-config"]).env("MUSTER_SMTP_PORT", "twenty-five"),
        None,
    );
    assert_exit(&out, 0);
    let example = text(&out.stdout);
    assert_eq!(
        example,
        std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/config/muster.example.toml"
        ))
        .unwrap()
    );
}
