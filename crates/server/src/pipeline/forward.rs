//! Phase 6, forward: send the request upstream and relay the answer back.
//!
//! The plan's attempts are made in the order its [`Schedule`] gives, until one answers or the
//! request runs out of attempts or time. Only failures the route falls back on (by default 429,
//! 5xx, 529, timeouts, refused connections) lead to another attempt, and only while nothing has
//! reached the client; the last failure's answer is relayed as the upstream gave it. A stream
//! is committed to an upstream once its first content delta arrives — when another attempt
//! could still follow, the events before it (`message_start`, `ping`) are held back so an
//! upstream that fails at once (an `event: error`, a cut connection) is replaced unseen. After
//! that, a failure reaches the client as an `event: error` in its dialect ([`StreamRelay`]).
//!
//! Non-streaming answers are read whole (they are generated whole anyway), settled, then sent,
//! so their journal record exists before the client has the first byte. An Anthropic upstream
//! gets the client's bytes unchanged — every attempt shares the one body (`Bytes`); other
//! upstreams go through [`convert`](super::convert).

use super::accept::{Accepted, Endpoint};
use super::convert;
use super::dialect::{self, ClientSide};
use super::route::Routed;
use super::settle::Recorder;
use super::stream_relay::{AfterFrames, ReadAhead, StreamRelay};
use crate::error::{ErrorKind, GatewayError};
use crate::state::AppState;
use axum::body::Body;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tollgate_govern::admission::Refusal;
use tollgate_govern::policy_set::allowed_by;
use tollgate_ledger::journal::AttemptRecord;
use tollgate_providers::{
    Dialect, Operation, ResponseBody, Upstream, UpstreamBody, UpstreamCall, UpstreamClient,
    UpstreamClientOptions,
};
use tollgate_routing::retry::parse_retry_after;
use tollgate_routing::{
    Attempt, Failure, Lease, ModelOnProvider, RoutePolicy, Schedule, Step, Timeouts,
};
use tollgate_wire::anthropic::read_response;
use tollgate_wire::headers::{ANTHROPIC_BETA, HOP_BY_HOP, REQUEST_ID};
use tollgate_wire::openai::ChatStreamWatch;
use tollgate_wire::sse::SseScanner;

/// Non-streaming upstream answers larger than this are refused rather than buffered.
const MAX_UPSTREAM_BODY: usize = 256 * 1024 * 1024;
/// Error bodies of attempts that are replaced are read up to this size, for the journal.
const MAX_ERROR_DETAIL: usize = 64 * 1024;
/// Stream bytes held back while waiting for the first content event; past this the stream is
/// committed anyway (no real stream starts with that much before its content).
const MAX_HELD_BACK: usize = 256 * 1024;
/// Turns of the scheduler [`read_ahead`] waits at most.
const READ_AHEAD_ROUNDS: usize = 8;
/// Bytes past which [`read_ahead`] stops taking, so a fast stream's first write stays small.
const MAX_READ_AHEAD: usize = 64 * 1024;

/// `1.5 s`, `250 ms`: durations in messages, readable whether they came from seconds or
/// milliseconds of configuration.
pub(crate) fn human(d: Duration) -> String {
    if d >= Duration::from_secs(1) && d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else if d >= Duration::from_secs(1) {
        format!("{:.1} s", d.as_secs_f64())
    } else {
        format!("{} ms", d.as_millis())
    }
}

/// What every attempt of the request shares.
#[derive(Clone, Copy)]
struct Request<'a> {
    state: &'a Arc<AppState>,
    accepted: &'a Accepted,
    client: &'a ClientSide,
    requested: &'a str,
    stream: bool,
    /// Provider allow-lists of the policies that apply: (policy name, allowed providers).
    provider_lists: &'a [(String, Vec<String>)],
    /// The caller, whose team or workspace may have its own provider credentials.
    principal: &'a tollgate_govern::Principal,
    /// The output limit a policy clamped the request to, applied to pass-through bodies too.
    clamp: Option<u64>,
}

impl Request<'_> {
    /// Whether `target` gets the client's own body: an OpenAI client before an OpenAI-dialect
    /// upstream.
    fn passthrough(&self, target: &Upstream) -> bool {
        self.client.chat_body.is_some() && matches!(target, Upstream::OpenAi(_))
    }
}

/// An attempt's time limits once route, target and server defaults are combined.
#[derive(Debug, Clone, Copy)]
struct Limits {
    connect: Option<Duration>,
    ttfb: Duration,
    idle: Duration,
}

fn limits(state: &AppState, policy: &Timeouts, attempt: &Attempt) -> Limits {
    let t = attempt.overrides.timeouts.or(*policy);
    let idle = state.limits.upstream_idle_timeout;
    Limits {
        connect: t.connect,
        ttfb: t.ttfb.unwrap_or(idle),
        idle: t.idle.unwrap_or(idle),
    }
}

/// The journal entry of one attempt, filled in as it goes.
struct AttemptLog {
    record: AttemptRecord,
    sent: Instant,
}

impl AttemptLog {
    fn start(attempt: &Attempt, step: &Step, model: Option<&str>) -> Self {
        Self {
            record: AttemptRecord {
                provider: attempt.name().to_string(),
                model: model.map(str::to_string),
                kind: step.kind.as_str().to_string(),
                waited_ms: step.wait.as_secs_f64() * 1000.0,
                ..Default::default()
            },
            sent: Instant::now(),
        }
    }

