//! Federation groundwork on a real hub: hub identities kept apart from
//! agencies (a hub certificate refused as an agency, an agency certificate
//! refused where a hub is expected, a peer's CA trusted for that peer
//! alone), the Peer service, and the receipt log served as a C2SP
//! checkpoint that verifies with the hub's receipt public key.
//!
//! Each hub has a CA of its own, as in the issue's topology: the national
//! hub (under test), a province hub h49 and a ministry hub g12 (whose
//! certificates and CAs are used; they need not run here).

use tonic::transport::Channel;
use tonic::Code;
use truc_core::c2sp::note::TYPE_ED25519;
use truc_core::c2sp::{Checkpoint, Note, NoteError, NoteVerifier};
use truc_core::merkle::Hash;
use truc_core::tree_head::TreeHeadVerifier;
use truc_core::Principal;
use truc_hub::config::PeerConfig;
use truc_pki::{IssueOptions, Serial};
use truc_proto::v1::audit_client::AuditClient;
use truc_proto::v1::axis_client::AxisClient;
use truc_proto::v1::ops_client::OpsClient;
use truc_proto::v1::peer_client::PeerClient;
use truc_proto::v1::{
    AckRequest, GetTreeHeadRequest, ListAgenciesRequest, PeerHelloRequest, ReceiveRequest, ReportStatusRequest,
    SendRequest, SignedDocument, TrackRequest, TreeHead,
};
use truc_tests::{admin_get, TestHub, TestPki};

const G22: &str = "000.00.00.G22";

/// The national hub, with peers h49 (its own CA and CRL) and g12 (its own
/// CA), and an admin listener.
struct Topology {
    national: TestHub,
    h49: TestPki,
    g12: TestPki,
}

async fn topology() -> Topology {
    let h49 = TestPki::with_hub("h49");
    let g12 = TestPki::with_hub("g12");
    let peer = |pki: &TestPki, id: &str, serves: &[&str], crl: bool| PeerConfig {
        id: id.into(),
        address: format!("{id}.truc.test:7443"),
        ca: pki.pki.ca_pem_path(),
        crl: crl.then(|| pki.pki.crl_path()),
        serves: serves.iter().map(|s| s.to_string()).collect(),
        ..PeerConfig::default()
    };
    let peers = vec![
        peer(&h49, "h49", &["*.H49", "H49.*"], true),
        peer(&g12, "g12", &["*.G12", "G12.*"], false),
    ];
    let national = TestHub::start_named("national", |c| {
        c.admin.listen = Some("127.0.0.1:0".parse().unwrap());
        c.federation.serves = vec!["*.G22".into(), "G22.*".into()];
        c.peers = peers;
    })
    .await;
    Topology { national, h49, g12 }
}

/// A channel to `hub` presenting the identity in `dir` (of any CA).
async fn channel_as(hub: &TestHub, dir: &std::path::Path) -> Channel {
    let cert = std::fs::read_to_string(dir.join("cert.pem")).unwrap();
    let key = std::fs::read_to_string(dir.join("key.pem")).unwrap();
    hub.raw_channel(Some((&cert, &key))).await
}

fn assert_refused<T: std::fmt::Debug>(r: Result<T, tonic::Status>, code: Code, words: &str) {
    match r {
        Err(s) => {
            assert_eq!(s.code(), code, "{}", s.message());
            assert!(s.message().contains(words), "{words:?} in {:?}", s.message());
        }
        Ok(v) => panic!("expected {code:?} ({words}), got {v:?}"),
    }
}

#[tokio::test]
async fn a_peer_hub_says_hello_and_learns_its_routes() {
    let t = topology().await;
    let ops = t.national.operator().await;
    ops.add_agency(G22, "Văn phòng Chính phủ").await.unwrap();
    let mut peer = PeerClient::new(channel_as(&t.national, &t.h49.pki.hub_dir()).await);
    let hello = peer.hello(PeerHelloRequest {}).await.unwrap().into_inner();
    assert_eq!(hello.hub_id, "national");
    assert_eq!(hello.peer_id, "h49");
    assert_eq!(hello.serves, ["*.H49", "H49.*"]);
    assert!(!hello.default_route);
    assert_eq!(hello.max_hops, 8);
    // The checkpoint in the answer is the national hub's, verifiable with
    // its receipt key.
    let (cp, _) = Checkpoint::open(hello.checkpoint.as_bytes(), &national_checkpoint_key(&t.national)).unwrap();
    assert_eq!(cp.origin, "national.truc/receipts");
    assert!(cp.size >= 1);
    // g12, of another CA, is a peer too.
    let mut g12 = PeerClient::new(channel_as(&t.national, &t.g12.pki.hub_dir()).await);
    assert_eq!(
        g12.hello(PeerHelloRequest {}).await.unwrap().into_inner().peer_id,
        "g12"
    );
}

