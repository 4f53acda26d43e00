//! The view: the ordered key-value engine that the writer applies each
//! durable batch to and that every read reads. Two engines hold it:
//!
//! - **fjall** (the default for a new store), an LSM tree in
//!   `data_dir/fjall`: a batch goes to its journal and an in-memory table;
//!   sorted files are written and merged in the background. The hub spends
//!   a fifth less CPU per document on it than on sled and carries a third
//!   more documents per second (BENCHMARKS.md, issue 18).
//! - **sled** (`[store] engine = "sled"`, and every store created before
//!   fjall): a B-tree of pages, `db`, `conf` and `snap.*` in `data_dir`.
//!
//! Either way the commit log (`log.rs`, or the shared log) is the commit
//! point: a batch is durable there before it is applied here, and the view
//! is caught up from it at open. A store keeps the engine it was created
//! with: the engine setting chooses only for an empty directory.
//!
//! Readers see whole batches: sled applies a batch under its own
//! concurrency control; fjall's reads go through a snapshot at the last
//! batch it finished applying.

use std::ops::{Deref, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::StoreError;

/// The engine that holds a store's view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Engine {
    /// sled 0.34: one B-tree, `db`, `conf` and `snap.*` in the directory.
    Sled,
    /// fjall 2: an LSM tree in `fjall/` under the directory (the default).
    #[default]
    Fjall,
}

/// Where fjall keeps its files, under the store's directory.
const FJALL_DIR: &str = "fjall";
/// The name of the one sled tree / fjall partition.
const TREE: &str = "truc";

impl Engine {
    /// The engine of the store in `path`, if there is one.
    pub fn found_in(path: &Path) -> Option<Engine> {
        if path.join(FJALL_DIR).exists() {
            Some(Engine::Fjall)
        } else if path.join("conf").exists() || path.join("db").exists() {
            Some(Engine::Sled)
        } else {
            None
        }
    }

    /// The name in the configuration and in messages.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Sled => "sled",
            Engine::Fjall => "fjall",
        }
    }
}

/// The database of the store in `path`, for messages about it: fjall's
/// directory, or sled's `db` file.
pub(crate) fn database_path(path: &Path) -> PathBuf {
    match Engine::found_in(path) {
        Some(Engine::Fjall) => path.join(FJALL_DIR),
        _ => path.join("db"),
    }
}

/// How to open (and reopen) a view.
#[derive(Debug, Clone)]
pub(crate) struct Opener {
    pub(super) engine: Engine,
    pub(super) path: PathBuf,
    pub(super) cache_bytes: u64,
    pub(super) flush_every_ms: Option<u64>,
}

impl Opener {
    /// For the store in `path`: its own engine, or `wanted` for a new one.
    pub(super) fn new(path: &Path, wanted: Engine, cache_bytes: u64, flush_every_ms: Option<u64>) -> Opener {
        let engine = match Engine::found_in(path) {
            Some(found) => {
                if found != wanted {
                    tracing::warn!(
                        store = %path.display(),
                        found = found.name(),
                        configured = wanted.name(),
                        "the store keeps the engine it was created with; the configured engine applies to new stores"
                    );
                }
                found
            }
            None => wanted,
        };
        Opener {
            engine,
            path: path.to_path_buf(),
            cache_bytes,
            flush_every_ms,
        }
    }

    /// With the defaults, for tools that open a closed store briefly.
    pub(crate) fn existing(path: &Path) -> Opener {
        let d = super::SledStoreOptions::new(path);
        Opener::new(path, Engine::found_in(path).unwrap_or_default(), d.cache_bytes, None)
    }

    /// Open the database and its tree. A previous instance in this process
    /// (a restart) may take a moment to let go of the directory; another
    /// process holding it is an error after that.
    pub(crate) fn open(&self) -> Result<(Db, Tree), StoreError> {
        match self.engine {
            Engine::Sled => {
                let config = sled::Config::new()
                    .path(&self.path)
                    .cache_capacity(self.cache_bytes)
                    .flush_every_ms(self.flush_every_ms);
                let db = super::open_db(&config, &self.path)?;
                let tree = db.open_tree(TREE).map_err(|e| super::open_error(&self.path, e))?;
                Ok((Db::Sled(db), Tree::Sled(tree)))
            }
            Engine::Fjall => {
                let f = Fjall::open(self)?;
                Ok((Db::Fjall(f.clone()), Tree::Fjall(f)))
            }
        }
    }
}

