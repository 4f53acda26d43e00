//! Key types and key generation.

use std::fmt;
use std::str::FromStr;

use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_ED25519, PKCS_RSA_SHA256};
use rustls_pki_types::PrivatePkcs8KeyDer;

use crate::PkiError;

/// The kind of key an identity holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum KeyType {
    /// ECDSA on P-256 with SHA-256 (the default).
    #[default]
    EcdsaP256,
    /// Ed25519.
    Ed25519,
    /// RSA with a 2048-bit modulus (signatures with SHA-256, PKCS#1 v1.5 or PSS).
    Rsa2048,
}

impl KeyType {
    /// The canonical name: `ecdsa-p256`, `ed25519` or `rsa-2048`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::EcdsaP256 => "ecdsa-p256",
            KeyType::Ed25519 => "ed25519",
            KeyType::Rsa2048 => "rsa-2048",
        }
    }

    /// Generate a fresh key of this type.
    ///
    /// RSA keys are generated with the `rsa` crate (ring cannot generate
    /// them) and take a noticeable fraction of a second.
    pub(crate) fn generate(self) -> Result<KeyPair, PkiError> {
        match self {
            KeyType::EcdsaP256 => Ok(KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?),
            KeyType::Ed25519 => {
                let der = ed25519_pkcs8_v1()?;
                Ok(KeyPair::from_pkcs8_der_and_sign_algo(
                    &PrivatePkcs8KeyDer::from(der.as_slice()),
                    &PKCS_ED25519,
                )?)
            }
            KeyType::Rsa2048 => {
                use rsa::pkcs8::EncodePrivateKey;
                let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048)
                    .map_err(|e| PkiError::Key(format!("rsa key generation failed: {e}")))?;
                let der = key
                    .to_pkcs8_der()
                    .map_err(|e| PkiError::Key(format!("rsa key encoding failed: {e}")))?;
                let pkcs8 = PrivatePkcs8KeyDer::from(der.as_bytes());
                Ok(KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8, &PKCS_RSA_SHA256)?)
            }
        }
    }
}

impl KeyType {
    /// An existing key of this type, from its PKCS#8 DER (renewing a
    /// certificate for the same key).
    pub(crate) fn load(self, pkcs8: &[u8]) -> Result<KeyPair, PkiError> {
        let alg = match self {
            KeyType::EcdsaP256 => &PKCS_ECDSA_P256_SHA256,
            KeyType::Ed25519 => &PKCS_ED25519,
            KeyType::Rsa2048 => &PKCS_RSA_SHA256,
        };
        Ok(KeyPair::from_pkcs8_der_and_sign_algo(
            &PrivatePkcs8KeyDer::from(pkcs8),
            alg,
        )?)
    }
}

/// A new Ed25519 private key as PKCS#8 v1 (RFC 8410: the seed only).
///
/// ring writes PKCS#8 v2 (with the public key), which OpenSSL before 3.5 and
/// Python's `cryptography` refuse; v1 is what every library reads.
fn ed25519_pkcs8_v1() -> Result<Vec<u8>, PkiError> {
    const PREFIX: [u8; 16] = [
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
    ];
    let mut der = PREFIX.to_vec();
    let mut seed = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed)
        .map_err(|_| PkiError::Key("no randomness for an Ed25519 key".into()))?;
    der.extend_from_slice(&seed);
    Ok(der)
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyType {
    type Err = PkiError;

    /// Accepts `ecdsa-p256` (also `ecdsa`, `p256`), `ed25519`, and
    /// `rsa-2048` (also `rsa`, `rsa2048`), ignoring case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ecdsa-p256" | "ecdsa" | "p256" | "p-256" | "ecdsa-p-256" => Ok(KeyType::EcdsaP256),
            "ed25519" => Ok(KeyType::Ed25519),
            "rsa-2048" | "rsa" | "rsa2048" => Ok(KeyType::Rsa2048),
            _ => Err(PkiError::UnknownKeyType(s.to_string())),
        }
    }
}

/// Turn the DER of a private key in any of the forms a government CA may
/// hand out (PKCS#8, or PKCS#1 `RSA PRIVATE KEY`) into PKCS#8.
pub(crate) fn to_pkcs8(key: rustls_pki_types::PrivateKeyDer<'_>) -> Result<Vec<u8>, String> {
    use rustls_pki_types::PrivateKeyDer;
    match key {
        PrivateKeyDer::Pkcs8(k) => Ok(k.secret_pkcs8_der().to_vec()),
        PrivateKeyDer::Pkcs1(k) => {
            use rsa::pkcs1::DecodeRsaPrivateKey;
            use rsa::pkcs8::EncodePrivateKey;
            let key = rsa::RsaPrivateKey::from_pkcs1_der(k.secret_pkcs1_der())
                .map_err(|e| format!("not a valid RSA PRIVATE KEY ({e})"))?;
            let der = key
                .to_pkcs8_der()
                .map_err(|e| format!("cannot convert the RSA key to PKCS#8 ({e})"))?;
            Ok(der.as_bytes().to_vec())
        }
        PrivateKeyDer::Sec1(_) => {
            Err("EC PRIVATE KEY (SEC1) is not supported; convert it to PKCS#8 (PRIVATE KEY)".into())
        }
        _ => Err("unsupported private key format; expected PKCS#8 (PRIVATE KEY)".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_type_names() {
        assert_eq!("ecdsa-p256".parse::<KeyType>().unwrap(), KeyType::EcdsaP256);
        assert_eq!("Ed25519".parse::<KeyType>().unwrap(), KeyType::Ed25519);
        assert_eq!("rsa".parse::<KeyType>().unwrap(), KeyType::Rsa2048);
        assert_eq!("rsa-2048".parse::<KeyType>().unwrap(), KeyType::Rsa2048);
        assert_eq!(KeyType::default(), KeyType::EcdsaP256);
        for kt in [KeyType::EcdsaP256, KeyType::Ed25519, KeyType::Rsa2048] {
            assert_eq!(kt.to_string().parse::<KeyType>().unwrap(), kt);
        }
        let err = "dsa".parse::<KeyType>().unwrap_err().to_string();
        assert!(err.contains("unknown key type \"dsa\""), "{err}");
    }
}
