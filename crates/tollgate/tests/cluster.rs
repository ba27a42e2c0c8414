//! Cluster mode end to end: two `tollgate serve` processes, each with its own data directory
//! (its own journal), sharing one real Postgres for entities and one real Redis for counters,
//! both started by the test from the Debian packages. What one replica's admin API changes
//! must reach the other within a second, and shared limits must hold across both.

#![allow(clippy::unwrap_used)]

mod support;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};
use support::{
    Gateway, HttpClient, Reply, TempDir, UPSTREAM_KEY, client, flood, messages_request,
    padded_body, send, simple_body,
};
use tollgate_testkit::services::{PostgresServer, RedisServer};
use tollgate_testkit::{ScriptedUpstream, UpstreamOptions};

const OPUS: &str = "claude-opus-5-5";
const HAIKU: &str = "claude-haiku-5-5";
/// The bootstrap admin credential every replica is started with.
const ADMIN_KEY: &str = "tgadm_cluster-test-0123456789abcdef0123456789abcdef";
/// The master key every replica shares (32 bytes of 0x2a, base64).
const MASTER_KEY: &str = "KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio=";
/// The Postgres role's password: it must never appear in a replica's output.
const PG_PASSWORD: &str = "canary-pg-password-5f3e";
/// What "within a second" means here.
const WITHIN: Duration = Duration::from_secs(1);

/// One Postgres, one Redis, one fake upstream and two replicas on them.
struct Cluster {
    a: Gateway,
    b: Gateway,
    upstream: ScriptedUpstream,
    http: HttpClient,
    env: Vec<(String, String)>,
    toml: String,
    // Declared last: the replicas stop before the services they use.
    _redis: RedisServer,
    pg: PostgresServer,
}

impl Cluster {
    /// A cluster whose `[store]` section also holds `store_toml`.
    async fn start(store_toml: &str) -> Cluster {
        let pg = PostgresServer::start();
        pg.psql(&format!(
            "CREATE ROLE tollgate LOGIN PASSWORD '{PG_PASSWORD}'"
        ));
        pg.psql("CREATE DATABASE tollgate OWNER tollgate");
        let redis = RedisServer::start();
        let upstream = ScriptedUpstream::start(UpstreamOptions::new(UPSTREAM_KEY))
            .await
            .unwrap();
        let store_url = format!(
            "postgres://tollgate:{PG_PASSWORD}@127.0.0.1:{}/tollgate",
            pg.port()
        );
        // The URL reaches the config through `${…}`, as an operator keeps the password out
        // of the file.
        let toml = format!(
            "[store]\nbackend = \"postgres\"\nurl = \"${{TG_TEST_STORE_URL}}\"\n{store_toml}\n[governance]\ncounters = \"redis\"\nredis_url = \"{}\"\n",
            redis.url()
        );
        let env = vec![
            ("TG_TEST_STORE_URL".to_string(), store_url),
            ("TOLLGATE_ADMIN_KEY".to_string(), ADMIN_KEY.to_string()),
            ("TOLLGATE_MASTER_KEY".to_string(), MASTER_KEY.to_string()),
        ];
        let a = Self::replica(&upstream, &toml, &env).await;
        let b = Self::replica(&upstream, &toml, &env).await;
        Cluster {
            a,
            b,
            upstream,
            http: client(),
            env,
            toml,
            _redis: redis,
            pg,
        }
    }

    async fn replica(upstream: &ScriptedUpstream, toml: &str, env: &[(String, String)]) -> Gateway {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        Gateway::start_with_env(&upstream.url(), toml, &env).await
    }

