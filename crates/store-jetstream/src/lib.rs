//! Truc's replicated store on NATS JetStream: several `trucd` instances
//! share one axis and survive the loss of a node.
//!
//! # Design
//! The state machine is the embedded store's, unchanged: the same
//! idempotency on (from, document_id), the same outboxes, dead letters,
//! receipts, Merkle log and signed tree heads. What changes is the commit
//! point. Every hub's writer, for each group-commit batch,
//! 1. takes the **write lease** (a key in the `<PREFIX>_LEASE` key-value
//!    bucket, compare-and-set on its revision, expiring after `lease_ttl`
//!    if its holder dies),
//! 2. applies the log entries other hubs appended since it last looked,
//! 3. builds the batch and signs its tree head (the hub holding the lease is
//!    the one signing: one signer at a time, the others take over when the
//!    lease runs out),
//! 4. appends the batch as **one message** to the `<PREFIX>_LOG` stream
//!    with `Nats-Expected-Last-Sequence`, so no two hubs can ever write
//!    entry n (a hub whose lease ran out mid-batch fails the batch,
//!    nothing stored). The stream is replicated (`replicas`, R3 by
//!    default) and the publish acknowledgement comes after the Raft quorum
//!    has it: **this is the commit point**,
//! 5. applies the batch to its local view (a sled tree in the data
//!    directory, flushed in the background) and answers.
//!
//! The stream's sequence order is the Merkle log's order. Entries too large
//! for one NATS message go to the `<PREFIX>_ENTRIES` object store first and
//! the log message names the object.
//!
//! Crash safety: nothing is ever half-written, because a batch is one
//! message. A hub killed after 4 and before 5 finds its entry in the log
//! when it restarts (every hub replays the log from the position its local
//! view records, or from the start with an empty data directory); its
//! client, which got no answer, retries and is answered from the
//! idempotency key. An object without a log entry is garbage, never state.
//!
//! Every hub serves every agency: reads (Receive, Track, Audit, proofs)
//! come from the local view, which follows the log (a subscription on the
//! log subject wakes the writer, with a periodic check as a fallback).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod log;
mod server_bin;
/// Tests' skips (tests/skip.rs): shown and recorded, or a failure.
#[cfg(test)]
#[path = "../../../tests/skip.rs"]
pub(crate) mod test_skip;

pub use server_bin::find_nats_server;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use truc_core::sync::Locked;

use async_nats::jetstream::{self, kv, object_store, stream};
use tokio_stream::StreamExt;
use truc_core::tree_head::TreeHeadSigner;
use truc_store::{Replicator, SledStore, SledStoreOptions, StoreError};

use crate::log::{unavailable, Log};

/// mTLS material for the NATS connection (PEM files).
#[derive(Debug, Clone)]
pub struct NatsTls {
    /// CA certificate(s) the servers' certificates chain to.
    pub ca: PathBuf,
    /// Client certificate.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
}

/// How to open the JetStream store.
#[derive(Debug, Clone)]
pub struct JetStreamOptions {
    /// NATS server URLs (`tls://host:4222`, …); the client fails over
    /// between them.
    pub urls: Vec<String>,
    /// mTLS for the connection; `None`: plain (tests and labs only).
    pub tls: Option<NatsTls>,
    /// Replicas of every stream and bucket (1, 3 or 5).
    pub replicas: usize,
    /// Prefix of the stream, bucket and subject names (letters, digits,
    /// `-`, `_`): several axes can share one cluster.
    pub prefix: String,
    /// This hub's name in the write lease (for operators).
    pub hub_name: String,
    /// How long a dead hub's write lease blocks the others.
    pub lease_ttl: Duration,
    /// Longest wait for one JetStream call.
    pub timeout: Duration,
    /// The hub's payload files (`data_dir/payloads`, see
    /// `truc_store::PayloadFiles`): payloads of chunked uploads are copied
    /// to the `<PREFIX>_PAYLOADS` object store before their Send commits,
    /// and fetched from it by a hub that lacks them. `None`: not replicated.
    pub payload_dir: Option<PathBuf>,
    /// The local view: its directory and the embedded store's options
    /// (quota, disk reserve, commit observer, remote observer).
    pub local: SledStoreOptions,
}

impl JetStreamOptions {
    /// Defaults: R3, prefix `truc`, lease 5 s, timeout 10 s.
    pub fn new(urls: Vec<String>, local: SledStoreOptions) -> Self {
        Self {
            urls,
            tls: None,
            replicas: 3,
            prefix: "truc".into(),
            hub_name: "hub".into(),
            lease_ttl: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
            payload_dir: None,
            local,
        }
    }
}

/// Room left in a message for its headers and framing: a log entry goes
/// as one message when it is at most the server's `max_payload` less this.
const MESSAGE_ROOM: usize = 256 * 1024;

