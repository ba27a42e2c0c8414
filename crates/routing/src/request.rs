//! What the planner may know about a request. The server fills it from the earlier phases; the
//! planner never sees the body or the server's types.

use http::HeaderMap;

/// The request facts routes select and condition on. Borrowed: building one allocates nothing.
#[derive(Debug, Clone, Copy)]
pub struct RequestMeta<'a> {
    /// The model as the client named it.
    pub model: &'a str,
    /// The request asks for a stream.
    pub stream: bool,
    /// Size of the (decoded) request body.
    pub input_bytes: u64,
    /// The caller's team name.
    pub team: Option<&'a str>,
    /// The caller's user name.
    pub user: Option<&'a str>,
    /// The gateway key's id.
    pub key_id: Option<&'a str>,
    /// The gateway key's name.
    pub key_name: Option<&'a str>,
    /// `x-tollgate-project`.
    pub project: Option<&'a str>,
    /// `x-tollgate-tags`, split.
    pub tags: &'a [String],
    /// The client's headers.
    pub headers: &'a HeaderMap,
    /// `X-Claude-Code-Session-Id`.
    pub session_id: Option<&'a str>,
    /// `x-claude-code-agent-id` (subagents only).
    pub agent_id: Option<&'a str>,
    /// `x-tollgate-route`: a route asked for by name.
    pub route: Option<&'a str>,
    /// `x-tollgate-provider`: a provider asked for by name (used when no route applies).
    pub provider: Option<&'a str>,
}

impl<'a> RequestMeta<'a> {
    /// A request for `model` with nothing else known (tests, benchmarks).
    pub fn for_model(model: &'a str, headers: &'a HeaderMap) -> Self {
        Self {
            model,
            stream: false,
            input_bytes: 0,
            team: None,
            user: None,
            key_id: None,
            key_name: None,
            project: None,
            tags: &[],
            headers,
            session_id: None,
            agent_id: None,
            route: None,
            provider: None,
        }
    }
}
