//! Which Chat Completions parameters each OpenAI-dialect model takes: reasoning models refuse
//! sampling parameters and `max_tokens`, classic chat models refuse `reasoning_effort`.
//!
//! # Format
//! `data/openai_models.toml`, embedded at build time: `version` (schema, must be 1), `revision`
//! (when the entries were checked), `[defaults]` (all three keys: `reasoning_effort`,
//! `sampling`, `max_tokens`) and `[models]`, a table of model-id prefix → rule with any of those
//! keys. The longest matching prefix wins; what a rule leaves out comes from `[defaults]`. A
//! provider's `[providers.model_quirks]` adds or replaces rules in the same form.

use serde::Deserialize;
use std::collections::BTreeMap;
use tollgate_wire::openai::{MaxTokensField, ModelQuirks};

/// The embedded table.
const BUILTIN: &str = include_str!("../data/openai_models.toml");

/// The table schema this code reads.
pub const SCHEMA_VERSION: u32 = 1;

/// One rule of the table or of a provider's override; absent keys inherit the defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuirkRule {
    /// May `reasoning_effort` be sent.
    #[serde(default)]
    pub reasoning_effort: Option<bool>,
    /// May `temperature` and `top_p` be sent.
    #[serde(default)]
    pub sampling: Option<bool>,
    /// `"max_completion_tokens"` or `"max_tokens"`.
    #[serde(default)]
    pub max_tokens: Option<MaxTokensName>,
    /// Send earlier thinking back as `reasoning_content` on assistant messages.
    #[serde(default)]
    pub replay_reasoning: Option<bool>,
}

/// The output-limit name as configuration spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaxTokensName {
    /// `max_completion_tokens`.
    MaxCompletionTokens,
    /// `max_tokens`.
    MaxTokens,
}

impl From<MaxTokensName> for MaxTokensField {
    fn from(n: MaxTokensName) -> Self {
        match n {
            MaxTokensName::MaxCompletionTokens => MaxTokensField::MaxCompletionTokens,
            MaxTokensName::MaxTokens => MaxTokensField::MaxTokens,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    version: u32,
    revision: String,
    defaults: RawDefaults,
    #[serde(default)]
    models: BTreeMap<String, QuirkRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    reasoning_effort: bool,
    sampling: bool,
    max_tokens: MaxTokensName,
    replay_reasoning: bool,
}

/// Why the table or an override was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuirkTableError(pub String);

impl std::fmt::Display for QuirkTableError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for QuirkTableError {}

/// Model-id prefixes and what models under them take. Built once per provider; a lookup is a
/// walk over a few dozen prefixes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuirkTable {
    revision: String,
    defaults: ModelQuirks,
    /// Longest prefix first, so the first match is the most specific.
    rules: Vec<(String, ModelQuirks)>,
}

impl QuirkTable {
    /// The table shipped with this build (`data/openai_models.toml`).
    pub fn builtin() -> Self {
        Self::from_toml(BUILTIN).unwrap_or_else(|e| {
            // Unreachable while the embedded file passes its test; sending everything is what
            // the gateway did before the table existed.
            tracing::error!(error = %e, "embedded OpenAI model table is invalid; ignoring it");
            Self {
                revision: String::new(),
                defaults: ModelQuirks::default(),
                rules: Vec::new(),
            }
        })
    }

    /// Parses and validates a table in the `data/openai_models.toml` format.
    pub fn from_toml(text: &str) -> Result<Self, QuirkTableError> {
        let raw: RawTable = toml::from_str(text)
            .map_err(|e| QuirkTableError(format!("OpenAI model table: {e}")))?;
        if raw.version != SCHEMA_VERSION {
            return Err(QuirkTableError(format!(
                "OpenAI model table: version {} is not supported (expected {SCHEMA_VERSION})",
                raw.version
            )));
        }
        let mut table = Self {
            revision: raw.revision,
            defaults: ModelQuirks {
                reasoning_effort: raw.defaults.reasoning_effort,
                sampling: raw.defaults.sampling,
                max_tokens: raw.defaults.max_tokens.into(),
                replay_reasoning: raw.defaults.replay_reasoning,
            },
            rules: Vec::new(),
        };
        table.apply_overrides(&raw.models)?;
        Ok(table)
    }

    /// When the table's entries were last checked (`YYYY-MM-DD`).
    pub fn revision(&self) -> &str {
        &self.revision
    }

