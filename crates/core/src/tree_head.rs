//! Signed tree heads: the hub's Ed25519 signature over the state of the
//! receipt log, and the offline checks a client or auditor runs with nothing
//! but the hub's public key (design invariant 5).
//!
//! The signature covers exactly the serialized `TreeHead` bytes carried in
//! `SignedTreeHead.tree_head`; they are decoded only after it verifies.

use std::fmt;

use prost::Message;
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::SubjectPublicKeyInfoDer;
use truc_proto::v1::{ProvenReceipt, Receipt, SignedTreeHead, TreeHead};

use crate::merkle::{self, Hash};
use crate::CoreError;

/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): SEQUENCE {
/// SEQUENCE { OID 1.3.101.112 }, BIT STRING (33 bytes, 0 unused bits) },
/// followed by the 32-byte public key.
const ED25519_SPKI_PREFIX: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

/// The length of an Ed25519 SubjectPublicKeyInfo in DER.
const ED25519_SPKI_LEN: usize = ED25519_SPKI_PREFIX.len() + 32;

fn spki_der(public_key: &[u8]) -> Vec<u8> {
    let mut der = Vec::with_capacity(ED25519_SPKI_LEN);
    der.extend_from_slice(&ED25519_SPKI_PREFIX);
    der.extend_from_slice(public_key);
    der
}

fn bad(why: &str) -> CoreError {
    CoreError::BadProof(why.to_owned())
}

/// Signs tree heads with the hub's receipt key (Ed25519).
pub struct TreeHeadSigner {
    key: Ed25519KeyPair,
    key_id: [u8; 32],
}

impl TreeHeadSigner {
    /// Loads an Ed25519 private key from PKCS#8 DER (v1 or v2).
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, CoreError> {
        let key = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
            .map_err(|_| CoreError::BadKey("the receipt key is not an Ed25519 PKCS#8 private key".into()))?;
        let key_id = crate::sha256(&spki_der(key.public_key().as_ref()));
        Ok(Self { key, key_id })
    }

    /// The public key as SubjectPublicKeyInfo DER.
    pub fn public_key_spki_der(&self) -> Vec<u8> {
        spki_der(self.key.public_key().as_ref())
    }

    /// SHA-256 of [`public_key_spki_der`](Self::public_key_spki_der).
    pub fn key_id(&self) -> [u8; 32] {
        self.key_id
    }

    /// A verifier for this signer's public key.
    pub fn verifier(&self) -> TreeHeadVerifier {
        TreeHeadVerifier {
            public_key: self.key.public_key().as_ref().to_vec(),
            key_id: self.key_id,
        }
    }

    /// Signs the tree head of a log of `tree_size` leaves with root `root`,
    /// committed at `time_unix_ms`: serializes a `TreeHead`, signs exactly
    /// those bytes and names the key by its id.
    pub fn sign(&self, tree_size: u64, root: &Hash, time_unix_ms: i64) -> SignedTreeHead {
        let tree_head = TreeHead {
            tree_size,
            root_hash: root.to_vec(),
            time_unix_ms,
        }
        .encode_to_vec();
        let signature = self.key.sign(&tree_head).as_ref().to_vec();
        SignedTreeHead {
            tree_head,
            signature,
            key_id: self.key_id.to_vec(),
        }
    }
}

impl fmt::Debug for TreeHeadSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TreeHeadSigner")
            .field("key_id", &crate::hex(&self.key_id))
            .finish_non_exhaustive()
    }
}

/// Checks signed tree heads and proven receipts against the hub's public
/// receipt key.
#[derive(Clone, PartialEq, Eq)]
pub struct TreeHeadVerifier {
    public_key: Vec<u8>,
    key_id: [u8; 32],
}

