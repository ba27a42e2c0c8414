//! The tables both directions share: stop reasons, reasoning effort, token usage and the mark of
//! a failed tool result.

use super::types::{ChatUsage, PromptTokensDetails};
use crate::Usage;
use serde_json::{Value, json};

/// `max_tokens` for an Anthropic upstream when an OpenAI client sets no limit (Anthropic requires
/// one; every current Claude model can produce at least this many tokens).
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// Anthropic's smallest accepted `thinking.budget_tokens`.
pub(super) const MIN_THINKING_BUDGET: u64 = 1024;

/// Chat Completions `finish_reason` for an Anthropic `stop_reason`.
pub(super) fn finish_reason_for(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens" | "model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        // end_turn, stop_sequence, pause_turn (server tools only, which never get this far) and
        // reasons added later: the turn ended normally.
        _ => "stop",
    }
}

/// Anthropic `stop_reason` for a Chat Completions `finish_reason`.
pub(super) fn stop_reason_for(finish_reason: Option<&str>) -> &'static str {
    match finish_reason {
        Some("length") => "max_tokens",
        Some("tool_calls" | "function_call") => "tool_use",
        Some("content_filter") => "refusal",
        _ => "end_turn",
    }
}

/// `reasoning_effort` for an Anthropic thinking budget: below 4096 tokens is `low`, below 16384
/// `medium`, anything larger `high`.
pub(super) fn effort_for_budget(budget: u64) -> &'static str {
    match budget {
        0..4096 => "low",
        4096..16384 => "medium",
        _ => "high",
    }
}

/// `reasoning_effort` for Anthropic's `output_config.effort`. `max` becomes `high`, the highest
/// level every OpenAI reasoning model accepts.
pub(super) fn effort_for_anthropic_effort(effort: &str) -> Option<&'static str> {
    match effort {
        "low" => Some("low"),
        "medium" => Some("medium"),
        "high" | "max" => Some("high"),
        _ => None,
    }
}

/// Thinking budget for a `reasoning_effort`: `Some(None)` turns thinking off, `None` is an
/// unknown level. Each budget maps back to the same effort through [`effort_for_budget`].
pub(super) fn budget_for_effort(effort: &str) -> Option<Option<u64>> {
    match effort {
        "none" => Some(None),
        "minimal" => Some(Some(MIN_THINKING_BUDGET)),
        "low" => Some(Some(2048)),
        "medium" => Some(Some(8192)),
        "high" => Some(Some(24576)),
        "xhigh" => Some(Some(32768)),
        _ => None,
    }
}

const TOOL_ERROR_OPEN: &str = "<tool_use_error>";
const TOOL_ERROR_CLOSE: &str = "</tool_use_error>";

/// Chat Completions tool messages have no error flag; the text carries it in the tags Claude Code
/// itself uses for failed tools, which the model understands and the reverse direction reads.
pub(super) fn mark_tool_error(text: &str) -> String {
    if is_tool_error(text) {
        text.to_string()
    } else {
        format!("{TOOL_ERROR_OPEN}{text}{TOOL_ERROR_CLOSE}")
    }
}

pub(super) fn is_tool_error(text: &str) -> bool {
    text.starts_with(TOOL_ERROR_OPEN) && text.ends_with(TOOL_ERROR_CLOSE)
}

fn count(v: Option<&Value>) -> u64 {
    v.and_then(Value::as_u64).unwrap_or(0)
}

/// Usage of a Chat Completions response or final stream chunk in Anthropic's terms.
/// `prompt_tokens` includes cached tokens: input = prompt − cached (− cache writes, which
/// OpenRouter and LiteLLM report), cache_read = cached, output = completion.
pub fn usage_from_chat(openai_usage_json: &Value) -> Usage {
    let u = openai_usage_json;
    let details = u.get("prompt_tokens_details");
    let cached = count(details.and_then(|d| d.get("cached_tokens")));
    let written = match count(details.and_then(|d| d.get("cache_write_tokens"))) {
        0 => count(u.get("cache_creation_input_tokens")),
        n => n,
    };
    Usage {
        input_tokens: count(u.get("prompt_tokens"))
            .saturating_sub(cached)
            .saturating_sub(written),
        output_tokens: count(u.get("completion_tokens")),
        cache_read_input_tokens: cached,
        cache_creation_input_tokens: written,
        ..Usage::default()
    }
}

/// Usage of an Anthropic Message body.
pub(super) fn usage_from_messages(u: &Value) -> Usage {
    let creation = u.get("cache_creation");
    Usage {
        input_tokens: count(u.get("input_tokens")),
        output_tokens: count(u.get("output_tokens")),
        cache_creation_input_tokens: count(u.get("cache_creation_input_tokens")),
        cache_read_input_tokens: count(u.get("cache_read_input_tokens")),
        cache_creation_5m_input_tokens: count(
            creation.and_then(|c| c.get("ephemeral_5m_input_tokens")),
        ),
        cache_creation_1h_input_tokens: count(
            creation.and_then(|c| c.get("ephemeral_1h_input_tokens")),
        ),
    }
}