/// Largest log entry sent as one message, for a server whose `max_payload`
/// is `max_payload` (1 MiB by default: 768 KiB); larger ones go through the
/// object store, chunk by chunk, each chunk replicated and synced on its
/// own. A group commit of a few hundred 4 KiB documents is larger than
/// 768 KiB: a cluster with a larger `max_payload` (8MB in `truc-launch`'s
/// clusters) takes it as one message.
fn message_limit(max_payload: usize) -> usize {
    max_payload.saturating_sub(MESSAGE_ROOM).max(64 * 1024)
}

/// The replicated store: the one store ([`SledStore`], every rule and
/// the single writer) committing through the shared log (`Log`, its
/// [`Replicator`]), and the task that wakes its writer when another hub
/// appends. Serve [`JetStreamStore::store`]; there is no second `Store`.
pub struct JetStreamStore {
    store: Arc<SledStore>,
    stop: tokio::sync::watch::Sender<bool>,
    follower: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for JetStreamStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JetStreamStore").finish_non_exhaustive()
    }
}

fn valid_prefix(p: &str) -> bool {
    !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl JetStreamStore {
    /// Connect, create the stream and buckets if missing, catch up with the
    /// log, and start following it.
    pub async fn open(opts: JetStreamOptions, signer: TreeHeadSigner) -> Result<Arc<JetStreamStore>, StoreError> {
        if !valid_prefix(&opts.prefix) {
            return Err(StoreError::InvalidArgument(format!(
                "store prefix {:?}: letters, digits, '-' and '_' only",
                opts.prefix
            )));
        }
        if opts.urls.is_empty() {
            return Err(StoreError::InvalidArgument("no NATS URL to connect to".into()));
        }
        let (client, log, subject) = connect(&opts).await?;
        // Subscribe before catching up, so nothing appended in between is
        // missed.
        let wake = client
            .subscribe(subject)
            .await
            .map_err(|e| unavailable("subscribing to the log", e))?;
        let mut local = opts.local.clone();
        local.replicator = Some(log.clone());
        let store = tokio::task::spawn_blocking(move || SledStore::open(&local, signer))
            .await
            .map_err(|_| StoreError::Closed)??;
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let follower = tokio::spawn(follow(Arc::downgrade(&store), wake, stop_rx));
        Ok(Arc::new(JetStreamStore {
            store,
            stop,
            follower: Mutex::new(Some(follower)),
        }))
    }

    /// The store to serve (reads wait for the shared log's end; payload
    /// files travel through the object store).
    pub fn store(&self) -> Arc<SledStore> {
        self.store.clone()
    }

    /// Stop following the log and close the local view. Blocking.
    pub fn close(self: Arc<Self>) {
        let _ = self.stop.send(true);
        if let Some(h) = self.follower.locked().take() {
            h.abort();
        }
        match Arc::try_unwrap(self) {
            Ok(s) => s.store.close(),
            Err(_) => tracing::warn!("the store is still in use; closing it when the last user goes"),
        }
    }
}

/// Connect, create the stream and buckets if missing: the shared log.
async fn connect(opts: &JetStreamOptions) -> Result<(async_nats::Client, Arc<Log>, String), StoreError> {
    let mut connect = async_nats::ConnectOptions::new()
        .name(format!("trucd {}", opts.hub_name))
        .connection_timeout(opts.timeout)
        .request_timeout(Some(opts.timeout));
    if let Some(tls) = &opts.tls {
        connect = connect
            .require_tls(true)
            .add_root_certificates(tls.ca.clone())
            .add_client_certificate(tls.cert.clone(), tls.key.clone());
    }
    let client = connect
        .connect(opts.urls.as_slice())
        .await
        .map_err(|e| unavailable(&format!("connecting to {}", opts.urls.join(",")), e))?;
    let js = jetstream::new(client.clone());
    let upper = opts.prefix.to_ascii_uppercase();
    let subject = format!("{}.log", opts.prefix);
    // A cluster that is just starting has no JetStream leader yet: retry
    // for a while before giving up.
    let deadline = std::time::Instant::now() + opts.timeout * 3;
    let mut backoff = Duration::from_millis(50);
    let (stream, lease, objects) = loop {
        match setup(&js, opts, &upper, &subject).await {
            Ok(v) => break v,
            Err(e) if std::time::Instant::now() < deadline => {
                tracing::info!(error = %e, "JetStream not ready yet; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
            Err(e) => return Err(e),
        }
    };
    let payloads = match &opts.payload_dir {
        None => None,
        Some(dir) => Some((dir.clone(), payload_bucket(&js, opts).await?)),
    };
    let holder = format!(
        "{}-{:x}",
        opts.hub_name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect::<String>(),
        truc_core::now_unix_ms()
    );
    let log = Arc::new(Log {
        rt: tokio::runtime::Handle::current(),
        js,
        stream,
        subject: subject.clone(),
        lease,
        objects,
        holder,
        held: Mutex::new(None),
        free_rev: Mutex::new(None),
        lease_ttl: opts.lease_ttl,
        timeout: opts.timeout,
        max_message: message_limit(client.server_info().max_payload),
        counter: Default::default(),
        end_at_release: Mutex::new(None),
        known_end: Mutex::new(None),
        payloads,
    });
    Ok((client, log, subject))
}

/// The log stream, the lease bucket and the object store, created if
/// missing.
async fn setup(
    js: &jetstream::Context,
    opts: &JetStreamOptions,
    upper: &str,
    subject: &str,
) -> Result<(stream::Stream, kv::Store, object_store::ObjectStore), StoreError> {
    let stream = js
        .get_or_create_stream(stream::Config {
            name: format!("{upper}_LOG"),
            description: Some("Truc: committed batches, in Merkle log order".into()),
            subjects: vec![subject.to_string()],
            storage: stream::StorageType::File,
            num_replicas: opts.replicas,
            allow_direct: true,
            ..Default::default()
        })
        .await
        .map_err(|e| unavailable("creating the log stream", e))?;
    let lease = js
        .create_key_value(kv::Config {
            bucket: format!("{upper}_LEASE"),
            description: "Truc: the write lease (the hub holding it signs tree heads)".into(),
            history: 1,
            max_age: opts.lease_ttl,
            storage: stream::StorageType::File,
            num_replicas: opts.replicas,
            ..Default::default()
        })
        .await
        .map_err(|e| unavailable("creating the lease bucket", e))?;
    let objects = js
        .create_object_store(object_store::Config {
            bucket: format!("{upper}_ENTRIES"),
            description: Some("Truc: log entries too large for one message".into()),
            storage: stream::StorageType::File,
            num_replicas: opts.replicas,
            ..Default::default()
        })
        .await
        .map_err(|e| unavailable("creating the object store", e))?;
    Ok((stream, lease, objects))
}

/// The object store of replicated payload files.
async fn payload_bucket(
    js: &jetstream::Context,
    opts: &JetStreamOptions,
) -> Result<object_store::ObjectStore, StoreError> {
    js.create_object_store(object_store::Config {
        bucket: format!("{}_PAYLOADS", opts.prefix.to_ascii_uppercase()),
        description: Some("Truc: payloads of chunked uploads, by SHA-256".into()),
        storage: stream::StorageType::File,
        num_replicas: opts.replicas,
        ..Default::default()
    })
    .await
    .map_err(|e| unavailable("creating the payload object store", e))
}

/// Seed an empty shared log with `entry` (from
/// [`truc_store::snapshot_entry`]: a sled store's whole state) as its first
/// entry, atomically: hubs then start from that state. Refuses a log that
/// is not empty.
pub async fn import_entry(opts: &JetStreamOptions, entry: Vec<u8>) -> Result<u64, StoreError> {
    let (_, log, _) = connect(opts).await?;
    tokio::task::spawn_blocking(move || {
        let last = log.begin()?;
        let r = if last != 0 {
            Err(StoreError::Precondition(format!(
                "the log already holds {last} entries: import only into an empty log (another store.prefix, or \
                 delete the stream)"
            )))
        } else {
            log.append(0, entry)
        };
        log.end();
        r
    })
    .await
    .map_err(|_| StoreError::Closed)?
}

/// The cluster's shared copies of payload files, connected once (for
/// operators' tools and tests: a collected payload is gone from it too).
pub struct SharedPayloads {
    objects: Option<async_nats::jetstream::object_store::ObjectStore>,
    _client: async_nats::Client,
}

impl SharedPayloads {
    /// Connect as the hub configured by `opts` would.
    pub async fn connect(opts: &JetStreamOptions) -> Result<SharedPayloads, StoreError> {
        let (client, log, _) = connect(opts).await?;
        Ok(SharedPayloads {
            objects: log.payloads.as_ref().map(|(_, o)| o.clone()),
            _client: client,
        })
    }

    /// Whether the shared object store holds the payload `sha256` (a
    /// deleted one keeps a record marked deleted: not held).
    pub async fn holds(&self, sha256: &[u8]) -> bool {
        let Some(objects) = &self.objects else {
            return false;
        };
        objects
            .info(truc_core::hex(sha256).as_str())
            .await
            .is_ok_and(|i| !i.deleted)
    }
}

/// Whether the shared object store holds the payload `sha256`
/// (`SharedPayloads::holds`, connecting for this one question).
pub async fn shared_payload_exists(opts: &JetStreamOptions, sha256: &[u8]) -> Result<bool, StoreError> {
    Ok(SharedPayloads::connect(opts).await?.holds(sha256).await)
}

/// Wake the writer whenever another hub appends (and every second, in case
/// a notification was lost while reconnecting).
async fn follow(
    store: Weak<SledStore>,
    mut wake: async_nats::Subscriber,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            m = wake.next() => if m.is_none() { return },
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        match store.upgrade() {
            Some(s) => s.sync_replica(),
            None => return,
        }
    }
}

#[cfg(test)]
mod tests {
    //! The log's guarantees against a real nats-server (plain TCP, one
    //! node): appends are fenced by position, large entries go through the
    //! object store, and the write lease excludes a second holder.

    use std::process::{Child, Command, Stdio};

    use crate::test_skip as skip;

    use super::*;

    struct Server(Child, tempfile::TempDir, u16);

    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn start() -> Option<Server> {
        let found = crate::find_nats_server();
        if !skip::require(found.is_some(), "TRUC_SKIP_NATS_TESTS", skip::NO_NATS) {
            return None;
        }
        let bin = found.expect("nats-server");
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = dir.path().join("log");
        let child = Command::new(bin)
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(dir.path().join("js"))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(dir.path().join("err")).unwrap())
            .spawn()
            .unwrap();
        let server = Server(child, dir, port);
        let started = std::time::Instant::now();
        loop {
            let text = std::fs::read_to_string(server.1.path().join("err")).unwrap_or_default()
                + &std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("Server is ready") {
                return Some(server);
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "nats-server not ready: {text}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn options(server: &Server, name: &str) -> JetStreamOptions {
        let mut o = JetStreamOptions::new(
            vec![format!("nats://127.0.0.1:{}", server.2)],
            SledStoreOptions::new(server.1.path().join(name)),
        );
        o.replicas = 1;
        o.hub_name = name.into();
        o.lease_ttl = Duration::from_millis(1500);
        o
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn appends_are_fenced_by_position_and_large_entries_round_trip() {
        let Some(server) = start() else { return };
        let (_, log, _) = connect(&options(&server, "a")).await.unwrap();
        let r = tokio::task::spawn_blocking(move || {
            assert_eq!(log.begin().unwrap(), 0);
            assert_eq!(log.append(0, b"first".to_vec()).unwrap(), 1);
            // A writer that has not seen entry 1 (expecting 0, i.e. an
            // empty log) is refused, and so is one expecting too much.
            assert!(matches!(
                log.append(0, b"stale".to_vec()),
                Err(StoreError::Unavailable { .. })
            ));
            assert!(matches!(
                log.append(5, b"ahead".to_vec()),
                Err(StoreError::Unavailable { .. })
            ));
            // Twice what one message takes (the server's default max_payload):
            // through the object store.
            let big: Vec<u8> = (0..2 * log.max_message).map(|i| (i % 251) as u8).collect();
            assert_eq!(log.append(1, big.clone()).unwrap(), 2);
            log.end();
            assert_eq!(log.last().unwrap(), 2);
            assert_eq!(log.read(1).unwrap(), b"first");
            assert_eq!(log.read(2).unwrap(), big);
        });
        r.await.unwrap();
    }

    #[test]
    fn a_log_entry_fits_one_message_below_the_servers_max_payload() {
        assert_eq!(message_limit(1 << 20), 768 * 1024, "NATS's default 1 MiB");
        assert_eq!(message_limit(8 << 20), (8 << 20) - MESSAGE_ROOM);
        assert_eq!(message_limit(0), 64 * 1024, "never below 64 KiB");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_write_lease_has_one_holder_and_runs_out_when_not_given_back() {
        let Some(server) = start() else { return };
        let (_, a, _) = connect(&options(&server, "a")).await.unwrap();
        let (_, b, _) = connect(&options(&server, "b")).await.unwrap();
        let r = tokio::task::spawn_blocking(move || {
            a.begin().unwrap();
            // B waits while A holds it; A gives it back; B gets it.
            let a2 = a.clone();
            let giver = std::thread::spawn(move || {
                // Long enough for B to be waiting; correctness does not
                // depend on it (B may only get the lease after `end`).
                std::thread::sleep(Duration::from_millis(300));
                let giving = std::time::Instant::now();
                a2.end();
                giving
            });
            b.begin().unwrap();
            let got = std::time::Instant::now();
            let given = giver.join().unwrap();
            assert!(got >= given, "B took the lease before A gave it back");
            assert!(given.elapsed() < Duration::from_secs(1), "B did not get it soon after");
            // B dies holding it (never ends): A gets it once it runs out.
            let t = std::time::Instant::now();
            a.begin().unwrap();
            assert!(t.elapsed() >= Duration::from_millis(500), "{:?}", t.elapsed());
            a.end();
        });
        r.await.unwrap();
    }
}
