//! What the clients know, and the checks against it.
//!
//! * A document is **attempted** once a Send for it was started, and
//!   **accepted** once a Send returned OK, with the acceptance the hub
//!   answered (hub document id, acceptance time). Sends that failed (in
//!   flight at a kill) are retried with the same signed bytes after the
//!   restart, so their fate is settled by the hub's idempotency key.
//! * A (document, recipient) **pair** records every delivery of it (with
//!   the acceptance the delivery names and when the hub leased it), whether
//!   an Ack naming it was sent (`ack_attempted`), and when the first Ack
//!   naming it returned OK.
//!
//! The checks:
//!
//! * **lost**: after a restart, an accepted pair whose Ack was never even
//!   sent must still be in the recipient's outbox (or dead-letter queue);
//!   at the end, after a full drain, every accepted pair must have been
//!   delivered at least once under the acceptance the sender was given.
//! * **dup_after_ack**: a delivery of a pair that the hub leased (the
//!   delivery's `lease_expires_unix_ms` minus the lease) after an Ack
//!   naming the pair had returned OK. A redelivery leased *before* the Ack
//!   returned (its lease ran out while the Ack was on its way) can arrive
//!   after the Ack returned; it is counted apart (`late`) and is not a
//!   violation.
//! * **phantom**: a delivery (or a queued copy) of a document never sent,
//!   sent to another agency, whose signature does not verify, or that names
//!   an acceptance other than the one the sender was given, leased after
//!   the sender was given it.
//!
//! A pair whose recipient is on another hub than its sender (federation)
//! is **relayed**: the recipient's hub accepts its own copy, under a hub
//! document id of its own, so its deliveries are not compared with the
//! sender's acceptance. Instead every delivery and queued copy of it must
//! name one acceptance (the recipient hub's idempotency on the origin's
//! document: a forward retried after a crash is a duplicate, never a
//! second copy; a second one is a phantom), and it is lost when, after
//! the final drain, it was never delivered at all, or when, after a
//! restart, a copy delivered and never acknowledged is no longer queued
//! under the acceptance it was delivered with.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use truc_client::audit::WatchState;

/// Sender index, sequence number.
pub(crate) type DocKey = (u32, u64);
/// Document, recipient index.
pub(crate) type PairKey = (DocKey, u32);

/// Most messages kept per kind (the counts are always complete).
const KEEP: usize = 20;

/// The hub's acceptance of a document, as a Send answered it and as every
/// delivery names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Acceptance {
    pub(crate) hub_document_id: u64,
    pub(crate) accepted_at_unix_ms: i64,
}

#[derive(Debug)]
pub(crate) struct Doc {
    /// Recipient indexes.
    pub(crate) to: Vec<u32>,
    /// Those of `to` on another hub than the sender's.
    pub(crate) relayed: Vec<u32>,
    /// Send returned OK: the acceptance and when the sender saw it (Unix ms).
    pub(crate) accepted: Option<(Acceptance, i64)>,
    /// The ACCEPTED receipt handed to the sender: leaf index and SHA-256 of
    /// its bytes.
    pub(crate) receipt: Option<(u64, [u8; 32])>,
}

#[derive(Debug, Clone, Copy)]
struct Seen {
    acceptance: Acceptance,
    leased_ms: i64,
}

#[derive(Debug, Default)]
struct Pair {
    deliveries: Vec<Seen>,
    ack_attempted: bool,
    acked_ms: Option<i64>,
}

/// What a Send that returned OK answered.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) acceptance: Acceptance,
    /// When the sender saw it, Unix ms.
    pub(crate) now_ms: i64,
    /// The hub said it had accepted this document before.
    pub(crate) duplicate: bool,
    /// The ACCEPTED receipt's leaf index and SHA-256 of its bytes, when it
    /// checked.
    pub(crate) receipt: Option<(u64, [u8; 32])>,
    /// The receipt's signed tree head, when it checked.
    pub(crate) head: Option<WatchState>,
    /// The hub that answered (an index into the run's hubs).
    pub(crate) hub: usize,
}

