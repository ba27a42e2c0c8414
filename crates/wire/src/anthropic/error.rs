//! The Anthropic error envelope, as a JSON body and as a stream event.

use bytes::Bytes;

/// `{"type":"error","error":{"type":…,"message":…}}` — what the Anthropic API and SDKs expect.
pub fn error_body(kind: &str, message: &str) -> Bytes {
    // Written by hand to keep the API's key order: `type` first, then `error`.
    let q = |s: &str| serde_json::Value::String(s.to_string()).to_string();
    Bytes::from(format!(
        "{{\"type\":\"error\",\"error\":{{\"type\":{},\"message\":{}}}}}",
        q(kind),
        q(message)
    ))
}

/// The same envelope as an `event: error` SSE frame, for failures after the stream began.
pub fn error_event(kind: &str, message: &str) -> Bytes {
    let body = error_body(kind, message);
    let mut out = Vec::with_capacity(body.len() + 24);
    out.extend_from_slice(b"event: error\ndata: ");
    out.extend_from_slice(&body);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}
