//! The admin web app as an admin uses it, in both browsers: signed-out
//! visits and first start, and the pending list (its layout on a laptop
//! and a phone, the batch filter, confirmations, the CSV export, why an
//! invite waits).

use std::time::Duration;

use crate::support::app::TestApp;
use crate::support::smtp_peer::Peer;
use crate::support::webdriver::{Browser, ENTER, ESCAPE, Engine, TAB};
use crate::support::*;
use muster::store::Actor;

const ADMIN: &str = "admin@team.example";

async fn sign_in_here(b: &Browser) {
    b.type_in("#email", ADMIN).await;
    b.type_in("#password", PASSWORD).await;
    b.click("#sign-in button[type=submit]").await;
}

async fn signed_out_pages_send_the_browser_to_sign_in(engine: Engine) {
    if !engine.available() {
        return;
    }
    let app = TestApp::spawn(|_| {}).await;
    let mut b = Browser::start(engine, "signed_out_pages_send_the_browser_to_sign_in").await;

    // First start: no admin yet, and the sign-in page says how to get in.
    b.goto(&format!("{}/audit", app.url())).await;
    b.wait("#sign-in").await;
    assert!(
        b.url().await.ends_with("/login?next=/audit"),
        "{}",
        b.url().await
    );
    b.wait("#first-start").await;
    let help = b.text("#first-start").await;
    assert!(help.contains("muster admin add"), "{help}");
    assert!(help.contains("setup link"), "{help}");
    b.step("first-start").await;

    // With an admin, each admin page leads to sign-in and back to itself.
    app.muster
        .add_admin(ADMIN, PASSWORD, &Actor::cli())
        .unwrap();
    for (path, heading) in [
        ("/invites/new?from=mail", "Bulk invites"),
        ("/", "Mailboxes"),
        ("/invites", "Pending invites"),
        ("/tokens", "API tokens"),
    ] {
        b.goto(&format!("{}{path}", app.url())).await;
        b.wait("#sign-in").await;
        assert!(b.url().await.contains("/login?next=/"), "{path}");
        assert_eq!(b.count("#first-start:not([hidden])").await, 0);
        if path == "/invites/new?from=mail" {
            b.step("sign-in-first").await;
        }
        sign_in_here(&b).await;
        b.wait_text("main h1", heading).await;
        assert!(b.url().await.ends_with(path), "{path}: {}", b.url().await);
        b.click("#sign-out").await;
        b.wait("#sign-in").await;
    }
    // Signed in, the sign-in page goes straight on.
    sign_in_here(&b).await;
    b.wait_text("main h1", "Mailboxes").await;
    b.goto(&format!("{}/login?next=%2Faudit", app.url())).await;
    b.wait_text("main h1", "Audit").await;
    b.step("signed-in-goes-on").await;
    b.quit().await;
    app.shutdown().await;
}

/// Waits until the outbox holds `n` emails: the invites have been "sent".
fn outbox_holds(app: &TestApp, n: usize) {
    wait_for(
        "the invites in the outbox",
        std::time::Duration::from_secs(20),
        || {
            let files = std::fs::read_dir(app.dir.data().join("outbox"))
                .map(|d| d.count())
                .unwrap_or(0);
            (files >= n).then_some(())
        },
    );
}

