//! When to try again, where, and after how long.
//!
//! A request's attempts follow its plan: first every target once, in plan order, with no wait
//! between them (a *fallback* to another target needs no backoff); then up to `retries` more
//! attempts (*retries*), cycling through the targets from the preferred one again, each after
//! an exponential backoff with full jitter — or after the target's `retry-after`, whichever is
//! longer. A target asking for a longer `retry-after` than the route allows is not retried.
//! Nothing starts, and no wait extends, past the route's deadline.
//!
//! [`Schedule`] is the pure state machine of that loop; the forward phase drives it with the
//! real outcomes, so every rule here is tested without I/O.

use crate::config::{FailureClass, RetryConfig};
use std::time::{Duration, Instant};

/// Why an attempt failed before anything reached the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The upstream answered with this status.
    Status(u16),
    /// No response head (or, where checked, first event) within the time to first byte.
    Timeout,
    /// No connection could be made.
    Connect,
}

/// The statuses a route never falls back on, whatever its configuration says: the request
/// itself is wrong, and every other target would say the same.
fn is_callers_fault(status: u16) -> bool {
    (400..500).contains(&status) && status != 429 && status != 408
}

/// The failures a route falls back on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FallbackOn {
    statuses: Vec<u16>,
    timeout: bool,
    connect: bool,
}

impl Default for FallbackOn {
    /// `[429, 500, 502, 503, 504, 529, "timeout", "connect"]`.
    fn default() -> Self {
        Self {
            statuses: vec![429, 500, 502, 503, 504, 529],
            timeout: true,
            connect: true,
        }
    }
}

impl FallbackOn {
    /// Validates a `fallback_on` list: error statuses (no 4xx but 408 and 429), `"timeout"`,
    /// `"connect"`.
    pub fn compile(list: &[FailureClass]) -> Result<Self, String> {
        let mut out = Self {
            statuses: Vec::new(),
            timeout: false,
            connect: false,
        };
        for c in list {
            match c {
                FailureClass::Status(s) if !(400..=599).contains(s) => {
                    return Err(format!("fallback_on: {s} is not an error status"));
                }
                FailureClass::Status(s) if is_callers_fault(*s) => {
                    return Err(format!(
                        "fallback_on: {s} means the request itself is wrong; another target would refuse it too (only 408 and 429 of the 4xx are allowed)"
                    ));
                }
                FailureClass::Status(s) => out.statuses.push(*s),
                FailureClass::Named(n) if n == "timeout" => out.timeout = true,
                FailureClass::Named(n) if n == "connect" => out.connect = true,
                FailureClass::Named(n) => {
                    return Err(format!(
                        "fallback_on: '{n}' is neither a status nor \"timeout\" / \"connect\""
                    ));
                }
            }
        }
        Ok(out)
    }

    /// Whether this failure moves on to another attempt.
    pub fn matches(&self, f: Failure) -> bool {
        match f {
            Failure::Status(s) => self.statuses.contains(&s),
            Failure::Timeout => self.timeout,
            Failure::Connect => self.connect,
        }
    }

    /// Whether `status` counts against the target's health: it is one the route would fall
    /// back on, or a 5xx.
    pub fn is_target_failure(&self, status: u16) -> bool {
        status >= 500 || self.statuses.contains(&status)
    }
}

/// Backoff and deadline of a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts after the fallback pass.
    pub retries: u32,
    /// Ceiling of the first retry's backoff, doubled for each next one.
    pub backoff_base: Duration,
    /// The largest backoff ceiling.
    pub backoff_max: Duration,
    /// The longest `retry-after` honoured; longer ones mean no retry of that target.
    pub retry_after_max: Duration,
    /// From the first attempt, the time after which nothing starts.
    pub deadline: Duration,
}

impl RetryPolicy {
    /// From `retry = { … }`.
    pub fn compile(c: &RetryConfig) -> Self {
        Self {
            retries: c.retries,
            backoff_base: Duration::from_millis(c.backoff_base_ms),
            backoff_max: Duration::from_millis(c.backoff_max_ms),
            retry_after_max: Duration::from_millis(c.retry_after_max_ms),
            deadline: Duration::from_millis(c.deadline_ms),
        }
    }

    /// One attempt, no retries: the behaviour of requests no route applies to.
    pub fn single() -> Self {
        Self {
            retries: 0,
            ..Self::compile(&RetryConfig::default())
        }
    }

    /// The ceiling of the n-th retry's backoff (0-based): `min(max, base * 2^n)`.
    pub fn backoff_ceiling(&self, n: u32) -> Duration {
        let factor = 1u32.checked_shl(n.min(30)).unwrap_or(u32::MAX);
        self.backoff_base
            .saturating_mul(factor)
            .min(self.backoff_max)
    }
}

/// How an attempt relates to the ones before it (recorded in the journal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptKind {
    /// The first attempt of the request.
    First,
    /// Another target, right after a failure.
    Fallback,
    /// A target tried again after a backoff.
    Retry,
}

