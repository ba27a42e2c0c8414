//! Calendar period boundaries in a fixed UTC offset. Civil dates are computed with the
//! days-from-civil algorithm (proleptic Gregorian), so leap years and month lengths need no table,
//! and all arithmetic saturates: any instant gives a period, none panics.

use super::{UnixMs, Window};

const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 86_400_000;

/// The span a counter covers: `start` inclusive, `end` exclusive; `end` is when the counter
/// resets (`None` for `Window::Total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Period {
    /// First instant of the period.
    pub start: UnixMs,
    /// First instant after the period, i.e. when it resets.
    pub end: Option<UnixMs>,
}

impl Period {
    /// When the counter resets, if ever.
    pub fn resets_at(&self) -> Option<UnixMs> {
        self.end
    }

    /// True once `now` has reached the end of the period.
    pub fn is_over(&self, now: UnixMs) -> bool {
        self.end.is_some_and(|end| now >= end)
    }
}

/// The period of `window` that contains `now`.
pub fn period_of(window: Window, now: UnixMs) -> Period {
    match window {
        Window::Minute => {
            let start = now.0.div_euclid(MINUTE_MS).saturating_mul(MINUTE_MS);
            Period {
                start: UnixMs(start),
                end: Some(UnixMs(start.saturating_add(MINUTE_MS))),
            }
        }
        Window::Day { tz_offset_minutes } => {
            let (offset, day) = local_day(now, tz_offset_minutes);
            local_span(day, day.saturating_add(1), offset)
        }
        Window::Week { tz_offset_minutes } => {
            let (offset, day) = local_day(now, tz_offset_minutes);
            // 1970-01-01 was a Thursday, so adding 3 makes Monday weekday 0.
            let monday = day.saturating_sub(day.saturating_add(3).rem_euclid(7));
            local_span(monday, monday.saturating_add(7), offset)
        }
        Window::Month { tz_offset_minutes } => {
            let (offset, day) = local_day(now, tz_offset_minutes);
            let (y, m, _) = civil_from_days(day);
            let (ny, nm) = if m == 12 {
                (y.saturating_add(1), 1)
            } else {
                (y, m + 1)
            };
            local_span(days_from_civil(y, m, 1), days_from_civil(ny, nm, 1), offset)
        }
        Window::Total | Window::Session => Period {
            start: UnixMs(0),
            end: None,
        },
    }
}

/// The offset in milliseconds and the local day number (days since 1970-01-01 local).
fn local_day(now: UnixMs, tz_offset_minutes: i16) -> (i64, i64) {
    let offset = i64::from(tz_offset_minutes) * MINUTE_MS;
    (offset, now.0.saturating_add(offset).div_euclid(DAY_MS))
}

