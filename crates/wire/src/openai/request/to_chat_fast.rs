//! Messages → Chat Completions without building a JSON tree, for well-formed requests.
//!
//! Claude Code sends ~100 KB bodies made mostly of text and tool schemas that pass through
//! unchanged. Parsing them into a `Value` tree and serialising it again costs more than the rest
//! of the request path together, so members that are copied through are kept as the raw JSON
//! text of the body (`RawValue`), and the output is written in one pass.
//!
//! This path only handles what it fully understands. Anything unexpected (an unknown member, a
//! wrong type, a duplicate key, a value that would be refused, an escape it does not check) makes
//! it give up and return `None`, and the tree-based conversion decides, with its exact error
//! paths. Its output is the same JSON as the tree-based one's; only key order and whitespace
//! inside copied schemas and the escaping of copied strings may differ, as the client wrote them.
//! Skipping a value has no nesting limit, so a schema nested deeper than serde_json's 128 levels
//! is passed on here where the tree-based path would refuse the body.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;
use serde_json::value::RawValue;

use super::to_chat::BILLING_PREFIX;
use super::{keep_sampling, output_limit};
use crate::openai::ConvertOptions;
use crate::openai::mapping::{effort_for_anthropic_effort, effort_for_budget, mark_tool_error};

/// A member kept as written, any JSON type but `null`.
#[derive(Clone, Copy)]
struct Raw<'a>(&'a RawValue);

/// serde_json does not check that `\uD800`-style escapes pair up when it only skips a value, as
/// this path does, but refuses unpaired ones when decoding; bodies with such escapes go to the
/// tree-based path so that they are refused the same way. The check is conservative (`\\uD…`
/// also counts), which only costs speed.
fn has_surrogate_escape(s: &str) -> bool {
    let b = s.as_bytes();
    memchr::memmem::find_iter(b, b"\\u").any(|i| matches!(b.get(i + 2), Some(b'd' | b'D')))
}

impl<'de: 'a, 'a> Deserialize<'de> for Raw<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = <&'de RawValue>::deserialize(d)?;
        if raw.get() == "null" {
            return Err(de::Error::custom("is null"));
        }
        Ok(Raw(raw))
    }
}

impl Serialize for Raw<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

/// A JSON string literal kept as written, quotes and escapes included.
#[derive(Clone, Copy)]
struct JStr<'a>(&'a RawValue);

impl<'a> JStr<'a> {
    /// Between the quotes, still escaped.
    fn inner(&self) -> &'a str {
        let s = self.0.get();
        s.get(1..s.len().saturating_sub(1)).unwrap_or("")
    }

    /// Compares with a literal that needs no escaping (type and role names); a name written
    /// with escapes does not match and leaves the request to the tree-based path.
    fn is(&self, literal: &str) -> bool {
        self.inner() == literal
    }

    fn decode(&self) -> Option<Cow<'a, str>> {
        let inner = self.inner();
        if inner.contains('\\') {
            serde_json::from_str::<String>(self.0.get())
                .ok()
                .map(Cow::Owned)
        } else {
            Some(Cow::Borrowed(inner))
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for JStr<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let Raw(raw) = Raw::deserialize(d)?;
        if raw.get().starts_with('"') {
            Ok(JStr(raw))
        } else {
            Err(de::Error::custom("not a string"))
        }
    }
}

impl Serialize for JStr<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

/// A JSON number kept as written, so that `0.7` stays `0.7`.
#[derive(Clone, Copy)]
struct JNum<'a>(&'a RawValue);

impl<'de: 'a, 'a> Deserialize<'de> for JNum<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = <&'de RawValue>::deserialize(d)?;
        // Parsing it once more also refuses numbers out of `f64` range, as decoding does.
        match raw.get().as_bytes().first() {
            Some(b'-' | b'0'..=b'9') if serde_json::from_str::<f64>(raw.get()).is_ok() => {
                Ok(JNum(raw))
            }
            _ => Err(de::Error::custom("not a number")),
        }
    }
}

