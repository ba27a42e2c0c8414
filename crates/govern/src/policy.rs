//! Policies: what a scope (org, workspace, team, user, key, project, model, provider) may do.
//!
//! A [`PolicySpec`] is the unit an administrator writes, in the config file (`[[policies]]`) or
//! through the admin API; both deserialize into the same struct, so a policy reads the same
//! wherever it lives. Every policy whose scope matches a request applies, and for each kind of
//! limit the most restrictive one wins (`policy::resolve` decides which apply; `admit` enforces).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Where a policy applies. Written as `"org"`, `"workspace:ID"`, `"team:ID"`, `"user:ID"`,
/// `"key:ID"`, `"project:NAME"`, `"model:NAME"` or `"provider:NAME"`; teams, users and
/// workspaces may be named by id or by name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Every request of the organisation.
    Org,
    /// Every request of a workspace.
    Workspace(String),
    /// Every request of a team.
    Team(String),
    /// Every request of a user.
    User(String),
    /// Every request made with one key.
    Key(String),
    /// Every request attributed to a project (`x-tollgate-project` or the key's default).
    Project(String),
    /// Every request for a model (catalogue name or alias, as the client asked).
    Model(String),
    /// Every request served by a provider.
    Provider(String),
}

impl Scope {
    /// The scope's kind as written before the colon.
    pub fn kind(&self) -> &'static str {
        match self {
            Scope::Org => "org",
            Scope::Workspace(_) => "workspace",
            Scope::Team(_) => "team",
            Scope::User(_) => "user",
            Scope::Key(_) => "key",
            Scope::Project(_) => "project",
            Scope::Model(_) => "model",
            Scope::Provider(_) => "provider",
        }
    }

    /// The id or name after the colon (`None` for the org).
    pub fn target(&self) -> Option<&str> {
        match self {
            Scope::Org => None,
            Scope::Workspace(s)
            | Scope::Team(s)
            | Scope::User(s)
            | Scope::Key(s)
            | Scope::Project(s)
            | Scope::Model(s)
            | Scope::Provider(s) => Some(s),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.target() {
            None => f.write_str(self.kind()),
            Some(t) => write!(f, "{}:{t}", self.kind()),
        }
    }
}

impl FromStr for Scope {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "org" {
            return Ok(Scope::Org);
        }
        let (kind, target) = s.split_once(':').ok_or_else(|| {
            format!("scope '{s}' must be 'org' or KIND:NAME (workspace, team, user, key, project, model, provider)")
        })?;
        let target = target.trim();
        if target.is_empty() {
            return Err(format!("scope '{s}' names no {kind}"));
        }
        let t = target.to_string();
        Ok(match kind.trim() {
            "workspace" => Scope::Workspace(t),
            "team" => Scope::Team(t),
            "user" => Scope::User(t),
            "key" => Scope::Key(t),
            "project" => Scope::Project(t),
            "model" => Scope::Model(t),
            "provider" => Scope::Provider(t),
            other => {
                return Err(format!(
                    "unknown scope kind '{other}' (org, workspace, team, user, key, project, model, provider)"
                ));
            }
        })
    }
}

impl Serialize for Scope {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One policy: a scope and the limits it puts on every request in that scope. Absent fields
/// impose nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PolicySpec {
    /// Where it applies.
    pub scope: ScopeField,
    /// A name for messages and the journal (defaults to the scope).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Models the scope may use (catalogue names or aliases; `*` suffix matches a prefix).
    /// Once set, anything not listed is denied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_models: Option<Vec<String>>,
    /// Providers the scope may be served by; once set, anything not listed is denied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_providers: Option<Vec<String>>,
    /// Spend limits.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub budgets: Vec<BudgetSpec>,
    /// Request, token and concurrency limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<RateSpec>,
    /// Ceiling on a request's `max_tokens`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<MaxTokensSpec>,
    /// Largest request body (after decoding) in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_input_bytes: Option<u64>,
    /// Caps on each Claude Code session (one agent loop) in the scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionSpec>,
}

/// A scope in a policy (a newtype so `Default` can give the org scope).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ScopeField(pub Scope);

impl Default for ScopeField {
    fn default() -> Self {
        ScopeField(Scope::Org)
    }
}

/// The period a budget counts over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetPeriod {
    /// A calendar day in the budget's time zone.
    Day,
    /// A week from Monday in the budget's time zone.
    Week,
    /// A calendar month in the budget's time zone.
    Month,
    /// Never resets (except by an explicit reset).
    Total,
}

