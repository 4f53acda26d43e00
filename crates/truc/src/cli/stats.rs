//! `truc ops stats` and `truc stats`: the axis's indicators for a period.

use std::fmt::Write as _;

use serde_json::json;
use truc_proto::v1::{GetStatsResponse, StatsGrouping};

use super::Conn;

/// The period, grouping and format shared by both commands.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct StatsArgs {
    /// First local day, YYYY-MM-DD (the axis's time zone,
    /// calendar.utc_offset_minutes).
    #[arg(long, value_name = "DATE")]
    from: String,
    /// Last local day, YYYY-MM-DD, included.
    #[arg(long, value_name = "DATE")]
    to: String,
    /// One row per day or per month.
    #[arg(long, default_value = "day", value_parser = super::names::parser::<StatsGrouping>())]
    by: StatsGrouping,
    /// Same as -o csv (kept from before -o).
    #[arg(long, conflicts_with_all = ["json", "jsonl", "output"])]
    csv: bool,
}

/// Run with `agency` ("" = all the caller may see).
pub(crate) async fn run(a: StatsArgs, agency: &str, conn: Conn) -> anyhow::Result<()> {
    let r = conn.client().await?.stats(&a.from, &a.to, agency, a.by).await?;
    // The hub's own offset, for every time shown from here on (0 also from a
    // hub too old to say: keep TRUC_UTC_OFFSET's then).
    if r.utc_offset_minutes != 0 {
        super::output::use_hub_offset(r.utc_offset_minutes);
    }
    let mut out = conn.out.clone();
    if a.csv {
        out.output = Some(super::output::Format::Csv);
    }
    out.list(
        &r.rows,
        truc_hub::stats::row_json,
        |rows| json!({"utc_offset_minutes": r.utc_offset_minutes, "rows": rows}),
        |headers| table(&r, headers),
    );
    Ok(())
}

fn agency_label(a: &str) -> &str {
    if a.is_empty() {
        "(hub)"
    } else {
        a
    }
}

fn table(r: &GetStatsResponse, headers: bool) -> String {
    let off = r.utc_offset_minutes;
    let mut out = String::new();
    if headers {
        let _ = writeln!(
            out,
            "local time UTC{}{:02}:{:02}; on time = confirmed (01/03) by the copy's deadline: the same day, at the \
             latest the next working day (truc track shows it)",
            if off < 0 { '-' } else { '+' },
            off.abs() / 60,
            off.abs() % 60
        );
        let _ = writeln!(
            out,
            "{:<10} {:<18} {:>8} {:>8} {:>7} {:>8} {:>6} {:>5} {:>12} {:>12} {:>8}",
            "period",
            "agency",
            "sent",
            "received",
            "refused",
            "on time",
            "late",
            "dead",
            "bytes sent",
            "bytes recv",
            "overdue"
        );
    }
    for s in &r.rows {
        let _ = writeln!(
            out,
            "{:<10} {:<18} {:>8} {:>8} {:>7} {:>8} {:>6} {:>5} {:>12} {:>12} {:>8}",
            s.period,
            agency_label(&s.agency),
            s.sent,
            s.received,
            s.refused,
            s.confirmed_on_time,
            s.confirmed_late,
            s.dead_lettered,
            s.bytes_sent,
            s.bytes_received,
            s.overdue_urgent + s.overdue_very_urgent + s.overdue_express
        );
    }
    if headers && r.rows.is_empty() {
        out.push_str("(nothing in this period)\n");
    }
    out
}
