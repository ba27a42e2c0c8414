//! `[[routes]]` and `[routing]` as written in the configuration file. Compiled once into
//! [`Routes`](crate::Routes); nothing here is read on the request path.

use serde::Deserialize;
use std::collections::BTreeMap;

/// One string or a list of strings (`team = "a"` or `team = ["a", "b"]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(from = "OneOrManyRaw")]
pub struct OneOrMany(pub Vec<String>);

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrManyRaw {
    One(String),
    Many(Vec<String>),
}

impl From<OneOrManyRaw> for OneOrMany {
    fn from(r: OneOrManyRaw) -> Self {
        match r {
            OneOrManyRaw::One(s) => OneOrMany(vec![s]),
            OneOrManyRaw::Many(v) => OneOrMany(v),
        }
    }
}

/// How a route orders its targets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// In the order written; the next one when one fails.
    #[default]
    Fallback,
    /// At random in proportion to `weight` (or by session, see `affinity`).
    Weighted,
    /// The target with the lowest moving average of time to first byte.
    LeastLatency,
    /// The target with the fewest requests in flight from this replica.
    LeastBusy,
    /// The target whose model has the lowest list price.
    Cheapest,
}

/// Whether the requests of one agent session stay on one target of a balanced route.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Affinity {
    /// `X-Claude-Code-Session-Id` (with `x-claude-code-agent-id`) picks the target by a stable
    /// hash, so the provider's prompt cache keeps serving the session.
    #[default]
    Session,
    /// Every request is placed on its own.
    None,
}

/// One `[[routes]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// The name `x-tollgate-route` selects and the journal records.
    pub name: String,
    /// Model names (catalogue names, aliases or plain ids) this route serves.
    #[serde(default, rename = "match")]
    pub models: OneOrMany,
    /// How the targets are ordered (default `fallback`).
    #[serde(default)]
    pub strategy: Strategy,
    /// The targets when no branch's conditions hold.
    #[serde(default)]
    pub targets: Vec<TargetConfig>,
    /// Alternatives chosen by request conditions, first match wins.
    #[serde(default)]
    pub branches: Vec<BranchConfig>,
    /// Which failures move on to another attempt; the default is
    /// `[429, 500, 502, 503, 504, 529, "timeout", "connect"]`.
    #[serde(default)]
    pub fallback_on: Option<Vec<FailureClass>>,
    /// Retries after the fallback pass, backoff and deadline.
    #[serde(default)]
    pub retry: RetryConfig,
    /// Whether sessions stick to a target (default `session`).
    #[serde(default)]
    pub affinity: Affinity,
    /// Per-attempt time limits for every target of the route.
    #[serde(default)]
    pub timeouts: TimeoutConfig,
}

/// `[[routes.branches]]`: targets used when every condition of `when` holds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BranchConfig {
    /// The conditions; every key given must hold.
    pub when: ConditionConfig,
    /// Defaults to the route's strategy.
    #[serde(default)]
    pub strategy: Option<Strategy>,
    /// The branch's targets.
    pub targets: Vec<TargetConfig>,
}

/// One target: a provider (optionally with its own model id), or another route.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// A configured provider's name.
    #[serde(default)]
    pub provider: Option<String>,
    /// Another route whose plan is used in this place.
    #[serde(default)]
    pub route: Option<String>,
    /// The model id sent to the provider; defaults to the catalogue's id for the requested
    /// model (or the requested model itself).
    #[serde(default)]
    pub model: Option<String>,
    /// Share of traffic under `weighted` (and tie-break weight elsewhere); default 1.
    #[serde(default)]
    pub weight: Option<u32>,
    /// Per-target timeouts and headers.
    #[serde(default)]
    pub overrides: TargetOverrides,
}

/// Per-target changes to how an attempt is made.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetOverrides {
    /// Replaces the route's `timeouts.connect_ms` for this target.
    pub connect_timeout_ms: Option<u64>,
    /// Replaces the route's `timeouts.ttfb_ms` for this target.
    pub ttfb_timeout_ms: Option<u64>,
    /// Replaces the route's `timeouts.idle_ms` for this target.
    pub idle_timeout_ms: Option<u64>,
    /// Headers set on the upstream request (replacing a client header of the same name).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// A failure a route may fall back on: an HTTP status, or `"timeout"` / `"connect"`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum FailureClass {
    /// An HTTP status the upstream answered.
    Status(u16),
    /// `"timeout"` or `"connect"`.
    Named(String),
}

/// `retry = { … }`: what happens once every target was tried once.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Further attempts after the first pass over the targets.
    pub retries: u32,
    /// Backoff before the n-th retry is drawn from `[0, min(max, base * 2^n)]` (full jitter).
    pub backoff_base_ms: u64,
    /// The largest backoff.
    pub backoff_max_ms: u64,
    /// Longest `retry-after` waited for; a target asking for more is not retried.
    pub retry_after_max_ms: u64,
    /// No attempt starts, and no backoff extends, past this long after the request arrived.
    pub deadline_ms: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            retries: 2,
            backoff_base_ms: 250,
            backoff_max_ms: 8_000,
            retry_after_max_ms: 30_000,
            deadline_ms: 120_000,
        }
    }
}

/// `timeouts = { … }` of a route; absent values fall back to `[server]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutConfig {
    /// Time to open a connection to the upstream.
    pub connect_ms: Option<u64>,
    /// Time from sending the request to the response head (and, when another attempt could
    /// still follow, to the stream's first content event).
    pub ttfb_ms: Option<u64>,
    /// Silence allowed between stream events once the answer is on its way.
    pub idle_ms: Option<u64>,
}

/// `[[routes.branches]] when = { … }`: every key given must hold; a list means any of.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionConfig {
    /// The caller's team name.
    #[serde(default)]
    pub team: Option<OneOrMany>,
    /// The caller's user name.
    #[serde(default)]
    pub user: Option<OneOrMany>,
    /// Key id or key name.
    #[serde(default)]
    pub key: Option<OneOrMany>,
    /// `x-tollgate-project`.
    #[serde(default)]
    pub project: Option<OneOrMany>,
    /// Any of these tags (`x-tollgate-tags`).
    #[serde(default)]
    pub tags: Option<OneOrMany>,
    /// Header name → exact value; all must be present.
    #[serde(default)]
    pub header: BTreeMap<String, String>,
    /// The requested model, as the client named it.
    #[serde(default)]
    pub model: Option<OneOrMany>,
    /// Whether the request streams.
    #[serde(default)]
    pub stream: Option<bool>,
    /// Smallest request body (decoded bytes), a cheap stand-in for input tokens.
    #[serde(default)]
    pub min_input_bytes: Option<u64>,
    /// Largest request body (decoded bytes).
    #[serde(default)]
    pub max_input_bytes: Option<u64>,
}

/// `[routing]`: health tracking shared by every route.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoutingConfig {
    /// Consecutive failures that open a target's circuit breaker.
    pub breaker_failures: u32,
    /// How long an open breaker keeps traffic away before one probe request is let through.
    pub breaker_open_ms: u64,
    /// Weight of the newest sample in the time-to-first-byte moving average.
    pub latency_alpha: f64,
    /// A target whose latency was not measured for this long is probed again by one request,
    /// so a target that recovered gets its traffic back.
    pub latency_stale_ms: u64,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        Self {
            breaker_failures: 5,
            breaker_open_ms: 30_000,
            latency_alpha: 0.3,
            latency_stale_ms: 10_000,
        }
    }
}
