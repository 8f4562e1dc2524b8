//! The Dovecot passwd-file backend, with the Postfix virtual mailbox map.
//!
//! A line is `user@domain:{SCHEME}hash:uid:gid::home::extra`, where the
//! extra fields may carry `userdb_quota_rule=*:storage=<N>M`. The map has
//! one `user@domain OK` line per mailbox.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::files::{self, Stamp, read_optional};
use super::{
    Created, HostIndex, HostMailbox, MailFolder, MailHost, MailboxChange, NewMailbox,
    ProvisionError,
};
use crate::config::Config;
use crate::lock;

/// The passdb extra field that refuses a user's logins while the userdb
/// (and so LMTP delivery) still knows them.
const NOLOGIN: &str = "nologin=y";
const QUOTA_FIELD: &str = "userdb_quota_rule=*:storage=";

/// How long a create waits for another writer's lock.
const LOCK_WAIT: Duration = Duration::from_secs(5);

/// A file's content as last read, and the stamp it had (None: missing).
type Cached<T> = Mutex<Option<(Option<Stamp>, T)>>;

pub struct PasswdFileHost {
    passwd: PathBuf,
    map: PathBuf,
    reload_command: Option<String>,
    uid: u32,
    gid: u32,
    home: String,
    default_quota_mb: Option<u64>,
    /// The passwd-file's index as last read or written.
    cache: Cached<Arc<HostIndex>>,
    /// The map's keys (lower case) as last read or written.
    map_keys: Cached<HashSet<String>>,
}

/// Parses a quota like `100M`, `2G`, `512k` or `1048576` (bytes) into MB,
/// rounding up. Percentages and unknown forms give None.
fn quota_mb(value: &str) -> Option<u64> {
    let v = value.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let n: u64 = num.parse().ok()?;
    let bytes = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => n,
        "k" | "kb" => n.checked_mul(1 << 10)?,
        "m" | "mb" => n.checked_mul(1 << 20)?,
        "g" | "gb" => n.checked_mul(1 << 30)?,
        "t" | "tb" => n.checked_mul(1 << 40)?,
        _ => return None,
    };
    Some(bytes.div_ceil(1 << 20))
}

/// Reads a passwd-file's mailboxes: lines with `user@domain`, comments and
/// blank lines skipped, the quota taken from `userdb_quota_rule=*:storage=`.
pub fn parse_passwd_file(text: &str) -> Vec<HostMailbox> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .filter_map(|line| {
            let mut fields = line.splitn(8, ':');
            let user = fields.next()?.trim().to_lowercase();
            if !user.contains('@') {
                return None;
            }
            let extra = fields.nth(6).unwrap_or("");
            let quota = extra
                .split_whitespace()
                .find_map(|f| f.strip_prefix(QUOTA_FIELD).and_then(quota_mb));
            Some(HostMailbox {
                address: user,
                quota_mb: quota,
                suspended: extra.split_whitespace().any(|f| f == NOLOGIN),
            })
        })
        .collect()
}

/// The keys of a Postfix map's lines, lower case.
fn map_keys(text: &str) -> HashSet<String> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_lowercase)
        .collect()
}

impl PasswdFileHost {
    pub fn from_config(config: &Config) -> Self {
        let mh = &config.mail_host;
        Self {
            passwd: config.passwd_file(),
            map: config.postfix_map(),
            reload_command: mh.reload_command.clone(),
            uid: mh.uid,
            gid: mh.gid,
            home: mh.home.clone(),
            default_quota_mb: mh.default_quota_mb,
            cache: Mutex::new(None),
            map_keys: Mutex::new(None),
        }
    }

    pub fn passwd_path(&self) -> &Path {
        &self.passwd
    }

    pub fn map_path(&self) -> &Path {
        &self.map
    }

    fn line_for(&self, m: &NewMailbox) -> Result<String, ProvisionError> {
        let (local, domain) = (m.address.local().as_str(), m.address.domain().as_str());
        let safe = |s: &str| !s.contains([':', '\n', '\r', ' ', '\t']) && !s.is_empty();
        if !safe(&m.password_hash) {
            return Err(ProvisionError::Invalid(
                "a passwd-file field would contain ':' or whitespace".into(),
            ));
        }
        let home = self.home.replace("%d", domain).replace("%n", local);
        let quota = m
            .quota_mb
            .or(self.default_quota_mb)
            .map(|mb| format!("userdb_quota_rule=*:storage={mb}M"))
            .unwrap_or_default();
        Ok(format!(
            "{}:{}:{}:{}::{}::{}",
            m.address, m.password_hash, self.uid, self.gid, home, quota
        ))
    }

