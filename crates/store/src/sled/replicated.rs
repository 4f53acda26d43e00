//! The local tree as a view of the shared log (see `crate::replica`):
//! applying entries other hubs appended.

use truc_core::sync::Locked;
use truc_core::sync::ReadWriteLocked;

use prost::Message;

use super::Cache;
use crate::keys::{self, tag};
use crate::records::AgencyRecord;
use crate::replica::{self, Replicator};
use crate::OutboxEvents;
use crate::StoreError;

/// Entries applied per local batch while catching up.
const CATCH_UP_CHUNK: u64 = 256;

/// The log position the tree reflects (0: none yet).
pub(super) fn applied(tree: &crate::sled::view::Tree) -> Result<u64, StoreError> {
    Ok(tree
        .get(keys::replica_seq())?
        .and_then(|v| keys::u64_value(&v))
        .unwrap_or(0))
}

/// Apply entries `applied + 1 ..= last` to the tree and the cache, and
/// publish their outbox changes to `events`; returns the new position.
pub(super) fn catch_up(
    tree: &crate::sled::view::Tree,
    cache: &Cache,
    replica: &dyn Replicator,
    applied: u64,
    last: u64,
    events: Option<&OutboxEvents>,
) -> Result<u64, StoreError> {
    let mut seq = applied;
    while seq < last {
        let upto = (seq + CATCH_UP_CHUNK).min(last);
        let mut batch = crate::sled::view::Batch::default();
        let mut agencies = Vec::new();
        let mut counts = Vec::new();
        let mut outbox: Vec<(Vec<u8>, bool)> = Vec::new();
        let mut collected: Vec<Vec<u8>> = Vec::new();
        for s in seq + 1..=upto {
            let entry = replica::decode(s, &replica.read(s)?)?;
            for c in entry.changes {
                match (c.key.first().copied(), &c.value) {
                    (Some(tag::AGENCY), Some(v)) => agencies.push(
                        AgencyRecord::decode(v.as_slice())
                            .map_err(|e| StoreError::corrupt_from(format!("agency in {s}"), e))?,
                    ),
                    (Some(tag::AGENCY), None) => agencies.push(crate::machine::agencies::removal(
                        String::from_utf8_lossy(&c.key[1..]).into_owned(),
                    )),
                    (Some(tag::QUEUED_COUNT), Some(v)) => {
                        let code = String::from_utf8_lossy(&c.key[1..]).into_owned();
                        let count = v.get(..8).and_then(keys::u64_value).unwrap_or(0);
                        let bytes = v.get(8..16).and_then(keys::u64_value).unwrap_or(0);
                        counts.push((code, (count, bytes)));
                    }
                    (Some(tag::OUTBOX), v) => outbox.push((c.key.clone(), v.is_some())),
                    // Only collection deletes a payload's references.
                    (Some(tag::PAYLOAD_REFS), None) => collected.push(c.key[1..].to_vec()),
                    _ => {}
                }
                match c.value {
                    Some(v) => batch.insert(c.key, v),
                    None => batch.remove(c.key),
                }
            }
        }
        batch.insert(keys::replica_seq(), upto.to_be_bytes().to_vec());
        tree.apply_batch(batch)?;
        for sha in &collected {
            super::gc::forget_collected(cache, sha);
        }
        if let Some(ev) = events {
            ev.publish(outbox.iter().map(|(k, w)| (k.as_slice(), *w)));
        }
        {
            let mut map = cache.agencies.write_locked();
            for a in agencies {
                if crate::machine::agencies::is_removal(&a) {
                    map.remove(&a.code);
                } else {
                    map.insert(a.code.clone(), a);
                }
            }
        }
        {
            let mut q = cache.queued.locked();
            for (code, v) in counts {
                q.insert(code, v);
            }
        }
        seq = upto;
    }
    Ok(seq)
}
