//! The sled backend on its own: durability across reopen, the receipt log
//! and its proofs, queue order, acks, expiry and dead letters.

mod support;

use std::collections::HashSet;
use std::sync::Arc;

use prost::Message;
use truc_core::tree_head::{TreeHeadSigner, TreeHeadVerifier};
use truc_core::AgencyCode;
use truc_proto::v1::{Receipt, ReceiptEvent};
use truc_store::{ExpireOutcome, NewDocument, SledStore, SledStoreOptions, Store, StoreError};

fn key() -> Vec<u8> {
    let rng = ring::rand::SystemRandom::new();
    ring::signature::Ed25519KeyPair::generate_pkcs8(&rng)
        .unwrap()
        .as_ref()
        .to_vec()
}

fn code(s: &str) -> AgencyCode {
    AgencyCode::parse(s).unwrap()
}

fn doc(from: &str, id: &str, to: &[&str], priority: i32, payload: &[u8]) -> NewDocument {
    let header = format!("{from}|{id}|{priority}").into_bytes();
    let priority = truc_proto::v1::Priority::try_from(priority).unwrap();
    support::new_document(from, id, to, priority, header, payload)
}

async fn open(dir: &std::path::Path, key: &[u8]) -> Arc<SledStore> {
    let signer = TreeHeadSigner::from_pkcs8(key).unwrap();
    tokio::task::spawn_blocking({
        let dir = dir.to_path_buf();
        move || SledStore::open(&SledStoreOptions::new(dir), signer).unwrap()
    })
    .await
    .unwrap()
}

async fn close(s: Arc<SledStore>) {
    tokio::task::spawn_blocking(move || s.close()).await.unwrap();
}

#[tokio::test]
async fn receipts_prove_and_state_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let key = key();
    let verifier = TreeHeadSigner::from_pkcs8(&key).unwrap().verifier();
    let s = open(dir.path(), &key).await;
    for c in ["G22", "H26", "H29"] {
        s.put_agency(code(c), format!("agency {c}"), "urn:truc:operator:t".into())
            .await
            .unwrap();
    }
    let out = s.send(doc("G22", "d1", &["H26", "H29"], 0, b"payload")).await.unwrap();
    let (r, head) = verifier.verify_proven_receipt(&out.receipt).unwrap();
    assert_eq!((r.index, head.tree_size), (3, 4));
    assert_eq!(r.event, ReceiptEvent::Accepted as i32);
    assert_eq!(s.agency(&code("H26")).unwrap().queued, 1);
    close(s).await;

    let s = open(dir.path(), &key).await;
    assert_eq!(s.agencies().len(), 3);
    assert_eq!(s.agency(&code("H29")).unwrap().queued, 1);
    // The same document again: the original receipt, nothing new.
    let again = s.send(doc("G22", "d1", &["H26", "H29"], 0, b"payload")).await.unwrap();
    assert!(again.duplicate);
    assert_eq!(again.receipt.receipt, out.receipt.receipt);
    verifier.verify_proven_receipt(&again.receipt).unwrap();
    // A different document under the same id is a conflict.
    let err = s.send(doc("G22", "d1", &["H26"], 1, b"other")).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
    // The log continues where it stopped.
    let next = s.send(doc("G22", "d2", &["H26"], 0, b"payload")).await.unwrap();
    let (r, _) = verifier.verify_proven_receipt(&next.receipt).unwrap();
    assert_eq!(r.index, 4);
    close(s).await;
}

