//! MTA-STS in direct delivery, over real servers on loopback: unbound
//! serves the `_mta-sts` TXT records and the policy hosts' addresses, an
//! HTTPS server (certificate from the test CA) serves the policies, and one
//! real Postfix on 127.0.0.9 is every domain's mail server, offering
//! STARTTLS with a certificate valid only for `mx.sts.test`. Without a
//! policy Muster would send to it for every domain (opportunistic TLS);
//! under an enforced policy it sends only where the host is listed and its
//! certificate verifies for that name; a policy it cannot fetch (a
//! redirect, not text/plain, a policy host whose certificate does not
//! verify) counts as none, unless one is kept.

use std::sync::Arc;
use std::time::Duration;

use muster::config::{DnsSettings, SmtpMode};
use muster::dns::Dns;
use muster::domain::roster::InviteRow;
use muster::mail::mta_sts::{Keeping, Policies};
use muster::service::{BatchRequest, InviteView, ManualClock, SystemClock};
use muster::store::Actor;

use crate::support::app::{TestApp, tried_views};
use crate::support::destinations::{Behaviour, DestinationMx, TestCa, port_free_on};
use crate::support::dns::{self, TestDns, txt};
use crate::support::mailstack;
use crate::support::policy_server::PolicyServer;
use crate::support::*;

const IP: &str = "127.0.0.9";

fn policy(mode: &str, mx: &str) -> String {
    format!("version: STSv1\r\nmode: {mode}\r\nmx: {mx}\r\nmax_age: 86400\r\n")
}

/// Domains with a policy record, and the one without.
const STS: [&str; 7] = [
    "sts.test",
    "badcert.test",
    "unlisted.test",
    "trial.test",
    "moved.test",
    "html.test",
    "forged.test",
];

/// The records: each domain's MX and policy host on 127.0.0.9, and its
/// `_mta-sts` record (time to live 0, so that a change shows at once)
/// with `id`, unless `without` leaves it out.
fn records(id_of: impl Fn(&str) -> Option<&'static str>) -> Vec<String> {
    let mut out = vec![
        "sts.test. 300 IN MX 10 mx.sts.test.".to_string(),
        "unlisted.test. 300 IN MX 10 mx.sts.test.".into(),
        "trial.test. 300 IN MX 10 mx.trial.test.".into(),
    ];
    // mx.badcert.test's address has a certificate for mx.sts.test only.
    for domain in [
        "badcert.test",
        "plain.test",
        "moved.test",
        "html.test",
        "forged.test",
    ] {
        out.push(format!("{domain}. 300 IN MX 10 mx.badcert.test."));
    }
    for host in ["mx.sts.test", "mx.badcert.test", "mx.trial.test"] {
        out.push(format!("{host}. 300 IN A {IP}"));
    }
    for domain in STS {
        out.push(format!("mta-sts.{domain}. 300 IN A {IP}"));
        if let Some(id) = id_of(domain) {
            out.push(format!(
                "_mta-sts.{domain}. 0 IN TXT {}",
                txt(&format!("v=STSv1; id={id};"))
            ));
        }
    }
    out
}

fn invite(app: &TestApp, to: &[&str]) -> Vec<String> {
    let made = app
        .muster
        .create_batch(BatchRequest::new(
            to.iter().map(|a| InviteRow::to(a.to_string())).collect(),
            Actor::cli(),
        ))
        .unwrap();
    made.invites.iter().map(|i| i.id.clone()).collect()
}

fn state_and_detail(views: &[InviteView], email: &str) -> (String, String) {
    let v = views.iter().find(|v| v.recipient_email == email).unwrap();
    (
        v.delivery_state.to_string(),
        v.delivery_detail.clone().unwrap_or_default(),
    )
}

