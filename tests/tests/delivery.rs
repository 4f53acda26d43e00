//! Delivery over real mTLS: fan-out, priority order, credit, idempotency,
//! leases and redelivery, dead letters, restart.

use std::time::Duration;

use prost::Message;
use tokio_stream_ext::next;
use truc_proto::v1::axis_client::AxisClient;
use truc_proto::v1::{AckRequest, DocumentHeader, DownloadRequest, Priority, ReceiveRequest};
use truc_tests::{document_id, drain, header, sign, TestHub};

const G22: &str = "000.00.00.G22";
const H26: &str = "000.00.00.H26";
const H29: &str = "000.00.00.H29";

mod tokio_stream_ext {
    use tonic::Streaming;
    use truc_proto::v1::Delivery;
    /// The next delivery, failing the test if none comes within 20 s.
    pub(super) async fn next(s: &mut Streaming<Delivery>) -> Delivery {
        tokio::time::timeout(std::time::Duration::from_secs(20), s.message())
            .await
            .expect("a delivery within 20 s")
            .expect("stream ok")
            .expect("stream not ended")
    }
}

#[tokio::test]
async fn fan_out_reaches_every_recipient_with_exact_bytes() {
    let hub = TestHub::start().await;
    let g22 = hub.agency(G22).await;
    let h26 = hub.agency(H26).await;
    let h29 = hub.agency(H29).await;
    let payload: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let resp = g22
        .send(sign(&g22, header(&[H26, H29], "fan/1"), &payload))
        .await
        .unwrap();
    assert!(!resp.duplicate);
    assert_eq!(
        hub.queued().await,
        vec![(G22.into(), 0), (H26.into(), 1), (H29.into(), 1)]
    );
    for c in [&h26, &h29] {
        let got = drain(c, 4).await;
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].hub_document_id, resp.hub_document_id);
        assert_eq!(got[0].document.as_ref().unwrap().payload, payload);
    }
    // The sender is not a recipient.
    assert!(drain(&g22, 4).await.is_empty());
    assert_eq!(hub.queued().await.iter().map(|(_, n)| n).sum::<u64>(), 0);
}

#[tokio::test]
async fn priority_first_then_fifo() {
    let hub = TestHub::start().await;
    let g22 = hub.agency(G22).await;
    let h26 = hub.agency(H26).await;
    let sends = [
        ("n1", Priority::Normal),
        ("u1", Priority::Urgent),
        ("x1", Priority::Express),
        ("n2", Priority::Normal),
        ("v1", Priority::VeryUrgent),
        ("x2", Priority::Express),
        ("u2", Priority::Urgent),
    ];
    for (id, p) in sends {
        let mut h = header(&[H26], id);
        h.priority = p as i32;
        g22.send(sign(&g22, h, id.as_bytes())).await.unwrap();
    }
    let order: Vec<String> = drain(&h26, 1).await.iter().map(document_id).collect();
    assert_eq!(order, ["x1", "x2", "v1", "u1", "u2", "n1", "n2"]);
}

#[tokio::test]
async fn credit_limits_unacked_deliveries() {
    let hub = TestHub::start().await;
    let g22 = hub.agency(G22).await;
    let h26 = hub.agency(H26).await;
    for i in 0..5 {
        g22.send(sign(&g22, header(&[H26], &format!("c/{i}")), b"x"))
            .await
            .unwrap();
    }
    let mut s = h26.receive(2, true).await.unwrap();
    let a = next(&mut s).await;
    let b = next(&mut s).await;
    // With two unacked, a third must not come.
    let third = tokio::time::timeout(Duration::from_millis(300), s.message()).await;
    assert!(third.is_err(), "a third delivery arrived beyond the credit of 2");
    h26.ack(vec![a.delivery_id]).await.unwrap();
    let c = next(&mut s).await;
    assert_eq!(document_id(&c), "c/2");
    h26.ack(vec![b.delivery_id, c.delivery_id]).await.unwrap();
    assert_eq!(document_id(&next(&mut s).await), "c/3");
}