async fn the_pending_list_fits_asks_first_and_exports_what_it_shows(engine: Engine) {
    if !engine.available() {
        return;
    }
    let app = TestApp::spawn(|_| {}).await;
    app.muster
        .add_admin(ADMIN, PASSWORD, &Actor::cli())
        .unwrap();
    let first = app.muster.create_batch(invite_batch(3, "first")).unwrap();
    let second = app.muster.create_batch(invite_batch(2, "second")).unwrap();
    outbox_holds(&app, 5);
    let mut b = Browser::start(
        engine,
        "the_pending_list_fits_asks_first_and_exports_what_it_shows",
    )
    .await;
    b.goto(&format!("{}/invites", app.url())).await;
    b.wait("#sign-in").await;
    sign_in_here(&b).await;
    b.wait_text("main h1", "Pending invites").await;
    b.until("five rows", || async {
        (b.count("tr[data-id]").await == 5).then_some(())
    })
    .await;
    b.step("pending-list").await;
    // No relay: the page says mail is not leaving, and each row says where it is.
    let banner = b.text("#outbox-mode").await;
    assert!(banner.contains("Invites are not being emailed"), "{banner}");
    assert!(
        banner.contains(&app.dir.data().join("outbox").display().to_string()),
        "{banner}"
    );
    assert_eq!(b.count("tr[data-delivery=in_outbox]").await, 5);
    assert!(
        b.text("tr[data-id] .state.in_outbox")
            .await
            .contains("in outbox")
    );

    // Complete and compact on a laptop: no column outside the table's box
    // or the window, rows of one or two lines; usable on a phone.
    for (w, h) in [(1280, 900), (390, 844)] {
        b.set_size(w, h).await;
        let fit = b
            .run(
                "const wrap = document.querySelector('.table-wrap');
                 const rows = [...document.querySelectorAll('tr[data-id]')];
                 const right = Math.max(...rows.map(r => r.lastElementChild.getBoundingClientRect().right));
                 return [wrap.scrollWidth - wrap.clientWidth, right - window.innerWidth,
                         Math.max(...rows.map(r => r.getBoundingClientRect().height))];",
            )
            .await;
        let (inner, outside, tallest) = (
            fit[0].as_f64().unwrap(),
            fit[1].as_f64().unwrap(),
            fit[2].as_f64().unwrap(),
        );
        assert!(
            inner <= 0.0,
            "{w}x{h}: the table scrolls {inner} px inside its box"
        );
        assert!(
            outside <= 0.0,
            "{w}x{h}: the actions end {outside} px past the window"
        );
        if w == 1280 {
            assert!(tallest < 80.0, "rows are {tallest} px tall at 1280");
        }
        // Load more shows only when there is more.
        assert_eq!(b.count("#more:not([hidden])").await, 0);
    }
    // Opened on a phone, the outbox notice is one line that opens on a
    // tap, so the list is not pushed below the fold.
    b.goto(&format!("{}/invites", app.url())).await;
    b.wait("tr[data-id]").await;
    // The first Tab reaches a link past the header, in sight; Enter on
    // it puts the focus on the page itself.
    b.press_anywhere(TAB).await;
    let skip = b
        .run("const a = document.activeElement; const r = a.getBoundingClientRect();
              return [a.className, r.top >= 0 && r.bottom <= window.innerHeight && r.width > 0, a.textContent];")
        .await;
    assert_eq!(skip[0], "skip-link", "{skip}");
    assert_eq!(skip[1], true, "the skip link shows when focused: {skip}");
    b.step("skip-link").await;
    b.press_anywhere(ENTER).await;
    b.until("the focus on the page", || async {
        (b.run("return document.activeElement.id").await == "main").then_some(())
    })
    .await;
    assert_eq!(b.count("#outbox-mode[open]").await, 0);
    let folded = b
        .run("return document.querySelector('#outbox-mode').getBoundingClientRect().height")
        .await;
    assert!(
        folded.as_f64().unwrap() < 120.0,
        "the notice is {folded} px tall"
    );
    b.step("outbox-notice-folded").await;
    // A window widened past a phone's opens it; narrowed again, it folds.
    for (w, h, open) in [(1280, 900, 1), (390, 844, 0)] {
        b.set_size(w, h).await;
        b.until("the notice to follow the width", || async {
            (b.count("#outbox-mode[open]").await == open).then_some(())
        })
        .await;
    }
    b.click("#outbox-mode summary").await;
    b.wait_text("#outbox-mode", "MUSTER_SMTP_HOST").await;
    b.set_size(1280, 900).await;

    // The batch filter shows one batch, and select all takes only it.
    b.click(&format!("#batch option[value='{}']", second.batch.id))
        .await;
    b.click("#filters button[type=submit]").await;
    b.until("the second batch alone", || async {
        (b.count("tr[data-id]").await == 2).then_some(())
    })
    .await;
    assert!(b.text("#invites").await.contains("second0@elsewhere.org"));
    b.click("#select-all").await;
    b.click("#revoke-selected").await;
    b.wait("#confirm[open] #confirm-text").await;
    let ask = b.text("#confirm-text").await;
    assert!(ask.contains("Revoke 2 invites?"), "{ask}");
    b.step("confirm-revoke").await;
    // Cancel changes nothing.
    b.click("#confirm-cancel").await;
    b.until("the dialog closed", || async {
        (b.count("#confirm[open]").await == 0).then_some(())
    })
    .await;
    for i in &second.invites {
        assert_eq!(app.muster.get_invite(&i.id).unwrap().link_state, "live");
    }
    b.click("#revoke-selected").await;
    b.wait("#confirm[open]").await;
    b.click("#confirm-ok").await;
    b.wait_text("#status", "Revoked: 2 invites.").await;
    for i in &second.invites {
        assert_eq!(app.muster.get_invite(&i.id).unwrap().link_state, "revoked");
    }
    // Their emails left the outbox with the revoke: withdrawn, not failed.
    b.until("the revoked rows withdrawn", || async {
        (b.count("tr[data-delivery=withdrawn]").await == 2).then_some(())
    })
    .await;
    assert_eq!(b.count("tr[data-delivery=failed]").await, 0);
    assert!(
        b.text("tr[data-delivery=withdrawn]")
            .await
            .contains("removed from the outbox: the invite was revoked")
    );
    for i in &first.invites {
        assert_eq!(
            app.muster.get_invite(&i.id).unwrap().link_state,
            "live",
            "another batch is untouched"
        );
    }

    // Export: the filtered list as CSV, saved by the browser.
    b.click("#export").await;
    let csv = b
        .until("the downloaded CSV", || async {
            b.downloads().iter().find_map(|p| {
                std::fs::read_to_string(p)
                    .ok()
                    .filter(|t| t.lines().count() == 3)
            })
        })
        .await;
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("recipient_email,display_name,mailbox,link_state"));
    assert!(
        lines[1..]
            .iter()
            .all(|l| l.starts_with("second") && l.contains(",revoked,"))
    );
    b.step("exported").await;
    // A revoked invite takes no action: it cannot be selected, and it
    // shows no buttons.
    assert_eq!(b.count("tr[data-id] .pick:disabled").await, 2);
    assert_eq!(b.count("tr[data-id] button[data-action]").await, 0);

    // The first batch, selected while another admin revokes one of it:
    // the rest are revoked, and the one that was not is named.
    b.click(&format!("#batch option[value='{}']", first.batch.id))
        .await;
    b.click("#filters button[type=submit]").await;
    b.until("the first batch", || async {
        (b.count("tr[data-id] .pick:not(:disabled)").await == 3).then_some(())
    })
    .await;
    b.click("#select-all").await;
    b.click("#revoke-selected").await;
    b.wait("#confirm[open]").await;
    let meanwhile = app
        .muster
        .revoke(&first.invites[0].id, &Actor::cli())
        .unwrap();
    b.click("#confirm-ok").await;
    let status = b.wait_text("#status", "Revoked 2 of 3 invites.").await;
    assert!(
        status.contains(&format!(
            "{}: already revoked meanwhile",
            meanwhile.recipient_email
        )),
        "{status}"
    );
    b.step("revoked-but-one").await;

    // On a phone the header is one line, and Menu opens the links.
    b.set_size(390, 844).await;
    let header = b
        .run("return document.querySelector('.topbar').getBoundingClientRect().height")
        .await;
    assert!(
        header.as_f64().unwrap() < 80.0,
        "the header is {header} px tall"
    );
    let right = b
        .run("return [document.querySelector('#nav-toggle').getBoundingClientRect().left - document.querySelector('.topbar .brand').getBoundingClientRect().right, document.querySelector('#sign-out').getBoundingClientRect().right, window.innerWidth]")
        .await;
    let (gap_after_brand, sign_out_right, width) = (
        right[0].as_f64().unwrap(),
        right[1].as_f64().unwrap(),
        right[2].as_f64().unwrap(),
    );
    assert!(
        gap_after_brand > 40.0 && sign_out_right > width - 40.0,
        "Menu and Sign out sit at the right: {right}"
    );
    b.click("#nav-toggle").await;
    b.wait_text("header .who", ADMIN).await;
    // Add mailboxes opens inside the menu, within the screen.
    b.click("#main-nav .menu summary").await;
    b.wait("#main-nav a[href='/mailboxes/new']").await;
    b.step("menu-open").await;
    // Escape closes the menu and gives the focus back to its button.
    b.press("#main-nav a[href='/tokens']", ESCAPE).await;
    b.wait_attribute("#nav-toggle", "aria-expanded", "false")
        .await;
    assert_eq!(b.count("#main-nav .menu[open]").await, 0);
    b.click("#nav-toggle").await;
    b.click("#main-nav a[href='/audit']").await;
    b.wait_text("main h1", "Audit").await;
    b.quit().await;
    app.shutdown().await;
}

