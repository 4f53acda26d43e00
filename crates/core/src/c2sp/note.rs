//! c2sp.org/signed-note: a text ending in a newline, a blank line, then
//! signature lines `— <key name> base64(key ID || signature)`.
//!
//! Verification follows the specification: signatures from keys the
//! verifier does not know (by name *and* key ID) are ignored; a known key's
//! signature that fails rejects the whole note; a note with no verified
//! signature from a known key is rejected.

use std::fmt;

use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};

use super::{b64, unb64};

/// Signature type `0x01`: Ed25519 over the note text.
pub const TYPE_ED25519: u8 = 0x01;
/// Signature type `0x04`: a timestamped Ed25519 witness cosignature
/// (c2sp.org/tlog-cosignature v1).
pub const TYPE_COSIGNATURE_V1: u8 = 0x04;
/// Signature lines accepted in one note (the specification asks for at
/// least 16; golang.org/x/mod/sumdb/note accepts 100).
pub const MAX_SIGNATURES: usize = 100;
/// Largest note accepted, bytes: a checkpoint with its cosignatures is a
/// few hundred bytes.
pub const MAX_NOTE_BYTES: usize = 64 * 1024;

/// The em dash and space that open a signature line.
const SIG_PREFIX: &str = "\u{2014} ";

/// Why a note, a key or a signature was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// The note does not follow the format (said how).
    #[error("malformed note: {0}")]
    Malformed(String),
    /// A verifier or signer key that cannot be used.
    #[error("bad note key: {0}")]
    BadKey(String),
    /// A known key's signature does not verify.
    #[error("the signature of {0} does not verify")]
    BadSignature(String),
    /// None of the keys the verifier knows signed the note.
    #[error("the note is not signed by {0}")]
    NotSigned(String),
    /// The note's text is not what the caller expects (a checkpoint, …).
    #[error("{0}")]
    Text(String),
}

fn malformed(why: &str) -> NoteError {
    NoteError::Malformed(why.to_string())
}

/// The key ID recommended by the specification:
/// `SHA-256(key name || 0x0A || signature type || public key)[:4]`,
/// big-endian.
pub fn key_id(name: &str, signature_type: u8, public_key: &[u8]) -> u32 {
    let mut buf = Vec::with_capacity(name.len() + 2 + public_key.len());
    buf.extend_from_slice(name.as_bytes());
    buf.push(b'\n');
    buf.push(signature_type);
    buf.extend_from_slice(public_key);
    let h = crate::sha256(&buf);
    u32::from_be_bytes([h[0], h[1], h[2], h[3]])
}

/// A key name: non-empty, without Unicode spaces or `+`.
pub fn is_key_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == '+')
}

/// Refuses a key name the format does not allow.
pub(crate) fn check_key_name(name: &str) -> Result<(), NoteError> {
    if is_key_name(name) {
        Ok(())
    } else {
        Err(NoteError::BadKey(format!(
            "key name {name:?} is empty or has a space or '+'"
        )))
    }
}

/// An Ed25519 private key from PKCS#8 DER (v1 or v2).
pub(crate) fn ed25519_from_pkcs8(der: &[u8]) -> Result<Ed25519KeyPair, NoteError> {
    Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
        .map_err(|_| NoteError::BadKey("not an Ed25519 PKCS#8 private key".into()))
}

/// An Ed25519 private key from its 32-byte seed.
pub(crate) fn ed25519_from_seed(seed: &[u8]) -> Result<Ed25519KeyPair, NoteError> {
    Ed25519KeyPair::from_seed_unchecked(seed).map_err(|_| NoteError::BadKey("an Ed25519 seed is 32 bytes".into()))
}

/// Checks a note's text as a signer must: UTF-8 ending in a newline,
/// without ASCII control characters but the newline.
pub fn check_text(text: &str) -> Result<(), NoteError> {
    if !text.ends_with('\n') {
        return Err(malformed("the text must end with a newline"));
    }
    if text.bytes().any(|b| b < 0x20 && b != b'\n') {
        return Err(malformed(
            "the text contains an ASCII control character other than newline",
        ));
    }
    Ok(())
}

/// One signature line: the key's name, its ID, and the signature bytes
/// that follow the ID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteSignature {
    /// The key name.
    pub name: String,
    /// The key ID.
    pub key_id: u32,
    /// The bytes after the key ID (for a cosignature: timestamp and
    /// signature).
    pub signature: Vec<u8>,
}

impl NoteSignature {
    /// The line, `— <name> base64(id || signature)\n`.
    pub fn line(&self) -> String {
        let mut raw = self.key_id.to_be_bytes().to_vec();
        raw.extend_from_slice(&self.signature);
        format!("{SIG_PREFIX}{} {}\n", self.name, b64(&raw))
    }

