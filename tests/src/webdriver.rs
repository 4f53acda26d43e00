//! Just enough WebDriver (W3C, over chromedriver's HTTP) to drive headless
//! Chromium from a test: sessions, navigation, elements, scripts,
//! screenshots. Plain HTTP/1.1 over a TCP socket with serde_json; no
//! WebDriver crate (they pull in a large async HTTP stack).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Where Chromium and chromedriver are, or why a browser test cannot run.
/// Without them the test fails, unless `TRUC_SKIP_BROWSER_TESTS=1`: then
/// this prints a visible "skipped" line and returns `None`.
pub fn browser_or_skip(test: &str) -> Option<(PathBuf, PathBuf)> {
    let find =
        |names: &[&str]| -> Option<PathBuf> { names.iter().map(Path::new).find(|p| p.exists()).map(Path::to_path_buf) };
    let chromium = find(&[
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
        "/usr/bin/google-chrome",
    ]);
    let driver = find(&["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]);
    let _ = test;
    let found = chromium.zip(driver);
    crate::skip::require(
        found.is_some(),
        "TRUC_SKIP_BROWSER_TESTS",
        "Chromium and chromedriver are not installed (apt-get install chromium chromium-driver, as .ci/run does)",
    )
    .then_some(found)
    .flatten()
}

/// One HTTP/1.1 request with `Connection: close`; (status, body).
pub async fn http(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&str>) -> (u16, String) {
    tokio::time::timeout(Duration::from_secs(60), http_once(addr, method, path, headers, body))
        .await
        .unwrap_or_else(|_| panic!("{method} {path} on {addr}: no answer in 60 s"))
}

async fn http_once(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let body = body.unwrap_or("");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        req.push_str("Content-Type: application/json\r\n");
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).await.expect("write");
    // Read to the end of the body (chromedriver keeps the connection open).
    let mut raw = Vec::new();
    let mut chunk = [0u8; 16384];
    loop {
        let n = s.read(&mut chunk).await.expect("read");
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&chunk[..n]);
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            if matches!(len, Some(len) if raw.len() >= end + 4 + len) {
                break;
            }
        }
    }
    parse_response(&raw)
}

/// (status, body) of a raw HTTP/1.1 response (Content-Length or chunked).
pub fn parse_response(raw: &[u8]) -> (u16, String) {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let chunked = head.to_ascii_lowercase().contains("transfer-encoding: chunked");
    if !chunked {
        return (status, body.to_string());
    }
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&after[..n.min(after.len())]);
        rest = after.get(n + 2..).unwrap_or("");
    }
    (status, out)
}

