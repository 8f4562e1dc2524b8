//! Following up in the web app, in both browsers: a link from a notice
//! opens the pending list filtered to what it names, *Setup failed* finds
//! the invites whose mailbox could not be made, "Resend all still
//! pending…" shows which invites before it sends them fresh links, and the
//! Webhooks page adds an endpoint (its secret shown once), shows its
//! delivery log, redelivers and removes it.

use std::sync::Arc;

use crate::support::app::TestApp;
use crate::support::webdriver::{Browser, Engine};
use crate::support::*;
use muster::domain::roster::InviteRow;
use muster::service::{BatchRequest, ManualClock};
use muster::store::Actor;
use time::Duration as Span;

const ADMIN: &str = "admin@team.example";

async fn sign_in(b: &mut Browser, app: &TestApp) {
    b.goto(&format!("{}/login", app.url())).await;
    b.type_in("#email", ADMIN).await;
    b.type_in("#password", PASSWORD).await;
    b.click("#sign-in button[type=submit]").await;
    b.wait_text("main h1", "Mailboxes").await;
}

fn people(names: &[&str]) -> BatchRequest {
    BatchRequest::new(
        names
            .iter()
            .map(|n| InviteRow::to(format!("{n}@elsewhere.org")))
            .collect(),
        Actor::admin(ADMIN),
    )
}

async fn resend_all_still_pending_after_a_week(engine: Engine) {
    if !engine.available() {
        return;
    }
    let clock = Arc::new(ManualClock::new(time::OffsetDateTime::now_utc()));
    let app = TestApp::spawn_with_clock(|_| {}, clock.clone()).await;
    app.muster
        .add_admin(ADMIN, PASSWORD, &Actor::cli())
        .unwrap();
    let old = app.muster.create_batch(people(&["ann", "bo"])).unwrap();
    clock.advance(Span::days(8));
    app.muster.create_batch(people(&["cy"])).unwrap();
    let mut b = Browser::start(engine, "resend_all_still_pending_after_a_week").await;
    sign_in(&mut b, &app).await;

    // A notice's link: the list opens filtered to what it names.
    b.goto(&format!(
        "{}/invites?batch={}&state=pending&q=ann",
        app.url(),
        old.batch.id
    ))
    .await;
    b.wait("tr[data-id]").await;
    assert_eq!(b.count("tr[data-id]").await, 1);
    assert!(b.text("#invites").await.contains("ann@elsewhere.org"));
    assert_eq!(b.property("#q", "value").await, serde_json::json!("ann"));
    assert_eq!(
        b.property("#state", "value").await,
        serde_json::json!("pending")
    );
    assert_eq!(
        b.property("#batch", "value").await,
        serde_json::json!(old.batch.id)
    );
    b.step("filtered-by-a-link").await;

    // Every batch: ann and bo have waited 8 days, cy not yet.
    b.goto(&format!("{}/invites", app.url())).await;
    b.wait("tr[data-id]").await;
    b.click("#resend-pending").await;
    b.wait("#rp-dialog[open]").await;
    assert_eq!(
        b.property("#rp-send", "disabled").await,
        serde_json::json!(true)
    );
    b.type_in("#rp-days", "7").await;
    b.click("#rp-preview").await;
    let summary = b
        .wait_text("#rp-summary", "2 invites still pending 7 days or more")
        .await;
    assert!(summary.ends_with("after the link went out:"), "{summary}");
    let list = b.text("#rp-list").await;
    assert!(
        list.contains("ann@elsewhere.org") && list.contains("bo@elsewhere.org"),
        "{list}"
    );
    assert!(!list.contains("cy@"), "{list}");
    assert_eq!(b.text("#rp-send").await, "Resend 2 invites");
    b.step("which-would-be-resent").await;
    // Changing the wait asks for the list again before anything is sent.
    b.type_in("#rp-days", "10").await;
    assert_eq!(
        b.property("#rp-send", "disabled").await,
        serde_json::json!(true)
    );
    b.type_in("#rp-days", "7").await;
    b.click("#rp-preview").await;
    b.wait_text("#rp-send", "Resend 2 invites").await;
    b.click("#rp-send").await;
    b.wait_text("#status", "Resent 2 invites with fresh links.")
        .await;
    assert_eq!(b.count("#rp-dialog[open]").await, 0);
    b.step("resent").await;
    let view = app.muster.store.read().unwrap();
    for i in &old.invites {
        assert_eq!(view.invite(&i.id).unwrap().unwrap().generation, 1);
    }
    drop(view);

    // On a phone the dialog fits.
    b.set_size(390, 844).await;
    b.click("#resend-pending").await;
    b.wait("#rp-dialog[open]").await;
    b.click("#rp-preview").await;
    b.wait_text("#rp-summary", "No invite is still pending 7 days")
        .await;
    let overflow = b
        .run("return document.documentElement.scrollWidth - window.innerWidth")
        .await;
    assert!(
        overflow.as_i64().unwrap() <= 0,
        "sideways scroll: {overflow}"
    );
    b.step("phone-dialog").await;
    b.click("#rp-close").await;
    b.quit().await;
    app.shutdown().await;
}

