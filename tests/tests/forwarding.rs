//! Federation: documents forwarded between three real hubs on loopback,
//! each with a CA of its own — a province hub h49, the national hub, a
//! ministry hub g12 — as the real axis is deployed: province → national →
//! ministry. Checked end to end: the document arrives verified at every
//! recipient's hub, one copy per next hop; deliveries and statuses come
//! back to the sender's hub, whose Track shows every row; each forward is a
//! FORWARDED receipt holding the next hub's signed receipt; a peer that is
//! down queues; and a hub refuses, changing nothing, what a peer may not
//! hand it (a forged trace, a loop, a sender the peer does not serve, an
//! unknown origin, an agency certificate posing as a hub).

use prost::Message;
use tonic::Code;
use truc_core::document::SigningTrust;
use truc_core::merkle::{leaf_hash, verify_inclusion, Hash};
use truc_core::routing::hop_message;
use truc_core::tree_head::TreeHeadVerifier;
use truc_proto::v1::peer_client::PeerClient;
use truc_proto::v1::{
    ForwardRequest, ListReceiptsRequest, ProvenReceipt, Receipt, ReceiptEvent, SignedDocument, StatusCode, TraceHop,
    TransportState,
};
use truc_tests::federation::{
    axis, next_deliveries, next_delivery, receipts_of, receive_ids, within, G01, G12_UNIT, H49_UNIT,
};
use truc_tests::{header, sign, TestHub};

fn ca_trust(hub: &TestHub) -> SigningTrust {
    let ders = truc_pki::read_cert_ders(hub.pki.pki.ca_pem_path()).unwrap();
    SigningTrust::new(&ders, &[]).unwrap()
}

/// A receipt another hub signed: its tree head verifies with that hub's
/// `receipts.pub` and the receipt is in that tree.
fn check_hub_receipt(hub: &TestHub, proven: &ProvenReceipt) -> Receipt {
    let verifier =
        TreeHeadVerifier::from_pem(&std::fs::read_to_string(hub.pki.pki.receipt_pub_path()).unwrap()).unwrap();
    let head = verifier
        .verify(proven.tree_head.as_ref().expect("tree head"))
        .expect("signed by that hub");
    let proof: Vec<Hash> = proven
        .inclusion_proof
        .iter()
        .map(|h| Hash::try_from(h.as_slice()).unwrap())
        .collect();
    let root = Hash::try_from(head.root_hash.as_slice()).unwrap();
    verify_inclusion(
        &leaf_hash(&proven.receipt),
        proven.leaf_index,
        head.tree_size,
        &proof,
        &root,
    )
    .expect("in that hub's log");
    Receipt::decode(proven.receipt.as_slice()).unwrap()
}

