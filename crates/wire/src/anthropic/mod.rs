//! The Anthropic Messages dialect: what the gateway reads from requests and responses, and the
//! error envelope it writes.
//!
//! # Format
//! Requests and responses are JSON; streams are SSE whose `data:` payloads are JSON objects with a
//! `type` equal to the event name. Only the fields the gateway acts on are parsed; bodies are
//! never re-serialised on a same-dialect path.

mod edit;
mod error;
mod request;
mod response;
mod tool_calls;

pub use edit::edit_request;
pub use error::{error_body, error_event};
pub use request::{MAX_MODEL_BYTES, MAX_NESTING, RequestError, RequestFacts, read_request};
pub use response::{ResponseFacts, StreamWatch, read_response};
pub use tool_calls::most_repeated_tool_call;
