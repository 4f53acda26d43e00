//! The payload files' side of collection (the rules are in
//! `machine/payloads.rs`): pins held by uploads in progress, deleting a
//! collected payload's file (and its shared copy), moving a damaged one
//! aside, and counting every payload's copies once in a store from before
//! collection.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use truc_core::sync::Locked;

use prost::Message;

use super::Cache;
use crate::keys::{self, tag};
use crate::records::{DocumentRecord, OutboxEntry, PayloadRefs};
use crate::{PayloadPin, StoreError};

/// Digests pinned by uploads in progress → how many pins.
pub(super) type Pins = Arc<Mutex<HashMap<Vec<u8>, usize>>>;

/// The payload file of `sha256` (see `PayloadFiles`: `<data dir>/payloads`).
fn payload_file(cache: &Cache, sha256: &[u8]) -> PathBuf {
    cache.path.join("payloads").join(truc_core::hex(sha256))
}

/// Pin `sha256` against collection (in the writer, so it is ordered with
/// every collection) and say whether its file is there.
pub(super) fn pin(cache: &Cache, sha256: Vec<u8>) -> PayloadPin {
    *cache.pins.locked().entry(sha256.clone()).or_insert(0) += 1;
    let present = payload_file(cache, &sha256).is_file();
    let pins = cache.pins.clone();
    PayloadPin::new(Some(present), move || {
        let mut map = pins.locked();
        if let Some(n) = map.get_mut(&sha256) {
            *n -= 1;
            if *n == 0 {
                map.remove(&sha256);
            }
        }
    })
}

pub(super) fn pinned(cache: &Cache, sha256: &[u8]) -> bool {
    cache.pins.locked().contains_key(sha256)
}

/// Delete a collected payload's shared copy (replicated), then its file;
/// false when it must be kept for now (a later pass retries).
///
/// The shared copy goes first. A read that finds no file here fetches the
/// payload from the shared store (`Replicator::get_payload`). With the file
/// deleted first, a read between the two deletions fetched the payload back
/// into the file just deleted, after its keys were gone, so nothing would
/// ever collect it again, and the hub went on serving a collected payload.
/// In this order, while the shared copy exists the file does too, and a read
/// is served from the file.
pub(super) fn delete_payload(cache: &Cache, sha256: &[u8]) -> bool {
    if let Some(r) = &cache.replica {
        if let Err(e) = r.delete_payload(sha256) {
            tracing::warn!(error = %e, "cannot delete a collected payload from the shared store; retrying later");
            return false;
        }
    }
    match remove_payload_file(cache, sha256) {
        Ok(()) => true,
        Err((file, e)) => {
            tracing::warn!(file = %file.display(), error = %e, "cannot delete a collected payload; kept");
            false
        }
    }
}

/// Another hub collected the payload `sha256` (its references went from
/// the shared log): delete this hub's copy, fetched when an agency
/// downloaded it here. Nothing else would: this hub's collector only sees
/// payloads the log still counts. Kept while an upload here pins it (its
/// Send shares the payload again and counts it anew).
pub(super) fn forget_collected(cache: &Cache, sha256: &[u8]) {
    if pinned(cache, sha256) {
        return;
    }
    if let Err((file, e)) = remove_payload_file(cache, sha256) {
        tracing::warn!(
            file = %file.display(),
            error = %e,
            "cannot delete the copy of a payload another hub collected; it stays on disk"
        );
    }
}

/// Remove the payload file of `sha256`; one already gone is not an error.
fn remove_payload_file(cache: &Cache, sha256: &[u8]) -> Result<(), (PathBuf, std::io::Error)> {
    let file = payload_file(cache, sha256);
    match std::fs::remove_file(&file) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err((file, e)),
        _ => Ok(()),
    }
}

/// Sync the payload directory: the unlinks are durable before the keys
/// that counted the payloads go.
pub(super) fn sync_payload_dir(cache: &Cache) -> Result<(), StoreError> {
    let dir = cache.path.join("payloads");
    match std::fs::File::open(&dir).and_then(|d| d.sync_all()) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(StoreError::unavailable_from(format!("{}", dir.display()), e))
        }
        _ => Ok(()),
    }
}

/// Move the damaged payload file `sha256` out of `payloads/` into
/// `quarantine/` (kept for inspection), so that it is never served again
/// and an upload of the same payload takes the bytes. Returns where it is
/// now (`None`: it was not there).
pub(super) fn quarantine_payload_file(cache: &Cache, sha256: &[u8]) -> Result<Option<PathBuf>, StoreError> {
    let name = truc_core::hex(sha256);
    let from = cache.path.join("payloads").join(&name);
    let dir = cache.path.join("quarantine");
    let io = |p: &Path, e: std::io::Error| StoreError::unavailable(format!("{}: {e}", p.display()));
    std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
    let to = dir.join(format!("{name}.{}", truc_core::now_unix_ms()));
    match std::fs::rename(&from, &to) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(&from, e)),
    }
    for d in [cache.path.join("payloads"), dir] {
        std::fs::File::open(&d)
            .and_then(|f| f.sync_all())
            .map_err(|e| io(&d, e))?;
    }
    Ok(Some(to))
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() != 64 {
        return None;
    }
    (0..32)
        .map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

/// For a store from before payload collection: count the copies of every
/// payload once, and mark the payloads nothing needs as released now.
/// Returns the batch to apply with the meta that says it is done.
pub(super) fn count_refs(
    tree: &crate::sled::view::Tree,
    data_dir: &std::path::Path,
    now: i64,
) -> Result<crate::sled::view::Batch, StoreError> {
    let mut counts: HashMap<Vec<u8>, u64> = HashMap::new();
    for t in [tag::OUTBOX, tag::DEAD] {
        for kv in tree.scan_prefix([t]) {
            let (_, v) = kv?;
            let e = OutboxEntry::decode(v.as_ref()).map_err(|e| StoreError::corrupt_from("outbox entry", e))?;
            if e.status_receipt.is_some() {
                continue;
            }
            let d = tree
                .get(keys::document(e.hub_id))?
                .ok_or_else(|| StoreError::corrupt(format!("document {}", e.hub_id)))?;
            let d = DocumentRecord::decode(d.as_ref()).map_err(|e| StoreError::corrupt_from("document", e))?;
            if !d.external_payload && !d.body.is_empty() {
                continue; // in the body log, not counted (see `add_ref`)
            }
            *counts.entry(d.payload_sha256).or_insert(0) += 1;
        }
    }
    for kv in tree.scan_prefix([tag::PAYLOAD]) {
        let (k, _) = kv?;
        counts.entry(k[1..].to_vec()).or_insert(0);
    }
    if let Ok(dir) = std::fs::read_dir(data_dir.join("payloads")) {
        for e in dir.flatten() {
            if let Some(sha) = e.file_name().to_str().and_then(unhex) {
                counts.entry(sha).or_insert(0);
            }
        }
    }
    let mut batch = crate::sled::view::Batch::default();
    for (sha, refs) in counts {
        let released = if refs == 0 { now } else { 0 };
        if refs == 0 {
            batch.insert(keys::collectable(released, &sha), Vec::new());
        }
        let r = PayloadRefs {
            refs,
            released_at_unix_ms: released,
        };
        batch.insert(keys::payload_refs(&sha), r.encode_to_vec());
    }
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::unhex;

    #[test]
    fn unhex_reads_digests_only() {
        let h = truc_core::hex(&[0xab; 32]);
        assert_eq!(unhex(&h), Some(vec![0xab; 32]));
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex(&"zz".repeat(32)), None);
    }
}
