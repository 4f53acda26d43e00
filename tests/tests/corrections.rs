//! Corrections as the axis sends them, through the SDK against the real hub
//! on both stores: a revoke and an update under the original's own
//! DocumentId (BussinessDocType 1, 2) are keyed by the business action and
//! linked to the original; the same revoke again is a duplicate with the
//! same receipt; a replacement names several old documents, each with its
//! agencies.

use prost::Message;
use tonic::Code;
use truc_client::Client;
use truc_proto::v1::{
    BusinessType, DocumentHeader, ListReceiptsRequest, Receipt, ReceiptEvent, ReceiverChange, ReceiverType,
    Replacement, TransportState,
};
use truc_tests::{drain, header, nats_or_skip, sign, TestHub};

const G22: &str = "000.00.00.G22";
const H26: &str = "000.00.00.H26";
const H29: &str = "000.00.00.H29";
const G0901: &str = "G09.01";

/// (business type, document id) of each document delivered to `c`.
async fn received(c: &Client) -> Vec<(i32, String)> {
    let mut v: Vec<(i32, String)> = drain(c, 16)
        .await
        .iter()
        .filter_map(|d| d.document.as_ref())
        .map(|d| {
            let h = DocumentHeader::decode(d.header.as_slice()).unwrap();
            (h.business_type, h.document_id)
        })
        .collect();
    v.sort();
    v
}

fn states(t: &truc_proto::v1::TrackResponse) -> Vec<(String, i32)> {
    t.recipients.iter().map(|r| (r.agency.clone(), r.state)).collect()
}

