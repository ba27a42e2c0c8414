//! The behaviour suite every counter store must pass, written once against `dyn CounterStore`.
//! Concurrency tests take several handles to the same counters (one per replica) and spread
//! their tasks over them; time moves only through the shared `ManualClock`.

#![allow(dead_code, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Barrier;
use tollgate_govern::limits::{
    Admission, BudgetLimit, Clock, CounterStore, LimitKey, ManualClock, RateDecision, RateMetric,
    Reservation, Settlement, StoreError, UnixMs, Window,
};

pub const TTL: Duration = Duration::from_secs(600);
/// One US dollar in nano-USD.
pub const DOLLAR: i64 = 1_000_000_000;
const DAY_MS: i64 = 86_400_000;

/// A clock standing at the start of a UTC minute near the real time (Redis key TTLs are real).
pub fn clock_at_minute_start() -> Arc<ManualClock> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    Arc::new(ManualClock::new(UnixMs(now - now.rem_euclid(60_000))))
}

fn key(s: &str) -> LimitKey {
    LimitKey::new(s)
}

/// Reserves `amount` in `limits` with the suite's reservation TTL.
pub async fn reserve(store: &dyn CounterStore, limits: &[BudgetLimit], amount: i64) -> Admission {
    store.reserve_budget(limits, amount, TTL).await.unwrap()
}

/// The reservation of an admission that must have had room.
pub fn allowed(a: Admission) -> Reservation {
    match a {
        Admission::Allowed(r) => r,
        Admission::Denied { .. } => panic!("expected room, got {a:?}"),
    }
}

async fn spent(store: &dyn CounterStore, k: &LimitKey, w: Window) -> (i64, i64) {
    let s = store.spent(k, w).await.unwrap();
    (s.settled_nanos, s.reserved_nanos)
}

/// Runs `tasks` reservations of `estimate` at once (released by a barrier), spread over the
/// replicas, and returns the ones admitted.
async fn race(
    stores: &[Arc<dyn CounterStore>],
    limits: Vec<BudgetLimit>,
    tasks: usize,
    estimate: i64,
) -> Vec<Reservation> {
    let barrier = Arc::new(Barrier::new(tasks));
    let limits = Arc::new(limits);
    let handles: Vec<_> = (0..tasks)
        .map(|i| {
            let store = stores[i % stores.len()].clone();
            let barrier = barrier.clone();
            let limits = limits.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                store.reserve_budget(&limits, estimate, TTL).await.unwrap()
            })
        })
        .collect();
    let mut admitted = Vec::new();
    for h in handles {
        if let Admission::Allowed(r) = h.await.unwrap() {
            admitted.push(r);
        }
    }
    admitted
}

/// Strict mode: 200 concurrent requests against a team with $1.00 left, each reserving its worst
/// case; exactly as many as fit are admitted and the settled total never passes the cap.
pub async fn hard_cap_holds_under_concurrency(stores: &[Arc<dyn CounterStore>]) {
    let team = key("team:strict");
    let month = Window::Month {
        tz_offset_minutes: 0,
    };
    let estimate = 27_000_000; // 2.7 cents: 37 fit in $1.00 (37 × 2.7 = 99.9 cents).
    let limits = vec![BudgetLimit::new(team.clone(), month, DOLLAR)];
    let admitted = race(stores, limits.clone(), 200, estimate).await;
    assert_eq!(admitted.len(), 37);
    let s0 = stores[0].as_ref();
    assert_eq!(spent(s0, &team, month).await, (0, 37 * estimate));

    // Settle in parallel too, each at or below its estimate (strict mode's promise).
    let handles: Vec<_> = admitted
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let store = stores[i % stores.len()].clone();
            let actual = estimate - (i as i64 % 3) * 1_000_000;
            tokio::spawn(async move { (store.settle_budget(&r, actual).await.unwrap(), actual) })
        })
        .collect();
    let mut total = 0;
    for h in handles {
        let (settlement, actual) = h.await.unwrap();
        assert_eq!(settlement, Settlement::Replaced);
        total += actual;
    }
    let (settled, reserved) = spent(s0, &team, month).await;
    assert_eq!((settled, reserved), (total, 0));
    assert!(settled <= DOLLAR);

    // The room the cheaper actuals gave back is handed out again, exactly.
    let room = (DOLLAR - settled) / estimate;
    let second = race(stores, limits, 200, estimate).await;
    assert_eq!(second.len() as i64, room);
    for r in &second {
        stores[0].settle_budget(r, estimate).await.unwrap();
    }
    let (settled, _) = spent(s0, &team, month).await;
    assert!(settled <= DOLLAR, "{settled}");
}

