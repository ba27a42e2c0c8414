//! A recording HTTP endpoint for webhook-style deliveries: it answers each POST with the next
//! scripted status (then 200) and keeps every body it was sent.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

#[derive(Default)]
struct State {
    statuses: VecDeque<u16>,
    received: Vec<(String, Bytes)>,
}

/// A local endpoint that records what it receives; it stops serving when dropped.
pub struct RecordingSink {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl RecordingSink {
    /// Starts on an ephemeral port; the first requests get `statuses` in order, the rest 200.
    pub async fn start(statuses: &[u16]) -> std::io::Result<RecordingSink> {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State {
            statuses: statuses.iter().copied().collect(),
            received: Vec::new(),
        }));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = shared.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let state = state.clone();
                        async move {
                            let path = req.uri().path().to_string();
                            let body = req
                                .into_body()
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let status = {
                                let mut s = state.lock().unwrap_or_else(PoisonError::into_inner);
                                s.received.push((path, body));
                                s.statuses.pop_front().unwrap_or(200)
                            };
                            let mut resp = hyper::Response::new(Full::new(Bytes::new()));
                            *resp.status_mut() =
                                http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
                            Ok::<_, std::convert::Infallible>(resp)
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Ok(RecordingSink { addr, state, task })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every (path, body) received, oldest first, including the ones answered with an error.
    pub fn received(&self) -> Vec<(String, Bytes)> {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .received
            .clone()
    }
}

impl Drop for RecordingSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}
