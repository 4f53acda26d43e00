//! The key layout of the store: one ordered tree (the view,
//! `sled/view.rs`), one leading tag byte per keyspace, fixed-width
//! big-endian integers so that byte order is numeric order and every queue
//! operation is a point lookup or a short range scan (O(log n) in queue
//! depth).
//!
//! | tag | key after the tag                        | value                       |
//! |-----|------------------------------------------|-----------------------------|
//! | `A` | agency code                              | `AgencyRecord`              |
//! | `C` | agency code                              | queued count (u64 BE)       |
//! | `D` | hub document id (u64)                    | `DocumentRecord`            |
//! | `I` | sender code, 0x00, document id           | hub document id (u64 BE)    |
//! | `P` | payload SHA-256                          | payload bytes               |
//! | `N` | payload SHA-256                          | `PayloadRefs` (copies left) |
//! | `K` | release time (i64 ms), payload SHA-256   | (empty) collectable payload |
//! | `O` | agency code, 0x00, delivery id (u64)     | `OutboxEntry`               |
//! | `X` | agency code, 0x00, delivery id (u64)     | acked: hub document id      |
//! | `Q` | agency code, 0x00, delivery id (u64)     | `OutboxEntry` (dead letter) |
//! | `S` | hub document id (u64), recipient code    | `RecipientState`            |
//! | `R` | receipt index (u64)                      | `Receipt` and the Merkle nodes its append created (`sled/leaves.rs`) |
//! | `E` | hub document id (u64), receipt index     | (empty) receipts of a doc   |
//! | `G` | agency code, 0x00, receipt index (u64)   | a batch's receipts naming the agency, up to that index (`machine/agency_receipts.rs`); empty: that receipt alone (older stores) |
//! | `M` | level (u8), index (u64)                  | Merkle node hash (stores written before `leaves.rs`) |
//! | `T` | tree size (u64)                          | serialized `SignedTreeHead` |
//! | `Z` | (none)                                   | `Meta` counters             |
//! | `J` | (none)                                   | replicated log position (local) |
//! | `V` | agency code ("" = hub), 0x00, local day (u32) | indicator counts (`sled/indicators.rs`) |
//! | `B` | sender code, 0x00, document id, 0x00, business type (u8), discriminator | hub document id (u64 BE): a revoke or update sent under the original's id |
//! | `L` | original's hub id (u64), correction's hub id (u64) | agencies it concerns, comma-separated |
//! | `W` | agency code                              | `RemoteAgencyRecord`: another hub's agency (federated directory) |
//!
//! A peer hub's outbox (federation) uses the `O`, `X`, `Q` and `C` keyspaces
//! under the name `~<peer id>`, which no agency code can take.
//!
//! A delivery id puts the priority rank in bits 48–50 (0 = hỏa tốc hẹn
//! giờ … 4 = thường) and a hub-wide sequence number below it, so a prefix
//! scan of `O<agency>\0` yields highest priority first, FIFO within each.

/// Tags of the keyspaces.
pub(crate) mod tag {
    pub(crate) const AGENCY: u8 = b'A';
    pub(crate) const QUEUED_COUNT: u8 = b'C';
    pub(crate) const DOCUMENT: u8 = b'D';
    pub(crate) const IDEMPOTENCY: u8 = b'I';
    pub(crate) const PAYLOAD: u8 = b'P';
    pub(crate) const PAYLOAD_REFS: u8 = b'N';
    pub(crate) const COLLECTABLE: u8 = b'K';
    pub(crate) const OUTBOX: u8 = b'O';
    pub(crate) const ACKED: u8 = b'X';
    pub(crate) const DEAD: u8 = b'Q';
    pub(crate) const RECIPIENT: u8 = b'S';
    pub(crate) const RECEIPT: u8 = b'R';
    pub(crate) const DOC_RECEIPTS: u8 = b'E';
    pub(crate) const AGENCY_RECEIPTS: u8 = b'G';
    pub(crate) const NODE: u8 = b'M';
    pub(crate) const TREE_HEAD: u8 = b'T';
    pub(crate) const META: u8 = b'Z';
    /// Indicators per agency and local day (`sled/indicators.rs`).
    pub(crate) const INDICATORS: u8 = b'V';
    /// Local only, never replicated: the position in the shared log this
    /// tree reflects (JetStream backend).
    pub(crate) const REPLICA_SEQ: u8 = b'J';
    /// A business action's idempotency key: a revoke or update sent as the
    /// axis sends them, under the original's document id.
    pub(crate) const ACTION: u8 = b'B';
    /// A document's revokes, updates and replacements.
    pub(crate) const CORRECTION: u8 = b'L';
    /// The deadlines of copies not yet done with: agency, kind, deadline,
    /// document (`machine/deadlines.rs`).
    pub(crate) const DEADLINE: u8 = b'U';
    /// Agencies of other hubs, from the federated directory
    /// (`machine/directory.rs`).
    pub(crate) const REMOTE_AGENCY: u8 = b'W';
}

