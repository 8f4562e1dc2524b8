//! The SQL mail host, for each database (a real PostgreSQL and a real
//! MariaDB, started by the suite) and each layout (Muster's table, Postfix
//! Admin's tables), with Dovecot and Postfix reading the same database
//! through the queries `muster sql` prints: a redemption logs in over IMAP
//! with the chosen password and its quota, mail through Postfix lands in
//! its INBOX, a second Dovecot accepts the login too; fifty submissions at
//! once and two Muster processes at once make one row; a database stopped
//! mid-redemption gives a clean error page and the same link works once it
//! is back; bulk creation is one transaction.

use std::sync::Arc;
use std::time::Duration;

use crate::browser::{ADMIN, sign_in};
use crate::support::app::TestApp;
use crate::support::databases::{Database, Engine, SqlStack};
use crate::support::holding_proxy::HoldingProxy;
use crate::support::mailstack::{self, login_eventually};
use crate::support::webdriver::{self, Browser};
use crate::support::*;
use muster::config::SqlLayout;
use muster::domain::roster::InviteRow;
use muster::service::{BatchRequest, Clock, ManualClock, SystemClock};
use muster::store::Actor;
use reqwest::Method;
use serde_json::{Value, json};

const DOMAIN: &str = "team.example";

/// The rows the layout keeps for `address`.
fn rows(db: &Database, layout: SqlLayout, address: &str) -> usize {
    let sql = match layout {
        SqlLayout::Muster => {
            format!("SELECT count(*) FROM muster_mailboxes WHERE address = '{address}'")
        }
        SqlLayout::Postfixadmin => {
            format!("SELECT count(*) FROM mailbox WHERE username = '{address}'")
        }
    };
    db.query(&sql).parse().unwrap()
}

/// A database, the stack reading it, and a Muster writing to it.
struct Scene {
    app: TestApp,
    stack: SqlStack,
    db: Database,
    state: TestDir,
}

async fn scene(engine: Engine, layout: SqlLayout) -> Option<Scene> {
    if !engine.available() || !require("the mail stack", mailstack::available()) {
        return None;
    }
    let state = TestDir::new();
    mailstack::open_dir(state.path());
    let db = Database::start(state.path(), engine);
    if layout == SqlLayout::Postfixadmin {
        db.postfix_admin_schema(DOMAIN);
    }
    let stack = SqlStack::start(state.path(), DOMAIN, &db, layout);
    let app = TestApp::spawn(|c| {
        stack.configure(c, &db);
        c.client.welcome = false;
        c.notifications.mode = muster::config::NotificationMode::Off;
        c.storage_pool_mb = 10_000;
        c.domains[0].mailbox_cap = 100;
    })
    .await;
    if layout == SqlLayout::Muster {
        // `muster sql init` makes the table and prints what to paste.
        let path = app.dir.write_config(&app.muster.config);
        let out = tokio::task::spawn_blocking(move || {
            run(
                muster(&["--config", path.to_str().unwrap(), "sql", "init"]),
                None,
            )
        })
        .await
        .unwrap();
        assert_exit(&out, 0);
        let printed = text(&out.stdout);
        assert!(
            printed.contains("password_query = SELECT address AS user"),
            "{printed}"
        );
        assert!(printed.contains("virtual_mailbox_maps = "), "{printed}");
        assert!(
            !printed.contains(crate::support::databases::PASSWORD),
            "the password stays out: {printed}"
        );
        // `muster check` tries the connection, the table and the queries.
        let path = app.dir.write_config(&app.muster.config);
        let out = tokio::task::spawn_blocking(move || {
            run(muster(&["--config", path.to_str().unwrap(), "check"]), None)
        })
        .await
        .unwrap();
        let said = text(&out.stdout);
        assert!(
            said.lines().any(
                |l| l.contains("database") && l.contains("the Dovecot and Postfix queries run")
            ),
            "{said}"
        );
    }
    Some(Scene {
        app,
        stack,
        db,
        state,
    })
}

