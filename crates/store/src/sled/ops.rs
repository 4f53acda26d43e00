//! The requests the writer applies. Every function checks everything first
//! and writes only when the request will succeed, so a refused request leaves
//! nothing in the batch. Documents and statuses are in `documents.rs`.

use prost::Message;
use tokio::sync::oneshot;
use truc_core::AgencyCode;
use truc_proto::v1::{AgencyState, Receipt, ReceiptEvent, TransportState};

use super::agencies;
use super::documents::{self, Sent};
use super::pending::Pending;
use super::writer::{commit_error, reply, state_name, Committed, Completion};
use super::Cache;
use crate::keys::{self, tag};
use crate::records::{DocumentRecord, OutboxEntry, RecipientState};
use crate::{AgencyInfo, ExpireOutcome, NewDocument, SendOutcome, StatusOutcome, StatusReport, StoreError};

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// The actor of the hub's own actions in receipts.
pub(super) const HUB_ACTOR: &str = "urn:truc:hub";

pub(super) enum Op {
    Send(Box<NewDocument>, Reply<SendOutcome>),
    Precheck {
        from: AgencyCode,
        document_id: Option<String>,
        to: Vec<AgencyCode>,
        size: u64,
        reply: Reply<()>,
    },
    Status(Box<StatusReport>, Reply<StatusOutcome>),
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
    SetState {
        code: AgencyCode,
        state: AgencyState,
        reason: String,
        actor: String,
        reply: Reply<AgencyInfo>,
    },
    Retire {
        code: AgencyCode,
        successor: AgencyCode,
        reason: String,
        actor: String,
        reply: Reply<AgencyInfo>,
    },
    RemoveAgency {
        code: AgencyCode,
        reason: String,
        actor: String,
        reply: Reply<()>,
    },
    Redrive {
        agency: AgencyCode,
        ids: Vec<u64>,
        actor: String,
        reply: Reply<u64>,
    },
    Purge {
        agency: AgencyCode,
        ids: Vec<u64>,
        actor: String,
        reply: Reply<u64>,
    },
    Record {
        detail: String,
        actor: String,
        reply: Reply<()>,
    },
    Pin {
        sha256: Vec<u8>,
        reply: Reply<crate::PayloadPin>,
    },
    Release {
        sha256: Vec<u8>,
        reply: Reply<()>,
    },
    Collect {
        released_before_unix_ms: i64,
        limit: usize,
        reply: Reply<u64>,
    },
    Quarantine {
        hub_id: u64,
        what: String,
        actor: String,
        reply: Reply<crate::Quarantined>,
    },
    /// A damaged payload file: moved aside, then its documents quarantined.
    QuarantinePayload {
        sha256: Vec<u8>,
        hub_ids: Vec<u64>,
        what: String,
        actor: String,
        reply: Reply<Vec<crate::Quarantined>>,
    },
    /// Replicated store: apply what other hubs appended to the log (and
    /// answer once the local view has caught up with the log's end). The
    /// writer handles it itself; it is never applied to a batch.
    Sync(Option<Reply<()>>),
}

