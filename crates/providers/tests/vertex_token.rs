//! Vertex AI access tokens: the JWT grant sent to the key's `token_uri` is a valid RS256
//! assertion for the cloud-platform scope, tokens are reused until shortly before they expire,
//! and concurrent first requests share one grant. A fake token endpoint on 127.0.0.1 stands in
//! for Google's; the key is a throwaway RSA key made with `openssl` for this run.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tollgate_providers::vertex::SCOPE;
use tollgate_providers::{
    Operation, ProviderConfig, ProviderKind, Upstream, UpstreamCall, VertexUpstream, build_with_env,
};

const CLIENT_EMAIL: &str = "gateway@test-project.iam.gserviceaccount.com";

/// A throwaway RSA key for this test run: PKCS#8 PEM (what service-account files hold) and
/// the PKCS#1 DER public key (what `ring` verifies with).
struct TestKey {
    private_pem: String,
    public_der: Vec<u8>,
}

fn test_key() -> &'static TestKey {
    static KEY: OnceLock<TestKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("tollgate-vertex-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let key = dir.join("key.pem");
        let public = dir.join("public.der");
        run_openssl(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            path(&key),
        ]);
        run_openssl(&[
            "rsa",
            "-in",
            path(&key),
            "-RSAPublicKey_out",
            "-outform",
            "DER",
            "-out",
            path(&public),
        ]);
        let k = TestKey {
            private_pem: std::fs::read_to_string(&key).expect("key written"),
            public_der: std::fs::read(&public).expect("public key written"),
        };
        let _ = std::fs::remove_dir_all(&dir);
        k
    })
}

fn path(p: &std::path::Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

fn run_openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl must be installed to make the test's RSA key");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The fake OAuth2 token endpoint.
struct TokenServer {
    uri: String,
    grants: AtomicUsize,
    /// `expires_in` of the tokens it issues.
    expires_in: AtomicU64,
    /// Form bodies of the grants received.
    bodies: Mutex<Vec<String>>,
}

async fn token_server(expires_in: u64, delay: Duration) -> Arc<TokenServer> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = Arc::new(TokenServer {
        uri: format!("http://{addr}/token"),
        grants: AtomicUsize::new(0),
        expires_in: AtomicU64::new(expires_in),
        bodies: Mutex::new(Vec::new()),
    });
    let state = server.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let state = state.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let state = state.clone();
                    async move {
                        let path = req.uri().path().to_string();
                        let body = req.into_body().collect().await?.to_bytes();
                        tokio::time::sleep(delay).await;
                        let n = state.grants.fetch_add(1, Ordering::SeqCst) + 1;
                        state
                            .bodies
                            .lock()
                            .expect("lock")
                            .push(String::from_utf8_lossy(&body).into_owned());
                        let reply = if path == "/token" {
                            serde_json::json!({
                                "access_token": format!("ya29.test-token-{n}"),
                                "expires_in": state.expires_in.load(Ordering::SeqCst),
                                "token_type": "Bearer",
                            })
                            .to_string()
                        } else {
                            "{}".to_string()
                        };
                        Ok::<_, hyper::Error>(Response::new(Full::new(Bytes::from(reply))))
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    server
}

fn service_account_json(token_uri: &str) -> String {
    serde_json::json!({
        "type": "service_account",
        "project_id": "test-project",
        "private_key_id": "test-key-1",
        "private_key": test_key().private_pem,
        "client_email": CLIENT_EMAIL,
        "client_id": "1",
        "token_uri": token_uri,
    })
    .to_string()
}

fn vertex(token_uri: &str, region: &str, endpoint: Option<&str>) -> VertexUpstream {
    let config = ProviderConfig {
        name: "vertex-test".into(),
        kind: ProviderKind::Vertex,
        project: Some("test-project".into()),
        region: Some(region.into()),
        endpoint: endpoint.map(Into::into),
        credentials_json: Some(service_account_json(token_uri)),
        ..Default::default()
    };
    match build_with_env(&config, &|_| None).expect("valid vertex entry") {
        Upstream::Vertex(v) => v,
        other => panic!("expected Vertex, got {other:?}"),
    }
}

fn call<'a>(
    operation: Operation,
    stream: bool,
    model: &'a str,
    headers: &'a HeaderMap,
    betas: &'a [String],
) -> UpstreamCall<'a> {
    UpstreamCall {
        operation,
        stream,
        model,
        body: Bytes::from_static(br#"{"anthropic_version":"vertex-2023-10-16"}"#),
        client_headers: headers,
        betas,
    }
}

