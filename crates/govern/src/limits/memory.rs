//! The in-process counter store for a single node.
//!
//! Counters live in 64 mutex-guarded shards chosen by hash, so requests for different scopes
//! rarely meet on a lock. A reservation spanning several budgets locks their shards in index
//! order (never deadlocks) and holds them for the check and the update, which makes it atomic
//! exactly as the Redis script is. Expired reservations and leases are dropped when their counter
//! is next touched; a shard also sweeps out ended periods, idle session counters, stale rate
//! windows and empty lease lists at most once a minute, on whichever request happens to lock it.

use super::rate;
use super::{
    Admission, BudgetLimit, Clock, CounterStore, IdSource, LeaseId, LimitKey, Period, Permit,
    RateDecision, RateMetric, Reservation, ReservedKey, SESSION_IDLE, Settlement, Spent,
    StoreError, StoreFuture, SystemClock, UnixMs, Window, check_nanos, check_rate, check_ttl,
    normalise_limits, period_of,
};
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

const SHARDS: usize = 64;
const SWEEP_EVERY_MS: i64 = 60_000;

/// Single-node counters with the same semantics as [`super::RedisStore`].
#[derive(Debug)]
pub struct MemoryStore {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    clock: Arc<dyn Clock>,
    ids: IdSource,
}

#[derive(Debug, Default)]
struct Shard {
    budgets: HashMap<CellKey, BudgetCell>,
    rates: HashMap<(LimitKey, RateMetric), RateCell>,
    leases: HashMap<LimitKey, Vec<(LeaseId, UnixMs)>>,
    next_sweep: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CellKey {
    key: LimitKey,
    window: Window,
    start: i64,
}

#[derive(Debug)]
struct BudgetCell {
    period: Period,
    settled: i64,
    reserved: i64,
    /// Live reservations by (expiry, id), so expiry pops from the front and settling finds one
    /// by the expiry it carries.
    live: BTreeMap<(UnixMs, LeaseId), i64>,
    /// The last reservation or settlement, after which a `Session` counter is forgotten.
    touched: UnixMs,
}

#[derive(Debug, Default)]
struct RateCell {
    window: i64,
    prev: u64,
    curr: u64,
}

impl BudgetCell {
    fn new(period: Period, now: UnixMs) -> Self {
        BudgetCell {
            period,
            settled: 0,
            reserved: 0,
            live: BTreeMap::new(),
            touched: now,
        }
    }

    /// Whether the counter has ended: its period is over, or it is a session counter unused for
    /// [`SESSION_IDLE`] (the Redis key would have expired).
    fn is_over(&self, window: Window, now: UnixMs) -> bool {
        self.period.is_over(now)
            || (window == Window::Session
                && now.0.saturating_sub(self.touched.0) >= super::duration_ms(SESSION_IDLE))
    }

    fn expire(&mut self, now: UnixMs) {
        while let Some(entry) = self.live.first_entry() {
            if entry.key().0 > now {
                break;
            }
            self.reserved = self.reserved.saturating_sub(entry.remove());
        }
    }

    fn used(&self) -> i64 {
        self.settled.saturating_add(self.reserved)
    }
}

impl RateCell {
    /// Moves the counts along to `window`: the current count becomes the previous one after one
    /// minute, and both are forgotten after two.
    fn roll(&mut self, window: i64) {
        if window == self.window {
            return;
        }
        self.prev = if window == self.window.saturating_add(1) {
            self.curr
        } else {
            0
        };
        self.curr = 0;
        self.window = window;
    }
}

impl Shard {
    /// The live counter of `ck`, dropping it first if it has ended (sweeps run only once a
    /// minute, expiry must not wait for them).
    fn budget(&mut self, ck: &CellKey, now: UnixMs) -> Option<&mut BudgetCell> {
        if self
            .budgets
            .get(ck)
            .is_some_and(|c| c.is_over(ck.window, now))
        {
            self.budgets.remove(ck);
        }
        self.budgets.get_mut(ck)
    }

    /// The live counter of `ck`, started afresh in `period` if it has ended or never existed,
    /// marked as used now.
    fn touch(&mut self, ck: CellKey, period: Period, now: UnixMs) -> &mut BudgetCell {
        self.budget(&ck, now);
        let cell = self
            .budgets
            .entry(ck)
            .or_insert_with(|| BudgetCell::new(period, now));
        cell.touched = now;
        cell
    }

