//! The Anthropic Messages API as an upstream: same dialect as Claude Code, so requests pass
//! through byte for byte and only the credential changes.

use crate::client::UpstreamBody;
use crate::forward::forwarded_headers;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Uri};
use http_body_util::Full;

/// Default endpoint of the Anthropic API.
pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";

/// A configured Anthropic upstream.
#[derive(Clone)]
pub struct AnthropicUpstream {
    pub name: String,
    scheme_authority: String,
    base_path: String,
    api_key: Option<HeaderValue>,
}

impl std::fmt::Debug for AnthropicUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnthropicUpstream")
            .field("name", &self.name)
            .field("base", &self.scheme_authority)
            .finish_non_exhaustive()
    }
}

/// Why a provider entry cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderConfigError(pub String);

impl std::fmt::Display for ProviderConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl AnthropicUpstream {
    /// Validates the base URL and key of a provider entry.
    pub fn new(
        name: &str,
        base_url: Option<&str>,
        api_key: Option<&str>,
    ) -> Result<Self, ProviderConfigError> {
        let base = base_url.unwrap_or(DEFAULT_BASE_URL).trim_end_matches('/');
        let uri: Uri = base.parse().map_err(|e| {
            ProviderConfigError(format!(
                "provider '{name}': base_url '{base}' is invalid: {e}"
            ))
        })?;
        let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            return Err(ProviderConfigError(format!(
                "provider '{name}': base_url '{base}' needs a scheme and host"
            )));
        };
        if scheme != "http" && scheme != "https" {
            return Err(ProviderConfigError(format!(
                "provider '{name}': base_url scheme must be http or https"
            )));
        }
        let api_key = match api_key {
            Some(k) if !k.is_empty() => {
                let mut v = HeaderValue::from_str(k).map_err(|_| {
                    ProviderConfigError(format!(
                        "provider '{name}': api_key has invalid characters"
                    ))
                })?;
                v.set_sensitive(true);
                Some(v)
            }
            _ => None,
        };
        Ok(Self {
            name: name.to_string(),
            scheme_authority: format!("{scheme}://{authority}"),
            base_path: uri.path().trim_end_matches('/').to_string(),
            api_key,
        })
    }

    /// The upstream request for an API path such as `/v1/messages?beta=true`: the client's
    /// headers minus credentials and gateway headers, the provider key added, the body as is.
    pub fn request(
        &self,
        method: Method,
        api_path_and_query: &str,
        client_headers: &http::HeaderMap,
        body: Bytes,
    ) -> Result<Request<UpstreamBody>, http::Error> {
        let uri = format!(
            "{}{}{}",
            self.scheme_authority, self.base_path, api_path_and_query
        );
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .body(Full::new(body))?;
        let headers = req.headers_mut();
        forwarded_headers(client_headers, headers);
        if let Some(key) = &self.api_key {
            headers.insert(&tollgate_wire::headers::X_API_KEY, key.clone());
        }
        Ok(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_keeps_path_prefix_query_and_swaps_credentials() {
        let up = AnthropicUpstream::new("a", Some("http://127.0.0.1:9/base/"), Some("sk-up"))
            .expect("valid");
        let mut h = http::HeaderMap::new();
        h.insert("x-api-key", HeaderValue::from_static("tg-client"));
        h.insert("anthropic-version", HeaderValue::from_static("2023-06-01"));
        let r = up
            .request(
                Method::POST,
                "/v1/messages?beta=true",
                &h,
                Bytes::from_static(b"{}"),
            )
            .expect("builds");
        assert_eq!(
            r.uri().to_string(),
            "http://127.0.0.1:9/base/v1/messages?beta=true"
        );
        assert_eq!(r.headers()["x-api-key"], "sk-up");
        assert_eq!(r.headers()["anthropic-version"], "2023-06-01");
        assert!(AnthropicUpstream::new("b", Some("ftp://x"), None).is_err());
    }
}
