//! The Merkle proof verifiers on arbitrary input, and generated proofs on
//! real trees.
//!
//! Input: a mode byte, then
//! * mode 0, `verify_inclusion` on raw input: index (u64 LE), size (u64 LE),
//!   leaf (32), root (32), proof (the rest, 32 bytes a hash);
//! * mode 1, `verify_consistency` on raw input: old size, new size, old root,
//!   new root, proof, laid out the same way;
//! * mode 2, structured: leaves, size, index, old size (u16 LE each), a
//!   mutation (u8) and its position (u16 LE), a salt (u8); builds a
//!   `MemoryTree`, checks that generated proofs verify and that the mutated
//!   ones do not.
//!
//! Missing bytes read as zero. Modes 0 and 1 must never panic; mode 2 also
//! checks the tree's roots against a tree built from scratch.
#![no_main]

use libfuzzer_sys::fuzz_target;
use truc_core::merkle::{self, Hash, MemoryTree, NodeSource};

/// Most leaves in a structured tree.
const MAX_LEAVES: u64 = 600;

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let n = N.min(self.0.len());
        out[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        out
    }
    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take())
    }
    fn u16(&mut self) -> u64 {
        u64::from(u16::from_le_bytes(self.take()))
    }
    fn hashes(&mut self) -> Vec<Hash> {
        self.0.chunks_exact(32).map(|c| c.try_into().unwrap()).collect()
    }
}

fn flip(h: &mut Hash, pos: u64) {
    h[(pos / 8 % 32) as usize] ^= 1 << (pos % 8);
}

fn leaf_data(salt: u8, i: u64) -> [u8; 9] {
    let mut d = [salt; 9];
    d[1..].copy_from_slice(&i.to_be_bytes());
    d
}

fn structured(r: &mut Reader<'_>) {
    let n = r.u16() % (MAX_LEAVES + 1);
    let (a, b, c) = (r.u16(), r.u16(), r.u16());
    let mutation = r.take::<1>()[0];
    let pos = r.u16();
    let salt = r.take::<1>()[0];

    let mut tree = MemoryTree::new();
    for i in 0..n {
        assert_eq!(tree.push(&leaf_data(salt, i)), i);
    }
    assert_eq!(tree.size(), n);
    if n == 0 {
        assert_eq!(tree.root(), merkle::empty_root());
        assert!(merkle::inclusion_proof(0, 0, &tree).unwrap().is_empty());
        assert!(merkle::verify_inclusion(&merkle::leaf_hash(b""), 0, 0, &[], &tree.root()).is_err());
        return;
    }
    let size = 1 + a % n;
    let index = b % size;
    let old = 1 + c % size;

    // Roots of every prefix agree with a tree of just that prefix.
    let root = merkle::root(size, &tree).unwrap();
    let old_root = merkle::root(old, &tree).unwrap();
    let mut prefix = MemoryTree::new();
    for i in 0..size {
        prefix.push(&leaf_data(salt, i));
        if i + 1 == old {
            assert_eq!(prefix.root(), old_root);
        }
    }
    assert_eq!(prefix.root(), root);
    assert_eq!(merkle::subtree_hash(0, size, &tree).unwrap(), root);

    // Inclusion: the generated proof verifies; every change is refused.
    let leaf = tree.node(0, index).unwrap();
    assert_eq!(leaf, merkle::leaf_hash(&leaf_data(salt, index)));
    let proof = merkle::inclusion_proof(index, size, &tree).unwrap();
    assert!(proof.len() <= 64);
    merkle::verify_inclusion(&leaf, index, size, &proof, &root).expect("generated inclusion proof verifies");
    assert!(merkle::verify_inclusion(&leaf, size, size, &proof, &root).is_err());
    let (mut l, mut p, mut rt) = (leaf, proof.clone(), root);
    if mutate(mutation, pos, &mut l, &mut p, &mut rt) {
        assert!(
            merkle::verify_inclusion(&l, index, size, &p, &rt).is_err(),
            "mutated inclusion proof verifies (n={n} size={size} index={index} mutation={mutation})"
        );
    }

    // Consistency: the same.
    let proof = merkle::consistency_proof(old, size, &tree).unwrap();
    merkle::verify_consistency(old, size, &old_root, &root, &proof).expect("generated consistency proof verifies");
    merkle::verify_consistency(0, size, &merkle::empty_root(), &root, &[]).expect("the empty tree is a prefix");
    let (mut o, mut p, mut rt) = (old_root, proof.clone(), root);
    if mutate(mutation, pos, &mut o, &mut p, &mut rt) {
        assert!(
            merkle::verify_consistency(old, size, &o, &rt, &p).is_err(),
            "mutated consistency proof verifies (n={n} size={size} old={old} mutation={mutation})"
        );
    }

    // Arbitrary ranges never panic; short ranges inside the tree hash like
    // a fresh tree of their leaves.
    let (start, end) = (pos % (n + 2), (pos / 3) % (n + 2));
    let sub = merkle::subtree_hash(start, end, &tree);
    if start < end && end <= n && end - start <= 128 {
        let mut fresh = MemoryTree::new();
        for i in start..end {
            fresh.push(&leaf_data(salt, i));
        }
        assert_eq!(sub.unwrap(), fresh.root());
    }
}

/// Applies one change that must make a valid proof fail: a flipped bit in
/// the first hash (leaf or old root), the root or a proof hash, or a proof
/// one hash shorter or longer. Returns false when the change is not
/// possible (an empty proof to shorten or flip in).
fn mutate(mutation: u8, pos: u64, first: &mut Hash, proof: &mut Vec<Hash>, root: &mut Hash) -> bool {
    match mutation % 6 {
        0 => flip(first, pos),
        1 => flip(root, pos),
        2 | 3 if proof.is_empty() => return false,
        2 => {
            let i = (pos as usize / 256) % proof.len();
            flip(&mut proof[i], pos);
        }
        3 => {
            proof.remove((pos as usize / 256) % proof.len());
        }
        4 => proof.push([mutation; 32]),
        _ => proof.insert(0, *root),
    }
    true
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut r = Reader(rest);
    match mode % 3 {
        0 => {
            let (index, size) = (r.u64(), r.u64());
            let (leaf, root): (Hash, Hash) = (r.take(), r.take());
            let proof = r.hashes();
            let _ = merkle::verify_inclusion(&leaf, index, size, &proof, &root);
        }
        1 => {
            let (old_size, new_size) = (r.u64(), r.u64());
            let (old_root, new_root): (Hash, Hash) = (r.take(), r.take());
            let proof = r.hashes();
            let _ = merkle::verify_consistency(old_size, new_size, &old_root, &new_root, &proof);
        }
        _ => structured(&mut r),
    }
});
