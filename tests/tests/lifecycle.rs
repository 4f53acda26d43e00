//! The business lifecycle: statuses 01–06, 02 with a reason, take-back
//! (13 → 15), revoke, replace, update, Track, deadlines, dead letters — and
//! the refusals, each recording nothing.

use prost::Message;
use tonic::Code;
use truc_client::Client;
use truc_core::tree_head::TreeHeadVerifier;
use truc_core::Principal;
use truc_pki::IssueOptions;
use truc_proto::v1::{
    BusinessType, Delivery, DocumentHeader, ListReceiptsRequest, Priority, Receipt, ReceiptEvent, StatusCode,
    TransportState,
};
use truc_tests::{drain, eventually, header, sign, TestHub};

const G22: &str = "000.00.00.G22";
const H26: &str = "000.00.00.H26";
const H29: &str = "000.00.00.H29";
const G0901: &str = "G09.01";

fn code_of(d: &Delivery) -> i32 {
    d.status.as_ref().expect("a status notice").code
}

fn business(d: &Delivery) -> (i32, String) {
    let h = DocumentHeader::decode(d.document.as_ref().expect("a document").header.as_slice()).unwrap();
    (h.business_type, h.document_id)
}

async fn report(c: &Client, id: &str, code: StatusCode, why: &str) -> Result<(), truc_client::ClientError> {
    c.report_status(G22, id, code as i32, why, None).await.map(|_| ())
}

#[tokio::test]
async fn three_recipients_refuse_process_and_dead_letter() {
    let hub = TestHub::start_with(|c| {
        c.delivery.lease_ms = 200;
        c.delivery.max_attempts = 2;
    })
    .await;
    let g22 = hub.agency(G22).await;
    let h26 = hub.agency(H26).await;
    let h29 = hub.agency(H29).await;
    let g0901 = hub.agency(G0901).await;
    let id = "000.00.00.G22,2026/11/23,100/VPCP";
    let mut h = header(&[H26, H29, G0901], id);
    h.priority = Priority::Urgent as i32;
    g22.send(sign(&g22, h, b"cong van")).await.unwrap();

    assert_eq!(drain(&h26, 4).await.len(), 1);
    report(&h26, id, StatusCode::Arrived, "").await.unwrap();
    report(&h26, id, StatusCode::Refused, "sai thẩm quyền").await.unwrap();
    assert_eq!(drain(&h29, 4).await.len(), 1);
    for code in [
        StatusCode::Arrived,
        StatusCode::Registered,
        StatusCode::Assigned,
        StatusCode::Processing,
        StatusCode::Done,
    ] {
        report(&h29, id, code, "").await.unwrap();
    }
    // G09.01 takes the copy and never acknowledges it.
    let mut s = g0901.receive(4, true).await.unwrap();
    s.message().await.unwrap().unwrap();
    s.message().await.unwrap().unwrap();
    drop(s);
    eventually("the copy to G09.01 to be dead-lettered", || async {
        let t = g22.track(id).await.unwrap();
        t.recipients
            .iter()
            .any(|r| r.agency == G0901 && r.state == TransportState::DeadLettered as i32)
    })
    .await;

    // The sender's stream carries each status, in order, typed.
    let notices = drain(&g22, 16).await;
    let got: Vec<(String, i32)> = notices
        .iter()
        .map(|d| (d.status.as_ref().unwrap().reporter.clone(), code_of(d)))
        .collect();
    assert_eq!(
        got,
        vec![
            (H26.into(), 1),
            (H26.into(), 2),
            (H29.into(), 1),
            (H29.into(), 3),
            (H29.into(), 4),
            (H29.into(), 5),
            (H29.into(), 6)
        ]
    );
    assert_eq!(notices[1].status.as_ref().unwrap().description, "sai thẩm quyền");

    let t = g22.track(id).await.unwrap();
    let rows: Vec<(String, i32, i32, u32)> = t
        .recipients
        .iter()
        .map(|r| (r.agency.clone(), r.state, r.status, r.attempts))
        .collect();
    assert_eq!(
        rows,
        vec![
            (H26.into(), TransportState::Delivered as i32, 2, 0),
            (H29.into(), TransportState::Delivered as i32, 6, 0),
            (G0901.into(), TransportState::DeadLettered as i32, 0, 2),
        ]
    );
    assert!(
        t.recipients
            .iter()
            .all(|r| r.delivery_deadline_unix_ms > t.accepted_at_unix_ms),
        "urgent: deadlines set"
    );

    // An auditor lists the document's receipts; each verifies offline
    // against the signed tree head with the hub's public key alone.
    let auditor = Principal::parse_uri("urn:truc:auditor:a1").unwrap();
    let a = hub
        .connect(&hub.pki.identity_with(&auditor, &IssueOptions::default()))
        .await;
    let req = ListReceiptsRequest {
        document_from: G22.into(),
        document_id: id.into(),
        ..Default::default()
    };
    let page = a.list_receipts(req).await.unwrap();
    let verifier =
        TreeHeadVerifier::from_pem(&std::fs::read_to_string(hub.pki.pki.receipt_pub_path()).unwrap()).unwrap();
    let head = verifier.verify(page.tree_head.as_ref().unwrap()).unwrap();
    let mut events = Vec::new();
    for p in &page.receipts {
        let r = Receipt::decode(p.receipt.as_slice()).unwrap();
        let proof: Vec<[u8; 32]> = p
            .inclusion_proof
            .iter()
            .map(|h| h.as_slice().try_into().unwrap())
            .collect();
        let root: [u8; 32] = head.root_hash.as_slice().try_into().unwrap();
        truc_core::merkle::verify_inclusion(
            &truc_core::merkle::leaf_hash(&p.receipt),
            r.index,
            head.tree_size,
            &proof,
            &root,
        )
        .unwrap();
        events.push(ReceiptEvent::try_from(r.event).unwrap());
    }
    let count = |e: ReceiptEvent| events.iter().filter(|x| **x == e).count();
    assert_eq!(count(ReceiptEvent::Accepted), 1);
    assert_eq!(count(ReceiptEvent::StatusReported), 7);
    assert_eq!(count(ReceiptEvent::DeadLettered), 1);
    assert_eq!(count(ReceiptEvent::LeaseExpired), 1);
    // Two document deliveries, seven status notices delivered to the sender.
    assert_eq!(count(ReceiptEvent::Delivered), 9);
}

