//! Chat Completions → Messages: an OpenAI-dialect client in front of an Anthropic upstream.

use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::{parse_arguments, serialise, strings};
use crate::openai::ConvertOptions;
use crate::openai::error::ConvertError;
use crate::openai::fields::{Node, at, parse_body};
use crate::openai::mapping::{
    DEFAULT_MAX_TOKENS, MIN_THINKING_BUDGET, budget_for_effort, is_tool_error,
};

const CHAT_FIELDS: &[&str] = &[
    "model",
    "messages",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "temperature",
    "top_p",
    "n",
    "stream",
    "stream_options",
    "user",
    "safety_identifier",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "reasoning_effort",
    "response_format",
    "frequency_penalty",
    "presence_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "modalities",
];

/// Dropped: storage, billing and caching hints, and `seed`, whose determinism OpenAI itself only
/// promises on a best-effort basis.
const CHAT_DROPPED: &[&str] = &[
    "metadata",
    "store",
    "service_tier",
    "prompt_cache_key",
    "prompt_cache_retention",
    "seed",
];

/// Converts a Chat Completions request into an Anthropic Messages request for
/// `opts.target_model`. Leading system/developer messages become the top-level `system`; later
/// ones stay in place as `role: "system"` messages.
pub fn chat_to_messages_request(
    openai_body: &[u8],
    opts: &ConvertOptions,
) -> Result<Bytes, ConvertError> {
    let root = parse_body(openai_body)?;
    let req = Node::root(&root)?;
    if let Some(k) = req
        .keys()
        .find(|k| !CHAT_FIELDS.contains(k) && !CHAT_DROPPED.contains(k))
    {
        return Err(ConvertError::new(
            k,
            "has no Anthropic Messages equivalent; remove it",
        ));
    }
    check_neutral_sampling(&req)?;

    let (system, messages) = anthropic_messages(req.req_array("messages")?)?;
    let tools = anthropic_tools(&req)?;

    let mut max_tokens = req.u64("max_completion_tokens")?.or(req.u64("max_tokens")?);
    let field = if req.get("max_completion_tokens").is_some() {
        "max_completion_tokens"
    } else {
        "max_tokens"
    };
    let mut thinking = None;
    if let Some(effort) = req.str("reasoning_effort")? {
        let budget = budget_for_effort(effort).ok_or_else(|| {
            ConvertError::new(
                "reasoning_effort",
                format!("unknown reasoning effort `{effort}`"),
            )
        })?;
        if let Some(budget) = budget {
            let budget = match max_tokens {
                // Anthropic wants the budget below max_tokens, and both APIs count reasoning
                // within the same limit: the client's limit stands, the budget shrinks.
                Some(max) if budget >= max => {
                    if max <= MIN_THINKING_BUDGET {
                        return Err(ConvertError::new(
                            field,
                            format!(
                                "reasoning needs more than {MIN_THINKING_BUDGET} tokens on an Anthropic upstream; raise the limit or drop reasoning_effort"
                            ),
                        ));
                    }
                    max - 1
                }
                Some(_) => budget,
                None => {
                    max_tokens = Some(budget + DEFAULT_MAX_TOKENS);
                    budget
                }
            };
            thinking = Some(json!({"type": "enabled", "budget_tokens": budget}));
        }
    }

    let mut out = Map::new();
    out.insert("model".into(), json!(opts.target_model));
    out.insert(
        "max_tokens".into(),
        json!(max_tokens.unwrap_or(DEFAULT_MAX_TOKENS)),
    );
    if let Some(system) = system {
        out.insert("system".into(), system);
    }
    out.insert("messages".into(), Value::Array(messages));
    if let Some(stop) = req.get("stop") {
        let seqs = match stop {
            Value::String(s) => vec![s.clone()],
            Value::Array(a) => strings(a, "stop")?,
            _ => {
                return Err(ConvertError::new(
                    "stop",
                    "must be a string or an array of strings",
                ));
            }
        };
        if !seqs.is_empty() {
            out.insert("stop_sequences".into(), json!(seqs));
        }
    }
    for key in ["temperature", "top_p"] {
        if let Some(v) = req.number(key)? {
            out.insert(key.into(), v.clone());
        }
    }
    if let Some(user) = req.str("user")?.or(req.str("safety_identifier")?) {
        out.insert("metadata".into(), json!({"user_id": user}));
    }
    if let Some(tools) = tools {
        out.insert("tools".into(), Value::Array(tools));
        let mut choice = match req.get("tool_choice") {
            Some(c) => anthropic_tool_choice(c)?,
            None => json!({"type": "auto"}),
        };
        if req.bool("parallel_tool_calls")? == Some(false)
            && let Some(obj) = choice.as_object_mut()
        {
            obj.insert("disable_parallel_tool_use".into(), json!(true));
        }
        if req.get("tool_choice").is_some() || req.bool("parallel_tool_calls")? == Some(false) {
            out.insert("tool_choice".into(), choice);
        }
    } else if let Some(c) = req.get("tool_choice") {
        // Nothing to choose from; only validate.
        anthropic_tool_choice(c)?;
    }
    if let Some(thinking) = thinking {
        out.insert("thinking".into(), thinking);
    }
    if let Some(format) = req.child("response_format")?
        && let Some(f) = anthropic_output_format(&format)?
    {
        out.insert("output_config".into(), json!({"format": f}));
    }
    if req.bool("stream")? == Some(true) {
        out.insert("stream".into(), json!(true));
    }
    serialise(&Value::Object(out))
}

