//! A store written by an earlier release opens and keeps working.
//!
//! `fixtures/store-6518a44.tar.gz` was written by the store of commit
//! 6518a44 (the release before the state machine and the commit-log trait)
//! with the program kept beside it (`fixtures/store-6518a44.rs.txt`, run as
//! an example of that commit's `truc-store`): three agencies, three
//! documents (one delivered and confirmed with 03, the others queued), its
//! receipts, signed tree heads, the signed-head file, the body log, and the
//! key that signed them. This release must read every part of it, prove
//! every receipt under the old heads, deliver what was queued, and extend
//! the same log.

mod support;

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use truc_core::tree_head::TreeHeadSigner;
use truc_core::{merkle, AgencyCode, Principal};
use truc_proto::v1::{Priority, StatusCode};
use truc_store::{NewDocument, ReceiptFilter, ReceiptQuery, SledStore, SledStoreOptions, Store};

fn code(s: &str) -> AgencyCode {
    AgencyCode::parse(s).unwrap()
}

fn unpack(to: &Path) {
    let archive = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store-6518a44.tar.gz");
    let status = std::process::Command::new("tar")
        .arg("xzf")
        .arg(&archive)
        .arg("-C")
        .arg(to)
        .status()
        .expect("tar runs");
    assert!(status.success(), "cannot unpack {}", archive.display());
}

async fn open(dir: &Path, signer: TreeHeadSigner) -> Arc<SledStore> {
    let opts = SledStoreOptions::new(dir.join("store"));
    tokio::task::spawn_blocking(move || SledStore::open(&opts, signer).unwrap())
        .await
        .unwrap()
}

fn new_doc(from: &str, id: &str, to: &[&str], payload: &[u8]) -> NewDocument {
    let header = format!("{from}|{id}|new").into_bytes();
    support::new_document(from, id, to, Priority::Normal, header, payload)
}

/// Every receipt `filter` selects, read in pages of `page_size`.
async fn receipts(s: &Arc<SledStore>, filter: ReceiptFilter, page_size: usize) -> Vec<truc_proto::v1::ProvenReceipt> {
    let mut out = Vec::new();
    let mut page_token = 0;
    loop {
        let page = s
            .receipts(ReceiptQuery {
                filter: filter.clone(),
                since_unix_ms: 0,
                until_unix_ms: 0,
                page_token,
                page_size,
                visible_to: None,
            })
            .await
            .unwrap();
        assert!(page.receipts.len() <= page_size);
        out.extend(page.receipts);
        if page.next_page_token == 0 {
            return out;
        }
        page_token = page.next_page_token;
    }
}

/// Whether a receipt names `agency` as its sender, recipient, actor, or
/// (ACCEPTED) one of its recipients.
fn names_agency(r: &truc_proto::v1::ProvenReceipt, agency: &str) -> bool {
    let r = <truc_proto::v1::Receipt as prost::Message>::decode(r.receipt.as_slice()).unwrap();
    let actor = Principal::parse_uri(&r.actor).ok();
    r.from == agency
        || r.recipient == agency
        || actor
            .as_ref()
            .and_then(|p| p.agency())
            .is_some_and(|a| a.as_str() == agency)
        || r.recipients.iter().any(|a| a == agency)
}

