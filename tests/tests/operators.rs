//! Operators: revocation without a restart, retirement with a successor,
//! suspension, queue summaries and listings, dead letters.

use std::time::Duration;

use prost::Message;
use tonic::Code;
use truc_client::Client;
use truc_proto::v1::{AgencyState, ListReceiptsRequest, Priority, Receipt, ReceiptEvent, TransportState};
use truc_tests::{agency, document_id, drain, eventually, header, identity, sign, TestHub};

const G22: &str = "000.00.00.G22";
const H26: &str = "000.00.00.H26";
const H29: &str = "000.00.00.H29";

#[tokio::test]
async fn revoking_an_agency_ends_its_stream_and_refuses_it_without_a_restart() {
    // The hub notices the rewritten CRL file by itself.
    let hub = TestHub::start_with(|c| c.tls.reload_poll_ms = 100).await;
    let g22 = hub.agency(G22).await;
    let h26 = hub.agency(H26).await;
    let h29 = hub.agency(H29).await;
    let signed_before = sign(&h26, header(&[G22], "h26/late"), b"late");
    let mut stream = h26.receive(4, true).await.unwrap();
    g22.send(sign(&g22, header(&[H26], "before"), b"x")).await.unwrap();
    let d = stream.message().await.unwrap().unwrap();
    assert_eq!(document_id(&d), "before");

    hub.pki.pki.revoke_principal(&agency(H26)).unwrap();
    // Its live stream ends with a clear status, within seconds.
    let end = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match stream.message().await {
                Ok(Some(_)) => continue,
                Ok(None) => return None,
                Err(status) => return Some(status),
            }
        }
    })
    .await
    .expect("the revoked agency's stream ended within 10 s")
    .expect("ended with a status");
    assert_eq!(end.code(), Code::Unauthenticated, "{end:?}");
    assert!(end.message().contains("revoked"), "{end:?}");
    // Its existing connection is refused on the next call; so is a new one.
    assert_eq!(
        h26.ack(vec![d.delivery_id]).await.unwrap_err().code(),
        Some(Code::Unauthenticated)
    );
    let fresh = Client::connect_dir(&hub.addr, &hub.pki.agency_dir(H26)).await.unwrap();
    let err = fresh.send(signed_before.clone()).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::Unauthenticated));
    assert!(err.to_string().contains("revoked"), "{err:?}");
    // A document signed with its key is refused even when another agency carries it.
    let revoked = identity(&hub.pki.agency_dir(H26));
    let mut h = header(&[H29], "carried");
    h.from = G22.into();
    let doc = truc_client::sign_with(&revoked.signer().unwrap(), &revoked, &mut h, b"x".to_vec()).unwrap();
    let err = g22.send(doc).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::InvalidArgument), "{err:?}");
    // Everyone else carries on.
    g22.send(sign(&g22, header(&[H29], "after"), b"y")).await.unwrap();
    assert_eq!(drain(&h29, 4).await.len(), 1);
    // An explicit reload reports the revocation and is itself a receipt.
    let r = hub.operator().await.reload().await.unwrap();
    assert_eq!(r.revoked_certificates, 1);
}

#[tokio::test]
async fn a_retired_agency_routes_to_its_successor_with_receipts() {
    let hub = TestHub::start().await;
    let g22 = hub.agency(G22).await;
    let h26 = hub.agency(H26).await;
    let h29 = hub.agency(H29).await;
    let op = hub.operator().await;
    g22.send(sign(&g22, header(&[H26], "waiting"), b"w")).await.unwrap();

    let a = op.retire_agency(H26, H29, "sáp nhập").await.unwrap();
    assert_eq!((a.state, a.successor.as_str()), (AgencyState::Retired as i32, H29));
    g22.send(sign(&g22, header(&[H26], "later"), b"l")).await.unwrap();

    let got: Vec<String> = drain(&h29, 8).await.iter().map(document_id).collect();
    assert_eq!(got, vec!["waiting", "later"]);
    assert_eq!(
        h26.send(sign(&h26, header(&[H29], "x"), b"x"))
            .await
            .unwrap_err()
            .code(),
        Some(Code::FailedPrecondition)
    );

    // Track and the receipt trail say where it went.
    let t = g22.track("later").await.unwrap();
    let rows: Vec<(String, i32)> = t.recipients.iter().map(|r| (r.agency.clone(), r.state)).collect();
    assert_eq!(rows, vec![(H29.into(), TransportState::Delivered as i32)]);
    let t = g22.track("waiting").await.unwrap();
    let rows: Vec<(String, i32)> = t.recipients.iter().map(|r| (r.agency.clone(), r.state)).collect();
    assert_eq!(
        rows,
        vec![
            (H26.into(), TransportState::Redirected as i32),
            (H29.into(), TransportState::Delivered as i32)
        ]
    );
    for id in ["waiting", "later"] {
        let req = ListReceiptsRequest {
            document_from: G22.into(),
            document_id: id.into(),
            ..Default::default()
        };
        let page = op.list_receipts(req).await.unwrap();
        let redirected: Vec<Receipt> = page
            .receipts
            .iter()
            .map(|r| Receipt::decode(r.receipt.as_slice()).unwrap())
            .filter(|r| r.event == ReceiptEvent::Redirected as i32)
            .collect();
        assert_eq!(redirected.len(), 1, "{id}");
        assert_eq!(redirected[0].recipient, H26);
        assert!(redirected[0].detail.contains(H29), "{:?}", redirected[0].detail);
    }
    // Retiring again, or into a missing agency, is refused.
    assert_eq!(
        op.retire_agency(H26, H29, "").await.unwrap_err().code(),
        Some(Code::FailedPrecondition)
    );
    assert_eq!(
        op.retire_agency(H29, "G09.01", "").await.unwrap_err().code(),
        Some(Code::FailedPrecondition)
    );
}

