//! `truc audit`: what an auditor does with the receipt log — query receipts,
//! export them with their proofs, verify an export offline with nothing but
//! the hub's public key, and watch that the log only ever grows.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use prost::Message;
use serde_json::json;
use truc_client::audit::{self, AuditError, AuditQuery, WatchState};
use truc_core::tree_head::TreeHeadVerifier;
use truc_proto::names::Wire;
use truc_proto::v1::{Receipt, ReceiptEvent, TreeHead};

use super::lifecycle::sender_of;
use super::output;
use super::Conn;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum AuditCommand {
    /// List receipts of a document, of an agency, or of a time range, oldest
    /// first; --out exports them with their proofs and the signed tree head.
    Receipts(ReceiptsArgs),
    /// Check an export offline: the tree head's signature, each receipt's
    /// inclusion in it, and that every readable field (event, time, actor,
    /// …) is what the signed bytes say. Exits 1 naming the first receipt
    /// and field that fails; refuses a format version it does not know
    /// (docs/audit-export.schema.json describes truc-audit-export/1).
    ///
    /// With --witnesses K, also that every receipt is under the hub's
    /// checkpoint as cosigned by at least K of the --witness-key keys (the
    /// hub's peers), so that no single operator can rewrite history
    /// unseen. FILE may also be a c2sp.org/tlog-proof (from --tlog-proof).
    ///
    /// Examples:
    ///   truc audit verify export.json --hub-key receipts.pub
    ///   truc audit verify export.json --hub-key receipts.pub --witnesses 2 \
    ///       --witness-key 'national.truc/witness+5c1e9a07+BH…' --witness-key 'g12.truc/witness+0d4be2f1+BA…'
    ///   truc audit verify proofs/17.tlog-proof --hub-key receipts.pub --witnesses 1 --witness-key '…'
    #[command(verbatim_doc_comment)]
    Verify(VerifyArgs),
    /// Keep the last signed tree head seen in a state file and prove that
    /// every new one extends it, so a rewritten history is detected.
    Watch(WatchArgs),
    /// List the signed tree heads the hub has (one per commit batch), in
    /// increasing size: the sizes to ask a head or a consistency proof for.
    Heads(HeadsArgs),
}

#[derive(Debug, clap::Args)]
pub(crate) struct HeadsArgs {
    /// The smallest tree size to list.
    #[arg(long, value_name = "SIZE", default_value_t = 0)]
    from: u64,
    /// Most heads to list.
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    limit: u64,
    /// Check each head's signature with the hub's receipt public key
    /// (PKI/hub/receipts.pub).
    #[arg(long, value_name = "PATH")]
    hub_key: Option<PathBuf>,
    #[command(flatten)]
    conn: Conn,
}

/// The hub's receipt public key.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct HubKey {
    /// The hub's receipt public key, PKI/hub/receipts.pub.
    #[arg(long, env = "TRUC_HUB_KEY", value_name = "PATH")]
    hub_key: PathBuf,
}