impl AttemptKind {
    /// `first`, `fallback` or `retry`.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptKind::First => "first",
            AttemptKind::Fallback => "fallback",
            AttemptKind::Retry => "retry",
        }
    }
}

/// The next attempt: which target, what kind, and how long to wait before it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    /// The attempt's index in the plan.
    pub index: usize,
    /// First, fallback or retry.
    pub kind: AttemptKind,
    /// How long to wait before sending it.
    pub wait: Duration,
    /// The target's breaker refuses, but nothing better is left: attempt it anyway.
    pub forced: bool,
}

/// What the schedule learnt about one target from its failures.
#[derive(Debug, Clone, Copy, Default)]
struct TargetState {
    /// Not before this instant (its `retry-after`).
    ready_at: Option<Instant>,
    /// Asked for more than `retry_after_max`; not retried.
    no_retry: bool,
}

/// The attempt loop of one request. Allocates nothing until an attempt fails, so the common
/// case — the first attempt answers — costs a few words on the stack.
#[derive(Debug)]
pub struct Schedule {
    n: usize,
    policy_retries: u32,
    backoff_base: Duration,
    backoff_max: Duration,
    retry_after_max: Duration,
    deadline: Instant,
    pass_pos: usize,
    attempts: u32,
    retries_done: u32,
    cursor: usize,
    /// Per target, once some attempt failed.
    targets: Vec<TargetState>,
    /// Jitter fraction of the next backoff, drawn at each failure so that [`Self::peek`] and
    /// [`Self::next`] agree.
    jitter: f64,
}

impl Schedule {
    /// The loop over `n` targets of a plan, for a request that arrived at `started`.
    pub fn new(n: usize, policy: &RetryPolicy, started: Instant) -> Self {
        Self {
            n,
            policy_retries: if n == 0 { 0 } else { policy.retries },
            backoff_base: policy.backoff_base,
            backoff_max: policy.backoff_max,
            retry_after_max: policy.retry_after_max,
            deadline: started + policy.deadline,
            pass_pos: 0,
            attempts: 0,
            retries_done: 0,
            cursor: 0,
            targets: Vec::new(),
            jitter: 0.0,
        }
    }

    /// Attempts started so far.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    fn target(&self, i: usize) -> TargetState {
        self.targets.get(i).copied().unwrap_or_default()
    }

    /// What [`Self::next`] would return, without taking it.
    pub fn peek(&self, now: Instant, available: impl Fn(usize) -> bool) -> Option<Step> {
        if now >= self.deadline {
            return None;
        }
        for i in self.pass_pos..self.n {
            let last = i + 1 == self.n;
            if available(i) || (last && self.attempts == 0) {
                let kind = if self.attempts == 0 {
                    AttemptKind::First
                } else {
                    AttemptKind::Fallback
                };
                return Some(Step {
                    index: i,
                    kind,
                    wait: Duration::ZERO,
                    forced: !available(i),
                });
            }
        }
        if self.retries_done >= self.policy_retries {
            return None;
        }
        let order = (0..self.n).map(|k| (self.cursor + k) % self.n);
        let (j, forced) = order
            .clone()
            .find(|&j| !self.target(j).no_retry && available(j))
            .map(|j| (j, false))
            .or_else(|| {
                order
                    .clone()
                    .find(|&j| !self.target(j).no_retry)
                    .map(|j| (j, true))
            })?;
        let factor = 1u32
            .checked_shl(self.retries_done.min(30))
            .unwrap_or(u32::MAX);
        let ceiling = self
            .backoff_base
            .saturating_mul(factor)
            .min(self.backoff_max);
        let mut wait = ceiling.mul_f64(self.jitter);
        if let Some(at) = self.target(j).ready_at {
            wait = wait.max(at.saturating_duration_since(now));
        }
        if now + wait > self.deadline {
            return None;
        }
        Some(Step {
            index: j,
            kind: AttemptKind::Retry,
            wait,
            forced,
        })
    }

    /// Takes the next attempt, or `None` when the request has used its attempts or its time.
    pub fn next(&mut self, now: Instant, available: impl Fn(usize) -> bool) -> Option<Step> {
        let step = self.peek(now, available)?;
        self.attempts += 1;
        match step.kind {
            AttemptKind::First | AttemptKind::Fallback => self.pass_pos = step.index + 1,
            AttemptKind::Retry => {
                self.pass_pos = self.n;
                self.retries_done += 1;
                self.cursor = (step.index + 1) % self.n;
            }
        }
        Some(step)
    }

    /// Notes that the attempt on `index` failed, with the upstream's `retry-after` if any.
    pub fn failed(&mut self, index: usize, retry_after: Option<Duration>, now: Instant) {
        self.jitter = rand::random();
        let Some(ra) = retry_after else {
            return;
        };
        if index >= self.n {
            return;
        }
        if self.targets.is_empty() {
            self.targets = vec![TargetState::default(); self.n];
        }
        let t = &mut self.targets[index];
        if ra > self.retry_after_max {
            t.no_retry = true;
        } else {
            t.ready_at = Some(now + ra);
        }
    }
}

