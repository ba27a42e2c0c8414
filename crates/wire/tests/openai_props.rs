//! Properties of the Messages ↔ Chat Completions conversions:
//! - a conversation survives Messages → Chat → Messages with its meaning intact;
//! - a response converted whole and the same response converted as a stream (split at arbitrary
//!   byte boundaries) assemble to the same thing, in both directions;
//! - no input, however broken, makes a converter panic.

// Test helpers fail loudly on malformed output; that is their job.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use serde_json::{Value, json};
use tollgate_wire::openai::{
    ChatToMessagesStream, ConvertOptions, MessagesToChatStream, chat_to_messages_request,
    chat_to_messages_response, messages_to_chat_request, messages_to_chat_response,
};
use tollgate_wire::sse::SseScanner;

fn opts(model: &str) -> ConvertOptions {
    ConvertOptions {
        target_model: model.into(),
        ..Default::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------------------------

fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 .,!?éß€😀\n\"\\\\]{1,24}"
}

fn tool_name() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "Bash",
        "Read",
        "Edit",
        "mcp__wire__echo",
        "get_weather",
    ])
    .prop_map(str::to_string)
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        text().prop_map(Value::from),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn tool_input() -> impl Strategy<Value = Value> {
    prop::collection::btree_map("[a-z_]{1,8}", json_value(), 0..4)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
}

/// Text content as a plain string or as text blocks (the two spellings mean the same).
fn text_content(texts: Vec<String>, plain: bool) -> Value {
    match texts.as_slice() {
        [one] if plain => json!(one),
        _ => Value::Array(
            texts
                .into_iter()
                .map(|t| json!({"type": "text", "text": t, "cache_control": {"type": "ephemeral"}}))
                .collect(),
        ),
    }
}

#[derive(Debug, Clone)]
struct ToolResult {
    texts: Vec<String>,
    plain: bool,
    is_error: bool,
}

#[derive(Debug, Clone)]
struct Round {
    thinking: bool,
    assistant_texts: Vec<String>,
    calls: Vec<(String, Value)>,
    results: Vec<ToolResult>,
    user_texts: Vec<String>,
    plain: bool,
    system_after: Option<String>,
}

fn tool_result() -> impl Strategy<Value = ToolResult> {
    (
        prop::collection::vec(text(), 1..3),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(texts, plain, is_error)| ToolResult {
            texts,
            plain,
            is_error,
        })
}

fn round() -> impl Strategy<Value = Round> {
    (
        any::<bool>(),
        prop::collection::vec(text(), 0..3),
        prop::collection::vec((tool_name(), tool_input()), 0..4),
    )
        .prop_flat_map(|(thinking, assistant_texts, calls)| {
            let n = calls.len();
            // A turn needs something visible; without tool calls the user must say something.
            let min_user = usize::from(n == 0);
            let texts = if assistant_texts.is_empty() && n == 0 {
                vec!["ok".to_string()]
            } else {
                assistant_texts
            };
            (
                Just(thinking),
                Just(texts),
                Just(calls),
                prop::collection::vec(tool_result(), n..=n),
                prop::collection::vec(text(), min_user..3),
                any::<bool>(),
                prop::option::of(text()),
            )
        })
        .prop_map(
            |(thinking, assistant_texts, calls, results, user_texts, plain, system_after)| Round {
                thinking,
                assistant_texts,
                calls,
                results,
                user_texts,
                plain,
                system_after,
            },
        )
}

