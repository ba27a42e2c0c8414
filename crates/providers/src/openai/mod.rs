//! OpenAI Chat Completions as an upstream, in three kinds:
//!
//! - `openai`: `POST https://api.openai.com/v1/chat/completions` (or `base_url`),
//!   `Authorization: Bearer <api_key>`.
//! - `azure-openai`: `POST {endpoint}/openai/deployments/{deployment}/chat/completions?api-version=…`,
//!   `api-key: <api_key>`; the deployment selects the model.
//! - `openai-compatible`: `POST {base_url}/v1/chat/completions` (no second `/v1` when the base
//!   ends with one), Bearer key optional.
//!
//! # Format
//! The body is a Chat Completions request built before this module sees it (streaming usage
//! needs `stream_options.include_usage`, which is the conversion's job). There is no token
//! counting endpoint.

mod auth;
mod request;

use crate::anthropic::ProviderConfigError;
use crate::call::{BaseUrl, Operation, ProviderError, UpstreamCall, config_error, non_empty};
use crate::client::UpstreamBody;
use crate::config::{ProviderConfig, ProviderKind};
use crate::quirks::QuirkTable;
use http::{Method, Request};
use http_body_util::Full;
use tollgate_wire::openai::ModelQuirks;

pub use auth::API_KEY;
pub use request::Target;

/// Default base URL of the `openai` kind.
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com";

/// Azure OpenAI `api-version` used when the entry sets none: the newest generally available
/// data-plane inference version in Microsoft's REST reference.
pub const DEFAULT_AZURE_API_VERSION: &str = "2024-10-21";

/// A configured OpenAI, Azure OpenAI or OpenAI-compatible upstream.
#[derive(Clone)]
pub struct OpenAiUpstream {
    /// The provider entry's name.
    pub name: String,
    kind: ProviderKind,
    target: Target,
    auth: auth::OpenAiAuth,
    quirks: std::sync::Arc<QuirkTable>,
}

impl std::fmt::Debug for OpenAiUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiUpstream")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("target", &self.target)
            .field("auth", &self.auth)
            .field("quirks", &self.quirks.revision())
            .finish()
    }
}

impl OpenAiUpstream {
    /// Validates an `openai`, `azure-openai` or `openai-compatible` entry.
    pub fn from_config(config: &ProviderConfig) -> Result<Self, ProviderConfigError> {
        let target = match config.kind {
            ProviderKind::Openai => {
                let base = non_empty(&config.base_url).unwrap_or(DEFAULT_BASE_URL);
                Target::chat_completions(&BaseUrl::parse(config, "base_url", base)?)
            }
            ProviderKind::OpenaiCompatible => {
                let base = non_empty(&config.base_url).ok_or_else(|| {
                    config_error(
                        config,
                        "base_url",
                        "is required (e.g. \"http://127.0.0.1:8000/v1\")",
                    )
                })?;
                Target::chat_completions(&BaseUrl::parse(config, "base_url", base)?)
            }
            ProviderKind::AzureOpenai => {
                let endpoint = non_empty(&config.endpoint).ok_or_else(|| {
                    config_error(
                        config,
                        "endpoint",
                        "is required (e.g. \"https://my-resource.openai.azure.com\")",
                    )
                })?;
                let endpoint = BaseUrl::parse(config, "endpoint", endpoint)?;
                let api_version =
                    non_empty(&config.api_version).unwrap_or(DEFAULT_AZURE_API_VERSION);
                if !api_version
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
                {
                    return Err(config_error(
                        config,
                        "api_version",
                        format!(
                            "'{api_version}' is not an API version (e.g. \"{DEFAULT_AZURE_API_VERSION}\")"
                        ),
                    ));
                }
                Target::azure(
                    &endpoint,
                    non_empty(&config.deployment).map(str::to_string),
                    api_version.to_string(),
                )
            }
            other => {
                return Err(config_error(
                    config,
                    "kind",
                    format!("{other} is not an OpenAI-dialect kind"),
                ));
            }
        };
        let mut quirks = QuirkTable::builtin();
        quirks
            .apply_overrides(&config.model_quirks)
            .map_err(|e| config_error(config, "model_quirks", e.0))?;
        Ok(Self {
            name: config.name.clone(),
            kind: config.kind,
            target,
            auth: auth::OpenAiAuth::from_config(config)?,
            quirks: std::sync::Arc::new(quirks),
        })
    }

    /// `openai`, `azure-openai` or `openai-compatible`.
    pub fn kind(&self) -> ProviderKind {
        self.kind
    }

    /// Which Chat Completions parameters `model` (a model id or Azure deployment) takes.
    pub fn quirks(&self, model: &str) -> ModelQuirks {
        self.quirks.lookup(model)
    }

    /// Where calls go.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The upstream request for `call`.
    pub async fn prepare(
        &self,
        call: &UpstreamCall<'_>,
    ) -> Result<Request<UpstreamBody>, ProviderError> {
        if call.operation == Operation::CountTokens {
            return Err(ProviderError::fatal(format!(
                "count_tokens is not available on {} (no token counting endpoint)",
                self.kind
            )));
        }
        let url = self.target.url(call.model).ok_or_else(|| {
            ProviderError::fatal(format!(
                "{} '{}': no deployment configured and the request names no model",
                self.kind, self.name
            ))
        })?;
        let mut headers = request::headers(call);
        self.auth.apply(&mut headers);
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(url)
            .body(Full::new(call.body.clone()))
            .map_err(|e| ProviderError::fatal(format!("{} '{}': {e}", self.kind, self.name)))?;
        *req.headers_mut() = headers;
        Ok(req)
    }
}
