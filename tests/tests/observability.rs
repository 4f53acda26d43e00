//! Observability: the admin listener's `/metrics`, `/healthz` and `/readyz`
//! against a real hub, gRPC health checking and server reflection on the
//! gRPC port over mTLS, and `/metrics` agreeing with `Ops.ListAgencies` and
//! `Ops.ListQueues` (what `truc ops queues` prints).

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use truc_hub::metrics::{parse_exposition, Sample};
use truc_proto::v1::Priority;
use truc_tests::{admin_get, drain, header, http, sign, HttpResponse, TestHub};

const G22: &str = "000.00.00.G22";
const H26: &str = "000.00.00.H26";
const H29: &str = "000.00.00.H29";

/// A hub with the admin listener on a free port.
async fn hub_with_admin(f: impl FnOnce(&mut truc_hub::Config)) -> TestHub {
    TestHub::start_with(|c| {
        c.admin.listen = Some("127.0.0.1:0".parse().unwrap());
        f(c)
    })
    .await
}

async fn get(hub: &TestHub, path: &str) -> HttpResponse {
    admin_get(hub, path).await
}

/// The value of the one sample named `name` with exactly `labels`.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let want: BTreeMap<String, String> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let found: Vec<f64> = samples
        .iter()
        .filter(|s| s.name == name && s.labels == want)
        .map(|s| s.value)
        .collect();
    assert!(found.len() <= 1, "{name}{labels:?} appears {} times", found.len());
    found.first().copied()
}

fn grpc(service: &str, method: &str, code: &str) -> Vec<(&'static str, String)> {
    vec![
        ("service", service.to_string()),
        ("method", method.to_string()),
        ("code", code.to_string()),
    ]
}

