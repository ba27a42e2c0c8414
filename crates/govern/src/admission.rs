//! Admission: every applicable policy checked against one request, and the holds that settle
//! it afterwards.
//!
//! Stateless checks come first (allow-lists, sizes, `max_tokens`, the loop breaker), then every
//! counter the request needs — session turns, concurrency slots, rate limits, budgets — is
//! gathered into one [`AdmitPlan`] and taken in one store operation: on Redis one script, one
//! round trip, all or nothing. (The in-process store runs the plan step by step and gives back
//! what it took before a refusal; only a rate count taken before a later refusal stays, an
//! over-count of at most one request per policy on a single node.)
//!
//! Budgets reserve in two groups: strict budgets hold the worst case, standard budgets (and
//! soft ones, which only track spend) hold the estimate. [`Holds::settle`] replaces both by the
//! actual cost; a crash lets the reservations expire on their own.

use crate::limits::{
    Admission, AdmitPlan, BudgetLimit, CounterStore, LimitKey, MAX_NANOS, Permit, PlanOutcome,
    RateMetric, Reservation, StoreError, UnixMs, Window,
};
use crate::policy::{BudgetMode, BudgetPeriod, Enforcement, OverCeiling, usd_to_nanos};
use crate::policy_set::{CompiledPolicy, allowed_by};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// What a request costs at most and probably, in nano-USD, for a given model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Estimate {
    /// Worst case: every input byte a token at the dearest input rate, plus `max_tokens` of
    /// output. `None` when the model has no price (strict budgets then refuse it).
    pub worst_nanos: Option<i64>,
    /// The bounded estimate standard budgets reserve.
    pub likely_nanos: i64,
    /// Estimated input tokens (counted against tokens-per-minute at admission).
    pub input_tokens: u64,
}

/// Everything admission needs to know about the request.
pub struct Request<'a> {
    /// The policies that apply (from `PolicySet::applicable`).
    pub policies: &'a [Arc<CompiledPolicy>],
    /// Every name of the requested model (as asked, catalogue name, aliases).
    pub model_names: &'a [&'a str],
    /// The provider expected to serve it.
    pub provider: Option<&'a str>,
    /// The Claude Code session, if the client sent one.
    pub session_id: Option<&'a str>,
    /// Decoded body size in bytes.
    pub body_bytes: u64,
    /// The request's `max_tokens`.
    pub max_tokens: Option<u64>,
    /// The cost estimate for a model (called again if a downgrade changes the model).
    pub estimate: &'a (dyn Fn(&str) -> Estimate + Sync),
    /// The most repeated tool call (name, count) within the latest `n` assistant turns.
    pub tool_repeats: &'a (dyn Fn(u32) -> Option<(String, u32)> + Sync),
    /// The time now (injected so tests can cross period boundaries).
    pub now: UnixMs,
    /// A request that costs nothing and is no turn (token counting): allow-lists and sizes
    /// apply, counters do not.
    pub free: bool,
}

/// What to do when the counter store cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnStoreFailure {
    /// Refuse requests that a hard budget governs (the default: no surprise invoice).
    #[default]
    FailClosed,
    /// Let them through unreserved (spend is still journaled).
    FailOpen,
}

/// The counters and their settings.
pub struct Counters {
    /// The store budgets, sessions and limits count in (memory or Redis).
    pub store: Arc<dyn CounterStore>,
    /// Rate limits and concurrency fall back here when `store` fails, so a Redis outage
    /// degrades to per-replica limits instead of none.
    pub local: Arc<dyn CounterStore>,
    /// How budgets behave when `store` fails.
    pub on_failure: OnStoreFailure,
    /// How long reservations and concurrency slots live without a settle.
    pub ttl: Duration,
    /// Told when `store` fails during admission (the gateway raises an alert).
    pub on_store_error: Option<StoreErrorHook>,
}

/// Called with the error each time the shared counter store fails during admission.
pub type StoreErrorHook = Arc<dyn Fn(&StoreError) + Send + Sync>;

