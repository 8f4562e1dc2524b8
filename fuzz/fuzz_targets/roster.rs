//! The roster parser on any bytes: never panics, and every row it reads
//! comes from a line of the input.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../../src/domain/mod.rs"]
#[allow(dead_code)]
mod domain;

use domain::roster::{RosterFormat, parse_creation_roster, parse_invite_roster};

fuzz_target!(|data: &[u8]| {
    let lines = data.iter().filter(|b| **b == b'\n').count() + 1;
    for format in [RosterFormat::Csv, RosterFormat::Lines] {
        if let Ok(rows) = parse_invite_roster(data, format, 500) {
            assert!(rows.len() <= 500);
            for r in &rows {
                let line = r.line.expect("rows from text carry their line");
                // UTF-16 input has one line per "\n" code unit at most.
                assert!(line >= 1 && line <= lines.max(data.len() / 2 + 1), "line {line} of {lines}");
            }
        }
    }
    let _ = parse_creation_roster(data, 500);
});
