//! Reading receipts back with what proves them: signed tree heads,
//! inclusion proofs and consistency proofs, from the committed tree.

use prost::Message;
use truc_core::merkle;
use truc_proto::v1::{ProvenReceipt, SignedTreeHead};

use crate::keys::{self, tag};
use crate::machine::batch::TreeNodes;
use crate::machine::leaves;
use crate::StoreError;

fn decode_head(v: &[u8], size: u64) -> Result<SignedTreeHead, StoreError> {
    SignedTreeHead::decode(v).map_err(|e| StoreError::corrupt_from(format!("tree head {size}"), e))
}

/// The signed tree head of the batch that appended leaf `index`: the first
/// head whose size is greater than `index`.
pub(super) fn batch_tree_head(tree: &crate::sled::view::Tree, index: u64) -> Result<(SignedTreeHead, u64), StoreError> {
    let start = keys::tree_head(index + 1);
    let end = keys::tree_head(u64::MAX);
    let (k, v) = tree
        .range(start..=end)
        .next()
        .transpose()?
        .ok_or_else(|| StoreError::corrupt(format!("tree head covering receipt {index}")))?;
    let size = keys::queue_item_id(&k).unwrap_or(0);
    Ok((decode_head(&v, size)?, size))
}

/// The latest signed tree head and its size, if the log is not empty.
pub(super) fn latest_tree_head(tree: &crate::sled::view::Tree) -> Result<Option<(SignedTreeHead, u64)>, StoreError> {
    match tree.scan_prefix([tag::TREE_HEAD]).next_back().transpose()? {
        None => Ok(None),
        Some((k, v)) => {
            let size = keys::queue_item_id(&k).unwrap_or(0);
            Ok(Some((decode_head(&v, size)?, size)))
        }
    }
}

/// The head signed when the log had exactly `size` leaves.
pub(super) fn tree_head_at(tree: &crate::sled::view::Tree, size: u64) -> Result<Option<SignedTreeHead>, StoreError> {
    tree.get(keys::tree_head(size))?
        .map(|v| decode_head(&v, size))
        .transpose()
}

/// Up to `limit` signed tree heads from size `from` on, in increasing size,
/// and the size to continue from (0: none left).
pub(super) fn tree_heads(
    tree: &crate::sled::view::Tree,
    from: u64,
    limit: usize,
) -> Result<(Vec<SignedTreeHead>, u64), StoreError> {
    let mut heads = Vec::new();
    for kv in tree.range(keys::tree_head(from)..=keys::tree_head(u64::MAX)) {
        let (k, v) = kv?;
        let size = keys::queue_item_id(&k).unwrap_or(0);
        if heads.len() == limit {
            return Ok((heads, size));
        }
        heads.push(decode_head(&v, size)?);
    }
    Ok((heads, 0))
}

/// Serialized receipt `index`.
pub(super) fn receipt_bytes(tree: &crate::sled::view::Tree, index: u64) -> Result<Vec<u8>, StoreError> {
    let value = tree
        .get(keys::receipt(index))?
        .ok_or_else(|| StoreError::corrupt(format!("receipt {index}")))?;
    Ok(leaves::receipt(&value)?.to_vec())
}

/// Receipt `index` with its inclusion proof in a tree of `size` leaves.
pub(super) fn proven_at(tree: &crate::sled::view::Tree, index: u64, size: u64) -> Result<ProvenReceipt, StoreError> {
    let proof = merkle::inclusion_proof(index, size, &TreeNodes(tree))?;
    Ok(ProvenReceipt {
        receipt: receipt_bytes(tree, index)?,
        tree_head: None,
        inclusion_proof: proof.into_iter().map(|h| h.to_vec()).collect(),
        leaf_index: index,
        tree_size: size,
    })
}

/// Receipt `index` with its batch's signed tree head and inclusion proof.
pub(super) fn proven_receipt(tree: &crate::sled::view::Tree, index: u64) -> Result<ProvenReceipt, StoreError> {
    let (sth, size) = batch_tree_head(tree, index)?;
    let mut r = proven_at(tree, index, size)?;
    r.tree_head = Some(sth);
    Ok(r)
}

/// RFC 9162 consistency proof between two sizes of the committed log.
pub(super) fn consistency(tree: &crate::sled::view::Tree, old: u64, new: u64) -> Result<Vec<[u8; 32]>, StoreError> {
    let size = latest_tree_head(tree)?.map(|(_, s)| s).unwrap_or(0);
    if old == 0 || old > new || new > size {
        return Err(StoreError::InvalidArgument(format!(
            "consistency proof needs 1 <= old_size <= new_size <= {size} (the log's size); got {old} and {new}"
        )));
    }
    merkle::consistency_proof(old, new, &TreeNodes(tree))
}
