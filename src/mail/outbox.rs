//! The embedded default: with no relay configured, each message is
//! written atomically as an `.eml` file in `<data>/outbox/`. The files hold
//! live setup and reset links: readable by their owner and group (whatever
//! sends them on), never by others, whatever the umask.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::compose::Outgoing;
use super::smtp::Outcome;

/// The outbox file of an invite's email at `generation` (`<id>.eml`, then
/// `<id>-r<N>.eml` after the Nth resend), as the worker names it.
pub fn invite_file(id: &str, generation: u32) -> String {
    match generation {
        0 => id.to_string(),
        g => format!("{id}-r{g}"),
    }
}

/// The outbox file of reminder number `n` about the link of `generation`
/// (`<id>-reminder<N>.eml`, `<id>-r<G>-reminder<N>.eml` after a resend):
/// a late outcome of an old link's reminder never names a newer one's file.
pub fn reminder_file(id: &str, generation: u32, n: usize) -> String {
    format!("{}-reminder{n}", invite_file(id, generation))
}

/// Removes an outbox file whose link no longer works, lest someone deliver
/// it. True when it is gone (or never was); a failure is logged.
pub fn remove_dead(path: &Path) -> bool {
    // Looked at first: on a read-only folder even a file that is not
    // there fails to be removed, with a warning that would mislead.
    if std::fs::symlink_metadata(path).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound) {
        return true;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {
            tracing::info!(file = %path.display(), "removed from the outbox: its link no longer works");
            true
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "cannot remove a dead link's email from the outbox: do not deliver it, remove it by hand (a revoked invite's is tried again at the next start)");
            false
        }
    }
}

#[derive(Debug, Clone)]
pub struct Outbox {
    dir: PathBuf,
}

impl Outbox {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `<name>.eml` (temporary file, fsync, rename).
    pub fn write(&self, name: &str, msg: &Outgoing) -> Outcome {
        let path = self.dir.join(format!("{name}.eml"));
        let tmp = self.dir.join(format!(".{name}.eml.tmp"));
        let result = (|| -> std::io::Result<()> {
            if !self.dir.exists() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o750)
                    .create(&self.dir)?;
            }
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o640)
                .open(&tmp)?;
            f.write_all(&msg.bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            std::fs::File::open(&self.dir)?.sync_all()
        })();
        match result {
            Ok(()) => Outcome::Written(path.display().to_string()),
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Outcome::Trouble(crate::domain::delivery::Trouble::Write(format!(
                    "cannot write {}: {e}",
                    path.display()
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn each_links_files_have_names_of_their_own() {
        assert_eq!(invite_file("01J", 0), "01J");
        assert_eq!(invite_file("01J", 2), "01J-r2");
        assert_eq!(reminder_file("01J", 0, 1), "01J-reminder1");
        assert_eq!(reminder_file("01J", 2, 1), "01J-r2-reminder1");
        assert_ne!(reminder_file("01J", 1, 1), reminder_file("01J", 2, 1));
    }

    #[test]
    fn others_cannot_read_the_links_in_the_outbox() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::new(dir.path().join("outbox"));
        let msg = Outgoing {
            from: "muster@m.example".into(),
            to: "jo@elsewhere.org".into(),
            message_id: "<1@m.example>".into(),
            bytes: b"Subject: x\r\n\r\nhttp://m.example/invite/secret\r\n".to_vec(),
        };
        let Outcome::Written(file) = outbox.write("one", &msg) else {
            panic!("not written");
        };
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode();
        assert_eq!(mode(Path::new(&file)) & 0o007, 0);
        assert_eq!(mode(outbox.dir()) & 0o007, 0);
    }
}
