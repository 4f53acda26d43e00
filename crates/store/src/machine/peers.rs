//! Federation in the writer: one outbox per peer hub, beside the agencies'.
//!
//! A document for recipients another hub serves goes, in the batch that
//! accepts it, into the outbox of the peer that is the next hop, once per
//! peer whatever the number of its recipients there (the entry lists them).
//! Each of those recipients has its own state row, like a local one, whose
//! `via` names the peer. The outbox of peer `g12` is keyed `~g12` in the
//! agencies' keyspaces (`O`, `X`, `Q`, `C`): a `~` is in no agency code,
//! and leases, retries, dead letters and the commit events then work for
//! peers as they do for agencies.
//!
//! What happens to a forwarded copy comes back as the other hub's receipts
//! ([`apply_report`]): delivered, dead-lettered, a recipient's status. This
//! hub records each in its own log with the reporting hub's receipt beside
//! it, updates the recipient's row, and passes it on — to the sending
//! agency's outbox as a status notice, or, for a document that itself
//! arrived from a peer, into that peer's outbox. Reports travel in the
//! peers' outboxes as entries naming the receipt to report.

use std::collections::BTreeMap;

use prost::Message;
use truc_core::routing::HubId;
use truc_core::AgencyCode;
use truc_proto::v1::{ProvenReceipt, Receipt, ReceiptEvent, StatusCode, TransportState};

use super::batch::Batch;
use super::copies::{document, document_receipt, recipient_state};
use super::documents::{enqueue, enqueue_for};
use crate::keys::{self, tag};
use crate::records::{DocumentRecord, OutboxEntry, RecipientState};
use crate::{ExpireOutcome, StoreError};

/// The outbox name of peer hub `peer`.
pub(crate) fn outbox(peer: &str) -> String {
    format!("~{peer}")
}

/// Copies for recipients on other hubs, grouped by next hop, written by
/// [`Forwards::flush`] as one outbox entry per peer and document.
#[derive(Debug, Default)]
pub(crate) struct Forwards {
    groups: BTreeMap<(String, u64), Vec<String>>,
}

impl Forwards {
    /// Queue `recipient`'s copy of `rec` for `peer`: its state row now,
    /// the peer's outbox entry at [`Forwards::flush`].
    pub(crate) fn add(
        &mut self,
        p: &mut Batch<'_>,
        peer: &HubId,
        recipient: &str,
        rec: &DocumentRecord,
        deadlines: (i64, i64),
    ) -> Result<(), StoreError> {
        let state = RecipientState {
            state: TransportState::Queued as i32,
            state_at_unix_ms: p.time_unix_ms,
            delivery_deadline_unix_ms: deadlines.0,
            confirm_deadline_unix_ms: deadlines.1,
            via: peer.to_string(),
            ..Default::default()
        };
        super::deadlines::put_state(p, rec.hub_id, recipient, &state, Some(rec.due_date_unix_ms))?;
        let group = self.groups.entry((peer.to_string(), rec.hub_id)).or_default();
        if !group.iter().any(|r| r == recipient) {
            group.push(recipient.to_string());
        }
        Ok(())
    }

    /// Write one entry per peer and document.
    pub(crate) fn flush(self, p: &mut Batch<'_>) -> Result<(), StoreError> {
        for ((peer, hub_id), recipients) in self.groups {
            let rec = document(p, hub_id)?;
            super::payloads::add_ref(p, &rec, 1)?;
            let name = outbox(&peer);
            let id = enqueue_for(
                p,
                &name,
                hub_id,
                rec.priority,
                None,
                rec.payload_size,
                recipients.clone(),
            );
            for r in &recipients {
                if let Some(mut s) = recipient_state(p, hub_id, r)? {
                    s.delivery_id = id;
                    super::deadlines::put_transport(p, hub_id, r, &s);
                }
            }
        }
        Ok(())
    }
}