impl Serialize for JNum<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

/// Derived struct impls also accept a JSON array, read positionally; both APIs want objects.
struct Obj<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = T;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map))
            }
        }
        d.deserialize_map(V(PhantomData)).map(Obj)
    }
}

// ---- Read ----
// Every struct denies unknown members and serde refuses duplicates: both send the request to
// the tree-based path. `Option` members read `null` as absent, as the tree-based path does.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Req<'a> {
    #[allow(dead_code)]
    model: Option<IgnoredAny>,
    #[serde(borrow)]
    messages: Vec<Obj<Msg<'a>>>,
    #[serde(borrow)]
    system: Option<Content<'a>>,
    max_tokens: Option<u64>,
    #[serde(borrow)]
    stop_sequences: Option<Vec<JStr<'a>>>,
    #[serde(borrow)]
    temperature: Option<JNum<'a>>,
    #[serde(borrow)]
    top_p: Option<JNum<'a>>,
    top_k: Option<IgnoredAny>,
    #[serde(borrow)]
    metadata: Option<Obj<Metadata<'a>>>,
    stream: Option<bool>,
    #[serde(borrow)]
    tools: Option<Vec<Obj<Tool<'a>>>>,
    #[serde(borrow)]
    tool_choice: Option<Obj<ToolChoice<'a>>>,
    #[serde(borrow)]
    thinking: Option<Obj<Thinking<'a>>>,
    #[serde(borrow)]
    output_config: Option<Obj<OutputConfig<'a>>>,
    #[serde(borrow)]
    output_format: Option<Obj<Format<'a>>>,
    #[serde(borrow)]
    context_management: Option<Obj<ContextManagement<'a>>>,
    #[allow(dead_code)]
    cache_control: Option<IgnoredAny>,
    #[allow(dead_code)]
    service_tier: Option<IgnoredAny>,
    #[allow(dead_code)]
    safeguards: Option<IgnoredAny>,
    #[allow(dead_code)]
    anthropic_version: Option<IgnoredAny>,
    #[allow(dead_code)]
    anthropic_beta: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Msg<'a> {
    #[serde(borrow)]
    role: JStr<'a>,
    #[serde(borrow)]
    content: Content<'a>,
    output_config: Option<Obj<MsgOutputConfig>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MsgOutputConfig {
    #[allow(dead_code)]
    effort: Option<IgnoredAny>,
}

/// A string, or an array of content blocks, read in one pass: these hold most of the body, and
/// keeping them raw first would scan them twice.
enum Content<'a> {
    Str(Cow<'a, str>),
    Blocks(Vec<Obj<Block<'a>>>),
}

impl<'de: 'a, 'a> Deserialize<'de> for Content<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Content<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of content blocks")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Content::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Content::Str(Cow::Owned(v.to_string())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Content::Str(Cow::Owned(v)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut blocks = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(block) = seq.next_element()? {
                    blocks.push(block);
                }
                Ok(Content::Blocks(blocks))
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// Every member any block type may have; which are allowed is checked per type with `mask`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Block<'a> {
    #[serde(rename = "type", borrow)]
    kind: JStr<'a>,
    #[serde(borrow)]
    text: Option<JStr<'a>>,
    cache_control: Option<IgnoredAny>,
    citations: Option<IgnoredAny>,
    #[serde(borrow)]
    source: Option<Obj<Source<'a>>>,
    #[serde(borrow)]
    id: Option<JStr<'a>>,
    #[serde(borrow)]
    name: Option<JStr<'a>>,
    #[serde(borrow)]
    input: Option<&'a RawValue>,
    #[serde(borrow)]
    tool_use_id: Option<JStr<'a>>,
    #[serde(borrow)]
    content: Option<Content<'a>>,
    is_error: Option<bool>,
    thinking: Option<IgnoredAny>,
    signature: Option<IgnoredAny>,
    data: Option<IgnoredAny>,
}

