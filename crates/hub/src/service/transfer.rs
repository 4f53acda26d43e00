//! Large documents: chunked upload to the payload files, resumable, and
//! ranged download, both in bounded memory.

use std::sync::Arc;

use prost::bytes::Bytes;

use rustls_pki_types::UnixTime;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use truc_core::AgencyCode;
use truc_proto::v1::upload_request::Part;
use truc_proto::v1::{
    DownloadChunk, DownloadRequest, SendResponse, UploadRequest, UploadStatusRequest, UploadStatusResponse,
};
use truc_store::{PartWriter, PayloadRef, Resume, UploadMismatch};

use crate::{auth, status, Shared};

/// Size of the chunks Download sends.
pub(crate) const DOWNLOAD_CHUNK: usize = 4 << 20;
/// Largest chunk Upload accepts.
pub(crate) const MAX_UPLOAD_CHUNK: usize = 4 << 20;
/// Chunks an upload may have received but not yet written.
const WRITE_QUEUE: usize = 2;

/// The upload's name in the payload files: the sender, its document id and
/// the payload digest, so a re-signed retry resumes the same upload.
fn upload_id(from: &AgencyCode, document_id: &str, sha256: &[u8]) -> String {
    let mut key = Vec::with_capacity(64 + document_id.len());
    key.extend_from_slice(from.as_str().as_bytes());
    key.push(0);
    key.extend_from_slice(document_id.as_bytes());
    key.push(0);
    key.extend_from_slice(sha256);
    truc_core::hex(&truc_core::sha256(&key))
}

fn blocking_err(_: tokio::task::JoinError) -> Status {
    Status::unavailable("the hub is shutting down")
}

pub(crate) async fn upload_status(
    shared: &Shared,
    req: Request<UploadStatusRequest>,
) -> Result<Response<UploadStatusResponse>, Status> {
    let (_, caller) = auth::agency(&req)?;
    let r = req.into_inner();
    if r.payload_sha256.len() != 32 {
        return Err(Status::invalid_argument("payload_sha256 must be 32 bytes"));
    }
    let files = shared.payloads.clone();
    let id = upload_id(&caller, &r.document_id, &r.payload_sha256);
    let (received, complete) = tokio::task::spawn_blocking(move || (files.received(&id), files.has(&r.payload_sha256)))
        .await
        .map_err(blocking_err)?;
    Ok(Response::new(UploadStatusResponse { received, complete }))
}