async fn webhook_endpoints_and_their_delivery_log(engine: Engine) {
    if !engine.available() {
        return;
    }
    let app = TestApp::spawn(|c| {
        c.webhooks.retry_initial_secs = 1;
        c.webhooks.retry_max_secs = 1;
    })
    .await;
    app.muster
        .add_admin(ADMIN, PASSWORD, &Actor::cli())
        .unwrap();
    let mut b = Browser::start(engine, "webhook_endpoints_and_their_delivery_log").await;
    sign_in(&mut b, &app).await;
    b.click("nav a[href='/webhooks']").await;
    b.wait_text("main h1", "Webhooks").await;
    b.wait("#none:not([hidden])").await;
    assert_eq!(b.count("input[name=event]:checked").await, 10);
    b.step("no-endpoints").await;

    // A refused address is named, and nothing is added.
    b.type_in("#url", "http://169.254.169.254/latest").await;
    b.click("#create button[type=submit]").await;
    let said = b.wait_text("#create #create-error", "cloud metadata").await;
    assert!(said.contains("webhooks.allow_addresses"), "{said}");
    assert_eq!(b.count("section.endpoint").await, 0);
    assert_eq!(b.count("#url[aria-invalid=true]").await, 1);
    let focused = b.run("return document.activeElement.id").await;
    assert_eq!(focused, "url", "the field to mend has the focus");
    b.step("refused-address").await;

    // Nobody listens on this port: deliveries wait, with the reason.
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/hooks");
    b.type_in("#url", &url).await;
    b.click("input[value='invite.sent']").await;
    b.click("#create button[type=submit]").await;
    b.wait("#secret:not([hidden]) #secret-value").await;
    assert_eq!(b.count("#create-error:not([hidden])").await, 0);
    let secret = b.property("#secret-value", "value").await;
    assert!(secret.as_str().unwrap().starts_with("whsec_"), "{secret}");
    b.wait("section.endpoint").await;
    let events = b.text("section.endpoint").await;
    assert!(
        events.contains("invite.created") && !events.contains("invite.sent"),
        "{events}"
    );
    b.step("secret-shown-once").await;
    b.click("#secret-done").await;
    assert_eq!(b.count("#secret:not([hidden])").await, 0);

    app.muster.create_batch(people(&["ann"])).unwrap();
    b.until("the failed attempt in the log", || async {
        b.click("section.endpoint button.show").await;
        let t = b.text("section.endpoint .deliveries").await;
        t.contains("could not connect").then_some(())
    })
    .await;
    let row = b.text("section.endpoint .deliveries tbody tr").await;
    assert!(
        row.contains("invite.created") && row.contains("pending"),
        "{row}"
    );
    let summary = b.text("section.endpoint .summary").await;
    assert!(
        summary.starts_with("1 delivery waiting; latest pending: could not connect"),
        "{summary}"
    );
    b.run("document.querySelector('section.endpoint').scrollIntoView()")
        .await;
    b.step("delivery-log").await;
    b.click("section.endpoint .deliveries tbody tr button")
        .await;
    b.wait_text("#status", "Queued invite.created again").await;
    b.until("two deliveries", || async {
        (b.count("section.endpoint .deliveries tbody tr").await == 2).then_some(())
    })
    .await;

    b.set_size(390, 844).await;
    let overflow = b
        .run("return document.documentElement.scrollWidth - window.innerWidth")
        .await;
    assert!(
        overflow.as_i64().unwrap() <= 0,
        "sideways scroll: {overflow}"
    );
    b.step("phone").await;
    b.set_size(1280, 900).await;

    // The audit trail tells of the endpoint in words, and filters to it.
    b.goto(&format!("{}/audit", app.url())).await;
    b.click("#kind option[value=webhook]").await;
    b.click("#filters button[type=submit]").await;
    b.until("only webhook events", || async {
        let all = b.count("#audit tbody tr").await;
        (all == 2 && b.count("tr[data-action^='webhook.']").await == 2).then_some(())
    })
    .await;
    let trail = b.text("#audit").await;
    for words in [
        "Webhook endpoint added",
        "Webhook delivery sent again",
        &format!("webhook endpoint {url}"),
    ] {
        assert!(trail.contains(words), "{words:?} missing from {trail}");
    }
    b.step("audit-webhooks").await;
    b.goto(&format!("{}/webhooks", app.url())).await;
    b.wait("section.endpoint").await;
    b.click("section.endpoint button.remove").await;
    b.wait("#confirm[open] #confirm-text").await;
    assert!(b.text("#confirm-text").await.contains(&url));
    b.click("#confirm-ok").await;
    b.wait_text("#status", "Removed").await;
    b.wait("#none:not([hidden])").await;
    assert!(app.muster.list_webhooks().unwrap().is_empty());
    b.quit().await;
    app.shutdown().await;
}

