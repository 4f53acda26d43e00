//! TLS for the gRPC listener, and what happens to a connection from the
//! moment it is accepted.
//!
//! rustls runs the handshake and checks that the client holds the private
//! key of the certificate it presents. Whether that certificate is
//! acceptable (chain to the axis CA, validity, CRL) and which principal it
//! names is decided right after the handshake by [`truc_core`]'s verifier —
//! the same code that checks document signers.
//!
//! **Strangers are not kept.** The certificate is required, but judged
//! after the handshake rather than by a TLS alert in it, so that a refused
//! client learns why (a gRPC UNAUTHENTICATED status naming the reason: "no
//! client certificate", "revoked", "expired", "not issued by a trusted
//! CA"), where an alert would only say "bad certificate". What such a
//! connection gets is bounded: it never reaches the services or their
//! interceptors; a small HTTP/2 server of its own answers its first request
//! with UNAUTHENTICATED and the reason, then closes it (GOAWAY, at most
//! [`REFUSED_LINGER`] later); one that sends nothing is closed after
//! [`UNAUTHENTICATED_LIFETIME`]. gRPC health checking, which was open to
//! clients without a certificate before, stays open there (for load
//! balancers), within the same lifetime; nothing else is.
//!
//! **The door** ([`crate::door`]): a connection over the caps (in all, per
//! address) or beyond the handshakes allowed at once is closed as soon as
//! it is accepted; a handshake has `limits.handshake_timeout_ms`. An
//! authenticated connection with no request open for
//! `limits.idle_connection_timeout_ms` is closed by [`TrucConn`] itself (a
//! Receive stream is an open request, so a quiet follower is kept; HTTP/2
//! keepalive pings find a dead one), and so is one whose certificate a
//! reload refused, right after that refusal is answered.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Notify};
use tokio::time::{Instant, Sleep};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tonic::codegen::{http, Service};
use tonic_health::pb::health_server::HealthServer;
use tracing::{debug, warn, Instrument};
use truc_core::Principal;

use crate::config::TlsVersion;
use crate::door::{About, Admitted, Closed, ConnState, Door, Handshaking, Held};
use crate::metrics::Metrics;
use crate::trust::{HubCert, Trust};
use crate::HubError;

/// Longest a connection without an acceptable certificate stays open.
pub(crate) const UNAUTHENTICATED_LIFETIME: Duration = Duration::from_secs(5);
/// Time left to a refused connection to receive its refusal before it is
/// closed.
pub(crate) const REFUSED_LINGER: Duration = Duration::from_secs(1);

/// Who is on the other end of a connection: judged after the handshake,
/// and again on the next request whenever the trust material was reloaded.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    /// The remote address.
    pub addr: SocketAddr,
    /// The certificate chain the client presented (DER, leaf first).
    pub chain: Arc<Vec<Vec<u8>>>,
    /// (trust epoch, verdict): the principal its certificate names, or why
    /// there is none. Shared by all requests of the connection.
    pub judged: Arc<Mutex<(u64, Result<Principal, String>)>>,
    /// Its open requests and whether it must close.
    pub(crate) conn: Arc<ConnState>,
}

/// An authenticated TLS connection with its peer information, for tonic.
/// It closes itself (end of file to the HTTP/2 server) when idle too long
/// or told to by [`ConnState::close_by`].
pub(crate) struct TrucConn {
    inner: TlsStream<TcpStream>,
    info: PeerInfo,
    idle: Duration,
    timer: Pin<Box<Sleep>>,
    admitted: Admitted,
    /// Listed for `Ops.ListConnections` while it lives.
    _held: Held,
    closed: bool,
}

impl TrucConn {
    /// Whether the connection must close now; else the timer is armed for
    /// the next moment it might.
    fn must_close(&mut self, cx: &mut Context<'_>) -> bool {
        if self.closed {
            return true;
        }
        let state = self.info.conn.clone();
        state.register(cx.waker());
        if let Some(at) = state.close_at() {
            if at < self.timer.deadline() {
                self.timer.as_mut().reset(at);
            }
        }
        while self.timer.as_mut().poll(cx).is_ready() {
            let now = Instant::now();
            let why = if state.close_at().is_some_and(|at| at <= now) {
                Some(Closed::CertificateRefused)
            } else if state.idle_since().is_some_and(|since| since + self.idle <= now) {
                Some(Closed::Idle)
            } else {
                None
            };
            if let Some(why) = why {
                debug!(addr = %self.info.addr, ?why, "closing the connection");
                self.admitted.door().closed(why);
                self.closed = true;
                return true;
            }
            let next = state.idle_since().unwrap_or(now) + self.idle;
            self.timer
                .as_mut()
                .reset(state.close_at().map_or(next, |at| at.min(next)));
        }
        false
    }
}

