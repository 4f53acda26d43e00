//! Writing a large file front to back without copying it through the page
//! cache.
//!
//! Buffered `write` copies every byte into the page cache first; on the
//! virtual machines Truc was measured on that copy is the largest single
//! cost of receiving a large document (about half of the hub's and of
//! `truc inbox`'s CPU time, see BENCHMARKS.md "Large documents"), and the
//! bytes are not read back soon: a payload is written once and read when a
//! recipient fetches it. [`SeqWriter`] stages what it is given in an aligned
//! buffer and writes whole, aligned blocks with `O_DIRECT` (straight from
//! the buffer to the device); the unaligned head of a resumed file and the
//! tail go through the ordinary file handle. Where the file system refuses
//! `O_DIRECT` (tmpfs, some network file systems) it writes everything the
//! ordinary way. Durability is unchanged: callers still `sync_all` at the
//! end.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

/// Alignment of `O_DIRECT` offsets, lengths and buffers (the page size,
/// which covers every logical block size in use).
const ALIGN: usize = 4096;
/// Bytes staged before a direct write: large writes keep the device busy.
pub const STAGE: usize = 4 << 20;

/// Blocks in flight to the I/O thread at most (and buffers per writer).
const IN_FLIGHT: usize = 2;

/// A block for the I/O thread: buffer, where the data starts in it, its
/// length, and the file offset.
type Block = (Vec<u8>, usize, usize, u64);

/// The thread that writes whole blocks with `O_DIRECT` (falling back to the
/// ordinary handle if the file system refuses), so that waiting for the
/// device overlaps hashing and receiving the next block.
struct DirectIo {
    blocks: Option<std::sync::mpsc::SyncSender<Block>>,
    done: std::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    thread: Option<std::thread::JoinHandle<()>>,
    in_flight: usize,
    buffers: usize,
}

impl DirectIo {
    fn start(direct: File, buffered: File) -> DirectIo {
        let (blocks, rx) = std::sync::mpsc::sync_channel::<Block>(IN_FLIGHT);
        let (tx, done) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("truc-direct-io".into())
            .spawn(move || {
                let mut direct = Some(direct);
                for (buf, start, len, pos) in rx {
                    let block = &buf[start..start + len];
                    let ok = direct.as_ref().is_some_and(|d| d.write_all_at(block, pos).is_ok());
                    let r = if ok {
                        Ok(())
                    } else {
                        // Refused (or failed partway): the same bytes at the
                        // same offset the ordinary way, and from now on.
                        direct = None;
                        buffered.write_all_at(block, pos)
                    };
                    if tx.send(r.map(|()| buf)).is_err() {
                        return;
                    }
                }
            })
            .ok();
        DirectIo {
            blocks: Some(blocks),
            done,
            thread,
            in_flight: 0,
            buffers: 1,
        }
    }

    /// Hand a full block over; returns a free buffer for the next one.
    fn submit(&mut self, block: Block) -> io::Result<Vec<u8>> {
        let gone = || io::Error::other("the direct I/O thread stopped");
        self.blocks.as_ref().ok_or_else(gone)?.send(block).map_err(|_| gone())?;
        self.in_flight += 1;
        if let Ok(r) = self.done.try_recv() {
            self.in_flight -= 1;
            return r;
        }
        if self.buffers < IN_FLIGHT + 1 {
            self.buffers += 1;
            return Ok(vec![0u8; STAGE + ALIGN]);
        }
        self.in_flight -= 1;
        self.done.recv().map_err(|_| gone())?
    }

    /// Wait until every block handed over is written.
    fn wait(&mut self) -> io::Result<()> {
        let mut first_err = Ok(());
        while self.in_flight > 0 {
            self.in_flight -= 1;
            match self.done.recv() {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => first_err = first_err.and(Err(e)),
                Err(_) => first_err = first_err.and(Err(io::Error::other("the direct I/O thread stopped"))),
            }
        }
        first_err
    }
}

