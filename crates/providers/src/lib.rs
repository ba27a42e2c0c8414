//! Upstream clients: where a provider lives, how to authenticate to it and which headers it
//! gets.
//!
//! # Layout
//! - `client`: the shared pooled HTTP/1.1 + HTTP/2 client (rustls with the ring provider).
//! - `config`: provider entries of the configuration file.
//! - `forward`: which client headers are forwarded to an upstream.
//! - `anthropic`: the Anthropic Messages API upstream.

pub mod anthropic;
pub mod client;
pub mod config;
pub mod forward;

pub use anthropic::AnthropicUpstream;
pub use client::{UpstreamBody, UpstreamClient, UpstreamClientOptions};
pub use config::{ProviderConfig, ProviderKind};
