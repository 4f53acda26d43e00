//! The transparency-log community's text formats, so that hubs (and any
//! other witness or monitor) can check each other's receipt logs:
//!
//! - [`note`]: c2sp.org/signed-note, text signed by one or more named
//!   keys, with Ed25519 signatures (type `0x01`) and verifier keys
//!   (`name+keyid+base64(type||key)`);
//! - [`checkpoint`]: c2sp.org/tlog-checkpoint, a note whose text is a
//!   log's origin, tree size and root hash;
//! - [`cosignature`]: c2sp.org/tlog-cosignature v1, a witness's timestamped
//!   Ed25519 signature (type `0x04`) over `cosignature/v1`, the time and
//!   the checkpoint's text;
//! - [`witness`]: c2sp.org/tlog-witness, the `add-checkpoint` request, its
//!   answers, and a witness's decision on one;
//! - [`proof`]: c2sp.org/tlog-proof, an entry's inclusion proof with the
//!   (cosigned) checkpoint it is proven against.
//!
//! Written from the specifications (C2SP/C2SP `signed-note.md`,
//! `tlog-checkpoint.md`, `tlog-cosignature.md`, `tlog-witness.md`,
//! `tlog-proof.md`); the tests check the
//! encoding against the specifications' example notes and the test vectors
//! of independent implementations (golang.org/x/mod/sumdb/note,
//! github.com/transparency-dev/formats), each test naming its source.
//!
//! Only Ed25519 is implemented: the hub's receipt key is Ed25519, and the
//! specification asks implementations to support only the signature types
//! their design needs.

pub mod checkpoint;
pub mod cosignature;
pub mod note;
pub mod proof;
pub mod witness;

pub use checkpoint::Checkpoint;
pub use note::{Note, NoteError, NoteSignature, NoteSigner, NoteVerifier};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

/// Base64 (RFC 4648 §4, padded) of `bytes`.
pub fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Strict base64 (RFC 4648 §4, canonical padding, no stray bits).
pub fn unb64(s: &str) -> Option<Vec<u8>> {
    STANDARD.decode(s).ok()
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_witness;
