//! Shared harness for the end-to-end tests: a real `tollgate serve` process in a temporary
//! directory, its command line, and a plain HTTP client that exposes exactly what went over the
//! wire.

// Each test binary uses its own subset of the harness.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// The key the scripted upstream accepts; reaches the gateway only through `${…}` interpolation.
pub const UPSTREAM_KEY: &str = "upkey";
const UPSTREAM_KEY_ENV: &str = "TG_TEST_UPSTREAM_KEY";

const START_TIMEOUT: Duration = Duration::from_secs(20);
const CLI_TIMEOUT: Duration = Duration::from_secs(20);
const HTTP_TIMEOUT: Duration = Duration::from_secs(20);

/// A directory removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "tollgate-test-{tag}-{}-{n}-{nanos}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `tollgate serve` child process.
pub struct Gateway {
    pub url: String,
    pub data_dir: PathBuf,
    config_path: PathBuf,
    log_path: PathBuf,
    extra_env: Vec<(String, String)>,
    child: Option<Child>,
    /// The gateway's own Postgres when the suite runs with `TG_TEST_STORE=postgres`.
    _pg: Option<tollgate_testkit::services::PostgresServer>,
    // Declared last so the child is gone before its directory is removed.
    _dir: TempDir,
}

impl Gateway {
    /// A gateway whose `anthropic` provider points at `upstream_url`.
    pub async fn start(upstream_url: &str) -> Gateway {
        Self::start_with(upstream_url, "").await
    }

    /// Like [`start`](Self::start), with extra TOML appended to the config file.
    pub async fn start_with(upstream_url: &str, extra_toml: &str) -> Gateway {
        Self::start_with_env(upstream_url, extra_toml, &[]).await
    }

    /// Like [`start_with`](Self::start_with), with extra environment variables for the
    /// gateway process (kept across restarts).
    pub async fn start_with_env(
        upstream_url: &str,
        extra_toml: &str,
        env: &[(&str, &str)],
    ) -> Gateway {
        let dir = TempDir::new("gw");
        let data_dir = dir.path().join("data");
        let config_path = dir.path().join("tollgate.toml");
        let mut config = format!(
            "[[providers]]\nname = \"anthropic\"\nkind = \"anthropic\"\nbase_url = \"{upstream_url}\"\napi_key = \"${{{UPSTREAM_KEY_ENV}}}\"\n\n{extra_toml}\n"
        );
        let pg = postgres_store(extra_toml, &data_dir, &mut config);
        std::fs::write(&config_path, config).expect("write config");
        let log_path = dir.path().join("gateway.log");
        let mut gw = Gateway {
            url: String::new(),
            data_dir,
            config_path,
            log_path,
            extra_env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            child: None,
            _pg: pg,
            _dir: dir,
        };
        gw.spawn().await;
        gw
    }

