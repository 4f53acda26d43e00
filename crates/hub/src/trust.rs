//! The certificates and CRLs in force, and reloading them without a
//! restart: new CRLs refuse revoked certificates on new connections, on new
//! requests of existing connections, in document signatures, and end the
//! Receive streams of revoked principals. The hub certificate is swapped for
//! new handshakes.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;
use truc_core::sync::ReadWriteLocked;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use truc_core::document::SigningTrust;
use truc_core::Principal;

use crate::HubError;

/// Where the trust material comes from.
#[derive(Debug, Clone)]
pub(crate) struct TrustFiles {
    pub(crate) client_cas: Vec<PathBuf>,
    pub(crate) anchors: Vec<PathBuf>,
    pub(crate) crls: Vec<PathBuf>,
    /// False when `tls.crl = "none"`: revocation is not checked (and
    /// `crls` is empty).
    pub(crate) revocation: bool,
    pub(crate) hub_cert: PathBuf,
    pub(crate) hub_key: PathBuf,
}

impl TrustFiles {
    fn all(&self) -> impl Iterator<Item = &PathBuf> {
        self.client_cas
            .iter()
            .chain(&self.anchors)
            .chain(&self.crls)
            .chain([&self.hub_cert, &self.hub_key])
    }

    /// Newest modification time of any file (to notice changes).
    pub(crate) fn stamp(&self) -> Option<SystemTime> {
        self.all()
            .filter_map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
            .max()
    }
}

/// What a reload found.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Loaded {
    pub(crate) revoked_certificates: u64,
    /// Whether CRLs are checked at all (false: `tls.crl = "none"`).
    pub(crate) revocation: bool,
}

/// The checks in force. Every connection's certificate is re-judged on its
/// next request after `epoch` moves.
pub(crate) struct Trust {
    files: TrustFiles,
    tls: RwLock<Arc<SigningTrust>>,
    signing: RwLock<Arc<SigningTrust>>,
    hub_cert: RwLock<Arc<CertifiedKey>>,
    epoch: AtomicU64,
    /// CA certificates (DER) for the TLS client-certificate hints.
    pub(crate) client_ca_ders: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Trust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trust")
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

fn read_certs(paths: &[PathBuf]) -> Result<Vec<Vec<u8>>, HubError> {
    let mut out = Vec::new();
    for p in paths {
        out.extend(truc_pki::read_cert_ders(p).map_err(|e| HubError::Identity(e.to_string()))?);
    }
    Ok(out)
}

fn read_crls(paths: &[PathBuf]) -> Result<Vec<Vec<u8>>, HubError> {
    let mut out = Vec::new();
    for p in paths {
        out.extend(truc_pki::read_crl_ders(p).map_err(|e| HubError::Identity(e.to_string()))?);
    }
    Ok(out)
}

fn count_revoked(crls: &[Vec<u8>]) -> u64 {
    crls.iter()
        .filter_map(|der| webpki::BorrowedCertRevocationList::from_der(der).ok())
        .map(|crl| (&crl).into_iter().count() as u64)
        .sum()
}

fn certified_key(files: &TrustFiles) -> Result<Arc<CertifiedKey>, HubError> {
    let bad = |p: &PathBuf, e: String| HubError::Identity(format!("{}: {e}", p.display()));
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.hub_cert)
        .map_err(|e| bad(&files.hub_cert, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad(&files.hub_cert, e.to_string()))?;
    crate::check_key(&files.hub_key)?;
    let key = PrivateKeyDer::from_pem_file(&files.hub_key).map_err(|e| bad(&files.hub_key, e.to_string()))?;
    let provider = rustls::crypto::ring::default_provider();
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| bad(&files.hub_key, e.to_string()))?;
    let ck = CertifiedKey::new(chain, signing_key);
    ck.keys_match()
        .map_err(|e| bad(&files.hub_key, format!("does not match the certificate ({e})")))?;
    Ok(Arc::new(ck))
}

impl Trust {
    /// Load everything once, at start.
    pub(crate) fn load(files: TrustFiles) -> Result<(Arc<Trust>, Loaded), HubError> {
        let client_ca_ders = read_certs(&files.client_cas)?;
        let trust = Trust {
            tls: RwLock::new(Arc::new(SigningTrust::new(&client_ca_ders, &[]).map_err(id_err)?)),
            signing: RwLock::new(Arc::new(SigningTrust::new(&client_ca_ders, &[]).map_err(id_err)?)),
            hub_cert: RwLock::new(certified_key(&files)?),
            epoch: AtomicU64::new(0),
            client_ca_ders,
            files,
        };
        let loaded = trust.reload()?;
        Ok((Arc::new(trust), loaded))
    }

    /// Re-read the CRLs, the trust anchors and the hub certificate. On any
    /// error nothing changes.
    pub(crate) fn reload(&self) -> Result<Loaded, HubError> {
        let crls = read_crls(&self.files.crls)?;
        let anchors = read_certs(&self.files.anchors)?;
        let client_cas = read_certs(&self.files.client_cas)?;
        let tls = SigningTrust::new(&client_cas, &crls).map_err(id_err)?;
        let signing = SigningTrust::new(&anchors, &crls).map_err(id_err)?;
        let cert = certified_key(&self.files)?;
        *self.tls.write_locked() = Arc::new(tls);
        *self.signing.write_locked() = Arc::new(signing);
        *self.hub_cert.write_locked() = cert;
        self.epoch.fetch_add(1, Ordering::SeqCst);
        Ok(Loaded {
            revoked_certificates: count_revoked(&crls),
            revocation: self.files.revocation,
        })
    }

    pub(crate) fn files(&self) -> &TrustFiles {
        &self.files
    }

    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Checks for document signers.
    pub(crate) fn signing(&self) -> Arc<SigningTrust> {
        self.signing.read_locked().clone()
    }

    /// Judge a client certificate chain: the principal, or why not.
    pub(crate) fn judge(&self, chain: &[Vec<u8>]) -> Result<Principal, String> {
        if chain.is_empty() {
            return Err("no client certificate: connect with a certificate issued by the axis CA".into());
        }
        let tls = self.tls.read_locked().clone();
        tls.verify_chain(chain, UnixTime::now()).map_err(|e| match e {
            truc_core::CoreError::BadChain(why) => format!("client certificate rejected: {why}"),
            other => format!("client certificate rejected: {other}"),
        })
    }
}

fn id_err(e: truc_core::CoreError) -> HubError {
    HubError::Identity(e.to_string())
}

/// Serves the current hub certificate to each new handshake.
#[derive(Debug)]
pub(crate) struct HubCert(pub(crate) Arc<Trust>);

impl ResolvesServerCert for HubCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.hub_cert.read_locked().clone())
    }
}
