//! The axis's indicators (Ops.GetStats) against a recomputation from the
//! audit log:
//! - across a real local midnight: the hub runs at a UTC offset chosen so
//!   that its local day ends within about a minute, so the same run has
//!   documents accepted and confirmed on one day, a confirmation and a dead
//!   letter on the next — on the hub's own (system) clock;
//! - against the working-day deadlines ("the same day, at the latest the
//!   next working day", `truc_core::calendar`): on a manual clock set to a
//!   Thursday before a holiday, a Saturday, and the Tuesday and Wednesday
//!   after, confirmations on time and late.

use std::collections::BTreeMap;

use prost::Message;
use tonic::Code;
use truc_client::Client;
use truc_core::calendar::civil_day;
use truc_core::{Calendar, Clock};
use truc_proto::v1::{ListReceiptsRequest, Receipt, ReceiptEvent, StatsGrouping, StatsRow, StatusCode};
use truc_store::indicators::{format_date, local_day};
use truc_tests::{drain, eventually, header, sign, TestHub};

const G22: &str = "000.00.00.G22";
const H26: &str = "000.00.00.H26";
const H29: &str = "000.00.00.H29";
const G0901: &str = "G09.01";
const DAY_MS: i64 = 86_400_000;

/// An offset (minutes) at which local midnight is 20–80 s away.
fn offset_near_midnight(now_ms: i64) -> i32 {
    let utc_min = now_ms.rem_euclid(DAY_MS) / 60_000;
    let sec = now_ms.rem_euclid(60_000) / 1000;
    let target = if sec < 40 { 23 * 60 + 59 } else { 23 * 60 + 58 };
    let mut off = (target - utc_min).rem_euclid(1440);
    if off > 840 {
        off -= 1440;
    }
    off as i32
}

/// (agency, day) → [sent, received, refused, on time, late, dead] from
/// every receipt of the log, by the rules GetStats documents: days are the
/// calendar's local days, and a first 01/03 is on time at or before the
/// calendar's confirmation deadline of the ACCEPTED receipt's time.
fn recompute(receipts: &[Receipt], calendar: &Calendar) -> BTreeMap<(String, String), [u64; 6]> {
    let mut accepted_at: BTreeMap<u64, i64> = BTreeMap::new();
    let mut last_status: BTreeMap<(u64, String), i32> = BTreeMap::new();
    let mut out: BTreeMap<(String, String), [u64; 6]> = BTreeMap::new();
    for r in receipts {
        let day = format_date(calendar.local_day(r.time_unix_ms));
        let mut bump = |agency: &str, i: usize| {
            for a in [agency, ""] {
                out.entry((a.to_string(), day.clone())).or_default()[i] += 1;
            }
        };
        match ReceiptEvent::try_from(r.event).unwrap() {
            ReceiptEvent::Accepted => {
                accepted_at.insert(r.hub_document_id, r.time_unix_ms);
                bump(&r.from, 0);
            }
            ReceiptEvent::Delivered if r.status_code == 0 => bump(&r.recipient, 1),
            ReceiptEvent::DeadLettered if r.status_code == 0 => bump(&r.recipient, 5),
            ReceiptEvent::StatusReported if !r.recipient.is_empty() => {
                let key = (r.hub_document_id, r.recipient.clone());
                let before = last_status.insert(key, r.status_code).unwrap_or(0);
                let on_time = calendar.on_time(accepted_at[&r.hub_document_id], r.time_unix_ms);
                let code = StatusCode::try_from(r.status_code).unwrap();
                if code == StatusCode::Refused && before != 2 {
                    bump(&r.recipient, 2);
                } else if matches!(code, StatusCode::Arrived | StatusCode::Registered) && !(1..=3).contains(&before) {
                    bump(&r.recipient, if on_time { 3 } else { 4 });
                }
            }
            _ => {}
        }
    }
    out
}

fn figures(rows: &[StatsRow]) -> BTreeMap<(String, String), [u64; 6]> {
    rows.iter()
        .map(|s| {
            (
                (s.agency.clone(), s.period.clone()),
                [
                    s.sent,
                    s.received,
                    s.refused,
                    s.confirmed_on_time,
                    s.confirmed_late,
                    s.dead_lettered,
                ],
            )
        })
        .collect()
}

