//! The single writer: group commit.
//!
//! Requests queue on a bounded channel. The writer thread takes whatever is
//! waiting (up to `MAX_BATCH`), applies each request to one `Pending` batch,
//! signs one tree head for the batch, appends the batch's bodies and writes
//! to the log and syncs it once (the commit point, see `log.rs`), applies
//! the batch to sled, and then answers every request. While it syncs, new
//! requests queue up and form the next batch: batches grow with load by
//! themselves.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use prost::Message;
use tokio::sync::{mpsc, oneshot};
use truc_core::merkle;
use truc_core::tree_head::TreeHeadSigner;
use truc_proto::v1::{ProvenReceipt, SignedTreeHead};

use super::commit_log::{CommitLog, View};
use super::ops::Op;
use super::proofs;
use super::Cache;
use crate::keys;
use crate::machine::batch::CachedNodes;
use crate::machine::{Batch, Ready};
use crate::records::Meta;
use crate::StoreError;

/// Most requests applied in one batch.
const MAX_BATCH: usize = 1024;

/// What a request does once its batch is committed (or failed).
pub(super) type Completion = Box<dyn FnOnce(Result<&Committed, &StoreError>) + Send>;

/// A committed batch: the tree to read receipts and proofs from.
pub(super) struct Committed {
    pub(super) tree: crate::sled::view::Tree,
    pub(super) tree_size: u64,
    /// The batch's own signed tree head, if it appended receipts.
    head: Option<SignedTreeHead>,
    /// Nodes known without a read: the batch's own, then those read.
    nodes: RefCell<HashMap<(u8, u64), merkle::Hash>>,
    /// The batch's own receipts.
    receipts: HashMap<u64, Vec<u8>>,
}

impl Committed {
    /// The receipt at `index` with the signed tree head of the batch that
    /// recorded it and its inclusion proof against that head.
    pub(super) fn proven_receipt(&self, index: u64) -> Result<ProvenReceipt, StoreError> {
        if index >= self.tree_size {
            return Err(StoreError::corrupt(format!("receipt {index} beyond the log")));
        }
        let (Some(head), Some(bytes)) = (&self.head, self.receipts.get(&index)) else {
            // From an earlier batch (a duplicate Send): read it back.
            return proofs::proven_receipt(&self.tree, index);
        };
        let nodes = CachedNodes {
            tree: &self.tree,
            cache: &self.nodes,
        };
        let proof = merkle::inclusion_proof(index, self.tree_size, &nodes)?;
        Ok(ProvenReceipt {
            receipt: bytes.clone(),
            tree_head: Some(head.clone()),
            inclusion_proof: proof.into_iter().map(|h| h.to_vec()).collect(),
            leaf_index: index,
            tree_size: self.tree_size,
        })
    }
}

pub(super) struct Writer<L: CommitLog> {
    pub(super) db: crate::sled::view::Db,
    /// The commit point: the local log or the shared one.
    pub(super) log: L,
    /// Set when a durable batch could not be applied to sled: everything is
    /// refused until a restart replays it.
    pub(super) poisoned: Option<String>,
    pub(super) tree: crate::sled::view::Tree,
    pub(super) meta: Meta,
    pub(super) signer: TreeHeadSigner,
    pub(super) cache: Arc<Cache>,
    pub(super) on_commit: Option<crate::CommitObserver>,
    /// Told when a batch is the first in a new log segment.
    pub(super) punch: Option<super::punch::Nudge>,
    /// The last signed tree head, recorded before any client sees it
    /// (`head.rs`).
    pub(super) head_file: super::head::SignedHeadFile,
    /// A head signed for a durable batch that could not be recorded yet:
    /// recorded before the next batch may commit.
    pub(super) pending_head: Option<super::head::Recorded>,
    /// The handles readers and the puncher use (replaced on a reopen).
    pub(super) handles: Arc<super::Handles>,
    /// Whether commits work now (`/readyz`).
    pub(super) health: Arc<super::Health>,
    /// How to reopen sled after it failed a write.
    pub(super) reopen: Reopen,
    /// Where committed outbox changes go (the delivery engine's feed).
    pub(super) events: Option<Arc<crate::OutboxEvents>>,
    /// Set when going on would sign a head that forks from the last one:
    /// every change is refused until an operator restarts or repairs.
    pub(super) halted: Option<String>,
}

