//! The deadlines of copies not yet done with, indexed by agency and time
//! (`U` keys), so that what is past due is counted by reading only what is
//! past, whatever the queues hold.
//!
//! Two kinds, per recipient's copy:
//! - [`DUE`]: the document's DueDate (hạn xử lý), until the recipient
//!   reports 06 (completed) or 02 (refused);
//! - [`CONFIRM`]: the confirmation deadline ("the same day, at the latest
//!   the next working day"), until the recipient confirms with 02 or 03
//!   (or any later status).
//!
//! A withdrawn or redirected copy has neither. Every write of a recipient's
//! state goes through [`put_state`], which keeps the index in the same
//! batch; a store from before the index has it built once at open
//! ([`index_all`]).

use prost::Message;
use truc_proto::v1::{StatusCode, TransportState};

use super::batch::Batch;
use super::copies::{document, recipient_state};
use super::Read;
use crate::keys::{self, tag};
use crate::records::{DocumentRecord, RecipientState};
use crate::StoreError;

/// The document's DueDate.
pub(crate) const DUE: u8 = 1;
/// The confirmation deadline.
pub(crate) const CONFIRM: u8 = 2;

/// What decides a copy's index entries, but the due date.
fn inputs(s: &RecipientState) -> (bool, i32, i64) {
    let open = !matches!(
        TransportState::try_from(s.state),
        Ok(TransportState::Withdrawn | TransportState::Redirected)
    );
    (open, s.progress(), s.confirm_deadline_unix_ms)
}

/// The entries a copy in state `s` of a document due at `due` has.
fn wanted(s: &RecipientState, due: i64) -> [Option<(u8, i64)>; 2] {
    // Progress: the furthest of 01–06 reported (an answer, 15 or 16, does
    // not undo it).
    let (open, progress, confirm) = inputs(s);
    let done = progress == StatusCode::Done as i32 || progress == StatusCode::Refused as i32;
    let confirmed = (StatusCode::Refused as i32..=StatusCode::Done as i32).contains(&progress);
    [
        (open && due > 0 && !done).then_some((DUE, due)),
        (open && confirm > 0 && !confirmed).then_some((CONFIRM, confirm)),
    ]
}

/// Whether a copy in state `s` is still its recipient's to finish (not
/// withdrawn, redirected, refused or done): its DueDate applies.
pub(crate) fn open_for_due(s: &RecipientState) -> bool {
    wanted(s, 1)[0].is_some()
}

/// Write `agency`'s state of document `hub_id` and keep its deadlines in
/// the index. `due`: the document's DueDate if the caller has the record
/// at hand (read when needed otherwise).
pub(crate) fn put_state(
    p: &mut Batch<'_>,
    hub_id: u64,
    agency: &str,
    state: &RecipientState,
    due: Option<i64>,
) -> Result<(), StoreError> {
    let old = recipient_state(p, hub_id, agency)?;
    if old.as_ref().map(inputs) != Some(inputs(state)) {
        let due = match due {
            Some(d) => d,
            None => document(p, hub_id)?.due_date_unix_ms,
        };
        let before = old.map(|o| wanted(&o, due)).unwrap_or_default();
        let after = wanted(state, due);
        for (kind, at) in before.iter().flatten() {
            if !after.contains(&Some((*kind, *at))) {
                p.del(keys::deadline(agency, *kind, *at, hub_id));
            }
        }
        for (kind, at) in after.iter().flatten() {
            if !before.contains(&Some((*kind, *at))) {
                p.put(keys::deadline(agency, *kind, *at, hub_id), Vec::new());
            }
        }
    }
    p.put(keys::recipient(hub_id, agency), state.encode_to_vec());
    Ok(())
}

/// Write a state whose transport moved among queued, delivered and
/// dead-lettered (an ack, a lease run out, a redrive): that moves no
/// deadline, so nothing is read back (the ack path stays one read per
/// copy).
pub(crate) fn put_transport(p: &mut Batch<'_>, hub_id: u64, agency: &str, state: &RecipientState) {
    debug_assert!(matches!(
        TransportState::try_from(state.state),
        Ok(TransportState::Queued | TransportState::Delivered | TransportState::DeadLettered)
    ));
    p.put(keys::recipient(hub_id, agency), state.encode_to_vec());
}

/// How many of `agency`'s copies are past their deadline of `kind` at
/// `now` (reads only those).
pub(crate) fn count_past(tree: &dyn Read, agency: &str, kind: u8, now_unix_ms: i64) -> Result<u64, StoreError> {
    let from = keys::deadlines_prefix(agency, kind);
    let to = keys::deadline(agency, kind, now_unix_ms, 0);
    let mut n = 0;
    tree.range(&from, &to, &mut |_, _| {
        n += 1;
        true
    })?;
    Ok(n)
}

