//! Serde types of the Chat Completions dialect: what the converters write (requests, responses,
//! stream chunks) and the lenient shapes they read from OpenAI-compatible upstreams.

use serde::{Deserialize, Serialize};
use serde_json::Value;

// ---- Written: requests ----

#[derive(Serialize)]
pub(super) struct ChatRequest {
    pub model: String,
    pub messages: Vec<ChatMessage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<ChatTool>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_effort: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_format: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
}

#[derive(Serialize)]
pub(super) struct StreamOptions {
    pub include_usage: bool,
}

#[derive(Serialize)]
#[serde(tag = "role", rename_all = "lowercase")]
pub(super) enum ChatMessage {
    System {
        content: Content,
    },
    User {
        content: Content,
    },
    Assistant {
        content: Option<Content>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<ToolCall>,
        #[serde(skip_serializing_if = "Option::is_none")]
        reasoning_content: Option<String>,
    },
    Tool {
        tool_call_id: String,
        content: Content,
    },
}

#[derive(Serialize)]
#[serde(untagged)]
pub(super) enum Content {
    Text(String),
    Parts(Vec<Part>),
}

impl Content {
    /// One text is a plain string, which every OpenAI-compatible server accepts; several stay
    /// separate parts so that block boundaries survive a round trip.
    pub(super) fn from_parts(mut parts: Vec<Part>) -> Content {
        if let [Part::Text { .. }] = parts.as_slice()
            && let Some(Part::Text { text }) = parts.pop()
        {
            return Content::Text(text);
        }
        if parts.is_empty() {
            return Content::Text(String::new());
        }
        Content::Parts(parts)
    }

    pub(super) fn from_texts(texts: Vec<String>) -> Content {
        Content::from_parts(texts.into_iter().map(|text| Part::Text { text }).collect())
    }
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum Part {
    Text { text: String },
    ImageUrl { image_url: ImageUrl },
}

#[derive(Serialize)]
pub(super) struct ImageUrl {
    pub url: String,
}

#[derive(Serialize)]
pub(super) struct ToolCall {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: FunctionCall,
}

#[derive(Serialize)]
pub(super) struct FunctionCall {
    pub name: String,
    pub arguments: String,
}

#[derive(Serialize)]
pub(super) struct ChatTool {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: FunctionDef,
}

#[derive(Serialize)]
pub(super) struct FunctionDef {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub parameters: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

// ---- Written: responses and stream chunks ----

#[derive(Serialize)]
pub(super) struct ChatResponse {
    pub id: String,
    pub object: &'static str,
    pub created: u64,
    pub model: String,
    pub choices: Vec<ResponseChoice>,
    pub usage: ChatUsage,
}

#[derive(Serialize)]
pub(super) struct ResponseChoice {
    pub index: u32,
    pub message: ResponseMessage,
    pub logprobs: Option<()>,
    pub finish_reason: &'static str,
}

#[derive(Serialize)]
pub(super) struct ResponseMessage {
    pub role: &'static str,
    pub content: Option<String>,
    pub refusal: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub thinking_blocks: Vec<Value>,
}

#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub(super) struct ChatUsage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    pub prompt_tokens_details: PromptTokensDetails,
}

#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub(super) struct PromptTokensDetails {
    pub cached_tokens: u64,
}

#[derive(Serialize)]
pub(super) struct ChatChunk<'a> {
    pub id: &'a str,
    pub object: &'static str,
    pub created: u64,
    pub model: &'a str,
    pub choices: Vec<ChunkChoice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<ChatUsage>,
}

#[derive(Serialize)]
pub(super) struct ChunkChoice {
    pub index: u32,
    pub delta: ChunkDelta,
    pub logprobs: Option<()>,
    pub finish_reason: Option<&'static str>,
}

#[derive(Serialize, Default)]
pub(super) struct ChunkDelta {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCallDelta>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking_blocks: Option<Vec<Value>>,
}

#[derive(Serialize)]
pub(super) struct ToolCallDelta {
    pub index: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    pub function: FunctionDelta,
}

#[derive(Serialize)]
pub(super) struct FunctionDelta {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub arguments: String,
}

// ---- Read: responses and stream chunks from OpenAI-compatible upstreams ----
// Every member is optional: servers differ in what they omit, and a missing member is not an
// error as long as the content can be read.

/// A whole response or one stream chunk (`message` in the former, `delta` in the latter).
#[derive(Deserialize)]
pub(super) struct ChatIn {
    pub id: Option<String>,
    pub choices: Option<Vec<ChoiceIn>>,
    pub usage: Option<Value>,
    pub error: Option<Value>,
}

#[derive(Deserialize)]
pub(super) struct ChoiceIn {
    pub index: Option<u64>,
    pub message: Option<MessageIn>,
    pub delta: Option<MessageIn>,
    pub finish_reason: Option<String>,
    /// vLLM names the stop sequence that matched (a string) or the stop token (a number).
    pub stop_reason: Option<Value>,
}

#[derive(Deserialize)]
pub(super) struct MessageIn {
    pub content: Option<Value>,
    /// DeepSeek and vLLM before 0.10.
    pub reasoning_content: Option<Value>,
    /// vLLM since 0.10, OpenRouter.
    pub reasoning: Option<Value>,
    pub refusal: Option<Value>,
    pub tool_calls: Option<Vec<ToolCallIn>>,
}

#[derive(Deserialize)]
pub(super) struct ToolCallIn {
    pub index: Option<u64>,
    pub id: Option<String>,
    pub function: Option<FunctionIn>,
}

#[derive(Deserialize)]
pub(super) struct FunctionIn {
    pub name: Option<String>,
    /// A JSON string per the API; a few servers send the object itself.
    pub arguments: Option<Value>,
}

impl MessageIn {
    /// The visible text: a string, or the text parts of an array.
    pub(super) fn text(&self) -> String {
        text_of(self.content.as_ref())
    }

    /// Reasoning text under whichever name the server uses (never both: some send the same text
    /// under both names).
    pub(super) fn reasoning(&self) -> String {
        let first = text_of(self.reasoning_content.as_ref());
        if first.is_empty() {
            text_of(self.reasoning.as_ref())
        } else {
            first
        }
    }

    pub(super) fn refusal(&self) -> String {
        text_of(self.refusal.as_ref())
    }
}

fn text_of(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect(),
        _ => String::new(),
    }
}

impl FunctionIn {
    /// The arguments text exactly as sent.
    pub(super) fn arguments(&self) -> String {
        match &self.arguments {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
        }
    }
}