#[tokio::test]
async fn a_document_crosses_three_hubs_and_its_fate_comes_back() {
    let ax = axis().await;
    let sender = ax.h49.agency(H49_UNIT).await;
    let g01 = ax.national.agency(G01).await;
    let unit = ax.g12.agency(G12_UNIT).await;

    let payload = b"cong van lien tinh".to_vec();
    let doc = sign(&sender, header(&[G01, G12_UNIT], "fed/1"), &payload);
    let sent = sender
        .send(doc.clone())
        .await
        .expect("h49 accepts a document for two other hubs");
    assert!(!sent.duplicate);

    // At the national hub and at g12 the document arrives exactly as signed,
    // verifiable against h49's CA (the origin's anchor).
    let h49_trust = ca_trust(&ax.h49);
    for (client, at) in [(&g01, "national"), (&unit, "g12")] {
        let d = next_delivery(client).await;
        let got = d.document.expect("a document");
        assert_eq!(got, doc, "the document reached {at} unchanged");
        truc_client::verify_received(&got, &h49_trust).expect("verifies against the origin hub's CA");
        client.ack(vec![d.delivery_id]).await.unwrap();
    }

    // The ministry unit registers it (03): the status travels g12 →
    // national → h49 and reaches the sender as a status notice.
    unit.report_status(H49_UNIT, "fed/1", StatusCode::Arrived as i32, "đã đến", None)
        .await
        .expect("01 after delivery");
    unit.report_status(H49_UNIT, "fed/1", StatusCode::Registered as i32, "vào sổ 123", None)
        .await
        .expect("03 after 01");
    let notices = next_deliveries(&sender, 2).await;
    for (notice, code) in notices.into_iter().zip([StatusCode::Arrived, StatusCode::Registered]) {
        let status = notice.status.expect("a status notice");
        assert_eq!(
            (status.reporter.as_str(), status.code, status.document_id.as_str()),
            (G12_UNIT, code as i32, "fed/1")
        );
    }

    // Track at the sender's hub shows both recipients, by way of the
    // national hub, delivered, with g12's status.
    within("track at h49 to show both recipients delivered", || async {
        let t = sender.track("fed/1").await.unwrap();
        t.recipients.iter().all(|r| r.state == TransportState::Delivered as i32)
    })
    .await;
    let t = sender.track("fed/1").await.unwrap();
    let rows: Vec<(&str, &str, i32)> = t
        .recipients
        .iter()
        .map(|r| (r.agency.as_str(), r.via_hub.as_str(), r.status))
        .collect();
    assert_eq!(
        rows,
        vec![
            (G01, "national", 0),
            (G12_UNIT, "national", StatusCode::Registered as i32)
        ]
    );

    // One forward per next hop: h49 forwarded once, to national, for both
    // recipients; its FORWARDED receipt holds national's signed ACCEPTED
    // receipt. National forwarded once, to g12, for the unit.
    let at_h49 = receipts_of(&ax.h49, H49_UNIT, "fed/1").await;
    let forwarded: Vec<&Receipt> = at_h49
        .iter()
        .filter(|r| r.event == ReceiptEvent::Forwarded as i32 && r.actor == "urn:truc:hub")
        .collect();
    assert_eq!(forwarded.len(), 1, "{at_h49:#?}");
    assert_eq!(forwarded[0].recipients, vec![G01.to_string(), G12_UNIT.to_string()]);
    assert_eq!(forwarded[0].detail, "to urn:truc:hub:national");
    let next = ProvenReceipt::decode(forwarded[0].peer_receipt.as_slice()).unwrap();
    let accepted = check_hub_receipt(&ax.national, &next);
    assert_eq!(
        (accepted.event, accepted.document_id.as_str(), accepted.actor.as_str()),
        (ReceiptEvent::Accepted as i32, "fed/1", "urn:truc:hub:h49")
    );
    let at_national = receipts_of(&ax.national, H49_UNIT, "fed/1").await;
    let onward: Vec<&Receipt> = at_national
        .iter()
        .filter(|r| r.event == ReceiptEvent::Forwarded as i32)
        .collect();
    assert_eq!(onward.len(), 1);
    assert_eq!(onward[0].recipients, vec![G12_UNIT.to_string()]);
    let at_g12 = check_hub_receipt(
        &ax.g12,
        &ProvenReceipt::decode(onward[0].peer_receipt.as_slice()).unwrap(),
    );
    assert_eq!(at_g12.actor, "urn:truc:hub:national");
    // The status came back as g12's own signed receipt, kept at h49.
    let status_at_h49 = at_h49
        .iter()
        .find(|r| r.event == ReceiptEvent::StatusReported as i32 && r.status_code == 3)
        .expect("the 03 recorded at h49");
    assert_eq!(status_at_h49.actor, "urn:truc:hub:national");
    let relayed = check_hub_receipt(
        &ax.national,
        &ProvenReceipt::decode(status_at_h49.peer_receipt.as_slice()).unwrap(),
    );
    assert_eq!((relayed.recipient.as_str(), relayed.status_code), (G12_UNIT, 3));
    // Every hop reaches the origin: national's forward to g12 is recorded
    // at h49 too, with national's FORWARDED receipt holding g12's ACCEPTED.
    within("h49 to hear of the hop national → g12", || async {
        receipts_of(&ax.h49, H49_UNIT, "fed/1")
            .await
            .iter()
            .any(|r| r.event == ReceiptEvent::Forwarded as i32 && r.actor == "urn:truc:hub:national")
    })
    .await;
    let at_h49 = receipts_of(&ax.h49, H49_UNIT, "fed/1").await;
    let hop = at_h49
        .iter()
        .find(|r| r.event == ReceiptEvent::Forwarded as i32 && r.actor == "urn:truc:hub:national")
        .unwrap();
    assert_eq!(hop.recipients, vec![G12_UNIT.to_string()]);
    let nationals = check_hub_receipt(
        &ax.national,
        &ProvenReceipt::decode(hop.peer_receipt.as_slice()).unwrap(),
    );
    assert_eq!(nationals.detail, "to urn:truc:hub:g12");
    let g12s = check_hub_receipt(
        &ax.g12,
        &ProvenReceipt::decode(nationals.peer_receipt.as_slice()).unwrap(),
    );
    assert_eq!(
        (g12s.event, g12s.actor.as_str()),
        (ReceiptEvent::Accepted as i32, "urn:truc:hub:national")
    );

    // Sent again (a retry): a duplicate everywhere, no second copy.
    let again = sender.send(doc).await.unwrap();
    assert!(again.duplicate);
    let q = ax.g12.queued().await;
    assert!(q.iter().all(|(_, n)| *n == 0), "{q:?}");
}

