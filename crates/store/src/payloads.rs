//! Large payloads on disk, content-addressed by SHA-256, outside sled.
//!
//! `DIR/payloads/<sha256 hex>` holds complete payloads, stored once for every
//! sender and recipient. `DIR/uploads/<id>.part` holds an upload in
//! progress; its length is how far a dropped upload may resume from. An
//! upload becomes a payload only after its size and SHA-256 match the signed
//! header; otherwise it is deleted. Calls block: use them on blocking
//! threads.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use truc_core::sync::Locked;

use crate::StoreError;

/// Bytes hashed per read when a resumed upload's prefix is re-hashed.
const HASH_BUF: usize = 1 << 20;
/// An upload is synced to disk about this often.
const SYNC_EVERY: u64 = 64 << 20;

/// The payload file store.
#[derive(Debug, Clone)]
pub struct PayloadFiles {
    payloads: PathBuf,
    uploads: PathBuf,
    /// Uploads with a writer open: one writer per `.part` at a time (one
    /// hub per data directory, which sled's lock ensures).
    active: Arc<Mutex<HashSet<String>>>,
}

/// What the payload file store holds on disk now (see
/// [`PayloadFiles::usage`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FileUsage {
    /// Complete payloads (one file per distinct SHA-256).
    pub payloads: u64,
    /// Their bytes.
    pub payload_bytes: u64,
    /// `.part` files: uploads in progress, or interrupted and resumable
    /// until they expire.
    pub uploads: u64,
    /// Their bytes.
    pub upload_bytes: u64,
}

/// Files in `dir` and their bytes (a file that goes away meanwhile is
/// skipped).
fn count_files(dir: &Path) -> (u64, u64) {
    let Ok(entries) = fs::read_dir(dir) else {
        return (0, 0);
    };
    entries
        .flatten()
        .filter_map(|e| e.metadata().ok().filter(|m| m.is_file()))
        .fold((0, 0), |(n, bytes), m| (n + 1, bytes + m.len()))
}

/// What [`PayloadFiles::resume`] found.
#[derive(Debug)]
pub enum Resume {
    /// Append with this writer.
    Writer(PartWriter),
    /// The offset asked for is not what the hub has: this many bytes.
    Have(u64),
    /// Another upload of the same document and payload is writing now.
    Busy,
}

/// Marks an upload as being written; unmarks it when dropped.
struct Busy {
    id: String,
    active: Arc<Mutex<HashSet<String>>>,
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.active.locked().remove(&self.id);
    }
}

fn io_err(what: &Path, e: io::Error) -> StoreError {
    match e.raw_os_error() {
        // ENOSPC, EDQUOT: say so plainly.
        Some(28) | Some(122) => StoreError::Unavailable(format!("disk full writing {}", what.display())),
        _ => StoreError::Unavailable(format!("{}: {e}", what.display())),
    }
}

/// Why an upload was refused at its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadMismatch {
    /// More or fewer bytes than the header signs.
    Size {
        /// Bytes received.
        got: u64,
        /// Bytes the header states.
        want: u64,
    },
    /// The SHA-256 differs from the signed digest.
    Digest,
}

impl PayloadFiles {
    /// Use (and create) `data_dir/payloads` and `data_dir/uploads`.
    pub fn open(data_dir: &Path) -> Result<PayloadFiles, StoreError> {
        let me = PayloadFiles {
            payloads: data_dir.join("payloads"),
            uploads: data_dir.join("uploads"),
            active: Arc::default(),
        };
        for d in [&me.payloads, &me.uploads] {
            fs::create_dir_all(d).map_err(|e| io_err(d, e))?;
        }
        Ok(me)
    }

    fn payload_path(&self, sha256: &[u8]) -> PathBuf {
        self.payloads.join(truc_core::hex(sha256))
    }

    fn part_path(&self, upload_id: &str) -> PathBuf {
        self.uploads.join(format!("{upload_id}.part"))
    }

    /// Whether the whole payload with this digest is stored.
    pub fn has(&self, sha256: &[u8]) -> bool {
        self.payload_path(sha256).is_file()
    }

    /// Size of a stored payload.
    pub fn size(&self, sha256: &[u8]) -> Option<u64> {
        fs::metadata(self.payload_path(sha256)).ok().map(|m| m.len())
    }

