//! `truc-chaos`: crash-consistency under load, against the real `trucd`.
//!
//! Starts `trucd` (the binary next to this one, or `--trucd PATH`) on a free
//! port over a data directory that persists across restarts, with a short
//! delivery lease. Then, `--cycles` times: many senders and receivers run
//! against it; at a random moment the latest signed tree head is taken and
//! the hub is killed with SIGKILL; it is restarted; and, with no client
//! connected, the run checks that
//!
//! * the new signed tree head is consistent (RFC 9162 proof) with the head
//!   taken before the kill and with the largest head handed out in a Send
//!   receipt during the cycle;
//! * every accepted (document, recipient) pair that no Ack ever named is
//!   still in its recipient's outbox, under the hub document id the sender
//!   was given (else it is **lost**), and nothing waiting was never sent;
//!
//! while the receivers check each delivery as it arrives: the signature
//! verifies, the document was sent by the run to that recipient (else a
//! **phantom**), and no pair comes back leased after an Ack naming it
//! returned OK (**dup_after_ack**).
//!
//! After the last cycle: sends that never returned OK are sent again (same
//! bytes: the hub's idempotency key settles them), every recipient is
//! drained (`follow = false`), every accepted pair must have been delivered
//! at least once, and the whole receipt log is exported and verified with
//! `PKI/hub/receipts.pub` alone: complete, every receipt included in one
//! signed head consistent with every head seen before, every ACCEPTED
//! receipt handed to a sender present byte for byte at its index, a
//! DELIVERED receipt for every acknowledged pair. Last, the hub is stopped
//! with SIGTERM and must exit cleanly.
//!
//! Deliveries of an acceptance that did not survive a kill (the Send had
//! not returned OK; the retried Send got another hub document id) are
//! allowed by at-least-once delivery and are listed as `STALE`, not failures.
//!
//! The last line is the summary,
//! `cycles=N accepted=X lost=0 dup_after_ack=0 log=ok phantoms=0`;
//! the exit status is 0 only when all of them are as shown.
//!
//! With `--topology cluster` the store is replicated: a 3-node NATS
//! JetStream cluster (R3, separate ports and data directories, mTLS with the
//! run's PKI) and two `trucd` on it. Each cycle runs the load against one
//! hub, SIGKILLs a NATS node (in turn) halfway to the kill moment and then
//! that hub, and checks everything above through the *other* hub (the
//! clients move there); the killed node and hub are restarted and the next
//! cycle loads the other hub. Errors while the cluster elects new leaders
//! are expected; losses, duplicates after an ack and log inconsistencies
//! across the hand-over of the write lease are not.
//!
//! ```sh
//! cargo build --release -p truc -p truc-chaos
//! target/release/truc-chaos --cycles 50
//! target/release/truc-chaos --cycles 50 --seed 1234   # replay the kill moments
//! target/release/truc-chaos --topology cluster --cycles 20   # needs nats-server
//! ```
#![forbid(unsafe_code)]

mod checks;
mod cluster;
mod federation;
mod ledger;
mod load;
mod rng;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Parser, ValueEnum};
use truc_client::audit;
use truc_client::Client;
use truc_core::tree_head::TreeHeadVerifier;
use truc_core::{AgencyCode, Principal};
use truc_launch::Trucd;
use truc_pki::{Identity, IssueOptions, Pki};

use crate::checks::{check_log, check_queues_now};
use crate::ledger::{Counters, DocKey};
use crate::load::{Agency, Ctx, Load, LoadOpts};
use crate::rng::Rng;

/// SIGKILL a real trucd under concurrent senders and receivers, restart it,
/// and check that nothing accepted is lost, nothing acknowledged comes
/// back, nothing unsent appears, and the receipt log stays consistent.
/// `--topology`: one hub, a cluster, or three federated hubs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Topology {
    /// One trucd on sled, killed and restarted.
    Single,
    /// A 3-node NATS JetStream cluster (R3) on loopback and two trucd on
    /// the JetStream store; each cycle runs the load against one hub,
    /// SIGKILLs a NATS node halfway and then that hub, checks everything
    /// through the other hub, and restarts both (the next cycle uses the
    /// other).
    Cluster,
    /// Three federated hubs, each with a CA of its own: a province hub
    /// (h49), the national hub and a ministry hub (g12); senders at h49 and
    /// g12 send to agencies on the other hubs, so every document is
    /// relayed; the national hub (the middle one) is SIGKILLed and
    /// restarted every cycle.
    Federation,
}

