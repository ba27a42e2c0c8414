//! Phase 7, settle: usage → cost, and the one journal record of the request.
//!
//! A [`Recorder`] is created when a request arrives and travels with it — into the streaming
//! body when there is one. Whichever way the request ends (an early answer, a complete
//! response, a broken stream, a client that hangs up), exactly one record is written: the
//! finishing methods take the record out, and `Drop` writes what is left as a client
//! disconnect.

use super::admit::Admitted;
use super::classify::{Classified, attribution};
use crate::error::GatewayError;
use crate::pipeline::authenticate::Authenticated;
use crate::state::AppState;
use axum::body::Body;
use http::{HeaderMap, HeaderValue, Request};
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;
use tollgate_govern::admission::{Actual, Holds};
use tollgate_govern::alerts::thresholds_crossed;
use tollgate_ledger::journal::{AttemptRecord, JournalRecord};
use tollgate_ledger::{Cost, Nanos, price};
use tollgate_wire::anthropic::ResponseFacts;
use tollgate_wire::headers::X_TOLLGATE_REQUEST_ID;

/// Builds and writes the journal record of one request.
pub struct Recorder {
    state: Arc<AppState>,
    started: Instant,
    id: HeaderValue,
    rec: Option<Box<JournalRecord>>,
    response_capture: Option<Vec<u8>>,
    /// Budget reservations, slots and turns to settle with the record.
    holds: Option<Holds>,
    /// What the current attempt's provider policies hold (given back if the attempt is
    /// replaced by another target).
    attempt_holds: Option<Holds>,
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn ms(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

/// The record's account of what policies changed (see [`Recorder::adjustment`]).
#[derive(Debug, Clone, Default)]
pub struct Adjustment {
    clamped_from: Option<u64>,
    policy: Option<String>,
    downgraded_from: Option<String>,
    model: Option<String>,
}

impl Recorder {
    /// Starts the record at arrival: id, time, method, path and the attribution headers, so
    /// that even a request refused at once is attributed.
    pub fn start(state: &Arc<AppState>, req: &Request<Body>) -> Self {
        let now = time::OffsetDateTime::now_utc();
        let unix_ms = (now.unix_timestamp_nanos() / 1_000_000) as i64;
        let id = crate::request_id::new_request_id(unix_ms as u64);
        let a = attribution(req.headers());
        let rec = JournalRecord {
            id: id.clone(),
            started_at: rfc3339(now),
            started_unix_ms: unix_ms,
            method: req.method().to_string(),
            path: req.uri().path().to_string(),
            project: a.project,
            tags: a.tags,
            session_id: a.session_id,
            agent_id: a.agent_id,
            user_agent: a.user_agent,
            ..Default::default()
        };
        Self {
            state: state.clone(),
            started: Instant::now(),
            id: HeaderValue::from_str(&id).unwrap_or(HeaderValue::from_static("req_unknown")),
            rec: Some(Box::new(rec)),
            response_capture: None,
            holds: None,
            attempt_holds: None,
        }
    }

    /// The request id, as sent in `x-tollgate-request-id`.
    pub fn id(&self) -> &str {
        self.id.to_str().unwrap_or("req_unknown")
    }

    /// Adds the `x-tollgate-request-id` header.
    pub fn set_request_id_header(&self, headers: &mut HeaderMap) {
        headers.insert(&X_TOLLGATE_REQUEST_ID, self.id.clone());
    }

    fn with(&mut self, f: impl FnOnce(&mut JournalRecord)) {
        if let Some(r) = self.rec.as_deref_mut() {
            f(r);
        }
    }

    /// Bytes received from the client (before decoding).
    pub fn bytes_in(&mut self, n: usize) {
        self.with(|r| r.bytes_in = n as u64);
    }

    /// Keeps the request body when body capture is on.
    pub fn capture_request_body(&mut self, body: &[u8]) {
        if let Some(cap) = self.state.limits.body_capture {
            let text = String::from_utf8_lossy(&body[..body.len().min(cap)]).into_owned();
            self.with(|r| r.request_body = Some(text));
            self.response_capture = Some(Vec::new());
        }
    }

    /// Keeps response bytes, up to the cap, when body capture is on.
    pub fn capture_response(&mut self, chunk: &[u8]) {
        if let (Some(buf), Some(cap)) = (
            self.response_capture.as_mut(),
            self.state.limits.body_capture,
        ) {
            let room = cap.saturating_sub(buf.len());
            buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        }
    }

    /// Attributes the request to its caller.
    pub fn attribute(&mut self, caller: &Authenticated) {
        let p = &caller.principal;
        self.with(|r| {
            r.key_id = Some(p.key_id.clone());
            r.org = Some(p.org_id.clone());
            r.team = p.team.clone();
            r.user = Some(p.user.clone());
            if r.project.is_none() {
                r.project = p.default_project.clone();
            }
        });
    }

    /// Records the request facts.
    pub fn classify(&mut self, c: &Classified) {
        self.with(|r| {
            r.model = c.facts.model.clone();
            r.stream = c.facts.stream;
        });
    }

    /// Takes over what admission holds and records what it changed.
    pub fn admitted(&mut self, a: &mut Admitted) {
        let holds = std::mem::take(&mut a.holds);
        if !holds.is_empty() {
            self.holds = Some(holds);
        }
        if let Some(from) = a.clamped_from {
            self.with(|r| r.clamped_max_tokens_from = Some(from));
        }
        if let Some(policy) = a.adjusted_by.clone() {
            let served = a.classified.facts.model.clone();
            self.with(|r| {
                r.policy = Some(policy);
                r.downgraded_from = std::mem::replace(&mut r.model, served);
            });
        }
    }

    /// What the record says policies changed: the clamped `max_tokens`, the downgrading policy,
    /// the model asked for and the model served.
    pub fn adjustment(&self) -> Adjustment {
        self.rec
            .as_deref()
            .map_or_else(Adjustment::default, |r| Adjustment {
                clamped_from: r.clamped_max_tokens_from,
                policy: r.policy.clone(),
                downgraded_from: r.downgraded_from.clone(),
                model: r.model.clone(),
            })
    }

    /// Puts back what [`adjustment`](Self::adjustment) returned: a replaced attempt's own
    /// changes do not describe the attempt that answers.
    pub fn restore_adjustment(&mut self, a: Adjustment) {
        self.with(|r| {
            r.clamped_max_tokens_from = a.clamped_from;
            r.policy = a.policy;
            r.downgraded_from = a.downgraded_from;
            r.model = a.model;
        });
    }

    /// Notes what the policies of an attempt's provider changed for that attempt: `max_tokens`
    /// lowered from `clamped_from`, or the model replaced by `policy`'s downgrade.
    pub fn attempt_adjusted(&mut self, clamped_from: Option<u64>, downgrade: Option<(&str, &str)>) {
        self.with(|r| {
            if clamped_from.is_some() && r.clamped_max_tokens_from.is_none() {
                r.clamped_max_tokens_from = clamped_from;
            }
            if let Some((policy, model)) = downgrade {
                r.policy = Some(policy.to_string());
                let asked = r.model.replace(model.to_string());
                if r.downgraded_from.is_none() {
                    r.downgraded_from = asked;
                }
            }
        });
    }

    /// Holds what the attempt's provider policies took, until the record settles it.
    pub fn attempt_holds(&mut self, holds: Holds) {
        self.attempt_holds = (!holds.is_empty()).then_some(holds);
    }

    /// Gives back what a replaced attempt's provider policies held: another target serves.
    pub fn release_attempt_holds(&mut self) {
        if let Some(h) = self.attempt_holds.take() {
            run_settlement(&self.state, h, Actual::default(), None);
        }
    }

    /// Records the provider an attempt goes to, and the model id it is sent when a route
    /// fixed one (the record is then priced by that model).
    pub fn set_provider(&mut self, name: &str, served_model: Option<&str>) {
        self.with(|r| {
            r.provider = Some(name.to_string());
            r.served_model = served_model.map(str::to_string);
        });
    }

    /// Records the route that planned the attempts and whether session affinity ordered them.
    pub fn set_route(&mut self, route: Option<&str>, affinity: bool) {
        self.with(|r| {
            r.route = route.map(str::to_string);
            r.affinity = affinity;
        });
    }

    /// Adds one upstream attempt.
    pub fn push_attempt(&mut self, attempt: AttemptRecord) {
        self.with(|r| r.attempts.push(attempt));
    }

    /// Marks the moment the response starts towards the client.
    pub fn mark_first_byte(&mut self) {
        let t = ms(self.started.elapsed());
        self.with(|r| {
            if r.ttfb_ms.is_none() {
                r.ttfb_ms = Some(t);
            }
        });
    }

    /// Moves the unfinished record into a new recorder (the streaming body's), leaving this
    /// one empty so it writes nothing.
    pub fn detach(&mut self) -> Recorder {
        Recorder {
            state: self.state.clone(),
            started: self.started,
            id: self.id.clone(),
            rec: self.rec.take(),
            response_capture: self.response_capture.take(),
            holds: self.holds.take(),
            attempt_holds: self.attempt_holds.take(),
        }
    }

    /// Ends a request the gateway answered itself with an error.
    pub fn finish_error(&mut self, err: &GatewayError) {
        self.mark_first_byte();
        let (kind, msg) = (err.kind.anthropic_type(), err.message.clone());
        self.with(|r| {
            if err.policy.is_some() {
                r.policy = err.policy.clone();
            }
            r.status = err.status.as_u16();
            r.error_type = Some(kind.to_string());
            r.error_message = Some(msg);
            r.cost_nanos = Some(0);
            r.cost_usd = Some(Nanos(0).usd_string());
        });
        self.write();
    }

    /// Ends a request answered by the gateway with no tokens involved (e.g. the model list).
    pub fn finish_plain(&mut self, status: u16, bytes_out: usize) {
        self.mark_first_byte();
        self.with(|r| {
            r.status = status;
            r.bytes_out = bytes_out as u64;
            r.cost_nanos = Some(0);
            r.cost_usd = Some(Nanos(0).usd_string());
        });
        self.write();
    }

    /// Ends a request the upstream answered: tokens and cost from the real usage.
    /// `failure` overrides the error seen in the response (e.g. a stream the gateway had to
    /// cut short).
    pub fn finish_response(
        &mut self,
        status: u16,
        facts: &ResponseFacts,
        bytes_out: u64,
        failure: Option<(String, String)>,
    ) {
        let state = self.state.clone();
        let prices = &state.prices;
        self.with(|r| {
            let u = facts.usage;
            r.status = status;
            r.bytes_out = bytes_out;
            // The upstream's `request-id` header is what its support asks for; the message id is
            // the fallback.
            r.upstream_request_id = r.upstream_request_id.take().or(facts.message_id.clone());
            r.input_tokens = u.input_tokens;
            r.output_tokens = u.output_tokens;
            r.cache_creation_input_tokens = u.cache_creation_input_tokens;
            r.cache_read_input_tokens = u.cache_read_input_tokens;
            if let Some((t, m)) = failure.or_else(|| facts.error.clone()) {
                r.error_type = Some(t);
                r.error_message = Some(m);
            }
            let no_tokens = u == tollgate_wire::Usage::default();
            // A catalogue name is what prices are kept under; aliases and provider ids
            // (`…@20250929`, `us.anthropic.…`) resolve to it.
            // A route may have sent another model than the one requested; that one was billed.
            let catalogue_name = r
                .served_model
                .as_deref()
                .or(r.model.as_deref())
                .and_then(|m| state.catalog.resolve(m))
                .map(|e| e.name.as_str())
                .or(r.served_model.as_deref());
            let priced_model = catalogue_name
                .or(facts.model.as_deref())
                .or(r.model.as_deref());
            let cost = match priced_model {
                // Nothing was consumed: an error, or a free endpoint such as count_tokens.
                _ if no_tokens => Cost::Known(Nanos(0)),
                Some(m) => match price(prices, m, &u) {
                    Cost::Unknown => match r.model.as_deref() {
                        Some(req_model) => price(prices, req_model, &u),
                        None => Cost::Unknown,
                    },
                    known => known,
                },
                None => Cost::Unknown,
            };
            match cost {
                Cost::Known(n) => {
                    r.cost_nanos = Some(n.0);
                    r.cost_usd = Some(n.usd_string());
                }
                Cost::Unknown => r.cost_unknown = true,
            }
        });
        if let Some(buf) = self.response_capture.take() {
            let text = String::from_utf8_lossy(&buf).into_owned();
            self.with(|r| r.response_body = Some(text));
        }
        self.write();
    }

    /// Records the upstream's own request id header.
    pub fn set_upstream_request_id(&mut self, id: Option<&str>) {
        if let Some(id) = id {
            self.with(|r| r.upstream_request_id = Some(id.to_string()));
        }
    }

    fn write(&mut self) {
        let Some(mut r) = self.rec.take() else {
            return;
        };
        r.duration_ms = ms(self.started.elapsed());
        for holds in [self.holds.take(), self.attempt_holds.take()]
            .into_iter()
            .flatten()
        {
            settle_holds(&self.state, holds, &r);
        }
        if let Err(e) = self.state.journal.append(*r) {
            tracing::error!(error = %e, request_id = self.id(), "journal append failed");
        }
    }
}

impl Drop for Recorder {
    /// The request ended without a finishing call: the client went away first.
    fn drop(&mut self) {
        if self.rec.is_none() {
            return;
        }
        self.with(|r| {
            if r.status == 0 {
                r.status = 499;
            }
            if r.error_type.is_none() {
                r.error_type = Some("client_closed_request".into());
                r.error_message = Some(
                    "the client closed the connection before the response was complete".into(),
                );
            }
            if r.cost_nanos.is_none() && !r.cost_unknown {
                r.cost_nanos = Some(0);
                r.cost_usd = Some(Nanos(0).usd_string());
            }
        });
        self.write();
    }
}

/// Settles what admission held with what the record says was consumed.
fn settle_holds(state: &Arc<AppState>, holds: Holds, r: &JournalRecord) {
    // A turn is a request the model answered; errors (ours or the upstream's) give their
    // reservation back unless tokens were consumed.
    let reached_upstream =
        (200..300).contains(&r.status) || r.input_tokens > 0 || r.output_tokens > 0;
    let actual = Actual {
        cost_nanos: if r.cost_unknown { None } else { r.cost_nanos },
        tokens: r
            .input_tokens
            .saturating_add(r.output_tokens)
            .saturating_add(r.cache_creation_input_tokens)
            .saturating_add(r.cache_read_input_tokens),
        reached_upstream,
    };
    run_settlement(
        state,
        holds,
        actual,
        Some((r.team.clone(), r.user.clone(), r.id.clone())),
    );
}

/// Settles `holds` with `actual` and raises the threshold alerts it crosses (attributed to
/// `who`: team, user, request id). With the in-process store this completes before returning;
/// with Redis it runs as a task so the response is not held up.
fn run_settlement(
    state: &Arc<AppState>,
    holds: Holds,
    actual: Actual,
    who: Option<(Option<String>, Option<String>, String)>,
) {
    let st = state.clone();
    let fut = async move {
        let watched = if st.alerts.enabled() && who.is_some() {
            holds.watched.clone()
        } else {
            Vec::new()
        };
        holds.settle(&st.counters, actual).await;
        if let (false, Some(who)) = (watched.is_empty(), who) {
            let now = st.clock.now();
            for mut ev in thresholds_crossed(&st.counters, &watched, now).await {
                ev.team = who.0.clone();
                ev.user = who.1.clone();
                ev.request_id = Some(who.2.clone());
                st.alerts.send(ev);
            }
        }
    };
    let mut fut = Box::pin(fut);
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    if fut.as_mut().poll(&mut cx).is_pending() {
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                h.spawn(fut);
            }
            Err(_) => tracing::warn!("no runtime to settle on; reservations will expire"),
        }
    }
}
