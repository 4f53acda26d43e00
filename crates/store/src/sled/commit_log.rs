//! The writer's commit point, behind one trait with two implementations:
//!
//! - [`LocalLog`]: the embedded store. Bodies and each batch's sled writes
//!   are appended to the segments in `bodies/` and synced once per batch
//!   (`log.rs`); replay at open brings sled up to the log.
//! - [`SharedLog`]: the replicated store. Before each batch the writer takes
//!   the cluster's write lease and applies what other hubs committed; the
//!   batch's key changes are then appended to the shared log as one entry
//!   (JetStream, through a [`Replicator`]), which is the commit point.
//!
//! Everything else — the state machine, group commit, the Merkle log and
//! signed tree heads, payload collection and pins, the delivery feed — is
//! the same code for both (`writer.rs`, `crate::machine`).

use std::collections::HashMap;
use std::sync::Arc;

use prost::Message;

use super::log::{self, BodyLog, Staged};
use super::replicated;
use super::{Cache, SledStoreOptions};
use crate::keys;
use crate::machine::{Bodies, InlineBodies};
use crate::records::Meta;
use crate::replica::{Change, LogEntry, Replicator};
use crate::{OutboxEvents, StoreError};

/// A batch's writes: key → new value (`None`: delete).
pub(super) type Writes = HashMap<Vec<u8>, Option<Vec<u8>>>;

/// What the writer's local view is made of, for catching up.
pub(super) struct View<'a> {
    pub(super) tree: &'a crate::sled::view::Tree,
    pub(super) cache: &'a Cache,
    pub(super) events: Option<&'a OutboxEvents>,
}

