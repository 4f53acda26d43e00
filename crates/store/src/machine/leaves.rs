//! A receipt and the Merkle nodes its append created, as one value under
//! `R` + index.
//!
//! Appending leaf `j` creates node `(0, j)` (the leaf hash) and one node
//! per level above it while `j`'s low bits are ones: `1 + j.trailing_ones()`
//! nodes, about two per leaf. Stored as keys of their own (`M` + level +
//! index) they were two thirds of the keys a receipt cost in sled, which
//! pays for every key it inserts (it copies the key's leaf). So they ride
//! in the receipt's value instead:
//!
//! `0x00`, count (u8), count × 32-byte hashes (level 0 first), receipt.
//!
//! A serialized `Receipt` never starts with `0x00` (field number 0 does not
//! exist in protobuf), so a value in the older layout — the receipt alone,
//! its nodes under `M` — is told apart by its first byte, and stores
//! written before keep working: node `(l, i)` is read from the value of the
//! leaf that created it, `((i + 1) << l) - 1`, and from `M` if that value
//! is in the older layout.

use truc_core::merkle::Hash;

use crate::keys;
use crate::StoreError;

/// First byte of a value in this layout.
const INLINE_NODES: u8 = 0;

/// The value of receipt `bytes` whose append created `nodes` (level 0
/// first).
pub(crate) fn encode(bytes: &[u8], nodes: &[Hash]) -> Vec<u8> {
    let mut v = Vec::with_capacity(2 + nodes.len() * 32 + bytes.len());
    v.push(INLINE_NODES);
    v.push(nodes.len() as u8);
    for n in nodes {
        v.extend_from_slice(n);
    }
    v.extend_from_slice(bytes);
    v
}

/// A value in this layout: its node hashes and its receipt.
struct Parts<'v> {
    nodes: &'v [u8],
    receipt: &'v [u8],
}

/// The parts of a value in this layout; `None` for the older layout (the
/// receipt alone).
fn split(value: &[u8]) -> Result<Option<Parts<'_>>, StoreError> {
    if value.first() != Some(&INLINE_NODES) {
        return Ok(None);
    }
    let count = *value.get(1).ok_or_else(|| corrupt("receipt value"))? as usize;
    let nodes = value.get(2..2 + count * 32).ok_or_else(|| corrupt("receipt value"))?;
    Ok(Some(Parts {
        nodes,
        receipt: &value[2 + count * 32..],
    }))
}

/// The serialized receipt in a value of either layout.
pub(crate) fn receipt(value: &[u8]) -> Result<&[u8], StoreError> {
    Ok(match split(value)? {
        Some(parts) => parts.receipt,
        None => value,
    })
}

/// Merkle node `(level, index)`, from the value of the leaf whose append
/// created it, or from its own `M` key in a store written before. `get`
/// reads a key (from a batch being built, or from the tree).
pub(crate) fn node<V: AsRef<[u8]>>(
    get: impl Fn(&[u8]) -> Result<Option<V>, StoreError>,
    level: u8,
    index: u64,
) -> Result<Hash, StoreError> {
    let missing = || corrupt(&format!("merkle node {level}/{index}"));
    let first = index
        .checked_add(1)
        .filter(|i| i.leading_zeros() >= level as u32)
        .ok_or_else(missing)?;
    let leaf = (first << level) - 1;
    let value = get(&keys::receipt(leaf))?
        .ok_or_else(|| corrupt(&format!("receipt {leaf}, which holds merkle node {level}/{index}")))?;
    let bytes = match split(value.as_ref())? {
        Some(parts) => parts
            .nodes
            .get(level as usize * 32..(level as usize + 1) * 32)
            .ok_or_else(missing)?,
        None => {
            return get(&keys::node(level, index))?
                .and_then(|v| Hash::try_from(v.as_ref()).ok())
                .ok_or_else(missing)
        }
    };
    Hash::try_from(bytes).map_err(|_| missing())
}

fn corrupt(what: &str) -> StoreError {
    StoreError::corrupt(what)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn nodes_are_found_in_the_value_of_the_leaf_that_created_them_or_under_m() {
        let h = |n: u8| [n; 32];
        let mut kv: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
        // Leaf 2 in the older layout, its node under M; leaf 3 in this one
        // with the three nodes its append created: (0,3), (1,1), (2,0).
        kv.insert(keys::receipt(2), b"\x08\x02old".to_vec());
        kv.insert(keys::node(0, 2), h(2).to_vec());
        kv.insert(keys::receipt(3), encode(b"\x08\x03new", &[h(30), h(31), h(32)]));
        let get = |k: &[u8]| Ok::<_, StoreError>(kv.get(k).cloned());
        assert_eq!(node(get, 0, 2).unwrap(), h(2));
        assert_eq!(node(get, 0, 3).unwrap(), h(30));
        assert_eq!(node(get, 1, 1).unwrap(), h(31));
        assert_eq!(node(get, 2, 0).unwrap(), h(32));
        assert_eq!(receipt(&kv[&keys::receipt(3)]).unwrap(), b"\x08\x03new");
        assert_eq!(receipt(&kv[&keys::receipt(2)]).unwrap(), b"\x08\x02old");
        // Missing or short: an error, never a made-up hash.
        assert!(node(get, 3, 0).is_err());
        assert!(node(get, 0, 9).is_err());
        kv.insert(keys::receipt(7), vec![0, 3, 1, 2]);
        let get = |k: &[u8]| Ok::<_, StoreError>(kv.get(k).cloned());
        assert!(node(get, 1, 3).is_err());
        assert!(receipt(&kv[&keys::receipt(7)]).is_err());
        assert!(node(get, 63, u64::MAX).is_err());
    }
}
