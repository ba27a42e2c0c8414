//! The counter store shared by replicas, on Redis.
//!
//! Every operation is one Lua script run with `EVALSHA` (redis-rs loads the script and retries
//! once when the server answers `NOSCRIPT`, e.g. after a restart), so each check and its update
//! are atomic and cost one round trip. The replica passes its own clock reading in, which keeps
//! period boundaries (computed here, in the configured time zone) and expiry on one time source
//! and lets tests inject time; replicas are assumed to be NTP-synchronised.
//!
//! # Keys
//!
//! All under the configured prefix (default `tollgate:v1:`); the scope comes last because it may
//! itself contain `:`.
//! - `budget:{window}:{period start ms}:{scope}`: hash with `s` (settled nano-USD), `r`
//!   (reserved nano-USD) and one field per live reservation id holding its amount;
//! - `budget-exp:{window}:{period start ms}:{scope}`: sorted set of the same reservation ids
//!   scored by expiry (Unix ms), so a script finds the expired ones in O(log n) instead of
//!   scanning the hash; both keys expire a minute after their period ends (never for `total`;
//!   a day after their last write for `session`);
//! - `rate:{rpm|tpm}:{unix minute}:{scope}`: a counter living until the next window has used it;
//! - `conc:{scope}`: sorted set of lease ids scored by expiry.
//!
//! One reservation touches several keys at once, so in Redis Cluster they must share a slot:
//! give the prefix a hash tag (e.g. `{tollgate}:v1:`). Run the server with `noeviction`: an
//! evicted half of a budget pair would skew its counters.

use super::rate;
use super::{
    Admission, AdmitPlan, BudgetLimit, Clock, CounterStore, IdSource, LimitKey, Permit,
    PlanOutcome, RateDecision, RateMetric, Reservation, ReservedKey, SESSION_IDLE, Settlement,
    Spent, StoreError, StoreFuture, UnixMs, Window, check_nanos, check_rate, check_ttl,
    duration_ms, normalise_limits, period_of,
};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{FromRedisValue, RedisError, Script, ScriptInvocation, ServerErrorKind};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// How long budget keys outlive their period: covers clock skew between replicas, whose late
/// writes would otherwise recreate a key without expiry.
const PERIOD_GRACE_MS: i64 = 60_000;

/// Removes the expired reservations of one budget and gives their room back. Works in batches
/// because Lua's `unpack` has a stack limit.
const SWEEP: &str = r#"
local function sweep(h, z, now)
  while true do
    local gone = redis.call('ZRANGEBYSCORE', z, '-inf', now, 'LIMIT', 0, 256)
    if #gone == 0 then return end
    local held = redis.call('HMGET', h, unpack(gone))
    local freed = 0
    for j = 1, #held do freed = freed + (tonumber(held[j]) or 0) end
    redis.call('HDEL', h, unpack(gone))
    redis.call('ZREM', z, unpack(gone))
    if freed ~= 0 then redis.call('HINCRBY', h, 'r', string.format('%d', -freed)) end
  end
end
"#;

/// KEYS: per budget i, KEYS[2i-1] its hash and KEYS[2i] its expiry index.
/// ARGV: now, id, amount, expires_at, then per budget i: ARGV[3+2i] cap, ARGV[4+2i] key TTL in ms
/// ('0' = none). Checks every budget first and writes only if all have room, so a refusal leaves
/// nothing behind. Returns {1} or {0, refusing budget's index, its used amount}.
const RESERVE: &str = r#"
local now = ARGV[1]
local id = ARGV[2]
local amount = tonumber(ARGV[3])
local n = #KEYS / 2
for i = 1, n do
  local h = KEYS[2 * i - 1]
  sweep(h, KEYS[2 * i], now)
  local v = redis.call('HMGET', h, 's', 'r')
  local used = (tonumber(v[1]) or 0) + (tonumber(v[2]) or 0)
  if used + amount > tonumber(ARGV[3 + 2 * i]) then
    return {0, i, string.format('%d', used)}
  end
