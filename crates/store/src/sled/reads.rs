//! What the hub reads without going through the writer: queues, Track, and
//! audit queries. Called on blocking threads.

use std::collections::{HashMap, HashSet};

use prost::Message;
use truc_core::AgencyCode;
use truc_proto::v1::{Receipt, RecipientTrack, SignedDocument, TrackResponse};

use super::log::{BodyFiles, BodyRef};
use super::proofs;
use crate::keys::{self, tag};
use crate::machine::deadlines;
use crate::records::{DocumentRecord, OutboxEntry, RecipientState};
use crate::{
    PayloadRef, PeerItem, PeerItemKind, QueueEntry, QueueStats, QueuedItem, ReceiptFilter, ReceiptPage, ReceiptQuery,
    StoreError,
};

pub(super) fn document(tree: &crate::sled::view::Tree, hub_id: u64) -> Result<DocumentRecord, StoreError> {
    let v = tree
        .get(keys::document(hub_id))?
        .ok_or_else(|| StoreError::corrupt(format!("document {hub_id}")))?;
    DocumentRecord::decode(v.as_ref()).map_err(|e| StoreError::corrupt_from(format!("document {hub_id}"), e))
}

fn hub_id_of(tree: &crate::sled::view::Tree, from: &AgencyCode, document_id: &str) -> Result<Option<u64>, StoreError> {
    Ok(tree
        .get(keys::idempotency(from.as_str(), document_id))?
        .and_then(|v| keys::u64_value(&v)))
}

/// Up to `limit` items of queue `t` (outbox or dead letters) of `agency`, in
/// key order, leaving out the ids in `skip`.
pub(super) fn queue(
    tree: &crate::sled::view::Tree,
    bodies: &BodyFiles,
    t: u8,
    agency: &AgencyCode,
    skip: &HashSet<u64>,
    limit: usize,
) -> Result<Vec<QueuedItem>, StoreError> {
    let mut out = Vec::new();
    let mut docs = HashMap::new();
    let items = tree.scan_prefix(keys::queue_prefix(t, agency.as_str()));
    collect(tree, bodies, items, skip, limit, &mut out, &mut docs, t == tag::DEAD)?;
    Ok(out)
}

/// Outbox items of `agency`, in each priority band from `from[band]` on.
pub(super) fn outbox_from(
    tree: &crate::sled::view::Tree,
    bodies: &BodyFiles,
    agency: &AgencyCode,
    from: [u64; 5],
    skip: &HashSet<u64>,
    limit: usize,
) -> Result<Vec<QueuedItem>, StoreError> {
    let mut out = Vec::new();
    let mut docs = HashMap::new();
    for (band, start) in from.into_iter().enumerate() {
        if out.len() >= limit {
            break;
        }
        let band = band as u64;
        let end = (band + 1) << 48;
        if start >= end {
            continue; // the caller knows the band holds nothing new
        }
        let lo = keys::queue_item(tag::OUTBOX, agency.as_str(), start.max(band << 48));
        let hi = keys::queue_item(tag::OUTBOX, agency.as_str(), end);
        collect(
            tree,
            bodies,
            tree.range(lo..hi),
            skip,
            limit,
            &mut out,
            &mut docs,
            false,
        )?;
    }
    Ok(out)
}

/// For a dead letter whose stored copy is damaged: an unsigned header that
/// names the document (sender, document id), nothing else.
fn damaged_stub(rec: &DocumentRecord) -> SignedDocument {
    let header = truc_proto::v1::DocumentHeader {
        from: rec.from.clone(),
        document_id: rec.document_id.clone(),
        ..Default::default()
    };
    SignedDocument {
        header: header.encode_to_vec(),
        ..Default::default()
    }
}

