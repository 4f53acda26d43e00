//! The web console in a real headless Chromium (driven over WebDriver):
//! an operator sees the agencies and a queue of 40, redrives a dead
//! letter, finds a document and its timeline; an auditor sees the proof
//! checks pass in the browser, then a tampered receipt flagged. Most pages
//! go through the documented proxy header mode (a TLS-terminating proxy
//! would pass the client certificate in a header; here a small proxy in the
//! test does, and can alter a response on its way); `mtls_*` checks the
//! direct mTLS path with real certificates: operator served, agency
//! refused, no certificate refused, no CSRF token refused.

use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use truc_client::Client;
use truc_core::Principal;
use truc_pki::IssueOptions;
use truc_tests::console_proxy::{cert_of, proxy, ProxyState};
use truc_tests::webdriver::{browser_or_skip, http, parse_response, Browser};
use truc_tests::{eventually, header, sign, TestHub};

const G22: &str = "000.00.00.G22";
const H26: &str = "000.00.00.H26";
const H29: &str = "000.00.00.H29";

fn auditor_dir(hub: &TestHub) -> std::path::PathBuf {
    let p = Principal::parse_uri("urn:truc:auditor:kiemtoan").unwrap();
    hub.pki.identity_with(&p, &IssueOptions::default())
}

/// Save a PNG when `TRUC_CONSOLE_SCREENSHOTS` names a directory.
async fn shot(b: &Browser, name: &str) {
    if let Ok(dir) = std::env::var("TRUC_CONSOLE_SCREENSHOTS") {
        let png = b.screenshot().await;
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(std::path::Path::new(&dir).join(format!("{name}.png")), png).unwrap();
    }
}

async fn send_many(from: &Client, from_code: &str, to: &str, n: usize, tag: &str) {
    for i in 0..n {
        let id = format!("{from_code},2026/11/06,{i}/{tag}");
        from.send(sign(from, header(&[to], &id), format!("văn bản {i}").as_bytes()))
            .await
            .unwrap();
    }
}

#[test]
fn operator_and_auditor_in_a_real_browser() {
    let Some((chromium, driver)) = browser_or_skip("operator_and_auditor_in_a_real_browser") else {
        return;
    };
    // The scenario's future is large in a debug build: run it boxed, on a
    // thread with room for it.
    std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(Box::pin(browser_scenario(chromium, driver)))
        })
        .unwrap()
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e));
}

