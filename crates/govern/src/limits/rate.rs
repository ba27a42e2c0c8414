//! The weighted two-window estimate both stores use for per-minute rate limits. The decision
//! itself is repeated in the Redis script (it must be atomic with the increment); everything
//! derived from it (remaining, retry-after) is computed here once.
//!
//! All products are taken in `u128`: with limits and costs up to `MAX_RATE` (10¹¹) the products
//! stay below 2⁵³ where it matters, so the doubles of the Lua version agree exactly.

use super::UnixMs;

/// Length of one rate window.
pub(crate) const WINDOW_MS: i64 = 60_000;
const W: u128 = WINDOW_MS as u128;

/// The window index (Unix minute) of `now` and the milliseconds elapsed in it.
pub(crate) fn window_of(now: UnixMs) -> (i64, i64) {
    (now.0.div_euclid(WINDOW_MS), now.0.rem_euclid(WINDOW_MS))
}

/// `prev × (W − elapsed) / W + curr + cost <= limit`, without division.
pub(crate) fn allows(prev: u64, curr: u64, elapsed_ms: i64, limit: u64, cost: u64) -> bool {
    let rest = rest_of_window(elapsed_ms);
    let lhs = u128::from(prev) * rest + (u128::from(curr) + u128::from(cost)) * W;
    lhs <= u128::from(limit) * W
}

/// What the estimate leaves of the limit, rounded down.
pub(crate) fn remaining(prev: u64, curr: u64, elapsed_ms: i64, limit: u64) -> u64 {
    let rest = rest_of_window(elapsed_ms);
    let used = u128::from(prev) * rest + u128::from(curr) * W;
    let room = (u128::from(limit) * W).saturating_sub(used) / W;
    u64::try_from(room).unwrap_or(u64::MAX)
}

/// Seconds (1..=60) until a request of `cost` would be allowed if nothing else arrives.
pub(crate) fn retry_after_secs(
    prev: u64,
    curr: u64,
    elapsed_ms: i64,
    limit: u64,
    cost: u64,
) -> u32 {
    if cost > limit {
        return 60;
    }
    let (prev, curr, limit, cost) = (
        u128::from(prev),
        u128::from(curr),
        u128::from(limit),
        u128::from(cost),
    );
    let elapsed = W - rest_of_window(elapsed_ms);
    // Still in this window: wait until the previous window's weight has decayed enough, i.e.
    // prev × (W − e) <= (limit − curr − cost) × W.
    let in_this_window = (curr + cost <= limit).then(|| {
        // With no previous count there is nothing to wait for.
        let keep = ((limit - curr - cost) * W).checked_div(prev).unwrap_or(W);
        W.saturating_sub(keep).saturating_sub(elapsed)
    });
    // Otherwise in the next window, where this window's count becomes the decaying one:
    // curr × (W − e') <= (limit − cost) × W.
    let wait_ms = in_this_window.unwrap_or_else(|| {
        let keep = ((limit - cost) * W).checked_div(curr).unwrap_or(W);
        (W - elapsed) + W.saturating_sub(keep)
    });
    let secs = wait_ms.div_ceil(1000).clamp(1, 60);
    // Clamped to 1..=60 just above.
    secs as u32
}

fn rest_of_window(elapsed_ms: i64) -> u128 {
    let e = elapsed_ms.clamp(0, WINDOW_MS);
    // Within 0..=WINDOW_MS, so non-negative.
    (WINDOW_MS - e) as u128
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_window_admits_exactly_the_limit() {
        let mut curr = 0;
        let mut admitted = 0;
        for _ in 0..100 {
            if allows(0, curr, 0, 60, 1) {
                curr += 1;
                admitted += 1;
            }
        }
        assert_eq!(admitted, 60);
    }

    #[test]
    fn the_previous_window_decays() {
        // 60 used last minute: halfway through this one, 30 fit.
        assert!(allows(60, 29, 30_000, 60, 1));
        assert!(!allows(60, 30, 30_000, 60, 1));
        assert_eq!(remaining(60, 0, 30_000, 60), 30);
        assert_eq!(remaining(60, 0, 0, 60), 0);
    }

    #[test]
    fn retry_after_is_enough_and_bounded() {
        for (prev, curr, elapsed, limit, cost) in [
            (60, 0, 0, 60, 1),
            (0, 60, 0, 60, 1),
            (0, 60, 59_999, 60, 1),
            (60, 30, 30_000, 60, 1),
            (1_000, 0, 1, 1_000, 500),
            (10, 10, 10_000, 10, 10),
        ] {
            assert!(!allows(prev, curr, elapsed, limit, cost));
            let s = retry_after_secs(prev, curr, elapsed, limit, cost);
            assert!((1..=60).contains(&s));
            // Waiting that long helps (unless the clamp at 60 s cut the wait short).
            let later = elapsed + i64::from(s) * 1000;
            let ok = if later < WINDOW_MS {
                allows(prev, curr, later, limit, cost)
            } else {
                allows(curr, 0, later - WINDOW_MS, limit, cost)
            };
            assert!(ok || s == 60, "{prev} {curr} {elapsed} {limit} {cost}: {s}");
        }
        assert_eq!(retry_after_secs(0, 0, 0, 10, 11), 60);
        assert_eq!(retry_after_secs(0, 0, 0, 0, 1), 60);
    }

    #[test]
    fn extremes_do_not_overflow() {
        assert!(!allows(u64::MAX, u64::MAX, -5, u64::MAX, u64::MAX));
        let _ = remaining(u64::MAX, u64::MAX, i64::MAX, u64::MAX);
        let _ = retry_after_secs(u64::MAX, u64::MAX, i64::MIN, u64::MAX, 1);
        assert_eq!(window_of(UnixMs(-1)), (-1, 59_999));
    }
}
