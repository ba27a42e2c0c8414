//! Phase 4, admit: policy decisions before any upstream is contacted.
//!
//! Every authenticated key may use every configured model in this slice; model and provider
//! allow-lists, guardrails, rate limits and budget reservations are decided here as they
//! arrive, so that a refusal never reaches an upstream.

use super::classify::Classified;
use crate::error::GatewayError;
use crate::state::AppState;

/// A request the policies let through.
#[derive(Debug)]
pub struct Admitted {
    pub classified: Classified,
}

/// Runs the admit phase.
pub fn admit(_state: &AppState, classified: Classified) -> Result<Admitted, GatewayError> {
    Ok(Admitted { classified })
}
