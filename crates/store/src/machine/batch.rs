//! One commit batch being built: the writes so far, readable back
//! (read-your-writes), and the receipts appended to the Merkle log.

use std::collections::HashMap;

use prost::Message;
use truc_core::merkle::{self, Hash, NodeSource};
use truc_proto::v1::Receipt;

use super::{agency_receipts, leaves, Bodies, Read};
use crate::keys;
use crate::records::{AgencyRecord, Meta};
use crate::StoreError;

/// A key and its value.
pub(crate) type KeyValue = (Vec<u8>, Vec<u8>);
/// Agency → change of (items, payload bytes) in its outbox.
pub(crate) type QueueDeltas = HashMap<String, (i64, i64)>;

pub(crate) struct Batch<'t> {
    tree: &'t dyn Read,
    /// This batch's writes: key → new value (`None`: deleted).
    overlay: HashMap<Vec<u8>, Option<Vec<u8>>>,
    pub(crate) meta: Meta,
    /// Agencies changed in this batch (applied to the cache after commit).
    pub(crate) agencies: Vec<AgencyRecord>,
    /// Change of each agency's queued count in this batch.
    pub(crate) queued_delta: QueueDeltas,
    /// The batch's time, stamped on its receipts.
    pub(crate) time_unix_ms: i64,
    /// Where document bodies go (the commit log's, or inline).
    pub(crate) bodies: &'t mut dyn Bodies,
    /// The axis's calendar: which local day the indicators count a receipt
    /// on (`indicators.rs`), and the confirmation deadline of new copies.
    pub(crate) calendar: std::sync::Arc<truc_core::Calendar>,
    /// Merkle nodes and receipts appended by this batch, kept to prove the
    /// batch's receipts without reading them back.
    appended: Appended,
    /// This batch's receipts by the agencies they name, indexed when the
    /// batch is sealed (`agency_receipts.rs`).
    agency_receipts: agency_receipts::Pending,
    /// The disk's free bytes when this batch first asked (`disk_short`),
    /// and the bytes it admitted since.
    disk: std::cell::Cell<Option<(Option<u64>, u64)>>,
    /// Keys written or deleted, and queue counts changed, so far
    /// (`Batch::wrote_since`).
    writes: u64,
    /// Why this batch must not be committed: a command failed after it had
    /// begun to write (`commands::apply`).
    spoiled: Option<String>,
}

/// What a batch appended to the Merkle log.
#[derive(Debug, Default)]
pub(crate) struct Appended {
    /// New nodes by (level, index).
    pub(crate) nodes: HashMap<(u8, u64), Hash>,
    /// New receipts by index, serialized.
    pub(crate) receipts: HashMap<u64, Vec<u8>>,
}

/// A batch ready to be applied.
pub(crate) struct Ready {
    /// Key → new value (`None`: delete).
    pub(crate) writes: HashMap<Vec<u8>, Option<Vec<u8>>>,
    pub(crate) meta: Meta,
    pub(crate) agencies: Vec<AgencyRecord>,
    pub(crate) queued_delta: QueueDeltas,
    pub(crate) appended: Appended,
}

impl<'t> Batch<'t> {
    /// A batch over the committed state `tree`, at `now` (receipt times
    /// never go backwards, even if the clock does).
    pub(crate) fn new(
        tree: &'t dyn Read,
        meta: Meta,
        bodies: &'t mut dyn Bodies,
        now_unix_ms: i64,
        calendar: std::sync::Arc<truc_core::Calendar>,
    ) -> Self {
        let time_unix_ms = now_unix_ms.max(meta.last_time_unix_ms);
        Self {
            tree,
            overlay: HashMap::new(),
            meta,
            agencies: Vec::new(),
            queued_delta: HashMap::new(),
            time_unix_ms,
            bodies,
            calendar,
            appended: Appended::default(),
            agency_receipts: agency_receipts::Pending::default(),
            disk: std::cell::Cell::new(None),
            writes: 0,
            spoiled: None,
        }
    }

    /// A command failed with `e` after writing part of itself here.
    pub(crate) fn spoil(&mut self, e: &StoreError) {
        self.spoiled.get_or_insert_with(|| truc_core::error_chain(e));
    }

    /// Why nothing of this batch may be committed, if so.
    pub(crate) fn spoiled(&self) -> Option<&str> {
        self.spoiled.as_deref()
    }

    /// How far this batch's writes have gone (see [`Batch::wrote_since`]).
    pub(crate) fn write_mark(&self) -> u64 {
        self.writes
    }

