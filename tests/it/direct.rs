//! Direct delivery over real servers on loopback: a real DNS server
//! (unbound) answers MX, A and TXT for the test domains; two real Postfix
//! instances on 127.0.0.2 and 127.0.0.3 are the destination mail servers
//! (one greylists and offers STARTTLS with a certificate from a test CA,
//! the other refuses unknown recipients with 550 5.1.1). Muster looks each
//! domain up, falls back to the next MX and to the A record, treats a null
//! MX and a domain that does not exist as failures in words, and signs
//! every message with RSA and Ed25519 keys `muster dkim generate` made;
//! dkimpy verifies each signature, and SPF and DMARC alignment are checked
//! with the published records. Per-domain limits show in the count and
//! order of connections.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Duration;

use muster::config::SmtpMode;
use muster::domain::roster::InviteRow;
use muster::service::{BatchRequest, InviteView};
use muster::store::Actor;

use crate::support::app::{TestApp, final_views, tried_views};
use crate::support::destinations::{Behaviour, DestinationMx, TestCa, port_free_on};
use crate::support::dns::{self, TestDns, txt};
use crate::support::mailstack;
use crate::support::mcp_client::python;
use crate::support::smtp_peer::Peer;
use crate::support::*;

pub fn dkimpy_available() -> bool {
    require(
        "dkimpy (scripts/install-test-deps puts it in target/pyenv)",
        std::process::Command::new(python())
            .args(["-c", "import dkim, nacl, dns.resolver"])
            .output()
            .is_ok_and(|o| o.status.success()),
    )
}

/// `muster dkim generate` for `domain`: the name and TXT record it prints.
pub fn generate_key_for(keys: &Path, domain: &str, algorithm: &str) -> (String, String) {
    let out = muster(&[
        "dkim",
        "generate",
        "--domain",
        domain,
        "--algorithm",
        algorithm,
    ])
    .env("MUSTER_DKIM_KEYS_DIR", keys)
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("Value: "))
        .unwrap_or_else(|| panic!("{stdout}"));
    let name = stdout
        .lines()
        .find(|l| l.starts_with("Name: "))
        .unwrap()
        .trim_start_matches("Name: ")
        .trim()
        .to_string();
    (name, line.trim_start_matches("Value: ").trim().to_string())
}

fn generate_key(keys: &Path, algorithm: &str) -> (String, String) {
    generate_key_for(keys, "team.example", algorithm)
}

