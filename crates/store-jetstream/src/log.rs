//! The shared log on JetStream: one stream, one subject, one message per
//! committed batch; a key-value bucket holding the write lease; an object
//! store for entries too large for one message.

use std::sync::Mutex;
use std::time::Duration;
use truc_core::sync::Locked;

use async_nats::jetstream::{self, context::PublishErrorKind, kv, object_store, stream};
use bytes::Bytes;
use tokio::io::AsyncReadExt;
use tokio::runtime::Handle;
use truc_store::{Replicator, StoreError};

/// Header naming the object that holds a large entry.
const OBJECT_HEADER: &str = "Truc-Entry-Object";
/// The key of the write lease in the lease bucket.
const LEASE_KEY: &str = "writer";

pub(crate) struct Log {
    pub(crate) rt: Handle,
    pub(crate) js: jetstream::Context,
    pub(crate) stream: stream::Stream,
    pub(crate) subject: String,
    pub(crate) lease: kv::Store,
    pub(crate) objects: object_store::ObjectStore,
    /// Who we are in the lease bucket (hub name and a random suffix).
    pub(crate) holder: String,
    /// Revision of our lease while we hold it.
    pub(crate) held: Mutex<Option<u64>>,
    /// Revision of the last "free" lease record we wrote (the next take
    /// tries it first: one round trip when nobody else wrote).
    pub(crate) free_rev: Mutex<Option<u64>>,
    /// How long a lease lives if its holder dies.
    pub(crate) lease_ttl: Duration,
    /// Longest wait for one JetStream call.
    pub(crate) timeout: Duration,
    /// Entries above this go to the object store.
    pub(crate) max_message: usize,
    pub(crate) counter: std::sync::atomic::AtomicU64,
    /// The log's end as of our last release of the lease (our own last
    /// append, or the length we read), if that release succeeded.
    pub(crate) end_at_release: Mutex<Option<u64>>,
    /// The log's end as we last knew it while holding the lease.
    pub(crate) known_end: Mutex<Option<u64>>,
    /// This hub's payload files and the object store that shares them
    /// (`JetStreamOptions::payload_dir`); `None`: not replicated.
    pub(crate) payloads: Option<(std::path::PathBuf, object_store::ObjectStore)>,
}

pub(crate) fn unavailable(what: &str, e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::unavailable_from(format!("JetStream: {what}"), e)
}

impl Log {
    fn run<T>(&self, what: &str, f: impl std::future::Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
        let timeout = self.timeout;
        self.rt.block_on(async move {
            match tokio::time::timeout(timeout, f).await {
                Ok(r) => r,
                Err(_) => Err(StoreError::unavailable(format!(
                    "JetStream: {what}: no answer within {timeout:?}"
                ))),
            }
        })
    }

    /// One attempt at taking the lease; `Ok(None)`: someone holds it.
    /// `(revision, true)` when it was taken back at the revision of our own
    /// release: nobody held it since, so nobody appended since (a holder
    /// whose lease ran out earlier expects an older end and is refused).
    async fn try_take(&self) -> Result<Option<(u64, bool)>, StoreError> {
        let value = Bytes::from(self.holder.clone());
        let known_free = *self.free_rev.locked();
        if let Some(rev) = known_free {
            if let Ok(r) = self.lease.update(LEASE_KEY, value.clone(), rev).await {
                return Ok(Some((r, true)));
            }
        }
        Ok(self.take_slow(value).await?.map(|r| (r, false)))
    }

    async fn take_slow(&self, value: Bytes) -> Result<Option<u64>, StoreError> {
        match self
            .lease
            .entry(LEASE_KEY)
            .await
            .map_err(|e| unavailable("reading the write lease", e))?
        {
            None => match self.lease.create(LEASE_KEY, value).await {
                Ok(r) => Ok(Some(r)),
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(None),
                Err(e) => Err(unavailable("taking the write lease", e)),
            },
            Some(e) if e.value.is_empty() || e.operation != kv::Operation::Put => {
                match self.lease.update(LEASE_KEY, value, e.revision).await {
                    Ok(r) => Ok(Some(r)),
                    Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(None),
                    Err(e) => Err(unavailable("taking the write lease", e)),
                }
            }
            Some(_) => Ok(None),
        }
    }

