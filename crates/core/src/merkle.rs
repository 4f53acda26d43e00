//! The receipt log's Merkle tree, hashed as in RFC 6962 / RFC 9162 §2.1.
//!
//! * leaf hash: `SHA-256(0x00 ‖ data)`
//! * node hash: `SHA-256(0x01 ‖ left ‖ right)`
//! * the empty tree's hash: `SHA-256("")`
//!
//! **Storage model.** Every *perfect*, aligned subtree is stored once, as the
//! node `(level, index)`: level 0 index `i` is the leaf hash of leaf `i`;
//! level `k` index `j` is the hash of leaves `[j·2^k, (j+1)·2^k)`. Appending a
//! leaf creates the leaf node and every parent it completes
//! ([`new_nodes`]); tree hashes of any size and all proofs are then computed
//! from O(log n) node reads through a [`NodeSource`].
//!
//! Proof generation follows RFC 6962 §2.1.1–2.1.2 (`PATH`, `SUBPROOF`), with
//! inclusion paths bottom-up as in RFC 9162 §2.1.3.1; verification follows
//! RFC 9162 §2.1.3.2 and §2.1.4.2.

use std::fmt;

use crate::CoreError;

mod reprove;

pub use reprove::{inclusion_in_older_tree, reprove_consistency_sizes};

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// Where the tree's perfect subtrees are read from (the hub's store, or a
/// [`MemoryTree`]).
pub trait NodeSource {
    /// Why a node could not be read.
    type Error;
    /// The hash of the perfect subtree of leaves
    /// `[index·2^level, (index+1)·2^level)`.
    fn node(&self, level: u8, index: u64) -> Result<Hash, Self::Error>;
}

/// The leaf hash of `data`: `SHA-256(0x00 ‖ data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(&[0x00]);
    ctx.update(data);
    to_hash(ctx.finish())
}

/// The interior node hash: `SHA-256(0x01 ‖ l ‖ r)`.
pub fn node_hash(l: &Hash, r: &Hash) -> Hash {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(&[0x01]);
    ctx.update(l);
    ctx.update(r);
    to_hash(ctx.finish())
}

/// The hash of the empty tree: SHA-256 of the empty string.
pub fn empty_root() -> Hash {
    crate::sha256(&[])
}

