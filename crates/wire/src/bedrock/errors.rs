//! Bedrock errors: exception names, HTTP statuses and Anthropic error types, both ways.
//!
//! # Format
//! A failed InvokeModel call answers with the exception's HTTP status, a header
//! `x-amzn-ErrorType: ThrottlingException` (AWS may append `:<namespace URL>`; botocore keeps what
//! is before the `:` and after a `#`) and a body `{"message":"…"}` (sometimes `Message`, or a
//! `__type`/`code` member instead of the header). Mid-stream, the same exceptions arrive as
//! event-stream frames whose `:exception-type` is the camel-case member name of the
//! `ResponseStream` union (`throttlingException`), see `eventstream.rs`.
//!
//! # Mapping
//!
//! | Bedrock exception | HTTP | Anthropic error type | Anthropic status | in a stream |
//! |---|---|---|---|---|
//! | ValidationException | 400 | invalid_request_error | 400 | validationException |
//! | UnrecognizedClientException, ExpiredTokenException, InvalidSignatureException | 403 | authentication_error | 401 | validationException |
//! | AccessDeniedException | 403 | permission_error | 403 | validationException |
//! | ResourceNotFoundException | 404 | not_found_error | 404 | validationException |
//! | ModelTimeoutException | 408 | timeout_error | 504 | modelTimeoutException |
//! | ThrottlingException | 429 | rate_limit_error | 429 | throttlingException |
//! | ServiceQuotaExceededException | 400 | rate_limit_error | 429 | throttlingException |
//! | ModelNotReadyException | 429 | overloaded_error | 529 | throttlingException |
//! | ModelErrorException | 424 | api_error | 500 | modelStreamErrorException |
//! | ModelStreamErrorException | 424 | api_error | 500 | modelStreamErrorException |
//! | InternalServerException (and anything unknown) | 500 | api_error | 500 | internalServerException |
//! | ServiceUnavailableException | 503 | overloaded_error | 529 | serviceUnavailableException |
//!
//! Quotas count as rate limits because that is what they are in Anthropic's terms (the client
//! waits and retries). A model that is not ready yet is transient capacity, hence overloaded.
//!
//! The other way (an Anthropic error shown to a Bedrock client):
//!
//! | Anthropic error type | Bedrock exception | HTTP |
//! |---|---|---|
//! | invalid_request_error, request_too_large | ValidationException | 400 |
//! | authentication_error | UnrecognizedClientException | 403 |
//! | permission_error, billing_error | AccessDeniedException | 403 |
//! | not_found_error | ResourceNotFoundException | 404 |
//! | timeout_error | ModelTimeoutException | 408 |
//! | rate_limit_error | ThrottlingException | 429 |
//! | overloaded_error | ServiceUnavailableException | 503 |
//! | api_error and anything unknown | InternalServerException | 500 |

use crate::anthropic::error_body;
use bytes::Bytes;
use serde::Deserialize;

/// The response header naming a Bedrock error.
pub const X_AMZN_ERROR_TYPE: &str = "x-amzn-errortype";

/// One known Bedrock exception and its Anthropic counterpart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BedrockException {
    /// The exception's name as the HTTP API spells it (`ThrottlingException`).
    pub name: &'static str,
    /// The HTTP status Bedrock answers it with.
    pub status: u16,
    /// The Anthropic `error.type` with the same meaning.
    pub anthropic_type: &'static str,
    /// The status the Anthropic API uses for that type.
    pub anthropic_status: u16,
    /// The `ResponseStream` union member used for it mid-stream.
    pub stream_name: &'static str,
}

const fn row(
    name: &'static str,
    status: u16,
    anthropic_type: &'static str,
    anthropic_status: u16,
    stream_name: &'static str,
) -> BedrockException {
    BedrockException {
        name,
        status,
        anthropic_type,
        anthropic_status,
        stream_name,
    }
}

