//! Prometheus metrics, hand-written: counters, gauges and fixed-bucket
//! histograms kept in atomics, rendered in the text exposition format
//! (version 0.0.4) by the admin listener's `GET /metrics`.
//!
//! Counters and histograms are updated where things happen (the gRPC
//! services, the store's writer). Per-agency gauges — queue depth, oldest
//! item, dead letters, overdue urgent items, streams — are read at scrape
//! time by the same function as `Ops.ListQueues` (`truc ops queues`),
//! `crate::queues`, so the two agree.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `truc_up` | gauge | |
//! | `truc_ready` | gauge | |
//! | `truc_start_time_seconds` | gauge | |
//! | `truc_build_info` | gauge | `version` |
//! | `truc_sends_total` | counter | `outcome` = `accepted` \| `duplicate` |
//! | `truc_acks_total` | counter | |
//! | `truc_grpc_requests_total` | counter | `service`, `method`, `code` |
//! | `truc_refusals_total` | counter | `service`, `method`, `code` (not OK) |
//! | `truc_send_duration_seconds` | histogram | (Send accepted → durable, answered) |
//! | `truc_delivery_latency_seconds` | histogram | (accepted → acknowledged by a recipient) |
//! | `truc_store_commit_batch_size` | histogram | (requests per group commit) |
//! | `truc_store_commit_duration_seconds` | histogram | (apply + flush) |
//! | `truc_store_commit_failures_total` | counter | |
//! | `truc_queue_depth` | gauge | `agency` |
//! | `truc_queue_bytes` | gauge | `agency` |
//! | `truc_queue_in_flight` | gauge | `agency` |
//! | `truc_queue_oldest_age_seconds` | gauge | `agency` |
//! | `truc_dead_letters` | gauge | `agency` |
//! | `truc_overdue_urgent` | gauge | `agency` |
//! | `truc_receive_streams` | gauge | `agency` |
//! | `truc_agencies` | gauge | `state` |
//! | `truc_connected_agencies` | gauge | |
//! | `truc_certificate_expiry_timestamp_seconds` | gauge | `kind` = `hub` \| `ca`, `subject` |
//! | `truc_client_certificate_expiry_timestamp_seconds` | gauge | `principal` (its last connection's certificate) |
//! | `truc_metrics_scrape_errors_total` | counter | |
//! | `truc_crl_configured` | gauge | (0: `tls.crl = "none"`, revocations not checked) |
//! | `truc_crl_revoked_certificates` | gauge | |
//! | `truc_connections_open` | gauge | (gRPC port, handshakes included) |
//! | `truc_connections_busiest_address` | gauge | |
//! | `truc_tls_handshakes_in_progress` | gauge | |
//! | `truc_connection_limits` | gauge | `limit` = `total` \| `per_address` \| `handshakes` |
//! | `truc_connections_refused_total` | counter | `cap` = `total` \| `per_address` \| `handshakes` |
//! | `truc_connections_closed_total` | counter | `reason` (`door.rs`) |
//! | `truc_disk_free_bytes` | gauge | (file system of `data_dir`, as the hub sees it) |
//! | `truc_disk_reserve_bytes` | gauge | (`limits.min_free_disk_bytes`) |
//! | `truc_store_bytes` | gauge | (sled and its log, as `du` counts them) |
//! | `truc_payloads` | gauge | (complete payload files) |
//! | `truc_payload_bytes` | gauge | |
//! | `truc_uploads_incomplete` | gauge | (`.part` files) |
//! | `truc_upload_part_bytes` | gauge | |
//! | `truc_scrub_last_completed_timestamp_seconds` | gauge | (absent until a scrub completes) |
//! | `truc_scrub_damaged_total` | counter | `kind` = `document` \| `payload_file` \| `receipt` \| `tree_head` |
//! | `truc_scrub_awaiting_resend` | gauge | (quarantined documents not yet sent again, at the last scrub) |
//! | `truc_quarantined_documents_total` | counter | `found_by` = `scrub` \| `delivery` |
//!
//! The disk and payload gauges are read at scrape time too: free space
//! with `statvfs`, the payload and upload directories with one `stat` per
//! file.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::fmt::Write as _;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use truc_core::sync::Locked;

use tonic::codegen::{http, Service};
use tonic::server::NamedService;
use truc_proto::v1::{AgencyState, QueueSummary, Storage};

/// `Content-Type` of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Request latencies, seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Accepted → acknowledged, seconds: from a live receiver (milliseconds) to
/// the legal deadlines (hours).
const DELIVERY_BUCKETS: &[f64] = &[
    0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 7200.0, 14400.0, 28800.0, 86400.0,
];
/// Requests per group commit (the writer takes at most 1024).
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0];

