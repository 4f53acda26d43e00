//! `truc status` and `truc track`: business statuses and where a sent
//! document is.

use std::fmt::Write as _;

use serde_json::json;
use truc_proto::names::Wire;
use truc_proto::v1::{BusinessType, Priority, StaffInfo, StatusCode, TransportState};

use super::output;
use super::Conn;

#[derive(Debug, clap::Args)]
#[command(after_long_help = truc_core::status_rules::help())]
pub(crate) struct StatusArgs {
    /// The document id (edXML DocumentId).
    #[arg(required_unless_present = "edxml")]
    document_id: Option<String>,
    /// 01 arrived, 02 refused (needs --reason), 03 registered, 04 assigned,
    /// 05 processing, 06 done; 13 take back (sender); 15 agree, 16 refuse
    /// (answer to a take-back, revoke or update). Which may follow which:
    /// the rules below (--help).
    #[arg(long, value_name = "NN", required_unless_present = "edxml", value_parser = super::names::parser::<StatusCode>())]
    code: Option<StatusCode>,
    /// Report the status an edXML status message states (QCVN 102:2016:
    /// From, ResponseFor, StaffInfo, StatusCode, Description, Timestamp)
    /// instead of DOCUMENT_ID and --code. From must be your agency; the
    /// document is ResponseFor/DocumentId. The hub records its own time (the
    /// message's Timestamp is not kept).
    #[arg(long, value_name = "STATUS.edxml", conflicts_with_all = ["document_id", "code", "reason", "from", "staff", "department"])]
    edxml: Option<std::path::PathBuf>,
    /// Reason or note (required for 02).
    #[arg(long, default_value = "")]
    reason: String,
    /// The document's sender; default: the code before the first comma of
    /// the document id, as edXML document ids begin.
    #[arg(long, value_name = "CODE", value_parser = super::agency_code)]
    from: Option<String>,
    /// Who handled it (edXML StaffInfo/Staff).
    #[arg(long)]
    staff: Option<String>,
    /// The handling department (edXML StaffInfo/Department).
    #[arg(long)]
    department: Option<String>,
    #[command(flatten)]
    conn: Conn,
}

/// The sender code a document id begins with (`000.00.00.G22,2026/…`).
pub(crate) fn sender_of(document_id: &str) -> Option<&str> {
    document_id.split_once(',').map(|(from, _)| from)
}

/// A recipient's transport state, by name.
fn state(s: i32) -> Wire<TransportState> {
    Wire::from(s)
}

pub(crate) async fn status(a: StatusArgs) -> anyhow::Result<()> {
    let client = a.conn.client().await?;
    let req = match &a.edxml {
        Some(path) => from_edxml(&client, path).await?,
        None => from_flags(&a)?,
    };
    let receipt = client
        .report_status(
            &req.document_from,
            &req.document_id,
            req.code,
            &req.description,
            req.staff,
        )
        .await?;
    let (code, from, document_id) = (req.code, req.document_from, req.document_id);
    a.conn.out.object(
        json!({"document_id": document_id, "from": from, "code": output::status_code(code), "receipt": output::receipt_json(&receipt)}),
        || {
            format!(
                "reported {} on {:?} from {from}; receipt recorded\n",
                output::status(code),
                document_id
            )
        },
    );
    Ok(())
}

/// The status the flags state.
fn from_flags(a: &StatusArgs) -> anyhow::Result<truc_proto::v1::ReportStatusRequest> {
    // clap requires both without --edxml.
    let (Some(document_id), Some(code)) = (&a.document_id, &a.code) else {
        anyhow::bail!("pass DOCUMENT_ID and --code (or --edxml STATUS.edxml)");
    };
    let code = *code as i32;
    let document_from = match &a.from {
        Some(f) => f.clone(),
        None => sender_of(document_id)
            .ok_or_else(|| anyhow::anyhow!("cannot tell the sender from {document_id:?}; pass --from CODE"))?
            .to_string(),
    };
    let staff = (a.staff.is_some() || a.department.is_some()).then(|| StaffInfo {
        staff: a.staff.clone().unwrap_or_default(),
        department: a.department.clone().unwrap_or_default(),
        ..Default::default()
    });
    Ok(truc_proto::v1::ReportStatusRequest {
        document_from,
        document_id: document_id.clone(),
        code,
        description: a.reason.clone(),
        staff,
    })
}

