//! Operating peer hubs (issue 20, "Operations"), on real hubs with a CA
//! each: `Ops.ListPeers` (`truc ops peers`) shows a peer's outbox growing
//! while the peer is down and draining when it is back; an operator's
//! pause (`Ops.SetPeerPaused`, `truc ops peer pause|resume`) holds
//! documents, survives a restart, is recorded as an operator-action
//! receipt, and on resume lets them through in priority then arrival
//! order; the `truc_peer_*` gauges of `/metrics` say the same; and only
//! operators may do any of it.

use tonic::Code;
use truc_client::Client;
use truc_hub::config::PeerConfig;
use truc_hub::metrics::{parse_exposition, Sample};
use truc_proto::v1::{ListReceiptsRequest, PeerLink, PeerLinkState, Priority, Receipt, ReceiptEvent};
use truc_tests::federation::{axis, next_delivery, receipts_of, receive_ids, within, G01, G12_UNIT, H49_UNIT};
use truc_tests::{admin_get, header, sign, TestHub, TestPki};

/// Peer `id` as `op` lists it.
async fn link(op: &Client, id: &str) -> PeerLink {
    let peers = op.peers().await.expect("ListPeers");
    peers
        .into_iter()
        .find(|p| p.id == id)
        .unwrap_or_else(|| panic!("peer {id} is listed"))
}

fn state(l: &PeerLink) -> PeerLinkState {
    PeerLinkState::try_from(l.state).expect("a known state")
}

async fn scrape(hub: &TestHub) -> Vec<Sample> {
    parse_exposition(&admin_get(hub, "/metrics").await.body)
}

/// The value of `name{peer="<peer>"}`.
fn gauge(samples: &[Sample], name: &str, peer: &str) -> f64 {
    samples
        .iter()
        .find(|s| s.name == name && s.labels.get("peer").map(String::as_str) == Some(peer))
        .unwrap_or_else(|| panic!("{name}{{peer={peer:?}}} is exported"))
        .value
}

/// The gRPC code of a refusal.
fn code<T: std::fmt::Debug>(r: Result<T, truc_client::ClientError>) -> Option<Code> {
    r.expect_err("refused").code()
}

/// Sign a document `id` from `client` to `to` with `priority`.
fn document(client: &Client, to: &str, id: &str, priority: Priority, payload: &[u8]) -> truc_proto::v1::SignedDocument {
    let mut h = header(&[to], id);
    h.priority = priority as i32;
    sign(client, h, payload)
}

/// The operator-action receipts `hub` recorded since `since_unix_ms`, in
/// log order: (actor, detail).
async fn operator_actions(hub: &TestHub, since_unix_ms: i64) -> Vec<(String, String)> {
    use prost::Message;
    let pages = hub
        .operator()
        .await
        .all_receipts(ListReceiptsRequest {
            since_unix_ms,
            ..Default::default()
        })
        .await
        .expect("receipts by time");
    pages
        .into_iter()
        .flat_map(|p| p.receipts)
        .map(|r| Receipt::decode(r.receipt.as_slice()).unwrap())
        .filter(|r| r.event == ReceiptEvent::OperatorAction as i32)
        .map(|r| (r.actor, r.detail))
        .collect()
}

