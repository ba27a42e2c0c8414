//! Provider entries of the configuration file.

use serde::Deserialize;
use std::collections::BTreeMap;

use crate::betas::BetaAction;
use crate::quirks::QuirkRule;

/// Which API an upstream speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderKind {
    Anthropic,
    /// Amazon Bedrock InvokeModel (Anthropic models), SigV4 or a Bedrock API key.
    Bedrock,
    /// Google Vertex AI rawPredict (Anthropic models), service-account OAuth2.
    Vertex,
    /// OpenAI Chat Completions at `api.openai.com` (or `base_url`).
    Openai,
    /// Azure OpenAI Chat Completions on a deployment.
    AzureOpenai,
    /// Any server speaking OpenAI Chat Completions at `base_url`.
    OpenaiCompatible,
    /// Answers Anthropic Messages inside the gateway, with configurable latency and failures.
    Simulator,
}

impl ProviderKind {
    /// Every kind, in declaration order.
    pub const ALL: [ProviderKind; 7] = [
        ProviderKind::Anthropic,
        ProviderKind::Bedrock,
        ProviderKind::Vertex,
        ProviderKind::Openai,
        ProviderKind::AzureOpenai,
        ProviderKind::OpenaiCompatible,
        ProviderKind::Simulator,
    ];

    /// The name used in configuration files.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Bedrock => "bedrock",
            ProviderKind::Vertex => "vertex",
            ProviderKind::Openai => "openai",
            ProviderKind::AzureOpenai => "azure-openai",
            ProviderKind::OpenaiCompatible => "openai-compatible",
            ProviderKind::Simulator => "simulator",
        }
    }
}

impl std::fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `[[providers]]` entry.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    pub name: String,
    pub kind: ProviderKind,
    #[serde(default)]
    pub base_url: Option<String>,
    #[serde(default)]
    pub api_key: Option<String>,
    /// Bedrock: AWS region (required). Vertex: location, `global` included (required).
    #[serde(default)]
    pub region: Option<String>,
    /// Bedrock, Vertex, Azure OpenAI: base URL of the API (Bedrock and Vertex derive it from
    /// the region when absent; Azure requires it).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Bedrock: AWS access key id (with `secret_access_key`).
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// Bedrock: AWS secret access key (with `access_key_id`).
    #[serde(default)]
    pub secret_access_key: Option<String>,
    /// Bedrock: session token of temporary credentials.
    #[serde(default)]
    pub session_token: Option<String>,
    /// Bedrock: `"chain"` looks credentials up as the AWS SDKs do (environment, web identity,
    /// shared-file profile, container, EC2 instance metadata), cached and renewed before expiry.
    #[serde(default)]
    pub credentials: Option<String>,
    /// Bedrock: a profile of the shared AWS credentials and config files.
    #[serde(default)]
    pub profile: Option<String>,
    /// Vertex: Google Cloud project id (required).
    #[serde(default)]
    pub project: Option<String>,
    /// Vertex: path of a service-account key file.
    #[serde(default)]
    pub credentials_file: Option<String>,
    /// Vertex: the service-account key JSON itself.
    #[serde(default)]
    pub credentials_json: Option<String>,
    /// Azure OpenAI: deployment name (defaults to the request's model).
    #[serde(default)]
    pub deployment: Option<String>,
    /// Azure OpenAI: `api-version` query value.
    #[serde(default)]
    pub api_version: Option<String>,
    /// Bedrock, Vertex: per-provider changes to the built-in `anthropic-beta` table
    /// (`[providers.betas] "flag" = "drop" | "forward" | { map = "other" }`).
    #[serde(default)]
    pub betas: BTreeMap<String, BetaAction>,
    /// OpenAI kinds: per-provider rules added to the built-in model table, by model-id prefix
    /// (`[providers.model_quirks] "my-deployment" = { reasoning_effort = true, sampling = false }`).
    #[serde(default)]
    pub model_quirks: BTreeMap<String, QuirkRule>,
    /// Simulator: delay before the response head, in milliseconds.
    #[serde(default)]
    pub ttfb_ms: Option<u64>,
    /// Simulator: output pace (0 or absent: all at once).
    #[serde(default)]
    pub tokens_per_second: Option<f64>,
    /// Simulator: tokens per answer.
    #[serde(default)]
    pub output_tokens: Option<u64>,
    /// Simulator: status → probability of answering it (`{ "529" = 0.3 }`).
    #[serde(default)]
    pub errors: BTreeMap<String, f64>,
    /// Simulator: `retry-after` seconds on 429 and 529 answers.
    #[serde(default)]
    pub retry_after: Option<u64>,
    /// Simulator: probability that an answer is cut part way.
    #[serde(default)]
    pub midstream_drop_rate: Option<f64>,
    /// Simulator: length of a stall, in milliseconds.
    #[serde(default)]
    pub stall_ms: Option<u64>,
    /// Simulator: probability of a stall.
    #[serde(default)]
    pub stall_rate: Option<f64>,
    /// Simulator: lifetime of a simulated prompt-cache entry, in seconds.
    #[serde(default)]
    pub cache_ttl_secs: Option<u64>,
    /// Simulator: a TOML file of the same keys, re-read while running; what it sets wins.
    #[serde(default)]
    pub control_file: Option<String>,
}

impl Default for ProviderConfig {
    // Lets code build entries with `..Default::default()` as fields are added.
    fn default() -> Self {
        Self {
            name: String::new(),
            kind: ProviderKind::Anthropic,
            base_url: None,
            api_key: None,
            region: None,
            endpoint: None,
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
            credentials: None,
            profile: None,
            project: None,
            credentials_file: None,
            credentials_json: None,
            deployment: None,
            api_version: None,
            betas: BTreeMap::new(),
            model_quirks: BTreeMap::new(),
            ttfb_ms: None,
            tokens_per_second: None,
            output_tokens: None,
            errors: BTreeMap::new(),
            retry_after: None,
            midstream_drop_rate: None,
            stall_ms: None,
            stall_rate: None,
            cache_ttl_secs: None,
            control_file: None,
        }
    }
}

impl std::fmt::Debug for ProviderConfig {
    // The key must never reach logs, even through a debug print of the configuration.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderConfig")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field(
                "access_key_id",
                &self.access_key_id.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .field("credentials", &self.credentials)
            .field("profile", &self.profile)
            .field("project", &self.project)
            .field("credentials_file", &self.credentials_file)
            .field(
                "credentials_json",
                &self.credentials_json.as_ref().map(|_| "<redacted>"),
            )
            .field("deployment", &self.deployment)
            .field("api_version", &self.api_version)
            .field("betas", &self.betas)
            .field("model_quirks", &self.model_quirks)
            .field("ttfb_ms", &self.ttfb_ms)
            .field("tokens_per_second", &self.tokens_per_second)
            .field("output_tokens", &self.output_tokens)
            .field("errors", &self.errors)
            .field("retry_after", &self.retry_after)
            .field("midstream_drop_rate", &self.midstream_drop_rate)
            .field("stall_ms", &self.stall_ms)
            .field("stall_rate", &self.stall_rate)
            .field("cache_ttl_secs", &self.cache_ttl_secs)
            .field("control_file", &self.control_file)
            .finish()
    }
}
