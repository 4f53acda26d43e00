//! The status rules (`truc_core::status_rules`) against the real hub, on
//! both stores: a status the rules refuse is FAILED_PRECONDITION naming the
//! copy's state, and nothing is stored — no receipt, no notice, the track
//! unchanged.

use prost::Message;
use tonic::Code;
use truc_client::Client;
use truc_core::Principal;
use truc_pki::IssueOptions;
use truc_proto::v1::{StatusCode, TrackResponse};
use truc_tests::{drain, header, nats_or_skip, sign, TestHub};

const G22: &str = "000.00.00.G22";
const H26: &str = "000.00.00.H26";
const H29: &str = "000.00.00.H29";
const ID: &str = "000.00.00.G22,2026/11/23,60/VPCP";

async fn tree_size(c: &Client) -> u64 {
    let h = c.tree_head(0).await.unwrap();
    truc_proto::v1::TreeHead::decode(h.tree_head.as_slice())
        .unwrap()
        .tree_size
}

/// What Track says, without what changes on its own (overdue).
fn rows(t: &TrackResponse) -> Vec<(String, i32, i32, String, i64)> {
    t.recipients
        .iter()
        .map(|r| {
            (
                r.agency.clone(),
                r.state,
                r.status,
                r.status_description.clone(),
                r.status_at_unix_ms,
            )
        })
        .collect()
}

/// `c` reports `code` and is refused with FAILED_PRECONDITION whose message
/// has `words`; the log, the sender's stream and the track are as before.
async fn refused(a: &Client, g22: &Client, c: &Client, code: StatusCode, words: &[&str]) {
    let before = (tree_size(a).await, rows(&g22.track(ID).await.unwrap()));
    let err = c
        .report_status(G22, ID, code as i32, "ghi chú", None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(Code::FailedPrecondition), "{code:?}: {err:?}");
    for w in words {
        assert!(err.to_string().contains(w), "{code:?}: {err:?} should say {w:?}");
    }
    let after = (tree_size(a).await, rows(&g22.track(ID).await.unwrap()));
    assert_eq!(after, before, "{code:?}: a refused status stored something");
}

async fn ok(c: &Client, code: StatusCode) {
    c.report_status(G22, ID, code as i32, "ghi chú", None)
        .await
        .unwrap_or_else(|e| panic!("{code:?}: {e:?}"));
}

async fn scenario(hub: TestHub) {
    let g22 = hub.agency(G22).await;
    let h26 = hub.agency(H26).await;
    let h29 = hub.agency(H29).await;
    let auditor = Principal::parse_uri("urn:truc:auditor:a1").unwrap();
    let a = hub
        .connect(&hub.pki.identity_with(&auditor, &IssueOptions::default()))
        .await;
    g22.send(sign(&g22, header(&[H26, H29], ID), b"cong van"))
        .await
        .unwrap();

    // Before its copy was delivered: refused, naming the copy's state.
    refused(&a, &g22, &h26, StatusCode::Arrived, &["queued, not delivered", H26]).await;
    refused(&a, &g22, &h26, StatusCode::Registered, &["queued"]).await;
    assert_eq!(drain(&h26, 4).await.len(), 1);
    // 01 comes first.
    refused(
        &a,
        &g22,
        &h26,
        StatusCode::Registered,
        &["delivered", "has reported nothing yet"],
    )
    .await;
    ok(&h26, StatusCode::Arrived).await;
    refused(&a, &g22, &h26, StatusCode::Arrived, &["has reported 01"]).await;
    // 03 before 04/05.
    refused(&a, &g22, &h26, StatusCode::Processing, &["has reported 01", "after 03"]).await;
    ok(&h26, StatusCode::Registered).await;
    // 02 only before 03.
    refused(
        &a,
        &g22,
        &h26,
        StatusCode::Refused,
        &["has registered it (03)", "before 03"],
    )
    .await;
    ok(&h26, StatusCode::Assigned).await;
    ok(&h26, StatusCode::Processing).await;
    ok(&h26, StatusCode::Assigned).await;
    ok(&h26, StatusCode::Done).await;
    // Nothing after 06 but 15/16 in reply, and only to an open question.
    refused(&a, &g22, &h26, StatusCode::Processing, &["has finished it (06)"]).await;
    refused(&a, &g22, &h26, StatusCode::Agree, &["nothing to answer"]).await;
    // The sender takes it back: H29's copy (never delivered) is withdrawn,
    // H26 is asked and answers once, even after 06.
    ok(&g22, StatusCode::TakeBack).await;
    refused(&a, &g22, &h29, StatusCode::Arrived, &["withdrawn", H29]).await;
    ok(&h26, StatusCode::Disagree).await;
    refused(&a, &g22, &h26, StatusCode::Agree, &["nothing to answer"]).await;

    // What the sender saw: every accepted status, in order, nothing else.
    let codes: Vec<i32> = drain(&g22, 32)
        .await
        .iter()
        .filter_map(|d| d.status.as_ref().map(|s| s.code))
        .collect();
    assert_eq!(codes, vec![1, 3, 4, 5, 4, 6, 16]);
    // A document whose copies are all withdrawn has nothing left to take
    // back.
    let gone = "000.00.00.G22,2026/11/23,61/VPCP";
    g22.send(sign(&g22, header(&[H29], gone), b"x")).await.unwrap();
    g22.report_status(G22, gone, StatusCode::TakeBack as i32, "gửi nhầm", None)
        .await
        .unwrap();
    let err = g22
        .report_status(G22, gone, StatusCode::TakeBack as i32, "gửi nhầm", None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(Code::FailedPrecondition), "{err:?}");
    assert!(err.to_string().contains("nothing to take back"), "{err:?}");
}

#[tokio::test]
async fn refused_statuses_name_the_copys_state_and_store_nothing_on_sled() {
    scenario(TestHub::start_sled_with(|_| {}).await).await;
}

#[tokio::test]
async fn refused_statuses_name_the_copys_state_and_store_nothing_on_jetstream() {
    if !nats_or_skip() {
        return;
    }
    scenario(TestHub::start_jetstream_with(|_| {}).await).await;
}
