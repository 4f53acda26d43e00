//! Load generation against a hub: the engine behind `truc bench`,
//! `truc-bench` and `truc-chaos`. Out of the client SDK, which agency
//! systems link; nothing here is needed to send or receive a document.
//!
//! Sending agencies sign every document **before the clock starts** (signing
//! is the client's cost), then send them with a window of Sends in flight
//! per agency; receiving agencies hold a Receive stream each and acknowledge
//! in batches as deliveries arrive. Measured end to end: send → acceptance
//! latency, acceptance → received latency, and throughput from the first
//! Send to the last acknowledgement of a measured delivery.
//!
//! Every payload starts with a 16-byte tag (run nonce, sender, sequence
//! number), so a receiver finds its document's send times without decoding
//! anything, and documents left over from an earlier run are recognised and
//! acknowledged without being counted.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use truc_core::sync::Locked;

use serde::Serialize;
use tokio::sync::{mpsc, Notify, Semaphore};
use truc_core::{AgencyCode, Principal};
use truc_pki::{Identity, IssueOptions, Pki};
use truc_proto::v1::{DocumentHeader, Priority, SignedDocument};

mod mix;
mod shape;

pub use mix::PriorityMix;
pub use shape::Shape;
use truc_client::{Client, ClientError};

/// Bytes at the start of every payload that identify the document.
pub const TAG_LEN: usize = 16;

/// Most delivery ids in one Ack (the hub's limit).
const MAX_ACK_IDS: usize = 1024;

/// Acks in flight at once per receiving agency.
const ACKS_IN_FLIGHT: usize = 4;

/// Why a load run could not be set up or finished, with its cause.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The client SDK failed (connecting, TLS, an identity) or the hub
    /// answered with an error (its code: [`ClientError::code`]).
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Issuing or reading the bench agencies' identities failed.
    #[error(transparent)]
    Pki(#[from] truc_pki::PkiError),
    /// A document could not be built or signed.
    #[error(transparent)]
    Core(#[from] truc_core::CoreError),
    /// The run itself: a bad argument, a stream that ended, a deadline.
    #[error("{0}")]
    Run(String),
}

impl LoadError {
    fn new(s: impl Into<String>) -> LoadError {
        LoadError::Run(s.into())
    }
}

/// When the sending stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopAt {
    /// Send for this long (documents are pre-signed for it; see
    /// [`LoadSpec::max_presign_bytes`]).
    Duration(Duration),
    /// Send this many documents in all, spread over the senders.
    Count(u64),
}

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// Hub address (`host:port`).
    pub hub: String,
    /// PKI directory: identities are `PKI/agencies/<code>`.
    pub pki: PathBuf,
    /// Sending agency codes.
    pub senders: Vec<String>,
    /// Receiving agency codes (may be the same agencies as the senders; an
    /// agency never sends to itself).
    pub receivers: Vec<String>,
    /// Recipients per document.
    pub fanout: usize,
    /// Payload bytes per document.
    pub size: usize,
    /// Priorities with weights.
    pub priority_mix: PriorityMix,
    /// Duration or count.
    pub stop: StopAt,
    /// gRPC connections per sending agency.
    pub connections: usize,
    /// Sends in flight per sending agency.
    pub window: usize,
    /// Documents per second in all, paced on a fixed schedule (latency is
    /// measured from each document's scheduled time); `None`: as fast as the
    /// windows allow.
    pub rate: Option<f64>,
    /// Receive credit (unacknowledged deliveries) per receiving agency.
    pub credit: u32,
    /// Documents to send before the clock starts, in all (warms the hub and
    /// estimates the rate to pre-sign for in duration mode); `None`: two
    /// windows per sender.
    pub warmup: Option<u64>,
    /// Most payload bytes pre-signed for a duration run; when the pool runs
    /// out the senders stop early and the report says so.
    pub max_presign_bytes: u64,
    /// How long to wait after the senders stop for every delivery to be
    /// acknowledged.
    pub drain_timeout: Duration,
    /// Where the receivers connect when it is not `hub`: another hub's
    /// address and the PKI directory of its agencies (federation, documents
    /// relayed between hubs: `truc-bench --topology federation`). The
    /// acceptance → received latency is then measured from when the sender
    /// saw the acceptance, since the receiving hub's acceptance time is not
    /// the sending hub's.
    pub receive_at: Option<(String, PathBuf)>,
}

impl LoadSpec {
    /// Defaults: 4 senders to 4 other receivers, fan-out 1, 4 KiB, all
    /// `thường`, 10 s, one connection, window 256, credit 256.
    pub fn new(hub: &str, pki: &Path) -> LoadSpec {
        LoadSpec {
            hub: hub.to_string(),
            pki: pki.to_path_buf(),
            senders: agency_codes('S', 4),
            receivers: agency_codes('R', 4),
            fanout: 1,
            size: 4096,
            priority_mix: PriorityMix::default(),
            stop: StopAt::Duration(Duration::from_secs(10)),
            connections: 1,
            window: 256,
            rate: None,
            credit: 256,
            warmup: None,
            max_presign_bytes: 3 << 30,
            drain_timeout: Duration::from_secs(60),
            receive_at: None,
        }
    }

    /// Every agency of the run, senders first, without repeats.
    pub fn agencies(&self) -> Vec<String> {
        let mut seen = HashSet::new();
        self.senders
            .iter()
            .chain(&self.receivers)
            .filter(|c| seen.insert(c.as_str()))
            .cloned()
            .collect()
    }

