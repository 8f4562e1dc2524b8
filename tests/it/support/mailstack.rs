//! A real Postfix and Dovecot, started by hand on loopback ports with their
//! own configuration in a temporary state folder (see notes/mail-stack.md).
//!
//! Postfix delivers the hosted domain to Dovecot over LMTP and captures
//! every other domain (the invites themselves) into one maildir, where the
//! `X-Original-To:` header names the recipient.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::{free_port, have_command, require, wait_for};

/// The uid and gid that own delivered mail (Muster's default too).
pub const VMAIL: u32 = 5000;

pub(super) fn sh(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().expect("command runs");
    if !out.status.success() {
        panic!(
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

pub(super) fn chown(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
}

/// A folder other users (postfix, dovecot, vmail) may traverse.
pub fn open_dir(path: &Path) {
    std::fs::create_dir_all(path).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The numeric id of a user (`passwd`) or group (`group`).
pub(super) fn id_of(database: &str, name: &str) -> u32 {
    let out = sh(Command::new("getent").args([database, name]));
    String::from_utf8_lossy(&out.stdout)
        .split(':')
        .nth(2)
        .and_then(|g| g.trim().parse().ok())
        .expect("numeric id")
}

/// Whether Postfix and Dovecot are installed; under CI a missing one fails.
pub fn available() -> bool {
    require(
        "postfix and dovecot (apt packages postfix dovecot-core dovecot-imapd dovecot-lmtpd)",
        have_command("postfix")
            && have_command("dovecot")
            && Path::new("/usr/lib/dovecot/lmtp").exists(),
    )
}

/// A Postfix master running from a folder of its own (`etc`, `spool`,
/// `data`, `log`), stopped when dropped.
pub(super) struct PostfixMaster {
    etc: PathBuf,
    /// The master's pid, to stop it even when its folder is gone first.
    pid: Option<i32>,
}

impl PostfixMaster {
    /// Makes the folders Postfix needs under `state`; returns `etc`.
    pub(super) fn folders(state: &Path) -> PathBuf {
        let etc = state.join("etc");
        for d in [state, &etc, &state.join("spool"), &state.join("log")] {
            open_dir(d);
        }
        let data = state.join("data");
        open_dir(&data);
        chown(&data, id_of("passwd", "postfix"), 0);
        etc
    }

    /// Starts Postfix with `main.cf` and `master.cf` (other files are in
    /// `etc` already) and waits until `listen` takes connections.
    pub(super) fn start(state: &Path, main: &str, master: &str, listen: (&str, u16)) -> Self {
        let etc = state.join("etc");
        std::fs::write(etc.join("main.cf"), main).unwrap();
        std::fs::write(etc.join("master.cf"), master).unwrap();
        let started = Command::new("postfix")
            .arg("-c")
            .arg(&etc)
            .arg("start")
            .output()
            .unwrap();
        assert!(
            started.status.success(),
            "postfix start ({}): {}{}\n{}",
            state.display(),
            String::from_utf8_lossy(&started.stdout),
            String::from_utf8_lossy(&started.stderr),
            std::fs::read_to_string(state.join("log/postfix.log")).unwrap_or_default()
        );
        let pid = std::fs::read_to_string(state.join("spool/pid/master.pid"))
            .ok()
            .and_then(|p| p.trim().parse().ok());
        let running = Self { etc, pid };
        wait_for(
            &format!("postfix to listen on {}:{}", listen.0, listen.1),
            Duration::from_secs(20),
            || std::net::TcpStream::connect(listen).ok(),
        );
        running
    }
}

impl Drop for PostfixMaster {
    fn drop(&mut self) {
        let _ = Command::new("postfix")
            .arg("-c")
            .arg(&self.etc)
            .arg("stop")
            .output();
        // `postfix stop` needs the configuration folder; when a test's
        // temporary folder went first, SIGTERM stops the master and its
        // children instead.
        if let Some(pid) = self.pid.take()
            && unsafe { libc::kill(pid, 0) } == 0
        {
            unsafe { libc::kill(pid, libc::SIGTERM) };
            let _ = std::panic::catch_unwind(|| {
                wait_for("postfix to stop", Duration::from_secs(10), || {
                    (unsafe { libc::kill(pid, 0) } != 0).then_some(())
                })
            });
        }
    }
}

pub struct Postfix {
    state: PathBuf,
    pub port: u16,
    captured: PathBuf,
    _master: PostfixMaster,
}

/// The hosted-domain side of Postfix, for provisioning tests.
pub struct Hosted<'a> {
    pub domain: &'a str,
    /// Postfix's `virtual_mailbox_maps`: Muster's map as `texthash:PATH`
    /// (reload after changes), or an SQL map (`pgsql:PATH`).
    pub mailbox_maps: String,
    /// `virtual_alias_maps`, when aliases live in the database.
    pub alias_maps: Option<String>,
    pub lmtp_socket: &'a Path,
}

impl Postfix {
    pub fn start(state: &Path, hosted: Option<Hosted<'_>>) -> Self {
        let state = state.join("postfix");
        let etc = PostfixMaster::folders(&state);
        let captured = state.join("captured");
        open_dir(&captured);
        chown(&captured, VMAIL, VMAIL);
        let port = free_port();
        let s = state.display();
        let mut main = format!(
            "compatibility_level = 3.6
queue_directory = {s}/spool
data_directory = {s}/data
mail_owner = postfix
myhostname = mx.muster.test
mydomain = muster.test
inet_interfaces = loopback-only
inet_protocols = ipv4
mydestination =
local_recipient_maps =
relay_domains =
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_recipient_restrictions = permit_mynetworks, reject
maillog_file = {s}/log/postfix.log
maillog_file_prefixes = {s}
default_transport = capture
relay_transport = capture
message_size_limit = 10240000
virtual_mailbox_limit = 51200000
smtputf8_enable = no
biff = no
"
        );
        if let Some(h) = &hosted {
            main.push_str(&format!(
                "virtual_mailbox_domains = {}\nvirtual_mailbox_maps = {}\nvirtual_transport = lmtp:unix:{}\n",
                h.domain,
                h.mailbox_maps,
                h.lmtp_socket.display()
            ));
            if let Some(aliases) = &h.alias_maps {
                main.push_str(&format!("virtual_alias_maps = {aliases}\n"));
            }
        }
        let master = format!(
            "127.0.0.1:{port} inet n - n - - smtpd
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
proxywrite unix - - n - 1 proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
local unix - n n - - local
virtual unix - n n - - virtual
lmtp unix - - n - - lmtp
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
capture unix - n n - - virtual -o virtual_mailbox_base={s}/captured -o virtual_mailbox_maps=regexp:{s}/etc/capture_map -o virtual_uid_maps=static:{VMAIL} -o virtual_gid_maps=static:{VMAIL}
"
        );
        std::fs::write(etc.join("capture_map"), "/./ inbox/\n").unwrap();
        let master = PostfixMaster::start(&state, &main, &master, ("127.0.0.1", port));
        Self {
            state,
            port,
            captured,
            _master: master,
        }
    }

    pub fn etc(&self) -> PathBuf {
        self.state.join("etc")
    }

    /// The command Muster runs after changing the map.
    pub fn reload_command(&self) -> String {
        format!("postfix -c {} reload", self.etc().display())
    }

    /// Captured messages to outside domains, as raw bytes.
    pub fn captured(&self) -> Vec<Vec<u8>> {
        let dir = self.captured.join("inbox/new");
        let mut out = Vec::new();
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                if let Ok(bytes) = std::fs::read(e.path()) {
                    out.push(bytes);
                }
            }
        }
        out
    }

    pub fn wait_for_captured(&self, n: usize, timeout: Duration) -> Vec<Vec<u8>> {
        wait_for(&format!("{n} captured messages"), timeout, || {
            let got = self.captured();
            (got.len() >= n).then_some(got)
        })
    }
}

impl Postfix {
    /// Sends a plain message through Postfix's SMTP port.
    pub fn send_mail(&self, to: &str, subject: &str) -> String {
        use std::io::{BufRead, BufReader, Write};
        let stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut r = BufReader::new(stream.try_clone().unwrap());
        let mut w = stream;
        let mut last = String::new();
        let read_reply = |r: &mut BufReader<std::net::TcpStream>| {
            loop {
                let mut l = String::new();
                r.read_line(&mut l).unwrap();
                if l.len() < 4 || l.as_bytes()[3] != b'-' {
                    return l;
                }
            }
        };
        read_reply(&mut r);
        for cmd in [
            "EHLO test.local\r\n".to_string(),
            "MAIL FROM:<sender@elsewhere.org>\r\n".to_string(),
            format!("RCPT TO:<{to}>\r\n"),
            "DATA\r\n".to_string(),
            format!(
                "Subject: {subject}\r\nFrom: sender@elsewhere.org\r\nTo: {to}\r\n\r\nHello.\r\n.\r\n"
            ),
        ] {
            w.write_all(cmd.as_bytes()).unwrap();
            last = read_reply(&mut r);
            if !(last.starts_with('2') || last.starts_with('3')) {
                break;
            }
        }
        let _ = w.write_all(b"QUIT\r\n");
        last
    }
}

pub struct Dovecot {
    state: PathBuf,
    pub imap_port: u16,
    pid: Option<u32>,
}

impl Dovecot {
    /// Starts Dovecot with `passwd` as its passdb and userdb; mail homes
    /// live under `<state>/vmail`.
    pub fn start(state: &Path, passwd: &Path) -> Self {
        if let Some(dir) = passwd.parent() {
            open_dir(dir);
        }
        let auth = format!(
            "passdb {{\n  driver = passwd-file\n  args = {p}\n}}\nuserdb {{\n  driver = passwd-file\n  args = {p}\n}}\n",
            p = passwd.display()
        );
        Self::start_with(&state.join("dovecot"), &auth)
    }

    /// Starts Dovecot in `state` with the `passdb` and `userdb` blocks in
    /// `auth` (a passwd-file, or SQL); mail homes under `<state>/vmail`.
    pub fn start_with(state: &Path, auth: &str) -> Self {
        let state = state.to_path_buf();
        open_dir(&state);
        open_dir(&state.join("run"));
        let vmail = state.join("vmail");
        open_dir(&vmail);
        chown(&vmail, VMAIL, VMAIL);
        let imap_port = free_port();
        let s = state.display();
        let conf = format!(
            "base_dir = {s}/run
log_path = {s}/dovecot.log
info_log_path = {s}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
mail_location = maildir:~/Maildir
first_valid_uid = 500
protocols = imap lmtp
listen = 127.0.0.1
default_login_user = dovenull
default_internal_user = dovecot
mail_plugins = $mail_plugins quota
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service lmtp {{
  unix_listener lmtp {{
    mode = 0666
  }}
}}
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
protocol imap {{
  mail_plugins = $mail_plugins imap_quota
}}
{auth}
plugin {{
  quota = count:User quota
  quota_vsizes = yes
}}
"
        );
        std::fs::write(state.join("dovecot.conf"), conf).unwrap();
        // The daemon keeps inherited pipes open: give it none, so starting returns.
        let status = Command::new("dovecot")
            .arg("-c")
            .arg(state.join("dovecot.conf"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("dovecot runs");
        assert!(
            status.success(),
            "dovecot did not start: {}",
            std::fs::read_to_string(state.join("dovecot.log")).unwrap_or_default()
        );
        let pid = wait_for("dovecot to start", Duration::from_secs(20), || {
            std::fs::read_to_string(state.join("run/master.pid"))
                .ok()
                .and_then(|p| p.trim().parse::<u32>().ok())
        });
        wait_for("dovecot to listen", Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", imap_port)).ok()
        });
        Self {
            state,
            imap_port,
            pid: Some(pid),
        }
    }

    /// Where mail homes go: use it as Muster's `mail_host.home` with `%d/%n`.
    pub fn vmail(&self) -> PathBuf {
        self.state.join("vmail")
    }

    pub fn lmtp_socket(&self) -> PathBuf {
        self.state.join("run/lmtp")
    }

    /// Group id of `dovecot`, which must be able to read the passwd-file.
    pub fn group() -> u32 {
        id_of("group", "dovecot")
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        if let Some(pid) = self.pid.take() {
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
            // The master needs over a second to exit; wait for it.
            let _ = std::panic::catch_unwind(|| {
                wait_for("dovecot to stop", Duration::from_secs(10), || {
                    (unsafe { libc::kill(pid as i32, 0) } != 0).then_some(())
                })
            });
        }
    }
}

/// A minimal IMAP client: enough to log in, read quota and count mail.
pub struct Imap {
    stream: std::io::BufReader<std::net::TcpStream>,
    tag: u32,
}

impl Imap {
    pub fn connect(port: u16) -> Self {
        let stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut imap = Self {
            stream: std::io::BufReader::new(stream),
            tag: 0,
        };
        imap.line();
        imap
    }

    fn line(&mut self) -> String {
        use std::io::BufRead;
        let mut l = String::new();
        self.stream.read_line(&mut l).unwrap();
        l
    }

    /// Sends a command; returns (untagged lines, tagged status line).
    pub fn cmd(&mut self, cmd: &str) -> (Vec<String>, String) {
        use std::io::Write;
        self.tag += 1;
        let tag = format!("a{}", self.tag);
        self.stream
            .get_mut()
            .write_all(format!("{tag} {cmd}\r\n").as_bytes())
            .unwrap();
        let mut lines = Vec::new();
        loop {
            let l = self.line();
            if l.is_empty() {
                return (lines, "connection closed".into());
            }
            if l.starts_with(&format!("{tag} ")) {
                return (lines, l);
            }
            lines.push(l);
        }
    }

    pub fn login(&mut self, user: &str, password: &str) -> bool {
        let (_, status) = self.cmd(&format!("LOGIN \"{user}\" \"{password}\""));
        status.contains(" OK")
    }
}

/// Logs in, retrying for a few seconds: Dovecot notices a changed
/// passwd-file by its mtime, at most once a second.
pub fn login_eventually(port: u16, user: &str, password: &str) -> Option<Imap> {
    // Dovecot reads a changed passwd-file at most once a second, and each
    // try is an Argon2 check: a busy machine needs more than a few.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mut imap = Imap::connect(port);
        if imap.login(user, password) {
            return Some(imap);
        }
        if std::time::Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Postfix and Dovecot wired to Muster's files: Dovecot reads Muster's
/// passwd-file, Postfix reads Muster's map and delivers the hosted domain
/// to Dovecot; Muster reloads Postfix after each map change and sends its
/// invites through the same Postfix.
pub struct Stack {
    pub postfix: Postfix,
    pub dovecot: Dovecot,
    pub passwd: PathBuf,
    pub map: PathBuf,
}

impl Stack {
    pub fn start(state: &Path, domain: &str) -> Self {
        open_dir(state);
        let mail = state.join("mail");
        open_dir(&mail);
        let passwd = mail.join("passwd");
        let map = mail.join("vmailbox");
        // As a packaged Dovecot expects: root:dovecot 0640. Muster keeps it so.
        std::fs::write(&passwd, "").unwrap();
        std::os::unix::fs::chown(&passwd, Some(0), Some(Dovecot::group())).unwrap();
        std::fs::set_permissions(&passwd, std::fs::Permissions::from_mode(0o640)).unwrap();
        std::fs::write(&map, "").unwrap();
        let dovecot = Dovecot::start(state, &passwd);
        let postfix = Postfix::start(
            state,
            Some(Hosted {
                domain,
                mailbox_maps: format!("texthash:{}", map.display()),
                alias_maps: None,
                lmtp_socket: &dovecot.lmtp_socket(),
            }),
        );
        Self {
            postfix,
            dovecot,
            passwd,
            map,
        }
    }

    /// Points a Muster configuration at this stack.
    pub fn configure(&self, c: &mut muster::config::Config) {
        c.mail_host.passwd_file = Some(self.passwd.clone());
        c.mail_host.postfix_map = Some(self.map.clone());
        c.mail_host.reload_command = Some(self.postfix.reload_command());
        c.mail_host.home = format!("{}/%d/%n", self.dovecot.vmail().display());
        c.mail_host.uid = VMAIL;
        c.mail_host.gid = VMAIL;
        c.smtp.host = Some("127.0.0.1".into());
        c.smtp.port = self.postfix.port;
        c.smtp.tls = muster::config::SmtpTls::None;
        c.smtp.rate_per_minute = 0;
        c.smtp.retry_initial_secs = 1;
        c.smtp.retry_max_secs = 2;
    }

    /// Sends a plain message through Postfix's SMTP port.
    pub fn send_mail(&self, to: &str, subject: &str) -> String {
        self.postfix.send_mail(to, subject)
    }
}