#[tokio::test]
async fn a_hub_certificate_cannot_act_as_an_agency_nor_an_operator_or_auditor() {
    let t = topology().await;
    t.national.agency(G22).await;
    let ch = channel_as(&t.national, &t.h49.pki.hub_dir()).await;
    let mut axis = AxisClient::new(ch.clone());
    let why = "urn:truc:hub:h49 is a hub certificate, which may not act as an agency";
    let send = axis
        .send(SendRequest {
            document: Some(SignedDocument::default()),
        })
        .await;
    assert_refused(send, Code::PermissionDenied, why);
    assert_refused(
        axis.receive(ReceiveRequest::default()).await,
        Code::PermissionDenied,
        why,
    );
    assert_refused(
        axis.ack(AckRequest { delivery_ids: vec![1] }).await,
        Code::PermissionDenied,
        why,
    );
    let status = ReportStatusRequest {
        document_from: G22.into(),
        document_id: "x".into(),
        ..Default::default()
    };
    assert_refused(axis.report_status(status).await, Code::PermissionDenied, why);
    assert_refused(
        axis.track(TrackRequest {
            document_id: "x".into(),
        })
        .await,
        Code::PermissionDenied,
        why,
    );
    assert_refused(
        OpsClient::new(ch.clone())
            .list_agencies(ListAgenciesRequest::default())
            .await,
        Code::PermissionDenied,
        "urn:truc:hub:h49 is not an operator",
    );
    assert_refused(
        AuditClient::new(ch).get_tree_head(GetTreeHeadRequest::default()).await,
        Code::PermissionDenied,
        "urn:truc:hub:h49 may not query receipts",
    );
}

#[tokio::test]
async fn an_agency_certificate_cannot_act_as_a_hub() {
    let t = topology().await;
    t.national.agency(G22).await;
    let mut as_agency = PeerClient::new(channel_as(&t.national, &t.national.pki.agency_dir(G22)).await);
    assert_refused(
        as_agency.hello(PeerHelloRequest {}).await,
        Code::PermissionDenied,
        "urn:truc:agency:000.00.00.G22 is an agency certificate, which may not act as a hub",
    );
    let mut as_operator = PeerClient::new(channel_as(&t.national, &t.national.pki.operator_dir("ops")).await);
    assert_refused(
        as_operator.hello(PeerHelloRequest {}).await,
        Code::PermissionDenied,
        "urn:truc:operator:ops is not a hub",
    );
}

#[tokio::test]
async fn hub_certificates_are_accepted_only_from_their_peers_ca() {
    let t = topology().await;
    let hello = |dir: std::path::PathBuf| {
        let hub = &t.national;
        async move {
            PeerClient::new(channel_as(hub, &dir).await)
                .hello(PeerHelloRequest {})
                .await
        }
    };
    // A hub of the national CA that is no configured peer.
    let rogue = Principal::Hub("rogue".into());
    let dir = t.national.pki.identity_with(&rogue, &IssueOptions::default());
    assert_refused(
        hello(dir).await,
        Code::Unauthenticated,
        "urn:truc:hub:rogue is not a peer of this hub",
    );
    // h49's CA vouches for h49 only: not for another hub, not for an agency.
    let fake_g12 = t
        .h49
        .identity_with(&Principal::Hub("g12".into()), &IssueOptions::default());
    assert_refused(
        hello(fake_g12).await,
        Code::Unauthenticated,
        "issued by the CA of peer hub h49, which this hub trusts for urn:truc:hub:h49 only, and it names urn:truc:hub:g12",
    );
    let h49_unit = t.h49.agency_dir("000.00.01.H49");
    assert_refused(
        hello(h49_unit.clone()).await,
        Code::Unauthenticated,
        "and it names urn:truc:agency:000.00.01.H49",
    );
    let mut axis = AxisClient::new(channel_as(&t.national, &h49_unit).await);
    assert_refused(
        axis.receive(ReceiveRequest::default()).await,
        Code::Unauthenticated,
        "trusts for urn:truc:hub:h49 only",
    );
    // A CA nobody configured.
    let stranger = TestPki::with_hub("h41");
    assert_refused(
        hello(stranger.pki.hub_dir()).await,
        Code::Unauthenticated,
        "not issued by a trusted",
    );
    // The peer's own CRL: once h49's CA revokes its hub certificate (and the
    // national hub reloads), h49 is refused.
    hello(t.h49.pki.hub_dir()).await.unwrap();
    let serial: Serial = truc_pki::CertInfo::from_pem_file(&t.h49.pki.hub_dir().join("cert.pem"))
        .unwrap()
        .serial;
    t.h49.pki.revoke_serial(serial).unwrap();
    t.national.operator().await.reload().await.unwrap();
    assert_refused(
        hello(t.h49.pki.hub_dir()).await,
        Code::Unauthenticated,
        "certificate has been revoked (a certificate of peer hub h49's CA)",
    );
}