#[derive(Debug, Parser)]
#[command(name = "truc-chaos", version)]
pub(crate) struct Args {
    /// SIGKILL/restart cycles.
    #[arg(long, default_value_t = 5)]
    pub(crate) cycles: u32,
    /// Sending agencies.
    #[arg(long, default_value_t = 6)]
    pub(crate) senders: usize,
    /// Receiving agencies (each with one following Receive stream).
    #[arg(long, default_value_t = 6)]
    pub(crate) receivers: usize,
    /// Sends in flight per sender.
    #[arg(long, default_value_t = 4)]
    pub(crate) window: usize,
    /// Most recipients per document (1..=this, at random).
    #[arg(long, default_value_t = 3)]
    pub(crate) fanout: usize,
    /// Receive credit per receiver.
    #[arg(long, default_value_t = 32)]
    pub(crate) credit: u32,
    /// Percent of first deliveries left unacknowledged, so that their lease
    /// runs out and they are delivered again.
    #[arg(long, default_value_t = 3)]
    pub(crate) skip_ack_percent: u32,
    /// Shortest time under load before a kill, ms.
    #[arg(long, default_value_t = 200)]
    pub(crate) min_kill_ms: u64,
    /// Longest time under load before a kill, ms.
    #[arg(long, default_value_t = 1500)]
    pub(crate) max_kill_ms: u64,
    /// The hub's delivery lease (TRUC_DELIVERY_LEASE_MS), ms.
    #[arg(long, default_value_t = 1000)]
    pub(crate) lease_ms: u64,
    /// Payload size range, bytes.
    #[arg(long, default_value_t = 64)]
    pub(crate) min_payload: usize,
    #[arg(long, default_value_t = 2048)]
    pub(crate) max_payload: usize,
    /// Seed of the kill moments, recipients, payloads and skipped acks
    /// (default: from the clock; printed).
    #[arg(long)]
    pub(crate) seed: Option<u64>,
    /// What is killed and restarted.
    #[arg(long, value_enum, default_value_t = Topology::Single)]
    pub(crate) topology: Topology,
    /// The nats-server binary for `--topology cluster` (default:
    /// $TRUC_NATS_SERVER, Python's scripts directory, or PATH).
    #[arg(long)]
    pub(crate) nats_server: Option<PathBuf>,
    /// The engine of trucd's store (`store.engine`: sled or fjall; default:
    /// trucd's own).
    #[arg(long, value_parser = ["sled", "fjall"])]
    pub(crate) engine: Option<String>,
    /// The trucd binary (default: `trucd` next to this program).
    #[arg(long)]
    pub(crate) trucd: Option<PathBuf>,
    /// Keep the PKI, the data directory and trucd's log in DIR (created;
    /// must be empty). Without it they go to a temporary directory, kept
    /// only when the run fails.
    #[arg(long, value_name = "DIR")]
    pub(crate) keep: Option<PathBuf>,
}

/// Where the run's files are.
struct Files {
    root: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

fn main() {
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("truc-chaos: cannot start the runtime: {e}");
            std::process::exit(2);
        }
    };
    std::process::exit(rt.block_on(run(args)));
}

