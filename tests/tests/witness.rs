//! Hubs witnessing each other (issue 20, item 8), with real hubs, each with
//! a CA of its own, on loopback: the c2sp.org/tlog-witness endpoint answer
//! by answer, cosignatures gathered and served, exports verified with
//! `--witnesses 2` (and refused under an unwitnessed head), c2sp.org/
//! tlog-proof files, and a hub restarted on an older copy of its store
//! flagged by both of its witnesses.
//!
//! No sleeps: every wait polls with a deadline.

use std::path::Path;
use std::time::{Duration, Instant};

use prost::Message;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivatePkcs8KeyDer;
use truc_client::audit::{self, AuditQuery, VerifyError, WitnessPolicy};
use truc_core::c2sp::cosignature::Cosigner;
use truc_core::c2sp::note::{TYPE_COSIGNATURE_V1, TYPE_ED25519};
use truc_core::c2sp::witness::{parse_cosignature_body, AddCheckpoint, SIZE_CONTENT_TYPE};
use truc_core::c2sp::{Checkpoint, Note, NoteSigner, NoteVerifier};
use truc_core::merkle::{self, MemoryTree};
use truc_core::tree_head::TreeHeadVerifier;
use truc_hub::config::PeerConfig;
use truc_proto::v1::{Receipt, ReceiptEvent};
use truc_tests::{admin_get, copy_dir, free_port, http_with_body, TestHub, TestPki};

/// A verifier named `name` of `signature_type` for the Ed25519 public key
/// PEM at `pem_path` (`receipts.pub`, `witness.pub`).
fn note_key(pem_path: &Path, name: String, signature_type: u8) -> NoteVerifier {
    let pem = std::fs::read_to_string(pem_path).unwrap();
    let spki = TreeHeadVerifier::from_pem(&pem).unwrap().public_key_spki_der();
    NoteVerifier::new(&name, signature_type, &spki[spki.len() - 32..]).unwrap()
}

/// A hub's checkpoint key, as its `trucd check-config` prints it.
fn log_key(pki: &TestPki, id: &str) -> NoteVerifier {
    note_key(&pki.pki.receipt_pub_path(), format!("{id}.truc/receipts"), TYPE_ED25519)
}

/// A hub's witness key.
fn witness_key(pki: &TestPki, id: &str) -> NoteVerifier {
    note_key(
        &pki.pki.witness_pub_path(),
        format!("{id}.truc/witness"),
        TYPE_COSIGNATURE_V1,
    )
}

/// A hub of the network, with its id.
struct Node {
    id: &'static str,
    hub: TestHub,
}

