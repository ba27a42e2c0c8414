//! A gateway killed with SIGKILL while streams are in flight: every response a client received
//! whole must be in the journal after a restart, exactly once.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Gateway, UPSTREAM_KEY, client, messages_request, simple_body, try_send};
use tollgate_testkit::{ScriptedUpstream, UpstreamOptions};

const CLIENTS: usize = 48;
/// Complete responses to wait for before the kill: a few rounds per client, so that the
/// journal holds records from several writer batches and the kill lands mid-stream.
const COMPLETE_BEFORE_KILL: usize = 4 * CLIENTS;

/// What one client saw of one request.
struct Outcome {
    request_id: String,
    complete: bool,
    /// The body ended cleanly but without `message_stop`: a truncated answer passed off as whole.
    silently_truncated: bool,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn complete_responses_survive_kill9_exactly_once() {
    let upstream = ScriptedUpstream::start(UpstreamOptions::new(UPSTREAM_KEY))
        .await
        .unwrap();
    let mut gw = Gateway::start(&upstream.url()).await;
    let key = gw.create_key("crash", "ops").await;
    let url = format!("{}/v1/messages", gw.url);
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));

    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (url, key, stop, done) = (url.clone(), key.clone(), stop.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            // One client per task, so a dead pooled connection only affects its own requests.
            let c = client();
            let mut seen = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let req = messages_request(
                    &url,
                    &key,
                    simple_body("claude-sonnet-4-5", true),
                    &[("x-mock-scenario", "slow:20")],
                );
                let reply =
                    match tokio::time::timeout(Duration::from_secs(15), try_send(&c, req)).await {
                        Ok(Ok(reply)) => reply,
                        // Refused or reset: the gateway is gone.
                        Ok(Err(_)) => break,
                        Err(_) => panic!("a request hung for 15 s"),
                    };
                let Some(id) = reply.header("x-tollgate-request-id") else {
                    continue;
                };
                let complete = reply.status == 200 && reply.complete_stream();
                if complete {
                    done.fetch_add(1, Ordering::Relaxed);
                }
                seen.push(Outcome {
                    request_id: id.to_string(),
                    complete,
                    silently_truncated: reply.status == 200
                        && !reply.cut
                        && !reply.complete_stream(),
                });
                if reply.cut {
                    break;
                }
            }
            seen
        }));
    }

    let deadline = Instant::now() + Duration::from_secs(30);
    while done.load(Ordering::Relaxed) < COMPLETE_BEFORE_KILL {
        assert!(
            Instant::now() < deadline,
            "only {} complete responses in 30 s",
            done.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    gw.kill9();
    stop.store(true, Ordering::Relaxed);

    let mut outcomes = Vec::new();
    for t in tasks {
        let seen = tokio::time::timeout(Duration::from_secs(20), t)
            .await
            .expect("clients finish after the kill")
            .expect("client task");
        outcomes.extend(seen);
    }
    let complete: Vec<&str> = outcomes
        .iter()
        .filter(|o| o.complete)
        .map(|o| o.request_id.as_str())
        .collect();
    let interrupted = outcomes.len() - complete.len();
    let truncated: Vec<&str> = outcomes
        .iter()
        .filter(|o| o.silently_truncated)
        .map(|o| o.request_id.as_str())
        .collect();
    assert!(
        truncated.is_empty(),
        "streams ended cleanly without message_stop: {truncated:?}"
    );
    assert!(
        interrupted > 0,
        "no stream was in flight when the gateway was killed"
    );

    gw.restart().await;
    let logs = gw.logs_with(&complete, Duration::from_secs(20)).await;
    assert!(logs.len() < 1000, "the journal outgrew the logs query");

    let mut per_id: HashMap<&str, Vec<&Value>> = HashMap::new();
    for rec in &logs {
        per_id
            .entry(rec["id"].as_str().expect("record id"))
            .or_default()
            .push(rec);
    }
    let duplicated: Vec<&&str> = per_id
        .iter()
        .filter(|(_, recs)| recs.len() > 1)
        .map(|(id, _)| id)
        .collect();
    assert!(
        duplicated.is_empty(),
        "request ids journaled more than once: {duplicated:?}"
    );
    for id in &complete {
        let rec = per_id[id][0];
        assert_eq!(rec["status"], 200, "{rec}");
        assert_eq!(rec["error_type"], Value::Null, "{rec}");
        assert_eq!(rec["input_tokens"], 120, "{rec}");
        assert_eq!(rec["output_tokens"], 30, "{rec}");
        assert_eq!(rec["user"], "crash", "{rec}");
        assert_eq!(rec["stream"], true, "{rec}");
    }
    eprintln!(
        "{} complete and {interrupted} interrupted responses; {} journal records after restart",
        complete.len(),
        logs.len()
    );
}
