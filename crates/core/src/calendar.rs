//! The axis's working-day calendar: local time at a fixed UTC offset,
//! working days (a configurable weekend and the public holidays of a file
//! the operator keeps), working hours, and the deadline for confirming
//! receipt of a copy.
//!
//! # The confirmation rule
//!
//! NĐ 30/2020 Art. 21.2 and 23.1 (`shared/domain.md` §1): the receiving
//! records office acts on a document "the same day, at the latest the next
//! working day" (QĐ 28 says the same for sending). Truc reads it as:
//!
//! * The copy's **day of receipt** is the local day it reached the axis if
//!   that is a working day and it came before the end of working hours (an
//!   arrival before the start of hours belongs to that morning). Otherwise
//!   (after hours, on a weekend day or a holiday) it is the **next working
//!   day**: the copy counts as received on the next working morning.
//! * The **confirmation deadline** is the end of working hours
//!   (`work_end`, 17:00 by default) of the first working day after the day
//!   of receipt: "the same day, at the latest the next working day".
//! * A confirmation (01 or 03) at or before the deadline is **on time**;
//!   later is **late**.
//!
//! So with the defaults (Mon–Fri, 07:30–17:00, UTC+7): Friday 16:59 is due
//! Monday 17:00; Friday 17:01, Saturday or Sunday is due Tuesday 17:00;
//! a working day before a holiday skips it.
//!
//! Dates and times use `jiff`'s civil types at a fixed [`Offset`]; no
//! time-zone database is needed (the axis keeps one offset, UTC+7 by
//! default, with no daylight saving).
//!
//! # Holidays file
//!
//! UTF-8 text, one holiday per line: a date `YYYY-MM-DD` or an inclusive
//! range `YYYY-MM-DD..YYYY-MM-DD`, then optionally white space and a name.
//! Blank lines and lines starting with `#` are ignored. A date listed twice
//! is refused (most likely a typing mistake). See
//! `deploy/holidays-vn-2027.txt`.

use std::collections::BTreeMap;
use std::fmt;

use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::Offset;
use jiff::Timestamp;

/// Vietnam's offset from UTC, minutes (UTC+7).
pub const DEFAULT_UTC_OFFSET_MINUTES: i32 = 420;

const DAY_MS: i64 = 86_400_000;

/// A line of a holidays file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct HolidaysError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong, quoting the text.
    pub reason: String,
}

/// A calendar setting that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    /// The UTC offset is outside -12:00..=+14:00.
    #[error("utc offset {0} minutes is outside -720..=840")]
    Offset(i32),
    /// Not a time of day `HH:MM`.
    #[error("{0:?} is not a time of day HH:MM")]
    Time(String),
    /// Working hours that end before they start.
    #[error("working hours {start} to {end} end before they start")]
    Hours {
        /// `work_start`.
        start: String,
        /// `work_end`.
        end: String,
    },
    /// Not a weekday name.
    #[error("{0:?} is not a weekday (monday … sunday, or mon … sun)")]
    Weekday(String),
    /// Every day of the week is a weekend day.
    #[error("the weekend leaves no working day in the week")]
    NoWorkingDay,
}

/// Public holidays by local date, with their names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holidays(BTreeMap<Date, String>);

impl Holidays {
    /// Parse a holidays file (see the module documentation).
    pub fn parse(text: &str) -> Result<Holidays, HolidaysError> {
        let mut days = BTreeMap::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let l = raw.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let bad = |reason: String| HolidaysError { line, reason };
            let (when, name) = match l.split_once(char::is_whitespace) {
                Some((w, n)) => (w, n.trim()),
                None => (l, ""),
            };
            let date = |s: &str| {
                parse_date(s).ok_or_else(|| {
                    bad(format!(
                        "{s:?} is not a date YYYY-MM-DD (or a range YYYY-MM-DD..YYYY-MM-DD) followed by a name"
                    ))
                })
            };
            let (first, last) = match when.split_once("..") {
                Some((a, b)) => (date(a)?, date(b)?),
                None => (date(when)?, date(when)?),
            };
            if last < first {
                return Err(bad(format!("range {when:?} ends before it starts")));
            }
            if (last - first).get_days() > 366 {
                return Err(bad(format!("range {when:?} is longer than a year")));
            }
            let mut d = first;
            loop {
                if days.insert(d, name.to_string()).is_some() {
                    return Err(bad(format!("{d} is listed twice")));
                }
                if d == last {
                    break;
                }
                d = d.tomorrow().map_err(|e| bad(e.to_string()))?;
            }
        }
        Ok(Holidays(days))
    }

    /// The holiday on `date`, if any (its name may be empty).
    pub fn get(&self, date: Date) -> Option<&str> {
        self.0.get(&date).map(String::as_str)
    }

    /// How many days are listed.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether none are.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many days are listed in `year`.
    pub fn in_year(&self, year: i16) -> usize {
        self.0.keys().filter(|d| d.year() == year).count()
    }

    /// The first and last listed dates.
    pub fn span(&self) -> Option<(Date, Date)> {
        Some((*self.0.keys().next()?, *self.0.keys().next_back()?))
    }
}

