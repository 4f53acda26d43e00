//! What `/proc` says about the servers under load: peak resident memory,
//! sampled, and CPU time, summed over a server's processes (one `trucd`,
//! or the three nodes of a NATS cluster).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use truc_core::sync::Locked;
use truc_launch::procs;

/// Samples the summed VmRSS of some processes every 100 ms until stopped;
/// keeps the highest.
pub(crate) struct RssSampler {
    stop: Arc<AtomicBool>,
    peak: Arc<Mutex<f64>>,
    task: tokio::task::JoinHandle<()>,
}

impl RssSampler {
    pub(crate) fn start(pids: Vec<u32>) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(Mutex::new(0.0f64));
        let (s, p) = (stop.clone(), peak.clone());
        let task = tokio::spawn(async move {
            while !s.load(Ordering::Relaxed) {
                let rss: f64 = pids.iter().filter_map(|pid| procs::status_mib(*pid, "VmRSS:")).sum();
                {
                    let mut p = p.locked();
                    *p = p.max(rss);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        RssSampler { stop, peak, task }
    }

    /// Stop; the highest sum seen, MiB.
    pub(crate) async fn finish(self) -> f64 {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        let p = *self.peak.locked();
        p
    }
}

/// User + system CPU seconds of `pids` together so far (`None` if one
/// cannot be read).
pub(crate) fn cpu_seconds(pids: &[u32]) -> Option<f64> {
    pids.iter().map(|pid| procs::cpu_seconds(*pid)).sum()
}

/// VmHWM of `pids` together, MiB.
pub(crate) fn vm_hwm_mib(pids: &[u32]) -> Option<f64> {
    pids.iter().map(|pid| procs::status_mib(*pid, "VmHWM:")).sum()
}

/// CPU seconds per 1000 documents between two readings.
pub(crate) fn per_1000(before: Option<f64>, after: Option<f64>, documents: u64) -> Option<f64> {
    Some((after? - before?) / documents.max(1) as f64 * 1000.0)
}