const TEXT: u16 = 1;
const CACHE_CONTROL: u16 = 1 << 1;
const CITATIONS: u16 = 1 << 2;
const SOURCE: u16 = 1 << 3;
const ID: u16 = 1 << 4;
const NAME: u16 = 1 << 5;
const INPUT: u16 = 1 << 6;
const TOOL_USE_ID: u16 = 1 << 7;
const CONTENT: u16 = 1 << 8;
const IS_ERROR: u16 = 1 << 9;
const THINKING: u16 = 1 << 10;
const SIGNATURE: u16 = 1 << 11;
const DATA: u16 = 1 << 12;

impl<'a> Block<'a> {
    fn mask(&self) -> u16 {
        [
            (self.text.is_some(), TEXT),
            (self.cache_control.is_some(), CACHE_CONTROL),
            (self.citations.is_some(), CITATIONS),
            (self.source.is_some(), SOURCE),
            (self.id.is_some(), ID),
            (self.name.is_some(), NAME),
            (self.input.is_some(), INPUT),
            (self.tool_use_id.is_some(), TOOL_USE_ID),
            (self.content.is_some(), CONTENT),
            (self.is_error.is_some(), IS_ERROR),
            (self.thinking.is_some(), THINKING),
            (self.signature.is_some(), SIGNATURE),
            (self.data.is_some(), DATA),
        ]
        .iter()
        .filter(|(present, _)| *present)
        .fold(0, |m, (_, bit)| m | bit)
    }

    /// Members outside `allowed` are refused by the tree-based path.
    fn only(&self, allowed: u16) -> bool {
        self.mask() & !allowed == 0
    }

    /// The text of a text block, which may carry nothing else but cache and citation markers.
    fn text(&self) -> Option<JStr<'a>> {
        if self.kind.is("text") && self.only(TEXT | CACHE_CONTROL | CITATIONS) {
            self.text
        } else {
            None
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Source<'a> {
    #[serde(rename = "type", borrow)]
    kind: JStr<'a>,
    #[serde(borrow)]
    media_type: Option<JStr<'a>>,
    #[serde(borrow)]
    data: Option<JStr<'a>>,
    #[serde(borrow)]
    url: Option<JStr<'a>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Metadata<'a> {
    #[serde(borrow)]
    user_id: Option<JStr<'a>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Tool<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<JStr<'a>>,
    #[serde(borrow)]
    name: Option<JStr<'a>>,
    #[serde(borrow)]
    description: Option<JStr<'a>>,
    #[serde(borrow)]
    input_schema: Option<Raw<'a>>,
    #[allow(dead_code)]
    cache_control: Option<IgnoredAny>,
    defer_loading: Option<bool>,
    strict: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ToolChoice<'a> {
    #[serde(rename = "type", borrow)]
    kind: JStr<'a>,
    #[serde(borrow)]
    name: Option<JStr<'a>>,
    disable_parallel_tool_use: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Thinking<'a> {
    #[serde(rename = "type", borrow)]
    kind: JStr<'a>,
    budget_tokens: Option<u64>,
    #[allow(dead_code)]
    display: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OutputConfig<'a> {
    #[serde(borrow)]
    effort: Option<JStr<'a>>,
    #[serde(borrow)]
    format: Option<Obj<Format<'a>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Format<'a> {
    #[serde(rename = "type", borrow)]
    kind: JStr<'a>,
    #[serde(borrow)]
    schema: Option<Raw<'a>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ContextManagement<'a> {
    #[serde(borrow)]
    edits: Option<Vec<Obj<Edit<'a>>>>,
}

/// Only the type of an edit matters; its other members are not read.
#[derive(Deserialize)]
struct Edit<'a> {
    #[serde(rename = "type", borrow)]
    kind: JStr<'a>,
}

// ---- Written: the same shapes as `types::ChatRequest`, borrowing from the body ----

#[derive(Serialize)]
struct Out<'a> {
    model: &'a str,
    messages: Vec<OutMsg<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_completion_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<JNum<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<JNum<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop: Option<Vec<JStr<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<JStr<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<Vec<OutTool<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<OutChoice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parallel_tool_calls: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_effort: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<OutFormat<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<OutStreamOptions>,
}

#[derive(Serialize)]
struct OutStreamOptions {
    include_usage: bool,
}

#[derive(Serialize)]
#[serde(tag = "role", rename_all = "lowercase")]
enum OutMsg<'a> {
    System {
        content: OutContent<'a>,
    },
    User {
        content: OutContent<'a>,
    },
    Assistant {
        content: Option<OutContent<'a>>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<OutToolCall<'a>>,
    },
    Tool {
        tool_call_id: JStr<'a>,
        content: OutContent<'a>,
    },
}

/// Text copied from the body as written, or decoded (and escaped again when written).
enum Txt<'a> {
    Raw(JStr<'a>),
    Text(Cow<'a, str>),
}

impl<'a> Txt<'a> {
    fn empty() -> Self {
        Txt::Text(Cow::Borrowed(""))
    }

    fn decode(&self) -> Option<Cow<'_, str>> {
        match self {
            Txt::Raw(j) => j.decode(),
            Txt::Text(t) => Some(Cow::Borrowed(t)),
        }
    }
}

impl Serialize for Txt<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Txt::Raw(j) => j.serialize(s),
            Txt::Text(t) => t.serialize(s),
        }
    }
}

