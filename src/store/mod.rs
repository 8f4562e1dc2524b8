//! The store: one redb file in the data folder. Table definitions live in
//! [`tables`]; this module opens the file, checks its schema version, and
//! offers read and write views with the lookups the rest of Muster uses.

pub mod accounts;
mod mta_sts;
mod records;
pub mod tables;
pub mod view;
pub mod webhooks;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable};
use serde::{Serialize, de::DeserializeOwned};

pub use records::*;
pub use view::{View, WriteView, hex_hash};

/// Bumped when a table's layout changes in a way older builds cannot read.
/// 2: a revoked invite's email that never went is `withdrawn` (1 stored it
/// as failed; opening a version 1 store rewrites those records).
pub const SCHEMA_VERSION: u32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the store {0} is in use by another Muster process (is `muster serve` running?); stop it first, or use the HTTP API"
    )]
    Locked(PathBuf),
    #[error(
        "the store {path} was written by a newer Muster (schema {found}, this build reads up to {supported}); run the newer version or restore a backup"
    )]
    NewerSchema {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("cannot create the data folder {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the store {path} cannot be opened: {message}")]
    Open { path: PathBuf, message: String },
    /// redb stopped at an inconsistency in the file (it panics on some).
    #[error(
        "the store {0} is damaged: its pages do not hold together. Put the latest backup in its place with `muster restore FILE` (the damaged file is kept beside it)"
    )]
    Damaged(PathBuf),
    #[error("the store {0} is open read-only here")]
    ReadOnly(PathBuf),
    /// The file was deleted or swapped while Muster held it: what would be
    /// written now would be lost at the next start.
    #[error(
        "the store {0} was removed, or another file moved into its place, while Muster ran; nothing more is written: stop Muster, put the store back (muster restore FILE from a backup), then start it again"
    )]
    Gone(PathBuf),
    #[error("the store failed: {0}")]
    Db(redb::Error),
    /// redb refuses all writes after a failed one until it is reopened.
    #[error(
        "an earlier write to the store failed (is the disk full?); free space, then restart Muster"
    )]
    NeedsRestart,
    #[error("a stored record is unreadable ({table}/{key}): {message}")]
    Corrupt {
        table: &'static str,
        key: String,
        message: String,
    },
}

impl StoreError {
    /// The store cannot take writes now (a full disk, a failed write):
    /// nothing the caller did wrong, and nothing to retry until Muster is
    /// restarted with space freed.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::NeedsRestart | StoreError::Db(redb::Error::Io(_)) | StoreError::Gone(_)
        )
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                match e.into() {
                    redb::Error::PreviousIo => StoreError::NeedsRestart,
                    other => StoreError::Db(other),
                }
            }
        }
    )*};
}
from_redb!(
    redb::Error,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Clone)]
pub struct Store {
    db: Arc<Db>,
    path: PathBuf,
    /// Set once a write fails in a way only a restart cures.
    broken: Arc<std::sync::atomic::AtomicBool>,
    /// The opened file's device and inode, to notice it removed or swapped.
    file: Option<(u64, u64)>,
}

enum Db {
    ReadWrite(Database),
    /// Opened beside a running writer, for previews and backups.
    ReadOnly(redb::ReadOnlyDatabase),
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

/// redb's page cache (its default is 1 GiB, filled by every page written):
/// the kernel's page cache holds the file too, so a small one keeps memory
/// low without slowing reads much (benches/preview: ratio 1.05 / 1.14 / 1.26
/// at 4 MiB; benches/load: peak 5 MiB lower than at 16 MiB).
const CACHE_BYTES: usize = 4 << 20;

/// The store holds password hashes and sessions' CSRF tokens: whatever
/// the umask made of it, only its owner reads it. (A failure is left to
/// the open that follows or came before: nothing more can be done here.)
pub(crate) fn owner_only(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    }
}

impl Store {
    /// Opens (or creates) the store at `path`. Fails at once, without
    /// waiting, when another process has it open.
    pub fn open(path: &Path) -> Result<Self> {
        damage_named(path, || Self::open_unguarded(path))
    }