/// Append the items of `kvs` not in `skip` to `out`, up to `limit` in all,
/// reading each document once (`docs`). `listing_dead`: a damaged body is
/// listed as [`damaged_stub`] instead of failing the listing.
#[allow(clippy::too_many_arguments)] // internal; one call per queue kind
fn collect(
    tree: &crate::sled::view::Tree,
    bodies: &BodyFiles,
    kvs: crate::sled::view::Iter,
    skip: &HashSet<u64>,
    limit: usize,
    out: &mut Vec<QueuedItem>,
    docs: &mut HashMap<u64, (DocumentRecord, SignedDocument)>,
    listing_dead: bool,
) -> Result<(), StoreError> {
    for kv in kvs {
        if out.len() >= limit {
            break;
        }
        let (k, v) = kv?;
        let id = keys::queue_item_id(&k).ok_or_else(|| StoreError::corrupt("queue key"))?;
        if skip.contains(&id) {
            continue;
        }
        let entry = OutboxEntry::decode(v.as_ref()).map_err(|e| StoreError::corrupt_from("outbox entry", e))?;
        if let Some(index) = entry.status_receipt {
            let rec = document(tree, entry.hub_id)?;
            out.push(QueuedItem {
                delivery_id: id,
                attempts: entry.attempts,
                hub_document_id: entry.hub_id,
                accepted_at_unix_ms: rec.accepted_at_unix_ms,
                document: None,
                status: Some(proofs::proven_receipt(tree, index)?),
                payload_separate: false,
                dead_letter_reason: entry.dead_reason,
            });
            continue;
        }
        let (rec, document) = match docs.entry(entry.hub_id) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let rec = document(tree, entry.hub_id)?;
                let doc = match signed_document(tree, bodies, &rec) {
                    // Listing dead letters: a damaged one is listed by name.
                    Err(StoreError::DocumentDamaged { .. }) if listing_dead => damaged_stub(&rec),
                    r => r?,
                };
                e.insert((rec, doc))
            }
        };
        out.push(QueuedItem {
            delivery_id: id,
            attempts: entry.attempts,
            hub_document_id: rec.hub_id,
            accepted_at_unix_ms: rec.accepted_at_unix_ms,
            document: Some(document.clone()),
            status: None,
            payload_separate: rec.external_payload,
            dead_letter_reason: entry.dead_reason,
        });
    }
    Ok(())
}

pub(super) fn track(
    tree: &crate::sled::view::Tree,
    from: &AgencyCode,
    document_id: &str,
) -> Result<Option<TrackResponse>, StoreError> {
    let Some(hub_id) = hub_id_of(tree, from, document_id)? else {
        return Ok(None);
    };
    let rec = document(tree, hub_id)?;
    let mut recipients = Vec::new();
    let prefix = keys::recipients_prefix(hub_id);
    for kv in tree.scan_prefix(&prefix) {
        let (k, v) = kv?;
        let agency = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
        let s = RecipientState::decode(v.as_ref()).map_err(|e| StoreError::corrupt_from("recipient state", e))?;
        let open_for_due = deadlines::open_for_due(&s);
        recipients.push(RecipientTrack {
            agency,
            state: s.state,
            attempts: s.attempts,
            state_at_unix_ms: s.state_at_unix_ms,
            status: s.status,
            status_description: s.status_description,
            status_at_unix_ms: s.status_at_unix_ms,
            delivery_deadline_unix_ms: s.delivery_deadline_unix_ms,
            confirm_deadline_unix_ms: s.confirm_deadline_unix_ms,
            overdue: false,
            // Still this recipient's to finish (by its progress, which an
            // answer 15/16 does not hide); whether the DueDate has passed
            // is the caller's to say (`Store::track`).
            past_due: open_for_due,
            via_hub: s.via,
        });
    }
    // Header order, as the sender wrote it (added recipients last).
    recipients.sort_by_key(|r| rec.recipients.iter().position(|x| *x == r.agency).unwrap_or(usize::MAX));
    // Its revokes, updates and replacements, in hub id (acceptance) order.
    let mut corrections = Vec::new();
    for kv in tree.scan_prefix(keys::corrections_prefix(hub_id)) {
        let (k, v) = kv?;
        let id = keys::queue_item_id(&k).ok_or_else(|| StoreError::corrupt("correction key"))?;
        let c = document(tree, id)?;
        let agencies = String::from_utf8_lossy(&v);
        corrections.push(truc_proto::v1::Correction {
            business_type: c.business_type,
            document_id: c.document_id,
            hub_document_id: id,
            accepted_at_unix_ms: c.accepted_at_unix_ms,
            reason: c.business_reason,
            agencies: agencies
                .split(',')
                .filter(|a| !a.is_empty())
                .map(str::to_string)
                .collect(),
        });
    }
    Ok(Some(TrackResponse {
        corrections,
        hub_document_id: hub_id,
        document_id: rec.document_id,
        accepted_at_unix_ms: rec.accepted_at_unix_ms,
        priority: rec.priority,
        subject: rec.subject,
        recipients,
        due_date_unix_ms: rec.due_date_unix_ms,
    }))
}

