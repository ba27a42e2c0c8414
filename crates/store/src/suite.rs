//! The store's behaviour, written once and run on both engines: each case below is a test of
//! its own on SQLite, and all of them run in turn on one throwaway Postgres server (one
//! `initdb` for the whole suite; each case gets a fresh database).

#![allow(clippy::unwrap_used)]

use crate::db::args;
use crate::entities::new_id;
use crate::secrets::{MasterKey, SecretError};
use crate::{AuditRecord, Backend, DEFAULT_WORKSPACE, NewAdmin, NewKey, Store, StoreError};
use serde_json::json;
use std::time::Duration;
use tollgate_govern::hash_key;
use tollgate_govern::policy::{PolicySpec, RateSpec, Scope, ScopeField};
use tollgate_govern::roles::{Actor, Place, Role};

/// Opens another store on the same database, as a second replica would.
type Reopen<'a> = &'a dyn Fn() -> Store;

/// A SQLite store in a fresh directory (removed by the caller).
pub(crate) fn temp_store(tag: &str) -> (Store, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("tg-{tag}-{}", new_id("t")));
    std::fs::create_dir_all(&dir).unwrap();
    (Store::open(&dir.join("db.sqlite")).unwrap(), dir)
}

macro_rules! suite {
    ($($case:ident),* $(,)?) => {
        /// Each case on SQLite.
        mod sqlite {
            $(
                #[test]
                fn $case() {
                    let (s, dir) = super::temp_store(stringify!($case));
                    let path = dir.join("db.sqlite");
                    let reopen = || crate::Store::open(&path).unwrap();
                    super::$case(&s, &reopen);
                    drop(s);
                    std::fs::remove_dir_all(&dir).ok();
                }
            )*
        }

        const CASES: &[(&str, fn(&Store, Reopen<'_>))] = &[$((stringify!($case), $case)),*];
    };
}

suite!(
    keys_resolve_to_principals_until_revoked,
    workspaces_hold_teams_and_service_keys_act_for_their_team,
    listings_are_ordered_and_scopes_are_placed,
    admin_credentials_carry_a_role_and_a_place,
    audit_entries_keep_before_and_after_and_filter_by_place,
    policies_are_validated_stored_and_replaced,
    credentials_are_sealed_at_rest_and_open_with_the_key,
    a_wrong_master_key_is_named_as_such,
    altered_or_swapped_rows_do_not_open,
    rotating_the_master_key_reseals_everything,
    alert_deliveries_are_logged_until_delivered,
    every_cached_entity_write_moves_the_change_counter,
    two_stores_on_one_database_see_each_other_and_conflict_cleanly,
);

/// Every case on one Postgres server, each on a database of its own.
#[test]
fn postgres_passes_the_whole_suite() {
    let pg = tollgate_testkit::services::PostgresServer::start();
    for (i, (name, case)) in CASES.iter().enumerate() {
        let db = format!("case{i}");
        pg.create_database(&db);
        let url = pg.url(&db);
        let open = || Store::open_postgres(&url, 4, Duration::from_secs(5)).unwrap();
        let s = open();
        assert_eq!(s.backend(), Backend::Postgres);
        eprintln!("postgres: {name}");
        case(&s, &open);
    }
    // Replicas starting together on an empty database migrate it once (the advisory lock
    // makes the others wait) and all come up.
    pg.create_database("together");
    let url = pg.url("together");
    let opened: Vec<bool> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|_| scope.spawn(|| Store::open_postgres(&url, 2, Duration::from_secs(5)).is_ok()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(opened, [true; 4]);
    let s = Store::open_postgres(&url, 1, Duration::from_secs(5)).unwrap();
    let versions = s
        .db()
        .query("SELECT version FROM tollgate_schema", args![])
        .unwrap();
    assert_eq!(versions.len(), 1);
    assert_eq!(versions[0].get::<i64>(0).unwrap(), 1);
    drop(s);

    // A database that refuses the connection: an error naming the URL without its password,
    // also when the caller is async (as the gateway's start is), where a careless drop of
    // the store's runtime would panic.
    let url = format!(
        "postgres://postgres:pw-canary-77@127.0.0.1:{}/no_such_db",
        pg.port()
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let err = rt.block_on(async { Store::open_postgres(&url, 1, Duration::from_secs(5)).err() });
    let msg = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(
        msg.contains("cannot connect to postgres://postgres:***@127.0.0.1"),
        "{msg}"
    );
    assert!(msg.contains("no_such_db"), "{msg}");
    assert!(!msg.contains("pw-canary"), "{msg}");
}

fn key(user: Option<&str>, team: Option<&str>, secret: &str) -> NewKey {
    NewKey {
        hash: hash_key(secret),
        prefix: secret[..3].into(),
        name: Some("laptop".into()),
        user: user.map(str::to_string),
        team: team.map(str::to_string),
        project: None,
    }
}

fn keys_resolve_to_principals_until_revoked(s: &Store, _: Reopen<'_>) {
    s.create_team("platform", None).unwrap();
    assert!(matches!(
        s.create_team("platform", None),
        Err(StoreError::Conflict(_))
    ));
    s.create_user("alice", Some("platform"), None).unwrap();
    let k = s
        .create_key(&key(Some("alice"), None, "tg-secret-1"))
        .unwrap();
    assert_eq!(k.team.as_deref(), Some("platform"));
    let ids = s.active_identities().unwrap();
    assert_eq!(ids.len(), 1);
    assert_eq!(ids[0].0, hash_key("tg-secret-1"));
    assert_eq!(ids[0].1.user, "alice");
    assert_eq!(ids[0].1.team.as_deref(), Some("platform"));
    assert_eq!(ids[0].1.workspace.as_deref(), Some("default"));
    assert_eq!(ids[0].1.workspace_id.as_deref(), Some(DEFAULT_WORKSPACE));
    assert_eq!(ids[0].1.org_id, crate::DEFAULT_ORG);
    assert_eq!(ids[0].1.key_name.as_deref(), Some("laptop"));
    let r = s.revoke_key(&k.id).unwrap();
    assert!(r.revoked_at.is_some());
    // Revoking twice keeps the first time.
    assert_eq!(s.revoke_key(&k.id).unwrap().revoked_at, r.revoked_at);
    assert!(s.active_identities().unwrap().is_empty());
    assert!(matches!(
        s.revoke_key("key_nope"),
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.create_key(&key(Some("bob"), None, "tg-x")),
        Err(StoreError::NotFound(_))
    ));
    // The same secret twice is refused by the database itself.
    let mut again = key(Some("alice"), None, "tg-secret-1");
    again.name = None;
    assert!(matches!(s.create_key(&again), Err(StoreError::Conflict(_))));
}

fn workspaces_hold_teams_and_service_keys_act_for_their_team(s: &Store, _: Reopen<'_>) {
    let ws = s.create_workspace("eng").unwrap();
    assert!(matches!(
        s.create_workspace("eng"),
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.workspace("eng").unwrap(), ws);
    assert_eq!(s.workspace(&ws.id).unwrap(), ws);
    let t = s.create_team("platform", Some("eng")).unwrap();
    assert_eq!(t.workspace_id, ws.id);
    assert!(matches!(
        s.create_team("x", Some("nope")),
        Err(StoreError::NotFound(_))
    ));
    let mut svc = key(None, Some("platform"), "tg-svc");
    svc.project = Some("billing".into());
    let row = s.create_key(&svc).unwrap();
    assert!(row.service && row.user.is_none());
    assert_eq!(row.place(), Place::team(&ws.id, &t.id));
    assert_eq!(s.key(&row.id).unwrap(), row);
    assert!(matches!(
        s.create_key(&key(None, None, "tg-none")),
        Err(StoreError::Invalid(_))
    ));
    let ids = s.active_identities().unwrap();
    let p = &ids[0].1;
    assert_eq!(p.user, "svc:platform");
    assert_eq!(p.user_id, format!("svc:{}", t.id));
    assert_eq!(p.workspace.as_deref(), Some("eng"));
    assert_eq!(p.default_project.as_deref(), Some("billing"));
    assert!(matches!(
        s.create_user("svc:platform", None, None),
        Err(StoreError::Invalid(_))
    ));
}

fn listings_are_ordered_and_scopes_are_placed(s: &Store, _: Reopen<'_>) {
    for name in ["zeta", "Alpha", "beta"] {
        s.create_team(name, None).unwrap();
    }
    let names: Vec<String> = s
        .list_teams()
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["Alpha", "beta", "zeta"]);
    let ws: Vec<String> = s
        .list_workspaces()
        .unwrap()
        .into_iter()
        .map(|w| w.name)
        .collect();
    assert_eq!(ws, ["default"]);
    let u = s
        .create_user("carol", Some("beta"), Some("carol@example.com"))
        .unwrap();
    assert_eq!(s.user("carol").unwrap(), u);
    assert_eq!(s.list_users().unwrap(), vec![u.clone()]);
    let first = s.create_key(&key(Some("carol"), None, "tg-1")).unwrap();
    let second = s
        .create_key(&key(Some("carol"), Some("zeta"), "tg-2"))
        .unwrap();
    let keys = s.list_keys().unwrap();
    assert_eq!(keys.len(), 2);
    assert!(keys.contains(&first) && keys.contains(&second));
    assert_eq!(second.team.as_deref(), Some("zeta"));
    assert_eq!(
        s.place_of_scope(&Scope::User("carol".into())).unwrap(),
        u.place()
    );
    assert_eq!(
        s.place_of_scope(&Scope::Key(first.id.clone())).unwrap(),
        first.place()
    );
    assert_eq!(
        s.place_of_scope(&Scope::Model("m".into())).unwrap(),
        Place::org()
    );
    assert!(matches!(
        s.place_of_scope(&Scope::Team("nope".into())),
        Err(StoreError::Invalid(_))
    ));
}

fn admin_credentials_carry_a_role_and_a_place(s: &Store, _: Reopen<'_>) {
    assert!(!s.has_admin_credentials().unwrap());
    s.add_admin_credential(&hash_key("boot")).unwrap();
    // A second replica registering the same bootstrap key changes nothing.
    s.add_admin_credential(&hash_key("boot")).unwrap();
    assert!(s.has_admin_credentials().unwrap());
    assert_eq!(s.admin_credentials().unwrap(), vec![hash_key("boot")]);
    let boot = s.admin_by_hash(&hash_key("boot")).unwrap().unwrap();
    assert_eq!(boot.role, Role::OrgAdmin);
    assert_eq!(boot.place(), Place::org());
    s.create_workspace("eng").unwrap();
    let team = s.create_team("platform", Some("eng")).unwrap();
    let new = |role, ws: Option<&str>, t: Option<&str>, u: Option<&str>| NewAdmin {
        hash: hash_key(&format!("{role}{ws:?}{t:?}{u:?}")),
        prefix: "tgadm_x".into(),
        name: "n".into(),
        role,
        workspace: ws.map(str::to_string),
        team: t.map(str::to_string),
        user: u.map(str::to_string),
    };
    let ta = s
        .create_admin(&new(Role::TeamAdmin, None, Some("platform"), None))
        .unwrap();
    assert_eq!(ta.place(), team.place());
    assert_eq!(ta.scope_label(), "team platform");
    assert_eq!(s.admin(&ta.id).unwrap(), ta);
    assert_eq!(s.list_admins().unwrap().len(), 2);
    assert!(matches!(
        s.create_admin(&new(Role::TeamAdmin, None, Some("platform"), None)),
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.create_admin(&new(Role::TeamAdmin, Some("eng"), None, None)),
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        s.create_admin(&new(Role::OrgAdmin, Some("eng"), None, None)),
        Err(StoreError::Invalid(_))
    ));
    let (before, after) = s.revoke_admin(&ta.id).unwrap();
    assert!(before.revoked_at.is_none() && after.revoked_at.is_some());
    assert!(
        s.admin_by_hash(&hash_key(&format!(
            "{}{:?}{:?}{:?}",
            Role::TeamAdmin,
            None::<&str>,
            Some("platform"),
            None::<&str>
        )))
        .unwrap()
        .is_none()
    );
    assert!(matches!(s.admin("adm_nope"), Err(StoreError::NotFound(_))));
}

fn audit_entries_keep_before_and_after_and_filter_by_place(s: &Store, _: Reopen<'_>) {
    let actor = Actor {
        id: "adm_1".into(),
        name: "ops".into(),
        role: Role::OrgAdmin,
        place: Place::org(),
        scope_label: String::new(),
    };
    let t1 = Place::team("ws_a", "team_1");
    let t2 = Place::team("ws_b", "team_2");
    for (place, n) in [(&t1, 1), (&t2, 2)] {
        s.record_audit(&AuditRecord {
            actor: &actor,
            action: "policy.update",
            target: "pol_x",
            place,
            before: Some(json!({"n": n - 1})),
            after: Some(json!({"n": n})),
        })
        .unwrap();
    }
    s.record_audit(&AuditRecord {
        actor: &actor,
        action: "team.delete",
        target: "team_3",
        place: &Place::org(),
        before: Some(json!({"name": "gone"})),
        after: None,
    })
    .unwrap();
    let all = s.audit_log(10, &Place::org()).unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all[0].after, serde_json::Value::Null);
    assert_eq!(all[1].before, json!({"n": 1}));
    assert_eq!(all[1].actor_role.as_deref(), Some("org_admin"));
    assert!(all[0].seq > all[1].seq && all[1].seq > all[2].seq);
    assert_eq!(s.audit_log(1, &Place::org()).unwrap().len(), 1);
    let ws_a = s.audit_log(10, &Place::workspace("ws_a")).unwrap();
    assert_eq!(ws_a.len(), 1);
    assert_eq!(ws_a[0].after, json!({"n": 1}));
    assert_eq!(
        s.audit_log(10, &Place::team("ws_b", "team_2"))
            .unwrap()
            .len(),
        1
    );
    assert!(
        s.audit_log(10, &Place::workspace("ws_c"))
            .unwrap()
            .is_empty()
    );
}

fn policies_are_validated_stored_and_replaced(s: &Store, _: Reopen<'_>) {
    let mut spec = PolicySpec {
        scope: ScopeField(Scope::Team("platform".into())),
        rate: Some(RateSpec {
            requests_per_minute: Some(60),
            ..RateSpec::default()
        }),
        ..PolicySpec::default()
    };
    let row = s.create_policy(&spec).unwrap();
    assert_eq!(s.list_policies().unwrap(), vec![row.clone()]);
    spec.rate = Some(RateSpec {
        requests_per_minute: Some(0),
        ..RateSpec::default()
    });
    assert!(matches!(
        s.create_policy(&spec),
        Err(StoreError::Invalid(_))
    ));
    spec.rate = None;
    let (before, after) = s.replace_policy(&row.id, &spec).unwrap();
    assert_eq!(before, row);
    assert_eq!(s.get_policy(&row.id).unwrap(), after);
    s.delete_policy(&row.id).unwrap();
    assert!(matches!(
        s.get_policy(&row.id),
        Err(StoreError::NotFound(_))
    ));
    assert!(s.list_policies().unwrap().is_empty());
}

fn credentials_are_sealed_at_rest_and_open_with_the_key(s: &Store, _: Reopen<'_>) {
    let (mut k, _) = MasterKey::generate().unwrap();
    s.register_master_key(&mut k).unwrap();
    assert_eq!(k.version(), 1);
    let (before, row) = s
        .put_credential(&k, "anthropic", "org", "api_key", b"sk-canary-1234567890")
        .unwrap();
    assert!(before.is_none());
    let stored = s
        .db()
        .query(
            "SELECT ciphertext, nonce FROM provider_credentials",
            args![],
        )
        .unwrap();
    for cell in &stored[0].0 {
        assert!(!format!("{cell:?}").contains("sk-canary"));
        let crate::db::Cell::Blob(b) = cell else {
            panic!("sealed columns are bytes: {cell:?}")
        };
        assert!(!b.windows(9).any(|w| w == b"sk-canary"));
    }
    let (before, again) = s
        .put_credential(&k, "anthropic", "org", "api_key", b"sk-second")
        .unwrap();
    assert_eq!(before.unwrap().id, row.id);
    assert_eq!(again.id, row.id);
    let open = s.open_credentials(&k).unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].1, b"sk-second");
    assert_eq!(s.list_credentials().unwrap(), vec![again.clone()]);
    assert_eq!(s.delete_credential("anthropic", "org").unwrap(), again);
    assert!(s.list_credentials().unwrap().is_empty());
    assert!(matches!(
        s.delete_credential("anthropic", "org"),
        Err(StoreError::NotFound(_))
    ));
    // The same key registered again keeps its version.
    let mut same = MasterKey::from_bytes(&[7; 32]).unwrap();
    s.register_master_key(&mut same).unwrap();
    let mut same_again = MasterKey::from_bytes(&[7; 32]).unwrap();
    s.register_master_key(&mut same_again).unwrap();
    assert_eq!(same.version(), same_again.version());
}

fn a_wrong_master_key_is_named_as_such(s: &Store, _: Reopen<'_>) {
    let (mut k, _) = MasterKey::generate().unwrap();
    s.register_master_key(&mut k).unwrap();
    s.put_credential(&k, "anthropic", "org", "api_key", b"sk-x")
        .unwrap();
    let (mut wrong, _) = MasterKey::generate().unwrap();
    let e = s.register_master_key(&mut wrong).unwrap_err();
    assert!(
        matches!(e, StoreError::Secret(SecretError::WrongKey { version: 1 })),
        "{e}"
    );
    assert!(e.to_string().contains("does not match"), "{e}");
}

fn altered_or_swapped_rows_do_not_open(s: &Store, _: Reopen<'_>) {
    let (mut k, _) = MasterKey::generate().unwrap();
    s.register_master_key(&mut k).unwrap();
    s.put_credential(&k, "anthropic", "team:team_a", "api_key", b"sk-team-a")
        .unwrap();
    s.put_credential(&k, "anthropic", "team:team_b", "api_key", b"sk-team-b")
        .unwrap();
    // Swap: team b's row gets team a's sealed value.
    s.db()
        .exec(
            "UPDATE provider_credentials SET
               ciphertext = (SELECT ciphertext FROM provider_credentials WHERE scope = 'team:team_a'),
               nonce = (SELECT nonce FROM provider_credentials WHERE scope = 'team:team_a')
             WHERE scope = 'team:team_b'",
            args![],
        )
        .unwrap();
    let e = s.open_credentials(&k).unwrap_err();
    assert!(
        matches!(e, StoreError::Secret(SecretError::Tampered { .. })),
        "{e}"
    );
    s.delete_credential("anthropic", "team:team_b").unwrap();
    // Flip one ciphertext bit.
    let mut ct: Vec<u8> = s
        .db()
        .query_one("SELECT ciphertext FROM provider_credentials", args![])
        .unwrap()
        .get(0)
        .unwrap();
    ct[1] ^= 0x40;
    s.db()
        .exec("UPDATE provider_credentials SET ciphertext = ?1", args![ct])
        .unwrap();
    assert!(matches!(
        s.open_credentials(&k),
        Err(StoreError::Secret(SecretError::Tampered { .. }))
    ));
}

fn rotating_the_master_key_reseals_everything(s: &Store, _: Reopen<'_>) {
    let (mut old, old_text) = MasterKey::generate().unwrap();
    s.register_master_key(&mut old).unwrap();
    s.put_credential(&old, "anthropic", "org", "api_key", b"sk-1")
        .unwrap();
    s.put_credential(&old, "bedrock", "org", "aws", b"{}")
        .unwrap();
    // A failed rotation (wrong old key) changes nothing.
    let (wrong_old, _) = MasterKey::generate().unwrap();
    let (mut attempt, _) = MasterKey::generate().unwrap();
    assert!(s.rotate_master_key(&wrong_old, &mut attempt).is_err());
    assert_eq!(s.open_credentials(&old).unwrap().len(), 2);
    let (mut new, new_text) = MasterKey::generate().unwrap();
    assert_eq!(s.rotate_master_key(&old, &mut new).unwrap(), 2);
    assert_eq!(new.version(), 2);
    let open = s.open_credentials(&new).unwrap();
    assert_eq!(open[0].1, b"sk-1");
    assert!(open.iter().all(|(r, _)| r.key_version == 2));
    // The old key is now the wrong one.
    let mut old_again = MasterKey::parse(&old_text).unwrap();
    assert!(matches!(
        s.register_master_key(&mut old_again),
        Err(StoreError::Secret(SecretError::WrongKey { version: 2 }))
    ));
    let mut new_again = MasterKey::parse(&new_text).unwrap();
    s.register_master_key(&mut new_again).unwrap();
    assert_eq!(new_again.version(), 2);
}

fn alert_deliveries_are_logged_until_delivered(s: &Store, _: Reopen<'_>) {
    let event = json!({"kind": "budget_threshold", "message": "80% of team budget"});
    let a = s
        .add_alert_delivery("ops", "budget_threshold", &event)
        .unwrap();
    let b = s
        .add_alert_delivery("slack", "budget_threshold", &event)
        .unwrap();
    assert!(b > a);
    s.record_alert_attempt(a, "pending", Some("HTTP 503"))
        .unwrap();
    let pending = s.pending_alert_deliveries().unwrap();
    assert_eq!(pending.len(), 2);
    assert_eq!(pending[0].id, a);
    assert_eq!(pending[0].attempts, 1);
    assert_eq!(pending[0].last_error.as_deref(), Some("HTTP 503"));
    assert_eq!(pending[0].event, event);
    s.record_alert_attempt(a, "delivered", None).unwrap();
    s.record_alert_attempt(b, "failed", Some("HTTP 400"))
        .unwrap();
    assert!(s.pending_alert_deliveries().unwrap().is_empty());
    let all = s.alert_deliveries(10).unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].id, b);
    assert_eq!(all[0].status, "failed");
    assert!(all[1].delivered_at.is_some());
    assert_eq!(all[1].attempts, 2);
    assert_eq!(s.alert_deliveries(1).unwrap().len(), 1);
}

