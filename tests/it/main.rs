//! Muster's integration tests, in one test binary: each module is one
//! concern, and `support` holds what they share (a running Muster, the real
//! mail stack, the browsers, the MCP client).

mod support;

mod admin_app;
mod api;
mod browser;
mod bulk_resend;
mod cli_api;
mod cli_preview;
mod client_setup;
mod deliverability;
mod direct;
mod faults;
mod follow_up_pages;
mod fuzz;
mod hardening;
mod hostile;
mod mailbox_care;
mod mcp;
mod mta_sts;
mod notifications;
mod ops;
mod races;
mod recipient;
mod redeem;
mod reminders;
mod schemathesis;
mod send;
mod sql_host;
mod test_send;
mod webhooks;
mod welcome;