#[tokio::test]
async fn retried_send_returns_the_original_receipt_and_stores_nothing() {
    let hub = TestHub::start().await;
    let g22 = hub.agency(G22).await;
    let h26 = hub.agency(H26).await;
    let doc = sign(&g22, header(&[H26], "idem/1"), b"once");
    let first = g22.send(doc.clone()).await.unwrap();
    let second = g22.send(doc.clone()).await.unwrap();
    assert!(second.duplicate);
    assert_eq!(second.hub_document_id, first.hub_document_id);
    assert_eq!(second.accepted_at_unix_ms, first.accepted_at_unix_ms);
    assert_eq!(
        second.receipt.as_ref().unwrap().receipt,
        first.receipt.as_ref().unwrap().receipt
    );
    assert_eq!(hub.queued().await, vec![(G22.into(), 0), (H26.into(), 1)]);
    // Same id, different content: refused, not silently merged.
    let other = sign(&g22, header(&[H26], "idem/1"), b"different");
    let err = g22.send(other).await.unwrap_err();
    assert_eq!(err.code(), Some(tonic::Code::AlreadyExists), "{err:?}");
    assert_eq!(drain(&h26, 4).await.len(), 1);
}

#[tokio::test]
async fn an_unacked_delivery_comes_back_after_its_lease() {
    let hub = TestHub::start_with(|c| c.delivery.lease_ms = 400).await;
    let g22 = hub.agency(G22).await;
    let h26 = hub.agency(H26).await;
    g22.send(sign(&g22, header(&[H26], "lease/1"), b"x")).await.unwrap();
    let mut s = h26.receive(4, true).await.unwrap();
    let first = next(&mut s).await;
    assert_eq!(first.previous_attempts, 0);
    // Not acked: the same copy comes back once the lease runs out.
    let again = next(&mut s).await;
    assert_eq!(again.delivery_id, first.delivery_id);
    assert_eq!(again.previous_attempts, 1);
    h26.ack(vec![again.delivery_id]).await.unwrap();
    // Acking twice is fine; an id never delivered is not.
    assert_eq!(h26.ack(vec![again.delivery_id]).await.unwrap(), 0);
    let err = h26.ack(vec![12345]).await.unwrap_err();
    assert_eq!(err.code(), Some(tonic::Code::NotFound));
    // Once acked it never comes back, even after more leases would run out.
    let nothing = tokio::time::timeout(Duration::from_millis(1200), s.message()).await;
    assert!(nothing.is_err(), "an acked delivery came back");
}

#[tokio::test]
async fn dead_lettered_after_max_attempts() {
    let hub = TestHub::start_with(|c| {
        c.delivery.lease_ms = 200;
        c.delivery.max_attempts = 3;
    })
    .await;
    let g22 = hub.agency(G22).await;
    let h26 = hub.agency(H26).await;
    g22.send(sign(&g22, header(&[H26], "poison/1"), b"x")).await.unwrap();
    g22.send(sign(&g22, header(&[H26], "fine/2"), b"y")).await.unwrap();
    let mut s = h26.receive(1, true).await.unwrap();
    let mut attempts = Vec::new();
    loop {
        let d = next(&mut s).await;
        if document_id(&d) == "fine/2" {
            h26.ack(vec![d.delivery_id]).await.unwrap();
            break;
        }
        attempts.push(d.previous_attempts); // never acked
    }
    assert_eq!(attempts, vec![0, 1, 2]);
    let dead = hub.operator().await.dead_letters(H26).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].document_id, "poison/1");
    assert_eq!(dead[0].from, G22);
    assert_eq!(dead[0].attempts, 3);
    assert_eq!(hub.queued().await, vec![(G22.into(), 0), (H26.into(), 0)]);
}

