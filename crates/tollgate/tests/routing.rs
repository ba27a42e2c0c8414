//! Routing end to end: a real gateway process whose routes point at `simulator` providers,
//! with faults injected and changed while it runs (through each simulator's control file).
//!
//! The figures these tests print (`cargo test -p tollgate --test routing -- --nocapture`) are
//! the ones quoted in the changelog and the docs.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{
    Gateway, HttpClient, Reply, TempDir, client, closed_port_url, messages_request, send,
    simple_body,
};
use tollgate_ledger::{PriceTable, price};
use tollgate_wire::Usage;

const SONNET: &str = "claude-sonnet-4-5";

/// A gateway plus the files that steer its simulators.
struct Rig {
    gw: Gateway,
    key: String,
    client: HttpClient,
    dir: TempDir,
}

impl Rig {
    /// A gateway with `toml` appended to its config; `{dir}` in it is replaced by a directory
    /// for control files.
    async fn start(toml: &str) -> Rig {
        let dir = TempDir::new("routing");
        let toml = toml.replace("{dir}", &dir.path().display().to_string());
        let gw = Gateway::start_with(&closed_port_url(), &toml).await;
        let key = gw.create_key("alice", "platform").await;
        Rig {
            gw,
            key,
            client: client(),
            dir,
        }
    }

    fn control(&self, sim: &str) -> PathBuf {
        self.dir.path().join(format!("{sim}.toml"))
    }

    /// Changes a simulator's settings and waits until the gateway can have seen it.
    async fn steer(&self, sim: &str, settings: &str) {
        std::fs::write(self.control(sim), settings).unwrap();
        tokio::time::sleep(Duration::from_millis(120)).await;
    }

    fn url(&self) -> String {
        format!("{}/v1/messages", self.gw.url)
    }

    async fn ask(&self, body: impl Into<bytes::Bytes>, headers: &[(&str, &str)]) -> Reply {
        self.ask_as(&self.key, body, headers).await
    }

    async fn ask_as(
        &self,
        key: &str,
        body: impl Into<bytes::Bytes>,
        headers: &[(&str, &str)],
    ) -> Reply {
        send(
            &self.client,
            messages_request(&self.url(), key, body, headers),
        )
        .await
    }
}

/// A `[[providers]]` simulator entry whose control file lives in the rig's directory.
fn sim(name: &str, settings: &str) -> String {
    format!(
        "[[providers]]\nname = \"{name}\"\nkind = \"simulator\"\ncontrol_file = \"{{dir}}/{name}.toml\"\n{settings}\n"
    )
}

/// Which simulator answered: its name is in the `request-id` it sends (`req_sim_NAME_N`).
fn served_by(reply: &Reply) -> String {
    let rid = reply.header("request-id").unwrap_or_default();
    let rest = rid.strip_prefix("req_sim_").unwrap_or(rid);
    rest.rsplit_once('_').map_or(rest, |(n, _)| n).to_string()
}

