//! Counters behind budgets, rate limits and concurrency caps, with two stores of identical
//! semantics: [`MemoryStore`] for a single node and [`RedisStore`] shared by replicas.
//!
//! # Budgets: reserve, then settle
//!
//! Admission calls [`CounterStore::reserve_budget`] with every budget that applies to the request
//! (key, user, team, …). It is allowed iff, for every budget, `settled + reserved + amount <= cap`
//! in the budget's current period; the check and the reservation happen atomically across all
//! budgets, so two racing requests can never both take the last room. A reservation carries an
//! expiry so a crashed replica or a lost request gives its room back on its own.
//! [`CounterStore::settle_budget`] replaces the reservation by the actual cost (which is counted in
//! full even when it exceeds the estimate), [`CounterStore::release_budget`] drops it unused.
//!
//! Cost is charged to the period the request was admitted in: settling after that period ended
//! changes nothing (no one checks an ended period again). Settling after the reservation expired
//! still counts the actual cost ([`Settlement::Late`]): the money was spent.
//!
//! # What the cap guarantees
//!
//! - **Strict mode** (the estimate is the worst case, so `actual <= estimate`): settled spend never
//!   exceeds the cap. Every admission keeps `settled + reserved <= cap`, and replacing a reservation
//!   by a smaller actual keeps it so.
//! - **Standard mode** (a bounded estimate that the actual may exceed): let `t` be the last
//!   admission before the cap is crossed. Everything admitted by then fitted, so the final settled
//!   spend is at most `cap + Σ (actual − estimate)⁺` over the requests in flight at `t`. With a
//!   per-request ceiling `W` (from `max_tokens`) and estimate `e`, that is at most
//!   `in_flight × (W − e)`, and a concurrency cap `C` bounds it by `C × (W − e)`. Once settled spend
//!   passes the cap every further reservation, even of zero, is denied.
//!
//! Both bounds assume reservations outlive their requests (choose `ttl` above the longest request):
//! an expired reservation frees room that another request may take before the late settle lands.
//!
//! # Rate limits
//!
//! Fixed 60-second windows aligned to the Unix minute, read through a two-window weighted estimate
//! (`previous × (60 s − elapsed) / 60 s + current`): a request of `cost` is allowed iff
//! `estimate + cost <= limit`. A fresh window lets exactly `limit` through; a steady overload gets
//! about `limit` per minute, not the 2× a plain fixed window allows across a boundary.
//!
//! # Numbers
//!
//! Amounts and caps are nano-USD in `0..=MAX_NANOS` (2⁵³ − 1 ≈ $9 million): Redis evaluates the
//! checks in Lua, whose numbers are doubles, and keeping inputs below 2⁵³ keeps them exact.
//!
//! # Layout
//! - `period`: calendar periods (minute, day, week from Monday, month, total) in a UTC offset.
//! - `rate`: the weighted-window arithmetic both stores share.
//! - `memory`: the in-process store (sharded mutexes, lazy expiry).
//! - `redis`: the shared store (one Lua script, one round trip, per operation).

mod memory;
mod period;
mod rate;
mod redis;

pub use memory::MemoryStore;
pub use period::{Period, period_of};
pub use redis::{RedisConfig, RedisStore};

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Largest amount or cap in nano-USD that both stores handle exactly (2⁵³ − 1, ≈ $9 million).
pub const MAX_NANOS: i64 = (1 << 53) - 1;

/// Largest per-minute rate limit or cost (tokens or requests) that both stores handle exactly.
pub const MAX_RATE: u64 = 100_000_000_000;

/// Most budgets one reservation may span; a request has a handful (key, user, team, …).
pub const MAX_BUDGETS_PER_RESERVATION: usize = 32;

/// Longest TTL of a reservation or lease: far above any request, and within what Redis accepts.
pub const MAX_TTL: Duration = Duration::from_secs(30 * 86_400);

