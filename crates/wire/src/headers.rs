//! Names of the HTTP headers the gateway reads, writes or filters — one place, typed.

/// The gateway key in its own header, for clients that skip provider auth.
pub const X_TOLLGATE_API_KEY: &str = "x-tollgate-api-key";
/// Asks for a named provider.
pub const X_TOLLGATE_PROVIDER: &str = "x-tollgate-provider";
/// Asks for a named route.
pub const X_TOLLGATE_ROUTE: &str = "x-tollgate-route";
/// Attributes the request to a project.
pub const X_TOLLGATE_PROJECT: &str = "x-tollgate-project";
/// Comma-separated tags recorded with the request.
pub const X_TOLLGATE_TAGS: &str = "x-tollgate-tags";
/// The gateway's own request id, on every response.
pub const X_TOLLGATE_REQUEST_ID: &str = "x-tollgate-request-id";
/// Prefix of every header the gateway consumes and never forwards.
pub const X_TOLLGATE_PREFIX: &str = "x-tollgate-";

/// Anthropic API key header (client credential in, provider credential out).
pub const X_API_KEY: &str = "x-api-key";
/// Anthropic's API version header.
pub const ANTHROPIC_VERSION: &str = "anthropic-version";
/// Anthropic's beta list.
pub const ANTHROPIC_BETA: &str = "anthropic-beta";
/// Tells Anthropic SDKs (and Claude Code) whether to retry.
pub const X_SHOULD_RETRY: &str = "x-should-retry";
/// The upstream's request id.
pub const REQUEST_ID: &str = "request-id";
/// Claude Code's session id, shared by subagents.
pub const X_CLAUDE_CODE_SESSION_ID: &str = "x-claude-code-session-id";
/// Present on Claude Code subagent requests only.
pub const X_CLAUDE_CODE_AGENT_ID: &str = "x-claude-code-agent-id";

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
