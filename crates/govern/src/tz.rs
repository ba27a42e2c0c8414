//! Time zones of budget periods: IANA names (with daylight saving) or fixed offsets.

use crate::limits::UnixMs;

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
    /// The zone's offset from UTC in minutes at the given instant.
    pub fn offset_minutes_at(&self, at: UnixMs) -> i16 {
        let ts = jiff::Timestamp::from_millisecond(at.0).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        (self.0.to_offset(ts).seconds() / 60) as i16
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
}
