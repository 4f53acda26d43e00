//! The agency directory in the writer: registering, suspending, retiring
//! with a successor, and following successors when routing.

use prost::Message;
use truc_core::AgencyCode;
use truc_proto::names::Wire;
use truc_proto::v1::{AgencyState, Receipt, ReceiptEvent, TransportState};

use super::batch::Batch;
use super::copies::{document, document_receipt, recipient_state};
use super::documents::enqueue;
use super::Env;
use crate::keys::{self, tag};
use crate::records::{AgencyRecord, OutboxEntry, RecipientState};
use crate::{AgencyInfo, StoreError};

/// Most successor hops followed (a merged agency merged again …).
const MAX_HOPS: usize = 8;

/// The agency as this batch sees it.
pub(crate) fn lookup(p: &Batch<'_>, env: &dyn Env, code: &str) -> Option<AgencyRecord> {
    match p.agencies.iter().rev().find(|a| a.code == code) {
        Some(a) if is_removal(a) => None,
        Some(a) => Some(a.clone()),
        None => env.agency(code),
    }
}

/// The record that stands for "removed" in a batch's directory changes
/// (state UNSPECIFIED, which no stored agency has).
pub(crate) fn removal(code: String) -> AgencyRecord {
    AgencyRecord {
        code,
        state: AgencyState::Unspecified as i32,
        ..Default::default()
    }
}

pub(crate) fn is_removal(a: &AgencyRecord) -> bool {
    a.state == AgencyState::Unspecified as i32
}

/// Most directory receipts read to decide that an agency never had
/// traffic (registering, renaming, suspending: a handful in practice).
const MAX_DIRECTORY_RECEIPTS: usize = 1000;

/// Remove an agency that never had traffic (see `Store::remove_agency`).
pub(crate) fn remove(
    p: &mut Batch<'_>,
    env: &dyn Env,
    code: &AgencyCode,
    reason: &str,
    actor: &str,
) -> Result<(), StoreError> {
    let rec = lookup(p, env, code.as_str()).ok_or_else(|| StoreError::UnknownAgency(code.to_string()))?;
    let named = p.agency_receipts(code.as_str(), MAX_DIRECTORY_RECEIPTS)?;
    let retire = |why: &str| {
        StoreError::Precondition(format!(
            "{code} {why}: only an agency that never had traffic can be removed; retire it instead \
             (truc ops agencies retire {code} --successor CODE)"
        ))
    };
    if named.len() > MAX_DIRECTORY_RECEIPTS {
        return Err(retire("has a long history"));
    }
    for &index in &named {
        let Some(v) = p.get(&keys::receipt(index))? else {
            continue;
        };
        let r = Receipt::decode(super::leaves::receipt(&v)?).map_err(|e| StoreError::corrupt_from("receipt", e))?;
        if r.event != ReceiptEvent::AgencyChanged as i32 {
            return Err(retire("has had traffic"));
        }
    }
    if rec.state == AgencyState::Retired as i32 || !p.scan(&keys::queue_prefix(tag::OUTBOX, code.as_str()))?.is_empty()
    {
        return Err(retire("has a queue or a successor"));
    }
    p.del(keys::agency(code.as_str()));
    p.append_receipt(Receipt {
        event: ReceiptEvent::AgencyChanged as i32,
        actor: actor.to_string(),
        recipient: code.to_string(),
        detail: format!("{code} {:?} removed: {reason}", rec.name),
        ..Default::default()
    })?;
    p.agencies.push(removal(code.to_string()));
    Ok(())
}

fn info(p: &Batch<'_>, env: &dyn Env, rec: &AgencyRecord) -> AgencyInfo {
    let pending = p.queued_delta.get(&rec.code).map(|d| d.0).unwrap_or(0);
    AgencyInfo {
        queued: (env.queue_counts(&rec.code).0 as i64 + pending).max(0) as u64,
        code: rec.code.clone(),
        name: rec.name.clone(),
        state: AgencyState::try_from(rec.state).unwrap_or_default(),
        registered_at_unix_ms: rec.registered_at_unix_ms,
        successor: rec.successor.clone(),
    }
}

fn save(p: &mut Batch<'_>, rec: &AgencyRecord, actor: &str, detail: String) -> Result<(), StoreError> {
    p.put(keys::agency(&rec.code), rec.encode_to_vec());
    p.append_receipt(Receipt {
        event: ReceiptEvent::AgencyChanged as i32,
        actor: actor.to_string(),
        recipient: rec.code.clone(),
        detail,
        ..Default::default()
    })?;
    p.agencies.push(rec.clone());
    Ok(())
}

/// Register an agency as active, or rename a registered one.
pub(crate) fn put(
    p: &mut Batch<'_>,
    env: &dyn Env,
    code: AgencyCode,
    name: String,
    actor: &str,
) -> Result<AgencyInfo, StoreError> {
    let rec = match lookup(p, env, code.as_str()) {
        Some(a) => AgencyRecord { name, ..a },
        None => AgencyRecord {
            code: code.to_string(),
            name,
            state: AgencyState::Active as i32,
            registered_at_unix_ms: p.time_unix_ms,
            successor: String::new(),
        },
    };
    save(
        p,
        &rec,
        actor,
        format!("{} {:?}: {}", code, rec.name, Wire::<AgencyState>::from(rec.state)),
    )?;
    Ok(info(p, env, &rec))
}