/// Most (agency, delivery id) pairs remembered between delivery and ack for
/// the end-to-end latency; beyond it new deliveries are not timed.
const MAX_TIMED_DELIVERIES: usize = 100_000;

/// A histogram with fixed buckets, lock-free.
struct Histogram {
    bounds: &'static [f64],
    /// Non-cumulative counts; the last one is `+Inf`.
    buckets: Box<[AtomicU64]>,
    /// Sum of observations, as `f64` bits.
    sum: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0f64.to_bits()),
        }
    }

    fn observe(&self, v: f64) {
        if !v.is_finite() {
            return;
        }
        let i = self.bounds.partition_point(|b| *b < v);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        let mut cur = self.sum.load(Ordering::Relaxed);
        loop {
            let new = (f64::from_bits(cur) + v).to_bits();
            match self
                .sum
                .compare_exchange_weak(cur, new, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(x) => cur = x,
            }
        }
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        header(out, name, "histogram", help);
        let mut cumulative = 0u64;
        for (i, b) in self.buckets.iter().enumerate() {
            cumulative += b.load(Ordering::Relaxed);
            let le = match self.bounds.get(i) {
                Some(v) => fmt_f64(*v),
                None => "+Inf".to_string(),
            };
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
        }
        let sum = f64::from_bits(self.sum.load(Ordering::Relaxed));
        let _ = writeln!(out, "{name}_sum {}", fmt_f64(sum));
        // The count is the +Inf bucket, so the two always agree.
        let _ = writeln!(out, "{name}_count {cumulative}");
    }
}

