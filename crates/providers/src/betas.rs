//! Which `anthropic-beta` values reach each kind of upstream.
//!
//! Anthropic accepts every beta it knows and the gateway forwards them all. Bedrock and Vertex
//! answer 400 to a beta they do not know, and name some features differently (tool search), so
//! for them a versioned table decides per value: forward, map to another value, or drop.
//! OpenAI-dialect upstreams get none.
//!
//! # Format
//! `data/betas.toml`, embedded at build time: `version` (schema, must be 1), `revision` (when
//! the entries were checked), then one table per provider kind with `default` (`"forward"` or
//! `"drop"`, for betas not listed) and `betas`, a table of `"value" = "forward" | "drop" |
//! { map = "other" }`. Every entry cites its source in a comment.

use crate::config::ProviderKind;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use std::collections::{BTreeMap, HashMap};

/// The embedded table.
const BUILTIN: &str = include_str!("../data/betas.toml");

/// The table schema this code reads.
pub const SCHEMA_VERSION: u32 = 1;

/// What happens to one `anthropic-beta` value on its way to a provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BetaAction {
    /// Sent as is.
    Forward,
    /// Not sent.
    Drop,
    /// Sent under the provider's name for the same feature.
    Map(String),
}

impl<'de> Deserialize<'de> for BetaAction {
    // Hand-written so that a typo gets an error naming the accepted forms rather than serde's
    // "did not match any variant".
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ActionVisitor;
        const EXPECTED: &str = r#""forward", "drop" or { map = "<beta>" }"#;

        impl<'de> Visitor<'de> for ActionVisitor {
            type Value = BetaAction;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(EXPECTED)
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<BetaAction, E> {
                match v {
                    "forward" => Ok(BetaAction::Forward),
                    "drop" => Ok(BetaAction::Drop),
                    other => Err(E::custom(format!(
                        "unknown beta action \"{other}\": expected {EXPECTED}"
                    ))),
                }
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<BetaAction, A::Error> {
                let mut target: Option<String> = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key != "map" || target.is_some() {
                        return Err(de::Error::custom(format!(
                            "unexpected key \"{key}\": expected {EXPECTED}"
                        )));
                    }
                    target = Some(map.next_value()?);
                }
                target.map(BetaAction::Map).ok_or_else(|| {
                    de::Error::custom(format!("missing \"map\": expected {EXPECTED}"))
                })
            }
        }

        deserializer.deserialize_any(ActionVisitor)
    }
}

/// Why a beta table or an override was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BetaTableError(pub String);

impl std::fmt::Display for BetaTableError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BetaTableError {}

/// The rules of one provider kind.
#[derive(Debug, Clone, PartialEq, Eq)]
struct KindRules {
    default: BetaAction,
    betas: HashMap<String, BetaAction>,
}

impl KindRules {
    fn all(default: BetaAction) -> Self {
        Self {
            default,
            betas: HashMap::new(),
        }
    }
}

/// Per provider kind, what to do with each `anthropic-beta` value. Cheap to clone; build one
/// per provider when a provider has overrides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BetaTable {
    version: u32,
    revision: String,
    /// Indexed by [`slot`].
    kinds: [KindRules; 6],
}

