//! Fast mode's Bedrock and Chat Completions answers must decode with the gateway's own codecs,
//! or a benchmark of the conversion paths would measure error handling instead.

#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tollgate_testkit::{ScriptedUpstream, UpstreamOptions};
use tollgate_wire::bedrock::{BedrockEvent, EventStreamDecoder, read_invocation_metrics};
use tollgate_wire::openai::{ChatToMessagesStream, chat_to_messages_response};

const MODEL_ID: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1%3A0";

type HttpClient = Client<HttpConnector, Full<Bytes>>;

struct Reply {
    status: u16,
    content_type: String,
    headers: http::HeaderMap,
    /// One entry per chunk as the client received it.
    frames: Vec<Bytes>,
}

impl Reply {
    fn body(&self) -> Vec<u8> {
        self.frames.concat()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body()).unwrap()
    }
}

async fn fast_upstream() -> ScriptedUpstream {
    ScriptedUpstream::start(UpstreamOptions {
        api_key: "sk-unused".to_owned(),
        fast: true,
    })
    .await
    .unwrap()
}

/// Posts `body` with no credentials at all: fast mode checks none.
async fn post(up: &ScriptedUpstream, path: &str, body: &Value) -> Reply {
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let req = Request::post(format!("{}{path}", up.url()))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let response = client.request(req).await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let content_type = headers
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let mut body = response.into_body();
    let mut frames = Vec::new();
    while let Some(frame) = body.frame().await {
        frames.push(frame.unwrap().into_data().unwrap());
    }
    Reply {
        status,
        content_type,
        headers,
        frames,
    }
}

/// A Bedrock InvokeModel body: no `model`, no `stream`.
fn bedrock_body() -> Value {
    json!({
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": "hi"}],
    })
}

fn chat_body(stream: bool) -> Value {
    let mut body = json!({
        "model": "gpt-bench",
        "messages": [{"role": "user", "content": "hi"}],
        "max_completion_tokens": 1024,
    });
    if stream {
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
    }
    body
}

fn anthropic_body(stream: bool) -> Value {
    json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": "hi"}],
        "stream": stream,
    })
}

/// `(event name, data)` of an Anthropic SSE body.
fn sse_events(body: &[u8]) -> Vec<(String, Value)> {
    std::str::from_utf8(body)
        .unwrap()
        .split_terminator("\n\n")
        .map(|event| {
            let (name, data) = event.split_once('\n').unwrap();
            let name = name.strip_prefix("event: ").unwrap().to_owned();
            (
                name,
                serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap(),
            )
        })
        .collect()
}

fn streamed_text(events: &[Value]) -> String {
    events
        .iter()
        .filter(|e| e["type"] == "content_block_delta")
        .map(|e| e["delta"]["text"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn bedrock_invoke_answers_the_message_json() {
    let up = fast_upstream().await;
    let reply = post(&up, &format!("/model/{MODEL_ID}/invoke"), &bedrock_body()).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.content_type, "application/json");
    assert!(reply.headers.contains_key("x-amzn-requestid"));
    let message = reply.json();
    assert_eq!(message["type"], "message");
    assert_eq!(message["usage"]["input_tokens"], 120);
    assert_eq!(message["usage"]["output_tokens"], 30);

    let anthropic = post(&up, "/v1/messages", &anthropic_body(false)).await;
    assert_eq!(reply.body(), anthropic.body());
    assert!(up.requests().is_empty());
}

#[tokio::test]
async fn bedrock_stream_is_an_event_stream_of_the_anthropic_events() {
    let up = fast_upstream().await;
    let path = format!("/model/{MODEL_ID}/invoke-with-response-stream");
    let reply = post(&up, &path, &bedrock_body()).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.content_type, "application/vnd.amazon.eventstream");
    assert!(reply.headers.contains_key("x-amzn-requestid"));

    let mut decoder = EventStreamDecoder::new();
    let mut chunks = Vec::new();
    for frame in &reply.frames {
        for event in decoder.feed(frame).unwrap() {
            match event {
                BedrockEvent::Chunk(json) => chunks.push(json),
                other => panic!("unexpected frame {other:?}"),
            }
        }
    }
    decoder.finish().unwrap();

    let sse = post(&up, "/v1/messages", &anthropic_body(true)).await;
    let anthropic = sse_events(&sse.body());
    assert_eq!(chunks.len(), 10);
    let values: Vec<Value> = chunks
        .iter()
        .map(|c| serde_json::from_slice(c).unwrap())
        .collect();
    let names: Vec<&str> = values.iter().map(|v| v["type"].as_str().unwrap()).collect();
    let anthropic_names: Vec<&str> = anthropic.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, anthropic_names);
    let anthropic_data: Vec<Value> = anthropic.into_iter().map(|(_, d)| d).collect();
    assert_eq!(values[..9], anthropic_data[..9]);
    assert_eq!(streamed_text(&values), streamed_text(&anthropic_data));

    let metrics = read_invocation_metrics(chunks.last().unwrap()).unwrap();
    assert_eq!(
        (metrics.input_token_count, metrics.output_token_count),
        (120, 30)
    );
    assert!(
        chunks[..9]
            .iter()
            .all(|c| read_invocation_metrics(c).is_none())
    );
}

