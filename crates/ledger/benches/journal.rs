//! The journal's per-request work: appending a Claude-Code-shaped record to the local segment
//! (on the request path, before the last response byte), and committing records to SQLite (on
//! the writer thread, competing for the same cores).

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use tollgate_ledger::journal::{AttemptRecord, Journal, JournalConfig, JournalRecord};

fn record(i: u64) -> JournalRecord {
    JournalRecord {
        id: format!("req_019ac1f3a0b47d2e9c51{i:012x}"),
        started_at: "2026-11-26T02:10:11.123Z".into(),
        started_unix_ms: 1_795_659_011_123 + i as i64,
        duration_ms: 412.5,
        ttfb_ms: Some(380.25),
        status: 200,
        method: "POST".into(),
        path: "/v1/messages".into(),
        key_id: Some("key_01JBENCH0000000000000000".into()),
        org: Some("default".into()),
        team: Some("platform".into()),
        user: Some("alice@example.com".into()),
        project: Some("tollgate".into()),
        session_id: Some("6f1c2a9e-4b7d-4e21-9a3f-1c2d3e4f5a6b".into()),
        agent_id: Some("agent_7d2e9c51".into()),
        model: Some("claude-sonnet-4-5".into()),
        provider: Some("anthropic".into()),
        attempts: vec![AttemptRecord {
            provider: "anthropic".into(),
            model: Some("claude-sonnet-4-5".into()),
            status: Some(200),
            latency_ms: 380.1,
            kind: "first".into(),
            ..Default::default()
        }],
        stream: true,
        input_tokens: 12,
        output_tokens: 840,
        cache_creation_input_tokens: 2_048,
        cache_read_input_tokens: 96_000,
        cost_nanos: Some(49_524_000),
        cost_usd: Some("0.049524".into()),
        bytes_in: 121_344,
        bytes_out: 9_812,
        user_agent: Some("claude-cli/2.1.332 (external, cli)".into()),
        upstream_request_id: Some("req_011CVbench0000000000000".into()),
        ..Default::default()
    }
}

fn bench(c: &mut Criterion) {
    // Each measurement gets its own journal: the first one appends faster than the writer
    // commits, and the backlog it leaves would be charged to the second.
    let open = |name: &str| {
        let dir = std::env::temp_dir().join(format!(
            "tollgate-journal-bench-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        (
            Journal::open(&JournalConfig::in_dir(&dir)).expect("journal opens"),
            dir,
        )
    };
    let mut g = c.benchmark_group("journal");
    let (journal, dir) = open("append");
    let mut i = 0;
    g.bench_function("append one record (segment write)", |b| {
        b.iter_batched(
            || {
                i += 1;
                record(i)
            },
            |r| journal.append(black_box(r)),
            BatchSize::SmallInput,
        )
    });
    journal.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
    let (journal, dir) = open("commit");
    // CPU time of every thread of the process, so the writer thread's SQLite work counts and its
    // idle ticks do not.
    g.bench_function("append and commit, CPU per record", |b| {
        b.iter_custom(|iters| {
            let before = process_cpu();
            for _ in 0..iters {
                i += 1;
                let _ = journal.append(record(i));
            }
            journal.flush();
            process_cpu() - before
        })
    });
    g.finish();
    journal.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}

/// CPU time used so far by all threads of this process (Linux schedstat, nanoseconds).
fn process_cpu() -> std::time::Duration {
    let mut ns = 0u64;
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for t in tasks.flatten() {
            let stat = std::fs::read_to_string(t.path().join("schedstat")).unwrap_or_default();
            ns += stat
                .split_whitespace()
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
        }
    }
    std::time::Duration::from_nanos(ns)
}

criterion_group!(benches, bench);
criterion_main!(benches);
