//! The request journal: exactly one record per request, durable before the response ends.
//!
//! # Layout
//! - `record`: the [`JournalRecord`] every request produces.
//! - `segments`: the local append-only files written with one `write(2)` per record; they are
//!   what survives a `kill -9`.
//! - `sqlite`: the queryable copy, written in batches by a background thread, idempotent by id,
//!   and the queries behind `tollgate logs` and `tollgate spend`.
//!
//! Ordering: a record is written to the segment file and then queued for SQLite while the
//! segment lock is held, so the queue order is the file order; the writer deletes a segment
//! only after it has committed a record of a newer one.

mod record;
mod segments;
mod sqlite;

pub use record::{AttemptRecord, JournalRecord};
pub use segments::{DEFAULT_COMMIT_INTERVAL, Journal, JournalConfig};
pub use sqlite::{JournalQuery, JournalReader, SpendBy, SpendQuery, SpendRow};
