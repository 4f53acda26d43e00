//! Status notices read from their signed receipts.

use prost::Message;
use truc_proto::v1::{ProvenReceipt, Receipt, StatusNotice};

/// The status notice a STATUS_REPORTED receipt states (the notice's own
/// fields are unsigned copies of these), or `None` if the receipt does not
/// decode. The hub builds the notices it delivers with it, and `truc inbox`
/// shows what the signed bytes say with it.
pub fn from_receipt(proven: &ProvenReceipt) -> Option<StatusNotice> {
    let r = Receipt::decode(proven.receipt.as_slice()).ok()?;
    Some(StatusNotice {
        document_from: r.from,
        document_id: r.document_id,
        hub_document_id: r.hub_document_id,
        reporter: r.actor.strip_prefix("urn:truc:agency:").unwrap_or(&r.actor).to_string(),
        code: r.status_code,
        description: r.description,
        staff: r.staff,
        time_unix_ms: r.time_unix_ms,
        receipt: Some(proven.clone()),
    })
}
