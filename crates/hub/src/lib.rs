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
use tonic::service::interceptor::InterceptedService;
use tracing::{info, warn, Instrument};
use truc_core::document::SigningTrust;
use truc_core::tree_head::TreeHeadSigner;
use truc_proto::v1::audit_server::AuditServer;
use truc_proto::v1::axis_server::AxisServer;
use truc_proto::v1::ops_server::OpsServer;
use truc_store::{SledStore, SledStoreOptions, Store};

mod auth;
pub mod config;
mod delivery;
mod queues;
mod service;
mod status;
mod tls;
mod trust;

pub use config::{Config, ConfigError};
pub use tls::PeerInfo;

/// Why the hub could not start or stopped with an error.
#[derive(Debug, Error)]
pub enum HubError {
    /// The identity directory, a CA file or a CRL is missing or unusable.
    #[error("identity: {0}")]
    Identity(String),
    /// The store could not be opened.
    #[error("store: {0}")]
    Store(#[from] truc_store::StoreError),
    /// The gRPC server failed.
    #[error("server: {0}")]
    Server(String),
}

/// What every service shares.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) engine: Arc<delivery::Engine>,
    pub(crate) trust: Arc<trust::Trust>,
}

impl Shared {
    pub(crate) fn signing_trust(&self) -> Arc<SigningTrust> {
        self.trust.signing()
    }

    /// Re-read CRLs, trust anchors and the hub certificate; end the Receive
    /// streams of principals whose certificate is now refused.
    pub(crate) fn reload(&self) -> Result<(trust::Loaded, u64), HubError> {
        let loaded = self.trust.reload()?;
        let ended = self.engine.end_refused_streams(&self.trust);
        tracing::info!(revoked = loaded.revoked_certificates, streams_ended = ended, "trust material reloaded");
        Ok((loaded, ended))
    }
}

/// Allowance over the payload limit for the rest of a message.
const MESSAGE_OVERHEAD: usize = 1024 * 1024;

