//! `kind = "simulator"`: an upstream inside the gateway that answers Anthropic Messages
//! requests itself, with no network — for load tests, failure drills and routing tests.
//!
//! It answers like a strict Anthropic API: a JSON message or its SSE stream with full usage,
//! or an error body with the status's error type. Latency (`ttfb_ms`, `tokens_per_second`),
//! injected errors (`errors`, `retry_after`), cut streams (`midstream_drop_rate`) and stalls
//! (`stall_ms`, `stall_rate`) are drawn per request. A prompt cache per (model, session, agent)
//! makes the second turn of a session read its prefix back, as a real cache would.
//!
//! # Layout
//! - `settings`: the knobs, their validation, and the control file that changes them at run time.
//! - `cache`: the simulated prompt cache.
//! - `response`: the bytes of answers and errors.
//! - `body`: the response body that releases frames on a schedule.

mod body;
mod cache;
mod response;
mod settings;

pub use body::{SimBody, SimulatedDrop};
pub use cache::CacheUse;
pub use settings::{CONTROL_CHECK, SimulatorPatch, SimulatorSettings};

use crate::anthropic::ProviderConfigError;
use crate::config::ProviderConfig;
use arc_swap::ArcSwap;
use bytes::Bytes;
use cache::PromptCache;
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use settings::ControlFile;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tollgate_wire::anthropic::{error_body, read_request};
use tollgate_wire::headers::{REQUEST_ID, X_CLAUDE_CODE_AGENT_ID, X_CLAUDE_CODE_SESSION_ID};

/// A configured simulator. Clones share settings, cache and counters.
#[derive(Clone)]
pub struct SimulatorUpstream {
    /// The provider entry's name.
    pub name: String,
    inner: Arc<Inner>,
}

struct Inner {
    base: SimulatorSettings,
    current: ArcSwap<SimulatorSettings>,
    control: Option<ControlFile>,
    cache: PromptCache,
    seq: AtomicU64,
}

impl std::fmt::Debug for SimulatorUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimulatorUpstream")
            .field("name", &self.name)
            .field("settings", &self.inner.current.load())
            .finish_non_exhaustive()
    }
}

/// Changes a running simulator's settings from the same process (tests, benchmarks).
#[derive(Clone)]
pub struct SimulatorHandle {
    inner: Arc<Inner>,
}

impl SimulatorHandle {
    /// The settings in force.
    pub fn get(&self) -> SimulatorSettings {
        SimulatorSettings::clone(&self.inner.current.load())
    }

    /// Replaces the settings for every later request (a later control-file change wins).
    pub fn set(&self, settings: SimulatorSettings) {
        self.inner.current.store(Arc::new(settings));
    }

    /// Changes some settings for every later request.
    pub fn update(&self, f: impl FnOnce(&mut SimulatorSettings)) {
        let mut s = self.get();
        f(&mut s);
        self.set(s);
    }
}

impl SimulatorUpstream {
    /// A simulator with these settings and no control file.
    pub fn new(name: &str, settings: SimulatorSettings) -> Self {
        Self::with_control(name, settings, None)
    }

    fn with_control(name: &str, settings: SimulatorSettings, control: Option<ControlFile>) -> Self {
        Self {
            name: name.to_string(),
            inner: Arc::new(Inner {
                current: ArcSwap::from_pointee(settings.clone()),
                base: settings,
                control,
                cache: PromptCache::default(),
                seq: AtomicU64::new(0),
            }),
        }
    }

