//! The TCP listener: HTTP/1.1 and HTTP/2 on one port, header-read timeout, graceful stop.

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;

/// Binds `n` sockets to the same address with `SO_REUSEPORT`, so each worker thread accepts
/// its own share of connections. Port 0 is resolved by the first bind and reused.
pub fn bind_reuseport(addr: SocketAddr, n: usize) -> std::io::Result<Vec<std::net::TcpListener>> {
    let mut out = Vec::with_capacity(n);
    let mut addr = addr;
    for _ in 0..n.max(1) {
        let socket = if addr.is_ipv6() {
            tokio::net::TcpSocket::new_v6()?
        } else {
            tokio::net::TcpSocket::new_v4()?
        };
        socket.set_reuseaddr(true)?;
        #[cfg(unix)]
        socket.set_reuseport(true)?;
        socket.set_nodelay(true)?;
        socket.bind(addr)?;
        let listener = socket.listen(1024)?;
        addr = listener.local_addr()?;
        out.push(listener.into_std()?);
    }
    Ok(out)
}

/// Serves `app` until `shutdown` completes, then waits up to `drain` for open connections.
pub async fn serve<S>(
    listener: TcpListener,
    app: S,
    header_timeout: Duration,
    drain: Duration,
    shutdown: impl Future<Output = ()>,
) where
    S: hyper::service::Service<
            Request<Incoming>,
            Response = Response<axum::body::Body>,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true);
    // hyper has no idle timeout for HTTP/2, and accepted sockets have no TCP keep-alive: a peer
    // that vanished without closing (a crashed client, a dropped NAT entry) would hold its
    // connection for good. An unanswered ping finds it.
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(header_timeout)
        .keep_alive_timeout(header_timeout);
    let graceful = GracefulShutdown::new();
    let tick = tokio::spawn(keep_timer_near());
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(s) => s,
                    Err(e) => {
                        // Out of file descriptors and similar: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let (builder, app, watcher) = (builder.clone(), app.clone(), graceful.watcher());
                tokio::spawn(async move {
                    // hyper times a request head from its first byte, and an idle keep-alive
                    // connection from its last request: a connection that never sends a byte
                    // would be held open for good. A peek, because a new socket's first
                    // readiness comes without data.
                    let mut first = [0u8; 1];
                    let peek = stream.peek(&mut first);
                    if tokio::time::timeout(header_timeout, peek).await.is_err() {
                        return;
                    }
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), app);
                    let _ = watcher.watch(conn.into_owned()).await;
                });
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    tick.abort();
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "connections still open after {} s; stopping anyway",
            drain.as_secs()
        );
    }
}

/// A standing one-second deadline on this runtime's timer.
///
/// Tokio wakes its own driver with an eventfd write whenever a new deadline falls before the
/// one the driver last parked with. hyper arms a header-read deadline for every request on a
/// keep-alive connection, so without a nearer deadline that is one `write(2)` and one spurious
/// `epoll_wait` round per request; with this tick, deadlines of a second or more never are.
async fn keep_timer_near() {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
    }
}
