//! Admin accounts, sessions, the first-run setup link, password resets and
//! API tokens. Secrets are random, shown once, and stored only as hashes.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use time::Duration;

use crate::domain::address::RecipientEmail;
use crate::domain::known_device::{self, KnownDevice};
use crate::domain::password::PasswordProblem;
use crate::domain::token::{LinkToken, TokenPurpose};
use crate::store::{
    Actor, Admin, ApiToken, OneTimePurpose, OneTimeToken, Session, StoreError, Task, TaskKind,
    hex_hash,
};

use super::hashing::Priority;
use super::{Muster, ServiceError, outsiders};

pub const SESSION_HOURS: i64 = 12;
pub const SETUP_LINK_HOURS: i64 = 24;
pub const RESET_LINK_HOURS: i64 = 1;
/// At most one reset email per account in this many minutes.
pub const RESET_THROTTLE_MINUTES: i64 = 5;
/// Reset requests waiting to be looked at, at most.
const MAX_WAITING_RESETS: u64 = 1000;
/// API tokens carry a prefix so secret scanners and people recognise them.
pub const API_TOKEN_PREFIX: &str = "mst_";

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0:?} is not a valid email address: {1}")]
    BadEmail(String, String),
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join(" "))]
    Policy(Vec<PasswordProblem>),
    #[error("an admin {0} already exists")]
    Exists(String),
    #[error("no admin {0}")]
    NoSuchAdmin(String),
    #[error("the email or the password is wrong")]
    WrongCredentials,
    #[error("this link is not valid or has expired")]
    LinkInvalid,
    #[error("no API token {0}")]
    NoSuchToken(String),
    #[error("give the token a name of 1 to 80 characters")]
    BadTokenName,
    #[error(transparent)]
    Service(#[from] ServiceError),
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        AdminError::Service(e.into())
    }
}

/// A new session: the cookie value, the CSRF token the web app sends back,
/// and the browser's fresh mark as a known device (see [`known_device`]).
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub email: String,
    pub cookie: String,
    pub csrf: String,
    pub device_mark: String,
}

/// The result of checking an API token.
#[derive(Debug, Clone)]
pub enum TokenCheck {
    Valid(ApiToken),
    Revoked,
    Unknown,
}

