//! OAuth2 access tokens for Vertex AI from a service-account key.
//!
//! `gcp_auth::CustomServiceAccount` signs an RS256 JWT grant (issuer: the key's
//! `client_email`, audience and endpoint: its `token_uri`, one hour of validity) and posts it to
//! `token_uri`. It caches the token per scope set and fetches a new one on the first call within
//! 20 seconds of expiry; nothing refreshes in the background, so an idle gateway holds no
//! timers. After taking its write lock it fetches without looking at the cache again, so
//! callers that found the token stale at the same moment each post a grant. [`TokenSource`]
//! re-checks behind its own gate, so a burst of requests at expiry (or at start) costs one
//! grant, and its fast path is one uncontended mutex instead of an async lock and a key
//! allocation per request.

use crate::anthropic::ProviderConfigError;
use crate::call::{EnvLookup, ProviderError, config_error, non_empty};
use crate::config::ProviderConfig;
use gcp_auth::{CustomServiceAccount, Token, TokenProvider};
use http::HeaderValue;
use std::sync::{Arc, Mutex};

/// The OAuth2 scope Vertex AI accepts.
pub const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// Access tokens of one service account, shared by every request of a provider.
pub struct TokenSource {
    account: CustomServiceAccount,
    /// The last token; read on every request without waiting on a refresh in progress.
    current: Mutex<Option<Arc<Token>>>,
    /// Held while a new token is fetched, so concurrent callers wait for it instead of
    /// fetching their own.
    refresh: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource").finish_non_exhaustive()
    }
}

impl TokenSource {
    /// Reads the key from `credentials_json`, `credentials_file` or, with neither, the file
    /// named by `GOOGLE_APPLICATION_CREDENTIALS`.
    pub fn from_config(
        c: &ProviderConfig,
        env: EnvLookup<'_>,
    ) -> Result<Self, ProviderConfigError> {
        let (field, json) = match (
            non_empty(&c.credentials_json),
            non_empty(&c.credentials_file),
        ) {
            (Some(_), Some(_)) => {
                return Err(config_error(
                    c,
                    "credentials_json",
                    "cannot be combined with credentials_file; set one",
                ));
            }
            (Some(json), None) => ("credentials_json", json.to_string()),
            (None, Some(path)) => ("credentials_file", read_key(c, "credentials_file", path)?),
            (None, None) => match env("GOOGLE_APPLICATION_CREDENTIALS").filter(|p| !p.is_empty()) {
                Some(path) => (
                    "GOOGLE_APPLICATION_CREDENTIALS",
                    read_key(c, "GOOGLE_APPLICATION_CREDENTIALS", &path)?,
                ),
                None => {
                    return Err(config_error(
                        c,
                        "credentials",
                        "are missing: set credentials_file or credentials_json (a service-account \
                         key), or GOOGLE_APPLICATION_CREDENTIALS in the environment",
                    ));
                }
            },
        };
        let account = CustomServiceAccount::from_json(&json).map_err(|e| {
            config_error(
                c,
                field,
                format!("is not a usable service-account key: {e}"),
            )
        })?;
        Ok(Self {
            account,
            current: Mutex::new(None),
            refresh: tokio::sync::Mutex::new(()),
        })
    }

    /// `Bearer <access token>`, fetching a token only when none is valid for 20 more seconds.
    pub async fn bearer(&self, name: &str) -> Result<HeaderValue, ProviderError> {
        let token = match self.fresh() {
            Some(t) => t,
            None => {
                let _gate = self.refresh.lock().await;
                // Whoever held the gate before us may have fetched one already.
                match self.fresh() {
                    Some(t) => t,
                    None => {
                        let t = self.account.token(&[SCOPE]).await.map_err(|e| {
                            ProviderError::retryable(format!(
                                "vertex '{name}': cannot obtain an access token: {e}"
                            ))
                        })?;
                        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Some(t.clone());
                        t
                    }
                }
            }
        };
        let mut v = HeaderValue::from_str(&format!("Bearer {}", token.as_str())).map_err(|_| {
            ProviderError::fatal(format!(
                "vertex '{name}': the token endpoint returned an access token with invalid characters"
            ))
        })?;
        v.set_sensitive(true);
        Ok(v)
    }

    fn fresh(&self) -> Option<Arc<Token>> {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .filter(|t| !t.has_expired())
            .cloned()
    }
}

fn read_key(c: &ProviderConfig, field: &str, path: &str) -> Result<String, ProviderConfigError> {
    std::fs::read_to_string(path)
        .map_err(|e| config_error(c, field, format!("'{path}' cannot be read: {e}")))
}
