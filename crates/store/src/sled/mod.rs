//! The embedded backend: one sled tree in the data directory.

mod commit_log;
mod env;
mod gc;
mod head;
mod log;
mod ops;
mod proofs;
mod punch;
mod reads;
mod reclaim;
mod recovery;
mod replicated;
mod scrub;
pub(crate) mod view;
mod writer;

pub use punch::Reclaimed;
pub use view::Engine;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use truc_core::sync::Locked;
use truc_core::sync::ReadWriteLocked;

use prost::Message;
use tokio::sync::{mpsc, oneshot};
use truc_core::routing::HubId;
use truc_core::tree_head::TreeHeadSigner;
use truc_core::AgencyCode;
use truc_proto::v1::{ProvenReceipt, SignedTreeHead, TrackResponse};

use self::ops::Op;
use crate::keys::{self, tag};
use crate::machine::{agencies, indicators, Command, Outcome};
use crate::records::{AgencyRecord, Meta};
use crate::{
    AgencyInfo, BoxFuture, ExpireOutcome, NewDocument, PayloadRef, QueueEntry, QueueStats, QueuedItem, ReceiptPage,
    ReceiptQuery, SendOutcome, StatusOutcome, StatusReport, Store, StoreError,
};

/// How to open a sled store.
#[derive(Debug, Clone)]
pub struct SledStoreOptions {
    /// Directory of the database files (created if missing).
    pub path: PathBuf,
    /// The engine of the view, for a new store (an existing one keeps its
    /// own; `view.rs`).
    pub engine: Engine,
    /// Requests that may wait for the writer before senders are slowed down.
    pub queue_capacity: usize,
    /// sled page cache, bytes, as sled counts them (the pages' size on
    /// disk; in memory they take two to three times that).
    pub cache_bytes: u64,
    /// Told about every group commit (batch size, time, success).
    pub on_commit: Option<crate::CommitObserver>,
    /// Most payload bytes one agency's outbox may hold (0: no limit).
    pub outbox_quota_bytes: u64,
    /// Free disk space to keep: sends that would go below it are refused
    /// before anything is written (0: no check).
    pub min_free_bytes: u64,
    /// Replicate every batch through this shared log before answering
    /// (the JetStream backend); `None`: the local flush is the commit.
    pub replicator: Option<Arc<dyn crate::Replicator>>,
    /// Told what every committed batch changed in the outboxes, this
    /// hub's and (replicated) other hubs': the delivery engine's one feed.
    pub outbox_events: Option<Arc<crate::OutboxEvents>>,
    /// How often sled flushes in the background, ms (`None`: only when
    /// asked). Durability comes from the log, whatever this is.
    pub flush_every_ms: Option<u64>,
    /// Open a damaged store anyway (`trucd repair --accept-loss`): the
    /// damaged part of the log is moved aside and the signed-head file
    /// rewritten; [`SledStore::repaired`] says what was dropped. Never set
    /// it for serving.
    pub accept_loss: bool,
    /// The axis's working-day calendar (`[calendar]`): the local day the
    /// indicators count each receipt on, and the confirmation deadline
    /// each copy gets when its document is accepted.
    pub calendar: Arc<truc_core::Calendar>,
    /// Where receipt times come from: the system clock, or a test's
    /// manual one.
    pub clock: truc_core::Clock,
}

impl SledStoreOptions {
    /// Defaults for a data directory.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            engine: Engine::default(),
            queue_capacity: 4096,
            // At 100 agencies the writer thread's heap held 163 MB with 64
            // MiB, 68 MB with 16 MiB, at the same CPU per document
            // (BENCHMARKS.md): what is read back is recent, still cached.
            cache_bytes: 16 * 1024 * 1024,
            on_commit: None,
            outbox_quota_bytes: 0,
            min_free_bytes: 0,
            replicator: None,
            outbox_events: None,
            flush_every_ms: Some(500),
            accept_loss: false,
            calendar: Arc::new(truc_core::Calendar::default()),
            clock: truc_core::Clock::system(),
        }
    }
}

/// What the hub reads without I/O: the directory and queue counts. Only the
/// writer changes it, after a batch is durable.
#[derive(Debug, Default)]
pub(crate) struct Cache {
    agencies: RwLock<BTreeMap<String, AgencyRecord>>,
    /// Agency → (items, payload bytes) in its outbox.
    queued: Mutex<HashMap<String, (u64, u64)>>,
    /// Most payload bytes one agency's outbox may hold (0: no limit).
    quota_bytes: u64,
    /// Free disk space to keep; sends are refused below it (0: no check).
    min_free_bytes: u64,
    /// The data directory (for the free-space check).
    path: PathBuf,
    /// Payload digests pinned by uploads in progress: never collected.
    pins: gc::Pins,
    /// The shared log (JetStream): collected payloads are deleted from it
    /// too.
    replica: Option<Arc<dyn crate::Replicator>>,
}

/// sled's handles, shared by the writer, the readers and the puncher. The
/// writer replaces them when it reopens sled after a failed write
/// (`Writer::recover`): sled 0.34 refuses every write after an I/O error
/// until it is opened again. While it reopens it holds the lock, so readers
/// wait for the new handles rather than keep the old files open.
#[derive(Debug)]
pub(super) struct Handles(RwLock<Option<(crate::sled::view::Db, crate::sled::view::Tree)>>);

impl Handles {
    /// The tree to read (waits while the writer reopens sled).
    pub(super) fn tree(&self) -> Result<crate::sled::view::Tree, StoreError> {
        Ok(self.both()?.1)
    }

