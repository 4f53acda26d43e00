//! Several hubs on one JetStream store (always JetStream, whatever
//! `TRUC_TEST_STORE` says): any hub serves any agency, the Merkle log is
//! one log, and a hub that stops hands the write lease (and the signing of
//! tree heads) over to the others.

use truc_client::audit::{self, AuditQuery};
use truc_core::tree_head::TreeHeadVerifier;
use truc_core::Principal;
use truc_pki::IssueOptions;
use truc_tests::{document_id, drain, eventually, header, nats_or_skip, sign, PeerHub, TestHub};

const G22: &str = "000.00.00.G22";
const H26: &str = "000.00.00.H26";

fn verifier(hub: &TestHub) -> TreeHeadVerifier {
    TreeHeadVerifier::from_pem(&std::fs::read_to_string(hub.pki.pki.receipt_pub_path()).unwrap()).unwrap()
}

fn auditor_dir(hub: &TestHub) -> std::path::PathBuf {
    let p = Principal::parse_uri("urn:truc:auditor:a1").unwrap();
    hub.pki.identity_with(&p, &IssueOptions::default())
}

/// Wait until hub `b` knows agency `code` (its directory follows the log).
async fn known_at(hub: &TestHub, b: &PeerHub, code: &str) {
    let ops = b.connect(&hub.pki.operator_dir("ops")).await;
    eventually(&format!("{code} known at the second hub"), || {
        let ops = ops.clone();
        async move { ops.list_agencies().await.unwrap().iter().any(|a| a.code == code) }
    })
    .await;
}

#[tokio::test]
async fn send_at_one_hub_receive_and_ack_at_the_other() {
    if !nats_or_skip() {
        return;
    }
    let hub = TestHub::start_jetstream_with(|_| {}).await;
    let mut b = hub.start_peer("b").await;
    let g22_a = hub.agency(G22).await;
    hub.agency(H26).await;
    known_at(&hub, &b, H26).await;

    // H26, connected to hub B, follows its inbox before anything is sent.
    let h26_b = b.connect(&hub.pki.agency_dir(H26)).await;
    let mut inbox = h26_b.receive(4, true).await.unwrap();
    let sent = g22_a.send(sign(&g22_a, header(&[H26], "cl/1"), b"one")).await.unwrap();
    assert!(!sent.duplicate);
    // Woken by the log, not by a local send.
    let d = inbox.message().await.unwrap().expect("delivery at hub B");
    assert_eq!(document_id(&d), "cl/1");
    assert_eq!(d.document.as_ref().unwrap().payload, b"one");
    assert_eq!(h26_b.ack(vec![d.delivery_id]).await.unwrap(), 1);
    drop(inbox);

    // The same id sent again through hub B is the same document.
    let g22_b = b.connect(&hub.pki.agency_dir(G22)).await;
    let again = g22_b.send(sign(&g22_b, header(&[H26], "cl/1"), b"one")).await.unwrap();
    assert!(again.duplicate);
    assert_eq!(again.hub_document_id, sent.hub_document_id);
    let other = g22_b.send(sign(&g22_b, header(&[H26], "cl/1"), b"two")).await;
    assert_eq!(other.unwrap_err().code(), Some(tonic::Code::AlreadyExists));

    // Track from either hub sees the delivery acked at B, at once.
    for client in [&g22_a, &g22_b] {
        let t = client.track("cl/1").await.unwrap();
        assert_eq!(t.recipients.len(), 1);
        assert_eq!(
            t.recipients[0].state,
            truc_proto::v1::TransportState::Delivered as i32,
            "{t:?}"
        );
    }
    // Nothing is delivered again after the ack, at either hub.
    assert!(drain(&h26_b, 4).await.is_empty());
    let h26_a = hub.connect(&hub.pki.agency_dir(H26)).await;
    assert!(drain(&h26_a, 4).await.is_empty());

    // One Merkle log: the export from either hub verifies, with the same
    // head, and the heads of A and B are consistent.
    let v = verifier(&hub);
    let aud_a = hub.connect(&auditor_dir(&hub)).await;
    let aud_b = b.connect(&auditor_dir(&hub)).await;
    let ea = audit::export(&aud_a, &AuditQuery::all(), Some(&v)).await.unwrap();
    let eb = audit::export(&aud_b, &AuditQuery::all(), Some(&v)).await.unwrap();
    let ra = audit::verify_export(&ea, &v).unwrap();
    let rb = audit::verify_export(&eb, &v).unwrap();
    assert_eq!((ra.tree_size, &ra.root_hash), (rb.tree_size, &rb.root_hash));
    assert_eq!(ra.receipts as u64, ra.tree_size);
    b.stop().await;
}