/// A value (or key) read from the view.
pub(crate) enum Bytes {
    Sled(sled::IVec),
    Fjall(fjall::Slice),
}

impl Deref for Bytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Sled(v) => v,
            Bytes::Fjall(v) => v,
        }
    }
}

impl AsRef<[u8]> for Bytes {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

/// The changes of one batch, applied atomically.
#[derive(Debug, Default)]
pub(crate) struct Batch(Vec<(Vec<u8>, Option<Vec<u8>>)>);

impl Batch {
    pub(crate) fn insert(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.0.push((key.into(), Some(value.into())));
    }

    pub(crate) fn remove(&mut self, key: impl Into<Vec<u8>>) {
        self.0.push((key.into(), None));
    }
}

/// fjall's keyspace, its one partition, and the lock on the directory
/// (fjall takes none of its own).
#[derive(Clone)]
pub(crate) struct Fjall {
    keyspace: fjall::Keyspace,
    part: fjall::PartitionHandle,
    _lock: Arc<std::fs::File>,
}

impl Fjall {
    fn open(o: &Opener) -> Result<Fjall, StoreError> {
        let dir = o.path.join(FJALL_DIR);
        std::fs::create_dir_all(&dir)
            .map_err(|e| StoreError::unavailable_from(format!("cannot create {}", dir.display()), e))?;
        let lock = lock_dir(&dir)?;
        // Durability does not rest on fjall's journal: every batch is handed
        // to the OS as it is applied, and the log's records are freed only
        // after a sync of the view (`punch.rs`), so what a power loss takes
        // from the journal is replayed from the log. The journal is synced
        // every `JOURNAL_SYNC_MS` all the same, for latency: fjall syncs the
        // whole journal when it starts a new one (at every memtable, 16 MiB),
        // and it does so inside the writer's batch. Unsynced, that was a
        // stall of about 40 ms every few seconds at a tenth of the load,
        // holding up the 20 or so Sends behind it; synced as it goes, the
        // stall has little left to write (Sends over 10 ms at 600/s: 62–111
        // → 30–87 per 12 s; BENCHMARKS.md, session 15). The sync holds the
        // journal's lock, so an apply that comes while it queues behind a
        // flush of a sorted file waits with it (45–50 ms, once per flush;
        // session 16). A close waits for the sync thread's interval at most.
        let config = fjall::Config::new(&dir)
            .cache_size(o.cache_bytes)
            // Two cores do the hub's work: one thread flushes in-memory
            // tables, one merges sorted files.
            .flush_workers(1)
            .compaction_workers(1)
            .fsync_ms(Some(JOURNAL_SYNC_MS));
        let keyspace = config.open().map_err(|e| fjall_open_error(&dir, e))?;
        let part = keyspace
            .open_partition(TREE, new_partition())
            .map_err(|e| fjall_open_error(&dir, e))?;
        Ok(Fjall {
            keyspace,
            part,
            _lock: Arc::new(lock),
        })
    }

    /// Give back the disk space of large values deleted since the last
    /// pass (`BlobPass`); `None`: the partition keeps every value in its
    /// sorted files (created before `LARGE_VALUE`), nothing to do.
    /// Blocking: it reads every key once.
    fn collect_blobs(&self) -> Result<Option<BlobPass>, StoreError> {
        use fjall::GarbageCollection;
        if self.part.blob_file_count() == 0 {
            return Ok(None);
        }
        let before = self.part.gc_scan()?;
        let freed = self.part.gc_with_staleness_threshold(BLOB_STALE)?;
        Ok(Some(BlobPass {
            stale_before: before.stale_blobs,
            freed_bytes: freed,
            files_after: self.part.blob_file_count(),
        }))
    }

