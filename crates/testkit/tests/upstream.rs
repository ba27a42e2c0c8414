#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Request};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tollgate_testkit::{ScriptedUpstream, UpstreamOptions};

const KEY: &str = "sk-upstream-test";

type HttpClient = Client<HttpConnector, Full<Bytes>>;

fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

async fn upstream() -> ScriptedUpstream {
    ScriptedUpstream::start(UpstreamOptions::new(KEY))
        .await
        .unwrap()
}

struct Reply {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
    /// The body as the client's HTTP stack delivered it: one entry per chunk.
    frames: Vec<Bytes>,
    /// Whether the body ended with a transport error rather than cleanly.
    cut: bool,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    fn header(&self, name: &str) -> &str {
        self.headers.get(name).unwrap().to_str().unwrap()
    }

    fn events(&self) -> Vec<(String, Value)> {
        let text = String::from_utf8(self.body.clone()).unwrap();
        text.split_terminator("\n\n")
            .map(|event| {
                let (name, data) = event.split_once('\n').unwrap();
                let name = name.strip_prefix("event: ").unwrap().to_owned();
                let data = data.strip_prefix("data: ").unwrap();
                (name, serde_json::from_str(data).unwrap())
            })
            .collect()
    }
}

async fn send(client: &HttpClient, req: Request<Full<Bytes>>) -> Reply {
    let response = client.request(req).await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let mut body = response.into_body();
    let mut data = Vec::new();
    let mut frames = Vec::new();
    let mut cut = false;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                let chunk = frame.into_data().unwrap();
                data.extend_from_slice(&chunk);
                frames.push(chunk);
            }
            Err(_) => {
                cut = true;
                break;
            }
        }
    }
    Reply {
        status,
        headers,
        body: data,
        frames,
        cut,
    }
}

fn post(up: &ScriptedUpstream, path: &str) -> http::request::Builder {
    Request::post(format!("{}{path}", up.url()))
        .header("x-api-key", KEY)
        .header("anthropic-version", "2023-06-01")
        .header("content-type", "application/json")
}

fn body_of(value: &Value) -> Full<Bytes> {
    Full::new(Bytes::from(value.to_string()))
}

async fn call(client: &HttpClient, up: &ScriptedUpstream, scenario: &str, body: &Value) -> Reply {
    let req = post(up, "/v1/messages?beta=true")
        .header("x-mock-scenario", scenario)
        .body(body_of(body))
        .unwrap();
    send(client, req).await
}

fn basic(prompt: &str, stream: bool) -> Value {
    json!({
        "model": "claude-opus-5-5",
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": prompt}],
        "stream": stream,
    })
}

