//! Damage at rest: one damaged document never blocks an agency. A byte
//! flipped in one stored body (or payload file) is found by the scrub
//! (`Ops.VerifyStore`) or by delivery, the document is quarantined (its
//! copies dead-lettered as corrupt, a QUARANTINED receipt, a notice to its
//! sender), the documents queued behind it arrive, and a re-send of the same
//! document id restores it.
//!
//! Bytes are flipped in files no writer touches at that moment: after a
//! restart the body log writes a new segment, and the older ones are read
//! only.

use std::path::{Path, PathBuf};

use prost::Message;
use truc_client::Client;
use truc_proto::v1::{DamageKind, DeadLetterReason, ListReceiptsRequest, Receipt, ReceiptEvent, TransportState};
use truc_tests::transfer::{file, quiet, signed, MIB};
use truc_tests::{document_id, header, sign, TestHub};

const G22: &str = "000.00.00.G22";
const H26: &str = "000.00.00.H26";

/// Every file under `dir`.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Flip one bit of the only stored copy of `marker` under `dir` (a body
/// segment or a payload file); returns that file.
fn flip(dir: &Path, marker: &[u8]) -> PathBuf {
    use std::os::unix::fs::FileExt;
    let mut hits = Vec::new();
    for p in files_under(dir) {
        let bytes = std::fs::read(&p).unwrap();
        if let Some(at) = bytes.windows(marker.len()).position(|w| w == marker) {
            hits.push((p, at));
        }
    }
    assert_eq!(hits.len(), 1, "the marker is stored once: {hits:?}");
    let (path, at) = hits.pop().unwrap();
    let f = std::fs::OpenOptions::new().read(true).write(true).open(&path).unwrap();
    let mut b = [0u8; 1];
    let at = (at + marker.len() / 2) as u64;
    f.read_exact_at(&mut b, at).unwrap();
    f.write_all_at(&[b[0] ^ 0x10], at).unwrap();
    f.sync_all().unwrap();
    path
}

/// The admin listener's `/metrics` text.
async fn metrics(hub: &TestHub) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = hub.admin_addr().expect("admin listener");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).await.unwrap();
    text
}

/// A hub whose background scrub stays out of the way, with /metrics.
async fn hub() -> TestHub {
    TestHub::start_sled_with(|c| {
        c.admin.listen = Some("127.0.0.1:0".parse().unwrap());
        c.limits.scrub_interval_ms = 0;
        c.limits.max_inline_payload = 64 * 1024;
        c.limits.max_document_size = 16 * MIB as u64;
    })
    .await
}

/// Send the document to be damaged, then `behind` more, all to H26.
async fn send_damaged_and_behind(g22: &Client, marker: &[u8], behind: usize) -> u64 {
    let first = g22
        .send(sign(g22, header(&[H26], "G22/damaged"), marker))
        .await
        .unwrap();
    for i in 0..behind {
        let doc = sign(
            g22,
            header(&[H26], &format!("G22/behind/{i}")),
            format!("body {i}").as_bytes(),
        );
        g22.send(doc).await.unwrap();
    }
    first.hub_document_id
}

/// Receive (and ack) everything waiting for `c`; document ids and the
/// receipts of the hub's notices.
async fn receive(c: &Client) -> (Vec<String>, Vec<Receipt>) {
    let mut s = c.receive(64, false).await.expect("receive");
    let (mut docs, mut notices) = (Vec::new(), Vec::new());
    while let Some(d) = s.message().await.expect("the stream never fails at a damaged body") {
        c.ack(vec![d.delivery_id]).await.unwrap();
        match &d.status {
            Some(n) => notices.push(Receipt::decode(n.receipt.as_ref().unwrap().receipt.as_slice()).unwrap()),
            None => docs.push(document_id(&d)),
        }
    }
    (docs, notices)
}