    /// Validates the simulator keys of a provider entry.
    pub fn from_config(c: &ProviderConfig) -> Result<Self, ProviderConfigError> {
        let patch = SimulatorPatch {
            ttfb_ms: c.ttfb_ms,
            tokens_per_second: c.tokens_per_second,
            output_tokens: c.output_tokens,
            errors: (!c.errors.is_empty()).then(|| c.errors.clone()),
            retry_after: c.retry_after,
            midstream_drop_rate: c.midstream_drop_rate,
            stall_ms: c.stall_ms,
            stall_rate: c.stall_rate,
            cache_ttl_secs: c.cache_ttl_secs,
        };
        let settings = patch
            .apply(&SimulatorSettings::default())
            .map_err(|e| ProviderConfigError(format!("provider '{}' (simulator): {e}", c.name)))?;
        let control = crate::call::non_empty(&c.control_file)
            .map(|p| ControlFile::new(std::path::PathBuf::from(p)));
        Ok(Self::with_control(&c.name, settings, control))
    }

    /// A handle that changes this simulator's settings while it runs.
    pub fn handle(&self) -> SimulatorHandle {
        SimulatorHandle {
            inner: self.inner.clone(),
        }
    }

    /// The settings for the next request, after a look at the control file.
    pub fn settings(&self) -> Arc<SimulatorSettings> {
        if let Some(c) = &self.inner.control
            && let Some(s) = c.poll(&self.inner.base)
        {
            self.inner.current.store(Arc::new(s));
        }
        self.inner.current.load_full()
    }

    /// Answers one request for `api_path` (`/v1/messages…` or `/v1/messages/count_tokens…`).
    /// The future resolves when the response head would have arrived; the body then paces
    /// itself.
    pub async fn call(
        &self,
        api_path: &str,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> Response<SimBody> {
        let s = self.settings();
        let seq = self.inner.seq.fetch_add(1, Ordering::Relaxed) + 1;
        // The provider's name in the request id tells a test (or a person reading a journal)
        // which simulator answered.
        let n = &format!("{}_{seq:08}", self.name);
        let facts = match read_request(body) {
            Ok(f) => f,
            Err(e) => return error(400, &e.to_string(), None, n),
        };
        let Some(model) = facts.model else {
            return error(400, "model: field required", None, n);
        };
        // Only a session's requests can hit the cache; the others skip reading the prompt's
        // structure, so a load test without session ids costs the simulator little.
        let key = cache_key(&model, headers);
        let prompt = match key {
            Some(_) => cache::PromptShape::of(body),
            None => cache::PromptShape::uncached(body.len()),
        };
        let prompt_tokens = prompt.tokens();
        let path = api_path.split('?').next().unwrap_or(api_path);
        if path.ends_with("/count_tokens") {
            return answer(
                StatusCode::OK,
                "application/json",
                n,
                SimBody::whole(response::count_tokens(prompt_tokens)),
            );
        }
        if let Some(status) = draw_error(&s.errors) {
            let (_, message) = response::error_kind(status);
            let retry_after = s.retry_after.filter(|_| status == 429 || status == 529);
            return error(status, message, retry_after, n);
        }
        let usage =
            self.inner
                .cache
                .split(key, prompt_tokens, prompt.cacheable_tokens(), s.cache_ttl);
        let output_tokens = s
            .output_tokens
            .min(facts.max_tokens.unwrap_or(u64::MAX))
            .max(1);
        let id = format!("msg_sim_{n}");
        let m = response::Message {
            id: &id,
            model: &model,
            usage,
            output_tokens,
        };
        let stall = if s.stall_rate > 0.0 && rand::random::<f64>() < s.stall_rate {
            Duration::from_millis(s.stall_ms)
        } else {
            Duration::ZERO
        };
        let drop = s.midstream_drop_rate > 0.0 && rand::random::<f64>() < s.midstream_drop_rate;
        let ttfb = Duration::from_millis(s.ttfb_ms);
        if !facts.stream {
            let generation = pace(s.tokens_per_second, output_tokens);
            tokio::time::sleep(ttfb + stall + generation).await;
            let bytes = response::whole(&m);
            let body = if drop {
                let half = bytes.slice(..bytes.len() / 2);
                SimBody::new(VecDeque::from([(Duration::ZERO, half)]), true)
            } else {
                SimBody::whole(bytes)
            };
            return answer(StatusCode::OK, "application/json", n, body);
        }
        tokio::time::sleep(ttfb).await;
        let mut frames: VecDeque<(Duration, Bytes)> = response::stream_head(&m)
            .into_iter()
            .map(|b| (Duration::ZERO, b))
            .collect();
        // Deltas at least 20 ms apart when paced, so a fast model is not a frame per token.
        let per_delta = if s.tokens_per_second > 0.0 {
            ((s.tokens_per_second * 0.02).ceil() as u64).max(1)
        } else {
            output_tokens
        };
        let mut from = 0;
        let mut deltas = 0;
        while from < output_tokens {
            let to = (from + per_delta).min(output_tokens);
            let mut wait = pace(s.tokens_per_second, to - from);
            if from == 0 {
                wait += stall;
            }
            frames.push_back((wait, response::stream_delta(from, to)));
            from = to;
            deltas += 1;
        }
        if drop {
            // Cut after message_start and some of the content, before message_stop.
            let keep = 3 + rand::random_range(0..=deltas);
            frames.truncate(keep);
        } else {
            frames.extend(
                response::stream_tail(&m)
                    .into_iter()
                    .map(|b| (Duration::ZERO, b)),
            );
        }
        answer(
            StatusCode::OK,
            "text/event-stream",
            n,
            SimBody::new(frames, drop),
        )
    }
}

fn pace(tokens_per_second: f64, tokens: u64) -> Duration {
    if tokens_per_second > 0.0 {
        Duration::from_secs_f64(tokens as f64 / tokens_per_second)
    } else {
        Duration::ZERO
    }
}

fn draw_error(errors: &[(u16, f64)]) -> Option<u16> {
    if errors.is_empty() {
        return None;
    }
    let mut u: f64 = rand::random();
    for &(status, p) in errors {
        if u < p {
            return Some(status);
        }
        u -= p;
    }
    None
}

fn cache_key(model: &str, headers: &HeaderMap) -> Option<String> {
    let get = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let session = get(&X_CLAUDE_CODE_SESSION_ID)?;
    Some(format!(
        "{model}\n{session}\n{}",
        get(&X_CLAUDE_CODE_AGENT_ID).unwrap_or("")
    ))
}

fn answer(
    status: StatusCode,
    content_type: &'static str,
    n: &str,
    body: SimBody,
) -> Response<SimBody> {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    if content_type == "text/event-stream" {
        h.insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache"),
        );
    }
    if let Ok(v) = HeaderValue::from_str(&format!("req_sim_{n}")) {
        h.insert(&REQUEST_ID, v);
    }
    r
}