    /// The database and the tree.
    pub(super) fn both(&self) -> Result<(crate::sled::view::Db, crate::sled::view::Tree), StoreError> {
        let g = self.0.read_locked();
        g.clone().ok_or_else(|| {
            StoreError::unavailable(
                "the store's database is closed after a write failure and could not be reopened yet",
            )
        })
    }

    /// Take the handles out (readers wait or are refused until [`Handles::put`]).
    pub(super) fn take(
        &self,
    ) -> std::sync::RwLockWriteGuard<'_, Option<(crate::sled::view::Db, crate::sled::view::Tree)>> {
        let mut g = self.0.write_locked();
        g.take();
        g
    }
}

/// Whether the writer can commit: set when a commit fails in a way the
/// writer must recover from, cleared by the next commit that succeeds.
#[derive(Debug, Default)]
pub(super) struct Health(Mutex<Option<String>>);

impl Health {
    pub(super) fn set(&self, problem: Option<String>) {
        *self.0.locked() = problem;
    }

    fn problem(&self) -> Option<String> {
        self.0.locked().clone()
    }
}

impl Cache {
    /// Fill the directory and the queue counts from `tree`.
    pub(super) fn load(&self, tree: &crate::sled::view::Tree) -> Result<(), StoreError> {
        let mut agencies = self.agencies.write_locked();
        agencies.clear();
        for kv in tree.scan_prefix([tag::AGENCY]) {
            let (_, v) = kv?;
            let a = AgencyRecord::decode(v.as_ref()).map_err(|e| StoreError::corrupt_from("agency", e))?;
            agencies.insert(a.code.clone(), a);
        }
        let mut queued = self.queued.locked();
        queued.clear();
        for kv in tree.scan_prefix([tag::QUEUED_COUNT]) {
            let (k, v) = kv?;
            let code = String::from_utf8_lossy(&k[1..]).into_owned();
            let count = v.get(..8).and_then(keys::u64_value).unwrap_or(0);
            let bytes = v.get(8..16).and_then(keys::u64_value).unwrap_or(0);
            queued.insert(code, (count, bytes));
        }
        Ok(())
    }

    fn agency(&self, code: &str) -> Option<AgencyRecord> {
        self.agencies.read_locked().get(code).cloned()
    }

    fn queued(&self, code: &str) -> u64 {
        self.queue_counts(code).0
    }

    /// (items, payload bytes) waiting for `code`.
    fn queue_counts(&self, code: &str) -> (u64, u64) {
        self.queued.locked().get(code).copied().unwrap_or((0, 0))
    }

    fn apply(&self, agencies: Vec<AgencyRecord>, queued_delta: &HashMap<String, (i64, i64)>) {
        if !agencies.is_empty() {
            let mut map = self.agencies.write_locked();
            for a in agencies {
                if agencies::is_removal(&a) {
                    map.remove(&a.code);
                } else {
                    map.insert(a.code.clone(), a);
                }
            }
        }
        if !queued_delta.is_empty() {
            let mut q = self.queued.locked();
            for (code, (count, bytes)) in queued_delta {
                let v = q.entry(code.clone()).or_insert((0, 0));
                *v = ((v.0 as i64 + count).max(0) as u64, (v.1 as i64 + bytes).max(0) as u64);
            }
        }
    }

    fn info(&self, a: &AgencyRecord) -> AgencyInfo {
        AgencyInfo {
            code: a.code.clone(),
            name: a.name.clone(),
            state: truc_proto::v1::AgencyState::try_from(a.state).unwrap_or_default(),
            registered_at_unix_ms: a.registered_at_unix_ms,
            queued: self.queued(&a.code),
            successor: a.successor.clone(),
        }
    }
}

/// The embedded store: sled files in one directory, nothing to install.
pub struct SledStore {
    /// sled's handles (replaced when the writer reopens sled).
    handles: Arc<Handles>,
    /// Whether the writer can commit now (`/readyz`).
    health: Arc<Health>,
    bodies: Arc<log::BodyFiles>,
    ops: mpsc::Sender<Op>,
    cache: Arc<Cache>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Frees old batch records' disk space (embedded store only).
    puncher: Mutex<Option<punch::Puncher>>,
    /// What an accepted loss dropped at open.
    repaired: Vec<String>,
    /// The shared log this store commits through (JetStream), if any.
    replica: Option<Arc<dyn crate::Replicator>>,
    /// When the view's blob files were last collected (`collect_payloads`,
    /// `view.rs`).
    last_blob_pass: Mutex<Option<std::time::Instant>>,
}

/// Least time between two passes over the view's blob files: a pass reads
/// every key once.
const BLOB_PASS_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore").finish_non_exhaustive()
    }
}

