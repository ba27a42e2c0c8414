//! The one error type of the request pipeline, rendered once at the edge in the client's
//! dialect.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use tollgate_wire::headers::{X_SHOULD_RETRY, X_TOLLGATE_REQUEST_ID};

/// What went wrong, in the vocabulary of the Anthropic API's error types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidRequest,
    Authentication,
    Permission,
    NotFound,
    RequestTooLarge,
    RateLimit,
    /// The gateway or its upstream failed.
    Api,
    /// The upstream did not answer in time.
    Timeout,
    /// The client went away before the response was complete.
    ClientClosed,
}

impl ErrorKind {
    /// The `error.type` string clients switch on.
    pub fn anthropic_type(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest => "invalid_request_error",
            ErrorKind::Authentication => "authentication_error",
            ErrorKind::Permission => "permission_error",
            ErrorKind::NotFound => "not_found_error",
            ErrorKind::RequestTooLarge => "request_too_large",
            ErrorKind::RateLimit => "rate_limit_error",
            ErrorKind::Api | ErrorKind::Timeout => "api_error",
            ErrorKind::ClientClosed => "client_closed_request",
        }
    }

    /// Whether a client should retry. Claude Code retries everything for minutes unless told
    /// otherwise, so the caller's own mistakes say no.
    pub fn should_retry(self) -> bool {
        matches!(
            self,
            ErrorKind::RateLimit | ErrorKind::Api | ErrorKind::Timeout
        )
    }
}

/// An error the gateway answers itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayError {
    pub status: StatusCode,
    pub kind: ErrorKind,
    pub message: String,
    /// Overrides the kind's `x-should-retry` (an exhausted budget is a 429 that must not be
    /// retried).
    pub retry: Option<bool>,
    /// Extra response headers (`retry-after`, `anthropic-ratelimit-*`).
    pub headers: Vec<(http::HeaderName, HeaderValue)>,
    /// The policy that refused the request, for the journal.
    pub policy: Option<String>,
}

impl GatewayError {
    /// An error with an explicit status.
    pub fn new(status: StatusCode, kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
            retry: None,
            headers: Vec::new(),
            policy: None,
        }
    }

    /// Whether the client should retry.
    pub fn should_retry(&self) -> bool {
        self.retry.unwrap_or_else(|| self.kind.should_retry())
    }

    /// 400 `invalid_request_error`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorKind::InvalidRequest, message)
    }

    /// 401 `authentication_error`.
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, ErrorKind::Authentication, message)
    }

    /// 404 `not_found_error`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorKind::NotFound, message)
    }

    /// 413 `request_too_large`.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::RequestTooLarge,
            message,
        )
    }

    /// 502 `api_error`: the upstream could not be reached or answered garbage.
    pub fn bad_gateway(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, ErrorKind::Api, message)
    }

    /// 504 `api_error`: the upstream stayed silent too long.
    pub fn gateway_timeout(message: impl Into<String>) -> Self {
        Self::new(StatusCode::GATEWAY_TIMEOUT, ErrorKind::Timeout, message)
    }

    /// The Anthropic-dialect response: error JSON, `x-should-retry`, the request id.
    pub fn into_response<B: From<Bytes>>(&self, request_id: &str) -> Response<B> {
        let body = tollgate_wire::anthropic::error_body(self.kind.anthropic_type(), &self.message);
        let mut resp = Response::new(B::from(body));
        *resp.status_mut() = self.status;
        let h = resp.headers_mut();
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        h.insert(
            &X_SHOULD_RETRY,
            HeaderValue::from_static(if self.should_retry() { "true" } else { "false" }),
        );
        if let Ok(v) = HeaderValue::from_str(request_id) {
            h.insert(&X_TOLLGATE_REQUEST_ID, v);
        }
        for (name, value) in &self.headers {
            h.insert(name.clone(), value.clone());
        }
        resp
    }
}