#[tokio::test]
async fn queued_documents_survive_a_restart() {
    let mut hub = TestHub::start().await;
    let g22 = hub.agency(G22).await;
    hub.agency(H26).await;
    for i in 0..3 {
        g22.send(sign(
            &g22,
            header(&[H26], &format!("r/{i}")),
            format!("doc {i}").as_bytes(),
        ))
        .await
        .unwrap();
    }
    // One delivered but not acked before the restart: it must come again.
    let h26 = hub.connect(&hub.pki.agency_dir(H26)).await;
    let mut s = h26.receive(1, true).await.unwrap();
    assert_eq!(document_id(&next(&mut s).await), "r/0");
    drop(s);
    hub.restart().await;
    let h26 = hub.connect(&hub.pki.agency_dir(H26)).await;
    let got: Vec<(String, Vec<u8>)> = drain(&h26, 8)
        .await
        .iter()
        .map(|d| (document_id(d), d.document.clone().unwrap().payload))
        .collect();
    assert_eq!(
        got,
        vec![
            ("r/0".into(), b"doc 0".to_vec()),
            ("r/1".into(), b"doc 1".to_vec()),
            ("r/2".into(), b"doc 2".to_vec())
        ]
    );
    // The directory survived too, and a retried send — signed anew, so with
    // another signing time — is still a duplicate; other content is not.
    let g22 = hub.connect(&hub.pki.agency_dir(G22)).await;
    let again = g22.send(sign(&g22, header(&[H26], "r/1"), b"doc 1")).await.unwrap();
    assert!(again.duplicate);
    let other = g22.send(sign(&g22, header(&[H26], "r/1"), b"doc one")).await;
    assert_eq!(other.unwrap_err().code(), Some(tonic::Code::AlreadyExists));
}

#[tokio::test]
async fn concurrent_sends_share_flushes_and_all_arrive() {
    let hub = TestHub::start().await;
    let h26 = hub.agency(H26).await;
    let mut senders = Vec::new();
    for code in ["G09.01", "G09.02", "G09.03", "G09.04"] {
        senders.push(hub.agency(code).await);
    }
    let mut tasks = Vec::new();
    for (n, c) in senders.iter().enumerate() {
        for i in 0..50 {
            let c = c.clone();
            let doc = sign(
                &c,
                header(&[H26], &format!("gc/{n}/{i}")),
                format!("{n}/{i}").as_bytes(),
            );
            tasks.push(tokio::spawn(async move { c.send(doc).await.unwrap() }));
        }
    }
    let mut heads = std::collections::HashSet::new();
    for t in tasks {
        let r = t.await.unwrap();
        heads.insert(r.receipt.unwrap().tree_head.unwrap().tree_head);
    }
    // 200 acceptances, each with its batch's signed tree head: fewer heads
    // than sends means sends were committed (and flushed) together.
    assert!(heads.len() < 200, "no two of 200 concurrent sends shared a commit");
    let got = drain(&h26, 64).await;
    assert_eq!(got.len(), 200);
    // Every sender's 50 documents, once each.
    for n in 0..4 {
        let mut mine: Vec<String> = got
            .iter()
            .map(document_id)
            .filter(|d| d.starts_with(&format!("gc/{n}/")))
            .collect();
        mine.sort();
        mine.dedup();
        assert_eq!(mine.len(), 50);
    }
}

/// An H26 Axis client with tonic's default message limits (4 MiB to
/// receive), as Python, Java and Go clients have.
async fn default_limits_client(hub: &TestHub, code: &str) -> AxisClient<tonic::transport::Channel> {
    let id = truc_tests::identity(&hub.pki.agency_dir(code));
    AxisClient::new(hub.raw_channel(Some((&id.cert_pem, &id.key_pem))).await)
}

