//! Branch conditions: compiled from `when = { … }`, evaluated against [`RequestMeta`].

use crate::config::{ConditionConfig, OneOrMany};
use crate::request::RequestMeta;
use http::HeaderName;

/// Every present field must hold; a list field holds when any of its values matches.
#[derive(Debug, Clone, Default)]
pub struct Condition {
    team: Option<Vec<String>>,
    user: Option<Vec<String>>,
    key: Option<Vec<String>>,
    project: Option<Vec<String>>,
    tags: Option<Vec<String>>,
    headers: Vec<(HeaderName, String)>,
    model: Option<Vec<String>>,
    stream: Option<bool>,
    min_input_bytes: Option<u64>,
    max_input_bytes: Option<u64>,
}

fn list(field: &str, v: &Option<OneOrMany>) -> Result<Option<Vec<String>>, String> {
    match v {
        None => Ok(None),
        Some(OneOrMany(values)) if values.is_empty() => Err(format!(
            "when.{field} is an empty list (it could never match)"
        )),
        Some(OneOrMany(values)) => Ok(Some(values.clone())),
    }
}

fn any_of(allowed: &Option<Vec<String>>, actual: Option<&str>) -> bool {
    match allowed {
        None => true,
        Some(values) => actual.is_some_and(|a| values.iter().any(|v| v == a)),
    }
}

impl Condition {
    /// Validates a `when` table; header names must be valid and the size bounds ordered.
    pub fn compile(c: &ConditionConfig) -> Result<Self, String> {
        let mut headers = Vec::with_capacity(c.header.len());
        for (name, value) in &c.header {
            let n = HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
                .map_err(|_| format!("when.header: '{name}' is not a valid header name"))?;
            headers.push((n, value.clone()));
        }
        if let (Some(lo), Some(hi)) = (c.min_input_bytes, c.max_input_bytes)
            && lo > hi
        {
            return Err(format!(
                "when: min_input_bytes ({lo}) is larger than max_input_bytes ({hi})"
            ));
        }
        Ok(Self {
            team: list("team", &c.team)?,
            user: list("user", &c.user)?,
            key: list("key", &c.key)?,
            project: list("project", &c.project)?,
            tags: list("tags", &c.tags)?,
            headers,
            model: list("model", &c.model)?,
            stream: c.stream,
            min_input_bytes: c.min_input_bytes,
            max_input_bytes: c.max_input_bytes,
        })
    }

    /// Whether the request satisfies every field.
    pub fn matches(&self, m: &RequestMeta<'_>) -> bool {
        any_of(&self.team, m.team)
            && any_of(&self.user, m.user)
            && (self.key.is_none() || any_of(&self.key, m.key_id) || any_of(&self.key, m.key_name))
            && any_of(&self.project, m.project)
            && self
                .tags
                .as_ref()
                .is_none_or(|want| m.tags.iter().any(|t| want.contains(t)))
            && self.headers.iter().all(|(name, value)| {
                m.headers
                    .get_all(name)
                    .iter()
                    .any(|v| v.as_bytes() == value.as_bytes())
            })
            && any_of(&self.model, Some(m.model))
            && self.stream.is_none_or(|s| s == m.stream)
            && self.min_input_bytes.is_none_or(|lo| m.input_bytes >= lo)
            && self.max_input_bytes.is_none_or(|hi| m.input_bytes <= hi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;

    fn cond(toml_text: &str) -> Result<Condition, String> {
        let c: ConditionConfig = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        Condition::compile(&c)
    }

    #[test]
    fn every_field_must_hold_and_lists_mean_any() {
        let mut h = HeaderMap::new();
        h.insert("x-env", "staging".parse().expect("valid"));
        let tags = vec!["ci".to_string(), "nightly".to_string()];
        let mut m = RequestMeta::for_model("claude-sonnet-4-5", &h);
        m.team = Some("research");
        m.key_name = Some("ci-key");
        m.tags = &tags;
        m.input_bytes = 5_000;
        m.stream = true;

        let c = cond(
            r#"team = ["platform", "research"]
               header = { "X-Env" = "staging" }
               tags = "nightly"
               key = "ci-key"
               stream = true
               min_input_bytes = 1000
               max_input_bytes = 10000"#,
        )
        .expect("valid");
        assert!(c.matches(&m));
        m.input_bytes = 20_000;
        assert!(!c.matches(&m), "too large");
        m.input_bytes = 5_000;
        m.team = Some("sales");
        assert!(!c.matches(&m), "other team");
        m.team = None;
        assert!(!c.matches(&m), "no team at all");

        assert!(cond("").expect("valid").matches(&m), "empty means always");
        assert!(
            !cond(r#"header = { "x-env" = "prod" }"#)
                .expect("valid")
                .matches(&m)
        );
        assert!(
            !cond(r#"model = "claude-haiku-4-5""#)
                .expect("valid")
                .matches(&m)
        );
        assert!(cond("team = []").is_err());
        assert!(cond(r#"header = { "bad header" = "x" }"#).is_err());
        assert!(cond("min_input_bytes = 10\nmax_input_bytes = 1").is_err());
        assert!(cond("colour = \"red\"").is_err());
    }
}