/// Working days, working hours and the local offset of the axis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calendar {
    offset: Offset,
    /// Weekend days, indexed by `Weekday::to_monday_zero_offset`.
    weekend: [bool; 7],
    holidays: Holidays,
    work_start: Time,
    work_end: Time,
}

impl Default for Calendar {
    /// UTC+7, Saturday and Sunday off, no holidays, 07:30–17:00.
    fn default() -> Self {
        Calendar {
            offset: Offset::constant(7),
            weekend: [false, false, false, false, false, true, true],
            holidays: Holidays::default(),
            work_start: Time::constant(7, 30, 0, 0),
            work_end: Time::constant(17, 0, 0, 0),
        }
    }
}

impl Calendar {
    /// The default calendar at another UTC offset.
    pub fn at_offset(utc_offset_minutes: i32) -> Result<Calendar, CalendarError> {
        if !(-720..=840).contains(&utc_offset_minutes) {
            return Err(CalendarError::Offset(utc_offset_minutes));
        }
        let offset =
            Offset::from_seconds(utc_offset_minutes * 60).map_err(|_| CalendarError::Offset(utc_offset_minutes))?;
        Ok(Calendar {
            offset,
            ..Calendar::default()
        })
    }

    /// Set the weekend from weekday names (`"saturday"`, `"sun"`, any case).
    pub fn with_weekend<S: AsRef<str>>(mut self, days: &[S]) -> Result<Calendar, CalendarError> {
        let mut weekend = [false; 7];
        for d in days {
            weekend[parse_weekday(d.as_ref())?.to_monday_zero_offset() as usize] = true;
        }
        if weekend.iter().all(|w| *w) {
            return Err(CalendarError::NoWorkingDay);
        }
        self.weekend = weekend;
        Ok(self)
    }

    /// Set working hours from `HH:MM` texts.
    pub fn with_hours(mut self, start: &str, end: &str) -> Result<Calendar, CalendarError> {
        let (s, e) = (parse_time(start)?, parse_time(end)?);
        if e <= s {
            return Err(CalendarError::Hours {
                start: start.into(),
                end: end.into(),
            });
        }
        self.work_start = s;
        self.work_end = e;
        Ok(self)
    }

    /// Set the public holidays.
    pub fn with_holidays(mut self, holidays: Holidays) -> Calendar {
        self.holidays = holidays;
        self
    }

    /// The offset from UTC, minutes.
    pub fn utc_offset_minutes(&self) -> i32 {
        self.offset.seconds() / 60
    }

    /// The holidays.
    pub fn holidays(&self) -> &Holidays {
        &self.holidays
    }

    /// The local date and time of `unix_ms`.
    pub fn local(&self, unix_ms: i64) -> DateTime {
        self.offset.to_datetime(timestamp(unix_ms))
    }

    /// The local date of `unix_ms` (for indicators and document ids).
    pub fn local_date(&self, unix_ms: i64) -> Date {
        self.local(unix_ms).date()
    }

    /// The local day of `unix_ms` as a day number (days since 1970-01-01).
    pub fn local_day(&self, unix_ms: i64) -> i64 {
        (unix_ms + i64::from(self.offset.seconds()) * 1000).div_euclid(DAY_MS)
    }

    /// Whether `date` is a working day: not a weekend day, not a holiday.
    pub fn is_working_day(&self, date: Date) -> bool {
        !self.weekend[date.weekday().to_monday_zero_offset() as usize] && self.holidays.get(date).is_none()
    }

    /// The first working day after `date`.
    pub fn next_working_day(&self, date: Date) -> Date {
        let mut d = date;
        loop {
            // Dates run out in year 9999; stay there rather than panic.
            d = match d.tomorrow() {
                Ok(t) => t,
                Err(_) => return d,
            };
            if self.is_working_day(d) {
                return d;
            }
        }
    }

    /// The local working day a copy that reached the axis at `unix_ms`
    /// counts as received on (see the module documentation).
    pub fn day_of_receipt(&self, unix_ms: i64) -> Date {
        let at = self.local(unix_ms);
        if self.is_working_day(at.date()) && at.time() < self.work_end {
            at.date()
        } else {
            self.next_working_day(at.date())
        }
    }

