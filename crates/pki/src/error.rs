//! The one error type of this crate.

use std::io;
use std::path::PathBuf;

use thiserror::Error;

/// Why a PKI operation failed.
///
/// Messages are lower-case and name the file or directory involved, so an
/// operator can see at once what to fix.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PkiError {
    /// A file or directory could not be read, written or created.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// A file exists but its contents are not what was expected.
    #[error("{}: {reason}", path.display())]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An identity directory is missing a file or holds an unusable one.
    #[error("identity directory {}: {file}: {reason}", dir.display())]
    Identity {
        /// The identity directory.
        dir: PathBuf,
        /// The file inside it (`cert.pem`, `key.pem`, `ca.pem`).
        file: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A private key file may be read by its group or by others. Keys are
    /// refused then, so that a key copied with the wrong mode is noticed
    /// before it is used, not after it leaked.
    #[error(
        "{}: private key readable by {} (mode {mode:04o}); run `chmod 600 {}` (as the file's owner)",
        path.display(),
        if mode & 0o007 != 0 { "others" } else { "its group" },
        path.display()
    )]
    KeyPermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A private key file this process may not read: owned by another user
    /// and not handed to a group it is in (a container's user and a key
    /// mounted 0600 root, say). The message says who owns it and the two
    /// ways to hand it over.
    #[error(
        "{}: private key owned by uid {owner} (mode {mode:04o}) and this process runs as uid {uid}, which may not read it; \
         either `chown {uid} {}` (it stays 0600), or, as root, `chown root:{gid} {} && chmod 640 {}` (gid {gid} is this process's group)",
        path.display(), path.display(), path.display(), path.display()
    )]
    KeyOwner {
        /// The key file.
        path: PathBuf,
        /// Its owner's uid.
        owner: u32,
        /// Its permission bits.
        mode: u32,
        /// This process's effective uid.
        uid: u32,
        /// This process's effective gid.
        gid: u32,
    },
    /// `Pki::issue` was asked for a principal that already has an identity
    /// directory; [`crate::Pki::reissue`] replaces one on purpose.
    #[error(
        "{principal} already has an identity in {}/ (certificate serial {serial}); issuing again would replace its key. \
         To replace it on purpose: `truc pki issue --force` (the old certificate is kept as cert.pem.old-{serial} \
         and stays valid until revoked)",
        dir.display()
    )]
    IdentityExists {
        /// The principal's URI.
        principal: String,
        /// Its identity directory.
        dir: PathBuf,
        /// The serial of the certificate there now (hex), or `unknown`.
        serial: String,
    },
    /// `Pki::init` was asked to create a CA where one already exists.
    #[error("{}: a CA already exists here; refusing to overwrite it", path.display())]
    AlreadyInitialized {
        /// The existing `ca.pem`.
        path: PathBuf,
    },
    /// A name cannot be used as a principal or a directory name.
    #[error("invalid name {name:?}: {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// Why it was refused.
        reason: String,
    },
    /// The key type named on the command line is not supported.
    #[error("unknown key type {0:?}: expected ecdsa-p256, ed25519 or rsa-2048")]
    UnknownKeyType(String),
    /// A serial number could not be parsed, or is not one this CA issued.
    #[error("serial {serial}: {reason}")]
    Serial {
        /// The serial number as given or as hex.
        serial: String,
        /// What is wrong.
        reason: String,
    },
    /// Nothing was ever issued to the principal being revoked.
    #[error("no certificate was issued to {0}")]
    NotIssued(String),
    /// The requested validity period is empty or out of range.
    #[error("invalid validity period: {0}")]
    Validity(String),
    /// A private key could not be generated, parsed or used.
    #[error("key: {0}")]
    Key(String),
    /// rcgen refused to build a certificate or CRL.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// A generated certificate does not name the principal it was issued to.
    #[error("certificate principal: {0}")]
    Principal(#[from] truc_core::CoreError),
}

impl PkiError {
    /// An I/O error on `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        PkiError::Io {
            path: path.into(),
            source,
        }
    }

    /// A file whose contents are unusable.
    pub(crate) fn bad_file(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        PkiError::BadFile {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
