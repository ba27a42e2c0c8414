//! Policies enforced end to end: a real gateway process (or two sharing a real Redis) between a
//! plain HTTP client and the strict scripted upstream.

#![allow(clippy::unwrap_used)]

mod support;

use bytes::Bytes;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use support::{
    Gateway, HttpClient, Reply, UPSTREAM_KEY, client, error_of, flood, messages_request,
    padded_body, send, simple_body,
};
use tollgate_testkit::services::RedisServer;
use tollgate_testkit::{ScriptedUpstream, UpstreamOptions};

const OPUS: &str = "claude-opus-5-5";
const HAIKU: &str = "claude-haiku-5-5";

struct Setup {
    upstream: ScriptedUpstream,
    gw: Gateway,
    key: String,
    client: HttpClient,
}

impl Setup {
    async fn with(policies_toml: &str) -> Setup {
        let upstream = ScriptedUpstream::start(UpstreamOptions::new(UPSTREAM_KEY))
            .await
            .unwrap();
        let gw = Gateway::start_with(&upstream.url(), policies_toml).await;
        let key = gw.create_key("alice", "platform").await;
        Setup {
            upstream,
            gw,
            key,
            client: client(),
        }
    }

    async fn post(&self, body: impl Into<Bytes>, headers: &[(&str, &str)]) -> Reply {
        let url = format!("{}/v1/messages", self.gw.url);
        send(
            &self.client,
            messages_request(&url, &self.key, body, headers),
        )
        .await
    }
}

#[tokio::test]
async fn a_model_outside_the_allow_list_is_refused_in_every_dialect_naming_the_policy() {
    let s = Setup::with(
        r#"
[[policies]]
scope = "team:platform"
name = "platform models"
allowed_models = ["claude-sonnet-*", "claude-haiku-5-5"]
"#,
    )
    .await;
    let ok = s.post(simple_body(HAIKU, false), &[]).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    let denied = s.post(simple_body(OPUS, false), &[]).await;
    assert_eq!(denied.status, 403);
    assert_eq!(denied.header("x-should-retry"), Some("false"));
    let (kind, msg) = error_of(&denied);
    assert_eq!(kind, "permission_error");
    assert!(
        msg.contains("platform models") && msg.contains(OPUS),
        "{msg}"
    );

    // The OpenAI dialect gets its own error shape for the same refusal.
    let req = http::Request::post(format!("{}/v1/chat/completions", s.gw.url))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {}", s.key))
        .body(http_body_util::Full::new(Bytes::from(format!(
            r#"{{"model":"{OPUS}","messages":[{{"role":"user","content":"hi"}}]}}"#
        ))))
        .unwrap();
    let chat = send(&s.client, req).await;
    assert_eq!(chat.status, 403);
    assert_eq!(chat.json()["error"]["type"], "permission_error");

    let rec = s.gw.record(&denied.request_id()).await;
    assert_eq!(rec["policy"], "platform models");
    assert_eq!(rec["status"], 403);
    // Nothing refused reached the upstream.
    assert_eq!(s.upstream.requests().len(), 1);
}

#[tokio::test]
async fn a_requests_per_minute_limit_answers_429_with_retry_after_and_ratelimit_headers() {
    let s = Setup::with(
        r#"
[[policies]]
scope = "user:alice"
rate = { requests_per_minute = 3 }
"#,
    )
    .await;
    for _ in 0..3 {
        let r = s.post(simple_body(HAIKU, false), &[]).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let r = s.post(simple_body(HAIKU, true), &[]).await;
    assert_eq!(r.status, 429);
    let (kind, msg) = error_of(&r);
    assert_eq!(kind, "rate_limit_error");
    assert!(msg.contains("3 requests per minute"), "{msg}");
    assert_eq!(r.header("x-should-retry"), Some("true"));
    let retry: u32 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=45).contains(&retry), "retry-after {retry}");
    assert_eq!(r.header("anthropic-ratelimit-requests-limit"), Some("3"));
    assert_eq!(
        r.header("anthropic-ratelimit-requests-remaining"),
        Some("0")
    );
    assert!(r.header("anthropic-ratelimit-requests-reset").is_some());
    assert_eq!(s.upstream.requests().len(), 3);
}