impl TreeHeadVerifier {
    /// Loads an Ed25519 public key from SubjectPublicKeyInfo DER.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, CoreError> {
        match der.strip_prefix(&ED25519_SPKI_PREFIX) {
            Some(key) if key.len() == 32 => Ok(Self {
                public_key: key.to_vec(),
                key_id: crate::sha256(der),
            }),
            _ => Err(CoreError::BadKey(
                "expected an Ed25519 public key (SubjectPublicKeyInfo DER)".into(),
            )),
        }
    }

    /// The verifier of a raw Ed25519 public key (as a c2sp verifier key
    /// carries a hub's receipt key).
    pub fn from_ed25519(key: &[u8; 32]) -> Self {
        let mut der = ED25519_SPKI_PREFIX.to_vec();
        der.extend_from_slice(key);
        Self {
            public_key: key.to_vec(),
            key_id: crate::sha256(&der),
        }
    }

    /// Loads an Ed25519 public key from PEM text
    /// (`-----BEGIN PUBLIC KEY-----`); other PEM sections are skipped.
    pub fn from_pem(pem: &str) -> Result<Self, CoreError> {
        let der = SubjectPublicKeyInfoDer::from_pem_slice(pem.as_bytes())
            .map_err(|_| CoreError::BadKey("expected a PEM \"PUBLIC KEY\" section".into()))?;
        Self::from_spki_der(der.as_ref())
    }

    /// The public key as SubjectPublicKeyInfo DER.
    pub fn public_key_spki_der(&self) -> Vec<u8> {
        spki_der(&self.public_key)
    }

    /// SHA-256 of [`public_key_spki_der`](Self::public_key_spki_der).
    pub fn key_id(&self) -> [u8; 32] {
        self.key_id
    }

    /// Checks a signed tree head: the key id names this key, the Ed25519
    /// signature verifies over exactly the `tree_head` bytes, and those
    /// bytes decode to a `TreeHead` with a 32-byte root hash.
    pub fn verify(&self, sth: &SignedTreeHead) -> Result<TreeHead, CoreError> {
        if sth.key_id.as_slice() != self.key_id.as_slice() {
            return Err(bad("tree head is signed with another key"));
        }
        UnparsedPublicKey::new(&ED25519, &self.public_key)
            .verify(&sth.tree_head, &sth.signature)
            .map_err(|_| bad("tree head signature does not verify"))?;
        let head = TreeHead::decode(sth.tree_head.as_slice()).map_err(|_| bad("signed tree head is malformed"))?;
        if head.root_hash.len() != 32 {
            return Err(bad("tree head root hash is not 32 bytes"));
        }
        Ok(head)
    }

    /// Checks a receipt handed out by the hub: its signed tree head
    /// verifies, the receipt decodes, the receipt bytes are leaf
    /// `receipt.index` of that tree head's tree (by the inclusion proof),
    /// and the unsigned copies `leaf_index` and `tree_size`, when the hub
    /// filled them (`tree_size` ≠ 0), equal the signed values.
    pub fn verify_proven_receipt(&self, r: &ProvenReceipt) -> Result<(Receipt, TreeHead), CoreError> {
        let sth = r
            .tree_head
            .as_ref()
            .ok_or_else(|| bad("proven receipt has no tree head"))?;
        let head = self.verify(sth)?;
        let receipt = Receipt::decode(r.receipt.as_slice()).map_err(|_| bad("receipt is malformed"))?;
        if r.tree_size != 0 && (r.leaf_index, r.tree_size) != (receipt.index, head.tree_size) {
            return Err(CoreError::BadProof(format!(
                "leaf_index {} and tree_size {} disagree with the signed receipt index {} and tree size {}",
                r.leaf_index, r.tree_size, receipt.index, head.tree_size
            )));
        }
        let proof = r
            .inclusion_proof
            .iter()
            .map(|h| Hash::try_from(h.as_slice()))
            .collect::<Result<Vec<Hash>, _>>()
            .map_err(|_| bad("inclusion proof hash is not 32 bytes"))?;
        let root = Hash::try_from(head.root_hash.as_slice()).map_err(|_| bad("tree head root hash is not 32 bytes"))?;
        let leaf = merkle::leaf_hash(&r.receipt);
        merkle::verify_inclusion(&leaf, receipt.index, head.tree_size, &proof, &root)?;
        Ok((receipt, head))
    }
}

impl fmt::Debug for TreeHeadVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TreeHeadVerifier")
            .field("key_id", &crate::hex(&self.key_id))
            .finish()
    }
}

#[cfg(test)]
mod tests;