    fn run_reload(&self) -> Result<(), ProvisionError> {
        let Some(cmd) = &self.reload_command else {
            return Ok(());
        };
        let out = Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .output()
            .map_err(|e| ProvisionError::Reload {
                command: cmd.clone(),
                status: "not started".into(),
                stderr: e.to_string(),
            })?;
        if out.status.success() {
            return Ok(());
        }
        Err(ProvisionError::Reload {
            command: cmd.clone(),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr)
                .trim()
                .chars()
                .take(500)
                .collect(),
        })
    }

    /// Adds the mailboxes: their lines appended to the map (then the
    /// reload) and to the passwd-file, each synced. The passwd-file comes
    /// last: a mailbox is usable only once it is there, and a failure
    /// before takes the map's lines back out. The caller holds the lock.
    fn append(&self, index: &HostIndex, boxes: &[NewMailbox]) -> Result<(), ProvisionError> {
        let mut passwd_lines = String::new();
        for m in boxes {
            passwd_lines.push_str(&self.line_for(m)?);
            passwd_lines.push('\n');
        }
        // Held until the end: the keys change only with the map.
        let mut map_cache = lock(&self.map_keys);
        let keys = self.current_map_keys(&mut map_cache)?;
        let mut map_lines = String::new();
        let mut new_keys = Vec::new();
        for m in boxes {
            let key = m.address.to_string().to_lowercase();
            if !keys.contains(&key) && !new_keys.contains(&key) {
                map_lines.push_str(&format!("{} OK\n", m.address));
                new_keys.push(key);
            }
        }
        let map_added = if map_lines.is_empty() {
            None
        } else {
            let added = files::append(&self.map, map_lines.as_bytes(), None)?;
            if let Err(e) = self.run_reload() {
                *map_cache = None;
                self.take_back_map(added);
                return Err(e);
            }
            Some(added)
        };
        let passwd_added =
            match files::append(&self.passwd, passwd_lines.as_bytes(), files::dovecot_gid()) {
                Ok(added) => added,
                Err(e) => {
                    if let Some(added) = map_added {
                        *map_cache = None;
                        self.take_back_map(added);
                    }
                    return Err(e);
                }
            };
        if let (Some(added), Some((stamp, keys))) = (&map_added, map_cache.as_mut()) {
            *stamp = Some(added.stamp);
            keys.extend(new_keys);
        }
        let grown = index.with_added(boxes.iter().map(|m| HostMailbox {
            address: m.address.to_string().to_lowercase(),
            quota_mb: m.quota_mb.or(self.default_quota_mb),
            suspended: false,
        }));
        *lock(&self.cache) = Some((Some(passwd_added.stamp), Arc::new(grown)));
        Ok(())
    }

    /// Takes the map's new lines back out after a later step failed.
    fn take_back_map(&self, added: files::Appended) {
        if let Err(e) = added.undo().and_then(|_| self.run_reload()) {
            tracing::error!(error = %e, map = %self.map.display(), "could not roll back the Postfix map");
        }
    }

    /// The map's keys, read again only when the file changed.
    fn current_map_keys<'a>(
        &self,
        cache: &'a mut Option<(Option<Stamp>, HashSet<String>)>,
    ) -> Result<&'a HashSet<String>, ProvisionError> {
        let stamp = Stamp::now(&self.map)?;
        if cache.as_ref().is_none_or(|(s, _)| *s != stamp) {
            let keys = map_keys(&read_optional(&self.map)?.unwrap_or_default());
            *cache = Some((stamp, keys));
        }
        Ok(cache.as_ref().map(|(_, k)| k).expect("just filled"))
    }
}

/// The index of `address`'s line (the first, as Dovecot reads it).
fn line_of(lines: &[&str], address: &str) -> Option<usize> {
    lines.iter().position(|l| {
        !l.trim_start().starts_with('#')
            && l.split(':').next().map(|u| u.trim().to_lowercase()) == Some(address.to_string())
    })
}