    fn open_unguarded(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::DataDir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        // SingleWriter: one writer; `muster backup` may read alongside it.
        let db = Database::builder()
            .set_concurrency_mode(redb::ConcurrencyMode::SingleWriter)
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen
                | redb::DatabaseError::LockProtocolMismatch => {
                    StoreError::Locked(path.to_path_buf())
                }
                other => StoreError::Open {
                    path: path.to_path_buf(),
                    message: other.to_string(),
                },
            })?;
        owner_only(path);
        let mut store = Self::init(db, path.to_path_buf())?;
        store.file = file_id(path);
        Ok(store)
    }

    /// Opens an existing store for reading only; works while `muster serve`
    /// has it open. A store that needs recovery after a crash is refused
    /// until the writer has opened it once.
    pub fn open_read_only(path: &Path) -> Result<Self> {
        damage_named(path, || Self::open_read_only_unguarded(path))
    }

    fn open_read_only_unguarded(path: &Path) -> Result<Self> {
        let db = Database::builder()
            .set_concurrency_mode(redb::ConcurrencyMode::SingleWriter)
            .open_read_only(path)
            .map_err(|e| StoreError::Open {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        let store = Self {
            db: Arc::new(Db::ReadOnly(db)),
            path: path.to_path_buf(),
            broken: Default::default(),
            file: None,
        };
        let found = store.read()?.schema_version()?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                path: path.to_path_buf(),
                found,
                supported: SCHEMA_VERSION,
            });
        }
        Ok(store)
    }

    /// An in-memory store, for unit tests and benchmarks.
    pub fn in_memory() -> Result<Self> {
        let db = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(|e| StoreError::Open {
                path: PathBuf::from(":memory:"),
                message: e.to_string(),
            })?;
        Self::init(db, PathBuf::from(":memory:"))
    }

    fn init(db: Database, path: PathBuf) -> Result<Self> {
        let txn = db.begin_write()?;
        {
            let mut meta = txn.open_table(tables::META)?;
            let found = meta
                .get("schema_version")?
                .and_then(|v| v.value().try_into().ok().map(u32::from_be_bytes));
            match found {
                Some(v) if v > SCHEMA_VERSION => {
                    return Err(StoreError::NewerSchema {
                        path,
                        found: v,
                        supported: SCHEMA_VERSION,
                    });
                }
                Some(v) if v < 2 => {
                    let n = withdrawn_from_failed(&txn)?;
                    if n > 0 {
                        tracing::info!(
                            invites = n,
                            "revoked invites' unsent emails now read withdrawn, not failed"
                        );
                    }
                    meta.insert("schema_version", SCHEMA_VERSION.to_be_bytes().as_slice())?;
                }
                Some(_) => {}
                None => {
                    meta.insert("schema_version", SCHEMA_VERSION.to_be_bytes().as_slice())?;
                }
            }
        }
        view::create_tables(&txn)?;
        txn.commit()?;
        Ok(Self {
            db: Arc::new(Db::ReadWrite(db)),
            path,
            broken: Default::default(),
            file: None,
        })
    }

    /// Whether the file opened is no longer at its path (deleted, or
    /// another file put there): a write now would go to a file nobody
    /// opens again.
    pub fn gone(&self) -> bool {
        let Some(opened) = self.file else {
            return false;
        };
        match std::fs::metadata(&self.path) {
            Ok(m) => {
                use std::os::unix::fs::MetadataExt;
                (m.dev(), m.ino()) != opened
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
            // A passing failure to look (EIO, ESTALE) is not proof.
            Err(_) => false,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn read(&self) -> Result<View> {
        let txn = match &*self.db {
            Db::ReadWrite(db) => db.begin_read()?,
            Db::ReadOnly(db) => db.begin_read()?,
        };
        Ok(View::new(txn))
    }

    /// Runs `f` in one write transaction: committed durably when it returns
    /// Ok, rolled back entirely when it returns Err.
    pub fn write<T, E>(&self, f: impl FnOnce(&WriteView) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let Db::ReadWrite(db) = &*self.db else {
            return Err(StoreError::ReadOnly(self.path.clone()).into());
        };
        if self.gone() {
            self.broken.store(true, std::sync::atomic::Ordering::SeqCst);
            return Err(StoreError::Gone(self.path.clone()).into());
        }
        let txn = db.begin_write().map_err(|e| self.note(e.into()))?;
        let view = WriteView::new(txn);
        let out = f(&view)?;
        view.commit().map_err(|e| E::from(self.note(e)))?;
        Ok(out)
    }

    fn note(&self, e: StoreError) -> StoreError {
        if matches!(
            e,
            StoreError::NeedsRestart | StoreError::Db(redb::Error::Io(_))
        ) {
            self.broken.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        e
    }

    /// True after a write failure only a restart cures (redb then refuses
    /// every write); `muster serve` exits so its supervisor restarts it.
    pub fn needs_restart(&self) -> bool {
        self.broken.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Refuses before work elsewhere (on the mail host) that a write here
    /// must then record, when the store takes no writes.
    pub fn ensure_writable(&self) -> Result<()> {
        if self.gone() {
            return Err(StoreError::Gone(self.path.clone()));
        }
        if self.needs_restart() {
            return Err(StoreError::NeedsRestart);
        }
        Ok(())
    }

    /// What keeps the store from taking writes, in words for `/readyz` and
    /// the log; None when it takes them.
    pub fn problem(&self) -> Option<String> {
        if self.gone() {
            Some(StoreError::Gone(self.path.clone()).to_string())
        } else if self.needs_restart() {
            Some(StoreError::NeedsRestart.to_string())
        } else {
            None
        }
    }

    /// Copies every table into a new store file at `dest`, from one
    /// consistent snapshot.
    pub fn backup_to(&self, dest: &Path) -> Result<()> {
        view::copy_all(&self.read()?, dest)
    }
}

thread_local! {
    /// Set while this thread opens a store: a panic there is kept here
    /// (where, and what it said) instead of reported as a crash.
    static OPENING: std::cell::RefCell<Option<Option<(String, String)>>> =
        const { std::cell::RefCell::new(None) };
}

/// Runs an open of the store at `path`, turning a panic inside redb (it
/// panics on some damaged pages instead of returning an error) into
/// [`StoreError::Damaged`]. Any other panic there is Muster's own fault,
/// named as such with where it happened.
fn damage_named(path: &Path, open: impl FnOnce() -> Result<Store>) -> Result<Store> {
    static QUIET_HOOK: std::sync::Once = std::sync::Once::new();
    QUIET_HOOK.call_once(|| {
        let report = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let kept = OPENING.with(|o| match &mut *o.borrow_mut() {
                Some(slot) => {
                    let place = info.location().map(|l| l.to_string()).unwrap_or_default();
                    let said = info
                        .payload()
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| info.payload().downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    *slot = Some((place, said));
                    true
                }
                None => false,
            });
            if !kept {
                report(info);
            }
        }));
    });
    OPENING.with(|o| *o.borrow_mut() = Some(None));
    let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(open));
    let panic = OPENING.with(|o| o.borrow_mut().take()).flatten();
    opened.unwrap_or_else(|_| {
        let (place, said) = panic.unwrap_or_default();
        tracing::warn!(path = %path.display(), at = %place, "opening the store stopped: {said}");
        if place.contains("/redb-") || place.contains("/redb/") {
            Err(StoreError::Damaged(path.to_path_buf()))
        } else {
            Err(StoreError::Open {
                path: path.to_path_buf(),
                message: format!("Muster stopped at a fault of its own ({said} at {place}); report it, with the log"),
            })
        }
    })
}

