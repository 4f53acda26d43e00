//! Dialling a peer hub: mutual TLS with this hub's certificate, where the
//! peer's certificate must chain to the CA its `[[peers]]` entry names,
//! be valid for the address's host name, **and** name that peer
//! (`urn:truc:hub:<id>`). Several hubs may share one CA; without the last
//! check any of them, answering at the peer's address, could take the
//! peer's documents. tonic's own TLS cannot add that check, so the
//! connector does the handshake (rustls) and tonic speaks HTTP/2 over it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tonic::transport::Uri;
use truc_core::routing::HubId;
use truc_core::Principal;

/// Checks a peer's server certificate: the usual WebPKI checks against the
/// peer's CA, then that it names the peer.
#[derive(Debug)]
struct PeerVerifier {
    inner: Arc<WebPkiServerVerifier>,
    peer: HubId,
}

impl ServerCertVerifier for PeerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let ok = self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)?;
        match Principal::from_cert_der(end_entity) {
            Ok(Principal::Hub(name)) if name == self.peer.as_str() => Ok(ok),
            Ok(other) => Err(rustls::Error::General(format!(
                "the server's certificate names {other}, not the peer urn:truc:hub:{}",
                self.peer
            ))),
            Err(e) => Err(rustls::Error::General(format!(
                "the server's certificate names no hub ({e}); expected urn:truc:hub:{}",
                self.peer
            ))),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A connector to one peer, for `Endpoint::connect_with_connector` on an
/// `http://host:port` URI (the TLS is this connector's).
#[derive(Clone)]
pub(crate) struct PeerConnector {
    tls: TlsConnector,
}

impl PeerConnector {
    /// The connector for `peer`, trusting `ca_pem` and presenting this
    /// hub's certificate chain and key (PEM files).
    pub(crate) fn new(
        peer: &HubId,
        ca_pem: &std::path::Path,
        cert_pem: &std::path::Path,
        key_pem: &std::path::Path,
    ) -> Result<PeerConnector, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for der in truc_pki::read_cert_ders(ca_pem).map_err(|e| e.to_string())? {
            roots
                .add(CertificateDer::from(der))
                .map_err(|e| format!("{}: {e}", ca_pem.display()))?;
        }
        let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| format!("{}: {e}", ca_pem.display()))?;
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_pem)
            .and_then(|it| it.collect::<Result<_, _>>())
            .map_err(|e| format!("{}: {e}", cert_pem.display()))?;
        let key = PrivateKeyDer::from_pem_file(key_pem).map_err(|e| format!("{}: {e}", key_pem.display()))?;
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PeerVerifier {
                inner,
                peer: peer.clone(),
            }))
            .with_client_auth_cert(chain, key)
            .map_err(|e| format!("{}: {e}", key_pem.display()))?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(PeerConnector {
            tls: TlsConnector::from(Arc::new(config)),
        })
    }
}

impl tower_service::Service<Uri> for PeerConnector {
    type Response = TokioIo<TlsStream<TcpStream>>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let tls = self.tls.clone();
        Box::pin(async move {
            let bad = |why: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{uri}: {why}"));
            let host = uri.host().ok_or_else(|| bad("no host"))?.to_string();
            let port = uri.port_u16().ok_or_else(|| bad("no port"))?;
            let bare = host.trim_start_matches('[').trim_end_matches(']').to_string();
            let tcp = TcpStream::connect((bare.as_str(), port)).await?;
            let name = ServerName::try_from(bare).map_err(|_| bad("not a DNS name or an IP address"))?;
            let stream = tls.connect(name, tcp).await?;
            Ok(TokioIo::new(stream))
        })
    }
}
