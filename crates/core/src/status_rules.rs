//! Which business status (domain.md §4) may be reported when: the one
//! table [`RULES`], read by the store before it records a status
//! (`truc-store`, `sled/documents.rs` `report_status`), quoted in the proto
//! (`axis.proto`, `ReportStatus`) and printed by `truc status --help`
//! ([`help`]).
//!
//! Two parties report statuses on a document:
//! - **the sender** asks: 13 (lấy lại, take back), on its own document;
//! - **a recipient** reports its copy's progress, 01 to 06, and answers
//!   the sender with 15 (agree) or 16 (refuse).
//!
//! A recipient reports only on a copy it has: one acknowledged
//! (delivered). A copy still queued, dead-lettered, withdrawn or
//! redirected to a successor is refused, naming that state. Its progress
//! then runs 01 → 02, or 01 → 03 → 04/05 (any order, repeated) → 06; 02
//! and 06 end it. 15 and 16 come only in reply to an open question: a 13,
//! a revoke or an update the recipient has not answered yet; they do not
//! move the progress, and are allowed after 02 and 06 too.
//!
//! Choices the sources leave open, made here:
//! - 02 ends the copy's progress like 06: a refused copy is returned, and
//!   the sender sends it again as a new document.
//! - 04 and 05 may repeat and alternate (re-assignment during processing).
//! - A replacement asks for no answer: the recipient handles the new
//!   document with 01–06 (domain.md: 15/16 reply to retrieval, update or
//!   revocation).
//! - One open question at a time per copy: a 13 and a revoke still
//!   unanswered are closed by one 15 or 16.

use truc_proto::names::Wire;
use truc_proto::v1::{StatusCode, TransportState};

/// Who may report a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Party {
    /// The document's sender, on its own document.
    Sender,
    /// A recipient, on its own copy.
    Recipient,
}

/// How far a recipient's copy has come (its latest status among 01–06).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    /// Nothing reported yet.
    None,
    /// 01 đã đến.
    Arrived,
    /// 02 từ chối tiếp nhận (returned; the end).
    Refused,
    /// 03 đã tiếp nhận.
    Registered,
    /// 04 phân công or 05 đang xử lý.
    Handling,
    /// 06 hoàn thành (the end).
    Done,
}

impl Phase {
    /// The phase a stored latest progress status (0 or 1–6) stands for.
    pub fn of(progress: i32) -> Phase {
        match progress {
            1 => Phase::Arrived,
            2 => Phase::Refused,
            3 => Phase::Registered,
            4 | 5 => Phase::Handling,
            6 => Phase::Done,
            _ => Phase::None,
        }
    }

    /// In words, for refusals.
    pub fn describe(self) -> &'static str {
        match self {
            Phase::None => "has reported nothing yet",
            Phase::Arrived => "has reported 01 (arrived)",
            Phase::Refused => "has refused it (02)",
            Phase::Registered => "has registered it (03)",
            Phase::Handling => "is handling it (04/05)",
            Phase::Done => "has finished it (06)",
        }
    }
}

/// One row of the table.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// The status code.
    pub code: StatusCode,
    /// Who may report it.
    pub by: Party,
    /// A recipient: the phases its copy may be in (empty for the sender's
    /// code).
    pub after: &'static [Phase],
    /// A recipient: needs an open question (13, revoke, update) to answer.
    pub answers: bool,
    /// A recipient: the phase its copy moves to (`None`: it stays).
    pub then: Option<Phase>,
    /// The rule in words (the proto and `truc status --help` say the same).
    pub says: &'static str,
}

const ANY: &[Phase] = &[
    Phase::None,
    Phase::Arrived,
    Phase::Refused,
    Phase::Registered,
    Phase::Handling,
    Phase::Done,
];
const REGISTERED_OR_HANDLING: &[Phase] = &[Phase::Registered, Phase::Handling];

