//! What this replica knows about one target: its breaker, a moving average of time to first
//! byte, and how many requests it has in flight. Updated by every attempt through a [`Lease`].

use crate::breaker::{Breaker, BreakerState, Permit};
use crate::config::RoutingConfig;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn since_epoch_ms(t: Instant) -> u64 {
    t.saturating_duration_since(epoch()).as_millis() as u64 + 1
}

/// The live state of one target (a provider, or a provider with a model of its own).
#[derive(Debug)]
pub struct Health {
    /// The target's name, for log lines.
    name: String,
    breaker: Breaker,
    alpha: f64,
    stale_after: Duration,
    /// Moving average of time to first byte in microseconds; 0 until the first sample.
    ttfb_us: AtomicU64,
    /// When the average last got a sample (ms since the process epoch, 0 = never).
    sampled_ms: AtomicU64,
    in_flight: AtomicUsize,
}

impl Health {
    /// Fresh health of target `name`: breaker closed, latency unknown, nothing in flight.
    pub fn new(name: &str, cfg: &RoutingConfig) -> Self {
        // Touch the epoch first so sample times are never before it.
        let _ = epoch();
        Self {
            name: name.to_string(),
            breaker: Breaker::new(
                cfg.breaker_failures,
                Duration::from_millis(cfg.breaker_open_ms),
            ),
            alpha: cfg.latency_alpha.clamp(0.01, 1.0),
            stale_after: Duration::from_millis(cfg.latency_stale_ms),
            ttfb_us: AtomicU64::new(0),
            sampled_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        }
    }

    /// Whether the breaker would let a request through now.
    pub fn available(&self, now: Instant) -> bool {
        self.breaker.available(now)
    }

    /// The breaker's state.
    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    /// Requests to this target in flight from this replica.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// The moving average of time to first byte, if any was measured.
    pub fn ttfb(&self) -> Option<Duration> {
        match self.ttfb_us.load(Ordering::Relaxed) {
            0 => None,
            us => Some(Duration::from_micros(us)),
        }
    }

    /// The latency the planner should rank by: the average, or `None` ("try it") when it was
    /// never measured or has gone stale. Only one caller per stale period gets `None`, so a
    /// target that was slow is re-probed by one request, not by a stampede.
    pub fn ttfb_for_ranking(&self, now: Instant) -> Option<Duration> {
        let avg = self.ttfb()?;
        let sampled = self.sampled_ms.load(Ordering::Relaxed);
        let now_ms = since_epoch_ms(now);
        if now_ms.saturating_sub(sampled) <= self.stale_after.as_millis() as u64 {
            return Some(avg);
        }
        match self.sampled_ms.compare_exchange(
            sampled,
            now_ms,
            Ordering::Relaxed,
            Ordering::Relaxed,
        ) {
            Ok(_) => None,
            Err(_) => Some(avg),
        }
    }

    fn record_ttfb(&self, d: Duration, now: Instant) {
        let sample = (d.as_micros() as u64).max(1);
        let mut cur = self.ttfb_us.load(Ordering::Relaxed);
        loop {
            let next = if cur == 0 {
                sample
            } else {
                ((1.0 - self.alpha) * cur as f64 + self.alpha * sample as f64).max(1.0) as u64
            };
            match self.ttfb_us.compare_exchange_weak(
                cur,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(v) => cur = v,
            }
        }
        self.sampled_ms
            .store(since_epoch_ms(now), Ordering::Relaxed);
    }

    /// Starts an attempt: asks the breaker and counts the request in flight. `None` when the
    /// breaker refuses.
    pub fn acquire(self: &Arc<Self>, now: Instant) -> Option<Lease> {
        match self.breaker.permit(now) {
            Permit::Refused => None,
            permit => Some(self.lease(permit)),
        }
    }