    fn finish(mut self, rec: &mut Recorder, status: Option<u16>, error: Option<String>) {
        self.record.status = status;
        self.record.error = error;
        self.record.latency_ms = (self.sent.elapsed().as_secs_f64() * 1_000_000.0).round() / 1000.0;
        rec.push_attempt(self.record);
    }
}

/// Runs the forward phase (and, for non-streaming answers, settle).
pub async fn forward(
    state: &Arc<AppState>,
    rec: &mut Recorder,
    routed: Routed,
) -> Result<Response<Body>, GatewayError> {
    let plan = routed.plan;
    let clamped = routed.admitted.clamped_from.is_some();
    let provider_lists = routed.admitted.provider_lists;
    let classified = routed.admitted.classified;
    let requested = classified.facts.model.clone().unwrap_or_default();
    let r = Request {
        state,
        accepted: &classified.auth.accepted,
        client: &classified.client,
        requested: &requested,
        stream: classified.facts.stream,
        provider_lists: &provider_lists,
        principal: &classified.auth.principal,
        clamp: classified.facts.max_tokens.filter(|_| clamped),
    };
    rec.set_route(plan.route.as_deref(), plan.affinity);
    let available = |i: usize| {
        plan.attempts
            .get(i)
            .is_some_and(|a| a.health().available(Instant::now()))
    };
    let mut schedule = Schedule::new(plan.attempts.len(), &plan.policy.retry, Instant::now());
    let mut last_error: Option<GatewayError> = None;
    while let Some(step) = schedule.next(Instant::now(), available) {
        if !step.wait.is_zero() {
            tokio::time::sleep(step.wait).await;
        }
        let Some(attempt) = plan.attempts.get(step.index) else {
            break;
        };
        // A provider out of budget (or over a rate) under its own policies is skipped like an
        // unhealthy one.
        let mut provider =
            match super::admit::for_provider(state, &classified, attempt.name()).await {
                Ok(p) => p,
                Err(e) => {
                    last_error = Some(e);
                    continue;
                }
            };
        // A target pinned to a model id keeps it: a downgrade does not apply there.
        if attempt.model().is_some() {
            provider.downgrade = None;
        }
        // Its clamp or downgrade changes this attempt's request only: another target, tried
        // after this one, gets the request as admitted.
        let adjusted = match adjusted_for(&r, &provider) {
            Ok(a) => a,
            Err(e) => {
                // Unreachable in practice (the body was validated in classify); give back what
                // the provider's policies took.
                rec.attempt_holds(provider.holds);
                rec.release_attempt_holds();
                last_error = Some(e);
                continue;
            }
        };
        let attempt_r = adjusted.as_ref().map(|(accepted, model)| Request {
            accepted,
            requested: model,
            clamp: provider.clamp_max_tokens.map(u64::from).or(r.clamp),
            ..r
        });
        // What the record said before this attempt's changes, to put back if another target
        // answers; taken only when there are changes, so the common path copies nothing.
        let saved = adjusted.as_ref().map(|_| {
            let saved = rec.adjustment();
            let clamped_from = provider.clamp_max_tokens.and(classified.facts.max_tokens);
            let downgrade = provider
                .downgrade
                .as_ref()
                .map(|(policy, model)| (policy.as_str(), model.as_str()));
            rec.attempt_adjusted(clamped_from, downgrade);
            saved
        });
        let provider_holds = provider.holds;
        let health = attempt.health();
        let Some(lease) = health
            .acquire(Instant::now())
            .or_else(|| step.forced.then(|| health.force()))
        else {
            // Another request took the half-open breaker's single probe meanwhile.
            continue;
        };
        let mut turn = Turn {
            r: attempt_r.as_ref().unwrap_or(&r),
            rec: &mut *rec,
            policy: &plan.policy,
            schedule: &mut schedule,
            available: &available,
            step,
            attempt,
            lease: Some(lease),
        };
        turn.rec.attempt_holds(provider_holds);
        match turn.run().await {
            Attempted::Answered(result) => return result,
            Attempted::Replaced(e) => {
                rec.release_attempt_holds();
                if let Some(saved) = saved {
                    rec.restore_adjustment(saved);
                }
                last_error = Some(e);
            }
        }
    }
    Err(last_error.unwrap_or_else(|| {
        GatewayError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Api,
            format!(
                "no target of route '{}' could be tried before its deadline",
                plan.route.as_deref().unwrap_or("default")
            ),
        )
    }))
}

/// How one attempt ended.
enum Attempted {
    /// What the client gets: an answer, or an error with nothing better left to try.
    Answered(Result<Response<Body>, GatewayError>),
    /// Failed before anything reached the client, and another attempt follows.
    Replaced(GatewayError),
}

/// One attempt and everything it may update: the journal, the target's health, the schedule.
struct Turn<'a, 'r> {
    r: &'a Request<'r>,
    rec: &'a mut Recorder,
    policy: &'a RoutePolicy,
    schedule: &'a mut Schedule,
    available: &'a (dyn Fn(usize) -> bool + Sync),
    step: Step,
    attempt: &'a Attempt,
    /// Until a stream takes it along.
    lease: Option<Lease>,
}

impl Turn<'_, '_> {
    fn lease(&mut self, f: impl FnOnce(&mut Lease)) {
        if let Some(l) = self.lease.as_mut() {
            f(l);
        }
    }

    /// Whether a failure of this attempt can still be replaced by another attempt.
    fn can_continue(&self) -> bool {
        self.schedule.peek(Instant::now(), self.available).is_some()
    }

