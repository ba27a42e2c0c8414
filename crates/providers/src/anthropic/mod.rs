//! The Anthropic Messages API as an upstream: same dialect as Claude Code, so requests pass
//! through byte for byte and only the credential changes.

use crate::client::UpstreamBody;
use crate::forward::forwarded_headers;
use bytes::Bytes;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderValue, Method, Request, Uri};
use http_body_util::Full;

/// Default endpoint of the Anthropic API.
pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";

/// A configured Anthropic upstream.
#[derive(Clone)]
pub struct AnthropicUpstream {
    pub name: String,
    scheme: Scheme,
    authority: Authority,
    base_path: String,
    /// `Host` as the HTTP client would write it; set here so that it is not formatted anew
    /// for every request.
    host: HeaderValue,
    api_key: Option<HeaderValue>,
}

impl std::fmt::Debug for AnthropicUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnthropicUpstream")
            .field("name", &self.name)
            .field(
                "base",
                &format_args!("{}://{}", self.scheme, self.authority),
            )
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
        let (Some(scheme), Some(authority)) = (uri.scheme().cloned(), uri.authority().cloned())
        else {
            return Err(ProviderConfigError(format!(
                "provider '{name}': base_url '{base}' needs a scheme and host"
            )));
        };
        if scheme != Scheme::HTTP && scheme != Scheme::HTTPS {
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
        let host = host_header(&scheme, &authority).map_err(|_| {
            ProviderConfigError(format!(
                "provider '{name}': base_url '{base}' has an invalid host"
            ))
        })?;
        Ok(Self {
            name: name.to_string(),
            scheme,
            authority,
            base_path: uri.path().trim_end_matches('/').to_string(),
            host,
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
        let path = if self.base_path.is_empty() {
            PathAndQuery::try_from(api_path_and_query)?
        } else {
            PathAndQuery::try_from(format!("{}{api_path_and_query}", self.base_path))?
        };
        let uri = Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path)
            .build()?;
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .body(Full::new(body))?;
        let headers = req.headers_mut();
        forwarded_headers(client_headers, headers);
        headers.insert(http::header::HOST, self.host.clone());
        if let Some(key) = &self.api_key {
            headers.insert(&tollgate_wire::headers::X_API_KEY, key.clone());
        }
        Ok(req)
    }
}

/// The host, with the port only when it is not the scheme's default (what hyper's client
/// writes when a request has no `Host`).
fn host_header(
    scheme: &Scheme,
    authority: &Authority,
) -> Result<HeaderValue, http::header::InvalidHeaderValue> {
    let default_port = if *scheme == Scheme::HTTPS { 443 } else { 80 };
    match authority.port_u16() {
        Some(port) if port != default_port => {
            HeaderValue::from_str(&format!("{}:{port}", authority.host()))
        }
        _ => HeaderValue::from_str(authority.host()),
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
        assert_eq!(r.headers()["host"], "127.0.0.1:9");
        assert!(AnthropicUpstream::new("b", Some("ftp://x"), None).is_err());
    }

    #[test]
    fn the_host_header_leaves_out_the_default_port() {
        for (base, host) in [
            ("https://api.anthropic.com", "api.anthropic.com"),
            ("https://api.anthropic.com:443", "api.anthropic.com"),
            ("https://gw.example:8443/anthropic", "gw.example:8443"),
            ("http://10.0.0.1:80", "10.0.0.1"),
            ("http://[::1]:9000", "[::1]:9000"),
        ] {
            let up = AnthropicUpstream::new("a", Some(base), None).expect("valid");
            let r = up
                .request(
                    Method::POST,
                    "/v1/messages",
                    &http::HeaderMap::new(),
                    Bytes::new(),
                )
                .expect("builds");
            assert_eq!(r.headers()["host"], host, "{base}");
        }
    }
}
