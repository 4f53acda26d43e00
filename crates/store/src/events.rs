//! The one path from commit to delivery: what committed batches changed in
//! the outboxes, for the hub's delivery engine.
//!
//! The writer publishes here after every batch it commits, and so does the
//! catch-up with a shared log (batches other hubs committed), from the
//! batch's own key changes: an outbox key written is a copy that may be
//! delivered (new, or back under its old id after a lease ran out, a
//! redrive, a restore); an outbox key deleted is a copy that is gone
//! (acknowledged, withdrawn, dead-lettered). Handlers that change the store
//! tell the engine nothing: whatever changes an outbox, by whatever path,
//! reaches it here. Changes are merged per agency until the engine takes
//! them, so memory is bounded by the number of agencies (and at most
//! [`MAX_REMOVED`] ids each).

use std::collections::BTreeMap;
use std::sync::Mutex;
use truc_core::sync::Locked;

use tokio::sync::Notify;

use crate::keys::{self, tag};

/// Most removed ids kept per agency between two takes; past it, the engine
/// is told that some were dropped (their leases then end by expiry).
pub(crate) const MAX_REMOVED: usize = 65_536;

/// What changed in one agency's outbox since the engine last looked.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OutboxChange {
    /// The lowest delivery id written, per priority band (`id >> 48`), if
    /// any: a copy below the engine's cursor came back under its old id.
    pub lowest_written: [Option<u64>; 5],
    /// Delivery ids deleted (in commit order).
    pub removed: Vec<u64>,
    /// More ids were deleted than `MAX_REMOVED` (65,536).
    pub removed_overflow: bool,
}

impl OutboxChange {
    /// Anything was written (a copy to deliver).
    pub fn written(&self) -> bool {
        self.lowest_written.iter().any(Option::is_some)
    }

    fn write(&mut self, id: u64) {
        let band = ((id >> 48) as usize).min(4);
        let low = &mut self.lowest_written[band];
        *low = Some(low.map_or(id, |l| l.min(id)));
    }

    fn remove(&mut self, id: u64) {
        if self.removed.len() < MAX_REMOVED {
            self.removed.push(id);
        } else {
            self.removed_overflow = true;
        }
    }
}

/// Outbox changes waiting for the engine.
#[derive(Debug, Default)]
pub struct OutboxEvents {
    pending: Mutex<BTreeMap<String, OutboxChange>>,
    wake: Notify,
}

impl OutboxEvents {
    /// Record the outbox keys of a committed batch: `(key, written)`, where
    /// `written` is false for a delete. Other keys are ignored.
    pub(crate) fn publish<'a>(&self, changes: impl IntoIterator<Item = (&'a [u8], bool)>) {
        let mut any = false;
        let mut pending = self.pending.locked();
        for (key, written) in changes {
            if key.first() != Some(&tag::OUTBOX) || key.len() < 11 {
                continue;
            }
            let (Some(id), Ok(agency)) = (keys::queue_item_id(key), std::str::from_utf8(&key[1..key.len() - 9])) else {
                continue;
            };
            let change = pending.entry(agency.to_string()).or_default();
            if written {
                change.write(id);
            } else {
                change.remove(id);
            }
            any = true;
        }
        drop(pending);
        if any {
            self.wake.notify_one();
        }
    }

    /// Wait until something changed, then take every change so far.
    pub async fn next(&self) -> BTreeMap<String, OutboxChange> {
        loop {
            let taken = std::mem::take(&mut *self.pending.locked());
            if !taken.is_empty() {
                return taken;
            }
            self.wake.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn changes_merge_per_agency_until_taken() {
        let ev = OutboxEvents::default();
        let a = keys::queue_item(tag::OUTBOX, "000.00.00.G22", keys::delivery_id(1, 7));
        let b = keys::queue_item(tag::OUTBOX, "000.00.00.G22", keys::delivery_id(1, 3));
        let gone = keys::queue_item(tag::OUTBOX, "000.00.00.H26", keys::delivery_id(0, 9));
        let other = keys::queue_item(tag::DEAD, "000.00.00.H26", keys::delivery_id(0, 9));
        ev.publish([(a.as_slice(), true), (gone.as_slice(), false), (other.as_slice(), true)]);
        ev.publish([(b.as_slice(), true)]);
        let got = ev.next().await;
        assert_eq!(got.len(), 2);
        let g22 = &got["000.00.00.G22"];
        let band = (keys::delivery_id(1, 3) >> 48) as usize;
        assert_eq!(g22.lowest_written[band], Some(keys::delivery_id(1, 3)));
        assert!(g22.removed.is_empty());
        assert_eq!(got["000.00.00.H26"].removed, vec![keys::delivery_id(0, 9)]);
        assert!(!got["000.00.00.H26"].written());
        // Taken: the next wait sees only what comes after.
        ev.publish([(a.as_slice(), false)]);
        assert_eq!(ev.next().await["000.00.00.G22"].removed, vec![keys::delivery_id(1, 7)]);
    }
}
