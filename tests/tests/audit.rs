//! Auditing (design invariant 5): exports of receipts with their proofs and
//! one signed tree head verify offline with nothing but the hub's public
//! key; tampering with an export (a byte of a receipt, a dropped receipt, two
//! swapped, the signature, another hub's key) fails naming the receipt;
//! agencies see only their own receipts; and a watcher that kept the last
//! tree head detects a rewritten history.

use prost::Message;
use tonic::Code;
use truc_client::audit::{self, AuditError, AuditExport, AuditQuery, VerifyError, WatchState};
use truc_client::Client;
use truc_core::tree_head::TreeHeadVerifier;
use truc_core::Principal;
use truc_pki::IssueOptions;
use truc_proto::v1::{Receipt, StatusCode};
use truc_tests::{drain, header, sign, TestHub, TestPki};

const G22: &str = "000.00.00.G22";
const H26: &str = "000.00.00.H26";
const H29: &str = "000.00.00.H29";

/// Documents: A from G22 to H26 and H29, B from G22 to H26 only, C from H26
/// to H29.
const DOC_A: &str = "000.00.00.G22,2026/11/23,1/VPCP";
const DOC_B: &str = "000.00.00.G22,2026/11/23,2/VPCP";
const DOC_C: &str = "000.00.00.H26,2026/11/23,7/BTC";

struct Parties {
    g22: Client,
    h26: Client,
    h29: Client,
}

/// Register three agencies; send A, B and C; H26 receives and acknowledges
/// (DELIVERED) and registers A (status 03); H29 receives nothing yet.
async fn scenario(hub: &TestHub) -> Parties {
    let g22 = hub.agency(G22).await;
    let h26 = hub.agency(H26).await;
    let h29 = hub.agency(H29).await;
    g22.send(sign(&g22, header(&[H26, H29], DOC_A), b"a")).await.unwrap();
    g22.send(sign(&g22, header(&[H26], DOC_B), b"b")).await.unwrap();
    h26.send(sign(&h26, header(&[H29], DOC_C), b"c")).await.unwrap();
    assert_eq!(drain(&h26, 4).await.len(), 2);
    h26.report_status(G22, DOC_A, StatusCode::Registered as i32, "vào sổ", None)
        .await
        .unwrap();
    Parties { g22, h26, h29 }
}

async fn auditor(hub: &TestHub) -> Client {
    let p = Principal::parse_uri("urn:truc:auditor:a1").unwrap();
    hub.connect(&hub.pki.identity_with(&p, &IssueOptions::default())).await
}

fn hub_key(pki: &TestPki) -> String {
    std::fs::read_to_string(pki.pki.receipt_pub_path()).expect("receipts.pub")
}

fn verifier(hub: &TestHub) -> TreeHeadVerifier {
    TreeHeadVerifier::from_pem(&hub_key(&hub.pki)).unwrap()
}

/// The export as JSON after `f` edits it.
fn tampered(export: &AuditExport, f: impl FnOnce(&mut AuditExport)) -> String {
    let mut e = export.clone();
    f(&mut e);
    e.to_json()
}

/// Flip the low bit of byte `at` of a hex string.
fn flip_byte(hex: &str, at: usize) -> String {
    let b = u8::from_str_radix(&hex[2 * at..2 * at + 2], 16).unwrap() ^ 0x01;
    format!("{}{b:02x}{}", &hex[..2 * at], &hex[2 * at + 2..])
}

fn decoded(export: &audit::AuditExport, position: usize) -> Receipt {
    let hex = &export.receipts[position].receipt;
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    Receipt::decode(bytes.as_slice()).unwrap()
}

fn rpc_code(e: AuditError) -> Code {
    match e {
        AuditError::Rpc(s) => s.code(),
        other => panic!("expected a gRPC refusal, got {other}"),
    }
}

