//! The store's append-only log, beside sled: document bodies and the
//! write-ahead record of every batch, in segment files
//! `store/bodies/NNNNNNNN.seg`.
//!
//! **Bodies** (header, signature, signer chain and inline payload, as one
//! encoded `SignedDocument`): sled copies a leaf node on every change and
//! rewrites whole leaves (16 entries) into its log, so a 4 KiB value in sled
//! costs many times its size. Here each body is written once, sequentially;
//! sled keeps a 16-byte [`BodyRef`].
//!
//! **Batch records** make this log the commit point: the writer appends a
//! batch's bodies and then the batch's every sled write (key, value or
//! delete) as one record, `fdatasync`s once, and only then applies the batch
//! to sled and answers. sled flushes in the background; at open, the batches
//! after the one recorded in sled's `Meta` are replayed into sled. One sync
//! per batch, and nothing is visible to a reader before it is durable.
//!
//! A torn record at a segment's end (a crash mid-write) was never answered:
//! replay stops there and goes on with the next segment. Every open starts a
//! new segment, so a torn tail is never appended to.
//!
//! **Zeroed ahead.** An `fdatasync` after an append must also write the
//! file's inode (its size changed): a second synchronous write per batch.
//! A thread of the log's own ([`Zeroer`]) writes and syncs zeros a little
//! ahead of the writer, so a batch overwrites blocks the file already has
//! and its sync writes only the data (measured here: 0.17 → 0.11 ms per
//! 4 KiB sync, and fewer slow ones). The zeros are written with `O_DIRECT`
//! where the file system allows: zeros waiting in the page cache would be
//! flushed by the writer's next `fdatasync` (it syncs the whole file) and
//! make it slow. It is only an optimisation: a batch that catches up with
//! the zeros is appended and synced as before. Replay stops at the zeros (a
//! record's length is never 0). The zeros left past the last record when
//! the hub stops (at most [`AHEAD_MAX`]) stay in that segment.
//!
//! Record layout: `len: u32 LE` (of kind + content), `crc32: u32 LE` (of
//! kind + content), `kind: u8`, content.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;
use truc_core::sync::Locked;
use truc_core::sync::ReadWriteLocked;

use crate::error::Damage;
use crate::StoreError;

/// A segment is closed once it passes this size (a batch never spans two).
const SEGMENT_BYTES: u64 = 256 * 1024 * 1024;
/// Zeroes written and synced at a time, ahead of the writer: small, so
/// that a batch's write never queues long behind one.
const ZERO_CHUNK: usize = 256 * 1024;
/// The zeroed region ahead of the writer grows with what it has written
/// since the log opened (a quarter of it) from `AHEAD_MIN` up to
/// `AHEAD_MAX`, so a store opened briefly (a test, a migration) zeroes
/// little.
const AHEAD_MIN: u64 = 1024 * 1024;
const AHEAD_MAX: u64 = 16 * 1024 * 1024;
/// Alignment of `O_DIRECT` offsets and buffers.
const DIRECT_ALIGN: usize = 4096;
/// Record header: length, checksum and kind.
const RECORD_HEADER: u64 = 9;
/// A document body.
const KIND_BODY: u8 = 1;
/// A batch's sled writes.
const KIND_BATCH: u8 = 2;

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
    /// Read the bodies of the store in `dir` (no segment is created).
    pub(super) fn at(dir: &Path) -> BodyFiles {
        BodyFiles {
            dir: dir.join("bodies"),
            open: RwLock::new(HashMap::new()),
        }
    }

    fn file(&self, segment: u32) -> Result<Arc<File>, StoreError> {
        if let Some(f) = self.open.read_locked().get(&segment) {
            return Ok(f.clone());
        }
        let path = segment_path(&self.dir, segment);
        let f = Arc::new(
            File::open(&path).map_err(|e| StoreError::Corrupt(format!("body segment {}: {e}", path.display())))?,
        );
        self.open.write_locked().insert(segment, f.clone());
        Ok(f)
    }

    /// The body at `r`, checked against its checksum.
    pub(super) fn read(&self, r: BodyRef) -> Result<Vec<u8>, StoreError> {
        let f = self.file(r.segment)?;
        let mut buf = vec![0u8; RECORD_HEADER as usize + r.len as usize];
        f.read_exact_at(&mut buf, r.offset)
            .map_err(|e| StoreError::Corrupt(format!("body at {}/{}: {e}", r.segment, r.offset)))?;
        match check_record(&buf) {
            Some((KIND_BODY, len)) if len == r.len as usize => Ok(buf.split_off(RECORD_HEADER as usize)),
            _ => Err(StoreError::Corrupt(format!(
                "body at {}/{} fails its checksum",
                r.segment, r.offset
            ))),
        }
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
        let offset = self.append(KIND_BODY, body);
        BodyRef {
            segment: self.segment,
            offset,
            len: body.len() as u32,
        }
    }

    /// Where the next record will start: (segment, offset).
    pub(super) fn position(&self) -> (u32, u64) {
        (self.segment, self.base + self.buf.len() as u64)
    }

    /// Add the batch's sled writes (see [`encode_writes`]), last.
    pub(super) fn push_batch(&mut self, writes: &[u8]) {
        self.append(KIND_BATCH, writes);
    }

    fn append(&mut self, kind: u8, content: &[u8]) -> u64 {
        let offset = self.base + self.buf.len() as u64;
        let mut crc = crc32fast::Hasher::new();
        crc.update(&[kind]);
        crc.update(content);
        self.buf.extend_from_slice(&(content.len() as u32 + 1).to_le_bytes());
        self.buf.extend_from_slice(&crc.finalize().to_le_bytes());
        self.buf.push(kind);
        self.buf.extend_from_slice(content);
        offset
    }
}