    /// An admin API call to one replica as `token`.
    async fn call(
        &self,
        gw: &Gateway,
        token: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Reply {
        admin_call(&self.http, gw, token, method, path, body).await
    }

    /// An admin API call as the cluster's org admin that must succeed.
    async fn ok(&self, gw: &Gateway, method: &str, path: &str, body: Value) -> Value {
        let body = (!body.is_null()).then_some(body);
        let r = self.call(gw, ADMIN_KEY, method, path, body).await;
        assert_eq!(r.status, 200, "{method} {path}: {}", r.text());
        r.json()
    }

    /// A gateway key made through replica A's admin API: the creation answer (`key`, `id`).
    async fn make_key(&self, user: &str, team: &str) -> Value {
        self.ok(
            &self.a,
            "POST",
            "/keys",
            json!({"user": user, "team": team}),
        )
        .await
    }

    /// Waits until replica B accepts `key` (checked with `whoami`, which spends nothing).
    async fn until_b_knows(&self, what: &str, key: &str) {
        time_until(what, Instant::now(), || async {
            self.call(&self.b, key, "GET", "/whoami", None).await.status == 200
        })
        .await;
    }

    /// `n` concurrent requests with `key`, alternating between the replicas: (admitted, total
    /// settled nanos), the costs summed from both replicas' own journals.
    async fn flood(&self, key: &str, n: usize, body: String) -> (usize, i64) {
        let replicas = [(&self.a, key.to_string()), (&self.b, key.to_string())];
        flood(&replicas, n, body, Duration::from_secs(15)).await
    }

    /// A Messages request with `key` to one replica.
    async fn ask(&self, gw: &Gateway, key: &str, model: &str) -> Reply {
        let url = format!("{}/v1/messages", gw.url);
        send(
            &self.http,
            messages_request(&url, key, simple_body(model, false), &[]),
        )
        .await
    }
}

async fn admin_call(
    http: &HttpClient,
    gw: &Gateway,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Reply {
    let mut b = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).unwrap())
        .uri(format!("{}/admin/v1{path}", gw.url))
        .header("authorization", format!("Bearer {token}"));
    let payload = match body {
        Some(v) => {
            b = b.header("content-type", "application/json");
            Bytes::from(v.to_string())
        }
        None => Bytes::new(),
    };
    send(http, b.body(Full::new(payload)).unwrap()).await
}

