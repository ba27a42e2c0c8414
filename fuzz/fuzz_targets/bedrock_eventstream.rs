//! The Bedrock event-stream decoder on arbitrary bytes: never panics, decodes the same events
//! and fails the same way however the stream is cut; what it decodes goes through the chunk
//! handling, and Anthropic SSE re-framed for Bedrock clients always decodes cleanly.
//!
//! Random bytes almost never pass the prelude CRC, so the first input byte also picks a
//! structure-aware mode that wraps fuzzed headers or payloads in frames with valid lengths and
//! CRCs, reaching the header, base64 and JSON handling behind them.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_wire::bedrock::{
    BedrockEvent, BedrockStreamWatch, EventStreamDecoder, EventStreamError, SseToEventStream,
    chunk_to_sse, strip_invocation_metrics,
};

fn decode(chunks: &[&[u8]]) -> (Vec<BedrockEvent>, Result<(), EventStreamError>) {
    let mut decoder = EventStreamDecoder::new();
    let mut events = Vec::new();
    for chunk in chunks {
        if let Ok(more) = decoder.feed(chunk) {
            events.extend(more);
        }
    }
    let end = decoder.finish();
    (events, end)
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A frame with valid lengths and CRCs around raw header bytes and a payload.
fn frame(headers: &[u8], payload: &[u8]) -> Vec<u8> {
    let total = (16 + headers.len() + payload.len()) as u32;
    let mut out = Vec::with_capacity(total as usize);
    out.extend_from_slice(&total.to_be_bytes());
    out.extend_from_slice(&(headers.len() as u32).to_be_bytes());
    let crc = crc32(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out.extend_from_slice(headers);
    out.extend_from_slice(payload);
    let crc = crc32(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

fn string_headers(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in pairs {
        out.push(name.len() as u8);
        out.extend_from_slice(name.as_bytes());
        out.push(7);
        out.extend_from_slice(&(value.len() as u16).to_be_bytes());
        out.extend_from_slice(value.as_bytes());
    }
    out
}

fuzz_target!(|input: &[u8]| {
    let [mode, seed, data @ ..] = input else {
        return;
    };
    let split = usize::from(*seed) * data.len() / 255;
    let stream = match mode % 4 {
        0 => data.to_vec(),
        1 => frame(&data[..split], &data[split..]),
        2 => frame(
            &string_headers(&[(":event-type", "chunk"), (":message-type", "event")]),
            data,
        ),
        _ => {
            let mut s = frame(
                &string_headers(&[(":event-type", "chunk"), (":message-type", "event")]),
                &data[..split],
            );
            s.extend(frame(
                &string_headers(&[
                    (":exception-type", "throttlingException"),
                    (":message-type", "exception"),
                ]),
                &data[split..],
            ));
            s
        }
    };

    let cut = usize::from(*seed) * stream.len() / 255;
    let (a, b) = stream.split_at(cut);
    let whole = decode(&[&stream]);
    let split = decode(&[a, b]);
    assert_eq!(split.0, whole.0, "events differ with a cut at {cut}");
    assert_eq!(
        split.1.is_ok(),
        whole.1.is_ok(),
        "outcome differs with a cut at {cut}"
    );

    let mut watch = BedrockStreamWatch::new();
    for event in &whole.0 {
        watch.observe(event);
        if let BedrockEvent::Chunk(json) = event {
            let _ = chunk_to_sse(json);
            let _ = strip_invocation_metrics(json);
        }
    }
    let _ = watch.facts();

    // The same bytes read as Anthropic SSE and re-framed must be a valid event stream.
    let frames = SseToEventStream::new().feed(data);
    let (_, end) = decode(&[&frames]);
    assert!(end.is_ok(), "re-framed SSE does not decode: {end:?}");
});
