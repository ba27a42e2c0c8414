//! Upstream clients: where a provider lives, how to authenticate to it and which headers it
//! gets.
//!
//! # Layout
//! - `client`: the shared pooled HTTP/1.1 + HTTP/2 client (rustls with the ring provider).
//! - `config`: provider entries of the configuration file.
//! - `forward`: which client headers are forwarded to an upstream.
//! - `anthropic`: the Anthropic Messages API upstream.
//! - `call`: what one upstream call is ([`UpstreamCall`]), the configured [`Upstream`] of any
//!   kind and [`build`], which turns a provider entry into one.
//! - `bedrock`, `vertex`, `openai`: the other upstream kinds; each has `mod.rs` (the type and
//!   its configuration), `request.rs` (URL and headers of an operation) and `auth.rs`
//!   (credentials, signing, tokens).
//! - `simulator`: `kind = "simulator"`, an upstream answered inside the gateway with
//!   configurable latency, errors and cut streams (`settings`, `cache`, `response`, `body`).
//! - `body`: [`ResponseBody`], the answer body of any upstream (network or simulator).
//! - `betas`: which `anthropic-beta` values each provider kind receives (`data/betas.toml`).
//! - `quirks`: which Chat Completions parameters each OpenAI-dialect model takes
//!   (`data/openai_models.toml`).

pub mod anthropic;
pub mod bedrock;
pub mod betas;
pub mod body;
pub mod call;
pub mod client;
pub mod config;
pub mod forward;
pub mod openai;
pub mod quirks;
pub mod simulator;
pub mod vertex;

pub use anthropic::AnthropicUpstream;
pub use anthropic::ProviderConfigError;
pub use bedrock::BedrockUpstream;
pub use betas::{BetaAction, BetaTable, BetaTableError};
pub use body::{BodyError, ResponseBody};
pub use call::{Dialect, Operation, ProviderError, Upstream, UpstreamCall, build, build_with_env};
pub use client::{UpstreamBody, UpstreamClient, UpstreamClientOptions};
pub use config::{ProviderConfig, ProviderKind};
pub use openai::OpenAiUpstream;
pub use quirks::{QuirkRule, QuirkTable, QuirkTableError};
pub use simulator::{SimulatorHandle, SimulatorSettings, SimulatorUpstream};
pub use vertex::VertexUpstream;
