//! What the store's tests share: a verified document as the hub hands it
//! to the store.

use truc_core::{AgencyCode, Principal};
use truc_proto::v1::{BusinessType, Priority, SignedDocument};
use truc_store::NewDocument;

/// An agency code the test knows to be valid.
pub(crate) fn code(s: &str) -> AgencyCode {
    AgencyCode::parse(s).unwrap()
}

/// A new document from `from` with header bytes `header` (its digest is
/// also its content's: a document differs from another by its header) and
/// an inline `payload`.
pub(crate) fn new_document(
    from: &str,
    id: &str,
    to: &[&str],
    priority: Priority,
    header: Vec<u8>,
    payload: &[u8],
) -> NewDocument {
    NewDocument {
        from: code(from),
        document_id: id.into(),
        to: to.iter().map(|c| code(c)).collect(),
        priority,
        header_sha256: truc_core::sha256(&header),
        content_sha256: truc_core::sha256(&header),
        document: SignedDocument {
            header,
            payload: payload.to_vec(),
            ..Default::default()
        },
        actor: Principal::Agency(code(from)),
        business_type: BusinessType::New,
        reference_document_id: String::new(),
        business_reason: String::new(),
        receiver_changes: Vec::new(),
        replacements: Vec::new(),
        subject: String::new(),
        delivery_deadline_unix_ms: 0,
        due_date_unix_ms: 0,
        payload_external: false,
        payload_sha256: truc_core::sha256(payload),
        remote: Vec::new(),
        arrived_via: None,
        trace: Vec::new(),
        payload_size: payload.len() as u64,
    }
}
