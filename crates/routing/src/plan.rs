//! The route table and the per-request plan.
//!
//! Selection, in order: the route named by `x-tollgate-route`; else the route whose `match`
//! lists the requested model (catalogue aliases included); else the provider named by
//! `x-tollgate-provider`, or the first configured provider, for one attempt — the behaviour of
//! a gateway without routes. Within a route, the first branch whose conditions hold (else the
//! route's own targets) is ordered by its strategy into the plan's attempts.

use crate::affinity::session_key;
use crate::balance::{Context, order};
use crate::catalog::Catalog;
use crate::config::{RouteConfig, RoutingConfig};
use crate::health::Health;
use crate::request::RequestMeta;
use crate::route::{Branch, Compiler, Deployment, Node, Overrides, PriceOf, Route, RoutePolicy};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use tollgate_providers::Upstream;

/// Every configured upstream and route, compiled once at start.
#[derive(Debug, Default)]
pub struct Routes {
    providers: Vec<Arc<Upstream>>,
    /// The deployment of each provider with no model of its own, in provider order.
    plain: Vec<Arc<Deployment>>,
    routes: Vec<Route>,
    by_name: HashMap<String, usize>,
    by_model: HashMap<String, usize>,
    single: Arc<RoutePolicy>,
    no_overrides: Arc<Overrides>,
}

/// One attempt of a plan: where to send it and with which changes.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// Where the attempt goes.
    pub deployment: Arc<Deployment>,
    /// The target's timeouts and headers.
    pub overrides: Arc<Overrides>,
}

impl Attempt {
    /// The provider's name.
    pub fn name(&self) -> &str {
        self.deployment.upstream.name()
    }

    /// The provider.
    pub fn upstream(&self) -> &Upstream {
        &self.deployment.upstream
    }

    /// The model id fixed by the route, if any.
    pub fn model(&self) -> Option<&str> {
        self.deployment.model.as_deref()
    }

    /// The target's live health.
    pub fn health(&self) -> &Arc<Health> {
        &self.deployment.health
    }
}

/// The ordered attempts for one request, and how to make them.
#[derive(Debug, Clone)]
pub struct RoutePlan {
    /// The route that made the plan (`None`: no route applied).
    pub route: Option<Arc<str>>,
    /// Every target in the order to try them.
    pub attempts: Vec<Attempt>,
    /// Fallback statuses, retries and timeouts of the route.
    pub policy: Arc<RoutePolicy>,
    /// The session's stable hash chose the order.
    pub affinity: bool,
}

/// Why no plan could be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    /// No provider is configured at all.
    NoProvider,
    /// The requested provider does not exist.
    UnknownProvider(String),
    /// `x-tollgate-route` names no route.
    UnknownRoute(String),
    /// The route has no branch for this request and no default targets.
    NoBranch(String),
}

impl std::fmt::Display for RouteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RouteError::NoProvider => f.write_str(
                "no provider is configured on this gateway (set ANTHROPIC_API_KEY or add [[providers]] to the config)",
            ),
            RouteError::UnknownProvider(p) => {
                write!(f, "provider '{p}' is not configured on this gateway")
            }
            RouteError::UnknownRoute(r) => {
                write!(f, "route '{r}' (x-tollgate-route) is not configured on this gateway")
            }
            RouteError::NoBranch(r) => write!(
                f,
                "route '{r}' has no branch whose conditions this request meets, and no default targets"
            ),
        }
    }
}

impl std::error::Error for RouteError {}

impl Routes {
    /// A table of providers only: the first provider is the default.
    pub fn new(providers: Vec<Upstream>) -> Self {
        let empty = Catalog::default();
        let no_price = |_: &str| None;
        Self::compile(providers, &[], &RoutingConfig::default(), &empty, &no_price)
            .unwrap_or_default()
    }