/// Why a request was refused, with what a developer needs to act on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The model is not on an allow-list.
    ModelNotAllowed {
        policy: String,
        model: String,
        allowed: Vec<String>,
    },
    /// The provider is not on an allow-list.
    ProviderNotAllowed {
        policy: String,
        provider: String,
        allowed: Vec<String>,
    },
    /// The request body is larger than allowed.
    InputTooLarge {
        policy: String,
        limit: u64,
        actual: u64,
    },
    /// `max_tokens` is above a rejecting ceiling.
    MaxTokensAbove {
        policy: String,
        ceiling: u32,
        asked: u64,
    },
    /// The session repeats the same tool call.
    LoopDetected {
        policy: String,
        tool: String,
        repeats: u32,
        within_turns: u32,
    },
    /// The session made its allowed number of turns.
    SessionTurns { policy: String, max: u64 },
    /// The session spent its allowed cost.
    SessionCost {
        policy: String,
        cap_nanos: i64,
        used_nanos: i64,
    },
    /// Too many requests in flight.
    Concurrency { policy: String, max: u32 },
    /// A per-minute limit is reached.
    Rate {
        policy: String,
        metric: RateMetric,
        limit: u64,
        retry_after_secs: u32,
    },
    /// A hard budget is spent.
    Budget {
        policy: String,
        period: BudgetPeriod,
        cap_nanos: i64,
        used_nanos: i64,
        resets_at: Option<UnixMs>,
    },
    /// A strict budget applies but the model has no price to bound the cost with.
    Unpriced { policy: String, model: String },
    /// The shared counters are unreachable and a hard budget fails closed.
    StoreUnavailable,
}

impl Refusal {
    /// The policy that fired (empty for store failures).
    pub fn policy(&self) -> &str {
        match self {
            Refusal::ModelNotAllowed { policy, .. }
            | Refusal::ProviderNotAllowed { policy, .. }
            | Refusal::InputTooLarge { policy, .. }
            | Refusal::MaxTokensAbove { policy, .. }
            | Refusal::LoopDetected { policy, .. }
            | Refusal::SessionTurns { policy, .. }
            | Refusal::SessionCost { policy, .. }
            | Refusal::Concurrency { policy, .. }
            | Refusal::Rate { policy, .. }
            | Refusal::Budget { policy, .. }
            | Refusal::Unpriced { policy, .. } => policy,
            Refusal::StoreUnavailable => "",
        }
    }

