//! Business time: which day, hour and month an instant belongs to in the configured
//! IANA time zone (SPEC §3), and the UTC windows of those days and months.
//!
//! Days are calendar days of the zone, so around a DST change a day may last 23 or 25
//! hours; the windows below follow that. An hour that occurs twice (the clocks go back)
//! is one hour bucket.

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Timelike, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The most days a date range may span (SPEC §9).
pub const MAX_RANGE_DAYS: i64 = 366;

/// A calendar month, `YYYY-MM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct YearMonth {
    year: i32,
    month: u32,
}

impl YearMonth {
    /// The month `month` (1–12) of `year`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] when `month` is not 1–12 or the year is outside 1–9999.
    pub fn new(year: i32, month: u32) -> Result<YearMonth> {
        if !(1..=12).contains(&month) || !(1..=9999).contains(&year) {
            return Err(Error::invalid_input(
                "month",
                &format!("{year}-{month}"),
                "a month from 0001-01 to 9999-12",
            ));
        }
        Ok(YearMonth { year, month })
    }

    /// The month a date falls in.
    pub fn of(date: NaiveDate) -> YearMonth {
        YearMonth {
            year: date.year(),
            month: date.month(),
        }
    }

    /// The year.
    pub fn year(self) -> i32 {
        self.year
    }

    /// The month, 1–12.
    pub fn month(self) -> u32 {
        self.month
    }

    /// The first day of the month.
    pub fn first_day(self) -> NaiveDate {
        NaiveDate::from_ymd_opt(self.year, self.month, 1).unwrap_or(NaiveDate::MIN)
    }

    /// The last day of the month.
    pub fn last_day(self) -> NaiveDate {
        self.next().first_day().pred_opt().unwrap_or(NaiveDate::MAX)
    }

    /// The following month.
    pub fn next(self) -> YearMonth {
        if self.month == 12 {
            YearMonth {
                year: self.year + 1,
                month: 1,
            }
        } else {
            YearMonth {
                year: self.year,
                month: self.month + 1,
            }
        }
    }

    /// The preceding month.
    pub fn prev(self) -> YearMonth {
        if self.month == 1 {
            YearMonth {
                year: self.year - 1,
                month: 12,
            }
        } else {
            YearMonth {
                year: self.year,
                month: self.month - 1,
            }
        }
    }

    /// Every day of the month.
    pub fn days(self) -> DateRange {
        DateRange {
            start: self.first_day(),
            end: self.last_day(),
        }
    }

    /// The month as the case study names it: `2025年12月`.
    pub fn label_zh(self) -> String {
        format!("{}年{}月", self.year, self.month)
    }
}

impl fmt::Display for YearMonth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl FromStr for YearMonth {
    type Err = Error;

    fn from_str(s: &str) -> Result<YearMonth> {
        let invalid = || Error::invalid_input("month", s, "YYYY-MM, such as 2025-12");
        let bytes = s.as_bytes();
        if bytes.len() != 7 || bytes[4] != b'-' {
            return Err(invalid());
        }
        let digits = |part: &str| {
            part.bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| part.parse::<u32>().ok())
                .flatten()
        };
        let (Some(year), Some(month)) = (digits(&s[..4]), digits(&s[5..])) else {
            return Err(invalid());
        };
        YearMonth::new(year as i32, month).map_err(|_| invalid())
    }
}

impl Serialize for YearMonth {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for YearMonth {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<YearMonth, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Parses a `YYYY-MM-DD` date, as the API takes it.
///
/// # Errors
///
/// [`Error::InvalidInput`] naming `what` (for example `start`) when `s` is not a valid
/// date in that form.
pub fn parse_date(what: &'static str, s: &str) -> Result<NaiveDate> {
    let well_formed = s.len() == 10
        && s.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    well_formed
        .then(|| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
        .flatten()
        .ok_or_else(|| Error::invalid_input(what, s, "a date YYYY-MM-DD, such as 2025-12-01"))
}

/// An hour of a business day: the bucket of the hourly counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DayHour {
    /// The business day.
    pub date: NaiveDate,
    /// The hour on the zone's wall clock, 0–23.
    pub hour: u8,
}

impl fmt::Display for DayHour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{:02}", self.date, self.hour)
    }
}

/// An inclusive range of days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DateRange {
    start: NaiveDate,
    end: NaiveDate,
}

impl DateRange {
    /// The days from `start` to `end`, both included.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] when `end` is before `start` or the range is longer than
    /// [`MAX_RANGE_DAYS`].
    pub fn new(start: NaiveDate, end: NaiveDate) -> Result<DateRange> {
        let range = DateRange { start, end };
        if end < start {
            return Err(Error::invalid_input(
                "range",
                &format!("{start}..{end}"),
                "an end on or after the start",
            ));
        }
        if range.len() > MAX_RANGE_DAYS as usize {
            return Err(Error::invalid_input(
                "range",
                &format!("{start}..{end}"),
                format!("at most {MAX_RANGE_DAYS} days"),
            ));
        }
        Ok(range)
    }

    /// One day.
    pub fn day(date: NaiveDate) -> DateRange {
        DateRange {
            start: date,
            end: date,
        }
    }

    /// The first day.
    pub fn start(&self) -> NaiveDate {
        self.start
    }

    /// The last day.
    pub fn end(&self) -> NaiveDate {
        self.end
    }

