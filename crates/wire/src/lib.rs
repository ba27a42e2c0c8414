//! Wire formats of the model APIs Tollgate speaks: envelopes, stream codecs and usage
//! extraction. No I/O happens here.
//!
//! # Layout
//! - `usage`: token usage in Anthropic's terms, the common currency of the ledger.
//! - `sse`: an incremental SSE scanner that watches bytes without changing them.
//! - `headers`: typed names of the headers the gateway reads, writes and filters.
//! - `anthropic`: the Messages dialect — request facts, response facts, error envelopes.
//! - `openai`: Chat Completions, and conversion to and from Messages (streams included).
//! - `bedrock`: InvokeModel envelopes and AWS event-stream framing.
//! - `vertex`: rawPredict envelopes.

pub mod anthropic;
pub mod bedrock;
pub mod headers;
pub mod openai;
pub mod sse;
pub mod usage;
pub mod vertex;

pub use usage::Usage;
