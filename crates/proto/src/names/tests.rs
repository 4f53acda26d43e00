use std::collections::HashSet;

use proptest::prelude::*;

use super::*;
use crate::v1::{
    AgencyState, BusinessType, DamageKind, DeadLetterReason, PeerLinkState, Priority, ReceiptEvent, ReceiverType,
    SignatureScheme, StatsGrouping, StatusCode, TransportState,
};

/// Run `$check::<E>(as_str_name, prefix)` for every enum of `truc.v1`.
macro_rules! every_enum {
    ($check:ident) => {
        $check::<Priority>(Priority::as_str_name, "PRIORITY_");
        $check::<BusinessType>(BusinessType::as_str_name, "BUSINESS_TYPE_");
        $check::<StatusCode>(StatusCode::as_str_name, "STATUS_CODE_");
        $check::<SignatureScheme>(SignatureScheme::as_str_name, "SIGNATURE_SCHEME_");
        $check::<ReceiverType>(ReceiverType::as_str_name, "RECEIVER_TYPE_");
        $check::<TransportState>(TransportState::as_str_name, "TRANSPORT_STATE_");
        $check::<DeadLetterReason>(DeadLetterReason::as_str_name, "DEAD_LETTER_REASON_");
        $check::<AgencyState>(AgencyState::as_str_name, "AGENCY_STATE_");
        $check::<PeerLinkState>(PeerLinkState::as_str_name, "PEER_LINK_STATE_");
        $check::<DamageKind>(DamageKind::as_str_name, "DAMAGE_KIND_");
        $check::<StatsGrouping>(StatsGrouping::as_str_name, "STATS_GROUPING_");
        $check::<ReceiptEvent>(ReceiptEvent::as_str_name, "RECEIPT_EVENT_");
    };
}

type ProtoName<E> = fn(&E) -> &'static str;

/// Every value parses back from its name, its number, its aliases and the
/// proto constant's spelling; no two values share a spelling.
fn round_trips<E: Named + TryFrom<i32>>(proto: ProtoName<E>, prefix: &str) {
    let mut spellings = HashSet::new();
    for &v in E::ALL {
        let number: i32 = v.into();
        assert_eq!(v.to_string().parse::<E>(), Ok(v), "{v:?}");
        assert_eq!(number.to_string().parse::<E>(), Ok(v), "{v:?} by number");
        assert_eq!(format!("0{number}").parse::<E>(), Ok(v), "{v:?} by 0-padded number");
        let constant = proto(&v).strip_prefix(prefix).expect("the proto prefix");
        assert_eq!(constant.parse::<E>(), Ok(v), "{v:?} as {constant}");
        assert!(spellings.insert(v.name()), "{v:?}: name {} is taken", v.name());
        for alias in v.aliases() {
            assert_eq!(normalize(alias), *alias, "{v:?}: alias {alias:?} is not in normal form");
            assert_eq!(alias.parse::<E>(), Ok(v), "{v:?} by alias {alias}");
            assert!(spellings.insert(alias), "{v:?}: alias {alias} is taken");
        }
    }
}

/// A name is the proto constant without its prefix, lower case, `-`
/// between words; priorities are named as the axis writes them.
fn names_follow_the_proto<E: Named>(proto: ProtoName<E>, prefix: &str) {
    if E::WHAT == "priority" {
        return;
    }
    for &v in E::ALL {
        let constant = proto(&v).strip_prefix(prefix).expect("the proto prefix");
        assert_eq!(v.name(), constant.to_ascii_lowercase().replace('_', "-"), "{v:?}");
    }
}

/// `ALL` holds every value the proto defines, in number order.
fn all_is_complete<E: Named + TryFrom<i32>>(_: ProtoName<E>, _: &str) {
    let numbers: Vec<i32> = E::ALL.iter().map(|v| (*v).into()).collect();
    let defined: Vec<i32> = (-1..=256).filter(|n| E::try_from(*n).is_ok()).collect();
    assert_eq!(numbers, defined, "{}", E::WHAT);
}

/// Unknown numbers print as unknown, and the printed form parses as no value.
fn unknown_numbers_print_as_unknown<E: Named + TryFrom<i32>>(_: ProtoName<E>, _: &str) {
    let wire = Wire::<E>::from(1000);
    assert_eq!(wire, Wire::Unknown(1000));
    assert_eq!(wire.to_string(), "unknown(1000)");
    assert_eq!(wire.known(), None);
    assert!(wire.to_string().parse::<E>().is_err());
    let first = E::ALL[0];
    assert_eq!(Wire::<E>::from(first.into()), Wire::Known(first));
}

#[test]
fn every_value_round_trips_through_its_name_number_and_aliases() {
    every_enum!(round_trips);
}

#[test]
fn names_are_the_proto_constants_in_lower_case() {
    every_enum!(names_follow_the_proto);
}

#[test]
fn every_proto_value_is_named_in_order() {
    every_enum!(all_is_complete);
}