end
for i = 1, n do
  local h, z = KEYS[2 * i - 1], KEYS[2 * i]
  redis.call('HINCRBY', h, 'r', ARGV[3])
  redis.call('HSET', h, id, ARGV[3])
  redis.call('ZADD', z, ARGV[4], id)
  local ttl = ARGV[4 + 2 * i]
  if ttl ~= '0' then
    redis.call('PEXPIRE', h, ttl)
    redis.call('PEXPIRE', z, ttl)
  end
end
return {1}
"#;

/// KEYS as for RESERVE. ARGV: id, actual, then per budget i: ARGV[2+i] key TTL in ms ('0' = none,
/// '-1' = the period is over: leave it alone). The actual is counted even when the reservation is
/// gone (expired): the money was spent. Returns 1 if some reservation was gone, else 0.
const SETTLE: &str = r#"
local id = ARGV[1]
local late = 0
for i = 1, #KEYS / 2 do
  local ttl = ARGV[2 + i]
  if ttl ~= '-1' then
    local h, z = KEYS[2 * i - 1], KEYS[2 * i]
    local held = redis.call('HGET', h, id)
    if held then
      redis.call('HINCRBY', h, 'r', string.format('%d', -tonumber(held)))
      redis.call('HDEL', h, id)
      redis.call('ZREM', z, id)
    else
      late = 1
    end
    redis.call('HINCRBY', h, 's', ARGV[2])
    if ttl ~= '0' then
      redis.call('PEXPIRE', h, ttl)
      redis.call('PEXPIRE', z, ttl)
    end
  end
end
return late
"#;

/// KEYS as for RESERVE. ARGV: id. Drops the reservation wherever it is still held.
const RELEASE: &str = r#"
local id = ARGV[1]
for i = 1, #KEYS / 2 do
  local h, z = KEYS[2 * i - 1], KEYS[2 * i]
  local held = redis.call('HGET', h, id)
  if held then
    redis.call('HINCRBY', h, 'r', string.format('%d', -tonumber(held)))
    redis.call('HDEL', h, id)
    redis.call('ZREM', z, id)
  end
end
return 0
"#;

/// KEYS: one budget's hash and expiry index. ARGV: now. Returns {settled, reserved} as strings so
/// large totals cross exactly.
const SPENT: &str = r#"
sweep(KEYS[1], KEYS[2], ARGV[1])
local v = redis.call('HMGET', KEYS[1], 's', 'r')
return {v[1] or '0', v[2] or '0'}
"#;

/// KEYS: one budget's hash. Zeroes the settled spend only if the period has a counter.
const RESET: &str = r#"
if redis.call('HEXISTS', KEYS[1], 's') == 1 then
  redis.call('HSET', KEYS[1], 's', '0')
end
return 0
"#;

/// KEYS: the previous and the current minute's counters. ARGV: elapsed ms in the current minute,
/// limit, cost, 'record' to count without checking, TTL of the current counter in ms.
/// Returns {allowed, previous, current before this request} (counts as strings).
const RATE: &str = r#"
local prev_s = redis.call('GET', KEYS[1]) or '0'
local curr_s = redis.call('GET', KEYS[2]) or '0'
local prev, curr = tonumber(prev_s), tonumber(curr_s)
local elapsed = tonumber(ARGV[1])
local cost = tonumber(ARGV[3])
if ARGV[4] == 'record'
   or prev * (60000 - elapsed) + (curr + cost) * 60000 <= tonumber(ARGV[2]) * 60000 then
  redis.call('INCRBY', KEYS[2], ARGV[3])
  redis.call('PEXPIRE', KEYS[2], ARGV[5])
  return {1, prev_s, curr_s}
end
return {0, prev_s, curr_s}
"#;

