//! Alert events: a budget threshold crossed, a hard cap that blocked, a loop breaker that fired.
//!
//! Each event is deduplicated per period through the counters themselves (a one-unit budget per
//! event and period), so every replica agrees on who sends it and it is sent once per period,
//! not once per request or per replica.

use crate::admission::{Counters, WatchedBudget};
use crate::limits::{Admission, BudgetLimit, LimitKey, UnixMs, Window, period_of};
use crate::policy::{BudgetMode, BudgetPeriod};
use serde::Serialize;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// Spend passed one of a budget's alert thresholds.
    ThresholdCrossed,
    /// A hard budget refused a request.
    HardCapBlocked,
    /// The runaway-loop breaker stopped a session.
    LoopBreakerFired,
    /// The shared counter store (Redis) could not be reached; hard budgets fail closed (or
    /// open, as configured) and rate limits count per replica until it is back.
    CounterStoreUnavailable,
}

/// One alert, as sent to webhooks (generic JSON) and kept in the delivery log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertEvent {
    pub kind: AlertKind,
    /// The policy's name.
    pub policy: String,
    /// The policy's id.
    pub policy_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period: Option<BudgetPeriod>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold_percent: Option<u8>,
    /// Spend in the period (settled plus reserved), in USD.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spent_usd: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cap_usd: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hard: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The request that triggered it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// One line for people.
    pub message: String,
    /// Unix milliseconds.
    pub at_unix_ms: i64,
}

/// Claims the right to send the event `dedupe_key` in the current period of `window`: true for
/// the first caller in that period on any replica.
pub async fn claim(c: &Counters, dedupe_key: &str, window: Window) -> bool {
    let limit = [BudgetLimit::new(LimitKey::new(dedupe_key), window, 1)];
    match c.store.reserve_budget(&limit, 1, c.ttl).await {
        Ok(Admission::Allowed(res)) => {
            // Settled, the claim lasts the whole period instead of the reservation's TTL.
            if let Err(e) = c.store.settle_budget(&res, 1).await {
                tracing::warn!(error = %e, "alert claim not settled; it may repeat after the TTL");
            }
            true
        }
        Ok(Admission::Denied { .. }) => false,
        Err(e) => {
            // Better a duplicate alert than a lost one.
            tracing::warn!(error = %e, "alert deduplication unavailable; sending anyway");
            true
        }
    }
}

fn usd(n: i64) -> f64 {
    n as f64 / 1e9
}

/// The threshold alerts due after a settlement: for each watched budget, the highest threshold
/// now reached that has not been claimed in this period.
pub async fn thresholds_crossed(
    c: &Counters,
    watched: &[WatchedBudget],
    now: UnixMs,
) -> Vec<AlertEvent> {
    let mut out = Vec::new();
    for w in watched {
        if w.thresholds.is_empty() || w.cap_nanos <= 0 {
            continue;
        }
        let spent = match c.store.spent(&w.key, w.window).await {
            Ok(s) => s.settled_nanos,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read spend for alerts");
                continue;
            }
        };
        let pct = i128::from(spent) * 100 / i128::from(w.cap_nanos);
        let mut reached: Vec<u8> = w
            .thresholds
            .iter()
            .copied()
            .filter(|t| i128::from(*t) <= pct)
            .collect();
        reached.sort_unstable();
        let Some(&top) = reached.last() else { continue };
        let period = period_of(w.window, now);
        let key = format!("alert:{}:{}:{top}", w.key, period.start.0);
        if !claim(c, &key, w.window).await {
            continue;
        }
        out.push(AlertEvent {
            kind: AlertKind::ThresholdCrossed,
            policy: w.policy.clone(),
            policy_id: w.policy_id.clone(),
            period: Some(w.period),
            threshold_percent: Some(top),
            spent_usd: Some(usd(spent)),
            cap_usd: Some(usd(w.cap_nanos)),
            hard: Some(w.mode == BudgetMode::Hard),
            session_id: None,
            team: None,
            user: None,
            request_id: None,
            message: format!(
                "budget '{}' reached {top}% ({:.2} of {:.2} USD this {})",
                w.policy,
                usd(spent),
                usd(w.cap_nanos),
                match w.period {
                    BudgetPeriod::Day => "day",
                    BudgetPeriod::Week => "week",
                    BudgetPeriod::Month => "month",
                    BudgetPeriod::Total => "lifetime",
                }
            ),
            at_unix_ms: now.0,
        });
    }
    out
}
