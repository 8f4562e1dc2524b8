//! Admins, their sessions, one-time links, API tokens and idempotency
//! records: the reads both views share and the writes.

use redb::{ReadableTable, ReadableTableMetadata};
use time::OffsetDateTime;

use super::tables::*;
use super::view::{View, WriteView};
use super::{
    Admin, ApiToken, IdempotencyRecord, OneTimePurpose, OneTimeToken, Result, Session, decode,
    encode, millis,
};

macro_rules! account_reads {
    () => {
        pub fn admin(&self, email: &str) -> Result<Option<Admin>> {
            let t = self.open(ADMINS)?;
            t.get(email)?
                .map(|v| decode("admins", email, v.value()))
                .transpose()
        }

        pub fn admin_count(&self) -> Result<u64> {
            Ok(self.open(ADMINS)?.len()?)
        }

        pub fn session(&self, hash: &[u8; 32]) -> Result<Option<Session>> {
            let t = self.open(SESSIONS)?;
            t.get(hash.as_slice())?
                .map(|v| decode("sessions", "session", v.value()))
                .transpose()
        }

        pub fn one_time_token(&self, hash: &[u8; 32]) -> Result<Option<OneTimeToken>> {
            let t = self.open(ONE_TIME_TOKENS)?;
            t.get(hash.as_slice())?
                .map(|v| decode("one_time_tokens", "token", v.value()))
                .transpose()
        }

        /// Reset requests not yet looked at.
        pub fn reset_requests_waiting(&self) -> Result<u64> {
            Ok(self.open(RESET_REQUESTS)?.len()?)
        }

        pub fn api_token(&self, id: &str) -> Result<Option<ApiToken>> {
            let t = self.open(API_TOKENS)?;
            t.get(id)?
                .map(|v| decode("api_tokens", id, v.value()))
                .transpose()
        }

        pub fn api_token_by_hash(&self, hash: &[u8; 32]) -> Result<Option<ApiToken>> {
            let id = self
                .open(API_TOKEN_BY_HASH)?
                .get(hash.as_slice())?
                .map(|v| v.value().to_string());
            match id {
                Some(id) => self.api_token(&id),
                None => Ok(None),
            }
        }

        pub fn api_tokens(&self) -> Result<Vec<ApiToken>> {
            let t = self.open(API_TOKENS)?;
            let mut out = Vec::new();
            for entry in t.iter()? {
                let (k, v) = entry?;
                out.push(decode("api_tokens", k.value(), v.value())?);
            }
            Ok(out)
        }

        pub fn idempotency(&self, principal: &str, key: &str) -> Result<Option<IdempotencyRecord>> {
            let t = self.open(IDEMPOTENCY)?;
            t.get((principal, key))?
                .map(|v| decode("idempotency", key, v.value()))
                .transpose()
        }
    };
}

impl View {
    account_reads!();
}

impl WriteView {
    account_reads!();

    pub fn put_admin(&self, admin: &Admin) -> Result<()> {
        self.txn
            .open_table(ADMINS)?
            .insert(admin.email.as_str(), encode(admin).as_slice())?;
        Ok(())
    }

    pub fn put_session(&self, hash: &[u8; 32], session: &Session) -> Result<()> {
        self.txn
            .open_table(SESSIONS)?
            .insert(hash.as_slice(), encode(session).as_slice())?;
        Ok(())
    }

    pub fn remove_session(&self, hash: &[u8; 32]) -> Result<()> {
        self.txn.open_table(SESSIONS)?.remove(hash.as_slice())?;
        Ok(())
    }

    /// Ends every session of `email` (after a password change).
    pub fn remove_sessions_of(&self, email: &str) -> Result<()> {
        self.txn.open_table(SESSIONS)?.retain(|_, v| {
            serde_json::from_slice::<Session>(v)
                .map(|s| s.admin_email != email)
                .unwrap_or(false)
        })?;
        Ok(())
    }

    /// Records a "forgot password" request, known account or not.
    pub fn put_reset_request(&self, id: &str, email: &str) -> Result<()> {
        self.txn.open_table(RESET_REQUESTS)?.insert(id, email)?;
        Ok(())
    }

