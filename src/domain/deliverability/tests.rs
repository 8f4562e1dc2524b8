use std::net::{IpAddr, Ipv4Addr};

use super::*;

const HOST: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10));

fn facts() -> DomainFacts {
    DomainFacts {
        domain: "team.example".into(),
        sender: true,
        hosted: true,
        mail_host: "mail.team.example".into(),
        mail_host_addresses: vec![HOST],
        mx: Answer::Records(vec![(10, "mail.team.example".into(), vec![HOST])]),
        spf: Answer::Records(vec!["v=spf1 ip4:192.0.2.10 -all".into()]),
        spf_verdicts: vec![(HOST, SpfVerdict::Pass)],
        dkim_keys: vec![DkimKeyFacts {
            selector: "muster".into(),
            algorithm: "ed25519",
            public_b64: "AAAA".into(),
            published: Answer::Records(vec!["v=DKIM1; k=ed25519; p=AA AA".into()]),
        }],
        dkim_signing: true,
        dkim_problem: None,
        dmarc: Answer::Records(vec!["v=DMARC1; p=quarantine".into()]),
        dmarc_at: None,
        autoconfig: Answer::Records(vec![HOST]),
        autodiscover: Answer::Absent,
        public_host: "muster.team.example".into(),
    }
}

fn by(findings: &[Finding], check: Check) -> &Finding {
    findings.iter().find(|f| f.check == check).unwrap()
}

#[test]
fn a_domain_published_right_needs_nothing() {
    let all = assess_domain(&facts(), &Sending::From(vec![HOST]));
    assert!(all.iter().all(|f| !f.status.needs_action()), "{all:#?}");
    // autodiscover missing is advice, not a fault
    assert!(
        all.iter()
            .any(|f| f.status == Status::Advice && f.name == "autodiscover.team.example")
    );
}

#[test]
fn missing_records_say_what_to_publish() {
    let mut f = facts();
    f.mx = Answer::Absent;
    f.spf = Answer::Absent;
    f.dkim_keys.clear();
    f.dmarc = Answer::Absent;
    let all = assess_domain(&f, &Sending::From(vec![HOST]));
    assert_eq!(
        by(&all, Check::Mx).publish.as_deref(),
        Some("10 mail.team.example.")
    );
    assert_eq!(
        by(&all, Check::Spf).publish.as_deref(),
        Some("v=spf1 mx ip4:192.0.2.10 -all")
    );
    assert!(
        by(&all, Check::Dkim)
            .words
            .contains("muster dkim generate --domain team.example")
    );
    assert_eq!(
        by(&all, Check::Dmarc).publish.as_deref(),
        Some("v=DMARC1; p=none; rua=mailto:postmaster@team.example")
    );
    for c in [Check::Mx, Check::Spf, Check::Dkim, Check::Dmarc] {
        assert_eq!(by(&all, c).status, Status::Missing, "{c:?}");
    }
}

#[test]
fn spf_that_leaves_out_the_sender_gets_the_terms_added_before_all() {
    let mut f = facts();
    f.spf = Answer::Records(vec!["v=spf1 include:_spf.other.example ~all".into()]);
    f.spf_verdicts = vec![(HOST, SpfVerdict::SoftFail)];
    let spf = by(&assess_domain(&f, &Sending::From(vec![HOST])), Check::Spf).clone();
    assert_eq!(spf.status, Status::Wrong);
    assert!(
        spf.words
            .contains("does not cover 192.0.2.10 (result: softfail)"),
        "{}",
        spf.words
    );
    assert_eq!(
        spf.publish.as_deref(),
        Some("v=spf1 include:_spf.other.example ip4:192.0.2.10 ~all")
    );
}

#[test]
fn two_spf_records_and_a_foreign_dkim_key_are_wrong() {
    let mut f = facts();
    f.spf = Answer::Records(vec!["v=spf1 -all".into(), "v=spf1 mx -all".into()]);
    f.dkim_keys[0].published = Answer::Records(vec!["v=DKIM1; p=BBBB".into()]);
    let all = assess_domain(&f, &Sending::From(vec![HOST]));
    assert_eq!(by(&all, Check::Spf).status, Status::Wrong);
    assert!(by(&all, Check::Spf).words.contains("2 SPF records"));
    let dkim = by(&all, Check::Dkim);
    assert_eq!(dkim.status, Status::Wrong);
    assert_eq!(dkim.publish.as_deref(), Some("v=DKIM1; k=ed25519; p=AAAA"));
}

