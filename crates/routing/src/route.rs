//! Compiled routes: every name resolved, every value validated, health shared per target.
//!
//! A *deployment* is what an attempt is sent to: a provider, optionally with a model id of its
//! own. Deployments are shared by every route that names them, so a breaker opened by one
//! route's traffic protects the others too.

use crate::catalog::Catalog;
use crate::condition::Condition;
use crate::config::{
    Affinity, BranchConfig, RouteConfig, RoutingConfig, Strategy, TargetConfig, TargetOverrides,
    TimeoutConfig,
};
use crate::health::Health;
use crate::retry::{FallbackOn, RetryPolicy};
use http::{HeaderName, HeaderValue};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tollgate_providers::Upstream;

/// Where attempts are sent: a provider and, optionally, the model id to send it.
#[derive(Debug)]
pub struct Deployment {
    /// The provider.
    pub upstream: Arc<Upstream>,
    /// A model id fixed by the route; `None` maps the requested model through the catalogue.
    pub model: Option<Arc<str>>,
    /// `provider` or `provider/model`: the name affinity hashes and health is kept under.
    pub name: Arc<str>,
    /// Breaker, latency and load, shared by every route naming this deployment.
    pub health: Arc<Health>,
}

/// Per-attempt time limits; `None` leaves the server's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timeouts {
    /// Opening a connection.
    pub connect: Option<Duration>,
    /// Up to the response head (and the first content delta when held back).
    pub ttfb: Option<Duration>,
    /// Silence between stream events.
    pub idle: Option<Duration>,
}

impl Timeouts {
    /// `self` where set, else `fallback`.
    pub fn or(self, fallback: Timeouts) -> Timeouts {
        Timeouts {
            connect: self.connect.or(fallback.connect),
            ttfb: self.ttfb.or(fallback.ttfb),
            idle: self.idle.or(fallback.idle),
        }
    }
}

/// A target's changes to its attempts.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Replace the route's where set.
    pub timeouts: Timeouts,
    /// Set on the upstream request, replacing any header of the same name.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

/// What a target is.
#[derive(Debug, Clone)]
pub enum Node {
    /// A provider (with its own model or not).
    Deployment(Arc<Deployment>),
    /// Index of another route in the table.
    Route(usize),
}

/// One entry of a branch's target list.
#[derive(Debug, Clone)]
pub struct Target {
    /// What the target is.
    pub node: Node,
    /// Share under `weighted`, and tie-break weight elsewhere.
    pub weight: u32,
    /// Timeouts and headers of its attempts.
    pub overrides: Arc<Overrides>,
    /// The name rendezvous hashing uses.
    pub key: Arc<str>,
    /// List price per million input plus output tokens (nano-USD), for `cheapest`.
    pub price: Option<u64>,
}

/// A strategy with its targets.
#[derive(Debug, Clone)]
pub struct Branch {
    /// How the targets are ordered.
    pub strategy: Strategy,
    /// The targets, as configured.
    pub targets: Vec<Target>,
}

/// How a route's attempts are made.
#[derive(Debug, Clone)]
pub struct RoutePolicy {
    /// The failures that move on to another attempt.
    pub fallback_on: FallbackOn,
    /// Retries, backoff, deadline.
    pub retry: RetryPolicy,
    /// Per-attempt time limits.
    pub timeouts: Timeouts,
}

impl Default for RoutePolicy {
    fn default() -> Self {
        Self::single()
    }
}

impl RoutePolicy {
    /// One attempt with the server's timeouts: requests no route applies to.
    pub fn single() -> Self {
        Self {
            fallback_on: FallbackOn::default(),
            retry: RetryPolicy::single(),
            timeouts: Timeouts::default(),
        }
    }
}

/// A compiled `[[routes]]` entry.
#[derive(Debug)]
pub struct Route {
    /// The route's name.
    pub name: Arc<str>,
    /// The model names of `match`, as written.
    pub models: Vec<String>,
    /// Conditional branches, first match wins.
    pub branches: Vec<(Condition, Branch)>,
    /// The targets when no branch holds.
    pub default: Option<Branch>,
    /// How attempts are made.
    pub policy: Arc<RoutePolicy>,
    /// Sessions stick to a target.
    pub affinity: bool,
}