fn assert_error(reply: &Reply, status: u16, kind: &str, message_part: &str) {
    assert_eq!(
        reply.status,
        status,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let json = reply.json();
    assert_eq!(json["type"], "error");
    assert_eq!(json["error"]["type"], kind);
    let message = json["error"]["message"].as_str().unwrap();
    assert!(message.contains(message_part), "{message}");
    assert!(reply.header("request-id").starts_with("req_mock_"));
}

#[tokio::test]
async fn rejects_a_wrong_or_missing_api_key() {
    let up = upstream().await;
    let client = client();
    let body = basic("hi", false);
    let req = post(&up, "/v1/messages")
        .header("x-api-key", "wrong")
        .body(body_of(&body))
        .unwrap();
    let reply = send(&client, req).await;
    assert_error(&reply, 401, "authentication_error", "invalid x-api-key");
    assert_eq!(
        reply.json(),
        json!({"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}})
    );

    let req = Request::post(format!("{}/v1/messages", up.url()))
        .header("anthropic-version", "2023-06-01")
        .header("content-type", "application/json")
        .body(body_of(&body))
        .unwrap();
    assert_error(
        &send(&client, req).await,
        401,
        "authentication_error",
        "x-api-key",
    );
    assert_eq!(up.requests()[0].scenario, "rejected");
    assert_eq!(up.requests()[0].status, 401);
}

#[tokio::test]
async fn rejects_what_a_gateway_must_not_forward() {
    let up = upstream().await;
    let client = client();
    let body = basic("hi", false);

    let req = post(&up, "/v1/messages")
        .header("x-tollgate-route", "cheap")
        .body(body_of(&body))
        .unwrap();
    assert_error(
        &send(&client, req).await,
        400,
        "invalid_request_error",
        "x-tollgate-route",
    );

    let req = post(&up, "/v1/messages")
        .header("authorization", "Bearer client-key")
        .body(body_of(&body))
        .unwrap();
    assert_error(
        &send(&client, req).await,
        400,
        "invalid_request_error",
        "authorization",
    );

    let req = post(&up, "/v1/messages")
        .header("content-encoding", "gzip")
        .body(body_of(&body))
        .unwrap();
    assert_error(
        &send(&client, req).await,
        400,
        "invalid_request_error",
        "content-encoding",
    );

    let req = Request::post(format!("{}/v1/messages", up.url()))
        .header("x-api-key", KEY)
        .header("content-type", "application/json")
        .body(body_of(&body))
        .unwrap();
    assert_error(
        &send(&client, req).await,
        400,
        "invalid_request_error",
        "anthropic-version",
    );

    let no_max = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
    let req = post(&up, "/v1/messages").body(body_of(&no_max)).unwrap();
    assert_error(
        &send(&client, req).await,
        400,
        "invalid_request_error",
        "max_tokens",
    );

    let req = post(&up, "/v1/messages")
        .body(Full::new(Bytes::from_static(b"{\"model\":")))
        .unwrap();
    assert_error(
        &send(&client, req).await,
        400,
        "invalid_request_error",
        "JSON",
    );

    let reply = call(&client, &up, "no-such-scenario", &body).await;
    assert_error(&reply, 400, "invalid_request_error", "no-such-scenario");
}

#[tokio::test]
async fn streams_a_tool_use_in_pieces_then_answers_the_result() {
    let up = upstream().await;
    let client = client();
    let mut body = basic("What is the weather?", true);
    body["tools"] = json!([{"name": "get_weather", "input_schema": {"type": "object"}}]);
    let reply = call(&client, &up, "tool", &body).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), "text/event-stream");
    assert_eq!(
        reply.header("anthropic-ratelimit-requests-remaining"),
        "999"
    );
    assert_eq!(
        reply.header("anthropic-ratelimit-tokens-remaining"),
        "999999"
    );
    assert!(!reply.cut);

    let events = reply.events();
    // Each event is a chunk of its own, so a gateway can forward it as soon as it arrives.
    assert_eq!(reply.frames.len(), events.len());
    for frame in &reply.frames {
        let frame = std::str::from_utf8(frame).unwrap();
        assert!(frame.starts_with("event: ") && frame.ends_with("\n\n"));
        assert_eq!(frame.matches("\n\n").count(), 1);
    }
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names[..2], ["message_start", "ping"]);
    assert_eq!(names[names.len() - 2..], ["message_delta", "message_stop"]);
    for (name, data) in &events {
        assert_eq!(data["type"], name.as_str());
    }
    let start = &events[0].1["message"];
    assert_eq!(start["content"], json!([]));
    assert_eq!(start["stop_reason"], Value::Null);
    assert_eq!(start["model"], "claude-opus-5-5");
    assert_eq!(start["usage"]["input_tokens"], 120);
    assert_eq!(start["usage"]["output_tokens"], 1);

    let tool_start = events
        .iter()
        .find(|(n, d)| n == "content_block_start" && d["content_block"]["type"] == "tool_use")
        .unwrap();
    assert_eq!(tool_start.1["index"], 1);
    assert_eq!(tool_start.1["content_block"]["name"], "get_weather");
    assert_eq!(tool_start.1["content_block"]["input"], json!({}));
    let pieces: Vec<&str> = events
        .iter()
        .filter(|(_, d)| d["delta"]["type"] == "input_json_delta")
        .map(|(_, d)| d["delta"]["partial_json"].as_str().unwrap())
        .collect();
    assert!(pieces.len() >= 2, "{pieces:?}");
    let input: Value = serde_json::from_str(&pieces.concat()).unwrap();
    assert_eq!(input, json!({"location": "Paris"}));
    let delta = &events[events.len() - 2].1;
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");
    assert_eq!(delta["usage"]["output_tokens"], 30);

    let tool_id = tool_start.1["content_block"]["id"].as_str().unwrap();
    let mut next = body.clone();
    next["stream"] = json!(false);
    next["messages"] = json!([
        {"role": "user", "content": "What is the weather?"},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": tool_id, "name": "get_weather", "input": input}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_id, "content": "sunny"}]},
        {"role": "system", "content": "reminder"}
    ]);
    let reply = call(&client, &up, "tool", &next).await;
    let message = reply.json();
    assert_eq!(message["stop_reason"], "end_turn");
    assert_eq!(message["content"][0]["text"], "tool result was: sunny");
}

