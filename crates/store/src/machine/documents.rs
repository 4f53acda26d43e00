//! Documents and their business lifecycle in the writer: accepting a
//! document (new, revoke, replace, update), withdrawing copies not yet
//! delivered, and routing status reports to the counterpart's outbox.

use std::collections::BTreeSet;

use prost::Message;
use truc_core::status_rules::{self, Party};
use truc_core::AgencyCode;
use truc_proto::v1::{BusinessType, Receipt, ReceiptEvent, TransportState};

use super::agencies;
use super::batch::Batch;
use super::copies::{document, document_receipt, recipient_state, require_active};
use super::Env;
use super::HUB_ACTOR;
use crate::keys::{self, tag};
use crate::records::{DocumentRecord, OutboxEntry, RecipientState};
use crate::{NewDocument, StatusReport, StoreError};

#[derive(Debug)]
pub(crate) struct Sent {
    pub(crate) hub_id: u64,
    pub(crate) accepted_at: i64,
    pub(crate) duplicate: bool,
    pub(crate) receipt_index: u64,
    pub(crate) notify: Vec<AgencyCode>,
    pub(crate) restored: bool,
}

/// Put an item in `agency`'s outbox; returns its delivery id.
pub(crate) fn enqueue(
    p: &mut Batch<'_>,
    agency: &str,
    hub_id: u64,
    priority: i32,
    status_receipt: Option<u64>,
    bytes: u64,
) -> u64 {
    enqueue_for(p, agency, hub_id, priority, status_receipt, bytes, Vec::new())
}

/// [`enqueue`] into a peer's outbox, for `recipients` there.
pub(crate) fn enqueue_for(
    p: &mut Batch<'_>,
    agency: &str,
    hub_id: u64,
    priority: i32,
    status_receipt: Option<u64>,
    bytes: u64,
    recipients: Vec<String>,
) -> u64 {
    let id = keys::delivery_id(priority, p.meta.next_seq);
    p.meta.next_seq += 1;
    let entry = OutboxEntry {
        hub_id,
        attempts: 0,
        enqueued_at_unix_ms: p.time_unix_ms,
        status_receipt,
        bytes,
        dead_reason: 0,
        recipients,
    };
    p.put(keys::queue_item(tag::OUTBOX, agency, id), entry.encode_to_vec());
    p.add_queued(agency, 1, bytes);
    id
}

/// Queue a copy of document `hub_id` for `agency` and record its state.
pub(crate) fn enqueue_copy(
    p: &mut Batch<'_>,
    agency: &str,
    rec: &DocumentRecord,
    deadlines: (i64, i64),
) -> Result<(), StoreError> {
    let hub_id = rec.hub_id;
    super::payloads::add_ref(p, rec, 1)?;
    let delivery_id = enqueue(p, agency, hub_id, rec.priority, None, rec.payload_size);
    let state = RecipientState {
        state: TransportState::Queued as i32,
        delivery_id,
        state_at_unix_ms: p.time_unix_ms,
        delivery_deadline_unix_ms: deadlines.0,
        confirm_deadline_unix_ms: deadlines.1,
        ..Default::default()
    };
    super::deadlines::put_state(p, hub_id, agency, &state, Some(rec.due_date_unix_ms))
}

