//! `truc`: one CLI for everyone — `pki` for whoever runs the CA, `send`
//! and `inbox` for agencies, `ops` for operators, `demo` for a first look.

mod audit;
mod audit_hops;
mod bench;
mod connections;
mod context;
mod corrections;
mod demo;
mod demo_federation;
pub(crate) mod errors;
mod inbox;
mod lifecycle;
mod names;
mod ops;
mod output;
mod peers;
mod pki;
mod progress;
mod send;
mod send_note;
mod stats;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

const LONG_ABOUT: &str = "\
One CLI for Truc, the document interconnection axis.

  truc demo                       see a signed document travel between agencies
  truc demo --federation          the same across three hubs (province → national → ministry)
  truc pki init|issue|revoke      run the axis CA and issue identities
  truc send|inbox                 an agency sends and receives documents
  truc status|track               business statuses (01–06, 13, 15, 16) and tracking
  truc revoke|update|replace      corrections as the axis sends them (thu hồi, cập nhật, thay thế)
  truc stats                      an agency's own indicators: sent, received, confirmed on time
  truc ops …                      an operator: agencies, queues, dead letters, trace, status, reload,
                                  peer hubs (ops peers, ops peer pause|resume)
  truc audit receipts|verify|watch|heads
                                  an auditor queries receipts, verifies them offline, watches the log,
                                  lists the signed tree heads

Commands that talk to a hub take --hub (env TRUC_HUB) and --identity (env
TRUC_IDENTITY): the identity directory written by `truc pki issue`; or
both from a saved context (`truc context add|use|list`).

Output (-o table|json|jsonl|csv, every command that prints results):
  table   for people (the default); --no-headers prints the rows only
  json    one JSON document (--json); errors too, on stdout:
          {\"error\":{\"code\":…,\"message\":…,\"hint\":…}}
  jsonl   one JSON document per line for streams (`inbox`, `inbox --follow`,
          `ops queues --watch`, `audit watch`); elsewhere as json (--jsonl)
  csv     RFC 4180 (fields with a comma, quote or line break quoted, quotes
          doubled; records end with a line feed): a header row of the JSON
          keys, then one row per item with the JSON's values (raw numbers,
          Unix ms, whole URNs; null empty; lists as JSON text); a command
          that prints one object (`ops status`, `send`, …) prints one row;
          --no-headers drops the header row. Streams print a row as each
          item comes.
Times: tables show the axis's local time with its offset
(`2026-12-06 17:15:02 +07:00`; the hub's offset where a command asks it,
else TRUC_UTC_OFFSET, else +07:00), --utc shows UTC. JSON and CSV keep each
`*_unix_ms` and add the time as RFC 3339 with its offset beside it
(`accepted_at_unix_ms`, `accepted_at`). Business status codes are the axis's
two digits (\"03\"), JSON included.
Under table and csv an error is `truc: <message>` and a `hint:` line on
stderr.

Exit codes:
  0  ok
  1  failed (anything else: a local file, an internal error)
  2  usage: bad arguments, or a value the hub refused as invalid
  3  not found: an unknown agency, document or delivery
  4  refused: permission, an agency's state, a quota, an unusable identity
  5  unavailable: the hub cannot be reached or went away
  6  verification failed: a signature, receipt or proof that does not verify";

/// Command-line arguments of `truc`.
#[derive(Debug, Parser)]
#[command(name = "truc", version, about = "One CLI for the Truc document axis", long_about = LONG_ABOUT)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Show times in UTC. Without it every table shows times in the axis's
    /// local time with its offset (`2026-12-06 17:15:02 +07:00`): the offset
    /// the hub reports where a command asks it (`truc stats`), else
    /// TRUC_UTC_OFFSET (e.g. +07:00), else +07:00. JSON keeps each
    /// `*_unix_ms` and adds the same time as RFC 3339 with its offset beside
    /// it (`accepted_at_unix_ms` and `accepted_at`).
    #[arg(long, global = true)]
    utc: bool,
}