/// What happens when a budget is used up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum BudgetMode {
    /// Requests are refused once the cap is reached.
    #[default]
    Hard,
    /// Requests go on; only alerts fire.
    Soft,
}

/// How much a request reserves at admission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Enforcement {
    /// The worst case (input size and `max_tokens` at the model's price): the cap is never
    /// exceeded, at the price of refusing a request that would probably have fitted.
    Strict,
    /// A bounded estimate: the overshoot is at most what was in flight when the cap was crossed.
    #[default]
    Standard,
}

/// A spend limit over a period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetSpec {
    /// Over which period.
    pub period: BudgetPeriod,
    /// The cap in US dollars.
    pub amount_usd: f64,
    /// Time zone of the period boundaries: an IANA name (`Europe/Berlin`), `UTC` or a fixed
    /// offset (`+05:30`). Defaults to UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// Block (hard) or only alert (soft).
    #[serde(default)]
    pub mode: BudgetMode,
    /// Worst-case (strict) or estimated (standard) reservations.
    #[serde(default)]
    pub enforcement: Enforcement,
    /// Percentages of the cap at which an alert fires (e.g. 50, 80, 100).
    #[serde(default = "default_thresholds")]
    pub alert_thresholds: Vec<u8>,
    /// Above a share of the cap, serve requests with a cheaper model instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downgrade: Option<DowngradeSpec>,
}

fn default_thresholds() -> Vec<u8> {
    vec![50, 80, 100]
}

/// Serve a cheaper model once spend passes a share of the budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DowngradeSpec {
    /// Percentage of the cap from which the downgrade applies.
    pub at_percent: u8,
    /// The model to serve instead (catalogue name or id).
    pub to_model: String,
    /// Only requests for these models are downgraded (prefix match with `*`); all when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from_models: Vec<String>,
}

/// Per-minute and concurrency limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RateSpec {
    /// Requests per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u64>,
    /// Input plus output tokens per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_minute: Option<u64>,
    /// Requests in flight at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrent: Option<u32>,
}

/// What to do with a request whose `max_tokens` is above the ceiling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OverCeiling {
    /// Lower `max_tokens` to the ceiling and serve it.
    #[default]
    Clamp,
    /// Refuse it with an error naming the ceiling.
    Reject,
}

/// A ceiling on `max_tokens`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaxTokensSpec {
    /// The highest `max_tokens` allowed.
    pub ceiling: u32,
    /// Clamp or reject above it.
    #[serde(default)]
    pub action: OverCeiling,
}

/// Caps on one Claude Code session (identified by `X-Claude-Code-Session-Id`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SessionSpec {
    /// Most a session may cost, in US dollars.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cost_usd: Option<f64>,
    /// Most model requests (turns) a session may make.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_turns: Option<u64>,
    /// Stops a session that repeats the same tool call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loop_breaker: Option<LoopBreakerSpec>,
}

/// The runaway-loop breaker: the same tool call (name and input) `repeats` times within the last
/// `within_turns` assistant turns stops the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoopBreakerSpec {
    /// How many identical calls trip it.
    pub repeats: u32,
    /// Over how many of the latest assistant turns they are counted.
    pub within_turns: u32,
}