#[derive(Debug, clap::Args)]
pub(crate) struct ReceiptsArgs {
    /// Receipts of this document (the sender's document id).
    #[arg(long, value_name = "ID", conflicts_with = "agency")]
    document: Option<String>,
    /// The document's sender; default: the code before the first comma of
    /// the document id, as edXML document ids begin.
    #[arg(long, value_name = "CODE", value_parser = super::agency_code, requires = "document")]
    from: Option<String>,
    /// Receipts naming this agency as sender, recipient or actor.
    #[arg(long, value_name = "CODE", value_parser = super::agency_code)]
    agency: Option<String>,
    /// Receipts at or after T: Unix ms, or YYYY-MM-DD[THH:MM[:SS[.mmm]]][Z|±HH:MM] (UTC unless an offset is
    /// given; a time as tables print it, `2026-12-06 17:15:02 +07:00`, works too).
    #[arg(long, value_name = "T", value_parser = parse_since)]
    since: Option<i64>,
    /// Receipts at or before T (same forms; a date alone means its end).
    #[arg(long, value_name = "T", value_parser = parse_until)]
    until: Option<i64>,
    /// Export the receipts, their inclusion proofs and the one signed tree
    /// head they are proven against to FILE (JSON, for `truc audit verify`),
    /// with the hub's checkpoint as its peers' witnesses cosigned it.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Also write each receipt under the witnessed checkpoint as a
    /// c2sp.org/tlog-proof, DIR/<index>.tlog-proof (receipts recorded after
    /// it are left out: they are not witnessed yet).
    #[arg(long, value_name = "DIR", requires = "out")]
    tlog_proof: Option<PathBuf>,
    /// Check every receipt against the hub's receipt public key
    /// (PKI/hub/receipts.pub) before printing or exporting.
    #[arg(long, value_name = "PATH")]
    hub_key: Option<PathBuf>,
    /// With --document: follow the document to the hubs it was forwarded
    /// to (its FORWARDED receipts) and export its receipts there too, each
    /// hub's against its own signed tree head, as one file (--out) that
    /// `truc audit verify FILE --hub-key … --hop-key ID=PATH …` checks with
    /// each hub's receipts.pub. Example: truc audit receipts --document ID
    /// --follow-hops --hop national=national.truc.gov.vn:7443 --hop
    /// g12=g12.truc.gov.vn:7443,auditor-g12 --out chain.json
    #[arg(long, requires = "document")]
    follow_hops: bool,
    /// Where another hub is: ID=ADDRESS[,IDENTITY_DIR] (an identity that hub
    /// lets read receipts; default: --identity). Repeat for each hub.
    #[arg(long = "hop", value_name = "ID=ADDRESS[,DIR]", value_parser = super::audit_hops::parse_hop, requires = "follow_hops")]
    hops: Vec<super::audit_hops::Hop>,
    #[command(flatten)]
    conn: Conn,
}

#[derive(Debug, clap::Args)]
pub(crate) struct VerifyArgs {
    /// The export written by `truc audit receipts --out` ("-" for stdin),
    /// or a .tlog-proof file.
    file: PathBuf,
    /// For an export of --follow-hops: each other hub's receipt public key,
    /// ID=PATH (--hub-key is the key of the hub it was taken at). Repeat.
    #[arg(long = "hop-key", value_name = "ID=PATH", value_parser = super::audit_hops::parse_hop_key)]
    hop_keys: Vec<(String, PathBuf)>,
    #[command(flatten)]
    key: HubKey,
    /// Accept the receipts only under a checkpoint cosigned by at least K
    /// of the --witness-key keys.
    #[arg(long, value_name = "K", requires = "witness_key", value_parser = clap::value_parser!(u64).range(1..))]
    witnesses: Option<u64>,
    /// A witness's verifier key, NAME+KEYID+BASE64 as the witnessing hub's
    /// `trucd check-config` prints it (`<hub id>.truc/witness+…`).
    /// Repeatable.
    #[arg(long, value_name = "VKEY", requires = "witnesses")]
    witness_key: Vec<String>,
    #[command(flatten)]
    out: output::OutputArgs,
}

#[derive(Debug, clap::Args)]
pub(crate) struct WatchArgs {
    /// Where the last verified tree head is kept between runs.
    #[arg(long, value_name = "FILE", default_value = "truc-audit-state.json")]
    state: PathBuf,
    /// Seconds between checks.
    #[arg(long, value_name = "SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    interval: u64,
    /// Check once and exit (0: consistent, 1: not).
    #[arg(long)]
    once: bool,
    #[command(flatten)]
    key: HubKey,
    #[command(flatten)]
    conn: Conn,
}

pub(crate) async fn run(cmd: AuditCommand) -> anyhow::Result<()> {
    match cmd {
        AuditCommand::Receipts(a) => receipts(a).await,
        AuditCommand::Verify(a) => verify(a),
        AuditCommand::Watch(a) => watch(a).await,
        AuditCommand::Heads(a) => heads(a).await,
    }
}