/// How to reach the hub, as whom, and how to print.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Conn {
    /// Hub address, host:port or https://host:port.
    #[arg(long, env = "TRUC_HUB", default_value = "127.0.0.1:7443", value_parser = hub_address)]
    pub(crate) hub: String,
    /// Identity directory (cert.pem, key.pem, ca.pem) from `truc pki issue`.
    #[arg(long, env = "TRUC_IDENTITY", value_name = "DIR")]
    pub(crate) identity: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) out: output::OutputArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start a throw-away hub, register three agencies, send a signed
    /// document to two of them, receive and acknowledge it.
    Demo(demo::DemoArgs),
    /// Run the axis CA: make it, issue identities, revoke certificates.
    #[command(subcommand)]
    Pki(pki::PkiCommand),
    /// Sign a document (a file, several attachments, or an edXML package)
    /// and send it to one or more agencies (agency identity).
    Send(send::SendArgs),
    /// Receive what is waiting, verify each signature, save, acknowledge.
    ///
    /// -o jsonl prints a JSON document per delivery as it arrives; -o json
    /// one document at the end (not with --follow). -o csv prints a row per
    /// delivery as it arrives, with the columns kind (document, status or
    /// unacknowledged), delivery_id, hub_document_id, from, document_id,
    /// subject, priority, payload_size, saved_to, saved_before, status,
    /// reporter, description, time_unix_ms, time (a kind leaves the others'
    /// columns empty).
    Inbox(inbox::InboxArgs),
    /// Report a business status on a document (01–06, 13, 15, 16).
    Status(lifecycle::StatusArgs),
    /// Revoke (thu hồi) a document you sent: sent under its own id, as the
    /// axis does; copies not yet delivered are withdrawn, recipients that
    /// have it answer 15 or 16.
    Revoke(corrections::RevokeArgs),
    /// Change a document's recipients (cập nhật): --add and --remove, sent
    /// under its own id, as the axis does.
    Update(corrections::UpdateArgs),
    /// Replace (thay thế) old documents by a new one, each for its
    /// agencies: `truc replace OLD_ID[:CODES]… FILE`.
    Replace(corrections::ReplaceArgs),
    /// Where your document is, per recipient: transport state, latest
    /// status, deadlines.
    ///
    /// -o csv prints a row per recipient; the document's own fields
    /// (subject, priority, accepted at) are in -o json.
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
    /// Saved hub addresses and identities (add, use, list, remove), as
    /// `nats context` keeps them; the current one fills --hub and
    /// --identity where neither the flag nor TRUC_HUB/TRUC_IDENTITY does.
    #[command(subcommand)]
    Context(context::ContextCommand),
    /// Shell completions, generated from these definitions:
    /// `truc completions bash > /etc/bash_completion.d/truc`,
    /// `truc completions zsh --bin trucd > ~/.zfunc/_trucd`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
        /// The program to complete.
        #[arg(long, default_value = "truc", value_parser = ["truc", "trucd"])]
        bin: String,
    },
    /// Man pages for truc, each of its commands (truc-ops-queues.1, …) and
    /// trucd, written to DIR (`man -l DIR/truc.1`, or install into
    /// /usr/local/share/man/man1).
    Man {
        /// Where to write the pages.
        #[arg(long, default_value = "man", value_name = "DIR")]
        out: PathBuf,
    },
}

/// `truc`'s and `trucd`'s command definitions, for completions and pages.
fn command_of(bin: &str) -> clap::Command {
    use clap::CommandFactory;
    if bin == "trucd" {
        crate::daemon::Args::command()
    } else {
        Cli::command()
    }
}

/// Write `cmd`'s page as `<name>.1` in `dir`, then its subcommands' as
/// `<name>-<sub>.1`.
fn write_pages(
    cmd: clap::Command,
    name: &str,
    dir: &std::path::Path,
    written: &mut Vec<PathBuf>,
) -> anyhow::Result<()> {
    let cmd = cmd.name(name.to_string());
    let path = dir.join(format!("{name}.1"));
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut buf)?;
    std::fs::write(&path, buf).map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
    written.push(path);
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        write_pages(sub.clone(), &format!("{name}-{}", sub.get_name()), dir, written)?;
    }
    Ok(())
}

