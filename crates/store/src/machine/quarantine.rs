//! Quarantine, in the writer: a document whose stored copy is damaged (its
//! body fails its checksum or digests, or its payload file its SHA-256) must
//! not block its recipients' queues for ever, and its sender must learn
//! that the hub lost it.
//!
//! Quarantining a document dead-letters its queued copies (reason
//! `CORRUPT`, one `DEAD_LETTERED` receipt each), marks its record, writes a
//! `QUARANTINED` receipt, and puts that receipt in the sender's outbox as a
//! status notice (the mechanism status reports use), asking for the
//! document again. A damaged payload file is first moved out of
//! `payloads/` into `quarantine/`, so that it is never served again and a
//! new upload of the same payload is taken (an upload that finds the file
//! skips the bytes).
//!
//! Restoring: the sender sends the document again with the same document
//! id. The idempotency record (`I`) still names the quarantined document,
//! so instead of answering "duplicate" with a body the hub no longer has,
//! `documents::send` calls [`restore`]: the new body is stored, the record
//! points at it (and at its header, re-signed or not: the content must be
//! the same), the copies dead-lettered as corrupt go back to the outbox
//! under their delivery ids, and a `RESTORED` receipt answers the Send.

use prost::Message;
use truc_core::AgencyCode;
use truc_proto::v1::{Receipt, ReceiptEvent, TransportState};

use super::batch::Batch;
use super::copies::{document, document_receipt};
use super::documents::enqueue;

use crate::keys::{self, tag};
use crate::records::{DocumentRecord, OutboxEntry, RecipientState};
use crate::{DeadLetterReason, NewDocument, Quarantined, StoreError};

/// What the notice to the sender says.
const RESEND: &str = "the hub's stored copy of this document is damaged and was quarantined; send the document \
                      again with the same document_id and the hub will deliver it to the recipients that have not \
                      acknowledged it";

/// Each recipient of `hub_id` with its transport state.
fn recipients(p: &Batch<'_>, hub_id: u64) -> Result<Vec<(String, RecipientState)>, StoreError> {
    let prefix = keys::recipients_prefix(hub_id);
    p.scan(&prefix)?
        .into_iter()
        .map(|(k, v)| {
            let agency = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
            let s = RecipientState::decode(v.as_slice()).map_err(|e| StoreError::corrupt_from("recipient state", e))?;
            Ok((agency, s))
        })
        .collect()
}

fn agency_code(code: &str) -> Result<AgencyCode, StoreError> {
    AgencyCode::parse(code).map_err(|e| StoreError::corrupt_from(format!("agency code {code}"), e))
}

/// Quarantine document `hub_id` (see the module docs).
pub(crate) fn quarantine(p: &mut Batch<'_>, hub_id: u64, what: &str, actor: &str) -> Result<Quarantined, StoreError> {
    let mut rec = document(p, hub_id)?;
    let newly = rec.quarantined_at_unix_ms == 0;
    let mut dead_lettered = Vec::new();
    for (agency, mut state) in recipients(p, hub_id)? {
        if state.state != TransportState::Queued as i32 {
            continue;
        }
        let key = keys::queue_item(tag::OUTBOX, &agency, state.delivery_id);
        let Some(mut entry) = p.get_msg::<OutboxEntry>(&key, "outbox entry")? else {
            continue;
        };
        if entry.hub_id != hub_id || entry.status_receipt.is_some() {
            continue;
        }
        p.del(key);
        entry.dead_reason = DeadLetterReason::Corrupt as i32;
        p.put(
            keys::queue_item(tag::DEAD, &agency, state.delivery_id),
            entry.encode_to_vec(),
        );
        p.add_queued(&agency, -1, entry.bytes);
        state.state = TransportState::DeadLettered as i32;
        state.state_at_unix_ms = p.time_unix_ms;
        super::deadlines::put_state(p, hub_id, &agency, &state, Some(rec.due_date_unix_ms))?;
        let code = agency_code(&agency)?;
        let mut r = document_receipt(ReceiptEvent::DeadLettered, actor, &rec, &code, entry.attempts);
        r.detail = format!("corrupt: {what}");
        p.append_receipt(r)?;
        dead_lettered.push((code, state.delivery_id));
    }
    if !newly && dead_lettered.is_empty() {
        return Ok(Quarantined::default());
    }
    rec.quarantined_at_unix_ms = p.time_unix_ms;
    rec.quarantine_reason = what.to_string();
    p.put(keys::document(hub_id), rec.encode_to_vec());
    let index = p.append_receipt(Receipt {
        event: ReceiptEvent::Quarantined as i32,
        actor: actor.to_string(),
        from: rec.from.clone(),
        document_id: rec.document_id.clone(),
        hub_document_id: hub_id,
        header_sha256: rec.header_sha256.clone(),
        detail: format!("{what}; {} queued copies dead-lettered", dead_lettered.len()),
        description: RESEND.to_string(),
        ..Default::default()
    })?;
    let mut notify = Vec::new();
    if newly {
        // The sender learns it on its Receive stream, like a status.
        enqueue(p, &rec.from, hub_id, rec.priority, Some(index), 0);
        notify.push(agency_code(&rec.from)?);
    }
    Ok(Quarantined {
        newly,
        dead_lettered,
        notify,
    })
}