/// A record's kind and content length if `buf` (header and content) is
/// whole and matches its checksum.
fn check_record(buf: &[u8]) -> Option<(u8, usize)> {
    let len = u32::from_le_bytes(buf.get(0..4)?.try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(buf.get(4..8)?.try_into().ok()?);
    let rest = buf.get(8..8 + len)?;
    if len == 0 || buf.len() != 8 + len || crc32fast::hash(rest) != crc {
        return None;
    }
    Some((rest[0], len - 1))
}

/// One sled write: key and new value (`None`: delete).
pub(super) type Write = (Vec<u8>, Option<Vec<u8>>);

/// A batch's writes as a record's content.
pub(super) fn encode_writes<'a>(writes: impl ExactSizeIterator<Item = (&'a Vec<u8>, &'a Option<Vec<u8>>)>) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(writes.len() as u32).to_le_bytes());
    for (k, v) in writes {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(k);
        match v {
            Some(v) => {
                out.push(1);
                out.extend_from_slice(&(v.len() as u32).to_le_bytes());
                out.extend_from_slice(v);
            }
            None => out.push(0),
        }
    }
    out
}

fn decode_writes(mut b: &[u8]) -> Option<Vec<Write>> {
    fn take<'b>(b: &mut &'b [u8], n: usize) -> Option<&'b [u8]> {
        let (head, rest) = (b.get(..n)?, b.get(n..)?);
        *b = rest;
        Some(head)
    }
    fn u32_at(b: &mut &[u8]) -> Option<usize> {
        Some(u32::from_le_bytes(take(b, 4)?.try_into().ok()?) as usize)
    }
    let n = u32_at(&mut b)?;
    let mut out = Vec::with_capacity(n.min(1 << 16));
    for _ in 0..n {
        let klen = u32_at(&mut b)?;
        let k = take(&mut b, klen)?.to_vec();
        let v = match take(&mut b, 1)?[0] {
            0 => None,
            1 => {
                let vlen = u32_at(&mut b)?;
                Some(take(&mut b, vlen)?.to_vec())
            }
            _ => return None,
        };
        out.push((k, v));
    }
    b.is_empty().then_some(out)
}

/// What replay found in the log after the batch sled holds last.
#[derive(Debug, Default)]
pub(super) struct Replay {
    /// The batches to apply to sled, in order.
    pub(super) batches: Vec<Vec<Write>>,
    /// Incomplete writes at a segment's very end (segment, offset where
    /// the write starts): a crash mid-write, never answered. Cut off with
    /// [`cut_torn_tails`] once the store has checked nothing it signed is
    /// missing.
    pub(super) torn: Vec<(u32, u64)>,
    /// Whole body records that fail their checksum while the records
    /// around them are sound (segment, offset): damage at rest, found
    /// again when the body is read (its document is then quarantined).
    pub(super) damaged_bodies: Vec<(u32, u64)>,
}

/// Which failures replay may take for a torn write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tails {
    /// Only at the end of the newest segment: every open cuts off the torn
    /// tail it found before it starts a new segment, so an older segment
    /// never ends torn.
    NewestOnly,
    /// At the end of any segment: a store written before torn tails were
    /// cut off (read once, then cut).
    AnySegment,
}