#[derive(Serialize)]
#[serde(untagged)]
enum OutContent<'a> {
    Text(Txt<'a>),
    Parts(Vec<OutPart<'a>>),
}

impl<'a> OutContent<'a> {
    /// As `types::Content::from_parts`.
    fn from_parts(mut parts: Vec<OutPart<'a>>) -> Self {
        if let [OutPart::Text { .. }] = parts.as_slice()
            && let Some(OutPart::Text { text }) = parts.pop()
        {
            return OutContent::Text(text);
        }
        if parts.is_empty() {
            return OutContent::Text(Txt::empty());
        }
        OutContent::Parts(parts)
    }

    fn from_texts(texts: Vec<Txt<'a>>) -> Self {
        Self::from_parts(
            texts
                .into_iter()
                .map(|text| OutPart::Text { text })
                .collect(),
        )
    }
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum OutPart<'a> {
    Text { text: Txt<'a> },
    ImageUrl { image_url: OutImageUrl<'a> },
}

#[derive(Serialize)]
struct OutImageUrl<'a> {
    url: Txt<'a>,
}

#[derive(Serialize)]
struct OutToolCall<'a> {
    id: JStr<'a>,
    #[serde(rename = "type")]
    kind: &'static str,
    function: OutFunctionCall<'a>,
}

#[derive(Serialize)]
struct OutFunctionCall<'a> {
    name: JStr<'a>,
    arguments: String,
}

#[derive(Serialize)]
struct OutTool<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    function: OutFunctionDef<'a>,
}

#[derive(Serialize)]
struct OutFunctionDef<'a> {
    name: JStr<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<JStr<'a>>,
    parameters: Raw<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    strict: Option<bool>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum OutChoice<'a> {
    Mode(&'static str),
    Function {
        function: OutChoiceFunction<'a>,
        #[serde(rename = "type")]
        kind: &'static str,
    },
}

#[derive(Serialize)]
struct OutChoiceFunction<'a> {
    name: JStr<'a>,
}

#[derive(Serialize)]
struct OutFormat<'a> {
    json_schema: OutJsonSchema<'a>,
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
struct OutJsonSchema<'a> {
    name: &'static str,
    schema: Raw<'a>,
    strict: bool,
}

// ---- Conversion ----

