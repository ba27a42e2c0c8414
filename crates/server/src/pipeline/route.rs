//! Phase 5, route: the ordered attempts that may serve the request.
//!
//! The planner (`tollgate_routing`) sees only [`RequestMeta`]: this phase fills it from what
//! the earlier phases learned — the caller, the attribution headers, the request facts.

use super::admit::Admitted;
use super::classify::header;
use crate::error::GatewayError;
use crate::state::AppState;
use tollgate_routing::{RequestMeta, RoutePlan};
use tollgate_wire::headers::{
    X_CLAUDE_CODE_AGENT_ID, X_CLAUDE_CODE_SESSION_ID, X_TOLLGATE_PROJECT, X_TOLLGATE_PROVIDER,
    X_TOLLGATE_ROUTE,
};

/// A request with its plan.
#[derive(Debug)]
pub struct Routed {
    pub admitted: Admitted,
    pub plan: RoutePlan,
}

/// Runs the route phase.
pub fn route(state: &AppState, admitted: Admitted) -> Result<Routed, GatewayError> {
    let plan = {
        let c = &admitted.classified;
        let h = &c.auth.accepted.headers;
        let p = &c.auth.principal;
        let tags = super::classify::tags(h);
        let meta = RequestMeta {
            model: c.facts.model.as_deref().unwrap_or_default(),
            stream: c.facts.stream,
            input_bytes: c.auth.accepted.body.len() as u64,
            team: p.team.as_deref(),
            user: Some(p.user.as_str()),
            key_id: Some(p.key_id.as_str()),
            key_name: p.key_name.as_deref(),
            project: header(h, &X_TOLLGATE_PROJECT),
            tags: &tags,
            headers: h,
            session_id: header(h, &X_CLAUDE_CODE_SESSION_ID),
            agent_id: header(h, &X_CLAUDE_CODE_AGENT_ID),
            route: header(h, &X_TOLLGATE_ROUTE),
            provider: header(h, &X_TOLLGATE_PROVIDER),
        };
        state
            .routes
            .plan(&meta)
            .map_err(|e| GatewayError::not_found(e.to_string()))?
    };
    Ok(Routed { admitted, plan })
}