    pub(crate) fn parse_line(line: &str) -> Result<NoteSignature, NoteError> {
        let rest = line
            .strip_prefix(SIG_PREFIX)
            .ok_or_else(|| malformed("a signature line must start with an em dash (U+2014) and a space"))?;
        let (name, sig64) = rest
            .split_once(' ')
            .ok_or_else(|| malformed("a signature line is `— <key name> <base64 signature>`"))?;
        if !is_key_name(name) {
            return Err(malformed("a key name must be non-empty, without spaces or '+'"));
        }
        let raw = unb64(sig64).ok_or_else(|| malformed("a signature is not valid base64"))?;
        if raw.len() < 5 {
            return Err(malformed("a signature is shorter than its 4-byte key ID and one byte"));
        }
        Ok(NoteSignature {
            name: name.to_string(),
            key_id: u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]),
            signature: raw[4..].to_vec(),
        })
    }

    /// `name+keyid` in hex, as keys are named in messages.
    pub fn key(&self) -> String {
        format!("{}+{:08x}", self.name, self.key_id)
    }
}

/// A parsed note: its text and its signature lines, none verified yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// The signed text, final newline included.
    pub text: String,
    /// The signature lines in order.
    pub signatures: Vec<NoteSignature>,
}

impl Note {
    /// Parses a signed note's syntax (nothing is verified): valid UTF-8
    /// without control characters but newlines, the text ending in a
    /// newline, the last blank line, then 1 to [`MAX_SIGNATURES`] well-formed
    /// signature lines, each ending in a newline.
    pub fn parse(bytes: &[u8]) -> Result<Note, NoteError> {
        if bytes.len() > MAX_NOTE_BYTES {
            return Err(malformed("the note is too large"));
        }
        let s = std::str::from_utf8(bytes).map_err(|_| malformed("the note is not valid UTF-8"))?;
        if s.bytes().any(|b| b < 0x20 && b != b'\n') {
            return Err(malformed(
                "the note contains an ASCII control character other than newline",
            ));
        }
        let split = s
            .rfind("\n\n")
            .ok_or_else(|| malformed("no blank line separates the text from the signatures"))?;
        let (text, sigs) = (&s[..split + 1], &s[split + 2..]);
        if !sigs.ends_with('\n') {
            return Err(malformed("the last signature line does not end with a newline"));
        }
        let lines: Vec<&str> = sigs[..sigs.len() - 1].split('\n').collect();
        if lines.len() > MAX_SIGNATURES {
            return Err(malformed("too many signatures"));
        }
        let signatures = lines
            .into_iter()
            .map(NoteSignature::parse_line)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Note {
            text: text.to_string(),
            signatures,
        })
    }

    /// The note as text: the text, a blank line, the signature lines.
    pub fn to_text(&self) -> String {
        let mut out = self.text.clone();
        out.push('\n');
        for s in &self.signatures {
            out.push_str(&s.line());
        }
        out
    }

    /// Checks the signatures of the keys in `verifiers`, as the
    /// specification says: lines of unknown keys are ignored, a known key's
    /// line that fails rejects the note, and at least one must verify.
    /// Returns the verifiers (by index) whose signature verified.
    pub fn verify(&self, verifiers: &[&NoteVerifier]) -> Result<Vec<usize>, NoteError> {
        let mut verified = Vec::new();
        for sig in &self.signatures {
            let known = verifiers
                .iter()
                .position(|v| v.name == sig.name && v.key_id == sig.key_id);
            let Some(i) = known else { continue };
            if !verifiers[i].check(&self.text, &sig.signature) {
                return Err(NoteError::BadSignature(sig.key()));
            }
            if !verified.contains(&i) {
                verified.push(i);
            }
        }
        if verified.is_empty() {
            let keys: Vec<String> = verifiers.iter().map(|v| v.key()).collect();
            let keys = if keys.is_empty() {
                "any known key".to_string()
            } else {
                keys.join(" or ")
            };
            return Err(NoteError::NotSigned(keys));
        }
        Ok(verified)
    }
}

/// Signs note texts with an Ed25519 key (signature type `0x01`).
pub struct NoteSigner {
    name: String,
    key_id: u32,
    key: Ed25519KeyPair,
}

impl NoteSigner {
    /// A signer named `name` for an Ed25519 private key in PKCS#8 DER (v1
    /// or v2), such as the hub's `receipts.key`.
    pub fn from_pkcs8(name: &str, der: &[u8]) -> Result<NoteSigner, NoteError> {
        Self::new(name, ed25519_from_pkcs8(der)?)
    }

    /// A signer named `name` for a 32-byte Ed25519 seed (RFC 8032 private
    /// key).
    pub fn from_seed(name: &str, seed: &[u8]) -> Result<NoteSigner, NoteError> {
        Self::new(name, ed25519_from_seed(seed)?)
    }

