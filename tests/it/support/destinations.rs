//! Destination mail servers for direct delivery: real Postfix instances on
//! their own loopback addresses (127.0.0.2, 127.0.0.3, …), each taking mail
//! for its domains into Maildirs, refusing unknown recipients (550 5.1.1),
//! optionally greylisting (a policy service that defers each new sender
//! and recipient pair once with 450) and offering STARTTLS with a
//! certificate from a test CA.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::mailstack::{PostfixMaster, VMAIL, chown, open_dir, sh};
use super::*;

/// A CA and certificates it signs, made with openssl.
pub struct TestCa {
    dir: PathBuf,
}

impl TestCa {
    pub fn new(state: &Path) -> Self {
        let dir = state.join("ca");
        std::fs::create_dir_all(&dir).unwrap();
        sh(Command::new("openssl").current_dir(&dir).args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=Muster Test CA",
        ]));
        Self { dir }
    }

    pub fn pem(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A key and certificate for `host`: (key path, certificate path).
    pub fn issue(&self, host: &str) -> (PathBuf, PathBuf) {
        self.issue_for(&[host])
    }

    /// A key and certificate valid for each of `hosts`, named after the first.
    pub fn issue_for(&self, hosts: &[&str]) -> (PathBuf, PathBuf) {
        let host = hosts[0];
        let key = self.dir.join(format!("{host}.key"));
        let csr = self.dir.join(format!("{host}.csr"));
        let cert = self.dir.join(format!("{host}.pem"));
        let ext = self.dir.join(format!("{host}.ext"));
        let names: Vec<String> = hosts.iter().map(|h| format!("DNS:{h}")).collect();
        std::fs::write(&ext, format!("subjectAltName={}\n", names.join(","))).unwrap();
        sh(Command::new("openssl")
            .args([
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&csr)
            .args(["-subj", &format!("/CN={host}")]));
        sh(Command::new("openssl")
            .args(["x509", "-req", "-days", "2", "-CAcreateserial"])
            .arg("-in")
            .arg(&csr)
            .arg("-CA")
            .arg(self.pem())
            .arg("-CAkey")
            .arg(self.dir.join("ca.key"))
            .arg("-out")
            .arg(&cert)
            .arg("-extfile")
            .arg(&ext));
        (key, cert)
    }
}

/// How a destination server behaves.
pub struct Behaviour<'a> {
    /// The domains it takes mail for, and the mailboxes there.
    pub domains: &'a [&'a str],
    pub mailboxes: &'a [&'a str],
    /// Defer each new sender and recipient pair once (450 4.7.1).
    pub greylist: bool,
    /// STARTTLS with this key and certificate.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Its name in the greeting and Received headers.
    pub hostname: &'a str,
}

pub struct DestinationMx {
    state: PathBuf,
    _master: PostfixMaster,
    /// Pairs the greylist deferred.
    pub greylisted: Arc<Mutex<Vec<String>>>,
}