/// What was quarantined is reported: the copy is a corrupt dead letter,
/// Track says so, the sender's notice and the receipts name it.
async fn assert_reported(hub: &TestHub, g22: &Client, hub_id: u64, sender_notices: &[Receipt]) {
    let dead = hub.operator().await.dead_letters(H26).await.unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].hub_document_id, hub_id);
    assert_eq!(dead[0].document_id, "G22/damaged");
    assert_eq!(dead[0].reason, DeadLetterReason::Corrupt as i32);
    let track = g22.track("G22/damaged").await.unwrap();
    assert_eq!(track.recipients[0].state, TransportState::DeadLettered as i32);
    let notice: Vec<_> = sender_notices
        .iter()
        .filter(|r| r.event == ReceiptEvent::Quarantined as i32)
        .collect();
    assert_eq!(notice.len(), 1, "the sender gets one notice: {sender_notices:?}");
    assert_eq!(notice[0].hub_document_id, hub_id);
    assert!(
        notice[0].description.contains("send the document again"),
        "{:?}",
        notice[0]
    );
    let receipts = g22
        .list_receipts(ListReceiptsRequest {
            document_from: G22.into(),
            document_id: "G22/damaged".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let events: Vec<i32> = receipts
        .receipts
        .iter()
        .map(|p| Receipt::decode(p.receipt.as_slice()).unwrap().event)
        .collect();
    assert!(events.contains(&(ReceiptEvent::Quarantined as i32)), "{events:?}");
    assert!(events.contains(&(ReceiptEvent::DeadLettered as i32)), "{events:?}");
}

/// The sender sends it again under the same id: restored, delivered.
async fn resend_restores(g22: &Client, h26: &Client, marker: &[u8], hub_id: u64) {
    let again = g22
        .send(sign(g22, header(&[H26], "G22/damaged"), marker))
        .await
        .unwrap();
    assert!(
        !again.duplicate,
        "a quarantined document is taken again, not a duplicate"
    );
    assert_eq!(again.hub_document_id, hub_id);
    let r = Receipt::decode(again.receipt.unwrap().receipt.as_slice()).unwrap();
    assert_eq!(r.event, ReceiptEvent::Restored as i32);
    let (docs, _) = receive(h26).await;
    assert_eq!(docs, vec!["G22/damaged".to_string()]);
    let track = g22.track("G22/damaged").await.unwrap();
    assert_eq!(track.recipients[0].state, TransportState::Delivered as i32);
    // A second send is the ordinary duplicate.
    let dup = g22
        .send(sign(g22, header(&[H26], "G22/damaged"), marker))
        .await
        .unwrap();
    assert!(dup.duplicate);
}

#[tokio::test]
async fn a_damaged_body_found_by_the_scrub_is_quarantined_and_the_300_behind_it_arrive() {
    let mut hub = hub().await;
    let g22 = hub.agency(G22).await;
    hub.agency(H26).await;
    let marker = b"scrub-test: the body that will be damaged, 0123456789abcdef";
    let hub_id = send_damaged_and_behind(&g22, marker, 300).await;
    let clean = hub.operator().await.verify_store(0).await.unwrap();
    assert!(clean.damaged.is_empty(), "{:?}", clean.damaged);
    assert_eq!(clean.documents_checked, 301);
    assert!(clean.receipts_checked >= 301 && clean.tree_heads_checked >= 1);

    // A new segment for the writer, then damage the old one.
    hub.restart().await;
    let seg = flip(&hub.config.data_dir, marker);
    assert!(seg.extension().is_some_and(|e| e == "seg"), "{}", seg.display());
    let (g22, h26) = (
        hub.connect(&hub.pki.agency_dir(G22)).await,
        hub.connect(&hub.pki.agency_dir(H26)).await,
    );

    let found = hub.operator().await.verify_store(0).await.unwrap();
    assert_eq!(found.damaged.len(), 1, "{:?}", found.damaged);
    let d = &found.damaged[0];
    assert_eq!(d.kind, DamageKind::Document as i32);
    assert_eq!((d.hub_document_id, d.document_id.as_str()), (hub_id, "G22/damaged"));
    assert!(d.what.contains("checksum"), "{}", d.what);
    assert!(d.quarantined);

    let m = metrics(&hub).await;
    assert!(m.contains("truc_scrub_damaged_total{kind=\"document\"} 1"), "{m}");
    assert!(
        m.contains("truc_quarantined_documents_total{found_by=\"scrub\"} 1"),
        "{m}"
    );
    assert!(m.contains("truc_scrub_last_completed_timestamp_seconds "), "{m}");
    // Operators only.
    let refused = g22.verify_store(0).await.unwrap_err();
    assert_eq!(refused.code(), Some(tonic::Code::PermissionDenied));

    // The 300 behind it arrive, in order; the damaged one does not.
    let (docs, _) = receive(&h26).await;
    let want: Vec<String> = (0..300).map(|i| format!("G22/behind/{i}")).collect();
    assert_eq!(docs, want);
    let (_, notices) = receive(&g22).await;
    assert_reported(&hub, &g22, hub_id, &notices).await;

    // Scrubbed again: nothing new, the document awaits its sender.
    let again = hub.operator().await.verify_store(0).await.unwrap();
    assert!(again.damaged.is_empty(), "{:?}", again.damaged);
    assert_eq!(again.awaiting_resend, vec![hub_id]);

    resend_restores(&g22, &h26, marker, hub_id).await;
    let healed = hub.operator().await.verify_store(0).await.unwrap();
    assert!(
        healed.damaged.is_empty() && healed.awaiting_resend.is_empty(),
        "{healed:?}"
    );
}

#[tokio::test]
async fn delivery_quarantines_a_damaged_body_without_a_scrub_and_the_queue_moves_on() {
    let mut hub = hub().await;
    let g22 = hub.agency(G22).await;
    hub.agency(H26).await;
    let marker = b"delivery-test: the body that will be damaged, fedcba9876543210";
    let hub_id = send_damaged_and_behind(&g22, marker, 50).await;
    hub.restart().await;
    flip(&hub.config.data_dir, marker);
    let (g22, h26) = (
        hub.connect(&hub.pki.agency_dir(G22)).await,
        hub.connect(&hub.pki.agency_dir(H26)).await,
    );

    let (docs, _) = receive(&h26).await;
    let want: Vec<String> = (0..50).map(|i| format!("G22/behind/{i}")).collect();
    assert_eq!(docs, want);
    let (_, notices) = receive(&g22).await;
    assert_reported(&hub, &g22, hub_id, &notices).await;
    let m = metrics(&hub).await;
    assert!(
        m.contains("truc_quarantined_documents_total{found_by=\"delivery\"} 1"),
        "{m}"
    );
    resend_restores(&g22, &h26, marker, hub_id).await;
}

#[tokio::test]
async fn a_damaged_payload_file_is_found_by_the_scrub_and_taken_again_from_its_sender() {
    let hub = hub().await;
    let g22 = hub.agency(G22).await;
    let h26 = hub.agency(H26).await;
    let dir = tempfile::tempdir().unwrap();
    let path = file(dir.path(), "scan.pdf", 2 * MIB + 77, 9);
    let bytes = std::fs::read(&path).unwrap();
    let sent = g22
        .upload_file(signed(&g22, &[H26], "G22/large", &path), &path, &quiet)
        .await
        .unwrap();
    let behind = g22
        .send(sign(&g22, header(&[H26], "G22/small"), b"small"))
        .await
        .unwrap();

    // Payload files are written once and never again: damage one in place.
    let (sha, _) = truc_client::transfer::hash_file(&path).unwrap();
    let payload = hub.config.data_dir.join("payloads").join(truc_core::hex(&sha));
    flip(&hub.config.data_dir.join("payloads"), &bytes[MIB..MIB + 64]);

    let found = hub.operator().await.verify_store(0).await.unwrap();
    let kinds: Vec<(i32, u64)> = found.damaged.iter().map(|d| (d.kind, d.hub_document_id)).collect();
    assert!(
        kinds.contains(&(DamageKind::PayloadFile as i32, 0)),
        "{:?}",
        found.damaged
    );
    assert!(
        kinds.contains(&(DamageKind::Document as i32, sent.hub_document_id)),
        "{:?}",
        found.damaged
    );
    assert!(found.damaged.iter().all(|d| d.quarantined), "{:?}", found.damaged);
    let p = found
        .damaged
        .iter()
        .find(|d| d.kind == DamageKind::PayloadFile as i32)
        .unwrap();
    assert_eq!(p.payload_sha256, sha.to_vec());
    assert!(!payload.exists(), "the damaged file is out of payloads/");
    assert_eq!(
        std::fs::read_dir(hub.config.data_dir.join("quarantine"))
            .unwrap()
            .count(),
        1
    );

    // The recipient gets the small one; the large one is a corrupt dead letter.
    let (docs, _) = receive(&h26).await;
    assert_eq!(docs, vec!["G22/small".to_string()]);
    let dead = hub.operator().await.dead_letters(H26).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (dead[0].hub_document_id, dead[0].reason),
        (sent.hub_document_id, DeadLetterReason::Corrupt as i32)
    );
    let _ = behind;

    // The sender uploads it again (the hub takes the bytes, it has none):
    // restored, and the recipient downloads exactly the signed bytes.
    let again = g22
        .upload_file(signed(&g22, &[H26], "G22/large", &path), &path, &quiet)
        .await
        .unwrap();
    assert!(!again.duplicate);
    assert_eq!(again.hub_document_id, sent.hub_document_id);
    let mut s = h26.receive(4, false).await.unwrap();
    let d = s.message().await.unwrap().expect("the restored document");
    assert!(d.payload_separate);
    let part = dir.path().join("got.part");
    h26.download_to(
        d.hub_document_id,
        d.delivery_id,
        &part,
        &sha,
        bytes.len() as u64,
        &quiet,
    )
    .await
    .unwrap();
    assert_eq!(std::fs::read(&part).unwrap(), bytes);
    h26.ack(vec![d.delivery_id]).await.unwrap();
    let clean = hub.operator().await.verify_store(0).await.unwrap();
    assert!(clean.damaged.is_empty(), "{:?}", clean.damaged);
}