fn every_cached_entity_write_moves_the_change_counter(s: &Store, _: Reopen<'_>) {
    let mut last = s.change_seq().unwrap();
    let mut moved = |what: &str| {
        let now = s.change_seq().unwrap();
        assert!(now > last, "{what} did not move the change counter");
        last = now;
    };
    s.create_workspace("eng").unwrap();
    moved("a new workspace");
    s.create_team("platform", Some("eng")).unwrap();
    moved("a new team");
    s.create_user("alice", Some("platform"), None).unwrap();
    moved("a new user");
    let k = s.create_key(&key(Some("alice"), None, "tg-k")).unwrap();
    moved("a new key");
    s.revoke_key(&k.id).unwrap();
    moved("a revocation");
    let p = s
        .create_policy(&PolicySpec {
            scope: ScopeField(Scope::Org),
            ..PolicySpec::default()
        })
        .unwrap();
    moved("a new policy");
    s.replace_policy(&p.id, &p.spec).unwrap();
    moved("a replaced policy");
    s.delete_policy(&p.id).unwrap();
    moved("a deleted policy");
    let (mut mk, _) = MasterKey::generate().unwrap();
    s.register_master_key(&mut mk).unwrap();
    moved("a new master key");
    s.put_credential(&mk, "anthropic", "org", "api_key", b"x")
        .unwrap();
    moved("a provider credential");
    s.delete_credential("anthropic", "org").unwrap();
    moved("a deleted provider credential");
    // Reads and the logs the request path never caches leave it alone.
    let before = s.change_seq().unwrap();
    s.list_keys().unwrap();
    s.active_identities().unwrap();
    s.add_alert_delivery("ops", "x", &json!({})).unwrap();
    assert_eq!(s.change_seq().unwrap(), before);
}