/// Run the hub on `listener` until `shutdown` completes, then drain: stop
/// accepting, end streams, give requests `shutdown_grace_seconds` to finish,
/// flush the store.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), HubError> {
    let identity = &config.identity;
    let read = |name: &str| -> Result<Vec<u8>, HubError> {
        let p = identity.join(name);
        std::fs::read(&p).map_err(|e| HubError::Identity(format!("{}: {e}", p.display())))
    };
    let receipts_key = PrivatePkcs8KeyDer::from_pem_slice(&read("receipts.key")?)
        .map_err(|e| HubError::Identity(format!("{}: {e}", identity.join("receipts.key").display())))?;
    let signer = TreeHeadSigner::from_pkcs8(receipts_key.secret_pkcs8_der())
        .map_err(|e| HubError::Identity(format!("{}: {e}", identity.join("receipts.key").display())))?;

    let default_ca = [identity.join("ca.pem")];
    let pick = |v: &[std::path::PathBuf]| {
        if v.is_empty() {
            default_ca.to_vec()
        } else {
            v.to_vec()
        }
    };
    let (trust, loaded) = trust::Trust::load(trust::TrustFiles {
        client_cas: pick(&config.tls.client_ca),
        anchors: pick(&config.signing.trust_anchors),
        crls: config.tls.crl.clone(),
        hub_cert: identity.join("cert.pem"),
        hub_key: identity.join("key.pem"),
    })?;
    info!(revoked = loaded.revoked_certificates, "trust material loaded");
    let tls_config = tls::server_config(&trust)?;
    let store_opts = SledStoreOptions::new(&config.data_dir);
    let store = tokio::task::spawn_blocking(move || SledStore::open(&store_opts, signer))
        .await
        .map_err(|e| HubError::Server(e.to_string()))??;

    let (stop_tx, stop_rx) = watch::channel(false);
    let lease = Duration::from_millis(config.delivery.lease_ms);
    let engine = delivery::Engine::new(
        Arc::new(store.clone()),
        lease,
        config.delivery.max_attempts,
        stop_rx.clone(),
    );
    let reaper = tokio::spawn(engine.clone().reap().instrument(tracing::info_span!("reaper")));
    let shared = Arc::new(Shared {
        config: config.clone(),
        store: Arc::new(store.clone()),
        engine,
        trust: trust.clone(),
    });
    let watcher = tokio::spawn(
        watch_trust_files(shared.clone(), Duration::from_millis(config.tls.reload_poll_ms), stop_rx.clone())
            .instrument(tracing::info_span!("trust-watch")),
    );

    let addr = listener.local_addr().map_err(|e| HubError::Server(e.to_string()))?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls_config));
    let incoming = ReceiverStream::new(tls::incoming(listener, acceptor, trust.clone(), stop_rx.clone()));

    let limit = config.limits.max_inline_payload as usize + MESSAGE_OVERHEAD;
    let axis = AxisServer::new(service::axis::AxisService(shared.clone()))
        .max_decoding_message_size(limit)
        .max_encoding_message_size(limit);
    let ops = OpsServer::new(service::ops::OpsService(shared.clone()));
    let audit =
        AuditServer::new(service::audit::AuditService(shared.clone())).max_encoding_message_size(64 * 1024 * 1024);
    let router = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .add_service(InterceptedService::new(axis, auth::require_identity(trust.clone())))
        .add_service(InterceptedService::new(ops, auth::require_identity(trust.clone())))
        .add_service(InterceptedService::new(audit, auth::require_identity(trust.clone())));

    info!(%addr, data_dir = %config.data_dir.display(), "hub listening");
    let mut stop_for_server = stop_rx.clone();
    let server = router.serve_with_incoming_shutdown(incoming, async move {
        let _ = stop_for_server.changed().await;
    });
    tokio::pin!(server);
    let result = tokio::select! {
        r = &mut server => r,
        _ = shutdown => {
            info!("shutting down");
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
    let _ = stop_tx.send(true);
    let _ = reaper.await;
    let _ = watcher.await;
    drop(shared);
    // Every request is finished or dropped: flush and close the store.
    let _ = tokio::task::spawn_blocking(move || store.close()).await;
    info!("stopped");
    result.map_err(|e| HubError::Server(e.to_string()))
}

/// Reload the trust material whenever one of its files changes (a new
/// CRL from `truc pki revoke`, a rotated hub certificate), until stopped.
async fn watch_trust_files(shared: Arc<Shared>, every: Duration, mut stop: watch::Receiver<bool>) {
    let mut seen = shared.trust.files().stamp();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        let files = shared.trust.files().clone();
        let now = tokio::task::spawn_blocking(move || files.stamp()).await.unwrap_or(None);
        if now != seen {
            seen = now;
            if let Err(e) = shared.reload() {
                warn!(error = %e, "a trust file changed but could not be loaded; keeping the previous one");
            }
        }
    }
}

/// A hub running in this process (tests, `truc demo`).
pub struct RunningHub {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), HubError>>,
}

impl RunningHub {
    /// Shut down gracefully and wait until the store is closed.
    pub async fn shutdown(mut self) -> Result<(), HubError> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        (&mut self.task).await.map_err(|e| HubError::Server(e.to_string()))?
    }
}

/// Bind `config.listen` (use port 0 for a free port) and serve in a task.
pub async fn start(config: Config) -> Result<RunningHub, HubError> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| HubError::Server(format!("cannot listen on {}: {e}", config.listen)))?;
    let addr = listener.local_addr().map_err(|e| HubError::Server(e.to_string()))?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serve(config, listener, async move {
        let _ = rx.await;
    }));
    Ok(RunningHub {
        addr,
        stop: Some(tx),
        task,
    })
}

/// Whether `dir` looks like a hub identity directory.
pub fn is_identity_dir(dir: &Path) -> bool {
    dir.join("cert.pem").exists() && dir.join("key.pem").exists() && dir.join("receipts.key").exists()
}
