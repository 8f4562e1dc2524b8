//! The DNS and deliverability report against a real DNS server (unbound on
//! loopback): a sender's domain published right but for a DKIM record
//! that is not Muster's key, and a second hosted domain with no MX, an SPF
//! record that leaves this server out and no DMARC. The API, `muster check
//! --deliverability` and the DNS page in both browsers say what is wrong
//! and what to publish; once DNS is fixed, all three say nothing is left.

use muster::config::{DomainConfig, SmtpMode};
use muster::domain::address::DomainName;
use muster::store::Actor;
use std::time::Duration;

use serde_json::Value;

use crate::direct::generate_key_for;
use crate::support::app::TestApp;
use crate::support::dns::{self, TestDns, txt};
use crate::support::webdriver::{Browser, Engine};
use crate::support::*;

const ADMIN: &str = "admin@team.example";

/// The records of both domains; `fixed` publishes what the report asked
/// for. Records that change live 1 s in caches (Muster's resolver keeps
/// answers for their TTL, as any would).
fn records(dkim_name: &str, dkim_txt: &str, fixed: bool) -> Vec<String> {
    let mut r = vec![
        "team.example. 300 IN MX 10 mail.team.example.".to_string(),
        "mail.team.example. 300 IN A 127.0.0.1".into(),
        // The sending address: a documentation address (hickory answers
        // 127.x's reverse name itself, as localhost).
        "muster.team.example. 300 IN A 192.0.2.25".into(),
        "192.0.2.25 PTR muster.team.example.".into(),
        "autoconfig.team.example. 300 IN A 127.0.0.1".into(),
        "autodiscover.team.example. 300 IN A 127.0.0.1".into(),
        format!(
            "team.example. 300 IN TXT {}",
            txt("v=spf1 ip4:192.0.2.25 -all")
        ),
        format!(
            "_dmarc.team.example. 300 IN TXT {}",
            txt("v=DMARC1; p=quarantine")
        ),
    ];
    if fixed {
        r.extend([
            format!("{dkim_name}. 1 IN TXT {}", txt(dkim_txt)),
            "other.example. 300 IN MX 10 mail.team.example.".into(),
            format!(
                "other.example. 1 IN TXT {}",
                txt("v=spf1 ip4:192.0.2.1 ip4:192.0.2.25 ~all")
            ),
            format!(
                "_dmarc.other.example. 300 IN TXT {}",
                txt("v=DMARC1; p=none; rua=mailto:postmaster@other.example")
            ),
        ]);
    } else {
        r.extend([
            // Another key under Muster's selector.
            format!(
                "{dkim_name}. 1 IN TXT {}",
                txt("v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAnotmusters")
            ),
            format!(
                "other.example. 1 IN TXT {}",
                txt("v=spf1 ip4:192.0.2.1 ~all")
            ),
        ]);
    }
    r
}

fn finding<'a>(report: &'a Value, domain: &str, check: &str) -> &'a Value {
    report["domains"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["domain"] == domain)
        .unwrap_or_else(|| panic!("{domain} in {report:#}"))["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == check)
        .unwrap_or_else(|| panic!("{check} of {domain} in {report:#}"))
}

fn check_deliverability(config: &std::path::Path) -> (i32, String) {
    let out = run(
        muster(&[
            "--config",
            config.to_str().unwrap(),
            "check",
            "--deliverability",
        ]),
        None,
    );
    (
        out.status.code().unwrap_or(-1),
        text(&out.stdout) + &text(&out.stderr),
    )
}

async fn dns_page(engine: Engine, app: &TestApp, phase: &str, want: &str) {
    if !engine.available() {
        return;
    }
    let mut b = Browser::start(engine, &format!("dns_page_{phase}")).await;
    b.goto(&format!("{}/login", app.url())).await;
    b.type_in("#email", ADMIN).await;
    b.type_in("#password", PASSWORD).await;
    b.click("#sign-in button[type=submit]").await;
    b.wait_text("main h1", "Mailboxes").await;
    b.click("nav a[href='/dns']").await;
    b.wait_text("main h1", "DNS and deliverability").await;
    let summary = b.wait_text("#summary", want).await;
    assert!(summary.contains(want), "{summary}");
    let sending = b.text("#sending").await;
    assert!(
        sending.contains("Mode direct: 192.0.2.25") && sending.contains(&dns_port_note(app)),
        "{sending}"
    );
    if phase == "broken" {
        // The records to fix, listed up top, each a link to its row.
        assert_eq!(b.count("#to-fix li a").await, 4);
        b.click("#to-fix a[href='#rec-mx-other-example']").await;
        assert!(b.url().await.ends_with("#rec-mx-other-example"));
        let other_mx = "[data-domain='other.example'] tr[data-check=mx]";
        assert_eq!(
            b.html_attribute(other_mx, "data-status").await.as_deref(),
            Some("missing")
        );
        let words = b.text(other_mx).await;
        assert!(words.contains("has no MX record"), "{words}");
        // The value to publish, ready to copy.
        let spf = "[data-domain='other.example'] tr[data-check=spf] input";
        assert_eq!(
            b.property(spf, "value").await,
            serde_json::json!("v=spf1 ip4:192.0.2.1 ip4:192.0.2.25 ~all")
        );
        let dkim = "[data-domain='team.example'] tr[data-check=dkim]";
        assert_eq!(
            b.html_attribute(dkim, "data-status").await.as_deref(),
            Some("wrong")
        );
        assert!(b.text(dkim).await.contains("not the key Muster holds"));
        b.step("dns-broken").await;
    } else {
        assert_eq!(
            b.count("tr[data-status=missing], tr[data-status=wrong]")
                .await,
            0
        );
        assert_eq!(b.count("tr[data-status=ok]").await, 11);
        b.click("#recheck").await;
        b.wait_text("#summary", "Nothing to fix.").await;
        b.step("dns-fixed").await;
    }
    b.quit().await;
}

