//! Queue summaries for operators and for `/metrics`: the store's counts
//! joined with what the delivery engine has in flight.

use truc_core::AgencyCode;
use truc_proto::v1::QueueSummary;
use truc_store::{QueueStats, StoreError};

use crate::Shared;

/// One row per registered agency, most in need of attention first:
/// overdue urgent items, then dead letters, then the oldest waiting item.
pub(crate) async fn summaries(shared: &Shared) -> Result<Vec<QueueSummary>, StoreError> {
    let now = shared.config.clock.now_unix_ms();
    let mut rows = Vec::new();
    for a in shared.store.agencies() {
        let Ok(code) = AgencyCode::parse(&a.code) else { continue };
        let stats = shared.store.queue_stats(code.clone(), now).await?;
        let live = shared.engine.live(&code);
        rows.push(QueueSummary {
            agency: a.code,
            name: a.name,
            state: a.state as i32,
            queued: stats.queued,
            in_flight: live.in_flight,
            dead_letters: stats.dead_letters,
            bytes: stats.bytes,
            oldest_age_ms: oldest_age_ms(&stats, now),
            overdue_urgent: stats.overdue_urgent,
            past_due: stats.past_due,
            past_confirmation: stats.past_confirmation,
            connected_streams: live.streams,
            last_connected_unix_ms: live.last_connected_unix_ms,
        });
    }
    rows.sort_by(|a, b| {
        (b.overdue_urgent, b.dead_letters, b.oldest_age_ms, b.queued)
            .cmp(&(a.overdue_urgent, a.dead_letters, a.oldest_age_ms, a.queued))
            .then_with(|| a.agency.cmp(&b.agency))
    });
    Ok(rows)
}

/// How long the oldest item of a queue has waited at `now`, ms (0 when
/// none waits).
pub(crate) fn oldest_age_ms(stats: &QueueStats, now: i64) -> i64 {
    if stats.oldest_enqueued_unix_ms > 0 {
        (now - stats.oldest_enqueued_unix_ms).max(0)
    } else {
        0
    }
}