/// One delivery, decoded and checked outside the lock.
#[derive(Debug)]
pub(crate) struct Arrival {
    pub(crate) delivery_id: u64,
    pub(crate) previous_attempts: u32,
    pub(crate) acceptance: Acceptance,
    /// When the hub leased it, Unix ms (its lease expiry minus the lease).
    pub(crate) leased_ms: i64,
    pub(crate) received_ms: i64,
    /// `from` and `document_id` of the header, for messages.
    pub(crate) label: String,
    /// The document, when its id is one of ours.
    pub(crate) key: Option<DocKey>,
    /// Why it is not a valid document, if it is not.
    pub(crate) invalid: Option<String>,
}

/// Counters for one cycle's line (differences of the totals).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Counters {
    pub(crate) attempted: u64,
    pub(crate) accepted: u64,
    pub(crate) duplicate_answers: u64,
    pub(crate) send_failures: u64,
    pub(crate) deliveries: u64,
    pub(crate) redeliveries: u64,
    pub(crate) acked: u64,
    pub(crate) ack_failures: u64,
    pub(crate) skipped_acks: u64,
    pub(crate) late: u64,
    pub(crate) unexpected_errors: u64,
}

impl std::ops::Sub for Counters {
    type Output = Counters;
    fn sub(self, o: Counters) -> Counters {
        Counters {
            attempted: self.attempted - o.attempted,
            accepted: self.accepted - o.accepted,
            duplicate_answers: self.duplicate_answers - o.duplicate_answers,
            send_failures: self.send_failures - o.send_failures,
            deliveries: self.deliveries - o.deliveries,
            redeliveries: self.redeliveries - o.redeliveries,
            acked: self.acked - o.acked,
            ack_failures: self.ack_failures - o.ack_failures,
            skipped_acks: self.skipped_acks - o.skipped_acks,
            late: self.late - o.late,
            unexpected_errors: self.unexpected_errors - o.unexpected_errors,
        }
    }
}

/// A kind of finding, counted completely, with the first few messages kept.
#[derive(Debug, Default)]
pub(crate) struct Findings {
    pub(crate) count: u64,
    pub(crate) first: Vec<String>,
}

impl Findings {
    pub(crate) fn add(&mut self, msg: String) {
        self.count += 1;
        if self.first.len() < KEEP {
            self.first.push(msg);
        }
    }
}

/// Everything the clients saw.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    pub(crate) docs: HashMap<DocKey, Doc>,
    pairs: HashMap<PairKey, Pair>,
    pub(crate) c: Counters,
    /// Pairs found lost (each counted once), with why.
    lost: BTreeMap<PairKey, String>,
    pub(crate) dup_after_ack: Findings,
    pub(crate) phantoms: Findings,
    /// The receipt log failed a check.
    pub(crate) log_failures: Findings,
    /// Errors while the hub was up (not failures by themselves).
    pub(crate) errors: Vec<String>,
    /// Copies found dead-lettered (there should be none: max attempts is
    /// set very high).
    pub(crate) dead_letters: u64,
    /// Deliveries of an earlier acceptance that did not survive a kill,
    /// leased before the sender was given the surviving one.
    pub(crate) stale: Findings,
    /// Per hub, the largest signed tree head handed out with a Send
    /// receipt since the last [`Ledger::take_send_head`].
    send_heads: BTreeMap<usize, WatchState>,
}

/// `B90.S001,2025/01/01,17/CHAOS` from a sender code, a date and a number.
pub(crate) fn document_id(code: &str, date: &str, seq: u64) -> String {
    format!("{code},{date},{seq}/CHAOS")
}

/// The sequence number of a document id made by [`document_id`].
pub(crate) fn parse_seq(id: &str) -> Option<u64> {
    let rest = id.splitn(3, ',').nth(2)?;
    rest.strip_suffix("/CHAOS")?.parse().ok()
}