    /// A failure: replaced when `replaceable` and the schedule has more, else the answer.
    fn give_up_or_replace(&self, replaceable: bool, e: GatewayError) -> Attempted {
        if replaceable && self.can_continue() {
            Attempted::Replaced(e)
        } else {
            Attempted::Answered(Err(e))
        }
    }

    async fn run(&mut self) -> Attempted {
        let r = self.r;
        let (attempt, step) = (self.attempt, self.step);
        let fallback_on = &self.policy.fallback_on;
        self.rec.set_provider(attempt.name(), attempt.model());
        let prepared = match model_for(r, attempt) {
            Ok(model_id) => prepare(r, attempt, &model_id).await.map(|o| (o, model_id)),
            Err(e) => Err(Unready::Unsupported(e)),
        };
        let (outgoing, log) = match prepared {
            Ok((o, model_id)) => (o, AttemptLog::start(attempt, &step, Some(&model_id))),
            Err(unready) => {
                let (e, replaceable) = match unready {
                    Unready::Request(e) => {
                        self.lease(Lease::neutral);
                        (e, false)
                    }
                    Unready::Unsupported(e) => {
                        self.lease(Lease::neutral);
                        (e, true)
                    }
                    Unready::Target(e) => {
                        self.lease(|l| l.failure(Duration::ZERO, false));
                        (e, fallback_on.matches(Failure::Connect))
                    }
                };
                AttemptLog::start(attempt, &step, attempt.model()).finish(
                    self.rec,
                    None,
                    Some(e.message.clone()),
                );
                return self.give_up_or_replace(replaceable, e);
            }
        };
        let limits = limits(r.state, &self.policy.timeouts, attempt);
        let resp = match send(r.state, attempt.upstream(), outgoing, &limits).await {
            Ok(resp) => resp,
            Err((failure, e)) => {
                self.lease(|l| l.failure(log.sent.elapsed(), failure == Failure::Timeout));
                log.finish(self.rec, None, Some(e.message.clone()));
                self.schedule.failed(step.index, None, Instant::now());
                return self.give_up_or_replace(fallback_on.matches(failure), e);
            }
        };
        let head_latency = log.sent.elapsed();
        let (parts, body) = resp.into_parts();
        let status = parts.status;
        let target = attempt.upstream();
        self.rec.set_upstream_request_id(
            parts
                .headers
                .get(&REQUEST_ID)
                .or_else(|| parts.headers.get("x-amzn-requestid"))
                .or_else(|| parts.headers.get("x-request-id"))
                .and_then(|v| v.to_str().ok()),
        );
        let streaming = if target.dialect() == Dialect::Anthropic {
            is_event_stream(&parts.headers)
        } else {
            r.stream && status.is_success()
        };

        if !status.is_success() {
            let code = status.as_u16();
            if fallback_on.is_target_failure(code) {
                self.lease(|l| l.failure(head_latency, false));
            } else {
                self.lease(Lease::neutral);
            }
            let retry_after = parts
                .headers
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after);
            self.schedule
                .failed(step.index, retry_after, Instant::now());
            if fallback_on.matches(Failure::Status(code)) && self.can_continue() {
                let detail = error_detail(body).await;
                log.finish(self.rec, Some(code), Some(detail.clone()));
                return Attempted::Replaced(GatewayError::new(
                    status,
                    kind_of_status(code),
                    format!("provider '{}' answered {code}: {detail}", target.name()),
                ));
            }
            // The last word: relayed as the upstream said it.
            log.finish(self.rec, Some(code), None);
            return Attempted::Answered(if streaming {
                let mut body = body;
                let ahead = read_ahead(&mut body, Vec::new()).await;
                self.relay_stream(parts, body, ahead, limits)
            } else {
                match read_whole(body, limits.idle).await {
                    Ok(bytes) => relay_whole(r, self.rec, target, parts, bytes),
                    Err(m) => Err(GatewayError::bad_gateway(format!(
                        "provider '{}' response failed: {m}",
                        target.name()
                    ))),
                }
            });
        }

        if streaming {
            let mut body = body;
            let mut held = Vec::new();
            if self.can_continue() {
                let deadline = log.sent + limits.ttfb;
                let sse = matches!(
                    target,
                    Upstream::Anthropic(_) | Upstream::Simulator(_) | Upstream::Vertex(_)
                );
                if let Err((failure, message)) =
                    first_content(&mut body, &mut held, sse, deadline).await
                {
                    self.lease(|l| l.failure(log.sent.elapsed(), failure == Failure::Timeout));
                    self.schedule.failed(step.index, None, Instant::now());
                    if fallback_on.matches(failure) && self.can_continue() {
                        let detail = format!("provider '{}': {message}", target.name());
                        log.finish(self.rec, Some(status.as_u16()), Some(detail.clone()));
                        return Attempted::Replaced(GatewayError::bad_gateway(detail));
                    }
                    // Nothing better is left: the client gets this stream as it is.
                    log.finish(self.rec, Some(status.as_u16()), Some(message));
                    let ahead = ReadAhead::frames(held);
                    return Attempted::Answered(self.relay_stream(parts, body, ahead, limits));
                }
            }
            let ahead = read_ahead(&mut body, held).await;
            self.lease(|l| l.success(head_latency));
            log.finish(self.rec, Some(status.as_u16()), None);
            return Attempted::Answered(self.relay_stream(parts, body, ahead, limits));
        }

