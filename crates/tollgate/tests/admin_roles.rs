//! The admin API by role, end to end against a real gateway: every mounted admin endpoint ×
//! every role (plus no and an invalid credential) against a table of expected answers, the
//! budget cap a team admin cannot raise itself above, audit entries with before/after, and a
//! canary provider secret that must never come back out of the gateway in any form.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU32, Ordering};

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;
use serde_json::{Value, json};
use support::{Gateway, HttpClient, Reply, UPSTREAM_KEY, client, messages_request, send};
use tollgate_testkit::{ScriptedUpstream, UpstreamOptions};

/// The columns of the matrix.
const ROLES: [&str; 8] = [
    "org_admin",
    "workspace_admin",
    "team_admin",
    "member",
    "member_key",
    "auditor",
    "none",
    "invalid",
];

struct World {
    _upstream: ScriptedUpstream,
    gw: Gateway,
    http: HttpClient,
    /// Bearer token per role column (`none` has none).
    tokens: Vec<(&'static str, Option<String>)>,
    /// Id of the workspace cap policy (workspace:eng, $500 a month).
    ws_cap: String,
}

static FRESH: AtomicU32 = AtomicU32::new(0);

fn fresh(tag: &str) -> String {
    format!("{tag}-{}", FRESH.fetch_add(1, Ordering::Relaxed))
}

impl World {
    async fn new() -> World {
        Self::with_env(&[]).await
    }

    async fn with_env(env: &[(&str, &str)]) -> World {
        let upstream = ScriptedUpstream::start(UpstreamOptions::new(UPSTREAM_KEY))
            .await
            .unwrap();
        let gw = Gateway::start_with_env(&upstream.url(), "", env).await;
        let org = std::fs::read_to_string(gw.data_dir.join("admin.key"))
            .unwrap()
            .trim()
            .to_string();
        let mut w = World {
            _upstream: upstream,
            gw,
            http: client(),
            tokens: vec![("org_admin", Some(org))],
            ws_cap: String::new(),
        };
        // eng holds platform (the team admin's) and infra; sales sits in the default
        // workspace, outside the workspace admin's reach.
        w.ok("POST", "/workspaces", json!({"name": "eng"})).await;
        for (team, ws) in [("platform", "eng"), ("infra", "eng"), ("sales", "default")] {
            w.ok("POST", "/teams", json!({"name": team, "workspace": ws}))
                .await;
        }
        for (user, team) in [("alice", "platform"), ("bob", "infra"), ("carol", "sales")] {
            w.ok("POST", "/users", json!({"name": user, "team": team}))
                .await;
        }
        for (role, body) in [
            (
                "workspace_admin",
                json!({"name": "eng-admin", "role": "workspace_admin", "workspace": "eng"}),
            ),
            (
                "team_admin",
                json!({"name": "platform-lead", "role": "team_admin", "team": "platform"}),
            ),
            (
                "member",
                json!({"name": "alice-cli", "role": "member", "user": "alice"}),
            ),
            ("auditor", json!({"name": "audit", "role": "auditor"})),
        ] {
            let v = w.ok("POST", "/admins", body).await;
            w.tokens
                .push((role, Some(v["key"].as_str().unwrap().to_string())));
        }
        let alice_key = w.ok("POST", "/keys", json!({"user": "alice"})).await;
        w.tokens.push((
            "member_key",
            Some(alice_key["key"].as_str().unwrap().to_string()),
        ));
        w.tokens.push(("none", None));
        w.tokens
            .push(("invalid", Some("tgadm_not-a-real-credential".into())));
        let cap = w
            .ok(
                "POST",
                "/policies",
                json!({"scope": "workspace:eng", "name": "eng monthly",
                       "budgets": [{"period": "month", "amount_usd": 500.0}]}),
            )
            .await;
        w.ws_cap = cap["id"].as_str().unwrap().to_string();
        w
    }

    fn token(&self, role: &str) -> Option<&str> {
        self.tokens
            .iter()
            .find(|(r, _)| *r == role)
            .and_then(|(_, t)| t.as_deref())
    }

    async fn call_as(&self, role: &str, method: &str, path: &str, body: Option<Value>) -> Reply {
        let mut b = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).unwrap())
            .uri(format!("{}/admin/v1{path}", self.gw.url));
        if let Some(t) = self.token(role) {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        let payload = match body {
            Some(v) => {
                b = b.header("content-type", "application/json");
                Bytes::from(v.to_string())
            }
            None => Bytes::new(),
        };
        send(&self.http, b.body(Full::new(payload)).unwrap()).await
    }

