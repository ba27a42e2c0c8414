//! Assembling the gateway: configuration, data directory, admin credential, state, routes.

use crate::config::{
    Config, CounterBackend, GovernanceSection, StoreBackend, StoreFailure, StoreSection,
};
use crate::state::{AppState, Limits};
use crate::{admin, listener, pipeline};
use arc_swap::ArcSwap;
use axum::Router;
use axum::routing::get;
use futures_util::FutureExt;
use futures_util::future::Either;
use http::{Request, Response};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tollgate_govern::admission::{Counters, OnStoreFailure, StoreErrorHook};
use tollgate_govern::alerts::{AlertEvent, AlertKind};
use tollgate_govern::limits::{
    Clock, CounterStore, MemoryStore, RedisConfig, RedisStore, SystemClock,
};
use tollgate_govern::policy_set::PolicySet;
use tollgate_govern::{Identities, generate_admin_key, hash_key};
use tollgate_ledger::PriceTable;
use tollgate_ledger::journal::{Journal, JournalConfig, JournalReader};
use tollgate_providers::betas::BetaTable;
use tollgate_providers::{ProviderConfig, ProviderKind, UpstreamClientOptions};
use tollgate_routing::{Catalog, Routes};
use tollgate_store::{Backend, Store};
use tower::ServiceExt;

/// What `tollgate serve` was asked for on the command line.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    pub config: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
}

/// Default config file, read when present and no `--config` is given.
pub const DEFAULT_CONFIG: &str = "tollgate.toml";
/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "tollgate-data";
/// File holding the admin credential inside the data directory.
pub const ADMIN_KEY_FILE: &str = "admin.key";
/// Environment variable naming the bootstrap admin credential: registered as an org admin
/// when the store has no admin credential yet (how a cluster's replicas share one), and read
/// by the CLI.
pub const ADMIN_KEY_ENV: &str = "TOLLGATE_ADMIN_KEY";
/// Shortest bootstrap admin credential accepted from the environment.
const MIN_ADMIN_KEY_LEN: usize = 32;

/// Resolves the configuration: an explicit file, else `./tollgate.toml`, else embedded
/// defaults with an `anthropic` provider when `ANTHROPIC_API_KEY` is set.
pub fn resolve_config(opts: &ServeOptions) -> Result<Config, String> {
    let mut config = match &opts.config {
        Some(p) => Config::load(p).map_err(|e| e.to_string())?,
        None if Path::new(DEFAULT_CONFIG).exists() => {
            Config::load(Path::new(DEFAULT_CONFIG)).map_err(|e| e.to_string())?
        }
        None => Config::default(),
    };
    if config.providers.is_empty()
        && let Ok(key) = std::env::var("ANTHROPIC_API_KEY")
        && !key.is_empty()
    {
        config.providers.push(ProviderConfig {
            name: "anthropic".into(),
            kind: ProviderKind::Anthropic,
            base_url: std::env::var("TOLLGATE_ANTHROPIC_BASE_URL").ok(),
            api_key: Some(key),
            ..Default::default()
        });
    }
    if let Some(l) = opts.listen {
        config.server.listen = l;
    }
    Ok(config)
}