/// Below 2^53 in all, so ids survive JSON numbers (JavaScript doubles).
const SEQ_BITS: u32 = 48;

/// The delivery id of the `seq`-th enqueued item at `priority` (0..=4).
pub fn delivery_id(priority: i32, seq: u64) -> u64 {
    let rank = 4 - priority.clamp(0, 4) as u64;
    (rank << SEQ_BITS) | (seq & ((1 << SEQ_BITS) - 1))
}

/// The priority (0..=4) encoded in a delivery id.
pub fn delivery_priority(id: u64) -> i32 {
    4 - ((id >> SEQ_BITS).min(4) as i32)
}

fn with_tag(tag: u8, cap: usize) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + cap);
    k.push(tag);
    k
}

pub(crate) fn agency(code: &str) -> Vec<u8> {
    let mut k = with_tag(tag::AGENCY, code.len());
    k.extend_from_slice(code.as_bytes());
    k
}

pub(crate) fn remote_agency(code: &str) -> Vec<u8> {
    let mut k = with_tag(tag::REMOTE_AGENCY, code.len());
    k.extend_from_slice(code.as_bytes());
    k
}

pub(crate) fn queued_count(code: &str) -> Vec<u8> {
    let mut k = with_tag(tag::QUEUED_COUNT, code.len());
    k.extend_from_slice(code.as_bytes());
    k
}

pub(crate) fn document(hub_id: u64) -> Vec<u8> {
    let mut k = with_tag(tag::DOCUMENT, 8);
    k.extend_from_slice(&hub_id.to_be_bytes());
    k
}

pub(crate) fn idempotency(from: &str, document_id: &str) -> Vec<u8> {
    let mut k = with_tag(tag::IDEMPOTENCY, from.len() + 1 + document_id.len());
    k.extend_from_slice(from.as_bytes());
    k.push(0);
    k.extend_from_slice(document_id.as_bytes());
    k
}

/// The idempotency key of a business action on document `document_id`:
/// its type and what tells one such action from another (empty for a
/// revoke: a document is revoked once; an update's content digest).
pub(crate) fn action(from: &str, document_id: &str, business_type: u8, discriminator: &[u8]) -> Vec<u8> {
    let mut k = with_tag(tag::ACTION, from.len() + document_id.len() + 3 + discriminator.len());
    k.extend_from_slice(from.as_bytes());
    k.push(0);
    k.extend_from_slice(document_id.as_bytes());
    k.push(0);
    k.push(business_type);
    k.extend_from_slice(discriminator);
    k
}

pub(crate) fn corrections_prefix(original: u64) -> Vec<u8> {
    let mut k = with_tag(tag::CORRECTION, 16);
    k.extend_from_slice(&original.to_be_bytes());
    k
}

pub(crate) fn correction(original: u64, correction: u64) -> Vec<u8> {
    let mut k = corrections_prefix(original);
    k.extend_from_slice(&correction.to_be_bytes());
    k
}

pub(crate) fn payload(sha256: &[u8]) -> Vec<u8> {
    let mut k = with_tag(tag::PAYLOAD, sha256.len());
    k.extend_from_slice(sha256);
    k
}

pub(crate) fn payload_refs(sha256: &[u8]) -> Vec<u8> {
    let mut k = with_tag(tag::PAYLOAD_REFS, sha256.len());
    k.extend_from_slice(sha256);
    k
}

/// A payload no copy needs since `released_at_unix_ms`: the keys sort by
/// release time, so the collector reads only the ones old enough.
pub(crate) fn collectable(released_at_unix_ms: i64, sha256: &[u8]) -> Vec<u8> {
    let mut k = with_tag(tag::COLLECTABLE, 8 + sha256.len());
    k.extend_from_slice(&(released_at_unix_ms.max(0) as u64).to_be_bytes());
    k.extend_from_slice(sha256);
    k
}