/// The peer `peer` accepted the forwarded item `id`: for a document, its
/// recipients are FORWARDED and `next` (that hub's ACCEPTED receipt) goes
/// into this hub's log; for a report, it is done.
pub(crate) fn forwarded(
    p: &mut Batch<'_>,
    peer: &HubId,
    id: u64,
    next: Option<ProvenReceipt>,
) -> Result<(), StoreError> {
    let name = outbox(peer.as_str());
    let key = keys::queue_item(tag::OUTBOX, &name, id);
    let Some(entry) = p.get_msg::<OutboxEntry>(&key, "peer outbox entry")? else {
        if p.contains(&keys::queue_item(tag::ACKED, &name, id))? {
            return Ok(()); // forwarded already: a retry after a crash
        }
        return Err(StoreError::UnknownDelivery(id));
    };
    p.del(key);
    p.put(
        keys::queue_item(tag::ACKED, &name, id),
        entry.hub_id.to_be_bytes().to_vec(),
    );
    p.add_queued(&name, -1, entry.bytes);
    if entry.status_receipt.is_some() {
        return Ok(());
    }
    let rec = document(p, entry.hub_id)?;
    for r in &entry.recipients {
        if let Some(mut s) = recipient_state(p, rec.hub_id, r)? {
            if s.state == TransportState::Queued as i32 {
                s.state = TransportState::Forwarded as i32;
                s.attempts = entry.attempts;
                s.state_at_unix_ms = p.time_unix_ms;
                super::deadlines::put_state(p, rec.hub_id, r, &s, Some(rec.due_date_unix_ms))?;
            }
        }
    }
    super::payloads::add_ref(p, &rec, -1)?;
    let receipt = Receipt {
        event: ReceiptEvent::Forwarded as i32,
        actor: super::HUB_ACTOR.to_string(),
        from: rec.from.clone(),
        document_id: rec.document_id.clone(),
        hub_document_id: rec.hub_id,
        header_sha256: rec.header_sha256.clone(),
        detail: format!("to {}", peer.principal().uri()),
        recipients: entry.recipients.clone(),
        attempts: entry.attempts,
        business_type: rec.business_type,
        peer_receipt: next.map(|n| n.encode_to_vec()).unwrap_or_default(),
        ..Default::default()
    };
    let index = p.append_receipt(receipt)?;
    // A relay: the origin's hub learns of this hop too (`truc ops trace`
    // there shows every hop).
    report_back(p, &rec, index);
    Ok(())
}

/// The peer refused item `id` (or could not be reached and the operator's
/// limit says to count it): one attempt more; past `max_attempts` it is a
/// dead letter of the peer's outbox and its recipients are DEAD_LETTERED,
/// `why` on the receipt.
pub(crate) fn refused(
    p: &mut Batch<'_>,
    peer: &HubId,
    id: u64,
    max_attempts: u32,
    why: &str,
) -> Result<ExpireOutcome, StoreError> {
    let name = outbox(peer.as_str());
    let key = keys::queue_item(tag::OUTBOX, &name, id);
    let Some(mut entry) = p.get_msg::<OutboxEntry>(&key, "peer outbox entry")? else {
        return Ok(ExpireOutcome::Gone);
    };
    let rec = document(p, entry.hub_id)?;
    entry.attempts += 1;
    let attempts = entry.attempts;
    let dead = attempts >= max_attempts;
    if dead {
        p.del(key);
        entry.dead_reason = crate::DeadLetterReason::Attempts as i32;
        p.put(keys::queue_item(tag::DEAD, &name, id), entry.encode_to_vec());
        p.add_queued(&name, -1, entry.bytes);
    } else {
        p.put(key, entry.encode_to_vec());
    }
    let event = if dead {
        ReceiptEvent::DeadLettered
    } else {
        ReceiptEvent::LeaseExpired
    };
    let detail = format!("forwarding to {} refused: {why}", peer.principal().uri());
    if entry.status_receipt.is_none() {
        for r in &entry.recipients {
            if let Some(mut s) = recipient_state(p, rec.hub_id, r)? {
                s.attempts = attempts;
                s.state_at_unix_ms = p.time_unix_ms;
                if dead {
                    s.state = TransportState::DeadLettered as i32;
                }
                super::deadlines::put_transport(p, rec.hub_id, r, &s);
            }
        }
    }
    if dead && entry.status_receipt.is_none() {
        // One receipt per recipient, each reported back if the document
        // came from a peer itself.
        for r in &entry.recipients {
            let code = AgencyCode::parse(r).map_err(|e| StoreError::corrupt_from(format!("agency code {r}"), e))?;
            let mut receipt = document_receipt(event, super::HUB_ACTOR, &rec, &code, attempts);
            receipt.detail = detail.clone();
            let index = p.append_receipt(receipt)?;
            report_back(p, &rec, index);
        }
    } else {
        p.append_receipt(Receipt {
            event: event as i32,
            actor: super::HUB_ACTOR.to_string(),
            from: rec.from.clone(),
            document_id: rec.document_id.clone(),
            hub_document_id: rec.hub_id,
            header_sha256: rec.header_sha256.clone(),
            recipients: entry.recipients.clone(),
            attempts,
            detail,
            ..Default::default()
        })?;
    }
    Ok(if dead {
        ExpireOutcome::DeadLettered { attempts }
    } else {
        ExpireOutcome::Requeued { attempts }
    })
}

