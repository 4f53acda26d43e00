//! The console's page loads with many agencies and documents in the store,
//! in a real headless Chromium, timed with the browser's own clock
//! (navigation timing and `performance.now()`); printed, not asserted
//! (issue 17: 100 agencies and 1M documents, under 300 ms).
//!
//! ```text
//! cargo run --release -p truc-tests --example console_load -- [DOCUMENTS] [AGENCIES]
//! ```
//!
//! Defaults: 1,000,000 documents of 1 KiB, queued for one agency nobody
//! receives for (the worst queue the overview and agencies pages read), and
//! 100 agencies. The hub is the in-process test hub on its sled store;
//! prefilling a million documents takes several minutes on 2 cores.

use std::time::Instant;

use truc_tests::console_proxy::{cert_of, proxy, ProxyState};
use truc_tests::webdriver::{browser_or_skip, Browser};
use truc_tests::{header, sign, TestHub};

fn main() {
    let mut args = std::env::args().skip(1);
    let documents: u64 = args
        .next()
        .map_or(1_000_000, |s| s.parse().expect("DOCUMENTS: a number"));
    let agencies: usize = args.next().map_or(100, |s| s.parse().expect("AGENCIES: a number"));
    assert!(agencies >= 6, "AGENCIES: at least 6");
    let Some((chromium, driver)) = browser_or_skip("console_load") else {
        eprintln!("SKIPPED: no browser");
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(chromium, driver, documents, agencies));
}

async fn run(chromium: std::path::PathBuf, driver: std::path::PathBuf, documents: u64, agencies: usize) {
    let hub = TestHub::start_with(|c| {
        c.console.listen = Some("127.0.0.1:0".parse().unwrap());
        c.console.mode = truc_hub::config::ConsoleMode::Proxy;
        c.console.proxy_peers = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    let pki = hub.pki.dir.path().join("pki");
    let senders = truc_load::agency_codes('S', 4);
    let parked = "B90.PARK".to_string();
    let mut codes = senders.clone();
    codes.extend(truc_load::agency_codes('R', agencies - 5));
    codes.push(parked.clone());
    truc_load::prepare(&hub.addr, &pki, &codes)
        .await
        .expect("registering the agencies");

    let started = Instant::now();
    let p = truc_load::prefill(&hub.addr, &pki, &senders, &parked, documents, 1024, 256, move |n| {
        if n % 100_000 == 0 {
            eprintln!("  {n} documents queued, {:.0} s", started.elapsed().as_secs_f64());
        }
    })
    .await
    .expect("prefill");
    eprintln!("{} documents queued for {parked} in {:.0} s", p.documents, p.seconds);

    // One document whose id we know, to look up.
    let s1 = hub.connect(&truc_load::agency_dir(&pki, &senders[0])).await;
    let id = format!("{},2026/12/06,1/VPCP", senders[0]);
    s1.send(sign(&s1, header(&[&codes[4]], &id), "công văn".as_bytes()))
        .await
        .expect("send");

    hub.operator().await;
    let state = std::sync::Arc::new(std::sync::Mutex::new(ProxyState {
        cert_pem: cert_of(&hub.pki.operator_dir("ops")),
        tamper: false,
    }));
    let front = proxy(hub.console_addr().unwrap().to_string(), state).await;
    let base = format!("http://{front}/");
    let b = Browser::start(&chromium, &driver, 1366, 768).await;
    println!(
        "console with {} agencies and {} documents in the store ({} queued for one agency):",
        codes.len() + 1,
        p.documents + 1,
        p.documents
    );
    for page in ["overview", "agencies", "dead", "stats"] {
        // A warm load, then the one measured.
        b.console_page_load(&base, page).await;
        let (dom, shown) = b.console_page_load(&base, page).await;
        println!("  {page:<9} DOMContentLoaded {dom:>5} ms, data shown by {shown:>6} ms");
    }
    b.goto(&format!("{base}#documents")).await;
    b.wait("#doc-id").await;
    let ms = b
        .exec_async(&format!(
            "const done = arguments[arguments.length - 1]; const t0 = performance.now(); \
             document.querySelector('#doc-id').value = {id:?}; \
             document.querySelector('#doc-form button').click(); \
             const poll = () => document.querySelector('#doc-timeline li') \
               ? done(Math.round(performance.now() - t0)) : setTimeout(poll, 5); poll();"
        ))
        .await;
    println!("  document found by its id, timeline shown in {ms} ms");
}
