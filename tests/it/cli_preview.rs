//! `muster preview`, `muster invites list` and `muster serve` as a user
//! runs them.

use std::time::Duration;

use crate::support::*;

fn setup() -> (TestDir, std::path::PathBuf) {
    let t = TestDir::new();
    let config = t.config();
    let path = t.write_config(&config);
    (t, path)
}

#[test]
fn preview_prints_rows_flags_and_capacity() {
    let (t, config) = setup();
    // A mailbox that exists on the host before Muster ever ran.
    std::fs::create_dir_all(t.data().join("dovecot")).unwrap();
    t.write(
        "data/dovecot/passwd",
        "taken@team.example:{PLAIN}x:5000:5000::/h::userdb_quota_rule=*:storage=300M\n",
    );
    let csv = t.write(
        "team.csv",
        "email,storage_mb\nJane.Doe@elsewhere.org,200\nnot-an-address,\ntaken@else.org,\nbig@else.org,900\n\"\x1b]0;PWNED\x07\x1b[2Jx@else.org\",\n",
    );
    let out = run(
        muster(&[
            "--config",
            config.to_str().unwrap(),
            "preview",
            "--domain",
            "team.example",
        ])
        .arg(&csv),
        None,
    );
    let stdout = text(&out.stdout);
    assert_exit(&out, 1);
    assert!(stdout.contains("5 rows, 1 clean, 4 flagged"), "{stdout}");
    // A cell's escape codes are shown, not sent to the terminal.
    assert!(
        !stdout.contains('\x1b') && !stdout.contains('\x07'),
        "{stdout:?}"
    );
    assert!(stdout.contains("\\u{1b}]0;PWNED"), "{stdout}");
    assert!(stdout.contains("jane.doe@team.example"), "{stdout}");
    assert!(stdout.contains("invalid_recipient_email"), "{stdout}");
    assert!(
        stdout.contains("mailbox_exists: the mailbox taken@team.example already exists"),
        "{stdout}"
    );
    // 1000 MB pool, 300 MB held by the existing mailbox: 200 fits, 900 does
    // not; the capacity lines count the row that would go.
    assert!(stdout.contains("allocation_over_pool"), "{stdout}");
    assert!(
        stdout.contains("cap 10, existing 1, pending 0, this batch 1, left after 8"),
        "{stdout}"
    );
    assert!(
        stdout.contains("this batch 200 MB, left after 500 MB"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Storage pool: 1000 MB, allocated 300 MB"),
        "{stdout}"
    );

    let out = run(
        muster(&[
            "--config",
            config.to_str().unwrap(),
            "preview",
            "--json",
            "-",
        ]),
        Some(b"jane@elsewhere.org\nbob@elsewhere.org\n"),
    );
    assert_exit(&out, 0);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["clean_rows"], 2);
    assert_eq!(json["rows"][1]["mailbox"], "bob@team.example");
    assert_eq!(json["capacity"]["left_after"], 7);
}