#[test]
fn an_mx_elsewhere_or_null_is_wrong_and_no_answer_is_unknown() {
    let mut f = facts();
    f.mx = Answer::Records(vec![(0, String::new(), vec![])]);
    assert_eq!(
        by(&assess_domain(&f, &Sending::From(vec![HOST])), Check::Mx).status,
        Status::Wrong
    );
    f.mx = Answer::Records(vec![(
        5,
        "mx.elsewhere.example".into(),
        vec![IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1))],
    )]);
    let mx = by(&assess_domain(&f, &Sending::From(vec![HOST])), Check::Mx).clone();
    assert_eq!(mx.status, Status::Wrong);
    assert!(mx.words.contains("other servers"));
    f.dmarc = Answer::NoAnswer("timeout".into());
    assert_eq!(
        by(&assess_domain(&f, &Sending::From(vec![HOST])), Check::Dmarc).status,
        Status::Unknown
    );
}

#[test]
fn the_host_needs_a_resolving_helo_and_a_matching_ptr() {
    let facts = HostFacts {
        helo_name: "mail.team.example".into(),
        helo_addresses: Answer::Records(vec![HOST]),
        reverse: vec![(
            HOST,
            Answer::Records(vec!["vps-17.provider.example".into()]),
        )],
    };
    let all = assess_host(&facts);
    assert_eq!(all[0].status, Status::Ok);
    assert_eq!(all[1].status, Status::Wrong);
    assert_eq!(all[1].name, "10.2.0.192.in-addr.arpa");
    assert!(all[1].words.contains("vps-17.provider.example"));
    let none = HostFacts {
        reverse: vec![(HOST, Answer::Absent)],
        helo_addresses: Answer::Absent,
        ..facts
    };
    let all = assess_host(&none);
    assert_eq!(all[0].status, Status::Missing);
    assert_eq!(all[1].status, Status::Missing);
    // Nothing to look the reverse name up for: said, not skipped.
    let unresolved = HostFacts {
        reverse: vec![],
        ..none
    };
    let all = assess_host(&unresolved);
    assert_eq!(all[1].status, Status::Unknown);
    assert!(all[1].words.contains("until mail.team.example resolves"));
}

#[test]
fn a_subdomain_without_dmarc_of_its_own_gets_its_parents() {
    let mut f = facts();
    f.domain = "mail.team.example".into();
    f.dmarc = Answer::Records(vec!["v=DMARC1; p=reject; sp=none".into()]);
    f.dmarc_at = Some("team.example".into());
    let dmarc = by(&assess_domain(&f, &Sending::From(vec![HOST])), Check::Dmarc).clone();
    assert_eq!(dmarc.status, Status::Ok);
    assert!(
        dmarc.words.starts_with(
            "mail.team.example has no DMARC record of its own; receivers apply _dmarc.team.example's"
        ) && dmarc.words.contains("p=none"),
        "{}",
        dmarc.words
    );
}

#[test]
fn a_mail_host_known_by_address_gets_no_mx_to_publish() {
    let mut f = facts();
    f.mail_host = "127.0.0.1".into();
    f.mx = Answer::Absent;
    f.public_host = "127.0.0.1".into();
    let all = assess_domain(&f, &Sending::Unknown("mail.team.example".into()));
    let mx = by(&all, Check::Mx);
    assert_eq!(mx.publish, None);
    assert!(mx.words.contains("set client.imap_host"), "{}", mx.words);
    let spf = by(&all, Check::Spf);
    assert_eq!(spf.status, Status::Unknown);
    let autodiscover = by(&all, Check::Autodiscover);
    assert_eq!(autodiscover.publish, None);
    assert!(autodiscover.words.contains("Outlook sets itself up"));
}

#[test]
fn a_mail_host_known_by_a_local_name_gets_no_mx_to_publish() {
    let mut f = facts();
    f.mail_host = "localhost".into();
    f.mx = Answer::Absent;
    f.public_host = "localhost".into();
    f.autoconfig = Answer::Absent;
    let all = assess_domain(&f, &Sending::Unknown("mail.team.example".into()));
    let mx = by(&all, Check::Mx);
    assert_eq!(mx.publish, None);
    assert!(
        mx.words.contains("known here only as localhost") && mx.words.contains("public DNS name"),
        "{}",
        mx.words
    );
    for check in [Check::Autoconfig, Check::Autodiscover] {
        let x = by(&all, check);
        assert_eq!(x.publish, None, "{check:?}");
        assert!(
            x.words.contains("only this machine or its network reaches"),
            "{}",
            x.words
        );
    }
}

#[test]
fn local_hosts_are_told_from_public_ones() {
    for local in [
        "localhost",
        "mail",
        "muster.localhost",
        "nas.local",
        "mail.corp.internal",
        "box.lan",
        "mail.home.arpa",
        "127.0.0.1",
        "10.1.2.3",
        "[::1]",
        "fd00::1",
    ] {
        assert!(is_local_host(local), "{local}");
    }
    for public in [
        "mail.team.example",
        "mail.example.org.",
        "192.0.2.10",
        "2001:db8::1",
    ] {
        assert!(!is_local_host(public), "{public}");
    }
}
