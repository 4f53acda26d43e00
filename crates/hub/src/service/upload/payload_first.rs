//! Payload first: `UploadOpen` (a client-chosen upload id and the size the
//! header will state), chunks, then `UploadFinish` with the signed
//! document. The sender hashes as it sends, so its file is read once; the
//! hub learns the digest only at the end, which changes when the checks
//! happen but not what they guarantee:
//!
//! - size: the declared size is checked against the maximum and the free
//!   disk before any byte, a stream past it is refused (and deleted) at the
//!   chunk that passes it, and the signed size must equal it at the end;
//! - sender: the mTLS agency names the `.part`, and the header must be
//!   signed by that same agency (as for every document);
//! - digest: the hub hashes what it writes; a `.part` whose size or SHA-256
//!   differs from the signed header, or whose header is refused, is deleted.

use std::sync::Arc;

use tonic::{Response, Status, Streaming};
use truc_core::attachments::{self, RangeHasher};
use truc_core::{AgencyCode, Principal};
use truc_proto::v1::upload_request::Part;
use truc_proto::v1::{DocumentHeader, SendResponse, UploadOpen, UploadRequest};

use super::{
    check_room, check_size, check_upload_id, finish_part, open_part, payload_first_id, refuse, verify, write_chunks,
    Ended, Ranges,
};
use crate::{status, Shared};

pub(super) async fn upload(
    shared: &Arc<Shared>,
    principal: Principal,
    caller: AgencyCode,
    open: UploadOpen,
    mut stream: Streaming<UploadRequest>,
) -> Result<Response<SendResponse>, Status> {
    check_upload_id(&open.upload_id)?;
    let size = open.size;
    if size == 0 {
        return Err(Status::invalid_argument(
            "UploadOpen.size is required: the payload's size as the signed header will state it",
        ));
    }
    check_size(shared, size)?;
    if open.offset > size {
        return Err(Status::invalid_argument(format!(
            "UploadOpen.offset {} is past the declared size {size}",
            open.offset
        )));
    }
    check_room(shared, size).await?;
    if !open.to.is_empty() {
        // The recipients the header will name: what its Send would refuse
        // for them is refused now, before the bytes travel.
        let to = open
            .to
            .iter()
            .map(|c| {
                AgencyCode::parse(c)
                    .map_err(|_| Status::invalid_argument(format!("UploadOpen.to: {c:?} is not an agency code")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        shared
            .store
            .precheck_send(
                caller.clone(),
                None,
                crate::forward::local_recipients(shared, &to),
                size,
            )
            .await
            .map_err(status::from_store)?;
    }
    let declared = &open.attachment_sizes;
    if !declared.is_empty() && declared.iter().try_fold(0u64, |a, s| a.checked_add(*s)) != Some(size) {
        return Err(Status::invalid_argument(format!(
            "UploadOpen.attachment_sizes add up to {}, not to the declared size {size}",
            declared.iter().fold(0u64, |a, s| a.saturating_add(*s))
        )));
    }
    let files = shared.payloads.clone();
    let id = payload_first_id(&caller, &open.upload_id);
    let writer = open_part(&files, &id, open.offset).await?;
    let ranges = Ranges::declared(shared, declared, &id, writer.written());
    let (writer, hasher, ended) = write_chunks(&mut stream, writer, size, "declared in UploadOpen", ranges).await?;
    let doc = match ended {
        Ended::Other(Some(Part::Finish(finish))) => finish.document,
        Ended::Closed => {
            // A clean end without the header: keep what came, for a resume.
            let got = writer.written();
            return Err(Status::failed_precondition(format!(
                "upload incomplete: the hub has {got} of the {size} bytes and no UploadFinish; \
                 resume from offset {got}"
            )));
        }
        Ended::Other(_) => {
            return Err(Status::invalid_argument(
                "only chunks, then UploadFinish, may follow UploadOpen",
            ))
        }
        Ended::Failed(e) => return Err(e),
        Ended::Refused { status, discard: true } => return refuse(writer, status).await,
        Ended::Refused { status, .. } => return Err(status),
    };
    // From here on a refusal deletes the upload: the client said it was
    // complete, and bytes without an acceptable header are kept for nobody.
    match stream.message().await {
        Ok(None) => {}
        Ok(Some(_)) => return refuse(writer, Status::invalid_argument("nothing may follow UploadFinish")).await,
        Err(e) => return Err(e),
    }
    let Some(doc) = doc else {
        return refuse(writer, Status::invalid_argument("UploadFinish.document is missing")).await;
    };
    if !doc.payload.is_empty() {
        return refuse(
            writer,
            Status::invalid_argument("in an upload the payload travels in chunks, not in the document"),
        )
        .await;
    }
    let (doc, checked) = match verify(shared, caller, doc).await? {
        (doc, Ok(checked)) => (doc, checked),
        (_, Err(e)) => return refuse(writer, status::from_core(e)).await,
    };
    if checked.header.payload_size != size {
        let signed = checked.header.payload_size;
        return refuse(
            writer,
            Status::invalid_argument(format!(
                "the signed header states {signed} bytes, UploadOpen declared {size}; the upload was discarded"
            )),
        )
        .await;
    }
    if let Err(status) = check_attachments(&checked.header, declared, hasher) {
        return refuse(writer, status).await;
    }
    let sha = checked.header.payload_sha256.clone();
    // Held until the document is stored, as for a header-first upload: the
    // collector leaves a pinned payload alone, so a stored copy that this
    // upload turns out to duplicate stays, and a new one is not collected
    // before its document counts for it.
    let pin = shared
        .store
        .pin_payload(sha.clone())
        .await
        .map_err(status::from_store)?;
    finish_part(&files, &id, writer, size, &sha).await?;
    let accepted = super::accept_upload(shared, principal, checked, doc, size).await;
    drop(pin);
    accepted
}

/// The signed attachments against what the upload declared and the hub
/// hashed: with two or more, UploadOpen must have declared their sizes, and
/// each range's SHA-256 must be the signed one (the first that differs is
/// named). With one or none, the whole payload's digest checks them.
fn check_attachments(header: &DocumentHeader, declared: &[u64], hasher: Option<RangeHasher>) -> Result<(), Status> {
    if attachments::whole_payload_suffices(header) {
        if declared.len() > 1 {
            return Err(Status::invalid_argument(format!(
                "UploadOpen declared {} attachment sizes, the signed header lists {}; the upload was discarded",
                declared.len(),
                header.attachments.len()
            )));
        }
        return Ok(());
    }
    let signed = attachments::sizes(header);
    if declared != signed.as_slice() {
        return Err(Status::invalid_argument(if declared.is_empty() {
            format!(
                "the signed header lists {} attachments: declare their sizes in UploadOpen.attachment_sizes so the \
                 hub can check each as it arrives; the upload was discarded",
                signed.len()
            )
        } else {
            format!(
                "the signed header's attachment sizes {signed:?} differ from those UploadOpen declared \
                 {declared:?}; the upload was discarded"
            )
        }));
    }
    let hasher = hasher.ok_or_else(|| Status::internal("attachment digests were not computed"))?;
    let digests = hasher.finish().map_err(status::from_core)?;
    attachments::check_digests(header, &digests)
        .map_err(|e| Status::invalid_argument(format!("{e}; the upload was discarded")))
}