/// `line` with one change: the fields before the extra ones stay as they
/// are; the extra fields Muster does not own stay too.
fn changed_line(line: &str, change: &MailboxChange, default_quota_mb: Option<u64>) -> String {
    let mut fields: Vec<String> = line.splitn(8, ':').map(str::to_string).collect();
    fields.resize(8, String::new());
    let mut extra: Vec<String> = fields[7].split_whitespace().map(str::to_string).collect();
    match change {
        MailboxChange::Quota(mb) => {
            extra.retain(|f| !f.starts_with(QUOTA_FIELD));
            if let Some(mb) = mb.or(default_quota_mb) {
                extra.push(format!("{QUOTA_FIELD}{mb}M"));
            }
        }
        MailboxChange::Suspended(on) => {
            extra.retain(|f| f != NOLOGIN);
            if *on {
                extra.push(NOLOGIN.to_string());
            }
        }
        MailboxChange::Password(hash) => fields[1] = hash.clone(),
    }
    fields[7] = extra.join(" ");
    fields.join(":")
}

fn join_lines(lines: &[&str]) -> String {
    let mut text = lines.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    text
}

impl PasswdFileHost {
    fn not_here(&self, address: &str) -> ProvisionError {
        ProvisionError::Invalid(format!(
            "{address} is not in {}; nothing was changed",
            self.passwd.display()
        ))
    }

    /// Where a mailbox's mail is, when it is where Muster would have put it:
    /// a folder of its own (the home template names both the domain and
    /// the mailbox), not the home of any other line.
    fn own_home(&self, address: &str, line: &str, others: &[&str]) -> Option<PathBuf> {
        let (local, domain) = address.split_once('@')?;
        if !(self.home.contains("%d") && self.home.contains("%n")) {
            return None;
        }
        let expected = self.home.replace("%d", domain).replace("%n", local);
        let home = line.split(':').nth(5)?;
        let shared = others.iter().any(|l| {
            l.split(':').nth(5).is_some_and(|h| {
                h == home || h.starts_with(&format!("{}/", home.trim_end_matches('/')))
            })
        });
        (home == expected && home.starts_with('/') && home.len() > 1 && !shared)
            .then(|| PathBuf::from(home))
    }
}

impl MailHost for PasswdFileHost {
    fn list(&self) -> Result<Arc<HostIndex>, ProvisionError> {
        let stamp = Stamp::now(&self.passwd)?;
        let mut cache = lock(&self.cache);
        if let Some((s, index)) = cache.as_ref()
            && *s == stamp
        {
            // While the file is missing this is one empty index, so
            // callers that key on the index (the host check) see no change.
            return Ok(index.clone());
        }
        let text = read_optional(&self.passwd)?.unwrap_or_default();
        let index = Arc::new(HostIndex::new(parse_passwd_file(&text)));
        *cache = Some((stamp, index.clone()));
        Ok(index)
    }

    fn create(&self, m: &NewMailbox) -> Result<Created, ProvisionError> {
        let _lock = files::lock(&self.passwd, LOCK_WAIT)?;
        let index = self.list()?;
        if index.contains(&m.address.to_string().to_lowercase()) {
            return Ok(Created::AlreadyExists);
        }
        self.append(&index, std::slice::from_ref(m))?;
        Ok(Created::Created)
    }

    fn create_many(&self, boxes: &[NewMailbox]) -> Result<(), ProvisionError> {
        let _lock = files::lock(&self.passwd, LOCK_WAIT)?;
        let index = self.list()?;
        if let Some(m) = boxes
            .iter()
            .find(|m| index.contains(&m.address.to_string().to_lowercase()))
        {
            return Err(ProvisionError::Refused(format!(
                "the mailbox {} already exists; nothing was created",
                m.address
            )));
        }
        self.append(&index, boxes)
    }

    fn change(&self, address: &str, change: &MailboxChange) -> Result<(), ProvisionError> {
        let _lock = files::lock(&self.passwd, LOCK_WAIT)?;
        let text = read_optional(&self.passwd)?.unwrap_or_default();
        let mut lines: Vec<&str> = text.lines().collect();
        let at = line_of(&lines, address).ok_or_else(|| self.not_here(address))?;
        let line = changed_line(lines[at], change, self.default_quota_mb);
        if let MailboxChange::Password(hash) = change
            && hash.contains([':', '\n', '\r', ' ', '\t'])
        {
            return Err(ProvisionError::Invalid(
                "a passwd-file field would contain ':' or whitespace".into(),
            ));
        }
        lines[at] = &line;
        files::rewrite(&self.passwd, &join_lines(&lines))?;
        *lock(&self.cache) = None;
        Ok(())
    }

