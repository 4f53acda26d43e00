//! The Truc hub: a gRPC server with mutual TLS that accepts signed
//! documents, keeps a durable outbox per agency, and delivers with leases
//! and acknowledgements.
//!
//! `trucd` is a thin binary over [`serve`]; tests and `truc demo` start the
//! same hub in-process with [`start`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivatePkcs8KeyDer;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_stream::wrappers::ReceiverStream;
use tonic_health::ServingStatus;
use tracing::{info, warn};
use truc_core::document::SigningTrust;
use truc_core::tree_head::TreeHeadSigner;
use truc_store::{SledStore, SledStoreOptions, Store};

mod admin;
mod auth;
mod background;
mod budget;
pub mod config;
pub mod console;
mod delivery;
mod directory;
mod disk;
mod door;
mod federation;
mod forward;
mod health;
pub mod metrics;
mod peer_tls;
mod peers;
mod percent;
mod queues;
mod router;
mod scrub;
mod service;
pub mod stats;
mod status;
mod tls;
mod trust;
mod witness;

pub use config::{Config, ConfigError, CrlSetting};
use config::{ConsoleMode, StoreBackend};
pub use federation::checkpoint_origin;
pub use tls::PeerInfo;

/// Why the hub could not start or stopped with an error.
#[derive(Debug, Error)]
pub enum HubError {
    /// The identity directory, a CA file or a CRL is missing or unusable.
    #[error("identity: {0}")]
    Identity(String),
    /// The configuration cannot be used as it is (trucd exits 64).
    #[error("configuration: {0}")]
    Config(String),
    /// The store could not be opened.
    #[error("store: {0}")]
    Store(#[from] truc_store::StoreError),
    /// A listener could not be bound or read.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The gRPC server failed.
    #[error("the gRPC server failed")]
    Transport(#[from] tonic::transport::Error),
    /// A task of the hub panicked or was cancelled.
    #[error("a task of the hub ended abnormally")]
    Task(#[from] tokio::task::JoinError),
    /// Setting the server up failed (said in words).
    #[error("server: {0}")]
    Server(String),
}

impl HubError {
    /// `what` failed with the operating system's `source`.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> HubError {
        HubError::Io {
            what: what.into(),
            source,
        }
    }

    /// The store's files are damaged (`trucd repair` says what to do).
    pub fn is_damage(&self) -> bool {
        matches!(self, HubError::Store(truc_store::StoreError::Damaged(_)))
    }
}

/// What every service shares.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) engine: Arc<delivery::Engine>,
    pub(crate) trust: Arc<trust::Trust>,
    pub(crate) metrics: Arc<metrics::Metrics>,
    pub(crate) payloads: truc_store::PayloadFiles,
    /// The working-day calendar (`[calendar]`, its holidays file read at
    /// start).
    pub(crate) calendar: Arc<truc_core::Calendar>,
    /// One permit per core: signature checks run on at most this many
    /// blocking threads at once, however many Sends wait.
    pub(crate) cpu_slots: Arc<tokio::sync::Semaphore>,
    /// The public port's caps and the connections it holds.
    pub(crate) door: Arc<door::Door>,
    /// This hub's id, peers and routes, and its checkpoints.
    pub(crate) federation: Arc<federation::Federation>,
    /// The forwarding tasks' links to the peers.
    pub(crate) forwarders: Arc<forward::Forwarders>,
    /// This hub as its peers' witness, and their witnesses' cosignatures
    /// of its checkpoints.
    pub(crate) witness: Arc<witness::Witnessing>,
    /// The peers an operator paused (`data_dir/paused-peers.json`).
    pub(crate) pauses: peers::Pauses,
}

/// The hub's own certificate (read from its file now, so a renewal shows)
/// as DER, with the principal it names (`urn:truc:hub:<name>`).
pub(crate) fn hub_certificate(shared: &Shared) -> Option<(Vec<u8>, Option<truc_core::Principal>)> {
    let files = shared.trust.files();
    let der = truc_pki::read_cert_ders(&files.hub_cert).ok()?.into_iter().next()?;
    let principal = truc_core::Principal::from_cert_der(&der).ok();
    Some((der, principal))
}

/// The principal the hub's certificate names.
pub(crate) fn hub_principal(shared: &Shared) -> Option<truc_core::Principal> {
    hub_certificate(shared)?.1
}

/// The blocking threads the hub's runtime should have at most (`trucd`
/// builds its runtime with it; tokio's default is 512): four per core, and
/// at least 16. Store reads (two per core), large signature checks (one per
/// core) and payload file I/O use them, one chunk at a time: no download or
/// upload holds one while its client reads or sends, so a few serve any
/// number of clients. A store read (two per core at once) or a copy of a
/// payload file to or from the JetStream store (one per core) may wait for
/// one more blocking task (`tokio::fs`), so there must be more threads than
/// those three per core. With 100 agencies, 64 threads held
/// 288 MiB, 16 about 245 (BENCHMARKS.md, issue 18).
pub fn max_blocking_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    (4 * cores).max(16)
}