    fn check(&self) -> Result<(), LoadError> {
        if self.senders.is_empty() || self.receivers.is_empty() {
            return Err(LoadError::new("need at least one sender and one receiver"));
        }
        if self.rate.is_some_and(|r| r.is_nan() || r <= 0.0) {
            return Err(LoadError::new("the rate must be positive"));
        }
        if self.fanout == 0 || self.window == 0 || self.connections == 0 {
            return Err(LoadError::new("fan-out, window and connections must be at least 1"));
        }
        if self.size < TAG_LEN {
            return Err(LoadError::new(format!("size must be at least {TAG_LEN} bytes")));
        }
        if !(1..=1024).contains(&self.credit) {
            return Err(LoadError::new("credit must be 1..=1024"));
        }
        for s in &self.senders {
            let others = self.receivers.iter().filter(|r| *r != s).count();
            if others < self.fanout {
                return Err(LoadError::new(format!(
                    "fan-out {} but sender {s} has only {others} other receivers",
                    self.fanout
                )));
            }
        }
        Ok(())
    }
}

/// `n` agency codes for a role letter: `B90.S001`, `B90.S002`, … (QĐ 20
/// form, level-1 code `B90`).
pub fn agency_codes(role: char, n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("B90.{role}{i:03}")).collect()
}

/// Issue the identities of `codes` and of the operator `bench` in `pki_dir`
/// when missing (needs the CA key there), then register the agencies that
/// the hub does not know yet.
pub async fn prepare(hub: &str, pki_dir: &Path, codes: &[String]) -> Result<(), LoadError> {
    let dir = pki_dir.to_path_buf();
    let codes_owned = codes.to_vec();
    let operator_dir = tokio::task::spawn_blocking(move || issue_identities(&dir, &codes_owned))
        .await
        .map_err(|e| LoadError::new(e.to_string()))??;
    let op = Client::connect_dir(hub, &operator_dir).await?;
    let known: HashSet<String> = op.list_agencies().await?.into_iter().map(|a| a.code).collect();
    for code in codes.iter().filter(|c| !known.contains(*c)) {
        op.add_agency(code, &format!("Bench {code}")).await?;
    }
    Ok(())
}

/// Issue the identities of `codes` and of the operator `bench` in `pki_dir`
/// when missing (needs the CA key there); returns the operator's
/// directory. Blocking.
pub fn issue_identities(pki_dir: &Path, codes: &[String]) -> Result<PathBuf, LoadError> {
    let operator_dir = pki_dir.join("operators").join("bench");
    let mut missing = Vec::new();
    for code in codes {
        if !agency_dir(pki_dir, code).join("cert.pem").exists() {
            missing.push(Principal::Agency(AgencyCode::parse(code)?));
        }
    }
    if !operator_dir.join("cert.pem").exists() {
        missing.push(Principal::parse_uri("urn:truc:operator:bench")?);
    }
    if !missing.is_empty() {
        // Only now is the CA key needed.
        let pki = Pki::open(pki_dir)?;
        for p in missing {
            pki.issue(&p, &p.to_string(), &IssueOptions::default())?;
        }
    }
    Ok(operator_dir)
}

/// The identity directory of agency `code` in `pki_dir`.
pub fn agency_dir(pki_dir: &Path, code: &str) -> PathBuf {
    pki_dir.join("agencies").join(code)
}

/// Latency percentiles, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Latency {
    /// Samples.
    pub count: usize,
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

impl Latency {
    /// Percentiles of `micros` (sorted in place).
    pub fn of(micros: &mut [u32]) -> Latency {
        if micros.is_empty() {
            return Latency::default();
        }
        micros.sort_unstable();
        let at = |q: f64| {
            let i = ((micros.len() as f64 * q).ceil() as usize).clamp(1, micros.len()) - 1;
            micros[i] as f64 / 1000.0
        };
        let sum: u64 = micros.iter().map(|v| *v as u64).sum();
        Latency {
            count: micros.len(),
            p50: at(0.50),
            p99: at(0.99),
            p999: at(0.999),
            max: *micros.last().unwrap_or(&0) as f64 / 1000.0,
            mean: sum as f64 / micros.len() as f64 / 1000.0,
        }
    }
}

/// What a run measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LoadReport {
    /// What was measured (`truc`, `nats …`).
    pub system: String,
    /// Sending agencies (publishers).
    pub senders: usize,
    /// Receiving agencies (consumers).
    pub receivers: usize,
    /// Recipients per document.
    pub fanout: usize,
    /// Payload bytes per document.
    pub size: usize,
    /// Sends in flight per sender.
    pub window: usize,
    /// Receive credit per receiver.
    pub credit: u32,
    /// Connections per sender.
    pub connections: usize,
    /// The paced rate asked for, documents per second.
    pub rate: Option<f64>,
    /// Documents pre-signed for the measured phase.
    pub presigned: u64,
    /// Seconds spent signing them (before the clock).
    pub presign_seconds: f64,
    /// Documents accepted in the measured phase (a document with fan-out K
    /// counts once).
    pub documents: u64,
    /// Deliveries received and acknowledged in the measured phase.
    pub deliveries: u64,
    /// Deliveries expected: documents × fan-out.
    pub expected_deliveries: u64,
    /// Seconds from the first Send to the last Send's acceptance.
    pub send_seconds: f64,
    /// Seconds from the first Send to the last acknowledgement.
    pub elapsed_seconds: f64,
    /// End to end: documents / elapsed.
    pub docs_per_second: f64,
    /// End to end: deliveries / elapsed.
    pub deliveries_per_second: f64,
    /// Documents accepted / send seconds.
    pub accepted_per_second: f64,
    /// Send → acceptance.
    pub send_latency_ms: Latency,
    /// Acceptance (by the server's clock: Truc's `accepted_at_unix_ms`,
    /// JetStream's stored timestamp) → received.
    pub delivery_latency_ms: Latency,
    /// Failed Sends or Acks.
    pub errors: u64,
    /// The first failure, if any.
    pub first_error: Option<String>,
    /// Deliveries seen again (redelivered) or not from this run.
    pub redelivered_or_foreign: u64,
    /// Sends the hub pushed back (its back-pressure; each sent again).
    pub pushbacks: u64,
    /// The pre-signed pool ran out before the duration did.
    pub pool_exhausted: bool,
    /// Every expected delivery was acknowledged.
    pub complete: bool,
}

