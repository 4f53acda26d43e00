//! The embedded backend: one sled tree in the data directory.

mod agencies;
mod documents;
mod gc;
mod leaves;
mod log;
mod ops;
mod pending;
mod proofs;
mod punch;
mod reads;
mod reclaim;
mod replicated;
mod writer;

pub use punch::Reclaimed;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use prost::Message;
use tokio::sync::{mpsc, oneshot};
use truc_core::tree_head::TreeHeadSigner;
use truc_core::AgencyCode;
use truc_proto::v1::{SignedTreeHead, TrackResponse};

use self::ops::Op;
use self::writer::Writer;
use crate::keys::{self, tag};
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
    /// Told which agencies got outbox items from other hubs' batches.
    pub on_remote: Option<crate::RemoteObserver>,
}

impl SledStoreOptions {
    /// Defaults for a data directory.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            queue_capacity: 4096,
            // At 100 agencies the writer thread's heap held 163 MB with 64
            // MiB, 68 MB with 16 MiB, at the same CPU per document
            // (BENCHMARKS.md): what is read back is recent, still cached.
            cache_bytes: 16 * 1024 * 1024,
            on_commit: None,
            outbox_quota_bytes: 0,
            min_free_bytes: 0,
            replicator: None,
            on_remote: None,
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
}

impl Cache {
    fn agency(&self, code: &str) -> Option<AgencyRecord> {
        self.agencies
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(code)
            .cloned()
    }

    fn queued(&self, code: &str) -> u64 {
        self.queue_counts(code).0
    }

    /// (items, payload bytes) waiting for `code`.
    fn queue_counts(&self, code: &str) -> (u64, u64) {
        self.queued
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(code)
            .copied()
            .unwrap_or((0, 0))
    }

    fn apply(&self, agencies: Vec<AgencyRecord>, queued_delta: &HashMap<String, (i64, i64)>) {
        if !agencies.is_empty() {
            let mut map = self.agencies.write().unwrap_or_else(|e| e.into_inner());
            for a in agencies {
                map.insert(a.code.clone(), a);
            }
        }
        if !queued_delta.is_empty() {
            let mut q = self.queued.lock().unwrap_or_else(|e| e.into_inner());
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
            state: a.state,
            registered_at_unix_ms: a.registered_at_unix_ms,
            queued: self.queued(&a.code),
            successor: a.successor.clone(),
        }
    }
}

/// The embedded store: sled files in one directory, nothing to install.
pub struct SledStore {
    tree: sled::Tree,
    bodies: Arc<log::BodyFiles>,
    ops: mpsc::Sender<Op>,
    cache: Arc<Cache>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Frees old batch records' disk space (embedded store only).
    puncher: Mutex<Option<punch::Puncher>>,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore").finish_non_exhaustive()
    }
}

