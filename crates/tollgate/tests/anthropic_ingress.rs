//! The Anthropic dialect as Claude Code uses it, end to end: a real gateway process between a
//! plain HTTP client and the strict scripted upstream.

#![allow(clippy::unwrap_used)]

mod support;

use std::io::Write as _;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt as _, Full};
use serde_json::Value;
use support::{
    Gateway, HttpClient, Reply, UPSTREAM_KEY, cached_body, client, closed_port_url, error_of,
    messages_request, parse_events, send, simple_body,
};
use tollgate_testkit::{ScriptedUpstream, UpstreamOptions};

const SONNET: &str = "claude-sonnet-4-5";

const BETAS: &str = "claude-code-20250219, interleaved-thinking-2025-05-14, context-management-2025-06-27, per-turn-control-2026-07-01, mid-conversation-tool-changes-2026-07-01, thinking-token-count-2026-05-13, advanced-tool-use-2025-11-20, effort-2025-11-24";

struct Setup {
    upstream: ScriptedUpstream,
    gw: Gateway,
    key: String,
    client: HttpClient,
}

impl Setup {
    async fn new() -> Setup {
        Self::with("").await
    }

    async fn with(extra_toml: &str) -> Setup {
        let upstream = ScriptedUpstream::start(UpstreamOptions::new(UPSTREAM_KEY))
            .await
            .unwrap();
        let gw = Gateway::start_with(&upstream.url(), extra_toml).await;
        let key = gw.create_key("alice", "platform").await;
        Setup {
            upstream,
            gw,
            key,
            client: client(),
        }
    }

    fn messages_url(&self) -> String {
        format!("{}/v1/messages", self.gw.url)
    }

    /// A Messages request with the gateway key as a Bearer token.
    async fn messages(&self, body: impl Into<Bytes>, headers: &[(&str, &str)]) -> Reply {
        let req = messages_request(&self.messages_url(), &self.key, body, headers);
        send(&self.client, req).await
    }

    /// A streaming request played as `scenario`.
    async fn stream(&self, scenario: &str) -> Reply {
        self.messages(simple_body(SONNET, true), &[("x-mock-scenario", scenario)])
            .await
    }
}

fn error_type(reply: &Reply) -> String {
    let v = reply.json();
    assert_eq!(v["type"], "error", "not an Anthropic error body: {v}");
    v["error"]["type"].as_str().unwrap_or_default().to_string()
}

