//! Large documents sent payload first (UploadOpen, chunks, UploadFinish
//! with the signed header): the sender hashes while it sends, and the hub
//! still keeps every guarantee of the header-first order: size and digest
//! checked against the signed header with nothing left on a mismatch, the
//! sender from mTLS, the size limits before and during the stream, resume
//! from the hub's durable offset.

use std::path::Path;

use tonic::Code;
use truc_client::transfer::{hash_file, new_upload_id, sign_external};
use truc_client::Client;
use truc_proto::v1::upload_request::Part;
use truc_proto::v1::{SignedDocument, UploadFinish, UploadRequest};
use truc_tests::transfer::{
    self, assert_nothing_left, chunk, file, files_in, quiet, receive_all, received, small_hub, MIB,
};
use truc_tests::{header, TestHub};

const G22: &str = "000.00.00.G22";
const H26: &str = "000.00.00.H26";
const H29: &str = "000.00.00.H29";

/// Sign, as `signer`, a header to `to` for a payload with this digest.
fn sign_for(signer: &Client, to: &[&str], id: &str, sha: [u8; 32], size: u64) -> SignedDocument {
    sign_external(signer.identity(), header(to, id), sha, size).unwrap()
}

/// Upload `path` payload first from `c`, the header signed by `c` over
/// what was read.
async fn send(
    c: &Client,
    upload_id: &str,
    to: &[&str],
    id: &str,
    path: &Path,
) -> Result<u64, truc_client::ClientError> {
    let hint: Vec<String> = to.iter().map(|t| t.to_string()).collect();
    c.upload_file_payload_first(
        upload_id,
        &hint,
        path,
        |sha, size| Ok(sign_for(c, to, id, sha, size)),
        &quiet,
    )
    .await
    .map(|r| {
        assert!(!r.duplicate);
        r.hub_document_id
    })
}

fn open(upload_id: &str, offset: u64, size: u64) -> UploadRequest {
    transfer::open(upload_id, offset, size, Vec::new())
}

/// An upload call from `c` that opened upload `id` of `bytes` and sent its
/// first two MiB, its sender still open.
async fn two_mib_sent(
    c: &Client,
    id: &str,
    bytes: &[u8],
) -> (
    tokio::sync::mpsc::Sender<UploadRequest>,
    tokio::task::JoinHandle<Result<(), tonic::Status>>,
) {
    let (tx, call) = transfer::upload_call(c);
    tx.send(open(id, 0, bytes.len() as u64)).await.unwrap();
    for i in 0..2 {
        tx.send(chunk(&bytes[i * MIB..(i + 1) * MIB])).await.unwrap();
    }
    (tx, call)
}

/// The answer of a call whose sender is still open: a refusal must not
/// wait for the end of the stream (a bound, so that a hub that waits
/// fails the test rather than hanging it).
async fn answer_while_sending(call: tokio::task::JoinHandle<Result<(), tonic::Status>>) -> tonic::Status {
    tokio::time::timeout(std::time::Duration::from_secs(20), call)
        .await
        .expect("refused while the sender is still sending")
        .unwrap()
        .unwrap_err()
}

#[tokio::test]
async fn a_payload_first_upload_reaches_two_agencies_and_is_stored_once() {
    let hub = small_hub().await;
    let g22 = hub.agency(G22).await;
    let h26 = hub.agency(H26).await;
    let h29 = hub.agency(H29).await;
    let dir = tempfile::tempdir().unwrap();
    let path = file(dir.path(), "dossier.pdf", 5 * MIB + 4321, 7);
    let want = std::fs::read(&path).unwrap();
    // The digest handed to the signer is the file's, from one read.
    let (sha, size) = hash_file(&path).unwrap();
    let signed_over = std::sync::Mutex::new(None);
    let resp = g22
        .upload_file_payload_first(
            &new_upload_id(),
            &[],
            &path,
            |s, n| {
                *signed_over.lock().unwrap() = Some((s, n));
                Ok(sign_for(&g22, &[H26, H29], "pf/1", s, n))
            },
            &quiet,
        )
        .await
        .unwrap();
    assert!(!resp.duplicate);
    assert_eq!(signed_over.into_inner().unwrap(), Some((sha, size)));
    for c in [&h26, &h29] {
        let got = receive_all(c, dir.path()).await;
        assert!(got == vec![want.clone()], "payload differs");
    }
    assert_eq!((files_in(&hub, "payloads"), files_in(&hub, "uploads")), (1, 0));
    // The same bytes again, as another document: learnt only at the end,
    // and still stored once.
    send(&g22, &new_upload_id(), &[H26], "pf/2", &path).await.unwrap();
    assert_eq!((files_in(&hub, "payloads"), files_in(&hub, "uploads")), (1, 0));
    assert!(receive_all(&h26, dir.path()).await == vec![want], "payload differs");
}

