//! The machine against a plain model of the axis's rules, on random
//! command sequences (the way sled tests its tree against a `BTreeMap`).
//!
//! The model is written from the rules as the design states them, in the
//! simplest data structures: a directory of agencies with their states,
//! documents keyed by (sender, document id) with their content, one outbox
//! and one dead-letter queue per agency ordered by priority then arrival,
//! the set of acknowledged deliveries, and a count of receipts. Commands
//! are grouped into batches of one to four (group commit: a command sees
//! the writes of those before it in its batch). After every command the
//! outcomes must agree (success, or the same kind of refusal); after every
//! batch the outboxes, dead letters, queue counts, agency states and the
//! number of receipts must agree.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use prost::Message;
use truc_core::AgencyCode;
use truc_proto::v1::{AgencyState, BusinessType, Priority, SignedDocument};

use super::memory::MemoryStore;
use super::{Command, Outcome};
use crate::keys::{self, tag};
use crate::records::OutboxEntry;
use crate::{ExpireOutcome, NewDocument, StoreError};

const AGENCIES: [&str; 4] = ["000.00.00.G01", "000.00.00.G02", "000.00.00.H03", "000.00.00.H04"];

fn code(i: usize) -> AgencyCode {
    AgencyCode::parse(AGENCIES[i % AGENCIES.len()]).unwrap()
}

/// A command as generated: agencies, documents and copies by small indexes.
#[derive(Debug, Clone)]
enum Step {
    Put(usize),
    Suspend(usize),
    Resume(usize),
    Send {
        from: usize,
        to: Vec<usize>,
        doc: u8,
        content: u8,
        priority: i32,
    },
    /// Ack copies of `agency` picked by index, plus an acknowledged or a
    /// never-delivered id.
    Ack {
        agency: usize,
        picks: Vec<usize>,
        extra: Extra,
    },
    Expire {
        agency: usize,
        pick: usize,
        max_attempts: u32,
    },
    /// Redrive (`purge` false) or purge dead letters: all, or one picked.
    Dead {
        agency: usize,
        pick: Option<usize>,
        purge: bool,
    },
}

#[derive(Debug, Clone, Copy)]
enum Extra {
    None,
    Acked,
    Unknown,
}

fn step() -> impl Strategy<Value = Step> {
    let a = 0..AGENCIES.len();
    prop_oneof![
        2 => a.clone().prop_map(Step::Put),
        1 => a.clone().prop_map(Step::Suspend),
        1 => a.clone().prop_map(Step::Resume),
        6 => (a.clone(), proptest::sample::subsequence((0..AGENCIES.len()).collect::<Vec<_>>(), 1..=3), 0u8..5, 0u8..2, 0i32..5)
            .prop_map(|(from, to, doc, content, priority)| Step::Send { from, to, doc, content, priority }),
        4 => (a.clone(), proptest::collection::vec(0usize..8, 0..3), prop_oneof![Just(Extra::None), Just(Extra::Acked), Just(Extra::Unknown)])
            .prop_map(|(agency, picks, extra)| Step::Ack { agency, picks, extra }),
        3 => (a.clone(), 0usize..8, 1u32..4).prop_map(|(agency, pick, max_attempts)| Step::Expire { agency, pick, max_attempts }),
        2 => (a, proptest::option::of(0usize..4), any::<bool>()).prop_map(|(agency, pick, purge)| Step::Dead { agency, pick, purge }),
    ]
}

/// One copy in the model's queues.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Copy {
    hub_id: u64,
    attempts: u32,
}

/// The rules, plainly.
#[derive(Debug, Default)]
struct Model {
    /// Code → active.
    agencies: BTreeMap<String, bool>,
    /// (sender, document id) → (hub id, content).
    documents: BTreeMap<(String, u8), (u64, u8)>,
    next_hub_id: u64,
    next_seq: u64,
    outbox: BTreeMap<String, BTreeMap<u64, Copy>>,
    dead: BTreeMap<String, BTreeMap<u64, Copy>>,
    acked: BTreeSet<(String, u64)>,
    receipts: u64,
}

