//! Payload collection, as the rules see it. A payload file in `payloads/` (or, in stores from
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

use prost::Message;

use super::batch::Batch;
use super::Env;
use crate::keys::{self, tag};
use crate::records::{DocumentRecord, PayloadRefs};
use crate::StoreError;

/// Count `delta` copies (+1 or -1) of document `rec` in or out. A payload
/// that travels inside its document's body (the log beside sled) goes with
/// the body and is not counted: only payload files and, in stores from
/// before the log, `P` values are.
pub(crate) fn add_ref(p: &mut Batch<'_>, rec: &DocumentRecord, delta: i64) -> Result<(), StoreError> {
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
pub(crate) fn release_unreferenced(p: &mut Batch<'_>, sha256: &[u8]) -> Result<(), StoreError> {
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

/// Delete up to `limit` payloads no copy has needed since before
/// `released_before_unix_ms`, unless pinned; returns how many.
pub(crate) fn collect(
    p: &mut Batch<'_>,
    env: &dyn Env,
    released_before_unix_ms: i64,
    limit: usize,
) -> Result<u64, StoreError> {
    let from = [tag::COLLECTABLE];
    let to = keys::collectable(released_before_unix_ms, &[]);
    let candidates = p.committed_keys(&from, &to, limit)?;
    let mut collected = 0;
    for k in candidates {
        let (Some(time), Some(sha)) = (k.get(1..9).and_then(keys::u64_value), k.get(9..)) else {
            return Err(StoreError::corrupt("collectable payload key"));
        };
        let sha = sha.to_vec();
        let refs_key = keys::payload_refs(&sha);
        let current = p.get_msg::<PayloadRefs>(&refs_key, "payload references")?;
        if !matches!(&current, Some(r) if r.refs == 0 && r.released_at_unix_ms as u64 == time) {
            p.del(k); // needed again since: a stale index entry
            continue;
        }
        if env.pinned(&sha) {
            continue; // an upload is using it; a later pass decides
        }
        if !env.delete_payload(&sha) {
            continue; // kept; the next pass retries
        }
        p.del(keys::payload(&sha));
        p.del(refs_key);
        p.del(k);
        collected += 1;
    }
    if collected > 0 {
        // The deletions are durable before the keys go.
        env.deletions_durable()?;
    }
    Ok(collected)
}