fn conversation() -> impl Strategy<Value = Value> {
    (
        prop::option::of(prop::collection::vec(text(), 1..3)),
        any::<bool>(),
        prop::collection::vec(text(), 1..3),
        prop::collection::vec(round(), 0..4),
        2048u64..200_000,
        prop::option::of(0u8..=10),
        prop::option::of(prop::collection::vec(text(), 1..3)),
        prop::option::of(0u64..=1000),
        prop::option::of(0usize..4),
    )
        .prop_map(
            |(system, plain, first, rounds, max_tokens, temp, stops, budget, choice)| {
                let mut messages = vec![json!({"role": "user", "content": text_content(first, plain)})];
                let mut names = std::collections::BTreeSet::new();
                for (r, round) in rounds.into_iter().enumerate() {
                    let mut content = Vec::new();
                    if round.thinking {
                        content.push(json!({"type": "thinking", "thinking": "private", "signature": "c2ln"}));
                    }
                    for t in &round.assistant_texts {
                        content.push(json!({"type": "text", "text": t}));
                    }
                    for (k, (name, input)) in round.calls.iter().enumerate() {
                        names.insert(name.clone());
                        content.push(json!({"type": "tool_use", "id": format!("toolu_{r}_{k}"),
                            "name": name, "input": input}));
                    }
                    messages.push(json!({"role": "assistant", "content": content}));
                    let mut user = Vec::new();
                    for (k, res) in round.results.iter().enumerate() {
                        let mut block = json!({"type": "tool_result", "tool_use_id": format!("toolu_{r}_{k}"),
                            "content": text_content(res.texts.clone(), res.plain)});
                        if res.is_error {
                            block["is_error"] = json!(true);
                        }
                        user.push(block);
                    }
                    if user.is_empty() {
                        messages.push(json!({"role": "user",
                            "content": text_content(round.user_texts.clone(), round.plain)}));
                    } else {
                        for t in &round.user_texts {
                            user.push(json!({"type": "text", "text": t}));
                        }
                        messages.push(json!({"role": "user", "content": user}));
                    }
                    if let Some(s) = round.system_after {
                        messages.push(json!({"role": "system", "content": s,
                            "output_config": {"effort": "medium"}}));
                    }
                }
                let mut req = json!({"model": "claude-opus-5-5", "max_tokens": max_tokens, "messages": messages});
                if let Some(system) = system {
                    req["system"] = text_content(system, plain);
                }
                if let Some(t) = temp {
                    req["temperature"] = json!(f64::from(t) / 10.0);
                }
                if let Some(stops) = stops {
                    req["stop_sequences"] = json!(stops);
                }
                if let Some(b) = budget {
                    // Anthropic's rule: 1024 <= budget < max_tokens.
                    let budget = 1024 + (max_tokens - 1025) * b / 1000;
                    req["thinking"] = json!({"type": "enabled", "budget_tokens": budget});
                }
                if !names.is_empty() {
                    req["tools"] = Value::Array(
                        names
                            .iter()
                            .map(|n| json!({"name": n, "description": format!("The {n} tool"),
                                "input_schema": {"type": "object", "properties": {"x": {"type": "string"}}}}))
                            .collect(),
                    );
                    if let Some(c) = choice {
                        let first = names.iter().next().cloned().unwrap_or_default();
                        req["tool_choice"] = [
                            json!({"type": "auto"}),
                            json!({"type": "any", "disable_parallel_tool_use": true}),
                            json!({"type": "none"}),
                            json!({"type": "tool", "name": first}),
                        ][c]
                            .clone();
                    }
                }
                req
            },
        )
}

// ---------------------------------------------------------------------------------------------
// Meaning of a Messages request
// ---------------------------------------------------------------------------------------------