impl DestinationMx {
    pub fn start(state: &Path, ip: &str, port: u16, b: Behaviour<'_>) -> Self {
        let state = state.join(format!("mx-{ip}"));
        let etc = PostfixMaster::folders(&state);
        let mail = state.join("mail");
        open_dir(&mail);
        chown(&mail, VMAIL, VMAIL);
        let greylisted = Arc::new(Mutex::new(Vec::new()));
        let policy = if b.greylist {
            let port = greylist_service(greylisted.clone());
            format!(", check_policy_service inet:127.0.0.1:{port}")
        } else {
            String::new()
        };
        let s = state.display();
        let mut main = format!(
            "compatibility_level = 3.6
queue_directory = {s}/spool
data_directory = {s}/data
mail_owner = postfix
myhostname = {host}
mydomain = {host}
inet_interfaces = all
inet_protocols = ipv4
mydestination =
local_recipient_maps =
relay_domains =
mynetworks = 127.0.0.255/32
smtpd_relay_restrictions = reject_unauth_destination
smtpd_recipient_restrictions = reject_unlisted_recipient{policy}
virtual_mailbox_domains = {domains}
virtual_mailbox_maps = texthash:{s}/etc/mailboxes
virtual_mailbox_base = {s}/mail
virtual_uid_maps = static:{VMAIL}
virtual_gid_maps = static:{VMAIL}
virtual_transport = virtual
maillog_file = {s}/log/postfix.log
maillog_file_prefixes = {s}
smtpd_tls_received_header = yes
smtputf8_enable = no
biff = no
",
            host = b.hostname,
            domains = b.domains.join(" "),
        );
        if let Some((key, cert)) = &b.tls {
            main.push_str(&format!(
                "smtpd_tls_security_level = may\nsmtpd_tls_chain_files = {}, {}\n",
                key.display(),
                cert.display()
            ));
        }
        let mailboxes: String = b
            .mailboxes
            .iter()
            .map(|m| {
                let (local, domain) = m.split_once('@').unwrap();
                format!("{m} {domain}/{local}/\n")
            })
            .collect();
        std::fs::write(etc.join("mailboxes"), mailboxes).unwrap();
        let master = format!(
            "{ip}:{port} inet n - n - - smtpd
pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
smtp unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
virtual unix - n n - - virtual
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
tlsmgr unix - - n 1000? 1 tlsmgr
"
        );
        let master = PostfixMaster::start(&state, &main, &master, (ip, port));
        Self {
            state,
            _master: master,
            greylisted,
        }
    }

    /// The messages delivered to `mailbox` (`local@domain`), raw.
    pub fn delivered(&self, mailbox: &str) -> Vec<Vec<u8>> {
        let (local, domain) = mailbox.split_once('@').unwrap();
        let dir = self.state.join("mail").join(domain).join(local).join("new");
        let mut out = Vec::new();
        if let Ok(entries) = std::fs::read_dir(&dir) {
            let mut paths: Vec<_> = entries.flatten().map(|e| e.path()).collect();
            paths.sort();
            for p in paths {
                if let Ok(bytes) = std::fs::read(p) {
                    out.push(bytes);
                }
            }
        }
        out
    }

    pub fn wait_for_delivered(&self, mailbox: &str, n: usize) -> Vec<Vec<u8>> {
        wait_for(
            &format!("{n} message(s) for {mailbox}"),
            Duration::from_secs(60),
            || {
                let got = self.delivered(mailbox);
                (got.len() >= n).then_some(got)
            },
        )
    }
}

/// A Postfix policy service (SMTP access policy delegation) that defers
/// the first attempt of each sender and recipient pair: greylisting.
fn greylist_service(log: Arc<Mutex<Vec<String>>>) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(HashSet::new()));
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (seen, log) = (seen.clone(), log.clone());
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut writer = stream;
                loop {
                    let mut attrs = std::collections::HashMap::new();
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let line = line.trim_end();
                        if line.is_empty() {
                            break;
                        }
                        if let Some((k, v)) = line.split_once('=') {
                            attrs.insert(k.to_string(), v.to_string());
                        }
                    }
                    let pair = format!(
                        "{} -> {}",
                        attrs.get("sender").cloned().unwrap_or_default(),
                        attrs.get("recipient").cloned().unwrap_or_default()
                    );
                    let first = seen.lock().unwrap().insert(pair.clone());
                    let action = if first {
                        log.lock().unwrap().push(pair);
                        "action=DEFER_IF_PERMIT 4.7.1 Greylisted, please try again later\n\n"
                    } else {
                        "action=DUNNO\n\n"
                    };
                    if writer.write_all(action.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

/// A port free on each of these loopback addresses.
pub fn port_free_on(ips: &[&str]) -> u16 {
    loop {
        let port = free_port();
        if ips
            .iter()
            .all(|ip| std::net::TcpListener::bind((*ip, port)).is_ok())
        {
            return port;
        }
    }
}