    /// Adds or replaces the rules named in `overrides` (a provider's `[providers.model_quirks]`).
    pub fn apply_overrides(
        &mut self,
        overrides: &BTreeMap<String, QuirkRule>,
    ) -> Result<(), QuirkTableError> {
        for (prefix, rule) in overrides {
            if prefix.trim().is_empty() {
                return Err(QuirkTableError(
                    "needs a non-empty model-id prefix in every rule".into(),
                ));
            }
            let quirks = ModelQuirks {
                reasoning_effort: rule
                    .reasoning_effort
                    .unwrap_or(self.defaults.reasoning_effort),
                sampling: rule.sampling.unwrap_or(self.defaults.sampling),
                max_tokens: rule
                    .max_tokens
                    .map_or(self.defaults.max_tokens, MaxTokensField::from),
                replay_reasoning: rule
                    .replay_reasoning
                    .unwrap_or(self.defaults.replay_reasoning),
            };
            match self.rules.iter_mut().find(|(p, _)| p == prefix) {
                Some(slot) => slot.1 = quirks,
                None => self.rules.push((prefix.clone(), quirks)),
            }
        }
        self.rules
            .sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
        Ok(())
    }

    /// What `model` (the provider's model id or Azure deployment) takes.
    pub fn lookup(&self, model: &str) -> ModelQuirks {
        self.rules
            .iter()
            .find(|(prefix, _)| model.starts_with(prefix.as_str()))
            .map_or(self.defaults, |(_, q)| *q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REASONING: ModelQuirks = ModelQuirks {
        reasoning_effort: true,
        sampling: false,
        max_tokens: MaxTokensField::MaxCompletionTokens,
        replay_reasoning: false,
    };
    const CLASSIC: ModelQuirks = ModelQuirks {
        reasoning_effort: false,
        sampling: true,
        max_tokens: MaxTokensField::MaxCompletionTokens,
        replay_reasoning: false,
    };

    #[test]
    fn builtin_table_parses_and_sorts_reasoning_from_chat_models() {
        let t = QuirkTable::from_toml(BUILTIN).unwrap();
        assert_eq!(t, QuirkTable::builtin());
        assert!(!t.revision().is_empty());
        for id in [
            "o1",
            "o1-pro",
            "o3-mini",
            "o4-mini-2025-04-16",
            "gpt-5",
            "gpt-5.5-mini",
        ] {
            assert_eq!(t.lookup(id), REASONING, "{id}");
        }
        for id in [
            "gpt-4.1",
            "gpt-4o-mini",
            "gpt-3.5-turbo",
            "gpt-5-chat-latest",
        ] {
            assert_eq!(t.lookup(id), CLASSIC, "{id}");
        }
        assert!(!t.lookup("o1-mini").reasoning_effort);
        // Servers that serve any name get everything, as before the table existed.
        for id in [
            "gpt-test",
            "Qwen/Qwen3-8B",
            "deepseek-reasoner",
            "llama3.1:8b",
        ] {
            assert_eq!(t.lookup(id), ModelQuirks::default(), "{id}");
        }
        assert!(t.lookup("deepseek-v4-pro").replay_reasoning);
    }

    #[test]
    fn overrides_add_and_replace_rules() {
        let mut t = QuirkTable::builtin();
        let overrides: BTreeMap<String, QuirkRule> = toml::from_str(
            r#"
            "my-o3-deployment" = { reasoning_effort = true, sampling = false }
            "gpt-4" = { max_tokens = "max_tokens" }
            "#,
        )
        .unwrap();
        t.apply_overrides(&overrides).unwrap();
        assert_eq!(t.lookup("my-o3-deployment-eu"), REASONING);
        // Keys left out come from the defaults, not from the replaced rule.
        let q = t.lookup("gpt-4.1");
        assert_eq!(q.max_tokens, MaxTokensField::MaxTokens);
        assert!(q.reasoning_effort && q.sampling);
        let empty: BTreeMap<String, QuirkRule> = toml::from_str(r#""" = {}"#).unwrap();
        assert!(t.apply_overrides(&empty).is_err());
        let typo = toml::from_str::<BTreeMap<String, QuirkRule>>(r#""x" = { sampled = true }"#);
        assert!(typo.is_err());
    }

    #[test]
    fn bad_tables_are_refused() {
        assert!(QuirkTable::from_toml("version = 2\nrevision = \"x\"\n[defaults]\nreasoning_effort = true\nsampling = true\nmax_tokens = \"max_tokens\"\nreplay_reasoning = false").is_err());
        assert!(
            QuirkTable::from_toml(
                "version = 1\nrevision = \"x\"\n[defaults]\nreasoning_effort = true"
            )
            .is_err()
        );
    }
}