fn view_of<'a>(views: &'a [InviteView], email: &str) -> &'a InviteView {
    views.iter().find(|v| v.recipient_email == email).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invites_go_straight_to_each_domains_mail_servers_signed() {
    if !mailstack::available() || !dns::available() || !dkimpy_available() {
        return;
    }
    let state = TestDir::new();
    let port = port_free_on(&["127.0.0.2", "127.0.0.3", "127.0.0.4"]);
    let keys = state.path().join("dkim");
    let (rsa_name, rsa_txt) = generate_key(&keys, "rsa");
    let (ed_name, ed_txt) = generate_key(&keys, "ed25519");
    let records = vec![
        // alpha.test: the first MX is down (nothing on 127.0.0.4).
        "alpha.test. 300 IN MX 10 mx1.alpha.test.".to_string(),
        "alpha.test. 300 IN MX 20 mx2.alpha.test.".into(),
        "mx1.alpha.test. 300 IN A 127.0.0.4".into(),
        "mx2.alpha.test. 300 IN A 127.0.0.3".into(),
        // beta.test: one MX that greylists and speaks TLS.
        "beta.test. 300 IN MX 10 mx.beta.test.".into(),
        "mx.beta.test. 300 IN A 127.0.0.2".into(),
        // gamma.test: no MX, an address.
        "gamma.test. 300 IN A 127.0.0.3".into(),
        // nomail.test: a null MX.
        "nomail.test. 300 IN MX 0 .".into(),
        // The sender's domain: SPF for this host, DMARC, both DKIM keys.
        format!(
            "team.example. 300 IN TXT {}",
            txt("v=spf1 ip4:127.0.0.1 -all")
        ),
        format!(
            "_dmarc.team.example. 300 IN TXT {}",
            txt("v=DMARC1; p=reject")
        ),
        format!("{rsa_name}. 300 IN TXT {}", txt(&rsa_txt)),
        format!("{ed_name}. 300 IN TXT {}", txt(&ed_txt)),
    ];
    let dns = TestDns::start(state.path(), &["test.", "example."], &records);
    let ca = TestCa::new(state.path());
    let beta = DestinationMx::start(
        state.path(),
        "127.0.0.2",
        port,
        Behaviour {
            domains: &["beta.test"],
            mailboxes: &["bo@beta.test"],
            greylist: true,
            tls: Some(ca.issue("mx.beta.test")),
            hostname: "mx.beta.test",
        },
    );
    let alpha = DestinationMx::start(
        state.path(),
        "127.0.0.3",
        port,
        Behaviour {
            domains: &["alpha.test", "gamma.test"],
            mailboxes: &["ann@alpha.test", "cy@gamma.test"],
            greylist: false,
            tls: None,
            hostname: "mx2.alpha.test",
        },
    );
    let app = TestApp::spawn(|c| {
        c.smtp.mode = Some(SmtpMode::Direct);
        c.smtp.direct.port = port;
        c.smtp.direct.ca_file = Some(ca.pem());
        c.smtp.helo_name = Some("muster.team.example".into());
        c.smtp.rate_per_minute = 0;
        c.smtp.retry_initial_secs = 1;
        c.smtp.retry_max_secs = 2;
        c.smtp.timeout_secs = 30;
        c.dns.resolvers = vec![dns.resolver()];
        c.dkim.keys_dir = Some(keys.clone());
    })
    .await;
    let rows = [
        "ann@alpha.test",
        "bo@beta.test",
        "cy@gamma.test",
        "x@nomail.test",
        "y@nowhere.test",
        "ghost@alpha.test",
    ]
    .iter()
    .map(|e| InviteRow::to(e.to_string()))
    .collect();
    let made = app
        .muster
        .create_batch(BatchRequest::new(rows, Actor::cli()))
        .unwrap();
    let ids: Vec<String> = made.invites.iter().map(|i| i.id.clone()).collect();
    let views = final_views(&app, &ids, Duration::from_secs(90)).await;

    // Delivered: through the second MX, after the greylist, and to the A
    // record of a domain without MX.
    for who in ["ann@alpha.test", "bo@beta.test", "cy@gamma.test"] {
        assert_eq!(view_of(&views, who).delivery_state, "sent", "{views:#?}");
    }
    assert_eq!(
        beta.greylisted.lock().unwrap().len(),
        1,
        "the first try was greylisted"
    );
    assert!(view_of(&views, "bo@beta.test").attempts >= 2);
    // Failed for good, in words.
    let detail = |who| {
        view_of(&views, who)
            .delivery_detail
            .clone()
            .unwrap_or_default()
    };
    assert_eq!(view_of(&views, "x@nomail.test").delivery_state, "failed");
    assert!(
        detail("x@nomail.test").contains("takes no email"),
        "{}",
        detail("x@nomail.test")
    );
    assert!(
        detail("y@nowhere.test").contains("does not exist"),
        "{}",
        detail("y@nowhere.test")
    );
    assert!(
        detail("ghost@alpha.test").starts_with("unknown recipient")
            && detail("ghost@alpha.test").contains("550 5.1.1"),
        "{}",
        detail("ghost@alpha.test")
    );
    assert_eq!(
        view_of(&views, "ghost@alpha.test").attempts,
        1,
        "not retried"
    );

    // Each message: both signatures verify with dkimpy; SPF passes for the
    // address it came from; DMARC aligns (From, DKIM d= and the envelope
    // all team.example).
    let mut files = Vec::new();
    for (mx, who) in [
        (&alpha, "ann@alpha.test"),
        (&beta, "bo@beta.test"),
        (&alpha, "cy@gamma.test"),
    ] {
        let got = mx.wait_for_delivered(who, 1);
        assert_eq!(got.len(), 1, "{who} got exactly one message");
        let path = state.path().join(format!("{who}.eml"));
        std::fs::write(&path, &got[0]).unwrap();
        files.push((who, path, got[0].clone()));
    }
    let out = std::process::Command::new(python())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dkim/verify.py"))
        .arg(dns.resolver())
        .args(files.iter().map(|(_, p, _)| p))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    for (result, (who, _, _)) in lines.iter().zip(&files) {
        let sigs = result.as_array().unwrap();
        let algorithms: Vec<&str> = sigs.iter().map(|s| s["a"].as_str().unwrap()).collect();
        assert!(
            algorithms.contains(&"rsa-sha256") && algorithms.contains(&"ed25519-sha256"),
            "{who}: {result}"
        );
        assert!(
            sigs.iter()
                .all(|s| s["ok"] == true && s["d"] == "team.example"),
            "{who}: {result}"
        );
    }
    let auth = mail_auth::MessageAuthenticator::new(
        mail_auth::hickory_resolver::config::ResolverConfig::from_name_servers(vec![{
            let mut udp = mail_auth::hickory_resolver::config::ConnectionConfig::udp();
            udp.port = dns.port;
            mail_auth::hickory_resolver::config::NameServerConfig::new(
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                true,
                vec![udp],
            )
        }]),
        Default::default(),
    )
    .unwrap();
    for (who, _, raw) in &files {
        let text = String::from_utf8_lossy(raw);
        assert!(
            text.contains("From: ") && text.contains("@team.example"),
            "{who}"
        );
        let message = mail_auth::AuthenticatedMessage::parse(raw).unwrap();
        let dkim = auth.verify_dkim(&message).await;
        assert!(
            dkim.iter()
                .all(|d| d.result() == &mail_auth::DkimResult::Pass),
            "{who}"
        );
        // The envelope sender, as the destination recorded it.
        let return_path = text
            .lines()
            .find_map(|l| l.strip_prefix("Return-Path: <"))
            .map(|l| l.trim_end_matches('>').to_string())
            .unwrap();
        assert!(
            return_path.ends_with("@team.example"),
            "{who}: {return_path}"
        );
        let spf = auth
            .verify_spf(mail_auth::spf::verify::SpfParameters::verify_mail_from(
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                "muster.team.example",
                "mx.test",
                &return_path,
            ))
            .await;
        assert_eq!(spf.result(), mail_auth::SpfResult::Pass, "{who}");
        let dmarc = auth
            .verify_dmarc(mail_auth::dmarc::verify::DmarcParameters::new(
                &message,
                &dkim,
                "team.example",
                &spf,
            ))
            .await;
        assert_eq!(dmarc.dkim_result(), &mail_auth::DmarcResult::Pass, "{who}");
        assert_eq!(dmarc.spf_result(), &mail_auth::DmarcResult::Pass, "{who}");
    }
    // STARTTLS with the server that offered it, plain with the other.
    let beta_copy = String::from_utf8_lossy(&files[1].2).to_string();
    assert!(beta_copy.contains("with ESMTPS"), "{beta_copy}");
    let ann_copy = String::from_utf8_lossy(&files[0].2).to_string();
    assert!(ann_copy.contains("with ESMTP "), "{ann_copy}");
    app.shutdown().await;
}

