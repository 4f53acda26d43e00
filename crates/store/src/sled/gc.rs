//! Payload collection. A payload file in `payloads/` (or, in stores from
//! before the log beside sled, an inline payload under `P`) is needed while a
//! copy of a document that carries it is queued, leased or dead-lettered.
//! (Other inline payloads travel in their document's body, in the log, and
//! are not counted.) The writer counts those copies per
//! payload (`N`); when the count falls to 0 it notes the time (`K`, ordered
//! by time), and the collector deletes payloads released longer ago than the
//! retention. A payload an upload stored for a document the hub then
//! refused is counted by nobody: the hub releases it at the refusal
//! (`release_unreferenced`).
//!
//! Race with deduplication: an Upload that finds its payload already stored
//! skips the bytes. Both that decision and the collector's go through the
//! writer: the upload first *pins* the digest (an `Op::Pin`, answered with
//! whether the file is there), and the collector, applied in the same
//! single-threaded writer, never deletes a pinned digest. So either the pin
//! comes first and the payload stays until the new document counts as a
//! copy (the pin is released after its Send), or the collection comes first
//! and the file is already unlinked when the pin answers "absent": the
//! upload then receives the bytes.
//!
//! Crash safety: the collector unlinks the file (and syncs the directory)
//! before the batch that drops the `N`/`K` keys commits. A crash in between
//! leaves keys for a missing file, which the next pass removes (a pin
//! answers from the file system, so nobody relies on them). Every count
//! change is in the same atomic batch as the queue change that causes it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use truc_core::sync::Locked;

use prost::Message;

use super::pending::Pending;
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

/// Count `delta` copies (+1 or -1) of document `rec` in or out. A payload
/// that travels inside its document's body (the log beside sled) goes with
/// the body and is not counted: only payload files and, in stores from
/// before the log, `P` values are.
pub(super) fn add_ref(p: &mut Pending<'_>, rec: &DocumentRecord, delta: i64) -> Result<(), StoreError> {
    if !rec.external_payload && !rec.body.is_empty() {
        return Ok(());
    }
    let sha256 = rec.payload_sha256.as_slice();
    let key = keys::payload_refs(sha256);
    let mut r: PayloadRefs = p.get_msg(&key, "payload references")?.unwrap_or_default();
    if delta > 0 {
        if r.refs == 0 && r.released_at_unix_ms != 0 {
            p.del(keys::collectable(r.released_at_unix_ms, sha256));
            r.released_at_unix_ms = 0;
        }
        r.refs += delta as u64;
    } else {
        if r.refs == 0 {
            tracing::warn!(payload = %truc_core::hex(sha256), "payload reference count would go below 0");
            return Ok(());
        }
        r.refs = r.refs.saturating_sub(delta.unsigned_abs());
        if r.refs == 0 {
            r.released_at_unix_ms = p.time_unix_ms;
            p.put(keys::collectable(r.released_at_unix_ms, sha256), Vec::new());
        }
    }
    p.put(key, r.encode_to_vec());
    Ok(())
}

/// A payload no document counts (stored by an upload whose Send was then
/// refused) becomes collectable now; a counted one is left alone.
pub(super) fn release_unreferenced(p: &mut Pending<'_>, sha256: &[u8]) -> Result<(), StoreError> {
    let key = keys::payload_refs(sha256);
    if p.contains(&key)? {
        return Ok(());
    }
    let r = PayloadRefs {
        refs: 0,
        released_at_unix_ms: p.time_unix_ms,
    };
    p.put(keys::collectable(r.released_at_unix_ms, sha256), Vec::new());
    p.put(key, r.encode_to_vec());
    Ok(())
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

fn pinned(cache: &Cache, sha256: &[u8]) -> bool {
    cache.pins.locked().contains_key(sha256)
}

/// Delete up to `limit` payloads no copy has needed since before
/// `released_before_unix_ms`, unless pinned; returns how many.
pub(super) fn collect(
    p: &mut Pending<'_>,
    cache: &Cache,
    released_before_unix_ms: i64,
    limit: usize,
) -> Result<u64, StoreError> {
    let from = [tag::COLLECTABLE];
    let to = keys::collectable(released_before_unix_ms, &[]);
    let candidates = p.committed_keys(&from, &to, limit)?;
    let mut collected = 0;
    for k in candidates {
        let (Some(time), Some(sha)) = (k.get(1..9).and_then(keys::u64_value), k.get(9..)) else {
            return Err(StoreError::Corrupt("collectable payload key".into()));
        };
        let sha = sha.to_vec();
        let refs_key = keys::payload_refs(&sha);
        let current = p.get_msg::<PayloadRefs>(&refs_key, "payload references")?;
        if !matches!(&current, Some(r) if r.refs == 0 && r.released_at_unix_ms as u64 == time) {
            p.del(k); // needed again since: a stale index entry
            continue;
        }
        if pinned(cache, &sha) {
            continue; // an upload is using it; a later pass decides
        }
        let file = payload_file(cache, &sha);
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(file = %file.display(), error = %e, "cannot delete a collected payload; kept");
                continue;
            }
        }
        // Replicated: the shared copy goes too (kept, and retried at the
        // next pass, if it cannot).
        if let Some(r) = &cache.replica {
            if let Err(e) = r.delete_payload(&sha) {
                tracing::warn!(error = %e, "cannot delete a collected payload from the shared store; retrying later");
                continue;
            }
        }
        p.del(keys::payload(&sha));
        p.del(refs_key);
        p.del(k);
        collected += 1;
    }
    if collected > 0 {
        // The unlinks are durable before the keys go.
        let dir = cache.path.join("payloads");
        if let Err(e) = std::fs::File::open(&dir).and_then(|d| d.sync_all()) {
            if e.kind() != std::io::ErrorKind::NotFound {
                return Err(StoreError::Unavailable(format!("{}: {e}", dir.display())));
            }
        }
    }
    Ok(collected)
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
pub(super) fn count_refs(tree: &sled::Tree, data_dir: &std::path::Path, now: i64) -> Result<sled::Batch, StoreError> {
    let mut counts: HashMap<Vec<u8>, u64> = HashMap::new();
    for t in [tag::OUTBOX, tag::DEAD] {
        for kv in tree.scan_prefix([t]) {
            let (_, v) = kv?;
            let e = OutboxEntry::decode(v.as_ref()).map_err(|_| StoreError::Corrupt("outbox entry".into()))?;
            if e.status_receipt.is_some() {
                continue;
            }
            let d = tree
                .get(keys::document(e.hub_id))?
                .ok_or_else(|| StoreError::Corrupt(format!("document {}", e.hub_id)))?;
            let d = DocumentRecord::decode(d.as_ref()).map_err(|_| StoreError::Corrupt("document".into()))?;
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
    let mut batch = sled::Batch::default();
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