/// Makes sure the store has a bootstrap admin credential and says where it is.
///
/// - `TOLLGATE_ADMIN_KEY` set: registered as an org admin if the store has no admin credential
///   yet (its first start); otherwise left alone, so the variable can never promote or revive
///   a credential. Nothing is written to disk.
/// - else `<data-dir>/admin.key` exists: registered (already there on every start but the
///   first).
/// - else on a shared store that already has admin credentials (another replica created
///   them): nothing is minted; the operator uses the cluster's key.
/// - else a new key is created, printed once on standard error and stored with mode 0600.
fn ensure_admin_key(
    data_dir: &Path,
    store: &Store,
    from_env: Option<String>,
) -> Result<(), String> {
    let db = |e: tollgate_store::StoreError| e.to_string();
    if let Some(key) = from_env
        && !key.trim().is_empty()
    {
        let key = key.trim();
        if store.has_admin_credentials().map_err(db)? {
            tracing::info!(
                "admin credentials already exist; {ADMIN_KEY_ENV} is not registered again"
            );
        } else if key.len() < MIN_ADMIN_KEY_LEN {
            return Err(format!(
                "{ADMIN_KEY_ENV} must be at least {MIN_ADMIN_KEY_LEN} characters (e.g. `openssl rand -hex 32`)"
            ));
        } else {
            store.add_admin_credential(&hash_key(key)).map_err(db)?;
            tracing::info!("registered {ADMIN_KEY_ENV} as the bootstrap admin credential");
        }
        return Ok(());
    }
    let path = data_dir.join(ADMIN_KEY_FILE);
    let key = match std::fs::read_to_string(&path) {
        Ok(k) => k.trim().to_string(),
        Err(_)
            if store.backend() == Backend::Postgres
                && store.has_admin_credentials().map_err(db)? =>
        {
            tracing::info!(
                "the shared store already holds admin credentials: use the cluster's admin key ({ADMIN_KEY_ENV} or admin.key of the replica that created it); no admin.key is created here"
            );
            return Ok(());
        }
        Err(_) => {
            let k = generate_admin_key();
            write_private(&path, &k)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            eprintln!("admin key: {k}");
            eprintln!("(shown once; also stored in {})", path.display());
            k
        }
    };
    store.add_admin_credential(&hash_key(&key)).map_err(db)
}

/// Opens the store `[store]` names: `tollgate.db` in the data directory, or the shared
/// Postgres database (the URL's password never reaches a message).
fn open_store(cfg: &StoreSection, data_dir: &Path) -> Result<Store, String> {
    match (cfg.backend, &cfg.url) {
        (StoreBackend::Postgres, Some(url)) => {
            let timeout = Duration::from_secs(cfg.connect_timeout_secs);
            let store = Store::open_postgres(url, cfg.max_connections, timeout)
                .map_err(|e| format!("store: {e}"))?;
            tracing::info!(url = %tollgate_store::redact_url(url), "entities in Postgres (cluster mode)");
            Ok(store)
        }
        (StoreBackend::Postgres, None) => Err("[store] backend = \"postgres\" needs url".into()),
        (StoreBackend::Sqlite, _) => {
            Store::open(&data_dir.join("tollgate.db")).map_err(|e| format!("store: {e}"))
        }
    }
}

/// Writes a new file readable by its owner only; fails if it exists.
pub(crate) fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(contents.as_bytes())?;
    f.write_all(b"\n")
}