    async fn last_async(&self) -> Result<u64, StoreError> {
        let info = self
            .stream
            .get_info()
            .await
            .map_err(|e| unavailable("reading the log's length", e))?;
        Ok(info.state.last_sequence)
    }
}

impl Replicator for Log {
    fn begin(&self) -> Result<u64, StoreError> {
        // Wait for a holder that died at most one lease lifetime.
        let deadline = std::time::Instant::now() + self.lease_ttl + self.timeout;
        let mut backoff = Duration::from_millis(1);
        let (rev, fast) = loop {
            let pause = match self.run("taking the write lease", self.try_take()) {
                Ok(Some(taken)) => break taken,
                // Contention: another hub is committing a batch.
                Ok(None) if std::time::Instant::now() > deadline => {
                    return Err(StoreError::unavailable(
                        "JetStream: another hub holds the write lease; retry",
                    ))
                }
                Ok(None) => {
                    backoff = (backoff * 2).min(Duration::from_millis(20));
                    backoff
                }
                // The cluster is electing a leader or a node went away: wait
                // it out (bounded) rather than fail every request at once.
                Err(e) if std::time::Instant::now() > deadline => return Err(e),
                Err(e) => {
                    tracing::debug!(error = %e, "write lease not available yet; retrying");
                    Duration::from_millis(100)
                }
            };
            std::thread::sleep(pause);
        };
        *self.held.locked() = Some(rev);
        let end_at_release = self.end_at_release.locked().take();
        if let (true, Some(end)) = (fast, end_at_release) {
            // One round trip saved; were this ever wrong, the append's
            // expected position would refuse the batch, storing nothing.
            *self.known_end.locked() = Some(end);
            return Ok(end);
        }
        match self.run("reading the log's length", self.last_async()) {
            Ok(last) => {
                *self.known_end.locked() = Some(last);
                Ok(last)
            }
            Err(e) => {
                self.end();
                Err(e)
            }
        }
    }

    fn end(&self) {
        let Some(rev) = self.held.locked().take() else {
            return;
        };
        // Mark it free; if this fails the lease runs out by itself.
        let freed = self.run("giving the write lease back", async {
            self.lease
                .update(LEASE_KEY, Bytes::new(), rev)
                .await
                .map_err(|e| unavailable("giving the write lease back", e))
        });
        let end = self.known_end.locked().take();
        *self.end_at_release.locked() = end.filter(|_| freed.is_ok());
        *self.free_rev.locked() = freed.ok();
    }

    fn last(&self) -> Result<u64, StoreError> {
        self.retrying(|| self.run("reading the log's length", self.last_async()))
    }

    fn read(&self, seq: u64) -> Result<Vec<u8>, StoreError> {
        self.retrying(|| self.read_once(seq))
    }

    fn append(&self, expected_last: u64, entry: Vec<u8>) -> Result<u64, StoreError> {
        // Unknown until the append answers (it may be stored even if the
        // answer is lost).
        *self.known_end.locked() = None;
        // Retried while the cluster cannot answer (an election): safe,
        // because an append that did land makes every retry fail on its
        // expected position, storing nothing twice.
        let deadline = std::time::Instant::now() + self.timeout;
        let seq = loop {
            match self.append_once(expected_last, &entry) {
                Err(e @ StoreError::Unavailable { .. })
                    if !e.to_string().contains(WRONG_POSITION) && std::time::Instant::now() < deadline =>
                {
                    tracing::debug!(error = %truc_core::error_chain(&e), "append not acknowledged; retrying");
                    std::thread::sleep(Duration::from_millis(100));
                }
                other => break other?,
            }
        };
        *self.known_end.locked() = Some(seq);
        Ok(seq)
    }

