//! Money as integer nano-USD.
//!
//! Costs are summed over millions of requests and compared against budgets, so they are kept in
//! integers: a float total drifts, and two ledgers that add the same requests in a different
//! order would disagree. A nano-dollar is fine enough that every published per-token price is a
//! whole number of nanos.

use std::fmt;
use std::iter::Sum;
use std::ops::{Add, AddAssign};

use serde::{Deserialize, Serialize};

const NANOS_PER_USD: i64 = 1_000_000_000;
const FRACTION_DIGITS: usize = 9;

/// An amount of money in nano-USD (10⁻⁹ USD); the only money type of the ledger.
///
/// Serializes as a bare integer. Addition saturates instead of overflowing, because a cost
/// computed from upstream-reported token counts must never panic the proxy.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Nanos(pub i64);

impl Nanos {
    /// Zero dollars.
    pub const ZERO: Nanos = Nanos(0);

    /// Formats the amount in dollars with exactly six decimals, e.g. `"0.012345"`; the
    /// sub-micro-dollar remainder is rounded half away from zero.
    pub fn usd_string(&self) -> String {
        // i128 so that i64::MIN has an absolute value.
        let nanos = i128::from(self.0);
        let micros = (nanos.abs() + 500) / 1_000;
        let sign = if nanos < 0 && micros != 0 { "-" } else { "" };
        format!("{sign}{}.{:06}", micros / 1_000_000, micros % 1_000_000)
    }
}

impl fmt::Display for Nanos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.usd_string())
    }
}

impl Add for Nanos {
    type Output = Nanos;

    fn add(self, rhs: Nanos) -> Nanos {
        Nanos(self.0.saturating_add(rhs.0))
    }
}

impl AddAssign for Nanos {
    fn add_assign(&mut self, rhs: Nanos) {
        *self = *self + rhs;
    }
}

impl Sum for Nanos {
    fn sum<I: Iterator<Item = Nanos>>(iter: I) -> Nanos {
        iter.fold(Nanos::ZERO, Add::add)
    }
}

impl<'a> Sum<&'a Nanos> for Nanos {
    fn sum<I: Iterator<Item = &'a Nanos>>(iter: I) -> Nanos {
        iter.copied().sum()
    }
}

/// Why a decimal dollar amount could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseUsdError {
    /// The text is not of the form `[-]digits[.digits]`.
    #[error("{0:?} is not a decimal dollar amount")]
    Malformed(String),
    /// More than nine fractional digits: the amount is finer than a nano-dollar.
    #[error("{0:?} has more than 9 decimals")]
    TooPrecise(String),
    /// The amount does not fit in an i64 of nano-dollars.
    #[error("{0:?} is out of range")]
    Overflow(String),
}

/// Parses a decimal dollar amount such as `"3"`, `"0.30"` or `"-1.5"` exactly into nanos.
///
/// Up to nine fractional digits are accepted; more is an error rather than a silent rounding.
pub fn parse_usd(s: &str) -> Result<Nanos, ParseUsdError> {
    let malformed = || ParseUsdError::Malformed(s.to_owned());
    let overflow = || ParseUsdError::Overflow(s.to_owned());

    let (negative, unsigned) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (whole, fraction) = match unsigned.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (unsigned, None),
    };
    let all_digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(whole) || fraction.is_some_and(|f| !all_digits(f)) {
        return Err(malformed());
    }
    let fraction = fraction.unwrap_or("");
    if fraction.len() > FRACTION_DIGITS {
        return Err(ParseUsdError::TooPrecise(s.to_owned()));
    }

    let mut nanos: i64 = 0;
    for b in whole.bytes() {
        nanos = nanos
            .checked_mul(10)
            .and_then(|n| n.checked_add(i64::from(b - b'0')))
            .ok_or_else(overflow)?;
    }
    nanos = nanos.checked_mul(NANOS_PER_USD).ok_or_else(overflow)?;
    let mut frac_nanos: i64 = 0;
    for (i, b) in fraction.bytes().enumerate() {
        let place = 10_i64.pow((FRACTION_DIGITS - 1 - i) as u32);
        frac_nanos += i64::from(b - b'0') * place;
    }
    nanos = nanos.checked_add(frac_nanos).ok_or_else(overflow)?;
    Ok(Nanos(if negative { -nanos } else { nanos }))
}

/// Reads a dollar amount from a serde number or string without float arithmetic.
///
/// Integers are scaled directly; floats (TOML's `3.0`, `0.30`) go through their shortest
/// round-trip text, which is the decimal the author wrote, and then through [`parse_usd`].
pub(crate) fn deserialize_usd<'de, D>(deserializer: D) -> Result<Nanos, D::Error>
where
    D: serde::Deserializer<'de>,
{
    deserializer.deserialize_any(UsdVisitor)
}

/// [`deserialize_usd`] for an optional field; pair it with `#[serde(default)]`.
pub(crate) fn deserialize_opt_usd<'de, D>(deserializer: D) -> Result<Option<Nanos>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    deserialize_usd(deserializer).map(Some)
}

struct UsdVisitor;

