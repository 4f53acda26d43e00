//! Identity directories: a principal's certificate, key and CA on disk.

use std::fs;
use std::path::Path;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use truc_core::Principal;

use crate::{DocumentSigner, PkiError};

/// A principal's credentials, loaded from an identity directory
/// (`cert.pem`, `key.pem`, `ca.pem`).
///
/// This is what `--identity` points at: clients use it for mTLS and agencies
/// also sign documents with it.
#[derive(Clone)]
pub struct Identity {
    /// The principal the certificate names (its one SAN URI).
    pub principal: Principal,
    /// `cert.pem` as read.
    pub cert_pem: String,
    /// `key.pem` as read.
    pub key_pem: String,
    /// `ca.pem` as read.
    pub ca_pem: String,
    /// The certificate (first block of `cert.pem`), DER.
    pub cert_der: Vec<u8>,
    /// The private key, PKCS#8 DER (a PKCS#1 RSA key is converted).
    pub key_pkcs8_der: Vec<u8>,
    /// The CA certificate (first block of `ca.pem`), DER.
    pub ca_der: Vec<u8>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("principal", &self.principal)
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// Load the identity directory `dir`.
    ///
    /// Fails, naming the directory and the file, if a file is missing or
    /// unreadable, the key may be read by group or others (with the `chmod`
    /// to run), the certificate does not name exactly one principal, or
    /// the key does not belong to the certificate.
    pub fn load(dir: &Path) -> Result<Identity, PkiError> {
        let err = |file: &'static str, reason: String| PkiError::Identity {
            dir: dir.to_path_buf(),
            file,
            reason,
        };
        let read = |file: &'static str| fs::read_to_string(dir.join(file)).map_err(|e| err(file, io_reason(&e)));
        let cert_pem = read("cert.pem")?;
        let key_pem = read("key.pem")?;
        crate::files::check_private_key_file(dir.join("key.pem"))?;
        let ca_pem = read("ca.pem")?;

        let cert_der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| err("cert.pem", format!("no usable CERTIFICATE block ({e})")))?
            .to_vec();
        let ca_der = CertificateDer::from_pem_slice(ca_pem.as_bytes())
            .map_err(|e| err("ca.pem", format!("no usable CERTIFICATE block ({e})")))?
            .to_vec();
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| err("key.pem", format!("no usable PRIVATE KEY block ({e})")))?;
        let key_pkcs8_der = crate::keys::to_pkcs8(key).map_err(|r| err("key.pem", r))?;

        let principal = Principal::from_cert_der(&cert_der).map_err(|e| err("cert.pem", e.to_string()))?;
        let signer = DocumentSigner::from_pkcs8_der(&key_pkcs8_der).map_err(|e| err("key.pem", e.to_string()))?;
        let (_, x509) = x509_parser::parse_x509_certificate(&cert_der)
            .map_err(|e| err("cert.pem", format!("not a valid certificate ({e})")))?;
        if x509.public_key().subject_public_key.data.as_ref() != signer.public_key() {
            return Err(err("key.pem", "does not match the public key in cert.pem".into()));
        }

        Ok(Identity {
            principal,
            cert_pem,
            key_pem,
            ca_pem,
            cert_der,
            key_pkcs8_der,
            ca_der,
        })
    }

    /// A signer for documents, using this identity's private key.
    pub fn signer(&self) -> Result<DocumentSigner, PkiError> {
        DocumentSigner::from_pkcs8_der(&self.key_pkcs8_der)
    }
}

/// An I/O error in words, without the `(os error N)` suffix.
fn io_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}