    /// What a read sees: every batch applied, none in part.
    fn snapshot(&self) -> fjall::Snapshot {
        self.part.snapshot_at(self.keyspace.instant())
    }
}

/// How often fjall's journal is synced, ms (see `Fjall::open`).
const JOURNAL_SYNC_MS: u16 = 100;

/// Values of at least this many bytes are kept apart from the sorted
/// files, in blob files (fjall's key-value separation): the replicated
/// store's inline payloads (`P`, 4 KiB and up). In the sorted files they
/// were written again at every merge: 33 KiB written to the disk for each
/// 4 KiB document (BENCHMARKS.md, session 15). Every other value is far
/// smaller (a document record with its signer chain is about 1 KiB) and
/// stays in the sorted files, so the embedded store, whose bodies are in
/// its log, has no blob files at all.
const LARGE_VALUE: u32 = 2048;
/// A blob file whose values are at least this share deleted is rewritten
/// with the live ones (and one with none live is removed). fjall holds the
/// writes back while it copies, so the share is high: at most a quarter of
/// a file is copied at a time. Payloads are deleted in about the order they
/// came (after their retention), so files mostly go stale whole.
const BLOB_STALE: f32 = 0.75;

/// A new partition: large values apart (`LARGE_VALUE`). A partition
/// created earlier keeps the layout it was created with (fjall records it).
fn new_partition() -> fjall::PartitionCreateOptions {
    fjall::PartitionCreateOptions::default().with_kv_separation(
        fjall::KvSeparationOptions::default()
            .separation_threshold(LARGE_VALUE)
            .file_target_size(64 << 20),
    )
}

/// What a pass over the view's blob files did (`Tree::collect_blobs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BlobPass {
    /// Values in them deleted or replaced since they were written.
    pub(crate) stale_before: u64,
    /// Bytes the pass gave back.
    pub(crate) freed_bytes: u64,
    /// Blob files after it.
    pub(crate) files_after: usize,
}

/// Lock `dir` for this process: retried for a moment (a restart in the same
/// process lets go of it asynchronously), then refused.
fn lock_dir(dir: &Path) -> Result<std::fs::File, StoreError> {
    let path = dir.join("truc.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| StoreError::unavailable_from(format!("cannot open {}", path.display()), e))?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match fs2::FileExt::try_lock_exclusive(&file) {
            Ok(()) => return Ok(file),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                return Err(StoreError::unavailable(format!(
                    "{} is in use by another trucd (could not lock it)",
                    dir.display()
                )))
            }
            Err(e) => {
                return Err(StoreError::unavailable_from(
                    format!("cannot lock {}", path.display()),
                    e,
                ))
            }
        }
    }
}

fn fjall_open_error(dir: &Path, e: fjall::Error) -> StoreError {
    match e {
        fjall::Error::Io(io) => StoreError::unavailable_from(format!("cannot open {}", dir.display()), io),
        other => StoreError::Damaged(crate::Damage {
            file: dir.to_path_buf(),
            offset: None,
            what: format!("the store's database cannot be read ({other})"),
            lost: "the hub's state held there (agencies, queues, receipts)".into(),
            repairable: false,
        }),
    }
}

/// The database: what makes the view durable on its own.
#[derive(Clone)]
pub(crate) enum Db {
    Sled(sled::Db),
    Fjall(Fjall),
}

impl Db {
    /// Make everything applied so far durable in the view's own files.
    pub(crate) fn flush(&self) -> Result<(), StoreError> {
        match self {
            Db::Sled(db) => {
                db.flush()?;
            }
            Db::Fjall(f) => f.keyspace.persist(fjall::PersistMode::SyncAll)?,
        }
        Ok(())
    }

    /// An empty database in memory, holding nothing on disk (while the
    /// writer reopens the real one).
    pub(super) fn placeholder() -> Result<(Db, Tree), StoreError> {
        let db = sled::Config::new().temporary(true).open()?;
        let tree = db.open_tree(TREE)?;
        Ok((Db::Sled(db), Tree::Sled(tree)))
    }
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Db({})", self.engine().name())
    }
}

impl Db {
    fn engine(&self) -> Engine {
        match self {
            Db::Sled(_) => Engine::Sled,
            Db::Fjall(_) => Engine::Fjall,
        }
    }
}

impl std::fmt::Debug for Tree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tree({})", self.engine().name())
    }
}

/// The one ordered tree of the store's keys (`keys.rs`).
#[derive(Clone)]
pub(crate) enum Tree {
    Sled(sled::Tree),
    Fjall(Fjall),
}

/// Key and value pairs in key order, from a scan.
pub(crate) struct Iter {
    inner: Box<dyn DoubleEndedIterator<Item = Result<(Bytes, Bytes), StoreError>>>,
    /// fjall: the snapshot the scan reads (kept open while it runs).
    _snapshot: Option<fjall::Snapshot>,
}

impl Iterator for Iter {
    type Item = Result<(Bytes, Bytes), StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.inner.next()
    }
}

impl DoubleEndedIterator for Iter {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.inner.next_back()
    }
}

impl Iter {
    fn sled(it: sled::Iter) -> Iter {
        Iter {
            inner: Box::new(it.map(|kv| {
                kv.map(|(k, v)| (Bytes::Sled(k), Bytes::Sled(v)))
                    .map_err(StoreError::from)
            })),
            _snapshot: None,
        }
    }