#[tokio::test]
async fn a_peer_queue_grows_while_the_peer_is_down_and_drains_when_it_is_back() {
    let mut ax = axis().await;
    let sender = ax.h49.agency(H49_UNIT).await;
    let g01 = ax.national.agency(G01).await;
    let op = ax.h49.operator().await;

    // Nothing routed yet: the link is idle, the outbox empty.
    let l = link(&op, "national").await;
    assert_eq!(
        (state(&l), l.queued, l.state_since_unix_ms, l.default_route),
        (PeerLinkState::Idle, 0, 0, true)
    );
    assert_eq!(l.address, ax.national.addr);
    let m = scrape(&ax.h49).await;
    assert_eq!(gauge(&m, "truc_peer_up", "national"), 1.0);
    assert_eq!(gauge(&m, "truc_peer_queue_depth", "national"), 0.0);

    // One document through: connected, one forwarded.
    sender
        .send(sign(&sender, header(&[G01], "down/first"), b"first"))
        .await
        .unwrap();
    let d = next_delivery(&g01).await;
    g01.ack(vec![d.delivery_id]).await.unwrap();
    within("h49 to be connected to national", || async {
        let l = link(&op, "national").await;
        state(&l) == PeerLinkState::Connected && l.forwarded == 1 && l.queued == 0
    })
    .await;
    drop(g01);

    // The national hub goes down: each document accepted at h49 waits in
    // national's outbox there, one more each time.
    ax.national.stop().await;
    let sizes = [100usize, 200, 300];
    for (i, size) in sizes.iter().enumerate() {
        sender
            .send(sign(&sender, header(&[G01], &format!("down/{i}")), &vec![b'x'; *size]))
            .await
            .expect("accepted while the next hop is down");
        let l = link(&op, "national").await;
        assert_eq!(l.queued, i as u64 + 1, "{l:?}");
    }
    within("h49 to see national unreachable", || async {
        let l = link(&op, "national").await;
        state(&l) == PeerLinkState::Unreachable && l.unreachable && !l.last_error.is_empty() && l.oldest_age_ms > 0
    })
    .await;
    let l = link(&op, "national").await;
    assert_eq!(
        (l.queued, l.bytes, l.forwarded, l.refused, l.dead_letters),
        (3, 600, 1, 0, 0)
    );
    assert!(l.state_since_unix_ms > 0 && l.state_since_unix_ms <= truc_core::now_unix_ms());
    let m = scrape(&ax.h49).await;
    assert_eq!(gauge(&m, "truc_peer_up", "national"), 0.0);
    assert_eq!(gauge(&m, "truc_peer_paused", "national"), 0.0);
    assert_eq!(gauge(&m, "truc_peer_queue_depth", "national"), 3.0);
    assert_eq!(gauge(&m, "truc_peer_queue_bytes", "national"), 600.0);
    assert!(gauge(&m, "truc_peer_oldest_waiting_seconds", "national") > 0.0);
    assert_eq!(gauge(&m, "truc_peer_forwarded_total", "national"), 1.0);
    assert_eq!(gauge(&m, "truc_peer_refused_total", "national"), 0.0);
    assert_eq!(gauge(&m, "truc_peer_dead_letters", "national"), 0.0);

    // Back: the outbox drains and the documents arrive.
    let back_at = truc_core::now_unix_ms();
    ax.national.start_again().await;
    within("h49's outbox for national to drain", || async {
        let l = link(&op, "national").await;
        state(&l) == PeerLinkState::Connected && l.queued == 0 && l.forwarded == 4
    })
    .await;
    let l = link(&op, "national").await;
    assert!(l.state_since_unix_ms >= back_at, "connected since it came back: {l:?}");
    assert!(!l.unreachable && l.last_error.is_empty(), "{l:?}");
    let m = scrape(&ax.h49).await;
    assert_eq!(gauge(&m, "truc_peer_up", "national"), 1.0);
    assert_eq!(gauge(&m, "truc_peer_queue_depth", "national"), 0.0);
    assert_eq!(gauge(&m, "truc_peer_queue_bytes", "national"), 0.0);
    assert_eq!(gauge(&m, "truc_peer_oldest_waiting_seconds", "national"), 0.0);
    assert_eq!(gauge(&m, "truc_peer_forwarded_total", "national"), 4.0);
    let g01 = ax.national.connect(&ax.national.pki.agency_dir(G01)).await;
    assert_eq!(receive_ids(&g01, 3).await, vec!["down/0", "down/1", "down/2"]);
}