impl SledStore {
    /// Open (or create) the store in `opts.path`, signing tree heads with
    /// `signer`. Blocking: call it before serving, or in `spawn_blocking`.
    pub fn open(opts: &SledStoreOptions, signer: TreeHeadSigner) -> Result<Arc<SledStore>, StoreError> {
        let config = view::Opener::new(&opts.path, opts.engine, opts.cache_bytes, opts.flush_every_ms);
        tracing::info!(store = %opts.path.display(), engine = config.engine.name(), "opening the store");
        // sled 0.34 can panic on damage it does not detect by checksum
        // ("tried to serialize Uninitialized"): a refusal, not a crash.
        let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| config.open()));
        let (db, tree) = match opened {
            Ok(r) => r?,
            Err(panic) => {
                let why = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("a panic");
                return Err(StoreError::Damaged(crate::Damage {
                    file: crate::sled::view::database_path(&opts.path),
                    offset: None,
                    what: format!("the store's database cannot be read ({why})"),
                    lost: "the hub's state held there (agencies, queues, receipts)".into(),
                    repairable: false,
                }));
            }
        };
        let mut recovered = recovery::Recovered::default();
        // Batches the log holds and sled had not flushed yet. (Replicated,
        // the shared log is the commit point and this log holds none.)
        let torn = match opts.replicator {
            None => recovery::replay(&db, &tree, opts, &mut recovered)?,
            Some(_) => Vec::new(),
        };
        if recovered.replayed > 0 {
            tracing::info!(batches = recovered.replayed, "caught up from the log");
        }
        let cache = Arc::new(Cache {
            quota_bytes: opts.outbox_quota_bytes,
            min_free_bytes: opts.min_free_bytes,
            path: opts.path.clone(),
            replica: opts.replicator.clone(),
            ..Cache::default()
        });
        // Replicated: catch up with the shared log before serving.
        let shared = match &opts.replicator {
            None => None,
            Some(r) => {
                let from = replicated::applied(&tree)?;
                let last = r.last()?;
                if from > last {
                    return Err(StoreError::corrupt(format!(
                        "{}: this local view reflects {from} log entries but the shared log holds {last}: the log \
                         was reset or this directory belongs to another log; start with an empty data_dir",
                        opts.path.display()
                    )));
                }
                let applied = replicated::catch_up(&tree, &cache, &**r, from, last, opts.outbox_events.as_deref())?;
                tracing::info!(from, applied, "caught up with the shared log");
                Some(commit_log::SharedLog::new(r.clone(), applied))
            }
        };
        let mut meta = match tree.get(keys::meta())? {
            Some(v) => Meta::decode(v.as_ref()).map_err(|e| StoreError::corrupt_from("meta", e))?,
            None => Meta {
                next_hub_id: 1,
                payload_refs_counted: true,
                deadlines_indexed: true,
                ..Meta::default()
            },
        };
        if !meta.payload_refs_counted {
            // A store from before payload collection: count once.
            let now = truc_core::now_unix_ms().max(meta.last_time_unix_ms);
            let mut batch = gc::count_refs(&tree, &opts.path, now)?;
            meta.payload_refs_counted = true;
            batch.insert(keys::meta(), meta.encode_to_vec());
            tree.apply_batch(batch)?;
            db.flush()?;
        }
        if !meta.deadlines_indexed {
            // A store from before the deadline index: build it once.
            let mut batch = crate::sled::view::Batch::default();
            let added = crate::machine::deadlines::index_all(&tree)?;
            tracing::info!(entries = added.len(), "indexed the copies' deadlines");
            for k in added {
                batch.insert(k, Vec::<u8>::new());
            }
            meta.deadlines_indexed = true;
            batch.insert(keys::meta(), meta.encode_to_vec());
            tree.apply_batch(batch)?;
            db.flush()?;
        }
        // Nothing the hub signed may be missing: checked before the torn
        // tail is cut (so a refusal changes nothing), then in force.
        let head_file = recovery::check_signed_head(&tree, opts, &meta, &torn, &mut recovered)?;
        log::cut_torn_tails(&opts.path, &torn)?;
        if opts.replicator.is_none() {
            recovery::mark_checked(&db, &tree, &opts.path)?;
        }
        meta.torn_tails_cut = true;
        meta.signed_head_file = true;
        cache.load(&tree)?;
        let log = log::BodyLog::open(&opts.path)?;
        let body_files = log.files();
        let handles = Arc::new(Handles(RwLock::new(Some((db.clone(), tree.clone())))));
        let puncher = match opts.replicator {
            None => Some(punch::Puncher::start(handles.clone(), &opts.path)),
            Some(_) => None,
        };
        let health = Arc::new(Health::default());
        let (tx, rx) = mpsc::channel(opts.queue_capacity.max(1));
        let setup = writer::Setup {
            db,
            tree: tree.clone(),
            meta,
            signer,
            cache: cache.clone(),
            punch: puncher.as_ref().map(punch::Puncher::nudge),
            head_file,
            handles: handles.clone(),
            health: health.clone(),
            config,
            opts: opts.clone(),
        };
        let handle = match shared {
            None => setup.spawn(commit_log::LocalLog(log), rx),
            Some(shared) => setup.spawn(shared, rx),
        }
        .map_err(|e| StoreError::unavailable_from("cannot start the writer thread", e))?;
        drop(tree);
        let store = Arc::new(SledStore {
            handles,
            health,
            bodies: body_files,
            ops: tx,
            cache,
            writer: Mutex::new(Some(handle)),
            puncher: Mutex::new(puncher),
            repaired: recovered.dropped,
            replica: opts.replicator.clone(),
            last_blob_pass: Mutex::new(None),
        });
        Ok(store)
    }

    /// After a JetStream store's local view in `path` became an embedded
    /// store (`trucd migrate to-sled`): its `Meta` names log positions of
    /// whichever hub wrote each batch, and this directory's log holds no
    /// batches. Point replay at the start of the local log. Blocking; the
    /// store must be closed.
    pub fn forget_log_position(path: &Path) -> Result<(), StoreError> {
        let (db, tree) = view::Opener::existing(path).open()?;
        if let Some(mut meta) = recovery::read_meta(&tree)? {
            meta.log_segment = 0;
            meta.log_offset = 0;
            tree.insert(keys::meta(), meta.encode_to_vec())?;
            db.flush()?;
        }
        Ok(())
    }

    /// What `accept_loss` dropped when this store was opened (empty when
    /// nothing was damaged); `trucd repair` records it as a receipt.
    pub fn repaired(&self) -> &[String] {
        &self.repaired
    }

    /// Give back, now, the disk space of the log's batch records that no
    /// replay will read again (a thread does it anyway after the first
    /// batch of each new segment, and every minute; see `sled/punch.rs`).
    /// Blocking. Nothing to do for a replicated store.
    pub fn reclaim_log_space(&self) -> Result<Reclaimed, StoreError> {
        match &*self.puncher.locked() {
            Some(p) => p.pass(),
            None => Ok(Reclaimed::default()),
        }
    }

    /// Whether the last pass over the blob files is [`BLOB_PASS_EVERY`]
    /// old (or there was none); if so, the next one counts from now.
    fn blob_pass_due(&self) -> bool {
        let mut last = self.last_blob_pass.locked();
        let due = last.is_none_or(|t| t.elapsed() >= BLOB_PASS_EVERY);
        if due {
            *last = Some(std::time::Instant::now());
        }
        due
    }

    /// Stop accepting changes, let the writer finish what is queued, flush,
    /// and wait for it. Blocking.
    pub fn close(self: Arc<Self>) {
        if let Some(p) = self.puncher.locked().take() {
            p.stop();
        }
        let handle = self.writer.locked().take();
        drop(self);
        if let Some(h) = handle {
            let _ = h.join();
        }
    }

    /// After [`SledStore::close`]: open and close sled once more, so that the
    /// next start is quick. sled 0.34 writes its recovery snapshot only when
    /// it opens, and until then every open reads all it wrote since the last
    /// one (seconds after a day of traffic; measured in BENCHMARKS.md). Doing
    /// that reading here moves it from the next start to this stop, like a
    /// database's shutdown checkpoint. Blocking; returns how long it took.
    pub fn checkpoint(path: &Path) -> Result<std::time::Duration, StoreError> {
        let started = std::time::Instant::now();
        if Engine::found_in(path) == Some(Engine::Sled) {
            let db = open_db(&sled::Config::new().path(path), path)?;
            drop(db);
        }
        Ok(started.elapsed())
    }

    /// Replicated store: have the writer apply what other hubs appended to
    /// the shared log (a no-op when it is busy: every batch catches up).
    pub fn sync_replica(&self) {
        let _ = self.ops.try_send(Op::Sync(None));
    }

    /// Run the read `f` once the local view reflects every batch the shared
    /// log held when it was called (replicated store; at once otherwise):
    /// reads at any hub see every write any hub acknowledged before.
    fn fresh<'a, T: Send + 'a>(
        &'a self,
        f: BoxFuture<'a, Result<T, StoreError>>,
    ) -> BoxFuture<'a, Result<T, StoreError>> {
        if self.replica.is_none() {
            return f;
        }
        Box::pin(async move {
            self.catch_up().await?;
            f.await
        })
    }

    /// Replicated store: return once the local view reflects every batch
    /// the shared log held when this was called (reads after it see every
    /// write any hub had acknowledged). Without a log: at once.
    pub async fn catch_up(&self) -> Result<(), StoreError> {
        self.call(|tx| Op::Sync(Some(tx))).await
    }

    /// Apply `cmd` through the writer; `pick` turns its outcome (with the
    /// committed batch, for receipts and proofs) into the answer.
    async fn run<T: Send + 'static>(
        &self,
        cmd: Command,
        pick: impl FnOnce(Outcome, Option<&writer::Committed>) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.call(move |tx| {
            Op::Command(
                cmd,
                Box::new(move |r| {
                    let _ = tx.send(r.and_then(|(o, c)| {
                        let committed = c.is_some();
                        pick(o, c).map_err(|e| after_commit(committed, e))
                    }));
                }),
            )
        })
        .await
    }

    async fn call<T>(&self, make: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Op) -> Result<T, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.ops.send(make(tx)).await.map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }
}