fn attempts(rec: &Value) -> Vec<(String, Option<u64>, String)> {
    rec["attempts"]
        .as_array()
        .unwrap_or_else(|| panic!("no attempts in {rec}"))
        .iter()
        .map(|a| {
            (
                a["provider"].as_str().unwrap().to_string(),
                a["status"].as_u64(),
                a["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_requests_through_a_failing_primary_see_no_failure() {
    let rig = Rig::start(&format!(
        "{}{}{}",
        sim(
            "primary",
            "errors = { \"529\" = 0.2, \"500\" = 0.1 }\nretry_after = 1"
        ),
        sim("backup", ""),
        r#"
# Fallback is under test here; the breaker has its own test.
[routing]
breaker_failures = 50

[[routes]]
name = "sonnet"
match = "claude-sonnet-4-5"
targets = [{ provider = "primary" }, { provider = "backup" }]
"#
    ))
    .await;
    let rig = Arc::new(rig);
    let n = 10_000;
    let concurrency = 64;
    let started = Instant::now();
    let sem = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let permit = sem.clone().acquire_owned().await.unwrap();
        let rig = rig.clone();
        // One request in four streams; a stream counts only if it ends with message_stop.
        let stream = i % 4 == 0;
        tasks.push(tokio::spawn(async move {
            let reply = rig.ask(simple_body(SONNET, stream), &[]).await;
            drop(permit);
            let status = if stream && !reply.complete_stream() {
                0
            } else {
                reply.status
            };
            (status, served_by(&reply), reply.request_id())
        }));
    }
    let mut statuses: HashMap<u16, usize> = HashMap::new();
    let mut served: HashMap<String, usize> = HashMap::new();
    let mut ids = Vec::new();
    for t in tasks {
        let (status, by, id) = t.await.unwrap();
        *statuses.entry(status).or_default() += 1;
        *served.entry(by).or_default() += 1;
        ids.push(id);
    }
    let elapsed = started.elapsed();
    println!(
        "fault injection: {n} requests (1 in 4 streaming), {concurrency} concurrent, primary 20% 529 + 10% 500: statuses {statuses:?}, served by {served:?}, {:.1} s ({:.0} req/s)",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(
        statuses.get(&200),
        Some(&n),
        "client-visible failures: {statuses:?}"
    );
    assert!(served["primary"] > n / 2, "{served:?}");

    // The journal shows the attempts behind each answer (the newest records are sampled).
    let ids = ids.split_off(n - 200);
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let logs = rig.gw.logs_with(&refs, Duration::from_secs(20)).await;
    let mut fell_back = 0;
    for rec in logs.iter().filter(|r| ids.iter().any(|i| r["id"] == *i)) {
        assert_eq!(rec["route"], "sonnet", "{rec}");
        let a = attempts(rec);
        assert!(!a.is_empty(), "{rec}");
        assert_eq!(a.last().unwrap().1, Some(200), "{rec}");
        assert_eq!(rec["provider"], a.last().unwrap().0.as_str(), "{rec}");
        if a.len() > 1 {
            fell_back += 1;
            assert!(matches!(a[0].1, Some(529 | 500)), "{rec}");
            assert_eq!(a[1].2, "fallback", "{rec}");
        }
    }
    assert!(fell_back > 0, "no fallback among the sampled records");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_waited_for_before_retrying_the_same_target() {
    let rig = Rig::start(&format!(
        "{}{}",
        sim("only", "errors = { \"529\" = 1.0 }\nretry_after = 2"),
        r#"
[[routes]]
name = "single"
match = "claude-sonnet-4-5"
targets = [{ provider = "only" }]
retry = { retries = 1, backoff_base_ms = 10, backoff_max_ms = 10 }
"#
    ))
    .await;
    let started = Instant::now();
    let pending = {
        let rig = &rig;
        async move { rig.ask(simple_body(SONNET, false), &[]).await }
    };
    let heal = async {
        // The first attempt has failed by now; the retry comes after the 2 s retry-after.
        tokio::time::sleep(Duration::from_millis(600)).await;
        rig.steer("only", "errors = {}").await;
    };
    let (reply, ()) = tokio::join!(pending, heal);
    let waited = started.elapsed();
    println!(
        "retry-after 2 s: answered after {:.2} s",
        waited.as_secs_f64()
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(waited >= Duration::from_secs(2), "{waited:?}");
    assert!(waited < Duration::from_millis(3500), "{waited:?}");
    let rec = rig.gw.record(&reply.request_id()).await;
    let a = attempts(&rec);
    assert_eq!(
        a,
        [
            ("only".to_string(), Some(529), "first".to_string()),
            ("only".to_string(), Some(200), "retry".to_string())
        ],
        "{rec}"
    );
    assert!(
        rec["attempts"][1]["waited_ms"].as_f64().unwrap() >= 1_900.0,
        "{rec}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breaker_opens_after_failures_and_closes_after_a_probe() {
    let rig = Rig::start(&format!(
        "{}{}{}",
        sim("flaky", "errors = { \"500\" = 1.0 }"),
        sim("steady", ""),
        r#"
[routing]
breaker_failures = 3
breaker_open_ms = 1000

[[routes]]
name = "guarded"
match = "claude-sonnet-4-5"
targets = [{ provider = "flaky" }, { provider = "steady" }]
"#
    ))
    .await;
    // Sent back to back: the breaker stays open for a second, longer than this takes.
    let mut ids = Vec::new();
    for _ in 0..5 {
        let reply = rig.ask(simple_body(SONNET, false), &[]).await;
        assert_eq!(reply.status, 200);
        ids.push(reply.request_id());
    }
    let mut plans = Vec::new();
    for id in &ids {
        let rec = rig.gw.record(id).await;
        plans.push(
            attempts(&rec)
                .into_iter()
                .map(|(p, s, _)| (p, s))
                .collect::<Vec<_>>(),
        );
    }
    let flaky_then_steady = vec![
        ("flaky".to_string(), Some(500)),
        ("steady".to_string(), Some(200)),
    ];
    let steady_only = vec![("steady".to_string(), Some(200))];
    assert_eq!(
        plans,
        [
            flaky_then_steady.clone(),
            flaky_then_steady.clone(),
            flaky_then_steady,
            steady_only.clone(),
            steady_only
        ],
        "three failures open the breaker; then the flaky target is skipped"
    );

    rig.steer("flaky", "errors = {}").await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let probe = rig.ask(simple_body(SONNET, false), &[]).await;
    assert_eq!(
        served_by(&probe),
        "flaky",
        "the half-open breaker lets one probe through"
    );
    for _ in 0..3 {
        let reply = rig.ask(simple_body(SONNET, false), &[]).await;
        assert_eq!(
            served_by(&reply),
            "flaky",
            "the successful probe closed the breaker"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn midstream_drop_reaches_the_client_as_an_error_event_with_partial_usage() {
    let rig = Rig::start(&format!(
        "{}{}",
        sim(
            "cutter",
            "midstream_drop_rate = 1.0\noutput_tokens = 200\ntokens_per_second = 5000"
        ),
        r#"
[[routes]]
name = "once"
match = "claude-sonnet-4-5"
targets = [{ provider = "cutter" }]
retry = { retries = 0 }
"#
    ))
    .await;
    let reply = rig.ask(simple_body(SONNET, true), &[]).await;
    assert_eq!(reply.status, 200);
    let names: Vec<String> = reply.events().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names.first().map(String::as_str),
        Some("message_start"),
        "{names:?}"
    );
    assert_eq!(names.last().map(String::as_str), Some("error"), "{names:?}");
    assert!(!names.contains(&"message_stop".to_string()), "{names:?}");
    let rec = rig.gw.record(&reply.request_id()).await;
    assert_eq!(rec["error_type"], "api_error", "{rec}");
    assert!(
        rec["input_tokens"].as_u64().unwrap() > 0,
        "partial usage kept: {rec}"
    );
    assert_eq!(rec["route"], "once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_that_stall_or_fail_before_content_are_replaced_unseen() {
    let rig = Rig::start(&format!(
        "{}{}{}",
        sim("stalls", "stall_rate = 1.0\nstall_ms = 5000"),
        sim("fine", ""),
        r#"
[[routes]]
name = "s"
match = "claude-sonnet-4-5"
targets = [{ provider = "stalls" }, { provider = "fine" }]
timeouts = { ttfb_ms = 400 }
"#
    ))
    .await;
    let started = Instant::now();
    let reply = rig.ask(simple_body(SONNET, true), &[]).await;
    assert!(reply.complete_stream(), "{}", reply.text());
    assert_eq!(served_by(&reply), "fine");
    assert!(started.elapsed() < Duration::from_secs(3));
    let starts = reply
        .events()
        .iter()
        .filter(|(n, _)| n == "message_start")
        .count();
    assert_eq!(
        starts, 1,
        "the stalled stream's events never reached the client"
    );
    let rec = rig.gw.record(&reply.request_id()).await;
    let a = attempts(&rec);
    assert_eq!(a.len(), 2, "{rec}");
    assert_eq!(a[0].0, "stalls");
    assert!(
        rec["attempts"][0]["error"]
            .as_str()
            .unwrap()
            .contains("no content"),
        "{rec}"
    );

    // A target that does not answer within the time to first byte is replaced too.
    rig.steer("stalls", "stall_rate = 0.0\nttfb_ms = 3000")
        .await;
    let reply = rig.ask(simple_body(SONNET, false), &[]).await;
    assert_eq!(reply.status, 200);
    assert_eq!(served_by(&reply), "fine");
    let rec = rig.gw.record(&reply.request_id()).await;
    assert!(
        rec["attempts"][0]["error"]
            .as_str()
            .unwrap()
            .contains("sent no response within 400 ms"),
        "{rec}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_latency_moves_traffic_away_from_a_target_that_slowed_down() {
    let rig = Rig::start(&format!(
        "{}{}{}",
        sim("east", "ttfb_ms = 5"),
        sim("west", "ttfb_ms = 5"),
        r#"
[routing]
latency_stale_ms = 60000

[[routes]]
name = "fast"
match = "claude-sonnet-4-5"
strategy = "least_latency"
targets = [{ provider = "east" }, { provider = "west" }]
"#
    ))
    .await;
    let mut before: HashMap<String, usize> = HashMap::new();
    for _ in 0..40 {
        let r = rig.ask(simple_body(SONNET, false), &[]).await;
        *before.entry(served_by(&r)).or_default() += 1;
    }
    rig.steer("west", "ttfb_ms = 150").await;
    let mut after: HashMap<String, usize> = HashMap::new();
    for i in 0..60 {
        let r = rig.ask(simple_body(SONNET, false), &[]).await;
        // The first requests after the change measure it.
        if i >= 20 {
            *after.entry(served_by(&r)).or_default() += 1;
        }
    }
    println!("least_latency: equal targets {before:?}; after west slowed to 150 ms {after:?}");
    assert!(
        before.get("west").copied().unwrap_or(0) >= 8,
        "equal targets share: {before:?}"
    );
    assert!(
        after.get("west").copied().unwrap_or(0) <= 1,
        "the slow target is avoided: {after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditions_route_by_team_and_by_header() {
    let rig = Rig::start(&format!(
        "{}{}{}{}",
        sim("general", ""),
        sim("research", ""),
        sim("staging", ""),
        r#"
[[routes]]
name = "by-caller"
match = "claude-sonnet-4-5"
targets = [{ provider = "general" }]
  [[routes.branches]]
  when = { team = "research" }
  targets = [{ provider = "research" }]
  [[routes.branches]]
  when = { header = { "x-env" = "staging" } }
  targets = [{ provider = "staging" }]
"#
    ))
    .await;
    let researcher = rig.gw.create_key("bob", "research").await;
    let body = || simple_body(SONNET, false);
    assert_eq!(served_by(&rig.ask(body(), &[]).await), "general");
    assert_eq!(
        served_by(&rig.ask_as(&researcher, body(), &[]).await),
        "research"
    );
    assert_eq!(
        served_by(&rig.ask(body(), &[("x-env", "staging")]).await),
        "staging"
    );
    assert_eq!(
        served_by(
            &rig.ask_as(&researcher, body(), &[("x-env", "staging")])
                .await
        ),
        "research",
        "the first branch that matches wins"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_route_is_a_404_in_the_clients_dialect() {
    let rig = Rig::start(&format!(
        "{}[[routes]]\nname = \"r\"\ntargets = [{{ provider = \"s\" }}]\n",
        sim("s", "")
    ))
    .await;
    let reply = rig
        .ask(simple_body(SONNET, false), &[("x-tollgate-route", "nope")])
        .await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.json()["error"]["type"], "not_found_error");
    assert!(reply.text().contains("route 'nope'"), "{}", reply.text());
    assert_eq!(reply.header("x-should-retry"), Some("false"));
    let openai = send(
        &rig.client,
        messages_request(
            &format!("{}/v1/chat/completions", rig.gw.url),
            &rig.key,
            format!(r#"{{"model":"{SONNET}","messages":[{{"role":"user","content":"hi"}}]}}"#),
            &[("x-tollgate-route", "nope")],
        ),
    )
    .await;
    assert_eq!(openai.status, 404);
    assert_eq!(
        openai.json()["error"]["type"],
        "not_found_error",
        "{}",
        openai.text()
    );
    // By name, a route without a matching model still serves.
    let ok = rig
        .ask(
            simple_body("any-model", false),
            &[("x-tollgate-route", "r")],
        )
        .await;
    assert_eq!((ok.status, served_by(&ok)), (200, "s".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_routing_or_journal_configuration_stops_the_gateway_with_a_clear_error() {
    let cases = [
        (
            "[[routes]]\nname = \"r\"\ntargets = [{ provider = \"missing\" }]\n",
            "route 'r': provider 'missing' is not configured",
        ),
        (
            "[[routes]]\nname = \"r\"\nfallback_on = [404]\ntargets = [{ provider = \"anthropic\" }]\n",
            "fallback_on: 404 means the request itself is wrong",
        ),
        (
            "[[routes]]\nname = \"r\"\nstrategy = \"round_robin\"\ntargets = [{ provider = \"anthropic\" }]\n",
            "unknown variant `round_robin`",
        ),
        (
            "[[providers]]\nname = \"s\"\nkind = \"simulator\"\nerrors = { \"529\" = 1.5 }\n",
            "provider 's' (simulator): errors.529 must be between 0 and 1",
        ),
        (
            "[journal]\ncommit_interval_ms = 0\n",
            "[journal] commit_interval_ms must be between 1 and 10000, not 0",
        ),
    ];
    for (toml, want) in cases {
        let dir = TempDir::new("badroute");
        let config = dir.path().join("tollgate.toml");
        std::fs::write(
            &config,
            format!(
                "[[providers]]\nname = \"anthropic\"\nkind = \"anthropic\"\napi_key = \"k\"\n\n{toml}"
            ),
        )
        .unwrap();
        let out = tokio::time::timeout(
            Duration::from_secs(20),
            tokio::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
                .args(["serve", "--listen", "127.0.0.1:0", "--config"])
                .arg(&config)
                .arg("--data-dir")
                .arg(dir.path().join("data"))
                .env_remove("ANTHROPIC_API_KEY")
                .kill_on_drop(true)
                .output(),
        )
        .await
        .expect("the gateway exits")
        .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{toml}: started anyway");
        assert!(stderr.contains(want), "{toml}: stderr says {stderr}");
    }
}

/// One conversation turn: a long cached system prompt and a history growing by one exchange
/// per turn, the last message marked as a cache breakpoint, as Claude Code sends them.
fn turn_body(turn: usize) -> String {
    let system = "You are a coding agent. ".repeat(800);
    let mut messages = Vec::new();
    for t in 0..turn {
        messages.push(serde_json::json!({"role": "user", "content": format!("step {t}: {}", "look at the code ".repeat(40))}));
        messages.push(
            serde_json::json!({"role": "assistant", "content": format!("done with step {t}")}),
        );
    }
    messages.push(serde_json::json!({"role": "user", "content": [
        {"type": "text", "text": format!("step {turn}: continue"), "cache_control": {"type": "ephemeral"}}
    ]}));
    serde_json::json!({
        "model": SONNET,
        "max_tokens": 1024,
        "system": [{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}],
        "messages": messages,
    })
    .to_string()
}

struct AffinityRun {
    same_target_share: f64,
    cache_read_share: f64,
    cost_usd: f64,
}

async fn affinity_run(rig: &Arc<Rig>, label: &str, route: &str) -> AffinityRun {
    let sessions = 50;
    let turns = 20;
    let table = PriceTable::builtin();
    let mut tasks = Vec::new();
    for s in 0..sessions {
        let rig = rig.clone();
        let session = format!("{label}-session-{s:02}");
        let route = route.to_string();
        tasks.push(tokio::spawn(async move {
            let mut targets = Vec::new();
            let mut usage = Vec::new();
            for t in 0..turns {
                let reply = rig
                    .ask(
                        turn_body(t),
                        &[
                            ("x-claude-code-session-id", session.as_str()),
                            ("x-tollgate-route", route.as_str()),
                            ("x-tollgate-project", route.as_str()),
                        ],
                    )
                    .await;
                assert_eq!(reply.status, 200, "{}", reply.text());
                targets.push(served_by(&reply));
                let u = &reply.json()["usage"];
                usage.push(Usage {
                    input_tokens: u["input_tokens"].as_u64().unwrap(),
                    output_tokens: u["output_tokens"].as_u64().unwrap(),
                    cache_creation_input_tokens: u["cache_creation_input_tokens"].as_u64().unwrap(),
                    cache_read_input_tokens: u["cache_read_input_tokens"].as_u64().unwrap(),
                    ..Default::default()
                });
            }
            (targets, usage)
        }));
    }
    let (mut same, mut later_turns, mut read, mut input, mut nanos) = (0, 0, 0u64, 0u64, 0i64);
    for t in tasks {
        let (targets, usage) = t.await.unwrap();
        same += targets[1..].iter().filter(|x| **x == targets[0]).count();
        later_turns += targets.len() - 1;
        for u in &usage {
            read += u.cache_read_input_tokens;
            input += u.total_input_tokens();
            nanos += price(&table, SONNET, u).known().unwrap().0;
        }
    }
    AffinityRun {
        same_target_share: same as f64 / later_turns as f64,
        cache_read_share: read as f64 / input as f64,
        cost_usd: nanos as f64 / 1e9,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_affinity_keeps_sessions_on_their_cache() {
    let rig = Arc::new(
        Rig::start(&format!(
            "{}{}{}",
            sim("cache-a", ""),
            sim("cache-b", ""),
            r#"
[[routes]]
name = "sticky"
strategy = "weighted"
targets = [{ provider = "cache-a" }, { provider = "cache-b" }]

[[routes]]
name = "spread"
strategy = "weighted"
affinity = "none"
targets = [{ provider = "cache-a" }, { provider = "cache-b" }]
"#
        ))
        .await,
    );
    let with = affinity_run(&rig, "with", "sticky").await;
    let without = affinity_run(&rig, "without", "spread").await;
    println!(
        "affinity, 50 sessions x 20 turns on two equal simulators:\n  affinity=session: {:.1}% of later turns on the first target, cache reads {:.1}% of input tokens, ${:.4}\n  affinity=none:    {:.1}% of later turns on the first target, cache reads {:.1}% of input tokens, ${:.4}\n  affinity saves {:.1}% of the cost",
        with.same_target_share * 100.0,
        with.cache_read_share * 100.0,
        with.cost_usd,
        without.same_target_share * 100.0,
        without.cache_read_share * 100.0,
        without.cost_usd,
        (1.0 - with.cost_usd / without.cost_usd) * 100.0,
    );
    assert!(with.same_target_share >= 0.95, "{}", with.same_target_share);
    assert!(
        (0.35..0.65).contains(&without.same_target_share),
        "{}",
        without.same_target_share
    );
    assert!(with.cache_read_share > without.cache_read_share);
    assert!(with.cost_usd < without.cost_usd);

    // The gateway's own accounting agrees: spend per project (one project per run), once
    // every record has reached the queryable journal.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (journal_with, journal_without) = loop {
        let rows = rig.gw.admin(&["spend", "--by", "project"]).await;
        let row = |p: &str| {
            rows.as_array()
                .unwrap()
                .iter()
                .find(|r| r["group"] == p)
                .map(|r| {
                    (
                        r["requests"].as_u64().unwrap(),
                        r["cost_nanos"].as_i64().unwrap() as f64 / 1e9,
                    )
                })
                .unwrap_or((0, 0.0))
        };
        let (w, wo) = (row("sticky"), row("spread"));
        if w.0 == 1000 && wo.0 == 1000 {
            break (w.1, wo.1);
        }
        assert!(Instant::now() < deadline, "journal incomplete: {rows}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!("  journal spend: sticky ${journal_with:.4}, spread ${journal_without:.4}");
    assert!((journal_with - with.cost_usd).abs() < 1e-6);
    assert!((journal_without - without.cost_usd).abs() < 1e-6);

    // Affinity is on record.
    for (session, route, affinity) in [
        ("with-session-00", "sticky", true),
        ("without-session-00", "spread", false),
    ] {
        let out = rig
            .gw
            .cli(&["logs", "--session", session, "--limit", "1"])
            .await;
        let rec: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
        assert_eq!(rec["route"], route, "{rec}");
        assert_eq!(rec["affinity"], affinity, "{rec}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_cannot_take_the_request_passes_it_on() {
    let rig = Rig::start(&format!(
        "{}{}",
        sim("counter", ""),
        r#"
[[providers]]
name = "bedrock"
kind = "bedrock"
region = "us-east-1"
access_key_id = "AKIDEXAMPLE"
secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
endpoint = "http://127.0.0.1:9"

[[models]]
name = "claude-sonnet-4-5"
providers = { bedrock = "us.anthropic.claude-sonnet-4-5-20250929-v1:0", counter = "claude-sonnet-4-5" }

[[models]]
name = "claude-haiku-4-5"
providers = { counter = "claude-haiku-4-5" }

[[routes]]
name = "r"
match = ["claude-sonnet-4-5", "claude-haiku-4-5"]
targets = [{ provider = "bedrock" }, { provider = "counter" }]
"#
    ))
    .await;
    // Bedrock offers no count_tokens: the simulator counts instead, and Bedrock's breaker is
    // not charged for it.
    let reply = send(
        &rig.client,
        messages_request(
            &format!("{}/v1/messages/count_tokens", rig.gw.url),
            &rig.key,
            format!(r#"{{"model":"{SONNET}","messages":[{{"role":"user","content":"hi"}}]}}"#),
            &[],
        ),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(reply.json()["input_tokens"].as_u64().unwrap() > 0);
    let rec = rig.gw.record(&reply.request_id()).await;
    let a = attempts(&rec);
    assert_eq!(a[0].0, "bedrock", "{rec}");
    assert!(
        rec["attempts"][0]["error"]
            .as_str()
            .unwrap()
            .contains("count_tokens is not offered"),
        "{rec}"
    );
    assert_eq!(
        a[1],
        ("counter".into(), Some(200), "fallback".into()),
        "{rec}"
    );

    // A model the first target does not serve (per [[models]]) goes to one that does.
    let reply = rig.ask(simple_body("claude-haiku-4-5", false), &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(served_by(&reply), "counter");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_clients_are_served_by_the_fallback_in_their_dialect() {
    let rig = Rig::start(&format!(
        "{}{}{}",
        sim("stalls", "stall_rate = 1.0\nstall_ms = 5000"),
        sim("fine", "output_tokens = 12"),
        r#"
[[routes]]
name = "s"
match = "claude-sonnet-4-5"
targets = [{ provider = "stalls" }, { provider = "fine" }]
timeouts = { ttfb_ms = 300 }
"#
    ))
    .await;
    let chat = |stream: bool| {
        send(
            &rig.client,
            messages_request(
                &format!("{}/v1/chat/completions", rig.gw.url),
                &rig.key,
                format!(
                    r#"{{"model":"{SONNET}","stream":{stream},"stream_options":{{"include_usage":true}},"messages":[{{"role":"user","content":"hi"}}]}}"#
                ),
                &[],
            ),
        )
    };
    let reply = chat(true).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let text = reply.text();
    assert!(text.contains("chat.completion.chunk"), "{text}");
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    assert!(
        text.contains("simulated"),
        "the fallback's words arrive: {text}"
    );
    let rec = rig.gw.record(&reply.request_id()).await;
    let a = attempts(&rec);
    assert_eq!(
        a.iter().map(|x| x.0.as_str()).collect::<Vec<_>>(),
        ["stalls", "fine"],
        "{rec}"
    );
    assert_eq!(rec["output_tokens"], 12, "{rec}");

    let reply = chat(false).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        reply.json()["object"],
        "chat.completion",
        "{}",
        reply.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_leaving_during_a_backoff_is_journaled_with_its_attempts() {
    let rig = Rig::start(&format!(
        "{}{}",
        sim("busy", "errors = { \"429\" = 1.0 }\nretry_after = 5"),
        r#"
[[routes]]
name = "patient"
match = "claude-sonnet-4-5"
targets = [{ provider = "busy" }]
retry = { retries = 1 }
"#
    ))
    .await;
    let gave_up = tokio::time::timeout(
        Duration::from_millis(600),
        rig.ask(simple_body(SONNET, false), &[]),
    )
    .await;
    assert!(gave_up.is_err(), "the gateway waits out retry-after");
    let deadline = Instant::now() + Duration::from_secs(10);
    let rec = loop {
        let logs = rig.gw.logs().await;
        if let Some(r) = logs.into_iter().find(|r| r["route"] == "patient") {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "no record of the abandoned request"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(rec["status"], 499, "{rec}");
    assert_eq!(rec["error_type"], "client_closed_request", "{rec}");
    assert_eq!(
        attempts(&rec),
        [("busy".to_string(), Some(429), "first".to_string())],
        "{rec}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_target_is_skipped_at_connect() {
    // The rig's `anthropic` provider points at a port where nothing listens.
    let rig = Rig::start(&format!(
        "{}{}",
        sim("reachable", ""),
        r#"
[[routes]]
name = "r"
match = "claude-sonnet-4-5"
targets = [{ provider = "anthropic" }, { provider = "reachable" }]
timeouts = { connect_ms = 500 }
"#
    ))
    .await;
    for stream in [false, true] {
        let reply = rig.ask(simple_body(SONNET, stream), &[]).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(served_by(&reply), "reachable");
        let rec = rig.gw.record(&reply.request_id()).await;
        let a = attempts(&rec);
        assert_eq!(a[0], ("anthropic".into(), None, "first".into()), "{rec}");
        assert!(
            rec["attempts"][0]["error"]
                .as_str()
                .unwrap()
                .contains("could not be reached"),
            "{rec}"
        );
        assert_eq!(
            a[1],
            ("reachable".into(), Some(200), "fallback".into()),
            "{rec}"
        );
    }
}
