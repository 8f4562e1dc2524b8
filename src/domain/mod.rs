//! Pure rules: no I/O, and the current time is always a parameter.

pub mod address;
pub mod capacity;
pub mod client_setup;
pub mod delivery;
pub mod duration;
pub mod form_proof;
pub mod invite;
pub mod password;
pub mod preview;
pub mod reminders;
pub mod reserved;
pub mod roster;
pub mod table;
pub mod template;
pub mod token;
pub mod webhook;