/// Why an invite waits fits on one line, and a click or tap (a phone has
/// no hover) shows all of it, within the window.
async fn why_an_invite_waits_shows_whole_on_a_tap(engine: Engine) {
    if !engine.available() {
        return;
    }
    // A relay that takes no connection: the invite waits, with the reason.
    let app = TestApp::spawn(|c| {
        c.smtp.host = Some("127.0.0.1".into());
        c.smtp.port = free_port();
        c.smtp.tls = muster::config::SmtpTls::None;
        c.smtp.retry_initial_secs = 600;
    })
    .await;
    app.muster
        .add_admin(ADMIN, PASSWORD, &Actor::cli())
        .unwrap();
    let made = app.muster.create_batch(invite_batch(1, "waits")).unwrap();
    let id = made.invites[0].id.clone();
    let reason = wait_for(
        "the invite deferred",
        std::time::Duration::from_secs(30),
        || {
            let v = app.muster.get_invite(&id).unwrap();
            (v.delivery_state == "deferred").then(|| v.delivery_detail.unwrap())
        },
    );
    let mut b = Browser::start(engine, "why_an_invite_waits_shows_whole_on_a_tap").await;
    b.goto(&format!("{}/invites", app.url())).await;
    b.wait("#sign-in").await;
    sign_in_here(&b).await;
    b.wait("tr[data-delivery=deferred] button.detail").await;
    // How often it was tried, and when it is tried next.
    let retry = b.text("tr[data-delivery=deferred] .retry").await;
    assert!(retry.starts_with("1 attempt so far; next try "), "{retry}");
    for (w, h) in [(1280, 900), (390, 844)] {
        b.set_size(w, h).await;
        let cut = "const d = document.querySelector('button.detail');
                   const wrap = document.querySelector('.table-wrap');
                   return [d.scrollWidth - d.clientWidth, d.getBoundingClientRect().height,
                           Math.max(document.documentElement.scrollWidth - window.innerWidth,
                                    wrap.scrollWidth - wrap.clientWidth)];";
        let before = b.run(cut).await;
        assert!(
            before[0].as_f64().unwrap() > 0.0,
            "{w}x{h}: the reason is cut to one line: {before:?}"
        );
        assert_eq!(
            b.html_attribute("button.detail", "aria-expanded")
                .await
                .as_deref(),
            Some("false")
        );
        b.click("button.detail").await;
        b.until("the whole reason", || async {
            (b.text("button.detail").await == reason).then_some(())
        })
        .await;
        let after = b.run(cut).await;
        assert!(
            after[0].as_f64().unwrap() <= 0.0
                && after[1].as_f64().unwrap() > before[1].as_f64().unwrap(),
            "{w}x{h}: the whole reason shows on several lines: {after:?}"
        );
        assert!(
            after[2].as_f64().unwrap() <= 0.0,
            "{w}x{h}: the page or the table scrolls sideways: {after:?}"
        );
        assert_eq!(
            b.html_attribute("button.detail", "aria-expanded")
                .await
                .as_deref(),
            Some("true")
        );
        b.step(&format!("reason-open-{w}")).await;
        // Another tap folds it again.
        b.click("button.detail").await;
        b.wait_attribute("button.detail", "aria-expanded", "false")
            .await;
    }
    b.quit().await;
    app.shutdown().await;
}

