//! Redemption with the SQL mail host: redemptions into a PostgreSQL
//! database holding no mailboxes and one holding 100,000, next to bare
//! argon2id hashing with the same parameters and as many at once, all in
//! each round (goals: 100,000 within 1.1x of none; redemption >= 0.9x bare
//! hashing). Prints each round's ratios and min / median / max.
//!
//! Run: `cargo bench --bench redeem_sql [-- --rounds=N]` (default 5), as
//! root: it starts its own PostgreSQL (Debian's postgresql package) in a
//! temporary folder on a loopback port. Muster's listing of the host is
//! loaded before the clock starts, as a running server has it.

mod common;

use common::parallel;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::PasswordHasher;
use muster::config::{Config, MailHostBackend, Secret, SqlLayout};
use muster::domain::roster::InviteRow;
use muster::service::{BatchRequest, Muster, SystemClock};
use muster::store::Actor;

const REDEMPTIONS: usize = 120;
const THREADS: usize = 2;
const PASSWORD: &str = "plinth-ferry-quartz-77";

fn pg_bin(tool: &str) -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    versions.sort();
    versions
        .last()
        .map(|v| v.join("bin").join(tool))
        .unwrap_or_default()
}

fn sh(cmd: &mut Command) {
    let out = cmd.output().expect("runs");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A PostgreSQL of the bench's own, stopped when dropped.
struct Postgres {
    dir: PathBuf,
    port: u16,
}

impl Postgres {
    fn start(dir: &Path) -> Self {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        sh(Command::new("chown").arg("postgres").arg(dir));
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let as_postgres = |tool: &str| {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(pg_bin(tool));
            c
        };
        sh(as_postgres("initdb")
            .args(["-U", "postgres", "-A", "trust", "--no-sync", "-D"])
            .arg(dir.join("data")));
        sh(as_postgres("pg_ctl")
            .arg("-D")
            .arg(dir.join("data"))
            .arg("-o")
            .arg(format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1",
                dir.display()
            ))
            .arg("-l")
            .arg(dir.join("log"))
            .args(["-w", "start"]));
        let pg = Self {
            dir: dir.to_path_buf(),
            port,
        };
        pg.sql("CREATE USER muster PASSWORD 'pw'");
        pg.sql("CREATE DATABASE mail OWNER muster");
        pg
    }

    /// As the superuser, in its default database.
    fn sql(&self, statement: &str) {
        self.psql(&["-U", "postgres"], statement);
    }

    /// As Muster's user, in the mail database.
    fn sql_in_mail(&self, statement: &str) {
        self.psql(&["-U", "muster", "-d", "mail"], statement);
    }

    fn psql(&self, who: &[&str], statement: &str) {
        sh(Command::new("psql")
            .env("PGPASSWORD", "pw")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(who)
            .args(["-v", "ON_ERROR_STOP=1", "-q", "-c", statement]));
    }

    fn url(&self) -> String {
        format!("postgres://muster:pw@127.0.0.1:{}/mail", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(pg_bin("pg_ctl"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}

fn hash_all() -> Duration {
    parallel(
        THREADS,
        REDEMPTIONS,
        Arc::new(|_| {
            let h = argon2::Argon2::default()
                .hash_password(PASSWORD.as_bytes())
                .unwrap();
            std::hint::black_box(h);
        }),
    )
}

/// A fresh table holding `existing` mailboxes, a Muster on it with
/// REDEMPTIONS invites; the time to redeem them all.
fn redeem_all(pg: &Postgres, existing: usize) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config {
        data_dir: dir.path().to_path_buf(),
        ..Config::default()
    };
    config.domains[0].name = muster::domain::address::DomainName::parse("team.example").unwrap();
    config.domains[0].mailbox_cap = 200_000;
    config.hashing.workers = THREADS;
    config.mail_host.backend = MailHostBackend::Sql;
    config.mail_host.sql.url = Some(Secret::new(pg.url()));
    config.mail_host.sql.layout = SqlLayout::Muster;
    pg.sql_in_mail("DROP TABLE IF EXISTS muster_mailboxes");
    muster::provision::sql::SqlHost::from_config(&config)
        .unwrap()
        .init()
        .unwrap();
    if existing > 0 {
        pg.sql_in_mail(&format!(
            "INSERT INTO muster_mailboxes (address, domain, password, home, uid, gid) \
             SELECT 'existing' || i || '@team.example', 'team.example', '{{ARGON2ID}}x', \
             '/var/vmail/team.example/existing' || i, 5000, 5000 FROM generate_series(1, {existing}) AS i"
        ));
    }
    let muster = Arc::new(Muster::open(Arc::new(config), Arc::new(SystemClock)).unwrap());
    let rows = (0..REDEMPTIONS)
        .map(|i| InviteRow::to(format!("person{i}@elsewhere.org")))
        .collect();
    let created = muster
        .create_batch(BatchRequest::new(rows, Actor::cli()))
        .unwrap();
    assert_eq!(muster.host_index().unwrap().len(), existing);
    let tokens: Arc<Vec<String>> = Arc::new(
        created
            .invites
            .iter()
            .map(|i| muster.invite_token(i).unwrap().as_str().to_string())
            .collect(),
    );
    let m = muster.clone();
    let elapsed = parallel(
        THREADS,
        REDEMPTIONS,
        Arc::new(move |i| {
            m.redeem(&tokens[i], PASSWORD, PASSWORD).unwrap();
        }),
    );
    assert_eq!(
        muster.store.read().unwrap().counter("redemptions").unwrap(),
        REDEMPTIONS as u64
    );
    elapsed
}

fn main() {
    if !pg_bin("initdb").exists() {
        eprintln!("PostgreSQL is not installed (apt package postgresql); skipping");
        return;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rounds = common::rounds(5);
    let dir = tempfile::tempdir().unwrap();
    let pg = Postgres::start(dir.path());
    let rate = |d: Duration| REDEMPTIONS as f64 / d.as_secs_f64();
    let (mut vs_hash, mut at_100k) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        let h = hash_all();
        let r0 = redeem_all(&pg, 0);
        let r100k = redeem_all(&pg, 100_000);
        println!(
            "round {round}: argon2id {:.1}/s, redeem into PostgreSQL with 0 mailboxes {:.1}/s, with 100,000 {:.1}/s",
            rate(h),
            rate(r0),
            rate(r100k)
        );
        vs_hash.push(rate(r0) / rate(h));
        at_100k.push(r100k.as_secs_f64() / r0.as_secs_f64());
    }
    println!("over {rounds} rounds, min / median / max of each round's ratio:");
    println!(
        "redemption into PostgreSQL vs bare argon2id on {THREADS} threads: {} (goal >= 0.9)",
        common::spread(&vs_hash, 2)
    );
    println!(
        "time at 100,000 existing mailboxes vs none: {} (goal <= 1.1)",
        common::spread(&at_100k, 2)
    );
}