    // Payloads may be gigabytes: no call timeout (the connection's own
    // timeouts still apply).
    fn put_payload(&self, sha256: &[u8], size: u64) -> Result<(), StoreError> {
        self.rt.block_on(self.put_payload_async(sha256, size))
    }

    fn get_payload(&self, sha256: &[u8]) -> Result<(), StoreError> {
        self.rt.block_on(self.get_payload_async(sha256))
    }

    fn delete_payload(&self, sha256: &[u8]) -> Result<(), StoreError> {
        self.run("deleting a collected payload", self.delete_payload_async(sha256))
    }
}

impl Log {
    async fn put_payload_async(&self, sha256: &[u8], size: u64) -> Result<(), StoreError> {
        let Some((dir, objects)) = &self.payloads else {
            return Ok(());
        };
        let name = truc_core::hex(sha256);
        if objects
            .info(&name)
            .await
            .is_ok_and(|i| !i.deleted && i.size as u64 == size)
        {
            return Ok(());
        }
        let path = dir.join(&name);
        let mut file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| StoreError::unavailable(format!("{}: {e}", path.display())))?;
        objects
            .put(name.as_str(), &mut file)
            .await
            .map_err(|e| unavailable("storing a payload", e))?;
        Ok(())
    }

    async fn get_payload_async(&self, sha256: &[u8]) -> Result<(), StoreError> {
        let Some((dir, objects)) = &self.payloads else {
            return Ok(());
        };
        let name = truc_core::hex(sha256);
        let path = dir.join(&name);
        if tokio::fs::metadata(&path).await.is_ok() {
            return Ok(());
        }
        let mut obj = match objects.get(name.as_str()).await {
            Ok(obj) => obj,
            // Collected (or never shared): the caller finds no file and
            // says so, as on the embedded store.
            Err(e) if e.kind() == object_store::GetErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(unavailable("fetching a payload", e)),
        };
        let tmp = dir.join(format!(".{name}.{:x}.fetch", truc_core::now_unix_ms()));
        let io = |e: std::io::Error| StoreError::unavailable(format!("{}: {e}", tmp.display()));
        let mut out = tokio::fs::File::create(&tmp).await.map_err(io)?;
        let done = match self.copy_chunks(&mut obj, &mut out).await {
            Copied::Whole => out.sync_all().await.map_err(io),
            Copied::Failed(e) => Err(unavailable("fetching a payload", e)),
            Copied::Stalled => match objects.info(name.as_str()).await {
                // Collected while it was read (its chunks are gone, and the
                // reader would wait for them for ever): as if not found. A
                // deleted object keeps its record, marked deleted.
                Ok(info) if info.deleted => {
                    let _ = tokio::fs::remove_file(&tmp).await;
                    return Ok(());
                }
                Err(e) if e.kind() == object_store::InfoErrorKind::NotFound => {
                    let _ = tokio::fs::remove_file(&tmp).await;
                    return Ok(());
                }
                _ => Err(StoreError::unavailable(format!(
                    "JetStream: fetching a payload: no chunk within {:?}; retry later",
                    self.timeout
                ))),
            },
        };
        if let Err(e) = done.and(tokio::fs::rename(&tmp, &path).await.map_err(io)) {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
        }
        // Collected by another hub while it was copied: that hub deletes
        // the shared copy before its collection commits, and this hub
        // deletes its own copy when it applies that commit
        // (`forget_collected`), which may have come before the rename. Ask
        // again, so that a collected payload is not left here for ever.
        let gone = match objects.info(name.as_str()).await {
            Ok(info) => info.deleted,
            Err(e) => e.kind() == object_store::InfoErrorKind::NotFound,
        };
        if gone {
            let _ = tokio::fs::remove_file(&path).await;
        }
        Ok(())
    }

    /// Copy `obj` to `out`. Payloads may be gigabytes, so there is no
    /// timeout on the whole copy, but each chunk must come within the
    /// call timeout: a payload deleted while it is read leaves a reader
    /// that waits for chunks that will never come.
    async fn copy_chunks(&self, obj: &mut object_store::Object, out: &mut tokio::fs::File) -> Copied {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match tokio::time::timeout(self.timeout, obj.read(&mut buf)).await {
                Err(_) => return Copied::Stalled,
                Ok(Err(e)) => return Copied::Failed(e),
                Ok(Ok(0)) => return Copied::Whole,
                Ok(Ok(n)) => n,
            };
            if let Err(e) = out.write_all(&buf[..n]).await {
                return Copied::Failed(e);
            }
        }
    }

    async fn delete_payload_async(&self, sha256: &[u8]) -> Result<(), StoreError> {
        let Some((_, objects)) = &self.payloads else {
            return Ok(());
        };
        let name = truc_core::hex(sha256);
        match objects.delete(name.as_str()).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == object_store::DeleteErrorKind::NotFound => Ok(()),
            Err(e) => Err(unavailable("deleting a collected payload", e)),
        }
    }
}

