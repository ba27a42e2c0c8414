//! One call to an upstream, and the configured upstream of any kind that prepares it.
//!
//! The forward phase converts the client's body into the upstream's dialect elsewhere; what
//! reaches [`UpstreamCall`] is ready to send. Each provider's `prepare` only adds what is its
//! own business: URL, credentials, signature, and the headers it accepts.

use crate::anthropic::{AnthropicUpstream, ProviderConfigError};
use crate::bedrock::BedrockUpstream;
use crate::config::{ProviderConfig, ProviderKind};
use crate::forward::is_withheld;
use crate::openai::OpenAiUpstream;
use crate::simulator::SimulatorUpstream;
use crate::vertex::VertexUpstream;
use bytes::Bytes;
use http::{HeaderMap, Uri};

/// What the client asked the upstream to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Create a message (Messages, InvokeModel, rawPredict, Chat Completions).
    Messages,
    /// Count the input tokens of a Messages request.
    CountTokens,
}

/// One request for an upstream, already in that upstream's body dialect.
#[derive(Clone)]
pub struct UpstreamCall<'a> {
    /// What to do.
    pub operation: Operation,
    /// Whether the response streams (picks the streaming endpoint where the provider has one).
    pub stream: bool,
    /// The provider's model id, e.g. `us.anthropic.claude-sonnet-4-5-20250929-v1:0`,
    /// `claude-sonnet-4-5@20250929` or `gpt-5`.
    pub model: &'a str,
    /// The request body, in the provider's dialect.
    pub body: Bytes,
    /// The client's headers; providers forward only what [`is_withheld`] lets through and what
    /// they accept.
    pub client_headers: &'a HeaderMap,
    /// `anthropic-beta` values, already filtered for this provider by the beta table. Vertex
    /// sends them as the `anthropic-beta` header; Bedrock's belong in the body's
    /// `anthropic_beta` (put there with the envelope) and OpenAI kinds have none, so both
    /// ignore this field.
    pub betas: &'a [String],
}

impl std::fmt::Debug for UpstreamCall<'_> {
    // Header names only: the client's headers carry its gateway credential, and bodies are
    // prompts.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamCall")
            .field("operation", &self.operation)
            .field("stream", &self.stream)
            .field("model", &self.model)
            .field("body_len", &self.body.len())
            .field(
                "client_headers",
                &self.client_headers.keys().collect::<Vec<_>>(),
            )
            .field("betas", &self.betas)
            .finish()
    }
}

/// Why an upstream request could not be prepared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderError {
    /// What went wrong, naming the provider; never contains a credential.
    pub message: String,
    /// True when the same call may succeed later or on another attempt (e.g. a token endpoint
    /// that did not answer); false when it never will on this provider.
    pub retryable: bool,
}

impl ProviderError {
    /// An error that repeating the call will not fix.
    pub fn fatal(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: false,
        }
    }

    /// An error that may go away on a later attempt.
    pub fn retryable(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: true,
        }
    }
}

impl std::fmt::Display for ProviderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ProviderError {}

/// The body and stream format an upstream speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Anthropic Messages; SSE streams.
    Anthropic,
    /// Bedrock InvokeModel envelope; AWS event-stream responses.
    Bedrock,
    /// Vertex rawPredict envelope; SSE streams.
    Vertex,
    /// OpenAI Chat Completions; SSE streams.
    OpenAi,
}

/// A configured upstream of any kind.
#[derive(Debug, Clone)]
pub enum Upstream {
    /// `kind = "anthropic"`.
    Anthropic(AnthropicUpstream),
    /// `kind = "bedrock"`.
    Bedrock(BedrockUpstream),
    /// `kind = "vertex"`.
    Vertex(VertexUpstream),
    /// `kind = "openai"`, `"azure-openai"` or `"openai-compatible"`.
    OpenAi(OpenAiUpstream),
    /// `kind = "simulator"`: answered inside the gateway.
    Simulator(SimulatorUpstream),
}

impl Upstream {
    /// The provider entry's name.
    pub fn name(&self) -> &str {
        match self {
            Upstream::Anthropic(u) => &u.name,
            Upstream::Bedrock(u) => &u.name,
            Upstream::Vertex(u) => &u.name,
            Upstream::OpenAi(u) => &u.name,
            Upstream::Simulator(u) => &u.name,
        }
    }

    /// The configured kind (the key into the beta table).
    pub fn kind(&self) -> ProviderKind {
        match self {
            Upstream::Anthropic(_) => ProviderKind::Anthropic,
            Upstream::Bedrock(_) => ProviderKind::Bedrock,
            Upstream::Vertex(_) => ProviderKind::Vertex,
            Upstream::OpenAi(u) => u.kind(),
            Upstream::Simulator(_) => ProviderKind::Simulator,
        }
    }

    /// What body and stream format the upstream speaks.
    pub fn dialect(&self) -> Dialect {
        match self {
            Upstream::Anthropic(_) | Upstream::Simulator(_) => Dialect::Anthropic,
            Upstream::Bedrock(_) => Dialect::Bedrock,
            Upstream::Vertex(_) => Dialect::Vertex,
            Upstream::OpenAi(_) => Dialect::OpenAi,
        }
    }
}

