//! Picks the scripted behaviour for a request and builds the assistant turn it calls for.

use std::time::Duration;

use base64::Engine as _;
use http::HeaderMap;
use serde_json::Value;

use crate::error::ApiError;
use crate::message::{Block, Reply, Usage};

/// The reply text of the `text` scenario when no `[[say:…]]` tag is given.
pub(crate) const DEFAULT_TEXT: &str = "Hello from the scripted upstream.";

/// Largest `big:N` reply, so a typo cannot exhaust the test machine's memory.
const MAX_BIG: usize = 256 * 1024 * 1024;

const SCENARIO_TAG: &str = "[[scenario:";
const SAY_TAG: &str = "[[say:";

/// What the upstream does for one `/v1/messages` request.
pub(crate) enum Action {
    /// A normal turn; `pace` sleeps between events (and before a non-stream answer); `linger`
    /// keeps a stream's body open that long after `message_stop` before ending it.
    Reply {
        reply: Reply,
        pace: Option<Duration>,
        linger: Option<Duration>,
        mystery: bool,
    },
    /// A scripted HTTP error.
    Fail(ApiError),
    /// A stream cut without a chunk terminator; without streaming, a connection closed unanswered.
    Broken(Reply),
    /// A stream that reports `overloaded_error` as an in-stream `error` event.
    MidstreamError(Reply),
}

/// What a scenario needs to know about the request.
pub(crate) struct Request<'a> {
    pub body: &'a Value,
    pub headers: &'a HeaderMap,
    /// Per-upstream request number; makes ids and thinking text unique.
    pub n: u64,
    pub usage: Usage,
}

fn messages(body: &Value) -> &[Value] {
    body.get("messages")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn role(message: &Value) -> &str {
    message.get("role").and_then(Value::as_str).unwrap_or("")
}

/// The typed text of a message: a string content, or every `text` block of an array content.
fn texts(message: &Value) -> Vec<&str> {
    match message.get("content") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(blocks)) => blocks
            .iter()
            .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect(),
        _ => Vec::new(),
    }
}

fn find_tag<'a>(text: &'a str, tag: &str) -> Option<&'a str> {
    let start = text.find(tag)? + tag.len();
    let len = text[start..].find("]]")?;
    Some(&text[start..start + len])
}

/// The scenario name: the `x-mock-scenario` header, else the first `[[scenario:NAME]]` tag in the
/// first user message, else `text`.
///
/// A subagent's request carries its own conversation, whose first user message is the Agent
/// tool's prompt, so `x-claude-code-agent-id` requests need no special case.
pub(crate) fn scenario_name(headers: &HeaderMap, body: &Value) -> String {
    if let Some(value) = headers.get("x-mock-scenario") {
        return String::from_utf8_lossy(value.as_bytes()).trim().to_owned();
    }
    messages(body)
        .iter()
        .find(|m| role(m) == "user")
        .and_then(|m| texts(m).into_iter().find_map(|t| find_tag(t, SCENARIO_TAG)))
        .map_or_else(|| "text".to_owned(), |name| name.trim().to_owned())
}

/// The `[[say:…]]` text of the newest user message that has one, so later prompts of a
/// conversation can change what the model says.
fn say(body: &Value) -> Option<String> {
    messages(body)
        .iter()
        .rev()
        .filter(|m| role(m) == "user")
        .find_map(|m| texts(m).into_iter().find_map(|t| find_tag(t, SAY_TAG)))
        .map(str::to_owned)
}

fn tool_result_text(block: &Value) -> String {
    match block.get("content") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => {
            let text: Vec<&str> = parts
                .iter()
                .filter(|p| p.get("type").and_then(Value::as_str) == Some("text"))
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect();
            if text.is_empty() {
                Value::Array(parts.clone()).to_string()
            } else {
                text.join("\n")
            }
        }
        Some(other) => other.to_string(),
    }
}

