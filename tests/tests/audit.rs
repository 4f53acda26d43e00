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
    // 01 first (truc_core::status_rules), then 03.
    h26.report_status(G22, DOC_A, StatusCode::Arrived as i32, "", None)
        .await
        .unwrap();
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
        AuditError::Rpc(e) => e.code().expect("a gRPC refusal"),
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

    // One document, exported by a recipient: accepted, delivered, arrived
    // (01) and registered (03).
    let doc = audit::export(&p.h26, &AuditQuery::document(G22, DOC_A), None)
        .await
        .unwrap();
    let events: Vec<&str> = doc.receipts.iter().map(|r| r.event.as_str()).collect();
    assert_eq!(events, ["ACCEPTED", "DELIVERED", "STATUS_REPORTED", "STATUS_REPORTED"]);
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

    // Another version of the format: refused, saying so.
    let e = err(&tampered(&export, |e| e.format = "truc-audit-export/2".into()));
    assert!(e.to_string().contains("a version this truc does not know"), "{e}");
    // The query is not signed and says so; editing it changes nothing.
    audit::verify(&tampered(&export, |e| e.query = AuditQuery::agency(H29)), &key).unwrap();
}

/// An export whose receipt at `position` was edited by `f` fails verify
/// naming that receipt (position and index) and `field`.
fn assert_edit_fails(
    export: &AuditExport,
    key: &str,
    position: usize,
    field: &str,
    f: impl FnOnce(&mut audit::ExportReceipt),
) -> String {
    let index = export.receipts[position].index;
    let e = audit::verify(&tampered(export, |e| f(&mut e.receipts[position])), key).unwrap_err();
    match &e {
        VerifyError::Receipt {
            position: p, index: i, ..
        } => assert_eq!((*p, *i), (position + 1, index), "{e}"),
        other => panic!("{field}: {other:?}"),
    }
    let msg = e.to_string();
    assert!(
        msg.starts_with(&format!("receipt #{} (index {index}", position + 1)),
        "{msg}"
    );
    assert!(msg.contains(&format!("its {field} is written as ")), "{msg}");
    assert!(msg.contains("but the signed receipt bytes say"), "{msg}");
    msg
}

#[tokio::test]
async fn edited_words_in_an_export_fail_naming_the_receipt_and_the_field() {
    let hub = TestHub::start().await;
    scenario(&hub).await;
    let key = hub_key(&hub.pki);
    let export = audit::export(&auditor(&hub).await, &AuditQuery::all(), None)
        .await
        .unwrap();
    audit::verify(&export.to_json(), &key).unwrap();
    let accepted_b = export
        .receipts
        .iter()
        .position(|r| r.document_id == DOC_B && r.event == "ACCEPTED")
        .unwrap();
    let registered = export
        .receipts
        .iter()
        .position(|r| r.event == "STATUS_REPORTED")
        .unwrap();

    // An edited actor: someone else seems to have sent B.
    let msg = assert_edit_fails(&export, &key, accepted_b, "actor", |r| {
        r.actor = format!("urn:truc:agency:{H29}");
    });
    assert!(
        msg.contains(&format!("{:?}", format!("urn:truc:agency:{H29}")))
            && msg.contains(&format!("{:?}", format!("urn:truc:agency:{G22}"))),
        "{msg}"
    );
    // An edited event: B seems delivered.
    let msg = assert_edit_fails(&export, &key, accepted_b, "event", |r| r.event = "DELIVERED".into());
    assert!(msg.contains("\"DELIVERED\"") && msg.contains("\"ACCEPTED\""), "{msg}");
    // The label names the receipt by its signed words, not the edited ones.
    assert!(msg.contains(&format!("ACCEPTED of {DOC_B:?}")), "{msg}");
    // Every other readable field, and a field left out (it counts as empty).
    assert_edit_fails(&export, &key, accepted_b, "document_id", |r| r.document_id = "x".into());
    assert_edit_fails(&export, &key, accepted_b, "from", |r| r.from = H26.into());
    assert_edit_fails(&export, &key, accepted_b, "time_unix_ms", |r| r.time_unix_ms += 1);
    assert_edit_fails(&export, &key, accepted_b, "time", |r| {
        r.time = "2001-01-01T00:00:00.000Z".into()
    });
    assert_edit_fails(&export, &key, accepted_b, "description", |r| r.description.clear());
    assert_edit_fails(&export, &key, registered, "status_code", |r| {
        r.status_code = "02 REFUSED".into()
    });
    assert_edit_fails(&export, &key, registered, "recipient", |r| r.recipient = H29.into());
    assert_edit_fails(&export, &key, registered, "description", |r| {
        r.description = "từ chối".into()
    });
    assert_edit_fails(&export, &key, registered, "actor", |r| r.actor.clear());

    // A field the format does not define is refused, not shown unchecked.
    let mut v: serde_json::Value = serde_json::from_str(&export.to_json()).unwrap();
    v["receipts"][accepted_b]["note"] = "revoked by the minister".into();
    let e = audit::verify(&v.to_string(), &key).unwrap_err();
    assert!(matches!(e, VerifyError::Format(_)), "{e:?}");
    assert!(e.to_string().contains("unknown field `note`"), "{e}");
}

