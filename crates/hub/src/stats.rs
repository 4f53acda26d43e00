//! The axis's indicators for a period, grouped by day or month: one
//! function for `Ops.GetStats` and the console, over the counters the store
//! keeps as it commits receipts (`truc_store::indicators`).

use std::collections::BTreeMap;

use tonic::Status;
use truc_core::{AgencyCode, Principal};
use truc_proto::v1::{StatsGrouping, StatsRow};
use truc_store::indicators::{self, Counts};

use crate::{status, Shared};

/// The console's CSV columns, in order: the keys of a row's JSON, as
/// `truc ops stats -o csv` prints them too.
pub(crate) const CSV_COLUMNS: [&str; 10] = [
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
];

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
        })
        .collect())
}
