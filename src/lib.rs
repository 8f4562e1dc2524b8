//! Muster: invite a whole team to new mailboxes on your own Dovecot and
//! Postfix. The library holds everything; `src/main.rs` is a thin CLI.

pub mod app;
pub mod cli;
pub mod config;
pub mod dns;
pub mod domain;
pub mod http;
pub mod mail;
pub mod provision;
pub mod service;
pub mod store;
pub mod webhooks;

pub use app::App;

/// Locks `m`, also when a thread panicked while holding it: one panic must
/// not stop every other user of the lock.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