/// KEYS: the scope's lease set. ARGV: now, id, max, expires_at, key TTL in ms. The set lives as
/// long as its longest lease. Returns 1 if a slot was taken.
const ACQUIRE: &str = r#"
local z = KEYS[1]
redis.call('ZREMRANGEBYSCORE', z, '-inf', ARGV[1])
if redis.call('ZCARD', z) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', z, ARGV[4], ARGV[2])
if redis.call('PTTL', z) < tonumber(ARGV[5]) then redis.call('PEXPIRE', z, ARGV[5]) end
return 1
"#;

/// KEYS: the scope's lease set. ARGV: id.
const RELEASE_LEASE: &str = r#"
redis.call('ZREM', KEYS[1], ARGV[1])
return 0
"#;

/// A whole admission in one script: every check first (concurrency slots, rate windows, budget
/// room), then, only if all pass, every write. KEYS: each slot's lease set; each rate's previous
/// and current counter; each budget's hash and expiry index, group by group. ARGV: now, elapsed
/// ms in the minute, slot count, rate count, group count; per slot: id, max, expires_at, key TTL;
/// per rate: limit, cost, key TTL; per group: id, amount, expires_at, budget count, then per
/// budget: cap, key TTL ('0' = none). Returns {1}, {2, slot}, {3, rate, prev, curr} or
/// {4, group, budget, used}.
const ADMIT: &str = r#"
local now = ARGV[1]
local elapsed = tonumber(ARGV[2])
local nc, nr, nb = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local a, k = 6, 1
for i = 1, nc do
  local z = KEYS[k]
  redis.call('ZREMRANGEBYSCORE', z, '-inf', now)
  if redis.call('ZCARD', z) >= tonumber(ARGV[a + 1]) then return {2, i} end
  k = k + 1
  a = a + 4
end
for i = 1, nr do
  local prev_s = redis.call('GET', KEYS[k]) or '0'
  local curr_s = redis.call('GET', KEYS[k + 1]) or '0'
  local limit, cost = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  if tonumber(prev_s) * (60000 - elapsed) + (tonumber(curr_s) + cost) * 60000 > limit * 60000 then
    return {3, i, prev_s, curr_s}
  end
  k = k + 2
  a = a + 3
end
for g = 1, nb do
  local amount = tonumber(ARGV[a + 1])
  local n = tonumber(ARGV[a + 3])
  a = a + 4
  for j = 1, n do
    local h = KEYS[k]
    sweep(h, KEYS[k + 1], now)
    local v = redis.call('HMGET', h, 's', 'r')
    local used = (tonumber(v[1]) or 0) + (tonumber(v[2]) or 0)
    if used + amount > tonumber(ARGV[a]) then return {4, g, j, string.format('%d', used)} end
    k = k + 2
    a = a + 2
  end
end
a, k = 6, 1
for i = 1, nc do
  local z = KEYS[k]
  redis.call('ZADD', z, ARGV[a + 2], ARGV[a])
  if redis.call('PTTL', z) < tonumber(ARGV[a + 3]) then redis.call('PEXPIRE', z, ARGV[a + 3]) end
  k = k + 1
  a = a + 4
end
for i = 1, nr do
  redis.call('INCRBY', KEYS[k + 1], ARGV[a + 1])
  redis.call('PEXPIRE', KEYS[k + 1], ARGV[a + 2])
  k = k + 2
  a = a + 3
end
for g = 1, nb do
  local id, amount, exp, n = ARGV[a], ARGV[a + 1], ARGV[a + 2], tonumber(ARGV[a + 3])
  a = a + 4
  for j = 1, n do
    local h, z = KEYS[k], KEYS[k + 1]
    redis.call('HINCRBY', h, 'r', amount)
    redis.call('HSET', h, id, amount)
    redis.call('ZADD', z, exp, id)
    local ttl = ARGV[a + 1]
    if ttl ~= '0' then
      redis.call('PEXPIRE', h, ttl)
      redis.call('PEXPIRE', z, ttl)
    end
    k = k + 2
    a = a + 2
  end
end
return {1}
"#;