/// A chromedriver process and one browser session, ended on drop.
pub struct Browser {
    driver: Child,
    addr: String,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Start chromedriver on a free port and a headless Chromium session
    /// with a fresh profile, at `width`×`height`.
    pub async fn start(chromium: &Path, chromedriver: &Path, width: u32, height: u32) -> Browser {
        let port = crate::free_port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let addr = format!("127.0.0.1:{port}");
        let profile = tempfile::tempdir().expect("profile dir");
        let mut b = Browser {
            driver,
            addr,
            session: String::new(),
            _profile: profile,
        };
        crate::eventually("chromedriver to answer", || async {
            tokio::net::TcpStream::connect(&b.addr).await.is_ok()
        })
        .await;
        let args = vec![
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", b._profile.path().display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium.display().to_string(), "args": args},
        }}});
        let v = b.call("POST", "/session", Some(caps)).await;
        b.session = v["sessionId"].as_str().expect("session id").to_string();
        b
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let body = body.map(|b| b.to_string());
        let (status, text) = http(&self.addr, method, path, &[], body.as_deref()).await;
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        assert!(status == 200, "webdriver {method} {path}: {status} {text}");
        v["value"].clone()
    }

    async fn s(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.call(method, &format!("/session/{}{path}", self.session), body)
            .await
    }

    /// Open `url`.
    pub async fn goto(&self, url: &str) {
        self.s("POST", "/url", Some(json!({ "url": url }))).await;
    }

    /// Run `script` (a function body; `arguments` available) and return
    /// its value.
    pub async fn exec(&self, script: &str, args: Value) -> Value {
        self.s("POST", "/execute/sync", Some(json!({ "script": script, "args": args })))
            .await
    }

    /// Run an async script: the body calls `arguments[arguments.length-1](value)`.
    pub async fn exec_async(&self, script: &str) -> Value {
        self.s("POST", "/execute/async", Some(json!({ "script": script, "args": [] })))
            .await
    }

    /// The first element matching `css`, if any.
    pub async fn find(&self, css: &str) -> Option<String> {
        let v = self
            .exec("return document.querySelector(arguments[0])", json!([css]))
            .await;
        v[ELEMENT].as_str().map(str::to_string)
    }

    /// Wait until `css` matches, then return it.
    pub async fn wait(&self, css: &str) -> String {
        for _ in 0..400 {
            if let Some(e) = self.find(css).await {
                return e;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let text = self.exec("return document.body.innerText", json!([])).await;
        let raw = self
            .exec("return document.querySelector(arguments[0])", json!([css]))
            .await;
        let row = self
            .exec(
                "const r = document.querySelector('tr[data-code]'); return r ? r.outerHTML : null",
                json!([]),
            )
            .await;
        panic!("timed out waiting for {css} (querySelector gave {raw}; a row: {row}); the page says: {text}");
    }

    /// Wait until `script` returns true.
    pub async fn wait_for(&self, what: &str, script: &str) {
        for _ in 0..400 {
            if self.exec(script, json!([])).await == Value::Bool(true) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let text = self.exec("return document.body.innerText", json!([])).await;
        panic!("timed out waiting for {what}; the page says: {text}");
    }

    /// Load the console's page `#page` of `base` afresh and time it with
    /// the browser's own clock: (DOMContentLoaded, the page's data shown
    /// — `document.body.dataset.loaded` names the page), ms.
    pub async fn console_page_load(&self, base: &str, page: &str) -> (u64, u64) {
        self.goto(&format!("{base}#{page}")).await;
        self.exec("location.reload()", json!([])).await;
        self.wait_for(page, &format!("return document.body.dataset.loaded === '{page}'"))
            .await;
        let ms = self
            .exec(
                "const n = performance.getEntriesByType('navigation')[0]; \
                 return [Math.round(n.domContentLoadedEventEnd), Math.round(performance.now())];",
                json!([]),
            )
            .await;
        (ms[0].as_u64().unwrap_or(0), ms[1].as_u64().unwrap_or(0))
    }

    /// Click an element.
    pub async fn click(&self, element: &str) {
        self.s("POST", &format!("/element/{element}/click"), Some(json!({})))
            .await;
    }

    /// Type into an element (after clearing it).
    pub async fn type_into(&self, element: &str, text: &str) {
        self.s("POST", &format!("/element/{element}/clear"), Some(json!({})))
            .await;
        self.s(
            "POST",
            &format!("/element/{element}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    /// An element's visible text.
    pub async fn text(&self, element: &str) -> String {
        self.s("GET", &format!("/element/{element}/text"), None)
            .await
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> Vec<u8> {
        let v = self.s("GET", "/screenshot", None).await;
        base64_decode(v.as_str().expect("screenshot"))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let addr = self.addr.clone();
            let path = format!("/session/{}", self.session);
            // Best effort: quit the browser, then the driver.
            let _ = std::thread::spawn(move || {
                if let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    rt.block_on(async {
                        let _ =
                            tokio::time::timeout(Duration::from_secs(5), http(&addr, "DELETE", &path, &[], None)).await;
                    });
                }
            })
            .join();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter_map(val) {
        acc = (acc << 6) | c;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}
