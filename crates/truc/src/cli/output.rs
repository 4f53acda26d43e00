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
        "redirects": r.redirects.iter().map(|x| json!({"addressed": x.addressed, "delivered_to": x.delivered_to})).collect::<Vec<_>>(),
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

/// A receipt event for people, one spelling in every table (`trace`,
/// `audit receipts`): `lease-expired`.
pub(crate) fn event(e: i32) -> String {
    truc_client::audit::event_name(e).to_ascii_lowercase().replace('_', "-")
}

/// An actor for people, one spelling in every table: the principal's URN
/// without `urn:truc:` (`agency:000.00.00.G22`, `operator:ops`); JSON
/// keeps the whole URN.
pub(crate) fn actor(urn: &str) -> &str {
    urn.strip_prefix("urn:truc:").unwrap_or(urn)
}

/// A delivery id for people: `<band>-<sequence>` (`2-17`), where the band
/// is 4 − priority (0 hỏa tốc hẹn giờ … 4 thường) and the sequence the
/// hub's counter: short to read and type. `parse_handle` reads it back, and
/// the full number too.
pub(crate) fn handle(delivery_id: u64) -> String {
    format!("{}-{}", delivery_id >> 48, delivery_id & ((1 << 48) - 1))
}

/// A handle (`2-17`) or a full delivery id, as a delivery id.
pub(crate) fn parse_handle(s: &str) -> Option<u64> {
    match s.split_once('-') {
        Some((band, seq)) => {
            let band: u64 = band.parse().ok()?;
            let seq: u64 = seq.parse().ok()?;
            (band <= 0xFFFF && seq < (1 << 48)).then_some(band << 48 | seq)
        }
        None => s.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_round_trip_and_full_ids_still_parse() {
        let id = truc_store_delivery_id(4, 17);
        assert_eq!(handle(id), "0-17");
        assert_eq!(parse_handle("0-17"), Some(id));
        assert_eq!(parse_handle(&id.to_string()), Some(id));
        assert_eq!(parse_handle("x-1"), None);
        assert_eq!(parse_handle("000.00.00.G22"), None);
    }

    fn truc_store_delivery_id(priority: u64, seq: u64) -> u64 {
        (4 - priority) << 48 | seq
    }
}