fn texts_of(content: &Value) -> Vec<String> {
    match content {
        Value::String(s) => vec![s.clone()],
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| b["text"].as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

fn strip_error_mark(s: &str) -> &str {
    s.strip_prefix("<tool_use_error>")
        .and_then(|s| s.strip_suffix("</tool_use_error>"))
        .unwrap_or(s)
}

/// What the model sees: roles and the order of texts, tool calls and results. Thinking blocks
/// are not part of it (they cannot cross to another provider); text vs. text-block spelling and
/// the joins of multi-block results are not either.
fn meaning(req: &Value) -> Value {
    let mut messages = Vec::new();
    for m in req["messages"].as_array().unwrap() {
        let mut items = Vec::new();
        match &m["content"] {
            Value::String(s) => items.push(json!({"text": s})),
            Value::Array(blocks) => {
                for b in blocks {
                    match b["type"].as_str().unwrap() {
                        "text" => items.push(json!({"text": b["text"]})),
                        "tool_use" => {
                            items.push(json!({"tool_use": [b["id"], b["name"], b["input"]]}))
                        }
                        "tool_result" => {
                            let text = texts_of(&b["content"]).join("\n");
                            let is_error = b["is_error"].as_bool().unwrap_or(false);
                            items.push(json!({"tool_result": [b["tool_use_id"], strip_error_mark(&text), is_error]}));
                        }
                        "thinking" | "redacted_thinking" => {}
                        other => panic!("unexpected block {other}"),
                    }
                }
            }
            other => panic!("unexpected content {other}"),
        }
        messages.push(json!({"role": m["role"], "items": items}));
    }
    let tools: Vec<Value> = req["tools"]
        .as_array()
        .map(|ts| {
            ts.iter()
                .map(|t| json!([t["name"], t["description"], t["input_schema"]]))
                .collect()
        })
        .unwrap_or_default();
    json!({
        "system": texts_of(&req["system"]),
        "messages": messages,
        "max_tokens": req["max_tokens"],
        "temperature": req["temperature"],
        "stop_sequences": req["stop_sequences"],
        "tools": tools,
        "tool_choice": req["tool_choice"],
        "thinking_effort": req["thinking"]["budget_tokens"].as_u64().map(|b| match b {
            0..4096 => "low",
            4096..16384 => "medium",
            _ => "high",
        }),
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 384, .. ProptestConfig::default() })]

    #[test]
    fn conversations_survive_a_round_trip_through_chat_completions(req in conversation()) {
        let chat = messages_to_chat_request(req.to_string().as_bytes(), &opts("gpt-x"))
            .map_err(|e| TestCaseError::fail(format!("to chat: {e}")))?;
        let back = chat_to_messages_request(&chat, &opts("claude-opus-5-5"))
            .map_err(|e| TestCaseError::fail(format!("back: {e}")))?;
        let back: Value = serde_json::from_slice(&back).unwrap();
        prop_assert_eq!(meaning(&back), meaning(&req));
        prop_assert_eq!(&back["model"], "claude-opus-5-5");
    }
}

// ---------------------------------------------------------------------------------------------
// Streams agree with whole responses
// ---------------------------------------------------------------------------------------------

/// Splits `s` into pieces at char boundaries chosen by `cuts`.
fn pieces(s: &str, cuts: &[u8]) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    let mut points: Vec<usize> = cuts
        .iter()
        .map(|c| usize::from(*c) * chars.len() / 256)
        .collect();
    points.push(chars.len());
    points.sort_unstable();
    points.dedup();
    let mut out = Vec::new();
    let mut from = 0;
    for p in points {
        if p > from {
            out.push(chars[from..p].iter().collect());
            from = p;
        }
    }
    if out.is_empty() {
        out.push(String::new());
    }
    out
}

/// Feeds `bytes` in pieces cut at `cuts` (positions scaled to the length), then finishes.
fn feed_split(bytes: &[u8], cuts: &[u16], mut feed: impl FnMut(&[u8]) -> Vec<u8>) -> Vec<u8> {
    let mut points: Vec<usize> = cuts
        .iter()
        .map(|c| usize::from(*c) * bytes.len() / 65536)
        .collect();
    points.push(bytes.len());
    points.sort_unstable();
    let mut out = Vec::new();
    let mut from = 0;
    for p in points {
        out.extend(feed(&bytes[from..p]));
        from = p;
    }
    out
}

#[derive(Debug, Clone)]
enum Block {
    Text(String),
    Thinking(String, String),
    Redacted(String),
    Tool(String, Value),
}

fn anthropic_block() -> impl Strategy<Value = Block> {
    prop_oneof![
        3 => text().prop_map(Block::Text),
        1 => (text(), "[A-Za-z0-9+/]{8,40}").prop_map(|(t, s)| Block::Thinking(t, s)),
        1 => "[A-Za-z0-9+/]{8,40}".prop_map(Block::Redacted),
        2 => (tool_name(), tool_input()).prop_map(|(n, i)| Block::Tool(n, i)),
    ]
}

