//! A small W3C WebDriver client for two real browsers: Debian's Chromium
//! (chromedriver) and Firefox ESR (geckodriver). Each session also opens
//! WebDriver BiDi to hear the console: every error, uncaught exception and
//! Content-Security-Policy violation fails the test at its next step.
//!
//! Each step is checked at 1280x900 and 390x844 (no sideways scroll) and
//! photographed; when a test fails, its photos are kept under
//! `target/browser-failures/<engine>-<test>/` (with `KEEP_SCREENSHOTS=1`,
//! under `target/screenshots/` for passing tests too).

use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};

use super::{free_port, have_command, require};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// WebDriver's key codes for End and Backspace.
const END: char = '\u{E010}';
const BACKSPACE: char = '\u{E003}';
pub const ESCAPE: char = '\u{E00C}';
pub const TAB: char = '\u{E004}';
pub const ENTER: char = '\u{E007}';

/// The window sizes every page must fit: a laptop and a phone.
pub const SIZES: [(u32, u32); 2] = [(1280, 900), (390, 844)];

/// Runs each named `async fn name(engine: Engine)` once per browser, as
/// the tests `chromium::name` and `firefox::name`.
#[macro_export]
macro_rules! in_both_browsers {
    ($($name:ident),* $(,)?) => {
        mod chromium {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::support::webdriver::Engine::Chromium).await
                }
            )*
        }
        mod firefox {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::support::webdriver::Engine::Firefox).await
                }
            )*
        }
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Chromium,
    Firefox,
}

impl Engine {
    pub fn name(self) -> &'static str {
        match self {
            Engine::Chromium => "chromium",
            Engine::Firefox => "firefox",
        }
    }

    /// Whether the browser and its driver are installed; under CI a
    /// missing one fails the test.
    pub fn available(self) -> bool {
        match self {
            Engine::Chromium => require(
                "chromium and chromedriver (apt packages chromium chromium-driver)",
                have_command("chromium") && have_command("chromedriver"),
            ),
            Engine::Firefox => require(
                "firefox-esr and geckodriver (apt package firefox-esr; cargo install geckodriver)",
                have_command("firefox-esr") && have_command("geckodriver"),
            ),
        }
    }

    fn driver(self, port: u16, log: &std::path::Path) -> Child {
        let log = std::fs::File::create(log).unwrap();
        let mut cmd = match self {
            Engine::Chromium => {
                let mut c = Command::new("chromedriver");
                c.arg(format!("--port={port}"));
                c
            }
            Engine::Firefox => {
                let mut c = Command::new("geckodriver");
                c.arg("--port")
                    .arg(port.to_string())
                    .arg("--websocket-port")
                    .arg(free_port().to_string());
                c
            }
        };
        cmd.stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{} driver starts: {e}", self.name()))
    }

    fn capabilities(self, profile: &std::path::Path, user_agent: Option<&str>) -> Value {
        let mut caps = self.base_capabilities(profile);
        if let Some(ua) = user_agent {
            match self {
                Engine::Chromium => caps["goog:chromeOptions"]["args"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!(format!("--user-agent={ua}"))),
                Engine::Firefox => {
                    caps["moz:firefoxOptions"]["prefs"]["general.useragent.override"] = json!(ua)
                }
            }
        }
        caps
    }

    fn base_capabilities(self, profile: &std::path::Path) -> Value {
        match self {
            Engine::Chromium => json!({
                "browserName": "chrome",
                "webSocketUrl": true,
                "goog:chromeOptions": {
                    "binary": "/usr/bin/chromium",
                    "args": [
                        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                        "--disable-quic", "--no-first-run", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync", "--window-size=1280,900",
                        format!("--user-data-dir={}", profile.display()),
                    ],
                    "prefs": {
                        "download.default_directory": downloads(profile).display().to_string(),
                        "download.prompt_for_download": false,
                    },
                },
            }),
            // The prefs keep a test run from sending anything off the machine.
            Engine::Firefox => json!({
                "browserName": "firefox",
                "webSocketUrl": true,
                "moz:firefoxOptions": {
                    "binary": "/usr/bin/firefox-esr",
                    "args": ["-headless", "-profile", profile.display().to_string()],
                    "prefs": {
                        "app.update.enabled": false,
                        "app.update.auto": false,
                        "browser.safebrowsing.malware.enabled": false,
                        "browser.safebrowsing.phishing.enabled": false,
                        "browser.safebrowsing.downloads.enabled": false,
                        "browser.safebrowsing.blockedURIs.enabled": false,
                        "toolkit.telemetry.enabled": false,
                        "toolkit.telemetry.unified": false,
                        "datareporting.healthreport.uploadEnabled": false,
                        "datareporting.policy.dataSubmissionEnabled": false,
                        "network.captive-portal-service.enabled": false,
                        "network.connectivity-service.enabled": false,
                        "browser.shell.checkDefaultBrowser": false,
                        "extensions.update.enabled": false,
                        "extensions.getAddons.cache.enabled": false,
                        "browser.newtabpage.enabled": false,
                        "browser.startup.homepage": "about:blank",
                        "services.settings.server": "http://127.0.0.1:1/",
                        "browser.region.network.url": "",
                        "geo.provider.network.url": "",
                        "media.gmp-manager.url": "http://127.0.0.1:1/",
                        "network.dns.disablePrefetch": true,
                        "network.prefetch-next": false,
                        "signon.rememberSignons": false,
                        "toolkit.legacyUserProfileCustomizations.stylesheets": true,
                        "browser.download.folderList": 2,
                        "browser.download.dir": downloads(profile).display().to_string(),
                        "browser.download.useDownloadDir": true,
                        "browser.download.always_ask_before_handling_new_types": false,
                        "browser.download.manager.showWhenStarting": false,
                        "browser.helperApps.neverAsk.saveToDisk": "text/csv,application/x-apple-aspen-config",
                    },
                },
            }),
        }
    }
}

