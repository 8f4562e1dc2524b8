//! What mail clients need to set themselves up for a hosted address:
//! Thunderbird's autoconfig (clientConfig 1.1), Outlook's Autodiscover
//! (POX), and an Apple configuration profile; and which device a browser
//! is on, so the success page can put its way first.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::address::{DomainName, MailboxAddress};
use super::template::escape_html as xml;

/// How a mail client secures its connection, as shown to recipients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientSecurity {
    /// TLS from the first byte (IMAPS 993, submissions 465).
    #[serde(alias = "SSL/TLS", alias = "ssl", alias = "TLS")]
    Tls,
    /// Plain, then STARTTLS (IMAP 143, submission 587).
    #[serde(alias = "STARTTLS")]
    Starttls,
    /// No encryption (a test lab only).
    #[serde(alias = "NONE")]
    None,
}

impl std::fmt::Display for ClientSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ClientSecurity::Tls => "SSL/TLS",
            ClientSecurity::Starttls => "STARTTLS",
            ClientSecurity::None => "none",
        })
    }
}

/// One server a client connects to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    pub host: String,
    pub port: u16,
    pub security: ClientSecurity,
}

impl std::fmt::Display for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.in_words("en"))
    }
}

impl Server {
    /// The server as a person types it into a mail app, in the language
    /// of `locale` (English unless it is German).
    pub fn in_words(&self, locale: &str) -> String {
        let de = locale.starts_with("de");
        let security = match (self.security, de) {
            (ClientSecurity::None, true) => "keine Verschlüsselung".to_string(),
            (ClientSecurity::None, false) => "no encryption".to_string(),
            (s, _) => s.to_string(),
        };
        let port = if de { "Port" } else { "port" };
        format!("{}, {port} {}, {security}", self.host, self.port)
    }
}

/// The servers of every hosted domain. The user name is always the whole
/// address (the passwd-file's keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailSettings {
    pub organisation: String,
    pub imap: Server,
    pub smtp: Server,
}