#[tokio::test]
async fn suspension_refuses_then_resumes() {
    let hub = TestHub::start().await;
    let g22 = hub.agency(G22).await;
    let h26 = hub.agency(H26).await;
    let op = hub.operator().await;
    op.set_agency_state(H26, AgencyState::Suspended, "bảo trì")
        .await
        .unwrap();
    let err = g22.send(sign(&g22, header(&[H26], "s1"), b"x")).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::FailedPrecondition));
    assert!(err.to_string().contains("suspended"), "{err:?}");
    op.set_agency_state(H26, AgencyState::Active, "").await.unwrap();
    g22.send(sign(&g22, header(&[H26], "s1"), b"x")).await.unwrap();
    assert_eq!(drain(&h26, 4).await.len(), 1);
    // Agencies may not do this.
    let err = g22.set_agency_state(H26, AgencyState::Suspended, "").await.unwrap_err();
    assert_eq!(err.code(), Some(Code::PermissionDenied));
}

#[tokio::test]
async fn queue_summaries_and_listings_across_twenty_agencies() {
    let hub = TestHub::start_with(|c| c.deadlines.urgent_ms = 1).await;
    let g22 = hub.agency(G22).await;
    let mut codes = Vec::new();
    for i in 1..=20 {
        let code = format!("G09.{i:02}");
        hub.agency(&code).await;
        codes.push(code);
    }
    let to: Vec<&str> = codes.iter().map(String::as_str).collect();
    let mut tasks = Vec::new();
    for i in 0..100 {
        let mut h = header(&to, &format!("bulk/{i}"));
        h.priority = if i % 10 == 0 {
            Priority::Urgent as i32
        } else {
            Priority::Normal as i32
        };
        let doc = sign(&g22, h, &[b'x'; 100]);
        let c = g22.clone();
        tasks.push(tokio::spawn(async move { c.send(doc).await.unwrap() }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let op = hub.operator().await;
    let started = std::time::Instant::now();
    let q = op.list_queues().await.unwrap();
    eprintln!("list_queues over 2000 queued items: {:?}", started.elapsed());
    assert_eq!(q.len(), 21);
    for row in q.iter().filter(|r| r.agency != G22) {
        assert_eq!(
            (row.queued, row.bytes, row.dead_letters),
            (100, 100 * 100, 0),
            "{row:?}"
        );
        assert!(row.oldest_age_ms >= 0);
    }
    eventually("urgent items to be overdue", || async {
        op.list_queues()
            .await
            .unwrap()
            .iter()
            .filter(|r| r.agency != G22)
            .all(|r| r.overdue_urgent == 10)
    })
    .await;
    // The sender's empty queue sorts last.
    assert_eq!(op.list_queues().await.unwrap().last().unwrap().agency, G22);

    // One agency's items, in delivery order, paged.
    let first = op.list_queue("G09.07", 0, 60).await.unwrap();
    assert_eq!(first.items.len(), 60);
    assert!(first.items[..10].iter().all(|i| i.priority == Priority::Urgent as i32));
    let rest = op.list_queue("G09.07", first.next_after_delivery_id, 60).await.unwrap();
    assert_eq!(rest.items.len(), 40);
    assert_eq!(rest.next_after_delivery_id, 0);
    let mut all: Vec<u64> = first.items.iter().chain(&rest.items).map(|i| i.delivery_id).collect();
    let sorted = {
        let mut s = all.clone();
        s.sort();
        s
    };
    assert_eq!(all, sorted);
    all.dedup();
    assert_eq!(all.len(), 100);
}

#[tokio::test]
async fn dead_letters_are_redriven_and_purged_with_receipts() {
    let hub = TestHub::start_with(|c| {
        c.delivery.lease_ms = 150;
        c.delivery.max_attempts = 1;
    })
    .await;
    let g22 = hub.agency(G22).await;
    let h26 = hub.agency(H26).await;
    let op = hub.operator().await;
    for id in ["d1", "d2"] {
        g22.send(sign(&g22, header(&[H26], id), id.as_bytes())).await.unwrap();
    }
    // Take both, ack neither: one lease each, then dead.
    let mut s = h26.receive(2, true).await.unwrap();
    s.message().await.unwrap().unwrap();
    s.message().await.unwrap().unwrap();
    drop(s);
    eventually("both to be dead-lettered", || async {
        op.dead_letters(H26).await.unwrap().len() == 2
    })
    .await;
    let dead = op.dead_letters(H26).await.unwrap();
    let d1 = dead.iter().find(|d| d.document_id == "d1").unwrap().delivery_id;

    assert_eq!(op.redrive(H26, vec![d1]).await.unwrap(), 1);
    let got: Vec<String> = drain(&h26, 4).await.iter().map(document_id).collect();
    assert_eq!(got, vec!["d1"]);
    assert_eq!(op.purge(H26, vec![]).await.unwrap(), 1);
    assert!(op.dead_letters(H26).await.unwrap().is_empty());
    assert_eq!(
        op.redrive(H26, vec![12345]).await.unwrap_err().code(),
        Some(Code::InvalidArgument)
    );

    let t = g22.track("d2").await.unwrap();
    assert_eq!(t.recipients[0].state, TransportState::DeadLettered as i32);
    let req = ListReceiptsRequest {
        agency: H26.into(),
        page_size: 1000,
        ..Default::default()
    };
    let events: Vec<i32> = op
        .list_receipts(req)
        .await
        .unwrap()
        .receipts
        .iter()
        .map(|r| Receipt::decode(r.receipt.as_slice()).unwrap().event)
        .collect();
    assert!(events.contains(&(ReceiptEvent::Redriven as i32)));
    assert!(events.contains(&(ReceiptEvent::Purged as i32)));
}

/// A typo registered by mistake is removed (a receipt records it; the code
/// is then unknown everywhere); an agency that had traffic is refused
/// (retire it), and so is an unknown one (NOT_FOUND). A document to a
/// retired agency says where it went.
#[tokio::test]
async fn an_agency_without_traffic_is_removed_one_with_traffic_is_not() {
    let hub = TestHub::start().await;
    let op = hub.operator().await;
    let g22 = hub.agency(G22).await;
    hub.agency(H26).await;
    let typo = "000.00.00.H20";
    op.add_agency(typo, "typo").await.unwrap();
    op.set_agency_state(typo, AgencyState::Suspended, "while checking")
        .await
        .unwrap();
    let removed = op.remove_agency(typo, "typo of H26").await.unwrap();
    assert_eq!(removed.code, typo);
    assert!(op.list_agencies().await.unwrap().iter().all(|a| a.code != typo));
    assert_eq!(
        op.remove_agency(typo, "again").await.unwrap_err().code(),
        Some(Code::NotFound)
    );
    assert_eq!(
        op.list_queue(typo, 0, 10).await.unwrap_err().code(),
        Some(Code::NotFound)
    );
    assert_eq!(op.dead_letters(typo).await.unwrap_err().code(), Some(Code::NotFound));
    let refused = g22
        .send(sign(&g22, header(&[typo], "to-typo"), b"x"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some(Code::FailedPrecondition), "{refused:?}");
    // The removal is in the log, naming the operator.
    let page = op
        .list_receipts(ListReceiptsRequest {
            agency: typo.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let last = Receipt::decode(page.receipts.last().unwrap().receipt.as_slice()).unwrap();
    assert_eq!(last.event, ReceiptEvent::AgencyChanged as i32);
    assert!(last.detail.contains("removed: typo of H26"), "{}", last.detail);
    assert_eq!(last.actor, "urn:truc:operator:ops");
    // It can be registered again, afresh.
    op.add_agency(typo, "now on purpose").await.unwrap();

    // Traffic: refused, with the way out.
    g22.send(sign(&g22, header(&[H26], "real"), b"x")).await.unwrap();
    let e = op.remove_agency(H26, "").await.unwrap_err();
    assert_eq!(e.code(), Some(Code::FailedPrecondition), "{e:?}");
    assert!(e.to_string().contains("retire it instead"), "{e}");
    let e = op.remove_agency(G22, "").await.unwrap_err();
    assert_eq!(e.code(), Some(Code::FailedPrecondition), "the sender too: {e:?}");

    // Retired into a successor: the acceptance names the redirect.
    op.retire_agency(H26, typo, "merged").await.unwrap();
    let r = g22.send(sign(&g22, header(&[H26, G22], "after"), b"x")).await.unwrap();
    assert_eq!(r.redirects.len(), 1, "{:?}", r.redirects);
    assert_eq!(
        (r.redirects[0].addressed.as_str(), r.redirects[0].delivered_to.as_str()),
        (H26, typo)
    );
}
