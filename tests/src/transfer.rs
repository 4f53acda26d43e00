//! Helpers for the large-document tests: files with known bytes, a hub
//! with small limits, and a recipient that downloads what it receives.

use std::path::{Path, PathBuf};

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use truc_client::transfer::{hash_file, sign_external};
use truc_proto::v1::upload_request::Part;
use truc_proto::v1::{DocumentHeader, SignedDocument, UploadOpen, UploadRequest, UploadStart};

use crate::{header, TestHub};

/// One MiB.
pub const MIB: usize = 1 << 20;

/// Write `size` bytes that depend on `seed` to `dir/name`.
pub fn file(dir: &Path, name: &str, size: usize, seed: u8) -> PathBuf {
    let p = dir.join(name);
    let bytes: Vec<u8> = (0..size)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[0] ^ seed)
        .collect();
    std::fs::write(&p, bytes).expect("write test file");
    p
}

/// A document from `c` to `to` with id `id`, signed over the file at
/// `path` (hashed first: the header-first order).
pub fn signed(c: &truc_client::Client, to: &[&str], id: &str, path: &Path) -> SignedDocument {
    let (sha, size) = hash_file(path).expect("hash test file");
    let mut h: DocumentHeader = header(to, id);
    h.file_name = path.file_name().expect("file name").to_string_lossy().into();
    sign_external(c.identity(), h, sha, size).expect("sign")
}

/// A progress callback that shows nothing.
pub fn quiet(_: u64, _: u64) {}

/// Receive everything waiting, download separate payloads, ack; returns the
/// saved files' contents.
pub async fn receive_all(c: &truc_client::Client, dir: &Path) -> Vec<Vec<u8>> {
    let mut s = c.receive(4, false).await.expect("receive");
    let mut out = Vec::new();
    while let Some(d) = s.message().await.expect("delivery") {
        let doc = d.document.clone().expect("a document");
        let h: DocumentHeader = prost::Message::decode(doc.header.as_slice()).expect("header");
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
            .expect("download");
            std::fs::read(&part).expect("read download")
        } else {
            doc.payload
        };
        c.ack(vec![d.delivery_id]).await.expect("ack");
        out.push(bytes);
    }
    out
}

/// A hub with a 64 KiB inline limit and 16 MiB documents at most.
pub async fn small_hub() -> TestHub {
    TestHub::start_with(|c| {
        c.limits.max_inline_payload = 64 * 1024;
        c.limits.max_document_size = 16 * MIB as u64;
    })
    .await
}

/// How many files the hub's `payloads/` or `uploads/` directory holds.
pub fn files_in(hub: &TestHub, sub: &str) -> usize {
    std::fs::read_dir(hub.config.data_dir.join(sub))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// The hub kept nothing of a refused upload: its `payloads/` and
/// `uploads/` directories are there and empty.
pub fn assert_nothing_left(hub: &TestHub) {
    for sub in ["payloads", "uploads"] {
        let n = std::fs::read_dir(hub.config.data_dir.join(sub)).unwrap().count();
        assert_eq!(n, 0, "{sub} is not empty");
    }
}

/// An Upload call from `c` fed by hand: the sender of its messages, and
/// the call.
pub fn upload_call(
    c: &truc_client::Client,
) -> (
    mpsc::Sender<UploadRequest>,
    tokio::task::JoinHandle<Result<(), tonic::Status>>,
) {
    let (tx, rx) = mpsc::channel(8);
    let mut axis = c.axis();
    let call = tokio::spawn(async move { axis.upload(ReceiverStream::new(rx)).await.map(|_| ()) });
    (tx, call)
}

/// A header-first upload's first message.
pub fn start(document: SignedDocument, offset: u64) -> UploadRequest {
    UploadRequest {
        part: Some(Part::Start(UploadStart {
            document: Some(document),
            offset,
        })),
    }
}

/// A payload-first upload's first message, with the attachments' sizes.
pub fn open(upload_id: &str, offset: u64, size: u64, attachment_sizes: Vec<u64>) -> UploadRequest {
    UploadRequest {
        part: Some(Part::Open(UploadOpen {
            upload_id: upload_id.into(),
            offset,
            size,
            to: Vec::new(),
            attachment_sizes,
        })),
    }
}

/// A chunk of an upload.
pub fn chunk(bytes: &[u8]) -> UploadRequest {
    UploadRequest {
        part: Some(Part::Chunk(bytes.to_vec().into())),
    }
}

/// How many bytes the hub has of `c`'s payload-first upload `upload_id`.
pub async fn received(c: &truc_client::Client, upload_id: &str) -> u64 {
    c.axis()
        .upload_status(truc_proto::v1::UploadStatusRequest {
            upload_id: upload_id.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .received
}