impl Op {
    pub(super) fn apply(self, p: &mut Pending<'_>, cache: &Cache) -> Completion {
        match self {
            Op::Send(doc, tx) => match documents::send(p, cache, *doc) {
                Ok(Sent {
                    hub_id,
                    accepted_at,
                    duplicate,
                    receipt_index,
                    notify,
                    restored,
                }) => Box::new(move |c: Result<&Committed, &StoreError>| {
                    let r = c.map_err(commit_error).and_then(|c| {
                        Ok(SendOutcome {
                            hub_document_id: hub_id,
                            accepted_at_unix_ms: accepted_at,
                            duplicate,
                            receipt: c.proven_receipt(receipt_index)?,
                            notify,
                            restored,
                        })
                    });
                    reply(tx, r)
                }),
                Err(e) => failed(tx, e),
            },
            Op::Status(report, tx) => match documents::report_status(p, *report) {
                Ok((receipt_index, notify)) => Box::new(move |c: Result<&Committed, &StoreError>| {
                    let r = c.map_err(commit_error).and_then(|c| {
                        Ok(StatusOutcome {
                            receipt: c.proven_receipt(receipt_index)?,
                            notify,
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
            } => done(tx, agencies::put(p, cache, code, name, &actor)),
            Op::SetState {
                code,
                state,
                reason,
                actor,
                reply: tx,
            } => done(tx, agencies::set_state(p, cache, &code, state, &reason, &actor)),
            Op::Retire {
                code,
                successor,
                reason,
                actor,
                reply: tx,
            } => done(tx, agencies::retire(p, cache, &code, &successor, &reason, &actor)),
            Op::RemoveAgency {
                code,
                reason,
                actor,
                reply: tx,
            } => done(tx, agencies::remove(p, cache, &code, &reason, &actor)),
            Op::Redrive {
                agency,
                ids,
                actor,
                reply: tx,
            } => done(tx, redrive(p, &agency, &ids, &actor)),
            Op::Purge {
                agency,
                ids,
                actor,
                reply: tx,
            } => done(tx, purge(p, &agency, &ids, &actor)),
            Op::Record {
                detail,
                actor,
                reply: tx,
            } => done(tx, record(p, detail, &actor)),
            Op::Precheck {
                from,
                document_id,
                to,
                size,
                reply: tx,
            } => {
                // Answered at once: a check writes nothing.
                reply(
                    tx,
                    documents::precheck(p, cache, &from, document_id.as_deref(), &to, size),
                );
                Box::new(|_| {})
            }
            Op::Pin { sha256, reply: tx } => {
                // Answered at once: a pin writes nothing.
                reply(tx, Ok(super::gc::pin(cache, sha256)));
                Box::new(|_| {})
            }
            Op::Release { sha256, reply: tx } => done(tx, super::gc::release_unreferenced(p, &sha256)),
            Op::Collect {
                released_before_unix_ms,
                limit,
                reply: tx,
            } => done(tx, super::gc::collect(p, cache, released_before_unix_ms, limit)),
            Op::Quarantine {
                hub_id,
                what,
                actor,
                reply: tx,
            } => done(tx, super::quarantine::quarantine(p, hub_id, &what, &actor)),
            Op::QuarantinePayload {
                sha256,
                hub_ids,
                what,
                actor,
                reply: tx,
            } => {
                let r = super::quarantine::quarantine_payload_file(cache, &sha256).and_then(|moved| {
                    if let Some(to) = moved {
                        tracing::error!(payload = %truc_core::hex(&sha256), to = %to.display(), "damaged payload file moved to quarantine");
                    }
                    hub_ids
                        .iter()
                        .map(|&id| super::quarantine::quarantine(p, id, &what, &actor))
                        .collect::<Result<Vec<_>, _>>()
                });
                done(tx, r)
            }
            Op::Sync(tx) => Box::new(move |c: Result<&Committed, &StoreError>| {
                if let Some(tx) = tx {
                    reply(tx, c.map(|_| ()).map_err(commit_error))
                }
            }),
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

pub(super) fn require_active(p: &Pending<'_>, cache: &Cache, code: &AgencyCode) -> Result<(), StoreError> {
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

pub(super) fn document(p: &Pending<'_>, hub_id: u64) -> Result<DocumentRecord, StoreError> {
    p.get_msg(&keys::document(hub_id), "document")?
        .ok_or_else(|| StoreError::corrupt(format!("document {hub_id}")))
}

pub(super) fn recipient_state(p: &Pending<'_>, hub_id: u64, code: &str) -> Result<Option<RecipientState>, StoreError> {
    p.get_msg(&keys::recipient(hub_id, code), "recipient state")
}

/// Change one recipient's transport state (and its attempts) if it has a
/// state record (status notices have none).
fn set_transport(
    p: &mut Pending<'_>,
    hub_id: u64,
    code: &str,
    state: TransportState,
    attempts: u32,
) -> Result<(), StoreError> {
    if let Some(mut s) = recipient_state(p, hub_id, code)? {
        s.state = state as i32;
        s.attempts = attempts;
        s.state_at_unix_ms = p.time_unix_ms;
        p.put(keys::recipient(hub_id, code), s.encode_to_vec());
    }
    Ok(())
}

/// The status code a notice carries, read from its receipt.
fn notice_code(p: &Pending<'_>, entry: &OutboxEntry) -> Result<i32, StoreError> {
    let Some(index) = entry.status_receipt else {
        return Ok(0);
    };
    let Some(value) = p.get(&keys::receipt(index))? else {
        return Ok(0);
    };
    let r = Receipt::decode(super::leaves::receipt(&value)?).map_err(|e| StoreError::corrupt_from("receipt", e))?;
    Ok(r.status_code)
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
            super::gc::add_ref(p, &rec, -1)?;
        }
        let mut r = document_receipt(ReceiptEvent::Delivered, actor, &rec, agency, entry.attempts);
        r.status_code = status_code;
        p.append_receipt(r)?;
    }
    Ok(n)
}

fn expire(p: &mut Pending<'_>, agency: &AgencyCode, id: u64, max_attempts: u32) -> Result<ExpireOutcome, StoreError> {
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
    p.append_receipt(r)?;
    Ok(outcome)
}

pub(super) fn document_receipt(
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
fn dead_letters(p: &Pending<'_>, agency: &AgencyCode, ids: &[u64]) -> Result<Vec<(u64, OutboxEntry)>, StoreError> {
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
fn redrive(p: &mut Pending<'_>, agency: &AgencyCode, ids: &[u64], actor: &str) -> Result<u64, StoreError> {
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
fn purge(p: &mut Pending<'_>, agency: &AgencyCode, ids: &[u64], actor: &str) -> Result<u64, StoreError> {
    let items = dead_letters(p, agency, ids)?;
    for (id, e) in &items {
        let rec = document(p, e.hub_id)?;
        p.del(keys::queue_item(tag::DEAD, agency.as_str(), *id));
        if e.status_receipt.is_none() {
            super::gc::add_ref(p, &rec, -1)?;
        }
        p.append_receipt(document_receipt(ReceiptEvent::Purged, actor, &rec, agency, e.attempts))?;
    }
    Ok(items.len() as u64)
}

/// An operator action with no other trace, as a receipt.
fn record(p: &mut Pending<'_>, detail: String, actor: &str) -> Result<(), StoreError> {
    p.append_receipt(Receipt {
        event: ReceiptEvent::OperatorAction as i32,
        actor: actor.to_string(),
        detail,
        ..Default::default()
    })?;
    Ok(())
}
