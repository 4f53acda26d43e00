//! The delivery engine: leases, credit and redelivery.
//!
//! The outbox itself lives in the store; this module only keeps what is in
//! flight right now, in memory: which copies are leased to which Receive
//! stream and until when. A lease that runs out is recorded in the store
//! (which dead-letters the copy after `max_attempts`) and the copy becomes
//! deliverable again. After a restart nothing is leased, so every unacked
//! copy is delivered again (at-least-once).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use truc_core::sync::Locked;

use tokio::sync::{mpsc, watch, Notify};
use tokio::time::Instant;
use tonic::Status;
use tracing::{debug, warn};
use truc_core::AgencyCode;
use truc_proto::v1::{Delivery, ProvenReceipt, StatusNotice};
use truc_store::{ExpireOutcome, QueuedItem, Store, StoreError};

use crate::status;

/// One agency's in-flight state.
#[derive(Debug, Default)]
struct AgencyQueue {
    inner: Mutex<Leases>,
    /// Woken when the agency may have something new to deliver: a copy
    /// enqueued, acked (credit back) or whose lease ran out.
    wake: Notify,
}

#[derive(Debug, Default)]
struct Leases {
    /// Delivery id → (stream, generation).
    by_id: HashMap<u64, (u64, u64)>,
    /// Stream → number of its leases.
    per_stream: HashMap<u64, usize>,
    /// Open Receive streams: id → (client certificate chain, kill switch).
    streams: HashMap<u64, OpenStream>,
    /// When a stream of this agency was last open, Unix ms (0: never).
    last_connected_unix_ms: i64,
    /// Per priority band (`delivery_id >> 48`): every outbox id below this
    /// one is leased or gone, so fetches start here instead of scanning
    /// past the leased copies (and, on an LSM engine, past the deletions of
    /// the acknowledged ones) again. Moved back to the id when a copy comes
    /// back under its old id (a lease ran out, a redrive: the commit events
    /// say which); reset to the start (a rescan) at least every
    /// `FULL_SCAN_EVERY` as a safety net.
    cursor: [u64; 5],
    /// Bumped on every reset, so a fetch begun before it does not move the
    /// cursor past a copy that came back meanwhile.
    cursor_epoch: u64,
    /// When the cursor was last reset.
    last_rescan: Option<Instant>,
    /// Per band: bumped whenever a committed batch writes a copy in it, so
    /// a band can be known to hold nothing new.
    written: [u64; 5],
    /// Per band: the `written` count as of the last fetch that read the band
    /// to its end from the cursor (none since a reset). While the two are
    /// equal the band holds nothing deliverable at or past the cursor, and
    /// fetches skip it without asking the store (a range read costs an LSM
    /// engine a seek in every table, found or not).
    scanned: [Option<u64>; 5],
}

/// The longest a fetch goes on trusting the cursor. Every copy that comes
/// back under an old id moves the cursor back by itself (the commit events);
/// this only bounds how long a copy could wait if that ever failed, and a
/// rescan reads every deletion an LSM engine has not compacted away yet.
const FULL_SCAN_EVERY: Duration = Duration::from_secs(30);

/// An open Receive stream: its client's certificate chain (re-judged on a
/// reload) and the switch that ends it.
type OpenStream = (Arc<Vec<Vec<u8>>>, Arc<Notify>);

/// In flight now, streams open now, last time one was open (Unix ms).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct LiveStats {
    pub(crate) in_flight: u64,
    pub(crate) streams: u32,
    pub(crate) last_connected_unix_ms: i64,
}

impl Leases {
    fn rescan(&mut self) {
        self.cursor = [0; 5];
        self.cursor_epoch += 1;
        self.last_rescan = Some(Instant::now());
        self.scanned = [None; 5];
    }

    /// A copy came back under `id` (a lease ran out, a redrive, a
    /// restore): fetches in its band start there again.
    fn back_to(&mut self, id: u64) {
        let b = band(id);
        if id < self.cursor[b] {
            self.cursor[b] = id;
            self.cursor_epoch += 1;
            self.scanned[b] = None;
        }
    }

