//! Provider entries from configuration to prepared requests: URLs, credentials and headers of
//! every kind, the beta table with per-provider overrides, and clear errors (never panics) for
//! bad entries.

use bytes::Bytes;
use http::HeaderMap;
use serde::Deserialize;
use std::collections::BTreeMap;
use tollgate_providers::{
    BetaAction, BetaTable, Dialect, Operation, ProviderConfig, ProviderKind, Upstream,
    UpstreamCall, build_with_env,
};

#[derive(Deserialize)]
struct File {
    providers: Vec<ProviderConfig>,
}

fn parse(toml_text: &str) -> Vec<ProviderConfig> {
    toml::from_str::<File>(toml_text)
        .expect("valid configuration")
        .providers
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn client_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in [
        ("authorization", "Bearer tg-gateway-key"),
        ("x-api-key", "tg-gateway-key"),
        ("api-key", "tg-gateway-key"),
        ("anthropic-version", "2023-06-01"),
        ("anthropic-beta", "claude-code-20250219"),
        ("openai-organization", "org-someone-else"),
        ("content-type", "text/plain"),
        ("accept-encoding", "gzip"),
        ("x-tollgate-project", "p"),
        ("user-agent", "OpenAI/Python 2.1.0"),
        ("x-request-tag", "t1"),
    ] {
        h.append(k, v.parse().expect("valid header"));
    }
    h
}

async fn prepare(
    up: &Upstream,
    call: &UpstreamCall<'_>,
) -> http::Request<tollgate_providers::UpstreamBody> {
    match up {
        Upstream::Bedrock(u) => u.prepare(call).await,
        Upstream::Vertex(u) => u.prepare(call).await,
        Upstream::OpenAi(u) => u.prepare(call).await,
        Upstream::Anthropic(_) | Upstream::Simulator(_) => {
            panic!("Anthropic-dialect upstreams have their own request path")
        }
    }
    .expect("prepared")
}

