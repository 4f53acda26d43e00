use std::cell::Cell;
use std::collections::HashMap;

use super::*;

mod reference;
mod vectors;
mod wrong;

use reference::Reference;

pub(super) fn leaf_data(i: usize) -> Vec<u8> {
    format!("receipt {i}").into_bytes()
}

pub(super) fn memory_tree(n: usize) -> MemoryTree {
    let mut t = MemoryTree::new();
    for i in 0..n {
        assert_eq!(t.push(&leaf_data(i)), i as u64);
    }
    t
}

// ---------------------------------------------------------------------------
// Exhaustive comparison with the reference.
// ---------------------------------------------------------------------------

const MAX: usize = 257;

#[test]
fn every_root_and_inclusion_proof_up_to_257() {
    let r = Reference::new(MAX);
    // One tree of 257 leaves serves every smaller size, as the hub's store does.
    let t = memory_tree(MAX);
    for size in 1..=MAX {
        let want_root = r.mth(0, size);
        assert_eq!(root(size as u64, &t).unwrap(), want_root, "root {size}");
        for index in 0..size {
            let proof = inclusion_proof(index as u64, size as u64, &t).unwrap();
            assert_eq!(proof, r.path(index, 0, size), "path {index}/{size}");
            verify_inclusion(&r.leaves[index], index as u64, size as u64, &proof, &want_root)
                .unwrap_or_else(|e| panic!("{index}/{size}: {e}"));
        }
    }
    assert_eq!(memory_tree(MAX).root(), r.mth(0, MAX));
}

#[test]
fn every_consistency_proof_up_to_257() {
    let r = Reference::new(MAX);
    let t = memory_tree(MAX);
    for n in 1..=MAX {
        let new_root = r.mth(0, n);
        for m in 1..=n {
            let proof = consistency_proof(m as u64, n as u64, &t).unwrap();
            let want = if m == n { vec![] } else { r.subproof(m, 0, n, true) };
            assert_eq!(proof, want, "{m}->{n}");
            verify_consistency(m as u64, n as u64, &r.mth(0, m), &new_root, &proof)
                .unwrap_or_else(|e| panic!("{m}->{n}: {e}"));
        }
    }
}

/// A source built only through `new_nodes`, as the hub's store is.
#[derive(Default)]
struct MapSource(HashMap<(u8, u64), Hash>);

impl NodeSource for MapSource {
    type Error = (u8, u64);
    fn node(&self, level: u8, index: u64) -> Result<Hash, (u8, u64)> {
        self.0.get(&(level, index)).copied().ok_or((level, index))
    }
}

#[test]
fn new_nodes_builds_the_same_tree() {
    let r = Reference::new(MAX);
    let t = memory_tree(MAX);
    let mut src = MapSource::default();
    for i in 0..MAX as u64 {
        let nodes = new_nodes(i, r.leaves[i as usize], &src).unwrap();
        assert_eq!(nodes.len(), 1 + i.trailing_ones() as usize, "{i}");
        assert_eq!(nodes[0], (0, i, r.leaves[i as usize]));
        for (level, index, hash) in nodes {
            assert_eq!(Ok(hash), t.node(level, index), "{level}/{index}");
            let start = (index << level) as usize;
            assert_eq!(hash, r.mth(start, start + (1 << level)));
            assert!(src.0.insert((level, index), hash).is_none());
        }
        assert_eq!(root(i + 1, &src).unwrap(), r.mth(0, i as usize + 1));
    }
    // Appending to a source that misses a sibling reports it.
    assert_eq!(new_nodes(1, [0; 32], &MapSource::default()), Err((0, 0)));
}

#[test]
fn subtree_hash_of_any_range() {
    let r = Reference::new(40);
    let t = memory_tree(40);
    for a in 0..=40 {
        for b in a..=40 {
            assert_eq!(subtree_hash(a as u64, b as u64, &t).unwrap(), r.mth(a, b), "[{a},{b})");
        }
    }
    assert_eq!(subtree_hash(5, 3, &t).unwrap(), empty_root());
}

// ---------------------------------------------------------------------------
// Cost: O(log n) node reads, and never a node beyond the tree size.
// ---------------------------------------------------------------------------

/// A synthetic tree of `size` leaves of any size; counts reads and refuses
/// nodes that are not complete within `size`.
struct Synthetic {
    size: u64,
    reads: Cell<u64>,
}

impl NodeSource for Synthetic {
    type Error = String;
    fn node(&self, level: u8, index: u64) -> Result<Hash, String> {
        self.reads.set(self.reads.get() + 1);
        if level < 64 && (u128::from(index) + 1) << level <= u128::from(self.size) {
            let mut b = vec![level];
            b.extend_from_slice(&index.to_be_bytes());
            Ok(crate::sha256(&b))
        } else {
            Err(format!("node {level}/{index} beyond size {}", self.size))
        }
    }
}

#[test]
fn node_reads_are_logarithmic() {
    let sizes = [
        1u64,
        2,
        3,
        7,
        8,
        255,
        257,
        1 << 20,
        (1 << 40) + 12345,
        u64::MAX / 3,
        u64::MAX,
    ];
    for &size in &sizes {
        let s = Synthetic {
            size,
            reads: Cell::new(0),
        };
        let bits = 64 - size.leading_zeros() as u64;
        root(size, &s).unwrap();
        assert!(s.reads.get() <= bits, "root({size}) read {}", s.reads.get());
        for index in [0, size / 3, size / 2, size - 1] {
            s.reads.set(0);
            let p = inclusion_proof(index, size, &s).unwrap();
            assert!(p.len() as u64 <= bits);
            assert!(
                s.reads.get() <= 2 * bits + 1,
                "path {index}/{size} read {}",
                s.reads.get()
            );
        }
        for old in [1, size / 3, size / 2, size - 1, size] {
            if old == 0 {
                continue;
            }
            s.reads.set(0);
            consistency_proof(old, size, &s).unwrap();
            assert!(
                s.reads.get() <= 3 * bits + 1,
                "proof {old}->{size} read {}",
                s.reads.get()
            );
        }
    }
    // Appending after u64::MAX - 1 leaves completes 63 parents, not more.
    let s = Synthetic {
        size: u64::MAX,
        reads: Cell::new(0),
    };
    assert_eq!(new_nodes(u64::MAX - 1, [0; 32], &s).unwrap().len(), 1);
    assert_eq!(new_nodes((1 << 63) - 1, [0; 32], &s).unwrap().len(), 64);
}
