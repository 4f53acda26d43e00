//! The last signed tree head, kept where damage to the log cannot take it.
//!
//! Every batch that appends receipts signs a tree head and publishes it to
//! the clients of that batch. If the log later lost that batch (a flipped
//! bit, a truncated or deleted segment), replay would rebuild a shorter
//! tree and the hub would sign a *second, different* head of a size it had
//! already published: a fork only an auditor who kept the old receipt
//! would notice. So the writer also records each head it signs in a small
//! file of its own, `store/signed-head`, synced before any client sees the
//! head, and remembers it in memory:
//!
//! - at open, the tree rebuilt from the log must reach the recorded size
//!   and have the recorded root there, or the store refuses to open
//!   ([`check`]);
//! - while running, the writer never signs a head that is smaller than the
//!   last one, or of the same size with another root ([`SignedHeadFile::guard`]).
//!
//! Layout: two 4 KiB slots, written alternately (an interrupted write
//! leaves the other slot whole); each is `magic (8) ‖ len u32 LE ‖ crc32
//! u32 LE ‖ size u64 LE ‖ root (32) ‖ encoded SignedTreeHead`, with `len`
//! and the CRC over everything after the CRC. The slot with the larger size
//! wins.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use prost::Message;
use truc_core::merkle::Hash;
use truc_proto::v1::{SignedTreeHead, TreeHead};

use crate::error::Damage;
use crate::StoreError;

/// The file's name in the store directory.
pub(crate) const FILE_NAME: &str = "signed-head";
const MAGIC: &[u8; 8] = b"TRUCSTH1";
const SLOT: usize = 4096;
const SLOT_HEADER: usize = 16;

/// A head as recorded: its size and root, and the signed bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Recorded {
    pub(crate) size: u64,
    pub(crate) root: Hash,
    pub(crate) sth: SignedTreeHead,
}

impl Recorded {
    /// From a signed head (its size and root are read from its own bytes).
    pub(crate) fn from_signed(sth: &SignedTreeHead) -> Result<Recorded, StoreError> {
        let th = TreeHead::decode(sth.tree_head.as_slice()).map_err(|e| StoreError::corrupt_from("tree head", e))?;
        let root: Hash = th
            .root_hash
            .as_slice()
            .try_into()
            .map_err(|e| StoreError::corrupt_from("tree head root", e))?;
        Ok(Recorded {
            size: th.tree_size,
            root,
            sth: sth.clone(),
        })
    }

    fn encode(&self) -> Vec<u8> {
        let sth = self.sth.encode_to_vec();
        let mut body = Vec::with_capacity(40 + sth.len());
        body.extend_from_slice(&self.size.to_le_bytes());
        body.extend_from_slice(&self.root);
        body.extend_from_slice(&sth);
        let mut slot = Vec::with_capacity(SLOT);
        slot.extend_from_slice(MAGIC);
        slot.extend_from_slice(&(body.len() as u32).to_le_bytes());
        slot.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
        slot.extend_from_slice(&body);
        slot.resize(SLOT, 0);
        slot
    }

    fn decode(slot: &[u8]) -> Option<Recorded> {
        if slot.get(..8)? != MAGIC {
            return None;
        }
        let len = u32::from_le_bytes(slot.get(8..12)?.try_into().ok()?) as usize;
        let crc = u32::from_le_bytes(slot.get(12..16)?.try_into().ok()?);
        let body = slot.get(SLOT_HEADER..SLOT_HEADER + len)?;
        if len < 40 || crc32fast::hash(body) != crc {
            return None;
        }
        Some(Recorded {
            size: u64::from_le_bytes(body[..8].try_into().ok()?),
            root: body[8..40].try_into().ok()?,
            sth: SignedTreeHead::decode(&body[40..]).ok()?,
        })
    }
}

/// What the file held when opened.
#[derive(Debug)]
pub(crate) enum Found {
    /// No file: a new store, or one written before the file existed.
    Missing,
    /// The file is there and holds nothing: no head was signed yet.
    Empty,
    /// The file is there but neither slot is whole.
    Unreadable,
    /// The newest whole slot.
    Head(Recorded),
}

/// Read the file in `dir` (the store directory).
pub(crate) fn read(dir: &Path) -> Result<Found, StoreError> {
    let path = dir.join(FILE_NAME);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Found::Missing),
        Err(e) => return Err(io_error(&path, e)),
    };
    let best = bytes
        .chunks(SLOT)
        .take(2)
        .filter_map(Recorded::decode)
        .max_by_key(|r| r.size);
    Ok(match best {
        Some(r) => Found::Head(r),
        None if bytes.iter().all(|&b| b == 0) => Found::Empty,
        None => Found::Unreadable,
    })
}

/// The writer's handle on the file: it records every head it signs and
/// refuses to sign one that would fork from the last.
#[derive(Debug)]
pub(crate) struct SignedHeadFile {
    path: PathBuf,
    file: File,
    /// The slot the next write goes to (the other holds the last head).
    next_slot: u64,
    last: Option<(u64, Hash)>,
}

