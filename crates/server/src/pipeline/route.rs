//! Phase 5, route: the ordered attempts that may serve the request.

use super::admit::Admitted;
use crate::error::GatewayError;
use crate::state::AppState;
use tollgate_routing::RoutePlan;
use tollgate_wire::headers::X_TOLLGATE_PROVIDER;

/// A request with its plan.
#[derive(Debug)]
pub struct Routed {
    pub admitted: Admitted,
    pub plan: RoutePlan,
}

/// Runs the route phase.
pub fn route(state: &AppState, admitted: Admitted) -> Result<Routed, GatewayError> {
    let requested = admitted
        .classified
        .auth
        .accepted
        .headers
        .get(X_TOLLGATE_PROVIDER)
        .and_then(|v| v.to_str().ok());
    let plan = state
        .routes
        .plan(requested)
        .map_err(|e| GatewayError::not_found(e.to_string()))?;
    Ok(Routed { admitted, plan })
}