const VALIDATION: BedrockException = row(
    "ValidationException",
    400,
    "invalid_request_error",
    400,
    "validationException",
);
const UNRECOGNIZED_CLIENT: BedrockException = row(
    "UnrecognizedClientException",
    403,
    "authentication_error",
    401,
    "validationException",
);
const ACCESS_DENIED: BedrockException = row(
    "AccessDeniedException",
    403,
    "permission_error",
    403,
    "validationException",
);
const NOT_FOUND: BedrockException = row(
    "ResourceNotFoundException",
    404,
    "not_found_error",
    404,
    "validationException",
);
const MODEL_TIMEOUT: BedrockException = row(
    "ModelTimeoutException",
    408,
    "timeout_error",
    504,
    "modelTimeoutException",
);
const THROTTLING: BedrockException = row(
    "ThrottlingException",
    429,
    "rate_limit_error",
    429,
    "throttlingException",
);
const INTERNAL: BedrockException = row(
    "InternalServerException",
    500,
    "api_error",
    500,
    "internalServerException",
);
const UNAVAILABLE: BedrockException = row(
    "ServiceUnavailableException",
    503,
    "overloaded_error",
    529,
    "serviceUnavailableException",
);

/// Every exception Bedrock Runtime documents for InvokeModel and its stream, plus the AWS-wide
/// authentication failures.
pub const EXCEPTIONS: &[BedrockException] = &[
    VALIDATION,
    UNRECOGNIZED_CLIENT,
    row(
        "ExpiredTokenException",
        403,
        "authentication_error",
        401,
        "validationException",
    ),
    row(
        "InvalidSignatureException",
        403,
        "authentication_error",
        401,
        "validationException",
    ),
    ACCESS_DENIED,
    NOT_FOUND,
    MODEL_TIMEOUT,
    THROTTLING,
    row(
        "ServiceQuotaExceededException",
        400,
        "rate_limit_error",
        429,
        "throttlingException",
    ),
    row(
        "ModelNotReadyException",
        429,
        "overloaded_error",
        529,
        "throttlingException",
    ),
    row(
        "ModelErrorException",
        424,
        "api_error",
        500,
        "modelStreamErrorException",
    ),
    row(
        "ModelStreamErrorException",
        424,
        "api_error",
        500,
        "modelStreamErrorException",
    ),
    INTERNAL,
    UNAVAILABLE,
];

/// Reduces an error code as AWS writes it (`ThrottlingException:http://…`,
/// `com.amazon…#ThrottlingException`, `throttlingException`) to its bare name.
pub fn normalize_error_code(code: &str) -> &str {
    let code = code.split_once(':').map_or(code, |(name, _)| name);
    code.rsplit_once('#').map_or(code, |(_, name)| name).trim()
}

/// Looks an exception up by any spelling AWS uses: HTTP name, stream member name (camel case)
/// or a decorated error code.
pub fn exception(code: &str) -> Option<&'static BedrockException> {
    let name = normalize_error_code(code);
    EXCEPTIONS
        .iter()
        .find(|e| e.name.eq_ignore_ascii_case(name))
}

/// The exception for `code`, with unknown codes treated as internal errors.
fn exception_or_internal(code: &str) -> &'static BedrockException {
    exception(code).unwrap_or(&INTERNAL)
}

/// The HTTP status Bedrock uses for `code` (500 when unknown).
pub fn exception_status(code: &str) -> u16 {
    exception_or_internal(code).status
}

/// The Anthropic `error.type` for a Bedrock exception (`api_error` when unknown).
pub fn anthropic_error_type(code: &str) -> &'static str {
    exception_or_internal(code).anthropic_type
}

/// The Anthropic status for a Bedrock exception (500 when unknown).
pub fn anthropic_status(code: &str) -> u16 {
    exception_or_internal(code).anthropic_status
}

/// The `ResponseStream` member to send mid-stream for any exception code: SDKs only recognise
/// union members, so others are mapped to the nearest one (`internalServerException` when unknown).
pub fn stream_exception_name(code: &str) -> &'static str {
    exception_or_internal(code).stream_name
}

/// The Bedrock exception that says what an Anthropic `error.type` says.
pub fn exception_for_anthropic(anthropic_type: &str) -> &'static BedrockException {
    match anthropic_type {
        "invalid_request_error" | "request_too_large" => &VALIDATION,
        "authentication_error" => &UNRECOGNIZED_CLIENT,
        "permission_error" | "billing_error" => &ACCESS_DENIED,
        "not_found_error" => &NOT_FOUND,
        "timeout_error" => &MODEL_TIMEOUT,
        "rate_limit_error" => &THROTTLING,
        "overloaded_error" => &UNAVAILABLE,
        _ => &INTERNAL,
    }
}

