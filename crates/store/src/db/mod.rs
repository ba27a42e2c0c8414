//! The two database engines behind one small interface, so every query is written once.
//!
//! SQL text uses SQLite's numbered placeholders (`?1`, `?2`, …) and SQL both engines accept
//! (`ON CONFLICT … DO NOTHING`, `RETURNING`, `IS DISTINCT FROM`); the Postgres side rewrites
//! the placeholders to `$1`, `$2`, …. Arguments carry their type even when they are NULL,
//! because Postgres types every parameter. Rows come back as plain cells read by position.

pub(crate) mod postgres;
pub(crate) mod sqlite;

use crate::error::StoreError;
use std::sync::MutexGuard;

/// A query argument. NULLs keep a type so Postgres can tell a NULL text from a NULL bytea.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Text(Option<String>),
    Int(Option<i64>),
    Blob(Option<Vec<u8>>),
}

impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Arg::Text(Some(v.to_string()))
    }
}
impl From<String> for Arg {
    fn from(v: String) -> Self {
        Arg::Text(Some(v))
    }
}
impl From<&String> for Arg {
    fn from(v: &String) -> Self {
        Arg::Text(Some(v.clone()))
    }
}
impl From<Option<String>> for Arg {
    fn from(v: Option<String>) -> Self {
        Arg::Text(v)
    }
}
impl From<&Option<String>> for Arg {
    fn from(v: &Option<String>) -> Self {
        Arg::Text(v.clone())
    }
}
impl From<Option<&str>> for Arg {
    fn from(v: Option<&str>) -> Self {
        Arg::Text(v.map(str::to_string))
    }
}
impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Arg::Int(Some(v))
    }
}
impl From<u32> for Arg {
    fn from(v: u32) -> Self {
        Arg::Int(Some(v.into()))
    }
}
impl From<Option<u32>> for Arg {
    fn from(v: Option<u32>) -> Self {
        Arg::Int(v.map(i64::from))
    }
}
impl From<&[u8]> for Arg {
    fn from(v: &[u8]) -> Self {
        Arg::Blob(Some(v.to_vec()))
    }
}
impl From<Vec<u8>> for Arg {
    fn from(v: Vec<u8>) -> Self {
        Arg::Blob(Some(v))
    }
}
impl From<&Vec<u8>> for Arg {
    fn from(v: &Vec<u8>) -> Self {
        Arg::Blob(Some(v.clone()))
    }
}

/// The arguments of one statement, in placeholder order.
macro_rules! args {
    () => { Vec::<$crate::db::Arg>::new() };
    ($($a:expr),+ $(,)?) => { vec![$($crate::db::Arg::from($a)),+] };
}
pub(crate) use args;

/// One value of a result row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell {
    Null,
    Int(i64),
    Text(String),
    Blob(Vec<u8>),
}

/// One result row.
#[derive(Debug, Clone)]
pub(crate) struct Row(pub(crate) Vec<Cell>);

impl Row {
    /// Column `i` as `T`; a NULL or a value of another type is a database error naming the
    /// column, never a panic.
    pub(crate) fn get<T: FromCell>(&self, i: usize) -> Result<T, StoreError> {
        let cell = self.0.get(i).unwrap_or(&Cell::Null);
        T::from_cell(cell).ok_or_else(|| {
            StoreError::Db(format!(
                "column {i} holds {cell:?}, not a {}",
                std::any::type_name::<T>()
            ))
        })
    }
}

/// A Rust type a [`Cell`] can be read as.
pub(crate) trait FromCell: Sized {
    fn from_cell(c: &Cell) -> Option<Self>;
}

