//! The behaviour suite on the Redis store, each test against its own `redis-server` (Debian
//! package) on a free loopback port, plus what only a shared store has: replicas, outages, keys.
//! A missing `redis-server` fails the tests: it is a declared test dependency (scripts/setup.sh).

#![allow(clippy::unwrap_used)]

mod limits_common;

use tollgate_testkit::services::{RedisServer, free_port};

use limits_common as suite;
use redis::AsyncCommands;
use std::sync::Arc;

use std::time::{Duration, Instant};
use tollgate_govern::limits::{
    Admission, BudgetLimit, Clock, CounterStore, LimitKey, ManualClock, RateMetric, RedisConfig,
    RedisStore, StoreError, Window,
};

/// A store on `server`; the generous timeout keeps a loaded test machine from failing the suite.
async fn store_on(server: &RedisServer, clock: Arc<ManualClock>) -> Arc<dyn CounterStore> {
    let mut config = RedisConfig::new(server.url());
    config.op_timeout = Duration::from_secs(5);
    let store = RedisStore::connect(config, clock).await.unwrap();
    store.preload().await.unwrap();
    Arc::new(store)
}

/// A server, a clock at a minute start, and two stores on it: two replicas.
async fn replicas() -> (
    RedisServer,
    Arc<ManualClock>,
    Arc<dyn CounterStore>,
    Arc<dyn CounterStore>,
) {
    let server = RedisServer::start();
    let clock = suite::clock_at_minute_start();
    let a = store_on(&server, clock.clone()).await;
    let b = store_on(&server, clock.clone()).await;
    (server, clock, a, b)
}

