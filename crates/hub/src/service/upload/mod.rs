//! Large documents in: chunked, resumable uploads written to the payload
//! files as they come, in bounded memory. Two orders share everything but
//! when the signed header arrives: header first (`UploadStart`, checked
//! before any byte) and payload first (`UploadOpen` … `UploadFinish`, so
//! the sender can hash while it sends and read its file once).

mod header_first;
mod payload_first;

use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;

use prost::bytes::Bytes;
use rustls_pki_types::UnixTime;
use tonic::{Request, Response, Status, Streaming};
use truc_core::attachments::{self, RangeHasher};
use truc_core::document::CheckedHeader;
use truc_core::AgencyCode;
use truc_proto::v1::upload_request::Part;
use truc_proto::v1::{
    DocumentHeader, SendResponse, SignedDocument, UploadRequest, UploadStatusRequest, UploadStatusResponse,
};
use truc_store::{PartWriter, PayloadFiles, Resume};

use crate::{auth, status, Shared};

/// Largest chunk Upload accepts.
pub(crate) const MAX_UPLOAD_CHUNK: usize = 4 << 20;

/// Marks the name of a header-first upload.
const HEADER_FIRST: u8 = 0;
/// Marks the name of a payload-first upload, so that no header-first key
/// (which has a 32-byte digest where this has an id) can ever collide.
const PAYLOAD_FIRST: u8 = 1;

/// The `.part` name of a header-first upload: the sender, its document id
/// and the payload digest, so a re-signed retry resumes the same upload.
fn header_first_id(from: &AgencyCode, document_id: &str, sha256: &[u8]) -> String {
    part_name(HEADER_FIRST, from, &[document_id.as_bytes(), sha256])
}

/// The `.part` name of a payload-first upload: the calling agency (from
/// mTLS) and the id it chose, so agencies never share an upload.
fn payload_first_id(caller: &AgencyCode, upload_id: &str) -> String {
    part_name(PAYLOAD_FIRST, caller, &[upload_id.as_bytes()])
}

fn part_name(kind: u8, who: &AgencyCode, parts: &[&[u8]]) -> String {
    let mut key = Vec::with_capacity(128);
    if kind != HEADER_FIRST {
        // Header-first names stay what they were, so uploads in progress
        // across an upgrade still resume.
        key.push(kind);
        key.push(0);
    }
    key.extend_from_slice(who.as_str().as_bytes());
    for p in parts {
        key.push(0);
        key.extend_from_slice(p);
    }
    truc_core::hex(&truc_core::sha256(&key))
}

/// A client-chosen upload id: 16 to 64 of `A-Za-z0-9-_`.
fn check_upload_id(id: &str) -> Result<(), Status> {
    let ok = (16..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Status::invalid_argument(
            "upload_id must be 16 to 64 characters of A-Z, a-z, 0-9, '-' and '_'",
        ))
    }
}

fn blocking_err(_: tokio::task::JoinError) -> Status {
    Status::unavailable("the hub is shutting down")
}

/// Check an upload's signed document (chain, CRL, signer = sender = the
/// mTLS agency, signature; the payload is checked against the header at
/// the end) off the reactor, in one of the hub's CPU slots as Send does.
/// The outer error only when the hub is stopping; the inner one is the
/// verdict, for the caller to act on.
async fn verify(
    shared: &Shared,
    caller: AgencyCode,
    doc: SignedDocument,
) -> Result<(SignedDocument, Result<CheckedHeader, truc_core::CoreError>), Status> {
    let trust = shared.signing_trust();
    let max_ahead_ms = shared.max_signed_at_ahead_ms();
    // The payload is not hashed here (it is checked as it arrives).
    shared
        .on_cpu(0, move || {
            let r = truc_core::document::verify_document(&doc, Some(&caller), &trust, UnixTime::now(), false).and_then(
                |c| {
                    truc_core::document::check_signed_at(&c.header, truc_core::now_unix_ms(), max_ahead_ms)?;
                    Ok(c)
                },
            );
            (doc, r)
        })
        .await
        .ok_or_else(|| Status::unavailable("the hub is shutting down"))
}

