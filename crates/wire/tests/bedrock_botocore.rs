//! The frames the gateway writes for Bedrock clients decode in botocore, the reference AWS
//! implementation, with its own Bedrock Runtime response parser. Requires `python3` with
//! botocore; a missing interpreter or module fails the test rather than skipping it.

use std::path::PathBuf;
use std::process::Command;
use tollgate_wire::bedrock::{SseToEventStream, encode_chunk_frame, encode_exception_frame};

struct TempFile(PathBuf);

impl TempFile {
    fn with(name: &str, bytes: &[u8]) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "tollgate-wire-{name}-{}-{nanos}.bin",
            std::process::id()
        ));
        std::fs::write(&path, bytes).expect("write temp file");
        Self(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Runs the checker; returns (success, stdout, stderr).
fn botocore(frames: &[u8], name: &str) -> (bool, String, String) {
    let file = TempFile::with(name, frames);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/botocore_check.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(&file.0)
        .output()
        .expect("python3 must be installed to run the botocore interoperability test");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !stderr.contains("ModuleNotFoundError"),
        "botocore is not installed for python3 (pip install boto3): {stderr}"
    );
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    )
}

fn parsed(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout.trim()).expect("checker prints one JSON array")
}

#[test]
fn botocore_decodes_our_chunk_and_exception_frames() {
    let big = format!(
        r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":"{}"}}}}"#,
        "x☃".repeat(20_000)
    );
    let mut frames = Vec::new();
    frames.extend_from_slice(&encode_chunk_frame(
        br#"{"type":"message_start","message":{"id":"m"}}"#,
    ));
    frames.extend_from_slice(&encode_chunk_frame(big.as_bytes()));
    frames.extend_from_slice(&encode_chunk_frame(b""));
    frames.extend_from_slice(&encode_exception_frame(
        "throttlingException",
        "Too many requests, please wait — \"retry\".",
    ));
    let (ok, stdout, stderr) = botocore(&frames, "ok");
    assert!(ok, "botocore rejected our frames: {stderr}");
    assert_eq!(
        parsed(&stdout),
        serde_json::json!([
            {"chunk": r#"{"type":"message_start","message":{"id":"m"}}"#},
            {"chunk": big},
            {"chunk": ""},
            {"exception": "throttlingException", "message": "Too many requests, please wait — \"retry\"."},
        ])
    );
}

#[test]
fn botocore_sees_every_stream_exception_we_map_to() {
    let kinds = [
        "internalServerException",
        "modelStreamErrorException",
        "validationException",
        "throttlingException",
        "modelTimeoutException",
        "serviceUnavailableException",
    ];
    let frames: Vec<u8> = kinds
        .iter()
        .flat_map(|k| encode_exception_frame(k, k).to_vec())
        .collect();
    let (ok, stdout, stderr) = botocore(&frames, "exceptions");
    assert!(ok, "{stderr}");
    let expected: Vec<serde_json::Value> = kinds
        .iter()
        .map(|k| serde_json::json!({"exception": k, "message": k}))
        .collect();
    assert_eq!(parsed(&stdout), serde_json::Value::Array(expected));
}

#[test]
fn botocore_decodes_a_reframed_anthropic_stream() {
    let sse = concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\"}}\n\n",
        "event: ping\ndata: {\"type\": \"ping\"}\n\n",
        "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
    );
    let frames = SseToEventStream::new().feed(sse.as_bytes());
    let (ok, stdout, stderr) = botocore(&frames, "sse");
    assert!(ok, "{stderr}");
    assert_eq!(
        parsed(&stdout),
        serde_json::json!([
            {"chunk": "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\"}}"},
            {"chunk": "{\"type\": \"ping\"}"},
            {"exception": "serviceUnavailableException", "message": "Overloaded"},
        ])
    );
}

#[test]
fn botocore_rejects_a_corrupted_frame_too() {
    let mut frame = encode_chunk_frame(br#"{"type":"message_stop"}"#).to_vec();
    let i = frame.len() / 2;
    frame[i] ^= 0x01;
    let (ok, _, stderr) = botocore(&frame, "corrupt");
    assert!(!ok);
    assert!(stderr.contains("ChecksumMismatch"), "{stderr}");
}