fn v(samples: &[Sample], name: &str, labels: &[(&'static str, String)]) -> f64 {
    let l: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
    value(samples, name, &l).unwrap_or_else(|| panic!("no sample {name}{l:?}"))
}

#[tokio::test]
async fn metrics_count_sends_acks_refusals_and_agree_with_the_queue_views() {
    // Urgent (khẩn) copies are overdue one millisecond after acceptance.
    let hub = hub_with_admin(|c| c.deadlines.urgent_ms = 1).await;
    let ops = hub.operator().await;
    let g22 = hub.agency(G22).await;
    let h26 = hub.agency(H26).await;
    let _h29 = hub.agency(H29).await;

    // Two documents, one sent twice (a duplicate), one urgent to H29.
    let r1 = g22
        .send(sign(&g22, header(&[H26, H29], "obs/1"), b"one"))
        .await
        .unwrap();
    assert!(!r1.duplicate);
    g22.send(sign(&g22, header(&[H26], "obs/2"), b"two")).await.unwrap();
    let dup = g22
        .send(sign(&g22, header(&[H26, H29], "obs/1"), b"one"))
        .await
        .unwrap();
    assert!(dup.duplicate);
    let mut h = header(&[H29], "obs/3");
    h.priority = Priority::Urgent as i32;
    g22.send(sign(&g22, h, b"urgent")).await.unwrap();
    // Refusals: an operator may not send; a connection without a
    // certificate may not call anything.
    let refused = ops.send(sign(&g22, header(&[H26], "obs/4"), b"x")).await.unwrap_err();
    assert_eq!(refused.code(), Some(Code::PermissionDenied));
    let anonymous = hub.raw_channel(None).await;
    let err = truc_proto::v1::ops_client::OpsClient::new(anonymous)
        .list_agencies(truc_proto::v1::ListAgenciesRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    // H26 takes and acknowledges its two copies.
    assert_eq!(drain(&h26, 4).await.len(), 2);
    tokio::time::sleep(Duration::from_millis(5)).await;

    let resp = get(&hub, "/metrics").await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert!(
        resp.headers.contains("content-type: text/plain; version=0.0.4"),
        "{}",
        resp.headers
    );
    let text = resp.body;
    let m = parse_exposition(&text);
    // Every family is typed and documented.
    for family in [
        "truc_sends_total",
        "truc_acks_total",
        "truc_refusals_total",
        "truc_send_duration_seconds",
        "truc_delivery_latency_seconds",
        "truc_store_commit_batch_size",
        "truc_queue_depth",
        "truc_queue_oldest_age_seconds",
        "truc_dead_letters",
        "truc_overdue_urgent",
        "truc_connected_agencies",
        "truc_certificate_expiry_timestamp_seconds",
    ] {
        assert!(text.contains(&format!("# TYPE {family} ")), "no TYPE for {family}");
        assert!(text.contains(&format!("# HELP {family} ")), "no HELP for {family}");
    }

    assert_eq!(value(&m, "truc_up", &[]), Some(1.0));
    assert_eq!(value(&m, "truc_ready", &[]), Some(1.0));
    assert_eq!(value(&m, "truc_sends_total", &[("outcome", "accepted")]), Some(3.0));
    assert_eq!(value(&m, "truc_sends_total", &[("outcome", "duplicate")]), Some(1.0));
    assert_eq!(value(&m, "truc_acks_total", &[]), Some(2.0));
    assert_eq!(
        v(&m, "truc_grpc_requests_total", &grpc("truc.v1.Axis", "Send", "OK")),
        4.0
    );
    assert_eq!(
        v(&m, "truc_grpc_requests_total", &grpc("truc.v1.Axis", "Ack", "OK")),
        2.0
    );
    assert_eq!(
        v(
            &m,
            "truc_refusals_total",
            &grpc("truc.v1.Axis", "Send", "PERMISSION_DENIED")
        ),
        1.0
    );
    assert_eq!(
        v(
            &m,
            "truc_refusals_total",
            &grpc("truc.v1.Ops", "ListAgencies", "UNAUTHENTICATED")
        ),
        1.0
    );
    assert!(
        !m.iter()
            .any(|s| s.name == "truc_refusals_total" && s.labels.get("code").map(String::as_str) == Some("OK")),
        "OK is not a refusal"
    );
    // Latency histograms: one observation per successful Send, one per
    // acknowledged document copy.
    assert_eq!(value(&m, "truc_send_duration_seconds_count", &[]), Some(4.0));
    assert_eq!(
        value(&m, "truc_send_duration_seconds_bucket", &[("le", "+Inf")]),
        Some(4.0)
    );
    assert_eq!(value(&m, "truc_delivery_latency_seconds_count", &[]), Some(2.0));
    // Group commits: every write (3 agencies, 4 sends, 2 acks) went through
    // some batch.
    let batches = value(&m, "truc_store_commit_batch_size_count", &[]).unwrap();
    let requests = value(&m, "truc_store_commit_batch_size_sum", &[]).unwrap();
    assert!(
        batches >= 1.0 && requests >= 9.0,
        "batches {batches}, requests {requests}"
    );
    assert_eq!(value(&m, "truc_store_commit_failures_total", &[]), Some(0.0));

    // Per agency, the gauges are what ListAgencies and ListQueues say.
    let listed = hub.queued().await;
    assert_eq!(listed, vec![(G22.into(), 0), (H26.into(), 0), (H29.into(), 2)]);
    for (code, queued) in &listed {
        assert_eq!(
            value(&m, "truc_queue_depth", &[("agency", code)]),
            Some(*queued as f64),
            "truc_queue_depth of {code}"
        );
    }
    let queues = ops.list_queues().await.unwrap();
    assert_eq!(queues.len(), 3);
    for q in &queues {
        let a = [("agency", q.agency.as_str())];
        assert_eq!(value(&m, "truc_queue_depth", &a), Some(q.queued as f64), "{}", q.agency);
        assert_eq!(value(&m, "truc_queue_bytes", &a), Some(q.bytes as f64), "{}", q.agency);
        assert_eq!(
            value(&m, "truc_queue_in_flight", &a),
            Some(q.in_flight as f64),
            "{}",
            q.agency
        );
        assert_eq!(
            value(&m, "truc_dead_letters", &a),
            Some(q.dead_letters as f64),
            "{}",
            q.agency
        );
        assert_eq!(
            value(&m, "truc_overdue_urgent", &a),
            Some(q.overdue_urgent as f64),
            "{}",
            q.agency
        );
        assert_eq!(
            value(&m, "truc_receive_streams", &a),
            Some(f64::from(q.connected_streams)),
            "{}",
            q.agency
        );
        let age = value(&m, "truc_queue_oldest_age_seconds", &a).unwrap();
        assert!(
            (age - q.oldest_age_ms as f64 / 1000.0).abs() < 5.0,
            "{}: {age}",
            q.agency
        );
    }
    assert_eq!(value(&m, "truc_overdue_urgent", &[("agency", H29)]), Some(1.0));
    assert_eq!(value(&m, "truc_queue_bytes", &[("agency", H29)]), Some(9.0)); // "one" + "urgent"
    assert!(value(&m, "truc_queue_oldest_age_seconds", &[("agency", H29)]).unwrap() > 0.0);
    assert_eq!(value(&m, "truc_agencies", &[("state", "active")]), Some(3.0));
    assert_eq!(value(&m, "truc_connected_agencies", &[]), Some(0.0));

    // Certificates: the hub's and the CA's, in the future.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as f64;
    for kind in ["hub", "ca"] {
        let t: Vec<f64> = m
            .iter()
            .filter(|s| {
                s.name == "truc_certificate_expiry_timestamp_seconds"
                    && s.labels.get("kind").map(String::as_str) == Some(kind)
            })
            .map(|s| s.value)
            .collect();
        assert_eq!(t.len(), 1, "one {kind} certificate");
        assert!(t[0] > now, "{kind} certificate expires in the future");
    }
}

#[tokio::test]
async fn connected_agencies_follow_open_receive_streams() {
    let hub = hub_with_admin(|_| {}).await;
    let h26 = hub.agency(H26).await;
    let stream = h26.receive(4, true).await.unwrap();
    let scrape = || async {
        let m = parse_exposition(&get(&hub, "/metrics").await.body);
        (
            value(&m, "truc_connected_agencies", &[]),
            value(&m, "truc_receive_streams", &[("agency", H26)]),
        )
    };
    let mut seen = None;
    for _ in 0..200 {
        seen = Some(scrape().await);
        if seen == Some((Some(1.0), Some(1.0))) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(seen, Some((Some(1.0), Some(1.0))));
    let queues = hub.operator().await.list_queues().await.unwrap();
    assert_eq!(queues.iter().find(|q| q.agency == H26).unwrap().connected_streams, 1);
    drop(stream);
    drop(h26);
    for _ in 0..200 {
        seen = Some(scrape().await);
        if seen == Some((Some(0.0), Some(0.0))) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(seen, Some((Some(0.0), Some(0.0))));
}

#[tokio::test]
async fn health_and_readiness_endpoints() {
    let hub = hub_with_admin(|_| {}).await;
    let r = get(&hub, "/healthz").await;
    assert_eq!((r.status, r.body.as_str()), (200, "ok\n"));
    // `start` returns once the ports are bound; the store opens right after.
    let mut r = get(&hub, "/readyz").await;
    for _ in 0..400 {
        if r.status == 200 {
            break;
        }
        assert_eq!((r.status, r.body.as_str()), (503, "not ready: starting\n"));
        tokio::time::sleep(Duration::from_millis(50)).await;
        r = get(&hub, "/readyz").await;
    }
    assert_eq!((r.status, r.body.as_str()), (200, "ready\n"));
    assert_eq!(get(&hub, "/nothing-here").await.status, 404);
    let addr = hub.admin_addr().unwrap();
    assert_eq!(http(addr, "POST", "/metrics").await.unwrap().status, 405);
    // A request with oversized headers is refused, not buffered.
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let big = "x".repeat(64 * 1024);
    let _ = s
        .write_all(format!("GET /metrics HTTP/1.1\r\nHost: a\r\nX-Big: {big}\r\n\r\n").as_bytes())
        .await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut buf)).await;
    let answer = String::from_utf8_lossy(&buf);
    assert!(!answer.starts_with("HTTP/1.1 200"), "{answer}");
    // Without admin.listen there is no admin listener.
    let plain = TestHub::start().await;
    assert_eq!(plain.admin_addr(), None);
}

#[tokio::test]
async fn grpc_health_answers_serving_and_reflection_lists_the_services() {
    let hub = hub_with_admin(|_| {}).await;
    let ops = truc_tests::identity(&hub.pki.operator_dir("ops"));
    let channel = hub.raw_channel(Some((&ops.cert_pem, &ops.key_pem))).await;

    let mut health = HealthClient::new(channel.clone());
    for service in ["", "truc.v1.Axis", "truc.v1.Ops", "truc.v1.Audit"] {
        let r = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap_or_else(|e| panic!("health check of {service:?}: {e}"))
            .into_inner();
        assert_eq!(r.status, ServingStatus::Serving as i32, "{service:?}");
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "truc.v1.Nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    // Load balancers often have no client certificate: health still answers.
    let mut anonymous = HealthClient::new(hub.raw_channel(None).await);
    let r = anonymous
        .check(HealthCheckRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.status, ServingStatus::Serving as i32);

    // Reflection (what `grpcurl list` uses), for a verified identity.
    let list = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut reflection = ServerReflectionClient::new(channel.clone());
    let mut answers = reflection
        .server_reflection_info(tokio_stream::iter(vec![list.clone()]))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.message().await.unwrap().expect("an answer");
    let Some(MessageResponse::ListServicesResponse(services)) = answer.message_response else {
        panic!("not a service list: {answer:?}");
    };
    let names: Vec<String> = services.service.into_iter().map(|s| s.name).collect();
    for want in [
        "truc.v1.Axis",
        "truc.v1.Ops",
        "truc.v1.Audit",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
    }
    // Older grpcurl versions speak v1alpha.
    use tonic_reflection::pb::v1alpha as alpha;
    let mut old = alpha::server_reflection_client::ServerReflectionClient::new(channel.clone());
    let req = alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(alpha::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let answer = old
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner()
        .message()
        .await
        .unwrap()
        .expect("an answer");
    let Some(alpha::server_reflection_response::MessageResponse::ListServicesResponse(services)) =
        answer.message_response
    else {
        panic!("not a service list: {answer:?}");
    };
    assert!(services.service.iter().any(|s| s.name == "truc.v1.Axis"));
    // The descriptors are there too (grpcurl describe).
    let describe = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::FileContainingSymbol("truc.v1.Axis".into())),
    };
    let mut answers = reflection
        .server_reflection_info(tokio_stream::iter(vec![describe]))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.message().await.unwrap().expect("an answer");
    assert!(
        matches!(answer.message_response, Some(MessageResponse::FileDescriptorResponse(ref f)) if !f.file_descriptor_proto.is_empty()),
        "{answer:?}"
    );
    // Without a certificate, reflection is refused like every Truc service.
    let mut anonymous = ServerReflectionClient::new(hub.raw_channel(None).await);
    let err = match anonymous.server_reflection_info(tokio_stream::iter(vec![list])).await {
        Err(e) => e,
        Ok(s) => s.into_inner().message().await.unwrap_err(),
    };
    assert_eq!(err.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn shutdown_turns_health_not_serving_and_ends_watches() {
    let mut hub = hub_with_admin(|c| c.shutdown_grace_seconds = 30).await;
    let addr = hub.admin_addr().unwrap();
    let ops = truc_tests::identity(&hub.pki.operator_dir("ops"));
    let channel = hub.raw_channel(Some((&ops.cert_pem, &ops.key_pem))).await;
    let mut watch = HealthClient::new(channel)
        .watch(HealthCheckRequest {
            service: "truc.v1.Axis".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = watch.message().await.unwrap().unwrap();
    assert_eq!(first.status, ServingStatus::Serving as i32);

    let started = std::time::Instant::now();
    let stopping = tokio::spawn(async move {
        hub.stop().await;
        hub
    });
    let next = tokio::time::timeout(Duration::from_secs(20), watch.message())
        .await
        .expect("an update within 20 s")
        .expect("watch ok")
        .expect("an update before the end");
    assert_eq!(next.status, ServingStatus::NotServing as i32);
    // From now on the hub is not ready (or already gone).
    if let Ok(r) = http(addr, "GET", "/readyz").await {
        assert_eq!(r.status, 503, "{}", r.body);
    }
    // The watch ends instead of holding the drain for the 30 s grace.
    let end = tokio::time::timeout(Duration::from_secs(20), watch.message()).await;
    assert!(matches!(end, Ok(Ok(None)) | Ok(Err(_))), "{end:?}");
    let _hub = tokio::time::timeout(Duration::from_secs(20), stopping)
        .await
        .expect("stopped within 20 s")
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(20));
    // The admin listener is gone with the hub.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

/// The data disk and the payload files: free space and the reserve, then an
/// interrupted upload (a `.part`) and a complete one (a payload) show in
/// the gauges as they are on disk.
#[tokio::test]
async fn disk_and_payload_gauges_follow_the_files() {
    use truc_client::transfer::{new_upload_id, sign_external};
    use truc_proto::v1::upload_request::Part;
    use truc_proto::v1::{UploadOpen, UploadRequest};
    use truc_tests::transfer::{file, quiet, MIB};

    let hub = hub_with_admin(|c| {
        c.limits.max_inline_payload = 64 * 1024;
        c.limits.min_free_disk_bytes = 3 * MIB as u64;
    })
    .await;
    let g22 = hub.agency(G22).await;
    let _h26 = hub.agency(H26).await;
    let gauges = |body: &str| {
        let m = parse_exposition(body);
        let g = |name: &str| value(&m, name, &[]).unwrap_or_else(|| panic!("no {name}"));
        (
            g("truc_disk_free_bytes"),
            g("truc_disk_reserve_bytes"),
            [
                g("truc_payloads"),
                g("truc_payload_bytes"),
                g("truc_uploads_incomplete"),
                g("truc_upload_part_bytes"),
            ],
        )
    };
    let (free, reserve, files) = gauges(&get(&hub, "/metrics").await.body);
    assert!(free > reserve, "free {free}, reserve {reserve}");
    assert_eq!(reserve, (3 * MIB) as f64);
    assert_eq!(files, [0.0; 4]);

    // An upload that stops after one MiB of three: a .part of one MiB.
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut axis = g22.axis();
    let call = tokio::spawn(async move {
        axis.upload(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .map(|_| ())
    });
    let open = UploadOpen {
        upload_id: new_upload_id(),
        offset: 0,
        size: 3 * MIB as u64,
        to: Vec::new(),
        attachment_sizes: Vec::new(),
    };
    tx.send(UploadRequest {
        part: Some(Part::Open(open)),
    })
    .await
    .unwrap();
    tx.send(UploadRequest {
        part: Some(Part::Chunk(vec![7u8; MIB].into())),
    })
    .await
    .unwrap();
    drop(tx);
    assert_eq!(call.await.unwrap().unwrap_err().code(), Code::FailedPrecondition);
    let (_, _, files) = gauges(&get(&hub, "/metrics").await.body);
    assert_eq!(files, [0.0, 0.0, 1.0, MIB as f64]);

    // A complete one: a payload file of its size; the .part stays.
    let dir = tempfile::tempdir().unwrap();
    let path = file(dir.path(), "dossier.bin", 2 * MIB + 5, 4);
    g22.upload_file_payload_first(
        &new_upload_id(),
        &[H26.to_string()],
        &path,
        |sha, size| sign_external(g22.identity(), header(&[H26], "obs/disk"), sha, size),
        &quiet,
    )
    .await
    .unwrap();
    let (_, _, files) = gauges(&get(&hub, "/metrics").await.body);
    assert_eq!(files, [1.0, (2 * MIB + 5) as f64, 1.0, MIB as f64]);
    // What `truc ops storage` shows: the same (operators only).
    let s = hub.operator().await.storage().await.unwrap();
    assert_eq!(
        [s.payloads, s.payload_bytes, s.uploads_incomplete, s.upload_part_bytes],
        [1, 2 * MIB as u64 + 5, 1, MIB as u64]
    );
    assert_eq!(s.disk_reserve_bytes, 3 * MIB as u64);
    assert!(s.store_bytes > 0 && s.disk_free_bytes.unwrap() > 0, "{s:?}");
    assert_eq!(g22.storage().await.unwrap_err().code(), Some(Code::PermissionDenied));
}

/// When each agency's certificate expires, as seen on its last connection:
/// in `Ops.ListAgencies` and as a gauge per principal; 0 / absent for one
/// that has not connected since the hub started.
#[tokio::test]
async fn client_certificate_expiry_per_agency_in_the_directory_and_metrics() {
    let hub = hub_with_admin(|_| {}).await;
    let ops = hub.operator().await;
    let g22 = hub.agency(G22).await;
    ops.add_agency(H29, "never connects").await.unwrap();
    g22.send(sign(&g22, header(&[H29], "cert/1"), b"x")).await.unwrap();
    let expected = truc_tests::identity(&hub.pki.agency_dir(G22))
        .cert_info()
        .unwrap()
        .not_after;
    let list = ops.list_agencies().await.unwrap();
    let of = |c: &str| list.iter().find(|a| a.code == c).unwrap().certificate_not_after_unix_ms;
    assert_eq!(of(G22), expected * 1000);
    assert_eq!(of(H29), 0);
    let m = parse_exposition(&get(&hub, "/metrics").await.body);
    let gauge: Vec<&Sample> = m
        .iter()
        .filter(|s| s.name == "truc_client_certificate_expiry_timestamp_seconds")
        .collect();
    let g = gauge
        .iter()
        .find(|s| s.labels.get("principal").map(String::as_str) == Some("urn:truc:agency:000.00.00.G22"))
        .unwrap_or_else(|| panic!("{gauge:?}"));
    assert_eq!(g.value, expected as f64);
    assert!(gauge.iter().all(|s| !s.labels["principal"].contains(H29)));
}