#[tokio::test]
async fn the_write_lease_passes_to_the_other_hub_and_the_log_stays_consistent() {
    if !nats_or_skip() {
        return;
    }
    let hub = TestHub::start_jetstream_with(|_| {}).await;
    let mut b = hub.start_peer("b").await;
    let g22_a = hub.agency(G22).await;
    hub.agency(H26).await;
    known_at(&hub, &b, G22).await;
    let g22_b = b.connect(&hub.pki.agency_dir(G22)).await;
    let v = verifier(&hub);
    let aud_a = hub.connect(&auditor_dir(&hub)).await;

    // Both hubs write concurrently: every send is accepted once, in one log.
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (c, hub_name) = if i % 2 == 0 {
            (g22_a.clone(), "a")
        } else {
            (g22_b.clone(), "b")
        };
        tasks.push(tokio::spawn(async move {
            c.send(sign(&c, header(&[H26], &format!("lease/{hub_name}/{i}")), b"x"))
                .await
                .map(|r| r.hub_document_id)
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap().expect("accepted"));
    }
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 20, "hub document ids are unique across hubs");
    let seen = audit::latest_head(&aud_a, &v).await.unwrap();

    // Hub B stops; A keeps committing and signing; the log grows
    // consistently with what the auditor saw.
    b.stop().await;
    g22_a
        .send(sign(&g22_a, header(&[H26], "lease/after"), b"y"))
        .await
        .unwrap();
    let later = audit::check_consistency(&aud_a, &v, &seen).await.unwrap();
    assert!(later.tree_size > seen.tree_size);
    let h26 = hub.connect(&hub.pki.agency_dir(H26)).await;
    assert_eq!(drain(&h26, 32).await.len(), 21);

    // A third hub started from an empty directory rebuilds the same state
    // from the log alone.
    let c = hub.start_peer("c").await;
    let aud_c = c.connect(&auditor_dir(&hub)).await;
    let ec = audit::export(&aud_c, &AuditQuery::all(), Some(&v)).await.unwrap();
    let rc = audit::verify_export(&ec, &v).unwrap();
    let ra = audit::verify_export(&audit::export(&aud_a, &AuditQuery::all(), Some(&v)).await.unwrap(), &v).unwrap();
    assert_eq!((rc.tree_size, &rc.root_hash), (ra.tree_size, &ra.root_hash));
    let g22_c = c.connect(&hub.pki.agency_dir(G22)).await;
    assert!(
        g22_c
            .send(sign(&g22_c, header(&[H26], "lease/a/0"), b"x"))
            .await
            .unwrap()
            .duplicate
    );
}

/// The latest head's (size, root) as the auditor sees it, verified.
async fn head_at(hub_addr: &str, hub: &TestHub) -> (u64, String) {
    let aud = truc_client::Client::connect_dir(hub_addr, &auditor_dir(hub))
        .await
        .unwrap();
    let v = verifier(hub);
    let e = audit::export(&aud, &AuditQuery::all(), Some(&v)).await.unwrap();
    let r = audit::verify_export(&e, &v).unwrap();
    assert_eq!(r.receipts as u64, r.tree_size, "the whole log verifies");
    (r.tree_size, r.root_hash)
}

