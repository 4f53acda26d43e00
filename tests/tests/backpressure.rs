//! Back-pressure on one connection (issue 18): the hub holds at most
//! `limits.max_streams_per_connection` requests and
//! `limits.max_request_bytes_per_connection` bytes of them for a connection
//! at once; a stream beyond the first limit waits in the client (or is
//! refused), a request beyond the second is pushed back (RESOURCE_EXHAUSTED
//! with `grpc-retry-pushback-ms`) and the SDK sends it again. A client with
//! far more in flight is slowed, not failed, and nothing is lost.

use std::collections::HashSet;
use std::sync::Arc;

use truc_tests::{document_id, eventually, header, sign, TestHub};

const G22: &str = "000.00.00.G22";
const H26: &str = "000.00.00.H26";

const STREAMS: u32 = 16;
const BYTES: u64 = 256 << 10;
const SENDS: usize = 2000;
/// 16 streams of documents this size hold more than `BYTES`: some Sends
/// are pushed back whatever the timing.
const PAYLOAD: usize = 32 << 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_concurrent_sends_on_one_connection_all_arrive_within_the_limits() {
    let hub = TestHub::start_with(|c| {
        c.limits.max_streams_per_connection = STREAMS;
        c.limits.max_request_bytes_per_connection = BYTES;
    })
    .await;
    let h26 = hub.agency(H26).await;
    // One client, one connection: every Send below shares it.
    let g22 = hub.agency(G22).await;
    let docs: Vec<_> = (0..SENDS)
        .map(|i| {
            let mut payload = vec![(i % 251) as u8; PAYLOAD];
            payload[..8].copy_from_slice(&(i as u64).to_be_bytes());
            sign(&g22, header(&[H26], &format!("bp/{i}")), &payload)
        })
        .collect();

    let g22 = Arc::new(g22);
    let mut sends = tokio::task::JoinSet::new();
    for doc in docs {
        let g22 = g22.clone();
        sends.spawn(async move { g22.send(doc).await });
    }
    let mut hub_ids = HashSet::new();
    while let Some(r) = sends.join_next().await {
        let accepted = r
            .expect("task")
            .expect("every Send is accepted, however many are in flight");
        assert!(!accepted.duplicate, "{accepted:?}");
        hub_ids.insert(accepted.hub_document_id);
    }
    assert_eq!(hub_ids.len(), SENDS);

    // What the hub held for the sender's connection, at most.
    let ops = hub.operator().await;
    let list = ops.connections().await.expect("connections");
    let sender: Vec<_> = list
        .iter()
        .filter(|c| c.principal == format!("urn:truc:agency:{G22}"))
        .collect();
    assert_eq!(sender.len(), 1, "one connection for all the Sends: {list:#?}");
    let c = sender[0];
    assert!(
        c.requests_held_peak >= 2 && c.requests_held_peak <= STREAMS,
        "requests held at once: {c:?}"
    );
    assert!(
        c.request_bytes_held_peak > PAYLOAD as u64 && c.request_bytes_held_peak <= BYTES,
        "request bytes held at once: {c:?}"
    );
    assert!(c.requests_pushed_back > 0, "the byte limit was never reached: {c:?}");
    assert_eq!(c.request_bytes_held, 0, "{c:?}");

    // Every document arrives, once.
    let mut stream = h26.receive(1024, true).await.expect("receive");
    let mut seen = HashSet::new();
    let mut to_ack = Vec::new();
    while seen.len() < SENDS {
        let d = tokio::time::timeout(std::time::Duration::from_secs(60), stream.message())
            .await
            .expect("deliveries keep coming")
            .expect("stream")
            .expect("stream open");
        assert!(seen.insert(document_id(&d)), "delivered twice: {}", document_id(&d));
        to_ack.push(d.delivery_id);
        if to_ack.len() == 500 || seen.len() == SENDS {
            h26.ack(std::mem::take(&mut to_ack)).await.expect("ack");
        }
    }
    let expected: HashSet<_> = (0..SENDS).map(|i| format!("bp/{i}")).collect();
    assert_eq!(seen, expected);
    eventually("an empty inbox once all is acknowledged", || async {
        let inbox = h26.inbox_state().await.expect("inbox");
        (inbox.waiting, inbox.leased) == (0, 0)
    })
    .await;
}