/// Largest UTC offset accepted for calendar windows, as in ISO 8601 (±18:00).
pub const MAX_TZ_OFFSET_MINUTES: i16 = 18 * 60;

/// Errors of the counter stores. The policy layer decides what an unavailable store means
/// (fail closed for hard budgets, local fallback for rate limits).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The shared store could not be reached or did not answer in time.
    #[error("counter store unavailable: {0}")]
    Unavailable(String),
    /// The store answered with something it should not have (a script error, a foreign value).
    #[error("counter store failed: {0}")]
    Backend(String),
    /// The store could not be set up from its configuration.
    #[error("counter store misconfigured: {0}")]
    Config(String),
    /// The caller passed a value outside the documented range; nothing was changed.
    #[error("invalid counter input: {0}")]
    InvalidInput(&'static str),
}

/// A point in time as milliseconds since the Unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixMs(pub i64);

impl UnixMs {
    /// This instant moved later by `d`, saturating at the end of representable time.
    pub fn saturating_add(self, d: Duration) -> Self {
        UnixMs(self.0.saturating_add(duration_ms(d)))
    }

    /// Milliseconds from `self` until `later` (negative if `later` is earlier).
    pub fn millis_until(self, later: UnixMs) -> i64 {
        later.0.saturating_sub(self.0)
    }
}

pub(crate) fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The time source of a store; injected so tests can cross period boundaries at will.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time.
    fn now(&self) -> UnixMs;
}

/// The machine's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixMs {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(duration_ms)
            .unwrap_or(0);
        UnixMs(ms)
    }
}

/// A clock that moves only when told to, for tests of expiry and period resets.
#[derive(Debug)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock standing at `at`.
    pub fn new(at: UnixMs) -> Self {
        ManualClock(AtomicI64::new(at.0))
    }

    /// Moves the clock to `at` (backwards too).
    pub fn set(&self, at: UnixMs) {
        self.0.store(at.0, Ordering::SeqCst);
    }

    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: Duration) {
        let ms = duration_ms(d);
        // fetch_update never fails with a closure that always returns Some.
        let _ = self
            .0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| {
                Some(v.saturating_add(ms))
            });
    }
}

impl Clock for ManualClock {
    fn now(&self) -> UnixMs {
        UnixMs(self.0.load(Ordering::SeqCst))
    }
}

/// The scope a counter belongs to, such as `team:platform`, `key:key_123` or `session:abc`.
/// Cheap to clone; any string is accepted, and distinct strings never share a counter.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LimitKey(Arc<str>);

impl LimitKey {
    /// A key from a full scope string.
    pub fn new(scope: impl AsRef<str>) -> Self {
        LimitKey(Arc::from(scope.as_ref()))
    }

    /// The key `kind:id`, e.g. `LimitKey::scoped("team", "platform")`.
    pub fn scoped(kind: &str, id: &str) -> Self {
        LimitKey(Arc::from(format!("{kind}:{id}")))
    }

    /// The scope string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LimitKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The period a budget counts over. Calendar windows reset at local midnight of the given UTC
/// offset (weeks on Monday, months on the 1st); `Total` never resets; `Session` never resets
/// but is forgotten once unused for [`SESSION_IDLE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Window {
    /// The current UTC minute.
    Minute,
    /// The current local day.
    Day {
        /// Minutes east of UTC, e.g. 60 for CET, -300 for EST.
        tz_offset_minutes: i16,
    },
    /// The current local week, Monday to Sunday.
    Week {
        /// Minutes east of UTC.
        tz_offset_minutes: i16,
    },
    /// The current local calendar month.
    Month {
        /// Minutes east of UTC.
        tz_offset_minutes: i16,
    },
    /// All time.
    Total,
    /// All time while in use: a counter untouched for [`SESSION_IDLE`] is forgotten, so the
    /// counters of the many sessions that simply end do not pile up.
    Session,
}

