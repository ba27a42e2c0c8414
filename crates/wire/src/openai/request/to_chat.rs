//! Messages → Chat Completions: an Anthropic-dialect client (Claude Code) in front of an
//! OpenAI-compatible upstream.

use bytes::Bytes;
use serde_json::{Value, json};

use super::{keep_sampling, output_limit, serialise, strings, to_chat_fast};
use crate::openai::ConvertOptions;
use crate::openai::error::ConvertError;
use crate::openai::fields::{Node, at, parse_body};
use crate::openai::mapping::{effort_for_anthropic_effort, effort_for_budget, mark_tool_error};
use crate::openai::types::{
    ChatMessage, ChatRequest, ChatTool, Content, FunctionCall, FunctionDef, ImageUrl, Part,
    StreamOptions, ToolCall,
};

/// Tool search is an Anthropic-side feature: deferred tools are loaded by the API, not the client.
const TOOL_SEARCH_HINT: &str = "tool search (deferred tools and tool_reference blocks) only works with an Anthropic upstream; set ENABLE_TOOL_SEARCH=false in Claude Code's environment so that it sends tools inline";

/// Claude Code's attribution block: billing metadata for Anthropic, not an instruction.
pub(super) const BILLING_PREFIX: &str = "x-anthropic-billing-header:";

/// Top-level Messages fields that are converted.
const MESSAGES_FIELDS: &[&str] = &[
    "model",
    "messages",
    "system",
    "max_tokens",
    "stop_sequences",
    "temperature",
    "top_p",
    "top_k",
    "metadata",
    "stream",
    "tools",
    "tool_choice",
    "thinking",
    "output_config",
    "output_format",
    "context_management",
];

/// Top-level Messages fields dropped because they only mean something to Anthropic's servers and
/// change nothing the model writes.
const MESSAGES_DROPPED: &[&str] = &[
    "cache_control",
    "service_tier",
    "safeguards",
    "anthropic_version",
    "anthropic_beta",
];

/// Converts an Anthropic Messages request into a Chat Completions request for
/// `opts.target_model`. Anything that would change the answer and has no Chat Completions
/// counterpart is refused with the path of the field.
pub fn messages_to_chat_request(
    anthropic_body: &[u8],
    opts: &ConvertOptions,
) -> Result<Bytes, ConvertError> {
    if let Some(out) = to_chat_fast::convert(anthropic_body, opts) {
        return Ok(Bytes::from(out));
    }
    convert_with_tree(anthropic_body, opts)
}

/// The reference conversion, over a parsed tree; it decides every request the fast path leaves,
/// and names the field of every refusal.
fn convert_with_tree(anthropic_body: &[u8], opts: &ConvertOptions) -> Result<Bytes, ConvertError> {
    let root = parse_body(anthropic_body)?;
    let req = Node::root(&root)?;
    if let Some(k) = req
        .keys()
        .find(|k| !MESSAGES_FIELDS.contains(k) && !MESSAGES_DROPPED.contains(k))
    {
        return Err(ConvertError::new(
            k,
            "has no Chat Completions equivalent; remove it or route to an Anthropic upstream",
        ));
    }
    if req.get("top_k").is_some() {
        return Err(ConvertError::new(
            "top_k",
            "Chat Completions has no top_k; remove it or route to an Anthropic upstream",
        ));
    }

    let mut messages = Vec::new();
    if let Some(system) = req.get("system") {
        let texts: Vec<String> = system_texts(system, "system")?
            .into_iter()
            .filter(|t| !t.starts_with(BILLING_PREFIX))
            .collect();
        if !texts.is_empty() {
            messages.push(ChatMessage::System {
                content: Content::from_texts(texts),
            });
        }
    }
    let list = req.req_array("messages")?;
    for (i, m) in list.iter().enumerate() {
        convert_message(m, &at("messages", i), opts, &mut messages)?;
    }
    if let Some(last) = list.len().checked_sub(1)
        && list
            .get(last)
            .and_then(|m| m.get("role"))
            .and_then(Value::as_str)
            == Some("assistant")
    {
        return Err(ConvertError::new(
            format!("messages[{last}].role"),
            "a final assistant message would be continued by Anthropic (prefill), but a Chat Completions upstream starts a new message instead",
        ));
    }

    let tools = chat_tools(&req)?;
    let (tool_choice, parallel_tool_calls) = match (req.child("tool_choice")?, &tools) {
        (Some(choice), Some(_)) => chat_tool_choice(&choice)?,
        (Some(choice), None) => {
            // Without tools there is nothing to choose from; only validate.
            chat_tool_choice(&choice)?;
            (None, None)
        }
        (None, _) => (None, None),
    };

    let output_config = req.child("output_config")?;
    if let Some(oc) = &output_config {
        oc.only(&["effort", "format"])?;
    }
    let mut response_format = None;
    if let Some(format) = output_config
        .as_ref()
        .map(|oc| oc.child("format"))
        .transpose()?
        .flatten()
    {
        response_format = Some(chat_response_format(&format)?);
    }
    if let Some(format) = req.child("output_format")? {
        response_format = Some(chat_response_format(&format)?);
    }
    // A model without it answers the same without: thinking is a budget, not a requirement.
    let reasoning_effort = chat_reasoning_effort(&req, output_config.as_ref())?
        .filter(|_| opts.quirks.reasoning_effort);
    check_context_management(&req)?;
    let sampling = |name: &str| -> Result<Option<Value>, ConvertError> {
        let Some(v) = req.number(name)? else {
            return Ok(None);
        };
        let value = v.as_f64().unwrap_or(f64::NAN);
        Ok(keep_sampling(value, name, &opts.target_model, &opts.quirks)?.then(|| v.clone()))
    };
    let temperature = sampling("temperature")?;
    let top_p = sampling("top_p")?;
    let (max_completion_tokens, max_tokens) = output_limit(req.u64("max_tokens")?, &opts.quirks);

    let user = match req.child("metadata")? {
        Some(meta) => {
            meta.only(&["user_id"])?;
            meta.str("user_id")?.map(str::to_string)
        }
        None => None,
    };
    let stop = match req.array("stop_sequences")? {
        Some(seqs) if !seqs.is_empty() => Some(strings(seqs, "stop_sequences")?),
        _ => None,
    };
    let stream = req.bool("stream")?.unwrap_or(false);

    serialise(&ChatRequest {
        model: opts.target_model.clone(),
        messages,
        max_completion_tokens,
        max_tokens,
        temperature,
        top_p,
        stop,
        user,
        tools,
        tool_choice,
        parallel_tool_calls,
        reasoning_effort,
        response_format,
        stream: stream.then_some(true),
        // Without it an OpenAI stream carries no usage at all, and the request could not be
        // metered.
        stream_options: stream.then_some(StreamOptions {
            include_usage: true,
        }),
    })
}

