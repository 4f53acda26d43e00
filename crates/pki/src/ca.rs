//! The axis CA: creating a PKI directory and opening an existing one.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use truc_core::Principal;

use crate::files::{self, PRIVATE, PUBLIC};
use crate::ledger::{IssuedCert, Ledger};
use crate::{IssueOptions, KeyType, PkiError};

/// How long the CA certificate is valid.
const CA_DAYS: u64 = 3650;
/// How far back `not_before` is set, to tolerate clocks a little behind ours.
pub(crate) const BACKDATE: Duration = Duration::from_secs(300);

/// An open PKI directory: the axis CA and the identities it issued.
///
/// Layout (all under [`Pki::dir`]):
///
/// | path | what |
/// |---|---|
/// | `ca.pem`, `ca.key` (0600) | the CA certificate and key |
/// | `crl.pem` | the CRL, signed by the CA (written at init, rewritten by every revocation) |
/// | `serial`, `crlnumber` | next certificate serial and next CRL number (hex) |
/// | `issued.tsv`, `revoked.tsv` | every certificate issued / revoked |
/// | `hub/` | this PKI's hub: `cert.pem`, `key.pem`, `ca.pem`, `receipts.key`, `receipts.pub`, `witness.key`, `witness.pub` |
/// | `hubs/<NAME>/` | another hub of this CA (several hubs under one CA): the same files |
/// | `agencies/<CODE>/`, `operators/<NAME>/`, `auditors/<NAME>/` | `cert.pem`, `key.pem`, `ca.pem` |
///
/// Directories holding keys are `0700`, private keys `0600`. One operator
/// at a time: two processes issuing in the same directory at once may race
/// on the serial counter.
pub struct Pki {
    pub(crate) dir: PathBuf,
    pub(crate) issuer: Issuer<'static, KeyPair>,
    pub(crate) ca_pem: String,
    pub(crate) ca_der: Vec<u8>,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki").field("dir", &self.dir).finish_non_exhaustive()
    }
}

impl Pki {
    /// Create a new CA in `dir` (created `0700` if needed) for the hub
    /// `hub_name`, and issue the hub its TLS identity and receipt-signing key
    /// in `dir/hub/`.
    ///
    /// The hub certificate names `localhost`, `127.0.0.1`, `::1` and every
    /// `extra_sans` entry (an IP address if it parses as one, else a DNS
    /// name). Refuses if `dir/ca.pem` already exists.
    pub fn init(dir: &Path, hub_name: &str, extra_sans: &[String]) -> Result<Pki, PkiError> {
        let hub = Principal::Hub(hub_name.to_string());
        crate::issue::location(&hub)?;
        let ca_pem_path = dir.join("ca.pem");
        if ca_pem_path.exists() {
            return Err(PkiError::AlreadyInitialized { path: ca_pem_path });
        }
        files::private_dir(dir)?;
        let ledger = Ledger::new(dir);
        ledger.create()?;

        let key = KeyType::EcdsaP256.generate()?;
        let now = SystemTime::now();
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("Truc axis CA ({hub_name})"));
        params.distinguished_name.push(DnType::OrganizationName, "Truc");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = (now - BACKDATE).into();
        params.not_after = (now + Duration::from_secs(CA_DAYS * 86_400)).into();
        params.serial_number = Some(ledger.take_serial()?.0.into());
        let cert = params.self_signed(&key)?;

        files::write_atomic(&dir.join("ca.key"), key.serialize_pem().as_bytes(), PRIVATE)?;
        let pki = Pki {
            dir: dir.to_path_buf(),
            issuer: Issuer::new(params, key),
            ca_pem: cert.pem(),
            ca_der: cert.der().to_vec(),
        };
        pki.write_crl()?;

        let opts = IssueOptions {
            sans: extra_sans.to_vec(),
            ..IssueOptions::default()
        };
        // The hub's certificate, and its receipt key (issue_to writes one in
        // every hub identity).
        pki.issue_to(&hub, hub_name, &opts, &pki.hub_dir(), None)?;

