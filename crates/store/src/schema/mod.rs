//! Schema migrations: one list per engine (their DDL differs: `BLOB`/`BYTEA`, identity
//! columns, triggers), each entry one version, applied in order when a store opens.

pub(crate) mod postgres;
pub(crate) mod sqlite;