        match read_whole(body, limits.idle).await {
            Ok(bytes) => {
                self.lease(|l| l.success(head_latency));
                log.finish(self.rec, Some(status.as_u16()), None);
                Attempted::Answered(relay_whole(r, self.rec, target, parts, bytes))
            }
            Err(m) => {
                let e = GatewayError::bad_gateway(format!(
                    "provider '{}' response failed: {m}",
                    target.name()
                ));
                self.lease(|l| l.failure(log.sent.elapsed(), false));
                log.finish(self.rec, Some(status.as_u16()), Some(e.message.clone()));
                self.schedule.failed(step.index, None, Instant::now());
                self.give_up_or_replace(fallback_on.matches(Failure::Status(502)), e)
            }
        }
    }

    /// Starts relaying a stream: the response head for the client, then [`StreamRelay`], which
    /// takes the lease along until the stream ends.
    fn relay_stream(
        &mut self,
        mut parts: http::response::Parts,
        body: ResponseBody,
        ahead: ReadAhead,
        limits: Limits,
    ) -> Result<Response<Body>, GatewayError> {
        let (r, rec) = (self.r, &mut *self.rec);
        let target = self.attempt.upstream();
        let mut out = Response::builder().status(parts.status);
        if let Some(h) = out.headers_mut() {
            if target.dialect() == Dialect::Anthropic {
                *h = client_response_headers(std::mem::take(&mut parts.headers));
            } else {
                if r.passthrough(target) {
                    openai_client_headers(&parts.headers, h);
                } else if let Some(v) = parts.headers.get(http::header::RETRY_AFTER) {
                    h.insert(http::header::RETRY_AFTER, v.clone());
                }
                h.insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("text/event-stream"),
                );
                h.insert(
                    http::header::CACHE_CONTROL,
                    HeaderValue::from_static("no-cache"),
                );
            }
            rec.set_request_id_header(h);
        }
        let (encode, content_type) = if r.passthrough(target) {
            (None, None)
        } else {
            dialect::stream_encoder(r.client)
        };
        if let (Some(h), Some(ct)) = (out.headers_mut(), content_type) {
            h.insert(http::header::CONTENT_TYPE, ct);
            h.remove(http::header::CONTENT_LENGTH);
        }
        rec.mark_first_byte();
        let mut relay = StreamRelay::new(body, rec.detach(), limits.idle, parts.status.as_u16())
            .with_read_ahead(ahead);
        relay = if r.passthrough(target) {
            // The gateway asked for usage only if the client had not.
            relay.with_chat_watch(ChatStreamWatch::new(!r.client.include_usage))
        } else {
            let decode = convert::stream_decoder(target, r.client.model.as_str(), rec.id());
            relay.with_transforms(decode, encode)
        };
        if let Some(lease) = self.lease.take() {
            relay = relay.with_lease(lease);
        }
        out.body(Body::new(relay))
            .map_err(|e| GatewayError::bad_gateway(format!("invalid upstream response: {e}")))
    }
}

/// The error type clients expect for a status the gateway passes on in its own words.
fn kind_of_status(code: u16) -> ErrorKind {
    match code {
        429 => ErrorKind::RateLimit,
        408 | 504 => ErrorKind::Timeout,
        _ => ErrorKind::Api,
    }
}

/// The request as the policies of an attempt's provider change it (`max_tokens` clamped, the
/// model downgraded), or `None` when they change nothing.
fn adjusted_for(
    r: &Request<'_>,
    provider: &super::admit::ProviderAdmission,
) -> Result<Option<(Accepted, String)>, GatewayError> {
    if provider.clamp_max_tokens.is_none() && provider.downgrade.is_none() {
        return Ok(None);
    }
    let model = provider.downgrade.as_ref().map(|(_, m)| m.as_str());
    let body =
        tollgate_wire::anthropic::edit_request(&r.accepted.body, model, provider.clamp_max_tokens)
            .map_err(|e| GatewayError::invalid(e.to_string()))?;
    let accepted = Accepted {
        body,
        ..r.accepted.clone()
    };
    Ok(Some((accepted, model.unwrap_or(r.requested).to_string())))
}

/// The model id to send: the route's, else the catalogue's id on that provider, else the
/// requested name.
fn model_for(r: &Request<'_>, attempt: &Attempt) -> Result<String, GatewayError> {
    // A provider a policy does not allow is skipped like one that does not serve the model.
    for (policy, allowed) in r.provider_lists {
        if !allowed_by(allowed, &[attempt.name()]) {
            let mut e = super::admit::refusal_error(
                &Refusal::ProviderNotAllowed {
                    policy: policy.clone(),
                    provider: attempt.name().to_string(),
                    allowed: allowed.clone(),
                },
                None,
            );
            e.policy = Some(policy.clone());
            return Err(e);
        }
    }
    if let Some(m) = attempt.model() {
        return Ok(m.to_string());
    }
    match r.state.catalog.on_provider(r.requested, attempt.name()) {
        ModelOnProvider::Unlisted => Ok(r.requested.to_string()),
        ModelOnProvider::Mapped { id, .. } => Ok(id.to_string()),
        ModelOnProvider::NotServed { name } => Err(GatewayError::not_found(format!(
            "model '{name}' is not served by provider '{}' (see [[models]] in the gateway config)",
            attempt.name()
        ))),
    }
}

/// A request ready for its upstream.
enum Outgoing<'a> {
    Http(http::Request<UpstreamBody>),
    Simulated {
        path: &'a str,
        headers: &'a HeaderMap,
        body: Bytes,
    },
}