    fn new(name: &str, key: Ed25519KeyPair) -> Result<NoteSigner, NoteError> {
        check_key_name(name)?;
        let key_id = key_id(name, TYPE_ED25519, key.public_key().as_ref());
        Ok(NoteSigner {
            name: name.to_string(),
            key_id,
            key,
        })
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key ID.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The 32-byte Ed25519 public key.
    pub fn public_key(&self) -> [u8; 32] {
        let mut k = [0u8; 32];
        k.copy_from_slice(self.key.public_key().as_ref());
        k
    }

    /// The verifier of this signer's notes.
    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.name.clone(),
            key_id: self.key_id,
            signature_type: TYPE_ED25519,
            public_key: self.public_key(),
        }
    }

    /// The signature line for `text` (which [`check_text`] must accept).
    pub fn sign(&self, text: &str) -> Result<NoteSignature, NoteError> {
        check_text(text)?;
        Ok(NoteSignature {
            name: self.name.clone(),
            key_id: self.key_id,
            signature: self.key.sign(text.as_bytes()).as_ref().to_vec(),
        })
    }

    /// `text` signed: a complete note.
    pub fn sign_note(&self, text: &str) -> Result<String, NoteError> {
        let sig = self.sign(text)?;
        Ok(Note {
            text: text.to_string(),
            signatures: vec![sig],
        }
        .to_text())
    }
}

impl fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NoteSigner({}+{:08x})", self.name, self.key_id)
    }
}

/// Checks one key's signatures: an Ed25519 note key (type `0x01`) or an
/// Ed25519 cosigner key (type `0x04`), from its verifier key text.
#[derive(Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    pub(crate) name: String,
    pub(crate) key_id: u32,
    pub(crate) signature_type: u8,
    pub(crate) public_key: [u8; 32],
}

impl NoteVerifier {
    /// An Ed25519 verifier for `name` and a 32-byte public key, of
    /// `signature_type` [`TYPE_ED25519`] or [`TYPE_COSIGNATURE_V1`].
    pub fn new(name: &str, signature_type: u8, public_key: &[u8]) -> Result<NoteVerifier, NoteError> {
        check_key_name(name)?;
        if !matches!(signature_type, TYPE_ED25519 | TYPE_COSIGNATURE_V1) {
            return Err(NoteError::BadKey(format!(
                "signature type 0x{signature_type:02x} is not supported (0x01 Ed25519, 0x04 Ed25519 cosignature)"
            )));
        }
        let public_key: [u8; 32] = public_key
            .try_into()
            .map_err(|_| NoteError::BadKey("an Ed25519 public key is 32 bytes".into()))?;
        Ok(NoteVerifier {
            name: name.to_string(),
            key_id: key_id(name, signature_type, &public_key),
            signature_type,
            public_key,
        })
    }

    /// Parses a verifier key, `<name>+<hex key ID>+<base64(type || key)>`,
    /// checking that the key ID is the one the name and key give.
    pub fn from_vkey(vkey: &str) -> Result<NoteVerifier, NoteError> {
        let bad = |why: &str| NoteError::BadKey(format!("verifier key {vkey:?}: {why}"));
        let (name, rest) = vkey.split_once('+').ok_or_else(|| bad("expected name+keyid+key"))?;
        let (id_hex, key64) = rest.split_once('+').ok_or_else(|| bad("expected name+keyid+key"))?;
        if id_hex.len() != 8 || !id_hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad("the key ID is not 8 hexadecimal digits"));
        }
        let id = u32::from_str_radix(id_hex, 16).map_err(|_| bad("the key ID is not hexadecimal"))?;
        let raw = unb64(key64).ok_or_else(|| bad("the key is not valid base64"))?;
        let (&ty, key) = raw.split_first().ok_or_else(|| bad("the key is empty"))?;
        let v = NoteVerifier::new(name, ty, key).map_err(|e| bad(&e.to_string()))?;
        if v.key_id != id {
            return Err(bad("the key ID does not match the name and key"));
        }
        Ok(v)
    }

    /// The verifier key text, `<name>+<hex key ID>+<base64(type || key)>`.
    pub fn vkey(&self) -> String {
        let mut raw = vec![self.signature_type];
        raw.extend_from_slice(&self.public_key);
        format!("{}+{:08x}+{}", self.name, self.key_id, b64(&raw))
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key ID.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The signature type (`0x01` or `0x04`).
    pub fn signature_type(&self) -> u8 {
        self.signature_type
    }

    /// The Ed25519 public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.public_key
    }

    /// `name+keyid`, as keys are named in messages.
    pub fn key(&self) -> String {
        format!("{}+{:08x}", self.name, self.key_id)
    }

    /// Whether `signature` (the bytes after the key ID) is this key's over
    /// `text`.
    fn check(&self, text: &str, signature: &[u8]) -> bool {
        let key = UnparsedPublicKey::new(&ED25519, &self.public_key);
        match self.signature_type {
            TYPE_ED25519 => key.verify(text.as_bytes(), signature).is_ok(),
            TYPE_COSIGNATURE_V1 => {
                let Some((ts, sig)) = super::cosignature::split(signature) else {
                    return false;
                };
                key.verify(&super::cosignature::message(ts, text), sig).is_ok()
            }
            _ => false,
        }
    }
}

impl fmt::Debug for NoteVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NoteVerifier({})", self.vkey())
    }
}