/// Builds the shared state from a configuration and data directory.
pub async fn build_state(config: Config, data_dir: &Path) -> Result<Arc<AppState>, String> {
    std::fs::create_dir_all(data_dir)
        .map_err(|e| format!("cannot create data dir {}: {e}", data_dir.display()))?;
    let store = Arc::new(open_store(&config.store, data_dir)?);
    // Read before any snapshot is built, so a change landing meanwhile is seen at the first
    // poll.
    let seen = store.change_seq().map_err(|e| format!("store: {e}"))?;
    ensure_admin_key(data_dir, &store, std::env::var(ADMIN_KEY_ENV).ok())?;
    let vault = crate::vault::Vault::open_for(data_dir, &store, config.providers.clone())?;
    let mut prices = PriceTable::builtin();
    prices
        .apply_overrides(&config.prices)
        .map_err(|e| format!("prices: {e}"))?;
    let mut upstreams = Vec::new();
    let mut betas = std::collections::HashMap::new();
    for p in &config.providers {
        if betas.contains_key(&p.name) {
            return Err(format!("provider name '{}' is used twice", p.name));
        }
        upstreams.push(tollgate_providers::build(p).map_err(|e| e.to_string())?);
        let mut table = BetaTable::builtin();
        table
            .apply_overrides(p.kind, &p.betas)
            .map_err(|e| format!("provider '{}': betas: {e}", p.name))?;
        betas.insert(p.name.clone(), table);
    }
    let catalog = Catalog::new(config.models.clone())?;
    // `cheapest` compares list prices per million input plus output tokens.
    let price_of = |model: &str| {
        prices
            .lookup(model)
            .map(|p| (p.base.input.0 + p.base.output.0).max(0) as u64)
    };
    let routes = Routes::compile(
        upstreams,
        &config.routes,
        &config.routing,
        &catalog,
        &price_of,
    )
    .map_err(|e| format!("routes: {e}"))?;
    let mut jcfg = JournalConfig::in_dir(data_dir);
    jcfg.commit_interval = std::time::Duration::from_millis(config.journal.commit_interval_ms);
    let journal = Journal::open(&jcfg).map_err(|e| format!("journal: {e}"))?;
    let journal_reader =
        Arc::new(JournalReader::open(&jcfg.db_path).map_err(|e| format!("journal: {e}"))?);
    let s = &config.server;
    let limits = Limits {
        max_body_bytes: s.max_body_bytes,
        request_body_timeout: Duration::from_secs(s.request_body_timeout_secs),
        upstream_idle_timeout: Duration::from_secs(s.upstream_idle_timeout_secs),
        body_capture: config
            .journal
            .store_bodies
            .then_some(config.journal.body_cap_bytes),
    };
    let client_options = UpstreamClientOptions {
        connect_timeout: Duration::from_secs(s.upstream_connect_timeout_secs),
        ..Default::default()
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let alerts = crate::alerts::Alerts::start(&config.alerts, store.clone())?;
    let counters = counters(&config.governance, clock.clone(), alerts.clone()).await?;
    let state = Arc::new(AppState {
        config,
        identities: Identities::default(),
        store,
        journal,
        journal_reader,
        prices,
        routes,
        catalog,
        betas,
        client_options,
        limits,
        policies: ArcSwap::from_pointee(PolicySet::default()),
        counters,
        clock,
        alerts,
        vault,
        refreshing: std::sync::Mutex::new(()),
    });
    state.refresh_identities().map_err(|e| e.to_string())?;
    state.refresh_policies().map_err(|e| e.to_string())?;
    let every = Duration::from_millis(state.config.store.poll_interval_ms);
    crate::watch::spawn(&state, seen, every)
        .map_err(|e| format!("cannot start the store watcher: {e}"))?;
    Ok(state)
}

/// The counter stores `[governance]` asks for. The local store always exists: it is the whole
/// store on a single node and the fallback for rate limits when Redis is unreachable.
async fn counters(
    g: &GovernanceSection,
    clock: Arc<dyn Clock>,
    alerts: crate::alerts::Alerts,
) -> Result<Counters, String> {
    let local: Arc<dyn CounterStore> = Arc::new(MemoryStore::new(clock.clone()));
    let store: Arc<dyn CounterStore> = match (g.counters, &g.redis_url) {
        (CounterBackend::Redis, Some(url)) => Arc::new(
            RedisStore::connect(RedisConfig::new(url.clone()), clock.clone())
                .await
                .map_err(|e| format!("[governance] redis: {e}"))?,
        ),
        _ => local.clone(),
    };
    Ok(Counters {
        store,
        local,
        on_failure: match g.on_store_failure {
            StoreFailure::FailClosed => OnStoreFailure::FailClosed,
            StoreFailure::FailOpen => OnStoreFailure::FailOpen,
        },
        ttl: Duration::from_secs(g.reservation_ttl_secs),
        on_store_error: Some(store_down_alert(alerts, clock)),
    })
}

/// Alerts that the shared counter store is down, at most once per ten minutes per replica (it
/// cannot be deduplicated through the store that is down).
fn store_down_alert(alerts: crate::alerts::Alerts, clock: Arc<dyn Clock>) -> StoreErrorHook {
    let last = Arc::new(std::sync::atomic::AtomicI64::new(i64::MIN));
    Arc::new(move |e| {
        let now = clock.now().0;
        let prev = last.load(std::sync::atomic::Ordering::Relaxed);
        if prev != i64::MIN && now.saturating_sub(prev) < 600_000 {
            return;
        }
        if last
            .compare_exchange(
                prev,
                now,
                std::sync::atomic::Ordering::Relaxed,
                std::sync::atomic::Ordering::Relaxed,
            )
            .is_err()
        {
            return;
        }
        alerts.send(AlertEvent {
            kind: AlertKind::CounterStoreUnavailable,
            policy: String::new(),
            policy_id: String::new(),
            period: None,
            threshold_percent: None,
            spent_usd: None,
            cap_usd: None,
            hard: None,
            session_id: None,
            team: None,
            user: None,
            request_id: None,
            message: format!("the shared counter store is unreachable ({e}); hard budgets follow [governance] on_store_failure, rate limits count per replica"),
            at_unix_ms: now,
        });
    })
}

const HELLO: &str = "/api/hello";
const HEALTHZ: &str = "/healthz";
const INFERENCE_PROFILES: &str = "/bedrock/inference-profiles";
const ADMIN: &str = "/admin/v1";

/// The HTTP routes of the gateway: the fixed endpoints and the admin API, with the model API as
/// the fallback for every other path.
pub fn router(state: Arc<AppState>) -> Router {
    let model_api = {
        let state = state.clone();
        move |req: axum::extract::Request| pipeline::handle(state, req)
    };
    Router::new()
        .route(HELLO, get(|| async { "" }).head(|| async { "" }))
        .route(HEALTHZ, get(|| async { "ok" }))
        // Claude Code on Bedrock lists inference profiles at start-up; the gateway maps model
        // ids itself (`[[models]]`), so it offers none and Claude Code keeps its own ids.
        .route(
            INFERENCE_PROFILES,
            get(|| async {
                (
                    [(http::header::CONTENT_TYPE, "application/json")],
                    r#"{"inferenceProfileSummaries":[]}"#,
                )
            }),
        )
        .nest(ADMIN, admin::router(state))
        .fallback(model_api)
        // Turns every handler into a route once; a router served without it does that, and
        // boxes a clone of the handler, on every request.
        .with_state(())
}

/// Whether `path` may be one of the router's own endpoints rather than the model API.
fn router_path(path: &str) -> bool {
    path == HELLO
        || path == HEALTHZ
        || path == INFERENCE_PROFILES
        || path
            .strip_prefix(ADMIN)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// What each connection serves. Model API requests go to the pipeline directly: through the
/// router, each one would also pay for its fallback dispatch (the handler's 8 KB future boxed
/// and copied, URL parameters inserted into the request's extensions), about ten allocations.
/// Every other path goes through [`router`], which still hands what it does not match to the
/// pipeline.
pub fn service(
    state: Arc<AppState>,
) -> impl hyper::service::Service<
    Request<hyper::body::Incoming>,
    Response = Response<axum::body::Body>,
    Error = std::convert::Infallible,
    Future: Send + 'static,
> + Clone
+ Send
+ 'static {
    let router = router(state.clone());
    hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
        let req = req.map(axum::body::Body::new);
        if router_path(req.uri().path()) {
            Either::Left(router.clone().oneshot(req))
        } else {
            Either::Right(pipeline::handle(state.clone(), req).map(Ok))
        }
    })
}

