//! MCP with real clients: the official Python SDK over streamable HTTP and
//! over stdio, and the MCP conformance suite (server scenarios) against
//! `/mcp`, with a short list of expected failures.

use std::path::Path;

use crate::support::app::TestApp;
use crate::support::mcp_client::{client_script, have_sdk, python};
use crate::support::*;

async fn run_blocking(mut cmd: std::process::Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_over_streamable_http() {
    if !have_sdk() {
        return;
    }
    let app = TestApp::spawn(|_| {}).await;
    let token = app.token.clone();
    let mut cmd = std::process::Command::new(python());
    cmd.arg(client_script())
        .args(["http", &format!("{}/mcp", app.url()), &token]);
    let out = run_blocking(cmd).await;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("all checks passed"), "{stdout}");
    // Calls through MCP are recorded with the token that made them.
    let events = app.muster.view().unwrap().audit(None, 500).unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.action == "batch.create" && e.actor.0.starts_with("token:tests:"))
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_over_stdio() {
    if !have_sdk() {
        return;
    }
    let t = TestDir::new();
    let config = t.write_config(&t.config());
    let mut cmd = std::process::Command::new(python());
    cmd.arg(client_script())
        .args(["stdio", BIN, "--config", config.to_str().unwrap(), "mcp"]);
    for (k, _) in std::env::vars() {
        if k.starts_with("MUSTER_") {
            cmd.env_remove(k);
        }
    }
    let out = run_blocking(cmd).await;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("all checks passed"), "{stdout}");
    // The invites made over stdio were sent by the process's own worker.
    let outbox = std::fs::read_dir(t.data().join("outbox")).unwrap().count();
    assert!(outbox >= 3, "{outbox} emails in the outbox");
}

/// A loopback proxy that adds the bearer token, since the conformance
/// suite has no option for credentials. Everything else passes unchanged
/// (the Host header too, for the DNS-rebinding scenario).
async fn token_proxy(target: String, token: String) -> String {
    use poem::{Body, Request, Response, handler, web::Data};
    #[handler]
    async fn forward(
        req: &Request,
        body: Body,
        cfg: Data<&(reqwest::Client, String, String)>,
    ) -> Response {
        let (client, target, token) = cfg.0;
        let mut out = client.request(req.method().clone(), format!("{target}{}", req.uri()));
        for (k, v) in req.headers() {
            if k != "content-length" && k != "authorization" {
                out = out.header(k, v);
            }
        }
        let bytes = body.into_vec().await.unwrap_or_default();
        match out.bearer_auth(token).body(bytes).send().await {
            Ok(resp) => {
                let mut r = Response::builder().status(resp.status());
                for (k, v) in resp.headers() {
                    if k != "content-length" && k != "transfer-encoding" {
                        r = r.header(k, v);
                    }
                }
                use futures_util::StreamExt;
                r.body(Body::from_bytes_stream(
                    resp.bytes_stream()
                        .map(|c| c.map_err(std::io::Error::other)),
                ))
            }
            Err(e) => Response::builder()
                .status(poem::http::StatusCode::BAD_GATEWAY)
                .body(e.to_string()),
        }
    }
    use poem::EndpointExt;
    use poem::listener::{Acceptor, Listener, TcpListener};
    let acceptor = TcpListener::bind("127.0.0.1:0")
        .into_acceptor()
        .await
        .unwrap();
    let addr = acceptor.local_addr()[0].as_socket_addr().copied().unwrap();
    let client = http();
    let route = poem::Route::new()
        .at("/*path", forward)
        .data((client, target, token));
    tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(route));
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mcp_conformance_suite() {
    let bin =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("target/npm/node_modules/.bin/conformance");
    if !require(
        "@modelcontextprotocol/conformance (scripts/install-test-deps puts it in target/npm)",
        bin.exists(),
    ) {
        return;
    }
    let app = TestApp::spawn(|_| {}).await;
    let token = app.token.clone();
    let proxy = token_proxy(app.url(), token).await;
    let expected =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mcp/conformance-expected-failures.yml");
    let results = app.dir.path().join("conformance");
    let mut cmd = std::process::Command::new(&bin);
    cmd.args(["server", "--url", &format!("{proxy}/mcp")])
        .arg("--expected-failures")
        .arg(&expected)
        .arg("--output-dir")
        .arg(&results);
    let out = run_blocking(cmd).await;
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "the conformance suite failed beyond the expected failures:\n{stdout}\n{}",
        text(&out.stderr)
    );
    app.shutdown().await;
}

/// The same bad call through REST and MCP gets the same code and the same
/// per-item codes: one error table behind both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_bad_call_gets_the_same_code_on_rest_and_mcp() {
    if !have_sdk() {
        return;
    }
    let app = TestApp::spawn(|_| {}).await;
    let item = |local: &str, email: &str| serde_json::json!({"local_part": local, "recipient_email": email});
    let many: Vec<_> = (0..101)
        .map(|i| item(&format!("u{i}"), &format!("u{i}@elsewhere.org")))
        .collect();
    let calls = [
        serde_json::json!({"items": [item("a", "a@elsewhere.org"), item("b", "not an address")]}),
        serde_json::json!({"items": many}),
        serde_json::json!({"domain": "elsewhere.example", "items": [item("a", "a@elsewhere.org")]}),
        serde_json::json!({"expires_in": "90d", "items": [item("a", "a@elsewhere.org")]}),
        serde_json::json!({"items": [item("postmaster", "pm@elsewhere.org")]}),
    ];
    let mcp_url = format!("{}/mcp", app.url());
    let mut codes = Vec::new();
    let mut check = |rest: serde_json::Value, mcp: serde_json::Value| {
        let mcp = &mcp["structured"];
        assert_eq!(rest["code"], mcp["code"], "REST {rest} / MCP {mcp}");
        let item_codes = |v: &serde_json::Value| -> Vec<String> {
            v["errors"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| format!("{}:{}", e["index"], e["code"]))
                .collect()
        };
        assert_eq!(item_codes(&rest), item_codes(mcp));
        codes.push(rest["code"].as_str().unwrap_or("").to_string());
    };
    for args in &calls {
        let (_, rest) = app
            .call(
                reqwest::Method::POST,
                "/mailboxes/invites:bulk",
                Some(args.clone()),
            )
            .await;
        let mcp =
            crate::support::mcp_client::call(&mcp_url, &app.token, "create_invites_bulk", args)
                .await;
        check(rest, mcp);
    }
    // A mail host that cannot be read: a failure of the host, not "internal".
    let passwd = app.muster.config.passwd_file();
    std::fs::create_dir_all(&passwd).unwrap();
    let args = &calls[0].clone();
    let ok = serde_json::json!({"items": [args["items"][0].clone()]});
    let (_, rest) = app
        .call(
            reqwest::Method::POST,
            "/mailboxes/invites:bulk",
            Some(ok.clone()),
        )
        .await;
    let mcp =
        crate::support::mcp_client::call(&mcp_url, &app.token, "create_invites_bulk", &ok).await;
    check(rest, mcp);
    assert_eq!(
        codes,
        [
            "flagged_items",
            "too_many_items",
            "unknown_domain",
            "invalid_expiry",
            "flagged_items",
            "mail_host_failed"
        ]
    );
    app.shutdown().await;
}