#[tokio::test]
async fn a_take_back_reaches_the_other_hub_and_its_answer_comes_back() {
    let ax = axis().await;
    let sender = ax.h49.agency(H49_UNIT).await;
    let unit = ax.g12.agency(G12_UNIT).await;
    sender
        .send(sign(&sender, header(&[G12_UNIT], "fed/rv"), b"original"))
        .await
        .unwrap();
    let d = next_delivery(&unit).await;
    unit.ack(vec![d.delivery_id]).await.unwrap();
    // The sender takes it back (13): the notice reaches the unit at g12,
    // which answers 15 (agrees); h49 sees the answer.
    sender
        .report_status(H49_UNIT, "fed/rv", StatusCode::TakeBack as i32, "gửi nhầm", None)
        .await
        .expect("13 from the sender");
    let notice = next_delivery(&unit).await;
    let st = notice.status.expect("the take-back notice at g12");
    assert_eq!((st.code, st.reporter.as_str()), (StatusCode::TakeBack as i32, H49_UNIT));
    unit.ack(vec![notice.delivery_id]).await.unwrap();
    unit.report_status(H49_UNIT, "fed/rv", StatusCode::Agree as i32, "đồng ý", None)
        .await
        .expect("15 answers the take-back");
    let answer = next_delivery(&sender).await;
    assert_eq!(answer.status.expect("a notice").code, StatusCode::Agree as i32);
}

#[tokio::test]
async fn a_peer_that_is_down_queues_its_documents_until_it_is_back() {
    let mut ax = axis().await;
    let sender = ax.h49.agency(H49_UNIT).await;
    let g01 = ax.national.agency(G01).await;
    drop(g01);
    ax.national.stop().await;
    for i in 0..3 {
        sender
            .send(sign(&sender, header(&[G01], &format!("down/{i}")), b"x"))
            .await
            .expect("accepted while the next hop is down");
    }
    let t = sender.track("down/0").await.unwrap();
    assert_eq!(
        (t.recipients[0].state, t.recipients[0].via_hub.as_str()),
        (TransportState::Queued as i32, "national")
    );
    ax.national.start_again().await;
    let g01 = ax.national.connect(&ax.national.pki.agency_dir(G01)).await;
    assert_eq!(receive_ids(&g01, 3).await, vec!["down/0", "down/1", "down/2"]);
    within("h49 to see the three delivered", || async {
        let mut all = true;
        for i in 0..3 {
            let t = sender.track(&format!("down/{i}")).await.unwrap();
            all &= t.recipients[0].state == TransportState::Delivered as i32;
        }
        all
    })
    .await;
}