/// Turns a list price lookup into the figure `cheapest` compares; `None` for unknown models.
pub type PriceOf<'a> = &'a dyn Fn(&str) -> Option<u64>;

/// State shared while a configuration is compiled.
pub(crate) struct Compiler<'a> {
    pub providers: HashMap<String, Arc<Upstream>>,
    pub deployments: HashMap<(String, Option<String>), Arc<Deployment>>,
    pub route_index: HashMap<String, usize>,
    pub routing: &'a RoutingConfig,
    pub catalog: &'a Catalog,
    pub price_of: PriceOf<'a>,
}

fn ms(route: &str, field: &str, v: Option<u64>) -> Result<Option<Duration>, String> {
    match v {
        Some(0) => Err(format!("route '{route}': {field} must be more than 0")),
        v => Ok(v.map(Duration::from_millis)),
    }
}

fn timeouts(route: &str, t: &TimeoutConfig) -> Result<Timeouts, String> {
    Ok(Timeouts {
        connect: ms(route, "timeouts.connect_ms", t.connect_ms)?,
        ttfb: ms(route, "timeouts.ttfb_ms", t.ttfb_ms)?,
        idle: ms(route, "timeouts.idle_ms", t.idle_ms)?,
    })
}

/// Headers a target may not set: the credential is the provider's business, and
/// connection-level headers are the client library's.
fn reserved_header(name: &str) -> bool {
    tollgate_providers::forward::is_withheld(name) || name == "host"
}

fn overrides(route: &str, o: &TargetOverrides) -> Result<Overrides, String> {
    let mut headers = Vec::with_capacity(o.headers.len());
    for (name, value) in &o.headers {
        let lower = name.to_ascii_lowercase();
        let n = HeaderName::from_bytes(lower.as_bytes()).map_err(|_| {
            format!("route '{route}': overrides.headers: '{name}' is not a valid header name")
        })?;
        if reserved_header(&lower) {
            return Err(format!(
                "route '{route}': overrides.headers: '{name}' cannot be set by a route (credentials belong in the provider entry)"
            ));
        }
        let v = HeaderValue::from_str(value).map_err(|_| {
            format!(
                "route '{route}': overrides.headers.{name} has characters a header cannot carry"
            )
        })?;
        headers.push((n, v));
    }
    Ok(Overrides {
        timeouts: Timeouts {
            connect: ms(route, "overrides.connect_timeout_ms", o.connect_timeout_ms)?,
            ttfb: ms(route, "overrides.ttfb_timeout_ms", o.ttfb_timeout_ms)?,
            idle: ms(route, "overrides.idle_timeout_ms", o.idle_timeout_ms)?,
        },
        headers,
    })
}