/// Why an attempt's request could not be made, and so whether another target may do better.
enum Unready {
    /// The request cannot go anywhere as it is.
    Request(GatewayError),
    /// This target cannot take it (a model it does not serve, a body or endpoint its dialect
    /// has no form for); another target may. Not held against the target's health.
    Unsupported(GatewayError),
    /// The target failed before a request could be sent (its credentials could not be had).
    Target(GatewayError),
}

/// Builds the attempt's request.
async fn prepare<'a>(
    r: &Request<'a>,
    attempt: &Attempt,
    model_id: &str,
) -> Result<Outgoing<'a>, Unready> {
    let a = r.accepted;
    let same_body = || {
        if model_id == r.requested {
            Ok(a.body.clone())
        } else {
            convert::with_model(&a.body, model_id, r.stream).map_err(Unready::Request)
        }
    };
    // A credential stored for the caller's team, workspace or org replaces the configured one.
    let own = r.state.vault.upstream(attempt.name(), r.principal);
    let upstream = own.as_deref().unwrap_or(attempt.upstream());
    if let Some(why) = &r.client.unconvertible
        && !r.passthrough(upstream)
    {
        return Err(Unready::Unsupported(GatewayError::invalid(why.clone())));
    }
    let mut req = match upstream {
        Upstream::Simulator(_) => {
            return Ok(Outgoing::Simulated {
                path: &a.api_path_and_query,
                headers: &a.headers,
                body: same_body()?,
            });
        }
        Upstream::Anthropic(up) => up
            .request(
                a.method.clone(),
                &a.api_path_and_query,
                &a.headers,
                same_body()?,
            )
            .map_err(|e| {
                Unready::Request(GatewayError::bad_gateway(format!(
                    "cannot build upstream request: {e}"
                )))
            })?,
        Upstream::OpenAi(up) if r.passthrough(upstream) => {
            prepare_passthrough(r, up, model_id).await?
        }
        other => prepare_converted(r.state, other, a, model_id, r.stream).await?,
    };
    for (name, value) in &attempt.overrides.headers {
        req.headers_mut().insert(name.clone(), value.clone());
    }
    Ok(Outgoing::Http(req))
}

/// Builds the request for an OpenAI client's own body to an OpenAI-dialect upstream: only the
/// model id (and a stream's usage request, and a policy's clamp) change.
async fn prepare_passthrough(
    r: &Request<'_>,
    upstream: &tollgate_providers::OpenAiUpstream,
    model_id: &str,
) -> Result<http::Request<UpstreamBody>, Unready> {
    let original = r.client.chat_body.as_ref().map_or(&[][..], |b| &b[..]);
    let body = tollgate_wire::openai::chat_passthrough_request(original, model_id, r.clamp)
        .map_err(|e| Unready::Request(GatewayError::invalid(e.to_string())))?
        .body;
    let call = UpstreamCall {
        operation: Operation::Messages,
        stream: r.stream,
        model: model_id,
        body,
        client_headers: &r.accepted.headers,
        betas: &[],
    };
    upstream.prepare(&call).await.map_err(|e| {
        let message = format!("provider '{}': {e}", upstream.name);
        if e.retryable {
            Unready::Target(GatewayError::bad_gateway(message))
        } else {
            Unready::Unsupported(GatewayError::not_found(message))
        }
    })
}

/// Builds the request for an upstream of another dialect: beta filtering, body conversion,
/// endpoint and credentials.
async fn prepare_converted(
    state: &AppState,
    upstream: &Upstream,
    accepted: &Accepted,
    model_id: &str,
    stream: bool,
) -> Result<http::Request<UpstreamBody>, Unready> {
    let count_tokens = accepted.endpoint == Endpoint::CountTokens;
    let header_betas: Vec<&str> = accepted
        .headers
        .get_all(&ANTHROPIC_BETA)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let betas = state
        .betas
        .get(upstream.name())
        .map(|t| t.filter(upstream.kind(), &header_betas))
        .unwrap_or_default();
    let body = convert::request_body(
        upstream,
        &accepted.body,
        model_id,
        stream,
        count_tokens,
        &betas,
    )
    .map_err(Unready::Unsupported)?;
    let call = UpstreamCall {
        operation: if count_tokens {
            Operation::CountTokens
        } else {
            Operation::Messages
        },
        stream,
        model: model_id,
        body,
        client_headers: &accepted.headers,
        betas: &betas,
    };
    let prepared = match upstream {
        Upstream::Bedrock(b) => b.prepare(&call).await,
        Upstream::Vertex(v) => v.prepare(&call).await,
        Upstream::OpenAi(o) => o.prepare(&call).await,
        Upstream::Anthropic(_) | Upstream::Simulator(_) => {
            return Err(Unready::Request(GatewayError::bad_gateway(
                "this upstream takes the pass-through path",
            )));
        }
    };
    prepared.map_err(|e| {
        if e.retryable {
            Unready::Target(GatewayError::bad_gateway(format!(
                "provider '{}': {e}",
                upstream.name()
            )))
        } else {
            // Refused by configuration (or an operation this provider does not offer): the
            // same answer every time, but perhaps not from another provider.
            Unready::Unsupported(GatewayError::not_found(format!(
                "provider '{}': {e}",
                upstream.name()
            )))
        }
    })
}

