//! Non-streaming responses: a Chat Completion as an Anthropic Message, and a Message as a Chat
//! Completion.

use bytes::Bytes;
use serde_json::{Value, json};

use super::error::ConvertError;
use super::fields::{Node, at, parse_body};
use super::mapping::{
    chat_usage, finish_reason_for, messages_usage, stop_reason_for, usage_from_chat,
    usage_from_messages,
};
use super::request::parse_arguments;
use super::types::{ChatIn, ChatResponse, FunctionCall, ResponseChoice, ResponseMessage, ToolCall};

/// The Anthropic message id for an upstream completion id.
pub(super) fn message_id_for(completion_id: &str) -> String {
    format!("msg_{completion_id}")
}

/// The completion id for an Anthropic message id.
pub(super) fn completion_id_for(message_id: &str) -> String {
    format!("chatcmpl-{message_id}")
}

pub(super) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Converts a Chat Completions response into an Anthropic Message; `model` is the model the
/// client asked for. Reasoning text becomes a `thinking` block with an empty `signature`.
pub fn chat_to_messages_response(openai_body: &[u8], model: &str) -> Result<Bytes, ConvertError> {
    let resp: ChatIn = serde_json::from_slice(openai_body)
        .map_err(|e| ConvertError::new("body", format!("not a Chat Completions response: {e}")))?;
    if let Some(err) = resp.error {
        let message = err.get("message").and_then(Value::as_str).unwrap_or("");
        return Err(ConvertError::new(
            "error",
            format!("the upstream answered with an error: {message}"),
        ));
    }
    let choice = resp
        .choices
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.index.unwrap_or(0) == 0)
        .ok_or_else(|| ConvertError::new("choices", "the response has no choice"))?;
    let message = choice
        .message
        .ok_or_else(|| ConvertError::new("choices[0].message", "is required"))?;

    // Same order as the stream converter produces for a canonical stream: thinking, text, tools.
    let mut content = Vec::new();
    let reasoning = message.reasoning();
    if !reasoning.is_empty() {
        // An empty signature, as Anthropic's own stream starts a thinking block with: the
        // Anthropic SDKs require the member and Claude Code keeps the block for its history.
        content.push(json!({"type": "thinking", "thinking": reasoning, "signature": ""}));
    }
    let text = message.text();
    if !text.is_empty() {
        content.push(json!({"type": "text", "text": text}));
    }
    let refusal = message.refusal();
    if !refusal.is_empty() {
        content.push(json!({"type": "text", "text": refusal}));
    }
    for (j, call) in message.tool_calls.unwrap_or_default().iter().enumerate() {
        let path = format!("choices[0].message.tool_calls[{j}]");
        let function = call
            .function
            .as_ref()
            .ok_or_else(|| ConvertError::new(format!("{path}.function"), "is required"))?;
        let input = parse_arguments(&function.arguments(), &format!("{path}.function.arguments"))?;
        content.push(json!({
            "type": "tool_use",
            "id": call.id.clone().unwrap_or_default(),
            "name": function.name.clone().unwrap_or_default(),
            "input": input,
        }));
    }

    let (stop_reason, stop_sequence) = stop_of(
        choice.finish_reason.as_deref(),
        !refusal.is_empty(),
        choice.stop_reason.as_ref(),
    );
    let usage = resp.usage.as_ref().map(usage_from_chat).unwrap_or_default();
    let body = json!({
        "id": message_id_for(resp.id.as_deref().unwrap_or("")),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": messages_usage(&usage),
    });
    Ok(Bytes::from(body.to_string()))
}

/// Anthropic `stop_reason` and `stop_sequence` for how a completion ended. A refusal wins; vLLM
/// names the matched stop string, which makes a plain stop a `stop_sequence` stop.
pub(super) fn stop_of(
    finish_reason: Option<&str>,
    refused: bool,
    matched: Option<&Value>,
) -> (&'static str, Option<String>) {
    if refused {
        return ("refusal", None);
    }
    match (stop_reason_for(finish_reason), matched) {
        ("end_turn", Some(Value::String(s))) => ("stop_sequence", Some(s.clone())),
        (reason, _) => (reason, None),
    }
}

/// Converts an Anthropic Message into a Chat Completion; `model` is the model the client asked
/// for. Signed thinking is kept as `thinking_blocks` (and its text as `reasoning_content`) so an
/// OpenAI-dialect client can send it back on the next turn of a tool loop.
pub fn messages_to_chat_response(
    anthropic_body: &[u8],
    model: &str,
) -> Result<Bytes, ConvertError> {
    messages_to_chat_response_at(anthropic_body, model, unix_now())
}

