//! Scrubbing the store: the background pass every
//! `limits.scrub_interval_ms` at `limits.scrub_bytes_per_second`, and the
//! operator's `Ops.VerifyStore` (`truc ops verify-store`). The checks and
//! the quarantine are the store's (`Store::verify_store`); here the senders
//! of quarantined documents are woken (their notice is in their outbox), the
//! metrics are kept, and the report becomes the wire answer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tracing::{info, warn};
use truc_proto::v1::{DamageKind as WireKind, DamagedItem, VerifyStoreResponse};
use truc_store::{DamageKind, ScrubOptions, ScrubReport, StoreError};

use crate::Shared;

/// The hub's own actions in receipts.
pub(crate) const HUB_ACTOR: &str = "urn:truc:hub";

/// Scrub now, quarantining what is damaged, as `actor`.
pub(crate) async fn verify(
    shared: &Shared,
    actor: String,
    bytes_per_second: u64,
    stop: Option<watch::Receiver<bool>>,
) -> Result<ScrubReport, StoreError> {
    let report = shared
        .store
        .verify_store(ScrubOptions {
            bytes_per_second,
            quarantine: true,
            actor,
            stop,
        })
        .await?;
    shared.metrics.scrubbed(&report);
    Ok(report)
}

/// Every `limits.scrub_interval_ms` (never when 0), scrub the store, until
/// the hub stops. The first pass comes one interval after the start.
pub(crate) async fn run_background(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let interval = Duration::from_millis(shared.config.limits.scrub_interval_ms);
    if interval.is_zero() {
        return;
    }
    let rate = shared.config.limits.scrub_bytes_per_second;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return,
        }
        let started = Instant::now();
        match verify(&shared, HUB_ACTOR.into(), rate, Some(stop.clone())).await {
            Ok(r) if r.damaged.is_empty() => info!(
                documents = r.documents,
                payload_files = r.payload_files,
                receipts = r.receipts,
                took_s = started.elapsed().as_secs(),
                "background scrub: the store is sound"
            ),
            Ok(r) => warn!(
                damaged = r.damaged.len(),
                "background scrub found damage (quarantined what it could; see the errors above and `truc ops \
                 verify-store`)"
            ),
            Err(StoreError::Closed) => return,
            Err(e) => warn!(error = %e, "background scrub failed; retrying at the next interval"),
        }
    }
}

/// The wire answer for `report`.
pub(crate) fn response(report: ScrubReport, elapsed: Duration) -> VerifyStoreResponse {
    VerifyStoreResponse {
        documents_checked: report.documents,
        body_bytes_checked: report.body_bytes,
        payload_files_checked: report.payload_files,
        payload_bytes_checked: report.payload_bytes,
        receipts_checked: report.receipts,
        tree_heads_checked: report.tree_heads,
        tree_size: report.tree_size,
        damaged: report
            .damaged
            .into_iter()
            .map(|d| DamagedItem {
                kind: match d.kind {
                    DamageKind::Document => WireKind::Document,
                    DamageKind::PayloadFile => WireKind::PayloadFile,
                    DamageKind::Receipt => WireKind::Receipt,
                    DamageKind::TreeHead => WireKind::TreeHead,
                } as i32,
                hub_document_id: d.hub_document_id,
                from: d.from,
                document_id: d.document_id,
                payload_sha256: d.payload_sha256,
                receipt_index: d.receipt_index,
                what: d.what,
                quarantined: d.quarantined,
            })
            .collect(),
        awaiting_resend: report.awaiting_resend,
        elapsed_ms: elapsed.as_millis() as i64,
    }
}