async fn browser_scenario(chromium: std::path::PathBuf, driver: std::path::PathBuf) {
    let hub = TestHub::start_with(|c| {
        c.console.listen = Some("127.0.0.1:0".parse().unwrap());
        c.console.mode = truc_hub::config::ConsoleMode::Proxy;
        c.console.proxy_peers = vec!["127.0.0.1".parse().unwrap()];
        c.delivery.lease_ms = 500;
        c.delivery.max_attempts = 1;
    })
    .await;
    let console = hub.console_addr().unwrap().to_string();
    let op = hub.operator().await;
    let g22 = hub.agency(G22).await;
    hub.agency(H26).await;
    let h29 = hub.agency(H29).await;
    // A queue of 40 for H26, and a dead letter for H29.
    send_many(&g22, G22, H26, 40, "VPCP").await;
    let dead_id = "000.00.00.G22,2026/11/06,99/VPCP";
    g22.send(sign(&g22, header(&[H29], dead_id), b"khong ai nhan"))
        .await
        .unwrap();
    let mut s = h29.receive(4, true).await.unwrap();
    s.message().await.unwrap().unwrap();
    eventually("the copy to H29 to be dead-lettered", || async {
        op.dead_letters(H29).await.unwrap().len() == 1
    })
    .await;
    drop(s);

    let state = Arc::new(Mutex::new(ProxyState {
        cert_pem: cert_of(&hub.pki.operator_dir("ops")),
        tamper: false,
    }));
    let front = proxy(console.clone(), state.clone()).await;
    let base = format!("http://{front}/");
    let b = Browser::start(&chromium, &driver, 1366, 768).await;

    // Operator: overview, then agencies and the queue of 40.
    b.goto(&format!("{base}#overview")).await;
    b.wait_for("the overview", "return document.body.dataset.loaded === 'overview'")
        .await;
    shot(&b, "overview").await;
    b.goto(&format!("{base}#agencies")).await;
    let row = b.wait(&format!("tr[data-code='{H26}'] td.queued")).await;
    assert_eq!(b.text(&row).await, "40");
    let show = b.wait(&format!("tr[data-code='{H26}'] button.show-queue")).await;
    b.click(&show).await;
    b.wait_for(
        "the queue",
        "return document.querySelector('#queue-count').textContent === '40'",
    )
    .await;
    shot(&b, "agencies").await;

    // Dead letters: redrive, with its confirmation step.
    b.goto(&format!("{base}#dead")).await;
    let redrive = b.wait("#dead-table tr button.redrive").await;
    b.click(&redrive).await;
    let ok = b.wait("#confirm[open] #confirm-ok").await;
    shot(&b, "dead-letters").await;
    b.click(&ok).await;
    b.wait_for(
        "the dead letter to go",
        "return !document.querySelector('#dead-empty').classList.contains('hidden')",
    )
    .await;
    assert!(op.dead_letters(H29).await.unwrap().is_empty());
    assert_eq!(hub.queued().await.iter().find(|(c, _)| c == H29).unwrap().1, 1);

    // Documents: find one by its number, see its timeline.
    b.goto(&format!("{base}#documents")).await;
    let input = b.wait("#doc-id").await;
    b.type_into(&input, dead_id).await;
    b.click(&b.wait("#doc-form button").await).await;
    b.wait_for(
        "the timeline",
        "const e = [...document.querySelectorAll('#doc-timeline li')].map(l => l.dataset.event); \
         return e.includes('accepted') && e.includes('dead-lettered') && e.includes('redriven');",
    )
    .await;
    shot(&b, "documents").await;

    // Indicators: today's figures, and the CSV link.
    b.goto(&format!("{base}#stats")).await;
    b.wait_for(
        "the indicators",
        "return document.querySelectorAll('#stats-table tbody tr').length > 0",
    )
    .await;
    let csv = b
        .exec(
            "return document.querySelector('#stats-csv').getAttribute('href')",
            json!([]),
        )
        .await;
    let (status, text) = http(&front, "GET", csv.as_str().unwrap(), &[], None).await;
    assert_eq!(status, 200);
    assert!(text.starts_with("period,agency,sent,"), "{text}");
    assert!(text.contains(&format!(",{G22},41,")), "{text}");
    shot(&b, "indicators").await;

    // An action without its CSRF token is refused; with it, it runs.
    let no_token = b
        .exec_async(
            "const done = arguments[arguments.length - 1]; \
             fetch('/api/agency/state', {method: 'POST', headers: {'content-type': 'application/json'}, \
               body: JSON.stringify({code: '000.00.00.H26', state: 'suspended'})}) \
             .then(r => r.json().then(j => done([r.status, j.error])));",
        )
        .await;
    assert_eq!(no_token[0], 403, "{no_token}");
    assert!(no_token[1].as_str().unwrap().contains("CSRF"), "{no_token}");
    assert_eq!(
        op.list_agencies()
            .await
            .unwrap()
            .iter()
            .find(|a| a.code == H26)
            .unwrap()
            .state,
        1
    );

    // Auditor: the proof checks pass in the browser…
    state.lock().unwrap().cert_pem = cert_of(&auditor_dir(&hub));
    // A new page load (a hash change alone keeps the operator's session).
    b.goto(&format!("{base}?as=auditor#audit")).await;
    b.wait_for(
        "the auditor's session",
        "return document.body.dataset.role === 'auditor'",
    )
    .await;
    let id = b.wait("#audit-id").await;
    b.type_into(&id, dead_id).await;
    b.click(&b.wait("#audit-form button").await).await;
    let verdict = b.wait("#audit-verdict").await;
    let classes = b
        .exec("return document.querySelector('#audit-verdict').className", json!([]))
        .await;
    assert_eq!(classes, "ok", "{}", b.text(&verdict).await);
    let rows: Value = b
        .exec(
            "return [...document.querySelectorAll('#audit-table tbody tr')].map(r => r.className)",
            json!([]),
        )
        .await;
    let rows = rows.as_array().unwrap();
    // Accepted, dead-lettered, redriven.
    assert!(rows.len() >= 3 && rows.iter().all(|c| c == "receipt-ok"), "{rows:?}");
    assert!(b.find("#audit-signature.ok").await.is_some());
    // … the log only grew since a saved head …
    b.click(&b.wait("#audit-save").await).await;
    b.wait_for("the saved head", "return !!localStorage.getItem('truc.savedHead')")
        .await;
    g22.send(sign(&g22, header(&[H26], "000.00.00.G22,2026/11/06,100/VPCP"), b"them"))
        .await
        .unwrap();
    b.click(&b.wait("#audit-check").await).await;
    b.wait_for(
        "the consistency check",
        "return document.querySelector('#audit-consistency').className !== ''",
    )
    .await;
    let c = b
        .exec(
            "return document.querySelector('#audit-consistency').className",
            json!([]),
        )
        .await;
    assert_eq!(c, "check-ok ok");
    shot(&b, "audit").await;
    // … and a tampered receipt is flagged.
    state.lock().unwrap().tamper = true;
    b.exec("document.querySelector('#audit-verdict').remove()", json!([]))
        .await;
    b.click(&b.wait("#audit-form button").await).await;
    b.wait("#audit-verdict").await;
    let classes = b
        .exec("return document.querySelector('#audit-verdict').className", json!([]))
        .await;
    assert_eq!(classes, "bad");
    assert!(b.find("#audit-table tr.receipt-bad").await.is_some());
    assert!(
        b.find("#audit-signature.ok").await.is_some(),
        "the head itself was not altered"
    );
    shot(&b, "audit-tampered").await;
    state.lock().unwrap().tamper = false;

    // The auditor is read-only, even with its token.
    let refused = b
        .exec_async(
            "const done = arguments[arguments.length - 1]; \
             fetch('/api/session').then(r => r.json()).then(s => fetch('/api/agency/state', {method: 'POST', \
               headers: {'content-type': 'application/json', 'x-csrf-token': s.csrf}, \
               body: JSON.stringify({code: '000.00.00.H26', state: 'suspended'})})) \
             .then(r => r.json().then(j => done([r.status, j.error])));",
        )
        .await;
    assert_eq!(refused[0], 403, "{refused}");
    assert!(refused[1].as_str().unwrap().contains("read-only"), "{refused}");

    // An agency's certificate is refused.
    state.lock().unwrap().cert_pem = cert_of(&hub.pki.agency_dir(G22));
    let (status, body) = http(&front, "GET", "/api/session", &[], None).await;
    assert_eq!(status, 403, "{body}");

    // Page load with 100 agencies and more documents: measured, not asserted.
    state.lock().unwrap().cert_pem = cert_of(&hub.pki.operator_dir("ops"));
    for i in 0..100 {
        op.add_agency(&format!("H{:02}.{i:02}", 10 + i % 50), &format!("Sở {i}"))
            .await
            .unwrap();
    }
    send_many(&g22, G22, H26, 300, "LOAD").await;
    for page in ["overview", "agencies", "stats"] {
        let (dom, shown) = b.console_page_load(&base, page).await;
        println!(
            "console page {page}: DOMContentLoaded {dom} ms, data shown by {shown} ms (103 agencies, ~350 documents)"
        );
    }
}

