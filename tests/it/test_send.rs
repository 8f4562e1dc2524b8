//! The test send in direct mode over real servers: the wizard's confirm
//! step (both browsers), the API and `muster test-send` send one
//! invite-shaped message straight to the address's mail server (a real
//! Postfix on 127.0.0.3, reached after the first MX is found down), signed
//! with the DKIM key `muster dkim generate` made; dkimpy verifies the copy
//! the server stored, and Muster reports DKIM, SPF and DMARC as passing.
//! Without a key the CLI says DKIM is missing and exits 1.

use std::path::Path;

use muster::config::SmtpMode;
use muster::store::Actor;

use crate::direct::{dkimpy_available, generate_key_for};
use crate::support::app::TestApp;
use crate::support::destinations::{Behaviour, DestinationMx, port_free_on};
use crate::support::dns::{self, TestDns, txt};
use crate::support::mailstack;
use crate::support::mcp_client::python;
use crate::support::webdriver::{Browser, Engine};
use crate::support::*;

const ADMIN: &str = "admin@team.example";

/// `muster test-send --to ann@alpha.test` on `config`: exit code, output.
fn test_send(dir: &TestDir, config: &muster::config::Config) -> (Option<i32>, String) {
    let path = dir.write_config(config);
    let out = run(
        muster(&[
            "--config",
            path.to_str().unwrap(),
            "test-send",
            "--to",
            "ann@alpha.test",
        ]),
        None,
    );
    (out.status.code(), text(&out.stdout) + &text(&out.stderr))
}

fn dkimpy_verifies(resolver: &str, state: &Path, raw: &[u8]) {
    let path = state.join("test-send.eml");
    std::fs::write(&path, raw).unwrap();
    let out = std::process::Command::new(python())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dkim/verify.py"))
        .arg(resolver)
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let result: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    let sigs = result.as_array().unwrap();
    assert!(
        !sigs.is_empty()
            && sigs
                .iter()
                .all(|s| s["ok"] == true && s["d"] == "team.example"),
        "{result}"
    );
}

