//! Postfix's smtp-sink and smtp-source, the baseline of the sending
//! benches, and the CPU time of processes.
#![allow(dead_code)]

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// CPU time (user + system) of this process, or of its waited-for
/// children.
pub fn cpu(who: i32) -> Duration {
    // SAFETY: getrusage only fills the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(who, &mut u) };
    let t = |v: libc::timeval| Duration::new(v.tv_sec as u64, v.tv_usec as u32 * 1000);
    t(u.ru_utime) + t(u.ru_stime)
}

/// CPU time (user + system) a process has used so far, from /proc.
pub fn process_cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // SAFETY: sysconf only reads a constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_micros((ticks(11) + ticks(12)) * 1_000_000 / hz)
}

/// Messages smtp-sink has received, as its `-c` counter prints them
/// ("sess=N quit=N mesg=N\r" after each event).
#[derive(Clone, Default)]
pub struct SinkCount(Arc<(Mutex<u64>, Condvar)>);

impl SinkCount {
    pub fn follow(&self, mut out: impl Read + Send + 'static) {
        let count = self.clone();
        std::thread::spawn(move || {
            let (mut buf, mut line) = ([0u8; 4096], Vec::new());
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                for &b in &buf[..n] {
                    if b != b'\r' {
                        line.push(b);
                        continue;
                    }
                    let text = String::from_utf8_lossy(&line);
                    if let Some(m) = text
                        .rsplit("mesg=")
                        .next()
                        .and_then(|v| v.trim().parse().ok())
                    {
                        let (lock, seen) = &*count.0;
                        *lock.lock().unwrap() = m;
                        seen.notify_all();
                    }
                    line.clear();
                }
            }
        });
    }

    pub fn now(&self) -> u64 {
        *self.0.0.lock().unwrap()
    }

    /// Runs `send`, which sends `messages` to the sink; returns the time
    /// from its start until the sink has them all (not until `send` has
    /// also hung up and ended).
    pub fn time(&self, messages: usize, send: impl FnOnce()) -> Duration {
        let target = self.now() + messages as u64;
        let start = Instant::now();
        // Not scoped: if `send` panics, the bench ends instead of waiting.
        let sink = self.clone();
        let arrived = std::thread::spawn(move || sink.reached(target));
        send();
        arrived.join().unwrap() - start
    }

    /// Waits until the sink has received `target` messages in all; panics
    /// after five minutes (a run takes seconds), so a bench never hangs.
    pub fn reached(&self, target: u64) -> Instant {
        let (lock, seen) = &*self.0;
        let deadline = Instant::now() + Duration::from_secs(300);
        let mut m = lock.lock().unwrap();
        while *m < target {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "smtp-sink received {} of {target} messages in five minutes",
                *m
            );
            m = seen.wait_timeout(m, left).unwrap().0;
        }
        Instant::now()
    }
}

/// smtp-source sending `messages` 5 KB messages over `sessions` sessions
/// to `address`, timed until the sink has them all.
pub fn smtp_source(address: &str, sessions: usize, messages: usize, sink: &SinkCount) -> Duration {
    sink.time(messages, || {
        let status = Command::new("smtp-source")
            .args([
                "-d",
                "-s",
                &sessions.to_string(),
                "-m",
                &messages.to_string(),
                "-l",
                "5120",
            ])
            .args(["-f", "it@team.example", "-t", "someone@elsewhere.org"])
            .arg(address)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("smtp-source runs");
        assert!(status.success());
    })
}

/// smtp-sink on `address` (`ip:port`), counting what it receives.
/// A child process that is killed and reaped when dropped, also when a
/// bench panics (else smtp-sink or unbound would outlive it).
pub struct Reaped(pub std::process::Child);

impl Reaped {
    pub fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn start_sink(address: &str) -> (Reaped, SinkCount) {
    let mut sink = Command::new("smtp-sink")
        .args(["-c", "-u", "postfix", address, "1024"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("smtp-sink starts");
    let received = SinkCount::default();
    received.follow(sink.stdout.take().unwrap());
    while std::net::TcpStream::connect(address).is_err() {
        std::thread::sleep(Duration::from_millis(20));
    }
    (Reaped(sink), received)
}

/// Whether Postfix's smtp-sink and smtp-source are installed.
pub fn installed() -> bool {
    Command::new("smtp-sink")
        .arg("-h")
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// A sender's configuration: its data in `dir`, team.example with room
/// for every invite the benches send.
pub fn sender_config(dir: &std::path::Path) -> muster::config::Config {
    let mut config = muster::config::Config {
        data_dir: dir.to_path_buf(),
        ..Default::default()
    };
    config.domains[0].name = muster::domain::address::DomainName::parse("team.example").unwrap();
    config.domains[0].mailbox_cap = 100_000;
    config
}
