//! A small client for the admin API.

use crate::cli::Remote;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// Talks to `/admin/v1` of one gateway with the admin credential.
pub struct AdminClient {
    base: String,
    token: String,
    http: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl AdminClient {
    /// The credential comes from `TOLLGATE_ADMIN_KEY`, else from `<data-dir>/admin.key`.
    pub fn new(remote: &Remote) -> Result<Self, String> {
        let token = match std::env::var("TOLLGATE_ADMIN_KEY") {
            Ok(t) if !t.trim().is_empty() => t.trim().to_string(),
            _ => {
                let dir = remote.data_dir.clone().unwrap_or_else(|| {
                    std::path::PathBuf::from(tollgate_server::app::DEFAULT_DATA_DIR)
                });
                let path = dir.join(tollgate_server::app::ADMIN_KEY_FILE);
                std::fs::read_to_string(&path)
                    .map_err(|e| {
                        format!(
                            "no admin credential: set TOLLGATE_ADMIN_KEY or point --data-dir at the gateway's data directory ({}: {e})",
                            path.display()
                        )
                    })?
                    .trim()
                    .to_string()
            }
        };
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self {
            base: remote.server.trim_end_matches('/').to_string(),
            token,
            http: Client::builder(TokioExecutor::new()).build(https),
        })
    }

    /// Sends one call and returns the JSON answer, or the API's error message.
    pub async fn call(
        &self,
        method: http::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let uri = format!("{}/admin/v1{path}", self.base);
        let mut req = http::Request::builder().method(method).uri(&uri).header(
            http::header::AUTHORIZATION,
            format!("Bearer {}", self.token),
        );
        let payload = match body {
            Some(b) => {
                req = req.header(http::header::CONTENT_TYPE, "application/json");
                Bytes::from(b.to_string())
            }
            None => Bytes::new(),
        };
        let req = req.body(Full::new(payload)).map_err(|e| e.to_string())?;
        let resp = tokio::time::timeout(std::time::Duration::from_secs(60), self.http.request(req))
            .await
            .map_err(|_| format!("{uri}: no answer within 60 s"))?
            .map_err(|e| format!("cannot reach the gateway at {}: {e}", self.base))?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if !status.is_success() {
            let msg = v["error"]["message"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
            return Err(format!("{status}: {msg}"));
        }
        Ok(v)
    }
}

/// Percent-encodes a query value.
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
