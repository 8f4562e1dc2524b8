//! Safe changes to files other programs read: a lock file against other
//! writers, and appends that are synced before they count and undone when
//! a later step fails. An append always grows the file, so Dovecot (which
//! re-reads when the size or the whole-second mtime changes) sees it, and
//! the mtime stays the clock's.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::ProvisionError;

fn show(path: &Path) -> String {
    path.display().to_string()
}

pub(crate) fn write_error(path: &Path, source: std::io::Error) -> ProvisionError {
    ProvisionError::Write {
        path: show(path),
        source,
    }
}

fn read_error(path: &Path, source: std::io::Error) -> ProvisionError {
    ProvisionError::Read {
        path: show(path),
        source,
    }
}

/// What identifies one version of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
}

impl Stamp {
    pub(crate) fn of(meta: &fs::Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
        }
    }

    /// The file's stamp now, or None when it does not exist.
    pub(crate) fn now(path: &Path) -> Result<Option<Self>, ProvisionError> {
        match fs::metadata(path) {
            Ok(meta) => Ok(Some(Self::of(&meta))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(read_error(path, e)),
        }
    }
}

/// An exclusive advisory lock on `<file>.lock`, released on drop. Other
/// tools that edit the file should take the same lock (`flock`).
pub(crate) struct FileLock {
    _file: File,
}

pub(crate) fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    path.with_file_name(name)
}