async fn from_the_wizard(engine: Engine, app: &TestApp, mx: &DestinationMx, before: usize) {
    if !engine.available() {
        return;
    }
    let mut b = Browser::start(engine, "test_send_from_the_wizard").await;
    b.goto(&format!("{}/login", app.url())).await;
    b.type_in("#email", ADMIN).await;
    b.type_in("#password", PASSWORD).await;
    b.click("#sign-in button[type=submit]").await;
    b.wait_text("main h1", "Mailboxes").await;
    b.goto(&format!("{}/invites/new", app.url())).await;
    b.wait_text("main h1", "Bulk invites").await;
    b.type_in("#paste", "jane@elsewhere.org\n").await;
    b.click("#to-preview").await;
    b.wait_text("#summary", "1 row: 1 clean, 0 flagged").await;
    b.until("Continue to be enabled", || async {
        (b.run("return document.querySelector('#continue').disabled")
            .await
            == serde_json::Value::Bool(false))
        .then_some(())
    })
    .await;
    b.click("#continue").await;
    b.wait_text("#confirm-summary", "Send 1 invite").await;
    // A mistyped address is named by the field on screen.
    b.type_in("#test-to", "ann.alpha.test").await;
    b.click("#send-test").await;
    b.wait_text("#test-status", "Send a test to: the address has no @")
        .await;
    b.type_in("#test-to", "ann@alpha.test").await;
    b.click("#send-test").await;
    let said = b.wait_text("#test-status", "DMARC: pass").await;
    for part in [
        "A test went to ann@alpha.test: mx2.alpha.test (127.0.0.3) answered 250",
        "Signed with muster-ed25519 (ed25519).",
        "DKIM: pass",
        "SPF: pass",
    ] {
        assert!(said.contains(part), "{part:?} missing from {said}");
    }
    assert_eq!(
        b.html_attribute("#test-status", "class").await.as_deref(),
        Some("alert ok")
    );
    b.run("document.getElementById('test-status').scrollIntoView()")
        .await;
    b.step("test-sent").await;
    mx.wait_for_delivered("ann@alpha.test", before + 1);
    b.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_send_goes_the_way_invites_go_and_is_judged_as_receivers_judge_it() {
    if !mailstack::available() || !dns::available() || !dkimpy_available() {
        return;
    }
    let state = TestDir::new();
    let port = port_free_on(&["127.0.0.3", "127.0.0.4"]);
    let keys = state.path().join("dkim");
    let (ed_name, ed_txt) = generate_key_for(&keys, "team.example", "ed25519");
    let records = vec![
        // The first MX is down (nothing on 127.0.0.4).
        "alpha.test. 300 IN MX 10 mx1.alpha.test.".to_string(),
        "alpha.test. 300 IN MX 20 mx2.alpha.test.".into(),
        "mx1.alpha.test. 300 IN A 127.0.0.4".into(),
        "mx2.alpha.test. 300 IN A 127.0.0.3".into(),
        "muster.team.example. 300 IN A 127.0.0.1".into(),
        format!(
            "team.example. 300 IN TXT {}",
            txt("v=spf1 ip4:127.0.0.1 -all")
        ),
        format!(
            "_dmarc.team.example. 300 IN TXT {}",
            txt("v=DMARC1; p=reject")
        ),
        format!("{ed_name}. 300 IN TXT {}", txt(&ed_txt)),
    ];
    let server = TestDns::start(state.path(), &["test.", "example."], &records);
    let mx = DestinationMx::start(
        state.path(),
        "127.0.0.3",
        port,
        Behaviour {
            domains: &["alpha.test"],
            mailboxes: &["ann@alpha.test"],
            greylist: false,
            tls: None,
            hostname: "mx2.alpha.test",
        },
    );
    let direct = |c: &mut muster::config::Config| {
        c.smtp.mode = Some(SmtpMode::Direct);
        c.smtp.direct.port = port;
        c.smtp.helo_name = Some("muster.team.example".into());
        c.smtp.timeout_secs = 30;
        c.dns.resolvers = vec![server.resolver()];
        c.dkim.keys_dir = Some(keys.clone());
    };
    let app = TestApp::spawn(direct).await;
    app.muster
        .add_admin(ADMIN, PASSWORD, &Actor::cli())
        .unwrap();

    // The API.
    let (status, sent) = app
        .call(
            reqwest::Method::POST,
            "/previews/invite-email/test",
            Some(serde_json::json!({
                "row": {"recipient_email": "jane@elsewhere.org"},
                "to": "ann@alpha.test"
            })),
        )
        .await;
    assert_eq!(status, 200, "{sent:#}");
    assert_eq!(sent["delivery_state"], "sent");
    assert_eq!(sent["via"], "mx2.alpha.test (127.0.0.3)");
    assert_eq!(
        sent["signed_with"],
        serde_json::json!(["muster-ed25519 (ed25519)"])
    );
    for mechanism in ["dkim", "spf", "dmarc"] {
        assert_eq!(
            sent["authentication"][mechanism]["result"], "pass",
            "{sent:#}"
        );
    }
    let copies = mx.wait_for_delivered("ann@alpha.test", 1);
    let copy = text(&copies[0]);
    assert!(copy.contains("[Test] Set up your new mailbox"), "{copy}");
    dkimpy_verifies(&server.resolver(), state.path(), &copies[0]);

    // The wizard's confirm step, in both browsers.
    from_the_wizard(Engine::Chromium, &app, &mx, 1).await;
    let n = mx.delivered("ann@alpha.test").len();
    from_the_wizard(Engine::Firefox, &app, &mx, n).await;

    // The CLI, on a data folder of its own (the server holds its store).
    let cli_dir = TestDir::new();
    let mut config = cli_dir.config();
    direct(&mut config);
    let (code, said) = test_send(&cli_dir, &config);
    assert_eq!(code, Some(0), "{said}");
    for line in [
        "Sent to ann@alpha.test: mx2.alpha.test (127.0.0.3) answered 250",
        "Signed with muster-ed25519 (ed25519)",
        "DKIM  pass",
        "SPF   pass",
        "DMARC pass",
    ] {
        assert!(said.contains(line), "{line:?} missing from:\n{said}");
    }
    // Without a key: sent, but DKIM is missing, and the exit says so.
    config.dkim.keys_dir = Some(cli_dir.path().join("no-keys"));
    let (code, said) = test_send(&cli_dir, &config);
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains("Not DKIM-signed: no key for team.example; `muster dkim generate --domain team.example` makes one"),
        "{said}"
    );
    assert!(said.contains("DKIM  none        not signed"), "{said}");
    // SPF alone still aligns with the sender's domain.
    assert!(said.contains("DMARC pass"), "{said}");
    app.shutdown().await;
}
