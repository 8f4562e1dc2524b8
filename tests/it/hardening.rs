//! Hardening from outside: a crowd of sign-ins from many addresses and the
//! bounded hashing pool, reserved mailbox names on every surface, "forgot
//! password" doing the same work for every address, slow and crowding
//! clients, an office redeeming behind one address, a deleted passwd-file,
//! and honest answers to odd requests (body limits, duplicate JSON keys,
//! deep nesting, the Bearer scheme's case).

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::time::Duration;

use crate::support::app::TestApp;
use crate::support::*;
use muster::domain::roster::InviteRow;
use muster::service::BatchRequest;
use muster::store::Actor;
use serde_json::{Value, json};

const ADMIN: &str = "admin@team.example";

/// A client whose connections come from `ip` (any 127.0.0.0/8 address).
fn client_from(ip: Ipv4Addr) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .local_address(IpAddr::V4(ip))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crowd_of_sign_ins_is_hashed_a_few_at_a_time() {
    let app = TestApp::spawn(|c| {
        c.hashing.workers = 2;
        c.hashing.queue = 8;
    })
    .await;
    app.muster
        .add_admin(ADMIN, PASSWORD, &Actor::cli())
        .unwrap();
    // 100 sign-ins at once from 100 addresses, each for an unknown account
    // (so neither the per-address nor the per-account limit stops them).
    let mut tasks = Vec::new();
    for i in 0..100u8 {
        let client = client_from(Ipv4Addr::new(127, 0, 1, i + 2));
        let url = format!("{}/api/v1/session", app.url());
        tasks.push(tokio::spawn(async move {
            let r = client
                .post(url)
                .json(&json!({"email": format!("nobody{i}@team.example"), "password": "wrong-wrong-wrong"}))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let retry = r.headers().get("retry-after").cloned();
            let body: Value = r.json().await.unwrap();
            (status, retry, body)
        }));
    }
    let (mut refused, mut wrong) = (0, 0);
    for t in tasks {
        let (status, retry, body) = t.await.unwrap();
        match status {
            401 => {
                assert_eq!(body["code"], "wrong_credentials");
                wrong += 1;
            }
            503 => {
                assert_eq!(body["code"], "busy", "{body}");
                assert!(retry.is_some(), "a 503 says when to come back");
                refused += 1;
            }
            other => panic!("{other}: {body}"),
        }
    }
    let stats = app.muster.hasher.stats();
    assert!(
        stats.peak_running <= 2,
        "at most the pool's workers hash at once: {stats:?}"
    );
    assert!(refused > 0 && wrong > 0, "{refused} refused, {wrong} wrong");
    assert_eq!(stats.refused, refused as u64);
    // The metrics show the pool.
    let metrics = http()
        .get(format!("{}/metrics", app.url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains(&format!("muster_password_hashes_refused_total {refused}")));
    // Afterwards a real sign-in goes through at once.
    let r = client_from(Ipv4Addr::new(127, 0, 2, 1))
        .post(format!("{}/api/v1/session", app.url()))
        .json(&json!({"email": ADMIN, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserved_names_are_flagged_on_every_surface() {
    let app = TestApp::spawn(|c| {
        c.invites.allow_reserved_local_parts = vec!["abuse".into()];
        c.smtp.from_address =
            Some(muster::domain::address::RecipientEmail::parse("invites@team.example").unwrap());
    })
    .await;
    let token = app.token.clone();
    let client = http();
    let api = |path: &str, body: Value| {
        let (client, url, token) = (
            client.clone(),
            format!("{}/api/v1{path}", app.url()),
            token.clone(),
        );
        async move {
            let r = client
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let names = [
        "postmaster",
        "admin",
        "hostmaster",
        "root",
        "no-reply",
        "security",
        "invites",
    ];
    let items: Vec<Value> = names
        .iter()
        .map(|n| json!({"local_part": n, "recipient_email": format!("{n}@elsewhere.org")}))
        .chain([json!({"local_part": "abuse", "recipient_email": "abuse@elsewhere.org"})])
        .collect();
    // The REST API refuses the call, naming each item.
    let (status, body) = api("/mailboxes/invites:bulk", json!({"items": items})).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["code"], "flagged_items");
    let flagged: Vec<u64> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["code"] == "reserved_local_part")
        .map(|e| e["index"].as_u64().unwrap())
        .collect();
    assert_eq!(
        flagged,
        (0..names.len() as u64).collect::<Vec<_>>(),
        "{body}"
    );
    assert!(body.to_string().contains("sender address"));
    // The preview says the same; "abuse" is allowed by the configuration.
    let (status, preview) = api("/previews/invites", json!({"rows": items})).await;
    assert_eq!(status, 200, "{preview}");
    assert_eq!(preview["flagged_rows"], names.len());
    assert_eq!(preview["clean_rows"], 1);
    // Bulk creation too.
    let (status, body) = api(
        "/mailboxes:bulk",
        json!({"items": [{"local_part": "webmaster", "password": "generate"}]}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["errors"][0]["code"], "reserved_local_part");
    // The CLI preview.
    let config = app.dir.write_config(&app.muster.config);
    let roster = app.dir.write(
        "roster.txt",
        "mailer-daemon@elsewhere.org\njane@elsewhere.org\n",
    );
    let out = run(
        muster(&[
            "--config",
            config.to_str().unwrap(),
            "preview",
            roster.to_str().unwrap(),
        ]),
        None,
    );
    assert_exit(&out, 1);
    assert!(
        text(&out.stdout).contains("reserved_local_part"),
        "{}",
        text(&out.stdout)
    );
    // MCP, through the official SDK.
    if crate::support::mcp_client::have_sdk() {
        let r = crate::support::mcp_client::call(
            &format!("{}/mcp", app.url()),
            &token,
            "create_invites_bulk",
            &json!({"items": [{"local_part": "postmaster", "recipient_email": "pm@elsewhere.org"}]}),
        )
        .await;
        assert_eq!(r["is_error"], true, "{r}");
        assert_eq!(r["structured"]["code"], "flagged_items");
        assert_eq!(r["structured"]["errors"][0]["code"], "reserved_local_part");
    }
    assert!(app.muster.view().unwrap().batches().unwrap().is_empty());
    app.shutdown().await;
}

/// "Forgot password" writes one request record and answers, whatever the
/// address; the lookup and the email come after. Asserted on what is done,
/// not on time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgot_password_does_the_same_work_for_any_address() {
    let t = TestDir::new();
    let config = std::sync::Arc::new(t.config());
    let muster =
        muster::service::Muster::open(config, std::sync::Arc::new(muster::service::SystemClock))
            .unwrap();
    muster.add_admin(ADMIN, PASSWORD, &Actor::cli()).unwrap();
    let snapshot = |m: &muster::service::Muster| {
        let v = m.view().unwrap();
        (
            v.reset_requests_waiting().unwrap(),
            v.due_tasks(
                time::OffsetDateTime::now_utc() + time::Duration::days(1),
                100,
                &|_| false,
            )
            .unwrap()
            .len(),
        )
    };
    let before = snapshot(&muster);
    muster.request_password_reset(ADMIN).unwrap();
    let known = snapshot(&muster);
    muster
        .request_password_reset("nobody@team.example")
        .unwrap();
    let unknown = snapshot(&muster);
    // The same: one waiting request each, no mail queued by either.
    assert_eq!(known, (before.0 + 1, before.1));
    assert_eq!(unknown, (known.0 + 1, known.1));
    // The work behind them: one email, for the real account only.
    assert_eq!(muster.process_reset_requests().unwrap(), 2);
    assert_eq!(snapshot(&muster), (0, 1));
    // Asked again at once: throttled, no second email.
    muster.request_password_reset(ADMIN).unwrap();
    muster.process_reset_requests().unwrap();
    assert_eq!(snapshot(&muster), (0, 1));
    let audit = muster.view().unwrap().audit(None, 50).unwrap();
    for action in [
        "admin.reset_requested",
        "admin.reset_unknown",
        "admin.reset_throttled",
    ] {
        assert!(audit.iter().any(|e| e.action == action), "{action}");
    }

    // Over HTTP both answers are identical.
    drop(muster);
    let app = TestApp::on(t.config()).await;
    let mut answers = Vec::new();
    for email in [ADMIN, "nobody@team.example"] {
        let r = http()
            .post(format!("{}/api/v1/password-reset", app.url()))
            .json(&json!({"email": email}))
            .send()
            .await
            .unwrap();
        answers.push((r.status().as_u16(), r.text().await.unwrap()));
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0].0, 202);
    app.shutdown().await;
}

/// The reset links in the outbox, oldest first.
fn reset_links(app: &TestApp, n: usize) -> Vec<String> {
    wait_for("the reset emails", Duration::from_secs(20), || {
        let mut mails: Vec<(std::time::SystemTime, String)> =
            std::fs::read_dir(app.dir.data().join("outbox"))
                .ok()?
                .filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with("reset-"))
                .map(|e| {
                    let mail = std::fs::read(e.path()).unwrap();
                    let msg = mail_parser::MessageParser::default().parse(&mail).unwrap();
                    let text = msg.body_text(0).unwrap().to_string();
                    let link = text
                        .split_whitespace()
                        .find(|w| w.contains("/admin/reset#"))
                        .unwrap()
                        .to_string();
                    (e.metadata().unwrap().modified().unwrap(), link)
                })
                .collect();
        mails.sort();
        (mails.len() == n).then(|| mails.into_iter().map(|(_, l)| l).collect())
    })
}

async fn forgot(url: &str) {
    let r = http()
        .post(format!("{url}/api/v1/password-reset"))
        .json(&json!({"email": ADMIN}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
}

/// Sets a new password with the token of `link`: the status and the answer.
async fn confirm(url: &str, link: String, password: &str) -> (u16, String) {
    let token = link.rsplit('#').next().unwrap();
    let r = http()
        .post(format!("{url}/api/v1/password-reset/confirm"))
        .json(&json!({"token": token, "password": password}))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// One live reset link per admin: a new one retires the one before, using
/// one retires any other, and a password set by the CLI retires them too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_newest_admin_reset_link_works() {
    let clock = std::sync::Arc::new(muster::service::ManualClock::new(
        time::OffsetDateTime::now_utc(),
    ));
    let app = TestApp::spawn_with_clock(|_| {}, clock.clone()).await;
    app.muster
        .add_admin(ADMIN, PASSWORD, &Actor::cli())
        .unwrap();
    let url = app.url();
    forgot(&url).await;
    reset_links(&app, 1);
    // Past the throttle, asked again: a second email.
    clock.advance(time::Duration::minutes(6));
    forgot(&url).await;
    let links = reset_links(&app, 2);
    assert_ne!(links[0], links[1]);
    let (status, body) = confirm(&url, links[0].clone(), "older-link-lantern-31").await;
    assert!(
        status >= 400,
        "the older link still worked: {status} {body}"
    );
    assert!(body.contains("not valid"), "{body}");
    let (status, body) = confirm(&url, links[1].clone(), "newer-link-lantern-32").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        app.muster
            .sign_in(ADMIN, "newer-link-lantern-32", "127.0.0.1", None)
            .is_ok()
    );

    // A password set by the CLI retires the link waiting.
    clock.advance(time::Duration::minutes(6));
    forgot(&url).await;
    let links = reset_links(&app, 3);
    app.muster
        .set_admin_password(ADMIN, "set-by-the-cli-lantern-33", &Actor::cli())
        .unwrap();
    let (status, body) = confirm(&url, links[2].clone(), "after-the-cli-lantern-34").await;
    assert!(
        status >= 400,
        "the link outlived the CLI's password: {status} {body}"
    );
    assert!(
        app.muster
            .sign_in(ADMIN, "set-by-the-cli-lantern-33", "127.0.0.1", None)
            .is_ok()
    );
    let audit = app.muster.view().unwrap().audit(None, 50).unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.action == "admin.reset_requested" && e.detail.contains("earlier one"))
    );
    app.shutdown().await;
}

/// Reads from `s` until the peer closes; true when it closed.
fn closed_by_peer(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return false,
            Err(_) => return true,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickling_request_head_is_cut_at_its_deadline() {
    let app = TestApp::spawn(|c| {
        c.http.header_timeout_secs = 2;
        c.http.idle_timeout_secs = 60;
    })
    .await;
    let token = app.token.clone();
    let addr = app.addr;
    // One byte every 300 ms: the idle timer (60 s) never fires, the head
    // deadline (2 s) does.
    let slow = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
        for b in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
            if s.write_all(&[*b]).is_err() || closed_by_peer(&mut s) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        false
    });
    // Meanwhile a normal request is answered.
    let r = http()
        .get(format!("{}/healthz", app.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        slow.await.unwrap(),
        "the trickling connection was never closed"
    );
    // A body sent slowly after "100 Continue" is not a head: it is not cut.
    let body = br#"{"format":"lines","text":"jane@elsewhere.org\n"}"#;
    let head = format!(
        "POST /api/v1/previews/invites HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let upload = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(head.as_bytes()).unwrap();
        let mut interim = [0u8; 25];
        s.read_exact(&mut interim).unwrap();
        assert!(
            interim.starts_with(b"HTTP/1.1 100"),
            "{}",
            String::from_utf8_lossy(&interim)
        );
        for chunk in body.chunks(8) {
            std::thread::sleep(Duration::from_millis(500));
            s.write_all(chunk).unwrap();
        }
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        answer
    });
    let answer = upload.await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // A head that completes in time is served as usual.
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    app.shutdown().await;
}

/// Sends `head` and reads the answer (the server answers before any body).
fn answer_to_head(addr: std::net::SocketAddr, head: String) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&answer).into_owned()
}

