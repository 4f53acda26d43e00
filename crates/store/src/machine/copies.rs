//! The copies in the outboxes: acknowledgements, leases that run out,
//! dead letters redriven or purged, and the lookups every rule shares.

use prost::Message;
use truc_core::AgencyCode;
use truc_proto::names::Wire;
use truc_proto::v1::{AgencyState, Receipt, ReceiptEvent, TransportState};

use super::batch::Batch;
use super::{Env, HUB_ACTOR};
use crate::keys::{self, tag};
use crate::records::{DocumentRecord, OutboxEntry, RecipientState};
use crate::{ExpireOutcome, StoreError};

pub(crate) fn require_active(p: &Batch<'_>, env: &dyn Env, code: &AgencyCode) -> Result<(), StoreError> {
    let changed = p.agencies.iter().rev().find(|a| a.code == code.as_str()).cloned();
    match changed.or_else(|| env.agency(code.as_str())) {
        None => Err(StoreError::UnknownAgency(code.to_string())),
        Some(a) if a.state != AgencyState::Active as i32 => Err(StoreError::AgencyInactive {
            code: code.to_string(),
            state: Wire::from(a.state),
        }),
        Some(_) => Ok(()),
    }
}

pub(crate) fn document(p: &Batch<'_>, hub_id: u64) -> Result<DocumentRecord, StoreError> {
    p.get_msg(&keys::document(hub_id), "document")?
        .ok_or_else(|| StoreError::corrupt(format!("document {hub_id}")))
}

pub(crate) fn recipient_state(p: &Batch<'_>, hub_id: u64, code: &str) -> Result<Option<RecipientState>, StoreError> {
    p.get_msg(&keys::recipient(hub_id, code), "recipient state")
}

/// Change one recipient's transport state (and its attempts) if it has a
/// state record (status notices have none).
fn set_transport(
    p: &mut Batch<'_>,
    hub_id: u64,
    code: &str,
    state: TransportState,
    attempts: u32,
) -> Result<(), StoreError> {
    if let Some(mut s) = recipient_state(p, hub_id, code)? {
        // Only copies in an outbox or the dead letters get here: queued,
        // delivered or dead-lettered before and after.
        s.state = state as i32;
        s.attempts = attempts;
        s.state_at_unix_ms = p.time_unix_ms;
        super::deadlines::put_transport(p, hub_id, code, &s);
    }
    Ok(())
}

/// The status code a notice carries, read from its receipt.
fn notice_code(p: &Batch<'_>, entry: &OutboxEntry) -> Result<i32, StoreError> {
    let Some(index) = entry.status_receipt else {
        return Ok(0);
    };
    let Some(value) = p.get(&keys::receipt(index))? else {
        return Ok(0);
    };
    let r = Receipt::decode(super::leaves::receipt(&value)?).map_err(|e| StoreError::corrupt_from("receipt", e))?;
    Ok(r.status_code)
}

pub(crate) fn ack(p: &mut Batch<'_>, agency: &AgencyCode, ids: &[u64], actor: &str) -> Result<u32, StoreError> {
    // Check every id first: an unknown id refuses the whole request.
    let mut fresh = Vec::with_capacity(ids.len());
    for &id in ids {
        let key = keys::queue_item(tag::OUTBOX, agency.as_str(), id);
        match p.get_msg::<OutboxEntry>(&key, "outbox entry")? {
            Some(entry) => {
                if !fresh.iter().any(|(i, _, _)| *i == id) {
                    fresh.push((id, key, entry));
                }
            }
            None if p.contains(&keys::queue_item(tag::ACKED, agency.as_str(), id))? => {}
            None => return Err(StoreError::UnknownDelivery(id)),
        }
    }
    let n = fresh.len() as u32;
    for (id, key, entry) in fresh {
        let rec = document(p, entry.hub_id)?;
        let status_code = notice_code(p, &entry)?;
        p.del(key);
        p.put(
            keys::queue_item(tag::ACKED, agency.as_str(), id),
            entry.hub_id.to_be_bytes().to_vec(),
        );
        p.add_queued(agency.as_str(), -1, entry.bytes);
        if entry.status_receipt.is_none() {
            set_transport(
                p,
                entry.hub_id,
                agency.as_str(),
                TransportState::Delivered,
                entry.attempts,
            )?;
            super::payloads::add_ref(p, &rec, -1)?;
        }
        let mut r = document_receipt(ReceiptEvent::Delivered, actor, &rec, agency, entry.attempts);
        r.status_code = status_code;
        let index = p.append_receipt(r)?;
        if entry.status_receipt.is_none() {
            super::peers::report_back(p, &rec, index);
        }
    }
    Ok(n)
}