#[tokio::test]
async fn queue_order_acks_expiry_and_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path(), &key()).await;
    let op = "urn:truc:operator:t".to_string();
    for c in ["G22", "H26"] {
        s.put_agency(code(c), c.into(), op.clone()).await.unwrap();
    }
    for (i, p) in [0, 3, 1, 3].iter().enumerate() {
        s.send(doc("G22", &format!("q{i}"), &["H26"], *p, b"x")).await.unwrap();
    }
    let items = s.fetch(code("H26"), HashSet::new(), 10).await.unwrap();
    let order: Vec<u64> = items.iter().map(|i| i.hub_document_id).collect();
    assert_eq!(order, vec![2, 4, 3, 1], "express first, FIFO within a priority");
    let skip: HashSet<u64> = [items[0].delivery_id].into();
    assert_eq!(s.fetch(code("H26"), skip, 1).await.unwrap()[0].hub_document_id, 4);

    assert_eq!(
        s.ack(code("H26"), vec![items[0].delivery_id], op.clone())
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        s.ack(code("H26"), vec![items[0].delivery_id], op.clone())
            .await
            .unwrap(),
        0
    );
    assert!(matches!(
        s.ack(code("H26"), vec![999], op.clone()).await,
        Err(StoreError::UnknownDelivery(999))
    ));
    // Acking for another agency does not touch H26's copies.
    assert!(s
        .ack(code("G22"), vec![items[1].delivery_id], op.clone())
        .await
        .is_err());

    let id = items[1].delivery_id;
    assert_eq!(
        s.expire(code("H26"), id, 2).await.unwrap(),
        ExpireOutcome::Requeued { attempts: 1 }
    );
    assert_eq!(
        s.expire(code("H26"), id, 2).await.unwrap(),
        ExpireOutcome::DeadLettered { attempts: 2 }
    );
    assert_eq!(s.expire(code("H26"), id, 2).await.unwrap(), ExpireOutcome::Gone);
    let dead = s.dead_letters(code("H26")).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].hub_document_id, 4);
    assert_eq!(s.agency(&code("H26")).unwrap().queued, 2);
    let left: Vec<u64> = s
        .fetch(code("H26"), HashSet::new(), 10)
        .await
        .unwrap()
        .iter()
        .map(|i| i.hub_document_id)
        .collect();
    assert_eq!(left, vec![3, 1]);

    // Unknown and inactive agencies are refused and nothing is written.
    let err = s.send(doc("G22", "bad", &["H29"], 0, b"x")).await.unwrap_err();
    assert!(matches!(err, StoreError::UnknownAgency(ref c) if c == "H29"), "{err:?}");
    close(s).await;
}

#[tokio::test]
async fn every_receipt_in_a_batch_proves_against_its_own_head() {
    let dir = tempfile::tempdir().unwrap();
    let key = key();
    let verifier: TreeHeadVerifier = TreeHeadSigner::from_pkcs8(&key).unwrap().verifier();
    let s = open(dir.path(), &key).await;
    let op = "urn:truc:operator:t".to_string();
    s.put_agency(code("G22"), "a".into(), op.clone()).await.unwrap();
    s.put_agency(code("H26"), "b".into(), op).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..100 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.send(doc("G22", &format!("b{i}"), &["H26"], 0, b"x")).await.unwrap()
        }));
    }
    let mut indexes = HashSet::new();
    for t in tasks {
        let out = t.await.unwrap();
        let (r, head) = verifier.verify_proven_receipt(&out.receipt).unwrap();
        assert!(r.index < head.tree_size);
        assert!(indexes.insert(r.index));
        let decoded = Receipt::decode(out.receipt.receipt.as_slice()).unwrap();
        assert_eq!(decoded.hub_document_id, out.hub_document_id);
    }
    assert_eq!(indexes.len(), 100);
    close(s).await;
}

/// Receipts as an auditor gets them, checked with the hub key alone.
async fn audit_failures(s: &Arc<SledStore>, key: &[u8]) -> Vec<u64> {
    let verifier = TreeHeadSigner::from_pkcs8(key).unwrap().verifier();
    let q = truc_store::ReceiptQuery {
        filter: truc_store::ReceiptFilter::All,
        since_unix_ms: 0,
        until_unix_ms: 0,
        page_token: 0,
        page_size: 1000,
        visible_to: None,
    };
    let page = s.receipts(q).await.unwrap();
    let head = verifier.verify(&page.tree_head).unwrap();
    let root: [u8; 32] = head.root_hash.as_slice().try_into().unwrap();
    let mut failed = Vec::new();
    for (position, r) in page.receipts.iter().enumerate() {
        let proof: Vec<[u8; 32]> = r
            .inclusion_proof
            .iter()
            .map(|h| h.as_slice().try_into().unwrap())
            .collect();
        let leaf = truc_core::merkle::leaf_hash(&r.receipt);
        if truc_core::merkle::verify_inclusion(&leaf, position as u64, head.tree_size, &proof, &root).is_err() {
            failed.push(position as u64);
        }
    }
    failed
}

