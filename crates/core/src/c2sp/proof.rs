//! c2sp.org/tlog-proof: an offline-verifiable proof that an entry is in a
//! log, under a checkpoint that witnesses may have cosigned.
//!
//! ```text
//! c2sp.org/tlog-proof@v1
//! extra <base64 of opaque data>        optional
//! index 73894
//! gSKyXoYZUgZ6jduWYrkDOARinOMGJveXjgMkBTcdPlQ=   inclusion proof, leaf's sibling first
//! …
//!                                      an empty line
//! <the checkpoint note, verbatim, with its cosignatures>
//! ```
//!
//! Truc writes the receipt's exact bytes (the leaf data) as `extra`, so a
//! proof needs nothing else to be checked: the leaf hash is
//! `SHA-256(0x00 ‖ extra)`. The extra data is not authenticated by itself;
//! it is by the inclusion proof.

use super::note::NoteError;
use super::witness::{hash_lines_then, parse_decimal, parse_hash_lines};
use super::{b64, unb64};
use crate::merkle::Hash;

/// The first line of a proof.
pub const PROOF_HEADER: &str = "c2sp.org/tlog-proof@v1";
/// The file extension the specification recommends.
pub const PROOF_EXTENSION: &str = "tlog-proof";

/// A parsed tlog-proof (nothing verified).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlogProof {
    /// Opaque extra data (Truc: the receipt's bytes).
    pub extra: Option<Vec<u8>>,
    /// The entry's zero-based index in the log.
    pub index: u64,
    /// The RFC 6962 inclusion proof in the checkpoint's tree, bottom up.
    pub proof: Vec<Hash>,
    /// The checkpoint note, verbatim (with any cosignatures).
    pub checkpoint: String,
}

fn malformed(why: &str) -> NoteError {
    NoteError::Malformed(format!("not a {PROOF_HEADER} proof: {why}"))
}

impl TlogProof {
    /// The proof as text.
    pub fn to_text(&self) -> String {
        let mut out = format!("{PROOF_HEADER}\n");
        if let Some(extra) = &self.extra {
            out.push_str(&format!("extra {}\n", b64(extra)));
        }
        out.push_str(&format!("index {}\n", self.index));
        hash_lines_then(out, &self.proof, &self.checkpoint)
    }

    /// Parses a proof; the checkpoint note is kept as text, to be opened
    /// with the log's and the witnesses' keys.
    pub fn parse(text: &str) -> Result<TlogProof, NoteError> {
        let (head, checkpoint) = text
            .split_once("\n\n")
            .ok_or_else(|| malformed("no empty line before the checkpoint"))?;
        let mut lines = head.split('\n').peekable();
        if lines.next() != Some(PROOF_HEADER) {
            return Err(malformed(&format!("the first line must be {PROOF_HEADER}")));
        }
        let extra = match lines.peek().and_then(|l| l.strip_prefix("extra ")) {
            Some(e) => {
                let bytes = unb64(e).ok_or_else(|| malformed("the extra data is not base64"))?;
                lines.next();
                Some(bytes)
            }
            None => None,
        };
        let index = lines
            .next()
            .and_then(|l| l.strip_prefix("index "))
            .and_then(parse_decimal)
            .ok_or_else(|| malformed("expected `index <n>`, a decimal without leading zeros"))?;
        let proof = parse_hash_lines(lines, "inclusion proof").map_err(|e| malformed(&e))?;
        Ok(TlogProof {
            extra,
            index,
            proof,
            checkpoint: checkpoint.to_string(),
        })
    }
}