/// Sampling controls Anthropic lacks are accepted only at their neutral values.
fn check_neutral_sampling(req: &Node<'_>) -> Result<(), ConvertError> {
    let refuse = |field: &str| {
        Err(ConvertError::new(
            field,
            "has no Anthropic Messages equivalent; remove it or use its default",
        ))
    };
    if req.u64("n")?.is_some_and(|n| n != 1) {
        return Err(ConvertError::new(
            "n",
            "Anthropic Messages returns one choice; n must be 1",
        ));
    }
    for key in ["frequency_penalty", "presence_penalty"] {
        if req
            .number(key)?
            .and_then(Value::as_f64)
            .is_some_and(|v| v != 0.0)
        {
            return refuse(key);
        }
    }
    if req
        .get("logit_bias")
        .is_some_and(|v| v.as_object().is_none_or(|m| !m.is_empty()))
    {
        return refuse("logit_bias");
    }
    if req.bool("logprobs")? == Some(true) {
        return refuse("logprobs");
    }
    if req.u64("top_logprobs")?.is_some_and(|n| n > 0) {
        return refuse("top_logprobs");
    }
    if let Some(modalities) = req.array("modalities")?
        && modalities.iter().any(|m| m.as_str() != Some("text"))
    {
        return refuse("modalities");
    }
    Ok(())
}

/// Messages under construction; merged in place when Chat Completions splits what Anthropic
/// keeps in one user turn.
struct Turn {
    role: &'static str,
    blocks: Vec<Value>,
    /// The content was a plain string and stays one.
    plain: Option<String>,
    /// This user turn was opened by tool results: following tool and user messages join it.
    open_for_results: bool,
}

impl Turn {
    fn into_value(self) -> Value {
        let content = match self.plain {
            Some(s) => Value::String(s),
            None => Value::Array(self.blocks),
        };
        json!({"role": self.role, "content": content})
    }
}

type SystemAndMessages = (Option<Value>, Vec<Value>);