/// A resent invite's email goes out after the list was drawn: the row
/// follows it to "sent" by itself, with no reload, and a ticked row stays
/// ticked.
async fn a_resent_invite_follows_its_email_without_a_reload(engine: Engine) {
    if !engine.available() {
        return;
    }
    let relay = Peer::start(vec![]).await;
    let app = TestApp::spawn(|c| {
        c.smtp.host = Some("127.0.0.1".into());
        c.smtp.port = relay.port;
        c.smtp.tls = muster::config::SmtpTls::None;
    })
    .await;
    app.muster
        .add_admin(ADMIN, PASSWORD, &Actor::cli())
        .unwrap();
    let made = app.muster.create_batch(invite_batch(2, "follow")).unwrap();
    wait_for("both invites sent", Duration::from_secs(30), || {
        made.invites
            .iter()
            .all(|i| app.muster.get_invite(&i.id).unwrap().delivery_state == "sent")
            .then_some(())
    });
    // From now on the relay takes a while over each message.
    relay.set_delay(Duration::from_secs(5));
    let mut b = Browser::start(engine, "a_resent_invite_follows_its_email_without_a_reload").await;
    b.goto(&format!("{}/invites", app.url())).await;
    b.wait("#sign-in").await;
    sign_in_here(&b).await;
    b.until("two sent rows", || async {
        (b.count("tr[data-delivery=sent]").await == 2).then_some(())
    })
    .await;
    let resent = &made.invites[0];
    b.run("window.sameDocument = true; return null").await;
    b.click(&format!(
        "tr[data-id='{}'] button[data-action=resend]",
        resent.id
    ))
    .await;
    b.wait("#confirm[open]").await;
    b.click("#confirm-ok").await;
    b.wait_text("#status", "Resent the invite to").await;
    // The keyboard is back on the row's Resend button.
    let focus_on_resend = format!(
        "const a = document.activeElement; return a.dataset.action === 'resend' && a.closest('tr').dataset.id === '{}';",
        resent.id
    );
    b.until("the focus back on Resend", || async {
        (b.run(&focus_on_resend).await == serde_json::json!(true)).then_some(())
    })
    .await;
    // Sending lasts the relay's 5 s: the row is not redrawn meanwhile.
    b.until("the resent row sending", || async {
        (b.count(&format!(
            "tr[data-id='{}'][data-delivery=sending]",
            resent.id
        ))
        .await
            == 1)
            .then_some(())
    })
    .await;
    // Ticked while on its way; the focus stays on the tick box when the
    // row is redrawn.
    let pick = format!("tr[data-id='{}'] .pick", resent.id);
    b.click(&pick).await;
    b.step("resent-on-its-way").await;
    b.until("the resent row sent", || async {
        (b.count(&format!("tr[data-id='{}'][data-delivery=sent]", resent.id))
            .await
            == 1)
            .then_some(())
    })
    .await;
    assert_eq!(relay.received().len(), 3, "the resend went out once");
    assert_eq!(
        b.run("return window.sameDocument === true").await,
        serde_json::Value::Bool(true),
        "the page was not reloaded"
    );
    assert_eq!(
        b.property(&pick, "checked").await,
        serde_json::Value::Bool(true),
        "the row is still ticked"
    );
    assert_eq!(
        b.run("return document.activeElement.classList.contains('pick')")
            .await,
        serde_json::Value::Bool(true),
        "the focus is still on the tick box"
    );
    b.step("resent-sent").await;
    b.quit().await;
    app.shutdown().await;
}