/// A Peer client of `to` presenting the hub identity of `from` (or any
/// identity directory).
async fn peer_client(
    to: &TestHub,
    identity_dir: &std::path::Path,
    ca_of_to: &TestHub,
) -> PeerClient<tonic::transport::Channel> {
    use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
    let cert = std::fs::read(identity_dir.join("cert.pem")).unwrap();
    let key = std::fs::read(identity_dir.join("key.pem")).unwrap();
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca_of_to.pki.pki.ca_pem()))
        .identity(Identity::from_pem(cert, key));
    let ch = Endpoint::from_shared(format!("https://{}", to.addr))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap();
    PeerClient::new(ch)
}

/// A hop of the hub whose identity is `hub`'s, after `previous`.
fn hop(hub: &TestHub, id: &str, doc: &SignedDocument, previous: Option<&TraceHop>) -> TraceHop {
    let identity = truc_pki::Identity::load(&hub.pki.pki.hub_dir()).unwrap();
    let signer = identity.signer().unwrap();
    let at = truc_core::now_unix_ms();
    let msg = hop_message(id, at, &truc_core::sha256(&doc.header), previous);
    TraceHop {
        hub_id: id.into(),
        accepted_at_unix_ms: at,
        signer_chain: vec![identity.cert_der.clone()],
        signature: signer.sign(&msg).unwrap(),
        signature_scheme: signer.scheme(),
    }
}