pub(crate) async fn upload(
    shared: &Arc<Shared>,
    req: Request<Streaming<UploadRequest>>,
) -> Result<Response<SendResponse>, Status> {
    let (principal, caller) = auth::agency(&req)?;
    let mut stream = req.into_inner();
    let start = match stream.message().await?.and_then(|m| m.part) {
        Some(Part::Start(s)) => s,
        _ => {
            return Err(Status::invalid_argument(
                "an upload starts with the signed document (UploadStart)",
            ))
        }
    };
    let doc = start
        .document
        .ok_or_else(|| Status::invalid_argument("UploadStart.document is missing"))?;
    if !doc.payload.is_empty() {
        return Err(Status::invalid_argument(
            "in an upload the payload travels in chunks, not in the document",
        ));
    }
    let trust = shared.signing_trust();
    let (doc, checked) = tokio::task::spawn_blocking(move || {
        let r = truc_core::document::verify_document(&doc, Some(&caller), &trust, UnixTime::now(), false);
        (doc, r)
    })
    .await
    .map_err(blocking_err)?;
    let checked = checked.map_err(status::from_core)?;
    let size = checked.header.payload_size;
    let max = shared.config.limits.max_document_size;
    if size > max {
        return Err(Status::resource_exhausted(format!(
            "document is {size} bytes; this hub accepts at most {max} bytes per document"
        )));
    }
    let sha = checked.header.payload_sha256.clone();
    let id = upload_id(&checked.from, &checked.header.document_id, &sha);
    let files = shared.payloads.clone();

    let reserve = shared.config.limits.min_free_disk_bytes;
    if reserve > 0 {
        let dir = shared.config.data_dir.clone();
        let free = tokio::task::spawn_blocking(move || fs2::available_space(&dir))
            .await
            .map_err(blocking_err)?;
        if let Ok(free) = free {
            if free < reserve.saturating_add(size) {
                return Err(Status::resource_exhausted(format!(
                    "the hub's disk is nearly full ({free} bytes free, {reserve} kept in reserve, {size} needed); \
                     retry later"
                )));
            }
        }
    }
    // Held until the document is stored: the payload collector, which
    // decides in the same store writer, leaves a pinned payload alone. So
    // either the file is here and stays, or it is gone and the bytes come.
    let pin = shared
        .store
        .pin_payload(sha.clone())
        .await
        .map_err(status::from_store)?;
    let already = match pin.present() {
        Some(present) => present,
        None => {
            let (files, sha) = (files.clone(), sha.clone());
            tokio::task::spawn_blocking(move || files.has(&sha))
                .await
                .map_err(blocking_err)?
        }
    };
    if already {
        // Stored once for everyone: whatever chunks come are not needed.
        while stream.message().await?.is_some() {}
    } else {
        let resumed = {
            let (files, id) = (files.clone(), id.clone());
            tokio::task::spawn_blocking(move || files.resume(&id, start.offset))
                .await
                .map_err(blocking_err)?
        };
        let mut writer: PartWriter = match resumed.map_err(status::from_store)? {
            Resume::Writer(w) => w,
            Resume::Have(have) => {
                return Err(Status::failed_precondition(format!(
                    "the hub has {have} bytes of this upload; resume from offset {have} (or 0 to start over)"
                )))
            }
            Resume::Busy => {
                return Err(Status::aborted(
                    "another upload of this document is in progress; retry when it has ended",
                ))
            }
        };
        let writer_offset = writer.written();
        // The bytes go to a blocking task of their own through a short
        // queue, so receiving the next chunk overlaps writing and hashing
        // this one; memory stays at most WRITE_QUEUE chunks.
        let (chunks, mut queue) = mpsc::channel::<Bytes>(WRITE_QUEUE);
        let write = tokio::task::spawn_blocking(move || {
            while let Some(chunk) = queue.blocking_recv() {
                if let Err(e) = writer.append(&chunk) {
                    return (writer, Err(e));
                }
            }
            (writer, Ok(()))
        });
        let mut received = writer_offset;
        let mut refused = None;
        while let Some(msg) = stream.message().await? {
            let Some(Part::Chunk(chunk)) = msg.part else {
                refused = Some(Status::invalid_argument("only chunks may follow UploadStart"));
                break;
            };
            if chunk.len() > MAX_UPLOAD_CHUNK {
                refused = Some(Status::invalid_argument(format!(
                    "chunks are at most {MAX_UPLOAD_CHUNK} bytes"
                )));
                break;
            }
            if received + chunk.len() as u64 > size {
                refused = Some(Status::invalid_argument(format!(
                    "payload is longer than the {size} bytes the signed header states; upload discarded"
                )));
                break;
            }
            received += chunk.len() as u64;
            if chunks.send(chunk).await.is_err() {
                break; // the writer failed: its error is below
            }
        }
        drop(chunks);
        let (writer, wrote) = write.await.map_err(blocking_err)?;
        wrote.map_err(status::from_store)?;
        if let Some(refusal) = refused {
            if refusal.message().contains("upload discarded") {
                drop(writer);
                let (files, id) = (files.clone(), id.clone());
                let _ = tokio::task::spawn_blocking(move || files.discard(&id)).await;
            }
            return Err(refusal);
        }
        if writer.written() < size {
            // A clean end before the last byte: keep what came, for a resume.
            let got = writer.written();
            drop(writer);
            return Err(Status::failed_precondition(format!(
                "upload incomplete: the hub has {got} of the {size} bytes; resume from offset {got}"
            )));
        }
        let finished = {
            let (files, id, sha) = (files.clone(), id.clone(), sha.clone());
            tokio::task::spawn_blocking(move || files.finish(&id, writer, size, &sha))
                .await
                .map_err(blocking_err)?
        };
        match finished.map_err(status::from_store)? {
            Ok(()) => {}
            Err(UploadMismatch::Size { got, want }) => {
                return Err(Status::invalid_argument(format!(
                    "payload is {got} bytes, the signed header states {want}; the upload was discarded"
                )))
            }
            Err(UploadMismatch::Digest) => {
                return Err(Status::invalid_argument(
                    "payload SHA-256 differs from the signed digest; the upload was discarded and nothing was stored",
                ))
            }
        }
    }
    let accepted = super::axis::accept(shared, principal, checked, doc, true, size).await;
    drop(pin);
    accepted
}

pub(crate) async fn download(
    shared: &Arc<Shared>,
    req: Request<DownloadRequest>,
) -> Result<Response<ReceiverStream<Result<DownloadChunk, Status>>>, Status> {
    let (_, caller) = auth::agency(&req)?;
    let r = req.into_inner();
    let payload = shared
        .store
        .payload(r.hub_document_id, caller.clone())
        .await
        .map_err(status::from_store)?;
    let (tx, rx) = mpsc::channel(2);
    let shared = shared.clone();
    // One blocking task reads the file in order and feeds the stream; the
    // channel's two slots bound the memory and let reading overlap sending.
    tokio::task::spawn_blocking(move || {
        let mut offset = r.offset;
        let mut file = None;
        loop {
            let chunk = match &payload {
                PayloadRef::Inline(bytes) => {
                    let start = (offset as usize).min(bytes.len());
                    Ok(Bytes::copy_from_slice(
                        &bytes[start..(start + DOWNLOAD_CHUNK).min(bytes.len())],
                    ))
                }
                PayloadRef::External { sha256, size } => {
                    if offset >= *size {
                        Ok(Bytes::new())
                    } else {
                        let reader = match file.take() {
                            Some(r) => Ok(r),
                            None => shared.payloads.reader(sha256, offset),
                        };
                        reader
                            .and_then(|mut r| {
                                let data = r.next_chunk(DOWNLOAD_CHUNK).map_err(|e| {
                                    truc_store::StoreError::Unavailable(format!("reading a payload: {e}"))
                                });
                                file = Some(r);
                                data
                            })
                            // The bytes stay where they were read: no copy.
                            .map(|(buf, range)| Bytes::from(buf).slice(range))
                            .map_err(status::from_store)
                    }
                }
            };
            let data = match chunk {
                Ok(d) if d.is_empty() => return,
                Ok(d) => d,
                Err(s) => {
                    let _ = tx.blocking_send(Err(s));
                    return;
                }
            };
            let n = data.len() as u64;
            if tx.blocking_send(Ok(DownloadChunk { offset, data })).is_err() {
                return; // the client went away
            }
            offset += n;
            if r.delivery_id != 0 {
                shared.engine.extend_lease(&caller, r.delivery_id);
            }
        }
    });
    Ok(Response::new(ReceiverStream::new(rx)))
}