        // Last: ca.pem marks the directory as initialised, so a failed init
        // can simply be run again.
        files::write_atomic(&ca_pem_path, pki.ca_pem.as_bytes(), PUBLIC)?;
        Ok(pki)
    }

    /// Open the CA in `dir` (made by [`Pki::init`]).
    pub fn open(dir: &Path) -> Result<Pki, PkiError> {
        let ca_pem_path = dir.join("ca.pem");
        let key_path = dir.join("ca.key");
        let ca_pem = files::read_text(&ca_pem_path)?;
        let key_pem = files::read_text(&key_path)?;
        files::check_private_key_file(&key_path)?;
        let key = KeyPair::from_pem(&key_pem)
            .map_err(|e| PkiError::bad_file(&key_path, format!("not a usable PKCS#8 private key ({e})")))?;
        let ca_der = crate::files::read_cert_ders(&ca_pem_path)?.remove(0);
        let (_, x509) = x509_parser::parse_x509_certificate(&ca_der)
            .map_err(|e| PkiError::bad_file(&ca_pem_path, format!("not a valid certificate ({e})")))?;
        if x509.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err(PkiError::bad_file(&key_path, "does not match the public key in ca.pem"));
        }
        let issuer = Issuer::from_ca_cert_der(&ca_der.as_slice().into(), key)
            .map_err(|e| PkiError::bad_file(&ca_pem_path, format!("not a usable CA certificate ({e})")))?;
        Ok(Pki {
            dir: dir.to_path_buf(),
            issuer,
            ca_pem,
            ca_der,
        })
    }

    /// The PKI directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `ca.pem`: the CA certificate, the trust anchor for everyone.
    pub fn ca_pem_path(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// `crl.pem`: the current CRL.
    pub fn crl_path(&self) -> PathBuf {
        self.dir.join("crl.pem")
    }

    /// `hub/`: the hub's identity directory.
    pub fn hub_dir(&self) -> PathBuf {
        self.dir.join("hub")
    }

    /// `hub/receipts.key`: the hub's Ed25519 receipt-signing key (PKCS#8 PEM).
    pub fn receipt_key_path(&self) -> PathBuf {
        self.hub_dir().join("receipts.key")
    }

    /// `hub/witness.key`: the hub's Ed25519 witness key (PKCS#8 PEM), which
    /// cosigns its peers' checkpoints.
    pub fn witness_key_path(&self) -> PathBuf {
        self.hub_dir().join("witness.key")
    }

    /// `hub/witness.pub`: the witness public key (SubjectPublicKeyInfo PEM).
    pub fn witness_pub_path(&self) -> PathBuf {
        self.hub_dir().join("witness.pub")
    }

    /// `hub/receipts.pub`: the receipt-signing public key (SubjectPublicKeyInfo
    /// PEM), for auditors.
    pub fn receipt_pub_path(&self) -> PathBuf {
        self.hub_dir().join("receipts.pub")
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The CA certificate, DER.
    pub fn ca_der(&self) -> &[u8] {
        &self.ca_der
    }

    /// Every certificate issued so far (from `issued.tsv`), oldest first.
    pub fn issued(&self) -> Result<Vec<IssuedCert>, PkiError> {
        Ledger::new(&self.dir).issued()
    }

    /// The identity directory [`Pki::issue`] writes for `principal`.
    pub fn identity_dir(&self, principal: &Principal) -> Result<PathBuf, PkiError> {
        if self.is_own_hub(principal) {
            return Ok(self.hub_dir());
        }
        let (kind, name) = crate::issue::location(principal)?;
        Ok(self.dir.join(kind).join(name))
    }

    /// Whether `principal` is this PKI's own hub (whose identity lives in `hub/`).
    pub(crate) fn is_own_hub(&self, principal: &Principal) -> bool {
        matches!(principal, Principal::Hub(_))
            && crate::Identity::load(&self.hub_dir()).is_ok_and(|id| &id.principal == principal)
    }
}

/// Write a hub identity's Ed25519 receipt-signing key pair into `dir`
/// (`receipts.key`, 0600, and `receipts.pub`), unless it exists: receipts
/// and checkpoints signed with it must stay verifiable, so renewing or
/// replacing the hub's TLS key keeps it.
pub(crate) fn write_receipt_key(dir: &Path) -> Result<(), PkiError> {
    let key_path = dir.join("receipts.key");
    if key_path.exists() {
        return Ok(());
    }
    let key = crate::KeyType::Ed25519.generate()?;
    files::write_atomic(&dir.join("receipts.pub"), key.public_key_pem().as_bytes(), PUBLIC)?;
    files::write_atomic(&key_path, key.serialize_pem().as_bytes(), PRIVATE)
}

/// Write a hub identity's Ed25519 witness key pair into `dir`
/// (`witness.key`, 0600, and `witness.pub`), unless it exists. The hub
/// cosigns its peers' checkpoints with it (c2sp.org/tlog-cosignature): a
/// key of its own, never the receipt key, since a cosignature does not
/// name its signer. Returns whether a key was written.
pub fn write_witness_key(dir: &Path) -> Result<bool, PkiError> {
    let key_path = dir.join("witness.key");
    if key_path.exists() {
        return Ok(false);
    }
    let key = crate::KeyType::Ed25519.generate()?;
    files::write_atomic(&dir.join("witness.pub"), key.public_key_pem().as_bytes(), PUBLIC)?;
    files::write_atomic(&key_path, key.serialize_pem().as_bytes(), PRIVATE)?;
    Ok(true)
}

/// Unix seconds of `t` (negative before 1970).
pub(crate) fn unix(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}
