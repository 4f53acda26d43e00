//! Several attachments in one payload, at the hub: the signed manifest must
//! describe the payload exactly, and every attachment's SHA-256 is checked
//! as its bytes arrive, inline (Send), header first (refused at the
//! attachment's last byte) and payload first (against the sizes UploadOpen
//! declared), a mismatch refused naming the attachment with nothing kept.
//! Uploads resume across attachments; a receiver downloads each attachment
//! into a file of its own, resuming, checked as it completes.

use std::path::{Path, PathBuf};

use tonic::Code;
use truc_client::transfer::{hash_files, manifest, new_upload_id, sign_external, AttachmentMeta, Digests, SourceFiles};
use truc_client::Client;
use truc_proto::v1::upload_request::Part;
use truc_proto::v1::{DocumentHeader, UploadRequest};
use truc_tests::transfer::{
    assert_nothing_left, chunk, file, files_in, open, quiet, small_hub, start, upload_call, MIB,
};
use truc_tests::{drain, header, sign};

const G22: &str = "000.00.00.G22";
const H26: &str = "000.00.00.H26";

fn meta(names: &[&str]) -> Vec<AttachmentMeta> {
    names
        .iter()
        .enumerate()
        .map(|(i, n)| AttachmentMeta {
            content_id: format!("cid:{}", i + 1),
            name: n.to_string(),
            description: format!("Tệp đính kèm {}", i + 1),
            media_type: "application/octet-stream".into(),
        })
        .collect()
}

/// Three files of the given sizes in `dir`.
fn three(dir: &Path, sizes: [usize; 3]) -> (Vec<PathBuf>, Vec<Vec<u8>>) {
    let names = ["cong-van.pdf", "phu-luc.docx", "bang.xlsx"];
    let paths: Vec<PathBuf> = names
        .iter()
        .zip(sizes)
        .enumerate()
        .map(|(i, (n, s))| file(dir, n, s, i as u8 + 1))
        .collect();
    let bytes = paths.iter().map(|p| std::fs::read(p).unwrap()).collect();
    (paths, bytes)
}

/// A header to H26 with these attachments over `digests`.
fn with_manifest(id: &str, digests: &Digests) -> DocumentHeader {
    let mut h = header(&[H26], id);
    h.attachments = manifest(&meta(&["cong-van.pdf", "phu-luc.docx", "bang.xlsx"]), digests);
    h
}

/// Receive one document as H26 and download each attachment into a file of
/// its own; their contents.
async fn receive_attachments(h26: &Client, dir: &Path) -> Vec<Vec<u8>> {
    let got = drain(h26, 4).await;
    assert_eq!(got.len(), 1);
    let d = &got[0];
    let doc = d.document.clone().unwrap();
    let h: DocumentHeader = prost::Message::decode(doc.header.as_slice()).unwrap();
    let parts: Vec<PathBuf> = h
        .attachments
        .iter()
        .map(|a| dir.join(format!("{}-{}.part", d.delivery_id, a.name)))
        .collect();
    if d.payload_separate {
        h26.download_attachments(d.hub_document_id, d.delivery_id, &h, &parts, &quiet)
            .await
            .unwrap();
    } else {
        truc_client::verify_received(&doc, &truc_client::axis_trust(h26.identity()).unwrap()).unwrap();
        for (a, p) in h.attachments.iter().zip(&parts) {
            std::fs::write(p, &doc.payload[a.offset as usize..(a.offset + a.size) as usize]).unwrap();
        }
    }
    h26.ack(vec![d.delivery_id]).await.unwrap();
    parts.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

#[tokio::test]
async fn inline_attachments_are_each_checked() {
    let hub = small_hub().await;
    let g22 = hub.agency(G22).await;
    let h26 = hub.agency(H26).await;
    let dir = tempfile::tempdir().unwrap();
    let (paths, bytes) = three(dir.path(), [1000, 0, 20_000]);
    let files = SourceFiles::open(&paths).unwrap();
    let digests = hash_files(&files).unwrap();
    let payload: Vec<u8> = bytes.concat();

    // A manifest that lies about the second attachment's bytes: named.
    let mut lying = digests.clone();
    lying.attachments[2] = [7; 32];
    let e = g22
        .send(sign(&g22, with_manifest("att/lie", &lying), &payload))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(Code::InvalidArgument), "{e:?}");
    assert!(
        e.to_string()
            .contains("attachment 3 (\"bang.xlsx\", content id \"cid:3\")")
            && e.to_string().contains("differ from its signed SHA-256"),
        "{e:?}"
    );
    // A manifest with a gap: named too, before any digest.
    let mut h = with_manifest("att/gap", &digests);
    h.attachments[2].offset += 1;
    let e = g22.send(sign(&g22, h, &payload)).await.unwrap_err();
    assert_eq!(e.code(), Some(Code::InvalidArgument), "{e:?}");
    assert!(
        e.to_string().contains("attachment 3") && e.to_string().contains("offset"),
        "{e:?}"
    );
    assert!(drain(&h26, 4).await.is_empty(), "nothing was stored");

    g22.send(sign(&g22, with_manifest("att/ok", &digests), &payload))
        .await
        .unwrap();
    assert_eq!(receive_attachments(&h26, dir.path()).await, bytes);
}