fn sha256(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

/// A valid argon2id hash of nothing anyone knows, so a sign-in for a
/// missing account costs the same time as one for a real account.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$bXVzdGVyZHVtbXk$WMgUTeUMH3sqhCjO8iPbiiwy+2vCh6d5mP1Wr6wV6mI";

impl Muster {
    fn admin_email(raw: &str) -> Result<String, AdminError> {
        RecipientEmail::parse(raw)
            .map(|e| e.to_string().to_lowercase())
            .map_err(|e| AdminError::BadEmail(raw.to_string(), e.to_string()))
    }

    fn check_admin_password(&self, email: &str, password: &str) -> Result<String, AdminError> {
        let (local, domain) = email.split_once('@').unwrap_or((email, ""));
        self.config
            .password_policy
            .check(password, None, local, domain)
            .map_err(AdminError::Policy)?;
        Ok(self.hasher.admin(password).map_err(ServiceError::from)?)
    }

    pub fn admin_count(&self) -> Result<u64, ServiceError> {
        Ok(self.store.read()?.admin_count()?)
    }

    pub fn add_admin(
        &self,
        email: &str,
        password: &str,
        actor: &Actor,
    ) -> Result<String, AdminError> {
        let email = Self::admin_email(email)?;
        let hash = self.check_admin_password(&email, password)?;
        self.store.write(|w| {
            if w.admin(&email)?.is_some() {
                return Err(AdminError::Exists(email.clone()));
            }
            w.put_admin(&Admin {
                email: email.clone(),
                password_hash: hash,
                created_at: self.now(),
            })?;
            self.audit(w, actor, "admin.add", &email, "admin account created")?;
            Ok(email.clone())
        })
    }

    /// Sets a new password and ends the admin's sessions.
    pub fn set_admin_password(
        &self,
        email: &str,
        password: &str,
        actor: &Actor,
    ) -> Result<(), AdminError> {
        let email = Self::admin_email(email)?;
        let hash = self.check_admin_password(&email, password)?;
        let mut dropped = Vec::new();
        self.store.write(|w| -> Result<(), AdminError> {
            let mut admin = w
                .admin(&email)?
                .ok_or_else(|| AdminError::NoSuchAdmin(email.clone()))?;
            admin.password_hash = hash;
            w.put_admin(&admin)?;
            w.remove_sessions_of(&email)?;
            retire_reset_links(w, &email, &mut dropped)?;
            self.audit(
                w,
                actor,
                "admin.password_set",
                &email,
                "password changed; sessions and reset links ended",
            )?;
            Ok(())
        })?;
        self.withdraw(&dropped);
        Ok(())
    }

    fn new_session(
        &self,
        w: &crate::store::WriteView,
        email: &str,
    ) -> Result<SignedIn, StoreError> {
        let cookie = LinkToken::random();
        let now = self.now();
        w.put_session(
            &cookie.hash().0,
            &Session {
                admin_email: email.to_string(),
                csrf_token: String::new(),
                created_at: now,
                expires_at: now + Duration::hours(SESSION_HOURS),
            },
        )?;
        Ok(SignedIn {
            email: email.to_string(),
            csrf: self.csrf_token(&cookie),
            cookie: cookie.as_str().to_string(),
            device_mark: known_device::issue(&self.link_key, email, now, rand::random()),
        })
    }

    /// The browser behind a known-device mark, when it signed in as
    /// `email` before (recently enough).
    pub fn known_device(&self, email: &str, mark: &str) -> Option<KnownDevice> {
        known_device::recognise(
            &self.link_key,
            &email.trim().to_lowercase(),
            mark,
            self.now(),
        )
    }

    /// Checks the credentials; the answer takes the same time whether or
    /// not the account exists. A browser that signed in to the account
    /// before (`device`) is served ahead of strangers when hashing is busy.
    pub fn sign_in(
        &self,
        email: &str,
        password: &str,
        client: &str,
        device: Option<&KnownDevice>,
    ) -> Result<SignedIn, AdminError> {
        let email = email.trim().to_lowercase();
        let admin = self.store.read()?.admin(&email)?;
        let hash = admin
            .as_ref()
            .map(|a| a.password_hash.as_str())
            .unwrap_or(DUMMY_HASH);
        let priority = match device {
            Some(_) => Priority::KnownDevice,
            None => Priority::SignIn,
        };
        let ok = self
            .hasher
            .verify(password, hash, priority)
            .map_err(ServiceError::from)?
            && admin.is_some();
        if !ok {
            // Its own commit: an error returned from a write undoes it.
            let tried: String = email.chars().take(320).collect();
            let tried = crate::domain::preview::visible(&tried);
            // A guess at a real account is always written: it is what an
            // investigation needs, and bounded by the sign-in rate limits.
            let share = match admin {
                Some(_) => outsiders::Share::always(),
                None => self.outsiders.share(self.now()),
            };
            if share.write {
                self.store.write(|w| {
                    self.audit_outsider(
                        w,
                        &share,
                        &Actor(format!("client:{client}")),
                        "admin.sign_in_failed",
                        &tried,
                        "wrong email or password",
                    )
                })?;
            }
            return Err(AdminError::WrongCredentials);
        }
        self.store.write(|w| {
            let signed = self.new_session(w, &email)?;
            self.audit(
                w,
                &Actor::admin(&email),
                "admin.sign_in",
                &email,
                format!("signed in from {client}"),
            )?;
            Ok(signed)
        })
    }

    /// The session behind a cookie value, if it is current, with its CSRF
    /// token.
    pub fn session(&self, cookie: &str) -> Result<Option<Session>, ServiceError> {
        let Some(token) = LinkToken::parse(cookie) else {
            return Ok(None);
        };
        let session = self.store.read()?.session(&token.hash().0)?;
        Ok(session.filter(|s| s.expires_at > self.now()).map(|mut s| {
            if s.csrf_token.is_empty() {
                s.csrf_token = self.csrf_token(&token);
            }
            s
        }))
    }

    /// A session's CSRF token: derived from its cookie with the link key,
    /// so the store holds no secret a page could replay.
    fn csrf_token(&self, cookie: &LinkToken) -> String {
        URL_SAFE_NO_PAD.encode(self.link_key.mac(&[b"csrf", cookie.as_str().as_bytes()]))
    }

    pub fn sign_out(&self, cookie: &str) -> Result<(), ServiceError> {
        if let Some(token) = LinkToken::parse(cookie) {
            self.store.write(|w| {
                if let Some(s) = w.session(&token.hash().0)? {
                    w.remove_session(&token.hash().0)?;
                    self.audit(
                        w,
                        &Actor::admin(&s.admin_email),
                        "admin.sign_out",
                        &s.admin_email,
                        "signed out",
                    )?;
                }
                Ok::<_, ServiceError>(())
            })?;
        }
        Ok(())
    }

    /// At first start, with no admin: a one-time link to create the first one.
    pub fn setup_link(&self) -> Result<Option<String>, ServiceError> {
        if self.admin_count()? > 0 {
            return Ok(None);
        }
        let token = LinkToken::random();
        let record = OneTimeToken {
            id: self.new_id(),
            purpose: OneTimePurpose::AdminSetup,
            expires_at: self.now() + Duration::hours(SETUP_LINK_HOURS),
            used: false,
        };
        self.store
            .write(|w| w.put_one_time_token(&token.hash().0, &record))?;
        // The token travels in the fragment, which browsers never send to servers or logs.
        Ok(Some(format!(
            "{}/setup#{}",
            self.config.public_url(),
            token.as_str()
        )))
    }

    /// Takes a one-time link of `purpose`, marking it used, in the same
    /// transaction as `then`.
    fn use_one_time<T>(
        &self,
        raw: &str,
        purpose: impl Fn(&OneTimePurpose) -> bool,
        then: impl FnOnce(&crate::store::WriteView, &OneTimeToken) -> Result<T, AdminError>,
    ) -> Result<T, AdminError> {
        let token = LinkToken::parse(raw).ok_or(AdminError::LinkInvalid)?;
        let hash = token.hash().0;
        self.store.write(|w| {
            let mut record = w.one_time_token(&hash)?.ok_or(AdminError::LinkInvalid)?;
            if record.used || record.expires_at <= self.now() || !purpose(&record.purpose) {
                return Err(AdminError::LinkInvalid);
            }
            record.used = true;
            w.put_one_time_token(&hash, &record)?;
            then(w, &record)
        })
    }

    /// Creates the first admin from the setup link and signs them in.
    pub fn complete_setup(
        &self,
        raw: &str,
        email: &str,
        password: &str,
    ) -> Result<SignedIn, AdminError> {
        let email = Self::admin_email(email)?;
        let hash = self.check_admin_password(&email, password)?;
        self.use_one_time(
            raw,
            |p| matches!(p, OneTimePurpose::AdminSetup),
            |w, _| {
                if w.admin_count()? > 0 {
                    return Err(AdminError::LinkInvalid);
                }
                w.put_admin(&Admin {
                    email: email.clone(),
                    password_hash: hash,
                    created_at: self.now(),
                })?;
                self.audit(
                    w,
                    &Actor::admin(&email),
                    "admin.add",
                    &email,
                    "first admin, from the setup link",
                )?;
                Ok(self.new_session(w, &email)?)
            },
        )
    }

    /// Records a "forgot password" request and returns: one store write,
    /// the same whether or not the account exists, so neither the answer
    /// nor its timing tells which addresses have accounts. The lookup, the
    /// link and the email follow in [`Muster::process_reset_requests`].
    pub fn request_password_reset(&self, email: &str) -> Result<(), ServiceError> {
        // Longer than any address: keep a bounded, one-line value.
        let email: String = email
            .trim()
            .to_lowercase()
            .chars()
            .filter(|c| !c.is_control())
            .take(254)
            .collect();
        let id = self.new_id();
        self.store.write(|w| {
            // A flood from many addresses is not worth keeping: past this
            // many waiting, a request is answered the same and dropped.
            if w.reset_requests_waiting()? < MAX_WAITING_RESETS {
                w.put_reset_request(&id, &email)?;
            }
            Ok::<_, StoreError>(())
        })?;
        self.reset_requested.notify_one();
        Ok(())
    }

    /// Works through recorded reset requests: for an account, a single-use
    /// link by email, at most one per account every [`RESET_THROTTLE_MINUTES`];
    /// every request is audited. Returns how many were looked at.
    pub fn process_reset_requests(&self) -> Result<usize, ServiceError> {
        let mut done = 0;
        loop {
            let now = self.now();
            let mut dropped = Vec::new();
            let n = self.store.write(|w| -> Result<usize, ServiceError> {
                dropped.clear();
                let requests = w.take_reset_requests(50)?;
                for email in &requests {
                    self.handle_reset_request(w, email, now, &mut dropped)?;
                }
                Ok(requests.len())
            })?;
            self.withdraw(&dropped);
            if n == 0 {
                break;
            }
            done += n;
        }
        if done > 0 {
            self.queue.wake();
        }
        Ok(done)
    }

    fn handle_reset_request(
        &self,
        w: &crate::store::WriteView,
        email: &str,
        now: time::OffsetDateTime,
        dropped: &mut Vec<String>,
    ) -> Result<(), ServiceError> {
        if w.admin(email)?.is_none() {
            let share = self.outsiders.share(now);
            return Ok(self.audit_outsider(
                w,
                &share,
                &Actor::system(),
                "admin.reset_unknown",
                email,
                "password reset asked for an address with no account; nothing sent",
            )?);
        }
        let last = w.reset_last_sent(email, None)?;
        if last.is_some_and(|at| now < at + Duration::minutes(RESET_THROTTLE_MINUTES)) {
            let share = self.outsiders.share(now);
            return Ok(self.audit_outsider(
                w,
                &share,
                &Actor::system(),
                "admin.reset_throttled",
                email,
                format!("a reset link was sent less than {RESET_THROTTLE_MINUTES} minutes ago; none sent"),
            )?);
        }
        w.reset_last_sent(email, Some(now))?;
        // One live reset link per admin: the new one retires the others.
        let retired = retire_reset_links(w, email, dropped)?;
        let id = self.new_id();
        let token = self.token(TokenPurpose::PasswordReset, &id, 0);
        let expires_at = now + Duration::hours(RESET_LINK_HOURS);
        w.put_one_time_token(
            &token.hash().0,
            &OneTimeToken {
                id: id.clone(),
                purpose: OneTimePurpose::PasswordReset {
                    email: email.to_string(),
                },
                expires_at,
                used: false,
            },
        )?;
        w.put_task(
            &Task {
                id: Task::reset_task_id(&id),
                kind: TaskKind::PasswordReset {
                    token_id: id.clone(),
                    email: email.to_string(),
                    expires_at,
                },
                queued_at: now,
                attempts: 0,
            },
            now,
        )?;
        Ok(self.audit(
            w,
            &Actor::system(),
            "admin.reset_requested",
            email,
            if retired == 0 {
                "password reset link queued"
            } else {
                "password reset link queued; the earlier one no longer works"
            },
        )?)
    }

    pub fn reset_password(&self, raw: &str, password: &str) -> Result<String, AdminError> {
        let mut dropped = Vec::new();
        // The email is known only from the link: check the policy inside.
        let email = self.use_one_time(
            raw,
            |p| matches!(p, OneTimePurpose::PasswordReset { .. }),
            |w, record| {
                let OneTimePurpose::PasswordReset { email } = &record.purpose else {
                    return Err(AdminError::LinkInvalid);
                };
                let hash = self.check_admin_password(email, password)?;
                let mut admin = w.admin(email)?.ok_or(AdminError::LinkInvalid)?;
                admin.password_hash = hash;
                w.put_admin(&admin)?;
                w.remove_sessions_of(email)?;
                retire_reset_links(w, email, &mut dropped)?;
                self.audit(
                    w,
                    &Actor::admin(email),
                    "admin.password_reset",
                    email,
                    "password reset with an emailed link",
                )?;
                Ok(email.clone())
            },
        )?;
        self.withdraw(&dropped);
        Ok(email)
    }

    /// Tasks removed in a commit just made: a connection holding one drops it.
    fn withdraw(&self, tasks: &[String]) {
        for task in tasks {
            self.queue.withdraw(task);
        }
    }

    pub fn create_api_token(
        &self,
        name: &str,
        actor: &Actor,
    ) -> Result<(ApiToken, String), AdminError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 80 || name.chars().any(char::is_control) {
            return Err(AdminError::BadTokenName);
        }
        let secret = format!("{API_TOKEN_PREFIX}{}", LinkToken::random().as_str());
        let hash = sha256(&secret);
        let token = ApiToken {
            id: self.new_id(),
            name: name.to_string(),
            secret_hash: hex_hash(&hash),
            created_at: self.now(),
            created_by: actor.clone(),
            last_used_at: None,
            revoked_at: None,
        };
        self.store.write(|w| {
            w.put_api_token(Some(&hash), &token)?;
            self.audit(
                w,
                actor,
                "token.create",
                &token.id,
                format!("API token {:?} created", token.name),
            )?;
            Ok::<_, AdminError>(())
        })?;
        Ok((token, secret))
    }

    pub fn revoke_api_token(&self, id: &str, actor: &Actor) -> Result<ApiToken, AdminError> {
        self.store.write(|w| {
            let mut token = w
                .api_token(id)?
                .ok_or_else(|| AdminError::NoSuchToken(id.to_string()))?;
            if token.revoked_at.is_none() {
                token.revoked_at = Some(self.now());
                w.put_api_token(None, &token)?;
                self.audit(
                    w,
                    actor,
                    "token.revoke",
                    id,
                    format!("API token {:?} revoked", token.name),
                )?;
            }
            Ok(token)
        })
    }

    pub fn api_tokens(&self) -> Result<Vec<ApiToken>, ServiceError> {
        let mut tokens = self.store.read()?.api_tokens()?;
        tokens.sort_by_key(|t| std::cmp::Reverse(t.created_at));
        Ok(tokens)
    }

    /// Checks a bearer secret; records the last use at most once a minute.
    pub fn check_api_token(&self, secret: &str) -> Result<TokenCheck, ServiceError> {
        if !secret.starts_with(API_TOKEN_PREFIX) || secret.len() > 200 {
            return Ok(TokenCheck::Unknown);
        }
        let hash = sha256(secret);
        let Some(token) = self.store.read()?.api_token_by_hash(&hash)? else {
            return Ok(TokenCheck::Unknown);
        };
        if token.revoked_at.is_some() {
            return Ok(TokenCheck::Revoked);
        }
        let now = self.now();
        if token
            .last_used_at
            .is_none_or(|t| now - t > Duration::minutes(1))
        {
            self.store.write(|w| {
                if let Some(mut t) = w.api_token(&token.id)? {
                    t.last_used_at = Some(now);
                    w.put_api_token(None, &t)?;
                    self.audit(
                        w,
                        &Actor::token(&t.name, &t.id),
                        "token.use",
                        &t.id,
                        "API token used",
                    )?;
                }
                Ok::<_, ServiceError>(())
            })?;
        }
        Ok(TokenCheck::Valid(token))
    }
}

