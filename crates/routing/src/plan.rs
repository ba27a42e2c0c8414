//! Compiled routes and the per-request plan.

use std::sync::Arc;
use tollgate_providers::Upstream;

/// Every configured upstream, compiled once at start.
#[derive(Debug, Default)]
pub struct Routes {
    providers: Vec<Arc<Upstream>>,
}

/// The ordered attempts for one request.
#[derive(Debug, Clone)]
pub struct RoutePlan {
    pub attempts: Vec<Arc<Upstream>>,
}

/// Why no plan could be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    /// No provider is configured at all.
    NoProvider,
    /// The requested provider does not exist.
    UnknownProvider(String),
}

impl std::fmt::Display for RouteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RouteError::NoProvider => f.write_str(
                "no provider is configured on this gateway (set ANTHROPIC_API_KEY or add [[providers]] to the config)",
            ),
            RouteError::UnknownProvider(p) => write!(f, "provider '{p}' is not configured on this gateway"),
        }
    }
}

impl Routes {
    /// Compiles the provider list; the first provider is the default.
    pub fn new(providers: Vec<Upstream>) -> Self {
        Self {
            providers: providers.into_iter().map(Arc::new).collect(),
        }
    }

    /// Names of the configured providers, in order.
    pub fn provider_names(&self) -> impl Iterator<Item = &str> {
        self.providers.iter().map(|p| p.name())
    }

    /// The plan for a request that may name a provider.
    pub fn plan(&self, requested: Option<&str>) -> Result<RoutePlan, RouteError> {
        let chosen = match requested {
            Some(name) => self
                .providers
                .iter()
                .find(|p| p.name() == name)
                .ok_or_else(|| RouteError::UnknownProvider(name.to_string()))?,
            None => self.providers.first().ok_or(RouteError::NoProvider)?,
        };
        Ok(RoutePlan {
            attempts: vec![chosen.clone()],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_and_named_providers() {
        let mk = |n: &str| {
            Upstream::Anthropic(
                tollgate_providers::AnthropicUpstream::new(n, None, Some("k")).expect("valid"),
            )
        };
        let r = Routes::new(vec![mk("primary"), mk("backup")]);
        assert_eq!(r.plan(None).expect("plan").attempts[0].name(), "primary");
        assert_eq!(
            r.plan(Some("backup")).expect("plan").attempts[0].name(),
            "backup"
        );
        assert_eq!(
            r.plan(Some("nope")).unwrap_err(),
            RouteError::UnknownProvider("nope".into())
        );
        assert_eq!(
            Routes::default().plan(None).unwrap_err(),
            RouteError::NoProvider
        );
    }
}