impl Compiler<'_> {
    pub(crate) fn deployment(
        &mut self,
        provider: &str,
        model: Option<&str>,
    ) -> Option<Arc<Deployment>> {
        let upstream = self.providers.get(provider)?.clone();
        let key = (provider.to_string(), model.map(str::to_string));
        let routing = self.routing;
        Some(
            self.deployments
                .entry(key)
                .or_insert_with(|| {
                    let name: Arc<str> = match model {
                        Some(m) => Arc::from(format!("{provider}/{m}")),
                        None => Arc::from(provider),
                    };
                    Arc::new(Deployment {
                        upstream,
                        model: model.map(Arc::from),
                        health: Arc::new(Health::new(&name, routing)),
                        name,
                    })
                })
                .clone(),
        )
    }

    fn target(
        &mut self,
        route: &RouteConfig,
        strategy: Strategy,
        t: &TargetConfig,
    ) -> Result<Target, String> {
        let r = &route.name;
        let weight = t.weight.unwrap_or(1);
        if weight == 0 {
            return Err(format!(
                "route '{r}': a target's weight must be at least 1 (remove the target instead)"
            ));
        }
        match (&t.provider, &t.route) {
            (Some(p), None) => {
                let dep = self.deployment(p, t.model.as_deref()).ok_or_else(|| {
                    let known: Vec<&str> = self.providers.keys().map(String::as_str).collect();
                    format!(
                        "route '{r}': provider '{p}' is not configured (providers: {})",
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            let mut k = known;
                            k.sort_unstable();
                            k.join(", ")
                        }
                    )
                })?;
                // Priced by the model the target sends, else by the route's own model name.
                let model = t
                    .model
                    .as_deref()
                    .or_else(|| route.models.0.first().map(String::as_str));
                let price = model.and_then(|m| {
                    let name = self.catalog.resolve(m).map_or(m, |e| e.name.as_str());
                    (self.price_of)(name)
                });
                Ok(Target {
                    key: dep.name.clone(),
                    node: Node::Deployment(dep),
                    weight,
                    overrides: Arc::new(overrides(r, &t.overrides)?),
                    price,
                })
            }
            (None, Some(other)) => {
                if !matches!(strategy, Strategy::Fallback | Strategy::Weighted) {
                    return Err(format!(
                        "route '{r}': route targets ('{other}') are allowed under fallback and weighted strategies only"
                    ));
                }
                if t.model.is_some() || t.overrides != TargetOverrides::default() {
                    return Err(format!(
                        "route '{r}': a route target ('{other}') takes no model or overrides; set them on that route's targets"
                    ));
                }
                let idx = *self
                    .route_index
                    .get(other)
                    .ok_or_else(|| format!("route '{r}': target route '{other}' is not defined"))?;
                Ok(Target {
                    node: Node::Route(idx),
                    weight,
                    overrides: Arc::new(Overrides::default()),
                    key: Arc::from(format!("route:{other}")),
                    price: None,
                })
            }
            (Some(_), Some(_)) => Err(format!(
                "route '{r}': a target names either a provider or a route, not both"
            )),
            (None, None) => Err(format!(
                "route '{r}': every target needs a provider (or a route)"
            )),
        }
    }

    fn branch(
        &mut self,
        route: &RouteConfig,
        strategy: Strategy,
        targets: &[TargetConfig],
    ) -> Result<Branch, String> {
        let targets = targets
            .iter()
            .map(|t| self.target(route, strategy, t))
            .collect::<Result<Vec<_>, _>>()?;
        if strategy == Strategy::Cheapest && targets.iter().all(|t| t.price.is_none()) {
            return Err(format!(
                "route '{}': strategy cheapest needs prices, but no target's model has one (set a target model the price table knows, or add [prices])",
                route.name
            ));
        }
        Ok(Branch { strategy, targets })
    }

    /// Compiles one route; `route_index` must already hold every route's name.
    pub fn route(&mut self, c: &RouteConfig) -> Result<Route, String> {
        let r = &c.name;
        if c.targets.is_empty() && c.branches.is_empty() {
            return Err(format!("route '{r}' has no targets and no branches"));
        }
        let default = if c.targets.is_empty() {
            None
        } else {
            Some(self.branch(c, c.strategy, &c.targets)?)
        };
        let mut branches = Vec::with_capacity(c.branches.len());
        for (i, b) in c.branches.iter().enumerate() {
            branches.push(self.compiled_branch(c, i, b)?);
        }
        let fallback_on = match &c.fallback_on {
            None => FallbackOn::default(),
            Some(list) => FallbackOn::compile(list).map_err(|e| format!("route '{r}': {e}"))?,
        };
        let retry = RetryPolicy::compile(&c.retry);
        if retry.deadline.is_zero() {
            return Err(format!(
                "route '{r}': retry.deadline_ms must be more than 0"
            ));
        }
        Ok(Route {
            name: Arc::from(r.as_str()),
            models: c.models.0.clone(),
            branches,
            default,
            policy: Arc::new(RoutePolicy {
                fallback_on,
                retry,
                timeouts: timeouts(r, &c.timeouts)?,
            }),
            affinity: c.affinity == Affinity::Session,
        })
    }

    fn compiled_branch(
        &mut self,
        c: &RouteConfig,
        i: usize,
        b: &BranchConfig,
    ) -> Result<(Condition, Branch), String> {
        let cond = Condition::compile(&b.when)
            .map_err(|e| format!("route '{}': branch {}: {e}", c.name, i + 1))?;
        if b.targets.is_empty() {
            return Err(format!(
                "route '{}': branch {} has no targets",
                c.name,
                i + 1
            ));
        }
        Ok((
            cond,
            self.branch(c, b.strategy.unwrap_or(c.strategy), &b.targets)?,
        ))
    }
}