/// Input up to which a check runs on the async worker that asked for it: a
/// signature and a digest of 64 KiB take about 0.1 ms, less than handing the
/// work to a blocking thread and back costs (two thread wake-ups per Send;
/// switches and wake-ups were 12.5 % of the hub's CPU at 4 KiB, half of them
/// these: BENCHMARKS.md, issue 18).
const INLINE_CPU_BYTES: u64 = 64 * 1024;

impl Shared {
    pub(crate) fn signing_trust(&self) -> Arc<SigningTrust> {
        self.trust.signing()
    }

    /// How far ahead of this hub's clock a document's signing time may be.
    pub(crate) fn max_signed_at_ahead_ms(&self) -> u64 {
        self.config.limits.max_signed_at_ahead_seconds.saturating_mul(1000)
    }

    /// Run CPU-bound work (signature checks) over `bytes` of input: small
    /// work on the worker that asked, larger work off the reactor on at most
    /// one thread per core.
    pub(crate) async fn on_cpu<T: Send + 'static>(
        &self,
        bytes: u64,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        if bytes <= INLINE_CPU_BYTES {
            return Some(f());
        }
        let _slot = self.cpu_slots.acquire().await.ok()?;
        tokio::task::spawn_blocking(f).await.ok()
    }

    /// Re-read CRLs, trust anchors and the hub certificate; end the Receive
    /// streams of principals whose certificate is now refused.
    pub(crate) fn reload(&self) -> Result<(trust::Loaded, u64), HubError> {
        let loaded = self.trust.reload()?;
        self.metrics.trust_loaded(&loaded);
        let ended = self.engine.end_refused_streams(&self.trust);
        if loaded.revocation {
            tracing::info!(
                revoked = loaded.revoked_certificates,
                streams_ended = ended,
                "trust material reloaded"
            );
        } else {
            tracing::warn!(
                streams_ended = ended,
                "trust material reloaded; no CRL configured (tls.crl = \"none\"): revocations are not checked"
            );
        }
        Ok((loaded, ended))
    }
}

/// Run the hub on `listener` until `shutdown` completes, then drain: stop
/// accepting, end streams, give requests `shutdown_grace_seconds` to finish,
/// flush the store. With `admin.listen` set, also serve `/metrics`,
/// `/healthz` and `/readyz` there.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), HubError> {
    let admin_listener = admin::bind(config.admin.listen).await?;
    let console_listener = console::bind(&config.console).await?;
    serve_with_admin(config, listener, admin_listener, console_listener, shutdown, None).await
}