/// An error met while answering a command whose batch has committed
/// (building a receipt's proof, say) must not tell the caller that nothing
/// was stored: its outcome is unknown to the caller, and a retry with the
/// same document id is answered as a duplicate, with its receipt. Errors of
/// commands that committed nothing pass unchanged.
fn after_commit(committed: bool, e: StoreError) -> StoreError {
    match e {
        e if !committed => e,
        e @ StoreError::OutcomeUnknown(_) => e,
        e => StoreError::OutcomeUnknown(format!(
            "the request was stored, but its answer could not be made ({})",
            truc_core::error_chain(&e)
        )),
    }
}

/// Open sled with `config`. A previous instance in this process (a
/// restart) may take a moment to release the directory's lock; another
/// process holding it is an error after that.
pub(super) fn open_db(config: &sled::Config, path: &Path) -> Result<sled::Db, StoreError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match config.open() {
            Ok(db) => return Ok(db),
            Err(sled::Error::Io(e)) if is_lock_error(&e) && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(sled::Error::Io(e)) if is_lock_error(&e) => {
                return Err(StoreError::unavailable(format!(
                    "{} is in use by another trucd (could not lock it)",
                    path.display()
                )))
            }
            Err(e) => return Err(open_error(path, e)),
        }
    }
}

/// A key and its value.
type KeyValue = (Vec<u8>, Vec<u8>);