/// Everything the writer starts with but its commit log.
pub(super) struct Setup {
    pub(super) db: crate::sled::view::Db,
    pub(super) tree: crate::sled::view::Tree,
    pub(super) meta: Meta,
    pub(super) signer: TreeHeadSigner,
    pub(super) cache: Arc<Cache>,
    pub(super) punch: Option<super::punch::Nudge>,
    pub(super) head_file: super::head::SignedHeadFile,
    pub(super) handles: Arc<super::Handles>,
    pub(super) health: Arc<super::Health>,
    pub(super) config: super::view::Opener,
    pub(super) opts: super::SledStoreOptions,
}

impl Setup {
    /// Start the writer thread, committing through `log`.
    pub(super) fn spawn<L: CommitLog>(
        self,
        log: L,
        rx: mpsc::Receiver<Op>,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        let writer = Writer {
            db: self.db,
            log,
            poisoned: None,
            tree: self.tree,
            meta: self.meta,
            signer: self.signer,
            cache: self.cache,
            on_commit: self.opts.on_commit.clone(),
            punch: self.punch,
            head_file: self.head_file,
            pending_head: None,
            handles: self.handles,
            health: self.health,
            events: self.opts.outbox_events.clone(),
            reopen: Reopen {
                config: self.config,
                opts: self.opts,
                last_try: None,
            },
            halted: None,
        };
        std::thread::Builder::new()
            .name("truc-store-writer".into())
            .spawn(move || writer.run(rx))
    }
}

/// What the writer needs to open sled again (`Writer::recover`).
pub(super) struct Reopen {
    pub(super) config: super::view::Opener,
    pub(super) opts: super::SledStoreOptions,
    pub(super) last_try: Option<std::time::Instant>,
}

/// Least time between two attempts to reopen sled.
const REOPEN_EVERY: std::time::Duration = std::time::Duration::from_millis(200);