async fn serve_with_admin(
    config: Config,
    listener: TcpListener,
    admin_listener: Option<TcpListener>,
    console_listener: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send,
    ready: Option<tokio::sync::oneshot::Sender<()>>,
) -> Result<(), HubError> {
    // The admin listener answers from the start (/healthz 200, /readyz 503
    // until serving) to the end (after the store is closed).
    let metrics = Arc::new(metrics::Metrics::new());
    let admin = admin::Admin::new(metrics.clone());
    let (admin_stop, admin_stop_rx) = watch::channel(false);
    let admin_task = admin_listener.map(|l| admin::spawn(l, admin.clone(), admin_stop_rx));
    let identity = &config.identity;
    let receipt_key = read_receipt_key(identity)?;
    let signer = tree_head_signer(identity, &receipt_key)?;
    let trust = load_trust_logged(&config, &metrics)?;
    let federation = Arc::new(federation::Federation::load(&config, receipt_key.secret_pkcs8_der())?);
    drop(receipt_key);
    log_federation(&federation);
    let witnessing = Arc::new(witness::Witnessing::load(&config, federation.own.as_ref())?);
    log_witnessing(&config, &witnessing);
    let tls_config = tls::server_config(&trust, config.tls.min_version)?;
    let calendar = Arc::new(config.calendar().map_err(|e| HubError::Config(e.to_string()))?);
    info!(calendar = %calendar, "working-day calendar");
    if let Some(w) = calendar_warning(&config, &calendar) {
        warn!("{w}");
    }
    // The one path from commit to delivery: every committed batch (this
    // hub's, and other hubs' on a shared log) tells the engine what it
    // changed in the outboxes.
    let outbox_events = Arc::new(truc_store::OutboxEvents::default());
    let store_opts = store_options(&config, &metrics, &calendar, &outbox_events);
    let store = open_store(&config, store_opts, signer).await?;
    let payloads = truc_store::PayloadFiles::open(&config.data_dir)?;
    warn_if_reserve_cannot_fit(&config);

    let (stop_tx, stop_rx) = watch::channel(false);
    let lease = Duration::from_millis(config.delivery.lease_ms);
    let engine = delivery::Engine::new(
        store.dyn_store(),
        lease,
        config.delivery.max_attempts,
        config.limits.max_inline_delivery,
        stop_rx.clone(),
        metrics.clone(),
    );
    let limits = &config.limits;
    let door = Arc::new(door::Door::new(limits, connection_cap(limits.max_connections)));
    metrics.set_door(door.clone());
    let forwarders = Arc::new(forward::Forwarders::new(&config.peers));
    let pauses = peers::Pauses::load(&config.data_dir, &config.peers, &forwarders)?;
    let shared = Arc::new(Shared {
        federation,
        forwarders: forwarders.clone(),
        witness: witnessing,
        pauses,
        door: door.clone(),
        config: config.clone(),
        store: store.dyn_store(),
        engine,
        trust: trust.clone(),
        metrics: metrics.clone(),
        payloads: payloads.clone(),
        calendar,
        cpu_slots: Arc::new(tokio::sync::Semaphore::new(
            std::thread::available_parallelism().map_or(2, |n| n.get()),
        )),
    });
    let mut background = background::Tasks::default();
    background.spawn("reaper", shared.engine.clone().reap());
    background.spawn(
        "commits",
        shared.engine.clone().follow_commits(outbox_events, forwarders),
    );
    forward::spawn_all(&shared, &mut background, &stop_rx);
    directory::spawn_all(&shared, &mut background, &stop_rx);
    background.spawn(
        "upload-sweeper",
        background::sweep_uploads(
            payloads,
            Duration::from_secs(config.limits.upload_expiry_hours * 3600),
            stop_rx.clone(),
        ),
    );
    background.spawn(
        "payload-collector",
        background::collect_payloads(
            shared.store.clone(),
            Duration::from_secs(config.limits.payload_retention_seconds),
            Duration::from_millis(config.limits.payload_gc_interval_ms),
            stop_rx.clone(),
        ),
    );
    background.spawn("scrub", scrub::run_background(shared.clone(), stop_rx.clone()));
    for i in 0..shared.witness.peers.len() {
        background.spawn(
            "witness-submit",
            witness::submit_task(shared.clone(), i, stop_rx.clone()),
        );
    }
    admin.attach(&shared);
    let console_task = match console_listener {
        Some(l) => {
            let tls = match config.console.mode {
                ConsoleMode::Mtls => Some(tls::server_config(&trust, config.tls.min_version)?),
                ConsoleMode::Proxy => None,
            };
            Some(console::spawn(l, shared.clone(), tls, stop_rx.clone())?)
        }
        None => None,
    };
    background.spawn(
        "trust-watch",
        background::watch_trust_files(
            shared.clone(),
            Duration::from_millis(config.tls.reload_poll_ms),
            stop_rx.clone(),
        ),
    );

    let addr = listener
        .local_addr()
        .map_err(|e| HubError::io("reading the listener's address", e))?;
    // gRPC health checking (open to any TLS client, for load balancers:
    // tls.rs serves it to clients without a certificate too).
    let health = tonic_health::server::HealthReporter::new();
    health::set(&health, ServingStatus::Serving).await;
    let gate = Arc::new(tls::Gate {
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(tls_config)),
        trust: trust.clone(),
        door,
        handshake_timeout: Duration::from_millis(limits.handshake_timeout_ms),
        idle_timeout: Duration::from_millis(limits.idle_connection_timeout_ms),
        health: health::service(&health, stop_rx.clone()),
        metrics: metrics.clone(),
    });
    let incoming = ReceiverStream::new(tls::incoming(listener, gate.clone(), stop_rx.clone()));

    let router = router::build(&shared, &trust, &metrics, gate.health.clone())?;

    info!(%addr, data_dir = %config.data_dir.display(), "hub listening");
    admin.set_ready();
    if let Some(ready) = ready {
        let _ = ready.send(());
    }
    let mut stop_for_server = stop_rx.clone();
    let server = router.serve_with_incoming_shutdown(incoming, async move {
        let _ = stop_for_server.changed().await;
    });
    tokio::pin!(server);
    let result = tokio::select! {
        r = &mut server => r,
        _ = shutdown => {
            info!("shutting down");
            admin.set_stopping();
            health::set(&health, ServingStatus::NotServing).await;
            let _ = stop_tx.send(true);
            let grace = Duration::from_secs(config.shutdown_grace_seconds);
            match tokio::time::timeout(grace, &mut server).await {
                Ok(r) => r,
                Err(_) => {
                    warn!(?grace, "requests still running after the grace period; dropping them");
                    Ok(())
                }
            }
        }
    };
    admin.set_stopping();
    let _ = stop_tx.send(true);
    background.join().await;
    if let Some(t) = console_task {
        let _ = t.await;
    }
    drop(shared);
    // Every request is finished or dropped: flush and close the store.
    let data_dir = config.data_dir.clone();
    let _ = tokio::task::spawn_blocking(move || store.close_and_checkpoint(&data_dir)).await;
    let _ = admin_stop.send(true);
    if let Some(t) = admin_task {
        let _ = t.await;
    }
    info!("stopped");
    Ok(result?)
}

