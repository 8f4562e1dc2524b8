//! Hostile input: markup and header injection in every value that reaches
//! a page, a preview or an email; oversized and stalled requests; token
//! guessing; CSRF on every state-changing call; path tricks.

use std::io::{Read, Write};
use std::time::Duration;

use crate::support::app::TestApp;
use crate::support::*;
use muster::domain::invite::{Delivery, Invite, LinkState};
use muster::mail::compose::Composer;
use muster::store::Actor;
use reqwest::Method;
use serde_json::{Value, json};

const ADMIN: &str = "admin@team.example";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn markup_and_header_injection_are_refused_or_escaped() {
    let app = TestApp::spawn(|_| {}).await;
    let token = app.token.clone();
    let api = |body: Value| {
        let (client, url, token) = (http(), app.url(), token.clone());
        async move {
            let r = client
                .post(format!("{url}/api/v1/mailboxes/invites:bulk"))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    // Markup and line breaks in addresses and mailbox names are refused, per item.
    let (status, body) = api(json!({"items": [
        {"local_part": "<script>", "recipient_email": "a@elsewhere.org"},
        {"local_part": "bob", "recipient_email": "bob@elsewhere.org\r\nBcc: all@elsewhere.org"},
        {"local_part": "eve", "recipient_email": "\"><img src=x onerror=alert(1)>@x.org"}
    ]}))
    .await;
    assert_eq!(status, 422);
    let codes: Vec<(u64, &str)> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["index"].as_u64().unwrap(), e["code"].as_str().unwrap()))
        .collect();
    assert!(codes.contains(&(0, "invalid_local_part")), "{body}");
    assert!(codes.contains(&(1, "invalid_recipient_email")), "{body}");
    assert!(codes.contains(&(2, "invalid_recipient_email")), "{body}");

    // A line break inside a quoted CSV name folds into a space: one line,
    // so no header can be made of it.
    let r = http()
        .post(format!("{}/api/v1/previews/invites", app.url()))
        .bearer_auth(&token)
        .json(&json!({"format": "csv", "text": "email,display_name\nx@elsewhere.org,\"Eve\r\nBcc: all@x.org\"\n"}))
        .send()
        .await
        .unwrap();
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["rows"][0]["display_name"], "Eve Bcc: all@x.org");
    assert_eq!(p["rows"][0]["flags"], json!([]));
    // Rows sent as values (not a file) with a line break are flagged.
    let r = http()
        .post(format!("{}/api/v1/previews/invites", app.url()))
        .bearer_auth(&token)
        .json(&json!({"rows": [{"recipient_email": "x@elsewhere.org", "display_name": "Eve\r\nBcc: all@x.org"}]}))
        .send()
        .await
        .unwrap();
    let p: Value = r.json().await.unwrap();
    assert_eq!(
        p["rows"][0]["flags"][0]["code"], "invalid_display_name",
        "{p}"
    );

    // Markup in a display name is escaped in the setup page and the email.
    let created = app
        .muster
        .create_batch(muster::service::BatchRequest::new(
            vec![muster::domain::roster::InviteRow {
                display_name: Some("<b onmouseover=alert(1)>Eve</b>".into()),
                ..muster::domain::roster::InviteRow::to("x@elsewhere.org")
            }],
            Actor::cli(),
        ))
        .unwrap();
    let link = app
        .muster
        .invite_link(&app.muster.invite_token(&created.invites[0]).unwrap());
    let local = link.replace(app.muster.config.public_url(), &app.url());
    let page = http()
        .get(&local)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!page.contains("<b onmouseover"), "{page}");
    let outbox = wait_for("the email", Duration::from_secs(20), || {
        std::fs::read_dir(app.muster.config.outbox_dir())
            .ok()?
            .next()
            .map(|e| e.unwrap().path())
    });
    let mail = std::fs::read(outbox).unwrap();
    let msg = mail_parser::MessageParser::default().parse(&mail).unwrap();
    let html = msg.body_html(0).unwrap();
    assert!(
        html.contains("&lt;b onmouseover=alert(1)&gt;Eve&lt;/b&gt;")
            && !html.contains("<b onmouseover")
    );

    // Even a value that slipped past every check cannot add a header.
    let composer = Composer::new(&app.muster.config).unwrap();
    let now = time::OffsetDateTime::now_utc();
    let sly = Invite {
        id: "01TEST".into(),
        batch_id: "b".into(),
        recipient_email: muster::domain::address::RecipientEmail::parse("x@elsewhere.org").unwrap(),
        mailbox: muster::domain::address::MailboxAddress::parse("x@team.example").unwrap(),
        storage_allocation_mb: None,
        display_name: Some("Eve\r\nBcc: all@elsewhere.org".into()),
        locale: None,
        generation: 0,
        token_hash: muster::domain::token::TokenHash([0; 32]),
        created_at: now,
        expires_at: now + time::Duration::days(1),
        link: LinkState::Live,
        delivery: Delivery::Queued,
        attempts: 0,
        redeemed_at: None,
        last_error: None,
        new_link_requested_at: None,
        purpose: Default::default(),
    };
    let out = composer
        .invite(&sly, "http://muster.test/invite/x", now)
        .unwrap();
    let text = String::from_utf8_lossy(&out.bytes);
    let headers = text.split("\r\n\r\n").next().unwrap();
    assert!(!headers.lines().any(|l| l.starts_with("Bcc:")), "{headers}");
    assert!(!text.contains("\nBcc:"), "not in the body either: {text}");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_stalled_requests() {
    let app = TestApp::spawn(|c| {
        c.http.idle_timeout_secs = 2;
        c.invites.upload_limit_bytes = 2048;
        c.http.body_limit_bytes = 4096;
    })
    .await;
    let token = app.token.clone();
    // A roster over the upload limit.
    let text = "a@elsewhere.org\n".repeat(200);
    let r = http()
        .post(format!("{}/api/v1/previews/invites", app.url()))
        .bearer_auth(&token)
        .json(&json!({"text": text}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    // A body that claims to be huge is refused before it is read.
    let mut s = std::net::TcpStream::connect(app.addr).unwrap();
    s.write_all(b"POST /api/v1/session HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 999999999\r\n\r\n{").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 413"));
    // A client that stops mid-request is disconnected.
    let mut s = std::net::TcpStream::connect(app.addr).unwrap();
    s.write_all(b"POST /api/v1/session HTTP/1.1\r\nHost: x\r\nContent-Le")
        .unwrap();
    // Far longer than the 2 s idle timeout: the server must close first.
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    match s.read(&mut buf) {
        Ok(0) => {}
        Err(e) => assert!(
            !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "the stalled connection was left open: {e}"
        ),
        Ok(n) => panic!(
            "expected the connection closed, got {:?}",
            String::from_utf8_lossy(&buf[..n])
        ),
    }
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessing_tokens_is_rate_limited() {
    let app = TestApp::spawn(|c| {
        c.http.link_guesses_per_minute = 20;
        c.http.signin_rate_per_minute = 5;
    })
    .await;
    let created = app.muster.create_batch(invite_batch(1, "g")).unwrap();
    let real = app.muster.invite_token(&created.invites[0]).unwrap();
    let client = http();
    let mut statuses = Vec::new();
    for i in 0..30 {
        let guess = format!("{:0>43}", i);
        statuses.push(
            client
                .get(format!("{}/invite/{guess}", app.url()))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16(),
        );
    }
    assert!(statuses[..20].iter().all(|s| *s == 404));
    assert!(statuses[20..].iter().all(|s| *s == 429), "{statuses:?}");
    // Once over the allowance, a real link from the same address waits too:
    // a guess that hits looks like one that misses.
    let r = client
        .get(format!("{}/invite/{}", app.url(), real.as_str()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 429);
    // Guessing API tokens is limited too.
    let mut statuses = Vec::new();
    for i in 0..8 {
        let r = client
            .get(format!("{}/api/v1/capacity", app.url()))
            .bearer_auth(format!("mst_guess{i}"))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert_eq!(&statuses[..5], &[403; 5]);
    assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");
    app.shutdown().await;
}

/// Sign-in attempts from many addresses use up the account's allowance,
/// so that they cannot guess together; the browser the admin signed in on
/// before keeps an allowance of its own and still gets in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_guessing_cannot_keep_the_admin_out() {
    let app = TestApp::spawn(|c| {
        c.http.behind_proxy = true;
        c.http.signin_rate_per_minute = 5;
    })
    .await;
    for admin in [ADMIN, "other@team.example"] {
        app.muster
            .add_admin(admin, PASSWORD, &Actor::cli())
            .unwrap();
    }
    let client = http();
    let sign_in = |email: &str, password: &str, from: &str, mark: Option<&str>| {
        let mut r = client
            .post(format!("{}/api/v1/session", app.url()))
            .header("x-forwarded-for", from)
            .json(&json!({"email": email, "password": password}));
        if let Some(mark) = mark {
            r = r.header("cookie", format!("muster_device={mark}"));
        }
        async move { r.send().await.unwrap() }
    };
    let mark_of = |r: &reqwest::Response| -> String {
        let cookies: Vec<&str> = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert!(
            cookies.iter().any(|c| c.starts_with("muster_session=")),
            "{cookies:?}"
        );
        let device = cookies
            .iter()
            .find(|c| c.starts_with("muster_device="))
            .unwrap_or_else(|| panic!("no device mark in {cookies:?}"));
        // Sent back to the sign-in endpoint only, never to scripts.
        for part in [
            "Path=/api/v1/session",
            "HttpOnly",
            "SameSite=Strict",
            "Max-Age=7776000",
        ] {
            assert!(device.contains(part), "{device}");
        }
        device
            .trim_start_matches("muster_device=")
            .split(';')
            .next()
            .unwrap()
            .to_string()
    };
    // The admin signs in from the office once; so does another admin.
    let r = sign_in(ADMIN, PASSWORD, "192.0.2.10", None).await;
    assert_eq!(r.status(), 200);
    let mark = mark_of(&r);
    let r = sign_in("other@team.example", PASSWORD, "192.0.2.11", None).await;
    let others_mark = mark_of(&r);

    // Strangers guess from twelve addresses: after the account's
    // allowance, every attempt waits, the right password too.
    let mut statuses = Vec::new();
    for i in 0..12 {
        let from = format!("203.0.113.{i}");
        statuses.push(sign_in(ADMIN, "guess", &from, None).await.status().as_u16());
    }
    assert_eq!(&statuses[..4], &[401; 4], "{statuses:?}");
    assert!(statuses[4..].iter().all(|s| *s == 429), "{statuses:?}");
    let r = sign_in(ADMIN, PASSWORD, "198.51.100.7", None).await;
    assert_eq!(r.status(), 429, "a browser new to the account waits");
    let said = r.json::<Value>().await.unwrap()["message"].to_string();
    assert!(said.contains("for this account"), "{said}");
    // Neither another account's mark nor a made-up one is the admin's.
    for stranger in [others_mark.as_str(), "AAAA", &mark[..mark.len() - 2]] {
        let r = sign_in(ADMIN, PASSWORD, "198.51.100.8", Some(stranger)).await;
        assert_eq!(r.status(), 429, "{stranger}");
    }
    // The admin's own browser gets in, from home as well.
    let r = sign_in(ADMIN, PASSWORD, "198.51.100.9", Some(&mark)).await;
    assert_eq!(r.status(), 200);
    let renewed = mark_of(&r);
    assert_ne!(renewed, mark, "each sign-in renews the mark");
    // A stranger behind the office's address uses up its allowance; the
    // admin's browser there still gets in.
    for _ in 0..5 {
        sign_in("nobody@team.example", "guess", "192.0.2.10", None).await;
    }
    let r = sign_in("other@team.example", PASSWORD, "192.0.2.10", None).await;
    assert_eq!(r.status(), 429);
    let said = r.json::<Value>().await.unwrap()["message"].to_string();
    assert!(said.contains("from this address"), "{said}");
    let r = sign_in(ADMIN, PASSWORD, "192.0.2.10", Some(&mark)).await;
    assert_eq!(r.status(), 200);
    // Its attempts are counted too: a stolen mark buys a guesser little.
    let mut statuses = Vec::new();
    for i in 0..6 {
        let from = format!("203.0.113.{}", 100 + i);
        statuses.push(
            sign_in(ADMIN, "guess", &from, Some(&renewed))
                .await
                .status()
                .as_u16(),
        );
    }
    assert_eq!(&statuses[..5], &[401; 5], "{statuses:?}");
    assert_eq!(statuses[5], 429, "{statuses:?}");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_state_changing_call_needs_the_csrf_token() {
    let app = TestApp::spawn(|_| {}).await;
    app.muster
        .add_admin(ADMIN, PASSWORD, &Actor::cli())
        .unwrap();
    let client = http();
    let url = |p: &str| format!("{}/api/v1{p}", app.url());
    // Sign-in from another site is refused (login CSRF).
    let r = client
        .post(url("/session"))
        .header("origin", "https://evil.example")
        .json(&json!({"email": ADMIN, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = client
        .post(url("/session"))
        .json(&json!({"email": ADMIN, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let csrf = r.json::<Value>().await.unwrap()["csrf_token"]
        .as_str()
        .unwrap()
        .to_string();
    let items = json!({"items": [{"local_part": "a", "recipient_email": "a@elsewhere.org"}]});
    let calls: Vec<(Method, &str, Value)> = vec![
        (Method::POST, "/mailboxes/invites:bulk", items.clone()),
        (
            Method::POST,
            "/mailboxes:bulk",
            json!({"items": [{"local_part": "a"}]}),
        ),
        (
            Method::POST,
            "/batches",
            json!({"rows": [{"recipient_email": "a@elsewhere.org"}]}),
        ),
        (
            Method::POST,
            "/creations",
            json!({"rows": [{"local_part": "a"}]}),
        ),
        (
            Method::POST,
            "/previews/invites",
            json!({"text": "a@elsewhere.org"}),
        ),
        (Method::POST, "/tokens", json!({"name": "x"})),
        (Method::DELETE, "/tokens/x", Value::Null),
        (Method::POST, "/invites/x/resend", Value::Null),
        (Method::POST, "/invites/x/revoke", Value::Null),
        (Method::POST, "/invites/x/link", Value::Null),
        (Method::DELETE, "/session", Value::Null),
    ];
    for (method, path, body) in &calls {
        let mut req = client
            .request(method.clone(), url(path))
            .header("cookie", &cookie);
        if !body.is_null() {
            req = req.json(body);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 403, "{method} {path}");
        assert_eq!(
            r.json::<Value>().await.unwrap()["code"],
            "csrf",
            "{method} {path}"
        );
        // With the token but from another site: refused as well.
        let mut req = client
            .request(method.clone(), url(path))
            .header("cookie", &cookie)
            .header("x-csrf-token", &csrf)
            .header("origin", "https://evil.example");
        if !body.is_null() {
            req = req.json(body);
        }
        assert_eq!(
            req.send().await.unwrap().status(),
            403,
            "{method} {path} cross-site"
        );
    }
    assert_eq!(app.muster.view().unwrap().batches().unwrap().len(), 0);
    app.shutdown().await;
}

/// GET `path` as written: raw, so no client normalises it first.
fn raw_get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    resp
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_tricks_on_links_and_assets() {
    let app = TestApp::spawn(|c| c.http.link_rate_per_minute = 1000).await;
    let base = app.url();
    for path in [
        "/assets/../Cargo.toml",
        "/assets/%2e%2e/Cargo.toml",
        "/assets/..%2fCargo.toml",
        "/assets/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/assets//etc/passwd",
        "/assets/swagger/../../../src/main.rs",
        "/invite/..%2f..%2fetc%2fpasswd",
        "/invite/%00",
        "/invite/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa%2f",
        "/invite/../assets/muster.css",
        "/admin/reset/../../Cargo.toml",
    ] {
        let resp = raw_get(app.addr, path);
        let status: u16 = resp[9..12].parse().unwrap();
        assert!(
            !resp.contains("[package]") && !resp.contains("root:") && !resp.contains("fn main"),
            "{path} leaked a file"
        );
        assert!(
            matches!(status, 400 | 404) || (status == 200 && resp.contains("<html")),
            "{path}: {status}"
        );
    }
    // An admin page by way of the assets (read from disk in a debug build)
    // is not served past its sign-in check.
    for path in [
        "/assets/..%2ftokens.html",
        "/assets/%2e%2e%2findex.html",
        "/assets/.%2f..%2faudit.html",
    ] {
        let resp = raw_get(app.addr, path);
        assert!(resp.starts_with("HTTP/1.1 404"), "{path}: {resp}");
    }
    let _ = base;
    app.shutdown().await;
}

/// The setup-link forms: a post from another site, or without the page's
/// own proof, or with a proof replayed or made for another link, is
/// refused with a page that says what to do, and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_link_forms_need_the_pages_own_proof() {
    let app = TestApp::spawn(|c| c.http.link_rate_per_minute = 1000).await;
    let created = app.muster.create_batch(invite_batch(2, "p")).unwrap();
    let link = |i: usize| app.link(&created.invites[i]);
    let (mine, other) = (link(0), link(1));
    let client = http();
    let post = |url: String, proof: String, headers: Vec<(&'static str, &'static str)>| {
        let client = client.clone();
        async move {
            let mut req = client.post(&url).form(&[
                ("password", PASSWORD),
                ("confirmation", PASSWORD),
                ("form_token", proof.as_str()),
            ]);
            for (k, v) in headers {
                req = req.header(k, v);
            }
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let refused = |(status, page): (u16, String)| {
        assert_eq!(status, 403, "{page}");
        assert!(page.contains("Open the setup link again"), "{page}");
        assert!(page.contains("Nothing was changed"), "{page}");
    };
    let null = vec![("origin", "null")];
    // Origin: null without the page's proof, or with garbage.
    refused(post(mine.clone(), String::new(), null.clone()).await);
    refused(post(mine.clone(), "!!!not-a-proof!!!".into(), null.clone()).await);
    // A proof made for another link.
    let foreign = fetch_form_token(&client, &other).await;
    refused(post(mine.clone(), foreign, null.clone()).await);
    // Another site, even with a good proof: by Origin, or by Sec-Fetch-Site.
    let proof = fetch_form_token(&client, &mine).await;
    refused(
        post(
            mine.clone(),
            proof.clone(),
            vec![("origin", "https://evil.example")],
        )
        .await,
    );
    let proof2 = fetch_form_token(&client, &mine).await;
    refused(
        post(
            mine.clone(),
            proof2,
            vec![("origin", "null"), ("sec-fetch-site", "cross-site")],
        )
        .await,
    );
    // The page's script may ask about a password, but not from elsewhere.
    let r = client
        .post(format!("{mine}/check"))
        .header("origin", "https://evil.example")
        .form(&[("password", "x"), ("form_token", proof.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert!(
        app.muster
            .get_invite(&created.invites[0].id)
            .unwrap()
            .link_state
            == "live",
        "nothing was redeemed"
    );

    // A weak password takes the proof; sending the same form again is refused.
    let proof = fetch_form_token(&client, &mine).await;
    let (status, _) = post_password(&client, &mine, &proof, "password1234", "password1234").await;
    assert_eq!(status, 422);
    refused(post(mine.clone(), proof, null.clone()).await);

    // The real thing: Origin null, as browsers send it, with a fresh proof.
    let proof = fetch_form_token(&client, &mine).await;
    let (status, page) = post(mine.clone(), proof.clone(), null.clone()).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Your mailbox is ready"));
    // A double click: the second post shows what the link is now.
    let (status, page) = post(mine.clone(), proof, null.clone()).await;
    assert_eq!(status, 200);
    assert!(page.contains("already set up"), "{page}");
    let passwd = std::fs::read_to_string(app.muster.config.passwd_file()).unwrap();
    assert_eq!(passwd.lines().count(), 1);
    app.shutdown().await;
}