impl MailSettings {
    /// Thunderbird's autoconfig file for a hosted domain.
    pub fn thunderbird(&self, domain: &DomainName) -> String {
        let socket = |s: &Server| match s.security {
            ClientSecurity::Tls => "SSL",
            ClientSecurity::Starttls => "STARTTLS",
            ClientSecurity::None => "plain",
        };
        let server = |tag: &str, kind: &str, s: &Server| {
            format!(
                "    <{tag} type=\"{kind}\">\n      <hostname>{}</hostname>\n      <port>{}</port>\n      <socketType>{}</socketType>\n      <username>%EMAILADDRESS%</username>\n      <authentication>password-cleartext</authentication>\n    </{tag}>\n",
                xml(&s.host),
                s.port,
                socket(s)
            )
        };
        let d = xml(domain.as_str());
        let name = xml(&self.organisation);
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<clientConfig version=\"1.1\">\n  <emailProvider id=\"{d}\">\n    <domain>{d}</domain>\n    <displayName>{name}</displayName>\n    <displayShortName>{name}</displayShortName>\n{}{}  </emailProvider>\n</clientConfig>\n",
            server("incomingServer", "imap", &self.imap),
            server("outgoingServer", "smtp", &self.smtp),
        )
    }

    /// Outlook's Autodiscover answer (the POX "outlook" response schema)
    /// for one address.
    pub fn autodiscover(&self, address: &MailboxAddress) -> String {
        let protocol = |kind: &str, s: &Server| {
            let (ssl, encryption) = match s.security {
                ClientSecurity::Tls => ("on", "SSL"),
                ClientSecurity::Starttls => ("on", "TLS"),
                ClientSecurity::None => ("off", "None"),
            };
            format!(
                "      <Protocol>\n        <Type>{kind}</Type>\n        <Server>{}</Server>\n        <Port>{}</Port>\n        <DomainRequired>off</DomainRequired>\n        <LoginName>{}</LoginName>\n        <SPA>off</SPA>\n        <SSL>{ssl}</SSL>\n        <Encryption>{encryption}</Encryption>\n        <AuthRequired>on</AuthRequired>\n      </Protocol>\n",
                xml(&s.host),
                s.port,
                xml(&address.to_string()),
            )
        };
        format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006\">\n  <Response xmlns=\"{OUTLOOK_RESPONSE}\">\n    <Account>\n      <AccountType>email</AccountType>\n      <Action>settings</Action>\n{}{}    </Account>\n  </Response>\n</Autodiscover>\n",
            protocol("IMAP", &self.imap),
            protocol("SMTP", &self.smtp),
        )
    }

    /// An unsigned Apple configuration profile with the IMAP and SMTP
    /// accounts of `address` and no password: the device asks for it.
    /// Its identifiers and UUIDs follow from the address, so opening a
    /// newer profile replaces the old one instead of adding a second.
    pub fn apple_profile(&self, address: &MailboxAddress) -> String {
        let a = address.to_string();
        let reversed: Vec<&str> = address.domain().as_str().rsplit('.').collect();
        let id = format!(
            "{}.muster.{}",
            reversed.join("."),
            &hex(&Sha256::digest(a.as_bytes()))[..16]
        );
        let use_ssl = |s: &Server| {
            // Apple's flag means "TLS, implicit or by STARTTLS".
            if s.security == ClientSecurity::None {
                "<false/>"
            } else {
                "<true/>"
            }
        };
        let a = xml(&a);
        let org = xml(&self.organisation);
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
  <key>PayloadContent</key>
  <array>
    <dict>
      <key>EmailAccountDescription</key><string>{org}</string>
      <key>EmailAccountName</key><string>{a}</string>
      <key>EmailAccountType</key><string>EmailTypeIMAP</string>
      <key>EmailAddress</key><string>{a}</string>
      <key>IncomingMailServerAuthentication</key><string>EmailAuthPassword</string>
      <key>IncomingMailServerHostName</key><string>{imap_host}</string>
      <key>IncomingMailServerPortNumber</key><integer>{imap_port}</integer>
      <key>IncomingMailServerUseSSL</key>{imap_ssl}
      <key>IncomingMailServerUsername</key><string>{a}</string>
      <key>OutgoingMailServerAuthentication</key><string>EmailAuthPassword</string>
      <key>OutgoingMailServerHostName</key><string>{smtp_host}</string>
      <key>OutgoingMailServerPortNumber</key><integer>{smtp_port}</integer>
      <key>OutgoingMailServerUseSSL</key>{smtp_ssl}
      <key>OutgoingMailServerUsername</key><string>{a}</string>
      <key>OutgoingPasswordSameAsIncomingPassword</key><true/>
      <key>PayloadDescription</key><string>The mail account {a}</string>
      <key>PayloadDisplayName</key><string>{a}</string>
      <key>PayloadIdentifier</key><string>{id}.email</string>
      <key>PayloadType</key><string>com.apple.mail.managed</string>
      <key>PayloadUUID</key><string>{email_uuid}</string>
      <key>PayloadVersion</key><integer>1</integer>
      <key>PreventAppSheet</key><false/>
      <key>PreventMove</key><false/>
      <key>SMIMEEnabled</key><false/>
    </dict>
  </array>
  <key>PayloadDescription</key><string>Sets up Mail for {a}. You enter your password on the device.</string>
  <key>PayloadDisplayName</key><string>Mail: {a}</string>
  <key>PayloadIdentifier</key><string>{id}</string>
  <key>PayloadOrganization</key><string>{org}</string>
  <key>PayloadRemovalDisallowed</key><false/>
  <key>PayloadType</key><string>Configuration</string>
  <key>PayloadUUID</key><string>{profile_uuid}</string>
  <key>PayloadVersion</key><integer>1</integer>
</dict>
</plist>
"#,
            imap_host = xml(&self.imap.host),
            imap_port = self.imap.port,
            imap_ssl = use_ssl(&self.imap),
            smtp_host = xml(&self.smtp.host),
            smtp_port = self.smtp.port,
            smtp_ssl = use_ssl(&self.smtp),
            email_uuid = uuid_of(&format!("{a} email")),
            profile_uuid = uuid_of(&format!("{a} profile")),
        )
    }
}

const OUTLOOK_RESPONSE: &str =
    "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a";

/// An Autodiscover error answer (600: the request named no address Muster
/// serves).
pub fn autodiscover_error(message: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006\">\n  <Response>\n    <Error>\n      <ErrorCode>600</ErrorCode>\n      <Message>{}</Message>\n    </Error>\n  </Response>\n</Autodiscover>\n",
        xml(message)
    )
}

