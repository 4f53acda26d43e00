//! `--topology federation`: the throughput of a relay through the national
//! hub. Three fresh `trucd`, each with a CA of its own
//! ([`truc_launch::federation`]: province hub h49 → national hub →
//! ministry hub g12); `--agencies` senders at h49 send to as many
//! receivers at g12, so every document is verified and stored three times
//! and forwarded twice. Measured as for one hub (the same load generator,
//! warm-up and shape): documents per second from the first Send at h49 to
//! the last acknowledgement at g12, over as many documents as the relay
//! carries in `--duration` at the rate of its warm-up ([`measure`]). The acceptance → received latency is
//! taken from when the sender saw h49's acceptance (g12's own acceptance
//! time is not the origin's). The one-hub row of the same run carries the
//! same senders, receivers and load, and the last line is their ratio.

use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, Context};
use truc_launch::federation::{self as fed, Federation, G12, H49, HUBS, NATIONAL};
use truc_launch::procs;
use truc_load as load;

use crate::{spec, warmup, Args, Row};

/// The one-hub row of a federation run.
pub(crate) const ONE_HUB: &str = "truc, one hub (sled)";
/// The relay's row.
pub(crate) const RELAY: &str = "truc, relay h49 → national → g12 (3 hubs)";

/// How long the relay may take, after the senders stop, to deliver what
/// h49 accepted faster than it could forward: the measured time runs to the
/// last acknowledgement, so this only bounds a stuck relay.
const RELAY_DRAIN: Duration = Duration::from_secs(600);

/// Run `run`'s relay: start the three hubs in `dir/federation`, register
/// the senders at h49 and the receivers at g12, measure, stop.
pub(crate) async fn relay(
    args: &Args,
    run: usize,
    bin: &Path,
    env: &[(String, String)],
    dir: &Path,
) -> anyhow::Result<Row> {
    let root = dir.join("federation");
    std::fs::create_dir_all(&root)?;
    let mut f = Federation::prepare(bin, &root, "bench", env)?;
    let took = f.start().await?;
    for (i, (id, _)) in HUBS.iter().enumerate() {
        eprintln!(
            "truc-bench: run {run}: hub {id} on {} (ready in {} ms)",
            f.hubs[i].addr(),
            took[i].as_millis()
        );
    }
    let senders = fed::agency_codes(H49, 'S', args.agencies);
    let receivers = fed::agency_codes(G12, 'R', args.agencies);
    let addrs = f.addrs();
    load::prepare(&addrs[H49], &f.pki[H49], &senders)
        .await
        .context("registering the senders at h49")?;
    load::prepare(&addrs[G12], &f.pki[G12], &receivers)
        .await
        .context("registering the receivers at g12")?;
    let mut spec = spec(args, &addrs[H49], &f.pki[H49], (&senders, &receivers));
    spec.receive_at = Some((addrs[G12].clone(), f.pki[G12].clone()));
    spec.drain_timeout = RELAY_DRAIN;
    let report = measure(args, spec).await.context("the relay's load");
    for i in [H49, NATIONAL, G12] {
        let status = f.hubs[i].terminate(Duration::from_secs(60));
        if !status.is_some_and(|s| s.success()) {
            eprintln!(
                "truc-bench: hub {} did not stop cleanly ({status:?}); {} ends:\n{}",
                HUBS[i].0,
                f.logs[i].display(),
                truc_launch::tail(&f.logs[i], 20)
            );
        }
    }
    let mut report = report?;
    report.system = "truc relay".into();
    let store: u64 = HUBS.iter().map(|(id, _)| procs::du(&root.join(id).join("data"))).sum();
    if args.keep.is_none() {
        let _ = std::fs::remove_dir_all(&root);
    }
    Ok(Row {
        label: RELAY.into(),
        run,
        queued: 0,
        restart_seconds: None,
        stop_seconds: None,
        crash_restart_seconds: None,
        cpu_seconds_per_1000: None,
        rss_peak_mib: None,
        vm_hwm_mib: None,
        store_mib: Some(store as f64 / (1 << 20) as f64),
        cluster_cpu_seconds_per_1000: None,
        cluster_rss_peak_mib: None,
        ceiling: None,
        report,
    })
}

/// The relay's load. h49 accepts documents faster than it forwards them,
/// so a duration run would hand it far more than the relay can carry in
/// that time (the pool is sized for one hub's rate) and then wait for the
/// backlog: the warm-up's documents are sent first, uncounted, as a probe
/// of the relay's own rate end to end, then as many documents as that rate
/// carries in `--duration` seconds are measured, from the first Send to
/// the last acknowledgement.
async fn measure(args: &Args, mut spec: load::LoadSpec) -> anyhow::Result<load::LoadReport> {
    let mut probe = spec.clone();
    probe.stop = load::StopAt::Count(warmup(args));
    probe.warmup = Some(0);
    let p = load::run(&probe).await.context("the relay's warm-up")?;
    if !p.complete || p.errors > 0 {
        anyhow::bail!(
            "the relay's warm-up: {} of {} deliveries, {} errors (first: {})",
            p.deliveries,
            p.expected_deliveries,
            p.errors,
            p.first_error.unwrap_or_default()
        );
    }
    let n = ((p.docs_per_second * args.duration) as u64).max(p.documents).max(1);
    eprintln!(
        "truc-bench: relay warm-up {} docs at {:.0} docs/s end to end; measuring {n} documents",
        p.documents, p.docs_per_second
    );
    spec.stop = load::StopAt::Count(n);
    spec.warmup = Some(0);
    Ok(load::run(&spec).await?)
}

/// `ratio relay/one hub: X.XX (relay A docs/s end to end, one hub B
/// docs/s, size S)`, from the median rows.
pub(crate) fn ratio_line(medians: &[Row], size: usize) -> anyhow::Result<String> {
    let rate = |label: &str| {
        medians
            .iter()
            .find(|r| r.label == label)
            .map(|r| r.report.docs_per_second)
            .ok_or_else(|| anyhow!("no row {label:?}"))
    };
    let (relay, one) = (rate(RELAY)?, rate(ONE_HUB)?);
    Ok(format!(
        "ratio relay/one hub: {:.2} (relay {relay:.0} docs/s end to end, one hub {one:.0} docs/s, size {size})",
        if one > 0.0 { relay / one } else { 0.0 }
    ))
}