    /// Compiles providers and `[[routes]]`. Every mistake is refused with a message naming the
    /// route and the field, so a bad configuration stops the gateway at start, not a request.
    pub fn compile(
        providers: Vec<Upstream>,
        routes: &[RouteConfig],
        routing: &RoutingConfig,
        catalog: &Catalog,
        price_of: PriceOf<'_>,
    ) -> Result<Self, String> {
        if routing.breaker_failures == 0 {
            return Err("[routing] breaker_failures must be at least 1".into());
        }
        if !(routing.latency_alpha > 0.0 && routing.latency_alpha <= 1.0) {
            return Err(format!(
                "[routing] latency_alpha must be more than 0 and at most 1, not {}",
                routing.latency_alpha
            ));
        }
        let providers: Vec<Arc<Upstream>> = providers.into_iter().map(Arc::new).collect();
        let mut c = Compiler {
            providers: providers
                .iter()
                .map(|p| (p.name().to_string(), p.clone()))
                .collect(),
            deployments: HashMap::new(),
            route_index: HashMap::new(),
            routing,
            catalog,
            price_of,
        };
        let plain = providers
            .iter()
            .filter_map(|p| c.deployment(p.name(), None))
            .collect();
        for (i, r) in routes.iter().enumerate() {
            if r.name.trim().is_empty() {
                return Err(format!("route {} has an empty name", i + 1));
            }
            if c.route_index.insert(r.name.clone(), i).is_some() {
                return Err(format!("route name '{}' is used twice", r.name));
            }
        }
        let compiled = routes
            .iter()
            .map(|r| c.route(r))
            .collect::<Result<Vec<_>, _>>()?;
        check_cycles(&compiled)?;
        let mut by_model: HashMap<String, usize> = HashMap::new();
        for (i, r) in compiled.iter().enumerate() {
            for m in &r.models {
                // An alias means its catalogue entry: every other name of it routes here too.
                let mut names = vec![m.clone()];
                if let Some(e) = catalog.resolve(m) {
                    names.push(e.name.clone());
                    names.extend(e.aliases.iter().cloned());
                }
                for n in names {
                    if let Some(&other) = by_model.get(&n)
                        && other != i
                    {
                        return Err(format!(
                            "model '{n}' is matched by routes '{}' and '{}'; use branches to choose between them",
                            compiled[other].name, r.name
                        ));
                    }
                    by_model.insert(n, i);
                }
            }
        }
        Ok(Self {
            providers,
            plain,
            by_name: c.route_index,
            routes: compiled,
            by_model,
            single: Arc::new(RoutePolicy::single()),
            no_overrides: Arc::new(Overrides::default()),
        })
    }

    /// Names of the configured providers, in order.
    pub fn provider_names(&self) -> impl Iterator<Item = &str> {
        self.providers.iter().map(|p| p.name())
    }

    /// The configured provider of this name.
    pub fn provider(&self, name: &str) -> Option<&Arc<Upstream>> {
        self.providers.iter().find(|p| p.name() == name)
    }

    /// Names of the configured routes, in order.
    pub fn route_names(&self) -> impl Iterator<Item = &str> {
        self.routes.iter().map(|r| &*r.name)
    }

    /// The live health of a provider's target (no model of its own), for tests and status
    /// pages.
    pub fn health(&self, provider: &str) -> Option<&Arc<Health>> {
        self.plain
            .iter()
            .find(|d| d.upstream.name() == provider)
            .map(|d| &d.health)
    }

    /// The plan for one request.
    pub fn plan(&self, meta: &RequestMeta<'_>) -> Result<RoutePlan, RouteError> {
        let route = match meta.route {
            Some(name) => Some(
                *self
                    .by_name
                    .get(name)
                    .ok_or_else(|| RouteError::UnknownRoute(name.to_string()))?,
            ),
            None => self.by_model.get(meta.model).copied(),
        };
        let Some(idx) = route else {
            return self.provider_plan(meta.provider);
        };
        let r = &self.routes[idx];
        let session = meta
            .session_id
            .filter(|_| r.affinity)
            .map(|s| session_key(s, meta.agent_id));
        let cx = Context {
            now: Instant::now(),
            session,
        };
        let mut attempts = Vec::with_capacity(4);
        let mut affinity = false;
        self.expand(idx, meta, &cx, &mut attempts, &mut affinity, 0)?;
        if attempts.is_empty() {
            return Err(RouteError::NoBranch(r.name.to_string()));
        }
        Ok(RoutePlan {
            route: Some(r.name.clone()),
            attempts,
            policy: r.policy.clone(),
            affinity,
        })
    }