impl serde::de::Visitor<'_> for UsdVisitor {
    type Value = Nanos;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a dollar amount as a number or a decimal string")
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Nanos, E> {
        v.checked_mul(NANOS_PER_USD)
            .map(Nanos)
            .ok_or_else(|| E::custom(ParseUsdError::Overflow(v.to_string())))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Nanos, E> {
        i64::try_from(v)
            .ok()
            .and_then(|v| v.checked_mul(NANOS_PER_USD))
            .map(Nanos)
            .ok_or_else(|| E::custom(ParseUsdError::Overflow(v.to_string())))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Nanos, E> {
        if !v.is_finite() {
            return Err(E::custom(ParseUsdError::Malformed(v.to_string())));
        }
        // `Display` for f64 never uses exponent notation and prints the shortest text that
        // round-trips, so 0.3 comes out as "0.3", not 0.299999….
        parse_usd(&format!("{v}")).map_err(E::custom)
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Nanos, E> {
        parse_usd(v).map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exact_decimals() {
        assert_eq!(parse_usd("3"), Ok(Nanos(3_000_000_000)));
        assert_eq!(parse_usd("3.0"), Ok(Nanos(3_000_000_000)));
        assert_eq!(parse_usd("0.30"), Ok(Nanos(300_000_000)));
        assert_eq!(parse_usd("0.08"), Ok(Nanos(80_000_000)));
        assert_eq!(parse_usd("18.75"), Ok(Nanos(18_750_000_000)));
        assert_eq!(parse_usd("0.000000001"), Ok(Nanos(1)));
        assert_eq!(parse_usd("-1.5"), Ok(Nanos(-1_500_000_000)));
        assert_eq!(parse_usd("9223372036.854775807"), Ok(Nanos(i64::MAX)));
    }

    #[test]
    fn rejects_what_is_not_an_exact_amount() {
        for bad in [
            "", "-", ".5", "5.", "1.2.3", "1e3", " 1", "+1", "0x10", "1,5", "NaN",
        ] {
            assert!(
                matches!(parse_usd(bad), Err(ParseUsdError::Malformed(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            parse_usd("0.0000000001"),
            Err(ParseUsdError::TooPrecise(_))
        ));
        assert!(matches!(
            parse_usd("9223372037"),
            Err(ParseUsdError::Overflow(_))
        ));
        assert!(matches!(
            parse_usd("9223372036.854775808"),
            Err(ParseUsdError::Overflow(_))
        ));
    }

    #[test]
    fn toml_floats_convert_through_their_decimal_text() {
        #[derive(Deserialize)]
        struct Doc {
            #[serde(deserialize_with = "deserialize_usd")]
            a: Nanos,
            #[serde(deserialize_with = "deserialize_usd")]
            b: Nanos,
            #[serde(deserialize_with = "deserialize_usd")]
            c: Nanos,
            #[serde(deserialize_with = "deserialize_usd")]
            d: Nanos,
            #[serde(deserialize_with = "deserialize_usd")]
            e: Nanos,
            #[serde(deserialize_with = "deserialize_usd")]
            int: Nanos,
            #[serde(deserialize_with = "deserialize_usd")]
            text: Nanos,
        }
        let doc: Doc = toml::from_str(
            "a = 0.3\nb = 3.75\nc = 0.08\nd = 1.25\ne = 18.75\nint = 3\ntext = \"0.125\"\n",
        )
        .expect("valid document");
        assert_eq!(doc.a, Nanos(300_000_000));
        assert_eq!(doc.b, Nanos(3_750_000_000));
        assert_eq!(doc.c, Nanos(80_000_000));
        assert_eq!(doc.d, Nanos(1_250_000_000));
        assert_eq!(doc.e, Nanos(18_750_000_000));
        assert_eq!(doc.int, Nanos(3_000_000_000));
        assert_eq!(doc.text, Nanos(125_000_000));
    }

    #[test]
    fn too_precise_float_is_an_error_not_a_rounding() {
        #[derive(Debug, Deserialize)]
        struct Doc {
            #[allow(dead_code)]
            #[serde(deserialize_with = "deserialize_usd")]
            a: Nanos,
        }
        assert!(toml::from_str::<Doc>("a = 0.1234567891\n").is_err());
    }

    #[test]
    fn usd_string_has_six_decimals() {
        assert_eq!(Nanos(12_345_000).usd_string(), "0.012345");
        assert_eq!(Nanos(0).usd_string(), "0.000000");
        assert_eq!(Nanos(3_000_000_000).usd_string(), "3.000000");
        assert_eq!(Nanos(1_499).usd_string(), "0.000001");
        assert_eq!(Nanos(1_500).usd_string(), "0.000002");
        assert_eq!(Nanos(499).usd_string(), "0.000000");
        assert_eq!(Nanos(-1_500).usd_string(), "-0.000002");
        assert_eq!(Nanos(-499).usd_string(), "0.000000");
        assert_eq!(Nanos(i64::MAX).usd_string(), "9223372036.854776");
        assert_eq!(Nanos(i64::MIN).usd_string(), "-9223372036.854776");
    }

    #[test]
    fn arithmetic_saturates_and_sums() {
        assert_eq!(Nanos(i64::MAX) + Nanos(1), Nanos(i64::MAX));
        let mut n = Nanos(5);
        n += Nanos(7);
        assert_eq!(n, Nanos(12));
        let total: Nanos = [Nanos(1), Nanos(2), Nanos(3)].iter().sum();
        assert_eq!(total, Nanos(6));
        assert_eq!(serde_json::to_string(&Nanos(42)).expect("serializes"), "42");
    }
}