impl Ledger {
    pub(crate) fn lost(&self) -> u64 {
        self.lost.len() as u64
    }

    /// The counters, and the lost, duplicated-after-ack and phantom counts.
    pub(crate) fn tallies(&self) -> (Counters, u64, u64, u64) {
        (self.c, self.lost(), self.dup_after_ack.count, self.phantoms.count)
    }

    pub(crate) fn lost_messages(&self) -> impl Iterator<Item = &String> {
        self.lost.values().take(KEEP)
    }

    pub(crate) fn accepted_docs(&self) -> u64 {
        self.docs.values().filter(|d| d.accepted.is_some()).count() as u64
    }

    pub(crate) fn accepted_pairs(&self) -> u64 {
        self.docs
            .values()
            .filter(|d| d.accepted.is_some())
            .map(|d| d.to.len() as u64)
            .sum()
    }

    pub(crate) fn error(&mut self, msg: String) {
        self.c.unexpected_errors += 1;
        if self.errors.len() < KEEP {
            self.errors.push(msg);
        }
    }

    /// A new document is about to be sent for the first time, to `to`, of
    /// whom `relayed` are on another hub.
    pub(crate) fn attempt(&mut self, key: DocKey, to: Vec<u32>, relayed: Vec<u32>) {
        self.c.attempted += 1;
        self.docs.insert(
            key,
            Doc {
                to,
                relayed,
                accepted: None,
                receipt: None,
            },
        );
    }

    /// A Send returned OK.
    pub(crate) fn accepted(&mut self, key: DocKey, answer: Answer, label: &str) {
        let Answer {
            acceptance,
            now_ms,
            duplicate,
            receipt,
            head,
            hub,
        } = answer;
        self.c.accepted += 1;
        if duplicate {
            self.c.duplicate_answers += 1;
        }
        if let Some(h) = head {
            if self.send_heads.get(&hub).is_none_or(|s| h.tree_size > s.tree_size) {
                self.send_heads.insert(hub, h);
            }
        }
        let Some(doc) = self.docs.get_mut(&key) else {
            self.error(format!("internal: accepted {label} was never attempted"));
            return;
        };
        match doc.accepted {
            Some((a, _)) if a != acceptance => self.phantoms.add(format!(
                "{label} was accepted twice with different answers: hub document {} at {} and {} at {}",
                a.hub_document_id, a.accepted_at_unix_ms, acceptance.hub_document_id, acceptance.accepted_at_unix_ms
            )),
            Some(_) => {}
            None => {
                doc.accepted = Some((acceptance, now_ms));
                doc.receipt = receipt;
            }
        }
    }

    pub(crate) fn send_failed(&mut self) {
        self.c.send_failures += 1;
    }

    /// The largest tree head of hub `hub` seen in Send receipts since the
    /// last call.
    pub(crate) fn take_send_head(&mut self, hub: usize) -> Option<WatchState> {
        self.send_heads.remove(&hub)
    }