const TOKEN_NAME: &str = "HR pipeline nightly_sync_from_the_people_team_spreadsheet_export";

async fn a_token_secret_is_copied_once_and_revoking_asks_first(engine: Engine) {
    if !engine.available() {
        return;
    }
    let app = TestApp::spawn(|_| {}).await;
    app.muster
        .add_admin(ADMIN, PASSWORD, &Actor::cli())
        .unwrap();
    let mut b = Browser::start(
        engine,
        "a_token_secret_is_copied_once_and_revoking_asks_first",
    )
    .await;
    b.goto(&format!("{}/tokens", app.url())).await;
    b.wait("#sign-in").await;
    sign_in_here(&b).await;
    b.wait_text("main h1", "API tokens").await;
    // A name with one long word, as tools get named: it wraps on a phone.
    b.type_in("#name", TOKEN_NAME).await;
    b.click("#create button[type=submit]").await;
    b.wait("#secret-value").await;
    let secret = b
        .property("#secret-value", "value")
        .await
        .as_str()
        .unwrap()
        .to_string();
    assert!(secret.len() > 30, "{secret}");
    b.click("#copy-secret").await;
    b.wait_text("#copy-status", "Copied to the clipboard.")
        .await;
    // What was copied is the secret: pasted back into a field.
    let pasted = b
        .run_async(
            "const done = arguments[arguments.length - 1];
             navigator.clipboard.readText().then(done, e => done('unreadable: ' + e));",
        )
        .await;
    if !pasted.as_str().unwrap_or("").starts_with("unreadable") {
        assert_eq!(pasted, secret.as_str());
    }
    b.step("token-secret").await;

    // Revoking asks first; cancel keeps the token working.
    b.click("tr[data-id] button.revoke").await;
    b.wait("#confirm[open] #confirm-text").await;
    let ask = b.text("#confirm-text").await;
    assert!(
        ask.contains(&format!("Revoke the token \"{TOKEN_NAME}\"?")),
        "{ask}"
    );
    b.step("token-revoke-confirm").await;
    b.click("#confirm-cancel").await;
    b.until("the dialog closed", || async {
        (b.count("#confirm[open]").await == 0).then_some(())
    })
    .await;
    let working = |app: &TestApp| {
        app.muster
            .api_tokens()
            .unwrap()
            .iter()
            .filter(|t| t.name == TOKEN_NAME && t.revoked_at.is_none())
            .count()
    };
    assert_eq!(working(&app), 1);
    assert_eq!(b.count("#secret-value").await, 1);
    // Revoked, its secret leaves the screen.
    b.click("tr[data-id] button.revoke").await;
    b.wait("#confirm[open]").await;
    b.click("#confirm-ok").await;
    b.wait_text("#status", &format!("Revoked the token \"{TOKEN_NAME}\"."))
        .await;
    assert_eq!(working(&app), 0);
    assert_eq!(b.count("#secret-value").await, 0);
    assert!(!b.text("main").await.contains(&secret));
    b.step("token-revoked").await;
    // The API reference, and the way back from it.
    b.click("main a[href='/api/docs']").await;
    b.wait(".swagger-ui .info").await;
    b.step_vendored("api-docs").await;
    b.click("a[href='/']").await;
    b.wait_text("main h1", "Mailboxes").await;
    let icon = b
        .run_async(
            "const done = arguments[arguments.length - 1];
             const href = document.querySelector('link[rel=icon]').href;
             fetch(href).then(r => done([r.status, r.headers.get('content-type')]), e => done(String(e)));",
        )
        .await;
    assert_eq!(icon, serde_json::json!([200, "image/svg+xml"]));
    b.quit().await;
    app.shutdown().await;
}