fn sse(name: &str, data: Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

/// A Message and the stream that produces it.
fn anthropic_response(
    blocks: &[Block],
    stop: &str,
    usage: (u64, u64, u64, u64),
    cuts: &[u8],
) -> (Value, String) {
    let (input, created, read, output) = usage;
    let mut content = Vec::new();
    let mut stream = vec![
        sse(
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_p", "type": "message",
            "role": "assistant", "model": "claude-x", "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": input, "cache_creation_input_tokens": created,
                "cache_read_input_tokens": read, "output_tokens": 1}}}),
        ),
        sse("ping", json!({"type": "ping"})),
    ];
    for (i, b) in blocks.iter().enumerate() {
        let start = |cb: Value| {
            sse(
                "content_block_start",
                json!({"type": "content_block_start", "index": i, "content_block": cb}),
            )
        };
        let delta = |d: Value| {
            sse(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": i, "delta": d}),
            )
        };
        match b {
            Block::Text(t) => {
                content.push(json!({"type": "text", "text": t}));
                stream.push(start(json!({"type": "text", "text": ""})));
                for p in pieces(t, cuts) {
                    stream.push(delta(json!({"type": "text_delta", "text": p})));
                }
            }
            Block::Thinking(t, sig) => {
                content.push(json!({"type": "thinking", "thinking": t, "signature": sig}));
                stream.push(start(
                    json!({"type": "thinking", "thinking": "", "signature": ""}),
                ));
                for p in pieces(t, cuts) {
                    stream.push(delta(json!({"type": "thinking_delta", "thinking": p})));
                }
                stream.push(delta(json!({"type": "signature_delta", "signature": sig})));
            }
            Block::Redacted(data) => {
                content.push(json!({"type": "redacted_thinking", "data": data}));
                stream.push(start(json!({"type": "redacted_thinking", "data": data})));
            }
            Block::Tool(name, input) => {
                let id = format!("toolu_{i}");
                content.push(json!({"type": "tool_use", "id": id, "name": name, "input": input}));
                stream.push(start(
                    json!({"type": "tool_use", "id": id, "name": name, "input": {}}),
                ));
                for p in pieces(&serde_json::to_string_pretty(input).unwrap(), cuts) {
                    stream.push(delta(
                        json!({"type": "input_json_delta", "partial_json": p}),
                    ));
                }
            }
        }
        stream.push(sse(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": i}),
        ));
    }
    stream.push(sse(
        "message_delta",
        json!({"type": "message_delta",
        "delta": {"stop_reason": stop, "stop_sequence": null}, "usage": {"output_tokens": output}}),
    ));
    stream.push(sse("message_stop", json!({"type": "message_stop"})));
    let message = json!({"id": "msg_p", "type": "message", "role": "assistant", "model": "claude-x",
        "content": content, "stop_reason": stop, "stop_sequence": null,
        "usage": {"input_tokens": input, "cache_creation_input_tokens": created,
            "cache_read_input_tokens": read, "output_tokens": output}});
    (message, stream.concat())
}

/// Assembles Chat Completions chunks into the `chat.completion` they stand for.
fn assemble_chat(bytes: &[u8]) -> Value {
    let mut scanner = SseScanner::new();
    let mut chunks = Vec::new();
    scanner.feed(bytes, |e| chunks.push(e.data.into_owned()));
    let mut id = Value::Null;
    let mut model = Value::Null;
    let (mut content, mut reasoning) = (String::new(), String::new());
    let mut thinking_blocks = Vec::new();
    let mut calls: Vec<(Value, Value, String)> = Vec::new();
    let mut finish = Value::Null;
    let mut usage = Value::Null;
    let mut done = false;
    for raw in chunks {
        assert!(!done, "nothing may follow [DONE]");
        if raw == b"[DONE]" {
            done = true;
            continue;
        }
        let c: Value = serde_json::from_slice(&raw).unwrap();
        assert!(c.get("error").is_none(), "unexpected error chunk {c}");
        assert_eq!(c["object"], "chat.completion.chunk");
        id = c["id"].clone();
        model = c["model"].clone();
        if !c["usage"].is_null() {
            usage = c["usage"].clone();
        }
        let Some(choice) = c["choices"].get(0) else {
            continue;
        };
        let d = &choice["delta"];
        content.push_str(d["content"].as_str().unwrap_or(""));
        reasoning.push_str(d["reasoning_content"].as_str().unwrap_or(""));
        if let Some(tb) = d["thinking_blocks"].as_array() {
            thinking_blocks.extend(tb.iter().cloned());
        }
        for tc in d["tool_calls"].as_array().into_iter().flatten() {
            let i = tc["index"].as_u64().unwrap() as usize;
            if tc.get("id").is_some() {
                assert_eq!(i, calls.len(), "tool calls are announced in index order");
                assert_eq!(tc["type"], "function");
                calls.push((
                    tc["id"].clone(),
                    tc["function"]["name"].clone(),
                    String::new(),
                ));
            }
            calls[i]
                .2
                .push_str(tc["function"]["arguments"].as_str().unwrap());
        }
        if !choice["finish_reason"].is_null() {
            finish = choice["finish_reason"].clone();
        }
    }
    assert!(done, "a complete stream ends with [DONE]");
    let tool_calls: Vec<Value> = calls
        .into_iter()
        .map(|(id, name, args)| json!([id, name, serde_json::from_str::<Value>(&args).unwrap()]))
        .collect();
    json!({"id": id, "model": model, "content": content, "reasoning": reasoning,
        "thinking_blocks": thinking_blocks, "tool_calls": tool_calls, "finish": finish, "usage": usage})
}