async fn scenario(hub: TestHub) {
    let g22 = hub.agency(G22).await;
    let h26 = hub.agency(H26).await;
    let h29 = hub.agency(H29).await;
    let g0901 = hub.agency(G0901).await;

    // Revoke under the original's id.
    let a = "000.00.00.G22,2026/11/23,70/VPCP";
    g22.send(sign(&g22, header(&[H26, H29], a), b"a")).await.unwrap();
    assert_eq!(received(&h26).await, vec![(0, a.to_string())]);
    let revoke = |reason: &str| {
        let mut h = header(&[H26, H29], a);
        h.business_type = BusinessType::Revoke as i32;
        h.business_reason = reason.into();
        h
    };
    let first = g22.send(sign(&g22, revoke("Thu hồi"), b"")).await.unwrap();
    assert!(!first.duplicate);
    // Sent again (signed again): the same acceptance and receipt.
    let again = g22.send(sign(&g22, revoke("Thu hồi"), b"")).await.unwrap();
    assert!(again.duplicate);
    assert_eq!(again.hub_document_id, first.hub_document_id);
    assert_eq!(again.receipt, first.receipt);
    // A different revoke of the same document: ALREADY_EXISTS.
    let err = g22.send(sign(&g22, revoke("khác"), b"")).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::AlreadyExists), "{err:?}");
    // The original is not replaced by it: Track still shows the original,
    // with the revoke linked.
    let t = g22.track(a).await.unwrap();
    assert_ne!(t.hub_document_id, first.hub_document_id);
    assert_eq!(
        states(&t),
        vec![
            (H26.into(), TransportState::Delivered as i32),
            (H29.into(), TransportState::Withdrawn as i32)
        ]
    );
    assert_eq!(t.corrections.len(), 1);
    let c = &t.corrections[0];
    assert_eq!(
        (
            c.business_type,
            c.document_id.as_str(),
            c.hub_document_id,
            c.reason.as_str()
        ),
        (BusinessType::Revoke as i32, a, first.hub_document_id, "Thu hồi")
    );
    assert_eq!(received(&h26).await, vec![(1, a.to_string())]);
    assert!(received(&h29).await.is_empty());
    // The answer goes under the original's id.
    h26.report_status(G22, a, 15, "", None).await.unwrap();
    // The document's receipts include the revoke's, in log order.
    let page = g22
        .list_receipts(ListReceiptsRequest {
            document_from: G22.into(),
            document_id: a.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let receipts: Vec<Receipt> = page
        .receipts
        .iter()
        .map(|p| Receipt::decode(p.receipt.as_slice()).unwrap())
        .collect();
    let accepted: Vec<(u64, i32)> = receipts
        .iter()
        .filter(|r| r.event == ReceiptEvent::Accepted as i32)
        .map(|r| (r.hub_document_id, r.business_type))
        .collect();
    assert_eq!(
        accepted,
        vec![
            (t.hub_document_id, 0),
            (first.hub_document_id, BusinessType::Revoke as i32)
        ]
    );
    assert!(receipts.windows(2).all(|w| w[0].index < w[1].index));

    // Update under the original's id, with its receiver list.
    let b = "000.00.00.G22,2026/11/23,71/VPCP";
    g22.send(sign(&g22, header(&[H26, H29], b), b"b")).await.unwrap();
    received(&h26).await;
    let update = || {
        let mut h = header(&[H26, G0901], b);
        h.business_type = BusinessType::Update as i32;
        h.business_reason = "Cập nhật nơi nhận".into();
        h.receiver_changes = vec![
            ReceiverChange {
                organ_id: G0901.into(),
                receiver_type: ReceiverType::Added as i32,
            },
            ReceiverChange {
                organ_id: H29.into(),
                receiver_type: ReceiverType::Removed as i32,
            },
        ];
        h
    };
    let up = g22.send(sign(&g22, update(), b"")).await.unwrap();
    assert!(!up.duplicate);
    assert!(g22.send(sign(&g22, update(), b"")).await.unwrap().duplicate);
    let t = g22.track(b).await.unwrap();
    assert_eq!(
        states(&t),
        vec![
            (H26.into(), TransportState::Delivered as i32),
            (H29.into(), TransportState::Withdrawn as i32),
            (G0901.into(), TransportState::Queued as i32),
        ]
    );
    assert_eq!(t.corrections[0].agencies, vec![format!("+{G0901}"), format!("-{H29}")]);
    assert_eq!(received(&g0901).await, vec![(0, b.to_string()), (2, b.to_string())]);
    // Adding a recipient it has already is refused, nothing stored.
    let mut h = header(&[H26, G0901], b);
    h.business_type = BusinessType::Update as i32;
    h.receiver_changes = vec![ReceiverChange {
        organ_id: H26.into(),
        receiver_type: ReceiverType::Added as i32,
    }];
    let err = g22.send(sign(&g22, h, b"")).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::FailedPrecondition), "{err:?}");
    assert_eq!(g22.track(b).await.unwrap().corrections.len(), 1);
    // H29, whose copy was withdrawn before it was delivered, may be added
    // again: it gets the original.
    let mut h = header(&[H26, G0901, H29], b);
    h.business_type = BusinessType::Update as i32;
    h.receiver_changes = vec![ReceiverChange {
        organ_id: H29.into(),
        receiver_type: ReceiverType::Added as i32,
    }];
    g22.send(sign(&g22, h, b"")).await.unwrap();
    let t = g22.track(b).await.unwrap();
    assert_eq!(t.recipients[1].state, TransportState::Queued as i32);
    assert_eq!(t.corrections[1].agencies, vec![format!("+{H29}")]);
    assert_eq!(received(&h29).await, vec![(0, b.to_string()), (2, b.to_string())]);

    // A revoke under an id of its own is linked too.
    let own = "000.00.00.G22,2026/11/23,72/VPCP";
    let mut h = header(&[H26], own);
    h.business_type = BusinessType::Revoke as i32;
    h.reference_document_id = b.into();
    g22.send(sign(&g22, h, b"")).await.unwrap();
    let t = g22.track(b).await.unwrap();
    assert_eq!(t.corrections.len(), 3);
    assert_eq!(t.corrections[2].document_id, own);

    // Replace two old documents, each for its agencies.
    let c1 = "000.00.00.G22,2026/11/23,73/VPCP";
    let c2 = "000.00.00.G22,2026/11/23,74/VPCP";
    g22.send(sign(&g22, header(&[H26, H29], c1), b"c1")).await.unwrap();
    g22.send(sign(&g22, header(&[H26, G0901], c2), b"c2")).await.unwrap();
    let new = "000.00.00.G22,2026/11/24,75/VPCP";
    let mut h = header(&[H26, G0901], new);
    h.business_type = BusinessType::Replace as i32;
    h.replacements = vec![
        Replacement {
            document_id: c1.into(),
            organ_ids: vec![H26.into()],
        },
        Replacement {
            document_id: c2.into(),
            organ_ids: vec![G0901.into()],
        },
    ];
    let r = g22.send(sign(&g22, h.clone(), b"new")).await.unwrap();
    assert!(g22.send(sign(&g22, h, b"new")).await.unwrap().duplicate);
    let t1 = g22.track(c1).await.unwrap();
    assert_eq!(
        states(&t1),
        vec![
            (H26.into(), TransportState::Withdrawn as i32),
            (H29.into(), TransportState::Queued as i32)
        ]
    );
    assert_eq!(
        (t1.corrections[0].hub_document_id, t1.corrections[0].agencies.clone()),
        (r.hub_document_id, vec![H26.to_string()])
    );
    let t2 = g22.track(c2).await.unwrap();
    assert_eq!(
        states(&t2),
        vec![
            (H26.into(), TransportState::Queued as i32),
            (G0901.into(), TransportState::Withdrawn as i32)
        ]
    );
    assert_eq!(t2.corrections[0].agencies, vec![G0901.to_string()]);
    assert_eq!(
        received(&h26).await,
        vec![
            (0, c2.to_string()),
            (1, own.to_string()),
            (2, b.to_string()),
            (2, b.to_string()),
            (3, new.to_string())
        ]
    );
    // A replacement asks no question: H26 handles the new document.
    let err = h26.report_status(G22, c1, 15, "", None).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::FailedPrecondition), "{err:?}");
    h26.report_status(G22, new, 1, "", None).await.unwrap();
}

#[tokio::test]
async fn corrections_under_the_original_id_on_sled() {
    scenario(TestHub::start_sled_with(|_| {}).await).await;
}

#[tokio::test]
async fn corrections_under_the_original_id_on_jetstream() {
    if !nats_or_skip() {
        return;
    }
    scenario(TestHub::start_jetstream_with(|_| {}).await).await;
}