/// Reads a `retry-after` header value: delay-seconds (the form model APIs send). HTTP dates
/// are not used by these APIs and are ignored.
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    v.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(retries: u32) -> RetryPolicy {
        RetryPolicy {
            retries,
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_millis(1_000),
            retry_after_max: Duration::from_secs(10),
            deadline: Duration::from_secs(30),
        }
    }

    #[test]
    fn one_pass_then_retries_with_backoff() {
        let t0 = Instant::now();
        let mut s = Schedule::new(2, &policy(3), t0);
        let all = |_| true;
        let a = s.next(t0, all).expect("first");
        assert_eq!(
            (a.index, a.kind, a.wait),
            (0, AttemptKind::First, Duration::ZERO)
        );
        let b = s.next(t0, all).expect("fallback");
        assert_eq!(
            (b.index, b.kind, b.wait),
            (1, AttemptKind::Fallback, Duration::ZERO)
        );
        let mut seen = Vec::new();
        for n in 0..3 {
            let r = s.next(t0, all).expect("retry");
            assert_eq!(r.kind, AttemptKind::Retry);
            assert!(r.wait <= policy(3).backoff_ceiling(n), "{r:?}");
            seen.push(r.index);
        }
        assert_eq!(
            seen,
            [0, 1, 0],
            "retries start again from the preferred target"
        );
        assert_eq!(s.next(t0, all), None);
        assert_eq!(s.attempts(), 5);
    }

    #[test]
    fn retry_after_is_waited_for_up_to_the_cap() {
        let t0 = Instant::now();
        let mut s = Schedule::new(1, &policy(2), t0);
        let all = |_| true;
        s.next(t0, all).expect("first");
        s.failed(0, Some(Duration::from_secs(2)), t0);
        let r = s.peek(t0, all).expect("retry");
        assert!(r.wait >= Duration::from_secs(2), "{r:?}");
        assert_eq!(s.next(t0, all).map(|r| r.index), Some(0));
        s.failed(0, Some(Duration::from_secs(60)), t0);
        assert_eq!(s.next(t0, all), None, "asks for longer than the cap");
    }

    #[test]
    fn the_deadline_stops_attempts_and_waits() {
        let t0 = Instant::now();
        let mut p = policy(5);
        p.deadline = Duration::from_secs(3);
        let mut s = Schedule::new(1, &p, t0);
        s.next(t0, |_| true).expect("first");
        s.failed(0, Some(Duration::from_secs(5)), t0);
        assert_eq!(
            s.next(t0, |_| true),
            None,
            "the wait would pass the deadline"
        );
        let mut s = Schedule::new(2, &p, t0);
        assert_eq!(s.next(t0 + Duration::from_secs(3), |_| true), None);
    }

    #[test]
    fn unavailable_targets_are_skipped_unless_nothing_else_is_left() {
        let t0 = Instant::now();
        let mut s = Schedule::new(3, &policy(1), t0);
        let only_2 = |i| i == 2;
        let a = s.next(t0, only_2).expect("first");
        assert_eq!((a.index, a.kind, a.forced), (2, AttemptKind::First, false));
        // The retry goes to the available target, not to the breaker-open ones.
        let r = s.next(t0, only_2).expect("retry");
        assert_eq!((r.index, r.forced), (2, false));

        let mut s = Schedule::new(2, &policy(0), t0);
        let a = s.next(t0, |_| false).expect("forced");
        assert_eq!((a.index, a.forced), (1, true), "the last target is forced");
        assert_eq!(s.next(t0, |_| false), None);
    }

    #[test]
    fn fallback_lists_refuse_the_callers_own_errors() {
        let ok = FallbackOn::compile(&[
            FailureClass::Status(429),
            FailureClass::Status(529),
            FailureClass::Named("timeout".into()),
        ])
        .expect("valid");
        assert!(ok.matches(Failure::Status(529)));
        assert!(ok.matches(Failure::Timeout));
        assert!(!ok.matches(Failure::Connect));
        assert!(!ok.matches(Failure::Status(500)));
        for bad in [
            FailureClass::Status(400),
            FailureClass::Status(404),
            FailureClass::Status(200),
            FailureClass::Named("slow".into()),
        ] {
            assert!(
                FallbackOn::compile(std::slice::from_ref(&bad)).is_err(),
                "{bad:?}"
            );
        }
        let d = FallbackOn::default();
        for f in [
            Failure::Status(429),
            Failure::Status(500),
            Failure::Status(502),
            Failure::Status(503),
            Failure::Status(504),
            Failure::Status(529),
            Failure::Timeout,
            Failure::Connect,
        ] {
            assert!(d.matches(f), "{f:?}");
        }
        assert!(!d.matches(Failure::Status(400)));
        assert!(!d.matches(Failure::Status(413)));
    }

    #[test]
    fn retry_after_values() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after(" 1.5 "),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }
}
