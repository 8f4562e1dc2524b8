//! `muster invite --api`: a list of any length checked whole, then sent in
//! calls of at most 100, safe to run again.

use crate::support::app::TestApp;
use crate::support::*;
use muster::store::Actor;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_checks_the_whole_file_sends_250_rows_in_three_calls_and_reruns_safely() {
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
    let run_cli_with =
        |file: std::path::PathBuf, url: String, token: String, more: &'static [&'static str]| {
            tokio::task::spawn_blocking(move || {
                run(
                    muster(&["invite", "--api", &url, "--token", &token])
                        .args(more)
                        .arg(&file)
                        .current_dir(std::env::temp_dir()),
                    None,
                )
            })
        };
    let run_cli = |file, url, token| run_cli_with(file, url, token, &[]);
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

    // Run again: every row's invite is pending; nothing new is created.
    let out = run_cli(file.clone(), url.clone(), token.clone())
        .await
        .unwrap();
    assert_exit(&out, 0);
    assert!(
        text(&out.stdout).contains("250 rows' invites are already pending (line 2, line 3, line 4 and 247 more): not sent again.\nNothing to send: every row's invite is already pending."),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(app.muster.view().unwrap().batches().unwrap().len(), 3);
    assert_eq!(app.muster.view().unwrap().invite_count().unwrap(), 250);

    // A file with a bad row, and a repeat that would fall in another call:
    // the whole file is checked first, and nothing is sent.
    let mut rows: String = String::new();
    for i in 0..150 {
        match i {
            120 => rows.push_str("not-an-address\n"),
            130 => rows.push_str("new6@elsewhere.org\n"),
            _ => rows.push_str(&format!("new{i}@elsewhere.org\n")),
        }
    }
    let bad = t.write("bad.txt", rows);
    let out = run_cli(bad.clone(), url.clone(), token.clone())
        .await
        .unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_exit(&out, 1);
    assert!(
        stdout.contains("line 121: ") && stdout.contains("(invalid_recipient_email)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("line 131: new6@elsewhere.org is already invited by line 7"),
        "{stdout}"
    );
    assert!(
        stderr.contains("Nothing was sent: 2 rows are flagged. Fix them, or pass --only-clean to send the 148 clean rows."),
        "{stderr}"
    );
    assert_eq!(app.muster.view().unwrap().batches().unwrap().len(), 3);

    // --only-clean sends the clean rows and leaves the flagged ones out.
    let out = run_cli_with(bad.clone(), url.clone(), token.clone(), &["--only-clean"])
        .await
        .unwrap();
    let stdout = text(&out.stdout);
    assert_exit(&out, 0);
    assert!(
        stdout.contains("2 flagged rows are left out")
            && stdout.contains("2 calls: all accepted; 148 invites"),
        "{stdout}"
    );
    assert_eq!(app.muster.view().unwrap().invite_count().unwrap(), 398);
    // Fixed and run again: what went is not sent again; the fixed rows go.
    let fixed = std::fs::read_to_string(&bad)
        .unwrap()
        .replace("not-an-address", "new120@elsewhere.org")
        .replace("new6@elsewhere.org\nnew131", "new130@elsewhere.org\nnew131");
    std::fs::write(&bad, fixed).unwrap();
    let out = run_cli(bad, url.clone(), token.clone()).await.unwrap();
    let stdout = text(&out.stdout);
    assert_exit(&out, 0);
    assert!(
        stdout.contains(
            "148 rows' invites are already pending (line 1, line 2, line 3 and 145 more)"
        ) && stdout.contains("1 call: all accepted; 150 invites created or already created"),
        "{stdout}"
    );
    assert_eq!(app.muster.view().unwrap().invite_count().unwrap(), 400);

    // A mailbox whose pending invite went to someone else is not "already
    // sent": it is flagged, naming that recipient.
    let other = t.write("other.txt", "new1@other.org\n");
    let out = run_cli(other, url.clone(), token.clone()).await.unwrap();
    assert_exit(&out, 1);
    assert!(
        text(&out.stdout).contains(
            "line 1: an invite for new1@team.example is already pending, to new1@elsewhere.org: resend or revoke that one, or choose another mailbox name (local_part) (invite_pending)"
        ),
        "{}",
        text(&out.stdout)
    );

    // Longer than one preview (500 rows): a repeat across windows, and all
    // the clean rows together past the cap (600 places are left).
    let long = |n: usize, repeat: bool| {
        let mut rows = String::new();
        for i in 0..n {
            if repeat && i == 550 {
                rows.push_str("long1@elsewhere.org\n");
            } else {
                rows.push_str(&format!("long{i}@elsewhere.org\n"));
            }
        }
        rows
    };
    let repeated = t.write("repeated.txt", long(560, true));
    let out = run_cli(repeated, url.clone(), token.clone()).await.unwrap();
    assert_exit(&out, 1);
    assert!(
        text(&out.stdout).contains(
            "line 551: long1@elsewhere.org is already invited by line 2 (duplicate_recipient)"
        ),
        "{}",
        text(&out.stdout)
    );
    let too_many = t.write("too-many.txt", long(700, false));
    let out = run_cli(too_many.clone(), url.clone(), token.clone())
        .await
        .unwrap();
    assert_exit(&out, 1);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("line 601: past the cap of 1000 mailboxes for team.example: 0 exist, 400 invites are pending and the rows above take the other 600; raise mailbox_cap for team.example in muster.toml, or leave rows out (over_cap)"),
        "{stdout}"
    );
    assert!(stdout.contains("line 700: past the cap"), "{stdout}");
    assert!(!stdout.contains("line 600: past"), "{stdout}");
    assert!(
        text(&out.stderr).contains("100 rows are flagged"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(app.muster.view().unwrap().invite_count().unwrap(), 400);
    // --only-clean sends what fits: the first 600, in file order.
    let out = run_cli_with(too_many, url.clone(), token.clone(), &["--only-clean"])
        .await
        .unwrap();
    assert_exit(&out, 0);
    assert!(
        text(&out.stdout).contains("100 flagged rows are left out."),
        "{}",
        text(&out.stdout)
    );
    let view = app.muster.view().unwrap();
    assert_eq!(view.invite_count().unwrap(), 1000);

    // A wrong token: the check says so, nothing is sent, and the advice is
    // about the token, not the rows.
    let out = run_cli(file.clone(), app.url(), "not-a-token".into())
        .await
        .unwrap();
    let stdout = text(&out.stdout);
    assert_exit(&out, 1);
    assert!(
        stdout.contains("checking the file: refused (403): this API token is not known")
            && stdout.contains("nothing was sent")
            && stdout.contains("Check --token"),
        "{stdout}"
    );
    app.shutdown().await;

    // Muster not running there: said in words, no status 0.
    let out = run_cli(file, url, token).await.unwrap();
    let stdout = text(&out.stdout);
    assert_exit(&out, 1);
    assert!(
        stdout.contains("checking the file: cannot reach Muster at http://")
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
