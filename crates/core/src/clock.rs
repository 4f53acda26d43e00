//! The hub's clock for receipt times and deadlines: the system's, or a
//! manual one that a test sets (to have documents received on a Friday
//! evening and confirmed on Tuesday without waiting for them).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// The system clock (the default), or a manual clock shared by its clones.
#[derive(Debug, Clone, Default)]
pub struct Clock(Option<Arc<AtomicI64>>);

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock(None)
    }

    /// A clock that reads `unix_ms` until it is [`Clock::set`].
    pub fn manual(unix_ms: i64) -> Clock {
        Clock(Some(Arc::new(AtomicI64::new(unix_ms))))
    }

    /// Set a manual clock (and its clones) to `unix_ms`; no effect on the
    /// system clock.
    pub fn set(&self, unix_ms: i64) {
        if let Some(t) = &self.0 {
            t.store(unix_ms, Ordering::SeqCst);
        }
    }

    /// Whether this is a manual clock.
    pub fn is_manual(&self) -> bool {
        self.0.is_some()
    }

    /// Milliseconds since the Unix epoch, now by this clock.
    pub fn now_unix_ms(&self) -> i64 {
        match &self.0 {
            Some(t) => t.load(Ordering::SeqCst),
            None => crate::now_unix_ms(),
        }
    }
}