    fn fjall(
        snapshot: fjall::Snapshot,
        it: impl DoubleEndedIterator<Item = Result<fjall::KvPair, lsm_tree::Error>> + 'static,
    ) -> Iter {
        Iter {
            inner: Box::new(it.map(|kv| {
                kv.map(|(k, v)| (Bytes::Fjall(k), Bytes::Fjall(v)))
                    .map_err(StoreError::from)
            })),
            _snapshot: Some(snapshot),
        }
    }
}

impl Tree {
    pub(crate) fn engine(&self) -> Engine {
        match self {
            Tree::Sled(_) => Engine::Sled,
            Tree::Fjall(_) => Engine::Fjall,
        }
    }

    pub(crate) fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>, StoreError> {
        Ok(match self {
            Tree::Sled(t) => t.get(key)?.map(Bytes::Sled),
            Tree::Fjall(f) => f.snapshot().get(key)?.map(Bytes::Fjall),
        })
    }

    pub(crate) fn contains_key(&self, key: impl AsRef<[u8]>) -> Result<bool, StoreError> {
        Ok(match self {
            Tree::Sled(t) => t.contains_key(key)?,
            Tree::Fjall(f) => f.snapshot().contains_key(key)?,
        })
    }

    /// One write, applied and durable like a batch of one.
    pub(crate) fn insert(&self, key: impl AsRef<[u8]>, value: impl Into<Vec<u8>>) -> Result<(), StoreError> {
        let mut b = Batch::default();
        b.insert(key.as_ref(), value);
        self.apply_batch(b)
    }

    pub(crate) fn scan_prefix(&self, prefix: impl AsRef<[u8]>) -> Iter {
        match self {
            Tree::Sled(t) => Iter::sled(t.scan_prefix(prefix)),
            Tree::Fjall(f) => {
                let s = f.snapshot();
                let it = s.prefix(prefix);
                Iter::fjall(s, it)
            }
        }
    }

