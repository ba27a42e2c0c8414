//! Phase 3, classify: read only the body fields and headers the gateway acts on.

use super::accept::Endpoint;
use super::authenticate::Authenticated;
use crate::error::GatewayError;
use http::HeaderMap;
use tollgate_wire::anthropic::{RequestFacts, read_request};
use tollgate_wire::headers::{
    X_CLAUDE_CODE_AGENT_ID, X_CLAUDE_CODE_SESSION_ID, X_TOLLGATE_PROJECT, X_TOLLGATE_PROVIDER,
    X_TOLLGATE_TAGS,
};

/// Who and what a request is attributed to, from headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attribution {
    pub project: Option<String>,
    pub tags: Vec<String>,
    pub session_id: Option<String>,
    pub agent_id: Option<String>,
    pub provider: Option<String>,
    pub user_agent: Option<String>,
}

/// A request whose facts are known.
#[derive(Debug)]
pub struct Classified {
    pub auth: Authenticated,
    pub facts: RequestFacts,
}

fn header(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

/// Reads the attribution headers (once per request, when the journal record is started).
pub fn attribution(h: &HeaderMap) -> Attribution {
    Attribution {
        project: header(h, X_TOLLGATE_PROJECT),
        tags: header(h, X_TOLLGATE_TAGS)
            .map(|t| {
                t.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
        session_id: header(h, X_CLAUDE_CODE_SESSION_ID),
        agent_id: header(h, X_CLAUDE_CODE_AGENT_ID),
        provider: header(h, X_TOLLGATE_PROVIDER),
        user_agent: header(h, http::header::USER_AGENT.as_str()),
    }
}

/// Runs the classify phase.
pub fn classify(auth: Authenticated) -> Result<Classified, GatewayError> {
    let facts =
        read_request(&auth.accepted.body).map_err(|e| GatewayError::invalid(e.to_string()))?;
    if facts.model.is_none() {
        return Err(GatewayError::invalid("model: field required"));
    }
    if auth.accepted.endpoint == Endpoint::Messages && facts.max_tokens.is_none() {
        return Err(GatewayError::invalid("max_tokens: field required"));
    }
    Ok(Classified { auth, facts })
}
