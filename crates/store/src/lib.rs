//! Persistence of configuration entities: organisations, workspaces, teams, users, gateway
//! keys, admin credentials, the admin audit log, stored policies and sealed provider
//! credentials. SQLite (WAL) on a single node.
//!
//! # Layout
//! - `schema`: migrations, applied in order at open.
//! - `entities`: the entity rows and their queries.
//! - `alerts`: the alert delivery log.
//! - `entities`: workspaces, teams, users, keys and where each sits in the hierarchy.
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
mod entities;
mod error;
mod policies;
mod schema;
pub mod secrets;

pub use admins::{AdminRow, NewAdmin};
pub use alerts::AlertDelivery;
pub use audit::{AuditEntry, AuditRecord};
pub use credentials::CredentialRow;
pub use entities::{
    DEFAULT_ORG, DEFAULT_WORKSPACE, KeyRow, NewKey, SERVICE_USER_PREFIX, Store, Team, User,
    Workspace,
};
pub use error::StoreError;
pub use policies::PolicyRow;
pub use secrets::{MasterKey, SecretError};