    fn remove(&self, address: &str, delete_mail: bool) -> Result<MailFolder, ProvisionError> {
        let _lock = files::lock(&self.passwd, LOCK_WAIT)?;
        let text = read_optional(&self.passwd)?.unwrap_or_default();
        let mut lines: Vec<&str> = text.lines().collect();
        let at = line_of(&lines, address).ok_or_else(|| self.not_here(address))?;
        let line = lines.remove(at);
        let home = self.own_home(address, line, &lines);
        // Logins stop first; then Postfix stops accepting its mail.
        files::rewrite(&self.passwd, &join_lines(&lines))?;
        *lock(&self.cache) = None;
        let mut map_cache = lock(&self.map_keys);
        *map_cache = None;
        let map_text = read_optional(&self.map)?.unwrap_or_default();
        let kept: Vec<&str> = map_text
            .lines()
            .filter(|l| {
                l.trim_start().starts_with('#')
                    || l.split_whitespace()
                        .next()
                        .map(str::to_lowercase)
                        .as_deref()
                        != Some(address)
            })
            .collect();
        let map_changed = kept.len() != map_text.lines().count();
        let unmapped = if map_changed {
            files::rewrite(&self.map, &join_lines(&kept)).and_then(|_| self.run_reload())
        } else {
            Ok(())
        };
        if let Err(e) = unmapped {
            // Whole or not at all: the login comes back with the map line.
            if let Err(undo) = files::rewrite(&self.passwd, &text) {
                tracing::error!(error = %undo, passwd = %self.passwd.display(), "could not put the passwd-file line back");
            }
            if map_changed && let Err(undo) = files::rewrite(&self.map, &map_text) {
                tracing::error!(error = %undo, map = %self.map.display(), "could not put the Postfix map line back");
            }
            return Err(e);
        }
        Ok(match home {
            None => MailFolder::Unknown,
            Some(home) if !delete_mail => MailFolder::Kept(home.display().to_string()),
            Some(home) => match std::fs::remove_dir_all(&home) {
                Ok(()) => MailFolder::Deleted(home.display().to_string()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    MailFolder::Absent(home.display().to_string())
                }
                Err(e) => MailFolder::NotDeleted {
                    path: home.display().to_string(),
                    why: e.to_string(),
                },
            },
        })
    }

    fn write_problem(&self) -> Option<ProvisionError> {
        // A half-written line first: recovery waits on that alone.
        files::append_problem(&self.passwd)
            .or_else(|| files::append_problem(&self.map))
            .or_else(|| files::write_access_problem(&self.passwd))
            .or_else(|| files::write_access_problem(&self.map))
    }