#[tokio::test]
async fn max_tokens_above_a_ceiling_is_clamped_or_rejected_as_configured() {
    let s = Setup::with(
        r#"
[[policies]]
scope = "team:platform"
max_tokens = { ceiling = 1000 }

[[policies]]
scope = "model:claude-opus-5-5"
name = "opus ceiling"
max_tokens = { ceiling = 500, action = "reject" }
"#,
    )
    .await;
    let r = s.post(padded_body(HAIKU, 10, 64000), &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let seen: Value = serde_json::from_slice(&s.upstream.requests()[0].body).unwrap();
    assert_eq!(seen["max_tokens"], 1000);
    let rec = s.gw.record(&r.request_id()).await;
    assert_eq!(rec["clamped_max_tokens_from"], 64000);

    let r = s.post(padded_body(OPUS, 10, 800), &[]).await;
    assert_eq!(r.status, 400);
    let (kind, msg) = error_of(&r);
    assert_eq!(kind, "invalid_request_error");
    assert!(msg.contains("opus ceiling") && msg.contains("500"), "{msg}");
}

#[tokio::test]
async fn a_session_stops_after_its_turn_cap_and_other_sessions_go_on() {
    let s = Setup::with(
        r##"
[governance]
contact = "#ai-platform on Slack"

[[policies]]
scope = "org"
name = "session caps"
session = { max_turns = 2 }
"##,
    )
    .await;
    let sess = [("x-claude-code-session-id", "sess-a")];
    // Counting tokens is free and no turn.
    for _ in 0..3 {
        let url = format!("{}/v1/messages/count_tokens", s.gw.url);
        let r = send(
            &s.client,
            messages_request(&url, &s.key, simple_body(HAIKU, false), &sess),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    for _ in 0..2 {
        assert_eq!(s.post(simple_body(HAIKU, false), &sess).await.status, 200);
    }
    let r = s.post(simple_body(HAIKU, false), &sess).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("x-should-retry"), Some("false"));
    let (kind, msg) = error_of(&r);
    assert_eq!(kind, "rate_limit_error");
    assert!(
        msg.contains("2 turns") && msg.contains("#ai-platform"),
        "{msg}"
    );
    let other = [("x-claude-code-session-id", "sess-b")];
    assert_eq!(s.post(simple_body(HAIKU, false), &other).await.status, 200);
}

#[tokio::test]
async fn the_loop_breaker_stops_a_session_repeating_the_same_tool_call() {
    let s = Setup::with(
        r#"
[[policies]]
scope = "org"
name = "loop breaker"
session = { loop_breaker = { repeats = 3, within_turns = 5 } }
"#,
    )
    .await;
    let turns = |n: usize| {
        let mut msgs = vec![r#"{"role":"user","content":"make the tests pass"}"#.to_string()];
        for i in 0..n {
            msgs.push(format!(r#"{{"role":"assistant","content":[{{"type":"tool_use","id":"toolu_{i}","name":"Bash","input":{{"command":"npm test"}}}}]}}"#));
            msgs.push(format!(r#"{{"role":"user","content":[{{"type":"tool_result","tool_use_id":"toolu_{i}","content":"1 failing"}}]}}"#));
        }
        format!(
            r#"{{"model":"{HAIKU}","max_tokens":100,"messages":[{}]}}"#,
            msgs.join(",")
        )
    };
    let sess = [("x-claude-code-session-id", "sess-loop")];
    assert_eq!(s.post(turns(2), &sess).await.status, 200);
    let r = s.post(turns(3), &sess).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("x-should-retry"), Some("false"));
    let (_, msg) = error_of(&r);
    assert!(msg.contains("Bash") && msg.contains("3 times"), "{msg}");
    // Without a session there is no agent loop to break.
    assert_eq!(s.post(turns(3), &[]).await.status, 200);
}

#[tokio::test]
async fn above_a_spend_threshold_opus_is_served_as_haiku_and_journaled() {
    let s = Setup::with(
        r#"
[[policies]]
scope = "team:platform"
name = "platform budget"
[[policies.budgets]]
period = "month"
amount_usd = 1.0
mode = "soft"
downgrade = { at_percent = 50, to_model = "claude-haiku-5-5", from_models = ["claude-opus-*"] }
"#,
    )
    .await;
    // 100k input tokens of Opus 5.5 at $4/MTok is $0.40 each: the second crosses 50%.
    let usage = [("x-mock-usage", "100000,10,0,0")];
    let body = padded_body(OPUS, 100_000, 100);
    for _ in 0..2 {
        assert_eq!(s.post(body.clone(), &usage).await.status, 200);
    }
    let r = s.post(body.clone(), &usage).await;
    assert_eq!(r.status, 200);
    let reqs = s.upstream.requests();
    let last: Value = serde_json::from_slice(&reqs.last().unwrap().body).unwrap();
    assert_eq!(last["model"], HAIKU);
    let rec = s.gw.record(&r.request_id()).await;
    assert_eq!(rec["downgraded_from"], OPUS);
    assert_eq!(rec["model"], HAIKU);
    assert_eq!(rec["policy"], "platform budget");
}

const CAP_NANOS: i64 = 1_000_000_000;
/// 10,000 input + 1,000 output tokens of Opus 5.5: $0.04 + $0.02.
const ACTUAL_NANOS: i64 = 60_000_000;

fn budget_toml(enforcement: &str, redis: Option<&str>) -> String {
    let gov = match redis {
        Some(url) => format!("[governance]\ncounters = \"redis\"\nredis_url = \"{url}\"\n"),
        None => String::new(),
    };
    format!(
        r#"{gov}
[[policies]]
scope = "org"
name = "org budget"
[[policies.budgets]]
period = "month"
amount_usd = 1.0
enforcement = "{enforcement}"
"#
    )
}

#[tokio::test]
async fn strict_budget_200_concurrent_requests_never_settle_above_the_cap() {
    let s = Setup::with(&budget_toml("strict", None)).await;
    let (admitted, total) = flood(
        &[(&s.gw, s.key.clone())],
        200,
        padded_body(OPUS, 12_000, 1000),
        Duration::from_secs(10),
    )
    .await;
    eprintln!(
        "strict: {admitted} admitted, ${:.4} settled",
        total as f64 / 1e9
    );
    assert!(admitted >= 1);
    assert!(total <= CAP_NANOS, "settled {total} > cap");
}

#[tokio::test]
async fn standard_budget_overshoot_stays_within_the_documented_bound() {
    let s = Setup::with(&budget_toml("standard", None)).await;
    let (admitted, total) = flood(
        &[(&s.gw, s.key.clone())],
        200,
        padded_body(OPUS, 12_000, 1000),
        Duration::from_secs(10),
    )
    .await;
    // Standard estimate: ceil(bytes / 4) input tokens at $4/MTok + min(max_tokens, 4096) output
    // tokens at $20/MTok.
    let bytes = padded_body(OPUS, 12_000, 1000).len() as i64;
    let estimate = (bytes + 3) / 4 * 4_000 + 1000 * 20_000;
    let bound = CAP_NANOS + admitted as i64 * (ACTUAL_NANOS - estimate).max(0);
    eprintln!(
        "standard: {admitted} admitted, ${:.4} settled, bound ${:.4}",
        total as f64 / 1e9,
        bound as f64 / 1e9
    );
    assert!(total <= bound, "settled {total} > bound {bound}");
}

#[tokio::test]
async fn a_strict_budget_holds_across_two_gateways_sharing_redis() {
    let redis = RedisServer::start();
    let upstream = ScriptedUpstream::start(UpstreamOptions::new(UPSTREAM_KEY))
        .await
        .unwrap();
    let toml = budget_toml("strict", Some(&redis.url()));
    let a = Gateway::start_with(&upstream.url(), &toml).await;
    let b = Gateway::start_with(&upstream.url(), &toml).await;
    let ka = a.create_key("alice", "platform").await;
    let kb = b.create_key("bob", "platform").await;
    let (admitted, total) = flood(
        &[(&a, ka), (&b, kb)],
        200,
        padded_body(OPUS, 12_000, 1000),
        Duration::from_secs(10),
    )
    .await;
    eprintln!(
        "two replicas strict: {admitted} admitted, ${:.4} settled",
        total as f64 / 1e9
    );
    assert!(admitted >= 1);
    assert!(
        total <= CAP_NANOS,
        "settled {total} > cap over two replicas"
    );
}

#[tokio::test]
async fn sixty_requests_per_minute_over_two_replicas_let_sixty_through_not_120() {
    let redis = RedisServer::start();
    let upstream = ScriptedUpstream::start(UpstreamOptions::new(UPSTREAM_KEY))
        .await
        .unwrap();
    let toml = format!(
        "[governance]\ncounters = \"redis\"\nredis_url = \"{}\"\n\n[[policies]]\nscope = \"org\"\nrate = {{ requests_per_minute = 60 }}\n",
        redis.url()
    );
    let a = Gateway::start_with(&upstream.url(), &toml).await;
    let b = Gateway::start_with(&upstream.url(), &toml).await;
    let ka = a.create_key("alice", "platform").await;
    let kb = b.create_key("bob", "platform").await;
    // The burst must sit in one fixed per-minute window.
    support::until_early_in_a_minute().await;
    let client = Arc::new(client());
    let mut tasks = Vec::new();
    for i in 0..150 {
        let (gw, key) = if i % 2 == 0 { (&a, &ka) } else { (&b, &kb) };
        let req = messages_request(
            &format!("{}/v1/messages", gw.url),
            key,
            simple_body(HAIKU, false),
            &[],
        );
        let c = client.clone();
        tasks.push(tokio::spawn(async move { send(&c, req).await.status }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            200 => ok += 1,
            429 => {}
            s => panic!("unexpected status {s}"),
        }
    }
    assert!((59..=61).contains(&ok), "{ok} requests let through");
}

async fn wait_until<F: Fn() -> bool>(what: &str, f: F) {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !f() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn budget_thresholds_alert_once_per_period_to_json_and_slack_webhooks_with_retries() {
    // The JSON webhook fails its first delivery; the alert must still arrive (at least once).
    let json_hook = tollgate_testkit::RecordingSink::start(&[503])
        .await
        .unwrap();
    let slack_hook = tollgate_testkit::RecordingSink::start(&[]).await.unwrap();
    let s = Setup::with(&format!(
        r#"
[alerts]
retry_base_ms = 50
[[alerts.webhooks]]
name = "ops-json"
url = "{}/hook"
[[alerts.webhooks]]
name = "ops-slack"
url = "{}/services/T000/B000/secret-token"
format = "slack"

[[policies]]
scope = "team:platform"
name = "platform spend"
[[policies.budgets]]
period = "month"
amount_usd = 1.0
mode = "soft"
alert_thresholds = [50, 80, 100]
"#,
        json_hook.url(),
        slack_hook.url()
    ))
    .await;
    // $0.40 per request: 40%, 80%, 120%, 160% of the budget.
    let usage = [("x-mock-usage", "100000,0,0,0")];
    for _ in 0..4 {
        let r = s.post(padded_body(OPUS, 100_000, 100), &usage).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    wait_until("two slack alerts", || slack_hook.received().len() >= 2).await;
    wait_until("json alerts after a retry", || {
        json_hook.received().len() >= 3
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let slack: Vec<Value> = slack_hook
        .received()
        .iter()
        .map(|(_, b)| serde_json::from_slice(b).unwrap())
        .collect();
    assert_eq!(slack.len(), 2, "one alert per threshold reached: {slack:?}");
    assert!(
        slack[0]["text"].as_str().unwrap().contains("80%"),
        "{slack:?}"
    );
    assert!(
        slack[1]["text"].as_str().unwrap().contains("100%"),
        "{slack:?}"
    );
    let json: Vec<Value> = json_hook
        .received()
        .iter()
        .map(|(_, b)| serde_json::from_slice(b).unwrap())
        .collect();
    assert_eq!(
        json.len(),
        3,
        "two alerts, the failed one sent again: {json:?}"
    );
    // Deliveries run side by side, so the retry of the first may arrive after the second.
    let mut distinct: Vec<String> = json.iter().map(Value::to_string).collect();
    distinct.sort();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        2,
        "a retry re-sends the same alert: {json:?}"
    );
    let mut thresholds: Vec<i64> = json
        .iter()
        .map(|j| j["alert"]["threshold_percent"].as_i64().unwrap())
        .collect();
    thresholds.sort();
    thresholds.dedup();
    assert_eq!(thresholds, [80, 100]);
    let alert = json
        .iter()
        .map(|j| &j["alert"])
        .find(|a| a["threshold_percent"] == 100)
        .unwrap();
    assert_eq!(alert["kind"], "threshold_crossed");
    assert_eq!(alert["policy"], "platform spend");
    assert_eq!(alert["threshold_percent"], 100);
    assert_eq!(alert["team"], "platform");

    let log = s.gw.admin_get("alerts").await;
    let rows = log["data"].as_array().unwrap();
    assert_eq!(rows.len(), 4, "{log}");
    assert!(rows.iter().all(|r| r["status"] == "delivered"), "{log}");
    let retried: Vec<&Value> = rows.iter().filter(|r| r["attempts"] == 2).collect();
    assert_eq!(retried.len(), 1, "{log}");
    assert_eq!(retried[0]["webhook"], "ops-json");
    // The Slack URL carries a secret: it is never written to the log.
    assert!(!log.to_string().contains("secret-token"));
}

#[tokio::test]
async fn a_hard_cap_block_alerts_once_however_many_requests_it_refuses() {
    let hook = tollgate_testkit::RecordingSink::start(&[]).await.unwrap();
    let s = Setup::with(&format!(
        r#"
[[alerts.webhooks]]
url = "{}/hook"

[[policies]]
scope = "user:alice"
name = "alice daily"
[[policies.budgets]]
period = "day"
amount_usd = 0.5
alert_thresholds = []
"#,
        hook.url()
    ))
    .await;
    let usage = [("x-mock-usage", "150000,0,0,0")];
    assert_eq!(
        s.post(padded_body(OPUS, 150_000, 100), &usage).await.status,
        200
    );
    for _ in 0..3 {
        let r = s.post(padded_body(OPUS, 150_000, 100), &usage).await;
        assert_eq!(r.status, 429, "{}", r.text());
    }
    if tokio::time::timeout(Duration::from_secs(5), async {
        while hook.received().is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .is_err()
    {
        panic!("no block alert; log:\n{}", s.gw.log_tail());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = hook.received();
    assert_eq!(got.len(), 1, "{got:?}");
    let v: Value = serde_json::from_slice(&got[0].1).unwrap();
    assert_eq!(v["alert"]["kind"], "hard_cap_blocked");
    assert_eq!(v["alert"]["policy"], "alice daily");
    assert_eq!(v["alert"]["user"], "alice");
}

#[tokio::test]
async fn an_administrator_sees_a_policys_spend_and_resets_it_explicitly() {
    let s = Setup::with("").await;
    let admin = |method: &'static str, path: String, body: Option<Value>| {
        let gw = &s.gw;
        async move { gw.admin_call(method, &path, body).await }
    };
    let created = admin(
        "POST",
        "policies".into(),
        Some(json!({
            "scope": "team:platform", "name": "platform daily",
            "budgets": [{"period": "day", "amount_usd": 1.0, "enforcement": "strict"}]
        })),
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.text());
    let id = created.json()["id"].as_str().unwrap().to_string();
    // $0.06 each, admitted while the worst case (about $0.12) still fits under $1.00.
    let usage_hdr = [("x-mock-usage", "10000,1000,0,0")];
    let body = padded_body(OPUS, 12_000, 1000);
    let mut served = 0;
    loop {
        let r = s.post(body.clone(), &usage_hdr).await;
        match r.status {
            200 => served += 1,
            429 => break,
            other => panic!("unexpected {other}: {}", r.text()),
        }
        assert!(served < 100, "the budget never refused");
    }
    let usage = admin("GET", format!("policies/{id}/usage"), None)
        .await
        .json();
    let b = &usage["budgets"][0];
    let settled = b["settled_usd"].as_f64().unwrap();
    assert!((settled - 0.06 * f64::from(served)).abs() < 1e-9, "{usage}");
    assert!(settled <= 1.0 && settled > 0.8, "{usage}");
    assert_eq!(b["reserved_usd"], 0.0);
    assert!(b["resets_at_unix_ms"].as_i64().is_some());

    let reset = admin("POST", format!("policies/{id}/reset"), None).await;
    assert_eq!(reset.status, 200, "{}", reset.text());
    assert_eq!(s.post(body, &usage_hdr).await.status, 200);
    let audit = s.gw.admin_get("audit").await;
    assert!(
        audit.to_string().contains("policy.reset_budgets"),
        "the reset is audited: {audit}"
    );
}

#[tokio::test]
async fn with_redis_gone_hard_budgets_fail_closed_rate_limits_go_on_and_an_alert_fires() {
    let mut redis = RedisServer::start();
    let hook = tollgate_testkit::RecordingSink::start(&[]).await.unwrap();
    let s = Setup::with(&format!(
        r#"
[governance]
counters = "redis"
redis_url = "{}"

[[alerts.webhooks]]
url = "{}/hook"

[[policies]]
scope = "team:platform"
name = "platform budget"
[[policies.budgets]]
period = "month"
amount_usd = 100.0

[[policies]]
scope = "team:ops"
name = "ops rate"
rate = {{ requests_per_minute = 2 }}
"#,
        redis.url(),
        hook.url()
    ))
    .await;
    let ops_key = s.gw.create_key("olga", "ops").await;
    let ops = |body: String| {
        let url = format!("{}/v1/messages", s.gw.url);
        let req = messages_request(&url, &ops_key, body, &[]);
        let c = s.client.clone();
        async move { send(&c, req).await }
    };
    assert_eq!(s.post(simple_body(HAIKU, false), &[]).await.status, 200);
    redis.stop();

    let r = s.post(simple_body(HAIKU, false), &[]).await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.header("x-should-retry"), Some("true"));
    assert!(
        error_of(&r).1.contains("budgets cannot be checked"),
        "{}",
        r.text()
    );
    // The rate limit goes on per replica: 2 through, the third refused.
    assert_eq!(ops(simple_body(HAIKU, false)).await.status, 200);
    assert_eq!(ops(simple_body(HAIKU, false)).await.status, 200);
    assert_eq!(ops(simple_body(HAIKU, false)).await.status, 429);

    wait_until("a store-down alert", || !hook.received().is_empty()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = hook.received();
    assert_eq!(
        got.len(),
        1,
        "one alert however many requests met the outage: {got:?}"
    );
    let v: Value = serde_json::from_slice(&got[0].1).unwrap();
    assert_eq!(v["alert"]["kind"], "counter_store_unavailable");
}

/// A gateway whose route for `model` falls back from provider `anthropic` to a second provider
/// `backup` on the same upstream, with `policies` added to its config.
async fn fallback_route_to_backup(model: &str, policies: &str) -> (ScriptedUpstream, Gateway) {
    let upstream = ScriptedUpstream::start(UpstreamOptions::new(UPSTREAM_KEY))
        .await
        .unwrap();
    let gw = Gateway::start_with(
        &upstream.url(),
        &format!(
            r#"
[[providers]]
name = "backup"
kind = "anthropic"
base_url = "{}"
api_key = "${{TG_TEST_UPSTREAM_KEY}}"

[[routes]]
name = "fallback"
match = "{model}"
strategy = "fallback"
targets = [{{ provider = "anthropic" }}, {{ provider = "backup" }}]

{policies}
"#,
            upstream.url()
        ),
    )
    .await;
    (upstream, gw)
}

/// The model and `max_tokens` of the last request the upstream received.
fn last_sent(upstream: &ScriptedUpstream) -> (Value, Value) {
    let seen: Value = serde_json::from_slice(&upstream.requests().last().unwrap().body).unwrap();
    (seen["model"].clone(), seen["max_tokens"].clone())
}

#[tokio::test]
async fn a_providers_clamp_and_downgrade_change_only_the_attempts_that_go_to_it() {
    // Team platform may only use the backup provider, whose account clamps max_tokens and, past
    // half of its budget, serves Opus as Haiku; team other reaches the first target unchanged.
    let (upstream, gw) = fallback_route_to_backup(
        OPUS,
        r#"
[[policies]]
scope = "team:platform"
name = "platform providers"
allowed_providers = ["backup"]

[[policies]]
scope = "provider:backup"
name = "backup account"
max_tokens = { ceiling = 1000 }
[[policies.budgets]]
period = "month"
amount_usd = 1.0
mode = "soft"
downgrade = { at_percent = 50, to_model = "claude-haiku-5-5", from_models = ["claude-opus-*"] }
"#,
    )
    .await;
    let platform = gw.create_key("alice", "platform").await;
    let other = gw.create_key("bob", "other").await;
    let c = client();
    let url = format!("{}/v1/messages", gw.url);
    // 100k input tokens of Opus 5.5 at $4/MTok: $0.40 a request.
    let usage = [("x-mock-usage", "100000,10,0,0")];
    let ask = |key: &str| messages_request(&url, key, padded_body(OPUS, 10, 64000), &usage);

    let r = send(&c, ask(&platform)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(last_sent(&upstream), (json!(OPUS), json!(1000)));
    let rec = gw.record(&r.request_id()).await;
    assert_eq!(rec["provider"], "backup");
    assert_eq!(rec["clamped_max_tokens_from"], 64000);
    assert_eq!(rec["downgraded_from"], Value::Null);

    let r = send(&c, ask(&other)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(last_sent(&upstream), (json!(OPUS), json!(64000)));
    let rec = gw.record(&r.request_id()).await;
    assert_eq!(rec["provider"], "anthropic");
    assert_eq!(rec["clamped_max_tokens_from"], Value::Null);

    // The first platform request spent $0.40 of the backup account's $1; the second crosses
    // half, so the third is served as Haiku there.
    assert_eq!(send(&c, ask(&platform)).await.status, 200);
    let r = send(&c, ask(&platform)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(last_sent(&upstream), (json!(HAIKU), json!(1000)));
    let rec = gw.record(&r.request_id()).await;
    assert_eq!(rec["provider"], "backup");
    assert_eq!(rec["model"], HAIKU);
    assert_eq!(rec["downgraded_from"], OPUS);
    assert_eq!(rec["policy"], "backup account");
    assert_eq!(rec["clamped_max_tokens_from"], 64000);

    // Team other still reaches the first target with its request as sent.
    let r = send(&c, ask(&other)).await;
    assert_eq!(last_sent(&upstream), (json!(OPUS), json!(64000)));
    let rec = gw.record(&r.request_id()).await;
    assert_eq!(
        (&rec["provider"], &rec["downgraded_from"]),
        (&json!("anthropic"), &Value::Null)
    );
}

#[tokio::test]
async fn a_target_pinned_to_a_model_keeps_it_under_its_providers_downgrade() {
    let upstream = ScriptedUpstream::start(UpstreamOptions::new(UPSTREAM_KEY))
        .await
        .unwrap();
    let gw = Gateway::start_with(
        &upstream.url(),
        &format!(
            r#"
[[providers]]
name = "backup"
kind = "anthropic"
base_url = "{url}"
api_key = "${{TG_TEST_UPSTREAM_KEY}}"

[[routes]]
name = "pinned"
match = "{OPUS}"
targets = [{{ provider = "backup", model = "claude-opus-4-1" }}]

[[policies]]
scope = "provider:backup"
name = "backup account"
max_tokens = {{ ceiling = 1000 }}
[[policies.budgets]]
period = "month"
amount_usd = 1.0
mode = "soft"
downgrade = {{ at_percent = 1, to_model = "claude-haiku-5-5", from_models = ["claude-opus-*"] }}
"#,
            url = upstream.url()
        ),
    )
    .await;
    let key = gw.create_key("alice", "platform").await;
    let c = client();
    let url = format!("{}/v1/messages", gw.url);
    let usage = [("x-mock-usage", "100000,10,0,0")];
    // The first spends past 1% of the account; the second would be downgraded, but its
    // target names its model, so only the clamp applies.
    for _ in 0..2 {
        let r = send(
            &c,
            messages_request(&url, &key, padded_body(OPUS, 10, 64000), &usage),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(
            last_sent(&upstream),
            (json!("claude-opus-4-1"), json!(1000))
        );
        let rec = gw.record(&r.request_id()).await;
        assert_eq!(rec["downgraded_from"], Value::Null);
        assert_eq!(rec["clamped_max_tokens_from"], 64000);
    }
}

#[tokio::test]
async fn a_provider_allow_list_steers_a_route_past_providers_it_does_not_allow() {
    let (upstream, gw) = fallback_route_to_backup(
        HAIKU,
        r#"
[[policies]]
scope = "team:platform"
name = "platform providers"
allowed_providers = ["backup"]

[[policies]]
scope = "team:closed"
name = "closed providers"
allowed_providers = ["nowhere"]
"#,
    )
    .await;
    let c = client();
    let post = |key: String| {
        let req = messages_request(
            &format!("{}/v1/messages", gw.url),
            &key,
            simple_body(HAIKU, false),
            &[],
        );
        let c = c.clone();
        async move { send(&c, req).await }
    };
    let platform = gw.create_key("alice", "platform").await;
    let r = post(platform).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let rec = gw.record(&r.request_id()).await;
    assert_eq!(rec["provider"], "backup", "{rec}");

    let closed = gw.create_key("carl", "closed").await;
    let r = post(closed).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(error_of(&r).0, "permission_error");
    assert!(error_of(&r).1.contains("closed providers"), "{}", r.text());
    assert_eq!(
        upstream.requests().len(),
        1,
        "nothing refused reached an upstream"
    );
}

#[tokio::test]
async fn a_teams_own_provider_credential_replaces_the_gateways_for_that_team_only() {
    let s = Setup::with("").await;
    let other = s.gw.create_key("olga", "ops").await;
    let post_as = |key: String| {
        let req = messages_request(
            &format!("{}/v1/messages", s.gw.url),
            &key,
            simple_body(HAIKU, false),
            &[],
        );
        let c = s.client.clone();
        async move { send(&c, req).await }
    };
    let put = |scope: &str, key: &str| {
        let body = serde_json::json!({"scope": scope, "api_key": key});
        let gw = &s.gw;
        async move {
            let r = gw
                .admin_call("PUT", "providers/anthropic/credentials", Some(body))
                .await;
            assert_eq!(r.status, 200, "{}", r.text());
        }
    };
    // An org-wide credential the upstream does not accept replaces the configured key...
    put("org", "sk-not-accepted").await;
    let r = post_as(other.clone()).await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(
        r.text().contains("refused the gateway's credentials"),
        "{}",
        r.text()
    );
    // ...while the platform team's own credential (the right one) serves its members.
    put("team:platform", UPSTREAM_KEY).await;
    let r = s.post(simple_body(HAIKU, false), &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(post_as(other.clone()).await.status, 502);
    // Removing the org credential brings the configured key back, without a restart.
    let r =
        s.gw.admin_call("DELETE", "providers/anthropic/credentials?scope=org", None)
            .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(post_as(other).await.status, 200);
}

#[tokio::test]
async fn a_provider_out_of_budget_is_skipped_like_an_unhealthy_target() {
    let (_upstream, gw) = fallback_route_to_backup(
        OPUS,
        r#"
[[policies]]
scope = "provider:anthropic"
name = "anthropic account"
[[policies.budgets]]
period = "month"
amount_usd = 0.5
"#,
    )
    .await;
    let key = gw.create_key("alice", "platform").await;
    let c = client();
    let mut served_by = Vec::new();
    for _ in 0..3 {
        // $0.40 each, reserved at a small standard estimate: the second still fits under the
        // anthropic account's $0.50, and once it settles the account is spent.
        let req = messages_request(
            &format!("{}/v1/messages", gw.url),
            &key,
            simple_body(OPUS, false),
            &[("x-mock-usage", "100000,0,0,0")],
        );
        let r = send(&c, req).await;
        assert_eq!(r.status, 200, "{}", r.text());
        served_by.push(gw.record(&r.request_id()).await["provider"].clone());
    }
    assert_eq!(served_by, ["anthropic", "anthropic", "backup"]);
}