impl Scene {
    /// Invites `who` (a dedicated allocation when given); its setup link.
    fn invite(&self, who: &str, mb: Option<u64>) -> String {
        let made = self
            .app
            .muster
            .create_batch(BatchRequest::new(
                vec![InviteRow {
                    storage_allocation_mb: mb.map(|m| m.to_string()),
                    ..InviteRow::to(format!("{who}@elsewhere.org"))
                }],
                Actor::cli(),
            ))
            .unwrap();
        let invite = self
            .app
            .muster
            .store
            .read()
            .unwrap()
            .invite(&made.invites[0].id)
            .unwrap()
            .unwrap();
        self.app.link(&invite)
    }
}

async fn a_redemption_logs_in_and_receives_mail(engine: Engine, layout: SqlLayout) {
    let Some(s) = scene(engine, layout).await else {
        return;
    };
    let link = s.invite("ann", Some(300));
    let (status, page) = submit_password(&s.app.client, &link, PASSWORD, PASSWORD).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Your mailbox is ready"), "{page}");
    assert_eq!(rows(&s.db, layout, "ann@team.example"), 1);

    // The chosen password, the allocation as the quota.
    let mut imap = login_eventually(s.stack.dovecot.imap_port, "ann@team.example", PASSWORD)
        .expect("login with the chosen password");
    // Postfix Admin keeps bytes: MB times its quota multiplier (1024000 by
    // default), so that its own pages show 300 MB too.
    let kib = match layout {
        SqlLayout::Muster => 300 * 1024,
        SqlLayout::Postfixadmin => {
            let bytes =
                s.db.query("SELECT quota FROM mailbox WHERE username = 'ann@team.example'");
            assert_eq!(bytes, "307200000", "Postfix Admin shows 300 MB");
            300_000
        }
    };
    let (lines, _) = imap.cmd("GETQUOTAROOT INBOX");
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&format!("STORAGE 0 {kib}"))),
        "300 MB: {lines:?}"
    );
    let reply = wait_for(
        "Postfix to take mail for ann",
        Duration::from_secs(20),
        || {
            let r = s
                .stack
                .postfix
                .send_mail("ann@team.example", "hello from SQL");
            r.starts_with("250").then_some(r)
        },
    );
    assert!(reply.starts_with("250"));
    wait_for("the mail in INBOX", Duration::from_secs(20), || {
        let (lines, _) = imap.cmd("STATUS INBOX (MESSAGES)");
        lines.iter().any(|l| l.contains("MESSAGES 1")).then_some(())
    });
    let mut wrong = mailstack::Imap::connect(s.stack.dovecot.imap_port);
    assert!(!wrong.login("ann@team.example", "not-the-password-at-all"));

    // Another mail node reading the same database takes the login too.
    let second = s.stack.another_dovecot(s.state.path());
    assert!(login_eventually(second.imap_port, "ann@team.example", PASSWORD).is_some());

    // Suspended: logins refused, mail still delivered; then restored.
    // Postfix Admin's `active` would stop the mail too: refused there.
    match layout {
        SqlLayout::Muster => {
            s.app
                .muster
                .set_suspended("ann@team.example", true, &Actor::cli())
                .unwrap();
            let mut refused = mailstack::Imap::connect(s.stack.dovecot.imap_port);
            assert!(!refused.login("ann@team.example", PASSWORD));
            let r = s
                .stack
                .postfix
                .send_mail("ann@team.example", "while suspended");
            assert!(r.starts_with("250"), "{r}");
            wait_for("the mail kept", Duration::from_secs(20), || {
                let (lines, _) = imap.cmd("STATUS INBOX (MESSAGES)");
                lines.iter().any(|l| l.contains("MESSAGES 2")).then_some(())
            });
            s.app
                .muster
                .set_suspended("ann@team.example", false, &Actor::cli())
                .unwrap();
            assert!(
                login_eventually(s.stack.dovecot.imap_port, "ann@team.example", PASSWORD).is_some()
            );
        }
        SqlLayout::Postfixadmin => {
            let e = s
                .app
                .muster
                .set_suspended("ann@team.example", true, &Actor::cli())
                .unwrap_err()
                .to_string();
            assert!(e.contains("suspend it in Postfix Admin"), "{e}");
        }
    }

    // The mailbox counts under the cap and the pool, read from SQL.
    let (_, capacity) = s.app.call(Method::GET, "/capacity", None).await;
    let domain = &capacity["domains"][0];
    assert_eq!(domain["existing"], 1, "{capacity}");
    assert_eq!(capacity["pool"]["allocated_mb"], 300, "{capacity}");

    // Fifty submissions of one link at once: one mailbox, one row.
    let link = s.invite("bo", None);
    let proof = fetch_form_token(&s.app.client, &link).await;
    let mut tries = Vec::new();
    for _ in 0..50 {
        let (client, link, proof) = (s.app.client.clone(), link.clone(), proof.clone());
        tries.push(tokio::spawn(async move {
            post_password(&client, &link, &proof, PASSWORD, PASSWORD).await
        }));
    }
    let mut ready = 0;
    for t in tries {
        let (_, page) = t.await.unwrap();
        if page.contains("Your mailbox is ready") {
            ready += 1;
        }
    }
    assert_eq!(ready, 1);
    assert_eq!(rows(&s.db, layout, "bo@team.example"), 1);

    if layout == SqlLayout::Postfixadmin {
        // An address that is only an alias there (a forwarding address)
        // is refused in words; nothing is written.
        s.db.query(
            "INSERT INTO alias (address, goto, domain, created, modified, active) \
             VALUES ('desk@team.example', 'ann@team.example', 'team.example', NOW(), NOW(), TRUE)",
        );
        let link = s.invite("desk", None);
        let (_, page) = submit_password(&s.app.client, &link, PASSWORD, PASSWORD).await;
        assert!(!page.contains("Your mailbox is ready"), "{page}");
        assert_eq!(rows(&s.db, layout, "desk@team.example"), 0);
        let error = last_error(&s.app, "desk@");
        assert!(error.contains("is an alias in Postfix Admin"), "{error}");

        // Postfix Admin's mailbox count for the domain holds, and so does
        // its active flag. Each refusal is in words and writes nothing; the
        // same link works once the limit is lifted.
        let link = s.invite("cy", Some(300));
        for (limit, words) in [
            (
                "mailboxes = 2",
                "has 2 mailboxes and Postfix Admin allows it 2",
            ),
            ("mailboxes = -1", "Postfix Admin allows no mailboxes"),
            (
                "mailboxes = 0, active = FALSE",
                "is inactive in Postfix Admin",
            ),
        ] {
            s.db.query(&format!(
                "UPDATE domain SET {limit} WHERE domain = 'team.example'"
            ));
            let (_, page) = submit_password(&s.app.client, &link, PASSWORD, PASSWORD).await;
            assert!(!page.contains("Your mailbox is ready"), "{limit}: {page}");
            assert_eq!(rows(&s.db, layout, "cy@team.example"), 0, "{limit}");
            let error = last_error(&s.app, "cy@");
            assert!(error.contains(words), "{limit}: {error}");
        }
        // Its quota limit applies only where Postfix Admin's own
        // $CONF['quota'] is on (off by default): not checked, as there.
        s.db.query("UPDATE domain SET active = TRUE, maxquota = 10 WHERE domain = 'team.example'");
        let (_, page) = submit_password(&s.app.client, &link, PASSWORD, PASSWORD).await;
        assert!(page.contains("Your mailbox is ready"), "{page}");
        assert_eq!(rows(&s.db, layout, "cy@team.example"), 1);

        // Removal takes the mailbox's alias along, even pointed elsewhere
        // since (as Postfix Admin itself does).
        s.db.query(
            "UPDATE alias SET goto = 'ann@team.example,copy@elsewhere.org' \
             WHERE address = 'ann@team.example'",
        );
        s.app
            .muster
            .remove_mailbox("ann@team.example", false, &Actor::cli())
            .unwrap();
        assert_eq!(rows(&s.db, layout, "ann@team.example"), 0);
        assert_eq!(
            s.db.query("SELECT count(*) FROM alias WHERE address = 'ann@team.example'"),
            "0"
        );
    }
    s.app.shutdown().await;
}