/// The CAs given, or the identity's `ca.pem` when none is.
fn cas_or_identity_ca(config: &Config, given: &[std::path::PathBuf]) -> Vec<std::path::PathBuf> {
    if given.is_empty() {
        vec![config.identity.join("ca.pem")]
    } else {
        given.to_vec()
    }
}

/// The trust material the hub serves with (client CAs, signing anchors,
/// CRLs, its own certificate), after checking the NATS key's permissions:
/// the same for serving and for `trucd check-config`.
fn load_trust(config: &Config) -> Result<(Arc<trust::Trust>, trust::Loaded), HubError> {
    let identity = &config.identity;
    if config.store.backend == StoreBackend::Jetstream && !config.store.nats_plaintext {
        let key = config
            .store
            .nats_key
            .clone()
            .unwrap_or_else(|| identity.join("key.pem"));
        check_key(&key)?;
    }
    let crls = crl_files(config)?;
    trust::Trust::load(trust::TrustFiles {
        client_cas: cas_or_identity_ca(config, &config.tls.client_ca),
        anchors: cas_or_identity_ca(config, &config.signing.trust_anchors),
        revocation: crls.is_some(),
        crls: crls.unwrap_or_default(),
        hub_cert: identity.join("cert.pem"),
        hub_key: identity.join("key.pem"),
        peers: config
            .peers
            .iter()
            .map(|p| {
                Ok(trust::PeerFiles {
                    id: p.hub_id().map_err(|e| HubError::Config(e.to_string()))?,
                    ca: p.ca.clone(),
                    crl: p.crl.clone(),
                })
            })
            .collect::<Result<_, HubError>>()?,
        origins: config
            .origins
            .iter()
            .map(|o| {
                Ok(trust::PeerFiles {
                    id: truc_core::routing::HubId::parse(&o.id).map_err(|e| HubError::Config(e.to_string()))?,
                    ca: o.ca.clone(),
                    crl: o.crl.clone(),
                })
            })
            .collect::<Result<_, HubError>>()?,
    })
}

/// Say at start who this hub is among hubs.
fn log_federation(f: &federation::Federation) {
    match (&f.own, f.checkpoint_vkey()) {
        (Some(id), Some(vkey)) => info!(
            hub = %id,
            peers = f.peers.len(),
            default_peer = %f.table.default_peer().map(|p| p.to_string()).unwrap_or_default(),
            checkpoint_key = %vkey,
            "hub identity"
        ),
        _ => warn!("the hub certificate names no urn:truc:hub:<id>: no checkpoints, no peers"),
    }
}

/// Say at start what this hub witnesses and who witnesses it.
fn log_witnessing(config: &Config, w: &witness::Witnessing) {
    for line in w.describe() {
        info!("{line}");
    }
    if w.is_witness() && config.admin.listen.is_none() {
        warn!(
            "this hub witnesses peers (peers[].checkpoint_key) but has no admin listener: set admin.listen to an \
             address its peers reach, where POST /add-checkpoint is served"
        );
    }
}

/// A data disk smaller (in all) than the free-space reserve refuses every
/// send: say so at start, not at the first send.
fn warn_if_reserve_cannot_fit(config: &Config) {
    let reserve = config.limits.min_free_disk_bytes;
    match (
        fs2::total_space(&config.data_dir),
        fs2::available_space(&config.data_dir),
    ) {
        (Ok(total), _) if reserve > 0 && total <= reserve => warn!(
            disk_bytes = total,
            reserve_bytes = reserve,
            data_dir = %config.data_dir.display(),
            "the data disk is smaller than limits.min_free_disk_bytes: every send will be refused as \
             'disk nearly full'; give the hub a larger disk or lower limits.min_free_disk_bytes"
        ),
        (_, Ok(free)) if reserve > 0 && free <= reserve => warn!(
            free_bytes = free,
            reserve_bytes = reserve,
            data_dir = %config.data_dir.display(),
            "the data disk's free space is already below limits.min_free_disk_bytes: sends will be refused \
             until space is freed"
        ),
        _ => {}
    }
}

/// The CRL files in force: `tls.crl`, else the CA directory's `crl.pem`;
/// `None` when `tls.crl = "none"`. With neither, the hub refuses to start
/// rather than accept revoked certificates without a word.
fn crl_files(config: &Config) -> Result<Option<Vec<std::path::PathBuf>>, HubError> {
    match &config.tls.crl {
        CrlSetting::Files(files) => Ok(Some(files.clone())),
        CrlSetting::None => Ok(None),
        CrlSetting::Default => {
            let path = CrlSetting::default_path(&config.identity);
            if path.exists() {
                return Ok(Some(vec![path]));
            }
            Err(HubError::Config(format!(
                "no CRL: tls.crl is not set and {} does not exist, so revoked certificates would be accepted. \
                 Point --crl (tls.crl, TRUC_TLS_CRL) at the axis CA's crl.pem (`truc pki init` writes PKI/crl.pem), \
                 or, to run without revocation checks on purpose, set tls.crl = \"none\" (--crl none, TRUC_TLS_CRL=none)",
                path.display()
            )))
        }
    }
}

