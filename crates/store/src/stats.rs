//! A hook the writer calls after every group commit, so that the hub can
//! export batch sizes and commit times without the store knowing about
//! metrics.

use std::sync::Arc;
use std::time::Duration;

/// Called on the writer thread after each group commit with the number of
/// requests in the batch, how long applying, signing and flushing took, and
/// whether the batch became durable. Keep it cheap: the next batch waits.
#[derive(Clone)]
pub struct CommitObserver(Arc<dyn Fn(usize, Duration, bool) + Send + Sync>);

impl CommitObserver {
    /// Wrap `f`.
    pub fn new(f: impl Fn(usize, Duration, bool) + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    pub(crate) fn observe(&self, batch_size: usize, took: Duration, ok: bool) {
        (self.0)(batch_size, took, ok)
    }
}

impl std::fmt::Debug for CommitObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CommitObserver")
    }
}
