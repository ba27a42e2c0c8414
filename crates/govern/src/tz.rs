//! Time zones of budget periods: IANA names (with daylight saving) or fixed offsets.

use crate::limits::{UnixMs, Window};
use crate::policy::BudgetPeriod;

/// A parsed time zone.
#[derive(Debug, Clone)]
pub struct Tz(jiff::tz::TimeZone);

/// Reads `UTC`, a fixed offset (`+05:30`, `-08:00`) or an IANA name (`Europe/Berlin`).
pub fn parse(s: &str) -> Result<Tz, String> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("utc") || s == "Z" {
        return Ok(Tz(jiff::tz::TimeZone::UTC));
    }
    if let Some(rest) = s.strip_prefix(['+', '-']) {
        let sign: i32 = if s.starts_with('-') { -1 } else { 1 };
        let (h, m) = rest.split_once(':').unwrap_or((rest, "0"));
        let (Ok(h), Ok(m)) = (h.parse::<i32>(), m.parse::<i32>()) else {
            return Err(format!("time zone offset '{s}' is not ±HH:MM"));
        };
        if h > 18 || m > 59 || h * 60 + m > 18 * 60 {
            return Err(format!("time zone offset '{s}' is beyond ±18:00"));
        }
        let secs = sign * (h * 3600 + m * 60);
        let offset = jiff::tz::Offset::from_seconds(secs).map_err(|e| e.to_string())?;
        return Ok(Tz(jiff::tz::TimeZone::fixed(offset)));
    }
    jiff::tz::TimeZone::get(s).map(Tz).map_err(|_| {
        format!("unknown time zone '{s}' (use an IANA name such as Europe/Berlin, UTC, or +HH:MM)")
    })
}

impl Tz {
    /// Coordinated Universal Time.
    pub fn utc() -> Tz {
        Tz(jiff::tz::TimeZone::UTC)
    }

    /// The zone's offset from UTC in minutes at the given instant.
    pub fn offset_minutes_at(&self, at: UnixMs) -> i16 {
        let ts = jiff::Timestamp::from_millisecond(at.0).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        (self.0.to_offset(ts).seconds() / 60) as i16
    }

    /// The counter window of a budget period at `now`. The offset is the one in force when the
    /// current local period began, so a daylight-saving change inside a period never moves the
    /// period's counter (it only shifts the next boundary by the DST hour).
    pub fn window(&self, period: BudgetPeriod, now: UnixMs) -> Window {
        let ts = jiff::Timestamp::from_millisecond(now.0).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        let zoned = ts.to_zoned(self.0.clone());
        let date = zoned.date();
        let start_date = match period {
            BudgetPeriod::Day => Some(date),
            BudgetPeriod::Week => {
                let back = i64::from(date.weekday().to_monday_zero_offset());
                date.checked_sub(jiff::Span::new().days(back)).ok()
            }
            BudgetPeriod::Month => Some(date.first_of_month()),
            BudgetPeriod::Total => return Window::Total,
        };
        let offset = start_date
            .and_then(|d| d.to_zoned(self.0.clone()).ok())
            .map(|z| (z.offset().seconds() / 60) as i16)
            .unwrap_or_else(|| (zoned.offset().seconds() / 60) as i16);
        match period {
            BudgetPeriod::Day => Window::Day {
                tz_offset_minutes: offset,
            },
            BudgetPeriod::Week => Window::Week {
                tz_offset_minutes: offset,
            },
            BudgetPeriod::Month => Window::Month {
                tz_offset_minutes: offset,
            },
            BudgetPeriod::Total => Window::Total,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_offsets() {
        // 2026-01-15 and 2026-07-15, noon UTC: Berlin is +60 in winter, +120 in summer.
        let winter = UnixMs(1_768_478_400_000);
        let summer = UnixMs(1_784_116_800_000);
        let berlin = parse("Europe/Berlin").expect("tzdata");
        assert_eq!(berlin.offset_minutes_at(winter), 60);
        assert_eq!(berlin.offset_minutes_at(summer), 120);
        assert_eq!(
            parse("+05:30").expect("fixed").offset_minutes_at(winter),
            330
        );
        assert_eq!(
            parse("-08:00").expect("fixed").offset_minutes_at(winter),
            -480
        );
        assert_eq!(parse("UTC").expect("utc").offset_minutes_at(winter), 0);
        assert!(parse("+19:00").is_err());
        assert!(parse("Nowhere/Town").is_err());
    }

    #[test]
    fn a_dst_change_inside_a_month_keeps_the_month_counter() {
        let berlin = parse("Europe/Berlin").expect("tzdata");
        // 2026-03-02 (CET, +60) and 2026-03-30 (after the switch to CEST on the 29th).
        let early = UnixMs(1_772_452_800_000);
        let late = UnixMs(1_774_872_000_000);
        let m = berlin.window(BudgetPeriod::Month, early);
        assert_eq!(
            m,
            Window::Month {
                tz_offset_minutes: 60
            }
        );
        assert_eq!(berlin.window(BudgetPeriod::Month, late), m);
        assert_eq!(
            berlin.window(BudgetPeriod::Day, late),
            Window::Day {
                tz_offset_minutes: 120
            }
        );
    }
}
