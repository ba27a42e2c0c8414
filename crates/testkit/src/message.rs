//! Assistant replies and their JSON, written by hand so keys keep the order the real API uses.

use serde_json::Value;

/// Encodes a string as a JSON string literal.
pub(crate) fn js(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

/// One content block of an assistant reply.
#[derive(Debug, Clone)]
pub(crate) enum Block {
    Text(String),
    Thinking {
        thinking: String,
        signature: String,
    },
    ToolUse {
        id: String,
        name: String,
        /// Compact JSON text, kept verbatim so a caller-supplied input comes back byte for byte.
        input: String,
    },
}

impl Block {
    fn to_json(&self) -> String {
        match self {
            Block::Text(text) => format!(r#"{{"type":"text","text":{}}}"#, js(text)),
            Block::Thinking {
                thinking,
                signature,
            } => format!(
                r#"{{"type":"thinking","thinking":{},"signature":{}}}"#,
                js(thinking),
                js(signature)
            ),
            Block::ToolUse { id, name, input } => format!(
                r#"{{"type":"tool_use","id":{},"name":{},"input":{}}}"#,
                js(id),
                js(name),
                input
            ),
        }
    }
}

/// Token counts reported for one reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Usage {
    pub input: u64,
    pub output: u64,
    pub cache_write: u64,
    pub cache_read: u64,
}

impl Usage {
    /// The usage object; `output` is passed separately because `message_start` reports 1.
    pub(crate) fn to_json(self, output: u64) -> String {
        format!(
            concat!(
                r#"{{"input_tokens":{},"cache_creation_input_tokens":{},"cache_read_input_tokens":{},"#,
                r#""cache_creation":{{"ephemeral_5m_input_tokens":{},"ephemeral_1h_input_tokens":0}},"#,
                r#""output_tokens":{},"service_tier":"standard"}}"#
            ),
            self.input, self.cache_write, self.cache_read, self.cache_write, output
        )
    }

    pub(crate) fn to_value(self, output: u64) -> Value {
        serde_json::from_str(&self.to_json(output)).unwrap_or(Value::Null)
    }
}

/// A complete assistant turn, rendered either as a Message JSON or as an SSE stream.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub id: String,
    pub model: String,
    pub blocks: Vec<Block>,
    pub stop_reason: &'static str,
    pub usage: Usage,
    /// Adds an unknown top-level field to the message, to prove it survives the gateway.
    pub extra_field: bool,
}

impl Reply {
    /// The message object, with `content`, `stop_reason` and the output count chosen by the caller.
    pub(crate) fn message_object(
        &self,
        content: &str,
        stop_reason: Option<&str>,
        output: u64,
    ) -> String {
        format!(
            concat!(
                r#"{{"id":{},"type":"message","role":"assistant","model":{},"content":[{}],"#,
                r#""stop_reason":{},"stop_sequence":null,"usage":{}{}}}"#
            ),
            js(&self.id),
            js(&self.model),
            content,
            stop_reason.map_or_else(|| "null".to_owned(), js),
            self.usage.to_json(output),
            if self.extra_field {
                r#","zzz_extra":true"#
            } else {
                ""
            }
        )
    }

    /// The non-streaming response body.
    pub(crate) fn message_json(&self) -> String {
        let content: Vec<String> = self.blocks.iter().map(Block::to_json).collect();
        self.message_object(
            &content.join(","),
            Some(self.stop_reason),
            self.usage.output,
        )
    }
}
