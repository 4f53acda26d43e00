//! `--topology federation`: three real `trucd`, each with a CA of its own
//! ([`truc_launch::federation`]): a province hub h49, the national hub and a
//! ministry hub g12. Senders at h49 and g12 send only to agencies on the
//! other hubs (the national hub's and the other end's), so every document
//! is forwarded at least once, and receivers at each of the three hubs
//! verify every delivery against its origin hub's CA. Every cycle the
//! national hub (the middle one) is SIGKILLed under load and restarted on
//! its port while h49 and g12 go on accepting and queueing for it; then,
//! with no client connected, the national hub's log must extend the head
//! taken before the kill, each other hub's log the largest head handed out
//! in a Send receipt, and every relayed copy delivered and not acknowledged
//! must still wait in its recipient's outbox under the same acceptance.
//!
//! At the end, every receiver is drained at its hub until every accepted
//! (document, recipient) was delivered and nothing is left queued (the
//! forwarding tasks move the rest on by themselves) — given up only after
//! [`STALLED`] without a delivery — and until no log grows any more (peers
//! report deliveries back); then each hub's whole log is exported and verified with its
//! own `receipts.pub` (its senders' ACCEPTED receipts byte for byte, a
//! DELIVERED receipt for every acknowledgement of its receivers), and each
//! hub must stop cleanly on SIGTERM.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use truc_client::audit::{self, WatchState};
use truc_client::Client;
use truc_core::tree_head::TreeHeadVerifier;
use truc_launch::federation::{self as fed, Federation, G12, H49, HUBS, NATIONAL};
use truc_pki::{Identity, Pki};

use crate::checks::{check_log, check_queues_now, queues};
use crate::ledger::{Counters, DocKey};
use crate::load::{self, Agency, Ctx, Load};
use crate::rng::Rng;
use crate::{check_args, hub_env, issue_agencies, issue_people, load_opts, trucd_path, Args, RunState};

/// At the end, how long the drain may go on with no new delivery before
/// what is left counts as not delivered.
const STALLED: Duration = Duration::from_secs(60);
/// At the end, longest wait for every hub's log to stop growing (receipts
/// reported back by peers) before it is exported.
const QUIET: Duration = Duration::from_secs(60);

const AUDITOR: &str = "urn:truc:auditor:chaos";

/// `total` spread over `parts` (each at least 1).
fn spread(total: usize, parts: usize) -> Vec<usize> {
    (0..parts)
        .map(|i| (total / parts + usize::from(i < total % parts)).max(1))
        .collect()
}

/// The agencies of each hub: senders at h49 and g12, receivers at all
/// three (`--senders` and `--receivers` spread over them).
fn agencies(args: &Args, f: &Federation) -> anyhow::Result<(Vec<Agency>, Vec<Agency>)> {
    let (mut senders, mut receivers) = (Vec::new(), Vec::new());
    let s = spread(args.senders, 2);
    let r = spread(args.receivers, 3);
    for hub in [H49, NATIONAL, G12] {
        let pki = Pki::open(&f.pki[hub])?;
        let n = match hub {
            H49 => s[0],
            G12 => s[1],
            _ => 0,
        };
        senders.extend(issue_agencies(&pki, &fed::agency_codes(hub, 'S', n), true, hub)?);
        receivers.extend(issue_agencies(&pki, &fed::agency_codes(hub, 'R', r[hub]), false, hub)?);
        issue_people(&pki, &[AUDITOR])?;
    }
    Ok((senders, receivers))
}

/// One client per hub, as the identity `who` of that hub's PKI.
async fn clients(f: &Federation, who: &str) -> anyhow::Result<Vec<Client>> {
    let mut out = Vec::new();
    for (i, addr) in f.addrs().iter().enumerate() {
        out.push(Client::connect_dir(addr, &f.pki[i].join(who)).await?);
    }
    Ok(out)
}