/// For a copy into a replicated store, whose hubs cannot read this store's
/// log: a `D` record (`key`, `value`) whose body is in the log, rewritten
/// with the body in the record and its inline payload under `P` (returned
/// as an extra key and value). Other keys come back unchanged.
pub(crate) fn with_body_inline(
    path: &Path,
    key: &[u8],
    value: Vec<u8>,
) -> Result<(Vec<u8>, Option<KeyValue>), StoreError> {
    use crate::records::DocumentRecord;
    if key.first() != Some(&tag::DOCUMENT) {
        return Ok((value, None));
    }
    let mut rec = DocumentRecord::decode(value.as_slice()).map_err(|e| StoreError::corrupt_from("document", e))?;
    if rec.body.is_empty() {
        return Ok((value, None));
    }
    let at = log::BodyRef::decode(&rec.body)
        .ok_or_else(|| StoreError::corrupt(format!("body of document {}", rec.hub_id)))?;
    let body = log::BodyFiles::at(path).read(at)?;
    let doc = truc_proto::v1::SignedDocument::decode(body.as_slice())
        .map_err(|e| StoreError::corrupt_from(format!("body of document {}", rec.hub_id), e))?;
    rec.body = Vec::new();
    rec.header = doc.header;
    rec.signature = doc.signature;
    rec.signer_chain = doc.signer_chain;
    let payload = (!rec.external_payload).then(|| (keys::payload(&rec.payload_sha256), doc.payload));
    Ok((rec.encode_to_vec(), payload))
}

/// sled reports a directory locked by another handle as an I/O error.
fn is_lock_error(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::WouldBlock || e.to_string().contains("could not acquire lock")
}

pub(super) fn open_error(path: &Path, e: sled::Error) -> StoreError {
    match e {
        sled::Error::Io(io) => StoreError::unavailable(format!("cannot open {}: {io}", path.display())),
        sled::Error::Corruption { at, .. } => StoreError::Damaged(crate::Damage {
            file: crate::sled::view::database_path(path),
            offset: at.map(|a| a.lid()),
            what: "sled's database file fails its checksums".into(),
            lost: "the hub's state held there (agencies, queues, receipts)".into(),
            repairable: false,
        }),
        other => StoreError::unavailable(format!("cannot open {}: {other}", path.display())),
    }
}

/// Run a read on a blocking thread. Readers see only durable state: the
/// writer applies a batch to sled after the log has made it durable, and
/// sled applies a batch atomically. At most [`read_slots`] at once.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let _slot = read_slots().acquire().await.map_err(|_| StoreError::Closed)?;
    tokio::task::spawn_blocking(f).await.map_err(|_| StoreError::Closed)?
}

/// Reads running at once on blocking threads, over every store of the
/// process: two per core. More only adds threads — each with its stack,
/// allocator cache and sled pins — that wait for the same cores: with 100
/// agencies reading their outboxes, up to 64 at once cost 0.41–0.47 CPU s
/// per 1000 documents, two per core 0.35 (BENCHMARKS.md, issue 18).
fn read_slots() -> &'static tokio::sync::Semaphore {
    static SLOTS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    SLOTS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        tokio::sync::Semaphore::new(2 * cores)
    })
}

/// Copy a payload file to or from the shared store (JetStream) on a
/// blocking thread, at most one per core at once. Not a read slot: a copy
/// of a large document takes seconds, and reads must not wait behind it.
/// Bounded still, because a copy waits for one more blocking task
/// (`tokio::fs`): read slots and copy slots together stay under the
/// runtime's blocking threads (`truc_hub::max_blocking_threads`).
async fn copying(f: impl FnOnce() -> Result<(), StoreError> + Send + 'static) -> Result<(), StoreError> {
    static SLOTS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    let slots = SLOTS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        tokio::sync::Semaphore::new(cores)
    });
    let _slot = slots.acquire().await.map_err(|_| StoreError::Closed)?;
    tokio::task::spawn_blocking(f).await.map_err(|_| StoreError::Closed)?
}

