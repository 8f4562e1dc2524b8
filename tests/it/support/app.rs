//! A running Muster for one test: in this process, on a port of its own,
//! with its data in a temporary folder, an API token, and helpers to call
//! it the way clients do.

use std::sync::Arc;

use muster::App;
use muster::config::{Config, HttpUrl};
use muster::domain::invite::Invite;
use muster::service::{Clock, InviteView, Muster, SystemClock};
use muster::store::Actor;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::{TestDir, free_port, http, wait_for_async};

pub struct TestApp {
    pub app: App,
    pub dir: TestDir,
    pub client: reqwest::Client,
    /// An API token's secret (name "tests").
    pub token: String,
}

/// The running app's own fields and methods (`muster`, `url()`, `addr`).
impl std::ops::Deref for TestApp {
    type Target = App;

    fn deref(&self) -> &App {
        &self.app
    }
}

impl TestApp {
    /// Starts Muster on the test configuration as `tweak` changes it. The
    /// public URL is the address it listens on, so browsers and links work.
    pub async fn spawn(tweak: impl FnOnce(&mut Config)) -> Self {
        Self::spawn_with_clock(tweak, Arc::new(SystemClock)).await
    }

    pub async fn spawn_with_clock(tweak: impl FnOnce(&mut Config), clock: Arc<dyn Clock>) -> Self {
        Self::spawn_in(TestDir::new(), tweak, clock).await
    }

    /// As [`TestApp::spawn_with_clock`], with its data in `dir` (where a
    /// test may have started the mail stack first).
    pub async fn spawn_in(
        dir: TestDir,
        tweak: impl FnOnce(&mut Config),
        clock: Arc<dyn Clock>,
    ) -> Self {
        let mut config = dir.config();
        let port = free_port();
        config.listen = format!("127.0.0.1:{port}").parse().unwrap();
        config.public_url = HttpUrl::parse(&format!("http://127.0.0.1:{port}")).unwrap();
        tweak(&mut config);
        Self::start(dir, config, clock).await
    }

    /// Starts Muster on a configuration the test made (its data where
    /// that says); `dir` is then only a scratch folder.
    pub async fn on(config: Config) -> Self {
        Self::start(TestDir::new(), config, Arc::new(SystemClock)).await
    }

    pub async fn on_with_clock(config: Config, clock: Arc<dyn Clock>) -> Self {
        Self::start(TestDir::new(), config, clock).await
    }

    /// Starts Muster on `config` with its data in `dir` (a restart).
    pub async fn start(dir: TestDir, config: Config, clock: Arc<dyn Clock>) -> Self {
        let app = App::build_with_clock(config, clock).await.unwrap();
        let (_, token) = app.muster.create_api_token("tests", &Actor::cli()).unwrap();
        Self {
            app,
            dir,
            client: http(),
            token,
        }
    }

    pub fn muster(&self) -> &Arc<Muster> {
        &self.app.muster
    }

    pub fn url(&self) -> String {
        self.app.url()
    }

    /// The full URL of an API path (`/capacity` → `…/api/v1/capacity`).
    pub fn api(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.url())
    }

    /// The setup link of an invite's current generation.
    pub fn link(&self, invite: &Invite) -> String {
        format!(
            "{}/invite/{}",
            self.url(),
            self.muster().invite_token(invite).unwrap().as_str()
        )
    }

    /// An API call with the token; the body parsed as JSON when it is.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.call_with(method, path, body, &[]).await
    }

    pub async fn call_with(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let mut req = self
            .client
            .request(method, self.api(path))
            .bearer_auth(&self.token);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// A GET of any path: (status, body).
    pub async fn get(&self, path: &str) -> (u16, String) {
        let r = self
            .client
            .get(format!("{}{path}", self.url()))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// Stops it and hands back its data folder, for a test that goes on
    /// with the files (or the CLI) after the server is gone.
    pub async fn stop(self) -> TestDir {
        self.app.shutdown().await;
        self.dir
    }

    pub async fn shutdown(self) {
        self.app.shutdown().await;
    }
}

/// The invites once every one is sent or failed (waiting up to `within`).
pub async fn final_views(
    app: &App,
    ids: &[String],
    within: std::time::Duration,
) -> Vec<InviteView> {
    views_once(app, ids, within, "every invite sent or failed", |v| {
        v.delivery_state == "sent" || v.delivery_state == "failed"
    })
    .await
}

/// The invites once every one has been tried and is not being sent (sent,
/// deferred or failed), waiting up to `within`.
pub async fn tried_views(
    app: &App,
    ids: &[String],
    within: std::time::Duration,
) -> Vec<InviteView> {
    views_once(app, ids, within, "every invite tried", |v| {
        v.attempts >= 1 && v.delivery_state != "sending"
    })
    .await
}

async fn views_once(
    app: &App,
    ids: &[String],
    within: std::time::Duration,
    what: &str,
    done: impl Fn(&InviteView) -> bool,
) -> Vec<InviteView> {
    wait_for_async(what, within, || async {
        let views: Vec<InviteView> = ids
            .iter()
            .map(|id| app.muster.get_invite(id).unwrap())
            .collect();
        views.iter().all(&done).then_some(views)
    })
    .await
}
