//! Monthly budget windows, pure: the calendar month containing an instant in a time zone.
//!
//! A budget's month runs from local midnight on the 1st to local midnight on the next 1st, in the
//! budget's IANA time zone (UTC by default). Everything here is a pure function of its inputs: no
//! clock is read, no I/O happens.
//!
//! Invariant: `start <= now < end` for every `now` that jiff can represent a month around, and
//! consecutive windows tile time (one window's `end` is the next one's `start`).

use std::fmt;

use jiff::Timestamp;
use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;

/// A calendar month as the budget's local calendar names it (`2026-11`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MonthId {
    year: i16,
    month: i8,
}

impl MonthId {
    /// `None` unless `1 <= month <= 12`.
    pub fn new(year: i16, month: i8) -> Option<MonthId> {
        (1..=12).contains(&month).then_some(MonthId { year, month })
    }

    pub fn year(self) -> i16 {
        self.year
    }

    /// 1 to 12.
    pub fn month(self) -> i8 {
        self.month
    }

    /// The month before this one; `None` before the year -9999.
    pub fn previous(self) -> Option<MonthId> {
        if self.month == 1 {
            Some(MonthId {
                year: self.year.checked_sub(1)?,
                month: 12,
            })
        } else {
            Some(MonthId {
                year: self.year,
                month: self.month - 1,
            })
        }
    }

    /// The month after this one; `None` past the year 9999 (beyond jiff's range anyway).
    pub fn next(self) -> Option<MonthId> {
        if self.month == 12 {
            Some(MonthId {
                year: self.year.checked_add(1)?,
                month: 1,
            })
        } else {
            Some(MonthId {
                year: self.year,
                month: self.month + 1,
            })
        }
    }

    /// Parses `YYYY-MM` as written by `Display`.
    pub fn parse(text: &str) -> Option<MonthId> {
        let (year, month) = text.split_once('-')?;
        MonthId::new(year.parse().ok()?, month.parse().ok()?)
    }

    fn first_day(self) -> Option<Date> {
        Date::new(self.year, self.month, 1).ok()
    }
}

impl fmt::Display for MonthId {
    /// `2026-11`: zero-padded, so the text sorts like the months (years 0 to 9999).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// One budget month: `[start, end)` in absolute time, and the local month it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// Local midnight on the 1st (the first instant of that day when midnight falls in a gap).
    pub start: Timestamp,
    /// Local midnight on the next 1st: the instant the budget resets.
    pub end: Timestamp,
    pub month: MonthId,
}

impl Window {
    pub fn contains(&self, now: Timestamp) -> bool {
        self.start <= now && now < self.end
    }
}

/// The calendar month containing `now` in `tz`, from local midnight on the 1st to the next 1st.
///
/// Midnight that falls in a DST gap resolves to the first instant after the gap (jiff's
/// "compatible" rule); at the edges of jiff's range (years ±9999) the window is clamped to
/// `Timestamp::MIN`/`Timestamp::MAX` rather than failing.
pub fn month_window(tz: &TimeZone, now: Timestamp) -> Window {
    let local = tz.to_datetime(now).date();
    // `local.month()` is always 1..=12, so the fallback is unreachable; it avoids a panic path.
    let month = MonthId::new(local.year(), local.month()).unwrap_or(MonthId {
        year: local.year(),
        month: 1,
    });
    window_of(tz, month)
}

/// The window of `month` in `tz` (clamped like `month_window` at the edges of jiff's range).
pub fn window_of(tz: &TimeZone, month: MonthId) -> Window {
    let start = local_midnight(tz, month).unwrap_or(Timestamp::MIN);
    let end = month
        .next()
        .and_then(|next| local_midnight(tz, next))
        .unwrap_or(Timestamp::MAX);
    Window { start, end, month }
}