/// Runs `tollgate serve` until SIGINT or SIGTERM.
pub async fn serve(opts: ServeOptions) -> Result<(), String> {
    let config = resolve_config(&opts)?;
    let data_dir = opts
        .data_dir
        .clone()
        .or_else(|| config.server.data_dir.clone())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
    let listen = config.server.listen;
    let header_timeout = Duration::from_secs(config.server.request_header_timeout_secs);
    let state = build_state(config, &data_dir).await?;
    if state.routes.provider_names().next().is_none() {
        tracing::warn!(
            "no provider configured: model requests will fail until ANTHROPIC_API_KEY is set or [[providers]] is added"
        );
    }
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let sockets = listener::bind_reuseport(listen, workers)
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let addr = sockets
        .first()
        .and_then(|s| s.local_addr().ok())
        .ok_or_else(|| format!("cannot listen on {listen}"))?;
    println!("tollgate listening on http://{addr}");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut threads = Vec::new();
    for (i, socket) in sockets.into_iter().enumerate() {
        let app = service(state.clone());
        let mut stop = stop_rx.clone();
        // Thread per core: each worker owns a listener socket (SO_REUSEPORT), a single-threaded
        // runtime and its own upstream pool.
        let t = spawn_runtime_thread(format!("tollgate-worker-{i}"), move || async move {
            let tcp = match tokio::net::TcpListener::from_std(socket) {
                Ok(t) => t,
                Err(e) => {
                    tracing::error!(error = %e, "cannot register the listener");
                    return;
                }
            };
            let stopped = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            listener::serve(tcp, app, header_timeout, Duration::from_secs(30), stopped).await;
        })
        .map_err(|e| format!("cannot start worker thread: {e}"))?;
        threads.push(t);
    }
    shutdown_signal().await;
    let _ = stop_tx.send(true);
    let _ = tokio::task::spawn_blocking(move || {
        for t in threads {
            let _ = t.join();
        }
    })
    .await;
    let journal = state.journal.clone();
    let _ = tokio::task::spawn_blocking(move || journal.shutdown()).await;
    Ok(())
}

