//! The floor of a verified store-and-forward of one file on one machine:
//! exactly the work that cannot be avoided, in three processes, as the
//! hub's path has three.
//!
//! - **send --verified** (the sender): reads its file, hashes it (SHA-256)
//!   and sends it over mutual TLS to the relay, then the digest; it is done
//!   when the relay says the copy is stored (as `truc send` is done at the
//!   acceptance).
//! - **relay** (the hub's part): receives it, hashes it, writes it and
//!   fsyncs it; checks the digest; then, for the recipient's connection,
//!   reads it back and sends it over TLS, with the digest.
//! - **fetch** (the recipient): receives it, hashes it, writes it, fsyncs
//!   it, checks the digest.
//!
//! Each process hashes on a thread of its own, fed with the blocks it
//! moves, so hashing overlaps the network and the disk, as in the hub and
//! its clients. On the wire: the size (8 bytes, big-endian), the bytes, the
//! SHA-256 (32 bytes), then one byte back (`K`: stored and checked, `X`:
//! digest mismatch).
//!
//! `tls-copy --verified` runs the three and times the two legs, as
//! `large_document.sh --compare` times `truc send` then `truc inbox`.

use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use async_nats::rustls;

use crate::{dial, mib_s, server_config, BUF};

/// The relay's answer: stored and checked.
const STORED: u8 = b'K';
/// The relay's or the recipient's answer: the digest did not match.
const MISMATCH: u8 = b'X';

/// SHA-256 on a thread of its own, fed the blocks as they move.
struct Hasher {
    tx: Option<mpsc::SyncSender<Arc<Vec<u8>>>>,
    thread: Option<JoinHandle<[u8; 32]>>,
}

impl Hasher {
    fn start() -> Hasher {
        let (tx, rx) = mpsc::sync_channel::<Arc<Vec<u8>>>(4);
        let thread = std::thread::spawn(move || {
            let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
            for block in rx {
                ctx.update(&block);
            }
            let mut out = [0u8; 32];
            out.copy_from_slice(ctx.finish().as_ref());
            out
        });
        Hasher {
            tx: Some(tx),
            thread: Some(thread),
        }
    }

    fn update(&self, block: Arc<Vec<u8>>) -> anyhow::Result<()> {
        match &self.tx {
            Some(tx) => tx
                .send(block)
                .map_err(|_| anyhow::anyhow!("the hashing thread stopped")),
            None => bail!("internal: hasher finished"),
        }
    }

    fn finish(mut self) -> anyhow::Result<[u8; 32]> {
        drop(self.tx.take());
        match self.thread.take() {
            Some(t) => t.join().map_err(|_| anyhow::anyhow!("the hashing thread panicked")),
            None => bail!("internal: hasher finished"),
        }
    }
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where received bytes go: through the page cache, or whole blocks
/// around it (`--direct`, as the hub and `truc inbox` write).
enum Sink {
    Cached(File),
    Direct(File, truc_fileio::SeqWriter),
}

impl Sink {
    fn create(path: &Path, direct: bool) -> anyhow::Result<Sink> {
        let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        Ok(if direct {
            let w = truc_fileio::SeqWriter::new(file.try_clone()?, path, 0);
            Sink::Direct(file, w)
        } else {
            Sink::Cached(file)
        })
    }

    fn write(&mut self, block: &[u8]) -> anyhow::Result<()> {
        match self {
            Sink::Cached(f) => f.write_all(block)?,
            Sink::Direct(_, w) => w.write(block)?,
        }
        Ok(())
    }