    fn provider_plan(&self, requested: Option<&str>) -> Result<RoutePlan, RouteError> {
        let chosen = match requested {
            Some(name) => self
                .plain
                .iter()
                .find(|d| d.upstream.name() == name)
                .ok_or_else(|| RouteError::UnknownProvider(name.to_string()))?,
            None => self.plain.first().ok_or(RouteError::NoProvider)?,
        };
        Ok(RoutePlan {
            route: None,
            attempts: vec![Attempt {
                deployment: chosen.clone(),
                overrides: self.no_overrides.clone(),
            }],
            policy: self.single.clone(),
            affinity: false,
        })
    }

    fn branch<'r>(&self, r: &'r Route, meta: &RequestMeta<'_>) -> Option<&'r Branch> {
        r.branches
            .iter()
            .find(|(cond, _)| cond.matches(meta))
            .map(|(_, b)| b)
            .or(r.default.as_ref())
    }

    /// Appends route `idx`'s ordered deployments to `out`, nested routes in their place.
    fn expand(
        &self,
        idx: usize,
        meta: &RequestMeta<'_>,
        cx: &Context,
        out: &mut Vec<Attempt>,
        affinity: &mut bool,
        depth: usize,
    ) -> Result<(), RouteError> {
        let r = &self.routes[idx];
        let branch = self
            .branch(r, meta)
            .ok_or_else(|| RouteError::NoBranch(r.name.to_string()))?;
        let (ord, by_session) = order(branch.strategy, &branch.targets, cx);
        *affinity |= by_session;
        for i in ord {
            let t = &branch.targets[i];
            match &t.node {
                Node::Deployment(d) => {
                    if !out.iter().any(|a| Arc::ptr_eq(&a.deployment, d)) {
                        out.push(Attempt {
                            deployment: d.clone(),
                            overrides: t.overrides.clone(),
                        });
                    }
                }
                // Cycles are refused at compile time; the depth bound is a second guard.
                Node::Route(j) if depth < 16 => {
                    // A nested route without a branch for this request adds nothing.
                    let _ = self.expand(*j, meta, cx, out, affinity, depth + 1);
                }
                Node::Route(_) => {}
            }
        }
        Ok(())
    }
}

