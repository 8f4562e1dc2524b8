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

mod dialect;
mod limits;
mod readers;

pub use dialect::{Dialect, Server, check_url, redact, schema};
pub use readers::Queries;

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::future::Future;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions, MySqlSslMode};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};
use sqlx::{MySqlPool, PgPool, Row};

use limits::DomainLimits;

use super::{
    Created, HostIndex, HostMailbox, MailFolder, MailHost, MailboxChange, NewMailbox,
    ProvisionError,
};
use crate::config::{Config, SqlLayout, SqlSettings, SqlTls};
use crate::lock;
use dialect::Statements;

/// How long a listing is reused before the database is asked again
/// (others may add mailboxes too: another Muster, Postfix Admin).
const LIST_TTL: Duration = Duration::from_secs(10);
/// The longest one operation (with its transaction) may take.
const OP_TIMEOUT: Duration = Duration::from_secs(15);
/// The longest a connection is waited for.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

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
    /// Postfix Admin layout: bytes per MB in `mailbox.quota`.
    quota_multiplier: u64,
    describe: String,
    cache: Mutex<Option<(Instant, Arc<HostIndex>)>>,
    /// Bumped by every change Muster makes: a listing read while one
    /// happened may miss it, so it is read again rather than kept.
    changes: AtomicU64,
}