impl LoadReport {
    /// A human summary, several lines.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{}: {} sender(s) → {} receiver(s), fan-out {}, {} B, window {}, credit {}, {} connection(s)/sender\n",
            self.system,
            self.senders,
            self.receivers,
            self.fanout,
            self.size,
            self.window,
            self.credit,
            self.connections
        );
        if let Some(r) = self.rate {
            s += &format!("  paced at {r:.0} documents/s (latency from each document's scheduled time)\n");
        }
        s += &format!(
            "  pre-signed {} documents in {:.2} s (before the clock)\n",
            self.presigned, self.presign_seconds
        );
        s += &format!(
            "  documents  {} accepted in {:.2} s; {} of {} deliveries acknowledged; end to end {:.2} s\n",
            self.documents, self.send_seconds, self.deliveries, self.expected_deliveries, self.elapsed_seconds
        );
        s += &format!(
            "  throughput {:.0} docs/s end to end ({:.0} deliveries/s; {:.0} accepted/s while sending)\n",
            self.docs_per_second, self.deliveries_per_second, self.accepted_per_second
        );
        let l = &self.send_latency_ms;
        s += &format!(
            "  send → acceptance   p50 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms  max {:.2} ms\n",
            l.p50, l.p99, l.p999, l.max
        );
        let d = &self.delivery_latency_ms;
        s += &format!(
            "  acceptance → received  p50 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms  max {:.2} ms\n",
            d.p50, d.p99, d.p999, d.max
        );
        if self.errors > 0 {
            s += &format!(
                "  errors {} (first: {})\n",
                self.errors,
                self.first_error.as_deref().unwrap_or("?")
            );
        }
        if self.pushbacks > 0 {
            s += &format!(
                "  {} Sends pushed back by the hub's limits and sent again ({:.3} per document)\n",
                self.pushbacks,
                self.pushbacks as f64 / self.documents.max(1) as f64
            );
        }
        if self.redelivered_or_foreign > 0 {
            s += &format!(
                "  {} deliveries were redeliveries or from an earlier run (acknowledged, not counted)\n",
                self.redelivered_or_foreign
            );
        }
        if self.pool_exhausted {
            s += "  note: the pre-signed pool ran out before the duration; raise the pre-sign memory\n";
        }
        if !self.complete {
            s += "  INCOMPLETE: not every delivery was acknowledged before the drain timeout\n";
        }
        s
    }
}

/// The 16-byte payload tag: run nonce, sender index, sequence number.
pub fn tag(nonce: u32, sender: u32, n: u64) -> [u8; TAG_LEN] {
    let mut t = [0u8; TAG_LEN];
    t[..4].copy_from_slice(&nonce.to_be_bytes());
    t[4..8].copy_from_slice(&sender.to_be_bytes());
    t[8..].copy_from_slice(&n.to_be_bytes());
    t
}

/// The tracking key of a payload from run `nonce`, or `None` for a payload
/// from another run.
pub fn key_of(nonce: u32, payload: &[u8]) -> Option<u64> {
    if payload.len() < TAG_LEN || payload[..4] != nonce.to_be_bytes() {
        return None;
    }
    let sender = u32::from_be_bytes(payload[4..8].try_into().ok()?) as u64;
    let n = u64::from_be_bytes(payload[8..16].try_into().ok()?);
    Some(sender << 40 | n)
}

/// A payload of `size` bytes: `base` with the tag in front, so every
/// document's payload (and digest) differs.
pub fn payload(base: &[u8], t: &[u8; TAG_LEN]) -> Vec<u8> {
    let mut p = base.to_vec();
    p[..TAG_LEN].copy_from_slice(t);
    p
}

/// Random-looking bytes (xorshift), not compressible.
pub fn random_bytes(size: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(size + 8);
    while out.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(size);
    out
}

/// Microseconds since the Unix epoch, now.
pub fn unix_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// A run nonce from the clock and the process id.
pub fn nonce() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (t.as_nanos() as u32) ^ std::process::id().rotate_left(16)
}

#[derive(Debug, Default)]
struct Track {
    /// When the sender saw the acceptance (or publish ack).
    accepted: Option<Instant>,
    /// Deliveries that arrived before the sender saw the acceptance.
    early: u32,
    /// Deliveries still to arrive.
    remaining: u32,
}

/// End-to-end bookkeeping shared by senders and receivers, keyed by the
/// payload tag. Used for Truc and for the NATS comparison alike.
#[derive(Debug)]
pub struct Tracker {
    nonce: u32,
    fanout: u32,
    map: Mutex<HashMap<u64, Track>>,
    expected: AtomicU64,
    acked: AtomicU64,
    stray: AtomicU64,
    errors: AtomicU64,
    first_error: Mutex<Option<String>>,
    senders_done: AtomicBool,
    last_ack: Mutex<Option<Instant>>,
    delivery_micros: Mutex<Vec<u32>>,
    done: Notify,
}

