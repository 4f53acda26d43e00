//! c2sp.org/tlog-witness: the `add-checkpoint` request and its answers,
//! and the witness's decision on one request (no I/O: the hub keeps the
//! state, signs and answers).
//!
//! ```text
//! POST <prefix>/add-checkpoint
//!
//! old 20852014                                   the size the client last had cosigned
//! PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=   consistency proof, one hash a line (≤ 63)
//! …
//!                                                an empty line
//! example.com/behind-the-sofa                    the checkpoint, a signed note
//! 20852163
//! CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=
//!
//! — example.com/behind-the-sofa Az3grlgt…
//! ```
//!
//! Answers: 200 with cosignature lines; 400 malformed (or `old` beyond the
//! checkpoint); 403 not signed by the log's key; 404 unknown origin; 409
//! with `Content-Type: text/x.tlog.size` and the witnessed size when `old`
//! is not it; 409 for a checkpoint of the witnessed size with another
//! root; 422 when the consistency proof does not verify.

use super::checkpoint::Checkpoint;
use super::note::{Note, NoteError, NoteSignature, NoteVerifier, MAX_NOTE_BYTES};
use super::{b64, unb64};
use crate::merkle::{self, Hash};

/// The path of the submission API under the witness's prefix.
pub const ADD_CHECKPOINT_PATH: &str = "/add-checkpoint";
/// `Content-Type` of a 409 answer carrying the witnessed size.
pub const SIZE_CONTENT_TYPE: &str = "text/x.tlog.size";
/// Most consistency proof lines a request may carry.
pub const MAX_PROOF_LINES: usize = 63;
/// Largest request body accepted: the proof lines and a note.
pub const MAX_REQUEST_BYTES: usize = 32 + MAX_PROOF_LINES * 45 + MAX_NOTE_BYTES;

/// An `add-checkpoint` request body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddCheckpoint {
    /// The tree size of the checkpoint the client last had cosigned by
    /// this witness (0 if none).
    pub old_size: u64,
    /// The RFC 6962 consistency proof from `old_size` to the checkpoint's
    /// size.
    pub proof: Vec<Hash>,
    /// The signed checkpoint note, verbatim.
    pub note: String,
}

fn malformed(why: impl Into<String>) -> NoteError {
    NoteError::Malformed(why.into())
}