async fn all_receipts(op: &Client) -> Vec<Receipt> {
    let pages = op
        .all_receipts(ListReceiptsRequest {
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    pages
        .iter()
        .flat_map(|p| p.receipts.iter())
        .map(|p| Receipt::decode(p.receipt.as_slice()).unwrap())
        .collect()
}

#[tokio::test]
async fn indicators_match_the_receipts_across_a_local_midnight() {
    let offset = offset_near_midnight(truc_core::now_unix_ms());
    let hub = TestHub::start_with(|c| {
        c.calendar.utc_offset_minutes = Some(offset);
        c.delivery.lease_ms = 1500;
        c.delivery.max_attempts = 1;
    })
    .await;
    let op = hub.operator().await;
    let g22 = hub.agency(G22).await;
    let h26 = hub.agency(H26).await;
    let h29 = hub.agency(H29).await;
    let g0901 = hub.agency(G0901).await;

    // Day 1 (local): G22 sends to three agencies, H26 to G22.
    let d1 = "000.00.00.G22,2026/11/06,1/VPCP";
    let accepted = g22
        .send(sign(&g22, header(&[H26, H29, G0901], d1), &[7u8; 1000]))
        .await
        .unwrap();
    let d2 = "000.00.00.H26,2026/11/06,5/UBND";
    h26.send(sign(&h26, header(&[G22], d2), &[1u8; 300])).await.unwrap();
    assert_eq!(drain(&h26, 8).await.len(), 1);
    // 01 comes first (truc_core::status_rules); it is the confirmation.
    for code in [StatusCode::Arrived, StatusCode::Registered] {
        h26.report_status(G22, d1, code as i32, "", None).await.unwrap();
    }
    assert_eq!(drain(&h29, 8).await.len(), 1);
    h29.report_status(G22, d1, StatusCode::Arrived as i32, "", None)
        .await
        .unwrap();
    h29.report_status(G22, d1, StatusCode::Refused as i32, "sai thẩm quyền", None)
        .await
        .unwrap();
    // An 03 after 02 is refused: neither a second refusal nor a confirmation.
    let e = h29
        .report_status(G22, d1, StatusCode::Registered as i32, "", None)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(Code::FailedPrecondition), "{e:?}");
    let day1_done = truc_core::now_unix_ms();
    let midnight = (local_day(accepted.accepted_at_unix_ms, offset) + 1) * DAY_MS - i64::from(offset) * 60_000;
    assert!(
        day1_done < midnight,
        "the first day's steps took past local midnight (offset {offset}); the machine is too slow for this test"
    );

    // Local midnight passes on the hub's clock.
    let wait = std::time::Duration::from_millis((midnight - truc_core::now_unix_ms()).max(0) as u64 + 50);
    assert!(wait.as_secs() < 90, "midnight is {wait:?} away");
    tokio::time::sleep(wait).await;

    // Day 2: G09.01 receives and confirms, on time: the copy arrived after
    // working hours, so it is due the working day after the next working
    // day (the old same-day rule counted this late); a copy to H29 is never
    // acknowledged and is dead-lettered; G22 takes H26's document.
    assert_eq!(drain(&g0901, 8).await.len(), 1);
    g0901
        .report_status(G22, d1, StatusCode::Arrived as i32, "", None)
        .await
        .unwrap();
    g0901
        .report_status(G22, d1, StatusCode::Registered as i32, "", None)
        .await
        .unwrap();
    let d3 = "000.00.00.G22,2026/11/07,2/VPCP";
    g22.send(sign(&g22, header(&[H29], d3), &[2u8; 50])).await.unwrap();
    let mut s = h29.receive(8, true).await.unwrap();
    s.message().await.unwrap().unwrap();
    eventually("the copy to H29 to be dead-lettered", || async {
        op.dead_letters(H29).await.unwrap().len() == 1
    })
    .await;
    drop(s);
    assert_eq!(drain(&g22, 16).await.iter().filter(|d| d.document.is_some()).count(), 1);

    // GetStats against the recomputation, over three local days.
    let first = local_day(accepted.accepted_at_unix_ms, offset);
    let (from, to) = (format_date(first - 1), format_date(first + 1));
    let stats = op.stats(&from, &to, "", StatsGrouping::Day).await.unwrap();
    assert_eq!(stats.utc_offset_minutes, offset);
    let expected = recompute(&all_receipts(&op).await, &Calendar::at_offset(offset).unwrap());
    assert_eq!(figures(&stats.rows), expected);

    // What the run did, by day.
    let day1 = format_date(first);
    let day2 = format_date(first + 1);
    let row = |a: &str, d: &str| {
        expected
            .get(&(a.to_string(), d.to_string()))
            .copied()
            .unwrap_or_default()
    };
    assert_eq!(row(G22, &day1), [1, 0, 0, 0, 0, 0], "G22 on day 1");
    assert_eq!(row(H26, &day1), [1, 1, 0, 1, 0, 0], "H26 on day 1");
    assert_eq!(row(H29, &day1), [0, 1, 1, 1, 0, 0], "H29 on day 1");
    assert_eq!(row(G0901, &day2), [0, 1, 0, 1, 0, 0], "G09.01 on day 2");
    assert_eq!(row(H29, &day2), [0, 0, 0, 0, 0, 1], "H29 on day 2");
    assert_eq!(row(G22, &day2), [1, 1, 0, 0, 0, 0], "G22 on day 2");
    // Bytes: the signed payload sizes.
    let g22_rows: Vec<&StatsRow> = stats.rows.iter().filter(|r| r.agency == G22).collect();
    assert_eq!(g22_rows.iter().map(|r| r.bytes_sent).sum::<u64>(), 1050);
    assert_eq!(g22_rows.iter().map(|r| r.bytes_received).sum::<u64>(), 300);

    // By month: the same totals.
    let monthly = op.stats(&from, &to, "", StatsGrouping::Month).await.unwrap();
    let hub_total = |rows: &[StatsRow]| -> u64 { rows.iter().filter(|r| r.agency.is_empty()).map(|r| r.sent).sum() };
    assert_eq!(hub_total(&monthly.rows), 3);
    assert_eq!(hub_total(&stats.rows), 3);

    // An agency sees its own rows only, and no hub totals.
    let own = h26.stats(&from, &to, "", StatsGrouping::Day).await.unwrap();
    assert!(!own.rows.is_empty() && own.rows.iter().all(|r| r.agency == H26));
    let e = h26.stats(&from, &to, G22, StatsGrouping::Day).await.unwrap_err();
    assert_eq!(e.code(), Some(Code::PermissionDenied), "{e:?}");
    // Bad dates say what to write.
    let e = op.stats("2026-11-31", &to, "", StatsGrouping::Day).await.unwrap_err();
    assert_eq!(e.code(), Some(Code::InvalidArgument));
    assert!(e.to_string().contains("YYYY-MM-DD"), "{e}");

    // Kept across a restart (they are in the store, not in memory).
    let mut hub = hub;
    hub.restart().await;
    let op = hub.operator().await;
    let again = op.stats(&from, &to, "", StatsGrouping::Day).await.unwrap();
    assert_eq!(figures(&again.rows), expected);
}

/// Unix ms of a local time at UTC+7.
fn hanoi(y: i64, m: i64, d: i64, h: i64, mi: i64) -> i64 {
    civil_day(y, m, d).unwrap() * DAY_MS + (h * 60 + mi) * 60_000 - 7 * 3_600_000
}

#[tokio::test]
async fn confirmations_on_time_and_late_against_working_day_deadlines() {
    // Thursday 29/4/2027; Friday 30/4 and 1/5 are holidays, 1–2/5 the
    // weekend, Monday 3/5 the day off in lieu of 1/5.
    let dir = tempfile::tempdir().unwrap();
    let holidays = dir.path().join("holidays.txt");
    std::fs::write(
        &holidays,
        "# test\n2027-04-30  Ngày Chiến thắng\n2027-05-01  Quốc tế Lao động\n2027-05-03  nghỉ bù\n",
    )
    .unwrap();
    let clock = Clock::manual(hanoi(2027, 4, 29, 8, 0));
    let hub = TestHub::start_sled_with(|c| {
        c.calendar.holidays_file = Some(holidays.clone());
        c.clock = clock.clone();
    })
    .await;
    let calendar = hub.config.calendar().unwrap();
    let op = hub.operator().await;
    let g22 = hub.agency(G22).await;
    let h26 = hub.agency(H26).await;
    let h29 = hub.agency(H29).await;
    let g0901 = hub.agency(G0901).await;

    // Thursday 10:00, during hours: due the next working day, Tuesday 4/5
    // 17:00 (Friday, the weekend and Monday are not working days).
    clock.set(hanoi(2027, 4, 29, 10, 0));
    let d1 = "000.00.00.G22,2027/04/29,11/VPCP";
    g22.send(sign(&g22, header(&[H26, H29, G0901], d1), &[7u8; 100]))
        .await
        .unwrap();
    let due = g22.track(d1).await.unwrap();
    assert!(due
        .recipients
        .iter()
        .all(|r| r.confirm_deadline_unix_ms == hanoi(2027, 5, 4, 17, 0)));
    // H26 confirms within the hour: on time.
    clock.set(hanoi(2027, 4, 29, 11, 0));
    assert_eq!(drain(&h26, 8).await.len(), 1);
    for code in [StatusCode::Arrived, StatusCode::Registered] {
        h26.report_status(G22, d1, code as i32, "", None).await.unwrap();
    }
    // Thursday 17:30, after hours: counts from Tuesday's morning, due
    // Wednesday 5/5 17:00.
    clock.set(hanoi(2027, 4, 29, 17, 30));
    let d2 = "000.00.00.H26,2027/04/29,7/UBND";
    h26.send(sign(&h26, header(&[G22], d2), &[1u8; 10])).await.unwrap();
    assert_eq!(
        h26.track(d2).await.unwrap().recipients[0].confirm_deadline_unix_ms,
        hanoi(2027, 5, 5, 17, 0)
    );

    // Saturday 1/5 (a holiday and a weekend day): H29 takes d1 and
    // answers 01, on time; G22 sends H29 another, due Wednesday 17:00.
    clock.set(hanoi(2027, 5, 1, 9, 0));
    assert_eq!(drain(&h29, 8).await.len(), 1);
    h29.report_status(G22, d1, StatusCode::Arrived as i32, "", None)
        .await
        .unwrap();
    let d3 = "000.00.00.G22,2027/05/01,12/VPCP";
    g22.send(sign(&g22, header(&[H29], d3), &[2u8; 10])).await.unwrap();
    assert_eq!(
        g22.track(d3).await.unwrap().recipients[0].confirm_deadline_unix_ms,
        hanoi(2027, 5, 5, 17, 0)
    );

    // Tuesday 4/5 17:30: G09.01 confirms d1 half an hour late; G22
    // confirms d2 (due Wednesday) on time.
    clock.set(hanoi(2027, 5, 4, 17, 30));
    assert_eq!(drain(&g0901, 8).await.len(), 1);
    for code in [StatusCode::Arrived, StatusCode::Registered] {
        g0901.report_status(G22, d1, code as i32, "", None).await.unwrap();
    }
    assert_eq!(drain(&g22, 8).await.iter().filter(|d| d.document.is_some()).count(), 1);
    g22.report_status(H26, d2, StatusCode::Arrived as i32, "", None)
        .await
        .unwrap();
    // The unconfirmed copy of d3 is overdue once its deadline passes.
    let track = g22.track(d3).await.unwrap();
    assert!(!track.recipients[0].overdue);

    // Wednesday 5/5 17:01: H29 confirms d3 a minute late.
    clock.set(hanoi(2027, 5, 5, 17, 1));
    assert!(g22.track(d3).await.unwrap().recipients[0].overdue);
    assert_eq!(drain(&h29, 8).await.len(), 1);
    for code in [StatusCode::Arrived, StatusCode::Registered] {
        h29.report_status(G22, d3, code as i32, "", None).await.unwrap();
    }

    // Ops.GetStats (what `truc ops stats` prints) against the receipts.
    let (from, to) = ("2027-04-28", "2027-05-06");
    let stats = op.stats(from, to, "", StatsGrouping::Day).await.unwrap();
    assert_eq!(stats.utc_offset_minutes, 420);
    let expected = recompute(&all_receipts(&op).await, &calendar);
    assert_eq!(figures(&stats.rows), expected);
    let row = |a: &str, d: &str| {
        expected
            .get(&(a.to_string(), d.to_string()))
            .copied()
            .unwrap_or_default()
    };
    // [sent, received, refused, on time, late, dead]
    assert_eq!(row(H26, "2027-04-29"), [1, 1, 0, 1, 0, 0], "H26 on Thursday");
    assert_eq!(row(H29, "2027-05-01"), [0, 1, 0, 1, 0, 0], "H29 on Saturday");
    assert_eq!(row(G0901, "2027-05-04"), [0, 1, 0, 0, 1, 0], "G09.01 on Tuesday");
    assert_eq!(row(G22, "2027-05-04"), [0, 1, 0, 1, 0, 0], "G22 on Tuesday");
    assert_eq!(row(H29, "2027-05-05"), [0, 1, 0, 0, 1, 0], "H29 on Wednesday");
    let total = |i: usize| -> u64 {
        stats
            .rows
            .iter()
            .filter(|r| r.agency.is_empty())
            .map(|r| [r.confirmed_on_time, r.confirmed_late][i])
            .sum()
    };
    assert_eq!((total(0), total(1)), (3, 2), "hub: on time, late");
}

/// Copies delivered after their priority's delivery deadline are counted
/// as overdue, by priority, on the day they were received; a copy on time,
/// or of normal priority (no delivery deadline), is not. Recomputed from
/// the receipts (acceptance and delivery times) and the configured
/// deadlines of the priorities the documents were sent with.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_received_after_their_delivery_deadline_are_overdue_by_priority() {
    let clock = Clock::manual(hanoi(2027, 6, 1, 8, 0));
    let hub = TestHub::start_sled_with(|c| {
        c.clock = clock.clone();
    })
    .await;
    let deadlines = hub.config.deadlines.clone();
    let calendar = hub.config.calendar().unwrap();
    let op = hub.operator().await;
    let g22 = hub.agency(G22).await;
    let h26 = hub.agency(H26).await;
    use truc_proto::v1::Priority;
    let sent = [
        ("1/KHAN", Priority::Urgent),
        ("2/THUONGKHAN", Priority::VeryUrgent),
        ("3/HOATOC", Priority::Express),
        ("4/HOATOC", Priority::Express),
        ("5/THUONG", Priority::Normal),
    ];
    for (n, p) in sent {
        let id = format!("{G22},2027/06/01,{n}");
        let mut h = header(&[H26], &id);
        h.priority = p as i32;
        g22.send(sign(&g22, h, n.as_bytes())).await.unwrap();
    }
    // Received 3 hours later: past the hỏa tốc deadline (2 h by default),
    // within the others'.
    clock.set(hanoi(2027, 6, 1, 11, 0));
    assert_eq!(drain(&h26, 2).await.len(), 5);
    // The next day, more of the same: then every urgent copy is late.
    for (n, p) in sent {
        let id = format!("{G22},2027/06/01,{n}-b");
        let mut h = header(&[H26], &id);
        h.priority = p as i32;
        g22.send(sign(&g22, h, n.as_bytes())).await.unwrap();
    }
    clock.set(hanoi(2027, 6, 3, 9, 0));
    assert_eq!(drain(&h26, 10).await.len(), 5);

    // Recompute: per (agency, day) [urgent, very urgent, express].
    let priority_of = |id: &str| sent.iter().find(|(n, _)| id.contains(n)).map(|(_, p)| *p).unwrap();
    let limit = |p: Priority| match p {
        Priority::Urgent => deadlines.urgent_ms,
        Priority::VeryUrgent => deadlines.very_urgent_ms,
        Priority::Express | Priority::TimedExpress => deadlines.express_ms,
        Priority::Normal => 0,
    } as i64;
    let receipts = all_receipts(&op).await;
    let mut accepted_at = BTreeMap::new();
    let mut expected: BTreeMap<(String, String), [u64; 3]> = BTreeMap::new();
    for r in &receipts {
        match ReceiptEvent::try_from(r.event).unwrap() {
            ReceiptEvent::Accepted => {
                accepted_at.insert(r.hub_document_id, r.time_unix_ms);
            }
            ReceiptEvent::Delivered if r.status_code == 0 => {
                let p = priority_of(&r.document_id);
                let due = limit(p);
                if due > 0 && r.time_unix_ms > accepted_at[&r.hub_document_id] + due {
                    let i = match p {
                        Priority::Urgent => 0,
                        Priority::VeryUrgent => 1,
                        _ => 2,
                    };
                    let day = format_date(calendar.local_day(r.time_unix_ms));
                    for a in [H26, ""] {
                        expected.entry((a.to_string(), day.clone())).or_default()[i] += 1;
                    }
                }
            }
            _ => {}
        }
    }
    let stats = op
        .stats("2027-06-01", "2027-06-03", "", StatsGrouping::Day)
        .await
        .unwrap();
    let got: BTreeMap<(String, String), [u64; 3]> = stats
        .rows
        .iter()
        .map(|s| {
            (
                (s.agency.clone(), s.period.clone()),
                [s.overdue_urgent, s.overdue_very_urgent, s.overdue_express],
            )
        })
        .filter(|(_, v)| v.iter().any(|n| *n > 0))
        .collect();
    assert_eq!(got, expected);
    // What that means: day one, the two hỏa tốc copies; day three, every
    // urgent copy of the second round.
    assert_eq!(expected[&(H26.to_string(), "2027-06-01".to_string())], [0, 0, 2]);
    assert_eq!(expected[&(H26.to_string(), "2027-06-03".to_string())], [1, 1, 2]);
}
