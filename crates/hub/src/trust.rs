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
use truc_core::routing::HubId;
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
    /// The configured peer hubs' CAs (`[[peers]]`).
    pub(crate) peers: Vec<PeerFiles>,
    /// The CAs of hubs further away (`[[origins]]`): anchors for their
    /// agencies' signatures and their trace hops, never for connections.
    pub(crate) origins: Vec<PeerFiles>,
}

/// A peer hub's trust material: the CA that issued it, and its CRL.
#[derive(Debug, Clone)]
pub(crate) struct PeerFiles {
    pub(crate) id: HubId,
    pub(crate) ca: PathBuf,
    pub(crate) crl: Option<PathBuf>,
}

impl TrustFiles {
    fn all(&self) -> impl Iterator<Item = &PathBuf> {
        self.client_cas
            .iter()
            .chain(&self.anchors)
            .chain(&self.crls)
            .chain([&self.hub_cert, &self.hub_key])
            .chain(
                self.peers
                    .iter()
                    .chain(&self.origins)
                    .flat_map(|p| std::iter::once(&p.ca).chain(&p.crl)),
            )
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

/// Other hubs' CAs, by hub id ([`Trust::hub_anchors`]).
pub(crate) struct HubAnchors {
    peers: Arc<Vec<PeerTrust>>,
    origins: Arc<Vec<PeerTrust>>,
}

impl HubAnchors {
    /// The checks for certificates issued by hub `id`'s CA.
    pub(crate) fn get(&self, id: &HubId) -> Option<&SigningTrust> {
        self.peers
            .iter()
            .chain(self.origins.iter())
            .find(|p| &p.id == id)
            .map(|p| &p.tls)
    }
}

/// A peer hub's certificate checks.
struct PeerTrust {
    id: HubId,
    /// Chains to the peer's CA, checked against its CRL.
    tls: SigningTrust,
    /// The subjects (DER) of the peer's CA certificates: a certificate
    /// whose issuer is one of them is judged by this peer's rules alone.
    subjects: Vec<Vec<u8>>,
}

/// The issuer (DER) of a chain's first certificate.
fn leaf_issuer(chain: &[Vec<u8>]) -> Option<Vec<u8>> {
    let (_, cert) = x509_parser::parse_x509_certificate(chain.first()?).ok()?;
    Some(cert.issuer().as_raw().to_vec())
}

/// The subjects (DER) of CA certificates.
fn subjects(cas: &[Vec<u8>]) -> Vec<Vec<u8>> {
    cas.iter()
        .filter_map(|der| {
            let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
            Some(cert.subject().as_raw().to_vec())
        })
        .collect()
}

/// The checks in force. Every connection's certificate is re-judged on its
/// next request after `epoch` moves.
///
/// Roles are kept apart here: a certificate of the axis CA (`client_cas`)
/// may be an agency, operator or auditor; a hub certificate is accepted
/// only from a configured peer, chaining to that peer's CA (which may be
/// the axis CA too); a peer's CA vouches for that peer's hub certificate
/// and for nothing else (not its agencies, not other hubs).
pub(crate) struct Trust {
    files: TrustFiles,
    tls: RwLock<Arc<SigningTrust>>,
    origins: RwLock<Arc<Vec<PeerTrust>>>,
    peers: RwLock<Arc<Vec<PeerTrust>>>,
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

fn peer_trusts(peers: &[PeerFiles]) -> Result<Vec<PeerTrust>, HubError> {
    peers
        .iter()
        .map(|p| {
            let cas = read_certs(std::slice::from_ref(&p.ca))?;
            let crls = read_crls(p.crl.as_slice())?;
            let tls = SigningTrust::new(&cas, &crls)
                .map_err(|e| HubError::Identity(format!("peer {}: {}: {e}", p.id, p.ca.display())))?;
            Ok(PeerTrust {
                id: p.id.clone(),
                tls,
                subjects: subjects(&cas),
            })
        })
        .collect()
}

impl Trust {
    /// Load everything once, at start.
    pub(crate) fn load(files: TrustFiles) -> Result<(Arc<Trust>, Loaded), HubError> {
        let mut client_ca_ders = read_certs(&files.client_cas)?;
        // Peers are asked for certificates of their own CA too.
        for p in &files.peers {
            for der in read_certs(std::slice::from_ref(&p.ca))? {
                if !client_ca_ders.contains(&der) {
                    client_ca_ders.push(der);
                }
            }
        }
        let trust = Trust {
            tls: RwLock::new(Arc::new(SigningTrust::new(&client_ca_ders, &[]).map_err(id_err)?)),
            peers: RwLock::new(Arc::new(Vec::new())),
            origins: RwLock::new(Arc::new(Vec::new())),
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
        let peers = peer_trusts(&self.files.peers)?;
        let origins = peer_trusts(&self.files.origins)?;
        *self.tls.write_locked() = Arc::new(tls);
        *self.peers.write_locked() = Arc::new(peers);
        *self.origins.write_locked() = Arc::new(origins);
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

    /// The trust anchors of other hubs (peers, then origins) as they are
    /// now: for their agencies' signatures and their trace hops.
    pub(crate) fn hub_anchors(&self) -> HubAnchors {
        HubAnchors {
            peers: self.peers.read_locked().clone(),
            origins: self.origins.read_locked().clone(),
        }
    }

    /// Judge a client certificate chain: the principal, or why not.
    ///
    /// An agency, operator or auditor must chain to the axis CA; a hub must
    /// be a configured peer and chain to that peer's CA. A certificate of a
    /// peer's CA naming anyone but that peer is refused.
    pub(crate) fn judge(&self, chain: &[Vec<u8>]) -> Result<Principal, String> {
        if chain.is_empty() {
            return Err("no client certificate: connect with a certificate issued by the axis CA".into());
        }
        let now = UnixTime::now();
        let tls = self.tls.read_locked().clone();
        let peers = self.peers.read_locked().clone();
        let rejected = |e: truc_core::CoreError| match e {
            truc_core::CoreError::BadChain(why) => format!("client certificate rejected: {why}"),
            other => format!("client certificate rejected: {other}"),
        };
        match tls.verify_chain(chain, now) {
            Ok(Principal::Hub(name)) => judge_hub(&peers, chain, name, now),
            Ok(p) => Ok(p),
            Err(local) => {
                let issuer = leaf_issuer(chain);
                for peer in peers.iter() {
                    match peer.tls.verify_chain(chain, now) {
                        Ok(p) if p == peer.id.principal() => return Ok(p),
                        Ok(p) => {
                            return Err(format!(
                                "client certificate rejected: it is issued by the CA of peer hub {id}, which this hub \
                                 trusts for urn:truc:hub:{id} only, and it names {p}",
                                id = peer.id
                            ))
                        }
                        // Issued by this peer's CA, but refused (revoked,
                        // expired, not for client authentication): say so.
                        Err(e) if issuer.as_ref().is_some_and(|i| peer.subjects.contains(i)) => {
                            return Err(format!("{} (a certificate of peer hub {}'s CA)", rejected(e), peer.id))
                        }
                        Err(_) => continue,
                    }
                }
                Err(rejected(local))
            }
        }
    }
}

/// A hub certificate of the axis CA: accepted only as a configured peer
/// whose CA it chains to.
fn judge_hub(peers: &[PeerTrust], chain: &[Vec<u8>], name: String, now: UnixTime) -> Result<Principal, String> {
    let Some(peer) = peers.iter().find(|p| p.id.as_str() == name) else {
        return Err(format!(
            "client certificate rejected: urn:truc:hub:{name} is not a peer of this hub (no [[peers]] entry with \
             id = \"{name}\"); a hub certificate connects only as a configured peer"
        ));
    };
    match peer.tls.verify_chain(chain, now) {
        Ok(_) => Ok(Principal::Hub(name)),
        Err(e) => Err(format!(
            "client certificate rejected: urn:truc:hub:{name} does not chain to the CA configured for peer {name} ({e})"
        )),
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