fn anthropic_messages(list: &[Value]) -> Result<SystemAndMessages, ConvertError> {
    let mut system: Vec<String> = Vec::new();
    let mut turns: Vec<Turn> = Vec::new();
    for (i, v) in list.iter().enumerate() {
        let m = Node::new(v, &at("messages", i))?;
        match m.req_str("role")? {
            "system" | "developer" => {
                m.only(&["role", "content", "name"])?;
                let texts = chat_texts(m.req("content")?, &m.path("content"))?;
                if turns.is_empty() {
                    system.extend(texts);
                } else {
                    // Kept in place: Messages accepts system messages inside `messages`, and
                    // moving a mid-conversation instruction to the top would change its meaning.
                    turns.push(text_turn("system", texts));
                }
            }
            "user" => {
                m.only(&["role", "content", "name"])?;
                let (plain, blocks) = user_content(m.req("content")?, &m.path("content"))?;
                match turns.last_mut() {
                    Some(last) if last.open_for_results => {
                        match plain {
                            Some(s) => last.blocks.push(json!({"type": "text", "text": s})),
                            None => last.blocks.extend(blocks),
                        }
                        last.open_for_results = false;
                    }
                    _ => turns.push(Turn {
                        role: "user",
                        blocks,
                        plain,
                        open_for_results: false,
                    }),
                }
            }
            "assistant" => turns.push(assistant_turn(&m)?),
            "tool" => {
                let block = tool_result_block(&m)?;
                match turns.last_mut() {
                    Some(last) if last.open_for_results => last.blocks.push(block),
                    _ => turns.push(Turn {
                        role: "user",
                        blocks: vec![block],
                        plain: None,
                        open_for_results: true,
                    }),
                }
            }
            "function" => {
                return Err(ConvertError::new(
                    m.path("role"),
                    "deprecated `function` messages are not supported; use tools",
                ));
            }
            other => {
                return Err(ConvertError::new(
                    m.path("role"),
                    format!("unknown role `{other}`"),
                ));
            }
        }
    }
    let system = match system.len() {
        0 => None,
        1 => system.pop().map(Value::String),
        _ => Some(Value::Array(
            system
                .into_iter()
                .map(|t| json!({"type": "text", "text": t}))
                .collect(),
        )),
    };
    Ok((system, turns.into_iter().map(Turn::into_value).collect()))
}

fn text_turn(role: &'static str, mut texts: Vec<String>) -> Turn {
    if texts.len() == 1
        && let Some(s) = texts.pop()
    {
        return Turn {
            role,
            blocks: Vec::new(),
            plain: Some(s),
            open_for_results: false,
        };
    }
    Turn {
        role,
        blocks: texts
            .into_iter()
            .map(|t| json!({"type": "text", "text": t}))
            .collect(),
        plain: None,
        open_for_results: false,
    }
}

/// Texts of system, developer and tool content: a string or text parts.
fn chat_texts(v: &Value, path: &str) -> Result<Vec<String>, ConvertError> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(parts) => parts
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let part = Node::new(p, &at(path, i))?;
                match part.req_str("type")? {
                    "text" => {
                        part.only(&["type", "text"])?;
                        Ok(part.req_str("text")?.to_string())
                    }
                    other => Err(ConvertError::new(
                        part.path("type"),
                        format!("only text parts are allowed here, not `{other}`"),
                    )),
                }
            })
            .collect(),
        _ => Err(ConvertError::new(
            path,
            "must be a string or an array of text parts",
        )),
    }
}

type UserContent = (Option<String>, Vec<Value>);

fn user_content(v: &Value, path: &str) -> Result<UserContent, ConvertError> {
    let parts = match v {
        Value::String(s) => return Ok((Some(s.clone()), Vec::new())),
        Value::Array(parts) => parts,
        _ => {
            return Err(ConvertError::new(
                path,
                "must be a string or an array of content parts",
            ));
        }
    };
    let mut blocks = Vec::with_capacity(parts.len());
    for (i, p) in parts.iter().enumerate() {
        let part = Node::new(p, &at(path, i))?;
        match part.req_str("type")? {
            "text" => {
                part.only(&["type", "text"])?;
                blocks.push(json!({"type": "text", "text": part.req_str("text")?}));
            }
            "image_url" => {
                part.only(&["type", "image_url"])?;
                let image = Node::new(part.req("image_url")?, &part.path("image_url"))?;
                // `detail` picks OpenAI's image resolution; Anthropic sizes images itself.
                image.only(&["url", "detail"])?;
                blocks.push(image_block(image.req_str("url")?, &image.path("url"))?);
            }
            other => {
                return Err(ConvertError::new(
                    part.path("type"),
                    format!("`{other}` parts cannot be sent to an Anthropic upstream"),
                ));
            }
        }
    }
    Ok((None, blocks))
}