    pub(crate) fn range<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, range: R) -> Iter {
        match self {
            Tree::Sled(t) => Iter::sled(t.range(range)),
            Tree::Fjall(f) => {
                let s = f.snapshot();
                let it = s.range(range);
                Iter::fjall(s, it)
            }
        }
    }

    /// Every key and value.
    pub(crate) fn iter(&self) -> Iter {
        match self {
            Tree::Sled(t) => Iter::sled(t.iter()),
            Tree::Fjall(f) => {
                let s = f.snapshot();
                let it = s.iter();
                Iter::fjall(s, it)
            }
        }
    }

    /// Give back the disk space of large values deleted since the last
    /// pass (fjall's blob files); `None`: this view has none (sled, or a
    /// fjall store from before `LARGE_VALUE`). Blocking: it reads every
    /// key once, so it is run rarely (`SledStore::collect_payloads`).
    pub(crate) fn collect_blobs(&self) -> Result<Option<BlobPass>, StoreError> {
        match self {
            Tree::Sled(_) => Ok(None),
            Tree::Fjall(f) => f.collect_blobs(),
        }
    }

    /// Apply `batch` atomically: readers see all of it or none.
    pub(crate) fn apply_batch(&self, batch: Batch) -> Result<(), StoreError> {
        match self {
            Tree::Sled(t) => {
                let mut b = sled::Batch::default();
                for (k, v) in batch.0 {
                    match v {
                        Some(v) => b.insert(k, v),
                        None => b.remove(k),
                    }
                }
                t.apply_batch(b)?;
            }
            Tree::Fjall(f) => {
                let mut b = f.keyspace.batch();
                for (k, v) in batch.0 {
                    match v {
                        Some(v) => b.insert(&f.part, k, v),
                        None => b.remove(&f.part, k),
                    }
                }
                b.commit()?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &Path) -> (Db, Tree) {
        Opener::new(dir, Engine::Fjall, 8 << 20, None).open().unwrap()
    }

    fn fjall_of(tree: &Tree) -> &Fjall {
        match tree {
            Tree::Fjall(f) => f,
            Tree::Sled(_) => unreachable!("opened as fjall"),
        }
    }

    fn large(i: u32) -> Vec<u8> {
        (0..8192u32).map(|j| (i.wrapping_mul(31) ^ j) as u8).collect()
    }

    fn payload_key(i: u32) -> Vec<u8> {
        let mut k = b"P".to_vec();
        k.extend_from_slice(&i.to_be_bytes());
        k
    }

    fn put_all(tree: &Tree, range: std::ops::Range<u32>) {
        let mut b = Batch::default();
        for i in range {
            b.insert(payload_key(i), large(i));
            b.insert(format!("D{i:08}"), format!("record {i}"));
        }
        tree.apply_batch(b).unwrap();
    }

    #[test]
    fn large_values_go_to_blob_files_and_a_pass_gives_back_the_deleted_ones() {
        let dir = tempfile::tempdir().unwrap();
        let (db, tree) = open(dir.path());
        put_all(&tree, 0..300);
        fjall_of(&tree).part.rotate_memtable_and_wait().unwrap();
        let files = fjall_of(&tree).part.blob_file_count();
        assert!(files >= 1, "8 KiB values are kept in blob files");
        // Nothing deleted: a pass gives nothing back and keeps every value.
        let pass = tree.collect_blobs().unwrap().expect("a view with blob files");
        assert_eq!((pass.freed_bytes, pass.files_after), (0, files));
        assert_eq!(tree.get(payload_key(7)).unwrap().unwrap().as_ref(), large(7).as_slice());

        let mut b = Batch::default();
        for i in 0..300 {
            b.remove(payload_key(i));
        }
        tree.apply_batch(b).unwrap();
        put_all(&tree, 300..310);
        fjall_of(&tree).part.rotate_memtable_and_wait().unwrap();
        let pass = tree.collect_blobs().unwrap().expect("a view with blob files");
        assert_eq!(pass.stale_before, 300);
        assert!(pass.freed_bytes >= 300 * 8192, "{pass:?}");
        assert_eq!(
            pass.files_after, 1,
            "only the file of the live values is left: {pass:?}"
        );
        assert!(tree.get(payload_key(5)).unwrap().is_none());
        assert_eq!(tree.get(b"D00000005").unwrap().unwrap().as_ref(), b"record 5");

        // Reopened, the live values read back whole.
        drop((db, tree));
        let (_db, tree) = open(dir.path());
        for i in 300..310 {
            assert_eq!(tree.get(payload_key(i)).unwrap().unwrap().as_ref(), large(i).as_slice());
        }
        assert!(tree.get(payload_key(0)).unwrap().is_none());
    }

    #[test]
    fn values_only_in_the_journal_read_back_after_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (db, tree) = open(dir.path());
            put_all(&tree, 0..20);
            db.flush().unwrap();
        }
        let (db, tree) = open(dir.path());
        for i in 0..20 {
            assert_eq!(tree.get(payload_key(i)).unwrap().unwrap().as_ref(), large(i).as_slice());
            assert_eq!(
                tree.get(format!("D{i:08}")).unwrap().unwrap().as_ref(),
                format!("record {i}").as_bytes()
            );
        }
        assert_eq!(tree.scan_prefix(b"P").count(), 20);
        assert_eq!(tree.collect_blobs().unwrap(), None, "no blob file before a flush");
        put_all(&tree, 20..25);
        fjall_of(&tree).part.rotate_memtable_and_wait().unwrap();
        drop(db);
        assert!(tree.collect_blobs().unwrap().is_some());
        assert_eq!(tree.get(payload_key(3)).unwrap().unwrap().as_ref(), large(3).as_slice());
    }

    #[test]
    fn a_store_created_before_blob_files_keeps_its_layout_and_a_pass_does_nothing() {
        let dir = tempfile::tempdir().unwrap();
        {
            // As a release before `LARGE_VALUE` created it.
            let keyspace = fjall::Config::new(dir.path().join(FJALL_DIR)).open().unwrap();
            let part = keyspace
                .open_partition(TREE, fjall::PartitionCreateOptions::default())
                .unwrap();
            part.insert(payload_key(1), large(1)).unwrap();
            keyspace.persist(fjall::PersistMode::SyncAll).unwrap();
        }
        let (_db, tree) = open(dir.path());
        put_all(&tree, 2..50);
        fjall_of(&tree).part.rotate_memtable_and_wait().unwrap();
        assert_eq!(fjall_of(&tree).part.blob_file_count(), 0);
        assert_eq!(tree.collect_blobs().unwrap(), None);
        assert_eq!(tree.get(payload_key(1)).unwrap().unwrap().as_ref(), large(1).as_slice());
        assert_eq!(
            tree.get(payload_key(49)).unwrap().unwrap().as_ref(),
            large(49).as_slice()
        );
    }
}
