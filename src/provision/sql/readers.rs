//! The queries Dovecot and Postfix read the mailboxes with, as
//! `muster sql queries` prints them and `muster check` tries them.

use super::dialect::{Dialect, Server};
use crate::config::SqlLayout;

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
                // A literal inside the queries: quotes doubled.
                let root = format!("{}/", root.trim_end_matches('/')).replace('\'', "''");
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
    pub(super) fn probes(&self) -> Vec<String> {
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
