//! The journal record.

use serde::{Deserialize, Serialize};

/// One upstream attempt of a request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AttemptRecord {
    pub provider: String,
    /// The model id sent.
    pub model: Option<String>,
    /// The upstream's status; `None` when no response head arrived.
    pub status: Option<u16>,
    /// From sending the request to the response head (or the failure).
    pub latency_ms: f64,
    pub error: Option<String>,
    /// `first`, `fallback` (another target at once) or `retry` (after a backoff).
    pub kind: String,
    /// Milliseconds waited before this attempt (backoff or `retry-after`).
    pub waited_ms: f64,
}

/// Everything recorded about one request. Field names are the public journal format.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct JournalRecord {
    pub id: String,
    /// RFC 3339 start time.
    pub started_at: String,
    /// Start time as Unix milliseconds, for range queries.
    pub started_unix_ms: i64,
    pub duration_ms: f64,
    pub ttfb_ms: Option<f64>,
    pub status: u16,
    pub error_type: Option<String>,
    pub error_message: Option<String>,
    pub method: String,
    pub path: String,
    pub key_id: Option<String>,
    pub org: Option<String>,
    pub team: Option<String>,
    pub user: Option<String>,
    pub project: Option<String>,
    pub tags: Vec<String>,
    pub session_id: Option<String>,
    pub agent_id: Option<String>,
    pub model: Option<String>,
    /// The provider that served the answer (the last attempt's).
    pub provider: Option<String>,
    /// The model id sent to that provider, when it differs from `model`.
    pub served_model: Option<String>,
    /// The route that planned the attempts; `None` when no route applied.
    pub route: Option<String>,
    /// The session's stable hash chose the target order (session affinity).
    pub affinity: bool,
    /// Every attempt made upstream, in order.
    pub attempts: Vec<AttemptRecord>,
    pub stream: bool,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub cache_read_input_tokens: u64,
    /// Cost in nano-USD; `None` when the model has no known price.
    pub cost_nanos: Option<i64>,
    /// `cost_nanos` as a decimal USD string, for people.
    pub cost_usd: Option<String>,
    pub cost_unknown: bool,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub user_agent: Option<String>,
    pub upstream_request_id: Option<String>,
    /// The policy that refused the request, or that downgraded its model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// The model the client asked for when a budget policy served a cheaper one (`model` is
    /// then the one served).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub downgraded_from: Option<String>,
    /// `max_tokens` as the client sent it, when a policy lowered it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clamped_max_tokens_from: Option<u64>,
    /// Request body, only when body capture is enabled (truncated to the configured cap).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_body: Option<String>,
    /// Response body, only when body capture is enabled (truncated to the configured cap).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_body: Option<String>,
}
