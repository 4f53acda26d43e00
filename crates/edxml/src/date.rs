//! Dates and timestamps as edXML writes them: civil (zone-less) local values.

use std::fmt;

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::Offset;

/// The offset edXML's zone-less times are read in unless the caller says otherwise:
/// Vietnam, UTC+7 (no daylight saving time).
pub const DEFAULT_OFFSET: Offset = Offset::constant(7);

/// A date element (`PromulgationDate`, `DueDate`, `ResponseFor/PromulgationDate`).
///
/// QCVN 102 writes `yyyy/MM/dd` in the agency's local time, with no zone. The value is kept
/// as a civil date, never converted to UTC. Forms met in real packages are kept as they
/// came, so that a package written back says what it said:
/// one vendor writes `dd/MM/yyyy` ([`EdDate::DayFirst`]); test data holds impossible dates
/// such as `2014/02/30` ([`EdDate::Verbatim`]), often inside `ResponseFor`, which names
/// another agency's document and must be carried unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EdDate {
    /// The standard form `yyyy/MM/dd`.
    Date(Date),
    /// A valid date written `dd/MM/yyyy`; written back the same way.
    DayFirst(Date),
    /// Text that is not a valid date in either form, kept verbatim (trimmed).
    Verbatim(String),
}

impl EdDate {
    /// Reads the text of a date element. Never fails: what is not a date is kept verbatim.
    pub fn parse(text: &str) -> EdDate {
        let t = text.trim();
        if let Some(d) = parse_ymd(t) {
            EdDate::Date(d)
        } else if let Some(d) = parse_dmy(t) {
            EdDate::DayFirst(d)
        } else {
            EdDate::Verbatim(t.to_owned())
        }
    }

    /// The date, when the text was a valid date in either form.
    pub fn date(&self) -> Option<Date> {
        match self {
            EdDate::Date(d) | EdDate::DayFirst(d) => Some(*d),
            EdDate::Verbatim(_) => None,
        }
    }

    /// True for the standard `yyyy/MM/dd` form of a valid date.
    pub fn is_standard(&self) -> bool {
        matches!(self, EdDate::Date(_))
    }
}

impl From<Date> for EdDate {
    fn from(d: Date) -> Self {
        EdDate::Date(d)
    }
}

impl fmt::Display for EdDate {
    /// The text as edXML writes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EdDate::Date(d) => write!(f, "{:04}/{:02}/{:02}", d.year(), d.month(), d.day()),
            EdDate::DayFirst(d) => write!(f, "{:02}/{:02}/{:04}", d.day(), d.month(), d.year()),
            EdDate::Verbatim(s) => f.write_str(s),
        }
    }
}

/// A timestamp element (`TraceHeader/Timestamp`, status `Timestamp`): `yyyy/MM/dd HH:mm:ss`
/// in the writer's local time, with no zone. Kept as a civil date-time; use
/// [`EdDateTime::to_timestamp`] with the agency's offset (usually [`DEFAULT_OFFSET`]) to
/// place it on the time line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EdDateTime {
    /// The standard form.
    DateTime(DateTime),
    /// Text that is not a valid `yyyy/MM/dd HH:mm:ss`, kept verbatim (trimmed).
    Verbatim(String),
}

impl EdDateTime {
    /// Reads the text of a timestamp element. Never fails: what is not a timestamp is
    /// kept verbatim.
    pub fn parse(text: &str) -> EdDateTime {
        let t = text.trim();
        let parsed = t.split_once(' ').and_then(|(d, tm)| {
            let date = parse_ymd(d)?;
            let mut parts = tm.split(':');
            let h = fixed(parts.next()?, 2)?;
            let m = fixed(parts.next()?, 2)?;
            let s = fixed(parts.next()?, 2)?;
            if parts.next().is_some() {
                return None;
            }
            let time = Time::new(h as i8, m as i8, s as i8, 0).ok()?;
            Some(date.to_datetime(time))
        });
        match parsed {
            Some(dt) => EdDateTime::DateTime(dt),
            None => EdDateTime::Verbatim(t.to_owned()),
        }
    }

    /// The civil date-time, when the text was valid.
    pub fn datetime(&self) -> Option<DateTime> {
        match self {
            EdDateTime::DateTime(dt) => Some(*dt),
            EdDateTime::Verbatim(_) => None,
        }
    }

    /// The instant this local time names at the given offset (edXML carries none; the
    /// axis's is [`DEFAULT_OFFSET`]). `None` for verbatim text.
    pub fn to_timestamp(&self, offset: Offset) -> Option<jiff::Timestamp> {
        offset.to_timestamp(self.datetime()?).ok()
    }
}

impl From<DateTime> for EdDateTime {
    fn from(dt: DateTime) -> Self {
        EdDateTime::DateTime(dt.round(jiff::Unit::Second).unwrap_or(dt))
    }
}

impl fmt::Display for EdDateTime {
    /// The text as edXML writes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EdDateTime::DateTime(dt) => write!(
                f,
                "{:04}/{:02}/{:02} {:02}:{:02}:{:02}",
                dt.year(),
                dt.month(),
                dt.day(),
                dt.hour(),
                dt.minute(),
                dt.second()
            ),
            EdDateTime::Verbatim(s) => f.write_str(s),
        }
    }
}

/// Digits only, exactly `len` of them.
fn fixed(s: &str, len: usize) -> Option<i32> {
    if s.len() == len && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().ok()
    } else {
        None
    }
}

fn parse_ymd(s: &str) -> Option<Date> {
    let mut p = s.split('/');
    let (y, m, d) = (fixed(p.next()?, 4)?, fixed(p.next()?, 2)?, fixed(p.next()?, 2)?);
    if p.next().is_some() {
        return None;
    }
    Date::new(y as i16, m as i8, d as i8).ok()
}

fn parse_dmy(s: &str) -> Option<Date> {
    let mut p = s.split('/');
    let (d, m, y) = (fixed(p.next()?, 2)?, fixed(p.next()?, 2)?, fixed(p.next()?, 4)?);
    if p.next().is_some() {
        return None;
    }
    Date::new(y as i16, m as i8, d as i8).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_keep_their_form() {
        for text in ["2018/09/20", "20/09/2018", "2014/02/30", "ngày 20"] {
            assert_eq!(EdDate::parse(text).to_string(), text);
        }
        assert!(EdDate::parse("2018/09/20").is_standard());
        assert_eq!(EdDate::parse("20/09/2018").date(), Some(jiff::civil::date(2018, 9, 20)));
        assert_eq!(EdDate::parse("2014/02/30"), EdDate::Verbatim("2014/02/30".into()));
    }

    #[test]
    fn timestamps_are_local_until_asked() {
        let t = EdDateTime::parse("2018/09/20 08:15:00");
        assert_eq!(t.to_string(), "2018/09/20 08:15:00");
        let ts = t.to_timestamp(DEFAULT_OFFSET).unwrap();
        assert_eq!(ts.to_string(), "2018-09-20T01:15:00Z");
        assert!(matches!(
            EdDateTime::parse("2018/09/20 25:00:00"),
            EdDateTime::Verbatim(_)
        ));
    }
}
