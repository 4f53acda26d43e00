//! `truc`: one CLI for everyone — `pki` for whoever runs the CA, `send`
//! and `inbox` for agencies, `ops` for operators, `demo` for a first look.

mod agency;
mod audit;
mod bench;
mod demo;
mod lifecycle;
mod ops;
mod output;
mod pki;
mod progress;
mod send_note;
mod stats;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

const LONG_ABOUT: &str = "\
One CLI for Truc, the document interconnection axis.

  truc demo                       see a signed document travel between agencies
  truc pki init|issue|revoke      run the axis CA and issue identities
  truc send|inbox                 an agency sends and receives documents
  truc status|track               business statuses (01–06, 13, 15, 16) and tracking
  truc stats                      an agency's own indicators: sent, received, confirmed on time
  truc ops …                      an operator: agencies, queues, dead letters, trace, reload
  truc audit receipts|verify|watch|heads
                                  an auditor queries receipts, verifies them offline, watches the log,
                                  lists the signed tree heads

Commands that talk to a hub take --hub (env TRUC_HUB) and --identity (env
TRUC_IDENTITY): the identity directory written by `truc pki issue`. Read
commands print tables; --json prints JSON for scripts.";

/// Command-line arguments of `truc`.
#[derive(Debug, Parser)]
#[command(name = "truc", version, about = "One CLI for the Truc document axis", long_about = LONG_ABOUT)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// How to reach the hub, as whom, and how to print.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Conn {
    /// Hub address, host:port or https://host:port.
    #[arg(long, env = "TRUC_HUB", default_value = "127.0.0.1:7443")]
    pub(crate) hub: String,
    /// Identity directory (cert.pem, key.pem, ca.pem) from `truc pki issue`.
    #[arg(long, env = "TRUC_IDENTITY", value_name = "DIR")]
    pub(crate) identity: Option<PathBuf>,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start a throw-away hub, register three agencies, send a signed
    /// document to two of them, receive and acknowledge it.
    Demo(demo::DemoArgs),
    /// Run the axis CA: make it, issue identities, revoke certificates.
    #[command(subcommand)]
    Pki(pki::PkiCommand),
    /// Sign a file and send it to one or more agencies (agency identity).
    Send(agency::SendArgs),
    /// Receive what is waiting, verify each signature, save, acknowledge.
    Inbox(agency::InboxArgs),
    /// Report a business status on a document (01–06, 13, 15, 16).
    Status(lifecycle::StatusArgs),
    /// Where your document is, per recipient: transport state, latest
    /// status, deadlines.
    Track(lifecycle::TrackArgs),
    /// Your agency's indicators for a period: documents sent, received,
    /// refused, confirmed on time and late, dead-lettered, bytes (agency
    /// identity; operators see every agency with `truc ops stats`).
    Stats {
        #[command(flatten)]
        args: stats::StatsArgs,
        #[command(flatten)]
        conn: Conn,
    },
    /// Operator commands (operator identity).
    #[command(subcommand)]
    Ops(ops::OpsCommand),
    /// Auditor commands: receipts, offline verification, watching the log.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Load-test a hub: N agencies send signed documents to M others;
    /// prints throughput and latency percentiles.
    Bench(bench::BenchArgs),
}

/// Entry point of `truc`.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    crate::logging::init("warn", false);
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("truc: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async move {
        match cli.command {
            Command::Demo(a) => demo::run(a).await,
            Command::Pki(c) => pki::run(c),
            Command::Send(a) => agency::send(a).await,
            Command::Inbox(a) => agency::inbox(a).await,
            Command::Status(a) => lifecycle::status(a).await,
            Command::Track(a) => lifecycle::track(a).await,
            Command::Stats { args, conn } => stats::run(args, "", conn).await,
            Command::Ops(c) => ops::run(c).await,
            Command::Audit(c) => audit::run(c).await,
            Command::Bench(a) => bench::run(a).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("truc: {}", output::error_text(&e));
            ExitCode::FAILURE
        }
    }
}

impl Conn {
    pub(crate) async fn client(&self) -> anyhow::Result<truc_client::Client> {
        let dir = self
            .identity
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("no identity: pass --identity DIR or set TRUC_IDENTITY"))?;
        Ok(truc_client::Client::connect_dir(&self.hub, dir).await?)
    }
}