/// Whether `agency` sent or receives document `hub_id`.
fn is_party(tree: &crate::sled::view::Tree, hub_id: u64, agency: &AgencyCode) -> Result<bool, StoreError> {
    let rec = document(tree, hub_id)?;
    Ok(rec.from == agency.as_str() || tree.contains_key(keys::recipient(hub_id, agency.as_str()))?)
}

fn receipt_time(tree: &crate::sled::view::Tree, index: u64) -> Result<i64, StoreError> {
    let bytes = proofs::receipt_bytes(tree, index)?;
    Ok(Receipt::decode(bytes.as_slice())
        .map_err(|e| StoreError::corrupt_from(format!("receipt {index}"), e))?
        .time_unix_ms)
}

/// The first receipt index with time >= `since` (receipt times never
/// decrease), by binary search over `[0, size)`.
fn first_at_or_after(tree: &crate::sled::view::Tree, since: i64, size: u64) -> Result<u64, StoreError> {
    let (mut lo, mut hi) = (0, size);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if receipt_time(tree, mid)? < since {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    Ok(lo)
}

pub(super) fn receipts(tree: &crate::sled::view::Tree, q: &ReceiptQuery) -> Result<ReceiptPage, StoreError> {
    let (head, size) = match proofs::latest_tree_head(tree)? {
        Some(x) => x,
        None => return Err(StoreError::Precondition("the receipt log is empty".into())),
    };
    // Candidate receipt indexes in log order, starting at the page token.
    let indexes: Box<dyn Iterator<Item = Result<u64, StoreError>>> = match &q.filter {
        ReceiptFilter::Document { from, document_id } => {
            let hub_id = hub_id_of(tree, from, document_id)?.ok_or_else(|| StoreError::UnknownDocument {
                from: from.to_string(),
                document_id: document_id.clone(),
            })?;
            if let Some(me) = &q.visible_to {
                if !is_party(tree, hub_id, me)? {
                    return Err(StoreError::NotEntitled(format!(
                        "{me} is neither the sender nor a recipient of {document_id:?}"
                    )));
                }
            }
            let prefix = keys::doc_receipts_prefix(hub_id);
            // A revoke or update sent under the original's id is part of
            // that document's story: its receipts are listed with the
            // original's, in log order.
            let mut merged: Vec<u64> = Vec::new();
            for kv in tree.scan_prefix(keys::corrections_prefix(hub_id)) {
                let (k, _) = kv?;
                let id = keys::queue_item_id(&k).ok_or_else(|| StoreError::corrupt("correction key"))?;
                if document(tree, id)?.document_id == *document_id {
                    for i in index_scan(tree, &keys::doc_receipts_prefix(id), q.page_token) {
                        merged.push(i?);
                    }
                }
            }
            if merged.is_empty() {
                Box::new(index_scan(tree, &prefix, q.page_token))
            } else {
                for i in index_scan(tree, &prefix, q.page_token) {
                    merged.push(i?);
                }
                merged.sort_unstable();
                Box::new(merged.into_iter().map(Ok))
            }
        }
        ReceiptFilter::Agency(agency) => {
            if let Some(me) = &q.visible_to {
                if me != agency {
                    return Err(StoreError::NotEntitled(format!(
                        "{me} may query only its own receipts, not {agency}'s"
                    )));
                }
            }
            let prefix = keys::queue_prefix(tag::AGENCY_RECEIPTS, agency.as_str());
            Box::new(agency_index_scan(tree, &prefix, q.page_token))
        }
        ReceiptFilter::All => {
            if let Some(me) = &q.visible_to {
                return Err(StoreError::NotEntitled(format!(
                    "{me} may query receipts of its own documents or its own agency only"
                )));
            }
            let start = if q.since_unix_ms > 0 {
                first_at_or_after(tree, q.since_unix_ms, size)?
            } else {
                0
            };
            Box::new((start.max(q.page_token)..size).map(Ok))
        }
    };
    let mut receipts = Vec::new();
    let mut next_page_token = 0;
    for index in indexes {
        let index = index?;
        if index >= size {
            break;
        }
        if q.since_unix_ms > 0 || q.until_unix_ms > 0 {
            let t = receipt_time(tree, index)?;
            if q.until_unix_ms > 0 && t > q.until_unix_ms {
                break; // times never decrease
            }
            if t < q.since_unix_ms {
                continue;
            }
        }
        if receipts.len() == q.page_size {
            next_page_token = index;
            break;
        }
        receipts.push(proofs::proven_at(tree, index, size)?);
    }
    Ok(ReceiptPage {
        tree_head: head,
        receipts,
        next_page_token,
    })
}

/// The entries under `prefix` whose keys end at or past index `start`
/// (8 bytes, big-endian).
fn index_entries(tree: &crate::sled::view::Tree, prefix: &[u8], start: u64) -> crate::sled::view::Iter {
    let mut from = prefix.to_vec();
    from.extend_from_slice(&start.to_be_bytes());
    let mut to = prefix.to_vec();
    to.extend_from_slice(&u64::MAX.to_be_bytes());
    tree.range(from..=to)
}

/// Receipt indexes stored as the last 8 bytes of keys under `prefix`, from
/// `start` on.
fn index_scan(
    tree: &crate::sled::view::Tree,
    prefix: &[u8],
    start: u64,
) -> impl Iterator<Item = Result<u64, StoreError>> {
    index_entries(tree, prefix, start).map(|kv| {
        let (k, _) = kv?;
        keys::queue_item_id(&k).ok_or_else(|| StoreError::corrupt("receipt index key"))
    })
}

/// Receipt indexes naming an agency (`machine/agency_receipts.rs`), under
/// `prefix`, from `start` on: the first key read is the first posting
/// whose last index is at least `start`.
fn agency_index_scan(
    tree: &crate::sled::view::Tree,
    prefix: &[u8],
    start: u64,
) -> impl Iterator<Item = Result<u64, StoreError>> {
    index_entries(tree, prefix, start).flat_map(move |kv| {
        let indexes = kv.and_then(|(k, v)| crate::machine::agency_receipts::decode(&k, &v));
        let items: Vec<Result<u64, StoreError>> = match indexes {
            Ok(v) => v.into_iter().filter(|&i| i >= start).map(Ok).collect(),
            Err(e) => vec![Err(e)],
        };
        items
    })
}

/// Dead letters, oldest item and overdue urgent items of one queue. Reads
/// the first item of each priority and the urgent items only.
/// `outbox`: an agency code, or a peer's outbox name.
pub(super) fn queue_stats(tree: &crate::sled::view::Tree, outbox: &str, now: i64) -> Result<QueueStats, StoreError> {
    let mut s = QueueStats {
        dead_letters: tree.scan_prefix(keys::queue_prefix(tag::DEAD, outbox)).count() as u64,
        ..Default::default()
    };
    let prefix = keys::queue_prefix(tag::OUTBOX, outbox);
    for priority in 0..=4 {
        // Delivery ids of one priority share their top two bytes.
        let mut rank_prefix = prefix.clone();
        rank_prefix.extend_from_slice(&keys::delivery_id(priority, 0).to_be_bytes()[..2]);
        let mut items = tree.scan_prefix(&rank_prefix);
        let Some(first) = items.next().transpose()? else {
            continue;
        };
        let decode = |v: &[u8]| OutboxEntry::decode(v).map_err(|e| StoreError::corrupt_from("outbox entry", e));
        let entry = decode(&first.1)?;
        if s.oldest_enqueued_unix_ms == 0 || entry.enqueued_at_unix_ms < s.oldest_enqueued_unix_ms {
            s.oldest_enqueued_unix_ms = entry.enqueued_at_unix_ms;
        }
        if priority == 0 {
            continue;
        }
        for kv in std::iter::once(Ok(first)).chain(items) {
            let entry = decode(&kv?.1)?;
            if entry.status_receipt.is_some() {
                continue;
            }
            let Some(v) = tree.get(keys::recipient(entry.hub_id, outbox))? else {
                continue;
            };
            let state =
                RecipientState::decode(v.as_ref()).map_err(|e| StoreError::corrupt_from("recipient state", e))?;
            if state.delivery_deadline_unix_ms > 0 && now > state.delivery_deadline_unix_ms {
                s.overdue_urgent += 1;
            }
        }
    }
    s.past_due = deadlines::count_past(tree, outbox, deadlines::DUE, now)?;
    s.past_confirmation = deadlines::count_past(tree, outbox, deadlines::CONFIRM, now)?;
    Ok(s)
}

/// Up to `limit` items of peer `peer`'s outbox, leaving out `skip`.
pub(super) fn peer_items(
    tree: &crate::sled::view::Tree,
    bodies: &BodyFiles,
    peer: &str,
    skip: &HashSet<u64>,
    limit: usize,
    max_bytes: u64,
) -> Result<Vec<PeerItem>, StoreError> {
    let mut out = Vec::new();
    let mut bytes = 0u64;
    for kv in tree.scan_prefix(keys::queue_prefix(tag::OUTBOX, &crate::machine::peers::outbox(peer))) {
        if out.len() >= limit || (!out.is_empty() && bytes >= max_bytes) {
            break;
        }
        let (k, v) = kv?;
        let id = keys::queue_item_id(&k).ok_or_else(|| StoreError::corrupt("queue key"))?;
        if skip.contains(&id) {
            continue;
        }
        let entry = OutboxEntry::decode(v.as_ref()).map_err(|e| StoreError::corrupt_from("outbox entry", e))?;
        if !out.is_empty() && bytes + entry.bytes > max_bytes {
            break;
        }
        bytes += entry.bytes;
        let rec = document(tree, entry.hub_id)?;
        let kind = match entry.status_receipt {
            Some(index) => PeerItemKind::Report(proofs::proven_receipt(tree, index)?),
            None => PeerItemKind::Document {
                document: signed_document(tree, bodies, &rec)?,
                payload_external: rec.external_payload,
                recipients: entry
                    .recipients
                    .iter()
                    .map(|r| AgencyCode::parse(r).map_err(|e| StoreError::corrupt_from(format!("agency code {r}"), e)))
                    .collect::<Result<_, _>>()?,
                trace: rec.trace.clone(),
                header_sha256: rec.header_sha256.clone(),
                business_type: truc_proto::v1::BusinessType::try_from(rec.business_type).unwrap_or_default(),
            },
        };
        out.push(PeerItem {
            delivery_id: id,
            attempts: entry.attempts,
            hub_document_id: rec.hub_id,
            accepted_at_unix_ms: rec.accepted_at_unix_ms,
            enqueued_at_unix_ms: entry.enqueued_at_unix_ms,
            kind,
        });
    }
    Ok(out)
}

/// Up to `limit` waiting items after delivery id `after`, without payloads.
pub(super) fn queue_page(
    tree: &crate::sled::view::Tree,
    agency: &AgencyCode,
    after: u64,
    limit: usize,
) -> Result<Vec<QueueEntry>, StoreError> {
    let prefix = keys::queue_prefix(tag::OUTBOX, agency.as_str());
    let start = keys::queue_item(tag::OUTBOX, agency.as_str(), after.saturating_add(u64::from(after > 0)));
    let mut docs: HashMap<u64, DocumentRecord> = HashMap::new();
    let mut out = Vec::new();
    for kv in tree.range(start..) {
        let (k, v) = kv?;
        if !k.starts_with(&prefix) || out.len() >= limit {
            break;
        }
        let id = keys::queue_item_id(&k).ok_or_else(|| StoreError::corrupt("queue key"))?;
        let e = OutboxEntry::decode(v.as_ref()).map_err(|e| StoreError::corrupt_from("outbox entry", e))?;
        let rec = match docs.entry(e.hub_id) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(slot) => slot.insert(document(tree, e.hub_id)?),
        };
        out.push(QueueEntry {
            delivery_id: id,
            hub_document_id: e.hub_id,
            from: rec.from.clone(),
            document_id: rec.document_id.clone(),
            priority: truc_proto::v1::Priority::try_from(keys::delivery_priority(id)).unwrap_or_default(),
            enqueued_at_unix_ms: e.enqueued_at_unix_ms,
            attempts: e.attempts,
            status_notice: e.status_receipt.is_some(),
            bytes: e.bytes,
        });
    }
    Ok(out)
}

