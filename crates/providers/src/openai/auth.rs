//! OpenAI-dialect credentials: a Bearer key (OpenAI, compatible servers) or Azure's `api-key`.

use crate::anthropic::ProviderConfigError;
use crate::call::{config_error, non_empty};
use crate::config::{ProviderConfig, ProviderKind};
use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderName, HeaderValue};

/// Azure OpenAI's key header.
pub const API_KEY: &str = "api-key";

/// The credential header of one provider.
#[derive(Clone)]
pub enum OpenAiAuth {
    /// `Authorization: Bearer <key>`.
    Bearer(HeaderValue),
    /// `api-key: <key>` (Azure OpenAI).
    AzureKey(HeaderValue),
    /// No credential (a local or network-protected compatible server).
    None,
}

impl std::fmt::Debug for OpenAiAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OpenAiAuth::Bearer(_) => "Bearer(<redacted>)",
            OpenAiAuth::AzureKey(_) => "AzureKey(<redacted>)",
            OpenAiAuth::None => "None",
        })
    }
}

impl OpenAiAuth {
    /// The key is required for `openai` and `azure-openai`, optional for `openai-compatible`.
    pub fn from_config(c: &ProviderConfig) -> Result<Self, ProviderConfigError> {
        let key = non_empty(&c.api_key);
        let value = |prefix: &str, key: &str| {
            let mut v = HeaderValue::from_str(&format!("{prefix}{key}"))
                .map_err(|_| config_error(c, "api_key", "has invalid characters"))?;
            v.set_sensitive(true);
            Ok::<_, ProviderConfigError>(v)
        };
        match (c.kind, key) {
            (ProviderKind::AzureOpenai, Some(k)) => Ok(OpenAiAuth::AzureKey(value("", k)?)),
            (_, Some(k)) => Ok(OpenAiAuth::Bearer(value("Bearer ", k)?)),
            (ProviderKind::OpenaiCompatible, None) => Ok(OpenAiAuth::None),
            (_, None) => Err(config_error(c, "api_key", "is required")),
        }
    }

    /// Adds the credential header.
    pub fn apply(&self, headers: &mut HeaderMap) {
        match self {
            OpenAiAuth::Bearer(v) => {
                headers.insert(AUTHORIZATION, v.clone());
            }
            OpenAiAuth::AzureKey(v) => {
                headers.insert(HeaderName::from_static(API_KEY), v.clone());
            }
            OpenAiAuth::None => {}
        }
    }
}