    /// A delivery arrived for recipient `r`; returns the pair to record its
    /// ack against, and whether this is a first delivery of the pair.
    pub(crate) fn arrived(&mut self, r: u32, recipient: &str, a: &Arrival) -> Option<(PairKey, bool)> {
        self.c.deliveries += 1;
        if a.previous_attempts > 0 {
            self.c.redeliveries += 1;
        }
        if let Some(why) = &a.invalid {
            self.phantoms.add(format!(
                "{recipient} received delivery {} ({}) that is not a valid document: {why}",
                a.delivery_id, a.label
            ));
            return None;
        }
        let Some(key) = a.key.filter(|k| self.docs.contains_key(k)) else {
            self.phantoms.add(format!(
                "{recipient} received delivery {} of {}, which was never sent",
                a.delivery_id, a.label
            ));
            return None;
        };
        if !self.docs[&key].to.contains(&r) {
            self.phantoms.add(format!(
                "{recipient} received delivery {} of {}, which was not sent to it",
                a.delivery_id, a.label
            ));
            return None;
        }
        let pk = (key, r);
        let relayed = self.docs[&key].relayed.contains(&r);
        let pair = self.pairs.entry(pk).or_default();
        let first = pair.deliveries.is_empty();
        if let Some(other) = pair
            .deliveries
            .first()
            .filter(|s| relayed && s.acceptance != a.acceptance)
        {
            self.phantoms.add(format!(
                "{recipient} received a second copy of {}: delivery {} (hub document {} accepted at {}) after hub \
                 document {} (accepted at {})",
                a.label,
                a.delivery_id,
                a.acceptance.hub_document_id,
                a.acceptance.accepted_at_unix_ms,
                other.acceptance.hub_document_id,
                other.acceptance.accepted_at_unix_ms
            ));
        }
        if !first && a.previous_attempts == 0 {
            self.c.redeliveries += 1; // after a restart attempts start again
        }
        if let Some(acked) = pair.acked_ms {
            if a.leased_ms > acked {
                self.dup_after_ack.add(format!(
                    "{recipient} received {} again as delivery {} (previous attempts {}), leased at {} ms, {} ms \
                     after an Ack naming it had returned OK (at {} ms)",
                    a.label,
                    a.delivery_id,
                    a.previous_attempts,
                    a.leased_ms,
                    a.leased_ms - acked,
                    acked
                ));
            } else if a.received_ms >= acked {
                self.c.late += 1;
            }
        }
        pair.deliveries.push(Seen {
            acceptance: a.acceptance,
            leased_ms: a.leased_ms,
        });
        Some((pk, first))
    }

    pub(crate) fn skipped_ack(&mut self) {
        self.c.skipped_acks += 1;
    }

    /// An Ack naming `pairs` is about to be sent.
    pub(crate) fn ack_attempt(&mut self, pairs: &[PairKey]) {
        for pk in pairs {
            self.pairs.entry(*pk).or_default().ack_attempted = true;
        }
    }

    /// An Ack naming `ids` (and `pairs`) returned OK at `now_ms`.
    pub(crate) fn acked(&mut self, ids: usize, pairs: &[PairKey], now_ms: i64) {
        self.c.acked += ids as u64;
        for pk in pairs {
            let p = self.pairs.entry(*pk).or_default();
            if p.acked_ms.is_none() {
                p.acked_ms = Some(now_ms);
            }
        }
    }

    pub(crate) fn ack_failed(&mut self, ids: usize) {
        self.c.ack_failures += ids as u64;
    }