/// Where and how to reach the shared store.
#[derive(Clone)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]` (or `rediss://`, `unix://`).
    pub url: String,
    /// Prefix of every key; include a hash tag for Redis Cluster.
    pub prefix: String,
    /// Longest an operation may take, reconnection included, before it fails as unavailable;
    /// admission waits this long at worst when Redis is down.
    pub op_timeout: Duration,
}

impl RedisConfig {
    /// Defaults for `url`: prefix `tollgate:v1:` and a 250 ms operation timeout.
    pub fn new(url: impl Into<String>) -> Self {
        RedisConfig {
            url: url.into(),
            prefix: "tollgate:v1:".into(),
            op_timeout: Duration::from_millis(250),
        }
    }
}

impl fmt::Debug for RedisConfig {
    // The URL may carry a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &"<redacted>")
            .field("prefix", &self.prefix)
            .field("op_timeout", &self.op_timeout)
            .finish()
    }
}

struct Scripts {
    admit: Script,
    reserve: Script,
    settle: Script,
    release: Script,
    spent: Script,
    reset: Script,
    rate: Script,
    acquire: Script,
    release_lease: Script,
}

impl Scripts {
    fn new() -> Self {
        Scripts {
            admit: Script::new(&format!("{SWEEP}{ADMIT}")),
            reserve: Script::new(&format!("{SWEEP}{RESERVE}")),
            settle: Script::new(SETTLE),
            release: Script::new(RELEASE),
            spent: Script::new(&format!("{SWEEP}{SPENT}")),
            reset: Script::new(RESET),
            rate: Script::new(RATE),
            acquire: Script::new(ACQUIRE),
            release_lease: Script::new(RELEASE_LEASE),
        }
    }

    fn all(&self) -> [&Script; 9] {
        [
            &self.admit,
            &self.reserve,
            &self.settle,
            &self.release,
            &self.spent,
            &self.reset,
            &self.rate,
            &self.acquire,
            &self.release_lease,
        ]
    }
}

