//! A document's DueDate (hạn xử lý) and the confirmation deadline, tracked:
//! `Track` marks each recipient past due until it finishes (06) or refuses
//! (02); `Ops.ListQueues` and `/metrics` count, per agency, the copies past
//! their DueDate and past their confirmation deadline (02 or 03 ends it).
//! On a manual clock: Thursday 2027-04-29 08:00 in Hà Nội; the
//! confirmation deadline of a copy accepted then ("the same day, at the
//! latest the next working day") is Friday 30 at 17:00.

use truc_core::Clock;
use truc_proto::v1::{QueueSummary, StatusCode};
use truc_tests::{admin_get, drain, header, sign, TestHub};

const G22: &str = "000.00.00.G22";
const H26: &str = "000.00.00.H26";
const H29: &str = "000.00.00.H29";

/// Unix ms of a local time in April 2027 at UTC+7.
fn hanoi(d: i64, h: i64, mi: i64) -> i64 {
    truc_core::calendar::civil_day(2027, 4, d).unwrap() * 86_400_000 + (h * 60 + mi) * 60_000 - 7 * 3_600_000
}

fn row<'a>(q: &'a [QueueSummary], agency: &str) -> &'a QueueSummary {
    q.iter().find(|r| r.agency == agency).expect("a row per agency")
}

fn gauge(metrics: &str, name: &str, agency: &str) -> f64 {
    let prefix = format!("{name}{{agency=\"{agency}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("{prefix} in /metrics"))
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn copies_past_their_due_date_and_confirmation_deadline_are_tracked_and_counted() {
    let clock = Clock::manual(hanoi(29, 8, 0));
    let hub = TestHub::start_with(|c| {
        c.clock = clock.clone();
        c.admin.listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let op = hub.operator().await;
    let g22 = hub.agency(G22).await;
    let h26 = hub.agency(H26).await;
    let h29 = hub.agency(H29).await;

    // Due at noon; a second document without a DueDate.
    let id = "000.00.00.G22,2027/04/29,12/VPCP";
    let mut h = header(&[H26, H29], id);
    h.due_date_unix_ms = hanoi(29, 12, 0);
    g22.send(sign(&g22, h, b"cong van")).await.unwrap();
    let plain = "000.00.00.G22,2027/04/29,13/VPCP";
    g22.send(sign(&g22, header(&[H26], plain), b"khong han")).await.unwrap();

    let t = g22.track(id).await.unwrap();
    assert_eq!(t.due_date_unix_ms, hanoi(29, 12, 0));
    assert!(t.recipients.iter().all(|r| !r.past_due && !r.overdue), "{t:?}");
    let q = op.list_queues().await.unwrap();
    assert_eq!((row(&q, H26).past_due, row(&q, H26).past_confirmation), (0, 0));

    // 13:00: past due for both; H26 takes its copies, registers (03) and
    // finishes (06) the first.
    clock.set(hanoi(29, 13, 0));
    assert_eq!(drain(&h26, 8).await.len(), 2);
    for code in [StatusCode::Arrived, StatusCode::Registered] {
        h26.report_status(G22, id, code as i32, "", None).await.unwrap();
    }
    let t = g22.track(id).await.unwrap();
    let past: Vec<(&str, bool)> = t.recipients.iter().map(|r| (r.agency.as_str(), r.past_due)).collect();
    assert_eq!(past, [(H26, true), (H29, true)]);
    let q = op.list_queues().await.unwrap();
    assert_eq!(row(&q, H26).past_due, 1, "registered is not finished");
    assert_eq!(row(&q, H29).past_due, 1, "waiting, past due");
    for code in [StatusCode::Assigned, StatusCode::Done] {
        h26.report_status(G22, id, code as i32, "", None).await.unwrap();
    }
    let t = g22.track(id).await.unwrap();
    let past: Vec<(&str, bool)> = t.recipients.iter().map(|r| (r.agency.as_str(), r.past_due)).collect();
    assert_eq!(past, [(H26, false), (H29, true)]);

    // Thursday 17:30: not yet past the confirmation deadline.
    clock.set(hanoi(29, 17, 30));
    let q = op.list_queues().await.unwrap();
    assert_eq!((row(&q, H26).past_confirmation, row(&q, H29).past_confirmation), (0, 0));

    // Friday 17:30: past it — H26's second copy (01 not yet, nor 03) and
    // H29's; H26's first was confirmed with 03.
    clock.set(hanoi(30, 17, 30));
    let q = op.list_queues().await.unwrap();
    assert_eq!((row(&q, H26).past_due, row(&q, H26).past_confirmation), (0, 1));
    assert_eq!((row(&q, H29).past_due, row(&q, H29).past_confirmation), (1, 1));
    let metrics = admin_get(&hub, "/metrics").await.body;
    assert_eq!(gauge(&metrics, "truc_past_due", H29), 1.0);
    assert_eq!(gauge(&metrics, "truc_past_confirmation", H26), 1.0);
    assert_eq!(gauge(&metrics, "truc_past_confirmation", H29), 1.0);

    // H29 refuses (02, with its reason): done with, and confirmed.
    assert_eq!(drain(&h29, 8).await.len(), 1);
    h29.report_status(G22, id, StatusCode::Arrived as i32, "", None)
        .await
        .unwrap();
    h29.report_status(G22, id, StatusCode::Refused as i32, "không đúng thẩm quyền", None)
        .await
        .unwrap();
    let q = op.list_queues().await.unwrap();
    assert_eq!((row(&q, H29).past_due, row(&q, H29).past_confirmation), (0, 0));
    assert!(g22.track(id).await.unwrap().recipients.iter().all(|r| !r.past_due));
}