/// Texts of a system prompt: a string, or text blocks.
fn system_texts(v: &Value, path: &str) -> Result<Vec<String>, ConvertError> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(blocks) => blocks
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let block = Node::new(b, &at(path, i))?;
                match block.req_str("type")? {
                    "text" => text_of_block(&block),
                    other => Err(ConvertError::new(
                        block.path("type"),
                        format!("a system prompt holds only text blocks, not `{other}`"),
                    )),
                }
            })
            .collect(),
        _ => Err(ConvertError::new(
            path,
            "must be a string or an array of text blocks",
        )),
    }
}

fn text_of_block(block: &Node<'_>) -> Result<String, ConvertError> {
    // cache_control: OpenAI caches prefixes by itself. citations: what the model cited before,
    // not something it reads.
    block.only(&["type", "text", "cache_control", "citations"])?;
    Ok(block.req_str("text")?.to_string())
}

fn convert_message(
    v: &Value,
    path: &str,
    opts: &ConvertOptions,
    out: &mut Vec<ChatMessage>,
) -> Result<(), ConvertError> {
    let m = Node::new(v, path)?;
    let role = m.req_str("role")?;
    match role {
        "system" => {
            // Claude Code puts `output_config: {effort}` on these; the request-level effort
            // already decides `reasoning_effort`.
            m.only(&["role", "content", "output_config"])?;
            if let Some(oc) = m.child("output_config")? {
                oc.only(&["effort"])?;
            }
            let texts = system_texts(m.req("content")?, &m.path("content"))?;
            out.push(ChatMessage::System {
                content: Content::from_texts(texts),
            });
            Ok(())
        }
        "user" => {
            m.only(&["role", "content"])?;
            user_message(m.req("content")?, &m.path("content"), out)
        }
        "assistant" => {
            m.only(&["role", "content"])?;
            out.push(assistant_message(
                m.req("content")?,
                &m.path("content"),
                opts.quirks.replay_reasoning,
            )?);
            Ok(())
        }
        other => Err(ConvertError::new(
            m.path("role"),
            format!("unknown role `{other}`; expected user, assistant or system"),
        )),
    }
}

/// A user turn becomes, in order, user messages for its text and images and one `tool` message
/// per tool result, because Chat Completions keeps tool results out of user messages.
fn user_message(
    content: &Value,
    path: &str,
    out: &mut Vec<ChatMessage>,
) -> Result<(), ConvertError> {
    let blocks = match content {
        Value::String(s) => {
            out.push(ChatMessage::User {
                content: Content::Text(s.clone()),
            });
            return Ok(());
        }
        Value::Array(blocks) => blocks,
        _ => {
            return Err(ConvertError::new(
                path,
                "must be a string or an array of content blocks",
            ));
        }
    };
    let mut parts = Vec::new();
    for (j, b) in blocks.iter().enumerate() {
        let block = Node::new(b, &at(path, j))?;
        match block.req_str("type")? {
            "text" => parts.push(Part::Text {
                text: text_of_block(&block)?,
            }),
            "image" => parts.push(image_part(&block)?),
            "tool_result" => {
                flush_user(&mut parts, out);
                out.push(tool_message(&block)?);
            }
            other => return Err(unsupported_block(&block, other)),
        }
    }
    flush_user(&mut parts, out);
    Ok(())
}

