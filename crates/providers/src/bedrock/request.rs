//! URL and headers of a Bedrock InvokeModel call.

use crate::call::{BaseUrl, Operation, ProviderError, UpstreamCall, encode_segment};
use crate::client::UpstreamBody;
use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, Request, Uri};
use http_body_util::Full;

/// `Accept` of a streaming invocation: AWS event-stream framing.
pub const EVENT_STREAM: &str = "application/vnd.amazon.eventstream";

/// The path of an invocation: the model id as one encoded segment, then the action.
pub fn path(model: &str, stream: bool) -> String {
    let action = if stream {
        "invoke-with-response-stream"
    } else {
        "invoke"
    };
    format!("/model/{}/{action}", encode_segment(model, &[]))
}

/// URI and the headers to sign and send (before authentication).
pub fn target(
    name: &str,
    base: &BaseUrl,
    call: &UpstreamCall<'_>,
) -> Result<(Uri, HeaderMap), ProviderError> {
    if call.operation == Operation::CountTokens {
        return Err(ProviderError::fatal(
            "count_tokens is not available on Bedrock",
        ));
    }
    if call.model.is_empty() {
        return Err(ProviderError::fatal(format!(
            "bedrock '{name}': the request names no model"
        )));
    }
    let uri: Uri = format!(
        "{}{}{}",
        base.origin,
        base.path,
        path(call.model, call.stream)
    )
    .parse()
    .map_err(|e| ProviderError::fatal(format!("bedrock '{name}': invalid URL: {e}")))?;
    let mut headers = HeaderMap::with_capacity(6);
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(
        ACCEPT,
        HeaderValue::from_static(if call.stream {
            EVENT_STREAM
        } else {
            "application/json"
        }),
    );
    Ok((uri, headers))
}

/// The request as sent: the signed headers exactly, the body unchanged.
pub fn assemble(
    name: &str,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Request<UpstreamBody>, ProviderError> {
    let mut req = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .body(Full::new(body))
        .map_err(|e| ProviderError::fatal(format!("bedrock '{name}': {e}")))?;
    *req.headers_mut() = headers;
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_ids_and_arns_are_one_segment() {
        assert_eq!(
            path("us.anthropic.claude-sonnet-4-5-20250929-v1:0", false),
            "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke"
        );
        assert_eq!(
            path(
                "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc",
                true
            ),
            "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Aapplication-inference-profile%2Fabc/invoke-with-response-stream"
        );
    }
}