/// The Bedrock exception for a bare HTTP status, when the upstream named none.
pub fn exception_for_status(status: u16) -> &'static BedrockException {
    match status {
        401 => &UNRECOGNIZED_CLIENT,
        403 => &ACCESS_DENIED,
        404 => &NOT_FOUND,
        408 | 504 => &MODEL_TIMEOUT,
        429 => &THROTTLING,
        503 | 529 => &UNAVAILABLE,
        400..=499 => &VALIDATION,
        _ => &INTERNAL,
    }
}

/// A Bedrock error as read from a non-streaming response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BedrockError {
    /// The bare exception name (`ThrottlingException`), or the status as text when none was given.
    pub code: String,
    pub message: String,
}

impl BedrockError {
    /// The Anthropic envelope for this error, with the status the Anthropic API would use.
    pub fn to_anthropic(&self) -> (u16, Bytes) {
        let e = exception_or_internal(&self.code);
        (
            e.anthropic_status,
            error_body(e.anthropic_type, &self.message),
        )
    }
}

#[derive(Deserialize, Default)]
struct WireError {
    message: Option<String>,
    #[serde(rename = "Message")]
    message_upper: Option<String>,
    #[serde(rename = "__type")]
    type_: Option<String>,
    code: Option<String>,
    #[serde(rename = "Code")]
    code_upper: Option<String>,
}

/// Longest message kept from a body that is not the usual JSON.
const MAX_RAW_MESSAGE: usize = 1024;

/// Reads a failed InvokeModel response the way botocore does: the code from `x-amzn-ErrorType`,
/// else from the body's `__type`/`code`, else the status; the message from `message`/`Message`,
/// else the start of the body as text.
pub fn read_error_response(
    status: u16,
    error_type_header: Option<&str>,
    body: &[u8],
) -> BedrockError {
    let wire: WireError = serde_json::from_slice(body).unwrap_or_default();
    let code = error_type_header
        .map(str::to_owned)
        .or(wire.type_)
        .or(wire.code)
        .or(wire.code_upper)
        .map(|c| normalize_error_code(&c).to_owned())
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| status.to_string());
    let message = wire.message.or(wire.message_upper).unwrap_or_else(|| {
        let text = String::from_utf8_lossy(body);
        let mut end = text.len().min(MAX_RAW_MESSAGE);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text[..end].trim().to_owned()
    });
    BedrockError { code, message }
}

/// A complete Bedrock error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BedrockErrorResponse {
    pub status: u16,
    /// Value of the `x-amzn-ErrorType` header.
    pub error_type: &'static str,
    /// `{"message":"…"}`.
    pub body: Bytes,
}

/// The Bedrock answer for `exception` with `message`.
pub fn error_response(exception: &BedrockException, message: &str) -> BedrockErrorResponse {
    BedrockErrorResponse {
        status: exception.status,
        error_type: exception.name,
        body: Bytes::from(format!(
            "{{\"message\":{}}}",
            super::envelope::json_string(message)
        )),
    }
}