    /// After a restart, with no client connected: every accepted pair that
    /// no Ack ever named must be in its recipient's outbox (or dead-letter
    /// queue) under the acceptance the sender was given; nothing queued
    /// may be a document never sent to that recipient. `queued[r]` and
    /// `dead[r]` map the documents waiting for recipient `r` to their hub
    /// document id. Returns the number of newly lost pairs.
    pub(crate) fn check_queues(
        &mut self,
        when: &str,
        names: &[String],
        queued: &[HashMap<DocKey, u64>],
        dead: &[HashMap<DocKey, u64>],
        unknown: &[Vec<String>],
    ) -> u64 {
        let before = self.lost.len();
        for (r, items) in unknown.iter().enumerate() {
            for label in items {
                self.phantoms
                    .add(format!("{when}: {label} waits for {}, but was never sent", names[r]));
            }
        }
        for (r, map) in queued.iter().chain(dead.iter()).enumerate() {
            let r = r % names.len();
            for key in map.keys() {
                if !self.docs.get(key).is_some_and(|d| d.to.contains(&(r as u32))) {
                    self.phantoms.add(format!(
                        "{when}: document {key:?} waits for {}, but was never sent to it",
                        names[r]
                    ));
                }
            }
        }
        let mut found = Vec::new();
        for (key, doc) in &self.docs {
            let Some((sender_acc, _)) = doc.accepted else { continue };
            for &r in &doc.to {
                let pk = (*key, r);
                let pair = self.pairs.get(&pk);
                if pair.is_some_and(|p| p.ack_attempted) || self.lost.contains_key(&pk) {
                    continue;
                }
                // A relayed pair's copy is the recipient hub's: known once it
                // was delivered; before, it may still be on its way.
                let acc = if doc.relayed.contains(&r) {
                    match pair.and_then(|p| p.deliveries.first()) {
                        Some(s) => s.acceptance,
                        None => continue,
                    }
                } else {
                    sender_acc
                };
                let waiting = queued[r as usize].get(key).or_else(|| dead[r as usize].get(key));
                match waiting {
                    Some(&hub_id) if hub_id == acc.hub_document_id => {}
                    Some(&hub_id) => found.push((
                        pk,
                        format!(
                            "{when}: document {key:?} waits for {} as hub document {hub_id}, but {} {}",
                            names[r as usize],
                            if doc.relayed.contains(&r) {
                                "it was delivered as"
                            } else {
                                "the sender was told"
                            },
                            acc.hub_document_id
                        ),
                        true,
                    )),
                    None => found.push((
                        pk,
                        format!(
                            "{when}: document {key:?} (hub document {}, accepted at {}) for {} was never acked, \
                             yet is neither in its outbox nor dead-lettered",
                            acc.hub_document_id, acc.accepted_at_unix_ms, names[r as usize]
                        ),
                        false,
                    )),
                }
            }
        }
        for (pk, msg, phantom) in found {
            if phantom {
                self.phantoms.add(msg);
            } else {
                self.lost.insert(pk, msg);
            }
        }
        self.dead_letters = dead.iter().map(|m| m.len() as u64).sum();
        (self.lost.len() - before) as u64
    }

    /// At the end, after every recipient was drained: every accepted pair
    /// was delivered at least once under its acceptance; deliveries under
    /// another acceptance were leased before the sender got this one.
    pub(crate) fn final_check(&mut self, names: &[String], label: impl Fn(&DocKey) -> String) {
        let mut lost = Vec::new();
        let mut phantoms = Vec::new();
        let mut stale = Vec::new();
        for (key, doc) in &self.docs {
            let Some((acc, ok_ms)) = doc.accepted else { continue };
            for &r in &doc.to {
                let pk = (*key, r);
                let seen = self.pairs.get(&pk).map(|p| p.deliveries.as_slice()).unwrap_or(&[]);
                if doc.relayed.contains(&r) {
                    // Its copies were compared with each other as they came.
                    if seen.is_empty() && !self.lost.contains_key(&pk) {
                        lost.push((
                            pk,
                            format!(
                                "{} (hub document {} at its sender's hub) was accepted for {} on another hub but \
                                 never delivered to it",
                                label(key),
                                acc.hub_document_id,
                                names[r as usize]
                            ),
                        ));
                    }
                    continue;
                }
                if !seen.iter().any(|s| s.acceptance == acc) && !self.lost.contains_key(&pk) {
                    lost.push((
                        pk,
                        format!(
                            "{} (hub document {}) was accepted for {} but never delivered to it ({} deliveries under \
                             other acceptances)",
                            label(key),
                            acc.hub_document_id,
                            names[r as usize],
                            seen.len()
                        ),
                    ));
                }
                for s in seen.iter().filter(|s| s.acceptance != acc) {
                    if s.leased_ms > ok_ms {
                        phantoms.push(format!(
                            "{} was delivered to {} as hub document {} (accepted at {}), leased at {} ms, after the \
                             sender had been told hub document {} at {} ms",
                            label(key),
                            names[r as usize],
                            s.acceptance.hub_document_id,
                            s.acceptance.accepted_at_unix_ms,
                            s.leased_ms,
                            acc.hub_document_id,
                            ok_ms
                        ));
                    } else {
                        stale.push(format!(
                            "{} was delivered to {} as hub document {} (accepted at {}), leased at {} ms; that \
                             acceptance did not survive a kill, and the sender was told hub document {} at {} ms",
                            label(key),
                            names[r as usize],
                            s.acceptance.hub_document_id,
                            s.acceptance.accepted_at_unix_ms,
                            s.leased_ms,
                            acc.hub_document_id,
                            ok_ms
                        ));
                    }
                }
            }
        }
        for (pk, msg) in lost {
            self.lost.insert(pk, msg);
        }
        for p in phantoms {
            self.phantoms.add(p);
        }
        self.stale = Findings::default();
        for m in stale {
            self.stale.add(m);
        }
    }

