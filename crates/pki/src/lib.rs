//! Truc's PKI: the axis's own certificate authority (made with rcgen),
//! identity directories on disk, revocation lists, and document signing
//! with an identity's key.
//!
//! `truc pki init|issue|revoke` is a thin layer over [`Pki`]; clients load
//! an [`Identity`] for mTLS and sign documents with its
//! [`DocumentSigner`]; the hub reads its trust anchors and CRL with
//! [`read_cert_ders`] and [`read_crl_ders`].
//!
//! Every certificate names exactly one principal in a SAN URI
//! (`urn:truc:agency:<code>`, …; design.md invariant 1), and [`Pki::issue`]
//! checks that the certificate it made parses back to that principal.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod ca;
mod crl;
mod error;
mod files;
mod identity;
mod issue;
mod keys;
mod ledger;
mod lifecycle;
mod signer;

pub use ca::{write_witness_key, Pki};
pub use crl::CRL_VALIDITY;
pub use error::PkiError;
pub use files::{check_private_key_file, read_cert_ders, read_crl_ders, write_atomic};
pub use identity::Identity;
pub use issue::{IssueOptions, Reissued, Usage};
pub use keys::KeyType;
pub use ledger::{IssuedCert, Serial};
pub use lifecycle::{CertInfo, Listed};
pub use signer::DocumentSigner;