async fn heads(a: HeadsArgs) -> anyhow::Result<()> {
    let verifier = a.hub_key.as_deref().map(load_key).transpose()?;
    let client = a.conn.client().await?;
    let heads = audit::tree_heads(&client, a.from, a.limit as usize, verifier.as_ref()).await?;
    let row = |(sth, head): &(truc_proto::v1::SignedTreeHead, TreeHead)| {
        json!({
            "tree_size": head.tree_size, "root_hash": truc_core::hex(&head.root_hash),
            "time_unix_ms": head.time_unix_ms, "tree_head": truc_core::hex(&sth.tree_head),
            "signature": truc_core::hex(&sth.signature), "key_id": truc_core::hex(&sth.key_id),
        })
    };
    if a.conn.format() == output::Format::Jsonl {
        heads.iter().for_each(|h| output::json_line(row(h)));
        return Ok(());
    }
    let table = |headers: bool| {
        let width = heads
            .iter()
            .map(|(_, h)| h.tree_size.to_string().len())
            .max()
            .unwrap_or(0)
            .max("SIZE".len());
        let mut t = String::new();
        if headers {
            t += &format!("{:>width$}  {:<23}  ROOT\n", "SIZE", "SIGNED AT");
        }
        for (_, head) in &heads {
            t += &format!(
                "{:>width$}  {:<23}  {}\n",
                head.tree_size,
                output::time(head.time_unix_ms),
                truc_core::hex(&head.root_hash)
            );
        }
        if headers {
            t += &format!(
                "{} signed tree heads{}\n",
                heads.len(),
                if verifier.is_some() {
                    " (every signature verified)"
                } else {
                    ""
                }
            );
        }
        t
    };
    a.conn.out.list(&heads, row, serde_json::Value::Array, table);
    Ok(())
}

pub(crate) fn load_key(path: &Path) -> anyhow::Result<TreeHeadVerifier> {
    let pem = std::fs::read_to_string(path).with_context(|| format!("reading the hub key {}", path.display()))?;
    TreeHeadVerifier::from_pem(&pem).with_context(|| format!("the hub key {}", path.display()))
}

