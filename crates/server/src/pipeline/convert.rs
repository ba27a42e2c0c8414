//! Conversion between the client's dialect (Anthropic Messages) and an upstream that speaks
//! another: the Bedrock and Vertex envelopes, OpenAI Chat Completions.
//!
//! Conversion happens only when the dialects differ; the Anthropic-to-Anthropic path never
//! comes here. Requests become the upstream's body, answers come back as Anthropic JSON or SSE,
//! and upstream errors are re-typed so Anthropic clients retry what is retryable.

use super::stream_relay::StreamTransform;
use crate::error::GatewayError;
use bytes::Bytes;
use http::StatusCode;
use tollgate_providers::Upstream;
use tollgate_wire::anthropic::error_body;
use tollgate_wire::bedrock::{
    BedrockEvent, EventStreamDecoder, chunk_to_sse, exception_to_sse, messages_to_bedrock_body,
    read_error_response, read_invocation_metrics, strip_invocation_metrics,
};
use tollgate_wire::openai::{
    ChatToMessagesStream, ConvertOptions, chat_to_messages_response, messages_to_chat_request,
};
use tollgate_wire::vertex::{messages_to_vertex_body, vertex_body_to_messages};

/// The upstream body for a Messages call, or a 400 naming what cannot be converted.
pub fn request_body(
    upstream: &Upstream,
    anthropic_body: &[u8],
    model_id: &str,
    stream: bool,
    count_tokens: bool,
    betas: &[String],
) -> Result<Bytes, GatewayError> {
    let invalid = |e: &dyn std::fmt::Display| GatewayError::invalid(e.to_string());
    let not_offered = |what: &str| {
        GatewayError::not_found(format!(
            "count_tokens is not offered by {what} provider '{}'",
            upstream.name()
        ))
    };
    match upstream {
        Upstream::Anthropic(_) | Upstream::Simulator(_) => {
            with_model(anthropic_body, model_id, stream)
        }
        Upstream::Bedrock(_) if count_tokens => Err(not_offered("the Bedrock")),
        Upstream::Bedrock(_) => messages_to_bedrock_body(anthropic_body, betas)
            .map(|b| b.body)
            .map_err(|e| invalid(&e)),
        // Vertex counts tokens on a shared endpoint, so the model stays in that body.
        Upstream::Vertex(_) if count_tokens => with_model(anthropic_body, model_id, false),
        Upstream::Vertex(_) => messages_to_vertex_body(anthropic_body)
            .map(|v| v.body)
            .map_err(|e| invalid(&e)),
        Upstream::OpenAi(_) if count_tokens => Err(not_offered("the OpenAI-dialect")),
        Upstream::OpenAi(u) => messages_to_chat_request(
            anthropic_body,
            &ConvertOptions {
                target_model: model_id.to_string(),
                // Azure names the deployment, not the model, when the entry configures one.
                quirks: u.quirks(u.target().deployment().unwrap_or(model_id)),
            },
        )
        .map_err(|e| invalid(&e)),
    }
}

/// The Messages body with `model` set to the provider's id; every other member kept in place.
pub fn with_model(body: &[u8], model_id: &str, stream: bool) -> Result<Bytes, GatewayError> {
    vertex_body_to_messages(body, model_id, stream)
        .map_err(|e| GatewayError::invalid(e.to_string()))
}

/// A successful non-streaming answer as an Anthropic Message.
pub fn response_body(
    upstream: &Upstream,
    body: Bytes,
    client_model: &str,
) -> Result<Bytes, GatewayError> {
    match upstream {
        Upstream::OpenAi(_) => chat_to_messages_response(&body, client_model).map_err(|e| {
            GatewayError::bad_gateway(format!(
                "provider '{}' answered something that is not a chat completion: {e}",
                upstream.name()
            ))
        }),
        Upstream::Bedrock(_) => Ok(strip_invocation_metrics(&body).unwrap_or(body)),
        Upstream::Anthropic(_) | Upstream::Simulator(_) | Upstream::Vertex(_) => Ok(body),
    }
}