/// axe-core's script (npm, pinned in scripts/install-test-deps); under CI
/// a missing one fails the test.
fn axe_source() -> Option<&'static str> {
    static AXE: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    AXE.get_or_init(|| {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("target/npm/node_modules/axe-core/axe.min.js");
        let source = std::fs::read_to_string(path).ok();
        require(
            "axe-core (npm; run scripts/install-test-deps)",
            source.is_some(),
        )
        .then_some(source)
        .flatten()
    })
    .as_deref()
}

/// Whether the accessibility check runs here.
pub fn axe_installed() -> bool {
    axe_source().is_some()
}

/// Where the browser saves downloads: inside its profile folder.
fn downloads(profile: &std::path::Path) -> std::path::PathBuf {
    profile.join("downloads")
}

/// What the console said that a page must never say.
type Heard = Arc<Mutex<Vec<String>>>;

/// The responses a page got that said no (status 400 or more), as
/// "status url": Chromium puts each in its console, where BiDi does not
/// pass it on.
type Refused = Arc<Mutex<Vec<String>>>;

pub struct Browser {
    pub engine: Engine,
    http: reqwest::Client,
    base: String,
    driver: Child,
    name: String,
    shots: Vec<(String, Vec<u8>)>,
    heard: Heard,
    refused: Refused,
    listener: tokio::task::JoinHandle<()>,
    size: (u32, u32),
    profile: tempfile::TempDir,
}

/// Hooks CSP violations into the console before any page script runs.
const PRELOAD: &str = "() => { window.addEventListener('securitypolicyviolation', e => \
console.error('CSP violation: ' + e.violatedDirective + ' blocked ' + (e.blockedURI || 'inline') + \
' in ' + e.sourceFile + ':' + e.lineNumber), true); }";

