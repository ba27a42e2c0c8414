//! Route plans: which upstreams serve a request, in which order, and how attempts are retried.
//!
//! # Layout
//! - `catalog`: model names, aliases and per-provider model ids.
//! - `config`: `[[routes]]` and `[routing]` as written in the configuration file.
//! - `request`: [`RequestMeta`], what the planner may know about a request.
//! - `condition`: branch conditions (team, user, key, project, tags, headers, model, stream,
//!   body size).
//! - `route`: compiled routes, targets and deployments (a provider, maybe with its own model).
//! - `balance`: ordering targets by strategy (fallback, weighted, least latency, least busy,
//!   cheapest), breaker-open targets last.
//! - `affinity`: rendezvous hashing of a session onto targets, identical on every replica.
//! - `health`: per-target breaker, latency average and in-flight count, fed through leases.
//! - `breaker`: the circuit breaker state machine.
//! - `retry`: what counts as a failure to fall back on, backoff with jitter, `retry-after`,
//!   the deadline — the attempt [`Schedule`] the forward phase drives.
//! - `plan`: the [`Routes`] table and the [`RoutePlan`] it yields per request.
//!
//! Everything here is computed from the request's metadata and in-memory state: no I/O, no
//! locks held across awaits, and nothing from the server crate.

pub mod affinity;
mod balance;
pub mod breaker;
pub mod catalog;
pub mod condition;
pub mod config;
pub mod health;
pub mod plan;
pub mod request;
pub mod retry;
pub mod route;

pub use breaker::BreakerState;
pub use catalog::{Catalog, ModelEntry, ModelOnProvider};
pub use config::{RouteConfig, RoutingConfig, Strategy};
pub use health::{Health, Lease};
pub use plan::{Attempt, RouteError, RoutePlan, Routes};
pub use request::RequestMeta;
pub use retry::{AttemptKind, Failure, FallbackOn, RetryPolicy, Schedule, Step};
pub use route::{Overrides, RoutePolicy, Timeouts};
