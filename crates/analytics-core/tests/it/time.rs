//! Business time: days, hours and months in the configured zone, across DST changes.

use analytics_core::time::{Calendar, DateRange, DayHour, YearMonth, parse_date};
use chrono::NaiveDate;
use chrono_tz::Tz;

use crate::support::at;

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn month(s: &str) -> YearMonth {
    s.parse().unwrap()
}

#[test]
fn shanghai_days_start_at_16_00_utc() {
    let shanghai = Calendar::default();
    assert_eq!(shanghai.zone(), chrono_tz::Asia::Shanghai);
    assert_eq!(
        shanghai.date(at("2025-11-30T16:00:00Z")),
        date("2025-12-01")
    );
    assert_eq!(
        shanghai.date(at("2025-11-30T15:59:59Z")),
        date("2025-11-30")
    );
    assert_eq!(
        shanghai.date(at("2025-11-30T17:30:00Z")),
        date("2025-12-01")
    );
    assert_eq!(shanghai.month(at("2025-11-30T16:00:00Z")), month("2025-12"));
    assert_eq!(shanghai.month(at("2025-11-30T15:59:59Z")), month("2025-11"));
    assert_eq!(
        shanghai.hour(at("2025-11-30T16:30:00Z")),
        DayHour {
            date: date("2025-12-01"),
            hour: 0
        }
    );
    let window = shanghai.day_window(date("2025-12-01"));
    assert_eq!(window.start, at("2025-11-30T16:00:00Z"));
    assert_eq!(window.end, at("2025-12-01T16:00:00Z"));
    assert!(window.contains(at("2025-11-30T16:00:00Z")));
    assert!(!window.contains(at("2025-12-01T16:00:00Z")));
    assert_eq!(
        shanghai.month_window(month("2025-12")),
        at("2025-11-30T16:00:00Z")..at("2025-12-31T16:00:00Z")
    );
}

#[test]
fn new_york_days_follow_daylight_saving_changes() {
    let new_york = Calendar::new(chrono_tz::America::New_York);

    // 2025-03-09: clocks jump from 02:00 EST to 03:00 EDT; the day has 23 hours.
    let spring = new_york.day_window(date("2025-03-09"));
    assert_eq!(spring.start, at("2025-03-09T05:00:00Z"));
    assert_eq!(spring.end, at("2025-03-10T04:00:00Z"));
    assert_eq!((spring.end - spring.start).num_hours(), 23);
    assert_eq!(
        new_york.date(at("2025-03-10T03:59:59Z")),
        date("2025-03-09")
    );
    assert_eq!(
        new_york.date(at("2025-03-10T04:00:00Z")),
        date("2025-03-10")
    );
    // 06:59:59Z is 01:59:59 EST, 07:00:00Z is 03:00:00 EDT: hour 2 does not exist.
    assert_eq!(new_york.hour(at("2025-03-09T06:59:59Z")).hour, 1);
    assert_eq!(new_york.hour(at("2025-03-09T07:00:00Z")).hour, 3);

    // 2025-11-02: clocks fall back from 02:00 EDT to 01:00 EST; the day has 25 hours.
    let autumn = new_york.day_window(date("2025-11-02"));
    assert_eq!(autumn.start, at("2025-11-02T04:00:00Z"));
    assert_eq!(autumn.end, at("2025-11-03T05:00:00Z"));
    assert_eq!((autumn.end - autumn.start).num_hours(), 25);
    assert_eq!(
        new_york.date(at("2025-11-03T04:30:00Z")),
        date("2025-11-02")
    );
    assert_eq!(
        new_york.date(at("2025-11-03T05:00:00Z")),
        date("2025-11-03")
    );
    // 01:30 happens twice; both are hour 1 of the same day.
    let first = new_york.hour(at("2025-11-02T05:30:00Z"));
    let second = new_york.hour(at("2025-11-02T06:30:00Z"));
    assert_eq!(
        first,
        DayHour {
            date: date("2025-11-02"),
            hour: 1
        }
    );
    assert_eq!(first, second);

    // Consecutive windows tile time without gaps or overlaps across both changes.
    let mut day = date("2025-03-01");
    while day < date("2025-11-30") {
        let next = day.succ_opt().unwrap();
        assert_eq!(
            new_york.day_window(day).end,
            new_york.day_window(next).start,
            "{day}"
        );
        day = next;
    }
}

/// An hour bucket's window holds exactly the instants `Calendar::hour` puts in it, and
/// a day's hour windows tile the day: across both DST changes, in a zone whose offset
/// is not whole hours, and on a day whose midnight is skipped.
#[test]
fn hour_windows_hold_exactly_the_instants_of_their_hour() {
    let zones = [
        (
            "America/New_York",
            ["2025-03-09", "2025-11-02", "2025-06-01"],
        ),
        ("Asia/Kolkata", ["2025-03-09", "2025-11-02", "2025-06-01"]),
        // Santiago's autumn change repeats 23:00 on 2025-04-05: the day's last hour
        // spans both passes and ends at the next day's start.
        (
            "America/Santiago",
            ["2025-09-07", "2025-04-05", "2025-04-06"],
        ),
        ("Asia/Shanghai", ["2025-12-01", "2025-12-31", "2026-01-01"]),
    ];
    for (zone, days) in zones {
        let calendar = Calendar::new(zone.parse::<Tz>().unwrap());
        for day in days {
            let day = calendar.day_window(date(day));
            let mut covered = day.start;
            let mut hours = 0;
            for hour in 0..24u8 {
                let bucket = DayHour {
                    date: day.date,
                    hour,
                };
                let window = calendar.hour_window(bucket);
                if window.start == window.end {
                    continue; // skipped by a DST change
                }
                hours += 1;
                assert_eq!(window.start, covered, "{zone} {bucket}: no gap, no overlap");
                covered = window.end;
                // Every minute of the window is in the bucket, and the instants just
                // outside are not.
                let mut t = window.start;
                while t < window.end {
                    assert_eq!(calendar.hour(t), bucket, "{zone} {t}");
                    t += chrono::TimeDelta::minutes(1);
                }
                assert_ne!(
                    calendar.hour(window.end),
                    bucket,
                    "{zone} {bucket} ends at {}",
                    window.end
                );
            }
            assert_eq!(
                covered, day.end,
                "{zone} {}: the hours tile the day",
                day.date
            );
            assert!(
                (22..=24).contains(&hours),
                "{zone} {}: {hours} hours",
                day.date
            );
        }
    }
    // The repeated hour of New York's autumn change spans both passes: two hours of time.
    let new_york = Calendar::new(chrono_tz::America::New_York);
    let repeated = new_york.hour_window(DayHour {
        date: date("2025-11-02"),
        hour: 1,
    });
    assert_eq!(repeated.start, at("2025-11-02T05:00:00Z"));
    assert_eq!(repeated.end, at("2025-11-02T07:00:00Z"));
}

