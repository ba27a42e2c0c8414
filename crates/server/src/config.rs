//! The configuration file: typed sections, `${ENV_VAR}` interpolation, defaults.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use tollgate_ledger::PriceOverride;
use tollgate_providers::ProviderConfig;

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub providers: Vec<ProviderConfig>,
    #[serde(default)]
    pub models: Vec<tollgate_routing::ModelEntry>,
    #[serde(default)]
    pub routes: Vec<tollgate_routing::RouteConfig>,
    #[serde(default)]
    pub routing: tollgate_routing::RoutingConfig,
    #[serde(default)]
    pub prices: BTreeMap<String, PriceOverride>,
    #[serde(default)]
    pub journal: JournalSection,
    /// Policies written in the config (the admin API adds more at run time).
    #[serde(default)]
    pub policies: Vec<tollgate_govern::policy::PolicySpec>,
    #[serde(default)]
    pub governance: GovernanceSection,
    #[serde(default)]
    pub alerts: crate::alerts::AlertsSection,
    #[serde(default)]
    pub store: StoreSection,
}

/// Which database holds the entities (workspaces, teams, users, keys, admin credentials,
/// policies, provider credentials, the audit and alert logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum StoreBackend {
    /// `tollgate.db` in the data directory: one gateway process.
    #[default]
    Sqlite,
    /// A Postgres database every replica of a cluster shares.
    Postgres,
}

/// `[store]`: where entities live and how quickly a replica sees changes made elsewhere.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSection {
    /// `sqlite` (one node) or `postgres` (a cluster).
    pub backend: StoreBackend,
    /// `postgres://user:password@host:port/db` when `backend = "postgres"` (write the password
    /// as `${VAR}` to keep it out of the file). Never logged with its password.
    pub url: Option<String>,
    /// Most connections one replica opens to Postgres.
    pub max_connections: u32,
    /// How long a store call waits for a Postgres connection before failing (an admin call
    /// then answers 500; requests never wait for the store).
    pub connect_timeout_secs: u64,
    /// How often the store's change counter is read; a change made by another replica (or by
    /// hand in the database) reaches this one's keys, policies and provider credentials
    /// within about this long.
    pub poll_interval_ms: u64,
}

impl Default for StoreSection {
    fn default() -> Self {
        Self {
            backend: StoreBackend::Sqlite,
            url: None,
            max_connections: 8,
            connect_timeout_secs: 5,
            poll_interval_ms: 250,
        }
    }
}

impl std::fmt::Debug for StoreSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreSection")
            .field("backend", &self.backend)
            .field("url", &self.url.as_deref().map(tollgate_store::redact_url))
            .field("max_connections", &self.max_connections)
            .field("connect_timeout_secs", &self.connect_timeout_secs)
            .field("poll_interval_ms", &self.poll_interval_ms)
            .finish()
    }
}

/// Where counters live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CounterBackend {
    /// In this process (single node).
    #[default]
    Memory,
    /// In Redis, shared by every replica.
    Redis,
}

/// What budgets do when the shared counters cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum StoreFailure {
    /// Refuse requests a hard budget governs.
    #[default]
    FailClosed,
    /// Let them through unreserved.
    FailOpen,
}

/// `[governance]`: how policies are enforced.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GovernanceSection {
    /// `memory` (one node) or `redis` (replicas share budgets, rate limits and sessions).
    pub counters: CounterBackend,
    /// Redis URL when `counters = "redis"`.
    pub redis_url: Option<String>,
    /// How long a reservation or concurrency slot lives without a settle (a crashed replica's
    /// holds free themselves after this). Keep it above the longest request.
    pub reservation_ttl_secs: u64,
    /// Budgets when Redis is unreachable (rate limits fall back to per-replica counting).
    pub on_store_failure: StoreFailure,
    /// Output tokens standard-mode budgets reserve per request (capped by `max_tokens`).
    pub likely_output_tokens: u64,
    /// Whom developers should ask to raise a limit; appended to policy refusals.
    pub contact: Option<String>,
}

impl Default for GovernanceSection {
    fn default() -> Self {
        Self {
            counters: CounterBackend::Memory,
            redis_url: None,
            reservation_ttl_secs: 900,
            on_store_failure: StoreFailure::FailClosed,
            likely_output_tokens: 4096,
            contact: None,
        }
    }
}