async fn the_audit_trail_names_what_happened_and_filters(engine: Engine) {
    if !engine.available() {
        return;
    }
    let app = TestApp::spawn(|_| {}).await;
    app.muster
        .add_admin(ADMIN, PASSWORD, &Actor::cli())
        .unwrap();
    let batch = app.muster.create_batch(invite_batch(2, "audit")).unwrap();
    app.muster
        .revoke(&batch.invites[0].id, &Actor::admin(ADMIN))
        .unwrap();
    let mut b = Browser::start(engine, "the_audit_trail_names_what_happened_and_filters").await;
    // One failed sign-in, then the right password.
    b.goto(&format!("{}/audit", app.url())).await;
    b.wait("#sign-in").await;
    b.type_in("#email", ADMIN).await;
    b.type_in("#password", "not-the-password-at-all").await;
    b.click("#sign-in button[type=submit]").await;
    b.wait_text("#status", "wrong").await;
    sign_in_here(&b).await;
    b.wait_text("main h1", "Audit trail").await;
    b.wait("tr[data-action='admin.sign_in_failed']").await;
    let failed = b.text("tr[data-action='admin.sign_in_failed']").await;
    assert!(
        failed.contains("Sign-in failed") && failed.contains("client 127.0.0.1"),
        "{failed}"
    );
    // Ids are named: the revoked invite by its mailbox and recipient.
    let revoked = b.text("tr[data-action='invite.revoke']").await;
    assert!(
        revoked.contains("audit0@team.example (invited at audit0@elsewhere.org)")
            && revoked.contains(&format!("{ADMIN} (admin)")),
        "{revoked}"
    );
    assert!(
        b.text("tr[data-action='batch.create']")
            .await
            .contains("2 invites for team.example")
    );
    b.step("audit").await;

    // Filter by kind.
    b.click("#kind option[value='admin.sign_in_failed']").await;
    b.click("#filters button[type=submit]").await;
    b.until("only failed sign-ins", || async {
        let all = b.count("#audit tbody tr").await;
        (all > 0 && all == b.count("tr[data-action='admin.sign_in_failed']").await).then_some(())
    })
    .await;
    b.wait_text("#count", "Showing 1 event.").await;
    // Export what is shown.
    b.click("#export").await;
    let csv = b
        .until("the downloaded audit CSV", || async {
            b.downloads().iter().find_map(|p| {
                std::fs::read_to_string(p)
                    .ok()
                    .filter(|t| t.lines().count() >= 2)
            })
        })
        .await;
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(lines[1].contains("admin.sign_in_failed") && lines[1].contains("client:127.0.0.1"));
    // By actor and by date.
    b.click("#kind option[value='']").await;
    b.type_in("#actor", ADMIN).await;
    b.click("#filters button[type=submit]").await;
    b.until("only the admin's own events", || async {
        let rows = b
            .run("return [...document.querySelectorAll('#audit tbody tr')].map(r => [r.dataset.action, r.children[1].textContent])")
            .await;
        let rows = rows.as_array().cloned().unwrap_or_default();
        let mine = rows.iter().all(|r| r[1].as_str().unwrap_or("").ends_with("(admin)"));
        let actions: Vec<&str> = rows.iter().filter_map(|r| r[0].as_str()).collect();
        (mine && actions.contains(&"invite.revoke") && actions.contains(&"admin.sign_in")
            && !actions.contains(&"admin.sign_in_failed"))
        .then_some(())
    })
    .await;
    // By the name the page shows: Muster's own work.
    b.type_in("#actor", "Muster").await;
    b.click("#filters button[type=submit]").await;
    b.until("only Muster's own events", || async {
        let who = b
            .run("return [...document.querySelectorAll('#audit tbody tr')].map(r => r.children[1].textContent)")
            .await;
        let who = who.as_array().cloned().unwrap_or_default();
        (!who.is_empty() && who.iter().all(|w| w == "Muster")).then_some(())
    })
    .await;
    b.type_in("#actor", "").await;
    b.run("document.querySelector('#until').value = '2020-01-01'")
        .await;
    b.click("#filters button[type=submit]").await;
    b.wait_text("#count", "No events match.").await;
    b.step("audit-filtered").await;
    // A date that is not one is named.
    let (status, body) = app
        .call(reqwest::Method::GET, "/audit?from=yesterday", None)
        .await;
    assert_eq!(status, 422);
    assert!(
        body["message"].as_str().unwrap().contains("`from`"),
        "{body}"
    );
    b.quit().await;
    app.shutdown().await;
}

