//! Large documents: chunked upload written to disk as it comes, resumed
//! after an interruption, checked against the signed digest at the end,
//! stored once, downloaded by ranges.

use std::path::Path;

use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;
use truc_client::transfer::hash_file;
use truc_proto::v1::upload_request::Part;
use truc_proto::v1::{DocumentHeader, UploadRequest, UploadStart, UploadStatusRequest};
use truc_tests::transfer::{assert_nothing_left, file, quiet, receive_all, received, signed, small_hub, MIB};
use truc_tests::{header, TestHub};

const G22: &str = "000.00.00.G22";
const H26: &str = "000.00.00.H26";
const H29: &str = "000.00.00.H29";

#[tokio::test]
async fn a_large_document_reaches_two_agencies_byte_for_byte() {
    let hub = small_hub().await;
    let g22 = hub.agency(G22).await;
    let h26 = hub.agency(H26).await;
    let h29 = hub.agency(H29).await;
    let dir = tempfile::tempdir().unwrap();
    let path = file(dir.path(), "dossier.pdf", 3 * MIB + 12345, 7);
    let resp = g22
        .upload_file(signed(&g22, &[H26, H29], "big/1", &path), &path, &quiet)
        .await
        .unwrap();
    assert!(!resp.duplicate);
    let want = std::fs::read(&path).unwrap();
    for c in [&h26, &h29] {
        let got = receive_all(c, dir.path()).await;
        assert_eq!(got.len(), 1);
        assert!(got[0] == want, "payload differs");
    }
    // Stored once, on disk, not in the database.
    let stored = std::fs::read_dir(hub.config.data_dir.join("payloads")).unwrap().count();
    assert_eq!(stored, 1);
    // Sending it again is a duplicate; the hub already has the payload.
    let again = g22
        .upload_file(signed(&g22, &[H26, H29], "big/1", &path), &path, &quiet)
        .await
        .unwrap();
    assert!(again.duplicate);
}

#[tokio::test]
async fn an_interrupted_upload_resumes_where_it_stopped() {
    let hub = small_hub().await;
    let g22 = hub.agency(G22).await;
    let h26 = hub.agency(H26).await;
    let dir = tempfile::tempdir().unwrap();
    let path = file(dir.path(), "scan.tif", 5 * MIB, 3);
    let doc = signed(&g22, &[H26], "resume/1", &path);
    let bytes = std::fs::read(&path).unwrap();

    // The first attempt sends two of five MiB, then ends.
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tx.send(UploadRequest {
        part: Some(Part::Start(UploadStart {
            document: Some(doc.clone()),
            offset: 0,
        })),
    })
    .await
    .unwrap();
    for i in 0..2 {
        tx.send(UploadRequest {
            part: Some(Part::Chunk(bytes[i * MIB..(i + 1) * MIB].to_vec().into())),
        })
        .await
        .unwrap();
    }
    drop(tx);
    let err = g22.axis().upload(ReceiverStream::new(rx)).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("resume from offset 2097152"), "{err:?}");

    let h: DocumentHeader = prost::Message::decode(doc.header.as_slice()).unwrap();
    let status = g22
        .axis()
        .upload_status(UploadStatusRequest {
            document_id: "resume/1".into(),
            payload_sha256: h.payload_sha256.clone(),
            upload_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((status.received, status.complete), (2 * MIB as u64, false));

    // The second attempt (signed again) sends only the rest.
    let started_at = std::sync::Mutex::new(None);
    let resp = g22
        .upload_file(signed(&g22, &[H26], "resume/1", &path), &path, &|done, _| {
            started_at.lock().unwrap().get_or_insert(done);
        })
        .await
        .unwrap();
    assert_eq!(started_at.into_inner().unwrap(), Some(2 * MIB as u64));
    assert!(!resp.duplicate);
    let got = receive_all(&h26, dir.path()).await;
    assert!(got == vec![bytes], "resumed payload differs");
}

#[tokio::test]
async fn a_payload_that_differs_from_its_signature_leaves_nothing() {
    let hub = small_hub().await;
    let g22 = hub.agency(G22).await;
    let h26 = hub.agency(H26).await;
    let dir = tempfile::tempdir().unwrap();
    let real = file(dir.path(), "real.bin", 2 * MIB, 1);
    let forged = file(dir.path(), "forged.bin", 2 * MIB, 2);
    let doc = signed(&g22, &[H26], "forged/1", &real);
    let err = g22.upload_file(doc, &forged, &quiet).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::InvalidArgument), "{err:?}");
    assert!(err.to_string().contains("differs from the signed digest"), "{err:?}");
    assert_nothing_left(&hub);
    assert!(receive_all(&h26, dir.path()).await.is_empty());
}