#[tokio::test]
async fn an_interrupted_payload_first_upload_resumes_from_the_hubs_offset() {
    let hub = small_hub().await;
    let g22 = hub.agency(G22).await;
    let h26 = hub.agency(H26).await;
    let h29 = hub.agency(H29).await;
    let dir = tempfile::tempdir().unwrap();
    let path = file(dir.path(), "scan.tif", 5 * MIB + 17, 3);
    let bytes = std::fs::read(&path).unwrap();
    let id = new_upload_id();

    // The first attempt sends two MiB and ends without the header: the
    // hub keeps them.
    let (tx, first) = two_mib_sent(&g22, &id, &bytes).await;
    drop(tx);
    let err = first.await.unwrap().unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("resume from offset 2097152"), "{err:?}");
    assert_eq!(received(&g22, &id).await, 2 * MIB as u64);
    // The upload is the caller's: another agency asking for the same id
    // sees nothing of it.
    assert_eq!(received(&h29, &id).await, 0);

    // The second attempt starts where the hub is, hashing those bytes of
    // the file here: the signed digest covers the whole file, and the hub
    // accepts it only if that is what it holds.
    let started_at = std::sync::Mutex::new(None);
    let resp = g22
        .upload_file_payload_first(
            &id,
            &[],
            &path,
            |s, n| Ok(sign_for(&g22, &[H26], "pf/resume", s, n)),
            &|done, _| {
                started_at.lock().unwrap().get_or_insert(done);
            },
        )
        .await
        .unwrap();
    assert!(!resp.duplicate);
    assert_eq!(started_at.into_inner().unwrap(), Some(2 * MIB as u64));
    assert!(
        receive_all(&h26, dir.path()).await == vec![bytes],
        "resumed payload differs"
    );
    assert_eq!((files_in(&hub, "payloads"), files_in(&hub, "uploads")), (1, 0));
}

/// Ctrl-C, then the same command at once: the hub may still be writing
/// what the interrupted stream sent. The resume waits for that stream to
/// end (the hub refuses a second writer with ABORTED meanwhile) and goes
/// on from what it wrote.
#[tokio::test]
async fn a_resume_while_the_interrupted_stream_is_still_open_waits_for_it() {
    let hub = small_hub().await;
    let g22 = hub.agency(G22).await;
    let h26 = hub.agency(H26).await;
    let dir = tempfile::tempdir().unwrap();
    let path = file(dir.path(), "minutes.pdf", 3 * MIB + 5, 9);
    let bytes = std::fs::read(&path).unwrap();
    let id = new_upload_id();

    // The interrupted stream: two MiB sent, still open.
    let (tx, first) = two_mib_sent(&g22, &id, &bytes).await;

    // The resume, reporting each offset it is at.
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
    let resume = {
        let (c, id, path) = (g22.clone(), id.clone(), path.clone());
        tokio::spawn(async move {
            let progress = move |done: u64, _: u64| {
                let _ = seen_tx.send(done);
            };
            c.upload_file_payload_first(
                &id,
                &[],
                &path,
                |s, n| Ok(sign_for(&c, &[H26], "pf/busy", s, n)),
                &progress,
            )
            .await
        })
    };
    // It starts at the offset the hub reports, is refused while the first
    // stream is open, and starts there again.
    let mut at = Vec::new();
    for _ in 0..2 {
        let next = tokio::time::timeout(std::time::Duration::from_secs(20), seen.recv())
            .await
            .expect("the resume reports where it is");
        at.push(next.expect("the resume gave up while the upload was busy"));
    }
    assert_eq!(at[0], at[1], "nothing moves while the first stream is open");
    assert!(at[0] <= 2 * MIB as u64);
    // The interrupted stream ends now; the resume goes on and finishes.
    drop(tx);
    let err = first.await.unwrap().unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    let resp = resume
        .await
        .unwrap()
        .expect("the resume finishes once the other stream has ended");
    assert!(!resp.duplicate);
    assert!(
        receive_all(&h26, dir.path()).await == vec![bytes],
        "resumed payload differs"
    );
    assert_eq!((files_in(&hub, "payloads"), files_in(&hub, "uploads")), (1, 0));
}