impl FromCell for String {
    fn from_cell(c: &Cell) -> Option<Self> {
        match c {
            Cell::Text(s) => Some(s.clone()),
            _ => None,
        }
    }
}
impl FromCell for i64 {
    fn from_cell(c: &Cell) -> Option<Self> {
        match c {
            Cell::Int(v) => Some(*v),
            _ => None,
        }
    }
}
impl FromCell for u32 {
    fn from_cell(c: &Cell) -> Option<Self> {
        match c {
            Cell::Int(v) => u32::try_from(*v).ok(),
            _ => None,
        }
    }
}
impl FromCell for Vec<u8> {
    fn from_cell(c: &Cell) -> Option<Self> {
        match c {
            Cell::Blob(b) => Some(b.clone()),
            _ => None,
        }
    }
}
impl<T: FromCell> FromCell for Option<T> {
    fn from_cell(c: &Cell) -> Option<Self> {
        match c {
            Cell::Null => Some(None),
            c => T::from_cell(c).map(Some),
        }
    }
}

/// Which engine a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// One file in the data directory; one gateway process.
    Sqlite,
    /// A server shared by every replica of a cluster.
    Postgres,
}

/// A connection for the length of one store call: SQLite's single connection under its lock,
/// or a Postgres session (the pool, or one pooled connection inside a transaction).
pub(crate) enum Db<'a> {
    Sqlite(MutexGuard<'a, rusqlite::Connection>),
    Postgres(postgres::Session<'a>),
}

impl Db<'_> {
    /// Runs a statement that returns no rows; returns the number of rows it changed.
    pub(crate) fn exec(&mut self, sql: &str, args: Vec<Arg>) -> Result<u64, StoreError> {
        match self {
            Db::Sqlite(c) => sqlite::exec(c, sql, &args),
            Db::Postgres(s) => s.exec(sql, args),
        }
    }

    /// Runs a query and reads every row.
    pub(crate) fn query(&mut self, sql: &str, args: Vec<Arg>) -> Result<Vec<Row>, StoreError> {
        match self {
            Db::Sqlite(c) => sqlite::query(c, sql, &args),
            Db::Postgres(s) => s.query(sql, args),
        }
    }

    /// The first row of a query, if any.
    pub(crate) fn query_opt(
        &mut self,
        sql: &str,
        args: Vec<Arg>,
    ) -> Result<Option<Row>, StoreError> {
        Ok(self.query(sql, args)?.into_iter().next())
    }

    /// The first row of a query that always returns one.
    pub(crate) fn query_one(&mut self, sql: &str, args: Vec<Arg>) -> Result<Row, StoreError> {
        self.query_opt(sql, args)?
            .ok_or_else(|| StoreError::Db("a query that must return a row returned none".into()))
    }

    /// Runs several statements without arguments (schema changes).
    pub(crate) fn batch(&mut self, sql: &str) -> Result<(), StoreError> {
        match self {
            Db::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Db::Postgres(s) => s.batch(sql),
        }
    }

    pub(crate) fn begin(&mut self) -> Result<(), StoreError> {
        match self {
            Db::Sqlite(c) => Ok(c.execute_batch("BEGIN IMMEDIATE")?),
            Db::Postgres(s) => s.begin(),
        }
    }

    pub(crate) fn commit(&mut self) -> Result<(), StoreError> {
        match self {
            Db::Sqlite(c) => Ok(c.execute_batch("COMMIT")?),
            Db::Postgres(s) => s.commit(),
        }
    }

    pub(crate) fn rollback(&mut self) {
        match self {
            Db::Sqlite(c) => {
                let _ = c.execute_batch("ROLLBACK");
            }
            Db::Postgres(s) => s.rollback(),
        }
    }
}

/// Runs `f` inside a transaction: committed when it returns `Ok`, rolled back otherwise.
pub(crate) fn in_transaction<T>(
    db: &mut Db<'_>,
    f: impl FnOnce(&mut Db<'_>) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    db.begin()?;
    match f(db).and_then(|v| db.commit().map(|()| v)) {
        Ok(v) => Ok(v),
        Err(e) => {
            // Also after a failed COMMIT, which leaves SQLite's transaction open.
            db.rollback();
            Err(e)
        }
    }
}