/// Counters shared by every replica connected to the same Redis, with the semantics of
/// [`super::MemoryStore`].
pub struct RedisStore {
    conn: ConnectionManager,
    prefix: Arc<str>,
    op_timeout: Duration,
    clock: Arc<dyn Clock>,
    ids: IdSource,
    scripts: Scripts,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .field("op_timeout", &self.op_timeout)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// A store on `config.url`. Connects lazily: an unreachable server does not fail this call
    /// (only a malformed URL does); operations then fail with [`StoreError::Unavailable`] until it
    /// is back. Call [`RedisStore::preload`] to check the server at start-up.
    pub async fn connect(config: RedisConfig, clock: Arc<dyn Clock>) -> Result<Self, StoreError> {
        let client = redis::Client::open(config.url.as_str())
            // The message is built from the error kind only: details could echo a password.
            .map_err(|e| StoreError::Config(format!("redis url rejected ({:?})", e.kind())))?;
        // Reconnection is retried once, briefly: the operation timeout, not the backoff, decides
        // how long admission waits, and the next operation triggers a new attempt.
        let cm_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.op_timeout))
            .set_response_timeout(Some(config.op_timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(20))
            .set_max_delay(config.op_timeout);
        let conn =
            ConnectionManager::new_lazy_with_config(client, cm_config).map_err(unavailable)?;
        Ok(RedisStore {
            conn,
            prefix: Arc::from(config.prefix.as_str()),
            op_timeout: config.op_timeout,
            clock,
            ids: IdSource::new(),
            scripts: Scripts::new(),
        })
    }

    /// Loads every script into the server, so the first requests need no `NOSCRIPT` retry; also
    /// a start-up check that the server answers.
    pub async fn preload(&self) -> Result<(), StoreError> {
        for s in self.scripts.all() {
            let mut conn = self.conn.clone();
            let _: String =
                timed(self.op_timeout, s.prepare_invoke().load_async(&mut conn)).await?;
        }
        Ok(())
    }

    fn budget_keys(&self, key: &LimitKey, window: Window, start: UnixMs) -> (String, String) {
        let p = &self.prefix;
        (
            format!("{p}budget:{window}:{}:{key}", start.0),
            format!("{p}budget-exp:{window}:{}:{key}", start.0),
        )
    }

    /// Adds each budget's hash and expiry index as keys and its cap and key TTL as arguments,
    /// in the layout RESERVE and ADMIT share; returns what the reservation will hold.
    fn budget_args(
        &self,
        inv: &mut ScriptInvocation<'_>,
        limits: &[BudgetLimit],
        now: UnixMs,
    ) -> Vec<ReservedKey> {
        limits
            .iter()
            .map(|l| {
                let period = period_of(l.window, now);
                let (h, z) = self.budget_keys(&l.key, l.window, period.start);
                inv.key(h).key(z);
                inv.arg(l.cap_nanos)
                    .arg(key_ttl_ms(l.window, period.end, now));
                ReservedKey {
                    key: l.key.clone(),
                    window: l.window,
                    period,
                }
            })
            .collect()
    }

    async fn run<T: FromRedisValue>(&self, inv: &ScriptInvocation<'_>) -> Result<T, StoreError> {
        let mut conn = self.conn.clone();
        timed(self.op_timeout, inv.invoke_async(&mut conn)).await
    }

    async fn reserve(
        &self,
        limits: &[BudgetLimit],
        amount_nanos: i64,
        ttl: Duration,
    ) -> Result<Admission, StoreError> {
        let limits = normalise_limits(limits, amount_nanos, ttl)?;
        let now = self.clock.now();
        let expires_at = now.saturating_add(ttl);
        let id = self.ids.next();
        let mut inv = self.scripts.reserve.prepare_invoke();
        inv.arg(now.0)
            .arg(id.to_string())
            .arg(amount_nanos)
            .arg(expires_at.0);
        let keys = self.budget_args(&mut inv, &limits, now);
        let reply: Vec<i64> = self.run(&inv).await?;
        match reply.as_slice() {
            [1] => Ok(Admission::Allowed(Reservation {
                id,
                keys,
                amount_nanos,
                expires_at,
            })),
            [0, index, used] => {
                let refused = usize::try_from(*index)
                    .ok()
                    .and_then(|i| i.checked_sub(1))
                    .and_then(|i| limits.get(i).zip(keys.get(i)))
                    .ok_or_else(|| StoreError::Backend("reserve: bad budget index".into()))?;
                Ok(Admission::Denied {
                    key: refused.0.key.clone(),
                    window: refused.0.window,
                    used_nanos: *used,
                    cap_nanos: refused.0.cap_nanos,
                    resets_at: refused.1.period.end,
                })
            }
            _ => Err(StoreError::Backend(format!(
                "reserve: unexpected reply {reply:?}"
            ))),
        }
    }

    async fn admit_all(&self, plan: &AdmitPlan, ttl: Duration) -> Result<PlanOutcome, StoreError> {
        check_ttl(ttl)?;
        let now = self.clock.now();
        let expires_at = now.saturating_add(ttl);
        let (minute, elapsed) = rate::window_of(now);
        let p = &self.prefix;
        let mut inv = self.scripts.admit.prepare_invoke();
        inv.arg(now.0)
            .arg(elapsed)
            .arg(plan.slots.len())
            .arg(plan.rates.len())
            .arg(plan.budgets.len());
        let mut permits = Vec::with_capacity(plan.slots.len());
        for (key, max) in &plan.slots {
            let permit = Permit {
                id: self.ids.next(),
                key: key.clone(),
                expires_at,
            };
            inv.key(format!("{p}conc:{key}"))
                .arg(permit.id.to_string())
                .arg(*max)
                .arg(expires_at.0)
                .arg(duration_ms(ttl));
            permits.push(permit);
        }
        for (key, metric, limit, cost) in &plan.rates {
            check_rate(*limit)?;
            check_rate(*cost)?;
            let m = metric.tag();
            inv.key(format!("{p}rate:{m}:{}:{key}", minute.saturating_sub(1)))
                .key(format!("{p}rate:{m}:{minute}:{key}"))
                .arg(*limit)
                .arg(*cost)
                .arg(2 * rate::WINDOW_MS - elapsed + PERIOD_GRACE_MS);
        }
        let mut groups = Vec::with_capacity(plan.budgets.len());
        let mut reservations = Vec::with_capacity(plan.budgets.len());
        for (limits, amount) in &plan.budgets {
            let limits = normalise_limits(limits, *amount, ttl)?;
            let id = self.ids.next();
            inv.arg(id.to_string())
                .arg(*amount)
                .arg(expires_at.0)
                .arg(limits.len());
            let keys = self.budget_args(&mut inv, &limits, now);
            reservations.push(Reservation {
                id,
                keys,
                amount_nanos: *amount,
                expires_at,
            });
            groups.push(limits);
        }
        let reply: Vec<redis::Value> = self.run(&inv).await?;
        let num = |i: usize| -> Option<i64> {
            reply.get(i).and_then(|v| match v {
                redis::Value::Int(n) => Some(*n),
                redis::Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
                _ => None,
            })
        };
        let index = |i: usize| num(i).and_then(|n| usize::try_from(n).ok()?.checked_sub(1));
        let bad = || StoreError::Backend(format!("admit: unexpected reply {reply:?}"));
        match num(0) {
            Some(1) => Ok(PlanOutcome::Taken {
                reservations,
                permits,
            }),
            Some(2) => Ok(PlanOutcome::SlotsFull {
                index: index(1).ok_or_else(bad)?,
            }),
            Some(3) => {
                let i = index(1).ok_or_else(bad)?;
                let (_, _, limit, cost) = plan.rates.get(i).ok_or_else(bad)?;
                let prev = num(2).and_then(|n| u64::try_from(n).ok()).ok_or_else(bad)?;
                let curr = num(3).and_then(|n| u64::try_from(n).ok()).ok_or_else(bad)?;
                Ok(PlanOutcome::RateLimited {
                    index: i,
                    retry_after_secs: rate::retry_after_secs(prev, curr, elapsed, *limit, *cost),
                })
            }
            Some(4) => {
                let g = index(1).ok_or_else(bad)?;
                let j = index(2).ok_or_else(bad)?;
                let used = num(3).ok_or_else(bad)?;
                let limit = groups.get(g).and_then(|l| l.get(j)).ok_or_else(bad)?;
                let period = period_of(limit.window, now);
                Ok(PlanOutcome::OverBudget {
                    group: g,
                    denied: Admission::Denied {
                        key: limit.key.clone(),
                        window: limit.window,
                        used_nanos: used,
                        cap_nanos: limit.cap_nanos,
                        resets_at: period.end,
                    },
                })
            }
            _ => Err(bad()),
        }
    }

    async fn settle(
        &self,
        reservation: &Reservation,
        actual_nanos: i64,
    ) -> Result<Settlement, StoreError> {
        check_nanos(actual_nanos)?;
        let now = self.clock.now();
        let mut inv = self.scripts.settle.prepare_invoke();
        inv.arg(reservation.id.to_string()).arg(actual_nanos);
        for k in &reservation.keys {
            let (h, z) = self.budget_keys(&k.key, k.window, k.period.start);
            inv.key(h).key(z);
            if k.period.is_over(now) {
                inv.arg(-1);
            } else {
                inv.arg(key_ttl_ms(k.window, k.period.end, now));
            }
        }
        let late: i64 = self.run(&inv).await?;
        Ok(if late == 0 {
            Settlement::Replaced
        } else {
            Settlement::Late
        })
    }

    async fn release(&self, reservation: &Reservation) -> Result<(), StoreError> {
        let mut inv = self.scripts.release.prepare_invoke();
        inv.arg(reservation.id.to_string());
        for k in &reservation.keys {
            let (h, z) = self.budget_keys(&k.key, k.window, k.period.start);
            inv.key(h).key(z);
        }
        let _: i64 = self.run(&inv).await?;
        Ok(())
    }

    async fn spent_in(&self, key: &LimitKey, window: Window) -> Result<Spent, StoreError> {
        window.validate()?;
        let now = self.clock.now();
        let period = period_of(window, now);
        let (h, z) = self.budget_keys(key, window, period.start);
        let mut inv = self.scripts.spent.prepare_invoke();
        inv.key(h).key(z).arg(now.0);
        let reply: Vec<i64> = self.run(&inv).await?;
        match reply.as_slice() {
            [settled, reserved] => Ok(Spent {
                settled_nanos: *settled,
                reserved_nanos: *reserved,
                period,
            }),
            _ => Err(StoreError::Backend(format!(
                "spent: unexpected reply {reply:?}"
            ))),
        }
    }

    async fn reset(&self, key: &LimitKey, window: Window) -> Result<(), StoreError> {
        window.validate()?;
        let period = period_of(window, self.clock.now());
        let (h, _) = self.budget_keys(key, window, period.start);
        let mut inv = self.scripts.reset.prepare_invoke();
        inv.key(h);
        let _: i64 = self.run(&inv).await?;
        Ok(())
    }

    async fn rate(
        &self,
        key: &LimitKey,
        metric: RateMetric,
        limit_per_minute: u64,
        cost: u64,
        record: bool,
    ) -> Result<RateDecision, StoreError> {
        check_rate(limit_per_minute)?;
        check_rate(cost)?;
        let now = self.clock.now();
        let (window, elapsed) = rate::window_of(now);
        let p = &self.prefix;
        let m = metric.tag();
        let mut inv = self.scripts.rate.prepare_invoke();
        inv.key(format!("{p}rate:{m}:{}:{key}", window.saturating_sub(1)))
            .key(format!("{p}rate:{m}:{window}:{key}"))
            .arg(elapsed)
            .arg(limit_per_minute)
            .arg(cost)
            .arg(if record { "record" } else { "check" })
            // Until the end of the next window, which still reads this count, plus skew.
            .arg(2 * rate::WINDOW_MS - elapsed + PERIOD_GRACE_MS);
        let reply: Vec<u64> = self.run(&inv).await?;
        match reply.as_slice() {
            [1, prev, curr] => Ok(RateDecision::Allowed {
                remaining: rate::remaining(
                    *prev,
                    curr.saturating_add(cost),
                    elapsed,
                    limit_per_minute,
                ),
            }),
            [0, prev, curr] => Ok(RateDecision::Denied {
                retry_after_secs: rate::retry_after_secs(
                    *prev,
                    *curr,
                    elapsed,
                    limit_per_minute,
                    cost,
                ),
            }),
            _ => Err(StoreError::Backend(format!(
                "rate: unexpected reply {reply:?}"
            ))),
        }
    }

    async fn acquire(
        &self,
        key: &LimitKey,
        max: u32,
        ttl: Duration,
    ) -> Result<Option<Permit>, StoreError> {
        check_ttl(ttl)?;
        let now = self.clock.now();
        let permit = Permit {
            id: self.ids.next(),
            key: key.clone(),
            expires_at: now.saturating_add(ttl),
        };
        let mut inv = self.scripts.acquire.prepare_invoke();
        inv.key(format!("{}conc:{key}", self.prefix))
            .arg(now.0)
            .arg(permit.id.to_string())
            .arg(max)
            .arg(permit.expires_at.0)
            .arg(duration_ms(ttl));
        let taken: i64 = self.run(&inv).await?;
        Ok((taken == 1).then_some(permit))
    }

    async fn release_permit(&self, permit: &Permit) -> Result<(), StoreError> {
        let mut inv = self.scripts.release_lease.prepare_invoke();
        inv.key(format!("{}conc:{}", self.prefix, permit.key))
            .arg(permit.id.to_string());
        let _: i64 = self.run(&inv).await?;
        Ok(())
    }
}

