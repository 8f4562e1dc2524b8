//! Read and write views over one transaction. Reads are shared by both
//! (generated once by `read_methods!`); writes keep every index in step
//! with the invite they describe.

use std::path::Path;

use redb::{
    ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata,
    TableDefinition, WriteTransaction,
};
use time::OffsetDateTime;

use super::tables::*;
use super::{AuditEvent, Batch, MailboxRecord, Result, StoreError, Task, decode, encode, millis};
use crate::domain::invite::{Delivery, Invite, LinkState};

pub struct View {
    pub(super) txn: ReadTransaction,
}

pub struct WriteView {
    pub(super) txn: WriteTransaction,
    /// Run once the transaction is committed (and dropped if it is not).
    after: std::cell::RefCell<Vec<Box<dyn FnOnce()>>>,
}

/// A page of invites and the cursor for the next one.
#[derive(Debug, Clone, Default)]
pub struct InvitePage {
    pub invites: Vec<Invite>,
    pub next_cursor: Option<String>,
}

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct InviteFilter {
    pub batch_id: Option<String>,
    pub state: Option<String>,
    pub text: Option<String>,
}

/// Which audit events to list: all given conditions hold.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// The kind: `invite`, `batch`, `admin`, `token`, `mailbox` (the
    /// action's first word), or one whole action such as `invite.revoke`.
    pub kind: Option<String>,
    /// Part of the actor, any case: an admin's address, a token's name, a
    /// client address.
    pub actor: Option<String>,
    /// Events at or after this time (ms since the epoch).
    pub from_ms: Option<u64>,
    /// Events before this time (ms since the epoch).
    pub until_ms: Option<u64>,
}

impl AuditFilter {
    fn matches(&self, e: &AuditEvent) -> bool {
        let kind_ok = self.kind.as_deref().is_none_or(|k| {
            k.is_empty()
                || e.action == k
                || e.action.split('.').next() == Some(k)
                // `mailbox` takes the bulk creations too.
                || (k == "mailbox" && e.action.starts_with("mailboxes."))
        });
        // What is stored or what the page shows: either finds the event.
        let actor_ok = self.actor.as_deref().is_none_or(|a| {
            let a = a.to_lowercase();
            a.is_empty()
                || e.actor.0.to_lowercase().contains(&a)
                || e.actor.words().to_lowercase().contains(&a)
        });
        kind_ok && actor_ok
    }
}

/// What `state` may name besides a link or delivery state.
const GROUP_STATES: [&str; 4] = ["pending", "expiring", "new_link_requested", "setup_failed"];

impl InviteFilter {
    /// Every state the filter knows, in the order a person would look.
    pub fn states() -> Vec<&'static str> {
        GROUP_STATES
            .into_iter()
            .chain(LinkState::ALL.map(LinkState::as_str))
            .chain(crate::domain::invite::Delivery::NAMES)
            .collect()
    }

    /// A state the filter does not know, in words naming those it does.
    pub fn unknown_state(&self) -> Option<String> {
        let state = self.state.as_deref().filter(|s| !s.is_empty())?;
        let known = Self::states();
        (!known.contains(&state)).then(|| {
            format!(
                "{state:?} is not a state to filter by; use one of: {}",
                known.join(", ")
            )
        })
    }

    fn matches(&self, i: &Invite, now: OffsetDateTime) -> bool {
        // A revoke of "all in this batch" acts on what this returns. An
        // empty `batch_id=` means no batch filter, as an empty text does.
        if self
            .batch_id
            .as_deref()
            .is_some_and(|b| !b.is_empty() && b != i.batch_id)
        {
            return false;
        }
        if let Some(state) = &self.state {
            let link = i.link_state(now).as_str();
            let delivery = i.delivery.name();
            let asked = state.as_str();
            let ok = match asked {
                "pending" => i.counts_as_pending(now),
                "new_link_requested" => i.new_link_requested_at.is_some(),
                "setup_failed" => i.setup_failed(now),
                "expiring" => i.expiring_soon(now),
                _ => link == asked || delivery == asked,
            };
            if !ok {
                return false;
            }
        }
        if let Some(text) = &self.text {
            let t = text.to_lowercase();
            if !(i.recipient_email.to_string().to_lowercase().contains(&t)
                || i.mailbox.to_string().contains(&t)
                || i.display_name
                    .as_deref()
                    .is_some_and(|d| d.to_lowercase().contains(&t)))
            {
                return false;
            }
        }
        true
    }
}