impl Drop for DirectIo {
    fn drop(&mut self) {
        let _ = self.wait();
        self.blocks = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Writes a file sequentially from an offset, bypassing the page cache
/// where it can. Call [`SeqWriter::finish`] (or drop it) to write what is
/// staged; then `sync_all` the file for durability.
pub struct SeqWriter {
    /// The ordinary handle: heads, tails, and everything without `O_DIRECT`.
    buffered: File,
    /// The I/O thread for whole blocks, if the file system takes `O_DIRECT`.
    io: Option<DirectIo>,
    /// File offset of the first staged byte.
    pos: u64,
    /// `STAGE + ALIGN` bytes; the staged bytes start at `start`, aligned.
    stage: Vec<u8>,
    start: usize,
    /// Bytes staged.
    len: usize,
}

impl std::fmt::Debug for SeqWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeqWriter")
            .field("pos", &self.pos)
            .field("staged", &self.len)
            .field("direct", &self.io.is_some())
            .finish()
    }
}

impl SeqWriter {
    /// Write `path` (already open as `file`, for writing) from `offset` on.
    pub fn new(file: File, path: &Path, offset: u64) -> SeqWriter {
        let direct = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(path)
            .ok();
        let io = match (direct, file.try_clone()) {
            (Some(d), Ok(b)) => Some(DirectIo::start(d, b)),
            _ => None,
        };
        Self::with(file, io, offset)
    }

    /// The same, never bypassing the page cache.
    pub fn buffered(file: File, offset: u64) -> SeqWriter {
        Self::with(file, None, offset)
    }

    fn with(buffered: File, io: Option<DirectIo>, offset: u64) -> SeqWriter {
        let (stage, start) = if io.is_some() { fresh() } else { (Vec::new(), 0) };
        SeqWriter {
            buffered,
            io,
            pos: offset,
            stage,
            start,
            len: 0,
        }
    }

    /// Whether whole blocks go around the page cache.
    pub fn is_direct(&self) -> bool {
        self.io.is_some()
    }

    /// Append `data`.
    pub fn write(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            if self.io.is_none() {
                self.buffered.write_all_at(data, self.pos)?;
                self.pos += data.len() as u64;
                return Ok(());
            }
            let misaligned = (self.pos % ALIGN as u64) as usize;
            if self.len == 0 && misaligned != 0 {
                // Up to the next block boundary, the ordinary way.
                let k = (ALIGN - misaligned).min(data.len());
                self.buffered.write_all_at(&data[..k], self.pos)?;
                self.pos += k as u64;
                data = &data[k..];
                continue;
            }
            let k = (STAGE - self.len).min(data.len());
            let at = self.start + self.len;
            self.stage[at..at + k].copy_from_slice(&data[..k]);
            self.len += k;
            data = &data[k..];
            if self.len == STAGE {
                self.submit(STAGE)?;
            }
        }
        Ok(())
    }

    /// Hand the first `n` staged bytes (a multiple of `ALIGN`) to the I/O
    /// thread; the rest moves to the front of a free buffer.
    fn submit(&mut self, n: usize) -> io::Result<()> {
        let Some(io) = self.io.as_mut() else {
            return Ok(());
        };
        let (start, len, pos) = (self.start, self.len, self.pos);
        let full = std::mem::take(&mut self.stage);
        let rest = full[start + n..start + len].to_vec(); // under ALIGN bytes
        self.len = 0;
        let mut next = match io.submit((full, start, n, pos)) {
            Ok(b) => b,
            Err(e) => {
                self.io = None; // broken: nothing more is staged
                return Err(e);
            }
        };
        let s = next.as_ptr().align_offset(ALIGN);
        next[s..s + rest.len()].copy_from_slice(&rest);
        self.stage = next;
        self.start = s;
        self.len = rest.len();
        self.pos += n as u64;
        Ok(())
    }

    /// Write everything staged and wait for it; the writer may be used on
    /// afterwards.
    pub fn finish(&mut self) -> io::Result<()> {
        let whole = self.len - self.len % ALIGN;
        if whole > 0 {
            self.submit(whole)?;
        }
        if let Some(io) = self.io.as_mut() {
            io.wait()?;
        }
        if self.len > 0 {
            let tail = &self.stage[self.start..self.start + self.len];
            self.buffered.write_all_at(tail, self.pos)?;
            self.pos += self.len as u64;
            self.len = 0;
        }
        Ok(())
    }

    /// The ordinary file handle (for `sync_all`, `try_clone`).
    pub fn file(&self) -> &File {
        &self.buffered
    }
}