/// TTL for a budget key: until its period ends plus grace, at least 1 ms; "0" = never.
/// A budget key's time to live from now: a minute past its period's end, [`SESSION_IDLE`] for
/// a session counter (renewed by every write), none (`0`) for `total`.
fn key_ttl_ms(window: Window, end: Option<UnixMs>, now: UnixMs) -> i64 {
    match (window, end) {
        (Window::Session, _) => duration_ms(SESSION_IDLE),
        (_, None) => 0,
        (_, Some(end)) => now.millis_until(end).saturating_add(PERIOD_GRACE_MS).max(1),
    }
}

async fn timed<T, F>(limit: Duration, op: F) -> Result<T, StoreError>
where
    F: Future<Output = Result<T, RedisError>>,
{
    match tokio::time::timeout(limit, op).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(classify(e)),
        Err(_) => Err(StoreError::Unavailable(format!(
            "no answer within {} ms",
            limit.as_millis()
        ))),
    }
}

fn unavailable(e: RedisError) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// Connection trouble and a server that cannot serve right now are `Unavailable` (the policy
/// layer's fallback applies); anything else means a bug or a foreign value under our keys.
fn classify(e: RedisError) -> StoreError {
    let server_busy = matches!(
        e.kind(),
        redis::ErrorKind::Server(
            ServerErrorKind::BusyLoading
                | ServerErrorKind::TryAgain
                | ServerErrorKind::MasterDown
                | ServerErrorKind::ClusterDown
                | ServerErrorKind::ReadOnly
        )
    );
    if e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || server_busy
    {
        unavailable(e)
    } else {
        StoreError::Backend(e.to_string())
    }
}