/// The status rules, one row per code.
pub const RULES: [Rule; 9] = [
    Rule {
        code: StatusCode::Arrived,
        by: Party::Recipient,
        after: &[Phase::None],
        answers: false,
        then: Some(Phase::Arrived),
        says: "01 arrived: recipient, first and once (truc inbox sends it on acknowledgement)",
    },
    Rule {
        code: StatusCode::Refused,
        by: Party::Recipient,
        after: &[Phase::Arrived],
        answers: false,
        then: Some(Phase::Refused),
        says: "02 refused: recipient, after 01 and before 03, with a reason; nothing follows but 15/16",
    },
    Rule {
        code: StatusCode::Registered,
        by: Party::Recipient,
        after: &[Phase::Arrived],
        answers: false,
        then: Some(Phase::Registered),
        says: "03 registered: recipient, after 01, once",
    },
    Rule {
        code: StatusCode::Assigned,
        by: Party::Recipient,
        after: REGISTERED_OR_HANDLING,
        answers: false,
        then: Some(Phase::Handling),
        says: "04 assigned: recipient, after 03, before 06 (may repeat)",
    },
    Rule {
        code: StatusCode::Processing,
        by: Party::Recipient,
        after: REGISTERED_OR_HANDLING,
        answers: false,
        then: Some(Phase::Handling),
        says: "05 processing: recipient, after 03, before 06 (may repeat)",
    },
    Rule {
        code: StatusCode::Done,
        by: Party::Recipient,
        after: REGISTERED_OR_HANDLING,
        answers: false,
        then: Some(Phase::Done),
        says: "06 done: recipient, after 03, once; nothing follows but 15/16",
    },
    Rule {
        code: StatusCode::TakeBack,
        by: Party::Sender,
        after: &[],
        answers: false,
        then: None,
        says: "13 take back: the sender only, while a copy is not withdrawn; copies not yet delivered are \
               withdrawn, the recipients that have it are asked to answer 15/16",
    },
    Rule {
        code: StatusCode::Agree,
        by: Party::Recipient,
        after: ANY,
        answers: true,
        then: None,
        says: "15 agree: recipient, only to an open 13, revoke or update (once per question)",
    },
    Rule {
        code: StatusCode::Disagree,
        by: Party::Recipient,
        after: ANY,
        answers: true,
        then: None,
        says: "16 refuse: recipient, only to an open 13, revoke or update (once per question)",
    },
];

/// A recipient's statuses need a delivered copy: said once for the table.
pub const DELIVERED_FIRST: &str =
    "a recipient reports only on a copy it has acknowledged: a copy queued, dead-lettered, withdrawn or \
     redirected is refused";

/// The row for `code` (any `truc.v1.StatusCode` value), if it may be
/// reported at all.
pub fn rule(code: i32) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.code as i32 == code)
}

/// What a recipient's copy looks like when it reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyView {
    /// Its `truc.v1.TransportState`.
    pub transport: i32,
    /// Its latest progress status (0, 1–6).
    pub progress: i32,
    /// A 13, revoke or update waits for its answer.
    pub question_open: bool,
}

/// What a recorded recipient status does to its copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Effect {
    /// The new latest progress status, when it moves (1–6).
    pub progress: Option<i32>,
    /// The open question is answered.
    pub answered: bool,
}

/// Why a status is refused: the copy's state or its progress does not
/// allow it (FAILED_PRECONDITION), in words that name the state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

/// Whether recipient `who` may report `rule` on its copy `copy`; what it
/// changes if so. `rule.by` must be [`Party::Recipient`].
pub fn check_recipient(rule: &Rule, who: &str, copy: &CopyView) -> Result<Effect, Refused> {
    let code = rule.code as i32;
    if copy.transport != TransportState::Delivered as i32 {
        return Err(Refused(format!(
            "{who}'s copy is {}, not delivered: status {code:02} is refused ({DELIVERED_FIRST})",
            Wire::<TransportState>::from(copy.transport)
        )));
    }
    let phase = Phase::of(copy.progress);
    if rule.answers && !copy.question_open {
        return Err(Refused(format!(
            "nothing to answer: {who}'s copy is delivered and no take-back (13), revoke or update waits for its \
             answer; status {code:02} replies to one"
        )));
    }
    if !rule.after.contains(&phase) {
        return Err(Refused(format!(
            "status {code:02} is refused: {who}'s copy is delivered and {who} {}; {}",
            phase.describe(),
            rule.says
        )));
    }
    Ok(Effect {
        progress: rule.then.map(|_| code),
        answered: rule.answers,
    })
}

