//! Repeated tool calls in a conversation, for the runaway-loop breaker.
//!
//! Claude Code re-sends the whole conversation every turn, so the history in the request is
//! enough to see a loop: no per-session state, and every replica reaches the same verdict.

use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;

// Messages stay raw until chosen: only the latest assistant turns are parsed in full.
#[derive(Deserialize)]
struct Conversation<'a> {
    #[serde(default, borrow)]
    messages: Vec<&'a serde_json::value::RawValue>,
}

#[derive(Deserialize)]
struct Role<'a> {
    #[serde(default, borrow)]
    role: &'a str,
}

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    content: Content,
}

#[derive(Deserialize, Default)]
#[serde(untagged)]
enum Content {
    Blocks(Vec<Block>),
    #[default]
    #[allow(dead_code)]
    Other,
    #[allow(dead_code)]
    Text(serde::de::IgnoredAny),
}

#[derive(Deserialize)]
struct Block {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    input: Option<Value>,
}

/// The tool call (name) repeated most often with an identical input within the latest
/// `within_turns` assistant messages, and how often. Inputs compare by value (key order and
/// whitespace do not matter). `None` when no tool was called or the body is unreadable.
pub fn most_repeated_tool_call(body: &[u8], within_turns: u32) -> Option<(String, u32)> {
    let conv: Conversation<'_> = serde_json::from_slice(body).ok()?;
    let mut counts: HashMap<(String, String), u32> = HashMap::new();
    let assistant = conv
        .messages
        .iter()
        .rev()
        .filter(|raw| {
            serde_json::from_str::<Role<'_>>(raw.get()).is_ok_and(|r| r.role == "assistant")
        })
        .take(within_turns as usize)
        .filter_map(|raw| serde_json::from_str::<Message>(raw.get()).ok());
    for m in assistant {
        let Content::Blocks(blocks) = &m.content else {
            continue;
        };
        for b in blocks {
            if b.kind != "tool_use" && b.kind != "server_tool_use" {
                continue;
            }
            let name = b.name.clone().unwrap_or_default();
            // serde_json's map is ordered by key, so equal inputs print equal.
            let input = b.input.as_ref().map(Value::to_string).unwrap_or_default();
            *counts.entry((name, input)).or_default() += 1;
        }
    }
    counts
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(&a.0)))
        .map(|((name, _), n)| (name, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn convo(calls: &[(&str, &str)]) -> Vec<u8> {
        let mut msgs = vec![r#"{"role":"user","content":"fix the tests"}"#.to_string()];
        for (i, (name, input)) in calls.iter().enumerate() {
            msgs.push(format!(
                r#"{{"role":"assistant","content":[{{"type":"text","text":"t"}},{{"type":"tool_use","id":"toolu_{i}","name":"{name}","input":{input}}}]}}"#
            ));
            msgs.push(format!(
                r#"{{"role":"user","content":[{{"type":"tool_result","tool_use_id":"toolu_{i}","content":"same"}}]}}"#
            ));
        }
        format!(
            r#"{{"model":"m","max_tokens":1,"messages":[{}]}}"#,
            msgs.join(",")
        )
        .into_bytes()
    }

    #[test]
    fn identical_calls_are_counted_within_the_window() {
        let b = convo(&[
            ("Read", r#"{"file_path":"a"}"#),
            ("Bash", r#"{"command":"npm test","description":"run"}"#),
            ("Bash", r#"{"description":"run","command":"npm test"}"#),
            ("Bash", r#"{"command":"npm test",  "description":"run"}"#),
        ]);
        assert_eq!(most_repeated_tool_call(&b, 10), Some(("Bash".into(), 3)));
        assert_eq!(most_repeated_tool_call(&b, 2), Some(("Bash".into(), 2)));
    }

    #[test]
    fn different_inputs_are_different_calls() {
        let b = convo(&[
            ("Bash", r#"{"command":"ls"}"#),
            ("Bash", r#"{"command":"ls -la"}"#),
        ]);
        assert_eq!(most_repeated_tool_call(&b, 10).map(|x| x.1), Some(1));
        let text_only = br#"{"messages":[{"role":"assistant","content":"hello"}]}"#;
        assert_eq!(most_repeated_tool_call(text_only, 10), None);
        assert_eq!(most_repeated_tool_call(b"not json", 10), None);
    }
}