async fn run(args: Args) -> i32 {
    let started = Instant::now();
    let seed = args.seed.unwrap_or_else(rng::seed_from_time);
    let files = match files(&args) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("truc-chaos: {e:#}");
            return 2;
        }
    };
    println!(
        "truc-chaos: seed={seed} cycles={} senders={} receivers={} window={} lease_ms={} kill after {}..={} ms; \
         files in {}",
        args.cycles,
        args.senders,
        args.receivers,
        args.window,
        args.lease_ms,
        args.min_kill_ms,
        args.max_kill_ms,
        files.root.display()
    );
    let mut state = RunState::default();
    let result = match args.topology {
        Topology::Federation => federation::run(&args, seed, &files.root, &mut state).await,
        _ => chaos(&args, seed, &files.root, &mut state).await,
    };
    let code = match &result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("truc-chaos: {e:#}");
            2
        }
    };
    let Some(ctx) = state.ctx.as_ref() else {
        println!("cycles=0 accepted=0 lost=0 dup_after_ack=0 log=error phantoms=0");
        keep_on_failure(files);
        return 2;
    };
    let l = ctx.ledger();
    let log = if result.is_err() && !state.log_checked {
        "error"
    } else if l.log_failures.count == 0 {
        "ok"
    } else {
        "FAIL"
    };
    report_findings(&l);
    println!(
        "totals: {} documents attempted, {} accepted ({} pairs), {} unresolved; {} deliveries ({} redelivered, {} \
         stale, {} after an ack in a lease race); {} acked; {} skipped acks; {} dead letters; {} unexpected errors; \
         {:.1} s; replay with --seed {seed}",
        l.c.attempted,
        l.accepted_docs(),
        l.accepted_pairs(),
        l.unresolved().len(),
        l.c.deliveries,
        l.c.redeliveries,
        l.stale.count,
        l.c.late,
        l.c.acked,
        l.c.skipped_acks,
        l.dead_letters,
        l.c.unexpected_errors,
        started.elapsed().as_secs_f64()
    );
    if args.topology == Topology::Federation {
        // The issue's line, as it states it; phantoms (second copies
        // included) on the line before.
        println!("phantoms={}", l.phantoms.count);
        println!(
            "cycles={} accepted={} lost={} dup_after_ack={} log={log}",
            state.cycles,
            l.accepted_docs(),
            l.lost(),
            l.dup_after_ack.count
        );
    } else {
        println!(
            "cycles={} accepted={} lost={} dup_after_ack={} log={log} phantoms={}",
            state.cycles,
            l.accepted_docs(),
            l.lost(),
            l.dup_after_ack.count,
            l.phantoms.count
        );
    }
    let failed = code != 0
        || l.lost() > 0
        || l.dup_after_ack.count > 0
        || l.phantoms.count > 0
        || l.log_failures.count > 0
        || l.dead_letters > 0
        || !l.unresolved().is_empty();
    drop(l);
    if failed {
        keep_on_failure(files);
        return if code != 0 { code } else { 1 };
    }
    0
}

fn keep_on_failure(files: Files) {
    if let Some(t) = files._temp {
        let path = t.keep();
        eprintln!("truc-chaos: kept {} for inspection", path.display());
    }
}

fn report_findings(l: &ledger::Ledger) {
    for m in l.lost_messages() {
        println!("LOST: {m}");
    }
    for m in &l.dup_after_ack.first {
        println!("DUP AFTER ACK: {m}");
    }
    for m in &l.phantoms.first {
        println!("PHANTOM: {m}");
    }
    for m in &l.log_failures.first {
        println!("LOG: {m}");
    }
    for m in &l.stale.first {
        println!("STALE (allowed: the Send had not returned OK): {m}");
    }
    for m in &l.errors {
        eprintln!("warning: unexpected error while the hub was up: {m}");
    }
}

fn files(args: &Args) -> anyhow::Result<Files> {
    match &args.keep {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            if std::fs::read_dir(dir)?.next().is_some() {
                bail!("--keep {}: the directory is not empty", dir.display());
            }
            Ok(Files {
                root: std::path::absolute(dir)?,
                _temp: None,
            })
        }
        None => {
            let t = tempfile::Builder::new().prefix("truc-chaos.").tempdir()?;
            Ok(Files {
                root: t.path().to_path_buf(),
                _temp: Some(t),
            })
        }
    }
}

/// What the summary needs even when the run stops early.
#[derive(Default)]
pub(crate) struct RunState {
    pub(crate) ctx: Option<Arc<Ctx>>,
    pub(crate) cycles: u32,
    pub(crate) log_checked: bool,
}

pub(crate) fn trucd_path(args: &Args) -> anyhow::Result<PathBuf> {
    let path = match &args.trucd {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("this program's directory")?
            .join("trucd"),
    };
    if !path.is_file() {
        bail!(
            "no trucd at {} (build it: cargo build --release -p truc -p truc-chaos; or pass --trucd PATH)",
            path.display()
        );
    }
    Ok(path)
}

fn agency_principal(code: &str) -> anyhow::Result<Principal> {
    Ok(Principal::Agency(AgencyCode::parse(code)?))
}

/// The CA, the agencies, an operator and an auditor.
fn make_pki(dir: &Path, senders: &[String], receivers: &[String]) -> anyhow::Result<(Vec<Agency>, Vec<Agency>)> {
    let pki = Pki::init(dir, "chaos", &[])?;
    let s = issue_agencies(&pki, senders, true, 0)?;
    let r = issue_agencies(&pki, receivers, false, 0)?;
    issue_people(&pki, &["urn:truc:operator:chaos", "urn:truc:auditor:chaos"])?;
    Ok((s, r))
}

