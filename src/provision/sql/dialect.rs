//! What differs between PostgreSQL and MariaDB/MySQL, and between
//! Muster's table and Postfix Admin's: placeholders, casts, the statements
//! Muster runs, its table, and where the database is.

use std::str::FromStr;

use sqlx::mysql::MySqlConnectOptions;
use sqlx::postgres::PgConnectOptions;

use crate::config::SqlLayout;

/// Which database the URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    MySql,
}

impl Dialect {
    pub(super) fn of(url: &str) -> Option<Self> {
        let scheme = url.split("://").next()?.to_ascii_lowercase();
        match scheme.as_str() {
            "postgres" | "postgresql" => Some(Self::Postgres),
            "mysql" | "mariadb" => Some(Self::MySql),
            _ => None,
        }
    }

    /// The `n`th placeholder (1-based).
    pub(super) fn arg(self, n: usize) -> String {
        match self {
            Self::Postgres => format!("${n}"),
            Self::MySql => "?".into(),
        }
    }

    /// `expr` as a 64-bit integer.
    pub(super) fn int(self, expr: &str) -> String {
        match self {
            Self::Postgres => format!("CAST({expr} AS BIGINT)"),
            Self::MySql => format!("CAST({expr} AS SIGNED)"),
        }
    }

    /// `expr` as text (a column with a binary collation reads as bytes).
    pub(super) fn text(self, expr: &str) -> String {
        match self {
            Self::Postgres => expr.to_string(),
            Self::MySql => format!("CAST({expr} AS CHAR)"),
        }
    }

    /// Postfix Admin's `active` as a literal.
    pub(super) fn truth(self, on: bool) -> &'static str {
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

/// The URL with its password and parameters left out, for logs and
/// messages.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_password(None);
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        Err(_) => "(a URL that cannot be read)".into(),
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

/// The statements of one dialect and layout.
#[derive(Debug, Clone)]
pub(super) struct Statements {
    pub(super) list: String,
    pub(super) insert: String,
    /// Postfix Admin: the alias row every mailbox has.
    pub(super) insert_alias: Option<String>,
    /// Postfix Admin: the domain's `active` and `mailboxes` and its
    /// mailboxes now (binds the domain twice); no row when it is not one
    /// of its domains.
    pub(super) domain_limits: Option<String>,
    /// Postfix Admin: every domain's active flag and mailbox limit, for
    /// the previews (as `domain_limits`, without the count).
    pub(super) domain_list: Option<String>,
    pub(super) set_quota: String,
    pub(super) set_password: String,
    /// Muster's layout only (Postfix Admin's `active` stops mail too).
    pub(super) set_active: Option<String>,
    pub(super) delete: String,
    pub(super) delete_alias: Option<String>,
    pub(super) home_of: String,
    pub(super) password_of: String,
    /// Postfix Admin: an alias by the address (one may exist without a
    /// mailbox, e.g. a forwarding address).
    pub(super) alias_of: Option<String>,
}

impl Statements {
    pub(super) fn new(d: Dialect, layout: SqlLayout) -> Self {
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
                domain_limits: None,
                domain_list: None,
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
                password_of: format!(
                    "SELECT {} FROM muster_mailboxes WHERE address = {}",
                    d.text("password"),
                    a(1)
                ),
                alias_of: None,
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
                domain_limits: Some(format!(
                    "SELECT {}, {}, {} FROM domain WHERE domain = {}",
                    d.int("CASE WHEN active THEN 1 ELSE 0 END"),
                    d.int("mailboxes"),
                    d.int(&format!(
                        "(SELECT count(*) FROM mailbox WHERE domain = {})",
                        a(1)
                    )),
                    a(2)
                )),
                domain_list: Some(format!(
                    "SELECT {}, {}, {} FROM domain",
                    d.text("domain"),
                    d.int("CASE WHEN active THEN 1 ELSE 0 END"),
                    d.int("mailboxes"),
                )),
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
                // As Postfix Admin does: the alias goes with the mailbox,
                // wherever it was pointed since.
                delete_alias: Some(format!("DELETE FROM alias WHERE address = {}", a(1))),
                home_of: format!(
                    "SELECT {} FROM mailbox WHERE username = {}",
                    d.text("maildir"),
                    a(1)
                ),
                password_of: format!(
                    "SELECT {} FROM mailbox WHERE username = {}",
                    d.text("password"),
                    a(1)
                ),
                alias_of: Some(format!(
                    "SELECT {} FROM alias WHERE address = {}",
                    d.text("goto"),
                    a(1)
                )),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provision::sql::Queries;

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
