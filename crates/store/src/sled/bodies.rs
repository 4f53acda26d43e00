//! Document bodies (header, signature, signer chain and inline payload, as
//! one encoded `SignedDocument`) kept beside sled in append-only segment
//! files, so that sled only holds small records.
//!
//! sled copies a leaf node on every change and rewrites whole leaves (16
//! entries) into its log: a 4 KiB value written into a leaf costs many times
//! its size in copies and disk. Here each body is written once, sequentially,
//! with one `fdatasync` per group commit; sled keeps a 16-byte [`BodyRef`].
//!
//! Crash safety: the writer writes and syncs a batch's bodies *before* it
//! applies and flushes the sled batch that refers to them. A crash in between
//! leaves unreferenced bytes at the end of a segment, never a reference to
//! missing bytes. Every open starts a new segment, so a torn tail is never
//! appended to.
//!
//! Record layout: `len: u32 LE`, `crc32: u32 LE` (of the body), body.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use crate::StoreError;

/// A segment is closed once it passes this size (a batch never spans two).
const SEGMENT_BYTES: u64 = 256 * 1024 * 1024;
/// Record header: length and checksum.
const RECORD_HEADER: u64 = 8;

/// Where a body is: segment, offset of its record, body length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct BodyRef {
    segment: u32,
    offset: u64,
    len: u32,
}

impl BodyRef {
    /// 16 bytes: segment (u32 BE), offset (u64 BE), length (u32 BE).
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(16);
        v.extend_from_slice(&self.segment.to_be_bytes());
        v.extend_from_slice(&self.offset.to_be_bytes());
        v.extend_from_slice(&self.len.to_be_bytes());
        v
    }

    pub(super) fn decode(v: &[u8]) -> Option<BodyRef> {
        if v.len() != 16 {
            return None;
        }
        Some(BodyRef {
            segment: u32::from_be_bytes(v[0..4].try_into().ok()?),
            offset: u64::from_be_bytes(v[4..12].try_into().ok()?),
            len: u32::from_be_bytes(v[12..16].try_into().ok()?),
        })
    }
}

fn segment_path(dir: &Path, segment: u32) -> PathBuf {
    dir.join(format!("{segment:08}.seg"))
}

fn segment_number(name: &str) -> Option<u32> {
    name.strip_suffix(".seg")?.parse().ok()
}

/// Reads bodies; shared by every reader thread.
#[derive(Debug)]
pub(super) struct BodyFiles {
    dir: PathBuf,
    open: RwLock<HashMap<u32, Arc<File>>>,
}

impl BodyFiles {
    fn file(&self, segment: u32) -> Result<Arc<File>, StoreError> {
        if let Some(f) = self.open.read().unwrap_or_else(|e| e.into_inner()).get(&segment) {
            return Ok(f.clone());
        }
        let path = segment_path(&self.dir, segment);
        let f = Arc::new(
            File::open(&path).map_err(|e| StoreError::Corrupt(format!("body segment {}: {e}", path.display())))?,
        );
        self.open
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(segment, f.clone());
        Ok(f)
    }

    /// The body at `r`, checked against its checksum.
    pub(super) fn read(&self, r: BodyRef) -> Result<Vec<u8>, StoreError> {
        let f = self.file(r.segment)?;
        let mut buf = vec![0u8; RECORD_HEADER as usize + r.len as usize];
        f.read_exact_at(&mut buf, r.offset)
            .map_err(|e| StoreError::Corrupt(format!("body at {}/{}: {e}", r.segment, r.offset)))?;
        let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
        let crc = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
        let body = buf.split_off(RECORD_HEADER as usize);
        if len != r.len || crc32fast::hash(&body) != crc {
            return Err(StoreError::Corrupt(format!(
                "body at {}/{} fails its checksum",
                r.segment, r.offset
            )));
        }
        Ok(body)
    }
}

/// Bodies staged by one batch, written by [`BodyLog::commit`].
#[derive(Debug, Default)]
pub(super) struct Staged {
    segment: u32,
    base: u64,
    buf: Vec<u8>,
}

impl Staged {
    /// Add a body to the batch; where it will be once committed.
    pub(super) fn push(&mut self, body: &[u8]) -> BodyRef {
        let offset = self.base + self.buf.len() as u64;
        let len = body.len() as u32;
        self.buf.extend_from_slice(&len.to_le_bytes());
        self.buf.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
        self.buf.extend_from_slice(body);
        BodyRef {
            segment: self.segment,
            offset,
            len,
        }
    }
}

/// The writer's side: appends batches to the current segment.
#[derive(Debug)]
pub(super) struct BodyLog {
    files: Arc<BodyFiles>,
    segment: u32,
    file: File,
    end: u64,
}

