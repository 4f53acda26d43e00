//! `sync-floor`: the latency a hub's commits could have on this disk if
//! everything but the disk cost nothing (issue 18, target 7).
//!
//! It does only what every commit of the embedded store must do, the way
//! the hub's writer does it: requests arrive at a steady rate; one writer
//! takes every request waiting, appends one record for them to a log file
//! zeroed ahead, `fdatasync`s it, writes a 4 KiB slot of a second file (the
//! signed-head file) and `fdatasync`s that, then answers them all (group
//! commit). No TLS, no signature, no database: each request's latency is
//! its wait for the disk. Run it in the same sitting as
//! `truc-bench --rate R` with `--rate 2R` (a Send and its ack are two
//! commits' worth of requests) to see how much of the hub's tail the disk
//! alone would give.
//!
//! ```text
//! sync-floor [--dir DIR] [--rate OPS_PER_S] [--duration S] [--bytes-per-op B] [--runs N]
//! ```
//!
//! Prints per run: `sync-floor: N requests at R/s: p50 … p99 … p99.9 … max
//! … ms; over 2 ms X %; disk stalls: syncs over 8 ms K, time past 2 ms T ms`.
#![forbid(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;

/// Flags of `sync-floor`.
#[derive(Debug, Parser)]
#[command(
    name = "sync-floor",
    about = "Group-commit latency on this disk with nothing but the two syncs (the floor of truc-bench --rate)",
    after_help = "Example, in the same sitting as `truc-bench --size 4096 --rate 600 --duration 25`:\n  \
                  sync-floor --rate 1200 --duration 25 --runs 3"
)]
struct Args {
    /// Where the two files go: the disk the hub's store is on (default: a
    /// fresh directory under the system's temporary directory, as
    /// truc-bench's hub uses).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Requests per second (a Send and its ack are two).
    #[arg(long, default_value_t = 1200.0)]
    rate: f64,
    /// Seconds per run.
    #[arg(long, default_value_t = 25.0)]
    duration: f64,
    /// Log bytes per request (the hub writes about 5.9 KB per 4 KiB
    /// document and a few hundred per ack).
    #[arg(long, default_value_t = 3072)]
    bytes_per_op: usize,
    /// Runs, one after the other.
    #[arg(long, default_value_t = 1)]
    runs: u32,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        args.rate > 0.0 && args.duration > 0.0,
        "--rate and --duration must be positive"
    );
    for _ in 0..args.runs {
        let tmp;
        let dir = match &args.dir {
            Some(d) => d.clone(),
            None => {
                tmp = tempfile::tempdir().context("cannot create a temporary directory")?;
                tmp.path().to_path_buf()
            }
        };
        let r = run(&args, &dir)?;
        println!("{r}");
    }
    Ok(())
}

/// One run's figures.
struct Report {
    rate: f64,
    latencies_ms: Vec<f64>,
    slow_syncs: usize,
    excess_ms: f64,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let l = &self.latencies_ms;
        let q = |p: f64| l[((p * l.len() as f64) as usize).min(l.len() - 1)];
        let over2 = l.iter().filter(|&&x| x > 2.0).count() as f64 / l.len() as f64 * 100.0;
        write!(
            f,
            "sync-floor: {} requests at {:.0}/s: p50 {:.2} p99 {:.2} p99.9 {:.2} max {:.2} ms; over 2 ms {:.2} %; \
             disk stalls: syncs over 8 ms {}, time past 2 ms {:.0} ms",
            l.len(),
            self.rate,
            q(0.5),
            q(0.99),
            q(0.999),
            l[l.len() - 1],
            over2,
            self.slow_syncs,
            self.excess_ms
        )
    }
}

/// Requests waiting for the writer: their arrival times, and whether the
/// arrivals are over.
struct Queue {
    waiting: Mutex<(Vec<Instant>, bool)>,
    ready: Condvar,
}

fn run(args: &Args, dir: &std::path::Path) -> anyhow::Result<Report> {
    let expected = (args.rate * args.duration) as usize + 1;
    // Zeroed ahead and synced, as the hub's zeroer leaves it: an append's
    // fdatasync then writes data only.
    let log_len = (expected * args.bytes_per_op + (64 << 20)) as u64;
    let log = open(&dir.join("sync-floor.log"))?;
    let zeros = vec![0u8; 1 << 20];
    let mut w = std::io::BufWriter::new(&log);
    for _ in 0..log_len.div_ceil(zeros.len() as u64) {
        w.write_all(&zeros).context("cannot zero the log file")?;
    }
    w.flush()?;
    drop(w);
    log.sync_all().context("cannot sync the log file")?;
    let head = open(&dir.join("sync-floor.head"))?;
    head.write_all_at(&[0u8; 8192], 0)?;
    head.sync_all()?;

    let queue = Arc::new(Queue {
        waiting: Mutex::new((Vec::new(), false)),
        ready: Condvar::new(),
    });
    let arrivals = {
        let queue = queue.clone();
        let period = Duration::from_secs_f64(1.0 / args.rate);
        let end = Duration::from_secs_f64(args.duration);
        std::thread::spawn(move || {
            let t0 = Instant::now();
            let mut i: u32 = 0;
            loop {
                let due = period * i;
                if due >= end {
                    break;
                }
                let now = t0.elapsed();
                if due > now {
                    std::thread::sleep(due - now);
                }
                queue.waiting.lock().expect("queue").0.push(Instant::now());
                queue.ready.notify_one();
                i += 1;
            }
            queue.waiting.lock().expect("queue").1 = true;
            queue.ready.notify_one();
        })
    };

    let mut latencies = Vec::with_capacity(expected);
    let mut slow_syncs = 0;
    let mut excess = 0.0;
    let mut offset = 0u64;
    let record = vec![0xA5u8; args.bytes_per_op];
    let mut body = Vec::new();
    let slot = [0x5Au8; 4096];
    let mut batches = 0u64;
    loop {
        let batch = {
            let mut g = queue.waiting.lock().expect("queue");
            while g.0.is_empty() && !g.1 {
                g = queue.ready.wait(g).expect("queue");
            }
            if g.0.is_empty() {
                break;
            }
            std::mem::take(&mut g.0)
        };
        body.clear();
        for _ in &batch {
            body.extend_from_slice(&record);
        }
        anyhow::ensure!(offset + body.len() as u64 <= log_len, "the zeroed log is too short");
        for (file, bytes, at) in [(&log, &body[..], offset), (&head, &slot[..], (batches % 2) * 4096)] {
            let s = Instant::now();
            file.write_all_at(bytes, at).context("write")?;
            file.sync_data().context("fdatasync")?;
            let ms = s.elapsed().as_secs_f64() * 1000.0;
            if ms > 8.0 {
                slow_syncs += 1;
            }
            if ms > 2.0 {
                excess += ms - 2.0;
            }
        }
        offset += body.len() as u64;
        batches += 1;
        let done = Instant::now();
        latencies.extend(batch.iter().map(|a| (done - *a).as_secs_f64() * 1000.0));
    }
    arrivals
        .join()
        .map_err(|_| anyhow::anyhow!("the arrival thread panicked"))?;
    latencies.sort_by(f64::total_cmp);
    anyhow::ensure!(!latencies.is_empty(), "no request was committed");
    Ok(Report {
        rate: args.rate,
        latencies_ms: latencies,
        slow_syncs,
        excess_ms: excess,
    })
}

fn open(path: &std::path::Path) -> anyhow::Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))
}
