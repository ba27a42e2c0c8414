//! The `settings.json` block that points Claude Code at the gateway.

use serde_json::{Map, Value, json};

/// Builds `{"env": {...}}` for `~/.claude/settings.json`. Custom headers travel in
/// `ANTHROPIC_CUSTOM_HEADERS`, newline-separated, as Claude Code expects.
pub fn settings(url: &str, key: &str, headers: &[String]) -> Result<Value, String> {
    let mut env = Map::new();
    env.insert(
        "ANTHROPIC_BASE_URL".into(),
        json!(url.trim_end_matches('/')),
    );
    env.insert("ANTHROPIC_AUTH_TOKEN".into(), json!(key));
    // Keeps Claude Code from calling Anthropic hosts directly (telemetry, warm-up, updates).
    env.insert(
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC".into(),
        json!("1"),
    );
    if !headers.is_empty() {
        for h in headers {
            match h.split_once(':') {
                Some((n, _)) if !n.trim().is_empty() && !n.contains(char::is_whitespace) => {}
                _ => return Err(format!("header '{h}' must look like 'Name: value'")),
            }
        }
        env.insert(
            "ANTHROPIC_CUSTOM_HEADERS".into(),
            json!(
                headers
                    .iter()
                    .map(|h| h.trim())
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
        );
    }
    Ok(json!({ "env": env }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_block_has_url_token_and_headers() {
        let v = settings(
            "http://gw:8780/",
            "tg-abc",
            &[
                "x-tollgate-project: pay".into(),
                "x-tollgate-tags: a,b".into(),
            ],
        )
        .expect("valid");
        assert_eq!(v["env"]["ANTHROPIC_BASE_URL"], "http://gw:8780");
        assert_eq!(v["env"]["ANTHROPIC_AUTH_TOKEN"], "tg-abc");
        assert_eq!(v["env"]["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"], "1");
        assert_eq!(
            v["env"]["ANTHROPIC_CUSTOM_HEADERS"],
            "x-tollgate-project: pay\nx-tollgate-tags: a,b"
        );
        assert!(settings("u", "k", &["bad header".into()]).is_err());
    }
}
