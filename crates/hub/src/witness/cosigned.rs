//! The cosignatures peers' witnesses gave this hub's checkpoints, for the
//! recent checkpoints (in memory: after a restart the next submissions
//! gather them again).

use std::collections::BTreeMap;

use truc_core::c2sp::NoteSignature;
use truc_core::merkle::Hash;
use truc_core::sync::Locked;

/// Checkpoints remembered with their cosignatures (the newest).
const KEEP: usize = 16;

/// One checkpoint and who cosigned it.
#[derive(Debug, Clone)]
struct Entry {
    root: Hash,
    /// The note as this hub signed it.
    note: String,
    /// Peer id → its witness's latest cosignature of this checkpoint.
    sigs: BTreeMap<String, NoteSignature>,
}

/// Cosigned checkpoints by tree size.
#[derive(Debug, Default)]
pub(crate) struct Cosigned(std::sync::Mutex<BTreeMap<u64, Entry>>);

impl Cosigned {
    /// `peer`'s witness cosigned the checkpoint `note` (of `size` and
    /// `root`) with `sig` (already verified with its key).
    pub(crate) fn add(&self, size: u64, root: Hash, note: &str, peer: &str, sig: NoteSignature) {
        let mut m = self.0.locked();
        let e = m.entry(size).or_insert_with(|| Entry {
            root,
            note: note.to_string(),
            sigs: BTreeMap::new(),
        });
        if e.root != root {
            // This hub signed another tree of this size since (its store was
            // replaced): what was cosigned before is not this log any more.
            *e = Entry {
                root,
                note: note.to_string(),
                sigs: BTreeMap::new(),
            };
        }
        e.sigs.insert(peer.to_string(), sig);
        while m.len() > KEEP {
            m.pop_first();
        }
    }

    /// The cosignature lines held for the checkpoint of `size` and `root`.
    pub(crate) fn lines(&self, size: u64, root: &Hash) -> String {
        match self.0.locked().get(&size) {
            Some(e) if &e.root == root => e.sigs.values().map(NoteSignature::line).collect(),
            _ => String::new(),
        }
    }

    /// Every cosigned checkpoint held, newest first, each the note with
    /// its cosignature lines appended.
    pub(crate) fn notes(&self) -> Vec<String> {
        self.0
            .locked()
            .values()
            .rev()
            .map(|e| {
                let mut n = e.note.clone();
                n.extend(e.sigs.values().map(NoteSignature::line));
                n
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig(name: &str) -> NoteSignature {
        NoteSignature {
            name: name.into(),
            key_id: 1,
            signature: vec![0; 72],
        }
    }

    #[test]
    fn cosignatures_are_kept_per_checkpoint_and_a_new_root_forgets_them() {
        let c = Cosigned::default();
        c.add(5, [1; 32], "n5\n\n— log x\n", "h49", sig("h49.truc/witness"));
        c.add(5, [1; 32], "n5\n\n— log x\n", "g12", sig("g12.truc/witness"));
        c.add(7, [2; 32], "n7\n\n— log x\n", "h49", sig("h49.truc/witness"));
        assert_eq!(c.lines(5, &[1; 32]).lines().count(), 2);
        assert_eq!(c.lines(5, &[9; 32]), "");
        let notes = c.notes();
        assert!(notes[0].starts_with("n7") && notes[1].starts_with("n5"), "{notes:?}");
        c.add(5, [3; 32], "other\n\n— log x\n", "h49", sig("h49.truc/witness"));
        assert_eq!(c.lines(5, &[1; 32]), "");
        assert_eq!(c.lines(5, &[3; 32]).lines().count(), 1);
        for n in 10..40 {
            c.add(n, [0; 32], "n\n\n— log x\n", "h49", sig("h49.truc/witness"));
        }
        assert_eq!(c.notes().len(), KEEP);
    }
}
