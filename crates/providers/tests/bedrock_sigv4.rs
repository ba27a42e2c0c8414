//! Bedrock requests are signed exactly as botocore signs them: same URL, headers, body and
//! time give the same `Authorization` header. botocore (the reference implementation behind
//! boto3 and the AWS CLI) runs in a `python3` child process; the test fails, never skips, when
//! it is missing.

use bytes::Bytes;
use http::HeaderMap;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tollgate_providers::{
    Operation, ProviderConfig, ProviderKind, Upstream, UpstreamCall, build_with_env,
};

/// 2026-11-25T12:34:56Z.
const SIGNING_TIME_SECS: u64 = 1_795_610_096;

/// Signs with botocore's `SigV4Auth` at the fixed time and prints the request headers it
/// produced, as JSON.
const BOTOCORE: &str = r#"
import datetime, json, sys
import botocore.auth as auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
p = json.loads(sys.argv[1])
fixed = datetime.datetime.fromtimestamp(p["time"], datetime.timezone.utc).replace(tzinfo=None)
auth.get_current_datetime = lambda *a, **k: fixed
req = AWSRequest(method="POST", url=p["url"], data=p["body"].encode(), headers=p["headers"])
auth.SigV4Auth(Credentials(p["ak"], p["sk"], p.get("token")), "bedrock", p["region"]).add_auth(req)
print(json.dumps({k.lower(): v for k, v in req.headers.items()}))
"#;

struct Case {
    model: &'static str,
    stream: bool,
    region: &'static str,
    endpoint: Option<&'static str>,
    session_token: Option<&'static str>,
}

const AK: &str = "AKIDEXAMPLE";
const SK: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

fn upstream(case: &Case) -> Upstream {
    let config = ProviderConfig {
        name: "bedrock-test".into(),
        kind: ProviderKind::Bedrock,
        region: Some(case.region.into()),
        endpoint: case.endpoint.map(Into::into),
        access_key_id: Some(AK.into()),
        secret_access_key: Some(SK.into()),
        session_token: case.session_token.map(Into::into),
        ..Default::default()
    };
    build_with_env(&config, &|_| None).expect("valid bedrock entry")
}

fn botocore_headers(
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
    case: &Case,
) -> serde_json::Value {
    let input = serde_json::json!({
        "url": url,
        "headers": headers.iter().map(|(k, v)| (k.to_string(), serde_json::Value::from(*v))).collect::<serde_json::Map<_, _>>(),
        "body": body,
        "ak": AK,
        "sk": SK,
        "token": case.session_token,
        "region": case.region,
        "time": SIGNING_TIME_SECS,
    });
    let out = Command::new("python3")
        .arg("-c")
        .arg(BOTOCORE)
        .arg(input.to_string())
        .output()
        .expect("python3 must be installed to check SigV4 against botocore");
    assert!(
        out.status.success(),
        "botocore reference signer failed (is botocore installed? `pip install botocore`):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("botocore output is JSON")
}

fn header<'a, B>(req: &'a http::Request<B>, name: &str) -> &'a str {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