/// Withdraw `agency`'s copy of `rec` if it is still queued; returns whether
/// it was.
fn withdraw_if_queued(
    p: &mut Batch<'_>,
    rec: &DocumentRecord,
    agency: &str,
    actor: &str,
    why: &str,
) -> Result<bool, StoreError> {
    let Some(mut state) = recipient_state(p, rec.hub_id, agency)? else {
        return Ok(false);
    };
    // A copy for another hub is never taken back here: the peer's outbox
    // entry may carry others, and the revoke or take-back travels there.
    if state.state != TransportState::Queued as i32 || !state.via.is_empty() {
        return Ok(false);
    }
    let key = keys::queue_item(tag::OUTBOX, agency, state.delivery_id);
    if p.contains(&key)? {
        p.del(key);
        p.add_queued(agency, -1, rec.payload_size);
        super::payloads::add_ref(p, rec, -1)?;
    }
    state.state = TransportState::Withdrawn as i32;
    state.state_at_unix_ms = p.time_unix_ms;
    super::deadlines::put_state(p, rec.hub_id, agency, &state, Some(rec.due_date_unix_ms))?;
    let code = AgencyCode::parse(agency).map_err(|e| StoreError::corrupt_from(format!("agency code {agency}"), e))?;
    let mut r = document_receipt(ReceiptEvent::Withdrawn, actor, rec, &code, state.attempts);
    r.detail = why.to_string();
    p.append_receipt(r)?;
    Ok(true)
}

/// Whether `agency`'s copy of document `hub_id` was withdrawn.
fn withdrawn(p: &Batch<'_>, hub_id: u64, agency: &str) -> Result<bool, StoreError> {
    Ok(matches!(recipient_state(p, hub_id, agency)?, Some(s) if s.state == TransportState::Withdrawn as i32))
}

/// Mark that `agency`, which has the document, is asked to answer 15 or 16.
fn expect_reply(p: &mut Batch<'_>, hub_id: u64, agency: &str) -> Result<(), StoreError> {
    if let Some(mut s) = recipient_state(p, hub_id, agency)? {
        s.reply_expected = true;
        super::deadlines::put_state(p, hub_id, agency, &s, None)?;
    }
    Ok(())
}

/// Where a document's copies go, and the recipients redirected to a
/// successor: (addressed, actual).
type Routed = (Vec<AgencyCode>, Vec<(AgencyCode, AgencyCode)>);

/// What a Send checks before it writes anything, apart from the document
/// itself: the sender active, each recipient routed (a retired one's
/// successor takes its copy) and its outbox able to take `size` more
/// bytes, the disk above its reserve. Returns where the copies go and the
/// redirects. Writes nothing.
pub(crate) fn admit(
    p: &Batch<'_>,
    env: &dyn Env,
    from: Option<&AgencyCode>,
    addressed_to: &[AgencyCode],
    size: u64,
) -> Result<Routed, StoreError> {
    // A document forwarded by a peer has a sender of another hub.
    if let Some(from) = from {
        require_active(p, env, from)?;
    }
    // Where each copy goes: a retired recipient's successor takes it.
    let mut to: Vec<AgencyCode> = Vec::with_capacity(addressed_to.len());
    let mut redirects = Vec::new();
    for addressed in addressed_to {
        let actual = agencies::route(p, env, addressed)?;
        if &actual != addressed {
            redirects.push((addressed.clone(), actual.clone()));
        }
        if !to.contains(&actual) {
            to.push(actual);
        }
    }
    // Refuse while the disk is nearly full, before anything is written:
    // a database that hits ENOSPC mid-write is worse than a clear "retry".
    if let Some(why) = p.disk_short(env, size) {
        return Err(StoreError::DiskFull(why));
    }
    // An agency that does not pick up its documents may not fill the disk.
    let quota = env.quota_bytes();
    if quota > 0 {
        for r in &to {
            let pending = p.queued_delta.get(r.as_str()).map(|d| d.1).unwrap_or(0);
            let waiting = (env.queue_counts(r.as_str()).1 as i64 + pending).max(0) as u64;
            if waiting + size > quota {
                return Err(StoreError::QuotaExceeded(format!(
                    "{r}'s outbox holds {waiting} bytes not yet picked up; this document ({} bytes) would exceed \
                     its quota of {} bytes",
                    size, quota
                )));
            }
        }
    }
    Ok((to, redirects))
}

