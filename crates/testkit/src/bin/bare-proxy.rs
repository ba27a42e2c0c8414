//! The floor of the gateway's HTTP stack, for benchmarks: the same hyper server and pooled
//! hyper client on one single-threaded runtime per core, with nothing in between.

use std::io::Write as _;
use std::net::SocketAddr;

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// Forwards every request to one upstream and relays the answer, buffering the request body.
#[derive(Parser)]
#[command(name = "bare-proxy")]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// The upstream's address.
    #[arg(long)]
    upstream: SocketAddr,
}

type Upstream = Client<HttpConnector, Full<Bytes>>;

async fn forward(
    client: Upstream,
    upstream: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<Incoming>, Box<dyn std::error::Error + Send + Sync>> {
    let (mut parts, body) = req.into_parts();
    let body = body.collect().await?.to_bytes();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    parts.uri = format!("http://{upstream}{path}").parse()?;
    parts.headers.remove(hyper::header::HOST);
    Ok(client
        .request(Request::from_parts(parts, Full::new(body)))
        .await?)
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    // One SO_REUSEPORT socket per worker, as the gateway binds them.
    let mut addr = args.listen;
    let mut listeners = Vec::new();
    let binder = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    let _entered = binder.enter();
    for _ in 0..workers {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.set_reuseport(true)?;
        socket.bind(addr)?;
        let listener = socket.listen(1024)?;
        addr = listener.local_addr()?;
        listeners.push(listener.into_std()?);
    }
    drop(_entered);
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "LISTENING {addr}")?;
    stdout.flush()?;
    drop(stdout);
    let threads: Vec<_> = listeners
        .into_iter()
        .map(|listener| {
            let upstream = args.upstream;
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                    let mut http = HttpConnector::new();
                    http.set_nodelay(true);
                    let client: Upstream = Client::builder(TokioExecutor::new()).build(http);
                    loop {
                        let Ok((stream, _)) = listener.accept().await else {
                            continue;
                        };
                        let _ = stream.set_nodelay(true);
                        let client = client.clone();
                        tokio::spawn(async move {
                            let svc = hyper::service::service_fn(move |req| {
                                forward(client.clone(), upstream, req)
                            });
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), svc)
                                .await;
                        });
                    }
                });
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
    Ok(())
}