fn dns_port_note(app: &TestApp) -> String {
    app.muster.config.dns.resolvers[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dns_report_says_what_to_publish_until_nothing_is_left() {
    if !dns::available() {
        return;
    }
    let state = TestDir::new();
    let keys = state.path().join("dkim");
    let (dkim_name, dkim_txt) = generate_key_for(&keys, "team.example", "rsa");
    let zones = ["test.", "example."];
    let mut server = TestDns::start(state.path(), &zones, &records(&dkim_name, &dkim_txt, false));
    let app = TestApp::spawn(|c| {
        c.domains.push(DomainConfig {
            name: DomainName::parse("other.example").unwrap(),
            mailbox_cap: 5,
        });
        c.smtp.mode = Some(SmtpMode::Direct);
        c.smtp.helo_name = Some("muster.team.example".into());
        c.client.imap_host = Some("mail.team.example".into());
        c.dns.resolvers = vec![server.resolver()];
        c.dkim.keys_dir = Some(keys.clone());
    })
    .await;
    app.muster
        .add_admin(ADMIN, PASSWORD, &Actor::cli())
        .unwrap();
    let config = app.dir.write_config(&app.muster.config);

    // The API: each problem, in words, with the value to publish.
    let (status, report) = app
        .call(reqwest::Method::GET, "/deliverability", None)
        .await;
    assert_eq!(status, 200, "{report:#}");
    assert_eq!(report["mode"], "direct");
    assert_eq!(
        report["sending_addresses"],
        serde_json::json!(["192.0.2.25"])
    );
    assert_eq!(report["to_fix"], 4, "{report:#}");
    assert_eq!(report["unanswered"], 0, "{report:#}");
    let host: Vec<&str> = report["host"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["status"].as_str().unwrap())
        .collect();
    assert_eq!(host, ["ok", "ok"], "{report:#}");
    for check in ["mx", "spf", "dmarc"] {
        assert_eq!(
            finding(&report, "team.example", check)["status"],
            "ok",
            "{check}"
        );
    }
    let dkim = finding(&report, "team.example", "dkim");
    assert_eq!(dkim["status"], "wrong");
    assert_eq!(dkim["name"], dkim_name.as_str());
    assert_eq!(dkim["publish"], dkim_txt.as_str());
    let mx = finding(&report, "other.example", "mx");
    assert_eq!(mx["status"], "missing");
    assert_eq!(mx["publish"], "10 mail.team.example.");
    let spf = finding(&report, "other.example", "spf");
    assert_eq!(spf["status"], "wrong");
    assert!(
        spf["words"]
            .as_str()
            .unwrap()
            .contains("does not cover 192.0.2.25 (result: softfail)"),
        "{spf:#}"
    );
    let dmarc = finding(&report, "other.example", "dmarc");
    assert_eq!(dmarc["status"], "missing");
    assert_eq!(
        dmarc["publish"],
        "v=DMARC1; p=none; rua=mailto:postmaster@other.example"
    );
    // Muster signs only its own sender's mail: advice for the other domain.
    assert_eq!(
        finding(&report, "other.example", "dkim")["status"],
        "advice"
    );

    // The CLI: the same findings, zone file lines, exit 1.
    let (code, out) = check_deliverability(&config);
    assert_eq!(code, 1, "{out}");
    for line in [
        "Mail leaves by direct mode; sending address: 192.0.2.25",
        "  ok       PTR   25.2.0.192.in-addr.arpa: 192.0.2.25 points back to muster.team.example",
        "  MISSING  MX    other.example: other.example has no MX record",
        "           publish:   other.example. 3600 IN MX 10 mail.team.example.",
        "           publish:   _dmarc.other.example. 3600 IN TXT ( \"v=DMARC1; p=none; rua=mailto:postmaster@other.example\" )",
        "  WRONG    TXT   ",
        "4 records to fix (MISSING or WRONG above).",
    ] {
        assert!(out.contains(line), "{line:?} missing from:\n{out}");
    }
    dns_page(Engine::Chromium, &app, "broken", "4 records to fix.").await;
    dns_page(Engine::Firefox, &app, "broken", "4 records to fix.").await;

    // DNS fixed as the report asked: nothing is left, everywhere.
    server.set(&zones, &records(&dkim_name, &dkim_txt, true));
    wait_for_async(
        "the report to see the fixed records",
        Duration::from_secs(20),
        || async {
            let (_, report) = app
                .call(reqwest::Method::GET, "/deliverability", None)
                .await;
            (report["to_fix"] == 0).then_some(())
        },
    )
    .await;
    let (code, out) = check_deliverability(&config);
    assert_eq!(code, 0, "{out}");
    assert!(out.ends_with("Nothing to fix.\n"), "{out}");
    dns_page(Engine::Chromium, &app, "fixed", "Nothing to fix.").await;
    dns_page(Engine::Firefox, &app, "fixed", "Nothing to fix.").await;

    // A resolver that does not answer: the records are unknown, not fine.
    drop(server);
    let (code, out) = check_deliverability(&config);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("got no answer from"), "{out}");
    assert!(!out.contains("Nothing to fix."), "{out}");
    app.shutdown().await;
}