/// `tag` + agency + 0x00: the prefix of one agency's queue in keyspace `tag`.
pub(crate) fn queue_prefix(tag: u8, code: &str) -> Vec<u8> {
    let mut k = with_tag(tag, code.len() + 9);
    k.extend_from_slice(code.as_bytes());
    k.push(0);
    k
}

pub(crate) fn queue_item(tag: u8, code: &str, delivery_id: u64) -> Vec<u8> {
    let mut k = queue_prefix(tag, code);
    k.extend_from_slice(&delivery_id.to_be_bytes());
    k
}

/// The delivery id at the end of a queue key.
pub(crate) fn queue_item_id(key: &[u8]) -> Option<u64> {
    let tail: [u8; 8] = key.get(key.len().checked_sub(8)?..)?.try_into().ok()?;
    Some(u64::from_be_bytes(tail))
}

pub(crate) fn recipients_prefix(hub_id: u64) -> Vec<u8> {
    let mut k = with_tag(tag::RECIPIENT, 8 + 16);
    k.extend_from_slice(&hub_id.to_be_bytes());
    k
}

pub(crate) fn recipient(hub_id: u64, code: &str) -> Vec<u8> {
    let mut k = recipients_prefix(hub_id);
    k.extend_from_slice(code.as_bytes());
    k
}

pub(crate) fn doc_receipts_prefix(hub_id: u64) -> Vec<u8> {
    let mut k = with_tag(tag::DOC_RECEIPTS, 16);
    k.extend_from_slice(&hub_id.to_be_bytes());
    k
}

pub(crate) fn doc_receipt(hub_id: u64, index: u64) -> Vec<u8> {
    let mut k = doc_receipts_prefix(hub_id);
    k.extend_from_slice(&index.to_be_bytes());
    k
}

pub(crate) fn receipt(index: u64) -> Vec<u8> {
    let mut k = with_tag(tag::RECEIPT, 8);
    k.extend_from_slice(&index.to_be_bytes());
    k
}

pub(crate) fn node(level: u8, index: u64) -> Vec<u8> {
    let mut k = with_tag(tag::NODE, 9);
    k.push(level);
    k.extend_from_slice(&index.to_be_bytes());
    k
}

pub(crate) fn tree_head(size: u64) -> Vec<u8> {
    let mut k = with_tag(tag::TREE_HEAD, 8);
    k.extend_from_slice(&size.to_be_bytes());
    k
}

pub(crate) fn meta() -> Vec<u8> {
    vec![tag::META]
}

pub(crate) fn replica_seq() -> Vec<u8> {
    vec![tag::REPLICA_SEQ]
}

pub(crate) fn u64_value(v: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(v.try_into().ok()?))
}

/// The deadlines of `agency`'s copies of one kind (`machine/deadlines.rs`).
pub(crate) fn deadlines_prefix(agency: &str, kind: u8) -> Vec<u8> {
    let mut k = queue_prefix(tag::DEADLINE, agency);
    k.push(kind);
    k
}

/// One copy's deadline of one kind: `agency`, 0x00, kind, deadline (Unix
/// ms), hub document id.
pub(crate) fn deadline(agency: &str, kind: u8, at_unix_ms: i64, hub_id: u64) -> Vec<u8> {
    let mut k = deadlines_prefix(agency, kind);
    k.extend_from_slice(&(at_unix_ms.max(0) as u64).to_be_bytes());
    k.extend_from_slice(&hub_id.to_be_bytes());
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_ids_sort_by_priority_then_sequence() {
        let mut ids = [
            delivery_id(0, 1),
            delivery_id(3, 5),
            delivery_id(0, 0),
            delivery_id(1, 2),
            delivery_id(3, 4),
        ];
        ids.sort();
        let order: Vec<(i32, u64)> = ids.iter().map(|&i| (delivery_priority(i), i & 0xff)).collect();
        assert_eq!(order, vec![(3, 4), (3, 5), (1, 2), (0, 0), (0, 1)]);
    }

    #[test]
    fn queue_keys_order_like_ids_and_round_trip() {
        let a = queue_item(tag::OUTBOX, "G09.01", delivery_id(4, 9));
        let b = queue_item(tag::OUTBOX, "G09.01", delivery_id(0, 1));
        assert!(a < b);
        assert_eq!(queue_item_id(&a), Some(delivery_id(4, 9)));
        assert!(a.starts_with(&queue_prefix(tag::OUTBOX, "G09.01")));
        // A code that extends another's is a different queue.
        assert!(!queue_item(tag::OUTBOX, "G09.011", 1).starts_with(&queue_prefix(tag::OUTBOX, "G09.01")));
    }
}