/// Header first: the signed document, then chunks. An attachment whose
/// bytes differ is refused at its last byte, naming it, and the upload is
/// deleted.
#[tokio::test]
async fn header_first_uploads_check_each_attachment_as_it_completes() {
    let hub = small_hub().await;
    let g22 = hub.agency(G22).await;
    let h26 = hub.agency(H26).await;
    let dir = tempfile::tempdir().unwrap();
    let (paths, bytes) = three(dir.path(), [MIB + 3, 2 * MIB, 5]);
    let files = SourceFiles::open(&paths).unwrap();
    let digests = hash_files(&files).unwrap();

    // Signed over other bytes for the second attachment (same size): the
    // whole payload's digest is right, the manifest's second is not.
    let mut lying = digests.clone();
    lying.attachments[1] = [9; 32];
    let doc = sign_external(
        g22.identity(),
        with_manifest("att/hf-lie", &lying),
        lying.sha256,
        lying.size,
    )
    .unwrap();
    let e = g22.upload_files(doc, &files, &quiet).await.unwrap_err();
    assert_eq!(e.code(), Some(Code::InvalidArgument), "{e:?}");
    assert!(e.to_string().contains("attachment 2 (\"phu-luc.docx\""), "{e:?}");
    assert_eq!(files_in(&hub, "uploads"), 0, "the upload was deleted");
    assert!(drain(&h26, 4).await.is_empty());

    // Interrupted inside the second attachment, then resumed by the SDK:
    // the hub hashes that attachment again from its start.
    let doc = sign_external(
        g22.identity(),
        with_manifest("att/hf", &digests),
        digests.sha256,
        digests.size,
    )
    .unwrap();
    let (tx, first) = upload_call(&g22);
    tx.send(start(doc.clone(), 0)).await.unwrap();
    let payload = bytes.concat();
    let cut = MIB + 3 + MIB / 2;
    tx.send(chunk(&payload[..cut])).await.unwrap();
    drop(tx);
    let e = first.await.unwrap().unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    g22.upload_files(doc, &files, &quiet).await.unwrap();
    assert_eq!(receive_attachments(&h26, dir.path()).await, bytes);
    assert_eq!(files_in(&hub, "uploads"), 0);
}

