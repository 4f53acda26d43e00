//! The axis's rules, as a state machine independent of any backend.
//!
//! A [`Command`] (send, acknowledge, report a status, suspend an agency, …)
//! is applied to a [`Batch`]: the batch reads the committed state through
//! the small key-value [`Read`] trait, stages its writes (read-your-writes
//! within the batch), appends receipts to the Merkle log, and the command
//! returns a typed [`Outcome`]. Every command checks everything first and
//! writes only when it will succeed, so a refused command leaves nothing in
//! the batch. One that fails after it has begun to write (a read failing
//! half-way) spoils the batch, and the writer then commits none of it
//! (`commands::apply`, `Batch::spoiled`). What lies outside the key-value state — the directory and
//! queue counts kept in memory, the outbox quota, free disk space, payload
//! files and the pins of uploads in progress — is asked of an [`Env`].
//!
//! The machine does no I/O of its own, knows nothing of sled, the local log
//! or JetStream, and never answers a caller: the writer (`sled/writer.rs`)
//! commits the batch through its commit log and only then answers. What a
//! committed batch changed in the outboxes reaches the delivery engine from
//! the batch's key changes (`crate::OutboxEvents`), the same way for this
//! hub's batches and for batches other hubs committed to a shared log.
//!
//! `model.rs` runs random command sequences against this machine over an
//! in-memory [`Read`] and against a plain model of the rules, and compares
//! every outcome.

pub(crate) mod agencies;
pub(crate) mod agency_receipts;
pub(crate) mod batch;
mod commands;
pub(crate) mod copies;
pub(crate) mod deadlines;
pub(crate) mod directory;
pub(crate) mod documents;
pub mod indicators;
pub(crate) mod leaves;
#[cfg(test)]
mod memory;
#[cfg(test)]
mod model;
pub(crate) mod payloads;
pub(crate) mod peers;
pub(crate) mod quarantine;

pub(crate) use self::batch::{Batch, KeyValue, Ready};
pub(crate) use self::commands::{apply, Command, Outcome};

use crate::records::AgencyRecord;
use crate::StoreError;

/// The committed key-value state, as the machine reads it.
pub(crate) trait Read {
    /// The value of `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// Whether `key` has a value.
    fn contains(&self, key: &[u8]) -> Result<bool, StoreError>;

    /// Every key and value under `prefix`, in key order.
    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError>;

    /// Keys and values in `from..to`, in key order, until `visit` returns
    /// false.
    fn range(&self, from: &[u8], to: &[u8], visit: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<(), StoreError>;
}

/// Where a batch puts the documents it stores.
pub(crate) trait Bodies {
    /// Bodies stay in the records (header, signature, chain) and inline
    /// payloads under their own key: a shared log is all other hubs can
    /// read. Otherwise each body goes to [`Bodies::push`].
    fn inline(&self) -> bool;

    /// Store an encoded `SignedDocument` with the batch; returns the
    /// reference the document record keeps.
    fn push(&mut self, body: &[u8]) -> Vec<u8>;
}

/// Bodies kept in the records (a replicated store, or a model).
#[derive(Debug, Default)]
pub(crate) struct InlineBodies;

impl Bodies for InlineBodies {
    fn inline(&self) -> bool {
        true
    }

    fn push(&mut self, _: &[u8]) -> Vec<u8> {
        Vec::new()
    }
}

/// What the rules ask of the world outside the key-value state.
pub(crate) trait Env {
    /// The committed directory entry of `code` (this batch's changes are
    /// the batch's own).
    fn agency(&self, code: &str) -> Option<AgencyRecord>;

    /// (copies, payload bytes) committed in `code`'s outbox.
    fn queue_counts(&self, code: &str) -> (u64, u64);

    /// Most payload bytes one outbox may hold (0: no limit).
    fn quota_bytes(&self) -> u64;

    /// Bytes kept free on the store's disk (0: no reserve, the disk is not
    /// asked).
    fn min_free_bytes(&self) -> u64;

    /// Bytes free on the store's disk now (`None`: unknown). A batch asks
    /// once, and counts what it admits itself (`Batch::disk_short`).
    fn disk_free(&self) -> Option<u64>;

    /// An upload in progress holds the payload `sha256`.
    fn pinned(&self, sha256: &[u8]) -> bool;

    /// Delete the payload `sha256` wherever it is kept outside the state
    /// (its file, a shared copy); false: kept (a later pass retries).
    fn delete_payload(&self, sha256: &[u8]) -> bool;

    /// Make the deletions durable before the batch that forgets the
    /// payloads commits.
    fn deletions_durable(&self) -> Result<(), StoreError>;
}

/// The actor of the hub's own actions in receipts.
pub(crate) const HUB_ACTOR: &str = "urn:truc:hub";
