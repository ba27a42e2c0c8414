//! The InvokeModel request envelope and paths, both ways: Messages → Bedrock for the upstream,
//! Bedrock → Messages for clients that speak Bedrock to the gateway.

use super::envelope::{
    EnvelopeError, TopLevel, as_opt_bool, as_opt_strings, as_string, json_string,
};
use bytes::Bytes;

/// The `anthropic_version` Bedrock requires in the body of Anthropic models.
pub const BEDROCK_ANTHROPIC_VERSION: &str = "bedrock-2023-05-31";

/// A Messages request moved into the InvokeModel envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BedrockRequest {
    /// The body to send: the Messages body without `model` and `stream`, with
    /// `anthropic_version` and (when there are betas) `anthropic_beta`.
    pub body: Bytes,
    /// The Messages `model`; the caller maps it to a Bedrock model id for the path.
    pub model: String,
    /// Whether to call `invoke-with-response-stream` rather than `invoke`.
    pub stream: bool,
}

/// Moves an Anthropic Messages body into the Bedrock InvokeModel envelope.
///
/// `model` (required, a string) and `stream` (optional boolean) leave the body and come back as
/// fields of the result. `anthropic_version` is added unless the body has one. `betas` (the
/// `anthropic-beta` header values) are merged into an `anthropic_beta` array: a body array keeps
/// its entries and order, new betas follow, duplicates are dropped. Every other member is kept
/// byte for byte and in order.
pub fn messages_to_bedrock_body(
    anthropic_body: &[u8],
    betas: &[String],
) -> Result<BedrockRequest, EnvelopeError> {
    let mut top = TopLevel::parse(anthropic_body)?;
    let model = match top.remove("model") {
        Some(raw) => as_string("model", &raw)?,
        None => return Err(EnvelopeError::new("model", "is required")),
    };
    let stream = as_opt_bool("stream", top.remove("stream").as_deref())?.unwrap_or(false);
    if top.get("anthropic_version").is_none() {
        top.set("anthropic_version", json_string(BEDROCK_ANTHROPIC_VERSION));
    }
    if !betas.is_empty() {
        let existing = as_opt_strings("anthropic_beta", top.get("anthropic_beta"))?;
        let had_existing = existing.is_some();
        let mut merged = existing.unwrap_or_default();
        let before = merged.len();
        for beta in betas {
            if !merged.contains(beta) {
                merged.push(beta.clone());
            }
        }
        // An array that already holds every beta stays exactly as the client wrote it.
        if !had_existing || merged.len() != before {
            top.set("anthropic_beta", strings_json(&merged));
        }
    }
    Ok(BedrockRequest {
        body: top.to_bytes(),
        model,
        stream,
    })
}

/// Moves a Bedrock InvokeModel body back into a Messages body (the Bedrock ingress).
///
/// `anthropic_version` and `anthropic_beta` leave the body; the betas come back for the
/// `anthropic-beta` header, in order and without duplicates. `model` is put first and `stream`
/// last (where Claude Code itself writes them), replacing any the body carried. Every other
/// member is kept byte for byte and in order.
pub fn bedrock_body_to_messages(
    bedrock_body: &[u8],
    model_id: &str,
    stream: bool,
) -> Result<(Bytes, Vec<String>), EnvelopeError> {
    let mut top = TopLevel::parse(bedrock_body)?;
    top.remove("anthropic_version");
    let mut betas = Vec::new();
    for beta in as_opt_strings("anthropic_beta", top.remove("anthropic_beta").as_deref())?
        .unwrap_or_default()
    {
        if !betas.contains(&beta) {
            betas.push(beta);
        }
    }
    top.remove("stream");
    top.set_first("model", json_string(model_id));
    top.set("stream", stream.to_string());
    Ok((top.to_bytes(), betas))
}

