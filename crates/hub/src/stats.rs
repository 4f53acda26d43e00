//! The axis's indicators for a period, grouped by day or month: one
//! function for `Ops.GetStats` and the console, over the counters the store
//! keeps as it commits receipts (`truc_store::indicators`).

use std::collections::BTreeMap;

use tonic::Status;
use truc_core::{AgencyCode, Principal};
use truc_proto::v1::{StatsGrouping, StatsRow};
use truc_store::indicators::{self, Counts};

use crate::{status, Shared};

/// The columns of every CSV of the indicators (the console's download,
/// `truc ops stats -o csv`): the keys of [`row_json`], in order.
pub const COLUMNS: [&str; 13] = [
    "period",
    "agency",
    "sent",
    "received",
    "refused",
    "confirmed_on_time",
    "confirmed_late",
    "dead_lettered",
    "bytes_sent",
    "bytes_received",
    "overdue_urgent",
    "overdue_very_urgent",
    "overdue_express",
];

/// One row as JSON, with the keys of [`COLUMNS`].
pub fn row_json(s: &StatsRow) -> serde_json::Value {
    serde_json::json!({
        "period": s.period, "agency": s.agency, "sent": s.sent, "received": s.received,
        "refused": s.refused, "confirmed_on_time": s.confirmed_on_time,
        "confirmed_late": s.confirmed_late, "dead_lettered": s.dead_lettered,
        "bytes_sent": s.bytes_sent, "bytes_received": s.bytes_received,
        "overdue_urgent": s.overdue_urgent, "overdue_very_urgent": s.overdue_very_urgent,
        "overdue_express": s.overdue_express,
    })
}

/// The rows as CSV: a header of [`COLUMNS`], then one record per row.
pub fn csv(rows: &[StatsRow]) -> String {
    let mut out = String::new();
    truc_core::csv::write_record(&mut out, COLUMNS);
    for r in rows {
        let v = row_json(r);
        truc_core::csv::write_record(
            &mut out,
            COLUMNS.iter().map(|k| match &v[*k] {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            }),
        );
    }
    out
}

/// The longest period one query may cover, days.
const MAX_DAYS: i64 = 3660;

/// What a caller asked for.
pub(crate) struct StatsQuery {
    pub(crate) from_date: String,
    pub(crate) to_date: String,
    pub(crate) agency: String,
    pub(crate) by_month: bool,
}

impl StatsQuery {
    pub(crate) fn new(from_date: String, to_date: String, agency: String, by: i32) -> Result<Self, Status> {
        let by_month = match StatsGrouping::try_from(by) {
            Ok(StatsGrouping::Unspecified | StatsGrouping::Day) => false,
            Ok(StatsGrouping::Month) => true,
            Err(_) => return Err(Status::invalid_argument(format!("by {by}: use DAY (1) or MONTH (2)"))),
        };
        Ok(Self {
            from_date,
            to_date,
            agency,
            by_month,
        })
    }
}

fn day(what: &str, s: &str) -> Result<i64, Status> {
    indicators::parse_date(s).ok_or_else(|| {
        Status::invalid_argument(format!("{what} {s:?} is not a date; write YYYY-MM-DD, e.g. 2026-11-01"))
    })
}

/// The rows `caller` may see for `q`: an agency its own only (no hub
/// totals), operators and auditors everything.
pub(crate) async fn rows(shared: &Shared, caller: &Principal, q: StatsQuery) -> Result<Vec<StatsRow>, Status> {
    let from = day("from_date", &q.from_date)?;
    let to = day("to_date", &q.to_date)?;
    if to < from {
        return Err(Status::invalid_argument("to_date is before from_date"));
    }
    if to - from >= MAX_DAYS {
        return Err(Status::invalid_argument(format!(
            "the period has {} days; ask for at most {MAX_DAYS} at once",
            to - from + 1
        )));
    }
    let agency = match (caller, q.agency.trim()) {
        (Principal::Agency(own), "") => Some(own.clone()),
        (Principal::Agency(own), a) if a == own.as_str() => Some(own.clone()),
        (Principal::Agency(own), a) => {
            return Err(Status::permission_denied(format!(
                "{own} may see its own figures only, not {a}'s"
            )))
        }
        (Principal::Operator(_) | Principal::Auditor(_), "") => None,
        (Principal::Operator(_) | Principal::Auditor(_), a) => Some(AgencyCode::parse(a).map_err(status::from_core)?),
        (p, _) => return Err(Status::permission_denied(format!("{p} may not read the indicators"))),
    };
    let stored = shared
        .store
        .indicators(from, to, agency)
        .await
        .map_err(status::from_store)?;
    let mut grouped: BTreeMap<(String, String), Counts> = BTreeMap::new();
    for r in stored {
        let date = indicators::format_date(r.day);
        let period = if q.by_month { date[..7].to_string() } else { date };
        grouped.entry((r.agency, period)).or_default().add(&r.counts);
    }
    Ok(grouped
        .into_iter()
        .map(|((agency, period), c)| StatsRow {
            period,
            agency,
            sent: c.sent,
            received: c.received,
            refused: c.refused,
            confirmed_on_time: c.confirmed_on_time,
            confirmed_late: c.confirmed_late,
            dead_lettered: c.dead_lettered,
            bytes_sent: c.bytes_sent,
            bytes_received: c.bytes_received,
            overdue_urgent: c.overdue_urgent,
            overdue_very_urgent: c.overdue_very_urgent,
            overdue_express: c.overdue_express,
        })
        .collect())
}
