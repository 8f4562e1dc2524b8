//! The admin web app in a real headless Chromium (Debian's chromium and
//! chromedriver): first-run setup, sign-in, forgot password, the Bulk
//! invites wizard, the pending list, a CSV over the pool, bulk creation,
//! and a state-changing request without its CSRF token.

use std::path::PathBuf;

use crate::support::app::TestApp;
use crate::support::webdriver::{Browser, Engine};
use crate::support::*;
use muster::App;
use muster::store::Actor;

pub(crate) const ADMIN: &str = "admin@team.example";

pub(crate) async fn sign_in(b: &mut Browser, app: &App, password: &str) {
    b.goto(&format!("{}/login", app.url())).await;
    b.type_in("#email", ADMIN).await;
    b.type_in("#password", password).await;
    b.click("#sign-in button[type=submit]").await;
    b.wait_text("main h1", "Mailboxes").await;
    b.step("signed-in").await;
}

fn outbox_files(t: &TestDir) -> Vec<PathBuf> {
    std::fs::read_dir(t.data().join("outbox"))
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default()
}

async fn first_run_setup_sign_in_and_forgot_password(engine: Engine) {
    if !engine.available() {
        return;
    }
    let app = TestApp::spawn(|_| {}).await;
    let mut b = Browser::start(engine, "first_run_setup_sign_in_and_forgot_password").await;

    // First run: the setup link creates the first admin and signs them in.
    let link = app.muster.setup_link().unwrap().expect("no admin yet");
    b.goto(&link).await;
    b.step("setup").await;
    b.type_in("#email", ADMIN).await;
    b.type_in("#password", PASSWORD).await;
    b.type_in("#confirmation", PASSWORD).await;
    b.click("#setup button[type=submit]").await;
    b.wait_text("main h1", "Mailboxes").await;
    assert!(b.text(".topbar").await.contains(ADMIN));
    b.step("signed-in-after-setup").await;
    // The setup link is used up.
    b.click("#sign-out").await;
    b.wait("#sign-in").await;
    assert!(b.text(".cookies").await.contains("sign-in only"));
    // Opened again, it says so at once, with no form to fill in for
    // nothing, and leads to the sign-in page.
    b.goto(&link).await;
    b.wait_text("#status", "this setup link has done its work")
        .await;
    assert_eq!(b.count("#setup:not([hidden])").await, 0);
    assert!(!b.text("main").await.contains("This link works once"));
    b.step("setup-used").await;
    b.click("#status a").await;
    b.wait("#sign-in").await;

    // A wrong password is refused.
    b.goto(&format!("{}/login", app.url())).await;
    b.type_in("#email", ADMIN).await;
    b.type_in("#password", "not-the-password").await;
    b.click("#sign-in button[type=submit]").await;
    b.wait_text("#status", "The email or the password is wrong.")
        .await;
    b.step("wrong-password").await;

    // Forgot password: the same answer for a known and an unknown address.
    let answer = "If an account exists for this email, we've sent password reset instructions.";
    for email in ["nobody@team.example", ADMIN] {
        b.goto(&format!("{}/login", app.url())).await;
        b.click("#forgot-link").await;
        b.type_in("#forgot-email", email).await;
        b.click("#forgot button[type=submit]").await;
        assert_eq!(b.wait_text("#status", "If an account").await, answer);
    }
    b.step("forgot-sent").await;
    // Only the real account got an email.
    let resets: Vec<PathBuf> = wait_for(
        "the reset email",
        std::time::Duration::from_secs(20),
        || {
            let files: Vec<PathBuf> = outbox_files(&app.dir)
                .into_iter()
                .filter(|p| {
                    p.file_name()
                        .unwrap()
                        .to_string_lossy()
                        .starts_with("reset-")
                })
                .collect();
            (!files.is_empty()).then_some(files)
        },
    );
    assert_eq!(resets.len(), 1);
    let mail = std::fs::read(&resets[0]).unwrap();
    let msg = mail_parser::MessageParser::default().parse(&mail).unwrap();
    assert_eq!(msg.to().unwrap().first().unwrap().address().unwrap(), ADMIN);
    let text = msg.body_text(0).unwrap().to_string();
    let reset_link = text
        .split_whitespace()
        .find(|w| w.contains("/admin/reset#"))
        .unwrap()
        .to_string();

    let new_pw = "orbit-lantern-sable-19";
    b.goto(&reset_link).await;
    b.type_in("#password", new_pw).await;
    b.type_in("#confirmation", new_pw).await;
    b.click("#reset button[type=submit]").await;
    b.wait_text("#status", "was changed").await;
    b.step("reset-done").await;
    // The link works once (opened afresh, as from the email again: the
    // token is in the fragment, so the same address would not reload).
    b.goto(&format!("{}/login", app.url())).await;
    b.goto(&reset_link).await;
    b.type_in("#password", "another-sable-lantern-7").await;
    b.type_in("#confirmation", "another-sable-lantern-7").await;
    b.click("#reset button[type=submit]").await;
    b.wait_text("#status", "not valid").await;
    sign_in(&mut b, &app, new_pw).await;
    b.quit().await;
    app.shutdown().await;
}

