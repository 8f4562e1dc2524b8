//! Faults: the relay down and back, a full data folder, a passwd-file locked
//! by another writer, a failing reload command, and kill -9 during
//! redemptions. (kill -9 during a 500-invite send is in tests/send.rs.)

use std::time::Duration;

use crate::support::app::TestApp;
use crate::support::smtp_peer::Peer;
use crate::support::*;
use muster::service::ServiceError;
use muster::store::Store;

async fn redeem(client: &reqwest::Client, url: &str, link: &str) -> (u16, String) {
    submit_password(client, &format!("{url}{link}"), PASSWORD, PASSWORD).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_down_for_the_whole_run_then_back() {
    let t = TestDir::new();
    let port = free_port();
    let mut config = t.config();
    config.smtp.host = Some("127.0.0.1".into());
    config.smtp.port = port;
    config.smtp.tls = muster::config::SmtpTls::None;
    config.smtp.rate_per_minute = 0;
    config.smtp.retry_initial_secs = 1;
    config.smtp.retry_max_secs = 2;
    let app = TestApp::on(config).await;
    let created = app.muster.create_batch(invite_batch(5, "down")).unwrap();
    let ids: Vec<String> = created.invites.iter().map(|i| i.id.clone()).collect();
    // Nothing listens: every invite is deferred with the reason, none lost.
    let deferred = wait_for_async("all deferred", Duration::from_secs(30), || async {
        let views: Vec<_> = ids
            .iter()
            .map(|id| app.muster.get_invite(id).unwrap())
            .collect();
        views
            .iter()
            .all(|v| v.delivery_state == "deferred" && v.attempts >= 2)
            .then_some(views)
    })
    .await;
    assert!(
        deferred[0]
            .delivery_detail
            .as_deref()
            .unwrap()
            .contains(&format!("127.0.0.1:{port}")),
        "{:?}",
        deferred[0]
    );
    // Each invite's task is still queued, for its next try.
    let view = app.muster.store.read().unwrap();
    for id in &ids {
        assert!(
            view.task(&muster::store::Task::invite_task_id(id))
                .unwrap()
                .is_some(),
            "{id}"
        );
    }
    drop(view);
    // The relay comes back: every invite goes out, once.
    let peer = Peer::start_on(port, vec![]).await;
    wait_for_async("all sent", Duration::from_secs(30), || async {
        ids.iter()
            .all(|id| app.muster.get_invite(id).unwrap().delivery_state == "sent")
            .then_some(())
    })
    .await;
    let mut to: Vec<String> = peer.received().into_iter().map(|r| r.rcpt).collect();
    to.sort();
    assert_eq!(
        to,
        (0..5)
            .map(|i| format!("down{i}@elsewhere.org"))
            .collect::<Vec<_>>()
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_data_folder_gives_a_clear_error_and_no_corrupt_store() {
    let t = TestDir::new();
    std::fs::create_dir_all(t.data()).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(t.data())
        .status()
        .is_ok_and(|s| s.success());
    if !require("a tmpfs mount for the data folder (needs root)", mounted) {
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }
    let _unmount = Unmount(t.data());
    let mut config = t.config();
    config.domains[0].mailbox_cap = 10_000;
    {
        let app = TestApp::on(config.clone()).await;
        let token = app.token.clone();
        app.muster.create_batch(invite_batch(20, "before")).unwrap();
        // The 20 are written to the outbox and recorded before the disk fills.
        wait_for("the first batch sent", Duration::from_secs(30), || {
            (app.muster
                .store
                .read()
                .unwrap()
                .due_task_count(app.muster.now())
                .unwrap()
                == 0)
                .then_some(())
        });
        // Fill the folder, leaving too little for a batch of 500.
        let filler = t.data().join("filler");
        let mut size = 4 * 1024 * 1024;
        loop {
            if std::fs::write(&filler, vec![0u8; size]).is_ok() {
                break;
            }
            size -= 64 * 1024;
        }
        let err = app
            .muster
            .create_batch(invite_batch(500, "full"))
            .unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, ServiceError::Store(_)), "{message}");
        assert!(message.contains("No space left on device"), "{message}");
        std::fs::remove_file(&filler).unwrap();
        // redb takes no writes after a failed one until reopened: the server
        // says so (and `muster serve` exits for its supervisor to restart it).
        assert!(app.muster.store.needs_restart());
        let ready = http()
            .get(format!("{}/readyz", app.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(ready.status(), 503);
        assert!(ready.text().await.unwrap().contains("is the disk full?"));
        // The API says so too: 503 with a code and what to do, not a bare 500.
        let r = http()
            .post(format!("{}/api/v1/mailboxes/invites:bulk", app.url()))
            .bearer_auth(&token)
            .json(&serde_json::json!({"items": [{"local_part": "a", "recipient_email": "a@elsewhere.org"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 503);
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["code"], "store_unavailable", "{body}");
        assert!(body["message"].as_str().unwrap().contains("Free space"));
        app.shutdown().await;
    }
    // Reopened, the store is whole: the first batch, nothing of the refused one.
    let app = TestApp::on(config).await;
    let view = app.muster.view().unwrap();
    let batches = view.batches().unwrap();
    assert_eq!(batches.len(), 1);
    assert_eq!(view.invites_of_batch(&batches[0].id).unwrap().len(), 20);
    assert_eq!(
        view.invite_count().unwrap(),
        20,
        "nothing of the refused batch"
    );
    drop(view);
    app.muster.create_batch(invite_batch(5, "after")).unwrap();
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passwd_file_locked_by_another_writer_fails_cleanly() {
    let t = TestDir::new();
    let app = TestApp::on(t.config()).await;
    let created = app.muster.create_batch(invite_batch(1, "locked")).unwrap();
    let link = format!(
        "/invite/{}",
        app.muster
            .invite_token(&created.invites[0])
            .unwrap()
            .as_str()
    );
    let lock = hold_passwd_lock(&app.muster.config);
    let client = http();
    let (status, page) = redeem(&client, &app.url(), &link).await;
    assert_eq!(status, 503, "{page}");
    let v = app.muster.get_invite(&created.invites[0].id).unwrap();
    assert_eq!(v.link_state, "live");
    assert!(
        v.last_error
            .as_deref()
            .unwrap()
            .contains("locked by another writer"),
        "{v:?}"
    );
    // The other writer finishes: the same link works.
    drop(lock);
    let (status, page) = redeem(&client, &app.url(), &link).await;
    assert_eq!(status, 200, "{page}");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_reload_command_fails_cleanly() {
    let t = TestDir::new();
    let mut config = t.config();
    config.mail_host.reload_command = Some("echo 'postfix: fatal: no config' >&2; exit 7".into());
    let app = TestApp::on(config).await;
    let created = app.muster.create_batch(invite_batch(1, "reload")).unwrap();
    let link = format!(
        "/invite/{}",
        app.muster
            .invite_token(&created.invites[0])
            .unwrap()
            .as_str()
    );
    let (status, _) = redeem(&http(), &app.url(), &link).await;
    assert_eq!(status, 503);
    let v = app.muster.get_invite(&created.invites[0].id).unwrap();
    assert_eq!(v.link_state, "live");
    let err = v.last_error.unwrap();
    assert!(
        err.contains("exit status: 7") && err.contains("no config"),
        "{err}"
    );
    // Nothing half-done: neither the map line nor the passwd-file line.
    let map = std::fs::read_to_string(app.muster.config.postfix_map()).unwrap_or_default();
    assert!(!map.contains("reload0@"), "{map}");
    let passwd = std::fs::read_to_string(app.muster.config.passwd_file()).unwrap_or_default();
    assert!(!passwd.contains("reload0@"));
    app.shutdown().await;
}

/// kill -9 while redemptions run: afterwards each invite is either redeemed
/// with exactly one passwd-file line, or live with none, and every live
/// link still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_kill_during_redemptions_provisions_each_mailbox_once_or_not_at_all() {
    let t = TestDir::new();
    let mut config = t.config();
    let port = free_port();
    config.listen = format!("127.0.0.1:{port}").parse().unwrap();
    config.public_url =
        muster::config::HttpUrl::parse(&format!("http://127.0.0.1:{port}")).unwrap();
    config.domains[0].mailbox_cap = 100;
    config.http.link_rate_per_minute = 10_000;
    let path = t.write_config(&config);
    let roster: String = (0..30).map(|i| format!("k{i}@elsewhere.org\n")).collect();
    let roster = t.write("team.txt", roster);
    let cfg = path.display().to_string();
    let out = tokio::task::spawn_blocking(move || {
        run(muster(&["--config", &cfg, "invite"]).arg(&roster), None)
    })
    .await
    .unwrap();
    assert_exit(&out, 0);
    // The links, from the emails in the outbox.
    let links: Vec<String> = std::fs::read_dir(t.data().join("outbox"))
        .unwrap()
        .map(|e| {
            let text =
                String::from_utf8_lossy(&std::fs::read(e.unwrap().path()).unwrap()).into_owned();
            let start = text.find("/invite/").unwrap();
            text[start..start + "/invite/".len() + 43].to_string()
        })
        .collect();
    assert_eq!(links.len(), 30);

    let url = format!("http://127.0.0.1:{port}");
    let mut server = spawn_serve(&path);
    let client = http();
    wait_healthy(&url, Duration::from_secs(20)).await;
    let mut tasks = Vec::new();
    for link in links.clone() {
        let (client, url) = (client.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let url = format!("{url}{link}");
            // The server is killed under these: any answer, or none, will do.
            if let Ok(r) = client.get(&url).send().await
                && let Ok(page) = r.text().await
                && page.contains("form_token")
            {
                let _ = client
                    .post(&url)
                    .form(&[
                        ("password", PASSWORD),
                        ("confirmation", PASSWORD),
                        ("form_token", form_token(&page).as_str()),
                    ])
                    .send()
                    .await;
            }
        }));
    }
    // Kill as soon as some redemptions have written the passwd-file.
    let passwd = config.passwd_file();
    wait_for("a few redemptions", Duration::from_secs(60), || {
        let n = std::fs::read_to_string(&passwd)
            .map(|t| t.lines().count())
            .unwrap_or(0);
        (n >= 3).then_some(())
    });
    server.kill().unwrap();
    server.wait().unwrap();
    for t in tasks {
        let _ = t.await;
    }

    // The restart finishes or undoes interrupted redemptions.
    let mut server = spawn_serve(&path);
    wait_healthy(&url, Duration::from_secs(20)).await;
    let lines = |addr: &str| {
        std::fs::read_to_string(&passwd)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with(&format!("{addr}:")))
            .count()
    };
    let mut redeemed = 0;
    for link in &links {
        let (status, page) = redeem(&client, &url, link).await;
        assert_eq!(status, 200, "{page}");
        if page.contains("already set up") {
            redeemed += 1;
        } else {
            assert!(page.contains("Your mailbox is ready"), "{page}");
        }
    }
    assert!(redeemed >= 3, "the ones done before the kill stayed done");
    for i in 0..30 {
        assert_eq!(
            lines(&format!("k{i}@team.example")),
            1,
            "k{i} is provisioned exactly once"
        );
    }
    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    server.wait().unwrap();
    let store = Store::open(&config.store_path()).expect("the store opens cleanly");
    assert!(store.read().unwrap().redeeming().unwrap().is_empty());
}

/// The store file deleted while Muster runs: nothing more is written to
/// the file nobody will open again; `/readyz` and the API say what to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_removed_while_muster_runs_takes_nothing_more() {
    let t = TestDir::new();
    let app = TestApp::on(t.config()).await;
    app.muster.create_batch(invite_batch(2, "before")).unwrap();
    std::fs::rename(t.data().join("muster.redb"), t.path().join("moved.redb")).unwrap();
    let ready = http()
        .get(format!("{}/readyz", app.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let said = ready.text().await.unwrap();
    assert!(
        said.contains("was removed, or another file moved into its place, while Muster ran")
            && said.contains("muster restore"),
        "{said}"
    );
    let r = http()
        .post(format!("{}/api/v1/mailboxes/invites:bulk", app.url()))
        .bearer_auth(&app.token)
        .json(&serde_json::json!({"items": [{"recipient_email": "a@elsewhere.org"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], "store_unavailable", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("put the store back"),
        "{body}"
    );
    assert!(
        app.muster.store.needs_restart(),
        "muster serve exits on this"
    );
    app.shutdown().await;
}