/// The sender sent quarantined document `rec` again (same id, same
/// content): store the new body, put the copies dead-lettered as corrupt
/// back in the outbox, record `RESTORED`. Returns the receipt's index and
/// the agencies that got copies back.
pub(crate) fn restore(
    p: &mut Batch<'_>,
    mut rec: DocumentRecord,
    doc: NewDocument,
) -> Result<(u64, Vec<AgencyCode>), StoreError> {
    let hub_id = rec.hub_id;
    let d = doc.document;
    if p.bodies.inline() {
        if !rec.external_payload {
            p.put(keys::payload(&rec.payload_sha256), d.payload);
        }
        rec.body = Vec::new();
        rec.header = d.header;
        rec.signature = d.signature;
        rec.signer_chain = d.signer_chain;
    } else {
        let mut body = d;
        if rec.external_payload {
            body.payload = Vec::new();
        }
        rec.body = p.bodies.push(&body.encode_to_vec());
        rec.header = Vec::new();
        rec.signature = Vec::new();
        rec.signer_chain = Vec::new();
    }
    rec.header_sha256 = doc.header_sha256.to_vec();
    rec.quarantined_at_unix_ms = 0;
    rec.quarantine_reason = String::new();
    p.put(keys::document(hub_id), rec.encode_to_vec());
    let mut notify = Vec::new();
    for (agency, mut state) in recipients(p, hub_id)? {
        if state.state != TransportState::DeadLettered as i32 {
            continue;
        }
        let dead = keys::queue_item(tag::DEAD, &agency, state.delivery_id);
        let Some(mut entry) = p.get_msg::<OutboxEntry>(&dead, "dead letter")? else {
            continue;
        };
        if entry.hub_id != hub_id || entry.dead_reason != DeadLetterReason::Corrupt as i32 {
            continue;
        }
        p.del(dead);
        entry.attempts = 0;
        entry.dead_reason = 0;
        p.put(
            keys::queue_item(tag::OUTBOX, &agency, state.delivery_id),
            entry.encode_to_vec(),
        );
        p.add_queued(&agency, 1, entry.bytes);
        state.state = TransportState::Queued as i32;
        state.attempts = 0;
        state.state_at_unix_ms = p.time_unix_ms;
        super::deadlines::put_state(p, hub_id, &agency, &state, Some(rec.due_date_unix_ms))?;
        let code = agency_code(&agency)?;
        let mut r = document_receipt(ReceiptEvent::Redriven, &doc.actor.uri(), &rec, &code, 0);
        r.detail = "restored: the sender sent the quarantined document again".into();
        p.append_receipt(r)?;
        notify.push(code);
    }
    let index = p.append_receipt(Receipt {
        event: ReceiptEvent::Restored as i32,
        actor: doc.actor.uri(),
        from: rec.from.clone(),
        document_id: rec.document_id.clone(),
        hub_document_id: hub_id,
        header_sha256: rec.header_sha256.clone(),
        detail: format!("{} dead-lettered copies back in the outbox", notify.len()),
        ..Default::default()
    })?;
    Ok((index, notify))
}