fn to_hash(d: ring::digest::Digest) -> Hash {
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// The largest power of two strictly less than `n` (`n >= 2`).
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// The nodes created by appending `leaf` (a leaf hash) as leaf number
/// `size_before`: the leaf node `(0, size_before)` followed by every parent
/// it completes, bottom-up. Parents take their left siblings from `src`,
/// which must hold the tree of the first `size_before` leaves.
pub fn new_nodes<S: NodeSource + ?Sized>(
    size_before: u64,
    leaf: Hash,
    src: &S,
) -> Result<Vec<(u8, u64, Hash)>, S::Error> {
    let mut out = vec![(0u8, size_before, leaf)];
    let (mut level, mut index, mut hash) = (0u8, size_before, leaf);
    while index & 1 == 1 {
        let left = src.node(level, index - 1)?;
        hash = node_hash(&left, &hash);
        index >>= 1;
        level += 1;
        out.push((level, index, hash));
    }
    Ok(out)
}

/// The tree hash (RFC 6962 `MTH`) of the first `size` leaves: the perfect
/// subtrees of `size`'s binary decomposition, combined right to left.
/// `size == 0` gives [`empty_root`].
pub fn root<S: NodeSource + ?Sized>(size: u64, src: &S) -> Result<Hash, S::Error> {
    subtree_hash(0, size, src)
}

/// `MTH(D[start:end])`, the tree hash of leaves `[start, end)`.
///
/// Takes O(log n) node reads when `start` is a multiple of the largest power
/// of two not above `end - start`, which holds for the root and for every
/// subtree used by inclusion and consistency proofs; other ranges are split
/// recursively and may read more. An empty range (`start >= end`) gives
/// [`empty_root`].
pub fn subtree_hash<S: NodeSource + ?Sized>(start: u64, end: u64, src: &S) -> Result<Hash, S::Error> {
    if start >= end {
        return Ok(empty_root());
    }
    let n = end - start;
    let top = 63 - n.leading_zeros(); // floor(log2 n)
    if start & ((1u64 << top) - 1) != 0 {
        // Unaligned: split as the definition of MTH does.
        let k = split_point(n);
        let left = subtree_hash(start, start + k, src)?;
        let right = subtree_hash(start + k, end, src)?;
        return Ok(node_hash(&left, &right));
    }
    // Aligned: MTH is the right fold of the perfect subtrees of n's binary
    // decomposition, largest (leftmost) first.
    let mut parts = Vec::with_capacity(n.count_ones() as usize);
    let mut offset = start;
    for level in (0..=top).rev() {
        if n & (1u64 << level) != 0 {
            parts.push(src.node(level as u8, offset >> level)?);
            offset += 1u64 << level;
        }
    }
    let mut acc = parts.pop().unwrap_or_else(empty_root);
    while let Some(left) = parts.pop() {
        acc = node_hash(&left, &acc);
    }
    Ok(acc)
}

/// The inclusion proof (RFC 6962 `PATH`) of leaf `index` in the tree of the
/// first `size` leaves, bottom-up (the sibling of the leaf first).
///
/// `index >= size` has no proof and gives an empty one, which
/// [`verify_inclusion`] rejects for such an index.
pub fn inclusion_proof<S: NodeSource + ?Sized>(index: u64, size: u64, src: &S) -> Result<Vec<Hash>, S::Error> {
    let mut top_down = Vec::new();
    if index >= size {
        return Ok(top_down);
    }
    let (mut start, mut end) = (0u64, size);
    while end - start > 1 {
        let k = split_point(end - start);
        if index < start + k {
            top_down.push(subtree_hash(start + k, end, src)?);
            end = start + k;
        } else {
            top_down.push(subtree_hash(start, start + k, src)?);
            start += k;
        }
    }
    top_down.reverse();
    Ok(top_down)
}

/// The consistency proof (RFC 6962 `PROOF`/`SUBPROOF`) between the tree of
/// the first `old_size` leaves and the tree of the first `new_size`.
///
/// It is empty when `old_size == new_size` (nothing to prove) and also when
/// `old_size == 0` or `old_size > new_size`, which have no proof.
pub fn consistency_proof<S: NodeSource + ?Sized>(old_size: u64, new_size: u64, src: &S) -> Result<Vec<Hash>, S::Error> {
    let mut top_down = Vec::new();
    if old_size == 0 || old_size >= new_size {
        return Ok(top_down);
    }
    let (mut start, mut end, mut m) = (0u64, new_size, old_size);
    // Whether the current subtree is still a prefix the old root covers.
    let mut whole = true;
    let mut base = None;
    loop {
        let n = end - start;
        if m == n {
            if !whole {
                base = Some(subtree_hash(start, end, src)?);
            }
            break;
        }
        let k = split_point(n);
        if m <= k {
            top_down.push(subtree_hash(start + k, end, src)?);
            end = start + k;
        } else {
            top_down.push(subtree_hash(start, start + k, src)?);
            start += k;
            m -= k;
            whole = false;
        }
    }
    Ok(base.into_iter().chain(top_down.into_iter().rev()).collect())
}

fn bad(why: &str) -> CoreError {
    CoreError::BadProof(why.to_owned())
}

/// Checks that `leaf` (a leaf hash) is leaf `index` of the tree of `size`
/// leaves whose root is `root` (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(leaf: &Hash, index: u64, size: u64, proof: &[Hash], root: &Hash) -> Result<(), CoreError> {
    if index >= size {
        return Err(bad("leaf index is not below the tree size"));
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if snode == 0 {
            return Err(bad("inclusion proof is too long"));
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(bad("inclusion proof is too short"));
    }
    if &r != root {
        return Err(bad("inclusion proof does not lead to the root"));
    }
    Ok(())
}

/// Checks that the tree of `new_size` leaves with root `new_root` extends
/// the tree of `old_size` leaves with root `old_root` (RFC 9162 §2.1.4.2).
///
/// Equal sizes need an empty proof and equal roots; an empty old tree is
/// consistent with every tree when `old_root` is [`empty_root`] and the proof
/// is empty.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), CoreError> {
    if old_size > new_size {
        return Err(bad("old tree is larger than the new tree"));
    }
    if old_size == new_size || old_size == 0 {
        if !proof.is_empty() {
            return Err(bad("consistency proof should be empty"));
        }
        if old_size == 0 {
            return if old_root == &empty_root() {
                Ok(())
            } else {
                Err(bad("root of the empty tree is wrong"))
            };
        }
        return if old_root == new_root {
            Ok(())
        } else {
            Err(bad("trees of the same size have different roots"))
        };
    }
    if proof.is_empty() {
        return Err(bad("consistency proof is empty"));
    }
    let (first, rest) = if old_size.is_power_of_two() {
        (old_root, proof)
    } else {
        match proof.split_first() {
            Some((first, rest)) => (first, rest),
            None => return Err(bad("consistency proof is empty")),
        }
    };
    let (mut fnode, mut snode) = (old_size - 1, new_size - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if snode == 0 {
            return Err(bad("consistency proof is too long"));
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(bad("consistency proof is too short"));
    }
    if &fr != old_root {
        return Err(bad("consistency proof does not lead to the old root"));
    }
    if &sr != new_root {
        return Err(bad("consistency proof does not lead to the new root"));
    }
    Ok(())
}

/// A node that a [`MemoryTree`] does not hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MissingNode {
    /// The node's level.
    pub level: u8,
    /// The node's index within its level.
    pub index: u64,
}