/// What the model says a command does: the outcome's kind and value.
#[derive(Debug, PartialEq, Eq)]
enum Said {
    Agency {
        state: i32,
    },
    Sent {
        hub_id: u64,
        duplicate: bool,
        notify: Vec<String>,
    },
    Acked(u32),
    Expired(ExpireOutcome),
    Moved(u64),
    Refused(&'static str),
}

fn refusal(e: &StoreError) -> &'static str {
    match e {
        StoreError::UnknownAgency(_) => "unknown agency",
        StoreError::AgencyInactive { .. } => "inactive",
        StoreError::Conflict { .. } => "conflict",
        StoreError::UnknownDelivery(_) => "unknown delivery",
        StoreError::InvalidArgument(_) => "invalid argument",
        other => panic!("a refusal the model does not know: {other:?}"),
    }
}

fn heard(r: Result<Outcome, StoreError>) -> Said {
    match r {
        Err(e) => Said::Refused(refusal(&e)),
        Ok(Outcome::Agency(a)) => Said::Agency { state: a.state as i32 },
        Ok(Outcome::Sent(s)) => Said::Sent {
            hub_id: s.hub_id,
            duplicate: s.duplicate,
            notify: s.notify.iter().map(|c| c.to_string()).collect(),
        },
        Ok(Outcome::Acked(n)) => Said::Acked(n),
        Ok(Outcome::Expired(e)) => Said::Expired(e),
        Ok(Outcome::Moved(n)) => Said::Moved(n),
        Ok(other) => panic!("an outcome the model does not expect: {other:?}"),
    }
}

impl Model {
    fn new() -> Self {
        Self {
            next_hub_id: 1,
            ..Self::default()
        }
    }

    fn nth(queue: Option<&BTreeMap<u64, Copy>>, i: usize) -> Option<u64> {
        let q = queue?;
        q.keys().nth(i % q.len().max(1)).copied()
    }

