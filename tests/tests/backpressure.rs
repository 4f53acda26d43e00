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
const G23: &str = "000.00.00.G23";
const H26: &str = "000.00.00.H26";

const STREAMS: u32 = 16;
const BYTES: u64 = 256 << 10;
const SENDS: usize = 2000;
/// 16 streams of documents this size hold more than `BYTES`: some Sends
/// are pushed back whatever the timing.
const PAYLOAD: usize = 32 << 10;
/// Documents this small never reach `BYTES`: the stream limit is what
/// holds them back.
const SMALL: usize = 64;

/// `SENDS` documents of `size` bytes signed by `client` to H26, ids
/// `prefix/N`.
fn documents(client: &truc_client::Client, prefix: &str, size: usize) -> Vec<truc_proto::v1::SignedDocument> {
    (0..SENDS)
        .map(|i| {
            let mut payload = vec![(i % 251) as u8; size];
            payload[..8].copy_from_slice(&(i as u64).to_be_bytes());
            sign(client, header(&[H26], &format!("{prefix}/{i}")), &payload)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_concurrent_sends_on_one_connection_all_arrive_within_the_limits() {
    let hub = TestHub::start_with(|c| {
        c.limits.max_streams_per_connection = STREAMS;
        c.limits.max_request_bytes_per_connection = BYTES;
    })
    .await;
    let h26 = hub.agency(H26).await;
    // One client each, one connection each: G22's large documents meet the
    // byte limit, G23's small ones the stream limit.
    let g22 = hub.agency(G22).await;
    let g23 = hub.agency(G23).await;
    let docs = [documents(&g22, "big", PAYLOAD), documents(&g23, "small", SMALL)];

    // Kept until the end: their connections are inspected after the Sends.
    let senders = [Arc::new(g22), Arc::new(g23)];
    let mut sends = tokio::task::JoinSet::new();
    for (client, docs) in senders.iter().zip(docs) {
        for doc in docs {
            let client = client.clone();
            sends.spawn(async move { client.send(doc).await });
        }
    }
    let mut hub_ids = HashSet::new();
    while let Some(r) = sends.join_next().await {
        let accepted = r
            .expect("task")
            .expect("every Send is accepted, however many are in flight");
        assert!(!accepted.duplicate, "{accepted:?}");
        hub_ids.insert(accepted.hub_document_id);
    }
    assert_eq!(hub_ids.len(), 2 * SENDS);

    // What the hub held for each sender's connection, at most.
    let ops = hub.operator().await;
    let list = ops.connections().await.expect("connections");
    let of = |code: &str| {
        let mine: Vec<_> = list
            .iter()
            .filter(|c| c.principal == format!("urn:truc:agency:{code}"))
            .collect();
        assert_eq!(mine.len(), 1, "one connection for all of {code}'s Sends: {list:#?}");
        mine[0].clone()
    };
    let (big, small) = (of(G22), of(G23));
    for c in [&big, &small] {
        assert!(c.requests_held_peak <= STREAMS, "requests held at once: {c:?}");
        assert!(c.request_bytes_held_peak <= BYTES, "request bytes held at once: {c:?}");
        assert_eq!(c.request_bytes_held, 0, "{c:?}");
    }
    assert!(big.request_bytes_held_peak > PAYLOAD as u64, "{big:?}");
    assert!(
        big.requests_pushed_back > 0,
        "the byte limit was never reached: {big:?}"
    );
    // Small documents: held back by the streams alone, up to their limit.
    assert!(small.requests_held_peak > STREAMS / 2, "{small:?}");
    assert_eq!(small.requests_pushed_back, 0, "{small:?}");

    // Every document arrives, once.
    let mut stream = h26.receive(1024, true).await.expect("receive");
    let mut seen = HashSet::new();
    let mut to_ack = Vec::new();
    while seen.len() < 2 * SENDS {
        let d = tokio::time::timeout(std::time::Duration::from_secs(60), stream.message())
            .await
            .expect("deliveries keep coming")
            .expect("stream")
            .expect("stream open");
        assert!(seen.insert(document_id(&d)), "delivered twice: {}", document_id(&d));
        to_ack.push(d.delivery_id);
        if to_ack.len() == 500 || seen.len() == 2 * SENDS {
            h26.ack(std::mem::take(&mut to_ack)).await.expect("ack");
        }
    }
    let expected: HashSet<_> = ["big", "small"]
        .iter()
        .flat_map(|p| (0..SENDS).map(move |i| format!("{p}/{i}")))
        .collect();
    assert_eq!(seen, expected);
    eventually("an empty inbox once all is acknowledged", || async {
        let inbox = h26.inbox_state().await.expect("inbox");
        (inbox.waiting, inbox.leased) == (0, 0)
    })
    .await;
}