    /// How many days the range has.
    pub fn len(&self) -> usize {
        (self.end - self.start).num_days() as usize + 1
    }

    /// Always false: a range has at least one day.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Whether `date` is in the range.
    pub fn contains(&self, date: NaiveDate) -> bool {
        (self.start..=self.end).contains(&date)
    }

    /// Every day of the range, in order.
    pub fn iter(&self) -> impl Iterator<Item = NaiveDate> + use<> {
        let end = self.end;
        self.start.iter_days().take_while(move |d| *d <= end)
    }
}

/// A business day with its UTC window `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DayWindow {
    /// The business day.
    pub date: NaiveDate,
    /// The first instant of the day.
    pub start: DateTime<Utc>,
    /// The first instant of the next day.
    pub end: DateTime<Utc>,
}

impl DayWindow {
    /// Whether `ts` is within the day.
    pub fn contains(&self, ts: DateTime<Utc>) -> bool {
        (self.start..self.end).contains(&ts)
    }
}

/// The business calendar: buckets instants by the days, hours and months of one zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Calendar {
    zone: Tz,
}

impl Default for Calendar {
    fn default() -> Calendar {
        Calendar {
            zone: chrono_tz::Asia::Shanghai,
        }
    }
}

impl Calendar {
    /// The calendar of `zone`.
    pub fn new(zone: Tz) -> Calendar {
        Calendar { zone }
    }

    /// The zone.
    pub fn zone(&self) -> Tz {
        self.zone
    }

    /// The business day of an instant.
    pub fn date(&self, ts: DateTime<Utc>) -> NaiveDate {
        ts.with_timezone(&self.zone).date_naive()
    }

    /// The business day and wall-clock hour of an instant.
    pub fn hour(&self, ts: DateTime<Utc>) -> DayHour {
        let local = ts.with_timezone(&self.zone);
        DayHour {
            date: local.date_naive(),
            hour: local.hour() as u8,
        }
    }

    /// The business month of an instant.
    pub fn month(&self, ts: DateTime<Utc>) -> YearMonth {
        YearMonth::of(self.date(ts))
    }

    /// The hour buckets of the last `n` hours up to `now`, oldest first, `now`'s own
    /// hour last. Around a DST change the wall clock repeats or skips an hour; a
    /// repeated hour is one bucket, so it appears once.
    pub fn recent_hours(&self, now: DateTime<Utc>, n: usize) -> Vec<DayHour> {
        let mut hours: Vec<DayHour> = Vec::with_capacity(n);
        for back in (0..n as i64).rev() {
            let hour = self.hour(now - TimeDelta::hours(back));
            if hours.last() != Some(&hour) {
                hours.push(hour);
            }
        }
        hours
    }

    /// The first instant of a business day: local midnight, or the first instant after
    /// it where a DST gap swallows midnight.
    pub fn day_start(&self, date: NaiveDate) -> DateTime<Utc> {
        first_instant_from(self.zone, date.and_time(NaiveTime::MIN))
    }

    /// A business day and its UTC window.
    pub fn day_window(&self, date: NaiveDate) -> DayWindow {
        DayWindow {
            date,
            start: self.day_start(date),
            end: self.day_start(date.succ_opt().unwrap_or(NaiveDate::MAX)),
        }
    }

    /// The UTC window `[start, end)` of an hour bucket (labelled with its day): from the
    /// hour's first instant on the wall clock to the next hour's. Around a DST change
    /// a repeated hour spans both of its passes (it is one bucket), and an hour the
    /// change skips is empty.
    pub fn hour_window(&self, hour: DayHour) -> DayWindow {
        let at = |h: u32| {
            hour.date
                .and_hms_opt(h, 0, 0)
                .unwrap_or_else(|| hour.date.and_time(NaiveTime::MIN))
        };
        let start = first_instant_from(self.zone, at(u32::from(hour.hour)));
        let end = if hour.hour >= 23 {
            self.day_start(hour.date.succ_opt().unwrap_or(NaiveDate::MAX))
        } else {
            first_instant_from(self.zone, at(u32::from(hour.hour) + 1))
        };
        DayWindow {
            date: hour.date,
            start,
            end: end.max(start),
        }
    }

    /// The UTC window `[start, end)` of a range of business days.
    pub fn range_window(&self, range: DateRange) -> Range<DateTime<Utc>> {
        self.day_start(range.start())
            ..self.day_start(range.end().succ_opt().unwrap_or(NaiveDate::MAX))
    }

    /// The UTC window of a business month.
    pub fn month_window(&self, month: YearMonth) -> Range<DateTime<Utc>> {
        self.day_start(month.first_day())..self.day_start(month.next().first_day())
    }
}

/// The earliest instant whose wall-clock time in `zone` is `local` or, where `local`
/// falls in a gap, the end of that gap.
fn first_instant_from(zone: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    use chrono::TimeZone;
    use chrono::offset::LocalResult;

    // Gaps are at most a few hours; step through them a minute at a time.
    let mut probe = local;
    for _ in 0..=(24 * 60) {
        match zone.from_local_datetime(&probe) {
            LocalResult::Single(t) => return t.to_utc(),
            LocalResult::Ambiguous(earliest, _) => return earliest.to_utc(),
            LocalResult::None => probe += TimeDelta::minutes(1),
        }
    }
    // Unreachable for real zones; fall back to reading the wall clock as UTC.
    local.and_utc()
}