#[tokio::test]
async fn records_headers_and_body_as_received() {
    let up = upstream().await;
    let client = client();
    let body = json!({
        "model": "claude-opus-5-5",
        "max_tokens": 10,
        "system": [{"type": "text", "text": "s", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": "[[scenario:text]] [[say:recorded!]]"}],
    });
    let raw = body.to_string();
    let req = post(&up, "/v1/messages?beta=true")
        .header("X-Claude-Code-Session-Id", "sess-1")
        .header("anthropic-beta", "claude-code-20250219,effort-2025-11-24")
        .body(Full::new(Bytes::from(raw.clone())))
        .unwrap();
    let reply = send(&client, req).await;
    assert_eq!(reply.status, 200);
    let message = reply.json();
    assert_eq!(message["content"][0]["text"], "recorded!");
    assert_eq!(message["usage"]["cache_creation_input_tokens"], 200);
    assert_eq!(message["usage"]["cache_read_input_tokens"], 1000);
    assert_eq!(
        message["usage"]["cache_creation"]["ephemeral_5m_input_tokens"],
        200
    );

    let recorded = up.requests();
    assert_eq!(recorded.len(), 1);
    let r = &recorded[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path_and_query, "/v1/messages?beta=true");
    assert_eq!(r.body, Bytes::from(raw.clone()));
    assert_eq!(r.scenario, "text");
    assert_eq!(r.status, 200);
    assert_eq!(r.usage.as_ref().unwrap(), &message["usage"]);
    let names: Vec<&str> = r.headers.iter().map(|(n, _)| n.as_str()).collect();
    let pos = |name: &str| names.iter().position(|n| *n == name).unwrap();
    assert!(pos("x-api-key") < pos("anthropic-version"));
    assert!(pos("content-type") < pos("x-claude-code-session-id"));
    assert!(pos("x-claude-code-session-id") < pos("anthropic-beta"));
    assert_eq!(r.header("X-Claude-Code-Session-Id"), Some("sess-1"));

    // The same recording over HTTP, without credentials.
    let list = send(
        &client,
        Request::get(format!("{}/_test/requests", up.url()))
            .body(Full::default())
            .unwrap(),
    )
    .await
    .json();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["path"], "/v1/messages?beta=true");
    assert_eq!(list[0]["body"], raw);
    assert_eq!(list[0]["body_len"], raw.len());
    assert_eq!(list[0]["scenario"], "text");
    assert!(
        list[0]["headers"]
            .as_array()
            .unwrap()
            .contains(&json!(["anthropic-version", "2023-06-01"]))
    );
    let cleared = send(
        &client,
        Request::delete(format!("{}/_test/requests", up.url()))
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(cleared.json()["cleared"], 1);
    assert!(up.requests().is_empty());
}

#[tokio::test]
async fn checks_echoed_thinking_signatures() {
    let up = upstream().await;
    let client = client();
    let mut body = basic("[[scenario:thinking]] list files", false);
    body["tools"] = json!([
        {"name": "Agent", "input_schema": {"type": "object"}},
        {"name": "Bash", "input_schema": {"type": "object"}}
    ]);
    let req = post(&up, "/v1/messages").body(body_of(&body)).unwrap();
    let first = send(&client, req).await.json();
    assert_eq!(first["stop_reason"], "tool_use");
    let content = first["content"].as_array().unwrap();
    assert_eq!(content[0]["type"], "thinking");
    assert!(!content[0]["signature"].as_str().unwrap().is_empty());
    assert_eq!(content[1]["name"], "Bash");
    assert_eq!(content[1]["input"]["command"], "echo wire-test");

    let mut next = body.clone();
    next["messages"] = json!([
        body["messages"][0],
        {"role": "assistant", "content": content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": content[1]["id"],
                                      "content": "wire-test", "is_error": false}]}
    ]);
    let req = post(&up, "/v1/messages").body(body_of(&next)).unwrap();
    let second = send(&client, req).await;
    assert_eq!(second.status, 200);
    let second = second.json();
    assert_eq!(second["content"][0]["type"], "thinking");
    assert_eq!(second["content"][1]["text"], "tool result was: wire-test");

    let mut tampered = next.clone();
    tampered["messages"][1]["content"][0]["signature"] = json!("Zm9yZ2Vk");
    let req = post(&up, "/v1/messages").body(body_of(&tampered)).unwrap();
    assert_error(
        &send(&client, req).await,
        400,
        "invalid_request_error",
        "thinking signature mismatch",
    );

    // The streamed signature is the one the next request must echo.
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let events = call(&client, &up, "thinking", &streamed).await.events();
    let thinking: String = events
        .iter()
        .filter(|(_, d)| d["delta"]["type"] == "thinking_delta")
        .map(|(_, d)| d["delta"]["thinking"].as_str().unwrap())
        .collect();
    let signature = events
        .iter()
        .find(|(_, d)| d["delta"]["type"] == "signature_delta")
        .map(|(_, d)| d["delta"]["signature"].as_str().unwrap().to_owned())
        .unwrap();
    let mut echoed = next.clone();
    echoed["messages"][1]["content"][0] =
        json!({"type": "thinking", "thinking": thinking, "signature": signature});
    let req = post(&up, "/v1/messages").body(body_of(&echoed)).unwrap();
    assert_eq!(send(&client, req).await.status, 200);
}

