//! Postgres through sqlx: the engine replicas share.
//!
//! The store's API is synchronous (its callers run it on blocking threads, at start-up and in
//! the alert dispatcher), while sqlx is async. The store therefore owns a small runtime of its
//! own: each statement is spawned there and waited for on a plain channel, which works from any
//! thread, inside another runtime or not, without `block_on`'s panics. Every sqlx connection
//! is created, used and dropped on that runtime only.

use super::{Arg, Cell, Row};
use crate::error::StoreError;
use sqlx::postgres::{PgArguments, PgPool, PgPoolOptions, PgRow, Postgres};
use sqlx::query::Query;
use sqlx::{AssertSqlSafe, Column, Row as _, Transaction, TypeInfo, ValueRef};
use std::time::Duration;

/// How long a caller waits for one statement before giving up on the database.
const WAIT: Duration = Duration::from_secs(30);

/// A pool of Postgres connections and the runtime that drives them.
pub(crate) struct Pg {
    rt: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
    pool: Option<PgPool>,
}

impl Pg {
    /// Connects to `url` with at most `max_connections` connections, waiting at most
    /// `connect_timeout` for a connection each time one is needed. Errors never show the URL's
    /// password.
    pub(crate) fn connect(
        url: &str,
        max_connections: u32,
        connect_timeout: Duration,
    ) -> Result<Pg, StoreError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("tollgate-store")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Db(format!("cannot start the database runtime: {e}")))?;
        let handle = rt.handle().clone();
        let options = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(connect_timeout);
        let owned = url.to_string();
        let connected = run(&handle, async move { options.connect(&owned).await })
            .and_then(|r| r.map_err(StoreError::from));
        let pool = match connected {
            Ok(pool) => pool,
            Err(e) => {
                // Dropping a runtime blocks, which panics when the caller is async itself.
                rt.shutdown_background();
                return Err(match e {
                    StoreError::Db(m) => StoreError::Db(format!(
                        "cannot connect to {}: {}",
                        redact_url(url),
                        scrub(&m, url)
                    )),
                    other => other,
                });
            }
        };
        Ok(Pg {
            rt: Some(rt),
            handle,
            pool: Some(pool),
        })
    }

    fn pool(&self) -> Result<PgPool, StoreError> {
        self.pool
            .clone()
            .ok_or_else(|| StoreError::Db("the database pool is closed".into()))
    }

    fn run<T: Send + 'static>(
        &self,
        fut: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, StoreError> {
        run(&self.handle, fut)
    }

    /// A session for one store call.
    pub(crate) fn session(&self) -> Session<'_> {
        Session { pg: self, tx: None }
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        // sqlx hands connections back to the pool from tasks spawned on the current runtime:
        // drop the pool inside ours, then stop ours without waiting (the caller may itself be
        // on a runtime, where a blocking shutdown panics).
        {
            let _in = self.handle.enter();
            self.pool.take();
        }
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

fn run<T: Send + 'static>(
    handle: &tokio::runtime::Handle,
    fut: impl Future<Output = T> + Send + 'static,
) -> Result<T, StoreError> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    handle.spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv_timeout(WAIT).map_err(|_| {
        StoreError::Db(format!(
            "the database did not answer within {} s",
            WAIT.as_secs()
        ))
    })
}

/// One store call's view of Postgres: statements go to any pooled connection, except inside a
/// transaction, which holds one connection until it ends.
pub(crate) struct Session<'a> {
    pg: &'a Pg,
    tx: Option<Transaction<'static, Postgres>>,
}

impl Session<'_> {
    pub(crate) fn exec(&mut self, sql: &str, args: Vec<Arg>) -> Result<u64, StoreError> {
        let sql = numbered(sql);
        let done = match self.tx.take() {
            Some(mut tx) => {
                let (tx, r) = self.pg.run(async move {
                    let r = bind(sqlx::query(AssertSqlSafe(sql)), args)
                        .execute(&mut *tx)
                        .await;
                    (tx, r)
                })?;
                self.tx = Some(tx);
                r?
            }
            None => {
                let pool = self.pg.pool()?;
                self.pg.run(async move {
                    bind(sqlx::query(AssertSqlSafe(sql)), args)
                        .execute(&pool)
                        .await
                })??
            }
        };
        Ok(done.rows_affected())
    }

    pub(crate) fn query(&mut self, sql: &str, args: Vec<Arg>) -> Result<Vec<Row>, StoreError> {
        let sql = numbered(sql);
        let rows = match self.tx.take() {
            Some(mut tx) => {
                let (tx, r) = self.pg.run(async move {
                    let r = bind(sqlx::query(AssertSqlSafe(sql)), args)
                        .fetch_all(&mut *tx)
                        .await;
                    (tx, r)
                })?;
                self.tx = Some(tx);
                r?
            }
            None => {
                let pool = self.pg.pool()?;
                self.pg.run(async move {
                    bind(sqlx::query(AssertSqlSafe(sql)), args)
                        .fetch_all(&pool)
                        .await
                })??
            }
        };
        rows.iter().map(cells).collect()
    }

    pub(crate) fn batch(&mut self, sql: &str) -> Result<(), StoreError> {
        let sql = sql.to_string();
        match self.tx.take() {
            Some(mut tx) => {
                let (tx, r) = self.pg.run(async move {
                    let r = sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut *tx).await;
                    (tx, r)
                })?;
                self.tx = Some(tx);
                r?;
            }
            None => {
                let pool = self.pg.pool()?;
                self.pg
                    .run(async move { sqlx::raw_sql(AssertSqlSafe(sql)).execute(&pool).await })??;
            }
        }
        Ok(())
    }

    pub(crate) fn begin(&mut self) -> Result<(), StoreError> {
        if self.tx.is_some() {
            return Err(StoreError::Db("a transaction is already open".into()));
        }
        let pool = self.pg.pool()?;
        self.tx = Some(self.pg.run(async move { pool.begin().await })??);
        Ok(())
    }

    pub(crate) fn commit(&mut self) -> Result<(), StoreError> {
        if let Some(tx) = self.tx.take() {
            self.pg.run(async move { tx.commit().await })??;
        }
        Ok(())
    }

    pub(crate) fn rollback(&mut self) {
        if let Some(tx) = self.tx.take() {
            let _ = self.pg.run(async move { tx.rollback().await });
        }
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        // Only reached with an open transaction when a caller panicked mid-way; end it on the
        // store's runtime, where its connection lives.
        if let Some(tx) = self.tx.take() {
            self.pg.handle.spawn(async move {
                let _ = tx.rollback().await;
            });
        }
    }
}

