//! The status-rule table against a small model written out here: random
//! sequences of codes on a delivered copy, with take-backs, revokes or
//! updates opening questions in between.

use proptest::prelude::*;
use truc_core::status_rules::{check_recipient, rule, CopyView, Party};
use truc_proto::v1::TransportState;

#[derive(Debug, Clone)]
enum Step {
    /// The sender asks (13, revoke, update): a question opens.
    Ask,
    /// The recipient reports a code.
    Report(i32),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        1 => Just(Step::Ask),
        8 => prop::sample::select(vec![1, 2, 3, 4, 5, 6, 15, 16]).prop_map(Step::Report),
    ]
}

/// Whether the model allows `code` after `progress` (latest of 01–06) with
/// a question open or not.
fn allowed(progress: i32, open: bool, code: i32) -> bool {
    match code {
        1 => progress == 0,
        2 | 3 => progress == 1,
        4..=6 => (3..=5).contains(&progress),
        15 | 16 => open,
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn the_table_follows_the_model(steps in prop::collection::vec(step(), 1..40)) {
        let (mut progress, mut open) = (0, false);
        let mut reached = Vec::new();
        for s in steps {
            match s {
                Step::Ask => open = true,
                Step::Report(code) => {
                    let r = rule(code).unwrap();
                    prop_assert_eq!(r.by, Party::Recipient);
                    let view = CopyView {
                        transport: TransportState::Delivered as i32,
                        progress,
                        question_open: open,
                    };
                    let got = check_recipient(r, "H26", &view);
                    prop_assert_eq!(got.is_ok(), allowed(progress, open, code), "{:02} after {:02} (open {})", code, progress, open);
                    if let Ok(e) = got {
                        if (1..=6).contains(&code) {
                            prop_assert_eq!(e.progress, Some(code));
                            progress = code;
                        } else {
                            prop_assert!(e.answered && e.progress.is_none());
                            open = false;
                        }
                        reached.push(code);
                    }
                }
            }
        }
        // What any accepted sequence looks like: 01 first, 02 never after
        // 03, nothing but 15/16 after 02 or 06.
        let progress_codes: Vec<i32> = reached.iter().copied().filter(|c| *c <= 6).collect();
        if let Some(first) = progress_codes.first() {
            prop_assert_eq!(*first, 1);
        }
        if let Some(end) = progress_codes.iter().position(|c| *c == 2 || *c == 6) {
            prop_assert_eq!(end, progress_codes.len() - 1);
        }
        if let Some(reg) = progress_codes.iter().position(|c| *c == 3) {
            prop_assert!(!progress_codes[reg..].contains(&2));
        }
    }

    /// Whatever the progress, a copy not delivered reports nothing.
    #[test]
    fn nothing_before_delivery(
        code in prop::sample::select(vec![1, 2, 3, 4, 5, 6, 15, 16]),
        progress in 0..=6i32,
        open: bool,
        state in prop::sample::select(vec![
            TransportState::Queued, TransportState::DeadLettered,
            TransportState::Withdrawn, TransportState::Redirected,
        ]),
    ) {
        let view = CopyView { transport: state as i32, progress, question_open: open };
        prop_assert!(check_recipient(rule(code).unwrap(), "H26", &view).is_err());
    }
}
