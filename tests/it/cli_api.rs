//! `muster invite --api`: a list of any length sent in calls of at most
//! 100, safe to run again.

use crate::support::app::TestApp;
use crate::support::*;
use muster::store::Actor;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_sends_250_rows_in_three_calls_and_reruns_safely() {
    let t = TestDir::new();
    let mut config = t.config();
    config.domains[0].mailbox_cap = 1000;
    let app = TestApp::on(config).await;
    let (_, token) = app.muster.create_api_token("hr", &Actor::cli()).unwrap();
    let mut rows: String = "email,storage_allocation_mb\n".into();
    for i in 0..250 {
        rows.push_str(&format!("person{i}@elsewhere.org,\n"));
    }
    let file = t.write("people.csv", rows);
    let url = app.url();
    // No local configuration is needed to talk to a running Muster.
    let run_cli = |file: std::path::PathBuf, url: String, token: String| {
        tokio::task::spawn_blocking(move || {
            run(
                muster(&["invite", "--api", &url, "--token", &token])
                    .arg(&file)
                    .current_dir(std::env::temp_dir()),
                None,
            )
        })
    };
    let out = run_cli(file.clone(), url.clone(), token.clone())
        .await
        .unwrap();
    let stdout = text(&out.stdout);
    assert_exit(&out, 0);
    assert!(
        stdout.contains("3 calls: all accepted; 250 invites"),
        "{stdout}"
    );
    assert!(
        stdout.contains("call 3/3: lines 202-251: 50 invites"),
        "{stdout}"
    );
    let batches = app.muster.view().unwrap().batches().unwrap();
    assert_eq!(batches.len(), 3);
    let mut sizes: Vec<usize> = batches.iter().map(|b| b.invite_count).collect();
    sizes.sort();
    assert_eq!(sizes, [50, 100, 100]);

    // Run again: the same calls replay; nothing new is created.
    let out = run_cli(file.clone(), url.clone(), token.clone())
        .await
        .unwrap();
    assert_exit(&out, 0);
    assert_eq!(app.muster.view().unwrap().batches().unwrap().len(), 3);
    assert_eq!(app.muster.view().unwrap().invite_count().unwrap(), 250);

    // A file with one bad row: that call is refused with the file's line,
    // the others go through, and the exit status says so.
    let mut rows: String = String::new();
    for i in 0..150 {
        if i == 120 {
            rows.push_str("not-an-address\n");
        } else {
            rows.push_str(&format!("new{i}@elsewhere.org\n"));
        }
    }
    let bad = t.write("bad.txt", rows);
    let out = run_cli(bad.clone(), url.clone(), token.clone())
        .await
        .unwrap();
    let stdout = text(&out.stdout);
    assert_exit(&out, 1);
    assert!(stdout.contains("line 121: "), "{stdout}");
    assert!(
        stdout.contains("2 calls: 1 accepted, 1 refused or not sent")
            && stdout.contains("Fix the rows above"),
        "{stdout}"
    );
    assert_eq!(app.muster.view().unwrap().batches().unwrap().len(), 4);
    // Fix the row and run again: the accepted call replays, the fixed one is sent.
    let fixed = std::fs::read_to_string(&bad)
        .unwrap()
        .replace("not-an-address", "new120@elsewhere.org");
    std::fs::write(&bad, fixed).unwrap();
    let out = run_cli(bad, url.clone(), token.clone()).await.unwrap();
    assert_exit(&out, 0);
    assert_eq!(app.muster.view().unwrap().batches().unwrap().len(), 5);
    assert_eq!(app.muster.view().unwrap().invite_count().unwrap(), 400);

    // A wrong token: the first call says so, no more are sent, and the
    // advice is about the token, not the rows.
    let out = run_cli(file.clone(), app.url(), "not-a-token".into())
        .await
        .unwrap();
    let stdout = text(&out.stdout);
    assert_exit(&out, 1);
    assert!(
        stdout.contains("call 1/3: lines 2-101: refused (403): this API token is not known")
            && stdout.contains("nothing more was sent")
            && stdout.contains("3 calls: 0 accepted, 3 refused or not sent")
            && stdout.contains("Check --token"),
        "{stdout}"
    );
    assert!(!stdout.contains("call 2/3"), "{stdout}");
    app.shutdown().await;

    // Muster not running there: said in words, no status 0.
    let out = run_cli(file, url, token).await.unwrap();
    let stdout = text(&out.stdout);
    assert_exit(&out, 1);
    assert!(
        stdout.contains("call 1/3: lines 2-101: cannot reach Muster at http://")
            && stdout.contains("Check the --api address"),
        "{stdout}"
    );
    assert!(!stdout.contains("(0)"), "{stdout}");
}

/// The file's names and languages travel with its rows: the invite greets
/// the recipient by name, in their language.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_carries_each_rows_name_and_language() {
    let t = TestDir::new();
    let app = TestApp::on(t.config()).await;
    let (_, token) = app.muster.create_api_token("hr", &Actor::cli()).unwrap();
    let file = t.write(
        "people.csv",
        "email,storage_allocation_mb,display_name,locale\nyara@elsewhere.org,100,Yara Yilmaz,de\n",
    );
    let url = app.url();
    let out = tokio::task::spawn_blocking(move || {
        run(
            muster(&["invite", "--api", &url, "--token", &token])
                .arg(&file)
                .current_dir(std::env::temp_dir()),
            None,
        )
    })
    .await
    .unwrap();
    assert_exit(&out, 0);
    let batch = app.muster.view().unwrap().batches().unwrap().remove(0);
    let invite = app
        .muster
        .view()
        .unwrap()
        .invites_of_batch(&batch.id)
        .unwrap()
        .remove(0);
    assert_eq!(invite.display_name.as_deref(), Some("Yara Yilmaz"));
    assert_eq!(invite.locale.as_deref(), Some("de"));
    let outbox = app.muster.config.outbox_dir();
    let eml = wait_for(
        "the invite in the outbox",
        std::time::Duration::from_secs(20),
        || {
            std::fs::read_dir(&outbox)
                .ok()?
                .filter_map(Result::ok)
                .find(|e| e.path().extension().is_some_and(|x| x == "eml"))
                .map(|e| std::fs::read_to_string(e.path()).unwrap())
        },
    );
    let mail = mail_parser::MessageParser::default()
        .parse(eml.as_bytes())
        .unwrap();
    let body = mail.body_text(0).unwrap();
    assert!(body.starts_with("Hallo Yara Yilmaz,"), "{body}");
    app.shutdown().await;
}
