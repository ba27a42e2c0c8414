//! Who is calling and what they may do: identities, keys, admin roles, policies, budgets and
//! rate limits.
//!
//! # Layout
//! - `identity`: principals (org → workspace → team → user → key) and the in-memory snapshot
//!   that authenticates every request without touching the database.
//! - `keys`: gateway key generation and hashing.
//! - `limits`: counters behind budgets, rate limits and concurrency caps (reserve-then-settle),
//!   in memory for one node or in Redis shared by replicas.
//! - `policy`: what a scope may do (the `[[policies]]` / admin API spec).
//! - `policy_set`: the compiled policies and which apply to a request.
//! - `admission`: every applicable policy checked against a request, and its settlement.
//! - `alerts`: threshold, hard-cap and loop-breaker alert events, deduplicated per period.
//! - `roles`: admin roles, where entities sit in the hierarchy, and the admin API's one
//!   authorisation decision.
//! - `tz`: time zones of budget periods.

pub mod admission;
pub mod alerts;
pub mod identity;
pub mod keys;
pub mod limits;
pub mod policy;
pub mod policy_set;
pub mod roles;
pub mod tz;

pub use identity::{Identities, IdentitySnapshot, Principal};
pub use keys::{KeyHash, generate_admin_key, generate_gateway_key, hash_key};