/// The hub's counters and histograms. One per running hub.
pub struct Metrics {
    started_unix: f64,
    sends_accepted: AtomicU64,
    sends_duplicate: AtomicU64,
    acks: AtomicU64,
    /// (service, method, gRPC code) → requests.
    grpc: Mutex<BTreeMap<(&'static str, String, i32), u64>>,
    send_seconds: Histogram,
    delivery_seconds: Histogram,
    commit_batch: Histogram,
    commit_seconds: Histogram,
    commit_failures: AtomicU64,
    scrape_errors: AtomicU64,
    /// The background scrub and `Ops.VerifyStore` (`crate::scrub`).
    scrub: Mutex<ScrubFigures>,
    /// 1 when CRLs are checked, 0 when `tls.crl = "none"`.
    crl_configured: AtomicU64,
    /// Certificates listed in the CRLs at the last (re)load.
    crl_revoked: AtomicU64,
    /// The public port's caps and counts, once serving.
    door: std::sync::OnceLock<Arc<crate::door::Door>>,
    /// (agency, delivery id) → accepted at (Unix ms), from delivery to ack.
    timed: Mutex<HashMap<(String, u64), i64>>,
    /// Principal URI → notAfter (Unix seconds) of the client certificate
    /// it last connected with since the hub started.
    client_certs: Mutex<BTreeMap<String, i64>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Fresh counters.
    pub fn new() -> Self {
        let started_unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        Self {
            started_unix,
            sends_accepted: AtomicU64::new(0),
            sends_duplicate: AtomicU64::new(0),
            acks: AtomicU64::new(0),
            grpc: Mutex::new(BTreeMap::new()),
            send_seconds: Histogram::new(LATENCY_BUCKETS),
            delivery_seconds: Histogram::new(DELIVERY_BUCKETS),
            commit_batch: Histogram::new(BATCH_BUCKETS),
            commit_seconds: Histogram::new(LATENCY_BUCKETS),
            commit_failures: AtomicU64::new(0),
            scrape_errors: AtomicU64::new(0),
            scrub: Mutex::default(),
            crl_configured: AtomicU64::new(0),
            crl_revoked: AtomicU64::new(0),
            door: std::sync::OnceLock::new(),
            timed: Mutex::new(HashMap::new()),
            client_certs: Mutex::new(BTreeMap::new()),
        }
    }

    /// Documents accepted and deliveries acknowledged since the start (the
    /// console's throughput).
    pub(crate) fn totals(&self) -> (u64, u64) {
        (
            self.sends_accepted.load(Ordering::Relaxed),
            self.acks.load(Ordering::Relaxed),
        )
    }

    /// A client connected as `principal` with the certificate `leaf` (DER):
    /// remember when it expires (`truc ops agencies list`, and the gauge
    /// truc_client_certificate_expiry_timestamp_seconds).
    pub(crate) fn client_certificate(&self, principal: &truc_core::Principal, leaf: &[u8]) {
        if let Some((_, t)) = not_after(leaf) {
            self.client_certs.locked().insert(principal.uri().to_string(), t);
        }
    }

    /// When this hub started, Unix ms.
    pub(crate) fn started_unix_ms(&self) -> i64 {
        (self.started_unix * 1000.0) as i64
    }

    /// Certificates listed in the CRLs at the last (re)load.
    pub(crate) fn revoked_certificates(&self) -> u64 {
        self.crl_revoked.load(Ordering::Relaxed)
    }

    /// When the certificate `principal_uri` last connected with expires
    /// (Unix seconds), if it connected since the hub started.
    pub(crate) fn client_certificate_expiry(&self, principal_uri: &str) -> Option<i64> {
        self.client_certs.locked().get(principal_uri).copied()
    }

    /// A Send was answered with an acceptance (the original one for a
    /// duplicate).
    pub(crate) fn sent(&self, duplicate: bool) {
        if duplicate {
            self.sends_duplicate.fetch_add(1, Ordering::Relaxed);
        } else {
            self.sends_accepted.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A document copy went out on a Receive stream of `agency`: remember
    /// when it was accepted, to time it when acknowledged.
    pub(crate) fn delivered(&self, agency: &str, delivery_id: u64, accepted_at_unix_ms: i64) {
        let mut t = self.timed.locked();
        if t.len() < MAX_TIMED_DELIVERIES {
            t.insert((agency.to_string(), delivery_id), accepted_at_unix_ms);
        }
    }

    /// `newly` deliveries of `agency` were acknowledged, among `ids`.
    pub(crate) fn acked(&self, agency: &str, ids: &[u64], newly: u32) {
        self.acks.fetch_add(u64::from(newly), Ordering::Relaxed);
        let now = truc_core::now_unix_ms();
        let accepted: Vec<i64> = {
            let mut t = self.timed.locked();
            ids.iter()
                .filter_map(|id| t.remove(&(agency.to_string(), *id)))
                .collect()
        };
        for at in accepted {
            self.delivery_seconds.observe((now - at).max(0) as f64 / 1000.0);
        }
    }

    /// The trust material was (re)loaded.
    pub(crate) fn trust_loaded(&self, loaded: &crate::trust::Loaded) {
        self.crl_configured
            .store(u64::from(loaded.revocation), Ordering::Relaxed);
        self.crl_revoked.store(loaded.revoked_certificates, Ordering::Relaxed);
    }

    /// Report the public port's caps and counts from now on.
    pub(crate) fn set_door(&self, door: Arc<crate::door::Door>) {
        let _ = self.door.set(door);
    }

    /// A request refused before any service saw it: its connection has no
    /// acceptable client certificate (`tls.rs`). Counted and logged like
    /// the refusals of the services themselves.
    pub(crate) fn refused_unauthenticated(&self, path: &str, why: &str, peer: std::net::SocketAddr) {
        let mut parts = path.trim_start_matches('/').splitn(2, '/');
        let service = match parts.next().unwrap_or("") {
            "truc.v1.Axis" => "truc.v1.Axis",
            "truc.v1.Ops" => "truc.v1.Ops",
            "truc.v1.Audit" => "truc.v1.Audit",
            "grpc.reflection.v1.ServerReflection" => "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection" => "grpc.reflection.v1alpha.ServerReflection",
            _ => "unknown",
        };
        let method = parts.next().unwrap_or("");
        self.grpc_done(service, method, tonic::Code::Unauthenticated as i32, Duration::ZERO);
        tracing::info!(service, %method, code = "UNAUTHENTICATED", %peer, principal = "-", reason = %why, "refused");
    }

    /// The store's writer committed (or failed) a batch of `size` requests.
    pub(crate) fn committed(&self, size: usize, took: Duration, ok: bool) {
        self.commit_batch.observe(size as f64);
        self.commit_seconds.observe(took.as_secs_f64());
        if !ok {
            self.commit_failures.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A scrub completed with `report`.
    pub(crate) fn scrubbed(&self, report: &truc_store::ScrubReport) {
        use truc_store::DamageKind;
        let mut f = self.scrub.locked();
        f.last_completed_unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        for d in &report.damaged {
            let i = match d.kind {
                DamageKind::Document => 0,
                DamageKind::PayloadFile => 1,
                DamageKind::Receipt => 2,
                DamageKind::TreeHead => 3,
            };
            f.damaged[i] += 1;
            if d.kind == DamageKind::Document && d.quarantined {
                f.quarantined_by_scrub += 1;
            }
        }
        f.awaiting_resend = report.awaiting_resend.len() as u64;
    }

    /// Delivery found a damaged body and quarantined its document.
    pub(crate) fn quarantined_by_delivery(&self) {
        self.scrub.locked().quarantined_by_delivery += 1;
    }

    fn grpc_done(&self, service: &'static str, method: &str, code: i32, took: Duration) {
        // Method names come from the request path: only well-formed names
        // of implemented methods become label values.
        let known = code != tonic::Code::Unimplemented as i32
            && !method.is_empty()
            && method.len() <= 64
            && method.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        let method = if known { method } else { "unknown" };
        *self
            .grpc
            .locked()
            .entry((service, method.to_string(), code))
            .or_insert(0) += 1;
        if service == "truc.v1.Axis" && method == "Send" && code == 0 {
            self.send_seconds.observe(took.as_secs_f64());
        }
    }

    /// The whole exposition. `queues` are the per-agency rows (as
    /// `Ops.ListQueues` returns them); `certs` are (kind, subject, not
    /// after in Unix seconds).
    pub(crate) fn render(
        &self,
        ready: bool,
        queues: Option<&[QueueSummary]>,
        certs: &[(String, String, i64)],
        storage: Option<&Storage>,
    ) -> String {
        let mut out = String::with_capacity(8192);
        gauge(&mut out, "truc_up", "1 while the hub process runs.", &[("", 1.0)]);
        gauge(
            &mut out,
            "truc_ready",
            "1 when the store is open and the gRPC listener serves; 0 while starting or shutting down.",
            &[("", if ready { 1.0 } else { 0.0 })],
        );
        gauge(
            &mut out,
            "truc_start_time_seconds",
            "When the hub process started, Unix seconds.",
            &[("", self.started_unix)],
        );
        gauge(
            &mut out,
            "truc_build_info",
            "The hub's version.",
            &[(labels(&[("version", env!("CARGO_PKG_VERSION"))]).as_str(), 1.0)],
        );

        counter(
            &mut out,
            "truc_sends_total",
            "Documents accepted by Send (durable before the answer); duplicate = a retried Send answered with the original acceptance.",
            &[
                (labels(&[("outcome", "accepted")]).as_str(), self.sends_accepted.load(Ordering::Relaxed)),
                (labels(&[("outcome", "duplicate")]).as_str(), self.sends_duplicate.load(Ordering::Relaxed)),
            ],
        );
        counter(
            &mut out,
            "truc_acks_total",
            "Deliveries newly acknowledged by their recipients.",
            &[("", self.acks.load(Ordering::Relaxed))],
        );
        let grpc: Vec<((&'static str, String, i32), u64)> =
            self.grpc.locked().iter().map(|(k, v)| (k.clone(), *v)).collect();
        let rows: Vec<(String, u64)> = grpc
            .iter()
            .map(|((s, m, c), v)| (labels(&[("service", s), ("method", m), ("code", code_name(*c))]), *v))
            .collect();
        let refs: Vec<(&str, u64)> = rows.iter().map(|(l, v)| (l.as_str(), *v)).collect();
        counter(
            &mut out,
            "truc_grpc_requests_total",
            "gRPC requests answered, by service, method and status code.",
            &refs,
        );
        let refused: Vec<(&str, u64)> = grpc
            .iter()
            .zip(&rows)
            .filter(|(((_, _, c), _), _)| *c != 0)
            .map(|(_, (l, v))| (l.as_str(), *v))
            .collect();
        counter(
            &mut out,
            "truc_refusals_total",
            "gRPC requests refused (any status code but OK), by service, method and code.",
            &refused,
        );
        self.send_seconds.render(
            &mut out,
            "truc_send_duration_seconds",
            "Send: request received to acceptance answered, the document durable on disk.",
        );
        self.delivery_seconds.render(
            &mut out,
            "truc_delivery_latency_seconds",
            "End to end: document accepted to a recipient's acknowledgement of its copy.",
        );
        self.commit_batch.render(
            &mut out,
            "truc_store_commit_batch_size",
            "Requests applied and flushed together by one group commit of the store's writer.",
        );
        self.commit_seconds.render(
            &mut out,
            "truc_store_commit_duration_seconds",
            "One group commit: apply the batch, sign the tree head, flush.",
        );
        counter(
            &mut out,
            "truc_store_commit_failures_total",
            "Group commits that failed (every request in the batch was refused).",
            &[("", self.commit_failures.load(Ordering::Relaxed))],
        );

        gauge(
            &mut out,
            "truc_crl_configured",
            "1 when client and signer certificates are checked against CRLs; 0 when tls.crl = \"none\" (revoked certificates are accepted).",
            &[("", self.crl_configured.load(Ordering::Relaxed) as f64)],
        );
        gauge(
            &mut out,
            "truc_crl_revoked_certificates",
            "Certificates listed in the CRLs in force (at the last load or reload).",
            &[("", self.crl_revoked.load(Ordering::Relaxed) as f64)],
        );

        if let Some(door) = self.door.get() {
            door.render(&mut out);
        }

        if let Some(queues) = queues {
            render_queues(&mut out, queues);
        } else {
            self.scrape_errors.fetch_add(1, Ordering::Relaxed);
        }
        counter(
            &mut out,
            "truc_metrics_scrape_errors_total",
            "Scrapes whose per-agency queue gauges could not be read (store unavailable).",
            &[("", self.scrape_errors.load(Ordering::Relaxed))],
        );

        let rows: Vec<(String, f64)> = certs
            .iter()
            .map(|(kind, subject, t)| (labels(&[("kind", kind), ("subject", subject)]), *t as f64))
            .collect();
        let refs: Vec<(&str, f64)> = rows.iter().map(|(l, v)| (l.as_str(), *v)).collect();
        gauge(
            &mut out,
            "truc_certificate_expiry_timestamp_seconds",
            "End of validity (notAfter) of the hub's TLS certificate and of the CA certificates it trusts, Unix seconds.",
            &refs,
        );
        let clients: Vec<(String, f64)> = self
            .client_certs
            .locked()
            .iter()
            .map(|(p, t)| (labels(&[("principal", p)]), *t as f64))
            .collect();
        let refs: Vec<(&str, f64)> = clients.iter().map(|(l, v)| (l.as_str(), *v)).collect();
        gauge(
            &mut out,
            "truc_client_certificate_expiry_timestamp_seconds",
            "End of validity (notAfter) of the certificate each principal (agency, operator, auditor) last connected with since the hub started, Unix seconds.",
            &refs,
        );
        if let Some(s) = storage {
            render_storage(&mut out, s);
        }
        let scrub = self.scrub.locked().clone();
        scrub.render(&mut out);
        out
    }
}

/// What the scrubs found since the hub started.
#[derive(Debug, Clone, Default)]
struct ScrubFigures {
    /// Unix seconds; 0 until a scrub completes.
    last_completed_unix: f64,
    /// Damaged items found, by kind (document, payload file, receipt, tree head).
    damaged: [u64; 4],
    awaiting_resend: u64,
    quarantined_by_scrub: u64,
    quarantined_by_delivery: u64,
}

impl ScrubFigures {
    fn render(&self, out: &mut String) {
        if self.last_completed_unix > 0.0 {
            gauge(
                out,
                "truc_scrub_last_completed_timestamp_seconds",
                "When a scrub of the store (background, or truc ops verify-store) last completed, Unix seconds.",
                &[("", self.last_completed_unix)],
            );
            gauge(
                out,
                "truc_scrub_awaiting_resend",
                "Documents quarantined as damaged whose senders have not sent them again yet, at the last scrub.",
                &[("", self.awaiting_resend as f64)],
            );
        }
        let kinds = ["document", "payload_file", "receipt", "tree_head"];
        let rows: Vec<(String, u64)> = kinds
            .iter()
            .zip(self.damaged)
            .map(|(k, v)| (labels(&[("kind", k)]), v))
            .collect();
        let refs: Vec<(&str, u64)> = rows.iter().map(|(l, v)| (l.as_str(), *v)).collect();
        counter(
            out,
            "truc_scrub_damaged_total",
            "Damaged items the scrub found at rest (a damaged document is quarantined; see docs/storage.md).",
            &refs,
        );
        let by = [
            (labels(&[("found_by", "scrub")]), self.quarantined_by_scrub),
            (labels(&[("found_by", "delivery")]), self.quarantined_by_delivery),
        ];
        let refs: Vec<(&str, u64)> = by.iter().map(|(l, v)| (l.as_str(), *v)).collect();
        counter(
            out,
            "truc_quarantined_documents_total",
            "Documents quarantined because their stored copy is damaged (their senders were asked to send them again).",
            &refs,
        );
    }
}

fn render_queues(out: &mut String, queues: &[QueueSummary]) {
    let by_agency: Vec<(String, &QueueSummary)> =
        queues.iter().map(|q| (labels(&[("agency", &q.agency)]), q)).collect();
    type Field = fn(&QueueSummary) -> f64;
    let per_agency: [(&str, &str, Field); 7] = [
        (
            "truc_queue_depth",
            "Items waiting in the agency's outbox (in flight included), as `truc ops queues` shows.",
            |q| q.queued as f64,
        ),
        (
            "truc_queue_bytes",
            "Payload bytes waiting in the agency's outbox.",
            |q| q.bytes as f64,
        ),
        (
            "truc_queue_in_flight",
            "Items leased to the agency's Receive streams, not yet acknowledged.",
            |q| q.in_flight as f64,
        ),
        (
            "truc_queue_oldest_age_seconds",
            "Age of the oldest item waiting for the agency (0 when none).",
            |q| q.oldest_age_ms as f64 / 1000.0,
        ),
        ("truc_dead_letters", "Items in the agency's dead-letter queue.", |q| {
            q.dead_letters as f64
        }),
        (
            "truc_overdue_urgent",
            "Urgent items for the agency past their delivery deadline.",
            |q| q.overdue_urgent as f64,
        ),
        (
            "truc_receive_streams",
            "Receive streams the agency has open now.",
            |q| f64::from(q.connected_streams),
        ),
    ];
    for (name, help, field) in per_agency {
        let rows: Vec<(&str, f64)> = by_agency.iter().map(|(l, q)| (l.as_str(), field(q))).collect();
        gauge(out, name, help, &rows);
    }
    let mut states: BTreeMap<&str, f64> = BTreeMap::new();
    for s in [AgencyState::Active, AgencyState::Suspended, AgencyState::Retired] {
        states.insert(state_name(s), 0.0);
    }
    for q in queues {
        let s = AgencyState::try_from(q.state).unwrap_or(AgencyState::Unspecified);
        *states.entry(state_name(s)).or_insert(0.0) += 1.0;
    }
    let rows: Vec<(String, f64)> = states.iter().map(|(s, n)| (labels(&[("state", s)]), *n)).collect();
    let refs: Vec<(&str, f64)> = rows.iter().map(|(l, v)| (l.as_str(), *v)).collect();
    gauge(out, "truc_agencies", "Registered agencies by state.", &refs);
    let connected = queues.iter().filter(|q| q.connected_streams > 0).count();
    gauge(
        out,
        "truc_connected_agencies",
        "Agencies with at least one Receive stream open now.",
        &[("", connected as f64)],
    );
}

fn state_name(s: AgencyState) -> &'static str {
    match s {
        AgencyState::Active => "active",
        AgencyState::Suspended => "suspended",
        AgencyState::Retired => "retired",
        _ => "unknown",
    }
}

fn render_storage(out: &mut String, s: &Storage) {
    if let Some(free) = s.disk_free_bytes {
        gauge(
            out,
            "truc_disk_free_bytes",
            "Bytes free for the hub on the file system of its data directory.",
            &[("", free as f64)],
        );
    }
    let rows: [(&str, &str, u64); 6] = [
        (
            "truc_disk_reserve_bytes",
            "limits.min_free_disk_bytes: an upload that would leave less free is refused (RESOURCE_EXHAUSTED).",
            s.disk_reserve_bytes,
        ),
        (
            "truc_store_bytes",
            "Disk bytes of the store itself in the data directory (sled and its log), as du counts them.",
            s.store_bytes,
        ),
        (
            "truc_payloads",
            "Complete payload files of large documents (one per distinct SHA-256).",
            s.payloads,
        ),
        (
            "truc_payload_bytes",
            "Bytes in complete payload files.",
            s.payload_bytes,
        ),
        (
            "truc_uploads_incomplete",
            "Uploads in progress or interrupted (.part files, resumable until limits.upload_expiry_hours).",
            s.uploads_incomplete,
        ),
        ("truc_upload_part_bytes", "Bytes in .part files.", s.upload_part_bytes),
    ];
    for (name, help, v) in rows {
        gauge(out, name, help, &[("", v as f64)]);
    }
}

/// notAfter of the hub certificate (the first in `hub_cert`) and of every
/// distinct CA certificate in `cas`: (kind, subject, Unix seconds). Read
/// from the files at each scrape, so a rotated certificate shows at once.
pub(crate) fn certificate_expiries(hub_cert: &Path, cas: &[PathBuf]) -> Vec<(String, String, i64)> {
    let mut out = Vec::new();
    if let Ok(ders) = truc_pki::read_cert_ders(hub_cert) {
        if let Some((subject, t)) = ders.first().and_then(|d| not_after(d)) {
            out.push(("hub".to_string(), subject, t));
        }
    }
    let mut seen: Vec<Vec<u8>> = Vec::new();
    for p in cas {
        for der in truc_pki::read_cert_ders(p).unwrap_or_default() {
            if seen.contains(&der) {
                continue;
            }
            if let Some((subject, t)) = not_after(&der) {
                out.push(("ca".to_string(), subject, t));
            }
            seen.push(der);
        }
    }
    out
}

fn not_after(der: &[u8]) -> Option<(String, i64)> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some((cert.subject().to_string(), cert.validity().not_after.timestamp()))
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {}", help.replace('\\', "\\\\").replace('\n', "\\n"));
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn counter(out: &mut String, name: &str, help: &str, rows: &[(&str, u64)]) {
    header(out, name, "counter", help);
    for (l, v) in rows {
        let _ = writeln!(out, "{name}{l} {v}");
    }
}

fn gauge(out: &mut String, name: &str, help: &str, rows: &[(&str, f64)]) {
    header(out, name, "gauge", help);
    for (l, v) in rows {
        let _ = writeln!(out, "{name}{l} {}", fmt_f64(*v));
    }
}

/// `{k="v",…}` with the values escaped.
fn labels(pairs: &[(&str, &str)]) -> String {
    let mut s = String::from("{");
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let v = v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
        let _ = write!(s, "{k}=\"{v}\"");
    }
    s.push('}');
    s
}

fn fmt_f64(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else if v == v.trunc() && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// The gRPC status code's canonical name.
fn code_name(code: i32) -> &'static str {
    match code {
        0 => "OK",
        1 => "CANCELLED",
        2 => "UNKNOWN",
        3 => "INVALID_ARGUMENT",
        4 => "DEADLINE_EXCEEDED",
        5 => "NOT_FOUND",
        6 => "ALREADY_EXISTS",
        7 => "PERMISSION_DENIED",
        8 => "RESOURCE_EXHAUSTED",
        9 => "FAILED_PRECONDITION",
        10 => "ABORTED",
        11 => "OUT_OF_RANGE",
        12 => "UNIMPLEMENTED",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        15 => "DATA_LOSS",
        16 => "UNAUTHENTICATED",
        _ => "UNKNOWN",
    }
}

/// A gRPC service wrapped to count its requests by method and status code.
/// The code is read from the response headers: tonic answers an error of a
/// unary call (and a refused stream) as trailers-only, so the headers carry
/// `grpc-status`; without it the call succeeded (or is a stream that
/// started).
#[derive(Clone)]
pub(crate) struct Observed<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S> Observed<S> {
    pub(crate) fn new(inner: S, metrics: Arc<Metrics>) -> Self {
        Self { inner, metrics }
    }
}

impl<S: NamedService> NamedService for Observed<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B, R> Service<http::Request<B>> for Observed<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>, Error = Infallible>
        + NamedService
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    R: Send + 'static,
{
    type Response = http::Response<R>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<http::Response<R>, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let method = req
            .uri()
            .path()
            .strip_prefix('/')
            .and_then(|p| p.strip_prefix(S::NAME))
            .and_then(|p| p.strip_prefix('/'))
            .unwrap_or("")
            .to_string();
        let started = Instant::now();
        let metrics = self.metrics.clone();
        let peer_info = req.extensions().get::<crate::PeerInfo>();
        let peer = peer_info.map_or_else(|| "-".to_string(), |p| p.addr.to_string());
        // Who it was, as the connection's certificate names it.
        let principal = peer_info
            .and_then(|p| {
                let judged = p.judged.locked();
                judged.1.as_ref().ok().map(|pr| pr.uri().to_string())
            })
            .unwrap_or_else(|| "-".to_string());
        // The clone that was made ready serves this call; a fresh clone
        // stays for the next poll_ready.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let resp = inner.call(req).await?;
            let code = resp
                .headers()
                .get("grpc-status")
                .and_then(|v| v.to_str().ok())
                .and_then(|s| s.parse::<i32>().ok())
                .unwrap_or(0);
            metrics.grpc_done(S::NAME, &method, code, started.elapsed());
            if code != 0 {
                // Every refusal leaves a line for the operator: who, what, why.
                let why = resp
                    .headers()
                    .get("grpc-message")
                    .and_then(|v| v.to_str().ok())
                    .map(percent_decode)
                    .unwrap_or_default();
                let code = code_name(code);
                tracing::info!(service = S::NAME, %method, code, %peer, %principal, reason = %why, "refused");
            }
            Ok(resp)
        })
    }
}

/// `grpc-message` as written (gRPC percent-encodes it on the wire).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One sample of a text exposition.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Metric name (with `_bucket`, `_sum`, `_count` for histograms).
    pub name: String,
    /// Label pairs.
    pub labels: BTreeMap<String, String>,
    /// Value.
    pub value: f64,
}

/// Parse the samples of a Prometheus text exposition (comments skipped). A
/// small parser for tests and tools that compare `/metrics` with other
/// views; it accepts what [`Metrics`] writes.
pub fn parse_exposition(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name_labels, value) = match line.rfind(' ') {
            Some(i) => (&line[..i], &line[i + 1..]),
            None => continue,
        };
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => match v.parse() {
                Ok(v) => v,
                Err(_) => continue,
            },
        };
        let (name, labels) = match name_labels.find('{') {
            Some(i) => (&name_labels[..i], parse_labels(&name_labels[i..])),
            None => (name_labels, BTreeMap::new()),
        };
        out.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    out
}

