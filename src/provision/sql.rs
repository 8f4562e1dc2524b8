//! The SQL backend: mailboxes as rows in a PostgreSQL or MariaDB/MySQL
//! database that Dovecot (passdb and userdb) and Postfix (virtual mailbox
//! maps) read, so several mail nodes share one directory. Two layouts:
//! Muster's own table (`muster sql init`), and Postfix Admin's `mailbox`,
//! `alias` and `domain` tables as they are.
//!
//! Every change is one transaction, and the address is the table's key:
//! two Muster processes, or a retry after a crash, never make two rows.
//! sqlx is async; `MailHost` is called from blocking code, so the backend
//! runs its own small runtime and waits for each operation (with a
//! deadline) on a channel.

use std::future::Future;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions, MySqlSslMode};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};
use sqlx::{MySqlPool, PgPool, Row};

use super::{
    Created, HostIndex, HostMailbox, MailFolder, MailHost, MailboxChange, NewMailbox,
    ProvisionError,
};
use crate::config::{Config, SqlLayout, SqlSettings, SqlTls};

/// How long a listing is reused before the database is asked again
/// (others may add mailboxes too: another Muster, Postfix Admin).
const LIST_TTL: Duration = Duration::from_secs(10);
/// The longest one operation (with its transaction) may take.
const OP_TIMEOUT: Duration = Duration::from_secs(15);
/// The longest a connection is waited for.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Which database the URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    MySql,
}

impl Dialect {
    fn of(url: &str) -> Option<Self> {
        let scheme = url.split("://").next()?.to_ascii_lowercase();
        match scheme.as_str() {
            "postgres" | "postgresql" => Some(Self::Postgres),
            "mysql" | "mariadb" => Some(Self::MySql),
            _ => None,
        }
    }

    /// The `n`th placeholder (1-based).
    fn arg(self, n: usize) -> String {
        match self {
            Self::Postgres => format!("${n}"),
            Self::MySql => "?".into(),
        }
    }

    /// `expr` as a 64-bit integer.
    fn int(self, expr: &str) -> String {
        match self {
            Self::Postgres => format!("CAST({expr} AS BIGINT)"),
            Self::MySql => format!("CAST({expr} AS SIGNED)"),
        }
    }

    /// `expr` as text (a column with a binary collation reads as bytes).
    fn text(self, expr: &str) -> String {
        match self {
            Self::Postgres => expr.to_string(),
            Self::MySql => format!("CAST({expr} AS CHAR)"),
        }
    }

    /// Postfix Admin's `active` as a literal.
    fn truth(self, on: bool) -> &'static str {
        match (self, on) {
            (Self::Postgres, true) => "TRUE",
            (Self::Postgres, false) => "FALSE",
            (Self::MySql, true) => "1",
            (Self::MySql, false) => "0",
        }
    }
}

/// Whether `url` names a database Muster can use, with the reason when
/// not (for the configuration's check at load).
pub fn check_url(url: &str) -> Result<(), String> {
    match Dialect::of(url) {
        Some(Dialect::Postgres) => PgConnectOptions::from_str(url)
            .map(|_| ())
            .map_err(|e| format!("not a PostgreSQL URL: {e}")),
        Some(Dialect::MySql) => {
            MySqlConnectOptions::from_str(&url.replacen("mariadb://", "mysql://", 1))
                .map(|_| ())
                .map_err(|e| format!("not a MySQL/MariaDB URL: {e}"))
        }
        None => Err("start it with postgres:// (PostgreSQL) or mysql:// (MariaDB or MySQL)".into()),
    }
}

/// The URL with its password left out, for logs and messages.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "…".into();
    };
    let (auth, host) = match rest.rsplit_once('@') {
        Some((auth, host)) => (Some(auth), host),
        None => (None, rest),
    };
    let host = host.split('?').next().unwrap_or(host);
    match auth {
        Some(auth) => {
            let user = auth.split(':').next().unwrap_or("");
            format!("{scheme}://{user}@{host}")
        }
        None => format!("{scheme}://{host}"),
    }
}

#[derive(Clone)]
enum Pool {
    Pg(PgPool),
    My(MySqlPool),
}