impl BodyLog {
    /// Open the bodies directory under `dir` and start a new segment.
    pub(super) fn open(dir: &Path) -> Result<BodyLog, StoreError> {
        let dir = dir.join("bodies");
        std::fs::create_dir_all(&dir).map_err(|e| io_error(&dir, e))?;
        let mut last = 0;
        for entry in std::fs::read_dir(&dir).map_err(|e| io_error(&dir, e))? {
            let entry = entry.map_err(|e| io_error(&dir, e))?;
            if let Some(n) = entry.file_name().to_str().and_then(segment_number) {
                last = last.max(n);
            }
        }
        let files = Arc::new(BodyFiles {
            dir,
            open: RwLock::new(HashMap::new()),
        });
        let (segment, file) = create_segment(&files.dir, last + 1)?;
        Ok(BodyLog {
            files,
            segment,
            file,
            end: 0,
        })
    }

    /// The reading side.
    pub(super) fn files(&self) -> Arc<BodyFiles> {
        self.files.clone()
    }

    /// Start staging a batch (in a new segment once this one is full; if
    /// that cannot be created, this one grows past its size).
    pub(super) fn begin(&mut self) -> Staged {
        if self.end >= SEGMENT_BYTES {
            match create_segment(&self.files.dir, self.segment + 1) {
                Ok((segment, file)) => {
                    self.segment = segment;
                    self.file = file;
                    self.end = 0;
                }
                Err(e) => tracing::warn!(error = %e, "cannot start a new body segment; the current one grows"),
            }
        }
        Staged {
            segment: self.segment,
            base: self.end,
            buf: Vec::new(),
        }
    }

    /// Write the batch's bodies and make them durable. On an error nothing
    /// refers to them and the next batch writes over them.
    pub(super) fn commit(&mut self, staged: Staged) -> Result<(), StoreError> {
        if staged.buf.is_empty() {
            return Ok(());
        }
        debug_assert_eq!((staged.segment, staged.base), (self.segment, self.end));
        let path = segment_path(&self.files.dir, self.segment);
        self.file
            .write_all_at(&staged.buf, staged.base)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| io_error(&path, e))?;
        self.end += staged.buf.len() as u64;
        Ok(())
    }
}

/// Create segment `n` (or the next free number) and make its name durable.
fn create_segment(dir: &Path, n: u32) -> Result<(u32, File), StoreError> {
    let path = segment_path(dir, n);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| io_error(&path, e))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error(dir, e))?;
    Ok((n, file))
}

fn io_error(path: &Path, e: io::Error) -> StoreError {
    StoreError::Unavailable(format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_round_trip_across_reopen_and_detect_damage() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = BodyLog::open(dir.path()).unwrap();
        let mut staged = log.begin();
        let a = staged.push(b"first body");
        let b = staged.push(&[7u8; 5000]);
        let empty = staged.push(b"");
        log.commit(staged).unwrap();
        let files = log.files();
        assert_eq!(files.read(a).unwrap(), b"first body");
        assert_eq!(files.read(b).unwrap(), vec![7u8; 5000]);
        assert_eq!(files.read(empty).unwrap(), b"");
        assert_eq!(BodyRef::decode(&a.encode()), Some(a));

        // A staged batch that is never committed leaves room for the next.
        let mut lost = log.begin();
        let never = lost.push(b"never written");
        drop(lost);
        let mut next = log.begin();
        let c = next.push(b"second batch");
        log.commit(next).unwrap();
        assert_eq!(c.offset, never.offset);
        assert_eq!(files.read(c).unwrap(), b"second batch");

        // Reopened: a new segment, and the old bodies still read.
        drop(log);
        let mut log = BodyLog::open(dir.path()).unwrap();
        let mut staged = log.begin();
        let d = staged.push(b"after reopen");
        log.commit(staged).unwrap();
        assert_ne!(d.segment, a.segment);
        let files = log.files();
        assert_eq!(files.read(a).unwrap(), b"first body");
        assert_eq!(files.read(d).unwrap(), b"after reopen");

        // A flipped byte is refused, not returned.
        let path = segment_path(&dir.path().join("bodies"), b.segment);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[(b.offset + RECORD_HEADER + 10) as usize] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        let fresh = BodyLog::open(dir.path()).unwrap().files();
        let e = fresh.read(b).unwrap_err();
        assert!(e.to_string().contains("checksum"), "{e}");
        // A reference past the end is an error too.
        let beyond = BodyRef { offset: 1 << 30, ..b };
        assert!(fresh.read(beyond).is_err());
    }
}