#[tokio::test]
async fn a_store_written_by_release_6518a44_opens_proves_delivers_and_grows() {
    let dir = tempfile::tempdir().unwrap();
    unpack(dir.path());
    let key = std::fs::read(dir.path().join("receipts.pk8")).unwrap();
    let verifier = TreeHeadSigner::from_pkcs8(&key).unwrap().verifier();
    let s = open(dir.path(), TreeHeadSigner::from_pkcs8(&key).unwrap()).await;

    // The directory, with its Vietnamese names.
    let names: Vec<(String, String)> = s.agencies().into_iter().map(|a| (a.code, a.name)).collect();
    assert_eq!(
        names,
        [
            ("000.00.00.G01", "Bộ A"),
            ("000.00.00.G02", "Bộ B"),
            ("000.00.00.H03", "Tỉnh C")
        ]
        .map(|(c, n)| (c.to_string(), n.to_string()))
    );

    // Every receipt proves under the head the old release signed.
    let old_head = verifier.verify(&s.tree_head(0).await.unwrap().unwrap()).unwrap();
    let page = s
        .receipts(ReceiptQuery {
            filter: ReceiptFilter::All,
            since_unix_ms: 0,
            until_unix_ms: 0,
            page_token: 0,
            page_size: 100,
            visible_to: None,
        })
        .await
        .unwrap();
    assert_eq!(page.receipts.len() as u64, old_head.tree_size);
    for r in &page.receipts {
        let mut r = r.clone();
        r.tree_head = Some(page.tree_head.clone());
        verifier.verify_proven_receipt(&r).unwrap();
    }

    // What was queued is delivered, bytes intact from the old body log.
    let g02 = s.fetch(code("000.00.00.G02"), HashSet::new(), 10).await.unwrap();
    assert_eq!(g02.len(), 1);
    assert_eq!(g02[0].document.as_ref().unwrap().payload, vec![7u8; 4096]);
    let h03 = s.fetch(code("000.00.00.H03"), HashSet::new(), 10).await.unwrap();
    assert_eq!(h03.len(), 1);
    assert_eq!(h03[0].document.as_ref().unwrap().payload, b"first");
    // G01 has H03's document and the notice of G02's 03.
    let g01 = s.fetch(code("000.00.00.G01"), HashSet::new(), 10).await.unwrap();
    assert_eq!(g01.len(), 2);
    assert_eq!(g01.iter().filter(|i| i.status.is_some()).count(), 1);
    let track = s
        .track(code("000.00.00.G01"), "1/QĐ-A".into())
        .await
        .unwrap()
        .expect("tracked");
    let g02_row = track
        .recipients
        .iter()
        .find(|r| r.agency == "000.00.00.G02")
        .expect("G02's row");
    assert_eq!(g02_row.status, StatusCode::Arrived as i32);

    // The deadline index is built at open for copies the old release
    // stored: none past at the epoch, every unconfirmed copy past at the
    // end of time (G02: its delivered copy with only 01, and the queued
    // one; H03 and G01: one each).
    let later = i64::MAX / 2;
    for (agency, unconfirmed) in [("000.00.00.G02", 2), ("000.00.00.H03", 1), ("000.00.00.G01", 1)] {
        let at = |now| s.queue_stats(code(agency), now);
        assert_eq!(at(0).await.unwrap().past_confirmation, 0, "{agency}");
        assert_eq!(at(later).await.unwrap().past_confirmation, unconfirmed, "{agency}");
        assert_eq!(
            at(later).await.unwrap().past_due,
            0,
            "{agency}: no DueDate in the old documents"
        );
    }

    // Acknowledged, resent (a duplicate), and a new document: the same log
    // grows, consistent with the old head.
    let g02_actor = Principal::Agency(code("000.00.00.G02")).uri();
    assert_eq!(
        s.ack(code("000.00.00.G02"), vec![g02[0].delivery_id], g02_actor.clone())
            .await
            .unwrap(),
        1
    );
    let again = s
        .send({
            let mut d = new_doc("000.00.00.G01", "2/QĐ-A", &["000.00.00.G02"], &[7u8; 4096]);
            // As the old release stored it.
            let header = "000.00.00.G01|2/QĐ-A|4".as_bytes().to_vec();
            d.header_sha256 = truc_core::sha256(&header);
            d.content_sha256 = truc_core::sha256(&header);
            d.document.header = header;
            d.priority = Priority::Express;
            d
        })
        .await
        .unwrap();
    assert!(again.duplicate, "the old document's idempotency key is read");
    let sent = s
        .send(new_doc("000.00.00.H03", "4/CV-C", &["000.00.00.G02"], b"new"))
        .await
        .unwrap();
    let (_, new_head) = verifier.verify_proven_receipt(&sent.receipt).unwrap();
    assert!(new_head.tree_size > old_head.tree_size);
    let proof = s
        .consistency_proof(old_head.tree_size, new_head.tree_size)
        .await
        .unwrap();
    merkle::verify_consistency(
        old_head.tree_size,
        new_head.tree_size,
        &old_head.root_hash.as_slice().try_into().unwrap(),
        &new_head.root_hash.as_slice().try_into().unwrap(),
        &proof,
    )
    .unwrap();

    tokio::task::spawn_blocking(move || s.close()).await.unwrap();

    // And it opens again.
    let s = open(dir.path(), TreeHeadSigner::from_pkcs8(&key).unwrap()).await;
    let head = verifier.verify(&s.tree_head(0).await.unwrap().unwrap()).unwrap();
    assert_eq!(head.tree_size, new_head.tree_size);

    // Receipts by agency: the old release indexed each receipt under its
    // own key, this one a batch's receipts under one key per agency; a
    // query pages through both alike. Five more documents to G02, acked in
    // one call (one batch of five receipts naming G02 and H03).
    for n in 0..5 {
        s.send(new_doc(
            "000.00.00.H03",
            &format!("{n}/TB-C"),
            &["000.00.00.G02"],
            b"more",
        ))
        .await
        .unwrap();
    }
    let queued = s.fetch(code("000.00.00.G02"), HashSet::new(), 10).await.unwrap();
    assert_eq!(queued.len(), 6, "the one sent above and the five");
    let ids: Vec<u64> = queued.iter().map(|i| i.delivery_id).collect();
    assert_eq!(s.ack(code("000.00.00.G02"), ids, g02_actor).await.unwrap(), 6);
    let all = receipts(&s, ReceiptFilter::All, 1000).await;
    for agency in ["000.00.00.G01", "000.00.00.G02", "000.00.00.H03"] {
        let expected: Vec<u64> = all
            .iter()
            .filter(|r| names_agency(r, agency))
            .map(|r| r.leaf_index)
            .collect();
        assert!(expected.len() >= 3, "{agency}: {expected:?}");
        for page_size in [1, 2, 3, 1000] {
            let got: Vec<u64> = receipts(&s, ReceiptFilter::Agency(code(agency)), page_size)
                .await
                .iter()
                .map(|r| r.leaf_index)
                .collect();
            assert_eq!(got, expected, "{agency}, pages of {page_size}");
        }
    }
    tokio::task::spawn_blocking(move || s.close()).await.unwrap();
}