#[tokio::test]
async fn migration_sled_to_jetstream_and_back_keeps_receipts_and_queues() {
    if !nats_or_skip() {
        return;
    }
    // An embedded hub on the sled engine with history: documents, an ack,
    // one copy still queued. (Out and back is also how a sled store moves
    // to fjall: docs/storage.md, "Engines".)
    let mut hub = TestHub::start_sled_with(|c| c.store.engine = truc_hub::config::StoreEngine::Sled).await;
    let g22 = hub.agency(G22).await;
    let h26 = hub.agency(H26).await;
    g22.send(sign(&g22, header(&[H26], "m/1"), b"one")).await.unwrap();
    assert_eq!(drain(&h26, 4).await.len(), 1);
    g22.send(sign(&g22, header(&[H26], "m/2"), b"two")).await.unwrap();
    let before = head_at(&hub.addr, &hub).await;
    hub.stop().await;

    // Into an empty JetStream log.
    let nats = truc_tests::start_nats(&hub.data.path().join("nats"), &hub.pki);
    let sled_dir = hub.config.data_dir.clone();
    let mut config = hub.config.clone();
    truc_tests::use_jetstream(&mut config, vec![nats.url()], 1);
    let m = truc_hub::migrate_to_jetstream(&config).await.unwrap();
    assert_eq!((m.tree_size, m.root_hex.clone()), before, "same log, same root");
    // Into a non-empty one: refused.
    assert!(truc_hub::migrate_to_jetstream(&config).await.is_err());

    // A hub on JetStream with a fresh directory serves the same state.
    config.data_dir = hub.data.path().join("js-view");
    hub.config = config.clone();
    hub.restart().await;
    assert_eq!(head_at(&hub.addr, &hub).await, before);
    let h26 = hub.connect(&hub.pki.agency_dir(H26)).await;
    let got = drain(&h26, 4).await;
    assert_eq!(got.iter().map(document_id).collect::<Vec<_>>(), vec!["m/2"]);
    let g22 = hub.connect(&hub.pki.agency_dir(G22)).await;
    assert!(
        g22.send(sign(&g22, header(&[H26], "m/1"), b"one"))
            .await
            .unwrap()
            .duplicate
    );
    g22.send(sign(&g22, header(&[H26], "m/3"), b"three")).await.unwrap();
    let on_js = head_at(&hub.addr, &hub).await;
    assert!(on_js.0 > before.0);
    hub.stop().await;

    // And back: a new directory caught up with the log, on fjall, served
    // by the embedded store.
    assert!(sled_dir.join("conf").exists(), "the first store was on sled");
    config.data_dir = hub.data.path().join("back-to-sled");
    config.store.engine = truc_hub::config::StoreEngine::Fjall;
    let m = truc_hub::migrate_to_sled(&config).await.unwrap();
    assert_eq!(m.tree_size, on_js.0);
    assert!(config.data_dir.join("fjall").exists(), "the new store is on fjall");
    drop(nats); // sled from here on: the cluster is gone
    config.store.backend = truc_hub::config::StoreBackend::Sled;
    assert_ne!(config.data_dir, sled_dir);
    hub.config = config;
    hub.restart().await;
    assert_eq!(head_at(&hub.addr, &hub).await, on_js);
    let h26 = hub.connect(&hub.pki.agency_dir(H26)).await;
    let got = drain(&h26, 4).await;
    assert_eq!(got.iter().map(document_id).collect::<Vec<_>>(), vec!["m/3"]);
}

#[tokio::test]
async fn a_local_view_ahead_of_the_log_is_refused_clearly() {
    if !nats_or_skip() {
        return;
    }
    let mut hub = TestHub::start_jetstream_with(|_| {}).await;
    hub.agency(G22).await;
    hub.stop().await;
    // The same directory against another (empty) log: not silently used.
    let mut config = hub.config.clone();
    config.store.prefix = "other".into();
    let e = truc_hub::start(config.clone()).await.err().expect("refused");
    let text = e.to_string();
    assert!(text.contains("start with an empty data_dir"), "{text}");
    // An empty directory is fine.
    config.data_dir = hub.data.path().join("fresh");
    truc_hub::start(config).await.expect("starts").shutdown().await.unwrap();
}

