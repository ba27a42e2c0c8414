//! Persistence of configuration entities: organisations, teams, users, gateway keys and the
//! admin audit log. SQLite (WAL) on a single node.
//!
//! # Layout
//! - `schema`: migrations, applied in order at open.
//! - `entities`: the entity rows and their queries.
//! - `alerts`: the alert delivery log.
//! - `policies`: stored policies (the admin API's half; config policies never reach the store).
//! - `error`: the crate's error type.

mod alerts;
mod entities;
mod error;
mod policies;
mod schema;

pub use alerts::AlertDelivery;
pub use entities::{AuditEntry, KeyRow, NewKey, Store, Team, User};
pub use error::StoreError;
pub use policies::PolicyRow;