/// The few JSON Schema keywords docs/audit-export.schema.json uses: `type`,
/// `const`, `required`, `properties`, `additionalProperties: false`,
/// `items`, `minimum`, `pattern` (only hex) and `$ref` into `$defs`.
fn check_schema(schema: &serde_json::Value, root: &serde_json::Value, v: &serde_json::Value, at: &str) {
    use serde_json::Value;
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.strip_prefix("#/$defs/").expect("local $ref");
        return check_schema(&root["$defs"][name], root, v, at);
    }
    if let Some(c) = schema.get("const") {
        assert_eq!(v, c, "{at}");
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("object") => assert!(v.is_object(), "{at} is not an object"),
        Some("array") => assert!(v.is_array(), "{at} is not an array"),
        Some("string") => assert!(v.is_string(), "{at} is not a string"),
        Some("integer") => assert!(v.is_i64() || v.is_u64(), "{at} is not an integer"),
        Some(t) => panic!("the checker does not know type {t}"),
        None => {}
    }
    if let Some(min) = schema.get("minimum").and_then(Value::as_i64) {
        assert!(v.as_i64().is_none_or(|n| n >= min), "{at} < {min}");
    }
    if let Some(p) = schema.get("pattern").and_then(Value::as_str) {
        assert_eq!(p, "^([0-9a-fA-F]{2})*$", "the checker knows only the hex pattern");
        let s = v.as_str().unwrap();
        assert!(
            s.len() % 2 == 0 && s.bytes().all(|b| b.is_ascii_hexdigit()),
            "{at} is not hex"
        );
    }
    for name in schema.get("required").and_then(Value::as_array).into_iter().flatten() {
        let name = name.as_str().unwrap();
        assert!(v.get(name).is_some(), "{at} lacks the required {name}");
    }
    if let (Some(props), Some(obj)) = (schema.get("properties").and_then(Value::as_object), v.as_object()) {
        for (k, val) in obj {
            match props.get(k) {
                Some(s) => check_schema(s, root, val, &format!("{at}.{k}")),
                None => assert_ne!(
                    schema.get("additionalProperties"),
                    Some(&Value::Bool(false)),
                    "{at}.{k} is not in the schema"
                ),
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), v.as_array()) {
        for (i, item) in arr.iter().enumerate() {
            check_schema(items, root, item, &format!("{at}[{i}]"));
        }
    }
}