/// Refuses a route that reaches itself through route targets.
fn check_cycles(routes: &[Route]) -> Result<(), String> {
    fn targets(r: &Route) -> impl Iterator<Item = usize> + '_ {
        r.default
            .iter()
            .chain(r.branches.iter().map(|(_, b)| b))
            .flat_map(|b| b.targets.iter())
            .filter_map(|t| match t.node {
                Node::Route(j) => Some(j),
                Node::Deployment(_) => None,
            })
    }
    // 0 unvisited, 1 on the current path, 2 done.
    fn visit(
        i: usize,
        routes: &[Route],
        state: &mut [u8],
        path: &mut Vec<usize>,
    ) -> Result<(), String> {
        match state[i] {
            2 => return Ok(()),
            1 => {
                let start = path.iter().position(|&p| p == i).unwrap_or(0);
                let names: Vec<&str> = path[start..]
                    .iter()
                    .chain(std::iter::once(&i))
                    .map(|&p| &*routes[p].name)
                    .collect();
                return Err(format!("routes form a cycle: {}", names.join(" -> ")));
            }
            _ => {}
        }
        state[i] = 1;
        path.push(i);
        for j in targets(&routes[i]) {
            visit(j, routes, state, path)?;
        }
        path.pop();
        state[i] = 2;
        Ok(())
    }
    let mut state = vec![0u8; routes.len()];
    for i in 0..routes.len() {
        visit(i, routes, &mut state, &mut Vec::new())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RouteConfig;
    use http::HeaderMap;
    use std::time::Duration;
    use tollgate_providers::{SimulatorSettings, SimulatorUpstream};

    fn sim(name: &str) -> Upstream {
        Upstream::Simulator(SimulatorUpstream::new(name, SimulatorSettings::default()))
    }

    fn routes_config(text: &str) -> Vec<RouteConfig> {
        #[derive(serde::Deserialize)]
        struct File {
            routes: Vec<RouteConfig>,
        }
        toml::from_str::<File>(text).expect("valid TOML").routes
    }

    fn price(model: &str) -> Option<u64> {
        match model {
            "claude-haiku-4-5" => Some(6),
            "claude-sonnet-4-5" => Some(18),
            _ => None,
        }
    }

    fn compile(providers: &[&str], text: &str) -> Result<Routes, String> {
        let catalog = Catalog::new(vec![crate::ModelEntry {
            name: "claude-sonnet-4-5".into(),
            aliases: vec!["sonnet".into()],
            providers: Default::default(),
        }])
        .expect("catalogue");
        Routes::compile(
            providers.iter().map(|p| sim(p)).collect(),
            &routes_config(text),
            &RoutingConfig::default(),
            &catalog,
            &price,
        )
    }

    fn names(p: &RoutePlan) -> Vec<&str> {
        p.attempts.iter().map(|a| &*a.deployment.name).collect()
    }

    #[test]
    fn default_and_named_providers() {
        let r = Routes::new(vec![sim("primary"), sim("backup")]);
        let h = HeaderMap::new();
        let mut m = RequestMeta::for_model("m", &h);
        assert_eq!(r.plan(&m).expect("plan").attempts[0].name(), "primary");
        m.provider = Some("backup");
        assert_eq!(r.plan(&m).expect("plan").attempts[0].name(), "backup");
        m.provider = Some("nope");
        assert_eq!(
            r.plan(&m).unwrap_err(),
            RouteError::UnknownProvider("nope".into())
        );
        assert_eq!(
            Routes::default()
                .plan(&RequestMeta::for_model("m", &h))
                .unwrap_err(),
            RouteError::NoProvider
        );
    }

    const FALLBACK: &str = r#"
        [[routes]]
        name = "sonnet"
        match = "sonnet"
        targets = [{ provider = "a" }, { provider = "b", model = "claude-sonnet-4-5-b" }]
    "#;

    #[test]
    fn selection_by_header_then_model_then_provider() {
        let r = compile(&["a", "b"], FALLBACK).expect("valid");
        let h = HeaderMap::new();
        // The alias, the catalogue name and any other alias all reach the route.
        for model in ["sonnet", "claude-sonnet-4-5"] {
            let p = r.plan(&RequestMeta::for_model(model, &h)).expect("plan");
            assert_eq!(p.route.as_deref(), Some("sonnet"));
            assert_eq!(names(&p), ["a", "b/claude-sonnet-4-5-b"]);
            assert_eq!(p.attempts[1].model(), Some("claude-sonnet-4-5-b"));
        }
        // Unmatched models keep the behaviour of a gateway without routes.
        let mut m = RequestMeta::for_model("claude-opus-4-1", &h);
        let p = r.plan(&m).expect("plan");
        assert_eq!((p.route.clone(), names(&p)), (None, vec!["a"]));
        m.provider = Some("b");
        assert_eq!(names(&r.plan(&m).expect("plan")), ["b"]);
        // x-tollgate-route wins over the model.
        m.route = Some("sonnet");
        assert_eq!(r.plan(&m).expect("plan").route.as_deref(), Some("sonnet"));
        m.route = Some("nope");
        assert_eq!(
            r.plan(&m).unwrap_err(),
            RouteError::UnknownRoute("nope".into())
        );
    }

    #[test]
    fn open_breakers_go_last() {
        let r = compile(&["a", "b"], FALLBACK).expect("valid");
        let h = HeaderMap::new();
        let m = RequestMeta::for_model("sonnet", &h);
        let health = r.health("a").expect("a").clone();
        for _ in 0..5 {
            health
                .acquire(Instant::now())
                .expect("closed")
                .failure(Duration::from_millis(1), false);
        }
        assert_eq!(
            names(&r.plan(&m).expect("plan")),
            ["b/claude-sonnet-4-5-b", "a"]
        );
    }

    #[test]
    fn weighted_picks_follow_the_weights() {
        let r = compile(
            &["a", "b", "c", "d"],
            r#"
            [[routes]]
            name = "w"
            match = "m"
            strategy = "weighted"
            targets = [{ provider = "a", weight = 1 }, { provider = "b", weight = 2 },
                       { provider = "c", weight = 3 }, { provider = "d", weight = 4 }]
            "#,
        )
        .expect("valid");
        let h = HeaderMap::new();
        let m = RequestMeta::for_model("m", &h);
        let n = 10_000;
        let mut counts = HashMap::new();
        for _ in 0..n {
            let p = r.plan(&m).expect("plan");
            assert_eq!(p.attempts.len(), 4, "every target stays as a fallback");
            assert!(!p.affinity);
            *counts
                .entry(p.attempts[0].name().to_string())
                .or_insert(0u32) += 1;
        }
        let chi2: f64 = [("a", 1.0), ("b", 2.0), ("c", 3.0), ("d", 4.0)]
            .iter()
            .map(|(name, w)| {
                let expected = f64::from(n) * w / 10.0;
                let seen = f64::from(counts.get(*name).copied().unwrap_or(0));
                (seen - expected).powi(2) / expected
            })
            .sum();
        // 3 degrees of freedom: P(chi2 > 16.27) = 0.001 when the picks follow the weights.
        assert!(chi2 < 16.27, "chi2 = {chi2:.2}, counts = {counts:?}");
    }

    const BALANCED: &str = r#"
        [[routes]]
        name = "b"
        match = "m"
        strategy = "weighted"
        targets = [{ provider = "a" }, { provider = "b" }]
    "#;

    #[test]
    fn sessions_stick_to_a_target_and_move_by_rank_when_it_fails() {
        let r = compile(&["a", "b"], BALANCED).expect("valid");
        let h = HeaderMap::new();
        let mut first = HashMap::new();
        for i in 0..200 {
            let s = format!("session-{i}");
            let mut m = RequestMeta::for_model("m", &h);
            m.session_id = Some(&s);
            let p = r.plan(&m).expect("plan");
            assert!(p.affinity);
            for _ in 0..5 {
                assert_eq!(names(&r.plan(&m).expect("plan")), names(&p));
            }
            *first.entry(p.attempts[0].name().to_string()).or_insert(0) += 1;
        }
        assert!(first["a"] > 70 && first["b"] > 70, "{first:?}");
        // A subagent of the same session is placed on its own.
        let spread = (0..200)
            .filter(|i| {
                let agent = format!("a{i:016x}");
                let mut m = RequestMeta::for_model("m", &h);
                m.session_id = Some("one-session");
                m.agent_id = Some(&agent);
                r.plan(&m).expect("plan").attempts[0].name() == "a"
            })
            .count();
        assert!((60..140).contains(&spread), "{spread}");

        let health = r.health("a").expect("a").clone();
        for _ in 0..5 {
            health
                .acquire(Instant::now())
                .expect("closed")
                .failure(Duration::from_millis(1), false);
        }
        for i in 0..50 {
            let s = format!("session-{i}");
            let mut m = RequestMeta::for_model("m", &h);
            m.session_id = Some(&s);
            assert_eq!(names(&r.plan(&m).expect("plan")), ["b", "a"]);
        }
    }

    #[test]
    fn affinity_none_spreads_every_request() {
        let r = compile(&["a", "b"], &format!("{BALANCED}\naffinity = \"none\"")).expect("valid");
        let h = HeaderMap::new();
        let mut m = RequestMeta::for_model("m", &h);
        m.session_id = Some("s");
        let on_a = (0..1000)
            .filter(|_| r.plan(&m).expect("plan").attempts[0].name() == "a")
            .count();
        assert!((400..600).contains(&on_a), "{on_a}");
        assert!(!r.plan(&m).expect("plan").affinity);
    }

    #[test]
    fn conditions_pick_the_branch() {
        let r = compile(
            &["a", "b", "c"],
            r#"
            [[routes]]
            name = "r"
            match = "m"
            targets = [{ provider = "a" }]
              [[routes.branches]]
              when = { team = "research" }
              targets = [{ provider = "b" }]
              [[routes.branches]]
              when = { header = { "x-env" = "staging" } }
              targets = [{ provider = "c" }]
            "#,
        )
        .expect("valid");
        let mut h = HeaderMap::new();
        let mut m = RequestMeta::for_model("m", &h);
        assert_eq!(names(&r.plan(&m).expect("plan")), ["a"]);
        m.team = Some("research");
        assert_eq!(names(&r.plan(&m).expect("plan")), ["b"]);
        h.insert("x-env", "staging".parse().expect("valid"));
        let mut m = RequestMeta::for_model("m", &h);
        assert_eq!(names(&r.plan(&m).expect("plan")), ["c"]);
        m.team = Some("research");
        assert_eq!(names(&r.plan(&m).expect("plan")), ["b"], "first match wins");

        let only_branches = compile(
            &["a"],
            r#"
            [[routes]]
            name = "r"
            match = "m"
              [[routes.branches]]
              when = { team = "research" }
              targets = [{ provider = "a" }]
            "#,
        )
        .expect("valid");
        let h = HeaderMap::new();
        assert_eq!(
            only_branches
                .plan(&RequestMeta::for_model("m", &h))
                .unwrap_err(),
            RouteError::NoBranch("r".into())
        );
    }

    #[test]
    fn least_latency_least_busy_and_cheapest() {
        let r = compile(
            &["a", "b"],
            r#"
            [[routes]]
            name = "fast"
            match = "fast"
            strategy = "least_latency"
            targets = [{ provider = "a" }, { provider = "b" }]
            [[routes]]
            name = "idle"
            match = "idle"
            strategy = "least_busy"
            targets = [{ provider = "a" }, { provider = "b" }]
            [[routes]]
            name = "cheap"
            match = "cheap"
            strategy = "cheapest"
            targets = [{ provider = "a", model = "claude-sonnet-4-5" },
                       { provider = "b", model = "claude-haiku-4-5" }]
            "#,
        )
        .expect("valid");
        let h = HeaderMap::new();
        let (a, b) = (r.health("a").expect("a"), r.health("b").expect("b"));
        a.acquire(Instant::now())
            .expect("closed")
            .success(Duration::from_millis(200));
        b.acquire(Instant::now())
            .expect("closed")
            .success(Duration::from_millis(20));
        let fast = RequestMeta::for_model("fast", &h);
        for _ in 0..100 {
            assert_eq!(r.plan(&fast).expect("plan").attempts[0].name(), "b");
        }
        // Within 25 % of each other they count as equal and share the traffic.
        for _ in 0..15 {
            a.acquire(Instant::now())
                .expect("closed")
                .success(Duration::from_millis(20));
        }
        let on_a = (0..1000)
            .filter(|_| r.plan(&fast).expect("plan").attempts[0].name() == "a")
            .count();
        assert!((350..650).contains(&on_a), "{on_a} ttfb a={:?}", a.ttfb());

        let _held: Vec<_> = (0..3)
            .map(|_| a.acquire(Instant::now()).expect("closed"))
            .collect();
        let idle = RequestMeta::for_model("idle", &h);
        for _ in 0..100 {
            assert_eq!(r.plan(&idle).expect("plan").attempts[0].name(), "b");
        }

        let cheap = RequestMeta::for_model("cheap", &h);
        assert_eq!(
            names(&r.plan(&cheap).expect("plan")),
            ["b/claude-haiku-4-5", "a/claude-sonnet-4-5"]
        );
    }

    #[test]
    fn nested_routes_expand_in_place() {
        let r = compile(
            &["a", "b", "c"],
            r#"
            [[routes]]
            name = "outer"
            match = "m"
            targets = [{ provider = "a" }, { route = "inner" }, { provider = "c" }]
            [[routes]]
            name = "inner"
            targets = [{ provider = "b" }, { provider = "a" }]
            "#,
        )
        .expect("valid");
        let h = HeaderMap::new();
        let p = r.plan(&RequestMeta::for_model("m", &h)).expect("plan");
        assert_eq!(names(&p), ["a", "b", "c"], "a appears once");
        assert_eq!(p.route.as_deref(), Some("outer"));
    }

    #[test]
    fn bad_configurations_are_refused_with_names() {
        let cases = [
            (
                r#"[[routes]]
                name = "r"
                targets = [{ provider = "nope" }]"#,
                "provider 'nope' is not configured",
            ),
            (
                r#"[[routes]]
                name = "r"
                targets = [{ provider = "a" }]
                [[routes]]
                name = "r"
                targets = [{ provider = "a" }]"#,
                "route name 'r' is used twice",
            ),
            (
                r#"[[routes]]
                name = "r"
                match = "sonnet"
                targets = [{ provider = "a" }]
                [[routes]]
                name = "s"
                match = "claude-sonnet-4-5"
                targets = [{ provider = "a" }]"#,
                "matched by routes 'r' and 's'",
            ),
            (
                r#"[[routes]]
                name = "r"
                fallback_on = [400]
                targets = [{ provider = "a" }]"#,
                "400 means the request itself is wrong",
            ),
            (
                r#"[[routes]]
                name = "r"
                targets = [{ provider = "a", weight = 0 }]"#,
                "weight must be at least 1",
            ),
            (
                r#"[[routes]]
                name = "r"
                strategy = "cheapest"
                targets = [{ provider = "a", model = "unknown-model" }]"#,
                "needs prices",
            ),
            (
                r#"[[routes]]
                name = "r"
                targets = [{ provider = "a", overrides = { headers = { "x-api-key" = "k" } } }]"#,
                "'x-api-key' cannot be set",
            ),
            (
                r#"[[routes]]
                name = "r"
                targets = [{ route = "s" }]
                [[routes]]
                name = "s"
                targets = [{ route = "r" }]"#,
                "routes form a cycle: r -> s -> r",
            ),
            (
                r#"[[routes]]
                name = "r"
                strategy = "least_busy"
                targets = [{ route = "s" }]
                [[routes]]
                name = "s"
                targets = [{ provider = "a" }]"#,
                "fallback and weighted strategies only",
            ),
            (
                r#"[[routes]]
                name = "r""#,
                "no targets and no branches",
            ),
            (
                r#"[[routes]]
                name = "r"
                timeouts = { ttfb_ms = 0 }
                targets = [{ provider = "a" }]"#,
                "timeouts.ttfb_ms must be more than 0",
            ),
        ];
        for (text, want) in cases {
            let e = compile(&["a"], text).expect_err(text);
            assert!(e.contains(want), "{e:?} should say {want:?}");
        }
        for (routing, want) in [
            (
                RoutingConfig {
                    breaker_failures: 0,
                    ..Default::default()
                },
                "breaker_failures must be at least 1",
            ),
            (
                RoutingConfig {
                    latency_alpha: f64::NAN,
                    ..Default::default()
                },
                "latency_alpha must be more than 0",
            ),
        ] {
            let e = Routes::compile(vec![sim("a")], &[], &routing, &Catalog::default(), &price)
                .expect_err(want);
            assert!(e.contains(want), "{e:?} should say {want:?}");
        }
    }
}