async fn check(case: Case) {
    let up = upstream(&case);
    let Upstream::Bedrock(bedrock) = &up else {
        panic!("expected a Bedrock upstream, got {up:?}");
    };
    let body = r#"{"anthropic_version":"bedrock-2023-05-31","anthropic_beta":["interleaved-thinking-2025-05-14"],"max_tokens":64,"messages":[{"role":"user","content":"héllo"}]}"#;
    let mut client = HeaderMap::new();
    // Client headers must not reach Bedrock (nor its signature).
    for (k, v) in [
        ("x-api-key", "tg-key"),
        ("anthropic-version", "2023-06-01"),
        ("anthropic-beta", "claude-code-20250219"),
        ("user-agent", "claude-cli/2.1.332"),
        ("x-amzn-bedrock-service-tier", "priority"),
    ] {
        client.insert(k, v.parse().expect("valid header"));
    }
    let call = UpstreamCall {
        operation: Operation::Messages,
        stream: case.stream,
        model: case.model,
        body: Bytes::from(body),
        client_headers: &client,
        betas: &[],
    };
    let now = UNIX_EPOCH + Duration::from_secs(SIGNING_TIME_SECS);
    let req = bedrock.prepare_at(&call, now).await.expect("prepared");

    let url = req.uri().to_string();
    let accept = if case.stream {
        "application/vnd.amazon.eventstream"
    } else {
        "application/json"
    };
    let action = if case.stream {
        "invoke-with-response-stream"
    } else {
        "invoke"
    };
    assert!(url.ends_with(&format!("/{action}")), "{url}");
    assert!(
        !req.uri().path().contains(':'),
        "the model id's ':' travels as %3A: {url}"
    );
    assert_eq!(req.headers()["accept"], accept);
    assert_eq!(req.headers()["content-type"], "application/json");

    let mut names: Vec<&str> = req.headers().keys().map(|k| k.as_str()).collect();
    names.sort_unstable();
    let mut expected = vec!["accept", "authorization", "content-type", "x-amz-date"];
    if case.session_token.is_some() {
        expected.push("x-amz-security-token");
    }
    assert_eq!(names, expected, "Bedrock gets only the signed headers");

    let reference = botocore_headers(
        &url,
        &[("content-type", "application/json"), ("accept", accept)],
        body,
        &case,
    );
    let ours = header(&req, "authorization");
    assert_eq!(
        Some(ours),
        reference["authorization"].as_str(),
        "model {}",
        case.model
    );
    assert_eq!(
        Some(header(&req, "x-amz-date")),
        reference["x-amz-date"].as_str()
    );
    assert_eq!(req.headers()["x-amz-date"], "20261125T123456Z");
    if case.session_token.is_some() {
        assert_eq!(
            Some(header(&req, "x-amz-security-token")),
            reference["x-amz-security-token"].as_str()
        );
        assert!(
            ours.contains(
                "SignedHeaders=accept;content-type;host;x-amz-date;x-amz-security-token,"
            )
        );
    } else {
        assert!(ours.contains("SignedHeaders=accept;content-type;host;x-amz-date,"));
    }
    assert!(ours.starts_with(&format!(
        "AWS4-HMAC-SHA256 Credential={AK}/20261125/{}/bedrock/aws4_request,",
        case.region
    )));
}

#[tokio::test]
async fn inference_profile_id_with_colon_matches_botocore() {
    check(Case {
        model: "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        stream: false,
        region: "us-east-1",
        endpoint: None,
        session_token: None,
    })
    .await;
}

#[tokio::test]
async fn streaming_with_session_token_matches_botocore() {
    check(Case {
        model: "anthropic.claude-haiku-4-5-20251001-v1:0",
        stream: true,
        region: "eu-west-1",
        endpoint: None,
        session_token: Some("FwoGZXIvYXdzEXAMPLE//token+with/slashes="),
    })
    .await;
}

#[tokio::test]
async fn arn_model_id_on_a_custom_endpoint_matches_botocore() {
    check(Case {
        model: "arn:aws:bedrock:us-west-2:123456789012:application-inference-profile/a1b2c3",
        stream: true,
        region: "us-west-2",
        endpoint: Some("http://127.0.0.1:8443/"),
        session_token: None,
    })
    .await;
}

#[tokio::test]
async fn signatures_change_with_the_clock() {
    let case = Case {
        model: "m:0",
        stream: false,
        region: "us-east-1",
        endpoint: None,
        session_token: None,
    };
    let up = upstream(&case);
    let Upstream::Bedrock(b) = &up else {
        panic!("expected Bedrock");
    };
    let headers = HeaderMap::new();
    let call = UpstreamCall {
        operation: Operation::Messages,
        stream: false,
        model: "m:0",
        body: Bytes::from_static(b"{}"),
        client_headers: &headers,
        betas: &[],
    };
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(SIGNING_TIME_SECS);
    let a = b.prepare_at(&call, t0).await.expect("signed");
    let b2 = b
        .prepare_at(&call, t0 + Duration::from_secs(1))
        .await
        .expect("signed");
    assert_ne!(a.headers()["authorization"], b2.headers()["authorization"]);
}