/// The same summary of a whole `chat.completion`.
fn summarise_chat(v: &Value) -> Value {
    let m = &v["choices"][0]["message"];
    let tool_calls: Vec<Value> = m["tool_calls"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|tc| {
            json!([
                tc["id"],
                tc["function"]["name"],
                serde_json::from_str::<Value>(tc["function"]["arguments"].as_str().unwrap())
                    .unwrap()
            ])
        })
        .collect();
    json!({"id": v["id"], "model": v["model"], "content": m["content"].as_str().unwrap_or(""),
        "reasoning": m["reasoning_content"].as_str().unwrap_or(""),
        "thinking_blocks": m["thinking_blocks"].as_array().cloned().unwrap_or_default(),
        "tool_calls": tool_calls, "finish": v["choices"][0]["finish_reason"], "usage": v["usage"]})
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn anthropic_stream_and_message_convert_to_the_same_completion(
        blocks in prop::collection::vec(anthropic_block(), 0..6),
        stop in prop::sample::select(vec!["end_turn", "max_tokens", "tool_use", "stop_sequence", "refusal"]),
        usage in (0u64..5000, 0u64..5000, 0u64..50_000, 0u64..5000),
        text_cuts in prop::collection::vec(any::<u8>(), 0..6),
        byte_cuts in prop::collection::vec(any::<u16>(), 0..24),
    ) {
        let (message, stream) = anthropic_response(&blocks, stop, usage, &text_cuts);
        let whole = messages_to_chat_response(message.to_string().as_bytes(), "gpt-asked")
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let whole: Value = serde_json::from_slice(&whole).unwrap();
        let mut conv = MessagesToChatStream::new("gpt-asked", true);
        let mut out = feed_split(stream.as_bytes(), &byte_cuts, |b| conv.feed(b).to_vec());
        out.extend_from_slice(&conv.finish());
        prop_assert_eq!(assemble_chat(&out), summarise_chat(&whole));
        let expected_usage = tollgate_wire::Usage {
            input_tokens: usage.0,
            cache_creation_input_tokens: usage.1,
            cache_read_input_tokens: usage.2,
            output_tokens: usage.3,
            ..Default::default()
        };
        prop_assert_eq!(conv.usage(), expected_usage);
    }
}

/// A Chat Completion and the stream that produces it.
#[allow(clippy::too_many_arguments)]
fn openai_response(
    reasoning: &Option<String>,
    content: &Option<String>,
    calls: &[(String, Value)],
    finish: &str,
    usage: (u64, u64, u64),
    cuts: &[u8],
    spaced: bool,
) -> (Value, String) {
    let (cached, uncached, completion) = usage;
    let usage = json!({"prompt_tokens": cached + uncached, "completion_tokens": completion,
        "total_tokens": cached + uncached + completion, "prompt_tokens_details": {"cached_tokens": cached}});
    let chunk = |delta: Value, finish: Value| {
        format!(
            "data: {}\n\n",
            json!({"id": "chatcmpl-p", "object": "chat.completion.chunk", "created": 1,
            "model": "gpt-x", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        )
    };
    let mut stream = vec![chunk(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    )];
    if let Some(r) = reasoning {
        for p in pieces(r, cuts) {
            stream.push(chunk(json!({"reasoning_content": p}), Value::Null));
        }
    }
    if let Some(c) = content {
        for p in pieces(c, cuts) {
            stream.push(chunk(json!({"content": p}), Value::Null));
        }
    }
    let mut tool_calls = Vec::new();
    for (k, (name, input)) in calls.iter().enumerate() {
        let id = format!("call_{k}");
        let args = if spaced {
            serde_json::to_string_pretty(input).unwrap()
        } else {
            input.to_string()
        };
        tool_calls.push(
            json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}}),
        );
        stream.push(chunk(
            json!({"tool_calls": [{"index": k, "id": id, "type": "function",
            "function": {"name": name, "arguments": ""}}]}),
            Value::Null,
        ));
        for p in pieces(&args, cuts) {
            stream.push(chunk(
                json!({"tool_calls": [{"index": k, "function": {"arguments": p}}]}),
                Value::Null,
            ));
        }
    }
    stream.push(chunk(json!({}), json!(finish)));
    stream.push(format!(
        "data: {}\n\n",
        json!({"id": "chatcmpl-p", "object": "chat.completion.chunk",
        "created": 1, "model": "gpt-x", "choices": [], "usage": usage})
    ));
    stream.push("data: [DONE]\n\n".to_string());
    let mut message = json!({"role": "assistant", "content": content});
    if let Some(r) = reasoning {
        message["reasoning_content"] = json!(r);
    }
    if !tool_calls.is_empty() {
        message["tool_calls"] = Value::Array(tool_calls);
    }
    let whole = json!({"id": "chatcmpl-p", "object": "chat.completion", "created": 1, "model": "gpt-x",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}], "usage": usage});
    (whole, stream.concat())
}

