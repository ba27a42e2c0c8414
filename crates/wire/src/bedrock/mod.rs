//! Bedrock InvokeModel envelopes and the AWS event-stream framing, for Anthropic models.
//!
//! # Format
//! - Request: `POST /model/{modelId}/invoke` or `/invoke-with-response-stream`; the body is the
//!   Messages body without `model` and `stream`, plus `"anthropic_version": "bedrock-2023-05-31"`
//!   and the betas as an `anthropic_beta` array (`body.rs`).
//! - Non-streaming response: the Anthropic Message JSON; errors as `{"message":…}` with
//!   `x-amzn-ErrorType` (`errors.rs`).
//! - Streaming response: `application/vnd.amazon.eventstream` frames whose `chunk` events carry
//!   base64 Anthropic stream events, and exception frames (`eventstream.rs`); the last chunk adds
//!   `amazon-bedrock-invocationMetrics` (`stream.rs`).
//!
//! # Layout
//! - `envelope`: top-level JSON member editing shared with Vertex, and [`EnvelopeError`].
//! - `body`: request bodies and paths, both directions.
//! - `eventstream`: frame decoder and encoders.
//! - `stream`: chunks ↔ Anthropic SSE, invocation metrics, the stream watch.
//! - `errors`: exception ↔ status ↔ Anthropic error type; its module comment holds the mapping
//!   tables, [`EXCEPTIONS`] the rows.

mod body;
mod envelope;
mod errors;
mod eventstream;
mod stream;

pub(crate) use body::{percent_decode, percent_encode_keep};
pub(crate) use envelope::{TopLevel, as_opt_bool, as_string, json_string};

pub use body::{
    BEDROCK_ANTHROPIC_VERSION, BedrockPath, BedrockRequest, bedrock_body_to_messages, bedrock_path,
    messages_to_bedrock_body, parse_bedrock_path,
};
pub use envelope::EnvelopeError;
pub use errors::{
    BedrockError, BedrockErrorResponse, BedrockException, EXCEPTIONS, X_AMZN_ERROR_TYPE,
    anthropic_error_to_bedrock, anthropic_error_type, anthropic_status, error_response, exception,
    exception_for_anthropic, exception_for_status, exception_status, normalize_error_code,
    read_error_response, stream_exception_name,
};
pub use eventstream::{
    BedrockEvent, EventStreamDecoder, EventStreamError, MAX_HEADERS_BYTES, MAX_PAYLOAD_BYTES,
    encode_chunk_frame, encode_exception_frame,
};
pub use stream::{
    BedrockStreamWatch, ErrorFraming, INVOCATION_METRICS_KEY, InvocationMetrics, SseToEventStream,
    chunk_event_name, chunk_to_sse, exception_to_sse, read_invocation_metrics,
    strip_invocation_metrics,
};