async fn raw(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hard_cap_holds_under_concurrency() {
    let (_server, _, a, _) = replicas().await;
    suite::hard_cap_holds_under_concurrency(&[a]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hard_cap_holds_across_two_replicas() {
    let (_server, _, a, b) = replicas().await;
    suite::hard_cap_holds_under_concurrency(&[a, b]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn standard_mode_overshoot_is_bounded_across_two_replicas() {
    let (_server, _, a, b) = replicas().await;
    suite::standard_mode_overshoot_is_bounded(&[a, b]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn budgets_are_all_or_nothing_across_two_replicas() {
    let (_server, clock, a, b) = replicas().await;
    suite::budgets_are_all_or_nothing(&[a, b], &clock).await;
}

#[tokio::test]
async fn settle_counts_a_higher_actual() {
    let (_server, _, a, _) = replicas().await;
    suite::settle_counts_a_higher_actual(a.as_ref()).await;
}

#[tokio::test]
async fn release_frees_room() {
    let (_server, _, a, _) = replicas().await;
    suite::release_frees_room(a.as_ref()).await;
}

#[tokio::test]
async fn expired_reservations_free_budget() {
    let (_server, clock, a, _) = replicas().await;
    suite::expired_reservations_free_budget(a.as_ref(), &clock).await;
}

#[tokio::test]
async fn periods_reset_at_local_boundaries() {
    let (_server, clock, a, _) = replicas().await;
    suite::periods_reset_at_local_boundaries(a.as_ref(), &clock).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rate_limit_admits_exactly_the_limit_across_two_replicas() {
    let (_server, clock, a, b) = replicas().await;
    suite::rate_limit_admits_exactly_the_limit(&[a, b], &clock).await;
}

#[tokio::test]
async fn token_rate_counts_recorded_usage() {
    let (_server, clock, a, _) = replicas().await;
    suite::token_rate_counts_recorded_usage(a.as_ref(), &clock).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrency_leases_cap_and_expire_across_two_replicas() {
    let (_server, clock, a, b) = replicas().await;
    suite::concurrency_leases_cap_and_expire(&[a, b], &clock).await;
}

#[tokio::test]
async fn odd_inputs_are_handled() {
    let (_server, _, a, _) = replicas().await;
    suite::odd_inputs_are_handled(a.as_ref()).await;
}

/// Keys live under the namespace, period keys expire after their window (total ones never),
/// and expired reservations leave no field behind once a script has touched the budget.
#[tokio::test]
async fn keys_are_namespaced_expire_and_are_cleaned() {
    let (server, clock, a, _) = replicas().await;
    let k = LimitKey::new("team:keys");
    let day = Window::Day {
        tz_offset_minutes: 0,
    };
    let limits = [
        BudgetLimit::new(k.clone(), day, 100),
        BudgetLimit::new(k.clone(), Window::Total, 100),
    ];
    let Admission::Allowed(r) = a
        .reserve_budget(&limits, 10, Duration::from_secs(5))
        .await
        .unwrap()
    else {
        panic!("room expected");
    };
    a.rate_check(&k, RateMetric::Requests, 10, 1).await.unwrap();
    a.acquire_concurrency(&k, 1, Duration::from_secs(30))
        .await
        .unwrap();
    let mut c = raw(&server).await;
    let mut keys: Vec<String> = c.keys("*").await.unwrap();
    keys.sort();
    let start = a.spent(&k, day).await.unwrap().period.start.0;
    let minute = clock.now().0.div_euclid(60_000);
    assert_eq!(
        keys,
        vec![
            format!("tollgate:v1:budget-exp:day+0:{start}:team:keys"),
            "tollgate:v1:budget-exp:total:0:team:keys".to_string(),
            format!("tollgate:v1:budget:day+0:{start}:team:keys"),
            "tollgate:v1:budget:total:0:team:keys".to_string(),
            "tollgate:v1:conc:team:keys".to_string(),
            format!("tollgate:v1:rate:rpm:{minute}:team:keys"),
        ]
    );
    let day_ttl: i64 = c
        .pttl(format!("tollgate:v1:budget:day+0:{start}:team:keys"))
        .await
        .unwrap();
    assert!(day_ttl > 0 && day_ttl <= 86_400_000 + 60_000, "{day_ttl}");
    let total_ttl: i64 = c
        .pttl("tollgate:v1:budget:total:0:team:keys")
        .await
        .unwrap();
    assert_eq!(total_ttl, -1);
    let rate_ttl: i64 = c
        .pttl(format!("tollgate:v1:rate:rpm:{minute}:team:keys"))
        .await
        .unwrap();
    assert!(rate_ttl > 60_000 && rate_ttl <= 180_000, "{rate_ttl}");
    let conc_ttl: i64 = c.pttl("tollgate:v1:conc:team:keys").await.unwrap();
    assert!(conc_ttl > 0 && conc_ttl <= 30_000, "{conc_ttl}");

    // The reservation's field goes when it expires and the budget is next touched.
    let field = r.id.to_string();
    let held: Option<String> = c
        .hget("tollgate:v1:budget:total:0:team:keys", &field)
        .await
        .unwrap();
    assert_eq!(held.as_deref(), Some("10"));
    clock.advance(Duration::from_secs(5));
    let s = a.spent(&k, Window::Total).await.unwrap();
    assert_eq!((s.settled_nanos, s.reserved_nanos), (0, 0));
    let fields: Vec<String> = c
        .hkeys("tollgate:v1:budget:total:0:team:keys")
        .await
        .unwrap();
    assert_eq!(fields, vec!["r".to_string()]);
    let index: i64 = c
        .exists("tollgate:v1:budget-exp:total:0:team:keys")
        .await
        .unwrap();
    assert_eq!(index, 0);
}

/// Session counters carry a day's time to live, renewed by every write, so the keys of the
/// many sessions that simply end leave Redis on their own (`total` keys never expire).
#[tokio::test]
async fn session_keys_expire_a_day_after_their_last_write() {
    let (server, _clock, a, _) = replicas().await;
    let k = LimitKey::new("session:policy:abc");
    let limits = [BudgetLimit::new(k.clone(), Window::Session, 100)];
    let r = suite::allowed(suite::reserve(&*a, &limits, 10).await);
    let mut c = raw(&server).await;
    let key = "tollgate:v1:budget:session:0:session:policy:abc";
    let day_ms = 86_400_000;
    let ttl: i64 = c.pttl(key).await.unwrap();
    assert!(ttl > day_ms - 5_000 && ttl <= day_ms, "{ttl}");
    // Let the TTL run down a little, then a settlement renews it.
    let _: () = c.pexpire(key, 1_000_000).await.unwrap();
    a.settle_budget(&r, 7).await.unwrap();
    let ttl: i64 = c.pttl(key).await.unwrap();
    assert!(ttl > day_ms - 5_000, "{ttl}");
    let s = a.spent(&k, Window::Session).await.unwrap();
    assert_eq!(s.settled_nanos, 7);
    // Once the key has expired, the session starts from nothing.
    let _: () = c.del(key).await.unwrap();
    let s = a.spent(&k, Window::Session).await.unwrap();
    assert_eq!((s.settled_nanos, s.reserved_nanos), (0, 0));
}

/// A budget with thousands of reservations expiring at once is swept in batches (Lua's unpack
/// has a stack limit) within one script run.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_mass_expiry_is_swept_in_one_call() {
    let (_server, clock, a, b) = replicas().await;
    let k = LimitKey::new("org:mass");
    let limits = vec![BudgetLimit::new(k.clone(), Window::Total, 1_000_000)];
    let handles: Vec<_> = (0..3000)
        .map(|i| {
            let s = if i % 2 == 0 { a.clone() } else { b.clone() };
            let limits = limits.clone();
            tokio::spawn(async move {
                s.reserve_budget(&limits, 100, Duration::from_secs(10))
                    .await
                    .unwrap()
            })
        })
        .collect();
    for h in handles {
        assert!(matches!(h.await.unwrap(), Admission::Allowed(_)));
    }
    let s = a.spent(&k, Window::Total).await.unwrap();
    assert_eq!(s.reserved_nanos, 300_000);
    clock.advance(Duration::from_secs(10));
    let s = b.spent(&k, Window::Total).await.unwrap();
    assert_eq!((s.settled_nanos, s.reserved_nanos), (0, 0));
}

/// Nothing listening: every operation fails fast as `Unavailable`, never hangs or panics.
#[tokio::test]
async fn unreachable_redis_is_unavailable() {
    let port = free_port();
    let mut config = RedisConfig::new(format!("redis://127.0.0.1:{port}/"));
    config.op_timeout = Duration::from_millis(300);
    let clock = suite::clock_at_minute_start();
    let store = RedisStore::connect(config, clock).await.unwrap();
    assert!(matches!(
        store.preload().await,
        Err(StoreError::Unavailable(_))
    ));
    let k = LimitKey::new("team:down");
    let limits = [BudgetLimit::new(k.clone(), Window::Total, 10)];
    for _ in 0..3 {
        let started = Instant::now();
        let r = store.reserve_budget(&limits, 1, suite::TTL).await;
        assert!(matches!(r, Err(StoreError::Unavailable(_))), "{r:?}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }
    assert!(matches!(
        store.rate_check(&k, RateMetric::Requests, 1, 1).await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        store
            .acquire_concurrency(&k, 1, Duration::from_secs(1))
            .await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        store.spent(&k, Window::Total).await,
        Err(StoreError::Unavailable(_))
    ));
    let bad = RedisStore::connect(
        RedisConfig::new("http://user:hunter2@nowhere"),
        suite::clock_at_minute_start(),
    )
    .await;
    match bad {
        Err(StoreError::Config(msg)) => assert!(!msg.contains("hunter2")),
        other => panic!("expected a config error, got {other:?}"),
    }
}

/// A Redis restart: operations fail as `Unavailable` while it is down and recover without
/// intervention once it is back (scripts are reloaded after `NOSCRIPT`).
#[tokio::test]
async fn a_restarted_redis_is_used_again() {
    let mut server = RedisServer::start();
    let clock = suite::clock_at_minute_start();
    let mut config = RedisConfig::new(server.url());
    config.op_timeout = Duration::from_millis(500);
    let store = RedisStore::connect(config, clock).await.unwrap();
    let k = LimitKey::new("team:restart");
    let limits = [BudgetLimit::new(k.clone(), Window::Total, 10)];
    assert!(matches!(
        store.reserve_budget(&limits, 1, suite::TTL).await,
        Ok(Admission::Allowed(_))
    ));
    let port = server.port();
    server.stop();
    let r = store.reserve_budget(&limits, 1, suite::TTL).await;
    assert!(matches!(r, Err(StoreError::Unavailable(_))), "{r:?}");
    let _server = RedisServer::start_on(port).expect("restart on the same port");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match store.reserve_budget(&limits, 1, suite::TTL).await {
            Ok(Admission::Allowed(_)) => break,
            Ok(other) => panic!("fresh server, fresh budget: {other:?}"),
            Err(StoreError::Unavailable(_)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("not back after 10 s: {e}"),
        }
    }
    // The restarted server has no persistence: the budget starts again from what it holds now.
    let s = store.spent(&k, Window::Total).await.unwrap();
    assert_eq!(s.reserved_nanos, 1);
}

/// A foreign value under one of our keys is a backend error, not a panic or a wrong answer.
#[tokio::test]
async fn a_foreign_value_is_a_backend_error() {
    let (server, _, a, _) = replicas().await;
    let mut c = raw(&server).await;
    let _: () = c
        .set("tollgate:v1:budget:total:0:team:clobbered", "not a hash")
        .await
        .unwrap();
    let limits = [BudgetLimit::new(
        LimitKey::new("team:clobbered"),
        Window::Total,
        10,
    )];
    let r = a.reserve_budget(&limits, 1, suite::TTL).await;
    assert!(matches!(r, Err(StoreError::Backend(_))), "{r:?}");
}

#[tokio::test]
async fn an_admission_plan_is_one_atomic_step_that_leaves_nothing_when_refused() {
    use tollgate_govern::limits::{AdmitPlan, PlanOutcome};
    let (_server, _, a, b) = replicas().await;
    let rate_key = LimitKey::new("rate:plan");
    let slot_key = LimitKey::new("conc:plan");
    let month = Window::Month {
        tz_offset_minutes: 0,
    };
    let plan = |amount: i64| AdmitPlan {
        slots: vec![(slot_key.clone(), 5)],
        rates: vec![(rate_key.clone(), RateMetric::Requests, 2, 1)],
        budgets: vec![(
            vec![BudgetLimit::new(LimitKey::new("budget:plan"), month, 10)],
            amount,
        )],
    };
    // Over budget: neither the slot nor the request count is taken.
    let refused = a
        .admit_plan(&plan(11), Duration::from_secs(60))
        .await
        .unwrap();
    assert!(
        matches!(refused, PlanOutcome::OverBudget { group: 0, .. }),
        "{refused:?}"
    );
    for store in [&a, &b] {
        let taken = store
            .admit_plan(&plan(4), Duration::from_secs(60))
            .await
            .unwrap();
        let PlanOutcome::Taken {
            reservations,
            permits,
        } = taken
        else {
            panic!("expected everything taken, got {taken:?}");
        };
        assert_eq!((reservations.len(), permits.len()), (1, 1));
    }
    // The two admissions used the whole rate limit of 2 (the refused one counted nothing).
    let third = b
        .admit_plan(&plan(1), Duration::from_secs(60))
        .await
        .unwrap();
    assert!(
        matches!(third, PlanOutcome::RateLimited { index: 0, .. }),
        "{third:?}"
    );
    let spent = a.spent(&LimitKey::new("budget:plan"), month).await.unwrap();
    assert_eq!(spent.reserved_nanos, 8);
}