/// Assembles Anthropic events into the Message they stand for, checking that the block
/// sequence is well formed on the way.
fn assemble_message(bytes: &[u8]) -> Value {
    let mut scanner = SseScanner::new();
    let mut events = Vec::new();
    scanner.feed(bytes, |e| {
        events.push((
            e.name.to_string(),
            serde_json::from_slice::<Value>(&e.data).unwrap(),
        ));
    });
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.first(), Some(&"message_start"), "{names:?}");
    assert_eq!(names.last(), Some(&"message_stop"), "{names:?}");
    assert_eq!(names[names.len() - 2], "message_delta");
    let mut message = events[0].1["message"].clone();
    let mut content: Vec<Value> = Vec::new();
    let mut open: Option<usize> = None;
    let mut partial = String::new();
    for (name, data) in &events[1..events.len() - 2] {
        assert_eq!(
            data["type"],
            name.as_str(),
            "data type matches the event name"
        );
        let index = data["index"].as_u64().unwrap() as usize;
        match name.as_str() {
            "content_block_start" => {
                assert_eq!(
                    open, None,
                    "a block starts only after the previous one stopped"
                );
                assert_eq!(index, content.len(), "block indices count up from 0");
                let block = data["content_block"].clone();
                // Anthropic's own start shape; a made-up signature would need a signature_delta.
                if block["type"] == "thinking" {
                    assert_eq!(block["signature"], "", "no signature is made up");
                }
                content.push(block);
                open = Some(index);
                partial.clear();
            }
            "content_block_delta" => {
                assert_eq!(open, Some(index), "deltas go to the open block");
                let d = &data["delta"];
                let block = &mut content[index];
                match d["type"].as_str().unwrap() {
                    "text_delta" => {
                        let t = block["text"].as_str().unwrap().to_string()
                            + d["text"].as_str().unwrap();
                        block["text"] = json!(t);
                    }
                    "thinking_delta" => {
                        let t = block["thinking"].as_str().unwrap().to_string()
                            + d["thinking"].as_str().unwrap();
                        block["thinking"] = json!(t);
                    }
                    "input_json_delta" => partial.push_str(d["partial_json"].as_str().unwrap()),
                    other => panic!("unexpected delta {other}"),
                }
            }
            "content_block_stop" => {
                assert_eq!(open, Some(index));
                if content[index]["type"] == "tool_use" && !partial.is_empty() {
                    content[index]["input"] = serde_json::from_str(&partial).unwrap();
                }
                open = None;
            }
            other => panic!("unexpected event {other}"),
        }
    }
    assert_eq!(open, None, "every block is stopped before message_delta");
    let delta = &events[events.len() - 2].1;
    message["content"] = Value::Array(content);
    message["stop_reason"] = delta["delta"]["stop_reason"].clone();
    message["stop_sequence"] = delta["delta"]["stop_sequence"].clone();
    message["usage"] = delta["usage"].clone();
    message
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn openai_stream_and_completion_convert_to_the_same_message(
        reasoning in prop::option::of(text()),
        content in prop::option::of(text()),
        calls in prop::collection::vec((tool_name(), tool_input()), 0..4),
        finish in prop::sample::select(vec!["stop", "length", "content_filter"]),
        usage in (0u64..50_000, 0u64..5000, 0u64..5000),
        text_cuts in prop::collection::vec(any::<u8>(), 0..6),
        byte_cuts in prop::collection::vec(any::<u16>(), 0..24),
        spaced in any::<bool>(),
    ) {
        let finish = if calls.is_empty() { finish } else { "tool_calls" };
        let (whole, stream) = openai_response(&reasoning, &content, &calls, finish, usage, &text_cuts, spaced);
        let message = chat_to_messages_response(whole.to_string().as_bytes(), "claude-asked")
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let message: Value = serde_json::from_slice(&message).unwrap();
        let mut conv = ChatToMessagesStream::new("claude-asked", message["id"].as_str().unwrap());
        let mut out = feed_split(stream.as_bytes(), &byte_cuts, |b| conv.feed(b).to_vec());
        out.extend_from_slice(&conv.finish());
        prop_assert_eq!(assemble_message(&out), message);
        prop_assert_eq!(conv.usage().cache_read_input_tokens, usage.0);
        prop_assert_eq!(conv.usage().input_tokens, usage.1);
    }
}