/// Every copy's entries, for a store written before the index: the keys
/// to add.
pub(crate) fn index_all(tree: &dyn Read) -> Result<Vec<Vec<u8>>, StoreError> {
    let mut out = Vec::new();
    let mut due_of: Option<(u64, i64)> = None;
    for (k, v) in tree.scan_prefix(&[tag::RECIPIENT])? {
        let Some(hub_id) = k.get(1..9).and_then(keys::u64_value) else {
            return Err(StoreError::corrupt("recipient state key"));
        };
        let agency = String::from_utf8_lossy(&k[9..]).into_owned();
        let s = RecipientState::decode(v.as_slice()).map_err(|e| StoreError::corrupt_from("recipient state", e))?;
        let due = match due_of {
            Some((id, due)) if id == hub_id => due,
            _ => {
                let due = match tree.get(&keys::document(hub_id))? {
                    Some(d) => {
                        DocumentRecord::decode(d.as_slice())
                            .map_err(|e| StoreError::corrupt_from("document", e))?
                            .due_date_unix_ms
                    }
                    None => 0,
                };
                due_of = Some((hub_id, due));
                due
            }
        };
        for (kind, at) in wanted(&s, due).iter().flatten() {
            out.push(keys::deadline(&agency, *kind, *at, hub_id));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use truc_core::{AgencyCode, Principal};
    use truc_proto::v1::StatusCode;

    use super::*;
    use crate::machine::memory::MemoryStore;
    use crate::machine::{Command, Outcome};
    use crate::StatusReport;

    fn code(s: &str) -> AgencyCode {
        AgencyCode::parse(s).unwrap()
    }

    fn ok(store: &mut MemoryStore, cmd: Command) -> Outcome {
        store.batch(vec![cmd]).pop().unwrap().unwrap()
    }

    fn status(store: &mut MemoryStore, who: &str, c: StatusCode) {
        ok(
            store,
            Command::Status(Box::new(StatusReport {
                reporter: code(who),
                actor: Principal::Agency(code(who)),
                document_from: code("000.00.00.G01"),
                document_id: "1/QĐ-MODEL".into(),
                code: c,
                description: "lý do".into(),
                staff: None,
            })),
        );
    }

    fn past(store: &MemoryStore, who: &str, kind: u8, now: i64) -> u64 {
        count_past(&store.state, who, kind, now).unwrap()
    }

    /// A document due at a time: each recipient's copy counts as past due
    /// and past its confirmation deadline until it answers; 03 ends the
    /// one, 06 (or 02) the other; an acknowledgement changes neither.
    #[test]
    fn copies_are_past_their_deadlines_until_their_recipient_answers() {
        let mut store = MemoryStore::default();
        let [a, b, c] = ["000.00.00.G01", "000.00.00.G02", "000.00.00.H03"];
        for x in [a, b, c] {
            ok(
                &mut store,
                Command::PutAgency {
                    code: code(x),
                    name: x.into(),
                    actor: "urn:truc:operator:t".into(),
                },
            );
        }
        let due = store.now_unix_ms + 3_600_000;
        let mut doc = crate::machine::model::new_document(&code(a), &[code(b), code(c)], 1, 0, 2);
        doc.due_date_unix_ms = due;
        let Outcome::Sent(_) = ok(&mut store, Command::Send(Box::new(doc))) else {
            panic!("not sent")
        };
        let later = i64::MAX / 2;
        for x in [b, c] {
            assert_eq!(past(&store, x, DUE, due - 1), 0, "not yet due");
            assert_eq!(past(&store, x, DUE, due + 1), 1);
            assert_eq!(past(&store, x, CONFIRM, later), 1);
        }
        // B takes its copy and confirms with 01 (not a confirmation), then 03.
        let id = store
            .state
            .scan_prefix(&keys::queue_prefix(tag::OUTBOX, b))
            .unwrap()
            .first()
            .and_then(|(k, _)| keys::queue_item_id(k))
            .unwrap();
        ok(
            &mut store,
            Command::Ack {
                agency: code(b),
                ids: vec![id],
                actor: Principal::Agency(code(b)).uri(),
            },
        );
        assert_eq!(past(&store, b, CONFIRM, later), 1, "an ack is not a confirmation");
        status(&mut store, b, StatusCode::Arrived);
        assert_eq!(past(&store, b, CONFIRM, later), 1, "01 is not a confirmation");
        status(&mut store, b, StatusCode::Registered);
        assert_eq!(past(&store, b, CONFIRM, later), 0);
        assert_eq!(past(&store, b, DUE, due + 1), 1, "registered, not done");
        status(&mut store, b, StatusCode::Done);
        assert_eq!(past(&store, b, DUE, later), 0);
        // C's copy is untouched.
        assert_eq!(past(&store, c, DUE, due + 1), 1);
        assert_eq!(past(&store, c, CONFIRM, later), 1);
        // And the index built from scratch agrees with the one kept.
        let mut built = index_all(&store.state).unwrap();
        built.sort();
        let kept: Vec<Vec<u8>> = store
            .state
            .scan_prefix(&[tag::DEADLINE])
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(built, kept);
    }
}