impl Tracker {
    /// A tracker for run `nonce` with `fanout` deliveries per document.
    pub fn new(nonce: u32, fanout: usize) -> Arc<Tracker> {
        Arc::new(Tracker {
            nonce,
            fanout: fanout as u32,
            map: Mutex::default(),
            expected: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            stray: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            first_error: Mutex::default(),
            senders_done: AtomicBool::new(false),
            last_ack: Mutex::default(),
            delivery_micros: Mutex::default(),
            done: Notify::new(),
        })
    }

    /// The run nonce.
    pub fn nonce(&self) -> u32 {
        self.nonce
    }

    /// Forget everything (between the warm-up and the measured phase).
    pub fn reset(&self) {
        self.lock_map().clear();
        self.expected.store(0, Ordering::SeqCst);
        self.acked.store(0, Ordering::SeqCst);
        self.stray.store(0, Ordering::SeqCst);
        self.errors.store(0, Ordering::SeqCst);
        *self.first_error.locked() = None;
        self.senders_done.store(false, Ordering::SeqCst);
        *self.last_ack.locked() = None;
        self.delivery_micros.locked().clear();
    }

    fn lock_map(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Track>> {
        self.map.locked()
    }

    /// The sender saw document `key` accepted at `at`.
    pub fn accepted(&self, key: u64, at: Instant) {
        let early = {
            let mut map = self.lock_map();
            let t = map.entry(key).or_insert_with(|| Track {
                remaining: self.fanout,
                ..Track::default()
            });
            t.accepted = Some(at);
            let early = std::mem::take(&mut t.early);
            if t.remaining == 0 {
                map.remove(&key);
            }
            early
        };
        self.expected.fetch_add(self.fanout as u64, Ordering::SeqCst);
        if early > 0 {
            // Received before the sender heard back: acceptance → received
            // is below what this process can observe.
            let mut d = self.delivery_micros.locked();
            d.extend(std::iter::repeat_n(0, early as usize));
        }
    }

    /// A receiver got the delivery whose payload is `payload` at `at`.
    /// `accepted_unix_us` is when the server says it accepted the document
    /// (its wall clock, in µs since the epoch): the delivery latency is
    /// measured from it when given (the server and this process must share a
    /// clock: same machine, or synchronised), else from when the sender saw
    /// the acceptance. Returns whether it counts (false: a redelivery or
    /// another run's).
    pub fn received(&self, payload: &[u8], at: Instant, accepted_unix_us: Option<i64>) -> bool {
        let Some(key) = key_of(self.nonce, payload) else {
            self.stray.fetch_add(1, Ordering::Relaxed);
            return false;
        };
        let by_server_clock = accepted_unix_us.map(|a| (unix_micros() - a).clamp(0, u32::MAX as i64) as u32);
        let sample = {
            let mut map = self.lock_map();
            let t = map.entry(key).or_insert_with(|| Track {
                remaining: self.fanout,
                ..Track::default()
            });
            if t.remaining == 0 {
                None
            } else {
                t.remaining -= 1;
                let sample = match (by_server_clock, t.accepted) {
                    (Some(s), _) => Some(s),
                    (None, Some(a)) => Some(at.saturating_duration_since(a).as_micros().min(u32::MAX as u128) as u32),
                    (None, None) => {
                        t.early += 1;
                        None
                    }
                };
                if t.remaining == 0 && t.accepted.is_some() {
                    map.remove(&key);
                }
                Some(sample)
            }
        };
        match sample {
            None => {
                self.stray.fetch_add(1, Ordering::Relaxed);
                false
            }
            Some(s) => {
                if let Some(s) = s {
                    self.delivery_micros.locked().push(s);
                }
                true
            }
        }
    }

    /// `n` counted deliveries were acknowledged at `at`.
    pub fn acked(&self, n: u64, at: Instant) {
        if n == 0 {
            return;
        }
        *self.last_ack.locked() = Some(at);
        self.acked.fetch_add(n, Ordering::SeqCst);
        self.check_done();
    }

    /// A Send, publish or Ack failed.
    pub fn error(&self, e: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut f = self.first_error.locked();
        if f.is_none() {
            *f = Some(e);
        }
    }

    /// Every sender has finished.
    pub fn senders_finished(&self) {
        self.senders_done.store(true, Ordering::SeqCst);
        self.check_done();
    }

    fn is_done(&self) -> bool {
        self.senders_done.load(Ordering::SeqCst)
            && self.acked.load(Ordering::SeqCst) >= self.expected.load(Ordering::SeqCst)
    }

    fn check_done(&self) {
        if self.is_done() {
            self.done.notify_waiters();
        }
    }

    /// Wait until every expected delivery is acknowledged, or `timeout`.
    /// Returns whether it completed.
    pub async fn wait_done(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.done.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_done() {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.is_done();
            }
        }
    }

    /// Fill in the counts and delivery latency of `r`, for a phase that
    /// started at `start`.
    pub fn fill(&self, r: &mut LoadReport, start: Instant) {
        r.expected_deliveries = self.expected.load(Ordering::SeqCst);
        r.deliveries = self.acked.load(Ordering::SeqCst);
        r.errors = self.errors.load(Ordering::SeqCst);
        r.first_error = self.first_error.locked().clone();
        r.redelivered_or_foreign = self.stray.load(Ordering::SeqCst);
        r.complete = r.deliveries >= r.expected_deliveries;
        let last = *self.last_ack.locked();
        r.elapsed_seconds = last.map(|l| l.duration_since(start).as_secs_f64()).unwrap_or(0.0);
        let mut d = std::mem::take(&mut *self.delivery_micros.locked());
        r.delivery_latency_ms = Latency::of(&mut d);
        if r.elapsed_seconds > 0.0 {
            r.docs_per_second = r.documents as f64 / r.elapsed_seconds;
            r.deliveries_per_second = r.deliveries as f64 / r.elapsed_seconds;
        }
        if r.send_seconds > 0.0 {
            r.accepted_per_second = r.documents as f64 / r.send_seconds;
        }
    }
}

