use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use super::*;

fn hx(s: &str) -> Hash {
    assert_eq!(s.len(), 64, "{s}");
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

// ---------------------------------------------------------------------------
// Independent reference: RFC 6962 §2.1 MTH, PATH and SUBPROOF, recursive over
// a list of leaf hashes, with SHA-256 over concatenated buffers.
// ---------------------------------------------------------------------------

fn ref_leaf(data: &[u8]) -> Hash {
    let mut buf = vec![0x00];
    buf.extend_from_slice(data);
    crate::sha256(&buf)
}

fn ref_node(l: &Hash, r: &Hash) -> Hash {
    let mut buf = vec![0x01];
    buf.extend_from_slice(l);
    buf.extend_from_slice(r);
    crate::sha256(&buf)
}

/// The largest power of two smaller than n, by counting up.
fn ref_k(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

struct Reference {
    leaves: Vec<Hash>,
    memo: RefCell<HashMap<(usize, usize), Hash>>,
}

impl Reference {
    fn new(n: usize) -> Self {
        let leaves = (0..n).map(|i| ref_leaf(&leaf_data(i))).collect();
        Reference { leaves, memo: RefCell::new(HashMap::new()) }
    }

    /// MTH(D[a:b]).
    fn mth(&self, a: usize, b: usize) -> Hash {
        let n = b - a;
        if n == 0 {
            return crate::sha256(b"");
        }
        if n == 1 {
            return self.leaves[a];
        }
        if let Some(h) = self.memo.borrow().get(&(a, b)) {
            return *h;
        }
        let k = ref_k(n);
        let h = ref_node(&self.mth(a, a + k), &self.mth(a + k, b));
        self.memo.borrow_mut().insert((a, b), h);
        h
    }

    /// PATH(m, D[a:b]).
    fn path(&self, m: usize, a: usize, b: usize) -> Vec<Hash> {
        let n = b - a;
        if n <= 1 {
            return vec![];
        }
        let k = ref_k(n);
        if m < k {
            let mut p = self.path(m, a, a + k);
            p.push(self.mth(a + k, b));
            p
        } else {
            let mut p = self.path(m - k, a + k, b);
            p.push(self.mth(a, a + k));
            p
        }
    }

    /// SUBPROOF(m, D[a:b], whole).
    fn subproof(&self, m: usize, a: usize, b: usize, whole: bool) -> Vec<Hash> {
        let n = b - a;
        if m == n {
            return if whole { vec![] } else { vec![self.mth(a, b)] };
        }
        let k = ref_k(n);
        if m <= k {
            let mut p = self.subproof(m, a, a + k, whole);
            p.push(self.mth(a + k, b));
            p
        } else {
            let mut p = self.subproof(m - k, a + k, b, false);
            p.push(self.mth(a, a + k));
            p
        }
    }
}

fn leaf_data(i: usize) -> Vec<u8> {
    format!("receipt {i}").into_bytes()
}

fn memory_tree(n: usize) -> MemoryTree {
    let mut t = MemoryTree::new();
    for i in 0..n {
        assert_eq!(t.push(&leaf_data(i)), i as u64);
    }
    t
}

// ---------------------------------------------------------------------------
// Published vectors (RFC 6962 test data of certificate-transparency /
// transparency-dev/merkle `testonly` and `proof/verify_test.go`).
// ---------------------------------------------------------------------------

const CT_LEAVES: [&str; 8] =
    ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"];

const CT_ROOTS: [&str; 9] = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

fn ct_tree() -> MemoryTree {
    let mut t = MemoryTree::new();
    for l in CT_LEAVES {
        t.push(&unhex(l));
    }
    t
}

#[test]
fn hash_primitives_match_rfc6962_vectors() {
    assert_eq!(empty_root(), hx(CT_ROOTS[0]));
    assert_eq!(leaf_hash(b""), hx("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"));
    assert_eq!(leaf_hash(b"L123456"), hx("395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56"));
    let (l, r) = ([1u8; 32], [2u8; 32]);
    assert_eq!(node_hash(&l, &r), ref_node(&l, &r));
    assert_ne!(node_hash(&l, &r), node_hash(&r, &l));
    assert_eq!(leaf_hash(b"abc"), ref_leaf(b"abc"));
}

#[test]
fn roots_match_ct_vectors() {
    let t = ct_tree();
    assert_eq!(t.root(), hx(CT_ROOTS[8]));
    for (size, want) in CT_ROOTS.iter().enumerate() {
        assert_eq!(root(size as u64, &t).unwrap(), hx(want), "size {size}");
    }
    assert_eq!(MemoryTree::new().root(), empty_root());
}

#[test]
fn inclusion_proofs_match_ct_vectors() {
    // (0-based index, size, proof); verify_test.go numbers leaves from 1.
    let vectors: [(u64, u64, &[&str]); 7] = [
        (0, 1, &[]),
        (0, 2, &["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"]),
        (1, 2, &["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"]),
        (2, 3, &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
        (
            1,
            5,
            &[
                "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
        (
            0,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            5,
            8,
            &[
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
    ];
    let t = ct_tree();
    for (index, size, want) in vectors {
        let want: Vec<Hash> = want.iter().map(|h| hx(h)).collect();
        assert_eq!(inclusion_proof(index, size, &t).unwrap(), want, "{index}/{size}");
        let leaf = leaf_hash(&unhex(CT_LEAVES[index as usize]));
        verify_inclusion(&leaf, index, size, &want, &hx(CT_ROOTS[size as usize])).unwrap();
    }
}

#[test]
fn consistency_proofs_match_ct_vectors() {
    let vectors: [(u64, u64, &[&str]); 4] = [
        (1, 1, &[]),
        (
            1,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            6,
            8,
            &[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            5,
            &[
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
    ];
    let t = ct_tree();
    for (m, n, want) in vectors {
        let want: Vec<Hash> = want.iter().map(|h| hx(h)).collect();
        assert_eq!(consistency_proof(m, n, &t).unwrap(), want, "{m}->{n}");
        let (old, new) = (hx(CT_ROOTS[m as usize]), hx(CT_ROOTS[n as usize]));
        verify_consistency(m, n, &old, &new, &want).unwrap();
    }
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
        let end = (index + 1).checked_shl(level as u32).filter(|e| *e <= self.size);
        match end {
            Some(_) if level < 64 => {
                let mut b = vec![level];
                b.extend_from_slice(&index.to_be_bytes());
                Ok(crate::sha256(&b))
            }
            _ => Err(format!("node {level}/{index} beyond size {}", self.size)),
        }
    }
}

#[test]
fn node_reads_are_logarithmic() {
    let sizes = [1u64, 2, 3, 7, 8, 255, 257, 1 << 20, (1 << 40) + 12345, u64::MAX / 3, u64::MAX];
    for &size in &sizes {
        let s = Synthetic { size, reads: Cell::new(0) };
        let bits = 64 - size.leading_zeros() as u64;
        root(size, &s).unwrap();
        assert!(s.reads.get() <= bits, "root({size}) read {}", s.reads.get());
        for index in [0, size / 3, size / 2, size - 1] {
            s.reads.set(0);
            let p = inclusion_proof(index, size, &s).unwrap();
            assert!(p.len() as u64 <= bits);
            assert!(s.reads.get() <= 2 * bits + 1, "path {index}/{size} read {}", s.reads.get());
        }
        for old in [1, size / 3, size / 2, size - 1, size] {
            if old == 0 {
                continue;
            }
            s.reads.set(0);
            consistency_proof(old, size, &s).unwrap();
            assert!(s.reads.get() <= 3 * bits + 1, "proof {old}->{size} read {}", s.reads.get());
        }
    }
    // Appending after u64::MAX - 1 leaves completes 63 parents, not more.
    let s = Synthetic { size: u64::MAX, reads: Cell::new(0) };
    assert_eq!(new_nodes(u64::MAX - 1, [0; 32], &s).unwrap().len(), 1);
    assert_eq!(new_nodes((1 << 63) - 1, [0; 32], &s).unwrap().len(), 64);
}

// ---------------------------------------------------------------------------
// Wrong proofs fail.
// ---------------------------------------------------------------------------

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
    assert_eq!(MissingNode { level: 1, index: 1 }.to_string(), "merkle node 1/1 is not in the tree");
}
