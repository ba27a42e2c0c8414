//! Alert delivery to webhooks (generic JSON or Slack-compatible), at least once.
//!
//! Events arrive on a channel from the request path and are handled on a thread of their own:
//! each (event, webhook) pair is written to the delivery log first, then posted with retries and
//! exponential backoff; every attempt updates the log. Pending deliveries are resumed at start,
//! so a restart loses none that were logged. Webhook URLs (Slack's carry a secret) never appear in
//! the log or in messages; webhooks are named.

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use tollgate_govern::alerts::AlertEvent;
use tollgate_providers::{UpstreamClientOptions, client::build_client};
use tollgate_store::Store;

/// `[alerts]`: where alerts go.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsSection {
    pub webhooks: Vec<WebhookConfig>,
    /// Attempts per delivery before it is marked failed.
    pub max_attempts: u32,
    /// First retry delay; doubles per attempt up to five minutes.
    pub retry_base_ms: u64,
}

impl Default for AlertsSection {
    fn default() -> Self {
        Self {
            webhooks: Vec::new(),
            max_attempts: 8,
            retry_base_ms: 1000,
        }
    }
}

/// Payload shape of a webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum WebhookFormat {
    /// The alert event as JSON.
    #[default]
    Json,
    /// `{"text": …}`, accepted by Slack incoming webhooks and most chat tools.
    Slack,
}

/// One `[[alerts.webhooks]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Shown in the delivery log instead of the URL.
    pub name: Option<String>,
    pub url: String,
    #[serde(default)]
    pub format: WebhookFormat,
}

/// The sending side, held by the gateway state.
#[derive(Clone, Default)]
pub struct Alerts {
    tx: Option<tokio::sync::mpsc::UnboundedSender<AlertEvent>>,
}

impl std::fmt::Debug for Alerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alerts")
            .field("enabled", &self.enabled())
            .finish()
    }
}

struct Hook {
    name: String,
    url: http::Uri,
    format: WebhookFormat,
}

impl Alerts {
    /// True when at least one webhook is configured.
    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// Queues an event for every webhook; never blocks.
    pub fn send(&self, event: AlertEvent) {
        tracing::warn!(kind = ?event.kind, policy = %event.policy, "{}", event.message);
        if let Some(tx) = &self.tx
            && tx.send(event).is_err()
        {
            tracing::error!("alert dispatcher is gone; alert not delivered");
        }
    }

    /// Starts the dispatcher thread, resuming deliveries left pending by a previous run.
    pub fn start(cfg: &AlertsSection, store: Arc<Store>) -> Result<Alerts, String> {
        if cfg.webhooks.is_empty() {
            return Ok(Alerts::default());
        }
        let mut hooks = Vec::new();
        for (i, w) in cfg.webhooks.iter().enumerate() {
            let url: http::Uri = w
                .url
                .parse()
                .map_err(|_| format!("[[alerts.webhooks]] #{}: url is not a valid URL", i + 1))?;
            if !matches!(url.scheme_str(), Some("http" | "https")) {
                return Err(format!(
                    "[[alerts.webhooks]] #{}: url must be http or https",
                    i + 1
                ));
            }
            hooks.push(Hook {
                name: w
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("webhook-{}", i + 1)),
                url,
                format: w.format,
            });
        }
        let hooks = Arc::new(hooks);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<AlertEvent>();
        let max_attempts = cfg.max_attempts.max(1);
        let base = Duration::from_millis(cfg.retry_base_ms.max(1));
        crate::app::spawn_runtime_thread("tollgate-alerts".into(), move || async move {
            let client = build_client(&UpstreamClientOptions::default());
            let deliver = |id: i64, hook_idx: usize, payload: Bytes| {
                let client = client.clone();
                let hooks = hooks.clone();
                let store = store.clone();
                tokio::spawn(async move {
                    deliver(
                        &client,
                        &store,
                        &hooks[hook_idx],
                        id,
                        payload,
                        max_attempts,
                        base,
                    )
                    .await;
                })
            };
            match store.pending_alert_deliveries() {
                Ok(pending) => {
                    for d in pending {
                        let Some(i) = hooks.iter().position(|h| h.name == d.webhook) else {
                            let _ = store.record_alert_attempt(
                                d.id,
                                "failed",
                                Some("webhook no longer configured"),
                            );
                            continue;
                        };
                        deliver(d.id, i, payload(hooks[i].format, &d.event));
                    }
                }
                Err(e) => tracing::error!(error = %e, "cannot read pending alerts"),
            }
            while let Some(event) = rx.recv().await {
                let json = serde_json::to_value(&event).unwrap_or_default();
                let kind = serde_json::to_value(event.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                for (i, h) in hooks.iter().enumerate() {
                    match store.add_alert_delivery(&h.name, &kind, &json) {
                        Ok(id) => {
                            deliver(id, i, payload(h.format, &json));
                        }
                        Err(e) => tracing::error!(error = %e, "cannot log an alert"),
                    }
                }
            }
        })
        .map_err(|e| format!("cannot start the alert dispatcher: {e}"))?;
        Ok(Alerts { tx: Some(tx) })
    }
}

fn payload(format: WebhookFormat, event: &serde_json::Value) -> Bytes {
    let body = match format {
        WebhookFormat::Json => serde_json::json!({ "type": "tollgate.alert", "alert": event }),
        WebhookFormat::Slack => {
            let msg = event["message"].as_str().unwrap_or("Tollgate alert");
            serde_json::json!({ "text": format!(":rotating_light: Tollgate: {msg}") })
        }
    };
    Bytes::from(body.to_string())
}

async fn deliver(
    client: &tollgate_providers::UpstreamClient,
    store: &Store,
    hook: &Hook,
    id: i64,
    body: Bytes,
    max_attempts: u32,
    base: Duration,
) {
    let mut delay = base;
    for attempt in 1..=max_attempts {
        let result = post(client, &hook.url, body.clone()).await;
        let (status, err) = match result {
            Ok(()) => ("delivered", None),
            Err(Failure::Final(e)) => ("failed", Some(e)),
            Err(Failure::Retry(e)) if attempt == max_attempts => ("failed", Some(e)),
            Err(Failure::Retry(e)) => ("pending", Some(e)),
        };
        if let Err(e) = store.record_alert_attempt(id, status, err.as_deref()) {
            tracing::error!(error = %e, "cannot update the alert log");
        }
        if status != "pending" {
            if status == "failed" {
                tracing::error!(webhook = %hook.name, "alert delivery failed for good");
            }
            return;
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(300));
    }
}

async fn post(
    client: &tollgate_providers::UpstreamClient,
    url: &http::Uri,
    body: Bytes,
) -> Result<(), Failure> {
    let req = Request::post(url.clone())
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::USER_AGENT, "tollgate-alerts")
        .body(Full::new(body))
        .map_err(|e| Failure::Final(e.to_string()))?;
    let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .map_err(|_| Failure::Retry("timed out after 10 s".to_string()))?
        // Connection errors name the host, never the path or query where secrets live.
        .map_err(|_| {
            Failure::Retry(format!(
                "cannot reach {}",
                url.host().unwrap_or("the webhook")
            ))
        })?;
    let status = resp.status();
    let _ = tokio::time::timeout(Duration::from_secs(10), resp.into_body().collect()).await;
    if status.is_success() {
        Ok(())
    } else if status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_server_error()
    {
        Err(Failure::Retry(format!("webhook answered {status}")))
    } else {
        // Any other 4xx means the webhook is misconfigured: retrying cannot help.
        Err(Failure::Final(format!("webhook answered {status}")))
    }
}

enum Failure {
    Retry(String),
    Final(String),
}