    /// When the last reset link for `email` was sent, and records `now` as
    /// the new time when `now` is given.
    pub fn reset_last_sent(
        &self,
        email: &str,
        now: Option<OffsetDateTime>,
    ) -> Result<Option<OffsetDateTime>> {
        let mut t = self.txn.open_table(RESET_LAST_SENT)?;
        let last = t
            .get(email)?
            .and_then(|v| OffsetDateTime::from_unix_timestamp(v.value() as i64).ok());
        if let Some(now) = now {
            t.insert(email, now.unix_timestamp().max(0) as u64)?;
        }
        Ok(last)
    }

    /// Takes up to `limit` reset requests, oldest first.
    pub fn take_reset_requests(&self, limit: usize) -> Result<Vec<String>> {
        let mut t = self.txn.open_table(RESET_REQUESTS)?;
        let mut taken = Vec::new();
        while taken.len() < limit {
            match t.pop_first()? {
                Some((_, email)) => taken.push(email.value().to_string()),
                None => break,
            }
        }
        Ok(taken)
    }

    pub fn put_one_time_token(&self, hash: &[u8; 32], token: &OneTimeToken) -> Result<()> {
        self.txn
            .open_table(ONE_TIME_TOKENS)?
            .insert(hash.as_slice(), encode(token).as_slice())?;
        Ok(())
    }

    /// Marks every unused password-reset link of `email` used, so none of
    /// them works any more; returns their ids.
    pub fn retire_reset_links(&self, email: &str) -> Result<Vec<String>> {
        let mut t = self.txn.open_table(ONE_TIME_TOKENS)?;
        let mut live = Vec::new();
        for row in t.iter()? {
            let (hash, value) = row?;
            let Ok(token) = serde_json::from_slice::<OneTimeToken>(value.value()) else {
                continue;
            };
            if !token.used
                && matches!(&token.purpose, OneTimePurpose::PasswordReset { email: e } if e == email)
            {
                live.push((hash.value().to_vec(), token));
            }
        }
        let mut ids = Vec::with_capacity(live.len());
        for (hash, mut token) in live {
            token.used = true;
            t.insert(hash.as_slice(), encode(&token).as_slice())?;
            ids.push(token.id);
        }
        Ok(ids)
    }

    pub fn put_api_token(&self, hash: Option<&[u8; 32]>, token: &ApiToken) -> Result<()> {
        self.txn
            .open_table(API_TOKENS)?
            .insert(token.id.as_str(), encode(token).as_slice())?;
        if let Some(hash) = hash {
            self.txn
                .open_table(API_TOKEN_BY_HASH)?
                .insert(hash.as_slice(), token.id.as_str())?;
        }
        Ok(())
    }

    pub fn put_idempotency(
        &self,
        principal: &str,
        key: &str,
        record: &IdempotencyRecord,
    ) -> Result<()> {
        self.txn
            .open_table(IDEMPOTENCY)?
            .insert((principal, key), encode(record).as_slice())?;
        Ok(())
    }

    /// Drops expired sessions and one-time links, and idempotency records
    /// older than `keep_idempotency_until`.
    pub fn purge(&self, now: OffsetDateTime, idempotency_before: OffsetDateTime) -> Result<()> {
        self.txn.open_table(SESSIONS)?.retain(|_, v| {
            serde_json::from_slice::<Session>(v).is_ok_and(|s| s.expires_at > now)
        })?;
        self.txn.open_table(ONE_TIME_TOKENS)?.retain(|_, v| {
            serde_json::from_slice::<OneTimeToken>(v).is_ok_and(|t| t.expires_at > now)
        })?;
        let cutoff = millis(idempotency_before);
        self.txn.open_table(IDEMPOTENCY)?.retain(|_, v| {
            serde_json::from_slice::<IdempotencyRecord>(v)
                .is_ok_and(|r| millis(r.created_at) >= cutoff)
        })?;
        Ok(())
    }
}
