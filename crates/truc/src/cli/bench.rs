//! `truc bench`: a load generator to point at your own hub.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use truc_load::{self as load, LoadSpec, Shape, StopAt};

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("stop").args(["duration", "count"])))]
pub(crate) struct BenchArgs {
    /// Hub address, host:port or https://host:port.
    #[arg(long, env = "TRUC_HUB", default_value = "127.0.0.1:7443")]
    hub: String,
    /// PKI directory from `truc pki init`: agency identities are
    /// PKI/agencies/<code> (B90.S001…, B90.R001…), issued when missing and
    /// registered by the operator PKI/operators/bench (issued when missing).
    #[arg(long, value_name = "DIR")]
    pki: PathBuf,
    /// Sending agencies.
    #[arg(long, default_value_t = 4)]
    senders: usize,
    /// Receiving agencies.
    #[arg(long, default_value_t = 4)]
    receivers: usize,
    /// Seconds to send for (documents are signed beforehand).
    #[arg(long, value_name = "S")]
    duration: Option<f64>,
    /// Documents to send instead of a duration.
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    #[command(flatten)]
    shape: Shape,
    /// Seconds to wait after the senders stop for the last deliveries.
    #[arg(long, default_value_t = 60)]
    drain_timeout: u64,
    #[command(flatten)]
    out: super::output::OutputArgs,
}

pub(crate) async fn run(a: BenchArgs) -> anyhow::Result<()> {
    let stop = match (a.duration, a.count) {
        (_, Some(n)) => StopAt::Count(n),
        (Some(d), None) if d > 0.0 => StopAt::Duration(Duration::from_secs_f64(d)),
        (Some(_), None) => anyhow::bail!("--duration must be positive"),
        (None, None) => StopAt::Duration(Duration::from_secs(10)),
    };
    let mut spec = LoadSpec::new(&a.hub, &a.pki);
    spec.senders = load::agency_codes('S', a.senders);
    spec.receivers = load::agency_codes('R', a.receivers);
    a.shape.apply(&mut spec);
    spec.stop = stop;
    spec.drain_timeout = Duration::from_secs(a.drain_timeout);
    load::prepare(&a.hub, &a.pki, &spec.agencies())
        .await
        .context("setting up the bench agencies")?;
    let report = load::run(&spec).await?;
    match a.out.format() {
        super::output::Format::Table => print!("{}", report.summary()),
        super::output::Format::Csv => a.out.object(serde_json::to_value(&report)?, String::new),
        _ => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    if !report.complete {
        anyhow::bail!(
            "only {} of {} deliveries were acknowledged",
            report.deliveries,
            report.expected_deliveries
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::cli::{Cli, Command};

    fn parse(args: &[&str]) -> Result<super::BenchArgs, clap::Error> {
        let argv = ["truc", "bench", "--pki", "pki"].iter().chain(args).copied();
        match Cli::try_parse_from(argv)?.command {
            Command::Bench(a) => Ok(a),
            _ => unreachable!(),
        }
    }

    #[test]
    fn flags() {
        let a = parse(&[
            "--senders",
            "3",
            "--receivers",
            "5",
            "--fanout",
            "2",
            "--size",
            "65536",
            "--count",
            "100",
            "--priority-mix",
            "thuong=9,hoa-toc=1",
            "--json",
        ])
        .unwrap();
        assert_eq!((a.senders, a.receivers, a.shape.fanout, a.shape.size), (3, 5, 2, 65536));
        assert_eq!(a.count, Some(100));
        assert!(a.out.is_json());
        assert_eq!(a.shape.window, 256);
        assert_eq!(a.shape.priority_mix.to_string(), "thuong=9,hoa-toc=1");
        assert!(parse(&["--priority-mix", "thuong=0"]).is_err());
        // A duration or a count, not both.
        assert!(parse(&["--duration", "1", "--count", "5"]).is_err());
        // The PKI directory is required.
        assert!(Cli::try_parse_from(["truc", "bench"]).is_err());
    }
}
