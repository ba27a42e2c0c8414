//! The HTTP server: routing, strictness checks, recording, and sending scripted answers.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};

use crate::body::ResponseBody;
use crate::error::ApiError;
use crate::fast::Canned;
use crate::message::{Reply, Usage};
use crate::scenario::{self, Action};
use crate::sse;

/// How a [`ScriptedUpstream`] behaves.
#[derive(Debug, Clone)]
pub struct UpstreamOptions {
    /// The only `x-api-key` value accepted on API endpoints.
    pub api_key: String,
    /// Fixed answers, no checks and no recording: for benchmarks.
    pub fast: bool,
}

impl UpstreamOptions {
    /// Strict mode accepting `api_key`.
    pub fn new(api_key: impl Into<String>) -> Self {
        UpstreamOptions {
            api_key: api_key.into(),
            fast: false,
        }
    }
}

/// One request as the upstream received it, with what it answered.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// The HTTP method, e.g. `POST`.
    pub method: String,
    /// Path plus query string, e.g. `/v1/messages?beta=true`.
    pub path_and_query: String,
    /// Headers in arrival order (values of a repeated name are grouped), names lowercase.
    pub headers: Vec<(String, String)>,
    /// The request body exactly as received.
    pub body: Bytes,
    /// The usage object the upstream reported, if it answered with a message.
    pub usage: Option<Value>,
    /// The scenario played; `rejected`, `count_tokens`, `models` or `not_found` for other answers.
    pub scenario: String,
    /// The HTTP status answered; 0 when the connection was closed without a response.
    pub status: u16,
}

impl RecordedRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All values of header `name` (case-insensitive), in arrival order.
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The body parsed as JSON, if it is JSON.
    pub fn body_json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    fn to_json(&self) -> Value {
        json!({
            "method": self.method,
            "path": self.path_and_query,
            "headers": self.headers.iter().map(|(n, v)| [n, v]).collect::<Vec<_>>(),
            "body": String::from_utf8_lossy(&self.body),
            "body_b64": base64::engine::general_purpose::STANDARD.encode(&self.body),
            "body_len": self.body.len(),
            "usage": self.usage,
            "scenario": self.scenario,
            "status": self.status,
        })
    }
}

struct Shared {
    opts: UpstreamOptions,
    next_id: AtomicU64,
    records: Mutex<Vec<RecordedRequest>>,
    canned: Canned,
}

impl Shared {
    fn records(&self) -> MutexGuard<'_, Vec<RecordedRequest>> {
        // A panicking test thread must not hide the recording from the others.
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A fake Anthropic Messages API on a local port; it stops serving when dropped.
pub struct ScriptedUpstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl ScriptedUpstream {
    /// Starts serving on an ephemeral port of 127.0.0.1, on the current Tokio runtime.
    pub async fn start(opts: UpstreamOptions) -> io::Result<ScriptedUpstream> {
        Self::bind(SocketAddr::from(([127, 0, 0, 1], 0)), opts).await
    }

    /// Starts serving on `addr`, on the current Tokio runtime.
    pub async fn bind(addr: SocketAddr, opts: UpstreamOptions) -> io::Result<ScriptedUpstream> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            opts,
            next_id: AtomicU64::new(0),
            records: Mutex::new(Vec::new()),
            canned: Canned::new(),
        });
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        Ok(ScriptedUpstream { addr, shared, task })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received since start or the last [`clear`](Self::clear), oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.records().clone()
    }

    /// Forgets the recorded requests.
    pub fn clear(&self) {
        self.shared.records().clear();
    }
}

