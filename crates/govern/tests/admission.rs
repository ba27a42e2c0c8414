//! Admission over real counters with an injected clock: budgets reset at their period boundary
//! in the policy's time zone, refusals give back what they held, and a store outage fails
//! closed for hard budgets while rate limits fall back to local counting.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;
use tollgate_govern::Principal;
use tollgate_govern::admission::{
    Actual, Admitted, Counters, Estimate, OnStoreFailure, Refusal, Request, admit,
};
use tollgate_govern::limits::{
    Clock, CounterStore, ManualClock, MemoryStore, RedisConfig, RedisStore, UnixMs,
};
use tollgate_govern::policy::PolicySpec;
use tollgate_govern::policy_set::{CompiledPolicy, PolicySet, RequestScope};
use tollgate_testkit::services::RedisServer;

const DOLLAR: i64 = 1_000_000_000;

fn counters(store: Arc<dyn CounterStore>, clock: Arc<dyn Clock>) -> Counters {
    Counters {
        store,
        local: Arc::new(MemoryStore::new(clock)),
        on_failure: OnStoreFailure::FailClosed,
        ttl: Duration::from_secs(600),
        on_store_error: None,
    }
}

fn policies(toml_src: &str) -> Vec<Arc<CompiledPolicy>> {
    #[derive(serde::Deserialize)]
    struct File {
        policies: Vec<PolicySpec>,
    }
    let f: File = toml::from_str(toml_src).unwrap();
    let set = PolicySet::new(
        f.policies
            .into_iter()
            .enumerate()
            .map(|(i, p)| (format!("p{i}"), p)),
    );
    let alice = Principal {
        user: "alice".into(),
        user_id: "usr_1".into(),
        team: Some("platform".into()),
        key_id: "key_1".into(),
        ..Principal::default()
    };
    set.applicable(&RequestScope {
        principal: &alice,
        project: None,
        model_names: &["claude-opus-5-5"],
        provider: Some("anthropic"),
    })
}

fn flat(cost: i64) -> impl Fn(&str) -> Estimate + Sync {
    move |_| Estimate {
        worst_nanos: Some(cost),
        likely_nanos: cost,
        input_tokens: 100,
    }
}

fn no_repeats(_: u32) -> Option<(String, u32)> {
    None
}

async fn try_admit(
    c: &Counters,
    p: &[Arc<CompiledPolicy>],
    est: &(dyn Fn(&str) -> Estimate + Sync),
    now: UnixMs,
) -> Result<Admitted, Refusal> {
    admit(
        c,
        &Request {
            policies: p,
            model_names: &["claude-opus-5-5"],
            provider: Some("anthropic"),
            session_id: None,
            body_bytes: 1000,
            max_tokens: Some(1000),
            estimate: est,
            tool_repeats: &no_repeats,
            now,
            free: false,
        },
    )
    .await
}

async fn spend(
    c: &Counters,
    p: &[Arc<CompiledPolicy>],
    cost: i64,
    now: UnixMs,
) -> Result<(), Refusal> {
    let est = flat(cost);
    let a = try_admit(c, p, &est, now).await?;
    a.holds
        .settle(
            c,
            Actual {
                cost_nanos: Some(cost),
                tokens: 0,
                reached_upstream: true,
            },
        )
        .await;
    Ok(())
}

/// 2026-03-15 22:30 UTC = 23:30 in Berlin (CET): half an hour before the local day ends.
const BERLIN_2330: i64 = 1_773_613_800_000;

#[tokio::test]
async fn a_daily_budget_resets_at_local_midnight_of_its_time_zone() {
    let clock = Arc::new(ManualClock::new(UnixMs(BERLIN_2330)));
    let c = counters(Arc::new(MemoryStore::new(clock.clone())), clock.clone());
    let p = policies(
        r#"
[[policies]]
scope = "team:platform"
[[policies.budgets]]
period = "day"
amount_usd = 1.0
timezone = "Europe/Berlin"
"#,
    );
    spend(&c, &p, DOLLAR, clock.now()).await.unwrap();
    let refused = spend(&c, &p, 1, clock.now()).await.unwrap_err();
    let Refusal::Budget { resets_at, .. } = refused else {
        panic!("expected a budget refusal, got {refused:?}")
    };
    // Midnight in Berlin is 23:00 UTC.
    assert_eq!(resets_at, Some(UnixMs(BERLIN_2330 + 30 * 60_000)));
    clock.advance(Duration::from_secs(29 * 60));
    assert!(
        spend(&c, &p, 1, clock.now()).await.is_err(),
        "23:59 local is still the same day"
    );
    clock.advance(Duration::from_secs(60));
    spend(&c, &p, DOLLAR, clock.now()).await.unwrap();
}