/// A staging buffer and the aligned start in it.
fn fresh() -> (Vec<u8>, usize) {
    let stage = vec![0u8; STAGE + ALIGN];
    let start = stage.as_ptr().align_offset(ALIGN);
    (stage, start)
}

impl Drop for SeqWriter {
    fn drop(&mut self) {
        // What was handed over reaches the file even on an early end (an
        // interrupted upload resumes from the file's length).
        let _ = self.finish();
    }
}

/// Reads a file front to back in large blocks, around the page cache where
/// the file system allows (`O_DIRECT` straight into the buffer that is then
/// handed on, so the bytes are not copied out of the page cache first; on
/// the measured VM that copy was 43 % of the hub's samples while serving a
/// download). Elsewhere it reads the ordinary way.
///
/// Opened with [`SeqReader::open_cache_first`], it first asks the page
/// cache (`preadv2` with `RWF_NOWAIT`, which never waits for the device),
/// block by block, until a block is not there whole; from then on it reads
/// around the cache. A file someone just wrote (a scan, an export) is then
/// copied from memory instead of read again from a device the other end of
/// the transfer may be writing to.
pub struct SeqReader {
    direct: Option<File>,
    buffered: File,
    pos: u64,
    cache_first: bool,
    from_cache: u64,
}

impl std::fmt::Debug for SeqReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeqReader")
            .field("pos", &self.pos)
            .field("direct", &self.direct.is_some())
            .field("cache_first", &self.cache_first)
            .field("from_cache", &self.from_cache)
            .finish()
    }
}

impl SeqReader {
    /// Open `path` to read from `offset` on.
    pub fn open(path: &Path, offset: u64) -> io::Result<SeqReader> {
        let buffered = File::open(path)?;
        let direct = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECT)
            .open(path)
            .ok();
        Ok(SeqReader {
            direct,
            buffered,
            pos: offset,
            cache_first: false,
            from_cache: 0,
        })
    }

    /// Open `path` to read from `offset` on, from the page cache where it
    /// holds a whole block and around it elsewhere. For files that were
    /// likely written recently on this machine (what a sender uploads); not
    /// for the hub's payloads, which it wrote around the cache.
    pub fn open_cache_first(path: &Path, offset: u64) -> io::Result<SeqReader> {
        let mut r = SeqReader::open(path, offset)?;
        r.cache_first = r.direct.is_some();
        Ok(r)
    }

    /// Bytes handed out so far that came from the page cache.
    pub fn from_cache(&self) -> u64 {
        self.from_cache
    }

    /// The next up to `len` bytes (fewer only at the end of the file; none
    /// after it), in a buffer of their own: the buffer and where the bytes
    /// are in it.
    pub fn next_chunk(&mut self, len: usize) -> io::Result<(Vec<u8>, std::ops::Range<usize>)> {
        if let Some(d) = &self.direct {
            let head = (self.pos % ALIGN as u64) as usize;
            let from = self.pos - head as u64;
            let want = (head + len).div_ceil(ALIGN) * ALIGN;
            let mut buf = vec![0u8; want + ALIGN];
            let start = buf.as_ptr().align_offset(ALIGN);
            let at = start + head;
            if self.cache_first {
                match cached(&self.buffered, &mut buf[at..at + len], self.pos) {
                    Cached::Whole(n) => {
                        self.pos += n as u64;
                        self.from_cache += n as u64;
                        return Ok((buf, at..at + n));
                    }
                    // Asking starts the kernel's read-ahead into the cache,
                    // which then competes with reading around it: past the
                    // first block the cache lacks, stop asking.
                    Cached::Partly | Cached::Unsupported => self.cache_first = false,
                }
            }
            match read_full_at(d, &mut buf[start..start + want], from) {
                Ok(got) => {
                    let n = got.saturating_sub(head).min(len);
                    self.pos += n as u64;
                    return Ok((buf, at..at + n));
                }
                // Refused here: the ordinary way from now on.
                Err(_) => self.direct = None,
            }
        }
        let mut buf = vec![0u8; len];
        let got = read_full_at(&self.buffered, &mut buf, self.pos)?;
        self.pos += got as u64;
        Ok((buf, 0..got))
    }
}