/// Hubs that all witness each other: each lists the others as peers with
/// their checkpoint keys, witness URLs (their admin listeners, on ports
/// chosen before any starts) and witness keys.
async fn network(ids: &[&'static str], interval_ms: u64) -> Vec<Node> {
    let pkis: Vec<TestPki> = ids.iter().map(|id| TestPki::with_hub(id)).collect();
    let ports: Vec<u16> = ids.iter().map(|_| free_port()).collect();
    let peers = |me: usize| -> Vec<PeerConfig> {
        (0..ids.len())
            .filter(|&j| j != me)
            .map(|j| PeerConfig {
                id: ids[j].into(),
                address: format!("{}.truc.test:7443", ids[j]),
                ca: pkis[j].pki.ca_pem_path(),
                checkpoint_key: Some(log_key(&pkis[j], ids[j]).vkey()),
                witness_url: Some(format!("http://127.0.0.1:{}", ports[j])),
                witness_key: Some(witness_key(&pkis[j], ids[j]).vkey()),
                ..PeerConfig::default()
            })
            .collect()
    };
    let all_peers: Vec<Vec<PeerConfig>> = (0..ids.len()).map(peers).collect();
    let mut nodes = Vec::new();
    for (i, pki) in pkis.into_iter().enumerate() {
        let (port, peers) = (ports[i], all_peers[i].clone());
        let hub = TestHub::start_sled_with_pki(pki, |c| {
            c.admin.listen = Some(format!("127.0.0.1:{port}").parse().unwrap());
            c.federation.witness_interval_ms = interval_ms;
            c.peers = peers;
        })
        .await;
        nodes.push(Node { id: ids[i], hub });
    }
    nodes
}

/// Poll `f` every 20 ms until it gives `Some`, for at most `limit`.
async fn within<T, F, Fut>(limit: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(start.elapsed() < limit, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The size of `hub`'s latest signed tree head.
async fn head_size(hub: &TestHub) -> u64 {
    let sth = hub.operator().await.tree_head(0).await.unwrap();
    truc_proto::v1::TreeHead::decode(sth.tree_head.as_slice())
        .unwrap()
        .tree_size
}

/// `/checkpoint` of `hub` once it is the latest head cosigned by every
/// witness in `witnesses`: (size, the note).
async fn cosigned_by(hub: &TestHub, log: &NoteVerifier, witnesses: &[NoteVerifier]) -> (u64, String) {
    within(
        Duration::from_secs(30),
        "the latest checkpoint cosigned by every witness",
        || async {
            let size = head_size(hub).await;
            let note = admin_get(hub, "/checkpoint").await.body;
            let (cp, parsed) = Checkpoint::open(note.as_bytes(), log).ok()?;
            let keys: Vec<&NoteVerifier> = witnesses.iter().collect();
            let verified = parsed.verify(&keys).ok()?;
            (cp.size == size && verified.len() == witnesses.len()).then_some((size, note))
        },
    )
    .await
}

/// A counter of `hub`'s /metrics with `label=value`.
async fn metric(hub: &TestHub, name: &str, label: (&str, &str)) -> f64 {
    let text = admin_get(hub, "/metrics").await.body;
    truc_hub::metrics::parse_exposition(&text)
        .into_iter()
        .find(|s| s.name == name && s.labels.get(label.0).map(String::as_str) == Some(label.1))
        .map_or(0.0, |s| s.value)
}

/// The operator-action receipts of `hub` whose detail contains `words`.
async fn actions(hub: &TestHub, words: &str) -> Vec<Receipt> {
    let pages = hub
        .operator()
        .await
        .all_receipts(AuditQuery::all().request())
        .await
        .unwrap();
    pages
        .iter()
        .flat_map(|p| &p.receipts)
        .map(|r| Receipt::decode(r.receipt.as_slice()).unwrap())
        .filter(|r| r.event == ReceiptEvent::OperatorAction as i32 && r.detail.contains(words))
        .collect()
}

fn receipts_key(hub: &TestHub) -> TreeHeadVerifier {
    TreeHeadVerifier::from_pem(&std::fs::read_to_string(hub.pki.pki.receipt_pub_path()).unwrap()).unwrap()
}

/// Something happens at `hub`: an agency registered, a document sent.
async fn traffic(hub: &TestHub, n: u32) {
    let code = format!("000.00.{n:02}.G22");
    let g22 = hub.agency(&code).await;
    let doc = truc_tests::sign(
        &g22,
        truc_tests::header(&[code.as_str()], &format!("witness/{n}")),
        b"x",
    );
    g22.send(doc).await.unwrap();
}

#[tokio::test]
async fn hubs_witness_each_other_and_an_honest_export_verifies_with_two_witnesses() {
    let net = network(&["national", "h49", "g12"], 300).await;
    let [national, h49, g12] = [&net[0], &net[1], &net[2]];
    traffic(&national.hub, 1).await;
    let log = log_key(&national.hub.pki, "national");
    let witnesses = [witness_key(&h49.hub.pki, h49.id), witness_key(&g12.hub.pki, g12.id)];
    let (size, note) = cosigned_by(&national.hub, &log, &witnesses).await;
    // Still one signed note: the hub's signature first, then one
    // cosignature per witness.
    let parsed = Note::parse(note.as_bytes()).unwrap();
    assert_eq!(parsed.signatures[0].name, "national.truc/receipts");
    assert_eq!(parsed.signatures.len(), 3, "{note}");

    // The export carries that checkpoint; with both witnesses' keys it
    // verifies with --witnesses 2.
    let ops = national.hub.operator().await;
    let key = receipts_key(&national.hub);
    let export = audit::export(&ops, &AuditQuery::all(), Some(&key)).await.unwrap();
    assert_eq!(export.tree_head.tree_size, size, "no traffic since");
    let vkeys: Vec<String> = witnesses.iter().map(NoteVerifier::vkey).collect();
    let two = WitnessPolicy::new(&vkeys, 2).unwrap();
    let report = audit::verify_export_witnessed(&export, &key, &two).unwrap();
    let w = report.witnessed.unwrap();
    assert_eq!((w.size, w.cosigned_by.len(), report.receipts as u64), (size, 2, size));
    // Through JSON and back, as `truc audit verify` reads it.
    let back = audit::AuditExport::from_json(&export.to_json()).unwrap();
    audit::verify_export_witnessed(&back, &key, &two).unwrap();

    // Every receipt as a c2sp.org/tlog-proof, each verifying on its own.
    let proofs = audit::tlog_proofs(&ops, &export).await.unwrap();
    assert_eq!(proofs.len() as u64, size);
    for (index, text) in &proofs {
        let r = audit::verify_tlog_proof(text, &key, &two).unwrap();
        assert_eq!((r.receipt.index, r.size), (*index, size));
    }
    // A proof edited (its receipt, its index) does not verify.
    let (_, text) = &proofs[proofs.len() / 2];
    let mut p = truc_core::c2sp::proof::TlogProof::parse(text).unwrap();
    p.index += 1;
    assert!(audit::verify_tlog_proof(&p.to_text(), &key, &two).is_err());

    // The witnesses count what they cosigned; nothing conflicts.
    for w in [h49, g12] {
        assert!(
            metric(
                &w.hub,
                "truc_witness_cosigned_total",
                ("origin", "national.truc/receipts")
            )
            .await
                >= 1.0
        );
        assert_eq!(
            metric(
                &w.hub,
                "truc_witness_conflicts_total",
                ("origin", "national.truc/receipts")
            )
            .await,
            0.0
        );
    }
    assert!(metric(&national.hub, "truc_checkpoint_cosigned_size", ("witness", "h49")).await >= size as f64);
}

#[tokio::test]
async fn an_export_under_an_unwitnessed_head_fails_with_two_witnesses() {
    let mut net = network(&["national", "h49", "g12"], 300).await;
    traffic(&net[0].hub, 1).await;
    let log = log_key(&net[0].hub.pki, "national");
    let witnesses = [witness_key(&net[1].hub.pki, "h49"), witness_key(&net[2].hub.pki, "g12")];
    let (witnessed, _) = cosigned_by(&net[0].hub, &log, &witnesses).await;
    // The witnesses go away; the log grows past what they saw.
    net[1].hub.stop().await;
    net[2].hub.stop().await;
    traffic(&net[0].hub, 2).await;
    let national = &net[0].hub;
    let key = receipts_key(national);
    let export = audit::export(&national.operator().await, &AuditQuery::all(), Some(&key))
        .await
        .unwrap();
    assert!(export.tree_head.tree_size > witnessed);
    // Without witnesses the export is as good as ever...
    audit::verify_export(&export, &key).unwrap();
    // ... but the receipts recorded since are under no cosigned head.
    let vkeys: Vec<String> = witnesses.iter().map(NoteVerifier::vkey).collect();
    let two = WitnessPolicy::new(&vkeys, 2).unwrap();
    match audit::verify_export_witnessed(&export, &key, &two) {
        Err(VerifyError::Receipt { index, problem, .. }) => {
            assert_eq!(index, witnessed, "the first receipt after the witnessed head");
            assert!(problem.contains("not under the cosigned checkpoint"), "{problem}");
        }
        other => panic!("expected the first unwitnessed receipt named, got {other:?}"),
    }
    // Stripped of its checkpoint, or with a key the checkpoint lacks.
    let mut stripped = export.clone();
    stripped.checkpoint = None;
    let e = audit::verify_export_witnessed(&stripped, &key, &two).unwrap_err();
    assert!(matches!(e, VerifyError::Witness(_)), "{e}");
    let stranger = Cosigner::from_seed("rogue.truc/witness", &[5; 32])
        .unwrap()
        .verifier()
        .vkey();
    let mut only_one = export.clone();
    only_one.receipts.retain(|r| r.index < witnessed);
    only_one.complete_range = None;
    let policy = WitnessPolicy::new(&[vkeys[0].clone(), stranger], 2).unwrap();
    let e = audit::verify_export_witnessed(&only_one, &key, &policy)
        .unwrap_err()
        .to_string();
    assert!(e.contains("cosigned by 1 of the 2 witnesses required"), "{e}");
    // The receipts the witnesses saw do verify with both.
    audit::verify_export_witnessed(&only_one, &key, &two).unwrap();
}

/// `POST /add-checkpoint` on `hub`'s admin listener.
async fn add_checkpoint(hub: &TestHub, body: &str) -> truc_tests::HttpResponse {
    http_with_body(hub.admin_addr().unwrap(), "POST", "/add-checkpoint", body)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_witness_endpoint_answers_as_the_specification_says() {
    // The national hub witnesses h49's log; h49 need not run: its receipt
    // key signs checkpoints of trees made here.
    let h49 = TestPki::with_hub("h49");
    let g12 = TestPki::with_hub("g12");
    let h49_log = log_key(&h49, "h49");
    let mut national = TestHub::start_sled_with_pki(TestPki::with_hub("national"), |c| {
        c.admin.listen = Some("127.0.0.1:0".parse().unwrap());
        c.peers = vec![PeerConfig {
            id: "h49".into(),
            address: "h49.truc.test:7443".into(),
            ca: h49.pki.ca_pem_path(),
            checkpoint_key: Some(h49_log.vkey()),
            ..PeerConfig::default()
        }];
    })
    .await;
    let pem = std::fs::read(h49.pki.receipt_key_path()).unwrap();
    let der = PrivatePkcs8KeyDer::from_pem_slice(&pem).unwrap();
    let signer = NoteSigner::from_pkcs8("h49.truc/receipts", der.secret_pkcs8_der()).unwrap();
    let mut tree = MemoryTree::new();
    let mut fork = MemoryTree::new();
    for i in 0..12u64 {
        tree.push(format!("receipt {i}").as_bytes());
        fork.push(format!("{} {i}", if i < 4 { "receipt" } else { "rewritten" }).as_bytes());
    }
    let note = |t: &MemoryTree, size: u64| {
        Checkpoint::new("h49.truc/receipts", size, merkle::root(size, t).unwrap())
            .sign(&signer)
            .unwrap()
    };
    let req = |t: &MemoryTree, old: u64, size: u64| {
        AddCheckpoint {
            old_size: old,
            proof: merkle::consistency_proof(old, size, t).unwrap(),
            note: note(t, size),
        }
        .body()
    };
    let witness = witness_key(&national.pki, "national");

    // First contact: cosigned, the line verifying with the witness key.
    let r = add_checkpoint(&national, &req(&tree, 0, 4)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let lines = parse_cosignature_body(&r.body).unwrap();
    let mut cosigned = Note::parse(note(&tree, 4).as_bytes()).unwrap();
    cosigned.signatures.extend(lines);
    assert_eq!(cosigned.verify(&[&witness]).unwrap(), vec![0]);

    // 409 with the size cosigned, as text/x.tlog.size, when old is stale.
    let r = add_checkpoint(&national, &req(&tree, 0, 8)).await;
    assert_eq!((r.status, r.body.as_str()), (409, "4\n"));
    assert!(
        r.headers.contains(&format!("content-type: {SIZE_CONTENT_TYPE}")),
        "{}",
        r.headers
    );
    // Growth proven from 4: cosigned.
    assert_eq!(add_checkpoint(&national, &req(&tree, 4, 8)).await.status, 200);

    // 422: a tree that does not extend size 8 (rewritten from leaf 4).
    let r = add_checkpoint(&national, &req(&fork, 8, 12)).await;
    assert_eq!(r.status, 422, "{}", r.body);
    // 409 (not a size answer): another tree of size 8.
    let r = add_checkpoint(&national, &req(&fork, 8, 8)).await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(!r.headers.contains(SIZE_CONTENT_TYPE), "{}", r.headers);
    assert!(r.body.contains("two different trees of size 8"), "{}", r.body);
    // Both are conflicts: counted, and recorded once each in the
    // witness's own log.
    assert_eq!(
        metric(
            &national,
            "truc_witness_conflicts_total",
            ("origin", "h49.truc/receipts")
        )
        .await,
        2.0
    );
    assert_eq!(actions(&national, "witness conflict: peer h49").await.len(), 2);
    add_checkpoint(&national, &req(&fork, 8, 8)).await;
    assert_eq!(
        actions(&national, "witness conflict: peer h49").await.len(),
        2,
        "recorded once"
    );

    // 404: a log it does not witness (g12's); 403: h49's origin signed by
    // another key; 400: garbage; 405: GET.
    let g12_signer = NoteSigner::from_seed("g12.truc/receipts", &[3; 32]).unwrap();
    let g12_note = Checkpoint::new("g12.truc/receipts", 1, merkle::leaf_hash(b"x"))
        .sign(&g12_signer)
        .unwrap();
    let body = |n: String| {
        AddCheckpoint {
            old_size: 0,
            proof: vec![],
            note: n,
        }
        .body()
    };
    assert_eq!(add_checkpoint(&national, &body(g12_note)).await.status, 404);
    let forger = NoteSigner::from_seed("h49.truc/receipts", &[4; 32]).unwrap();
    let forged = Checkpoint::new("h49.truc/receipts", 12, merkle::root(12, &fork).unwrap())
        .sign(&forger)
        .unwrap();
    assert_eq!(add_checkpoint(&national, &body(forged)).await.status, 403);
    assert_eq!(add_checkpoint(&national, "old 1\n\nnot a note\n").await.status, 400);
    assert_eq!(add_checkpoint(&national, "old 01\n\n").await.status, 400);
    let r = truc_tests::http(national.admin_addr().unwrap(), "GET", "/add-checkpoint")
        .await
        .unwrap();
    assert_eq!(r.status, 405);
    drop(g12);

    // What was cosigned survives a restart (data_dir/witness.json).
    national.restart().await;
    let r = add_checkpoint(&national, &req(&tree, 0, 12)).await;
    assert_eq!((r.status, r.body.as_str()), (409, "8\n"));
    assert_eq!(add_checkpoint(&national, &req(&tree, 8, 12)).await.status, 200);
}

#[tokio::test]
async fn a_hub_restarted_on_an_older_copy_of_its_store_is_flagged_by_both_witnesses_within_an_interval() {
    let interval = Duration::from_millis(2000);
    let mut net = network(&["national", "h49", "g12"], interval.as_millis() as u64).await;
    let log = log_key(&net[0].hub.pki, "national");
    let witnesses = [witness_key(&net[1].hub.pki, "h49"), witness_key(&net[2].hub.pki, "g12")];
    traffic(&net[0].hub, 1).await;
    cosigned_by(&net[0].hub, &log, &witnesses).await;

    // An older copy of the store, taken while the hub is stopped.
    let store = net[0].hub.config.data_dir.clone();
    let copy = net[0].hub.data.path().join("store-copy");
    net[0].hub.stop().await;
    copy_dir(&store, &copy);
    net[0].hub.start_again().await;
    // The log grows and both witnesses cosign it (the restarted hub's
    // submitter starts from size 0 and is told, by 409, where each
    // witness is).
    let ops = net[0].hub.operator().await;
    for _ in 0..3 {
        ops.reload().await.unwrap();
    }
    let (published, _) = cosigned_by(&net[0].hub, &log, &witnesses).await;

    // The store swapped for the older copy: the hub signs other heads,
    // up to a size it already published.
    net[0].hub.stop().await;
    std::fs::remove_dir_all(&store).unwrap();
    copy_dir(&copy, &store);
    net[0].hub.start_again().await;
    let ops = net[0].hub.operator().await;
    while head_size(&net[0].hub).await < published {
        ops.reload().await.unwrap();
    }
    assert_eq!(head_size(&net[0].hub).await, published, "one receipt per reload");
    let forked = Instant::now();

    // Both witnesses flag it within one interval (and a margin for the
    // request itself on a loaded machine): a counter, and a receipt in
    // each one's own log.
    for w in &net[1..] {
        within(
            interval + Duration::from_secs(2),
            "the witness to flag the conflict",
            || async {
                let n = metric(
                    &w.hub,
                    "truc_witness_conflicts_total",
                    ("origin", "national.truc/receipts"),
                )
                .await;
                (n >= 1.0).then_some(())
            },
        )
        .await;
        let recorded = within(Duration::from_secs(5), "the conflict receipt", || async {
            let r = actions(&w.hub, "witness conflict: peer national").await;
            (!r.is_empty()).then_some(r)
        })
        .await;
        assert!(
            recorded[0]
                .detail
                .contains(&format!("two different trees of size {published}")),
            "{}",
            recorded[0].detail
        );
        assert_eq!(recorded[0].actor, format!("urn:truc:hub:{}", w.id));
    }
    assert!(forked.elapsed() < interval + Duration::from_secs(2));
}