#[tokio::test]
async fn the_background_scrub_quarantines_damage_by_itself() {
    let mut hub = TestHub::start_sled_with(|c| {
        c.admin.listen = Some("127.0.0.1:0".parse().unwrap());
        c.limits.scrub_interval_ms = 50;
        c.limits.scrub_bytes_per_second = 1 << 20;
    })
    .await;
    let g22 = hub.agency(G22).await;
    hub.agency(H26).await;
    let marker = b"background-test: the body that will be damaged, 5555aaaa";
    let hub_id = send_damaged_and_behind(&g22, marker, 3).await;
    hub.stop().await;
    flip(&hub.config.data_dir, marker);
    hub.restart().await;
    truc_tests::eventually("the background scrub quarantines the damaged document", || async {
        let dead = hub.operator().await.dead_letters(H26).await.unwrap();
        dead.iter()
            .any(|d| d.hub_document_id == hub_id && d.reason == DeadLetterReason::Corrupt as i32)
    })
    .await;
    // Counted once the pass ends (and not again: it is not read again).
    truc_tests::eventually("the pass is counted", || async {
        metrics(&hub)
            .await
            .contains("truc_scrub_damaged_total{kind=\"document\"} 1")
    })
    .await;
    let h26 = hub.connect(&hub.pki.agency_dir(H26)).await;
    let (docs, _) = receive(&h26).await;
    assert_eq!(docs, vec!["G22/behind/0", "G22/behind/1", "G22/behind/2"]);
}