#[tokio::test]
async fn exports_match_the_documented_schema() {
    let hub = TestHub::start().await;
    let p = scenario(&hub).await;
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../../docs/audit-export.schema.json")).expect("the schema is JSON");
    assert_eq!(schema["properties"]["format"]["const"], audit::EXPORT_FORMAT);
    // The whole log (with complete_range) and one agency's (with a query).
    for export in [
        audit::export(&auditor(&hub).await, &AuditQuery::all(), None)
            .await
            .unwrap(),
        audit::export(&p.h26, &AuditQuery::agency(H26), None).await.unwrap(),
    ] {
        let v: serde_json::Value = serde_json::from_str(&export.to_json()).unwrap();
        check_schema(&schema, &schema, &v, "export");
        // Every receipt field the verifier knows is in the schema, and the
        // other way round: the schema is the format.
        let r = serde_json::to_value(audit::ExportReceipt {
            event: "x".into(),
            time: "x".into(),
            actor: "x".into(),
            from: "x".into(),
            document_id: "x".into(),
            recipient: "x".into(),
            status_code: "x".into(),
            description: "x".into(),
            ..Default::default()
        })
        .unwrap();
        let mut written: Vec<&String> = r.as_object().unwrap().keys().collect();
        let mut documented: Vec<&String> = schema["$defs"]["receipt"]["properties"]
            .as_object()
            .unwrap()
            .keys()
            .collect();
        written.sort();
        documented.sort();
        assert_eq!(written, documented);
    }
    // The checker can fail: an export without its tree head does not pass.
    let e = std::panic::catch_unwind(|| {
        check_schema(
            &schema,
            &schema,
            &serde_json::json!({"format": audit::EXPORT_FORMAT, "receipts": []}),
            "x",
        )
    });
    assert!(e.is_err());
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
        h26.report_status(G22, DOC_A, StatusCode::Arrived as i32, "", None)
            .await
            .unwrap();
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

#[tokio::test]
async fn the_hub_lists_the_sizes_that_have_signed_heads() {
    let hub = TestHub::start().await;
    let p = scenario(&hub).await;
    let v = verifier(&hub);
    let auditor = auditor(&hub).await;
    let latest = audit::latest_head(&auditor, &v).await.unwrap().tree_size;

    // Every head, verified, in increasing size, the last one the latest.
    let heads = audit::tree_heads(&auditor, 0, usize::MAX, Some(&v)).await.unwrap();
    let sizes: Vec<u64> = heads.iter().map(|(_, h)| h.tree_size).collect();
    assert!(sizes.windows(2).all(|w| w[0] < w[1]), "{sizes:?}");
    assert_eq!(sizes.last(), Some(&latest));
    // Each listed size is answered by GetTreeHead with the same head; a size
    // not listed is NOT_FOUND.
    for (sth, head) in &heads {
        assert_eq!(&auditor.tree_head(head.tree_size).await.unwrap(), sth);
    }
    for size in (1..=latest).filter(|s| !sizes.contains(s)) {
        let e = auditor.tree_head(size).await.unwrap_err();
        assert_eq!(e.code(), Some(Code::NotFound), "size {size}");
    }
    // Consistency between every pair of consecutive heads verifies.
    for w in heads.windows(2) {
        let (old, new) = (&w[0].1, &w[1].1);
        let proof: Vec<truc_core::merkle::Hash> = auditor
            .consistency_proof(old.tree_size, new.tree_size)
            .await
            .unwrap()
            .iter()
            .map(|h| truc_core::merkle::Hash::try_from(h.as_slice()).unwrap())
            .collect();
        let root = |h: &truc_proto::v1::TreeHead| truc_core::merkle::Hash::try_from(h.root_hash.as_slice()).unwrap();
        truc_core::merkle::verify_consistency(old.tree_size, new.tree_size, &root(old), &root(new), &proof).unwrap();
    }

    // Pages: two at a time give the same list; from_size skips smaller ones.
    let mut paged = Vec::new();
    let mut from = 0;
    loop {
        let page = auditor.list_tree_heads(from, 2).await.unwrap();
        assert!(page.tree_heads.len() <= 2);
        paged.extend(page.tree_heads);
        if page.next_from_size == 0 {
            break;
        }
        from = page.next_from_size;
    }
    assert_eq!(paged, heads.iter().map(|(s, _)| s.clone()).collect::<Vec<_>>());
    let later = audit::tree_heads(&auditor, sizes[1], usize::MAX, Some(&v))
        .await
        .unwrap();
    assert_eq!(later.len(), heads.len() - 1);
    assert!(auditor
        .list_tree_heads(latest + 1, 0)
        .await
        .unwrap()
        .tree_heads
        .is_empty());
    let e = auditor.list_tree_heads(0, 1001).await.unwrap_err();
    assert_eq!(e.code(), Some(Code::InvalidArgument));

    // Agencies may list them too (heads name no one); the sizes grow with
    // the log.
    p.g22.send(sign(&p.g22, header(&[H29], "h/1"), b"1")).await.unwrap();
    let mine = audit::tree_heads(&p.h29, latest + 1, usize::MAX, None).await.unwrap();
    assert_eq!(mine.len(), 1, "one batch since");
}

#[tokio::test]
async fn proven_receipts_carry_their_leaf_index_and_tree_size() {
    let hub = TestHub::start().await;
    let v = verifier(&hub);
    let g22 = hub.agency(G22).await;
    let h26 = hub.agency(H26).await;
    // From Send: the signed index and the size of the batch's head.
    for i in 0..3 {
        let resp = g22
            .send(sign(&g22, header(&[H26], &format!("p/{i}")), b"p"))
            .await
            .unwrap();
        let proven = resp.receipt.unwrap();
        let (r, head) = v.verify_proven_receipt(&proven).unwrap();
        assert_eq!((proven.leaf_index, proven.tree_size), (r.index, head.tree_size));
        assert!(proven.tree_size > 0);
    }
    // From a status notice on the Receive stream.
    for d in drain(&h26, 8).await {
        assert!(d.status.is_none());
    }
    h26.report_status(G22, "p/1", StatusCode::Arrived as i32, "", None)
        .await
        .unwrap();
    let notices = drain(&g22, 4).await;
    let proven = notices[0].status.as_ref().unwrap().receipt.clone().unwrap();
    let (r, head) = v.verify_proven_receipt(&proven).unwrap();
    assert_eq!((proven.leaf_index, proven.tree_size), (r.index, head.tree_size));
    // From ListReceipts: against the page's head.
    let page = auditor(&hub)
        .await
        .list_receipts(AuditQuery::all().request())
        .await
        .unwrap();
    let head = v.verify(page.tree_head.as_ref().unwrap()).unwrap();
    for proven in &page.receipts {
        let r = Receipt::decode(proven.receipt.as_slice()).unwrap();
        assert_eq!((proven.leaf_index, proven.tree_size), (r.index, head.tree_size));
    }
}

#[tokio::test]
async fn an_agency_finds_the_documents_sent_to_it_as_well_as_by_it() {
    let hub = TestHub::start().await;
    let p = scenario(&hub).await;
    let key = hub_key(&hub.pki);

    // The acceptance names its recipients in a field of its own, in header
    // order.
    let doc = audit::export(&p.g22, &AuditQuery::document(G22, DOC_A), None)
        .await
        .unwrap();
    let accepted = decoded(&doc, 0);
    assert_eq!(accepted.recipients, [H26, H29]);

    // H29 has received nothing yet: it still finds the acceptances of A
    // (from G22) and C (from H26), both sent to it, and nothing of B.
    let mine = audit::export(&p.h29, &AuditQuery::agency(H29), None).await.unwrap();
    audit::verify(&mine.to_json(), &key).unwrap();
    let accepted: Vec<(String, String)> = mine
        .receipts
        .iter()
        .filter(|r| r.event == "ACCEPTED")
        .map(|r| (r.from.clone(), r.document_id.clone()))
        .collect();
    assert_eq!(
        accepted,
        [
            (G22.to_string(), DOC_A.to_string()),
            (H26.to_string(), DOC_C.to_string())
        ]
    );
    assert!(mine.receipts.iter().all(|r| r.document_id != DOC_B));
    // H26 finds what it sent (C) and what was sent to it (A, B).
    let h26 = audit::export(&p.h26, &AuditQuery::agency(H26), None).await.unwrap();
    let docs: Vec<&str> = h26
        .receipts
        .iter()
        .filter(|r| r.event == "ACCEPTED")
        .map(|r| r.document_id.as_str())
        .collect();
    assert_eq!(docs, [DOC_A, DOC_B, DOC_C]);
}