/// `[server]`: the listener and its limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub data_dir: Option<PathBuf>,
    /// Largest accepted request body, after decoding.
    pub max_body_bytes: usize,
    /// Time a client has to send its request headers.
    pub request_header_timeout_secs: u64,
    /// Time a client has to send its whole request body.
    pub request_body_timeout_secs: u64,
    pub upstream_connect_timeout_secs: u64,
    /// Silence allowed from the upstream: before its response headers and between stream
    /// events. Claude Code streams may pause for minutes.
    pub upstream_idle_timeout_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8780)),
            data_dir: None,
            max_body_bytes: tollgate_guard::limits::DEFAULT_MAX_BODY_BYTES,
            request_header_timeout_secs: 30,
            request_body_timeout_secs: 120,
            upstream_connect_timeout_secs: 10,
            upstream_idle_timeout_secs: 600,
        }
    }
}

/// `[journal]`: what is stored beyond the record itself.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JournalSection {
    /// Store request and response bodies in the journal (off by default: they hold code).
    pub store_bodies: bool,
    /// Bodies are truncated to this many bytes when stored.
    pub body_cap_bytes: usize,
    /// How often finished records are committed to the SQLite copy (1–10,000 ms). Longer means
    /// fewer, larger commits; `logs`, `spend` and the admin API flush first either way.
    pub commit_interval_ms: u64,
}

impl Default for JournalSection {
    fn default() -> Self {
        Self {
            store_bodies: false,
            body_cap_bytes: 64 * 1024,
            commit_interval_ms: tollgate_ledger::journal::DEFAULT_COMMIT_INTERVAL.as_millis()
                as u64,
        }
    }
}

/// A configuration that cannot be used, with the reason.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("config file {0} is not valid TOML: {1}")]
    Toml(PathBuf, String),
    #[error("config file {0}: environment variable {1} is not set")]
    MissingEnv(PathBuf, String),
    #[error("config file {0}: {1}")]
    Invalid(PathBuf, String),
}

impl Config {
    /// Reads a config file, interpolating `${VAR}` in every string value.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| ConfigError::Read(path.to_path_buf(), e))?;
        Self::parse(&text, path, &|k| std::env::var(k).ok())
    }

    /// Parses config text; `env` resolves variables (injected for tests).
    pub fn parse(
        text: &str,
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut table: toml::Table = toml::from_str(text)
            .map_err(|e| ConfigError::Toml(path.to_path_buf(), e.to_string()))?;
        for (_, v) in table.iter_mut() {
            interpolate(v, env).map_err(|var| ConfigError::MissingEnv(path.to_path_buf(), var))?;
        }
        let config: Config =
            toml::Value::Table(table)
                .try_into()
                .map_err(|e: toml::de::Error| {
                    ConfigError::Invalid(path.to_path_buf(), e.to_string())
                })?;
        config.validate(path)?;
        Ok(config)
    }

    /// Checks what the types cannot: policy values and the governance settings.
    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |m: String| ConfigError::Invalid(path.to_path_buf(), m);
        for p in &self.policies {
            p.validate().map_err(invalid)?;
        }
        let g = &self.governance;
        if g.counters == CounterBackend::Redis && g.redis_url.is_none() {
            return Err(invalid(
                "[governance] counters = \"redis\" needs redis_url".into(),
            ));
        }
        if g.reservation_ttl_secs == 0 || g.reservation_ttl_secs > 30 * 86_400 {
            return Err(invalid(
                "[governance] reservation_ttl_secs must be between 1 and 2592000".into(),
            ));
        }
        let st = &self.store;
        match (st.backend, &st.url) {
            (StoreBackend::Postgres, None) => {
                return Err(invalid(
                    "[store] backend = \"postgres\" needs url = \"postgres://…\"".into(),
                ));
            }
            (StoreBackend::Sqlite, Some(_)) => {
                return Err(invalid(
                    "[store] url is for backend = \"postgres\"; SQLite lives in the data directory"
                        .into(),
                ));
            }
            (StoreBackend::Postgres, Some(url))
                if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) =>
            {
                return Err(invalid(format!(
                    "[store] url must start with postgres:// (got {})",
                    tollgate_store::redact_url(url)
                )));
            }
            _ => {}
        }
        if !(10..=60_000).contains(&st.poll_interval_ms) {
            return Err(invalid(
                "[store] poll_interval_ms must be between 10 and 60000".into(),
            ));
        }
        if !(1..=300).contains(&st.connect_timeout_secs) {
            return Err(invalid(
                "[store] connect_timeout_secs must be between 1 and 300".into(),
            ));
        }
        if st.max_connections == 0 {
            return Err(invalid("[store] max_connections must be at least 1".into()));
        }
        let interval = self.journal.commit_interval_ms;
        if !(1..=10_000).contains(&interval) {
            return Err(invalid(format!(
                "[journal] commit_interval_ms must be between 1 and 10000, not {interval}"
            )));
        }
        Ok(())
    }
}