/// The InvokeModel path for `model_id`: `/model/{id}/invoke` or
/// `/model/{id}/invoke-with-response-stream`. The id is percent-encoded as one path segment
/// (`:` and the `/` of ARNs included), as the AWS SDKs send it.
pub fn bedrock_path(model_id: &str, stream: bool) -> String {
    let action = if stream {
        "invoke-with-response-stream"
    } else {
        "invoke"
    };
    format!("/model/{}/{action}", percent_encode(model_id))
}

/// A Bedrock ingress request line: which model and whether it streams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BedrockPath {
    /// The decoded model id (or ARN) as the client named it.
    pub model_id: String,
    pub stream: bool,
}

/// Parses `/model/{modelId}/invoke` or `/model/{modelId}/invoke-with-response-stream` (a query
/// string is ignored; any mount prefix must already be stripped). The model id is
/// percent-decoded: SDKs send `anthropic.claude-…-v1%3A0`.
pub fn parse_bedrock_path(path: &str) -> Result<BedrockPath, EnvelopeError> {
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    let bad = || {
        EnvelopeError::new(
            "path",
            "expected /model/{modelId}/invoke or /model/{modelId}/invoke-with-response-stream",
        )
    };
    let rest = path.strip_prefix("/model/").ok_or_else(bad)?;
    let (raw_id, action) = rest.rsplit_once('/').ok_or_else(bad)?;
    let stream = match action {
        "invoke" => false,
        "invoke-with-response-stream" => true,
        _ => return Err(bad()),
    };
    if raw_id.is_empty() || raw_id.contains('/') {
        return Err(bad());
    }
    let model_id = percent_decode(raw_id)
        .ok_or_else(|| EnvelopeError::new("path", "model id is not valid percent-encoded UTF-8"))?;
    Ok(BedrockPath { model_id, stream })
}

fn strings_json(items: &[String]) -> String {
    serde_json::Value::Array(
        items
            .iter()
            .map(|s| serde_json::Value::String(s.clone()))
            .collect(),
    )
    .to_string()
}

