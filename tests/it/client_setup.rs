//! Mail clients setting themselves up: Thunderbird's autoconfig and
//! Outlook's Autodiscover read field by field for two hosted domains, the
//! Apple profile read by Python's `plistlib`, and bad requests answered
//! plainly.

use crate::support::app::TestApp;
use crate::support::*;
use muster::config::{ClientSecurity, DomainConfig};
use muster::domain::address::DomainName;

async fn app() -> TestApp {
    TestApp::spawn(|c| {
        c.domains.push(DomainConfig {
            name: DomainName::parse("second.example").unwrap(),
            mailbox_cap: 5,
        });
        c.organisation = "Example & Team".into();
        c.client.imap_host = Some("imap.team.example".into());
        c.client.smtp_host = Some("smtp.team.example".into());
        c.client.smtp_port = 465;
        c.client.smtp_security = ClientSecurity::Tls;
        c.client.imap_port = 143;
        c.client.imap_security = ClientSecurity::Starttls;
    })
    .await
}

fn child<'a>(n: roxmltree::Node<'a, 'a>, name: &str) -> roxmltree::Node<'a, 'a> {
    n.children()
        .find(|c| c.tag_name().name() == name)
        .unwrap_or_else(|| panic!("no <{name}> in <{}>", n.tag_name().name()))
}

fn text_of<'a>(n: roxmltree::Node<'a, 'a>, name: &str) -> &'a str {
    child(n, name).text().unwrap_or("")
}

async fn fetch(app: &TestApp, path: &str, host: Option<&str>) -> (u16, String, Option<String>) {
    let mut req = app.client.get(format!("{}{path}", app.url()));
    if let Some(h) = host {
        req = req.header("host", h);
    }
    let r = req.send().await.unwrap();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    (r.status().as_u16(), r.text().await.unwrap(), ct)
}

#[tokio::test]
async fn thunderbird_finds_the_servers_of_each_hosted_domain() {
    let app = app().await;
    for (path, host, domain) in [
        (
            "/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=jane.doe%40team.example",
            None,
            "team.example",
        ),
        // As Thunderbird asks autoconfig.<domain>, without the address.
        (
            "/mail/config-v1.1.xml",
            Some("autoconfig.second.example"),
            "second.example",
        ),
        (
            "/mail/config-v1.1.xml?emailaddress=Max@Second.Example",
            None,
            "second.example",
        ),
    ] {
        let (status, body, ct) = fetch(&app, path, host).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert!(ct.unwrap().starts_with("application/xml"));
        let doc = roxmltree::Document::parse(&body).unwrap();
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "clientConfig");
        assert_eq!(root.attribute("version"), Some("1.1"));
        let provider = child(root, "emailProvider");
        assert_eq!(provider.attribute("id"), Some(domain));
        assert_eq!(text_of(provider, "domain"), domain);
        assert_eq!(text_of(provider, "displayName"), "Example & Team");
        let incoming = child(provider, "incomingServer");
        assert_eq!(incoming.attribute("type"), Some("imap"));
        assert_eq!(text_of(incoming, "hostname"), "imap.team.example");
        assert_eq!(text_of(incoming, "port"), "143");
        assert_eq!(text_of(incoming, "socketType"), "STARTTLS");
        assert_eq!(text_of(incoming, "username"), "%EMAILADDRESS%");
        assert_eq!(text_of(incoming, "authentication"), "password-cleartext");
        let outgoing = child(provider, "outgoingServer");
        assert_eq!(outgoing.attribute("type"), Some("smtp"));
        assert_eq!(text_of(outgoing, "hostname"), "smtp.team.example");
        assert_eq!(text_of(outgoing, "port"), "465");
        assert_eq!(text_of(outgoing, "socketType"), "SSL");
        assert_eq!(text_of(outgoing, "username"), "%EMAILADDRESS%");
    }

    // Not hosted here, or no address at all: said plainly.
    let (status, body, _) = fetch(
        &app,
        "/mail/config-v1.1.xml?emailaddress=jane@elsewhere.org",
        None,
    )
    .await;
    assert_eq!(status, 404);
    assert!(body.contains("elsewhere.org is not a domain this server hosts"));
    let (status, body, _) = fetch(
        &app,
        "/mail/config-v1.1.xml?emailaddress=not-an-address",
        None,
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.starts_with("emailaddress:"), "{body}");
    app.shutdown().await;
}

async fn autodiscover(app: &TestApp, body: &str) -> (u16, String) {
    let r = app
        .client
        .post(format!("{}/autodiscover/autodiscover.xml", app.url()))
        .header("content-type", "text/xml")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn outlook_request(address: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
  <Request>
    <EMailAddress>{address}</EMailAddress>
    <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>
  </Request>
</Autodiscover>"#
    )
}