/// Two test domains, each with its MX on its own loopback address: a
/// recording SMTP peer there, on one port free on both.
async fn two_domains(state: &TestDir, domains: [(&str, &str); 2]) -> (u16, TestDns, [Peer; 2]) {
    let port = port_free_on(&[domains[0].1, domains[1].1]);
    let records: Vec<String> = domains
        .iter()
        .flat_map(|(d, ip)| {
            [
                format!("{d}. 300 IN MX 10 mx.{d}."),
                format!("mx.{d}. 300 IN A {ip}"),
            ]
        })
        .collect();
    let dns = TestDns::start(state.path(), &["test."], &records);
    let first = Peer::start_at(domains[0].1, port, vec![]).await;
    let second = Peer::start_at(domains[1].1, port, vec![]).await;
    (port, dns, [first, second])
}

/// Connections per destination domain and messages per minute per domain
/// show in what each destination saw when the other had all of its mail:
/// one connection at a time for a domain, and only the burst sent to the
/// throttled one; the rest wait their turn, queued, not failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_domain_limits_hold_connections_and_pace() {
    if !dns::available() {
        return;
    }
    let state = TestDir::new();
    let (port, dns, [busy, quiet]) = two_domains(
        &state,
        [("busy.test", "127.0.0.5"), ("quiet.test", "127.0.0.6")],
    )
    .await;
    // Each message held a moment at the destination, so a second
    // connection would have reason to open.
    busy.set_delay(Duration::from_millis(100));
    let app = TestApp::spawn(|c| {
        c.smtp.mode = Some(SmtpMode::Direct);
        c.smtp.direct.port = port;
        c.smtp.helo_name = Some("muster.test".into());
        c.smtp.direct.connections_per_domain = 1;
        c.smtp.direct.rate_per_domain_per_minute = 1;
        c.smtp.direct.burst_per_domain = 4;
        c.smtp.connections = 8;
        c.smtp.rate_per_minute = 0;
        c.dns.resolvers = vec![dns.resolver()];
    })
    .await;
    let mut rows: Vec<InviteRow> = (0..7)
        .map(|i| InviteRow::to(format!("b{i}@busy.test")))
        .collect();
    rows.extend((0..3).map(|i| InviteRow::to(format!("q{i}@quiet.test"))));
    let made = app
        .muster
        .create_batch(BatchRequest::new(rows, Actor::cli()))
        .unwrap();
    wait_for_async(
        "the quiet domain's three",
        Duration::from_secs(60),
        || async { (quiet.received().len() == 3).then_some(()) },
    )
    .await;
    wait_for_async(
        "the busy domain's burst",
        Duration::from_secs(60),
        || async { (busy.received().len() >= 4).then_some(()) },
    )
    .await;
    // The burst and the quiet domain's three recorded as sent; the fifth
    // would need a minute: it has not gone, and the rest wait, not failed.
    let states = wait_for_async(
        "seven recorded as sent",
        Duration::from_secs(30),
        || async {
            let states: Vec<String> = made
                .invites
                .iter()
                .map(|i| {
                    app.muster
                        .get_invite(&i.id)
                        .unwrap()
                        .delivery_state
                        .to_string()
                })
                .collect();
            (states.iter().filter(|s| *s == "sent").count() == 7).then_some(states)
        },
    )
    .await;
    assert_eq!(busy.received().len(), 4);
    let (opened, most_at_once) = busy.connections();
    assert_eq!(most_at_once, 1, "one connection at a time to busy.test");
    assert_eq!(opened, 1, "its messages shared the connection");
    let waiting = states
        .iter()
        .filter(|s| *s == "queued" || *s == "sending")
        .count();
    assert_eq!(waiting, 3, "the rest wait their turn: {states:?}");
    app.shutdown().await;
}