/// Every table, empty: what a read finds in a table the store lacks.
fn empty_tables() -> Result<&'static redb::Database> {
    static EMPTY: std::sync::OnceLock<redb::Database> = std::sync::OnceLock::new();
    if let Some(db) = EMPTY.get() {
        return Ok(db);
    }
    let db = redb::Database::builder()
        .create_with_backend(redb::backends::InMemoryBackend::new())
        .map_err(|e| StoreError::Open {
            path: ":memory:".into(),
            message: e.to_string(),
        })?;
    let txn = db.begin_write()?;
    create_tables(&txn)?;
    txn.commit()?;
    Ok(EMPTY.get_or_init(|| db))
}

pub(super) fn create_tables(txn: &WriteTransaction) -> Result<()> {
    macro_rules! create {
        ($($def:expr),*) => {$(
            txn.open_table($def)?;
        )*};
    }
    all_tables!(create);
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

pub fn hex_hash(hash: &[u8; 32]) -> String {
    hex(hash)
}

macro_rules! read_methods {
    () => {
        pub fn batch(&self, id: &str) -> Result<Option<Batch>> {
            let t = self.open(BATCHES)?;
            t.get(id)?
                .map(|v| decode("batches", id, v.value()))
                .transpose()
        }

        pub fn invite(&self, id: &str) -> Result<Option<Invite>> {
            let t = self.open(INVITES)?;
            t.get(id)?
                .map(|v| decode("invites", id, v.value()))
                .transpose()
        }

        /// The invite whose current token hashes to `hash`, unless revoked.
        pub fn invite_by_token(&self, hash: &[u8; 32]) -> Result<Option<Invite>> {
            let id = {
                let t = self.open(INVITE_BY_TOKEN)?;
                t.get(hash.as_slice())?.map(|v| v.value().to_string())
            };
            match id {
                Some(id) => self.invite(&id),
                None => Ok(None),
            }
        }

        /// The invite holding a place for `mailbox`, with its expiry in ms.
        pub fn open_invite_for(&self, mailbox: &str) -> Result<Option<(String, u64)>> {
            let t = self.open(OPEN_BY_MAILBOX)?;
            Ok(t.get(mailbox)?.map(|v| {
                let (id, exp) = v.value();
                (id.to_string(), exp)
            }))
        }

        /// Invites holding a place under `domain`'s cap at `now`: the
        /// counter minus those already past expiry but not yet swept.
        pub fn pending_count(&self, domain: &str, now: OffsetDateTime) -> Result<u64> {
            let total = self
                .open(OPEN_COUNT)?
                .get(domain)?
                .map(|v| v.value())
                .unwrap_or(0);
            let by_expiry = self.open(OPEN_BY_EXPIRY)?;
            let now_ms = millis(now);
            let mut expired = 0u64;
            for entry in by_expiry.range((domain, 0u64, "")..=(domain, now_ms, "\u{10ffff}"))? {
                entry?;
                expired += 1;
            }
            Ok(total.saturating_sub(expired))
        }

        /// Revoked invites whose email is neither sent nor settled as not
        /// sent (a revoke cut short before its second commit, say): every
        /// invite read, so for the worker's start only.
        pub fn revoked_unsettled(&self) -> Result<Vec<String>> {
            let t = self.open(INVITES)?;
            let mut out = Vec::new();
            // Only revoked invites are decoded.
            for entry in t.iter()? {
                let (id, v) = entry?;
                if !crate::store::may_be_revoked(v.value()) {
                    continue;
                }
                let invite: Invite = decode("invites", id.value(), v.value())?;
                // An outbox file a revoke could not remove is tried again.
                let outboxed = matches!(invite.delivery, Delivery::InOutbox { .. });
                if invite.link == LinkState::Revoked && (!invite.delivery.is_final() || outboxed) {
                    out.push(invite.id);
                }
            }
            Ok(out)
        }

        pub fn invites_of_batch(&self, batch_id: &str) -> Result<Vec<Invite>> {
            let ids: Vec<String> = {
                let t = self.open(INVITES_BY_BATCH)?;
                let mut ids = Vec::new();
                for entry in t.range((batch_id, "")..(batch_id, "\u{10ffff}"))? {
                    ids.push(entry?.0.value().1.to_string());
                }
                ids
            };
            let t = self.open(INVITES)?;
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                if let Some(v) = t.get(id.as_str())? {
                    out.push(decode("invites", &id, v.value())?);
                }
            }
            Ok(out)
        }

        /// Invites newest first (ids are ULIDs), filtered, `limit` per page.
        /// The cursor is the id of the last invite of the previous page.
        pub fn list_invites(
            &self,
            filter: &InviteFilter,
            cursor: Option<&str>,
            limit: usize,
            now: OffsetDateTime,
        ) -> Result<InvitePage> {
            let t = self.open(INVITES)?;
            let iter = match cursor {
                Some(c) => t.range::<&str>(..c)?,
                None => t.range::<&str>(..)?,
            };
            let mut page = InvitePage::default();
            for entry in iter.rev() {
                let (k, v) = entry?;
                let invite: Invite = decode("invites", k.value(), v.value())?;
                if !filter.matches(&invite, now) {
                    continue;
                }
                if page.invites.len() == limit {
                    page.next_cursor = page.invites.last().map(|i| i.id.clone());
                    break;
                }
                page.invites.push(invite);
            }
            Ok(page)
        }

        /// Invites by link state and by delivery state at `now` (reads every invite).
        pub fn invite_state_counts(
            &self,
            now: OffsetDateTime,
        ) -> Result<(
            std::collections::BTreeMap<&'static str, u64>,
            std::collections::BTreeMap<&'static str, u64>,
        )> {
            let t = self.open(INVITES)?;
            let (mut links, mut deliveries) = (
                std::collections::BTreeMap::new(),
                std::collections::BTreeMap::new(),
            );
            for entry in t.iter()? {
                let (k, v) = entry?;
                let invite: Invite = decode("invites", k.value(), v.value())?;
                *links.entry(invite.link_state(now).as_str()).or_insert(0) += 1;
                *deliveries.entry(invite.delivery.name()).or_insert(0) += 1;
            }
            Ok((links, deliveries))
        }

        pub fn invite_count(&self) -> Result<u64> {
            Ok(self.open(INVITES)?.len()?)
        }

        pub fn batches(&self) -> Result<Vec<Batch>> {
            let t = self.open(BATCHES)?;
            let mut out = Vec::new();
            for entry in t.iter()?.rev() {
                let (k, v) = entry?;
                out.push(decode("batches", k.value(), v.value())?);
            }
            Ok(out)
        }

        pub fn created_mailbox(&self, address: &str) -> Result<Option<MailboxRecord>> {
            let t = self.open(MAILBOXES)?;
            t.get(address)?
                .map(|v| decode("mailboxes", address, v.value()))
                .transpose()
        }

        /// The addresses of the mailboxes Muster created, sorted.
        pub fn created_mailbox_addresses(&self) -> Result<Vec<String>> {
            let t = self.open(MAILBOXES)?;
            let mut out = Vec::new();
            for entry in t.iter()? {
                out.push(entry?.0.value().to_string());
            }
            Ok(out)
        }

        pub fn created_mailbox_count(&self) -> Result<u64> {
            Ok(self.open(MAILBOXES)?.len()?)
        }

        pub fn created_mailboxes(&self) -> Result<Vec<MailboxRecord>> {
            let t = self.open(MAILBOXES)?;
            let mut out = Vec::new();
            for entry in t.iter()? {
                let (k, v) = entry?;
                out.push(decode("mailboxes", k.value(), v.value())?);
            }
            Ok(out)
        }

        /// Up to `limit` tasks due at or before `now`, earliest first,
        /// passing over (without decoding) those `skip` names.
        pub fn due_tasks(
            &self,
            now: OffsetDateTime,
            limit: usize,
            skip: &dyn Fn(&str) -> bool,
        ) -> Result<Vec<(u64, Task)>> {
            self.due_tasks_after(None, now, limit, skip)
        }

        /// As [`Self::due_tasks`], starting after the task key `after`
        /// (its due time and id) when one is given.
        pub fn due_tasks_after(
            &self,
            after: Option<(u64, &str)>,
            now: OffsetDateTime,
            limit: usize,
            skip: &dyn Fn(&str) -> bool,
        ) -> Result<Vec<(u64, Task)>> {
            use std::ops::Bound;
            let t = self.open(TASKS)?;
            let mut out = Vec::new();
            let start = match after {
                Some(key) => Bound::Excluded(key),
                None => Bound::Included((0u64, "")),
            };
            let end = Bound::Included((millis(now), "\u{10ffff}"));
            for entry in t.range::<(u64, &str)>((start, end))? {
                if out.len() == limit {
                    break;
                }
                let (k, v) = entry?;
                let (due, id) = k.value();
                if skip(id) {
                    continue;
                }
                out.push((due, decode("tasks", id, v.value())?));
            }
            Ok(out)
        }

        /// The queued task with this id, if there is one.
        pub fn task(&self, id: &str) -> Result<Option<Task>> {
            let Some(due) = self.task_due(id)? else {
                return Ok(None);
            };
            match self.open(TASKS)?.get((due, id))? {
                Some(v) => Ok(Some(decode("tasks", id, v.value())?)),
                None => Ok(None),
            }
        }

        /// When the task `id` is due (ms), if it is queued.
        pub fn task_due(&self, id: &str) -> Result<Option<u64>> {
            Ok(self.open(TASK_DUE)?.get(id)?.map(|v| v.value()))
        }

        /// Every task in the queue, due or planned (reminders ahead).
        pub fn task_count(&self) -> Result<u64> {
            Ok(self.open(TASKS)?.len()?)
        }

        /// Tasks due at or before `now`: what is waiting to be sent.
        pub fn due_task_count(&self, now: OffsetDateTime) -> Result<u64> {
            let t = self.open(TASKS)?;
            let mut n = 0;
            for entry in t.range((0u64, "")..=(millis(now), "\u{10ffff}"))? {
                entry?;
                n += 1;
            }
            Ok(n)
        }

        /// The earliest due time in the queue.
        pub fn next_due(&self) -> Result<Option<u64>> {
            Ok(self.open(TASKS)?.first()?.map(|(k, _)| k.value().0))
        }

        /// Invites whose redemption began and did not finish.
        pub fn redeeming(&self) -> Result<Vec<String>> {
            let t = self.open(REDEEMING)?;
            let mut out = Vec::new();
            for entry in t.iter()? {
                out.push(entry?.0.value().to_string());
            }
            Ok(out)
        }

        pub fn counter(&self, name: &str) -> Result<u64> {
            Ok(self
                .open(COUNTERS)?
                .get(name)?
                .map(|v| v.value())
                .unwrap_or(0))
        }

        pub fn counters(&self) -> Result<Vec<(String, u64)>> {
            let t = self.open(COUNTERS)?;
            let mut out = Vec::new();
            for entry in t.iter()? {
                let (k, v) = entry?;
                out.push((k.value().to_string(), v.value()));
            }
            Ok(out)
        }

        /// Audit events newest first, before `cursor` (an event's `at` ms and id).
        pub fn audit(&self, before: Option<(u64, &str)>, limit: usize) -> Result<Vec<AuditEvent>> {
            self.audit_matching(before, limit, &AuditFilter::default())
        }

        /// The events `filter` takes, newest first, before `cursor`: the
        /// dates bound the range read, the rest is checked per event.
        pub fn audit_matching(
            &self,
            before: Option<(u64, &str)>,
            limit: usize,
            filter: &AuditFilter,
        ) -> Result<Vec<AuditEvent>> {
            let t = self.open(AUDIT)?;
            let until = filter.until_ms.map(|ms| (ms, ""));
            let upper = match (before, until) {
                (Some(b), Some(u)) => Some(b.min(u)),
                (b, u) => b.or(u),
            };
            let lower = (filter.from_ms.unwrap_or(0), "");
            let iter = match upper {
                Some(u) if u <= lower => return Ok(Vec::new()),
                Some(u) => t.range(lower..u)?,
                None => t.range(lower..)?,
            };
            let mut out = Vec::new();
            for entry in iter.rev() {
                if out.len() >= limit {
                    break;
                }
                let (k, v) = entry?;
                let event: AuditEvent = decode("audit", k.value().1, v.value())?;
                if filter.matches(&event) {
                    out.push(event);
                }
            }
            Ok(out)
        }
    };
}