    /// Seconds after which retrying makes sense; `None` when retrying cannot help.
    pub fn retry_after_secs(&self) -> Option<u32> {
        match self {
            Refusal::Rate {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            Refusal::Concurrency { .. } => Some(2),
            Refusal::StoreUnavailable => Some(5),
            _ => None,
        }
    }
}

fn usd(n: i64) -> String {
    format!("${:.2}", n as f64 / 1e9)
}

fn when(at: Option<UnixMs>) -> String {
    match at.and_then(|t| jiff::Timestamp::from_millisecond(t.0).ok()) {
        Some(ts) => format!("it resets at {} UTC", ts.strftime("%Y-%m-%d %H:%M")),
        None => "it does not reset on its own".to_string(),
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::ModelNotAllowed {
                policy,
                model,
                allowed,
            } => write!(
                f,
                "model '{model}' is not allowed by policy '{policy}' (allowed: {})",
                if allowed.is_empty() {
                    "none".to_string()
                } else {
                    allowed.join(", ")
                }
            ),
            Refusal::ProviderNotAllowed {
                policy,
                provider,
                allowed,
            } => write!(
                f,
                "provider '{provider}' is not allowed by policy '{policy}' (allowed: {})",
                if allowed.is_empty() {
                    "none".to_string()
                } else {
                    allowed.join(", ")
                }
            ),
            Refusal::InputTooLarge {
                policy,
                limit,
                actual,
            } => write!(
                f,
                "request of {actual} bytes is larger than the {limit} bytes policy '{policy}' allows"
            ),
            Refusal::MaxTokensAbove {
                policy,
                ceiling,
                asked,
            } => write!(
                f,
                "max_tokens {asked} is above the ceiling of {ceiling} set by policy '{policy}'"
            ),
            Refusal::LoopDetected {
                policy,
                tool,
                repeats,
                within_turns,
            } => write!(
                f,
                "runaway loop stopped: the session called tool '{tool}' with the same input {repeats} times within its last {within_turns} turns (policy '{policy}'). Start a new session or change the approach"
            ),
            Refusal::SessionTurns { policy, max } => write!(
                f,
                "this Claude Code session reached its limit of {max} turns (policy '{policy}'); start a new session"
            ),
            Refusal::SessionCost {
                policy,
                cap_nanos,
                used_nanos,
            } => write!(
                f,
                "this Claude Code session spent {} of its {} limit (policy '{policy}'); start a new session",
                usd(*used_nanos),
                usd(*cap_nanos)
            ),
            Refusal::Concurrency { policy, max } => write!(
                f,
                "too many requests in flight: policy '{policy}' allows {max} at once"
            ),
            Refusal::Rate {
                policy,
                metric,
                limit,
                retry_after_secs,
            } => write!(
                f,
                "rate limit of {limit} {} per minute reached (policy '{policy}'); retry in {retry_after_secs} s",
                match metric {
                    RateMetric::Requests => "requests",
                    RateMetric::Tokens => "tokens",
                }
            ),
            Refusal::Budget {
                policy,
                period,
                cap_nanos,
                used_nanos,
                resets_at,
            } => write!(
                f,
                "budget exhausted: policy '{policy}' allows {} per {}, {} is spent or reserved; {}",
                usd(*cap_nanos),
                match period {
                    BudgetPeriod::Day => "day",
                    BudgetPeriod::Week => "week",
                    BudgetPeriod::Month => "month",
                    BudgetPeriod::Total => "all time",
                },
                usd(*used_nanos),
                when(*resets_at)
            ),
            Refusal::Unpriced { policy, model } => write!(
                f,
                "model '{model}' has no price, so strict budget '{policy}' cannot bound its cost (add it to [prices])"
            ),
            Refusal::StoreUnavailable => f.write_str(
                "budgets cannot be checked right now (the shared counter store is unreachable); retry shortly",
            ),
        }
    }
}

/// What admission changed about the request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Adjustments {
    /// Lower `max_tokens` to this (a clamping ceiling).
    pub clamp_max_tokens: Option<u32>,
    /// Serve this model instead, because of this policy's budget.
    pub downgrade: Option<(String, String)>,
}

/// A budget reservation and the budgets it covers, for settlement and alerts.
#[derive(Debug)]
struct Held {
    reservation: Reservation,
}

/// What an admitted request holds until it settles.
#[derive(Debug, Default)]
pub struct Holds {
    budgets: Vec<Held>,
    turns: Option<Reservation>,
    permits: Vec<(Permit, bool)>,
    token_rates: Vec<(LimitKey, bool)>,
    counted_input_tokens: u64,
    /// Budgets to check for alert thresholds after settlement.
    pub watched: Vec<WatchedBudget>,
}

/// A budget whose thresholds are checked after each settlement.
#[derive(Debug, Clone)]
pub struct WatchedBudget {
    /// Counter key.
    pub key: LimitKey,
    /// Counter window at admission.
    pub window: Window,
    /// The cap in nano-USD.
    pub cap_nanos: i64,
    /// Percentages that alert.
    pub thresholds: Vec<u8>,
    /// Policy name and id.
    pub policy: String,
    /// Policy id.
    pub policy_id: String,
    /// Which period.
    pub period: BudgetPeriod,
    /// Hard or soft.
    pub mode: BudgetMode,
}

/// The result of admission.
#[derive(Debug)]
pub struct Admitted {
    /// Resources to settle.
    pub holds: Holds,
    /// Changes to make to the request.
    pub adjust: Adjustments,
}

fn budget_key(policy_id: &str, idx: usize) -> LimitKey {
    LimitKey::new(format!("budget:{policy_id}:{idx}"))
}