/// The address in an Autodiscover request (`<EMailAddress>`), untrusted.
/// A text search, not an XML parse: the request is a fixed, tiny document
/// and the answer depends on nothing else in it.
pub fn autodiscover_request_address(body: &str) -> Option<&str> {
    let start = body.find("<EMailAddress>")? + "<EMailAddress>".len();
    let len = body[start..].find("</EMailAddress>")?;
    Some(body[start..start + len].trim())
}

/// The device a browser runs on, as far as its user agent tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    /// iPhone, iPad or Mac: the configuration profile.
    Apple,
    Android,
    /// Windows or Linux: Thunderbird or Outlook find the settings.
    Desktop,
    /// Anything else: the settings to type in.
    Other,
}

impl Device {
    pub fn of(user_agent: &str) -> Self {
        let ua = user_agent.to_ascii_lowercase();
        if ua.contains("android") {
            Device::Android
        } else if ["iphone", "ipad", "ipod", "macintosh", "mac os x"]
            .iter()
            .any(|m| ua.contains(m))
        {
            Device::Apple
        } else if ["windows", "linux", "x11", "cros"]
            .iter()
            .any(|m| ua.contains(m))
        {
            Device::Desktop
        } else {
            Device::Other
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A name-based UUID (RFC 9562 version 8, from SHA-256): stable for the
/// same name.
fn uuid_of(name: &str) -> String {
    let mut b: [u8; 16] = Sha256::digest(name.as_bytes())[..16]
        .try_into()
        .expect("16 bytes");
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex(&b).to_ascii_uppercase();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// `s` made safe for a URL's query value (RFC 3986 unreserved kept).
pub fn query_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_server_in_words_speaks_the_pages_language() {
        let lab = Server {
            host: "127.0.0.1".into(),
            port: 143,
            security: ClientSecurity::None,
        };
        assert_eq!(lab.in_words("en"), "127.0.0.1, port 143, no encryption");
        assert_eq!(
            lab.in_words("de"),
            "127.0.0.1, Port 143, keine Verschlüsselung"
        );
        let tls = Server {
            security: ClientSecurity::Tls,
            port: 993,
            ..lab
        };
        assert_eq!(tls.to_string(), "127.0.0.1, port 993, SSL/TLS");
    }

    use super::*;

    fn settings() -> MailSettings {
        MailSettings {
            organisation: "Team & Co".into(),
            imap: Server {
                host: "imap.team.example".into(),
                port: 993,
                security: ClientSecurity::Tls,
            },
            smtp: Server {
                host: "smtp.team.example".into(),
                port: 587,
                security: ClientSecurity::Starttls,
            },
        }
    }

    #[test]
    fn thunderbird_names_the_servers_and_escapes() {
        let x = settings().thunderbird(&DomainName::parse("team.example").unwrap());
        assert!(x.contains("<socketType>SSL</socketType>"), "{x}");
        assert!(x.contains("<socketType>STARTTLS</socketType>"));
        assert!(x.contains("<displayName>Team &amp; Co</displayName>"));
        assert!(x.contains("<username>%EMAILADDRESS%</username>"));
    }

    #[test]
    fn profile_ids_are_stable_per_address() {
        let a = MailboxAddress::parse("jane@team.example").unwrap();
        let b = MailboxAddress::parse("john@team.example").unwrap();
        let s = settings();
        assert_eq!(s.apple_profile(&a), s.apple_profile(&a));
        assert_ne!(s.apple_profile(&a), s.apple_profile(&b));
        let profile = s.apple_profile(&a);
        for key in ["IncomingPassword", "OutgoingPassword"] {
            assert!(!profile.contains(&format!("<key>{key}</key>")), "{key}");
        }
        let u = uuid_of("x");
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "8");
    }

    #[test]
    fn autodiscover_request_and_devices() {
        let body = "<Autodiscover><Request><EMailAddress> jane@team.example </EMailAddress></Request></Autodiscover>";
        assert_eq!(
            autodiscover_request_address(body),
            Some("jane@team.example")
        );
        assert_eq!(autodiscover_request_address("<EMailAddress>x"), None);
        let iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15";
        assert_eq!(Device::of(iphone), Device::Apple);
        assert_eq!(
            Device::of("Mozilla/5.0 (Linux; Android 15; Pixel 9) Chrome/140"),
            Device::Android
        );
        assert_eq!(
            Device::of("Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0"),
            Device::Desktop
        );
        assert_eq!(Device::of("curl/8"), Device::Other);
        assert_eq!(query_value("a+b@c.d"), "a%2Bb@c.d");
    }
}