#[tokio::test]
async fn a_payload_first_upload_that_differs_from_its_signature_leaves_nothing() {
    let hub = small_hub().await;
    let g22 = hub.agency(G22).await;
    let h26 = hub.agency(H26).await;
    let dir = tempfile::tempdir().unwrap();
    let real = file(dir.path(), "real.bin", 2 * MIB, 1);
    let forged = file(dir.path(), "forged.bin", 2 * MIB, 2);
    let (real_sha, size) = hash_file(&real).unwrap();

    // Other bytes than the signed digest.
    let err = g22
        .upload_file_payload_first(
            &new_upload_id(),
            &[],
            &forged,
            |_, n| Ok(sign_for(&g22, &[H26], "forged/1", real_sha, n)),
            &quiet,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(Code::InvalidArgument), "{err:?}");
    assert!(err.to_string().contains("differs from the signed digest"), "{err:?}");
    assert_nothing_left(&hub);

    // A signed size other than the declared one.
    let err = g22
        .upload_file_payload_first(
            &new_upload_id(),
            &[],
            &real,
            |s, n| Ok(sign_for(&g22, &[H26], "forged/2", s, n + 1)),
            &quiet,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(Code::InvalidArgument), "{err:?}");
    assert!(err.to_string().contains("declared"), "{err:?}");
    assert_nothing_left(&hub);

    // A resume over a prefix that is not the file's: the hub's digest is
    // its own, not the sender's.
    let id = new_upload_id();
    let other = std::fs::read(&forged).unwrap();
    let (tx, first) = transfer::upload_call(&g22);
    tx.send(open(&id, 0, size)).await.unwrap();
    tx.send(chunk(&other[..MIB])).await.unwrap();
    drop(tx);
    assert_eq!(first.await.unwrap().unwrap_err().code(), Code::FailedPrecondition);
    let err = send(&g22, &id, &[H26], "forged/3", &real).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::InvalidArgument), "{err:?}");
    assert!(err.to_string().contains("differs from the signed digest"), "{err:?}");
    assert_nothing_left(&hub);

    assert!(receive_all(&h26, dir.path()).await.is_empty());
}

#[tokio::test]
async fn a_payload_first_header_from_another_agency_is_refused_and_nothing_kept() {
    let hub = small_hub().await;
    let g22 = hub.agency(G22).await;
    let h26 = hub.agency(H26).await;
    let h29 = hub.agency(H29).await;
    let dir = tempfile::tempdir().unwrap();
    let path = file(dir.path(), "memo.bin", MIB + 3, 5);

    // G22's connection, H29's document.
    let err = g22
        .upload_file_payload_first(
            &new_upload_id(),
            &[],
            &path,
            |s, n| Ok(sign_for(&h29, &[H26], "spoof/1", s, n)),
            &quiet,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(Code::PermissionDenied), "{err:?}");
    assert_nothing_left(&hub);

    // G22 named as the sender, signed by H29.
    let err = g22
        .upload_file_payload_first(
            &new_upload_id(),
            &[],
            &path,
            |s, n| {
                let mut h = header(&[H26], "spoof/2");
                h.from = G22.into();
                Ok(sign_external(h29.identity(), h, s, n).unwrap())
            },
            &quiet,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(Code::PermissionDenied), "{err:?}");
    assert_nothing_left(&hub);
    assert!(receive_all(&h26, dir.path()).await.is_empty());
}

#[tokio::test]
async fn a_payload_first_upload_over_the_limits_is_refused_before_or_as_it_passes_them() {
    let hub = small_hub().await;
    let g22 = hub.agency(G22).await;
    let bytes = vec![9u8; 3 * MIB];

    // A declared size over the hub's maximum: refused at UploadOpen, with
    // the stream still open and nothing written.
    let (tx, over) = transfer::upload_call(&g22);
    tx.send(open(&new_upload_id(), 0, 16 * MIB as u64 + 1)).await.unwrap();
    let err = answer_while_sending(over).await;
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("at most 16777216 bytes"), "{err:?}");
    drop(tx);
    assert_nothing_left(&hub);

    // More bytes than declared: refused at the chunk that passes the
    // declared size, while the sender is still sending, and deleted.
    let id = new_upload_id();
    let (tx, longer) = transfer::upload_call(&g22);
    tx.send(open(&id, 0, 2 * MIB as u64)).await.unwrap();
    for i in 0..3 {
        tx.send(chunk(&bytes[i * MIB..(i + 1) * MIB])).await.unwrap();
    }
    let err = answer_while_sending(longer).await;
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(
        err.message().contains("longer than the 2097152 bytes declared"),
        "{err:?}"
    );
    drop(tx);
    assert_eq!(received(&g22, &id).await, 0);
    assert_nothing_left(&hub);

    // Not a valid upload id.
    let (tx, bad) = transfer::upload_call(&g22);
    tx.send(open("../../x", 0, MIB as u64)).await.unwrap();
    assert_eq!(bad.await.unwrap().unwrap_err().code(), Code::InvalidArgument);
    drop(tx);
    // Nothing may follow the header.
    let (tx, after) = transfer::upload_call(&g22);
    tx.send(open(&new_upload_id(), 0, 4)).await.unwrap();
    tx.send(chunk(b"abcd")).await.unwrap();
    let doc = sign_for(&g22, &[H26], "after/1", truc_core::sha256(b"abcd"), 4);
    tx.send(UploadRequest {
        part: Some(Part::Finish(UploadFinish { document: Some(doc) })),
    })
    .await
    .unwrap();
    tx.send(chunk(b"e")).await.unwrap();
    drop(tx);
    assert_eq!(after.await.unwrap().unwrap_err().code(), Code::InvalidArgument);
    assert_nothing_left(&hub);
}