/// Interpolation happens on parsed string values, so comments and keys are never touched.
fn interpolate(v: &mut toml::Value, env: &dyn Fn(&str) -> Option<String>) -> Result<(), String> {
    match v {
        toml::Value::String(s) if s.contains("${") => {
            let mut out = String::with_capacity(s.len());
            let mut rest = s.as_str();
            while let Some(start) = rest.find("${") {
                out.push_str(&rest[..start]);
                let after = &rest[start + 2..];
                let Some(end) = after.find('}') else {
                    out.push_str(&rest[start..]);
                    rest = "";
                    break;
                };
                let name = &after[..end];
                out.push_str(&env(name).ok_or_else(|| name.to_string())?);
                rest = &after[end + 1..];
            }
            out.push_str(rest);
            *s = out;
        }
        toml::Value::Array(a) => {
            for x in a {
                interpolate(x, env)?;
            }
        }
        toml::Value::Table(t) => {
            for (_, x) in t.iter_mut() {
                interpolate(x, env)?;
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The README's one-screen configuration is a working configuration.
    #[test]
    fn the_readme_configuration_parses() {
        let readme = include_str!("../../../README.md");
        let start = readme
            .find("## Configuration in one screen")
            .and_then(|i| readme[i..].find("```toml").map(|j| i + j + "```toml".len()))
            .expect("README has the one-screen configuration");
        let end = start + readme[start..].find("```").expect("closed block");
        let env = |k: &str| (k == "ANTHROPIC_API_KEY").then(|| "sk-test".to_string());
        let c = Config::parse(&readme[start..end], Path::new("README.md"), &env)
            .unwrap_or_else(|e| panic!("README configuration: {e}"));
        assert!(!c.policies.is_empty() && !c.providers.is_empty());
    }

    #[test]
    fn interpolates_values_but_not_comments() {
        let text = r#"
# ${NOT_SET_IN_COMMENT}
[server]
listen = "127.0.0.1:9999"
[[providers]]
name = "anthropic"
kind = "anthropic"
api_key = "${KEY}-x"
[prices."m"]
input = 1.0
output = 2.0
"#;
        let env = |k: &str| (k == "KEY").then(|| "secret".to_string());
        let c = Config::parse(text, Path::new("t.toml"), &env).expect("parses");
        assert_eq!(c.providers[0].api_key.as_deref(), Some("secret-x"));
        assert_eq!(c.server.listen.port(), 9999);
        assert!(c.prices.contains_key("m"));
        let missing = Config::parse(
            "[[providers]]\nname=\"a\"\nkind=\"anthropic\"\napi_key=\"${NOPE}\"",
            Path::new("t"),
            &env,
        );
        assert!(matches!(missing, Err(ConfigError::MissingEnv(_, v)) if v == "NOPE"));
        assert!(Config::parse("[server]\nlisten_typo = 1", Path::new("t"), &env).is_err());
    }

    #[test]
    fn the_store_section_needs_a_postgres_url_and_never_shows_its_password() {
        let env = |k: &str| (k == "PGPASS").then(|| "hunter2-secret".to_string());
        let c = Config::parse(
            "[store]\nbackend = \"postgres\"\nurl = \"postgres://tg:${PGPASS}@db:5432/tollgate\"\n",
            Path::new("t"),
            &env,
        )
        .expect("parses");
        assert_eq!(c.store.backend, StoreBackend::Postgres);
        assert_eq!(
            c.store.url.as_deref(),
            Some("postgres://tg:hunter2-secret@db:5432/tollgate")
        );
        assert_eq!(c.store.poll_interval_ms, 250);
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(
            shown.contains("postgres://tg:***@db:5432/tollgate"),
            "{shown}"
        );
        assert_eq!(Config::default().store.backend, StoreBackend::Sqlite);
        for bad in [
            "[store]\nbackend = \"postgres\"\n",
            "[store]\nurl = \"postgres://x@y/z\"\n",
            "[store]\nbackend = \"postgres\"\nurl = \"mysql://x:hunter2@y/z\"\n",
            "[store]\nbackend = \"postgres\"\nurl = \"postgres://y/z\"\npoll_interval_ms = 0\n",
        ] {
            let e = Config::parse(bad, Path::new("t"), &env)
                .unwrap_err()
                .to_string();
            assert!(e.contains("[store]"), "{e}");
            assert!(!e.contains("hunter2"), "{e}");
        }
    }
}