#[tokio::test]
async fn answers_text_with_defaults_and_overrides() {
    let up = upstream().await;
    let client = client();
    let reply = call(&client, &up, "text", &basic("hi", false)).await;
    assert_eq!(reply.status, 200);
    assert!(reply.header("request-id").starts_with("req_mock_"));
    let message = reply.json();
    assert_eq!(message["type"], "message");
    assert_eq!(message["role"], "assistant");
    assert!(message["id"].as_str().unwrap().starts_with("msg_mock_"));
    assert_eq!(
        message["content"][0]["text"],
        "Hello from the scripted upstream."
    );
    assert_eq!(message["stop_sequence"], Value::Null);
    assert_eq!(message["usage"]["input_tokens"], 120);
    assert_eq!(message["usage"]["output_tokens"], 30);
    assert_eq!(message["usage"]["cache_read_input_tokens"], 0);

    let body = basic("hi", true);
    let req = post(&up, "/v1/messages")
        .header("x-mock-usage", "5,6,7,8")
        .body(body_of(&body))
        .unwrap();
    let events = send(&client, req).await.events();
    let usage = &events[0].1["message"]["usage"];
    assert_eq!(usage["input_tokens"], 5);
    assert_eq!(usage["cache_creation_input_tokens"], 7);
    assert_eq!(usage["cache_read_input_tokens"], 8);
    assert_eq!(events[events.len() - 2].1["usage"]["output_tokens"], 6);
    let text: String = events
        .iter()
        .filter(|(_, d)| d["delta"]["type"] == "text_delta")
        .map(|(_, d)| d["delta"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(text, "Hello from the scripted upstream.");
    assert_eq!(up.requests()[1].usage.as_ref().unwrap()["output_tokens"], 6);
}

#[tokio::test]
async fn plays_scripted_errors() {
    let up = upstream().await;
    let client = client();
    let reply = call(
        &client,
        &up,
        "error:429:rate_limit_error",
        &basic("hi", true),
    )
    .await;
    assert_error(&reply, 429, "rate_limit_error", "");
    assert_eq!(reply.header("retry-after"), "7");
    assert_eq!(reply.header("x-should-retry"), "true");

    let reply = call(
        &client,
        &up,
        "error:529:overloaded_error",
        &basic("hi", false),
    )
    .await;
    assert_error(&reply, 529, "overloaded_error", "Overloaded");
    assert!(reply.headers.get("retry-after").is_none());

    let reply = call(&client, &up, "midstream-error", &basic("hi", true)).await;
    assert_eq!(reply.status, 200);
    assert!(!reply.cut);
    let events = reply.events();
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "error"
        ]
    );
    assert_eq!(
        events[3].1,
        json!({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})
    );
}

#[tokio::test]
async fn breaks_connections_on_request() {
    let up = upstream().await;
    let client = client();
    let reply = call(&client, &up, "broken", &basic("hi", true)).await;
    assert_eq!(reply.status, 200);
    assert!(reply.cut);
    let text = String::from_utf8(reply.body).unwrap();
    assert!(text.starts_with("event: message_start\n"));
    assert!(text.contains("text_delta"));
    assert!(!text.contains("message_stop"));

    let body = basic("hi", false);
    let req = post(&up, "/v1/messages")
        .header("x-mock-scenario", "broken")
        .body(body_of(&body))
        .unwrap();
    assert!(client.request(req).await.is_err());
    assert_eq!(up.requests()[1].status, 0);
}