impl PolicySpec {
    /// The name messages use: the given name or the scope.
    pub fn display_name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| self.scope.0.to_string())
    }

    /// Checks values a deserializer cannot (positive amounts, sensible percentages, known time
    /// zones) so a bad policy is refused when written, not when a request meets it.
    pub fn validate(&self) -> Result<(), String> {
        let who = self.display_name();
        for b in &self.budgets {
            if !(b.amount_usd.is_finite() && b.amount_usd >= 0.0 && b.amount_usd <= 9_000_000.0) {
                return Err(format!(
                    "policy {who}: budget amount_usd must be between 0 and 9,000,000"
                ));
            }
            if let Some(tz) = &b.timezone {
                crate::tz::parse(tz).map_err(|e| format!("policy {who}: {e}"))?;
            }
            if b.alert_thresholds.iter().any(|&t| t == 0 || t > 200) {
                return Err(format!(
                    "policy {who}: alert_thresholds are percentages between 1 and 200"
                ));
            }
            if let Some(d) = &b.downgrade {
                if d.at_percent == 0 || d.at_percent > 100 {
                    return Err(format!(
                        "policy {who}: downgrade.at_percent must be between 1 and 100"
                    ));
                }
                if d.to_model.trim().is_empty() {
                    return Err(format!("policy {who}: downgrade.to_model is empty"));
                }
            }
        }
        if let Some(r) = &self.rate {
            if r.requests_per_minute == Some(0)
                || r.tokens_per_minute == Some(0)
                || r.concurrent == Some(0)
            {
                return Err(format!(
                    "policy {who}: a rate limit of 0 would refuse everything; use allowed_models = [] to block a scope"
                ));
            }
            for v in [r.requests_per_minute, r.tokens_per_minute]
                .into_iter()
                .flatten()
            {
                if v > crate::limits::MAX_RATE {
                    return Err(format!("policy {who}: rate limit {v} is too large"));
                }
            }
        }
        if let Some(m) = &self.max_tokens
            && m.ceiling == 0
        {
            return Err(format!(
                "policy {who}: max_tokens.ceiling must be at least 1"
            ));
        }
        if let Some(s) = &self.session {
            if let Some(c) = s.max_cost_usd
                && !(c.is_finite() && (0.0..=9_000_000.0).contains(&c))
            {
                return Err(format!(
                    "policy {who}: session.max_cost_usd must be between 0 and 9,000,000"
                ));
            }
            if let Some(l) = &s.loop_breaker
                && (l.repeats < 2 || l.within_turns < l.repeats)
            {
                return Err(format!(
                    "policy {who}: loop_breaker needs repeats >= 2 and within_turns >= repeats"
                ));
            }
        }
        Ok(())
    }
}

/// US dollars to nano-USD, rounded to the nearest nano and clamped to what the counters hold.
pub fn usd_to_nanos(usd: f64) -> i64 {
    let n = (usd * 1e9).round();
    n.clamp(0.0, crate::limits::MAX_NANOS as f64) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_round_trip_as_strings() {
        for s in [
            "org",
            "workspace:eng",
            "team:platform",
            "user:alice",
            "key:key_1",
            "project:billing",
            "model:claude-opus-5-5",
            "provider:bedrock",
        ] {
            let scope: Scope = s.parse().expect(s);
            assert_eq!(scope.to_string(), s);
        }
        assert!("team:".parse::<Scope>().is_err());
        assert!("galaxy:x".parse::<Scope>().is_err());
        assert!("team".parse::<Scope>().is_err());
    }

    #[test]
    fn a_policy_reads_from_toml_and_json_alike() {
        let toml_src = r#"
            scope = "team:platform"
            allowed_models = ["claude-sonnet-*", "claude-haiku-5-5"]
            [[budgets]]
            period = "month"
            amount_usd = 500.0
            timezone = "Europe/Berlin"
            downgrade = { at_percent = 80, to_model = "claude-haiku-5-5" }
            [rate]
            requests_per_minute = 60
            [session]
            max_turns = 200
            loop_breaker = { repeats = 4, within_turns = 8 }
        "#;
        let p: PolicySpec = toml::from_str(toml_src).expect("toml");
        p.validate().expect("valid");
        assert_eq!(p.scope.0, Scope::Team("platform".into()));
        assert_eq!(p.budgets[0].alert_thresholds, vec![50, 80, 100]);
        assert_eq!(p.budgets[0].mode, BudgetMode::Hard);
        let json = serde_json::to_string(&p).expect("json");
        let back: PolicySpec = serde_json::from_str(&json).expect("back");
        assert_eq!(back, p);
    }

    #[test]
    fn nonsense_is_refused_when_written() {
        let bad = |src: &str| {
            let p: PolicySpec = toml::from_str(src).expect("parses");
            p.validate().expect_err(src)
        };
        bad("scope = \"org\"\n[[budgets]]\nperiod = \"day\"\namount_usd = -1.0");
        bad(
            "scope = \"org\"\n[[budgets]]\nperiod = \"day\"\namount_usd = 1.0\ntimezone = \"Mars/Olympus\"",
        );
        bad("scope = \"org\"\n[rate]\nrequests_per_minute = 0");
        bad("scope = \"org\"\n[session]\nloop_breaker = { repeats = 1, within_turns = 5 }");
        assert!(toml::from_str::<PolicySpec>("scope = \"org\"\nbudget = 3").is_err());
    }

    #[test]
    fn dollars_become_exact_nanos() {
        assert_eq!(usd_to_nanos(1.0), 1_000_000_000);
        assert_eq!(usd_to_nanos(0.1), 100_000_000);
        assert_eq!(usd_to_nanos(-3.0), 0);
    }
}
