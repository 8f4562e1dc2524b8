//! The Dovecot passwd-file backend, with the Postfix virtual mailbox map.
//!
//! A line is `user@domain:{SCHEME}hash:uid:gid::home::extra`, where the
//! extra fields may carry `userdb_quota_rule=*:storage=<N>M`. The map has
//! one `user@domain OK` line per mailbox.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::files::{self, read_optional, replace};
use super::{Created, HostIndex, HostMailbox, MailHost, NewMailbox, ProvisionError};
use crate::config::Config;

/// How long a create waits for another writer's lock.
const LOCK_WAIT: Duration = Duration::from_secs(5);

pub struct PasswdFileHost {
    passwd: PathBuf,
    map: PathBuf,
    reload_command: Option<String>,
    uid: u32,
    gid: u32,
    home: String,
    default_quota_mb: Option<u64>,
    /// The index of the file as last read (no stamp: the file is missing).
    cache: Mutex<Option<(Option<Stamp>, Arc<HostIndex>)>>,
}

/// What identifies one version of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
        }
    }
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
            let quota = extra.split_whitespace().find_map(|f| {
                f.strip_prefix("userdb_quota_rule=*:storage=")
                    .and_then(quota_mb)
            });
            Some(HostMailbox {
                address: user,
                quota_mb: quota,
            })
        })
        .collect()
}

fn map_has(text: &str, address: &str) -> bool {
    text.lines()
        .filter_map(|l| l.split_whitespace().next())
        .any(|k| k.eq_ignore_ascii_case(address))
}

fn passwd_has(text: &str, address: &str) -> bool {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split(':').next())
        .any(|u| u.trim().eq_ignore_ascii_case(address))
}

fn with_line(text: &str, line: &str) -> String {
    let mut out = String::with_capacity(text.len() + line.len() + 1);
    out.push_str(text);
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(line);
    out.push('\n');
    out
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

    /// Adds the mailboxes to the map (then reloads) and to the passwd-file,
    /// each in one atomic rewrite. The passwd-file comes last: a mailbox is
    /// usable only once it is there, and a failure before undoes the map.
    fn append(
        &self,
        passwd: Option<(String, std::fs::Metadata)>,
        boxes: &[NewMailbox],
    ) -> Result<(), ProvisionError> {
        let lines = boxes
            .iter()
            .map(|m| self.line_for(m))
            .collect::<Result<Vec<_>, _>>()?;
        let map = read_optional(&self.map)?;
        let map_text = map.as_ref().map(|(t, _)| t.as_str()).unwrap_or("");
        let mut new_map = map_text.to_string();
        for m in boxes {
            if !map_has(&new_map, &m.address.to_string()) {
                new_map = with_line(&new_map, &format!("{} OK", m.address));
            }
        }
        let map_changed = new_map != map_text;
        if map_changed {
            replace(
                &self.map,
                new_map.as_bytes(),
                map.as_ref().map(|(_, meta)| meta),
            )?;
            if let Err(e) = self.run_reload() {
                self.restore_map(map.as_ref());
                return Err(e);
            }
        }
        let mut text = passwd.as_ref().map(|(t, _)| t.clone()).unwrap_or_default();
        for line in &lines {
            text = with_line(&text, line);
        }
        if let Err(e) = replace(
            &self.passwd,
            text.as_bytes(),
            passwd.as_ref().map(|(_, meta)| meta),
        ) {
            if map_changed {
                self.restore_map(map.as_ref());
            }
            return Err(e);
        }
        Ok(())
    }

    /// Puts the map back as it was after a later step failed.
    fn restore_map(&self, old: Option<&(String, std::fs::Metadata)>) {
        let restored = match old {
            Some((text, meta)) => replace(&self.map, text.as_bytes(), Some(meta)),
            None => std::fs::remove_file(&self.map).map_err(|e| files::write_error(&self.map, e)),
        };
        if let Err(e) = restored.and_then(|_| self.run_reload()) {
            tracing::error!(error = %e, map = %self.map.display(), "could not roll back the Postfix map");
        }
    }
}

impl MailHost for PasswdFileHost {
    fn list(&self) -> Result<Arc<HostIndex>, ProvisionError> {
        let meta = match std::fs::metadata(&self.passwd) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // One empty index while the file is missing, so callers
                // that key on the index (the host check) see no change.
                let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
                if let Some((None, index)) = cache.as_ref() {
                    return Ok(index.clone());
                }
                let index = Arc::new(HostIndex::default());
                *cache = Some((None, index.clone()));
                return Ok(index);
            }
            Err(source) => {
                return Err(ProvisionError::Read {
                    path: self.passwd.display().to_string(),
                    source,
                });
            }
        };
        let stamp = Some(Stamp::of(&meta));
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((s, index)) = cache.as_ref()
            && *s == stamp
        {
            return Ok(index.clone());
        }
        let text =
            std::fs::read_to_string(&self.passwd).map_err(|source| ProvisionError::Read {
                path: self.passwd.display().to_string(),
                source,
            })?;
        let index = Arc::new(HostIndex::new(parse_passwd_file(&text)));
        *cache = Some((stamp, index.clone()));
        Ok(index)
    }

    fn create(&self, m: &NewMailbox) -> Result<Created, ProvisionError> {
        let _lock = files::lock(&self.passwd, LOCK_WAIT)?;
        let passwd = read_optional(&self.passwd)?;
        if passwd
            .as_ref()
            .is_some_and(|(t, _)| passwd_has(t, &m.address.to_string()))
        {
            return Ok(Created::AlreadyExists);
        }
        self.append(passwd, std::slice::from_ref(m))?;
        Ok(Created::Created)
    }

    fn create_many(&self, boxes: &[NewMailbox]) -> Result<(), ProvisionError> {
        let _lock = files::lock(&self.passwd, LOCK_WAIT)?;
        let passwd = read_optional(&self.passwd)?;
        if let Some((text, _)) = &passwd
            && let Some(m) = boxes
                .iter()
                .find(|m| passwd_has(text, &m.address.to_string()))
        {
            return Err(ProvisionError::Invalid(format!(
                "the mailbox {} already exists; nothing was created",
                m.address
            )));
        }
        self.append(passwd, boxes)
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
    fn refuses_fields_that_would_break_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let h = host(dir.path(), None);
        let mut m = mailbox("jane@x.org", None);
        m.password_hash = "a:b".into();
        assert!(matches!(h.create(&m), Err(ProvisionError::Invalid(_))));
    }
}