impl Store for Arc<SledStore> {
    fn send(&self, doc: NewDocument) -> BoxFuture<'_, Result<SendOutcome, StoreError>> {
        Box::pin(async move {
            // Replicated: a chunked upload's payload file reaches every hub
            // before the Send that names it commits.
            if let (Some(r), true) = (&self.replica, doc.payload_external) {
                let (r, sha, size) = (r.clone(), doc.payload_sha256, doc.payload_size);
                copying(move || r.put_payload(&sha, size)).await?;
            }
            self.run(Command::Send(Box::new(doc)), |o, c| match (o, c) {
                (Outcome::Sent(s), Some(c)) => Ok(SendOutcome {
                    hub_document_id: s.hub_id,
                    accepted_at_unix_ms: s.accepted_at,
                    duplicate: s.duplicate,
                    receipt: c.proven_receipt(s.receipt_index)?,
                    notify: s.notify,
                    restored: s.restored,
                }),
                (o, _) => Err(ops::unexpected("send", &o)),
            })
            .await
        })
    }

    fn ack(&self, agency: AgencyCode, ids: Vec<u64>, actor: String) -> BoxFuture<'_, Result<u32, StoreError>> {
        Box::pin(self.run(Command::Ack { agency, ids, actor }, |o, _| match o {
            Outcome::Acked(n) => Ok(n),
            o => Err(ops::unexpected("ack", &o)),
        }))
    }

    fn expire(
        &self,
        agency: AgencyCode,
        id: u64,
        max_attempts: u32,
    ) -> BoxFuture<'_, Result<ExpireOutcome, StoreError>> {
        Box::pin(self.run(
            Command::Expire {
                agency,
                id,
                max_attempts,
            },
            |o, _| match o {
                Outcome::Expired(e) => Ok(e),
                o => Err(ops::unexpected("expire", &o)),
            },
        ))
    }

    fn fetch(
        &self,
        agency: AgencyCode,
        skip: HashSet<u64>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<QueuedItem>, StoreError>> {
        let handles = self.handles.clone();
        let bodies = self.bodies.clone();
        Box::pin(blocking(move || {
            let tree = handles.tree()?;
            reads::queue(&tree, &bodies, tag::OUTBOX, &agency, &skip, limit)
        }))
    }

    fn caught_up(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        match self.replica {
            None => Box::pin(async { Ok(()) }),
            Some(_) => Box::pin(self.catch_up()),
        }
    }

    fn fetch_from(
        &self,
        agency: AgencyCode,
        from: [u64; 5],
        skip: HashSet<u64>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<QueuedItem>, StoreError>> {
        let handles = self.handles.clone();
        let bodies = self.bodies.clone();
        Box::pin(blocking(move || {
            let tree = handles.tree()?;
            reads::outbox_from(&tree, &bodies, &agency, from, &skip, limit)
        }))
    }

    fn put_agency(
        &self,
        code: AgencyCode,
        name: String,
        actor: String,
    ) -> BoxFuture<'_, Result<AgencyInfo, StoreError>> {
        Box::pin(self.run(Command::PutAgency { code, name, actor }, |o, _| match o {
            Outcome::Agency(a) => Ok(a),
            o => Err(ops::unexpected("put agency", &o)),
        }))
    }

    fn agency(&self, code: &AgencyCode) -> Option<AgencyInfo> {
        self.cache.agency(code.as_str()).map(|a| self.cache.info(&a))
    }

    fn commit_problem(&self) -> Option<String> {
        self.health.problem()
    }

    fn agencies(&self) -> Vec<AgencyInfo> {
        let map = self.cache.agencies.read_locked();
        map.values().map(|a| self.cache.info(a)).collect()
    }

    fn indicators(
        &self,
        from_day: i64,
        to_day: i64,
        agency: Option<AgencyCode>,
    ) -> BoxFuture<'_, Result<Vec<indicators::IndicatorRow>, StoreError>> {
        let handles = self.handles.clone();
        let codes: Vec<String> = self.agencies().into_iter().map(|a| a.code).collect();
        self.fresh(Box::pin(blocking(move || {
            let tree = handles.tree()?;
            indicators::read(&tree, from_day, to_day, agency.as_ref().map(AgencyCode::as_str), &codes)
        })))
    }

    fn dead_letters(&self, agency: AgencyCode) -> BoxFuture<'_, Result<Vec<QueuedItem>, StoreError>> {
        let handles = self.handles.clone();
        let bodies = self.bodies.clone();
        self.fresh(Box::pin(blocking(move || {
            let tree = handles.tree()?;
            reads::queue(&tree, &bodies, tag::DEAD, &agency, &HashSet::new(), usize::MAX)
        })))
    }

    fn report_status(&self, report: StatusReport) -> BoxFuture<'_, Result<StatusOutcome, StoreError>> {
        Box::pin(self.run(Command::Status(Box::new(report)), |o, c| match (o, c) {
            (Outcome::StatusReported { receipt_index, notify }, Some(c)) => Ok(StatusOutcome {
                receipt: c.proven_receipt(receipt_index)?,
                notify,
            }),
            (o, _) => Err(ops::unexpected("status", &o)),
        }))
    }

    fn track(&self, from: AgencyCode, document_id: String) -> BoxFuture<'_, Result<Option<TrackResponse>, StoreError>> {
        let handles = self.handles.clone();
        self.fresh(Box::pin(blocking(move || {
            let tree = handles.tree()?;
            reads::track(&tree, &from, &document_id)
        })))
    }

    fn receipts(&self, query: ReceiptQuery) -> BoxFuture<'_, Result<ReceiptPage, StoreError>> {
        let handles = self.handles.clone();
        self.fresh(Box::pin(blocking(move || {
            let tree = handles.tree()?;
            reads::receipts(&tree, &query)
        })))
    }

    fn tree_head(&self, tree_size: u64) -> BoxFuture<'_, Result<Option<SignedTreeHead>, StoreError>> {
        let handles = self.handles.clone();
        self.fresh(Box::pin(blocking(move || {
            let tree = handles.tree()?;
            match tree_size {
                0 => Ok(proofs::latest_tree_head(&tree)?.map(|(h, _)| h)),
                n => proofs::tree_head_at(&tree, n),
            }
        })))
    }

    fn tree_heads(
        &self,
        from_size: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<(Vec<SignedTreeHead>, u64), StoreError>> {
        let handles = self.handles.clone();
        self.fresh(Box::pin(blocking(move || {
            let tree = handles.tree()?;
            proofs::tree_heads(&tree, from_size, limit)
        })))
    }

    fn set_agency_state(
        &self,
        code: AgencyCode,
        state: truc_proto::v1::AgencyState,
        reason: String,
        actor: String,
    ) -> BoxFuture<'_, Result<AgencyInfo, StoreError>> {
        Box::pin(self.run(
            Command::SetState {
                code,
                state,
                reason,
                actor,
            },
            |o, _| match o {
                Outcome::Agency(a) => Ok(a),
                o => Err(ops::unexpected("set agency state", &o)),
            },
        ))
    }

    fn retire_agency(
        &self,
        code: AgencyCode,
        successor: AgencyCode,
        reason: String,
        actor: String,
    ) -> BoxFuture<'_, Result<AgencyInfo, StoreError>> {
        Box::pin(self.run(
            Command::Retire {
                code,
                successor,
                reason,
                actor,
            },
            |o, _| match o {
                Outcome::Agency(a) => Ok(a),
                o => Err(ops::unexpected("retire agency", &o)),
            },
        ))
    }

    fn remove_agency(&self, code: AgencyCode, reason: String, actor: String) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.run(Command::RemoveAgency { code, reason, actor }, |o, _| match o {
            Outcome::Removed => Ok(()),
            o => Err(ops::unexpected("remove agency", &o)),
        }))
    }

    fn redrive(&self, agency: AgencyCode, ids: Vec<u64>, actor: String) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(self.run(Command::Redrive { agency, ids, actor }, |o, _| match o {
            Outcome::Moved(n) => Ok(n),
            o => Err(ops::unexpected("redrive", &o)),
        }))
    }

    fn purge(&self, agency: AgencyCode, ids: Vec<u64>, actor: String) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(self.run(Command::Purge { agency, ids, actor }, |o, _| match o {
            Outcome::Moved(n) => Ok(n),
            o => Err(ops::unexpected("purge", &o)),
        }))
    }

    fn record_action(&self, detail: String, actor: String) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.run(Command::Record { detail, actor }, |o, _| match o {
            Outcome::Done => Ok(()),
            o => Err(ops::unexpected("record", &o)),
        }))
    }

    fn queue_stats(&self, agency: AgencyCode, now_unix_ms: i64) -> BoxFuture<'_, Result<QueueStats, StoreError>> {
        let handles = self.handles.clone();
        let (queued, bytes) = self.cache.queue_counts(agency.as_str());
        self.fresh(Box::pin(blocking(move || {
            let tree = handles.tree()?;
            let mut s = reads::queue_stats(&tree, agency.as_str(), now_unix_ms)?;
            s.queued = queued;
            s.bytes = bytes;
            Ok(s)
        })))
    }

    fn queue_page(
        &self,
        agency: AgencyCode,
        after: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<QueueEntry>, StoreError>> {
        let handles = self.handles.clone();
        self.fresh(Box::pin(blocking(move || {
            let tree = handles.tree()?;
            reads::queue_page(&tree, &agency, after, limit)
        })))
    }

    fn payload(&self, hub_id: u64, caller: AgencyCode) -> BoxFuture<'_, Result<PayloadRef, StoreError>> {
        let handles = self.handles.clone();
        let bodies = self.bodies.clone();
        let replica = self.replica.clone();
        self.fresh(Box::pin(async move {
            let p = blocking(move || {
                let tree = handles.tree()?;
                reads::payload(&tree, &bodies, hub_id, &caller)
            })
            .await?;
            // Replicated: a payload uploaded at another hub is fetched
            // before it is served.
            if let (Some(r), PayloadRef::External { sha256, .. }) = (replica, &p) {
                let sha = sha256.clone();
                copying(move || r.get_payload(&sha)).await?;
            }
            Ok(p)
        }))
    }

    fn consistency_proof(&self, old_size: u64, new_size: u64) -> BoxFuture<'_, Result<Vec<[u8; 32]>, StoreError>> {
        let handles = self.handles.clone();
        self.fresh(Box::pin(blocking(move || {
            let tree = handles.tree()?;
            proofs::consistency(&tree, old_size, new_size)
        })))
    }

    fn precheck_send(
        &self,
        from: AgencyCode,
        document_id: Option<String>,
        to: Vec<AgencyCode>,
        size: u64,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.run(
            Command::Precheck {
                from,
                document_id,
                to,
                size,
            },
            |o, _| match o {
                Outcome::Checked => Ok(()),
                o => Err(ops::unexpected("precheck", &o)),
            },
        ))
    }

    fn pin_payload(&self, sha256: Vec<u8>) -> BoxFuture<'_, Result<crate::PayloadPin, StoreError>> {
        Box::pin(self.call(move |reply| Op::Pin { sha256, reply }))
    }

    fn release_payload(&self, sha256: Vec<u8>) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.run(Command::Release { sha256 }, |o, _| match o {
            Outcome::Done => Ok(()),
            o => Err(ops::unexpected("release payload", &o)),
        }))
    }

    fn collect_payloads(&self, released_before_unix_ms: i64, limit: usize) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async move {
            let n = self
                .run(
                    Command::Collect {
                        released_before_unix_ms,
                        limit,
                    },
                    |o, _| match o {
                        Outcome::Collected(n) => Ok(n),
                        o => Err(ops::unexpected("collect payloads", &o)),
                    },
                )
                .await?;
            // Payloads this hub or another one deleted leave their bytes
            // in the view's blob files until a pass rewrites or drops them.
            if self.blob_pass_due() {
                let handles = self.handles.clone();
                match blocking(move || handles.tree()?.collect_blobs()).await {
                    Ok(Some(pass)) if pass.freed_bytes > 0 => tracing::info!(
                        freed_bytes = pass.freed_bytes,
                        blob_files = pass.files_after,
                        "gave back the disk space of deleted payloads in the view's blob files"
                    ),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(
                        error = %truc_core::error_chain(&e),
                        "cannot collect the view's blob files; retrying at a later pass"
                    ),
                }
            }
            Ok(n)
        })
    }
    fn verify_store(&self, opts: crate::ScrubOptions) -> BoxFuture<'_, Result<crate::ScrubReport, StoreError>> {
        self.fresh(Box::pin(self.scrub(opts)))
    }

    fn quarantine(
        &self,
        hub_id: u64,
        what: String,
        actor: String,
    ) -> BoxFuture<'_, Result<crate::Quarantined, StoreError>> {
        Box::pin(self.quarantine_now(hub_id, what, actor))
    }

    fn peer_items(
        &self,
        peer: HubId,
        skip: HashSet<u64>,
        limit: usize,
        max_bytes: u64,
    ) -> BoxFuture<'_, Result<Vec<crate::PeerItem>, StoreError>> {
        let handles = self.handles.clone();
        let bodies = self.bodies.clone();
        self.fresh(Box::pin(blocking(move || {
            let tree = handles.tree()?;
            reads::peer_items(&tree, &bodies, peer.as_str(), &skip, limit, max_bytes)
        })))
    }

    fn forwarded(
        &self,
        peer: HubId,
        items: Vec<(u64, Option<ProvenReceipt>)>,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.run(Command::Forwarded { peer, items }, |o, _| match o {
            Outcome::Done => Ok(()),
            o => Err(ops::unexpected("forwarded", &o)),
        }))
    }

    fn forward_refused(
        &self,
        peer: HubId,
        id: u64,
        max_attempts: u32,
        why: String,
    ) -> BoxFuture<'_, Result<ExpireOutcome, StoreError>> {
        let cmd = Command::ForwardRefused {
            peer,
            id,
            max_attempts,
            why,
        };
        Box::pin(self.run(cmd, |o, _| match o {
            Outcome::Expired(e) => Ok(e),
            o => Err(ops::unexpected("forward refused", &o)),
        }))
    }

    fn peer_report(&self, peer: HubId, receipt: ProvenReceipt) -> BoxFuture<'_, Result<Vec<AgencyCode>, StoreError>> {
        Box::pin(self.run(Command::PeerReport { peer, receipt }, |o, _| match o {
            Outcome::Reported(n) => Ok(n),
            o => Err(ops::unexpected("peer report", &o)),
        }))
    }

    fn peer_directory(&self, peer: HubId, entries: Vec<crate::RemoteAgency>) -> BoxFuture<'_, Result<u32, StoreError>> {
        Box::pin(self.run(Command::PeerDirectory { peer, entries }, |o, _| match o {
            Outcome::Changed(n) => Ok(n),
            o => Err(ops::unexpected("peer directory", &o)),
        }))
    }

    fn remote_agencies(&self) -> BoxFuture<'_, Result<Vec<crate::RemoteAgency>, StoreError>> {
        let handles = self.handles.clone();
        self.fresh(Box::pin(blocking(move || {
            let tree = handles.tree()?;
            let mut out = Vec::new();
            for kv in tree.scan_prefix([tag::REMOTE_AGENCY]) {
                let (_, v) = kv?;
                let r = crate::records::RemoteAgencyRecord::decode(v.as_ref())
                    .map_err(|e| StoreError::corrupt_from("remote agency", e))?;
                out.push(crate::machine::directory::remote(r));
            }
            Ok(out)
        })))
    }

    fn remote_agency(&self, code: AgencyCode) -> BoxFuture<'_, Result<Option<crate::RemoteAgency>, StoreError>> {
        let handles = self.handles.clone();
        self.fresh(Box::pin(blocking(move || {
            let tree = handles.tree()?;
            let Some(v) = tree.get(keys::remote_agency(code.as_str()))? else {
                return Ok(None);
            };
            let r = crate::records::RemoteAgencyRecord::decode(v.as_ref())
                .map_err(|e| StoreError::corrupt_from("remote agency", e))?;
            Ok(Some(crate::machine::directory::remote(r)))
        })))
    }

    fn peer_queue_stats(&self, peer: HubId, now_unix_ms: i64) -> BoxFuture<'_, Result<QueueStats, StoreError>> {
        let handles = self.handles.clone();
        let name = crate::machine::peers::outbox(peer.as_str());
        let (queued, bytes) = self.cache.queue_counts(&name);
        self.fresh(Box::pin(blocking(move || {
            let tree = handles.tree()?;
            let mut s = reads::queue_stats(&tree, &name, now_unix_ms)?;
            s.queued = queued;
            s.bytes = bytes;
            Ok(s)
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::head::tests::signer;
    use super::*;

    /// A command whose batch committed is never answered "nothing was
    /// stored", whatever fails while its answer is made; one that stored
    /// nothing keeps its own error.
    #[tokio::test]
    async fn an_error_after_the_commit_says_the_outcome_is_unknown() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(&SledStoreOptions::new(dir.path()), signer()).unwrap();
        let record = Command::Record {
            detail: "a test's action".into(),
            actor: "tester".into(),
        };
        let e = store
            .run(record, |_, c| -> Result<(), StoreError> {
                assert!(c.is_some(), "the record committed");
                Err(StoreError::unavailable("the proof could not be read"))
            })
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::OutcomeUnknown(_)), "{e:?}");
        assert!(e.to_string().contains("the proof could not be read"), "{e}");

        let check = Command::Precheck {
            from: AgencyCode::parse("000.00.00.G22").unwrap(),
            document_id: None,
            to: Vec::new(),
            size: 1,
        };
        let e = store
            .run(check, |_, c| -> Result<(), StoreError> {
                assert!(c.is_none(), "a precheck commits nothing");
                Err(StoreError::unavailable("refused"))
            })
            .await
            .unwrap_err();
        assert!(!matches!(e, StoreError::OutcomeUnknown(_)), "{e:?}");
        tokio::task::spawn_blocking(move || store.close()).await.unwrap();
    }
}