#[tokio::test]
async fn on_the_jetstream_store_the_scrub_checks_the_view_without_false_alarms() {
    if !truc_tests::nats_or_skip() {
        return;
    }
    let hub = TestHub::start_jetstream_with(|c| {
        c.limits.scrub_interval_ms = 0;
        c.limits.max_inline_payload = 64 * 1024;
    })
    .await;
    let g22 = hub.agency(G22).await;
    let h26 = hub.agency(H26).await;
    let hub_id = send_damaged_and_behind(&g22, b"jetstream: inline body", 5).await;
    let dir = tempfile::tempdir().unwrap();
    let path = file(dir.path(), "large.bin", MIB, 3);
    g22.upload_file(signed(&g22, &[H26], "G22/large", &path), &path, &quiet)
        .await
        .unwrap();
    // Bodies inline in the view's records, payloads under `P` or in files:
    // all sound.
    let clean = hub.operator().await.verify_store(0).await.unwrap();
    assert!(clean.damaged.is_empty(), "{:?}", clean.damaged);
    assert_eq!((clean.documents_checked, clean.payload_files_checked), (7, 1));
    let (docs, _) = receive(&h26).await;
    assert_eq!(docs.len(), 7);
    assert_eq!(docs[0], "G22/damaged", "hub document {hub_id} first");
}