/// What the page cache held of a block.
enum Cached {
    /// All of it (or all up to the end of the file): this many bytes.
    Whole(usize),
    /// Less: read it around the cache.
    Partly,
    /// This kernel or file system cannot say: stop asking.
    Unsupported,
}

/// Fill `buf` from `offset` with what the page cache holds, without waiting
/// for the device (`RWF_NOWAIT`).
fn cached(f: &File, buf: &mut [u8], offset: u64) -> Cached {
    use rustix::io::{preadv2, Errno, ReadWriteFlags};
    let mut n = 0;
    while n < buf.len() {
        let mut slices = [io::IoSliceMut::new(&mut buf[n..])];
        match preadv2(f, &mut slices, offset + n as u64, ReadWriteFlags::NOWAIT) {
            Ok(0) => return Cached::Whole(n), // the end of the file
            Ok(k) => n += k,
            Err(Errno::AGAIN) => break,
            Err(Errno::INTR) => {}
            Err(Errno::OPNOTSUPP) | Err(Errno::NOSYS) | Err(Errno::INVAL) => return Cached::Unsupported,
            Err(_) => break, // the direct read will say what is wrong
        }
    }
    if n == buf.len() {
        Cached::Whole(n)
    } else {
        Cached::Partly
    }
}

/// Fill `buf` from `offset`, fewer bytes only at the end of the file.
fn read_full_at(f: &File, buf: &mut [u8], mut offset: u64) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read_at(&mut buf[n..], offset) {
            Ok(0) => break,
            Ok(k) => {
                n += k;
                offset += k as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(n: usize, seed: u8) -> Vec<u8> {
        (0..n).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect()
    }

    #[test]
    fn any_split_and_offset_gives_the_same_file() {
        let dir = tempfile::tempdir().unwrap();
        let want = pattern(STAGE * 2 + 12_345, 7);
        for (start, pieces) in [
            (0usize, vec![1usize, 4095, 4096, 5_000_000]),
            (5_001, vec![3 << 20, 777]),
        ] {
            let path = dir.path().join(format!("f{start}"));
            std::fs::write(&path, &want[..start]).unwrap();
            let f = OpenOptions::new().write(true).open(&path).unwrap();
            let mut w = SeqWriter::new(f, &path, start as u64);
            let mut at = start;
            let mut i = 0;
            while at < want.len() {
                let n = pieces[i % pieces.len()].min(want.len() - at);
                w.write(&want[at..at + n]).unwrap();
                at += n;
                i += 1;
            }
            w.finish().unwrap();
            w.file().sync_all().unwrap();
            drop(w);
            assert!(std::fs::read(&path).unwrap() == want, "start {start}");
        }
    }

    #[test]
    fn reading_from_any_offset_in_any_chunk_size_gives_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r");
        let want = pattern(STAGE + 10_007, 5);
        std::fs::write(&path, &want).unwrap();
        for (offset, len) in [(0usize, STAGE), (1, 4096), (4095, STAGE), (12_345, 1_000_000)] {
            let mut r = SeqReader::open(&path, offset as u64).unwrap();
            let mut got = Vec::new();
            loop {
                let (buf, range) = r.next_chunk(len).unwrap();
                if range.is_empty() {
                    break;
                }
                assert!(range.len() <= len);
                got.extend_from_slice(&buf[range]);
            }
            assert!(got == want[offset..], "offset {offset}, len {len}");
        }
    }

    fn read_all(r: &mut SeqReader, len: usize) -> Vec<u8> {
        let mut got = Vec::new();
        loop {
            let (buf, range) = r.next_chunk(len).unwrap();
            if range.is_empty() {
                return got;
            }
            assert!(range.len() <= len);
            got.extend_from_slice(&buf[range]);
        }
    }

    /// Drop `path`'s pages from the page cache (they are clean once synced).
    fn evict(path: &Path, offset: u64, len: u64) {
        let f = File::open(path).unwrap();
        f.sync_all().unwrap();
        let len = std::num::NonZeroU64::new(len);
        rustix::fs::fadvise(&f, offset, len, rustix::fs::Advice::DontNeed).unwrap();
    }

    /// Read `path` from `offset` into the page cache until the cache holds
    /// all of it, asked the way the reader asks (a busy machine may reclaim
    /// pages at once); false if it never does.
    fn cache_from(path: &Path, offset: usize) -> bool {
        let f = File::open(path).unwrap();
        let len = f.metadata().unwrap().len() as usize - offset;
        let mut buf = vec![0u8; len];
        (0..20).any(|_| {
            read_full_at(&f, &mut buf, offset as u64).unwrap();
            matches!(cached(&f, &mut buf, offset as u64), Cached::Whole(n) if n == len)
        })
    }

    #[test]
    fn cache_first_gives_the_file_from_the_cache_around_it_and_both() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c");
        let want = pattern(2 * STAGE + 4_321, 9);
        std::fs::write(&path, &want).unwrap();
        // Where O_DIRECT works the file system has a page cache of its own
        // to ask and to evict from; elsewhere (tmpfs) everything is read the
        // ordinary way and only the bytes are checked.
        let direct = SeqReader::open_cache_first(&path, 0).unwrap().cache_first;
        for (offset, len) in [(0usize, STAGE), (4_097, STAGE), (STAGE + 1, 65_536)] {
            // All in the cache (as just written): all of it from there.
            let cached = cache_from(&path, offset);
            let mut r = SeqReader::open_cache_first(&path, offset as u64).unwrap();
            assert!(
                read_all(&mut r, len) == want[offset..],
                "cached, offset {offset}, len {len}"
            );
            if direct && cached {
                assert_eq!(r.from_cache(), (want.len() - offset) as u64, "offset {offset}");
            } else if direct {
                eprintln!(
                    "NOT CHECKED: the page cache would not keep {} (offset {offset})",
                    path.display()
                );
            }
            // None of it cached: all of it around the cache.
            evict(&path, 0, want.len() as u64);
            let mut r = SeqReader::open_cache_first(&path, offset as u64).unwrap();
            assert!(
                read_all(&mut r, len) == want[offset..],
                "evicted, offset {offset}, len {len}"
            );
            if direct {
                assert_eq!(r.from_cache(), 0, "offset {offset}");
            }
        }
        // The first block cached, the rest not: both ways in one read.
        let cached = cache_from(&path, 0);
        evict(&path, STAGE as u64, (want.len() - STAGE) as u64);
        let mut r = SeqReader::open_cache_first(&path, 0).unwrap();
        assert!(read_all(&mut r, STAGE) == want, "half cached");
        if direct && cached {
            // The first block from the cache; the kernel's read-ahead (up to
            // the device's read_ahead_kb) may have brought the rest back
            // meanwhile, so more may come from there too.
            assert!(r.from_cache() >= STAGE as u64, "{} from the cache", r.from_cache());
        }
    }

    #[test]
    fn dropping_writes_what_was_staged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let f = File::create(&path).unwrap();
        let want = pattern(10_000, 3);
        let mut w = SeqWriter::new(f, &path, 0);
        w.write(&want).unwrap();
        drop(w);
        assert_eq!(std::fs::read(&path).unwrap(), want);
    }
}