    /// What the next fetch asks for, as things stand.
    fn plan(&self) -> Plan {
        let mut leased_top = [None; 5];
        for &id in self.by_id.keys() {
            let top: &mut Option<u64> = &mut leased_top[band(id)];
            *top = Some(top.map_or(id, |t| t.max(id)));
        }
        Plan {
            // In each band: the cursor, or the band's end when the band is
            // known to hold nothing new.
            from: std::array::from_fn(|b| {
                if self.scanned[b] == Some(self.written[b]) {
                    band_end(b)
                } else {
                    self.cursor[b]
                }
            }),
            epoch: self.cursor_epoch,
            written: self.written,
            leased_top,
        }
    }

    /// After the fetch `plan` returned `items` (at most `limit`): the
    /// cursor moves past what it returned, and each band it read to its end
    /// (every band when it stopped short of the limit; else those before
    /// the band it stopped in) held nothing but those and the copies leased
    /// when it began: the cursor moves past them too, and the band holds
    /// nothing new until a commit writes in it. Nothing moves if the cursor
    /// was moved back meanwhile.
    fn fetched(&mut self, plan: &Plan, items: &[QueuedItem], limit: usize) {
        if self.cursor_epoch != plan.epoch {
            return;
        }
        for item in items {
            let b = band(item.delivery_id);
            self.cursor[b] = self.cursor[b].max(item.delivery_id + 1);
        }
        let read_to_end = match items.last() {
            Some(last) if items.len() >= limit => band(last.delivery_id),
            _ => 5,
        };
        for b in 0..read_to_end {
            if let Some(top) = plan.leased_top[b] {
                self.cursor[b] = self.cursor[b].max(top + 1);
            }
            self.scanned[b] = Some(plan.written[b]);
        }
    }

    fn release(&mut self, id: u64) -> bool {
        match self.by_id.remove(&id) {
            Some((stream, _)) => {
                if let Some(n) = self.per_stream.get_mut(&stream) {
                    *n -= 1;
                    if *n == 0 {
                        self.per_stream.remove(&stream);
                    }
                }
                true
            }
            None => false,
        }
    }
}

/// One fetch, as planned under the lock: where it starts in each band, the
/// cursor's epoch and the bands' write counts then, and the highest id
/// leased in each band then.
struct Plan {
    from: [u64; 5],
    epoch: u64,
    written: [u64; 5],
    leased_top: [Option<u64>; 5],
}

/// A status notice from its STATUS_REPORTED receipt.
fn status_notice(proven: ProvenReceipt) -> StatusNotice {
    truc_core::notice::from_receipt(&proven).unwrap_or_else(|| StatusNotice {
        receipt: Some(proven),
        ..StatusNotice::default()
    })
}

/// A lease deadline: (when, lease generation, agency, delivery id).
type Expiry = (Instant, u64, AgencyCode, u64);

/// The engine, shared by the Axis service and the lease reaper.
pub(crate) struct Engine {
    store: Arc<dyn Store>,
    queues: Mutex<HashMap<AgencyCode, Arc<AgencyQueue>>>,
    expiries: Mutex<BinaryHeap<Reverse<Expiry>>>,
    reaper_wake: Notify,
    lease: Duration,
    max_attempts: u32,
    /// Largest payload sent inside a Delivery; larger ones go out with
    /// `payload_separate` for Download, so a client with gRPC's default
    /// 4 MiB receive limit gets every delivery.
    max_inline_delivery: u64,
    next_id: std::sync::atomic::AtomicU64,
    stop: watch::Receiver<bool>,
    metrics: Arc<crate::metrics::Metrics>,
}

