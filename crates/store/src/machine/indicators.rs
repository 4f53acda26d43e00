//! The axis's indicators (issue 17): per agency and per day in the axis's
//! local time, documents sent, received, refused, confirmed on time and
//! late, dead-lettered, and their bytes; the whole hub under the empty
//! code. Counted as each receipt is appended (`count`, called from
//! `Pending::append_receipt` only), in the same atomic batch, so they are
//! exactly as durable as the receipts and never need a scan of the log.
//!
//! | receipt | agency | counter |
//! |---|---|---|
//! | ACCEPTED | sender | `sent`, `bytes_sent` (payload size) |
//! | DELIVERED of a document (no status code) | recipient | `received`, `bytes_received` |
//! | STATUS_REPORTED 02, the copy's first 02 | recipient | `refused` |
//! | STATUS_REPORTED 01 or 03, the copy's first 01/02/03 | recipient | `confirmed_on_time` or `confirmed_late` |
//! | DEAD_LETTERED of a document | recipient | `dead_lettered` |
//! | DELIVERED of a document after its delivery deadline | recipient | `overdue_urgent`, `overdue_very_urgent` or `overdue_express` by the document's priority |
//!
//! Days are local days of the axis's calendar (`[calendar]`,
//! `truc_core::Calendar`). On time means at or before the copy's
//! confirmation deadline as its `S` record holds it. Copies accepted since
//! the working-day calendar have the working-day deadline
//! (`Calendar::confirmation_deadline` of the ACCEPTED receipt's time: "the
//! same day, at the latest the next working day"); copies accepted by
//! earlier versions keep the deadline they were given then (the end of the
//! local day they were accepted on). The counters and their keys are
//! unchanged, so a store written before opens and keeps its figures.

use prost::Message;
use truc_core::calendar;
use truc_proto::v1::{Priority, ReceiptEvent, StatusCode};

use super::batch::Batch;
use crate::keys::{self, tag};
use crate::records::{DocumentRecord, RecipientState};
use crate::StoreError;

const DAY_MS: i64 = 86_400_000;

/// One bucket's counters (stored under `V`).
#[derive(Clone, Copy, PartialEq, Eq, Message)]
pub struct Counts {
    /// Documents accepted from the agency.
    #[prost(uint64, tag = "1")]
    pub sent: u64,
    /// Copies delivered to (acknowledged by) the agency.
    #[prost(uint64, tag = "2")]
    pub received: u64,
    /// Copies the agency refused (status 02).
    #[prost(uint64, tag = "3")]
    pub refused: u64,
    /// Copies confirmed (01 or 03) by the deadline.
    #[prost(uint64, tag = "4")]
    pub confirmed_on_time: u64,
    /// Copies confirmed (01 or 03) after it.
    #[prost(uint64, tag = "5")]
    pub confirmed_late: u64,
    /// Copies for the agency given up after the delivery attempts.
    #[prost(uint64, tag = "6")]
    pub dead_lettered: u64,
    /// Payload bytes of the documents sent.
    #[prost(uint64, tag = "7")]
    pub bytes_sent: u64,
    /// Payload bytes of the copies received.
    #[prost(uint64, tag = "8")]
    pub bytes_received: u64,
    /// Khẩn copies delivered after their delivery deadline
    /// (`deadlines.urgent_ms` from acceptance).
    #[prost(uint64, tag = "9")]
    pub overdue_urgent: u64,
    /// Thượng khẩn copies delivered after their delivery deadline.
    #[prost(uint64, tag = "10")]
    pub overdue_very_urgent: u64,
    /// Hỏa tốc (and hỏa tốc hẹn giờ) copies delivered after their delivery
    /// deadline.
    #[prost(uint64, tag = "11")]
    pub overdue_express: u64,
}