/// Payload first: the sizes declared in UploadOpen, the digests compared at
/// UploadFinish; required for two or more attachments; resumable across
/// attachments.
#[tokio::test]
async fn payload_first_uploads_check_each_attachment_and_resume_across_them() {
    let hub = small_hub().await;
    let g22 = hub.agency(G22).await;
    let h26 = hub.agency(H26).await;
    let dir = tempfile::tempdir().unwrap();
    let (paths, bytes) = three(dir.path(), [3 * MIB, 7, 2 * MIB + 1]);
    let files = SourceFiles::open(&paths).unwrap();
    let to = vec![H26.to_string()];

    // Signed with a wrong digest for the first attachment.
    let sign_lying = |d: &Digests| {
        let mut lying = d.clone();
        lying.attachments[0] = [1; 32];
        sign_external(g22.identity(), with_manifest("att/pf-lie", &lying), d.sha256, d.size)
    };
    let e = g22
        .upload_files_payload_first(&new_upload_id(), &to, &files, sign_lying, &quiet)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(Code::InvalidArgument), "{e:?}");
    assert!(e.to_string().contains("attachment 1 (\"cong-van.pdf\""), "{e:?}");
    assert_nothing_left(&hub);

    // Without the sizes declared, a header with three attachments is refused.
    let digests = hash_files(&files).unwrap();
    let (tx, call) = upload_call(&g22);
    tx.send(open(&new_upload_id(), 0, digests.size, Vec::new()))
        .await
        .unwrap();
    let payload = bytes.concat();
    for c in payload.chunks(MIB) {
        tx.send(chunk(c)).await.unwrap();
    }
    let doc = sign_external(
        g22.identity(),
        with_manifest("att/pf-undeclared", &digests),
        digests.sha256,
        digests.size,
    )
    .unwrap();
    tx.send(UploadRequest {
        part: Some(Part::Finish(truc_proto::v1::UploadFinish { document: Some(doc) })),
    })
    .await
    .unwrap();
    drop(tx);
    let e = call.await.unwrap().unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("UploadOpen.attachment_sizes"), "{e:?}");
    assert_nothing_left(&hub);

    // Interrupted in the third attachment (sizes declared), resumed by the
    // SDK under the same upload id: the hub hashes what it has from the
    // start again, and every attachment is checked at the end.
    let id = new_upload_id();
    let (tx, first) = upload_call(&g22);
    tx.send(open(&id, 0, digests.size, files.sizes())).await.unwrap();
    let cut = 3 * MIB + 7 + MIB;
    for c in payload[..cut].chunks(MIB) {
        tx.send(chunk(c)).await.unwrap();
    }
    drop(tx);
    let e = first.await.unwrap().unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    let started = std::sync::Mutex::new(None);
    let resp = g22
        .upload_files_payload_first(
            &id,
            &to,
            &files,
            |d: &Digests| {
                assert_eq!(d, &digests, "one pass over all three files gives every digest");
                sign_external(g22.identity(), with_manifest("att/pf", d), d.sha256, d.size)
            },
            &|done, _| {
                started.lock().unwrap().get_or_insert(done);
            },
        )
        .await
        .unwrap();
    assert!(!resp.duplicate);
    assert_eq!(
        started.into_inner().unwrap(),
        Some(cut as u64),
        "resumed where the hub was"
    );
    assert_eq!(receive_attachments(&h26, dir.path()).await, bytes);
}

/// A receiver's download into one file per attachment resumes: files it
/// has whole are kept (and hashed again), the partial one continues.
#[tokio::test]
async fn downloads_into_attachment_files_resume() {
    let hub = small_hub().await;
    let g22 = hub.agency(G22).await;
    let h26 = hub.agency(H26).await;
    let dir = tempfile::tempdir().unwrap();
    let (paths, bytes) = three(dir.path(), [MIB, 2 * MIB + 9, MIB / 2]);
    let files = SourceFiles::open(&paths).unwrap();
    let digests = hash_files(&files).unwrap();
    let doc = sign_external(
        g22.identity(),
        with_manifest("att/dl", &digests),
        digests.sha256,
        digests.size,
    )
    .unwrap();
    g22.upload_files(doc, &files, &quiet).await.unwrap();

    let got = drain(&h26, 4).await;
    let d = &got[0];
    assert!(d.payload_separate);
    let h: DocumentHeader = prost::Message::decode(d.document.as_ref().unwrap().header.as_slice()).unwrap();
    let out = tempfile::tempdir().unwrap();
    let parts: Vec<PathBuf> = (1..=3).map(|i| out.path().join(format!("{i}.part"))).collect();
    // An earlier run wrote the first file whole and part of the second.
    std::fs::write(&parts[0], &bytes[0]).unwrap();
    std::fs::write(&parts[1], &bytes[1][..MIB / 3]).unwrap();
    let started = std::sync::Mutex::new(None);
    h26.download_attachments(d.hub_document_id, d.delivery_id, &h, &parts, &|done, _| {
        started.lock().unwrap().get_or_insert(done);
    })
    .await
    .unwrap();
    assert_eq!(started.into_inner().unwrap(), Some((MIB + MIB / 3) as u64));
    for (p, want) in parts.iter().zip(&bytes) {
        assert!(std::fs::read(p).unwrap() == *want, "{}", p.display());
    }
    // A first file that is not what was signed: found, named, removed.
    std::fs::write(&parts[0], vec![0u8; MIB]).unwrap();
    std::fs::write(&parts[1], b"").unwrap();
    std::fs::remove_file(&parts[2]).unwrap();
    let e = h26
        .download_attachments(d.hub_document_id, d.delivery_id, &h, &parts, &quiet)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("attachment 1 (\"cong-van.pdf\""), "{e}");
    assert!(parts.iter().all(|p| !p.exists()), "every part removed to start over");
}