/// Percent-encodes everything but RFC 3986 unreserved characters (and `extra`).
pub(crate) fn percent_encode_keep(s: &str, extra: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') || extra.contains(&b)
        {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_encode(s: &str) -> String {
    percent_encode_keep(s, &[])
}

/// Decodes `%XX` escapes; `None` for a broken escape or a result that is not UTF-8.
pub(crate) fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn messages_body_moves_into_the_envelope() {
        let body = br#"{"model":"claude-x","messages":[{"role":"user","content":"hi"}],"max_tokens":5,"zz":{"n":1.50},"stream":true}"#;
        let r = messages_to_bedrock_body(body, &s(&["a-1", "b-2", "a-1"])).unwrap();
        assert_eq!(r.model, "claude-x");
        assert!(r.stream);
        assert_eq!(
            std::str::from_utf8(&r.body).unwrap(),
            r#"{"messages":[{"role":"user","content":"hi"}],"max_tokens":5,"zz":{"n":1.50},"anthropic_version":"bedrock-2023-05-31","anthropic_beta":["a-1","b-2"]}"#
        );
    }

    #[test]
    fn existing_version_and_betas_are_respected() {
        let body = br#"{"anthropic_beta":["b-2"],"model":"m","anthropic_version":"custom","x":1}"#;
        let r = messages_to_bedrock_body(body, &s(&["a-1", "b-2"])).unwrap();
        assert!(!r.stream);
        assert_eq!(
            std::str::from_utf8(&r.body).unwrap(),
            r#"{"anthropic_beta":["b-2","a-1"],"anthropic_version":"custom","x":1}"#
        );
        // Nothing new to add: the client's array is left as written.
        let body = br#"{"model":"m","anthropic_beta":[ "b-2" ]}"#;
        let r = messages_to_bedrock_body(body, &s(&["b-2"])).unwrap();
        assert_eq!(
            std::str::from_utf8(&r.body).unwrap(),
            r#"{"anthropic_beta":[ "b-2" ],"anthropic_version":"bedrock-2023-05-31"}"#
        );
        // No betas: no anthropic_beta member is invented.
        let r = messages_to_bedrock_body(br#"{"model":"m"}"#, &[]).unwrap();
        assert_eq!(
            &r.body[..],
            br#"{"anthropic_version":"bedrock-2023-05-31"}"#
        );
    }

    #[test]
    fn bad_messages_bodies_name_the_field() {
        let field =
            |b: &[u8], betas: &[String]| messages_to_bedrock_body(b, betas).unwrap_err().field;
        assert_eq!(field(br#"{"messages":[]}"#, &[]), "model");
        assert_eq!(field(br#"{"model":1}"#, &[]), "model");
        assert_eq!(field(br#"{"model":"m","stream":"yes"}"#, &[]), "stream");
        assert_eq!(
            field(br#"{"model":"m","anthropic_beta":"x"}"#, &s(&["a"])),
            "anthropic_beta"
        );
        assert_eq!(field(b"[]", &[]), "body");
        assert_eq!(field(b"{", &[]), "body");
    }

    #[test]
    fn bedrock_body_moves_back_to_messages() {
        let body = br#"{"anthropic_version":"bedrock-2023-05-31","max_tokens":9,"anthropic_beta":["x","y","x"],"messages":[],"metadata":{"user_id":"u"}}"#;
        let (out, betas) = bedrock_body_to_messages(body, "claude-sonnet", true).unwrap();
        assert_eq!(betas, s(&["x", "y"]));
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"model":"claude-sonnet","max_tokens":9,"messages":[],"metadata":{"user_id":"u"},"stream":true}"#
        );
        let (out, betas) =
            bedrock_body_to_messages(br#"{"model":"old","stream":true}"#, "m", false).unwrap();
        assert!(betas.is_empty());
        assert_eq!(&out[..], br#"{"model":"m","stream":false}"#);
        assert_eq!(
            bedrock_body_to_messages(br#"{"anthropic_beta":[1]}"#, "m", false)
                .unwrap_err()
                .field,
            "anthropic_beta"
        );
    }

    #[test]
    fn round_trip_is_identity_on_other_members() {
        let original = br#"{"model":"m","system":[{"type":"text","text":"s","cache_control":{"type":"ephemeral"}}],"messages":[{"role":"user","content":"\u2603"}],"thinking":{"type":"adaptive"},"stream":true}"#;
        let r = messages_to_bedrock_body(original, &s(&["b"])).unwrap();
        let (back, betas) = bedrock_body_to_messages(&r.body, &r.model, r.stream).unwrap();
        assert_eq!(betas, s(&["b"]));
        assert_eq!(&back[..], &original[..]);
    }

    #[test]
    fn paths_encode_and_parse_model_ids() {
        assert_eq!(
            bedrock_path("anthropic.claude-3-5-sonnet-20241022-v2:0", true),
            "/model/anthropic.claude-3-5-sonnet-20241022-v2%3A0/invoke-with-response-stream"
        );
        let arn = "arn:aws:bedrock:us-east-1:123:inference-profile/us.anthropic.claude-x-v1:0";
        let p = bedrock_path(arn, false);
        assert!(
            p.ends_with("/invoke") && !p[7..p.len() - 7].contains('/'),
            "{p}"
        );
        assert_eq!(
            parse_bedrock_path(&p).unwrap(),
            BedrockPath {
                model_id: arn.into(),
                stream: false
            }
        );
        assert_eq!(
            parse_bedrock_path("/model/us.anthropic.claude-x-v1:0/invoke-with-response-stream?x=1")
                .unwrap(),
            BedrockPath {
                model_id: "us.anthropic.claude-x-v1:0".into(),
                stream: true
            }
        );
        for bad in [
            "/model//invoke",
            "/model/a/b/invoke",
            "/model/a/converse",
            "/models/a/invoke",
            "/model/a%zz/invoke",
            "/model/a%ff/invoke",
            "/model/a%4",
        ] {
            assert_eq!(parse_bedrock_path(bad).unwrap_err().field, "path", "{bad}");
        }
    }
}