/// The recipients of document `n` of sender `s`: `fanout` receivers other
/// than the sender, rotating so every receiver gets its share.
pub fn recipients(senders: &[String], receivers: &[String], fanout: usize, s: usize, n: u64) -> Vec<String> {
    let from = &senders[s];
    let m = receivers.len();
    let mut out = Vec::with_capacity(fanout);
    let start = (s as u64 + n) as usize % m;
    for i in 0..m {
        let r = &receivers[(start + i) % m];
        if r != from {
            out.push(r.clone());
            if out.len() == fanout {
                break;
            }
        }
    }
    out
}

/// One document to sign: sender index, sequence number, recipients.
struct Plan {
    n: u64,
    to: Vec<String>,
    priority: i32,
}

/// The header of benchmark document `n` of run `nonce`, from agency `from`
/// to `to`: a document id of the QĐ form dated `date`
/// ([`truc_core::document::date_for_document_id`]).
pub fn bench_header(from: &str, date: &str, nonce: u32, n: u64, to: Vec<String>, priority: i32) -> DocumentHeader {
    DocumentHeader {
        to,
        document_id: format!("{from},{date},{nonce:08x}.{n}/BENCH"),
        subject: "truc bench".into(),
        priority,
        content_type: "application/octet-stream".into(),
        ..Default::default()
    }
}

/// Sign `plans` as `identity`, on every core. Returns the documents in the
/// order of `plans`.
fn sign_all(
    identity: &Identity,
    sender: u32,
    nonce: u32,
    base: &[u8],
    plans: Vec<Plan>,
) -> Result<Vec<SignedDocument>, LoadError> {
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let chunk = plans.len().div_ceil(threads).max(1);
    let date = truc_core::document::date_for_document_id(truc_core::now_unix_ms());
    let from = identity
        .principal
        .agency()
        .ok_or_else(|| LoadError::new(format!("{} is not an agency", identity.principal)))?
        .to_string();
    let results: Vec<Result<Vec<SignedDocument>, LoadError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = plans
            .chunks(chunk)
            .map(|part| {
                let (date, from) = (&date, &from);
                scope.spawn(move || -> Result<Vec<SignedDocument>, LoadError> {
                    let signer = identity.signer()?;
                    let mut out = Vec::with_capacity(part.len());
                    for p in part {
                        let mut header = bench_header(from, date, nonce, p.n, p.to.clone(), p.priority);
                        let body = payload(base, &tag(nonce, sender, p.n));
                        out.push(truc_client::sign_with(&signer, identity, &mut header, body)?);
                    }
                    Ok(out)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(LoadError::new("a signing thread panicked")))
            })
            .collect()
    });
    let mut docs = Vec::new();
    for r in results {
        docs.extend(r?);
    }
    Ok(docs)
}

/// Everything connected and running for one load run.
struct Rig {
    spec: LoadSpec,
    nonce: u32,
    base: Vec<u8>,
    identities: Vec<Identity>,
    /// Per sender, its connections.
    clients: Vec<Vec<Client>>,
    tracker: Arc<Tracker>,
    receivers: Vec<tokio::task::JoinHandle<()>>,
    next_n: Vec<u64>,
}

impl Drop for Rig {
    fn drop(&mut self) {
        for r in &self.receivers {
            r.abort();
        }
    }
}

impl Rig {
    async fn connect(spec: &LoadSpec) -> Result<Rig, LoadError> {
        spec.check()?;
        let nonce = nonce();
        let mut identities = Vec::new();
        let mut clients = Vec::new();
        for code in &spec.senders {
            let identity = Identity::load(&agency_dir(&spec.pki, code))?;
            let mut conns = Vec::new();
            for _ in 0..spec.connections {
                conns.push(Client::connect(&spec.hub, identity.clone()).await?);
            }
            identities.push(identity);
            clients.push(conns);
        }
        let tracker = Tracker::new(nonce, spec.fanout);
        let mut receivers = Vec::new();
        let (hub, pki) = match &spec.receive_at {
            Some((hub, pki)) => (hub, pki),
            None => (&spec.hub, &spec.pki),
        };
        let same_hub = spec.receive_at.is_none();
        for code in &spec.receivers {
            let client = Client::connect_dir(hub, &agency_dir(pki, code)).await?;
            let stream = client.receive(spec.credit, true).await?;
            receivers.push(tokio::spawn(receive_loop(client, stream, tracker.clone(), same_hub)));
        }
        Ok(Rig {
            spec: spec.clone(),
            nonce,
            base: random_bytes(spec.size, nonce as u64 ^ 0x5EED),
            identities,
            clients,
            tracker,
            receivers,
            next_n: vec![0; spec.senders.len()],
        })
    }

    /// Sign `per_sender[s]` documents for each sender.
    async fn presign(&mut self, per_sender: &[u64]) -> Result<Vec<Vec<SignedDocument>>, LoadError> {
        let mut pools = Vec::new();
        for (s, count) in per_sender.iter().enumerate() {
            let first = self.next_n[s];
            self.next_n[s] += count;
            let plans: Vec<Plan> = (first..first + count)
                .map(|n| Plan {
                    n,
                    to: recipients(&self.spec.senders, &self.spec.receivers, self.spec.fanout, s, n),
                    priority: self.spec.priority_mix.priority_for(n) as i32,
                })
                .collect();
            let identity = self.identities[s].clone();
            let (nonce, base) = (self.nonce, self.base.clone());
            let mut docs = tokio::task::spawn_blocking(move || sign_all(&identity, s as u32, nonce, &base, plans))
                .await
                .map_err(|e| LoadError::new(e.to_string()))??;
            docs.reverse(); // popped from the back: sent in order
            pools.push(docs);
        }
        Ok(pools)
    }