/// An upstream error answer as an Anthropic error: status and body.
pub fn error_response(
    upstream: &Upstream,
    status: StatusCode,
    headers: &http::HeaderMap,
    body: &[u8],
) -> (StatusCode, Bytes) {
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        // The provider refused the gateway's own credentials: passing a 401 on would tell the
        // client its gateway key is wrong (Claude Code asks the user to log in again).
        let detail = provider_message(upstream, headers, body);
        let msg = format!(
            "provider '{}' refused the gateway's credentials ({status}); the gateway administrator must fix its provider configuration: {detail}",
            upstream.name()
        );
        return (StatusCode::BAD_GATEWAY, error_body("api_error", &msg));
    }
    match upstream {
        Upstream::Bedrock(_) => {
            let kind = headers
                .get("x-amzn-errortype")
                .and_then(|v| v.to_str().ok());
            let err = read_error_response(status.as_u16(), kind, body);
            let e = tollgate_wire::bedrock::BedrockError {
                message: format!("provider '{}': {}", upstream.name(), err.message),
                ..err
            };
            let (s, b) = e.to_anthropic();
            (StatusCode::from_u16(s).unwrap_or(status), b)
        }
        // Vertex relays Anthropic's own error envelope; anything else is wrapped.
        Upstream::Anthropic(_) | Upstream::Simulator(_) | Upstream::Vertex(_)
            if serde_json::from_slice::<serde_json::Value>(body)
                .is_ok_and(|v| v["type"] == "error") =>
        {
            (status, Bytes::copy_from_slice(body))
        }
        _ => {
            let message = format!("provider '{}': {}", upstream.name(), error_text(body));
            (status, error_body(anthropic_type_for(status), &message))
        }
    }
}

/// The provider's own words about an error, shortened.
fn provider_message(upstream: &Upstream, headers: &http::HeaderMap, body: &[u8]) -> String {
    let text = match upstream {
        Upstream::Bedrock(_) => {
            let kind = headers
                .get("x-amzn-errortype")
                .and_then(|v| v.to_str().ok());
            let e = read_error_response(401, kind, body);
            format!("{}: {}", e.code, e.message)
        }
        _ => error_text(body),
    };
    // AWS appends the whole canonical request; the first lines say what went wrong.
    text.lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(300)
        .collect()
}

/// The message of an OpenAI- or Anthropic-style error body, else the start of the body as text.
fn error_text(body: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    v["error"]["message"]
        .as_str()
        .or_else(|| v["message"].as_str())
        .map(str::to_string)
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(1024)]).into_owned())
}

/// The Anthropic error type the Anthropic API uses for a status.
fn anthropic_type_for(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        _ => "api_error",
    }
}

/// The transform turning the upstream's stream into Anthropic SSE, when it needs one.
pub fn stream_decoder(
    upstream: &Upstream,
    client_model: &str,
    message_id: &str,
) -> Option<Box<dyn StreamTransform>> {
    match upstream {
        Upstream::Bedrock(_) => Some(Box::new(BedrockDecode::default())),
        Upstream::OpenAi(_) => Some(Box::new(OpenAiDecode(ChatToMessagesStream::new(
            client_model,
            message_id,
        )))),
        Upstream::Anthropic(_) | Upstream::Simulator(_) | Upstream::Vertex(_) => None,
    }
}

/// AWS event-stream frames → Anthropic SSE; the invocation metrics of the last chunk are kept
/// aside as the billed usage (Anthropic clients never see them).
#[derive(Default)]
struct BedrockDecode {
    decoder: EventStreamDecoder,
    billed: Option<tollgate_wire::Usage>,
}

impl StreamTransform for BedrockDecode {
    fn feed(&mut self, chunk: &[u8]) -> Result<Bytes, String> {
        let events = self.decoder.feed(chunk).map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        for ev in events {
            match ev {
                BedrockEvent::Chunk(json) => {
                    if let Some(m) = read_invocation_metrics(&json) {
                        self.billed = Some(m.usage());
                    }
                    let json = strip_invocation_metrics(&json).unwrap_or(json);
                    out.extend_from_slice(&chunk_to_sse(&json));
                }
                BedrockEvent::Exception { kind, message } => {
                    out.extend_from_slice(&exception_to_sse(&kind, &message));
                }
                BedrockEvent::Other { .. } => {}
            }
        }
        Ok(Bytes::from(out))
    }

    fn finish(&mut self) -> Bytes {
        Bytes::new()
    }

    fn billed_usage(&self) -> Option<tollgate_wire::Usage> {
        self.billed
    }
}

/// OpenAI chat-completion chunks → Anthropic SSE.
struct OpenAiDecode(ChatToMessagesStream);

impl StreamTransform for OpenAiDecode {
    fn feed(&mut self, chunk: &[u8]) -> Result<Bytes, String> {
        Ok(self.0.feed(chunk))
    }

    fn finish(&mut self) -> Bytes {
        self.0.finish()
    }
}
