//! Cost of planning one request against a table of 100 routes, each with four conditional
//! branches (team, header, tags, body size) and three to four targets over ten providers.
//! Criterion measures the means; a plain loop afterwards prints p50/p99 of single plans.

use criterion::{Criterion, criterion_group, criterion_main};
use http::HeaderMap;
use std::hint::black_box;
use std::time::Instant;
use tollgate_providers::{SimulatorSettings, SimulatorUpstream, Upstream};
use tollgate_routing::{Catalog, RequestMeta, RouteConfig, Routes, RoutingConfig};

const ROUTES: usize = 100;
const PROVIDERS: usize = 10;

fn config() -> String {
    let strategies = ["fallback", "weighted", "least_latency", "least_busy"];
    let mut t = String::new();
    for i in 0..ROUTES {
        let p = |k: usize| format!("p{}", (i + k) % PROVIDERS);
        t.push_str(&format!(
            r#"
[[routes]]
name = "route-{i}"
match = ["model-{i}", "alias-{i}"]
strategy = "{strategy}"
targets = [{{ provider = "{a}", weight = 3 }}, {{ provider = "{b}" }}, {{ provider = "{c}", model = "m-{i}" }}]
  [[routes.branches]]
  when = {{ team = ["team-a-{i}", "team-b-{i}"], stream = true }}
  targets = [{{ provider = "{b}" }}, {{ provider = "{a}" }}]
  [[routes.branches]]
  when = {{ header = {{ "x-env" = "staging-{i}" }} }}
  targets = [{{ provider = "{c}" }}]
  [[routes.branches]]
  when = {{ tags = ["batch-{i}", "nightly"], min_input_bytes = 100000 }}
  strategy = "weighted"
  targets = [{{ provider = "{a}" }}, {{ provider = "{b}" }}, {{ provider = "{c}" }}, {{ provider = "{d}" }}]
  [[routes.branches]]
  when = {{ project = "proj-{i}", max_input_bytes = 1000 }}
  targets = [{{ provider = "{d}" }}]
"#,
            strategy = strategies[i % strategies.len()],
            a = p(0),
            b = p(1),
            c = p(2),
            d = p(3),
        ));
    }
    t
}

fn routes() -> Routes {
    #[derive(serde::Deserialize)]
    struct File {
        routes: Vec<RouteConfig>,
    }
    let file: File = toml::from_str(&config()).expect("valid bench config");
    let providers = (0..PROVIDERS)
        .map(|i| {
            Upstream::Simulator(SimulatorUpstream::new(
                &format!("p{i}"),
                SimulatorSettings::default(),
            ))
        })
        .collect();
    Routes::compile(
        providers,
        &file.routes,
        &RoutingConfig::default(),
        &Catalog::default(),
        &|_| None,
    )
    .expect("bench routes compile")
}

/// A Claude Code-like request on route `i`: a team, tags and headers that match no branch (so
/// every branch condition is evaluated), and a session id.
struct Req {
    headers: HeaderMap,
    tags: Vec<String>,
    model: String,
    session: String,
}

fn requests() -> Vec<Req> {
    (0..ROUTES * 10)
        .map(|n| {
            let mut headers = HeaderMap::new();
            headers.insert("x-env", "production".parse().expect("valid"));
            headers.insert("user-agent", "claude-cli/2.1.332".parse().expect("valid"));
            Req {
                headers,
                tags: vec!["interactive".into(), "cli".into()],
                model: format!("model-{}", n % ROUTES),
                session: format!("0b7e1c2a-4d5f-4e6a-8b9c-{n:012}"),
            }
        })
        .collect()
}

fn meta<'a>(r: &'a Req, session: bool) -> RequestMeta<'a> {
    RequestMeta {
        team: Some("platform"),
        user: Some("alice"),
        key_id: Some("key_01"),
        project: Some("checkout"),
        tags: &r.tags,
        stream: true,
        input_bytes: 120_000,
        session_id: session.then_some(r.session.as_str()),
        ..RequestMeta::for_model(&r.model, &r.headers)
    }
}

fn bench(c: &mut Criterion) {
    let table = routes();
    let reqs = requests();
    let mut g = c.benchmark_group("planner, 100 routes x 4 branches");
    for (name, session) in [("no session", false), ("with session (affinity)", true)] {
        let mut i = 0usize;
        g.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) % reqs.len();
                black_box(table.plan(black_box(&meta(&reqs[i], session))))
            })
        });
    }
    g.finish();

    // p50 / p99 of single plans (each timing includes one `Instant::now` pair, ~40 ns).
    for session in [false, true] {
        let mut samples: Vec<u128> = Vec::with_capacity(200_000);
        for n in 0..200_000 {
            let m = meta(&reqs[n % reqs.len()], session);
            let t = Instant::now();
            black_box(table.plan(&m).ok());
            samples.push(t.elapsed().as_nanos());
        }
        samples.sort_unstable();
        let q = |p: f64| samples[((samples.len() as f64 - 1.0) * p) as usize];
        println!(
            "plan, 100 routes, session={session}: p50 {} ns, p99 {} ns, p99.9 {} ns",
            q(0.50),
            q(0.99),
            q(0.999)
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
