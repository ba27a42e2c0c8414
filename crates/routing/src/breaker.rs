//! A circuit breaker per target: passive outlier ejection from the failures requests see.
//!
//! Closed: requests flow; `failures` consecutive failures open it. Open: the planner puts the
//! target last and attempts skip it, until `open_for` has passed. Half-open: exactly one
//! request (the probe) is let through; its success closes the breaker, its failure opens it
//! again for another `open_for`. A probe that ends without a verdict (the client left) frees
//! the slot for the next request.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Where a breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Requests flow; `failures` consecutive failures so far.
    Closed { failures: u32 },
    /// Requests are kept away until `until`.
    Open { until: Instant },
    /// One probe may go (`probing`: it is on its way).
    HalfOpen { probing: bool },
}

/// What a breaker allows one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    /// A normal attempt.
    Pass,
    /// The single attempt of a half-open breaker; its outcome decides the state.
    Probe,
    /// Not now.
    Refused,
}

/// One target's breaker.
#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    open_for: Duration,
    state: Mutex<BreakerState>,
}

impl Breaker {
    /// A closed breaker opening after `threshold` consecutive failures for `open_for`.
    pub fn new(threshold: u32, open_for: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            open_for,
            state: Mutex::new(BreakerState::Closed { failures: 0 }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BreakerState> {
        // Every transition leaves a valid state, so a poisoned lock holds one too.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current state.
    pub fn state(&self) -> BreakerState {
        *self.lock()
    }

    /// Whether a request could get a permit now (the planner's view; takes nothing).
    pub fn available(&self, now: Instant) -> bool {
        match *self.lock() {
            BreakerState::Closed { .. } => true,
            BreakerState::Open { until } => now >= until,
            BreakerState::HalfOpen { probing } => !probing,
        }
    }

    /// Asks to send one request.
    pub fn permit(&self, now: Instant) -> Permit {
        let mut s = self.lock();
        match *s {
            BreakerState::Closed { .. } => Permit::Pass,
            BreakerState::Open { until } if now >= until => {
                *s = BreakerState::HalfOpen { probing: true };
                Permit::Probe
            }
            BreakerState::Open { .. } | BreakerState::HalfOpen { probing: true } => Permit::Refused,
            BreakerState::HalfOpen { probing: false } => {
                *s = BreakerState::HalfOpen { probing: true };
                Permit::Probe
            }
        }
    }

    /// The target answered well; true when this closed the breaker.
    pub fn success(&self, permit: Permit) -> bool {
        let mut s = self.lock();
        match (*s, permit) {
            (BreakerState::HalfOpen { .. }, Permit::Probe) => {
                *s = BreakerState::Closed { failures: 0 };
                true
            }
            (BreakerState::Closed { .. }, _) => {
                *s = BreakerState::Closed { failures: 0 };
                false
            }
            // A request that started before the breaker opened says nothing about now.
            _ => false,
        }
    }

    /// The target failed; true when this opened the breaker.
    pub fn failure(&self, permit: Permit, now: Instant) -> bool {
        let mut s = self.lock();
        match (*s, permit) {
            (BreakerState::Closed { failures }, _) => {
                let failures = failures + 1;
                let opens = failures >= self.threshold;
                *s = if opens {
                    BreakerState::Open {
                        until: now + self.open_for,
                    }
                } else {
                    BreakerState::Closed { failures }
                };
                opens
            }
            (BreakerState::HalfOpen { .. }, Permit::Probe) => {
                *s = BreakerState::Open {
                    until: now + self.open_for,
                };
                true
            }
            _ => false,
        }
    }

    /// A probe ended without a verdict; the next request may probe.
    pub fn abandon(&self, permit: Permit) {
        let mut s = self.lock();
        if permit == Permit::Probe && *s == (BreakerState::HalfOpen { probing: true }) {
            *s = BreakerState::HalfOpen { probing: false };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_consecutive_failures_and_closes_after_a_probe() {
        let t0 = Instant::now();
        let open = Duration::from_secs(10);
        let b = Breaker::new(3, open);
        b.failure(Permit::Pass, t0);
        b.failure(Permit::Pass, t0);
        b.success(Permit::Pass);
        b.failure(Permit::Pass, t0);
        b.failure(Permit::Pass, t0);
        assert_eq!(
            b.state(),
            BreakerState::Closed { failures: 2 },
            "a success resets"
        );
        b.failure(Permit::Pass, t0);
        assert_eq!(b.state(), BreakerState::Open { until: t0 + open });
        assert!(!b.available(t0 + Duration::from_secs(9)));
        assert_eq!(b.permit(t0 + Duration::from_secs(9)), Permit::Refused);

        let t1 = t0 + open;
        assert!(b.available(t1));
        assert_eq!(b.permit(t1), Permit::Probe);
        assert_eq!(b.permit(t1), Permit::Refused, "one probe at a time");
        assert!(!b.available(t1));
        b.failure(Permit::Probe, t1);
        assert_eq!(b.state(), BreakerState::Open { until: t1 + open });

        let t2 = t1 + open;
        assert_eq!(b.permit(t2), Permit::Probe);
        b.abandon(Permit::Probe);
        assert_eq!(
            b.permit(t2),
            Permit::Probe,
            "an abandoned probe frees the slot"
        );
        // A late success from a request that started while closed does not close it.
        b.success(Permit::Pass);
        assert_eq!(b.state(), BreakerState::HalfOpen { probing: true });
        b.success(Permit::Probe);
        assert_eq!(b.state(), BreakerState::Closed { failures: 0 });
    }
}