    /// Everything written, then fsync.
    fn sync(self) -> anyhow::Result<()> {
        let file = match self {
            Sink::Cached(f) => f,
            Sink::Direct(f, mut w) => {
                w.finish()?;
                f
            }
        };
        file.sync_all()?;
        Ok(())
    }
}

/// Receive `size` bytes from `conn` into `sink`, hashing them; then the
/// sender's digest. Returns (bytes, whether the digests match, ours).
fn receive(conn: &mut impl Read, sink: &mut Sink) -> anyhow::Result<(u64, bool, [u8; 32])> {
    let mut len = [0u8; 8];
    conn.read_exact(&mut len).context("reading the size")?;
    let size = u64::from_be_bytes(len);
    let hasher = Hasher::start();
    let mut left = size;
    while left > 0 {
        let want = left.min(BUF as u64) as usize;
        let mut block = vec![0u8; want];
        conn.read_exact(&mut block).context("TLS read")?;
        left -= want as u64;
        let block = Arc::new(block);
        hasher.update(block.clone())?;
        sink.write(&block)?;
    }
    let mut theirs = [0u8; 32];
    conn.read_exact(&mut theirs).context("reading the digest")?;
    let ours = hasher.finish()?;
    Ok((size, ours == theirs, ours))
}

/// Receive a copy from `from` over `conn` into `path` ([`receive`]); if
/// its digest matches, fsync it and answer [`STORED`], else answer
/// [`MISMATCH`] and fail. Returns its size and digest.
fn keep(conn: &mut (impl Read + Write), path: &Path, direct: bool, from: &str) -> anyhow::Result<(u64, [u8; 32])> {
    let mut sink = Sink::create(path, direct)?;
    let (size, matches, digest) = receive(conn, &mut sink)?;
    if !matches {
        conn.write_all(&[MISMATCH])?;
        conn.flush()?;
        bail!("{from}'s digest differs from the {size} bytes received");
    }
    sink.sync()?;
    conn.write_all(&[STORED])?;
    conn.flush()?;
    Ok((size, digest))
}

/// The sender: `path` to the relay at `connect`, hashed on the way; done
/// when the relay has stored and checked it.
pub(crate) fn send(identity: &Path, connect: &str, path: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut tls = dial(identity, connect)?;
    let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let size = file.metadata()?.len();
    tls.write_all(&size.to_be_bytes())?;
    let hasher = Hasher::start();
    let mut total = 0u64;
    while total < size {
        let mut block = vec![0u8; (size - total).min(BUF as u64) as usize];
        file.read_exact(&mut block)?;
        total += block.len() as u64;
        let block = Arc::new(block);
        hasher.update(block.clone())?;
        tls.write_all(&block).context("TLS write")?;
    }
    let digest = hasher.finish()?;
    tls.write_all(&digest)?;
    tls.flush()?;
    let mut answer = [0u8; 1];
    tls.read_exact(&mut answer).context("waiting for the relay's answer")?;
    if answer[0] != STORED {
        bail!(
            "the relay refused the copy: its digest differs from ours ({})",
            hex(&digest)
        );
    }
    tls.conn.send_close_notify();
    let _ = tls.flush();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "sent {total} bytes in {secs:.3} s ({:.1} MiB/s), stored and checked by the relay; sha256 {}",
        mib_s(total, secs),
        hex(&digest)
    );
    Ok(())
}

/// The relay: one upload (stored durably, checked), then one download of
/// it.
pub(crate) fn relay(
    identity: &Path,
    listen: &str,
    port_file: Option<&Path>,
    store: &Path,
    direct: bool,
) -> anyhow::Result<()> {
    let cfg = Arc::new(server_config(identity)?);
    let listener = TcpListener::bind(listen).with_context(|| format!("binding {listen}"))?;
    crate::write_port(&listener, port_file)?;

    let (tcp, _) = listener.accept()?;
    let started = Instant::now();
    let mut tls = rustls::StreamOwned::new(rustls::ServerConnection::new(cfg.clone())?, tcp);
    let (size, digest) = keep(&mut tls, store, direct, "the sender")?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "stored {size} bytes in {secs:.3} s ({:.1} MiB/s): hashed, written, fsync'd, checked",
        mib_s(size, secs)
    );
    drop(tls);

    let (tcp, _) = listener.accept()?;
    let started = Instant::now();
    let mut tls = rustls::StreamOwned::new(rustls::ServerConnection::new(cfg)?, tcp);
    tls.write_all(&size.to_be_bytes())?;
    let mut sent = 0u64;
    if direct {
        let mut r = truc_fileio::SeqReader::open(store, 0)?;
        while sent < size {
            let (buf, range) = r.next_chunk(BUF)?;
            if range.is_empty() {
                bail!("{} ended at {sent} of {size} bytes", store.display());
            }
            sent += range.len() as u64;
            tls.write_all(&buf[range]).context("TLS write")?;
        }
    } else {
        let mut file = File::open(store)?;
        let mut buf = vec![0u8; BUF];
        while sent < size {
            let n = file.read(&mut buf)?;
            if n == 0 {
                bail!("{} ended at {sent} of {size} bytes", store.display());
            }
            sent += n as u64;
            tls.write_all(&buf[..n]).context("TLS write")?;
        }
    }
    tls.write_all(&digest)?;
    tls.flush()?;
    let mut answer = [0u8; 1];
    tls.read_exact(&mut answer)
        .context("waiting for the recipient's answer")?;
    if answer[0] != STORED {
        bail!("the recipient refused the copy: digest mismatch");
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "forwarded {sent} bytes in {secs:.3} s ({:.1} MiB/s): read back, sent, stored by the recipient",
        mib_s(sent, secs)
    );
    Ok(())
}

/// The recipient: fetch the file from the relay at `connect` into `out`,
/// hashed, written, fsync'd and checked.
pub(crate) fn fetch(identity: &Path, connect: &str, out: &Path, direct: bool) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut tls = dial(identity, connect)?;
    let (size, digest) = keep(&mut tls, out, direct, "the relay")?;
    tls.conn.send_close_notify();
    tls.flush()?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "received {size} bytes in {secs:.3} s ({:.1} MiB/s): hashed, written, fsync'd, checked; sha256 {}",
        mib_s(size, secs),
        hex(&digest)
    );
    Ok(())
}

/// What `tls-copy --verified` is told.
pub(crate) struct Plan {
    pub(crate) pki: PathBuf,
    pub(crate) from: String,
    pub(crate) to: String,
    pub(crate) work: PathBuf,
    pub(crate) direct: bool,
    pub(crate) file: PathBuf,
}