/// Memory a stranger can hold: none of a route that needs a caller (the
/// caller is checked before a byte of the body is read), 64 KiB of any
/// other, and a known caller's body only while it keeps arriving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_are_read_only_for_known_callers_and_only_so_long() {
    let app = TestApp::spawn(|c| {
        c.http.body_timeout_secs = 2;
        c.http.idle_timeout_secs = 60;
    })
    .await;
    let (token, addr) = (app.token.clone(), app.addr);
    let roster = |auth: &str| {
        format!(
            "POST /api/v1/previews/invites HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: 2000000\r\n\r\n"
        )
    };
    // No caller, or a wrong token: refused on the head alone.
    let stranger = roster("");
    let answer = tokio::task::spawn_blocking(move || answer_to_head(addr, stranger))
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(
        answer.to_lowercase().contains("connection: close"),
        "{answer}"
    );
    let wrong = roster("Authorization: Bearer mst_not-a-token\r\n");
    let answer = tokio::task::spawn_blocking(move || answer_to_head(addr, wrong))
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    // A known caller's body that stops arriving: 408 at the deadline.
    let trickle = format!(
        "POST /api/v1/previews/invites HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"format\":"
    );
    let answer = tokio::task::spawn_blocking(move || answer_to_head(addr, trickle))
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("http.body_timeout_secs"), "{answer}");
    // Sign-in needs no caller, so it takes a small body only.
    let big = "x".repeat(100 * 1024);
    let r = http()
        .post(format!("{}/api/v1/session", app.url()))
        .header("content-type", "application/json")
        .body(format!(r#"{{"email":"a@b.org","password":"{big}"}}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    // A known caller's whole body is served as before.
    let r = http()
        .post(format!("{}/api/v1/previews/invites", app.url()))
        .bearer_auth(&token)
        .json(&serde_json::json!({"format": "lines", "text": "jane@elsewhere.org\n"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_get_a_share_and_make_room() {
    let app = TestApp::spawn(|c| {
        c.http.max_connections = 40;
        c.http.max_connections_per_client = 10;
    })
    .await;
    let port = app.addr.port();
    let still_open = |conns: &[TcpStream]| {
        conns
            .iter()
            .filter(|s| {
                let mut s = s.try_clone().unwrap();
                s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
                !closed_by_peer(&mut s)
            })
            .count()
    };
    // One address opens 30 idle connections: only its share stays open.
    let hog: Vec<TcpStream> = (0..30)
        .filter_map(|_| connect_from(Ipv4Addr::new(127, 0, 3, 1), port))
        .collect();
    wait_for("the share to be applied", Duration::from_secs(10), || {
        (still_open(&hog) == 10).then_some(())
    });
    // Many addresses fill the server with idle connections; the ones idle
    // longest make room, and a person's request is still answered.
    let crowd: Vec<TcpStream> = (0..60u8)
        .filter_map(|i| connect_from(Ipv4Addr::new(127, 0, 4, i + 1), port))
        .collect();
    let r = client_from(Ipv4Addr::new(127, 0, 5, 1))
        .get(format!("{}/healthz", app.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let evicted = app.http.connections.stats().evicted;
    assert!(evicted >= 30, "{evicted} evicted");
    // An evicted connection closes when its task next runs.
    wait_for(
        "the hog's idle connections to make room",
        Duration::from_secs(10),
        || (still_open(&hog) < 10).then_some(()),
    );
    drop((hog, crowd));
    app.shutdown().await;
}

/// Trickled request heads from many addresses fill every place: the head
/// that has been arriving longest makes room, and a person still gets in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickled_heads_from_many_addresses_do_not_lock_people_out() {
    let app = TestApp::spawn(|c| {
        c.http.max_connections = 40;
        c.http.max_connections_per_client = 10;
        // Longer than the test: only the making of room can let anyone in.
        c.http.header_timeout_secs = 120;
        c.http.idle_timeout_secs = 120;
    })
    .await;
    let port = app.addr.port();
    // Eight addresses, five connections each, every one a head begun.
    let crowd: Vec<TcpStream> = (0..40u8)
        .filter_map(|i| {
            let mut s = connect_from(Ipv4Addr::new(127, 0, 7, i / 5 + 1), port)?;
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").ok()?;
            Some(s)
        })
        .collect();
    assert_eq!(crowd.len(), 40);
    wait_for(
        "the crowd to hold every place",
        Duration::from_secs(10),
        || (app.http.connections.stats().open >= 40).then_some(()),
    );
    let person = client_from(Ipv4Addr::new(127, 0, 8, 1));
    wait_for_async(
        "a person's request answered",
        Duration::from_secs(30),
        || {
            let person = person.clone();
            let url = format!("{}/healthz", app.url());
            async move {
                let r = person.get(url).send().await.ok()?;
                (r.status() == 200).then_some(())
            }
        },
    )
    .await;
    assert!(app.http.connections.stats().evicted >= 1);
    drop(crowd);
    app.shutdown().await;
}

/// A flood of failed sign-ins at unknown accounts writes at most 30 audit
/// lines a minute; the rest are counted, and the count is written with the
/// next minute's first line, so the store cannot grow without end. Guesses
/// at a real account are always written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_sign_ins_from_outside_take_a_bounded_share_of_the_audit() {
    let t = TestDir::new();
    let clock = std::sync::Arc::new(muster::service::ManualClock::new(
        time::OffsetDateTime::now_utc(),
    ));
    let muster =
        muster::service::Muster::open(std::sync::Arc::new(t.config()), clock.clone()).unwrap();
    muster.add_admin(ADMIN, PASSWORD, &Actor::cli()).unwrap();
    for i in 0..45 {
        let tried = muster.sign_in(
            &format!("guess{i}@team.example"),
            "wrong password here",
            &format!("192.0.2.{i}"),
            None,
        );
        assert!(tried.is_err());
    }
    let failed_lines = |m: &muster::service::Muster| {
        m.view()
            .unwrap()
            .audit(None, 500)
            .unwrap()
            .into_iter()
            .filter(|e| e.action == "admin.sign_in_failed")
            .count()
    };
    assert_eq!(failed_lines(&muster), 30);
    // Guesses at a real account are written whatever the share.
    for i in 0..5 {
        let tried = muster.sign_in(
            ADMIN,
            "wrong password here",
            &format!("203.0.113.{i}"),
            None,
        );
        assert!(tried.is_err());
    }
    assert_eq!(failed_lines(&muster), 35);
    clock.advance(time::Duration::minutes(1));
    assert!(
        muster
            .sign_in(
                "late@team.example",
                "wrong password here",
                "192.0.2.99",
                None
            )
            .is_err()
    );
    let audit = muster.view().unwrap().audit(None, 500).unwrap();
    let counted = audit
        .iter()
        .find(|e| e.action == "audit.outsiders_counted")
        .expect("the count of the lines not written");
    assert!(
        counted
            .detail
            .starts_with("15 more failed sign-ins or reset requests were counted"),
        "{}",
        counted.detail
    );
    assert_eq!(failed_lines(&muster), 36);
    // The real admin still signs in, and that is written as always.
    muster
        .sign_in(ADMIN, PASSWORD, "192.0.2.200", None)
        .unwrap();
}

/// A TCP connection to the server on `port` from the local address `ip`.
fn connect_from(ip: Ipv4Addr, port: u16) -> Option<TcpStream> {
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
    assert!(fd >= 0);
    let sockaddr = |ip: Ipv4Addr, port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    let local = sockaddr(ip, 0);
    let remote = sockaddr(Ipv4Addr::LOCALHOST, port);
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: plain socket calls on a descriptor this function owns.
    unsafe {
        if libc::bind(fd, &local as *const _ as *const libc::sockaddr, len) != 0
            || libc::connect(fd, &remote as *const _ as *const libc::sockaddr, len) != 0
        {
            libc::close(fd);
            return None;
        }
        use std::os::fd::FromRawFd;
        Some(TcpStream::from_raw_fd(fd))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_office_behind_one_address_sets_up_forty_mailboxes_at_once() {
    let app = TestApp::spawn(|c| c.domains[0].mailbox_cap = 100).await;
    let rows = (0..40)
        .map(|i| InviteRow::to(format!("colleague{i}@elsewhere.org")))
        .collect();
    let created = app
        .muster
        .create_batch(BatchRequest::new(rows, Actor::cli()))
        .unwrap();
    let links: Vec<String> = created.invites.iter().map(|i| app.link(i)).collect();
    // Everyone behind the office's one address, in the same minute.
    let client = client_from(Ipv4Addr::new(127, 0, 6, 1));
    let mut tasks = Vec::new();
    for link in links {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            submit_password(&client, &link, PASSWORD, PASSWORD).await
        }));
    }
    for t in tasks {
        let (status, page) = t.await.unwrap();
        assert_eq!(status, 200, "{page}");
        assert!(page.contains("Your mailbox is ready"));
    }
    let passwd = std::fs::read_to_string(app.muster.config.passwd_file()).unwrap();
    assert_eq!(passwd.lines().count(), 40);
    // Guessing from the same address is still stopped.
    let mut last = 0;
    for i in 0..40 {
        last = client
            .get(format!("{}/invite/{:0>43}", app.url(), i))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
    }
    assert_eq!(last, 429);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_passwd_file_stops_provisioning_until_restored() {
    let app = TestApp::spawn(|_| {}).await;
    let token = app.token.clone();
    let created = app.muster.create_batch(invite_batch(3, "d")).unwrap();
    let link = |i: usize| app.link(&created.invites[i]);
    let client = http();
    let (status, _) = submit_password(&client, &link(0), PASSWORD, PASSWORD).await;
    assert_eq!(status, 200);
    let passwd = app.muster.config.passwd_file();
    let saved = std::fs::read(&passwd).unwrap();
    std::fs::remove_file(&passwd).unwrap();

    // The next redemption is refused; the file is not recreated with one line.
    let (status, page) = submit_password(&client, &link(1), PASSWORD, PASSWORD).await;
    assert_eq!(status, 503, "{page}");
    assert!(page.contains("could not create your mailbox"), "{page}");
    assert!(!passwd.exists(), "the passwd-file was recreated");
    let v = app.muster.get_invite(&created.invites[1].id).unwrap();
    assert_eq!(v.link_state, "live");
    assert!(v.last_error.unwrap().contains("missing from the mail host"));
    // Bulk creation is refused too, with its code.
    let r = client
        .post(format!("{}/api/v1/mailboxes:bulk", app.url()))
        .bearer_auth(&token)
        .json(&json!({"items": [{"local_part": "new", "password": "generate"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(
        r.json::<Value>().await.unwrap()["code"],
        "mail_host_damaged"
    );
    // /readyz and `muster check` say why.
    let ready = client
        .get(format!("{}/readyz", app.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    assert!(ready.text().await.unwrap().contains("d0@team.example"));
    let config = app.dir.write_config(&app.muster.config);
    let out = run(
        muster(&["--config", config.to_str().unwrap(), "check"]),
        None,
    );
    assert_exit(&out, 1);
    assert!(
        text(&out.stdout).contains("missing from the mail host"),
        "{}",
        text(&out.stdout)
    );

    // A truncated file is the same.
    std::fs::write(&passwd, "").unwrap();
    let (status, _) = submit_password(&client, &link(1), PASSWORD, PASSWORD).await;
    assert_eq!(status, 503);

    // Restored from the backup: the same link works, and readyz is green.
    std::fs::write(&passwd, &saved).unwrap();
    let (status, page) = submit_password(&client, &link(1), PASSWORD, PASSWORD).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(std::fs::read_to_string(&passwd).unwrap().lines().count(), 2);
    let ready = client
        .get(format!("{}/readyz", app.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    // Stopped, with its data folder kept for the CLI.
    let _data = app.stop().await;

    // Removed on purpose: forgetting the mailbox lets provisioning go on.
    std::fs::write(&passwd, "").unwrap();
    let out = run(
        muster(&[
            "--config",
            config.to_str().unwrap(),
            "mailboxes",
            "forget",
            "d0@team.example",
        ]),
        None,
    );
    assert_exit(&out, 1);
    assert!(
        text(&out.stdout).contains("still missing"),
        "{}",
        text(&out.stdout)
    );
    let out = run(
        muster(&[
            "--config",
            config.to_str().unwrap(),
            "mailboxes",
            "forget",
            "d1@team.example",
        ]),
        None,
    );
    assert_exit(&out, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_requests_get_honest_answers() {
    let app = TestApp::spawn(|c| c.http.body_limit_bytes = 64 * 1024).await;
    let token = app.token.clone();
    let client = http();
    let post = |path: &str, body: Vec<u8>, content_type: &'static str| {
        let (client, url, token) = (
            client.clone(),
            format!("{}{path}", app.url()),
            token.clone(),
        );
        async move {
            let r = client
                .post(url)
                .bearer_auth(token)
                .header("content-type", content_type)
                .header("accept", "application/json, text/event-stream")
                .body(body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    // The JSON limit applies to JSON routes; a roster's text may be larger.
    let big = json!({"items": [{"local_part": "a", "recipient_email": "a@elsewhere.org"}], "pad": "x".repeat(100 * 1024)});
    let (status, body) = post(
        "/api/v1/mailboxes/invites:bulk",
        big.to_string().into_bytes(),
        "application/json",
    )
    .await;
    assert_eq!(status, 413, "{body}");
    let roster: String = (0..3000)
        .map(|i| format!("person{i}@elsewhere.org\n"))
        .collect();
    assert!(roster.len() > 64 * 1024);
    let (status, body) = post(
        "/api/v1/previews/invites",
        json!({"text": roster, "format": "lines"})
            .to_string()
            .into_bytes(),
        "application/json",
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("too_many_rows"), "{body}");
    // Past the upload limit even there, and the answer names the setting.
    let (status, body) = post(
        "/api/v1/previews/invites",
        json!({"text": "x".repeat(3 * 1024 * 1024)})
            .to_string()
            .into_bytes(),
        "application/json",
    )
    .await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("invites.upload_limit_bytes"), "{body}");
    // A key written twice is refused, not read as the last one.
    let (status, body) = post(
        "/api/v1/mailboxes/invites:bulk",
        br#"{"items":[{"local_part":"a","local_part":"postmaster","recipient_email":"a@elsewhere.org"}]}"#.to_vec(),
        "application/json",
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("duplicate_key") && body.contains("local_part"),
        "{body}"
    );
    // MCP: a body nested too deeply is a bad request, not a media type problem.
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let (status, body) = post("/mcp", deep.into_bytes(), "application/json").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("nested too deeply"), "{body}");
    let (status, body) = post(
        "/mcp",
        br#"{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}"#.to_vec(),
        "application/json",
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let rpc: Value = serde_json::from_str(&body).unwrap();
    assert!(
        rpc["error"]["message"]
            .as_str()
            .unwrap()
            .contains("\"id\" appears twice"),
        "{body}"
    );
    // The Bearer scheme is case-insensitive.
    for scheme in ["BEARER", "bearer", "Bearer"] {
        let r = client
            .get(format!("{}/api/v1/capacity", app.url()))
            .header("authorization", format!("{scheme} {token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{scheme}");
    }
    assert!(app.muster.view().unwrap().batches().unwrap().is_empty());
    app.shutdown().await;
}
