//! Phase 4, admit: policy decisions before any upstream is contacted.
//!
//! Every policy that applies to the request (org, workspace, team, user, key, project, model,
//! provider) is checked here, on every route and in every dialect, so a refusal never reaches an
//! upstream. What the request holds (budget reservations, concurrency slots, session turns)
//! travels with its [`Recorder`](super::settle::Recorder) and is settled when the journal
//! record is written.

use super::classify::{Classified, header};
use crate::error::{ErrorKind, GatewayError};
use crate::state::AppState;
use http::{HeaderName, HeaderValue, StatusCode};
use tollgate_govern::admission::{self, Estimate, Holds, Refusal, Request};
use tollgate_govern::alerts::{AlertEvent, AlertKind, claim};
use tollgate_govern::limits::{RateMetric, Window};
use tollgate_govern::policy_set::RequestScope;
use tollgate_ledger::{Cost, PriceTable, price};
use tollgate_wire::Usage;
use tollgate_wire::anthropic::{edit_request, most_repeated_tool_call};
use tollgate_wire::headers::X_TOLLGATE_PROVIDER;

/// A request the policies let through.
#[derive(Debug)]
pub struct Admitted {
    pub classified: Classified,
    /// What it holds until settlement (empty when no policy counts anything).
    pub holds: Holds,
    /// The policy that changed the request (a downgrade), for the journal.
    pub adjusted_by: Option<String>,
    /// The client's `max_tokens` when a policy lowered it.
    pub clamped_from: Option<u64>,
    /// Provider allow-lists of the applicable policies, checked per attempt in forward (the
    /// route decides the provider after admission).
    pub provider_lists: Vec<(String, Vec<String>)>,
}

impl Admitted {
    /// A request no policy applies to.
    fn unchanged(classified: Classified) -> Self {
        Admitted {
            classified,
            holds: Holds::default(),
            adjusted_by: None,
            clamped_from: None,
            provider_lists: Vec::new(),
        }
    }
}

/// Every name the requested model goes by: as asked, its catalogue name and its aliases.
fn model_names<'a>(state: &'a AppState, requested: &'a str) -> Vec<&'a str> {
    let mut names = vec![requested];
    if let Some(e) = state.catalog.resolve(requested) {
        names.push(e.name.as_str());
        names.extend(e.aliases.iter().map(String::as_str));
    }
    names
}

/// Checks `policies` against the request and takes what they count (the one call both the
/// admit phase and the per-attempt provider check make).
async fn check(
    state: &AppState,
    classified: &Classified,
    policies: &[std::sync::Arc<tollgate_govern::policy_set::CompiledPolicy>],
    model_names: &[&str],
    provider: Option<&str>,
) -> Result<admission::Admitted, Refusal> {
    let accepted = &classified.auth.accepted;
    let body_len = accepted.body.len() as u64;
    let max_tokens = classified.facts.max_tokens;
    let likely_output = state.config.governance.likely_output_tokens;
    let estimate = |model: &str| {
        estimate(
            &state.prices,
            &state.catalog,
            model,
            body_len,
            max_tokens,
            likely_output,
        )
    };
    let tool_repeats = |within: u32| most_repeated_tool_call(&accepted.body, within);
    let request = Request {
        policies,
        model_names,
        provider,
        session_id: header(
            &accepted.headers,
            &tollgate_wire::headers::X_CLAUDE_CODE_SESSION_ID,
        ),
        body_bytes: body_len,
        max_tokens,
        estimate: &estimate,
        tool_repeats: &tool_repeats,
        now: state.clock.now(),
        free: accepted.endpoint == super::accept::Endpoint::CountTokens,
    };
    admission::admit(&state.counters, &request).await
}