/// The converted body, or `None` when the tree-based path must decide.
pub(super) fn convert(body: &[u8], opts: &ConvertOptions) -> Option<Vec<u8>> {
    // Replaying reasoning is rare (a few servers want it); the tree path writes it.
    if opts.quirks.replay_reasoning {
        return None;
    }
    let target_model = opts.target_model.as_str();
    let text = std::str::from_utf8(body).ok()?;
    if has_surrogate_escape(text) {
        return None;
    }
    let Obj(req) = serde_json::from_str::<Obj<Req<'_>>>(text).ok()?;
    if req.top_k.is_some() {
        return None;
    }

    let mut messages = Vec::with_capacity(req.messages.len() + 1);
    if let Some(system) = &req.system {
        let mut texts = Vec::new();
        for t in system_texts(system)? {
            if !t.decode()?.starts_with(BILLING_PREFIX) {
                texts.push(t);
            }
        }
        if !texts.is_empty() {
            messages.push(OutMsg::System {
                content: OutContent::from_texts(texts),
            });
        }
    }
    for Obj(m) in &req.messages {
        convert_message(m, &mut messages)?;
    }
    if req
        .messages
        .last()
        .is_some_and(|Obj(m)| m.role.is("assistant"))
    {
        return None;
    }

    let tools = match &req.tools {
        None => None,
        Some(list) => {
            let mut tools = Vec::with_capacity(list.len());
            for Obj(t) in list {
                tools.push(chat_tool(t)?);
            }
            (!tools.is_empty()).then_some(tools)
        }
    };
    let (tool_choice, parallel_tool_calls) = match &req.tool_choice {
        Some(Obj(choice)) => {
            let mapped = chat_tool_choice(choice)?;
            if tools.is_some() {
                mapped
            } else {
                (None, None)
            }
        }
        None => (None, None),
    };

    let mut response_format = None;
    if let Some(format) = req
        .output_config
        .as_ref()
        .and_then(|Obj(oc)| oc.format.as_ref())
    {
        response_format = Some(chat_response_format(&format.0)?);
    }
    if let Some(Obj(format)) = &req.output_format {
        response_format = Some(chat_response_format(format)?);
    }
    let reasoning_effort = reasoning_effort(&req)?.filter(|_| opts.quirks.reasoning_effort);
    let temperature = sampled(req.temperature, "temperature", opts)?;
    let top_p = sampled(req.top_p, "top_p", opts)?;
    let (max_completion_tokens, max_tokens) = output_limit(req.max_tokens, &opts.quirks);
    if let Some(Obj(cm)) = &req.context_management {
        for Obj(edit) in cm.edits.iter().flatten() {
            if !edit.kind.decode()?.starts_with("clear_thinking_") {
                return None;
            }
        }
    }

    let user = match &req.metadata {
        Some(Obj(meta)) => meta.user_id,
        None => None,
    };
    let stop = req.stop_sequences.clone().filter(|s| !s.is_empty());
    let stream = req.stream.unwrap_or(false);

    let out = Out {
        model: target_model,
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
        stream_options: stream.then_some(OutStreamOptions {
            include_usage: true,
        }),
    };
    // What is dropped (thinking, signatures, cache markers) makes the output smaller than the
    // body, so one allocation almost always suffices.
    let mut buf = Vec::with_capacity(body.len() + 256);
    serde_json::to_writer(&mut buf, &out).ok()?;
    Some(buf)
}

/// A sampling parameter as the model takes it; a refused value is left to the tree path, which
/// names it.
fn sampled<'a>(n: Option<JNum<'a>>, name: &str, opts: &ConvertOptions) -> Option<Option<JNum<'a>>> {
    match n {
        None => Some(None),
        Some(n) => {
            let value = serde_json::from_str::<f64>(n.0.get()).ok()?;
            let keep = keep_sampling(value, name, &opts.target_model, &opts.quirks).ok()?;
            Some(keep.then_some(n))
        }
    }
}

