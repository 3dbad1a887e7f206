//! Calendar dates as order data holds them: the `time` crate's calendar,
//! narrowed to strict `YYYY-MM-DD` text and whole-day arithmetic.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A calendar date (proleptic Gregorian), without time or time zone.
///
/// Order dates are the shop's local dates, and "today" must be computed by the
/// caller in the shop's time zone so that a return window closes at the same
/// moment for every shopper. The calendar is the `time` crate's; this type
/// narrows it to what order data may hold (years 1 to 9999, written
/// `YYYY-MM-DD`), so every `Date` prints as four-digit year and parses back.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date(time::Date);

/// A date that does not exist or is not written as `YYYY-MM-DD`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a valid date of the form YYYY-MM-DD")]
pub struct DateError {
    text: String,
}

/// The Julian day of 1970-01-01, so that day numbers count from the epoch.
#[cfg(test)]
const UNIX_EPOCH_JULIAN_DAY: i32 = 2_440_588;

impl Date {
    /// The date, if it exists. Years are limited to 1..=9999 so that every
    /// date prints as four digits.
    pub fn new(year: i32, month: u8, day: u8) -> Result<Self, DateError> {
        let error = || DateError { text: format!("{year:04}-{month:02}-{day:02}") };
        if !(1..=9999).contains(&year) {
            return Err(error());
        }
        let month = time::Month::try_from(month).map_err(|_| error())?;
        time::Date::from_calendar_date(year, month, day).map(Self).map_err(|_| error())
    }

    /// The first and last dates of the supported range.
    fn min() -> Self {
        Self(time::Date::from_calendar_date(1, time::Month::January, 1).expect("a valid date"))
    }

    fn max() -> Self {
        Self(time::Date::from_calendar_date(9999, time::Month::December, 31).expect("a valid date"))
    }

    pub fn year(self) -> i32 {
        self.0.year()
    }

    pub fn month(self) -> u8 {
        u8::from(self.0.month())
    }

    pub fn day(self) -> u8 {
        self.0.day()
    }

    /// This date moved by `days` (negative moves back). Saturates at the
    /// ends of the supported range instead of wrapping.
    pub fn add_days(self, days: i32) -> Self {
        let moved = self.0.saturating_add(time::Duration::days(i64::from(days)));
        Self(moved).clamp(Self::min(), Self::max())
    }

    /// Days from `self` to `later`: positive when `later` is after `self`.
    pub fn days_until(self, later: Date) -> i64 {
        (later.0 - self.0).whole_days()
    }

    /// Days since 1970-01-01: a count in which consecutive dates differ by one.
    #[cfg(test)]
    fn day_number(self) -> i64 {
        i64::from(self.0.to_julian_day() - UNIX_EPOCH_JULIAN_DAY)
    }

    /// The inverse of [`Date::day_number`], for dates in the supported range.
    #[cfg(test)]
    fn from_day_number(days: i64) -> Self {
        let julian = i32::try_from(days).expect("in range") + UNIX_EPOCH_JULIAN_DAY;
        Self(time::Date::from_julian_day(julian).expect("in range"))
    }
}

impl TryFrom<time::Date> for Date {
    type Error = DateError;

    /// A `time` date, if its year is in the supported range.
    fn try_from(date: time::Date) -> Result<Self, DateError> {
        Date::new(date.year(), u8::from(date.month()), date.day())
    }
}

impl FromStr for Date {
    type Err = DateError;

    /// Parses exactly `YYYY-MM-DD`, the form `orders.json` uses: ASCII
    /// digits only, no sign, no spaces, always two-digit months and days.
    fn from_str(text: &str) -> Result<Self, DateError> {
        let error = || DateError { text: text.to_owned() };
        let bytes = text.as_bytes();
        let well_formed = bytes.len() == 10
            && bytes[4] == b'-'
            && bytes[7] == b'-'
            && bytes.iter().enumerate().all(|(i, b)| i == 4 || i == 7 || b.is_ascii_digit());
        if !well_formed {
            return Err(error());
        }
        let year = text[0..4].parse().map_err(|_| error())?;
        let month = text[5..7].parse().map_err(|_| error())?;
        let day = text[8..10].parse().map_err(|_| error())?;
        Date::new(year, month, day).map_err(|_| error())
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year(), self.month(), self.day())
    }
}

impl fmt::Debug for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Date {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Date {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(text: &str) -> Date {
        text.parse().unwrap()
    }

    #[test]
    fn dates_parse_strictly() {
        let check = |text: &str, ok: bool| assert_eq!(text.parse::<Date>().is_ok(), ok, "{text}");
        check("2026-08-05", true);
        check("2024-02-29", true);
        check("2026-02-29", false);
        check("2100-02-29", false);
        check("2000-02-29", true);
        check("2026-13-01", false);
        check("2026-04-31", false);
        check("2026-00-10", false);
        check("0000-01-01", false);
        check("2026-8-5", false);
        check("2026/08/05", false);
        check(" 2026-08-05", false);
        check("２０２６-08-05", false);
        check("", false);
    }

    #[test]
    fn day_arithmetic_crosses_months_years_and_leap_days() {
        let check = |start: &str, days: i32, expected: &str| {
            assert_eq!(date(start).add_days(days), date(expected), "{start} + {days}");
            assert_eq!(
                date(start).days_until(date(expected)),
                i64::from(days),
                "{start}..{expected}"
            );
        };
        check("2026-08-05", 30, "2026-09-04");
        check("2026-11-02", 30, "2026-12-02");
        check("2026-12-15", 30, "2027-01-14");
        check("2024-02-28", 1, "2024-02-29");
        check("2024-02-29", 1, "2024-03-01");
        check("2026-02-28", 1, "2026-03-01");
        check("2026-03-01", -1, "2026-02-28");
        check("1970-01-01", 0, "1970-01-01");
        check("2000-01-01", 366, "2001-01-01");
        check("1999-12-31", 1, "2000-01-01");
        check("2026-01-31", 365, "2027-01-31");
        assert_eq!(date("1970-01-01").day_number(), 0);
        assert_eq!(date("9999-12-31").add_days(5), date("9999-12-31"));
        assert_eq!(date("0001-01-01").add_days(-5), date("0001-01-01"));
        // Every day of four centuries survives the round trip.
        let mut d = date("1900-01-01");
        for _ in 0..146_097 {
            assert_eq!(Date::from_day_number(d.day_number()), d);
            let next = d.add_days(1);
            assert!(next > d);
            d = next;
        }
        assert_eq!(d, date("2300-01-01"));
    }
}