#[tokio::test]
async fn a_payload_first_upload_respects_the_disk_reserve_and_the_quota() {
    let hub = TestHub::start_with(|c| {
        c.limits.max_inline_payload = 64 * 1024;
        c.limits.max_document_size = 16 * MIB as u64;
        c.limits.min_free_disk_bytes = u64::MAX / 4;
    })
    .await;
    let g22 = hub.agency(G22).await;
    let dir = tempfile::tempdir().unwrap();
    let path = file(dir.path(), "a.bin", MIB, 1);
    let err = send(&g22, &new_upload_id(), &[H26], "disk/1", &path).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::ResourceExhausted), "{err:?}");
    assert!(err.to_string().contains("disk is nearly full"), "{err:?}");
    assert_nothing_left(&hub);

    let hub = TestHub::start_with(|c| {
        c.limits.max_inline_payload = 64 * 1024;
        c.limits.agency_quota_bytes = MIB as u64;
    })
    .await;
    let g22 = hub.agency(G22).await;
    let h26 = hub.agency(H26).await;
    let path = file(dir.path(), "b.bin", 2 * MIB, 2);
    let err = send(&g22, &new_upload_id(), &[H26], "quota/1", &path)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(Code::ResourceExhausted), "{err:?}");
    assert!(err.to_string().contains("quota"), "{err:?}");
    assert!(truc_tests::drain(&h26, 4).await.is_empty());
}

/// What the Send at the end would refuse (an outbox over its quota, a
/// recipient not registered) is refused when the upload opens, while the
/// sender is still sending, and nothing of it is written: payload first
/// when UploadOpen names the recipients, header first always.
#[tokio::test]
async fn an_upload_its_send_would_refuse_is_refused_before_the_bytes_travel() {
    let hub = TestHub::start_with(|c| {
        c.limits.max_inline_payload = 64 * 1024;
        c.limits.max_document_size = 16 * MIB as u64;
        c.limits.agency_quota_bytes = 3 * MIB as u64;
    })
    .await;
    let g22 = hub.agency(G22).await;
    let _h26 = hub.agency(H26).await;
    let dir = tempfile::tempdir().unwrap();
    // H26's outbox takes 2 of its 3 MiB.
    let first = file(dir.path(), "first.bin", 2 * MIB, 1);
    send(&g22, &new_upload_id(), &[H26], "q/1", &first).await.unwrap();
    let uploads_before = files_in(&hub, "uploads");

    // Payload first, 2 MiB more for H26: refused at UploadOpen.
    let (tx, call_) = transfer::upload_call(&g22);
    let mut open_h26 = open(&new_upload_id(), 0, 2 * MIB as u64);
    if let Some(Part::Open(o)) = &mut open_h26.part {
        o.to = vec![H26.to_string()];
    }
    tx.send(open_h26).await.unwrap();
    let err = answer_while_sending(call_).await;
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("quota"), "{err:?}");
    drop(tx);
    // A recipient the hub does not know: refused at once too.
    let (tx, call_) = transfer::upload_call(&g22);
    let mut open_nobody = open(&new_upload_id(), 0, MIB as u64);
    if let Some(Part::Open(o)) = &mut open_nobody.part {
        o.to = vec!["000.00.00.Z99".to_string()];
    }
    tx.send(open_nobody).await.unwrap();
    let err = answer_while_sending(call_).await;
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    drop(tx);

    // Header first: the signed header names H26; refused after UploadStart.
    let second = file(dir.path(), "second.bin", 2 * MIB, 2);
    let (tx, call_) = transfer::upload_call(&g22);
    tx.send(UploadRequest {
        part: Some(Part::Start(truc_proto::v1::UploadStart {
            document: Some(truc_tests::transfer::signed(&g22, &[H26], "q/2", &second)),
            offset: 0,
        })),
    })
    .await
    .unwrap();
    let err = answer_while_sending(call_).await;
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    drop(tx);
    assert_eq!(
        files_in(&hub, "uploads"),
        uploads_before,
        "nothing of the refused uploads is kept"
    );

    // The same upload to H29, whose outbox is empty, goes through.
    let _h29 = hub.agency(H29).await;
    send(&g22, &new_upload_id(), &[H29], "q/3", &second).await.unwrap();
}