pub(crate) async fn run(args: &Args, seed: u64, root: &Path, st: &mut RunState) -> anyhow::Result<()> {
    check_args(args)?;
    let trucd = trucd_path(args)?;
    let mut rng = Rng::new(seed);
    let mut f = Federation::prepare(&trucd, root, "chaos", &hub_env(args))?;
    let (senders, receivers) = agencies(args, &f)?;
    let mut verifiers = Vec::new();
    let mut trust = Vec::new();
    for pki in &f.pki {
        let pub_path = pki.join("hub/receipts.pub");
        let pem = std::fs::read_to_string(&pub_path).with_context(|| format!("reading {}", pub_path.display()))?;
        verifiers.push(TreeHeadVerifier::from_pem(&pem)?);
        trust.push(truc_client::axis_trust(&Identity::load(&pki.join("operators/chaos"))?)?);
    }
    let ctx = Arc::new(Ctx::new(senders, receivers, verifiers, trust, load_opts(args, true)));
    st.ctx = Some(ctx.clone());

    let took = f.start().await?;
    for (i, (id, _)) in HUBS.iter().enumerate() {
        println!(
            "hub {id}: {} (pid {}) on {}, ready in {} ms; log {}",
            trucd.display(),
            f.hubs[i].pid(),
            f.hubs[i].addr(),
            took[i].as_millis(),
            f.logs[i].display()
        );
    }
    let mut operators = clients(&f, "operators/chaos").await?;
    for a in ctx.senders.iter().chain(ctx.receivers.iter()) {
        operators[a.hub]
            .add_agency(&a.code, &format!("Chaos {}", a.code))
            .await?;
    }
    let mut auditors = clients(&f, "auditors/chaos").await?;
    let mut heads = Vec::new();
    for (i, a) in auditors.iter().enumerate() {
        heads.push(audit::latest_head(a, &ctx.verifiers[i]).await?);
    }

    for cycle in 1..=args.cycles {
        let before = ctx.ledger().c;
        let load = Load::start(&ctx, &f.addrs(), &mut rng).await?;
        let delay = rng.range(args.min_kill_ms, args.max_kill_ms);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        let pre_kill =
            match audit::check_consistency(&auditors[NATIONAL], &ctx.verifiers[NATIONAL], &heads[NATIONAL]).await {
                Ok(h) => Some(h),
                Err(e) => {
                    ctx.ledger()
                        .log_failures
                        .add(format!("cycle {cycle}, national before the kill: {e}"));
                    None
                }
            };
        ctx.set_up(NATIONAL, false);
        f.hubs[NATIONAL].kill().with_context(|| format!("cycle {cycle}"))?;
        // h49 and g12 go on accepting (and queueing for the national hub)
        // while it restarts.
        let restart = f.hubs[NATIONAL]
            .start()
            .await
            .with_context(|| format!("cycle {cycle}: restarting the national hub"))?;
        load.stop(Duration::from_secs(20)).await;
        ctx.set_up(NATIONAL, true);
        st.cycles = cycle;

        let addr = f.hubs[NATIONAL].addr();
        auditors[NATIONAL] = Client::connect_dir(&addr, &f.pki[NATIONAL].join("auditors/chaos")).await?;
        operators[NATIONAL] = Client::connect_dir(&addr, &f.pki[NATIONAL].join("operators/chaos")).await?;
        let when = format!("cycle {cycle} (seed {seed}, national killed after {delay} ms)");
        let mut log_ok = true;
        let mut checks: Vec<(usize, &str, Option<WatchState>)> =
            vec![(NATIONAL, "the tree head taken before the kill", pre_kill)];
        for hub in [H49, G12] {
            checks.push((hub, "the largest Send receipt head", ctx.ledger().take_send_head(hub)));
        }
        for (hub, what, h) in &checks {
            let Some(h) = h else { continue };
            if let Err(e) = audit::check_consistency(&auditors[*hub], &ctx.verifiers[*hub], h).await {
                log_ok = false;
                ctx.ledger().log_failures.add(format!(
                    "{when}: hub {}: {what} (size {}) is not extended by its log: {e}",
                    HUBS[*hub].0, h.tree_size
                ));
            }
        }
        heads[NATIONAL] = match audit::latest_head(&auditors[NATIONAL], &ctx.verifiers[NATIONAL]).await {
            Ok(h) => h,
            Err(e) => bail!("cycle {cycle}: the restarted national hub's tree head: {e}"),
        };
        let (snapshot, newly_lost) = check_queues_now(&ctx, &operators, &when).await?;
        let (now, lost, dups, phantoms) = ctx.ledger().tallies();
        let d: Counters = now - before;
        println!(
            "cycle {cycle}/{}: national SIGKILLed after {delay} ms (tree head {}), restarted in {} ms under load; \
             sends +{} ok ({} failed, {} pending); deliveries +{} ({} redelivered), acked +{}; queued {}; national \
             tree {} after restart; lost={lost}{} dup_after_ack={dups} phantoms={phantoms} log={}",
            args.cycles,
            checks[0].2.as_ref().map(|h| h.tree_size).unwrap_or(0),
            restart.as_millis(),
            d.accepted,
            d.send_failures,
            ctx.pending(),
            d.deliveries,
            d.redeliveries,
            d.acked,
            snapshot.queued_total(),
            heads[NATIONAL].tree_size,
            if newly_lost > 0 {
                format!(" (+{newly_lost})")
            } else {
                String::new()
            },
            if log_ok { "ok" } else { "FAIL" }
        );
    }

    let addrs = f.addrs();
    let unresolved = load::resolve_pending(&ctx, &addrs).await?;
    let (drained, left) = settle(&ctx, &addrs, &operators).await?;
    check_queues_now(&ctx, &operators, "after the drain").await?;
    {
        let label = |k: &DocKey| format!("{} {:?}", ctx.senders[k.0 as usize].code, ctx.document_id(k));
        ctx.ledger().final_check(&ctx.receiver_names, label);
    }
    for (hub, head) in quiet_logs(&auditors, &ctx.verifiers, &heads)
        .await
        .into_iter()
        .enumerate()
    {
        match head {
            Ok(h) => heads[hub] = h,
            Err(e) => ctx
                .ledger()
                .log_failures
                .add(format!("hub {}: at the end: {e}", HUBS[hub].0)),
        }
    }
    let mut sizes = Vec::new();
    let mut checked = 0;
    for (hub, (id, _)) in HUBS.iter().enumerate() {
        let what = format!("hub {id}: ");
        let (size, n) = check_log(&ctx, (hub, &what), &auditors[hub], &ctx.verifiers[hub], &heads[hub]).await;
        sizes.push(format!("{id} {size}"));
        checked += n;
    }
    st.log_checked = true;
    for (i, (id, _)) in HUBS.iter().enumerate() {
        let status = f.hubs[i].terminate(Duration::from_secs(30));
        if !status.is_some_and(|s| s.success()) {
            ctx.ledger().log_failures.add(format!(
                "hub {id} did not stop cleanly on SIGTERM after the run: {status:?}; {} ends:\n{}",
                f.logs[i].display(),
                truc_launch::tail(&f.logs[i], 20)
            ));
        }
    }
    println!(
        "final: {unresolved} sends unresolved; drained {drained} deliveries; {left} items left queued; logs of \
         {} receipts verified ({checked} checked against what the clients were given)",
        sizes.join(", ")
    );
    if left > 0 {
        ctx.ledger().error(format!("{left} items still queued after the drain"));
    }
    Ok(())
}

