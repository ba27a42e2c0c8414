//! The throwaway services start, answer and clean up after themselves.

use std::process::Command;
use tollgate_testkit::services::{PostgresServer, RedisServer};

#[test]
fn postgres_starts_with_a_database_and_answers_sql() {
    let pg = PostgresServer::start();
    pg.create_database("tollgate_test");
    let out = Command::new("/usr/bin/psql")
        .arg(pg.url("tollgate_test"))
        .args(["-tAc", "SELECT 40 + 2"])
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "42");
}

#[test]
fn redis_starts_on_a_free_port() {
    let r = RedisServer::start();
    assert!(r.url().starts_with("redis://127.0.0.1:"));
}
