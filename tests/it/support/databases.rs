//! A real PostgreSQL (Debian's `postgresql`: initdb and pg_ctl) or MariaDB
//! (`mariadb-server`: mariadb-install-db and mariadbd) in a temporary
//! folder on a loopback port, with a `muster` user and a `mail` database;
//! and the mail stack reading mailboxes from it: Dovecot's SQL passdb and
//! userdb, Postfix's SQL maps, both with the queries `muster sql` prints.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::mailstack::{Dovecot, Hosted, Postfix, VMAIL, chown, id_of, open_dir, sh};
use super::{free_port, have_command, require, wait_for};
use muster::config::SqlLayout;
use muster::provision::sql::{Dialect, Queries, Server};

pub const USER: &str = "muster";
pub const PASSWORD: &str = "db-secret-pass";
pub const DBNAME: &str = "mail";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Postgres,
    MariaDb,
}

fn pg_bin(tool: &str) -> PathBuf {
    let base = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<PathBuf> = std::fs::read_dir(base)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    versions.sort();
    versions
        .last()
        .map(|v| v.join("bin").join(tool))
        .unwrap_or_else(|| PathBuf::from(tool))
}

impl Engine {
    pub fn name(self) -> &'static str {
        match self {
            Engine::Postgres => "postgres",
            Engine::MariaDb => "mariadb",
        }
    }

    /// Whether the server, its Dovecot driver and its Postfix map are
    /// installed; under CI a missing one fails the test.
    pub fn available(self) -> bool {
        let (what, present) = match self {
            Engine::Postgres => (
                "PostgreSQL with Dovecot's and Postfix's pgsql support (apt: postgresql dovecot-pgsql postfix-pgsql)",
                pg_bin("initdb").exists()
                    && Path::new("/usr/lib/dovecot/modules/libdriver_pgsql.so").exists(),
            ),
            Engine::MariaDb => (
                "MariaDB with Dovecot's and Postfix's mysql support (apt: mariadb-server dovecot-mysql postfix-mysql)",
                have_command("mariadb-install-db")
                    && Path::new("/usr/lib/dovecot/modules/libdriver_mysql.so").exists(),
            ),
        };
        let postfix = Path::new("/usr/lib/postfix")
            .read_dir()
            .map(|d| {
                d.filter_map(|e| e.ok()).any(|e| {
                    e.file_name().to_string_lossy().contains(match self {
                        Engine::Postgres => "pgsql",
                        Engine::MariaDb => "mysql",
                    })
                })
            })
            .unwrap_or(false);
        require(what, present && postfix)
    }
}

/// A running database server of its own.
pub struct Database {
    pub engine: Engine,
    pub port: u16,
    dir: PathBuf,
    /// mariadbd (PostgreSQL runs under pg_ctl).
    child: Option<Child>,
}

impl Database {
    pub fn start(state: &Path, engine: Engine) -> Self {
        let dir = state.join(engine.name());
        open_dir(&dir);
        let mut db = Self {
            engine,
            port: free_port(),
            dir,
            child: None,
        };
        match engine {
            Engine::Postgres => {
                let owner = id_of("passwd", "postgres");
                chown(&db.dir, owner, owner);
                sh(Command::new("runuser")
                    .args(["-u", "postgres", "--"])
                    .arg(pg_bin("initdb"))
                    .args(["-U", "postgres", "-A", "trust", "--no-sync", "-D"])
                    .arg(db.dir.join("data")));
                db.run();
                db.admin(&format!("CREATE USER {USER} PASSWORD '{PASSWORD}'"));
                db.admin(&format!("CREATE DATABASE {DBNAME} OWNER {USER}"));
            }
            Engine::MariaDb => {
                let data = db.dir.join("data");
                let run = db.dir.join("run");
                let tmp = db.dir.join("tmp");
                let mysql = id_of("passwd", "mysql");
                for dir in [&data, &run, &tmp] {
                    open_dir(dir);
                    chown(dir, mysql, mysql);
                }
                // Its own temporary folder: with the shared /tmp, one of many
                // parallel set-ups lost a temporary table and failed
                // ("Unknown table 'mysql.tmp_user_sys'").
                sh(Command::new("mariadb-install-db")
                    .arg("--user=mysql")
                    .arg(format!("--datadir={}", data.display()))
                    .arg(format!("--tmpdir={}", tmp.display()))
                    .args(["--auth-root-authentication-method=normal", "--skip-test-db"]));
                db.run();
                db.admin(&format!(
                    "CREATE USER '{USER}'@'%' IDENTIFIED BY '{PASSWORD}'; CREATE DATABASE {DBNAME}; GRANT ALL ON {DBNAME}.* TO '{USER}'@'%';"
                ));
            }
        }
        db
    }