/// `limits.max_connections`, held under half the process's open-file
/// limit: the other half is for the store, payload files and the admin
/// listener, which strangers' connections must not take.
fn connection_cap(configured: u32) -> u32 {
    let nofile = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    match nofile {
        Some(n) if u64::from(configured) > n / 2 => {
            let cap = (n / 2).max(1) as u32;
            warn!(
                configured,
                cap,
                open_file_limit = n,
                "limits.max_connections is above half the open-file limit; capping it (raise LimitNOFILE / ulimit -n)"
            );
            cap
        }
        _ => configured,
    }
}

/// Refuse a private key file that group or others may read (with the
/// `chmod` to run).
pub(crate) fn check_key(path: &Path) -> Result<(), HubError> {
    truc_pki::check_private_key_file(path).map_err(|e| HubError::Identity(e.to_string()))
}

/// The receipt-signing key of the identity directory, PKCS#8 DER.
fn read_receipt_key(identity: &std::path::Path) -> Result<PrivatePkcs8KeyDer<'static>, HubError> {
    let path = identity.join("receipts.key");
    check_key(&path)?;
    let pem = std::fs::read(&path).map_err(|e| HubError::Identity(format!("{}: {e}", path.display())))?;
    PrivatePkcs8KeyDer::from_pem_slice(&pem).map_err(|e| HubError::Identity(format!("{}: {e}", path.display())))
}

/// The tree-head signer for the receipt key `key` of `identity`.
fn tree_head_signer(identity: &std::path::Path, key: &PrivatePkcs8KeyDer<'_>) -> Result<TreeHeadSigner, HubError> {
    TreeHeadSigner::from_pkcs8(key.secret_pkcs8_der())
        .map_err(|e| HubError::Identity(format!("{}: {e}", identity.join("receipts.key").display())))
}

/// The receipt-signing key of the identity directory.
fn load_signer(identity: &std::path::Path) -> Result<TreeHeadSigner, HubError> {
    tree_head_signer(identity, &read_receipt_key(identity)?)
}

/// What a migration moved.
#[derive(Debug, Clone)]
pub struct Migrated {
    /// Keys (records, receipts, Merkle nodes, tree heads, counters) moved.
    pub keys: u64,
    /// The receipt log's size afterwards (unchanged by the move).
    pub tree_size: u64,
    /// Its latest signed tree head's root, hex (unchanged by the move).
    pub root_hex: String,
}

async fn latest(store: &dyn Store) -> Result<(u64, String), HubError> {
    use prost::Message;
    let Some(signed) = store.tree_head(0).await? else {
        return Ok((0, String::new()));
    };
    let h = truc_proto::v1::TreeHead::decode(signed.tree_head.as_slice())
        .map_err(|_| HubError::Store(truc_store::StoreError::corrupt("tree head")))?;
    let hex = truc_core::hex(&h.root_hash);
    Ok((h.tree_size, hex))
}

/// Offline migration from sled to JetStream: the sled store in
/// `config.data_dir` (no hub running on it) becomes the first entry of the
/// empty shared log that `config.store` names. Receipts, tree heads and
/// proofs are unchanged (the same keys, byte for byte). Hubs on JetStream
/// then rebuild their local view from the log.
pub async fn migrate_to_jetstream(config: &Config) -> Result<Migrated, HubError> {
    let signer = load_signer(&config.identity)?;
    let sled_opts = SledStoreOptions::new(&config.data_dir);
    let (tree_size, root_hex) = {
        let opts = sled_opts.clone();
        let s = tokio::task::spawn_blocking(move || SledStore::open(&opts, signer)).await??;
        let r = latest(&s.clone()).await;
        let _ = tokio::task::spawn_blocking(move || s.close()).await;
        r?
    };
    let dir = config.data_dir.clone();
    let (entry, keys) = tokio::task::spawn_blocking(move || truc_store::snapshot_entry(&dir)).await??;
    let js = jetstream_options(config, SledStoreOptions::new(config.data_dir.join("unused")));
    truc_store_jetstream::import_entry(&js, entry).await?;
    Ok(Migrated {
        keys,
        tree_size,
        root_hex,
    })
}

/// Offline migration from JetStream to sled: `config.data_dir` becomes this
/// hub's local view of the shared log, caught up to its end and flushed; a
/// hub with `store.backend = "sled"` then serves it as it is. Stop every
/// hub first, so that nothing is appended after.
pub async fn migrate_to_sled(config: &Config) -> Result<Migrated, HubError> {
    let signer = load_signer(&config.identity)?;
    let mut local = SledStoreOptions::new(&config.data_dir);
    local.engine = store_engine(config);
    let js = jetstream_options(config, local);
    let store = truc_store_jetstream::JetStreamStore::open(js, signer).await?;
    let r = latest(&store.store()).await;
    let _ = tokio::task::spawn_blocking(move || store.close()).await;
    let (tree_size, root_hex) = r?;
    let dir = config.data_dir.clone();
    tokio::task::spawn_blocking(move || SledStore::forget_log_position(&dir)).await??;
    Ok(Migrated {
        keys: 0,
        tree_size,
        root_hex,
    })
}