    fn describe(&self) -> String {
        format!(
            "Dovecot passwd-file {} with Postfix map {}",
            self.passwd.display(),
            self.map.display()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn host(dir: &Path, reload: Option<&str>) -> PasswdFileHost {
        let mut config = Config {
            data_dir: dir.to_path_buf(),
            ..Config::default()
        };
        config.mail_host.reload_command = reload.map(str::to_string);
        PasswdFileHost::from_config(&config)
    }

    fn mailbox(addr: &str, quota: Option<u64>) -> NewMailbox {
        NewMailbox {
            address: crate::domain::address::MailboxAddress::parse(addr).unwrap(),
            password_hash: "{ARGON2ID}$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
            quota_mb: quota,
            display_name: None,
        }
    }

    #[test]
    fn parses_dovecot_lines() {
        let text = "# comment\n\nann@x.org:{PLAIN}pw:5000:5000::/h::userdb_quota_rule=*:storage=100M\n\
                    Bob@X.org:{PLAIN}pw\nroot:x:0:0::/root:/bin/sh\nc@y.org:p:1:1::/h::userdb_quota_rule=*:storage=1G\n\
                    ann@x.org:{PLAIN}dup\n";
        let boxes = parse_passwd_file(text);
        let index = HostIndex::new(boxes);
        assert!(index.contains("bob@x.org"));
        assert_eq!(index.count_in("x.org"), 2);
        assert_eq!(index.count_in("y.org"), 1);
        assert_eq!(index.allocated_mb(), 100 + 1024);
        assert_eq!(quota_mb("512k"), Some(1));
        assert_eq!(quota_mb("10%"), None);
    }

    #[test]
    fn create_writes_both_files_once() {
        let dir = tempfile::tempdir().unwrap();
        let h = host(dir.path(), None);
        assert_eq!(
            h.create(&mailbox("jane@x.org", Some(77))).unwrap(),
            Created::Created
        );
        assert_eq!(
            h.create(&mailbox("jane@x.org", Some(77))).unwrap(),
            Created::AlreadyExists
        );
        let passwd = std::fs::read_to_string(h.passwd_path()).unwrap();
        assert_eq!(passwd.lines().count(), 1);
        assert!(passwd.starts_with("jane@x.org:{ARGON2ID}$argon2id$"));
        assert!(
            passwd.contains(":5000:5000::/var/vmail/x.org/jane::userdb_quota_rule=*:storage=77M")
        );
        assert_eq!(
            std::fs::read_to_string(h.map_path()).unwrap(),
            "jane@x.org OK\n"
        );
        let index = h.list().unwrap();
        assert!(index.contains("jane@x.org"));
        assert_eq!(index.allocated_mb(), 77);
        let mode = std::fs::metadata(h.passwd_path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o640);
    }

    #[test]
    fn a_failing_reload_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let h = host(dir.path(), Some("echo broken >&2; exit 3"));
        let err = h.create(&mailbox("jane@x.org", None)).unwrap_err();
        assert!(err.to_string().contains("broken"), "{err}");
        assert!(!h.passwd_path().exists());
        assert!(!h.map_path().exists());
    }

    #[test]
    fn a_read_only_passwd_file_fails_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let h = host(dir.path(), None);
        h.create(&mailbox("first@x.org", None)).unwrap();
        std::fs::set_permissions(h.passwd_path(), std::fs::Permissions::from_mode(0o440)).unwrap();
        let err = h.create(&mailbox("jane@x.org", None)).unwrap_err();
        assert!(matches!(err, ProvisionError::Write { .. }), "{err}");
        assert_eq!(
            std::fs::read_to_string(h.map_path()).unwrap(),
            "first@x.org OK\n"
        );
        std::fs::set_permissions(h.passwd_path(), std::fs::Permissions::from_mode(0o640)).unwrap();
        assert_eq!(
            h.create(&mailbox("jane@x.org", None)).unwrap(),
            Created::Created
        );
    }

    #[test]
    fn appends_see_edits_made_outside_and_refuse_a_half_line() {
        let dir = tempfile::tempdir().unwrap();
        let h = host(dir.path(), None);
        h.create(&mailbox("first@x.org", None)).unwrap();
        // An edit by hand between two creates is read, not overwritten.
        let mut text = std::fs::read_to_string(h.passwd_path()).unwrap();
        text.push_str("hand@x.org:{PLAIN}pw:5000:5000::/h::\n");
        std::fs::write(h.passwd_path(), &text).unwrap();
        assert_eq!(
            h.create(&mailbox("Hand@x.org", None)).unwrap(),
            Created::AlreadyExists
        );
        h.create(&mailbox("second@x.org", Some(5))).unwrap();
        let after = std::fs::read_to_string(h.passwd_path()).unwrap();
        assert!(after.starts_with(&text), "{after}");
        assert_eq!(h.list().unwrap().len(), 3);
        assert_eq!(h.list().unwrap().allocated_mb(), 5);

        // A last line without its newline: reported, and nothing added.
        std::fs::write(h.passwd_path(), "first@x.org:{PLAIN}pw:5000:5000::/h::").unwrap();
        let map_before = std::fs::read_to_string(h.map_path()).unwrap();
        assert!(matches!(
            h.write_problem(),
            Some(ProvisionError::Unterminated { .. })
        ));
        let err = h.create(&mailbox("third@x.org", None)).unwrap_err();
        assert!(matches!(err, ProvisionError::Unterminated { .. }), "{err}");
        assert_eq!(
            std::fs::read_to_string(h.passwd_path()).unwrap(),
            "first@x.org:{PLAIN}pw:5000:5000::/h::"
        );
        assert_eq!(std::fs::read_to_string(h.map_path()).unwrap(), map_before);
    }