/// The tool result the model is answering, if the conversation ends with one.
///
/// `system` messages are skipped: Claude Code may append one after a tool_result.
fn pending_tool_result(body: &Value) -> Option<String> {
    let last = messages(body).iter().rev().find(|m| role(m) != "system")?;
    if role(last) != "user" {
        return None;
    }
    last.get("content")?
        .as_array()?
        .iter()
        .find(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
        .map(tool_result_text)
}

fn tool_names(body: &Value) -> Vec<&str> {
    body.get("tools")
        .and_then(Value::as_array)
        .map(|tools| {
            tools
                .iter()
                .filter_map(|t| t.get("name").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default()
}

/// The `loop` scenario's Bash call, identical on every turn.
const LOOP_INPUT: &str = r#"{"command":"echo still-failing","description":"Run the tests"}"#;
const BASH_INPUT: &str = r#"{"command":"echo wire-test","description":"Print a marker"}"#;
const AGENT_INPUT: &str = r#"{"description":"Scripted subagent","prompt":"[[scenario:subagent]] Report back.","subagent_type":"general-purpose","run_in_background":false}"#;
const DEFAULT_TOOL_INPUT: &str = r#"{"location":"Paris"}"#;

/// The tool input from `x-mock-tool-input`, re-serialized compactly, or `{"location":"Paris"}`.
fn tool_input(headers: &HeaderMap) -> Result<String, ApiError> {
    let Some(raw) = headers.get("x-mock-tool-input") else {
        return Ok(DEFAULT_TOOL_INPUT.to_owned());
    };
    match serde_json::from_slice::<Value>(raw.as_bytes()) {
        Ok(value @ Value::Object(_)) => Ok(value.to_string()),
        _ => Err(ApiError::invalid(
            "x-mock-tool-input: must be a JSON object",
        )),
    }
}

/// A signature derived from the thinking text, so a later request can be checked without state.
pub(crate) fn signature_for(thinking: &str) -> String {
    // FNV-1a: any change to the thinking text changes the signature.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in thinking.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    let raw = format!("tollgate-mock-thinking:{}:{hash:016x}", thinking.len());
    base64::engine::general_purpose::STANDARD.encode(raw)
}

/// Rejects a request whose echoed `thinking` blocks do not carry the signature this upstream gave.
pub(crate) fn check_thinking_signatures(body: &Value) -> Result<(), ApiError> {
    for (i, message) in messages(body).iter().enumerate() {
        if role(message) != "assistant" {
            continue;
        }
        let Some(blocks) = message.get("content").and_then(Value::as_array) else {
            continue;
        };
        for (j, block) in blocks.iter().enumerate() {
            if block.get("type").and_then(Value::as_str) != Some("thinking") {
                continue;
            }
            let thinking = block.get("thinking").and_then(Value::as_str).unwrap_or("");
            let signature = block.get("signature").and_then(Value::as_str);
            if signature != Some(signature_for(thinking).as_str()) {
                return Err(ApiError::invalid(format!(
                    "messages.{i}.content.{j}: thinking signature mismatch"
                )));
            }
        }
    }
    Ok(())
}

fn error_message(kind: &str) -> String {
    match kind {
        "overloaded_error" => "Overloaded".to_owned(),
        "rate_limit_error" => "Number of request tokens has exceeded your rate limit".to_owned(),
        "api_error" => "Internal server error".to_owned(),
        other => format!("Scripted {other}"),
    }
}

fn parse_error_scenario(spec: &str) -> Option<ApiError> {
    let (status, kind) = spec.split_once(':')?;
    let status: u16 = status.trim().parse().ok()?;
    let kind = kind.trim();
    if !(400..=599).contains(&status) || kind.is_empty() {
        return None;
    }
    let mut err = ApiError::new(status, kind, error_message(kind));
    if status == 429 {
        err.headers = vec![("retry-after", "7"), ("x-should-retry", "true")];
    }
    Some(err)
}

/// Builds the action for scenario `name`.
pub(crate) fn plan(name: &str, req: &Request<'_>) -> Result<Action, ApiError> {
    let unknown = || ApiError::invalid(format!("unknown mock scenario {name:?}"));
    let tool_result = pending_tool_result(req.body);
    let text = say(req.body).unwrap_or_else(|| DEFAULT_TEXT.to_owned());
    let tool_use = |tool: &str, input: String| Block::ToolUse {
        id: format!("toolu_mock_{}", req.n),
        name: tool.to_owned(),
        input,
    };
    let mut pace = None;
    let mut linger = None;
    let mut mystery = false;
    let mut extra_field = false;

    let (blocks, stop_reason) = match name {
        "text" => (vec![Block::Text(text)], "end_turn"),
        "subagent" => (
            vec![Block::Text("Subagent report: all good.".to_owned())],
            "end_turn",
        ),
        "tool" | "bash" | "agent" => match tool_result {
            Some(result) => {
                let reply = match name {
                    "tool" => format!("tool result was: {result}"),
                    "bash" => format!("Bash said: {result}"),
                    _ => "Agent finished.".to_owned(),
                };
                (vec![Block::Text(reply)], "end_turn")
            }
            None => {
                let call = match name {
                    "tool" => {
                        let tools = tool_names(req.body);
                        let tool = tools.first().copied().unwrap_or("get_weather");
                        tool_use(tool, tool_input(req.headers)?)
                    }
                    "bash" => tool_use("Bash", BASH_INPUT.to_owned()),
                    _ => tool_use("Agent", AGENT_INPUT.to_owned()),
                };
                let blocks = if name == "agent" {
                    vec![call]
                } else {
                    vec![Block::Text("Let me check.".to_owned()), call]
                };
                (blocks, "tool_use")
            }
        },
        // A stuck agent: the same Bash call on every turn, whatever the tool said.
        "loop" => (
            vec![
                Block::Text("Let me run the tests again.".to_owned()),
                tool_use("Bash", LOOP_INPUT.to_owned()),
            ],
            "tool_use",
        ),
        "thinking" => {
            let thinking = format!(
                "The script for turn {} says what to do next; following it.",
                req.n
            );
            let think = Block::Thinking {
                signature: signature_for(&thinking),
                thinking,
            };
            let tools = tool_names(req.body);
            match (tool_result, tools.is_empty()) {
                (None, false) => {
                    let call = if tools.contains(&"Bash") {
                        tool_use("Bash", BASH_INPUT.to_owned())
                    } else {
                        tool_use(tools[0], tool_input(req.headers)?)
                    };
                    (vec![think, call], "tool_use")
                }
                (Some(result), _) => (
                    vec![think, Block::Text(format!("tool result was: {result}"))],
                    "end_turn",
                ),
                (None, true) => (vec![think, Block::Text(text)], "end_turn"),
            }
        }
        "broken" | "midstream-error" => (vec![Block::Text(text)], "end_turn"),
        "unknown-event" => {
            mystery = true;
            extra_field = true;
            (vec![Block::Text(text)], "end_turn")
        }
        _ => {
            if let Some(spec) = name.strip_prefix("error:") {
                return parse_error_scenario(spec)
                    .map(Action::Fail)
                    .ok_or_else(unknown);
            } else if let Some(ms) = name.strip_prefix("slow:") {
                let ms: u64 = ms.trim().parse().map_err(|_| unknown())?;
                pace = Some(Duration::from_millis(ms));
                (vec![Block::Text(text)], "end_turn")
            } else if let Some(ms) = name.strip_prefix("linger:") {
                let ms: u64 = ms.trim().parse().map_err(|_| unknown())?;
                linger = Some(Duration::from_millis(ms));
                (vec![Block::Text(text)], "end_turn")
            } else if let Some(n) = name.strip_prefix("big:") {
                let n: usize = n.trim().parse().map_err(|_| unknown())?;
                if n > MAX_BIG {
                    return Err(ApiError::invalid(format!(
                        "big:N is limited to {MAX_BIG} bytes"
                    )));
                }
                (vec![Block::Text("x".repeat(n))], "end_turn")
            } else {
                return Err(unknown());
            }
        }
    };

    let reply = Reply {
        id: format!("msg_mock_{}", req.n),
        model: req
            .body
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        blocks,
        stop_reason,
        usage: req.usage,
        extra_field,
    };
    Ok(match name {
        "broken" => Action::Broken(reply),
        "midstream-error" => Action::MidstreamError(reply),
        _ => Action::Reply {
            reply,
            pace,
            linger,
            mystery,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scenario_comes_from_first_user_message_text_blocks() {
        let body = json!({"messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "<system-reminder>x</system-reminder>"},
                {"type": "text", "text": "go [[scenario:bash]] now"}]},
            {"role": "user", "content": "[[scenario:tool]]"}
        ]});
        assert_eq!(scenario_name(&HeaderMap::new(), &body), "bash");
        let mut headers = HeaderMap::new();
        headers.insert("x-mock-scenario", http::HeaderValue::from_static("agent"));
        assert_eq!(scenario_name(&headers, &body), "agent");
        assert_eq!(scenario_name(&HeaderMap::new(), &json!({})), "text");
    }

    #[test]
    fn tool_result_is_found_before_trailing_system_message() {
        let body = json!({"messages": [
            {"role": "user", "content": "hi"},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t",
                "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]},
            {"role": "system", "content": "note"}
        ]});
        assert_eq!(pending_tool_result(&body).as_deref(), Some("a\nb"));
    }

    #[test]
    fn signatures_depend_on_the_text() {
        assert_ne!(signature_for("a"), signature_for("b"));
        assert_eq!(signature_for("a"), signature_for("a"));
    }
}