    fn maybe_sweep(&mut self, now: UnixMs) {
        if now.0 < self.next_sweep {
            return;
        }
        self.next_sweep = now.0.saturating_add(SWEEP_EVERY_MS);
        self.budgets.retain(|k, c| {
            !c.is_over(k.window, now) && (c.settled != 0 || c.reserved != 0 || !c.live.is_empty())
        });
        let (window, _) = rate::window_of(now);
        self.rates
            .retain(|_, r| r.window >= window.saturating_sub(1));
        self.leases.retain(|_, l| {
            l.retain(|(_, exp)| *exp > now);
            !l.is_empty()
        });
    }
}

fn lock(m: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    // A panic while holding a shard cannot leave a counter half-updated (each update is a few
    // integer writes), so a poisoned lock is safe to keep using.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new(Arc::new(SystemClock))
    }
}

impl MemoryStore {
    /// An empty store reading time from `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        MemoryStore {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            hasher: RandomState::new(),
            clock,
            ids: IdSource::new(),
        }
    }

    fn shard_of(&self, h: impl Hash) -> usize {
        // The remainder is below SHARDS, so the cast back is lossless.
        (self.hasher.hash_one(h) % SHARDS as u64) as usize
    }

    /// Locks the given shards in ascending order, which keeps concurrent multi-shard callers
    /// from deadlocking.
    fn lock_many(&self, mut ids: Vec<usize>) -> Vec<(usize, MutexGuard<'_, Shard>)> {
        ids.sort_unstable();
        ids.dedup();
        ids.into_iter()
            .filter_map(|i| self.shards.get(i).map(|m| (i, lock(m))))
            .collect()
    }

    /// [`CounterStore::reserve_budget`] without the future.
    pub fn reserve_now(
        &self,
        limits: &[BudgetLimit],
        amount_nanos: i64,
        ttl: Duration,
    ) -> Result<Admission, StoreError> {
        let limits = normalise_limits(limits, amount_nanos, ttl)?;
        let now = self.clock.now();
        let expires_at = now.saturating_add(ttl);
        let cells: Vec<(usize, CellKey, Period, i64)> = limits
            .iter()
            .map(|l| {
                let period = period_of(l.window, now);
                let ck = CellKey {
                    key: l.key.clone(),
                    window: l.window,
                    start: period.start.0,
                };
                (self.shard_of(&ck), ck, period, l.cap_nanos)
            })
            .collect();
        let mut guards = self.lock_many(cells.iter().map(|c| c.0).collect());
        for (_, g) in guards.iter_mut() {
            g.maybe_sweep(now);
        }
        for (shard, ck, period, cap) in &cells {
            let g = shard_mut(&mut guards, *shard)?;
            let used = match g.budget(ck, now) {
                Some(cell) => {
                    cell.expire(now);
                    cell.used()
                }
                None => 0,
            };
            if used.saturating_add(amount_nanos) > *cap {
                return Ok(Admission::Denied {
                    key: ck.key.clone(),
                    window: ck.window,
                    used_nanos: used,
                    cap_nanos: *cap,
                    resets_at: period.end,
                });
            }
        }
        let id = self.ids.next();
        let mut keys = Vec::with_capacity(cells.len());
        for (shard, ck, period, _) in cells {
            let g = shard_mut(&mut guards, shard)?;
            keys.push(ReservedKey {
                key: ck.key.clone(),
                window: ck.window,
                period,
            });
            let cell = g.touch(ck, period, now);
            cell.reserved = cell.reserved.saturating_add(amount_nanos);
            cell.live.insert((expires_at, id), amount_nanos);
        }
        Ok(Admission::Allowed(Reservation {
            id,
            keys,
            amount_nanos,
            expires_at,
        }))
    }

    /// [`CounterStore::settle_budget`] without the future.
    pub fn settle_now(
        &self,
        reservation: &Reservation,
        actual_nanos: i64,
    ) -> Result<Settlement, StoreError> {
        check_nanos(actual_nanos)?;
        let now = self.clock.now();
        let mut late = false;
        self.for_each_held(reservation, now, |shard, ck, period| {
            let cell = shard.touch(ck, period, now);
            match cell.live.remove(&(reservation.expires_at, reservation.id)) {
                Some(held) => cell.reserved = cell.reserved.saturating_sub(held),
                None => late = true,
            }
            cell.settled = cell.settled.saturating_add(actual_nanos);
        })?;
        Ok(if late {
            Settlement::Late
        } else {
            Settlement::Replaced
        })
    }

    /// [`CounterStore::release_budget`] without the future.
    pub fn release_now(&self, reservation: &Reservation) -> Result<(), StoreError> {
        let now = self.clock.now();
        self.for_each_held(reservation, now, |shard, ck, _| {
            if let Some(cell) = shard.budget(&ck, now)
                && let Some(held) = cell.live.remove(&(reservation.expires_at, reservation.id))
            {
                cell.reserved = cell.reserved.saturating_sub(held);
            }
        })
    }

    /// Runs `f` on the counter of every budget the reservation is held in whose period has not
    /// ended, with all their shards locked.
    fn for_each_held(
        &self,
        reservation: &Reservation,
        now: UnixMs,
        mut f: impl FnMut(&mut Shard, CellKey, Period),
    ) -> Result<(), StoreError> {
        let cells: Vec<(usize, CellKey, Period)> = reservation
            .keys
            .iter()
            .filter(|k| !k.period.is_over(now))
            .map(|k| {
                let ck = CellKey {
                    key: k.key.clone(),
                    window: k.window,
                    start: k.period.start.0,
                };
                (self.shard_of(&ck), ck, k.period)
            })
            .collect();
        let mut guards = self.lock_many(cells.iter().map(|c| c.0).collect());
        for (shard, ck, period) in cells {
            let g = shard_mut(&mut guards, shard)?;
            f(g, ck, period);
        }
        Ok(())
    }

    /// [`CounterStore::spent`] without the future.
    pub fn spent_now(&self, key: &LimitKey, window: Window) -> Result<Spent, StoreError> {
        window.validate()?;
        let now = self.clock.now();
        let period = period_of(window, now);
        let ck = CellKey {
            key: key.clone(),
            window,
            start: period.start.0,
        };
        let mut g = self.lock_one(&ck)?;
        let (settled_nanos, reserved_nanos) = match g.budget(&ck, now) {
            Some(cell) => {
                cell.expire(now);
                (cell.settled, cell.reserved)
            }
            None => (0, 0),
        };
        Ok(Spent {
            settled_nanos,
            reserved_nanos,
            period,
        })
    }

    /// [`CounterStore::reset_budget`] without the future.
    pub fn reset_now(&self, key: &LimitKey, window: Window) -> Result<(), StoreError> {
        window.validate()?;
        let now = self.clock.now();
        let period = period_of(window, now);
        let ck = CellKey {
            key: key.clone(),
            window,
            start: period.start.0,
        };
        let mut g = self.lock_one(&ck)?;
        if let Some(cell) = g.budget(&ck, now) {
            cell.settled = 0;
        }
        Ok(())
    }

    fn lock_one(&self, h: impl Hash) -> Result<MutexGuard<'_, Shard>, StoreError> {
        let now = self.clock.now();
        let m = self
            .shards
            .get(self.shard_of(h))
            .ok_or(StoreError::Backend("shard index out of range".into()))?;
        let mut g = lock(m);
        g.maybe_sweep(now);
        Ok(g)
    }

    /// [`CounterStore::rate_check`] and [`CounterStore::rate_record`] without the future;
    /// `force` counts without checking.
    pub fn rate_now(
        &self,
        key: &LimitKey,
        metric: RateMetric,
        limit_per_minute: u64,
        cost: u64,
        force: bool,
    ) -> Result<RateDecision, StoreError> {
        check_rate(limit_per_minute)?;
        check_rate(cost)?;
        let now = self.clock.now();
        let (window, elapsed) = rate::window_of(now);
        let rk = (key.clone(), metric);
        let mut g = self.lock_one(&rk)?;
        let cell = g.rates.entry(rk).or_insert_with(|| RateCell {
            window,
            ..RateCell::default()
        });
        cell.roll(window);
        if force || rate::allows(cell.prev, cell.curr, elapsed, limit_per_minute, cost) {
            cell.curr = cell.curr.saturating_add(cost);
            Ok(RateDecision::Allowed {
                remaining: rate::remaining(cell.prev, cell.curr, elapsed, limit_per_minute),
            })
        } else {
            Ok(RateDecision::Denied {
                retry_after_secs: rate::retry_after_secs(
                    cell.prev,
                    cell.curr,
                    elapsed,
                    limit_per_minute,
                    cost,
                ),
            })
        }
    }

    /// [`CounterStore::acquire_concurrency`] without the future.
    pub fn acquire_now(
        &self,
        key: &LimitKey,
        max: u32,
        ttl: Duration,
    ) -> Result<Option<Permit>, StoreError> {
        check_ttl(ttl)?;
        let now = self.clock.now();
        let mut g = self.lock_one(key)?;
        let leases = g.leases.entry(key.clone()).or_default();
        leases.retain(|(_, exp)| *exp > now);
        if leases.len() >= max as usize {
            return Ok(None);
        }
        let permit = Permit {
            id: self.ids.next(),
            key: key.clone(),
            expires_at: now.saturating_add(ttl),
        };
        leases.push((permit.id, permit.expires_at));
        Ok(Some(permit))
    }

    /// [`CounterStore::release_concurrency`] without the future.
    pub fn release_permit_now(&self, permit: &Permit) -> Result<(), StoreError> {
        let mut g = self.lock_one(&permit.key)?;
        if let Some(leases) = g.leases.get_mut(&permit.key) {
            leases.retain(|(id, _)| *id != permit.id);
        }
        Ok(())
    }
}