#[tokio::test]
async fn a_chunked_upload_at_one_hub_is_downloaded_at_the_other() {
    if !nats_or_skip() {
        return;
    }
    let hub = TestHub::start_jetstream_with(|c| {
        c.limits.max_inline_payload = 64 * 1024;
        c.limits.max_document_size = 16 << 20;
    })
    .await;
    let b = hub.start_peer("b").await;
    let g22 = hub.agency(G22).await;
    hub.agency(H26).await;
    known_at(&hub, &b, H26).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dossier.pdf");
    let want: Vec<u8> = (0..(3 << 20) + 777)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 7) as u8)
        .collect();
    std::fs::write(&path, &want).unwrap();
    let (sha, size) = truc_client::transfer::hash_file(&path).unwrap();
    let doc = truc_client::transfer::sign_external(g22.identity(), header(&[H26], "big/js"), sha, size).unwrap();
    g22.upload_file(doc, &path, &|_, _| {}).await.unwrap();
    // Hub B never saw the upload: it serves the payload from the cluster.
    assert!(!b.config.data_dir.join("payloads").join(truc_core::hex(&sha)).exists());
    let h26 = b.connect(&hub.pki.agency_dir(H26)).await;
    let mut s = h26.receive(1, false).await.unwrap();
    let d = s.message().await.unwrap().expect("delivery at hub B");
    assert!(d.payload_separate);
    let part = dir.path().join("got.part");
    h26.download_to(d.hub_document_id, d.delivery_id, &part, &sha, size, &|_, _| {})
        .await
        .unwrap();
    assert!(std::fs::read(&part).unwrap() == want, "payload differs");
    h26.ack(vec![d.delivery_id]).await.unwrap();
}

/// A hub on JetStream that collects a payload as soon as its last copy
/// is acknowledged, looking every 50 ms.
async fn collecting_hub() -> TestHub {
    TestHub::start_jetstream_with(|c| {
        c.limits.max_inline_payload = 64 * 1024;
        c.limits.payload_retention_seconds = 0;
        c.limits.payload_gc_interval_ms = 50;
    })
    .await
}

/// Upload `len` bytes as the payload of document `id` from `sender` to
/// H26 (a chunked upload: above the inline limit); returns the hub's id
/// for it and the payload's digest and size.
async fn upload_payload(
    sender: &truc_client::Client,
    dir: &std::path::Path,
    id: &str,
    len: u32,
) -> (u64, [u8; 32], u64) {
    let path = dir.join(id.replace('/', "-"));
    std::fs::write(&path, (0..len).map(|i| (i % 251) as u8).collect::<Vec<_>>()).unwrap();
    let (sha, size) = truc_client::transfer::hash_file(&path).unwrap();
    let doc = truc_client::transfer::sign_external(sender.identity(), header(&[H26], id), sha, size).unwrap();
    let resp = sender.upload_file(doc, &path, &|_, _| {}).await.unwrap();
    (resp.hub_document_id, sha, size)
}

/// The cluster's shared payloads, as `hub` is configured to reach them.
async fn shared_payloads(hub: &TestHub, dir: &std::path::Path) -> truc_store_jetstream::SharedPayloads {
    let mut opts = truc_hub::jetstream_options(&hub.config, truc_store::SledStoreOptions::new(dir));
    opts.payload_dir = Some(hub.config.data_dir.join("payloads"));
    truc_store_jetstream::SharedPayloads::connect(&opts).await.unwrap()
}

