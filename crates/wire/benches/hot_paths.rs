//! Per-request work of the gateway's hot path on real-shaped bodies: reading the request facts
//! of a ~1 KB and a ~120 KB Claude Code request, scanning a response stream for usage, and
//! converting between the Messages and Chat Completions dialects.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use tollgate_wire::anthropic::{StreamWatch, read_request, read_response};
use tollgate_wire::openai::{ConvertOptions, chat_to_messages_response, messages_to_chat_request};
use tollgate_wire::sse::SseScanner;

const SMALL: &[u8] = include_bytes!("data/small-1k.json");
const LARGE: &[u8] = include_bytes!("data/claude-code-120k.json");
const CHAT_RESPONSE: &[u8] = include_bytes!("../tests/golden/openai/openai_response_tools.json");

fn stream_bytes() -> Vec<u8> {
    let mut s = String::new();
    s.push_str("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"content\":[],\"usage\":{\"input_tokens\":120,\"cache_creation_input_tokens\":200,\"cache_read_input_tokens\":1000,\"output_tokens\":1}}}\n\n");
    for i in 0..40 {
        s.push_str(&format!("event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"token {i} of the answer \"}}}}\n\n"));
    }
    s.push_str("event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":40}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
    s.into_bytes()
}

/// A whole Messages answer of about 1 KB: text, a tool call and full usage.
fn message_bytes() -> Vec<u8> {
    let text = "The gateway relays this answer and reads only its usage. ".repeat(10);
    format!(
        "{{\"id\":\"msg_01XFDUDYJgAACzvnptvVoYEL\",\"type\":\"message\",\"role\":\"assistant\",\
         \"model\":\"claude-sonnet-4-5-20250929\",\"content\":[{{\"type\":\"text\",\"text\":\"{text}\"}},\
         {{\"type\":\"tool_use\",\"id\":\"toolu_01A09q90qw90lq917835lq9\",\"name\":\"Bash\",\
         \"input\":{{\"command\":\"cargo test -p tollgate-wire\",\"description\":\"Run the tests\"}}}}],\
         \"stop_reason\":\"tool_use\",\"stop_sequence\":null,\"usage\":{{\"input_tokens\":12,\
         \"cache_creation_input_tokens\":2048,\"cache_read_input_tokens\":96000,\"cache_creation\":\
         {{\"ephemeral_5m_input_tokens\":2048,\"ephemeral_1h_input_tokens\":0}},\"output_tokens\":84,\
         \"service_tier\":\"standard\"}}}}"
    )
    .into_bytes()
}

/// The 120 KB body with its conversation `copies` times over; `walked` says whether it has
/// more brackets than a depth walk starts at.
fn long_session(copies: usize, walked: bool) -> Vec<u8> {
    let mut doc: serde_json::Value = serde_json::from_slice(LARGE).expect("valid bench body");
    if let Some(messages) = doc["messages"].as_array_mut() {
        let turns = messages.clone();
        for _ in 1..copies {
            messages.extend(turns.iter().cloned());
        }
    }
    let body = serde_json::to_vec(&doc).expect("serialises");
    let brackets = body.iter().filter(|b| matches!(b, b'[' | b'{')).count();
    assert_eq!(
        brackets > tollgate_wire::anthropic::MAX_NESTING,
        walked,
        "{brackets} brackets"
    );
    body
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("classify");
    g.throughput(Throughput::Bytes(SMALL.len() as u64));
    g.bench_function("read_request 1 KB", |b| {
        b.iter(|| read_request(black_box(SMALL)))
    });
    g.throughput(Throughput::Bytes(LARGE.len() as u64));
    g.bench_function("read_request 120 KB", |b| {
        b.iter(|| read_request(black_box(LARGE)))
    });
    // Long sessions' bodies: one settled by the bracket count, one with more brackets than
    // `MAX_NESTING`, whose depth is walked before it is validated.
    for (name, copies, walked) in [
        ("read_request, a 400 KB session", 6, false),
        ("read_request, a 1.5 MB session (depth walked)", 24, true),
    ] {
        let long = long_session(copies, walked);
        g.throughput(Throughput::Bytes(long.len() as u64));
        g.bench_function(name, |b| b.iter(|| read_request(black_box(&long))));
    }
    g.throughput(Throughput::Bytes(LARGE.len() as u64));
    g.bench_function("loop breaker: repeated tool calls in 120 KB", |b| {
        b.iter(|| tollgate_wire::anthropic::most_repeated_tool_call(black_box(LARGE), 8))
    });
    g.finish();
    let message = message_bytes();
    let mut g = c.benchmark_group("response");
    g.throughput(Throughput::Bytes(message.len() as u64));
    g.bench_function("read_response, 1 KB message", |b| {
        b.iter(|| read_response(black_box(&message)))
    });
    g.finish();
    let stream = stream_bytes();
    let mut g = c.benchmark_group("stream");
    g.throughput(Throughput::Bytes(stream.len() as u64));
    g.bench_function("scan usage, 42 events in 1.4 KB chunks", |b| {
        b.iter(|| {
            let mut scanner = SseScanner::new();
            let mut watch = StreamWatch::default();
            for chunk in black_box(&stream).chunks(1400) {
                scanner.feed(chunk, |ev| watch.observe(&ev));
            }
            watch.facts.usage
        })
    });
    g.finish();
    let opts = ConvertOptions {
        target_model: "gpt-x".into(),
        ..Default::default()
    };
    let mut g = c.benchmark_group("chat");
    g.throughput(Throughput::Bytes(LARGE.len() as u64));
    g.bench_function("messages_to_chat_request 120 KB", |b| {
        b.iter(|| messages_to_chat_request(black_box(LARGE), &opts))
    });
    g.throughput(Throughput::Bytes(CHAT_RESPONSE.len() as u64));
    g.bench_function("chat_to_messages_response with tool calls", |b| {
        b.iter(|| chat_to_messages_response(black_box(CHAT_RESPONSE), "claude-x"))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
