//! Wire formats of the model APIs Tollgate speaks: envelopes, stream codecs and usage
//! extraction. No I/O happens here.
//!
//! # Layout
//! - `usage`: token usage in Anthropic's terms, the common currency of the ledger.
//! - `sse`: an incremental SSE scanner that watches bytes without changing them.
//! - `headers`: typed names of the headers the gateway reads, writes and filters.
//! - `anthropic`: the Messages dialect — request facts, response facts, error envelopes.

pub mod anthropic;
pub mod headers;
pub mod sse;
pub mod usage;

pub use usage::Usage;
