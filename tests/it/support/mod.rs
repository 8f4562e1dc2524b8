//! Shared test helpers: temporary data folders, configurations, the
//! `muster` binary, an in-process app on port 0, and polling with deadlines.

pub mod app;
pub mod databases;
pub mod destinations;
pub mod dns;
pub mod holding_proxy;
pub mod mailstack;
pub mod mcp_client;
pub mod policy_server;
pub mod smtp_peer;
pub mod webdriver;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use muster::config::Config;

pub const BIN: &str = env!("CARGO_BIN_EXE_muster");

/// A password the policy accepts (long, zxcvbn score 4).
pub const PASSWORD: &str = "plinth-ferry-quartz-77";

/// A batch request for `n` recipients `<prefix><i>@elsewhere.org`.
pub fn invite_batch(n: usize, prefix: &str) -> muster::service::BatchRequest {
    muster::service::BatchRequest::new(
        (0..n)
            .map(|i| muster::domain::roster::InviteRow::to(format!("{prefix}{i}@elsewhere.org")))
            .collect(),
        muster::store::Actor::cli(),
    )
}

/// Under `CI=true` a missing component fails the test; elsewhere the test
/// is skipped with a note.
pub fn require(what: &str, present: bool) -> bool {
    if present {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{what} is missing; run scripts/install-test-deps");
    }
    eprintln!("skipping: {what} is not installed (scripts/install-test-deps installs it)");
    false
}

/// A folder made read-only in place (a bind mount of itself, remounted
/// read-only) until this is dropped, even by a failing test.
pub struct ReadOnly(std::path::PathBuf);

impl ReadOnly {
    /// None (after `require`) where mounts are not allowed (not root).
    pub fn mount(dir: &std::path::Path) -> Option<Self> {
        let mount = |args: &[&str]| {
            Command::new("mount")
                .args(args)
                .arg(dir)
                .arg(dir)
                .status()
                .is_ok_and(|s| s.success())
        };
        if !mount(&["--bind"]) {
            require("a bind mount (needs root)", false);
            return None;
        }
        let bound = ReadOnly(dir.to_path_buf());
        let read_only = mount(&["-o", "remount,ro,bind"]);
        require("a read-only remount (needs root)", read_only).then_some(bound)
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

pub fn have_command(cmd: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {cmd}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Polls `f` until it returns Some or the deadline passes.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub async fn wait_for_async<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A free loopback port (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A data folder and a configuration for one test.
pub struct TestDir {
    pub dir: tempfile::TempDir,
}

impl TestDir {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The base configuration: one domain, the data folder here, port 0.
    pub fn config(&self) -> Config {
        let text = format!(
            r#"
listen = "127.0.0.1:0"
public_url = "http://muster.test"
data_dir = "{data}"
organisation = "Example Team"
storage_pool_mb = 1000

[[domains]]
name = "team.example"
mailbox_cap = 10
"#,
            data = self.data().display()
        );
        Config::from_toml(&text, "test", std::iter::empty()).unwrap()
    }

    /// Writes `config` as TOML and returns its path.
    pub fn write_config(&self, config: &Config) -> PathBuf {
        let path = self.path().join("muster.toml");
        std::fs::write(&path, toml::to_string(config).unwrap()).unwrap();
        path
    }

    pub fn write(&self, name: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path().join(name);
        std::fs::write(&path, content).unwrap();
        path
    }
}

/// Runs `muster` with a clean MUSTER_* environment.
pub fn muster(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("MUSTER_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

pub fn run(mut cmd: impl std::borrow::BorrowMut<Command>, stdin: Option<&[u8]>) -> Output {
    use std::io::Write;
    let cmd = cmd.borrow_mut();
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("muster runs");
    let mut pipe = child.stdin.take().unwrap();
    let input = stdin.unwrap_or_default().to_vec();
    // Written from a thread so a large output cannot block the input, and a
    // command that exits before reading (bad configuration) is not a failure
    // of the test: the pipe is then closed, and the exit status tells.
    let writer = std::thread::spawn(move || match pipe.write_all(&input) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        other => other.unwrap(),
    });
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap();
    output
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `muster serve` with this configuration file, its output discarded.
pub fn spawn_serve(config: &Path) -> std::process::Child {
    muster(&["--config", config.to_str().unwrap(), "serve"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Waits until the server at `url` answers `/healthz` with success.
pub async fn wait_healthy(url: &str, deadline: Duration) {
    let client = http();
    wait_for_async("the server", deadline, || async {
        client
            .get(format!("{url}/healthz"))
            .send()
            .await
            .ok()
            .filter(|r| r.status().is_success())
    })
    .await;
}

/// Asserts how a command exited, showing what it printed when that differs.
#[track_caller]
pub fn assert_exit(out: &std::process::Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// The form proof (`form_token`) in a setup-link page, as a browser sends it back.
pub fn form_token(page: &str) -> String {
    let start = page
        .find("name=\"form_token\" value=\"")
        .map(|i| i + "name=\"form_token\" value=\"".len())
        .unwrap_or_else(|| panic!("no form proof in the page: {page}"));
    let end = page[start..].find('"').unwrap() + start;
    page[start..end].to_string()
}

/// Opens the setup-link page at `url` and returns its form proof.
pub async fn fetch_form_token(client: &reqwest::Client, url: &str) -> String {
    let page = client.get(url).send().await.unwrap().text().await.unwrap();
    form_token(&page)
}

/// Submits a password on the setup link at `url` as a person does: the
/// page first, then its form with the page's proof. A page without a form
/// (used, expired, invalid) is the answer itself.
pub async fn submit_password(
    client: &reqwest::Client,
    url: &str,
    password: &str,
    confirmation: &str,
) -> (u16, String) {
    let r = client.get(url).send().await.unwrap();
    let status = r.status().as_u16();
    let page = r.text().await.unwrap();
    if !page.contains("id=\"setup\"") {
        return (status, page);
    }
    post_password(client, url, &form_token(&page), password, confirmation).await
}

/// Posts the setup form with a given proof.
pub async fn post_password(
    client: &reqwest::Client,
    url: &str,
    proof: &str,
    password: &str,
    confirmation: &str,
) -> (u16, String) {
    let r = client
        .post(url)
        .form(&[
            ("password", password),
            ("confirmation", confirmation),
            ("form_token", proof),
        ])
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

pub fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Holds the passwd-file's lock as another writer would, until dropped:
/// redemptions meanwhile fail cleanly, naming the lock.
pub fn hold_passwd_lock(config: &muster::config::Config) -> std::fs::File {
    use std::os::unix::io::AsRawFd;
    let passwd = config.passwd_file();
    std::fs::create_dir_all(passwd.parent().unwrap()).unwrap();
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(passwd.with_file_name("passwd.lock"))
        .unwrap();
    // SAFETY: flock on a descriptor this function owns.
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
    lock
}
