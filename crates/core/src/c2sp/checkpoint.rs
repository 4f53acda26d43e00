//! c2sp.org/tlog-checkpoint: a note whose text is the log's origin, its
//! tree size (decimal, no leading zeros) and its RFC 6962 root hash
//! (base64), then optional extension lines.

use super::note::{Note, NoteError, NoteSigner, NoteVerifier};
use super::{b64, unb64};
use crate::merkle::Hash;

/// A log's tree head as a checkpoint's text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's identity, e.g. `h49.truc/receipts`.
    pub origin: String,
    /// Leaves in the tree.
    pub size: u64,
    /// The RFC 6962 root hash at that size.
    pub root: Hash,
    /// Extension lines (opaque, non-empty; not recommended, none written by
    /// Truc).
    pub extensions: Vec<String>,
}

fn bad(why: &str) -> NoteError {
    NoteError::Text(format!("not a checkpoint: {why}"))
}

impl Checkpoint {
    /// A checkpoint without extension lines.
    pub fn new(origin: &str, size: u64, root: Hash) -> Checkpoint {
        Checkpoint {
            origin: origin.to_string(),
            size,
            root,
            extensions: Vec::new(),
        }
    }

    /// The note text: origin, size, base64 root, extension lines, each
    /// ending in a newline.
    pub fn text(&self) -> String {
        let mut t = format!("{}\n{}\n{}\n", self.origin, self.size, b64(&self.root));
        for e in &self.extensions {
            t.push_str(e);
            t.push('\n');
        }
        t
    }

    /// Parses a checkpoint's note text (what the signatures cover).
    pub fn parse_text(text: &str) -> Result<Checkpoint, NoteError> {
        let body = text
            .strip_suffix('\n')
            .ok_or_else(|| bad("the text does not end with a newline"))?;
        let mut lines = body.split('\n');
        let origin = lines.next().unwrap_or_default();
        if origin.is_empty() {
            return Err(bad("the origin line is empty"));
        }
        let size_line = lines.next().ok_or_else(|| bad("no tree size line"))?;
        let canonical = size_line == "0" || (!size_line.starts_with('0') && !size_line.is_empty());
        if !canonical || !size_line.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("the tree size is not a decimal number without leading zeros"));
        }
        let size: u64 = size_line
            .parse()
            .map_err(|_| bad("the tree size does not fit 64 bits"))?;
        let root_line = lines.next().ok_or_else(|| bad("no root hash line"))?;
        let root: Hash = unb64(root_line)
            .and_then(|r| Hash::try_from(r.as_slice()).ok())
            .ok_or_else(|| bad("the root hash is not the base64 of 32 bytes"))?;
        let extensions: Vec<String> = lines.map(str::to_string).collect();
        if extensions.iter().any(String::is_empty) {
            return Err(bad("an extension line is empty"));
        }
        Ok(Checkpoint {
            origin: origin.to_string(),
            size,
            root,
            extensions,
        })
    }

    /// This checkpoint signed by `signer` (whose name should be the
    /// origin): the complete note.
    pub fn sign(&self, signer: &NoteSigner) -> Result<String, NoteError> {
        signer.sign_note(&self.text())
    }

    /// Opens a signed checkpoint: the note's signature by `log` verifies
    /// (lines of other keys, such as cosignatures, are ignored), its text is
    /// a checkpoint, and its origin is `log`'s key name.
    pub fn open(note: &[u8], log: &NoteVerifier) -> Result<(Checkpoint, Note), NoteError> {
        let note = Note::parse(note)?;
        note.verify(&[log])?;
        let cp = Checkpoint::parse_text(&note.text)?;
        if cp.origin != log.name() {
            return Err(NoteError::Text(format!(
                "the checkpoint's origin {:?} is not the log's key name {:?}",
                cp.origin,
                log.name()
            )));
        }
        Ok((cp, note))
    }
}
