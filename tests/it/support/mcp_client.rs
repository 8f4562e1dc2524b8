//! The official MCP Python SDK as a client (tests/mcp/client.py), from
//! the project's virtual environment.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::require;

pub fn python() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/pyenv/bin/python")
}

pub fn client_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mcp/client.py")
}

/// Whether the SDK is installed; under CI a missing one fails the test.
pub fn have_sdk() -> bool {
    require(
        "the MCP Python SDK (scripts/install-test-deps puts it in target/pyenv)",
        std::process::Command::new(python())
            .args(["-c", "import mcp, httpx2"])
            .status()
            .is_ok_and(|s| s.success()),
    )
}

/// One tool call over streamable HTTP: `{is_error, structured, text}`.
pub async fn call(url: &str, token: &str, tool: &str, args: &Value) -> Value {
    let mut cmd = std::process::Command::new(python());
    cmd.arg(client_script())
        .args(["call", url, token, tool, &args.to_string()]);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}
