//! `AgencyCode::parse` and `Principal::parse_uri` on arbitrary strings:
//! never panic, accept exactly what the documented patterns accept, and
//! round-trip what they accept.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use regex::Regex;
use truc_core::agency::{CodeFormat, MAX_LEN};
use truc_core::{AgencyCode, CoreError, Principal};

struct Patterns {
    qcvn102: Regex,
    qd20: Regex,
    name: Regex,
}

fn patterns() -> &'static Patterns {
    static P: OnceLock<Patterns> = OnceLock::new();
    P.get_or_init(|| Patterns {
        // agency.rs: ^([0-9A-Z]{1,3}\.){0,3}[A-Z]\d{2}$ (ASCII digits only).
        qcvn102: Regex::new(r"^(?:[0-9A-Z]{1,3}\.){0,3}[A-Z][0-9]{2}$").unwrap(),
        // agency.rs: ^(?=.{3,35}$)[A-Y]\d{2}(\.[0-9A-Z]+)*$, the length checked apart.
        qd20: Regex::new(r"^[A-Y][0-9]{2}(?:\.[0-9A-Z]+)*$").unwrap(),
        // principal.rs: [a-z0-9][a-z0-9._-]{0,63}
        name: Regex::new(r"^[a-z0-9][a-z0-9._-]{0,63}$").unwrap(),
    })
}

fn check_code(s: &str) {
    let p = patterns();
    let qcvn = p.qcvn102.is_match(s) && s.len() <= MAX_LEN;
    let qd20 = p.qd20.is_match(s) && (3..=MAX_LEN).contains(&s.len());
    match AgencyCode::parse(s) {
        Ok(code) => {
            assert!(qcvn || qd20, "{s:?} accepted but matches neither pattern");
            assert_eq!(code.as_str(), s);
            assert_eq!(code.to_string(), s);
            assert_eq!(s.parse::<AgencyCode>().as_ref(), Ok(&code));
            let want = if qcvn && (s.contains('.') || !qd20) {
                CodeFormat::Qcvn102
            } else {
                CodeFormat::Qd20
            };
            assert_eq!(code.format(), want, "{s:?}");
            let uri = format!("urn:truc:agency:{s}");
            assert_eq!(Principal::parse_uri(&uri), Ok(Principal::Agency(code)));
        }
        Err(CoreError::InvalidAgencyCode(echo)) => {
            assert!(!qcvn && !qd20, "{s:?} refused but matches a pattern");
            assert!(echo.chars().count() <= 65, "error echo is not clipped");
        }
        Err(other) => panic!("unexpected error kind for {s:?}: {other:?}"),
    }
}

fn check_uri(s: &str) {
    let want_ok = s
        .strip_prefix("urn:truc:")
        .and_then(|rest| rest.split_once(':'))
        .map(|(role, name)| match role {
            "agency" => AgencyCode::parse(name).is_ok(),
            "operator" | "auditor" | "hub" => patterns().name.is_match(name),
            _ => false,
        });
    match Principal::parse_uri(s) {
        Ok(p) => {
            assert_eq!(want_ok, Some(true), "{s:?} accepted");
            assert_eq!(p.uri(), s);
            assert_eq!(p.to_string(), s);
            assert_eq!(Principal::parse_uri(&p.uri()).as_ref(), Ok(&p));
        }
        Err(CoreError::InvalidPrincipal(_) | CoreError::InvalidAgencyCode(_)) => {
            assert_ne!(want_ok, Some(true), "{s:?} refused");
        }
        Err(other) => panic!("unexpected error kind for {s:?}: {other:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    check_code(&s);
    check_uri(&s);
    // The same text as a name under every role.
    for role in ["agency", "operator", "auditor", "hub"] {
        check_uri(&format!("urn:truc:{role}:{s}"));
    }
});
