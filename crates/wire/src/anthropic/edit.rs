//! Policy edits of a Messages body: a different model, a lower `max_tokens`. Everything else
//! keeps its bytes and order.

use crate::bedrock::{EnvelopeError, TopLevel, json_string};
use bytes::Bytes;

/// The body with `model` and/or `max_tokens` replaced in place.
pub fn edit_request(
    body: &[u8],
    model: Option<&str>,
    max_tokens: Option<u32>,
) -> Result<Bytes, EnvelopeError> {
    let mut top = TopLevel::parse(body)?;
    if let Some(m) = model {
        top.set("model", json_string(m));
    }
    if let Some(n) = max_tokens {
        top.set("max_tokens", n.to_string());
    }
    Ok(top.to_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_named_members_change() {
        let body = br#"{"model":"claude-opus-5-5","max_tokens":64000,"messages":[{"role":"user","content":"hi \u00e9"}],"temperature":1.0e0}"#;
        let out = edit_request(body, Some("claude-haiku-5-5"), Some(8192)).expect("edits");
        assert_eq!(
            &out[..],
            br#"{"model":"claude-haiku-5-5","max_tokens":8192,"messages":[{"role":"user","content":"hi \u00e9"}],"temperature":1.0e0}"#
        );
    }
}