/// Runs the admit phase.
pub async fn admit(state: &AppState, mut classified: Classified) -> Result<Admitted, GatewayError> {
    let policies = state.policies.load();
    if policies.is_empty() {
        return Ok(Admitted::unchanged(classified));
    }
    let principal = classified.auth.principal.clone();
    let headers = &classified.auth.accepted.headers;
    let project = header(headers, &tollgate_wire::headers::X_TOLLGATE_PROJECT)
        .or(principal.default_project.as_deref());
    let requested = classified.facts.model.clone().unwrap_or_default();
    let model_names = model_names(state, &requested);
    // Only a provider the request names is known here; the route picks the others after
    // admission, and forward checks each attempt's provider against the allow-lists.
    let provider = header(headers, &X_TOLLGATE_PROVIDER).map(str::to_string);
    let applicable = policies.applicable(&RequestScope {
        principal: &principal,
        project,
        model_names: &model_names,
        provider: provider.as_deref(),
    });
    if applicable.is_empty() {
        return Ok(Admitted::unchanged(classified));
    }
    let outcome = check(
        state,
        &classified,
        &applicable,
        &model_names,
        provider.as_deref(),
    )
    .await;
    let admitted = match outcome {
        Ok(a) => a,
        Err(refusal) => {
            if state.alerts.enabled() {
                let session = header(headers, &tollgate_wire::headers::X_CLAUDE_CODE_SESSION_ID);
                alert_refusal(state, &refusal, &principal, session).await;
            }
            return Err(refusal_error(
                &refusal,
                state.config.governance.contact.as_deref(),
            ));
        }
    };
    let adjust = admitted.adjust;
    let mut adjusted_by = None;
    let mut clamped_from = None;
    if adjust.clamp_max_tokens.is_some() || adjust.downgrade.is_some() {
        let to_model = adjust.downgrade.as_ref().map(|(_, m)| m.as_str());
        match edit_request(
            &classified.auth.accepted.body,
            to_model,
            adjust.clamp_max_tokens,
        ) {
            Ok(b) => classified.auth.accepted.body = b,
            Err(e) => {
                // The body was validated in classify, so this is unreachable in practice; give
                // the holds back by dropping them through settlement in the caller's record.
                return Err(GatewayError::invalid(e.to_string()));
            }
        }
        if let Some(n) = adjust.clamp_max_tokens {
            clamped_from = classified.facts.max_tokens;
            classified.facts.max_tokens = Some(u64::from(n));
        }
        if let Some((policy, m)) = adjust.downgrade {
            classified.facts.model = Some(m);
            adjusted_by = Some(policy);
        }
    }
    let provider_lists = applicable
        .iter()
        .filter_map(|p| Some((p.name.clone(), p.spec.allowed_providers.clone()?)))
        .collect();
    Ok(Admitted {
        classified,
        holds: admitted.holds,
        adjusted_by,
        clamped_from,
        provider_lists,
    })
}

/// What the policies scoped to an attempt's provider took, and what they change for that
/// attempt only.
#[derive(Debug, Default)]
pub struct ProviderAdmission {
    pub holds: Holds,
    /// `max_tokens` lowered to this by a clamping ceiling.
    pub clamp_max_tokens: Option<u32>,
    /// The policy whose budget downgrades the model, and the model served instead.
    pub downgrade: Option<(String, String)>,
}

/// Checks the policies scoped to the provider an attempt goes to — the route chose it after
/// admission — and takes what they count. A refusal makes forward skip this target like an
/// unhealthy one; a clamp or a downgrade applies to this attempt's request. Providers the
/// request named itself were checked (and applied) in `admit` already.
pub async fn for_provider(
    state: &AppState,
    classified: &Classified,
    provider: &str,
) -> Result<ProviderAdmission, GatewayError> {
    let headers = &classified.auth.accepted.headers;
    if header(headers, &X_TOLLGATE_PROVIDER) == Some(provider) {
        return Ok(ProviderAdmission::default());
    }
    let policies = state.policies.load().for_provider(provider);
    if policies.is_empty() {
        return Ok(ProviderAdmission::default());
    }
    let requested = classified.facts.model.clone().unwrap_or_default();
    let model_names = model_names(state, &requested);
    match check(state, classified, &policies, &model_names, Some(provider)).await {
        Ok(a) => Ok(ProviderAdmission {
            holds: a.holds,
            clamp_max_tokens: a.adjust.clamp_max_tokens,
            downgrade: a.adjust.downgrade,
        }),
        Err(refusal) => Err(refusal_error(
            &refusal,
            state.config.governance.contact.as_deref(),
        )),
    }
}

/// Hard-cap blocks alert once per budget period, loop breaks once per session.
async fn alert_refusal(
    state: &AppState,
    refusal: &Refusal,
    principal: &tollgate_govern::Principal,
    session: Option<&str>,
) {
    // A loop alert's claim is per session, so it is forgotten with the session's counters.
    let (kind, key, period, window) = match refusal {
        Refusal::Budget {
            policy,
            period,
            resets_at,
            ..
        } => (
            AlertKind::HardCapBlocked,
            format!("alert:block:{policy}:{}", resets_at.map_or(0, |t| t.0)),
            Some(*period),
            Window::Total,
        ),
        Refusal::LoopDetected { policy, .. } => (
            AlertKind::LoopBreakerFired,
            format!("alert:loop:{policy}:{}", session.unwrap_or_default()),
            None,
            Window::Session,
        ),
        _ => return,
    };
    if !claim(&state.counters, &key, window).await {
        return;
    }
    let (cap, used) = match refusal {
        Refusal::Budget {
            cap_nanos,
            used_nanos,
            ..
        } => (
            Some(*cap_nanos as f64 / 1e9),
            Some(*used_nanos as f64 / 1e9),
        ),
        _ => (None, None),
    };
    state.alerts.send(AlertEvent {
        kind,
        policy: refusal.policy().to_string(),
        policy_id: String::new(),
        period,
        threshold_percent: None,
        spent_usd: used,
        cap_usd: cap,
        hard: Some(true),
        session_id: session.map(str::to_string),
        team: principal.team.clone(),
        user: Some(principal.user.clone()),
        request_id: None,
        message: refusal.to_string(),
        at_unix_ms: state.clock.now().0,
    });
}