impl Engine {
    pub(crate) fn new(
        store: Arc<dyn Store>,
        lease: Duration,
        max_attempts: u32,
        max_inline_delivery: u64,
        stop: watch::Receiver<bool>,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            queues: Mutex::default(),
            expiries: Mutex::default(),
            reaper_wake: Notify::new(),
            lease,
            max_attempts,
            max_inline_delivery,
            next_id: 1.into(),
            stop,
            metrics,
        })
    }

    /// Becomes true when the hub shuts down.
    pub(crate) fn stopping(&self) -> watch::Receiver<bool> {
        self.stop.clone()
    }

    /// A body `agency`'s stream was to deliver is damaged: quarantine its
    /// document (its copies go to the dead-letter queue, its sender is
    /// asked for it again), so that the queue moves on.
    async fn quarantine(&self, agency: &AgencyCode, hub_id: u64, what: String) -> Result<(), Status> {
        tracing::error!(%agency, hub_document_id = hub_id, %what, "a stored document is damaged; quarantining it so that the queue moves on");
        let q = self
            .store
            .quarantine(
                hub_id,
                format!("found by delivery: {what}"),
                crate::scrub::HUB_ACTOR.into(),
            )
            .await
            .map_err(status::from_store)?;
        if q.newly {
            self.metrics.quarantined_by_delivery();
        }
        Ok(())
    }

    fn queue(&self, agency: &AgencyCode) -> Arc<AgencyQueue> {
        let mut q = self.queues.locked();
        q.entry(agency.clone()).or_default().clone()
    }

    fn fresh_id(&self) -> u64 {
        self.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// Follow what committed batches change in the outboxes, until the hub
    /// stops: the one path from a commit (this hub's or, on a shared log,
    /// another's) to the streams. A copy written below an agency's cursor
    /// came back under its old id (a lease ran out, a redrive, a restore):
    /// the cursor moves back to it. A copy deleted (acknowledged, withdrawn,
    /// dead-lettered) gives its lease and credit back. Then the agency's
    /// streams wake.
    pub(crate) async fn follow_commits(
        self: Arc<Self>,
        events: Arc<truc_store::OutboxEvents>,
        peers: Arc<crate::forward::Forwarders>,
    ) {
        let mut stop = self.stop.clone();
        loop {
            let changes = tokio::select! {
                c = events.next() => c,
                _ = stop.changed() => return,
            };
            for (agency, change) in changes {
                // A peer hub's outbox: its forwarding task takes it.
                if change.written() && peers.wake(&agency) {
                    continue;
                }
                let Ok(agency) = AgencyCode::parse(&agency) else {
                    continue;
                };
                let q = self.queue(&agency);
                let mut l = q.inner.locked();
                for id in &change.removed {
                    l.release(*id);
                }
                for (b, low) in change.lowest_written.iter().enumerate() {
                    if let Some(low) = *low {
                        l.written[b] += 1;
                        l.back_to(low);
                    }
                }
                drop(l);
                q.wake.notify_waiters();
            }
        }
    }

    /// What is live for `agency` right now.
    pub(crate) fn live(&self, agency: &AgencyCode) -> LiveStats {
        let q = self.queues.locked().get(agency).cloned();
        let Some(q) = q else { return LiveStats::default() };
        let l = q.inner.locked();
        let open = !l.streams.is_empty();
        LiveStats {
            in_flight: l.by_id.len() as u64,
            streams: l.streams.len() as u32,
            last_connected_unix_ms: if open {
                truc_core::now_unix_ms()
            } else {
                l.last_connected_unix_ms
            },
        }
    }

    /// Keep a lease alive while its payload is being downloaded: its
    /// deadline moves to a full lease from now.
    pub(crate) fn extend_lease(&self, agency: &AgencyCode, delivery_id: u64) {
        let q = self.queue(agency);
        let generation = self.fresh_id();
        {
            let mut l = q.inner.locked();
            match l.by_id.get_mut(&delivery_id) {
                Some(entry) => entry.1 = generation,
                None => return,
            }
        }
        let deadline = Instant::now() + self.lease;
        self.expiries
            .locked()
            .push(Reverse((deadline, generation, agency.clone(), delivery_id)));
    }

    /// How many copies of `agency` are leased now, and when the first of
    /// those leases runs out.
    pub(crate) fn lease_summary(&self, agency: &AgencyCode) -> (u64, Option<Instant>) {
        let q = self.queues.locked().get(agency).cloned();
        let Some(q) = q else { return (0, None) };
        let live: HashMap<u64, u64> = q
            .inner
            .locked()
            .by_id
            .iter()
            .map(|(id, (_, generation))| (*id, *generation))
            .collect();
        // The heap holds every deadline ever set; a live lease is the entry
        // of its current generation.
        let first = self
            .expiries
            .locked()
            .iter()
            .filter(|Reverse((_, g, a, id))| a == agency && live.get(id) == Some(g))
            .map(|Reverse((t, ..))| *t)
            .min();
        (live.len() as u64, first)
    }

    /// The delivery ids of `agency` leased right now.
    pub(crate) fn leased(&self, agency: &AgencyCode) -> HashSet<u64> {
        let q = self.queues.locked().get(agency).cloned();
        q.map(|q| q.inner.locked().by_id.keys().copied().collect())
            .unwrap_or_default()
    }

    /// End the streams whose client certificate `trust` now refuses (after a
    /// CRL reload); returns how many.
    pub(crate) fn end_refused_streams(&self, trust: &crate::trust::Trust) -> u64 {
        let queues: Vec<Arc<AgencyQueue>> = self.queues.locked().values().cloned().collect();
        let mut ended = 0;
        for q in queues {
            let streams: Vec<_> = q.inner.locked().streams.values().cloned().collect();
            for (chain, kill) in streams {
                if trust.judge(&chain).is_err() {
                    kill.notify_one();
                    ended += 1;
                }
            }
        }
        ended
    }

    /// Serve one Receive stream until the client goes away or the hub stops.
    /// With `follow` unset, the stream ends once nothing deliverable is
    /// left and everything it delivered has been acked or has expired.
    pub(crate) fn stream(
        self: &Arc<Self>,
        agency: AgencyCode,
        credit: usize,
        follow: bool,
        chain: Arc<Vec<Vec<u8>>>,
    ) -> mpsc::Receiver<Result<Delivery, Status>> {
        let (tx, rx) = mpsc::channel(credit.clamp(1, 64));
        let me = self.clone();
        let span = tracing::info_span!("receive", agency = %agency);
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                let stream_id = me.fresh_id();
                let q = me.queue(&agency);
                let kill = Arc::new(Notify::new());
                {
                    let mut l = q.inner.locked();
                    l.streams.insert(stream_id, (chain, kill.clone()));
                    l.last_connected_unix_ms = truc_core::now_unix_ms();
                }
                let result = tokio::select! {
                    r = me.serve_stream(&agency, stream_id, credit, follow, &tx) => r,
                    _ = kill.notified() => Err(Status::unauthenticated("client certificate revoked; stream ended")),
                };
                {
                    let mut l = q.inner.locked();
                    l.streams.remove(&stream_id);
                    l.last_connected_unix_ms = truc_core::now_unix_ms();
                }
                if let Err(status) = result {
                    let _ = tx.send(Err(status)).await;
                }
            },
            span,
        ));
        rx
    }

    async fn serve_stream(
        &self,
        agency: &AgencyCode,
        stream_id: u64,
        credit: usize,
        follow: bool,
        tx: &mpsc::Sender<Result<Delivery, Status>>,
    ) -> Result<(), Status> {
        let q = self.queue(agency);
        let mut stop = self.stop.clone();
        // What any hub accepted before the stream opened is delivered on it
        // (a replicated store's view may not hold it yet; later arrivals
        // wake the stream). Without this a Receive without `follow` at one
        // hub could end empty right after a Send at another.
        self.store.caught_up().await.map_err(status::from_store)?;
        let mut quarantined = None;
        loop {
            let woken = q.wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();

            let (in_flight, skip, plan) = {
                let mut l = q.inner.locked();
                if l.last_rescan.is_none_or(|t| t.elapsed() >= FULL_SCAN_EVERY) {
                    l.rescan();
                }
                let n = l.per_stream.get(&stream_id).copied().unwrap_or(0);
                // Every leased id, not only those past the cursor: a backend
                // may ignore `from` (`Store::fetch_from`'s default).
                let skip: HashSet<u64> = if n < credit {
                    l.by_id.keys().copied().collect()
                } else {
                    HashSet::new()
                };
                (n, skip, l.plan())
            };
            let mut delivered = 0;
            if in_flight < credit {
                let limit = credit - in_flight;
                let items = match self.store.fetch_from(agency.clone(), plan.from, skip, limit).await {
                    Ok(items) => items,
                    // Never stop at a damaged body: quarantine it, go on.
                    // (The same one twice: the quarantine did not take it
                    // out of this queue; fail rather than spin.)
                    Err(StoreError::DocumentDamaged { hub_document_id, what })
                        if quarantined != Some(hub_document_id) =>
                    {
                        self.quarantine(agency, hub_document_id, what).await?;
                        quarantined = Some(hub_document_id);
                        continue;
                    }
                    Err(e) => return Err(status::from_store(e)),
                };
                quarantined = None;
                let fetched = items.len();
                {
                    // What was fetched is leased now (here or by another
                    // stream): later fetches start after it.
                    q.inner.locked().fetched(&plan, &items, limit);
                }
                for item in items {
                    let Some(delivery) = self.lease(&q, agency, stream_id, item) else {
                        continue;
                    };
                    if tx.send(Ok(delivery)).await.is_err() {
                        return Ok(()); // client gone; its leases run out on their own
                    }
                    delivered += 1;
                }
                if !follow && fetched == 0 && in_flight == 0 {
                    return Ok(());
                }
            }
            if delivered > 0 {
                continue;
            }
            tokio::select! {
                _ = &mut woken => {}
                _ = tx.closed() => return Ok(()),
                _ = stop.changed() => return Err(Status::unavailable("the hub is shutting down")),
            }
        }
    }

    /// Lease `item` to `stream_id` unless another stream got it first.
    fn lease(&self, q: &AgencyQueue, agency: &AgencyCode, stream_id: u64, item: QueuedItem) -> Option<Delivery> {
        let generation = self.fresh_id();
        let deadline = Instant::now() + self.lease;
        {
            let mut l = q.inner.locked();
            if l.by_id.contains_key(&item.delivery_id) {
                return None;
            }
            l.by_id.insert(item.delivery_id, (stream_id, generation));
            *l.per_stream.entry(stream_id).or_insert(0) += 1;
        }
        let earliest = {
            let mut e = self.expiries.locked();
            let earliest = e.peek().map(|Reverse((t, ..))| *t);
            e.push(Reverse((deadline, generation, agency.clone(), item.delivery_id)));
            earliest
        };
        if earliest.is_none_or(|t| deadline < t) {
            self.reaper_wake.notify_one();
        }
        let lease_expires_unix_ms = truc_core::now_unix_ms() + self.lease.as_millis() as i64;
        let mut document = item.document;
        let mut payload_separate = item.payload_separate;
        if let Some(d) = document
            .as_mut()
            .filter(|d| d.payload.len() as u64 > self.max_inline_delivery)
        {
            // Sent inline but too large for a default client's receive
            // limit: the recipient downloads it (Download reads inline
            // bodies too).
            d.payload = Vec::new();
            payload_separate = true;
        }
        Some(Delivery {
            delivery_id: item.delivery_id,
            previous_attempts: item.attempts,
            lease_expires_unix_ms,
            hub_document_id: item.hub_document_id,
            accepted_at_unix_ms: item.accepted_at_unix_ms,
            document,
            status: item.status.map(status_notice),
            payload_separate,
        })
    }

    /// Run out leases as their deadlines pass, until the hub stops.
    pub(crate) async fn reap(self: Arc<Self>) {
        let mut stop = self.stop.clone();
        loop {
            let next = self.expiries.locked().peek().map(|Reverse((t, ..))| *t);
            let sleep = async {
                match next {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = sleep => {}
                _ = self.reaper_wake.notified() => continue,
                _ = stop.changed() => return,
            }
            let now = Instant::now();
            loop {
                let due = {
                    let mut e = self.expiries.locked();
                    match e.peek() {
                        Some(Reverse((t, ..))) if *t <= now => e.pop().map(|Reverse(x)| x),
                        _ => None,
                    }
                };
                let Some((_, generation, agency, id)) = due else {
                    break;
                };
                self.expire(&agency, id, generation).await;
            }
        }
    }

    async fn expire(&self, agency: &AgencyCode, id: u64, generation: u64) {
        let q = self.queue(agency);
        let current = q.inner.locked().by_id.get(&id).map(|(_, g)| *g);
        if current != Some(generation) {
            return; // acked, or leased again since
        }
        // Record the expiry before the copy becomes deliverable again, so a
        // copy past its last attempt is dead-lettered, not handed out.
        match self.store.expire(agency.clone(), id, self.max_attempts).await {
            Ok(ExpireOutcome::DeadLettered { attempts }) => {
                warn!(%agency, delivery_id = id, attempts, "dead-lettered after its last lease ran out")
            }
            Ok(ExpireOutcome::Requeued { attempts }) => {
                debug!(%agency, delivery_id = id, attempts, "lease ran out")
            }
            Ok(ExpireOutcome::Gone) => {}
            Err(e) => {
                warn!(%agency, delivery_id = id, error = %e, "could not record a lease expiry; retrying later");
                let retry = Instant::now() + Duration::from_secs(1);
                self.expiries
                    .locked()
                    .push(Reverse((retry, generation, agency.clone(), id)));
                return;
            }
        }
        let mut l = q.inner.locked();
        if l.by_id.get(&id).map(|(_, g)| *g) == Some(generation) {
            l.release(id);
        }
        // The copy is back in the outbox under its old id.
        l.rescan();
        drop(l);
        q.wake.notify_waiters();
    }
}

