//! Which client request headers reach an upstream.

use http::HeaderMap;
use tollgate_wire::headers::{HOP_BY_HOP, X_API_KEY, X_TOLLGATE_PREFIX};

/// True for headers that are never forwarded: connection-level ones, client credentials, the
/// gateway's own `x-tollgate-*` (and Azure-style `api-key`), and encodings the gateway has already undone or needs off
/// (responses must arrive uncompressed so usage can be read from them).
pub fn is_withheld(name: &str) -> bool {
    HOP_BY_HOP.contains(&name)
        || name == "authorization"
        || name == X_API_KEY
        || name == "api-key"
        || name == "content-encoding"
        || name == "accept-encoding"
        || name.starts_with(X_TOLLGATE_PREFIX)
}

/// Copies every forwardable header, in order, repeated names included.
pub fn forwarded_headers(from: &HeaderMap, into: &mut HeaderMap) {
    into.reserve(from.len() + 2);
    for (name, value) in from {
        if !is_withheld(name.as_str()) {
            into.append(name.clone(), value.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_and_gateway_headers_stay_behind() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("authorization", "Bearer tg-x"),
            ("x-api-key", "tg-x"),
            ("x-tollgate-project", "p"),
            ("anthropic-beta", "a,b"),
            ("x-claude-code-session-id", "s"),
            ("connection", "keep-alive"),
            ("user-agent", "claude-cli/2"),
        ] {
            h.append(k, v.parse().expect("valid"));
        }
        let mut out = HeaderMap::new();
        forwarded_headers(&h, &mut out);
        let names: Vec<_> = out.keys().map(|k| k.as_str()).collect();
        assert_eq!(
            names,
            vec!["anthropic-beta", "x-claude-code-session-id", "user-agent"]
        );
    }
}
