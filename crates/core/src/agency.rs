//! Agency codes (mã định danh cơ quan): the two formats that coexist on the
//! national axis (domain.md §2).
//!
//! * **QCVN 102:2016**: groups written from the lowest level on the left to
//!   the level-1 code on the right, e.g. `000.00.00.G22`. Accepted in the
//!   lenient form seen in real data, `^([0-9A-Z]{1,3}\.){0,3}[A-Z]\d{2}$`
//!   (so `999.010.01.H22` and `28.22.H17` pass too).
//! * **QĐ 20/2020/QĐ-TTg**: the level-1 code first, then lower levels left to
//!   right, e.g. `G09.01`: `^(?=.{3,35}$)[A-Y]\d{2}(\.[0-9A-Z]+)*$`.
//!
//! Only ASCII digits, upper-case letters and dots are allowed; no code is
//! longer than 35 characters.

use std::fmt;
use std::str::FromStr;

use crate::CoreError;

/// The longest agency code accepted (QĐ 20 allows 35 characters).
pub const MAX_LEN: usize = 35;

/// Which of the two national formats an [`AgencyCode`] is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CodeFormat {
    /// QCVN 102:2016, level-1 code last, e.g. `000.00.00.G22`.
    Qcvn102,
    /// QĐ 20/2020, level-1 code first, e.g. `G09.01`.
    Qd20,
}

/// A validated agency code in either national format.
///
/// Codes are compared byte for byte: the same agency written in the two
/// formats gives two different codes (converting between them needs the
/// national directory).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AgencyCode(String);

impl AgencyCode {
    /// Validates `s` as an agency code in QCVN 102 or QĐ 20 form.
    ///
    /// Nothing is trimmed or case-folded: lower-case letters, whitespace,
    /// empty groups and codes longer than 35 characters are refused with
    /// [`CoreError::InvalidAgencyCode`].
    pub fn parse(s: &str) -> Result<AgencyCode, CoreError> {
        if is_qcvn102(s) || is_qd20(s) {
            Ok(AgencyCode(s.to_owned()))
        } else {
            Err(CoreError::InvalidAgencyCode(clip(s)))
        }
    }

    /// The code as written, e.g. `000.00.00.G22`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A bare level-1 code, such as `G22`: valid in QĐ 20 form (the
    /// ministry itself), but more often a QCVN 102 code typed short (the
    /// same agency is `000.00.00.G22` there). Tools ask before registering
    /// one.
    pub fn is_bare_level1(&self) -> bool {
        !self.0.contains('.')
    }

    /// The format the code is written in.
    ///
    /// Some codes fit both patterns; they are classified by where the
    /// level-1 group (a letter and two digits) stands:
    /// * a bare level-1 code such as `G22` is [`CodeFormat::Qd20`] (in
    ///   QCVN 102 the same agency is written `000.00.00.G22`);
    /// * a code with several groups whose last group is a level-1 code, such
    ///   as `H22.G01`, is [`CodeFormat::Qcvn102`] ("letter group last");
    /// * otherwise it is the one format it fits.
    pub fn format(&self) -> CodeFormat {
        let s = self.0.as_str();
        if is_qcvn102(s) && (s.contains('.') || !is_qd20(s)) {
            CodeFormat::Qcvn102
        } else {
            CodeFormat::Qd20
        }
    }
}

impl fmt::Display for AgencyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for AgencyCode {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AgencyCode::parse(s)
    }
}