/// Reads one environment variable; `None` when unset.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Validates a provider entry and builds its upstream. Credentials the entry leaves out are
/// read from the process environment now (AWS variables for Bedrock,
/// `GOOGLE_APPLICATION_CREDENTIALS` for Vertex).
pub fn build(config: &ProviderConfig) -> Result<Upstream, ProviderConfigError> {
    build_with_env(config, &|name| std::env::var(name).ok())
}

/// [`build`] with the environment read through `env`, so callers (and tests) control it.
pub fn build_with_env(
    config: &ProviderConfig,
    env: EnvLookup<'_>,
) -> Result<Upstream, ProviderConfigError> {
    check_fields(config)?;
    Ok(match config.kind {
        ProviderKind::Anthropic => Upstream::Anthropic(AnthropicUpstream::new(
            &config.name,
            config.base_url.as_deref(),
            config.api_key.as_deref(),
        )?),
        ProviderKind::Bedrock => Upstream::Bedrock(BedrockUpstream::from_config(config, env)?),
        ProviderKind::Vertex => Upstream::Vertex(VertexUpstream::from_config(config, env)?),
        ProviderKind::Openai | ProviderKind::AzureOpenai | ProviderKind::OpenaiCompatible => {
            Upstream::OpenAi(OpenAiUpstream::from_config(config)?)
        }
        ProviderKind::Simulator => Upstream::Simulator(SimulatorUpstream::from_config(config)?),
    })
}

/// Refuses fields that mean nothing for the entry's kind: a `region` on an OpenAI entry is a
/// mistake the operator wants to hear about, not silently ignored.
fn check_fields(c: &ProviderConfig) -> Result<(), ProviderConfigError> {
    let present = [
        ("base_url", c.base_url.is_some()),
        ("api_key", c.api_key.is_some()),
        ("region", c.region.is_some()),
        ("endpoint", c.endpoint.is_some()),
        ("access_key_id", c.access_key_id.is_some()),
        ("secret_access_key", c.secret_access_key.is_some()),
        ("session_token", c.session_token.is_some()),
        ("credentials", c.credentials.is_some()),
        ("profile", c.profile.is_some()),
        ("project", c.project.is_some()),
        ("credentials_file", c.credentials_file.is_some()),
        ("credentials_json", c.credentials_json.is_some()),
        ("deployment", c.deployment.is_some()),
        ("api_version", c.api_version.is_some()),
        ("betas", !c.betas.is_empty()),
        ("model_quirks", !c.model_quirks.is_empty()),
        ("ttfb_ms", c.ttfb_ms.is_some()),
        ("tokens_per_second", c.tokens_per_second.is_some()),
        ("output_tokens", c.output_tokens.is_some()),
        ("errors", !c.errors.is_empty()),
        ("retry_after", c.retry_after.is_some()),
        ("midstream_drop_rate", c.midstream_drop_rate.is_some()),
        ("stall_ms", c.stall_ms.is_some()),
        ("stall_rate", c.stall_rate.is_some()),
        ("cache_ttl_secs", c.cache_ttl_secs.is_some()),
        ("control_file", c.control_file.is_some()),
    ];
    let allowed: &[&str] = match c.kind {
        ProviderKind::Anthropic => &["base_url", "api_key"],
        ProviderKind::Bedrock => &[
            "region",
            "endpoint",
            "access_key_id",
            "secret_access_key",
            "session_token",
            "api_key",
            "credentials",
            "profile",
            "betas",
        ],
        ProviderKind::Vertex => &[
            "project",
            "region",
            "endpoint",
            "credentials_file",
            "credentials_json",
            "betas",
        ],
        ProviderKind::Openai | ProviderKind::OpenaiCompatible => {
            &["base_url", "api_key", "model_quirks"]
        }
        ProviderKind::AzureOpenai => &[
            "endpoint",
            "deployment",
            "api_version",
            "api_key",
            "model_quirks",
        ],
        ProviderKind::Simulator => &[
            "ttfb_ms",
            "tokens_per_second",
            "output_tokens",
            "errors",
            "retry_after",
            "midstream_drop_rate",
            "stall_ms",
            "stall_rate",
            "cache_ttl_secs",
            "control_file",
        ],
    };
    for (field, is_set) in present {
        if is_set && !allowed.contains(&field) {
            return Err(config_error(
                c,
                field,
                format!("does not apply to kind {}", c.kind),
            ));
        }
    }
    Ok(())
}

/// `provider 'NAME' (KIND): FIELD MESSAGE`.
pub(crate) fn config_error(
    c: &ProviderConfig,
    field: &str,
    message: impl std::fmt::Display,
) -> ProviderConfigError {
    ProviderConfigError(format!(
        "provider '{}' ({}): {field} {message}",
        c.name, c.kind
    ))
}

/// A set, non-empty string field; an empty value (e.g. an unset variable expanded to `""`)
/// counts as absent.
pub(crate) fn non_empty(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|s| !s.is_empty())
}