fn connect(settings: &SqlSettings, url: &str) -> Result<(Pool, Dialect), String> {
    let dialect = Dialect::of(url).ok_or("not a postgres:// or mysql:// URL")?;
    let size = settings.pool_size.max(1);
    Ok(match dialect {
        Dialect::Postgres => {
            let mut o = PgConnectOptions::from_str(url).map_err(|e| e.to_string())?;
            if let Some(tls) = settings.tls {
                o = o.ssl_mode(match tls {
                    SqlTls::Prefer => PgSslMode::Prefer,
                    SqlTls::Require => PgSslMode::Require,
                    SqlTls::Verify => PgSslMode::VerifyFull,
                });
            }
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
            if let Some(tls) = settings.tls {
                o = o.ssl_mode(match tls {
                    SqlTls::Prefer => MySqlSslMode::Preferred,
                    SqlTls::Require => MySqlSslMode::Required,
                    SqlTls::Verify => MySqlSslMode::VerifyIdentity,
                });
            }
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
        let connected = {
            let _inside = rt.enter();
            connect(&mh.sql, &url)
        };
        let (pool, dialect) = match connected {
            Ok(c) => c,
            Err(e) => {
                // Dropping a runtime may block, which panics inside another.
                rt.shutdown_background();
                return Err(ProvisionError::Invalid(format!(
                    "mail_host.sql.url {}: {e}",
                    redact(&url)
                )));
            }
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
            quota_multiplier: mh.sql.quota_multiplier,
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
            changes: AtomicU64::new(0),
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
    /// Admin's: MB times its quota multiplier, where 0 means none).
    fn stored_quota(&self, mb: Option<u64>) -> Option<i64> {
        match self.layout {
            SqlLayout::Muster => mb.map(|mb| mb as i64),
            SqlLayout::Postfixadmin => Some(mb.map_or(0, |mb| {
                mb.saturating_mul(self.quota_multiplier)
                    .min(i64::MAX as u64) as i64
            })),
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
                // Each domain's limits are read once per transaction; its
                // count then grows with the rows added here.
                let mut domains: HashMap<&str, DomainLimits> = HashMap::new();
                for r in &rows {
                    if let Some(q) = &sql.alias_of
                        && let Some(alias) = sqlx::query(q).bind(&r.address).fetch_optional(&mut *tx).await?
                    {
                        // A mailbox has its alias too: that is "exists".
                        if sqlx::query(&sql.password_of).bind(&r.address).fetch_optional(&mut *tx).await?.is_some() {
                            return Ok(Err(r.address.clone()));
                        }
                        let goto: String = alias.try_get(0)?;
                        return Ok(Err(format!(
                            "{} is an alias in Postfix Admin (to {goto}); remove the alias there, or invite another address",
                            r.address
                        )));
                    }
                    if let Some(q) = &sql.domain_limits {
                        let limits = match domains.entry(r.domain.as_str()) {
                            Entry::Occupied(known) => known.into_mut(),
                            Entry::Vacant(new) => {
                                let Some(row) = sqlx::query(q).bind(&r.domain).bind(&r.domain).fetch_optional(&mut *tx).await? else {
                                    return Ok(Err(limits::UNLISTED.replace("{domain}", &r.domain)));
                                };
                                new.insert(DomainLimits {
                                    active: row.try_get::<i64, _>(0)? != 0,
                                    mailboxes: row.try_get(1)?,
                                    has: row.try_get(2)?,
                                    adding: 0,
                                })
                            }
                        };
                        if let Some(refusal) = limits.refusal(&r.domain) {
                            return Ok(Err(refusal));
                        }
                        // A failed insert below ends the transaction whole.
                        limits.adding += 1;
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

    /// The cached listing, with these mailboxes added (no query).
    fn remember(&self, boxes: &[NewMailbox]) {
        let mut cache = lock(&self.cache);
        self.changes.fetch_add(1, Ordering::SeqCst);
        if let Some((at, index)) = cache.as_ref() {
            let grown = index.with_added(boxes.iter().map(|m| HostMailbox {
                address: m.address.to_string().to_lowercase(),
                quota_mb: self.quota_of(m),
                suspended: false,
            }));
            *cache = Some((*at, Arc::new(grown)));
        }
    }

    /// The mailboxes as the database has them now.
    fn read_listing(&self) -> Result<Arc<HostIndex>, ProvisionError> {
        let pool = self.pool.clone();
        let sql = self.sql.list.clone();
        let domain_list = self.sql.domain_list.clone();
        let (layout, multiplier) = (self.layout, self.quota_multiplier);
        let (rows, domains) = self
            .run(async move {
                let rows: Vec<(String, Option<i64>, Option<i64>)> =
                    on!(&pool, p => sqlx::query_as(&sql).fetch_all(p).await?);
                let domains: Option<Vec<(String, i64, i64)>> = match domain_list {
                    None => None,
                    Some(q) => Some(on!(&pool, p => sqlx::query_as(&q).fetch_all(p).await?)),
                };
                Ok((rows, domains))
            })
            .map_err(|f| self.error("listing the mailboxes", f))?;
        let index = HostIndex::new(rows.into_iter().map(|(address, quota, active)| {
            HostMailbox {
                address: address.to_lowercase(),
                quota_mb: match layout {
                    SqlLayout::Muster => quota.map(|q| q.max(0) as u64),
                    SqlLayout::Postfixadmin => quota
                        .filter(|q| *q > 0)
                        .map(|b| (b as u64).div_ceil(multiplier)),
                },
                suspended: active == Some(0),
            }
        }));
        let index = match domains {
            None => index,
            Some(domains) => index.with_limits(
                domains.into_iter().map(|(domain, active, mailboxes)| {
                    let domain = domain.to_lowercase();
                    let limits = DomainLimits {
                        active: active != 0,
                        mailboxes,
                        has: 0,
                        adding: 0,
                    };
                    let limit = limits.host_limit(&domain);
                    (domain, limit)
                }),
                limits::UNLISTED,
            ),
        };
        Ok(Arc::new(index))
    }

    /// The password hash stored for `address`, if it has a row.
    fn stored_password(&self, address: &str) -> Result<Option<String>, ProvisionError> {
        let pool = self.pool.clone();
        let sql = self.sql.password_of.clone();
        let address = address.to_string();
        self.run(async move {
            let hash: Option<String> = on!(pool, p => match sqlx::query(&sql).bind(&address).fetch_optional(&p).await? {
                Some(r) => Some(r.try_get(0)?),
                None => None,
            });
            Ok(hash)
        })
        .map_err(|f| self.error("reading a mailbox back", f))
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
        let mut cache = lock(&self.cache);
        self.changes.fetch_add(1, Ordering::SeqCst);
        *cache = None;
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

impl MailHost for SqlHost {
    fn list(&self) -> Result<Arc<HostIndex>, ProvisionError> {
        if let Some((at, index)) = lock(&self.cache).as_ref()
            && at.elapsed() < LIST_TTL
        {
            return Ok(index.clone());
        }
        // A change made while the listing is read may be missing from it:
        // read again (a few times; then use it uncached).
        let mut attempts = 0;
        loop {
            attempts += 1;
            let before = self.changes.load(Ordering::SeqCst);
            let index = self.read_listing()?;
            let mut cache = lock(&self.cache);
            if self.changes.load(Ordering::SeqCst) == before {
                *cache = Some((Instant::now(), index.clone()));
                return Ok(index);
            }
            if attempts == 3 {
                return Ok(index);
            }
        }
    }

    fn create(&self, m: &NewMailbox) -> Result<Created, ProvisionError> {
        let outcome = self.insert(std::slice::from_ref(m));
        let address = m.address.to_string().to_lowercase();
        match outcome {
            Ok(Ok(())) => Ok(Created::Created),
            // Already there, or no telling whether the commit went
            // through (no answer to it): the row is ours when it holds the
            // hash just sent (salted, so no other can).
            Ok(Err(exists)) if exists == address => {
                if self.stored_password(&address)?.as_deref() == Some(&m.password_hash) {
                    self.remember(std::slice::from_ref(m));
                    Ok(Created::Created)
                } else {
                    Ok(Created::AlreadyExists)
                }
            }
            Ok(Err(refusal)) => Err(ProvisionError::Refused(refusal)),
            Err(e) => match self.stored_password(&address) {
                Ok(Some(hash)) if hash == m.password_hash => {
                    self.remember(std::slice::from_ref(m));
                    Ok(Created::Created)
                }
                _ => Err(e),
            },
        }
    }

    /// One transaction for all of them: none is made if any is refused.
    fn create_many(&self, boxes: &[NewMailbox]) -> Result<(), ProvisionError> {
        match self.insert(boxes)? {
            Ok(()) => Ok(()),
            Err(refusal) if refusal.contains('@') && !refusal.contains(' ') => {
                Err(ProvisionError::Refused(format!(
                    "the mailbox {refusal} already exists; nothing was created"
                )))
            }
            Err(refusal) => Err(ProvisionError::Refused(format!(
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
                            sqlx::query(alias).bind(&addr).execute(&mut *tx).await?;
                        }
                    }
                    tx.commit().await?;
                    Ok(home)
                })
            })
            .map_err(|f| self.error("removing the mailbox", f))?;
        let mut cache = lock(&self.cache);
        self.changes.fetch_add(1, Ordering::SeqCst);
        *cache = None;
        drop(cache);
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
