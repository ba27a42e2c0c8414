//! The behaviour suite on the in-process store.

#![allow(clippy::unwrap_used)]

mod limits_common;

use limits_common as suite;
use std::sync::Arc;
use tollgate_govern::limits::{CounterStore, ManualClock, MemoryStore};

fn store() -> (Arc<dyn CounterStore>, Arc<ManualClock>) {
    let clock = suite::clock_at_minute_start();
    (Arc::new(MemoryStore::new(clock.clone())), clock)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hard_cap_holds_under_concurrency() {
    let (s, _) = store();
    suite::hard_cap_holds_under_concurrency(&[s]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn standard_mode_overshoot_is_bounded() {
    let (s, _) = store();
    suite::standard_mode_overshoot_is_bounded(&[s]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn budgets_are_all_or_nothing() {
    let (s, clock) = store();
    suite::budgets_are_all_or_nothing(&[s], &clock).await;
}

#[tokio::test]
async fn settle_counts_a_higher_actual() {
    let (s, _) = store();
    suite::settle_counts_a_higher_actual(s.as_ref()).await;
}

#[tokio::test]
async fn release_frees_room() {
    let (s, _) = store();
    suite::release_frees_room(s.as_ref()).await;
}

#[tokio::test]
async fn expired_reservations_free_budget() {
    let (s, clock) = store();
    suite::expired_reservations_free_budget(s.as_ref(), &clock).await;
}

#[tokio::test]
async fn periods_reset_at_local_boundaries() {
    let (s, clock) = store();
    suite::periods_reset_at_local_boundaries(s.as_ref(), &clock).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rate_limit_admits_exactly_the_limit() {
    let (s, clock) = store();
    suite::rate_limit_admits_exactly_the_limit(&[s], &clock).await;
}

#[tokio::test]
async fn token_rate_counts_recorded_usage() {
    let (s, clock) = store();
    suite::token_rate_counts_recorded_usage(s.as_ref(), &clock).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrency_leases_cap_and_expire() {
    let (s, clock) = store();
    suite::concurrency_leases_cap_and_expire(&[s], &clock).await;
}

#[tokio::test]
async fn odd_inputs_are_handled() {
    let (s, _) = store();
    suite::odd_inputs_are_handled(s.as_ref()).await;
}
