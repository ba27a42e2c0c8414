//! The store itself: which engine it runs on, opening and migrating it, and the change counter
//! replicas poll.

use crate::db::{Backend, Db, args, postgres::Pg};
use crate::entities::now;
use crate::error::StoreError;
use crate::schema;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

/// The entity store. Calls are synchronous and short; async callers run them on a blocking
/// thread. On SQLite it is one connection to a file of the data directory; on Postgres a pool
/// shared with every other replica of the cluster.
pub struct Store {
    engine: Engine,
}

enum Engine {
    Sqlite(Mutex<rusqlite::Connection>),
    Postgres(Pg),
}

impl Store {
    /// Opens (creating if needed) the SQLite database at `path` and migrates it.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let mut conn = rusqlite::Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        schema::sqlite::migrate(&mut conn)?;
        Self::ready(Store {
            engine: Engine::Sqlite(Mutex::new(conn)),
        })
    }

    /// Connects to the Postgres database at `url` and migrates it. At most `max_connections`
    /// are opened; a call that finds the database unreachable fails after `connect_timeout`.
    /// Errors never show the URL's password.
    pub fn open_postgres(
        url: &str,
        max_connections: u32,
        connect_timeout: Duration,
    ) -> Result<Store, StoreError> {
        let store = Store {
            engine: Engine::Postgres(Pg::connect(url, max_connections, connect_timeout)?),
        };
        schema::postgres::migrate(&mut store.db())?;
        Self::ready(store)
    }

    fn ready(store: Store) -> Result<Store, StoreError> {
        store.db().exec(
            "INSERT INTO orgs (id, name, created_at) VALUES (?1, 'default', ?2)
             ON CONFLICT DO NOTHING",
            args![crate::DEFAULT_ORG, now()],
        )?;
        Ok(store)
    }

    /// The engine this store runs on.
    pub fn backend(&self) -> Backend {
        match self.engine {
            Engine::Sqlite(_) => Backend::Sqlite,
            Engine::Postgres(_) => Backend::Postgres,
        }
    }

    /// The change counter: it moves on every write to workspaces, teams, users, keys,
    /// policies, provider credentials and master keys, whoever made it (this process, another
    /// replica, or SQL typed by hand), so a poller knows when its snapshots are stale.
    pub fn change_seq(&self) -> Result<i64, StoreError> {
        self.db()
            .query_one("SELECT seq FROM changes WHERE id = 1", args![])?
            .get(0)
    }

    /// A connection for one call. SQLite's lock is held until it is dropped, so a call never
    /// takes a second one.
    pub(crate) fn db(&self) -> Db<'_> {
        match &self.engine {
            // A panic while holding the lock cannot leave SQLite inconsistent (transactions
            // roll back), so a poisoned lock is still safe to use.
            Engine::Sqlite(m) => Db::Sqlite(m.lock().unwrap_or_else(|e| e.into_inner())),
            Engine::Postgres(pg) => Db::Postgres(pg.session()),
        }
    }
}