    /// Send every pool (until `deadline`), wait for the deliveries; fills
    /// the counts and latencies of `report`.
    async fn phase(
        &self,
        pools: Vec<Vec<SignedDocument>>,
        deadline: Option<Duration>,
        rate: Option<f64>,
        report: &mut LoadReport,
    ) -> Result<(), LoadError> {
        let pushed_before = self.pushbacks();
        let phase = SendPhase {
            tracker: self.tracker.clone(),
            nonce: self.nonce,
            window: self.spec.window,
            deadline,
            rate,
            drain_timeout: self.spec.drain_timeout,
        };
        phase
            .run(
                pools,
                &self.clients,
                report,
                |doc: &SignedDocument| &doc.payload,
                |client: Client, doc| async move {
                    client
                        .send(doc)
                        .await
                        .map(|_| ())
                        .map_err(|e| format!("send: {e}"))
                },
            )
            .await?;
        report.pushbacks = self.pushbacks() - pushed_before;
        Ok(())
    }

    /// Sends the hub pushed back so far, over every sender's connections.
    fn pushbacks(&self) -> u64 {
        self.clients.iter().flatten().map(Client::pushbacks).sum()
    }
}

/// One sending phase, the same for Truc and for a peer it is compared with
/// (`truc-bench`): `window` workers per sender take items from that
/// sender's pool — on the pacer's schedule, or as fast as the window allows
/// — until the deadline or the pool's end, send each over one of the
/// sender's connections, and time it from when it was due; then wait for
/// the tracker to see every delivery, and fill the report.
pub struct SendPhase {
    /// Sees every acceptance and delivery.
    pub tracker: Arc<Tracker>,
    /// The run's nonce (in every payload's tag).
    pub nonce: u32,
    /// Sends in flight per sender.
    pub window: usize,
    /// Stop sending after this long; `None`: when the pools are empty.
    pub deadline: Option<Duration>,
    /// Documents per second in all, paced; `None`: as fast as the windows allow.
    pub rate: Option<f64>,
    /// How long to wait for the last deliveries.
    pub drain_timeout: Duration,
}

impl SendPhase {
    /// Run it: `pools[s]` is sent by sender `s` over `connections[s]`
    /// (round robin over its workers) with `send`; `payload` finds an
    /// item's tagged payload.
    pub async fn run<T, C, F, Fut>(
        &self,
        pools: Vec<Vec<T>>,
        connections: &[Vec<C>],
        report: &mut LoadReport,
        payload: fn(&T) -> &[u8],
        send: F,
    ) -> Result<(), LoadError>
    where
        T: Send + 'static,
        C: Clone + Send + 'static,
        F: Fn(C, T) -> Fut + Clone + Send + 'static,
        Fut: std::future::Future<Output = Result<(), String>> + Send,
    {
        self.tracker.reset();
        let start = Instant::now();
        let until = self.deadline.map(|d| start + d);
        let exhausted = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicU64::new(0));
        let pacer = self.rate.map(|r| Pacer::new(start, r));
        let mut workers = tokio::task::JoinSet::new();
        for (s, pool) in pools.into_iter().enumerate() {
            let pool = Arc::new(Mutex::new(pool));
            for w in 0..self.window {
                let conn = connections[s][w % connections[s].len()].clone();
                let (pool, tracker, exhausted, accepted, pacer, send) = (
                    pool.clone(),
                    self.tracker.clone(),
                    exhausted.clone(),
                    accepted.clone(),
                    pacer.clone(),
                    send.clone(),
                );
                let nonce = self.nonce;
                workers.spawn(async move {
                    let mut micros = Vec::new();
                    let mut last = None;
                    loop {
                        let due = match &pacer {
                            Some(p) => Some(p.next().await),
                            None => None,
                        };
                        if until.is_some_and(|u| Instant::now() >= u) {
                            break;
                        }
                        let Some(item) = pool.locked().pop() else {
                            if until.is_some() {
                                exhausted.store(true, Ordering::Relaxed);
                            }
                            break;
                        };
                        let key = key_of(nonce, payload(&item)).unwrap_or(0);
                        let t0 = due.unwrap_or_else(Instant::now);
                        match send(conn.clone(), item).await {
                            Ok(()) => {
                                let t1 = Instant::now();
                                micros.push(t1.duration_since(t0).as_micros().min(u32::MAX as u128) as u32);
                                tracker.accepted(key, t1);
                                accepted.fetch_add(1, Ordering::Relaxed);
                                last = Some(t1);
                            }
                            Err(e) => tracker.error(e),
                        }
                    }
                    (micros, last)
                });
            }
        }
        let mut send_micros = Vec::new();
        let mut last_accept = start;
        while let Some(r) = workers.join_next().await {
            let (m, last) = r.map_err(|e| LoadError::new(e.to_string()))?;
            send_micros.extend(m);
            if let Some(l) = last {
                last_accept = last_accept.max(l);
            }
        }
        self.tracker.senders_finished();
        self.tracker.wait_done(self.drain_timeout).await;
        report.documents = accepted.load(Ordering::SeqCst);
        report.send_seconds = last_accept.duration_since(start).as_secs_f64();
        report.send_latency_ms = Latency::of(&mut send_micros);
        report.pool_exhausted = exhausted.load(Ordering::SeqCst);
        self.tracker.fill(report, start);
        Ok(())
    }
}