fn bind(
    mut q: Query<'static, Postgres, PgArguments>,
    args: Vec<Arg>,
) -> Query<'static, Postgres, PgArguments> {
    for a in args {
        q = match a {
            Arg::Text(v) => q.bind(v),
            Arg::Int(v) => q.bind(v),
            Arg::Blob(v) => q.bind(v),
        };
    }
    q
}

fn cells(row: &PgRow) -> Result<Row, StoreError> {
    let mut out = Vec::with_capacity(row.columns().len());
    for (i, col) in row.columns().iter().enumerate() {
        if row.try_get_raw(i)?.is_null() {
            out.push(Cell::Null);
            continue;
        }
        out.push(match col.type_info().name() {
            "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" => Cell::Text(row.try_get::<String, _>(i)?),
            "INT8" => Cell::Int(row.try_get::<i64, _>(i)?),
            "INT4" => Cell::Int(row.try_get::<i32, _>(i)?.into()),
            "INT2" => Cell::Int(row.try_get::<i16, _>(i)?.into()),
            "BOOL" => Cell::Int(row.try_get::<bool, _>(i)?.into()),
            "BYTEA" => Cell::Blob(row.try_get::<Vec<u8>, _>(i)?),
            other => {
                return Err(StoreError::Db(format!(
                    "column {i} has a type the store does not read: {other}"
                )));
            }
        });
    }
    Ok(Row(out))
}

/// Rewrites SQLite's `?N` placeholders into Postgres's `$N`. The store's SQL has no `?`
/// anywhere else (no string literal or operator holds one).
pub(crate) fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '?' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    out
}

/// The URL with its password replaced by `***`, safe for logs and errors.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        // Not a URL we can take apart (e.g. key=value form): show nothing of it.
        return "<postgres connection string>".into();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            let masked = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                user.to_string()
            };
            // Query parameters may carry a password too (`?password=`).
            let tail = tail.split_once('?').map_or(tail, |(path, _)| path);
            format!("{scheme}://{masked}@{host}{tail}")
        }
        None => {
            let tail = tail.split_once('?').map_or(tail, |(path, _)| path);
            format!("{scheme}://{authority}{tail}")
        }
    }
}

/// Removes the URL's password (raw and percent-decoded) and the URL itself from a message.
fn scrub(message: &str, url: &str) -> String {
    let mut out = message.replace(url, &redact_url(url));
    if let Some((_, rest)) = url.split_once("://")
        && let Some((userinfo, _)) = rest.split_once('@')
        && let Some((_, password)) = userinfo.split_once(':')
        && !password.is_empty()
    {
        out = out.replace(password, "***");
        let decoded = percent_decode(password);
        if !decoded.is_empty() {
            out = out.replace(&decoded, "***");
        }
    }
    out
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if let Some(db) = e.as_database_error()
            && db.kind() == sqlx::error::ErrorKind::UniqueViolation
        {
            // Two replicas racing past a uniqueness check: the database had the last word.
            return StoreError::Conflict(format!(
                "a row with the same {}",
                db.constraint().unwrap_or("value")
            ));
        }
        StoreError::Db(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_numbered_dollars() {
        assert_eq!(
            numbered("SELECT a FROM t WHERE x = ?1 AND (?2 IS NULL OR y = ?2) LIMIT ?10"),
            "SELECT a FROM t WHERE x = $1 AND ($2 IS NULL OR y = $2) LIMIT $10"
        );
    }

    #[test]
    fn urls_lose_their_password_in_every_message() {
        let url = "postgres://tollgate:s3cr%40t@db.internal:5432/tg?sslmode=require&password=x";
        let shown = redact_url(url);
        assert_eq!(shown, "postgres://tollgate:***@db.internal:5432/tg");
        assert_eq!(
            redact_url("postgres://postgres@127.0.0.1:5/db"),
            "postgres://postgres@127.0.0.1:5/db"
        );
        assert_eq!(
            redact_url("host=x password=y"),
            "<postgres connection string>"
        );
        let m = scrub(&format!("failed: {url} with s3cr@t and s3cr%40t"), url);
        assert!(!m.contains("s3cr"), "{m}");
    }
}
