//! URLs and headers of Chat Completions calls on OpenAI, Azure OpenAI and compatible servers.

use crate::call::{BaseUrl, UpstreamCall, encode_segment, forward_client_headers};
use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue};

/// Where a provider's Chat Completions endpoint is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The complete URL (OpenAI and compatible servers; the model is in the body).
    Fixed(String),
    /// Azure OpenAI: the deployment in the path, the API version in the query.
    Azure {
        /// Origin and path prefix, up to (not including) `/openai`.
        base: String,
        /// `None`: the request's model names the deployment.
        deployment: Option<String>,
        /// The `api-version` query value.
        api_version: String,
    },
}

impl Target {
    /// `{base}/v1/chat/completions`, or `{base}/chat/completions` when the base already ends
    /// with `/v1` (as OpenAI SDK base URLs do).
    pub(crate) fn chat_completions(base: &BaseUrl) -> Self {
        let suffix = if base.path.ends_with("/v1") {
            "/chat/completions"
        } else {
            "/v1/chat/completions"
        };
        Target::Fixed(format!("{}{}{suffix}", base.origin, base.path))
    }

    /// An Azure resource endpoint (`https://{resource}.openai.azure.com`, with or without a
    /// trailing `/openai`).
    pub(crate) fn azure(
        endpoint: &BaseUrl,
        deployment: Option<String>,
        api_version: String,
    ) -> Self {
        let path = endpoint
            .path
            .strip_suffix("/openai")
            .unwrap_or(&endpoint.path);
        Target::Azure {
            base: format!("{}{path}", endpoint.origin),
            deployment,
            api_version,
        }
    }

    /// The Azure deployment every call goes to, when the entry configures one.
    pub fn deployment(&self) -> Option<&str> {
        match self {
            Target::Azure { deployment, .. } => deployment.as_deref(),
            Target::Fixed(_) => None,
        }
    }

    /// The URL of one call; `None` when Azure has neither a configured deployment nor a model.
    pub fn url(&self, model: &str) -> Option<String> {
        match self {
            Target::Fixed(url) => Some(url.clone()),
            Target::Azure {
                base,
                deployment,
                api_version,
            } => {
                let deployment = deployment.as_deref().unwrap_or(model);
                if deployment.is_empty() {
                    return None;
                }
                Some(format!(
                    "{base}/openai/deployments/{}/chat/completions?api-version={}",
                    encode_segment(deployment, &[]),
                    encode_segment(api_version, &[]),
                ))
            }
        }
    }
}

/// Headers before authentication: the client's (minus what an OpenAI-dialect upstream must not
/// get) and JSON content negotiation.
pub fn headers(call: &UpstreamCall<'_>) -> HeaderMap {
    let mut h = HeaderMap::with_capacity(call.client_headers.len() + 3);
    forward_client_headers(call.client_headers, &mut h, withheld);
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    // The official OpenAI SDKs send `application/json` for streaming calls too.
    h.insert(ACCEPT, HeaderValue::from_static("application/json"));
    h
}

/// Client headers not forwarded: `anthropic-*` (meaningless here; betas never reach this
/// dialect), `openai-*` (`OpenAI-Organization` and `OpenAI-Project` pick whose quota and bill
/// the gateway's key uses), `api-key` (Azure's credential header), and the content negotiation
/// set here.
fn withheld(name: &str) -> bool {
    name.starts_with("anthropic-")
        || name.starts_with("openai-")
        || name == "api-key"
        || name == "content-type"
        || name == "accept"
}