fn error(status: u16, message: &str, retry_after: Option<u64>, n: &str) -> Response<SimBody> {
    let (kind, _) = response::error_kind(status);
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = answer(
        code,
        "application/json",
        n,
        SimBody::whole(error_body(kind, message)),
    );
    let h = r.headers_mut();
    let retryable = status == 429 || status >= 500;
    h.insert(
        &tollgate_wire::headers::X_SHOULD_RETRY,
        HeaderValue::from_static(if retryable { "true" } else { "false" }),
    );
    if let Some(secs) = retry_after {
        h.insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn body(stream: bool) -> Bytes {
        Bytes::from(format!(
            r#"{{"model":"claude-sonnet-4-5","max_tokens":100,"stream":{stream},"system":[{{"type":"text","text":"{}","cache_control":{{"type":"ephemeral"}}}}],"messages":[{{"role":"user","content":"hi"}}]}}"#,
            "x".repeat(4000)
        ))
    }

    fn session(id: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            &X_CLAUDE_CODE_SESSION_ID,
            HeaderValue::from_str(id).expect("valid"),
        );
        h
    }

    async fn read(r: Response<SimBody>) -> (StatusCode, HeaderMap, Result<Bytes, SimulatedDrop>) {
        let (parts, mut b) = r.into_parts();
        let mut all = Vec::new();
        while let Some(f) = b.frame().await {
            match f {
                Ok(f) => all.extend_from_slice(&f.into_data().unwrap_or_default()),
                Err(e) => return (parts.status, parts.headers, Err(e)),
            }
        }
        (parts.status, parts.headers, Ok(Bytes::from(all)))
    }

    #[tokio::test]
    async fn second_turn_of_a_session_reads_the_cache() {
        let sim = SimulatorUpstream::new("sim", SimulatorSettings::default());
        let (st, h, b) = read(sim.call("/v1/messages", &session("s1"), &body(false)).await).await;
        assert_eq!(st, 200);
        assert_eq!(h["content-type"], "application/json");
        let v: serde_json::Value = serde_json::from_slice(&b.expect("whole")).expect("json");
        assert_eq!(v["usage"]["cache_read_input_tokens"], 0);
        let written = v["usage"]["cache_creation_input_tokens"]
            .as_u64()
            .expect("n");
        assert!(written > 900, "{v}");
        let (_, _, b) = read(sim.call("/v1/messages", &session("s1"), &body(false)).await).await;
        let v: serde_json::Value = serde_json::from_slice(&b.expect("whole")).expect("json");
        assert_eq!(v["usage"]["cache_read_input_tokens"], written);
        assert_eq!(v["usage"]["output_tokens"], 16);
    }

    #[tokio::test]
    async fn injected_errors_carry_type_and_retry_after() {
        let sim = SimulatorUpstream::new("sim", SimulatorSettings::default());
        sim.handle().update(|s| {
            s.errors = vec![(529, 1.0)];
            s.retry_after = Some(3);
        });
        let (st, h, b) = read(
            sim.call("/v1/messages", &HeaderMap::new(), &body(true))
                .await,
        )
        .await;
        assert_eq!(st, 529);
        assert_eq!(h["retry-after"], "3");
        assert_eq!(h["x-should-retry"], "true");
        let v: serde_json::Value = serde_json::from_slice(&b.expect("whole")).expect("json");
        assert_eq!(v["error"]["type"], "overloaded_error");
        let (st, ..) = read(
            sim.call("/v1/messages", &HeaderMap::new(), &Bytes::from_static(b"{"))
                .await,
        )
        .await;
        assert_eq!(st, 400);
    }

    #[tokio::test]
    async fn streams_pace_and_drops_cut_before_message_stop() {
        let sim = SimulatorUpstream::new("sim", SimulatorSettings::default());
        sim.handle().update(|s| {
            s.tokens_per_second = 1000.0;
            s.output_tokens = 50;
        });
        let t = std::time::Instant::now();
        let (st, h, b) = read(
            sim.call("/v1/messages", &HeaderMap::new(), &body(true))
                .await,
        )
        .await;
        assert!(
            t.elapsed() >= Duration::from_millis(45),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(
            (st, &h["content-type"]),
            (
                StatusCode::OK,
                &HeaderValue::from_static("text/event-stream")
            )
        );
        let text = String::from_utf8(b.expect("clean end").to_vec()).expect("utf-8");
        assert!(text.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"));
        sim.handle().update(|s| s.midstream_drop_rate = 1.0);
        let (_, _, b) = read(
            sim.call("/v1/messages", &HeaderMap::new(), &body(true))
                .await,
        )
        .await;
        assert_eq!(b, Err(SimulatedDrop));
        let (_, _, b) = read(
            sim.call("/v1/messages", &HeaderMap::new(), &body(false))
                .await,
        )
        .await;
        assert_eq!(b, Err(SimulatedDrop));
    }

    #[tokio::test]
    async fn count_tokens_answers_an_estimate() {
        let sim = SimulatorUpstream::new("sim", SimulatorSettings::default());
        let (st, _, b) = read(
            sim.call(
                "/v1/messages/count_tokens?beta=true",
                &HeaderMap::new(),
                &body(false),
            )
            .await,
        )
        .await;
        assert_eq!(st, 200);
        let v: serde_json::Value = serde_json::from_slice(&b.expect("whole")).expect("json");
        assert!(v["input_tokens"].as_u64().expect("n") > 1000);
    }
}