impl<L: CommitLog> Writer<L> {
    /// Run until every sender is dropped, then flush and return.
    pub(super) fn run(mut self, mut rx: mpsc::Receiver<Op>) {
        let mut ops = Vec::with_capacity(MAX_BATCH);
        while let Some(first) = rx.blocking_recv() {
            ops.push(first);
            while ops.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(op) => ops.push(op),
                    Err(_) => break,
                }
            }
            let committed = self.commit(ops.drain(..));
            // A shared log's lease may be kept for the next batch when
            // requests are already waiting for it.
            self.log.end(committed && !rx.is_empty());
        }
        self.log.end(false);
        if let Err(e) = self.db.flush() {
            tracing::error!(error = %e, "final flush failed");
        }
    }

    /// Build, make durable and answer one batch of `ops`; true if it
    /// committed. The caller then ends it (`CommitLog::end`).
    fn commit(&mut self, ops: impl Iterator<Item = Op>) -> bool {
        let started = std::time::Instant::now();
        if let Some(why) = &self.halted {
            let e = StoreError::unavailable(format!("{why}; the hub refuses changes until an operator acts"));
            for op in ops {
                op.refuse(&e);
            }
            self.health.set(Some(e.to_string()));
            return false;
        }
        if self.poisoned.is_some() {
            match self.recover() {
                Ok(()) => tracing::info!("the store's database was reopened after a write failure; commits resume"),
                Err(e) => tracing::debug!(error = %e, "the store's database cannot be reopened yet"),
            }
        }
        if let Some(why) = &self.poisoned {
            self.health.set(Some(why.clone()));
            let e = StoreError::unavailable(format!("{why}; nothing of this request was stored, retry later"));
            for op in ops {
                op.refuse(&e);
            }
            return false;
        }
        let (syncs, ops): (Vec<Op>, Vec<Op>) = ops.partition(|op| matches!(op, Op::Sync(_)));
        if ops.is_empty() {
            // Only `Sync`: another hub appended to the shared log, or a
            // read wants the log's end.
            let r = self.follow();
            if let Err(e) = &r {
                tracing::warn!(error = %e, "cannot read the shared log; will retry");
            }
            for op in syncs {
                if let Op::Sync(Some(tx)) = op {
                    let _ = tx.send(r.as_ref().map(|_| ()).map_err(commit_error));
                }
            }
            return false;
        }
        // With a batch: it catches up first, so the syncs ride along.
        let ops = ops.into_iter().chain(syncs);
        // A durable batch's head that could not be recorded: record it
        // first, or refuse this batch before anything is written.
        if let Some(h) = self.pending_head.take() {
            if let Err(e) = self.head_file.record(&h) {
                self.pending_head = Some(h);
                let e = StoreError::unavailable(format!(
                    "cannot record the last signed tree head ({e}); nothing of this request was stored"
                ));
                for op in ops {
                    op.refuse(&e);
                }
                return false;
            }
        }
        // A shared log: take the write lease and catch up with the log
        // first, so that the batch is built on the latest state.
        let tree = self.tree.clone();
        let begun = self.log.begin(&View {
            tree: &tree,
            cache: &self.cache,
            events: self.events.as_deref(),
        });
        let mut bodies = match begun {
            Ok((bodies, meta)) => {
                if let Some(meta) = meta {
                    self.meta = meta;
                }
                bodies
            }
            Err(e) => {
                let e = commit_error(&e);
                tracing::warn!(error = %e, "cannot begin a batch; it is refused");
                self.health.set(Some(format!("the last commit failed: {e}")));
                for op in ops {
                    op.refuse(&e);
                }
                return false;
            }
        };
        let opts = &self.reopen.opts;
        let now = opts.clock.now_unix_ms();
        let mut pending = Batch::new(&tree, self.meta.clone(), &mut bodies, now, opts.calendar.clone());
        let mut completions: Vec<Completion> = Vec::new();
        for op in ops {
            completions.push(op.apply(&mut pending, &self.cache));
        }
        if let Some(why) = pending.spoiled() {
            // A request failed half-way: what it wrote cannot be told from
            // the rest, so nothing of the batch is written.
            let e = StoreError::unavailable(format!(
                "a request of this group commit failed after it had begun to write ({why}); nothing of it was stored"
            ));
            tracing::error!(error = %e, "a batch is refused whole");
            for c in completions {
                c(Err(&e));
            }
            return false;
        }
        let batch_size = completions.len();
        let time = pending.time_unix_ms;
        let ready = self.seal(pending, time);
        let result = ready.and_then(|(ready, head)| self.finish(ready, bodies, head));
        if let Some(observe) = &self.on_commit {
            observe.observe(batch_size, started.elapsed(), result.is_ok());
        }
        self.health.set(match (&result, &self.poisoned, &self.pending_head) {
            (_, Some(why), _) => Some(why.clone()),
            (_, _, Some(_)) => Some("the last signed tree head could not be recorded".into()),
            (Err(e), _, _) if !matches!(e, StoreError::Damaged(_)) => Some(format!("the last commit failed: {e}")),
            (Err(e), _, _) => Some(e.to_string()),
            (Ok(_), _, _) => None,
        });
        match &result {
            Ok(committed) => {
                tracing::trace!(batch_size, tree_size = committed.tree_size, "committed");
                for c in completions {
                    c(Ok(committed));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, batch_size, "commit failed; the batch is refused");
                for c in completions {
                    c(Err(e));
                }
            }
        }
        // Answered: now free what sled replaced (`reclaim.rs`).
        let committed = result.is_ok();
        drop(result);
        if self.tree.engine() == super::Engine::Sled {
            super::reclaim::after_commit(batch_size);
        }
        committed
    }

    /// Sign the batch's tree head and write the queue counters: the batch
    /// is then complete.
    fn seal(&mut self, mut pending: Batch<'_>, time: i64) -> Result<(Ready, Option<SignedTreeHead>), StoreError> {
        let size = pending.meta.tree_size;
        let mut head = None;
        if size > self.meta.tree_size {
            let root = merkle::root(size, &pending)?;
            // Never a head that does not extend the last one signed.
            if let Err(e) = self.head_file.guard(size, &root) {
                self.halted = Some(e.to_string());
                return Err(e);
            }
            let sth = self.signer.sign(size, &root, time);
            pending.put(keys::tree_head(size), sth.encode_to_vec());
            head = Some(sth);
        }
        // Queued counters, read from the cache plus this batch's changes.
        let deltas: Vec<(String, (i64, i64))> = pending.queued_delta.iter().map(|(k, v)| (k.clone(), *v)).collect();
        for (code, (count, bytes)) in deltas {
            let (c, b) = self.cache.queue_counts(&code);
            let value = [(c as i64 + count).max(0) as u64, (b as i64 + bytes).max(0) as u64];
            pending.put(
                keys::queued_count(&code),
                value.iter().flat_map(|v| v.to_be_bytes()).collect(),
            );
        }
        Ok((pending.into_batch(), head))
    }

    /// Make the batch durable in the commit log, then apply it to sled.
    fn finish(
        &mut self,
        ready: Ready,
        bodies: L::Bodies,
        head: Option<SignedTreeHead>,
    ) -> Result<Committed, StoreError> {
        let Ready {
            mut writes,
            mut meta,
            agencies,
            queued_delta,
            appended,
        } = ready;
        // A local log: the batch's record starts where the staged bodies
        // end; sled's copy of `Meta` says which batch it holds last (replay
        // starts after).
        if let Some((segment, offset)) = self.log.position(&bodies) {
            meta.log_segment = segment;
            meta.log_offset = offset;
        }
        writes.insert(keys::meta(), Some(meta.encode_to_vec()));
        if let Err(e) = self.log.commit(bodies, &mut writes) {
            if matches!(e, StoreError::OutcomeUnknown(_)) {
                // The batch may be in the log: the state to go on from is
                // the log's, read back by a reopen.
                self.poisoned = Some(format!("a log sync failed ({e})"));
            }
            return Err(e);
        }
        let outbox: Vec<(Vec<u8>, bool)> = match &self.events {
            Some(_) => writes
                .iter()
                .filter(|(k, _)| k.first() == Some(&crate::keys::tag::OUTBOX))
                .map(|(k, v)| (k.clone(), v.is_some()))
                .collect(),
            None => Vec::new(),
        };
        let mut batch = crate::sled::view::Batch::default();
        for (k, v) in writes {
            match v {
                Some(v) => batch.insert(k, v),
                None => batch.remove(k),
            }
        }
        // Durable already: sled applies it in memory (atomically for
        // readers) and flushes in the background; a crash before that is
        // replayed from the log (local or shared) at the next open.
        if let Err(e) = self.tree.apply_batch(batch) {
            self.poisoned = Some(format!(
                "a durable batch could not be applied ({e}); restart trucd to replay it"
            ));
            return Err(StoreError::OutcomeUnknown(format!(
                "the batch is durable in the log but the database refused it ({e})"
            )));
        }
        if let Some(ev) = &self.events {
            ev.publish(outbox.iter().map(|(k, w)| (k.as_slice(), *w)));
        }
        let new_segment = meta.log_segment != self.meta.log_segment;
        self.meta = meta;
        if new_segment {
            // The first batch in a new segment: replay now starts past the
            // older ones (once sled has this batch on disk).
            if let Some(p) = &self.punch {
                p.nudge();
            }
        }
        self.cache.apply(agencies, &queued_delta);
        // The head goes to the signed-head file before any client sees it.
        // The batch is durable and applied already: if that fails, its
        // requests' outcome is unknown to them (a retry with the same ids
        // is answered as a duplicate), and the head is recorded before the
        // next batch commits.
        if let Some(sth) = &head {
            let recorded = super::head::Recorded::from_signed(sth)?;
            if let Err(e) = self.head_file.record(&recorded) {
                self.pending_head = Some(recorded);
                return Err(StoreError::OutcomeUnknown(format!(
                    "the batch is stored but its signed tree head could not be recorded ({e})"
                )));
            }
        }
        Ok(Committed {
            tree: self.tree.clone(),
            tree_size: self.meta.tree_size,
            head,
            nodes: RefCell::new(appended.nodes),
            receipts: appended.receipts,
        })
    }
}