async fn the_bulk_invites_wizard_and_the_pending_list(engine: Engine) {
    if !engine.available() {
        return;
    }
    let app = TestApp::spawn(|_| {}).await;
    app.muster
        .add_admin(ADMIN, PASSWORD, &Actor::cli())
        .unwrap();
    let mut b = Browser::start(engine, "the_bulk_invites_wizard_and_the_pending_list").await;
    sign_in(&mut b, &app, PASSWORD).await;

    // The Add mailboxes menu leads to the wizard.
    b.click(".menu summary").await;
    b.click(".menu-items a[href='/invites/new']").await;
    b.wait_text("main h1", "Bulk invites").await;
    b.type_in(
        "#paste",
        "jane@elsewhere.org\nnot-an-address\nJANE@elsewhere.org\nsam@elsewhere.org\n",
    )
    .await;
    b.step("pasted").await;
    b.click("#to-preview").await;
    b.wait("#step2").await;
    b.wait_text("#summary", "4 rows: 2 clean, 2 flagged").await;
    assert_eq!(b.count("[data-code=invalid_recipient_email]").await, 1);
    assert_eq!(b.count("[data-code=duplicate_recipient]").await, 1);
    assert!(
        b.text("#preview")
            .await
            .contains("is not a valid email address")
    );
    // With flags, the one way on says what it leaves out.
    assert_eq!(b.count("#continue:not([hidden])").await, 0);
    assert_eq!(
        b.text("#only-clean").await,
        "Leave out 2 flagged rows, continue with 2 invites"
    );
    assert!(
        b.text("#capacity")
            .await
            .contains("mailbox cap on team.example")
    );
    // Each flag is tied to the input at fault.
    let bad = "tr[data-row='1'] input[data-field=recipient_email]";
    assert_eq!(
        b.html_attribute(bad, "aria-invalid").await.as_deref(),
        Some("true")
    );
    let described = b.html_attribute(bad, "aria-describedby").await.unwrap();
    assert!(
        b.text(&format!("#{described}"))
            .await
            .contains("is not a valid email address")
    );
    b.step("flags").await;

    // Correct the flagged address in place, as a person types it.
    b.type_in(bad, "nora@elsewhere.org\u{E004}").await;
    b.wait_text("#summary", "4 rows: 3 clean, 1 flagged").await;
    assert!(b.text("#preview").await.contains("nora@elsewhere.org"));
    // Tab went on to the row's mailbox field, empty while the address was
    // wrong: the re-check's mailbox name shows there at once.
    assert_eq!(
        b.property("tr[data-row='1'] input[data-field=local_part]", "value")
            .await,
        serde_json::json!("nora")
    );
    // Drop the duplicate: the re-check keeps the keyboard on the list.
    b.click("tr[data-row='2'] button[data-field=drop]").await;
    b.wait_text("#summary", "3 rows: 3 clean, 0 flagged").await;
    let focused = b
        .run("const a = document.activeElement; return [a.closest('tr')?.dataset.row, a.dataset.field];")
        .await;
    assert_eq!(
        focused,
        serde_json::json!(["2", "drop"]),
        "focus after a drop"
    );
    // Edit a local part in place; Tab moves on and stays on the row.
    let checked = || async {
        b.html_attribute("#preview", "data-checked")
            .await
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(0)
    };
    let before = checked().await;
    b.type_in(
        "tr[data-row='2'] input[data-field=local_part]",
        "samuel\u{E004}",
    )
    .await;
    b.until("the re-checked edit", || async {
        (checked().await > before && b.count("#continue:disabled").await == 0).then_some(())
    })
    .await;
    let focused = b
        .run("const a = document.activeElement; return [a.closest('tr')?.dataset.row, a.dataset.field];")
        .await;
    assert_eq!(
        focused,
        serde_json::json!(["2", "storage_allocation_mb"]),
        "focus after an edit"
    );
    b.run("document.querySelector('#expiry').value = '7d'")
        .await;
    assert!(b.text("#expiry").await.contains("1 day"));
    // Reminders: the defaults, changed to one that does not fit a 7-day link.
    assert_eq!(
        b.property("#reminders", "value").await,
        serde_json::json!("50%, 48h")
    );
    b.type_in("#reminders", "50%, 10d").await;
    b.step("clean").await;
    // Continue is enabled once the edit has been checked.
    b.until("the re-checked preview", || async {
        let disabled = b
            .run("return document.querySelector('#continue').disabled")
            .await;
        (disabled == serde_json::Value::Bool(false)).then_some(())
    })
    .await;
    assert_eq!(b.text("#continue").await, "Continue with 3 invites");
    b.click("#continue").await;
    b.wait_text("#confirm-summary", "Send 3 invites for team.example")
        .await;
    // Sending with a reminder outside the links' life comes back to the
    // field, marked, with the reason; nothing was created.
    b.click("#send").await;
    let said = b.wait_text("#reminders-error", "reminders[1]").await;
    assert!(said.contains("10d") && said.contains("7d"), "{said}");
    b.wait("#step2:not([hidden])").await;
    assert_eq!(
        b.html_attribute("#reminders", "aria-invalid")
            .await
            .as_deref(),
        Some("true")
    );
    let focused = b.run("return document.activeElement.id").await;
    assert_eq!(focused, serde_json::json!("reminders"));
    assert_eq!(app.muster.view().unwrap().batches().unwrap().len(), 0);
    b.step("reminder-refused").await;
    b.type_in("#reminders", "3d").await;
    b.click("#continue").await;
    let summary = b
        .wait_text("#confirm-summary", "Send 3 invites for team.example")
        .await;
    assert!(
        summary.contains("reminded 3 days before it expires"),
        "{summary}"
    );
    // The confirm step lists who gets one, and the email as they will read it.
    assert_eq!(b.count("#confirm-list tbody tr").await, 3);
    b.wait_text(
        "#sample-subject",
        "Set up your new mailbox jane@team.example",
    )
    .await;
    assert_eq!(b.text("#sample-locale").await, "English");
    let expires = b.text("#sample-expires").await;
    let text = b.text("#sample-text").await;
    assert!(text.contains("jane@team.example"), "{text}");
    assert!(text.contains("expires on"), "{text}");
    assert!(!expires.is_empty());
    b.step("confirm").await;
    // A test goes to the admin (no relay here: into the outbox).
    b.click("#send-test").await;
    let said = b.wait_text("#test-status", "was written to").await;
    assert!(said.contains(ADMIN), "{said}");
    let test_file = outbox_files(&app.dir)
        .into_iter()
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("test-")
        })
        .expect("the test in the outbox");
    let test_mail = std::fs::read_to_string(test_file).unwrap();
    assert!(
        test_mail
            .lines()
            .any(|l| l.starts_with("To:") && l.contains(ADMIN)),
        "{test_mail}"
    );
    assert!(
        test_mail.contains("[Test] Set up your new mailbox"),
        "{test_mail}"
    );
    b.click("#send").await;
    let progress = b.wait_text("#progress", "Done").await;
    assert!(
        progress.starts_with("0 sent, 3 in the outbox (not emailed), 0 failed"),
        "{progress}"
    );
    b.step("sent").await;
    assert_eq!(
        outbox_files(&app.dir).len(),
        4,
        "three invites and the test"
    );
    // The local part edited in place is the mailbox that was invited.
    let filter = muster::store::view::InviteFilter::default();
    let (invites, _) = app.muster.list_invites(&filter, None, 10).unwrap();
    let mut mailboxes: Vec<&str> = invites.iter().map(|i| i.mailbox.as_str()).collect();
    mailboxes.sort();
    assert_eq!(
        mailboxes,
        [
            "jane@team.example",
            "nora@team.example",
            "samuel@team.example"
        ]
    );
    assert!(
        invites
            .iter()
            .all(|i| i.expires_at - i.created_at == time::Duration::days(7))
    );
    assert_eq!(
        app.muster.view().unwrap().batches().unwrap()[0].reminders,
        ["3d"]
    );

    // The pending list: resend one, revoke the other.
    b.goto(&format!("{}/invites", app.url())).await;
    b.wait("tr[data-id]").await;
    assert_eq!(b.count("tr[data-id]").await, 3);
    let id_of = |who: &str| {
        format!(
            "return [...document.querySelectorAll('tr[data-id]')].find(r => r.textContent.includes('{who}')).dataset.id"
        )
    };
    let jane = b.run(&id_of("jane@elsewhere.org")).await;
    let jane = jane.as_str().unwrap().to_string();
    let sam = b.run(&id_of("sam@elsewhere.org")).await;
    let sam = sam.as_str().unwrap().to_string();
    b.click(&format!("tr[data-id='{jane}'] button[data-action=resend]"))
        .await;
    b.click("#confirm[open] #confirm-ok").await;
    b.wait_text("#status", "Resent the invite to jane@elsewhere.org.")
        .await;
    b.click(&format!("tr[data-id='{sam}'] button[data-action=revoke]"))
        .await;
    b.wait("#confirm[open] #confirm-text").await;
    let ask = b.text("#confirm-text").await;
    assert!(ask.contains("sam@elsewhere.org"), "{ask}");
    b.click("#confirm-ok").await;
    b.wait_text("#status", "Revoked the invite to sam@elsewhere.org.")
        .await;
    b.until("the revoked state", || async {
        let v = b
            .run(&format!(
                "return document.querySelector(\"tr[data-id='{sam}']\")?.dataset.link"
            ))
            .await;
        (v.as_str() == Some("revoked")).then_some(())
    })
    .await;
    b.step("resent-and-revoked").await;
    wait_for(
        "the resent invite's email",
        std::time::Duration::from_secs(20),
        || {
            app.dir
                .data()
                .join(format!("outbox/{jane}-r1.eml"))
                .exists()
                .then_some(())
        },
    );
    assert_eq!(app.muster.get_invite(&sam).unwrap().link_state, "revoked");
    // Copy link shows the current link, in a short window too; a line
    // left above the list by an earlier refusal goes.
    b.set_size(1280, 420).await;
    b.click("#revoke-selected").await;
    b.wait_text("#status", "Select invites first.").await;
    b.click(&format!("tr[data-id='{jane}'] button[data-action=link]"))
        .await;
    b.until("the old status line gone", || async {
        (b.count("#status[hidden]").await == 1).then_some(())
    })
    .await;
    let url = b.attribute("#copied-url", "value").await.unwrap();
    assert!(url.contains("/invite/"), "{url}");
    assert!(
        b.text("#copied label")
            .await
            .contains("Setup link for jane@elsewhere.org"),
        "the box names whose link it is"
    );
    // Shown where the admin looks: inside the window, not under the list.
    b.until("the copied link inside the window", || async {
        let r = b
            .run("const r = document.querySelector('#copied').getBoundingClientRect(); return r.top >= 0 && r.bottom <= window.innerHeight + 1;")
            .await;
        (r == serde_json::json!(true)).then_some(())
    })
    .await;

    // Usable on a phone: nothing wider than the screen.
    b.set_size(390, 844).await;
    b.goto(&format!("{}/invites", app.url())).await;
    b.wait("tr[data-id]").await;
    let overflow = b
        .run("return document.documentElement.scrollWidth - window.innerWidth")
        .await;
    assert!(
        overflow.as_i64().unwrap() <= 0,
        "horizontal overflow on a phone: {overflow}"
    );
    b.step("phone").await;
    b.quit().await;
    app.shutdown().await;
}