fn slot(kind: ProviderKind) -> usize {
    match kind {
        // The simulator speaks the first-party API and takes whatever it is sent.
        ProviderKind::Anthropic | ProviderKind::Simulator => 0,
        ProviderKind::Bedrock => 1,
        ProviderKind::Vertex => 2,
        ProviderKind::Openai => 3,
        ProviderKind::AzureOpenai => 4,
        ProviderKind::OpenaiCompatible => 5,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    version: u32,
    revision: String,
    anthropic: RawKind,
    bedrock: RawKind,
    vertex: RawKind,
    openai: RawKind,
    #[serde(rename = "azure-openai")]
    azure_openai: RawKind,
    #[serde(rename = "openai-compatible")]
    openai_compatible: RawKind,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKind {
    default: BetaAction,
    #[serde(default)]
    betas: BTreeMap<String, BetaAction>,
}

impl BetaTable {
    /// The table shipped with this build (`data/betas.toml`).
    pub fn builtin() -> Self {
        Self::from_toml(BUILTIN).unwrap_or_else(|e| {
            // Unreachable while the embedded file passes its test; failing closed keeps every
            // non-Anthropic upstream free of betas it might reject.
            tracing::error!(error = %e, "embedded beta table is invalid; dropping all betas");
            Self::fail_closed()
        })
    }

    /// Parses and validates a table in the `data/betas.toml` format.
    pub fn from_toml(text: &str) -> Result<Self, BetaTableError> {
        let raw: RawTable =
            toml::from_str(text).map_err(|e| BetaTableError(format!("beta table: {e}")))?;
        if raw.version != SCHEMA_VERSION {
            return Err(BetaTableError(format!(
                "beta table: version {} is not supported (expected {SCHEMA_VERSION})",
                raw.version
            )));
        }
        let mut table = Self {
            version: raw.version,
            revision: raw.revision,
            kinds: std::array::from_fn(|_| KindRules::all(BetaAction::Drop)),
        };
        for (kind, rules) in [
            (ProviderKind::Anthropic, raw.anthropic),
            (ProviderKind::Bedrock, raw.bedrock),
            (ProviderKind::Vertex, raw.vertex),
            (ProviderKind::Openai, raw.openai),
            (ProviderKind::AzureOpenai, raw.azure_openai),
            (ProviderKind::OpenaiCompatible, raw.openai_compatible),
        ] {
            if let BetaAction::Map(_) = rules.default {
                return Err(BetaTableError(format!(
                    "beta table: [{kind}] default must be \"forward\" or \"drop\""
                )));
            }
            if kind == ProviderKind::Anthropic && rules.default != BetaAction::Forward {
                return Err(BetaTableError(
                    "beta table: [anthropic] default must be \"forward\"".into(),
                ));
            }
            table.kinds[slot(kind)].default = rules.default;
            table.apply_overrides(kind, &rules.betas)?;
        }
        Ok(table)
    }

    /// Schema version of the table.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// When the table's entries were last checked (`YYYY-MM-DD`).
    pub fn revision(&self) -> &str {
        &self.revision
    }

    /// Replaces the entries of `kind` named in `overrides` (a provider's `[providers.betas]`).
    /// The Anthropic path forwards every beta, so only `"forward"` is accepted for it.
    pub fn apply_overrides(
        &mut self,
        kind: ProviderKind,
        overrides: &BTreeMap<String, BetaAction>,
    ) -> Result<(), BetaTableError> {
        for (beta, action) in overrides {
            validate_beta(kind, beta)?;
            match action {
                BetaAction::Map(target) => validate_beta(kind, target)?,
                BetaAction::Forward | BetaAction::Drop => {}
            }
            if kind == ProviderKind::Anthropic && *action != BetaAction::Forward {
                return Err(BetaTableError(format!(
                    "betas: \"{beta}\": the anthropic kind forwards every beta unchanged; only \"forward\" is accepted"
                )));
            }
        }
        let rules = &mut self.kinds[slot(kind)];
        for (beta, action) in overrides {
            rules.betas.insert(beta.clone(), action.clone());
        }
        Ok(())
    }

    /// The action for one beta value on `kind`.
    pub fn action(&self, kind: ProviderKind, beta: &str) -> &BetaAction {
        let rules = &self.kinds[slot(kind)];
        rules.betas.get(beta).unwrap_or(&rules.default)
    }

    /// The betas to send to a `kind` upstream, from the client's `anthropic-beta` header
    /// values: comma lists split, entries trimmed, empties skipped, actions applied, duplicates
    /// removed (also those a mapping creates), first-seen order kept.
    pub fn filter(&self, kind: ProviderKind, header_values: &[&str]) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut push = |beta: &str| {
            if !out.iter().any(|b| b == beta) {
                out.push(beta.to_string());
            }
        };
        for value in header_values {
            for beta in value.split(',').map(str::trim).filter(|b| !b.is_empty()) {
                match self.action(kind, beta) {
                    BetaAction::Forward => push(beta),
                    BetaAction::Map(target) => push(target),
                    BetaAction::Drop => {}
                }
            }
        }
        out
    }

    fn fail_closed() -> Self {
        let mut kinds = std::array::from_fn(|_| KindRules::all(BetaAction::Drop));
        kinds[slot(ProviderKind::Anthropic)] = KindRules::all(BetaAction::Forward);
        Self {
            version: SCHEMA_VERSION,
            revision: String::new(),
            kinds,
        }
    }
}

/// A beta must be a single header list item: visible ASCII, no comma or whitespace.
fn validate_beta(kind: ProviderKind, beta: &str) -> Result<(), BetaTableError> {
    if beta.is_empty() || !beta.bytes().all(|b| b.is_ascii_graphic() && b != b',') {
        return Err(BetaTableError(format!(
            "betas [{kind}]: \"{beta}\" is not a valid beta name (visible ASCII without commas)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> BetaTable {
        BetaTable::from_toml(BUILTIN).expect("embedded table is valid")
    }

    #[test]
    fn embedded_table_parses_and_covers_every_kind() {
        let t = table();
        assert_eq!(t.version(), 1);
        assert!(!t.revision().is_empty());
        assert_eq!(BetaTable::builtin(), t);
        for kind in ProviderKind::ALL {
            // Every kind resolves an unknown beta to its default without panicking.
            let a = t.action(kind, "some-future-beta-2099-01-01");
            assert!(matches!(a, BetaAction::Forward | BetaAction::Drop));
        }
    }

    #[test]
    fn anthropic_forwards_everything_in_order_without_duplicates() {
        let t = table();
        let out = t.filter(
            ProviderKind::Anthropic,
            &[
                "claude-code-20250219, afk-mode-2026-01-31 ,,unknown-x",
                "claude-code-20250219",
            ],
        );
        assert_eq!(
            out,
            ["claude-code-20250219", "afk-mode-2026-01-31", "unknown-x"]
        );
    }

    #[test]
    fn bedrock_keeps_accepted_maps_tool_search_and_drops_the_rest() {
        let t = table();
        let header = "claude-code-20250219, interleaved-thinking-2025-05-14, \
            context-management-2025-06-27, per-turn-control-2026-07-01, \
            mid-conversation-tool-changes-2026-07-01, thinking-token-count-2026-05-13, \
            advanced-tool-use-2025-11-20, effort-2025-11-24, tool-search-tool-2025-10-19, \
            never-heard-of-it-2030-01-01";
        assert_eq!(
            t.filter(ProviderKind::Bedrock, &[header]),
            [
                "interleaved-thinking-2025-05-14",
                "context-management-2025-06-27",
                "tool-search-tool-2025-10-19",
                "effort-2025-11-24",
            ]
        );
    }

    #[test]
    fn vertex_and_openai_kinds() {
        let t = table();
        let cc = "claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27,per-turn-control-2026-07-01,mid-conversation-tool-changes-2026-07-01,thinking-token-count-2026-05-13,advanced-tool-use-2025-11-20,effort-2025-11-24";
        assert_eq!(
            t.filter(ProviderKind::Vertex, &[cc]),
            [
                "claude-code-20250219",
                "interleaved-thinking-2025-05-14",
                "context-management-2025-06-27",
                "per-turn-control-2026-07-01",
                "tool-search-tool-2025-10-19",
                "effort-2025-11-24",
            ]
        );
        for kind in [
            ProviderKind::Openai,
            ProviderKind::AzureOpenai,
            ProviderKind::OpenaiCompatible,
        ] {
            assert!(t.filter(kind, &[cc]).is_empty(), "{kind}");
        }
    }

    #[test]
    fn overrides_replace_single_entries() {
        let mut t = table();
        let overrides: BTreeMap<String, BetaAction> = toml::from_str(
            r#"
            "claude-code-20250219" = "forward"
            "effort-2025-11-24" = "drop"
            "my-beta-1" = { map = "their-beta-1" }
            "#,
        )
        .expect("parses");
        t.apply_overrides(ProviderKind::Bedrock, &overrides)
            .expect("valid");
        assert_eq!(
            t.filter(
                ProviderKind::Bedrock,
                &["effort-2025-11-24,claude-code-20250219,my-beta-1"]
            ),
            ["claude-code-20250219", "their-beta-1"]
        );
        // Other kinds are untouched.
        assert_eq!(
            t.filter(ProviderKind::Vertex, &["effort-2025-11-24"]),
            ["effort-2025-11-24"]
        );
    }

    #[test]
    fn bad_overrides_and_tables_are_refused() {
        let mut t = table();
        let drop_one = BTreeMap::from([("a-1".to_string(), BetaAction::Drop)]);
        assert!(
            t.apply_overrides(ProviderKind::Anthropic, &drop_one)
                .is_err()
        );
        let forward_one = BTreeMap::from([("a-1".to_string(), BetaAction::Forward)]);
        assert!(
            t.apply_overrides(ProviderKind::Anthropic, &forward_one)
                .is_ok()
        );
        let bad_name = BTreeMap::from([("a,b".to_string(), BetaAction::Forward)]);
        assert!(t.apply_overrides(ProviderKind::Vertex, &bad_name).is_err());
        let bad_target = BTreeMap::from([("a".to_string(), BetaAction::Map(" x".into()))]);
        assert!(
            t.apply_overrides(ProviderKind::Vertex, &bad_target)
                .is_err()
        );

        let err = toml::from_str::<BTreeMap<String, BetaAction>>(r#""x" = "keep""#)
            .expect_err("unknown action");
        assert!(err.to_string().contains("expected"), "{err}");
        assert!(toml::from_str::<BTreeMap<String, BetaAction>>(r#""x" = { to = "y" }"#).is_err());

        let v2 = BUILTIN.replacen("version = 1", "version = 2", 1);
        assert!(BetaTable::from_toml(&v2).is_err());
        let anthropic_drop = BUILTIN.replacen(
            "[anthropic]\n",
            "[anthropic]\nbetas = { \"x\" = \"drop\" }\n",
            1,
        );
        assert!(BetaTable::from_toml(&anthropic_drop).is_err());
        assert!(BetaTable::from_toml("version = 1").is_err());
    }
}
