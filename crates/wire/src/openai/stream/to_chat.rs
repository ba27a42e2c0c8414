//! Messages events → Chat Completions chunks, for an OpenAI-dialect client of an Anthropic
//! upstream.

use bytes::Bytes;
use serde_json::{Value, json};

use super::{Converting, End, Translate};
use crate::Usage;
use crate::anthropic::StreamWatch;
use crate::openai::error::openai_error_body;
use crate::openai::mapping::{chat_usage, finish_reason_for};
use crate::openai::response::{completion_id_for, thinking_block, unix_now};
use crate::openai::types::{ChatChunk, ChunkChoice, ChunkDelta, FunctionDelta, ToolCallDelta};
use crate::sse::SseEvent;

/// Converts an Anthropic Messages SSE stream into Chat Completions chunks: the role first, then
/// content, `reasoning_content` and tool-call pieces, a chunk with `finish_reason`, a usage chunk
/// when asked for, and `data: [DONE]`.
#[derive(Debug)]
pub struct MessagesToChatStream {
    conv: Converting<MessagesToChat>,
}

#[derive(Debug)]
struct MessagesToChat {
    model: String,
    include_usage: bool,
    created: u64,
    id: String,
    watch: StreamWatch,
    started: bool,
    end: End,
    /// Open blocks by Anthropic index.
    blocks: Vec<(u64, Block)>,
    next_tool: u64,
    finish_sent: bool,
}

#[derive(Debug)]
enum Block {
    Text,
    Thinking {
        text: String,
        signature: Option<String>,
    },
    Tool {
        index: u64,
    },
    RedactedThinking,
}

impl MessagesToChatStream {
    /// A converter whose chunks carry `model` (what the client asked for); `include_usage` is the
    /// client's `stream_options.include_usage`.
    pub fn new(model: &str, include_usage: bool) -> Self {
        Self {
            conv: Converting::new(MessagesToChat {
                model: model.to_string(),
                include_usage,
                created: unix_now(),
                id: completion_id_for("unknown"),
                watch: StreamWatch::default(),
                started: false,
                end: End::Streaming,
                blocks: Vec::new(),
                next_tool: 0,
                finish_sent: false,
            }),
        }
    }

    /// Takes the next bytes of the upstream stream; returns the complete chunks they finish.
    /// `message_stop` produces the final chunks and `data: [DONE]` at once.
    pub fn feed(&mut self, chunk: &[u8]) -> Bytes {
        self.conv.feed(chunk)
    }

    /// Called once the upstream stream has ended. A complete stream has already ended with
    /// `data: [DONE]`; a cut-off one gets an error chunk and no `[DONE]`, so that the client does
    /// not take a partial answer as complete.
    pub fn finish(&mut self) -> Bytes {
        self.conv.finish("message_stop")
    }

    /// Usage reported by the upstream so far, in Anthropic's terms.
    pub fn usage(&self) -> Usage {
        self.conv.state.watch.facts.usage
    }
}

fn str_at<'v>(v: &'v Value, pointer: &str) -> Option<&'v str> {
    v.pointer(pointer).and_then(Value::as_str)
}

impl Translate for MessagesToChat {
    fn event(&mut self, ev: &SseEvent<'_>, out: &mut Vec<u8>) {
        if self.end != End::Streaming {
            return;
        }
        self.watch.observe(ev);
        if ev.name.is_empty() && ev.data.trim_ascii().is_empty() {
            return;
        }
        let data: Value = match serde_json::from_slice(&ev.data) {
            Ok(v) => v,
            Err(e) => {
                let message = format!("the upstream sent an unreadable event: {e}");
                self.error(out, "api_error", &message);
                return;
            }
        };
        let kind = if ev.name.is_empty() {
            str_at(&data, "/type").unwrap_or("")
        } else {
            ev.name
        };
        match kind {
            "message_start" => {
                if let Some(id) = str_at(&data, "/message/id") {
                    self.id = completion_id_for(id);
                }
                self.start(out);
            }
            "content_block_start" => {
                self.start(out);
                self.block_start(&data, out);
            }
            "content_block_delta" => {
                self.start(out);
                self.block_delta(&data, out);
            }
            "content_block_stop" => self.block_stop(&data, out),
            "message_delta" => {
                self.start(out);
                if let Some(stop) = str_at(&data, "/delta/stop_reason") {
                    self.send_finish(finish_reason_for(Some(stop)), out);
                }
            }
            "message_stop" => self.complete(out),
            "error" => {
                let kind = str_at(&data, "/error/type")
                    .unwrap_or("api_error")
                    .to_string();
                let message = str_at(&data, "/error/message")
                    .unwrap_or("the upstream stream failed")
                    .to_string();
                self.error(out, &kind, &message);
            }
            // `ping`, and event types added later, carry nothing a Chat Completions client reads.
            _ => {}
        }
    }

