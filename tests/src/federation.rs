//! Three hubs with a CA each, as the real axis is deployed: a province hub
//! h49, the national hub, a ministry hub g12 (province → national →
//! ministry). Shared by the federation tests (`tests/forwarding.rs`,
//! `tests/peers_ops.rs`).

use std::time::Duration;

use prost::Message;
use tonic::Code;
use truc_client::Client;
use truc_hub::config::{OriginConfig, PeerConfig};
use truc_proto::v1::{Delivery, ListReceiptsRequest, Receipt};

use crate::TestHub;

/// A unit of the province h49.
pub const H49_UNIT: &str = "000.00.01.H49";
/// An agency of the national hub.
pub const G01: &str = "000.00.00.G01";
/// A unit of the ministry g12.
pub const G12_UNIT: &str = "000.00.02.G12";

/// The three hubs. h49 and g12 send everything not theirs to the national
/// hub (their default peer); the national hub routes `*.H49` to h49 and
/// `*.G12` to g12; g12 trusts h49's CA as an origin it never talks to.
/// Each serves `/metrics` on an admin listener of its own.
pub struct Axis {
    /// The national hub.
    pub national: TestHub,
    /// The province hub.
    pub h49: TestHub,
    /// The ministry hub.
    pub g12: TestHub,
}

/// `hub` as a `[[peers]]` entry `id` serving `serves`, with its checkpoint
/// key (so that the receipts it signs are checked).
pub fn peer(hub: &TestHub, id: &str, serves: &[&str]) -> PeerConfig {
    PeerConfig {
        id: id.into(),
        address: hub.addr.clone(),
        ca: hub.pki.pki.ca_pem_path(),
        crl: None,
        serves: patterns(serves),
        checkpoint_key: Some(checkpoint_key(hub, id)),
        ..PeerConfig::default()
    }
}

/// Hub `id`'s checkpoint verifier key (`<id>.truc/receipts+…`), built from
/// its `receipts.pub` as an operator of a peer would.
pub fn checkpoint_key(hub: &TestHub, id: &str) -> String {
    let pem = std::fs::read_to_string(hub.pki.pki.receipt_pub_path()).expect("receipts.pub");
    let spki = truc_core::tree_head::TreeHeadVerifier::from_pem(&pem)
        .expect("receipt key")
        .public_key_spki_der();
    truc_core::c2sp::NoteVerifier::new(
        &format!("{id}.truc/receipts"),
        truc_core::c2sp::note::TYPE_ED25519,
        &spki[spki.len() - 32..],
    )
    .expect("verifier key")
    .vkey()
}

/// Agency-code patterns as configuration strings.
pub fn patterns(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Start the three hubs, each knowing the others' addresses.
pub async fn axis() -> Axis {
    let admin = |c: &mut truc_hub::Config| c.admin.listen = Some("127.0.0.1:0".parse().unwrap());
    let mut national = TestHub::start_named("national", |c| {
        admin(c);
        c.federation.serves = patterns(&["*.G01", "G01.*"]);
    })
    .await;
    let h49 = TestHub::start_named("h49", |c| {
        admin(c);
        c.federation.serves = patterns(&["*.H49", "H49.*"]);
        c.federation.default_peer = Some("national".into());
        c.peers = vec![peer(&national, "national", &[])];
    })
    .await;
    let g12 = TestHub::start_named("g12", |c| {
        admin(c);
        c.federation.serves = patterns(&["*.G12", "G12.*"]);
        c.federation.default_peer = Some("national".into());
        c.peers = vec![peer(&national, "national", &[])];
        c.origins = vec![OriginConfig {
            id: "h49".into(),
            ca: h49.pki.pki.ca_pem_path(),
            crl: None,
            serves: patterns(&["*.H49", "H49.*"]),
        }];
    })
    .await;
    // The national hub learns where its peers listen.
    let peers = vec![
        peer(&h49, "h49", &["*.H49", "H49.*"]),
        peer(&g12, "g12", &["*.G12", "G12.*"]),
    ];
    national.reconfigure(|c| c.peers = peers).await;
    Axis { national, h49, g12 }
}

/// The next delivery on a following stream, within 30 s.
pub async fn next_delivery(client: &Client) -> Delivery {
    let mut s = client.receive(8, true).await.expect("receive");
    tokio::time::timeout(Duration::from_secs(30), s.message())
        .await
        .expect("a delivery within 30 s")
        .expect("stream")
        .expect("a delivery")
}

/// Receive `n` deliveries on `client` (each within 30 s), acknowledging
/// each; their document ids, sorted.
pub async fn receive_ids(client: &Client, n: usize) -> Vec<String> {
    let mut ids: Vec<String> = next_deliveries(client, n)
        .await
        .iter()
        .map(crate::document_id)
        .collect();
    ids.sort();
    ids
}

/// The next `n` deliveries on one following stream, each acknowledged
/// (within 30 s each). One stream for all of them: a stream holds leases on
/// what it was handed, so a second stream would wait for those to run out.
pub async fn next_deliveries(client: &Client, n: usize) -> Vec<Delivery> {
    let mut s = client.receive(8, true).await.expect("receive");
    let mut out = Vec::new();
    while out.len() < n {
        let d = tokio::time::timeout(Duration::from_secs(30), s.message())
            .await
            .expect("a delivery within 30 s")
            .expect("stream")
            .expect("a delivery");
        client.ack(vec![d.delivery_id]).await.expect("ack");
        out.push(d);
    }
    out
}

/// Poll `f` every 50 ms for up to 60 s (forwarding runs on the hubs' own
/// tasks, and a peer that was down is tried again with backoff).
pub async fn within<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while tokio::time::Instant::now() < deadline {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Every receipt `hub` holds about document `id` from `from`, in log
/// order (none when it knows no such document).
pub async fn receipts_of(hub: &TestHub, from: &str, id: &str) -> Vec<Receipt> {
    let op = hub.operator().await;
    let pages = match op
        .all_receipts(ListReceiptsRequest {
            document_from: from.into(),
            document_id: id.into(),
            ..Default::default()
        })
        .await
    {
        Ok(pages) => pages,
        Err(truc_client::ClientError::Rpc(st)) if st.code() == Code::NotFound => return Vec::new(),
        Err(e) => panic!("receipts of {id}: {e}"),
    };
    pages
        .into_iter()
        .flat_map(|p| p.receipts)
        .map(|r| Receipt::decode(r.receipt.as_slice()).unwrap())
        .collect()
}