fn image_block(url: &str, path: &str) -> Result<Value, ConvertError> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (meta, data) = rest
            .split_once(',')
            .ok_or_else(|| ConvertError::new(path, "malformed data URL"))?;
        let media_type = meta
            .strip_suffix(";base64")
            .ok_or_else(|| ConvertError::new(path, "only base64 data URLs are supported"))?;
        // Parameters such as `charset` are not part of the media type.
        let media_type = media_type.split(';').next().unwrap_or(media_type);
        return Ok(json!({
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data}
        }));
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(json!({"type": "image", "source": {"type": "url", "url": url}}));
    }
    Err(ConvertError::new(
        path,
        "must be a data URL or an http(s) URL",
    ))
}

fn assistant_turn(m: &Node<'_>) -> Result<Turn, ConvertError> {
    // `reasoning_content` is text without a signature: Anthropic rejects unsigned thinking, so it
    // cannot be replayed. `thinking_blocks` (as LiteLLM names them) carry the signed originals.
    m.only(&[
        "role",
        "content",
        "tool_calls",
        "thinking_blocks",
        "reasoning_content",
        "refusal",
        "name",
        "annotations",
    ])?;
    let mut blocks = Vec::new();
    if let Some(list) = m.array("thinking_blocks")? {
        let path = m.path("thinking_blocks");
        for (k, b) in list.iter().enumerate() {
            let block = Node::new(b, &at(&path, k))?;
            match block.req_str("type")? {
                "thinking" => {
                    block.only(&["type", "thinking", "signature"])?;
                    let thinking = block.req_str("thinking")?;
                    // Unsigned thinking (from an OpenAI-compatible upstream) would be rejected.
                    if let Some(signature) = block.str("signature")?.filter(|s| !s.is_empty()) {
                        blocks.push(json!({
                            "type": "thinking", "thinking": thinking, "signature": signature,
                        }));
                    }
                }
                "redacted_thinking" => {
                    block.only(&["type", "data"])?;
                    blocks
                        .push(json!({"type": "redacted_thinking", "data": block.req_str("data")?}));
                }
                other => {
                    return Err(ConvertError::new(
                        block.path("type"),
                        format!("unknown thinking block `{other}`"),
                    ));
                }
            }
        }
    }
    let mut texts = Vec::new();
    match m.get("content") {
        None => {}
        Some(Value::String(s)) => texts.push(s.clone()),
        Some(Value::Array(parts)) => {
            let path = m.path("content");
            for (k, p) in parts.iter().enumerate() {
                let part = Node::new(p, &at(&path, k))?;
                let key = match part.req_str("type")? {
                    "text" => "text",
                    "refusal" => "refusal",
                    other => {
                        return Err(ConvertError::new(
                            part.path("type"),
                            format!("`{other}` parts cannot be sent to an Anthropic upstream"),
                        ));
                    }
                };
                part.only(&["type", key])?;
                texts.push(part.req_str(key)?.to_string());
            }
        }
        Some(_) => {
            return Err(ConvertError::new(
                m.path("content"),
                "must be a string, an array of parts or null",
            ));
        }
    }
    if let Some(refusal) = m.str("refusal")? {
        texts.push(refusal.to_string());
    }
    // Anthropic rejects empty text blocks, and SDKs echo `content: ""` beside tool calls.
    texts.retain(|t| !t.is_empty());
    let mut tool_uses = Vec::new();
    if let Some(calls) = m.array("tool_calls")? {
        let path = m.path("tool_calls");
        for (k, c) in calls.iter().enumerate() {
            let call = Node::new(c, &at(&path, k))?;
            call.only(&["id", "type", "function", "index"])?;
            if let Some(kind) = call.str("type")?
                && kind != "function"
            {
                return Err(ConvertError::new(
                    call.path("type"),
                    format!("`{kind}` tool calls cannot be sent to an Anthropic upstream"),
                ));
            }
            let function = Node::new(call.req("function")?, &call.path("function"))?;
            function.only(&["name", "arguments"])?;
            let input = parse_arguments(
                function.str("arguments")?.unwrap_or(""),
                &function.path("arguments"),
            )?;
            tool_uses.push(json!({
                "type": "tool_use",
                "id": call.req_str("id")?,
                "name": function.req_str("name")?,
                "input": input,
            }));
        }
    }
    if blocks.is_empty() && tool_uses.is_empty() && texts.len() <= 1 {
        return Ok(Turn {
            role: "assistant",
            blocks: Vec::new(),
            plain: Some(texts.pop().unwrap_or_default()),
            open_for_results: false,
        });
    }
    blocks.extend(
        texts
            .into_iter()
            .map(|t| json!({"type": "text", "text": t})),
    );
    blocks.extend(tool_uses);
    Ok(Turn {
        role: "assistant",
        blocks,
        plain: None,
        open_for_results: false,
    })
}