#[tokio::test]
async fn outlook_autodiscover_answers_for_each_hosted_domain() {
    let app = app().await;
    for address in ["jane.doe@team.example", "max@second.example"] {
        let (status, body) = autodiscover(&app, &outlook_request(address)).await;
        assert_eq!(status, 200, "{body}");
        let doc = roxmltree::Document::parse(&body).unwrap();
        let response = child(doc.root_element(), "Response");
        assert_eq!(
            response.tag_name().namespace(),
            Some("http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a")
        );
        let account = child(response, "Account");
        assert_eq!(text_of(account, "AccountType"), "email");
        assert_eq!(text_of(account, "Action"), "settings");
        let protocols: Vec<_> = account
            .children()
            .filter(|c| c.tag_name().name() == "Protocol")
            .collect();
        assert_eq!(protocols.len(), 2);
        let imap = protocols
            .iter()
            .find(|p| text_of(**p, "Type") == "IMAP")
            .unwrap();
        assert_eq!(text_of(*imap, "Server"), "imap.team.example");
        assert_eq!(text_of(*imap, "Port"), "143");
        assert_eq!(text_of(*imap, "LoginName"), address);
        assert_eq!(text_of(*imap, "SSL"), "on");
        assert_eq!(text_of(*imap, "Encryption"), "TLS");
        assert_eq!(text_of(*imap, "SPA"), "off");
        let smtp = protocols
            .iter()
            .find(|p| text_of(**p, "Type") == "SMTP")
            .unwrap();
        assert_eq!(text_of(*smtp, "Server"), "smtp.team.example");
        assert_eq!(text_of(*smtp, "Port"), "465");
        assert_eq!(text_of(*smtp, "LoginName"), address);
        assert_eq!(text_of(*smtp, "Encryption"), "SSL");
        assert_eq!(text_of(*smtp, "AuthRequired"), "on");
    }
    let (status, body) = autodiscover(&app, &outlook_request("jane@elsewhere.org")).await;
    assert_eq!(status, 404);
    assert!(body.contains("<ErrorCode>600</ErrorCode>"), "{body}");
    let (status, body) = autodiscover(&app, "<Autodiscover/>").await;
    assert_eq!(status, 400);
    assert!(body.contains("names no EMailAddress"), "{body}");
    app.shutdown().await;
}

/// The profile as `plistlib` reads it, summed up as JSON.
fn read_plist(bytes: &[u8]) -> serde_json::Value {
    let script = r#"
import json, plistlib, sys
p = plistlib.loads(sys.stdin.buffer.read())
def keys(d):
    out = []
    for k, v in d.items():
        out.append(k)
        if isinstance(v, dict):
            out += keys(v)
        if isinstance(v, list):
            for i in v:
                if isinstance(i, dict):
                    out += keys(i)
    return out
print(json.dumps({"profile": p, "keys": keys(p)}))
"#;
    let out = run(
        std::process::Command::new("python3").args(["-c", script]),
        Some(bytes),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn profile(app: &TestApp, address: &str) -> (u16, Vec<u8>, String, String) {
    let r = app
        .client
        .get(format!(
            "{}/mail/apple.mobileconfig?emailaddress={address}",
            app.url()
        ))
        .send()
        .await
        .unwrap();
    let header = |name: &str| {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };
    let (ct, cd) = (header("content-type"), header("content-disposition"));
    (
        r.status().as_u16(),
        r.bytes().await.unwrap().to_vec(),
        ct,
        cd,
    )
}

#[tokio::test]
async fn the_apple_profile_holds_both_accounts_and_no_password() {
    if !require("python3", have_command("python3")) {
        return;
    }
    let app = app().await;
    let (status, bytes, ct, cd) = profile(&app, "jane.doe@team.example").await;
    assert_eq!(status, 200);
    assert_eq!(ct, "application/x-apple-aspen-config");
    assert_eq!(cd, "attachment; filename=\"team.example.mobileconfig\"");
    let read = read_plist(&bytes);
    let p = &read["profile"];
    assert_eq!(p["PayloadType"], "Configuration");
    assert_eq!(p["PayloadVersion"], 1);
    assert_eq!(p["PayloadOrganization"], "Example & Team");
    let id = p["PayloadIdentifier"].as_str().unwrap();
    assert!(id.starts_with("example.team.muster."), "{id}");
    let mail = &p["PayloadContent"][0];
    assert_eq!(mail["PayloadType"], "com.apple.mail.managed");
    assert_eq!(mail["PayloadIdentifier"], format!("{id}.email"));
    assert_eq!(mail["EmailAccountType"], "EmailTypeIMAP");
    assert_eq!(mail["EmailAddress"], "jane.doe@team.example");
    assert_eq!(mail["IncomingMailServerHostName"], "imap.team.example");
    assert_eq!(mail["IncomingMailServerPortNumber"], 143);
    assert_eq!(mail["IncomingMailServerUseSSL"], true);
    assert_eq!(mail["IncomingMailServerUsername"], "jane.doe@team.example");
    assert_eq!(mail["OutgoingMailServerHostName"], "smtp.team.example");
    assert_eq!(mail["OutgoingMailServerPortNumber"], 465);
    assert_eq!(mail["OutgoingMailServerUsername"], "jane.doe@team.example");
    assert_eq!(
        mail["IncomingMailServerAuthentication"],
        "EmailAuthPassword"
    );
    let uuid = |v: &serde_json::Value| v.as_str().unwrap().to_string();
    assert_ne!(uuid(&p["PayloadUUID"]), uuid(&mail["PayloadUUID"]));
    for k in read["keys"].as_array().unwrap() {
        let k = k.as_str().unwrap();
        assert!(
            !matches!(k, "IncomingPassword" | "OutgoingPassword"),
            "the profile carries a password ({k})"
        );
    }

    // The same address gives the same identifiers (a newer profile
    // replaces the older one); another address, others.
    let again = read_plist(&profile(&app, "jane.doe@team.example").await.1);
    assert_eq!(again["profile"]["PayloadUUID"], p["PayloadUUID"]);
    let other = read_plist(&profile(&app, "max@second.example").await.1);
    assert_ne!(other["profile"]["PayloadUUID"], p["PayloadUUID"]);
    assert_ne!(
        other["profile"]["PayloadIdentifier"],
        p["PayloadIdentifier"]
    );

    let (status, body, _, _) = profile(&app, "jane@elsewhere.org").await;
    assert_eq!(status, 404);
    assert!(text(&body).contains("not a domain this server hosts"));
    let (status, body, _, _) = profile(&app, "").await;
    assert_eq!(status, 400);
    assert!(text(&body).starts_with("emailaddress:"));
    app.shutdown().await;
}
