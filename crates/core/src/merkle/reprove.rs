//! An inclusion proof in an *older* tree, made from the proofs a log serves
//! against its latest one.
//!
//! A log proves receipts against its latest head (size `N`), but a witness
//! cosigned an earlier checkpoint (size `M ≤ N`); a c2sp.org/tlog-proof
//! needs the inclusion proof in the cosigned tree. Both RFC 9162
//! verification walks follow the path of one leaf, so for leaf `i < M`:
//!
//! - the first `t` hashes of any inclusion proof of leaf `i` (`t` the
//!   trailing one bits of `i`) are the left siblings inside the aligned
//!   block of `2^t` leaves ending at `i`: the same in every tree larger
//!   than `i`;
//! - above that block, the consistency proof from `i + 1` to `M` walks the
//!   path of leaf `i` in the tree of `M` (its first hash, present unless
//!   `i + 1` is a power of two, is the block itself);
//! - when `i + 1 == M` that proof is empty, and the path of the last leaf
//!   of `M` is instead the hashes of the consistency proof from `M` to `N`
//!   that fold into the old root.
//!
//! The result is checked against the older root before it is returned.

use super::{verify_inclusion, Hash};
use crate::CoreError;

/// The consistency proof [`inclusion_in_older_tree`] needs for leaf `index`
/// in the tree of `size` leaves when the log's latest tree has `latest`
/// leaves: `(old, new)` sizes, or `None` when no proof is needed (the leaf
/// is the last of `size` and `size == latest`).
pub fn reprove_consistency_sizes(index: u64, size: u64, latest: u64) -> Option<(u64, u64)> {
    if index + 1 < size {
        Some((index + 1, size))
    } else if size < latest {
        Some((size, latest))
    } else {
        None
    }
}

/// The inclusion proof of `leaf` (a leaf hash) at `index` in the tree of
/// `size` leaves and root `root`, from its inclusion proof `latest_proof`
/// in the tree of `latest` leaves (`latest >= size > index`) and the
/// consistency proof between the sizes [`reprove_consistency_sizes`]
/// names (empty when it names none). Fails when the proofs given do not
/// make a proof that verifies.
pub fn inclusion_in_older_tree(
    leaf: &Hash,
    index: u64,
    size: u64,
    root: &Hash,
    latest: u64,
    latest_proof: &[Hash],
    consistency: &[Hash],
) -> Result<Vec<Hash>, CoreError> {
    let bad = |why: &str| CoreError::BadProof(why.to_owned());
    if index >= size || size > latest {
        return Err(bad(
            "the leaf must be in the older tree, and the older tree no larger than the latest",
        ));
    }
    let t = index.trailing_ones() as usize;
    if latest_proof.len() < t {
        return Err(bad("the latest inclusion proof is too short"));
    }
    let mut proof = latest_proof[..t].to_vec();
    match reprove_consistency_sizes(index, size, latest) {
        None => proof = latest_proof.to_vec(),
        Some((old, _)) if index + 1 < size => {
            // The consistency walk from index + 1 is the leaf's path in the
            // older tree; its first hash (unless old is a power of two) is
            // the block the lower hashes lead to.
            let skip = usize::from(!old.is_power_of_two());
            proof.extend_from_slice(consistency.get(skip..).unwrap_or_default());
        }
        Some((old, new)) => {
            // The leaf is the older tree's last: keep the hashes the
            // consistency walk from `old` to `new` folds into the old root.
            let rest = if old.is_power_of_two() {
                consistency
            } else {
                consistency.get(1..).unwrap_or_default()
            };
            let (mut fnode, mut snode) = (old - 1, new - 1);
            while fnode & 1 == 1 {
                fnode >>= 1;
                snode >>= 1;
            }
            for c in rest {
                if snode == 0 {
                    break;
                }
                if fnode & 1 == 1 || fnode == snode {
                    proof.push(*c);
                    while fnode & 1 == 0 && fnode != 0 {
                        fnode >>= 1;
                        snode >>= 1;
                    }
                }
                fnode >>= 1;
                snode >>= 1;
            }
        }
    }
    verify_inclusion(leaf, index, size, &proof, root)
        .map_err(|_| bad("the proofs given do not prove the leaf in the older tree"))?;
    Ok(proof)
}

#[cfg(test)]
mod tests {
    use super::super::{consistency_proof, inclusion_proof, leaf_hash, root, MemoryTree};
    use super::*;

    /// Every leaf of every older size of every tree up to 40 leaves: the
    /// reproved path is exactly the one the older tree gives.
    #[test]
    fn reproved_paths_are_the_older_trees_own() {
        let mut tree = MemoryTree::new();
        for n in 0..40u64 {
            tree.push(format!("leaf {n}").as_bytes());
        }
        for latest in 1..=40u64 {
            for size in 1..=latest {
                let old_root = root(size, &tree).unwrap();
                for index in 0..size {
                    let leaf = leaf_hash(format!("leaf {index}").as_bytes());
                    let latest_proof = inclusion_proof(index, latest, &tree).unwrap();
                    let consistency = match reprove_consistency_sizes(index, size, latest) {
                        Some((a, b)) => consistency_proof(a, b, &tree).unwrap(),
                        None => Vec::new(),
                    };
                    let got =
                        inclusion_in_older_tree(&leaf, index, size, &old_root, latest, &latest_proof, &consistency)
                            .unwrap_or_else(|e| panic!("leaf {index} of {size} from {latest}: {e}"));
                    assert_eq!(
                        got,
                        inclusion_proof(index, size, &tree).unwrap(),
                        "{index} {size} {latest}"
                    );
                }
            }
        }
    }

    #[test]
    fn proofs_of_another_tree_do_not_reprove() {
        let mut a = MemoryTree::new();
        let mut b = MemoryTree::new();
        for n in 0..12u64 {
            a.push(format!("leaf {n}").as_bytes());
            b.push(format!("{} {n}", if n == 9 { "forked" } else { "leaf" }).as_bytes());
        }
        // Leaf 3 in the tree of 10, proven from b (which differs at leaf 9)
        // against a's root of 10.
        let leaf = leaf_hash(b"leaf 3");
        let r = inclusion_in_older_tree(
            &leaf,
            3,
            10,
            &root(10, &a).unwrap(),
            12,
            &inclusion_proof(3, 12, &b).unwrap(),
            &consistency_proof(4, 10, &b).unwrap(),
        );
        assert!(matches!(r, Err(CoreError::BadProof(_))), "{r:?}");
        assert!(inclusion_in_older_tree(&leaf, 10, 10, &[0; 32], 12, &[], &[]).is_err());
        assert!(inclusion_in_older_tree(&leaf, 3, 13, &[0; 32], 12, &[], &[]).is_err());
    }
}