/// The counter window of a budget now.
pub fn budget_window(b: &crate::policy::BudgetSpec, now: UnixMs) -> Window {
    // Time zones are validated when a policy is written; an unreadable one counts in UTC.
    let tz = b
        .timezone
        .as_deref()
        .and_then(|t| crate::tz::parse(t).ok())
        .unwrap_or_else(crate::tz::Tz::utc);
    tz.window(b.period, now)
}

/// The counter key and window of a budget of a policy, for reports and explicit resets.
pub fn budget_counter(
    policy_id: &str,
    idx: usize,
    b: &crate::policy::BudgetSpec,
    now: UnixMs,
) -> (LimitKey, Window) {
    (budget_key(policy_id, idx), budget_window(b, now))
}

/// Checks every applicable policy and takes what the request needs from the counters.
pub async fn admit(c: &Counters, r: &Request<'_>) -> Result<Admitted, Refusal> {
    let mut adjust = Adjustments::default();
    let model = r.model_names.first().copied().unwrap_or_default();

    // Stateless checks.
    for p in r.policies {
        let s = &p.spec;
        if let Some(list) = &s.allowed_models
            && !allowed_by(list, r.model_names)
        {
            return Err(Refusal::ModelNotAllowed {
                policy: p.name.clone(),
                model: model.to_string(),
                allowed: list.clone(),
            });
        }
        if let (Some(list), Some(provider)) = (&s.allowed_providers, r.provider)
            && !allowed_by(list, &[provider])
        {
            return Err(Refusal::ProviderNotAllowed {
                policy: p.name.clone(),
                provider: provider.to_string(),
                allowed: list.clone(),
            });
        }
        if let Some(limit) = s.max_input_bytes
            && r.body_bytes > limit
        {
            return Err(Refusal::InputTooLarge {
                policy: p.name.clone(),
                limit,
                actual: r.body_bytes,
            });
        }
        if let (Some(cap), Some(asked)) = (s.max_tokens, r.max_tokens)
            && asked > u64::from(cap.ceiling)
        {
            match cap.action {
                OverCeiling::Reject => {
                    return Err(Refusal::MaxTokensAbove {
                        policy: p.name.clone(),
                        ceiling: cap.ceiling,
                        asked,
                    });
                }
                OverCeiling::Clamp => {
                    adjust.clamp_max_tokens = Some(
                        adjust
                            .clamp_max_tokens
                            .map_or(cap.ceiling, |c| c.min(cap.ceiling)),
                    );
                }
            }
        }
        if r.session_id.is_some()
            && let Some(lb) = s.session.as_ref().and_then(|x| x.loop_breaker)
            && let Some((tool, n)) = (r.tool_repeats)(lb.within_turns)
            && n >= lb.repeats
        {
            return Err(Refusal::LoopDetected {
                policy: p.name.clone(),
                tool,
                repeats: n,
                within_turns: lb.within_turns,
            });
        }
    }

    // Downgrades look at spend before anything is reserved, so the reservation prices the
    // model that will actually be served.
    'down: for p in r.policies {
        for (idx, b) in p.spec.budgets.iter().enumerate() {
            let Some(d) = &b.downgrade else { continue };
            if !d.from_models.is_empty() && !allowed_by(&d.from_models, r.model_names) {
                continue;
            }
            if r.model_names.contains(&d.to_model.as_str()) {
                continue;
            }
            let cap = usd_to_nanos(b.amount_usd);
            let window = budget_window(b, r.now);
            let spent = match c.store.spent(&budget_key(&p.id, idx), window).await {
                Ok(s) => s.settled_nanos.saturating_add(s.reserved_nanos),
                Err(e) => {
                    tracing::warn!(error = %e, "counter store unreachable; downgrade not checked");
                    continue;
                }
            };
            if i128::from(spent) * 100 >= i128::from(cap) * i128::from(d.at_percent) {
                adjust.downgrade = Some((p.name.clone(), d.to_model.clone()));
                break 'down;
            }
        }
    }
    let served_model = adjust.downgrade.as_ref().map_or(model, |(_, m)| m.as_str());
    let est = (r.estimate)(served_model);

    let mut holds = Holds::default();
    if r.free {
        return Ok(Admitted { holds, adjust });
    }
    match take_counters(c, r, est, served_model, &mut holds).await {
        Ok(()) => Ok(Admitted { holds, adjust }),
        Err(refusal) => {
            holds.release(c).await;
            Err(refusal)
        }
    }
}