async fn download_all(
    axis: &mut AxisClient<tonic::transport::Channel>,
    hub_id: u64,
    offset: u64,
    delivery: u64,
) -> Vec<u8> {
    let mut s = axis
        .download(DownloadRequest {
            hub_document_id: hub_id,
            offset,
            delivery_id: delivery,
        })
        .await
        .expect("download")
        .into_inner();
    let mut out = Vec::new();
    while let Some(c) = s.message().await.expect("chunk") {
        assert_eq!(c.offset, offset + out.len() as u64);
        assert!(c.data.len() < 4 << 20, "a chunk of {} bytes", c.data.len());
        out.extend_from_slice(&c.data);
    }
    out
}

#[tokio::test]
async fn inline_documents_above_the_delivery_limit_arrive_through_download() {
    let hub = TestHub::start().await;
    let g22 = hub.agency(G22).await;
    hub.agency(H26).await;
    // 9 MiB and a bit, sent inline (under the 16 MiB inline limit); and one
    // of exactly 3 MiB, the delivery limit, which still travels inline.
    let big: Vec<u8> = (0..(9u32 << 20) + 123).map(|i| (i * 31 % 251) as u8).collect();
    let at_limit = vec![7u8; 3 << 20];
    let sent = g22.send(sign(&g22, header(&[H26], "big/1"), &big)).await.unwrap();
    g22.send(sign(&g22, header(&[H26], "big/2"), &at_limit)).await.unwrap();

    let mut axis = default_limits_client(&hub, H26).await;
    let mut s = axis
        .receive(ReceiveRequest {
            max_in_flight: 4,
            follow: false,
        })
        .await
        .unwrap()
        .into_inner();
    let d = next(&mut s).await;
    assert_eq!(d.hub_document_id, sent.hub_document_id);
    assert!(d.payload_separate, "a 9 MiB inline document is downloaded");
    let doc = d.document.clone().unwrap();
    assert!(doc.payload.is_empty());
    // The signed header is intact: it states the payload fetched below.
    let h = DocumentHeader::decode(doc.header.as_slice()).unwrap();
    assert_eq!(h.payload_size, big.len() as u64);
    let got = download_all(&mut axis, d.hub_document_id, 0, d.delivery_id).await;
    assert!(got == big, "the downloaded payload differs");
    // From an offset, as a resumed download does.
    let tail = download_all(&mut axis, d.hub_document_id, 5 << 20, d.delivery_id).await;
    assert!(tail == big[5 << 20..], "the resumed tail differs");
    axis.ack(AckRequest {
        delivery_ids: vec![d.delivery_id],
    })
    .await
    .unwrap();

    let d = next(&mut s).await;
    assert!(!d.payload_separate);
    assert_eq!(d.document.unwrap().payload, at_limit);
    axis.ack(AckRequest {
        delivery_ids: vec![d.delivery_id],
    })
    .await
    .unwrap();
    assert!(s.message().await.unwrap().is_none(), "nothing more");

    // The SDK's inbox path (download_to) takes such a delivery too, and the
    // limit is configurable.
    let mut hub = hub;
    hub.stop().await;
    hub.config.limits.max_inline_delivery = 1000;
    hub.restart().await;
    let g22 = hub.connect(&hub.pki.agency_dir(G22)).await;
    let h26 = hub.connect(&hub.pki.agency_dir(H26)).await;
    let small: Vec<u8> = (0..2000u32).map(|i| i as u8).collect();
    g22.send(sign(&g22, header(&[H26], "big/3"), &small)).await.unwrap();
    let mut s = h26.receive(4, false).await.unwrap();
    let d = next(&mut s).await;
    assert!(d.payload_separate);
    let dir = tempfile::tempdir().unwrap();
    let part = dir.path().join("big-3.part");
    let sha = truc_core::sha256(&small);
    let n = h26
        .download_to(
            d.hub_document_id,
            d.delivery_id,
            &part,
            &sha,
            small.len() as u64,
            &|_, _| {},
        )
        .await
        .unwrap();
    assert_eq!(n, small.len() as u64);
    assert_eq!(std::fs::read(&part).unwrap(), small);
    h26.ack(vec![d.delivery_id]).await.unwrap();
}