#[tokio::test]
async fn limits_and_who_may_download() {
    let hub = small_hub().await;
    let g22 = hub.agency(G22).await;
    let h26 = hub.agency(H26).await;
    let h29 = hub.agency(H29).await;
    let dir = tempfile::tempdir().unwrap();
    let too_big = file(dir.path(), "too-big.bin", 17 * MIB, 9);
    let err = g22
        .upload_file(signed(&g22, &[H26], "big/2", &too_big), &too_big, &quiet)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(Code::ResourceExhausted), "{err:?}");
    // Inline sends above the inline limit are told to use Upload.
    let err = g22
        .send(truc_tests::sign(
            &g22,
            header(&[H26], "inline/big"),
            &vec![0u8; 65 * 1024],
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(Code::ResourceExhausted));

    let path = file(dir.path(), "ok.bin", MIB + 1, 4);
    let resp = g22
        .upload_file(signed(&g22, &[H26], "big/3", &path), &path, &quiet)
        .await
        .unwrap();
    let (sha, size) = hash_file(&path).unwrap();
    let part = dir.path().join("stolen.part");
    let err = h29
        .download_to(resp.hub_document_id, 0, &part, &sha, size, &quiet)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(Code::PermissionDenied), "{err}");
    // The sender may fetch its own payload.
    let own = dir.path().join("own.part");
    assert_eq!(
        g22.download_to(resp.hub_document_id, 0, &own, &sha, size, &quiet)
            .await
            .unwrap(),
        size
    );
    assert_eq!(receive_all(&h26, dir.path()).await.len(), 1);
}