pub(super) fn messages_to_chat_response_at(
    anthropic_body: &[u8],
    model: &str,
    created: u64,
) -> Result<Bytes, ConvertError> {
    let root = parse_body(anthropic_body)?;
    let msg = Node::root(&root)?;
    if msg.str("type")? == Some("error") {
        return Err(ConvertError::new(
            "type",
            "the upstream answered with an error, not a message",
        ));
    }
    let mut text: Option<String> = None;
    let mut reasoning: Option<String> = None;
    let mut thinking_blocks = Vec::new();
    let mut tool_calls = Vec::new();
    for (i, b) in msg.req_array("content")?.iter().enumerate() {
        let block = Node::new(b, &at("content", i))?;
        match block.req_str("type")? {
            "text" => text
                .get_or_insert_default()
                .push_str(block.req_str("text")?),
            "thinking" => {
                let thinking = block.req_str("thinking")?;
                reasoning.get_or_insert_default().push_str(thinking);
                thinking_blocks.push(thinking_block(thinking, block.str("signature")?));
            }
            "redacted_thinking" => thinking_blocks
                .push(json!({"type": "redacted_thinking", "data": block.req_str("data")?})),
            "tool_use" => tool_calls.push(ToolCall {
                id: block.req_str("id")?.to_string(),
                kind: "function",
                function: FunctionCall {
                    name: block.req_str("name")?.to_string(),
                    arguments: block
                        .get("input")
                        .map_or_else(|| "{}".to_string(), Value::to_string),
                },
            }),
            other => {
                return Err(ConvertError::new(
                    block.path("type"),
                    format!("`{other}` blocks have no Chat Completions equivalent"),
                ));
            }
        }
    }
    let usage = msg
        .get("usage")
        .map(usage_from_messages)
        .unwrap_or_default();
    let response = ChatResponse {
        id: completion_id_for(msg.str("id")?.unwrap_or("")),
        object: "chat.completion",
        created,
        model: model.to_string(),
        choices: vec![ResponseChoice {
            index: 0,
            message: ResponseMessage {
                role: "assistant",
                content: text,
                refusal: None,
                tool_calls,
                reasoning_content: reasoning,
                thinking_blocks,
            },
            logprobs: None,
            finish_reason: finish_reason_for(msg.str("stop_reason")?),
        }],
        usage: chat_usage(&usage),
    };
    serde_json::to_vec(&response)
        .map(Bytes::from)
        .map_err(|e| ConvertError::new("body", format!("cannot serialise: {e}")))
}