#[test]
fn unusable_input_is_refused_with_the_reason() {
    let (t, config) = setup();
    let cfg = config.to_str().unwrap();
    let rows: String = (0..501).map(|i| format!("u{i}@else.org\n")).collect();
    let big = t.write("big.txt", rows);
    let out = run(muster(&["--config", cfg, "preview"]).arg(&big), None);
    assert_exit(&out, 2);
    assert!(
        text(&out.stderr).contains("501 rows; one batch holds at most 500"),
        "{}",
        text(&out.stderr)
    );

    let header = t.write("header.csv", "email,quota\n");
    let out = run(muster(&["--config", cfg, "preview"]).arg(&header), None);
    assert_exit(&out, 2);
    assert!(text(&out.stderr).contains("header row (line 1) but no rows"));

    let out = run(
        muster(&["--config", cfg, "preview", "--domain", "other.example", "-"]),
        Some(b"a@b.org\n"),
    );
    assert_exit(&out, 2);
    assert!(
        text(&out.stderr).contains("not a domain Muster hosts"),
        "{}",
        text(&out.stderr)
    );

    // Over the upload limit: refused without reading it all.
    let mut config = t.config();
    config.invites.upload_limit_bytes = 1024;
    let small = t.write_config(&config);
    let huge = t.write("huge.csv", "a@else.org\n".repeat(200));
    let out = run(
        muster(&["--config", small.to_str().unwrap(), "preview"]).arg(&huge),
        None,
    );
    assert_exit(&out, 2);
    assert!(
        text(&out.stderr).contains("larger than 1024 bytes"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn bad_configuration_names_the_setting() {
    let t = TestDir::new();
    let cfg = t.write("bad.toml", "[invites]\nmax_expiry = \"40d\"\n");
    // More input than a pipe holds: muster stops at the configuration, before
    // reading any of it, and the test's writer meets a closed pipe.
    let out = run(
        muster(&["--config", cfg.to_str().unwrap(), "preview", "-"]),
        Some("a@b.org\n".repeat(32 * 1024).as_bytes()),
    );
    assert_exit(&out, 2);
    let err = text(&out.stderr);
    assert!(
        err.contains("invites.max_expiry") && err.contains("MUSTER_INVITES_MAX_EXPIRY"),
        "{err}"
    );

    let out = run(
        muster(&["--config", cfg.to_str().unwrap(), "preview", "-"])
            .env("MUSTER_INVITES_MAX_EXPIRY", "7d"),
        Some(b"a@b.org\n"),
    );
    assert_ne!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

#[tokio::test]
async fn serve_answers_healthz_and_a_second_server_fails_clearly() {
    let t = TestDir::new();
    let mut config = t.config();
    let port = free_port();
    config.listen = format!("127.0.0.1:{port}").parse().unwrap();
    let path = t.write_config(&config);
    let mut server = spawn_serve(&path);
    let url = format!("http://127.0.0.1:{port}");
    wait_healthy(&url, Duration::from_secs(20)).await;
    let body = http()
        .get(format!("{url}/healthz"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "ok\n");

    // Same data folder, another port: the store is in use, said at once.
    config.listen = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let second = t.write("second.toml", toml::to_string(&config).unwrap());
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::task::spawn_blocking(move || {
            run(
                muster(&["--config", second.to_str().unwrap(), "serve"]),
                None,
            )
        }),
    )
    .await
    .expect("the second server does not hang")
    .unwrap();
    assert_exit(&out, 2);
    assert!(
        text(&out.stderr).contains("in use by another Muster process"),
        "{}",
        text(&out.stderr)
    );

    // SIGTERM stops the first one cleanly.
    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    let status = wait_for("server exit", Duration::from_secs(20), || {
        server.try_wait().unwrap()
    });
    assert!(status.success());
}

#[tokio::test]
async fn the_first_start_prints_a_setup_link_and_keeps_it_out_of_the_log() {
    let t = TestDir::new();
    let mut config = t.config();
    let port = free_port();
    config.listen = format!("127.0.0.1:{port}").parse().unwrap();
    config.log.format = muster::config::LogFormat::Json;
    let path = t.write_config(&config);
    let server = muster(&["--config", path.to_str().unwrap(), "serve"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_healthy(&format!("http://127.0.0.1:{port}"), Duration::from_secs(20)).await;
    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    let out = tokio::task::spawn_blocking(move || server.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = text(&out.stderr);
    let links: Vec<&str> = stderr
        .split_whitespace()
        .filter(|w| w.contains("/setup#"))
        .collect();
    assert_eq!(links.len(), 1, "the link is printed once: {stderr}");
    let token = links[0].rsplit('#').next().unwrap();
    assert!(token.len() >= 40, "{token}");
    let records: Vec<&str> = stderr.lines().filter(|l| l.starts_with('{')).collect();
    assert!(
        records.iter().any(|l| l.contains("no admin account yet")),
        "{stderr}"
    );
    assert!(
        records.iter().all(|l| !l.contains(token)),
        "a log record carries the setup token: {stderr}"
    );
}

/// `--batch` lists one batch's invites only: a revoke of "this batch"
/// built on it never reaches another.
#[test]
fn invites_list_filters_by_batch() {
    let (t, path) = setup();
    let (first, second) = {
        let muster = muster::service::Muster::open(
            std::sync::Arc::new(t.config()),
            std::sync::Arc::new(muster::service::SystemClock),
        )
        .unwrap();
        (
            muster.create_batch(invite_batch(2, "first")).unwrap(),
            muster.create_batch(invite_batch(3, "second")).unwrap(),
        )
    };
    let list = |batch: &str| {
        let out = run(
            muster(&[
                "--config",
                path.to_str().unwrap(),
                "invites",
                "list",
                "--batch",
                batch,
                "--json",
            ]),
            None,
        );
        assert_exit(&out, 0);
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let listed = list(&second.batch.id);
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 3);
    assert!(
        listed
            .iter()
            .all(|i| i["batch_id"] == second.batch.id.as_str())
    );
    assert_eq!(list(&first.batch.id).as_array().unwrap().len(), 2);
    assert!(list("nonsense").as_array().unwrap().is_empty());
}