/// An admin told that a mailbox could not be made finds the invite with
/// *Setup failed* in the state filter, and its reason beside it.
async fn invites_whose_mailbox_was_not_made_are_found_with_their_reason(engine: Engine) {
    if !engine.available() {
        return;
    }
    let app = TestApp::spawn(|_| {}).await;
    app.muster
        .add_admin(ADMIN, PASSWORD, &Actor::cli())
        .unwrap();
    let made = app.muster.create_batch(people(&["ann", "bob"])).unwrap();
    // Another writer holds the passwd-file while ann chooses her password.
    let lock = hold_passwd_lock(&app.muster.config);
    let token = app.muster.invite_token(&made.invites[0]).unwrap();
    assert!(
        app.muster
            .redeem(token.as_str(), PASSWORD, PASSWORD)
            .is_err()
    );
    drop(lock);

    let mut b = Browser::start(
        engine,
        "invites_whose_mailbox_was_not_made_are_found_with_their_reason",
    )
    .await;
    sign_in(&mut b, &app).await;
    // A mistyped state in the address is said, not silently dropped.
    b.goto(&format!("{}/invites?state=setup_faild", app.url()))
        .await;
    b.wait_text(
        "#status",
        "the state \"setup_faild\", which the list does not know",
    )
    .await;
    b.wait("tr[data-id]").await;
    assert_eq!(b.count("tr[data-id]").await, 2);
    // The reason keeps ann's row as short as bob's until it is asked for.
    let height = |who: &str| {
        format!(
            "return [...document.querySelectorAll('tr[data-id]')].find(r => r.textContent.includes('{who}')).getBoundingClientRect().height"
        )
    };
    let (ann, bob) = (
        b.run(&height("ann@")).await.as_f64().unwrap(),
        b.run(&height("bob@")).await.as_f64().unwrap(),
    );
    assert!(ann <= bob + 1.0, "ann's row {ann} px, bob's {bob} px");
    b.click("#state option[value=setup_failed]").await;
    b.click("#filters button[type=submit]").await;
    b.until("the list filtered to setup failures", || async {
        (b.count("tr[data-id]").await == 1).then_some(())
    })
    .await;
    let row = b.text("#invites").await;
    assert!(
        row.contains("ann@elsewhere.org") && row.contains("locked by another writer"),
        "{row}"
    );
    // The address says what is shown.
    assert_eq!(
        b.url().await,
        format!("{}/invites?state=setup_failed", app.url())
    );
    assert!(!row.contains("bob@elsewhere.org"), "{row}");
    // Every column in view at both sizes, the actions within the window.
    for (w, h) in [(1280, 900), (390, 844)] {
        b.set_size(w, h).await;
        let fit = b
            .run(
                "const wrap = document.querySelector('.table-wrap');
                 const row = document.querySelector('tr[data-id]');
                 return [wrap.scrollWidth - wrap.clientWidth,
                         row.lastElementChild.getBoundingClientRect().right - window.innerWidth];",
            )
            .await;
        let (inner, outside) = (fit[0].as_f64().unwrap(), fit[1].as_f64().unwrap());
        assert!(
            inner <= 0.0,
            "{w}x{h}: the table scrolls {inner} px inside its box"
        );
        assert!(
            outside <= 0.0,
            "{w}x{h}: the actions end {outside} px past the window"
        );
    }
    b.set_size(1280, 900).await;
    b.step("setup-failed").await;
    let reason = "td[data-label=Link] button.detail";
    b.click(reason).await;
    b.wait_attribute(reason, "aria-expanded", "true").await;
    let open = b.run(&height("ann@")).await.as_f64().unwrap();
    assert!(open > ann, "{open} px open against {ann} px shut");
    b.step("setup-failed-reason").await;
    b.quit().await;
    app.shutdown().await;
}

crate::in_both_browsers!(
    resend_all_still_pending_after_a_week,
    webhook_endpoints_and_their_delivery_log,
    invites_whose_mailbox_was_not_made_are_found_with_their_reason
);