/// The UTC span from local midnight of `first_day` to local midnight of `end_day`.
fn local_span(first_day: i64, end_day: i64, offset: i64) -> Period {
    let at = |day: i64| UnixMs(day.saturating_mul(DAY_MS).saturating_sub(offset));
    Period {
        start: at(first_day),
        end: Some(at(end_day)),
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (`m` in 1..=12, `d` in 1..=31).
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let (m, d) = (i64::from(m), i64::from(d));
    let y = if m <= 2 { y.saturating_sub(1) } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era.saturating_mul(146_097)
        .saturating_add(doe)
        .saturating_sub(719_468)
}

/// The proleptic Gregorian date (year, month 1..=12, day 1..=31) of a day number.
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z.saturating_add(719_468);
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe.saturating_add(era.saturating_mul(400));
    let y = if m <= 2 { y.saturating_add(1) } else { y };
    // mp < 12 and doy < 366 by construction, so both fit.
    (y, m as u32, d as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// UTC instant of a civil date and time.
    fn at(y: i64, mo: u32, d: u32, h: i64, mi: i64) -> UnixMs {
        UnixMs(days_from_civil(y, mo, d) * DAY_MS + h * 3_600_000 + mi * MINUTE_MS)
    }

    fn day(tz: i16) -> Window {
        Window::Day {
            tz_offset_minutes: tz,
        }
    }
    fn week(tz: i16) -> Window {
        Window::Week {
            tz_offset_minutes: tz,
        }
    }
    fn month(tz: i16) -> Window {
        Window::Month {
            tz_offset_minutes: tz,
        }
    }

    #[test]
    fn civil_round_trip_over_four_centuries() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        let start = days_from_civil(1800, 1, 1);
        let end = days_from_civil(2200, 1, 1);
        let mut prev = civil_from_days(start - 1);
        for z in start..end {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
            assert!(
                (y, m, d) > prev,
                "dates increase: {prev:?} then {:?}",
                (y, m, d)
            );
            prev = (y, m, d);
        }
    }

    #[test]
    fn day_in_utc_and_offsets() {
        let now = at(2026, 3, 10, 23, 30);
        let p = period_of(day(0), now);
        assert_eq!(p.start, at(2026, 3, 10, 0, 0));
        assert_eq!(p.end, Some(at(2026, 3, 11, 0, 0)));
        // 23:30 UTC is already 00:30 on the 11th in UTC+1: local midnight is 23:00 UTC.
        let p = period_of(day(60), now);
        assert_eq!(p.start, at(2026, 3, 10, 23, 0));
        assert_eq!(p.end, Some(at(2026, 3, 11, 23, 0)));
        // In UTC−5 it is 18:30 on the 10th: the day started at 05:00 UTC.
        let p = period_of(day(-300), now);
        assert_eq!(p.start, at(2026, 3, 10, 5, 0));
        assert_eq!(p.resets_at(), Some(at(2026, 3, 11, 5, 0)));
        // Half-hour zones (India, UTC+5:30).
        let p = period_of(day(330), at(2026, 3, 10, 18, 29));
        assert_eq!(p.start, at(2026, 3, 9, 18, 30));
        let p = period_of(day(330), at(2026, 3, 10, 18, 30));
        assert_eq!(p.start, at(2026, 3, 10, 18, 30));
    }

    #[test]
    fn boundaries_are_inclusive_start_exclusive_end() {
        let midnight = at(2026, 1, 1, 0, 0);
        assert_eq!(period_of(day(0), midnight).start, midnight);
        let just_before = UnixMs(midnight.0 - 1);
        assert_eq!(period_of(day(0), just_before).end, Some(midnight));
        assert!(period_of(day(0), just_before).is_over(midnight));
        assert!(!period_of(day(0), just_before).is_over(just_before));
    }

    #[test]
    fn weeks_start_on_monday() {
        // 2026-03-08 is a Sunday, 2026-03-09 a Monday.
        let p = period_of(week(0), at(2026, 3, 8, 12, 0));
        assert_eq!(p.start, at(2026, 3, 2, 0, 0));
        assert_eq!(p.end, Some(at(2026, 3, 9, 0, 0)));
        let p = period_of(week(0), at(2026, 3, 9, 0, 0));
        assert_eq!(p.start, at(2026, 3, 9, 0, 0));
        // Sunday 22:00 UTC is already Monday in UTC+3.
        let p = period_of(week(180), at(2026, 3, 8, 22, 0));
        assert_eq!(p.start, at(2026, 3, 8, 21, 0));
        // Across a year end: 2025-12-29 is a Monday.
        let p = period_of(week(0), at(2026, 1, 1, 0, 0));
        assert_eq!(p.start, at(2025, 12, 29, 0, 0));
        assert_eq!(p.end, Some(at(2026, 1, 5, 0, 0)));
        // Before the epoch.
        let p = period_of(week(0), at(1969, 12, 31, 0, 0));
        assert_eq!(p.start, at(1969, 12, 29, 0, 0));
    }

    #[test]
    fn month_ends_and_leap_years() {
        let cases = [
            ((2026, 1, 31), (2026, 2, 1)),
            ((2026, 2, 28), (2026, 3, 1)),
            ((2024, 2, 29), (2024, 3, 1)),
            ((2000, 2, 29), (2000, 3, 1)),
            ((2026, 4, 30), (2026, 5, 1)),
            ((2026, 12, 31), (2027, 1, 1)),
        ];
        for ((y, m, d), (ny, nm, nd)) in cases {
            let p = period_of(month(0), at(y, m, d, 23, 59));
            assert_eq!(p.start, at(y, m, 1, 0, 0), "{y}-{m}-{d}");
            assert_eq!(p.end, Some(at(ny, nm, nd, 0, 0)), "{y}-{m}-{d}");
        }
        // 1900 was not a leap year: February had 28 days.
        let p = period_of(month(0), at(1900, 2, 15, 0, 0));
        assert_eq!(p.end, Some(at(1900, 3, 1, 0, 0)));
        assert_eq!(
            civil_from_days(days_from_civil(1900, 2, 28) + 1),
            (1900, 3, 1)
        );
        assert_eq!(
            civil_from_days(days_from_civil(2024, 2, 28) + 1),
            (2024, 2, 29)
        );
    }

    #[test]
    fn month_in_an_offset() {
        // 2026-02-28 20:00 UTC is already March 1st in UTC+9.
        let p = period_of(month(540), at(2026, 2, 28, 20, 0));
        assert_eq!(p.start, at(2026, 2, 28, 15, 0));
        assert_eq!(p.end, Some(at(2026, 3, 31, 15, 0)));
        // 2026-03-01 03:00 UTC is still February in UTC−8.
        let p = period_of(month(-480), at(2026, 3, 1, 3, 0));
        assert_eq!(p.start, at(2026, 2, 1, 8, 0));
        assert_eq!(p.end, Some(at(2026, 3, 1, 8, 0)));
    }

    #[test]
    fn minute_and_total() {
        let now = UnixMs(at(2026, 5, 5, 10, 7).0 + 59_999);
        let p = period_of(Window::Minute, now);
        assert_eq!(p.start, at(2026, 5, 5, 10, 7));
        assert_eq!(p.end, Some(at(2026, 5, 5, 10, 8)));
        let p = period_of(Window::Total, now);
        assert_eq!(p.end, None);
        assert!(!p.is_over(UnixMs(i64::MAX)));
    }

    #[test]
    fn extreme_instants_do_not_panic() {
        for ms in [i64::MIN, i64::MIN + 1, -1, 0, 1, i64::MAX - 1, i64::MAX] {
            for w in [
                Window::Minute,
                day(i16::MAX),
                day(i16::MIN),
                week(840),
                week(-840),
                month(1080),
                month(-1080),
                Window::Total,
            ] {
                let p = period_of(w, UnixMs(ms));
                if let Some(end) = p.end {
                    assert!(end >= p.start, "{w} at {ms}");
                }
            }
        }
    }
}
