//! A short cargo-fuzz run of each target (the roster parser, the address
//! types, the link token parser) as part of the suite; longer runs and
//! their figures are in fuzz/README.md.

use std::path::Path;

use crate::support::*;

fn cargo_fuzz() -> bool {
    std::process::Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn each_fuzz_target_runs_clean_for_a_while() {
    if !require("cargo-fuzz (cargo install cargo-fuzz)", cargo_fuzz()) {
        return;
    }
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let seconds = std::env::var("MUSTER_FUZZ_SECONDS").unwrap_or_else(|_| "10".into());
    for target in ["roster", "addresses", "link_token"] {
        // New inputs go to a scratch corpus; the committed seeds stay as they are.
        let scratch = tempfile::tempdir().unwrap();
        let out = std::process::Command::new("cargo")
            .current_dir(&fuzz)
            // cargo-fuzz needs nightly flags; this toolchain is stable.
            .env("RUSTC_BOOTSTRAP", "1")
            .args(["fuzz", "run", target])
            .arg(scratch.path())
            .arg(fuzz.join("corpus").join(target))
            .args([
                "--",
                &format!("-max_total_time={seconds}"),
                "-rss_limit_mb=2048",
            ])
            .output()
            .unwrap();
        let stderr = text(&out.stderr);
        assert!(
            out.status.success(),
            "the fuzzer found a problem in {target}:\n{}",
            stderr
                .lines()
                .rev()
                .take(60)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n")
        );
        assert!(
            stderr.contains("Done "),
            "{target} ran to its time limit:\n{stderr}"
        );
    }
}