/// A validated base URL: `scheme://host[:port]` plus a path prefix without a trailing slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BaseUrl {
    /// Scheme and authority; a default port (`:443` for https, `:80` for http) is removed so
    /// the host that is signed is the host that is sent.
    pub origin: String,
    /// `""` or `/prefix` (no trailing slash).
    pub path: String,
}

impl BaseUrl {
    /// Parses an http(s) URL with a host and no query or fragment.
    pub fn parse(c: &ProviderConfig, field: &str, raw: &str) -> Result<Self, ProviderConfigError> {
        let trimmed = raw.trim_end_matches('/');
        let uri: Uri = trimmed
            .parse()
            .map_err(|e| config_error(c, field, format!("'{raw}' is not a valid URL: {e}")))?;
        let scheme = match uri.scheme_str() {
            Some(s @ ("http" | "https")) => s,
            _ => {
                return Err(config_error(
                    c,
                    field,
                    format!("'{raw}' must start with http:// or https://"),
                ));
            }
        };
        let Some(host) = uri.host().filter(|h| !h.is_empty()) else {
            return Err(config_error(c, field, format!("'{raw}' needs a host")));
        };
        if uri.query().is_some() || trimmed.contains('#') {
            return Err(config_error(
                c,
                field,
                format!("'{raw}' must not have a query or fragment"),
            ));
        }
        if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
            return Err(config_error(
                c,
                field,
                "must not carry credentials (user@host)",
            ));
        }
        let default_port = if scheme == "https" { 443 } else { 80 };
        let origin = match uri.port_u16() {
            Some(p) if p != default_port => format!("{scheme}://{host}:{p}"),
            _ => format!("{scheme}://{host}"),
        };
        Ok(Self {
            origin,
            path: uri.path().trim_end_matches('/').to_string(),
        })
    }
}

/// Percent-encodes one path segment: RFC 3986 unreserved characters and `keep` stay, every
/// other byte becomes `%XX`, so the value can never add segments, a query or a fragment.
pub(crate) fn encode_segment(s: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') || keep.contains(&b)
        {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Copies the client headers that [`is_withheld`] lets through and `also_withheld` does not
/// claim, in order, repeated names included.
pub(crate) fn forward_client_headers(
    from: &HeaderMap,
    into: &mut HeaderMap,
    also_withheld: impl Fn(&str) -> bool,
) {
    for (name, value) in from {
        let n = name.as_str();
        if !is_withheld(n) && !also_withheld(n) {
            into.append(name.clone(), value.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(kind: ProviderKind) -> ProviderConfig {
        ProviderConfig {
            name: "p".into(),
            kind,
            ..Default::default()
        }
    }

    #[test]
    fn base_url_normalises_default_ports_and_slashes() {
        let c = cfg(ProviderKind::Openai);
        let b = BaseUrl::parse(&c, "base_url", "https://h.example:443/x/v1/").expect("valid");
        assert_eq!(b.origin, "https://h.example");
        assert_eq!(b.path, "/x/v1");
        let b = BaseUrl::parse(&c, "base_url", "http://127.0.0.1:8080").expect("valid");
        assert_eq!(
            (b.origin.as_str(), b.path.as_str()),
            ("http://127.0.0.1:8080", "")
        );
        for bad in [
            "ftp://h",
            "h.example",
            "https://h.example/?a=1",
            "https://u:p@h.example",
            "",
            "https://",
        ] {
            let e = BaseUrl::parse(&c, "base_url", bad).expect_err(bad);
            assert!(e.0.starts_with("provider 'p' (openai): base_url"), "{e}");
        }
    }

    #[test]
    fn segments_cannot_escape_the_path() {
        assert_eq!(
            encode_segment("us.anthropic.claude-x-v1:0", &[]),
            "us.anthropic.claude-x-v1%3A0"
        );
        assert_eq!(encode_segment("a/b?c#d e", &[]), "a%2Fb%3Fc%23d%20e");
        assert_eq!(encode_segment("claude@2025", b"@"), "claude@2025");
    }

    #[test]
    fn fields_of_other_kinds_are_refused_by_name() {
        let mut c = cfg(ProviderKind::Openai);
        c.api_key = Some("k".into());
        c.region = Some("us-east-1".into());
        let e = build_with_env(&c, &|_| None).expect_err("region on openai");
        assert_eq!(
            e.0,
            "provider 'p' (openai): region does not apply to kind openai"
        );
        let mut c = cfg(ProviderKind::Anthropic);
        c.betas
            .insert("x".into(), crate::betas::BetaAction::Forward);
        assert!(build_with_env(&c, &|_| None).is_err());
    }

    #[test]
    fn anthropic_entries_build_as_before() {
        let mut c = cfg(ProviderKind::Anthropic);
        c.api_key = Some("sk".into());
        let u = build_with_env(&c, &|_| None).expect("valid");
        assert_eq!(u.name(), "p");
        assert_eq!(u.kind(), ProviderKind::Anthropic);
        assert_eq!(u.dialect(), Dialect::Anthropic);
    }
}