impl SledStore {
    /// Open (or create) the store in `opts.path`, signing tree heads with
    /// `signer`. Blocking: call it before serving, or in `spawn_blocking`.
    pub fn open(opts: &SledStoreOptions, signer: TreeHeadSigner) -> Result<Arc<SledStore>, StoreError> {
        let config = sled::Config::new()
            .path(&opts.path)
            .cache_capacity(opts.cache_bytes)
            // Durability comes from the log (`log.rs`); sled flushes in the
            // background and is caught up from the log at open.
            .flush_every_ms(Some(500));
        let db = open_db(&config, &opts.path)?;
        let tree = db.open_tree("truc").map_err(|e| open_error(&opts.path, e))?;
        // Batches the log holds and sled had not flushed yet.
        let logged = match tree.get(keys::meta())? {
            Some(v) => Meta::decode(v.as_ref()).map_err(|_| StoreError::Corrupt("meta".into()))?,
            None => Meta::default(),
        };
        // (Replicated, the shared log is the commit point and this log holds
        // no batches.)
        let replay = match opts.replicator {
            None => log::batches_after(&opts.path, (logged.log_segment, logged.log_offset))?,
            Some(_) => Vec::new(),
        };
        if !replay.is_empty() {
            let n = replay.len();
            for writes in replay {
                let mut batch = sled::Batch::default();
                for (k, v) in writes {
                    match v {
                        Some(v) => batch.insert(k, v),
                        None => batch.remove(k),
                    }
                }
                tree.apply_batch(batch)?;
            }
            db.flush()?;
            tracing::info!(batches = n, "caught up from the log");
        }
        let cache = Arc::new(Cache {
            quota_bytes: opts.outbox_quota_bytes,
            min_free_bytes: opts.min_free_bytes,
            path: opts.path.clone(),
            ..Cache::default()
        });
        // Replicated: catch up with the shared log before serving.
        let follower = match &opts.replicator {
            None => None,
            Some(r) => {
                let from = replicated::applied(&tree)?;
                let last = r.last()?;
                if from > last {
                    return Err(StoreError::Corrupt(format!(
                        "{}: this local view reflects {from} log entries but the shared log holds {last}: the log \
                         was reset or this directory belongs to another log; start with an empty data_dir",
                        opts.path.display()
                    )));
                }
                let (applied, _) = replicated::catch_up(&tree, &cache, &**r, from, last)?;
                tracing::info!(from, applied, "caught up with the shared log");
                Some(replicated::Follower {
                    replica: r.clone(),
                    applied,
                    on_remote: opts.on_remote.clone(),
                })
            }
        };
        let mut meta = match tree.get(keys::meta())? {
            Some(v) => Meta::decode(v.as_ref()).map_err(|_| StoreError::Corrupt("meta".into()))?,
            None => Meta {
                next_hub_id: 1,
                payload_refs_counted: true,
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
        {
            let mut agencies = cache.agencies.write().unwrap_or_else(|e| e.into_inner());
            for kv in tree.scan_prefix([tag::AGENCY]) {
                let (_, v) = kv?;
                let a = AgencyRecord::decode(v.as_ref()).map_err(|_| StoreError::Corrupt("agency".into()))?;
                agencies.insert(a.code.clone(), a);
            }
            let mut queued = cache.queued.lock().unwrap_or_else(|e| e.into_inner());
            for kv in tree.scan_prefix([tag::QUEUED_COUNT]) {
                let (k, v) = kv?;
                let code = String::from_utf8_lossy(&k[1..]).into_owned();
                let count = v.get(..8).and_then(keys::u64_value).unwrap_or(0);
                let bytes = v.get(8..16).and_then(keys::u64_value).unwrap_or(0);
                queued.insert(code, (count, bytes));
            }
        }
        let log = log::BodyLog::open(&opts.path)?;
        let body_files = log.files();
        let puncher = match opts.replicator {
            None => Some(punch::Puncher::start(db.clone(), tree.clone(), &opts.path)),
            Some(_) => None,
        };
        let (tx, rx) = mpsc::channel(opts.queue_capacity.max(1));
        let writer = Writer {
            db,
            log,
            poisoned: None,
            tree: tree.clone(),
            meta,
            signer,
            cache: cache.clone(),
            on_commit: opts.on_commit.clone(),
            follower,
            punch: puncher.as_ref().map(punch::Puncher::nudge),
        };
        let handle = std::thread::Builder::new()
            .name("truc-store-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| StoreError::Unavailable(format!("cannot start the writer thread: {e}")))?;
        Ok(Arc::new(SledStore {
            tree,
            bodies: body_files,
            ops: tx,
            cache,
            writer: Mutex::new(Some(handle)),
            puncher: Mutex::new(puncher),
        }))
    }

    /// Give back, now, the disk space of the log's batch records that no
    /// replay will read again (a thread does it anyway after the first
    /// batch of each new segment, and every minute; see `sled/punch.rs`).
    /// Blocking. Nothing to do for a replicated store.
    pub fn reclaim_log_space(&self) -> Result<Reclaimed, StoreError> {
        match &*self.puncher.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(p) => p.pass(),
            None => Ok(Reclaimed::default()),
        }
    }

    /// Stop accepting changes, let the writer finish what is queued, flush,
    /// and wait for it. Blocking.
    pub fn close(self: Arc<Self>) {
        if let Some(p) = self.puncher.lock().unwrap_or_else(|e| e.into_inner()).take() {
            p.stop();
        }
        let handle = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take();
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
        let db = open_db(&sled::Config::new().path(path), path)?;
        drop(db);
        Ok(started.elapsed())
    }

    /// Replicated store: have the writer apply what other hubs appended to
    /// the shared log (a no-op when it is busy: every batch catches up).
    pub fn sync_replica(&self) {
        let _ = self.ops.try_send(Op::Sync(None));
    }

    /// Replicated store: return once the local view reflects every batch
    /// the shared log held when this was called (reads after it see every
    /// write any hub had acknowledged). Without a log: at once.
    pub async fn catch_up(&self) -> Result<(), StoreError> {
        self.call(|tx| Op::Sync(Some(tx))).await
    }

    async fn call<T>(&self, make: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Op) -> Result<T, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.ops.send(make(tx)).await.map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }
}

/// Open sled with `config`. A previous instance in this process (a
/// restart) may take a moment to release the directory's lock; another
/// process holding it is an error after that.
fn open_db(config: &sled::Config, path: &Path) -> Result<sled::Db, StoreError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match config.open() {
            Ok(db) => return Ok(db),
            Err(sled::Error::Io(e)) if is_lock_error(&e) && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(sled::Error::Io(e)) if is_lock_error(&e) => {
                return Err(StoreError::Unavailable(format!(
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
    let mut rec = DocumentRecord::decode(value.as_slice()).map_err(|_| StoreError::Corrupt("document".into()))?;
    if rec.body.is_empty() {
        return Ok((value, None));
    }
    let at = log::BodyRef::decode(&rec.body)
        .ok_or_else(|| StoreError::Corrupt(format!("body of document {}", rec.hub_id)))?;
    let body = log::BodyFiles::at(path).read(at)?;
    let doc = truc_proto::v1::SignedDocument::decode(body.as_slice())
        .map_err(|_| StoreError::Corrupt(format!("body of document {}", rec.hub_id)))?;
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

fn open_error(path: &Path, e: sled::Error) -> StoreError {
    match e {
        sled::Error::Io(io) => StoreError::Unavailable(format!("cannot open {}: {io}", path.display())),
        sled::Error::Corruption { .. } => StoreError::Corrupt(format!("database files in {}", path.display())),
        other => StoreError::Unavailable(format!("cannot open {}: {other}", path.display())),
    }
}

/// Run a read on a blocking thread. Readers see only durable state: the
/// writer applies a batch to sled after the log has made it durable, and
/// sled applies a batch atomically.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f).await.map_err(|_| StoreError::Closed)?
}

impl Store for Arc<SledStore> {
    fn send(&self, doc: NewDocument) -> BoxFuture<'_, Result<SendOutcome, StoreError>> {
        Box::pin(self.call(move |tx| Op::Send(Box::new(doc), tx)))
    }

    fn ack(&self, agency: AgencyCode, ids: Vec<u64>, actor: String) -> BoxFuture<'_, Result<u32, StoreError>> {
        Box::pin(self.call(move |reply| Op::Ack {
            agency,
            ids,
            actor,
            reply,
        }))
    }

    fn expire(
        &self,
        agency: AgencyCode,
        id: u64,
        max_attempts: u32,
    ) -> BoxFuture<'_, Result<ExpireOutcome, StoreError>> {
        Box::pin(self.call(move |reply| Op::Expire {
            agency,
            id,
            max_attempts,
            reply,
        }))
    }

    fn fetch(
        &self,
        agency: AgencyCode,
        skip: HashSet<u64>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<QueuedItem>, StoreError>> {
        let tree = self.tree.clone();
        let bodies = self.bodies.clone();
        Box::pin(blocking(move || {
            reads::queue(&tree, &bodies, tag::OUTBOX, &agency, &skip, limit)
        }))
    }

    fn fetch_from(
        &self,
        agency: AgencyCode,
        from: [u64; 5],
        skip: HashSet<u64>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<QueuedItem>, StoreError>> {
        let tree = self.tree.clone();
        let bodies = self.bodies.clone();
        Box::pin(blocking(move || {
            reads::outbox_from(&tree, &bodies, &agency, from, &skip, limit)
        }))
    }

    fn put_agency(
        &self,
        code: AgencyCode,
        name: String,
        actor: String,
    ) -> BoxFuture<'_, Result<AgencyInfo, StoreError>> {
        Box::pin(self.call(move |reply| Op::PutAgency {
            code,
            name,
            actor,
            reply,
        }))
    }

    fn agency(&self, code: &AgencyCode) -> Option<AgencyInfo> {
        self.cache.agency(code.as_str()).map(|a| self.cache.info(&a))
    }

    fn agencies(&self) -> Vec<AgencyInfo> {
        let map = self.cache.agencies.read().unwrap_or_else(|e| e.into_inner());
        map.values().map(|a| self.cache.info(a)).collect()
    }

    fn dead_letters(&self, agency: AgencyCode) -> BoxFuture<'_, Result<Vec<QueuedItem>, StoreError>> {
        let tree = self.tree.clone();
        let bodies = self.bodies.clone();
        Box::pin(blocking(move || {
            reads::queue(&tree, &bodies, tag::DEAD, &agency, &HashSet::new(), usize::MAX)
        }))
    }

    fn report_status(&self, report: StatusReport) -> BoxFuture<'_, Result<StatusOutcome, StoreError>> {
        Box::pin(self.call(move |tx| Op::Status(Box::new(report), tx)))
    }

    fn track(&self, from: AgencyCode, document_id: String) -> BoxFuture<'_, Result<Option<TrackResponse>, StoreError>> {
        let tree = self.tree.clone();
        Box::pin(blocking(move || reads::track(&tree, &from, &document_id)))
    }