/// Where a batch becomes durable. Every method blocks (the writer runs on
/// its own thread).
pub(super) trait CommitLog: Send + 'static {
    /// Where this log keeps the bodies of a batch's documents.
    type Bodies: Bodies;

    /// Before building a batch: take the write lease and apply what other
    /// writers committed (a shared log; returns the view's new `Meta` if it
    /// changed), and start staging bodies.
    fn begin(&mut self, view: &View<'_>) -> Result<(Self::Bodies, Option<Meta>), StoreError>;

    /// Where the batch's record will start in this log, for `Meta` (replay
    /// starts after the batch sled holds last); `None`: not a local log.
    fn position(&self, bodies: &Self::Bodies) -> Option<(u32, u64)>;

    /// Make the batch durable: the commit point. May add keys to `writes`
    /// (the shared log's position).
    fn commit(&mut self, bodies: Self::Bodies, writes: &mut Writes) -> Result<(), StoreError>;

    /// After the batch, committed or not: give the lease back, unless
    /// `more` (it committed, and more requests are waiting): a shared log
    /// may then keep the lease for the next batch, for a bounded time.
    fn end(&mut self, more: bool);

    /// Without a batch: apply what other writers committed since (a shared
    /// log); returns the new `Meta` if it changed.
    fn follow(&mut self, view: &View<'_>) -> Result<Option<Meta>, StoreError>;

    /// After sled was reopened in place (`Writer::recover`): bring the new
    /// tree up to this log.
    fn reopened(
        &mut self,
        db: &crate::sled::view::Db,
        tree: &crate::sled::view::Tree,
        opts: &SledStoreOptions,
    ) -> Result<(), StoreError>;
}

/// The embedded store's log: segments beside sled, one sync per batch.
pub(super) struct LocalLog(pub(super) BodyLog);

impl Bodies for Staged {
    fn inline(&self) -> bool {
        false
    }

    fn push(&mut self, body: &[u8]) -> Vec<u8> {
        Staged::push(self, body).encode()
    }
}

impl CommitLog for LocalLog {
    type Bodies = Staged;

    fn begin(&mut self, _: &View<'_>) -> Result<(Staged, Option<Meta>), StoreError> {
        Ok((self.0.begin(), None))
    }

    fn position(&self, bodies: &Staged) -> Option<(u32, u64)> {
        Some(bodies.position())
    }

    fn commit(&mut self, mut bodies: Staged, writes: &mut Writes) -> Result<(), StoreError> {
        bodies.push_batch(&log::encode_writes(writes.iter()));
        self.0.commit(bodies)
    }

    fn end(&mut self, _: bool) {}

    fn follow(&mut self, _: &View<'_>) -> Result<Option<Meta>, StoreError> {
        Ok(None)
    }

    fn reopened(
        &mut self,
        db: &crate::sled::view::Db,
        tree: &crate::sled::view::Tree,
        opts: &SledStoreOptions,
    ) -> Result<(), StoreError> {
        let mut recovered = super::recovery::Recovered::default();
        let torn = super::recovery::replay(db, tree, opts, &mut recovered)?;
        // A write whose sync failed and did not reach the disk whole: its
        // requests were told the outcome is unknown.
        log::cut_torn_tails(&opts.path, &torn)?;
        tracing::info!(
            batches = recovered.replayed,
            "replayed the log into the reopened database"
        );
        self.0.start_new_segment();
        Ok(())
    }
}

/// The replicated store's log: one entry per batch in a shared, replicated
/// log, written under a cluster-wide lease.
pub(super) struct SharedLog {
    pub(super) replica: Arc<dyn Replicator>,
    /// The last log entry the local tree reflects.
    pub(super) applied: u64,
    /// The log's end when the lease was taken (the append expects it).
    leased_at: Option<u64>,
    /// When the lease held now was taken.
    leased_since: Option<std::time::Instant>,
}

/// Longest a busy writer keeps the write lease over consecutive batches
/// before giving it back, so that other hubs get their turn. Kept, the
/// lease saves a batch two of its three round trips to the cluster (taking
/// it, giving it back); it is far inside the lease's lifetime
/// (`store.lease_ms`, 5 s by default), and were it ever outlived, the
/// append's expected position would refuse the batch, storing nothing.
const HOLD_LEASE: std::time::Duration = std::time::Duration::from_millis(50);

impl SharedLog {
    pub(super) fn new(replica: Arc<dyn Replicator>, applied: u64) -> Self {
        Self {
            replica,
            applied,
            leased_at: None,
            leased_since: None,
        }
    }

    /// Apply log entries up to `last` to the local tree.
    fn catch_up(&mut self, view: &View<'_>, last: u64) -> Result<Option<Meta>, StoreError> {
        // From what the tree holds: a catch-up that failed halfway kept
        // the chunks it applied.
        self.applied = replicated::applied(view.tree)?;
        if last <= self.applied {
            return Ok(None);
        }
        self.applied = replicated::catch_up(view.tree, view.cache, &*self.replica, self.applied, last, view.events)?;
        match view.tree.get(keys::meta())? {
            Some(v) => Ok(Some(
                Meta::decode(v.as_ref()).map_err(|e| StoreError::corrupt_from("meta", e))?,
            )),
            None => Ok(None),
        }
    }
}

impl CommitLog for SharedLog {
    type Bodies = InlineBodies;

    fn begin(&mut self, view: &View<'_>) -> Result<(InlineBodies, Option<Meta>), StoreError> {
        if self.leased_at.is_some() {
            // Kept from the last batch: nobody appended since ours.
            return Ok((InlineBodies, None));
        }
        let last = self.replica.begin()?;
        self.leased_at = Some(last);
        self.leased_since = Some(std::time::Instant::now());
        match self.catch_up(view, last) {
            Ok(meta) => Ok((InlineBodies, meta)),
            Err(e) => {
                self.end(false);
                Err(e)
            }
        }
    }

    fn position(&self, _: &InlineBodies) -> Option<(u32, u64)> {
        None
    }

    fn commit(&mut self, _: InlineBodies, writes: &mut Writes) -> Result<(), StoreError> {
        // Bodies are inline in the records, so every hub can read them;
        // once the cluster has acknowledged the append, the local tree
        // follows.
        let changes = writes
            .iter()
            .map(|(k, v)| Change {
                key: k.clone(),
                value: v.clone(),
            })
            .collect();
        let seq = self
            .replica
            .append(self.applied, LogEntry { changes }.encode_to_vec())?;
        writes.insert(keys::replica_seq(), Some(seq.to_be_bytes().to_vec()));
        self.applied = seq;
        Ok(())
    }

    fn end(&mut self, more: bool) {
        if more && self.leased_since.is_some_and(|t| t.elapsed() < HOLD_LEASE) {
            return;
        }
        self.leased_since = None;
        if self.leased_at.take().is_some() {
            self.replica.end();
        }
    }

    fn follow(&mut self, view: &View<'_>) -> Result<Option<Meta>, StoreError> {
        let last = self.replica.last()?;
        self.catch_up(view, last)
    }

    fn reopened(
        &mut self,
        _: &crate::sled::view::Db,
        tree: &crate::sled::view::Tree,
        _: &SledStoreOptions,
    ) -> Result<(), StoreError> {
        // The next batch catches up with the shared log.
        self.applied = replicated::applied(tree)?;
        Ok(())
    }
}