/// The error shown for the invite whose address contains `text`.
fn last_error(app: &TestApp, text: &str) -> String {
    app.muster
        .list_invites(
            &muster::store::view::InviteFilter {
                text: Some(text.into()),
                ..Default::default()
            },
            None,
            10,
        )
        .unwrap()
        .0
        .remove(0)
        .last_error
        .unwrap_or_default()
}

async fn two_musters_one_row_and_a_database_down_then_back(engine: Engine, layout: SqlLayout) {
    let Some(mut s) = scene(engine, layout).await else {
        return;
    };
    // A second Muster (its own store) on the same database invites the
    // same mailbox; both recipients submit at once: one row.
    let other = TestApp::spawn(|c| {
        s.stack.configure(c, &s.db);
        c.client.welcome = false;
        c.notifications.mode = muster::config::NotificationMode::Off;
        c.domains[0].mailbox_cap = 100;
    })
    .await;
    let first = s.invite("cy", None);
    let made = other
        .muster
        .create_batch(BatchRequest::new(
            vec![InviteRow::to("cy@elsewhere.org")],
            Actor::cli(),
        ))
        .unwrap();
    let invite = other
        .muster
        .store
        .read()
        .unwrap()
        .invite(&made.invites[0].id)
        .unwrap()
        .unwrap();
    let second = other.link(&invite);
    let (a, b) = tokio::join!(
        submit_password(&s.app.client, &first, PASSWORD, PASSWORD),
        submit_password(&other.client, &second, PASSWORD, PASSWORD)
    );
    let made_it = [&a, &b]
        .iter()
        .filter(|(_, page)| page.contains("Your mailbox is ready"))
        .count();
    assert_eq!(made_it, 1, "{a:?} {b:?}");
    assert_eq!(rows(&s.db, layout, "cy@team.example"), 1);
    other.shutdown().await;

    // The database stops: the recipient gets a clean page and the link
    // stays valid; once it is back the same link sets up the mailbox.
    let link = s.invite("dee", Some(100));
    s.db.stop();
    let (status, page) = submit_password(&s.app.client, &link, PASSWORD, PASSWORD).await;
    assert!(status >= 500, "{status}: {page}");
    assert!(page.contains("try again"), "{page}");
    assert!(
        !page.contains("sqlx") && !page.contains("password="),
        "{page}"
    );
    let view = s
        .app
        .muster
        .list_invites(
            &muster::store::view::InviteFilter {
                text: Some("dee@".into()),
                ..Default::default()
            },
            None,
            10,
        )
        .unwrap()
        .0
        .remove(0);
    assert_eq!(view.link_state, "live");
    let error = last_error(&s.app, "dee@");
    assert!(error.contains("mail database"), "{view:?}");
    // /readyz says so once the mailbox list (kept 10 s) is read again.
    let said = readyz_until(&s.app, |status, _| status == 503).await;
    assert!(said.contains("mail database"), "{said}");
    assert!(!said.contains("password="), "{said}");
    // With the listing gone stale too, the recipient still gets the
    // same clean page, not a server error.
    let (status, page) = submit_password(&s.app.client, &link, PASSWORD, PASSWORD).await;
    assert_eq!(status, 503, "{page}");
    assert!(page.contains("try again"), "{page}");
    s.db.run();
    readyz_until(&s.app, |status, _| status == 200).await;
    let (status, page) = submit_password(&s.app.client, &link, PASSWORD, PASSWORD).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Your mailbox is ready"), "{page}");
    assert_eq!(rows(&s.db, layout, "dee@team.example"), 1);
    assert!(login_eventually(s.stack.dovecot.imap_port, "dee@team.example", PASSWORD).is_some());

    // Bulk creation is one transaction: the database refusing the third
    // row (a rule the preview cannot see) leaves none of the three.
    let (table, column) = match layout {
        SqlLayout::Muster => ("muster_mailboxes", "address"),
        SqlLayout::Postfixadmin => ("mailbox", "username"),
    };
    s.db.query(&format!(
        "ALTER TABLE {table} ADD CONSTRAINT not_hal CHECK ({column} <> 'hal@team.example')"
    ));
    let items = |third: &str| {
        json!({"items": [
            {"local_part": "eve", "password": "generate"},
            {"local_part": "fay", "password": "generate"},
            {"local_part": third, "password": "generate"}]})
    };
    let (status, body) = s
        .app
        .call(Method::POST, "/mailboxes:bulk", Some(items("hal")))
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "mail_host_failed", "{body}");
    assert_eq!(rows(&s.db, layout, "eve@team.example"), 0, "{body}");
    assert_eq!(rows(&s.db, layout, "fay@team.example"), 0, "{body}");
    if layout == SqlLayout::Postfixadmin {
        // Postfix Admin's mailbox count holds across the batch: room for
        // two more refuses all three, and writes none.
        let has: i64 =
            s.db.query("SELECT count(*) FROM mailbox WHERE domain = 'team.example'")
                .parse()
                .unwrap();
        s.db.query(&format!(
            "UPDATE domain SET mailboxes = {} WHERE domain = 'team.example'",
            has + 2
        ));
        // The invite preview counts the limit too (once the listing, kept
        // 10 s, is read again), and says whose it is.
        let three = json!({"rows": [
            {"recipient_email": "p1@elsewhere.org"},
            {"recipient_email": "p2@elsewhere.org"},
            {"recipient_email": "p3@elsewhere.org"}]});
        let preview = wait_for_async(
            "the preview to see the limit",
            Duration::from_secs(30),
            || async {
                let (status, p) = s
                    .app
                    .call(Method::POST, "/previews/invites", Some(three.clone()))
                    .await;
                assert_eq!(status, 200, "{p}");
                (p["capacity"]["host_limit"] == has + 2).then_some(p)
            },
        )
        .await;
        let counted = |what: &str| preview["capacity"][what].as_i64().unwrap();
        assert_eq!(counted("existing"), has, "{preview}");
        let left = 2 - counted("pending");
        // The rows that would go: as many of the three as there is room for.
        assert_eq!(counted("left_after"), left - left.clamp(0, 3), "{preview}");
        let over: Vec<&Value> = preview["rows"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["flags"].as_array().is_some_and(|f| !f.is_empty()))
            .collect();
        assert_eq!(over.len() as i64, (3 - left).min(3), "{preview}");
        let said = over[0]["flags"][0]["message"].as_str().unwrap();
        assert!(
            said.contains(&format!(
                "past the {} mailboxes Postfix Admin allows team.example",
                has + 2
            )),
            "{said}"
        );
        // Bulk creation's preview counts the limit too: refused whole, with
        // the rows past it flagged in words.
        let (status, body) = s
            .app
            .call(Method::POST, "/mailboxes:bulk", Some(items("gus")))
            .await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["code"], "flagged_items", "{body}");
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("Postfix Admin allows team.example"),
            "{body}"
        );
        // A limit lowered after the listing was read is met in the
        // transaction: refused in Muster's words, which the admin sees.
        // (Should the listing be read again first, the preview refuses.)
        s.db.query(&format!(
            "UPDATE domain SET mailboxes = {has} WHERE domain = 'team.example'"
        ));
        let one = json!({"items": [{"local_part": "eve", "password": "generate"}]});
        let (status, body) = s.app.call(Method::POST, "/mailboxes:bulk", Some(one)).await;
        match status.as_u16() {
            409 => {
                assert_eq!(body["code"], "mail_host_refused", "{body}");
                let said = body["message"].as_str().unwrap();
                assert!(
                    said.contains(&format!(
                        "team.example has {has} mailboxes and Postfix Admin allows it {has}"
                    )) && said.contains("nothing was created"),
                    "{said}"
                );
            }
            422 => assert!(
                body["errors"][0]["message"]
                    .as_str()
                    .unwrap()
                    .contains(&format!("past the {has} mailboxes Postfix Admin allows")),
                "{body}"
            ),
            other => panic!("{other}: {body}"),
        }
        for who in ["eve", "fay", "gus"] {
            assert_eq!(rows(&s.db, layout, &format!("{who}@team.example")), 0);
        }
        s.db.query("UPDATE domain SET mailboxes = 0 WHERE domain = 'team.example'");
    }
    // A lifted limit counts once the listing is read again (within 10 s);
    // until then the rows are flagged and nothing is made.
    let (status, body) = wait_for_async(
        "the creation to go through",
        Duration::from_secs(30),
        || async {
            let (status, body) = s
                .app
                .call(Method::POST, "/mailboxes:bulk", Some(items("gus")))
                .await;
            (status != 422 || layout == SqlLayout::Muster).then_some((status, body))
        },
    )
    .await;
    assert_eq!(status, 201, "{body}");
    for who in ["eve", "fay", "gus"] {
        assert_eq!(rows(&s.db, layout, &format!("{who}@team.example")), 1);
    }
    s.app.shutdown().await;
}