/// The stack of each worker thread (std's default is 2 MiB).
const WORKER_STACK: usize = 32 << 20;

/// Runs the future `make` builds on a new thread with a single-threaded runtime of its own, so
/// its tasks never wake another thread.
pub(crate) fn spawn_runtime_thread<F>(
    name: String,
    make: impl FnOnce() -> F + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<()>>
where
    F: std::future::Future<Output = ()>,
{
    std::thread::Builder::new()
        .name(name.clone())
        // Request bodies may nest up to `MAX_NESTING` levels, which the validator recurses
        // through: about 3 MiB in release builds, 8 MiB in debug ones, on top of the
        // connection's own frames. Only the pages a request touches become resident.
        .stack_size(WORKER_STACK)
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt.block_on(make()),
                Err(e) => tracing::error!(error = %e, thread = %name, "cannot start a runtime"),
            }
        })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn only_the_fixed_endpoints_and_the_admin_api_go_through_the_router() {
        for path in [
            "/api/hello",
            "/healthz",
            "/bedrock/inference-profiles",
            "/admin/v1",
            "/admin/v1/keys",
        ] {
            assert!(router_path(path), "{path}");
        }
        for path in [
            "/v1/messages",
            "/admin/v1x",
            "/admin",
            "/proxy/admin/v1/keys",
            "/healthz/",
            "/",
        ] {
            assert!(!router_path(path), "{path}");
        }
    }

    #[test]
    fn the_bootstrap_key_from_the_environment_is_registered_once_and_written_nowhere() {
        let dir = std::env::temp_dir().join(format!(
            "tg-admin-env-{}-{}",
            std::process::id(),
            uuid::Uuid::now_v7().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::open(&dir.join("db.sqlite")).unwrap();
        let short = ensure_admin_key(&dir, &store, Some("too-short".into())).unwrap_err();
        assert!(short.contains("at least 32"), "{short}");
        let first = "tgadm_first-0123456789abcdef0123456789abcdef".to_string();
        ensure_admin_key(&dir, &store, Some(first.clone())).unwrap();
        assert!(store.admin_by_hash(&hash_key(&first)).unwrap().is_some());
        assert!(!dir.join(ADMIN_KEY_FILE).exists());
        // Later starts never add another one through the variable.
        let second = "tgadm_second-0123456789abcdef0123456789abcdef".to_string();
        ensure_admin_key(&dir, &store, Some(second.clone())).unwrap();
        assert!(store.admin_by_hash(&hash_key(&second)).unwrap().is_none());
        assert_eq!(store.list_admins().unwrap().len(), 1);
        // Without the variable one node still mints admin.key (its data directory is its
        // whole store).
        ensure_admin_key(&dir, &store, None).unwrap();
        let minted = std::fs::read_to_string(dir.join(ADMIN_KEY_FILE)).unwrap();
        assert!(
            store
                .admin_by_hash(&hash_key(minted.trim()))
                .unwrap()
                .is_some()
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