fn flush_user(parts: &mut Vec<Part>, out: &mut Vec<ChatMessage>) {
    if !parts.is_empty() {
        out.push(ChatMessage::User {
            content: Content::from_parts(std::mem::take(parts)),
        });
    }
}

fn unsupported_block(block: &Node<'_>, kind: &str) -> ConvertError {
    let message = match kind {
        "tool_reference" => TOOL_SEARCH_HINT.to_string(),
        "document" => {
            "document blocks have no Chat Completions equivalent; route to an Anthropic upstream"
                .to_string()
        }
        _ => format!("`{kind}` blocks cannot be sent to a Chat Completions upstream"),
    };
    ConvertError::new(block.path("type"), message)
}

fn image_part(block: &Node<'_>) -> Result<Part, ConvertError> {
    block.only(&["type", "source", "cache_control"])?;
    let source = Node::new(block.req("source")?, &block.path("source"))?;
    let url = match source.req_str("type")? {
        "base64" => {
            source.only(&["type", "media_type", "data"])?;
            format!(
                "data:{};base64,{}",
                source.req_str("media_type")?,
                source.req_str("data")?
            )
        }
        "url" => {
            source.only(&["type", "url"])?;
            source.req_str("url")?.to_string()
        }
        other => {
            return Err(ConvertError::new(
                source.path("type"),
                format!("image source `{other}` cannot be sent to a Chat Completions upstream"),
            ));
        }
    };
    Ok(Part::ImageUrl {
        image_url: ImageUrl { url },
    })
}

fn tool_message(block: &Node<'_>) -> Result<ChatMessage, ConvertError> {
    block.only(&[
        "type",
        "tool_use_id",
        "content",
        "is_error",
        "cache_control",
    ])?;
    let tool_call_id = block.req_str("tool_use_id")?.to_string();
    let texts = match block.get("content") {
        None => vec![String::new()],
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => {
            let path = block.path("content");
            let mut texts = Vec::with_capacity(items.len());
            for (k, item) in items.iter().enumerate() {
                let inner = Node::new(item, &at(&path, k))?;
                match inner.req_str("type")? {
                    "text" => texts.push(text_of_block(&inner)?),
                    "image" => {
                        return Err(ConvertError::new(
                            inner.path("type"),
                            "Chat Completions tool messages cannot carry images",
                        ));
                    }
                    other => return Err(unsupported_block(&inner, other)),
                }
            }
            texts
        }
        Some(_) => {
            return Err(ConvertError::new(
                block.path("content"),
                "must be a string or an array of content blocks",
            ));
        }
    };
    let content = if block.bool("is_error")?.unwrap_or(false) {
        Content::Text(mark_tool_error(&texts.join("\n")))
    } else {
        Content::from_texts(texts)
    };
    Ok(ChatMessage::Tool {
        tool_call_id,
        content,
    })
}

fn assistant_message(
    content: &Value,
    path: &str,
    replay_reasoning: bool,
) -> Result<ChatMessage, ConvertError> {
    let blocks = match content {
        Value::String(s) => {
            return Ok(ChatMessage::Assistant {
                content: Some(Content::Text(s.clone())),
                tool_calls: Vec::new(),
                reasoning_content: None,
            });
        }
        Value::Array(blocks) => blocks,
        _ => {
            return Err(ConvertError::new(
                path,
                "must be a string or an array of content blocks",
            ));
        }
    };
    let mut texts = Vec::new();
    let mut tool_calls = Vec::new();
    let mut reasoning: Option<String> = None;
    for (j, b) in blocks.iter().enumerate() {
        let block = Node::new(b, &at(path, j))?;
        match block.req_str("type")? {
            "text" => texts.push(text_of_block(&block)?),
            "tool_use" => {
                block.only(&["type", "id", "name", "input", "cache_control"])?;
                let input = block.get("input").cloned().unwrap_or_else(|| json!({}));
                tool_calls.push(ToolCall {
                    id: block.req_str("id")?.to_string(),
                    kind: "function",
                    function: FunctionCall {
                        name: block.req_str("name")?.to_string(),
                        arguments: input.to_string(),
                    },
                });
            }
            // A thinking signature only verifies on Anthropic's servers; the target model cannot
            // read it. Its text goes back only to models that want their reasoning again.
            "thinking" if replay_reasoning => {
                if let Some(text) = block.str("thinking")? {
                    reasoning.get_or_insert_default().push_str(text);
                }
            }
            "thinking" | "redacted_thinking" => {}
            other => return Err(unsupported_block(&block, other)),
        }
    }
    let content = if texts.is_empty() {
        // A message with only tool calls has `content: null`; one with nothing left (only
        // thinking) keeps its place in the conversation as an empty text.
        tool_calls.is_empty().then(|| Content::Text(String::new()))
    } else {
        Some(Content::from_texts(texts))
    };
    Ok(ChatMessage::Assistant {
        content,
        tool_calls,
        reasoning_content: reasoning,
    })
}