/// A Receive stream: hand each delivery to the ack task; the ack task sends
/// whatever has gathered as one Ack, a few Acks in flight at once.
/// `same_hub`: the delivering hub accepted the document from its sender, so
/// the latency is measured from its acceptance time.
async fn receive_loop(
    client: Client,
    mut stream: tonic::Streaming<truc_proto::v1::Delivery>,
    tracker: Arc<Tracker>,
    same_hub: bool,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(u64, bool)>();
    let acker = {
        let (client, tracker) = (client.clone(), tracker.clone());
        tokio::spawn(async move {
            let permits = Arc::new(Semaphore::new(ACKS_IN_FLIGHT));
            while let Some(first) = rx.recv().await {
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    return;
                };
                let mut batch = vec![first];
                while batch.len() < MAX_ACK_IDS {
                    match rx.try_recv() {
                        Ok(x) => batch.push(x),
                        Err(_) => break,
                    }
                }
                let (client, tracker) = (client.clone(), tracker.clone());
                tokio::spawn(async move {
                    let counted = batch.iter().filter(|(_, c)| *c).count() as u64;
                    let ids = batch.into_iter().map(|(id, _)| id).collect();
                    match client.ack(ids).await {
                        Ok(_) => tracker.acked(counted, Instant::now()),
                        Err(e) => tracker.error(format!("ack: {e}")),
                    }
                    drop(permit);
                });
            }
        })
    };
    loop {
        match stream.message().await {
            Ok(Some(d)) => {
                let at = Instant::now();
                let counted = d
                    .document
                    .as_ref()
                    // The hub's acceptance time has millisecond resolution:
                    // take the middle of its millisecond.
                    .map(|doc| {
                        let accepted = same_hub.then_some(d.accepted_at_unix_ms * 1000 + 500);
                        tracker.received(&doc.payload, at, accepted)
                    })
                    .unwrap_or(false);
                if tx.send((d.delivery_id, counted)).is_err() {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                tracker.error(format!("receive: {}", ClientError::from(e)));
                break;
            }
        }
    }
    drop(tx);
    let _ = acker.await;
}

/// Run `spec` against its hub (whose agencies must be registered: see
/// [`prepare`]). Signs before the clock, warms up, measures.
pub async fn run(spec: &LoadSpec) -> Result<LoadReport, LoadError> {
    let mut rig = Rig::connect(spec).await?;
    let senders = spec.senders.len() as u64;
    let mut report = LoadReport {
        system: "truc".into(),
        senders: spec.senders.len(),
        receivers: spec.receivers.len(),
        fanout: spec.fanout,
        size: spec.size,
        window: spec.window,
        credit: spec.credit,
        connections: spec.connections,
        rate: spec.rate,
        ..LoadReport::default()
    };
    // Warm-up: connections, the hub's caches, and a first rate.
    let warmup = spec.warmup.unwrap_or(senders * spec.window as u64 * 2);
    let mut rate = 0.0;
    if warmup > 0 {
        let pools = rig.presign(&split(warmup, senders)).await?;
        let mut w = LoadReport::default();
        rig.phase(pools, None, None, &mut w).await?;
        if w.errors > 0 {
            return Err(LoadError::new(format!(
                "warm-up failed: {}",
                w.first_error.unwrap_or_default()
            )));
        }
        if !w.complete {
            return Err(LoadError::new(format!(
                "warm-up: only {} of {} deliveries acknowledged in {:?}",
                w.deliveries, w.expected_deliveries, spec.drain_timeout
            )));
        }
        rate = w.docs_per_second;
    }
    let (total, deadline) = match spec.stop {
        StopAt::Count(n) => (n, None),
        StopAt::Duration(d) => (
            pool_size(
                spec.rate.map(|r| r / 2.0).unwrap_or(rate),
                d,
                spec.size,
                senders * spec.window as u64,
                spec.max_presign_bytes,
            ),
            Some(d),
        ),
    };
    let t = Instant::now();
    let pools = rig.presign(&split(total, senders)).await?;
    report.presigned = total;
    report.presign_seconds = t.elapsed().as_secs_f64();
    rig.phase(pools, deadline, spec.rate, &mut report).await?;
    Ok(report)
}

/// A fixed send schedule: ticket `k` is due at `start + k / rate`.
///
/// Tickets are released by a thread of its own that sleeps until each one
/// is due: tokio's timer rounds every deadline up to the next millisecond,
/// which would count up to a millisecond of the generator's own lateness
/// as the hub's latency. Waiters take tickets in order (the semaphore is
/// fair), and each measures from its ticket's due time, so a late hub is
/// still charged for the sends it held back (no coordinated omission).
#[derive(Debug, Clone)]
pub struct Pacer {
    start: Instant,
    rate: f64,
    tickets: Arc<tokio::sync::Semaphore>,
    next: Arc<AtomicU64>,
}

