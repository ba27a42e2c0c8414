//! Persistence of configuration entities: organisations, workspaces, teams, users, gateway
//! keys, admin credentials, the admin audit log, stored policies and sealed provider
//! credentials. SQLite (WAL) on a single node; Postgres shared by the replicas of a cluster.
//! Every query is written once and runs on both.
//!
//! # Layout
//! - `store`: the `Store`, opening either engine, the change counter replicas poll.
//! - `db`: the engine shim: `?N` SQL, typed arguments, rows of cells; `sqlite` and `postgres`.
//! - `schema`: migrations per engine, applied in order at open.
//! - `entities`: workspaces, teams, users, keys and where each sits in the hierarchy.
//! - `alerts`: the alert delivery log.
//! - `admins`: admin credentials with their roles.
//! - `audit`: the admin audit log (before/after of every change).
//! - `policies`: stored policies (the admin API's half; config policies never reach the store).
//! - `secrets`: the master key and AES-256-GCM sealing.
//! - `credentials`: provider credentials sealed at rest.
//! - `error`: the crate's error type.

mod admins;
mod alerts;
mod audit;
mod credentials;
mod db;
mod entities;
mod error;
mod policies;
mod schema;
pub mod secrets;
mod store;
#[cfg(test)]
mod suite;

pub use admins::{AdminRow, NewAdmin};
pub use alerts::AlertDelivery;
pub use audit::{AuditEntry, AuditRecord};
pub use credentials::CredentialRow;
pub use db::Backend;
pub use db::postgres::redact_url;
pub use entities::{
    DEFAULT_ORG, DEFAULT_WORKSPACE, KeyRow, NewKey, SERVICE_USER_PREFIX, Team, User, Workspace,
};
pub use error::StoreError;
pub use policies::PolicyRow;
pub use secrets::{MasterKey, SecretError};
pub use store::Store;