impl AsRef<str> for AgencyCode {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A level-1 code: one letter from `A` to `last_letter`, then two digits.
fn is_level1(group: &str, last_letter: u8) -> bool {
    match group.as_bytes() {
        [m, x1, x2] => (b'A'..=last_letter).contains(m) && x1.is_ascii_digit() && x2.is_ascii_digit(),
        _ => false,
    }
}

/// `[0-9A-Z]+` for a group that must be non-empty.
fn is_group(group: &str) -> bool {
    !group.is_empty() && group.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
}

/// `^([0-9A-Z]{1,3}\.){0,3}[A-Z]\d{2}$`
pub(crate) fn is_qcvn102(s: &str) -> bool {
    if s.len() > MAX_LEN {
        return false;
    }
    let groups: Vec<&str> = s.split('.').collect();
    let Some((last, lower)) = groups.split_last() else {
        return false;
    };
    lower.len() <= 3 && lower.iter().all(|g| g.len() <= 3 && is_group(g)) && is_level1(last, b'Z')
}

/// `^(?=.{3,35}$)[A-Y]\d{2}(\.[0-9A-Z]+)*$`
pub(crate) fn is_qd20(s: &str) -> bool {
    if s.len() < 3 || s.len() > MAX_LEN {
        return false;
    }
    let mut groups = s.split('.');
    match groups.next() {
        Some(first) if is_level1(first, b'Y') => groups.all(is_group),
        _ => false,
    }
}

/// The input as echoed in an error: at most 64 characters.
pub(crate) fn clip(s: &str) -> String {
    const KEEP: usize = 64;
    if s.chars().count() <= KEEP {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(KEEP).collect();
        out.push('…');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt_of(s: &str) -> CodeFormat {
        AgencyCode::parse(s).unwrap_or_else(|e| panic!("{s}: {e}")).format()
    }

    #[test]
    fn bare_level1_codes_are_the_ambiguous_ones() {
        for (s, bare) in [
            ("G22", true),
            ("000.00.00.G22", false),
            ("G09.01", false),
            ("H22.G01", false),
        ] {
            assert_eq!(AgencyCode::parse(s).unwrap().is_bare_level1(), bare, "{s}");
        }
    }

    #[test]
    fn qcvn102_examples_from_domain() {
        for s in [
            "000.00.00.G22",
            "000.00.00.G17",
            "000.00.00.H41",
            "000.00.00.H14",
            "000.00.00.H29",
            "000.00.00.H49",
            "000.00.04.G14",
            "999.010.01.H22",
            "28.22.H17",
        ] {
            assert_eq!(fmt_of(s), CodeFormat::Qcvn102, "{s}");
            assert_eq!(AgencyCode::parse(s).map(|c| c.to_string()), Ok(s.to_string()));
        }
    }

    #[test]
    fn qcvn102_lenient_forms() {
        for s in ["0.G22", "A.B.C.Z99", "ABC.H01", "1.2.3.H01", "Z01"] {
            assert_eq!(fmt_of(s), CodeFormat::Qcvn102, "{s}");
        }
    }

    #[test]
    fn qd20_examples() {
        for s in [
            "G09.01",
            "G01",
            "G22",
            "H26.01.02",
            "A01.ABCDEF123",
            "Y99.1",
            // 35 characters exactly.
            "G09.0123456789012345678901234567890",
        ] {
            assert_eq!(fmt_of(s), CodeFormat::Qd20, "{s}");
        }
        assert_eq!("G09.0123456789012345678901234567890".len(), 35);
    }

    #[test]
    fn ambiguous_codes_are_classified_by_the_documented_rule() {
        // Bare level-1 codes fit both: QĐ 20.
        assert_eq!(fmt_of("G22"), CodeFormat::Qd20);
        assert_eq!(fmt_of("H49"), CodeFormat::Qd20);
        // Z is not a QĐ 20 level-1 letter.
        assert_eq!(fmt_of("Z22"), CodeFormat::Qcvn102);
        // Several groups with a level-1 group last: QCVN 102.
        assert_eq!(fmt_of("H22.G01"), CodeFormat::Qcvn102);
        // Last group is not a level-1 code: only QĐ 20 fits.
        assert_eq!(fmt_of("G22.0001"), CodeFormat::Qd20);
    }

    #[test]
    fn rejects_bad_codes() {
        let too_long = format!("G09.{}", "1".repeat(32));
        assert_eq!(too_long.len(), 36);
        for s in [
            "",
            ".",
            "G2",
            "G222",
            "g22",
            "000.00.00.g22",
            "000.00.00.G2",
            "000.00.00.G222",
            "000.00.00.22G",
            " 000.00.00.G22",
            "000.00.00.G22 ",
            "000.00.00.G22\n",
            "000 .00.00.G22",
            "000..00.G22",
            ".000.00.00.G22",
            "000.00.00.G22.",
            "G09..01",
            "G09.",
            "G09.01.",
            "G09.0a",
            "G09-01",
            "0000.00.00.G22",   // group of 4 before the level-1 code, not QĐ 20
            "00.000.00.00.G22", // five groups
            "Z09.01",           // Z is not a QĐ 20 level-1 letter
            "000.00.00.Ｇ22",   // full-width letter
            "000.00.00.G２2",   // full-width digit
            "urn:truc:agency:G22",
            too_long.as_str(),
        ] {
            assert!(
                matches!(AgencyCode::parse(s), Err(CoreError::InvalidAgencyCode(_))),
                "{s:?} should be rejected"
            );
        }
    }

    #[test]
    fn error_echo_is_clipped() {
        let long = "x".repeat(10_000);
        let err = AgencyCode::parse(&long).unwrap_err().to_string();
        assert!(err.len() < 300, "{err}");
    }

    #[test]
    fn traits() {
        let a: AgencyCode = "000.00.00.G22".parse().unwrap();
        let b = AgencyCode::parse("000.00.00.H29").unwrap();
        assert!(a < b);
        assert_eq!(a.as_str(), "000.00.00.G22");
        assert_eq!(a.as_ref(), "000.00.00.G22");
        assert_eq!(format!("{a}"), "000.00.00.G22");
        let mut set = std::collections::HashSet::new();
        set.insert(a.clone());
        assert!(set.contains(&a));
    }
}
