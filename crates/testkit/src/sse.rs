//! Server-sent event framing of a [`Reply`], following the Messages streaming format.

use bytes::Bytes;

use crate::message::{Block, Reply, js};

/// Largest text delta; real streams use small deltas and `big:N` must be split.
const MAX_DELTA: usize = 1000;

/// Frames one event as `event: NAME\ndata: JSON\n\n`.
pub(crate) fn event(name: &str, data: &str) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

/// Splits `s` into pieces of at most `max` bytes on char boundaries.
pub(crate) fn chunks(s: &str, max: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < s.len() {
        let mut end = (start + max.max(1)).min(s.len());
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        if end == start {
            // One char wider than `max`: take it whole rather than loop forever.
            end = start + 1;
            while !s.is_char_boundary(end) {
                end += 1;
            }
        }
        out.push(&s[start..end]);
        start = end;
    }
    out
}

/// Splits `s` into about `n` pieces, so consumers must reassemble deltas.
pub(crate) fn pieces(s: &str, n: usize) -> Vec<&str> {
    chunks(s, s.len().div_ceil(n.max(1)).max(1))
}

fn text_pieces(text: &str) -> Vec<&str> {
    if text.len() <= MAX_DELTA {
        pieces(text, 2)
    } else {
        chunks(text, MAX_DELTA)
    }
}

fn delta(index: usize, delta: &str) -> Bytes {
    event(
        "content_block_delta",
        &format!(r#"{{"type":"content_block_delta","index":{index},"delta":{delta}}}"#),
    )
}

pub(crate) fn text_delta(index: usize, text: &str) -> Bytes {
    delta(
        index,
        &format!(r#"{{"type":"text_delta","text":{}}}"#, js(text)),
    )
}

pub(crate) fn message_start(reply: &Reply) -> Bytes {
    event(
        "message_start",
        &format!(
            r#"{{"type":"message_start","message":{}}}"#,
            reply.message_object("", None, 1)
        ),
    )
}

pub(crate) fn ping() -> Bytes {
    event("ping", r#"{"type":"ping"}"#)
}

fn block_start(index: usize, block: &str) -> Bytes {
    event(
        "content_block_start",
        &format!(r#"{{"type":"content_block_start","index":{index},"content_block":{block}}}"#),
    )
}

pub(crate) fn block_stop(index: usize) -> Bytes {
    event(
        "content_block_stop",
        &format!(r#"{{"type":"content_block_stop","index":{index}}}"#),
    )
}

pub(crate) fn text_start(index: usize) -> Bytes {
    block_start(index, r#"{"type":"text","text":""}"#)
}

fn block_events(index: usize, block: &Block, out: &mut Vec<Bytes>) {
    match block {
        Block::Text(text) => {
            out.push(text_start(index));
            out.extend(text_pieces(text).into_iter().map(|p| text_delta(index, p)));
        }
        Block::Thinking {
            thinking,
            signature,
        } => {
            out.push(block_start(
                index,
                r#"{"type":"thinking","thinking":"","signature":""}"#,
            ));
            for piece in text_pieces(thinking) {
                out.push(delta(
                    index,
                    &format!(r#"{{"type":"thinking_delta","thinking":{}}}"#, js(piece)),
                ));
            }
            out.push(delta(
                index,
                &format!(
                    r#"{{"type":"signature_delta","signature":{}}}"#,
                    js(signature)
                ),
            ));
        }
        Block::ToolUse { id, name, input } => {
            out.push(block_start(
                index,
                &format!(
                    r#"{{"type":"tool_use","id":{},"name":{},"input":{{}}}}"#,
                    js(id),
                    js(name)
                ),
            ));
            for piece in pieces(input, 3) {
                out.push(delta(
                    index,
                    &format!(
                        r#"{{"type":"input_json_delta","partial_json":{}}}"#,
                        js(piece)
                    ),
                ));
            }
        }
    }
    out.push(block_stop(index));
}

/// The complete stream of a reply; `mystery` adds an event type no client knows.
pub(crate) fn stream(reply: &Reply, mystery: bool) -> Vec<Bytes> {
    let mut out = vec![message_start(reply), ping()];
    if mystery {
        out.push(event(
            "mystery_event",
            r#"{"type":"mystery_event","foo":1}"#,
        ));
    }
    for (index, block) in reply.blocks.iter().enumerate() {
        block_events(index, block, &mut out);
    }
    out.extend(message_end(reply));
    out
}

/// `message_delta` and `message_stop`, which close every complete stream.
pub(crate) fn message_end(reply: &Reply) -> [Bytes; 2] {
    [
        event(
            "message_delta",
            &format!(
                r#"{{"type":"message_delta","delta":{{"stop_reason":{},"stop_sequence":null}},"usage":{{"output_tokens":{}}}}}"#,
                js(reply.stop_reason),
                reply.usage.output
            ),
        ),
        event("message_stop", r#"{"type":"message_stop"}"#),
    ]
}

/// The start of a stream that is then cut: `message_start`, a text block start and one delta.
pub(crate) fn interrupted_prefix(reply: &Reply, text: &str) -> Vec<Bytes> {
    vec![message_start(reply), text_start(0), text_delta(0, text)]
}

/// An in-stream `error` event.
pub(crate) fn error_event(kind: &str, message: &str) -> Bytes {
    event(
        "error",
        &format!(
            r#"{{"type":"error","error":{{"type":{},"message":{}}}}}"#,
            js(kind),
            js(message)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_respect_char_boundaries_and_limits() {
        let s = "aé€😀b".repeat(50);
        for max in 1..9 {
            let parts = chunks(&s, max);
            assert_eq!(parts.concat(), s);
            assert!(parts.iter().all(|p| p.len() <= max.max(4)));
        }
        assert!(chunks("", 5).is_empty());
    }

    #[test]
    fn pieces_split_short_json() {
        assert_eq!(pieces("{}", 3), vec!["{", "}"]);
        assert!(pieces(r#"{"location":"Paris"}"#, 3).len() >= 2);
    }
}