#[tokio::test]
async fn exports_verify_offline_with_the_hub_key_only() {
    let hub = TestHub::start().await;
    let p = scenario(&hub).await;
    let key = hub_key(&hub.pki);
    let v = verifier(&hub);
    let auditor = auditor(&hub).await;

    // The whole log: complete, every receipt proven against one head.
    let all = audit::export(&auditor, &AuditQuery::all(), Some(&v)).await.unwrap();
    let size = all.tree_head.tree_size;
    assert_eq!(all.receipts.len() as u64, size);
    assert_eq!(
        all.complete_range,
        Some(audit::IndexRange {
            first: 0,
            last: size - 1
        })
    );
    let report = audit::verify(&all.to_json(), &key).unwrap();
    assert_eq!(report.receipts as u64, size);
    assert_eq!(
        (report.tree_size, report.root_hash.clone()),
        (size, all.tree_head.root_hash.clone())
    );
    assert_eq!(report.complete_range, all.complete_range);
    // Decoded fields are there for people.
    assert!(all.receipts.iter().any(|r| r.event == "STATUS_REPORTED"
        && r.document_id == DOC_A
        && r.status_code == "03 REGISTERED"
        && r.description == "vào sổ"));

    // Many small pages give the same export.
    let paged = audit::export_paged(&auditor, &AuditQuery::all(), Some(&v), 2)
        .await
        .unwrap();
    assert_eq!(paged.receipts, all.receipts);
    audit::verify(&paged.to_json(), &key).unwrap();

    // An agency's own receipts, exported by the agency: no completeness claim.
    let mine = audit::export(&p.g22, &AuditQuery::agency(G22), None).await.unwrap();
    assert!(mine.complete_range.is_none());
    assert!(!mine.receipts.is_empty() && (mine.receipts.len() as u64) < size);
    assert!(mine
        .receipts
        .iter()
        .all(|r| r.from == G22 || r.recipient == G22 || r.actor.ends_with(G22) || r.description.contains(G22)));
    assert_eq!(
        audit::verify(&mine.to_json(), &key).unwrap().receipts,
        mine.receipts.len()
    );

    // One document, exported by a recipient: accepted, delivered, registered.
    let doc = audit::export(&p.h26, &AuditQuery::document(G22, DOC_A), None)
        .await
        .unwrap();
    let events: Vec<&str> = doc.receipts.iter().map(|r| r.event.as_str()).collect();
    assert_eq!(events, ["ACCEPTED", "DELIVERED", "STATUS_REPORTED"]);
    audit::verify(&doc.to_json(), &key).unwrap();

    // A time range: only receipts at or after the time of the delivery.
    let since = doc.receipts[1].time_unix_ms;
    let q = AuditQuery {
        since_unix_ms: Some(since),
        ..AuditQuery::default()
    };
    let recent = audit::export(&auditor, &q, Some(&v)).await.unwrap();
    assert!(recent.complete_range.is_none());
    assert!(recent.receipts.iter().all(|r| r.time_unix_ms >= since));
    assert!(recent.receipts.iter().any(|r| r.event == "DELIVERED"));
    audit::verify(&recent.to_json(), &key).unwrap();
}