/// [`admit`] ahead of an upload, so that one its Send would refuse is
/// refused before the bytes travel; a document already accepted (a resent
/// `document_id`) passes, as its Send will be answered as a duplicate.
pub(crate) fn precheck(
    p: &Batch<'_>,
    env: &dyn Env,
    from: &AgencyCode,
    document_id: Option<&str>,
    to: &[AgencyCode],
    size: u64,
) -> Result<(), StoreError> {
    if let Some(id) = document_id {
        if p.get(&keys::idempotency(from.as_str(), id))?.is_some() {
            return Ok(());
        }
    }
    admit(p, env, Some(from), to, size).map(|_| ())
}

/// The original document `id` of sender `from`.
fn original(p: &Batch<'_>, from: &AgencyCode, id: &str) -> Result<DocumentRecord, StoreError> {
    let v = p
        .get(&keys::idempotency(from.as_str(), id))?
        .ok_or_else(|| StoreError::UnknownDocument {
            from: from.to_string(),
            document_id: id.to_string(),
        })?;
    let hub_id = keys::u64_value(&v).ok_or_else(|| StoreError::corrupt("idempotency key"))?;
    document(p, hub_id)
}

/// The agencies of `to` that are not recipients of `orig`.
fn strangers<'a>(orig: &DocumentRecord, to: impl IntoIterator<Item = &'a AgencyCode>) -> Option<&'a AgencyCode> {
    to.into_iter()
        .find(|t| !orig.recipients.iter().any(|r| r == t.as_str()))
}

/// The original `reference` of `from`, concerning every agency of `to`
/// (a revoke, or a replacement of one document named by reference): each
/// must be a recipient of it.
fn concerning_all(
    p: &Batch<'_>,
    from: &AgencyCode,
    reference: &str,
    to: &[AgencyCode],
) -> Result<(DocumentRecord, Vec<String>), StoreError> {
    let orig = original(p, from, reference)?;
    if let Some(stranger) = strangers(&orig, to) {
        return Err(StoreError::Precondition(format!(
            "{stranger} is not a recipient of {reference:?}"
        )));
    }
    let concerns = to.iter().map(|c| c.to_string()).collect();
    Ok((orig, concerns))
}

/// The recipients of `orig` an update to `to` removes: those not in `to`,
/// and, when the update lists its changes, removed by it now (not by an
/// earlier update).
fn removed_by_update<'a>(
    orig: &'a DocumentRecord,
    to: &'a [AgencyCode],
    changes: &'a [(AgencyCode, bool)],
) -> impl Iterator<Item = &'a String> + 'a {
    orig.recipients
        .iter()
        .filter(move |r| !to.iter().any(|t| t.as_str() == r.as_str()))
        .filter(move |r| changes.is_empty() || changes.iter().any(|(c, added)| !added && c.as_str() == r.as_str()))
}