impl fmt::Display for MissingNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "merkle node {}/{} is not in the tree", self.level, self.index)
    }
}

impl std::error::Error for MissingNode {}

/// An in-memory tree using the same storage model as the hub: every perfect
/// aligned subtree, by level. For tests and tools.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryTree {
    levels: Vec<Vec<Hash>>,
}

impl MemoryTree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `data` as a leaf; returns its index.
    pub fn push(&mut self, data: &[u8]) -> u64 {
        self.push_leaf_hash(leaf_hash(data))
    }

    /// Appends a leaf by its leaf hash; returns its index.
    pub fn push_leaf_hash(&mut self, leaf: Hash) -> u64 {
        let index = self.size();
        // Build the nodes like the hub does, but without reading back
        // through `NodeSource` (siblings are at hand).
        let (mut level, mut i, mut hash) = (0usize, index, leaf);
        loop {
            if self.levels.len() == level {
                self.levels.push(Vec::new());
            }
            self.levels[level].push(hash);
            if i & 1 == 0 {
                break;
            }
            let left = &self.levels[level][self.levels[level].len() - 2];
            hash = node_hash(left, &hash);
            i >>= 1;
            level += 1;
        }
        index
    }

    /// The number of leaves.
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    /// The tree hash of all leaves.
    pub fn root(&self) -> Hash {
        match root(self.size(), self) {
            Ok(h) => h,
            // Every perfect subtree of the first `size` leaves is held.
            Err(e) => unreachable!("{e}"),
        }
    }
}

impl NodeSource for MemoryTree {
    type Error = MissingNode;
    fn node(&self, level: u8, index: u64) -> Result<Hash, MissingNode> {
        self.levels
            .get(level as usize)
            .and_then(|l| l.get(usize::try_from(index).ok()?))
            .copied()
            .ok_or(MissingNode { level, index })
    }
}

#[cfg(test)]
mod tests;