/// The agencies `codes` of hub `hub`, issued by `pki`; with a document
/// signer when they `sign`.
pub(crate) fn issue_agencies(pki: &Pki, codes: &[String], sign: bool, hub: usize) -> anyhow::Result<Vec<Agency>> {
    codes
        .iter()
        .map(|code| {
            let p = agency_principal(code)?;
            let dir = pki.issue(&p, &format!("Chaos {code}"), &IssueOptions::default())?;
            let identity = Identity::load(&dir)?;
            let signer = if sign { Some(identity.signer()?) } else { None };
            Ok(Agency {
                code: code.clone(),
                dir,
                identity,
                signer,
                hub,
            })
        })
        .collect()
}

/// Operators and auditors (`urn:truc:…` URIs), issued by `pki`.
pub(crate) fn issue_people(pki: &Pki, uris: &[&str]) -> anyhow::Result<()> {
    for uri in uris {
        let p = Principal::parse_uri(uri)?;
        pki.issue(&p, uri, &IssueOptions::default())?;
    }
    Ok(())
}

/// The check of the flags every topology shares.
pub(crate) fn check_args(args: &Args) -> anyhow::Result<()> {
    if args.senders == 0 || args.receivers == 0 || args.window == 0 || args.fanout == 0 {
        bail!("--senders, --receivers, --window and --fanout must be at least 1");
    }
    if args.min_kill_ms > args.max_kill_ms || args.min_payload > args.max_payload {
        bail!("--min-kill-ms/--min-payload must not exceed their maximum");
    }
    Ok(())
}

/// The load's options from the flags.
pub(crate) fn load_opts(args: &Args, remote_only: bool) -> LoadOpts {
    LoadOpts {
        window: args.window,
        credit: args.credit,
        fanout: args.fanout,
        skip_ack_percent: args.skip_ack_percent,
        lease_ms: args.lease_ms as i64,
        min_payload: args.min_payload.max(1),
        max_payload: args.max_payload.max(1),
        remote_only,
    }
}

/// Every hub's settings: a short lease (unacknowledged copies come back
/// within a cycle), and attempts without end (every unacknowledged copy
/// comes back after each kill; none may be dead-lettered for it in a long
/// run).
pub(crate) fn hub_env(args: &Args) -> Vec<(String, String)> {
    let mut env = vec![
        ("TRUC_DELIVERY_LEASE_MS".to_string(), args.lease_ms.to_string()),
        ("TRUC_DELIVERY_MAX_ATTEMPTS".to_string(), "1000000".to_string()),
        ("TRUC_LOG_LEVEL".to_string(), "warn".to_string()),
    ];
    if let Some(e) = &args.engine {
        env.push(("TRUC_STORE_ENGINE".to_string(), e.clone()));
    }
    env
}