/// The priority band of a delivery id (0 = most urgent).
fn band(delivery_id: u64) -> usize {
    ((delivery_id >> 48) as usize).min(4)
}

/// The first id past priority band `b`.
fn band_end(b: usize) -> u64 {
    (b as u64 + 1) << 48
}

#[cfg(test)]
mod tests {
    use super::*;

    const NORMAL: usize = 4;

    fn id(seq: u64) -> u64 {
        ((NORMAL as u64) << 48) | seq
    }

    fn item(seq: u64) -> QueuedItem {
        QueuedItem {
            delivery_id: id(seq),
            attempts: 0,
            hub_document_id: seq,
            accepted_at_unix_ms: 0,
            document: None,
            status: None,
            payload_separate: false,
            dead_letter_reason: 0,
        }
    }

    fn lease(l: &mut Leases, seq: u64) {
        l.by_id.insert(id(seq), (1, seq));
    }

    #[test]
    fn a_band_read_to_its_end_is_skipped_until_a_commit_writes_in_it() {
        let mut l = Leases::default();
        let plan = l.plan();
        assert_eq!(plan.from, [0; 5], "nothing is known yet: every band from its start");
        l.fetched(&plan, &[item(1), item(2)], 10);
        let plan = l.plan();
        assert_eq!(plan.from[NORMAL], band_end(NORMAL), "read to its end: nothing new");
        assert_eq!(plan.from[0], band_end(0));
        l.written[NORMAL] += 1; // a commit wrote a new copy
        assert_eq!(l.plan().from[NORMAL], id(3), "from the cursor again");
        assert_eq!(l.plan().from[0], band_end(0), "other bands stay skipped");
    }