impl<L: CommitLog> Writer<L> {
    /// After sled failed a write (it then refuses every write until it is
    /// opened again: sled 0.34 keeps the error), close it and open it again
    /// in place: readers wait or are refused meanwhile, the batches the log
    /// holds that sled's files lack are replayed (replicated: the next
    /// batch catches up with the shared log), the counters are reloaded,
    /// and the next batch goes to a new log segment. At most every
    /// [`REOPEN_EVERY`]; until it works, requests are refused with nothing
    /// stored.
    fn recover(&mut self) -> Result<(), StoreError> {
        let why = self.poisoned.clone().unwrap_or_default();
        if self.reopen.last_try.is_some_and(|t| t.elapsed() < REOPEN_EVERY) {
            return Err(StoreError::unavailable(why));
        }
        self.reopen.last_try = Some(std::time::Instant::now());
        let mut slot = self.handles.take();
        // Every handle on the old files must go before sled opens them
        // again (a lock on the directory): the writer's own are replaced
        // by an empty in-memory database.
        let (placeholder, placeholder_tree) = super::view::Db::placeholder()?;
        drop(std::mem::replace(&mut self.tree, placeholder_tree));
        drop(std::mem::replace(&mut self.db, placeholder));
        let (db, tree) = self.reopen.config.open()?;
        self.log.reopened(&db, &tree, &self.reopen.opts)?;
        let meta = super::recovery::read_meta(&tree)?.unwrap_or_default();
        self.cache.load(&tree)?;
        *slot = Some((db.clone(), tree.clone()));
        drop(slot);
        self.meta = meta;
        self.db = db;
        self.tree = tree;
        self.poisoned = None;
        Ok(())
    }

    /// Apply what other hubs appended to the shared log since we last looked.
    fn follow(&mut self) -> Result<(), StoreError> {
        let tree = self.tree.clone();
        let view = View {
            tree: &tree,
            cache: &self.cache,
            events: self.events.as_deref(),
        };
        if let Some(meta) = self.log.follow(&view)? {
            self.meta = meta;
        }
        Ok(())
    }
}

/// Send a completion's answer, ignoring a caller that went away.
pub(super) fn reply<T>(tx: oneshot::Sender<Result<T, StoreError>>, r: Result<T, StoreError>) {
    let _ = tx.send(r);
}

/// The store error for a failed commit, as each waiting request sees it.
pub(super) fn commit_error(e: &StoreError) -> StoreError {
    match e {
        StoreError::Corrupt { what, .. } => StoreError::corrupt(what.clone()),
        StoreError::Damaged(d) => StoreError::Damaged(d.clone()),
        StoreError::OutcomeUnknown(what) => StoreError::OutcomeUnknown(what.clone()),
        // Each waiting request gets its own error: the cause as text.
        other => StoreError::unavailable(truc_core::error_chain(other)),
    }
}