impl Counts {
    /// Add `o` to these.
    pub fn add(&mut self, o: &Counts) {
        self.sent += o.sent;
        self.received += o.received;
        self.refused += o.refused;
        self.confirmed_on_time += o.confirmed_on_time;
        self.confirmed_late += o.confirmed_late;
        self.dead_lettered += o.dead_lettered;
        self.bytes_sent += o.bytes_sent;
        self.bytes_received += o.bytes_received;
        self.overdue_urgent += o.overdue_urgent;
        self.overdue_very_urgent += o.overdue_very_urgent;
        self.overdue_express += o.overdue_express;
    }
}

/// One stored bucket: an agency (empty: the whole hub) on one local day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndicatorRow {
    /// Agency code, or "" for the hub's totals.
    pub agency: String,
    /// Local day, days since 1970-01-01.
    pub day: i64,
    /// Its counters.
    pub counts: Counts,
}

/// The local day (days since 1970-01-01) of `unix_ms` at `utc_offset_minutes`.
pub fn local_day(unix_ms: i64, utc_offset_minutes: i32) -> i64 {
    (unix_ms + i64::from(utc_offset_minutes) * 60_000).div_euclid(DAY_MS)
}

/// Parse `YYYY-MM-DD` into a day number; `None` for an impossible date.
pub fn parse_date(s: &str) -> Option<i64> {
    calendar::parse_date(s).map(calendar::day_number)
}

/// `YYYY-MM-DD` of a day number.
pub fn format_date(day: i64) -> String {
    calendar::format_date(calendar::date_of_day(day))
}

fn key(agency: &str, day: i64) -> Vec<u8> {
    let mut k = keys::queue_prefix(tag::INDICATORS, agency);
    k.extend_from_slice(&(day.clamp(0, i64::from(u32::MAX)) as u32).to_be_bytes());
    k
}

fn bump(p: &mut Batch<'_>, agency: &str, day: i64, f: impl Fn(&mut Counts)) -> Result<(), StoreError> {
    for code in [agency, ""] {
        let k = key(code, day);
        let mut c: Counts = p.get_msg(&k, "indicator counts")?.unwrap_or_default();
        f(&mut c);
        p.put(k, c.encode_to_vec());
    }
    Ok(())
}

fn document(p: &Batch<'_>, hub_id: u64) -> Result<Option<DocumentRecord>, StoreError> {
    p.get_msg::<DocumentRecord>(&keys::document(hub_id), "document record")
}

fn payload_size(p: &Batch<'_>, hub_id: u64) -> Result<u64, StoreError> {
    Ok(document(p, hub_id)?.map_or(0, |d| d.payload_size))
}

/// Count `r` (about to be appended at the batch's time) into its agency's
/// and the hub's bucket of the day.
pub(crate) fn count(p: &mut Batch<'_>, r: &truc_proto::v1::Receipt) -> Result<(), StoreError> {
    let day = p.calendar.local_day(p.time_unix_ms);
    match ReceiptEvent::try_from(r.event) {
        Ok(ReceiptEvent::Accepted) => {
            let bytes = payload_size(p, r.hub_document_id)?;
            bump(p, &r.from, day, |c| {
                c.sent += 1;
                c.bytes_sent += bytes;
            })
        }
        Ok(ReceiptEvent::Delivered) if r.status_code == 0 => {
            let doc = document(p, r.hub_document_id)?;
            let bytes = doc.as_ref().map_or(0, |d| d.payload_size);
            let s: RecipientState = p
                .get_msg(&keys::recipient(r.hub_document_id, &r.recipient), "recipient state")?
                .unwrap_or_default();
            let overdue = s.delivery_deadline_unix_ms > 0 && p.time_unix_ms > s.delivery_deadline_unix_ms;
            let priority = doc.map_or(0, |d| d.priority);
            bump(p, &r.recipient, day, |c| {
                c.received += 1;
                c.bytes_received += bytes;
                if overdue {
                    match Priority::try_from(priority) {
                        Ok(Priority::Urgent) => c.overdue_urgent += 1,
                        Ok(Priority::VeryUrgent) => c.overdue_very_urgent += 1,
                        Ok(Priority::Express | Priority::TimedExpress) => c.overdue_express += 1,
                        _ => {}
                    }
                }
            })
        }
        Ok(ReceiptEvent::DeadLettered) if r.status_code == 0 => bump(p, &r.recipient, day, |c| c.dead_lettered += 1),
        Ok(ReceiptEvent::StatusReported) if !r.recipient.is_empty() => {
            // The copy's state before this report (the report updates it
            // after its receipt is appended).
            let s: RecipientState = p
                .get_msg(&keys::recipient(r.hub_document_id, &r.recipient), "recipient state")?
                .unwrap_or_default();
            let confirmed_before = [StatusCode::Arrived, StatusCode::Refused, StatusCode::Registered]
                .iter()
                .any(|c| *c as i32 == s.status);
            let late = s.confirm_deadline_unix_ms > 0 && p.time_unix_ms > s.confirm_deadline_unix_ms;
            match StatusCode::try_from(r.status_code) {
                Ok(StatusCode::Refused) if s.status != StatusCode::Refused as i32 => {
                    bump(p, &r.recipient, day, |c| c.refused += 1)
                }
                Ok(StatusCode::Arrived | StatusCode::Registered) if !confirmed_before => {
                    bump(p, &r.recipient, day, |c| {
                        if late {
                            c.confirmed_late += 1
                        } else {
                            c.confirmed_on_time += 1
                        }
                    })
                }
                _ => Ok(()),
            }
        }
        _ => Ok(()),
    }
}