    /// The ACCEPTED receipts handed to the senders `of` picks: leaf index →
    /// SHA-256 of the receipt bytes, with a label.
    pub(crate) fn sender_receipts(
        &self,
        of: impl Fn(&DocKey) -> bool,
        label: impl Fn(&DocKey) -> String,
    ) -> BTreeMap<u64, ([u8; 32], String)> {
        self.docs
            .iter()
            .filter(|(k, _)| of(k))
            .filter_map(|(k, d)| d.receipt.map(|(i, h)| (i, (h, label(k)))))
            .collect()
    }

    /// Accepted pairs not delivered yet (as [`Ledger::final_check`] would
    /// count them lost), and not found lost already.
    pub(crate) fn undelivered(&self) -> u64 {
        let mut n = 0;
        for (key, doc) in &self.docs {
            let Some((acc, _)) = doc.accepted else { continue };
            for &r in &doc.to {
                let pk = (*key, r);
                let seen = self.pairs.get(&pk).map(|p| p.deliveries.as_slice()).unwrap_or(&[]);
                let relayed = doc.relayed.contains(&r);
                if !self.lost.contains_key(&pk) && !seen.iter().any(|s| relayed || s.acceptance == acc) {
                    n += 1;
                }
            }
        }
        n
    }

    /// The pairs an Ack returned OK for: (from, document id, recipient).
    pub(crate) fn acked_pairs(
        &self,
        label: impl Fn(&PairKey) -> (String, String, String),
    ) -> HashSet<(String, String, String)> {
        self.pairs
            .iter()
            .filter(|(_, p)| p.acked_ms.is_some())
            .map(|(k, _)| label(k))
            .collect()
    }