fn chat_tools(req: &Node<'_>) -> Result<Option<Vec<ChatTool>>, ConvertError> {
    let Some(list) = req.array("tools")? else {
        return Ok(None);
    };
    let mut tools = Vec::with_capacity(list.len());
    for (i, t) in list.iter().enumerate() {
        let tool = Node::new(t, &at("tools", i))?;
        if let Some(kind) = tool.str("type")?
            && kind != "custom"
        {
            return Err(ConvertError::new(
                tool.path("type"),
                format!(
                    "`{kind}` is an Anthropic server tool; a Chat Completions upstream cannot run it"
                ),
            ));
        }
        if tool.bool("defer_loading")? == Some(true) {
            return Err(ConvertError::new(
                tool.path("defer_loading"),
                TOOL_SEARCH_HINT,
            ));
        }
        tool.only(&[
            "type",
            "name",
            "description",
            "input_schema",
            "cache_control",
            "defer_loading",
            "strict",
        ])?;
        tools.push(ChatTool {
            kind: "function",
            function: FunctionDef {
                name: tool.req_str("name")?.to_string(),
                description: tool.str("description")?.map(str::to_string),
                parameters: tool.req("input_schema")?.clone(),
                strict: tool.bool("strict")?,
            },
        });
    }
    // OpenAI rejects an empty `tools` array (Claude Code sends one for title requests).
    Ok((!tools.is_empty()).then_some(tools))
}

fn chat_tool_choice(choice: &Node<'_>) -> Result<(Option<Value>, Option<bool>), ConvertError> {
    choice.only(&["type", "name", "disable_parallel_tool_use"])?;
    let value = match choice.req_str("type")? {
        "auto" => json!("auto"),
        "any" => json!("required"),
        "none" => json!("none"),
        "tool" => json!({"type": "function", "function": {"name": choice.req_str("name")?}}),
        other => {
            return Err(ConvertError::new(
                choice.path("type"),
                format!("unknown tool_choice `{other}`"),
            ));
        }
    };
    let parallel = (choice.bool("disable_parallel_tool_use")? == Some(true)).then_some(false);
    Ok((Some(value), parallel))
}

fn chat_reasoning_effort(
    req: &Node<'_>,
    output_config: Option<&Node<'_>>,
) -> Result<Option<&'static str>, ConvertError> {
    let effort = match output_config
        .map(|oc| oc.str("effort"))
        .transpose()?
        .flatten()
    {
        Some(e) => Some(effort_for_anthropic_effort(e).ok_or_else(|| {
            ConvertError::new(
                "output_config.effort",
                format!("unknown effort `{e}`; expected low, medium, high or max"),
            )
        })?),
        None => None,
    };
    let Some(thinking) = req.child("thinking")? else {
        return Ok(effort);
    };
    // `display` only decides what Anthropic shows of the thinking.
    thinking.only(&["type", "budget_tokens", "display"])?;
    match thinking.req_str("type")? {
        "enabled" => {
            let budget = thinking
                .u64("budget_tokens")?
                .ok_or_else(|| ConvertError::new(thinking.path("budget_tokens"), "is required"))?;
            Ok(Some(effort_for_budget(budget)))
        }
        "adaptive" => Ok(Some(effort.unwrap_or("medium"))),
        "disabled" => Ok(effort),
        other => Err(ConvertError::new(
            thinking.path("type"),
            format!("unknown thinking type `{other}`"),
        )),
    }
}

fn chat_response_format(format: &Node<'_>) -> Result<Value, ConvertError> {
    format.only(&["type", "schema"])?;
    match format.req_str("type")? {
        // Anthropic always enforces the schema, hence `strict`; Chat Completions needs a name,
        // Messages has none.
        "json_schema" => Ok(json!({
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": format.req("schema")?, "strict": true}
        })),
        other => Err(ConvertError::new(
            format.path("type"),
            format!("output format `{other}` has no Chat Completions equivalent"),
        )),
    }
}