/// The same sqlx code against either pool (their types differ).
macro_rules! on {
    ($pool:expr, $p:ident => $body:expr) => {
        match $pool {
            Pool::Pg($p) => $body,
            Pool::My($p) => $body,
        }
    };
}

/// The statements of one dialect and layout.
#[derive(Debug, Clone)]
struct Statements {
    list: String,
    insert: String,
    /// Postfix Admin: the alias row every mailbox has.
    insert_alias: Option<String>,
    /// Postfix Admin: the domain must be one of its domains.
    domain_known: Option<String>,
    set_quota: String,
    set_password: String,
    /// Muster's layout only (Postfix Admin's `active` stops mail too).
    set_active: Option<String>,
    delete: String,
    delete_alias: Option<String>,
    home_of: String,
}

impl Statements {
    fn new(d: Dialect, layout: SqlLayout) -> Self {
        let a = |n| d.arg(n);
        match layout {
            SqlLayout::Muster => Self {
                list: format!(
                    "SELECT {}, {}, {} FROM muster_mailboxes",
                    d.text("address"),
                    d.int("quota_mb"),
                    d.int("active")
                ),
                insert: format!(
                    "INSERT INTO muster_mailboxes (address, domain, password, home, uid, gid, quota_mb, display_name) VALUES ({}, {}, {}, {}, {}, {}, {}, {})",
                    a(1),
                    a(2),
                    a(3),
                    a(4),
                    a(5),
                    a(6),
                    a(7),
                    a(8)
                ),
                insert_alias: None,
                domain_known: None,
                set_quota: format!(
                    "UPDATE muster_mailboxes SET quota_mb = {} WHERE address = {}",
                    a(1),
                    a(2)
                ),
                set_password: format!(
                    "UPDATE muster_mailboxes SET password = {} WHERE address = {}",
                    a(1),
                    a(2)
                ),
                set_active: Some(format!(
                    "UPDATE muster_mailboxes SET active = {} WHERE address = {}",
                    a(1),
                    a(2)
                )),
                delete: format!("DELETE FROM muster_mailboxes WHERE address = {}", a(1)),
                delete_alias: None,
                home_of: format!(
                    "SELECT {} FROM muster_mailboxes WHERE address = {}",
                    d.text("home"),
                    a(1)
                ),
            },
            SqlLayout::Postfixadmin => Self {
                list: format!(
                    "SELECT {}, {}, {} FROM mailbox",
                    d.text("username"),
                    d.int("quota"),
                    d.int("CASE WHEN active THEN 1 ELSE 0 END")
                ),
                insert: format!(
                    "INSERT INTO mailbox (username, password, name, maildir, quota, local_part, domain, created, modified, active) VALUES ({}, {}, {}, {}, {}, {}, {}, NOW(), NOW(), {})",
                    a(1),
                    a(2),
                    a(3),
                    a(4),
                    a(5),
                    a(6),
                    a(7),
                    d.truth(true)
                ),
                insert_alias: Some(format!(
                    "INSERT INTO alias (address, goto, domain, created, modified, active) VALUES ({}, {}, {}, NOW(), NOW(), {})",
                    a(1),
                    a(2),
                    a(3),
                    d.truth(true)
                )),
                domain_known: Some(format!("SELECT domain FROM domain WHERE domain = {}", a(1))),
                set_quota: format!(
                    "UPDATE mailbox SET quota = {}, modified = NOW() WHERE username = {}",
                    a(1),
                    a(2)
                ),
                set_password: format!(
                    "UPDATE mailbox SET password = {}, modified = NOW() WHERE username = {}",
                    a(1),
                    a(2)
                ),
                set_active: None,
                delete: format!("DELETE FROM mailbox WHERE username = {}", a(1)),
                delete_alias: Some(format!(
                    "DELETE FROM alias WHERE address = {} AND goto = {}",
                    a(1),
                    a(2)
                )),
                home_of: format!(
                    "SELECT {} FROM mailbox WHERE username = {}",
                    d.text("maildir"),
                    a(1)
                ),
            },
        }
    }
}

/// What went wrong with one operation.
enum Failure {
    Db(sqlx::Error),
    Timeout,
    Stopped,
}

impl From<sqlx::Error> for Failure {
    fn from(e: sqlx::Error) -> Self {
        Failure::Db(e)
    }
}