    fn error(&mut self, out: &mut Vec<u8>, kind: &str, message: &str) {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(&openai_error_body(kind, message, None));
        out.extend_from_slice(b"\n\n");
        self.end = End::Failed;
    }

    fn end(&self) -> End {
        self.end
    }
}

impl MessagesToChat {
    fn chunk(&self, out: &mut Vec<u8>, delta: ChunkDelta, finish_reason: Option<&'static str>) {
        self.write(
            out,
            &ChatChunk {
                id: &self.id,
                object: "chat.completion.chunk",
                created: self.created,
                model: &self.model,
                choices: vec![ChunkChoice {
                    index: 0,
                    delta,
                    logprobs: None,
                    finish_reason,
                }],
                usage: None,
            },
        );
    }

    fn write(&self, out: &mut Vec<u8>, chunk: &ChatChunk<'_>) {
        out.extend_from_slice(b"data: ");
        // Strings, numbers and JSON values only: serialisation cannot fail.
        if serde_json::to_writer(&mut *out, chunk).is_err() {
            out.extend_from_slice(b"{}");
        }
        out.extend_from_slice(b"\n\n");
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        self.chunk(
            out,
            ChunkDelta {
                role: Some("assistant"),
                content: Some(String::new()),
                ..ChunkDelta::default()
            },
            None,
        );
    }

    fn content(&self, out: &mut Vec<u8>, text: &str) {
        if !text.is_empty() {
            self.chunk(
                out,
                ChunkDelta {
                    content: Some(text.to_string()),
                    ..ChunkDelta::default()
                },
                None,
            );
        }
    }

    fn reasoning(&self, out: &mut Vec<u8>, text: &str) {
        if !text.is_empty() {
            self.chunk(
                out,
                ChunkDelta {
                    reasoning_content: Some(text.to_string()),
                    ..ChunkDelta::default()
                },
                None,
            );
        }
    }

    fn arguments(&self, out: &mut Vec<u8>, index: u64, piece: String) {
        if !piece.is_empty() {
            self.tool_chunk(out, index, None, None, piece);
        }
    }

    fn tool_chunk(
        &self,
        out: &mut Vec<u8>,
        index: u64,
        id: Option<String>,
        name: Option<String>,
        arguments: String,
    ) {
        let kind = id.is_some().then_some("function");
        self.chunk(
            out,
            ChunkDelta {
                tool_calls: Some(vec![ToolCallDelta {
                    index,
                    id,
                    kind,
                    function: FunctionDelta { name, arguments },
                }]),
                ..ChunkDelta::default()
            },
            None,
        );
    }

    fn thinking_blocks(&self, out: &mut Vec<u8>, block: Value) {
        self.chunk(
            out,
            ChunkDelta {
                thinking_blocks: Some(vec![block]),
                ..ChunkDelta::default()
            },
            None,
        );
    }

