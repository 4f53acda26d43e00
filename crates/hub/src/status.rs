//! Errors to gRPC status, in one place. Messages say what was wrong and
//! never carry internal details.

use tonic::Status;
use truc_core::CoreError;
use truc_store::{StoreError, UploadMismatch};

/// A refused document or value.
pub(crate) fn from_core(e: CoreError) -> Status {
    match e {
        CoreError::SenderMismatch(_) => Status::permission_denied(e.to_string()),
        _ => Status::invalid_argument(e.to_string()),
    }
}

/// A store failure.
pub(crate) fn from_store(e: StoreError) -> Status {
    match e {
        StoreError::UnknownAgency(_) | StoreError::AgencyInactive { .. } => Status::failed_precondition(e.to_string()),
        StoreError::Conflict { .. } | StoreError::AlreadyDone(_) => Status::already_exists(e.to_string()),
        StoreError::UnknownDelivery(_) | StoreError::UnknownDocument { .. } => Status::not_found(e.to_string()),
        StoreError::NotEntitled(_) => Status::permission_denied(e.to_string()),
        StoreError::Precondition(_) => Status::failed_precondition(e.to_string()),
        StoreError::InvalidArgument(_) => Status::invalid_argument(e.to_string()),
        StoreError::QuotaExceeded(_) | StoreError::DiskFull(_) => Status::resource_exhausted(e.to_string()),
        StoreError::Closed => Status::unavailable("the hub is shutting down"),
        e @ StoreError::Unavailable { .. } => {
            tracing::error!(error = %truc_core::error_chain(&e), "storage unavailable");
            Status::unavailable("storage unavailable; nothing was stored, retry later")
        }
        StoreError::OutcomeUnknown(detail) => {
            tracing::error!(%detail, "a commit failed after reaching the log");
            let mut st = Status::unavailable(
                "storage failed while committing: the outcome is unknown (the request may have been stored); \
                 retry with the same document id, and a stored one is answered as a duplicate",
            );
            st.metadata_mut()
                .insert("truc-outcome", tonic::metadata::MetadataValue::from_static("unknown"));
            st
        }
        StoreError::Io { .. } => {
            tracing::error!(error = %e, "storage unavailable");
            Status::unavailable("storage unavailable; nothing was stored, retry later")
        }
        StoreError::Damaged(d) => {
            tracing::error!(damage = %d, "the store is damaged");
            Status::unavailable("the hub's store is damaged and refuses changes; operators have been alerted")
        }
        StoreError::DocumentDamaged { hub_document_id, what } => {
            tracing::error!(hub_document_id, %what, "a stored document is damaged");
            Status::data_loss(format!(
                "the hub's stored copy of document {hub_document_id} is damaged; it is quarantined and its sender \
                 asked to send it again"
            ))
        }
        e @ StoreError::Corrupt { .. } => {
            tracing::error!(error = %truc_core::error_chain(&e), "stored data is corrupt");
            Status::internal("stored data is corrupt; operators have been alerted in the hub's log")
        }
        _ => Status::internal("storage error"),
    }
}

/// An upload whose bytes differ from its signed header (it has been
/// deleted).
pub(crate) fn from_mismatch(m: UploadMismatch) -> Status {
    match m {
        UploadMismatch::Size { got, want } => Status::invalid_argument(format!(
            "payload is {got} bytes, the signed header states {want}; the upload was discarded"
        )),
        UploadMismatch::Digest => Status::invalid_argument(
            "payload SHA-256 differs from the signed digest; the upload was discarded and nothing was stored",
        ),
    }
}