/// How long a [`Window::Session`] counter outlives its last use: a Claude Code session idle
/// for a day is over, and a resumed one starts its caps afresh.
pub const SESSION_IDLE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

impl Window {
    fn validate(self) -> Result<(), StoreError> {
        match self {
            Window::Day { tz_offset_minutes }
            | Window::Week { tz_offset_minutes }
            | Window::Month { tz_offset_minutes }
                if tz_offset_minutes.unsigned_abs() > MAX_TZ_OFFSET_MINUTES.unsigned_abs() =>
            {
                Err(StoreError::InvalidInput("time zone offset beyond ±18:00"))
            }
            _ => Ok(()),
        }
    }
}

impl fmt::Display for Window {
    /// A stable short name, also used in Redis key names.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Window::Minute => f.write_str("minute"),
            Window::Day { tz_offset_minutes } => write!(f, "day{tz_offset_minutes:+}"),
            Window::Week { tz_offset_minutes } => write!(f, "week{tz_offset_minutes:+}"),
            Window::Month { tz_offset_minutes } => write!(f, "month{tz_offset_minutes:+}"),
            Window::Total => f.write_str("total"),
            Window::Session => f.write_str("session"),
        }
    }
}

/// One budget a reservation must fit in: a scope, its period and its cap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetLimit {
    /// Whose budget.
    pub key: LimitKey,
    /// Over which period.
    pub window: Window,
    /// The cap in nano-USD, `0..=MAX_NANOS`.
    pub cap_nanos: i64,
}

impl BudgetLimit {
    /// A budget of `cap_nanos` for `key` over `window`.
    pub fn new(key: LimitKey, window: Window, cap_nanos: i64) -> Self {
        BudgetLimit {
            key,
            window,
            cap_nanos,
        }
    }
}

/// Identifies a reservation or a concurrency lease; unique across replicas (a random per-store
/// prefix and a counter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LeaseId(pub u128);

impl fmt::Display for LeaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

/// One budget a reservation is held in, with the period it was admitted into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservedKey {
    /// Whose budget.
    pub key: LimitKey,
    /// Over which period kind.
    pub window: Window,
    /// The period the reservation (and later its cost) counts in.
    pub period: Period,
}

/// Room held in one or more budgets until it is settled, released or expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// Unique id of this reservation.
    pub id: LeaseId,
    /// Every budget it is held in.
    pub keys: Vec<ReservedKey>,
    /// The amount held in each of them, in nano-USD.
    pub amount_nanos: i64,
    /// When the store gives the room back on its own.
    pub expires_at: UnixMs,
}

/// The answer to a budget reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Every budget had room; the room is now held.
    Allowed(Reservation),
    /// This budget (the first one without room, in the caller's order) refused; nothing was held.
    Denied {
        /// Whose budget refused.
        key: LimitKey,
        /// Over which period.
        window: Window,
        /// Settled plus reserved spend in the period, in nano-USD.
        used_nanos: i64,
        /// The cap in nano-USD.
        cap_nanos: i64,
        /// When the period resets (`None` for `Window::Total`).
        resets_at: Option<UnixMs>,
    },
}

/// How a settlement found its reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    /// The reservation was still held and is now replaced by the actual cost.
    Replaced,
    /// The reservation had already expired, been released or settled; the actual cost was counted
    /// anyway, because the money was spent. Frequent `Late` settlements mean the TTL is too short.
    Late,
}

/// Spend in a budget's current period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spent {
    /// Settled (actual) cost in nano-USD.
    pub settled_nanos: i64,
    /// Cost held by live reservations in nano-USD.
    pub reserved_nanos: i64,
    /// The period these figures belong to.
    pub period: Period,
}

/// What a rate limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateMetric {
    /// Requests per minute (cost 1 per request).
    Requests,
    /// Input plus output tokens per minute.
    Tokens,
}