#[tokio::test]
async fn chat_completion_converts_to_the_same_message() {
    let up = fast_upstream().await;
    let reply = post(&up, "/v1/chat/completions", &chat_body(false)).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.content_type, "application/json");
    let completion = reply.json();
    assert_eq!(completion["object"], "chat.completion");
    assert_eq!(completion["choices"][0]["finish_reason"], "stop");

    let converted = chat_to_messages_response(&reply.body(), "claude-sonnet-4-5").unwrap();
    let converted: Value = serde_json::from_slice(&converted).unwrap();
    let anthropic = post(&up, "/v1/messages", &anthropic_body(false))
        .await
        .json();
    assert_eq!(converted["content"], anthropic["content"]);
    assert_eq!(converted["stop_reason"], "end_turn");
    assert_eq!(converted["usage"]["input_tokens"], 120);
    assert_eq!(converted["usage"]["output_tokens"], 30);
    assert!(up.requests().is_empty());
}

#[tokio::test]
async fn chat_stream_converts_to_a_complete_messages_stream() {
    let up = fast_upstream().await;
    let reply = post(&up, "/v1/chat/completions", &chat_body(true)).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.content_type, "text/event-stream");
    assert!(reply.frames.len() >= 2, "{}", reply.frames.len());

    let body = String::from_utf8(reply.body()).unwrap();
    let data: Vec<&str> = body
        .split_terminator("\n\n")
        .map(|e| e.strip_prefix("data: ").unwrap())
        .collect();
    assert_eq!(data.last(), Some(&"[DONE]"));
    let usage_chunk: Value = serde_json::from_str(data[data.len() - 2]).unwrap();
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(usage_chunk["usage"]["prompt_tokens"], 120);
    for chunk in &data[..data.len() - 1] {
        let chunk: Value = serde_json::from_str(chunk).unwrap();
        assert_eq!(chunk["object"], "chat.completion.chunk");
    }

    let mut converter = ChatToMessagesStream::new("claude-sonnet-4-5", "msg_test");
    let mut converted = Vec::new();
    for frame in &reply.frames {
        converted.extend_from_slice(&converter.feed(frame));
    }
    converted.extend_from_slice(&converter.finish());
    let events = sse_events(&converted);
    assert_eq!(events.first().unwrap().0, "message_start");
    assert_eq!(events.last().unwrap().0, "message_stop");
    assert!(events.iter().all(|(name, _)| name != "error"));
    let values: Vec<Value> = events.into_iter().map(|(_, d)| d).collect();
    let sse = post(&up, "/v1/messages", &anthropic_body(true)).await;
    let anthropic: Vec<Value> = sse_events(&sse.body())
        .into_iter()
        .map(|(_, d)| d)
        .collect();
    assert_eq!(streamed_text(&values), streamed_text(&anthropic));
    assert_eq!(converter.usage().input_tokens, 120);
    assert_eq!(converter.usage().output_tokens, 30);
}

#[tokio::test]
async fn other_paths_keep_the_anthropic_answer() {
    let up = fast_upstream().await;
    let messages = post(&up, "/v1/messages", &anthropic_body(false)).await;
    assert_eq!(messages.headers["request-id"], "req_mock_fast");
    // Only POST picks another dialect, and the model path must end with an invoke action.
    for path in [
        "/model/x/converse",
        "/v1/chat/completions/extra",
        "/anything",
    ] {
        let reply = post(&up, path, &anthropic_body(false)).await;
        assert_eq!(reply.body(), messages.body(), "{path}");
    }
}