/// How a payload's copy out of the object store ended.
enum Copied {
    Whole,
    /// No chunk came within the call timeout.
    Stalled,
    Failed(std::io::Error),
}

impl Log {
    /// `f` again while it fails (reads only: an election or a node that went
    /// away), for at most one timeout.
    fn retrying<T>(&self, f: impl Fn() -> Result<T, StoreError>) -> Result<T, StoreError> {
        let deadline = std::time::Instant::now() + self.timeout;
        loop {
            match f() {
                Err(e) if std::time::Instant::now() < deadline => {
                    tracing::debug!(error = %e, "JetStream read failed; retrying");
                    std::thread::sleep(Duration::from_millis(100));
                }
                other => return other,
            }
        }
    }

    fn read_once(&self, seq: u64) -> Result<Vec<u8>, StoreError> {
        self.run("reading the log", async {
            let m = self
                .stream
                .get_raw_message(seq)
                .await
                .map_err(|e| unavailable(&format!("reading log entry {seq}"), e))?;
            match m.headers.get(OBJECT_HEADER) {
                None => Ok(m.payload.to_vec()),
                Some(name) => {
                    let mut obj = self
                        .objects
                        .get(name.as_str())
                        .await
                        .map_err(|e| unavailable(&format!("reading the object of log entry {seq}"), e))?;
                    let mut out = Vec::new();
                    obj.read_to_end(&mut out)
                        .await
                        .map_err(|e| unavailable(&format!("reading the object of log entry {seq}"), e))?;
                    Ok(out)
                }
            }
        })
    }
}

/// In the error of an append refused for its position.
const WRONG_POSITION: &str = "another hub appended to the log meanwhile";

impl Log {
    fn append_once(&self, expected_last: u64, entry: &[u8]) -> Result<u64, StoreError> {
        let entry = entry.to_vec();
        self.run("appending to the log", async {
            let mut publish = jetstream::message::PublishMessage::build().expected_last_sequence(expected_last);
            if entry.len() > self.max_message {
                // Too large for one message: the object first (an object no
                // entry names is garbage, never state), then the entry.
                let n = self.counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let name = format!("{}-{}-{n}", self.holder, expected_last + 1);
                self.objects
                    .put(name.as_str(), &mut entry.as_slice())
                    .await
                    .map_err(|e| unavailable("storing a large log entry", e))?;
                publish = publish.header(OBJECT_HEADER, name.as_str());
            } else {
                publish = publish.payload(Bytes::from(entry));
            }
            let ack = self
                .js
                .send_publish(self.subject.clone(), publish)
                .await
                .map_err(|e| unavailable("appending to the log", e))?
                .await
                .map_err(|e| match e.kind() {
                    PublishErrorKind::WrongLastSequence => StoreError::unavailable(format!(
                        "{WRONG_POSITION} (write lease lost); nothing was stored, retry"
                    )),
                    _ => unavailable("appending to the log", e),
                })?;
            Ok(ack.sequence)
        })
    }
}