fn unique_violation(e: &Failure) -> bool {
    matches!(e, Failure::Db(sqlx::Error::Database(d)) if d.is_unique_violation())
}

pub struct SqlHost {
    /// Its own small runtime; shut down without waiting when the host is
    /// dropped (possibly inside another runtime, which may not block).
    rt: Option<tokio::runtime::Runtime>,
    pool: Pool,
    dialect: Dialect,
    layout: SqlLayout,
    sql: Arc<Statements>,
    uid: u32,
    gid: u32,
    home: String,
    default_quota_mb: Option<u64>,
    describe: String,
    cache: Mutex<Option<(Instant, Arc<HostIndex>)>>,
}

fn connect(settings: &SqlSettings, url: &str) -> Result<(Pool, Dialect), String> {
    let dialect = Dialect::of(url).ok_or("not a postgres:// or mysql:// URL")?;
    let size = settings.pool_size.max(1);
    Ok(match dialect {
        Dialect::Postgres => {
            let mut o = PgConnectOptions::from_str(url).map_err(|e| e.to_string())?;
            o = o.ssl_mode(match settings.tls {
                SqlTls::Prefer => PgSslMode::Prefer,
                SqlTls::Require => PgSslMode::Require,
                SqlTls::Verify => PgSslMode::VerifyFull,
            });
            if let Some(ca) = &settings.ca_file {
                o = o.ssl_root_cert(ca);
            }
            let pool = PgPoolOptions::new()
                .max_connections(size)
                .acquire_timeout(CONNECT_TIMEOUT)
                .connect_lazy_with(o);
            (Pool::Pg(pool), dialect)
        }
        Dialect::MySql => {
            let url = url.replacen("mariadb://", "mysql://", 1);
            let mut o = MySqlConnectOptions::from_str(&url).map_err(|e| e.to_string())?;
            o = o.ssl_mode(match settings.tls {
                SqlTls::Prefer => MySqlSslMode::Preferred,
                SqlTls::Require => MySqlSslMode::Required,
                SqlTls::Verify => MySqlSslMode::VerifyIdentity,
            });
            if let Some(ca) = &settings.ca_file {
                o = o.ssl_ca(ca);
            }
            let pool = MySqlPoolOptions::new()
                .max_connections(size)
                .acquire_timeout(CONNECT_TIMEOUT)
                .connect_lazy_with(o);
            (Pool::My(pool), dialect)
        }
    })
}