#[tokio::test]
async fn status_refusals_record_nothing() {
    let hub = TestHub::start().await;
    let g22 = hub.agency(G22).await;
    let h26 = hub.agency(H26).await;
    let h29 = hub.agency(H29).await;
    let id = "000.00.00.G22,2026/11/23,7/VPCP";
    g22.send(sign(&g22, header(&[H26], id), b"x")).await.unwrap();
    drain(&h26, 4).await;
    let op = hub.operator().await;
    let auditor = Principal::parse_uri("urn:truc:auditor:a1").unwrap();
    let a = hub
        .connect(&hub.pki.identity_with(&auditor, &IssueOptions::default()))
        .await;
    let size = |a: Client| async move {
        let h = a.tree_head(0).await.unwrap();
        truc_proto::v1::TreeHead::decode(h.tree_head.as_slice())
            .unwrap()
            .tree_size
    };
    let before = size(a.clone()).await;

    let cases = [
        (
            &h29,
            StatusCode::Registered,
            "",
            Code::PermissionDenied,
            "not a recipient",
        ),
        (
            &h26,
            StatusCode::TakeBack,
            "",
            Code::PermissionDenied,
            "only the sender",
        ),
        (
            &g22,
            StatusCode::Registered,
            "",
            Code::PermissionDenied,
            "not a recipient",
        ),
        (&h26, StatusCode::Refused, " ", Code::InvalidArgument, "needs a reason"),
        (
            &h26,
            StatusCode::Registered,
            "",
            Code::FailedPrecondition,
            "has reported nothing yet",
        ),
        (
            &h26,
            StatusCode::Agree,
            "",
            Code::FailedPrecondition,
            "nothing to answer",
        ),
    ];
    for (c, code, why, want, words) in cases {
        let err = report(c, id, code, why).await.unwrap_err();
        assert_eq!(err.code(), Some(want), "{code:?}: {err:?}");
        assert!(err.to_string().contains(words), "{code:?}: {err:?}");
    }
    let err = h26.report_status(G22, id, 7, "", None).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::InvalidArgument));
    let err = report(&h26, "000.00.00.G22,2026/11/23,404/VPCP", StatusCode::Registered, "")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(Code::NotFound));
    // Only the sender may track a document.
    assert_eq!(h26.track(id).await.unwrap_err().code(), Some(Code::NotFound));
    // Operators do not report statuses.
    assert_eq!(
        op.report_status(G22, id, 3, "", None).await.unwrap_err().code(),
        Some(Code::PermissionDenied)
    );

    assert_eq!(size(a).await, before, "a refused status appended a receipt");
    assert!(drain(&g22, 4).await.is_empty(), "a refused status reached the sender");
}

#[tokio::test]
async fn take_back_withdraws_undelivered_copies_and_asks_the_rest() {
    let hub = TestHub::start().await;
    let g22 = hub.agency(G22).await;
    let h26 = hub.agency(H26).await;
    let h29 = hub.agency(H29).await;
    let id = "000.00.00.G22,2026/11/23,13/VPCP";
    g22.send(sign(&g22, header(&[H26, H29], id), b"x")).await.unwrap();
    drain(&h26, 4).await; // H26 has it; H29 not yet
    report(&g22, id, StatusCode::TakeBack, "gửi nhầm").await.unwrap();

    assert!(drain(&h29, 4).await.is_empty(), "the undelivered copy was withdrawn");
    let asked = drain(&h26, 4).await;
    assert_eq!(asked.len(), 1);
    assert_eq!(code_of(&asked[0]), 13);
    report(&h26, id, StatusCode::Agree, "").await.unwrap();
    // A second answer is not expected.
    assert_eq!(
        report(&h26, id, StatusCode::Agree, "").await.unwrap_err().code(),
        Some(Code::FailedPrecondition)
    );

    let replies = drain(&g22, 4).await;
    assert_eq!(replies.iter().map(code_of).collect::<Vec<_>>(), vec![15]);
    let t = g22.track(id).await.unwrap();
    let rows: Vec<(i32, i32)> = t.recipients.iter().map(|r| (r.state, r.status)).collect();
    assert_eq!(
        rows,
        vec![
            (TransportState::Delivered as i32, 15),
            (TransportState::Withdrawn as i32, 0)
        ]
    );
    // A withdrawn recipient can no longer report on it.
    assert_eq!(
        report(&h29, id, StatusCode::Arrived, "").await.unwrap_err().code(),
        Some(Code::FailedPrecondition)
    );
}

