use jiff::civil::date;

use super::*;

/// Unix ms of a local time at UTC+7.
fn at(y: i16, m: i8, d: i8, h: i8, mi: i8) -> i64 {
    Offset::constant(7)
        .to_timestamp(date(y, m, d).at(h, mi, 0, 0))
        .unwrap()
        .as_millisecond()
}

/// The example holidays around the dates these tests use.
fn vn() -> Calendar {
    let holidays = Holidays::parse(
        "# test holidays\n\
         2027-01-01  Tết Dương lịch\n\
         \n\
         2027-04-30  Ngày Chiến thắng\n\
         2027-05-01  Quốc tế Lao động\n\
         2027-05-03  nghỉ bù 1/5\n",
    )
    .unwrap();
    Calendar::default().with_holidays(holidays)
}

#[test]
fn the_dates_used_here_are_the_weekdays_they_claim() {
    assert_eq!(date(2027, 3, 5).weekday(), Weekday::Friday);
    assert_eq!(date(2027, 4, 29).weekday(), Weekday::Thursday);
    assert_eq!(date(2026, 12, 31).weekday(), Weekday::Thursday);
    assert_eq!(date(2027, 1, 1).weekday(), Weekday::Friday);
}

#[test]
fn friday_before_and_after_the_end_of_hours() {
    let c = vn();
    // Friday 16:59: received that day, due the next working day (Monday).
    assert_eq!(c.day_of_receipt(at(2027, 3, 5, 16, 59)), date(2027, 3, 5));
    assert_eq!(c.confirmation_deadline(at(2027, 3, 5, 16, 59)), at(2027, 3, 8, 17, 0));
    // Friday 17:01 (and 17:00 sharp): counts from Monday morning, due Tuesday.
    assert_eq!(c.day_of_receipt(at(2027, 3, 5, 17, 1)), date(2027, 3, 8));
    assert_eq!(c.confirmation_deadline(at(2027, 3, 5, 17, 1)), at(2027, 3, 9, 17, 0));
    assert_eq!(c.confirmation_deadline(at(2027, 3, 5, 17, 0)), at(2027, 3, 9, 17, 0));
}

#[test]
fn weekend_and_early_morning_arrivals() {
    let c = vn();
    for t in [at(2027, 3, 6, 10, 0), at(2027, 3, 7, 23, 59), at(2027, 3, 8, 6, 0)] {
        assert_eq!(c.day_of_receipt(t), date(2027, 3, 8));
        assert_eq!(c.confirmation_deadline(t), at(2027, 3, 9, 17, 0));
    }
    // During hours on Monday: due Tuesday too.
    assert_eq!(c.confirmation_deadline(at(2027, 3, 8, 7, 30)), at(2027, 3, 9, 17, 0));
    assert_eq!(c.confirmation_deadline(at(2027, 3, 8, 16, 0)), at(2027, 3, 9, 17, 0));
}

#[test]
fn the_day_before_a_holiday_skips_it() {
    let c = vn();
    // Thursday 29/4: Friday 30/4 and the compensatory Monday 3/5 are
    // holidays, so the next working day is Tuesday 4/5.
    assert!(!c.is_working_day(date(2027, 4, 30)));
    assert_eq!(c.next_working_day(date(2027, 4, 29)), date(2027, 5, 4));
    assert_eq!(c.confirmation_deadline(at(2027, 4, 29, 10, 0)), at(2027, 5, 4, 17, 0));
    // After hours that Thursday: received Tuesday, due Wednesday.
    assert_eq!(c.confirmation_deadline(at(2027, 4, 29, 18, 0)), at(2027, 5, 5, 17, 0));
    // On the holiday itself: the same as after hours the day before.
    assert_eq!(c.confirmation_deadline(at(2027, 4, 30, 9, 0)), at(2027, 5, 5, 17, 0));
}

#[test]
fn across_a_year_end() {
    let c = vn();
    // Thursday 31/12 during hours: 1/1 is a holiday, then the weekend.
    assert_eq!(c.confirmation_deadline(at(2026, 12, 31, 10, 0)), at(2027, 1, 4, 17, 0));
    // After hours: received Monday 4/1, due Tuesday 5/1.
    assert_eq!(c.day_of_receipt(at(2026, 12, 31, 17, 30)), date(2027, 1, 4));
    assert_eq!(c.confirmation_deadline(at(2026, 12, 31, 17, 30)), at(2027, 1, 5, 17, 0));
    // The local date of a UTC instant on 31/12 can already be 1/1.
    let t = Offset::UTC
        .to_timestamp(date(2026, 12, 31).at(18, 0, 0, 0))
        .unwrap()
        .as_millisecond();
    assert_eq!(c.local_date(t), date(2027, 1, 1));
}

#[test]
fn on_time_is_at_or_before_the_deadline() {
    let c = vn();
    let received = at(2027, 3, 5, 16, 59);
    let deadline = at(2027, 3, 8, 17, 0);
    assert!(c.on_time(received, received + 1000));
    assert!(c.on_time(received, deadline));
    assert!(!c.on_time(received, deadline + 1));
}