    fn block_start(&mut self, data: &Value, out: &mut Vec<u8>) {
        let Some(index) = data.get("index").and_then(Value::as_u64) else {
            self.error(out, "api_error", "content_block_start without an index");
            return;
        };
        let block = data.get("content_block").unwrap_or(&Value::Null);
        match str_at(block, "/type").unwrap_or("") {
            "text" => {
                self.content(out, str_at(block, "/text").unwrap_or(""));
                self.blocks.push((index, Block::Text));
            }
            "thinking" => {
                let text = str_at(block, "/thinking").unwrap_or("").to_string();
                self.reasoning(out, &text);
                let signature = str_at(block, "/signature")
                    .filter(|s| !s.is_empty())
                    .map(str::to_string);
                self.blocks
                    .push((index, Block::Thinking { text, signature }));
            }
            "redacted_thinking" => {
                let data = str_at(block, "/data").unwrap_or("");
                self.thinking_blocks(out, json!({"type": "redacted_thinking", "data": data}));
                self.blocks.push((index, Block::RedactedThinking));
            }
            "tool_use" => {
                let tool = self.next_tool;
                self.next_tool += 1;
                let id = str_at(block, "/id").unwrap_or("").to_string();
                let name = str_at(block, "/name").unwrap_or("").to_string();
                self.tool_chunk(out, tool, Some(id), Some(name), String::new());
                // Input normally streams as deltas after an empty `{}`; a complete one is sent
                // as a single piece.
                if let Some(input) = block
                    .get("input")
                    .filter(|i| i.as_object().is_some_and(|o| !o.is_empty()))
                {
                    self.arguments(out, tool, input.to_string());
                }
                self.blocks.push((index, Block::Tool { index: tool }));
            }
            other => {
                let message = format!("`{other}` blocks have no Chat Completions equivalent");
                self.error(out, "api_error", &message);
            }
        }
    }

    fn block_delta(&mut self, data: &Value, out: &mut Vec<u8>) {
        let index = data.get("index").and_then(Value::as_u64);
        let Some(pos) = self.blocks.iter().position(|(i, _)| Some(*i) == index) else {
            self.error(
                out,
                "api_error",
                "content_block_delta for a block that was not started",
            );
            return;
        };
        let delta = data.get("delta").unwrap_or(&Value::Null);
        let kind = str_at(delta, "/type").unwrap_or("");
        let piece = |key: &str| str_at(delta, key).unwrap_or("").to_string();
        match (kind, self.blocks.get_mut(pos).map(|(_, b)| b)) {
            ("text_delta", Some(Block::Text)) => self.content(out, &piece("/text")),
            ("thinking_delta", Some(Block::Thinking { text, .. })) => {
                let p = piece("/thinking");
                text.push_str(&p);
                self.reasoning(out, &p);
            }
            ("signature_delta", Some(Block::Thinking { signature, .. })) => {
                signature
                    .get_or_insert_default()
                    .push_str(&piece("/signature"));
            }
            ("input_json_delta", Some(Block::Tool { index })) => {
                let index = *index;
                self.arguments(out, index, piece("/partial_json"));
            }
            // Citations annotate text already sent; Chat Completions has no place for them.
            ("citations_delta", _) => {}
            (other, _) => {
                let message = format!("`{other}` does not fit its content block");
                self.error(out, "api_error", &message);
            }
        }
    }

    fn block_stop(&mut self, data: &Value, out: &mut Vec<u8>) {
        let index = data.get("index").and_then(Value::as_u64);
        let Some(pos) = self.blocks.iter().position(|(i, _)| Some(*i) == index) else {
            return;
        };
        let (_, block) = self.blocks.remove(pos);
        // The whole signed block goes out once it is complete, for the client to send back.
        if let Block::Thinking { text, signature } = block {
            self.thinking_blocks(out, thinking_block(&text, signature.as_deref()));
        }
    }

    fn send_finish(&mut self, reason: &'static str, out: &mut Vec<u8>) {
        if !self.finish_sent {
            self.finish_sent = true;
            self.chunk(out, ChunkDelta::default(), Some(reason));
        }
    }

    fn complete(&mut self, out: &mut Vec<u8>) {
        self.start(out);
        self.send_finish("stop", out);
        if self.include_usage {
            self.write(
                out,
                &ChatChunk {
                    id: &self.id,
                    object: "chat.completion.chunk",
                    created: self.created,
                    model: &self.model,
                    choices: Vec::new(),
                    usage: Some(chat_usage(&self.watch.facts.usage)),
                },
            );
        }
        out.extend_from_slice(b"data: [DONE]\n\n");
        self.end = End::Done;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sse::SseScanner;

    fn ev(name: &str, data: Value) -> String {
        format!("event: {name}\ndata: {data}\n\n")
    }

    fn message_start() -> String {
        ev(
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_1", "type": "message",
            "role": "assistant", "model": "claude-x", "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 10, "cache_creation_input_tokens": 5, "cache_read_input_tokens": 100, "output_tokens": 1}}}),
        )
    }

    fn block_start(index: u64, block: Value) -> String {
        ev(
            "content_block_start",
            json!({"type": "content_block_start", "index": index, "content_block": block}),
        )
    }

    fn block_delta(index: u64, delta: Value) -> String {
        ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": index, "delta": delta}),
        )
    }