    /// Starts the server (again, after [`Database::stop`]) and waits for it.
    pub fn run(&mut self) {
        match self.engine {
            Engine::Postgres => {
                sh(Command::new("runuser")
                    .args(["-u", "postgres", "--"])
                    .arg(pg_bin("pg_ctl"))
                    .arg("-D")
                    .arg(self.dir.join("data"))
                    .arg("-o")
                    .arg(format!(
                        "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
                        self.port,
                        self.dir.display()
                    ))
                    .arg("-l")
                    .arg(self.dir.join("log"))
                    .args(["-w", "start"]));
            }
            Engine::MariaDb => {
                let child = Command::new("mariadbd")
                    .arg("--no-defaults")
                    .arg(format!("--datadir={}", self.dir.join("data").display()))
                    .arg(format!("--port={}", self.port))
                    .arg("--bind-address=127.0.0.1")
                    .arg(format!("--socket={}", self.dir.join("run/sock").display()))
                    .arg(format!("--pid-file={}", self.dir.join("run/pid").display()))
                    .arg(format!("--tmpdir={}", self.dir.join("tmp").display()))
                    .args([
                        "--user=mysql",
                        "--skip-log-bin",
                        "--innodb-buffer-pool-size=32M",
                        // 2: each commit reaches the OS at once (it survives
                        // the SIGKILL `stop` sends), fsync once a second.
                        "--innodb-flush-log-at-trx-commit=2",
                        "--max-connections=300",
                    ])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("mariadbd starts");
                self.child = Some(child);
            }
        }
        let port = self.port;
        wait_for("the database to listen", Duration::from_secs(30), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        if self.engine == Engine::MariaDb {
            // Listening comes a moment before taking logins.
            wait_for("MariaDB to take logins", Duration::from_secs(30), || {
                Command::new("mariadb")
                    .args([
                        "-h",
                        "127.0.0.1",
                        "-P",
                        &port.to_string(),
                        "-u",
                        "root",
                        "-e",
                        "SELECT 1",
                    ])
                    .output()
                    .ok()
                    .filter(|o| o.status.success())
            });
        }
    }

    /// Stops the server (the data stays).
    pub fn stop(&mut self) {
        match self.engine {
            Engine::Postgres => {
                let _ = Command::new("runuser")
                    .args(["-u", "postgres", "--"])
                    .arg(pg_bin("pg_ctl"))
                    .arg("-D")
                    .arg(self.dir.join("data"))
                    .args(["-m", "immediate", "-w", "stop"])
                    .output();
            }
            Engine::MariaDb => {
                if let Some(mut child) = self.child.take() {
                    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
                    let _ = child.wait();
                }
            }
        }
    }

    /// Runs SQL as the server's superuser.
    pub fn admin(&self, sql: &str) -> String {
        let port = self.port.to_string();
        let out = match self.engine {
            Engine::Postgres => sh(Command::new("psql").args([
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "postgres",
                "-v",
                "ON_ERROR_STOP=1",
                "-At",
                "-c",
                sql,
            ])),
            Engine::MariaDb => sh(Command::new("mariadb").args([
                "-h",
                "127.0.0.1",
                "-P",
                &port,
                "-u",
                "root",
                "-N",
                "-B",
                "-e",
                sql,
            ])),
        };
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Runs SQL in the mail database as Muster's user.
    pub fn query(&self, sql: &str) -> String {
        let port = self.port.to_string();
        let out = match self.engine {
            Engine::Postgres => sh(Command::new("psql").env("PGPASSWORD", PASSWORD).args([
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                USER,
                "-d",
                DBNAME,
                "-v",
                "ON_ERROR_STOP=1",
                "-At",
                "-c",
                sql,
            ])),
            Engine::MariaDb => sh(Command::new("mariadb").args([
                "-h",
                "127.0.0.1",
                "-P",
                &port,
                "-u",
                USER,
                &format!("-p{PASSWORD}"),
                DBNAME,
                "-N",
                "-B",
                "-e",
                sql,
            ])),
        };
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn url(&self) -> String {
        match self.engine {
            Engine::Postgres => format!(
                "postgres://{USER}:{PASSWORD}@127.0.0.1:{}/{DBNAME}",
                self.port
            ),
            Engine::MariaDb => {
                format!("mysql://{USER}:{PASSWORD}@127.0.0.1:{}/{DBNAME}", self.port)
            }
        }
    }

    pub fn dialect(&self) -> Dialect {
        match self.engine {
            Engine::Postgres => Dialect::Postgres,
            Engine::MariaDb => Dialect::MySql,
        }
    }

    /// Postfix Admin's own tables (as its schema makes them) and one
    /// domain, for the `postfixadmin` layout.
    pub fn postfix_admin_schema(&self, domain: &str) {
        let ddl = match self.engine {
            Engine::Postgres => "
CREATE TABLE domain (domain varchar(255) PRIMARY KEY, description varchar(255) NOT NULL DEFAULT '', aliases integer NOT NULL DEFAULT 0, mailboxes integer NOT NULL DEFAULT 0, maxquota bigint NOT NULL DEFAULT 0, quota bigint NOT NULL DEFAULT 0, transport varchar(255), backupmx boolean NOT NULL DEFAULT false, created timestamp with time zone DEFAULT now(), modified timestamp with time zone DEFAULT now(), active boolean NOT NULL DEFAULT true);
CREATE TABLE mailbox (username varchar(255) PRIMARY KEY, password varchar(255) NOT NULL DEFAULT '', name varchar(255) NOT NULL DEFAULT '', maildir varchar(255) NOT NULL DEFAULT '', quota bigint NOT NULL DEFAULT 0, local_part varchar(255) NOT NULL, domain varchar(255) NOT NULL REFERENCES domain, created timestamp with time zone DEFAULT now(), modified timestamp with time zone DEFAULT now(), active boolean NOT NULL DEFAULT true, phone varchar(30) NOT NULL DEFAULT '', email_other varchar(255) NOT NULL DEFAULT '', token varchar(255) NOT NULL DEFAULT '', token_validity timestamp with time zone NOT NULL DEFAULT '2000-01-01 00:00:00+00', password_expiry timestamp with time zone NOT NULL DEFAULT '2000-01-01 00:00:00+00');
CREATE TABLE alias (address varchar(255) PRIMARY KEY, goto text NOT NULL, domain varchar(255) NOT NULL REFERENCES domain, created timestamp with time zone DEFAULT now(), modified timestamp with time zone DEFAULT now(), active boolean NOT NULL DEFAULT true);
",
            Engine::MariaDb => "
CREATE TABLE domain (domain varchar(255) NOT NULL PRIMARY KEY, description varchar(255) NOT NULL DEFAULT '', aliases int(10) NOT NULL DEFAULT 0, mailboxes int(10) NOT NULL DEFAULT 0, maxquota bigint(20) NOT NULL DEFAULT 0, quota bigint(20) NOT NULL DEFAULT 0, transport varchar(255) DEFAULT NULL, backupmx tinyint(1) NOT NULL DEFAULT 0, created datetime NOT NULL DEFAULT '2000-01-01 00:00:00', modified datetime NOT NULL DEFAULT '2000-01-01 00:00:00', active tinyint(1) NOT NULL DEFAULT 1) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE mailbox (username varchar(255) NOT NULL PRIMARY KEY, password varchar(255) NOT NULL, name varchar(255) NOT NULL, maildir varchar(255) NOT NULL, quota bigint(20) NOT NULL DEFAULT 0, local_part varchar(255) NOT NULL, domain varchar(255) NOT NULL, created datetime NOT NULL DEFAULT '2000-01-01 00:00:00', modified datetime NOT NULL DEFAULT '2000-01-01 00:00:00', active tinyint(1) NOT NULL DEFAULT 1, phone varchar(30) NOT NULL DEFAULT '', email_other varchar(255) NOT NULL DEFAULT '', token varchar(255) NOT NULL DEFAULT '', token_validity datetime NOT NULL DEFAULT '2000-01-01 00:00:00', password_expiry datetime NOT NULL DEFAULT '2000-01-01 00:00:00', KEY domain (domain)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE alias (address varchar(255) NOT NULL PRIMARY KEY, goto text NOT NULL, domain varchar(255) NOT NULL, created datetime NOT NULL DEFAULT '2000-01-01 00:00:00', modified datetime NOT NULL DEFAULT '2000-01-01 00:00:00', active tinyint(1) NOT NULL DEFAULT 1, KEY domain (domain)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
",
        };
        self.query(ddl);
        self.query(&format!(
            "INSERT INTO domain (domain, description) VALUES ('{domain}', 'test')"
        ));
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The mail stack reading mailboxes from an SQL database, configured with
/// the queries Muster prints (`muster sql queries`).
pub struct SqlStack {
    pub dovecot: Dovecot,
    pub postfix: Postfix,
    pub layout: SqlLayout,
    home: String,
    auth: String,
}

impl SqlStack {
    pub fn start(state: &Path, domain: &str, db: &Database, layout: SqlLayout) -> Self {
        open_dir(state);
        let etc = state.join("sql-etc");
        open_dir(&etc);
        let vmail = state.join("dovecot/vmail");
        let home = format!("{}/%d/%n", vmail.display());
        let server = Server::of(&db.url()).unwrap();
        let queries = Queries::new(db.dialect(), layout, &home, VMAIL, VMAIL);
        let dovecot_conf = etc.join("dovecot-sql.conf.ext");
        std::fs::write(
            &dovecot_conf,
            queries.dovecot_conf(&server, PASSWORD, "ARGON2ID"),
        )
        .unwrap();
        let auth = format!(
            "passdb {{\n  driver = sql\n  args = {p}\n}}\nuserdb {{\n  driver = sql\n  args = {p}\n}}\n",
            p = dovecot_conf.display()
        );
        let dovecot = Dovecot::start_with(&state.join("dovecot"), &auth);
        let mut mailbox_maps = None;
        let mut alias_maps = None;
        for (setting, file, contents) in queries.postfix_maps(&server, PASSWORD) {
            let path = etc.join(&file);
            std::fs::write(&path, contents).unwrap();
            let map = format!("{}:{}", server.postfix_type(), path.display());
            match setting {
                "virtual_mailbox_maps" => mailbox_maps = Some(map),
                "virtual_alias_maps" => alias_maps = Some(map),
                _ => {}
            }
        }
        let postfix = Postfix::start(
            state,
            Some(Hosted {
                domain,
                mailbox_maps: mailbox_maps.unwrap(),
                alias_maps,
                lmtp_socket: &dovecot.lmtp_socket(),
            }),
        );
        Self {
            dovecot,
            postfix,
            layout,
            home,
            auth,
        }
    }

    /// A second Dovecot reading the same database (another mail node).
    pub fn another_dovecot(&self, state: &Path) -> Dovecot {
        Dovecot::start_with(&state.join("dovecot-2"), &self.auth)
    }

    /// Points a Muster configuration at this stack and `db`.
    pub fn configure(&self, c: &mut muster::config::Config, db: &Database) {
        c.mail_host.backend = muster::config::MailHostBackend::Sql;
        c.mail_host.sql.url = Some(muster::config::Secret::new(db.url()));
        c.mail_host.sql.layout = self.layout;
        c.mail_host.home = self.home.clone();
        c.mail_host.uid = VMAIL;
        c.mail_host.gid = VMAIL;
        c.smtp.host = Some("127.0.0.1".into());
        c.smtp.port = self.postfix.port;
        c.smtp.tls = muster::config::SmtpTls::None;
        c.smtp.rate_per_minute = 0;
        c.smtp.retry_initial_secs = 1;
        c.smtp.retry_max_secs = 2;
    }
}