#[tokio::test]
async fn passes_unknown_events_and_splits_big_replies() {
    let up = upstream().await;
    let client = client();
    let reply = call(&client, &up, "unknown-event", &basic("hi", true)).await;
    let text = String::from_utf8(reply.body.clone()).unwrap();
    assert!(
        text.contains("event: mystery_event\ndata: {\"type\":\"mystery_event\",\"foo\":1}\n\n")
    );
    assert_eq!(reply.events()[0].1["message"]["zzz_extra"], true);

    let events = call(&client, &up, "big:2500", &basic("hi", true))
        .await
        .events();
    let deltas: Vec<&str> = events
        .iter()
        .filter(|(_, d)| d["delta"]["type"] == "text_delta")
        .map(|(_, d)| d["delta"]["text"].as_str().unwrap())
        .collect();
    assert!(deltas.iter().all(|d| d.len() <= 1000));
    assert_eq!(deltas.concat(), "x".repeat(2500));

    let start = Instant::now();
    let reply = call(&client, &up, "slow:40", &basic("hi", true)).await;
    assert!(reply.events().len() >= 8);
    assert!(start.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn scripts_agent_turns_from_message_tags() {
    let up = upstream().await;
    let client = client();
    let body = json!({
        "model": "claude-opus-5-5",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "<system-reminder>context</system-reminder>"},
            {"type": "text", "text": "[[scenario:agent]] delegate"}]}],
    });
    let req = post(&up, "/v1/messages").body(body_of(&body)).unwrap();
    let message = send(&client, req).await.json();
    assert_eq!(message["stop_reason"], "tool_use");
    let call_block = &message["content"][0];
    assert_eq!(call_block["name"], "Agent");
    let prompt = call_block["input"]["prompt"].as_str().unwrap().to_owned();
    assert_eq!(call_block["input"]["run_in_background"], false);

    let sub = json!({
        "model": "claude-opus-5-5",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": prompt}],
    });
    let req = post(&up, "/v1/messages")
        .header("x-claude-code-agent-id", "a0123456789abcdef")
        .body(body_of(&sub))
        .unwrap();
    let report = send(&client, req).await.json();
    assert_eq!(report["content"][0]["text"], "Subagent report: all good.");
    assert_eq!(up.requests()[1].scenario, "subagent");
}

#[tokio::test]
async fn serves_count_tokens_models_and_not_found() {
    let up = upstream().await;
    let client = client();
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "hello"}]});
    let raw = body.to_string();
    let req = post(&up, "/v1/messages/count_tokens?beta=true")
        .body(body_of(&body))
        .unwrap();
    let reply = send(&client, req).await;
    assert_eq!(reply.json(), json!({"input_tokens": raw.len() / 4}));

    let req = Request::get(format!("{}/v1/models?limit=1000", up.url()))
        .header("x-api-key", KEY)
        .header("anthropic-version", "2023-06-01")
        .body(Full::default())
        .unwrap();
    let models = send(&client, req).await.json();
    assert_eq!(models["data"].as_array().unwrap().len(), 2);
    assert_eq!(models["data"][0]["type"], "model");

    let req = post(&up, "/gw/v1/messages").body(body_of(&body)).unwrap();
    assert_error(
        &send(&client, req).await,
        404,
        "not_found_error",
        "/gw/v1/messages",
    );
}

#[tokio::test]
async fn fast_mode_serves_fixed_answers() {
    let up = ScriptedUpstream::start(UpstreamOptions {
        api_key: KEY.to_owned(),
        fast: true,
    })
    .await
    .unwrap();
    let client = client();
    let req = Request::post(format!("{}/v1/messages", up.url()))
        .body(body_of(&basic("hi", true)))
        .unwrap();
    let reply = send(&client, req).await;
    assert_eq!(reply.header("content-type"), "text/event-stream");
    let events = reply.events();
    assert_eq!(events.len(), 10);
    assert_eq!(events[9].0, "message_stop");

    let req = Request::post(format!("{}/v1/messages", up.url()))
        .body(body_of(&basic("hi", false)))
        .unwrap();
    let message = send(&client, req).await.json();
    assert_eq!(message["type"], "message");
    assert!(up.requests().is_empty());
}

#[tokio::test]
async fn binary_announces_its_port() {
    use tokio::io::AsyncBufReadExt as _;

    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_scripted-upstream"))
        .args(["--api-key", KEY])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    tokio::io::BufReader::new(stdout)
        .read_line(&mut line)
        .await
        .unwrap();
    let addr = line.trim_end().strip_prefix("LISTENING ").unwrap();
    assert!(addr.starts_with("127.0.0.1:"));
    let body = basic("hi", false);
    let req = Request::post(format!("http://{addr}/v1/messages"))
        .header("x-api-key", KEY)
        .header("anthropic-version", "2023-06-01")
        .header("content-type", "application/json")
        .body(body_of(&body))
        .unwrap();
    let reply = send(&client(), req).await;
    assert_eq!(reply.status, 200);
    child.kill().await.unwrap();
}
