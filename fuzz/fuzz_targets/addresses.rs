//! The address types on any text: never panic, and what they accept is
//! normalised and parses again to the same value.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../../src/domain/mod.rs"]
#[allow(dead_code)]
mod domain;

use domain::address::{DomainName, LocalPart, MailboxAddress, RecipientEmail};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(e) = RecipientEmail::parse(s) {
        let shown = e.to_string();
        assert!(shown.len() <= 254 && shown.contains('@') && !shown.contains(char::is_whitespace));
        assert_eq!(RecipientEmail::parse(&shown).unwrap(), e);
    }
    if let Ok(l) = LocalPart::parse(s) {
        assert_eq!(LocalPart::parse(l.as_str()).unwrap(), l);
        assert!(!l.as_str().contains([':', '+', '\n', '\r']));
    }
    if let Ok(d) = DomainName::parse(s) {
        assert!(d.as_str().is_ascii() && d.as_str().contains('.'));
    }
    let _ = MailboxAddress::parse(s);
});
