//! Reading a JSON request while remembering where each value sits, so that every refusal names
//! the exact field (`messages[3].content[1].type`).

use super::error::ConvertError;
use serde_json::{Map, Value};

/// Parses a whole body, refusing anything that is not JSON.
pub(super) fn parse_body(body: &[u8]) -> Result<Value, ConvertError> {
    serde_json::from_slice(body)
        .map_err(|e| ConvertError::new("body", format!("not valid JSON: {e}")))
}

/// `path[i]`.
pub(super) fn at(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// The body itself has an empty path; errors about it name `body`.
fn shown(path: &str) -> &str {
    if path.is_empty() { "body" } else { path }
}

/// A JSON object and its path in the request.
pub(super) struct Node<'a> {
    obj: &'a Map<String, Value>,
    path: String,
}

impl<'a> Node<'a> {
    /// The request body, which must be an object.
    pub(super) fn root(v: &'a Value) -> Result<Self, ConvertError> {
        Self::new(v, "")
    }

    /// The object at `path`.
    pub(super) fn new(v: &'a Value, path: &str) -> Result<Self, ConvertError> {
        match v {
            Value::Object(obj) => Ok(Node {
                obj,
                path: path.to_string(),
            }),
            _ => Err(ConvertError::new(shown(path), "must be a JSON object")),
        }
    }

    /// The path of a member.
    pub(super) fn path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// Member names whose value is not `null`.
    pub(super) fn keys(&self) -> impl Iterator<Item = &'a str> {
        self.obj
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, _)| k.as_str())
    }

    /// A member; `null` counts as absent, as both APIs treat it.
    pub(super) fn get(&self, key: &str) -> Option<&'a Value> {
        self.obj.get(key).filter(|v| !v.is_null())
    }

    pub(super) fn req(&self, key: &str) -> Result<&'a Value, ConvertError> {
        self.get(key)
            .ok_or_else(|| ConvertError::new(self.path(key), "is required"))
    }

    pub(super) fn str(&self, key: &str) -> Result<Option<&'a str>, ConvertError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(ConvertError::new(self.path(key), "must be a string")),
        }
    }

    pub(super) fn req_str(&self, key: &str) -> Result<&'a str, ConvertError> {
        self.str(key)?
            .ok_or_else(|| ConvertError::new(self.path(key), "is required"))
    }

    pub(super) fn u64(&self, key: &str) -> Result<Option<u64>, ConvertError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| ConvertError::new(self.path(key), "must be a non-negative integer")),
        }
    }

    pub(super) fn bool(&self, key: &str) -> Result<Option<bool>, ConvertError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(ConvertError::new(self.path(key), "must be a boolean")),
        }
    }

    /// A number, kept as the JSON value so that `0.7` is written back as `0.7`.
    pub(super) fn number(&self, key: &str) -> Result<Option<&'a Value>, ConvertError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) if v.is_number() => Ok(Some(v)),
            Some(_) => Err(ConvertError::new(self.path(key), "must be a number")),
        }
    }

    pub(super) fn array(&self, key: &str) -> Result<Option<&'a [Value]>, ConvertError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a)),
            Some(_) => Err(ConvertError::new(self.path(key), "must be an array")),
        }
    }

    pub(super) fn req_array(&self, key: &str) -> Result<&'a [Value], ConvertError> {
        self.array(key)?
            .ok_or_else(|| ConvertError::new(self.path(key), "is required"))
    }

    /// A member that must be an object.
    pub(super) fn child(&self, key: &str) -> Result<Option<Node<'a>>, ConvertError> {
        self.get(key)
            .map(|v| Node::new(v, &self.path(key)))
            .transpose()
    }

    /// Refuses members outside `known`: whatever the conversion does not understand would be
    /// lost on the way, and a silently changed request is worse than a clear 400.
    pub(super) fn only(&self, known: &[&str]) -> Result<(), ConvertError> {
        match self.keys().find(|k| !known.contains(k)) {
            Some(k) => Err(ConvertError::new(
                self.path(k),
                "is not supported when converting between Messages and Chat Completions",
            )),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_name_the_field() {
        let v = json!({"a": {"b": [1, {"c": "x"}]}, "n": null, "k": 3});
        let root = Node::root(&v).unwrap();
        let a = root.child("a").unwrap().unwrap();
        let list = a.req_array("b").unwrap();
        let item = Node::new(&list[1], &at(&a.path("b"), 1)).unwrap();
        assert_eq!(item.path("c"), "a.b[1].c");
        assert_eq!(item.u64("c").unwrap_err().field, "a.b[1].c");
        assert_eq!(
            root.str("k").unwrap_err().to_string(),
            "k: must be a string"
        );
        assert!(root.get("n").is_none());
        assert!(
            root.only(&["a", "k"]).is_ok(),
            "null members count as absent"
        );
        assert_eq!(root.only(&["a"]).unwrap_err().field, "k");
        assert_eq!(Node::new(&list[0], "a.b[0]").err().unwrap().field, "a.b[0]");
        assert_eq!(parse_body(b"{").unwrap_err().field, "body");
    }
}