    /// Unix ms of the end of working hours on `date`, local.
    pub fn end_of_work(&self, date: Date) -> i64 {
        self.offset
            .to_timestamp(date.to_datetime(self.work_end))
            .map(|t| t.as_millisecond())
            .unwrap_or(i64::MAX)
    }

    /// The deadline for confirming receipt of a copy that reached the axis
    /// at `received_unix_ms`: the end of working hours of the working day
    /// after its day of receipt. Unix ms.
    pub fn confirmation_deadline(&self, received_unix_ms: i64) -> i64 {
        self.end_of_work(self.next_working_day(self.day_of_receipt(received_unix_ms)))
    }

    /// Whether a confirmation at `confirmed_unix_ms` of a copy received at
    /// `received_unix_ms` was on time.
    pub fn on_time(&self, received_unix_ms: i64, confirmed_unix_ms: i64) -> bool {
        confirmed_unix_ms <= self.confirmation_deadline(received_unix_ms)
    }
}

fn timestamp(unix_ms: i64) -> Timestamp {
    Timestamp::from_millisecond(unix_ms).unwrap_or(if unix_ms < 0 { Timestamp::MIN } else { Timestamp::MAX })
}

fn parse_time(s: &str) -> Result<Time, CalendarError> {
    let bad = || CalendarError::Time(s.to_string());
    let (h, m) = s.trim().split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: i8 = h.parse().map_err(|_| bad())?;
    let m: i8 = m.parse().map_err(|_| bad())?;
    Time::new(h, m, 0, 0).map_err(|_| bad())
}

fn parse_weekday(s: &str) -> Result<Weekday, CalendarError> {
    let l = s.trim().to_ascii_lowercase();
    let all = [
        ("monday", Weekday::Monday),
        ("tuesday", Weekday::Tuesday),
        ("wednesday", Weekday::Wednesday),
        ("thursday", Weekday::Thursday),
        ("friday", Weekday::Friday),
        ("saturday", Weekday::Saturday),
        ("sunday", Weekday::Sunday),
    ];
    all.iter()
        .find(|(name, _)| l == *name || (l.len() == 3 && name.starts_with(&l)))
        .map(|(_, d)| *d)
        .ok_or_else(|| CalendarError::Weekday(s.to_string()))
}

/// Parse `YYYY-MM-DD` (a real date, four-digit year).
pub fn parse_date(s: &str) -> Option<Date> {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i16> {
        let p = &s[r];
        p.bytes().all(|c| c.is_ascii_digit()).then(|| p.parse().ok())?
    };
    Date::new(num(0..4)?, num(5..7)? as i8, num(8..10)? as i8).ok()
}

/// The day number (days since 1970-01-01) of `date`.
pub fn day_number(date: Date) -> i64 {
    Offset::UTC
        .to_timestamp(date.to_datetime(Time::midnight()))
        .map(|t| t.as_second().div_euclid(86_400))
        .unwrap_or(0)
}

/// The day number of year `y`, month `m`, day `d` (proleptic Gregorian);
/// `None` for an impossible date such as 2026-02-29.
pub fn civil_day(y: i64, m: i64, d: i64) -> Option<i64> {
    let date = Date::new(y.try_into().ok()?, m.try_into().ok()?, d.try_into().ok()?).ok()?;
    Some(day_number(date))
}

/// The date of day number `day` (days since 1970-01-01).
pub fn date_of_day(day: i64) -> Date {
    Offset::UTC.to_datetime(timestamp(day.saturating_mul(DAY_MS))).date()
}

/// `YYYY-MM-DD` of `date`.
pub fn format_date(date: Date) -> String {
    format!("{:04}-{:02}-{:02}", date.year(), date.month(), date.day())
}

impl fmt::Display for Calendar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let off = self.utc_offset_minutes();
        let sign = if off < 0 { '-' } else { '+' };
        let weekend: Vec<String> = (0..7)
            .filter(|i| self.weekend[*i as usize])
            .filter_map(|i| Weekday::from_monday_zero_offset(i).ok())
            .map(|d| format!("{d:?}").to_lowercase())
            .collect();
        write!(
            f,
            "UTC{sign}{:02}:{:02}, working hours {}–{}, weekend {}, {} holiday(s)",
            off.abs() / 60,
            off.abs() % 60,
            self.work_start.strftime("%H:%M"),
            self.work_end.strftime("%H:%M"),
            weekend.join(" "),
            self.holidays.len()
        )?;
        if let Some((a, b)) = self.holidays.span() {
            write!(f, " from {a} to {b}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
