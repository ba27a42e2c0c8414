//! The compiled policies of the gateway and the lookup of those that apply to a request.
//!
//! Policies are indexed by scope so a request costs a handful of hash probes however many
//! policies exist; the set is rebuilt whole on every change and swapped in like the identity
//! snapshot.

use crate::identity::Principal;
use crate::policy::{PolicySpec, Scope};
use std::collections::HashMap;
use std::sync::Arc;

/// One policy ready for enforcement.
#[derive(Debug)]
pub struct CompiledPolicy {
    /// Stable id: the store id (`pol_…`) or `cfg:NAME` for a config policy. Counters are keyed by
    /// it, so editing a policy keeps its spend.
    pub id: String,
    /// The name shown in messages and the journal.
    pub name: String,
    /// The policy as written.
    pub spec: PolicySpec,
}

/// Every policy, indexed by scope.
#[derive(Debug, Default)]
pub struct PolicySet {
    org: Vec<Arc<CompiledPolicy>>,
    by_scope: HashMap<(&'static str, String), Vec<Arc<CompiledPolicy>>>,
    len: usize,
    uses_provider: bool,
}

/// What a request is, as far as scope matching goes.
#[derive(Debug, Clone, Copy)]
pub struct RequestScope<'a> {
    /// The authenticated caller.
    pub principal: &'a Principal,
    /// The project (header or the key's default).
    pub project: Option<&'a str>,
    /// Every name the requested model goes by (as asked, its catalogue name, its aliases).
    pub model_names: &'a [&'a str],
    /// The provider that will serve it, when known.
    pub provider: Option<&'a str>,
}

impl PolicySet {
    /// Compiles policies given as `(id, spec)`.
    pub fn new(policies: impl IntoIterator<Item = (String, PolicySpec)>) -> Self {
        let mut set = PolicySet::default();
        for (id, spec) in policies {
            let p = Arc::new(CompiledPolicy {
                name: spec.display_name(),
                id,
                spec,
            });
            set.len += 1;
            match &p.spec.scope.0 {
                Scope::Org => set.org.push(p),
                s => {
                    if matches!(s, Scope::Provider(_)) {
                        set.uses_provider = true;
                    }
                    let target = s.target().unwrap_or_default().to_string();
                    set.by_scope.entry((s.kind(), target)).or_default().push(p);
                }
            }
        }
        set
    }

    /// Number of policies.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when there are no policies (admission then has nothing to do).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when some policy is scoped to a provider.
    pub fn has_provider_policies(&self) -> bool {
        self.uses_provider
    }

    /// The policies scoped to one provider (checked per attempt, once the route chose it).
    pub fn for_provider(&self, provider: &str) -> Vec<Arc<CompiledPolicy>> {
        if !self.uses_provider {
            return Vec::new();
        }
        self.by_scope
            .get(&("provider", provider.to_string()))
            .cloned()
            .unwrap_or_default()
    }

    /// Every policy that applies to the request, broadest scope first, each once.
    pub fn applicable(&self, r: &RequestScope<'_>) -> Vec<Arc<CompiledPolicy>> {
        let mut out: Vec<Arc<CompiledPolicy>> = self.org.clone();
        if self.by_scope.is_empty() {
            return out;
        }
        let p = r.principal;
        let mut probe = |kind: &'static str, target: Option<&str>| {
            if let Some(t) = target
                && let Some(list) = self.by_scope.get(&(kind, t.to_string()))
            {
                for pol in list {
                    if !out.iter().any(|o| Arc::ptr_eq(o, pol)) {
                        out.push(pol.clone());
                    }
                }
            }
        };
        probe("workspace", p.workspace_id.as_deref());
        probe("workspace", p.workspace.as_deref());
        probe("team", p.team_id.as_deref());
        probe("team", p.team.as_deref());
        probe("user", Some(&p.user_id));
        probe("user", Some(&p.user));
        probe("key", Some(&p.key_id));
        probe("project", r.project);
        for m in r.model_names {
            probe("model", Some(m));
        }
        probe("provider", r.provider);
        out
    }
}

/// Whether `name` matches an allow-list entry (`*` at the end matches any suffix).
pub fn allowed_by(list: &[String], names: &[&str]) -> bool {
    list.iter().any(|entry| {
        let entry = entry.trim();
        names.iter().any(|n| match entry.strip_suffix('*') {
            Some(prefix) => n.starts_with(prefix),
            None => *n == entry,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::ScopeField;

    fn spec(scope: &str) -> PolicySpec {
        PolicySpec {
            scope: ScopeField(scope.parse().expect("scope")),
            ..PolicySpec::default()
        }
    }

    #[test]
    fn policies_apply_by_every_name_of_their_scope() {
        let set = PolicySet::new([
            ("a".to_string(), spec("org")),
            ("b".to_string(), spec("team:platform")),
            ("c".to_string(), spec("team:team_1")),
            ("d".to_string(), spec("user:bob")),
            ("e".to_string(), spec("model:claude-opus-5-5")),
            ("f".to_string(), spec("project:billing")),
            ("g".to_string(), spec("provider:bedrock")),
        ]);
        let alice = Principal {
            team_id: Some("team_1".into()),
            team: Some("platform".into()),
            user_id: "usr_1".into(),
            user: "alice".into(),
            key_id: "key_1".into(),
            ..Principal::default()
        };
        let ids = |r: RequestScope<'_>| {
            let mut v: Vec<String> = set.applicable(&r).iter().map(|p| p.id.clone()).collect();
            v.sort();
            v
        };
        let names = ["opus", "claude-opus-5-5"];
        assert_eq!(
            ids(RequestScope {
                principal: &alice,
                project: Some("billing"),
                model_names: &names,
                provider: Some("anthropic"),
            }),
            ["a", "b", "c", "e", "f"]
        );
        assert_eq!(
            ids(RequestScope {
                principal: &alice,
                project: None,
                model_names: &["claude-haiku-5-5"],
                provider: Some("bedrock"),
            }),
            ["a", "b", "c", "g"]
        );
        assert!(set.has_provider_policies());
    }

    #[test]
    fn allow_lists_take_prefixes() {
        let list = vec![
            "claude-sonnet-*".to_string(),
            "claude-haiku-5-5".to_string(),
        ];
        assert!(allowed_by(&list, &["claude-sonnet-5-5"]));
        assert!(allowed_by(&list, &["haiku", "claude-haiku-5-5"]));
        assert!(!allowed_by(&list, &["claude-opus-5-5"]));
        assert!(!allowed_by(&[], &["anything"]));
    }
}
