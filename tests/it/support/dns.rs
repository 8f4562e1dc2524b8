//! A real DNS server for the test domains: Debian's unbound, answering
//! from local zones on a loopback port (nothing is asked of the internet).
//! Records are written in zone-file syntax; `set` rewrites them and
//! restarts the server.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::*;

pub fn available() -> bool {
    require("unbound (apt install unbound)", have_command("unbound"))
}

pub struct TestDns {
    dir: PathBuf,
    pub port: u16,
    child: Option<Child>,
}

impl TestDns {
    /// Serves `records` (one per line, e.g. `a.test. MX 10 mx.a.test.`) for
    /// the zones `zones` (e.g. `test.`, `example.`); any other name under
    /// them does not exist.
    pub fn start(state: &Path, zones: &[&str], records: &[String]) -> Self {
        let dir = state.join("unbound");
        std::fs::create_dir_all(&dir).unwrap();
        let mut dns = Self {
            dir,
            port: free_udp_and_tcp_port(),
            child: None,
        };
        dns.write(zones, records);
        dns.run();
        dns
    }

    /// Serves `records` instead, on the same port.
    pub fn set(&mut self, zones: &[&str], records: &[String]) {
        self.stop();
        self.write(zones, records);
        self.run();
    }

    /// The address for `dns.resolvers`.
    pub fn resolver(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn write(&self, zones: &[&str], records: &[String]) {
        let mut conf = format!(
            "server:
  interface: 127.0.0.1@{port}
  port: {port}
  do-daemonize: no
  chroot: \"\"
  username: \"\"
  directory: \"{dir}\"
  pidfile: \"{dir}/unbound.pid\"
  use-syslog: no
  logfile: \"\"
  verbosity: 0
  do-ip6: no
  access-control: 127.0.0.0/8 allow
  module-config: \"iterator\"
  auto-trust-anchor-file: \"\"
  cache-max-ttl: 0
  cache-max-negative-ttl: 0
",
            port = self.port,
            dir = self.dir.display()
        );
        for r in records.iter().filter(|r| r.contains(" PTR ")) {
            // unbound answers reverse names of reserved ranges (RFC 6303:
            // loopback, the documentation nets) itself unless told not to.
            // (hickory answers 127.x itself too: tests use 192.0.2.x.)
            let ip: std::net::Ipv4Addr = r.split_whitespace().next().unwrap().parse().unwrap();
            let o = ip.octets();
            conf.push_str(&format!(
                "  local-zone: \"{}.{}.{}.in-addr.arpa.\" nodefault\n",
                o[2], o[1], o[0]
            ));
        }
        for z in zones {
            conf.push_str(&format!("  local-zone: \"{z}\" static\n"));
        }
        for r in records {
            // Single quotes around: a TXT record's own quotes stay as they are.
            assert!(!r.contains('\''), "{r}");
            if r.contains(" PTR ") {
                // local-data-ptr: "address name"
                let mut parts = r.split_whitespace();
                let (ip, name) = (parts.next().unwrap(), parts.last().unwrap());
                conf.push_str(&format!("  local-data-ptr: \"{ip} {name}\"\n"));
            } else {
                conf.push_str(&format!("  local-data: '{r}'\n"));
            }
        }
        conf.push_str("remote-control:\n  control-enable: no\n");
        std::fs::write(self.dir.join("unbound.conf"), conf).unwrap();
        let check = Command::new("unbound-checkconf")
            .arg(self.dir.join("unbound.conf"))
            .output();
        if let Ok(out) = check {
            assert!(
                out.status.success(),
                "unbound.conf: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    fn run(&mut self) {
        let child = Command::new("unbound")
            .arg("-d")
            .arg("-c")
            .arg(self.dir.join("unbound.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("unbound starts");
        self.child = Some(child);
        let port = self.port;
        wait_for("unbound to answer", Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for TestDns {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port free for both UDP and TCP on 127.0.0.1.
fn free_udp_and_tcp_port() -> u16 {
    loop {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A TXT record's data as quoted strings of at most 255 bytes each.
pub fn txt(value: &str) -> String {
    value
        .as_bytes()
        .chunks(255)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
        .collect::<Vec<_>>()
        .join(" ")
}