/// Standard mode: estimates below the actual. Admission still stops at the cap, and the overshoot
/// is at most the sum of (actual − estimate) over the requests in flight when it was crossed.
pub async fn standard_mode_overshoot_is_bounded(stores: &[Arc<dyn CounterStore>]) {
    let team = key("team:standard");
    let month = Window::Month {
        tz_offset_minutes: 0,
    };
    let estimate = 10_000_000;
    let excess = 15_000_000;
    let limits = vec![BudgetLimit::new(team.clone(), month, DOLLAR)];
    let admitted = race(stores, limits.clone(), 200, estimate).await;
    assert_eq!(admitted.len(), 100);
    let in_flight = admitted.len() as i64;
    for r in &admitted {
        stores[0].settle_budget(r, estimate + excess).await.unwrap();
    }
    let (settled, _) = spent(stores[0].as_ref(), &team, month).await;
    assert_eq!(settled, in_flight * (estimate + excess));
    assert!(settled - DOLLAR <= in_flight * excess);
    // Past the cap, nothing more gets in, not even a zero estimate.
    assert!(race(stores, limits.clone(), 50, estimate).await.is_empty());
    assert!(matches!(
        reserve(stores[0].as_ref(), &limits, 0).await,
        Admission::Denied { .. }
    ));
}