pub(crate) fn send(p: &mut Batch<'_>, env: &dyn Env, doc: NewDocument) -> Result<Sent, StoreError> {
    let business = doc.business_type;
    let actor = doc.actor.uri();
    let reference = if doc.reference_document_id.is_empty() {
        doc.document_id.clone()
    } else {
        doc.reference_document_id.clone()
    };
    // A revoke or update sent as the axis sends them, under the original's
    // own document id, is keyed by its business action: a revoke once per
    // document, an update by its content (one update differs from another
    // by what it changes).
    let under_original =
        matches!(business, BusinessType::Revoke | BusinessType::Update) && reference == doc.document_id;
    let idem = if under_original {
        let discriminator: &[u8] = match business {
            BusinessType::Update => &doc.content_sha256,
            _ => &[],
        };
        keys::action(doc.from.as_str(), &doc.document_id, business as u8, discriminator)
    } else {
        keys::idempotency(doc.from.as_str(), &doc.document_id)
    };
    if let Some(v) = p.get(&idem)? {
        let hub_id = keys::u64_value(&v).ok_or_else(|| StoreError::corrupt("idempotency key"))?;
        let rec = document(p, hub_id)?;
        if rec.content_sha256 != doc.content_sha256 {
            if under_original {
                return Err(StoreError::AlreadyDone(format!(
                    "{:?} from {} was already revoked (hub document {hub_id}) by a revoke with other content; \
                     a document is revoked once",
                    doc.document_id, doc.from
                )));
            }
            return Err(StoreError::Conflict {
                from: doc.from.to_string(),
                document_id: doc.document_id,
            });
        }
        if rec.quarantined_at_unix_ms != 0 && !under_original {
            // The hub lost its copy and asked for it again: not a duplicate.
            let accepted_at = rec.accepted_at_unix_ms;
            let (receipt_index, notify) = super::quarantine::restore(p, rec, doc)?;
            return Ok(Sent {
                hub_id,
                accepted_at,
                duplicate: false,
                receipt_index,
                notify,
                restored: true,
            });
        }
        return Ok(Sent {
            hub_id,
            accepted_at: rec.accepted_at_unix_ms,
            duplicate: true,
            receipt_index: rec.accepted_receipt,
            notify: Vec::new(),
            restored: false,
        });
    }
    // Recipients served by other hubs go to their next hop's outbox; the
    // others must be registered here.
    let remote = doc.remote.clone();
    let via = |code: &str| {
        remote
            .iter()
            .find(|(c, _)| c.as_str() == code)
            .map(|(_, peer)| peer.clone())
    };
    let local: Vec<AgencyCode> = doc.to.iter().filter(|c| via(c.as_str()).is_none()).cloned().collect();
    let sender = doc.arrived_via.is_none().then_some(&doc.from);
    let (mut to, redirects) = admit(p, env, sender, &local, doc.payload_size)?;
    to.extend(remote.iter().map(|(c, _)| c.clone()).filter(|c| !local.contains(c)));
    let mut forwards = super::peers::Forwards::default();
    // For revoke, update and replace: the originals, from the same sender,
    // each with the agencies this correction concerns.
    let mut originals: Vec<(DocumentRecord, Vec<String>)> = Vec::new();
    match business {
        BusinessType::New => {}
        BusinessType::Revoke => originals.push(concerning_all(p, &doc.from, &reference, &to)?),
        BusinessType::Replace if doc.replacements.is_empty() => {
            originals.push(concerning_all(p, &doc.from, &reference, &to)?)
        }
        BusinessType::Update => {
            let orig = original(p, &doc.from, &reference)?;
            for (code, added) in &doc.receiver_changes {
                // A copy withdrawn (never delivered) may be added again.
                let has =
                    orig.recipients.iter().any(|r| r == code.as_str()) && !withdrawn(p, orig.hub_id, code.as_str())?;
                if *added && has {
                    return Err(StoreError::Precondition(format!(
                        "{code} is already a recipient of {reference:?}; it cannot be added"
                    )));
                }
                if !*added && !has {
                    return Err(StoreError::Precondition(format!(
                        "{code} is not a recipient of {reference:?}; it cannot be removed"
                    )));
                }
            }
            let mut concerns: Vec<String> = Vec::new();
            for t in &to {
                if !orig.recipients.iter().any(|r| r == t.as_str()) || withdrawn(p, orig.hub_id, t.as_str())? {
                    concerns.push(format!("+{t}"));
                }
            }
            concerns.extend(removed_by_update(&orig, &to, &doc.receiver_changes).map(|r| format!("-{r}")));
            originals.push((orig, concerns));
        }
        BusinessType::Replace => {
            for (id, organs) in &doc.replacements {
                let orig = original(p, &doc.from, id)?;
                if let Some(stranger) = strangers(&orig, organs) {
                    return Err(StoreError::Precondition(format!(
                        "{stranger} is not a recipient of {id:?}: it cannot be replaced for it"
                    )));
                }
                let concerns: Vec<String> = if organs.is_empty() {
                    to.iter()
                        .filter(|t| orig.recipients.iter().any(|r| r == t.as_str()))
                        .map(|t| t.to_string())
                        .collect()
                } else {
                    organs.iter().map(|c| c.to_string()).collect()
                };
                if concerns.is_empty() {
                    return Err(StoreError::Precondition(format!(
                        "no recipient of {id:?} is among this replacement's recipients"
                    )));
                }
                originals.push((orig, concerns));
            }
        }
    }

    let hub_id = p.meta.next_hub_id;
    p.meta.next_hub_id += 1;
    let now = p.time_unix_ms;
    let d = doc.document;
    let payload_size = doc.payload_size;
    let payload_sha256 = doc.payload_sha256;
    // The document as received, payload included, goes to the body log and
    // sled keeps where it is; replicated, it stays in the records (the
    // shared log is all other hubs can read), the payload under `P`.
    let (body, inline) = if p.bodies.inline() {
        if !doc.payload_external {
            let key = keys::payload(&payload_sha256);
            if !p.contains(&key)? {
                p.put(key, d.payload);
            }
        }
        (Vec::new(), Some((d.header, d.signature, d.signer_chain)))
    } else {
        (p.bodies.push(&d.encode_to_vec()), None)
    };
    let (header, signature, signer_chain) = inline.unwrap_or_default();
    // The record goes in first: the indicators read its payload size
    // when the ACCEPTED receipt is counted (`indicators.rs`).
    let receipt_index = p.meta.tree_size;
    let rec = DocumentRecord {
        hub_id,
        payload_sha256: payload_sha256.to_vec(),
        header,
        signature,
        signature_scheme: d.signature_scheme,
        signer_chain,
        accepted_at_unix_ms: now,
        accepted_receipt: receipt_index,
        header_sha256: doc.header_sha256.to_vec(),
        content_sha256: doc.content_sha256.to_vec(),
        from: doc.from.to_string(),
        document_id: doc.document_id.clone(),
        recipients: to.iter().map(|c| c.to_string()).collect(),
        priority: doc.priority as i32,
        subject: doc.subject.clone(),
        payload_size,
        external_payload: doc.payload_external,
        body,
        quarantined_at_unix_ms: 0,
        quarantine_reason: String::new(),
        business_type: business as i32,
        business_reason: doc.business_reason.clone(),
        due_date_unix_ms: doc.due_date_unix_ms,
        arrived_via: doc.arrived_via.as_ref().map(ToString::to_string).unwrap_or_default(),
        trace: doc.trace.clone(),
    };
    p.put(keys::document(hub_id), rec.encode_to_vec());
    let appended = p.append_receipt(Receipt {
        event: ReceiptEvent::Accepted as i32,
        actor: actor.clone(),
        from: doc.from.to_string(),
        document_id: doc.document_id.clone(),
        hub_document_id: hub_id,
        header_sha256: doc.header_sha256.to_vec(),
        detail: to.iter().map(AgencyCode::as_str).collect::<Vec<_>>().join(","),
        recipients: to.iter().map(AgencyCode::to_string).collect(),
        business_type: business as i32,
        // The original (the first one a replacement replaces).
        reference_document_id: originals
            .first()
            .map(|(o, _)| o.document_id.clone())
            .unwrap_or_default(),
        ..Default::default()
    })?;
    debug_assert_eq!(appended, receipt_index);
    p.put(idem, hub_id.to_be_bytes().to_vec());
    for (orig, concerns) in &originals {
        p.put(keys::correction(orig.hub_id, hub_id), concerns.join(",").into_bytes());
    }
    for (addressed, actual) in &redirects {
        let mut r = document_receipt(ReceiptEvent::Redirected, HUB_ACTOR, &rec, addressed, 0);
        r.detail = format!("to {actual}, its successor");
        r.recipients = vec![actual.to_string()];
        let index = p.append_receipt(r)?;
        // A document from another hub: its sender's hub learns where the
        // copy went.
        super::peers::report_back(p, &rec, index);
    }

    // Who receives this document.
    // Confirmation: "the same day, at the latest the next working day"
    // from this batch's time, the time on the ACCEPTED receipt
    // (`truc_core::calendar`).
    let deadlines = (
        doc.delivery_deadline_unix_ms,
        p.calendar.confirmation_deadline(p.time_unix_ms),
    );
    let mut receivers: BTreeSet<String> = BTreeSet::new();
    match business {
        BusinessType::New => receivers.extend(to.iter().map(|c| c.to_string())),
        BusinessType::Revoke => {
            let orig = &originals[0].0;
            let why = format!("revoked by hub document {hub_id}");
            for r in &to {
                // A copy withdrawn already (taken back, updated away) has
                // nothing to revoke and nobody to ask.
                let state = recipient_state(p, orig.hub_id, r.as_str())?;
                if matches!(&state, Some(s) if s.state == TransportState::Withdrawn as i32) {
                    continue;
                }
                if !withdraw_if_queued(p, orig, r.as_str(), &actor, &why)? {
                    expect_reply(p, orig.hub_id, r.as_str())?;
                    receivers.insert(r.to_string());
                }
            }
        }
        BusinessType::Replace => {
            // The recipients handle the new document (01–06): no 15/16 is
            // asked (truc_core::status_rules).
            let why = format!("replaced by {:?}", doc.document_id);
            for (orig, concerns) in &originals {
                for r in concerns {
                    withdraw_if_queued(p, orig, r, &actor, &why)?;
                }
            }
            receivers.extend(to.iter().map(|c| c.to_string()));
        }
        BusinessType::Update => {
            let mut orig = originals.swap_remove(0).0;
            let why = format!("removed from the recipients by hub document {hub_id}");
            let removed: Vec<String> = removed_by_update(&orig, &to, &doc.receiver_changes).cloned().collect();
            for r in &removed {
                if withdrawn(p, orig.hub_id, r)? {
                    continue; // nothing to withdraw, nobody to ask
                }
                if !withdraw_if_queued(p, &orig, r, &actor, &why)? {
                    expect_reply(p, orig.hub_id, r)?;
                    receivers.insert(r.clone());
                }
            }
            for t in &to {
                let t = t.as_str();
                if withdrawn(p, orig.hub_id, t)? {
                    // Withdrawn before it was delivered, and a recipient
                    // again: the original is sent again.
                    match via(t) {
                        Some(peer) => forwards.add(p, &peer, t, &orig, deadlines)?,
                        None => enqueue_copy(p, t, &orig, deadlines)?,
                    }
                } else if orig.recipients.iter().any(|r| r == t) {
                    expect_reply(p, orig.hub_id, t)?;
                } else {
                    // Added: the original too.
                    match via(t) {
                        Some(peer) => forwards.add(p, &peer, t, &orig, deadlines)?,
                        None => enqueue_copy(p, t, &orig, deadlines)?,
                    }
                    orig.recipients.push(t.to_string());
                }
                receivers.insert(t.to_string());
            }
            p.put(keys::document(orig.hub_id), orig.encode_to_vec());
        }
    }
    let mut notify = Vec::with_capacity(receivers.len());
    for r in &receivers {
        if let Some(peer) = via(r) {
            forwards.add(p, &peer, r, &rec, deadlines)?;
            continue;
        }
        enqueue_copy(p, r, &rec, deadlines)?;
        notify.push(AgencyCode::parse(r).map_err(|e| StoreError::corrupt_from(format!("agency code {r}"), e))?);
    }
    forwards.flush(p)?;
    Ok(Sent {
        hub_id,
        accepted_at: now,
        duplicate: false,
        receipt_index,
        notify,
        restored: false,
    })
}