/// Chat Completions usage: every input-side token is a prompt token; cache reads are
/// `cached_tokens`. Sums saturate: the counts come from the upstream.
pub(super) fn chat_usage(u: &Usage) -> ChatUsage {
    let prompt = u
        .input_tokens
        .saturating_add(u.cache_creation_input_tokens)
        .saturating_add(u.cache_read_input_tokens);
    ChatUsage {
        prompt_tokens: prompt,
        completion_tokens: u.output_tokens,
        total_tokens: prompt.saturating_add(u.output_tokens),
        prompt_tokens_details: PromptTokensDetails {
            cached_tokens: u.cache_read_input_tokens,
        },
    }
}

/// The `usage` object of an Anthropic Message or `message_delta`.
pub(super) fn messages_usage(u: &Usage) -> Value {
    json!({
        "input_tokens": u.input_tokens,
        "cache_creation_input_tokens": u.cache_creation_input_tokens,
        "cache_read_input_tokens": u.cache_read_input_tokens,
        "output_tokens": u.output_tokens,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_reasons_map_both_ways() {
        for (stop, finish) in [
            ("end_turn", "stop"),
            ("max_tokens", "length"),
            ("tool_use", "tool_calls"),
            ("refusal", "content_filter"),
        ] {
            assert_eq!(finish_reason_for(Some(stop)), finish);
            assert_eq!(stop_reason_for(Some(finish)), stop);
        }
        assert_eq!(finish_reason_for(Some("stop_sequence")), "stop");
        assert_eq!(
            finish_reason_for(Some("model_context_window_exceeded")),
            "length"
        );
        assert_eq!(finish_reason_for(None), "stop");
        assert_eq!(stop_reason_for(Some("function_call")), "tool_use");
        assert_eq!(stop_reason_for(None), "end_turn");
    }

    #[test]
    fn budgets_and_efforts_agree() {
        assert_eq!(effort_for_budget(1024), "low");
        assert_eq!(effort_for_budget(4095), "low");
        assert_eq!(effort_for_budget(4096), "medium");
        assert_eq!(effort_for_budget(16383), "medium");
        assert_eq!(effort_for_budget(16384), "high");
        assert_eq!(effort_for_budget(128_000), "high");
        for effort in ["low", "medium", "high"] {
            let budget = budget_for_effort(effort).flatten().unwrap();
            assert_eq!(effort_for_budget(budget), effort);
        }
        assert_eq!(budget_for_effort("none"), Some(None));
        assert_eq!(budget_for_effort("extreme"), None);
        assert_eq!(effort_for_anthropic_effort("max"), Some("high"));
        assert_eq!(effort_for_anthropic_effort("turbo"), None);
    }

    #[test]
    fn tool_errors_are_marked_once() {
        assert_eq!(
            mark_tool_error("boom"),
            "<tool_use_error>boom</tool_use_error>"
        );
        assert_eq!(
            mark_tool_error("<tool_use_error>boom</tool_use_error>"),
            "<tool_use_error>boom</tool_use_error>"
        );
        assert!(is_tool_error("<tool_use_error>x</tool_use_error>"));
        assert!(!is_tool_error("x"));
    }

    #[test]
    fn chat_usage_splits_cached_tokens_out_of_the_prompt() {
        let u = usage_from_chat(&json!({
            "prompt_tokens": 1000, "completion_tokens": 50, "total_tokens": 1050,
            "prompt_tokens_details": {"cached_tokens": 800},
            "completion_tokens_details": {"reasoning_tokens": 20}
        }));
        assert_eq!(
            u,
            Usage {
                input_tokens: 200,
                output_tokens: 50,
                cache_read_input_tokens: 800,
                ..Usage::default()
            }
        );
        // Inconsistent numbers never underflow.
        let u = usage_from_chat(
            &json!({"prompt_tokens": 5, "prompt_tokens_details": {"cached_tokens": 9}}),
        );
        assert_eq!(u.input_tokens, 0);
        let u = usage_from_chat(&json!({"prompt_tokens": 100, "cache_creation_input_tokens": 30}));
        assert_eq!((u.input_tokens, u.cache_creation_input_tokens), (70, 30));
        assert_eq!(usage_from_chat(&json!(null)), Usage::default());
    }

    #[test]
    fn anthropic_usage_becomes_prompt_tokens() {
        let u = Usage {
            input_tokens: 10,
            output_tokens: 7,
            cache_creation_input_tokens: 20,
            cache_read_input_tokens: 30,
            ..Usage::default()
        };
        let c = chat_usage(&u);
        assert_eq!(
            (c.prompt_tokens, c.completion_tokens, c.total_tokens),
            (60, 7, 67)
        );
        assert_eq!(c.prompt_tokens_details.cached_tokens, 30);
        assert_eq!(usage_from_messages(&messages_usage(&u)), u);
        let huge = Usage {
            input_tokens: u64::MAX,
            output_tokens: u64::MAX,
            cache_read_input_tokens: 1,
            ..Usage::default()
        };
        assert_eq!(chat_usage(&huge).total_tokens, u64::MAX);
    }
}