/// A store in `dir` with agencies G22 and H26 and `n` documents sent from
/// one to the other (ids `prefix` + number).
async fn store_with_sends(dir: &std::path::Path, key: &[u8], prefix: &str, n: usize) -> Arc<SledStore> {
    let s = open(dir, key).await;
    for c in ["G22", "H26"] {
        s.put_agency(code(c), c.into(), "urn:truc:operator:t".into())
            .await
            .unwrap();
    }
    for i in 0..n {
        s.send(doc("G22", &format!("{prefix}{i}"), &["H26"], 0, b"x"))
            .await
            .unwrap();
    }
    s
}

/// A directory holding an empty sled database: a store opened in it stays
/// on sled (tests that edit sled's tree or files behind the store's back).
fn sled_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    drop(sled::open(dir.path()).unwrap());
    dir
}

/// The store's sled database opened directly, to edit it behind the
/// store's back (sled releases its file lock a moment after the store's
/// last handle drops).
fn raw_db(dir: &std::path::Path) -> sled::Db {
    (0..500)
        .find_map(|_| {
            sled::open(dir).ok().or_else(|| {
                std::thread::sleep(std::time::Duration::from_millis(10));
                None
            })
        })
        .expect("the database opens once the store has closed")
}

#[tokio::test]
async fn tampering_with_stored_receipts_is_detected() {
    let dir = sled_dir();
    let key = key();
    let s = store_with_sends(dir.path(), &key, "t", 4).await;
    assert!(audit_failures(&s, &key).await.is_empty());
    close(s).await;

    // Receipt keys are `R` + index (u64 big-endian); see keys.rs.
    let receipt_key = |i: u64| [&[b'R'][..], &i.to_be_bytes()].concat();
    let edit = |f: &dyn Fn(&sled::Tree)| {
        let db = raw_db(dir.path());
        f(&db.open_tree("truc").unwrap());
        db.flush().unwrap();
    };
    // One byte of receipt 3 changed: receipt 3 fails.
    edit(&|t| {
        let mut v = t.get(receipt_key(3)).unwrap().unwrap().to_vec();
        let last = v.len() - 1;
        v[last] ^= 1;
        t.insert(receipt_key(3), v).unwrap();
    });
    let s = open(dir.path(), &key).await;
    assert_eq!(audit_failures(&s, &key).await, vec![3]);
    close(s).await;
    // Receipts 2 and 4 swapped: both fail.
    edit(&|t| {
        let a = t.get(receipt_key(2)).unwrap().unwrap();
        let b = t.get(receipt_key(4)).unwrap().unwrap();
        t.insert(receipt_key(2), b).unwrap();
        t.insert(receipt_key(4), a).unwrap();
    });
    // Receipt 5 fails too: its proof holds leaf 4's hash, which is stored
    // beside receipt 4 (and moved with it).
    let s = open(dir.path(), &key).await;
    assert_eq!(audit_failures(&s, &key).await, vec![2, 3, 4, 5]);
    close(s).await;
    // Receipt 5 dropped: the hub refuses to open a log with a hole below
    // its last signed head, naming the receipt…
    edit(&|t| {
        t.remove(receipt_key(5)).unwrap();
    });
    let signer = TreeHeadSigner::from_pkcs8(&key).unwrap();
    let opts = SledStoreOptions::new(dir.path());
    let err = SledStore::open(&opts, signer).unwrap_err();
    assert!(matches!(err, truc_store::StoreError::Damaged(_)), "{err}");
    assert!(err.to_string().contains("receipt 5"), "{err}");
    // …and, repaired with the loss accepted, still refuses to serve it.
    let mut opts = SledStoreOptions::new(dir.path());
    opts.accept_loss = true;
    let s = SledStore::open(&opts, TreeHeadSigner::from_pkcs8(&key).unwrap()).unwrap();
    assert_eq!(s.repaired().len(), 1, "{:?}", s.repaired());
    let q = truc_store::ReceiptQuery {
        filter: truc_store::ReceiptFilter::All,
        since_unix_ms: 0,
        until_unix_ms: 0,
        page_token: 0,
        page_size: 1000,
        visible_to: None,
    };
    let err = s.receipts(q).await.unwrap_err();
    assert!(err.to_string().contains("receipt 5"), "{err}");
    close(s).await;
}