/// One connection in all, a throttled domain with a queue of its own, and
/// another domain's invite arriving after: the throttled domain's
/// connection gives way once it has had its turn, so the other's invite
/// goes before the throttled queue has drained.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_domain_without_a_connection_gets_one_before_a_long_queue_drains() {
    if !dns::available() {
        return;
    }
    let state = TestDir::new();
    let (port, dns, [slow, other]) = two_domains(
        &state,
        [("slow.test", "127.0.0.7"), ("other.test", "127.0.0.8")],
    )
    .await;
    let app = TestApp::spawn(|c| {
        c.smtp.mode = Some(SmtpMode::Direct);
        c.smtp.direct.port = port;
        c.smtp.helo_name = Some("muster.test".into());
        c.smtp.connections = 1;
        c.smtp.direct.connections_per_domain = 1;
        // A message every 10 s to each domain: slow.test's eight take 70 s.
        c.smtp.direct.rate_per_domain_per_minute = 6;
        c.smtp.direct.burst_per_domain = 1;
        c.smtp.rate_per_minute = 0;
        c.dns.resolvers = vec![dns.resolver()];
    })
    .await;
    let batch = |rows: Vec<InviteRow>| {
        app.muster
            .create_batch(BatchRequest::new(rows, Actor::cli()))
            .unwrap()
    };
    batch(
        (0..8)
            .map(|i| InviteRow::to(format!("s{i}@slow.test")))
            .collect(),
    );
    wait_for_async("slow.test's first", Duration::from_secs(30), || async {
        (!slow.received().is_empty()).then_some(())
    })
    .await;
    batch(vec![InviteRow::to("o@other.test".to_string())]);
    let slow_by_then = wait_for_async("other.test's invite", Duration::from_secs(60), || async {
        (other.received().len() == 1).then(|| slow.received().len())
    })
    .await;
    assert!(
        slow_by_then < 8,
        "other.test waited for all of slow.test's invites ({slow_by_then} of 8 had gone)"
    );
    app.shutdown().await;
}