/// A thinking block as OpenAI-dialect clients carry it; the signature is the upstream's own and
/// is absent when the upstream gave none (or an empty one).
pub(super) fn thinking_block(thinking: &str, signature: Option<&str>) -> Value {
    match signature.filter(|s| !s.is_empty()) {
        Some(sig) => json!({"type": "thinking", "thinking": thinking, "signature": sig}),
        None => json!({"type": "thinking", "thinking": thinking}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to_messages(body: Value) -> Value {
        let out = chat_to_messages_response(body.to_string().as_bytes(), "claude-asked")
            .unwrap_or_else(|e| panic!("{e}"));
        serde_json::from_slice(&out).unwrap()
    }

    fn to_chat(body: Value) -> Value {
        let out = messages_to_chat_response_at(body.to_string().as_bytes(), "gpt-asked", 1700)
            .unwrap_or_else(|e| panic!("{e}"));
        serde_json::from_slice(&out).unwrap()
    }

    fn completion(message: Value, finish: &str) -> Value {
        json!({"id": "chatcmpl-9", "object": "chat.completion", "created": 1, "model": "gpt-4o",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150,
                "prompt_tokens_details": {"cached_tokens": 100},
                "completion_tokens_details": {"reasoning_tokens": 12}}})
    }

    #[test]
    fn completion_becomes_a_message() {
        let out = to_messages(completion(
            json!({"role": "assistant", "content": "Let me look.", "reasoning_content": "think",
                "tool_calls": [{"id": "call_1", "type": "function",
                    "function": {"name": "Read", "arguments": "{\"path\":\"a\"}"}}]}),
            "tool_calls",
        ));
        assert_eq!(
            out,
            json!({
                "id": "msg_chatcmpl-9", "type": "message", "role": "assistant", "model": "claude-asked",
                "content": [
                    {"type": "thinking", "thinking": "think", "signature": ""},
                    {"type": "text", "text": "Let me look."},
                    {"type": "tool_use", "id": "call_1", "name": "Read", "input": {"path": "a"}}
                ],
                "stop_reason": "tool_use", "stop_sequence": null,
                "usage": {"input_tokens": 20, "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 100, "output_tokens": 30}
            })
        );
    }

    #[test]
    fn finish_reasons_and_refusals_become_stop_reasons() {
        let stop = |message: Value, finish: &str| {
            let out = to_messages(completion(message, finish));
            (out["stop_reason"].clone(), out["stop_sequence"].clone())
        };
        let text = json!({"role": "assistant", "content": "x"});
        assert_eq!(stop(text.clone(), "stop").0, "end_turn");
        assert_eq!(stop(text.clone(), "length").0, "max_tokens");
        assert_eq!(stop(text.clone(), "content_filter").0, "refusal");
        assert_eq!(
            stop(
                json!({"role": "assistant", "content": null, "refusal": "I can't"}),
                "stop"
            )
            .0,
            "refusal"
        );
        let mut body = completion(text, "stop");
        body["choices"][0]["stop_reason"] = json!("END");
        let out = to_messages(body);
        assert_eq!(
            (out["stop_reason"].clone(), out["stop_sequence"].clone()),
            (json!("stop_sequence"), json!("END"))
        );
    }

    #[test]
    fn broken_completions_are_errors() {
        let bad_args = completion(
            json!({"role": "assistant", "tool_calls": [{"id": "c", "type": "function",
                "function": {"name": "f", "arguments": "{\"a\":"}}]}),
            "tool_calls",
        );
        let e = chat_to_messages_response(bad_args.to_string().as_bytes(), "m").unwrap_err();
        assert_eq!(
            e.field,
            "choices[0].message.tool_calls[0].function.arguments"
        );
        let e = chat_to_messages_response(br#"{"choices":[]}"#, "m").unwrap_err();
        assert_eq!(e.field, "choices");
        let e = chat_to_messages_response(br#"{"error":{"message":"nope"}}"#, "m").unwrap_err();
        assert_eq!(e.field, "error");
        assert_eq!(
            chat_to_messages_response(b"[", "m").unwrap_err().field,
            "body"
        );
    }

    #[test]
    fn message_becomes_a_completion() {
        let out = to_chat(json!({
            "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-x",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "c2ln"},
                {"type": "redacted_thinking", "data": "b3Bh"},
                {"type": "text", "text": "Here "},
                {"type": "text", "text": "it is."},
                {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}}
            ],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 5, "cache_creation_input_tokens": 10, "cache_read_input_tokens": 20, "output_tokens": 8}
        }));
        assert_eq!(
            out,
            json!({
                "id": "chatcmpl-msg_01", "object": "chat.completion", "created": 1700, "model": "gpt-asked",
                "choices": [{"index": 0, "message": {
                    "role": "assistant", "content": "Here it is.", "refusal": null,
                    "tool_calls": [{"id": "toolu_1", "type": "function",
                        "function": {"name": "Bash", "arguments": "{\"command\":\"ls\"}"}}],
                    "reasoning_content": "hmm",
                    "thinking_blocks": [
                        {"type": "thinking", "thinking": "hmm", "signature": "c2ln"},
                        {"type": "redacted_thinking", "data": "b3Bh"}]
                }, "logprobs": null, "finish_reason": "tool_calls"}],
                "usage": {"prompt_tokens": 35, "completion_tokens": 8, "total_tokens": 43,
                    "prompt_tokens_details": {"cached_tokens": 20}}
            })
        );
    }

    #[test]
    fn stop_reasons_become_finish_reasons() {
        for (stop, finish) in [
            ("end_turn", "stop"),
            ("stop_sequence", "stop"),
            ("max_tokens", "length"),
            ("tool_use", "tool_calls"),
            ("refusal", "content_filter"),
        ] {
            let out = to_chat(json!({"id": "m", "content": [], "stop_reason": stop, "usage": {}}));
            assert_eq!(out["choices"][0]["finish_reason"], finish);
            assert_eq!(out["choices"][0]["message"]["content"], Value::Null);
        }
    }

    #[test]
    fn unrepresentable_blocks_and_errors_are_refused() {
        let e = messages_to_chat_response(
            br#"{"content":[{"type":"text","text":"a"},{"type":"web_search_tool_result","content":[]}]}"#,
            "m",
        )
        .unwrap_err();
        assert_eq!(e.field, "content[1].type");
        let e = messages_to_chat_response(
            br#"{"type":"error","error":{"type":"overloaded_error","message":"x"}}"#,
            "m",
        )
        .unwrap_err();
        assert_eq!(e.field, "type");
    }
}