fn tools(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Completions { shell, bin } => {
            let mut c = command_of(&bin);
            clap_complete::generate(shell, &mut c, bin, &mut std::io::stdout());
        }
        Command::Man { out } => {
            std::fs::create_dir_all(&out).map_err(|e| anyhow::anyhow!("creating {}: {e}", out.display()))?;
            let mut written = Vec::new();
            for bin in ["truc", "trucd"] {
                let mut c = command_of(bin);
                c.build();
                write_pages(c, bin, &out, &mut written)?;
            }
            println!(
                "{} man pages in {}/ (man -l {}/truc.1)",
                written.len(),
                out.display(),
                out.display()
            );
        }
        _ => unreachable!("not a tool command"),
    }
    Ok(())
}

/// Whether the command line asks for JSON (read before parsing, so that a
/// usage error is JSON too): --json, --jsonl, -o json|jsonl (also
/// `-ojson`, `--output json`, `--output=json`).
fn wants_json() -> bool {
    asks_json(std::env::args().skip(1))
}

fn asks_json(args: impl Iterator<Item = String>) -> bool {
    let json = |v: &str| v == "json" || v == "jsonl";
    let mut after_o = false;
    for a in args {
        if after_o && json(&a) {
            return true;
        }
        after_o = a == "-o" || a == "--output";
        let joined = a.strip_prefix("--output=").or_else(|| a.strip_prefix("-o"));
        if a == "--json" || a == "--jsonl" || joined.is_some_and(|v| json(v.trim_start_matches('='))) {
            return true;
        }
    }
    false
}

/// `truc … | head`: once the reader is gone, stop quietly (exit 0) instead
/// of panicking on the broken pipe. Every other panic is reported as usual.
fn quiet_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.contains("Broken pipe") || msg.contains("os error 32") {
            std::process::exit(0);
        }
        default(info);
    }));
}

/// Print `f` as the contract says and return its exit code.
fn fail(f: &errors::Failure, json: bool) -> ExitCode {
    if json {
        println!("{}", f.json());
    } else {
        eprintln!("{}", f.text());
    }
    ExitCode::from(f.exit_code())
}

/// Entry point of `truc`.
pub fn main() -> ExitCode {
    quiet_on_broken_pipe();
    context::apply();
    let json = wants_json();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) if !e.use_stderr() => {
            // --help, --version
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) if json => {
            let message = e.kind().to_string();
            let detail = e.to_string();
            let detail = detail.lines().next().unwrap_or_default().trim_start_matches("error: ");
            let f = errors::Failure {
                kind: errors::Kind::Usage,
                message: if detail.is_empty() { message } else { detail.to_string() },
                hint: Some("truc --help, or truc <command> --help".into()),
            };
            return fail(&f, true);
        }
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(errors::Kind::Usage as u8);
        }
    };
    crate::logging::init("warn", false);
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("truc: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = output::init_zone(cli.utc) {
        return fail(&errors::classify(&e), json);
    }
    let result = rt.block_on(async move {
        match cli.command {
            Command::Demo(a) => demo::run(a).await,
            Command::Pki(c) => pki::run(c),
            Command::Send(a) => send::send(a).await,
            Command::Inbox(a) => inbox::inbox(a).await,
            Command::Status(a) => lifecycle::status(a).await,
            Command::Revoke(a) => corrections::revoke(a).await,
            Command::Update(a) => corrections::update(a).await,
            Command::Replace(a) => corrections::replace(a).await,
            Command::Track(a) => lifecycle::track(a).await,
            Command::Stats { args, conn } => stats::run(args, "", conn).await,
            Command::Ops(c) => ops::run(c).await,
            Command::Audit(c) => audit::run(c).await,
            Command::Bench(a) => bench::run(a).await,
            c @ (Command::Completions { .. } | Command::Man { .. }) => tools(c),
            Command::Context(c) => context::run(c),
        }
    });
    // Tasks still running (a progress bar, a stream) are not waited for.
    rt.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&errors::classify(&e), json),
    }
}