async fn chaos(args: &Args, seed: u64, root: &Path, st: &mut RunState) -> anyhow::Result<()> {
    check_args(args)?;
    let trucd = trucd_path(args)?;
    let mut rng = Rng::new(seed);
    let pki_dir = root.join("pki");
    let sender_codes = truc_load::agency_codes('S', args.senders);
    let receiver_codes = truc_load::agency_codes('R', args.receivers);
    let (senders, receivers) = make_pki(&pki_dir, &sender_codes, &receiver_codes)?;
    let operator_dir = pki_dir.join("operators/chaos");
    let auditor_dir = pki_dir.join("auditors/chaos");
    let pub_path = pki_dir.join("hub/receipts.pub");
    let verifier = TreeHeadVerifier::from_pem(
        &std::fs::read_to_string(&pub_path).with_context(|| format!("reading {}", pub_path.display()))?,
    )?;
    let trust = truc_client::axis_trust(&senders[0].identity)?;
    let opts = load_opts(args, false);
    let ctx = Arc::new(Ctx::new(senders, receivers, vec![verifier.clone()], vec![trust], opts));
    st.ctx = Some(ctx.clone());

    let mut env = hub_env(args);
    let clustered = args.topology == Topology::Cluster;
    let mut nats = None;
    if clustered {
        let bin = cluster::find_server(args.nats_server.as_deref())?;
        let c = truc_launch::nats::NatsCluster::start(&bin, root, "truc-chaos", &pki_dir.join("hub"), false)?;
        println!("nats: 3-node JetStream cluster {} ({})", c.urls(), bin.display());
        env.extend([
            ("TRUC_STORE_BACKEND".to_string(), "jetstream".to_string()),
            ("TRUC_STORE_NATS_URLS".to_string(), c.urls()),
            ("TRUC_STORE_REPLICAS".to_string(), "3".to_string()),
            ("TRUC_STORE_LEASE_MS".to_string(), "2000".to_string()),
        ]);
        nats = Some(c);
    }
    let mut hubs = Vec::new();
    for (i, name) in ["data", "data-b"]
        .iter()
        .enumerate()
        .take(if clustered { 2 } else { 1 })
    {
        let log_path = root.join(if i == 0 {
            "trucd.log".to_string()
        } else {
            format!("trucd-{i}.log")
        });
        let mut hub = Trucd::new(&trucd, &pki_dir, &root.join(name), &log_path, "chaos").env(env.clone());
        let ready = hub.start().await?;
        println!(
            "hub: {} (pid {}) on {}, ready in {} ms; log {}",
            trucd.display(),
            hub.pid(),
            hub.addr(),
            ready.as_millis(),
            log_path.display()
        );
        hubs.push((hub, log_path));
    }
    // The hub the load runs against this cycle; the other (cluster) checks.
    let mut cur = 0;
    let operator = Client::connect_dir(&hubs[cur].0.addr(), &operator_dir).await?;
    for a in ctx.senders.iter().chain(ctx.receivers.iter()) {
        operator.add_agency(&a.code, &format!("Chaos {}", a.code)).await?;
    }
    let mut auditor = Client::connect_dir(&hubs[cur].0.addr(), &auditor_dir).await?;
    let mut head = audit::latest_head(&auditor, &verifier).await?;

    for cycle in 1..=args.cycles {
        let before = ctx.ledger().c;
        let load = Load::start(&ctx, &[hubs[cur].0.addr()], &mut rng).await?;
        let delay = rng.range(args.min_kill_ms, args.max_kill_ms);
        // Cluster: one NATS node dies halfway, under load.
        let victim = (cycle as usize - 1) % 3;
        if let Some(c) = nats.as_mut() {
            tokio::time::sleep(Duration::from_millis(delay / 2)).await;
            // Requests may fail while the cluster elects new leaders (a few
            // seconds); nothing acknowledged may be lost.
            ctx.set_up(0, false);
            c.nodes[victim].kill();
            tokio::time::sleep(Duration::from_millis(delay - delay / 2)).await;
        } else {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        // The latest signed tree head, proven to extend the one before.
        let mut pre = audit::check_consistency(&auditor, &verifier, &head).await;
        // Cluster: the store may still be electing leaders; wait (bounded).
        let until = Instant::now() + Duration::from_secs(30);
        while clustered && pre.is_err() && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(200)).await;
            pre = audit::check_consistency(&auditor, &verifier, &head).await;
        }
        let pre_kill = match pre {
            Ok(h) => Some(h),
            Err(e) => {
                ctx.ledger()
                    .log_failures
                    .add(format!("cycle {cycle}, before the kill: {e}"));
                None
            }
        };
        ctx.set_up(0, false);
        hubs[cur].0.kill().with_context(|| format!("cycle {cycle}"))?;
        load.stop(Duration::from_secs(20)).await;
        let send_head = ctx.ledger().take_send_head(0);
        let killed = cur;
        let restart = if clustered {
            // The survivor answers for everything now.
            cur = 1 - cur;
            Duration::ZERO
        } else {
            hubs[cur]
                .0
                .start()
                .await
                .with_context(|| format!("cycle {cycle}: restart"))?
        };
        ctx.set_up(0, true);
        st.cycles = cycle;

        let addr = hubs[cur].0.addr();
        auditor = Client::connect_dir(&addr, &auditor_dir).await?;
        let operator_now = Client::connect_dir(&addr, &operator_dir).await?;
        let pre_size = pre_kill.as_ref().map(|h| h.tree_size).unwrap_or(0);
        let send_size = send_head.as_ref().map(|h| h.tree_size).unwrap_or(0);
        let mut log_ok = true;
        for (what, h) in [
            ("the tree head taken before the kill", &pre_kill),
            ("the largest Send receipt head", &send_head),
        ] {
            let Some(h) = h else { continue };
            if let Err(e) = audit::check_consistency(&auditor, &verifier, h).await {
                log_ok = false;
                ctx.ledger().log_failures.add(format!(
                    "cycle {cycle} (seed {seed}, killed after {delay} ms): {what} (size {}) is not extended by the \
                     {} hub's: {e}",
                    h.tree_size,
                    if clustered { "surviving" } else { "restarted" }
                ));
            }
        }
        head = match audit::latest_head(&auditor, &verifier).await {
            Ok(h) => h,
            Err(e) => bail!("cycle {cycle}: the restarted hub's tree head: {e}"),
        };
        let (snapshot, newly_lost) = check_queues_now(
            &ctx,
            std::slice::from_ref(&operator_now),
            &format!("cycle {cycle} (seed {seed}, killed after {delay} ms)"),
        )
        .await?;
        let (now, lost, dups, phantoms) = ctx.ledger().tallies();
        let d: Counters = now - before;
        let what = match nats.as_ref() {
            Some(c) => format!(
                "{} SIGKILLed after {} ms, hub {} after {delay} ms; checked through hub {}",
                c.nodes[victim].name(),
                delay / 2,
                hubs[killed].0.addr(),
                addr
            ),
            None => format!("SIGKILL after {delay} ms"),
        };
        println!(
            "cycle {cycle}/{}: {what} (tree head {pre_size}, Send receipts up to {send_size}); \
             restart {} ms; sends +{} ok ({} failed, {} pending); deliveries +{} ({} redelivered), acked +{}; queued \
             {}; tree {} after restart; lost={lost}{} dup_after_ack={dups} phantoms={phantoms} log={}",
            args.cycles,
            restart.as_millis(),
            d.accepted,
            d.send_failures,
            ctx.pending(),
            d.deliveries,
            d.redeliveries,
            d.acked,
            snapshot.queued_total(),
            head.tree_size,
            if newly_lost > 0 {
                format!(" (+{newly_lost})")
            } else {
                String::new()
            },
            if log_ok { "ok" } else { "FAIL" }
        );
        // Cluster: bring the killed node and hub back for the next cycle.
        if let Some(c) = nats.as_mut() {
            c.nodes[victim].spawn()?;
            c.nodes[victim].wait_ready()?;
            hubs[killed]
                .0
                .start()
                .await
                .with_context(|| format!("cycle {cycle}: restarting hub {killed}"))?;
        }
    }
    let (hub, log_path) = &mut hubs[cur];
    let hub_addr = hub.addr();
    // The end: settle the unknown sends, drain, and check everything.
    let addrs = [hub_addr.clone()];
    let unresolved = load::resolve_pending(&ctx, &addrs).await?;
    let mut drained = 0;
    for _ in 0..5 {
        let n = load::drain(&ctx, &addrs).await?;
        drained += n;
        if n == 0 {
            break;
        }
    }
    let operator_now = Client::connect_dir(&hub_addr, &operator_dir).await?;
    let (snapshot, _) = check_queues_now(&ctx, std::slice::from_ref(&operator_now), "after the drain").await?;
    let left = snapshot.queued_total();
    {
        let label = |k: &DocKey| format!("{} {:?}", ctx.senders[k.0 as usize].code, ctx.document_id(k));
        ctx.ledger().final_check(&ctx.receiver_names, label);
    }
    let auditor_now = Client::connect_dir(&hub_addr, &auditor_dir).await?;
    let (size, receipts) = check_log(&ctx, (0, ""), &auditor_now, &verifier, &head).await;
    st.log_checked = true;
    let status = hub.terminate(Duration::from_secs(30));
    let log_path = log_path.clone();
    if !status.is_some_and(|s| s.success()) {
        ctx.ledger().log_failures.add(format!(
            "trucd did not stop cleanly on SIGTERM after the run: {status:?}; {} ends:\n{}",
            log_path.display(),
            truc_launch::tail(&log_path, 20)
        ));
    }
    println!(
        "final: {unresolved} sends unresolved; drained {drained} deliveries; {left} items left queued; log of {size} \
         receipts verified ({receipts} checked against what the clients were given)"
    );
    if left > 0 {
        ctx.ledger().error(format!("{left} items still queued after the drain"));
    }
    Ok(())
}