/// Run the relay, then the sender (the upload leg), then the recipient
/// (the download leg), each a process of this program; print the times.
pub(crate) fn run(plan: &Plan) -> anyhow::Result<()> {
    let me = std::env::current_exe()?;
    std::fs::create_dir_all(&plan.work)?;
    let port_file = plan.work.join("relay.port");
    let stored = plan.work.join("relay.bin");
    let received = plan.work.join("received.bin");
    let _ = std::fs::remove_file(&port_file);
    let direct: &[&str] = if plan.direct { &["--direct"] } else { &[] };
    let log = |name: &str| File::create(plan.work.join(name));
    let mut relay = Command::new(&me)
        .arg("relay")
        .arg("--identity")
        .arg(plan.pki.join("hub"))
        .args(["--listen", "127.0.0.1:0", "--port-file"])
        .arg(&port_file)
        .arg("--out")
        .arg(&stored)
        .args(direct)
        .stdin(Stdio::null())
        .stdout(log("relay.out")?)
        .stderr(log("relay.err")?)
        .spawn()
        .context("starting the relay")?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let port = loop {
        if let Ok(p) = std::fs::read_to_string(&port_file) {
            break p.trim().to_string();
        }
        if let Some(status) = relay.try_wait()? {
            bail!(
                "the relay exited with {status}: {}",
                crate::read(&plan.work.join("relay.err"))
            );
        }
        if Instant::now() > deadline {
            let _ = relay.kill();
            bail!("the relay did not listen within 10 s");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let addr = format!("127.0.0.1:{port}");
    let leg = |args: Vec<std::ffi::OsString>, name: &str| -> anyhow::Result<f64> {
        let t = Instant::now();
        let out = Command::new(&me).args(args).stdin(Stdio::null()).output()?;
        let secs = t.elapsed().as_secs_f64();
        std::fs::write(plan.work.join(format!("{name}.out")), &out.stdout)?;
        if !out.status.success() {
            bail!(
                "{name} exited with {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(secs)
    };
    let agency = |code: &str| plan.pki.join("agencies").join(code).into_os_string();
    let up = leg(
        vec![
            "send".into(),
            "--verified".into(),
            "--identity".into(),
            agency(&plan.from),
            "--connect".into(),
            addr.clone().into(),
            plan.file.clone().into_os_string(),
        ],
        "send",
    );
    let up = match up {
        Ok(s) => s,
        Err(e) => {
            let _ = relay.kill();
            return Err(e);
        }
    };
    let mut fetch_args: Vec<std::ffi::OsString> = vec![
        "fetch".into(),
        "--identity".into(),
        agency(&plan.to),
        "--connect".into(),
        addr.into(),
        "--out".into(),
        received.clone().into_os_string(),
    ];
    fetch_args.extend(direct.iter().map(|s| s.into()));
    let down = leg(fetch_args, "fetch");
    let status = relay.wait()?;
    let down = down?;
    if !status.success() {
        bail!(
            "the relay exited with {status}: {}",
            crate::read(&plan.work.join("relay.err"))
        );
    }
    let size = std::fs::metadata(&received)?.len();
    let _ = std::fs::remove_file(&stored);
    let _ = std::fs::remove_file(&received);
    let total = up + down;
    println!(
        "verified store-and-forward{}: {size} bytes in {total:.3} s ({:.1} MiB/s); upload {up:.3} s, download \
         {down:.3} s",
        if plan.direct { " (--direct)" } else { "" },
        mib_s(size, total)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(data: &[u8], digest: [u8; 32]) -> Vec<u8> {
        let mut wire = (data.len() as u64).to_be_bytes().to_vec();
        wire.extend_from_slice(data);
        wire.extend_from_slice(&digest);
        wire
    }

    #[test]
    fn a_copy_is_checked_against_the_senders_digest() {
        let dir = tempfile::tempdir().unwrap();
        // Over a block, so that several blocks are hashed in order.
        let data: Vec<u8> = (0..BUF + 12345).map(|i| (i % 253) as u8).collect();
        let right = truc_core::sha256(&data);
        for direct in [false, true] {
            let out = dir.path().join(format!("right-{direct}"));
            let mut sink = Sink::create(&out, direct).unwrap();
            let (size, matches, ours) = receive(&mut framed(&data, right).as_slice(), &mut sink).unwrap();
            sink.sync().unwrap();
            assert_eq!((size, matches, ours), (data.len() as u64, true, right));
            assert_eq!(std::fs::read(&out).unwrap(), data);
        }
        let mut wrong = right;
        wrong[0] ^= 1;
        let mut sink = Sink::create(&dir.path().join("wrong"), false).unwrap();
        let (_, matches, _) = receive(&mut framed(&data, wrong).as_slice(), &mut sink).unwrap();
        assert!(!matches);
        // A stream cut short is an error, not a copy.
        let mut sink = Sink::create(&dir.path().join("short"), false).unwrap();
        let wire = framed(&data, right);
        assert!(receive(&mut &wire[..wire.len() - 40], &mut sink).is_err());
    }
}
