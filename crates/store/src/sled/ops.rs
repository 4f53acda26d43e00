//! The requests the writer applies, one function each. Every function checks
//! everything first and writes only when the request will succeed, so a
//! refused request leaves nothing in the batch.

use prost::Message;
use tokio::sync::oneshot;
use truc_core::AgencyCode;
use truc_proto::v1::{AgencyState, Receipt, ReceiptEvent};

use super::pending::Pending;
use super::writer::{commit_error, reply, state_name, Committed, Completion};
use super::Cache;
use crate::keys::{self, tag};
use crate::records::{AgencyRecord, DocumentRecord, OutboxEntry};
use crate::{AgencyInfo, ExpireOutcome, NewDocument, SendOutcome, StoreError};

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// The actor of the hub's own actions in receipts.
pub(super) const HUB_ACTOR: &str = "urn:truc:hub";

pub(super) enum Op {
    Send(Box<NewDocument>, Reply<SendOutcome>),
    Ack {
        agency: AgencyCode,
        ids: Vec<u64>,
        actor: String,
        reply: Reply<u32>,
    },
    Expire {
        agency: AgencyCode,
        id: u64,
        max_attempts: u32,
        reply: Reply<ExpireOutcome>,
    },
    PutAgency {
        code: AgencyCode,
        name: String,
        actor: String,
        reply: Reply<AgencyInfo>,
    },
}

impl Op {
    pub(super) fn apply(self, p: &mut Pending<'_>, cache: &Cache) -> Completion {
        match self {
            Op::Send(doc, tx) => match send(p, cache, *doc) {
                Ok(s) => Box::new(move |c: Result<&Committed, &StoreError>| {
                    let r = c.map_err(commit_error).and_then(|c| {
                        Ok(SendOutcome {
                            hub_document_id: s.hub_id,
                            accepted_at_unix_ms: s.accepted_at,
                            duplicate: s.duplicate,
                            receipt: c.proven_receipt(s.receipt_index)?,
                        })
                    });
                    reply(tx, r)
                }),
                Err(e) => failed(tx, e),
            },
            Op::Ack {
                agency,
                ids,
                actor,
                reply: tx,
            } => done(tx, ack(p, &agency, &ids, &actor)),
            Op::Expire {
                agency,
                id,
                max_attempts,
                reply: tx,
            } => done(tx, expire(p, &agency, id, max_attempts)),
            Op::PutAgency {
                code,
                name,
                actor,
                reply: tx,
            } => done(tx, put_agency(p, cache, code, name, &actor)),
        }
    }
}

/// A completion for a request that failed its checks: it sends its own error
/// whatever happens to the batch.
fn failed<T: Send + 'static>(tx: Reply<T>, e: StoreError) -> Completion {
    Box::new(move |_| reply(tx, Err(e)))
}

/// A completion that sends `r` once the batch is durable.
fn done<T: Send + 'static>(tx: Reply<T>, r: Result<T, StoreError>) -> Completion {
    Box::new(move |c: Result<&Committed, &StoreError>| match (c, r) {
        (_, Err(e)) => reply(tx, Err(e)),
        (Err(e), Ok(_)) => reply(tx, Err(commit_error(e))),
        (Ok(_), Ok(v)) => reply(tx, Ok(v)),
    })
}

struct Sent {
    hub_id: u64,
    accepted_at: i64,
    duplicate: bool,
    receipt_index: u64,
}

fn require_active(p: &Pending<'_>, cache: &Cache, code: &AgencyCode) -> Result<(), StoreError> {
    let changed = p.agencies.iter().rev().find(|a| a.code == code.as_str()).cloned();
    match changed.or_else(|| cache.agency(code.as_str())) {
        None => Err(StoreError::UnknownAgency(code.to_string())),
        Some(a) if a.state != AgencyState::Active as i32 => Err(StoreError::AgencyInactive {
            code: code.to_string(),
            state: state_name(a.state),
        }),
        Some(_) => Ok(()),
    }
}

