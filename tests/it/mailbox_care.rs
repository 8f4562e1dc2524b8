//! Care for the mailboxes Muster made, against the real Dovecot and
//! Postfix, through the API, MCP and the CLI: a new allocation (the pool
//! checked again), suspension (the login refused, mail still accepted),
//! restoration, and removal (the address refused, the mail folder kept).

use std::time::Duration;

use crate::support::app::TestApp;
use crate::support::mailstack::{self, Imap, Stack, login_eventually};
use crate::support::*;
use reqwest::Method;
use serde_json::json;

const JANE: &str = "jane@team.example";
const JANE_PW: &str = "copper-lantern-orbit-42";

/// Waits until Dovecot refuses the login (it re-reads its passwd-file at
/// most once a second).
fn refused_eventually(port: u16, user: &str, password: &str) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if !Imap::connect(port).login(user, password) {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn quota_kib(imap: &mut Imap) -> String {
    let (lines, _) = imap.cmd("GETQUOTAROOT INBOX");
    lines
        .iter()
        .find(|l| l.contains("STORAGE"))
        .cloned()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mailbox_is_resized_suspended_restored_and_removed() {
    if !mailstack::available() {
        return;
    }
    let t = TestDir::new();
    let stack = Stack::start(t.path(), "team.example");
    let mut config = t.config();
    stack.configure(&mut config);
    // The INBOX counts below are of the mail these tests send.
    config.client.welcome = false;
    config.storage_pool_mb = 1000;
    let app = TestApp::on(config.clone()).await;
    let imap = stack.dovecot.imap_port;

    let (status, body) = app
        .call(
            Method::POST,
            "/mailboxes:bulk",
            Some(json!({"items": [
                {"local_part": "jane", "password": JANE_PW, "storage_allocation_mb": 100},
                {"local_part": "sam", "password": JANE_PW, "storage_allocation_mb": 600},
            ]})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let mut session = login_eventually(imap, JANE, JANE_PW).expect("jane logs in");
    assert!(quota_kib(&mut session).contains("STORAGE 0 102400"));

    // A bigger allocation that fits; then one the pool cannot give.
    let (status, body) = app
        .call(
            Method::PUT,
            &format!("/mailboxes/{JANE}/allocation"),
            Some(json!({"storage_allocation_mb": 300})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["storage_allocation_mb"], 300);
    let seen = wait_for(
        "Dovecot to see the new quota",
        Duration::from_secs(10),
        || {
            let mut fresh = Imap::connect(imap);
            fresh.login(JANE, JANE_PW);
            let q = quota_kib(&mut fresh);
            q.contains("STORAGE 0 307200").then_some(q)
        },
    );
    assert!(seen.contains("307200"));
    drop(session);
    let (status, body) = app
        .call(
            Method::PUT,
            &format!("/mailboxes/{JANE}/allocation"),
            Some(json!({"storage_allocation_mb": 500})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["code"], "invalid_allocation");
    let said = body["message"].as_str().unwrap();
    assert!(
        said.contains("600 MB of 1000 MB") && said.contains("400 MB is left"),
        "{said}"
    );
    let passwd = std::fs::read_to_string(&stack.passwd).unwrap();
    assert!(
        passwd.contains("jane@team.example:") && passwd.contains("storage=300M"),
        "{passwd}"
    );
    let meta = std::fs::metadata(&stack.passwd).unwrap();
    let mtime = meta.modified().unwrap();
    let ahead = mtime
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    assert!(
        ahead <= Duration::from_secs(2),
        "the mtime is {ahead:?} ahead"
    );

    // Suspended over MCP: the login is refused, mail is still accepted.
    if crate::support::mcp_client::have_sdk() {
        let r = crate::support::mcp_client::call(
            &format!("{}/mcp", app.url()),
            &app.token,
            "suspend_mailbox",
            &json!({"address": JANE}),
        )
        .await;
        assert_eq!(r["is_error"], false, "{r}");
        assert_eq!(r["structured"]["suspended"], true, "{r}");
    } else {
        let (status, _) = app
            .call(Method::POST, &format!("/mailboxes/{JANE}/suspend"), None)
            .await;
        assert_eq!(status, 200);
    }
    assert!(
        refused_eventually(imap, JANE, JANE_PW),
        "a suspended login is refused"
    );
    let reply = wait_for(
        "Postfix to take mail for jane",
        Duration::from_secs(20),
        || {
            let r = stack.send_mail(JANE, "while suspended");
            r.starts_with("250").then_some(r)
        },
    );
    assert!(reply.starts_with("250"));
    let (_, list) = app.call(Method::GET, "/mailboxes?q=jane", None).await;
    assert_eq!(list["mailboxes"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list["mailboxes"][0]["suspended"], true);

    // Restored: the login works and the mail is there.
    let (status, body) = app
        .call(Method::POST, &format!("/mailboxes/{JANE}/restore"), None)
        .await;
    assert_eq!((status.as_u16(), &body["suspended"]), (200, &json!(false)));
    let mut session = login_eventually(imap, JANE, JANE_PW).expect("a restored login works");
    wait_for(
        "the mail sent while suspended",
        Duration::from_secs(20),
        || {
            let (lines, _) = session.cmd("STATUS INBOX (MESSAGES)");
            lines.iter().any(|l| l.contains("MESSAGES 1")).then_some(())
        },
    );

    // A password-reset link over MCP: a single-use link, no place under the cap.
    if crate::support::mcp_client::have_sdk() {
        let r = crate::support::mcp_client::call(
            &format!("{}/mcp", app.url()),
            &app.token,
            "send_mailbox_password_reset",
            &json!({"address": JANE, "to": "jane.private@elsewhere.org", "locale": "de"}),
        )
        .await;
        assert_eq!(r["is_error"], false, "{r}");
        assert_eq!(r["structured"]["purpose"], "password_reset", "{r}");
        let r = crate::support::mcp_client::call(
            &format!("{}/mcp", app.url()),
            &app.token,
            "send_mailbox_password_reset",
            &json!({"address": JANE, "to": "jane.private@elsewhere.org", "locale": "fr"}),
        )
        .await;
        assert_eq!(r["structured"]["code"], "invalid_reset", "{r}");
    }

    // A mailbox Muster did not make is the mail server's to change.
    let mut text = std::fs::read_to_string(&stack.passwd).unwrap();
    text.push_str("hand@team.example:{PLAIN}x:5000:5000::/h::\n");
    std::fs::write(&stack.passwd, text).unwrap();
    let (status, body) = app
        .call(Method::POST, "/mailboxes/hand@team.example/suspend", None)
        .await;
    assert_eq!(
        (status.as_u16(), body["code"].as_str()),
        (404, Some("no_such_mailbox"))
    );

    // Removed: the address is refused, the login too, the mail folder stays.
    let (status, body) = app
        .call(Method::DELETE, &format!("/mailboxes/{JANE}"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["mail_folder"], "kept");
    let folder = std::path::PathBuf::from(body["path"].as_str().unwrap());
    assert!(folder.exists(), "{}", folder.display());
    assert!(refused_eventually(imap, JANE, JANE_PW));
    let refused = wait_for("Postfix to refuse jane", Duration::from_secs(20), || {
        let r = stack.send_mail(JANE, "after removal");
        r.starts_with("550").then_some(r)
    });
    assert!(refused.contains("5.1.1"), "{refused}");
    assert!(!std::fs::read_to_string(&stack.map).unwrap().contains(JANE));
    let (_, audit) = app.call(Method::GET, "/audit?kind=mailbox", None).await;
    let actions: Vec<&str> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for a in [
        "mailbox.allocation",
        "mailbox.suspend",
        "mailbox.restore",
        "mailbox.remove",
    ] {
        assert!(actions.contains(&a), "{a} in {actions:?}");
    }
    // Nothing is left for the host check to miss.
    assert!(app.muster.host_damage().unwrap().is_none());
    app.shutdown().await;

    // The CLI, with the server stopped: suspend and remove sam, mail and all.
    let path = t.write_config(&config);
    let cli = |args: &[&str]| {
        let mut all = vec!["--config", path.to_str().unwrap()];
        all.extend_from_slice(args);
        run(muster(&all), None)
    };
    let out = cli(&["mailboxes", "suspend", "sam@team.example"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("sam@team.example: suspended"));
    let out = cli(&["mailboxes", "list", "--search", "sam"]);
    let listed = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        listed.contains("600 MB") && listed.contains("suspended"),
        "{listed}"
    );
    let out = cli(&["mailboxes", "allocation", "nobody@team.example", "2GB"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("is not a mailbox Muster made"));
    let out = cli(&["mailboxes", "reset-password", "sam@team.example"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("name the address"));
    let out = cli(&[
        "mailboxes",
        "reset-password",
        "sam@team.example",
        "--to",
        "sam.private@elsewhere.org",
    ]);
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success() && said.contains("goes to sam.private@elsewhere.org"),
        "{said}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(&["mailboxes", "remove", "sam@team.example", "--delete-mail"]);
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success() && said.contains("removed"), "{said}");
    assert!(
        !std::fs::read_to_string(&stack.passwd)
            .unwrap()
            .contains("sam@")
    );
}

/// A reset link sent before a mailbox was removed and made again for
/// someone else never sets the new owner's password; and a mail folder
/// that is not the mailbox's own is never deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_reset_link_cannot_take_over_a_mailbox_made_again() {
    let app = TestApp::spawn(|_| {}).await;
    let make = |pw: &str| {
        app.muster
            .create_mailboxes(&muster::service::CreationRequest {
                domain: None,
                rows: &[muster::domain::roster::CreationRow {
                    local_part: "jane".into(),
                    password: Some(pw.into()),
                    ..Default::default()
                }],
                only_clean: false,
                actor: &muster::store::Actor::cli(),
                limit: muster::service::RowLimit::Batch,
            })
            .unwrap()
    };
    make(JANE_PW);
    let cli = muster::store::Actor::cli();
    let sent = app
        .muster
        .send_password_reset(JANE, Some("old.owner@elsewhere.org"), None, &cli)
        .unwrap();
    assert_eq!(sent.purpose, "password_reset");
    let invite = app
        .muster
        .view()
        .unwrap()
        .invite(&sent.id)
        .unwrap()
        .unwrap();
    let token = app.muster.invite_token(&invite).unwrap();
    app.muster.remove_mailbox(JANE, false, &cli).unwrap();
    make("new-owner-harbour-quiet-77");
    let line = || {
        std::fs::read_to_string(app.muster.config.passwd_file())
            .unwrap()
            .lines()
            .find(|l| l.starts_with("jane@"))
            .unwrap()
            .to_string()
    };
    let before = line();
    let taken = app.muster.redeem(
        token.as_str(),
        "thief-lantern-copper-99",
        "thief-lantern-copper-99",
    );
    assert!(taken.is_err(), "the old link set a password: {taken:?}");
    assert_eq!(line(), before, "the new owner's password is untouched");
    app.shutdown().await;
}

/// A second password-reset link for a mailbox revokes the first: only the
/// latest one in the owner's mail sets a password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_reset_link_revokes_the_one_before() {
    let app = TestApp::spawn(|_| {}).await;
    let cli = muster::store::Actor::cli();
    app.muster
        .create_mailboxes(&muster::service::CreationRequest {
            domain: None,
            rows: &[muster::domain::roster::CreationRow {
                local_part: "jane".into(),
                password: Some(JANE_PW.into()),
                ..Default::default()
            }],
            only_clean: false,
            actor: &cli,
            limit: muster::service::RowLimit::Batch,
        })
        .unwrap();
    let token_of = |id: &str| {
        let invite = app.muster.view().unwrap().invite(id).unwrap().unwrap();
        app.muster.invite_token(&invite).unwrap()
    };
    let first = app
        .muster
        .send_password_reset(JANE, Some("jane@elsewhere.org"), None, &cli)
        .unwrap();
    let second = app
        .muster
        .send_password_reset(JANE, Some("jane@elsewhere.org"), None, &cli)
        .unwrap();
    assert_eq!(
        app.muster.get_invite(&first.id).unwrap().link_state,
        "revoked"
    );
    assert_eq!(
        app.muster.get_invite(&second.id).unwrap().link_state,
        "live"
    );
    let old = app.muster.redeem(
        token_of(&first.id).as_str(),
        "lantern-copper-harbour-12",
        "lantern-copper-harbour-12",
    );
    assert!(old.is_err(), "the first link still works: {old:?}");
    app.muster
        .redeem(
            token_of(&second.id).as_str(),
            "quiet-meadow-signal-34",
            "quiet-meadow-signal-34",
        )
        .expect("the latest link sets the password");
    let audit = app.muster.view().unwrap().audit(None, 20).unwrap();
    assert!(
        audit.iter().any(|e| e.action == "invite.revoke"
            && e.subject == first.id
            && e.detail.contains("replaced by a new password-reset link")),
        "the revocation is in the audit trail"
    );
    app.shutdown().await;
}