fn follow_up(kind: BusinessType, to: &[&str], id: &str, original: &str) -> DocumentHeader {
    let mut h = header(to, id);
    h.business_type = kind as i32;
    h.reference_document_id = original.into();
    h
}

#[tokio::test]
async fn revoke_replace_and_update() {
    let hub = TestHub::start().await;
    let g22 = hub.agency(G22).await;
    let h26 = hub.agency(H26).await;
    let h29 = hub.agency(H29).await;
    let g0901 = hub.agency(G0901).await;

    // Revoke: H26 has it and is asked; H29's copy is withdrawn.
    g22.send(sign(&g22, header(&[H26, H29], "a"), b"a")).await.unwrap();
    drain(&h26, 4).await;
    g22.send(sign(
        &g22,
        follow_up(BusinessType::Revoke, &[H26, H29], "a-revoke", "a"),
        b"",
    ))
    .await
    .unwrap();
    let got = drain(&h26, 4).await;
    assert_eq!(
        got.iter().map(business).collect::<Vec<_>>(),
        vec![(1, "a-revoke".to_string())]
    );
    assert!(drain(&h29, 4).await.is_empty());
    report(&h26, "a", StatusCode::Disagree, "đã xử lý").await.unwrap();

    // Replace: both get the replacement; H29 never sees the original.
    g22.send(sign(&g22, header(&[H26, H29], "b"), b"b")).await.unwrap();
    drain(&h26, 4).await;
    g22.send(sign(
        &g22,
        follow_up(BusinessType::Replace, &[H26, H29], "b2", "b"),
        b"b2",
    ))
    .await
    .unwrap();
    assert_eq!(
        drain(&h26, 4).await.iter().map(business).collect::<Vec<_>>(),
        vec![(3, "b2".to_string())]
    );
    assert_eq!(
        drain(&h29, 4).await.iter().map(business).collect::<Vec<_>>(),
        vec![(3, "b2".to_string())]
    );

    // Update: H29 (not yet delivered) is removed, G09.01 is added.
    g22.send(sign(&g22, header(&[H26, H29], "c"), b"c")).await.unwrap();
    drain(&h26, 4).await;
    g22.send(sign(
        &g22,
        follow_up(BusinessType::Update, &[H26, G0901], "c-update", "c"),
        b"",
    ))
    .await
    .unwrap();
    assert!(drain(&h29, 4).await.is_empty());
    assert_eq!(
        drain(&h26, 4).await.iter().map(business).collect::<Vec<_>>(),
        vec![(2, "c-update".to_string())]
    );
    let mut added: Vec<(i32, String)> = drain(&g0901, 4).await.iter().map(business).collect();
    added.sort();
    assert_eq!(added, vec![(0, "c".to_string()), (2, "c-update".to_string())]);
    let t = g22.track("c").await.unwrap();
    let rows: Vec<(String, i32)> = t.recipients.iter().map(|r| (r.agency.clone(), r.state)).collect();
    assert_eq!(
        rows,
        vec![
            (H26.into(), TransportState::Delivered as i32),
            (H29.into(), TransportState::Withdrawn as i32),
            (G0901.into(), TransportState::Delivered as i32),
        ]
    );

    // A follow-up must refer to one of the sender's documents and its recipients.
    let err = g22
        .send(sign(
            &g22,
            follow_up(BusinessType::Revoke, &[H26], "x-revoke", "nope"),
            b"",
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(Code::NotFound), "{err:?}");
    let err = g22
        .send(sign(
            &g22,
            follow_up(BusinessType::Revoke, &[G0901], "a-revoke-2", "a"),
            b"",
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(Code::FailedPrecondition), "{err:?}");
}

#[tokio::test]
async fn urgent_documents_become_overdue() {
    let hub = TestHub::start_with(|c| c.deadlines.urgent_ms = 1).await;
    let g22 = hub.agency(G22).await;
    hub.agency(H26).await;
    let mut h = header(&[H26], "late");
    h.priority = Priority::Urgent as i32;
    g22.send(sign(&g22, h, b"x")).await.unwrap();
    g22.send(sign(&g22, header(&[H26], "normal"), b"x")).await.unwrap();
    eventually("the urgent copy to be overdue", || async {
        g22.track("late").await.unwrap().recipients[0].overdue
    })
    .await;
    let normal = g22.track("normal").await.unwrap();
    assert_eq!(normal.recipients[0].delivery_deadline_unix_ms, 0);
    assert!(!normal.recipients[0].overdue);
}