async fn a_csv_over_the_pool_is_flagged(engine: Engine) {
    if !engine.available() {
        return;
    }
    let app = TestApp::spawn(|c| c.storage_pool_mb = 1000).await;
    app.muster
        .add_admin(ADMIN, PASSWORD, &Actor::cli())
        .unwrap();
    let mut b = Browser::start(engine, "a_csv_over_the_pool_is_flagged").await;
    sign_in(&mut b, &app, PASSWORD).await;
    let csv = app.dir.write(
        "team.csv",
        "email,storage_allocation_mb,display_name\nceo@elsewhere.org,600,The CEO\ncto@elsewhere.org,600,\n",
    );
    b.goto(&format!("{}/invites/new", app.url())).await;
    b.upload("#file", &csv).await;
    // One source at a time: the file is named, the paste box put away.
    b.wait_text("#chosen", "Using the file team.csv (3 lines)")
        .await;
    assert_eq!(b.count("#paste-box[hidden]").await, 1);
    b.step("file-chosen").await;
    // It can be removed, and chosen again.
    b.click("#remove-file").await;
    b.wait("#paste-box:not([hidden])").await;
    assert_eq!(b.count("#chosen[hidden]").await, 1);
    b.upload("#file", &csv).await;
    b.wait_text("#chosen", "Using the file team.csv").await;
    b.click("#to-preview").await;
    b.wait_text("#summary", "2 rows: 1 clean, 1 flagged").await;
    // The display name column.
    assert!(b.text("#preview").await.contains("The CEO"));
    assert_eq!(b.count("[data-code=allocation_over_pool]").await, 1);
    // The panel shows what the clean rows leave; the flag, the overrun.
    let panel = b.text("#capacity").await;
    assert!(
        panel.contains("400 MB") && panel.contains("pool left after"),
        "pool left after the clean row, as a size: {panel}"
    );
    assert!(
        b.text("[data-code=allocation_over_pool]")
            .await
            .contains("600 MB does not fit: the rows above take 600 MB of the 1000 MB"),
    );
    b.step("over-pool").await;
    // Lower the allocation in place: the flag goes.
    b.type_in(
        "tr[data-row='1'] input[data-field=storage_allocation_mb]",
        "400\u{E004}",
    )
    .await;
    b.wait_text("#summary", "2 rows: 2 clean, 0 flagged").await;
    b.quit().await;
    app.shutdown().await;
}