impl RateMetric {
    pub(crate) fn tag(self) -> &'static str {
        match self {
            RateMetric::Requests => "rpm",
            RateMetric::Tokens => "tpm",
        }
    }
}

/// The answer to a rate check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    /// Counted; `remaining` is what the estimate leaves of the limit now.
    Allowed {
        /// Units left under the limit after this request.
        remaining: u64,
    },
    /// Not counted; trying again after `retry_after_secs` (1..=60) should succeed if nothing else
    /// arrives meanwhile (a cost above the limit never succeeds and gets 60).
    Denied {
        /// Seconds to wait before retrying.
        retry_after_secs: u32,
    },
}

/// A held concurrency slot; it lapses at `expires_at` if never released (a replica died).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permit {
    /// Unique id of this lease.
    pub id: LeaseId,
    /// Whose concurrency cap it counts against.
    pub key: LimitKey,
    /// When the slot frees itself.
    pub expires_at: UnixMs,
}

/// Everything one admission takes from the counters: concurrency slots, rate checks and budget
/// reservations, checked together and taken only if all pass.
#[derive(Debug, Clone, Default)]
pub struct AdmitPlan {
    /// Concurrency slots: scope and maximum.
    pub slots: Vec<(LimitKey, u32)>,
    /// Rate checks: scope, metric, limit per minute, cost.
    pub rates: Vec<(LimitKey, RateMetric, u64, u64)>,
    /// Reservation groups: the budgets of a group each hold the group's amount (nano-USD, or
    /// units for counters such as session turns).
    pub budgets: Vec<(Vec<BudgetLimit>, i64)>,
}

/// The answer to an [`AdmitPlan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanOutcome {
    /// Everything was taken: one reservation per budget group and one permit per slot, in plan
    /// order.
    Taken {
        reservations: Vec<Reservation>,
        permits: Vec<Permit>,
    },
    /// The slot at this index of `plan.slots` is full.
    SlotsFull { index: usize },
    /// The rate check at this index of `plan.rates` refused.
    RateLimited { index: usize, retry_after_secs: u32 },
    /// The budget group at this index refused with this denial.
    OverBudget { group: usize, denied: Admission },
}

