//! The load generator behind `truc bench` against a real in-process hub:
//! about a second of load, every document delivered and acknowledged.

use std::time::Duration;

use truc_load::{self as load, LoadSpec, StopAt};
use truc_tests::TestHub;

fn spec(hub: &TestHub) -> LoadSpec {
    let mut spec = LoadSpec::new(&hub.addr, &hub.pki.dir.path().join("pki"));
    spec.senders = load::agency_codes('S', 2);
    spec.receivers = load::agency_codes('R', 3);
    spec.fanout = 2;
    spec.size = 2048;
    spec.priority_mix = "thuong=3,hoa-toc=1".parse().unwrap();
    spec.window = 8;
    spec.credit = 16;
    spec.warmup = Some(20);
    spec.max_presign_bytes = 64 << 20;
    spec.drain_timeout = Duration::from_secs(30);
    spec
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_runs_a_second_and_every_document_is_delivered() {
    let hub = TestHub::start().await;
    let mut spec = spec(&hub);
    spec.stop = StopAt::Duration(Duration::from_secs(1));
    // Issues the bench identities and the operator, registers the agencies.
    load::prepare(&hub.addr, &spec.pki, &spec.agencies())
        .await
        .expect("prepare");
    let r = load::run(&spec).await.expect("run");
    let summary = r.summary();
    assert!(r.complete, "{summary}");
    assert_eq!(r.errors, 0, "{summary}");
    assert!(r.documents > 0 && r.docs_per_second > 0.0, "{summary}");
    assert_eq!(r.expected_deliveries, r.documents * 2, "{summary}");
    assert_eq!(r.deliveries, r.expected_deliveries, "{summary}");
    assert_eq!(r.send_latency_ms.count as u64, r.documents, "{summary}");
    assert_eq!(r.delivery_latency_ms.count as u64, r.deliveries, "{summary}");
    assert!(r.send_latency_ms.p50 > 0.0 && r.send_latency_ms.p999 >= r.send_latency_ms.p50);
    assert!(r.elapsed_seconds >= 1.0, "{summary}");
    assert!(summary.contains("docs/s end to end"), "{summary}");

    // Nothing left queued for the bench agencies.
    for (code, queued) in hub.queued().await {
        assert_eq!(queued, 0, "{code} still has {queued} queued");
    }

    // Again, by count, on the same hub: identities and agencies are reused,
    // and documents of the first run cannot be mistaken for this run's.
    spec.stop = StopAt::Count(30);
    load::prepare(&hub.addr, &spec.pki, &spec.agencies())
        .await
        .expect("prepare again");
    let r = load::run(&spec).await.expect("second run");
    assert!(r.complete && r.errors == 0, "{}", r.summary());
    assert_eq!(r.documents, 30);
    assert_eq!(r.deliveries, 60);
    assert_eq!(r.redelivered_or_foreign, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefill_leaves_documents_queued_for_the_parked_agency() {
    let hub = TestHub::start().await;
    let spec = spec(&hub);
    let parked = "B90.PARK".to_string();
    let mut codes = spec.agencies();
    codes.push(parked.clone());
    load::prepare(&hub.addr, &spec.pki, &codes).await.expect("prepare");
    let p = load::prefill(&hub.addr, &spec.pki, &spec.senders, &parked, 50, 512, 8, |_| {})
        .await
        .expect("prefill");
    assert_eq!(p.documents, 50);
    let queued: Vec<_> = hub.queued().await.into_iter().filter(|(c, _)| *c == parked).collect();
    assert_eq!(queued, vec![(parked.clone(), 50)]);
}
