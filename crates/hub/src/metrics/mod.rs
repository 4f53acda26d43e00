//! Prometheus metrics, hand-written: counters, gauges and fixed-bucket
//! histograms kept in atomics, rendered in the text exposition format
//! (version 0.0.4) by the admin listener's `GET /metrics`.
//!
//! Counters and histograms are updated where things happen (the gRPC
//! services, the store's writer). Per-agency gauges — queue depth, oldest
//! item, dead letters, overdue urgent items, streams — are read at scrape
//! time by the same function as `Ops.ListQueues` (`truc ops queues`),
//! `crate::queues`, so the two agree; the per-peer gauges likewise by
//! `crate::peers`, as `Ops.ListPeers` (`truc ops peers`).
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
//! | `truc_past_due` | gauge | `agency` |
//! | `truc_past_confirmation` | gauge | `agency` |
//! | `truc_receive_streams` | gauge | `agency` |
//! | `truc_agencies` | gauge | `state` |
//! | `truc_peer_up` | gauge | `peer` (0: the last attempt to reach it failed) |
//! | `truc_peer_paused` | gauge | `peer` |
//! | `truc_peer_queue_depth` | gauge | `peer` |
//! | `truc_peer_queue_bytes` | gauge | `peer` |
//! | `truc_peer_oldest_waiting_seconds` | gauge | `peer` |
//! | `truc_peer_dead_letters` | gauge | `peer` |
//! | `truc_peer_forwarded_total` | counter | `peer` (since the hub started) |
//! | `truc_peer_refused_total` | counter | `peer` (since the hub started) |
//! | `truc_connected_agencies` | gauge | |
//! | `truc_certificate_expiry_timestamp_seconds` | gauge | `kind` = `hub` \| `ca`, `subject` |
//! | `truc_client_certificate_expiry_timestamp_seconds` | gauge | `principal` (its last connection's certificate) |
//! | `truc_metrics_scrape_errors_total` | counter | |
//! | `truc_crl_configured` | gauge | (0: `tls.crl = "none"`, revocations not checked) |
//! | `truc_crl_revoked_certificates` | gauge | |
//! | `truc_connections_open` | gauge | (gRPC port, handshakes included) |
//! | `truc_connections_busiest_address` | gauge | |
//! | `truc_tls_handshakes_in_progress` | gauge | |
//! | `truc_connection_limits` | gauge | `limit` = `total` \| `per_address` \| `handshakes` \| `streams` \| `request_bytes` (the last two per connection) |
//! | `truc_requests_pushed_back_total` | counter | (answered RESOURCE_EXHAUSTED with a retry pushback: `budget.rs`) |
//! | `truc_connections_refused_total` | counter | `cap` = `total` \| `per_address` \| `handshakes` |
//! | `truc_connections_closed_total` | counter | `reason` (`door.rs`) |
//! | `truc_disk_free_bytes` | gauge | (file system of `data_dir`, as the hub sees it) |
//! | `truc_disk_reserve_bytes` | gauge | (`limits.min_free_disk_bytes`) |
//! | `truc_store_bytes` | gauge | (its database and its log, as `du` counts them) |
//! | `truc_payloads` | gauge | (complete payload files) |
//! | `truc_payload_bytes` | gauge | |
//! | `truc_uploads_incomplete` | gauge | (`.part` files) |
//! | `truc_upload_part_bytes` | gauge | |
//! | `truc_scrub_last_completed_timestamp_seconds` | gauge | (absent until a scrub completes) |
//! | `truc_scrub_damaged_total` | counter | `kind` = `document` \| `payload_file` \| `receipt` \| `tree_head` |
//! | `truc_scrub_awaiting_resend` | gauge | (quarantined documents not yet sent again, at the last scrub) |
//! | `truc_quarantined_documents_total` | counter | `found_by` = `scrub` \| `delivery` |
//! | `truc_witness_cosigned_total` | counter | `origin` (a peer's log this hub witnesses: `crate::witness`) |
//! | `truc_witness_conflicts_total` | counter | `origin` (a peer's checkpoint inconsistent with one cosigned) |
//! | `truc_checkpoint_cosigned_size` | gauge | `witness` (a peer whose witness cosigns this hub's checkpoints) |
//! | `truc_checkpoint_submit_failures_total` | counter | `witness` |
//!
//! The disk and payload gauges are read at scrape time too: free space
//! with `statvfs`, the payload and upload directories with one `stat` per
//! file.
//!
//! | module | holds |
//! |---|---|
//! | `mod.rs` | [`Metrics`]: what is counted as things happen, and the render of `/metrics` |
//! | `text.rs` | the exposition format: families, labels, histograms, and its parser |
//! | `gauges.rs` | gauges read at scrape time: queues, peers, agencies, disk, scrub, certificate expiries |
//! | `layer.rs` | the tower layer counting gRPC requests by method and code |

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use truc_core::sync::Locked;
use truc_proto::v1::{QueueSummary, Storage};

mod gauges;
mod layer;
mod text;

pub(crate) use gauges::{certificate_expiries, render_peers};
use gauges::{not_after, render_queues, render_storage, ScrubFigures};
pub(crate) use layer::Observed;
#[cfg(test)]
use text::parse_labels;
use text::Histogram;
pub(crate) use text::{counter, gauge, labels};
pub use text::{parse_exposition, Sample, CONTENT_TYPE};

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
            "truc.v1.Peer" => "truc.v1.Peer",
            "grpc.reflection.v1.ServerReflection" => "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection" => "grpc.reflection.v1alpha.ServerReflection",
            _ => "unknown",
        };
        let method = parts.next().unwrap_or("");
        self.grpc_done(service, method, tonic::Code::Unauthenticated, Duration::ZERO);
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

    fn grpc_done(&self, service: &'static str, method: &str, code: tonic::Code, took: Duration) {
        // Method names come from the request path: only well-formed names
        // of implemented methods become label values.
        let known = code != tonic::Code::Unimplemented
            && !method.is_empty()
            && method.len() <= 64
            && method.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        let method = if known { method } else { "unknown" };
        *self
            .grpc
            .locked()
            .entry((service, method.to_string(), code as i32))
            .or_insert(0) += 1;
        if service == "truc.v1.Axis" && method == "Send" && code == tonic::Code::Ok {
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
            .map(|((s, m, c), v)| {
                let code = truc_proto::names::grpc_code_name(tonic::Code::from_i32(*c));
                (labels(&[("service", s), ("method", m), ("code", code)]), *v)
            })
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

#[cfg(test)]
mod tests {
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
        m.grpc_done("truc.v1.Axis", "Send", tonic::Code::Ok, Duration::from_millis(3));
        m.grpc_done(
            "truc.v1.Axis",
            "Send",
            tonic::Code::PermissionDenied,
            Duration::from_millis(3),
        );
        m.grpc_done(
            "truc.v1.Axis",
            "../etc",
            tonic::Code::Unimplemented,
            Duration::from_millis(3),
        );
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