#[tokio::test]
async fn a_hub_refuses_what_a_peer_may_not_hand_it_and_stores_nothing() {
    let ax = axis().await;
    let _g01 = ax.national.agency(G01).await;
    // A document an h49 unit signed (h49's CA), for a national agency.
    let sender = ax.h49.agency(H49_UNIT).await;
    let doc = sign(&sender, header(&[G01], "bad/1"), b"payload");
    let mut from_h49 = peer_client(&ax.national, &ax.h49.pki.pki.hub_dir(), &ax.national).await;
    let forward = |doc: &SignedDocument, trace: Vec<TraceHop>| ForwardRequest {
        document: Some(doc.clone()),
        recipients: vec![G01.into()],
        trace,
    };
    let refused = |r: Result<tonic::Response<truc_proto::v1::ForwardResponse>, tonic::Status>| r.expect_err("refused");

    // No trace: h49 must sign its own hop.
    let st = refused(from_h49.forward(forward(&doc, vec![])).await);
    assert_eq!(st.code(), Code::InvalidArgument, "{st:?}");
    assert!(st.message().contains("a hub signs its own hop"), "{}", st.message());

    // A forged hop: claims to be h49 but is signed by g12's certificate.
    let st = refused(
        from_h49
            .forward(forward(
                &doc,
                vec![TraceHop {
                    hub_id: "h49".into(),
                    ..hop(&ax.g12, "h49", &doc, None)
                }],
            ))
            .await,
    );
    assert_eq!(st.code(), Code::InvalidArgument, "{st:?}");
    assert!(st.message().contains("trace hop 0 (h49)"), "{}", st.message());

    // A hop signed for another document.
    let other = sign(&sender, header(&[G01], "bad/other"), b"other");
    let st = refused(
        from_h49
            .forward(forward(&doc, vec![hop(&ax.h49, "h49", &other, None)]))
            .await,
    );
    assert_eq!(st.code(), Code::InvalidArgument, "{st:?}");
    assert!(st.message().contains("signature does not verify"), "{}", st.message());

    // A loop: the national hub is already in the trace.
    let first = hop(&ax.national, "national", &doc, None);
    let second = hop(&ax.h49, "h49", &doc, Some(&first));
    let st = refused(from_h49.forward(forward(&doc, vec![first, second])).await);
    assert_eq!(st.code(), Code::FailedPrecondition, "{st:?}");
    assert!(st.message().contains("routing loop"), "{}", st.message());

    // An unknown origin: the first hop names a hub the national hub has no
    // CA for.
    let stranger = truc_tests::TestPki::with_hub("h29");
    let identity = truc_pki::Identity::load(&stranger.pki.hub_dir()).unwrap();
    let at = truc_core::now_unix_ms();
    let h29 = TraceHop {
        hub_id: "h29".into(),
        accepted_at_unix_ms: at,
        signer_chain: vec![identity.cert_der.clone()],
        signature: identity
            .signer()
            .unwrap()
            .sign(&hop_message("h29", at, &truc_core::sha256(&doc.header), None))
            .unwrap(),
        signature_scheme: identity.signer().unwrap().scheme(),
    };
    let last = hop(&ax.h49, "h49", &doc, Some(&h29));
    let st = refused(from_h49.forward(forward(&doc, vec![h29, last])).await);
    assert_eq!(st.code(), Code::PermissionDenied, "{st:?}");
    assert!(st.message().contains("no trust anchor for hub h29"), "{}", st.message());

    // A sender h49 does not serve: a G12 code, though signed under h49's
    // CA (h49 issued a certificate for a code that is not its own).
    let fake = ax.h49.agency("000.00.09.G12").await;
    let doc_g12 = sign(&fake, header(&[G01], "bad/2"), b"payload");
    let st = refused(
        from_h49
            .forward(forward(&doc_g12, vec![hop(&ax.h49, "h49", &doc_g12, None)]))
            .await,
    );
    assert_eq!(st.code(), Code::PermissionDenied, "{st:?}");
    assert!(
        st.message().contains("may not originate documents from 000.00.09.G12"),
        "{}",
        st.message()
    );

    // A tampered document under a genuine trace.
    let mut tampered = doc.clone();
    tampered.payload = b"changed".to_vec();
    let st = refused(
        from_h49
            .forward(forward(&tampered, vec![hop(&ax.h49, "h49", &tampered, None)]))
            .await,
    );
    assert_eq!(st.code(), Code::InvalidArgument, "{st:?}");

    // An agency certificate cannot call the Peer service at all.
    let mut as_agency = peer_client(&ax.national, &ax.national.pki.agency_dir(G01), &ax.national).await;
    let st = refused(
        as_agency
            .forward(forward(&doc, vec![hop(&ax.h49, "h49", &doc, None)]))
            .await,
    );
    assert_eq!(st.code(), Code::PermissionDenied, "{st:?}");

    // Nothing of it was stored at the national hub.
    let op = ax.national.operator().await;
    for id in ["bad/1", "bad/2"] {
        let from = if id == "bad/1" { H49_UNIT } else { "000.00.09.G12" };
        assert!(receipts_of(&ax.national, from, id).await.is_empty(), "{id}");
    }
    assert!(ax.national.queued().await.iter().all(|(_, n)| *n == 0));
    drop(op);

    // And the genuine forward passes.
    let ok = from_h49
        .forward(forward(&doc, vec![hop(&ax.h49, "h49", &doc, None)]))
        .await
        .expect("a genuine forward is accepted")
        .into_inner();
    assert!(!ok.duplicate);
    let again = from_h49
        .forward(forward(&doc, vec![hop(&ax.h49, "h49", &doc, None)]))
        .await
        .expect("a retried forward");
    assert!(again.into_inner().duplicate, "a retried forward is a duplicate");
}

#[tokio::test]
async fn a_retired_agency_on_another_hub_hands_its_copy_to_its_successor() {
    let ax = axis().await;
    let sender = ax.h49.agency(H49_UNIT).await;
    let _old = ax.g12.agency(G12_UNIT).await;
    let successor = ax.g12.agency("000.00.03.G12").await;
    ax.g12
        .operator()
        .await
        .retire_agency(G12_UNIT, "000.00.03.G12", "sáp nhập")
        .await
        .expect("retire into its successor");
    sender
        .send(sign(&sender, header(&[G12_UNIT], "fed/ret"), b"to a merged unit"))
        .await
        .expect("accepted at h49");
    let d = next_delivery(&successor).await;
    assert_eq!(truc_tests::document_id(&d), "fed/ret");
    successor.ack(vec![d.delivery_id]).await.unwrap();
    // The sender's hub learns where the copy went, and that it arrived.
    within("h49 to show the redirect and the delivery", || async {
        let t = sender.track("fed/ret").await.unwrap();
        let rows: Vec<(String, i32)> = t.recipients.iter().map(|r| (r.agency.clone(), r.state)).collect();
        rows == vec![
            (G12_UNIT.to_string(), TransportState::Redirected as i32),
            ("000.00.03.G12".to_string(), TransportState::Delivered as i32),
        ]
    })
    .await;
}

