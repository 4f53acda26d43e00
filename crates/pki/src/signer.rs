//! Signing document header bytes with an identity's private key
//! (design.md invariant 2: sign the bytes, not the structure).

use std::fmt;

use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair};
use truc_proto::v1::SignatureScheme;

use crate::{KeyType, PkiError};

/// Signs bytes with a private key loaded from PKCS#8 DER.
///
/// ECDSA P-256 signatures are ASN.1 DER (`ecdsa-with-SHA256`), Ed25519
/// signatures are the raw 64 bytes, and RSA signatures use SHA-256 with
/// PKCS#1 v1.5 padding by default or PSS after [`DocumentSigner::rsa_pss`].
pub struct DocumentSigner {
    key: Key,
    pss: bool,
    rng: SystemRandom,
}

enum Key {
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
    Rsa(RsaKeyPair),
}

impl DocumentSigner {
    /// Load a private key from PKCS#8 DER (ECDSA P-256, Ed25519 or RSA).
    pub fn from_pkcs8_der(pkcs8: &[u8]) -> Result<DocumentSigner, PkiError> {
        let rng = SystemRandom::new();
        let key = if let Ok(k) = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8, &rng) {
            Key::Ecdsa(k)
        } else if let Ok(k) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8) {
            Key::Ed25519(k)
        } else {
            match RsaKeyPair::from_pkcs8(pkcs8) {
                Ok(k) => Key::Rsa(k),
                Err(e) => {
                    return Err(PkiError::Key(format!(
                        "not a usable ECDSA P-256, Ed25519 or RSA (2048-4096 bit) PKCS#8 private key ({e})"
                    )))
                }
            }
        };
        Ok(DocumentSigner { key, pss: false, rng })
    }

    /// Use RSA-PSS (SHA-256, MGF1-SHA-256, 32-byte salt) instead of PKCS#1
    /// v1.5 when `on`. Has no effect on ECDSA and Ed25519 keys.
    #[must_use]
    pub fn rsa_pss(mut self, on: bool) -> Self {
        self.pss = on;
        self
    }

    /// The type of the key (an RSA key of any supported size is `Rsa2048`).
    pub fn key_type(&self) -> KeyType {
        match self.key {
            Key::Ecdsa(_) => KeyType::EcdsaP256,
            Key::Ed25519(_) => KeyType::Ed25519,
            Key::Rsa(_) => KeyType::Rsa2048,
        }
    }

    /// The `truc.v1.SignatureScheme` value to send with the signature:
    /// unspecified for ECDSA and Ed25519, PKCS#1 v1.5 or PSS for RSA.
    pub fn scheme(&self) -> i32 {
        let scheme = match (&self.key, self.pss) {
            (Key::Rsa(_), false) => SignatureScheme::RsaPkcs1Sha256,
            (Key::Rsa(_), true) => SignatureScheme::RsaPssSha256,
            _ => SignatureScheme::Unspecified,
        };
        scheme as i32
    }

    /// The public key as it appears in a certificate's SubjectPublicKeyInfo
    /// bit string (uncompressed point, raw Ed25519 key, or RSAPublicKey DER).
    pub fn public_key(&self) -> &[u8] {
        match &self.key {
            Key::Ecdsa(k) => k.public_key().as_ref(),
            Key::Ed25519(k) => k.public_key().as_ref(),
            Key::Rsa(k) => k.public_key().as_ref(),
        }
    }

    /// Sign `msg` (for a document: exactly the serialized header bytes).
    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, PkiError> {
        let failed = |_| PkiError::Key("signing failed".into());
        match &self.key {
            Key::Ecdsa(k) => Ok(k.sign(&self.rng, msg).map_err(failed)?.as_ref().to_vec()),
            Key::Ed25519(k) => Ok(k.sign(msg).as_ref().to_vec()),
            Key::Rsa(k) => {
                let padding: &'static dyn signature::RsaEncoding = if self.pss {
                    &signature::RSA_PSS_SHA256
                } else {
                    &signature::RSA_PKCS1_SHA256
                };
                let mut sig = vec![0u8; k.public().modulus_len()];
                k.sign(padding, &self.rng, msg, &mut sig).map_err(failed)?;
                Ok(sig)
            }
        }
    }
}

impl fmt::Debug for DocumentSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DocumentSigner")
            .field("key_type", &self.key_type())
            .field("pss", &self.pss)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_garbage_keys() {
        let err = DocumentSigner::from_pkcs8_der(b"not a key").unwrap_err().to_string();
        assert!(err.contains("PKCS#8"), "{err}");
    }

    #[test]
    fn scheme_values() {
        let kp = KeyType::EcdsaP256.generate().unwrap();
        let s = DocumentSigner::from_pkcs8_der(kp.serialized_der())
            .unwrap()
            .rsa_pss(true);
        assert_eq!(s.key_type(), KeyType::EcdsaP256);
        assert_eq!(s.scheme(), 0);
        let kp = KeyType::Ed25519.generate().unwrap();
        let s = DocumentSigner::from_pkcs8_der(kp.serialized_der()).unwrap();
        assert_eq!(s.key_type(), KeyType::Ed25519);
        assert_eq!(s.sign(b"x").unwrap().len(), 64);
    }
}
