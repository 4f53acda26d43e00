//! `truc ops peers` and `truc ops peer pause|resume`: the peer hubs this
//! hub forwards to (federation).

use std::fmt::Write as _;

use clap::Subcommand;
use serde_json::json;
use truc_proto::names::Wire;
use truc_proto::v1::{PeerLink, PeerLinkState};

use super::output;
use super::Conn;

#[derive(Debug, Subcommand)]
pub(crate) enum PeerCommand {
    /// Pause forwarding to a peer hub. Documents routed to it are still
    /// accepted and wait in its outbox, which keeps growing: nothing is
    /// dropped or dead-lettered for the pause. An item being handed over at
    /// that moment completes. Recorded as an operator-action receipt, and
    /// kept in the hub's data_dir/paused-peers.json, so the pause survives a
    /// restart of the hub (with the JetStream store each hub process keeps
    /// its own: pause the peer on every hub of the cluster).
    ///
    /// Example: truc ops peer pause national --reason "bảo trì đường truyền"
    Pause {
        /// The peer's id (`truc ops peers` lists them).
        id: String,
        /// Why (recorded in the receipt).
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Resume forwarding to a paused peer hub: what waited goes first, in
    /// priority then arrival order. Recorded as an operator-action receipt.
    ///
    /// Example: truc ops peer resume national --reason "đường truyền ổn định"
    Resume {
        /// The peer's id.
        id: String,
        /// Why (recorded in the receipt).
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        conn: Conn,
    },
}

/// A peer's row as JSON (and CSV).
fn row(p: &PeerLink) -> serde_json::Value {
    json!({
        "id": p.id, "address": p.address, "state": Wire::<PeerLinkState>::from(p.state).to_string(),
        "state_since_unix_ms": p.state_since_unix_ms, "queued": p.queued, "bytes": p.bytes,
        "oldest_age_ms": p.oldest_age_ms, "forwarded": p.forwarded, "refused": p.refused,
        "dead_letters": p.dead_letters, "last_error": p.last_error, "serves": p.serves,
        "default_route": p.default_route, "paused_by": p.paused_by, "pause_reason": p.pause_reason,
        "unreachable": p.unreachable,
    })
}

/// The state for people: `paused (by operator:ops: bảo trì)`, `unreachable`.
fn state(p: &PeerLink) -> String {
    let s = Wire::<PeerLinkState>::from(p.state).to_string();
    if p.state != PeerLinkState::Paused as i32 {
        return s;
    }
    let by = output::actor(&p.paused_by);
    match (by.is_empty(), p.pause_reason.is_empty()) {
        (true, _) => s,
        (false, true) => format!("{s} by {by}"),
        (false, false) => format!("{s} by {by}: {}", p.pause_reason),
    }
}

fn table(peers: &[PeerLink], headers: bool) -> String {
    let now = truc_core::now_unix_ms();
    let rows: Vec<[String; 10]> = peers
        .iter()
        .map(|p| {
            [
                format!("{}{}", p.id, if p.default_route { " (default)" } else { "" }),
                p.address.clone(),
                state(p),
                match p.state_since_unix_ms {
                    0 => "-".into(),
                    t => format!("{} ago", super::ops::age((now - t).max(1))),
                },
                p.queued.to_string(),
                output::human_bytes(p.bytes as f64),
                super::ops::age(p.oldest_age_ms),
                format!("{}/{}", p.forwarded, p.refused),
                p.dead_letters.to_string(),
                if p.last_error.is_empty() {
                    "-".into()
                } else {
                    p.last_error.clone()
                },
            ]
        })
        .collect();
    let head = [
        "PEER",
        "ADDRESS",
        "STATE",
        "SINCE",
        "QUEUED",
        "BYTES",
        "OLDEST",
        "FWD/REFUSED",
        "DEAD",
        "LAST ERROR",
    ];
    let mut widths = head.map(|h| h.chars().count());
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    // Numbers to the right; the last column is not padded.
    let right = [false, false, false, false, true, true, true, true, true, false];
    let mut t = String::new();
    let mut line = |cells: [&str; 10]| {
        let mut l = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let pad = widths[i].saturating_sub(cell.chars().count());
            let sep = if i == 0 { "" } else { "  " };
            if i == cells.len() - 1 {
                l += &format!("{sep}{cell}");
            } else if right[i] {
                l += &format!("{sep}{}{cell}", " ".repeat(pad));
            } else {
                l += &format!("{sep}{cell}{}", " ".repeat(pad));
            }
        }
        let _ = writeln!(t, "{}", l.trim_end());
    };
    if headers {
        line(head);
    }
    for r in &rows {
        line([&r[0], &r[1], &r[2], &r[3], &r[4], &r[5], &r[6], &r[7], &r[8], &r[9]].map(String::as_str));
    }
    if headers && peers.is_empty() {
        let _ = writeln!(t, "no peers: this hub has no [[peers]] in its configuration");
    }
    t
}

/// `truc ops peers`.
pub(crate) async fn list(conn: &Conn) -> anyhow::Result<()> {
    let peers = conn.client().await?.peers().await?;
    conn.out
        .list(&peers, row, serde_json::Value::Array, |h| table(&peers, h));
    Ok(())
}

/// `truc ops peer pause|resume`.
pub(crate) async fn run(cmd: PeerCommand) -> anyhow::Result<()> {
    let (id, paused, reason, conn) = match cmd {
        PeerCommand::Pause { id, reason, conn } => (id, true, reason, conn),
        PeerCommand::Resume { id, reason, conn } => (id, false, reason, conn),
    };
    let p = conn.client().await?.set_peer_paused(&id, paused, &reason).await?;
    conn.out.object(row(&p), || {
        let mut t = String::new();
        if paused {
            let _ = writeln!(
                t,
                "forwarding to {} is paused; {} item(s) wait in its outbox (truc ops peer resume {} to resume)",
                p.id, p.queued, p.id
            );
        } else {
            let _ = writeln!(
                t,
                "forwarding to {} resumed ({}); {} item(s) waiting go first",
                p.id,
                state(&p),
                p.queued
            );
        }
        t
    });
    Ok(())
}