/// With `require_tls`, a server without STARTTLS, or with a certificate
/// that does not verify, gets nothing (the invite waits, in words); one
/// whose certificate the configured CA signed gets its mail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_tls_sends_only_to_servers_that_prove_who_they_are() {
    if !mailstack::available() || !dns::available() {
        return;
    }
    let state = TestDir::new();
    let port = port_free_on(&["127.0.0.7", "127.0.0.8"]);
    let records = vec![
        "secure.test. 300 IN MX 10 mx.secure.test.".to_string(),
        "mx.secure.test. 300 IN A 127.0.0.7".into(),
        "plain.test. 300 IN MX 10 mx.plain.test.".into(),
        "mx.plain.test. 300 IN A 127.0.0.8".into(),
    ];
    let dns = TestDns::start(state.path(), &["test."], &records);
    let ca = TestCa::new(state.path());
    let secure = DestinationMx::start(
        state.path(),
        "127.0.0.7",
        port,
        Behaviour {
            domains: &["secure.test"],
            mailboxes: &["sue@secure.test"],
            greylist: false,
            tls: Some(ca.issue("mx.secure.test")),
            hostname: "mx.secure.test",
        },
    );
    let _plain = DestinationMx::start(
        state.path(),
        "127.0.0.8",
        port,
        Behaviour {
            domains: &["plain.test"],
            mailboxes: &["pat@plain.test"],
            greylist: false,
            tls: None,
            hostname: "mx.plain.test",
        },
    );
    let send = |ca_file: Option<std::path::PathBuf>| {
        let resolver = dns.resolver();
        async move {
            let app = TestApp::spawn(|c| {
                c.smtp.mode = Some(SmtpMode::Direct);
                c.smtp.direct.port = port;
                c.smtp.direct.require_tls = true;
                c.smtp.helo_name = Some("muster.test".into());
                c.smtp.direct.ca_file = ca_file;
                c.smtp.rate_per_minute = 0;
                c.smtp.retry_initial_secs = 600;
                c.dns.resolvers = vec![resolver];
            })
            .await;
            let made = app
                .muster
                .create_batch(BatchRequest::new(
                    vec![
                        InviteRow::to("sue@secure.test".to_string()),
                        InviteRow::to("pat@plain.test".to_string()),
                    ],
                    Actor::cli(),
                ))
                .unwrap();
            let ids: Vec<String> = made.invites.iter().map(|i| i.id.clone()).collect();
            let views = tried_views(&app, &ids, Duration::from_secs(60)).await;
            app.shutdown().await;
            views
        }
    };
    // Without the CA, the certificate does not verify: nothing goes.
    let views = send(None).await;
    for v in &views {
        assert_eq!(v.delivery_state, "deferred", "{views:#?}");
    }
    let sue = view_of(&views, "sue@secure.test")
        .delivery_detail
        .clone()
        .unwrap();
    assert!(sue.contains("TLS with mx.secure.test"), "{sue}");
    let pat = view_of(&views, "pat@plain.test")
        .delivery_detail
        .clone()
        .unwrap();
    assert!(pat.contains("does not offer STARTTLS"), "{pat}");
    assert!(secure.delivered("sue@secure.test").is_empty());
    // With it, the secure server gets its mail, over TLS; the plain one
    // still gets none.
    let views = send(Some(ca.pem())).await;
    assert_eq!(
        view_of(&views, "sue@secure.test").delivery_state,
        "sent",
        "{views:#?}"
    );
    assert_eq!(view_of(&views, "pat@plain.test").delivery_state, "deferred");
    let got = secure.wait_for_delivered("sue@secure.test", 1);
    assert!(String::from_utf8_lossy(&got[0]).contains("with ESMTPS"));
}