    /// Whether anything was written since `mark`. Every command checks
    /// first and writes only when it will succeed; one that fails after
    /// writing (a read that fails half-way) has left part of itself in the
    /// batch, and the writer must then commit none of it.
    pub(crate) fn wrote_since(&self, mark: u64) -> bool {
        self.writes != mark
    }

    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(v) = self.overlay.get(key) {
            return Ok(v.clone());
        }
        self.tree.get(key)
    }

    pub(crate) fn contains(&self, key: &[u8]) -> Result<bool, StoreError> {
        if let Some(v) = self.overlay.get(key) {
            return Ok(v.is_some());
        }
        self.tree.contains(key)
    }

    pub(crate) fn get_msg<M: Message + Default>(&self, key: &[u8], what: &str) -> Result<Option<M>, StoreError> {
        match self.get(key)? {
            None => Ok(None),
            Some(v) => M::decode(v.as_slice())
                .map(Some)
                .map_err(|e| StoreError::corrupt_from(what, e)),
        }
    }

    /// Every key and value under `prefix`, this batch's writes included.
    pub(crate) fn scan(&self, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError> {
        let mut out = std::collections::BTreeMap::new();
        for (k, v) in self.tree.scan_prefix(prefix)? {
            out.insert(k, Some(v));
        }
        for (k, v) in &self.overlay {
            if k.starts_with(prefix) {
                out.insert(k.clone(), v.clone());
            }
        }
        Ok(out.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))).collect())
    }

    /// Up to `limit` committed keys in `from..to` that this batch has not
    /// deleted (keys this batch added are left out).
    pub(crate) fn committed_keys(&self, from: &[u8], to: &[u8], limit: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut out = Vec::new();
        self.tree.range(from, to, &mut |k, _| {
            if out.len() >= limit {
                return false;
            }
            if !matches!(self.overlay.get(k), Some(None)) {
                out.push(k.to_vec());
            }
            true
        })?;
        Ok(out)
    }

    pub(crate) fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.writes += 1;
        self.overlay.insert(key, Some(value));
    }

    pub(crate) fn del(&mut self, key: Vec<u8>) {
        self.writes += 1;
        self.overlay.insert(key, None);
    }

    /// Why `size` more bytes must be refused because the disk is nearly
    /// full (`None`: they may go ahead, and are counted against the free
    /// space this batch saw — also if the command is refused later for
    /// another reason: the batch errs on the safe side). The disk is asked
    /// once per batch: a batch's documents are written together, after all
    /// were admitted.
    pub(crate) fn disk_short(&self, env: &dyn super::Env, size: u64) -> Option<String> {
        let reserve = env.min_free_bytes();
        if reserve == 0 {
            return None;
        }
        let (free, admitted) = self.disk.get().unwrap_or_else(|| (env.disk_free(), 0));
        let Some(free) = free else {
            self.disk.set(Some((None, admitted)));
            return None; // not known: the write itself reports a full disk
        };
        let left = free.saturating_sub(admitted);
        if left < reserve.saturating_add(size) {
            self.disk.set(Some((Some(free), admitted)));
            return Some(format!(
                "the hub's disk is nearly full ({left} bytes free, {reserve} kept in reserve); nothing was stored, \
                 retry later"
            ));
        }
        self.disk.set(Some((Some(free), admitted + size)));
        None
    }

    /// Count `delta` items of `bytes` each into (or, negative, out of) an
    /// agency's outbox.
    pub(crate) fn add_queued(&mut self, code: &str, delta: i64, bytes: u64) {
        self.writes += 1;
        let e = self.queued_delta.entry(code.to_string()).or_insert((0, 0));
        e.0 += delta;
        e.1 += delta * bytes as i64;
    }

    /// Append a receipt to the log and index it by document and by every
    /// agency it names; returns its index.
    pub(crate) fn append_receipt(&mut self, mut receipt: Receipt) -> Result<u64, StoreError> {
        let index = self.meta.tree_size;
        receipt.index = index;
        receipt.time_unix_ms = self.time_unix_ms;
        super::indicators::count(self, &receipt)?;
        if receipt.hub_document_id != 0 {
            self.put(keys::doc_receipt(receipt.hub_document_id, index), Vec::new());
        }
        let actor = truc_core::Principal::parse_uri(&receipt.actor).ok();
        let actor_agency = actor.as_ref().and_then(|p| p.agency()).map_or("", |a| a.as_str());
        let mut named: Vec<&str> = vec![receipt.from.as_str(), receipt.recipient.as_str(), actor_agency];
        // ACCEPTED: the recipients too, so an agency finds what was sent to it.
        named.extend(receipt.recipients.iter().map(String::as_str));
        named.retain(|a| !a.is_empty());
        named.sort_unstable();
        named.dedup();
        for a in named {
            self.agency_receipts.add(a, index);
        }
        let bytes = receipt.encode_to_vec();
        let leaf = merkle::leaf_hash(&bytes);
        let nodes = merkle::new_nodes(index, leaf, &*self)?;
        let hashes: Vec<Hash> = nodes.iter().map(|(_, _, h)| *h).collect();
        for (level, i, hash) in nodes {
            self.appended.nodes.insert((level, i), hash);
        }
        // The nodes travel in the receipt's value (`leaves.rs`).
        self.put(keys::receipt(index), leaves::encode(&bytes, &hashes));
        self.appended.receipts.insert(index, bytes);
        self.meta.tree_size += 1;
        self.meta.last_time_unix_ms = self.time_unix_ms;
        Ok(index)
    }

    /// The first receipts naming `agency`, committed then this batch's,
    /// ascending: more than `limit` only if there are more. (The overlay
    /// holds no `G` key: they are written when the batch is sealed.)
    pub(crate) fn agency_receipts(&self, agency: &str, limit: usize) -> Result<Vec<u64>, StoreError> {
        let from = keys::queue_prefix(keys::tag::AGENCY_RECEIPTS, agency);
        let mut to = from.clone();
        *to.last_mut().expect("a prefix ends with 0x00") = 1;
        let mut out = Vec::new();
        let mut damage = None;
        self.tree
            .range(&from, &to, &mut |k, v| match agency_receipts::decode(k, v) {
                Ok(indexes) => {
                    out.extend(indexes);
                    out.len() <= limit
                }
                Err(e) => {
                    damage = Some(e);
                    false
                }
            })?;
        if let Some(e) = damage {
            return Err(e);
        }
        out.extend_from_slice(self.agency_receipts.of(agency));
        Ok(out)
    }

    pub(crate) fn into_batch(mut self) -> Ready {
        for (k, v) in std::mem::take(&mut self.agency_receipts).into_writes() {
            self.put(k, v);
        }
        Ready {
            writes: self.overlay,
            meta: self.meta,
            agencies: self.agencies,
            queued_delta: self.queued_delta,
            appended: self.appended,
        }
    }
}

