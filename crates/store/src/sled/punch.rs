//! Giving the log's disk space back where replay will never read again.
//!
//! A batch record in the log (`log.rs`) is needed only until sled has
//! flushed its batch: replay starts after the batch `Meta` names, in the
//! segment `Meta` names. Segments older than that one are still read for
//! their bodies, never for their batches. So, once `Meta` in sled names a
//! later segment and a sled flush has made that durable, the whole blocks
//! inside those segments' batch records (and the zeros left at their ends)
//! are freed with `fallocate(PUNCH_HOLE)`. Offsets do not move, so every
//! body reference stays valid and nothing in sled changes. A segment is
//! done once: `bodies/punched` holds the first segment not yet done (if it
//! is lost, the next pass does the old ones again, which frees nothing
//! more).
//!
//! A thread of its own does a pass when the writer's first batch in a new
//! segment wakes it ([`Nudge`]: after every start and every 256 MiB), and
//! every [`PERIOD`] anyway; the embedded store starts it (a replicated
//! store's log holds no batches).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use truc_core::sync::Locked;

use prost::Message;

use super::log;
use crate::keys;
use crate::records::Meta;
use crate::StoreError;

/// How often the thread looks for segments to punch.
const PERIOD: Duration = Duration::from_secs(60);

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reclaimed {
    /// Segments whose batch records were punched.
    pub segments: u32,
    /// Disk bytes given back (by the files' allocated blocks).
    pub bytes: u64,
}

/// The punching thread, and one pass on demand.
#[derive(Debug)]
pub(super) struct Puncher {
    work: Arc<Work>,
    wake: Nudge,
    thread: Option<JoinHandle<()>>,
}

/// Wakes the punching thread: the writer's first batch in a new segment
/// has moved replay past the older ones.
#[derive(Debug, Clone, Default)]
pub(super) struct Nudge(Arc<(Mutex<Wake>, Condvar)>);

#[derive(Debug, Default)]
struct Wake {
    nudged: bool,
    stop: bool,
}

impl Nudge {
    pub(super) fn nudge(&self) {
        let (lock, cv) = &*self.0;
        lock.locked().nudged = true;
        cv.notify_all();
    }

    /// Wait for a nudge, a stop or `PERIOD`; false on a stop.
    fn wait(&self) -> bool {
        let (lock, cv) = &*self.0;
        let wake = lock.locked();
        let (mut wake, _) = cv
            .wait_timeout_while(wake, PERIOD, |w| !w.nudged && !w.stop)
            .unwrap_or_else(|e| e.into_inner());
        wake.nudged = false;
        !wake.stop
    }

    fn stop(&self) {
        let (lock, cv) = &*self.0;
        lock.locked().stop = true;
        cv.notify_all();
    }
}

#[derive(Debug)]
struct Work {
    handles: Arc<super::Handles>,
    dir: PathBuf,
    /// One pass at a time.
    running: Mutex<()>,
}

impl Puncher {
    pub(super) fn start(handles: Arc<super::Handles>, dir: &Path) -> Puncher {
        let work = Arc::new(Work {
            handles,
            dir: dir.to_path_buf(),
            running: Mutex::new(()),
        });
        let wake = Nudge::default();
        let thread = {
            let (work, wake) = (work.clone(), wake.clone());
            std::thread::Builder::new()
                .name("truc-store-punch".into())
                .spawn(move || {
                    while wake.wait() {
                        match work.pass() {
                            Ok(r) if r.segments > 0 => tracing::info!(
                                segments = r.segments,
                                bytes = r.bytes,
                                "gave back the disk space of log records replay no longer needs"
                            ),
                            Ok(_) => {}
                            Err(e) => {
                                tracing::warn!(error = %e, "cannot free the log's old batch records; will retry")
                            }
                        }
                    }
                })
                .ok()
        };
        if thread.is_none() {
            tracing::warn!("cannot start the log punching thread; old batch records keep their disk space");
        }
        Puncher { work, wake, thread }
    }

    /// What wakes the thread.
    pub(super) fn nudge(&self) -> Nudge {
        self.wake.clone()
    }

    /// One pass now, on this thread.
    pub(super) fn pass(&self) -> Result<Reclaimed, StoreError> {
        self.work.pass()
    }

    /// Stop the thread and let go of sled.
    pub(super) fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.wake.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Puncher {
    fn drop(&mut self) {
        self.halt();
    }
}

impl Work {
    fn pass(&self) -> Result<Reclaimed, StoreError> {
        let _one = self.running.locked();
        // Clones for this pass only: the writer may reopen sled between
        // passes.
        let (db, tree) = self.handles.both()?;
        let replay_from = match tree.get(keys::meta())? {
            Some(v) => {
                Meta::decode(v.as_ref())
                    .map_err(|_| StoreError::Corrupt("meta".into()))?
                    .log_segment
            }
            None => 0,
        };
        let first = first_undone(&self.dir);
        if replay_from <= first {
            return Ok(Reclaimed::default());
        }
        // `Meta` naming `replay_from` or later is durable after this: no
        // replay will read a batch before that segment again.
        db.flush()?;
        let mut done = Reclaimed::default();
        for segment in first..replay_from {
            done.bytes += log::punch_segment(&self.dir, segment)?;
            done.segments += 1;
        }
        let marker = marker_path(&self.dir);
        let tmp = marker.with_extension("tmp");
        // Lost, the marker only costs a pass over segments already done.
        if std::fs::write(&tmp, replay_from.to_string())
            .and_then(|()| std::fs::rename(&tmp, &marker))
            .is_err()
        {
            tracing::warn!(path = %marker.display(), "cannot record which log segments are punched");
        }
        Ok(done)
    }
}

fn marker_path(dir: &Path) -> PathBuf {
    dir.join("bodies").join("punched")
}

/// The first segment not punched yet (segments start at 1).
pub(super) fn first_undone(dir: &Path) -> u32 {
    std::fs::read_to_string(marker_path(dir))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1)
}