/// Read the log after the batch whose record starts at `after` (segment,
/// offset; segment 0: none, read from the first segment), telling a torn
/// write from damage:
///
/// - a record cut short, zeros where a record should start but other bytes
///   after them, or a whole record failing its checksum with nothing but
///   zeros after it, at the very end of the newest segment, is a torn
///   write: [`Replay::torn`] (whether it held a batch that was answered is
///   for the signed-head check to say);
/// - a body record failing its checksum between sound records is damage to
///   that document only: [`Replay::damaged_bodies`];
/// - anything else is [`StoreError::Damaged`], naming the file, the offset
///   and what is lost: a batch record failing its checksum with records
///   after it, a failure at the end of an older segment, a missing
///   segment, or sled holding a batch the log does not.
pub(super) fn replay(dir: &Path, after: (u32, u64), tails: Tails) -> Result<Replay, StoreError> {
    let dir = dir.join("bodies");
    let mut segments: Vec<u32> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok()?.file_name().to_str().and_then(segment_number))
            .collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io_error(&dir, e)),
    };
    segments.sort_unstable();
    let damaged = |seg: u32, offset: Option<u64>, what: String, lost: &str| {
        StoreError::Damaged(Damage {
            file: segment_path(&dir, seg),
            offset,
            what,
            lost: lost.into(),
            repairable: true,
        })
    };
    if after.0 != 0 && !segments.contains(&after.0) {
        return Err(damaged(
            after.0,
            None,
            "the log segment holding the last batch the database applied is missing".into(),
            "the documents whose bodies it held and every batch after it",
        ));
    }
    let segments: Vec<u32> = segments.into_iter().filter(|&s| s >= after.0).collect();
    for w in segments.windows(2) {
        if w[1] != w[0] + 1 {
            return Err(damaged(
                w[0] + 1,
                None,
                format!("log segment {} is missing between {} and {}", w[0] + 1, w[0], w[1]),
                "the documents whose bodies it held and the batches it recorded",
            ));
        }
    }
    let newest = segments.last().copied();
    let mut out = Replay::default();
    for seg in segments {
        let start = (seg == after.0).then_some(after.1);
        let path = segment_path(&dir, seg);
        let len_on_disk = std::fs::metadata(&path).map_err(|e| io_error(&path, e))?.len();
        if let Some(o) = start {
            if o >= len_on_disk {
                return Err(damaged(
                    seg,
                    Some(o),
                    format!(
                        "the database has applied a batch at offset {o} but the segment holds only {len_on_disk} \
                         bytes (the segment was truncated or replaced)"
                    ),
                    "that batch's document bodies and anything after it",
                ));
            }
        }
        // Only what follows the recorded batch is read, not the segment.
        let base = start.unwrap_or(0);
        let bytes = read_from(&path, base).map_err(|e| io_error(&path, e))?;
        let mut at = 0usize;
        let mut skip_first = start.is_some();
        let tail_ok = tails == Tails::AnySegment || Some(seg) == newest;
        let mut torn = |at: usize, why: &str| -> Result<(), StoreError> {
            if tail_ok {
                out.torn.push((seg, base + at as u64));
                Ok(())
            } else {
                Err(damaged(
                    seg,
                    Some(base + at as u64),
                    format!(
                        "{why}, in a segment that newer segments follow (a torn write is cut off at the next open)"
                    ),
                    "the batch recorded there and its documents",
                ))
            }
        };
        if skip_first {
            // The record the database names must be there (framed): zeros
            // or a cut-off record mean sled holds a batch the log lost.
            let framed = bytes.get(..8).is_some_and(|h| {
                let len = u32::from_le_bytes(h[0..4].try_into().unwrap_or_default()) as usize;
                len > 0 && bytes.len() >= 8 + len
            });
            if !framed {
                return Err(damaged(
                    seg,
                    Some(base),
                    format!(
                        "the database has applied a batch at offset {base} but the log holds no whole record there"
                    ),
                    "that batch's document bodies and anything after it",
                ));
            }
        }
        while at < bytes.len() {
            let rest = &bytes[at..];
            let Some(header) = rest.get(..8) else {
                torn(at, "an incomplete record header at the end")?;
                break;
            };
            let len = u32::from_le_bytes(header[0..4].try_into().unwrap_or_default()) as usize;
            if len == 0 {
                if rest.iter().any(|&b| b != 0) {
                    torn(at, "bytes that are not a record after the last record")?;
                }
                break; // the zeros written ahead of the writer
            }
            let Some(record) = rest.get(..8 + len) else {
                torn(at, "a record longer than the file")?;
                break;
            };
            match check_record(record) {
                Some((kind, _)) => {
                    if kind == KIND_BATCH && !skip_first {
                        let writes = decode_writes(&record[9..]).ok_or_else(|| {
                            damaged(
                                seg,
                                Some(base + at as u64),
                                "a batch record whose checksum matches does not decode".into(),
                                "this batch and every batch after it",
                            )
                        })?;
                        out.batches.push(writes);
                    }
                }
                // The batch the database holds already: not needed.
                None if skip_first => {}
                None if rest[8 + len..].iter().all(|&b| b == 0) => {
                    torn(at, "the last record fails its checksum")?;
                    break;
                }
                None if record[8] == KIND_BODY => out.damaged_bodies.push((seg, base + at as u64)),
                None => {
                    return Err(damaged(
                        seg,
                        Some(base + at as u64),
                        "a batch record fails its checksum and other records follow it".into(),
                        "this batch and every batch after it (their documents, receipts and acknowledgements)",
                    ))
                }
            }
            skip_first = false;
            at += 8 + len;
        }
    }
    Ok(out)
}

