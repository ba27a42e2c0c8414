//! Editing the top level of a JSON request body without disturbing anything else.
//!
//! Provider envelopes differ from the Messages body only in a few top-level fields (`model`,
//! `stream`, `anthropic_version`, `anthropic_beta`). The body is split into its top-level members,
//! each value kept as the exact text the client sent; only the members being added, replaced or
//! removed are touched. Member order, number spelling (`1.0e3` stays `1.0e3`), string escapes and
//! whitespace inside values all survive, with no need for serde_json's `preserve_order` feature.

use bytes::Bytes;
use serde::de::{self, DeserializeSeed, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

/// Why a request body cannot be moved into (or out of) a provider envelope: the field at fault
/// (`body` for the document as a whole) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeError {
    pub field: &'static str,
    pub message: String,
}

impl EnvelopeError {
    pub(crate) fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

impl fmt::Display for EnvelopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for EnvelopeError {}

/// The top-level members of a JSON object, in document order, values as raw JSON text.
#[derive(Debug)]
pub(crate) struct TopLevel<'a> {
    members: Vec<(Cow<'a, str>, Cow<'a, str>)>,
}

impl<'a> TopLevel<'a> {
    /// Splits `body`, which must be a UTF-8 JSON object.
    pub(crate) fn parse(body: &'a [u8]) -> Result<Self, EnvelopeError> {
        // serde_json skips over borrowed raw values without checking their UTF-8, and a body
        // that is not UTF-8 would be rejected by every upstream anyway.
        let text = std::str::from_utf8(body).map_err(|e| {
            EnvelopeError::new("body", format!("invalid UTF-8 at byte {}", e.valid_up_to()))
        })?;
        if text.trim_start().as_bytes().first() != Some(&b'{') {
            return Err(EnvelopeError::new("body", "must be a JSON object"));
        }
        let mut de = serde_json::Deserializer::from_str(text);
        let members = MembersSeed
            .deserialize(&mut de)
            .and_then(|m| de.end().map(|()| m))
            .map_err(|e| EnvelopeError::new("body", format!("not valid JSON: {e}")))?;
        Ok(Self { members })
    }

    /// The raw value of `key`. With duplicate keys the last one counts, as in serde_json.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.members
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_ref())
    }

    /// Removes every member named `key`, returning the value that counted (the last).
    pub(crate) fn remove(&mut self, key: &str) -> Option<Cow<'a, str>> {
        let mut taken = None;
        self.members.retain_mut(|(k, v)| {
            if k == key {
                taken = Some(std::mem::take(v));
                false
            } else {
                true
            }
        });
        taken
    }

    /// Sets `key` to the raw JSON `value`: in place of the member that counted when present
    /// (earlier duplicates are dropped), otherwise appended.
    pub(crate) fn set(&mut self, key: &'static str, value: String) {
        match self.members.iter().rposition(|(k, _)| k == key) {
            Some(i) => {
                self.members[i].1 = Cow::Owned(value);
                let mut idx = 0;
                self.members.retain(|(k, _)| {
                    let keep = idx >= i || k != key;
                    idx += 1;
                    keep
                });
            }
            None => self.members.push((Cow::Borrowed(key), Cow::Owned(value))),
        }
    }

    /// Puts `key` first, replacing any existing member of that name.
    pub(crate) fn set_first(&mut self, key: &'static str, value: String) {
        self.remove(key);
        self.members
            .insert(0, (Cow::Borrowed(key), Cow::Owned(value)));
    }

    /// Writes the object back: untouched values byte for byte, compact separators between them.
    pub(crate) fn to_bytes(&self) -> Bytes {
        let len: usize = self
            .members
            .iter()
            .map(|(k, v)| k.len() + v.len() + 4)
            .sum();
        let mut out = String::with_capacity(len + 2);
        out.push('{');
        for (i, (k, v)) in self.members.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&json_string(k));
            out.push(':');
            out.push_str(v);
        }
        out.push('}');
        Bytes::from(out)
    }
}

