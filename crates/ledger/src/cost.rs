//! The cost of one response from its token usage and the model's price.
//!
//! Each component (input, output, 5-minute writes, 1-hour writes, reads) is `tokens × rate`
//! with the rate in nano-USD per million tokens, computed in i128 and rounded half up to the
//! nano once, so list prices (all whole nanos per token) cost exactly and finer operator prices
//! lose at most half a nano per component.

use serde::{Deserialize, Serialize};
use tollgate_wire::Usage;

use crate::money::Nanos;
use crate::prices::{ModelPrice, PriceTable};

const TOKENS_PER_MTOK: i128 = 1_000_000;

/// The cost of a request, or the fact that it could not be priced.
///
/// `Unknown` is kept apart from zero so that an unpriced model never looks free in totals or
/// budgets. Serializes as the nano amount, or `null` when unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Option<Nanos>", into = "Option<Nanos>")]
pub enum Cost {
    /// Priced from the table.
    Known(Nanos),
    /// The model has no price.
    Unknown,
}

impl Cost {
    /// The amount, if the cost is known.
    pub fn known(self) -> Option<Nanos> {
        match self {
            Cost::Known(n) => Some(n),
            Cost::Unknown => None,
        }
    }
}

impl From<Option<Nanos>> for Cost {
    fn from(n: Option<Nanos>) -> Cost {
        n.map_or(Cost::Unknown, Cost::Known)
    }
}

impl From<Cost> for Option<Nanos> {
    fn from(c: Cost) -> Option<Nanos> {
        c.known()
    }
}

/// What `usage` costs at `price`; past the long-context threshold every component uses the
/// long-context rates.
pub fn cost_of(price: &ModelPrice, usage: &Usage) -> Nanos {
    let rates = price.rates_for(usage.total_input_tokens());
    [
        (usage.input_tokens, rates.input),
        (usage.output_tokens, rates.output),
        (usage.cache_write_5m(), rates.cache_write_5m),
        (usage.cache_write_1h(), rates.cache_write_1h),
        (usage.cache_read_input_tokens, rates.cache_read),
    ]
    .into_iter()
    .map(|(tokens, rate)| component(tokens, rate))
    .sum()
}

/// Prices `usage` for `model`, or `Cost::Unknown` when the table has no price for it.
pub fn price(table: &PriceTable, model: &str, usage: &Usage) -> Cost {
    table.lookup(model).map(|p| cost_of(p, usage)).into()
}