fn system_texts<'a>(content: &Content<'a>) -> Option<Vec<Txt<'a>>> {
    match content {
        Content::Str(s) => Some(vec![Txt::Text(s.clone())]),
        Content::Blocks(blocks) => blocks.iter().map(|Obj(b)| b.text().map(Txt::Raw)).collect(),
    }
}

fn convert_message<'a>(m: &Msg<'a>, out: &mut Vec<OutMsg<'a>>) -> Option<()> {
    if m.role.is("system") {
        let texts = system_texts(&m.content)?;
        out.push(OutMsg::System {
            content: OutContent::from_texts(texts),
        });
        return Some(());
    }
    if m.output_config.is_some() {
        return None;
    }
    if m.role.is("user") {
        user_message(&m.content, out)
    } else if m.role.is("assistant") {
        out.push(assistant_message(&m.content)?);
        Some(())
    } else {
        None
    }
}

fn user_message<'a>(content: &Content<'a>, out: &mut Vec<OutMsg<'a>>) -> Option<()> {
    let blocks = match content {
        Content::Str(s) => {
            out.push(OutMsg::User {
                content: OutContent::Text(Txt::Text(s.clone())),
            });
            return Some(());
        }
        Content::Blocks(blocks) => blocks,
    };
    let mut parts = Vec::new();
    for Obj(b) in blocks {
        if b.kind.is("text") {
            parts.push(OutPart::Text {
                text: Txt::Raw(b.text()?),
            });
        } else if b.kind.is("image") {
            parts.push(image_part(b)?);
        } else if b.kind.is("tool_result") {
            flush_user(&mut parts, out);
            out.push(tool_message(b)?);
        } else {
            return None;
        }
    }
    flush_user(&mut parts, out);
    Some(())
}

fn flush_user<'a>(parts: &mut Vec<OutPart<'a>>, out: &mut Vec<OutMsg<'a>>) {
    if !parts.is_empty() {
        out.push(OutMsg::User {
            content: OutContent::from_parts(std::mem::take(parts)),
        });
    }
}

fn image_part<'a>(b: &Block<'a>) -> Option<OutPart<'a>> {
    if !b.only(SOURCE | CACHE_CONTROL) {
        return None;
    }
    let Obj(source) = b.source.as_ref()?;
    let url = if source.kind.is("base64") && source.url.is_none() {
        Txt::Text(Cow::Owned(format!(
            "data:{};base64,{}",
            source.media_type?.decode()?,
            source.data?.decode()?
        )))
    } else if source.kind.is("url") && source.media_type.is_none() && source.data.is_none() {
        Txt::Raw(source.url?)
    } else {
        return None;
    };
    Some(OutPart::ImageUrl {
        image_url: OutImageUrl { url },
    })
}

fn tool_message<'a>(b: &Block<'a>) -> Option<OutMsg<'a>> {
    if !b.only(TOOL_USE_ID | CONTENT | IS_ERROR | CACHE_CONTROL) {
        return None;
    }
    let tool_call_id = b.tool_use_id?;
    let texts = match &b.content {
        None => Vec::new(),
        Some(Content::Str(s)) => vec![Txt::Text(s.clone())],
        Some(Content::Blocks(items)) => items
            .iter()
            .map(|Obj(item)| item.text().map(Txt::Raw))
            .collect::<Option<Vec<_>>>()?,
    };
    let content = if b.is_error == Some(true) {
        let decoded = texts.iter().map(Txt::decode).collect::<Option<Vec<_>>>()?;
        OutContent::Text(Txt::Text(Cow::Owned(mark_tool_error(&decoded.join("\n")))))
    } else if b.content.is_none() {
        OutContent::Text(Txt::empty())
    } else {
        OutContent::from_texts(texts)
    };
    Some(OutMsg::Tool {
        tool_call_id,
        content,
    })
}