impl SqlHost {
    /// The backend for the configuration (checked at load). No connection
    /// is made until the first operation: Muster starts while the database
    /// is down, and says so when it is used.
    pub fn from_config(config: &Config) -> Result<Self, ProvisionError> {
        let mh = &config.mail_host;
        let url = mh
            .sql
            .url
            .as_ref()
            .map(|u| u.expose().to_string())
            .unwrap_or_default();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("mail-database")
            .enable_all()
            .build()
            .map_err(|e| {
                ProvisionError::Invalid(format!("cannot start the database worker: {e}"))
            })?;
        let (pool, dialect) = {
            let _inside = rt.enter();
            connect(&mh.sql, &url).map_err(|e| {
                ProvisionError::Invalid(format!("mail_host.sql.url {}: {e}", redact(&url)))
            })?
        };
        Ok(Self {
            rt: Some(rt),
            pool,
            dialect,
            layout: mh.sql.layout,
            sql: Arc::new(Statements::new(dialect, mh.sql.layout)),
            uid: mh.uid,
            gid: mh.gid,
            home: mh.home.clone(),
            default_quota_mb: mh.default_quota_mb,
            describe: format!(
                "{} database {} ({} layout)",
                match dialect {
                    Dialect::Postgres => "PostgreSQL",
                    Dialect::MySql => "MariaDB/MySQL",
                },
                redact(&url),
                match mh.sql.layout {
                    SqlLayout::Muster => "Muster's",
                    SqlLayout::Postfixadmin => "Postfix Admin's",
                }
            ),
            cache: Mutex::new(None),
        })
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Runs one operation on the backend's runtime and waits for it.
    fn run<T: Send + 'static>(
        &self,
        op: impl Future<Output = Result<T, Failure>> + Send + 'static,
    ) -> Result<T, Failure> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let Some(rt) = &self.rt else {
            return Err(Failure::Stopped);
        };
        rt.spawn(async move {
            let outcome = match tokio::time::timeout(OP_TIMEOUT, op).await {
                Ok(r) => r,
                Err(_) => Err(Failure::Timeout),
            };
            let _ = tx.send(outcome);
        });
        rx.recv().unwrap_or(Err(Failure::Stopped))
    }

    fn error(&self, doing: &str, f: Failure) -> ProvisionError {
        let error = match f {
            Failure::Db(e) => e.to_string(),
            Failure::Timeout => format!("no answer within {} s", OP_TIMEOUT.as_secs()),
            Failure::Stopped => "the database worker stopped".into(),
        };
        ProvisionError::Database {
            what: format!("{doing} in the {}", self.describe),
            error,
        }
    }

    fn quota_of(&self, m: &NewMailbox) -> Option<u64> {
        m.quota_mb.or(self.default_quota_mb)
    }

    /// The value a layout keeps a quota as: MB (Muster's), bytes (Postfix
    /// Admin's, where 0 means none).
    fn stored_quota(&self, mb: Option<u64>) -> Option<i64> {
        match self.layout {
            SqlLayout::Muster => mb.map(|mb| mb as i64),
            SqlLayout::Postfixadmin => Some(mb.map_or(0, |mb| (mb * 1024 * 1024) as i64)),
        }
    }

    /// Inserts the mailboxes in one transaction: all or none. An address
    /// already there is `Ok(Err(address))`.
    fn insert(&self, boxes: &[NewMailbox]) -> Result<Result<(), String>, ProvisionError> {
        let rows: Vec<Row7> = boxes.iter().map(|m| self.row(m)).collect();
        let sql = self.sql.clone();
        let pool = self.pool.clone();
        let outcome = self.run(async move {
            on!(pool, p => {
                let mut tx = p.begin().await?;
                for r in &rows {
                    if let Some(q) = &sql.domain_known
                        && sqlx::query(q).bind(&r.domain).fetch_optional(&mut *tx).await?.is_none()
                    {
                        return Ok(Err(format!("the domain {} is not in Postfix Admin's domain table; add it there first", r.domain)));
                    }
                    let inserted = match &sql.insert_alias {
                        None => sqlx::query(&sql.insert)
                            .bind(&r.address).bind(&r.domain).bind(&r.password).bind(&r.home)
                            .bind(r.uid).bind(r.gid).bind(r.quota).bind(&r.name)
                            .execute(&mut *tx).await.map(|_| ()),
                        Some(alias) => match sqlx::query(&sql.insert)
                            .bind(&r.address).bind(&r.password).bind(r.name.clone().unwrap_or_default())
                            .bind(&r.home).bind(r.quota.unwrap_or(0)).bind(&r.local).bind(&r.domain)
                            .execute(&mut *tx).await {
                            Ok(_) => sqlx::query(alias)
                                .bind(&r.address).bind(&r.address).bind(&r.domain)
                                .execute(&mut *tx).await.map(|_| ()),
                            Err(e) => Err(e),
                        },
                    };
                    match inserted {
                        Ok(()) => {}
                        Err(e) => {
                            let f = Failure::Db(e);
                            if unique_violation(&f) {
                                // Rolled back when `tx` drops.
                                return Ok(Err(r.address.clone()));
                            }
                            return Err(f);
                        }
                    }
                }
                tx.commit().await?;
                Ok(Ok(()))
            })
        });
        let outcome = outcome.map_err(|f| self.error("adding mailboxes", f))?;
        if outcome.is_ok() {
            self.remember(boxes);
        }
        Ok(outcome)
    }

    fn row(&self, m: &NewMailbox) -> Row7 {
        let (local, domain) = (m.address.local().as_str(), m.address.domain().as_str());
        let home = match self.layout {
            SqlLayout::Muster => self.home.replace("%d", domain).replace("%n", local),
            // Postfix Admin keeps the maildir relative to the mail root.
            SqlLayout::Postfixadmin => format!("{domain}/{local}/"),
        };
        Row7 {
            address: m.address.to_string().to_lowercase(),
            local: local.to_string(),
            domain: domain.to_string(),
            password: m.password_hash.clone(),
            home,
            uid: self.uid as i32,
            gid: self.gid as i32,
            quota: self.stored_quota(self.quota_of(m)),
            name: m.display_name.clone(),
        }
    }

    /// The cached listing, with these mailboxes added (O(1) of its size).
    fn remember(&self, boxes: &[NewMailbox]) {
        let mut cache = lock(&self.cache);
        if let Some((at, index)) = cache.as_ref() {
            let grown = index.with_added(boxes.iter().map(|m| HostMailbox {
                address: m.address.to_string().to_lowercase(),
                quota_mb: self.quota_of(m),
                suspended: false,
            }));
            *cache = Some((*at, Arc::new(grown)));
        }
    }

    /// Runs one UPDATE or DELETE; false when no row matched.
    fn execute(&self, doing: &str, sql: String, args: Vec<Arg>) -> Result<bool, ProvisionError> {
        let pool = self.pool.clone();
        let n = self
            .run(async move {
                on!(pool, p => {
                    let mut q = sqlx::query(&sql);
                    for a in &args {
                        q = match a {
                            Arg::Text(s) => q.bind(s.clone()),
                            Arg::Int(i) => q.bind(*i),
                            Arg::MaybeInt(i) => q.bind(*i),
                        };
                    }
                    Ok(q.execute(&p).await?.rows_affected())
                })
            })
            .map_err(|f| self.error(doing, f))?;
        *lock(&self.cache) = None;
        Ok(n > 0)
    }

    /// Checks the connection and the layout's tables and columns (for
    /// `muster check`): the listing and the queries Dovecot and Postfix run.
    pub fn check(&self) -> Result<String, ProvisionError> {
        let index = self.list()?;
        let probe = self.queries().probes();
        let pool = self.pool.clone();
        self.run(async move {
            for q in probe {
                on!(&pool, p => sqlx::query(&q).fetch_optional(p).await.map(|_| ()))?;
            }
            Ok(())
        })
        .map_err(|f| self.error("trying the Dovecot and Postfix queries", f))?;
        Ok(format!(
            "{}: {} mailboxes; the Dovecot and Postfix queries run",
            self.describe,
            index.len()
        ))
    }

    /// The queries Dovecot and Postfix need for this database and layout.
    pub fn queries(&self) -> Queries {
        Queries::new(self.dialect, self.layout, &self.home, self.uid, self.gid)
    }

    /// Creates Muster's table when it is not there (for `muster sql init`).
    pub fn init(&self) -> Result<(), ProvisionError> {
        if self.layout != SqlLayout::Muster {
            return Ok(());
        }
        let ddl = schema(self.dialect);
        let pool = self.pool.clone();
        self.run(async move {
            for statement in ddl {
                on!(&pool, p => sqlx::query(statement).execute(p).await.map(|_| ()))?;
            }
            Ok(())
        })
        .map_err(|f| self.error("creating the muster_mailboxes table", f))
    }
}

