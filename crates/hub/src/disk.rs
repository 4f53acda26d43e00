//! The data disk: free space against the upload reserve, and what the
//! hub's files take there (the store, complete payload files, incomplete
//! uploads). Read when asked, by `/metrics` and `Ops.GetStorage`: one
//! `statvfs` and one `stat` per file. Blocking: call it on a blocking
//! thread.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use truc_proto::v1::Storage;

use crate::Shared;

/// The payload and upload directories, counted apart from the store.
const NOT_STORE: [&str; 2] = ["payloads", "uploads"];

/// The data disk and the hub's files on it now.
pub(crate) fn storage(shared: &Shared) -> Storage {
    let dir = &shared.config.data_dir;
    let files = shared.payloads.usage();
    Storage {
        disk_free_bytes: fs2::available_space(dir).ok(),
        disk_reserve_bytes: shared.config.limits.min_free_disk_bytes,
        store_bytes: allocated(dir, &NOT_STORE),
        payloads: files.payloads,
        payload_bytes: files.payload_bytes,
        uploads_incomplete: files.uploads,
        upload_part_bytes: files.upload_bytes,
    }
}

/// Disk bytes allocated to the files under `dir` (as `du` counts them),
/// leaving out its entries named in `skip`; what cannot be read counts 0.
fn allocated(dir: &Path, skip: &[&str]) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| !skip.iter().any(|s| e.file_name() == *s))
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => allocated(&e.path(), &[]),
            Ok(m) => m.blocks() * 512,
            Err(_) => 0,
        })
        .sum()
}