/// The future every store operation returns: boxed so the trait works behind `&dyn`.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// The counters the admit and settle phases need. Every operation is atomic and, on the shared
/// store, one round trip; both stores pass the same behaviour suite.
pub trait CounterStore: Send + Sync {
    /// Holds `amount_nanos` in every budget of `limits` for `ttl`, all or nothing: allowed iff each
    /// budget has `settled + reserved + amount <= cap` in its current period.
    fn reserve_budget<'a>(
        &'a self,
        limits: &'a [BudgetLimit],
        amount_nanos: i64,
        ttl: Duration,
    ) -> StoreFuture<'a, Admission>;

    /// Replaces the reservation by the actual cost in every budget whose period is still current;
    /// the actual may exceed the reservation and is counted in full.
    fn settle_budget<'a>(
        &'a self,
        reservation: &'a Reservation,
        actual_nanos: i64,
    ) -> StoreFuture<'a, Settlement>;

    /// Gives the reservation's room back unused (the request cost nothing).
    fn release_budget<'a>(&'a self, reservation: &'a Reservation) -> StoreFuture<'a, ()>;

    /// Settled and reserved spend of `key` in the current period of `window`.
    fn spent<'a>(&'a self, key: &'a LimitKey, window: Window) -> StoreFuture<'a, Spent>;

    /// Sets the settled spend of the current period back to zero (an administrator's explicit
    /// reset); live reservations stay held.
    fn reset_budget<'a>(&'a self, key: &'a LimitKey, window: Window) -> StoreFuture<'a, ()>;

    /// Counts `cost` against `limit_per_minute` if the weighted estimate leaves room, otherwise
    /// counts nothing and says when to retry.
    fn rate_check<'a>(
        &'a self,
        key: &'a LimitKey,
        metric: RateMetric,
        limit_per_minute: u64,
        cost: u64,
    ) -> StoreFuture<'a, RateDecision>;

    /// Counts `cost` without checking, for usage learned only after the fact (output tokens).
    fn rate_record<'a>(
        &'a self,
        key: &'a LimitKey,
        metric: RateMetric,
        cost: u64,
    ) -> StoreFuture<'a, ()>;

    /// Takes one of `max` concurrent slots of `key` for at most `ttl`, or `None` if all are taken.
    fn acquire_concurrency<'a>(
        &'a self,
        key: &'a LimitKey,
        max: u32,
        ttl: Duration,
    ) -> StoreFuture<'a, Option<Permit>>;

    /// Frees the slot; freeing an expired or already freed slot does nothing.
    fn release_concurrency<'a>(&'a self, permit: &'a Permit) -> StoreFuture<'a, ()>;

    /// Checks and takes a whole admission plan. The shared store does it atomically in one round
    /// trip (nothing is taken unless everything passes); this default runs the operations in
    /// order and gives back slots and reservations taken before a refusal (rate counts already
    /// taken stay, an over-count of at most one request per check).
    fn admit_plan<'a>(
        &'a self,
        plan: &'a AdmitPlan,
        ttl: Duration,
    ) -> StoreFuture<'a, PlanOutcome> {
        Box::pin(async move {
            let mut permits = Vec::new();
            let mut reservations = Vec::new();
            let outcome = 'check: {
                for (index, (key, max)) in plan.slots.iter().enumerate() {
                    match self.acquire_concurrency(key, *max, ttl).await {
                        Ok(Some(p)) => permits.push(p),
                        Ok(None) => break 'check Ok(PlanOutcome::SlotsFull { index }),
                        Err(e) => break 'check Err(e),
                    }
                }
                for (index, (key, metric, limit, cost)) in plan.rates.iter().enumerate() {
                    match self.rate_check(key, *metric, *limit, *cost).await {
                        Ok(RateDecision::Allowed { .. }) => {}
                        Ok(RateDecision::Denied { retry_after_secs }) => {
                            break 'check Ok(PlanOutcome::RateLimited {
                                index,
                                retry_after_secs,
                            });
                        }
                        Err(e) => break 'check Err(e),
                    }
                }
                for (group, (limits, amount)) in plan.budgets.iter().enumerate() {
                    match self.reserve_budget(limits, *amount, ttl).await {
                        Ok(Admission::Allowed(r)) => reservations.push(r),
                        Ok(denied) => break 'check Ok(PlanOutcome::OverBudget { group, denied }),
                        Err(e) => break 'check Err(e),
                    }
                }
                return Ok(PlanOutcome::Taken {
                    reservations,
                    permits,
                });
            };
            for p in &permits {
                let _ = self.release_concurrency(p).await;
            }
            for r in &reservations {
                let _ = self.release_budget(r).await;
            }
            outcome
        })
    }
}

/// Checks amounts and TTLs and merges repeated budgets (same key and window: the smaller cap
/// wins), so both stores see the same clean input.
pub(crate) fn normalise_limits(
    limits: &[BudgetLimit],
    amount_nanos: i64,
    ttl: Duration,
) -> Result<Vec<BudgetLimit>, StoreError> {
    check_nanos(amount_nanos)?;
    check_ttl(ttl)?;
    if limits.len() > MAX_BUDGETS_PER_RESERVATION {
        return Err(StoreError::InvalidInput(
            "too many budgets in one reservation",
        ));
    }
    let mut out: Vec<BudgetLimit> = Vec::with_capacity(limits.len());
    for l in limits {
        l.window.validate()?;
        if !(0..=MAX_NANOS).contains(&l.cap_nanos) {
            return Err(StoreError::InvalidInput("budget cap outside 0..=MAX_NANOS"));
        }
        match out
            .iter_mut()
            .find(|o| o.key == l.key && o.window == l.window)
        {
            Some(o) => o.cap_nanos = o.cap_nanos.min(l.cap_nanos),
            None => out.push(l.clone()),
        }
    }
    Ok(out)
}