/// For a document that arrived from a peer: queue receipt `index` (about
/// one of its copies here) to be reported back there.
pub(crate) fn report_back(p: &mut Batch<'_>, rec: &DocumentRecord, index: u64) {
    if !rec.arrived_via.is_empty() {
        enqueue(p, &outbox(&rec.arrived_via), rec.hub_id, rec.priority, Some(index), 0);
    }
}

/// Whether every one of `recipients` of document `hub_id` went to `peer`
/// from here.
fn entry_forwarded_via(p: &Batch<'_>, hub_id: u64, recipients: &[String], peer: &HubId) -> Result<bool, StoreError> {
    for r in recipients {
        match recipient_state(p, hub_id, r)? {
            Some(s) if s.via == peer.as_str() => {}
            _ => return Ok(false),
        }
    }
    Ok(!recipients.is_empty())
}

/// The receipt of `proven`, decoded.
fn reported(proven: &ProvenReceipt) -> Result<Receipt, StoreError> {
    Receipt::decode(proven.receipt.as_slice())
        .map_err(|e| StoreError::InvalidArgument(format!("the reported receipt does not decode: {e}")))
}

/// Apply a receipt peer `peer` reported about a document: see the module
/// documentation. Returns the agencies whose outbox changed.
pub(crate) fn apply_report(
    p: &mut Batch<'_>,
    peer: &HubId,
    proven: &ProvenReceipt,
) -> Result<Vec<AgencyCode>, StoreError> {
    let remote = reported(proven)?;
    let from = AgencyCode::parse(&remote.from)
        .map_err(|e| StoreError::InvalidArgument(format!("the reported receipt's sender: {e}")))?;
    let v = p
        .get(&keys::idempotency(from.as_str(), &remote.document_id))?
        .ok_or_else(|| StoreError::UnknownDocument {
            from: remote.from.clone(),
            document_id: remote.document_id.clone(),
        })?;
    let hub_id = keys::u64_value(&v).ok_or_else(|| StoreError::corrupt("idempotency key"))?;
    let rec = document(p, hub_id)?;
    let event = ReceiptEvent::try_from(remote.event).unwrap_or(ReceiptEvent::Unspecified);
    let actor = peer.principal().uri();
    let mut receipt = Receipt {
        event: remote.event,
        actor: actor.clone(),
        from: rec.from.clone(),
        document_id: rec.document_id.clone(),
        hub_document_id: hub_id,
        header_sha256: rec.header_sha256.clone(),
        recipient: remote.recipient.clone(),
        attempts: remote.attempts,
        status_code: remote.status_code,
        description: remote.description.clone(),
        staff: remote.staff.clone(),
        detail: format!("reported by {actor}"),
        peer_receipt: proven.encode_to_vec(),
        ..Default::default()
    };
    // The sender's own status (13) travels towards the recipients.
    if event == ReceiptEvent::StatusReported && remote.recipient.is_empty() {
        if rec.arrived_via != peer.as_str() {
            return Err(StoreError::NotEntitled(format!(
                "{actor} reported the sender's status on {:?}, which did not come from it",
                rec.document_id
            )));
        }
        let index = p.append_receipt(receipt)?;
        let mut notify = Vec::new();
        for to in rec.recipients.clone() {
            let Some(mut s) = recipient_state(p, hub_id, &to)? else {
                continue;
            };
            if s.state == TransportState::Withdrawn as i32 {
                continue;
            }
            s.reply_expected = true;
            super::deadlines::put_state(p, hub_id, &to, &s, Some(rec.due_date_unix_ms))?;
            if s.via.is_empty() {
                enqueue(p, &to, hub_id, rec.priority, Some(index), 0);
                notify.push(
                    AgencyCode::parse(&to).map_err(|e| StoreError::corrupt_from(format!("agency code {to}"), e))?,
                );
            } else {
                enqueue(p, &outbox(&s.via), hub_id, rec.priority, Some(index), 0);
            }
        }
        return Ok(notify);
    }
    // A hop further on: recorded (and passed back) for the trace; the
    // recipients' rows stay FORWARDED until their hub reports more.
    if event == ReceiptEvent::Forwarded {
        if !entry_forwarded_via(p, hub_id, &remote.recipients, peer)? {
            return Err(StoreError::NotEntitled(format!(
                "{actor} reported a forward of {:?} for recipients this hub did not forward to it",
                rec.document_id
            )));
        }
        receipt.recipients = remote.recipients.clone();
        receipt.detail = format!("reported by {actor}: forwarded {}", remote.detail);
        let index = p.append_receipt(receipt)?;
        report_back(p, &rec, index);
        return Ok(Vec::new());
    }
    // Anything else is about one recipient this hub forwarded to `peer`.
    let Some(mut s) = recipient_state(p, hub_id, &remote.recipient)? else {
        return Err(StoreError::NotEntitled(format!(
            "{} is not a recipient of {:?} from {}",
            remote.recipient, rec.document_id, rec.from
        )));
    };
    if s.via != peer.as_str() {
        return Err(StoreError::NotEntitled(format!(
            "{actor} reported on {}'s copy of {:?}, which this hub did not forward to it",
            remote.recipient, rec.document_id
        )));
    }
    match event {
        ReceiptEvent::Delivered if remote.status_code == 0 => {
            s.state = TransportState::Delivered as i32;
            s.state_at_unix_ms = p.time_unix_ms;
        }
        ReceiptEvent::DeadLettered if remote.status_code == 0 => {
            s.state = TransportState::DeadLettered as i32;
            s.state_at_unix_ms = p.time_unix_ms;
        }
        ReceiptEvent::StatusReported => {
            // The recipient's hub applied the status rules; this hub
            // follows what it reports.
            let code = remote.status_code;
            s.progress = if (StatusCode::Arrived as i32..=StatusCode::Done as i32).contains(&code) {
                code
            } else {
                s.progress()
            };
            if code == StatusCode::Agree as i32 || code == StatusCode::Disagree as i32 {
                s.reply_expected = false;
            }
            s.status = code;
            s.status_description = remote.description.clone();
            s.status_at_unix_ms = p.time_unix_ms;
        }
        ReceiptEvent::Redirected => {
            // The recipient was retired there: its successor (on that hub
            // too) has the copy, a row of its own from now on.
            let Some(actual) = remote.recipients.first().cloned() else {
                return Ok(Vec::new());
            };
            AgencyCode::parse(&actual)
                .map_err(|e| StoreError::InvalidArgument(format!("the reported successor {actual:?}: {e}")))?;
            let successor = RecipientState {
                state: TransportState::Forwarded as i32,
                state_at_unix_ms: p.time_unix_ms,
                delivery_deadline_unix_ms: s.delivery_deadline_unix_ms,
                confirm_deadline_unix_ms: s.confirm_deadline_unix_ms,
                via: peer.to_string(),
                ..Default::default()
            };
            if recipient_state(p, hub_id, &actual)?.is_none() {
                super::deadlines::put_state(p, hub_id, &actual, &successor, Some(rec.due_date_unix_ms))?;
                let mut updated = rec.clone();
                updated.recipients.push(actual.clone());
                p.put(keys::document(hub_id), updated.encode_to_vec());
            }
            receipt.recipients = vec![actual];
            s.state = TransportState::Redirected as i32;
            s.state_at_unix_ms = p.time_unix_ms;
        }
        // Other receipts (a status notice's delivery) change nothing here.
        _ => return Ok(Vec::new()),
    }
    super::deadlines::put_state(p, hub_id, &remote.recipient, &s, Some(rec.due_date_unix_ms))?;
    let index = p.append_receipt(receipt)?;
    if !rec.arrived_via.is_empty() {
        report_back(p, &rec, index);
        return Ok(Vec::new());
    }
    if event == ReceiptEvent::StatusReported {
        // The sending agency is told, as for a status reported here.
        enqueue(p, &rec.from, hub_id, rec.priority, Some(index), 0);
        return Ok(vec![from]);
    }
    Ok(Vec::new())
}
