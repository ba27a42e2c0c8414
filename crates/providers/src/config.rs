//! Provider entries of the configuration file.

use serde::Deserialize;
use std::collections::BTreeMap;

use crate::betas::BetaAction;

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
}

impl ProviderKind {
    /// Every kind, in declaration order.
    pub const ALL: [ProviderKind; 6] = [
        ProviderKind::Anthropic,
        ProviderKind::Bedrock,
        ProviderKind::Vertex,
        ProviderKind::Openai,
        ProviderKind::AzureOpenai,
        ProviderKind::OpenaiCompatible,
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
            project: None,
            credentials_file: None,
            credentials_json: None,
            deployment: None,
            api_version: None,
            betas: BTreeMap::new(),
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
            .field("project", &self.project)
            .field("credentials_file", &self.credentials_file)
            .field(
                "credentials_json",
                &self.credentials_json.as_ref().map(|_| "<redacted>"),
            )
            .field("deployment", &self.deployment)
            .field("api_version", &self.api_version)
            .field("betas", &self.betas)
            .finish()
    }
}