async fn receipts(a: ReceiptsArgs) -> anyhow::Result<()> {
    let mut query = AuditQuery {
        agency: a.agency.clone(),
        since_unix_ms: a.since,
        until_unix_ms: a.until,
        ..AuditQuery::default()
    };
    if let Some(id) = &a.document {
        let from = match &a.from {
            Some(f) => f.clone(),
            None => sender_of(id)
                .map(str::to_string)
                .ok_or_else(|| anyhow::anyhow!("{id:?} does not begin with its sender's code: give --from CODE"))?,
        };
        query.document_from = Some(from);
        query.document_id = Some(id.clone());
    }
    let verifier = a.hub_key.as_deref().map(load_key).transpose()?;
    let client = a.conn.client().await?;
    if a.follow_hops {
        return super::audit_hops::export(
            &client,
            a.conn.identity.as_ref(),
            &a.hops,
            &query,
            a.out.as_ref(),
            &a.conn.out,
        )
        .await;
    }

    if a.out.is_some() || a.conn.is_json() {
        let export = audit::export(&client, &query, verifier.as_ref()).await?;
        if let Some(v) = &verifier {
            audit::verify_export(&export, v).context("the hub's answer does not verify")?;
        }
        let th = &export.tree_head;
        match &a.out {
            Some(path) => {
                std::fs::write(path, export.to_json() + "\n").with_context(|| format!("writing {}", path.display()))?;
                if let Some(dir) = &a.tlog_proof {
                    let proofs = audit::tlog_proofs(&client, &export).await?;
                    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
                    for (index, text) in &proofs {
                        let file = dir.join(format!("{index}.{}", truc_core::c2sp::proof::PROOF_EXTENSION));
                        std::fs::write(&file, text).with_context(|| format!("writing {}", file.display()))?;
                    }
                    eprintln!(
                        "wrote {} c2sp.org/tlog-proof files to {}{}",
                        proofs.len(),
                        dir.display(),
                        match export.receipts.len() - proofs.len() {
                            0 => String::new(),
                            n => format!(" ({n} receipts recorded after the witnessed checkpoint left out)"),
                        }
                    );
                }
                a.conn.out.object(
                    json!({
                        "out": path.display().to_string(), "receipts": export.receipts.len(),
                        "tree_size": th.tree_size, "root_hash": th.root_hash, "time_unix_ms": th.time_unix_ms,
                        "complete_range": export.complete_range,
                    }),
                    || {
                        format!(
                            "exported {} receipts{} to {}, proven against the tree head of size {} root {} signed at {}\n",
                            export.receipts.len(),
                            match export.complete_range {
                                Some(r) => format!(" (the whole log, indexes {}..={})", r.first, r.last),
                                None => String::new(),
                            },
                            path.display(),
                            th.tree_size,
                            th.root_hash,
                            output::time(th.time_unix_ms)
                        )
                    },
                );
            }
            None => println!("{}", export.to_json()),
        }
        return Ok(());
    }

    // A table: pages as they come, each proven against its own head.
    let pages = client.all_receipts(query.request()).await?;
    let mut receipts = Vec::new();
    let mut last_head = None;
    for page in &pages {
        let head = page
            .tree_head
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("the hub sent receipts without a tree head"))?;
        for r in &page.receipts {
            let receipt = match &verifier {
                Some(v) => {
                    let mut proven = r.clone();
                    proven.tree_head = Some(head.clone());
                    v.verify_proven_receipt(&proven)
                        .map_err(|e| anyhow::anyhow!("a receipt from the hub does not verify: {e}"))?
                        .0
                }
                None => Receipt::decode(r.receipt.as_slice()).context("the hub sent a receipt that does not decode")?,
            };
            receipts.push(receipt);
        }
        last_head = Some(head);
    }
    let head = match last_head {
        Some(h) => TreeHead::decode(h.tree_head.as_slice()).context("the hub's tree head is malformed")?,
        None => TreeHead::default(),
    };
    let json_row = |r: &Receipt| {
        json!({
            "index": r.index, "time_unix_ms": r.time_unix_ms, "event": Wire::<ReceiptEvent>::from(r.event).to_string(),
            "actor": r.actor, "document_from": r.from, "document_id": r.document_id,
            "recipient": r.recipient, "status_code": output::status_code(r.status_code), "description": r.description,
            "detail": r.detail,
        })
    };
    let table = |headers: bool| {
        let rows: Vec<[String; 7]> = receipts.iter().map(row).collect();
        let mut t = table_of(&rows, headers);
        if headers {
            t += &format!(
                "{} receipts; tree head of size {} root {}{}\n",
                rows.len(),
                head.tree_size,
                truc_core::hex(&head.root_hash),
                if verifier.is_some() {
                    " (every proof verified)"
                } else {
                    ""
                }
            );
        }
        t
    };
    // JSON went out as the export above.
    a.conn.out.list(&receipts, json_row, serde_json::Value::Array, table);
    Ok(())
}

const COLUMNS: [&str; 7] = ["INDEX", "TIME", "EVENT", "ACTOR", "DOCUMENT", "RECIPIENT", "STATUS"];

fn row(r: &Receipt) -> [String; 7] {
    let status = if r.status_code != 0 {
        let mut s = output::status(r.status_code);
        if !r.description.is_empty() {
            s.push_str(&format!(": {}", r.description));
        }
        s
    } else if !r.detail.is_empty() {
        r.detail.clone()
    } else {
        "-".into()
    };
    let or_dash = |s: &str| if s.is_empty() { "-".to_string() } else { s.to_string() };
    [
        r.index.to_string(),
        output::time(r.time_unix_ms),
        Wire::<ReceiptEvent>::from(r.event).to_string(),
        output::actor(&r.actor).to_string(),
        or_dash(&r.document_id),
        or_dash(&r.recipient),
        status,
    ]
}