thread_local! {
    /// Clients with a route's own connect timeout, per worker thread like the default client
    /// (the connect timeout is a property of the connector, hence of the pool).
    static CLIENTS: std::cell::RefCell<std::collections::HashMap<Duration, UpstreamClient>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

fn client_for(state: &AppState, connect: Option<Duration>) -> UpstreamClient {
    match connect {
        Some(c) if c != state.client_options.connect_timeout => CLIENTS.with(|m| {
            m.borrow_mut()
                .entry(c)
                .or_insert_with(|| {
                    tollgate_providers::client::build_client(&UpstreamClientOptions {
                        connect_timeout: c,
                        ..state.client_options.clone()
                    })
                })
                .clone()
        }),
        _ => state.upstream_client(),
    }
}

/// Sends the request and waits for the response head, within the time to first byte.
async fn send(
    state: &AppState,
    target: &Upstream,
    out: Outgoing<'_>,
    limits: &Limits,
) -> Result<Response<ResponseBody>, (Failure, GatewayError)> {
    let timed_out = || {
        (
            Failure::Timeout,
            GatewayError::gateway_timeout(format!(
                "provider '{}' sent no response within {}",
                target.name(),
                human(limits.ttfb)
            )),
        )
    };
    match out {
        Outgoing::Simulated {
            path,
            headers,
            body,
        } => {
            let Upstream::Simulator(sim) = target else {
                return Err((
                    Failure::Status(502),
                    GatewayError::bad_gateway("a simulated request for another upstream kind"),
                ));
            };
            tokio::time::timeout(limits.ttfb, sim.call(path, headers, &body))
                .await
                .map(|r| r.map(ResponseBody::Simulated))
                .map_err(|_| timed_out())
        }
        Outgoing::Http(req) => {
            let client = client_for(state, limits.connect);
            match tokio::time::timeout(limits.ttfb, client.request(req)).await {
                Err(_) => Err(timed_out()),
                Ok(Err(e)) => {
                    // Refused or unreachable is a connect failure; a connection that died
                    // before the head is answered as the gateway would answer it: 502.
                    let failure = if e.is_connect() {
                        Failure::Connect
                    } else {
                        Failure::Status(502)
                    };
                    Err((
                        failure,
                        GatewayError::bad_gateway(format!(
                            "provider '{}' could not be reached: {}",
                            target.name(),
                            error_chain(&e)
                        )),
                    ))
                }
                Ok(Ok(r)) => Ok(r.map(ResponseBody::Http)),
            }
        }
    }
}

/// Reads a stream up to its first content delta (or any event that is not `message_start`,
/// `ping` or `content_block_start`), holding back what came before. `sse` says the
/// stream is Anthropic SSE (events can be read); for other framings the first data commits.
async fn first_content(
    body: &mut ResponseBody,
    held: &mut Vec<Bytes>,
    sse: bool,
    deadline: Instant,
) -> Result<(), (Failure, String)> {
    let mut scanner = SseScanner::new();
    let mut held_bytes = 0;
    loop {
        let frame = match tokio::time::timeout_at(deadline.into(), body.frame()).await {
            Err(_) => {
                return Err((
                    Failure::Timeout,
                    "the stream sent no content before the time to first byte ran out".into(),
                ));
            }
            Ok(None) => {
                return Err((
                    Failure::Status(502),
                    "the stream ended before any content".into(),
                ));
            }
            Ok(Some(Err(e))) => {
                return Err((Failure::Status(502), format!("the stream failed: {e}")));
            }
            Ok(Some(Ok(f))) => f,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if data.is_empty() {
            continue;
        }
        held_bytes += data.len();
        if !sse {
            held.push(data);
            return Ok(());
        }
        let mut verdict: Option<Result<(), (Failure, String)>> = None;
        scanner.feed(&data, |ev| {
            if verdict.is_some() {
                return;
            }
            match ev.name {
                // What comes before the first token: safe to hold back and to throw away.
                "message_start" | "ping" | "content_block_start" | "" => {}
                "error" => {
                    let facts = read_response(&ev.data);
                    let (kind, message) = facts
                        .error
                        .unwrap_or_else(|| ("api_error".into(), "error event".into()));
                    verdict = Some(Err((
                        Failure::Status(status_of_error_type(&kind)),
                        format!("{kind}: {message}"),
                    )));
                }
                // Content, or an event this gateway does not know: the client must see it.
                _ => verdict = Some(Ok(())),
            }
        });
        held.push(data);
        match verdict {
            Some(v) => return v,
            None if held_bytes > MAX_HELD_BACK => return Ok(()),
            None => {}
        }
    }
}

/// Takes what the upstream has already sent after `held`, without waiting for more.
///
/// An upstream often sends several events at once (the opening events, or a short answer
/// whole), but hyper's client hands its body over one chunk per turn of the connection's task.
/// Relayed one by one, each chunk cost a `writev(2)` to the client and the client a wake-up;
/// taken here before the response head goes out, they leave in one write with it. Between
/// takes the task yields once, so the connection's task can decode what it already read; the
/// first take that finds nothing ends the read-ahead, so a stream that is really arriving
/// event by event is not held back by more than a turn of the scheduler.
async fn read_ahead(body: &mut ResponseBody, held: Vec<Bytes>) -> ReadAhead {
    use futures_util::FutureExt as _;
    // Frames held back for a fallback count against the bound too: they go out in the same
    // first write.
    let mut bytes: usize = held.iter().map(Bytes::len).sum();
    let mut ahead = ReadAhead::frames(held);
    // The first take only tells the connection's task that the body is wanted.
    for round in 0..READ_AHEAD_ROUNDS {
        let mut took = false;
        while bytes <= MAX_READ_AHEAD
            && let Some(polled) = body.frame().now_or_never()
        {
            match polled {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data()
                        && !data.is_empty()
                    {
                        bytes += data.len();
                        ahead.frames.push(data);
                        took = true;
                    }
                }
                None => {
                    ahead.then = Some(AfterFrames::End);
                    return ahead;
                }
                Some(Err(e)) => {
                    ahead.then = Some(AfterFrames::Failed(e));
                    return ahead;
                }
            }
        }
        if (round > 0 && !took) || bytes > MAX_READ_AHEAD {
            break;
        }
        yield_once().await;
    }
    ahead
}

/// Returns `Pending` once after waking itself, so every task already woken runs first.
///
/// Not `tokio::task::yield_now`, which defers the wake-up until the runtime has polled the
/// I/O driver: one more `epoll_wait(2)` per yield.
async fn yield_once() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if std::mem::replace(&mut yielded, true) {
            std::task::Poll::Ready(())
        } else {
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    })
    .await;
}