/// Record a status and route it; returns the receipt index and the agencies
/// whose outbox changed. Who may report which code when is the table in
/// `truc_core::status_rules`; anything else is refused before anything is
/// written.
pub(crate) fn report_status(p: &mut Batch<'_>, r: StatusReport) -> Result<(u64, Vec<AgencyCode>), StoreError> {
    let unknown = || StoreError::UnknownDocument {
        from: r.document_from.to_string(),
        document_id: r.document_id.clone(),
    };
    let v = p
        .get(&keys::idempotency(r.document_from.as_str(), &r.document_id))?
        .ok_or_else(unknown)?;
    let hub_id = keys::u64_value(&v).ok_or_else(|| StoreError::corrupt("idempotency key"))?;
    let rec = document(p, hub_id)?;
    let rule = status_rules::rule(r.code as i32)
        .ok_or_else(|| StoreError::InvalidArgument(format!("status code {}", r.code as i32)))?;
    let is_sender = r.reporter == r.document_from;
    let mut receipt = Receipt {
        event: ReceiptEvent::StatusReported as i32,
        actor: r.actor.uri(),
        from: rec.from.clone(),
        document_id: rec.document_id.clone(),
        hub_document_id: hub_id,
        header_sha256: rec.header_sha256.clone(),
        status_code: r.code as i32,
        description: r.description.clone(),
        staff: r.staff.clone(),
        ..Default::default()
    };
    if rule.by == Party::Sender {
        if !is_sender {
            return Err(StoreError::NotEntitled(format!(
                "only the sender {} may take back {:?} (status 13)",
                rec.from, rec.document_id
            )));
        }
        let mut open = Vec::new();
        for to in &rec.recipients {
            let state = recipient_state(p, hub_id, to)?;
            if !matches!(&state, Some(s) if s.state == TransportState::Withdrawn as i32) {
                open.push(to.clone());
            }
        }
        if open.is_empty() {
            return Err(StoreError::Precondition(format!(
                "nothing to take back: every copy of {:?} was withdrawn",
                rec.document_id
            )));
        }
        let index = p.append_receipt(receipt)?;
        let mut notify = Vec::new();
        let why = format!("taken back by its sender (status 13, receipt {index})");
        for to in open {
            if !withdraw_if_queued(p, &rec, &to, &r.actor.uri(), &why)? {
                expect_reply(p, hub_id, &to)?;
                match recipient_state(p, hub_id, &to)?.filter(|s| !s.via.is_empty()) {
                    // On another hub: the take-back travels there.
                    Some(s) => {
                        enqueue(p, &super::peers::outbox(&s.via), hub_id, rec.priority, Some(index), 0);
                        continue;
                    }
                    None => enqueue(p, &to, hub_id, rec.priority, Some(index), 0),
                };
            }
            notify.push(AgencyCode::parse(&to).map_err(|e| StoreError::corrupt_from(format!("agency code {to}"), e))?);
        }
        return Ok((index, notify));
    }
    // 01–06, 15, 16: from a recipient, on its copy.
    let Some(mut state) = recipient_state(p, hub_id, r.reporter.as_str())? else {
        return Err(StoreError::NotEntitled(format!(
            "{} is not a recipient of {:?} from {}",
            r.reporter, rec.document_id, rec.from
        )));
    };
    let view = status_rules::CopyView {
        transport: state.state,
        progress: state.progress(),
        question_open: state.reply_expected,
    };
    let effect = status_rules::check_recipient(rule, r.reporter.as_str(), &view)
        .map_err(|e| StoreError::Precondition(format!("{:?} from {}: {}", rec.document_id, rec.from, e.0)))?;
    if effect.answered {
        state.reply_expected = false;
    }
    if let Some(progress) = effect.progress {
        state.progress = progress;
    } else {
        state.progress = view.progress;
    }
    receipt.recipient = r.reporter.to_string();
    let index = p.append_receipt(receipt)?;
    state.status = r.code as i32;
    state.status_description = r.description;
    state.status_at_unix_ms = p.time_unix_ms;
    super::deadlines::put_state(p, hub_id, r.reporter.as_str(), &state, Some(rec.due_date_unix_ms))?;
    if !rec.arrived_via.is_empty() {
        // The sender is on another hub: the status goes back the way the
        // document came.
        super::peers::report_back(p, &rec, index);
        return Ok((index, Vec::new()));
    }
    enqueue(p, &rec.from, hub_id, rec.priority, Some(index), 0);
    Ok((index, vec![r.document_from]))
}
