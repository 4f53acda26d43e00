//! c2sp.org/tlog-cosignature v1 (Ed25519): a cosigner's (a witness's)
//! statement that, at a time, the checkpoint is the largest consistent tree
//! it has seen of that log.
//!
//! The signed message is `cosignature/v1\ntime <t>\n` followed by the
//! checkpoint's note text; the signature line carries the key ID (type
//! `0x04`), the 8-byte big-endian timestamp and the 64-byte Ed25519
//! signature. The message does not name the cosigner, so one key must
//! serve one cosigner only, and never as a log key.

use ring::signature::{Ed25519KeyPair, KeyPair};

use super::note::{
    check_key_name, check_text, ed25519_from_pkcs8, ed25519_from_seed, key_id, NoteError, NoteSignature, NoteVerifier,
    TYPE_COSIGNATURE_V1,
};

/// The message a cosigner signs for `text` at `timestamp` (POSIX seconds).
pub fn message(timestamp: u64, text: &str) -> Vec<u8> {
    format!("cosignature/v1\ntime {timestamp}\n{text}").into_bytes()
}

/// A cosignature's bytes after the key ID: (timestamp, Ed25519 signature),
/// if they are 8 + 64 bytes and the timestamp fits 63 bits.
pub(crate) fn split(sig: &[u8]) -> Option<(u64, &[u8])> {
    if sig.len() != 8 + 64 {
        return None;
    }
    let ts = u64::from_be_bytes(sig[..8].try_into().ok()?);
    (ts <= i64::MAX as u64).then_some((ts, &sig[8..]))
}

/// The timestamp of a cosignature line, POSIX seconds (its signature
/// unchecked).
pub fn timestamp(sig: &NoteSignature) -> Result<u64, NoteError> {
    split(&sig.signature).map(|(t, _)| t).ok_or_else(|| {
        NoteError::Malformed(format!(
            "{} is not an Ed25519 cosignature (8-byte time, 64-byte signature)",
            sig.key()
        ))
    })
}

/// Cosigns checkpoints with an Ed25519 key (signature type `0x04`).
pub struct Cosigner {
    name: String,
    key_id: u32,
    key: Ed25519KeyPair,
}

impl Cosigner {
    /// A cosigner named `name` for a 32-byte Ed25519 seed.
    pub fn from_seed(name: &str, seed: &[u8]) -> Result<Cosigner, NoteError> {
        Self::new(name, ed25519_from_seed(seed)?)
    }

    /// A cosigner named `name` for an Ed25519 private key in PKCS#8 DER.
    pub fn from_pkcs8(name: &str, der: &[u8]) -> Result<Cosigner, NoteError> {
        Self::new(name, ed25519_from_pkcs8(der)?)
    }

    fn new(name: &str, key: Ed25519KeyPair) -> Result<Cosigner, NoteError> {
        check_key_name(name)?;
        Ok(Cosigner {
            key_id: key_id(name, TYPE_COSIGNATURE_V1, key.public_key().as_ref()),
            name: name.to_string(),
            key,
        })
    }

    /// The verifier of this cosigner's signatures.
    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier::new(&self.name, TYPE_COSIGNATURE_V1, self.key.public_key().as_ref())
            .expect("a name this cosigner accepted and a 32-byte key")
    }

    /// The cosignature line of the checkpoint text `text` at `timestamp`
    /// (POSIX seconds, at most 2^63 − 1).
    pub fn cosign(&self, text: &str, timestamp: u64) -> Result<NoteSignature, NoteError> {
        check_text(text)?;
        if timestamp > i64::MAX as u64 {
            return Err(NoteError::Malformed(
                "a cosignature's timestamp must not exceed 2^63 - 1".into(),
            ));
        }
        let mut signature = timestamp.to_be_bytes().to_vec();
        signature.extend_from_slice(self.key.sign(&message(timestamp, text)).as_ref());
        Ok(NoteSignature {
            name: self.name.clone(),
            key_id: self.key_id,
            signature,
        })
    }
}

impl std::fmt::Debug for Cosigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Cosigner({}+{:08x})", self.name, self.key_id)
    }
}
