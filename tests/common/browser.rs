//! Headless Chromium for the page's tests, driven over the W3C WebDriver protocol
//! (chromedriver, Debian's `chromium` and `chromium-driver`) with plain HTTP requests: a
//! session, navigation, scripts in the page, the browser's console and network logs, and
//! screenshots.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Where Debian puts them; `CHROMIUM` and `CHROMEDRIVER` override.
fn chromium() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

fn chromedriver() -> String {
    std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into())
}

/// Whether both are installed (the tests are ignored without them; this says why when
/// they are run anyway).
pub fn missing() -> Option<String> {
    [chromium(), chromedriver()]
        .into_iter()
        .find(|path| !std::path::Path::new(path).exists())
        .map(|path| {
            format!(
                "{path} not found: install Debian's chromium and chromium-driver \
                 (or set CHROMIUM / CHROMEDRIVER)"
            )
        })
}

/// A chromedriver process and one browser session in it.
pub struct Browser {
    driver: Child,
    base: String,
    client: reqwest::Client,
}

impl Browser {
    pub async fn start() -> Browser {
        if let Some(reason) = missing() {
            panic!("{reason}");
        }
        let port = super::free_port();
        let driver = Command::new(chromedriver())
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting chromedriver");
        let client = reqwest::Client::new();
        let root = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = client.get(format!("{root}/status")).send().await;
            if let Ok(response) = ready {
                let status: Value = response.json().await.unwrap_or_default();
                if status["value"]["ready"] == true {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium(),
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,1000"],
            },
            "goog:loggingPrefs": {"browser": "ALL", "performance": "ALL"},
        }}});
        let response: Value = client
            .post(format!("{root}/session"))
            .json(&capabilities)
            .send()
            .await
            .expect("new session")
            .json()
            .await
            .expect("new session's answer");
        let id = response["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {response}"))
            .to_string();
        Browser {
            driver,
            base: format!("{root}/session/{id}"),
            client,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer: Value = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("WebDriver {path}: {e}"))
            .json()
            .await
            .unwrap_or_else(|e| panic!("WebDriver {path}: {e}"));
        if answer["value"]["error"].is_string() {
            panic!("WebDriver {path}: {}", answer["value"]);
        }
        answer["value"].clone()
    }

    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page, returns its
    /// value.
    pub async fn eval(&self, script: &str, args: Value) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
        .await
    }

    /// Waits until `script` returns true (or fails the test after `timeout`, saying what).
    pub async fn wait_for(&self, what: &str, script: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if self.eval(script, json!([])).await == true {
                return;
            }
            if Instant::now() >= deadline {
                let state = self
                    .eval(
                        "return [document.body && document.body.dataset, \
                         document.getElementById('banner') && document.getElementById('banner').textContent]",
                        json!([]),
                    )
                    .await;
                panic!("after {timeout:?}, still not: {what} (page: {state})");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The log entries (`browser`: the console; `performance`: DevTools events) since the
    /// last call.
    pub async fn log(&self, kind: &str) -> Vec<Value> {
        let entries = self
            .call(
                reqwest::Method::POST,
                "/se/log",
                Some(json!({ "type": kind })),
            )
            .await;
        entries.as_array().cloned().unwrap_or_default()
    }

    /// Console messages at warning level or above.
    pub async fn console_problems(&self) -> Vec<String> {
        self.log("browser")
            .await
            .into_iter()
            .filter(|e| matches!(e["level"].as_str(), Some("SEVERE" | "WARNING")))
            .map(|e| e["message"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// The URLs the page requested (DevTools `Network.requestWillBeSent`).
    pub async fn requested_urls(&self) -> Vec<String> {
        self.log("performance")
            .await
            .into_iter()
            .filter_map(|e| serde_json::from_str::<Value>(e["message"].as_str()?).ok())
            .filter(|m| m["message"]["method"] == "Network.requestWillBeSent")
            .filter_map(|m| {
                Some(
                    m["message"]["params"]["request"]["url"]
                        .as_str()?
                        .to_string(),
                )
            })
            .collect()
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> Vec<u8> {
        use base64::Engine as _;
        let encoded = self.call(reqwest::Method::GET, "/screenshot", None).await;
        base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().unwrap_or_default())
            .expect("a base64 screenshot")
    }

    pub async fn quit(mut self) {
        let _ = self.client.delete(&self.base).send().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
    }
}