/// The status the Anthropic API uses for an error type seen inside a stream.
fn status_of_error_type(kind: &str) -> u16 {
    match kind {
        "overloaded_error" => 529,
        "rate_limit_error" => 429,
        "timeout_error" => 504,
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        _ => 500,
    }
}

/// The message of an error body that will not reach the client (bounded, quickly read).
async fn error_detail(body: ResponseBody) -> String {
    let read = tokio::time::timeout(
        Duration::from_secs(5),
        Limited::new(body, MAX_ERROR_DETAIL).collect(),
    )
    .await;
    let Ok(Ok(c)) = read else {
        return "(error body not read)".into();
    };
    let bytes = c.to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    v["error"]["message"]
        .as_str()
        .or_else(|| v["message"].as_str())
        .map(str::to_string)
        .unwrap_or_else(|| String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned())
}

/// Relays a whole answer, converted to Anthropic when needed and then shaped for the client;
/// the journal record is written before the body is handed over.
fn relay_whole(
    r: &Request<'_>,
    rec: &mut Recorder,
    target: &Upstream,
    mut parts: http::response::Parts,
    bytes: Bytes,
) -> Result<Response<Body>, GatewayError> {
    let client_model = r.client.model.as_str();
    let same_dialect = target.dialect() == Dialect::Anthropic;
    let status = parts.status;
    let credentials_refused = status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN;
    if r.passthrough(target) && !credentials_refused {
        // Same dialect: the answer, error or not, is the upstream's own bytes.
        let facts = tollgate_wire::openai::chat_response_facts(&bytes);
        let mut out = Response::builder().status(status);
        if let Some(h) = out.headers_mut() {
            openai_client_headers(&parts.headers, h);
            h.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            rec.set_request_id_header(h);
        }
        rec.mark_first_byte();
        rec.capture_response(&bytes);
        rec.finish_response(status.as_u16(), &facts, bytes.len() as u64, None);
        return out
            .body(Body::from(bytes))
            .map_err(|e| GatewayError::bad_gateway(format!("invalid upstream response: {e}")));
    }
    let mut out = Response::builder().status(status);
    if let Some(h) = out.headers_mut() {
        if same_dialect {
            // A 401 becomes a 502 below, read from these headers.
            *h = client_response_headers(if status == StatusCode::UNAUTHORIZED {
                parts.headers.clone()
            } else {
                std::mem::take(&mut parts.headers)
            });
        } else if let Some(v) = parts.headers.get(http::header::RETRY_AFTER) {
            h.insert(http::header::RETRY_AFTER, v.clone());
        }
        rec.set_request_id_header(h);
    }
    // An upstream 401 refuses the gateway's credential, not the client's key: passed on, it
    // would send Claude Code to its login screen. It becomes a 502 naming the provider.
    let (status, bytes) = if same_dialect && status != StatusCode::UNAUTHORIZED {
        (status, bytes)
    } else if status.is_success() {
        (status, convert::response_body(target, bytes, client_model)?)
    } else {
        convert::error_response(target, status, &parts.headers, &bytes)
    };
    if !same_dialect && let Some(h) = out.headers_mut() {
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    let facts = read_response(&bytes);
    let (status, extra, bytes) = dialect::whole_response(r.client, status, bytes);
    let mut out = out.status(status);
    if let Some(h) = out.headers_mut() {
        for (name, value) in extra {
            h.insert(name, value);
        }
    }
    rec.mark_first_byte();
    rec.capture_response(&bytes);
    rec.finish_response(status.as_u16(), &facts, bytes.len() as u64, None);
    out.body(Body::from(bytes))
        .map_err(|e| GatewayError::bad_gateway(format!("invalid upstream response: {e}")))
}

async fn read_whole(body: ResponseBody, idle: Duration) -> Result<Bytes, String> {
    match tokio::time::timeout(idle, Limited::new(body, MAX_UPSTREAM_BODY).collect()).await {
        Err(_) => Err(format!("no complete response within {}", human(idle))),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok(c)) => Ok(c.to_bytes()),
    }
}

fn is_event_stream(h: &HeaderMap) -> bool {
    h.get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("text/event-stream"))
}

/// The upstream headers an OpenAI client acts on, passed along when its request went through
/// unchanged: the retry advice the official SDKs honour (`retry-after`, `retry-after-ms`,
/// `x-should-retry`), the `x-ratelimit-*` budget and the upstream's `x-request-id`. Cookies and
/// the provider's organisation and project names stay behind.
fn openai_client_headers(from: &http::HeaderMap, to: &mut http::HeaderMap) {
    for (name, value) in from {
        let n = name.as_str();
        if matches!(
            n,
            "retry-after" | "retry-after-ms" | "x-should-retry" | "x-request-id"
        ) || n.starts_with("x-ratelimit-")
        {
            to.append(name.clone(), value.clone());
        }
    }
}

