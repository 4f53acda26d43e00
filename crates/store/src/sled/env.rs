//! The state machine on sled: its key-value reads from sled's tree, and
//! what lies outside the state (the cached directory and queue counts, the
//! limits, the disk, payload files and pins) from the writer's cache.

use super::{gc, Cache};
use crate::machine;
use crate::records::AgencyRecord;
use crate::StoreError;

/// What the state machine asks of the world: the cached directory and
/// queue counts, the limits, the disk, the payload files.
impl machine::Env for Cache {
    fn agency(&self, code: &str) -> Option<AgencyRecord> {
        Cache::agency(self, code)
    }

    fn queue_counts(&self, code: &str) -> (u64, u64) {
        Cache::queue_counts(self, code)
    }

    fn quota_bytes(&self) -> u64 {
        self.quota_bytes
    }

    fn min_free_bytes(&self) -> u64 {
        self.min_free_bytes
    }

    fn disk_free(&self) -> Option<u64> {
        fs2::available_space(&self.path).ok()
    }

    fn pinned(&self, sha256: &[u8]) -> bool {
        gc::pinned(self, sha256)
    }

    fn delete_payload(&self, sha256: &[u8]) -> bool {
        gc::delete_payload(self, sha256)
    }

    fn deletions_durable(&self) -> Result<(), StoreError> {
        gc::sync_payload_dir(self)
    }
}

/// sled's tree as the state machine reads it.
impl machine::Read for crate::sled::view::Tree {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(crate::sled::view::Tree::get(self, key)?.map(|v| v.to_vec()))
    }

    fn contains(&self, key: &[u8]) -> Result<bool, StoreError> {
        self.contains_key(key)
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<machine::KeyValue>, StoreError> {
        crate::sled::view::Tree::scan_prefix(self, prefix)
            .map(|kv| kv.map(|(k, v)| (k.to_vec(), v.to_vec())))
            .collect()
    }

    fn range(&self, from: &[u8], to: &[u8], visit: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<(), StoreError> {
        for kv in crate::sled::view::Tree::range(self, from..to) {
            let (k, v) = kv?;
            if !visit(&k, &v) {
                break;
            }
        }
        Ok(())
    }
}
