//! Chat Completions chunks → Messages events, for an Anthropic-dialect client of an
//! OpenAI-compatible upstream.

use bytes::Bytes;
use serde_json::{Value, json};

use super::{Converting, End, Translate};
use crate::Usage;
use crate::anthropic::error_event;
use crate::openai::error::anthropic_error_kind;
use crate::openai::mapping::{messages_usage, usage_from_chat};
use crate::openai::response::stop_of;
use crate::openai::types::{ChatIn, ChoiceIn, ToolCallIn};
use crate::sse::SseEvent;

/// Converts an OpenAI-compatible SSE stream into an Anthropic Messages SSE stream: `message_start`
/// on the first chunk, one content block per text run, reasoning run and tool call, then
/// `message_delta` (stop reason and usage) and `message_stop` when the upstream sends `[DONE]`.
#[derive(Debug)]
pub struct ChatToMessagesStream {
    conv: Converting<ChatToMessages>,
}

#[derive(Debug)]
struct ChatToMessages {
    model: String,
    message_id: String,
    started: bool,
    end: End,
    next_block: u64,
    open: Option<Open>,
    tools: Vec<ToolSlot>,
    finish_reason: Option<String>,
    matched_stop: Option<Value>,
    refused: bool,
    usage: Usage,
}

/// The one block that is open: Anthropic streams never interleave blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text(u64),
    Thinking(u64),
    /// Position in `tools`, and the block index.
    Tool(usize, u64),
}

/// One tool call of the upstream, from its first delta on.
#[derive(Debug)]
struct ToolSlot {
    index: u64,
    id: Option<String>,
    name: Option<String>,
    /// Argument text that arrived before the name, when the block cannot start yet.
    held: String,
    started: bool,
}

impl ChatToMessagesStream {
    /// A converter whose Anthropic messages carry `model` (what the client asked for) and
    /// `message_id`.
    pub fn new(model: &str, message_id: &str) -> Self {
        Self {
            conv: Converting::new(ChatToMessages {
                model: model.to_string(),
                message_id: message_id.to_string(),
                started: false,
                end: End::Streaming,
                next_block: 0,
                open: None,
                tools: Vec::new(),
                finish_reason: None,
                matched_stop: None,
                refused: false,
                usage: Usage::default(),
            }),
        }
    }

    /// Takes the next bytes of the upstream stream; returns the complete Anthropic events they
    /// finish (possibly none).
    pub fn feed(&mut self, chunk: &[u8]) -> Bytes {
        self.conv.feed(chunk)
    }

    /// Called once the upstream stream has ended. After `[DONE]` the message is already complete
    /// and nothing is added; otherwise open blocks are closed and an `event: error` follows, so
    /// that the client retries instead of taking a cut-off answer as final.
    pub fn finish(&mut self) -> Bytes {
        self.conv.finish("[DONE]")
    }

    /// Usage reported by the upstream so far (its final chunk, with `include_usage`).
    pub fn usage(&self) -> Usage {
        self.conv.state.usage
    }
}

fn push_event(out: &mut Vec<u8>, name: &str, data: &Value) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    out.extend_from_slice(data.to_string().as_bytes());
    out.extend_from_slice(b"\n\n");
}

impl Translate for ChatToMessages {
    fn event(&mut self, ev: &SseEvent<'_>, out: &mut Vec<u8>) {
        if self.end != End::Streaming {
            return;
        }
        let data = ev.data.trim_ascii();
        if data == b"[DONE]" {
            self.complete(out);
            return;
        }
        if data.is_empty() {
            return;
        }
        let chunk: ChatIn = match serde_json::from_slice(data) {
            Ok(c) => c,
            Err(e) => {
                let message = format!("the upstream sent an unreadable chunk: {e}");
                self.error(out, "api_error", &message);
                return;
            }
        };
        if let Some(err) = chunk.error.as_ref() {
            let message = err
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("the upstream stream failed");
            self.error(out, anthropic_error_kind(err), message);
            return;
        }
        if ev.name == "error" {
            self.error(out, "api_error", &String::from_utf8_lossy(data));
            return;
        }
        self.start(out);
        if let Some(u) = chunk.usage.as_ref().filter(|u| u.is_object()) {
            // Some servers repeat a running total on every chunk; the last one is final.
            self.usage = usage_from_chat(u);
        }
        for choice in chunk.choices.unwrap_or_default() {
            // Only one choice is ever requested for an Anthropic client.
            if choice.index.unwrap_or(0) == 0 {
                self.on_choice(choice, out);
            }
            if self.end != End::Streaming {
                return;
            }
        }
    }

