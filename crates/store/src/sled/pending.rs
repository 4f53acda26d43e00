//! One commit batch being built: the writes so far, readable back
//! (read-your-writes), and the receipts appended to the Merkle log.

use std::collections::HashMap;

use prost::Message;
use truc_core::merkle::{self, Hash, NodeSource};
use truc_proto::v1::Receipt;

use crate::keys;
use crate::records::{AgencyRecord, Meta};
use crate::StoreError;

/// A key and its value.
pub(super) type KeyValue = (Vec<u8>, Vec<u8>);
/// Agency → change of (items, payload bytes) in its outbox.
pub(super) type QueueDeltas = HashMap<String, (i64, i64)>;

pub(super) struct Pending<'t> {
    tree: &'t sled::Tree,
    batch: sled::Batch,
    overlay: HashMap<Vec<u8>, Option<Vec<u8>>>,
    pub(super) meta: Meta,
    /// Agencies changed in this batch (applied to the cache after commit).
    pub(super) agencies: Vec<AgencyRecord>,
    /// Change of each agency's queued count in this batch.
    pub(super) queued_delta: QueueDeltas,
    /// The batch's time, stamped on its receipts.
    pub(super) time_unix_ms: i64,
}

impl<'t> Pending<'t> {
    pub(super) fn new(tree: &'t sled::Tree, meta: Meta) -> Self {
        // Receipt times never go backwards, even if the clock does.
        let time_unix_ms = truc_core::now_unix_ms().max(meta.last_time_unix_ms);
        Self {
            tree,
            batch: sled::Batch::default(),
            overlay: HashMap::new(),
            meta,
            agencies: Vec::new(),
            queued_delta: HashMap::new(),
            time_unix_ms,
        }
    }

    pub(super) fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(v) = self.overlay.get(key) {
            return Ok(v.clone());
        }
        Ok(self.tree.get(key)?.map(|v| v.to_vec()))
    }

    pub(super) fn contains(&self, key: &[u8]) -> Result<bool, StoreError> {
        if let Some(v) = self.overlay.get(key) {
            return Ok(v.is_some());
        }
        Ok(self.tree.contains_key(key)?)
    }

    pub(super) fn get_msg<M: Message + Default>(&self, key: &[u8], what: &str) -> Result<Option<M>, StoreError> {
        match self.get(key)? {
            None => Ok(None),
            Some(v) => M::decode(v.as_slice())
                .map(Some)
                .map_err(|_| StoreError::Corrupt(what.to_string())),
        }
    }

    /// Every key and value under `prefix`, this batch's writes included.
    pub(super) fn scan(&self, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError> {
        let mut out = std::collections::BTreeMap::new();
        for kv in self.tree.scan_prefix(prefix) {
            let (k, v) = kv?;
            out.insert(k.to_vec(), Some(v.to_vec()));
        }
        for (k, v) in &self.overlay {
            if k.starts_with(prefix) {
                out.insert(k.clone(), v.clone());
            }
        }
        Ok(out.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))).collect())
    }

    pub(super) fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.batch.insert(key.as_slice(), value.as_slice());
        self.overlay.insert(key, Some(value));
    }

    pub(super) fn del(&mut self, key: Vec<u8>) {
        self.batch.remove(key.as_slice());
        self.overlay.insert(key, None);
    }

    /// Count `delta` items of `bytes` each into (or, negative, out of) an
    /// agency's outbox.
    pub(super) fn add_queued(&mut self, code: &str, delta: i64, bytes: u64) {
        let e = self.queued_delta.entry(code.to_string()).or_insert((0, 0));
        e.0 += delta;
        e.1 += delta * bytes as i64;
    }

    /// Append a receipt to the log and index it by document and by every
    /// agency it names; returns its index.
    pub(super) fn append_receipt(&mut self, mut receipt: Receipt) -> Result<u64, StoreError> {
        let index = self.meta.tree_size;
        receipt.index = index;
        receipt.time_unix_ms = self.time_unix_ms;
        if receipt.hub_document_id != 0 {
            self.put(keys::doc_receipt(receipt.hub_document_id, index), Vec::new());
        }
        let actor_agency = receipt.actor.strip_prefix("urn:truc:agency:").unwrap_or("");
        let mut named: Vec<&str> = vec![receipt.from.as_str(), receipt.recipient.as_str(), actor_agency];
        named.retain(|a| !a.is_empty());
        named.sort_unstable();
        named.dedup();
        let index_keys: Vec<Vec<u8>> = named
            .iter()
            .map(|a| keys::queue_item(keys::tag::AGENCY_RECEIPTS, a, index))
            .collect();
        for k in index_keys {
            self.put(k, Vec::new());
        }
        let bytes = receipt.encode_to_vec();
        let leaf = merkle::leaf_hash(&bytes);
        let nodes = merkle::new_nodes(index, leaf, &*self)?;
        for (level, i, hash) in nodes {
            self.put(keys::node(level, i), hash.to_vec());
        }
        self.put(keys::receipt(index), bytes);
        self.meta.tree_size += 1;
        self.meta.last_time_unix_ms = self.time_unix_ms;
        Ok(index)
    }

    /// Every key this batch changes, with its final value (the log entry
    /// of a replicated store).
    pub(super) fn changes(&self) -> Vec<crate::replica::Change> {
        self.overlay
            .iter()
            .map(|(k, v)| crate::replica::Change {
                key: k.clone(),
                value: v.clone(),
            })
            .collect()
    }

    pub(super) fn into_batch(self) -> (sled::Batch, Meta, Vec<AgencyRecord>, QueueDeltas) {
        (self.batch, self.meta, self.agencies, self.queued_delta)
    }
}

impl NodeSource for Pending<'_> {
    type Error = StoreError;
    fn node(&self, level: u8, index: u64) -> Result<Hash, StoreError> {
        node_from(self.get(&keys::node(level, index))?, level, index)
    }
}

/// Reads Merkle nodes from the committed tree.
pub(super) struct TreeNodes<'t>(pub(super) &'t sled::Tree);

impl NodeSource for TreeNodes<'_> {
    type Error = StoreError;
    fn node(&self, level: u8, index: u64) -> Result<Hash, StoreError> {
        node_from(self.0.get(keys::node(level, index))?.map(|v| v.to_vec()), level, index)
    }
}

fn node_from(v: Option<Vec<u8>>, level: u8, index: u64) -> Result<Hash, StoreError> {
    v.and_then(|v| <Hash>::try_from(v.as_slice()).ok())
        .ok_or_else(|| StoreError::Corrupt(format!("merkle node {level}/{index}")))
}