/// Which policy a budget in a plan belongs to, its period, and whether it is a session cap.
type BudgetMeta = (String, BudgetPeriod, bool);

/// What a budget group refuses as.
#[derive(Clone)]
enum GroupKind {
    Turns,
    Budgets,
}

/// Builds the request's admission plan, takes it in one store operation (one round trip on
/// Redis) and turns the outcome into holds or a refusal.
async fn take_counters(
    c: &Counters,
    r: &Request<'_>,
    est: Estimate,
    served_model: &str,
    holds: &mut Holds,
) -> Result<(), Refusal> {
    let mut plan = AdmitPlan::default();
    // Per slot and per rate check, the policy it belongs to (for the refusal message).
    let mut slot_policy: Vec<&str> = Vec::new();
    let mut rate_policy: Vec<&str> = Vec::new();
    // Per budget group, what it counts; per budget in it, (policy, period, is a session cap).
    let mut groups: Vec<(GroupKind, Vec<BudgetMeta>)> = Vec::new();

    if let Some(session) = r.session_id {
        let mut limits = Vec::new();
        let mut meta = Vec::new();
        for p in r.policies {
            let Some(max) = p.spec.session.as_ref().and_then(|x| x.max_turns) else {
                continue;
            };
            limits.push(BudgetLimit::new(
                LimitKey::new(format!("turns:{}:{session}", p.id)),
                Window::Session,
                i64::try_from(max).unwrap_or(MAX_NANOS).min(MAX_NANOS),
            ));
            meta.push((p.name.clone(), BudgetPeriod::Total, true));
        }
        if !limits.is_empty() {
            plan.budgets.push((limits, 1));
            groups.push((GroupKind::Turns, meta));
        }
    }
    for p in r.policies {
        let Some(rate) = &p.spec.rate else { continue };
        if let Some(max) = rate.concurrent {
            plan.slots
                .push((LimitKey::new(format!("conc:{}", p.id)), max));
            slot_policy.push(&p.name);
        }
        let key = LimitKey::new(format!("rate:{}", p.id));
        if let Some(limit) = rate.requests_per_minute {
            plan.rates
                .push((key.clone(), RateMetric::Requests, limit, 1));
            rate_policy.push(&p.name);
        }
        if let Some(limit) = rate.tokens_per_minute {
            plan.rates
                .push((key.clone(), RateMetric::Tokens, limit, est.input_tokens));
            rate_policy.push(&p.name);
            holds.token_rates.push((key, false));
        }
    }
    holds.counted_input_tokens = est.input_tokens;

    // Budgets, sessions' cost caps included: strict ones hold the worst case, standard and soft
    // ones the estimate (soft ones with no cap, so they only track spend).
    let mut strict = (Vec::new(), Vec::new());
    let mut standard = (Vec::new(), Vec::new());
    for p in r.policies {
        for (idx, b) in p.spec.budgets.iter().enumerate() {
            let window = budget_window(b, r.now);
            let cap = usd_to_nanos(b.amount_usd);
            let key = budget_key(&p.id, idx);
            holds.watched.push(WatchedBudget {
                key: key.clone(),
                window,
                cap_nanos: cap,
                thresholds: b.alert_thresholds.clone(),
                policy: p.name.clone(),
                policy_id: p.id.clone(),
                period: b.period,
                mode: b.mode,
            });
            let meta = (p.name.clone(), b.period, false);
            match (b.mode, b.enforcement) {
                (BudgetMode::Soft, _) => {
                    standard.0.push(BudgetLimit::new(key, window, MAX_NANOS));
                    standard.1.push(meta);
                }
                (BudgetMode::Hard, Enforcement::Strict) => {
                    if est.worst_nanos.is_none() {
                        return Err(Refusal::Unpriced {
                            policy: p.name.clone(),
                            model: served_model.to_string(),
                        });
                    }
                    strict.0.push(BudgetLimit::new(key, window, cap));
                    strict.1.push(meta);
                }
                (BudgetMode::Hard, Enforcement::Standard) => {
                    standard.0.push(BudgetLimit::new(key, window, cap));
                    standard.1.push(meta);
                }
            }
        }
        if let (Some(session), Some(cap)) = (
            r.session_id,
            p.spec.session.as_ref().and_then(|s| s.max_cost_usd),
        ) {
            standard.0.push(BudgetLimit::new(
                LimitKey::new(format!("session:{}:{session}", p.id)),
                Window::Session,
                usd_to_nanos(cap),
            ));
            standard.1.push((p.name.clone(), BudgetPeriod::Total, true));
        }
    }
    for ((limits, meta), amount) in [
        (strict, est.worst_nanos.unwrap_or(0)),
        (standard, est.likely_nanos),
    ] {
        if !limits.is_empty() {
            plan.budgets.push((limits, amount.clamp(0, MAX_NANOS)));
            groups.push((GroupKind::Budgets, meta));
        }
    }
    if plan.slots.is_empty() && plan.rates.is_empty() && plan.budgets.is_empty() {
        return Ok(());
    }
    // A budget whose cap is below the no-limit sentinel (hard budgets, session caps) must not
    // be skipped when the store fails.
    let governs_spend = plan
        .budgets
        .iter()
        .any(|(limits, _)| limits.iter().any(|l| l.cap_nanos < MAX_NANOS));

    let outcome = match c.store.admit_plan(&plan, c.ttl).await {
        Ok(o) => o,
        Err(e) => {
            store_failed_for(c, &e, governs_spend)?;
            // Rate limits and slots go on with this replica's own counts.
            let local_plan = AdmitPlan {
                slots: plan.slots.clone(),
                rates: plan.rates.clone(),
                budgets: Vec::new(),
            };
            for t in &mut holds.token_rates {
                t.1 = true;
            }
            match c.local.admit_plan(&local_plan, c.ttl).await {
                Ok(PlanOutcome::Taken { permits, .. }) => {
                    holds.permits = permits.into_iter().map(|p| (p, true)).collect();
                    return Ok(());
                }
                Ok(other) => other,
                Err(e) => {
                    tracing::error!(error = %e, "local counter store failed");
                    return Ok(());
                }
            }
        }
    };
    match outcome {
        PlanOutcome::Taken {
            reservations,
            permits,
        } => {
            holds.permits = permits.into_iter().map(|p| (p, false)).collect();
            for (res, (kind, _)) in reservations.into_iter().zip(&groups) {
                match kind {
                    GroupKind::Turns => holds.turns = Some(res),
                    GroupKind::Budgets => holds.budgets.push(Held { reservation: res }),
                }
            }
            Ok(())
        }
        PlanOutcome::SlotsFull { index } => Err(Refusal::Concurrency {
            policy: slot_policy
                .get(index)
                .copied()
                .unwrap_or_default()
                .to_string(),
            max: plan.slots.get(index).map_or(0, |s| s.1),
        }),
        PlanOutcome::RateLimited {
            index,
            retry_after_secs,
        } => {
            let (_, metric, limit, _) = plan.rates.get(index).cloned().unwrap_or((
                LimitKey::new(""),
                RateMetric::Requests,
                0,
                0,
            ));
            Err(Refusal::Rate {
                policy: rate_policy
                    .get(index)
                    .copied()
                    .unwrap_or_default()
                    .to_string(),
                metric,
                limit,
                retry_after_secs,
            })
        }
        PlanOutcome::OverBudget { group, denied } => {
            let Admission::Denied {
                key,
                used_nanos,
                cap_nanos,
                resets_at,
                ..
            } = denied
            else {
                return Err(Refusal::StoreUnavailable);
            };
            let (kind, meta) = groups
                .get(group)
                .cloned()
                .unwrap_or((GroupKind::Budgets, Vec::new()));
            let pos = plan
                .budgets
                .get(group)
                .and_then(|(limits, _)| limits.iter().position(|l| l.key == key));
            let (policy, period, session) = pos.and_then(|i| meta.get(i).cloned()).unwrap_or((
                String::new(),
                BudgetPeriod::Total,
                false,
            ));
            Err(match (kind, session) {
                (GroupKind::Turns, _) => Refusal::SessionTurns {
                    policy,
                    max: u64::try_from(cap_nanos).unwrap_or(0),
                },
                (GroupKind::Budgets, true) => Refusal::SessionCost {
                    policy,
                    cap_nanos,
                    used_nanos,
                },
                (GroupKind::Budgets, false) => Refusal::Budget {
                    policy,
                    period,
                    cap_nanos,
                    used_nanos,
                    resets_at,
                },
            })
        }
    }
}