/// The direct mTLS path: a TLS client with real certificates of the axis CA.
#[tokio::test]
async fn mtls_operator_served_agency_and_anonymous_refused() {
    let hub = TestHub::start_with(|c| {
        c.console.listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    hub.agency(G22).await;
    let addr = hub.console_addr().unwrap();
    let ca = hub.pki.pki.ca_pem().to_string();
    let get = |dir: Option<std::path::PathBuf>, method: &'static str, path: &'static str, token: Option<String>| {
        let ca = ca.clone();
        async move {
            use rustls_pki_types::pem::PemObject;
            let mut roots = rustls::RootCertStore::empty();
            for c in rustls_pki_types::CertificateDer::pem_slice_iter(ca.as_bytes()) {
                roots.add(c.unwrap()).unwrap();
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let builder = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots);
            let cfg = match &dir {
                Some(d) => {
                    let certs: Vec<_> = rustls_pki_types::CertificateDer::pem_file_iter(d.join("cert.pem"))
                        .unwrap()
                        .map(Result::unwrap)
                        .collect();
                    let key = rustls_pki_types::PrivateKeyDer::from_pem_file(d.join("key.pem")).unwrap();
                    builder.with_client_auth_cert(certs, key).unwrap()
                }
                None => builder.with_no_client_auth(),
            };
            let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
            let tcp = TcpStream::connect(addr).await.unwrap();
            let name = rustls_pki_types::ServerName::IpAddress(addr.ip().into());
            let mut tls = connector.connect(name, tcp).await.expect("TLS handshake");
            let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
            if let Some(t) = token {
                req.push_str(&format!("x-csrf-token: {t}\r\n"));
            }
            let body = r#"{"agency":"000.00.00.G22","ids":[]}"#;
            if method == "POST" {
                req.push_str(&format!(
                    "content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                ));
            } else {
                req.push_str("\r\n");
            }
            tls.write_all(req.as_bytes()).await.unwrap();
            let mut raw = Vec::new();
            let _ = tls.read_to_end(&mut raw).await;
            parse_response(&raw)
        }
    };
    let operator = hub.pki.operator_dir("ops");
    let (status, body) = get(Some(operator.clone()), "GET", "/api/session", None).await;
    assert_eq!(status, 200, "{body}");
    let session: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(session["role"], "operator");
    let (status, page) = get(Some(operator.clone()), "GET", "/", None).await;
    assert_eq!(status, 200);
    assert!(page.contains("<script src=\"/app.js\""), "{page}");
    let (status, body) = get(Some(hub.pki.agency_dir(G22)), "GET", "/api/session", None).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("operators and auditors"), "{body}");
    let (status, body) = get(None, "GET", "/api/overview", None).await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = get(Some(operator.clone()), "POST", "/api/deadletters/redrive", None).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("CSRF"), "{body}");
    let token = session["csrf"].as_str().unwrap().to_string();
    let (status, body) = get(Some(operator), "POST", "/api/deadletters/redrive", Some(token)).await;
    assert_eq!(status, 200, "{body}");
}