/// Cut off the torn writes replay found (see [`Replay::torn`]): the
/// segment is truncated where the write started and synced, so that a
/// later open never mistakes it for damage, nor damage for it.
pub(super) fn cut_torn_tails(dir: &Path, torn: &[(u32, u64)]) -> Result<(), StoreError> {
    let dir = dir.join("bodies");
    for &(seg, offset) in torn {
        let path = segment_path(&dir, seg);
        let f = OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| io_error(&path, e))?;
        f.set_len(offset)
            .and_then(|()| f.sync_all())
            .map_err(|e| io_error(&path, e))?;
        tracing::warn!(
            file = %path.display(),
            offset,
            "cut off an incomplete write at the end of the log (a crash mid-write: it was never acknowledged)"
        );
    }
    Ok(())
}

/// The path of segment `segment` of the store in `dir`.
pub(super) fn segment_file(dir: &Path, segment: u32) -> PathBuf {
    segment_path(&dir.join("bodies"), segment)
}

/// The segments of the store in `dir` from `from` on, in order.
pub(super) fn segments_from(dir: &Path, from: u32) -> Result<Vec<u32>, StoreError> {
    let dir = dir.join("bodies");
    let mut segments: Vec<u32> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok()?.file_name().to_str().and_then(segment_number))
            .filter(|&s| s >= from)
            .collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io_error(&dir, e)),
    };
    segments.sort_unstable();
    Ok(segments)
}

/// Give back the disk blocks of segment `segment` that no read will ever
/// need, once replay starts after it: the whole blocks inside each batch
/// record, and the zeros past the last record (at most [`AHEAD_MAX`], left
/// by the zeroer when the hub stopped). Bodies stay byte for byte where
/// they are, so every [`BodyRef`] into the segment still reads (holes read
/// as zeros, and no body lies in one). Returns the bytes freed, by the
/// file's allocated blocks; 0 where the file system cannot punch holes.
pub(super) fn punch_segment(dir: &Path, segment: u32) -> Result<u64, StoreError> {
    use rustix::fs::{fallocate, FallocateFlags};
    let path = segment_path(&dir.join("bodies"), segment);
    let file = match OpenOptions::new().write(true).read(true).open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io_error(&path, e)),
    };
    let meta = file.metadata().map_err(|e| io_error(&path, e))?;
    let (size, before) = (meta.len(), std::os::unix::fs::MetadataExt::blocks(&meta));
    let align = |at: u64, up: bool| {
        let a = DIRECT_ALIGN as u64;
        if up {
            at.div_ceil(a) * a
        } else {
            at / a * a
        }
    };
    let punch = |from: u64, to: u64| -> io::Result<bool> {
        if to <= from {
            return Ok(true);
        }
        match fallocate(
            &file,
            FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
            from,
            to - from,
        ) {
            Ok(()) => Ok(true),
            Err(rustix::io::Errno::OPNOTSUPP) | Err(rustix::io::Errno::NOSYS) => Ok(false),
            Err(e) => Err(e.into()),
        }
    };
    let mut at = 0u64;
    let mut header = [0u8; RECORD_HEADER as usize];
    while at + RECORD_HEADER <= size {
        file.read_exact_at(&mut header, at).map_err(|e| io_error(&path, e))?;
        let len = u64::from(u32::from_le_bytes(header[0..4].try_into().unwrap_or_default()));
        if len == 0 {
            // The zeros ahead of where the writer stopped: none is a record.
            punch(align(at, true), size).map_err(|e| io_error(&path, e))?;
            break;
        }
        let end = at + 8 + len;
        if end > size {
            break; // torn by a crash: left as it is
        }
        if header[8] == KIND_BATCH
            && !punch(align(at + RECORD_HEADER, true), align(end, false)).map_err(|e| io_error(&path, e))?
        {
            return Ok(0);
        }
        at = end;
    }
    let after = file
        .metadata()
        .map(|m| std::os::unix::fs::MetadataExt::blocks(&m))
        .unwrap_or(before);
    Ok(before.saturating_sub(after) * 512)
}