/// A reservation spans every budget or none: a refusal by one leaves the others untouched, and
/// under contention the tightest budget decides.
pub async fn budgets_are_all_or_nothing(stores: &[Arc<dyn CounterStore>], clock: &ManualClock) {
    let team = key("team:both");
    let alice = key("key:alice");
    let day = Window::Day {
        tz_offset_minutes: 120,
    };
    let store = stores[0].as_ref();
    let limits = [
        BudgetLimit::new(team.clone(), Window::Total, 100),
        BudgetLimit::new(alice.clone(), day, 30),
    ];
    let r = allowed(reserve(store, &limits, 20).await);
    assert_eq!(r.keys.len(), 2);
    match reserve(store, &limits, 20).await {
        Admission::Denied {
            key,
            window,
            used_nanos,
            cap_nanos,
            resets_at,
        } => {
            assert_eq!(
                (key, window, used_nanos, cap_nanos),
                (alice.clone(), day, 20, 30)
            );
            let now = clock.now().0;
            let reset = resets_at.expect("a day resets").0;
            assert!(reset > now && reset - now <= DAY_MS);
            assert_eq!(
                (reset + 120 * 60_000).rem_euclid(DAY_MS),
                0,
                "local midnight"
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(spent(store, &team, Window::Total).await, (0, 20));
    // Repeating a budget in one call counts it once, at the smaller cap.
    let repeated = [
        BudgetLimit::new(team.clone(), Window::Total, 100),
        BudgetLimit::new(team.clone(), Window::Total, 25),
    ];
    assert!(matches!(
        reserve(store, &repeated, 10).await,
        Admission::Denied { cap_nanos: 25, .. }
    ));
    allowed(reserve(store, &repeated, 5).await);
    assert_eq!(spent(store, &team, Window::Total).await, (0, 25));

    // Ten keys with room for 5 each under a team with room for 12: the team decides.
    let team2 = key("team:tight");
    let barrier = Arc::new(Barrier::new(200));
    let handles: Vec<_> = (0..200)
        .map(|i| {
            let store = stores[i % stores.len()].clone();
            let barrier = barrier.clone();
            let limits = vec![
                BudgetLimit::new(LimitKey::new(format!("key:k{}", i % 10)), day, 5),
                BudgetLimit::new(team2.clone(), day, 12),
            ];
            tokio::spawn(async move {
                barrier.wait().await;
                store.reserve_budget(&limits, 1, TTL).await.unwrap()
            })
        })
        .collect();
    let mut per_key = [0; 10];
    let mut n = 0;
    for (i, h) in handles.into_iter().enumerate() {
        if let Admission::Allowed(_) = h.await.unwrap() {
            per_key[i % 10] += 1;
            n += 1;
        }
    }
    assert_eq!(n, 12);
    assert!(per_key.iter().all(|&k| k <= 5));
    assert_eq!(spent(store, &team2, day).await, (0, 12));
    let mut sum = 0;
    for k in 0..10 {
        sum += spent(store, &LimitKey::new(format!("key:k{k}")), day)
            .await
            .1;
    }
    assert_eq!(sum, 12);
}

/// The actual cost replaces the reservation, even when it exceeds it.
pub async fn settle_counts_a_higher_actual(store: &dyn CounterStore) {
    let k = key("user:bob");
    let w = Window::Week {
        tz_offset_minutes: -300,
    };
    let limits = [BudgetLimit::new(k.clone(), w, 100)];
    let r = allowed(reserve(store, &limits, 10).await);
    assert_eq!(spent(store, &k, w).await, (0, 10));
    assert_eq!(
        store.settle_budget(&r, 30).await.unwrap(),
        Settlement::Replaced
    );
    assert_eq!(spent(store, &k, w).await, (30, 0));
    assert!(matches!(
        reserve(store, &limits, 71).await,
        Admission::Denied { used_nanos: 30, .. }
    ));
    let r = allowed(reserve(store, &limits, 70).await);
    // Far above the estimate and the cap: still counted in full.
    store.settle_budget(&r, 500).await.unwrap();
    assert_eq!(spent(store, &k, w).await, (530, 0));
}

/// Releasing gives the room back; releasing twice is harmless; a settle after release is late
/// but still counted.
pub async fn release_frees_room(store: &dyn CounterStore) {
    let k = key("key:release");
    let limits = [BudgetLimit::new(k.clone(), Window::Total, 50)];
    let r = allowed(reserve(store, &limits, 50).await);
    assert!(matches!(
        reserve(store, &limits, 1).await,
        Admission::Denied { .. }
    ));
    store.release_budget(&r).await.unwrap();
    store.release_budget(&r).await.unwrap();
    assert_eq!(spent(store, &k, Window::Total).await, (0, 0));
    let r2 = allowed(reserve(store, &limits, 50).await);
    store.release_budget(&r2).await.unwrap();
    assert_eq!(store.settle_budget(&r, 7).await.unwrap(), Settlement::Late);
    assert_eq!(spent(store, &k, Window::Total).await, (7, 0));
}

/// A reservation nobody settles (a crashed replica) frees its room at its expiry; the settle that
/// arrives after that is counted anyway.
pub async fn expired_reservations_free_budget(store: &dyn CounterStore, clock: &ManualClock) {
    let k = key("key:expiry");
    let limits = [BudgetLimit::new(k.clone(), Window::Total, 100)];
    let short = store
        .reserve_budget(&limits, 60, Duration::from_secs(30))
        .await
        .unwrap();
    let short = allowed(short);
    let long = allowed(reserve(store, &limits, 40).await);
    assert!(matches!(
        reserve(store, &limits, 1).await,
        Admission::Denied { .. }
    ));
    clock.advance(Duration::from_millis(29_999));
    assert!(matches!(
        reserve(store, &limits, 1).await,
        Admission::Denied { .. }
    ));
    clock.advance(Duration::from_millis(1));
    assert_eq!(spent(store, &k, Window::Total).await, (0, 40));
    let again = allowed(reserve(store, &limits, 60).await);
    assert_eq!(
        store.settle_budget(&short, 25).await.unwrap(),
        Settlement::Late
    );
    assert_eq!(
        store.settle_budget(&long, 40).await.unwrap(),
        Settlement::Replaced
    );
    assert_eq!(spent(store, &k, Window::Total).await, (65, 60));
    store.release_budget(&again).await.unwrap();
    assert_eq!(spent(store, &k, Window::Total).await, (65, 0));
}

/// Calendar budgets start from zero at the local period boundary; cost is charged to the period
/// a request was admitted in; an explicit reset zeroes the settled spend.
pub async fn periods_reset_at_local_boundaries(store: &dyn CounterStore, clock: &ManualClock) {
    let k = key("team:tz");
    let tz = 330; // UTC+5:30
    let day = Window::Day {
        tz_offset_minutes: tz,
    };
    let limits = [BudgetLimit::new(k.clone(), day, 100)];
    let r = allowed(reserve(store, &limits, 100).await);
    let reset = match reserve(store, &limits, 1).await {
        Admission::Denied { resets_at, .. } => resets_at.unwrap(),
        other => panic!("expected a refusal, got {other:?}"),
    };
    assert_eq!((reset.0 + i64::from(tz) * 60_000).rem_euclid(DAY_MS), 0);
    store.settle_budget(&r, 90).await.unwrap();
    assert_eq!(spent(store, &k, day).await, (90, 0));
    // Held across midnight, so it must outlive the whole day.
    let straddling = store
        .reserve_budget(&limits, 10, Duration::from_secs(2 * 86_400))
        .await
        .unwrap();
    let straddling = allowed(straddling);
    clock.set(UnixMs(reset.0 - 1));
    assert_eq!(spent(store, &k, day).await, (90, 10));
    clock.set(reset);
    assert_eq!(spent(store, &k, day).await, (0, 0));
    let s = store.spent(&k, day).await.unwrap();
    assert_eq!(s.period.start, reset);
    // Admitted yesterday, settled today: yesterday's budget, which no one checks any more.
    store.settle_budget(&straddling, 10).await.unwrap();
    assert_eq!(spent(store, &k, day).await, (0, 0));
    let r = allowed(reserve(store, &limits, 100).await);
    store.settle_budget(&r, 80).await.unwrap();
    store.reset_budget(&k, day).await.unwrap();
    assert_eq!(spent(store, &k, day).await, (0, 0));
    allowed(reserve(store, &limits, 100).await);

    // Months: the 1st in the offset.
    let m = Window::Month {
        tz_offset_minutes: -480,
    };
    let mk = key("team:monthly");
    let limits = [BudgetLimit::new(mk.clone(), m, 5)];
    let r = allowed(reserve(store, &limits, 5).await);
    store.settle_budget(&r, 5).await.unwrap();
    let end = store.spent(&mk, m).await.unwrap().period.end.unwrap();
    clock.set(end);
    assert_eq!(spent(store, &mk, m).await, (0, 0));
    allowed(reserve(store, &limits, 5).await);
}

/// 60 requests per minute: a fresh minute lets exactly 60 through (also when the checks come
/// from several replicas at once), the 61st gets a retry-after of at most 60 s, and over several
/// minutes of steady overload each minute admits at most 60.
pub async fn rate_limit_admits_exactly_the_limit(
    stores: &[Arc<dyn CounterStore>],
    clock: &ManualClock,
) {
    let k = key("key:rpm");
    let barrier = Arc::new(Barrier::new(150));
    let handles: Vec<_> = (0..150)
        .map(|i| {
            let store = stores[i % stores.len()].clone();
            let barrier = barrier.clone();
            let k = k.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                store
                    .rate_check(&k, RateMetric::Requests, 60, 1)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut ok = 0;
    for h in handles {
        match h.await.unwrap() {
            RateDecision::Allowed { .. } => ok += 1,
            RateDecision::Denied { retry_after_secs } => {
                assert!((1..=60).contains(&retry_after_secs), "{retry_after_secs}")
            }
        }
    }
    assert_eq!(ok, 60);
    // Waiting out the retry-after (plus the one second the 60 s clamp cut off) succeeds.
    let store = stores[0].as_ref();
    let RateDecision::Denied { retry_after_secs } = store
        .rate_check(&k, RateMetric::Requests, 60, 1)
        .await
        .unwrap()
    else {
        panic!("the 61st request must wait");
    };
    clock.advance(Duration::from_secs(u64::from(retry_after_secs) + 1));
    assert!(matches!(
        store
            .rate_check(&k, RateMetric::Requests, 60, 1)
            .await
            .unwrap(),
        RateDecision::Allowed { .. }
    ));

    // Steady overload: one request every 250 ms for five minutes.
    let k = key("key:steady");
    let start = clock.now().0 - clock.now().0.rem_euclid(60_000) + 60_000;
    clock.set(UnixMs(start));
    let mut per_minute = [0; 5];
    for step in 0..(5 * 240) {
        clock.set(UnixMs(start + step * 250));
        let s = stores[step as usize % stores.len()].as_ref();
        if let RateDecision::Allowed { remaining } =
            s.rate_check(&k, RateMetric::Requests, 60, 1).await.unwrap()
        {
            assert!(remaining < 60);
            per_minute[(step / 240) as usize] += 1;
        }
    }
    assert_eq!(per_minute[0], 60);
    for n in per_minute {
        assert!((50..=60).contains(&n), "{per_minute:?}");
    }
}

/// Tokens per minute: input tokens are checked at admission, output tokens recorded after the
/// fact count against the next checks; a request larger than the limit never fits.
pub async fn token_rate_counts_recorded_usage(store: &dyn CounterStore, clock: &ManualClock) {
    let k = key("key:tpm");
    let limit = 10_000;
    let r = store
        .rate_check(&k, RateMetric::Tokens, limit, 4_000)
        .await
        .unwrap();
    assert_eq!(r, RateDecision::Allowed { remaining: 6_000 });
    store
        .rate_record(&k, RateMetric::Tokens, 5_000)
        .await
        .unwrap();
    let r = store
        .rate_check(&k, RateMetric::Tokens, limit, 2_000)
        .await
        .unwrap();
    assert!(matches!(r, RateDecision::Denied { retry_after_secs } if retry_after_secs <= 60));
    // Requests per minute of the same key are a separate counter.
    assert!(matches!(
        store
            .rate_check(&k, RateMetric::Requests, 1, 1)
            .await
            .unwrap(),
        RateDecision::Allowed { remaining: 0 }
    ));
    assert_eq!(
        store
            .rate_check(&k, RateMetric::Tokens, limit, limit + 1)
            .await
            .unwrap(),
        RateDecision::Denied {
            retry_after_secs: 60
        }
    );
    clock.advance(Duration::from_secs(120));
    assert!(matches!(
        store
            .rate_check(&k, RateMetric::Tokens, limit, 2_000)
            .await
            .unwrap(),
        RateDecision::Allowed { remaining: 8_000 }
    ));
}

/// Concurrency caps: at most `max` leases at once across replicas; released slots and leases
/// whose holder died (expired) are taken again.
pub async fn concurrency_leases_cap_and_expire(
    stores: &[Arc<dyn CounterStore>],
    clock: &ManualClock,
) {
    let k = key("session:abc");
    let barrier = Arc::new(Barrier::new(50));
    let handles: Vec<_> = (0..50)
        .map(|i| {
            let store = stores[i % stores.len()].clone();
            let barrier = barrier.clone();
            let k = k.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                store
                    .acquire_concurrency(&k, 5, Duration::from_secs(60))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut permits = Vec::new();
    for h in handles {
        permits.extend(h.await.unwrap());
    }
    assert_eq!(permits.len(), 5);
    let store = stores[0].as_ref();
    let ttl = Duration::from_secs(60);
    assert!(
        store
            .acquire_concurrency(&k, 5, ttl)
            .await
            .unwrap()
            .is_none()
    );
    let first = permits.remove(0);
    store.release_concurrency(&first).await.unwrap();
    store.release_concurrency(&first).await.unwrap();
    let p = store.acquire_concurrency(&k, 5, ttl).await.unwrap();
    assert!(p.is_some());
    assert!(
        store
            .acquire_concurrency(&k, 5, ttl)
            .await
            .unwrap()
            .is_none()
    );
    // Other scopes are not affected.
    assert!(
        store
            .acquire_concurrency(&key("session:other"), 1, ttl)
            .await
            .unwrap()
            .is_some()
    );
    // The holders die: their leases lapse at expiry.
    clock.advance(Duration::from_millis(59_999));
    assert!(
        store
            .acquire_concurrency(&k, 5, ttl)
            .await
            .unwrap()
            .is_none()
    );
    clock.advance(Duration::from_millis(1));
    for _ in 0..5 {
        assert!(
            store
                .acquire_concurrency(&k, 5, ttl)
                .await
                .unwrap()
                .is_some()
        );
    }
    assert!(
        store
            .acquire_concurrency(&k, 5, ttl)
            .await
            .unwrap()
            .is_none()
    );
    // Releasing a lapsed lease does not free someone else's slot.
    store.release_concurrency(&permits[0]).await.unwrap();
    assert!(
        store
            .acquire_concurrency(&k, 5, ttl)
            .await
            .unwrap()
            .is_none()
    );
    // A zero cap admits nobody.
    assert!(
        store
            .acquire_concurrency(&key("session:none"), 0, ttl)
            .await
            .unwrap()
            .is_none()
    );
}

/// Out-of-range input is refused with `InvalidInput` and changes nothing; odd but legal input
/// (empty budget list, zero cap, awkward scope strings) works.
pub async fn odd_inputs_are_handled(store: &dyn CounterStore) {
    let k = key("key:odd");
    let limits = [BudgetLimit::new(k.clone(), Window::Total, 10)];
    let invalid = |r: Result<Admission, StoreError>| {
        assert!(matches!(r, Err(StoreError::InvalidInput(_))), "{r:?}")
    };
    invalid(store.reserve_budget(&limits, -1, TTL).await);
    invalid(store.reserve_budget(&limits, i64::MAX, TTL).await);
    invalid(store.reserve_budget(&limits, 1, Duration::ZERO).await);
    invalid(store.reserve_budget(&limits, 1, Duration::MAX).await);
    let bad = [BudgetLimit::new(k.clone(), Window::Total, -1)];
    invalid(store.reserve_budget(&bad, 1, TTL).await);
    let tz = [BudgetLimit::new(
        k.clone(),
        Window::Day {
            tz_offset_minutes: 2000,
        },
        10,
    )];
    invalid(store.reserve_budget(&tz, 1, TTL).await);
    let many: Vec<_> = (0..33)
        .map(|i| BudgetLimit::new(LimitKey::new(format!("k{i}")), Window::Total, 10))
        .collect();
    invalid(store.reserve_budget(&many, 1, TTL).await);
    assert!(matches!(
        store.rate_check(&k, RateMetric::Tokens, u64::MAX, 1).await,
        Err(StoreError::InvalidInput(_))
    ));
    assert!(matches!(
        store.acquire_concurrency(&k, 1, Duration::ZERO).await,
        Err(StoreError::InvalidInput(_))
    ));
    assert!(matches!(
        store.acquire_concurrency(&k, 1, Duration::MAX).await,
        Err(StoreError::InvalidInput(_))
    ));
    let r = allowed(reserve(store, &limits, 1).await);
    assert!(matches!(
        store.settle_budget(&r, -5).await,
        Err(StoreError::InvalidInput(_))
    ));
    assert_eq!(spent(store, &k, Window::Total).await, (0, 1));

    let none = allowed(reserve(store, &[], 5).await);
    assert!(none.keys.is_empty());
    store.settle_budget(&none, 5).await.unwrap();
    store.release_budget(&none).await.unwrap();

    let zero = [BudgetLimit::new(key("key:zero"), Window::Minute, 0)];
    let r = allowed(reserve(store, &zero, 0).await);
    store.settle_budget(&r, 0).await.unwrap();
    assert!(matches!(
        reserve(store, &zero, 1).await,
        Admission::Denied { .. }
    ));

    for scope in ["", ":", "team:a:b:c", "ключ:🙂", "a b\r\n{tag}*?[x]", "\0"] {
        let k = key(scope);
        let limits = [BudgetLimit::new(k.clone(), Window::Total, 3)];
        let r = allowed(reserve(store, &limits, 2).await);
        store.settle_budget(&r, 2).await.unwrap();
        assert_eq!(spent(store, &k, Window::Total).await, (2, 0));
        assert!(matches!(
            store
                .rate_check(&k, RateMetric::Requests, 1, 1)
                .await
                .unwrap(),
            RateDecision::Allowed { .. }
        ));
    }
    // "a" and "a:" style neighbours do not share counters.
    assert_eq!(spent(store, &key("team:a:b"), Window::Total).await, (0, 0));

    // Amounts at the top of the exact range stay exact.
    let big = tollgate_govern::limits::MAX_NANOS;
    let bk = key("org:big");
    let limits = [BudgetLimit::new(bk.clone(), Window::Total, big)];
    let r = allowed(reserve(store, &limits, big - 1).await);
    assert_eq!(spent(store, &bk, Window::Total).await, (0, big - 1));
    assert!(matches!(
        reserve(store, &limits, 2).await,
        Admission::Denied { .. }
    ));
    allowed(reserve(store, &limits, 1).await);
    store.release_budget(&r).await.unwrap();
    assert_eq!(spent(store, &bk, Window::Total).await, (0, 1));
}
