//! Agency-code patterns: which codes a hub serves, in either national format.

use std::fmt;
use std::str::FromStr;

use crate::agency::{clip, is_qcvn102, is_qd20, CodeFormat};
use crate::AgencyCode;

/// A set of agency codes a hub serves, as written in its configuration.
///
/// | written | matches | example |
/// |---|---|---|
/// | a code | that code only | `000.00.00.G22`, `G09.01` |
/// | `*.` + the end of a QCVN 102 code | QCVN 102 codes ending in those groups | `*.H49` matches `000.00.00.H49` and `001.02.00.H49` |
/// | the start of a QĐ 20 code + `.*` | QĐ 20 codes starting with those groups | `H49.*` matches `H49`, `H49.01` and `H49.01.02` |
///
/// A pattern covers the unit its groups name and everything below it:
/// `H49.*` matches `H49` itself, `*.00.H49` matches `00.H49` itself. A
/// suffix pattern applies to QCVN 102 codes only and a prefix pattern to
/// QĐ 20 codes only, as [`AgencyCode::format`] tells them apart (a bare
/// level-1 code such as `H49` is QĐ 20), so one code is never matched by
/// both kinds. Groups are matched whole: `*.H49` does not match `...H149`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CodePattern {
    /// One code.
    Exact(AgencyCode),
    /// `*.<groups>`: QCVN 102 codes whose last groups are these.
    Suffix(String),
    /// `<groups>.*`: QĐ 20 codes whose first groups are these.
    Prefix(String),
}

/// How specific a pattern is; larger wins. An exact code beats every
/// pattern; among patterns, more groups win (`*.04.G14` before `*.G14`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Specificity {
    exact: bool,
    groups: usize,
}

/// Why a pattern was refused. The message names the pattern and says what
/// is allowed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("agency pattern {pattern:?}: {reason}")]
pub struct PatternError {
    /// The pattern as written (clipped).
    pub pattern: String,
    /// What is wrong with it.
    pub reason: String,
}

impl CodePattern {
    /// Parses a pattern as written in a configuration: an agency code,
    /// `*.<end of a QCVN 102 code>` or `<start of a QĐ 20 code>.*`.
    pub fn parse(s: &str) -> Result<CodePattern, PatternError> {
        let err = |reason: &str| PatternError {
            pattern: clip(s),
            reason: reason.to_string(),
        };
        if s == "*" || s == "*.*" {
            return Err(err(
                "a pattern matching every code is the default route: set default_peer instead",
            ));
        }
        if let Some(tail) = s.strip_prefix("*.") {
            return groups_pattern(s, tail, Side::Suffix);
        }
        if let Some(head) = s.strip_suffix(".*") {
            return groups_pattern(s, head, Side::Prefix);
        }
        if s.contains('*') {
            return Err(err(
                "`*` may only stand for whole groups at the start (`*.H49`, QCVN 102) or at the end (`H49.*`, QĐ 20)",
            ));
        }
        AgencyCode::parse(s).map(CodePattern::Exact).map_err(|_| {
            err("not an agency code (QCVN 102, e.g. 000.00.00.H49; QĐ 20, e.g. H49.01) nor a pattern (*.H49, H49.*)")
        })
    }

    /// Whether `code` is one of the codes this pattern covers.
    pub fn matches(&self, code: &AgencyCode) -> bool {
        let c = code.as_str();
        match self {
            CodePattern::Exact(e) => e == code,
            CodePattern::Suffix(tail) => {
                code.format() == CodeFormat::Qcvn102
                    && (c == tail || c.strip_suffix(tail.as_str()).is_some_and(|rest| rest.ends_with('.')))
            }
            CodePattern::Prefix(head) => {
                code.format() == CodeFormat::Qd20
                    && (c == head || c.strip_prefix(head.as_str()).is_some_and(|rest| rest.starts_with('.')))
            }
        }
    }

    /// How specific the pattern is (exact codes first, then by groups).
    pub fn specificity(&self) -> Specificity {
        match self {
            CodePattern::Exact(c) => Specificity {
                exact: true,
                groups: groups(c.as_str()),
            },
            CodePattern::Suffix(g) | CodePattern::Prefix(g) => Specificity {
                exact: false,
                groups: groups(g),
            },
        }
    }
}

/// Which end of a code a pattern's `*` stands for.
#[derive(Clone, Copy)]
enum Side {
    /// `*.<groups>`: QCVN 102.
    Suffix,
    /// `<groups>.*`: QĐ 20.
    Prefix,
}