    fn error(&mut self, out: &mut Vec<u8>, kind: &str, message: &str) {
        self.close_open(out);
        out.extend_from_slice(&error_event(kind, message));
        self.end = End::Failed;
    }

    fn end(&self) -> End {
        self.end
    }
}

impl ChatToMessages {
    fn start(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        // Input tokens are not known before the final chunk; `message_delta` carries them.
        push_event(
            out,
            "message_start",
            &json!({"type": "message_start", "message": {
                "id": self.message_id, "type": "message", "role": "assistant", "model": self.model,
                "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": 0, "output_tokens": 0}
            }}),
        );
    }

    fn on_choice(&mut self, choice: ChoiceIn, out: &mut Vec<u8>) {
        if let Some(delta) = choice.delta {
            let reasoning = delta.reasoning();
            if !reasoning.is_empty() {
                self.thinking(&reasoning, out);
            }
            let text = delta.text();
            if !text.is_empty() {
                self.text(&text, out);
            }
            let refusal = delta.refusal();
            if !refusal.is_empty() {
                self.refused = true;
                self.text(&refusal, out);
            }
            for (pos, call) in delta.tool_calls.unwrap_or_default().into_iter().enumerate() {
                self.tool_delta(pos, call, out);
                if self.end != End::Streaming {
                    return;
                }
            }
        }
        if let Some(reason) = choice.finish_reason {
            self.finish_reason = Some(reason);
            self.close_open(out);
        }
        if choice.stop_reason.is_some() {
            self.matched_stop = choice.stop_reason;
        }
    }

    fn next_block(&mut self) -> u64 {
        let i = self.next_block;
        self.next_block += 1;
        i
    }

    fn close_open(&mut self, out: &mut Vec<u8>) {
        let index = match self.open.take() {
            Some(Open::Text(i) | Open::Thinking(i) | Open::Tool(_, i)) => i,
            None => return,
        };
        push_event(
            out,
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": index}),
        );
    }

    fn text(&mut self, text: &str, out: &mut Vec<u8>) {
        let index = match self.open {
            Some(Open::Text(i)) => i,
            _ => {
                self.close_open(out);
                let i = self.next_block();
                push_event(
                    out,
                    "content_block_start",
                    &json!({"type": "content_block_start", "index": i,
                        "content_block": {"type": "text", "text": ""}}),
                );
                self.open = Some(Open::Text(i));
                i
            }
        };
        push_event(
            out,
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": index,
                "delta": {"type": "text_delta", "text": text}}),
        );
    }

    fn thinking(&mut self, text: &str, out: &mut Vec<u8>) {
        let index = match self.open {
            Some(Open::Thinking(i)) => i,
            _ => {
                self.close_open(out);
                let i = self.next_block();
                // The empty signature Anthropic's own streams start with; no `signature_delta`
                // follows, since only Anthropic can sign thinking and none is ever made up.
                push_event(
                    out,
                    "content_block_start",
                    &json!({"type": "content_block_start", "index": i,
                        "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
                );
                self.open = Some(Open::Thinking(i));
                i
            }
        };
        push_event(
            out,
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": index,
                "delta": {"type": "thinking_delta", "thinking": text}}),
        );
    }

    fn tool_delta(&mut self, pos: usize, call: ToolCallIn, out: &mut Vec<u8>) {
        // Servers that omit `index` send each call whole, in array order.
        let index = call.index.unwrap_or(pos as u64);
        let id = call.id.filter(|s| !s.is_empty());
        let (name, args) = match &call.function {
            Some(f) => (f.name.clone().filter(|s| !s.is_empty()), f.arguments()),
            None => (None, String::new()),
        };
        // A new id at a known index is a new call: Ollama numbers every parallel call 0.
        let found = self.tools.iter().rposition(|t| {
            t.index == index
                && match (&id, &t.id) {
                    (None, _) => true,
                    (Some(new), Some(old)) => new == old,
                    (Some(_), None) => !t.started,
                }
        });
        let slot = match found {
            Some(s) => s,
            None => {
                self.tools.push(ToolSlot {
                    index,
                    id: None,
                    name: None,
                    held: String::new(),
                    started: false,
                });
                self.tools.len() - 1
            }
        };
        let Some(tool) = self.tools.get_mut(slot) else {
            return;
        };
        if tool.id.is_none() {
            tool.id = id;
        }
        if tool.name.is_none() {
            tool.name = name;
        }
        if !tool.started {
            tool.held.push_str(&args);
            if tool.name.is_some() {
                self.start_tool(slot, out);
            }
            return;
        }
        if args.is_empty() {
            return;
        }
        match self.open {
            Some(Open::Tool(s, block)) if s == slot => push_event(
                out,
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": block,
                    "delta": {"type": "input_json_delta", "partial_json": args}}),
            ),
            _ => self.error(
                out,
                "api_error",
                "the upstream interleaved the arguments of parallel tool calls, which a Messages stream cannot carry",
            ),
        }
    }

    fn start_tool(&mut self, slot: usize, out: &mut Vec<u8>) {
        self.close_open(out);
        let block = self.next_block();
        let message_id = self.message_id.clone();
        let Some(tool) = self.tools.get_mut(slot) else {
            return;
        };
        tool.started = true;
        // Ids only pair calls with results; a server that sends none still needs a stable one.
        let id = tool
            .id
            .get_or_insert_with(|| format!("toolu_{message_id}_{slot}"))
            .clone();
        let name = tool.name.clone().unwrap_or_default();
        let held = std::mem::take(&mut tool.held);
        push_event(
            out,
            "content_block_start",
            &json!({"type": "content_block_start", "index": block,
                "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}}}),
        );
        if !held.is_empty() {
            push_event(
                out,
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": block,
                    "delta": {"type": "input_json_delta", "partial_json": held}}),
            );
        }
        self.open = Some(Open::Tool(slot, block));
    }

    fn complete(&mut self, out: &mut Vec<u8>) {
        self.start(out);
        self.close_open(out);
        if self.tools.iter().any(|t| !t.started) {
            self.error(
                out,
                "api_error",
                "the upstream sent a tool call without a name",
            );
            return;
        }
        let (stop_reason, stop_sequence) = stop_of(
            self.finish_reason.as_deref(),
            self.refused,
            self.matched_stop.as_ref(),
        );
        push_event(
            out,
            "message_delta",
            &json!({"type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
                "usage": messages_usage(&self.usage)}),
        );
        push_event(out, "message_stop", &json!({"type": "message_stop"}));
        self.end = End::Done;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sse::SseScanner;

    fn data(v: Value) -> String {
        format!("data: {v}\n\n")
    }

    fn chunk(delta: Value) -> String {
        data(
            json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt",
            "choices": [{"index": 0, "delta": delta, "finish_reason": null}]}),
        )
    }

    fn finish_chunk(reason: &str) -> String {
        data(
            json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt",
            "choices": [{"index": 0, "delta": {}, "finish_reason": reason}]}),
        )
    }

    fn usage_chunk(prompt: u64, cached: u64, completion: u64) -> String {
        data(
            json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt",
            "choices": [], "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                "total_tokens": prompt + completion, "prompt_tokens_details": {"cached_tokens": cached}}}),
        )
    }

    fn tool(index: u64, id: Option<&str>, name: Option<&str>, args: &str) -> String {
        let mut call = json!({"index": index, "function": {"arguments": args}});
        if let Some(id) = id {
            call["id"] = json!(id);
            call["type"] = json!("function");
        }
        if let Some(name) = name {
            call["function"]["name"] = json!(name);
        }
        chunk(json!({"tool_calls": [call]}))
    }

    /// Anthropic events as (name, data) pairs.
    fn events(bytes: &[u8]) -> Vec<(String, Value)> {
        let mut scanner = SseScanner::new();
        let mut out = Vec::new();
        scanner.feed(bytes, |e| {
            out.push((e.name.to_string(), serde_json::from_slice(&e.data).unwrap()));
        });
        out
    }

    fn names(evs: &[(String, Value)]) -> Vec<&str> {
        evs.iter().map(|(n, _)| n.as_str()).collect()
    }

    fn to_messages(input: &str) -> (Vec<(String, Value)>, ChatToMessagesStream) {
        let mut s = ChatToMessagesStream::new("claude-asked", "msg_1");
        let mut out = s.feed(input.as_bytes()).to_vec();
        out.extend_from_slice(&s.finish());
        (events(&out), s)
    }

    #[test]
    fn text_chunks_become_one_text_block() {
        let input = [
            chunk(json!({"role": "assistant", "content": ""})),
            chunk(json!({"content": "Hel"})),
            chunk(json!({"content": "lo"})),
            finish_chunk("stop"),
            usage_chunk(100, 80, 5),
            "data: [DONE]\n\n".to_string(),
        ]
        .concat();
        let mut s = ChatToMessagesStream::new("claude-asked", "msg_1");
        let first = s.feed(chunk(json!({"role": "assistant", "content": ""})).as_bytes());
        assert!(
            first.starts_with(b"event: message_start\ndata: {"),
            "{first:?}"
        );
        assert!(first.ends_with(b"}\n\n"));
        let (evs, s) = to_messages(&input);
        assert_eq!(
            names(&evs),
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert_eq!(
            evs[0].1,
            json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
                "model": "claude-asked", "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": 0, "output_tokens": 0}}})
        );
        assert_eq!(
            evs[1].1["content_block"],
            json!({"type": "text", "text": ""})
        );
        assert_eq!(
            evs[3].1["delta"],
            json!({"type": "text_delta", "text": "lo"})
        );
        assert_eq!(
            evs[5].1,
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                "usage": {"input_tokens": 20, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 80, "output_tokens": 5}})
        );
        assert_eq!(s.usage().cache_read_input_tokens, 80);
        assert_eq!(s.usage().output_tokens, 5);
    }

    #[test]
    fn tool_calls_after_text_become_sequential_tool_use_blocks() {
        let input = [
            chunk(json!({"role": "assistant", "content": "Checking."})),
            tool(0, Some("call_a"), Some("Read"), ""),
            tool(0, None, None, "{\"pa"),
            tool(0, None, None, "th\":\"a\"}"),
            tool(1, Some("call_b"), Some("Bash"), "{\"command\":"),
            tool(1, None, None, "\"ls\"}"),
            finish_chunk("tool_calls"),
            "data: [DONE]\n\n".to_string(),
        ]
        .concat();
        let (evs, _) = to_messages(&input);
        let seq: Vec<(String, Value)> = evs
            .iter()
            .map(|(n, d)| (n.clone(), d.get("index").cloned().unwrap_or(Value::Null)))
            .collect();
        assert_eq!(
            seq,
            vec![
                ("message_start".into(), Value::Null),
                ("content_block_start".into(), json!(0)),
                ("content_block_delta".into(), json!(0)),
                ("content_block_stop".into(), json!(0)),
                ("content_block_start".into(), json!(1)),
                ("content_block_delta".into(), json!(1)),
                ("content_block_delta".into(), json!(1)),
                ("content_block_stop".into(), json!(1)),
                ("content_block_start".into(), json!(2)),
                ("content_block_delta".into(), json!(2)),
                ("content_block_delta".into(), json!(2)),
                ("content_block_stop".into(), json!(2)),
                ("message_delta".into(), Value::Null),
                ("message_stop".into(), Value::Null),
            ]
        );
        assert_eq!(
            evs[4].1["content_block"],
            json!({"type": "tool_use", "id": "call_a", "name": "Read", "input": {}})
        );
        assert_eq!(
            evs[5].1["delta"],
            json!({"type": "input_json_delta", "partial_json": "{\"pa"})
        );
        assert_eq!(evs[12].1["delta"]["stop_reason"], "tool_use");
    }

    #[test]
    fn text_after_a_tool_call_opens_a_new_block() {
        let input = [
            tool(0, Some("c"), Some("f"), "{}"),
            chunk(json!({"content": "after"})),
            finish_chunk("stop"),
            "data: [DONE]\n\n".to_string(),
        ]
        .concat();
        let (evs, _) = to_messages(&input);
        assert_eq!(
            names(&evs),
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert_eq!(evs[4].1["content_block"]["type"], "text");
    }

    #[test]
    fn reasoning_becomes_thinking_without_a_signature() {
        let input = [
            chunk(json!({"role": "assistant", "reasoning_content": "Let me "})),
            chunk(json!({"reasoning_content": "think."})),
            chunk(json!({"content": "Done.", "reasoning_content": null})),
            finish_chunk("stop"),
            "data: [DONE]\n\n".to_string(),
        ]
        .concat();
        let (evs, _) = to_messages(&input);
        assert_eq!(
            evs[1].1["content_block"],
            json!({"type": "thinking", "thinking": "", "signature": ""})
        );
        assert_eq!(
            evs[2].1["delta"],
            json!({"type": "thinking_delta", "thinking": "Let me "})
        );
        assert_eq!(evs[4].0, "content_block_stop");
        assert_eq!(evs[5].1["content_block"]["type"], "text");
        // Nothing is signed: no `signature_delta` is ever made up.
        assert!(
            evs.iter()
                .all(|(_, d)| d["delta"]["type"] != "signature_delta")
        );
        // vLLM's newer name for the same thing.
        let (evs, _) =
            to_messages(&[chunk(json!({"reasoning": "r"})), "data: [DONE]\n\n".into()].concat());
        assert_eq!(evs[2].1["delta"]["thinking"], "r");
    }

    #[test]
    fn finish_reasons_become_stop_reasons() {
        for (finish, stop) in [
            ("stop", "end_turn"),
            ("length", "max_tokens"),
            ("tool_calls", "tool_use"),
            ("content_filter", "refusal"),
        ] {
            let input = [
                chunk(json!({"content": "x"})),
                finish_chunk(finish),
                "data: [DONE]\n\n".into(),
            ]
            .concat();
            let (evs, _) = to_messages(&input);
            let delta = evs.iter().find(|(n, _)| n == "message_delta").unwrap();
            assert_eq!(delta.1["delta"]["stop_reason"], stop, "{finish}");
        }
        // A streamed refusal is text with stop reason `refusal`.
        let input = [
            chunk(json!({"refusal": "No."})),
            finish_chunk("stop"),
            "data: [DONE]\n\n".into(),
        ]
        .concat();
        let (evs, _) = to_messages(&input);
        assert_eq!(evs[2].1["delta"]["text"], "No.");
        assert_eq!(evs[4].1["delta"]["stop_reason"], "refusal");
    }

    #[test]
    fn a_stream_without_done_ends_with_an_error_event() {
        let mut s = ChatToMessagesStream::new("m", "msg_1");
        let evs = events(&s.feed(chunk(json!({"content": "partial"})).as_bytes()));
        assert_eq!(
            names(&evs),
            [
                "message_start",
                "content_block_start",
                "content_block_delta"
            ]
        );
        let tail = events(&s.finish());
        assert_eq!(names(&tail), ["content_block_stop", "error"]);
        assert_eq!(tail[1].1["error"]["type"], "api_error");
        assert!(s.finish().is_empty(), "finish is idempotent");
        assert!(
            s.feed(b"data: [DONE]\n\n").is_empty(),
            "nothing after the end"
        );
        // Even an empty stream is an error, never a clean end.
        let mut s = ChatToMessagesStream::new("m", "msg_1");
        assert_eq!(names(&events(&s.finish())), ["error"]);
    }

    #[test]
    fn an_unterminated_done_still_completes() {
        let mut s = ChatToMessagesStream::new("m", "msg_1");
        let mut out = s
            .feed(
                [chunk(json!({"content": "x"})), "data: [DONE]".into()]
                    .concat()
                    .as_bytes(),
            )
            .to_vec();
        out.extend_from_slice(&s.finish());
        assert_eq!(names(&events(&out)).last(), Some(&"message_stop"));
    }

    #[test]
    fn upstream_errors_become_error_events() {
        let input = [
            chunk(json!({"content": "x"})),
            data(json!({"error": {"message": "Rate limit reached", "type": "tokens", "code": "rate_limit_exceeded"}})),
        ]
        .concat();
        let (evs, _) = to_messages(&input);
        assert_eq!(
            names(&evs),
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "error"
            ]
        );
        assert_eq!(
            evs[4].1,
            json!({"type": "error", "error": {"type": "rate_limit_error", "message": "Rate limit reached"}})
        );
        let (evs, _) = to_messages("data: {not json\n\n");
        assert_eq!(names(&evs), ["error"]);
    }

    #[test]
    fn interleaved_tool_arguments_end_the_stream_with_an_error() {
        let input = [
            tool(0, Some("a"), Some("f"), "{\"x\":"),
            tool(1, Some("b"), Some("g"), "{}"),
            tool(0, None, None, "1}"),
        ]
        .concat();
        let (evs, _) = to_messages(&input);
        assert_eq!(names(&evs).last(), Some(&"error"));
        // Empty pieces for a closed call are harmless.
        let input = [
            tool(0, Some("a"), Some("f"), "{}"),
            tool(1, Some("b"), Some("g"), "{}"),
            tool(0, None, None, ""),
            finish_chunk("tool_calls"),
            "data: [DONE]\n\n".into(),
        ]
        .concat();
        assert_eq!(names(&to_messages(&input).0).last(), Some(&"message_stop"));
    }

    #[test]
    fn reused_index_with_a_new_id_is_a_new_call() {
        let input = [
            tool(0, Some("a"), Some("f"), "{\"n\":1}"),
            tool(0, Some("b"), Some("f"), "{\"n\":2}"),
            finish_chunk("tool_calls"),
            "data: [DONE]\n\n".into(),
        ]
        .concat();
        let (evs, _) = to_messages(&input);
        let starts: Vec<&Value> = evs
            .iter()
            .filter(|(n, _)| n == "content_block_start")
            .map(|(_, d)| &d["content_block"]["id"])
            .collect();
        assert_eq!(starts, [&json!("a"), &json!("b")]);
    }

    #[test]
    fn arguments_before_the_name_are_held_until_the_block_can_start() {
        let input = [
            tool(0, Some("a"), None, "{\"q\":"),
            tool(0, None, Some("search"), "1}"),
            finish_chunk("tool_calls"),
            "data: [DONE]\n\n".into(),
        ]
        .concat();
        let (evs, _) = to_messages(&input);
        assert_eq!(evs[1].1["content_block"]["name"], "search");
        // What was held goes out with the piece that completed the start.
        assert_eq!(evs[2].1["delta"]["partial_json"], "{\"q\":1}");
        assert_eq!(evs[3].0, "content_block_stop");
        // A call that never gets a name cannot become a tool_use block.
        let input = [tool(0, Some("a"), None, "{}"), "data: [DONE]\n\n".into()].concat();
        assert_eq!(names(&to_messages(&input).0).last(), Some(&"error"));
    }

    #[test]
    fn output_is_the_same_however_the_input_is_split() {
        let input = [
            chunk(json!({"role": "assistant", "content": "héllo "})),
            tool(0, Some("a"), Some("f"), "{\"k\":\"v\"}"),
            finish_chunk("tool_calls"),
            usage_chunk(10, 0, 3),
            "data: [DONE]\n\n".into(),
        ]
        .concat();
        let whole = {
            let mut s = ChatToMessagesStream::new("m", "msg_1");
            let mut out = s.feed(input.as_bytes()).to_vec();
            out.extend_from_slice(&s.finish());
            out
        };
        let bytes = input.as_bytes();
        for cut in 0..bytes.len() {
            let mut s = ChatToMessagesStream::new("m", "msg_1");
            let mut out = s.feed(&bytes[..cut]).to_vec();
            out.extend_from_slice(&s.feed(&bytes[cut..]));
            out.extend_from_slice(&s.finish());
            assert_eq!(out, whole, "cut at {cut}");
        }
    }
}
