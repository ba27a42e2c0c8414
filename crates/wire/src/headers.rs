//! Names of the HTTP headers the gateway reads, writes or filters — one place, typed.
//!
//! They are [`HeaderName`]s, not strings: a lookup by `&str` validates and classifies the name
//! again on every call, and the pipeline makes about twenty per request. Statics rather than
//! constants, since a custom name holds `Bytes`, whose interior mutability makes each use of a
//! constant a fresh copy.

use http::HeaderName;

/// The gateway key in its own header, for clients that skip provider auth.
pub static X_TOLLGATE_API_KEY: HeaderName = HeaderName::from_static("x-tollgate-api-key");
/// Asks for a named provider.
pub static X_TOLLGATE_PROVIDER: HeaderName = HeaderName::from_static("x-tollgate-provider");
/// Asks for a named route.
pub static X_TOLLGATE_ROUTE: HeaderName = HeaderName::from_static("x-tollgate-route");
/// Attributes the request to a project.
pub static X_TOLLGATE_PROJECT: HeaderName = HeaderName::from_static("x-tollgate-project");
/// Comma-separated tags recorded with the request.
pub static X_TOLLGATE_TAGS: HeaderName = HeaderName::from_static("x-tollgate-tags");
/// The gateway's own request id, on every response.
pub static X_TOLLGATE_REQUEST_ID: HeaderName = HeaderName::from_static("x-tollgate-request-id");
/// Prefix of every header the gateway consumes and never forwards.
pub const X_TOLLGATE_PREFIX: &str = "x-tollgate-";

/// Anthropic API key header (client credential in, provider credential out).
pub static X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");
/// Anthropic's API version header.
pub static ANTHROPIC_VERSION: HeaderName = HeaderName::from_static("anthropic-version");
/// Anthropic's beta list.
pub static ANTHROPIC_BETA: HeaderName = HeaderName::from_static("anthropic-beta");
/// Tells Anthropic SDKs (and Claude Code) whether to retry.
pub static X_SHOULD_RETRY: HeaderName = HeaderName::from_static("x-should-retry");
/// The upstream's request id.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("request-id");
/// Claude Code's session id, shared by subagents.
pub static X_CLAUDE_CODE_SESSION_ID: HeaderName =
    HeaderName::from_static("x-claude-code-session-id");
/// Present on Claude Code subagent requests only.
pub static X_CLAUDE_CODE_AGENT_ID: HeaderName = HeaderName::from_static("x-claude-code-agent-id");

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1), plus those the
/// proxy recomputes itself; never copied between client and upstream.
pub const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
];