    /// A call as the org admin that must succeed.
    async fn ok(&self, method: &str, path: &str, body: Value) -> Value {
        let body = if body.is_null() { None } else { Some(body) };
        let r = self.call_as("org_admin", method, path, body).await;
        assert!(
            r.status == 200,
            "{method} {path} as org admin: {} {}",
            r.status,
            r.text()
        );
        r.json()
    }

    async fn fresh_key(&self, user: &str) -> String {
        let v = self.ok("POST", "/keys", json!({"user": user})).await;
        v["id"].as_str().unwrap().to_string()
    }

    async fn fresh_policy(&self, team: &str, usd: f64) -> String {
        let v = self
            .ok(
                "POST",
                "/policies",
                json!({"scope": format!("team:{team}"),
                       "budgets": [{"period": "month", "amount_usd": usd}]}),
            )
            .await;
        v["id"].as_str().unwrap().to_string()
    }
}

/// What one row of the matrix asks, built afresh for every cell so that an allowed change in
/// one cell does not decide the next.
#[derive(Clone, Copy, Debug)]
enum Ask {
    Whoami,
    ListWorkspaces,
    CreateWorkspace,
    ListTeams,
    CreateTeamIn(&'static str),
    ListUsers,
    CreateUserIn(&'static str),
    ListKeys,
    CreateKeyFor(&'static str),
    CreateServiceKey(&'static str),
    RevokeKeyOf(&'static str),
    ListAdmins,
    CreateAdmin(&'static str),
    RevokeMemberAdmin,
    ListPolicies,
    CreatePolicy(&'static str, f64),
    GetWorkspaceCap,
    GetTeamPolicy,
    ReplaceTeamPolicy(f64),
    DeletePolicyOf(&'static str),
    ListProviders,
    PutCredential(&'static str),
    DeleteCredential(&'static str),
    RotateMasterKey,
    Requests,
    Spend,
    Audit,
    PolicyUsage,
    ResetTeamBudgets,
    Alerts,
}

/// Expected answer per role column: A allowed (200), D denied (403), U unauthenticated (401).
/// `none` and `invalid` are always U and not written out.
struct Row {
    route: (&'static str, &'static str),
    ask: Ask,
    expect: &'static str,
}

const fn row(method: &'static str, path: &'static str, ask: Ask, expect: &'static str) -> Row {
    Row {
        route: (method, path),
        ask,
        expect,
    }
}

//                                                              org ws team mem key aud
const MATRIX: &[Row] = &[
    row("GET", "/whoami", Ask::Whoami, "AAAAAA"),
    row("GET", "/workspaces", Ask::ListWorkspaces, "AADDDA"),
    row("POST", "/workspaces", Ask::CreateWorkspace, "ADDDDD"),
    row("GET", "/teams", Ask::ListTeams, "AAADDA"),
    row("POST", "/teams", Ask::CreateTeamIn("eng"), "AADDDD"),
    row("POST", "/teams", Ask::CreateTeamIn("default"), "ADDDDD"),
    row("GET", "/users", Ask::ListUsers, "AAADDA"),
    row("POST", "/users", Ask::CreateUserIn("platform"), "AAADDD"),
    row("POST", "/users", Ask::CreateUserIn("infra"), "AADDDD"),
    row("POST", "/users", Ask::CreateUserIn("sales"), "ADDDDD"),
    row("GET", "/keys", Ask::ListKeys, "AAAAAA"),
    row("POST", "/keys", Ask::CreateKeyFor("alice"), "AAAAAD"),
    row("POST", "/keys", Ask::CreateKeyFor("bob"), "AADDDD"),
    row("POST", "/keys", Ask::CreateKeyFor("carol"), "ADDDDD"),
    row("POST", "/keys", Ask::CreateServiceKey("platform"), "AAADDD"),
    row("POST", "/keys", Ask::CreateServiceKey("sales"), "ADDDDD"),
    row("DELETE", "/keys/{id}", Ask::RevokeKeyOf("alice"), "AAAAAD"),
    row("DELETE", "/keys/{id}", Ask::RevokeKeyOf("bob"), "AADDDD"),
    row("GET", "/admins", Ask::ListAdmins, "AAADDA"),
    row("POST", "/admins", Ask::CreateAdmin("member"), "AAADDD"),
    row("POST", "/admins", Ask::CreateAdmin("team_admin"), "AADDDD"),
    row(
        "POST",
        "/admins",
        Ask::CreateAdmin("workspace_admin"),
        "AADDDD",
    ),
    row("POST", "/admins", Ask::CreateAdmin("auditor"), "ADDDDD"),
    row("DELETE", "/admins/{id}", Ask::RevokeMemberAdmin, "AAADDD"),
    row("GET", "/policies", Ask::ListPolicies, "AAADDA"),
    row(
        "POST",
        "/policies",
        Ask::CreatePolicy("team:platform", 400.0),
        "AAADDD",
    ),
    // The team admin raising its own team above the workspace cap ($500).
    row(
        "POST",
        "/policies",
        Ask::CreatePolicy("team:platform", 900.0),
        "AADDDD",
    ),
    row(
        "POST",
        "/policies",
        Ask::CreatePolicy("team:infra", 100.0),
        "AADDDD",
    ),
    row(
        "POST",
        "/policies",
        Ask::CreatePolicy("workspace:eng", 100.0),
        "AADDDD",
    ),
    row(
        "POST",
        "/policies",
        Ask::CreatePolicy("org", 100.0),
        "ADDDDD",
    ),
    row("GET", "/policies/{id}", Ask::GetWorkspaceCap, "AADDDA"),
    row("GET", "/policies/{id}", Ask::GetTeamPolicy, "AAADDA"),
    row(
        "PUT",
        "/policies/{id}",
        Ask::ReplaceTeamPolicy(300.0),
        "AAADDD",
    ),
    row(
        "PUT",
        "/policies/{id}",
        Ask::ReplaceTeamPolicy(800.0),
        "AADDDD",
    ),
    row(
        "DELETE",
        "/policies/{id}",
        Ask::DeletePolicyOf("platform"),
        "AAADDD",
    ),
    row(
        "DELETE",
        "/policies/{id}",
        Ask::DeletePolicyOf("infra"),
        "AADDDD",
    ),
    row("GET", "/providers", Ask::ListProviders, "AAADDA"),
    row(
        "PUT",
        "/providers/{name}/credentials",
        Ask::PutCredential("team:platform"),
        "AAADDD",
    ),
    row(
        "PUT",
        "/providers/{name}/credentials",
        Ask::PutCredential("workspace:eng"),
        "AADDDD",
    ),
    row(
        "PUT",
        "/providers/{name}/credentials",
        Ask::PutCredential("org"),
        "ADDDDD",
    ),
    row(
        "DELETE",
        "/providers/{name}/credentials",
        Ask::DeleteCredential("team:platform"),
        "AAADDD",
    ),
    row(
        "DELETE",
        "/providers/{name}/credentials",
        Ask::DeleteCredential("team:infra"),
        "AADDDD",
    ),
    row("POST", "/master-key/rotate", Ask::RotateMasterKey, "ADDDDD"),
    row("GET", "/requests", Ask::Requests, "AAAAAA"),
    row("GET", "/spend", Ask::Spend, "AAAAAA"),
    row("GET", "/audit", Ask::Audit, "AAADDA"),
    row("GET", "/policies/{id}/usage", Ask::PolicyUsage, "AAADDA"),
    row(
        "POST",
        "/policies/{id}/reset",
        Ask::ResetTeamBudgets,
        "AAADDD",
    ),
    row("GET", "/alerts", Ask::Alerts, "ADDDDA"),
];

/// Builds the request of `ask` for one cell, creating its target first when it needs one.
async fn request(w: &World, ask: Ask) -> (String, String, Option<Value>) {
    let get = |p: &str| ("GET".to_string(), p.to_string(), None);
    match ask {
        Ask::Whoami => get("/whoami"),
        Ask::ListWorkspaces => get("/workspaces"),
        Ask::CreateWorkspace => (
            "POST".into(),
            "/workspaces".into(),
            Some(json!({"name": fresh("ws")})),
        ),
        Ask::ListTeams => get("/teams"),
        Ask::CreateTeamIn(ws) => (
            "POST".into(),
            "/teams".into(),
            Some(json!({"name": fresh("team"), "workspace": ws})),
        ),
        Ask::ListUsers => get("/users"),
        Ask::CreateUserIn(team) => (
            "POST".into(),
            "/users".into(),
            Some(json!({"name": fresh("user"), "team": team})),
        ),
        Ask::ListKeys => get("/keys"),
        Ask::CreateKeyFor(user) => ("POST".into(), "/keys".into(), Some(json!({"user": user}))),
        Ask::CreateServiceKey(team) => ("POST".into(), "/keys".into(), Some(json!({"team": team}))),
        Ask::RevokeKeyOf(user) => {
            let id = w.fresh_key(user).await;
            ("DELETE".into(), format!("/keys/{id}"), None)
        }
        Ask::ListAdmins => get("/admins"),
        Ask::CreateAdmin(role) => {
            let body = match role {
                "member" => json!({"name": fresh("adm"), "role": "member", "user": "alice"}),
                "team_admin" => {
                    json!({"name": fresh("adm"), "role": "team_admin", "team": "infra"})
                }
                "workspace_admin" => {
                    json!({"name": fresh("adm"), "role": "workspace_admin", "workspace": "eng"})
                }
                _ => json!({"name": fresh("adm"), "role": role}),
            };
            ("POST".into(), "/admins".into(), Some(body))
        }
        Ask::RevokeMemberAdmin => {
            let v = w
                .ok(
                    "POST",
                    "/admins",
                    json!({"name": fresh("adm"), "role": "member", "user": "alice"}),
                )
                .await;
            (
                "DELETE".into(),
                format!("/admins/{}", v["id"].as_str().unwrap()),
                None,
            )
        }
        Ask::ListPolicies => get("/policies"),
        Ask::CreatePolicy(scope, usd) => (
            "POST".into(),
            "/policies".into(),
            Some(json!({"scope": scope, "budgets": [{"period": "month", "amount_usd": usd}]})),
        ),
        Ask::GetWorkspaceCap => get(&format!("/policies/{}", w.ws_cap)),
        Ask::GetTeamPolicy => get(&format!(
            "/policies/{}",
            w.fresh_policy("platform", 100.0).await
        )),
        Ask::ReplaceTeamPolicy(usd) => {
            let id = w.fresh_policy("platform", 100.0).await;
            (
                "PUT".into(),
                format!("/policies/{id}"),
                Some(json!({"scope": "team:platform",
                            "budgets": [{"period": "month", "amount_usd": usd}]})),
            )
        }
        Ask::DeletePolicyOf(team) => {
            let id = w.fresh_policy(team, 100.0).await;
            ("DELETE".into(), format!("/policies/{id}"), None)
        }
        Ask::ListProviders => get("/providers"),
        Ask::PutCredential(scope) => (
            "PUT".into(),
            "/providers/anthropic/credentials".into(),
            Some(json!({"scope": scope, "api_key": fresh("sk-matrix")})),
        ),
        Ask::DeleteCredential(scope) => {
            w.ok(
                "PUT",
                "/providers/anthropic/credentials",
                json!({"scope": scope, "api_key": fresh("sk-matrix")}),
            )
            .await;
            (
                "DELETE".into(),
                format!("/providers/anthropic/credentials?scope={scope}"),
                None,
            )
        }
        Ask::RotateMasterKey => {
            let path = w.gw.root().join(fresh("new-master-key"));
            // A fixed 32-byte key per cell, written as hex.
            let n = FRESH.fetch_add(1, Ordering::Relaxed);
            std::fs::write(&path, format!("{:064x}", u128::from(n) + 1)).unwrap();
            (
                "POST".into(),
                "/master-key/rotate".into(),
                Some(json!({"new_key_file": path.to_string_lossy()})),
            )
        }
        Ask::Requests => get("/requests"),
        Ask::Spend => get("/spend?group_by=team&since=2026-01-01"),
        Ask::Audit => get("/audit"),
        Ask::PolicyUsage => get(&format!(
            "/policies/{}/usage",
            w.fresh_policy("platform", 100.0).await
        )),
        Ask::ResetTeamBudgets => {
            let id = w.fresh_policy("platform", 100.0).await;
            ("POST".into(), format!("/policies/{id}/reset"), None)
        }
        Ask::Alerts => get("/alerts"),
    }
}

/// Undoes an allowed change that would decide later cells: a new org or workspace budget
/// would become a cap for every later team policy.
async fn cleanup(w: &World, ask: Ask, reply: &Reply) {
    if let Ask::CreatePolicy(scope, _) = ask
        && reply.status == 200
        && !scope.starts_with("team:")
    {
        let id = reply.json()["id"].as_str().unwrap().to_string();
        w.ok("DELETE", &format!("/policies/{id}"), Value::Null)
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_admin_endpoint_by_every_role() {
    let w = World::new().await;

    // The matrix covers every mounted route, so a new endpoint cannot skip it.
    let covered: BTreeSet<(&str, &str)> = MATRIX.iter().map(|r| r.route).collect();
    for route in tollgate_server::admin::mounted_routes() {
        assert!(
            covered.contains(&route),
            "{route:?} is mounted but has no row in the role matrix"
        );
    }

    let mut failures = Vec::new();
    for r in MATRIX {
        assert_eq!(r.expect.len(), 6, "{:?}", r.route);
        for (i, role) in ROLES.iter().enumerate() {
            let want = r.expect.as_bytes().get(i).copied().unwrap_or(b'U');
            let (method, path, body) = request(&w, r.ask).await;
            let reply = w.call_as(role, &method, &path, body).await;
            cleanup(&w, r.ask, &reply).await;
            let want_status = match want {
                b'A' => 200,
                b'D' => 403,
                _ => 401,
            };
            if reply.status != want_status {
                failures.push(format!(
                    "{method} {path} ({:?}) as {role}: want {want_status}, got {} {}",
                    r.ask,
                    reply.status,
                    reply.text()
                ));
                continue;
            }
            if want_status != 200 {
                let v = reply.json();
                let ty = if want == b'D' {
                    "permission_error"
                } else {
                    "authentication_error"
                };
                assert_eq!(v["error"]["type"], ty, "{method} {path} as {role}: {v}");
                if want == b'D' {
                    let msg = v["error"]["message"].as_str().unwrap();
                    let role_name = role.trim_end_matches("_key");
                    assert!(
                        msg.contains(role_name),
                        "a refusal names the role ({role_name}): {msg}"
                    );
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} cell(s) of the role matrix disagree:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // The public description needs no credential.
    let doc = w.call_as("none", "GET", "/openapi.json", None).await;
    assert_eq!(doc.status, 200);
    let doc = doc.json();
    for (method, path) in tollgate_server::admin::mounted_routes() {
        assert!(
            doc["paths"][format!("/admin/v1{path}")][method.to_lowercase()].is_object(),
            "{method} {path} is not in the served OpenAPI document"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_admin_cannot_raise_its_budget_above_the_workspace_cap() {
    let w = World::new().await;
    let r = w
        .call_as(
            "team_admin",
            "POST",
            "/policies",
            Some(json!({"scope": "team:platform",
                        "budgets": [{"period": "month", "amount_usd": 900.0}]})),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(
        msg.contains("team_admin") && msg.contains("workspace cap") && msg.contains("$500.00"),
        "{msg}"
    );
    // Up to the cap, and other periods, are its own business; so is an invalid policy a 400.
    let ok = w
        .call_as(
            "team_admin",
            "POST",
            "/policies",
            Some(json!({"scope": "team:platform", "name": "platform",
                        "budgets": [{"period": "month", "amount_usd": 500.0},
                                    {"period": "day", "amount_usd": 900.0}]})),
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    let id = ok.json()["id"].as_str().unwrap().to_string();
    let bad = w
        .call_as(
            "team_admin",
            "POST",
            "/policies",
            Some(json!({"scope": "team:platform", "rate": {"requests_per_minute": 0}})),
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.text());
    // Raising an existing policy goes through the same cap.
    let raise = w
        .call_as(
            "team_admin",
            "PUT",
            &format!("/policies/{id}"),
            Some(json!({"scope": "team:platform",
                        "budgets": [{"period": "month", "amount_usd": 501.0}]})),
        )
        .await;
    assert_eq!(raise.status, 403, "{}", raise.text());
    let lower = w
        .call_as(
            "team_admin",
            "PUT",
            &format!("/policies/{id}"),
            Some(json!({"scope": "team:platform", "name": "platform",
                        "budgets": [{"period": "month", "amount_usd": 250.0}]})),
        )
        .await;
    assert_eq!(lower.status, 200, "{}", lower.text());

    // Every change is audited with who, before and after; the team admin sees its own team's
    // entries and not the workspace cap's creation.
    let audit = w.call_as("team_admin", "GET", "/audit", None).await.json();
    let entries = audit["data"].as_array().unwrap();
    let update = entries
        .iter()
        .find(|e| e["action"] == "policy.update" && e["target"] == id.as_str())
        .unwrap_or_else(|| panic!("no audit entry for the update: {audit}"));
    assert_eq!(update["actor"], "platform-lead");
    assert_eq!(update["actor_role"], "team_admin");
    assert_eq!(update["before"]["budgets"][0]["amount_usd"], 500.0);
    assert_eq!(update["after"]["budgets"][0]["amount_usd"], 250.0);
    assert!(update["at"].is_string());
    assert!(
        !entries.iter().any(|e| e["target"] == w.ws_cap.as_str()),
        "a team admin reads only its team's audit entries"
    );
    let all = w.call_as("auditor", "GET", "/audit", None).await.json();
    let created = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "policy.create" && e["target"] == w.ws_cap.as_str())
        .unwrap();
    assert!(created["before"].is_null() && created["after"]["scope"] == "workspace:eng");
    let text = all.to_string();
    for (role, token) in &w.tokens {
        if let Some(t) = token {
            assert!(
                !text.contains(t.as_str()),
                "the audit log holds the {role} credential"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_show_each_role_only_its_part() {
    let w = World::new().await;
    w.ok("POST", "/keys", json!({"user": "bob"})).await;
    w.ok("POST", "/keys", json!({"team": "sales", "project": "crm"}))
        .await;
    let names = |v: &Value, field: &str| -> BTreeSet<String> {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x[field].as_str().unwrap_or("-").to_string())
            .collect()
    };
    let teams = w.call_as("team_admin", "GET", "/teams", None).await.json();
    assert_eq!(names(&teams, "name"), BTreeSet::from(["platform".into()]));
    let teams = w
        .call_as("workspace_admin", "GET", "/teams", None)
        .await
        .json();
    assert_eq!(
        names(&teams, "name"),
        BTreeSet::from(["platform".into(), "infra".into()])
    );
    let ws = w
        .call_as("workspace_admin", "GET", "/workspaces", None)
        .await
        .json();
    assert_eq!(names(&ws, "name"), BTreeSet::from(["eng".into()]));
    for role in ["member", "member_key"] {
        let keys = w.call_as(role, "GET", "/keys", None).await.json();
        assert_eq!(
            names(&keys, "user"),
            BTreeSet::from(["alice".into()]),
            "{role}"
        );
    }
    let keys = w.call_as("org_admin", "GET", "/keys", None).await.json();
    let service = keys["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["service"] == true)
        .unwrap();
    assert_eq!(service["team"], "sales");
    assert_eq!(service["project"], "crm");
    let me = w.call_as("member_key", "GET", "/whoami", None).await.json();
    assert_eq!(me["role"], "member");
    assert_eq!(me["name"], "alice");

    // Usage: alice's request is hers, the team admin's and the workspace admin's; not sales'.
    let alice = w.token("member_key").unwrap().to_string();
    let req = messages_request(
        &format!("{}/v1/messages", w.gw.url),
        &alice,
        support::simple_body("claude-sonnet-4-5", false),
        &[],
    );
    let r = send(&w.http, req).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let spend_of = |role: &'static str| {
        let w = &w;
        async move {
            let v = w
                .call_as(role, "GET", "/spend?group_by=team&since=1d", None)
                .await
                .json();
            names(&v, "group")
        }
    };
    assert_eq!(
        spend_of("member").await,
        BTreeSet::from(["platform".into()])
    );
    assert_eq!(
        spend_of("team_admin").await,
        BTreeSet::from(["platform".into()])
    );
    let by_ws = w
        .call_as(
            "org_admin",
            "GET",
            "/spend?group_by=workspace&since=2026-01-01&until=2999-01-01",
            None,
        )
        .await
        .json();
    assert_eq!(by_ws["data"][0]["group"], "eng", "{by_ws}");
    assert_eq!(by_ws["data"][0]["requests"], 1);
    let none_before = w
        .call_as(
            "org_admin",
            "GET",
            "/spend?group_by=team&until=2020-01-01",
            None,
        )
        .await
        .json();
    assert!(none_before["data"].as_array().unwrap().is_empty());
    let sales_admin = w
        .ok(
            "POST",
            "/admins",
            json!({"name": "sales-lead", "role": "team_admin", "team": "sales"}),
        )
        .await;
    let mut w2 = w;
    w2.tokens.push((
        "sales",
        Some(sales_admin["key"].as_str().unwrap().to_string()),
    ));
    let v = w2.call_as("sales", "GET", "/requests", None).await.json();
    assert!(v["data"].as_array().unwrap().is_empty(), "{v}");

    // The CLI reports spend per team for a period.
    let out = w2
        .gw
        .admin(&[
            "spend",
            "--by",
            "team",
            "--since",
            "2026-01-01",
            "--until",
            "2999-01-01",
        ])
        .await;
    assert_eq!(out[0]["group"], "platform", "{out}");
}

/// A secret that must never leave the gateway except towards the provider.
fn canary() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("sk-ant-canary-{nanos:x}-{}", std::process::id())
}

/// Every file under `dir`, recursively, as bytes with its path.
fn files(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else if let Ok(b) = std::fs::read(&p) {
            out.push((p, b));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_secrets_never_come_back_out() {
    let mut w = World::with_env(&[("TOLLGATE_LOG", "debug")]).await;
    let secret = canary();
    let secret2 = canary() + "-rotated";
    let mut replies: Vec<(String, Reply)> = Vec::new();
    fn keep(replies: &mut Vec<(String, Reply)>, label: &str, r: Reply, status: u16) {
        assert_eq!(r.status, status, "{label}: {}", r.text());
        replies.push((label.to_string(), r));
    }

    // Stored at the org, for a team, then rotated.
    keep(
        &mut replies,
        "put org",
        w.call_as(
            "org_admin",
            "PUT",
            "/providers/anthropic/credentials",
            Some(json!({"api_key": secret})),
        )
        .await,
        200,
    );
    keep(
        &mut replies,
        "put team",
        w.call_as(
            "team_admin",
            "PUT",
            "/providers/anthropic/credentials",
            Some(json!({"scope": "team:platform", "api_key": secret})),
        )
        .await,
        200,
    );
    keep(
        &mut replies,
        "rotate org",
        w.call_as(
            "org_admin",
            "PUT",
            "/providers/anthropic/credentials",
            Some(json!({"scope": "org", "api_key": secret2})),
        )
        .await,
        200,
    );
    // Error paths with the secret in every place a careless message could echo it.
    let bad_bodies = [
        json!({"api_key": secret, "aws_access_key_id": secret}),
        json!({"scope": secret, "api_key": "x"}),
        json!({"scope": format!("team:{secret}"), "api_key": "x"}),
        json!({"api_key": secret, "unexpected": secret}),
        json!({"api_key": [secret]}),
        json!({"service_account_json": secret}),
        json!({"service_account_json": {"private_key": secret}}),
        json!({"aws_access_key_id": secret}),
        json!(secret),
    ];
    for (i, b) in bad_bodies.iter().enumerate() {
        let r = w
            .call_as(
                "org_admin",
                "PUT",
                "/providers/anthropic/credentials",
                Some(b.clone()),
            )
            .await;
        assert!(
            r.status == 400 || r.status == 404,
            "bad body {i}: {} {}",
            r.status,
            r.text()
        );
        replies.push((format!("bad body {i}"), r));
    }
    let raw = Request::put(format!(
        "{}/admin/v1/providers/anthropic/credentials",
        w.gw.url
    ))
    .header(
        "authorization",
        format!("Bearer {}", w.token("org_admin").unwrap()),
    )
    .header("content-type", "application/json")
    .body(Full::new(Bytes::from(format!("{{\"api_key\": \"{secret}"))))
    .unwrap();
    let r = send(&w.http, raw).await;
    assert_eq!(r.status, 400, "{}", r.text());
    replies.push(("truncated json".into(), r));
    keep(
        &mut replies,
        "unknown provider",
        w.call_as(
            "org_admin",
            "PUT",
            "/providers/nope/credentials",
            Some(json!({"api_key": secret})),
        )
        .await,
        404,
    );
    keep(
        &mut replies,
        "auditor writes",
        w.call_as(
            "auditor",
            "PUT",
            "/providers/anthropic/credentials",
            Some(json!({"api_key": secret})),
        )
        .await,
        403,
    );
    keep(
        &mut replies,
        "team admin at org",
        w.call_as(
            "team_admin",
            "PUT",
            "/providers/anthropic/credentials",
            Some(json!({"scope": "org", "api_key": secret})),
        )
        .await,
        403,
    );
    keep(
        &mut replies,
        "no credential",
        w.call_as(
            "none",
            "PUT",
            "/providers/anthropic/credentials",
            Some(json!({"api_key": secret})),
        )
        .await,
        401,
    );
    keep(
        &mut replies,
        "bedrock kind",
        w.call_as(
            "org_admin",
            "PUT",
            "/providers/anthropic/credentials",
            Some(json!({"aws_access_key_id": secret, "aws_secret_access_key": secret})),
        )
        .await,
        400,
    );
    // Every read path.
    for (role, path) in [
        ("org_admin", "/providers"),
        ("auditor", "/providers"),
        ("team_admin", "/providers"),
        ("org_admin", "/audit"),
        ("auditor", "/audit"),
        ("org_admin", "/requests"),
        ("org_admin", "/spend"),
        ("org_admin", "/whoami"),
        ("none", "/openapi.json"),
    ] {
        let r = w.call_as(role, "GET", path, None).await;
        keep(&mut replies, path, r, 200);
    }
    let providers = replies
        .iter()
        .find(|(l, _)| l == "/providers")
        .unwrap()
        .1
        .json();
    let creds = &providers["data"][0]["credentials"];
    assert_eq!(creds.as_array().unwrap().len(), 2, "{providers}");
    assert!(creds[0]["rotated_at"].is_string());
    // A model request (the journal) and the CLI's listing. The stored org credential replaces
    // the configured key, and the upstream refuses the canary: the error names the provider,
    // never the secret.
    let key = w.token("member_key").unwrap().to_string();
    let r = send(
        &w.http,
        messages_request(
            &format!("{}/v1/messages", w.gw.url),
            &key,
            support::simple_body("claude-sonnet-4-5", false),
            &[],
        ),
    )
    .await;
    assert!(
        r.text().contains("refused the gateway's credentials"),
        "{}",
        r.text()
    );
    keep(&mut replies, "/v1/messages", r, 502);
    let cli = w.gw.cli(&["credentials", "list"]).await;
    // A restart decrypts the store with the master key file and serves the same list.
    w.gw.restart().await;
    let after = w.call_as("org_admin", "GET", "/providers", None).await;
    assert_eq!(after.status, 200);
    assert_eq!(
        after.json()["data"][0]["credentials"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    replies.push(("after restart".into(), after));
    let delete = w
        .call_as(
            "org_admin",
            "DELETE",
            "/providers/anthropic/credentials?scope=team:platform",
            None,
        )
        .await;
    assert_eq!(delete.status, 200, "{}", delete.text());
    replies.push(("delete".into(), delete));

    for s in [&secret, &secret2] {
        let needle = s.as_bytes();
        for (label, r) in &replies {
            assert!(
                !r.body.windows(needle.len()).any(|x| x == needle)
                    && !format!("{:?}", r.headers).contains(s.as_str()),
                "{label}: the response contains the secret: {}",
                r.text()
            );
        }
        assert!(!cli.contains(s.as_str()), "the CLI printed the secret");
        let log = w.gw.log();
        assert!(!log.is_empty(), "the gateway logged nothing at debug level");
        assert!(
            !log.contains(s.as_str()),
            "the gateway log contains the secret"
        );
        let all = files(w.gw.root());
        // On Postgres the sealed rows live in the database server (the store suite checks
        // them there); the data directory still holds the journal and the log.
        let on_postgres = std::env::var("TG_TEST_STORE").as_deref() == Ok("postgres");
        assert!(
            on_postgres || all.iter().any(|(p, _)| p.ends_with("tollgate.db")),
            "the data directory was searched"
        );
        for (path, bytes) in all {
            assert!(
                !bytes.windows(needle.len()).any(|x| x == needle),
                "{} contains the secret in clear",
                path.display()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_admin_bodies_are_refused_with_the_right_status() {
    let gw = Gateway::start(&support::closed_port_url()).await;
    let huge = json!({ "name": "t".repeat(3 << 20) });
    let reply = gw.admin_call("POST", "teams", Some(huge)).await;
    assert_eq!(reply.status, 413, "{}", reply.text());
    assert_eq!(reply.json()["error"]["type"], "request_too_large");
    let reply = gw
        .admin_call("POST", "teams", Some(json!({ "name": 5 })))
        .await;
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert_eq!(reply.json()["error"]["type"], "invalid_request");
    // Nothing was created by either.
    let teams = gw.admin_get("teams").await;
    assert!(!teams.to_string().contains("ttt"), "{teams}");
}
