//! The REST API over HTTP: every endpoint, auth, the literal
//! `invites:bulk` path, all-or-nothing bulk calls, idempotency and errors.

use std::time::Duration;

use crate::support::app::TestApp;
use crate::support::*;
use muster::store::Actor;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const ADMIN: &str = "admin@team.example";

/// Muster with room for 300 mailboxes and an admin.
async fn start(tweak: impl FnOnce(&mut muster::config::Config)) -> TestApp {
    let api = TestApp::spawn(|c| {
        c.domains[0].mailbox_cap = 300;
        tweak(c);
    })
    .await;
    api.muster()
        .add_admin(ADMIN, PASSWORD, &Actor::cli())
        .unwrap();
    api
}

fn batch_count(api: &TestApp) -> usize {
    api.muster().view().unwrap().batches().unwrap().len()
}

/// Signs in as the admin: the session cookie and the CSRF token.
async fn sign_in(api: &TestApp) -> (String, String) {
    let resp = api
        .client
        .post(api.api("/session"))
        .json(&json!({"email": ADMIN, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let body: Value = resp.json().await.unwrap();
    (
        cookie.split(';').next().unwrap().to_string(),
        body["csrf_token"].as_str().unwrap().to_string(),
    )
}

fn items(n: usize) -> Value {
    items_named("user", n)
}

/// `n` items `{prefix}0` … at elsewhere.org.
fn items_named(prefix: &str, n: usize) -> Value {
    Value::Array(
        (0..n)
            .map(|i| json!({"local_part": format!("{prefix}{i}"), "recipient_email": format!("{prefix}{i}@elsewhere.org")}))
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invites_bulk_creates_all_or_nothing() {
    let api = start(|_| {}).await;
    // Success: 201, the batch and each item's invite.
    let (status, body) = api
        .call(
            Method::POST,
            "/mailboxes/invites:bulk",
            Some(json!({"domain": "team.example", "expires_in": "7d", "items": [
                {"local_part": "jane", "recipient_email": "jane@elsewhere.org", "storage_allocation_mb": 100},
                {"local_part": "sam", "recipient_email": "sam@elsewhere.org"}
            ]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["invites"].as_array().unwrap().len(), 2);
    assert_eq!(body["invites"][0]["mailbox"], "jane@team.example");
    assert_eq!(body["invites"][1]["index"], 1);
    assert!(body["invites"][0]["invite_id"].is_string());
    let batch_id = body["batch_id"].as_str().unwrap().to_string();

    // 101 items: 422 and nothing created.
    let (status, body) = api
        .call(
            Method::POST,
            "/mailboxes/invites:bulk",
            Some(json!({"items": items(101)})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["code"], "too_many_items");
    assert_eq!(batch_count(&api), 1);

    // One flagged item: 422 with per-item errors and nothing created.
    let mut list = items(6);
    list[3]["recipient_email"] = json!("not an address");
    list[4]["local_part"] = json!("jane");
    list[5]["local_part"] = json!("user1");
    let (status, body) = api
        .call(
            Method::POST,
            "/mailboxes/invites:bulk",
            Some(json!({"items": list})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["code"], "flagged_items");
    let errors = body["errors"].as_array().unwrap();
    assert!(errors.iter().any(|e| e["index"] == 3
        && e["field"] == "recipient_email"
        && e["code"] == "invalid_recipient_email"));
    assert!(
        errors
            .iter()
            .any(|e| e["index"] == 4 && e["code"] == "invite_pending"),
        "{body}"
    );
    // Another item is named as the errors' index counts it, from 0.
    assert!(
        errors.iter().any(|e| e["index"] == 5
            && e["code"] == "duplicate_mailbox"
            && e["message"] == "the mailbox user1@team.example is already used by item 1"),
        "{body}"
    );
    assert_eq!(batch_count(&api), 1);

    // validate_only returns the preview and creates nothing.
    let (status, body) = api
        .call(
            Method::POST,
            "/mailboxes/invites:bulk?validate_only=true",
            Some(json!({"items": items(3)})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["clean_rows"], 3);
    assert_eq!(body["capacity"]["pending"], 2);
    assert_eq!(batch_count(&api), 1);

    // Bad values get 422 with the reason; wrong types get the JSON error shape.
    let (status, body) = api
        .call(
            Method::POST,
            "/mailboxes/invites:bulk",
            Some(json!({"expires_in": "40d", "items": items(1)})),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_expiry"))
    );
    let (status, body) = api
        .call(
            Method::POST,
            "/mailboxes/invites:bulk",
            Some(json!({"items": items(1), "domain": "other.example"})),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("unknown_domain"))
    );
    let (status, body) = api
        .call(
            Method::POST,
            "/mailboxes/invites:bulk",
            Some(json!({"items": [{"local_part": 5}]})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["code"].is_string() && body["message"].is_string(),
        "{body}"
    );

    // Batch status.
    let (status, body) = api
        .call(Method::GET, &format!("/batches/{batch_id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["invites"].as_array().unwrap().len(), 2);
    assert!(
        body["delivery"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["state"] == "queued" || c["state"] == "sent")
    );
    api.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_literal_path_and_its_look_alikes() {
    let api = start(|_| {}).await;
    for path in [
        "/mailboxes/invitesXbulk",
        "/mailboxes/invites%3Abulk",
        "/mailboxes/invites__bulk",
        "/mailboxes/invites:bulk2",
        "/mailboxesXbulk",
        "/mailboxes%3Abulk",
        "/mailboxes__bulk",
    ] {
        let (status, body) = api
            .call(Method::POST, path, Some(json!({"items": items(1)})))
            .await;
        // Under /mailboxes/ a look-alike may name a mailbox, which takes no
        // POST (405); otherwise it names nothing (404). Neither creates.
        let refused = [StatusCode::NOT_FOUND, StatusCode::METHOD_NOT_ALLOWED];
        if path.starts_with("/mailboxes/") {
            assert!(refused.contains(&status), "{path}: {status} {body}");
        } else {
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        }
        assert!(body["code"].is_string(), "{path}: {body}");
    }
    assert_eq!(batch_count(&api), 0);
    let spec: Value = api
        .client
        .get(api.api("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paths = spec["paths"].as_object().unwrap();
    assert!(paths.contains_key("/mailboxes/invites:bulk"));
    assert!(paths.contains_key("/mailboxes:bulk"));
    assert!(!paths.keys().any(|k| k.contains("__")));
    assert_eq!(
        spec["paths"]["/mailboxes/invites:bulk"]["post"]["operationId"],
        "create_invites_bulk"
    );
    // Swagger UI is served from embedded files.
    let docs = api
        .client
        .get(format!("{}/api/docs", api.app.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(docs.status(), 200);
    assert!(
        docs.text()
            .await
            .unwrap()
            .contains("/assets/swagger/swagger-ui-bundle.js")
    );
    let js = api
        .client
        .get(format!(
            "{}/assets/swagger/swagger-ui-bundle.js",
            api.app.url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(js.status(), 200);
    api.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_failures() {
    let api = start(|_| {}).await;
    let bare = |m: Method, p: &str| api.client.request(m, api.api(p));
    let r = bare(Method::GET, "/invites").send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "unauthorized");
    let r = bare(Method::GET, "/invites")
        .bearer_auth("mst_unknown")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "token_unknown");
    let (revoked, secret) = api
        .app
        .muster
        .create_api_token("old", &Actor::cli())
        .unwrap();
    api.app
        .muster
        .revoke_api_token(&revoked.id, &Actor::cli())
        .unwrap();
    let r = bare(Method::GET, "/invites")
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "token_revoked");
    // Token management is for admin sessions only.
    let (status, body) = api.call(Method::GET, "/tokens", None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("admin_session_required"))
    );

    // A session works with its CSRF token, and a POST without it is refused.
    let (cookie, csrf) = sign_in(&api).await;
    let with_session =
        |m: Method, p: &str| api.client.request(m, api.api(p)).header("cookie", &cookie);
    assert_eq!(
        with_session(Method::GET, "/tokens")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let r = with_session(Method::POST, "/tokens")
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "csrf");
    let r = with_session(Method::POST, "/tokens")
        .header("x-csrf-token", &csrf)
        .json(&json!({"name": "from the web"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    assert!(created["secret"].as_str().unwrap().starts_with("mst_"));
    // The new token works; listing never shows secrets.
    let r = bare(Method::GET, "/capacity")
        .bearer_auth(created["secret"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let list: Value = with_session(Method::GET, "/tokens")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|t| t.get("secret").is_none())
    );
    // Revoke it through the API: it now answers 403.
    let id = created["id"].as_str().unwrap();
    let r = with_session(Method::DELETE, &format!("/tokens/{id}"))
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = bare(Method::GET, "/capacity")
        .bearer_auth(created["secret"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // A wrong password is refused; signing out ends the session.
    let r = api
        .client
        .post(api.api("/session"))
        .json(&json!({"email": ADMIN, "password": "wrong-password-here"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = with_session(Method::DELETE, "/session")
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        with_session(Method::GET, "/session")
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    api.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_replay_the_first_response() {
    let api = start(|_| {}).await;
    let body = json!({"items": items(3)});
    // A client that gives up before the answer, then retries with the same key.
    let timed_out = api
        .client
        .post(api.api("/mailboxes/invites:bulk"))
        .bearer_auth(&api.token)
        .header("idempotency-key", "hr-run-42-chunk-1")
        .json(&body)
        .timeout(Duration::from_millis(1))
        .send()
        .await;
    assert!(
        timed_out.is_err(),
        "the first call was cut off by the client"
    );
    let (s1, first) = api
        .call_with(
            Method::POST,
            "/mailboxes/invites:bulk",
            Some(body.clone()),
            &[("idempotency-key", "hr-run-42-chunk-1")],
        )
        .await;
    let (s2, second) = api
        .call_with(
            Method::POST,
            "/mailboxes/invites:bulk",
            Some(body.clone()),
            &[("idempotency-key", "hr-run-42-chunk-1")],
        )
        .await;
    assert_eq!(
        (s1, s2),
        (StatusCode::CREATED, StatusCode::CREATED),
        "{first} {second}"
    );
    assert_eq!(first["batch_id"], second["batch_id"]);
    assert_eq!(first, second, "the same response");
    assert_eq!(batch_count(&api), 1, "created once");
    // The same key with another body is refused.
    let (status, err) = api
        .call_with(
            Method::POST,
            "/mailboxes/invites:bulk",
            Some(json!({"items": items(4)})),
            &[("idempotency-key", "hr-run-42-chunk-1")],
        )
        .await;
    assert_eq!(
        (status, err["code"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("idempotency_key_reused")
        )
    );
    assert_eq!(batch_count(&api), 1);
    api.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pending_list_and_its_actions() {
    let api = start(|_| {}).await;
    let (_, created) = api
        .call(
            Method::POST,
            "/mailboxes/invites:bulk",
            Some(json!({"items": items(5)})),
        )
        .await;
    let ids: Vec<String> = created["invites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["invite_id"].as_str().unwrap().to_string())
        .collect();
    // Cursor paging.
    let (_, page1) = api.call(Method::GET, "/invites?limit=2", None).await;
    assert_eq!(page1["invites"].as_array().unwrap().len(), 2);
    let cursor = page1["next_cursor"].as_str().unwrap();
    let (_, page2) = api
        .call(
            Method::GET,
            &format!("/invites?limit=2&cursor={cursor}"),
            None,
        )
        .await;
    assert_eq!(page2["invites"].as_array().unwrap().len(), 2);
    assert_ne!(page1["invites"][0]["id"], page2["invites"][0]["id"]);
    // Text and state filters.
    let (_, found) = api.call(Method::GET, "/invites?q=user3", None).await;
    assert_eq!(found["invites"].as_array().unwrap().len(), 1);
    // A state the list does not know is refused, naming those it does; so
    // is the CSV export of it.
    // A cursor no page gave is refused, not read as a place to start.
    let (status, refused) = api.call(Method::GET, "/invites?cursor=garbage", None).await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["code"], "invalid_cursor", "{refused}");
    for path in ["/invites?state=bogus", "/invites.csv?state=bogus"] {
        let (status, refused) = api.call(Method::GET, path, None).await;
        assert_eq!(status, 422, "{path}: {refused}");
        assert_eq!(refused["code"], "invalid_state", "{refused}");
        let words = refused["message"].as_str().unwrap();
        assert!(
            words.starts_with("\"bogus\" is not a state to filter by")
                && words.contains("pending")
                && words.contains("setup_failed")
                && words.contains("in_outbox"),
            "{words}"
        );
    }
    // The batch filter returns that batch only, across cursor pages, and
    // nothing for a batch that does not exist.
    let (status, second) = api
        .call(
            Method::POST,
            "/mailboxes/invites:bulk",
            Some(json!({"items": items_named("other", 3)})),
        )
        .await;
    assert_eq!(status, 201, "{second}");
    let first_batch = created["batch_id"].as_str().unwrap();
    let second_batch = second["batch_id"].as_str().unwrap();
    assert_ne!(first_batch, second_batch);
    let mut seen = Vec::new();
    let mut path = format!("/invites?batch_id={first_batch}&limit=2");
    loop {
        let (status, page) = api.call(Method::GET, &path, None).await;
        assert_eq!(status, 200, "{page}");
        for i in page["invites"].as_array().unwrap() {
            assert_eq!(i["batch_id"], first_batch, "{i}");
            seen.push(i["id"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/invites?batch_id={first_batch}&limit=2&cursor={c}"),
            None => break,
        }
    }
    seen.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(seen, expected, "every invite of the batch, and only those");
    let (_, theirs) = api
        .call(
            Method::GET,
            &format!("/invites?batch_id={second_batch}"),
            None,
        )
        .await;
    assert_eq!(theirs["invites"].as_array().unwrap().len(), 3);
    let (_, none) = api
        .call(Method::GET, "/invites?batch_id=nonsense", None)
        .await;
    assert_eq!(none["invites"].as_array().unwrap().len(), 0, "{none}");
    let (_, all) = api.call(Method::GET, "/invites?batch_id=", None).await;
    assert_eq!(
        all["invites"].as_array().unwrap().len(),
        8,
        "an empty batch_id filters nothing"
    );
    // The export takes the same filters and holds every match, as CSV.
    let (status, csv) = api
        .call(
            Method::GET,
            &format!("/invites.csv?batch_id={second_batch}"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let csv = csv.as_str().unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 4, "a header and the batch's three: {csv}");
    assert!(lines[0].starts_with("recipient_email,display_name,mailbox,"));
    assert!(
        lines[1..]
            .iter()
            .all(|l| l.starts_with("other") && l.rsplit(',').nth(1) == Some(second_batch)),
        "{csv}"
    );
    let (_, nothing) = api
        .call(Method::GET, "/invites.csv?batch_id=nonsense", None)
        .await;
    assert_eq!(nothing.as_str().unwrap().lines().count(), 1);
    // Resend and revoke.
    let (status, resent) = api
        .call(Method::POST, &format!("/invites/{}/resend", ids[0]), None)
        .await;
    assert_eq!(status, 200, "{resent}");
    assert_eq!(resent["link_state"], "live");
    let (status, revoked) = api
        .call(Method::POST, &format!("/invites/{}/revoke", ids[1]), None)
        .await;
    assert_eq!(
        (status, revoked["link_state"].as_str()),
        (StatusCode::OK, Some("revoked"))
    );
    let (status, again) = api
        .call(Method::POST, &format!("/invites/{}/revoke", ids[1]), None)
        .await;
    assert_eq!(
        (status, again["code"].as_str()),
        (StatusCode::CONFLICT, Some("invite_state"))
    );
    let (_, list) = api.call(Method::GET, "/invites?state=revoked", None).await;
    assert_eq!(list["invites"].as_array().unwrap().len(), 1);
    let (status, one) = api
        .call(Method::GET, &format!("/invites/{}", ids[1]), None)
        .await;
    assert_eq!(
        (status, one["id"].as_str()),
        (StatusCode::OK, Some(ids[1].as_str()))
    );
    let (status, _) = api.call(Method::GET, "/invites/nope", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Capacity: 8 sent in two batches, 1 revoked frees its place.
    let (_, cap) = api.call(Method::GET, "/capacity", None).await;
    assert_eq!(cap["domains"][0]["pending"], 7);
    assert_eq!(cap["domains"][0]["left"], 293);
    // Copy link is for admin sessions.
    let (status, _) = api
        .call(Method::POST, &format!("/invites/{}/link", ids[2]), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (cookie, csrf) = sign_in(&api).await;
    let r = api
        .client
        .post(api.api(&format!("/invites/{}/link", ids[2])))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let link: Value = r.json().await.unwrap();
    assert!(
        link["url"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}/invite/", api.url()))
    );
    // The audit trail saw it all, and exports as CSV.
    let (_, audit) = api.call(Method::GET, "/audit?limit=50", None).await;
    let actions: Vec<&str> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for a in [
        "batch.create",
        "invite.resend",
        "invite.revoke",
        "invite.copy_link",
        "admin.sign_in",
        "token.use",
    ] {
        assert!(actions.contains(&a), "{a} in {actions:?}");
    }
    // Each actor also in the words the web app shows.
    let sign_in = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "admin.sign_in")
        .unwrap();
    let actor = sign_in["actor"].as_str().unwrap();
    assert_eq!(
        sign_in["actor_name"],
        format!("{} (admin)", actor.strip_prefix("admin:").unwrap())
    );
    let csv = api
        .client
        .get(api.api("/audit.csv"))
        .bearer_auth(&api.token)
        .send()
        .await
        .unwrap();
    assert!(
        csv.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    assert!(
        csv.text()
            .await
            .unwrap()
            .starts_with("at,actor,action,subject,subject_name,detail\n")
    );
    api.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn previews_and_bulk_creation() {
    let api = start(|c| c.storage_pool_mb = 500).await;
    let (status, p) = api
        .call(
            Method::POST,
            "/previews/invites",
            Some(json!({"format": "csv", "text": "email,quota\na@x.org,300\nb@x.org,300\nbad\n"})),
        )
        .await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["flagged_rows"], 2);
    assert_eq!(p["rows"][1]["flags"][0]["code"], "allocation_over_pool");
    assert_eq!(p["rows"][2]["input"]["line"], 4);
    let (status, p) = api
        .call(
            Method::POST,
            "/previews/invites",
            Some(
                json!({"rows": [{"recipient_email": "c@x.org", "storage_allocation_mb": "lots"}]}),
            ),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(p["rows"][0]["flags"][0]["code"], "invalid_allocation");

    let (status, made) = api
        .call(
            Method::POST,
            "/mailboxes:bulk",
            Some(json!({"items": [
                {"local_part": "ann", "storage_allocation_mb": 100},
                {"local_part": "ben", "password": "orbit-lantern-sable-19"}
            ]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let generated = made["mailboxes"][0]["generated_password"].as_str().unwrap();
    assert_eq!(generated.len(), 23);
    assert!(made["mailboxes"][1].get("generated_password").is_none());
    let passwd = std::fs::read_to_string(api.app.muster.config.passwd_file()).unwrap();
    assert!(passwd.contains("ann@team.example:{ARGON2ID}") && passwd.contains("storage=100M"));
    assert!(!passwd.contains(generated));
    // A weak password or an existing mailbox flags the call; nothing is created.
    let (status, err) = api
        .call(Method::POST, "/mailboxes:bulk", Some(json!({"items": [
            {"local_part": "cat"}, {"local_part": "dan", "password": "password"}, {"local_part": "ann"}
        ]})))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let codes: Vec<&str> = err["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["invalid_password", "mailbox_exists"]);
    assert!(
        !std::fs::read_to_string(api.app.muster.config.passwd_file())
            .unwrap()
            .contains("cat@")
    );
    // The mailbox list shows them.
    let (_, list) = api.call(Method::GET, "/mailboxes", None).await;
    let addrs: Vec<&str> = list["mailboxes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["address"].as_str().unwrap())
        .collect();
    assert_eq!(addrs, ["ann@team.example", "ben@team.example"]);
    assert_eq!(list["mailboxes"][0]["storage_allocation_mb"], 100);
    let (_, settings) = api.call(Method::GET, "/settings", None).await;
    assert_eq!(settings["api_call_limit"], 100);
    api.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_share_one_shape() {
    let api = start(|c| {
        c.http.api_rate_per_minute = 4;
        c.http.body_limit_bytes = 4096;
        c.invites.upload_limit_bytes = 4096;
    })
    .await;
    let send = |body: reqwest::Body, ctype: &str| {
        api.client
            .post(api.api("/mailboxes/invites:bulk"))
            .bearer_auth(&api.token)
            .header("content-type", ctype.to_string())
            .body(body)
            .send()
    };
    let r = send("{not json".into(), "application/json").await.unwrap();
    assert_eq!(r.status(), 400);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["code"], "bad_request");
    let r = send("a,b".into(), "text/csv").await.unwrap();
    assert_eq!(r.status(), 415);
    assert_eq!(
        r.json::<Value>().await.unwrap()["code"],
        "unsupported_media_type"
    );
    let r = send(vec![b' '; 200_000].into(), "application/json")
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    // The unread body makes the connection unusable; the client is told so.
    assert_eq!(r.headers()["connection"], "close");
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["code"], "payload_too_large");
    let said = b["message"].as_str().unwrap();
    assert!(said.contains("raise http.body_limit_bytes"), "{said}");
    // A stranger signing in is not told to change Muster's settings.
    let r = api
        .client
        .post(api.api("/session"))
        .header("content-type", "application/json")
        .body(vec![b' '; 200_000])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let b: Value = r.json().await.unwrap();
    assert!(
        b["message"].as_str().unwrap().ends_with("; send less"),
        "{b}"
    );
    // The token's rate limit: 429 with Retry-After. (The token was checked
    // before each body was read: the three calls above and this one use
    // the quota.)
    let r = api
        .client
        .get(api.api("/capacity"))
        .bearer_auth(&api.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = api
        .client
        .get(api.api("/capacity"))
        .bearer_auth(&api.token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        429,
        "the four authenticated calls used the quota"
    );
    assert!(
        r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "rate_limited");
    let r = api
        .client
        .get(api.api("/no/such/thing"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "not_found");
    api.app.shutdown().await;
}

/// A body of the wrong shape is named where it breaks, by item and field,
/// as flagged items are: the client knows which row to fix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_of_the_wrong_shape_names_the_item_and_field() {
    let api = start(|_| {}).await;
    for (items, at, field, code, words) in [
        (
            json!([{"local_part": "a", "recipient_email": "a@elsewhere.org"},
                   {"local_part": "b", "recipient_email": "b@elsewhere.org", "storage_allocation_mb": "2GB"}]),
            "items[1].storage_allocation_mb",
            "storage_allocation_mb",
            "invalid_type",
            "expected a whole number, found \"2GB\"",
        ),
        (
            json!([{"local_part": "a", "recipient_email": "a@elsewhere.org", "quota": 5}]),
            "items[0].quota",
            "quota",
            "unknown_field",
            "is not a field here",
        ),
        (
            json!([{"local_part": "a"}]),
            "items[0].recipient_email",
            "recipient_email",
            "missing_field",
            "is missing; it is required",
        ),
    ] {
        let (status, body) = api
            .call(
                Method::POST,
                "/mailboxes/invites:bulk",
                Some(json!({"items": items})),
            )
            .await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["code"], "bad_request");
        let message = body["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!("{at}: ")) && message.contains(words),
            "{message}"
        );
        let index: u64 = at[6..7].parse().unwrap();
        assert_eq!(body["errors"][0]["index"], index, "{body}");
        assert_eq!(body["errors"][0]["field"], field, "{body}");
        assert_eq!(body["errors"][0]["code"], code, "{body}");
    }
    assert_eq!(api.app.muster.view().unwrap().invite_count().unwrap(), 0);
    api.app.shutdown().await;
}

/// The sign-in page looks for a session with a request of its own only
/// when the browser may hold one its visit did not show (the cookie is
/// SameSite=Strict): from another site, redirected from another site, in
/// a browser that does not say, or with a session. Otherwise its script is
/// told there is none, and the console stays free of a 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sign_in_page_is_told_when_there_is_no_session_to_look_for() {
    let api = start(|_| {}).await;
    let (cookie, _) = sign_in(&api).await;
    let marked = |site: Option<&'static str>, cookie: Option<String>, query: &'static str| {
        let mut req = api.client.get(format!("{}/login{query}", api.url()));
        if let Some(site) = site {
            req = req.header("sec-fetch-site", site);
        }
        if let Some(cookie) = cookie {
            req = req.header("cookie", cookie);
        }
        async move {
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status(), 200);
            let page = resp.text().await.unwrap();
            page.contains("<body data-session=\"none\">")
        }
    };
    assert!(marked(Some("none"), None, "").await);
    assert!(marked(Some("same-origin"), None, "?next=/invites").await);
    assert!(
        marked(
            Some("same-origin"),
            Some("muster_session=made-up".into()),
            ""
        )
        .await
    );
    assert!(!marked(Some("same-origin"), Some(cookie), "").await);
    assert!(!marked(Some("cross-site"), None, "").await);
    assert!(!marked(None, None, "").await);
    assert!(!marked(Some("none"), None, "?next=/invites&from=elsewhere").await);

    // An admin page reached from another site says so in its redirect.
    for (site, location) in [
        ("cross-site", "/login?next=/invites&from=elsewhere"),
        ("none", "/login?next=/invites"),
    ] {
        let resp = api
            .client
            .get(format!("{}/invites", api.url()))
            .header("sec-fetch-site", site)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::SEE_OTHER);
        assert_eq!(resp.headers()["location"], location, "{site}");
    }
}

/// A query parameter out of its range is named in words, not in the
/// validator's notation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parameter_out_of_range_is_named_in_words() {
    let api = start(|_| {}).await;
    for (path, words) in [
        ("/invites?limit=0", "limit must be at least 1"),
        ("/invites?limit=lots", "limit: "),
    ] {
        let (status, body) = api.call(Method::GET, path, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert_eq!(body["code"], "bad_request", "{body}");
        assert!(
            body["message"].as_str().unwrap().starts_with(words),
            "{path}: {body}"
        );
    }
}

/// On one machine, a page opened as localhost when the links say 127.0.0.1
/// (or the other way) goes to the links' name, where the session cookie
/// is; another port (a proxy in front) and the API are left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_under_the_other_local_name_goes_to_the_public_one() {
    let api = start(|_| {}).await;
    let port = api.url().rsplit(':').next().unwrap().to_string();
    let get = |path: &'static str, host: String| {
        let req = api
            .client
            .get(format!("{}{path}", api.url()))
            .header("host", host);
        async move { req.send().await.unwrap() }
    };
    let moved = get("/invites?state=live", format!("localhost:{port}")).await;
    assert_eq!(moved.status(), StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(
        moved.headers()["location"],
        format!(
            "{}/login?next=/invites%3Fstate%3Dlive&from=elsewhere",
            api.url()
        )
        .as_str()
    );
    for (path, host) in [
        ("/invites", format!("127.0.0.1:{port}")),
        ("/invites", "localhost:8081".to_string()),
        ("/api/v1/settings", format!("localhost:{port}")),
    ] {
        let resp = get(path, host.clone()).await;
        assert_ne!(
            resp.status(),
            StatusCode::TEMPORARY_REDIRECT,
            "{path} as {host}"
        );
    }
}