#[tokio::test]
async fn a_monthly_budget_resets_on_the_first_in_its_time_zone_not_in_utc() {
    // 2026-03-31 23:30 UTC is already April 1st in Tokyo (+09:00) but not in New York.
    let end_of_march_utc = UnixMs(1_774_999_800_000);
    let clock = Arc::new(ManualClock::new(UnixMs(end_of_march_utc.0 - 86_400_000)));
    let c = counters(Arc::new(MemoryStore::new(clock.clone())), clock.clone());
    let p = policies(
        r#"
[[policies]]
scope = "org"
[[policies.budgets]]
period = "month"
amount_usd = 1.0
timezone = "Asia/Tokyo"
[[policies]]
scope = "user:alice"
[[policies.budgets]]
period = "month"
amount_usd = 5.0
timezone = "America/New_York"
"#,
    );
    spend(&c, &p, DOLLAR, clock.now()).await.unwrap();
    assert!(spend(&c, &p, 1, clock.now()).await.is_err());
    clock.set(end_of_march_utc);
    // Tokyo's month turned; New York's did not, and its $5 still has room.
    spend(&c, &p, DOLLAR, clock.now()).await.unwrap();
}

#[tokio::test]
async fn a_refusal_gives_back_what_earlier_checks_took() {
    let clock = Arc::new(ManualClock::new(UnixMs(BERLIN_2330)));
    let c = counters(Arc::new(MemoryStore::new(clock.clone())), clock.clone());
    let p = policies(
        r#"
[[policies]]
scope = "org"
rate = { concurrent = 1 }
[[policies]]
scope = "user:alice"
[[policies.budgets]]
period = "total"
amount_usd = 0.5
"#,
    );
    let big = flat(DOLLAR);
    assert!(matches!(
        try_admit(&c, &p, &big, clock.now()).await,
        Err(Refusal::Budget { .. })
    ));
    // The concurrency slot taken before the budget refused is free again.
    let small = flat(DOLLAR / 10);
    let held = try_admit(&c, &p, &small, clock.now()).await.unwrap();
    assert!(matches!(
        try_admit(&c, &p, &small, clock.now()).await,
        Err(Refusal::Concurrency { max: 1, .. })
    ));
    held.holds
        .settle(
            &c,
            Actual {
                cost_nanos: Some(DOLLAR / 10),
                tokens: 10,
                reached_upstream: true,
            },
        )
        .await;
    assert!(try_admit(&c, &p, &small, clock.now()).await.is_ok());
}

#[tokio::test]
async fn with_redis_down_hard_budgets_fail_closed_and_rate_limits_count_locally() {
    let mut redis = RedisServer::start();
    let clock: Arc<dyn Clock> = Arc::new(tollgate_govern::limits::SystemClock);
    let mut cfg = RedisConfig::new(redis.url());
    cfg.op_timeout = Duration::from_millis(300);
    let store = Arc::new(RedisStore::connect(cfg, clock.clone()).await.unwrap());
    let c = counters(store, clock.clone());
    let budgets = policies(
        r#"
[[policies]]
scope = "org"
[[policies.budgets]]
period = "month"
amount_usd = 100.0
"#,
    );
    let rates = policies(
        r#"
[[policies]]
scope = "org"
rate = { requests_per_minute = 2 }
"#,
    );
    let est = flat(1000);
    assert!(try_admit(&c, &budgets, &est, clock.now()).await.is_ok());
    redis.stop();
    assert_eq!(
        try_admit(&c, &budgets, &est, clock.now())
            .await
            .unwrap_err(),
        Refusal::StoreUnavailable
    );
    // Rate limits keep working on this replica's own counters.
    assert!(try_admit(&c, &rates, &est, clock.now()).await.is_ok());
    assert!(try_admit(&c, &rates, &est, clock.now()).await.is_ok());
    assert!(matches!(
        try_admit(&c, &rates, &est, clock.now()).await,
        Err(Refusal::Rate { limit: 2, .. })
    ));
    // Fail open lets budget-governed requests through unreserved.
    let open = Counters {
        on_failure: OnStoreFailure::FailOpen,
        ..c
    };
    assert!(try_admit(&open, &budgets, &est, clock.now()).await.is_ok());
}