/// Document `hub_id`'s payload, for its sender or one of its recipients.
pub(super) fn payload(
    tree: &crate::sled::view::Tree,
    bodies: &BodyFiles,
    hub_id: u64,
    caller: &AgencyCode,
) -> Result<PayloadRef, StoreError> {
    if !tree.contains_key(keys::document(hub_id))? || !is_party(tree, hub_id, caller)? {
        // The same answer whether it does not exist or is someone else's.
        return Err(StoreError::NotEntitled(format!("{caller} has no document {hub_id}")));
    }
    let rec = document(tree, hub_id)?;
    if rec.external_payload {
        return Ok(PayloadRef::External {
            sha256: rec.payload_sha256,
            size: rec.payload_size,
        });
    }
    Ok(PayloadRef::Inline(signed_document(tree, bodies, &rec)?.payload))
}

/// The document as received: from the body log, or (stores written before
/// bodies moved out of sled) from the record and the `P` keyspace. A body
/// that fails its checksum or does not decode is `Damaged` (the caller
/// quarantines that one document and goes on).
pub(super) fn signed_document(
    tree: &crate::sled::view::Tree,
    bodies: &BodyFiles,
    rec: &DocumentRecord,
) -> Result<SignedDocument, StoreError> {
    let hub_id = rec.hub_id;
    let damaged = |what: String| StoreError::DocumentDamaged {
        hub_document_id: hub_id,
        what,
    };
    if !rec.body.is_empty() {
        let at = BodyRef::decode(&rec.body).ok_or_else(|| damaged("its body reference does not decode".into()))?;
        let bytes = bodies.read(at).map_err(|e| match e {
            StoreError::Corrupt { what, .. } => damaged(what),
            other => other,
        })?;
        return SignedDocument::decode(bytes.as_slice()).map_err(|_| damaged("its body does not decode".into()));
    }
    let payload = if rec.external_payload {
        Vec::new()
    } else {
        tree.get(keys::payload(&rec.payload_sha256))?
            .ok_or_else(|| StoreError::Precondition(format!("the payload of document {hub_id} has been collected")))?
            .to_vec()
    };
    Ok(SignedDocument {
        header: rec.header.clone(),
        signature: rec.signature.clone(),
        signature_scheme: rec.signature_scheme,
        signer_chain: rec.signer_chain.clone(),
        payload,
    })
}
