//! Schemathesis (from PyPI) against the OpenAPI document: no 5xx, only
//! documented status codes and content types, and every response matches
//! its schema.

use crate::support::app::TestApp;
use crate::support::*;
use muster::store::Actor;

fn schemathesis() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/pyenv/bin/schemathesis")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_errors_and_no_schema_mismatches() {
    if !require(
        "schemathesis (scripts/install-test-deps puts it in target/pyenv)",
        schemathesis().exists(),
    ) {
        return;
    }
    let t = TestDir::new();
    let mut config = t.config();
    let port = free_port();
    config.listen = format!("127.0.0.1:{port}").parse().unwrap();
    config.public_url =
        muster::config::HttpUrl::parse(&format!("http://127.0.0.1:{port}")).unwrap();
    config.http.api_rate_per_minute = 1_000_000;
    config.domains[0].mailbox_cap = 100_000;
    let app = TestApp::on(config).await;
    let (_, token) = app
        .muster
        .create_api_token("schemathesis", &Actor::cli())
        .unwrap();
    // Some data, so lists and lookups have something to return.
    app.muster.create_batch(invite_batch(3, "seed")).unwrap();
    let spec = format!("{}/api/v1/openapi.json", app.url());
    // Schemathesis keeps a cache (`.schemathesis/`, replayed failures) in its
    // working folder: the test's own folder keeps runs independent and the
    // checkout untouched.
    let workdir = t.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(schemathesis())
            .current_dir(workdir)
            .args(["run", &spec])
            .args(["-H", &format!("Authorization: Bearer {token}")])
            .args([
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance",
            ])
            // One worker: with two threads, Python 3.11.7's `ast.parse` (which
            // Hypothesis calls) can fail with "AST constructor recursion depth
            // mismatch" (CPython gh-106905), a harness error, not a finding.
            .args(["--max-examples", "25", "--seed", "20261130", "--workers", "1"])
            .env("SCHEMATHESIS_TELEMETRY", "false")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(stdout.contains("generated"), "{stdout}");
    app.shutdown().await;
}