/// A decimal without leading zeros (`0` itself allowed), as the C2SP
/// formats write sizes and indexes.
pub(crate) fn parse_decimal(s: &str) -> Option<u64> {
    let canonical = s == "0" || (!s.is_empty() && !s.starts_with('0'));
    (canonical && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// A base64 line of one 32-byte hash.
fn parse_hash_line(line: &str) -> Option<Hash> {
    unb64(line).and_then(|h| Hash::try_from(h.as_slice()).ok())
}

/// Proof lines, one base64 hash each, at most [`MAX_PROOF_LINES`]
/// (`what` names them in errors).
pub(crate) fn parse_hash_lines<'a>(lines: impl Iterator<Item = &'a str>, what: &str) -> Result<Vec<Hash>, String> {
    let hashes = lines
        .map(|l| parse_hash_line(l).ok_or_else(|| format!("a {what} line is not the base64 of 32 bytes")))
        .collect::<Result<Vec<Hash>, _>>()?;
    if hashes.len() > MAX_PROOF_LINES {
        return Err(format!("more than {MAX_PROOF_LINES} {what} lines"));
    }
    Ok(hashes)
}

/// `hashes` as lines of base64, then an empty line, then `tail`: the
/// shape shared by an add-checkpoint body and a tlog-proof.
pub(crate) fn hash_lines_then(mut out: String, hashes: &[Hash], tail: &str) -> String {
    for h in hashes {
        out.push_str(&b64(h));
        out.push('\n');
    }
    out.push('\n');
    out.push_str(tail);
    out
}

impl AddCheckpoint {
    /// The request body: `old <size>`, the proof lines, an empty line, the
    /// note.
    pub fn body(&self) -> String {
        hash_lines_then(format!("old {}\n", self.old_size), &self.proof, &self.note)
    }

    /// Parses a request body (the note's syntax is checked later, by
    /// [`judge`]).
    pub fn parse(body: &[u8]) -> Result<AddCheckpoint, NoteError> {
        if body.len() > MAX_REQUEST_BYTES {
            return Err(malformed("the request body is too large"));
        }
        let s = std::str::from_utf8(body).map_err(|_| malformed("the request body is not UTF-8"))?;
        let (head, note) = s
            .split_once("\n\n")
            .ok_or_else(|| malformed("no empty line between the old size and proof lines and the checkpoint"))?;
        let mut lines = head.split('\n');
        let old = lines.next().unwrap_or_default();
        let old_size = old
            .strip_prefix("old ")
            .and_then(parse_decimal)
            .ok_or_else(|| malformed("the first line must be `old <size>`, a decimal without leading zeros"))?;
        let proof = parse_hash_lines(lines, "consistency proof").map_err(malformed)?;
        Ok(AddCheckpoint {
            old_size,
            proof,
            note: note.to_string(),
        })
    }
}

/// The body of a 409 answer: the witnessed size and a newline.
pub fn size_body(size: u64) -> String {
    format!("{size}\n")
}

/// The size in the body of a 409 `text/x.tlog.size` answer.
pub fn parse_size_body(body: &str) -> Option<u64> {
    body.strip_suffix('\n').and_then(parse_decimal)
}

/// The body of a 200 answer: the cosignature lines.
pub fn cosignature_body(sigs: &[NoteSignature]) -> String {
    sigs.iter().map(NoteSignature::line).collect()
}

/// The cosignature lines of a 200 answer (their signatures unchecked: add
/// them to the checkpoint note and verify it with the witness keys
/// trusted).
pub fn parse_cosignature_body(body: &str) -> Result<Vec<NoteSignature>, NoteError> {
    let lines = body
        .strip_suffix('\n')
        .ok_or_else(|| malformed("the answer does not end with a newline"))?;
    if lines.is_empty() {
        return Err(malformed("the answer holds no signature line"));
    }
    lines.split('\n').map(NoteSignature::parse_line).collect()
}

/// What a witness last cosigned of one log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Witnessed {
    /// The tree size.
    pub size: u64,
    /// The root hash at that size.
    pub root: Hash,
}

/// Why a witness does not cosign, with the HTTP status to answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// 400: the request, its note or its checkpoint is malformed.
    #[error("malformed request: {0}")]
    Malformed(String),
    /// 400: `old` is larger than the checkpoint's size.
    #[error("old size {old} is larger than the checkpoint's size {size}")]
    OldBeyondCheckpoint {
        /// The `old` line.
        old: u64,
        /// The checkpoint's size.
        size: u64,
    },
    /// 404: the witness knows no log of this origin.
    #[error("unknown origin {0:?}: this witness is not configured for that log")]
    UnknownOrigin(String),
    /// 403: the log's key did not sign it (or its signature fails).
    #[error("the checkpoint is not signed by the log's key {key}: {why}")]
    NotSigned {
        /// The log key expected.
        key: String,
        /// What the note check said.
        why: String,
    },
    /// 409 (`text/x.tlog.size`): `old` is not the size last cosigned.
    #[error("old size {old} is not the size last cosigned, {witnessed}")]
    Stale {
        /// The `old` line.
        old: u64,
        /// The size last cosigned.
        witnessed: u64,
    },
    /// 409: a checkpoint of the size last cosigned, with another root: the
    /// log signed two different trees of one size.
    #[error(
        "the log signed two different trees of size {size}: root {} was cosigned, this checkpoint says {}",
        b64(witnessed_root),
        b64(root)
    )]
    Fork {
        /// The size.
        size: u64,
        /// The root cosigned before.
        witnessed_root: Hash,
        /// The root now signed.
        root: Hash,
    },
    /// 422: the consistency proof does not show that the checkpoint extends
    /// the tree last cosigned.
    #[error("the checkpoint of size {size} does not extend the tree of size {old} cosigned before: {why}")]
    BadProof {
        /// The size last cosigned.
        old: u64,
        /// The checkpoint's size.
        size: u64,
        /// What the proof check said.
        why: String,
    },
}