/// What `trucd repair` found and did.
#[derive(Debug)]
pub struct Repaired {
    /// What was dropped (empty: the store was sound, nothing changed).
    pub dropped: Vec<String>,
    /// The receipt log's size and root after the repair.
    pub tree_size: u64,
    /// Hex of the root.
    pub root_hex: String,
}

/// `trucd repair`: open the embedded store in `data_dir` the way the hub
/// does, which checks the log and the last signed tree head. A sound store
/// is left as it is. A damaged one is refused, naming the damage, unless
/// `accept_loss`: then the damaged part of the log is moved aside
/// (`bodies/lost-<time>/`), the signed-head file is rewritten from what
/// remains, and an operator receipt records what was dropped, so that
/// auditors see the repair in the log itself. Stop the hub first.
pub async fn repair(config: &Config, accept_loss: bool) -> Result<Repaired, HubError> {
    if config.store.backend == StoreBackend::Jetstream {
        return Err(HubError::Server(
            "a JetStream hub's data_dir is a local view of the shared log: stop the hub, move data_dir aside and \
             start it again to rebuild the view from the log (docs/storage.md)"
                .into(),
        ));
    }
    let signer = load_signer(&config.identity)?;
    let mut opts = SledStoreOptions::new(&config.data_dir);
    opts.accept_loss = accept_loss;
    opts.calendar = Arc::new(config.calendar().map_err(|e| HubError::Config(e.to_string()))?);
    let store = tokio::task::spawn_blocking(move || SledStore::open(&opts, signer)).await??;
    let dropped = store.repaired().to_vec();
    let recorded = if dropped.is_empty() {
        Ok(())
    } else {
        let detail = format!("repair: accepted the loss of damaged data: {}", dropped.join("; "));
        truc_store::Store::record_action(&store, detail, "urn:truc:operator:trucd-repair".into()).await
    };
    let r = latest(&store).await;
    let _ = tokio::task::spawn_blocking(move || store.close()).await;
    recorded?;
    let (tree_size, root_hex) = r?;
    Ok(Repaired {
        dropped,
        tree_size,
        root_hex,
    })
}

/// The engine `config` names for a new store's view.
fn store_engine(config: &Config) -> truc_store::Engine {
    match config.store.engine {
        config::StoreEngine::Sled => truc_store::Engine::Sled,
        config::StoreEngine::Fjall => truc_store::Engine::Fjall,
    }
}

/// sled's cache for a JetStream hub's local view, which holds payloads too.
const JETSTREAM_CACHE_BYTES: u64 = 64 << 20;

/// How the hub configured by `config` opens its JetStream store, with
/// `local` as its local view (tools and tests reach the same cluster).
pub fn jetstream_options(config: &Config, mut local: SledStoreOptions) -> truc_store_jetstream::JetStreamOptions {
    let s = &config.store;
    let id = &config.identity;
    // The local view keeps payloads in its tree (the shared log is all other
    // hubs can read): 16 MiB of cache sent most reads to disk.
    local.cache_bytes = local.cache_bytes.max(JETSTREAM_CACHE_BYTES);
    let mut opts = truc_store_jetstream::JetStreamOptions::new(s.nats_urls.clone(), local);
    opts.tls = (!s.nats_plaintext).then(|| truc_store_jetstream::NatsTls {
        ca: s.nats_ca.clone().unwrap_or_else(|| id.join("ca.pem")),
        cert: s.nats_cert.clone().unwrap_or_else(|| id.join("cert.pem")),
        key: s.nats_key.clone().unwrap_or_else(|| id.join("key.pem")),
    });
    opts.replicas = s.replicas;
    opts.prefix = s.prefix.clone();
    // Shown in the write lease: the host name (the pod name on Kubernetes).
    opts.hub_name = std::env::var("HOSTNAME").unwrap_or_else(|_| config.listen.to_string());
    opts.lease_ttl = Duration::from_millis(s.lease_ms);
    opts.timeout = Duration::from_millis(s.timeout_ms);
    opts
}

/// The store the configuration asks for.
enum OpenStore {
    Sled(Arc<SledStore>),
    JetStream(Arc<truc_store_jetstream::JetStreamStore>),
}

impl OpenStore {
    fn dyn_store(&self) -> Arc<dyn Store> {
        match self {
            OpenStore::Sled(s) => Arc::new(s.clone()),
            OpenStore::JetStream(s) => Arc::new(s.store()),
        }
    }