fn store_failed_for(c: &Counters, e: &StoreError, governs_spend: bool) -> Result<(), Refusal> {
    tracing::error!(error = %e, "counter store unreachable during admission");
    if let Some(hook) = &c.on_store_error {
        hook(e);
    }
    match c.on_failure {
        OnStoreFailure::FailClosed if governs_spend => Err(Refusal::StoreUnavailable),
        _ => Ok(()),
    }
}

/// What a request really consumed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Actual {
    /// The real cost in nano-USD; `None` when it could not be priced (the reservation is then
    /// kept as the cost, so an unpriced model cannot slip past a budget).
    pub cost_nanos: Option<i64>,
    /// Input plus output tokens.
    pub tokens: u64,
    /// False when nothing reached the upstream (reservations are released, turns not counted).
    pub reached_upstream: bool,
}

impl Holds {
    /// True when nothing is held (no policy applied a counter).
    pub fn is_empty(&self) -> bool {
        self.budgets.is_empty()
            && self.turns.is_none()
            && self.permits.is_empty()
            && self.token_rates.is_empty()
            && self.watched.is_empty()
    }

    /// Replaces every reservation by what the request consumed, frees its slots, counts its
    /// tokens. Errors are logged: the reservations then expire on their own.
    pub async fn settle(self, c: &Counters, actual: Actual) {
        for h in &self.budgets {
            let amount = match actual.cost_nanos {
                _ if !actual.reached_upstream => None,
                Some(n) => Some(n.clamp(0, MAX_NANOS)),
                None => Some(h.reservation.amount_nanos),
            };
            let res = match amount {
                Some(n) => c.store.settle_budget(&h.reservation, n).await.map(|_| ()),
                None => c.store.release_budget(&h.reservation).await,
            };
            if let Err(e) = res {
                tracing::warn!(error = %e, "budget settlement failed; the reservation will expire");
            }
        }
        if let Some(t) = &self.turns {
            let res = if actual.reached_upstream {
                c.store.settle_budget(t, 1).await.map(|_| ())
            } else {
                c.store.release_budget(t).await
            };
            if let Err(e) = res {
                tracing::warn!(error = %e, "session turn settlement failed");
            }
        }
        for (permit, local) in &self.permits {
            let store = if *local { &c.local } else { &c.store };
            if let Err(e) = store.release_concurrency(permit).await {
                tracing::warn!(error = %e, "concurrency release failed; the slot will expire");
            }
        }
        let extra = actual.tokens.saturating_sub(self.counted_input_tokens);
        if extra > 0 {
            for (key, local) in &self.token_rates {
                let store = if *local { &c.local } else { &c.store };
                if let Err(e) = store.rate_record(key, RateMetric::Tokens, extra).await {
                    tracing::warn!(error = %e, "token rate record failed");
                }
            }
        }
    }

    async fn release(&mut self, c: &Counters) {
        let taken = std::mem::take(self);
        taken
            .settle(
                c,
                Actual {
                    cost_nanos: None,
                    tokens: 0,
                    reached_upstream: false,
                },
            )
            .await;
    }
}