impl CounterStore for RedisStore {
    fn reserve_budget<'a>(
        &'a self,
        limits: &'a [BudgetLimit],
        amount_nanos: i64,
        ttl: Duration,
    ) -> StoreFuture<'a, Admission> {
        Box::pin(self.reserve(limits, amount_nanos, ttl))
    }

    fn settle_budget<'a>(
        &'a self,
        reservation: &'a Reservation,
        actual_nanos: i64,
    ) -> StoreFuture<'a, Settlement> {
        Box::pin(self.settle(reservation, actual_nanos))
    }

    fn release_budget<'a>(&'a self, reservation: &'a Reservation) -> StoreFuture<'a, ()> {
        Box::pin(self.release(reservation))
    }

    fn spent<'a>(&'a self, key: &'a LimitKey, window: Window) -> StoreFuture<'a, Spent> {
        Box::pin(self.spent_in(key, window))
    }

    fn reset_budget<'a>(&'a self, key: &'a LimitKey, window: Window) -> StoreFuture<'a, ()> {
        Box::pin(self.reset(key, window))
    }

    fn rate_check<'a>(
        &'a self,
        key: &'a LimitKey,
        metric: RateMetric,
        limit_per_minute: u64,
        cost: u64,
    ) -> StoreFuture<'a, RateDecision> {
        Box::pin(self.rate(key, metric, limit_per_minute, cost, false))
    }

    fn rate_record<'a>(
        &'a self,
        key: &'a LimitKey,
        metric: RateMetric,
        cost: u64,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move { self.rate(key, metric, 0, cost, true).await.map(|_| ()) })
    }

    fn acquire_concurrency<'a>(
        &'a self,
        key: &'a LimitKey,
        max: u32,
        ttl: Duration,
    ) -> StoreFuture<'a, Option<Permit>> {
        Box::pin(self.acquire(key, max, ttl))
    }

    fn release_concurrency<'a>(&'a self, permit: &'a Permit) -> StoreFuture<'a, ()> {
        Box::pin(self.release_permit(permit))
    }

    fn admit_plan<'a>(
        &'a self,
        plan: &'a AdmitPlan,
        ttl: Duration,
    ) -> StoreFuture<'a, PlanOutcome> {
        Box::pin(self.admit_all(plan, ttl))
    }
}