/// Drain every receiver at its hub until every accepted pair was delivered
/// and nothing waits in any receiver's outbox (forwarding runs on the hubs'
/// own tasks, and copies leased before the load stopped come back when
/// their lease runs out); given up after [`STALLED`] without a delivery.
/// Returns (deliveries drained, copies still queued).
async fn settle(ctx: &Arc<Ctx>, addrs: &[String], operators: &[Client]) -> anyhow::Result<(u64, usize)> {
    let mut last_progress = Instant::now();
    let mut drained = 0;
    loop {
        let n = load::drain(ctx, addrs).await?;
        drained += n;
        if n > 0 {
            last_progress = Instant::now();
        }
        let undelivered = ctx.ledger().undelivered();
        if undelivered == 0 {
            let left = queues(ctx, operators).await?.queued_total();
            if left == 0 {
                return Ok((drained, 0));
            }
        }
        if last_progress.elapsed() > STALLED {
            let left = queues(ctx, operators).await?.queued_total();
            ctx.ledger().error(format!(
                "no delivery for {} s with {undelivered} accepted pairs not delivered and {left} copies queued",
                STALLED.as_secs()
            ));
            return Ok((drained, left));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Each hub's latest signed head, proven to extend `heads`, once no log has
/// grown for a second (the peers' reports of the last deliveries
/// recorded), at most [`QUIET`].
async fn quiet_logs(
    auditors: &[Client],
    verifiers: &[TreeHeadVerifier],
    heads: &[WatchState],
) -> Vec<anyhow::Result<WatchState>> {
    let deadline = Instant::now() + QUIET;
    let mut last: Vec<u64> = Vec::new();
    let mut quiet_since = Instant::now();
    loop {
        let mut now = Vec::new();
        for ((a, v), h) in auditors.iter().zip(verifiers).zip(heads) {
            now.push(
                audit::check_consistency(a, v, h)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}")),
            );
        }
        let sizes: Vec<u64> = now
            .iter()
            .map(|h| h.as_ref().map(|h| h.tree_size).unwrap_or(0))
            .collect();
        if sizes != last {
            last = sizes;
            quiet_since = Instant::now();
        } else if quiet_since.elapsed() >= Duration::from_secs(1) || Instant::now() > deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