pub(crate) fn lock(path: &Path, wait: Duration) -> Result<FileLock, ProvisionError> {
    let lock = lock_path(path);
    if let Some(dir) = lock.parent() {
        fs::create_dir_all(dir).map_err(|e| write_error(dir, e))?;
    }
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&lock)
        .map_err(|e| write_error(&lock, e))?;
    let deadline = Instant::now() + wait;
    loop {
        // SAFETY: flock on a descriptor this function owns.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(FileLock { _file: file });
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(write_error(&lock, err));
        }
        if Instant::now() >= deadline {
            return Err(ProvisionError::Locked {
                path: show(path),
                lock: show(&lock),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The file's text, or None when it does not exist yet.
pub(crate) fn read_optional(path: &Path) -> Result<Option<String>, ProvisionError> {
    match fs::read(path) {
        Ok(bytes) => String::from_utf8(bytes).map(Some).map_err(|_| {
            read_error(
                path,
                std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8"),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(read_error(path, e)),
    }
}

/// Refuses a file whose last line has no newline: a line appended to it
/// would join that line, and it may be a half-written edit.
fn ensure_terminated(path: &Path, file: &File, len: u64) -> Result<(), ProvisionError> {
    if len == 0 {
        return Ok(());
    }
    let mut last = [0u8; 1];
    file.read_exact_at(&mut last, len - 1)
        .map_err(|e| read_error(path, e))?;
    if last[0] != b'\n' {
        return Err(ProvisionError::Unterminated { path: show(path) });
    }
    Ok(())
}

/// Why Muster must not append to this file now, if so: a last line
/// without a newline (an append cut short), or a file it cannot read. A
/// missing file is fine (it is created).
pub fn append_problem(path: &Path) -> Option<ProvisionError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => return Some(read_error(path, e)),
    };
    let len = match file.metadata() {
        Ok(m) => m.len(),
        Err(e) => return Some(read_error(path, e)),
    };
    ensure_terminated(path, &file, len).err()
}

/// Why Muster could not write this file or its folder now, if it could
/// not (the folder takes the file's rewrites and its creation). Asked
/// with access(2), so a read-only mount says so even to root, and nothing
/// is opened for writing (a watcher on the file would take that for a
/// change).
pub fn write_access_problem(path: &Path) -> Option<ProvisionError> {
    if let Some(dir) = path.parent().filter(|d| d.exists())
        && let Err(e) = may_write(dir)
    {
        return Some(write_error(dir, e));
    }
    match may_write(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Some(write_error(path, e)),
        _ => None,
    }
}

/// Whether this process may write `path` (a read-only mount says so even
/// to root).
fn may_write(path: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: access() reads the NUL-terminated path and nothing else.
    if unsafe { libc::access(path.as_ptr(), libc::W_OK) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// An append that has reached the disk, and how to take it back.
pub(crate) struct Appended {
    path: PathBuf,
    /// The length before the append; None when the append created the file.
    old_len: Option<u64>,
    /// The file's stamp right after the append.
    pub(crate) stamp: Stamp,
}

/// The `dovecot` group's id, where the system has one.
pub fn dovecot_gid() -> Option<u32> {
    fs::read_to_string("/etc/group").ok().and_then(|g| {
        g.lines()
            .find(|l| l.starts_with("dovecot:"))
            .and_then(|l| l.split(':').nth(2))
            .and_then(|n| n.parse().ok())
    })
}

/// A group's name from /etc/group, else its number.
pub fn group_name(gid: u32) -> String {
    fs::read_to_string("/etc/group")
        .ok()
        .and_then(|g| {
            g.lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|f| f.len() > 2 && f[2] == gid.to_string())
                .map(|f| f[0].to_string())
        })
        .unwrap_or_else(|| gid.to_string())
}

/// Whether this process may give a file it owns to group `gid`: root, or
/// a member of the group.
pub fn may_give_group(gid: u32) -> bool {
    // SAFETY: geteuid, getegid and getgroups on a buffer of the size given.
    unsafe {
        if libc::geteuid() == 0 || libc::getegid() == gid {
            return true;
        }
        let mut groups = vec![0 as libc::gid_t; 256];
        let n = libc::getgroups(groups.len() as libc::c_int, groups.as_mut_ptr());
        n > 0 && groups[..n as usize].contains(&gid)
    }
}

/// Appends whole lines to `path` and syncs them. A new file is created
/// with mode 0640 (the folder synced too), in `group` when given (the
/// group that must read it, Dovecot's); an existing one keeps its owner,
/// group and mode. A failed write leaves the file as it was.
pub(crate) fn append(
    path: &Path,
    lines: &[u8],
    group: Option<u32>,
) -> Result<Appended, ProvisionError> {
    debug_assert!(lines.ends_with(b"\n"));
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let existing = match OpenOptions::new().read(true).append(true).open(path) {
        Ok(file) => Some(file),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(write_error(path, e)),
    };
    let Some(file) = existing else {
        fs::create_dir_all(dir).map_err(|e| write_error(dir, e))?;
        let made = (|| {
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)?;
            file.set_permissions(fs::Permissions::from_mode(0o640))?;
            // A file its reader cannot read would make a mailbox nobody
            // can sign in to: refused, and undone below.
            if let Some(gid) = group {
                std::os::unix::fs::fchown(&file, None, Some(gid)).map_err(|e| {
                    std::io::Error::new(
                        e.kind(),
                        format!(
                            "cannot give it to group {} that Dovecot reads it as ({e}): add Muster's user to that group, or create the file with it (`muster check` says how)",
                            group_name(gid)
                        ),
                    )
                })?;
            }
            file.write_all(lines)?;
            file.sync_all()?;
            File::open(dir)?.sync_all()?;
            file.metadata()
        })();
        return match made {
            Ok(meta) => Ok(Appended {
                path: path.to_path_buf(),
                old_len: None,
                stamp: Stamp::of(&meta),
            }),
            Err(e) => {
                let _ = fs::remove_file(path);
                Err(write_error(path, e))
            }
        };
    };
    let meta = file.metadata().map_err(|e| read_error(path, e))?;
    // The superuser may open any file for writing; a file without write
    // bits is meant to stay as it is.
    if !writable(path, &meta) {
        return Err(write_error(
            path,
            std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        ));
    }
    let old_len = meta.len();
    ensure_terminated(path, &file, old_len)?;
    let written = (|| {
        (&file).write_all(lines)?;
        // After a rewrite dated a second ahead, the clock's time would go
        // back to a second an earlier version may share: keep the later.
        if now_second() < meta.mtime() {
            file.set_modified(at_second(meta.mtime()))?;
        }
        file.sync_data()?;
        file.metadata()
    })();
    match written {
        Ok(meta) => Ok(Appended {
            path: path.to_path_buf(),
            old_len: Some(old_len),
            stamp: Stamp::of(&meta),
        }),
        Err(e) => {
            let _ = file.set_len(old_len).and_then(|_| file.sync_data());
            Err(write_error(path, e))
        }
    }
}

impl Appended {
    /// Takes the lines back out (or removes the file the append created).
    pub(crate) fn undo(self) -> Result<(), ProvisionError> {
        let path = &self.path;
        match self.old_len {
            None => fs::remove_file(path).map_err(|e| write_error(path, e)),
            Some(len) => OpenOptions::new()
                .write(true)
                .open(path)
                .and_then(|f| {
                    f.set_len(len)?;
                    f.sync_data()
                })
                .map_err(|e| write_error(path, e)),
        }
    }
}

fn now_second() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn at_second(second: i64) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + Duration::from_secs(second.max(0) as u64)
}

/// Replaces the file's whole text, for a line that changes or goes: a
/// temporary file beside it with the same group and mode, synced, then
/// renamed over it (the folder synced too). Dovecot re-reads a file when
/// its size or whole-second mtime changes: a rewrite in the same second as
/// the version before is dated one second later, so no two versions share
/// a second and a size, and the mtime stays within a second or two of the
/// clock (rewrites are rare: an admin's change to one mailbox).
pub(crate) fn rewrite(path: &Path, text: &str) -> Result<(), ProvisionError> {
    let meta = fs::metadata(path).map_err(|e| read_error(path, e))?;
    if !writable(path, &meta) {
        return Err(write_error(
            path,
            std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        ));
    }
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.muster-tmp"));
    let done = (|| {
        let _ = fs::remove_file(&tmp);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        // The group Dovecot reads with. The owner stays the file's when
        // root runs this (`sudo muster mailboxes ...`: a root-owned file
        // would lock the service's own user out), else this process. A
        // group Muster cannot give would lock Dovecot out: refuse.
        let owner = running_as_root().then(|| meta.uid());
        let _ = std::os::unix::fs::fchown(&file, owner, Some(meta.gid()));
        if file.metadata()?.gid() != meta.gid() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!(
                    "cannot keep its group (gid {}): add Muster's user to that group",
                    meta.gid()
                ),
            ));
        }
        file.set_permissions(fs::Permissions::from_mode(meta.mode() & 0o7777))?;
        file.write_all(text.as_bytes())?;
        // Every version gets a second of its own: a rewrite in the second
        // of the one before is dated the next second.
        let old_second = meta.mtime();
        if now_second() <= old_second {
            file.set_modified(at_second(old_second + 1))?;
        }
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    done.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        write_error(path, e)
    })
}