    /// Documents attempted but never accepted (their fate unknown).
    pub(crate) fn unresolved(&self) -> BTreeSet<DocKey> {
        self.docs
            .iter()
            .filter(|(_, d)| d.accepted.is_none())
            .map(|(k, _)| *k)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(acceptance: Acceptance, now_ms: i64) -> Answer {
        Answer {
            acceptance,
            now_ms,
            duplicate: false,
            receipt: None,
            head: None,
            hub: 0,
        }
    }

    fn arrival(key: DocKey, acc: Acceptance, leased_ms: i64, received_ms: i64) -> Arrival {
        Arrival {
            delivery_id: 1,
            previous_attempts: 0,
            acceptance: acc,
            leased_ms,
            received_ms,
            label: "doc".into(),
            key: Some(key),
            invalid: None,
        }
    }

    #[test]
    fn ids_round_trip() {
        let id = document_id("B90.S001", "2025/01/02", 42);
        assert_eq!(parse_seq(&id), Some(42));
        assert_eq!(parse_seq("B90.S001,2025/01/02,42/TRUC"), None);
    }

    #[test]
    fn dup_after_ack_only_when_leased_after_the_ack_returned() {
        let mut l = Ledger::default();
        let acc = Acceptance {
            hub_document_id: 5,
            accepted_at_unix_ms: 100,
        };
        l.attempt((0, 1), vec![0], vec![]);
        l.accepted((0, 1), answer(acc, 110), "doc");
        let (pk, first) = l.arrived(0, "R", &arrival((0, 1), acc, 120, 121)).unwrap();
        assert!(first);
        l.ack_attempt(&[pk]);
        l.acked(1, &[pk], 130);
        // Leased before the ack returned, received after: a race, not a dup.
        l.arrived(0, "R", &arrival((0, 1), acc, 125, 131)).unwrap();
        assert_eq!((l.dup_after_ack.count, l.c.late), (0, 1));
        // Leased after the ack returned: a dup.
        l.arrived(0, "R", &arrival((0, 1), acc, 131, 132)).unwrap();
        assert_eq!(l.dup_after_ack.count, 1);
    }

    #[test]
    fn phantoms_and_lost() {
        let mut l = Ledger::default();
        let acc = Acceptance {
            hub_document_id: 5,
            accepted_at_unix_ms: 100,
        };
        let names = vec!["R0".to_string(), "R1".to_string()];
        assert!(l.arrived(0, "R0", &arrival((0, 9), acc, 1, 1)).is_none());
        l.attempt((0, 1), vec![0, 1], vec![]);
        l.accepted((0, 1), answer(acc, 110), "doc");
        assert!(l.arrived(0, "R0", &arrival((0, 1), acc, 120, 120)).is_some());
        assert_eq!(l.phantoms.count, 1);
        // R0 queued, R1 neither queued nor acked: lost.
        let mut q0 = HashMap::new();
        q0.insert((0, 1), 5);
        let n = l.check_queues(
            "t",
            &names,
            &[q0, HashMap::new()],
            &[HashMap::new(), HashMap::new()],
            &[],
        );
        assert_eq!(n, 1);
        // Counted once.
        l.final_check(&names, |k| format!("{k:?}"));
        assert_eq!(l.lost(), 1);
    }

    #[test]
    fn relayed_pairs_are_judged_by_the_recipient_hubs_copy() {
        let mut l = Ledger::default();
        let names = vec!["R0".to_string(), "R1".to_string()];
        let at_sender = Acceptance {
            hub_document_id: 5,
            accepted_at_unix_ms: 100,
        };
        let there = Acceptance {
            hub_document_id: 77,
            accepted_at_unix_ms: 130,
        };
        l.attempt((0, 1), vec![0, 1], vec![0, 1]);
        l.accepted((0, 1), answer(at_sender, 110), "doc");
        // Delivered under the recipient hub's own acceptance: not a phantom.
        l.arrived(0, "R0", &arrival((0, 1), there, 140, 141)).unwrap();
        assert_eq!(l.phantoms.count, 0);
        assert_eq!(l.undelivered(), 1);
        // After a restart R0's unacknowledged copy must wait under the
        // acceptance it was delivered with; R1's was never delivered and
        // may still be on its way.
        let mut q0 = HashMap::new();
        q0.insert((0, 1), 78);
        let empty = || HashMap::new();
        l.check_queues("t", &names, &[q0, empty()], &[empty(), empty()], &[]);
        assert_eq!((l.lost(), l.phantoms.count), (0, 1), "a second copy is a phantom");
        let mut q0 = HashMap::new();
        q0.insert((0, 1), 77);
        assert_eq!(l.check_queues("t", &names, &[q0, empty()], &[empty(), empty()], &[]), 0);
        assert_eq!(
            l.check_queues("t", &names, &[empty(), empty()], &[empty(), empty()], &[]),
            1
        );
        // A second copy delivered is a phantom too.
        let again = Acceptance {
            hub_document_id: 78,
            accepted_at_unix_ms: 150,
        };
        l.arrived(0, "R0", &arrival((0, 1), again, 160, 161)).unwrap();
        assert_eq!(l.phantoms.count, 2);
        // R1 never got it: lost at the end.
        l.final_check(&names, |k| format!("{k:?}"));
        assert_eq!(l.lost(), 2);
    }
}