impl SignedHeadFile {
    /// Open the file in `dir`, creating it (holding `head`, if any) when it
    /// is missing. `head` is what the file held, or what the log holds
    /// when the file is new.
    pub(crate) fn open(dir: &Path, head: Option<&Recorded>) -> Result<SignedHeadFile, StoreError> {
        let path = dir.join(FILE_NAME);
        let existed = path.exists();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| io_error(&path, e))?;
        let mut me = SignedHeadFile {
            path,
            file,
            next_slot: 0,
            last: None,
        };
        match head {
            Some(h) => {
                // Write it to both slots: the file then holds exactly it.
                me.record(h)?;
                me.record(h)?;
            }
            None if !existed => {
                me.file.set_len(2 * SLOT as u64).map_err(|e| io_error(&me.path, e))?;
                me.file.sync_all().map_err(|e| io_error(&me.path, e))?;
            }
            None => {}
        }
        if !existed {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| io_error(dir, e))?;
        }
        Ok(me)
    }

    /// Refuse to sign a head of `size` and `root` that does not extend the
    /// last one signed: smaller, or the same size with another root.
    pub(crate) fn guard(&self, size: u64, root: &Hash) -> Result<(), StoreError> {
        match self.last {
            Some((last, _)) if size < last => Err(StoreError::Damaged(Damage {
                file: self.path.clone(),
                offset: None,
                what: format!("the writer was about to sign a tree head of size {size} after one of size {last}"),
                lost: "nothing yet: the head was not signed".into(),
                repairable: true,
            })),
            Some((last, r)) if size == last && &r != root => Err(StoreError::Damaged(Damage {
                file: self.path.clone(),
                offset: None,
                what: format!("the writer was about to sign a second, different tree head of size {size}"),
                lost: "nothing yet: the head was not signed".into(),
                repairable: true,
            })),
            _ => Ok(()),
        }
    }

    /// Record `head` durably (written and synced) as the last one signed.
    pub(crate) fn record(&mut self, head: &Recorded) -> Result<(), StoreError> {
        let slot = head.encode();
        self.file
            .write_all_at(&slot, self.next_slot * SLOT as u64)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| io_error(&self.path, e))?;
        self.next_slot ^= 1;
        self.last = Some((head.size, head.root));
        Ok(())
    }
}

fn io_error(path: &Path, e: io::Error) -> StoreError {
    StoreError::Io {
        path: path.to_path_buf(),
        source: e,
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use truc_core::tree_head::TreeHeadSigner;

    /// A fresh Ed25519 tree-head signer.
    pub(in crate::sled) fn signer() -> TreeHeadSigner {
        let rng = ring::rand::SystemRandom::new();
        let doc = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        TreeHeadSigner::from_pkcs8(doc.as_ref()).unwrap()
    }

    #[test]
    fn the_newest_whole_slot_wins_and_a_torn_slot_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let s = signer();
        let h = |n: u64| Recorded::from_signed(&s.sign(n, &[n as u8; 32], 1)).unwrap();
        assert!(matches!(read(dir.path()).unwrap(), Found::Missing));
        let mut f = SignedHeadFile::open(dir.path(), None).unwrap();
        assert!(matches!(read(dir.path()).unwrap(), Found::Empty));
        f.record(&h(3)).unwrap();
        f.record(&h(5)).unwrap();
        f.record(&h(9)).unwrap();
        let Found::Head(r) = read(dir.path()).unwrap() else {
            panic!()
        };
        assert_eq!(r, h(9));
        // Tear the slot holding 9 (slot 0: written first, third): 5 remains.
        let file = OpenOptions::new().write(true).open(dir.path().join(FILE_NAME)).unwrap();
        file.write_all_at(&[0xff; 100], 20).unwrap();
        let Found::Head(r) = read(dir.path()).unwrap() else {
            panic!()
        };
        assert_eq!(r, h(5));
        // Both torn: unreadable, not empty.
        file.write_all_at(&[0xff; 100], SLOT as u64 + 20).unwrap();
        assert!(matches!(read(dir.path()).unwrap(), Found::Unreadable));
    }

    #[test]
    fn the_guard_refuses_a_smaller_head_or_another_root_of_the_same_size() {
        let dir = tempfile::tempdir().unwrap();
        let s = signer();
        let head = Recorded::from_signed(&s.sign(10, &[1; 32], 1)).unwrap();
        let f = SignedHeadFile::open(dir.path(), Some(&head)).unwrap();
        assert!(f.guard(11, &[2; 32]).is_ok());
        assert!(f.guard(10, &[1; 32]).is_ok());
        assert!(matches!(f.guard(10, &[2; 32]), Err(StoreError::Damaged(_))));
        assert!(matches!(f.guard(9, &[1; 32]), Err(StoreError::Damaged(_))));
        // Reopened, the file holds the same head.
        let Found::Head(r) = read(dir.path()).unwrap() else {
            panic!()
        };
        assert_eq!(r, head);
    }
}