/// Two mailboxes made by bulk creation: jane (100 MB) and sam (2 GB).
fn two_mailboxes(app: &TestApp) {
    let row = |local: &str, mb: &str, name: &str| muster::domain::roster::CreationRow {
        local_part: local.into(),
        password: Some("copper-lantern-orbit-42".into()),
        storage_allocation_mb: Some(mb.into()),
        display_name: Some(name.into()),
        ..Default::default()
    };
    app.muster
        .create_mailboxes(&muster::service::CreationRequest {
            domain: None,
            rows: &[
                row("jane", "100", "Jane Doe"),
                row("sam", "2048", "Sam Roe"),
            ],
            only_clean: false,
            actor: &Actor::cli(),
            limit: muster::service::RowLimit::Batch,
        })
        .unwrap();
}

async fn mailboxes_are_found_resized_suspended_and_removed(engine: Engine) {
    if !engine.available() {
        return;
    }
    let app = TestApp::spawn(|c| c.storage_pool_mb = 4096).await;
    app.muster
        .add_admin(ADMIN, PASSWORD, &Actor::cli())
        .unwrap();
    two_mailboxes(&app);
    let passwd = || std::fs::read_to_string(app.muster.config.passwd_file()).unwrap();
    let mut b = Browser::start(engine, "mailboxes_are_found_resized_suspended_and_removed").await;
    b.goto(&format!("{}/", app.url())).await;
    b.wait("#sign-in").await;
    sign_in_here(&b).await;
    b.wait("tr[data-address='sam@team.example']").await;
    // Sizes in words; search and sort.
    let sam = b.text("tr[data-address='sam@team.example']").await;
    assert!(sam.contains("2 GB") && sam.contains("Sam Roe"), "{sam}");
    assert!(b.text("#capacity").await.contains("4 GB"));
    b.type_in("#search", "jane").await;
    b.wait_text("#count", "1 mailbox of 2 match.").await;
    b.type_in("#search", "").await;
    b.click("#sort option[value=allocation]").await;
    let first = b
        .run("return document.querySelector('#mailboxes tbody tr').dataset.address")
        .await;
    assert_eq!(first, "sam@team.example");
    b.step("mailboxes").await;

    // A new allocation: one the pool cannot give is refused in words.
    b.click("tr[data-address='jane@team.example'] button[data-action=allocation]")
        .await;
    b.wait("#allocation-dialog[open]").await;
    b.type_in("#allocation-size", "3").await;
    b.click("#allocation-unit option[value=gb]").await;
    b.click("#allocation-save").await;
    let refused = b.wait_text("#allocation-status", "does not fit").await;
    assert!(refused.contains("2 GB of 4 GB"), "{refused}");
    b.step("allocation-refused").await;
    b.type_in("#allocation-size", "300").await;
    b.click("#allocation-unit option[value=mb]").await;
    b.click("#allocation-save").await;
    b.wait_text("#status", "jane@team.example now has 300 MB.")
        .await;
    assert!(passwd().contains("storage=300M"));
    assert!(
        b.text("tr[data-address='jane@team.example']")
            .await
            .contains("300 MB")
    );
    // 2000 MB is a little under 2 GB, and reads so beside sam's 2 GB.
    b.click("tr[data-address='jane@team.example'] button[data-action=allocation]")
        .await;
    b.wait("#allocation-dialog[open]").await;
    b.type_in("#allocation-size", "2000").await;
    b.click("#allocation-save").await;
    b.wait_text("#status", "jane@team.example now has 1.95 GB.")
        .await;
    assert!(passwd().contains("storage=2000M"));

    // Suspend asks first; restore does not.
    b.click("tr[data-address='jane@team.example'] button[data-action=suspend]")
        .await;
    b.wait("#confirm[open]").await;
    assert!(
        b.text("#confirm-text")
            .await
            .contains("Suspend jane@team.example?")
    );
    b.click("#confirm-ok").await;
    b.wait("tr[data-address='jane@team.example'][data-state=suspended]")
        .await;
    assert!(
        passwd()
            .lines()
            .any(|l| l.starts_with("jane@") && l.contains("nologin=y"))
    );
    b.step("suspended").await;
    b.click("tr[data-address='jane@team.example'] button[data-action=restore]")
        .await;
    b.wait("tr[data-address='jane@team.example'][data-state=active]")
        .await;
    assert!(!passwd().contains("nologin"));

    // Remove asks first, with the mail folder kept unless ticked.
    b.click("tr[data-address='sam@team.example'] button[data-action=remove]")
        .await;
    b.wait("#remove-dialog[open]").await;
    b.step("remove-confirm").await;
    b.click("#remove-cancel").await;
    assert!(passwd().contains("sam@"));
    b.click("tr[data-address='sam@team.example'] button[data-action=remove]")
        .await;
    b.wait("#remove-dialog[open]").await;
    b.click("#remove-ok").await;
    let said = b.wait_text("#status", "Removed sam@team.example").await;
    assert!(said.contains("is kept"), "{said}");
    b.until("the row gone", || async {
        (b.count("tr[data-address='sam@team.example']").await == 0).then_some(())
    })
    .await;
    assert!(!passwd().contains("sam@"));
    b.step("removed").await;
    b.quit().await;
    app.shutdown().await;
}

crate::in_both_browsers!(
    mailboxes_are_found_resized_suspended_and_removed,
    the_audit_trail_names_what_happened_and_filters,
    a_token_secret_is_copied_once_and_revoking_asks_first,
    signed_out_pages_send_the_browser_to_sign_in,
    the_pending_list_fits_asks_first_and_exports_what_it_shows,
    why_an_invite_waits_shows_whole_on_a_tap,
    a_resent_invite_follows_its_email_without_a_reload,
);