fn table_of(rows: &[[String; 7]], headers: bool) -> String {
    let mut widths = COLUMNS.map(|c| c.chars().count());
    for r in rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 7]| {
        let mut s = format!("{:>w$}", cells[0], w = widths[0]);
        for (i, cell) in cells.iter().enumerate().skip(1) {
            if i == cells.len() - 1 {
                s.push_str(&format!("  {cell}"));
            } else {
                s.push_str(&format!("  {cell:<w$}", w = widths[i]));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut t = String::new();
    if headers {
        t += &line(COLUMNS);
    }
    for r in rows {
        t += &line([&r[0], &r[1], &r[2], &r[3], &r[4], &r[5], &r[6]].map(|s| s.as_str()));
    }
    t
}

fn verify(a: VerifyArgs) -> anyhow::Result<()> {
    let text = if a.file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading the export from stdin")?
    } else {
        std::fs::read_to_string(&a.file).with_context(|| format!("reading {}", a.file.display()))?
    };
    let verifier = load_key(&a.key.hub_key)?;
    let policy = match a.witnesses {
        Some(k) => Some(audit::WitnessPolicy::new(&a.witness_key, k as usize)?),
        None => None,
    };
    if text.starts_with(truc_core::c2sp::proof::PROOF_HEADER) {
        return verify_proof(&a, &text, &verifier, policy.as_ref());
    }
    if truc_client::audit::hops::is_hops(&text) {
        return super::audit_hops::verify(&text, verifier, &a.hop_keys, &a.out);
    }
    let export = audit::AuditExport::from_json(&text)?;
    let report = match &policy {
        Some(p) => audit::verify_export_witnessed(&export, &verifier, p)?,
        None => audit::verify_export(&export, &verifier)?,
    };
    let witnessed = report.witnessed.as_ref();
    a.out.object(
        json!({
            "verified": true, "receipts": report.receipts, "tree_size": report.tree_size,
            "root_hash": report.root_hash, "time_unix_ms": report.time_unix_ms, "key_id": report.key_id,
            "complete_range": report.complete_range,
            "witnessed_size": witnessed.map(|w| w.size),
            "cosigned_by": witnessed.map(|w| w.cosigned_by.clone()),
        }),
        || {
            format!(
                "verified {} receipts against tree head size {} root {} signed at {} by key {}{}{}\n",
                report.receipts,
                report.tree_size,
                report.root_hash,
                output::time(report.time_unix_ms),
                report.key_id,
                match report.complete_range {
                    Some(r) => format!("; no receipt missing in {}..={}", r.first, r.last),
                    None => String::new(),
                },
                match witnessed {
                    Some(w) => format!(
                        "; every one under the checkpoint of size {} cosigned by {}",
                        w.size,
                        w.cosigned_by.join(", ")
                    ),
                    None => String::new(),
                }
            )
        },
    );
    Ok(())
}

/// `truc audit verify` of a c2sp.org/tlog-proof file.
fn verify_proof(
    a: &VerifyArgs,
    text: &str,
    verifier: &TreeHeadVerifier,
    policy: Option<&audit::WitnessPolicy>,
) -> anyhow::Result<()> {
    let none = audit::WitnessPolicy {
        keys: Vec::new(),
        required: 0,
    };
    let r = audit::verify_tlog_proof(text, verifier, policy.unwrap_or(&none))?;
    let event = Wire::<ReceiptEvent>::from(r.receipt.event).to_string();
    a.out.object(
        json!({
            "verified": true, "index": r.receipt.index, "event": event, "document_id": r.receipt.document_id,
            "witnessed_size": r.size, "cosigned_by": r.cosigned_by,
        }),
        || {
            format!(
                "verified receipt {} ({event}{}) in the checkpoint of size {}{}\n",
                r.receipt.index,
                if r.receipt.document_id.is_empty() {
                    String::new()
                } else {
                    format!(" of {:?}", r.receipt.document_id)
                },
                r.size,
                if r.cosigned_by.is_empty() {
                    String::new()
                } else {
                    format!(" cosigned by {}", r.cosigned_by.join(", "))
                }
            )
        },
    );
    Ok(())
}

async fn watch(a: WatchArgs) -> anyhow::Result<()> {
    let verifier = load_key(&a.key.hub_key)?;
    let client = a.conn.client().await?;
    let mut state = WatchState::load(&a.state)?;
    // A stream: JSON a line per event (--json as --jsonl), CSV a row per
    // event under one header.
    let format = a.conn.format();
    let columns = ["event", "tree_size", "root_hash", "time_unix_ms", "previous_size"].map(String::from);
    if format == output::Format::Csv && a.conn.out.headers() {
        print!("{}", output::csv(&columns, &[], true));
    }
    let say = |event: &str, s: &WatchState, previous: Option<u64>, text: String| {
        let v = json!({
            "event": event, "tree_size": s.tree_size, "root_hash": s.root_hash,
            "time_unix_ms": s.time_unix_ms, "previous_size": previous,
        });
        match format {
            output::Format::Json | output::Format::Jsonl => output::json_line(v),
            output::Format::Csv => print!("{}", output::csv(&columns, &[v], false)),
            output::Format::Table => println!("{text}"),
        }
    };
    loop {
        match check(&client, &verifier, state.as_ref()).await {
            Ok(new) => {
                match &state {
                    None => say(
                        "recorded",
                        &new,
                        None,
                        format!("recorded {new}; later runs prove the log only grows from it"),
                    ),
                    Some(old) if old.tree_size != new.tree_size => say(
                        "consistent",
                        &new,
                        Some(old.tree_size),
                        format!("{new} is consistent with size {} (proof verified)", old.tree_size),
                    ),
                    Some(_) if a.once => say("unchanged", &new, Some(new.tree_size), format!("unchanged: {new}")),
                    Some(_) => {}
                }
                if state.as_ref() != Some(&new) {
                    new.save(&a.state)?;
                }
                state = Some(new);
            }
            // A hub that is briefly unreachable is not evidence of anything.
            Err(AuditError::Rpc(e))
                if !a.once && matches!(e.code(), Some(tonic::Code::Unavailable | tonic::Code::DeadlineExceeded)) =>
            {
                eprintln!("truc: {e} (will retry)");
            }
            // The state file is left as it was: the evidence stays.
            Err(e) => return Err(e.into()),
        }
        if a.once {
            return Ok(());
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(a.interval)) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

async fn check(
    client: &truc_client::Client,
    verifier: &TreeHeadVerifier,
    state: Option<&WatchState>,
) -> Result<WatchState, AuditError> {
    match state {
        None => audit::latest_head(client, verifier).await,
        Some(s) => audit::check_consistency(client, verifier, s).await,
    }
}

fn parse_since(s: &str) -> Result<i64, String> {
    parse_time(s, false)
}

fn parse_until(s: &str) -> Result<i64, String> {
    parse_time(s, true)
}

/// Unix ms, or `YYYY-MM-DD[(T| )HH:MM[:SS[.fff]]][Z|±HH:MM]`, UTC unless an
/// offset is given. A date alone is its first millisecond, or its last when
/// `end_of_day` (for an inclusive --until).
fn parse_time(s: &str, end_of_day: bool) -> Result<i64, String> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().map_err(|_| format!("{s:?} is too large"));
    }
    let bad = || format!("{s:?} is neither Unix milliseconds nor YYYY-MM-DDTHH:MM:SSZ");
    let num = |part: &str, lo: i64, hi: i64| -> Result<i64, String> {
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let n: i64 = part.parse().map_err(|_| bad())?;
        if (lo..=hi).contains(&n) {
            Ok(n)
        } else {
            Err(bad())
        }
    };
    let (date, rest) = match s.find(['T', 't', ' ']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let mut d = date.split('-');
    let (y, m, day) = match (d.next(), d.next(), d.next(), d.next()) {
        (Some(y), Some(m), Some(day), None) if y.len() == 4 => (num(y, 1970, 9999)?, num(m, 1, 12)?, num(day, 1, 31)?),
        _ => return Err(bad()),
    };
    let midnight = truc_core::calendar::civil_day(y, m, day).ok_or_else(bad)? * 86_400_000;
    let Some(rest) = rest else {
        return Ok(if end_of_day { midnight + 86_399_999 } else { midnight });
    };
    // Split off the zone: Z, or a final ±HH:MM; also as tables print it,
    // after a space (`17:15:02 +07:00`, `10:15:02 UTC`).
    let rest = rest
        .strip_suffix(" UTC")
        .map(|c| format!("{c}Z"))
        .unwrap_or_else(|| rest.to_string());
    let rest = rest.as_str();
    let (clock, offset_ms) = if let Some(c) = rest.strip_suffix(['Z', 'z']) {
        (c, 0)
    } else if rest.len() > 6 && matches!(rest.as_bytes()[rest.len() - 6], b'+' | b'-') {
        let (c, zone) = rest.split_at(rest.len() - 6);
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        let (h, m) = zone[1..].split_once(':').ok_or_else(bad)?;
        (c, sign * (num(h, 0, 23)? * 3_600_000 + num(m, 0, 59)? * 60_000))
    } else {
        (rest, 0)
    };
    let clock = clock.strip_suffix(' ').unwrap_or(clock);
    let (hms, frac) = match clock.split_once('.') {
        Some((hms, f)) if !f.is_empty() && f.len() <= 9 => {
            let digits = format!("{f:0<3}");
            (hms, num(&digits[..3], 0, 999)?)
        }
        Some(_) => return Err(bad()),
        None => (clock, 0),
    };
    let mut t = hms.split(':');
    let (h, mi, sec) = match (t.next(), t.next(), t.next(), t.next()) {
        (Some(h), Some(mi), None, None) => (num(h, 0, 23)?, num(mi, 0, 59)?, 0),
        (Some(h), Some(mi), Some(sec), None) => (num(h, 0, 23)?, num(mi, 0, 59)?, num(sec, 0, 60)?),
        _ => return Err(bad()),
    };
    Ok(midnight + ((h * 60 + mi) * 60 + sec) * 1000 + frac - offset_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(parse_time("1700000000123", false), Ok(1_700_000_000_123));
        assert_eq!(parse_time("2023-11-14T22:13:20Z", false), Ok(1_700_000_000_000));
        assert_eq!(parse_time("2023-11-14T22:13:20.123Z", false), Ok(1_700_000_000_123));
        assert_eq!(parse_time("2023-11-14 22:13:20", false), Ok(1_700_000_000_000));
        assert_eq!(parse_time("2023-11-15T05:13:20+07:00", false), Ok(1_700_000_000_000));
        assert_eq!(parse_time("2023-11-14T22:13Z", false), Ok(1_699_999_980_000));
        assert_eq!(parse_time("1970-01-01", false), Ok(0));
        assert_eq!(parse_time("1970-01-01", true), Ok(86_399_999));
        assert_eq!(parse_time("2024-02-29", false), Ok(1_709_164_800_000));
        for bad in [
            "",
            "2023-02-29",
            "2023-13-01",
            "2023-11-14T25:00Z",
            "yesterday",
            "2023-11-14T22",
            "-5",
        ] {
            assert!(parse_time(bad, false).is_err(), "{bad:?}");
        }
        // Round trip with the printer, local and UTC.
        let t = parse_time("2031-07-04T09:08:07Z", false).unwrap();
        assert_eq!(output::time_in(t, None), "2031-07-04 09:08:07 UTC");
        assert_eq!(output::time_in(t, Some(420)), "2031-07-04 16:08:07 +07:00");
        assert_eq!(parse_time("2031-07-04 16:08:07 +07:00", false), Ok(t));
        assert_eq!(parse_time("2031-07-04 09:08:07 UTC", false), Ok(t));
    }
}