impl Drop for SqlHost {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// Where the database is, as Dovecot's and Postfix's SQL settings name it
/// (the password left for the operator to fill in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    pub dialect: Dialect,
    pub host: String,
    pub port: u16,
    pub user: String,
    pub dbname: String,
}

impl Server {
    pub fn of(url: &str) -> Option<Self> {
        let dialect = Dialect::of(url)?;
        let u = url::Url::parse(url).ok()?;
        Some(Self {
            dialect,
            host: u.host_str().unwrap_or("localhost").to_string(),
            port: u.port().unwrap_or(match dialect {
                Dialect::Postgres => 5432,
                Dialect::MySql => 3306,
            }),
            user: u.username().to_string(),
            dbname: u.path().trim_start_matches('/').to_string(),
        })
    }

    /// Dovecot's driver name.
    pub fn dovecot_driver(&self) -> &'static str {
        match self.dialect {
            Dialect::Postgres => "pgsql",
            Dialect::MySql => "mysql",
        }
    }

    /// Postfix's map type.
    pub fn postfix_type(&self) -> &'static str {
        match self.dialect {
            Dialect::Postgres => "pgsql",
            Dialect::MySql => "mysql",
        }
    }
}

/// One mailbox's row values.
#[derive(Debug, Clone)]
struct Row7 {
    address: String,
    local: String,
    domain: String,
    password: String,
    home: String,
    uid: i32,
    gid: i32,
    quota: Option<i64>,
    name: Option<String>,
}