pub(crate) fn check_nanos(n: i64) -> Result<(), StoreError> {
    if (0..=MAX_NANOS).contains(&n) {
        Ok(())
    } else {
        Err(StoreError::InvalidInput("amount outside 0..=MAX_NANOS"))
    }
}

pub(crate) fn check_ttl(ttl: Duration) -> Result<(), StoreError> {
    if ttl.as_millis() == 0 {
        Err(StoreError::InvalidInput("ttl below one millisecond"))
    } else if ttl > MAX_TTL {
        Err(StoreError::InvalidInput("ttl above MAX_TTL"))
    } else {
        Ok(())
    }
}

pub(crate) fn check_rate(n: u64) -> Result<(), StoreError> {
    if n <= MAX_RATE {
        Ok(())
    } else {
        Err(StoreError::InvalidInput(
            "rate limit or cost above MAX_RATE",
        ))
    }
}

/// Makes lease ids unique across replicas without a round trip: a random prefix per store and a
/// counter.
#[derive(Debug)]
pub(crate) struct IdSource {
    prefix: u64,
    next: AtomicU64,
}

impl IdSource {
    pub(crate) fn new() -> Self {
        use ring::rand::{SecureRandom, SystemRandom};
        let mut b = [0u8; 8];
        let prefix = match SystemRandom::new().fill(&mut b) {
            Ok(()) => u64::from_le_bytes(b),
            // Without the OS generator, the start time in nanoseconds still separates replicas
            // started at different instants.
            Err(_) => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0),
        };
        IdSource {
            prefix,
            next: AtomicU64::new(1),
        }
    }

    pub(crate) fn next(&self) -> LeaseId {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        LeaseId((u128::from(self.prefix) << 64) | u128::from(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_budgets_merge_to_the_smaller_cap() {
        let k = LimitKey::new("team:a");
        let limits = [
            BudgetLimit::new(k.clone(), Window::Total, 10),
            BudgetLimit::new(LimitKey::new("key:b"), Window::Total, 7),
            BudgetLimit::new(k.clone(), Window::Total, 4),
        ];
        let out = normalise_limits(&limits, 1, Duration::from_secs(1)).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].cap_nanos, 4);
    }

    #[test]
    fn out_of_range_inputs_are_refused() {
        let ttl = Duration::from_secs(1);
        assert!(normalise_limits(&[], -1, ttl).is_err());
        assert!(normalise_limits(&[], MAX_NANOS + 1, ttl).is_err());
        assert!(normalise_limits(&[], 1, Duration::ZERO).is_err());
        assert!(normalise_limits(&[], 1, Duration::MAX).is_err());
        let bad_tz = BudgetLimit::new(
            LimitKey::new("a"),
            Window::Day {
                tz_offset_minutes: i16::MIN,
            },
            1,
        );
        assert!(normalise_limits(&[bad_tz], 1, ttl).is_err());
        let bad_cap = BudgetLimit::new(LimitKey::new("a"), Window::Total, -5);
        assert!(normalise_limits(&[bad_cap], 1, ttl).is_err());
    }

    #[test]
    fn window_names_are_stable() {
        assert_eq!(
            Window::Day {
                tz_offset_minutes: -300
            }
            .to_string(),
            "day-300"
        );
        assert_eq!(
            Window::Month {
                tz_offset_minutes: 0
            }
            .to_string(),
            "month+0"
        );
    }

    #[test]
    fn lease_ids_differ() {
        let ids = IdSource::new();
        assert_ne!(ids.next(), ids.next());
        assert_eq!(ids.next().to_string().len(), 32);
    }
}