impl NodeSource for Batch<'_> {
    type Error = StoreError;
    fn node(&self, level: u8, index: u64) -> Result<Hash, StoreError> {
        if let Some(h) = self.appended.nodes.get(&(level, index)) {
            return Ok(*h);
        }
        leaves::node(|k| self.get(k), level, index)
    }
}

/// Reads Merkle nodes from the committed tree.
pub(crate) struct TreeNodes<'t>(pub(crate) &'t dyn Read);

/// Reads Merkle nodes from the committed tree through a cache, for proving
/// many receipts of one batch: their proofs share most nodes.
pub(crate) struct CachedNodes<'t> {
    pub(crate) tree: &'t dyn Read,
    pub(crate) cache: &'t std::cell::RefCell<HashMap<(u8, u64), Hash>>,
}

impl NodeSource for CachedNodes<'_> {
    type Error = StoreError;
    fn node(&self, level: u8, index: u64) -> Result<Hash, StoreError> {
        if let Some(h) = self.cache.borrow().get(&(level, index)) {
            return Ok(*h);
        }
        let h = TreeNodes(self.tree).node(level, index)?;
        self.cache.borrow_mut().insert((level, index), h);
        Ok(h)
    }
}

impl NodeSource for TreeNodes<'_> {
    type Error = StoreError;
    fn node(&self, level: u8, index: u64) -> Result<Hash, StoreError> {
        leaves::node(|k| self.0.get(k), level, index)
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;
    use crate::machine::memory::{MemoryEnv, MemoryState};
    use crate::machine::{Env, InlineBodies};
    use crate::records::AgencyRecord;

    /// A disk with `free` bytes and a reserve of 100, counting how often
    /// it is asked.
    struct Disk {
        free: u64,
        asked: Cell<u32>,
        rest: MemoryEnv,
    }

    impl Env for Disk {
        fn agency(&self, code: &str) -> Option<AgencyRecord> {
            self.rest.agency(code)
        }
        fn queue_counts(&self, code: &str) -> (u64, u64) {
            self.rest.queue_counts(code)
        }
        fn quota_bytes(&self) -> u64 {
            0
        }
        fn min_free_bytes(&self) -> u64 {
            100
        }
        fn disk_free(&self) -> Option<u64> {
            self.asked.set(self.asked.get() + 1);
            Some(self.free)
        }
        fn pinned(&self, sha256: &[u8]) -> bool {
            self.rest.pinned(sha256)
        }
        fn delete_payload(&self, sha256: &[u8]) -> bool {
            self.rest.delete_payload(sha256)
        }
        fn deletions_durable(&self) -> Result<(), StoreError> {
            Ok(())
        }
    }

    #[test]
    fn a_batch_asks_the_disk_once_and_counts_what_it_admitted() {
        let state = MemoryState::default();
        let mut bodies = InlineBodies;
        let calendar = std::sync::Arc::new(truc_core::Calendar::default());
        let b = Batch::new(&state, Meta::default(), &mut bodies, 1, calendar);
        let disk = Disk {
            free: 1000,
            asked: Cell::new(0),
            rest: MemoryEnv::default(),
        };
        // 1000 free, 100 in reserve: 900 may be admitted in all.
        assert_eq!(b.disk_short(&disk, 400), None);
        assert_eq!(b.disk_short(&disk, 500), None);
        let why = b.disk_short(&disk, 1).expect("the reserve is reached");
        assert!(why.contains("100 bytes free") && why.contains("retry later"), "{why}");
        // A refusal counts nothing: an empty document still fits.
        assert!(b.disk_short(&disk, 1).is_some());
        assert_eq!(b.disk_short(&disk, 0), None);
        assert_eq!(disk.asked.get(), 1, "one statfs per batch");
    }
}
