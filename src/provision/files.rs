//! Safe rewrites of files other programs read: a lock file against other
//! writers, a temporary file renamed into place, owner, group and mode
//! kept, and the mtime moved to a new second so Dovecot notices.

use std::fs::{self, File, FileTimes, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

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

/// The file's text and metadata, or None when it does not exist yet.
pub(crate) fn read_optional(path: &Path) -> Result<Option<(String, fs::Metadata)>, ProvisionError> {
    match fs::read(path) {
        Ok(bytes) => {
            let meta = fs::metadata(path).map_err(|source| ProvisionError::Read {
                path: show(path),
                source,
            })?;
            let text = String::from_utf8(bytes).map_err(|_| ProvisionError::Read {
                path: show(path),
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8"),
            })?;
            Ok(Some((text, meta)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ProvisionError::Read {
            path: show(path),
            source,
        }),
    }
}

/// Replaces `path` with `content` atomically. `old` is the metadata of
/// the file being replaced: its owner, group and mode are kept, and the
/// new mtime is at least one whole second after the old one.
pub(crate) fn replace(
    path: &Path,
    content: &[u8],
    old: Option<&fs::Metadata>,
) -> Result<(), ProvisionError> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(|e| write_error(dir, e))?;
    // An existing file we may not write stays untouched, even though the
    // folder would allow a rename over it.
    if let Some(meta) = old
        && !writable(path, meta)
    {
        return Err(write_error(
            path,
            std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        ));
    }
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(path.file_name().unwrap_or_default());
    tmp_name.push(".muster-tmp");
    let tmp = path.with_file_name(tmp_name);
    let result = (|| {
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(content)?;
        let mode = old
            .map(|m| m.permissions().mode() & 0o7777)
            .unwrap_or(0o640);
        if let Some(m) = old
            && (m.uid() != file.metadata()?.uid() || m.gid() != file.metadata()?.gid())
        {
            std::os::unix::fs::fchown(&file, Some(m.uid()), Some(m.gid()))?;
        }
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.set_times(FileTimes::new().set_modified(next_mtime(old)))?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(write_error(path, e));
    }
    Ok(())
}

/// Whether this process may write the file, judged by its mode bits (the
/// superuser may write anything that has any write bit).
fn writable(path: &Path, meta: &fs::Metadata) -> bool {
    // SAFETY: access(2) on a NUL-terminated path.
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap_or_default();
    let ok = unsafe { libc::access(c.as_ptr(), libc::W_OK) } == 0;
    let root = unsafe { libc::geteuid() } == 0;
    ok && (!root || meta.permissions().mode() & 0o222 != 0)
}

/// Dovecot checks mtime in whole seconds: a rewrite in the same second as
/// the last one would go unseen, so move to a later second.
fn next_mtime(old: Option<&fs::Metadata>) -> SystemTime {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let after_old = old.map(|m| m.mtime().max(0) as u64 + 1).unwrap_or(0);
    SystemTime::UNIX_EPOCH + Duration::from_secs(now.max(after_old))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_keeps_mode_and_moves_mtime() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("passwd");
        fs::write(&path, "a\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let old = fs::metadata(&path).unwrap();
        replace(&path, b"a\nb\n", Some(&old)).unwrap();
        let new = fs::metadata(&path).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "a\nb\n");
        assert_eq!(new.permissions().mode() & 0o777, 0o640);
        assert!(new.mtime() > old.mtime());
        // Twice in a row still moves to a new second each time.
        replace(&path, b"a\nb\nc\n", Some(&new)).unwrap();
        assert!(fs::metadata(&path).unwrap().mtime() > new.mtime());
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
