//! Bedrock credentials: SigV4 with AWS keys (configured, from the environment, from a profile of
//! the shared files, or looked up by the standard chain in `chain`), or a Bedrock API key.
//!
//! Signing goes through `aws-sigv4` with its default settings, which canonicalise exactly as
//! botocore does for `bedrock-runtime`: the path double-encoded (`%3A` in the URL is `%253A` in
//! the canonical request), every header sent signed (`accept;content-type;host;x-amz-date`,
//! plus `x-amz-security-token` with temporary credentials), the payload hashed but not sent as
//! `x-amz-content-sha256`. The test suite compares the result with botocore byte for byte.

use crate::anthropic::ProviderConfigError;
use crate::call::{EnvLookup, ProviderError, config_error, non_empty};
use crate::config::ProviderConfig;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderName, HeaderValue, Uri};
use std::sync::Arc;
use std::time::SystemTime;

mod chain;

pub use chain::{ChainEnv, CredentialCache, ProfileEntry, Source};

/// SigV4 signing name of the Bedrock runtime API.
pub const SIGNING_NAME: &str = "bedrock";

/// Provider name recorded in the credentials (shows in aws-sigv4's own debug output only).
const CREDENTIALS_SOURCE: &str = "tollgate-config";

/// How requests to one Bedrock provider are authenticated.
#[derive(Clone)]
pub enum BedrockAuth {
    /// AWS access keys, signed per request.
    SigV4(Credentials),
    /// A Bedrock API key: `Authorization: Bearer <key>`, no signature.
    ApiKey(HeaderValue),
    /// Temporary credentials looked up (container, instance metadata, web identity) and renewed
    /// before they expire.
    Chain(Arc<CredentialCache>),
}

impl std::fmt::Debug for BedrockAuth {
    // Neither keys nor tokens reach logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BedrockAuth::SigV4(c) => f
                .debug_struct("SigV4")
                .field("session_token", &c.session_token().is_some())
                .finish_non_exhaustive(),
            BedrockAuth::ApiKey(_) => f.write_str("ApiKey(<redacted>)"),
            BedrockAuth::Chain(cache) => f.debug_tuple("Chain").field(cache).finish(),
        }
    }
}

impl BedrockAuth {
    /// Credentials from the entry, else from the environment (see
    /// [`BedrockUpstream::from_config`](super::BedrockUpstream::from_config)).
    pub fn from_config(
        c: &ProviderConfig,
        env: EnvLookup<'_>,
    ) -> Result<Self, ProviderConfigError> {
        let key_id = non_empty(&c.access_key_id);
        let secret = non_empty(&c.secret_access_key);
        let token = non_empty(&c.session_token);
        let api_key = non_empty(&c.api_key);
        if let Some(source) = lookup_source(c)? {
            if key_id.is_some() || secret.is_some() || token.is_some() || api_key.is_some() {
                return Err(config_error(
                    c,
                    if c.profile.is_some() {
                        "profile"
                    } else {
                        "credentials"
                    },
                    "cannot be combined with access_key_id/secret_access_key/session_token or api_key",
                ));
            }
            let region = non_empty(&c.region).unwrap_or_default();
            let chain_env = ChainEnv::read(env);
            return match &source {
                // The profile is read now, so a missing one stops the start. Keys in a file do not
                // expire; a credential_process or a role is asked at first use and again before
                // what it gave expires.
                Source::Profile(name) => match chain::profile_entry(&chain_env, name) {
                    Ok(ProfileEntry::Keys(creds)) => Ok(BedrockAuth::SigV4(creds)),
                    Ok(ProfileEntry::Process(_) | ProfileEntry::AssumeRole(_)) => {
                        Ok(BedrockAuth::Chain(Arc::new(CredentialCache::new(
                            source, region, chain_env,
                        ))))
                    }
                    Err(e) => Err(config_error(c, "profile", e.0)),
                },
                Source::Chain => Ok(BedrockAuth::Chain(Arc::new(CredentialCache::new(
                    source, region, chain_env,
                )))),
            };
        }
        match (key_id, secret, api_key) {
            (Some(_), Some(_), Some(_)) => Err(config_error(
                c,
                "api_key",
                "cannot be combined with access_key_id/secret_access_key; set one or the other",
            )),
            (Some(id), Some(secret), None) => sigv4(c, "access_key_id", id, secret, token),
            (Some(_), None, _) => Err(config_error(
                c,
                "secret_access_key",
                "is required with access_key_id",
            )),
            (None, Some(_), _) => Err(config_error(
                c,
                "access_key_id",
                "is required with secret_access_key",
            )),
            (None, None, Some(key)) => {
                if token.is_some() {
                    return Err(config_error(
                        c,
                        "session_token",
                        "only applies with access_key_id/secret_access_key",
                    ));
                }
                bearer(c, "api_key", key)
            }
            (None, None, None) => {
                if token.is_some() {
                    return Err(config_error(
                        c,
                        "session_token",
                        "only applies with access_key_id/secret_access_key",
                    ));
                }
                from_env(c, env)
            }
        }
    }

