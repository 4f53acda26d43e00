//! The local tree as a view of the shared log (see `crate::replica`):
//! applying entries other hubs appended.

use std::collections::BTreeSet;
use std::sync::Arc;

use prost::Message;

use super::Cache;
use crate::keys::{self, tag};
use crate::records::AgencyRecord;
use crate::replica::{self, RemoteObserver, Replicator};
use crate::StoreError;

/// Entries applied per local batch while catching up.
const CATCH_UP_CHUNK: u64 = 256;

/// The writer's link to the shared log.
pub(super) struct Follower {
    pub(super) replica: Arc<dyn Replicator>,
    /// The last log entry the local tree reflects.
    pub(super) applied: u64,
    pub(super) on_remote: Option<RemoteObserver>,
}

/// The log position the tree reflects (0: none yet).
pub(super) fn applied(tree: &sled::Tree) -> Result<u64, StoreError> {
    Ok(tree
        .get(keys::replica_seq())?
        .and_then(|v| keys::u64_value(&v))
        .unwrap_or(0))
}

/// Apply entries `applied + 1 ..= last` to the tree and the cache; returns
/// the new position and the agencies whose outbox got items.
pub(super) fn catch_up(
    tree: &sled::Tree,
    cache: &Cache,
    replica: &dyn Replicator,
    applied: u64,
    last: u64,
) -> Result<(u64, Vec<String>), StoreError> {
    let mut seq = applied;
    let mut notify = BTreeSet::new();
    while seq < last {
        let upto = (seq + CATCH_UP_CHUNK).min(last);
        let mut batch = sled::Batch::default();
        let mut agencies = Vec::new();
        let mut counts = Vec::new();
        for s in seq + 1..=upto {
            let entry = replica::decode(s, &replica.read(s)?)?;
            for c in entry.changes {
                match (c.key.first().copied(), &c.value) {
                    (Some(tag::AGENCY), Some(v)) => agencies.push(
                        AgencyRecord::decode(v.as_slice())
                            .map_err(|_| StoreError::Corrupt(format!("agency in {s}")))?,
                    ),
                    (Some(tag::AGENCY), None) => agencies.push(super::agencies::removal(
                        String::from_utf8_lossy(&c.key[1..]).into_owned(),
                    )),
                    (Some(tag::QUEUED_COUNT), Some(v)) => {
                        let code = String::from_utf8_lossy(&c.key[1..]).into_owned();
                        let count = v.get(..8).and_then(keys::u64_value).unwrap_or(0);
                        let bytes = v.get(8..16).and_then(keys::u64_value).unwrap_or(0);
                        counts.push((code, (count, bytes)));
                    }
                    (Some(tag::OUTBOX), Some(_)) if c.key.len() > 10 => {
                        notify.insert(String::from_utf8_lossy(&c.key[1..c.key.len() - 9]).into_owned());
                    }
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
        {
            let mut map = cache.agencies.write().unwrap_or_else(|e| e.into_inner());
            for a in agencies {
                if super::agencies::is_removal(&a) {
                    map.remove(&a.code);
                } else {
                    map.insert(a.code.clone(), a);
                }
            }
        }
        {
            let mut q = cache.queued.lock().unwrap_or_else(|e| e.into_inner());
            for (code, v) in counts {
                q.insert(code, v);
            }
        }
        seq = upto;
    }
    Ok((seq, notify.into_iter().collect()))
}
