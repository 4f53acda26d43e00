//! One name for every value of the wire contract's enums, written once.
//!
//! Every enum of `truc.v1` ([`Priority`](crate::v1::Priority),
//! [`StatusCode`](crate::v1::StatusCode), [`AgencyState`](crate::v1::AgencyState),
//! …) implements [`Display`](fmt::Display) with its one name and
//! [`FromStr`] accepting that name, the other spellings people write
//! ([`Named::aliases`]) and its number. The table of names is `table.rs`;
//! this module holds what all of them share.
//!
//! A name is lower case, its words joined by `-`: the proto constant
//! without its prefix (`TRANSPORT_STATE_DEAD_LETTERED` is `dead-lettered`),
//! except priorities, which are named as people write them on the axis
//! (`hoa-toc`; the English words and the Vietnamese with its marks are
//! accepted too).
//!
//! An enum field arrives as an `i32` and may hold a number this build does
//! not know (a newer peer): [`Wire`] converts it once and prints such a
//! number as `unknown(7)`, never as another value.

use std::fmt;
use std::str::FromStr;

mod grpc;
mod table;
#[cfg(test)]
mod tests;

pub use grpc::grpc_code_name;

/// An enum of the wire contract whose values have names.
pub trait Named: Copy + Eq + fmt::Debug + fmt::Display + FromStr<Err = UnknownName> + Into<i32> + 'static {
    /// What one value is, in messages: `"priority"`, `"agency state"`.
    const WHAT: &'static str;
    /// Every value, in the order of their numbers.
    const ALL: &'static [Self];

    /// The value's one name: lower case, words joined by `-`.
    fn name(self) -> &'static str;

    /// Other spellings [`FromStr`] accepts for the value (already in the
    /// form input is brought to: lower case, `-` between words).
    fn aliases(self) -> &'static [&'static str];

    /// The values offered to people (in `--help` and in a refusal): every
    /// value but `unspecified`, which no one chooses.
    fn offered() -> impl Iterator<Item = Self> {
        Self::ALL.iter().copied().filter(|v| v.name() != "unspecified")
    }
}

/// A name (or number) that is no value of the enum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownName {
    /// What was asked for: `"priority"`.
    pub what: &'static str,
    /// What was given, as given.
    pub given: String,
    /// The values that would have been accepted, by name and number.
    pub expected: Vec<(&'static str, i32)>,
}

impl fmt::Display for UnknownName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown {} {:?}: expected one of ", self.what, self.given)?;
        for (i, (name, number)) in self.expected.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            write!(f, "{sep}{name} ({number})")?;
        }
        Ok(())
    }
}

impl std::error::Error for UnknownName {}

/// `s` as names are compared: trimmed, lower case, `_` and spaces as `-`.
fn normalize(s: &str) -> String {
    s.trim()
        .chars()
        .map(|c| if c == '_' || c.is_whitespace() { '-' } else { c })
        .flat_map(char::to_lowercase)
        .collect()
}

/// The value of `E` named (or numbered) by `s`: its name, an alias or its
/// number (`03` is 3); case, `_` and spaces do not matter.
pub(crate) fn parse<E: Named>(s: &str) -> Result<E, UnknownName> {
    let n = normalize(s);
    let found = match n.parse::<i32>() {
        Ok(number) => E::ALL.iter().copied().find(|v| (*v).into() == number),
        Err(_) => E::ALL
            .iter()
            .copied()
            .find(|v| v.name() == n || v.aliases().contains(&n.as_str())),
    };
    found.ok_or_else(|| UnknownName {
        what: E::WHAT,
        given: s.to_string(),
        expected: E::offered().map(|v| (v.name(), v.into())).collect(),
    })
}

/// An enum field as it came off the wire: a value this build knows, or a
/// number it does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Wire<E> {
    /// A value of the enum.
    Known(E),
    /// A number no value of the enum has.
    Unknown(i32),
}

impl<E> Wire<E> {
    /// The value, if the number was one.
    pub fn known(self) -> Option<E> {
        match self {
            Wire::Known(e) => Some(e),
            Wire::Unknown(_) => None,
        }
    }
}

impl<E: TryFrom<i32>> From<i32> for Wire<E> {
    fn from(number: i32) -> Self {
        match E::try_from(number) {
            Ok(e) => Wire::Known(e),
            Err(_) => Wire::Unknown(number),
        }
    }
}

/// The value's name, or `unknown(7)`; padded as asked (`{:<14}`).
impl<E: fmt::Display> fmt::Display for Wire<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Wire::Known(e) => e.fmt(f),
            Wire::Unknown(n) => f.pad(&format!("unknown({n})")),
        }
    }
}

/// A dead letter's reason as its `reason` field holds it: `UNSPECIFIED`
/// (dead letters written before the field existed) is
/// [`Attempts`](crate::v1::DeadLetterReason::Attempts), as `ops.proto`
/// says.
pub fn dead_letter_reason(value: i32) -> Wire<crate::v1::DeadLetterReason> {
    use crate::v1::DeadLetterReason;
    match Wire::from(value) {
        Wire::Known(DeadLetterReason::Unspecified) => Wire::Known(DeadLetterReason::Attempts),
        other => other,
    }
}