/// The table in words, a line per code (for `truc status --help` and the
/// proto comment).
pub fn help() -> String {
    let mut s = String::from("Status rules (the hub refuses the rest with FAILED_PRECONDITION):\n");
    for r in &RULES {
        s.push_str("  ");
        s.push_str(r.says);
        s.push('\n');
    }
    s.push_str("  and ");
    s.push_str(DELIVERED_FIRST);
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy(transport: TransportState, progress: i32, open: bool) -> CopyView {
        CopyView {
            transport: transport as i32,
            progress,
            question_open: open,
        }
    }

    fn delivered(progress: i32) -> CopyView {
        copy(TransportState::Delivered, progress, false)
    }

    fn may(code: StatusCode, c: CopyView) -> Result<Effect, Refused> {
        check_recipient(rule(code as i32).unwrap(), "H26", &c)
    }

    #[test]
    fn every_reportable_code_has_one_row_and_others_none() {
        for code in 0..=20 {
            let n = RULES.iter().filter(|r| r.code as i32 == code).count();
            let reportable = matches!(code, 1..=6 | 13 | 15 | 16);
            assert_eq!(n, usize::from(reportable), "code {code}");
        }
        assert_eq!(rule(13).unwrap().by, Party::Sender);
        assert!(RULES
            .iter()
            .filter(|r| r.code != StatusCode::TakeBack)
            .all(|r| r.by == Party::Recipient));
    }

    #[test]
    fn a_copy_not_delivered_is_refused_naming_its_state() {
        for (state, words) in [
            (TransportState::Queued, "queued"),
            (TransportState::DeadLettered, "dead-lettered"),
            (TransportState::Withdrawn, "withdrawn"),
            (TransportState::Redirected, "redirected"),
        ] {
            for r in RULES.iter().filter(|r| r.by == Party::Recipient) {
                let err = check_recipient(r, "H26", &copy(state, 0, true)).unwrap_err();
                assert!(
                    err.0.contains(&format!("H26's copy is {words}, not delivered")),
                    "{:?}: {}",
                    r.code,
                    err.0
                );
            }
        }
        // A state this build does not know is said as a number, not as another state.
        let unknown = CopyView {
            transport: 9,
            progress: 0,
            question_open: false,
        };
        let err = check_recipient(rule(1).unwrap(), "H26", &unknown).unwrap_err();
        assert!(err.0.contains("H26's copy is unknown(9), not delivered"), "{}", err.0);
    }

    #[test]
    fn rule_01_comes_first_and_once() {
        assert_eq!(
            may(StatusCode::Arrived, delivered(0)),
            Ok(Effect {
                progress: Some(1),
                answered: false
            })
        );
        for p in 1..=6 {
            assert!(may(StatusCode::Arrived, delivered(p)).is_err(), "01 after {p}");
        }
        for c in [
            StatusCode::Refused,
            StatusCode::Registered,
            StatusCode::Assigned,
            StatusCode::Processing,
            StatusCode::Done,
        ] {
            let err = may(c, delivered(0)).unwrap_err();
            assert!(err.0.contains("has reported nothing yet"), "{c:?}: {}", err.0);
        }
    }

    #[test]
    fn rule_02_only_after_01_before_03() {
        assert!(may(StatusCode::Refused, delivered(1)).is_ok());
        for p in [0, 2, 3, 4, 5, 6] {
            assert!(may(StatusCode::Refused, delivered(p)).is_err(), "02 after {p}");
        }
    }

    #[test]
    fn rule_03_once_after_01() {
        assert!(may(StatusCode::Registered, delivered(1)).is_ok());
        for p in [0, 2, 3, 4, 5, 6] {
            assert!(may(StatusCode::Registered, delivered(p)).is_err(), "03 after {p}");
        }
    }

    #[test]
    fn rules_04_05_06_after_03() {
        for c in [StatusCode::Assigned, StatusCode::Processing, StatusCode::Done] {
            for p in [3, 4, 5] {
                assert!(may(c, delivered(p)).is_ok(), "{c:?} after {p}");
            }
            for p in [0, 1, 2, 6] {
                assert!(may(c, delivered(p)).is_err(), "{c:?} after {p}");
            }
        }
        let done = may(StatusCode::Done, delivered(5)).unwrap();
        assert_eq!(done.progress, Some(6));
        let err = may(StatusCode::Processing, delivered(6)).unwrap_err();
        assert!(err.0.contains("has finished it (06)"), "{}", err.0);
    }

    #[test]
    fn rules_15_16_only_to_an_open_question_in_any_phase() {
        for c in [StatusCode::Agree, StatusCode::Disagree] {
            for p in 0..=6 {
                let e = may(c, copy(TransportState::Delivered, p, true)).unwrap();
                assert_eq!(
                    e,
                    Effect {
                        progress: None,
                        answered: true
                    }
                );
                let err = may(c, delivered(p)).unwrap_err();
                assert!(err.0.contains("nothing to answer"), "{}", err.0);
            }
        }
    }

    #[test]
    fn phases_of_stored_codes() {
        assert_eq!(Phase::of(0), Phase::None);
        assert_eq!(Phase::of(4), Phase::of(5));
        assert_eq!(Phase::of(15), Phase::None);
    }

    #[test]
    fn help_lists_every_row() {
        let h = help();
        for r in &RULES {
            assert!(h.contains(r.says));
        }
    }

    /// The proto's ReportStatus comment states the same rules.
    #[test]
    fn the_proto_states_the_table() {
        let proto = include_str!("../../../proto/truc/v1/axis.proto");
        let flat: String = proto
            .lines()
            .map(|l| l.trim().trim_start_matches("//").trim())
            .collect::<Vec<_>>()
            .join(" ");
        for r in &RULES {
            let says: String = r.says.split_whitespace().collect::<Vec<_>>().join(" ");
            assert!(flat.contains(&says), "axis.proto does not state: {says}");
        }
        let delivered: String = DELIVERED_FIRST.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(flat.contains(&delivered), "axis.proto does not state: {delivered}");
    }
}