    /// Adds the credential to `headers`: a signature over method, URI, `headers` and `body`,
    /// or the API key. Looked-up credentials are fetched first when none are cached or they
    /// are about to expire.
    pub async fn authorize(
        &self,
        name: &str,
        region: &str,
        uri: &Uri,
        headers: &mut HeaderMap,
        body: &[u8],
        now: SystemTime,
    ) -> Result<(), ProviderError> {
        match self {
            BedrockAuth::ApiKey(v) => {
                headers.insert(AUTHORIZATION, v.clone());
                Ok(())
            }
            BedrockAuth::SigV4(creds) => sign_headers(name, creds, region, uri, headers, body, now),
            BedrockAuth::Chain(cache) => {
                let creds = cache.get(SystemTime::now()).await.map_err(|e| {
                    ProviderError::retryable(format!("bedrock '{name}': AWS credentials: {e}"))
                })?;
                sign_headers(name, &creds, region, uri, headers, body, now)
            }
        }
    }
}

/// `credentials = "chain"` or `profile = "…"`, when the entry asks for a lookup.
fn lookup_source(c: &ProviderConfig) -> Result<Option<Source>, ProviderConfigError> {
    match (non_empty(&c.credentials), non_empty(&c.profile)) {
        (Some(_), Some(_)) => Err(config_error(
            c,
            "profile",
            "cannot be combined with credentials = \"chain\" (the chain reads AWS_PROFILE)",
        )),
        (Some("chain"), None) => Ok(Some(Source::Chain)),
        (Some(other), None) => Err(config_error(
            c,
            "credentials",
            format!("\"{other}\" is not a credential source (the one accepted is \"chain\")"),
        )),
        (None, Some(p)) => Ok(Some(Source::Profile(p.to_string()))),
        (None, None) if c.credentials.is_some() || c.profile.is_some() => Err(config_error(
            c,
            if c.profile.is_some() {
                "profile"
            } else {
                "credentials"
            },
            "must not be empty",
        )),
        (None, None) => Ok(None),
    }
}

fn sigv4(
    c: &ProviderConfig,
    field: &str,
    key_id: &str,
    secret: &str,
    token: Option<&str>,
) -> Result<BedrockAuth, ProviderConfigError> {
    // The key id is spelled into the Authorization header's credential scope, so it must not
    // carry separators; real ids are upper-case alphanumerics.
    if !key_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(config_error(c, field, "must be alphanumeric"));
    }
    if let Some(t) = token
        && HeaderValue::from_str(t).is_err()
    {
        return Err(config_error(c, "session_token", "has invalid characters"));
    }
    Ok(BedrockAuth::SigV4(Credentials::new(
        key_id,
        secret,
        token.map(str::to_string),
        None,
        CREDENTIALS_SOURCE,
    )))
}

fn bearer(c: &ProviderConfig, field: &str, key: &str) -> Result<BedrockAuth, ProviderConfigError> {
    let mut v = HeaderValue::from_str(&format!("Bearer {key}"))
        .map_err(|_| config_error(c, field, "has invalid characters"))?;
    v.set_sensitive(true);
    Ok(BedrockAuth::ApiKey(v))
}

