//! A strict, scripted fake of the Anthropic Messages API.
//!
//! It plays the upstream in integration tests: it rejects what the real API rejects (and what a
//! gateway must never forward), records every request, and answers according to a scenario
//! chosen per request by the `x-mock-scenario` header or a `[[scenario:NAME]]` tag in the first
//! user message. In fast mode it serves fixed answers for benchmarks.

mod body;
mod error;
mod fast;
mod message;
mod scenario;
pub mod services;
mod sink;
mod sse;
mod upstream;

pub use sink::RecordingSink;
pub use upstream::{RecordedRequest, ScriptedUpstream, UpstreamOptions};