fn tool_result_block(m: &Node<'_>) -> Result<Value, ConvertError> {
    m.only(&["role", "content", "tool_call_id", "name"])?;
    let id = m.req_str("tool_call_id")?;
    let (content, is_error) = match m.req("content")? {
        Value::String(s) => (json!(s), is_tool_error(s)),
        other => {
            let texts = chat_texts(other, &m.path("content"))?;
            let is_error = matches!(texts.as_slice(), [t] if is_tool_error(t));
            let blocks: Vec<Value> = texts
                .into_iter()
                .map(|t| json!({"type": "text", "text": t}))
                .collect();
            (Value::Array(blocks), is_error)
        }
    };
    let mut block = json!({"type": "tool_result", "tool_use_id": id, "content": content});
    if is_error && let Some(obj) = block.as_object_mut() {
        obj.insert("is_error".into(), json!(true));
    }
    Ok(block)
}

fn anthropic_tools(req: &Node<'_>) -> Result<Option<Vec<Value>>, ConvertError> {
    let Some(list) = req.array("tools")? else {
        return Ok(None);
    };
    let mut tools = Vec::with_capacity(list.len());
    for (i, t) in list.iter().enumerate() {
        let tool = Node::new(t, &at("tools", i))?;
        tool.only(&["type", "function"])?;
        let kind = tool.req_str("type")?;
        if kind != "function" {
            return Err(ConvertError::new(
                tool.path("type"),
                format!("`{kind}` tools cannot be sent to an Anthropic upstream"),
            ));
        }
        let f = Node::new(tool.req("function")?, &tool.path("function"))?;
        f.only(&["name", "description", "parameters", "strict"])?;
        let mut out = Map::new();
        out.insert("name".into(), json!(f.req_str("name")?));
        if let Some(d) = f.str("description")? {
            out.insert("description".into(), json!(d));
        }
        out.insert(
            "input_schema".into(),
            f.get("parameters")
                .cloned()
                .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
        );
        if let Some(strict) = f.bool("strict")? {
            out.insert("strict".into(), json!(strict));
        }
        tools.push(Value::Object(out));
    }
    Ok((!tools.is_empty()).then_some(tools))
}

