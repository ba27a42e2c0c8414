//! The shared upstream HTTP client.

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

/// Request bodies sent upstream: the (already buffered and decoded) client body.
pub type UpstreamBody = Full<Bytes>;

/// Connection-level settings of the upstream client.
#[derive(Debug, Clone)]
pub struct UpstreamClientOptions {
    pub connect_timeout: Duration,
    /// Idle pooled connections are closed after this long.
    pub pool_idle_timeout: Duration,
    pub pool_max_idle_per_host: usize,
}

impl Default for UpstreamClientOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle_per_host: 1024,
        }
    }
}

/// A pooled client for every provider; cheap to clone.
pub type UpstreamClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, UpstreamBody>;

/// Builds the client: HTTPS via rustls (webpki roots) with ALPN h2/http1.1, plain HTTP allowed
/// for local and test upstreams.
pub fn build_client(opts: &UpstreamClientOptions) -> UpstreamClient {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(opts.connect_timeout));
    http.set_keepalive(Some(Duration::from_secs(60)));
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map(|b| {
        b.with_root_certificates(rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        })
        .with_no_client_auth()
    });
    let builder = hyper_rustls::HttpsConnectorBuilder::new();
    let https = match tls {
        Ok(cfg) => builder.with_tls_config(cfg),
        // The ring provider supports the default protocol versions; this arm is unreachable in
        // practice but must not panic.
        Err(_) => builder.with_webpki_roots(),
    }
    .https_or_http()
    .enable_http1()
    .enable_http2()
    .wrap_connector(http);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(opts.pool_idle_timeout)
        .pool_max_idle_per_host(opts.pool_max_idle_per_host)
        .build(https)
}