impl Browser {
    pub async fn start(engine: Engine, name: &str) -> Self {
        Self::start_as(engine, name, None).await
    }

    /// A browser that names itself with `user_agent` (another device).
    pub async fn start_as(engine: Engine, name: &str, user_agent: Option<&str>) -> Self {
        let profile = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(downloads(profile.path())).unwrap();
        if engine == Engine::Firefox {
            // The browser's own toolbars hold its window at 500 px or more;
            // a phone is narrower.
            std::fs::create_dir_all(profile.path().join("chrome")).unwrap();
            std::fs::write(
                profile.path().join("chrome/userChrome.css"),
                ":root, #main-window, #navigator-toolbox, toolbar, #nav-bar, #TabsToolbar { min-width: 0 !important; }\n",
            )
            .unwrap();
        }
        let port = free_port();
        let driver_log = profile.path().with_extension("driver.log");
        let driver = engine.driver(port, &driver_log);
        let http = super::http();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = http.get(format!("{base}/status")).send().await
                && r.status().is_success()
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} driver did not start",
                engine.name()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let caps = json!({"capabilities": {"alwaysMatch": engine.capabilities(profile.path(), user_agent)}});
        // A browser starting on a loaded machine can miss the driver's
        // start-up wait ("DevToolsActivePort file doesn't exist"): tried
        // again, a few times, before the test fails.
        let mut tries = 0;
        let resp: Value = loop {
            tries += 1;
            let resp: Value = http
                .post(format!("{base}/session"))
                .json(&caps)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if resp["value"]["sessionId"].is_string() || tries == 3 {
                break resp;
            }
            eprintln!(
                "{} session not started, trying again: {resp}",
                engine.name()
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
        };
        let session = resp["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no {} session: {resp}", engine.name()))
            .to_string();
        let ws = resp["value"]["capabilities"]["webSocketUrl"]
            .as_str()
            .unwrap_or_else(|| panic!("no BiDi in the {} session: {resp}", engine.name()))
            .to_string();
        let heard: Heard = Arc::default();
        let refused: Refused = Arc::default();
        let listener = listen(&ws, heard.clone(), refused.clone()).await;
        let b = Self {
            engine,
            http,
            base: format!("{base}/session/{session}"),
            driver,
            name: format!("{}-{name}", engine.name()),
            shots: Vec::new(),
            heard,
            refused,
            listener,
            size: SIZES[0],
            profile,
        };
        b.resize(SIZES[0]).await;
        b
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
        self.cmd(reqwest::Method::GET, path, None).await
    }

    /// The files the browser has downloaded (finished ones only).
    pub fn downloads(&self) -> Vec<std::path::PathBuf> {
        std::fs::read_dir(downloads(self.profile.path()))
            .map(|d| {
                d.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| {
                        let name = p.to_string_lossy();
                        !name.ends_with(".crdownload") && !name.ends_with(".part")
                    })
                    .collect()
            })
            .unwrap_or_default()
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

    /// Sets the window to `width` x `height` until the page sees that width.
    async fn resize(&self, (width, height): (u32, u32)) {
        self.post("/window/rect", json!({"width": width, "height": height}))
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let inner = self.run("return window.innerWidth").await;
            if inner.as_u64() == Some(width as u64) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the {} window stays {inner} px wide, not {width}",
                self.engine.name()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sets the size the test works at (steps still check both sizes).
    pub async fn set_size(&mut self, width: u32, height: u32) {
        self.size = (width, height);
        self.resize(self.size).await;
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
                panic!(
                    "timed out waiting for {want:?} in {css} on {}; it says {last:?}",
                    self.url().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn click(&self, css: &str) {
        let id = self.wait(css).await;
        self.post(&format!("/element/{id}/click"), json!({}))
            .await
            .unwrap_or_else(|e| panic!("clicking {css}: {e}"));
    }

    /// Presses `key` (such as [`ESCAPE`]) with the focus on `css`.
    pub async fn press(&self, css: &str, key: char) {
        let id = self.wait(css).await;
        self.post(
            &format!("/element/{id}/value"),
            json!({"text": key.to_string()}),
        )
        .await
        .unwrap_or_else(|e| panic!("pressing a key on {css}: {e}"));
    }

    /// Presses `key` wherever the focus is now (a first Tab from the top
    /// of a page, say), as the keyboard does.
    pub async fn press_anywhere(&self, key: char) {
        let key = key.to_string();
        self.post(
            "/actions",
            json!({"actions": [{"type": "key", "id": "keyboard", "actions": [
                {"type": "keyDown", "value": key}, {"type": "keyUp", "value": key}]}]}),
        )
        .await
        .unwrap_or_else(|e| panic!("pressing a key: {e}"));
    }

    /// Replaces what the field holds with `text`, as a person does: End
    /// (a number field's caret starts at its beginning), Backspace until
    /// it is empty, then the typing.
    /// (WebDriver's clear fires `change` at once, which starts a page's
    /// re-check while the typing is still to come.)
    pub async fn type_in(&self, css: &str, text: &str) {
        let id = self.wait(css).await;
        let held = self
            .get(&format!("/element/{id}/property/value"))
            .await
            .ok()
            .and_then(|v| v.as_str().map(|v| v.chars().count()))
            .unwrap_or(0);
        let keys = format!("{END}{}{text}", BACKSPACE.to_string().repeat(held));
        self.post(&format!("/element/{id}/value"), json!({"text": keys}))
            .await
            .unwrap_or_else(|e| panic!("typing into {css}: {e}"));
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

    /// A DOM property of the first element matching `css`.
    /// An HTML attribute as written in the page (not a DOM property).
    pub async fn html_attribute(&self, css: &str, name: &str) -> Option<String> {
        let id = self.wait(css).await;
        self.get(&format!("/element/{id}/attribute/{name}"))
            .await
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
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

    /// The property of an element that may be hidden (no wait for display).
    pub async fn property(&self, css: &str, name: &str) -> Value {
        self.run(&format!(
            "const e = document.querySelector({}); return e ? e[{}] : null;",
            serde_json::to_string(css).unwrap(),
            serde_json::to_string(name).unwrap()
        ))
        .await
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

    /// What the window shows now, as PNG.
    pub async fn screenshot(&self) -> Vec<u8> {
        let v = self.get("/screenshot").await.unwrap();
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap()
    }

    async fn photo(&mut self, name: &str) {
        if let Ok(v) = self.get("/screenshot").await
            && let Some(b64) = v.as_str()
            && let Ok(png) = base64::engine::general_purpose::STANDARD.decode(b64)
        {
            self.shots.push((name.to_string(), png));
        }
    }

    /// What the console said since the last call (errors, exceptions,
    /// CSP violations).
    pub fn take_console(&self) -> Vec<String> {
        std::mem::take(&mut *self.heard.lock().unwrap())
    }

    /// The responses that said no (status 400 or more) since the last
    /// call, as "status url".
    pub fn take_refused(&self) -> Vec<String> {
        std::mem::take(&mut *self.refused.lock().unwrap())
    }

    /// One step of a test: the console is clean, and the page fits both
    /// a laptop and a phone without sideways scrolling, of the page or of
    /// a table inside its box. Each size is photographed; the photos are
    /// kept if the test fails.
    pub async fn step(&mut self, name: &str) {
        self.step_checked(name, true).await;
    }

    /// A step on the vendored Swagger UI (`/api/docs`): fit and console as
    /// everywhere, but axe-core's findings there are Swagger UI's own
    /// markup, so they are printed, not failed on.
    pub async fn step_vendored(&mut self, name: &str) {
        self.step_checked(name, false).await;
        let found = self.accessibility_problems().await;
        if !found.is_empty() {
            eprintln!("{name}: axe-core on vendored Swagger UI: {found:#?}");
        }
    }

    async fn step_checked(&mut self, name: &str, axe: bool) {
        // Let the page finish what it is doing (its scripts and fetches).
        self.settle().await;
        for size in SIZES {
            self.resize(size).await;
            let (scroll, inner) = self.widths().await;
            self.photo(&format!("{name}-{}x{}", size.0, size.1)).await;
            assert!(
                scroll <= inner,
                "{name}: the page at {} is {scroll} px wide in a {inner} px window ({}x{}): it scrolls sideways",
                self.url().await,
                size.0,
                size.1
            );
            // A table that scrolls inside its box hides columns as surely.
            let hidden = self
                .run(
                    "return [...document.querySelectorAll('.table-wrap')]
                       .filter(w => w.offsetParent !== null && w.scrollWidth > w.clientWidth + 1)
                       .map(w => (w.querySelector('table') || w).id + ': ' + w.scrollWidth + ' px in ' + w.clientWidth)",
                )
                .await;
            assert_eq!(
                hidden,
                serde_json::json!([]),
                "{name}: at {}x{} on {} a table scrolls sideways inside its box",
                size.0,
                size.1,
                self.url().await
            );
        }
        self.resize(self.size).await;
        if axe {
            self.accessible(name).await;
        }
        let heard = self.take_console();
        assert!(
            heard.is_empty(),
            "{name}: the console of {} reported: {heard:#?}",
            self.url().await
        );
    }

    /// axe-core inside the page: no violation of impact serious or critical.
    async fn accessible(&self, name: &str) {
        let found = self.accessibility_problems().await;
        assert!(
            found.is_empty(),
            "{name}: accessibility problems on {}: {found:#?}",
            self.url().await
        );
    }

    /// What axe-core finds in the page of impact serious or critical
    /// (nothing when axe-core is not installed outside CI).
    pub async fn accessibility_problems(&self) -> Vec<String> {
        let Some(axe) = axe_source() else {
            return Vec::new();
        };
        if self.run("return typeof window.axe").await != "object" {
            self.run(&format!("{axe}\n;return typeof window.axe")).await;
        }
        let found = self
            .run_async(
                "const done = arguments[arguments.length - 1];
                 axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations
                   .filter(v => v.impact === 'serious' || v.impact === 'critical')
                   .map(v => v.id + ' (' + v.impact + '): ' + v.help + ' at ' +
                        v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(', '))),
                   e => done(['axe-core did not run: ' + e]));",
            )
            .await;
        found
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_else(|| vec![format!("axe-core answered {found}")])
    }

    async fn widths(&self) -> (i64, i64) {
        let v = self
            .run("return [document.documentElement.scrollWidth, window.innerWidth]")
            .await;
        (
            v[0].as_i64().unwrap_or(i64::MAX),
            v[1].as_i64().unwrap_or(0),
        )
    }

    /// Waits until the document has loaded and no fetch is in flight for
    /// a moment.
    async fn settle(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let state = self.run("return document.readyState").await;
            if state == "complete" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // A page may still fetch after load: wait for the network to be idle.
        let _ = self
            .run_async(
                "const done = arguments[arguments.length - 1];
                 let last = performance.getEntriesByType('resource').length, quiet = 0;
                 const tick = () => {
                   const now = performance.getEntriesByType('resource').length;
                   quiet = now === last ? quiet + 1 : 0; last = now;
                   if (quiet >= 3) done(true); else setTimeout(tick, 50);
                 };
                 setTimeout(tick, 50);",
            )
            .await;
    }

    /// Waits until the first element matching `css` has `name` = `value`
    /// as written in the page (an ARIA state, say).
    pub async fn wait_attribute(&self, css: &str, name: &str, value: &str) {
        self.until(&format!("{css} with {name}={value}"), || async {
            (self.html_attribute(css, name).await.as_deref() == Some(value)).then_some(())
        })
        .await
    }

    /// Polls `f` until it returns Some.
    pub async fn until<T, F, Fut>(&self, what: &str, mut f: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        super::wait_for_async(what, Duration::from_secs(20), &mut f).await
    }

    /// Ends the session, closing the browser.
    pub async fn quit(&self) {
        let _ = self.http.delete(&self.base).send().await;
    }
}

/// Subscribes to the console over WebDriver BiDi and keeps what must not
/// be there.
async fn listen(ws: &str, heard: Heard, refused: Refused) -> tokio::task::JoinHandle<()> {
    let (mut socket, _) = tokio_tungstenite::connect_async(ws)
        .await
        .unwrap_or_else(|e| panic!("BiDi at {ws}: {e}"));
    let commands = [
        json!({"id": 1, "method": "session.subscribe", "params": {"events": ["log.entryAdded", "network.responseCompleted"]}}),
        json!({"id": 2, "method": "script.addPreloadScript", "params": {"functionDeclaration": PRELOAD}}),
    ];
    for c in &commands {
        socket
            .send(tokio_tungstenite::tungstenite::Message::text(c.to_string()))
            .await
            .unwrap();
    }
    // Both commands answered before the test goes on, so nothing is missed.
    let mut answered = 0;
    while answered < commands.len() {
        let msg = tokio::time::timeout(Duration::from_secs(20), socket.next())
            .await
            .expect("BiDi answers")
            .expect("BiDi stays open")
            .expect("BiDi message");
        if let Ok(text) = msg.to_text()
            && let Ok(v) = serde_json::from_str::<Value>(text)
            && v.get("id").is_some()
        {
            assert!(v["type"] != "error", "BiDi refused a command: {v}");
            answered += 1;
        }
    }
    tokio::spawn(async move {
        while let Some(Ok(msg)) = socket.next().await {
            let Ok(text) = msg.to_text() else { continue };
            let Ok(v) = serde_json::from_str::<Value>(text) else {
                continue;
            };
            if v["method"] == "network.responseCompleted"
                && let Some(status) = v["params"]["response"]["status"].as_u64()
                && status >= 400
            {
                refused.lock().unwrap().push(format!(
                    "{status} {}",
                    v["params"]["request"]["url"].as_str().unwrap_or("?")
                ));
            }
            if v["method"] == "log.entryAdded" && v["params"]["level"] == "error" {
                let p = &v["params"];
                heard.lock().unwrap().push(format!(
                    "{} {}: {}",
                    p["type"].as_str().unwrap_or("?"),
                    p["source"]["context"].as_str().unwrap_or(""),
                    p["text"].as_str().unwrap_or("")
                ));
            }
        }
    })
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.listener.abort();
        // KEEP_SCREENSHOTS=1 keeps them for a passing test too, to look at.
        let keep = std::env::var_os("KEEP_SCREENSHOTS").is_some();
        if std::thread::panicking() || keep {
            let folder = if std::thread::panicking() {
                "target/browser-failures"
            } else {
                "target/screenshots"
            };
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(folder)
                .join(&self.name);
            let _ = std::fs::create_dir_all(&dir);
            for (n, (name, png)) in self.shots.iter().enumerate() {
                let _ = std::fs::write(dir.join(format!("{n:02}-{name}.png")), png);
            }
            let _ = std::fs::copy(
                self.profile.path().with_extension("driver.log"),
                dir.join("driver.log"),
            );
            eprintln!("screenshots of each step: {}", dir.display());
        }
        unsafe { libc::kill(self.driver.id() as i32, libc::SIGTERM) };
        let _ = self.driver.wait();
        // Browser processes left by a failed test: found by their own profile folder.
        let _ = Command::new("pkill")
            .arg("-f")
            .arg(self.profile.path())
            .status();
        let _ = std::fs::remove_file(self.profile.path().with_extension("driver.log"));
    }
}