impl Drop for ScriptedUpstream {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every open connection too.
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(stream, Arc::clone(&shared)));
                }
                // Usually out of file descriptors: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve_connection(stream: TcpStream, shared: Arc<Shared>) {
    // SSE events are small writes that must not wait for Nagle.
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |req| {
        let shared = Arc::clone(&shared);
        async move {
            if shared.opts.fast {
                crate::fast::respond(&shared.canned, req).await
            } else {
                handle(&shared, req).await
            }
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().pipeline_flush(true);
    let _ = builder
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

/// What a strict-mode request is answered with.
enum Answer {
    Error(ApiError),
    Json(String),
    Scripted { action: Action, stream: bool },
}

struct Outcome {
    scenario: String,
    answer: Answer,
}

impl Outcome {
    fn rejected(err: ApiError) -> Self {
        Outcome {
            scenario: "rejected".to_owned(),
            answer: Answer::Error(err),
        }
    }
}

async fn handle(
    shared: &Shared,
    req: http::Request<Incoming>,
) -> Result<Response<ResponseBody>, io::Error> {
    let (parts, body) = req.into_parts();
    if parts.uri.path() == "/_test/requests" {
        return Ok(test_endpoint(shared, &parts.method));
    }
    let body = body.collect().await.map_err(io::Error::other)?.to_bytes();
    let n = shared.next_id.fetch_add(1, Ordering::Relaxed) + 1;
    let outcome = route(shared, n, &parts, &body);

    let (status, usage) = match &outcome.answer {
        Answer::Error(err) => (err.status, None),
        Answer::Json(_) => (200, None),
        Answer::Scripted { action, stream } => match action {
            Action::Reply { reply, .. } => (200, Some(reply.usage.to_value(reply.usage.output))),
            Action::Fail(err) => (err.status, None),
            // A stream that breaks has already reported message_start's usage.
            Action::Broken(reply) | Action::MidstreamError(reply) if *stream => {
                (200, Some(reply.usage.to_value(1)))
            }
            Action::Broken(_) => (0, None),
            Action::MidstreamError(_) => (529, None),
        },
    };
    shared.records().push(RecordedRequest {
        method: parts.method.as_str().to_owned(),
        path_and_query: parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_owned(), |pq| pq.as_str().to_owned()),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
        usage,
        scenario: outcome.scenario,
        status,
    });

    respond(n, outcome.answer).await
}

fn route(shared: &Shared, n: u64, parts: &Parts, body: &Bytes) -> Outcome {
    let path = parts.uri.path();
    let method = &parts.method;
    let result = match (method, path) {
        (&Method::POST, "/v1/messages") => return messages(shared, n, parts, body),
        (&Method::POST, "/v1/messages/count_tokens") => {
            count_tokens(shared, &parts.headers, body).map(|json| ("count_tokens", json))
        }
        (&Method::GET, "/v1/models") => {
            check_headers(shared, &parts.headers, false).map(|()| ("models", models_json()))
        }
        _ => {
            return Outcome {
                scenario: "not_found".to_owned(),
                answer: Answer::Error(ApiError::new(
                    404,
                    "not_found_error",
                    format!("Not found: {method} {path}"),
                )),
            };
        }
    };
    match result {
        Ok((scenario, json)) => Outcome {
            scenario: scenario.to_owned(),
            answer: Answer::Json(json),
        },
        Err(err) => Outcome::rejected(err),
    }
}

fn messages(shared: &Shared, n: u64, parts: &Parts, body: &Bytes) -> Outcome {
    let headers = &parts.headers;
    let checked = check_headers(shared, headers, true)
        .and_then(|()| parse_body(body, true))
        .and_then(|json| scenario::check_thinking_signatures(&json).map(|()| json));
    let json = match checked {
        Ok(json) => json,
        Err(err) => return Outcome::rejected(err),
    };
    let name = scenario::scenario_name(headers, &json);
    let answer = usage_for(headers, body)
        .and_then(|usage| {
            scenario::plan(
                &name,
                &scenario::Request {
                    body: &json,
                    headers,
                    n,
                    usage,
                },
            )
        })
        .map_or_else(Answer::Error, |action| Answer::Scripted {
            action,
            stream: json.get("stream").and_then(Value::as_bool) == Some(true),
        });
    Outcome {
        scenario: name,
        answer,
    }
}

fn count_tokens(shared: &Shared, headers: &HeaderMap, body: &Bytes) -> Result<String, ApiError> {
    check_headers(shared, headers, true)?;
    parse_body(body, false)?;
    Ok(format!(r#"{{"input_tokens":{}}}"#, body.len() / 4))
}

fn models_json() -> String {
    json!({
        "data": [
            {"type": "model", "id": "claude-opus-5-5", "display_name": "Claude Opus 5.5",
             "created_at": "2026-09-01T00:00:00Z"},
            {"type": "model", "id": "claude-haiku-5-5", "display_name": "Claude Haiku 5.5",
             "created_at": "2026-09-01T00:00:00Z"},
        ],
        "has_more": false,
        "first_id": "claude-opus-5-5",
        "last_id": "claude-haiku-5-5",
    })
    .to_string()
}

/// The header rules of the real API, plus the ones a gateway must satisfy (no client
/// credentials, no `x-tollgate-*` control headers).
fn check_headers(shared: &Shared, headers: &HeaderMap, has_body: bool) -> Result<(), ApiError> {
    let keys: Vec<&HeaderValue> = headers.get_all("x-api-key").iter().collect();
    if keys.len() != 1 || keys[0].as_bytes() != shared.opts.api_key.as_bytes() {
        return Err(ApiError::new(
            401,
            "authentication_error",
            "invalid x-api-key",
        ));
    }
    if headers.contains_key(header::AUTHORIZATION) {
        return Err(ApiError::invalid(
            "authorization: header must not reach the upstream (client credentials must be stripped)",
        ));
    }
    if let Some(name) = headers
        .keys()
        .find(|name| name.as_str().starts_with("x-tollgate-"))
    {
        return Err(ApiError::invalid(format!(
            "{name}: header must not reach the upstream (the gateway must consume it)"
        )));
    }
    if !headers.contains_key("anthropic-version") {
        return Err(ApiError::invalid("anthropic-version: header is required"));
    }
    if has_body {
        let json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
        if !json {
            return Err(ApiError::invalid("content-type: must be application/json"));
        }
        if let Some(encoding) = headers.get(header::CONTENT_ENCODING) {
            return Err(ApiError::invalid(format!(
                "content-encoding: {} is not supported",
                String::from_utf8_lossy(encoding.as_bytes())
            )));
        }
    }
    Ok(())
}

fn parse_body(body: &[u8], needs_max_tokens: bool) -> Result<Value, ApiError> {
    let json: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid(format!("body: invalid JSON: {e}")))?;
    let Some(object) = json.as_object() else {
        return Err(ApiError::invalid("body: must be a JSON object"));
    };
    match object.get("model") {
        Some(Value::String(_)) => {}
        Some(_) => return Err(ApiError::invalid("model: must be a string")),
        None => return Err(ApiError::invalid("model: Field required")),
    }
    match object.get("messages") {
        Some(Value::Array(list)) if list.is_empty() => {
            return Err(ApiError::invalid(
                "messages: at least one message is required",
            ));
        }
        Some(Value::Array(_)) => {}
        Some(_) => return Err(ApiError::invalid("messages: must be an array")),
        None => return Err(ApiError::invalid("messages: Field required")),
    }
    if needs_max_tokens {
        match object.get("max_tokens") {
            None => return Err(ApiError::invalid("max_tokens: Field required")),
            Some(v) if v.as_u64().is_some_and(|n| n >= 1) => {}
            Some(_) => {
                return Err(ApiError::invalid(
                    "max_tokens: must be an integer of at least 1",
                ));
            }
        }
    }
    if object.get("stream").is_some_and(|v| !v.is_boolean()) {
        return Err(ApiError::invalid("stream: must be a boolean"));
    }
    Ok(json)
}

/// Default usage (cache counts only when the body asks for caching), or `x-mock-usage`.
fn usage_for(headers: &HeaderMap, body: &[u8]) -> Result<Usage, ApiError> {
    if let Some(spec) = headers.get("x-mock-usage") {
        let bad = || ApiError::invalid("x-mock-usage: expected IN,OUT,CW,CR");
        let numbers = spec
            .to_str()
            .map_err(|_| bad())?
            .split(',')
            .map(|n| n.trim().parse::<u64>())
            .collect::<Result<Vec<u64>, _>>()
            .map_err(|_| bad())?;
        let [input, output, cache_write, cache_read] = numbers[..] else {
            return Err(bad());
        };
        return Ok(Usage {
            input,
            output,
            cache_write,
            cache_read,
        });
    }
    let needle = br#""cache_control""#;
    let cached = body.windows(needle.len()).any(|w| w == needle);
    Ok(Usage {
        input: 120,
        output: 30,
        cache_write: if cached { 200 } else { 0 },
        cache_read: if cached { 1000 } else { 0 },
    })
}

fn set_header(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

fn response(
    n: u64,
    status: u16,
    content_type: &'static str,
    body: ResponseBody,
) -> Response<ResponseBody> {
    let mut response = Response::new(body);
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    set_header(headers, "request-id", &format!("req_mock_{n}"));
    if status == 200 {
        headers.insert(
            "anthropic-ratelimit-requests-remaining",
            HeaderValue::from_static("999"),
        );
        headers.insert(
            "anthropic-ratelimit-tokens-remaining",
            HeaderValue::from_static("999999"),
        );
    }
    response
}

fn error_response(n: u64, err: &ApiError) -> Response<ResponseBody> {
    let mut response = response(
        n,
        err.status,
        "application/json",
        ResponseBody::full(err.body()),
    );
    for (name, value) in &err.headers {
        response
            .headers_mut()
            .insert(*name, HeaderValue::from_static(value));
    }
    response
}

fn stream_response(
    n: u64,
    events: Vec<Bytes>,
    pace: Option<Duration>,
    linger: Option<Duration>,
    abort: bool,
) -> Response<ResponseBody> {
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        for (i, event) in events.into_iter().enumerate() {
            if let Some(pace) = pace.filter(|_| i > 0) {
                tokio::time::sleep(pace).await;
            }
            if tx.send(Ok(event)).await.is_err() {
                return;
            }
        }
        if let Some(linger) = linger {
            // The body stays open (no chunk terminator) until the sender is dropped.
            tokio::time::sleep(linger).await;
        }
        if abort {
            // An error from the body makes hyper drop the connection without the final chunk.
            let _ = tx
                .send(Err(io::Error::other("scripted connection drop")))
                .await;
        }
    });
    let mut response = response(n, 200, "text/event-stream", ResponseBody::channel(rx));
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

async fn respond(n: u64, answer: Answer) -> Result<Response<ResponseBody>, io::Error> {
    let (action, stream) = match answer {
        Answer::Error(err) => return Ok(error_response(n, &err)),
        Answer::Json(json) => {
            return Ok(response(
                n,
                200,
                "application/json",
                ResponseBody::full(json),
            ));
        }
        Answer::Scripted { action, stream } => (action, stream),
    };
    Ok(match action {
        Action::Fail(err) => error_response(n, &err),
        Action::Reply {
            reply,
            pace,
            linger,
            mystery,
        } => {
            if stream {
                stream_response(n, sse::stream(&reply, mystery), pace, linger, false)
            } else {
                if let Some(pace) = pace {
                    tokio::time::sleep(pace).await;
                }
                response(
                    n,
                    200,
                    "application/json",
                    ResponseBody::full(reply.message_json()),
                )
            }
        }
        Action::Broken(reply) => {
            if !stream {
                // hyper closes an HTTP/1 connection without answering when the service fails.
                return Err(io::Error::other("scripted connection drop"));
            }
            stream_response(n, interrupted(&reply), None, None, true)
        }
        Action::MidstreamError(reply) => {
            let overloaded = ApiError::new(529, "overloaded_error", "Overloaded");
            if !stream {
                error_response(n, &overloaded)
            } else {
                let mut events = interrupted(&reply);
                events.push(sse::error_event(&overloaded.kind, &overloaded.message));
                stream_response(n, events, None, None, false)
            }
        }
    })
}

/// The opening of `reply`'s stream, cut after the first text delta.
fn interrupted(reply: &Reply) -> Vec<Bytes> {
    let text = reply.blocks.iter().find_map(|b| match b {
        crate::message::Block::Text(t) => Some(t.as_str()),
        _ => None,
    });
    let text = text.unwrap_or(scenario::DEFAULT_TEXT);
    let first = sse::pieces(text, 2).first().copied().unwrap_or(text);
    sse::interrupted_prefix(reply, first)
}

fn test_endpoint(shared: &Shared, method: &Method) -> Response<ResponseBody> {
    let (status, body) = match *method {
        Method::GET => {
            let list: Vec<Value> = shared
                .records()
                .iter()
                .map(RecordedRequest::to_json)
                .collect();
            (200, Value::Array(list).to_string())
        }
        Method::DELETE => {
            let mut records = shared.records();
            let cleared = records.len();
            records.clear();
            (200, json!({ "cleared": cleared }).to_string())
        }
        _ => (
            405,
            ApiError::new(405, "invalid_request_error", "use GET or DELETE").body(),
        ),
    };
    let mut response = Response::new(ResponseBody::full(body));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