    /// Flush and close; then (embedded sled) checkpoint it so that the next
    /// start is quick (see [`SledStore::checkpoint`]). Blocking.
    fn close_and_checkpoint(self, data_dir: &std::path::Path) {
        match self {
            OpenStore::Sled(s) => s.close(),
            OpenStore::JetStream(s) => return s.close(),
        }
        info!("checkpointing the store, so that the next start is quick");
        match SledStore::checkpoint(data_dir) {
            Ok(took) => info!(?took, "store checkpointed"),
            Err(e) => warn!(error = %e, "store not checkpointed; the next start reads all sled wrote since this one"),
        }
    }
}

/// Load the trust material (CAs, CRLs) into the metrics, and say in the
/// log whether revocations are checked.
fn load_trust_logged(config: &Config, metrics: &metrics::Metrics) -> Result<Arc<trust::Trust>, HubError> {
    let (trust, loaded) = load_trust(config)?;
    metrics.trust_loaded(&loaded);
    if loaded.revocation {
        let files: Vec<String> = trust.files().crls.iter().map(|p| p.display().to_string()).collect();
        info!(revoked = loaded.revoked_certificates, crl = %files.join(","), "trust material loaded");
    } else {
        warn!(
            "tls.crl = \"none\": no CRL, revocations are NOT checked; a revoked certificate keeps connecting, \
             receiving and signing. Set tls.crl (--crl) to the axis CA's crl.pem"
        );
    }
    Ok(trust)
}

/// The store's options from the configuration: quotas, disk reserve,
/// flushing, the calendar and clock, commit figures into `metrics`, and
/// every committed batch's outbox changes into `events`.
fn store_options(
    config: &Config,
    metrics: &Arc<metrics::Metrics>,
    calendar: &Arc<truc_core::Calendar>,
    events: &Arc<truc_store::OutboxEvents>,
) -> SledStoreOptions {
    let mut opts = SledStoreOptions::new(&config.data_dir);
    opts.engine = store_engine(config);
    opts.outbox_quota_bytes = config.limits.agency_quota_bytes;
    opts.min_free_bytes = config.limits.min_free_disk_bytes;
    opts.flush_every_ms = Some(config.store.sled_flush_ms.max(1));
    opts.calendar = calendar.clone();
    opts.clock = config.clock.clone();
    let m = metrics.clone();
    opts.on_commit = Some(truc_store::CommitObserver::new(move |n, took, ok| {
        m.committed(n, took, ok)
    }));
    opts.outbox_events = Some(events.clone());
    opts
}

async fn open_store(
    config: &Config,
    store_opts: SledStoreOptions,
    signer: TreeHeadSigner,
) -> Result<OpenStore, HubError> {
    if config.store.backend == StoreBackend::Sled {
        let store = tokio::task::spawn_blocking(move || SledStore::open(&store_opts, signer)).await??;
        return Ok(OpenStore::Sled(store));
    }
    let s = &config.store;
    let mut opts = jetstream_options(config, store_opts);
    // Payload files of chunked uploads (truc_store::PayloadFiles) are
    // replicated too, so that any hub serves their downloads.
    opts.payload_dir = Some(config.data_dir.join("payloads"));
    let store = truc_store_jetstream::JetStreamStore::open(opts, signer).await?;
    info!(urls = %s.nats_urls.join(","), replicas = s.replicas, prefix = %s.prefix, "JetStream store open");
    Ok(OpenStore::JetStream(store))
}

/// A hub running in this process (tests, `truc demo`).
pub struct RunningHub {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Where the admin listener (`/metrics`, `/healthz`, `/readyz`) listens,
    /// when `admin.listen` is set.
    pub admin_addr: Option<SocketAddr>,
    /// Where the web console listens, when `console.listen` is set.
    pub console_addr: Option<SocketAddr>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), HubError>>,
}

impl RunningHub {
    /// Shut down gracefully and wait until the store is closed.
    pub async fn shutdown(mut self) -> Result<(), HubError> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        (&mut self.task).await?
    }
}

/// Bind `config.listen` and `admin.listen` (use port 0 for a free port) and
/// serve in a task.
pub async fn start(config: Config) -> Result<RunningHub, HubError> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| HubError::io(format!("cannot listen on {}", config.listen), e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| HubError::io("reading the listener's address", e))?;
    let admin_listener = admin::bind(config.admin.listen).await?;
    let admin_addr = admin_listener.as_ref().and_then(|l| l.local_addr().ok());
    let console_listener = console::bind(&config.console).await?;
    let console_addr = console_listener.as_ref().and_then(|l| l.local_addr().ok());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serve_with_admin(
        config,
        listener,
        admin_listener,
        console_listener,
        async move {
            let _ = rx.await;
        },
        Some(ready_tx),
    ));
    // Report a hub that cannot start (identity, store, …) here, not later.
    if ready_rx.await.is_err() {
        return Err(match task.await {
            Ok(Err(e)) => e,
            Ok(Ok(())) => HubError::Server("the hub stopped before it was ready".into()),
            Err(e) => HubError::Task(e),
        });
    }
    Ok(RunningHub {
        addr,
        admin_addr,
        console_addr,
        stop: Some(tx),
        task,
    })
}