#[tokio::test]
async fn an_outbox_over_its_quota_refuses_more() {
    let hub = TestHub::start_with(|c| c.limits.agency_quota_bytes = 1000).await;
    let g22 = hub.agency(G22).await;
    let h26 = hub.agency(H26).await;
    g22.send(truc_tests::sign(&g22, header(&[H26], "q/1"), &[1u8; 600]))
        .await
        .unwrap();
    let err = g22
        .send(truc_tests::sign(&g22, header(&[H26], "q/2"), &[2u8; 600]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(Code::ResourceExhausted), "{err:?}");
    assert!(err.to_string().contains("quota of 1000 bytes"), "{err:?}");
    // Once picked up, there is room again.
    truc_tests::drain(&h26, 4).await;
    g22.send(truc_tests::sign(&g22, header(&[H26], "q/2"), &[2u8; 600]))
        .await
        .unwrap();
}

// ---- Payload collection ----

/// A hub that collects payloads `retention_seconds` after their last copy,
/// looking every 50 ms, on the store `TRUC_TEST_STORE` names (on
/// JetStream the shared copy in the object store is collected too).
async fn collecting_hub(retention_seconds: u64, f: impl FnOnce(&mut truc_hub::config::Config)) -> TestHub {
    TestHub::start_with(|c| {
        c.limits.max_inline_payload = 64 * 1024;
        c.limits.max_document_size = 16 * MIB as u64;
        c.limits.payload_retention_seconds = retention_seconds;
        c.limits.payload_gc_interval_ms = 50;
        f(c)
    })
    .await
}

fn payload_file(hub: &TestHub, path: &Path) -> std::path::PathBuf {
    let (sha, _) = hash_file(path).unwrap();
    hub.config.data_dir.join("payloads").join(truc_core::hex(&sha))
}

/// Whether the sender can no longer fetch the payload of its document.
async fn collected(sender: &truc_client::Client, hub_id: u64, sha: &[u8], size: u64, dir: &Path) -> bool {
    let part = dir.join(format!("probe-{hub_id}.part"));
    let _ = std::fs::remove_file(&part);
    match sender.download_to(hub_id, 0, &part, sha, size, &quiet).await {
        Ok(_) => false,
        Err(e) => {
            let e = e.to_string();
            assert!(e.contains("collected"), "unexpected download error: {e}");
            true
        }
    }
}

/// Upload a small document to `receiver`, let it be received and acked,
/// and wait until the hub has collected its payload file: a collector pass
/// has then looked at every payload released before it. (Inline payloads
/// travel in their document's body and are not collected one by one.)
async fn witness(sender: &truc_client::Client, receiver: &truc_client::Client, to: &str, id: &str, dir: &Path) {
    let path = dir.join(format!("witness-{}", id.replace('/', "-")));
    std::fs::write(&path, format!("witness {id}")).unwrap();
    let (sha, size) = hash_file(&path).unwrap();
    let resp = sender
        .upload_file(signed(sender, &[to], id, &path), &path, &quiet)
        .await
        .unwrap();
    truc_tests::drain(receiver, 8).await;
    let mut gone = false;
    for _ in 0..800 {
        if collected(sender, resp.hub_document_id, &sha, size, dir).await {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(gone, "the witness payload {id} was never collected");
}

/// Wait (at most 20 s) until `path` is gone.
async fn until_gone(path: &Path) {
    for _ in 0..800 {
        if !path.exists() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("{} was never collected", path.display());
}

#[tokio::test]
async fn a_payload_is_deleted_after_its_last_copy_and_the_retention() {
    let retention = std::time::Duration::from_secs(1);
    let hub = collecting_hub(retention.as_secs(), |_| {}).await;
    let g22 = hub.agency(G22).await;
    let h26 = hub.agency(H26).await;
    let h29 = hub.agency(H29).await;
    let dir = tempfile::tempdir().unwrap();
    let path = file(dir.path(), "dossier.pdf", 2 * MIB + 7, 11);
    let stored = payload_file(&hub, &path);
    let (sha, size) = hash_file(&path).unwrap();
    let resp = g22
        .upload_file(signed(&g22, &[H26, H29], "gc/1", &path), &path, &quiet)
        .await
        .unwrap();
    assert!(stored.is_file());
    // One of two copies acked: still needed, even after a collector pass.
    assert_eq!(receive_all(&h26, dir.path()).await.len(), 1);
    witness(&g22, &h26, H26, "gc/w1", dir.path()).await;
    assert!(stored.is_file(), "collected while H29's copy was queued");
    assert!(!collected(&g22, resp.hub_document_id, &sha, size, dir.path()).await);

    // On JetStream the payload is in the shared object store too.
    let shared = || async {
        let mut opts = truc_hub::jetstream_options(&hub.config, truc_store::SledStoreOptions::new(dir.path()));
        opts.payload_dir = Some(hub.config.data_dir.join("payloads"));
        truc_store_jetstream::shared_payload_exists(&opts, &sha).await.unwrap()
    };
    if truc_tests::on_jetstream() {
        assert!(shared().await, "the payload is in the shared object store");
    }

    // The last copy acked: gone after the retention, not before.
    let last_ack = std::time::Instant::now();
    assert_eq!(receive_all(&h29, dir.path()).await.len(), 1);
    until_gone(&stored).await;
    if truc_tests::on_jetstream() {
        // The collector deletes the shared copy, then the local file.
        let mut gone = false;
        for _ in 0..800 {
            if !shared().await {
                gone = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        assert!(gone, "a collected payload is gone from the shared object store");
    }
    assert!(
        last_ack.elapsed() >= retention,
        "collected {:?} after the last ack, before the retention",
        last_ack.elapsed()
    );
    assert!(collected(&g22, resp.hub_document_id, &sha, size, dir.path()).await);

    // The same content again: the hub no longer has it and takes the bytes.
    let status = g22
        .axis()
        .upload_status(UploadStatusRequest {
            document_id: "gc/2".into(),
            payload_sha256: sha.to_vec(),
            upload_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!status.complete);
    g22.upload_file(signed(&g22, &[H26], "gc/2", &path), &path, &quiet)
        .await
        .unwrap();
    assert!(stored.is_file());
    let got = receive_all(&h26, dir.path()).await;
    assert!(
        got == vec![std::fs::read(&path).unwrap()],
        "re-uploaded payload differs"
    );
}

#[tokio::test]
async fn a_dead_lettered_copy_keeps_its_payload_across_a_restart_until_purged() {
    let mut hub = collecting_hub(0, |c| {
        c.delivery.lease_ms = 200;
        c.delivery.max_attempts = 1;
    })
    .await;
    let g22 = hub.agency(G22).await;
    let h26 = hub.agency(H26).await;
    let h29 = hub.agency(H29).await;
    let dir = tempfile::tempdir().unwrap();
    let path = file(dir.path(), "plan.dwg", MIB + 3, 5);
    let stored = payload_file(&hub, &path);
    // A small document travels inline (in its body): dead-lettered too.
    let inline = b"a small appendix kept in the database".to_vec();
    let inline_sha = truc_core::sha256(&inline);
    g22.upload_file(signed(&g22, &[H26], "dlq/1", &path), &path, &quiet)
        .await
        .unwrap();
    let small = g22
        .send(truc_tests::sign(&g22, header(&[H26], "dlq/2"), &inline))
        .await
        .unwrap();
    // H26 takes both and never acks: one lease each, then the DLQ.
    let op = hub.operator().await;
    {
        let mut s = h26.receive(8, false).await.unwrap();
        while s.message().await.unwrap().is_some() {}
    }
    truc_tests::eventually("two dead letters", || async {
        op.dead_letters(H26).await.unwrap().len() == 2
    })
    .await;
    witness(&g22, &h29, H29, "dlq/w1", dir.path()).await;
    assert!(stored.is_file(), "collected while dead-lettered");
    assert!(
        !collected(
            &g22,
            small.hub_document_id,
            &inline_sha,
            inline.len() as u64,
            dir.path()
        )
        .await
    );

    hub.restart().await;
    let g22 = hub.connect(&hub.pki.agency_dir(G22)).await;
    let h29 = hub.connect(&hub.pki.agency_dir(H29)).await;
    let op = hub.operator().await;
    witness(&g22, &h29, H29, "dlq/w2", dir.path()).await;
    assert!(stored.is_file(), "collected after a restart while dead-lettered");
    assert!(
        !collected(
            &g22,
            small.hub_document_id,
            &inline_sha,
            inline.len() as u64,
            dir.path()
        )
        .await
    );

    // Purged: nothing needs the payload file any more. The inline payload
    // is part of its document's body in the hub's log, which is not
    // reclaimed document by document: it stays readable. (The JetStream
    // store keeps inline payloads apart, under their digest, and collects
    // them like files.)
    assert_eq!(op.purge(H26, vec![]).await.unwrap(), 2);
    until_gone(&stored).await;
    let inline_gone = collected(
        &g22,
        small.hub_document_id,
        &inline_sha,
        inline.len() as u64,
        dir.path(),
    )
    .await;
    assert_eq!(inline_gone, truc_tests::on_jetstream());
}

#[tokio::test]
async fn the_payload_of_a_refused_upload_is_collected_after_the_retention() {
    // H26's outbox holds at most 1 MiB not yet picked up: a 2 MiB upload is
    // stored whole, then its Send is refused for the quota.
    let hub = collecting_hub(1, |c| c.limits.agency_quota_bytes = MIB as u64).await;
    let g22 = hub.agency(G22).await;
    let _h26 = hub.agency(H26).await;
    let dir = tempfile::tempdir().unwrap();
    let path = file(dir.path(), "too-big.pdf", 2 * MIB + 3, 5);
    let stored = payload_file(&hub, &path);
    let err = g22
        .upload_file(signed(&g22, &[H26], "refused/1", &path), &path, &quiet)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("quota"), "{err}");
    // No document counts it, so nothing would ever release it: the refusal
    // does, and the collector deletes it.
    until_gone(&stored).await;
}

#[tokio::test]
async fn a_released_payload_is_collected_after_a_restart() {
    let retention = std::time::Duration::from_secs(1);
    let mut hub = collecting_hub(retention.as_secs(), |_| {}).await;
    let g22 = hub.agency(G22).await;
    let h26 = hub.agency(H26).await;
    let dir = tempfile::tempdir().unwrap();
    let path = file(dir.path(), "scan.tif", MIB + 9, 6);
    let stored = payload_file(&hub, &path);
    g22.upload_file(signed(&g22, &[H26], "rs/1", &path), &path, &quiet)
        .await
        .unwrap();
    let last_ack = std::time::Instant::now();
    assert_eq!(receive_all(&h26, dir.path()).await.len(), 1);
    hub.restart().await;
    until_gone(&stored).await;
    assert!(last_ack.elapsed() >= retention);
}

/// An upload that finds the payload stored skips the bytes. If the
/// collector runs meanwhile, either the upload's pin keeps the file (and the
/// new document's copy then needs it) or the upload is told to send the
/// bytes: never a document accepted without its payload.
#[tokio::test]
async fn an_upload_that_reuses_a_payload_races_safely_with_the_collector() {
    let hub = collecting_hub(1, |_| {}).await;
    let g22 = hub.agency(G22).await;
    let h26 = hub.agency(H26).await;
    let h29 = hub.agency(H29).await;
    let dir = tempfile::tempdir().unwrap();
    let path = file(dir.path(), "annex.pdf", MIB + 5, 8);
    let bytes = std::fs::read(&path).unwrap();
    let stored = payload_file(&hub, &path);
    let (_, size) = hash_file(&path).unwrap();
    g22.upload_file(signed(&g22, &[H26], "race/1", &path), &path, &quiet)
        .await
        .unwrap();
    assert_eq!(receive_all(&h26, dir.path()).await.len(), 1);
    // The payload is now collectable in 1 s. A second document with the
    // same content starts its upload at once, as a client told "complete"
    // does: no bytes.
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tx.send(UploadRequest {
        part: Some(Part::Start(UploadStart {
            document: Some(signed(&g22, &[H26], "race/2", &path)),
            offset: size,
        })),
    })
    .await
    .unwrap();
    let mut axis = g22.axis();
    let call = tokio::spawn(async move { axis.upload(ReceiverStream::new(rx)).await });
    // Keep the upload open over a collector pass that covers the payload.
    witness(&g22, &h29, H29, "race/w", dir.path()).await;
    let kept = stored.is_file();
    drop(tx);
    match call.await.unwrap() {
        Ok(_) => {
            assert!(kept, "the upload was accepted but its payload was collected under it");
            let got = receive_all(&h26, dir.path()).await;
            assert!(got == vec![bytes], "payload differs");
        }
        Err(e) => {
            // The collector came first: nothing accepted, the bytes are asked for.
            assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
            assert!(!kept);
            assert!(receive_all(&h26, dir.path()).await.is_empty());
        }
    }
    // Either way the payload can be sent again and arrives whole.
    g22.upload_file(signed(&g22, &[H26], "race/3", &path), &path, &quiet)
        .await
        .unwrap();
    let got = receive_all(&h26, dir.path()).await;
    assert!(got == vec![std::fs::read(&path).unwrap()], "payload differs");
}

#[tokio::test]
async fn two_uploads_of_one_document_do_not_interleave() {
    let hub = small_hub().await;
    let g22 = hub.agency(G22).await;
    let h26 = hub.agency(H26).await;
    let dir = tempfile::tempdir().unwrap();
    let path = file(dir.path(), "twice.bin", 6 * MIB, 12);
    let bytes = std::fs::read(&path).unwrap();
    let (sha, _) = hash_file(&path).unwrap();
    let start = |offset| UploadRequest {
        part: Some(Part::Start(UploadStart {
            document: Some(signed(&g22, &[H26], "twice/1", &path)),
            offset,
        })),
    };
    let chunk = |i: usize| UploadRequest {
        part: Some(Part::Chunk(bytes[i * MIB..(i + 1) * MIB].to_vec().into())),
    };
    // The first stream has sent four MiB (what the hub stages before a
    // write to disk) and stays open.
    let (tx1, rx1) = tokio::sync::mpsc::channel(8);
    tx1.send(start(0)).await.unwrap();
    for i in 0..4 {
        tx1.send(chunk(i)).await.unwrap();
    }
    let mut axis = g22.axis();
    let first = tokio::spawn(async move { axis.upload(ReceiverStream::new(rx1)).await });
    truc_tests::eventually("the first 4 MiB on the hub", || async {
        let s = g22
            .axis()
            .upload_status(UploadStatusRequest {
                document_id: "twice/1".into(),
                payload_sha256: sha.to_vec(),
                upload_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        s.received == 4 * MIB as u64
    })
    .await;
    // A second stream of the same upload, from the start or from the
    // offset the hub reports, is refused while the first is writing.
    for offset in [0, 4 * MIB as u64] {
        let (tx2, rx2) = tokio::sync::mpsc::channel(8);
        tx2.send(start(offset)).await.unwrap();
        tx2.send(chunk(offset as usize / MIB)).await.unwrap();
        drop(tx2);
        let err = g22.axis().upload(ReceiverStream::new(rx2)).await.unwrap_err();
        assert_eq!(err.code(), Code::Aborted, "{err:?}");
    }
    // The first finishes undisturbed.
    tx1.send(chunk(4)).await.unwrap();
    tx1.send(chunk(5)).await.unwrap();
    drop(tx1);
    first.await.unwrap().unwrap();
    let got = receive_all(&h26, dir.path()).await;
    assert!(got == vec![bytes], "payload differs");
}

/// Uploads whose clients stop sending and downloads whose clients stop
/// reading hold no blocking thread: with twice as many of each stalled as
/// the runtime has blocking threads (`trucd` caps them too), the store
/// still answers — a small document is accepted, received and acked, and
/// one more download runs to its end. (Before, each stalled transfer held
/// a thread until its client went on or left.)
#[test]
fn stalled_transfers_do_not_starve_the_hub() {
    const THREADS: usize = 4;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(THREADS)
        .build()
        .unwrap();
    rt.block_on(async {
        let hub = TestHub::start_with(|c| c.limits.max_document_size = 64 * MIB as u64).await;
        let g22 = hub.agency(G22).await;
        let h26 = hub.agency(H26).await;
        let dir = tempfile::tempdir().unwrap();
        // Twelve chunks: more than a download's HTTP/2 buffers and channel
        // hold once its client stops reading.
        let path = file(dir.path(), "annex.bin", 48 * MIB, 5);
        let big = g22
            .upload_file(signed(&g22, &[H26], "stall/1", &path), &path, &quiet)
            .await
            .unwrap();
        // Uploads that send one chunk of two and then wait (a whole 4 MiB
        // chunk: the hub writes the `.part` in 4 MiB stages).
        let mut uploads = Vec::new();
        for _ in 0..2 * THREADS {
            let upload_id = truc_client::transfer::new_upload_id();
            let (tx, call) = truc_tests::transfer::upload_call(&g22);
            tx.send(truc_tests::transfer::open(&upload_id, 0, 8 * MIB as u64, Vec::new()))
                .await
                .unwrap();
            tx.send(truc_tests::transfer::chunk(&vec![7u8; 4 * MIB])).await.unwrap();
            answered("a stalled upload's first chunk", async {
                while received(&g22, &upload_id).await < 4 * MIB as u64 {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
            })
            .await;
            uploads.push((tx, call));
        }
        let id = truc_tests::identity(&hub.pki.agency_dir(H26));
        let request = truc_proto::v1::DownloadRequest {
            hub_document_id: big.hub_document_id,
            offset: 0,
            delivery_id: 0,
        };
        // Each on a connection of its own: once its client stops reading,
        // the windows fill and the hub cannot send on.
        let mut stalled = Vec::new();
        for _ in 0..2 * THREADS {
            let mut axis =
                truc_proto::v1::axis_client::AxisClient::new(hub.raw_channel(Some((&id.cert_pem, &id.key_pem))).await);
            let mut s = answered("a download", axis.download(request))
                .await
                .unwrap()
                .into_inner();
            let first = answered("a download's first chunk", s.message())
                .await
                .unwrap()
                .expect("a first chunk");
            assert_eq!(first.offset, 0);
            stalled.push((axis, s));
        }
        // The hub still serves: a Send, a Receive and an ack, a download.
        let small = truc_tests::sign(&g22, header(&[H26], "stall/2"), b"still served");
        let accepted = answered("a small Send", g22.send(small)).await.unwrap();
        let mut deliveries = h26.receive(4, false).await.expect("receive");
        let mut seen = Vec::new();
        while let Some(d) = answered("a delivery", deliveries.message()).await.unwrap() {
            seen.push(d.hub_document_id);
            h26.ack(vec![d.delivery_id]).await.expect("ack");
        }
        assert!(seen.contains(&accepted.hub_document_id), "{seen:?}");
        let (sha, size) = hash_file(&path).unwrap();
        let part = dir.path().join("one-more.part");
        let got = answered(
            "one more download",
            h26.download_to(big.hub_document_id, 0, &part, &sha, size, &quiet),
        )
        .await
        .unwrap();
        assert_eq!(got, size);
        drop((stalled, uploads));
    });
}

/// `f`'s output, or a failure naming `what` after 60 s without one.
async fn answered<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(std::time::Duration::from_secs(60), f)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer in 60 s"))
}