    /// The command for `step` (ids resolved against the model, which
    /// agrees with the machine or the test has failed already), and what
    /// the model says it does.
    fn step(&mut self, step: &Step) -> (Command, Said) {
        let actor = "urn:truc:operator:model".to_string();
        match step {
            Step::Put(i) => {
                let c = code(*i).to_string();
                let active = *self.agencies.entry(c.clone()).or_insert(true);
                self.receipts += 1;
                let state = if active {
                    AgencyState::Active
                } else {
                    AgencyState::Suspended
                } as i32;
                (
                    Command::PutAgency {
                        code: code(*i),
                        name: format!("agency {i}"),
                        actor,
                    },
                    Said::Agency { state },
                )
            }
            Step::Suspend(i) | Step::Resume(i) => {
                let active = matches!(step, Step::Resume(_));
                let state = if active {
                    AgencyState::Active
                } else {
                    AgencyState::Suspended
                };
                let said = match self.agencies.get_mut(&code(*i).to_string()) {
                    None => Said::Refused("unknown agency"),
                    Some(a) => {
                        *a = active;
                        self.receipts += 1;
                        Said::Agency { state: state as i32 }
                    }
                };
                let cmd = Command::SetState {
                    code: code(*i),
                    state,
                    reason: "model".into(),
                    actor,
                };
                (cmd, said)
            }
            Step::Send {
                from,
                to,
                doc,
                content,
                priority,
            } => {
                let from_code = code(*from);
                let to: Vec<AgencyCode> = to.iter().map(|&t| code(t)).collect();
                let cmd = Command::Send(Box::new(new_document(&from_code, &to, *doc, *content, *priority)));
                let key = (from_code.to_string(), *doc);
                if let Some(&(hub_id, c)) = self.documents.get(&key) {
                    let said = if c == *content {
                        Said::Sent {
                            hub_id,
                            duplicate: true,
                            notify: Vec::new(),
                        }
                    } else {
                        Said::Refused("conflict")
                    };
                    return (cmd, said);
                }
                let check = |code: &AgencyCode| match self.agencies.get(code.as_str()) {
                    None => Err(Said::Refused("unknown agency")),
                    Some(false) => Err(Said::Refused("inactive")),
                    Some(true) => Ok(()),
                };
                if let Err(said) = std::iter::once(&from_code).chain(&to).try_for_each(check) {
                    return (cmd, said);
                }
                let hub_id = self.next_hub_id;
                self.next_hub_id += 1;
                self.documents.insert(key, (hub_id, *content));
                for t in &to {
                    let id = keys::delivery_id(*priority, self.next_seq);
                    self.next_seq += 1;
                    self.outbox
                        .entry(t.to_string())
                        .or_default()
                        .insert(id, Copy { hub_id, attempts: 0 });
                }
                self.receipts += 1;
                let said = Said::Sent {
                    hub_id,
                    duplicate: false,
                    notify: to.iter().map(|c| c.to_string()).collect(),
                };
                (cmd, said)
            }
            Step::Ack { agency, picks, extra } => {
                let a = code(*agency).to_string();
                let mut ids: Vec<u64> = picks
                    .iter()
                    .filter_map(|&i| Self::nth(self.outbox.get(&a), i))
                    .collect();
                match extra {
                    Extra::None => {}
                    Extra::Acked => {
                        if let Some((_, id)) = self.acked.iter().find(|(x, _)| *x == a) {
                            ids.push(*id);
                        }
                    }
                    Extra::Unknown => ids.push(keys::delivery_id(2, 1 << 40)),
                }
                let cmd = Command::Ack {
                    agency: code(*agency),
                    ids: ids.clone(),
                    actor,
                };
                let known = |id: &u64| {
                    self.outbox.get(&a).is_some_and(|q| q.contains_key(id)) || self.acked.contains(&(a.clone(), *id))
                };
                if !ids.iter().all(known) {
                    return (cmd, Said::Refused("unknown delivery"));
                }
                let mut n = 0;
                for id in ids {
                    if let Some(q) = self.outbox.get_mut(&a) {
                        if q.remove(&id).is_some() {
                            self.acked.insert((a.clone(), id));
                            self.receipts += 1;
                            n += 1;
                        }
                    }
                }
                (cmd, Said::Acked(n))
            }
            Step::Expire {
                agency,
                pick,
                max_attempts,
            } => {
                let a = code(*agency).to_string();
                let id = Self::nth(self.outbox.get(&a), *pick).unwrap_or(keys::delivery_id(0, 1 << 41));
                let cmd = Command::Expire {
                    agency: code(*agency),
                    id,
                    max_attempts: *max_attempts,
                };
                let Some(mut copy) = self.outbox.get_mut(&a).and_then(|q| q.remove(&id)) else {
                    return (cmd, Said::Expired(ExpireOutcome::Gone));
                };
                copy.attempts += 1;
                let attempts = copy.attempts;
                self.receipts += 1;
                let said = if attempts >= *max_attempts {
                    self.dead.entry(a).or_default().insert(id, copy);
                    ExpireOutcome::DeadLettered { attempts }
                } else {
                    self.outbox.entry(a).or_default().insert(id, copy);
                    ExpireOutcome::Requeued { attempts }
                };
                (cmd, Said::Expired(said))
            }
            Step::Dead { agency, pick, purge } => {
                let a = code(*agency).to_string();
                let ids: Vec<u64> = match pick {
                    None => Vec::new(),
                    Some(i) => vec![Self::nth(self.dead.get(&a), *i).unwrap_or(keys::delivery_id(1, 1 << 42))],
                };
                let cmd = if *purge {
                    Command::Purge {
                        agency: code(*agency),
                        ids: ids.clone(),
                        actor,
                    }
                } else {
                    Command::Redrive {
                        agency: code(*agency),
                        ids: ids.clone(),
                        actor,
                    }
                };
                let dead = self.dead.entry(a.clone()).or_default();
                let chosen: Vec<u64> = if ids.is_empty() {
                    dead.keys().copied().collect()
                } else {
                    ids
                };
                if !chosen.iter().all(|id| dead.contains_key(id)) {
                    return (cmd, Said::Refused("invalid argument"));
                }
                for id in &chosen {
                    let copy = dead.remove(id).expect("checked");
                    if !*purge {
                        self.outbox
                            .entry(a.clone())
                            .or_default()
                            .insert(*id, Copy { attempts: 0, ..copy });
                    }
                }
                self.receipts += chosen.len() as u64;
                (cmd, Said::Moved(chosen.len() as u64))
            }
        }
    }
}