fn form_value(form: &str, key: &str) -> String {
    let raw = form
        .split('&')
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .unwrap_or_default();
    let mut out = Vec::new();
    let bytes = raw.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() + 1 => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("ascii");
                out.push(u8::from_str_radix(hex, 16).expect("hex escape"));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).expect("utf-8 form value")
}

fn b64(part: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .expect("base64url JWT part")
}

#[tokio::test]
async fn grant_is_an_rs256_jwt_and_the_token_is_cached() {
    let server = token_server(3600, Duration::ZERO).await;
    let up = vertex(&server.uri, "us-east5", Some("http://127.0.0.1:9"));
    let mut client = HeaderMap::new();
    for (k, v) in [
        ("authorization", "Bearer tg-gateway-key"),
        ("x-api-key", "tg-gateway-key"),
        ("anthropic-version", "2023-06-01"),
        ("anthropic-beta", "afk-mode-2026-01-31"),
        ("x-goog-user-project", "someone-elses-project"),
        ("x-tollgate-project", "p"),
        ("user-agent", "claude-cli/2.1.332 (external, sdk-cli)"),
        ("x-claude-code-session-id", "s-1"),
    ] {
        client.insert(k, v.parse().expect("valid header"));
    }
    let betas: Vec<String> = [
        "claude-code-20250219",
        "interleaved-thinking-2025-05-14",
        "tool-search-tool-2025-10-19",
    ]
    .map(String::from)
    .to_vec();

    let first = up
        .prepare(&call(
            Operation::Messages,
            true,
            "claude-sonnet-4-5@20250929",
            &client,
            &betas,
        ))
        .await
        .expect("prepared");
    assert_eq!(
        first.uri().to_string(),
        "http://127.0.0.1:9/v1/projects/test-project/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-5@20250929:streamRawPredict"
    );
    let h = first.headers();
    assert_eq!(h["authorization"], "Bearer ya29.test-token-1");
    assert_eq!(
        h["anthropic-beta"],
        "claude-code-20250219,interleaved-thinking-2025-05-14,tool-search-tool-2025-10-19"
    );
    assert_eq!(h["content-type"], "application/json");
    assert_eq!(h["user-agent"], "claude-cli/2.1.332 (external, sdk-cli)");
    assert_eq!(h["x-claude-code-session-id"], "s-1");
    for withheld in [
        "anthropic-version",
        "x-api-key",
        "x-goog-user-project",
        "x-tollgate-project",
    ] {
        assert!(
            !h.contains_key(withheld),
            "{withheld} must not reach Vertex"
        );
    }
    assert_eq!(h.get_all("anthropic-beta").iter().count(), 1);

    // The grant: an RS256 JWT for the cloud-platform scope, audience token_uri, signed by the
    // key in the credentials.
    let bodies = server.bodies.lock().expect("lock").clone();
    assert_eq!(bodies.len(), 1);
    assert_eq!(
        form_value(&bodies[0], "grant_type"),
        "urn:ietf:params:oauth:grant-type:jwt-bearer"
    );
    let jwt = form_value(&bodies[0], "assertion");
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "header.claims.signature");
    let header: serde_json::Value = serde_json::from_slice(&b64(parts[0])).expect("header json");
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["typ"], "JWT");
    let claims: serde_json::Value = serde_json::from_slice(&b64(parts[1])).expect("claims json");
    assert_eq!(claims["iss"], CLIENT_EMAIL);
    assert_eq!(claims["aud"], server.uri.as_str());
    assert_eq!(claims["scope"], SCOPE);
    let iat = claims["iat"].as_i64().expect("iat");
    let exp = claims["exp"].as_i64().expect("exp");
    assert!(exp > iat && exp - iat <= 3600, "at most one hour: {claims}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    assert!((iat - now).abs() < 120, "issued now: {iat} vs {now}");
    let signed = format!("{}.{}", parts[0], parts[1]);
    ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        &test_key().public_der,
    )
    .verify(signed.as_bytes(), &b64(parts[2]))
    .expect("the assertion is signed by the service account's key");

    // Second call, other operation: same token, no new grant.
    let second = up
        .prepare(&call(Operation::CountTokens, false, "", &client, &betas))
        .await
        .expect("prepared");
    assert_eq!(
        second.headers()["authorization"],
        "Bearer ya29.test-token-1"
    );
    assert_eq!(server.grants.load(Ordering::SeqCst), 1, "one grant only");
    assert_eq!(
        second.uri().to_string(),
        "http://127.0.0.1:9/v1/projects/test-project/locations/us-east5/publishers/anthropic/models/count-tokens:rawPredict"
    );
    // count-tokens takes a narrower beta list than rawPredict.
    assert_eq!(
        second.headers()["anthropic-beta"],
        "claude-code-20250219,interleaved-thinking-2025-05-14"
    );
}

