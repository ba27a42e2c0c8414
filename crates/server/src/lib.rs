//! The gateway's HTTP side: ingress, the seven-phase pipeline, the admin API.
//!
//! # Layout
//! - `app`: assembling state and routes; `tollgate serve`.
//! - `config`: the configuration file.
//! - `state`: what every request can reach.
//! - `listener`: the TCP accept loop with its limits.
//! - `pipeline`: the model request phases (accept … settle), one module each.
//! - `request_id`: time-ordered request ids without a system call each.
//! - `decode`: request `Content-Encoding` decoding with a size cap.
//! - `error`: the pipeline's error type, rendered in the client's dialect.
//! - `admin`: the `/admin/v1` API (roles, audit, policies, provider credentials, reports).
//! - `alerts`: alert delivery to webhooks, logged and retried.
//! - `vault`: provider credentials decrypted in memory, and the master key.
//! - `watch`: rebuilds the snapshots when the store's change counter moves (other replicas).

pub mod admin;
pub mod alerts;
pub mod app;
pub mod config;
pub mod decode;
pub mod error;
pub mod listener;
pub mod pipeline;
pub mod request_id;
pub mod state;
pub mod vault;
pub mod watch;

pub use app::{ServeOptions, serve};