fn local_midnight(tz: &TimeZone, month: MonthId) -> Option<Timestamp> {
    let first = month.first_day()?;
    tz.to_timestamp(DateTime::from(first)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn tz(name: &str) -> TimeZone {
        TimeZone::get(name).unwrap()
    }

    #[test]
    fn kuala_lumpur_month_starts_at_1600_utc_on_the_previous_last_day() {
        let kl = tz("Asia/Kuala_Lumpur");
        // 2026-11-30T16:30Z is already 00:30 on 1 December in Kuala Lumpur.
        let w = month_window(&kl, ts("2026-11-30T16:30:00Z"));
        assert_eq!(w.month.to_string(), "2026-12");
        assert_eq!(w.start, ts("2026-11-30T16:00:00Z"));
        assert_eq!(w.end, ts("2026-12-31T16:00:00Z"));
        // One second before that is still November locally.
        let before = month_window(&kl, ts("2026-11-30T15:59:59Z"));
        assert_eq!(before.month.to_string(), "2026-11");
        assert_eq!(before.start, ts("2026-10-31T16:00:00Z"));
        assert_eq!(before.end, w.start);
    }

    #[test]
    fn new_york_windows_follow_dst() {
        let ny = tz("America/New_York");
        // March 2026: starts in EST (-05), DST begins 8 March, April starts in EDT (-04).
        let march = month_window(&ny, ts("2026-03-15T12:00:00Z"));
        assert_eq!(march.month.to_string(), "2026-03");
        assert_eq!(march.start, ts("2026-03-01T05:00:00Z"));
        assert_eq!(march.end, ts("2026-04-01T04:00:00Z"));
        // November: DST ends on the 1st 2026 at 02:00, after midnight, so November starts in EDT
        // and December in EST.
        let nov = month_window(&ny, ts("2026-11-20T00:00:00Z"));
        assert_eq!(nov.start, ts("2026-11-01T04:00:00Z"));
        assert_eq!(nov.end, ts("2026-12-01T05:00:00Z"));
        // The window is a month of 30 days plus the hour DST gave back.
        assert_eq!(
            nov.end.as_second() - nov.start.as_second(),
            30 * 86_400 + 3_600
        );
    }

    #[test]
    fn utc_is_the_default_zone() {
        let w = month_window(&TimeZone::UTC, ts("2026-02-14T23:59:59Z"));
        assert_eq!(w.month.to_string(), "2026-02");
        assert_eq!(w.start, ts("2026-02-01T00:00:00Z"));
        assert_eq!(w.end, ts("2026-03-01T00:00:00Z"));
        assert!(w.contains(w.start));
        assert!(!w.contains(w.end));
    }

    #[test]
    fn december_rolls_over_into_january_of_the_next_year() {
        let dec = month_window(&TimeZone::UTC, ts("2026-12-31T23:59:59.999999Z"));
        assert_eq!(dec.month.to_string(), "2026-12");
        assert_eq!(dec.end, ts("2027-01-01T00:00:00Z"));
        let jan = month_window(&TimeZone::UTC, dec.end);
        assert_eq!(jan.month.to_string(), "2027-01");
        assert_eq!(jan.start, dec.end);
        assert_eq!(jan.end, ts("2027-02-01T00:00:00Z"));
    }

    #[test]
    fn window_of_a_named_month_matches_the_window_around_an_instant_in_it() {
        let kl = tz("Asia/Kuala_Lumpur");
        let named = window_of(&kl, MonthId::parse("2026-12").unwrap());
        assert_eq!(named, month_window(&kl, ts("2026-12-15T00:00:00Z")));
    }

    #[test]
    fn month_ids_round_trip_and_step() {
        let m = MonthId::parse("2026-12").unwrap();
        assert_eq!(m.next().unwrap().to_string(), "2027-01");
        assert_eq!(m.next().unwrap().previous(), Some(m));
        assert_eq!(MonthId::parse("2026-13"), None);
        assert_eq!(MonthId::new(2026, 3).unwrap().to_string(), "2026-03");
    }

    #[test]
    fn extremes_clamp_instead_of_failing() {
        let w = month_window(&TimeZone::UTC, Timestamp::MAX);
        assert_eq!(w.end, Timestamp::MAX);
        let w = month_window(&TimeZone::UTC, Timestamp::MIN);
        assert!(w.start <= Timestamp::MIN || w.contains(Timestamp::MIN));
    }
}