fn messages<'a>(model: &'a str, stream: bool, headers: &'a HeaderMap) -> UpstreamCall<'a> {
    UpstreamCall {
        operation: Operation::Messages,
        stream,
        model,
        body: Bytes::from_static(br#"{"model":"gpt-5","messages":[]}"#),
        client_headers: headers,
        betas: &[],
    }
}

const CONFIG: &str = r#"
[[providers]]
name = "oai"
kind = "openai"
api_key = "sk-openai"

[[providers]]
name = "azure"
kind = "azure-openai"
endpoint = "https://my-resource.openai.azure.com/"
deployment = "gpt-5-prod"
api_version = "2025-04-01-preview"
api_key = "azure-key"

[[providers]]
name = "azure-by-model"
kind = "azure-openai"
endpoint = "https://my-resource.openai.azure.com/openai"
api_key = "azure-key"

[[providers]]
name = "vllm"
kind = "openai-compatible"
base_url = "http://127.0.0.1:8000/v1/"

[[providers]]
name = "router"
kind = "openai-compatible"
base_url = "https://router.example/api"
api_key = "rk"

[[providers]]
name = "bedrock-key"
kind = "bedrock"
region = "us-east-1"
api_key = "bedrock-api-key"

[providers.betas]
"claude-code-20250219" = "forward"
"effort-2025-11-24" = "drop"
"my-feature-2026-01-01" = { map = "their-feature-2026-01-01" }
"#;

#[tokio::test]
async fn every_openai_kind_gets_its_url_and_credential() {
    let configs = parse(CONFIG);
    let headers = client_headers();
    let expected = [
        (
            "oai",
            ProviderKind::Openai,
            "https://api.openai.com/v1/chat/completions",
            ("authorization", "Bearer sk-openai"),
        ),
        (
            "azure",
            ProviderKind::AzureOpenai,
            "https://my-resource.openai.azure.com/openai/deployments/gpt-5-prod/chat/completions?api-version=2025-04-01-preview",
            ("api-key", "azure-key"),
        ),
        (
            "azure-by-model",
            ProviderKind::AzureOpenai,
            "https://my-resource.openai.azure.com/openai/deployments/gpt-5/chat/completions?api-version=2024-10-21",
            ("api-key", "azure-key"),
        ),
        (
            "vllm",
            ProviderKind::OpenaiCompatible,
            "http://127.0.0.1:8000/v1/chat/completions",
            ("", ""),
        ),
        (
            "router",
            ProviderKind::OpenaiCompatible,
            "https://router.example/api/v1/chat/completions",
            ("authorization", "Bearer rk"),
        ),
    ];
    for (name, kind, url, (cred_name, cred_value)) in expected {
        let config = configs
            .iter()
            .find(|c| c.name == name)
            .expect("entry present");
        let up = build_with_env(config, &no_env).expect("valid entry");
        assert_eq!(up.name(), name);
        assert_eq!(up.kind(), kind);
        assert_eq!(up.dialect(), Dialect::OpenAi);
        let req = prepare(&up, &messages("gpt-5", true, &headers)).await;
        assert_eq!(req.method(), http::Method::POST);
        assert_eq!(req.uri().to_string(), url, "{name}");
        let h = req.headers();
        if cred_name.is_empty() {
            assert!(
                !h.contains_key("authorization") && !h.contains_key("api-key"),
                "{name}"
            );
        } else {
            assert_eq!(h[cred_name], cred_value, "{name}");
            assert_eq!(h.get_all(cred_name).iter().count(), 1, "{name}");
        }
        if cred_name != "authorization" {
            assert!(
                !h.contains_key("authorization"),
                "{name}: client credential leaked"
            );
        }
        if cred_name != "api-key" {
            assert!(
                !h.contains_key("api-key"),
                "{name}: client credential leaked"
            );
        }
        assert_eq!(h["content-type"], "application/json");
        assert_eq!(h["accept"], "application/json");
        assert_eq!(h["user-agent"], "OpenAI/Python 2.1.0");
        assert_eq!(h["x-request-tag"], "t1");
        for withheld in [
            "x-api-key",
            "anthropic-version",
            "anthropic-beta",
            "openai-organization",
            "accept-encoding",
            "x-tollgate-project",
        ] {
            assert!(!h.contains_key(withheld), "{name}: {withheld} forwarded");
        }
        let counted = match &up {
            Upstream::OpenAi(u) => {
                u.prepare(&UpstreamCall {
                    operation: Operation::CountTokens,
                    ..messages("gpt-5", false, &headers)
                })
                .await
            }
            _ => unreachable!("OpenAI kinds build OpenAI upstreams"),
        };
        let e = counted.expect_err("no count_tokens");
        assert!(!e.retryable);
        assert!(
            e.message.starts_with("count_tokens is not available on"),
            "{e}"
        );
    }
}

#[tokio::test]
async fn bedrock_api_key_is_a_bearer_token_and_nothing_else_is_sent() {
    let configs = parse(CONFIG);
    let config = configs
        .iter()
        .find(|c| c.name == "bedrock-key")
        .expect("entry");
    let up = build_with_env(config, &no_env).expect("valid");
    assert_eq!(up.dialect(), Dialect::Bedrock);
    let headers = client_headers();
    let req = prepare(
        &up,
        &messages("global.anthropic.claude-opus-4-6-v1", true, &headers),
    )
    .await;
    assert_eq!(
        req.uri().to_string(),
        "https://bedrock-runtime.us-east-1.amazonaws.com/model/global.anthropic.claude-opus-4-6-v1/invoke-with-response-stream"
    );
    let mut names: Vec<_> = req
        .headers()
        .keys()
        .map(|k| k.as_str().to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["accept", "authorization", "content-type"]);
    assert_eq!(req.headers()["authorization"], "Bearer bedrock-api-key");
    assert_eq!(
        req.headers()["accept"],
        "application/vnd.amazon.eventstream"
    );

    // The entry's beta overrides, on top of the built-in table.
    let mut table = BetaTable::builtin();
    table
        .apply_overrides(ProviderKind::Bedrock, &config.betas)
        .expect("valid overrides");
    let header = "claude-code-20250219,effort-2025-11-24,my-feature-2026-01-01,interleaved-thinking-2025-05-14,per-turn-control-2026-07-01";
    assert_eq!(
        table.filter(up.kind(), &[header]),
        [
            "claude-code-20250219",
            "their-feature-2026-01-01",
            "interleaved-thinking-2025-05-14"
        ]
    );
    // Without them: the built-in decisions.
    assert_eq!(
        BetaTable::builtin().filter(ProviderKind::Bedrock, &[header]),
        ["effort-2025-11-24", "interleaved-thinking-2025-05-14"]
    );
}

#[test]
fn claude_code_betas_per_kind() {
    let table = BetaTable::builtin();
    // What Claude Code 2.1.332 sends on a `-p` main-loop turn.
    let cc = [
        "claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27,per-turn-control-2026-07-01",
        "mid-conversation-tool-changes-2026-07-01, thinking-token-count-2026-05-13, advanced-tool-use-2025-11-20, effort-2025-11-24",
    ];
    assert_eq!(table.filter(ProviderKind::Anthropic, &cc).len(), 8);
    assert_eq!(
        table.filter(ProviderKind::Bedrock, &cc),
        [
            "interleaved-thinking-2025-05-14",
            "context-management-2025-06-27",
            "tool-search-tool-2025-10-19",
            "effort-2025-11-24"
        ]
    );
    assert_eq!(
        table.filter(ProviderKind::Vertex, &cc),
        [
            "claude-code-20250219",
            "interleaved-thinking-2025-05-14",
            "context-management-2025-06-27",
            "per-turn-control-2026-07-01",
            "tool-search-tool-2025-10-19",
            "effort-2025-11-24"
        ]
    );
    assert!(table.filter(ProviderKind::OpenaiCompatible, &cc).is_empty());
    assert_eq!(
        table.action(ProviderKind::Vertex, "advanced-tool-use-2025-11-20"),
        &BetaAction::Map("tool-search-tool-2025-10-19".into())
    );
}

#[test]
fn bad_entries_are_errors_naming_provider_and_field() {
    let cases = [
        (
            "kind = \"openai\"",
            "provider 'x' (openai): api_key is required",
        ),
        (
            "kind = \"openai-compatible\"",
            "provider 'x' (openai-compatible): base_url is required",
        ),
        (
            "kind = \"openai-compatible\"\nbase_url = \"ftp://h\"",
            "provider 'x' (openai-compatible): base_url 'ftp://h' must start with http:// or https://",
        ),
        (
            "kind = \"azure-openai\"\napi_key = \"k\"",
            "provider 'x' (azure-openai): endpoint is required",
        ),
        (
            "kind = \"azure-openai\"\napi_key = \"k\"\nendpoint = \"https://r.openai.azure.com\"\napi_version = \"2024-10-21&x=1\"",
            "provider 'x' (azure-openai): api_version '2024-10-21&x=1' is not an API version",
        ),
        (
            "kind = \"azure-openai\"\napi_key = \"k\"\nendpoint = \"https://r.openai.azure.com\"\nbase_url = \"https://r\"",
            "provider 'x' (azure-openai): base_url does not apply to kind azure-openai",
        ),
        (
            "kind = \"openai\"\napi_key = \"line\\nbreak\"",
            "provider 'x' (openai): api_key has invalid characters",
        ),
        (
            "kind = \"bedrock\"",
            "provider 'x' (bedrock): region is required",
        ),
        (
            "kind = \"bedrock\"\nregion = \"us-east-1\"",
            "provider 'x' (bedrock): credentials are missing",
        ),
        (
            "kind = \"bedrock\"\nregion = \"us-east-1\"\nendpoint = \"localhost:9\"",
            "provider 'x' (bedrock): endpoint 'localhost:9' must start with http:// or https://",
        ),
        (
            "kind = \"bedrock\"\nregion = \"us-east-1\"\naccess_key_id = \"AKID/1\"\nsecret_access_key = \"s\"",
            "provider 'x' (bedrock): access_key_id must be alphanumeric",
        ),
        (
            "kind = \"bedrock\"\nregion = \"us-east-1\"\napi_key = \"k\"\nsession_token = \"t\"",
            "provider 'x' (bedrock): session_token only applies with access_key_id/secret_access_key",
        ),
        (
            "kind = \"bedrock\"\nregion = \"us-east-1\"\napi_key = \"k\"\nproject = \"p\"",
            "provider 'x' (bedrock): project does not apply to kind bedrock",
        ),
        (
            "kind = \"anthropic\"\nbetas = { \"x\" = \"drop\" }",
            "provider 'x' (anthropic): betas does not apply to kind anthropic",
        ),
    ];
    for (fields, expected) in cases {
        let text = format!("[[providers]]\nname = \"x\"\n{fields}\n");
        let configs = parse(&text);
        let e = build_with_env(&configs[0], &no_env).expect_err(expected);
        assert!(e.0.starts_with(expected), "got: {e}\nwanted: {expected}");
    }
}

#[test]
fn unknown_fields_and_kinds_are_refused_when_parsing() {
    for text in [
        "[[providers]]\nname = \"x\"\nkind = \"openai\"\napi_kye = \"k\"",
        "[[providers]]\nname = \"x\"\nkind = \"gemini\"",
        "[[providers]]\nname = \"x\"\nkind = \"bedrock\"\n[providers.betas]\n\"a\" = \"keep\"",
    ] {
        assert!(toml::from_str::<File>(text).is_err(), "{text}");
    }
}

#[test]
fn bedrock_credentials_from_the_environment() {
    let config = ProviderConfig {
        name: "b".into(),
        kind: ProviderKind::Bedrock,
        region: Some("us-west-2".into()),
        ..Default::default()
    };
    let env = |k: &str| match k {
        "AWS_ACCESS_KEY_ID" => Some("AKIAENV".to_string()),
        "AWS_SECRET_ACCESS_KEY" => Some("env-secret".to_string()),
        "AWS_SESSION_TOKEN" => Some("env-token".to_string()),
        _ => None,
    };
    let up = build_with_env(&config, &env).expect("credentials from env");
    let shown = format!("{up:?}");
    for secret in ["env-secret", "env-token", "AKIAENV"] {
        assert!(!shown.contains(secret), "{shown}");
    }
}

#[test]
fn secrets_never_show_in_debug_output() {
    let config = ProviderConfig {
        name: "n".into(),
        kind: ProviderKind::Bedrock,
        api_key: Some("secret-api-key".into()),
        access_key_id: Some("AKIASECRETID".into()),
        secret_access_key: Some("secret-access-key".into()),
        session_token: Some("secret-session".into()),
        credentials_json: Some("secret-json".into()),
        betas: BTreeMap::from([("b".to_string(), BetaAction::Drop)]),
        ..Default::default()
    };
    let shown = format!("{config:?}");
    for secret in [
        "secret-api-key",
        "AKIASECRETID",
        "secret-access-key",
        "secret-session",
        "secret-json",
    ] {
        assert!(!shown.contains(secret), "{shown}");
    }
    for (kind, url_field) in [
        ("openai", "base_url"),
        ("azure-openai", "endpoint"),
        ("openai-compatible", "base_url"),
    ] {
        let text = format!(
            "[[providers]]\nname = \"x\"\nkind = \"{kind}\"\napi_key = \"sk-hidden\"\n{url_field} = \"https://h\"\n"
        );
        let up = build_with_env(&parse(&text)[0], &no_env).expect("valid");
        assert!(!format!("{up:?}").contains("sk-hidden"));
    }
}