fn from_env(c: &ProviderConfig, env: EnvLookup<'_>) -> Result<BedrockAuth, ProviderConfigError> {
    let get = |n: &str| env(n).filter(|v| !v.is_empty());
    match (get("AWS_ACCESS_KEY_ID"), get("AWS_SECRET_ACCESS_KEY")) {
        (Some(id), Some(secret)) => {
            let token = get("AWS_SESSION_TOKEN");
            sigv4(c, "AWS_ACCESS_KEY_ID", &id, &secret, token.as_deref())
        }
        (Some(_), None) | (None, Some(_)) => Err(config_error(
            c,
            "credentials",
            "from the environment need both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
        )),
        (None, None) => match get("AWS_BEARER_TOKEN_BEDROCK") {
            Some(key) => bearer(c, "AWS_BEARER_TOKEN_BEDROCK", &key),
            None => Err(config_error(
                c,
                "credentials",
                "are missing: set access_key_id + secret_access_key or api_key, or \
                 AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (or AWS_BEARER_TOKEN_BEDROCK) in the \
                 environment",
            )),
        },
    }
}

fn sign_headers(
    name: &str,
    creds: &Credentials,
    region: &str,
    uri: &Uri,
    headers: &mut HeaderMap,
    body: &[u8],
    now: SystemTime,
) -> Result<(), ProviderError> {
    sigv4_sign(SIGNING_NAME, creds, region, uri, headers, body, now)
        .map_err(|e| ProviderError::fatal(format!("bedrock '{name}': signing failed ({e})")))
}

/// Signs a POST of `body` to `uri` for AWS service `service`, adding the signature headers.
fn sigv4_sign(
    service: &str,
    creds: &Credentials,
    region: &str,
    uri: &Uri,
    headers: &mut HeaderMap,
    body: &[u8],
    now: SystemTime,
) -> Result<(), String> {
    let fail = |what: &str, e: &dyn std::fmt::Display| format!("{what}: {e}");
    let identity = creds.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(now)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| fail("parameters", &e))?
        .into();
    let mut pairs = Vec::with_capacity(headers.len());
    for (k, v) in headers.iter() {
        let v = v.to_str().map_err(|e| fail("header", &e))?;
        pairs.push((k.as_str(), v));
    }
    let uri = uri.to_string();
    let signable = SignableRequest::new("POST", uri, pairs.into_iter(), SignableBody::Bytes(body))
        .map_err(|e| fail("request", &e))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| fail("signature", &e))?
        .into_parts();
    // Applied by hand: aws-sigv4's own `apply_to_request_http1x` panics on a header value it
    // cannot encode; here that is an error.
    let (new_headers, _query) = instructions.into_parts();
    for h in new_headers {
        let mut value = HeaderValue::from_str(h.value()).map_err(|e| fail("header value", &e))?;
        value.set_sensitive(h.sensitive());
        let name =
            HeaderName::from_bytes(h.name().as_bytes()).map_err(|e| fail("header name", &e))?;
        headers.insert(name, value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ProviderKind;
    use std::collections::HashMap;

    fn base() -> ProviderConfig {
        ProviderConfig {
            name: "b".into(),
            kind: ProviderKind::Bedrock,
            region: Some("us-east-1".into()),
            ..Default::default()
        }
    }

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn credential_sources_and_their_errors() {
        let mut c = base();
        c.access_key_id = Some("AKID".into());
        let e = BedrockAuth::from_config(&c, &env(&[])).expect_err("half keys");
        assert_eq!(
            e.0,
            "provider 'b' (bedrock): secret_access_key is required with access_key_id"
        );
        c.secret_access_key = Some("s".into());
        c.api_key = Some("k".into());
        assert!(BedrockAuth::from_config(&c, &env(&[])).is_err());
        c.api_key = None;
        c.session_token = Some("bad\ntoken".into());
        assert!(BedrockAuth::from_config(&c, &env(&[])).is_err());
        c.session_token = Some("tok".into());
        assert!(matches!(
            BedrockAuth::from_config(&c, &env(&[])),
            Ok(BedrockAuth::SigV4(_))
        ));

        let c = base();
        let e = BedrockAuth::from_config(&c, &env(&[])).expect_err("nothing");
        assert!(e.0.contains("credentials are missing"), "{e}");
        let a = BedrockAuth::from_config(
            &c,
            &env(&[
                ("AWS_ACCESS_KEY_ID", "AKID"),
                ("AWS_SECRET_ACCESS_KEY", "s"),
            ]),
        )
        .expect("env keys");
        assert!(matches!(a, BedrockAuth::SigV4(_)));
        let a = BedrockAuth::from_config(&c, &env(&[("AWS_BEARER_TOKEN_BEDROCK", "bk")]))
            .expect("env api key");
        assert!(format!("{a:?}").contains("redacted"));
        assert!(!format!("{a:?}").contains("bk"));
    }
}