#[tokio::test]
async fn the_directory_federates_and_a_suspension_is_refused_at_the_sender() {
    let ax = axis().await;
    let sender = ax.h49.agency(H49_UNIT).await;
    let _unit = ax.g12.agency(G12_UNIT).await;
    // h49 learns the ministry's unit through the national hub.
    within("h49 to know the g12 unit", || async {
        let got = sender.lookup_agencies(&[G12_UNIT.into()]).await.unwrap();
        got[0].registered && got[0].hub_id == "g12" && got[0].state == "active"
    })
    .await;
    // And the national hub knows h49's own unit, from h49.
    let g01 = ax.national.agency(G01).await;
    within("national to know the h49 unit", || async {
        let got = g01.lookup_agencies(&[H49_UNIT.into()]).await.unwrap();
        got[0].registered && got[0].hub_id == "h49"
    })
    .await;

    // g12 suspends it: h49 knows within seconds and refuses a document
    // for it at once, rather than accepting what g12 would refuse.
    ax.g12
        .operator()
        .await
        .set_agency_state(G12_UNIT, truc_proto::v1::AgencyState::Suspended, "bảo trì")
        .await
        .unwrap();
    within("h49 to see the unit suspended", || async {
        let got = sender.lookup_agencies(&[G12_UNIT.into()]).await.unwrap();
        got[0].state == "suspended"
    })
    .await;
    let st = sender
        .send(sign(&sender, header(&[G12_UNIT], "fed/susp"), b"x"))
        .await
        .expect_err("refused: the recipient is suspended at its hub");
    let st = st.status().expect("an RPC status").clone();
    assert_eq!(st.code(), Code::FailedPrecondition, "{st:?}");
    assert!(st.message().contains("is suspended"), "{}", st.message());

    // Each change is a receipt at each hub, naming the peer it came from.
    for (hub, from) in [(&ax.national, "urn:truc:hub:g12"), (&ax.h49, "urn:truc:hub:national")] {
        let op = hub.operator().await;
        let pages = op
            .all_receipts(ListReceiptsRequest {
                agency: G12_UNIT.into(),
                ..Default::default()
            })
            .await
            .unwrap();
        let details: Vec<String> = pages
            .into_iter()
            .flat_map(|p| p.receipts)
            .map(|r| Receipt::decode(r.receipt.as_slice()).unwrap())
            .filter(|r| r.event == ReceiptEvent::AgencyChanged as i32 && r.actor == from)
            .map(|r| r.detail)
            .collect();
        assert!(details.iter().any(|d| d.contains("suspended")), "{details:?}");
    }
}