/// `*.<groups>` or `<groups>.*` as written in `s`: the groups must be the
/// end of a QCVN 102 code or the start of a QĐ 20 code; an error says which
/// form to write when they are the other.
fn groups_pattern(s: &str, groups: &str, side: Side) -> Result<CodePattern, PatternError> {
    let err = |reason: String| PatternError {
        pattern: clip(s),
        reason,
    };
    if groups.contains('*') {
        return Err(err(
            "only one `*`, at the start (`*.H49`) or at the end (`H49.*`)".into()
        ));
    }
    if groups.chars().any(|c| c.is_ascii_lowercase()) {
        return Err(err("agency codes are upper-case".into()));
    }
    let (fits, fits_other, want, other) = match side {
        Side::Suffix => (
            is_qcvn102(groups),
            is_qd20(groups),
            "after `*.` comes the end of a QCVN 102 code, level-1 code (a letter and two digits) last, e.g. *.H49 or \
             *.00.H49",
            format!("{groups} is QĐ 20 (level-1 code first): write {groups}.*"),
        ),
        Side::Prefix => (
            is_qd20(groups),
            is_qcvn102(groups),
            "before `.*` comes the start of a QĐ 20 code, level-1 code (a letter A–Y and two digits) first, e.g. \
             H49.* or G09.01.*",
            format!("{groups} is QCVN 102 (level-1 code last): write *.{groups}"),
        ),
    };
    match (fits, fits_other) {
        (true, _) => Ok(match side {
            Side::Suffix => CodePattern::Suffix(groups.to_string()),
            Side::Prefix => CodePattern::Prefix(groups.to_string()),
        }),
        (false, true) => Err(err(format!("{want}; {other}"))),
        (false, false) => Err(err(want.to_string())),
    }
}

fn groups(s: &str) -> usize {
    s.split('.').count()
}

impl fmt::Display for CodePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodePattern::Exact(c) => write!(f, "{c}"),
            CodePattern::Suffix(t) => write!(f, "*.{t}"),
            CodePattern::Prefix(h) => write!(f, "{h}.*"),
        }
    }
}

impl FromStr for CodePattern {
    type Err = PatternError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CodePattern::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(s: &str) -> AgencyCode {
        AgencyCode::parse(s).unwrap()
    }

    fn pat(s: &str) -> CodePattern {
        CodePattern::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_three_forms_parse_and_print_back() {
        for s in [
            "000.00.00.H49",
            "G09.01",
            "*.H49",
            "*.00.H49",
            "*.04.G14",
            "H49.*",
            "G09.01.*",
            "Z22",
            "*.Z22",
        ] {
            assert_eq!(pat(s).to_string(), s);
        }
        assert_eq!(pat("*.H49"), CodePattern::Suffix("H49".into()));
        assert_eq!(pat("H49.*"), CodePattern::Prefix("H49".into()));
        assert_eq!(pat("G22"), CodePattern::Exact(code("G22")));
    }

    #[test]
    fn suffix_patterns_match_qcvn102_codes_by_whole_groups() {
        let p = pat("*.H49");
        for yes in ["000.00.00.H49", "001.02.00.H49", "28.22.H49", "0.H49"] {
            assert!(p.matches(&code(yes)), "{yes}");
        }
        // Another province; a group that only ends in H49's digits; the
        // bare code, which is QĐ 20 form; QĐ 20 codes.
        for no in ["000.00.00.H41", "000.00.00.H149", "H49", "H49.01", "G09.H49.01"] {
            assert!(!AgencyCode::parse(no).is_ok_and(|c| p.matches(&c)), "{no}");
        }
        let p = pat("*.04.G14");
        assert!(p.matches(&code("000.00.04.G14")));
        assert!(!p.matches(&code("000.00.05.G14")));
        assert!(!p.matches(&code("000.00.004.G14")));
        // A one-group QCVN 102 code (Z is no QĐ 20 letter) is its own unit.
        assert!(pat("*.Z22").matches(&code("Z22")));
    }

    #[test]
    fn prefix_patterns_match_qd20_codes_by_whole_groups() {
        let p = pat("H49.*");
        for yes in ["H49", "H49.01", "H49.01.02", "H49.ABC"] {
            assert!(p.matches(&code(yes)), "{yes}");
        }
        for no in ["H41.01", "H491.01", "000.00.00.H49", "G22"] {
            assert!(!AgencyCode::parse(no).is_ok_and(|c| p.matches(&c)), "{no}");
        }
        let p = pat("G09.01.*");
        assert!(p.matches(&code("G09.01")) && p.matches(&code("G09.01.7")));
        assert!(!p.matches(&code("G09.010")) && !p.matches(&code("G09")));
    }

    #[test]
    fn exact_beats_patterns_and_more_groups_beat_fewer() {
        assert!(pat("000.00.04.G14").specificity() > pat("*.00.04.G14").specificity());
        assert!(pat("G14").specificity() > pat("G14.01.02.03.*").specificity());
        assert!(pat("*.04.G14").specificity() > pat("*.G14").specificity());
        assert!(pat("G09.01.*").specificity() > pat("G09.*").specificity());
        assert_eq!(pat("*.G14").specificity(), pat("G14.*").specificity());
    }

    #[test]
    fn refusals_name_the_pattern_and_the_fix() {
        let cases = [
            ("*", "default_peer"),
            ("*.*", "default_peer"),
            ("*.h49", "upper-case"),
            ("h49.*", "upper-case"),
            ("*.G09.01", "write G09.01.*"),
            ("000.00.*", "before `.*` comes the start of a QĐ 20 code"),
            ("00.H49.*", "write *.00.H49"),
            ("*.H49.*", "only one `*`"),
            ("*.*.H49", "only one `*`"),
            ("H4*", "whole groups"),
            ("000.*.H49", "whole groups"),
            ("", "not an agency code"),
            ("H 49", "not an agency code"),
            ("*.0000.H49", "after `*.`"),
        ];
        for (s, words) in cases {
            let e = CodePattern::parse(s).unwrap_err();
            let msg = e.to_string();
            assert!(msg.contains(&format!("{s:?}")) && msg.contains(words), "{s:?}: {msg}");
        }
    }
}