/// The stored buckets of local days `from..=to`, of one agency (with
/// `Some`) or of every agency in `agencies` and the hub (`None`), ordered
/// by agency then day.
pub(crate) fn read(
    tree: &crate::sled::view::Tree,
    from: i64,
    to: i64,
    agency: Option<&str>,
    agencies: &[String],
) -> Result<Vec<IndicatorRow>, StoreError> {
    let mut codes: Vec<&str> = match agency {
        Some(a) => vec![a],
        None => std::iter::once("").chain(agencies.iter().map(String::as_str)).collect(),
    };
    codes.sort_unstable();
    codes.dedup();
    let mut out = Vec::new();
    for code in codes {
        for kv in tree.range(key(code, from)..=key(code, to)) {
            let (k, v) = kv?;
            let day = k
                .len()
                .checked_sub(4)
                .and_then(|at| k[at..].try_into().ok())
                .map(u32::from_be_bytes)
                .ok_or_else(|| StoreError::corrupt("indicator key"))?;
            let counts = Counts::decode(v.as_ref()).map_err(|e| StoreError::corrupt_from("indicator counts", e))?;
            out.push(IndicatorRow {
                agency: code.to_string(),
                day: i64::from(day),
                counts,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_days_follow_the_offset() {
        // 2026-11-02 16:59:59.999 UTC is 23:59:59.999 in Vietnam (+7);
        // a millisecond later it is the 3rd there.
        let t = parse_date("2026-11-02").unwrap() * DAY_MS + 17 * 3_600_000 - 1;
        assert_eq!(format_date(local_day(t, 420)), "2026-11-02");
        assert_eq!(format_date(local_day(t + 1, 420)), "2026-11-03");
        assert_eq!(format_date(local_day(t + 1, 0)), "2026-11-02");
        assert_eq!(format_date(local_day(0, -60)), "1969-12-31");
    }

    #[test]
    fn dates_round_trip_and_impossible_ones_are_refused() {
        for d in [0, 1, 59, 365, 10_957, 20_758, 20_819, 47_482] {
            let s = format_date(d);
            assert_eq!(parse_date(&s), Some(d), "{s}");
        }
        assert_eq!(parse_date("2026-11-01"), Some(20_758));
        assert_eq!(parse_date("2026-02-29"), None);
        assert_eq!(parse_date("2028-02-29").map(format_date).as_deref(), Some("2028-02-29"));
        assert_eq!(parse_date("2026-13-01"), None);
        assert_eq!(parse_date("yesterday"), None);
    }
}