pub(crate) async fn upload(
    shared: &Arc<Shared>,
    req: Request<Streaming<UploadRequest>>,
) -> Result<Response<SendResponse>, Status> {
    let (principal, caller) = auth::agency(&req)?;
    let mut stream = req.into_inner();
    match stream.message().await?.and_then(|m| m.part) {
        Some(Part::Start(start)) => header_first::upload(shared, principal, caller, start, stream).await,
        Some(Part::Open(open)) => payload_first::upload(shared, principal, caller, open, stream).await,
        _ => Err(Status::invalid_argument(
            "an upload starts with the signed document (UploadStart) or with UploadOpen",
        )),
    }
}

pub(crate) async fn upload_status(
    shared: &Shared,
    req: Request<UploadStatusRequest>,
) -> Result<Response<UploadStatusResponse>, Status> {
    let (_, caller) = auth::agency(&req)?;
    let r = req.into_inner();
    let id = if r.upload_id.is_empty() {
        if r.payload_sha256.len() != 32 {
            return Err(Status::invalid_argument(
                "payload_sha256 must be 32 bytes (or give the upload_id of a payload-first upload)",
            ));
        }
        header_first_id(&caller, &r.document_id, &r.payload_sha256)
    } else {
        check_upload_id(&r.upload_id)?;
        if !r.payload_sha256.is_empty() && r.payload_sha256.len() != 32 {
            return Err(Status::invalid_argument("payload_sha256 must be 32 bytes or empty"));
        }
        payload_first_id(&caller, &r.upload_id)
    };
    let files = shared.payloads.clone();
    let (received, complete) = tokio::task::spawn_blocking(move || {
        let complete = r.payload_sha256.len() == 32 && files.has(&r.payload_sha256);
        (files.received(&id), complete)
    })
    .await
    .map_err(blocking_err)?;
    Ok(Response::new(UploadStatusResponse { received, complete }))
}

/// Refuse a payload over the hub's maximum document size.
pub(crate) fn check_size(shared: &Shared, size: u64) -> Result<(), Status> {
    let max = shared.config.limits.max_document_size;
    if size > max {
        return Err(Status::resource_exhausted(format!(
            "document is {size} bytes; this hub accepts at most {max} bytes per document"
        )));
    }
    Ok(())
}

/// Refuse an upload of `size` bytes the disk cannot hold above the reserve.
async fn check_room(shared: &Shared, size: u64) -> Result<(), Status> {
    let reserve = shared.config.limits.min_free_disk_bytes;
    if reserve == 0 {
        return Ok(());
    }
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
    Ok(())
}

/// Open the `.part` of upload `id` to append at `offset` (0, or what the
/// hub has).
async fn open_part(files: &PayloadFiles, id: &str, offset: u64) -> Result<PartWriter, Status> {
    let resumed = {
        let (files, id) = (files.clone(), id.to_string());
        tokio::task::spawn_blocking(move || files.resume(&id, offset))
            .await
            .map_err(blocking_err)?
    };
    match resumed.map_err(status::from_store)? {
        Resume::Writer(w) => Ok(w),
        Resume::Have(have) => Err(Status::failed_precondition(format!(
            "the hub has {have} bytes of this upload; resume from offset {have} (or 0 to start over)"
        ))),
        Resume::Busy => Err(Status::aborted(
            "another upload of this document is in progress; retry when it has ended",
        )),
    }
}

/// Each attachment's range checked while an upload's chunks are written
/// (a document with two or more attachments: with one, or none, the whole
/// payload's digest, which the store checks, is enough).
pub(super) struct Ranges {
    /// Hashes the ranges as the bytes go by.
    hasher: RangeHasher,
    /// The `.part` being resumed and the offset it is resumed at: the bytes
    /// of the range(s) before that offset are hashed from it first.
    prefix: Option<(PathBuf, u64)>,
    /// Hash the prefix from the start of the range the offset falls in
    /// (true), or from 0 (false).
    from_range_start: bool,
}

impl Ranges {
    /// Header first: every attachment checked against its signed SHA-256
    /// the moment its last byte is written. A resumed upload's attachments
    /// before the offset were checked by the stream that wrote them; the
    /// one the offset falls in is hashed again from its start.
    fn expecting(shared: &Shared, header: &DocumentHeader, id: &str, offset: u64) -> Option<Ranges> {
        if attachments::whole_payload_suffices(header) {
            return None;
        }
        Some(Ranges {
            hasher: RangeHasher::expecting(header),
            prefix: (offset > 0).then(|| (part_path(shared, id), offset)),
            from_range_start: true,
        })
    }

