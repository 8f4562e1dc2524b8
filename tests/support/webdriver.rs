//! A small W3C WebDriver client for Debian's chromium and chromedriver.
//! Each step can be photographed; when a test fails, its photos are kept
//! under `target/browser-failures/<test>/`.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

use super::{free_port, have_command, require};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub fn available() -> bool {
    require(
        "chromium and chromedriver (apt packages chromium chromium-driver)",
        have_command("chromium") && have_command("chromedriver"),
    )
}

pub struct Browser {
    http: reqwest::Client,
    base: String,
    driver: Child,
    name: String,
    shots: Vec<(String, Vec<u8>)>,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub async fn start(name: &str) -> Self {
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let http = super::http();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = http.get(format!("{base}/status")).send().await
                && r.status().is_success()
            {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1280,1000",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
        }}});
        let resp: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = resp["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {resp}"))
            .to_string();
        Self {
            http,
            base: format!("{base}/session/{session}"),
            driver,
            name: name.to_string(),
            shots: Vec::new(),
            _profile: profile,
        }
    }

    async fn cmd(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp: Value = req
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        match resp["value"].get("error") {
            Some(e) => Err(format!("{e}: {}", resp["value"]["message"])),
            None => Ok(resp["value"].clone()),
        }
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value, String> {
        self.cmd(reqwest::Method::POST, path, Some(body)).await
    }

    async fn get(&self, path: &str) -> Result<Value, String> {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json::<Value>()
            .await
            .map(|v| v["value"].clone())
            .map_err(|e| e.to_string())
    }

    pub async fn goto(&self, url: &str) {
        self.post("/url", json!({"url": url})).await.unwrap();
    }

    pub async fn url(&self) -> String {
        self.get("/url")
            .await
            .unwrap()
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub async fn set_size(&self, width: u32, height: u32) {
        self.post("/window/rect", json!({"width": width, "height": height}))
            .await
            .unwrap();
    }

    async fn try_find(&self, css: &str) -> Option<String> {
        self.post("/element", json!({"using": "css selector", "value": css}))
            .await
            .ok()
            .and_then(|v| v[ELEMENT].as_str().map(str::to_string))
    }

    /// Waits for an element matching `css` to exist and be shown.
    pub async fn wait(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(id) = self.try_find(css).await
                && self.get(&format!("/element/{id}/displayed")).await.ok()
                    == Some(Value::Bool(true))
            {
                return id;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {css} on {}", self.url().await);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the text of `css` contains `want`; returns the text.
    pub async fn wait_text(&self, css: &str, want: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut last = String::new();
        loop {
            if let Some(id) = self.try_find(css).await
                && let Ok(v) = self.get(&format!("/element/{id}/text")).await
            {
                last = v.as_str().unwrap_or_default().to_string();
                if last.contains(want) {
                    return last;
                }
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {want:?} in {css}; it says {last:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn click(&self, css: &str) {
        let id = self.wait(css).await;
        self.post(&format!("/element/{id}/click"), json!({}))
            .await
            .unwrap();
    }

    /// Clears the field and types `text`.
    pub async fn type_in(&self, css: &str, text: &str) {
        let id = self.wait(css).await;
        let _ = self.post(&format!("/element/{id}/clear"), json!({})).await;
        self.post(&format!("/element/{id}/value"), json!({"text": text}))
            .await
            .unwrap();
    }

    /// Sets a field's value and fires `change`, as leaving the field does.
    pub async fn edit(&self, css: &str, value: &str) {
        self.wait(css).await;
        let script = format!(
            "const e = document.querySelector({css}); e.value = {value}; e.dispatchEvent(new Event('change'));",
            css = serde_json::to_string(css).unwrap(),
            value = serde_json::to_string(value).unwrap()
        );
        self.run(&script).await;
    }

    /// Chooses a local file in an `<input type=file>`.
    pub async fn upload(&self, css: &str, path: &std::path::Path) {
        let id = self
            .try_find(css)
            .await
            .unwrap_or_else(|| panic!("no {css}"));
        self.post(
            &format!("/element/{id}/value"),
            json!({"text": path.display().to_string()}),
        )
        .await
        .unwrap();
    }

    pub async fn text(&self, css: &str) -> String {
        let id = self.wait(css).await;
        self.get(&format!("/element/{id}/text"))
            .await
            .unwrap()
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub async fn count(&self, css: &str) -> usize {
        self.post("/elements", json!({"using": "css selector", "value": css}))
            .await
            .map(|v| v.as_array().map(Vec::len).unwrap_or(0))
            .unwrap_or(0)
    }

    pub async fn attribute(&self, css: &str, name: &str) -> Option<String> {
        let id = self.wait(css).await;
        self.get(&format!("/element/{id}/property/{name}"))
            .await
            .ok()
            .and_then(|v| match v {
                Value::String(s) => Some(s),
                Value::Bool(b) => Some(b.to_string()),
                Value::Null => None,
                other => Some(other.to_string()),
            })
    }

    /// Runs an async script; `done` is the last argument it must call.
    pub async fn run_async(&self, script: &str) -> Value {
        self.post("/execute/async", json!({"script": script, "args": []}))
            .await
            .unwrap()
    }

    pub async fn run(&self, script: &str) -> Value {
        self.post("/execute/sync", json!({"script": script, "args": []}))
            .await
            .unwrap()
    }

    /// Takes a photo of this step; kept only if the test fails.
    pub async fn step(&mut self, name: &str) {
        if let Ok(v) = self.get("/screenshot").await
            && let Some(b64) = v.as_str()
            && let Ok(png) = base64::engine::general_purpose::STANDARD.decode(b64)
        {
            self.shots.push((name.to_string(), png));
        }
    }

    /// Polls `f` until it returns Some.
    pub async fn until<T, F, Fut>(&self, what: &str, mut f: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        super::wait_for_async(what, Duration::from_secs(20), &mut f).await
    }
}

impl Browser {
    /// Ends the session, closing the browser.
    pub async fn quit(&self) {
        let _ = self.http.delete(&self.base).send().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("target/browser-failures")
                .join(&self.name);
            let _ = std::fs::create_dir_all(&dir);
            for (n, (name, png)) in self.shots.iter().enumerate() {
                let _ = std::fs::write(dir.join(format!("{n:02}-{name}.png")), png);
            }
            eprintln!("screenshots of each step: {}", dir.display());
        }
        unsafe { libc::kill(self.driver.id() as i32, libc::SIGTERM) };
        let _ = self.driver.wait();
        // Chromium processes left by a failed test: found by their own profile folder.
        let _ = Command::new("pkill")
            .arg("-f")
            .arg(self._profile.path())
            .status();
    }
}