#[tokio::test]
async fn tokens_near_expiry_are_replaced_before_use() {
    // gcp_auth treats a token as expired 20 s early, so a 5 s token is never reused.
    let server = token_server(5, Duration::ZERO).await;
    let up = vertex(&server.uri, "global", None);
    let headers = HeaderMap::new();
    let c = call(
        Operation::Messages,
        false,
        "claude-opus-4-1@20250805",
        &headers,
        &[],
    );
    let a = up.prepare(&c).await.expect("first");
    let b = up.prepare(&c).await.expect("second");
    assert_eq!(a.headers()["authorization"], "Bearer ya29.test-token-1");
    assert_eq!(b.headers()["authorization"], "Bearer ya29.test-token-2");
    assert_eq!(server.grants.load(Ordering::SeqCst), 2);
    // The global location has no regional host.
    assert_eq!(
        a.uri().to_string(),
        "https://aiplatform.googleapis.com/v1/projects/test-project/locations/global/publishers/anthropic/models/claude-opus-4-1@20250805:rawPredict"
    );
    assert!(!a.headers().contains_key("anthropic-beta"));

    // Once tokens live long enough, the next one is kept.
    server.expires_in.store(3600, Ordering::SeqCst);
    up.prepare(&c).await.expect("third");
    up.prepare(&c).await.expect("fourth");
    assert_eq!(server.grants.load(Ordering::SeqCst), 3);
}