/// A collected payload stays collected though it is read while the
/// collector deletes it. A read that finds no payload file fetches the
/// shared copy, so the file must never be gone while the shared copy is
/// still there: a read in between would bring the file back after its
/// keys were deleted, where nothing would ever collect it again (a flake
/// of `transfer::a_dead_lettered_copy_keeps_its_payload_across_a_restart_until_purged`
/// in CI, session 15). A watcher spins on the file and, the moment it is
/// gone, asks the cluster whether the shared copy is.
#[tokio::test]
async fn a_payload_file_is_deleted_only_after_its_shared_copy() {
    if !nats_or_skip() {
        return;
    }
    let hub = collecting_hub().await;
    let g22 = hub.agency(G22).await;
    let h26 = hub.agency(H26).await;
    let dir = tempfile::tempdir().unwrap();
    let (hub_id, sha, size) = upload_payload(&g22, dir.path(), "gc/order", 300_000).await;
    let stored = hub.config.data_dir.join("payloads").join(truc_core::hex(&sha));
    assert!(stored.is_file());

    let shared = shared_payloads(&hub, dir.path()).await;
    assert!(shared.holds(&sha).await, "the upload is in the shared object store");
    // The watcher: its own thread and runtime, connected before the
    // document is acked (and so before it can be collected).
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let watcher = std::thread::spawn({
        let stored = stored.clone();
        move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let _ = ready_tx.send(());
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
                while stored.exists() {
                    assert!(std::time::Instant::now() < deadline, "the payload was never collected");
                    std::hint::spin_loop();
                }
                shared.holds(&sha).await
            })
        }
    });
    ready_rx.await.unwrap();
    drain(&h26, 4).await;
    let held_when_file_went = tokio::task::spawn_blocking(move || watcher.join().unwrap())
        .await
        .unwrap();
    assert!(
        !held_when_file_went,
        "the payload file was deleted while its shared copy was still there"
    );
    // And it stays collected: the sender can no longer fetch it.
    let part = dir.path().join("probe.part");
    let err = g22
        .download_to(hub_id, 0, &part, &sha, size, &|_, _| {})
        .await
        .expect_err("a collected payload is not served");
    assert!(err.to_string().contains("collected"), "{err}");
    assert!(!stored.exists(), "a read brought the collected payload back");
}

/// A payload fetched by a second hub (an agency downloaded it there) is
/// deleted there too once it is collected, whichever hub collects it:
/// the hub that applies another's collection from the log deletes its own
/// copy. Before, that copy stayed on the disk for ever and was still
/// served.
#[tokio::test]
async fn a_collected_payload_is_deleted_at_every_hub_that_fetched_it() {
    if !nats_or_skip() {
        return;
    }
    let hub = collecting_hub().await;
    let b = hub.start_peer("b").await;
    let g22 = hub.agency(G22).await;
    hub.agency(H26).await;
    known_at(&hub, &b, H26).await;
    let dir = tempfile::tempdir().unwrap();
    let (hub_id, sha, size) = upload_payload(&g22, dir.path(), "gc/peer", 200_000).await;
    let name = truc_core::hex(&sha);
    let at_a = hub.config.data_dir.join("payloads").join(&name);
    let at_b = b.config.data_dir.join("payloads").join(&name);
    assert!(at_a.is_file() && !at_b.exists());

    // H26 downloads at hub B (which fetches it from the cluster), then acks.
    let h26 = b.connect(&hub.pki.agency_dir(H26)).await;
    let mut s = h26.receive(1, false).await.unwrap();
    let d = s.message().await.unwrap().expect("delivery at hub B");
    let part = dir.path().join("got.part");
    h26.download_to(d.hub_document_id, d.delivery_id, &part, &sha, size, &|_, _| {})
        .await
        .unwrap();
    assert!(at_b.is_file(), "hub B keeps the payload it fetched");
    h26.ack(vec![d.delivery_id]).await.unwrap();

    eventually("the payload gone from both hubs", || async {
        !at_a.exists() && !at_b.exists()
    })
    .await;
    let shared = shared_payloads(&hub, dir.path()).await;
    assert!(
        !shared.holds(&sha).await,
        "a collected payload is gone from the cluster"
    );
    for (at, which) in [(&hub.addr, "A"), (&b.addr, "B")] {
        let c = truc_client::Client::connect_dir(at, &hub.pki.agency_dir(G22))
            .await
            .unwrap();
        let err = c
            .download_to(
                hub_id,
                0,
                &dir.path().join(format!("probe-{which}")),
                &sha,
                size,
                &|_, _| {},
            )
            .await
            .expect_err("a collected payload is not served");
        assert!(err.to_string().contains("collected"), "hub {which}: {err}");
    }
}