/// The hub could not be reached: what was tried, and the likely cause.
pub(crate) fn connect_failure(hub: &str, reason: &str) -> errors::Failure {
    let r = reason.to_ascii_lowercase();
    let host = hub
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .rsplit_once(':')
        .map(|(h, _)| h.trim_matches(['[', ']']))
        .unwrap_or(hub);
    let hint = if r.contains("invalidcontenttype") || r.contains("corrupt message") || r.contains("http/1") {
        format!(
            "{hub} answers, but not as a TLS gRPC hub: is that the admin port (/metrics, /healthz)? \
             The hub's gRPC port is trucd's --listen (7443 by default)"
        )
    } else if r.contains("not valid for name") || r.contains("notvalidforname") {
        format!(
            "the hub's certificate does not name {host:?}: connect by a name it has (localhost, 127.0.0.1, …), \
             or add this one, where the CA is: `truc pki renew --dir PKI --hub NAME --san {host}` \
             (NAME as `truc pki list` shows the hub; the running hub picks the new certificate up)"
        )
    } else if r.contains("unknownissuer") || r.contains("unknown issuer") {
        "the hub's certificate is not from the CA in your identity's ca.pem: is this the right hub, and the right --identity?".into()
    } else if r.contains("certificateexpired") || r.contains("expired") {
        "a certificate has expired: `truc pki list --dir PKI` shows which; `truc pki renew` makes a new one".into()
    } else if r.contains("invalid port") || r.contains("invalid uri") || r.contains("invalid authority") {
        "give --hub (TRUC_HUB) as host:port, e.g. 127.0.0.1:7443".into()
    } else {
        format!("is trucd running at {hub}? (--hub, TRUC_HUB)")
    };
    errors::Failure {
        kind: errors::Kind::Unavailable,
        message: format!("cannot connect to {hub}: {reason}"),
        hint: Some(hint),
    }
}

/// A hub address argument: `host:port` or `https://host:port`, the port
/// 1..=65535.
pub(crate) fn hub_address(s: &str) -> Result<String, String> {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s)
        .trim_end_matches('/');
    let Some((host, port)) = rest.rsplit_once(':') else {
        return Err(format!("{s:?} has no port: give host:port, e.g. 127.0.0.1:7443"));
    };
    if host.is_empty() {
        return Err(format!("{s:?} has no host: give host:port, e.g. 127.0.0.1:7443"));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(s.to_string()),
        _ => Err(format!(
            "{s:?}: port {port:?} is not a port (1 to 65535); the hub listens on 7443 by default"
        )),
    }
}

/// An agency code argument: either national format, or a usage error that
/// shows both.
pub(crate) fn agency_code(s: &str) -> Result<String, String> {
    truc_core::AgencyCode::parse(s).map(|c| c.to_string()).map_err(|_| {
        format!(
            "{s:?} is not an agency code: expected QCVN 102 form (000.00.00.G22) or QĐ 20 form (G09.01); \
                 upper-case letters, digits and dots"
        )
    })
}

/// A delivery id argument: the number, or the short handle `dlq list` and
/// `ops queue` print (`output::handle`).
pub(crate) fn delivery_id(s: &str) -> Result<u64, String> {
    if let Some(id) = output::parse_handle(s) {
        return Ok(id);
    }
    if truc_core::AgencyCode::parse(s).is_ok() {
        return Err(format!(
            "{s:?} is an agency code, not a delivery: pass it as --agency {s} (and delivery ids, from \
             `truc ops dlq list {s}`, as arguments)"
        ));
    }
    Err(format!(
        "{s:?} is not a delivery: expected a handle such as 2-17 or a delivery id, as `truc ops dlq list CODE` shows them"
    ))
}

/// The reconnection policy of a long-running command.
pub(crate) fn reconnect_policy(no_reconnect: bool) -> truc_client::reconnect::Reconnect {
    if no_reconnect {
        truc_client::reconnect::Reconnect::never()
    } else {
        truc_client::reconnect::Reconnect::default()
    }
}

/// One line on stderr per outage: "hub restarting …, reconnecting…", then
/// "reconnected after 2.1 s".
pub(crate) fn print_notice(n: truc_client::reconnect::Notice) {
    eprintln!("truc: {n}");
}

impl Conn {
    /// JSON output of either kind.
    pub(crate) fn is_json(&self) -> bool {
        self.out.is_json()
    }

    /// The output format chosen.
    pub(crate) fn format(&self) -> output::Format {
        self.out.format()
    }