    #[test]
    fn a_mailbox_changes_in_place_and_is_removed_whole() {
        let dir = tempfile::tempdir().unwrap();
        let h = host(dir.path(), None);
        h.create(&mailbox("ann@x.org", Some(100))).unwrap();
        h.create(&mailbox("jane@x.org", None)).unwrap();
        let mut text = std::fs::read_to_string(h.passwd_path()).unwrap();
        text.push_str("# kept\nhand@x.org:{PLAIN}pw:5000:5000::/h::userdb_mail=maildir:~/M\n");
        std::fs::write(h.passwd_path(), &text).unwrap();

        h.change("jane@x.org", &MailboxChange::Quota(Some(250)))
            .unwrap();
        h.change("jane@x.org", &MailboxChange::Suspended(true))
            .unwrap();
        let jane = h.list().unwrap().get("jane@x.org").unwrap();
        assert_eq!((jane.quota_mb, jane.suspended), (Some(250), true));
        h.change("jane@x.org", &MailboxChange::Suspended(false))
            .unwrap();
        h.change("jane@x.org", &MailboxChange::Password("{PLAIN}new".into()))
            .unwrap();
        h.change("hand@x.org", &MailboxChange::Quota(Some(5)))
            .unwrap();
        let after = std::fs::read_to_string(h.passwd_path()).unwrap();
        assert!(after.contains("jane@x.org:{PLAIN}new:5000:5000::/var/vmail/x.org/jane::userdb_quota_rule=*:storage=250M\n"), "{after}");
        assert!(after.contains("# kept\n"), "{after}");
        assert!(
            after.contains("hand@x.org:{PLAIN}pw:5000:5000::/h::userdb_mail=maildir:~/M userdb_quota_rule=*:storage=5M"),
            "other extra fields stay: {after}"
        );
        assert!(!h.list().unwrap().get("jane@x.org").unwrap().suspended);
        assert!(matches!(
            h.change("nobody@x.org", &MailboxChange::Suspended(true)),
            Err(ProvisionError::Invalid(_))
        ));

        // Removed: both lines go, the others stay, the mail folder is kept.
        let home = dir.path().join("home");
        assert_eq!(
            h.remove("ann@x.org", false).unwrap(),
            MailFolder::Kept("/var/vmail/x.org/ann".into())
        );
        let passwd = std::fs::read_to_string(h.passwd_path()).unwrap();
        assert!(!passwd.contains("ann@x.org") && passwd.contains("jane@x.org"));
        assert_eq!(
            std::fs::read_to_string(h.map_path()).unwrap(),
            "jane@x.org OK\n"
        );
        assert!(!h.list().unwrap().contains("ann@x.org"));
        assert!(!home.exists());
        // A failing reload puts both back.
        let broken = host(dir.path(), Some("exit 4"));
        assert!(broken.remove("jane@x.org", false).is_err());
        assert!(
            std::fs::read_to_string(h.passwd_path())
                .unwrap()
                .contains("jane@x.org")
        );
        assert_eq!(
            std::fs::read_to_string(h.map_path()).unwrap(),
            "jane@x.org OK\n"
        );
    }

    #[test]
    fn only_a_mailbox_s_own_folder_is_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().join("x.org");
        std::fs::create_dir_all(&shared).unwrap();
        let mut config = Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        // One folder per domain: removing one mailbox must not take it.
        config.mail_host.home = format!("{}/%d", dir.path().display());
        let h = PasswdFileHost::from_config(&config);
        h.create(&mailbox("ann@x.org", None)).unwrap();
        h.create(&mailbox("bob@x.org", None)).unwrap();
        assert_eq!(h.remove("ann@x.org", true).unwrap(), MailFolder::Unknown);
        assert!(shared.exists());
        // Its own folder goes when asked.
        config.mail_host.home = format!("{}/%d/%n", dir.path().display());
        let h = PasswdFileHost::from_config(&config);
        h.create(&mailbox("cat@y.org", None)).unwrap();
        let own = dir.path().join("y.org/cat");
        std::fs::create_dir_all(own.join("Maildir")).unwrap();
        assert!(matches!(
            h.remove("cat@y.org", true).unwrap(),
            MailFolder::Deleted(_)
        ));
        assert!(!own.exists());
        // A mailbox that never got mail has no folder: said so, not "deleted".
        h.create(&mailbox("dan@y.org", None)).unwrap();
        assert_eq!(
            h.remove("dan@y.org", true).unwrap(),
            MailFolder::Absent(dir.path().join("y.org/dan").display().to_string())
        );
    }

    #[test]
    fn refuses_fields_that_would_break_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let h = host(dir.path(), None);
        let mut m = mailbox("jane@x.org", None);
        m.password_hash = "a:b".into();
        assert!(matches!(h.create(&m), Err(ProvisionError::Invalid(_))));
    }
}