fn assistant_message<'a>(content: &Content<'a>) -> Option<OutMsg<'a>> {
    let blocks = match content {
        Content::Str(s) => {
            return Some(OutMsg::Assistant {
                content: Some(OutContent::Text(Txt::Text(s.clone()))),
                tool_calls: Vec::new(),
            });
        }
        Content::Blocks(blocks) => blocks,
    };
    let mut texts = Vec::new();
    let mut tool_calls = Vec::new();
    for Obj(b) in blocks {
        if b.kind.is("text") {
            texts.push(Txt::Raw(b.text()?));
        } else if b.kind.is("tool_use") {
            if !b.only(ID | NAME | INPUT | CACHE_CONTROL) {
                return None;
            }
            // Arguments are written compactly, as the tree-based path does; tool inputs are small
            // next to the rest of the body.
            let arguments = match b.input {
                None => "{}".to_string(),
                Some(raw) => serde_json::from_str::<Value>(raw.get()).ok()?.to_string(),
            };
            tool_calls.push(OutToolCall {
                id: b.id?,
                kind: "function",
                function: OutFunctionCall {
                    name: b.name?,
                    arguments,
                },
            });
        } else if b.kind.is("thinking") || b.kind.is("redacted_thinking") {
            // Dropped, as in the tree-based path.
        } else {
            return None;
        }
    }
    let content = if texts.is_empty() {
        tool_calls
            .is_empty()
            .then(|| OutContent::Text(Txt::empty()))
    } else {
        Some(OutContent::from_texts(texts))
    };
    Some(OutMsg::Assistant {
        content,
        tool_calls,
    })
}

fn chat_tool<'a>(t: &Tool<'a>) -> Option<OutTool<'a>> {
    if t.kind.is_some_and(|k| !k.is("custom")) || t.defer_loading == Some(true) {
        return None;
    }
    Some(OutTool {
        kind: "function",
        function: OutFunctionDef {
            name: t.name?,
            description: t.description,
            parameters: t.input_schema?,
            strict: t.strict,
        },
    })
}

fn chat_tool_choice<'a>(c: &ToolChoice<'a>) -> Option<(Option<OutChoice<'a>>, Option<bool>)> {
    let choice = if c.kind.is("auto") {
        OutChoice::Mode("auto")
    } else if c.kind.is("any") {
        OutChoice::Mode("required")
    } else if c.kind.is("none") {
        OutChoice::Mode("none")
    } else if c.kind.is("tool") {
        OutChoice::Function {
            function: OutChoiceFunction { name: c.name? },
            kind: "function",
        }
    } else {
        return None;
    };
    let parallel = (c.disable_parallel_tool_use == Some(true)).then_some(false);
    Some((Some(choice), parallel))
}

fn chat_response_format<'a>(f: &Format<'a>) -> Option<OutFormat<'a>> {
    if !f.kind.is("json_schema") {
        return None;
    }
    Some(OutFormat {
        json_schema: OutJsonSchema {
            name: "output",
            schema: f.schema?,
            strict: true,
        },
        kind: "json_schema",
    })
}

/// `None` when the request is refused; `Some(None)` when no effort is set.
fn reasoning_effort(req: &Req<'_>) -> Option<Option<&'static str>> {
    let effort = match req
        .output_config
        .as_ref()
        .and_then(|Obj(oc)| oc.effort.as_ref())
    {
        Some(e) => Some(effort_for_anthropic_effort(&e.decode()?)?),
        None => None,
    };
    let Some(Obj(thinking)) = &req.thinking else {
        return Some(effort);
    };
    if thinking.kind.is("enabled") {
        Some(Some(effort_for_budget(thinking.budget_tokens?)))
    } else if thinking.kind.is("adaptive") {
        Some(Some(effort.unwrap_or("medium")))
    } else if thinking.kind.is("disabled") {
        Some(effort)
    } else {
        None
    }
}