    /// Bytes received so far for an upload (0 if none).
    pub fn received(&self, upload_id: &str) -> u64 {
        fs::metadata(self.part_path(upload_id)).map(|m| m.len()).unwrap_or(0)
    }

    /// Open an upload to append at `offset`, which must be what it has now
    /// (0 starts over). Returns the writer, with the digest of the bytes
    /// before `offset` already taken; while it lives, another `resume` of
    /// the same upload is `Busy`, so two streams never interleave.
    pub fn resume(&self, upload_id: &str, offset: u64) -> Result<Resume, StoreError> {
        if !self.active.locked().insert(upload_id.to_string()) {
            return Ok(Resume::Busy);
        }
        let busy = Busy {
            id: upload_id.to_string(),
            active: self.active.clone(),
        };
        let path = self.part_path(upload_id);
        let have = self.received(upload_id);
        if offset != have && offset != 0 {
            return Ok(Resume::Have(have));
        }
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| io_err(&path, e))?;
        if offset == 0 {
            file.set_len(0).map_err(|e| io_err(&path, e))?;
        }
        let mut hash = ring::digest::Context::new(&ring::digest::SHA256);
        if offset > 0 {
            file.seek(SeekFrom::Start(0)).map_err(|e| io_err(&path, e))?;
            let mut buf = vec![0u8; HASH_BUF];
            let mut left = offset;
            while left > 0 {
                let n = file
                    .read(&mut buf[..HASH_BUF.min(left as usize)])
                    .map_err(|e| io_err(&path, e))?;
                if n == 0 {
                    break;
                }
                hash.update(&buf[..n]);
                left -= n as u64;
            }
        }
        let out = truc_fileio::SeqWriter::new(file, &path, offset);
        Ok(Resume::Writer(PartWriter {
            out,
            path,
            hash,
            written: offset,
            unsynced: 0,
            syncing: None,
            _busy: busy,
        }))
    }

    /// Check a finished upload against the signed size and digest; if it
    /// matches, make it the stored payload (durably; if that payload is
    /// stored already, the upload is deleted instead), else delete it.
    pub fn finish(
        &self,
        upload_id: &str,
        part: PartWriter,
        size: u64,
        sha256: &[u8],
    ) -> Result<Result<(), UploadMismatch>, StoreError> {
        let mut part = part;
        part.join_sync()?;
        // `_busy` is held until the `.part` is renamed or deleted.
        let PartWriter {
            mut out,
            path: part_path,
            hash,
            written,
            _busy,
            ..
        } = part;
        out.finish().map_err(|e| io_err(&part_path, e))?;
        out.file().sync_all().map_err(|e| io_err(&part_path, e))?;
        drop(out);
        let digest = hash.finish();
        let mismatch = if written != size {
            Some(UploadMismatch::Size {
                got: written,
                want: size,
            })
        } else if digest.as_ref() != sha256 {
            Some(UploadMismatch::Digest)
        } else {
            None
        };
        let path = self.part_path(upload_id);
        if let Some(m) = mismatch {
            let _ = fs::remove_file(&path);
            return Ok(Err(m));
        }
        let dest = self.payload_path(sha256);
        if dest.is_file() {
            // Stored already (a payload-first upload learns the digest only
            // at its end): keep the one copy. The caller holds the payload's
            // pin, so the collector cannot take it meanwhile.
            let _ = fs::remove_file(&path);
            return Ok(Ok(()));
        }
        fs::rename(&path, &dest).map_err(|e| io_err(&dest, e))?;
        File::open(&self.payloads)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_err(&self.payloads, e))?;
        Ok(Ok(()))
    }

    /// Forget an upload.
    pub fn discard(&self, upload_id: &str) {
        let _ = fs::remove_file(self.part_path(upload_id));
    }

    /// A stored payload, opened and positioned at `offset` (read it with
    /// [`read_chunk`]); `Precondition` once it has been collected.
    pub fn open_at(&self, sha256: &[u8], offset: u64) -> Result<File, StoreError> {
        let path = self.payload_path(sha256);
        let mut f = File::open(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => StoreError::Precondition("the payload has been collected".into()),
            _ => io_err(&path, e),
        })?;
        f.seek(SeekFrom::Start(offset)).map_err(|e| io_err(&path, e))?;
        Ok(f)
    }

    /// A stored payload, to read in large blocks from `offset` (around the
    /// page cache where it can); `Precondition` once it has been collected.
    pub fn reader(&self, sha256: &[u8], offset: u64) -> Result<truc_fileio::SeqReader, StoreError> {
        let path = self.payload_path(sha256);
        truc_fileio::SeqReader::open(&path, offset).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => StoreError::Precondition("the payload has been collected".into()),
            _ => io_err(&path, e),
        })
    }

    /// Read up to `len` bytes of a stored payload from `offset`.
    pub fn read_at(&self, sha256: &[u8], offset: u64, len: usize) -> Result<Vec<u8>, StoreError> {
        read_chunk(&mut self.open_at(sha256, offset)?, len)
    }

    /// Count the payload and upload files and their bytes, from the
    /// directories as they are now (one `stat` per file).
    pub fn usage(&self) -> FileUsage {
        let (payloads, payload_bytes) = count_files(&self.payloads);
        let (uploads, upload_bytes) = count_files(&self.uploads);
        FileUsage {
            payloads,
            payload_bytes,
            uploads,
            upload_bytes,
        }
    }

    /// Delete uploads untouched for longer than `max_age`; returns how many.
    pub fn sweep_uploads(&self, max_age: Duration) -> usize {
        let Ok(entries) = fs::read_dir(&self.uploads) else {
            return 0;
        };
        let now = SystemTime::now();
        let mut n = 0;
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let id = name.strip_suffix(".part").unwrap_or(&name);
            if self.active.locked().contains(id) {
                continue;
            }
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .map(|t| now.duration_since(t).unwrap_or_default() > max_age)
                .unwrap_or(false);
            if old && fs::remove_file(e.path()).is_ok() {
                n += 1;
            }
        }
        n
    }
}

