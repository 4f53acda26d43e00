//! Printing: tables for people, JSON for scripts, and error text.

use serde_json::{json, Value};
use truc_proto::v1::{DocumentHeader, ProvenReceipt, SendResponse};

pub(crate) fn priority_name(p: i32) -> &'static str {
    truc_core::priority::name(p)
}

pub(crate) fn header_json(h: &DocumentHeader) -> Value {
    json!({
        "from": h.from,
        "to": h.to,
        "document_id": h.document_id,
        "subject": h.subject,
        "code_number": h.code_number,
        "code_notation": h.code_notation,
        "document_type": h.document_type,
        "priority": h.priority,
        "business_type": h.business_type,
        "reference_document_id": h.reference_document_id,
        "due_date_unix_ms": h.due_date_unix_ms,
        "signed_at_unix_ms": h.signed_at_unix_ms,
        "payload_sha256": truc_core::hex(&h.payload_sha256),
        "payload_size": h.payload_size,
        "content_type": h.content_type,
        "file_name": h.file_name,
    })
}

pub(crate) fn receipt_json(r: &ProvenReceipt) -> Value {
    let head = r.tree_head.as_ref();
    json!({
        "receipt": truc_core::hex(&r.receipt),
        "tree_head": head.map(|h| truc_core::hex(&h.tree_head)),
        "tree_head_signature": head.map(|h| truc_core::hex(&h.signature)),
        "inclusion_proof": r.inclusion_proof.iter().map(|p| truc_core::hex(p)).collect::<Vec<_>>(),
    })
}

pub(crate) fn acceptance_json(document_id: &str, r: &SendResponse) -> Value {
    json!({
        "document_id": document_id,
        "hub_document_id": r.hub_document_id,
        "accepted_at_unix_ms": r.accepted_at_unix_ms,
        "duplicate": r.duplicate,
        "receipt": r.receipt.as_ref().map(receipt_json),
    })
}

/// Unix ms as `YYYY-MM-DD hh:mm:ss UTC`.
pub(crate) fn time(ms: i64) -> String {
    let date = truc_core::document::date_for_document_id(ms).replace('/', "-");
    let secs = ms.div_euclid(1000).rem_euclid(86_400);
    format!("{date} {:02}:{:02}:{:02} UTC", secs / 3600, secs / 60 % 60, secs % 60)
}

/// Bytes for people: `1.5 GiB`.
pub(crate) fn human_bytes(bytes: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    format!("{v:.1} {}", UNITS[i])
}