    /// Payload first: the digests of ranges of the sizes declared in
    /// UploadOpen, compared with the signed header at the end. A resumed
    /// upload hashes the bytes the hub has from the start (no digest of
    /// an earlier stream is kept).
    fn declared(shared: &Shared, sizes: &[u64], id: &str, offset: u64) -> Option<Ranges> {
        (sizes.len() > 1).then(|| Ranges {
            hasher: RangeHasher::new(sizes.to_vec()),
            prefix: (offset > 0).then(|| (part_path(shared, id), offset)),
            from_range_start: false,
        })
    }

    /// Hash what the `.part` has before the resume offset: from the start
    /// of the range it falls in (expecting) or from 0 (declared).
    fn hash_prefix(&mut self) -> Result<(), RangeFailure> {
        let Some((path, offset)) = self.prefix.take() else {
            return Ok(());
        };
        let from = if self.from_range_start {
            self.hasher.skip_to_range_of(offset)
        } else {
            0
        };
        let mut f = std::fs::File::open(&path).map_err(|e| RangeFailure::Io(path.clone(), e))?;
        f.seek(SeekFrom::Start(from))
            .map_err(|e| RangeFailure::Io(path.clone(), e))?;
        let mut buf = vec![0u8; PREFIX_BUF];
        let mut left = offset - from;
        while left > 0 {
            let n = f
                .read(&mut buf[..PREFIX_BUF.min(left as usize)])
                .map_err(|e| RangeFailure::Io(path.clone(), e))?;
            if n == 0 {
                return Err(RangeFailure::Io(path, std::io::ErrorKind::UnexpectedEof.into()));
            }
            self.hasher.update(&buf[..n]).map_err(RangeFailure::Differs)?;
            left -= n as u64;
        }
        Ok(())
    }
}

/// Bytes read at a time when a resumed upload's prefix is hashed again.
const PREFIX_BUF: usize = 1 << 20;

/// Why an attachment check stopped an upload.
enum RangeFailure {
    /// An attachment's bytes differ from its signed digest.
    Differs(truc_core::CoreError),
    /// The `.part` could not be read back.
    Io(PathBuf, std::io::Error),
}

/// Where the store keeps upload `id` (`data_dir/uploads/<id>.part`, see
/// `truc_store::PayloadFiles`), to read a resumed upload's prefix back.
fn part_path(shared: &Shared, id: &str) -> PathBuf {
    shared.config.data_dir.join("uploads").join(format!("{id}.part"))
}

/// How a run of chunks ended.
enum Ended {
    /// The client closed the stream; everything it sent is written.
    Closed,
    /// A message other than a chunk arrived (everything before it is
    /// written); what it means is the caller's business.
    Other(Option<Part>),
    /// The chunks broke a rule; with `discard`, nothing of the upload may
    /// be kept.
    Refused { status: Status, discard: bool },
    /// The stream failed (the client went away); what came is written.
    Failed(Status),
}

/// A write step's result: the writer and ranges back, and whether the
/// bytes went to the `.part` (a store error, or a range that failed).
type Step = (
    PartWriter,
    Option<Ranges>,
    Result<(), Result<truc_store::StoreError, RangeFailure>>,
);

/// Append `chunk` to the `.part` and hash it into its attachment's range.
fn write_step((mut writer, mut ranges, _): Step, chunk: Bytes) -> Step {
    if let Err(e) = writer.append(&chunk) {
        return (writer, ranges, Err(Ok(e)));
    }
    if let Some(r) = ranges.as_mut() {
        if let Err(e) = r.hasher.update(&chunk) {
            return (writer, ranges, Err(Err(RangeFailure::Differs(e))));
        }
    }
    (writer, ranges, Ok(()))
}