    fn receipts(&self, query: ReceiptQuery) -> BoxFuture<'_, Result<ReceiptPage, StoreError>> {
        let tree = self.tree.clone();
        Box::pin(blocking(move || reads::receipts(&tree, &query)))
    }

    fn tree_head(&self, tree_size: u64) -> BoxFuture<'_, Result<Option<SignedTreeHead>, StoreError>> {
        let tree = self.tree.clone();
        Box::pin(blocking(move || match tree_size {
            0 => Ok(proofs::latest_tree_head(&tree)?.map(|(h, _)| h)),
            n => proofs::tree_head_at(&tree, n),
        }))
    }

    fn tree_heads(
        &self,
        from_size: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<(Vec<SignedTreeHead>, u64), StoreError>> {
        let tree = self.tree.clone();
        Box::pin(blocking(move || proofs::tree_heads(&tree, from_size, limit)))
    }

    fn set_agency_state(
        &self,
        code: AgencyCode,
        state: truc_proto::v1::AgencyState,
        reason: String,
        actor: String,
    ) -> BoxFuture<'_, Result<AgencyInfo, StoreError>> {
        Box::pin(self.call(move |reply| Op::SetState {
            code,
            state,
            reason,
            actor,
            reply,
        }))
    }

    fn retire_agency(
        &self,
        code: AgencyCode,
        successor: AgencyCode,
        reason: String,
        actor: String,
    ) -> BoxFuture<'_, Result<AgencyInfo, StoreError>> {
        Box::pin(self.call(move |reply| Op::Retire {
            code,
            successor,
            reason,
            actor,
            reply,
        }))
    }

    fn redrive(&self, agency: AgencyCode, ids: Vec<u64>, actor: String) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(self.call(move |reply| Op::Redrive {
            agency,
            ids,
            actor,
            reply,
        }))
    }

    fn purge(&self, agency: AgencyCode, ids: Vec<u64>, actor: String) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(self.call(move |reply| Op::Purge {
            agency,
            ids,
            actor,
            reply,
        }))
    }

    fn record_action(&self, detail: String, actor: String) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.call(move |reply| Op::Record { detail, actor, reply }))
    }

    fn queue_stats(&self, agency: AgencyCode, now_unix_ms: i64) -> BoxFuture<'_, Result<QueueStats, StoreError>> {
        let tree = self.tree.clone();
        let (queued, bytes) = self.cache.queue_counts(agency.as_str());
        Box::pin(blocking(move || {
            let mut s = reads::queue_stats(&tree, &agency, now_unix_ms)?;
            s.queued = queued;
            s.bytes = bytes;
            Ok(s)
        }))
    }

    fn queue_page(
        &self,
        agency: AgencyCode,
        after: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<QueueEntry>, StoreError>> {
        let tree = self.tree.clone();
        Box::pin(blocking(move || reads::queue_page(&tree, &agency, after, limit)))
    }

    fn payload(&self, hub_id: u64, caller: AgencyCode) -> BoxFuture<'_, Result<PayloadRef, StoreError>> {
        let tree = self.tree.clone();
        let bodies = self.bodies.clone();
        Box::pin(blocking(move || reads::payload(&tree, &bodies, hub_id, &caller)))
    }

    fn consistency_proof(&self, old_size: u64, new_size: u64) -> BoxFuture<'_, Result<Vec<[u8; 32]>, StoreError>> {
        let tree = self.tree.clone();
        Box::pin(blocking(move || proofs::consistency(&tree, old_size, new_size)))
    }

    fn precheck_send(
        &self,
        from: AgencyCode,
        document_id: Option<String>,
        to: Vec<AgencyCode>,
        size: u64,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.call(move |reply| Op::Precheck {
            from,
            document_id,
            to,
            size,
            reply,
        }))
    }

    fn pin_payload(&self, sha256: Vec<u8>) -> BoxFuture<'_, Result<crate::PayloadPin, StoreError>> {
        Box::pin(self.call(move |reply| Op::Pin { sha256, reply }))
    }

    fn release_payload(&self, sha256: Vec<u8>) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.call(move |reply| Op::Release { sha256, reply }))
    }

    fn collect_payloads(&self, released_before_unix_ms: i64, limit: usize) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(self.call(move |reply| Op::Collect {
            released_before_unix_ms,
            limit,
            reply,
        }))
    }
}