/// sled's recovery snapshots in `dir`, by the log position they cover.
fn snapshots(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("snap."))
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn a_checkpoint_after_close_writes_sleds_snapshot_and_keeps_everything() {
    let dir = sled_dir();
    let key = key();
    let s = store_with_sends(dir.path(), &key, "d", 50).await;
    let head = s.tree_head(0).await.unwrap().unwrap();
    close(s).await;
    let before = snapshots(dir.path());
    let path = dir.path().to_path_buf();
    tokio::task::spawn_blocking(move || SledStore::checkpoint(&path).unwrap())
        .await
        .unwrap();
    // A snapshot covering what this run wrote: the next open starts there.
    let after = snapshots(dir.path());
    assert!(
        after.last() > before.last(),
        "no newer snapshot: {before:?} -> {after:?}"
    );
    let s = open(dir.path(), &key).await;
    assert_eq!(s.tree_head(0).await.unwrap().unwrap(), head);
    assert_eq!(s.agency(&code("H26")).unwrap().queued, 50);
    // A store still open is not checkpointed under it.
    let path = dir.path().to_path_buf();
    let e = tokio::task::spawn_blocking(move || SledStore::checkpoint(&path))
        .await
        .unwrap()
        .unwrap_err();
    assert!(e.to_string().contains("in use"), "{e}");
    close(s).await;
}

#[tokio::test]
async fn a_store_with_merkle_nodes_under_their_own_keys_still_proves_and_grows() {
    let dir = sled_dir();
    let key = key();
    let s = store_with_sends(dir.path(), &key, "a", 6).await;
    close(s).await;
    // Rewrite it in the layout stores had before nodes moved into the
    // receipt's value: `R` + index holds the receipt alone, and node
    // (level, i) is `M` + level + i (u64 BE), both as in keys.rs.
    let db = raw_db(dir.path());
    let t = db.open_tree("truc").unwrap();
    let mut rewritten = 0;
    for kv in t.scan_prefix([b'R']) {
        let (k, v) = kv.unwrap();
        assert_eq!(v[0], 0, "receipts are written with their nodes");
        let leaf = u64::from_be_bytes(k[1..9].try_into().unwrap());
        let count = v[1] as usize;
        for level in 0..count {
            let node = &v[2 + level * 32..2 + (level + 1) * 32];
            let index = ((leaf + 1) >> level) - 1;
            let mut m = vec![b'M', level as u8];
            m.extend_from_slice(&index.to_be_bytes());
            t.insert(m, node).unwrap();
        }
        t.insert(k, &v[2 + count * 32..]).unwrap();
        rewritten += 1;
    }
    assert!(rewritten >= 8);
    db.flush().unwrap();
    drop(t);
    drop(db);
    // Every proof still verifies; new receipts build on the old nodes.
    let s = open(dir.path(), &key).await;
    assert!(audit_failures(&s, &key).await.is_empty());
    for i in 0..7 {
        s.send(doc("G22", &format!("b{i}"), &["H26"], 0, b"x")).await.unwrap();
    }
    assert!(audit_failures(&s, &key).await.is_empty());
    close(s).await;
}

/// Allocated bytes of log segment `n` (`st_blocks`).
fn segment_blocks(dir: &std::path::Path, n: u32) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(dir.join("bodies").join(format!("{n:08}.seg")))
        .unwrap()
        .blocks()
        * 512
}

