//! Guardrails: checks on request and response content (PII and secrets, content rules,
//! prompt-injection heuristics, token limits).
//!
//! # Layout
//! - `limits`: size limits applied to every request before it is forwarded.

pub mod limits;
