//! Errors of the store, classified by who caused them.

/// A store failure: either the caller asked for something impossible, or the database failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A referenced entity does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// A unique name is already taken (found by a check, or by the database when two writers
    /// raced past it).
    #[error("{0} already exists")]
    Conflict(String),
    /// The caller's input is unusable.
    #[error("{0}")]
    Invalid(String),
    /// A sealed secret could not be sealed or opened (wrong master key, altered row).
    #[error(transparent)]
    Secret(#[from] crate::secrets::SecretError),
    /// The database itself failed (or could not be reached). The message never holds a
    /// connection password.
    #[error("database error: {0}")]
    Db(String),
}
