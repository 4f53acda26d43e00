//! A client across a hub restart (crates/client/src/reconnect.rs): the
//! Receive stream comes back by itself, an ack the hub could not take is
//! sent after reconnecting, nothing is lost and nothing acknowledged twice.

use std::sync::{Arc, Mutex};

use prost::Message;
use truc_client::reconnect::{retry, Notice, Receiver, Reconnect};
use truc_proto::v1::{ListReceiptsRequest, Receipt, ReceiptEvent};
use truc_tests::{document_id, header, sign, TestHub};

const G22: &str = "000.00.00.G22";
const H26: &str = "000.00.00.H26";

#[tokio::test]
async fn a_receiver_rides_out_a_restart_and_its_pending_ack_lands_once() {
    let mut hub = TestHub::start().await;
    let g22 = hub.agency(G22).await;
    let h26 = hub.agency(H26).await;
    g22.send(sign(&g22, header(&[H26], "G22/r/1"), b"one")).await.unwrap();

    let notices = Arc::new(Mutex::new(Vec::new()));
    let seen = notices.clone();
    let mut rx = Receiver::new(h26.clone(), 8, true, Reconnect::default(), move |n| {
        seen.lock().unwrap().push(n)
    });
    let first = rx.next().await.unwrap().expect("first document");
    assert_eq!(document_id(&first), "G22/r/1");

    // The hub stops with the copy in flight; the ack cannot reach it and is
    // kept, and the caller is not told to fail.
    hub.stop().await;
    rx.ack(first.delivery_id)
        .await
        .expect("an ack to an absent hub is kept");
    assert_eq!(rx.pending_acks(), &[first.delivery_id]);

    // The receiver waits (backing off) until the hub is back on its port,
    // sends the kept ack first, and hands out the next document only: the
    // first is not delivered again.
    let next = tokio::spawn(async move {
        let d = rx.next().await;
        (rx, d)
    });
    tokio::time::sleep(std::time::Duration::from_millis(600)).await; // an outage, not a sync point
    hub.start_again().await;
    let quiet = |_| {};
    retry(&Reconnect::default(), &quiet, || {
        g22.send(sign(&g22, header(&[H26], "G22/r/2"), b"two"))
    })
    .await
    .unwrap();
    let (mut rx, second) = next.await.unwrap();
    let second = second.unwrap().expect("second document");
    assert_eq!(document_id(&second), "G22/r/2");
    assert!(rx.pending_acks().is_empty());
    rx.ack(second.delivery_id).await.unwrap();

    let n = notices.lock().unwrap().clone();
    assert_eq!(n.len(), 2, "{n:?}");
    assert!(matches!(&n[0], Notice::Reconnecting { .. }), "{n:?}");
    assert!(
        matches!(&n[1], Notice::Reconnected { after } if after.as_millis() >= 500),
        "{n:?}"
    );

    // At the hub: both delivered exactly once, nothing left in the queue.
    let op = hub.operator().await;
    let q = op.list_queues().await.unwrap();
    let row = q.iter().find(|r| r.agency == H26).unwrap();
    assert_eq!((row.queued, row.in_flight), (0, 0));
    for id in ["G22/r/1", "G22/r/2"] {
        let page = op
            .list_receipts(ListReceiptsRequest {
                document_from: G22.into(),
                document_id: id.into(),
                ..Default::default()
            })
            .await
            .unwrap();
        let delivered = page
            .receipts
            .iter()
            .filter(|p| Receipt::decode(p.receipt.as_slice()).unwrap().event == ReceiptEvent::Delivered as i32)
            .count();
        assert_eq!(delivered, 1, "{id}: Delivered receipts");
    }
}

#[tokio::test]
async fn without_reconnection_the_break_is_the_error() {
    let mut hub = TestHub::start().await;
    let h26 = hub.agency(H26).await;
    let mut rx = Receiver::new(h26, 8, true, Reconnect::never(), |_| {});
    let waiting = tokio::spawn(async move { rx.next().await });
    // The stream is open (the agency shows as connected) before the stop.
    let op = hub.operator().await;
    truc_tests::eventually("the stream to open", || async {
        let q = op.list_queues().await.unwrap();
        q.iter().any(|r| r.agency == H26 && r.connected_streams > 0)
    })
    .await;
    hub.stop().await;
    let err = waiting.await.unwrap().expect_err("the break is returned");
    assert_eq!(err.code(), Some(tonic::Code::Unavailable), "{err:?}");
}