/// Check a configuration as `start` would, without serving or opening the
/// store (`trucd check-config`): the hub identity and receipt key (files,
/// modes, a key that matches its certificate), the JetStream key, the trust
/// anchors and CRLs, the TLS set-up, and that the data directory exists or
/// can be made. Returns what was checked, a line each, or the first problem.
pub fn check_config(config: &Config) -> Result<Vec<String>, HubError> {
    let mut out = vec![format!("configuration: valid; listen {}", config.listen)];
    if let Some(a) = config.admin.listen {
        out.push(format!("admin listener (/metrics, /healthz, /readyz): {a}"));
    }
    let identity = &config.identity;
    load_signer(identity)?;
    out.push(format!("receipt key: {}", identity.join("receipts.key").display()));
    let (trust, loaded) = load_trust(config)?;
    tls::server_config(&trust, config.tls.min_version)?;
    let hub_cert = identity.join("cert.pem");
    for (kind, subject, t) in
        metrics::certificate_expiries(&hub_cert, &cas_or_identity_ca(config, &config.tls.client_ca))
    {
        let days = (t - now_unix_secs()) / 86_400;
        out.push(format!("{kind} certificate {subject}: valid for {days} more days"));
    }
    if loaded.revocation {
        let files: Vec<String> = trust.files().crls.iter().map(|p| p.display().to_string()).collect();
        out.push(format!(
            "revocation: {} ({} revoked certificates)",
            files.join(", "),
            loaded.revoked_certificates
        ));
    } else {
        out.push("revocation: NONE (tls.crl = \"none\"): revoked certificates are not refused".into());
    }
    let receipt_key = read_receipt_key(identity)?;
    let fed = federation::Federation::load(config, receipt_key.secret_pkcs8_der())?;
    match &fed.own {
        Some(id) => out.push(format!(
            "hub: urn:truc:hub:{id}; checkpoints {}",
            fed.checkpoint_vkey().unwrap_or_default()
        )),
        None => out.push("hub: the certificate names no urn:truc:hub:<id> (no checkpoints, no peers)".into()),
    }
    out.extend(witness::check_config_lines(config, fed.own.as_ref()));
    for p in &fed.peers {
        out.push(format!(
            "peer {}: {} (CA {}{}), serves {}{}",
            p.id,
            p.url().unwrap_or_default(),
            p.ca.display(),
            p.crl
                .as_ref()
                .map(|c| format!(", CRL {}", c.display()))
                .unwrap_or_default(),
            if p.serves.is_empty() {
                "no patterns".to_string()
            } else {
                p.serves.join(" ")
            },
            if fed.table.default_peer().is_some_and(|d| d.as_str() == p.id) {
                "; default route"
            } else {
                ""
            },
        ));
    }
    let calendar = config.calendar().map_err(|e| HubError::Config(e.to_string()))?;
    out.push(format!(
        "calendar: {calendar}{}",
        config
            .calendar
            .holidays_file
            .as_ref()
            .map(|p| format!(" (holidays from {})", p.display()))
            .unwrap_or_default()
    ));
    if let Some(w) = calendar_warning(config, &calendar) {
        out.push(format!("calendar: WARNING: {w}"));
    }
    let data = &config.data_dir;
    // A relative data_dir's last ancestor is "": the working directory.
    let probe = data
        .ancestors()
        .map(|a| if a.as_os_str().is_empty() { Path::new(".") } else { a })
        .find(|a| a.exists())
        .unwrap_or(data);
    let meta = std::fs::metadata(probe).map_err(|e| HubError::Config(format!("data_dir {}: {e}", data.display())))?;
    if meta.permissions().readonly() {
        return Err(HubError::Config(format!(
            "data_dir {}: {} is read-only",
            data.display(),
            probe.display()
        )));
    }
    out.push(format!(
        "data_dir: {} ({}); store: {}",
        data.display(),
        if probe == data.as_path() {
            "exists"
        } else {
            "will be created"
        },
        config.store.backend
    ));
    Ok(out)
}

/// What an operator should fix in the holidays: none configured, or none
/// listed for the current local year (lunar holidays move every year).
fn calendar_warning(config: &Config, calendar: &truc_core::Calendar) -> Option<String> {
    let year = calendar.local_date(config.clock.now_unix_ms()).year();
    match &config.calendar.holidays_file {
        None => {
            Some("no calendar.holidays_file: public holidays count as working days in confirmation deadlines".into())
        }
        Some(p) if calendar.holidays().in_year(year) == 0 => Some(format!(
            "calendar.holidays_file {} lists no holiday in {year}: add this year's (lunar holidays move every year)",
            p.display()
        )),
        Some(_) => None,
    }
}

fn now_unix_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Whether `dir` looks like a hub identity directory.
pub fn is_identity_dir(dir: &Path) -> bool {
    dir.join("cert.pem").exists() && dir.join("key.pem").exists() && dir.join("receipts.key").exists()
}