#[tokio::test]
async fn old_batch_records_give_back_their_disk_space_and_every_body_still_reads() {
    let dir = tempfile::tempdir().unwrap();
    let key = key();
    // First run (segment 1): documents whose bodies fill whole blocks, in
    // batches whose records (every sled write) span several.
    let s = store_with_sends(dir.path(), &key, "a", 0).await;
    let body = |i: usize| -> Vec<u8> { (0..6000).map(|j| (i * 7 + j) as u8).collect() };
    let mut sent = Vec::new();
    for round in 0..4 {
        let batch: Vec<_> = (0..50)
            .map(|i| {
                let (s, n) = (s.clone(), round * 50 + i);
                let d = doc("G22", &format!("d{n}"), &["H26"], 0, &body(n));
                tokio::spawn(async move { (s.send(d).await.unwrap().hub_document_id, n) })
            })
            .collect();
        for t in batch {
            sent.push(t.await.unwrap());
        }
    }
    // Replay still starts in segment 1: nothing to punch yet.
    assert_eq!(s.reclaim_log_space().unwrap().segments, 0);
    let head = s.tree_head(0).await.unwrap().unwrap();
    close(s).await;
    let before = segment_blocks(dir.path(), 1);

    // Second run (segment 2): its first batch moves replay past segment 1,
    // and wakes the punching thread, which gives segment 1's batch records
    // back by itself.
    let s = open(dir.path(), &key).await;
    s.send(doc("G22", "after", &["H26"], 0, b"after")).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while segment_blocks(dir.path(), 1) == before {
        assert!(
            std::time::Instant::now() < deadline,
            "segment 1 not punched within 20 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // Nothing left to do, and done once only.
    assert_eq!(s.reclaim_log_space().unwrap(), truc_store::Reclaimed::default());
    let after = segment_blocks(dir.path(), 1);
    assert!(after < before, "{before} -> {after} bytes allocated");
    for (hub_id, n) in &sent {
        match s.payload(*hub_id, code("H26")).await.unwrap() {
            truc_store::PayloadRef::Inline(b) => assert!(b == body(*n), "document {n}"),
            other => panic!("document {n}: {other:?}"),
        }
    }
    assert_eq!(audit_failures(&s, &key).await, Vec::<u64>::new());
    close(s).await;

    // Reopened (replay from segment 2): everything is there.
    let s = open(dir.path(), &key).await;
    assert_eq!(s.agency(&code("H26")).unwrap().queued, 201);
    assert_ne!(s.tree_head(0).await.unwrap().unwrap(), head, "the later batch is there");
    assert_eq!(audit_failures(&s, &key).await, Vec::<u64>::new());
    close(s).await;
}

/// A document whose header is a real `DocumentHeader` (the scrub decodes it).
fn signed_like(from: &str, id: &str, payload: &[u8]) -> NewDocument {
    let header = truc_proto::v1::DocumentHeader {
        from: from.into(),
        document_id: id.into(),
        to: vec!["H26".into()],
        payload_sha256: truc_core::sha256(payload).to_vec(),
        payload_size: payload.len() as u64,
        ..Default::default()
    }
    .encode_to_vec();
    let mut d = doc(from, id, &["H26"], 0, payload);
    d.header_sha256 = truc_core::sha256(&header);
    d.content_sha256 = d.header_sha256;
    d.document.header = header;
    d
}

#[tokio::test]
async fn the_scrub_names_a_changed_receipt_and_a_head_that_is_not_the_logs_root() {
    use truc_store::{DamageKind, ScrubOptions};
    let dir = sled_dir();
    let key = key();
    let s = open(dir.path(), &key).await;
    for c in ["G22", "H26"] {
        s.put_agency(code(c), c.into(), "urn:truc:operator:t".into())
            .await
            .unwrap();
    }
    for i in 0..6 {
        s.send(signed_like("G22", &format!("s{i}"), format!("payload {i}").as_bytes()))
            .await
            .unwrap();
    }
    let report_only = || ScrubOptions {
        actor: "urn:truc:operator:t".into(),
        ..Default::default()
    };
    let clean = s.verify_store(report_only()).await.unwrap();
    assert!(clean.damaged.is_empty(), "{:?}", clean.damaged);
    assert_eq!((clean.documents, clean.receipts), (6, 8));
    let size = clean.tree_size;
    close(s).await;

    let receipt_key = |i: u64| [&[b'R'][..], &i.to_be_bytes()].concat();
    let head_key = |n: u64| [&[b'T'][..], &n.to_be_bytes()].concat();
    {
        let db = raw_db(dir.path());
        let t = db.open_tree("truc").unwrap();
        // One byte of receipt 3 changed.
        let mut v = t.get(receipt_key(3)).unwrap().unwrap().to_vec();
        let last = v.len() - 1;
        v[last] ^= 1;
        t.insert(receipt_key(3), v).unwrap();
        // The newest head's root replaced (its signature no longer matters:
        // the scrub compares it with the log).
        let v = t.get(head_key(size)).unwrap().unwrap();
        let mut sth = truc_proto::v1::SignedTreeHead::decode(v.as_ref()).unwrap();
        let mut th = truc_proto::v1::TreeHead::decode(sth.tree_head.as_slice()).unwrap();
        th.root_hash = vec![7; 32];
        sth.tree_head = th.encode_to_vec();
        t.insert(head_key(size), sth.encode_to_vec()).unwrap();
        db.flush().unwrap();
    }
    let s = open(dir.path(), &key).await;
    let found = s.verify_store(report_only()).await.unwrap();
    let named: Vec<(DamageKind, u64)> = found.damaged.iter().map(|d| (d.kind, d.receipt_index)).collect();
    assert_eq!(
        named,
        vec![(DamageKind::Receipt, 3), (DamageKind::TreeHead, size)],
        "{:?}",
        found.damaged
    );
    // Reported only: nothing to quarantine, every document still sound.
    assert_eq!(found.documents, 6);
    close(s).await;
}

/// Each copy's confirmation deadline comes from the calendar and the
/// ACCEPTED receipt's time; the indicators count 01/03 on time or late
/// against it, on the calendar's local day (a manual clock, no waiting).
#[tokio::test]
async fn confirmation_deadlines_follow_the_working_day_calendar() {
    use truc_core::calendar::{civil_day, Holidays};
    use truc_core::{Calendar, Clock};
    const DAY_MS: i64 = 86_400_000;
    // Local time at UTC+7.
    let hanoi =
        |y, m, d, h: i64, mi: i64| civil_day(y, m, d).unwrap() * DAY_MS + (h * 60 + mi) * 60_000 - 7 * 3_600_000;
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual(hanoi(2027, 3, 5, 9, 0));
    let mut opts = SledStoreOptions::new(dir.path());
    opts.clock = clock.clone();
    opts.calendar = Arc::new(Calendar::default().with_holidays(Holidays::parse("2027-03-09  test holiday\n").unwrap()));
    let signer = TreeHeadSigner::from_pkcs8(&key()).unwrap();
    let s = tokio::task::spawn_blocking(move || SledStore::open(&opts, signer).unwrap())
        .await
        .unwrap();
    let op = "urn:truc:operator:t".to_string();
    for c in ["G22", "H26", "H29"] {
        s.put_agency(code(c), c.into(), op.clone()).await.unwrap();
    }
    // Friday 5/3 16:59: due Monday 17:00. 17:01: counts from Monday, and
    // Tuesday 9/3 is a holiday, so due Wednesday 17:00.
    clock.set(hanoi(2027, 3, 5, 16, 59));
    s.send(doc("G22", "before", &["H26"], 0, b"x")).await.unwrap();
    clock.set(hanoi(2027, 3, 5, 17, 1));
    s.send(doc("G22", "after", &["H29"], 0, b"x")).await.unwrap();
    let deadline = |t: Option<truc_proto::v1::TrackResponse>| t.unwrap().recipients[0].confirm_deadline_unix_ms;
    assert_eq!(
        deadline(s.track(code("G22"), "before".into()).await.unwrap()),
        hanoi(2027, 3, 8, 17, 0)
    );
    assert_eq!(
        deadline(s.track(code("G22"), "after".into()).await.unwrap()),
        hanoi(2027, 3, 10, 17, 0)
    );
    // Both delivered, then confirmed on Monday 8/3 at 17:30: the first
    // late, the second on time.
    clock.set(hanoi(2027, 3, 8, 17, 30));
    for c in ["H26", "H29"] {
        let items = s.fetch(code(c), HashSet::new(), 10).await.unwrap();
        s.ack(code(c), vec![items[0].delivery_id], op.clone()).await.unwrap();
    }
    // 01 comes first (truc_core::status_rules), then 03.
    for (c, id, status) in [
        ("H26", "before", 1),
        ("H26", "before", 3),
        ("H29", "after", 1),
        ("H29", "after", 3),
    ] {
        s.report_status(truc_store::StatusReport {
            reporter: code(c),
            actor: truc_core::Principal::parse_uri(&format!("urn:truc:agency:{c}")).unwrap(),
            document_from: code("G22"),
            document_id: id.into(),
            code: truc_proto::v1::StatusCode::try_from(status).unwrap(),
            description: String::new(),
            staff: None,
        })
        .await
        .unwrap();
    }
    let monday = civil_day(2027, 3, 8).unwrap();
    let rows = s.indicators(monday, monday, None).await.unwrap();
    let counts = |a: &str| {
        let c = rows.iter().find(|r| r.agency == a).unwrap().counts;
        (c.received, c.confirmed_on_time, c.confirmed_late)
    };
    assert_eq!(counts("H26"), (1, 0, 1));
    assert_eq!(counts("H29"), (1, 1, 0));
    assert_eq!(counts(""), (2, 1, 1));
    close(s).await;
}