impl Pacer {
    /// `rate` tickets per second from `start`; the releasing thread ends
    /// once every clone is dropped.
    pub fn new(start: Instant, rate: f64) -> Pacer {
        let tickets = Arc::new(tokio::sync::Semaphore::new(0));
        let weak = Arc::downgrade(&tickets);
        let spawned = std::thread::Builder::new().name("truc-pacer".into()).spawn(move || {
            for k in 0u64.. {
                let due = start + Duration::from_secs_f64(k as f64 / rate);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                match weak.upgrade() {
                    Some(t) => t.add_permits(1),
                    None => break,
                }
            }
        });
        if let Err(e) = spawned {
            // Without the thread nothing would ever be released: fail loudly.
            panic!("cannot start the pacing thread: {e}");
        }
        Pacer {
            start,
            rate,
            tickets,
            next: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Wait for the next ticket; returns when it was due.
    pub async fn next(&self) -> Instant {
        if let Ok(permit) = self.tickets.acquire().await {
            permit.forget();
        }
        let k = self.next.fetch_add(1, Ordering::Relaxed);
        self.start + Duration::from_secs_f64(k as f64 / self.rate)
    }
}

/// Documents to prepare for a duration run: enough for 2.5× the warm-up
/// `rate` (the warm-up starts cold), never fewer than four times the
/// documents in flight, at most `max_bytes` of payload.
pub fn pool_size(rate: f64, duration: Duration, size: usize, in_flight: u64, max_bytes: u64) -> u64 {
    let cap = (max_bytes / (size as u64 + 1024)).max(in_flight);
    let want = ((rate.max(1000.0) * 2.5 * duration.as_secs_f64()) as u64).max(in_flight * 4);
    want.min(cap)
}

/// `total` split over `parts` as evenly as possible.
pub fn split(total: u64, parts: u64) -> Vec<u64> {
    (0..parts)
        .map(|i| total / parts + u64::from(i < total % parts))
        .collect()
}

/// What [`prefill`] did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PrefillReport {
    /// Documents left queued.
    pub documents: u64,
    /// Their payload size.
    pub size: usize,
    /// Seconds it took, signing included.
    pub seconds: f64,
}

/// Queue `count` documents of `size` bytes for `parked` (an agency nobody
/// receives for), sent by `senders`, `window` Sends in flight per sender.
/// Signing runs alongside sending, in chunks.
#[allow(clippy::too_many_arguments)]
pub async fn prefill(
    hub: &str,
    pki: &Path,
    senders: &[String],
    parked: &str,
    count: u64,
    size: usize,
    window: usize,
    progress: impl Fn(u64) + Send + Sync + 'static,
) -> Result<PrefillReport, LoadError> {
    const CHUNK: u64 = 8192;
    let start = Instant::now();
    let nonce = nonce();
    let base = Arc::new(random_bytes(size.max(TAG_LEN), nonce as u64));
    let mut clients = Vec::new();
    let mut identities = Vec::new();
    for code in senders {
        let identity = Identity::load(&agency_dir(pki, code))?;
        clients.push(Client::connect(hub, identity.clone()).await?);
        identities.push(identity);
    }
    let (tx, mut rx) = mpsc::channel::<(usize, Vec<SignedDocument>)>(2);
    let parked = parked.to_string();
    let signer = tokio::task::spawn_blocking(move || -> Result<(), LoadError> {
        let mut n = 0u64;
        let mut s = 0usize;
        while n < count {
            let k = CHUNK.min(count - n);
            let plans = (n..n + k)
                .map(|i| Plan {
                    n: i,
                    to: vec![parked.clone()],
                    priority: Priority::Normal as i32,
                })
                .collect();
            let mut docs = sign_all(&identities[s], s as u32, nonce, &base, plans)?;
            docs.reverse();
            if tx.blocking_send((s, docs)).is_err() {
                return Ok(());
            }
            n += k;
            s = (s + 1) % identities.len();
        }
        Ok(())
    });
    let done = Arc::new(AtomicU64::new(0));
    let progress = Arc::new(progress);
    while let Some((s, docs)) = rx.recv().await {
        let pool = Arc::new(Mutex::new(docs));
        let mut set: tokio::task::JoinSet<Result<(), LoadError>> = tokio::task::JoinSet::new();
        for _ in 0..window {
            let (pool, client, done, progress) = (pool.clone(), clients[s].clone(), done.clone(), progress.clone());
            set.spawn(async move {
                loop {
                    let Some(doc) = pool.locked().pop() else {
                        return Ok(());
                    };
                    client.send(doc).await.map_err(LoadError::from)?;
                    let d = done.fetch_add(1, Ordering::Relaxed) + 1;
                    if d % 10_000 == 0 {
                        progress(d);
                    }
                }
            });
        }
        while let Some(r) = set.join_next().await {
            r.map_err(|e| LoadError::new(e.to_string()))??;
        }
    }
    signer.await.map_err(|e| LoadError::new(e.to_string()))??;
    Ok(PrefillReport {
        documents: done.load(Ordering::SeqCst),
        size,
        seconds: start.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_round_trip() {
        let p = payload(&random_bytes(64, 7), &tag(42, 3, 99));
        assert_eq!(key_of(42, &p), Some(3 << 40 | 99));
        assert_eq!(key_of(43, &p), None);
        assert_eq!(split(10, 3), vec![4, 3, 3]);
    }

    #[test]
    fn recipients_skip_the_sender() {
        let mut spec = LoadSpec::new("x", Path::new("/nonexistent"));
        spec.senders = agency_codes('A', 3);
        spec.receivers = spec.senders.clone();
        spec.fanout = 2;
        spec.check().unwrap();
        for n in 0..6 {
            let r = recipients(&spec.senders, &spec.receivers, spec.fanout, 1, n);
            assert_eq!(r.len(), 2);
            assert!(!r.contains(&spec.senders[1]));
        }
        spec.fanout = 3;
        assert!(spec.check().is_err());
    }

    #[test]
    fn percentiles() {
        let mut v: Vec<u32> = (1..=1000).map(|i| i * 1000).collect();
        let l = Latency::of(&mut v);
        assert_eq!(l.p50, 500.0);
        assert_eq!(l.p99, 990.0);
        assert_eq!(l.p999, 999.0);
        assert_eq!(l.max, 1000.0);
    }
}
