//! Admission at a steady 2,000 requests per second: key authentication from the identity
//! snapshot, policy lookup, every check of `admission::admit` (a strict and a standard budget, a
//! session cost cap, requests and tokens per minute, a concurrency cap, a session turn cap) and
//! the settlement afterwards. Run on the in-process store and on Redis over loopback (a
//! throwaway `redis-server`, as the tests start it).
//!
//! Latency is measured per request from authentication to an admitted decision (settlement is
//! after the response and not counted); the run prints p50 / p99 / p99.9 in microseconds.
//!
//! `cargo bench -p tollgate-govern --bench admission` (add `-- --secs N` for longer runs).

use std::sync::Arc;
use std::time::{Duration, Instant};
use tollgate_govern::admission::{Actual, Counters, Estimate, OnStoreFailure, Request, admit};
use tollgate_govern::limits::{
    Clock, CounterStore, MemoryStore, RedisConfig, RedisStore, SystemClock,
};
use tollgate_govern::policy::PolicySpec;
use tollgate_govern::policy_set::{PolicySet, RequestScope};
use tollgate_govern::{Identities, IdentitySnapshot, Principal, hash_key};
use tollgate_testkit::services::RedisServer;

const RATE: u64 = 2_000;

const POLICIES: &str = r#"
[[policies]]
scope = "org"
[[policies.budgets]]
period = "month"
amount_usd = 1000000.0
timezone = "Europe/Berlin"
[[policies]]
scope = "team:platform"
rate = { requests_per_minute = 10000000, tokens_per_minute = 10000000000 }
[[policies.budgets]]
period = "day"
amount_usd = 1000000.0
enforcement = "strict"
[[policies]]
scope = "user:u7"
rate = { concurrent = 1000 }
session = { max_cost_usd = 1000000.0, max_turns = 100000000 }
"#;

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

async fn run(name: &str, store: Arc<dyn CounterStore>, secs: u64) -> String {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let counters = Counters {
        store,
        local: Arc::new(MemoryStore::new(clock.clone())),
        on_failure: OnStoreFailure::FailClosed,
        ttl: Duration::from_secs(600),
        on_store_error: None,
    };
    #[derive(serde::Deserialize)]
    struct File {
        policies: Vec<PolicySpec>,
    }
    let file: File = toml::from_str(POLICIES).expect("policies parse");
    let set = PolicySet::new(
        file.policies
            .into_iter()
            .enumerate()
            .map(|(i, p)| (format!("bench{i}"), p)),
    );
    let keys: Vec<(String, Principal)> = (0..1000)
        .map(|i| {
            (
                format!("tg_bench_key_{i}"),
                Principal {
                    key_id: format!("key_{i}"),
                    user_id: format!("usr_{}", i % 50),
                    user: format!("u{}", i % 50),
                    team: Some("platform".into()),
                    team_id: Some("team_1".into()),
                    ..Principal::default()
                },
            )
        })
        .collect();
    let ids = Identities::new(IdentitySnapshot::new(
        keys.iter().map(|(k, p)| (hash_key(k), p.clone())),
    ));
    let estimate = |_: &str| Estimate {
        worst_nanos: Some(2_000_000),
        likely_nanos: 500_000,
        input_tokens: 30_000,
    };
    let no_repeats = |_: u32| None;
    let total = RATE * secs;
    let interval = Duration::from_nanos(1_000_000_000 / RATE);
    let mut lat = Vec::with_capacity(total as usize);
    let start = Instant::now();
    for n in 0..total {
        let due = start + interval * n as u32;
        let now = Instant::now();
        if due > now {
            tokio::time::sleep(due - now).await;
        }
        let t0 = Instant::now();
        let (key, _) = &keys[(n as usize * 7) % keys.len()];
        let principal = ids.authenticate(key).expect("known key");
        let applicable = set.applicable(&RequestScope {
            principal: &principal,
            project: None,
            model_names: &["claude-opus-5-5"],
            provider: Some("anthropic"),
        });
        let session = format!("sess-{}", n % 200);
        let admitted = admit(
            &counters,
            &Request {
                policies: &applicable,
                model_names: &["claude-opus-5-5"],
                provider: Some("anthropic"),
                session_id: Some(&session),
                body_bytes: 120_000,
                max_tokens: Some(32_000),
                estimate: &estimate,
                tool_repeats: &no_repeats,
                now: clock.now(),
                free: false,
            },
        )
        .await
        .expect("admitted");
        lat.push(t0.elapsed());
        admitted
            .holds
            .settle(
                &counters,
                Actual {
                    cost_nanos: Some(400_000),
                    tokens: 31_000,
                    reached_upstream: true,
                },
            )
            .await;
    }
    let achieved = total as f64 / start.elapsed().as_secs_f64();
    lat.sort();
    format!(
        "| {name} | {total} | {achieved:.0} | {:.1} | {:.1} | {:.1} |",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        percentile(&lat, 0.999)
    )
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let secs = args
        .iter()
        .position(|a| a == "--secs")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this as a smoke test.
    let secs = if args.iter().any(|a| a == "--bench") {
        secs
    } else {
        1
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut rows = Vec::new();
        let mem: Arc<dyn CounterStore> = Arc::new(MemoryStore::new(Arc::new(SystemClock)));
        rows.push(run("in-process", mem, secs).await);
        let redis = RedisServer::start();
        let store = RedisStore::connect(RedisConfig::new(redis.url()), Arc::new(SystemClock))
            .await
            .expect("redis store");
        rows.push(run("redis (loopback)", Arc::new(store), secs).await);
        println!("| store | admissions | per second | p50 µs | p99 µs | p99.9 µs |");
        println!("| --- | --- | --- | --- | --- | --- |");
        for r in rows {
            println!("{r}");
        }
    });
}