impl View {
    pub(super) fn new(txn: ReadTransaction) -> Self {
        Self { txn }
    }

    /// A table to read. Opened read-only beside an older Muster, the store
    /// may lack a table added since (its writer makes it at its next
    /// start): that table reads as empty.
    pub(super) fn open<K: redb::Key + 'static, V: redb::Value + 'static>(
        &self,
        def: TableDefinition<K, V>,
    ) -> Result<ReadOnlyTable<K, V>> {
        match self.txn.open_table(def) {
            Err(redb::TableError::TableDoesNotExist(_)) => {
                Ok(empty_tables()?.begin_read()?.open_table(def)?)
            }
            other => Ok(other?),
        }
    }

    pub fn schema_version(&self) -> Result<u32> {
        Ok(self
            .txn
            .open_table(META)?
            .get("schema_version")?
            .and_then(|v| v.value().try_into().ok().map(u32::from_be_bytes))
            .unwrap_or(0))
    }

    read_methods!();
}

impl WriteView {
    pub(super) fn new(txn: WriteTransaction) -> Self {
        Self {
            txn,
            after: Default::default(),
        }
    }

    read_methods!();

    pub(super) fn open<K: redb::Key + 'static, V: redb::Value + 'static>(
        &self,
        def: TableDefinition<K, V>,
    ) -> Result<redb::Table<'_, K, V>> {
        Ok(self.txn.open_table(def)?)
    }

    /// Runs `f` once this transaction is committed: telling a worker
    /// about what it wrote before then would let it look too early.
    pub fn after_commit(&self, f: impl FnOnce() + 'static) {
        self.after.borrow_mut().push(Box::new(f));
    }

    pub(super) fn commit(self) -> Result<()> {
        self.txn.commit()?;
        for f in self.after.into_inner() {
            f();
        }
        Ok(())
    }

    pub fn put_batch(&self, batch: &Batch) -> Result<()> {
        self.txn
            .open_table(BATCHES)?
            .insert(batch.id.as_str(), encode(batch).as_slice())?;
        Ok(())
    }

    /// Writes `new` and brings every index in line with it; `old` is what
    /// the store held before (None for a new invite).
    pub fn put_invite(&self, old: Option<&Invite>, new: &Invite) -> Result<()> {
        self.txn
            .open_table(INVITES)?
            .insert(new.id.as_str(), encode(new).as_slice())?;
        if old.is_none() {
            self.txn
                .open_table(INVITES_BY_BATCH)?
                .insert((new.batch_id.as_str(), new.id.as_str()), ())?;
        }
        // The token index holds the current hash unless the link was revoked.
        let token_key = |i: &Invite| -> Option<[u8; 32]> {
            (i.link != LinkState::Revoked).then_some(i.token_hash.0)
        };
        let (old_key, new_key) = (old.and_then(token_key), token_key(new));
        if old_key != new_key {
            let mut t = self.txn.open_table(INVITE_BY_TOKEN)?;
            if let Some(k) = old_key {
                t.remove(k.as_slice())?;
            }
            if let Some(k) = new_key {
                t.insert(k.as_slice(), new.id.as_str())?;
            }
        }
        let was_redeeming = old.is_some_and(|i| i.link == LinkState::Redeeming);
        if was_redeeming != (new.link == LinkState::Redeeming) {
            let mut t = self.txn.open_table(REDEEMING)?;
            if was_redeeming {
                t.remove(new.id.as_str())?;
            } else {
                t.insert(new.id.as_str(), millis(OffsetDateTime::now_utc()))?;
            }
        }
        // Places under the cap: live, blocked or redeeming, until expiry.
        // A password reset's mailbox exists already: it holds no place.
        let holds = |i: &Invite| i.purpose.is_setup() && i.link.holds_place();
        let old_place = old.filter(|i| holds(i)).map(|i| {
            (
                i.domain().to_string(),
                i.mailbox.to_string(),
                millis(i.expires_at),
            )
        });
        let new_place = holds(new).then(|| {
            (
                new.domain().to_string(),
                new.mailbox.to_string(),
                millis(new.expires_at),
            )
        });
        if old_place != new_place {
            let mut by_mailbox = self.txn.open_table(OPEN_BY_MAILBOX)?;
            let mut by_expiry = self.txn.open_table(OPEN_BY_EXPIRY)?;
            let mut counts = self.txn.open_table(OPEN_COUNT)?;
            if let Some((domain, mailbox, exp)) = &old_place {
                by_mailbox.remove(mailbox.as_str())?;
                by_expiry.remove((domain.as_str(), *exp, new.id.as_str()))?;
                let n = counts.get(domain.as_str())?.map(|v| v.value()).unwrap_or(0);
                counts.insert(domain.as_str(), n.saturating_sub(1))?;
            }
            if let Some((domain, mailbox, exp)) = &new_place {
                by_mailbox.insert(mailbox.as_str(), (new.id.as_str(), *exp))?;
                by_expiry.insert((domain.as_str(), *exp, new.id.as_str()), ())?;
                let n = counts.get(domain.as_str())?.map(|v| v.value()).unwrap_or(0);
                counts.insert(domain.as_str(), n + 1)?;
            }
        }
        Ok(())
    }

    /// Invites of `domain` whose place has expired by `now` (for the sweep).
    pub fn expired_open_invites(
        &self,
        domain: &str,
        now: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<String>> {
        let t = self.txn.open_table(OPEN_BY_EXPIRY)?;
        let mut out = Vec::new();
        for entry in t
            .range((domain, 0u64, "")..=(domain, millis(now), "\u{10ffff}"))?
            .take(limit)
        {
            out.push(entry?.0.value().2.to_string());
        }
        Ok(out)
    }

    /// Queues `task` at `due`, replacing any queued task with the same id.
    pub fn put_task(&self, task: &Task, due: OffsetDateTime) -> Result<()> {
        self.remove_task(&task.id)?;
        let due = millis(due);
        self.txn
            .open_table(TASKS)?
            .insert((due, task.id.as_str()), encode(task).as_slice())?;
        self.txn
            .open_table(TASK_DUE)?
            .insert(task.id.as_str(), due)?;
        Ok(())
    }

    pub fn remove_task(&self, id: &str) -> Result<bool> {
        let due = self
            .txn
            .open_table(TASK_DUE)?
            .remove(id)?
            .map(|v| v.value());
        if let Some(due) = due {
            self.txn.open_table(TASKS)?.remove((due, id))?;
        }
        Ok(due.is_some())
    }

    pub fn put_mailbox(&self, record: &MailboxRecord) -> Result<()> {
        self.txn
            .open_table(MAILBOXES)?
            .insert(record.address.as_str(), encode(record).as_slice())?;
        Ok(())
    }

    /// Forgets a mailbox Muster created; true when there was one.
    pub fn remove_mailbox(&self, address: &str) -> Result<bool> {
        Ok(self.txn.open_table(MAILBOXES)?.remove(address)?.is_some())
    }

    pub fn audit_event(&self, event: &AuditEvent) -> Result<()> {
        self.txn.open_table(AUDIT)?.insert(
            (millis(event.at), event.id.as_str()),
            encode(event).as_slice(),
        )?;
        Ok(())
    }

    pub fn lower(&self, counter: &str, by: u64) -> Result<()> {
        let mut t = self.txn.open_table(COUNTERS)?;
        let n = t.get(counter)?.map(|v| v.value()).unwrap_or(0);
        t.insert(counter, n.saturating_sub(by))?;
        Ok(())
    }

    /// The next number of a sequence (1, 2, …), kept with the counters.
    pub fn next_number(&self, sequence: &str) -> Result<u64> {
        let mut t = self.txn.open_table(COUNTERS)?;
        let n = t.get(sequence)?.map(|v| v.value()).unwrap_or(0) + 1;
        t.insert(sequence, n)?;
        Ok(n)
    }

    pub fn set_counter(&self, counter: &str, value: u64) -> Result<()> {
        self.txn.open_table(COUNTERS)?.insert(counter, value)?;
        Ok(())
    }

    pub fn bump(&self, counter: &str, by: u64) -> Result<()> {
        let mut t = self.txn.open_table(COUNTERS)?;
        let n = t.get(counter)?.map(|v| v.value()).unwrap_or(0);
        t.insert(counter, n + by)?;
        Ok(())
    }
}

/// Copies every table of `src` into a fresh store file at `dest`.
pub(super) fn copy_all(src: &View, dest: &Path) -> Result<()> {
    let db = redb::Database::create(dest).map_err(|e| StoreError::Open {
        path: dest.to_path_buf(),
        message: e.to_string(),
    })?;
    super::owner_only(dest);
    let dst = db.begin_write()?;
    // A table a newer Muster added and the running (older) one has not
    // made yet is copied as empty.
    macro_rules! copy {
        ($($def:expr),*) => {$({
            let mut to = dst.open_table($def)?;
            for entry in src.open($def)?.iter()? {
                let (k, v) = entry?;
                to.insert(k.value(), v.value())?;
            }
        })*};
    }
    all_tables!(copy);
    dst.commit()?;
    Ok(())
}
