//! The embedded default: with no relay configured, each message is
//! written atomically as an `.eml` file in `<data>/outbox/`.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::compose::Outgoing;
use super::smtp::Outcome;

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
            std::fs::create_dir_all(&self.dir)?;
            let mut f = std::fs::File::create(&tmp)?;
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