fn send(p: &mut Pending<'_>, cache: &Cache, doc: NewDocument) -> Result<Sent, StoreError> {
    let idem = keys::idempotency(doc.from.as_str(), &doc.document_id);
    if let Some(v) = p.get(&idem)? {
        let hub_id = keys::u64_value(&v).ok_or_else(|| StoreError::Corrupt("idempotency key".into()))?;
        let rec: DocumentRecord = p
            .get_msg(&keys::document(hub_id), "document")?
            .ok_or_else(|| StoreError::Corrupt(format!("document {hub_id}")))?;
        if rec.content_sha256 != doc.content_sha256 {
            return Err(StoreError::Conflict {
                from: doc.from.to_string(),
                document_id: doc.document_id,
            });
        }
        return Ok(Sent {
            hub_id,
            accepted_at: rec.accepted_at_unix_ms,
            duplicate: true,
            receipt_index: rec.accepted_receipt,
        });
    }
    require_active(p, cache, &doc.from)?;
    for to in &doc.to {
        require_active(p, cache, to)?;
    }

    let hub_id = p.meta.next_hub_id;
    p.meta.next_hub_id += 1;
    let now = p.time_unix_ms;
    let d = doc.document;
    let payload_sha256 = truc_core::sha256(&d.payload);
    let payload_key = keys::payload(&payload_sha256);
    if !p.contains(&payload_key)? {
        p.put(payload_key, d.payload);
    }
    let receipt_index = p.append_receipt(Receipt {
        event: ReceiptEvent::Accepted as i32,
        actor: doc.actor,
        from: doc.from.to_string(),
        document_id: doc.document_id.clone(),
        hub_document_id: hub_id,
        header_sha256: doc.header_sha256.to_vec(),
        detail: doc.to.iter().map(AgencyCode::as_str).collect::<Vec<_>>().join(","),
        ..Default::default()
    })?;
    let rec = DocumentRecord {
        hub_id,
        payload_sha256: payload_sha256.to_vec(),
        header: d.header,
        signature: d.signature,
        signature_scheme: d.signature_scheme,
        signer_chain: d.signer_chain,
        accepted_at_unix_ms: now,
        accepted_receipt: receipt_index,
        header_sha256: doc.header_sha256.to_vec(),
        content_sha256: doc.content_sha256.to_vec(),
        from: doc.from.to_string(),
        document_id: doc.document_id,
    };
    p.put(keys::document(hub_id), rec.encode_to_vec());
    p.put(idem, hub_id.to_be_bytes().to_vec());
    let entry = OutboxEntry {
        hub_id,
        attempts: 0,
        enqueued_at_unix_ms: now,
    }
    .encode_to_vec();
    for to in &doc.to {
        let id = keys::delivery_id(doc.priority, p.meta.next_seq);
        p.meta.next_seq += 1;
        p.put(keys::queue_item(tag::OUTBOX, to.as_str(), id), entry.clone());
        p.add_queued(to.as_str(), 1);
    }
    Ok(Sent {
        hub_id,
        accepted_at: now,
        duplicate: false,
        receipt_index,
    })
}

fn ack(p: &mut Pending<'_>, agency: &AgencyCode, ids: &[u64], actor: &str) -> Result<u32, StoreError> {
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
        let rec: DocumentRecord = p
            .get_msg(&keys::document(entry.hub_id), "document")?
            .ok_or_else(|| StoreError::Corrupt(format!("document {}", entry.hub_id)))?;
        p.del(key);
        p.put(
            keys::queue_item(tag::ACKED, agency.as_str(), id),
            entry.hub_id.to_be_bytes().to_vec(),
        );
        p.add_queued(agency.as_str(), -1);
        p.append_receipt(document_receipt(
            ReceiptEvent::Delivered,
            actor,
            &rec,
            agency,
            entry.attempts,
        ))?;
    }
    Ok(n)
}

fn expire(p: &mut Pending<'_>, agency: &AgencyCode, id: u64, max_attempts: u32) -> Result<ExpireOutcome, StoreError> {
    let key = keys::queue_item(tag::OUTBOX, agency.as_str(), id);
    let Some(mut entry) = p.get_msg::<OutboxEntry>(&key, "outbox entry")? else {
        return Ok(ExpireOutcome::Gone);
    };
    let rec: DocumentRecord = p
        .get_msg(&keys::document(entry.hub_id), "document")?
        .ok_or_else(|| StoreError::Corrupt(format!("document {}", entry.hub_id)))?;
    entry.attempts += 1;
    let attempts = entry.attempts;
    if attempts >= max_attempts {
        p.del(key);
        p.put(keys::queue_item(tag::DEAD, agency.as_str(), id), entry.encode_to_vec());
        p.add_queued(agency.as_str(), -1);
        p.append_receipt(document_receipt(
            ReceiptEvent::DeadLettered,
            HUB_ACTOR,
            &rec,
            agency,
            attempts,
        ))?;
        Ok(ExpireOutcome::DeadLettered { attempts })
    } else {
        p.put(key, entry.encode_to_vec());
        p.append_receipt(document_receipt(
            ReceiptEvent::LeaseExpired,
            HUB_ACTOR,
            &rec,
            agency,
            attempts,
        ))?;
        Ok(ExpireOutcome::Requeued { attempts })
    }
}

fn put_agency(
    p: &mut Pending<'_>,
    cache: &Cache,
    code: AgencyCode,
    name: String,
    actor: &str,
) -> Result<AgencyInfo, StoreError> {
    let existing = p
        .agencies
        .iter()
        .rev()
        .find(|a| a.code == code.as_str())
        .cloned()
        .or_else(|| cache.agency(code.as_str()));
    let rec = match existing {
        Some(a) => AgencyRecord { name, ..a },
        None => AgencyRecord {
            code: code.to_string(),
            name,
            state: AgencyState::Active as i32,
            registered_at_unix_ms: p.time_unix_ms,
        },
    };
    p.put(keys::agency(code.as_str()), rec.encode_to_vec());
    p.append_receipt(Receipt {
        event: ReceiptEvent::AgencyChanged as i32,
        actor: actor.to_string(),
        recipient: code.to_string(),
        detail: format!("{} {:?}: {}", code, rec.name, state_name(rec.state)),
        ..Default::default()
    })?;
    p.agencies.push(rec.clone());
    Ok(AgencyInfo {
        queued: cache.queued(code.as_str()),
        code: rec.code,
        name: rec.name,
        state: rec.state,
        registered_at_unix_ms: rec.registered_at_unix_ms,
    })
}

fn document_receipt(
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
