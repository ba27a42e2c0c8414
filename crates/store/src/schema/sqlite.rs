//! SQLite's migrations, tracked with its `user_version`.

use rusqlite::Connection;

/// Each entry upgrades the schema by one version; never edit a shipped entry, append a new one.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE orgs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);
CREATE TABLE teams (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    name TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (org_id, name)
);
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    name TEXT NOT NULL,
    email TEXT,
    team_id TEXT REFERENCES teams(id),
    created_at TEXT NOT NULL,
    UNIQUE (org_id, name)
);
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    key_hash BLOB NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    name TEXT,
    user_id TEXT NOT NULL REFERENCES users(id),
    team_id TEXT REFERENCES teams(id),
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE TABLE admin_credentials (
    id TEXT PRIMARY KEY,
    key_hash BLOB NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);
CREATE TABLE admin_audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL
);
"#,
    r#"
CREATE TABLE policies (
    id TEXT PRIMARY KEY,
    scope TEXT NOT NULL,
    spec TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX policies_scope ON policies (scope);
"#,
    // Workspaces between the org and its teams; service keys (a team, no user) and a key's
    // default project; roles on admin credentials; before/after in the audit log; encrypted
    // provider credentials. api_keys is rebuilt because SQLite cannot drop NOT NULL in place;
    // nothing references it, so the copy keeps every row and id.
    r#"
INSERT OR IGNORE INTO orgs (id, name, created_at)
    VALUES ('org_default', 'default', strftime('%Y-%m-%dT%H:%M:%SZ', 'now'));
CREATE TABLE workspaces (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    name TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (org_id, name)
);
INSERT INTO workspaces (id, org_id, name, created_at)
    VALUES ('ws_default', 'org_default', 'default', strftime('%Y-%m-%dT%H:%M:%SZ', 'now'));
ALTER TABLE teams ADD COLUMN workspace_id TEXT REFERENCES workspaces(id);
UPDATE teams SET workspace_id = 'ws_default';

CREATE TABLE api_keys_new (
    id TEXT PRIMARY KEY,
    key_hash BLOB NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    name TEXT,
    user_id TEXT REFERENCES users(id),
    team_id TEXT REFERENCES teams(id),
    project TEXT,
    created_at TEXT NOT NULL,
    revoked_at TEXT,
    CHECK (user_id IS NOT NULL OR team_id IS NOT NULL)
);
INSERT INTO api_keys_new (id, key_hash, prefix, name, user_id, team_id, created_at, revoked_at)
    SELECT id, key_hash, prefix, name, user_id, team_id, created_at, revoked_at FROM api_keys;
DROP TABLE api_keys;
ALTER TABLE api_keys_new RENAME TO api_keys;

ALTER TABLE admin_credentials ADD COLUMN name TEXT;
ALTER TABLE admin_credentials ADD COLUMN role TEXT NOT NULL DEFAULT 'org_admin';
ALTER TABLE admin_credentials ADD COLUMN workspace_id TEXT REFERENCES workspaces(id);
ALTER TABLE admin_credentials ADD COLUMN team_id TEXT REFERENCES teams(id);
ALTER TABLE admin_credentials ADD COLUMN user_id TEXT REFERENCES users(id);
ALTER TABLE admin_credentials ADD COLUMN prefix TEXT;
ALTER TABLE admin_credentials ADD COLUMN revoked_at TEXT;
UPDATE admin_credentials SET name = 'admin.key';

ALTER TABLE admin_audit ADD COLUMN actor_id TEXT;
ALTER TABLE admin_audit ADD COLUMN actor_role TEXT;
ALTER TABLE admin_audit ADD COLUMN before_json TEXT;
ALTER TABLE admin_audit ADD COLUMN after_json TEXT;
ALTER TABLE admin_audit ADD COLUMN workspace_id TEXT;
ALTER TABLE admin_audit ADD COLUMN team_id TEXT;
ALTER TABLE admin_audit ADD COLUMN user_id TEXT;

CREATE TABLE provider_credentials (
    id TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    scope TEXT NOT NULL,
    kind TEXT NOT NULL,
    ciphertext BLOB NOT NULL,
    nonce BLOB NOT NULL,
    key_version INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    rotated_at TEXT NOT NULL,
    UNIQUE (provider, scope)
);
CREATE TABLE master_keys (
    version INTEGER PRIMARY KEY,
    check_value BLOB NOT NULL,
    created_at TEXT NOT NULL
);
"#,
    r#"
CREATE TABLE alert_deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at TEXT NOT NULL,
    webhook TEXT NOT NULL,
    kind TEXT NOT NULL,
    event TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    delivered_at TEXT
);
CREATE INDEX alert_deliveries_status ON alert_deliveries (status);
"#,
    // A counter every write to what the request path caches moves, so a process polling it
    // knows when to rebuild its snapshots (the same table Postgres has for a cluster).
    r#"
