//! Large documents: chunked upload written to disk as it comes, resumed
//! after an interruption, checked against the signed digest at the end,
//! stored once, downloaded by ranges.

use std::path::Path;

use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;
use truc_client::transfer::{hash_file, sign_external};
use truc_proto::v1::upload_request::Part;
use truc_proto::v1::{DocumentHeader, UploadRequest, UploadStart, UploadStatusRequest};
use truc_tests::{header, TestHub};

const G22: &str = "000.00.00.G22";
const H26: &str = "000.00.00.H26";
const H29: &str = "000.00.00.H29";
const MIB: usize = 1 << 20;

fn file(dir: &Path, name: &str, size: usize, seed: u8) -> std::path::PathBuf {
    let p = dir.join(name);
    let bytes: Vec<u8> = (0..size)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[0] ^ seed)
        .collect();
    std::fs::write(&p, bytes).unwrap();
    p
}

fn signed(c: &truc_client::Client, to: &[&str], id: &str, path: &Path) -> truc_proto::v1::SignedDocument {
    let (sha, size) = hash_file(path).unwrap();
    let mut h: DocumentHeader = header(to, id);
    h.file_name = path.file_name().unwrap().to_string_lossy().into();
    sign_external(c.identity(), h, sha, size).unwrap()
}

fn quiet(_: u64, _: u64) {}

/// Receive everything waiting, download separate payloads, ack; returns the
/// saved files' contents.
async fn receive_all(c: &truc_client::Client, dir: &Path) -> Vec<Vec<u8>> {
    let mut s = c.receive(4, false).await.unwrap();
    let mut out = Vec::new();
    while let Some(d) = s.message().await.unwrap() {
        let doc = d.document.clone().unwrap();
        let h: DocumentHeader = prost::Message::decode(doc.header.as_slice()).unwrap();
        let bytes = if d.payload_separate {
            assert!(doc.payload.is_empty());
            let part = dir.join(format!("{}.part", d.delivery_id));
            c.download_to(
                d.hub_document_id,
                d.delivery_id,
                &part,
                &h.payload_sha256,
                h.payload_size,
                &quiet,
            )
            .await
            .unwrap();
            std::fs::read(&part).unwrap()
        } else {
            doc.payload
        };
        c.ack(vec![d.delivery_id]).await.unwrap();
        out.push(bytes);
    }
    out
}

async fn small_hub() -> TestHub {
    TestHub::start_with(|c| {
        c.limits.max_inline_payload = 64 * 1024;
        c.limits.max_document_size = 16 * MIB as u64;
    })
    .await
}

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
            part: Some(Part::Chunk(bytes[i * MIB..(i + 1) * MIB].to_vec())),
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
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("differs from the signed digest"), "{err:?}");
    for sub in ["payloads", "uploads"] {
        let n = std::fs::read_dir(hub.config.data_dir.join(sub)).unwrap().count();
        assert_eq!(n, 0, "{sub} is not empty");
    }
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
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    // Inline sends above the inline limit are told to use Upload.
    let err = g22
        .send(truc_tests::sign(
            &g22,
            header(&[H26], "inline/big"),
            &vec![0u8; 65 * 1024],
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);

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
    assert!(err.to_string().contains("PermissionDenied"), "{err}");
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
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("quota of 1000 bytes"), "{err:?}");
    // Once picked up, there is room again.
    truc_tests::drain(&h26, 4).await;
    g22.send(truc_tests::sign(&g22, header(&[H26], "q/2"), &[2u8; 600]))
        .await
        .unwrap();
}