    /// Starts an attempt whatever the breaker says (every target is out; trying one beats
    /// failing without trying).
    pub fn force(self: &Arc<Self>) -> Lease {
        self.lease(Permit::Pass)
    }

    fn lease(self: &Arc<Self>, permit: Permit) -> Lease {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Lease {
            health: self.clone(),
            permit,
            settled: false,
        }
    }
}

/// One attempt's hold on a target: counted in flight until dropped, and the way the attempt's
/// outcome reaches the breaker and the latency average.
#[derive(Debug)]
pub struct Lease {
    health: Arc<Health>,
    permit: Permit,
    settled: bool,
}

impl Lease {
    fn good(&mut self) {
        if !self.settled {
            if self.health.breaker.success(self.permit) {
                tracing::info!(target_name = %self.health.name, "circuit breaker closed after a successful probe");
            }
            self.settled = true;
        }
    }

    /// The first byte arrived after `ttfb`: a success for the breaker and a latency sample.
    pub fn success(&mut self, ttfb: Duration) {
        self.health.record_ttfb(ttfb, Instant::now());
        self.good();
    }

    /// The attempt failed after `elapsed`. Timeouts also count as latency samples, so a target
    /// that stopped answering also looks slow.
    pub fn failure(&mut self, elapsed: Duration, timed_out: bool) {
        let now = Instant::now();
        if timed_out {
            self.health.record_ttfb(elapsed, now);
        }
        if self.health.breaker.failure(self.permit, now) {
            tracing::warn!(target_name = %self.health.name, "circuit breaker opened");
        }
        self.settled = true;
    }

    /// The target answered, but not in a way that says anything about its health (a client
    /// error such as 400).
    pub fn neutral(&mut self) {
        self.good();
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.health.in_flight.fetch_sub(1, Ordering::Relaxed);
        if !self.settled {
            self.health.breaker.abandon(self.permit);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health(stale_ms: u64) -> Arc<Health> {
        Arc::new(Health::new(
            "t",
            &RoutingConfig {
                breaker_failures: 2,
                breaker_open_ms: 60_000,
                latency_alpha: 0.5,
                latency_stale_ms: stale_ms,
            },
        ))
    }

    #[test]
    fn leases_count_in_flight_and_feed_the_average() {
        let h = health(60_000);
        let now = Instant::now();
        let mut a = h.acquire(now).expect("closed");
        let b = h.acquire(now).expect("closed");
        assert_eq!(h.in_flight(), 2);
        a.success(Duration::from_millis(100));
        drop(a);
        drop(b);
        assert_eq!(h.in_flight(), 0);
        assert_eq!(h.ttfb(), Some(Duration::from_millis(100)));
        h.acquire(now)
            .expect("closed")
            .success(Duration::from_millis(300));
        assert_eq!(h.ttfb(), Some(Duration::from_millis(200)));
        assert_eq!(
            h.ttfb_for_ranking(Instant::now()),
            Some(Duration::from_millis(200))
        );
    }

    #[test]
    fn failures_open_the_breaker_and_force_still_leases() {
        let h = health(60_000);
        let now = Instant::now();
        for _ in 0..2 {
            h.acquire(now)
                .expect("closed")
                .failure(Duration::from_millis(5), false);
        }
        assert!(!h.available(now));
        assert!(h.acquire(now).is_none());
        let forced = h.force();
        assert_eq!(h.in_flight(), 1);
        drop(forced);
        assert_eq!(h.in_flight(), 0);
    }

    #[test]
    fn a_stale_average_is_reprobed_by_one_caller() {
        let h = health(0);
        h.acquire(Instant::now())
            .expect("closed")
            .success(Duration::from_millis(50));
        let later = Instant::now() + Duration::from_millis(5);
        assert_eq!(h.ttfb_for_ranking(later), None, "the first caller probes");
        assert_eq!(
            h.ttfb_for_ranking(later),
            Some(Duration::from_millis(50)),
            "the others keep the average"
        );
    }
}
