//! Prices and cost: what each model charges and what a response cost, in integer nano-USD.
//!
//! # Layout
//! - `money`: [`Nanos`], the one money type, and exact decimal-dollar parsing.
//! - `prices`: the [`PriceTable`] (built-in Claude list prices from `data/prices.toml`,
//!   operator overrides, model-id lookup across aliases, snapshot dates and `[1m]`).
//! - `journal`: the request journal — local segments, SQLite copy, logs and spend queries.
//! - `cost`: [`Cost`] of a response from its token usage, long-context tiers included.

pub mod cost;
pub mod journal;
pub mod money;
pub mod prices;

pub use cost::{Cost, cost_of, price};
pub use money::{Nanos, ParseUsdError, parse_usd};
pub use prices::{LongContextOverride, ModelPrice, PriceError, PriceOverride, PriceTable, Rates};
