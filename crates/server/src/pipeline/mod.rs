//! The model request pipeline: seven phases, in order, each in its own module.
//!
//! accept → authenticate → classify → admit → route → forward → settle
//!
//! Each phase takes the previous phase's typed result and returns the next one, so the request
//! state grows phase by phase. Any phase may answer the client itself with a [`GatewayError`];
//! that answer goes straight to `settle`, which writes the one journal record of the request.

pub mod accept;
pub mod admit;
pub mod authenticate;
pub mod classify;
pub mod convert;
pub mod dialect;
pub mod forward;
pub mod models;
pub mod route;
pub mod settle;
pub mod stream_relay;

use crate::error::GatewayError;
use crate::state::AppState;
use accept::Endpoint;
use axum::body::Body;
use http::{Request, Response};
use settle::Recorder;
use std::sync::Arc;

/// Serves one model API request from arrival to journal record.
pub async fn handle(state: Arc<AppState>, req: Request<Body>) -> Response<Body> {
    let mut rec = Recorder::start(&state, &req);
    let dialect = dialect::ClientDialect::of_path(req.uri().path());
    // The pipeline's state machine is about 8 KB. Boxed, it is copied once into its allocation;
    // inline, this future would be that large and be copied again by every move (hyper's
    // dispatcher moves it into its in-flight slot).
    match Box::pin(run(&state, &mut rec, req)).await {
        Ok(resp) => resp,
        Err(err) => {
            let resp = dialect::error_response(dialect, &err, rec.id());
            rec.finish_error(&err);
            resp
        }
    }
}

async fn run(
    state: &Arc<AppState>,
    rec: &mut Recorder,
    req: Request<Body>,
) -> Result<Response<Body>, GatewayError> {
    let accepted = accept::accept(state, rec, req).await?;
    let caller = authenticate::authenticate(state, accepted)?;
    rec.attribute(&caller);
    if caller.accepted.endpoint == Endpoint::Models {
        let openai_shape = !caller
            .accepted
            .headers
            .contains_key(&tollgate_wire::headers::ANTHROPIC_VERSION);
        return Ok(models::list(state, rec, openai_shape));
    }
    let classified = classify::classify(caller)?;
    rec.classify(&classified);
    let mut admitted = admit::admit(state, classified).await?;
    rec.admitted(&mut admitted);
    let routed = route::route(state, admitted)?;
    forward::forward(state, rec, routed).await
}