CREATE TABLE changes (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL
);
INSERT INTO changes (id, seq) VALUES (1, 0);
CREATE TRIGGER workspaces_ins AFTER INSERT ON workspaces BEGIN UPDATE changes SET seq = seq + 1; END;
CREATE TRIGGER workspaces_upd AFTER UPDATE ON workspaces BEGIN UPDATE changes SET seq = seq + 1; END;
CREATE TRIGGER workspaces_del AFTER DELETE ON workspaces BEGIN UPDATE changes SET seq = seq + 1; END;
CREATE TRIGGER teams_ins AFTER INSERT ON teams BEGIN UPDATE changes SET seq = seq + 1; END;
CREATE TRIGGER teams_upd AFTER UPDATE ON teams BEGIN UPDATE changes SET seq = seq + 1; END;
CREATE TRIGGER teams_del AFTER DELETE ON teams BEGIN UPDATE changes SET seq = seq + 1; END;
CREATE TRIGGER users_ins AFTER INSERT ON users BEGIN UPDATE changes SET seq = seq + 1; END;
CREATE TRIGGER users_upd AFTER UPDATE ON users BEGIN UPDATE changes SET seq = seq + 1; END;
CREATE TRIGGER users_del AFTER DELETE ON users BEGIN UPDATE changes SET seq = seq + 1; END;
CREATE TRIGGER api_keys_ins AFTER INSERT ON api_keys BEGIN UPDATE changes SET seq = seq + 1; END;
CREATE TRIGGER api_keys_upd AFTER UPDATE ON api_keys BEGIN UPDATE changes SET seq = seq + 1; END;
CREATE TRIGGER api_keys_del AFTER DELETE ON api_keys BEGIN UPDATE changes SET seq = seq + 1; END;
CREATE TRIGGER policies_ins AFTER INSERT ON policies BEGIN UPDATE changes SET seq = seq + 1; END;
CREATE TRIGGER policies_upd AFTER UPDATE ON policies BEGIN UPDATE changes SET seq = seq + 1; END;
CREATE TRIGGER policies_del AFTER DELETE ON policies BEGIN UPDATE changes SET seq = seq + 1; END;
CREATE TRIGGER provider_credentials_ins AFTER INSERT ON provider_credentials BEGIN UPDATE changes SET seq = seq + 1; END;
CREATE TRIGGER provider_credentials_upd AFTER UPDATE ON provider_credentials BEGIN UPDATE changes SET seq = seq + 1; END;
CREATE TRIGGER provider_credentials_del AFTER DELETE ON provider_credentials BEGIN UPDATE changes SET seq = seq + 1; END;
CREATE TRIGGER master_keys_ins AFTER INSERT ON master_keys BEGIN UPDATE changes SET seq = seq + 1; END;
"#,
];

/// Brings the database to the newest schema.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let current: usize =
        conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))? as usize;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::Store;

    #[test]
    fn a_version_2_database_moves_into_the_default_workspace() {
        let dir = std::env::temp_dir().join(format!("tg-mig-{}", crate::entities::new_id("t")));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("db.sqlite");
        {
            let conn = Connection::open(&path).unwrap();
            for sql in &MIGRATIONS[..2] {
                conn.execute_batch(sql).unwrap();
            }
            conn.pragma_update(None, "user_version", 2).unwrap();
            conn.execute_batch(
                "INSERT INTO orgs VALUES ('org_default', 'default', '2026-01-01T00:00:00Z');
                 INSERT INTO teams VALUES ('team_1', 'org_default', 'platform', '2026-01-01T00:00:00Z');
                 INSERT INTO users VALUES ('usr_1', 'org_default', 'alice', NULL, 'team_1', '2026-01-01T00:00:00Z');
                 INSERT INTO api_keys VALUES ('key_1', x'01', 'tg-abc', 'laptop', 'usr_1', 'team_1', '2026-01-01T00:00:00Z', NULL);
                 INSERT INTO admin_credentials VALUES ('adm_1', x'02', '2026-01-01T00:00:00Z');",
            )
            .unwrap();
        }
        let s = Store::open(&path).unwrap();
        let teams = s.list_teams().unwrap();
        assert_eq!(teams[0].workspace, "default");
        let keys = s.list_keys().unwrap();
        assert_eq!(keys[0].id, "key_1");
        assert_eq!(keys[0].user.as_deref(), Some("alice"));
        assert_eq!(keys[0].workspace_id, crate::DEFAULT_WORKSPACE);
        let admins = s.list_admins().unwrap();
        assert_eq!(admins[0].role, tollgate_govern::roles::Role::OrgAdmin);
        assert_eq!(admins[0].name.as_deref(), Some("admin.key"));
        std::fs::remove_dir_all(&dir).ok();
    }
}
