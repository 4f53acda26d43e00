//! The hub's background tasks: started with it, stopped by its stop
//! signal, joined before the store closes. The delivery engine's reaper and
//! its commit follower, the upload sweeper, the payload collector, the
//! scrub, and the trust-file watcher.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn, Instrument};

use crate::Shared;

/// The running tasks, each under a span of its name.
#[derive(Default)]
pub(crate) struct Tasks(Vec<JoinHandle<()>>);

impl Tasks {
    /// Run `task` in the background under the span `name`.
    pub(crate) fn spawn(&mut self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        self.0
            .push(tokio::spawn(task.instrument(tracing::info_span!("task", name))));
    }

    /// Wait until every task has ended (after the stop signal).
    pub(crate) async fn join(self) {
        for t in self.0 {
            let _ = t.await;
        }
    }
}

/// Most payloads deleted in one writer batch.
const COLLECT_BATCH: usize = 256;

/// Every `interval` (never when 0), delete the payloads no copy has needed
/// for `retention`, until stopped. The decision is the store writer's, so it
/// is ordered with every upload that would reuse a payload.
pub(crate) async fn collect_payloads(
    store: Arc<dyn truc_store::Store>,
    retention: Duration,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    if interval.is_zero() {
        return;
    }
    loop {
        loop {
            let before = truc_core::now_unix_ms().saturating_sub(retention.as_millis().min(i64::MAX as u128) as i64);
            match store.collect_payloads(before, COLLECT_BATCH).await {
                Ok(0) => break,
                Ok(n) => {
                    info!(deleted = n, "collected payloads no copy needs");
                    if (n as usize) < COLLECT_BATCH {
                        break;
                    }
                }
                Err(e) => {
                    warn!(error = %e, "payload collection failed; retrying at the next pass");
                    break;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Delete unfinished uploads older than `max_age`, hourly, until stopped.
pub(crate) async fn sweep_uploads(files: truc_store::PayloadFiles, max_age: Duration, mut stop: watch::Receiver<bool>) {
    loop {
        let f = files.clone();
        if let Ok(n @ 1..) = tokio::task::spawn_blocking(move || f.sweep_uploads(max_age)).await {
            info!(removed = n, "expired unfinished uploads");
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Reload the trust material whenever one of its files changes (a new
/// CRL from `truc pki revoke`, a rotated hub certificate), until stopped.
pub(crate) async fn watch_trust_files(shared: Arc<Shared>, every: Duration, mut stop: watch::Receiver<bool>) {
    let mut seen = shared.trust.files().stamp();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        let files = shared.trust.files().clone();
        let now = tokio::task::spawn_blocking(move || files.stamp()).await.unwrap_or(None);
        if now != seen {
            seen = now;
            if let Err(e) = shared.reload() {
                warn!(error = %e, "a trust file changed but could not be loaded; keeping the previous one");
            }
        }
    }
}