/// A file's device and inode, when it is there.
fn file_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Whether a stored invite record may be a revoked one, without decoding
/// it: in the compact JSON the link field can only read so as the field
/// itself (a string holding the text has its quotes escaped).
pub(crate) fn may_be_revoked(record: &[u8]) -> bool {
    static REVOKED: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(br#""link":"revoked""#));
    REVOKED.find(record).is_some()
}

/// Schema 1 to 2: the emails of revoked invites that were recorded as
/// failed with the words a revoke wrote ("not sent: …", "removed from the
/// outbox: …") become withdrawn. Any other failure stays a failure.
fn withdrawn_from_failed(txn: &redb::WriteTransaction) -> Result<u64> {
    use crate::domain::invite::{Delivery, Invite, LinkState};
    const BY_REVOKE: [&str; 2] = [Delivery::UNSENT_BY_REVOKE, Delivery::OUTBOXED_BY_REVOKE];
    let mut invites = txn.open_table(tables::INVITES)?;
    let mut changed = Vec::new();
    for entry in invites.iter()? {
        let (id, v) = entry?;
        if !may_be_revoked(v.value()) {
            continue;
        }
        let mut invite: Invite = decode("invites", id.value(), v.value())?;
        if let Delivery::Failed { at, reply } = &invite.delivery
            && invite.link == LinkState::Revoked
            && BY_REVOKE.contains(&reply.as_str())
        {
            invite.delivery = Delivery::Withdrawn {
                at: *at,
                reason: reply.clone(),
            };
            changed.push((id.value().to_string(), encode(&invite)));
        }
    }
    for (id, bytes) in &changed {
        invites.insert(id.as_str(), bytes.as_slice())?;
    }
    Ok(changed.len() as u64)
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("records serialise to JSON")
}

pub(crate) fn decode<T: DeserializeOwned>(
    table: &'static str,
    key: &str,
    bytes: &[u8],
) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        table,
        key: key.to_string(),
        message: e.to_string(),
    })
}

/// Milliseconds since the epoch, the time unit of keys.
pub fn millis(t: time::OffsetDateTime) -> u64 {
    (t.unix_timestamp_nanos() / 1_000_000).max(0) as u64
}

#[cfg(test)]
mod tests;
