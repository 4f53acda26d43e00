//! Header first: `UploadStart` (the signed document, checked before any
//! byte is taken), then chunks. The digest is known from the start, so a
//! payload the hub already has needs no bytes at all.

use std::sync::Arc;

use tonic::{Response, Status, Streaming};
use truc_core::{AgencyCode, Principal};
use truc_proto::v1::{SendResponse, UploadRequest, UploadStart};

use super::{
    blocking_err, check_room, check_size, finish_part, header_first_id, open_part, refuse, verify, write_chunks, Ended,
    Ranges,
};
use crate::{status, Shared};

pub(super) async fn upload(
    shared: &Arc<Shared>,
    principal: Principal,
    caller: AgencyCode,
    start: UploadStart,
    mut stream: Streaming<UploadRequest>,
) -> Result<Response<SendResponse>, Status> {
    let doc = start
        .document
        .ok_or_else(|| Status::invalid_argument("UploadStart.document is missing"))?;
    if !doc.payload.is_empty() {
        return Err(Status::invalid_argument(
            "in an upload the payload travels in chunks, not in the document",
        ));
    }
    let (doc, checked) = verify(shared, caller, doc).await?;
    let checked = checked.map_err(status::from_core)?;
    let size = checked.header.payload_size;
    check_size(shared, size)?;
    let sha = checked.header.payload_sha256.clone();
    let id = header_first_id(&checked.from, &checked.header.document_id, &sha);
    let files = shared.payloads.clone();
    check_room(shared, size).await?;
    // What its Send would refuse (a recipient gone, an outbox full) is
    // refused now, before the bytes travel.
    shared
        .store
        .precheck_send(
            checked.from.clone(),
            Some(checked.header.document_id.clone()),
            crate::forward::local_recipients(shared, &checked.to),
            size,
        )
        .await
        .map_err(status::from_store)?;
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
        let writer = open_part(&files, &id, start.offset).await?;
        let ranges = Ranges::expecting(shared, &checked.header, &id, writer.written());
        let (writer, hasher, ended) =
            write_chunks(&mut stream, writer, size, "the signed header states", ranges).await?;
        match ended {
            Ended::Closed => {}
            Ended::Other(_) => return Err(Status::invalid_argument("only chunks may follow UploadStart")),
            Ended::Failed(e) => return Err(e),
            Ended::Refused { status, discard: true } => return refuse(writer, status).await,
            Ended::Refused { status, .. } => return Err(status),
        }
        if writer.written() < size {
            // A clean end before the last byte: keep what came, for a resume.
            let got = writer.written();
            return Err(Status::failed_precondition(format!(
                "upload incomplete: the hub has {got} of the {size} bytes; resume from offset {got}"
            )));
        }
        if let Some(hasher) = hasher {
            // Every attachment was checked as its last byte was written;
            // this checks the empty ones at the end.
            if let Err(e) = hasher.finish() {
                return refuse(writer, status::from_core(e)).await;
            }
        }
        finish_part(&files, &id, writer, size, &sha).await?;
    }
    let accepted = super::accept_upload(shared, principal, checked, doc, size).await;
    drop(pin);
    accepted
}