fn event_names(reply: &Reply) -> Vec<String> {
    reply.events().into_iter().map(|(n, _)| n).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_reaches_upstream_byte_for_byte_with_client_headers() {
    let s = Setup::new().await;

    // Claude Code echoes the signed thinking block of the previous turn; take a real one.
    let first = s
        .messages(
            simple_body(SONNET, false),
            &[("x-mock-scenario", "thinking")],
        )
        .await;
    assert_eq!(first.status, 200, "{}", first.text());
    let thinking = first.json()["content"][0].clone();
    assert_eq!(thinking["type"], "thinking", "{thinking}");
    s.upstream.clear();

    let body = r##"{ "model" :"claude-sonnet-4-5",  "max_tokens":1024,
  "zz_future_field": {"nested": [1, 2.50, true, null], "e": 1e3},
  "system": [{"type":"text","text":"x-anthropic-billing-header: cc_version=2.1.332.a1b; cc_entrypoint=sdk-cli;"},
             {"type":"text","text":"You are a Claude agent.","cache_control":{"type":"ephemeral"}}],
  "messages": [
    {"role":"user","content":[{"type":"text","text":"Grüße — 日本語 🚀 \u00e9\t"}]},
    {"role":"system","content":[{"type":"text","text":"# Environment","cache_control":{"type":"ephemeral"}}],"output_config":{"effort":"medium"}},
    {"role":"assistant","content":[THINKING,{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"location":"Paris"}}]},
    {"role":"user","content":[{"tool_use_id":"toolu_1","type":"tool_result","content":"sunny","is_error":false,"cache_control":{"type":"ephemeral"}}]}
  ],
  "thinking": {"type":"adaptive","display":"omitted"},
  "context_management": {"edits":[{"type":"clear_thinking_20251015","keep":"all"}]},
  "stream" : false }"##
        .replace("THINKING", &thinking.to_string());

    let url = format!("{}/gw/anthropic/v1/messages?beta=true", s.gw.url);
    let passed_through = [
        ("accept", "application/json"),
        ("user-agent", "claude-cli/2.1.332 (external, sdk-cli)"),
        (
            "x-claude-code-session-id",
            "0b7e1c2a-4d5f-4e6a-8b9c-0d1e2f3a4b5c",
        ),
        ("x-claude-code-agent-id", "a0123456789abcdef"),
        ("x-stainless-retry-count", "0"),
        ("x-stainless-lang", "js"),
        ("anthropic-beta", BETAS),
        ("anthropic-dangerous-direct-browser-access", "true"),
        ("x-app", "cli"),
    ];
    let mut req = Request::post(&url)
        .header("content-type", "application/json")
        .header("anthropic-version", "2023-06-01")
        .header("authorization", format!("Bearer {}", s.key))
        .header("x-api-key", &s.key)
        .header("x-tollgate-api-key", &s.key)
        .header("x-tollgate-project", "payments")
        .header("x-tollgate-tags", "ci,nightly")
        .header("x-tollgate-provider", "anthropic");
    for (name, value) in passed_through {
        req = req.header(name, value);
    }
    let reply = send(
        &s.client,
        req.body(Full::new(Bytes::from(body.clone()))).unwrap(),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["type"], "message");

    let seen = s.upstream.requests();
    assert_eq!(seen.len(), 1);
    let up = &seen[0];
    assert_eq!(up.path_and_query, "/v1/messages?beta=true");
    assert!(
        up.body == body.as_bytes(),
        "the upstream body differs from the client's:\nsent: {body}\ngot:  {}",
        String::from_utf8_lossy(&up.body)
    );
    assert_eq!(up.header("anthropic-version"), Some("2023-06-01"));
    for (name, value) in passed_through {
        assert_eq!(
            up.header_values(name),
            vec![value],
            "header {name} must arrive unchanged"
        );
    }
    assert_eq!(up.header_values("x-api-key"), vec![UPSTREAM_KEY]);
    assert_eq!(up.header("authorization"), None);
    let leaked: Vec<&String> = up
        .headers
        .iter()
        .map(|(n, _)| n)
        .filter(|n| n.starts_with("x-tollgate-"))
        .collect();
    assert!(leaked.is_empty(), "gateway headers leaked: {leaked:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_key_style_is_accepted() {
    let s = Setup::new().await;
    let body = simple_body(SONNET, false);
    for (name, value) in [
        ("authorization", format!("Bearer {}", s.key)),
        ("x-api-key", s.key.clone()),
        ("x-tollgate-api-key", s.key.clone()),
    ] {
        let req = Request::post(s.messages_url())
            .header("content-type", "application/json")
            .header("anthropic-version", "2023-06-01")
            .header(name, value)
            .body(Full::new(Bytes::from(body.clone())))
            .unwrap();
        let reply = send(&s.client, req).await;
        assert_eq!(reply.status, 200, "key in {name}: {}", reply.text());
        let rec = s.gw.record(&reply.request_id()).await;
        assert_eq!(rec["user"], "alice", "key in {name}");
    }
    let seen = s.upstream.requests();
    assert_eq!(seen.len(), 3);
    assert!(seen.iter().all(|r| r.status == 200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_or_unknown_key_is_refused_without_retry() {
    let s = Setup::new().await;
    let body = simple_body(SONNET, false);

    let req = Request::post(s.messages_url())
        .header("content-type", "application/json")
        .header("anthropic-version", "2023-06-01")
        .body(Full::new(Bytes::from(body.clone())))
        .unwrap();
    let missing = send(&s.client, req).await;
    assert_eq!(missing.status, 401, "{}", missing.text());
    assert_eq!(error_type(&missing), "authentication_error");
    assert_eq!(missing.header("x-should-retry"), Some("false"));
    assert!(
        missing
            .header("content-type")
            .is_some_and(|v| v.starts_with("application/json"))
    );

    let unknown = send(
        &s.client,
        messages_request(&s.messages_url(), "tg-not-a-real-key", body, &[]),
    )
    .await;
    assert_eq!(unknown.status, 401, "{}", unknown.text());
    assert_eq!(error_type(&unknown), "authentication_error");
    assert_eq!(unknown.header("x-should-retry"), Some("false"));

    assert!(s.upstream.requests().is_empty());
    for reply in [&missing, &unknown] {
        let rec = s.gw.record(&reply.request_id()).await;
        assert_eq!(rec["status"], 401);
        assert_eq!(rec["error_type"], "authentication_error");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_key_is_refused_on_the_next_request() {
    let s = Setup::new().await;
    let created = s.gw.create_key_json("bob", "platform").await;
    let key = created["key"].as_str().unwrap();
    let id = created["id"].as_str().unwrap();
    let body = simple_body(SONNET, false);

    let before = send(
        &s.client,
        messages_request(&s.messages_url(), key, body.clone(), &[]),
    )
    .await;
    assert_eq!(before.status, 200, "{}", before.text());

    s.gw.cli(&["keys", "revoke", id]).await;

    let after = send(
        &s.client,
        messages_request(&s.messages_url(), key, body.clone(), &[]),
    )
    .await;
    assert_eq!(after.status, 401, "{}", after.text());
    assert_eq!(error_type(&after), "authentication_error");
    assert_eq!(after.header("x-should-retry"), Some("false"));
    assert_eq!(s.upstream.requests().len(), 1);

    // Other keys are unaffected.
    let other = s.messages(body, &[]).await;
    assert_eq!(other.status, 200, "{}", other.text());
}

/// Replaces the message id, the only part of a scripted stream that differs per request.
fn normalize_stream(reply: &Reply) -> String {
    let text = reply.text();
    let id = reply
        .events()
        .into_iter()
        .find(|(n, _)| n == "message_start")
        .and_then(|(_, d)| d["message"]["id"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("no message_start in {text}"));
    text.replace(&id, "MSG_ID")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_bytes_are_the_upstreams_bytes() {
    let s = Setup::new().await;
    let body = simple_body(SONNET, true);

    let direct = Request::post(format!("{}/v1/messages", s.upstream.url()))
        .header("content-type", "application/json")
        .header("anthropic-version", "2023-06-01")
        .header("x-api-key", UPSTREAM_KEY)
        .header("x-mock-scenario", "unknown-event")
        .body(Full::new(Bytes::from(body.clone())))
        .unwrap();
    let direct = send(&s.client, direct).await;
    assert_eq!(direct.status, 200, "{}", direct.text());

    let relayed = s
        .messages(body, &[("x-mock-scenario", "unknown-event")])
        .await;
    assert_eq!(relayed.status, 200, "{}", relayed.text());
    assert!(!relayed.cut, "the stream must end cleanly");
    assert!(
        relayed
            .header("content-type")
            .is_some_and(|v| v.starts_with("text/event-stream")),
        "{:?}",
        relayed.headers
    );
    let names = event_names(&relayed);
    assert!(names.contains(&"mystery_event".to_string()), "{names:?}");
    assert!(names.contains(&"ping".to_string()), "{names:?}");
    assert!(relayed.text().contains(r#""zzz_extra":true"#));
    assert_eq!(normalize_stream(&relayed), normalize_stream(&direct));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_events_are_flushed_one_by_one() {
    let s = Setup::new().await;
    let reply = s.stream("slow:300").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(reply.complete_stream(), "{}", reply.text());

    // Arrival time of each event: when the frame completing it came in.
    let mut arrivals = Vec::new();
    let mut buffered = String::new();
    for (at, frame) in &reply.frames {
        buffered.push_str(&String::from_utf8_lossy(frame));
        while let Some(end) = buffered.find("\n\n") {
            let event = buffered[..end].to_string();
            buffered.drain(..end + 2);
            arrivals.push((*at, event));
        }
    }
    // message_start, ping, block start, 2 deltas, block stop, message_delta, message_stop.
    assert_eq!(arrivals.len(), 8, "{arrivals:?}");
    for pair in arrivals.windows(2) {
        let gap = pair[1].0.saturating_sub(pair[0].0);
        assert!(
            gap >= Duration::from_millis(150),
            "events arrived together ({gap:?} apart), the stream is buffered: {:?} / {:?}",
            pair[0].1,
            pair[1].1
        );
    }
}

/// Claude Code ends a turn when the stream ends; an upstream that keeps its body open after
/// `message_stop` must not hold the turn (or the journal record) until it lets go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_ends_for_the_client_at_message_stop_while_the_upstream_lingers() {
    let s = Setup::new().await;
    let sent = std::time::Instant::now();
    let reply = s.stream("linger:5000").await;
    let took = sent.elapsed();
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(!reply.cut, "the stream must end cleanly");
    assert!(reply.complete_stream(), "{}", reply.text());
    assert!(
        took < Duration::from_millis(2500),
        "the client waited {took:?}, for the upstream's end of body rather than message_stop"
    );
    let id = reply.header("x-tollgate-request-id").unwrap().to_string();
    let rec = s.gw.record(&id).await;
    assert_eq!(rec["status"], 200, "{rec}");
    assert!(rec["error_type"].is_null(), "{rec}");
    assert_eq!(rec["input_tokens"], 120, "{rec}");
    assert_eq!(rec["output_tokens"], 30, "{rec}");

    // The gateway reads the rest of that body on its own; later requests are served as usual.
    for _ in 0..3 {
        let next = s.stream("text").await;
        assert!(next.complete_stream(), "{}", next.text());
    }
    assert_eq!(s.upstream.requests().len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_status_and_headers_reach_the_client() {
    let s = Setup::new().await;

    let ok = s.messages(simple_body(SONNET, false), &[]).await;
    assert_eq!(ok.status, 200);
    assert!(
        ok.header("request-id")
            .is_some_and(|v| v.starts_with("req_mock_"))
    );
    assert_eq!(
        ok.header("anthropic-ratelimit-requests-remaining"),
        Some("999")
    );
    assert_eq!(
        ok.header("anthropic-ratelimit-tokens-remaining"),
        Some("999999")
    );

    let limited = s
        .messages(
            simple_body(SONNET, true),
            &[("x-mock-scenario", "error:429:rate_limit_error")],
        )
        .await;
    assert_eq!(limited.status, 429, "{}", limited.text());
    assert_eq!(error_type(&limited), "rate_limit_error");
    assert_eq!(limited.header("retry-after"), Some("7"));
    assert_eq!(limited.header("x-should-retry"), Some("true"));
    let upstream_id = limited.header("request-id").unwrap().to_string();
    assert!(upstream_id.starts_with("req_mock_"), "{upstream_id}");

    let mut ids = vec![(limited.request_id(), 429, "rate_limit_error")];
    for (status, kind) in [(529, "overloaded_error"), (500, "api_error")] {
        let scenario = format!("error:{status}:{kind}");
        let reply = s
            .messages(simple_body(SONNET, true), &[("x-mock-scenario", &scenario)])
            .await;
        assert_eq!(reply.status, status, "{}", reply.text());
        assert_eq!(error_type(&reply), kind);
        ids.push((reply.request_id(), status, kind));
    }
    for (id, status, kind) in ids {
        let rec = s.gw.record(&id).await;
        assert_eq!(rec["status"], status, "{rec}");
        assert_eq!(rec["error_type"], kind, "{rec}");
    }
    let rec = s.gw.record(&limited.request_id()).await;
    assert_eq!(rec["upstream_request_id"], upstream_id.as_str(), "{rec}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_is_a_400_without_upstream_traffic() {
    let s = Setup::new().await;
    let reply = s
        .messages(
            r#"{"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": ["#,
            &[],
        )
        .await;
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert_eq!(error_type(&reply), "invalid_request_error");
    assert_eq!(reply.header("x-should-retry"), Some("false"));
    assert!(s.upstream.requests().is_empty());
    let rec = s.gw.record(&reply.request_id()).await;
    assert_eq!(rec["status"], 400);
    assert_eq!(rec["error_type"], "invalid_request_error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deeply_nested_bodies_are_a_400_and_the_gateway_stays_up() {
    let s = Setup::new().await;
    // A million levels: enough to exhaust any thread's stack in a recursive JSON reader.
    let depth = 1_000_000;
    let nested = format!(
        r#"{{"model":"{SONNET}","max_tokens":10,"messages":{}{}}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    );
    let reply = s.messages(nested.clone(), &[]).await;
    assert_eq!(reply.status, 400, "{}", reply.text());
    let (kind, message) = error_of(&reply);
    assert_eq!(kind, "invalid_request_error");
    assert!(message.contains("deeper than 16384 levels"), "{message}");
    let rec = s.gw.record(&reply.request_id()).await;
    assert_eq!(rec["status"], 400);

    // The other ingresses read the same bodies with their own parsers.
    let url = |path: &str| format!("{}{path}", s.gw.url);
    for path in [
        "/v1/messages/count_tokens",
        "/v1/chat/completions",
        "/bedrock/model/anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke",
        "/vertex/v1/projects/p/locations/global/publishers/anthropic/models/claude-sonnet-4-5:rawPredict",
    ] {
        let req = messages_request(&url(path), &s.key, nested.clone(), &[]);
        let reply = send(&s.client, req).await;
        assert_eq!(reply.status, 400, "{path}: {}", reply.text());
    }
    assert!(s.upstream.requests().is_empty());

    // Still serving, and a body nested a few levels is still an ordinary request.
    let body = format!(
        r#"{{"model":"{SONNET}","max_tokens":10,"messages":[{{"role":"user","content":[{{"type":"text","text":"[[[{{{{"}}]}}],"metadata":{{"a":[[[[[[]]]]]]}}}}"#
    );
    let ok = s.messages(body, &[]).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_labels_and_model_names_are_a_400_with_a_bounded_record() {
    let s = Setup::new().await;
    let long = "x".repeat(300);
    let reply = s
        .messages(
            simple_body(SONNET, false),
            &[("x-claude-code-session-id", long.as_str())],
        )
        .await;
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert_eq!(reply.header("x-should-retry"), Some("false"));
    assert_eq!(
        error_of(&reply),
        (
            "invalid_request_error".to_string(),
            "x-claude-code-session-id: longer than 256 bytes".to_string()
        )
    );
    let rec = s.gw.record(&reply.request_id()).await;
    assert_eq!(rec["status"], 400);
    assert_eq!(rec["session_id"].as_str().map(str::len), Some(256), "{rec}");

    let reply = s.messages(simple_body(&long, false), &[]).await;
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert_eq!(error_of(&reply).1, "model: is longer than 256 bytes");
    assert!(s.upstream.requests().is_empty());

    // Values at the limit are ordinary.
    let at_limit = "x".repeat(256);
    let ok = s
        .messages(
            simple_body(SONNET, false),
            &[("x-tollgate-project", at_limit.as_str())],
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(
        s.gw.record(&ok.request_id()).await["project"],
        at_limit.as_str()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_stalled_connections_are_closed() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let s =
        Setup::with("[server]\nrequest_header_timeout_secs = 1\nrequest_body_timeout_secs = 1\n")
            .await;
    let addr =
        s.gw.url
            .strip_prefix("http://")
            .expect("http URL")
            .to_string();
    // Everything the server sends until it closes, or `None` if it is still open after 10 s.
    let answer = |send: String| {
        let addr = addr.clone();
        async move {
            let mut stream = tokio::net::TcpStream::connect(&addr)
                .await
                .expect("connects");
            stream.write_all(send.as_bytes()).await.expect("writes");
            let mut out = Vec::new();
            tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out))
                .await
                .ok()
                .map(|_| String::from_utf8_lossy(&out).into_owned())
        }
    };
    // Never a byte: closed, not held open for good.
    assert_eq!(answer(String::new()).await.as_deref(), Some(""));
    // Half a head.
    let closed = answer("POST /v1/messages HTTP/1.1\r\nHost: x\r\n".into()).await;
    assert!(closed.is_some(), "a stalled head keeps its connection");
    // A whole head, then less body than it declared: the client's own 408, recorded.
    let stalled = answer(format!(
        "POST /v1/messages HTTP/1.1\r\nHost: x\r\nx-api-key: {}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"model\":",
        s.key
    ))
    .await;
    let stalled = stalled.expect("a stalled body keeps its connection");
    assert!(stalled.starts_with("HTTP/1.1 408"), "{stalled}");
    assert!(
        stalled.contains("request body was not received in time"),
        "{stalled}"
    );
    assert!(stalled.contains("x-should-retry: false"), "{stalled}");
    // An HTTP/2 peer that says hello and then nothing, not even a ping's answer.
    let preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0".to_string();
    assert!(
        answer(preface).await.is_some(),
        "a silent HTTP/2 peer keeps its connection"
    );
    // A connection that did send a request is still served.
    let ok = s.messages(simple_body(SONNET, false), &[]).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_body_is_a_413() {
    let s = Setup::with("[server]\nmax_body_bytes = 2048\n").await;
    let padding = "x".repeat(4096);
    let body = format!(
        r#"{{"model":"{SONNET}","max_tokens":10,"messages":[{{"role":"user","content":"{padding}"}}]}}"#
    );
    let reply = s.messages(body, &[]).await;
    assert_eq!(reply.status, 413, "{}", reply.text());
    assert_eq!(error_type(&reply), "request_too_large");
    assert!(s.upstream.requests().is_empty());
    let rec = s.gw.record(&reply.request_id()).await;
    assert_eq!(rec["status"], 413);
    assert_eq!(rec["error_type"], "request_too_large");

    // The limit is not a blanket refusal.
    let small = s.messages(simple_body(SONNET, false), &[]).await;
    assert_eq!(small.status, 200, "{}", small.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_chunked_body_is_a_413() {
    let s = Setup::with("[server]\nmax_body_bytes = 2048\n").await;
    let chunk = "x".repeat(1000);
    let mut req = format!(
        "POST /v1/messages HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\nanthropic-version: 2023-06-01\r\nauthorization: Bearer {}\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n",
        s.key
    );
    for _ in 0..5 {
        req.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
    }
    req.push_str("0\r\n\r\n");
    let answer = support::raw_http(&s.gw.url, req.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("request_too_large"), "{answer}");
    assert!(s.upstream.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_body_in_many_pieces_reaches_the_upstream_whole() {
    let s = Setup::new().await;
    let padding = "p".repeat(150 * 1024);
    let json = format!(
        r#"{{"model":"{SONNET}","max_tokens":10,"metadata":{{"user_id":"{padding}"}},"messages":[{{"role":"user","content":"hi"}}]}}"#
    );
    let mut req = format!(
        "POST /v1/messages HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\nanthropic-version: 2023-06-01\r\nauthorization: Bearer {}\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n",
        s.key
    );
    // Uneven pieces, some of them larger than a connection's first read buffer.
    let mut rest = json.as_bytes();
    for size in [1, 7, 70_000, 3, 80_000].into_iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (piece, tail) = rest.split_at(size.min(rest.len()));
        req.push_str(&format!(
            "{:x}\r\n{}\r\n",
            piece.len(),
            std::str::from_utf8(piece).unwrap()
        ));
        rest = tail;
    }
    req.push_str("0\r\n\r\n");
    let answer = support::raw_http(&s.gw.url, req.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let seen = s.upstream.requests();
    assert_eq!(seen.len(), 1);
    assert!(
        seen[0].body == json.as_bytes(),
        "the upstream got other bytes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_body_over_the_limit_once_decoded_is_a_413() {
    let s = Setup::with("[server]\nmax_body_bytes = 2048\n").await;
    let padding = " ".repeat(64 * 1024);
    let json = format!(
        r#"{{"model":"{SONNET}","max_tokens":10,"messages":[{{"role":"user","content":"hi"}}]{padding}}}"#
    );
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(json.as_bytes()).unwrap();
    let gz = enc.finish().unwrap();
    assert!(gz.len() < 2048);
    let reply = s.messages(gz, &[("content-encoding", "gzip")]).await;
    assert_eq!(reply.status, 413, "{}", reply.text());
    assert_eq!(error_type(&reply), "request_too_large");
    assert!(s.upstream.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_body_is_decoded_for_the_upstream() {
    let s = Setup::new().await;
    let json = cached_body(SONNET, false);
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(json.as_bytes()).unwrap();
    let gz = enc.finish().unwrap();
    let reply = s.messages(gz, &[("content-encoding", "gzip")]).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let seen = s.upstream.requests();
    assert_eq!(seen.len(), 1);
    assert!(
        seen[0].body == json.as_bytes(),
        "{}",
        String::from_utf8_lossy(&seen[0].body)
    );
    assert_eq!(seen[0].header("content-encoding"), None);
    let expected_len = json.len().to_string();
    assert_eq!(
        seen[0].header("content-length"),
        Some(expected_len.as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_upstream_is_a_502() {
    let gw = Gateway::start(&closed_port_url()).await;
    let key = gw.create_key("alice", "platform").await;
    let c = client();
    for stream in [false, true] {
        let reply = send(
            &c,
            messages_request(
                &format!("{}/v1/messages", gw.url),
                &key,
                simple_body(SONNET, stream),
                &[],
            ),
        )
        .await;
        assert_eq!(reply.status, 502, "{}", reply.text());
        assert_eq!(error_type(&reply), "api_error");
        let rec = gw.record(&reply.request_id()).await;
        assert_eq!(rec["status"], 502, "{rec}");
        assert_eq!(rec["error_type"], "api_error", "{rec}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_error_event_mid_stream_reaches_the_client() {
    let s = Setup::new().await;
    let reply = s.stream("midstream-error").await;
    assert_eq!(reply.status, 200);
    let events = reply.events();
    let names = event_names(&reply);
    assert!(!names.contains(&"message_stop".to_string()), "{names:?}");
    let (last, data) = events.last().unwrap();
    assert_eq!(last, "error", "{names:?}");
    assert_eq!(data["error"]["type"], "overloaded_error");
    let rec = s.gw.record(&reply.request_id()).await;
    assert_eq!(rec["status"], 200, "{rec}");
    assert_eq!(rec["error_type"], "overloaded_error", "{rec}");
    assert_eq!(rec["input_tokens"], 120, "{rec}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_upstream_stream_never_ends_cleanly_without_message_stop() {
    let s = Setup::new().await;
    let reply = s.stream("broken").await;
    assert_eq!(reply.status, 200);
    let names = event_names(&reply);
    assert!(!names.contains(&"message_stop".to_string()), "{names:?}");
    assert!(
        reply.cut || names.last().map(String::as_str) == Some("error"),
        "a cut stream must end with event: error or a dropped connection: {names:?} cut={}",
        reply.cut
    );
    assert!(names.contains(&"error".to_string()), "{}", reply.text());
    let rec = s.gw.record(&reply.request_id()).await;
    assert_eq!(rec["status"], 200, "{rec}");
    assert_eq!(rec["error_type"], "api_error", "{rec}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_closing_without_answer_is_a_502() {
    let s = Setup::new().await;
    let reply = s
        .messages(simple_body(SONNET, false), &[("x-mock-scenario", "broken")])
        .await;
    assert_eq!(reply.status, 502, "{}", reply.text());
    assert_eq!(error_type(&reply), "api_error");
    let rec = s.gw.record(&reply.request_id()).await;
    assert_eq!(rec["status"], 502, "{rec}");
    assert_eq!(rec["error_type"], "api_error", "{rec}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_hanging_up_mid_stream_is_journaled_once() {
    let s = Setup::new().await;
    let req = messages_request(
        &s.messages_url(),
        &s.key,
        simple_body(SONNET, true),
        &[("x-mock-scenario", "slow:200")],
    );
    let resp = tokio::time::timeout(Duration::from_secs(10), s.client.request(req))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let id = resp.headers()["x-tollgate-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let mut body = resp.into_body();
    let first = tokio::time::timeout(Duration::from_secs(10), body.frame())
        .await
        .unwrap();
    assert!(first.is_some());
    drop(body);

    let rec = s.gw.record(&id).await;
    assert_eq!(rec["error_type"], "client_closed_request", "{rec}");
    assert_eq!(rec["input_tokens"], 120, "{rec}");
    // The upstream stream is still running; a second record must not follow when it ends.
    tokio::time::sleep(Duration::from_millis(1800)).await;
    s.gw.record(&id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn count_tokens_is_forwarded() {
    let s = Setup::new().await;
    let body = r#"{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"{\"result\":\"echo: ping\"}"}],"tools":[]}"#;
    let req = messages_request(
        &format!("{}/v1/messages/count_tokens?beta=true", s.gw.url),
        &s.key,
        body,
        &[("anthropic-beta", "token-counting-2024-11-01")],
    );
    let reply = send(&s.client, req).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["input_tokens"], body.len() / 4);
    let seen = s.upstream.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].path_and_query,
        "/v1/messages/count_tokens?beta=true"
    );
    assert!(seen[0].body == body.as_bytes());
    assert_eq!(
        seen[0].header("anthropic-beta"),
        Some("token-counting-2024-11-01")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_hello_and_health() {
    let s = Setup::new().await;
    let req = Request::get(format!("{}/v1/models?limit=1000", s.gw.url))
        .header("anthropic-version", "2023-06-01")
        .header("authorization", format!("Bearer {}", s.key))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let models = send(&s.client, req).await;
    assert_eq!(models.status, 200, "{}", models.text());
    let list = models.json();
    let data = list["data"].as_array().unwrap();
    assert!(!data.is_empty());
    assert!(
        data.iter()
            .all(|m| m["type"] == "model" && m["id"].is_string())
    );
    assert!(data.iter().any(|m| m["id"] == SONNET), "{list}");
    assert_eq!(list["has_more"], false);
    assert_eq!(list["first_id"], data[0]["id"]);

    let hello = Request::head(format!("{}/api/hello", s.gw.url))
        .header("user-agent", "Bun/1.4.6")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(send(&s.client, hello).await.status, 200);

    // Claude Code on Bedrock asks for inference profiles at start-up; an empty list, not an error.
    let profiles = Request::get(format!(
        "{}/bedrock/inference-profiles?maxResults=1000",
        s.gw.url
    ))
    .body(Full::new(Bytes::new()))
    .unwrap();
    let profiles = send(&s.client, profiles).await;
    assert_eq!(profiles.status, 200, "{}", profiles.text());
    assert_eq!(
        profiles.json()["inferenceProfileSummaries"],
        serde_json::json!([])
    );

    let health = Request::get(format!("{}/healthz", s.gw.url))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let health = send(&s.client, health).await;
    assert_eq!(health.status, 200);
    assert_eq!(health.text(), "ok");
    assert!(s.upstream.requests().is_empty());
}

/// Sonnet 4.5 list prices in nano-USD per token: $3 input, $15 output, $3.75 5-minute cache
/// write, $0.30 cache read per million tokens.
fn sonnet_cost_nanos(input: i64, output: i64, cache_write: i64, cache_read: i64) -> i64 {
    input * 3_000 + output * 15_000 + cache_write * 3_750 + cache_read * 300
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journal_records_usage_attribution_and_cost() {
    let s = Setup::new().await;
    let session = "0b7e1c2a-4d5f-4e6a-8b9c-0d1e2f3a4b5c";
    let reply = s
        .messages(
            cached_body(SONNET, true),
            &[
                ("x-tollgate-project", "payments"),
                ("x-tollgate-tags", "ci, nightly"),
                ("x-claude-code-session-id", session),
                ("x-claude-code-agent-id", "a0123456789abcdef"),
                ("user-agent", "claude-cli/2.1.332 (external, sdk-cli)"),
            ],
        )
        .await;
    assert_eq!(reply.status, 200);
    assert!(reply.complete_stream(), "{}", reply.text());
    let rec = s.gw.record(&reply.request_id()).await;

    assert_eq!(rec["status"], 200, "{rec}");
    assert_eq!(rec["error_type"], Value::Null, "{rec}");
    assert_eq!(rec["input_tokens"], 120, "{rec}");
    assert_eq!(rec["output_tokens"], 30, "{rec}");
    assert_eq!(rec["cache_creation_input_tokens"], 200, "{rec}");
    assert_eq!(rec["cache_read_input_tokens"], 1000, "{rec}");
    assert_eq!(rec["user"], "alice", "{rec}");
    assert_eq!(rec["team"], "platform", "{rec}");
    assert_eq!(rec["project"], "payments", "{rec}");
    assert_eq!(rec["tags"], serde_json::json!(["ci", "nightly"]), "{rec}");
    assert_eq!(rec["session_id"], session, "{rec}");
    assert_eq!(rec["agent_id"], "a0123456789abcdef", "{rec}");
    assert_eq!(
        rec["user_agent"], "claude-cli/2.1.332 (external, sdk-cli)",
        "{rec}"
    );
    assert_eq!(rec["model"], SONNET, "{rec}");
    assert_eq!(rec["provider"], "anthropic", "{rec}");
    assert_eq!(rec["stream"], true, "{rec}");
    assert_eq!(rec["path"], "/v1/messages", "{rec}");
    assert_eq!(rec["method"], "POST", "{rec}");
    let expected = sonnet_cost_nanos(120, 30, 200, 1000);
    assert_eq!(expected, 1_860_000);
    assert_eq!(rec["cost_nanos"], expected, "{rec}");
    assert_eq!(rec["cost_usd"], "0.001860", "{rec}");
    assert_eq!(rec["cost_unknown"], false, "{rec}");
    assert!(rec["ttfb_ms"].as_f64().is_some(), "{rec}");
    let duration = rec["duration_ms"].as_f64().unwrap();
    assert!(duration >= rec["ttfb_ms"].as_f64().unwrap(), "{rec}");
    assert_eq!(rec["bytes_out"], reply.body.len(), "{rec}");
    assert!(
        rec["upstream_request_id"]
            .as_str()
            .is_some_and(|v| v.starts_with("req_mock_")),
        "{rec}"
    );
    assert!(rec["key_id"].is_string(), "{rec}");
    assert!(rec["started_at"].is_string(), "{rec}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_model_has_unknown_cost() {
    let s = Setup::new().await;
    let reply = s.messages(simple_body("claude-unknown-x", true), &[]).await;
    assert_eq!(reply.status, 200);
    assert!(reply.complete_stream(), "{}", reply.text());
    let rec = s.gw.record(&reply.request_id()).await;
    assert_eq!(rec["model"], "claude-unknown-x", "{rec}");
    assert_eq!(rec["input_tokens"], 120, "{rec}");
    assert_eq!(rec["output_tokens"], 30, "{rec}");
    assert_eq!(rec["cost_nanos"], Value::Null, "{rec}");
    assert_eq!(rec["cost_unknown"], true, "{rec}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spend_by_team_sums_the_journal() {
    let s = Setup::new().await;
    let other = s.gw.create_key("carol", "research").await;

    let mut ids = Vec::new();
    for stream in [true, false] {
        let reply = s.messages(cached_body(SONNET, stream), &[]).await;
        assert_eq!(reply.status, 200);
        ids.push(reply.request_id());
    }
    let plain = s.messages(simple_body(SONNET, true), &[]).await;
    assert_eq!(plain.status, 200);
    ids.push(plain.request_id());
    let unknown = send(
        &s.client,
        messages_request(
            &s.messages_url(),
            &other,
            simple_body("claude-unknown-x", false),
            &[],
        ),
    )
    .await;
    assert_eq!(unknown.status, 200);
    ids.push(unknown.request_id());
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    s.gw.logs_with(&id_refs, Duration::from_secs(10)).await;

    let rows = s.gw.admin(&["spend", "--by", "team"]).await;
    let rows = rows.as_array().unwrap();
    let row = |team: &str| {
        rows.iter()
            .find(|r| r["group"] == team)
            .unwrap_or_else(|| panic!("no spend row for {team}: {rows:?}"))
            .clone()
    };
    let platform = row("platform");
    let expected = 2 * sonnet_cost_nanos(120, 30, 200, 1000) + sonnet_cost_nanos(120, 30, 0, 0);
    assert_eq!(platform["requests"], 3, "{platform}");
    assert_eq!(platform["input_tokens"], 360, "{platform}");
    assert_eq!(platform["output_tokens"], 90, "{platform}");
    assert_eq!(platform["cache_creation_input_tokens"], 400, "{platform}");
    assert_eq!(platform["cache_read_input_tokens"], 2000, "{platform}");
    assert_eq!(platform["cost_nanos"], expected, "{platform}");
    assert_eq!(platform["cost_usd"], "0.004530", "{platform}");
    assert_eq!(platform["unknown_cost_requests"], 0, "{platform}");

    let research = row("research");
    assert_eq!(research["requests"], 1, "{research}");
    assert_eq!(research["input_tokens"], 120, "{research}");
    assert_eq!(research["unknown_cost_requests"], 1, "{research}");
    assert_eq!(research["cost_nanos"], 0, "{research}");
}

#[test]
fn event_parser_handles_partial_tail() {
    let events = parse_events("event: a\ndata: {\"x\":1}\n\nevent: b\ndata: {\"x\"");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].0, "a");
}
