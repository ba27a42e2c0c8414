//! SQLite through rusqlite: the single-node engine, one connection behind a lock.

use super::{Arg, Cell, Row};
use crate::error::StoreError;
use rusqlite::Connection;
use rusqlite::types::{ToSqlOutput, ValueRef};

impl rusqlite::ToSql for Arg {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Arg::Text(Some(s)) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Arg::Int(Some(v)) => ToSqlOutput::Borrowed(ValueRef::Integer(*v)),
            Arg::Blob(Some(b)) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
            Arg::Text(None) | Arg::Int(None) | Arg::Blob(None) => {
                ToSqlOutput::Borrowed(ValueRef::Null)
            }
        })
    }
}

pub(crate) fn exec(conn: &Connection, sql: &str, args: &[Arg]) -> Result<u64, StoreError> {
    let mut st = conn.prepare_cached(sql)?;
    Ok(st.execute(rusqlite::params_from_iter(args))? as u64)
}

pub(crate) fn query(conn: &Connection, sql: &str, args: &[Arg]) -> Result<Vec<Row>, StoreError> {
    let mut st = conn.prepare_cached(sql)?;
    let n = st.column_count();
    let mut rows = st.query(rusqlite::params_from_iter(args))?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let mut cells = Vec::with_capacity(n);
        for i in 0..n {
            cells.push(match r.get_ref(i)? {
                ValueRef::Null => Cell::Null,
                ValueRef::Integer(v) => Cell::Int(v),
                ValueRef::Text(t) => Cell::Text(
                    std::str::from_utf8(t)
                        .map_err(|e| StoreError::Db(format!("column {i} is not UTF-8: {e}")))?
                        .to_string(),
                ),
                ValueRef::Blob(b) => Cell::Blob(b.to_vec()),
                ValueRef::Real(_) => {
                    return Err(StoreError::Db(format!("column {i} is a float")));
                }
            });
        }
        out.push(Row(cells));
    }
    Ok(out)
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        if let rusqlite::Error::SqliteFailure(f, msg) = &e
            && matches!(
                f.extended_code,
                rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            )
        {
            // Two writers racing past a uniqueness check: the database had the last word.
            let what = msg
                .as_deref()
                .and_then(|m| m.split_once(": "))
                .map_or("value", |(_, cols)| cols);
            return StoreError::Conflict(format!("a row with the same {what}"));
        }
        StoreError::Db(e.to_string())
    }
}