#[tokio::test]
async fn tampered_exports_fail_naming_the_receipt() {
    let hub = TestHub::start().await;
    scenario(&hub).await;
    let key = hub_key(&hub.pki);
    let export = audit::export(&auditor(&hub).await, &AuditQuery::all(), None)
        .await
        .unwrap();
    let json = export.to_json();
    assert!(export.receipts.len() >= 8, "{}", export.receipts.len());
    audit::verify(&json, &key).unwrap();
    let err = |json: &str| audit::verify(json, &key).unwrap_err();

    // One byte of one receipt's bytes: that receipt is named.
    let doc_receipt = export.receipts.iter().position(|r| r.document_id == DOC_B).unwrap();
    let r = decoded(&export, doc_receipt);
    let bytes = export.receipts[doc_receipt].receipt.len() / 2;
    let e = err(&tampered(&export, |e| {
        e.receipts[doc_receipt].receipt = flip_byte(&e.receipts[doc_receipt].receipt, bytes - 3);
    }));
    match &e {
        VerifyError::Receipt { position, index, .. } => {
            assert_eq!((*position, *index), (doc_receipt + 1, r.index), "{e}")
        }
        other => panic!("{other:?}"),
    }
    let msg = e.to_string();
    assert!(
        msg.starts_with(&format!("receipt #{} (index {}", doc_receipt + 1, r.index)),
        "{msg}"
    );
    assert!(
        msg.contains("does not match the signed tree head") || msg.contains("decode"),
        "{msg}"
    );
    // A byte of its inclusion proof: also named.
    let e = err(&tampered(&export, |e| {
        e.receipts[2].inclusion_proof[0] = flip_byte(&e.receipts[2].inclusion_proof[0], 0);
    }));
    assert!(e.to_string().starts_with("receipt #3 (index 2, "), "{e}");

    // A dropped receipt in a complete export: the missing index is named.
    let e = err(&tampered(&export, |e| {
        e.receipts.remove(4);
    }));
    assert!(matches!(e, VerifyError::Missing { index: 4, .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.starts_with("receipt index 4 is missing"), "{msg}");
    assert!(
        msg.contains("receipt #4 (index 3") && msg.contains("receipt #5 (index 5"),
        "{msg}"
    );
    // The last one dropped, too.
    let last = export.receipts.len() - 1;
    let e = err(&tampered(&export, |e| {
        e.receipts.pop();
    }));
    assert!(
        matches!(e, VerifyError::Missing { index, .. } if index == last as u64),
        "{e:?}"
    );

    // Two receipts swapped: both are named.
    let e = err(&tampered(&export, |e| e.receipts.swap(3, 4)));
    assert!(
        matches!(
            e,
            VerifyError::Order {
                position: 5,
                index: 3,
                previous_index: 4,
                ..
            }
        ),
        "{e:?}"
    );
    let msg = e.to_string();
    assert!(
        msg.starts_with("receipt #5 (index 3") && msg.contains("comes after receipt #4 (index 4"),
        "{msg}"
    );
    // Only their bytes swapped, listed indexes left in place: named too.
    let e = err(&tampered(&export, |e| {
        let a = std::mem::take(&mut e.receipts[3].receipt);
        e.receipts[3].receipt = std::mem::replace(&mut e.receipts[4].receipt, a);
    }));
    assert!(e.to_string().starts_with("receipt #4 (index 3"), "{e}");
    assert!(e.to_string().contains("its signed bytes say index 4"), "{e}");
    // Listed twice.
    let e = err(&tampered(&export, |e| {
        let dup = e.receipts[2].clone();
        e.receipts.insert(3, dup);
    }));
    assert!(e.to_string().contains("listed twice"), "{e}");

    // One hex digit of the signature.
    let e = err(&tampered(&export, |e| {
        e.tree_head.signature = flip_byte(&e.tree_head.signature, 10);
    }));
    assert!(matches!(e, VerifyError::TreeHead(_)), "{e:?}");
    assert!(e.to_string().contains("signature does not verify"), "{e}");
    // The written size disagrees with the signed one.
    let e = err(&tampered(&export, |e| e.tree_head.tree_size += 1));
    assert!(e.to_string().contains("tree_size is written as"), "{e}");

    // Another hub's key.
    let other = TestPki::new();
    let e = audit::verify(&json, &hub_key(&other)).unwrap_err();
    assert!(e.to_string().contains("signed with another key"), "{e}");

    // Not an export at all.
    assert!(matches!(err("{}"), VerifyError::Format(_)));
    assert!(matches!(err("[1, 2"), VerifyError::Format(_)));
    let e = err(&tampered(&export, |e| e.format = "truc-audit-export/9".into()));
    assert!(matches!(e, VerifyError::Format(_)), "{e:?}");

    // The decoded, human-readable fields are never trusted: editing them
    // changes nothing that verify checks.
    audit::verify(
        &tampered(&export, |e| {
            e.receipts[doc_receipt].document_id = "something else".into();
            e.receipts[doc_receipt].event = "DELIVERED".into();
            e.query = AuditQuery::agency(H29);
        }),
        &key,
    )
    .unwrap();
}

#[tokio::test]
async fn agencies_see_only_their_own_receipts() {
    let hub = TestHub::start().await;
    let p = scenario(&hub).await;
    let key = hub_key(&hub.pki);

    // Another agency's receipts, a document it is not party to, the whole log.
    for (who, q) in [
        (&p.g22, AuditQuery::agency(H26)),
        (&p.h29, AuditQuery::document(G22, DOC_B)),
        (&p.g22, AuditQuery::document(H26, DOC_C)),
        (&p.h29, AuditQuery::all()),
    ] {
        let e = audit::export(who, &q, None).await.unwrap_err();
        assert_eq!(rpc_code(e), Code::PermissionDenied, "{q:?}");
    }

    // The sender and the recipient of B may export its receipts.
    for who in [&p.g22, &p.h26] {
        let doc = audit::export(who, &AuditQuery::document(G22, DOC_B), None)
            .await
            .unwrap();
        assert_eq!(doc.receipts.len(), 2, "accepted and delivered");
        audit::verify(&doc.to_json(), &key).unwrap();
    }
    // H29 is a recipient of C (not yet delivered).
    let c = audit::export(&p.h29, &AuditQuery::document(H26, DOC_C), None)
        .await
        .unwrap();
    assert_eq!(c.receipts.len(), 1);
    assert_eq!(c.receipts[0].event, "ACCEPTED");

    // Auditors and operators see everything.
    let by_auditor = audit::export(&auditor(&hub).await, &AuditQuery::all(), None)
        .await
        .unwrap();
    let by_operator = audit::export(&hub.operator().await, &AuditQuery::all(), None)
        .await
        .unwrap();
    assert_eq!(by_auditor.receipts, by_operator.receipts);
    let h26 = audit::export(&auditor(&hub).await, &AuditQuery::agency(H26), None)
        .await
        .unwrap();
    assert!(!h26.receipts.is_empty());
    let b = audit::export(&hub.operator().await, &AuditQuery::document(G22, DOC_B), None)
        .await
        .unwrap();
    assert_eq!(b.receipts.len(), 2);
}

#[tokio::test]
async fn watch_advances_while_the_log_grows() {
    let hub = TestHub::start().await;
    let p = scenario(&hub).await;
    let v = verifier(&hub);
    let auditor = auditor(&hub).await;
    let path = hub.data.path().join("watch.json");

    assert_eq!(WatchState::load(&path).unwrap(), None);
    let first = audit::latest_head(&auditor, &v).await.unwrap();
    first.save(&path).unwrap();
    let saved = WatchState::load(&path).unwrap().unwrap();
    assert_eq!(saved, first);

    // Nothing new: the same state.
    assert_eq!(audit::check_consistency(&auditor, &v, &saved).await.unwrap(), saved);

    // More receipts: proven consistent, the state advances.
    p.g22.send(sign(&p.g22, header(&[H29], "w/1"), b"1")).await.unwrap();
    assert_eq!(drain(&p.h29, 8).await.len(), 3, "A, C and w/1");
    let next = audit::check_consistency(&auditor, &v, &saved).await.unwrap();
    assert!(next.tree_size > saved.tree_size, "{next:?}");
    next.save(&path).unwrap();
    assert_eq!(WatchState::load(&path).unwrap().unwrap(), next);

    // An edited state file is noticed rather than trusted.
    let mut edited = next.clone();
    edited.tree_size -= 1;
    let e = audit::check_consistency(&auditor, &v, &edited).await.unwrap_err();
    assert!(matches!(e, AuditError::State(_)), "{e}");
    // And a key that is not the hub's refuses its heads.
    let other = TreeHeadVerifier::from_pem(&hub_key(&TestPki::new())).unwrap();
    let e = audit::latest_head(&auditor, &other).await.unwrap_err();
    assert!(matches!(e, AuditError::BadTreeHead(_)), "{e}");
}

/// Stop the hub and start it on an empty data directory with the same
/// receipt key: an operator rewriting history. Returns the new log's size
/// after `ops` ran against it.
async fn rewrite(hub: &mut TestHub, dir: &str, ops: impl AsyncFnOnce(&TestHub)) -> u64 {
    hub.stop().await;
    hub.config.data_dir = hub.data.path().join(dir);
    // On JetStream the state is the shared log, not the directory: a
    // rewritten history is a fresh log.
    hub.config.store.prefix = dir.to_string();
    hub.restart().await;
    ops(&*hub).await;
    let v = verifier(hub);
    audit::latest_head(&auditor(hub).await, &v).await.unwrap().tree_size
}

#[tokio::test]
async fn watch_detects_a_rewritten_history() {
    let mut hub = TestHub::start().await;
    let seen = {
        let p = scenario(&hub).await;
        p.g22.send(sign(&p.g22, header(&[H29], "w/1"), b"1")).await.unwrap();
        audit::latest_head(&auditor(&hub).await, &verifier(&hub)).await.unwrap()
    };
    let m = seen.tree_size;
    let v = verifier(&hub);
    let check = async |hub: &TestHub| audit::check_consistency(&auditor(hub).await, &v, &seen).await;

    // A longer, different history, signed with the same key: every head
    // verifies, but no consistency proof links it to what was seen.
    let n = rewrite(&mut hub, "rewritten-longer", async |hub| {
        let p = scenario(hub).await;
        for i in 0..4 {
            p.h29
                .send(sign(&p.h29, header(&[G22], &format!("x/{i}")), b"x"))
                .await
                .unwrap();
        }
    })
    .await;
    assert!(n > m, "{n} > {m}");
    let e = check(&hub).await.unwrap_err();
    assert!(matches!(e, AuditError::Inconsistent(_)), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.starts_with(&format!(
            "tree head of size {n} is not consistent with the tree head of size {m} seen at "
        )),
        "{msg}"
    );
    assert!(msg.contains("history rewritten"), "{msg}");

    // The same number of receipts, one document id changed: same size,
    // another root.
    let n = rewrite(&mut hub, "rewritten-same-size", async |hub| {
        let g22 = hub.agency(G22).await;
        let h26 = hub.agency(H26).await;
        hub.agency(H29).await;
        g22.send(sign(&g22, header(&[H26, H29], DOC_A), b"a")).await.unwrap();
        g22.send(sign(&g22, header(&[H26], "000.00.00.G22,2026/11/23,99/VPCP"), b"b"))
            .await
            .unwrap();
        h26.send(sign(&h26, header(&[H29], DOC_C), b"c")).await.unwrap();
        assert_eq!(drain(&h26, 4).await.len(), 2);
        h26.report_status(G22, DOC_A, StatusCode::Registered as i32, "vào sổ", None)
            .await
            .unwrap();
        g22.send(sign(&g22, header(&[H29], "w/1"), b"1")).await.unwrap();
    })
    .await;
    assert_eq!(n, m);
    let msg = check(&hub).await.unwrap_err().to_string();
    assert!(
        msg.starts_with(&format!(
            "tree head of size {m} is not consistent with the tree head of size {m}"
        )),
        "{msg}"
    );
    assert!(msg.contains("same size, different root"), "{msg}");

    // A shorter history.
    let n = rewrite(&mut hub, "rewritten-shorter", async |hub| {
        hub.agency(G22).await;
    })
    .await;
    assert!(n < m);
    let msg = check(&hub).await.unwrap_err().to_string();
    assert!(
        msg.contains(&format!("the log shrank from {m} to {n}: history rewritten")),
        "{msg}"
    );
}
