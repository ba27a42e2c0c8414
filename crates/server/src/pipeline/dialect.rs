//! The client's dialect: how its requests arrive and how every answer — upstream or
//! gateway-made, whole or streamed — must be shaped for it.
//!
//! The pipeline works on Anthropic Messages inside; a client speaking OpenAI Chat Completions,
//! Bedrock InvokeModel or Vertex rawPredict is converted at the edges here.

use super::stream_relay::StreamTransform;
use crate::error::GatewayError;
use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use tollgate_wire::bedrock::{SseToEventStream, anthropic_error_to_bedrock};
use tollgate_wire::headers::{X_SHOULD_RETRY, X_TOLLGATE_REQUEST_ID};
use tollgate_wire::openai::{MessagesToChatStream, messages_to_chat_response, openai_error_body};

/// Mount point of the Bedrock ingress (`ANTHROPIC_BEDROCK_BASE_URL=http://host:8780/bedrock`).
pub const BEDROCK_MOUNT: &str = "/bedrock";
/// Mount point of the Vertex ingress (`ANTHROPIC_VERTEX_BASE_URL=http://host:8780/vertex`).
pub const VERTEX_MOUNT: &str = "/vertex";

/// The API dialect a client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientDialect {
    Anthropic,
    OpenAi,
    Bedrock,
    Vertex,
}

impl ClientDialect {
    /// The dialect implied by a request path, known before anything else is read so that even
    /// the earliest error is shaped for the client.
    pub fn of_path(path: &str) -> Self {
        if path.starts_with("/bedrock/") {
            ClientDialect::Bedrock
        } else if path.starts_with("/vertex/") {
            ClientDialect::Vertex
        } else if path.ends_with("/v1/chat/completions") {
            ClientDialect::OpenAi
        } else {
            ClientDialect::Anthropic
        }
    }
}

/// Everything needed to shape answers for the client.
#[derive(Debug, Clone)]
pub struct ClientSide {
    pub dialect: ClientDialect,
    /// The model as the client named it (echoed in converted answers).
    pub model: String,
    /// OpenAI clients get a usage chunk only when they asked for one.
    pub include_usage: bool,
    /// OpenAI clients: the body as sent, which an OpenAI-dialect upstream gets unconverted.
    pub chat_body: Option<Bytes>,
    /// Why the body has no Anthropic form; only an OpenAI-dialect upstream can take it then.
    pub unconvertible: Option<String>,
}

/// Renders a gateway-made error in the client's dialect.
pub fn error_response<B: From<Bytes>>(
    dialect: ClientDialect,
    err: &GatewayError,
    request_id: &str,
) -> Response<B> {
    let mut resp: Response<B> = err.into_response(request_id);
    match dialect {
        ClientDialect::Anthropic | ClientDialect::Vertex => resp,
        ClientDialect::OpenAi => {
            *resp.body_mut() = B::from(openai_error_body(
                openai_type(err.kind.anthropic_type()),
                &err.message,
                None,
            ));
            resp
        }
        ClientDialect::Bedrock => {
            let b = anthropic_error_to_bedrock(err.kind.anthropic_type(), &err.message);
            let mut out = Response::new(B::from(b.body));
            *out.status_mut() = StatusCode::from_u16(b.status).unwrap_or(err.status);
            let h = out.headers_mut();
            h.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            h.insert("x-amzn-errortype", HeaderValue::from_static(b.error_type));
            if let Some(v) = resp.headers().get(&X_SHOULD_RETRY) {
                h.insert(&X_SHOULD_RETRY, v.clone());
            }
            if let Ok(v) = HeaderValue::from_str(request_id) {
                h.insert(&X_TOLLGATE_REQUEST_ID, v);
            }
            for (name, value) in &err.headers {
                h.insert(name.clone(), value.clone());
            }
            out
        }
    }
}

/// OpenAI's error `type` for an Anthropic one.
fn openai_type(anthropic_type: &str) -> &'static str {
    match anthropic_type {
        "authentication_error" => "authentication_error",
        "permission_error" => "permission_error",
        "not_found_error" => "not_found_error",
        "rate_limit_error" => "rate_limit_error",
        "invalid_request_error" | "request_too_large" => "invalid_request_error",
        _ => "server_error",
    }
}

/// An Anthropic-form answer (whole body) reshaped for the client: status, extra headers, body.
pub fn whole_response(
    client: &ClientSide,
    status: StatusCode,
    anthropic_body: Bytes,
) -> (StatusCode, Vec<(&'static str, HeaderValue)>, Bytes) {
    let json = HeaderValue::from_static("application/json");
    match client.dialect {
        ClientDialect::Anthropic | ClientDialect::Vertex => (status, vec![], anthropic_body),
        ClientDialect::OpenAi if status.is_success() => {
            match messages_to_chat_response(&anthropic_body, &client.model) {
                Ok(b) => (status, vec![("content-type", json)], b),
                Err(e) => (
                    StatusCode::BAD_GATEWAY,
                    vec![("content-type", json)],
                    openai_error_body("server_error", &e.to_string(), None),
                ),
            }
        }
        ClientDialect::OpenAi => {
            let (t, m) = anthropic_error_parts(&anthropic_body);
            (
                status,
                vec![("content-type", json)],
                openai_error_body(openai_type(&t), &m, None),
            )
        }
        ClientDialect::Bedrock if status.is_success() => (status, vec![], anthropic_body),
        ClientDialect::Bedrock => {
            let (t, m) = anthropic_error_parts(&anthropic_body);
            let b = anthropic_error_to_bedrock(&t, &m);
            (
                StatusCode::from_u16(b.status).unwrap_or(status),
                vec![
                    ("content-type", json),
                    ("x-amzn-errortype", HeaderValue::from_static(b.error_type)),
                ],
                b.body,
            )
        }
    }
}

fn anthropic_error_parts(body: &[u8]) -> (String, String) {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    (
        v["error"]["type"]
            .as_str()
            .unwrap_or("api_error")
            .to_string(),
        v["error"]["message"]
            .as_str()
            .unwrap_or("the provider failed")
            .to_string(),
    )
}

/// The stream encoder for the client, with the content type it announces.
pub fn stream_encoder(
    client: &ClientSide,
) -> (Option<Box<dyn StreamTransform>>, Option<HeaderValue>) {
    match client.dialect {
        ClientDialect::Anthropic | ClientDialect::Vertex => (None, None),
        ClientDialect::OpenAi => (
            Some(Box::new(ToChat(MessagesToChatStream::new(
                &client.model,
                client.include_usage,
            )))),
            Some(HeaderValue::from_static("text/event-stream")),
        ),
        ClientDialect::Bedrock => (
            Some(Box::new(ToEventStream(SseToEventStream::new()))),
            Some(HeaderValue::from_static(
                "application/vnd.amazon.eventstream",
            )),
        ),
    }
}

struct ToChat(MessagesToChatStream);

impl StreamTransform for ToChat {
    fn feed(&mut self, chunk: &[u8]) -> Result<Bytes, String> {
        Ok(self.0.feed(chunk))
    }

    fn finish(&mut self) -> Bytes {
        self.0.finish()
    }
}

struct ToEventStream(SseToEventStream);

impl StreamTransform for ToEventStream {
    fn feed(&mut self, chunk: &[u8]) -> Result<Bytes, String> {
        Ok(self.0.feed(chunk))
    }

    fn finish(&mut self) -> Bytes {
        Bytes::new()
    }
}