/// Retires every live password-reset link of `email` and removes the
/// emails of those not yet sent (their task ids go to `dropped`, to be
/// withdrawn once the commit is made). Returns how many were live.
fn retire_reset_links(
    w: &crate::store::WriteView,
    email: &str,
    dropped: &mut Vec<String>,
) -> Result<usize, StoreError> {
    let ids = w.retire_reset_links(email)?;
    for id in &ids {
        let task = Task::reset_task_id(id);
        if w.remove_task(&task)? {
            dropped.push(task);
        }
    }
    Ok(ids.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::service::{ManualClock, Muster};
    use std::sync::Arc;

    fn muster() -> Muster {
        let store = crate::store::Store::in_memory().unwrap();
        let config = Arc::new(Config::default());
        let host = crate::provision::from_config(&config).unwrap();
        let clock = Arc::new(ManualClock::new(time::OffsetDateTime::now_utc()));
        Muster::new(
            config,
            store,
            host,
            clock,
            crate::domain::token::LinkKey::from_bytes([3; 32]),
        )
    }

    #[test]
    fn the_dummy_hash_is_a_real_argon2id_hash() {
        let mut memory = crate::provision::hash::Argon2Memory::default();
        assert!(!crate::provision::hash::verify_argon2id(
            &mut memory,
            "anything",
            DUMMY_HASH
        ));
        assert!(argon2::password_hash::phc::PasswordHash::new(DUMMY_HASH).is_ok());
    }

    #[test]
    fn accounts_sessions_and_one_time_links() {
        let m = muster();
        let link = m.setup_link().unwrap().unwrap();
        let token = link.rsplit('#').next().unwrap();
        assert!(matches!(
            m.complete_setup(token, "Admin@Team.Example", "short"),
            Err(AdminError::Policy(_))
        ));
        let signed = m
            .complete_setup(token, "Admin@Team.Example", "plinth-ferry-quartz-77")
            .unwrap();
        assert_eq!(signed.email, "admin@team.example");
        // The CSRF token is the session's to read back, and not in the store.
        let session = m.session(&signed.cookie).unwrap().unwrap();
        assert_eq!(session.csrf_token, signed.csrf);
        let hash = LinkToken::parse(&signed.cookie).unwrap().hash().0;
        let stored = m.store.read().unwrap().session(&hash).unwrap().unwrap();
        assert_eq!(stored.csrf_token, "");
        // The setup link works once, and no new one is offered.
        assert!(matches!(
            m.complete_setup(token, "other@team.example", "plinth-ferry-quartz-77"),
            Err(AdminError::LinkInvalid)
        ));
        assert!(m.setup_link().unwrap().is_none());
        assert!(matches!(
            m.sign_in("admin@team.example", "wrong", "127.0.0.1", None),
            Err(AdminError::WrongCredentials)
        ));
        assert!(matches!(
            m.sign_in("nobody@team.example", "wrong", "127.0.0.1", None),
            Err(AdminError::WrongCredentials)
        ));
        let again = m
            .sign_in(
                "ADMIN@team.example",
                "plinth-ferry-quartz-77",
                "127.0.0.1",
                None,
            )
            .unwrap();
        assert_ne!(again.csrf, signed.csrf, "each session has its own");
        m.sign_out(&again.cookie).unwrap();
        assert!(m.session(&again.cookie).unwrap().is_none());
        // A new password ends every session.
        m.set_admin_password(
            "admin@team.example",
            "orbit-lantern-sable-19",
            &Actor::cli(),
        )
        .unwrap();
        assert!(m.session(&signed.cookie).unwrap().is_none());
    }

    #[test]
    fn api_tokens_are_hashed_and_revocable() {
        let m = muster();
        let (token, secret) = m.create_api_token("hr pipeline", &Actor::cli()).unwrap();
        assert!(secret.starts_with(API_TOKEN_PREFIX));
        assert!(!token.secret_hash.contains(&secret));
        assert!(matches!(
            m.check_api_token(&secret).unwrap(),
            TokenCheck::Valid(_)
        ));
        assert!(m.api_tokens().unwrap()[0].last_used_at.is_some());
        assert!(matches!(
            m.check_api_token("mst_nope").unwrap(),
            TokenCheck::Unknown
        ));
        m.revoke_api_token(&token.id, &Actor::cli()).unwrap();
        assert!(matches!(
            m.check_api_token(&secret).unwrap(),
            TokenCheck::Revoked
        ));
    }
}
