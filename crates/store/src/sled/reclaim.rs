//! Freeing what sled replaced, as fast as the writer replaces it.
//!
//! sled never frees a tree node in place: every insert links a new version
//! of the node and hands the old one to crossbeam-epoch, which frees it once
//! no thread can still read it. That collector frees at most 8 bags of 64
//! objects when some thread has pinned 128 times, and nothing while a pin
//! older than the bag is held — `apply_batch` holds one for its whole batch.
//! A group commit of ~1000 documents replaces tens of thousands of nodes at
//! once, faster than the collector's own pace frees them: the garbage piled
//! up for the whole run (100 agencies at peak: 532 MB in use in the writer
//! thread's malloc arena, 147 MB with this; BENCHMARKS.md). After each
//! commit, once the batch's pin is released and its requests are answered,
//! the writer drains it: frees it would otherwise leave to readers (or to
//! no one); CPU per document did not rise.

/// Bags (64 objects each) one flush frees at most (crossbeam-epoch's
/// `COLLECT_STEPS`).
const BAGS_PER_FLUSH: usize = 8;

/// Objects sled defers per request of a batch, at most: each stored key
/// replaces a leaf (and on a split its parent), about 16 keys per Send.
const DEFERRED_PER_REQUEST: usize = 64;

/// After a commit of `batch_size` requests, on the thread that applied it:
/// advance the epoch and free expired garbage, in proportion to what the
/// batch can have deferred (and a little more for what readers deferred).
pub(super) fn after_commit(batch_size: usize) {
    let flushes = 2 + batch_size * DEFERRED_PER_REQUEST / (64 * BAGS_PER_FLUSH);
    for _ in 0..flushes {
        // sled's `pin` is crossbeam-epoch's default collector's, the one
        // that holds sled's garbage.
        sled::pin().flush();
    }
}