#[test]
fn weekend_hours_and_offset_are_configurable() {
    // A Friday–Saturday weekend, 08:00–16:00, UTC+3.
    let c = Calendar::at_offset(180)
        .unwrap()
        .with_weekend(&["Friday", "sat"])
        .unwrap()
        .with_hours("08:00", "16:00")
        .unwrap();
    assert_eq!(c.utc_offset_minutes(), 180);
    let local = |y, m, d, h, mi| {
        Offset::constant(3)
            .to_timestamp(date(y, m, d).at(h, mi, 0, 0))
            .unwrap()
            .as_millisecond()
    };
    let end = |y, m, d| local(y, m, d, 16, 0);
    // Thursday 15:00: due Sunday 16:00.
    assert_eq!(c.confirmation_deadline(local(2027, 3, 4, 15, 0)), end(2027, 3, 7));
    // Thursday 16:30: received Sunday, due Monday.
    assert_eq!(c.confirmation_deadline(local(2027, 3, 4, 16, 30)), end(2027, 3, 8));
    assert!(c.is_working_day(date(2027, 3, 7)));
    assert_eq!(
        Calendar::default().with_weekend(&["mon", "tue", "wed", "thu", "fri", "sat", "sun"]),
        Err(CalendarError::NoWorkingDay)
    );
    assert!(matches!(
        Calendar::default().with_weekend(&["caturday"]),
        Err(CalendarError::Weekday(_))
    ));
    assert!(matches!(
        Calendar::default().with_hours("17:00", "07:30"),
        Err(CalendarError::Hours { .. })
    ));
    assert!(matches!(
        Calendar::default().with_hours("7:30", "17:00"),
        Err(CalendarError::Time(_))
    ));
    assert!(matches!(
        Calendar::default().with_hours("07:30", "24:00"),
        Err(CalendarError::Time(_))
    ));
    assert_eq!(Calendar::at_offset(900), Err(CalendarError::Offset(900)));
    assert_eq!(
        Calendar::default().to_string(),
        "UTC+07:00, working hours 07:30–17:00, weekend saturday sunday, 0 holiday(s)"
    );
}

#[test]
fn holiday_files_ranges_and_errors_by_line() {
    let h = Holidays::parse("2027-02-05..2027-02-09   Tết Nguyên đán\n2027-09-02 Quốc khánh\n").unwrap();
    assert_eq!(h.len(), 6);
    assert_eq!(h.get(date(2027, 2, 7)), Some("Tết Nguyên đán"));
    assert_eq!(h.span(), Some((date(2027, 2, 5), date(2027, 9, 2))));
    // A date without a name is allowed.
    assert_eq!(Holidays::parse("2027-01-01\n").unwrap().get(date(2027, 1, 1)), Some(""));
    let err = |text: &str| Holidays::parse(text).unwrap_err();
    let e = err("# ok\n2027-01-01 a\n2027-02-30 b\n");
    assert_eq!(e.line, 3);
    assert!(e.to_string().starts_with("line 3: \"2027-02-30\" is not a date"), "{e}");
    assert_eq!(err("1/1/2027 Tết\n").line, 1);
    assert_eq!(err("2027-01-01 a\n2027-01-01 b\n").line, 2);
    assert!(err("2027-01-01 a\n2027-01-01 b\n").reason.contains("listed twice"));
    assert!(err("2027-02-09..2027-02-05 x\n").reason.contains("ends before"));
    assert!(err("2027-01-01..2029-01-01 x\n").reason.contains("longer than a year"));
}

#[test]
fn day_numbers_and_local_days() {
    for d in [0, 1, 59, 365, 10_957, 20_758, 20_819, 47_482, -1] {
        assert_eq!(day_number(date_of_day(d)), d);
    }
    assert_eq!(day_number(date(2026, 11, 1)), 20_758);
    assert_eq!(format_date(date_of_day(0)), "1970-01-01");
    assert_eq!(parse_date("2028-02-29"), Some(date(2028, 2, 29)));
    for bad in [
        "2026-02-29",
        "2026-13-01",
        "yesterday",
        "2026-1-01",
        "+026-01-01",
        "2026-01-01x",
    ] {
        assert_eq!(parse_date(bad), None, "{bad}");
    }
    let c = Calendar::default();
    // 2026-11-02 16:59:59.999 UTC is 23:59:59.999 in Hà Nội.
    let t = day_number(date(2026, 11, 2)) * DAY_MS + 17 * 3_600_000 - 1;
    assert_eq!(c.local_day(t), day_number(date(2026, 11, 2)));
    assert_eq!(c.local_day(t + 1), day_number(date(2026, 11, 3)));
    assert_eq!(c.local_date(t + 1), date(2026, 11, 3));
    assert_eq!(Calendar::at_offset(-60).unwrap().local_day(0), -1);
}

#[test]
fn the_example_holidays_file_parses_and_skips_tet() {
    let h = Holidays::parse(include_str!("../../../../deploy/holidays-vn-2027.txt")).unwrap();
    assert_eq!(h.span(), Some((date(2027, 1, 1), date(2027, 9, 3))));
    assert_eq!(h.len(), 14);
    let c = Calendar::default().with_holidays(h);
    // Thursday 4/2 during hours, before Tết: due Friday 12/2.
    assert_eq!(c.confirmation_deadline(at(2027, 2, 4, 9, 0)), at(2027, 2, 12, 17, 0));
    // During Tết: received Friday 12/2, due Monday 15/2.
    assert_eq!(c.confirmation_deadline(at(2027, 2, 8, 9, 0)), at(2027, 2, 15, 17, 0));
}