/// Receive chunks into `writer` until something else arrives. At most
/// `size` bytes in all (with what the `.part` had): one more is refused at
/// once, `limit_name` saying where the size came from. Each chunk is
/// written and hashed on a blocking thread while the next one is received,
/// so memory stays at two chunks and no thread waits for the client (a
/// slow uploader holds none: the runtime's blocking threads are capped).
/// With `ranges`, each attachment's range is hashed too as its chunks are
/// written; an attachment whose bytes differ from its signed SHA-256 ends
/// the upload (refused, discarded) at its last byte.
async fn write_chunks(
    stream: &mut Streaming<UploadRequest>,
    writer: PartWriter,
    size: u64,
    limit_name: &str,
    ranges: Option<Ranges>,
) -> Result<(PartWriter, Option<RangeHasher>, Ended), Status> {
    let mut received = writer.written();
    // The first step hashes the prefix a resumed upload already has.
    let mut writing = tokio::task::spawn_blocking(move || {
        let mut ranges = ranges;
        let hashed = match ranges.as_mut() {
            Some(r) => r.hash_prefix().map_err(Err),
            None => Ok(()),
        };
        (writer, ranges, hashed)
    });
    let (ended, stopped) = loop {
        let msg = match stream.message().await {
            Ok(Some(msg)) => msg,
            Ok(None) => break (Ended::Closed, None),
            Err(e) => break (Ended::Failed(e), None),
        };
        let chunk = match msg.part {
            Some(Part::Chunk(chunk)) => chunk,
            other => break (Ended::Other(other), None),
        };
        if chunk.len() > MAX_UPLOAD_CHUNK {
            let status = Status::invalid_argument(format!("chunks are at most {MAX_UPLOAD_CHUNK} bytes"));
            break (Ended::Refused { status, discard: false }, None);
        }
        if received + chunk.len() as u64 > size {
            let status = Status::invalid_argument(format!(
                "payload is longer than the {size} bytes {limit_name}; upload discarded"
            ));
            break (Ended::Refused { status, discard: true }, None);
        }
        received += chunk.len() as u64;
        let step = (&mut writing).await.map_err(blocking_err)?;
        if step.2.is_err() {
            break (Ended::Closed, Some(step)); // its reason is below
        }
        writing = tokio::task::spawn_blocking(move || write_step(step, chunk));
    };
    let (writer, ranges, wrote) = match stopped {
        Some(step) => step,
        None => writing.await.map_err(blocking_err)?,
    };
    let hasher = ranges.map(|r| r.hasher);
    match wrote {
        Ok(()) => Ok((writer, hasher, ended)),
        Err(Ok(store)) => Err(status::from_store(store)),
        Err(Err(RangeFailure::Differs(e))) => Ok((
            writer,
            None,
            Ended::Refused {
                status: Status::invalid_argument(format!("{e}; the upload was discarded")),
                discard: true,
            },
        )),
        Err(Err(RangeFailure::Io(path, e))) => {
            tracing::warn!(path = %path.display(), error = %e, "reading back a resumed upload failed");
            Err(Status::unavailable(
                "the hub could not read back the bytes it has of this upload; retry later",
            ))
        }
    }
}

/// Check a complete `.part` against the signed size and digest and make it
/// the stored payload, or delete it and say why.
/// Store the document of a finished upload. If it is refused (quota,
/// unknown recipient, …), no document counts the payload the upload
/// stored: it is left to the collector.
async fn accept_upload(
    shared: &Shared,
    principal: truc_core::Principal,
    checked: truc_core::document::CheckedHeader,
    doc: truc_proto::v1::SignedDocument,
    size: u64,
) -> Result<Response<SendResponse>, Status> {
    let sha = checked.header.payload_sha256.clone();
    let accepted = super::axis::accept(shared, principal, checked, doc, true, size).await;
    if accepted.is_err() {
        if let Err(e) = shared.store.release_payload(sha).await {
            tracing::warn!(error = %e, "the payload of a refused upload is not marked for collection");
        }
    }
    accepted
}

async fn finish_part(files: &PayloadFiles, id: &str, writer: PartWriter, size: u64, sha: &[u8]) -> Result<(), Status> {
    let (files, id, sha) = (files.clone(), id.to_string(), sha.to_vec());
    let finished = tokio::task::spawn_blocking(move || files.finish(&id, writer, size, &sha))
        .await
        .map_err(blocking_err)?;
    finished.map_err(status::from_store)?.map_err(status::from_mismatch)
}

/// Delete a refused upload on a blocking thread.
async fn discard(writer: PartWriter) {
    let _ = tokio::task::spawn_blocking(move || writer.discard()).await;
}

/// Delete a refused upload, then refuse.
async fn refuse<T>(writer: PartWriter, status: Status) -> Result<T, Status> {
    discard(writer).await;
    Err(status)
}