/// Whether this process may write the file, judged by its mode bits (the
/// superuser may write anything that has any write bit).
pub fn writable(path: &Path, meta: &fs::Metadata) -> bool {
    may_write(path).is_ok() && (!running_as_root() || meta.permissions().mode() & 0o222 != 0)
}

/// Whether this process runs as the superuser (`sudo muster ...`).
pub fn running_as_root() -> bool {
    // SAFETY: geteuid() has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_says_what_to_do_by_its_cause() {
        let said = |kind| write_error(Path::new("/p"), std::io::Error::from(kind)).to_string();
        assert!(said(std::io::ErrorKind::StorageFull).ends_with("free space on that disk"));
        assert!(
            said(std::io::ErrorKind::ReadOnlyFilesystem).ends_with("read-only: make it writable")
        );
        assert!(
            said(std::io::ErrorKind::PermissionDenied).ends_with("may write it and its folder")
        );
    }

    #[test]
    fn append_keeps_mode_and_earlier_lines_and_undoes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("passwd");
        let first = append(&path, b"a\n", None).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o640
        );
        fs::set_permissions(&path, fs::Permissions::from_mode(0o660)).unwrap();
        let second = append(&path, b"b\n", None).unwrap();
        assert_ne!(first.stamp, second.stamp);
        assert_eq!(fs::read_to_string(&path).unwrap(), "a\nb\n");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o660
        );
        second.undo().unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "a\n");
        first.undo().unwrap();
        assert!(!path.exists());
    }

    /// A new file goes to the group that must read it (Dovecot's); an
    /// existing one keeps its own.
    #[test]
    fn a_new_file_is_given_to_its_readers_group() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("passwd");
        // Root may give any group; anyone else, their own.
        let gid = if unsafe { libc::geteuid() } == 0 {
            65534
        } else {
            unsafe { libc::getegid() }
        };
        assert!(may_give_group(gid));
        append(&path, b"a\n", Some(gid)).unwrap();
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(
            (meta.gid(), meta.permissions().mode() & 0o777),
            (gid, 0o640)
        );
        let own = unsafe { libc::getegid() };
        std::os::unix::fs::chown(&path, None, Some(own)).unwrap();
        append(&path, b"b\n", Some(gid)).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().gid(), own);
    }

    #[test]
    fn a_file_without_a_final_newline_is_not_appended_to() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("passwd");
        fs::write(&path, "a\nhalf").unwrap();
        assert!(matches!(
            append_problem(&path),
            Some(ProvisionError::Unterminated { .. })
        ));
        let err = append(&path, b"b\n", None).err().unwrap();
        assert!(err.to_string().contains("newline"), "{err}");
        assert_eq!(fs::read_to_string(&path).unwrap(), "a\nhalf");
        assert!(append_problem(&dir.path().join("missing")).is_none());
    }

    #[test]
    fn a_rewrite_by_root_keeps_the_files_owner() {
        if !running_as_root() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("passwd");
        append(&path, b"a@x.org:pw:1:1::/h::\n", None).unwrap();
        std::os::unix::fs::chown(&path, Some(12_345), Some(12_346)).unwrap();
        rewrite(&path, "b@x.org:pw:1:1::/h::\n").unwrap();
        let after = fs::metadata(&path).unwrap();
        assert_eq!((after.uid(), after.gid()), (12_345, 12_346));
    }

    #[test]
    fn a_rewrite_keeps_group_and_mode_and_is_always_seen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("passwd");
        append(
            &path,
            b"a@x.org:pw:1:1::/h::userdb_quota_rule=*:storage=100M\n",
            None,
        )
        .unwrap();
        let before = fs::metadata(&path).unwrap();
        // In the same second: dated a second later.
        rewrite(
            &path,
            "a@x.org:pw:1:1::/h::userdb_quota_rule=*:storage=200M\n",
        )
        .unwrap();
        let after = fs::metadata(&path).unwrap();
        assert_eq!(after.mode() & 0o777, 0o640);
        assert_eq!(after.gid(), before.gid());
        assert_eq!(after.len(), before.len());
        assert!(after.mtime() > before.mtime(), "moved to a new second");
        assert!(after.mtime() <= before.mtime() + 2, "and no further");
        assert!(fs::read_to_string(&path).unwrap().contains("200M"));
        assert!(!dir.path().join(".passwd.muster-tmp").exists());
        // An append right after keeps the later second, never an older one.
        append(&path, b"b@x.org:pw:1:1::/h::\n", None).unwrap();
        assert!(fs::metadata(&path).unwrap().mtime() >= after.mtime());
        // A file Muster may not write stays as it was.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o440)).unwrap();
        assert!(rewrite(&path, "").is_err());
        assert!(fs::read_to_string(&path).unwrap().contains("200M"));
    }

    #[test]
    fn a_held_lock_makes_the_second_writer_give_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("passwd");
        let _held = lock(&path, Duration::ZERO).unwrap();
        let second = lock(&path, Duration::from_millis(50));
        assert!(matches!(second, Err(ProvisionError::Locked { .. })));
    }
}
