//! Amazon Bedrock as an upstream: InvokeModel and InvokeModelWithResponseStream for Anthropic
//! models.
//!
//! # Format
//! `POST {endpoint}/model/{modelId}/invoke` (JSON reply) or `/invoke-with-response-stream`
//! (AWS event-stream reply) on `https://bedrock-runtime.{region}.amazonaws.com`. The model id is
//! one percent-encoded path segment (`…-v1:0` travels as `…-v1%3A0`, an inference-profile ARN's
//! `/` as `%2F`). The body is the Bedrock envelope, betas included (`anthropic_beta`), built
//! before this module sees it. Requests are signed with SigV4 (service `bedrock`) or carry a
//! Bedrock API key as `Authorization: Bearer`.
//!
//! Bedrock has no token counting on this API, and no client header is forwarded: each would
//! have to be signed, and the `X-Amzn-Bedrock-*` ones change price or behaviour (service tier,
//! latency profile, guardrails), which is the gateway's decision, not the client's.

mod auth;
mod request;

use crate::anthropic::ProviderConfigError;
use crate::call::{BaseUrl, EnvLookup, ProviderError, UpstreamCall, config_error, non_empty};
use crate::client::UpstreamBody;
use crate::config::ProviderConfig;
use http::Request;
use std::time::SystemTime;

pub use auth::SIGNING_NAME;

/// A configured Bedrock upstream.
#[derive(Clone)]
pub struct BedrockUpstream {
    /// The provider entry's name.
    pub name: String,
    region: String,
    base: BaseUrl,
    auth: auth::BedrockAuth,
}

impl std::fmt::Debug for BedrockUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BedrockUpstream")
            .field("name", &self.name)
            .field("region", &self.region)
            .field("base", &self.base.origin)
            .field("auth", &self.auth)
            .finish()
    }
}

impl BedrockUpstream {
    /// Validates a `kind = "bedrock"` entry. Without `access_key_id`/`secret_access_key` or
    /// `api_key`, credentials come from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and
    /// `AWS_SESSION_TOKEN`, else `AWS_BEARER_TOKEN_BEDROCK`, read through `env` once, here.
    pub fn from_config(
        config: &ProviderConfig,
        env: EnvLookup<'_>,
    ) -> Result<Self, ProviderConfigError> {
        let region = non_empty(&config.region)
            .ok_or_else(|| config_error(config, "region", "is required (e.g. \"us-east-1\")"))?;
        if !region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(config_error(
                config,
                "region",
                format!("'{region}' is not an AWS region name"),
            ));
        }
        let base = match non_empty(&config.endpoint) {
            Some(e) => BaseUrl::parse(config, "endpoint", e)?,
            None => BaseUrl::parse(config, "region", &default_endpoint(region))?,
        };
        Ok(Self {
            name: config.name.clone(),
            region: region.to_string(),
            base,
            auth: auth::BedrockAuth::from_config(config, env)?,
        })
    }

    /// The AWS region requests are signed for.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The upstream request for `call`, signed now.
    pub async fn prepare(
        &self,
        call: &UpstreamCall<'_>,
    ) -> Result<Request<UpstreamBody>, ProviderError> {
        self.prepare_at(call, SystemTime::now()).await
    }

    /// [`prepare`](Self::prepare) with an explicit signing time, for reproducible signatures.
    pub async fn prepare_at(
        &self,
        call: &UpstreamCall<'_>,
        now: SystemTime,
    ) -> Result<Request<UpstreamBody>, ProviderError> {
        let (uri, mut headers) = request::target(&self.name, &self.base, call)?;
        self.auth
            .authorize(
                &self.name,
                &self.region,
                &uri,
                &mut headers,
                &call.body,
                now,
            )
            .await?;
        request::assemble(&self.name, uri, headers, call.body.clone())
    }
}

/// The regional runtime endpoint; China regions live under `amazonaws.com.cn`.
fn default_endpoint(region: &str) -> String {
    let suffix = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    format!("https://bedrock-runtime.{region}.{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::Operation;
    use crate::config::ProviderKind;
    use bytes::Bytes;
    use http::HeaderMap;

    fn config() -> ProviderConfig {
        ProviderConfig {
            name: "bed".into(),
            kind: ProviderKind::Bedrock,
            region: Some("us-west-2".into()),
            access_key_id: Some("AKIDEXAMPLE".into()),
            secret_access_key: Some("secret".into()),
            ..Default::default()
        }
    }

    #[test]
    fn endpoints_follow_the_region() {
        assert_eq!(
            default_endpoint("us-west-2"),
            "https://bedrock-runtime.us-west-2.amazonaws.com"
        );
        assert_eq!(
            default_endpoint("cn-north-1"),
            "https://bedrock-runtime.cn-north-1.amazonaws.com.cn"
        );
        let mut c = config();
        c.region = Some("us west".into());
        assert!(BedrockUpstream::from_config(&c, &|_| None).is_err());
        c.region = None;
        let e = BedrockUpstream::from_config(&c, &|_| None).expect_err("no region");
        assert!(e.0.contains("region is required"), "{e}");
    }

    #[tokio::test]
    async fn count_tokens_is_refused_without_retry() {
        let up = BedrockUpstream::from_config(&config(), &|_| None).expect("valid");
        let headers = HeaderMap::new();
        let call = UpstreamCall {
            operation: Operation::CountTokens,
            stream: false,
            model: "m",
            body: Bytes::from_static(b"{}"),
            client_headers: &headers,
            betas: &[],
        };
        let e = up.prepare(&call).await.expect_err("no count_tokens");
        assert_eq!(e.message, "count_tokens is not available on Bedrock");
        assert!(!e.retryable);
    }
}