/// The cost bounds of a request for `model`. Input tokens are bounded by the body size (a token
/// is at least a byte of JSON text) and estimated at four bytes each; an unpriced model is
/// estimated at the dearest known price so budgets still hold.
pub fn estimate(
    prices: &PriceTable,
    catalog: &tollgate_routing::Catalog,
    model: &str,
    body_bytes: u64,
    max_tokens: Option<u64>,
    likely_output_tokens: u64,
) -> Estimate {
    let priced = catalog
        .resolve(model)
        .map(|e| e.name.as_str())
        .filter(|m| prices.lookup(m).is_some())
        .unwrap_or(model);
    let max_out = max_tokens.unwrap_or(likely_output_tokens);
    let likely_in = body_bytes.div_ceil(4);
    let likely_usage = Usage {
        input_tokens: likely_in,
        output_tokens: max_out.min(likely_output_tokens),
        ..Usage::default()
    };
    let as_input = Usage {
        input_tokens: body_bytes,
        output_tokens: max_out,
        ..Usage::default()
    };
    let as_cache_write = Usage {
        output_tokens: max_out,
        cache_creation_input_tokens: body_bytes,
        cache_creation_1h_input_tokens: body_bytes,
        ..Usage::default()
    };
    let known = |u: &Usage| match price(prices, priced, u) {
        Cost::Known(n) => Some(n.0),
        Cost::Unknown => None,
    };
    match known(&likely_usage) {
        Some(likely) => Estimate {
            worst_nanos: Some(
                known(&as_input)
                    .unwrap_or(0)
                    .max(known(&as_cache_write).unwrap_or(0)),
            ),
            likely_nanos: likely,
            input_tokens: likely_in,
        },
        None => {
            let dearest = prices
                .models()
                .filter_map(|m| match price(prices, m, &likely_usage) {
                    Cost::Known(n) => Some(n.0),
                    Cost::Unknown => None,
                })
                .max()
                .unwrap_or(0);
            Estimate {
                worst_nanos: None,
                likely_nanos: dearest,
                input_tokens: likely_in,
            }
        }
    }
}

/// A refusal in the gateway's error vocabulary: status, type, retry advice and headers.
pub fn refusal_error(r: &Refusal, contact: Option<&str>) -> GatewayError {
    let mut message = r.to_string();
    let (status, kind, retry) = match r {
        Refusal::ModelNotAllowed { .. } | Refusal::ProviderNotAllowed { .. } => {
            (StatusCode::FORBIDDEN, ErrorKind::Permission, false)
        }
        Refusal::InputTooLarge { .. } => (
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::RequestTooLarge,
            false,
        ),
        Refusal::MaxTokensAbove { .. } | Refusal::Unpriced { .. } => {
            (StatusCode::BAD_REQUEST, ErrorKind::InvalidRequest, false)
        }
        Refusal::Rate { .. } | Refusal::Concurrency { .. } => {
            (StatusCode::TOO_MANY_REQUESTS, ErrorKind::RateLimit, true)
        }
        Refusal::LoopDetected { .. }
        | Refusal::SessionTurns { .. }
        | Refusal::SessionCost { .. }
        | Refusal::Budget { .. } => (StatusCode::TOO_MANY_REQUESTS, ErrorKind::RateLimit, false),
        Refusal::StoreUnavailable => (StatusCode::SERVICE_UNAVAILABLE, ErrorKind::Api, true),
    };
    if !retry && let Some(c) = contact {
        message.push_str(&format!(". To raise this limit, ask {c}"));
    }
    let mut err = GatewayError::new(status, kind, message);
    err.retry = Some(retry);
    if !r.policy().is_empty() {
        err.policy = Some(r.policy().to_string());
    }
    if let Some(secs) = r.retry_after_secs() {
        // Claude Code waits out `retry-after` only up to a bound; keep it within.
        let secs = secs.clamp(1, 45);
        err.headers
            .push((http::header::RETRY_AFTER, HeaderValue::from(secs)));
        if let Refusal::Rate { metric, limit, .. } = r {
            let (kind, reset) = match metric {
                RateMetric::Requests => ("requests", "anthropic-ratelimit-requests-reset"),
                RateMetric::Tokens => ("tokens", "anthropic-ratelimit-tokens-reset"),
            };
            let reset_at =
                time::OffsetDateTime::now_utc() + time::Duration::seconds(i64::from(secs));
            let stamp = reset_at
                .replace_nanosecond(0)
                .unwrap_or(reset_at)
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            let pairs = [
                (
                    format!("anthropic-ratelimit-{kind}-limit"),
                    limit.to_string(),
                ),
                (
                    format!("anthropic-ratelimit-{kind}-remaining"),
                    "0".to_string(),
                ),
                (reset.to_string(), stamp),
            ];
            for (name, value) in pairs {
                if let (Ok(n), Ok(v)) = (
                    HeaderName::from_bytes(name.as_bytes()),
                    HeaderValue::from_str(&value),
                ) {
                    err.headers.push((n, v));
                }
            }
        }
    }
    err
}