    fn block_stop(index: u64) -> String {
        ev(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": index}),
        )
    }

    fn message_end(stop: &str, output: u64) -> String {
        [
            ev("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null},
                "usage": {"output_tokens": output}})),
            ev("message_stop", json!({"type": "message_stop"})),
        ]
        .concat()
    }

    /// Chat chunks as JSON values, `[DONE]` as the string "[DONE]".
    fn chunks(bytes: &[u8]) -> Vec<Value> {
        let mut scanner = SseScanner::new();
        let mut out = Vec::new();
        scanner.feed(bytes, |e| {
            assert_eq!(e.name, "", "Chat Completions streams have no event names");
            out.push(if &e.data[..] == b"[DONE]" {
                json!("[DONE]")
            } else {
                serde_json::from_slice(&e.data).unwrap()
            });
        });
        out
    }

    fn to_chat(input: &str, include_usage: bool) -> (Vec<Value>, MessagesToChatStream) {
        let mut s = MessagesToChatStream::new("gpt-asked", include_usage);
        let mut out = s.feed(input.as_bytes()).to_vec();
        out.extend_from_slice(&s.finish());
        (chunks(&out), s)
    }

    fn delta(c: &Value) -> &Value {
        &c["choices"][0]["delta"]
    }

    #[test]
    fn text_events_become_content_chunks_then_usage_and_done() {
        let input = [
            message_start(),
            ev("ping", json!({"type": "ping"})),
            block_start(0, json!({"type": "text", "text": ""})),
            block_delta(0, json!({"type": "text_delta", "text": "Hi"})),
            block_delta(0, json!({"type": "text_delta", "text": " there"})),
            block_stop(0),
            message_end("end_turn", 7),
        ]
        .concat();
        let (cs, s) = to_chat(&input, true);
        assert_eq!(cs.len(), 6, "{cs:#?}");
        let c0 = &cs[0];
        assert_eq!(c0["id"], "chatcmpl-msg_1");
        assert_eq!(c0["object"], "chat.completion.chunk");
        assert_eq!(c0["model"], "gpt-asked");
        assert!(c0["created"].as_u64().unwrap() > 1_600_000_000);
        assert_eq!(
            c0["choices"],
            json!([{"index": 0, "delta": {"role": "assistant", "content": ""},
            "logprobs": null, "finish_reason": null}])
        );
        assert_eq!(delta(&cs[1]), &json!({"content": "Hi"}));
        assert_eq!(delta(&cs[2]), &json!({"content": " there"}));
        assert_eq!(cs[3]["choices"][0]["finish_reason"], "stop");
        assert_eq!(delta(&cs[3]), &json!({}));
        assert_eq!(cs[4]["choices"], json!([]));
        assert_eq!(
            cs[4]["usage"],
            json!({"prompt_tokens": 115, "completion_tokens": 7, "total_tokens": 122,
                "prompt_tokens_details": {"cached_tokens": 100}})
        );
        assert_eq!(cs[5], "[DONE]");
        assert_eq!(s.usage().input_tokens, 10);
        assert_eq!(s.usage().output_tokens, 7);
        // Without include_usage there is no usage chunk, but the usage is still known.
        let (cs, s) = to_chat(&input, false);
        assert_eq!(cs.len(), 5);
        assert!(cs.iter().all(|c| c.get("usage").is_none()));
        assert_eq!(s.usage().cache_read_input_tokens, 100);
    }

    #[test]
    fn tool_use_events_become_tool_call_chunks() {
        let input = [
            message_start(),
            block_start(0, json!({"type": "text", "text": ""})),
            block_delta(0, json!({"type": "text_delta", "text": "Running."})),
            block_stop(0),
            block_start(
                1,
                json!({"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {}}),
            ),
            block_delta(1, json!({"type": "input_json_delta", "partial_json": ""})),
            block_delta(
                1,
                json!({"type": "input_json_delta", "partial_json": "{\"command\":"}),
            ),
            block_delta(
                1,
                json!({"type": "input_json_delta", "partial_json": "\"ls\"}"}),
            ),
            block_stop(1),
            block_start(
                2,
                json!({"type": "tool_use", "id": "toolu_2", "name": "Read", "input": {}}),
            ),
            block_delta(2, json!({"type": "input_json_delta", "partial_json": "{}"})),
            block_stop(2),
            message_end("tool_use", 30),
        ]
        .concat();
        let (cs, _) = to_chat(&input, false);
        assert_eq!(
            delta(&cs[2]),
            &json!({"tool_calls": [{"index": 0, "id": "toolu_1", "type": "function",
            "function": {"name": "Bash", "arguments": ""}}]})
        );
        assert_eq!(
            delta(&cs[3]),
            &json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"command\":"}}]})
        );
        assert_eq!(
            delta(&cs[4]),
            &json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"ls\"}"}}]})
        );
        assert_eq!(delta(&cs[5])["tool_calls"][0]["index"], 1);
        assert_eq!(delta(&cs[5])["tool_calls"][0]["id"], "toolu_2");
        assert_eq!(cs[7]["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(cs[8], "[DONE]");
    }

    #[test]
    fn thinking_becomes_reasoning_content_and_signed_thinking_blocks() {
        let input = [
            message_start(),
            block_start(
                0,
                json!({"type": "thinking", "thinking": "", "signature": ""}),
            ),
            block_delta(0, json!({"type": "thinking_delta", "thinking": "Hmm, "})),
            block_delta(0, json!({"type": "thinking_delta", "thinking": "yes."})),
            block_delta(0, json!({"type": "signature_delta", "signature": "c2ln"})),
            block_stop(0),
            block_start(1, json!({"type": "redacted_thinking", "data": "b3Bh"})),
            block_stop(1),
            message_end("end_turn", 3),
        ]
        .concat();
        let (cs, _) = to_chat(&input, false);
        assert_eq!(delta(&cs[1]), &json!({"reasoning_content": "Hmm, "}));
        assert_eq!(delta(&cs[2]), &json!({"reasoning_content": "yes."}));
        assert_eq!(
            delta(&cs[3]),
            &json!({"thinking_blocks": [
            {"type": "thinking", "thinking": "Hmm, yes.", "signature": "c2ln"}]})
        );
        assert_eq!(
            delta(&cs[4]),
            &json!({"thinking_blocks": [{"type": "redacted_thinking", "data": "b3Bh"}]})
        );
    }

    #[test]
    fn stop_reasons_become_finish_reasons_in_the_stream() {
        for (stop, finish) in [
            ("end_turn", "stop"),
            ("max_tokens", "length"),
            ("tool_use", "tool_calls"),
            ("refusal", "content_filter"),
            ("stop_sequence", "stop"),
        ] {
            let (cs, _) = to_chat(&[message_start(), message_end(stop, 1)].concat(), false);
            assert_eq!(cs[1]["choices"][0]["finish_reason"], finish);
        }
    }

    #[test]
    fn error_events_become_error_chunks_without_done() {
        let input = [
            message_start(),
            block_start(0, json!({"type": "text", "text": ""})),
            ev("error", json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})),
            block_delta(0, json!({"type": "text_delta", "text": "ignored"})),
        ]
        .concat();
        let (cs, _) = to_chat(&input, true);
        assert_eq!(cs.len(), 2);
        assert_eq!(
            cs[1],
            json!({"error": {"message": "Overloaded", "type": "overloaded_error", "param": null, "code": null}})
        );
    }

    #[test]
    fn an_early_end_gives_an_error_chunk_without_done() {
        let input = [
            message_start(),
            block_start(0, json!({"type": "text", "text": ""})),
        ]
        .concat();
        let (cs, _) = to_chat(&input, true);
        assert_eq!(cs.last().unwrap()["error"]["type"], "api_error");
        assert!(!cs.contains(&json!("[DONE]")));
    }

    #[test]
    fn unrepresentable_blocks_fail_the_stream() {
        let input = [
            message_start(),
            block_start(
                0,
                json!({"type": "server_tool_use", "id": "s", "name": "web_search", "input": {}}),
            ),
        ]
        .concat();
        let (cs, _) = to_chat(&input, true);
        assert!(
            cs[1]["error"]["message"]
                .as_str()
                .unwrap()
                .contains("server_tool_use")
        );
        let (cs, _) = to_chat(
            &[
                message_start(),
                block_delta(4, json!({"type": "text_delta", "text": "x"})),
            ]
            .concat(),
            true,
        );
        assert!(cs[1].get("error").is_some());
    }
}