fn parse_labels(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let inner = s.trim_start_matches('{').trim_end_matches('}');
    let mut chars = inner.chars().peekable();
    loop {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        let key = key.trim_start_matches(',').trim().to_string();
        if key.is_empty() || chars.next() != Some('"') {
            break;
        }
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(c) => value.push(c),
                    None => break,
                },
                '"' => break,
                c => value.push(c),
            }
        }
        out.insert(key, value);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn refusal_messages_and_codes_read_as_written() {
        assert_eq!(
            super::percent_decode("agency%20000.00.00.H29%20is%20suspended"),
            "agency 000.00.00.H29 is suspended"
        );
        assert_eq!(super::percent_decode("100%"), "100%");
        assert_eq!(super::percent_decode("%C4%91%E1%BA%BFn"), "đến");
        assert_eq!(super::code_name(7), "PERMISSION_DENIED");
    }

    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_le_inclusive() {
        let h = Histogram::new(&[1.0, 2.0]);
        for v in [0.5, 1.0, 1.5, 3.0] {
            h.observe(v);
        }
        let mut s = String::new();
        h.render(&mut s, "x", "help");
        let samples = parse_exposition(&s);
        let get = |name: &str, le: Option<&str>| {
            samples
                .iter()
                .find(|x| x.name == name && x.labels.get("le").map(String::as_str) == le)
                .map(|x| x.value)
        };
        assert_eq!(get("x_bucket", Some("1")), Some(2.0));
        assert_eq!(get("x_bucket", Some("2")), Some(3.0));
        assert_eq!(get("x_bucket", Some("+Inf")), Some(4.0));
        assert_eq!(get("x_count", None), Some(4.0));
        assert_eq!(get("x_sum", None), Some(6.0));
    }

    #[test]
    fn labels_escape_and_parse_back() {
        let l = labels(&[("a", "x\"y\\z\nw"), ("b", "c")]);
        let parsed = parse_labels(&l);
        assert_eq!(parsed["a"], "x\"y\\z\nw");
        assert_eq!(parsed["b"], "c");
    }

    #[test]
    fn render_has_help_and_type_for_every_family() {
        let m = Metrics::new();
        m.sent(false);
        m.grpc_done("truc.v1.Axis", "Send", 0, Duration::from_millis(3));
        m.grpc_done("truc.v1.Axis", "Send", 7, Duration::from_millis(3));
        m.grpc_done("truc.v1.Axis", "../etc", 12, Duration::from_millis(3));
        let text = m.render(true, Some(&[]), &[], None);
        let samples = parse_exposition(&text);
        let find = |name: &str, code: &str| {
            samples
                .iter()
                .find(|s| s.name == name && s.labels.get("code").map(String::as_str) == Some(code))
                .map(|s| (s.labels["method"].clone(), s.value))
        };
        assert_eq!(find("truc_grpc_requests_total", "OK"), Some(("Send".into(), 1.0)));
        assert_eq!(
            find("truc_refusals_total", "PERMISSION_DENIED"),
            Some(("Send".into(), 1.0))
        );
        assert_eq!(
            find("truc_refusals_total", "UNIMPLEMENTED"),
            Some(("unknown".into(), 1.0))
        );
        assert!(find("truc_refusals_total", "OK").is_none());
        for s in &samples {
            let family = s
                .name
                .trim_end_matches("_bucket")
                .trim_end_matches("_sum")
                .trim_end_matches("_count");
            assert!(
                text.contains(&format!("# TYPE {family} ")) || text.contains(&format!("# TYPE {} ", s.name)),
                "{}",
                s.name
            );
        }
    }
}
