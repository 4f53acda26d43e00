//! Independent reference: RFC 6962 §2.1 `MTH`, `PATH` and `SUBPROOF`,
//! recursive over a list of leaf hashes, with SHA-256 over concatenated
//! buffers.

use std::cell::RefCell;
use std::collections::HashMap;

use super::leaf_data;
use crate::merkle::Hash;

pub(super) fn ref_leaf(data: &[u8]) -> Hash {
    let mut buf = vec![0x00];
    buf.extend_from_slice(data);
    crate::sha256(&buf)
}

pub(super) fn ref_node(l: &Hash, r: &Hash) -> Hash {
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

pub(super) struct Reference {
    pub(super) leaves: Vec<Hash>,
    memo: RefCell<HashMap<(usize, usize), Hash>>,
}

impl Reference {
    pub(super) fn new(n: usize) -> Self {
        let leaves = (0..n).map(|i| ref_leaf(&leaf_data(i))).collect();
        Reference {
            leaves,
            memo: RefCell::new(HashMap::new()),
        }
    }

    /// MTH(D[a:b]).
    pub(super) fn mth(&self, a: usize, b: usize) -> Hash {
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
    pub(super) fn path(&self, m: usize, a: usize, b: usize) -> Vec<Hash> {
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
    pub(super) fn subproof(&self, m: usize, a: usize, b: usize, whole: bool) -> Vec<Hash> {
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
