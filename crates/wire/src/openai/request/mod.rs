//! Request conversion: Messages → Chat Completions (`to_chat`, an Anthropic-dialect client in
//! front of an OpenAI-compatible upstream) and Chat Completions → Messages (`to_messages`, the
//! other way round). The module documentation of `openai` lists every mapping, drop and refusal.

mod to_chat;
mod to_chat_fast;
mod to_messages;

pub use to_chat::messages_to_chat_request;
pub use to_messages::chat_to_messages_request;

use crate::openai::error::ConvertError;
use crate::openai::fields::at;
use crate::openai::{MaxTokensField, ModelQuirks};
use bytes::Bytes;
use serde_json::{Value, json};

/// The converted body; serialising JSON values and plain structs cannot fail in practice.
fn serialise(v: &impl serde::Serialize) -> Result<Bytes, ConvertError> {
    serde_json::to_vec(v)
        .map(Bytes::from)
        .map_err(|e| ConvertError::new("body", format!("cannot serialise: {e}")))
}

/// An array that must hold only strings (stop sequences).
fn strings(values: &[Value], path: &str) -> Result<Vec<String>, ConvertError> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::String(s) => Ok(s.clone()),
            _ => Err(ConvertError::new(at(path, i), "must be a string")),
        })
        .collect()
}

/// The output limit as `(max_completion_tokens, max_tokens)`, under the one name the model takes.
fn output_limit(limit: Option<u64>, quirks: &ModelQuirks) -> (Option<u64>, Option<u64>) {
    match quirks.max_tokens {
        MaxTokensField::MaxCompletionTokens => (limit, None),
        MaxTokensField::MaxTokens => (None, limit),
    }
}

/// Whether a sampling parameter (`temperature`, `top_p`) is sent. A model that takes none gets
/// none: the default 1 is dropped, as leaving it out changes nothing; any other value would be
/// silently ignored, so it is refused.
fn keep_sampling(
    value: f64,
    name: &str,
    model: &str,
    quirks: &ModelQuirks,
) -> Result<bool, ConvertError> {
    if quirks.sampling {
        return Ok(true);
    }
    #[allow(clippy::float_cmp)] // 1 is exact in JSON and f64; only that value is the default.
    if value == 1.0 {
        return Ok(false);
    }
    Err(ConvertError::new(
        name,
        format!(
            "model `{model}` is a reasoning model and only takes the default {name} (1); remove {name} or pick another model"
        ),
    ))
}

/// Tool-call arguments as the object Anthropic's `input` must be; servers send `""` for tools
/// without parameters.
pub(in crate::openai) fn parse_arguments(
    arguments: &str,
    path: &str,
) -> Result<Value, ConvertError> {
    if arguments.trim().is_empty() {
        return Ok(json!({}));
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(ConvertError::new(path, "must encode a JSON object")),
        Err(e) => Err(ConvertError::new(path, format!("is not valid JSON: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_must_be_a_json_object() {
        assert_eq!(parse_arguments("", "a").unwrap(), json!({}));
        assert_eq!(
            parse_arguments(" {\"x\": [1]} ", "a").unwrap(),
            json!({"x": [1]})
        );
        assert_eq!(
            parse_arguments("[1]", "a").unwrap_err().to_string(),
            "a: must encode a JSON object"
        );
        assert!(
            parse_arguments("{\"x\":", "a")
                .unwrap_err()
                .message
                .starts_with("is not valid JSON")
        );
        assert_eq!(
            strings(&[json!("s"), json!(1)], "stop").unwrap_err().field,
            "stop[1]"
        );
    }
}
