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
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
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
mod service;
mod status;
mod tls;

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
    signing: tls::SharedTrust,
}

impl Shared {
    pub(crate) fn signing_trust(&self) -> Arc<SigningTrust> {
        self.signing.read().unwrap_or_else(|e| e.into_inner()).clone()
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
    let cert_chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&read("cert.pem")?)
        .collect::<Result<_, _>>()
        .map_err(|e| HubError::Identity(format!("{}: {e}", identity.join("cert.pem").display())))?;
    let key = PrivateKeyDer::from_pem_slice(&read("key.pem")?)
        .map_err(|e| HubError::Identity(format!("{}: {e}", identity.join("key.pem").display())))?;
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
    let client_cas = read_certs(&pick(&config.tls.client_ca))?;
    let anchors = read_certs(&pick(&config.signing.trust_anchors))?;
    let mut crls = Vec::new();
    for p in &config.tls.crl {
        crls.extend(truc_pki::read_crl_ders(p).map_err(|e| HubError::Identity(e.to_string()))?);
    }
    let tls_trust = trust(&client_cas, &crls)?;
    let signing = trust(&anchors, &crls)?;

    let tls_config = tls::server_config(cert_chain, key, &client_cas)?;
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
        signing,
    });

    let addr = listener.local_addr().map_err(|e| HubError::Server(e.to_string()))?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls_config));
    let incoming = ReceiverStream::new(tls::incoming(listener, acceptor, tls_trust, stop_rx.clone()));

    let limit = config.limits.max_inline_payload as usize + MESSAGE_OVERHEAD;
    let axis = AxisServer::new(service::axis::AxisService(shared.clone()))
        .max_decoding_message_size(limit)
        .max_encoding_message_size(limit);
    let ops = OpsServer::new(service::ops::OpsService(shared.clone()));
    let audit =
        AuditServer::new(service::audit::AuditService(shared.clone())).max_encoding_message_size(64 * 1024 * 1024);
    let router = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .add_service(InterceptedService::new(axis, auth::require_identity))
        .add_service(InterceptedService::new(ops, auth::require_identity))
        .add_service(InterceptedService::new(audit, auth::require_identity));

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
    drop(shared);
    // Every request is finished or dropped: flush and close the store.
    let _ = tokio::task::spawn_blocking(move || store.close()).await;
    info!("stopped");
    result.map_err(|e| HubError::Server(e.to_string()))
}

fn read_certs(paths: &[std::path::PathBuf]) -> Result<Vec<Vec<u8>>, HubError> {
    let mut out = Vec::new();
    for p in paths {
        let certs = truc_pki::read_cert_ders(p).map_err(|e| HubError::Identity(e.to_string()))?;
        if certs.is_empty() {
            return Err(HubError::Identity(format!("{}: no certificates", p.display())));
        }
        out.extend(certs);
    }
    Ok(out)
}

fn trust(anchors: &[Vec<u8>], crls: &[Vec<u8>]) -> Result<tls::SharedTrust, HubError> {
    let t = SigningTrust::new(anchors, crls).map_err(|e| HubError::Identity(e.to_string()))?;
    Ok(Arc::new(RwLock::new(Arc::new(t))))
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