#[tokio::test]
async fn an_auditor_follows_the_hops_and_finds_a_rewritten_hop_or_a_gap() {
    use std::collections::HashMap;
    use truc_client::audit::hops::{export_hops, verify_hops, HopsError};
    use truc_client::audit::AuditQuery;

    let ax = axis().await;
    let sender = ax.h49.agency(H49_UNIT).await;
    let unit = ax.g12.agency(G12_UNIT).await;
    sender
        .send(sign(&sender, header(&[G12_UNIT], "fed/audit"), b"audited"))
        .await
        .unwrap();
    let d = next_delivery(&unit).await;
    unit.ack(vec![d.delivery_id]).await.unwrap();
    within("h49 to hear of the delivery", || async {
        let t = sender.track("fed/audit").await.unwrap();
        t.recipients[0].state == TransportState::Delivered as i32
    })
    .await;

    let key = |hub: &TestHub| {
        TreeHeadVerifier::from_pem(&std::fs::read_to_string(hub.pki.pki.receipt_pub_path()).unwrap()).unwrap()
    };
    let keys: HashMap<String, TreeHeadVerifier> = [("h49", &ax.h49), ("national", &ax.national), ("g12", &ax.g12)]
        .into_iter()
        .map(|(id, hub)| (id.to_string(), key(hub)))
        .collect();
    let query = AuditQuery::document(H49_UNIT, "fed/audit");
    let mut others = HashMap::new();
    others.insert("national".to_string(), ax.national.operator().await);
    others.insert("g12".to_string(), ax.g12.operator().await);
    let first = ax.h49.operator().await;
    let chain = export_hops("h49", &first, &others, &query).await.unwrap();
    let ids: Vec<&str> = chain.hubs.iter().map(|h| h.hub_id.as_str()).collect();
    assert_eq!(ids, vec!["h49", "national", "g12"], "followed the FORWARDED receipts");
    let report = verify_hops(&chain, &keys).expect("an honest chain verifies with each hub's key");
    assert!(report.gaps.is_empty(), "{report:?}");
    // h49 holds national's ACCEPTED and its DELIVERED report; national
    // holds g12's ACCEPTED and DELIVERED.
    assert!(report.links.len() >= 4, "{report:?}");

    // National's log "rewritten" at the index h49 holds: detected.
    let mut rewritten = chain.clone();
    let national = rewritten.hubs.iter_mut().find(|h| h.hub_id == "national").unwrap();
    let held = national
        .export
        .receipts
        .iter_mut()
        .find(|r| r.event == "ACCEPTED")
        .unwrap();
    let mut bytes = truc_core::unhex(&held.receipt).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    held.receipt = truc_core::hex(&bytes);
    let e = verify_hops(&rewritten, &keys).expect_err("a rewritten hop");
    assert!(matches!(e, HopsError::Hub { .. } | HopsError::Rewritten { .. }), "{e}");

    // Without g12's export, the hop to g12 is a gap, named.
    let mut partial = chain.clone();
    partial.hubs.retain(|h| h.hub_id != "g12");
    let report = verify_hops(&partial, &keys).unwrap();
    assert!(
        report
            .gaps
            .iter()
            .any(|(from, to, _)| from == "national" && to == "g12"),
        "{report:?}"
    );

    // A hub key that is not the hub's: refused.
    let mut wrong = keys.clone();
    wrong.insert("national".into(), key(&ax.g12));
    assert!(verify_hops(&chain, &wrong).is_err());
}

#[tokio::test]
async fn a_revoke_reaches_the_recipients_on_both_other_hubs_and_their_answers_come_back() {
    use truc_proto::v1::{BusinessType, DocumentHeader};
    let ax = axis().await;
    let sender = ax.h49.agency(H49_UNIT).await;
    let g01 = ax.national.agency(G01).await;
    let unit = ax.g12.agency(G12_UNIT).await;
    let id = "fed/revoke";
    sender
        .send(sign(&sender, header(&[G01, G12_UNIT], id), b"original"))
        .await
        .unwrap();
    for c in [&g01, &unit] {
        let d = next_delivery(c).await;
        c.ack(vec![d.delivery_id]).await.unwrap();
    }
    // Revoked under the original's id, as the axis sends it.
    let mut h = header(&[G01, G12_UNIT], id);
    h.business_type = BusinessType::Revoke as i32;
    h.business_reason = "Ban hành nhầm".into();
    sender
        .send(sign(&sender, h, b""))
        .await
        .expect("the revoke is accepted at h49");
    for (c, at) in [(&g01, "national"), (&unit, "g12")] {
        let d = next_delivery(c).await;
        let doc = d.document.expect("the revoke itself");
        let got = DocumentHeader::decode(doc.header.as_slice()).unwrap();
        assert_eq!(
            (
                got.business_type,
                got.document_id.as_str(),
                got.business_reason.as_str()
            ),
            (BusinessType::Revoke as i32, id, "Ban hành nhầm"),
            "the revoke at {at}"
        );
        c.ack(vec![d.delivery_id]).await.unwrap();
        // The recipient agrees (15): the answer travels back to h49.
        c.report_status(H49_UNIT, id, StatusCode::Agree as i32, "đồng ý thu hồi", None)
            .await
            .unwrap_or_else(|e| panic!("15 at {at}: {e}"));
    }
    let mut answers: Vec<(String, i32)> = next_deliveries(&sender, 2)
        .await
        .into_iter()
        .map(|d| d.status.expect("an answer"))
        .map(|n| (n.reporter, n.code))
        .collect();
    answers.sort();
    assert_eq!(
        answers,
        vec![
            (G01.to_string(), StatusCode::Agree as i32),
            (G12_UNIT.to_string(), StatusCode::Agree as i32)
        ]
    );
}

