//! Google Vertex AI as an upstream: Anthropic models through rawPredict.
//!
//! # Format
//! `POST {endpoint}/v1/projects/{project}/locations/{region}/publishers/anthropic/models/{model}:rawPredict`
//! (JSON reply) or `:streamRawPredict` (SSE), and `…/models/count-tokens:rawPredict` for token
//! counting. The endpoint is `https://{region}-aiplatform.googleapis.com`, or
//! `https://aiplatform.googleapis.com` for the `global` region. The body is the Vertex envelope
//! (`anthropic_version: "vertex-2023-10-16"`, no `model`), built before this module sees it;
//! betas travel in the `anthropic-beta` header. Authentication is an OAuth2 access token of a
//! service account (`Authorization: Bearer`).

mod auth;
mod request;

use crate::anthropic::ProviderConfigError;
use crate::call::{BaseUrl, EnvLookup, ProviderError, UpstreamCall, config_error, non_empty};
use crate::client::UpstreamBody;
use crate::config::ProviderConfig;
use http::header::AUTHORIZATION;
use http::{Method, Request};
use http_body_util::Full;
use std::sync::Arc;

pub use auth::SCOPE;
pub use request::{COUNT_TOKENS_BETAS, COUNT_TOKENS_MODEL};

/// A configured Vertex AI upstream.
#[derive(Clone)]
pub struct VertexUpstream {
    /// The provider entry's name.
    pub name: String,
    project: String,
    region: String,
    base: BaseUrl,
    /// The API version path appended to the endpoint (`/v1`), empty when the configured
    /// endpoint already ends with one.
    version_prefix: &'static str,
    tokens: Arc<auth::TokenSource>,
}

impl std::fmt::Debug for VertexUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VertexUpstream")
            .field("name", &self.name)
            .field("project", &self.project)
            .field("region", &self.region)
            .field("base", &self.base.origin)
            .finish_non_exhaustive()
    }
}

impl VertexUpstream {
    /// Validates a `kind = "vertex"` entry and loads its service-account key (from
    /// `credentials_json`, `credentials_file`, or the file named by
    /// `GOOGLE_APPLICATION_CREDENTIALS` read through `env`). No token is fetched yet.
    pub fn from_config(
        config: &ProviderConfig,
        env: EnvLookup<'_>,
    ) -> Result<Self, ProviderConfigError> {
        let project = non_empty(&config.project)
            .ok_or_else(|| config_error(config, "project", "is required"))?;
        if project.contains('/') {
            return Err(config_error(
                config,
                "project",
                format!("'{project}' is not a project id"),
            ));
        }
        let region = non_empty(&config.region).ok_or_else(|| {
            config_error(
                config,
                "region",
                "is required (e.g. \"us-east5\" or \"global\")",
            )
        })?;
        if !region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(config_error(
                config,
                "region",
                format!("'{region}' is not a Vertex AI location"),
            ));
        }
        let base = match non_empty(&config.endpoint) {
            Some(e) => BaseUrl::parse(config, "endpoint", e)?,
            None => BaseUrl::parse(config, "region", &default_endpoint(region))?,
        };
        // Anthropic's SDKs take the endpoint with its version (`…/v1`); accept both spellings.
        let version_prefix = if base.path.ends_with("/v1") || base.path.ends_with("/v1beta1") {
            ""
        } else {
            "/v1"
        };
        Ok(Self {
            name: config.name.clone(),
            project: project.to_string(),
            region: region.to_string(),
            base,
            version_prefix,
            tokens: Arc::new(auth::TokenSource::from_config(config, env)?),
        })
    }

    /// The upstream request for `call`, with a current access token.
    pub async fn prepare(
        &self,
        call: &UpstreamCall<'_>,
    ) -> Result<Request<UpstreamBody>, ProviderError> {
        if call.model.is_empty() && call.operation == crate::call::Operation::Messages {
            return Err(ProviderError::fatal(format!(
                "vertex '{}': the request names no model",
                self.name
            )));
        }
        let prefix = format!("{}{}", self.base.path, self.version_prefix);
        let uri = format!(
            "{}{}",
            self.base.origin,
            request::path(&prefix, &self.project, &self.region, call)
        );
        let mut headers = request::headers(call);
        headers.insert(AUTHORIZATION, self.tokens.bearer(&self.name).await?);
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .body(Full::new(call.body.clone()))
            .map_err(|e| ProviderError::fatal(format!("vertex '{}': {e}", self.name)))?;
        *req.headers_mut() = headers;
        Ok(req)
    }
}

/// The regional API host, or the global one.
fn default_endpoint(region: &str) -> String {
    if region == "global" {
        "https://aiplatform.googleapis.com".to_string()
    } else {
        format!("https://{region}-aiplatform.googleapis.com")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_per_region() {
        assert_eq!(
            default_endpoint("us-east5"),
            "https://us-east5-aiplatform.googleapis.com"
        );
        assert_eq!(
            default_endpoint("global"),
            "https://aiplatform.googleapis.com"
        );
    }
}