impl Refusal {
    /// The HTTP status code the specification gives it.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::Malformed(_) | Refusal::OldBeyondCheckpoint { .. } => 400,
            Refusal::NotSigned { .. } => 403,
            Refusal::UnknownOrigin(_) => 404,
            Refusal::Stale { .. } | Refusal::Fork { .. } => 409,
            Refusal::BadProof { .. } => 422,
        }
    }

    /// Whether it is evidence against the log: a checkpoint the log signed
    /// that is not consistent with one the witness cosigned.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Refusal::Fork { .. } | Refusal::BadProof { .. })
    }
}

/// A checkpoint to cosign.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// The checkpoint.
    pub checkpoint: Checkpoint,
    /// Its note text (what a cosignature covers).
    pub text: String,
}

/// Judges an `add-checkpoint` request as the specification orders the
/// checks: the note and checkpoint parse (400), the origin is known
/// (`log_key` gives its key, 404), the log's key signed it (403), `old` is
/// at most its size (400) and is the size last cosigned, `last` (409 with
/// that size), a checkpoint of that same size has the same root (409, a
/// fork) and a larger one is proven to extend it (422). On success the
/// caller records the checkpoint as witnessed (atomically with this
/// decision) and cosigns `text`.
pub fn judge<'k>(
    req: &AddCheckpoint,
    log_key: impl FnOnce(&str) -> Option<&'k NoteVerifier>,
    last: Option<Witnessed>,
) -> Result<Accepted, Refusal> {
    let note = Note::parse(req.note.as_bytes()).map_err(|e| Refusal::Malformed(e.to_string()))?;
    let origin = note.text.split('\n').next().unwrap_or_default().to_string();
    let key = log_key(&origin).ok_or_else(|| Refusal::UnknownOrigin(origin.clone()))?;
    let (checkpoint, note) = Checkpoint::open(req.note.as_bytes(), key).map_err(|e| match e {
        NoteError::BadSignature(_) | NoteError::NotSigned(_) => Refusal::NotSigned {
            key: key.key(),
            why: e.to_string(),
        },
        other => Refusal::Malformed(other.to_string()),
    })?;
    let (old, size) = (req.old_size, checkpoint.size);
    if old > size {
        return Err(Refusal::OldBeyondCheckpoint { old, size });
    }
    let witnessed = last.map_or(0, |w| w.size);
    if old != witnessed {
        return Err(Refusal::Stale { old, witnessed });
    }
    match last {
        Some(w) if old == size => {
            if !req.proof.is_empty() {
                return Err(Refusal::Malformed(
                    "a checkpoint of the size last cosigned needs an empty proof".into(),
                ));
            }
            if w.root != checkpoint.root {
                return Err(Refusal::Fork {
                    size,
                    witnessed_root: w.root,
                    root: checkpoint.root,
                });
            }
        }
        Some(w) if old > 0 => {
            merkle::verify_consistency(old, size, &w.root, &checkpoint.root, &req.proof).map_err(|e| {
                Refusal::BadProof {
                    old,
                    size,
                    why: e.to_string(),
                }
            })?;
        }
        // Nothing cosigned yet (old is 0): the first checkpoint is taken on
        // trust, with no proof.
        _ => {
            if !req.proof.is_empty() {
                return Err(Refusal::Malformed("the proof must be empty when old is 0".into()));
            }
        }
    }
    Ok(Accepted {
        checkpoint,
        text: note.text,
    })
}