fn component(tokens: u64, rate_per_mtok: Nanos) -> Nanos {
    // u64 × i64 fits in i128 with room for the rounding term.
    let exact = i128::from(tokens) * i128::from(rate_per_mtok.0);
    let rounded = (exact + TOKENS_PER_MTOK / 2).div_euclid(TOKENS_PER_MTOK);
    Nanos(i64::try_from(rounded).unwrap_or(if rounded < 0 { i64::MIN } else { i64::MAX }))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::prices::PriceOverride;

    fn usage(input: u64, output: u64, write_5m: u64, write_1h: u64, read: u64) -> Usage {
        Usage {
            input_tokens: input,
            output_tokens: output,
            cache_creation_input_tokens: write_5m + write_1h,
            cache_read_input_tokens: read,
            cache_creation_5m_input_tokens: write_5m,
            cache_creation_1h_input_tokens: write_1h,
        }
    }

    #[test]
    fn sonnet_4_5_with_cache_reads_and_both_write_ttls() {
        // $3 in, $15 out, $3.75 5m write, $6 1h write, $0.30 read, per MTok:
        //   1,234 × 3,000   nanos =   3,702,000
        //   5,678 × 15,000  nanos =  85,170,000
        //  12,000 × 3,750   nanos =  45,000,000
        //   8,000 × 6,000   nanos =  48,000,000
        // 150,000 × 300     nanos =  45,000,000
        //                    total = 226,872,000 nanos = $0.226872
        // 171,234 input-side tokens stay under the 200K long-context threshold.
        let table = PriceTable::builtin();
        let u = usage(1_234, 5_678, 12_000, 8_000, 150_000);
        assert_eq!(
            price(&table, "claude-sonnet-4-5-20250929", &u),
            Cost::Known(Nanos(226_872_000))
        );
        assert_eq!(Nanos(226_872_000).usd_string(), "0.226872");
    }

    #[test]
    fn writes_without_a_ttl_split_bill_at_the_5_minute_rate() {
        let table = PriceTable::builtin();
        let u = Usage {
            cache_creation_input_tokens: 10_000,
            ..Usage::default()
        };
        // 10,000 × 3,750 nanos.
        assert_eq!(
            price(&table, "claude-sonnet-4-5", &u),
            Cost::Known(Nanos(37_500_000))
        );
    }

    #[test]
    fn long_context_tier_prices_every_component() {
        // 50,000 + 100,000 + 60,000 = 210,000 input-side tokens > 200,000, so every component
        // takes the tier: $6 in, $22.50 out, $7.50 5m write, $0.60 read, per MTok.
        //  50,000 × 6,000  =   300,000,000
        //   2,000 × 22,500 =    45,000,000
        // 100,000 × 7,500  =   750,000,000
        //  60,000 × 600    =    36,000,000
        //            total = 1,131,000,000 nanos = $1.131
        let table = PriceTable::builtin();
        let u = Usage {
            input_tokens: 50_000,
            output_tokens: 2_000,
            cache_creation_input_tokens: 100_000,
            cache_read_input_tokens: 60_000,
            ..Usage::default()
        };
        assert_eq!(
            price(&table, "claude-sonnet-4-5", &u),
            Cost::Known(Nanos(1_131_000_000))
        );

        // Exactly at the threshold is still the base tier.
        let at = usage(200_000, 1_000, 0, 0, 0);
        assert_eq!(
            price(&table, "claude-sonnet-4-5", &at),
            Cost::Known(Nanos(200_000 * 3_000 + 1_000 * 15_000))
        );
        let over = usage(200_001, 1_000, 0, 0, 0);
        assert_eq!(
            price(&table, "claude-sonnet-4-5", &over),
            Cost::Known(Nanos(200_001 * 6_000 + 1_000 * 22_500))
        );
    }

    #[test]
    fn haiku_5_5_prompt_length_tier() {
        let table = PriceTable::builtin();
        // 100,000 prompt tokens: $0.10 in (100 nanos/token), $0.01 read (10), $0.50 out (500).
        let short = usage(40_000, 1_000, 0, 0, 60_000);
        assert_eq!(
            price(&table, "claude-haiku-5-5", &short),
            Cost::Known(Nanos(40_000 * 100 + 60_000 * 10 + 1_000 * 500))
        );
        // One more token: $0.50 in, $0.05 read, $2.50 out.
        let long = usage(40_001, 1_000, 0, 0, 60_000);
        assert_eq!(
            price(&table, "claude-haiku-5-5", &long),
            Cost::Known(Nanos(40_001 * 500 + 60_000 * 50 + 1_000 * 2_500))
        );
    }

    #[test]
    fn unknown_model_is_unknown_not_zero() {
        let table = PriceTable::builtin();
        let u = usage(10, 10, 0, 0, 0);
        assert_eq!(price(&table, "gpt-6-sol", &u), Cost::Unknown);
        assert_eq!(price(&table, "claude-opus-9", &u), Cost::Unknown);
        // A known model with no tokens is a known zero.
        assert_eq!(
            price(&table, "claude-opus-4-8", &Usage::default()),
            Cost::Known(Nanos::ZERO)
        );
    }

    #[test]
    fn cost_serializes_as_nanos_or_null() {
        let json = |c: Cost| serde_json::to_string(&c).expect("serializes");
        assert_eq!(json(Cost::Known(Nanos(1_500))), "1500");
        assert_eq!(json(Cost::Unknown), "null");
        let back: Cost = serde_json::from_str("null").expect("deserializes");
        assert_eq!(back, Cost::Unknown);
        let back: Cost = serde_json::from_str("42").expect("deserializes");
        assert_eq!(back, Cost::Known(Nanos(42)));
    }

    #[test]
    fn override_changes_the_price_charged() {
        let mut table = PriceTable::builtin();
        let o: PriceOverride = toml::from_str("input = 1.5\noutput = 7.5\n").expect("valid");
        table
            .apply_overrides(&BTreeMap::from([("claude-sonnet-4-5".to_owned(), o)]))
            .expect("applies");
        // 1,000 × 1,500 + 1,000 × 7,500 + 1,000 × 150 (0.1x read).
        let u = usage(1_000, 1_000, 0, 0, 1_000);
        assert_eq!(
            price(&table, "claude-sonnet-4-5-20250929", &u),
            Cost::Known(Nanos(1_500_000 + 7_500_000 + 150_000))
        );
    }

    #[test]
    fn sub_nano_rates_round_half_up_once_per_component() {
        let mut table = PriceTable::builtin();
        // $0.0001 / MTok is 0.1 nano per token; $0.0001234 / MTok is 0.1234 nano per token.
        let o: PriceOverride =
            toml::from_str("input = \"0.0001\"\noutput = \"0.0001234\"\n").expect("valid");
        table
            .apply_overrides(&BTreeMap::from([("tiny".to_owned(), o)]))
            .expect("applies");
        // 5 × 0.1 = 0.5 → 1; 3 × 0.1234 = 0.37 → 0.
        assert_eq!(
            price(&table, "tiny", &usage(5, 3, 0, 0, 0)),
            Cost::Known(Nanos(1))
        );
        // 4 × 0.1 = 0.4 → 0; 10 × 0.1234 = 1.234 → 1.
        assert_eq!(
            price(&table, "tiny", &usage(4, 10, 0, 0, 0)),
            Cost::Known(Nanos(1))
        );
    }

    #[test]
    fn absurd_token_counts_saturate_instead_of_panicking() {
        let table = PriceTable::builtin();
        let u = Usage {
            output_tokens: u64::MAX,
            ..Usage::default()
        };
        assert_eq!(
            price(&table, "claude-opus-4-1", &u),
            Cost::Known(Nanos(i64::MAX))
        );
    }
}
