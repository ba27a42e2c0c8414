//! Anthropic-style API errors.

use crate::message::js;

/// An error answered as `{"type":"error","error":{"type":KIND,"message":MESSAGE}}`.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub status: u16,
    pub kind: String,
    pub message: String,
    pub headers: Vec<(&'static str, &'static str)>,
}

impl ApiError {
    pub(crate) fn new(status: u16, kind: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            kind: kind.to_owned(),
            message: message.into(),
            headers: Vec::new(),
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(400, "invalid_request_error", message)
    }

    pub(crate) fn body(&self) -> String {
        format!(
            r#"{{"type":"error","error":{{"type":{},"message":{}}}}}"#,
            js(&self.kind),
            js(&self.message)
        )
    }
}