pub(super) fn new_document(from: &AgencyCode, to: &[AgencyCode], doc: u8, content: u8, priority: i32) -> NewDocument {
    let payload = vec![content; 16 + doc as usize];
    let header = format!("{from} {doc} {content} {priority}").into_bytes();
    NewDocument {
        from: from.clone(),
        document_id: format!("{doc}/QĐ-MODEL"),
        to: to.to_vec(),
        priority: Priority::try_from(priority).unwrap(),
        header_sha256: truc_core::sha256(&header),
        content_sha256: truc_core::sha256(&[doc, content]),
        payload_size: payload.len() as u64,
        payload_sha256: truc_core::sha256(&payload),
        remote: Vec::new(),
        arrived_via: None,
        trace: Vec::new(),
        document: SignedDocument {
            header,
            payload,
            ..Default::default()
        },
        actor: truc_core::Principal::Agency(from.clone()),
        business_type: BusinessType::New,
        reference_document_id: String::new(),
        business_reason: String::new(),
        receiver_changes: Vec::new(),
        replacements: Vec::new(),
        subject: "model".into(),
        delivery_deadline_unix_ms: 0,
        due_date_unix_ms: 0,
        payload_external: false,
    }
}

/// A queue (outbox or dead letters) of the machine, as the model holds it.
fn queue(store: &MemoryStore, t: u8, agency: &str) -> BTreeMap<u64, Copy> {
    store
        .state
        .0
        .range(keys::queue_prefix(t, agency)..)
        .take_while(|(k, _)| k.starts_with(&keys::queue_prefix(t, agency)))
        .map(|(k, v)| {
            let e = OutboxEntry::decode(v.as_slice()).unwrap();
            let copy = Copy {
                hub_id: e.hub_id,
                attempts: e.attempts,
            };
            (keys::queue_item_id(k).unwrap(), copy)
        })
        .collect()
}

fn agree(store: &MemoryStore, model: &Model) -> Result<(), TestCaseError> {
    for a in AGENCIES {
        let outbox = model.outbox.get(a).cloned().unwrap_or_default();
        prop_assert_eq!(&queue(store, tag::OUTBOX, a), &outbox, "outbox of {}", a);
        let dead = model.dead.get(a).cloned().unwrap_or_default();
        prop_assert_eq!(queue(store, tag::DEAD, a), dead, "dead letters of {}", a);
        let counted = store.env.queued.get(a).map_or(0, |q| q.0);
        prop_assert_eq!(counted, outbox.len() as u64, "queue count of {}", a);
        let state = store.env.agencies.get(a).map(|r| r.state);
        let said = model.agencies.get(a).map(|&active| {
            if active {
                AgencyState::Active as i32
            } else {
                AgencyState::Suspended as i32
            }
        });
        prop_assert_eq!(state, said, "state of {}", a);
    }
    prop_assert_eq!(store.meta.tree_size, model.receipts, "receipts");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn the_machine_follows_the_model(
        steps in proptest::collection::vec(step(), 1..60),
        cuts in proptest::collection::vec(1usize..5, 60),
    ) {
        let mut store = MemoryStore::default();
        let mut model = Model::new();
        let mut rest = steps.as_slice();
        let mut cuts = cuts.into_iter();
        while !rest.is_empty() {
            let n = cuts.next().unwrap_or(1).min(rest.len());
            let (batch, after) = rest.split_at(n);
            rest = after;
            let (cmds, said): (Vec<Command>, Vec<Said>) = batch.iter().map(|s| model.step(s)).unzip();
            let outcomes = store.batch(cmds);
            for ((s, got), want) in batch.iter().zip(outcomes).zip(said) {
                prop_assert_eq!(heard(got), want, "after {:?}", s);
            }
            agree(&store, &model)?;
        }
    }
}

/// The comparison can fail: a machine that forgot an acknowledgement (the
/// copy stays queued) is caught.
#[test]
fn a_copy_left_queued_is_caught() {
    let mut store = MemoryStore::default();
    let mut model = Model::new();
    for s in [
        Step::Put(0),
        Step::Put(1),
        Step::Send {
            from: 0,
            to: vec![1],
            doc: 1,
            content: 0,
            priority: 2,
        },
    ] {
        let (cmd, _) = model.step(&s);
        store.batch(vec![cmd]);
    }
    assert!(agree(&store, &model).is_ok());
    // The model acknowledges; the machine is not told.
    let _ = model.step(&Step::Ack {
        agency: 1,
        picks: vec![0],
        extra: Extra::None,
    });
    assert!(agree(&store, &model).is_err());
}