/// An enforced policy: mail goes to a listed host whose certificate
/// verifies; a host whose certificate is for another name, or a host the
/// policy does not list, gets nothing and the invite waits, in words. A
/// testing policy, no policy and a policy that cannot be fetched change
/// nothing. A policy once fetched holds after a restart, after its record
/// is removed, and when a new id's fetch fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enforced_policy_sends_only_to_listed_hosts_over_verified_tls() {
    if !mailstack::available() || !dns::available() {
        return;
    }
    let state = TestDir::new();
    let port = port_free_on(&[IP]);
    let mut dns = TestDns::start(state.path(), &["test."], &records(|_| Some("20261206")));
    let ca = TestCa::new(state.path());
    let first = [
        "ann@sts.test",
        "bob@badcert.test",
        "cy@unlisted.test",
        "dee@trial.test",
        "pia@plain.test",
        "mo@moved.test",
        "hal@html.test",
        "fay@forged.test",
    ];
    let later = ["bea@badcert.test", "cal@unlisted.test"];
    let mailboxes: Vec<&str> = first.iter().chain(&later).copied().collect();
    let mut domains: Vec<&str> = STS.to_vec();
    domains.push("plain.test");
    let mx = DestinationMx::start(
        state.path(),
        IP,
        port,
        Behaviour {
            domains: &domains,
            mailboxes: &mailboxes,
            greylist: false,
            tls: Some(ca.issue("mx.sts.test")),
            hostname: "mx.sts.test",
        },
    );
    let html = {
        let body = policy("enforce", "mx.elsewhere.test");
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    let policies = PolicyServer::start(
        IP,
        &ca,
        &[
            ("sts.test", &policy("enforce", "mx.sts.test")),
            ("badcert.test", &policy("enforce", "*.badcert.test")),
            ("unlisted.test", &policy("enforce", "mx.elsewhere.test")),
            ("trial.test", &policy("testing", "mx.elsewhere.test")),
            // Answers that are no policy: a redirect (to one that would
            // hold mail back here), a page that is not text/plain, and a
            // policy host whose certificate is not for its name.
            (
                "moved.test",
                "HTTP/1.1 301 Moved Permanently\r\nLocation: https://mta-sts.sts.test/.well-known/mta-sts.txt\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            ),
            ("html.test", &html),
            ("forged.test", &policy("enforce", "mx.elsewhere.test")),
        ],
        &["forged.test"],
    )
    .await;
    let app = TestApp::spawn(|c| {
        c.smtp.mode = Some(SmtpMode::Direct);
        c.smtp.direct.port = port;
        c.smtp.direct.ca_file = Some(ca.pem());
        c.smtp.helo_name = Some("muster.test".into());
        c.smtp.rate_per_minute = 0;
        c.smtp.retry_initial_secs = 600;
        c.dns.resolvers = vec![dns.resolver()];
    })
    .await;
    let ids = invite(&app, &first);
    let views = tried_views(&app, &ids, Duration::from_secs(60)).await;

    let (ann, _) = state_and_detail(&views, "ann@sts.test");
    assert_eq!(ann, "sent", "{views:#?}");
    let got = mx.wait_for_delivered("ann@sts.test", 1);
    assert!(String::from_utf8_lossy(&got[0]).contains("with ESMTPS"));

    let (bob, why) = state_and_detail(&views, "bob@badcert.test");
    assert_eq!(bob, "deferred", "{views:#?}");
    assert!(
        why.contains("as the MTA-STS policy of badcert.test (enforce, fetched ")
            && why.contains("TLS with mx.badcert.test")
            && why.contains("not valid for name"),
        "{why}"
    );
    let (cy, why) = state_and_detail(&views, "cy@unlisted.test");
    assert_eq!(cy, "deferred", "{views:#?}");
    assert!(
        why.starts_with("the MTA-STS policy of unlisted.test (enforce, fetched ")
            && why.contains(") allows only mx.elsewhere.test, but its MX records name mx.sts.test; not sent, tried again later"),
        "{why}"
    );
    // Testing mode, no policy, and a policy that could not be fetched (a
    // redirect is not followed, only text/plain is a policy, the policy
    // host must prove its name): sent as before, over TLS that is not
    // verified (the certificate names mx.sts.test).
    for email in [
        "dee@trial.test",
        "pia@plain.test",
        "mo@moved.test",
        "hal@html.test",
        "fay@forged.test",
    ] {
        assert_eq!(state_and_detail(&views, email).0, "sent", "{views:#?}");
        mx.wait_for_delivered(email, 1);
    }
    assert!(mx.delivered("bob@badcert.test").is_empty());
    assert!(mx.delivered("cy@unlisted.test").is_empty());

    let asked = policies.asked();
    for domain in STS.iter().filter(|d| **d != "forged.test") {
        assert!(
            asked.iter().any(|h| *h == format!("mta-sts.{domain}")),
            "{asked:?}"
        );
    }
    assert!(
        policies
            .requests
            .lock()
            .unwrap()
            .iter()
            .all(|(_, line)| line.starts_with("GET /.well-known/mta-sts.txt HTTP/1.1")),
        "{:?}",
        policies.requests.lock().unwrap()
    );

    // Muster restarts; unlisted.test's record goes away (as someone on the
    // path could make it seem), and badcert.test's gets a new id whose
    // policy cannot be fetched: the policies kept in the store hold.
    let config = (*app.muster.config).clone();
    let dir = app.stop().await;
    dns.set(
        &["test."],
        &records(|d| match d {
            "unlisted.test" => None,
            "badcert.test" => Some("20261207"),
            _ => Some("20261206"),
        }),
    );
    policies.withdraw("badcert.test");
    let resolver = Dns::from_config(&DnsSettings {
        resolvers: vec![dns.resolver()],
    })
    .unwrap();
    assert!(
        resolver.txt("_mta-sts.unlisted.test").await.is_err(),
        "the record is gone"
    );
    let asked_before = policies.asked();
    let app = TestApp::start(dir, config, Arc::new(SystemClock)).await;
    let ids = invite(&app, &later);
    let views = tried_views(&app, &ids, Duration::from_secs(60)).await;
    let (bea, why) = state_and_detail(&views, "bea@badcert.test");
    assert_eq!(bea, "deferred", "{views:#?}");
    assert!(
        why.contains("as the MTA-STS policy of badcert.test (enforce, fetched "),
        "{why}"
    );
    let (cal, why) = state_and_detail(&views, "cal@unlisted.test");
    assert_eq!(cal, "deferred", "{views:#?}");
    assert!(
        why.contains("allows only mx.elsewhere.test, but its MX records name mx.sts.test"),
        "{why}"
    );
    assert!(mx.delivered("bea@badcert.test").is_empty());
    assert!(mx.delivered("cal@unlisted.test").is_empty());
    // The new id was asked for (and answered 404); the removed record's
    // policy was not.
    let asked_since = policies.asked()[asked_before.len()..].to_vec();
    assert!(
        asked_since.iter().any(|h| h == "mta-sts.badcert.test")
            && !asked_since.iter().any(|h| h == "mta-sts.unlisted.test"),
        "{asked_since:?}"
    );
    app.shutdown().await;
}

/// Two connections opened at once to a domain fetch its policy once. A
/// policy fetch that fails (the server answers 500, or its certificate is
/// not for the policy host) is not tried again at the next connection, nor
/// nine minutes later, but is after ten; meanwhile the domain counts as
/// having no policy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_are_fetched_once_and_a_failed_fetch_waits_ten_minutes() {
    if !dns::available() {
        return;
    }
    const HERE: &str = "127.0.0.10";
    let state = TestDir::new();
    let mut records = Vec::new();
    for domain in ["shared.test", "failing.test", "forged.test"] {
        records.push(format!("mta-sts.{domain}. 300 IN A {HERE}"));
        records.push(format!(
            "_mta-sts.{domain}. 300 IN TXT {}",
            txt("v=STSv1; id=1;")
        ));
    }
    let dns = TestDns::start(state.path(), &["test."], &records);
    let ca = TestCa::new(state.path());
    let server = PolicyServer::start(
        HERE,
        &ca,
        &[
            (
                "failing.test",
                "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            ),
            ("forged.test", &policy("enforce", "mx.elsewhere.test")),
            ("shared.test", &policy("enforce", "mx.shared.test")),
        ],
        &["forged.test"],
    )
    .await;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca.pem()).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let clock = Arc::new(ManualClock::new(time::OffsetDateTime::now_utc()));
    let resolver = Dns::from_config(&DnsSettings {
        resolvers: vec![dns.resolver()],
    })
    .unwrap();
    let policies = Policies::new(
        Arc::new(resolver),
        tls,
        Duration::from_secs(10),
        Keeping {
            store: None,
            clock: clock.clone(),
        },
    )
    .unwrap();

    // Each new connection to a domain asks for its policy.
    let tries = |domain: &str| {
        let host = format!("mta-sts.{domain}");
        server.asked().iter().filter(|h| **h == host).count()
    };
    let (one, two) = tokio::join!(policies.of("shared.test"), policies.of("shared.test"));
    assert!(one.is_some() && two.is_some());
    assert_eq!(tries("shared.test"), 1);

    assert!(policies.of("failing.test").await.is_none());
    assert_eq!(tries("failing.test"), 1);
    let before = server.connections();
    assert!(policies.of("forged.test").await.is_none());
    assert_eq!(server.connections(), before + 1, "a fetch was tried");
    assert_eq!(
        tries("forged.test"),
        0,
        "no request without a valid certificate"
    );

    for minutes in [0, 9] {
        clock.advance(time::Duration::minutes(minutes));
        let before = server.connections();
        assert!(policies.of("failing.test").await.is_none());
        assert!(policies.of("forged.test").await.is_none());
        assert_eq!(server.connections(), before, "at {minutes} minutes");
    }
    clock.advance(time::Duration::minutes(1));
    let before = server.connections();
    assert!(policies.of("failing.test").await.is_none());
    assert!(policies.of("forged.test").await.is_none());
    assert_eq!(tries("failing.test"), 2);
    assert_eq!(server.connections(), before + 2);
}