/// Polls `check` every 10 ms until it holds; returns how long that took after `since`. Gives up
/// (failing the test) after five seconds, so a miss shows how far off it was.
async fn time_until<F, Fut>(what: &str, since: Instant, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    loop {
        if check().await {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < Duration::from_secs(5),
            "{what}: still not the case after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_key_made_on_one_replica_works_on_the_other_and_its_revocation_reaches_both_within_a_second()
 {
    let c = Cluster::start("").await;
    let made = c.make_key("alice", "platform").await;
    let created = Instant::now();
    let key = made["key"].as_str().unwrap().to_string();
    let id = made["id"].as_str().unwrap().to_string();
    assert_eq!(
        c.ask(&c.a, &key, HAIKU).await.status,
        200,
        "on the replica that made it"
    );
    let seen_by_b = time_until("the new key works on replica B", created, || async {
        c.ask(&c.b, &key, HAIKU).await.status == 200
    })
    .await;

    c.ok(&c.a, "DELETE", &format!("/keys/{id}"), Value::Null)
        .await;
    let revoked = Instant::now();
    let refused_by_a = time_until("replica A refuses the revoked key", revoked, || async {
        c.ask(&c.a, &key, HAIKU).await.status == 401
    })
    .await;
    let refused_by_b = time_until("replica B refuses the revoked key", revoked, || async {
        c.ask(&c.b, &key, HAIKU).await.status == 401
    })
    .await;
    eprintln!(
        "new key usable on B after {seen_by_b:?}; revoked key refused by A after {refused_by_a:?}, by B after {refused_by_b:?}"
    );
    assert!(
        seen_by_b <= WITHIN,
        "B took {seen_by_b:?} to accept the key"
    );
    assert!(
        refused_by_a <= WITHIN,
        "A took {refused_by_a:?} to refuse it"
    );
    assert!(
        refused_by_b <= WITHIN,
        "B took {refused_by_b:?} to refuse it"
    );
    // Stays refused on both.
    for gw in [&c.a, &c.b] {
        let r = c.ask(gw, &key, HAIKU).await;
        assert_eq!(r.status, 401, "{}", r.text());
    }
}

#[tokio::test]
async fn a_policy_and_an_admin_credential_made_on_one_replica_apply_on_the_other() {
    let c = Cluster::start("").await;
    let made = c.make_key("bob", "platform").await;
    let key = made["key"].as_str().unwrap().to_string();
    // B knows the key before the policy is written (whoami spends nothing).
    c.until_b_knows("replica B knows bob's key", &key).await;
    assert_eq!(c.ask(&c.b, &key, OPUS).await.status, 200);

    let policy = c
        .ok(
            &c.a,
            "POST",
            "/policies",
            json!({"scope": "team:platform", "name": "haiku only", "allowed_models": [HAIKU]}),
        )
        .await;
    let written = Instant::now();
    let enforced = time_until("replica B enforces the new policy", written, || async {
        c.ask(&c.b, &key, OPUS).await.status == 403
    })
    .await;
    eprintln!("policy written on A enforced on B after {enforced:?}");
    assert!(enforced <= WITHIN, "B took {enforced:?} to enforce it");
    let refused = c.ask(&c.b, &key, OPUS).await;
    assert!(refused.text().contains("haiku only"), "{}", refused.text());
    assert_eq!(c.ask(&c.b, &key, HAIKU).await.status, 200);

    // Deleting it on B lifts it on A.
    let id = policy["id"].as_str().unwrap();
    c.ok(&c.b, "DELETE", &format!("/policies/{id}"), Value::Null)
        .await;
    let deleted = Instant::now();
    let lifted = time_until("replica A lifts the deleted policy", deleted, || async {
        c.ask(&c.a, &key, OPUS).await.status == 200
    })
    .await;
    assert!(lifted <= WITHIN, "A took {lifted:?} to lift it");

    // Admin credentials live in the shared store: one made on A works on B at once, and its
    // revocation on A is refused by B at once.
    let admin = c
        .ok(
            &c.a,
            "POST",
            "/admins",
            json!({"name": "platform lead", "role": "team_admin", "team": "platform"}),
        )
        .await;
    let token = admin["key"].as_str().unwrap().to_string();
    let who = c.call(&c.b, &token, "GET", "/whoami", None).await;
    assert_eq!(who.status, 200, "{}", who.text());
    assert_eq!(who.json()["role"], "team_admin");
    c.ok(
        &c.a,
        "DELETE",
        &format!("/admins/{}", admin["id"].as_str().unwrap()),
        Value::Null,
    )
    .await;
    assert_eq!(
        c.call(&c.b, &token, "GET", "/whoami", None).await.status,
        401
    );

    // The audit log is shared too: B shows what A did.
    let audit = c.ok(&c.b, "GET", "/audit?limit=50", Value::Null).await;
    let actions: Vec<&str> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(actions.contains(&"policy.create"), "{actions:?}");
    assert!(actions.contains(&"policy.delete"), "{actions:?}");

    // A master key rotated through A: B cannot decrypt the re-sealed credentials until it
    // restarts with the new key, says so, and keeps following keys and policies meanwhile.
    c.ok(
        &c.a,
        "PUT",
        "/providers/anthropic/credentials",
        // The upstream's own key: stored credentials serve requests, and these must go on.
        json!({"scope": "org", "api_key": UPSTREAM_KEY}),
    )
    .await;
    let dir = TempDir::new("next-master-key");
    let next = dir.path().join("next.key");
    std::fs::write(&next, "VVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVU=\n").unwrap();
    let rotated = c
        .ok(
            &c.a,
            "POST",
            "/master-key/rotate",
            json!({"new_key_file": next.to_str().unwrap()}),
        )
        .await;
    assert_eq!(rotated["resealed"], 1, "{rotated}");
    time_until(
        "replica B reports the master key it lacks",
        Instant::now(),
        || async {
            c.b.log()
                .contains("cannot be decrypted with this replica's master key")
        },
    )
    .await;
    let later = c.make_key("erin", "platform").await;
    let later_key = later["key"].as_str().unwrap().to_string();
    let made = Instant::now();
    let seen = time_until("replica B still follows new keys", made, || async {
        c.ask(&c.b, &later_key, HAIKU).await.status == 200
    })
    .await;
    assert!(seen <= WITHIN, "B took {seen:?} after the rotation");
    assert!(
        !c.a.log().contains("cannot be decrypted"),
        "{}",
        c.a.log_tail()
    );
    // Reported once per change, not at every poll.
    let reports = || {
        c.b.log()
            .matches("cannot be decrypted with this replica")
            .count()
    };
    // The key made above was a change too, and its report may still be on its way through the
    // log writer: count once the log has been quiet for a while.
    let mut before = reports();
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = reports();
        if now == before {
            break;
        }
        before = now;
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(reports(), before, "reported again without a change");

    // Neither replica ever printed the database password.
    for gw in [&c.a, &c.b] {
        let log = gw.log();
        assert!(
            !log.contains(PG_PASSWORD),
            "a replica logged the Postgres password"
        );
    }
}

const CAP_NANOS: i64 = 1_000_000_000;
/// 10,000 input + 1,000 output tokens of Opus 5.5: $0.04 + $0.02.
const ACTUAL_NANOS: i64 = 60_000_000;

/// A team with a $1.00 monthly budget written through replica A's admin API, and a key of it
/// that both replicas know.
async fn team_with_a_dollar(c: &Cluster, team: &str, enforcement: &str) -> String {
    let made = c.make_key(&format!("{team}-dev"), team).await;
    let key = made["key"].as_str().unwrap().to_string();
    c.ok(
        &c.a,
        "POST",
        "/policies",
        json!({"scope": format!("team:{team}"), "name": format!("{team} budget"),
               "budgets": [{"period": "month", "amount_usd": 1.0, "enforcement": enforcement}]}),
    )
    .await;
    // Both replicas must hold the key and the policy before the flood: the key is checked
    // without spending, the policy is given the second it is promised.
    c.until_b_knows("replica B knows the key", &key).await;
    tokio::time::sleep(WITHIN).await;
    key
}

#[tokio::test]
async fn two_hundred_requests_over_two_replicas_hold_a_one_dollar_team_budget() {
    let c = Cluster::start("").await;
    let strict = team_with_a_dollar(&c, "strict", "strict").await;
    let (admitted, total) = c.flood(&strict, 200, padded_body(OPUS, 12_000, 1000)).await;
    eprintln!(
        "strict over two replicas: {admitted} of 200 admitted, ${:.4} settled",
        total as f64 / 1e9
    );
    assert!(admitted >= 1);
    assert!(
        total <= CAP_NANOS,
        "strict: settled {total} > cap over two replicas"
    );

    let standard = team_with_a_dollar(&c, "standard", "standard").await;
    let body = padded_body(OPUS, 12_000, 1000);
    let (admitted, total) = c.flood(&standard, 200, body.clone()).await;
    // Standard estimate: ceil(bytes / 4) input tokens at $4/MTok + min(max_tokens, 4096)
    // output tokens at $20/MTok; each admitted request may overshoot by actual − estimate.
    let bytes = body.len() as i64;
    let estimate = (bytes + 3) / 4 * 4_000 + 1000 * 20_000;
    let bound = CAP_NANOS + admitted as i64 * (ACTUAL_NANOS - estimate).max(0);
    eprintln!(
        "standard over two replicas: {admitted} of 200 admitted, ${:.4} settled, bound ${:.4}",
        total as f64 / 1e9,
        bound as f64 / 1e9
    );
    assert!(admitted >= 1);
    assert!(total <= bound, "standard: settled {total} > bound {bound}");
}

#[tokio::test]
async fn sixty_requests_per_minute_over_two_replicas_let_sixty_through_not_120() {
    let c = Cluster::start("").await;
    let made = c.make_key("carol", "rated").await;
    let key = made["key"].as_str().unwrap().to_string();
    c.ok(
        &c.a,
        "POST",
        "/policies",
        json!({"scope": "team:rated", "name": "sixty a minute", "rate": {"requests_per_minute": 60}}),
    )
    .await;
    c.until_b_knows("replica B knows the key", &key).await;
    tokio::time::sleep(WITHIN).await;
    // The burst must sit in one fixed per-minute window.
    support::until_early_in_a_minute().await;
    let mut tasks = Vec::new();
    for i in 0..150 {
        let gw = if i % 2 == 0 { &c.a } else { &c.b };
        let req = messages_request(
            &format!("{}/v1/messages", gw.url),
            &key,
            simple_body(HAIKU, false),
            &[],
        );
        let http = c.http.clone();
        tasks.push(tokio::spawn(async move { send(&http, req).await.status }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            200 => ok += 1,
            429 => {}
            s => panic!("unexpected status {s}"),
        }
    }
    eprintln!("60 rpm over two replicas: {ok} of 150 let through");
    assert!((59..=61).contains(&ok), "{ok} requests let through");
}

#[tokio::test]
async fn a_postgres_outage_leaves_requests_flowing_and_changes_resume_after_it() {
    // Store calls give up on the unreachable database after a second.
    let c = Cluster::start("connect_timeout_secs = 1").await;
    let made = c.make_key("dana", "platform").await;
    let key = made["key"].as_str().unwrap().to_string();
    let id = made["id"].as_str().unwrap().to_string();
    c.until_b_knows("replica B knows the key", &key).await;

    c.pg.pause();
    // The request path never reads the store: both replicas keep serving from their snapshots.
    for gw in [&c.a, &c.b] {
        for _ in 0..5 {
            let r = c.ask(gw, &key, HAIKU).await;
            assert_eq!(r.status, 200, "during the outage: {}", r.text());
        }
    }
    // Admin writes need the store: a clear 500, not a hang.
    let r = c
        .call(&c.a, ADMIN_KEY, "DELETE", &format!("/keys/{id}"), None)
        .await;
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(r.text().contains("database error"), "{}", r.text());
    time_until(
        "replica B logs that it cannot follow the store",
        Instant::now(),
        || async { c.b.log().contains("cannot follow store changes") },
    )
    .await;

    c.pg.resume();
    let r = time_until("replica A writes again", Instant::now(), || async {
        c.call(&c.a, ADMIN_KEY, "DELETE", &format!("/keys/{id}"), None)
            .await
            .status
            == 200
    })
    .await;
    let revoked = Instant::now();
    let refused = time_until(
        "replica B refuses the key revoked after the outage",
        revoked,
        || async { c.ask(&c.b, &key, HAIKU).await.status == 401 },
    )
    .await;
    eprintln!("store back after {r:?}; revocation reached B {refused:?} later");
    assert!(refused <= WITHIN, "B took {refused:?} to refuse it");
    // The recovery is logged by the first poll that reads everything again.
    time_until("replica B logs the recovery", Instant::now(), || async {
        c.b.log().contains("store reachable again")
    })
    .await;
}

/// Runs `tollgate serve` expecting it to stop at start-up; returns its standard error.
async fn failed_start(dir: &Path, toml: &str, env: &[(String, String)]) -> String {
    let config = dir.join("tollgate.toml");
    std::fs::write(&config, format!("{toml}\n")).unwrap();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_tollgate"));
    cmd.arg("serve")
        .arg("--config")
        .arg(&config)
        .args(["--listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .env_remove("TOLLGATE_ADMIN_KEY")
        .env_remove("TOLLGATE_MASTER_KEY")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(20), cmd.output())
        .await
        .expect("tollgate serve stops within 20 s")
        .unwrap();
    assert!(!out.status.success(), "tollgate serve started: {out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn replicas_started_without_the_shared_keys_bootstrap_once_or_stop_with_the_fix() {
    let c = Cluster::start("").await;
    // A fresh database, replicas started with no TOLLGATE_ADMIN_KEY: the first mints
    // admin.key, the second starts without minting another, and the first one's key works on
    // both.
    c.pg.psql("CREATE DATABASE fresh OWNER tollgate");
    let fresh_url = format!(
        "postgres://tollgate:{PG_PASSWORD}@127.0.0.1:{}/fresh",
        c.pg.port()
    );
    let env: Vec<(String, String)> = vec![
        ("TG_TEST_STORE_URL".into(), fresh_url),
        ("TOLLGATE_MASTER_KEY".into(), MASTER_KEY.into()),
        // Every crate's debug output, the database driver's included, stays password-free.
        ("TOLLGATE_LOG".into(), "debug".into()),
    ];
    let first = Cluster::replica(&c.upstream, &c.toml, &env).await;
    let second = Cluster::replica(&c.upstream, &c.toml, &env).await;
    let minted = std::fs::read_to_string(first.data_dir.join("admin.key")).unwrap();
    assert!(
        !second.data_dir.join("admin.key").exists(),
        "the second replica minted its own admin key"
    );
    for gw in [&first, &second] {
        let r = admin_call(&c.http, gw, minted.trim(), "GET", "/whoami", None).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(
            !gw.log().contains(PG_PASSWORD),
            "the Postgres password is in a debug log"
        );
        assert!(gw.log().contains("sqlx"), "debug logging was not on");
    }

    // Without the master key a replica refuses to start, naming the variable.
    let dir = TempDir::new("no-master-key");
    let without: Vec<(String, String)> = c
        .env
        .iter()
        .filter(|(k, _)| k != "TOLLGATE_MASTER_KEY")
        .cloned()
        .collect();
    let toml = format!(
        "[[providers]]\nname = \"anthropic\"\nkind = \"anthropic\"\nbase_url = \"{}\"\napi_key = \"x\"\n\n{}",
        c.upstream.url(),
        c.toml
    );
    let err = failed_start(dir.path(), &toml, &without).await;
    assert!(err.contains("TOLLGATE_MASTER_KEY"), "{err}");
    assert!(!err.contains(PG_PASSWORD), "{err}");

    // A database that cannot be reached is a clear start-up error that does not repeat the
    // password (test clusters trust every login, so a missing database stands in for a
    // refused one).
    let wrong_url = format!(
        "postgres://tollgate:not-{PG_PASSWORD}@127.0.0.1:{}/missing_db",
        c.pg.port()
    );
    let wrong: Vec<(String, String)> = c
        .env
        .iter()
        .map(|(k, v)| {
            if k == "TG_TEST_STORE_URL" {
                (k.clone(), wrong_url.clone())
            } else {
                (k.clone(), v.clone())
            }
        })
        .collect();
    let dir = TempDir::new("bad-db");
    let err = failed_start(dir.path(), &toml, &wrong).await;
    assert!(
        err.contains("cannot connect to postgres://tollgate:***@"),
        "{err}"
    );
    assert!(!err.contains(PG_PASSWORD), "{err}");
}
