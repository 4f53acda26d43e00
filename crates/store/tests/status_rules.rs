//! The status rules (`truc_core::status_rules`) as the store applies them:
//! random sequences of deliveries and statuses from the sender and two
//! recipients, each checked against a small model written out here, and a
//! refused status leaves the document's track as it was.

mod support;

use std::collections::HashSet;
use std::sync::Arc;

use proptest::prelude::*;
use truc_core::tree_head::TreeHeadSigner;
use truc_core::AgencyCode;
use truc_proto::v1::{TrackResponse, TransportState};
use truc_store::{NewDocument, SledStore, SledStoreOptions, StatusReport, Store, StoreError};

const SENDER: &str = "G22";
const RECIPIENTS: [&str; 2] = ["H26", "H29"];
const ID: &str = "d";

fn code(s: &str) -> AgencyCode {
    AgencyCode::parse(s).unwrap()
}

fn document() -> NewDocument {
    support::new_document(
        SENDER,
        ID,
        &RECIPIENTS,
        truc_proto::v1::Priority::Normal,
        b"header".to_vec(),
        b"x",
    )
}

/// What happens next: a recipient picks up and acknowledges what waits for
/// it, or someone (0 = the sender, 1 and 2 the recipients) reports a code.
#[derive(Debug, Clone)]
enum Step {
    Deliver(usize),
    Report(usize, i32),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        1 => (0..2usize).prop_map(Step::Deliver),
        6 => (
            prop::sample::select(vec![0usize, 1, 1, 1, 2, 2, 2]),
            prop::sample::select(vec![1, 2, 3, 4, 5, 6, 13, 15, 16])
        )
            .prop_map(|(w, c)| Step::Report(w, c)),
    ]
}

/// The model of one recipient's copy.
#[derive(Debug, Clone, Copy, Default)]
struct Copy {
    delivered: bool,
    withdrawn: bool,
    /// Latest of 01–06 (0 = none).
    progress: i32,
    /// A 13 waits for 15/16.
    open: bool,
}

#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Ok,
    NotEntitled,
    Precondition,
}

/// The rules, written plainly (not from the table).
fn model(copies: &mut [Copy; 2], who: usize, status: i32) -> Verdict {
    if status == 13 {
        if who != 0 {
            return Verdict::NotEntitled;
        }
        if copies.iter().all(|c| c.withdrawn) {
            return Verdict::Precondition;
        }
        for c in copies.iter_mut().filter(|c| !c.withdrawn) {
            if c.delivered {
                c.open = true;
            } else {
                c.withdrawn = true;
            }
        }
        return Verdict::Ok;
    }
    if who == 0 {
        return Verdict::NotEntitled;
    }
    let c = &mut copies[who - 1];
    if !c.delivered {
        return Verdict::Precondition;
    }
    let ok = match status {
        15 | 16 => c.open,
        1 => c.progress == 0,
        2 | 3 => c.progress == 1,
        4..=6 => matches!(c.progress, 3..=5),
        _ => unreachable!(),
    };
    if !ok {
        return Verdict::Precondition;
    }
    match status {
        15 | 16 => c.open = false,
        p => c.progress = p,
    }
    Verdict::Ok
}

fn who(i: usize) -> &'static str {
    if i == 0 {
        SENDER
    } else {
        RECIPIENTS[i - 1]
    }
}

async fn run(steps: Vec<Step>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let key = {
        let rng = ring::rand::SystemRandom::new();
        ring::signature::Ed25519KeyPair::generate_pkcs8(&rng)
            .unwrap()
            .as_ref()
            .to_vec()
    };
    let signer = TreeHeadSigner::from_pkcs8(&key).unwrap();
    let path = dir.path().to_path_buf();
    let s: Arc<SledStore> =
        tokio::task::spawn_blocking(move || SledStore::open(&SledStoreOptions::new(path), signer).unwrap())
            .await
            .unwrap();
    let op = "urn:truc:operator:t".to_string();
    for c in [SENDER, RECIPIENTS[0], RECIPIENTS[1]] {
        s.put_agency(code(c), c.into(), op.clone()).await.unwrap();
    }
    s.send(document()).await.unwrap();
    let track = |s: Arc<SledStore>| async move {
        let t: TrackResponse = s.track(code(SENDER), ID.into()).await.unwrap().unwrap();
        t.recipients
            .iter()
            .map(|r| (r.agency.clone(), r.state, r.status, r.status_description.clone()))
            .collect::<Vec<_>>()
    };
    let mut copies = [Copy::default(); 2];
    for step in steps {
        match step {
            Step::Deliver(r) => {
                let agency = code(RECIPIENTS[r]);
                let items = s.fetch(agency.clone(), HashSet::new(), 100).await.unwrap();
                let ids: Vec<u64> = items.iter().map(|i| i.delivery_id).collect();
                if items.iter().any(|i| i.document.is_some()) {
                    copies[r].delivered = true;
                }
                if !ids.is_empty() {
                    s.ack(agency, ids, op.clone()).await.unwrap();
                }
            }
            Step::Report(w, status) => {
                let before = track(s.clone()).await;
                let want = model(&mut copies, w, status);
                let got = s
                    .report_status(StatusReport {
                        reporter: code(who(w)),
                        actor: truc_core::Principal::parse_uri(&format!("urn:truc:agency:{}", who(w))).unwrap(),
                        document_from: code(SENDER),
                        document_id: ID.into(),
                        code: truc_proto::v1::StatusCode::try_from(status).unwrap(),
                        description: format!("step {status}"),
                        staff: None,
                    })
                    .await;
                let verdict = match &got {
                    Ok(_) => Verdict::Ok,
                    Err(StoreError::NotEntitled(_)) => Verdict::NotEntitled,
                    Err(StoreError::Precondition(_)) => Verdict::Precondition,
                    Err(e) => return Err(TestCaseError::fail(format!("{e:?}"))),
                };
                prop_assert_eq!(&verdict, &want, "{} reports {:02}: {:?}", who(w), status, got);
                let after = track(s.clone()).await;
                if verdict == Verdict::Ok {
                    if w > 0 {
                        prop_assert_eq!(after[w - 1].2, status);
                    }
                } else {
                    prop_assert_eq!(&after, &before, "a refused status changed the track");
                    if let (Err(StoreError::Precondition(m)), true) = (&got, w > 0) {
                        // The refusal names the copy's state.
                        let state = before[w - 1].1;
                        let named = if state == TransportState::Delivered as i32 {
                            "delivered"
                        } else if state == TransportState::Withdrawn as i32 {
                            "withdrawn"
                        } else {
                            "queued"
                        };
                        prop_assert!(m.contains(named), "{m:?} should name {named:?}");
                    }
                }
            }
        }
    }
    // The model's copies agree with the store's transport states.
    let t = track(s.clone()).await;
    for (i, c) in copies.iter().enumerate() {
        let want = if c.withdrawn {
            TransportState::Withdrawn
        } else if c.delivered {
            TransportState::Delivered
        } else {
            TransportState::Queued
        };
        prop_assert_eq!(t[i].1, want as i32, "{}", RECIPIENTS[i]);
    }
    tokio::task::spawn_blocking(move || s.close()).await.unwrap();
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn random_status_sequences_follow_the_model(steps in prop::collection::vec(step(), 1..40)) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(run(steps))?;
    }
}
