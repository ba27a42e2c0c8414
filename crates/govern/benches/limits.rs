//! Cost of the counter work the admit and settle phases do per request: a budget reservation over
//! three budgets (key, user, team) and its settlement, a rate check, and a concurrency lease. On
//! the in-process store directly and through `&dyn CounterStore` as the pipeline calls it; on the
//! Redis store against a throwaway `redis-server` on loopback when one is installed (the group is
//! skipped otherwise), with p50/p99 of single reservations printed as well.

use criterion::{Criterion, criterion_group, criterion_main};
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tollgate_govern::limits::{
    Admission, BudgetLimit, CounterStore, LimitKey, MemoryStore, RateMetric, RedisConfig,
    RedisStore, SystemClock, Window,
};

const TTL: Duration = Duration::from_secs(600);

fn limits(key: usize) -> Vec<BudgetLimit> {
    let day = Window::Day {
        tz_offset_minutes: 60,
    };
    let month = Window::Month {
        tz_offset_minutes: 60,
    };
    vec![
        BudgetLimit::new(LimitKey::new(format!("key:k{key}")), day, i64::MAX >> 11),
        BudgetLimit::new(
            LimitKey::new(format!("user:u{}", key % 50)),
            month,
            i64::MAX >> 11,
        ),
        BudgetLimit::new(LimitKey::new("team:platform"), month, i64::MAX >> 11),
    ]
}

/// Drives a future that never waits (the memory store's) to completion.
fn now_or_never<T>(f: impl Future<Output = T>) -> T {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

fn bench(c: &mut Criterion) {
    let store = MemoryStore::new(Arc::new(SystemClock));
    let sets: Vec<Vec<BudgetLimit>> = (0..1000).map(limits).collect();
    let mut g = c.benchmark_group("memory store");

    let mut i = 0usize;
    g.bench_function("reserve + settle, 3 budgets", |b| {
        b.iter(|| {
            i = (i + 1) % sets.len();
            match store.reserve_now(black_box(&sets[i]), 2_000_000, TTL) {
                Ok(Admission::Allowed(r)) => store.settle_now(&r, 1_500_000).ok(),
                _ => None,
            }
        })
    });

    let dyn_store: &dyn CounterStore = &store;
    g.bench_function("reserve + settle, 3 budgets, via dyn CounterStore", |b| {
        b.iter(|| {
            i = (i + 1) % sets.len();
            now_or_never(async {
                match dyn_store
                    .reserve_budget(black_box(&sets[i]), 2_000_000, TTL)
                    .await
                {
                    Ok(Admission::Allowed(r)) => dyn_store.settle_budget(&r, 1_500_000).await.ok(),
                    _ => None,
                }
            })
        })
    });

    let keys: Vec<LimitKey> = (0..1000)
        .map(|k| LimitKey::new(format!("key:k{k}")))
        .collect();
    g.bench_function("rate check (requests/min)", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            store.rate_now(
                black_box(&keys[i]),
                RateMetric::Requests,
                u64::from(u32::MAX),
                1,
                false,
            )
        })
    });

    g.bench_function("acquire + release concurrency", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            if let Ok(Some(p)) = store.acquire_now(black_box(&keys[i]), 8, TTL) {
                let _ = store.release_permit_now(&p);
            }
        })
    });
    g.finish();

    // Eight threads hammering the same team budget: the worst case for the shard locks.
    let mut g = c.benchmark_group("memory store, 8 threads");
    g.bench_function(
        "reserve + settle, shared team budget (wall time / ops)",
        |b| {
            b.iter_custom(|iters| {
                let per_thread = iters.div_ceil(8);
                let start = std::time::Instant::now();
                std::thread::scope(|s| {
                    for t in 0..8 {
                        let store = &store;
                        let sets = &sets;
                        s.spawn(move || {
                            for n in 0..per_thread {
                                let set = &sets[(t * 7919 + n as usize) % sets.len()];
                                if let Ok(Admission::Allowed(r)) =
                                    store.reserve_now(set, 2_000_000, TTL)
                                {
                                    let _ = store.settle_now(&r, 1_500_000);
                                }
                            }
                        });
                    }
                });
                start.elapsed()
            })
        },
    );
    g.finish();
}

/// A `redis-server` without persistence on a free port, killed on drop.
struct RedisServer(std::process::Child, u16);

impl RedisServer {
    fn start() -> Option<Self> {
        let bin = "/usr/bin/redis-server";
        if !std::path::Path::new(bin).exists() {
            eprintln!("{bin} not installed: skipping the Redis benchmarks");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .ok()?
            .port();
        let dir = std::env::temp_dir();
        let child = std::process::Command::new(bin)
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdout(std::process::Stdio::null())
            .spawn()
            .ok()?;
        let server = RedisServer(child, port);
        for _ in 0..250 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(server);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn bench_redis(c: &mut Criterion) {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    let config = RedisConfig::new(format!("redis://127.0.0.1:{}/", server.1));
    let Ok(store) = rt.block_on(async {
        let s = RedisStore::connect(config, Arc::new(SystemClock)).await?;
        s.preload().await?;
        Ok::<_, tollgate_govern::limits::StoreError>(s)
    }) else {
        eprintln!("redis store did not start: skipping");
        return;
    };
    let sets: Vec<Vec<BudgetLimit>> = (0..1000).map(limits).collect();
    let keys: Vec<LimitKey> = (0..1000)
        .map(|k| LimitKey::new(format!("key:k{k}")))
        .collect();
    let mut g = c.benchmark_group("redis store, loopback");
    let mut i = 0usize;
    g.bench_function("reserve + settle, 3 budgets (2 round trips)", |b| {
        b.iter(|| {
            i = (i + 1) % sets.len();
            rt.block_on(async {
                match store.reserve_budget(&sets[i], 2_000_000, TTL).await {
                    Ok(Admission::Allowed(r)) => store.settle_budget(&r, 1_500_000).await.ok(),
                    _ => None,
                }
            })
        })
    });
    g.bench_function("rate check (1 round trip)", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            rt.block_on(store.rate_check(&keys[i], RateMetric::Requests, 1 << 32, 1))
        })
    });
    g.finish();

    // Latency distribution of the admission-side reservation alone, one at a time.
    let mut samples: Vec<Duration> = Vec::with_capacity(20_000);
    rt.block_on(async {
        for n in 0..20_000 {
            let set = &sets[n % sets.len()];
            let t = std::time::Instant::now();
            let r = store.reserve_budget(set, 2_000_000, TTL).await;
            samples.push(t.elapsed());
            if let Ok(Admission::Allowed(r)) = r {
                let _ = store.settle_budget(&r, 1_500_000).await;
            }
        }
    });
    samples.sort_unstable();
    let pct = |p: usize| samples[(samples.len() * p / 100).min(samples.len() - 1)];
    eprintln!(
        "redis reserve (3 budgets), 20000 sequential calls: p50 {:?}, p99 {:?}, max {:?}",
        pct(50),
        pct(99),
        samples[samples.len() - 1]
    );
}

criterion_group!(benches, bench, bench_redis);
criterion_main!(benches);