/// `s` as a JSON string literal.
pub(crate) fn json_string(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// Reads a raw value as a string, naming `field` in the error.
pub(crate) fn as_string(field: &'static str, raw: &str) -> Result<String, EnvelopeError> {
    match serde_json::from_str::<serde_json::Value>(raw) {
        Ok(serde_json::Value::String(s)) => Ok(s),
        _ => Err(EnvelopeError::new(field, "must be a string")),
    }
}

/// Reads an optional raw value as a boolean; `null` counts as absent.
pub(crate) fn as_opt_bool(
    field: &'static str,
    raw: Option<&str>,
) -> Result<Option<bool>, EnvelopeError> {
    match raw.map(serde_json::from_str::<serde_json::Value>) {
        None | Some(Ok(serde_json::Value::Null)) => Ok(None),
        Some(Ok(serde_json::Value::Bool(b))) => Ok(Some(b)),
        Some(_) => Err(EnvelopeError::new(field, "must be a boolean")),
    }
}

/// Reads an optional raw value as an array of strings; `null` counts as absent.
pub(crate) fn as_opt_strings(
    field: &'static str,
    raw: Option<&str>,
) -> Result<Option<Vec<String>>, EnvelopeError> {
    match raw.map(serde_json::from_str::<serde_json::Value>) {
        None | Some(Ok(serde_json::Value::Null)) => Ok(None),
        Some(Ok(serde_json::Value::Array(items))) => items
            .into_iter()
            .map(|v| match v {
                serde_json::Value::String(s) => Ok(s),
                _ => Err(EnvelopeError::new(field, "must be an array of strings")),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(EnvelopeError::new(field, "must be an array of strings")),
    }
}

struct MembersSeed;

impl<'de> DeserializeSeed<'de> for MembersSeed {
    type Value = Vec<(Cow<'de, str>, Cow<'de, str>)>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(MembersVisitor)
    }
}

struct MembersVisitor;

impl<'de> Visitor<'de> for MembersVisitor {
    type Value = Vec<(Cow<'de, str>, Cow<'de, str>)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members = Vec::new();
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            let value: &'de RawValue = map.next_value()?;
            members.push((key, Cow::Borrowed(value.get())));
        }
        Ok(members)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untouched_members_keep_their_text_and_order() {
        let body = br#" { "z" : 1.0e3, "a":{"k" : [1, 2]}, "v":"\u00e9\n", "m":"x" } "#;
        let mut t = TopLevel::parse(body).unwrap();
        t.remove("m");
        assert_eq!(
            &t.to_bytes()[..],
            br#"{"z":1.0e3,"a":{"k" : [1, 2]},"v":"\u00e9\n"}"#
        );
        // Keys are re-encoded from their decoded text: an escaped key is still the same key.
        let t = TopLevel::parse(br#"{"k\u00e9":1}"#).unwrap();
        assert_eq!(t.get("k\u{e9}"), Some("1"));
        assert_eq!(t.to_bytes(), "{\"k\u{e9}\":1}");
    }

    #[test]
    fn set_replaces_in_place_and_drops_duplicates() {
        let mut t = TopLevel::parse(br#"{"s":1,"a":2,"s":3,"b":4}"#).unwrap();
        assert_eq!(t.get("s"), Some("3"));
        t.set("s", "true".into());
        assert_eq!(&t.to_bytes()[..], br#"{"a":2,"s":true,"b":4}"#);
        t.set("n", "null".into());
        t.set_first("m", "\"x\"".into());
        assert_eq!(
            &t.to_bytes()[..],
            br#"{"m":"x","a":2,"s":true,"b":4,"n":null}"#
        );
        assert_eq!(t.remove("zz"), None);
    }

    #[test]
    fn deep_nesting_is_skipped_without_recursion() {
        let depth = 200_000;
        let body = format!(
            "{{\"a\":{}{},\"model\":{}1{}}}",
            "[".repeat(depth),
            "]".repeat(depth),
            "[".repeat(depth),
            "]".repeat(depth)
        );
        let mut t = TopLevel::parse(body.as_bytes()).unwrap();
        let model = t.remove("model").unwrap();
        // Typed reads go through serde_json's recursion limit: an error, not a stack overflow.
        assert!(as_string("model", &model).is_err());
        assert!(as_opt_strings("b", Some(&model)).is_err());
        assert_eq!(
            t.to_bytes().len(),
            body.len() - model.len() - "model".len() - 4
        );
    }

    #[test]
    fn rejects_what_is_not_an_object() {
        for bad in [&b"[1]"[..], b"", b"{\"a\":", b"{} x", b"\xff{}", b"\"s\""] {
            let e = TopLevel::parse(bad).unwrap_err();
            assert_eq!(e.field, "body", "{bad:?}");
        }
        assert_eq!(
            EnvelopeError::new("model", "must be a string").to_string(),
            "model: must be a string"
        );
    }

    #[test]
    fn typed_readers_name_the_field() {
        assert_eq!(as_string("model", "\"m\"").unwrap(), "m");
        assert_eq!(as_string("model", "3").unwrap_err().field, "model");
        assert_eq!(as_opt_bool("stream", Some("null")).unwrap(), None);
        assert_eq!(as_opt_bool("stream", Some("true")).unwrap(), Some(true));
        assert!(as_opt_bool("stream", Some("\"yes\"")).is_err());
        assert_eq!(
            as_opt_strings("b", Some(r#"["x","y"]"#)).unwrap(),
            Some(vec!["x".to_string(), "y".to_string()])
        );
        assert!(as_opt_strings("b", Some(r#"["x",1]"#)).is_err());
        assert!(as_opt_strings("b", Some(r#""x""#)).is_err());
    }
}