/// Clearing thinking is moot (thinking blocks are not sent to the upstream); any other edit would
/// hide context from the model, which a Chat Completions upstream cannot do.
fn check_context_management(req: &Node<'_>) -> Result<(), ConvertError> {
    let Some(cm) = req.child("context_management")? else {
        return Ok(());
    };
    cm.only(&["edits"])?;
    let path = cm.path("edits");
    for (i, e) in cm.array("edits")?.unwrap_or_default().iter().enumerate() {
        let edit = Node::new(e, &at(&path, i))?;
        let kind = edit.req_str("type")?;
        if !kind.starts_with("clear_thinking_") {
            return Err(ConvertError::new(
                edit.path("type"),
                format!(
                    "context edit `{kind}` only runs on Anthropic's servers; a Chat Completions upstream would see the full context"
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> ConvertOptions {
        ConvertOptions {
            target_model: "target-model".into(),
            ..Default::default()
        }
    }

    /// The tree-based conversion, and the fast one where it applies, which must agree.
    fn both(body: &[u8]) -> Result<Value, ConvertError> {
        let tree = convert_with_tree(body, &opts())
            .map(|out| serde_json::from_slice::<Value>(&out).unwrap());
        if let Some(fast) = to_chat_fast::convert(body, &opts()) {
            let fast: Value = serde_json::from_slice(&fast).unwrap();
            assert_eq!(tree.as_ref().ok(), Some(&fast), "fast path differs");
        }
        tree
    }

    fn to_chat(body: Value) -> Value {
        assert!(
            to_chat_fast::convert(body.to_string().as_bytes(), &opts()).is_some(),
            "fast path declined a well-formed request"
        );
        both(body.to_string().as_bytes()).unwrap_or_else(|e| panic!("conversion failed: {e}"))
    }

    fn to_chat_err(body: Value) -> ConvertError {
        assert!(to_chat_fast::convert(body.to_string().as_bytes(), &opts()).is_none());
        messages_to_chat_request(body.to_string().as_bytes(), &opts()).unwrap_err()
    }

    /// Both conversions for a model with `quirks`; they must agree wherever the fast one answers.
    fn for_model(body: &Value, quirks: crate::openai::ModelQuirks) -> Result<Value, ConvertError> {
        let opts = ConvertOptions {
            target_model: "o4-mini".into(),
            quirks,
        };
        let bytes = body.to_string();
        let tree = convert_with_tree(bytes.as_bytes(), &opts)
            .map(|out| serde_json::from_slice::<Value>(&out).unwrap());
        if let Some(fast) = to_chat_fast::convert(bytes.as_bytes(), &opts) {
            let fast: Value = serde_json::from_slice(&fast).unwrap();
            assert_eq!(tree.as_ref().ok(), Some(&fast), "fast path differs");
        }
        tree
    }

    #[test]
    fn model_quirks_decide_what_is_sent() {
        use crate::openai::{MaxTokensField, ModelQuirks};
        let reasoning = ModelQuirks {
            reasoning_effort: true,
            sampling: false,
            max_tokens: MaxTokensField::MaxCompletionTokens,
            replay_reasoning: false,
        };
        let classic = ModelQuirks {
            reasoning_effort: false,
            sampling: true,
            max_tokens: MaxTokensField::MaxTokens,
            replay_reasoning: false,
        };
        let body = |extra: Value| {
            let mut b = json!({"model": "m", "max_tokens": 2000,
                "thinking": {"type": "enabled", "budget_tokens": 1024},
                "messages": [{"role": "user", "content": "hi"}]});
            b.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            b
        };
        // A reasoning model: effort and max_completion_tokens; the default temperature dropped.
        let out = for_model(&body(json!({"temperature": 1, "top_p": 1.0})), reasoning).unwrap();
        assert_eq!(out["reasoning_effort"], "low");
        assert_eq!(out["max_completion_tokens"], 2000);
        assert!(out.get("max_tokens").is_none() && out.get("temperature").is_none());
        assert!(out.get("top_p").is_none(), "{out}");
        // Any other value would be ignored silently: refused, naming the field.
        for field in ["temperature", "top_p"] {
            let e = for_model(&body(json!({field: 0.5})), reasoning).unwrap_err();
            assert_eq!(e.field, field);
            assert!(e.message.contains("o4-mini"), "{}", e.message);
        }
        // A classic model: no reasoning_effort, `max_tokens`, sampling kept as written.
        let out = for_model(&body(json!({"temperature": 0.7})), classic).unwrap();
        assert!(out.get("reasoning_effort").is_none(), "{out}");
        assert!(out.get("max_completion_tokens").is_none(), "{out}");
        assert_eq!(out["max_tokens"], 2000);
        assert_eq!(out["temperature"], 0.7);
        // Without quirks, as before: everything is sent.
        let out = for_model(&body(json!({"temperature": 0.7})), ModelQuirks::default()).unwrap();
        assert_eq!(out["reasoning_effort"], "low");
        assert_eq!(out["temperature"], 0.7);
        assert_eq!(out["max_completion_tokens"], 2000);
    }

    #[test]
    fn reasoning_is_replayed_only_to_models_that_want_it() {
        let body = json!({"model": "m", "max_tokens": 100, "messages": [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "first ", "signature": ""},
                {"type": "thinking", "thinking": "second", "signature": "c2ln"},
                {"type": "redacted_thinking", "data": "b3Bh"},
                {"type": "tool_use", "id": "t1", "name": "Bash", "input": {}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": "ok"}]}]});
        let replay = crate::openai::ModelQuirks {
            replay_reasoning: true,
            ..Default::default()
        };
        let out = for_model(&body, replay).unwrap();
        assert_eq!(out["messages"][1]["reasoning_content"], "first second");
        let out = for_model(&body, crate::openai::ModelQuirks::default()).unwrap();
        assert!(
            out["messages"][1].get("reasoning_content").is_none(),
            "{out}"
        );
    }

    #[test]
    fn fast_path_agrees_on_claude_code_bodies() {
        for body in [
            &include_bytes!("../../../benches/data/claude-code-120k.json")[..],
            &include_bytes!("../../../tests/golden/openai/claude_code_request.json")[..],
        ] {
            assert!(to_chat_fast::convert(body, &opts()).is_some());
            both(body).unwrap();
        }
    }

    /// Every (JSON pointer, value) in `v`, so that a mutation can pick one.
    fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => m
                .iter()
                .for_each(|(k, c)| pointers(c, format!("{at}/{k}"), out)),
            Value::Array(a) => a
                .iter()
                .enumerate()
                .for_each(|(i, c)| pointers(c, format!("{at}/{i}"), out)),
            _ => {}
        }
        out.push(at);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(400))]
        /// Mutated real requests: wherever the fast path answers, it answers as the tree does.
        #[test]
        fn fast_path_agrees_with_the_tree_on_mutated_requests(
            edits in proptest::collection::vec((0usize..10_000, 0u8..8), 1..4)
        ) {
            let mut body: Value = serde_json::from_slice(include_bytes!(
                "../../../tests/golden/openai/claude_code_request.json"
            )).unwrap();
            for (pick, kind) in edits {
                let mut all = Vec::new();
                pointers(&body, String::new(), &mut all);
                let ptr = all[pick % all.len()].clone();
                let Some(slot) = body.pointer_mut(&ptr) else { continue };
                *slot = match kind {
                    0 => Value::Null,
                    1 => json!("text"),
                    2 => json!("assistant"),
                    3 => json!(7),
                    4 => json!([]),
                    5 => json!({}),
                    6 => json!(true),
                    _ => json!([{"type": "text", "text": "x\ny"}]),
                };
            }
            let _ = both(body.to_string().as_bytes());
        }
    }

    #[test]
    fn fast_path_leaves_what_it_cannot_check_to_the_tree() {
        let cases: &[&[u8]] = &[
            // An unpaired surrogate is refused when decoded, not when skipped.
            br#"{"max_tokens":1,"messages":[{"role":"user","content":"\ud800"}]}"#,
            br#"{"max_tokens":1,"messages":[{"role":"user","content":"x"}],"cache_control":{"a":"\udc00"}}"#,
            // Positional "objects" and duplicate members.
            br#"{"max_tokens":1,"messages":[["user","x"]]}"#,
            br#"{"max_tokens":1,"max_tokens":2,"messages":[{"role":"user","content":"x"}]}"#,
            br#"{"max_tokens":1,"temperature":1e999,"messages":[{"role":"user","content":"x"}]}"#,
            // Null members count as absent.
            br#"{"max_tokens":1,"messages":[{"role":"user","content":"x","extra":null}]}"#,
            br#"{"max_tokens":1,"messages":[{"role":"user","content":[{"type":"text","text":"a","source":null}]}]}"#,
        ];
        for body in cases {
            let _ = both(body);
        }
        let out = both(cases[5]).unwrap();
        assert_eq!(out["messages"][0]["content"], "x");
        assert!(both(cases[0]).is_err() && both(cases[2]).is_err());
    }

    fn user(text: &str) -> Value {
        json!({"role": "user", "content": text})
    }

    #[test]
    fn system_prompt_and_system_messages_keep_their_positions() {
        let out = to_chat(json!({
            "model": "claude-opus-5-5", "max_tokens": 100,
            "system": [
                {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.332.abc;"},
                {"type": "text", "text": "You are a Claude agent.", "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": "Main prompt."}
            ],
            "messages": [
                user("hi"),
                {"role": "system", "content": [{"type": "text", "text": "reminder", "cache_control": {"type": "ephemeral"}}],
                 "output_config": {"effort": "medium"}},
                user("again")
            ]
        }));
        assert_eq!(out["model"], "target-model");
        assert_eq!(
            out["messages"],
            json!([
                {"role": "system", "content": [
                    {"type": "text", "text": "You are a Claude agent."},
                    {"type": "text", "text": "Main prompt."}]},
                {"role": "user", "content": "hi"},
                {"role": "system", "content": "reminder"},
                {"role": "user", "content": "again"}
            ])
        );
        let out = to_chat(json!({"max_tokens": 1, "system": "Be brief.", "messages": [user("q")]}));
        assert_eq!(
            out["messages"][0],
            json!({"role": "system", "content": "Be brief."})
        );
    }

    #[test]
    fn images_become_image_url_parts() {
        let out = to_chat(
            json!({"max_tokens": 1, "messages": [{"role": "user", "content": [
                {"type": "text", "text": "what is this"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}},
                {"type": "image", "source": {"type": "url", "url": "https://x.test/a.jpg"}}
            ]}]}),
        );
        assert_eq!(
            out["messages"][0]["content"],
            json!([
                {"type": "text", "text": "what is this"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}},
                {"type": "image_url", "image_url": {"url": "https://x.test/a.jpg"}}
            ])
        );
        let e = to_chat_err(
            json!({"max_tokens": 1, "messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "file", "file_id": "f"}}]}]}),
        );
        assert_eq!(e.field, "messages[0].content[0].source.type");
    }

    #[test]
    fn tool_loop_becomes_tool_calls_and_tool_messages() {
        let out = to_chat(json!({"max_tokens": 1, "messages": [
            user("list files"),
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "I should run ls", "signature": "c2ln"},
                {"type": "redacted_thinking", "data": "b3BhcXVl"},
                {"type": "text", "text": "Running it."},
                {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}},
                {"type": "tool_use", "id": "toolu_2", "name": "Read", "input": {}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "a.txt", "is_error": false,
                 "cache_control": {"type": "ephemeral"}},
                {"type": "tool_result", "tool_use_id": "toolu_2",
                 "content": [{"type": "text", "text": "no such file"}], "is_error": true},
                {"type": "text", "text": "now summarise"}
            ]}
        ]}));
        assert_eq!(
            out["messages"],
            json!([
                {"role": "user", "content": "list files"},
                {"role": "assistant", "content": "Running it.", "tool_calls": [
                    {"id": "toolu_1", "type": "function", "function": {"name": "Bash", "arguments": "{\"command\":\"ls\"}"}},
                    {"id": "toolu_2", "type": "function", "function": {"name": "Read", "arguments": "{}"}}
                ]},
                {"role": "tool", "tool_call_id": "toolu_1", "content": "a.txt"},
                {"role": "tool", "tool_call_id": "toolu_2", "content": "<tool_use_error>no such file</tool_use_error>"},
                {"role": "user", "content": "now summarise"}
            ])
        );
    }

    #[test]
    fn assistant_with_only_tool_calls_has_null_content() {
        let out = to_chat(json!({"max_tokens": 1, "messages": [
            user("go"),
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "n", "input": {"a": 1}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t",
                "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]}]}
        ]}));
        assert_eq!(out["messages"][1]["content"], Value::Null);
        assert_eq!(
            out["messages"][2]["content"],
            json!([{"type": "text", "text": "one"}, {"type": "text", "text": "two"}])
        );
    }

    #[test]
    fn unsupported_blocks_name_their_path() {
        let e = to_chat_err(json!({"max_tokens": 1, "messages": [
            user("a"), {"role": "assistant", "content": "b"}, user("c"),
            {"role": "user", "content": [
                {"type": "text", "text": "read this"},
                {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}}
            ]}
        ]}));
        assert_eq!(e.field, "messages[3].content[1].type");
        assert!(e.message.contains("document"));
        let e = to_chat_err(
            json!({"max_tokens": 1, "messages": [{"role": "assistant", "content": [
            {"type": "server_tool_use", "id": "s", "name": "web_search", "input": {}}]}, user("x")]}),
        );
        assert_eq!(e.field, "messages[0].content[0].type");
        let e = to_chat_err(
            json!({"max_tokens": 1, "messages": [{"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t", "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "x"}}]}]}]}),
        );
        assert_eq!(e.field, "messages[0].content[0].content[0].type");
        let e =
            to_chat_err(json!({"max_tokens": 1, "messages": [{"role": "tool", "content": "x"}]}));
        assert_eq!(e.field, "messages[0].role");
    }

    #[test]
    fn tools_and_tool_choice_map_to_functions() {
        let base = |choice: Value| {
            to_chat(json!({"max_tokens": 1, "messages": [user("x")],
                "tools": [{"name": "Bash", "description": "Run a command",
                           "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}},
                           "cache_control": {"type": "ephemeral"}},
                          {"type": "custom", "name": "Noop", "input_schema": {"type": "object"}, "strict": true,
                           "defer_loading": false}],
                "tool_choice": choice}))
        };
        let out = base(json!({"type": "auto"}));
        assert_eq!(
            out["tools"],
            json!([
                {"type": "function", "function": {"name": "Bash", "description": "Run a command",
                    "parameters": {"type": "object", "properties": {"command": {"type": "string"}}}}},
                {"type": "function", "function": {"name": "Noop", "parameters": {"type": "object"}, "strict": true}}
            ])
        );
        assert_eq!(out["tool_choice"], "auto");
        assert!(out.get("parallel_tool_calls").is_none());
        assert_eq!(base(json!({"type": "any"}))["tool_choice"], "required");
        assert_eq!(base(json!({"type": "none"}))["tool_choice"], "none");
        let out = base(json!({"type": "tool", "name": "Bash", "disable_parallel_tool_use": true}));
        assert_eq!(
            out["tool_choice"],
            json!({"type": "function", "function": {"name": "Bash"}})
        );
        assert_eq!(out["parallel_tool_calls"], false);
        // Empty tool lists (Claude Code's title request) are omitted: OpenAI rejects them.
        let out = to_chat(
            json!({"max_tokens": 1, "messages": [user("x")], "tools": [],
            "tool_choice": {"type": "auto"}}),
        );
        assert!(out.get("tools").is_none() && out.get("tool_choice").is_none());
    }

    #[test]
    fn server_tools_and_tool_search_are_refused() {
        let e = to_chat_err(json!({"max_tokens": 1, "messages": [user("x")],
            "tools": [{"type": "web_search_20250305", "name": "web_search"}]}));
        assert_eq!(e.field, "tools[0].type");
        assert!(e.message.contains("web_search_20250305"));
        let e = to_chat_err(json!({"max_tokens": 1, "messages": [user("x")],
            "tools": [{"name": "a", "input_schema": {}}, {"name": "mcp__x__y", "input_schema": {}, "defer_loading": true}]}));
        assert_eq!(e.field, "tools[1].defer_loading");
        assert!(e.message.contains("ENABLE_TOOL_SEARCH=false"));
        let e = to_chat_err(
            json!({"max_tokens": 1, "messages": [{"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t", "content": [{"type": "tool_reference", "tool_name": "mcp__x__y"}]}]}]}),
        );
        assert_eq!(e.field, "messages[0].content[0].content[0].type");
        assert!(e.message.contains("ENABLE_TOOL_SEARCH=false"));
    }

    #[test]
    fn thinking_becomes_reasoning_effort() {
        let effort = |extra: Value| {
            let mut body = json!({"max_tokens": 64000, "messages": [user("x")]});
            for (k, v) in extra.as_object().unwrap() {
                body[k] = v.clone();
            }
            to_chat(body)["reasoning_effort"].clone()
        };
        assert_eq!(
            effort(json!({"thinking": {"type": "enabled", "budget_tokens": 1024}})),
            "low"
        );
        assert_eq!(
            effort(json!({"thinking": {"type": "enabled", "budget_tokens": 10000}})),
            "medium"
        );
        assert_eq!(
            effort(json!({"thinking": {"type": "enabled", "budget_tokens": 32000}})),
            "high"
        );
        assert_eq!(
            effort(json!({"thinking": {"type": "adaptive", "display": "omitted"}})),
            "medium"
        );
        assert_eq!(
            effort(json!({"thinking": {"type": "adaptive"}, "output_config": {"effort": "high"}})),
            "high"
        );
        assert_eq!(
            effort(json!({"thinking": {"type": "adaptive"}, "output_config": {"effort": "low"}})),
            "low"
        );
        assert_eq!(effort(json!({"output_config": {"effort": "max"}})), "high");
        assert_eq!(
            effort(json!({"thinking": {"type": "disabled"}})),
            Value::Null
        );
        assert_eq!(effort(json!({})), Value::Null);
        let e = to_chat_err(
            json!({"max_tokens": 1, "messages": [user("x")], "output_config": {"effort": "huge"}}),
        );
        assert_eq!(e.field, "output_config.effort");
    }

    #[test]
    fn parameters_map_to_chat_fields() {
        let out = to_chat(json!({
            "model": "claude-x", "max_tokens": 1234, "stop_sequences": ["END", "STOP"],
            "temperature": 0.7, "top_p": 0.9, "metadata": {"user_id": "{\"device_id\":\"d\"}"},
            "stream": true, "messages": [user("x")],
            "output_config": {"format": {"type": "json_schema", "schema": {"type": "object", "properties": {"title": {"type": "string"}}}}},
            "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
            "cache_control": {"type": "ephemeral"}, "service_tier": "auto",
            "safeguards": [{"type": "dangerous_tool_use"}]
        }));
        assert_eq!(
            out,
            json!({
                "model": "target-model",
                "messages": [{"role": "user", "content": "x"}],
                "max_completion_tokens": 1234,
                "temperature": 0.7, "top_p": 0.9,
                "stop": ["END", "STOP"],
                "user": "{\"device_id\":\"d\"}",
                "response_format": {"type": "json_schema", "json_schema": {"name": "output",
                    "schema": {"type": "object", "properties": {"title": {"type": "string"}}}, "strict": true}},
                "stream": true,
                "stream_options": {"include_usage": true}
            })
        );
        let out = to_chat(json!({"max_tokens": 5, "messages": [user("x")], "stream": false}));
        assert!(out.get("stream").is_none() && out.get("stream_options").is_none());
    }

    #[test]
    fn behaviour_changing_fields_are_refused() {
        let e = to_chat_err(json!({"max_tokens": 1, "messages": [user("x")], "top_k": 5}));
        assert_eq!(e.field, "top_k");
        let e = to_chat_err(json!({"max_tokens": 1, "messages": [user("x")], "mcp_servers": []}));
        assert_eq!(e.field, "mcp_servers");
        let e = to_chat_err(json!({"max_tokens": 1, "messages": [user("x")],
            "context_management": {"edits": [{"type": "clear_tool_uses_20250919"}]}}));
        assert_eq!(e.field, "context_management.edits[0].type");
        let e = to_chat_err(
            json!({"max_tokens": 1, "messages": [user("x")], "metadata": {"tenant": "t"}}),
        );
        assert_eq!(e.field, "metadata.tenant");
        let e = to_chat_err(
            json!({"max_tokens": 1, "messages": [{"role": "user", "content": "x", "extra": 1}]}),
        );
        assert_eq!(e.field, "messages[0].extra");
        let e = to_chat_err(
            json!({"max_tokens": 1, "messages": [user("x"), {"role": "assistant", "content": "{"}]}),
        );
        assert_eq!(e.field, "messages[1].role");
        assert!(e.message.contains("prefill"));
        assert_eq!(to_chat_err(json!([1])).field, "body");
        assert_eq!(
            messages_to_chat_request(b"{nope", &opts())
                .unwrap_err()
                .field,
            "body"
        );
        let e = to_chat_err(json!({"max_tokens": 1}));
        assert_eq!(e.to_string(), "messages: is required");
    }
}