#[tokio::test]
async fn a_pause_holds_documents_across_a_restart_and_a_resume_sends_them_in_priority_then_arrival_order() {
    let mut ax = axis().await;
    let mut g01 = ax.national.agency(G01).await;
    let unit = ax.g12.agency(G12_UNIT).await;
    let h49_unit = ax.h49.agency(H49_UNIT).await;
    let mut op = ax.national.operator().await;
    let started = truc_core::now_unix_ms();

    // The national hub's operator pauses forwarding to g12 (twice: the
    // second changes nothing).
    let l = op
        .set_peer_paused("g12", true, "bảo trì đường truyền")
        .await
        .expect("an operator pauses a peer");
    assert_eq!(state(&l), PeerLinkState::Paused);
    assert_eq!(
        (l.paused_by.as_str(), l.pause_reason.as_str()),
        ("urn:truc:operator:ops", "bảo trì đường truyền")
    );
    let since = l.state_since_unix_ms;
    assert!(since >= started, "{l:?}");
    let again = op.set_peer_paused("g12", true, "again").await.unwrap();
    assert_eq!(
        (state(&again), again.state_since_unix_ms),
        (PeerLinkState::Paused, since)
    );
    assert!(ax.national.data.path().join("store/paused-peers.json").exists());

    // Documents for g12 are accepted and wait, in this order of arrival.
    let sent = [
        ("p/n1", Priority::Normal),
        ("p/v1", Priority::VeryUrgent),
        ("p/u1", Priority::Urgent),
        ("p/n2", Priority::Normal),
        ("p/v2", Priority::VeryUrgent),
    ];
    for (id, priority) in sent {
        g01.send(document(&g01, G12_UNIT, id, priority, id.as_bytes()))
            .await
            .expect("accepted while the peer is paused");
    }
    assert_eq!(link(&op, "g12").await.queued, 5);
    let m = scrape(&ax.national).await;
    assert_eq!(gauge(&m, "truc_peer_paused", "g12"), 1.0);
    assert_eq!(gauge(&m, "truc_peer_paused", "h49"), 0.0);
    assert_eq!(gauge(&m, "truc_peer_queue_depth", "g12"), 5.0);

    // Forwarding goes on to h49 meanwhile; once a document sent after them
    // has reached h49, nothing of them has reached g12.
    held(&ax, &g01, &op, &h49_unit, &sent, "before the restart").await;

    // The pause survives a restart of the national hub.
    ax.national.stop().await;
    ax.national.start_again().await;
    g01 = ax.national.connect(&ax.national.pki.agency_dir(G01)).await;
    op = ax.national.operator().await;
    let l = link(&op, "g12").await;
    assert_eq!(
        (state(&l), l.state_since_unix_ms, l.paused_by.as_str(), l.queued),
        (PeerLinkState::Paused, since, "urn:truc:operator:ops", 5)
    );
    assert_eq!(gauge(&scrape(&ax.national).await, "truc_peer_paused", "g12"), 1.0);
    held(&ax, &g01, &op, &h49_unit, &sent, "after the restart").await;

    // Resumed: everything reaches g12, highest priority first, in arrival
    // order within a priority.
    let l = op.set_peer_paused("g12", false, "xong").await.expect("resume");
    assert_ne!(state(&l), PeerLinkState::Paused);
    assert!(l.paused_by.is_empty() && l.pause_reason.is_empty(), "{l:?}");
    let got = receive_ids(&unit, sent.len()).await;
    let mut ids: Vec<&str> = sent.iter().map(|(id, _)| *id).collect();
    ids.sort();
    assert_eq!(got, ids);
    within("national's outbox for g12 to drain", || async {
        let l = link(&op, "g12").await;
        l.queued == 0 && l.forwarded == 5 && state(&l) == PeerLinkState::Connected
    })
    .await;
    // The order they were handed over in: their FORWARDED receipts at the
    // national hub, in log order.
    let mut order = Vec::new();
    for (id, _) in sent {
        let forwarded = receipts_of(&ax.national, G01, id)
            .await
            .into_iter()
            .find(|r| r.event == ReceiptEvent::Forwarded as i32)
            .unwrap_or_else(|| panic!("{id} forwarded"));
        order.push((forwarded.index, id));
    }
    order.sort();
    let order: Vec<&str> = order.into_iter().map(|(_, id)| id).collect();
    assert_eq!(order, vec!["p/v1", "p/v2", "p/u1", "p/n1", "p/n2"]);

    // Each change is an operator-action receipt; the repeated pause is not.
    assert_eq!(
        operator_actions(&ax.national, started).await,
        vec![
            (
                "urn:truc:operator:ops".to_string(),
                "peer g12 paused: bảo trì đường truyền".to_string()
            ),
            (
                "urn:truc:operator:ops".to_string(),
                "peer g12 resumed: xong".to_string()
            ),
        ]
    );
    let kept = std::fs::read_to_string(ax.national.data.path().join("store/paused-peers.json")).unwrap();
    assert!(!kept.contains("g12"), "{kept}");
}