/// The national hub's checkpoint verifier, built as an auditor would: the
/// hub's id and its receipt public key (`receipts.pub`).
fn national_checkpoint_key(hub: &TestHub) -> NoteVerifier {
    let pem = std::fs::read_to_string(hub.pki.pki.receipt_pub_path()).unwrap();
    let spki = TreeHeadVerifier::from_pem(&pem).unwrap().public_key_spki_der();
    NoteVerifier::new("national.truc/receipts", TYPE_ED25519, &spki[spki.len() - 32..]).unwrap()
}

/// The hub's latest signed tree head, checked with its receipt key.
async fn latest_head(hub: &TestHub) -> TreeHead {
    let verifier =
        TreeHeadVerifier::from_pem(&std::fs::read_to_string(hub.pki.pki.receipt_pub_path()).unwrap()).unwrap();
    let sth = hub.operator().await.tree_head(0).await.unwrap();
    verifier.verify(&sth).unwrap()
}

#[tokio::test]
async fn the_checkpoint_is_the_signed_tree_head_and_verifies_with_the_receipt_key() {
    let t = topology().await;
    let key = national_checkpoint_key(&t.national);
    let r = admin_get(&t.national, "/checkpoint").await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (404, "no checkpoint yet: the receipt log is empty\n")
    );

    // Something happens: an agency is registered, a document goes through.
    let g22 = t.national.agency(G22).await;
    let h26 = t.national.agency("000.00.00.H26").await;
    let doc = truc_tests::sign(&g22, truc_tests::header(&["000.00.00.H26"], "fed/1"), b"one");
    g22.send(doc).await.unwrap();
    truc_tests::drain(&h26, 8).await;

    let r = admin_get(&t.national, "/checkpoint").await;
    let body = r.body;
    assert_eq!(r.status, 200, "{body}");
    assert!(
        r.headers.contains("content-type: text/plain; charset=utf-8"),
        "{}",
        r.headers
    );
    let (cp, note) = Checkpoint::open(body.as_bytes(), &key).unwrap();
    assert_eq!(note.signatures.len(), 1);
    assert_eq!(cp.origin, "national.truc/receipts");
    assert!(cp.extensions.is_empty());
    // The same tree as the hub's signed tree head.
    let sth = latest_head(&t.national).await;
    assert_eq!((cp.size, cp.root.to_vec()), (sth.tree_size, sth.root_hash.clone()));

    // Tampered: another size, another root, another signature byte.
    let tampered_size = body.replacen(&format!("\n{}\n", cp.size), &format!("\n{}\n", cp.size + 1), 1);
    let other_root = truc_core::sha256(b"another tree");
    let root_line = |h: &Hash| Checkpoint::new("x", 0, *h).text().lines().nth(2).unwrap().to_string();
    let tampered_root = body.replacen(&root_line(&cp.root), &root_line(&other_root), 1);
    let mut tampered_sig = Note::parse(body.as_bytes()).unwrap();
    tampered_sig.signatures[0].signature[0] ^= 1;
    for bad in [tampered_size, tampered_root, tampered_sig.to_text()] {
        assert_ne!(bad, body);
        assert_eq!(
            Checkpoint::open(bad.as_bytes(), &key).unwrap_err(),
            NoteError::BadSignature(key.key())
        );
    }
    // Another hub's key does not open it.
    let other = NoteVerifier::new("national.truc/receipts", TYPE_ED25519, &[9u8; 32]).unwrap();
    assert!(matches!(
        Checkpoint::open(body.as_bytes(), &other),
        Err(NoteError::NotSigned(_))
    ));

    // The log grows: a new checkpoint, consistent with the old one by the
    // hub's own consistency proof.
    let doc = truc_tests::sign(&g22, truc_tests::header(&["000.00.00.H26"], "fed/2"), b"two");
    g22.send(doc).await.unwrap();
    let later = admin_get(&t.national, "/checkpoint").await.body;
    let (cp2, _) = Checkpoint::open(later.as_bytes(), &key).unwrap();
    assert!(cp2.size > cp.size);
    let proof: Vec<Hash> = t
        .national
        .operator()
        .await
        .consistency_proof(cp.size, cp2.size)
        .await
        .unwrap()
        .iter()
        .map(|h| Hash::try_from(h.as_slice()).unwrap())
        .collect();
    truc_core::merkle::verify_consistency(cp.size, cp2.size, &cp.root, &cp2.root, &proof).unwrap();
    // Fetched again without a change: the very same note.
    assert_eq!(admin_get(&t.national, "/checkpoint").await.body, later);
}