// ---------------------------------------------------------------------------------------------
// No panics
// ---------------------------------------------------------------------------------------------

/// JSON that looks like requests and responses of both dialects, with wrong types mixed in.
fn request_like() -> impl Strategy<Value = Value> {
    let field = prop::sample::select(vec![
        "model",
        "messages",
        "system",
        "role",
        "content",
        "type",
        "text",
        "tool_calls",
        "tools",
        "tool_choice",
        "function",
        "arguments",
        "name",
        "id",
        "input",
        "input_schema",
        "tool_use_id",
        "tool_call_id",
        "is_error",
        "thinking",
        "budget_tokens",
        "reasoning_effort",
        "max_tokens",
        "max_completion_tokens",
        "source",
        "image_url",
        "url",
        "data",
        "media_type",
        "choices",
        "message",
        "delta",
        "usage",
        "stop",
        "output_config",
        "format",
        "schema",
        "response_format",
        "json_schema",
        "index",
        "finish_reason",
        "stop_reason",
        "error",
        "signature",
    ]);
    let leaf = prop_oneof![
        json_leaf(),
        prop::sample::select(vec![
            "user",
            "assistant",
            "system",
            "tool",
            "developer",
            "text",
            "image",
            "tool_use",
            "tool_result",
            "thinking",
            "function",
            "auto",
            "any",
            "enabled",
            "adaptive",
            "base64",
            "url",
            "json_schema",
            "data:image/png;base64,xx",
            "{\"a\":1}",
            "high",
        ])
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::vec((field.clone(), inner), 0..6).prop_map(|kv| Value::Object(
                kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
            )),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn converters_never_panic_on_json(v in request_like()) {
        let body = v.to_string();
        let o = opts("m");
        let _ = messages_to_chat_request(body.as_bytes(), &o);
        let _ = chat_to_messages_request(body.as_bytes(), &o);
        let _ = chat_to_messages_response(body.as_bytes(), "m");
        let _ = messages_to_chat_response(body.as_bytes(), "m");
        for name in ["", "message_start", "content_block_start", "content_block_delta", "content_block_stop",
            "message_delta", "message_stop", "error"] {
            let frame = if name.is_empty() { format!("data: {body}\n\n") } else { format!("event: {name}\ndata: {body}\n\n") };
            let mut a = ChatToMessagesStream::new("m", "msg");
            let _ = a.feed(frame.as_bytes());
            let _ = a.finish();
            let mut b = MessagesToChatStream::new("m", true);
            let _ = b.feed(frame.as_bytes());
            let _ = b.finish();
        }
    }

    #[test]
    fn converters_never_panic_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let o = opts("m");
        let _ = messages_to_chat_request(&bytes, &o);
        let _ = chat_to_messages_request(&bytes, &o);
        let _ = chat_to_messages_response(&bytes, "m");
        let _ = messages_to_chat_response(&bytes, "m");
        let mut a = ChatToMessagesStream::new("m", "msg");
        let _ = a.feed(&bytes);
        let _ = a.finish();
        let mut b = MessagesToChatStream::new("m", false);
        let _ = b.feed(&bytes);
        let _ = b.finish();
    }
}