#[tokio::test]
async fn an_uploaded_document_crosses_hubs_with_its_payload() {
    let ax = axis().await;
    let sender = ax.h49.agency(H49_UNIT).await;
    let unit = ax.g12.agency(G12_UNIT).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ho-so.pdf");
    let want: Vec<u8> = (0..(300u32 << 10) + 77)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 9) as u8)
        .collect();
    std::fs::write(&path, &want).unwrap();
    // Uploaded (the payload apart from the header, in the payload files at
    // h49), then forwarded with the payload inline.
    let doc = truc_tests::transfer::signed(&sender, &[G12_UNIT], "fed/upload", &path);
    sender
        .upload_file(doc, &path, &truc_tests::transfer::quiet)
        .await
        .expect("uploaded at h49");
    let got_dir = tempfile::tempdir().unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let got = loop {
        let got = truc_tests::transfer::receive_all(&unit, got_dir.path()).await;
        if !got.is_empty() {
            break got;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the payload did not reach g12 in 30 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(got.len() == 1 && got[0] == want, "the payload arrived at g12 unchanged");
}

#[tokio::test]
async fn a_report_not_signed_by_the_reporting_peer_is_refused() {
    use truc_proto::v1::ReportRequest;
    let ax = axis().await;
    let sender = ax.h49.agency(H49_UNIT).await;
    let unit = ax.g12.agency(G12_UNIT).await;
    sender
        .send(sign(&sender, header(&[G12_UNIT], "fed/report"), b"x"))
        .await
        .unwrap();
    let d = next_delivery(&unit).await;
    unit.ack(vec![d.delivery_id]).await.unwrap();
    // A genuine receipt of g12's log (its DELIVERED), handed to the
    // national hub by h49 as if h49 had signed it: refused, as national
    // checks what h49 reports with h49's checkpoint key.
    within("g12 to record the delivery", || async {
        receipts_of(&ax.g12, H49_UNIT, "fed/report")
            .await
            .iter()
            .any(|r| r.event == ReceiptEvent::Delivered as i32)
    })
    .await;
    let op = ax.g12.operator().await;
    let pages = op
        .all_receipts(ListReceiptsRequest {
            document_from: H49_UNIT.into(),
            document_id: "fed/report".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let delivered = pages
        .into_iter()
        .flat_map(|p| {
            let head = p.tree_head.clone();
            p.receipts.into_iter().map(move |mut r| {
                if r.tree_head.is_none() {
                    r.tree_head = head.clone();
                }
                r
            })
        })
        .find(|r| Receipt::decode(r.receipt.as_slice()).unwrap().event == ReceiptEvent::Delivered as i32)
        .unwrap();
    let mut from_h49 = peer_client(&ax.national, &ax.h49.pki.pki.hub_dir(), &ax.national).await;
    let st = from_h49
        .report(ReportRequest {
            receipt: Some(delivered),
        })
        .await
        .expect_err("a receipt h49 did not sign");
    assert_eq!(st.code(), Code::InvalidArgument, "{st:?}");
    assert!(
        st.message()
            .contains("does not verify with urn:truc:hub:h49's checkpoint_key"),
        "{}",
        st.message()
    );
}