async fn burst(up: &Arc<VertexUpstream>, n: usize) -> Vec<(String, http::HeaderValue)> {
    let mut tasks = Vec::new();
    for _ in 0..n {
        let up = up.clone();
        tasks.push(tokio::spawn(async move {
            let headers = HeaderMap::new();
            let req = up
                .prepare(&call(
                    Operation::Messages,
                    false,
                    "claude-x@1",
                    &headers,
                    &[],
                ))
                .await
                .expect("prepared");
            (
                req.uri().to_string(),
                req.headers()["authorization"].clone(),
            )
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("task"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_share_one_grant_at_start_and_at_expiry() {
    let server = token_server(3600, Duration::from_millis(100)).await;
    let up = Arc::new(vertex(
        &server.uri,
        "europe-west1",
        Some("https://proxy.example/vertex/v1/"),
    ));
    for (uri, auth) in burst(&up, 16).await {
        assert_eq!(auth, "Bearer ya29.test-token-1");
        // An endpoint that already names the API version gets no second `/v1`.
        assert_eq!(
            uri,
            "https://proxy.example/vertex/v1/projects/test-project/locations/europe-west1/publishers/anthropic/models/claude-x@1:rawPredict"
        );
    }
    assert_eq!(server.grants.load(Ordering::SeqCst), 1);

    // A stale token met by a burst: one new grant, not one per request.
    let server = token_server(5, Duration::from_millis(100)).await;
    let up = Arc::new(vertex(&server.uri, "europe-west1", None));
    burst(&up, 1).await;
    assert_eq!(server.grants.load(Ordering::SeqCst), 1);
    server.expires_in.store(3600, Ordering::SeqCst);
    for (_, auth) in burst(&up, 16).await {
        assert_eq!(auth, "Bearer ya29.test-token-2");
    }
    assert_eq!(server.grants.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn token_endpoint_failures_are_retryable_errors() {
    // Nothing listens on this port: the grant cannot be posted.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead = format!("http://{}/token", listener.local_addr().expect("addr"));
    drop(listener);
    let up = vertex(&dead, "us-east5", None);
    let headers = HeaderMap::new();
    let e = up
        .prepare(&call(
            Operation::Messages,
            false,
            "claude-x@1",
            &headers,
            &[],
        ))
        .await
        .expect_err("no token");
    assert!(e.retryable);
    assert!(
        e.message
            .starts_with("vertex 'vertex-test': cannot obtain an access token"),
        "{e}"
    );
}

#[test]
fn bad_vertex_entries_are_refused_by_field() {
    let base = ProviderConfig {
        name: "v".into(),
        kind: ProviderKind::Vertex,
        project: Some("p".into()),
        region: Some("us-east5".into()),
        credentials_json: Some(service_account_json("http://127.0.0.1:9/token")),
        ..Default::default()
    };
    let cases: Vec<(&str, ProviderConfig)> = vec![
        (
            "project is required",
            ProviderConfig {
                project: None,
                ..base.clone()
            },
        ),
        (
            "region is required",
            ProviderConfig {
                region: None,
                ..base.clone()
            },
        ),
        (
            "region 'US East' is not",
            ProviderConfig {
                region: Some("US East".into()),
                ..base.clone()
            },
        ),
        (
            "credentials_json cannot be combined",
            ProviderConfig {
                credentials_file: Some("/x.json".into()),
                ..base.clone()
            },
        ),
        (
            "credentials_json is not a usable service-account key",
            ProviderConfig {
                credentials_json: Some("{\"type\":\"authorized_user\"}".into()),
                ..base.clone()
            },
        ),
        (
            "credentials_file '/nonexistent/key.json' cannot be read",
            ProviderConfig {
                credentials_json: None,
                credentials_file: Some("/nonexistent/key.json".into()),
                ..base.clone()
            },
        ),
        (
            "credentials are missing",
            ProviderConfig {
                credentials_json: None,
                ..base.clone()
            },
        ),
        (
            "api_key does not apply to kind vertex",
            ProviderConfig {
                api_key: Some("k".into()),
                ..base.clone()
            },
        ),
    ];
    for (expected, config) in cases {
        let e = build_with_env(&config, &|_| None).expect_err(expected);
        assert!(
            e.0.starts_with("provider 'v' (vertex): ") && e.0.contains(expected),
            "{e} / {expected}"
        );
    }
    // GOOGLE_APPLICATION_CREDENTIALS names the key file when the entry has none.
    let dir: PathBuf =
        std::env::temp_dir().join(format!("tollgate-vertex-env-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("sa.json");
    std::fs::write(&file, service_account_json("http://127.0.0.1:9/token")).expect("write");
    let file_str = file.to_str().expect("utf-8").to_string();
    let config = ProviderConfig {
        credentials_json: None,
        ..base.clone()
    };
    let env = move |k: &str| (k == "GOOGLE_APPLICATION_CREDENTIALS").then(|| file_str.clone());
    assert!(build_with_env(&config, &env).is_ok());
    let _ = std::fs::remove_dir_all(&dir);
    // The key never shows in debug output.
    let shown = format!("{:?}", base);
    assert!(!shown.contains("PRIVATE KEY"), "{shown}");
}