enum Arg {
    Text(String),
    Int(i64),
    MaybeInt(Option<i64>),
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Muster's table, for `muster sql init`.
pub fn schema(d: Dialect) -> &'static [&'static str] {
    match d {
        Dialect::Postgres => &[
            "CREATE TABLE IF NOT EXISTS muster_mailboxes (
  address VARCHAR(320) PRIMARY KEY,
  domain VARCHAR(253) NOT NULL,
  password VARCHAR(1024) NOT NULL,
  home VARCHAR(1024) NOT NULL,
  uid INTEGER NOT NULL,
  gid INTEGER NOT NULL,
  quota_mb BIGINT,
  active SMALLINT NOT NULL DEFAULT 1,
  display_name VARCHAR(400),
  created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP
)",
            "CREATE INDEX IF NOT EXISTS muster_mailboxes_domain ON muster_mailboxes (domain)",
        ],
        Dialect::MySql => &["CREATE TABLE IF NOT EXISTS muster_mailboxes (
  address VARCHAR(320) NOT NULL PRIMARY KEY,
  domain VARCHAR(253) NOT NULL,
  password VARCHAR(1024) NOT NULL,
  home VARCHAR(1024) NOT NULL,
  uid INT NOT NULL,
  gid INT NOT NULL,
  quota_mb BIGINT NULL,
  active SMALLINT NOT NULL DEFAULT 1,
  display_name VARCHAR(400) NULL,
  created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
  INDEX muster_mailboxes_domain (domain)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"],
    }
}

/// The queries to paste into Dovecot's and Postfix's SQL configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queries {
    pub password_query: String,
    pub user_query: String,
    pub iterate_query: String,
    /// Postfix `virtual_mailbox_maps` (and, for Postfix Admin,
    /// `virtual_alias_maps`).
    pub mailbox_map: String,
    pub alias_map: Option<String>,
    pub domain_map: Option<String>,
}

impl Queries {
    pub fn new(d: Dialect, layout: SqlLayout, home: &str, uid: u32, gid: u32) -> Self {
        match layout {
            SqlLayout::Muster => Self {
                // Suspended: logins refused (passdb), mail still delivered (userdb).
                password_query: "SELECT address AS user, password FROM muster_mailboxes WHERE address = '%u' AND active = 1".into(),
                user_query: "SELECT home, uid, gid, CASE WHEN quota_mb IS NULL THEN NULL ELSE CONCAT('*:storage=', quota_mb, 'M') END AS quota_rule FROM muster_mailboxes WHERE address = '%u'".into(),
                iterate_query: "SELECT address AS user FROM muster_mailboxes".into(),
                mailbox_map: "SELECT 1 FROM muster_mailboxes WHERE address = '%s'".into(),
                alias_map: None,
                domain_map: None,
            },
            SqlLayout::Postfixadmin => {
                // The mail root: the part of mail_host.home before %d.
                let root = home.split("%d").next().unwrap_or("/var/vmail/");
                let root = format!("{}/", root.trim_end_matches('/'));
                let on = d.truth(true);
                Self {
                    password_query: format!("SELECT username AS user, password FROM mailbox WHERE username = '%u' AND active = {on}"),
                    user_query: format!("SELECT CONCAT('{root}', maildir) AS home, {uid} AS uid, {gid} AS gid, CASE WHEN quota > 0 THEN CONCAT('*:bytes=', quota) ELSE NULL END AS quota_rule FROM mailbox WHERE username = '%u' AND active = {on}"),
                    iterate_query: format!("SELECT username AS user FROM mailbox WHERE active = {on}"),
                    mailbox_map: format!("SELECT maildir FROM mailbox WHERE username = '%s' AND active = {on}"),
                    alias_map: Some(format!("SELECT goto FROM alias WHERE address = '%s' AND active = {on}")),
                    domain_map: Some(format!("SELECT domain FROM domain WHERE domain = '%s' AND active = {on}")),
                }
            }
        }
    }