/// Every upstream header except connection-level ones reaches the client: `retry-after`,
/// `x-should-retry`, `request-id` and the rate-limit headers included. The upstream's map is
/// reused as it is, minus those few, rather than copied entry by entry into a new one.
fn client_response_headers(mut headers: HeaderMap) -> HeaderMap {
    while let Some(name) = headers
        .keys()
        .find(|k| HOP_BY_HOP.contains(&k.as_str()))
        .cloned()
    {
        headers.remove(&name);
    }
    headers
}

/// The innermost cause is the useful part of a connect error ("connection refused").
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        msg.push_str(": ");
        msg.push_str(&c.to_string());
        cur = c.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use tollgate_providers::simulator::SimBody;

    fn body(frames: &[(u64, &'static str)], cut: bool) -> ResponseBody {
        let frames: VecDeque<(Duration, Bytes)> = frames
            .iter()
            .map(|(ms, s)| (Duration::from_millis(*ms), Bytes::from_static(s.as_bytes())))
            .collect();
        ResponseBody::Simulated(SimBody::new(frames, cut))
    }

    const START: &str =
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{}}\n\n";
    const BLOCK: &str = "event: content_block_start\ndata: {\"type\":\"content_block_start\"}\n\n";
    const DELTA: &str = "event: content_block_delta\ndata: {\"type\":\"content_block_delta\"}\n\n";
    const OVERLOADED: &str = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";

    #[tokio::test]
    async fn streams_commit_at_their_first_delta_and_fail_before_it() {
        let soon = || Instant::now() + Duration::from_secs(5);
        let mut held = Vec::new();
        let mut b = body(&[(0, START), (0, BLOCK), (0, DELTA), (0, DELTA)], false);
        assert_eq!(first_content(&mut b, &mut held, true, soon()).await, Ok(()));
        assert_eq!(held.len(), 3, "held up to and including the first delta");

        let mut held = Vec::new();
        let mut b = body(&[(0, START), (0, OVERLOADED)], false);
        let (f, m) = first_content(&mut b, &mut held, true, soon())
            .await
            .unwrap_err();
        assert_eq!(f, Failure::Status(529));
        assert!(m.contains("overloaded_error"), "{m}");

        let mut b = body(&[(0, START)], true);
        let (f, _) = first_content(&mut b, &mut Vec::new(), true, soon())
            .await
            .unwrap_err();
        assert_eq!(f, Failure::Status(502), "a cut stream");

        let mut b = body(&[(0, START), (2_000, DELTA)], false);
        let near = Instant::now() + Duration::from_millis(50);
        let (f, _) = first_content(&mut b, &mut Vec::new(), true, near)
            .await
            .unwrap_err();
        assert_eq!(f, Failure::Timeout, "silence past the time to first byte");

        // Other framings commit at their first bytes.
        let mut held = Vec::new();
        let mut b = body(&[(0, "\x00\x00binary")], false);
        assert_eq!(
            first_content(&mut b, &mut held, false, soon()).await,
            Ok(())
        );
        assert_eq!(held.len(), 1);
    }

    #[tokio::test]
    async fn read_ahead_takes_what_was_sent_and_waits_for_nothing() {
        let mut b = body(&[(0, START), (0, BLOCK), (0, DELTA)], false);
        let ahead = read_ahead(&mut b, Vec::new()).await;
        assert_eq!(ahead.frames.len(), 3);
        assert!(
            matches!(ahead.then, Some(AfterFrames::End)),
            "the end was read ahead too"
        );

        let mut b = body(&[(0, START)], true);
        let ahead = read_ahead(&mut b, vec![Bytes::from_static(b"held")]).await;
        assert_eq!(ahead.frames.len(), 2, "held frames come first");
        assert!(
            matches!(ahead.then, Some(AfterFrames::Failed(_))),
            "a cut stream"
        );

        // A body that is all there at once (a simulator's) is taken up to the byte bound.
        let big: &'static str = "x".repeat(10_000).leak();
        let frames: Vec<(u64, &str)> = (0..20).map(|_| (0, big)).collect();
        let mut b = body(&frames, false);
        let ahead = read_ahead(&mut b, Vec::new()).await;
        assert_eq!(ahead.frames.len(), 7, "stops past {MAX_READ_AHEAD} bytes");
        assert!(ahead.then.is_none());
        // What was held back counts: past the bound already, nothing more is taken.
        let mut b = body(&frames, false);
        let held = vec![Bytes::from_static(big.as_bytes()); 7];
        let ahead = read_ahead(&mut b, held).await;
        assert_eq!(ahead.frames.len(), 7, "only the held frames");

        let started = Instant::now();
        let mut b = body(&[(0, START), (2_000, DELTA)], false);
        let ahead = read_ahead(&mut b, Vec::new()).await;
        assert!(started.elapsed() < Duration::from_millis(500));
        assert_eq!(ahead.frames.len(), 1, "a paced event is not waited for");
        assert!(ahead.then.is_none());
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(human(Duration::from_secs(600)), "600 s");
        assert_eq!(human(Duration::from_millis(1500)), "1.5 s");
        assert_eq!(human(Duration::from_millis(250)), "250 ms");
    }
}