/// Up to `len` bytes from where `f` is (fewer only at its end).
pub fn read_chunk(f: &mut File, len: usize) -> Result<Vec<u8>, StoreError> {
    // Read into spare capacity: no zeroing of a buffer about to be filled.
    let mut buf = Vec::with_capacity(len);
    f.take(len as u64)
        .read_to_end(&mut buf)
        .map_err(|e| StoreError::Unavailable(format!("reading a payload: {e}")))?;
    Ok(buf)
}

/// An upload being written, hashing as it goes.
pub struct PartWriter {
    /// Whole blocks go around the page cache (a payload is written once and
    /// read later, by each recipient).
    out: truc_fileio::SeqWriter,
    path: PathBuf,
    hash: ring::digest::Context,
    written: u64,
    unsynced: u64,
    /// The background `sync_data` in progress, if any.
    syncing: Option<std::thread::JoinHandle<io::Result<()>>>,
    _busy: Busy,
}

impl std::fmt::Debug for PartWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartWriter")
            .field("path", &self.path)
            .field("written", &self.written)
            .finish()
    }
}

impl PartWriter {
    /// Bytes received so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Append a chunk. Data is synced to disk about every 64 MiB, on a
    /// thread of its own, so a resumed upload loses little after a crash
    /// (a torn tail fails the digest check at the end and is discarded).
    pub fn append(&mut self, chunk: &[u8]) -> Result<(), StoreError> {
        self.out.write(chunk).map_err(|e| io_err(&self.path, e))?;
        self.hash.update(chunk);
        self.written += chunk.len() as u64;
        self.unsynced += chunk.len() as u64;
        if self.unsynced >= SYNC_EVERY {
            // In the background: the next chunks are written meanwhile, and
            // a new sync starts only after the previous one has ended.
            if self.syncing.as_ref().is_none_or(|s| s.is_finished()) {
                self.join_sync()?;
                let file = self.out.file().try_clone().map_err(|e| io_err(&self.path, e))?;
                self.syncing = Some(std::thread::spawn(move || file.sync_data()));
                self.unsynced = 0;
            }
        }
        Ok(())
    }

    /// Delete the upload (refused before its end): nothing of it is kept.
    /// The `.part` stays marked as written until it is gone, so no other
    /// stream resumes it meanwhile.
    pub fn discard(mut self) {
        let _ = self.join_sync();
        let _ = fs::remove_file(&self.path);
    }

    /// Wait for the background sync, if one runs, and report its error.
    fn join_sync(&mut self) -> Result<(), StoreError> {
        match self.syncing.take().map(|h| h.join()) {
            None | Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(e))) => Err(io_err(&self.path, e)),
            Some(Err(_)) => Err(StoreError::Unavailable(format!("{}: sync failed", self.path.display()))),
        }
    }
}