/// A mail database that stops answering holds up provisioning only: while a
/// bulk creation waits on it, an invite is revoked, and live links are
/// resent one at a time and in bulk (only a resend of an expired link asks
/// the mail host); once it answers again the creation completes.
/// (The creation used to write the host inside the store's one write
/// transaction, so every other write waited up to 15 s and the creation
/// then failed.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_database_holds_up_provisioning_only() {
    let engine = Engine::MariaDb;
    if !engine.available() {
        return;
    }
    let state = TestDir::new();
    let db = Database::start(state.path(), engine);
    db.postfix_admin_schema(DOMAIN);
    let proxy = HoldingProxy::start(db.port).await;
    let url = db
        .url()
        .replace(&format!(":{}/", db.port), &format!(":{}/", proxy.port));
    let clock = Arc::new(ManualClock::new(time::OffsetDateTime::now_utc()));
    let app = postfix_admin_muster_with_clock(&state, &url, clock.clone()).await;
    let pending: Vec<String> = app
        .muster
        .create_batch(BatchRequest::new(
            ["amy", "bob", "cal"]
                .iter()
                .map(|p| InviteRow::to(format!("{p}@elsewhere.org")))
                .collect(),
            Actor::cli(),
        ))
        .unwrap()
        .invites
        .iter()
        .map(|i| i.id.clone())
        .collect();
    // Waiting a week, their links still live (30 days).
    clock.advance(time::Duration::days(8));

    proxy.hold();
    let (status, body) = {
        let creation = app.call(
            Method::POST,
            "/mailboxes:bulk",
            Some(json!({"items": [{"local_part": "ivy", "password": "generate"}]})),
        );
        tokio::pin!(creation);
        tokio::select! {
            answer = &mut creation => panic!("created while the database was held: {answer:?}"),
            () = proxy.until_held(Duration::from_secs(60)) => {}
        }
        // The creation waits on the database (its statement is held); a
        // store write that needs no mail host goes through meanwhile.
        let bulk = json!({"older_than": "7d", "invite_ids": [pending[2]]});
        for (path, body) in [
            (format!("/invites/{}/revoke", pending[0]), None),
            (format!("/invites/{}/resend", pending[1]), None),
            ("/invites/resend-pending".to_string(), Some(bulk)),
        ] {
            let (status, answer) = app.call(Method::POST, &path, body).await;
            assert_eq!(status, 200, "{path}: {answer}");
            if let Some(resent) = answer.get("resent") {
                assert_eq!(resent.as_array().map(Vec::len), Some(1), "{answer}");
            }
        }
        proxy.release();
        creation.await
    };
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        db.query("SELECT count(*) FROM mailbox WHERE username = 'ivy@team.example'"),
        "1"
    );
    app.shutdown().await;
}

