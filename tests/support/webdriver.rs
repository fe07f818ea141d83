//! Headless Chromium driven over the W3C WebDriver protocol by Debian's `chromedriver`
//! (scripts/setup installs both): the console tests type, click and read a real page.
//! The protocol is JSON over HTTP, spoken with [`super::http`]; every call is bounded in
//! time, and dropping the [`Browser`] ends chromedriver and its Chromium.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::http::http_with;
use super::ports::free_port;

/// The key under which WebDriver returns an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn binary(names: &[&str]) -> PathBuf {
    names
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("{names:?} missing: run scripts/setup"))
}

pub struct Browser {
    driver: Child,
    addr: SocketAddr,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// chromedriver on a free port, and one headless Chromium session with a fresh profile.
    pub async fn start() -> Browser {
        let port = free_port();
        let driver = Command::new(binary(&["/usr/bin/chromedriver"]))
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let profile = tempfile::tempdir().unwrap();
        let mut b = Browser {
            driver,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            session: String::new(),
            _profile: profile,
        };
        let t0 = Instant::now();
        while http_with(b.addr, "GET", "/status", &[], "").await.is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "chromedriver not up"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let chromium = binary(&["/usr/bin/chromium", "/usr/bin/chromium-browser"]);
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless", "--no-sandbox", "--disable-gpu",
                         "--disable-background-networking", "--disable-component-update",
                         "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                         "--hide-scrollbars", "--window-size=1280,1100",
                         format!("--user-data-dir={}", b._profile.path().display())],
            },
        }}});
        let v = b.call("POST", "/session", caps).await;
        b.session = v["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_string();
        b
    }

    async fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let body = if body.is_null() {
            String::new()
        } else {
            body.to_string()
        };
        let r = http_with(
            self.addr,
            method,
            path,
            &[("Content-Type", "application/json")],
            &body,
        )
        .await
        .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
        let v = r.json();
        assert!(
            r.status == 200,
            "WebDriver {method} {path}: {} {v}",
            r.status
        );
        v["value"].clone()
    }

    async fn session_call(&self, method: &str, path: &str, body: Value) -> Value {
        let path = format!("/session/{}{path}", self.session);
        self.call(method, &path, body).await
    }

    pub async fn goto(&self, url: &str) {
        self.session_call("POST", "/url", json!({ "url": url }))
            .await;
    }

    /// The first element matching the CSS `selector`, waiting up to 10 s for it.
    pub async fn find(&self, selector: &str) -> String {
        let t0 = Instant::now();
        loop {
            let path = format!("/session/{}/element", self.session);
            let body = json!({"using": "css selector", "value": selector}).to_string();
            let r = http_with(
                self.addr,
                "POST",
                &path,
                &[("Content-Type", "application/json")],
                &body,
            )
            .await
            .expect("WebDriver find");
            if r.status == 200 {
                let v = r.json();
                let id = v["value"][ELEMENT].as_str();
                return id
                    .unwrap_or_else(|| panic!("element {selector}: {v}"))
                    .to_string();
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "no element {selector}: {}",
                r.body
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn click(&self, selector: &str) {
        let e = self.find(selector).await;
        self.session_call("POST", &format!("/element/{e}/click"), json!({}))
            .await;
    }

    /// Replaces the text of an input or textarea.
    pub async fn fill(&self, selector: &str, text: &str) {
        let e = self.find(selector).await;
        self.session_call("POST", &format!("/element/{e}/clear"), json!({}))
            .await;
        self.session_call(
            "POST",
            &format!("/element/{e}/value"),
            json!({ "text": text }),
        )
        .await;
    }

    /// Selects `value` in a `<select>`.
    pub async fn select(&self, selector: &str, value: &str) {
        self.click(&format!("{selector} option[value=\"{value}\"]"))
            .await;
    }

    /// The rendered text of the first element matching `selector`, waiting up to 10 s for
    /// one. Read by a script in the page in one step: the console redraws its tables every
    /// poll, so an element reference found first could be stale by the time it is read.
    pub async fn text(&self, selector: &str) -> String {
        let t0 = Instant::now();
        loop {
            let v = self
                .session_call(
                    "POST",
                    "/execute/sync",
                    json!({
                        "script": "const e = document.querySelector(arguments[0]); \
                                   return e ? e.innerText.replace(/\t/g, \" \") : null;",
                        "args": [selector],
                    }),
                )
                .await;
            if let Some(t) = v.as_str() {
                return t.to_string();
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "no element {selector}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits up to 10 s until the text of `selector` contains `wanted`; returns it.
    pub async fn wait_text(&self, selector: &str, wanted: &str) -> String {
        let t0 = Instant::now();
        loop {
            let t = self.text(selector).await;
            if t.contains(wanted) {
                return t;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "{selector} never showed {wanted:?}; it shows {t:?}"
            );
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    /// Runs `script` (a function body; `return` its value) in the page.
    pub async fn eval(&self, script: &str) -> Value {
        self.session_call(
            "POST",
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
        .await
    }

    /// Saves a PNG screenshot of the window at `path`.
    pub async fn screenshot(&self, path: &Path) {
        use base64::Engine;
        let v = self.session_call("GET", "/screenshot", Value::Null).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().expect("base64 screenshot"))
            .unwrap();
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // chromedriver ends its Chromium when the session is deleted; killing chromedriver
        // alone could leave the browser behind, so ask first (best effort, bounded).
        let (addr, session) = (self.addr, self.session.clone());
        let _ = std::thread::spawn(move || {
            use std::io::{Read, Write};
            if let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))
            {
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let _ = write!(
                    s,
                    "DELETE /session/{session} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
                );
                let _ = s.read_to_end(&mut Vec::new());
            }
        })
        .join();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