/// Long and hostile rows, as a real export brings them: every column of the
/// preview stays in the window on a laptop (problems and names wrap), and
/// each mailbox's domain shows whole beside its field.
async fn a_preview_of_long_and_hostile_rows_fits_a_laptop(engine: Engine) {
    if !engine.available() {
        return;
    }
    let app = TestApp::spawn(|_| {}).await;
    app.muster
        .add_admin(ADMIN, PASSWORD, &Actor::cli())
        .unwrap();
    let mut b = Browser::start(engine, "a_preview_of_long_and_hostile_rows_fits_a_laptop").await;
    sign_in(&mut b, &app, PASSWORD).await;
    let long_local = "b".repeat(70);
    let long_name = "Z".repeat(99);
    let csv = app.dir.write(
        "export.csv",
        format!(
            "email,storage_allocation_mb,display_name\n\
             ann@elsewhere.org,,\n\
             ann@elsewhere.org,,\n\
             not-an-email,,\n\
             <script>alert(1)</script>@evil.example,,\n\
             {long_local}@elsewhere.org,,\n\
             carl@elsewhere.org,,{long_name}\n\
             alice.morgan-whitfield@elsewhere.org,,Alice Morgan-Whitfield\n"
        ),
    );
    b.goto(&format!("{}/invites/new", app.url())).await;
    b.upload("#file", &csv).await;
    b.wait_text("#chosen", "Using the file export.csv").await;
    b.click("#to-preview").await;
    b.wait_text("#summary", "7 rows: 3 clean, 4 flagged").await;
    // No script ran: the address is text.
    assert!(b.text("#preview").await.contains("<script>"));
    for (w, h) in [(1280, 900), (390, 844)] {
        b.set_size(w, h).await;
        let cut = b
            .run(
                "const cut = [];
                 for (const box of document.querySelectorAll('#preview .mailbox')) {
                   const span = box.querySelector('span').getBoundingClientRect();
                   const cell = box.closest('td').getBoundingClientRect();
                   if (span.right > cell.right + 1) cut.push(box.closest('tr').dataset.row);
                 }
                 const drops = [...document.querySelectorAll('#preview button[data-field=drop]')]
                   .map(d => d.getBoundingClientRect().right)
                   .filter(r => r > window.innerWidth);
                 return [cut, drops.length];",
            )
            .await;
        assert_eq!(
            cut,
            serde_json::json!([[], 0]),
            "{w}x{h}: rows whose domain is cut, and Drop buttons outside the window"
        );
        // A name of everyday length reads whole in its field.
        let hidden = b
            .run("const f = document.querySelector('#preview tr[data-row=\"6\"] input[data-field=local_part]');
                  return [f.value, f.scrollWidth - f.clientWidth];")
            .await;
        assert_eq!(hidden[0], "alice.morgan-whitfield", "{w}x{h}");
        assert!(
            hidden[1].as_f64().unwrap() <= 0.0,
            "{w}x{h}: the mailbox name is cut in its field: {hidden}"
        );
        let sideways = b
            .run("return document.documentElement.scrollWidth - window.innerWidth")
            .await;
        assert!(sideways.as_f64().unwrap() <= 0.0, "{w}x{h}: {sideways}");
    }
    b.set_size(1280, 900).await;
    b.run("document.querySelector('#preview').scrollIntoView()")
        .await;
    b.step("long-rows").await;
    b.quit().await;
    app.shutdown().await;
}

async fn bulk_creation_shows_a_generated_password_once(engine: Engine) {
    if !engine.available() {
        return;
    }
    let app = TestApp::spawn(|_| {}).await;
    app.muster
        .add_admin(ADMIN, PASSWORD, &Actor::cli())
        .unwrap();
    let mut b = Browser::start(engine, "bulk_creation_shows_a_generated_password_once").await;
    sign_in(&mut b, &app, PASSWORD).await;
    b.click(".menu summary").await;
    b.click(".menu-items a[href='/mailboxes/new']").await;
    b.wait_text("main h1", "Bulk creation").await;
    b.type_in(
        "#paste",
        "local_part,password,storage_allocation_mb\njane,generate,100\nbob,short,\n",
    )
    .await;
    b.click("#to-preview").await;
    b.wait_text("#summary", "2 rows: 1 clean, 1 flagged").await;
    assert_eq!(b.count("[data-code=invalid_password]").await, 1);
    b.step("creation-preview").await;
    b.click("#only-clean").await;
    // Nothing is created before the admin says so.
    b.wait("#confirm[open] #confirm-text").await;
    let ask = b.text("#confirm-text").await;
    assert!(
        ask.contains("Create 1 mailbox on team.example now?")
            && ask.contains("The 1 flagged row is left out."),
        "{ask}"
    );
    b.step("creation-confirm").await;
    b.click("#confirm-cancel").await;
    b.until("the dialog closed", || async {
        (b.count("#confirm[open]").await == 0).then_some(())
    })
    .await;
    let passwd = app.muster.config.passwd_file();
    assert!(
        !std::fs::read_to_string(&passwd)
            .unwrap_or_default()
            .contains("jane@")
    );
    b.click("#only-clean").await;
    b.wait("#confirm[open]").await;
    b.click("#confirm-ok").await;
    b.wait("#result:not([hidden])").await;
    let password = b.text("#created .secret").await;
    assert_eq!(password.len(), 23, "{password}");
    b.step("created").await;
    // Leaving the page while the password is on screen asks first; once
    // the admin clears it, the page may go.
    let leaving_asks = "const e = new Event('beforeunload', {cancelable: true}); \
                        window.dispatchEvent(e); return e.defaultPrevented;";
    assert_eq!(b.run(leaving_asks).await, true);
    b.click("#clear").await;
    b.wait_text("#status", "off the screen").await;
    assert_eq!(b.count("#created .secret").await, 0);
    assert_eq!(b.run(leaving_asks).await, false);
    let passwd = std::fs::read_to_string(passwd).unwrap();
    assert!(passwd.contains("jane@team.example:{ARGON2ID}"));
    assert!(!passwd.contains("bob@"));
    assert!(!passwd.contains(&password), "only the hash is stored");
    // The mailboxes page shows it.
    b.goto(&format!("{}/", app.url())).await;
    b.wait_text("#mailboxes", "jane@team.example").await;
    assert!(b.text("#mailboxes").await.contains("100 MB"));
    b.quit().await;
    app.shutdown().await;
}

async fn a_state_changing_request_without_the_csrf_token_is_refused(engine: Engine) {
    if !engine.available() {
        return;
    }
    let app = TestApp::spawn(|_| {}).await;
    app.muster
        .add_admin(ADMIN, PASSWORD, &Actor::cli())
        .unwrap();
    let mut b = Browser::start(
        engine,
        "a_state_changing_request_without_the_csrf_token_is_refused",
    )
    .await;
    sign_in(&mut b, &app, PASSWORD).await;
    // The page's own session cookie goes along; the CSRF header does not.
    let status = b
        .run_async(
            "const done = arguments[arguments.length - 1];
             fetch('/api/v1/tokens', {method: 'POST', credentials: 'same-origin',
               headers: {'Content-Type': 'application/json'}, body: JSON.stringify({name: 'sneaky'})})
               .then(r => done(r.status));",
        )
        .await;
    assert_eq!(status, 403);
    let with = b
        .run_async(
            "const done = arguments[arguments.length - 1];
             fetch('/api/v1/tokens', {method: 'POST', credentials: 'same-origin',
               headers: {'Content-Type': 'application/json', 'X-CSRF-Token': sessionStorage.getItem('muster.csrf')},
               body: JSON.stringify({name: 'proper'})}).then(r => done(r.status));",
        )
        .await;
    assert_eq!(with, 201);
    // The test's own token and the proper one; not the sneaky one.
    assert_eq!(app.muster.api_tokens().unwrap().len(), 2);
    b.quit().await;
    app.shutdown().await;
}

/// After signing in, `next` may only lead to a page of Muster's own: a
/// backslash, a tab or a second slash cannot send the admin elsewhere.
async fn sign_in_never_sends_the_admin_to_another_site(engine: Engine) {
    if !engine.available() {
        return;
    }
    let app = TestApp::spawn(|c| c.http.signin_rate_per_minute = 1000).await;
    app.muster
        .add_admin(ADMIN, PASSWORD, &Actor::cli())
        .unwrap();
    let mut b = Browser::start(engine, "sign_in_never_sends_the_admin_to_another_site").await;
    let payloads = [
        "/%5Cevil.example/x",
        "/%09/evil.example",
        "/%0A/evil.example",
        "//evil.example/",
        "%2F%2Fevil.example",
        "/%5C/evil.example",
        "https://evil.example/",
        "javascript:alert(1)",
        "http:evil.example",
        "/.//evil.example/",
        "/..//evil.example/",
        "/a/..//evil.example/",
        "/%2E//evil.example/",
    ];
    for payload in payloads {
        // Signing in, and then arriving signed in (the page goes straight
        // on): both stay on Muster.
        for signed_in in [false, true] {
            b.goto(&format!("{}/login?next={payload}", app.url())).await;
            if !signed_in {
                b.type_in("#email", ADMIN).await;
                b.type_in("#password", PASSWORD).await;
                b.click("#sign-in button[type=submit]").await;
            }
            let url = b
                .until("the page after sign-in", || async {
                    // about:blank is a page on its way, not where it ends.
                    let u = b.url().await;
                    (u != "about:blank" && !u.contains("/login")).then_some(u)
                })
                .await;
            assert!(
                url.starts_with(&format!("{}/", app.url())),
                "next={payload} led to {url} (signed in before: {signed_in})"
            );
            b.wait_text("main h1", "Mailboxes").await;
        }
        b.click("#sign-out").await;
        b.wait("#sign-in").await;
    }
    b.step("stayed-home").await;
    // A path of Muster's own is where the admin goes.
    b.goto(&format!(
        "{}/login?next=%2Finvites%3Fstate%3Dlive",
        app.url()
    ))
    .await;
    b.type_in("#email", ADMIN).await;
    b.type_in("#password", PASSWORD).await;
    b.click("#sign-in button[type=submit]").await;
    b.wait_text("main h1", "Pending invites").await;
    assert_eq!(b.url().await, format!("{}/invites?state=live", app.url()));
    b.quit().await;
    app.shutdown().await;
}

/// The sign-in page asks for a session only when the visit could not show
/// one: typed in or reached from Muster's own pages, a signed-out admin's
/// visit gets no refusal (Chromium puts each in its console), and a link
/// from another site, which arrives without the SameSite=Strict cookie,
/// still takes a signed-in admin straight to the page it names.
async fn the_sign_in_page_asks_for_a_session_only_when_there_may_be_one(engine: Engine) {
    if !engine.available() {
        return;
    }
    let app = TestApp::spawn(|_| {}).await;
    app.muster
        .add_admin(ADMIN, PASSWORD, &Actor::cli())
        .unwrap();
    let mut b = Browser::start(
        engine,
        "the_sign_in_page_asks_for_a_session_only_when_there_may_be_one",
    )
    .await;
    // Typed in, then after signing out: no request said no.
    sign_in(&mut b, &app, PASSWORD).await;
    b.click("#sign-out").await;
    b.wait("#sign-in").await;
    b.type_in("#email", ADMIN).await;
    b.type_in("#password", PASSWORD).await;
    b.click("#sign-in button[type=submit]").await;
    b.wait_text("main h1", "Mailboxes").await;
    assert_eq!(b.take_refused(), Vec::<String>::new());

    // From another site (the same server under another name is another
    // site to the browser): a link to the pending list.
    let port = app.url().rsplit(':').next().unwrap().to_string();
    b.goto(&format!("http://localhost:{port}/healthz")).await;
    b.run(&format!(
        "document.body.innerHTML = '<a id=\"elsewhere\" href=\"{}/invites\">Pending invites</a>';",
        app.url()
    ))
    .await;
    b.click("#elsewhere").await;
    b.wait_text("main h1", "Pending invites").await;
    assert_eq!(b.url().await, format!("{}/invites", app.url()));
    b.step("arrived-from-elsewhere").await;
    assert_eq!(b.take_refused(), Vec::<String>::new());
    // Typed under the machine's other local name: on to the links' name,
    // where the session is.
    b.goto(&format!("http://localhost:{port}/invites")).await;
    b.wait_text("main h1", "Pending invites").await;
    assert_eq!(b.url().await, format!("{}/invites", app.url()));
    b.quit().await;
    app.shutdown().await;
}

/// Strangers guessing the admin's password from many addresses use up the
/// account's sign-in allowance: a browser new to the account is told to
/// wait, and the one the admin signed in on before still gets in (its mark
/// is a cookie that only the sign-in request carries).
async fn strangers_guessing_do_not_keep_the_admin_out(engine: Engine) {
    if !engine.available() {
        return;
    }
    let app = TestApp::spawn(|c| {
        c.http.behind_proxy = true;
        c.http.signin_rate_per_minute = 5;
    })
    .await;
    app.muster
        .add_admin(ADMIN, PASSWORD, &Actor::cli())
        .unwrap();
    let mut b = Browser::start(engine, "strangers_guessing_do_not_keep_the_admin_out").await;
    sign_in(&mut b, &app, PASSWORD).await;
    b.click("#sign-out").await;
    b.wait("#sign-in").await;
    let client = http();
    for i in 0..8 {
        let r = client
            .post(format!("{}/api/v1/session", app.url()))
            .header("x-forwarded-for", format!("203.0.113.{i}"))
            .json(&serde_json::json!({"email": ADMIN, "password": "guess"}))
            .send()
            .await
            .unwrap();
        assert!(matches!(r.status().as_u16(), 401 | 429));
    }
    let mut other = Browser::start(
        engine,
        "strangers_guessing_do_not_keep_the_admin_out-new-browser",
    )
    .await;
    other.goto(&format!("{}/login", app.url())).await;
    other.type_in("#email", ADMIN).await;
    other.type_in("#password", PASSWORD).await;
    other.click("#sign-in button[type=submit]").await;
    other
        .wait_text("#status", "Too many sign-in attempts for this account")
        .await;
    other.step("a-new-browser-waits").await;
    other.quit().await;
    b.type_in("#email", ADMIN).await;
    b.type_in("#password", PASSWORD).await;
    b.click("#sign-in button[type=submit]").await;
    b.wait_text("main h1", "Mailboxes").await;
    b.step("the-admins-browser-gets-in").await;
    b.quit().await;
    app.shutdown().await;
}

/// A column copied from a spreadsheet carries tabs around each address: it
/// is still one address per line, every row clean.
async fn a_pasted_spreadsheet_column_reads_as_one_address_per_line(engine: Engine) {
    if !engine.available() {
        return;
    }
    let app = TestApp::spawn(|_| {}).await;
    app.muster
        .add_admin(ADMIN, PASSWORD, &Actor::cli())
        .unwrap();
    let mut b = Browser::start(
        engine,
        "a_pasted_spreadsheet_column_reads_as_one_address_per_line",
    )
    .await;
    sign_in(&mut b, &app, PASSWORD).await;
    b.goto(&format!("{}/invites/new", app.url())).await;
    b.wait(".topbar").await;
    b.edit("#paste", "\tdave@example.net\t\n\terin@example.net\t\n")
        .await;
    b.click("#to-preview").await;
    b.wait_text("#summary", "2 rows: 2 clean, 0 flagged").await;
    b.step("spreadsheet-column").await;
    b.quit().await;
    app.shutdown().await;
}

/// The harness itself: a console error, an uncaught exception and a CSP
/// violation are all heard, and axe-core finds a planted problem, so a
/// clean step means a clean page.
async fn the_console_watch_hears_errors_and_csp_violations(engine: Engine) {
    if !engine.available() {
        return;
    }
    let app = TestApp::spawn(|_| {}).await;
    let b = Browser::start(engine, "the_console_watch_hears_errors_and_csp_violations").await;
    b.goto(&format!("{}/login", app.url())).await;
    b.wait("#sign-in").await;
    assert_eq!(b.take_console(), Vec::<String>::new());
    b.run(
        "console.error('planted error');
         setTimeout(() => { throw new Error('planted exception'); }, 0);
         const s = document.createElement('script'); s.textContent = 'window.x = 1'; document.body.append(s);",
    )
    .await;
    let mut heard = Vec::new();
    b.until("all three in the console", || {
        heard.extend(b.take_console());
        let all = ["planted error", "planted exception", "CSP violation"]
            .iter()
            .all(|w| heard.iter().any(|h| h.contains(w)));
        async move { all.then_some(()) }
    })
    .await;
    // The accessibility check sees a planted button without a name.
    assert_eq!(b.accessibility_problems().await, Vec::<String>::new());
    b.run("document.querySelector('main').append(document.createElement('button'))")
        .await;
    let found = b.accessibility_problems().await;
    if crate::support::webdriver::axe_installed() {
        assert!(
            found
                .iter()
                .any(|f| f.starts_with("button-name (critical)")),
            "{found:?}"
        );
    }
    b.quit().await;
    app.shutdown().await;
}

crate::in_both_browsers!(
    the_console_watch_hears_errors_and_csp_violations,
    sign_in_never_sends_the_admin_to_another_site,
    the_sign_in_page_asks_for_a_session_only_when_there_may_be_one,
    strangers_guessing_do_not_keep_the_admin_out,
    a_pasted_spreadsheet_column_reads_as_one_address_per_line,
    first_run_setup_sign_in_and_forgot_password,
    the_bulk_invites_wizard_and_the_pending_list,
    a_csv_over_the_pool_is_flagged,
    a_preview_of_long_and_hostile_rows_fits_a_laptop,
    bulk_creation_shows_a_generated_password_once,
    a_state_changing_request_without_the_csrf_token_is_refused,
);