/// A Muster on Postfix Admin's tables at `url`, with no mail stack.
async fn postfix_admin_muster(state: &TestDir, url: &str) -> TestApp {
    postfix_admin_muster_with_clock(state, url, Arc::new(SystemClock)).await
}

async fn postfix_admin_muster_with_clock(
    state: &TestDir,
    url: &str,
    clock: Arc<dyn Clock>,
) -> TestApp {
    let home = format!("{}/vmail/%d/%n", state.path().display());
    TestApp::spawn_with_clock(
        |c| {
            c.mail_host.backend = muster::config::MailHostBackend::Sql;
            c.mail_host.sql.url = Some(muster::config::Secret::new(url.to_string()));
            c.mail_host.sql.layout = SqlLayout::Postfixadmin;
            c.mail_host.home = home.clone();
            c.client.welcome = false;
            c.notifications.mode = muster::config::NotificationMode::Off;
            c.storage_pool_mb = 10_000;
            c.domains[0].mailbox_cap = 100;
        },
        clock,
    )
    .await
}

/// Postfix Admin's mailbox limit for the domain, as an admin meets it: the
/// invite wizard's preview flags the rows past it and says whose limit it
/// is, and the capacity panels show it beside the cap.
async fn the_preview_shows_postfix_admins_mailbox_limit(browser: webdriver::Engine) {
    if !browser.available() || !Engine::MariaDb.available() {
        return;
    }
    let state = TestDir::new();
    let db = Database::start(state.path(), Engine::MariaDb);
    db.postfix_admin_schema(DOMAIN);
    db.query("UPDATE domain SET mailboxes = 2 WHERE domain = 'team.example'");
    let app = postfix_admin_muster(&state, &db.url()).await;
    app.muster
        .add_admin(ADMIN, PASSWORD, &Actor::cli())
        .unwrap();
    let mut b = Browser::start(browser, "the_preview_shows_postfix_admins_mailbox_limit").await;
    sign_in(&mut b, &app, PASSWORD).await;
    b.wait_text("#capacity", "the mail server allows").await;
    b.step("mailboxes-with-a-host-limit").await;
    b.goto(&format!("{}/invites/new", app.url())).await;
    b.type_in(
        "#paste",
        "amy@elsewhere.org\nbob@elsewhere.org\ncat@elsewhere.org\n",
    )
    .await;
    b.click("#to-preview").await;
    b.wait_text("#summary", "3 rows: 2 clean, 1 flagged").await;
    assert_eq!(b.count("[data-code=over_cap]").await, 1);
    let flagged = b.text("#preview").await;
    assert!(
        flagged.contains("past the 2 mailboxes Postfix Admin allows team.example"),
        "{flagged}"
    );
    let panel = b.text("#capacity").await;
    assert!(panel.contains("the mail server allows"), "{panel}");
    b.step("preview-past-a-host-limit").await;
    b.quit().await;
    app.shutdown().await;
}

crate::in_both_browsers!(the_preview_shows_postfix_admins_mailbox_limit);

macro_rules! for_each_database {
    ($($test:ident),* $(,)?) => {
        $(
            mod $test {
                use super::*;
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres_muster_layout() {
                    super::$test(Engine::Postgres, SqlLayout::Muster).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres_postfix_admin_layout() {
                    super::$test(Engine::Postgres, SqlLayout::Postfixadmin).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn mariadb_muster_layout() {
                    super::$test(Engine::MariaDb, SqlLayout::Muster).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn mariadb_postfix_admin_layout() {
                    super::$test(Engine::MariaDb, SqlLayout::Postfixadmin).await;
                }
            }
        )*
    };
}

for_each_database!(
    a_redemption_logs_in_and_receives_mail,
    two_musters_one_row_and_a_database_down_then_back
);

/// Polls `/readyz` until `done` holds, for at most 30 seconds; the body.
async fn readyz_until(app: &TestApp, done: impl Fn(u16, &str) -> bool) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let r = http()
            .get(format!("{}/readyz", app.url()))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body = r.text().await.unwrap();
        if done(status, &body) {
            return body;
        }
        assert!(std::time::Instant::now() < deadline, "{status}: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