fn two_stores_on_one_database_see_each_other_and_conflict_cleanly(s: &Store, reopen: Reopen<'_>) {
    let other = reopen();
    let seq = other.change_seq().unwrap();
    s.create_team("platform", None).unwrap();
    s.create_user("alice", Some("platform"), None).unwrap();
    let k = s
        .create_key(&key(Some("alice"), None, "tg-shared"))
        .unwrap();
    assert!(other.change_seq().unwrap() > seq);
    assert_eq!(other.active_identities().unwrap().len(), 1);
    assert!(matches!(
        other.create_team("platform", None),
        Err(StoreError::Conflict(_))
    ));
    other.revoke_key(&k.id).unwrap();
    assert!(s.active_identities().unwrap().is_empty());
    // Both replicas registering one master key agree on its version.
    let mut a = MasterKey::from_bytes(&[9; 32]).unwrap();
    let mut b = MasterKey::from_bytes(&[9; 32]).unwrap();
    s.register_master_key(&mut a).unwrap();
    other.register_master_key(&mut b).unwrap();
    assert_eq!(a.version(), b.version());
    // Racing writers: every name is taken exactly once, the losers get a conflict.
    let results: Vec<Result<(), StoreError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let st = if i % 2 == 0 { s } else { &other };
                scope.spawn(move || st.create_team(&format!("race{}", i / 4), None).map(|_| ()))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok, 2, "{results:?}");
    assert!(
        results
            .iter()
            .all(|r| r.is_ok() || matches!(r, Err(StoreError::Conflict(_)))),
        "{results:?}"
    );
}
