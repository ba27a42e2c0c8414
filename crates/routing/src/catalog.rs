//! The model catalogue: one model name, its aliases, and the id each provider knows it by
//! (e.g. the Anthropic id, a Bedrock inference-profile id, a Vertex `@` id).

use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// One `[[models]]` entry of the configuration.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    /// The name clients use and prices are looked up by.
    pub name: String,
    /// Other names that mean the same model.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Provider name → the model id on that provider.
    #[serde(default)]
    pub providers: BTreeMap<String, String>,
}

/// Every configured model, indexed by name and alias.
#[derive(Debug, Default)]
pub struct Catalog {
    by_name: HashMap<String, Arc<ModelEntry>>,
}

/// What the catalogue says about a requested model on one provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelOnProvider<'a> {
    /// Not in the catalogue: the requested id goes through unchanged.
    Unlisted,
    /// Listed, with this id on the provider; `name` is the catalogue name (for pricing).
    Mapped { name: &'a str, id: &'a str },
    /// Listed, but the provider does not serve it.
    NotServed { name: &'a str },
}

impl Catalog {
    /// Indexes the entries; a name or alias used twice is a configuration error.
    pub fn new(entries: Vec<ModelEntry>) -> Result<Self, String> {
        let mut by_name = HashMap::new();
        for e in entries {
            let e = Arc::new(e);
            for n in std::iter::once(&e.name).chain(e.aliases.iter()) {
                if by_name.insert(n.clone(), e.clone()).is_some() {
                    return Err(format!(
                        "model name or alias '{n}' is defined twice in [[models]]"
                    ));
                }
            }
        }
        Ok(Self { by_name })
    }

    /// The entry a requested name or alias refers to.
    pub fn resolve(&self, requested: &str) -> Option<&ModelEntry> {
        self.by_name.get(requested).map(|e| e.as_ref())
    }

    /// The model id to send to `provider` for a requested model.
    pub fn on_provider<'a>(&'a self, requested: &str, provider: &str) -> ModelOnProvider<'a> {
        match self.by_name.get(requested) {
            None => ModelOnProvider::Unlisted,
            Some(e) => match e.providers.get(provider) {
                Some(id) => ModelOnProvider::Mapped { name: &e.name, id },
                None => ModelOnProvider::NotServed { name: &e.name },
            },
        }
    }

    /// Catalogue names, sorted, for model listings.
    pub fn names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.by_name.values().map(|e| e.name.as_str()).collect();
        v.sort_unstable();
        v.dedup();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> ModelEntry {
        ModelEntry {
            name: "claude-sonnet-4-5".into(),
            aliases: vec!["sonnet".into()],
            providers: [
                (
                    "anthropic".to_string(),
                    "claude-sonnet-4-5-20250929".to_string(),
                ),
                (
                    "bedrock".to_string(),
                    "us.anthropic.claude-sonnet-4-5-20250929-v1:0".to_string(),
                ),
            ]
            .into(),
        }
    }

    #[test]
    fn aliases_map_to_provider_ids() {
        let c = Catalog::new(vec![entry()]).unwrap();
        assert_eq!(
            c.on_provider("sonnet", "bedrock"),
            ModelOnProvider::Mapped {
                name: "claude-sonnet-4-5",
                id: "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
            }
        );
        assert_eq!(
            c.on_provider("claude-sonnet-4-5", "vertex"),
            ModelOnProvider::NotServed {
                name: "claude-sonnet-4-5"
            }
        );
        assert_eq!(c.on_provider("gpt-5", "bedrock"), ModelOnProvider::Unlisted);
        assert!(Catalog::new(vec![entry(), entry()]).is_err());
    }
}
