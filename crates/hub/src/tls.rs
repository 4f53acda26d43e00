//! TLS for the gRPC listener.
//!
//! rustls runs the handshake and checks that the client holds the private
//! key of the certificate it presents. Whether that certificate is
//! acceptable (chain to the axis CA, validity, CRL) and which principal it
//! names is decided right after the handshake by [`truc_core`]'s verifier —
//! the same code that checks document signers — so a refused certificate
//! gets a gRPC UNAUTHENTICATED status saying why, not a bare TLS alert.

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
use tokio::sync::{mpsc, watch};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, warn, Instrument};
use truc_core::Principal;

use crate::trust::{HubCert, Trust};
use crate::HubError;

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
}

/// A TLS connection with its peer information, for tonic.
pub(crate) struct TrucConn {
    inner: TlsStream<TcpStream>,
    info: PeerInfo,
}

impl tonic::transport::server::Connected for TrucConn {
    type ConnectInfo = PeerInfo;
    fn connect_info(&self) -> PeerInfo {
        self.info.clone()
    }
}

impl AsyncRead for TrucConn {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for TrucConn {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
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
pub(crate) fn server_config(trust: &Arc<Trust>, tls13_only: bool) -> Result<rustls::ServerConfig, HubError> {
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
        .with_protocol_versions(if tls13_only {
            TLS13_ONLY
        } else {
            rustls::DEFAULT_VERSIONS
        })
        .map_err(|e| HubError::Identity(format!("TLS setup: {e}")))?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_cert_resolver(Arc::new(HubCert(trust.clone())));
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    Ok(cfg)
}

/// Accept TCP connections, run TLS handshakes concurrently (each bounded by
/// a timeout), judge the client certificate, and hand finished connections
/// to tonic through a bounded channel. Ends when `stop` changes.
pub(crate) fn incoming(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    trust: Arc<Trust>,
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
            let _ = tcp.set_nodelay(true);
            let (acceptor, trust, tx) = (acceptor.clone(), trust.clone(), tx.clone());
            tokio::spawn(
                async move {
                    let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(e)) => return debug!(error = %e, "TLS handshake failed"),
                        Err(_) => return debug!("TLS handshake timed out"),
                    };
                    let certs = tls.get_ref().1.peer_certificates().unwrap_or(&[]);
                    let chain: Vec<Vec<u8>> = certs.iter().map(|c| c.to_vec()).collect();
                    let epoch = trust.epoch();
                    let principal = trust.judge(&chain);
                    if let Err(why) = &principal {
                        debug!(reason = %why, "client certificate refused");
                    }
                    let judged = Arc::new(Mutex::new((epoch, principal)));
                    let info = PeerInfo {
                        addr,
                        chain: Arc::new(chain),
                        judged,
                    };
                    let _ = tx.send(Ok(TrucConn { inner: tls, info })).await;
                }
                .instrument(tracing::debug_span!("conn", %addr)),
            );
        }
    };
    tokio::spawn(accept.instrument(tracing::info_span!("accept")));
    rx
}
