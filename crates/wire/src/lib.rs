//! Wire formats of the model APIs Tollgate speaks: envelopes, stream codecs and usage
//! extraction. No I/O happens here.
//!
//! # Layout
//! - `usage`: token usage in Anthropic's terms, the common currency of the ledger.

pub mod usage;

pub use usage::Usage;
