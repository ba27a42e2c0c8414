//! Ordering a branch's targets by its strategy.
//!
//! Every strategy yields a full order (the first target serves, the rest are the fallbacks),
//! with targets whose breaker is open placed after all the others. Balanced strategies share
//! one mechanism: targets the strategy considers equally good (its *band*) are ordered by the
//! weighted rendezvous key — from the session when affinity applies, so a session keeps its
//! target and its prompt cache; at random otherwise, so load spreads by weight.
//!
//! Bands: `weighted` puts every target in the band. `least_latency` counts as equally fast a
//! target within 25 % (+1 ms) of the fastest average time to first byte, so noise does not
//! move sessions; a target never measured (or due a re-measure) goes first. `least_busy`
//! takes targets within 25 % of the fewest requests in flight; `cheapest`, the lowest price.

use crate::affinity::{rank_key, unit};
use crate::config::Strategy;
use crate::route::{Node, Target};
use std::time::{Duration, Instant};

/// What ordering may depend on besides the targets.
pub(crate) struct Context {
    pub now: Instant,
    /// The session's rendezvous key when affinity applies.
    pub session: Option<u64>,
}

fn health_of(t: &Target) -> Option<&crate::health::Health> {
    match &t.node {
        Node::Deployment(d) => Some(&d.health),
        Node::Route(_) => None,
    }
}

fn available(t: &Target, now: Instant) -> bool {
    // A nested route orders its own targets by their health.
    health_of(t).is_none_or(|h| h.available(now))
}

/// The order of `targets` (indices) and whether the session decided it.
pub(crate) fn order(strategy: Strategy, targets: &[Target], cx: &Context) -> (Vec<usize>, bool) {
    let n = targets.len();
    if n <= 1 {
        return ((0..n).collect(), false);
    }
    let healthy: Vec<bool> = targets.iter().map(|t| available(t, cx.now)).collect();
    let rank = |i: usize| {
        let t = &targets[i];
        let u = match cx.session {
            Some(k) => unit(k, &t.key),
            None => rand::random::<f64>().max(f64::MIN_POSITIVE),
        };
        rank_key(u, t.weight)
    };
    // (tier, key): smaller first. Tiers: 0 explore, 1 band, 2 outside the band; +10 when the
    // breaker is open.
    let mut keyed: Vec<(u8, f64, usize)> = Vec::with_capacity(n);
    match strategy {
        Strategy::Fallback => {
            keyed.extend((0..n).map(|i| (0, i as f64, i)));
        }
        Strategy::Weighted => {
            keyed.extend((0..n).map(|i| (1, rank(i), i)));
        }
        Strategy::LeastLatency => {
            let lat: Vec<Option<Duration>> = targets
                .iter()
                .map(|t| health_of(t).and_then(|h| h.ttfb_for_ranking(cx.now)))
                .collect();
            let best = (0..n).filter(|&i| healthy[i]).filter_map(|i| lat[i]).min();
            for (i, l) in lat.iter().enumerate() {
                keyed.push(match (*l, best) {
                    (None, _) => (0, rank(i), i),
                    (Some(l), Some(b)) if l <= b.mul_f64(1.25) + Duration::from_millis(1) => {
                        (1, rank(i), i)
                    }
                    (Some(l), _) => (2, l.as_secs_f64(), i),
                });
            }
        }
        Strategy::LeastBusy => {
            let busy: Vec<usize> = targets
                .iter()
                .map(|t| health_of(t).map_or(0, |h| h.in_flight()))
                .collect();
            let best = (0..n)
                .filter(|&i| healthy[i])
                .map(|i| busy[i])
                .min()
                .unwrap_or(0);
            let limit = best + best / 4;
            for (i, &b) in busy.iter().enumerate() {
                keyed.push(if b <= limit {
                    (1, rank(i), i)
                } else {
                    (2, b as f64, i)
                });
            }
        }
        Strategy::Cheapest => {
            let best = (0..n)
                .filter(|&i| healthy[i])
                .filter_map(|i| targets[i].price)
                .min();
            for (i, t) in targets.iter().enumerate() {
                keyed.push(match (t.price, best) {
                    (Some(p), Some(b)) if p == b => (1, rank(i), i),
                    (Some(p), _) => (2, p as f64, i),
                    (None, _) => (3, i as f64, i),
                });
            }
        }
    }
    for k in &mut keyed {
        if !healthy[k.2] {
            k.0 += 10;
        }
    }
    keyed.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let by_session = cx.session.is_some() && strategy != Strategy::Fallback;
    (keyed.into_iter().map(|k| k.2).collect(), by_session)
}