/// The status an edXML status message states, from the caller's agency;
/// what the hub does not keep of it is said on stderr.
async fn from_edxml(
    client: &truc_client::Client,
    path: &std::path::Path,
) -> anyhow::Result<truc_proto::v1::ReportStatusRequest> {
    let fix = |m: String| {
        super::errors::Problem::usage(m).hint(format!(
            "correct the status message and report it again; nothing was reported ({})",
            path.display()
        ))
    };
    let caller = client
        .identity()
        .principal
        .agency()
        .map(|c| c.to_string())
        .ok_or_else(|| super::errors::Problem::refused("only an agency reports a status"))?;
    let file = std::fs::File::open(path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    // A status message is small: a few KiB; 1 MiB at most is read.
    let p = truc_edxml::parse(
        std::io::BufReader::new(file),
        truc_edxml::Limits::new(1 << 20),
        &mut truc_edxml::Discard,
    )
    .map_err(|e| fix(format!("{}: refused: {e}", path.display())))?;
    let req = truc_client::edxml::status_request(&p, &caller).map_err(|e| {
        let kind = if e.element.ends_with("From/OrganId") {
            super::errors::Kind::Refused
        } else {
            super::errors::Kind::Usage
        };
        super::errors::Problem::new(kind, format!("{}: {e}", path.display())).hint(
            "nothing was reported: correct the status message (From is your agency, ResponseFor names the document)",
        )
    })?;
    let name = match client.lookup_agencies(std::slice::from_ref(&caller)).await {
        Ok(list) => list.into_iter().next().map(|e| e.name),
        Err(_) => None,
    };
    for w in truc_client::edxml::status_not_carried(&p, &req, name.as_deref()) {
        eprintln!("truc: warning: {}: {} (not carried)", w.element, w.reason);
    }
    Ok(req)
}

#[derive(Debug, clap::Args)]
pub(crate) struct TrackArgs {
    /// Your document's id.
    document_id: String,
    #[command(flatten)]
    conn: Conn,
}

/// Deliveries made to a recipient: the leases that ran out, and the one
/// that was acknowledged if it was (the hub counts only the former).
fn tries(r: &truc_proto::v1::RecipientTrack) -> u32 {
    let delivered = r.state == TransportState::Delivered as i32;
    r.attempts + u32::from(delivered)
}

pub(crate) async fn track(a: TrackArgs) -> anyhow::Result<()> {
    let t = a.conn.client().await?.track(&a.document_id).await?;
    let row = |r: &truc_proto::v1::RecipientTrack| {
        json!({
            "agency": r.agency, "state": state(r.state).to_string(), "attempts": tries(r),
            "expired_leases": r.attempts,
            "state_at_unix_ms": r.state_at_unix_ms, "status": output::status_code(r.status),
            "status_description": r.status_description, "status_at_unix_ms": r.status_at_unix_ms,
            "delivery_deadline_unix_ms": r.delivery_deadline_unix_ms,
            "confirm_deadline_unix_ms": r.confirm_deadline_unix_ms, "overdue": r.overdue,
            "past_due": r.past_due, "via_hub": r.via_hub,
        })
    };
    let doc = |rows: Vec<serde_json::Value>| {
        json!({
            "hub_document_id": t.hub_document_id, "document_id": t.document_id,
            "accepted_at_unix_ms": t.accepted_at_unix_ms, "priority": t.priority,
            "subject": t.subject, "due_date_unix_ms": t.due_date_unix_ms, "recipients": rows,
            "corrections": t.corrections.iter().map(|c| json!({
                "business_type": c.business_type, "kind": Wire::<BusinessType>::from(c.business_type).to_string(),
                "document_id": c.document_id, "hub_document_id": c.hub_document_id,
                "accepted_at_unix_ms": c.accepted_at_unix_ms, "reason": c.reason, "agencies": c.agencies,
            })).collect::<Vec<_>>(),
        })
    };
    let table = |headers: bool| {
        let mut out = String::new();
        if headers {
            let _ = writeln!(
                out,
                "{:?} [{}] {:?}, accepted {} as hub document {}",
                t.document_id,
                Wire::<Priority>::from(t.priority),
                t.subject,
                output::time(t.accepted_at_unix_ms),
                t.hub_document_id
            );
            if t.due_date_unix_ms > 0 {
                let _ = writeln!(out, "due (hạn xử lý) {}", output::time(t.due_date_unix_ms));
            }
            let _ = writeln!(
                out,
                "{:<20} {:<14} {:>8}  {:<24} {:<24} {:<24} NOTE",
                "RECIPIENT", "TRANSPORT", "ATTEMPTS", "SINCE", "STATUS", "AT"
            );
        }
        for r in &t.recipients {
            let at = if r.status_at_unix_ms > 0 {
                output::time(r.status_at_unix_ms)
            } else {
                "-".into()
            };
            let mut note = r.status_description.clone();
            if r.past_due {
                note = format!("PAST DUE {note}");
            }
            if r.overdue {
                note = format!("OVERDUE {note}");
            }
            if !r.via_hub.is_empty() {
                // On another hub: this hub forwards to (and hears from) the peer.
                note = format!("via hub {} {note}", r.via_hub);
            }
            let _ = writeln!(
                out,
                "{:<20} {:<14} {:>8}  {:<24} {:<24} {:<24} {}",
                r.agency,
                state(r.state),
                tries(r),
                output::time(r.state_at_unix_ms),
                output::status(r.status),
                at,
                note.trim()
            );
        }
        if headers {
            for c in &t.corrections {
                let _ = writeln!(
                    out,
                    "{}: hub document {} ({:?}) at {}{}: {}",
                    Wire::<BusinessType>::from(c.business_type),
                    c.hub_document_id,
                    c.document_id,
                    output::time(c.accepted_at_unix_ms),
                    if c.reason.is_empty() {
                        String::new()
                    } else {
                        format!(", {:?}", c.reason)
                    },
                    c.agencies.join(" "),
                );
            }
        }
        out
    };
    a.conn.out.list(&t.recipients, row, doc, table);
    Ok(())
}