    /// Dovecot's `dovecot-sql.conf.ext` for these queries (the `passdb`
    /// and `userdb` blocks point `args` at it).
    pub fn dovecot_conf(&self, server: &Server, password: &str, scheme: &str) -> String {
        format!(
            "driver = {}\nconnect = host={} port={} dbname={} user={} password={}\ndefault_pass_scheme = {scheme}\npassword_query = {}\nuser_query = {}\niterate_query = {}\n",
            server.dovecot_driver(),
            server.host,
            server.port,
            server.dbname,
            server.user,
            password,
            self.password_query,
            self.user_query,
            self.iterate_query
        )
    }

    /// Postfix's map files: (main.cf setting, file name, contents).
    pub fn postfix_maps(
        &self,
        server: &Server,
        password: &str,
    ) -> Vec<(&'static str, String, String)> {
        let file = |query: &str| {
            format!(
                "hosts = {}:{}\nuser = {}\npassword = {password}\ndbname = {}\nquery = {query}\n",
                server.host, server.port, server.user, server.dbname
            )
        };
        let kind = server.postfix_type();
        let mut out = vec![(
            "virtual_mailbox_maps",
            format!("muster-mailboxes-{kind}.cf"),
            file(&self.mailbox_map),
        )];
        if let Some(q) = &self.alias_map {
            out.push((
                "virtual_alias_maps",
                format!("muster-aliases-{kind}.cf"),
                file(q),
            ));
        }
        if let Some(q) = &self.domain_map {
            out.push((
                "virtual_mailbox_domains",
                format!("muster-domains-{kind}.cf"),
                file(q),
            ));
        }
        out
    }

    /// Each query with a made-up address, to see that it runs.
    fn probes(&self) -> Vec<String> {
        let mut out: Vec<String> = [&self.password_query, &self.user_query]
            .iter()
            .map(|q| q.replace("%u", "muster-check@invalid"))
            .collect();
        out.push(self.mailbox_map.replace("%s", "muster-check@invalid"));
        for q in [&self.alias_map, &self.domain_map].into_iter().flatten() {
            out.push(q.replace("%s", "muster-check@invalid"));
        }
        out
    }
}

