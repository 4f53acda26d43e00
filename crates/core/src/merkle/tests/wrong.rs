//! Wrong proofs fail.

use super::memory_tree;
use super::reference::Reference;
use crate::merkle::*;
use crate::CoreError;

fn mutations(proof: &[Hash], root: &Hash) -> Vec<(String, Vec<Hash>)> {
    let mut out = Vec::new();
    for i in 0..proof.len() {
        for bit in [0u8, 3, 7] {
            let mut p = proof.to_vec();
            p[i][i % 32] ^= 1 << bit;
            out.push((format!("flip proof[{i}] bit {bit}"), p));
        }
        let mut p = proof.to_vec();
        p.remove(i);
        out.push((format!("remove proof[{i}]"), p));
    }
    if proof.len() > 1 {
        let mut p = proof.to_vec();
        p.swap(0, 1);
        if p != proof {
            out.push(("swap 0 and 1".into(), p));
        }
    }
    for extra in [[0u8; 32], *root] {
        let mut p = proof.to_vec();
        p.push(extra);
        out.push(("extend".into(), p));
        let mut p = proof.to_vec();
        p.insert(0, extra);
        out.push(("prepend".into(), p));
    }
    out
}

#[test]
fn wrong_inclusion_proofs_fail() {
    let r = Reference::new(70);
    let t = memory_tree(70);
    let other = [0x5a; 32];
    for size in 1..=70u64 {
        let root_n = r.mth(0, size as usize);
        for index in 0..size {
            let leaf = r.leaves[index as usize];
            let proof = inclusion_proof(index, size, &t).unwrap();
            let fails = |leaf: &Hash, i: u64, n: u64, p: &[Hash], root: &Hash, what: &str| {
                assert!(
                    matches!(verify_inclusion(leaf, i, n, p, root), Err(CoreError::BadProof(_))),
                    "{what} accepted for {index}/{size}"
                );
            };
            for (what, p) in mutations(&proof, &root_n) {
                fails(&leaf, index, size, &p, &root_n, &what);
            }
            fails(&other, index, size, &proof, &root_n, "wrong leaf");
            fails(&leaf, index, size, &proof, &other, "wrong root");
            fails(&leaf, index, size, &proof, &empty_root(), "empty root");
            fails(&leaf, index + 1, size, &proof, &root_n, "index + 1");
            fails(&leaf, index ^ 2, size, &proof, &root_n, "index ^ 2");
            fails(&leaf, index, size * 2, &proof, &root_n, "size * 2");
            fails(&leaf, index, size / 2, &proof, &root_n, "size / 2");
            fails(&leaf, size, size, &proof, &root_n, "index = size");
            if index > 0 {
                fails(&leaf, index - 1, size, &proof, &root_n, "index - 1");
            }
        }
    }
    // Empty trees contain nothing.
    assert!(verify_inclusion(&empty_root(), 0, 0, &[], &empty_root()).is_err());
    assert!(verify_inclusion(&r.leaves[0], u64::MAX, u64::MAX, &[], &r.leaves[0]).is_err());
    // Out-of-range requests give an empty proof.
    assert!(inclusion_proof(5, 5, &t).unwrap().is_empty());
}

#[test]
fn wrong_consistency_proofs_fail() {
    let r = Reference::new(70);
    let t = memory_tree(70);
    let other = [0x5a; 32];
    for n in 2..=70u64 {
        let new_root = r.mth(0, n as usize);
        for m in 1..n {
            let old_root = r.mth(0, m as usize);
            let proof = consistency_proof(m, n, &t).unwrap();
            let fails = |m2: u64, n2: u64, old: &Hash, new: &Hash, p: &[Hash], what: &str| {
                assert!(
                    matches!(verify_consistency(m2, n2, old, new, p), Err(CoreError::BadProof(_))),
                    "{what} accepted for {m}->{n}"
                );
            };
            for (what, p) in mutations(&proof, &new_root) {
                fails(m, n, &old_root, &new_root, &p, &what);
            }
            fails(m, n, &other, &new_root, &proof, "wrong old root");
            fails(m, n, &old_root, &other, &proof, "wrong new root");
            fails(m, n, &new_root, &old_root, &proof, "roots swapped");
            fails(n, m, &old_root, &new_root, &proof, "sizes swapped");
            fails(m, n, &old_root, &new_root, &[], "empty proof");
            fails(m, m, &old_root, &new_root, &proof, "old size twice");
            fails(m, n * 2, &old_root, &new_root, &proof, "new size * 2");
            fails(m + 1, n, &old_root, &new_root, &proof, "old size + 1");
            fails(m - 1, n, &old_root, &new_root, &proof, "old size - 1");
        }
        // A tree equals only itself.
        assert!(verify_consistency(n, n, &new_root, &new_root, &[]).is_ok());
        assert!(verify_consistency(n, n, &new_root, &other, &[]).is_err());
        assert!(verify_consistency(n, n, &new_root, &new_root, &[new_root]).is_err());
        // The empty tree is a prefix of every tree.
        assert!(verify_consistency(0, n, &empty_root(), &new_root, &[]).is_ok());
        assert!(verify_consistency(0, n, &other, &new_root, &[]).is_err());
        assert!(verify_consistency(0, n, &empty_root(), &new_root, &[other]).is_err());
    }
    assert!(consistency_proof(0, 5, &t).unwrap().is_empty());
    assert!(consistency_proof(6, 5, &t).unwrap().is_empty());
}

#[test]
fn memory_tree_reports_missing_nodes() {
    let t = memory_tree(3);
    assert_eq!(t.size(), 3);
    assert_eq!(t.node(1, 1), Err(MissingNode { level: 1, index: 1 }));
    assert_eq!(t.node(9, 0), Err(MissingNode { level: 9, index: 0 }));
    assert!(t.node(1, 0).is_ok());
    assert!(root(4, &t).is_err());
    assert_eq!(
        MissingNode { level: 1, index: 1 }.to_string(),
        "merkle node 1/1 is not in the tree"
    );
}