fn shard_mut<'g, 'm>(
    guards: &'g mut [(usize, MutexGuard<'m, Shard>)],
    shard: usize,
) -> Result<&'g mut Shard, StoreError> {
    guards
        .iter_mut()
        .find(|(i, _)| *i == shard)
        .map(|(_, g)| &mut **g)
        .ok_or(StoreError::Backend("shard not locked".into()))
}

impl CounterStore for MemoryStore {
    fn reserve_budget<'a>(
        &'a self,
        limits: &'a [BudgetLimit],
        amount_nanos: i64,
        ttl: Duration,
    ) -> StoreFuture<'a, Admission> {
        Box::pin(async move { self.reserve_now(limits, amount_nanos, ttl) })
    }

    fn settle_budget<'a>(
        &'a self,
        reservation: &'a Reservation,
        actual_nanos: i64,
    ) -> StoreFuture<'a, Settlement> {
        Box::pin(async move { self.settle_now(reservation, actual_nanos) })
    }

    fn release_budget<'a>(&'a self, reservation: &'a Reservation) -> StoreFuture<'a, ()> {
        Box::pin(async move { self.release_now(reservation) })
    }

    fn spent<'a>(&'a self, key: &'a LimitKey, window: Window) -> StoreFuture<'a, Spent> {
        Box::pin(async move { self.spent_now(key, window) })
    }

    fn reset_budget<'a>(&'a self, key: &'a LimitKey, window: Window) -> StoreFuture<'a, ()> {
        Box::pin(async move { self.reset_now(key, window) })
    }

    fn rate_check<'a>(
        &'a self,
        key: &'a LimitKey,
        metric: RateMetric,
        limit_per_minute: u64,
        cost: u64,
    ) -> StoreFuture<'a, RateDecision> {
        Box::pin(async move { self.rate_now(key, metric, limit_per_minute, cost, false) })
    }

    fn rate_record<'a>(
        &'a self,
        key: &'a LimitKey,
        metric: RateMetric,
        cost: u64,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move { self.rate_now(key, metric, 0, cost, true).map(|_| ()) })
    }

    fn acquire_concurrency<'a>(
        &'a self,
        key: &'a LimitKey,
        max: u32,
        ttl: Duration,
    ) -> StoreFuture<'a, Option<Permit>> {
        Box::pin(async move { self.acquire_now(key, max, ttl) })
    }

    fn release_concurrency<'a>(&'a self, permit: &'a Permit) -> StoreFuture<'a, ()> {
        Box::pin(async move { self.release_permit_now(permit) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::ManualClock;

    #[test]
    fn sweeping_forgets_ended_periods_and_stale_windows() {
        let clock = Arc::new(ManualClock::new(UnixMs(1_000_000_000_000)));
        let store = MemoryStore::new(clock.clone());
        let key = LimitKey::new("team:a");
        let limits = [BudgetLimit::new(key.clone(), Window::Minute, 100)];
        let Ok(Admission::Allowed(r)) = store.reserve_now(&limits, 10, Duration::from_secs(5))
        else {
            panic!("room expected");
        };
        store.settle_now(&r, 10).unwrap();
        store
            .rate_now(&key, RateMetric::Requests, 10, 1, false)
            .unwrap();
        store.acquire_now(&key, 1, Duration::from_secs(5)).unwrap();
        let count = |s: &MemoryStore| {
            s.shards
                .iter()
                .map(|m| {
                    let g = lock(m);
                    g.budgets.len() + g.rates.len() + g.leases.len()
                })
                .sum::<usize>()
        };
        assert_eq!(count(&store), 3);
        clock.advance(Duration::from_secs(180));
        for m in store.shards.iter() {
            lock(m).maybe_sweep(clock.now());
        }
        assert_eq!(count(&store), 0);
    }

    #[test]
    fn session_counters_are_forgotten_a_day_after_their_last_use() {
        let clock = Arc::new(ManualClock::new(UnixMs(1_000_000_000_000)));
        let store = MemoryStore::new(clock.clone());
        let key = LimitKey::new("session:p:abc");
        let limits = [BudgetLimit::new(key.clone(), Window::Session, 100)];
        let spend = |amount| {
            let Ok(Admission::Allowed(r)) =
                store.reserve_now(&limits, amount, Duration::from_secs(5))
            else {
                panic!("room expected");
            };
            store.settle_now(&r, amount).unwrap();
        };
        spend(60);
        // Used again within the day: the count stays, and the day restarts from this use.
        clock.advance(SESSION_IDLE - Duration::from_secs(60));
        spend(30);
        clock.advance(SESSION_IDLE - Duration::from_secs(60));
        assert_eq!(
            store
                .spent_now(&key, Window::Session)
                .unwrap()
                .settled_nanos,
            90
        );
        assert!(matches!(
            store.reserve_now(&limits, 20, Duration::from_secs(5)),
            Ok(Admission::Denied { .. })
        ));
        // A day without use: forgotten, before any sweep and by the sweep alike.
        clock.advance(Duration::from_secs(61));
        assert_eq!(
            store
                .spent_now(&key, Window::Session)
                .unwrap()
                .settled_nanos,
            0
        );
        spend(20);
        clock.advance(SESSION_IDLE);
        for m in store.shards.iter() {
            lock(m).maybe_sweep(clock.now());
        }
        assert!(store.shards.iter().all(|m| lock(m).budgets.is_empty()));
        // `Total` counters are never forgotten.
        let total = [BudgetLimit::new(key.clone(), Window::Total, 100)];
        let Ok(Admission::Allowed(r)) = store.reserve_now(&total, 5, Duration::from_secs(5)) else {
            panic!("room expected");
        };
        store.settle_now(&r, 5).unwrap();
        clock.advance(SESSION_IDLE * 3);
        assert_eq!(
            store.spent_now(&key, Window::Total).unwrap().settled_nanos,
            5
        );
    }

    #[test]
    fn settling_into_an_ended_period_changes_nothing() {
        let clock = Arc::new(ManualClock::new(UnixMs(1_000_000_000_000)));
        let store = MemoryStore::new(clock.clone());
        let key = LimitKey::new("k");
        let limits = [BudgetLimit::new(key.clone(), Window::Minute, 100)];
        let Ok(Admission::Allowed(r)) = store.reserve_now(&limits, 10, Duration::from_secs(600))
        else {
            panic!("room expected");
        };
        clock.advance(Duration::from_secs(60));
        assert_eq!(store.settle_now(&r, 50), Ok(Settlement::Replaced));
        let s = store.spent_now(&key, Window::Minute).unwrap();
        assert_eq!((s.settled_nanos, s.reserved_nanos), (0, 0));
    }
}
