//! Gauges read at scrape time: per-agency queues (by the same function as
//! `Ops.ListQueues`), peer hubs (as `Ops.ListPeers`), the agency directory,
//! the data disk and payload files, what the scrubs found, and certificate
//! expiries (read from the files, so a rotated certificate shows at once).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use truc_proto::names::{Named, Wire};
use truc_proto::v1::{AgencyState, PeerLink, PeerLinkState, QueueSummary, Storage};

use super::text::{counter, gauge, labels};

/// What the scrubs found since the hub started.
#[derive(Debug, Clone, Default)]
pub(crate) struct ScrubFigures {
    /// Unix seconds; 0 until a scrub completes.
    pub(crate) last_completed_unix: f64,
    /// Damaged items found, by kind (document, payload file, receipt, tree head).
    pub(crate) damaged: [u64; 4],
    pub(crate) awaiting_resend: u64,
    pub(crate) quarantined_by_scrub: u64,
    pub(crate) quarantined_by_delivery: u64,
}

impl ScrubFigures {
    pub(crate) fn render(&self, out: &mut String) {
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

pub(crate) fn render_queues(out: &mut String, queues: &[QueueSummary]) {
    let by_agency: Vec<(String, &QueueSummary)> =
        queues.iter().map(|q| (labels(&[("agency", &q.agency)]), q)).collect();
    type Field = fn(&QueueSummary) -> f64;
    let per_agency: [(&str, &str, Field); 9] = [
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
            "truc_past_due",
            "The agency's copies past their document's DueDate (hạn xử lý), not finished (06) or refused (02).",
            |q| q.past_due as f64,
        ),
        (
            "truc_past_confirmation",
            "The agency's copies past their confirmation deadline without a 02 or 03.",
            |q| q.past_confirmation as f64,
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
    let mut states: BTreeMap<String, f64> = AgencyState::offered().map(|s| (s.to_string(), 0.0)).collect();
    for q in queues {
        let state = Wire::<AgencyState>::from(q.state).to_string();
        *states.entry(state).or_insert(0.0) += 1.0;
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

/// The `truc_peer_*` families, one series per configured peer, from the
/// rows `Ops.ListPeers` answers.
pub(crate) fn render_peers(out: &mut String, peers: &[PeerLink]) {
    let by_peer: Vec<(String, &PeerLink)> = peers.iter().map(|p| (labels(&[("peer", &p.id)]), p)).collect();
    type Field = fn(&PeerLink) -> f64;
    let gauges: [(&str, &str, Field); 6] = [
        (
            "truc_peer_up",
            "0 when the last attempt to reach the peer hub failed (and while it is paused after such an attempt); 1 when the peer took the last item, or before any attempt since the hub started.",
            |p| if p.unreachable { 0.0 } else { 1.0 },
        ),
        (
            "truc_peer_paused",
            "1 while an operator has forwarding to the peer hub paused (truc ops peer pause).",
            |p| if p.state == PeerLinkState::Paused as i32 { 1.0 } else { 0.0 },
        ),
        (
            "truc_peer_queue_depth",
            "Items waiting in the peer hub's outbox (documents for recipients it serves, receipts to report back), as `truc ops peers` shows.",
            |p| p.queued as f64,
        ),
        (
            "truc_peer_queue_bytes",
            "Payload bytes of the documents waiting in the peer hub's outbox.",
            |p| p.bytes as f64,
        ),
        (
            "truc_peer_oldest_waiting_seconds",
            "Age of the oldest item waiting in the peer hub's outbox (0 when none).",
            |p| p.oldest_age_ms as f64 / 1000.0,
        ),
        (
            "truc_peer_dead_letters",
            "Items of the peer hub's outbox given up on after delivery.max_attempts refusals.",
            |p| p.dead_letters as f64,
        ),
    ];
    for (name, help, field) in gauges {
        let rows: Vec<(&str, f64)> = by_peer.iter().map(|(l, p)| (l.as_str(), field(p))).collect();
        gauge(out, name, help, &rows);
    }
    type Count = fn(&PeerLink) -> u64;
    let counters: [(&str, &str, Count); 2] = [
        (
            "truc_peer_forwarded_total",
            "Items the peer hub took from this hub since it started.",
            |p| p.forwarded,
        ),
        (
            "truc_peer_refused_total",
            "Items the peer hub (or this hub, before sending) refused since this hub started; each counts an attempt of its item.",
            |p| p.refused,
        ),
    ];
    for (name, help, field) in counters {
        let rows: Vec<(&str, u64)> = by_peer.iter().map(|(l, p)| (l.as_str(), field(p))).collect();
        counter(out, name, help, &rows);
    }
}

pub(crate) fn render_storage(out: &mut String, s: &Storage) {
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
            "Disk bytes of the store itself in the data directory (its database and its log), as du counts them.",
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

pub(crate) fn not_after(der: &[u8]) -> Option<(String, i64)> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some((cert.subject().to_string(), cert.validity().not_after.timestamp()))
}