#[test]
fn a_day_whose_midnight_is_skipped_starts_when_the_gap_ends() {
    // Chile moves its clocks from 00:00 to 01:00 on the first Sunday of September.
    let santiago = Calendar::new("America/Santiago".parse::<Tz>().unwrap());
    let window = santiago.day_window(date("2025-09-07"));
    assert_eq!(window.start, at("2025-09-07T04:00:00Z"));
    assert_eq!(santiago.date(window.start), date("2025-09-07"));
    assert_eq!(
        santiago.date(at("2025-09-07T03:59:59Z")),
        date("2025-09-06")
    );
}

#[test]
fn months_parse_print_and_bound_their_days() {
    let december = month("2025-12");
    assert_eq!(december.to_string(), "2025-12");
    assert_eq!(december.label_zh(), "2025年12月");
    assert_eq!(month("2026-03").label_zh(), "2026年3月");
    assert_eq!(december.first_day(), date("2025-12-01"));
    assert_eq!(december.last_day(), date("2025-12-31"));
    assert_eq!(december.next(), month("2026-01"));
    assert_eq!(month("2026-01").prev(), december);
    assert_eq!(month("2024-02").days().len(), 29);
    assert_eq!(month("2025-02").days().len(), 28);
    assert_eq!(YearMonth::of(date("2025-12-31")), december);
    assert_eq!(serde_json::to_string(&december).unwrap(), "\"2025-12\"");
    assert_eq!(
        serde_json::from_str::<YearMonth>("\"2025-12\"").unwrap(),
        december
    );

    for bad in [
        "2025-13",
        "2025-00",
        "2025-1",
        "25-12",
        "2025/12",
        "2025-12-01",
        "",
        "abcd-ef",
        "+025-12",
    ] {
        let error = bad.parse::<YearMonth>().unwrap_err();
        assert!(error.to_string().contains("YYYY-MM"), "{bad}: {error}");
    }
}

#[test]
fn dates_and_ranges_are_checked() {
    assert_eq!(
        parse_date("date", "2025-12-01").unwrap(),
        date("2025-12-01")
    );
    for bad in [
        "2025-12-32",
        "2025-02-29",
        "2025-1-01",
        "20251201",
        "2025-12-01T00:00:00Z",
        "",
    ] {
        let error = parse_date("start", bad).unwrap_err();
        assert!(
            error.to_string().starts_with("invalid start"),
            "{bad}: {error}"
        );
    }

    let range = DateRange::new(date("2025-12-30"), date("2026-01-02")).unwrap();
    assert_eq!(range.len(), 4);
    assert_eq!(
        range.iter().collect::<Vec<_>>(),
        [
            date("2025-12-30"),
            date("2025-12-31"),
            date("2026-01-01"),
            date("2026-01-02")
        ]
    );
    assert!(range.contains(date("2026-01-01")));
    assert!(!range.contains(date("2026-01-03")));
    assert_eq!(DateRange::day(date("2025-12-01")).len(), 1);

    assert_eq!(
        DateRange::new(date("2025-01-01"), date("2026-01-01"))
            .unwrap()
            .len(),
        366
    );
    let too_long = DateRange::new(date("2025-01-01"), date("2026-01-02")).unwrap_err();
    assert!(
        too_long.to_string().contains("at most 366 days"),
        "{too_long}"
    );
    let reversed = DateRange::new(date("2025-12-02"), date("2025-12-01")).unwrap_err();
    assert!(
        reversed.to_string().contains("end on or after the start"),
        "{reversed}"
    );

    let shanghai = Calendar::default();
    assert_eq!(
        shanghai.range_window(range),
        at("2025-12-29T16:00:00Z")..at("2026-01-02T16:00:00Z")
    );
}

#[test]
fn recent_hours_end_with_the_current_one() {
    let shanghai = Calendar::default();
    let hours = shanghai.recent_hours(at("2025-12-01T01:30:00Z"), 24); // 09:30 local
    assert_eq!(hours.len(), 24);
    assert_eq!(
        hours[23],
        DayHour {
            date: date("2025-12-01"),
            hour: 9
        }
    );
    assert_eq!(
        hours[0],
        DayHour {
            date: date("2025-11-30"),
            hour: 10
        }
    );
    // New York falls back on 2025-11-02: 01:00 happens twice and is one bucket.
    let new_york = Calendar::new(chrono_tz::America::New_York);
    let hours = new_york.recent_hours(at("2025-11-02T08:30:00Z"), 5); // 03:30 EST
    let wall: Vec<u8> = hours.iter().map(|h| h.hour).collect();
    assert_eq!(wall, [0, 1, 2, 3]);
}
