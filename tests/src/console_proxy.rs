//! A reverse proxy in front of the console's header mode, as a
//! TLS-terminating proxy would be: it passes a client certificate (PEM) in
//! `x-client-cert`, and can alter an answer on its way (to show the page
//! flags a tampered receipt). For the console's browser test and its
//! page-load measurement.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the test proxy does to each request.
#[derive(Default)]
pub struct ProxyState {
    /// The client certificate it passes on (PEM).
    pub cert_pem: String,
    /// Alter the first receipt of /api/audit/receipts answers.
    pub tamper: bool,
}

fn escape(pem: &str) -> String {
    pem.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A reverse proxy: adds `x-client-cert` to every request it forwards to
/// `upstream` (one request per connection), and in tamper mode changes one
/// hex digit of the first receipt in an audit answer.
pub async fn proxy(upstream: String, state: Arc<Mutex<ProxyState>>) -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = l.accept().await {
            let (upstream, state) = (upstream.clone(), state.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                let head_end = loop {
                    let n = match inbound.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i;
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let rest = buf[head_end + 4..].to_vec();
                let path = head.split(' ').nth(1).unwrap_or("").to_string();
                let (cert, tamper) = {
                    let s = state.lock().unwrap();
                    (escape(&s.cert_pem), s.tamper && path.starts_with("/api/audit/receipts"))
                };
                let mut out: Vec<String> = head
                    .split("\r\n")
                    .filter(|l| {
                        let l = l.to_ascii_lowercase();
                        !l.starts_with("connection:")
                            && !l.starts_with("x-client-cert:")
                            && !l.starts_with("keep-alive")
                    })
                    .map(str::to_string)
                    .collect();
                out.push("Connection: close".into());
                out.push(format!("x-client-cert: {cert}"));
                let mut up = TcpStream::connect(&upstream).await.unwrap();
                up.write_all(format!("{}\r\n\r\n", out.join("\r\n")).as_bytes())
                    .await
                    .unwrap();
                up.write_all(&rest).await.unwrap();
                if tamper {
                    let mut resp = Vec::new();
                    let _ = up.read_to_end(&mut resp).await;
                    let marker = b"\"receipt\":\"";
                    if let Some(i) = resp.windows(marker.len()).position(|w| w == marker) {
                        // A digit well inside the receipt bytes (a text field).
                        let at = i + marker.len() + 40;
                        resp[at] = if resp[at] == b'0' { b'1' } else { b'0' };
                    }
                    let _ = inbound.write_all(&resp).await;
                } else {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut up).await;
                }
            });
        }
    });
    addr
}

pub fn cert_of(dir: &std::path::Path) -> String {
    std::fs::read_to_string(dir.join("cert.pem")).unwrap()
}