/// The Bedrock answer for an Anthropic error type and message (gateway-made errors and Anthropic
/// upstream errors shown to Bedrock clients).
pub fn anthropic_error_to_bedrock(anthropic_type: &str, message: &str) -> BedrockErrorResponse {
    error_response(exception_for_anthropic(anthropic_type), message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_finds_the_exception() {
        for code in [
            "ThrottlingException",
            "throttlingException",
            "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/",
            "com.amazon.coral#ThrottlingException",
        ] {
            assert_eq!(
                exception(code).map(|e| e.name),
                Some("ThrottlingException"),
                "{code}"
            );
        }
        assert_eq!(exception("NoSuchThing"), None);
        assert_eq!(exception(""), None);
    }

    #[test]
    fn table_rows_agree_with_the_lookup_functions() {
        for e in EXCEPTIONS {
            assert_eq!(exception_status(e.name), e.status);
            assert_eq!(
                anthropic_error_type(e.stream_name),
                exception(e.stream_name).map_or("", |x| x.anthropic_type)
            );
            assert_eq!(anthropic_error_type(e.name), e.anthropic_type);
            assert_eq!(anthropic_status(e.name), e.anthropic_status);
            assert_eq!(stream_exception_name(e.name), e.stream_name);
            // Every stream name is a member of the ResponseStream union.
            assert!(
                [
                    "internalServerException",
                    "modelStreamErrorException",
                    "validationException",
                    "throttlingException",
                    "modelTimeoutException",
                    "serviceUnavailableException"
                ]
                .contains(&e.stream_name),
                "{}",
                e.name
            );
        }
        assert_eq!(exception_status("Whatever"), 500);
        assert_eq!(anthropic_error_type("Whatever"), "api_error");
        assert_eq!(stream_exception_name("Whatever"), "internalServerException");
    }

    #[test]
    fn specific_mappings() {
        assert_eq!(
            anthropic_error_type("ValidationException"),
            "invalid_request_error"
        );
        assert_eq!(
            anthropic_error_type("AccessDeniedException"),
            "permission_error"
        );
        assert_eq!(
            anthropic_error_type("modelTimeoutException"),
            "timeout_error"
        );
        assert_eq!(anthropic_status("ServiceUnavailableException"), 529);
        assert_eq!(exception_status("ModelStreamErrorException"), 424);
        assert_eq!(
            exception_for_anthropic("overloaded_error").name,
            "ServiceUnavailableException"
        );
        assert_eq!(
            exception_for_anthropic("rate_limit_error").stream_name,
            "throttlingException"
        );
        assert_eq!(exception_for_anthropic("authentication_error").status, 403);
        assert_eq!(
            exception_for_anthropic("something_new").name,
            "InternalServerException"
        );
        assert_eq!(exception_for_status(429).name, "ThrottlingException");
        assert_eq!(
            exception_for_status(529).name,
            "ServiceUnavailableException"
        );
        assert_eq!(exception_for_status(418).name, "ValidationException");
        assert_eq!(exception_for_status(502).name, "InternalServerException");
    }

    #[test]
    fn anthropic_round_trip_keeps_the_type() {
        for t in [
            "invalid_request_error",
            "authentication_error",
            "permission_error",
            "not_found_error",
            "timeout_error",
            "rate_limit_error",
            "overloaded_error",
            "api_error",
        ] {
            assert_eq!(exception_for_anthropic(t).anthropic_type, t);
        }
    }

    #[test]
    fn error_responses_are_read_like_botocore() {
        let e = read_error_response(
            429,
            Some("ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/"),
            br#"{"message":"Too many requests, please wait before trying again."}"#,
        );
        assert_eq!(e.code, "ThrottlingException");
        assert_eq!(
            e.message,
            "Too many requests, please wait before trying again."
        );
        let (status, body) = e.to_anthropic();
        assert_eq!(status, 429);
        assert_eq!(
            &body[..],
            br#"{"type":"error","error":{"type":"rate_limit_error","message":"Too many requests, please wait before trying again."}}"#
        );
        let e = read_error_response(
            400,
            None,
            br#"{"__type":"a#ValidationException","Message":"bad"}"#,
        );
        assert_eq!(
            (e.code.as_str(), e.message.as_str()),
            ("ValidationException", "bad")
        );
        let e = read_error_response(502, None, b"  <html>gateway</html> ");
        assert_eq!(
            (e.code.as_str(), e.message.as_str()),
            ("502", "<html>gateway</html>")
        );
        assert_eq!(e.to_anthropic().0, 500);
        let long = "é".repeat(2000);
        assert!(
            read_error_response(500, None, long.as_bytes())
                .message
                .len()
                <= 1024
        );
    }

    #[test]
    fn error_responses_are_written_like_bedrock() {
        let r = anthropic_error_to_bedrock("rate_limit_error", "slow \"down\"");
        assert_eq!(r.status, 429);
        assert_eq!(r.error_type, "ThrottlingException");
        assert_eq!(&r.body[..], br#"{"message":"slow \"down\""}"#);
    }
}