    #[test]
    fn a_fetch_that_fills_its_limit_leaves_its_last_band_open() {
        let mut l = Leases::default();
        let plan = l.plan();
        l.fetched(&plan, &[item(1), item(2)], 2);
        let plan = l.plan();
        assert_eq!(plan.from[NORMAL], id(3), "there may be more past the cursor");
        assert_eq!(plan.from[0], band_end(0), "the bands before it were read to their end");
    }

    #[test]
    fn a_band_read_to_its_end_moves_the_cursor_past_what_was_leased() {
        let mut l = Leases::default();
        lease(&mut l, 7);
        lease(&mut l, 9);
        let plan = l.plan();
        // Everything in the band was leased: the fetch returned nothing.
        l.fetched(&plan, &[], 10);
        assert_eq!(
            l.cursor[NORMAL],
            id(10),
            "a later fetch does not read the leased copies again"
        );
    }

    #[test]
    fn a_copy_back_under_its_old_id_moves_the_cursor_back_and_voids_fetches_under_way() {
        let mut l = Leases::default();
        let plan = l.plan();
        l.fetched(&plan, &[item(1), item(2), item(3)], 10);
        let under_way = l.plan();
        l.back_to(id(2)); // its lease ran out
        l.written[NORMAL] += 1;
        assert_eq!(l.plan().from[NORMAL], id(2));
        l.fetched(&under_way, &[item(4)], 10);
        assert_eq!(
            l.cursor[NORMAL],
            id(2),
            "a fetch begun before the copy came back moves nothing"
        );
        l.back_to(id(5)); // past the cursor: nothing to move
        assert_eq!(l.cursor[NORMAL], id(2));
    }

    #[test]
    fn a_rescan_starts_every_band_from_the_start() {
        let mut l = Leases::default();
        let plan = l.plan();
        l.fetched(&plan, &[item(1)], 10);
        l.rescan();
        assert_eq!(l.plan().from, [0; 5]);
    }
}