    async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("open gateway log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .arg("serve")
            .arg("--config")
            .arg(&self.config_path)
            .args(["--listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(&self.data_dir)
            .env(UPSTREAM_KEY_ENV, UPSTREAM_KEY)
            .env_remove("ANTHROPIC_API_KEY")
            .env_remove("TOLLGATE_ADMIN_KEY")
            .env_remove("TOLLGATE_MASTER_KEY")
            .envs(self.extra_env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn tollgate serve");
        let stdout = child.stdout.take().expect("piped stdout");
        self.child = Some(child);

        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let first = match reader.read_line(&mut line) {
                Ok(n) if n > 0 => Some(line.trim().to_string()),
                _ => None,
            };
            let _ = tx.send(first);
            // Keep draining so the gateway can never block on a full pipe.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let line = match tokio::time::timeout(START_TIMEOUT, rx).await {
            Ok(Ok(Some(line))) => line,
            Ok(_) => panic!(
                "tollgate serve exited before listening; log:\n{}",
                self.log_tail()
            ),
            Err(_) => panic!(
                "tollgate serve did not report its address within {START_TIMEOUT:?}; log:\n{}",
                self.log_tail()
            ),
        };
        let url = line
            .strip_prefix("tollgate listening on ")
            .unwrap_or_else(|| panic!("unexpected first line from tollgate serve: {line:?}"));
        self.url = url.to_string();
    }

    /// The temporary directory holding the data directory, config and log.
    pub fn root(&self) -> &Path {
        self._dir.path()
    }

    /// Everything the gateway wrote to standard error so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The last part of the gateway's standard error, for failure messages.
    pub fn log_tail(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log_path) {
            let _ = f.read_to_string(&mut text);
        }
        let start = text.len().saturating_sub(4000);
        let start = (start..text.len())
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(text.len());
        text[start..].to_string()
    }

    /// The admin credential this gateway was started with (`TOLLGATE_ADMIN_KEY`), else the
    /// one it wrote to its data directory.
    pub fn admin_key(&self) -> String {
        self.admin_key_env().unwrap_or_else(|| {
            std::fs::read_to_string(self.data_dir.join("admin.key"))
                .expect("admin.key")
                .trim()
                .to_string()
        })
    }

    fn admin_key_env(&self) -> Option<String> {
        self.extra_env
            .iter()
            .find(|(k, _)| k == "TOLLGATE_ADMIN_KEY")
            .map(|(_, v)| v.clone())
    }

    /// `METHOD /admin/v1/{path}` with the admin credential and an optional JSON body.
    pub async fn admin_call(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        let req = Request::builder()
            .method(method)
            .uri(format!("{}/admin/v1/{path}", self.url))
            .header("authorization", format!("Bearer {}", self.admin_key()))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(
                body.map(|b| b.to_string()).unwrap_or_default(),
            )))
            .expect("valid request");
        send(&client(), req).await
    }

    /// `GET /admin/v1/{path}` with the admin credential.
    pub async fn admin_get(&self, path: &str) -> Value {
        let req = Request::get(format!("{}/admin/v1/{path}", self.url))
            .header("authorization", format!("Bearer {}", self.admin_key()))
            .body(Full::new(Bytes::new()))
            .expect("valid request");
        let reply = send(&client(), req).await;
        assert_eq!(reply.status, 200, "GET /admin/v1/{path}: {}", reply.text());
        reply.json()
    }

    /// Runs a command-line subcommand against this gateway and parses its `--json` output.
    pub async fn admin(&self, args: &[&str]) -> Value {
        let out = self.cli(args).await;
        serde_json::from_str(out.trim())
            .unwrap_or_else(|e| panic!("tollgate {args:?} printed invalid JSON ({e}): {out}"))
    }

    /// Runs a command-line subcommand with `--json` and returns its standard output.
    pub async fn cli(&self, args: &[&str]) -> String {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_tollgate"));
        cmd.args(args)
            .arg("--server")
            .arg(&self.url)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--json")
            .env_remove("TOLLGATE_ADMIN_KEY")
            .env_remove("TOLLGATE_SERVER")
            // A gateway started with the cluster's key has no admin.key to read.
            .envs(self.admin_key_env().map(|k| ("TOLLGATE_ADMIN_KEY", k)))
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let out = tokio::time::timeout(CLI_TIMEOUT, cmd.output())
            .await
            .unwrap_or_else(|_| panic!("tollgate {args:?} did not finish in {CLI_TIMEOUT:?}"))
            .expect("run tollgate CLI");
        assert!(
            out.status.success(),
            "tollgate {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("CLI output is UTF-8")
    }

    /// Creates a gateway key (and its user and team) and returns the whole JSON answer.
    pub async fn create_key_json(&self, user: &str, team: &str) -> Value {
        self.admin(&["keys", "create", "--user", user, "--team", team])
            .await
    }

    /// Creates a gateway key for `user` in `team` and returns the secret.
    pub async fn create_key(&self, user: &str, team: &str) -> String {
        let v = self.create_key_json(user, team).await;
        v["key"]
            .as_str()
            .unwrap_or_else(|| panic!("keys create answered without a key: {v}"))
            .to_string()
    }

    /// The journal, newest first, as printed by `tollgate logs --json --limit 1000`.
    pub async fn logs(&self) -> Vec<Value> {
        self.cli(&["logs", "--limit", "1000"])
            .await
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).expect("logs line is JSON"))
            .collect()
    }

    /// Polls the journal until every id in `ids` has a record, then returns the whole journal.
    /// Records reach the queryable store in batches, so they may lag the response slightly.
    pub async fn logs_with(&self, ids: &[&str], timeout: Duration) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let logs = self.logs().await;
            let missing: Vec<&&str> = ids
                .iter()
                .filter(|id| !logs.iter().any(|r| r["id"] == **id))
                .collect();
            if missing.is_empty() {
                return logs;
            }
            if Instant::now() > deadline {
                panic!(
                    "no journal record for {} request(s) after {timeout:?}, e.g. {:?}; journal has {} records",
                    missing.len(),
                    missing.iter().take(5).collect::<Vec<_>>(),
                    logs.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The one journal record of request `id`; fails if there is none or more than one.
    pub async fn record(&self, id: &str) -> Value {
        let logs = self.logs_with(&[id], Duration::from_secs(10)).await;
        let mut found: Vec<Value> = logs.into_iter().filter(|r| r["id"] == id).collect();
        assert_eq!(
            found.len(),
            1,
            "request {id} must have exactly one journal record: {found:?}"
        );
        found.remove(0)
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the gateway again on the same data directory and configuration (the port may
    /// change).
    pub async fn restart(&mut self) {
        self.kill9();
        self.spawn().await;
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// With `TG_TEST_STORE=postgres`, every gateway that does not choose its store itself gets a
/// Postgres of its own, so the end-to-end suites can be run on both store engines. The master
/// key is put in the data directory beforehand, as an operator of a cluster would.
fn postgres_store(
    extra_toml: &str,
    data_dir: &Path,
    config: &mut String,
) -> Option<tollgate_testkit::services::PostgresServer> {
    if std::env::var("TG_TEST_STORE").ok().as_deref() != Some("postgres")
        || extra_toml.contains("[store]")
    {
        return None;
    }
    let pg = tollgate_testkit::services::PostgresServer::start();
    pg.create_database("tollgate");
    config.push_str(&format!(
        "\n[store]\nbackend = \"postgres\"\nurl = \"{}\"\n",
        pg.url("tollgate")
    ));
    std::fs::create_dir_all(data_dir).expect("create data dir");
    std::fs::write(
        data_dir.join("master.key"),
        "KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio=\n",
    )
    .expect("write master.key");
    Some(pg)
}

/// A port on which nothing listens.
/// Waits until the wall clock is in the first 40 seconds of a minute, so that a burst of
/// requests started now falls in one fixed per-minute rate window.
pub async fn until_early_in_a_minute() {
    loop {
        let s = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            % 60;
        if s < 40 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The `error.type` and `error.message` of an Anthropic-dialect error reply.
pub fn error_of(r: &Reply) -> (String, String) {
    let j = r.json();
    (
        j["error"]["type"].as_str().unwrap_or_default().to_string(),
        j["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

/// A request body of at least `bytes` bytes, so a usage of that many input tokens is possible.
pub fn padded_body(model: &str, bytes: usize, max_tokens: u32) -> String {
    format!(
        r#"{{"model":"{model}","max_tokens":{max_tokens},"messages":[{{"role":"user","content":"{}"}}]}}"#,
        "x".repeat(bytes)
    )
}

/// `n` concurrent requests spread over the gateways, each with its key; every answer is a 200 or
/// a budget refusal. Returns (admitted, total settled nanos), the costs read from each gateway's
/// own journal, waiting up to `wait` for the records.
pub async fn flood(
    gateways: &[(&Gateway, String)],
    n: usize,
    body: String,
    wait: Duration,
) -> (usize, i64) {
    let client = client();
    let mut tasks = Vec::new();
    for i in 0..n {
        let g = i % gateways.len();
        let (gw, key) = &gateways[g];
        let url = format!("{}/v1/messages", gw.url);
        let req = messages_request(
            &url,
            key,
            body.clone(),
            &[
                ("x-mock-usage", "10000,1000,0,0"),
                ("x-mock-scenario", "slow:300"),
            ],
        );
        let c = client.clone();
        tasks.push(tokio::spawn(async move { (g, send(&c, req).await) }));
    }
    let mut ok_ids: Vec<Vec<String>> = vec![Vec::new(); gateways.len()];
    for t in tasks {
        let (g, r) = t.await.unwrap();
        match r.status {
            200 => ok_ids[g].push(r.request_id()),
            429 => {
                assert_eq!(r.header("x-should-retry"), Some("false"));
                assert!(error_of(&r).1.contains("budget exhausted"), "{}", r.text());
            }
            s => panic!("unexpected status {s}: {}", r.text()),
        }
    }
    let mut total = 0;
    for ((gw, _), ids) in gateways.iter().zip(&ok_ids) {
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        let recs = gw.logs_with(&ids, wait).await;
        total += recs
            .iter()
            .filter(|r| ids.contains(&r["id"].as_str().unwrap_or_default()))
            .filter_map(|r| r["cost_nanos"].as_i64())
            .sum::<i64>();
    }
    (ok_ids.iter().map(Vec::len).sum(), total)
}

pub fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("local addr");
    drop(listener);
    format!("http://{addr}")
}

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

pub fn client() -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new()).build(connector)
}

/// A response read to its end.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Data frames with their arrival time since the request was sent.
    pub frames: Vec<(Duration, Bytes)>,
    /// The body ended with a transport error instead of a clean end.
    pub cut: bool,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn request_id(&self) -> String {
        self.header("x-tollgate-request-id")
            .unwrap_or_else(|| panic!("response without x-tollgate-request-id: {self:?}"))
            .to_string()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The SSE events as (name, data JSON).
    pub fn events(&self) -> Vec<(String, Value)> {
        parse_events(&self.text())
    }

    /// Whether the stream delivered `message_stop` and ended cleanly.
    pub fn complete_stream(&self) -> bool {
        !self.cut && self.events().iter().any(|(n, _)| n == "message_stop")
    }
}

/// Splits an SSE body into (event name, data JSON); tolerant of a trailing partial event.
pub fn parse_events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .filter_map(|event| {
            let mut name = String::new();
            let mut data = String::new();
            for line in event.lines() {
                if let Some(n) = line.strip_prefix("event:") {
                    name = n.trim().to_string();
                } else if let Some(d) = line.strip_prefix("data:") {
                    data.push_str(d.trim_start());
                }
            }
            let data = serde_json::from_str(&data).ok()?;
            Some((name, data))
        })
        .collect()
}

/// Sends `req` and reads the whole body frame by frame.
pub async fn send(client: &HttpClient, req: Request<Full<Bytes>>) -> Reply {
    tokio::time::timeout(HTTP_TIMEOUT, try_send(client, req))
        .await
        .expect("response within the timeout")
        .expect("request reaches the server")
}

/// Like [`send`], but a connection failure before the response head is an `Err`.
pub async fn try_send(
    client: &HttpClient,
    req: Request<Full<Bytes>>,
) -> Result<Reply, hyper_util::client::legacy::Error> {
    let sent = Instant::now();
    let resp = client.request(req).await?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let mut body = resp.into_body();
    let mut all = Vec::new();
    let mut frames = Vec::new();
    let mut cut = false;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Ok(data) = frame.into_data() {
                    all.extend_from_slice(&data);
                    frames.push((sent.elapsed(), data));
                }
            }
            Err(_) => {
                cut = true;
                break;
            }
        }
    }
    Ok(Reply {
        status,
        headers,
        body: Bytes::from(all),
        frames,
        cut,
    })
}

/// A `POST` of `body` to `url` with `key` as a Bearer token plus `headers`.
pub fn messages_request(
    url: &str,
    key: &str,
    body: impl Into<Bytes>,
    headers: &[(&str, &str)],
) -> Request<Full<Bytes>> {
    let mut b = Request::post(url)
        .header("content-type", "application/json")
        .header("anthropic-version", "2023-06-01")
        .header("authorization", format!("Bearer {key}"));
    for (name, value) in headers {
        b = b.header(*name, *value);
    }
    b.body(Full::new(body.into())).expect("valid request")
}

/// A minimal Messages body.
pub fn simple_body(model: &str, stream: bool) -> String {
    format!(
        r#"{{"model":"{model}","max_tokens":256,"stream":{stream},"messages":[{{"role":"user","content":"Say hello."}}]}}"#
    )
}

/// A Messages body with a cache breakpoint, as Claude Code sends on every turn.
pub fn cached_body(model: &str, stream: bool) -> String {
    format!(
        r#"{{"model":"{model}","max_tokens":256,"stream":{stream},"system":[{{"type":"text","text":"You are a coding agent.","cache_control":{{"type":"ephemeral"}}}}],"messages":[{{"role":"user","content":[{{"type":"text","text":"Say hello.","cache_control":{{"type":"ephemeral"}}}}]}}]}}"#
    )
}

/// Sends raw bytes on a fresh connection and returns everything the server answers until it
/// closes; for requests the HTTP client cannot express (e.g. chunked bodies of a chosen shape).
pub async fn raw_http(url: &str, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = url.strip_prefix("http://").expect("http URL");
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream.write_all(request).await?;
        let mut out = Vec::new();
        // The server may close before reading the whole request; what it answered still counts.
        let _ = stream.read_to_end(&mut out).await;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&out).into_owned())
    };
    tokio::time::timeout(HTTP_TIMEOUT, exchange)
        .await
        .expect("raw exchange within the timeout")
        .expect("raw exchange")
}
