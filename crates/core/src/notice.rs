//! Status notices read from their signed receipts.

use prost::Message;
use truc_proto::v1::{ProvenReceipt, Receipt, StatusNotice};

/// Who reported a status: the agency acting; for a status recorded from
/// another hub's report (federation: the actor is that hub), the recipient
/// it is about, or the sender for the sender's own status (13).
fn reporter(r: &Receipt) -> String {
    if let Some(agency) = r.actor.strip_prefix("urn:truc:agency:") {
        return agency.to_string();
    }
    if r.actor.starts_with("urn:truc:hub:") {
        return if r.recipient.is_empty() {
            r.from.clone()
        } else {
            r.recipient.clone()
        };
    }
    r.actor.clone()
}

/// The status notice a STATUS_REPORTED receipt states (the notice's own
/// fields are unsigned copies of these), or `None` if the receipt does not
/// decode. The hub builds the notices it delivers with it, and `truc inbox`
/// shows what the signed bytes say with it.
pub fn from_receipt(proven: &ProvenReceipt) -> Option<StatusNotice> {
    let r = Receipt::decode(proven.receipt.as_slice()).ok()?;
    let reporter = reporter(&r);
    Some(StatusNotice {
        document_from: r.from,
        document_id: r.document_id,
        hub_document_id: r.hub_document_id,
        reporter,
        code: r.status_code,
        description: r.description,
        staff: r.staff,
        time_unix_ms: r.time_unix_ms,
        receipt: Some(proven.clone()),
    })
}