/// The writer's side: appends batches to the current segment.
#[derive(Debug)]
pub(super) struct BodyLog {
    files: Arc<BodyFiles>,
    segment: u32,
    file: Arc<File>,
    end: u64,
    /// Started at the first commit (a store that only reads needs none).
    zeroer: Option<Zeroer>,
    /// Start a new segment at the next batch (after a failed sync).
    rollover_now: bool,
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
            file: Arc::new(file),
            end: 0,
            zeroer: None,
            rollover_now: false,
        })
    }

    /// Write the next batch in a new segment.
    pub(super) fn start_new_segment(&mut self) {
        self.rollover_now = true;
    }

    /// The reading side.
    pub(super) fn files(&self) -> Arc<BodyFiles> {
        self.files.clone()
    }

    /// Start staging a batch (in a new segment once this one is full; if
    /// that cannot be created, this one grows past its size).
    pub(super) fn begin(&mut self) -> Staged {
        if self.end >= SEGMENT_BYTES || self.rollover_now {
            match create_segment(&self.files.dir, self.segment + 1) {
                Ok((segment, file)) => {
                    self.rollover_now = false;
                    self.segment = segment;
                    self.file = Arc::new(file);
                    self.end = 0;
                    if let Some(z) = &self.zeroer {
                        z.switch(self.segment, self.file.clone(), &segment_path(&self.files.dir, segment));
                    }
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
        let until = staged.base + staged.buf.len() as u64;
        let path = segment_path(&self.files.dir, self.segment);
        let zeroer = self
            .zeroer
            .get_or_insert_with(|| Zeroer::start(self.segment, self.file.clone(), &path));
        zeroer.claim(until);
        if let Err(e) = self.file.write_all_at(&staged.buf, staged.base) {
            // Nothing of it is durable and nothing refers to it: the next
            // batch writes over it. Cut the file back so that a partial
            // write never lies between records.
            if self.file.set_len(staged.base).is_err() {
                tracing::warn!(file = %path.display(), "cannot cut a failed write off the log");
            }
            return Err(io_error(&path, e));
        }
        if let Err(e) = self.file.sync_data() {
            // The write may or may not be on the disk: the caller cannot
            // tell whether the batch is kept (the writer reopens the store
            // from the log before it goes on). Go on in a new segment, so
            // that whatever survives of it is never written over.
            self.end = until;
            self.rollover_now = true;
            return Err(StoreError::OutcomeUnknown(format!("syncing {}: {e}", path.display())));
        }
        self.end = until;
        Ok(())
    }
}

/// Writes and syncs zeros ahead of the writer in the current segment, on a
/// thread of its own (see the module docs).
#[derive(Debug)]
struct Zeroer {
    shared: Arc<(Mutex<Zeroing>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct Zeroing {
    segment: u32,
    file: Arc<File>,
    /// The same file opened with `O_DIRECT`, if the file system allows.
    direct: Option<Arc<File>>,
    /// Zeroed and synced up to here, or claimed by the writer.
    ready: u64,
    /// The writer's end, and what it has written since the log opened.
    end: u64,
    written: u64,
    /// The thread is writing `[ready, ready + ZERO_CHUNK)`.
    busy: bool,
    /// Writing zeros failed (e.g. a full disk): the writer appends.
    failed: bool,
    stop: bool,
}

impl Zeroer {
    fn start(segment: u32, file: Arc<File>, path: &Path) -> Zeroer {
        let shared = Arc::new((
            Mutex::new(Zeroing {
                segment,
                file,
                direct: open_direct(path),
                ready: 0,
                end: 0,
                written: 0,
                busy: false,
                failed: false,
                stop: false,
            }),
            Condvar::new(),
        ));
        let state = shared.clone();
        let thread = std::thread::Builder::new()
            .name("truc-log-zeroer".into())
            .spawn(move || zero_ahead(&state))
            .map_err(|e| tracing::warn!(error = %e, "cannot start the log's zeroing thread; batches append"))
            .ok();
        if thread.is_none() {
            lock(&shared.0).failed = true;
        }
        Zeroer { shared, thread }
    }

    /// The writer is about to write up to `until`: wait if that overlaps
    /// zeros being written now, and keep the thread from writing any below
    /// `until` later.
    fn claim(&self, until: u64) {
        let (m, cv) = &*self.shared;
        let mut z = lock(m);
        while z.busy && until > z.ready {
            z = cv.wait(z).unwrap_or_else(|e| e.into_inner());
        }
        z.written += until.saturating_sub(z.end);
        z.end = until;
        z.ready = z.ready.max(until);
        cv.notify_all();
    }

    /// Wait until the thread has zeroed up to `at` (or has given up).
    #[cfg(test)]
    fn wait_ready(&self, at: u64) -> bool {
        let (m, cv) = &*self.shared;
        let mut z = lock(m);
        while z.ready < at && !z.failed {
            z = cv.wait(z).unwrap_or_else(|e| e.into_inner());
        }
        !z.failed
    }

    /// The writer moved to a new segment.
    fn switch(&self, segment: u32, file: Arc<File>, path: &Path) {
        let direct = open_direct(path);
        let (m, cv) = &*self.shared;
        let mut z = lock(m);
        while z.busy {
            z = cv.wait(z).unwrap_or_else(|e| e.into_inner());
        }
        z.segment = segment;
        z.file = file;
        z.direct = direct;
        z.ready = 0;
        z.end = 0;
        z.failed = z.failed && self.thread.is_none();
        cv.notify_all();
    }
}

impl Drop for Zeroer {
    fn drop(&mut self) {
        lock(&self.shared.0).stop = true;
        self.shared.1.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `ZERO_CHUNK` zeros, aligned for `O_DIRECT`.
fn zeros() -> &'static [u8] {
    static BUF: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    let buf = BUF.get_or_init(|| vec![0u8; ZERO_CHUNK + DIRECT_ALIGN]);
    let start = buf.as_ptr().align_offset(DIRECT_ALIGN);
    &buf[start..start + ZERO_CHUNK]
}

/// `path` opened for `O_DIRECT` writes; `None` where the file system
/// refuses (tmpfs): the zeros then go through the page cache.
fn open_direct(path: &Path) -> Option<Arc<File>> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .ok()
        .map(Arc::new)
}

fn lock(m: &Mutex<Zeroing>) -> std::sync::MutexGuard<'_, Zeroing> {
    m.locked()
}

/// The zeroing thread: keep `ready` a quarter of what was written ahead of
/// the writer's end (one chunk at least, [`AHEAD_MAX`] at most).
fn zero_ahead(shared: &(Mutex<Zeroing>, Condvar)) {
    let (m, cv) = shared;
    let mut z = lock(m);
    loop {
        if z.stop {
            return;
        }
        let ahead = (z.written / 4).clamp(AHEAD_MIN, AHEAD_MAX);
        if z.failed || z.ready >= z.end + ahead || z.ready >= SEGMENT_BYTES {
            z = cv.wait(z).unwrap_or_else(|e| e.into_inner());
            continue;
        }
        // Aligned for O_DIRECT; the bytes before `at` in its block are the
        // writer's or already zero.
        let at = z.ready.next_multiple_of(DIRECT_ALIGN as u64);
        let (segment, file, direct) = (z.segment, z.file.clone(), z.direct.clone());
        z.busy = true;
        drop(z);
        // A file system may take the O_DIRECT open and refuse the write:
        // then the page cache, from now on.
        let direct_failed = direct.as_ref().is_some_and(|d| d.write_all_at(zeros(), at).is_err());
        let r = if direct.is_none() || direct_failed {
            file.write_all_at(zeros(), at)
        } else {
            Ok(())
        }
        .and_then(|()| file.sync_data());
        z = lock(m);
        z.busy = false;
        if direct_failed && z.segment == segment {
            z.direct = None;
        }
        match r {
            Ok(()) if z.segment == segment => z.ready = z.ready.max(at + ZERO_CHUNK as u64),
            Ok(()) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot write zeros ahead of the body log; batches append");
                z.failed = true;
            }
        }
        cv.notify_all();
    }
}

/// The bytes of `path` from `offset` to its end.
fn read_from(path: &Path, offset: u64) -> io::Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = File::open(path)?;
    f.seek(SeekFrom::Start(offset))?;
    let mut out = Vec::new();
    f.read_to_end(&mut out)?;
    Ok(out)
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

    use crate::test_skip as skip;

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

    #[test]
    fn punching_frees_batch_records_and_trailing_zeros_and_keeps_every_body() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = BodyLog::open(dir.path()).unwrap();
        let mut refs = Vec::new();
        for round in 0..3u8 {
            let mut staged = log.begin();
            refs.push((staged.push(&[round; 5000]), round));
            staged.push_batch(&[0xAB; 40_000]); // a batch record over several blocks
            refs.push((staged.push(&[round + 10; 3000]), round + 10));
            staged.push_batch(&[0xCD; 100]); // a small one: no whole block
            log.commit(staged).unwrap();
        }
        let segment = refs[0].0.segment;
        let path = segment_path(&dir.path().join("bodies"), segment);
        drop(log); // the zeros ahead stay past the last record
        let blocks = || std::os::unix::fs::MetadataExt::blocks(&std::fs::metadata(&path).unwrap()) * 512;
        let (size, before) = (std::fs::metadata(&path).unwrap().len(), blocks());
        let freed = punch_segment(dir.path(), segment).unwrap();
        if freed == 0 {
            skip::note(&format!("this file system cannot punch holes ({})", path.display()));
            return;
        }
        assert_eq!(before - blocks(), freed);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), size, "offsets do not move");
        // Every body reads, checksum and all.
        let files = BodyFiles::at(dir.path());
        for (r, fill) in &refs {
            assert!(files.read(*r).unwrap().iter().all(|b| b == fill));
        }
        // Each large batch record lost the whole blocks inside it (the zeros
        // the zeroer wrote past the last record, however far it got, come
        // on top); what the file still holds of them is zeros.
        let inside: u64 = refs
            .iter()
            .step_by(2)
            .map(|(r, _)| {
                let start = r.offset + RECORD_HEADER + 5000 + RECORD_HEADER;
                let end = start + 40_000 - 1;
                (end / 4096).saturating_sub(start.div_ceil(4096)) * 4096
            })
            .sum();
        assert!(inside >= 3 * 8 * 4096);
        assert!(
            freed >= inside,
            "freed {freed}, the batch records' whole blocks alone are {inside}"
        );
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.windows(4096).filter(|w| w.iter().all(|&b| b == 0xAB)).count(), 0);
        // The file's end is all holes now: nothing allocated past the records.
        let ended = refs.last().unwrap().0.offset + RECORD_HEADER + 3000 + RECORD_HEADER + 100;
        assert!(bytes[ended as usize..].iter().all(|&b| b == 0));
        assert!(blocks() <= ended.div_ceil(4096) * 4096);
        // Punching again frees nothing more.
        assert_eq!(punch_segment(dir.path(), segment).unwrap(), 0);
    }

    #[test]
    fn zeros_are_written_ahead_and_replay_stops_at_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = BodyLog::open(dir.path()).unwrap();
        let mut staged = log.begin();
        let a = staged.push(b"first");
        staged.push_batch(&writes(1));
        log.commit(staged).unwrap();
        let end = log.end;
        // The thread zeroes a chunk past the writer's end, and syncs it.
        assert!(log.zeroer.as_ref().unwrap().wait_ready(end + ZERO_CHUNK as u64));
        let seg = segment_path(&dir.path().join("bodies"), a.segment);
        assert!(std::fs::metadata(&seg).unwrap().len() >= end + ZERO_CHUNK as u64);
        // The next batch overwrites zeros; one bigger than the zeroed
        // region appends past it.
        let mut staged = log.begin();
        staged.push(b"second");
        staged.push_batch(&writes(2));
        log.commit(staged).unwrap();
        let mut staged = log.begin();
        let big = staged.push(&vec![9u8; 2 * AHEAD_MIN as usize]);
        staged.push_batch(&writes(3));
        log.commit(staged).unwrap();
        assert!(log.zeroer.as_ref().unwrap().wait_ready(log.end + ZERO_CHUNK as u64));
        let files = log.files();
        drop(log);
        assert_eq!(files.read(a).unwrap(), b"first");
        assert_eq!(files.read(big).unwrap(), vec![9u8; 2 * AHEAD_MIN as usize]);
        // Replay reads the three batches and stops at the zeros after them.
        let all = replay(dir.path(), (0, 0), Tails::NewestOnly).unwrap().batches;
        let tags: Vec<u8> = all.iter().map(|w| w[0].0[0]).collect();
        assert_eq!(tags, vec![1, 2, 3]);
    }

    fn writes(tag: u8) -> Vec<u8> {
        let k = vec![tag];
        let v = Some(vec![tag; 3]);
        let gone = None;
        let d = vec![tag, 0];
        encode_writes([(&k, &v), (&d, &gone)].into_iter())
    }

    #[test]
    fn batches_replay_after_the_recorded_one_and_stop_at_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = BodyLog::open(dir.path()).unwrap();
        let mut positions = Vec::new();
        for tag in 1..=3u8 {
            let mut staged = log.begin();
            staged.push(b"a body");
            positions.push(staged.position());
            staged.push_batch(&writes(tag));
            log.commit(staged).unwrap();
        }
        let all = replay(dir.path(), (0, 0), Tails::NewestOnly).unwrap().batches;
        assert_eq!(all.len(), 3);
        assert_eq!(all[0], vec![(vec![1], Some(vec![1; 3])), (vec![1, 0], None)]);
        // sled holds the second: only the third is replayed.
        let rest = replay(dir.path(), positions[1], Tails::NewestOnly).unwrap().batches;
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0][0].0, vec![3]);

        // A torn last record (a crash mid-write) is not replayed, and is
        // cut off at the next open; the next segment, written after the
        // restart, is replayed.
        let seg = segment_path(&dir.path().join("bodies"), positions[2].0);
        let end = log.end;
        drop(log);
        let f = OpenOptions::new().write(true).open(&seg).unwrap();
        f.set_len(end - 2).unwrap();
        let found = replay(dir.path(), positions[1], Tails::NewestOnly).unwrap();
        assert!(found.batches.is_empty());
        assert_eq!(found.torn, vec![positions[2]]);
        cut_torn_tails(dir.path(), &found.torn).unwrap();
        let mut log = BodyLog::open(dir.path()).unwrap();
        let mut staged = log.begin();
        staged.push_batch(&writes(4));
        log.commit(staged).unwrap();
        let rest = replay(dir.path(), positions[1], Tails::NewestOnly).unwrap().batches;
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0][0].0, vec![4]);
    }

    /// Commit `n` batches of one body and one batch record each; the
    /// positions of the batch records and of the bodies.
    fn three_batches(dir: &Path) -> (Vec<(u32, u64)>, Vec<BodyRef>) {
        let mut log = BodyLog::open(dir).unwrap();
        let (mut batches, mut bodies) = (Vec::new(), Vec::new());
        for tag in 1..=3u8 {
            let mut staged = log.begin();
            bodies.push(staged.push(&[tag; 300]));
            batches.push(staged.position());
            staged.push_batch(&writes(tag));
            log.commit(staged).unwrap();
        }
        (batches, bodies)
    }

    fn flip(path: &Path, at: u64) {
        let f = OpenOptions::new().read(true).write(true).open(path).unwrap();
        let mut b = [0u8; 1];
        f.read_exact_at(&mut b, at).unwrap();
        f.write_all_at(&[b[0] ^ 0x10], at).unwrap();
    }

    fn damaged(r: Result<Replay, StoreError>) -> Damage {
        match r {
            Err(StoreError::Damaged(d)) => d,
            other => panic!("expected damage, got {other:?}"),
        }
    }

    #[test]
    fn a_flipped_bit_in_a_batch_record_with_records_after_it_is_damage() {
        let dir = tempfile::tempdir().unwrap();
        let (batches, _) = three_batches(dir.path());
        let seg = segment_file(dir.path(), batches[1].0);
        flip(&seg, batches[1].1 + 12);
        let d = damaged(replay(dir.path(), (0, 0), Tails::NewestOnly));
        assert_eq!((d.file.clone(), d.offset), (seg, Some(batches[1].1)));
        assert!(d.to_string().contains("trucd repair --accept-loss"), "{d}");
    }

    #[test]
    fn a_flipped_bit_in_the_newest_batch_record_is_a_torn_candidate_only_at_the_end_of_the_newest_segment() {
        let dir = tempfile::tempdir().unwrap();
        let (batches, _) = three_batches(dir.path());
        let seg = segment_file(dir.path(), batches[2].0);
        flip(&seg, batches[2].1 + 12);
        // The newest segment: replay stops there and reports it (the
        // signed-head check says whether it had been answered).
        let found = replay(dir.path(), (0, 0), Tails::NewestOnly).unwrap();
        assert_eq!(found.batches.len(), 2);
        assert_eq!(found.torn, vec![batches[2]]);
        // Once a newer segment exists, the same failure is damage.
        let mut log = BodyLog::open(dir.path()).unwrap();
        let mut staged = log.begin();
        staged.push_batch(&writes(9));
        log.commit(staged).unwrap();
        let d = damaged(replay(dir.path(), (0, 0), Tails::NewestOnly));
        assert_eq!((d.file, d.offset), (seg, Some(batches[2].1)));
        // A store from before torn tails were cut accepts it once.
        let found = replay(dir.path(), (0, 0), Tails::AnySegment).unwrap();
        assert_eq!(found.batches.len(), 3);
    }

    #[test]
    fn a_damaged_body_between_sound_records_is_reported_and_replay_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let (batches, bodies) = three_batches(dir.path());
        let seg = segment_file(dir.path(), bodies[1].segment);
        flip(&seg, bodies[1].offset + 100);
        let found = replay(dir.path(), (0, 0), Tails::NewestOnly).unwrap();
        assert_eq!(found.batches.len(), 3);
        assert_eq!(found.damaged_bodies, vec![(bodies[1].segment, bodies[1].offset)]);
        assert!(found.torn.is_empty());
        let _ = batches;
    }

    #[test]
    fn missing_segments_and_a_database_ahead_of_the_log_are_damage() {
        let dir = tempfile::tempdir().unwrap();
        let (batches, _) = three_batches(dir.path());
        // Three more segments (each open starts one); delete the middle one.
        for _ in 0..3 {
            let mut log = BodyLog::open(dir.path()).unwrap();
            let mut staged = log.begin();
            staged.push_batch(&writes(7));
            log.commit(staged).unwrap();
        }
        let s = batches[0].0;
        // The database names a batch past the end of its segment.
        let d = damaged(replay(dir.path(), (s, 1 << 40), Tails::NewestOnly));
        assert_eq!(d.file, segment_file(dir.path(), s));
        // …or where the log has only the zeros written ahead of the writer.
        let d = damaged(replay(dir.path(), (s, batches[2].1 + 500), Tails::NewestOnly));
        assert_eq!(d.offset, Some(batches[2].1 + 500));
        std::fs::remove_file(segment_file(dir.path(), s + 2)).unwrap();
        let d = damaged(replay(dir.path(), (s, 0), Tails::NewestOnly));
        assert_eq!(d.file, segment_file(dir.path(), s + 2));
        // The segment the database names is gone.
        std::fs::remove_file(segment_file(dir.path(), s)).unwrap();
        let d = damaged(replay(dir.path(), (s, batches[2].1), Tails::NewestOnly));
        assert_eq!(d.file, segment_file(dir.path(), s));
    }

    #[test]
    fn a_truncated_newest_segment_is_a_torn_candidate() {
        let dir = tempfile::tempdir().unwrap();
        let (batches, _) = three_batches(dir.path());
        let seg = segment_file(dir.path(), batches[2].0);
        let f = OpenOptions::new().write(true).open(&seg).unwrap();
        f.set_len(batches[2].1 + 20).unwrap();
        let found = replay(dir.path(), (0, 0), Tails::NewestOnly).unwrap();
        assert_eq!(found.batches.len(), 2);
        assert_eq!(found.torn, vec![batches[2]]);
    }
}
