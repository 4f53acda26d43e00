//! Replication hook: the sled backend as a materialised view of a shared,
//! replicated log (the JetStream backend in `truc-store-jetstream`).
//!
//! With a [`Replicator`] set, the writer does not treat its local flush as
//! the commit point. For every batch it
//! 1. takes the cluster-wide write lease ([`Replicator::begin`], which also
//!    says how long the log is),
//! 2. applies every log entry it has not seen yet (written by other hubs) to
//!    its local tree, so the batch is built on the latest state,
//! 3. builds the batch exactly as for sled (idempotency, receipts, Merkle
//!    nodes, one signed tree head),
//! 4. appends the batch's key changes as ONE log entry, expecting the log to
//!    end where step 1 said ([`Replicator::append`]); this append, once
//!    acknowledged at the configured replication, is the commit point,
//! 5. applies the same changes locally, with the log position, atomically,
//!    and only then answers.
//!
//! A hub that dies between 4 and 5 finds its own entry in the log when it
//! (or any other hub) next catches up; a client that got no answer retries
//! and is answered from the idempotency key. An append that finds the log
//! longer than expected (the lease ran out and another hub wrote) fails the
//! batch with `Unavailable` and changes nothing.

use prost::Message;

use crate::StoreError;

/// A shared, ordered, replicated log of committed batches. Every method
/// blocks (the writer runs on its own thread).
pub trait Replicator: Send + Sync + 'static {
    /// Take the write lease (waiting for another holder to finish) and
    /// return the sequence number of the last entry in the log (0: empty).
    fn begin(&self) -> Result<u64, StoreError>;
    /// Give the write lease back.
    fn end(&self);
    /// The sequence number of the last entry (no lease needed).
    fn last(&self) -> Result<u64, StoreError>;
    /// The entry at `seq` (1-based).
    fn read(&self, seq: u64) -> Result<Vec<u8>, StoreError>;
    /// Append `entry` as entry `expected_last + 1`; returns its sequence
    /// number once it is durable at the configured replication. Fails,
    /// appending nothing, if the log does not end at `expected_last`.
    fn append(&self, expected_last: u64, entry: Vec<u8>) -> Result<u64, StoreError>;

    /// Payload files of chunked uploads are this hub's files
    /// (`data_dir/payloads/<sha256>`); every hub must be able to serve them.
    /// Before a Send naming the payload `sha256` (`size` bytes) commits:
    /// make this hub's file readable by every hub (once per digest).
    fn put_payload(&self, sha256: &[u8], size: u64) -> Result<(), StoreError>;
    /// Before serving the payload `sha256`: fetch it into this hub's
    /// payload files if this hub lacks it.
    fn get_payload(&self, sha256: &[u8]) -> Result<(), StoreError>;
    /// The payload `sha256` was collected (no copy needs it): delete the
    /// shared copy. A payload never shared is not an error.
    fn delete_payload(&self, sha256: &[u8]) -> Result<(), StoreError>;
}

/// One log entry: every key a batch changed, with its final value.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct LogEntry {
    /// The changes.
    #[prost(message, repeated, tag = "1")]
    pub(crate) changes: Vec<Change>,
}

/// One key's change.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct Change {
    /// The key.
    #[prost(bytes = "vec", tag = "1")]
    pub(crate) key: Vec<u8>,
    /// Its new value (absent: deleted).
    #[prost(bytes = "vec", optional, tag = "2")]
    pub(crate) value: Option<Vec<u8>>,
}

impl std::fmt::Debug for dyn Replicator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Replicator")
    }
}

pub(crate) fn decode(seq: u64, bytes: &[u8]) -> Result<LogEntry, StoreError> {
    LogEntry::decode(bytes).map_err(|e| StoreError::corrupt_from(format!("log entry {seq}"), e))
}

/// The whole state of the sled store in `path` (not open elsewhere) as one
/// log entry, for seeding an empty shared log (migration from sled to
/// JetStream); returns the entry and how many keys it holds. The local log
/// position, if any, is left out. Blocking; the state is held in memory.
pub fn snapshot_entry(path: &std::path::Path) -> Result<(Vec<u8>, u64), StoreError> {
    let (_db, tree) = crate::sled::view::Opener::existing(path).open()?;
    let mut changes = Vec::new();
    for kv in tree.iter() {
        let (k, v) = kv?;
        if k.as_ref() == crate::keys::replica_seq().as_slice() {
            continue;
        }
        // Bodies in this store's own log travel inline in the shared one.
        let (value, payload) = crate::sled::with_body_inline(path, &k, v.to_vec())?;
        changes.push(Change {
            key: k.to_vec(),
            value: Some(value),
        });
        if let Some((key, value)) = payload {
            changes.push(Change {
                key,
                value: Some(value),
            });
        }
    }
    let n = changes.len() as u64;
    Ok((LogEntry { changes }.encode_to_vec(), n))
}