/// Suspend or resume.
pub(crate) fn set_state(
    p: &mut Batch<'_>,
    env: &dyn Env,
    code: &AgencyCode,
    state: AgencyState,
    reason: &str,
    actor: &str,
) -> Result<AgencyInfo, StoreError> {
    let mut rec = lookup(p, env, code.as_str()).ok_or_else(|| StoreError::UnknownAgency(code.to_string()))?;
    if rec.state == AgencyState::Retired as i32 {
        return Err(StoreError::Precondition(format!(
            "{code} is retired; a retired agency stays retired"
        )));
    }
    if !matches!(state, AgencyState::Active | AgencyState::Suspended) {
        return Err(StoreError::InvalidArgument("state must be ACTIVE or SUSPENDED".into()));
    }
    rec.state = state as i32;
    save(
        p,
        &rec,
        actor,
        format!("{code} {}: {reason}", Wire::<AgencyState>::from(rec.state)),
    )?;
    Ok(info(p, env, &rec))
}

/// Retire `code`; its outbox moves to `successor`.
pub(crate) fn retire(
    p: &mut Batch<'_>,
    env: &dyn Env,
    code: &AgencyCode,
    successor: &AgencyCode,
    reason: &str,
    actor: &str,
) -> Result<AgencyInfo, StoreError> {
    let mut rec = lookup(p, env, code.as_str()).ok_or_else(|| StoreError::UnknownAgency(code.to_string()))?;
    if code == successor {
        return Err(StoreError::InvalidArgument(format!("{code} cannot succeed itself")));
    }
    if rec.state == AgencyState::Retired as i32 {
        return Err(StoreError::Precondition(format!(
            "{code} is already retired (successor {})",
            rec.successor
        )));
    }
    let succ = lookup(p, env, successor.as_str()).ok_or_else(|| StoreError::UnknownAgency(successor.to_string()))?;
    if succ.state != AgencyState::Active as i32 {
        return Err(StoreError::AgencyInactive {
            code: successor.to_string(),
            state: Wire::<AgencyState>::from(succ.state),
        });
    }
    rec.state = AgencyState::Retired as i32;
    rec.successor = successor.to_string();
    save(
        p,
        &rec,
        actor,
        format!("{code} retired, successor {successor}: {reason}"),
    )?;
    // Move what waits to the successor, one receipt per item.
    let waiting = p.scan(&keys::queue_prefix(tag::OUTBOX, code.as_str()))?;
    for (k, v) in waiting {
        let entry = OutboxEntry::decode(v.as_slice()).map_err(|e| StoreError::corrupt_from("outbox entry", e))?;
        p.del(k);
        p.add_queued(code.as_str(), -1, entry.bytes);
        redirect(p, code.as_str(), successor.as_str(), &entry, actor)?;
    }
    Ok(info(p, env, &rec))
}

/// Put `entry`, taken from `from`'s outbox, into `to`'s, and record it.
fn redirect(p: &mut Batch<'_>, from: &str, to: &str, entry: &OutboxEntry, actor: &str) -> Result<(), StoreError> {
    let rec = document(p, entry.hub_id)?;
    let code = AgencyCode::parse(from).map_err(|e| StoreError::corrupt_from(format!("agency code {from}"), e))?;
    let mut r = document_receipt(ReceiptEvent::Redirected, actor, &rec, &code, entry.attempts);
    r.detail = format!("to {to}");
    p.append_receipt(r)?;
    if entry.status_receipt.is_some() {
        enqueue(p, to, entry.hub_id, rec.priority, entry.status_receipt, 0);
        return Ok(());
    }
    let old = recipient_state(p, entry.hub_id, from)?.unwrap_or_default();
    let redirected = RecipientState {
        state: TransportState::Redirected as i32,
        state_at_unix_ms: p.time_unix_ms,
        ..old.clone()
    };
    super::deadlines::put_state(p, entry.hub_id, from, &redirected, Some(rec.due_date_unix_ms))?;
    if recipient_state(p, entry.hub_id, to)?.is_some() {
        // The successor was a recipient already: this copy is dropped.
        super::payloads::add_ref(p, &rec, -1)?;
        return Ok(());
    }
    let delivery_id = enqueue(p, to, entry.hub_id, rec.priority, None, entry.bytes);
    let state = RecipientState {
        state: TransportState::Queued as i32,
        delivery_id,
        state_at_unix_ms: p.time_unix_ms,
        ..old
    };
    super::deadlines::put_state(p, entry.hub_id, to, &state, Some(rec.due_date_unix_ms))
}

/// Where a copy addressed to `code` goes: `code` itself, or the successor
/// it was retired into (followed up to `MAX_HOPS`). Refuses unknown and
/// suspended agencies.
pub(crate) fn route(p: &Batch<'_>, env: &dyn Env, code: &AgencyCode) -> Result<AgencyCode, StoreError> {
    let mut current = code.clone();
    for _ in 0..=MAX_HOPS {
        let rec = lookup(p, env, current.as_str()).ok_or_else(|| StoreError::UnknownAgency(current.to_string()))?;
        match AgencyState::try_from(rec.state) {
            Ok(AgencyState::Active) => return Ok(current),
            Ok(AgencyState::Retired) if !rec.successor.is_empty() => {
                current = AgencyCode::parse(&rec.successor)
                    .map_err(|e| StoreError::corrupt_from(format!("successor of {current}"), e))?;
            }
            _ => {
                return Err(StoreError::AgencyInactive {
                    code: current.to_string(),
                    state: Wire::<AgencyState>::from(rec.state),
                })
            }
        }
    }
    Err(StoreError::Precondition(format!(
        "{code}: more than {MAX_HOPS} successors in a row"
    )))
}
