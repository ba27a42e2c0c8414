//! Golden files for the Messages ↔ Chat Completions conversions: representative inputs under
//! `tests/golden/openai/` and the exact output each must convert to.
//!
//! Outputs are compared as JSON values (key order is not part of either API); `created`
//! timestamps are zeroed. Set `UPDATE_GOLDEN=1` to rewrite the expected files after a deliberate
//! change, then review the diff.

// Test helpers fail loudly on malformed output; that is their job.
#![allow(clippy::unwrap_used)]

use serde_json::Value;
use std::path::PathBuf;
use tollgate_wire::openai::{
    ChatToMessagesStream, ConvertOptions, MessagesToChatStream, chat_to_messages_request,
    chat_to_messages_response, messages_to_chat_request, messages_to_chat_response,
};
use tollgate_wire::sse::SseScanner;

fn golden(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/openai")
        .join(name)
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(golden(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn updating() -> bool {
    std::env::var_os("UPDATE_GOLDEN").is_some()
}

fn zero_created(mut v: Value) -> Value {
    if let Some(obj) = v.as_object_mut()
        && obj.contains_key("created")
    {
        obj.insert("created".into(), Value::from(0));
    }
    v
}

fn check_json(expected_name: &str, actual: &[u8]) {
    let actual = zero_created(serde_json::from_slice(actual).expect("output is JSON"));
    if updating() {
        let text = serde_json::to_string_pretty(&actual).unwrap() + "\n";
        std::fs::write(golden(expected_name), text).unwrap();
        return;
    }
    let expected: Value = serde_json::from_slice(&read(expected_name)).unwrap();
    assert_eq!(
        actual,
        expected,
        "{expected_name} differs; actual:\n{}",
        serde_json::to_string_pretty(&actual).unwrap()
    );
}

/// SSE events as (name, JSON data or the raw text for `[DONE]`).
fn events(bytes: &[u8]) -> Vec<(String, Value)> {
    let mut scanner = SseScanner::new();
    let mut out = Vec::new();
    scanner.feed(bytes, |e| {
        let data = serde_json::from_slice(&e.data)
            .map(zero_created)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&e.data).into_owned()));
        out.push((e.name.to_string(), data));
    });
    out
}

fn check_sse(expected_name: &str, actual: &[u8]) {
    let actual_events = events(actual);
    if updating() {
        let mut text = String::new();
        for (name, data) in &actual_events {
            if !name.is_empty() {
                text.push_str(&format!("event: {name}\n"));
            }
            let data = match data {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            text.push_str(&format!("data: {data}\n\n"));
        }
        std::fs::write(golden(expected_name), text).unwrap();
        return;
    }
    assert_eq!(
        actual_events,
        events(&read(expected_name)),
        "{expected_name} differs"
    );
}

fn opts(model: &str) -> ConvertOptions {
    ConvertOptions {
        target_model: model.into(),
        ..Default::default()
    }
}

#[test]
fn claude_code_request_to_chat() {
    let out = messages_to_chat_request(&read("claude_code_request.json"), &opts("gpt-5.1"))
        .expect("converts");
    check_json("claude_code_request.chat.json", &out);
}

#[test]
fn openai_sdk_request_to_messages() {
    let out =
        chat_to_messages_request(&read("openai_sdk_request.json"), &opts("claude-sonnet-5-5"))
            .expect("converts");
    check_json("openai_sdk_request.messages.json", &out);
}

#[test]
fn openai_response_to_message() {
    let out = chat_to_messages_response(&read("openai_response_tools.json"), "claude-opus-5-5")
        .expect("converts");
    check_json("openai_response_tools.messages.json", &out);
}

#[test]
fn anthropic_response_to_completion() {
    let out = messages_to_chat_response(&read("anthropic_response_thinking_tools.json"), "gpt-4.1")
        .expect("converts");
    check_json("anthropic_response_thinking_tools.chat.json", &out);
}

#[test]
fn openai_stream_to_messages_stream() {
    let mut s = ChatToMessagesStream::new("claude-opus-5-5", "msg_gateway_1");
    let input = read("openai_stream_tools.sse");
    let mut out = Vec::new();
    // Small pieces, as a network would deliver them.
    for piece in input.chunks(37) {
        out.extend_from_slice(&s.feed(piece));
    }
    out.extend_from_slice(&s.finish());
    check_sse("openai_stream_tools.messages.sse", &out);
    assert_eq!(s.usage().cache_read_input_tokens, 1024);
}

#[test]
fn anthropic_stream_to_chat_stream() {
    let mut s = MessagesToChatStream::new("gpt-4.1", true);
    let input = read("anthropic_stream_thinking_tools.sse");
    let mut out = Vec::new();
    for piece in input.chunks(41) {
        out.extend_from_slice(&s.feed(piece));
    }
    out.extend_from_slice(&s.finish());
    check_sse("anthropic_stream_thinking_tools.chat.sse", &out);
    assert!(out.ends_with(b"data: [DONE]\n\n"));
    assert_eq!(s.usage().output_tokens, 95);
}