    pub(crate) async fn client(&self) -> anyhow::Result<truc_client::Client> {
        let dir = self.identity.as_ref().ok_or_else(|| {
            errors::Problem::usage("no identity: this command talks to the hub as someone")
                .hint("pass --identity DIR or set TRUC_IDENTITY: a directory written by `truc pki issue`")
        })?;
        let identity = truc_pki::Identity::load(dir)?;
        check_validity(dir, &identity)?;
        Ok(truc_client::Client::connect(&self.hub, identity).await?)
    }
}

/// Refuse an identity whose certificate has expired (or is not valid yet),
/// saying when and the `truc pki renew` to run; warn when it expires
/// within 14 days.
fn check_validity(dir: &std::path::Path, identity: &truc_pki::Identity) -> anyhow::Result<()> {
    let Ok(info) = identity.cert_info() else {
        return Ok(()); // Identity::load parsed it; the hub judges it
    };
    let now = truc_core::now_unix_ms() / 1000;
    let p = &identity.principal;
    // PKI/<kind>/<name> → PKI, when the CA is there.
    let pki = dir
        .parent()
        .and_then(|d| d.parent())
        .filter(|d| d.join("ca.pem").is_file())
        .map_or_else(|| "PKI".to_string(), |d| d.display().to_string());
    let flag = if p.role() == "hub" {
        "hub".to_string()
    } else {
        p.role().to_string()
    };
    let renew = format!("truc pki renew --dir {pki} --{flag} {}", p.name());
    let when = |t: i64| output::time(t * 1000);
    if info.not_after < now {
        return Err(errors::Problem::refused(format!(
            "identity {}: its certificate (serial {}, {p}) expired at {}",
            dir.display(),
            info.serial,
            when(info.not_after)
        ))
        .hint(format!(
            "renew it (whoever runs the CA): `{renew}`, then use the new cert.pem"
        ))
        .into());
    }
    if info.not_before > now + 300 {
        return Err(errors::Problem::refused(format!(
            "identity {}: its certificate (serial {}) is not valid before {}",
            dir.display(),
            info.serial,
            when(info.not_before)
        ))
        .hint("check this machine's clock")
        .into());
    }
    let left = info.not_after - now;
    if left < 14 * 86_400 {
        eprintln!(
            "truc: warning: identity {} expires at {} (in {} days): `{renew}`",
            dir.display(),
            when(info.not_after),
            left / 86_400
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> impl Iterator<Item = String> + '_ {
        s.split(' ').map(str::to_string)
    }

    #[test]
    fn json_is_seen_before_parsing_in_every_spelling() {
        for yes in [
            "ops status --json",
            "ops status --jsonl",
            "ops status -o json",
            "ops status -ojsonl",
            "ops status --output json",
            "ops status --output=json",
            "ops status -o=json",
        ] {
            assert!(asks_json(args(yes)), "{yes}");
        }
        for no in [
            "ops status",
            "ops status -o csv",
            "ops status -o table",
            "send --subject json x",
        ] {
            assert!(!asks_json(args(no)), "{no}");
        }
    }

    #[test]
    fn output_flags_are_one_contract() {
        use clap::Parser;
        let format = |line: &str| match Cli::try_parse_from(line.split(' ')) {
            Ok(Cli {
                command: Command::Ops(ops::OpsCommand::Status { conn }),
                ..
            }) => Ok((conn.format(), conn.out.headers())),
            Ok(_) => unreachable!(),
            Err(e) => Err(e.kind()),
        };
        use output::Format::*;
        assert_eq!(format("truc ops status"), Ok((Table, true)));
        assert_eq!(format("truc ops status --json"), Ok((Json, true)));
        assert_eq!(format("truc ops status -o json"), Ok((Json, true)));
        assert_eq!(format("truc ops status --jsonl"), Ok((Jsonl, true)));
        assert_eq!(format("truc ops status -o csv --no-headers"), Ok((Csv, false)));
        assert_eq!(format("truc ops status --output table"), Ok((Table, true)));
        assert!(format("truc ops status -o xml").is_err());
        assert!(format("truc ops status --json -o csv").is_err());
    }
}