#[test]
fn an_unknown_number_prints_as_unknown_never_as_another_value() {
    every_enum!(unknown_numbers_print_as_unknown);
    assert_eq!(Wire::<TransportState>::from(7).to_string(), "unknown(7)");
    assert_eq!(Wire::<TransportState>::from(3).to_string(), "dead-lettered");
}

#[test]
fn a_dead_letter_without_a_reason_ran_out_of_attempts() {
    assert_eq!(dead_letter_reason(0), Wire::Known(DeadLetterReason::Attempts));
    assert_eq!(dead_letter_reason(1), Wire::Known(DeadLetterReason::Attempts));
    assert_eq!(dead_letter_reason(2).to_string(), "corrupt");
    assert_eq!(dead_letter_reason(5).to_string(), "unknown(5)");
}

#[test]
fn names_pad_in_tables() {
    assert_eq!(format!("[{:<8}]", AgencyState::Active), "[active  ]");
    assert_eq!(format!("[{:>12}]", Wire::<AgencyState>::from(9)), "[  unknown(9)]");
}

#[test]
fn priorities_as_people_write_them() {
    assert_eq!("Hoa_Toc".parse(), Ok(Priority::Express));
    assert_eq!("very urgent".parse(), Ok(Priority::VeryUrgent));
    assert_eq!("Thượng khẩn".parse(), Ok(Priority::VeryUrgent));
    assert_eq!(" 0 ".parse(), Ok(Priority::Normal));
    assert_eq!(Priority::Express.to_string(), "hoa-toc");
}

#[test]
fn a_refusal_names_what_was_expected_without_unspecified() {
    let err = "5".parse::<Priority>().unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown priority \"5\": expected one of thuong (0), khan (1), thuong-khan (2), hoa-toc (3), \
         hoa-toc-hen-gio (4)"
    );
    let err = "paused".parse::<AgencyState>().unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown agency state \"paused\": expected one of active (1), suspended (2), retired (3)"
    );
    // Chosen by no one, but still a value: its name reads back.
    assert_eq!("unspecified".parse(), Ok(AgencyState::Unspecified));
}

#[test]
fn grpc_codes_have_their_specification_names() {
    let names: HashSet<&str> = (0..=16).map(|n| grpc_code_name(tonic::Code::from_i32(n))).collect();
    assert_eq!(names.len(), 17);
    assert_eq!(grpc_code_name(tonic::Code::NotFound), "NOT_FOUND");
    assert_eq!(grpc_code_name(tonic::Code::Ok), "OK");
}

/// A spelling of `name` as people might type it: any case, `_` or a space
/// for `-`, blanks around.
fn mangled(name: &'static str) -> impl Strategy<Value = String> {
    let n = name.chars().count();
    (
        prop::collection::vec(any::<bool>(), n),
        prop::sample::select(vec!["-", "_", " "]),
        prop::sample::select(vec!["", " ", "\t"]),
    )
        .prop_map(move |(upper, sep, blank)| {
            let word: String = name
                .chars()
                .zip(upper)
                .map(|(c, up)| match (c, up) {
                    ('-', _) => sep.to_string(),
                    (c, true) => c.to_uppercase().collect(),
                    (c, false) => c.to_string(),
                })
                .collect();
            format!("{blank}{word}{blank}")
        })
}

fn any_status() -> impl Strategy<Value = (StatusCode, String)> {
    prop::sample::select(StatusCode::ALL).prop_flat_map(|v| mangled(v.name()).prop_map(move |s| (v, s)))
}

fn any_event() -> impl Strategy<Value = (ReceiptEvent, String)> {
    prop::sample::select(ReceiptEvent::ALL).prop_flat_map(|v| mangled(v.name()).prop_map(move |s| (v, s)))
}

fn any_priority() -> impl Strategy<Value = (Priority, String)> {
    prop::sample::select(Priority::ALL).prop_flat_map(|v| {
        let spellings: Vec<&'static str> = std::iter::once(v.name()).chain(v.aliases().iter().copied()).collect();
        prop::sample::select(spellings)
            .prop_flat_map(mangled)
            .prop_map(move |s| (v, s))
    })
}

proptest! {
    /// parse(display(x)) == x for every number on the wire: a known value
    /// comes back as itself, an unknown number as no value.
    #[test]
    fn parse_of_display_is_the_value(n in any::<i32>()) {
        let wire = Wire::<ReceiptEvent>::from(n);
        let back = wire.to_string().parse::<ReceiptEvent>().ok();
        prop_assert_eq!(back, wire.known());
        let wire = Wire::<StatusCode>::from(n);
        prop_assert_eq!(wire.to_string().parse::<StatusCode>().ok(), wire.known());
    }

    /// Case, `_`, spaces and blanks around do not change what a name means.
    #[test]
    fn spellings_people_type_parse((v, s) in any_status()) {
        prop_assert_eq!(s.parse::<StatusCode>(), Ok(v));
    }

    #[test]
    fn event_spellings_parse((v, s) in any_event()) {
        prop_assert_eq!(s.parse::<ReceiptEvent>(), Ok(v));
    }

    #[test]
    fn priority_spellings_parse((v, s) in any_priority()) {
        prop_assert_eq!(s.parse::<Priority>(), Ok(v));
    }
}