pub(crate) fn expire(
    p: &mut Batch<'_>,
    agency: &AgencyCode,
    id: u64,
    max_attempts: u32,
) -> Result<ExpireOutcome, StoreError> {
    let key = keys::queue_item(tag::OUTBOX, agency.as_str(), id);
    let Some(mut entry) = p.get_msg::<OutboxEntry>(&key, "outbox entry")? else {
        return Ok(ExpireOutcome::Gone);
    };
    let rec = document(p, entry.hub_id)?;
    let status_code = notice_code(p, &entry)?;
    entry.attempts += 1;
    let attempts = entry.attempts;
    let (event, outcome) = if attempts >= max_attempts {
        p.del(key);
        entry.dead_reason = crate::DeadLetterReason::Attempts as i32;
        p.put(keys::queue_item(tag::DEAD, agency.as_str(), id), entry.encode_to_vec());
        p.add_queued(agency.as_str(), -1, entry.bytes);
        if entry.status_receipt.is_none() {
            set_transport(p, entry.hub_id, agency.as_str(), TransportState::DeadLettered, attempts)?;
        }
        (ReceiptEvent::DeadLettered, ExpireOutcome::DeadLettered { attempts })
    } else {
        p.put(key, entry.encode_to_vec());
        if entry.status_receipt.is_none() {
            set_transport(p, entry.hub_id, agency.as_str(), TransportState::Queued, attempts)?;
        }
        (ReceiptEvent::LeaseExpired, ExpireOutcome::Requeued { attempts })
    };
    let mut r = document_receipt(event, HUB_ACTOR, &rec, agency, attempts);
    r.status_code = status_code;
    let index = p.append_receipt(r)?;
    if event == ReceiptEvent::DeadLettered && entry.status_receipt.is_none() {
        super::peers::report_back(p, &rec, index);
    }
    Ok(outcome)
}

pub(crate) fn document_receipt(
    event: ReceiptEvent,
    actor: &str,
    rec: &DocumentRecord,
    recipient: &AgencyCode,
    attempts: u32,
) -> Receipt {
    Receipt {
        event: event as i32,
        actor: actor.to_string(),
        from: rec.from.clone(),
        document_id: rec.document_id.clone(),
        hub_document_id: rec.hub_id,
        header_sha256: rec.header_sha256.clone(),
        recipient: recipient.to_string(),
        attempts,
        ..Default::default()
    }
}

/// The dead letters of `agency` named by `ids` (all when empty), checked:
/// an unknown id refuses the request.
fn dead_letters(p: &Batch<'_>, agency: &AgencyCode, ids: &[u64]) -> Result<Vec<(u64, OutboxEntry)>, StoreError> {
    let mut out = Vec::new();
    if ids.is_empty() {
        for kv in p.scan(&keys::queue_prefix(tag::DEAD, agency.as_str()))? {
            let (k, v) = kv;
            let id = keys::queue_item_id(&k).ok_or_else(|| StoreError::corrupt("dead letter key"))?;
            let e = OutboxEntry::decode(v.as_slice()).map_err(|e| StoreError::corrupt_from("dead letter", e))?;
            out.push((id, e));
        }
        return Ok(out);
    }
    for &id in ids {
        let e = p
            .get_msg::<OutboxEntry>(&keys::queue_item(tag::DEAD, agency.as_str(), id), "dead letter")?
            .ok_or_else(|| StoreError::InvalidArgument(format!("{agency} has no dead letter {id}")))?;
        out.push((id, e));
    }
    Ok(out)
}

/// Dead letters back into the outbox, attempts reset, same delivery ids.
pub(crate) fn redrive(p: &mut Batch<'_>, agency: &AgencyCode, ids: &[u64], actor: &str) -> Result<u64, StoreError> {
    let items = dead_letters(p, agency, ids)?;
    for (id, mut e) in items.iter().cloned() {
        let rec = document(p, e.hub_id)?;
        e.attempts = 0;
        e.dead_reason = 0;
        p.del(keys::queue_item(tag::DEAD, agency.as_str(), id));
        p.put(keys::queue_item(tag::OUTBOX, agency.as_str(), id), e.encode_to_vec());
        p.add_queued(agency.as_str(), 1, e.bytes);
        if e.status_receipt.is_none() {
            set_transport(p, e.hub_id, agency.as_str(), TransportState::Queued, 0)?;
        }
        p.append_receipt(document_receipt(ReceiptEvent::Redriven, actor, &rec, agency, 0))?;
    }
    Ok(items.len() as u64)
}

/// Dead letters deleted for good (their receipts stay).
pub(crate) fn purge(p: &mut Batch<'_>, agency: &AgencyCode, ids: &[u64], actor: &str) -> Result<u64, StoreError> {
    let items = dead_letters(p, agency, ids)?;
    for (id, e) in &items {
        let rec = document(p, e.hub_id)?;
        p.del(keys::queue_item(tag::DEAD, agency.as_str(), *id));
        if e.status_receipt.is_none() {
            super::payloads::add_ref(p, &rec, -1)?;
        }
        p.append_receipt(document_receipt(ReceiptEvent::Purged, actor, &rec, agency, e.attempts))?;
    }
    Ok(items.len() as u64)
}

/// An operator action with no other trace, as a receipt.
pub(crate) fn record(p: &mut Batch<'_>, detail: String, actor: &str) -> Result<(), StoreError> {
    p.append_receipt(Receipt {
        event: ReceiptEvent::OperatorAction as i32,
        actor: actor.to_string(),
        detail,
        ..Default::default()
    })?;
    Ok(())
}