/// With g12 paused at the national hub and `sent` waiting for it: a
/// document from G01 to h49 sent now arrives there, and by then none of
/// `sent` has reached g12 and all still wait.
async fn held(
    ax: &truc_tests::federation::Axis,
    g01: &Client,
    op: &Client,
    h49_unit: &Client,
    sent: &[(&str, Priority)],
    round: &str,
) {
    let probe = format!("p/probe-{}", round.replace(' ', "-"));
    g01.send(document(g01, H49_UNIT, &probe, Priority::Normal, b"probe"))
        .await
        .unwrap();
    let d = next_delivery(h49_unit).await;
    assert_eq!(truc_tests::document_id(&d), probe);
    h49_unit.ack(vec![d.delivery_id]).await.unwrap();
    let l = link(op, "g12").await;
    assert_eq!(
        (state(&l), l.queued),
        (PeerLinkState::Paused, sent.len() as u64),
        "{round}: {l:?}"
    );
    for (id, _) in sent {
        assert!(
            receipts_of(&ax.g12, G01, id).await.is_empty(),
            "{round}: {id} reached g12"
        );
    }
}

#[tokio::test]
async fn only_operators_list_and_pause_peers() {
    let national = TestPki::with_hub("national");
    let mut hub = TestHub::start_named("h49", |c| {
        c.admin.listen = Some("127.0.0.1:0".parse().unwrap());
        c.federation.serves = vec!["*.H49".into()];
        c.federation.default_peer = Some("national".into());
        // Nobody listens there: the peer is unreachable once tried.
        c.peers = vec![PeerConfig {
            id: "national".into(),
            address: "127.0.0.1:1".into(),
            ca: national.pki.ca_pem_path(),
            crl: None,
            serves: Vec::new(),
            ..PeerConfig::default()
        }];
    })
    .await;
    let agency = hub.agency(H49_UNIT).await;
    let op = hub.operator().await;

    // An agency may neither list nor pause peers; nothing changes.
    assert_eq!(code(agency.peers().await), Some(Code::PermissionDenied));
    assert_eq!(
        code(agency.set_peer_paused("national", true, "").await),
        Some(Code::PermissionDenied)
    );
    assert_eq!(state(&link(&op, "national").await), PeerLinkState::Idle);
    // An unknown peer is NOT_FOUND.
    assert_eq!(
        code(op.set_peer_paused("nowhere", true, "").await),
        Some(Code::NotFound)
    );
    assert!(operator_actions(&hub, 0).await.is_empty());

    // The operator pauses it; a document routed there waits.
    let l = op.set_peer_paused("national", true, "chờ kết nối").await.unwrap();
    assert_eq!(state(&l), PeerLinkState::Paused);
    agency
        .send(sign(&agency, header(&[G01], "op/1"), b"x"))
        .await
        .expect("accepted while paused");
    assert_eq!(link(&op, "national").await.queued, 1);

    // After a restart it is still paused, and an agency still may not
    // resume it.
    hub.restart().await;
    let op = hub.operator().await;
    let l = link(&op, "national").await;
    assert_eq!(
        (state(&l), l.pause_reason.as_str(), l.queued),
        (PeerLinkState::Paused, "chờ kết nối", 1)
    );
    assert_eq!(gauge(&scrape(&hub).await, "truc_peer_paused", "national"), 1.0);
    let agency = hub.connect(&hub.pki.agency_dir(H49_UNIT)).await;
    assert_eq!(
        code(agency.set_peer_paused("national", false, "").await),
        Some(Code::PermissionDenied)
    );
    assert_eq!(state(&link(&op, "national").await), PeerLinkState::Paused);

    // Resumed, the hub tries the peer, which is not there.
    op.set_peer_paused("national", false, "").await.unwrap();
    within("the peer to be unreachable", || async {
        let l = link(&op, "national").await;
        state(&l) == PeerLinkState::Unreachable && !l.last_error.is_empty()
    })
    .await;
    let m = scrape(&hub).await;
    assert_eq!(gauge(&m, "truc_peer_up", "national"), 0.0);
    assert_eq!(gauge(&m, "truc_peer_paused", "national"), 0.0);
    assert_eq!(gauge(&m, "truc_peer_queue_depth", "national"), 1.0);
    let actions: Vec<String> = operator_actions(&hub, 0).await.into_iter().map(|(_, d)| d).collect();
    assert_eq!(
        actions,
        vec!["peer national paused: chờ kết nối", "peer national resumed: "]
    );
}