impl MailHost for SqlHost {
    fn list(&self) -> Result<Arc<HostIndex>, ProvisionError> {
        if let Some((at, index)) = lock(&self.cache).as_ref()
            && at.elapsed() < LIST_TTL
        {
            return Ok(index.clone());
        }
        let pool = self.pool.clone();
        let sql = self.sql.list.clone();
        let layout = self.layout;
        let rows = self
            .run(async move {
                let rows: Vec<(String, Option<i64>, Option<i64>)> = on!(pool, p => {
                    sqlx::query(&sql)
                        .fetch_all(&p)
                        .await?
                        .into_iter()
                        .map(|r| Ok::<_, sqlx::Error>((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
                        .collect::<Result<_, _>>()?
                });
                Ok(rows)
            })
            .map_err(|f| self.error("listing the mailboxes", f))?;
        let index = Arc::new(HostIndex::new(rows.into_iter().map(
            |(address, quota, active)| {
                HostMailbox {
                    address: address.to_lowercase(),
                    quota_mb: match layout {
                        SqlLayout::Muster => quota.map(|q| q.max(0) as u64),
                        SqlLayout::Postfixadmin => quota
                            .filter(|q| *q > 0)
                            .map(|b| (b as u64).div_ceil(1024 * 1024)),
                    },
                    suspended: active == Some(0),
                }
            },
        )));
        *lock(&self.cache) = Some((Instant::now(), index.clone()));
        Ok(index)
    }

    fn create(&self, m: &NewMailbox) -> Result<Created, ProvisionError> {
        match self.insert(std::slice::from_ref(m))? {
            Ok(()) => Ok(Created::Created),
            Err(exists) if exists == m.address.to_string().to_lowercase() => {
                Ok(Created::AlreadyExists)
            }
            Err(refusal) => Err(ProvisionError::Invalid(refusal)),
        }
    }

    /// One transaction for all of them: none is made if any is refused.
    fn create_many(&self, boxes: &[NewMailbox]) -> Result<(), ProvisionError> {
        match self.insert(boxes)? {
            Ok(()) => Ok(()),
            Err(refusal) if refusal.contains('@') && !refusal.contains(' ') => {
                Err(ProvisionError::Invalid(format!(
                    "the mailbox {refusal} already exists; nothing was created"
                )))
            }
            Err(refusal) => Err(ProvisionError::Invalid(format!(
                "{refusal}; nothing was created"
            ))),
        }
    }

    fn change(&self, address: &str, change: &MailboxChange) -> Result<(), ProvisionError> {
        let a = Arg::Text(address.to_string());
        let found = match change {
            MailboxChange::Quota(mb) => {
                let q = self.stored_quota(mb.or(self.default_quota_mb));
                self.execute(
                    "changing the quota",
                    self.sql.set_quota.clone(),
                    vec![Arg::MaybeInt(q), a],
                )?
            }
            MailboxChange::Password(hash) => self.execute(
                "setting the password",
                self.sql.set_password.clone(),
                vec![Arg::Text(hash.clone()), a],
            )?,
            MailboxChange::Suspended(on) => match &self.sql.set_active {
                Some(sql) => self.execute(
                    "suspending or restoring",
                    sql.clone(),
                    vec![Arg::Int(if *on { 0 } else { 1 }), a],
                )?,
                None => {
                    return Err(ProvisionError::Unsupported(format!(
                        "{} (Postfix Admin's `active` stops mail too; suspend it in Postfix Admin)",
                        self.describe
                    )));
                }
            },
        };
        if !found {
            return Err(ProvisionError::Invalid(format!(
                "{address} is not in the {}",
                self.describe
            )));
        }
        Ok(())
    }

    fn remove(&self, address: &str, delete_mail: bool) -> Result<MailFolder, ProvisionError> {
        let pool = self.pool.clone();
        let sql = self.sql.clone();
        let addr = address.to_string();
        let home = self
            .run(async move {
                on!(pool, p => {
                    let mut tx = p.begin().await?;
                    let home: Option<String> = match sqlx::query(&sql.home_of).bind(&addr).fetch_optional(&mut *tx).await? {
                        Some(r) => Some(r.try_get(0)?),
                        None => None,
                    };
                    if home.is_some() {
                        sqlx::query(&sql.delete).bind(&addr).execute(&mut *tx).await?;
                        if let Some(alias) = &sql.delete_alias {
                            sqlx::query(alias).bind(&addr).bind(&addr).execute(&mut *tx).await?;
                        }
                    }
                    tx.commit().await?;
                    Ok(home)
                })
            })
            .map_err(|f| self.error("removing the mailbox", f))?;
        *lock(&self.cache) = None;
        let Some(home) = home else {
            return Err(ProvisionError::Invalid(format!(
                "{address} is not in the {}",
                self.describe
            )));
        };
        // The mail lives on the mail nodes, which Muster does not reach.
        Ok(if delete_mail {
            MailFolder::NotDeleted {
                path: home,
                why: "with an SQL mail host the mail folder is on the mail server; delete it there"
                    .into(),
            }
        } else {
            MailFolder::Kept(home)
        })
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_and_passwords_kept_out() {
        assert!(check_url("postgres://m:pw@127.0.0.1:5432/mail").is_ok());
        assert!(check_url("mysql://m:pw@db/mail").is_ok());
        assert!(check_url("mariadb://m:pw@db/mail").is_ok());
        assert!(
            check_url("sqlite://x.db")
                .unwrap_err()
                .contains("postgres://")
        );
        assert_eq!(
            redact("postgres://muster:s3cret@db:5432/mail?sslmode=require"),
            "postgres://muster@db:5432/mail"
        );
        assert_eq!(redact("mysql://db/mail"), "mysql://db/mail");
    }

    #[test]
    fn statements_use_each_dialects_placeholders() {
        let pg = Statements::new(Dialect::Postgres, SqlLayout::Muster);
        assert!(pg.insert.contains("$8") && !pg.insert.contains('?'));
        let my = Statements::new(Dialect::MySql, SqlLayout::Postfixadmin);
        assert_eq!(my.insert.matches('?').count(), 7);
        assert!(my.insert.ends_with(", 1)"));
        let q = Queries::new(
            Dialect::Postgres,
            SqlLayout::Postfixadmin,
            "/srv/mail/%d/%n",
            5000,
            5000,
        );
        assert!(
            q.user_query.contains("CONCAT('/srv/mail/', maildir)"),
            "{}",
            q.user_query
        );
        assert!(q.password_query.ends_with("active = TRUE"));
    }
}