fn anthropic_tool_choice(v: &Value) -> Result<Value, ConvertError> {
    match v {
        Value::String(s) => match s.as_str() {
            "auto" => Ok(json!({"type": "auto"})),
            "required" => Ok(json!({"type": "any"})),
            "none" => Ok(json!({"type": "none"})),
            other => Err(ConvertError::new(
                "tool_choice",
                format!("unknown tool_choice `{other}`"),
            )),
        },
        Value::Object(_) => {
            let choice = Node::new(v, "tool_choice")?;
            choice.only(&["type", "function"])?;
            if choice.req_str("type")? != "function" {
                return Err(ConvertError::new(
                    "tool_choice.type",
                    "only `function` can be converted",
                ));
            }
            let f = Node::new(choice.req("function")?, "tool_choice.function")?;
            f.only(&["name"])?;
            Ok(json!({"type": "tool", "name": f.req_str("name")?}))
        }
        _ => Err(ConvertError::new(
            "tool_choice",
            "must be a string or an object",
        )),
    }
}

fn anthropic_output_format(format: &Node<'_>) -> Result<Option<Value>, ConvertError> {
    match format.req_str("type")? {
        "text" => Ok(None),
        "json_schema" => {
            format.only(&["type", "json_schema"])?;
            let spec = Node::new(format.req("json_schema")?, &format.path("json_schema"))?;
            // The name only labels the schema, and Anthropic always enforces it (`strict`).
            spec.only(&["name", "schema", "strict", "description"])?;
            Ok(Some(
                json!({"type": "json_schema", "schema": spec.req("schema")?}),
            ))
        }
        other => Err(ConvertError::new(
            format.path("type"),
            format!("response format `{other}` has no Anthropic equivalent; use json_schema"),
        )),
    }
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

    fn to_messages(body: Value) -> Value {
        let out = chat_to_messages_request(body.to_string().as_bytes(), &opts())
            .unwrap_or_else(|e| panic!("conversion failed: {e}"));
        serde_json::from_slice(&out).unwrap()
    }

    fn to_messages_err(body: Value) -> ConvertError {
        chat_to_messages_request(body.to_string().as_bytes(), &opts()).unwrap_err()
    }

    fn user(text: &str) -> Value {
        json!({"role": "user", "content": text})
    }

    #[test]
    fn leading_system_messages_become_the_system_prompt() {
        let out = to_messages(json!({"model": "gpt", "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Use JSON."}]},
            user("hi"),
            {"role": "assistant", "content": "hello"},
            {"role": "developer", "content": "Switch to French."},
            user("encore")
        ]}));
        assert_eq!(
            out,
            json!({
                "model": "target-model", "max_tokens": 4096,
                "system": [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Use JSON."}],
                "messages": [
                    {"role": "user", "content": "hi"},
                    {"role": "assistant", "content": "hello"},
                    {"role": "system", "content": "Switch to French."},
                    {"role": "user", "content": "encore"}
                ]
            })
        );
        let out = to_messages(json!({"messages": [{"role": "system", "content": "S"}, user("x")]}));
        assert_eq!(out["system"], "S");
    }

    #[test]
    fn image_urls_become_image_blocks() {
        let out = to_messages(json!({"messages": [{"role": "user", "content": [
            {"type": "text", "text": "look"},
            {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4A", "detail": "high"}},
            {"type": "image_url", "image_url": {"url": "https://x.test/cat.png"}}
        ]}]}));
        assert_eq!(
            out["messages"][0]["content"],
            json!([
                {"type": "text", "text": "look"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4A"}},
                {"type": "image", "source": {"type": "url", "url": "https://x.test/cat.png"}}
            ])
        );
        let e = to_messages_err(json!({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "ftp://x"}}]}]}));
        assert_eq!(e.field, "messages[0].content[0].image_url.url");
        let e = to_messages_err(json!({"messages": [{"role": "user", "content": [
            {"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}}]}]}));
        assert_eq!(e.field, "messages[0].content[0].type");
    }

    #[test]
    fn tool_calls_and_tool_messages_become_one_tool_loop() {
        let out = to_messages(json!({"messages": [
            user("weather?"),
            {"role": "assistant", "content": "", "refusal": null, "annotations": [], "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "now", "arguments": ""}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            {"role": "tool", "tool_call_id": "call_2", "content": "<tool_use_error>clock broken</tool_use_error>"},
            user("thanks, and tomorrow?")
        ]}));
        assert_eq!(
            out["messages"],
            json!([
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "call_2", "name": "now", "input": {}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"},
                    {"type": "tool_result", "tool_use_id": "call_2",
                     "content": "<tool_use_error>clock broken</tool_use_error>", "is_error": true},
                    {"type": "text", "text": "thanks, and tomorrow?"}
                ]}
            ])
        );
        let e = to_messages_err(
            json!({"messages": [user("x"), {"role": "assistant", "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{bad"}}]}]}),
        );
        assert_eq!(e.field, "messages[1].tool_calls[0].function.arguments");
        let e = to_messages_err(
            json!({"messages": [user("x"), {"role": "assistant", "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": "[1]"}}]}]}),
        );
        assert_eq!(e.field, "messages[1].tool_calls[0].function.arguments");
    }

    #[test]
    fn signed_thinking_blocks_are_replayed_first() {
        let out = to_messages(json!({"messages": [user("x"), {"role": "assistant",
            "content": "answer", "reasoning_content": "unsigned summary",
            "thinking_blocks": [
                {"type": "thinking", "thinking": "deep", "signature": "c2ln"},
                {"type": "thinking", "thinking": "unsigned"},
                {"type": "redacted_thinking", "data": "b3Bh"}]}, user("y")]}));
        assert_eq!(
            out["messages"][1]["content"],
            json!([
                {"type": "thinking", "thinking": "deep", "signature": "c2ln"},
                {"type": "redacted_thinking", "data": "b3Bh"},
                {"type": "text", "text": "answer"}
            ])
        );
    }

    #[test]
    fn functions_and_tool_choice_map_to_tools() {
        let tools = json!([{"type": "function", "function": {"name": "f", "description": "d",
            "parameters": {"type": "object", "properties": {}}, "strict": true}},
            {"type": "function", "function": {"name": "g"}}]);
        let choice = |c: Value, parallel: Value| {
            to_messages(
                json!({"messages": [user("x")], "tools": tools, "tool_choice": c,
                "parallel_tool_calls": parallel}),
            )
        };
        let out = choice(Value::Null, Value::Null);
        assert_eq!(
            out["tools"],
            json!([
                {"name": "f", "description": "d", "input_schema": {"type": "object", "properties": {}}, "strict": true},
                {"name": "g", "input_schema": {"type": "object", "properties": {}}}
            ])
        );
        assert!(out.get("tool_choice").is_none());
        assert_eq!(
            choice(json!("auto"), Value::Null)["tool_choice"],
            json!({"type": "auto"})
        );
        assert_eq!(
            choice(json!("required"), Value::Null)["tool_choice"],
            json!({"type": "any"})
        );
        assert_eq!(
            choice(json!("none"), Value::Null)["tool_choice"],
            json!({"type": "none"})
        );
        assert_eq!(
            choice(
                json!({"type": "function", "function": {"name": "f"}}),
                json!(false)
            )["tool_choice"],
            json!({"type": "tool", "name": "f", "disable_parallel_tool_use": true})
        );
        assert_eq!(
            choice(Value::Null, json!(false))["tool_choice"],
            json!({"type": "auto", "disable_parallel_tool_use": true})
        );
        let e = to_messages_err(
            json!({"messages": [user("x")], "tools": [{"type": "custom", "custom": {"name": "x"}}]}),
        );
        assert_eq!(e.field, "tools[0].custom");
    }

    #[test]
    fn reasoning_effort_becomes_a_thinking_budget_below_max_tokens() {
        let out = to_messages(
            json!({"messages": [user("x")], "reasoning_effort": "high", "max_completion_tokens": 50000}),
        );
        assert_eq!(
            out["thinking"],
            json!({"type": "enabled", "budget_tokens": 24576})
        );
        assert_eq!(out["max_tokens"], 50000);
        // No limit: the budget plus room for the answer.
        let out = to_messages(json!({"messages": [user("x")], "reasoning_effort": "low"}));
        assert_eq!(out["thinking"]["budget_tokens"], 2048);
        assert_eq!(out["max_tokens"], 2048 + DEFAULT_MAX_TOKENS);
        // The client's limit stands; the budget shrinks below it.
        let out = to_messages(
            json!({"messages": [user("x")], "reasoning_effort": "medium", "max_tokens": 3000}),
        );
        assert_eq!(out["thinking"]["budget_tokens"], 2999);
        assert_eq!(out["max_tokens"], 3000);
        let e = to_messages_err(
            json!({"messages": [user("x")], "reasoning_effort": "low", "max_completion_tokens": 1000}),
        );
        assert_eq!(e.field, "max_completion_tokens");
        let out = to_messages(json!({"messages": [user("x")], "reasoning_effort": "none"}));
        assert!(out.get("thinking").is_none());
        assert_eq!(
            to_messages_err(json!({"messages": [], "reasoning_effort": "x"})).field,
            "reasoning_effort"
        );
    }

    #[test]
    fn chat_parameters_map_to_messages_fields() {
        let out = to_messages(json!({"model": "gpt-4o", "messages": [user("x")],
            "max_tokens": 10, "max_completion_tokens": 20, "stop": "END", "temperature": 0.5, "top_p": 1,
            "user": "u-1", "stream": true, "stream_options": {"include_usage": true}, "n": 1,
            "seed": 7, "store": false, "metadata": {"a": "b"}, "frequency_penalty": 0, "logprobs": false,
            "response_format": {"type": "json_schema", "json_schema": {"name": "r", "strict": true,
                "schema": {"type": "object"}}}}));
        assert_eq!(
            out,
            json!({
                "model": "target-model", "max_tokens": 20,
                "messages": [{"role": "user", "content": "x"}],
                "stop_sequences": ["END"], "temperature": 0.5, "top_p": 1,
                "metadata": {"user_id": "u-1"},
                "output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}},
                "stream": true
            })
        );
        let out = to_messages(
            json!({"messages": [user("x")], "stop": ["a", "b"], "max_tokens": 9,
            "response_format": {"type": "text"}}),
        );
        assert_eq!(out["stop_sequences"], json!(["a", "b"]));
        assert_eq!(out["max_tokens"], 9);
        assert!(out.get("output_config").is_none());
    }

    #[test]
    fn chat_fields_without_equivalent_are_refused() {
        for (body, field) in [
            (json!({"messages": [], "n": 2}), "n"),
            (
                json!({"messages": [], "presence_penalty": 0.5}),
                "presence_penalty",
            ),
            (
                json!({"messages": [], "logit_bias": {"50256": -100}}),
                "logit_bias",
            ),
            (json!({"messages": [], "logprobs": true}), "logprobs"),
            (
                json!({"messages": [], "modalities": ["text", "audio"]}),
                "modalities",
            ),
            (
                json!({"messages": [], "audio": {"voice": "alloy"}}),
                "audio",
            ),
            (json!({"messages": [], "verbosity": "low"}), "verbosity"),
            (
                json!({"messages": [], "response_format": {"type": "json_object"}}),
                "response_format.type",
            ),
            (
                json!({"messages": [{"role": "function", "name": "f", "content": "x"}]}),
                "messages[0].role",
            ),
            (
                json!({"messages": [user("x"), {"role": "assistant", "content": "a", "audio": {"id": "x"}}]}),
                "messages[1].audio",
            ),
        ] {
            assert_eq!(to_messages_err(body.clone()).field, field, "{body}");
        }
    }
}
