//! The setup-link token parser on any text: accepts only 43 URL-safe
//! base64 characters, and what it accepts hashes and compares safely.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../../src/domain/mod.rs"]
#[allow(dead_code)]
mod domain;

use domain::token::LinkToken;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Some(t) = LinkToken::parse(s) {
        assert_eq!(t.as_str(), s);
        assert_eq!(s.len(), 43);
        assert!(t.hash().matches(&t.hash()));
    }
});
