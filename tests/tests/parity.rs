//! Parity: one scripted history, replayed on every backend instance this
//! build can start, must give identical `describe` snapshots field by field
//! (ids aside, which each backend generates).
//!
//! The instances are SQLite on a file, SQLite in memory, Postgres (the test
//! kit's server, in a schema of its own), Valkey 9, Redis 7.0 and the
//! three-node Valkey Cluster (each under a key prefix of its own); a server
//! the test kit cannot start is skipped outside CI. Each new backend adds
//! itself to `backends()`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use baton_api::Snapshot;
use baton_core::{
    AdminBackend, Backoff, CapabilityName, ClaimRequest, Failure, Kind, Lane, ManualClock,
    Namespace, NewExecution, RetryPolicy, TagKey, Timestamp, WorkerId,
};
use baton_postgres::{PostgresBackend, PostgresConfig};
use baton_sqlite::{Location, SqliteBackend, SqliteConfig};
use baton_testkit::servers::{self, PostgresServer, RedisServer};
use baton_valkey::{ValkeyBackend, ValkeyConfig};
use serde_json::Value;

const START: &str = "2030-01-01T00:00:00Z";

async fn backends(
    dir: &std::path::Path,
) -> Vec<(&'static str, Arc<dyn AdminBackend>, Arc<ManualClock>)> {
    let mut out: Vec<(&'static str, Arc<dyn AdminBackend>, Arc<ManualClock>)> = Vec::new();
    for (name, location) in [
        ("sqlite-file", Location::File(dir.join("parity.db"))),
        ("sqlite-memory", Location::Memory),
    ] {
        let clock = Arc::new(ManualClock::new(START.parse().unwrap()));
        let b = SqliteBackend::open(SqliteConfig::new(location).with_clock(clock.clone()))
            .await
            .unwrap();
        out.push((name, Arc::new(b), clock));
    }
    if let Some(server) = servers::postgres().await {
        let clock = Arc::new(ManualClock::new(START.parse().unwrap()));
        let url = server.schema_url(&PostgresServer::unique_schema());
        let config = PostgresConfig::from_url(&url)
            .unwrap()
            .with_clock(clock.clone());
        let b = PostgresBackend::open(config).await.unwrap();
        out.push(("postgres", Arc::new(b), clock));
    }
    let valkeys = [
        ("valkey", servers::valkey().await),
        ("redis7", servers::redis7().await),
        ("valkey-cluster", servers::valkey_cluster().await),
    ];
    for (name, server) in valkeys {
        let Some(server) = server else { continue };
        let clock = Arc::new(ManualClock::new(START.parse().unwrap()));
        let url = format!("{}?prefix={}", server.url(), RedisServer::unique_prefix());
        let config = ValkeyConfig::from_url(&url)
            .unwrap()
            .with_clock(clock.clone());
        let b = ValkeyBackend::open(config).await.unwrap();
        out.push((name, Arc::new(b), clock));
    }
    out
}

fn exec(kind: &str) -> NewExecution {
    NewExecution::new(
        Namespace::new("parity").unwrap(),
        Lane::new("main").unwrap(),
        Kind::new(kind).unwrap(),
        format!("{{\"kind\":\"{kind}\"}}").into_bytes(),
    )
    .with_retry(RetryPolicy {
        max_attempts: 2,
        backoff: Backoff {
            initial_ms: 1_500,
            max_ms: 10_000,
            multiplier: 2.0,
            jitter: false,
        },
    })
}

fn claim(max: usize) -> ClaimRequest {
    ClaimRequest::new(
        Namespace::new("parity").unwrap(),
        Lane::new("main").unwrap(),
        WorkerId::new("parity-worker").unwrap(),
        max,
    )
    .with_lease_ttl(Duration::from_secs(10))
}

/// The history: every transition of the state machine once.
async fn history(b: &dyn AdminBackend, clock: &ManualClock) -> Vec<Value> {
    let tick = |ms| clock.advance(Duration::from_millis(ms));
    let deadline: Timestamp = "2030-01-01T01:00:00Z".parse().unwrap();
    let created = b
        .create(vec![
            exec("complete")
                .with_priority(9)
                .with_tag(TagKey::new("t").unwrap(), "v"),
            exec("retry-then-complete").with_priority(8),
            exec("fail-permanently").with_priority(7),
            exec("cancel-running").with_priority(6),
            exec("lease-expires").with_priority(5),
            exec("delayed").with_delay_ms(5_000),
            // No worker offers "gpu": it waits until its deadline passes.
            exec("expires")
                .with_deadline(deadline)
                .with_capability(CapabilityName::new("gpu").unwrap()),
            exec("cancel-waiting").with_priority(-1),
        ])
        .await
        .unwrap();
    let ids: Vec<_> = created.iter().map(|c| c.id.clone()).collect();
    tick(100);
    let claims = b.claim(claim(5)).await.unwrap();
    assert_eq!(claims.len(), 5);
    tick(100);
    b.complete(&claims[0].lease, b"{\"ok\":true}".to_vec())
        .await
        .unwrap();
    b.fail(&claims[1].lease, Failure::retryable("flaky"))
        .await
        .unwrap();
    b.fail(&claims[2].lease, Failure::permanent("bad input"))
        .await
        .unwrap();
    b.cancel(&claims[3].id, Some("operator".into()))
        .await
        .unwrap();
    b.cancel(&ids[7], None).await.unwrap();
    tick(11_000);
    for p in b.partitions().iter() {
        b.reclaim_expired_leases(p, 100).await.unwrap();
    }
    tick(2_000);
    for p in b.partitions().iter() {
        b.promote_due(p, 100).await.unwrap();
    }
    let again = b.claim(claim(5)).await.unwrap();
    assert_eq!(
        again.len(),
        3,
        "the retry, the reclaimed and the delayed one"
    );
    tick(50);
    for c in &again {
        b.complete(&c.lease, c.payload.clone()).await.unwrap();
    }
    clock.set(deadline);
    for p in b.partitions().iter() {
        b.expire_deadlines(p, 100).await.unwrap();
    }
    let mut out = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let mut snap =
            serde_json::to_value(Snapshot::from(&b.describe(id).await.unwrap())).unwrap();
        snap["id"] = Value::from(i);
        // Ids differ between backends: the root is compared by its place in
        // the history, like the execution itself.
        let root = snap["root"].as_str().map(str::to_owned);
        snap["root"] = root
            .and_then(|r| ids.iter().position(|x| x.to_string() == r))
            .map_or(Value::Null, Value::from);
        let attempts: Vec<Value> = b
            .attempts(id)
            .await
            .unwrap()
            .into_iter()
            .map(|a| {
                serde_json::json!([
                    a.number,
                    a.worker_id.as_str(),
                    a.started_at,
                    a.ended_at,
                    a.outcome,
                    a.error
                ])
            })
            .collect();
        snap["attempt_history"] = Value::Array(attempts);
        out.push(snap);
    }
    out
}

#[tokio::test]
async fn every_backend_describes_the_same_history_identically() {
    let dir = tempfile::tempdir().unwrap();
    let mut results = Vec::new();
    for (name, backend, clock) in backends(dir.path()).await {
        results.push((name, history(backend.as_ref(), &clock).await));
    }
    let (first_name, first) = &results[0];
    let states: Vec<&str> = first.iter().map(|s| s["state"].as_str().unwrap()).collect();
    assert_eq!(
        states,
        [
            "completed",
            "completed",
            "failed",
            "cancelled",
            "completed",
            "completed",
            "expired",
            "cancelled"
        ]
    );
    for (name, other) in &results[1..] {
        for (a, b) in first.iter().zip(other) {
            for (field, value) in a.as_object().unwrap() {
                assert_eq!(
                    Some(value),
                    b.get(field),
                    "{first_name} and {name} disagree on {field} of execution {}",
                    a["id"]
                );
            }
            assert_eq!(a, b);
        }
    }
}