impl tonic::transport::server::Connected for TrucConn {
    type ConnectInfo = PeerInfo;
    fn connect_info(&self) -> PeerInfo {
        self.info.clone()
    }
}

impl AsyncRead for TrucConn {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if self.must_close(cx) {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for TrucConn {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.closed {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Asks for a client certificate and checks possession of its key; the
/// certificate itself is judged after the handshake (see the module docs).
#[derive(Debug)]
struct PossessionVerifier {
    hints: Vec<DistinguishedName>,
    algs: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for PossessionVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }
    fn client_auth_mandatory(&self) -> bool {
        false
    }
    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// Versions when `tls.min_version = "1.3"`.
static TLS13_ONLY: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

/// Build the server's TLS configuration; the hub certificate comes from
/// `trust` at each handshake, so a reload swaps it.
pub(crate) fn server_config(trust: &Arc<Trust>, min_version: TlsVersion) -> Result<rustls::ServerConfig, HubError> {
    let client_cas = &trust.client_ca_ders;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut hints = Vec::new();
    for der in client_cas {
        let cert = CertificateDer::from(der.as_slice());
        let anchor = webpki::anchor_from_trusted_cert(&cert)
            .map_err(|e| HubError::Identity(format!("client CA certificate unusable: {e}")))?;
        // webpki's subject lacks the outer SEQUENCE a TLS CA name carries.
        hints.push(DistinguishedName::in_sequence(&anchor.subject));
    }
    let verifier = PossessionVerifier {
        hints,
        algs: provider.signature_verification_algorithms,
    };
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(match min_version {
            TlsVersion::V1_2 => rustls::DEFAULT_VERSIONS,
            TlsVersion::V1_3 => TLS13_ONLY,
        })
        .map_err(|e| HubError::Identity(format!("TLS setup: {e}")))?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_cert_resolver(Arc::new(HubCert(trust.clone())));
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    Ok(cfg)
}

/// What the accept loop needs.
pub(crate) struct Gate {
    pub(crate) acceptor: TlsAcceptor,
    pub(crate) trust: Arc<Trust>,
    pub(crate) door: Arc<Door>,
    pub(crate) handshake_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    /// gRPC health, served to connections without a certificate too.
    pub(crate) health: HealthServer<crate::health::Checks>,
    pub(crate) metrics: Arc<Metrics>,
}

/// Accept TCP connections within the door's caps, run TLS handshakes
/// concurrently (each bounded by a timeout), judge the client certificate,
/// and hand authenticated connections to tonic through a bounded channel;
/// answer the others here (see the module docs). Ends when `stop` changes.
pub(crate) fn incoming(
    listener: TcpListener,
    gate: Arc<Gate>,
    mut stop: watch::Receiver<bool>,
) -> mpsc::Receiver<io::Result<TrucConn>> {
    let (tx, rx) = mpsc::channel(128);
    let accept = async move {
        loop {
            let (tcp, addr) = tokio::select! {
                _ = stop.changed() => break,
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            // Over a cap: closed now, counted by the door (the socket goes
            // before its place is given back).
            let admitted = match gate.door.admit(addr.ip()) {
                Ok(a) => a,
                Err(cap) => {
                    drop(tcp);
                    debug!(%addr, ?cap, "connection refused: cap reached");
                    continue;
                }
            };
            let Some(slot) = gate.door.handshake() else {
                drop(tcp);
                drop(admitted);
                debug!(%addr, "connection refused: too many TLS handshakes at once");
                continue;
            };
            let _ = tcp.set_nodelay(true);
            tokio::spawn(
                connection(tcp, addr, admitted, slot, gate.clone(), tx.clone())
                    .instrument(tracing::debug_span!("conn", %addr)),
            );
        }
    };
    tokio::spawn(accept.instrument(tracing::info_span!("accept")));
    rx
}

/// One accepted connection: handshake, judgement, then tonic or refusal.
async fn connection(
    tcp: TcpStream,
    addr: SocketAddr,
    admitted: Admitted,
    slot: Handshaking,
    gate: Arc<Gate>,
    tx: mpsc::Sender<io::Result<TrucConn>>,
) {
    // Bound first, so that a failed handshake's socket is closed before
    // the door gives its place back.
    let handshake = tokio::time::timeout(gate.handshake_timeout, gate.acceptor.accept(tcp)).await;
    let tls = match handshake {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            gate.door.closed(Closed::HandshakeFailed);
            return debug!(error = %e, "TLS handshake failed");
        }
        Err(_) => {
            gate.door.closed(Closed::HandshakeTimeout);
            return debug!("TLS handshake timed out");
        }
    };
    drop(slot);
    let certs = tls.get_ref().1.peer_certificates().unwrap_or(&[]);
    let chain: Vec<Vec<u8>> = certs.iter().map(|c| c.to_vec()).collect();
    let epoch = gate.trust.epoch();
    let principal = match gate.trust.judge(&chain) {
        Ok(p) => p,
        Err(why) => {
            debug!(reason = %why, "client certificate refused");
            gate.door.closed(if chain.is_empty() {
                Closed::NoCertificate
            } else {
                Closed::CertificateRefused
            });
            refuse(tls, addr, why, &gate).await;
            return drop(admitted);
        }
    };
    if let Some(leaf) = chain.first() {
        gate.metrics.client_certificate(&principal, leaf);
    }
    let session = tls.get_ref().1;
    let about = About {
        principal: principal.uri(),
        addr,
        connected_at_unix_ms: truc_core::now_unix_ms(),
        tls_version: match session.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".into(),
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".into(),
            Some(v) => format!("{v:?}"),
            None => String::new(),
        },
        cipher_suite: session
            .negotiated_cipher_suite()
            .and_then(|s| s.suite().as_str())
            .unwrap_or_default()
            .to_string(),
    };
    let state = ConnState::new(about, admitted.door().budget());
    let held = admitted.door().hold(state.clone());
    let info = PeerInfo {
        addr,
        chain: Arc::new(chain),
        judged: Arc::new(Mutex::new((epoch, Ok(principal)))),
        conn: state,
    };
    let conn = TrucConn {
        inner: tls,
        info,
        idle: gate.idle_timeout,
        timer: Box::pin(tokio::time::sleep(gate.idle_timeout)),
        admitted,
        _held: held,
        closed: false,
    };
    let _ = tx.send(Ok(conn)).await;
}

/// Serve a connection whose certificate is missing or refused: gRPC
/// health checks are answered; any other request gets UNAUTHENTICATED with
/// `why`, and the connection is then closed. It lives at most
/// [`UNAUTHENTICATED_LIFETIME`] in any case.
async fn refuse(tls: TlsStream<TcpStream>, addr: SocketAddr, why: String, gate: &Gate) {
    let refused = Arc::new(Notify::new());
    let service = {
        let (refused, health, metrics) = (refused.clone(), gate.health.clone(), gate.metrics.clone());
        hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
            let (refused, mut health, metrics, why) = (refused.clone(), health.clone(), metrics.clone(), why.clone());
            async move {
                if req.uri().path().starts_with("/grpc.health.v1.Health/") {
                    return health.call(req).await;
                }
                metrics.refused_unauthenticated(req.uri().path(), &why, addr);
                refused.notify_one();
                Ok(tonic::Status::unauthenticated(why).into_http::<tonic::body::Body>())
            }
        })
    };
    let conn = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
        .max_concurrent_streams(8)
        .max_header_list_size(16 * 1024)
        .serve_connection(hyper_util::rt::TokioIo::new(tls), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = &mut conn => return,
        _ = tokio::time::sleep(UNAUTHENTICATED_LIFETIME) => return,
        _ = refused.notified() => conn.as_mut().graceful_shutdown(),
    }
    // The refusal is on its way; GOAWAY follows it, then the close.
    let _ = tokio::time::timeout(REFUSED_LINGER, conn).await;
}
