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
    AdminBackend, Backoff, CancelRequest, CapabilityName, ClaimRequest, DependencyMode,
    DependencyPolicy, ExecutionId, Failure, Kind, Lane, ManualClock, Namespace, NewExecution,
    RetryPolicy, TagKey, Timestamp, UpstreamFailure, WorkerId,
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
    b.cancel(&claims[3].id, CancelRequest::because("operator"))
        .await
        .unwrap();
    b.cancel(&ids[7], CancelRequest::default()).await.unwrap();
    tick(11_000);
    every_partition(b, Pass::ReclaimExpiredLeases).await;
    tick(2_000);
    every_partition(b, Pass::PromoteDue).await;
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
    every_partition(b, Pass::ExpireDeadlines).await;
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
    out.push(events_of(b, &ids).await);
    out
}

/// The event histories of `ids`, each event as the HTTP API answers it,
/// with every id in a detail replaced by its place in `ids`.
async fn events_of(b: &dyn AdminBackend, ids: &[ExecutionId]) -> Value {
    let mut all = Vec::new();
    for id in ids {
        let events = match b.events(id, 0, 1_000).await {
            Ok(events) => events,
            // Deleted or trimmed by the scenario: nothing to compare.
            Err(baton_core::EngineError::NotFound { .. }) => Vec::new(),
            Err(e) => panic!("events of {id}: {e}"),
        };
        let events: Vec<Value> = events
            .iter()
            .map(|e| {
                let mut v = serde_json::to_value(baton_api::EventAnswer::from(e)).unwrap();
                if let Some(detail) = v["detail"].as_str().map(str::to_owned) {
                    let mut text = detail;
                    for (i, id) in ids.iter().enumerate() {
                        text = text.replace(&id.to_string(), &format!("#{i}"));
                    }
                    v["detail"] = Value::from(text);
                }
                v
            })
            .collect();
        all.push(Value::Array(events));
    }
    serde_json::json!({ "id": "events", "events": all })
}

#[tokio::test]
async fn every_backend_describes_the_same_history_identically() {
    let dir = tempfile::tempdir().unwrap();
    let mut results = Vec::new();
    for (name, backend, clock) in backends(dir.path()).await {
        results.push((name, history(backend.as_ref(), &clock).await));
    }
    let (_, first) = &results[0];
    let states: Vec<&str> = first
        .iter()
        .filter(|s| s["id"] != "events")
        .map(|s| s["state"].as_str().unwrap())
        .collect();
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
    assert_agree(&results);
}

/// A snapshot as JSON with every id it holds (its own, its parent, its
/// root, one named in its cancel reason) replaced by its place in `ids`:
/// ids differ between backends, places do not.
fn normalized(snap: &baton_core::ExecutionSnapshot, ids: &[baton_core::ExecutionId]) -> Value {
    let place = |id: &baton_core::ExecutionId| {
        ids.iter()
            .position(|x| x == id)
            .map_or(Value::Null, Value::from)
    };
    let mut v = serde_json::to_value(Snapshot::from(snap)).unwrap();
    v["id"] = place(&snap.id);
    v["root"] = place(&snap.root);
    v["parent"] = snap.parent.as_ref().map_or(Value::Null, place);
    if let Some(via) = snap.pause.as_ref().and_then(|p| p.via.as_ref()) {
        v["pause"]["via"] = place(via);
    }
    let places = |text: &str| {
        let mut text = text.to_owned();
        for (i, id) in ids.iter().enumerate() {
            text = text.replace(&id.to_string(), &format!("#{i}"));
        }
        Value::from(text)
    };
    if let Some(reason) = v["cancel_reason"].as_str().map(str::to_owned) {
        v["cancel_reason"] = places(&reason);
    }
    if let Some(detail) = v["waiting_on"]["detail"].as_str().map(str::to_owned) {
        v["waiting_on"]["detail"] = places(&detail);
    }
    v
}

/// The flow history: children with and without child keys, a grandchild,
/// a parent waiting for its children (captured while blocked), children
/// finishing every way, the parent released and completed, and a tree
/// cancelled with its descendants.
async fn flow_history(b: &dyn AdminBackend, clock: &ManualClock) -> Vec<Value> {
    use baton_core::ChildKey;
    let tick = |ms| clock.advance(Duration::from_millis(ms));
    let mut ids = Vec::new();
    let mut seen = Vec::new();
    let root = b.create(vec![exec("root").with_priority(9)]).await.unwrap()[0]
        .id
        .clone();
    ids.push(root.clone());
    tick(10);
    let lease = b.claim(claim(1)).await.unwrap().pop().unwrap();
    let kids = b
        .create(vec![
            exec("a")
                .with_parent(root.clone())
                .with_child_key(ChildKey::new("a").unwrap())
                .with_priority(3),
            exec("b").with_parent(root.clone()).with_priority(2),
            exec("c").with_parent(root.clone()).with_delay_ms(1_000),
        ])
        .await
        .unwrap();
    ids.extend(kids.iter().map(|k| k.id.clone()));
    let g = b
        .create(vec![exec("g").with_parent(kids[1].id.clone())])
        .await
        .unwrap()[0]
        .id
        .clone();
    ids.push(g.clone());
    tick(10);
    let blocked = b.wait_children(&lease.lease).await.unwrap();
    seen.push(normalized(&blocked, &ids));
    tick(10);
    let running = b.claim(claim(5)).await.unwrap();
    assert_eq!(running.len(), 3, "a, b and g");
    b.complete(&running[0].lease, b"1".to_vec()).await.unwrap();
    b.fail(&running[1].lease, Failure::permanent("no"))
        .await
        .unwrap();
    seen.push(normalized(&b.describe(&root).await.unwrap(), &ids));
    b.cancel(&g, CancelRequest::because("not needed"))
        .await
        .unwrap();
    tick(1_000);
    every_partition(b, Pass::PromoteDue).await;
    let c = b.claim(claim(5)).await.unwrap().pop().unwrap();
    tick(10);
    b.complete(&c.lease, b"3".to_vec()).await.unwrap();
    seen.push(normalized(&b.describe(&root).await.unwrap(), &ids));
    let again = b.claim(claim(5)).await.unwrap().pop().unwrap();
    assert_eq!(again.id, root);
    b.complete(&again.lease, b"\"joined\"".to_vec())
        .await
        .unwrap();
    // A second tree, cancelled whole.
    let other = b.create(vec![exec("other")]).await.unwrap()[0].id.clone();
    ids.push(other.clone());
    let below = b
        .create(vec![
            exec("x").with_parent(other.clone()),
            exec("y").with_parent(other.clone()),
        ])
        .await
        .unwrap();
    ids.extend(below.iter().map(|k| k.id.clone()));
    tick(10);
    let out = b
        .cancel(&other, CancelRequest::because("stop"))
        .await
        .unwrap();
    assert_eq!(out.cascaded, 2);
    // A third tree with dependencies: a join skipped by a failed upstream,
    // an `any_of` released by the one that completed, its claim carrying
    // both outcomes.
    let dag = b.create(vec![exec("dag")]).await.unwrap()[0].id.clone();
    ids.push(dag.clone());
    let ups: Vec<ExecutionId> = b
        .create(vec![
            exec("u1").with_parent(dag.clone()).with_priority(4),
            exec("u2").with_parent(dag.clone()).with_priority(3),
        ])
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.id)
        .collect();
    ids.extend(ups.iter().cloned());
    let any = DependencyPolicy::new(DependencyMode::AnyOf, UpstreamFailure::Fail);
    let joins = b
        .create(vec![
            exec("join")
                .with_parent(dag.clone())
                .with_dependencies(ups.clone()),
            exec("any")
                .with_parent(dag.clone())
                .with_dependencies(ups.clone())
                .with_dependency_policy(any),
        ])
        .await
        .unwrap();
    ids.extend(joins.iter().map(|j| j.id.clone()));
    seen.push(normalized(&b.describe(&joins[0].id).await.unwrap(), &ids));
    tick(10);
    let work = b.claim(claim(5)).await.unwrap();
    assert_eq!(work.len(), 3, "u1, u2 and the dag's root");
    b.complete(&work[0].lease, b"\"one\"".to_vec())
        .await
        .unwrap();
    b.fail(&work[1].lease, Failure::permanent("no"))
        .await
        .unwrap();
    let released = b.claim(claim(5)).await.unwrap().pop().unwrap();
    assert_eq!(released.id, joins[1].id);
    seen.push(Value::from(
        released
            .upstream
            .iter()
            .map(|(id, u)| {
                serde_json::json!([
                    ids.iter().position(|x| x == id),
                    u.state,
                    u.result
                        .as_ref()
                        .map(|r| String::from_utf8_lossy(r).into_owned())
                ])
            })
            .collect::<Vec<_>>(),
    ));
    for id in ids.clone() {
        seen.push(normalized(&b.describe(&id).await.unwrap(), &ids));
    }
    let tree = b.tree(&g, 100).await.unwrap();
    seen.push(Value::from(
        tree.items
            .iter()
            .map(|n| {
                serde_json::json!([
                    ids.iter().position(|x| *x == n.id),
                    n.parent
                        .as_ref()
                        .and_then(|p| ids.iter().position(|x| x == p)),
                    n.state,
                    n.kind.as_str()
                ])
            })
            .collect::<Vec<_>>(),
    ));
    seen.push(events_of(b, &ids).await);
    seen
}

#[tokio::test]
async fn every_backend_describes_the_same_flow_identically() {
    let dir = tempfile::tempdir().unwrap();
    let mut results = Vec::new();
    for (name, backend, clock) in backends(dir.path()).await {
        results.push((name, flow_history(backend.as_ref(), &clock).await));
    }
    let (_, first) = &results[0];
    assert_eq!(first[0]["state"], "blocked");
    assert_eq!(first[0]["waiting_on"]["reason"], "children");
    assert_eq!(first[0]["waiting_on"]["children"], 3, "a, b and c");
    assert_eq!(first[1]["waiting_on"]["children"], 1, "c");
    assert_eq!(first[2]["state"], "waiting", "released by its last child");
    assert_eq!(first[3]["state"], "blocked");
    assert_eq!(first[3]["waiting_on"]["reason"], "dependencies");
    assert_eq!(first[3]["waiting_on"]["dependencies"], 2);
    assert_eq!(
        first[4],
        serde_json::json!([[9, "completed", "\"one\""], [10, "failed", null]]),
        "the claim of `any` carries both upstream outcomes"
    );
    assert_agree(&results);
}

/// The waiting history: a suspension on two waitpoints resumed by its
/// second signal, a durable sleep resumed by the timeout pass, a signal
/// buffered before the suspend that satisfies it at once, a release, and a
/// timeout that fails; each snapshot is captured while suspended and after,
/// with the claims that follow and the signals held.
async fn wait_history(b: &dyn AdminBackend, clock: &ManualClock) -> Vec<Value> {
    use baton_api::{ClaimedExecution, SignalBody};
    use baton_core::{
        IdempotencyKey, NewSignal, OnTimeout, SignalName, SuspendOutcome, SuspendRequest,
    };
    let tick = |ms| clock.advance(Duration::from_millis(ms));
    let name = |n: &str| SignalName::new(n).unwrap();
    let created = b
        .create(vec![
            exec("both").with_priority(5),
            exec("sleep").with_priority(4),
            exec("early").with_priority(3),
            exec("release").with_priority(2),
            exec("time-out").with_priority(1),
        ])
        .await
        .unwrap();
    let ids: Vec<ExecutionId> = created.iter().map(|c| c.id.clone()).collect();
    let mut seen = Vec::new();
    let claim_json = |c: &baton_core::Claim| {
        let mut v = serde_json::to_value(ClaimedExecution::from(c)).unwrap();
        v["id"] = Value::from(ids.iter().position(|x| x == &c.id));
        v["lease"]["token"] = Value::Null;
        v
    };
    tick(100);
    let claims = b.claim(claim(5)).await.unwrap();
    assert_eq!(claims.len(), 5);
    tick(100);
    let both = SuspendRequest::signals([name("a"), name("b")])
        .with_timeout(Duration::from_secs(60), OnTimeout::Resume);
    b.suspend(&claims[0].lease, both).await.unwrap();
    b.suspend(
        &claims[1].lease,
        SuspendRequest::sleep(Duration::from_secs(1)),
    )
    .await
    .unwrap();
    let key = IdempotencyKey::new("k1").unwrap();
    let early = NewSignal::new(name("go"), b"{\"n\":1}".to_vec()).with_idempotency_key(key);
    b.signal(&ids[2], early).await.unwrap();
    tick(10);
    match b
        .suspend(&claims[2].lease, SuspendRequest::signals([name("go")]))
        .await
        .unwrap()
    {
        SuspendOutcome::Satisfied { snapshot, signals } => {
            seen.push(normalized(&snapshot, &ids));
            seen.push(Value::Array(
                signals
                    .iter()
                    .map(|s| serde_json::to_value(SignalBody::from(s)).unwrap())
                    .collect(),
            ));
        }
        other => panic!("expected satisfied at once: {other:?}"),
    }
    b.complete(&claims[2].lease, b"1".to_vec()).await.unwrap();
    // Steps recorded before the release are replayed by the next claim.
    use baton_core::{StepName, StepOutcome};
    let step = |n: &str| StepName::new(n).unwrap();
    b.record_step(
        &claims[3].lease,
        step("a"),
        StepOutcome::Done(b"[1, 2.50]".to_vec()),
    )
    .await
    .unwrap();
    b.record_step(
        &claims[3].lease,
        step("b"),
        StepOutcome::Failed("flaky".into()),
    )
    .await
    .unwrap();
    b.release(&claims[3].lease).await.unwrap();
    let fails = SuspendRequest::signals([name("x")])
        .with_timeout(Duration::from_millis(500), OnTimeout::Fail);
    b.suspend(&claims[4].lease, fails).await.unwrap();
    for id in &ids {
        seen.push(normalized(&b.describe(id).await.unwrap(), &ids));
    }
    tick(10);
    b.signal(&ids[0], NewSignal::new(name("a"), b"1".to_vec()))
        .await
        .unwrap();
    tick(10);
    b.signal(&ids[0], NewSignal::new(name("b"), b"2".to_vec()))
        .await
        .unwrap();
    tick(1_000);
    every_partition(b, Pass::TimeoutDue).await;
    for id in &ids {
        seen.push(normalized(&b.describe(id).await.unwrap(), &ids));
    }
    tick(10);
    let mut again = b.claim(claim(5)).await.unwrap();
    again.sort_by_key(|c| ids.iter().position(|x| x == &c.id));
    seen.push(Value::Array(again.iter().map(claim_json).collect()));
    let steps: Vec<Value> = b
        .steps(&ids[3])
        .await
        .unwrap()
        .iter()
        .map(|s| serde_json::to_value(baton_api::StepAnswer::from(s)).unwrap())
        .collect();
    seen.push(Value::Array(steps));
    for id in [&ids[0], &ids[2]] {
        let held: Vec<Value> = b
            .signals(id)
            .await
            .unwrap()
            .iter()
            .map(|s| serde_json::to_value(SignalBody::from(s)).unwrap())
            .collect();
        seen.push(Value::Array(held));
    }
    seen.push(events_of(b, &ids).await);
    seen
}

#[tokio::test]
async fn every_backend_describes_the_same_waits_identically() {
    let dir = tempfile::tempdir().unwrap();
    let mut results = Vec::new();
    for (name, backend, clock) in backends(dir.path()).await {
        results.push((name, wait_history(backend.as_ref(), &clock).await));
    }
    let (_, first) = &results[0];
    assert_eq!(first[0]["state"], "running", "satisfied at once");
    assert_eq!(first[1][0]["wait"], 1);
    let states: Vec<&str> = first[2..7]
        .iter()
        .map(|s| s["state"].as_str().unwrap())
        .collect();
    assert_eq!(
        states,
        [
            "suspended",
            "suspended",
            "completed",
            "waiting",
            "suspended"
        ]
    );
    assert_eq!(first[2]["waiting_on"]["reason"], "signals");
    assert_eq!(first[3]["waiting_on"]["reason"], "timer");
    let states: Vec<&str> = first[7..12]
        .iter()
        .map(|s| s["state"].as_str().unwrap())
        .collect();
    assert_eq!(
        states,
        ["waiting", "waiting", "completed", "waiting", "failed"]
    );
    let claims = first[12].as_array().unwrap();
    assert_eq!(claims.len(), 3, "both, sleep, release: {claims:?}");
    assert_eq!(claims[0]["waits"], serde_json::json!(["signalled"]));
    assert_eq!(claims[1]["waits"], serde_json::json!(["timed_out"]));
    assert_eq!(claims[2]["steps"], serde_json::json!({"a": [1, 2.50]}));
    assert_eq!(first[13][1]["failures"], 1);
    assert_agree(&results);
}

/// Asserts every backend's record equals the first one's, naming the first
/// field that differs.
fn assert_agree(results: &[(&str, Vec<Value>)]) {
    let (first_name, first) = &results[0];
    for (name, other) in &results[1..] {
        assert_eq!(first.len(), other.len(), "{first_name} and {name}");
        for (a, b) in first.iter().zip(other) {
            if let Some(fields) = a.as_object() {
                for (field, value) in fields {
                    assert_eq!(
                        Some(value),
                        b.get(field),
                        "{first_name} and {name} disagree on {field} of {}",
                        a["id"]
                    );
                }
            }
            assert_eq!(a, b, "{first_name} and {name}");
        }
    }
}

/// The memory history: custom status (a repeat keeping its version),
/// progress frames, key-value state set, overwritten and cleared, across a
/// reclaim and a completion; snapshots, state and frames captured after
/// each stage.
async fn memory_history(b: &dyn AdminBackend, clock: &ManualClock) -> Vec<Value> {
    use baton_core::StateKey;
    let tick = |ms| clock.advance(Duration::from_millis(ms));
    let key = |k: &str| StateKey::new(k).unwrap();
    let ids: Vec<ExecutionId> = b
        .create(vec![
            exec("memory"),
            exec("untouched").with_delay_ms(3_600_000),
        ])
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    let mut seen = Vec::new();
    tick(10);
    let first = b.claim(claim(1)).await.unwrap().pop().unwrap();
    let lease = &first.lease;
    tick(10);
    b.set_status(lease, br#"{"stage": "one"}"#.to_vec())
        .await
        .unwrap();
    b.set_status(lease, br#"{"stage": "one"}"#.to_vec())
        .await
        .unwrap();
    b.append_progress(lease, b"[1, 2.50]".to_vec())
        .await
        .unwrap();
    tick(10);
    b.set_state(lease, key("b"), Some(b"\"x\"".to_vec()))
        .await
        .unwrap();
    b.set_state(lease, key("a"), Some(b"{\"n\": 1}".to_vec()))
        .await
        .unwrap();
    b.set_state(lease, key("gone"), Some(b"0".to_vec()))
        .await
        .unwrap();
    b.set_state(lease, key("gone"), None).await.unwrap();
    seen.extend(memory_of(b, &ids).await);
    // The lease expires; the next attempt carries on.
    tick(10_000);
    every_partition(b, Pass::ReclaimExpiredLeases).await;
    tick(2_000);
    every_partition(b, Pass::PromoteDue).await;
    let second = b.claim(claim(1)).await.unwrap().pop().unwrap();
    let lease = &second.lease;
    tick(10);
    b.set_state(lease, key("a"), Some(b"{\"n\": 2}".to_vec()))
        .await
        .unwrap();
    b.append_progress(lease, b"\"two\"".to_vec()).await.unwrap();
    b.set_status(lease, br#"{"stage": "two"}"#.to_vec())
        .await
        .unwrap();
    seen.extend(memory_of(b, &ids).await);
    tick(10);
    b.complete(lease, b"true".to_vec()).await.unwrap();
    seen.extend(memory_of(b, &ids).await);
    seen.push(events_of(b, &ids).await);
    seen
}

#[tokio::test]
async fn every_backend_describes_the_same_memory_identically() {
    let dir = tempfile::tempdir().unwrap();
    let mut results = Vec::new();
    for (name, backend, clock) in backends(dir.path()).await {
        results.push((name, memory_history(backend.as_ref(), &clock).await));
    }
    let (_, first) = &results[0];
    // After the first attempt: status v1 (the repeat kept it), one frame,
    // keys a and b.
    assert_eq!(first[0]["status_version"], 1);
    assert_eq!(
        first[0]["custom_status"],
        serde_json::json!({"stage": "one"})
    );
    assert_eq!(first[1].as_array().unwrap().len(), 2);
    assert_eq!(first[2][0]["frame"], serde_json::json!([1, 2.50]));
    // After the second: a rewritten by attempt 2, two frames, status v2.
    assert_eq!(first[6]["status_version"], 2);
    assert_eq!(first[7][0]["attempt"], 2);
    assert_eq!(first[8].as_array().unwrap().len(), 2);
    // Completed: everything stays; the untouched one has nothing.
    assert_eq!(first[12]["state"], "completed");
    assert_eq!(first[12]["progress_seq"], 2);
    assert_eq!(first[15]["status_version"], 0);
    assert_agree(&results);
}

/// Each execution's snapshot, state and frames, as the API writes them.
async fn memory_of(b: &dyn AdminBackend, ids: &[ExecutionId]) -> Vec<Value> {
    use baton_api::{FrameAnswer, StateEntryAnswer};
    let mut out = Vec::new();
    for id in ids {
        out.push(normalized(&b.describe(id).await.unwrap(), ids));
        out.push(Value::Array(
            b.state(id)
                .await
                .unwrap()
                .iter()
                .map(|e| serde_json::to_value(StateEntryAnswer::from(e)).unwrap())
                .collect(),
        ));
        out.push(Value::Array(
            b.progress(id, 0, 1000)
                .await
                .unwrap()
                .iter()
                .map(|f| serde_json::to_value(FrameAnswer::from(f)).unwrap())
                .collect(),
        ));
    }
    out
}

/// Operator edits: a priority change (waiting and delayed), tags set,
/// overwritten and removed (a finished execution too), and a revoke that
/// retries, then one that fails on the last attempt.
async fn ops_history(b: &dyn AdminBackend, clock: &ManualClock) -> Vec<Value> {
    let tick = |ms| clock.advance(Duration::from_millis(ms));
    let tag = |k: &str| TagKey::new(k).unwrap();
    let ids: Vec<ExecutionId> = b
        .create(vec![exec("edited"), exec("delayed").with_delay_ms(60_000)])
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    let mut seen = Vec::new();
    tick(10);
    b.set_priority(&ids[0], 7).await.unwrap();
    b.set_priority(&ids[1], -2).await.unwrap();
    b.set_tag(&ids[0], tag("team"), Some("core".into()))
        .await
        .unwrap();
    b.set_tag(&ids[0], tag("team"), Some("ops".into()))
        .await
        .unwrap();
    b.set_tag(&ids[1], tag("gone"), Some("x".into()))
        .await
        .unwrap();
    b.set_tag(&ids[1], tag("gone"), None).await.unwrap();
    for id in &ids {
        seen.push(normalized(&b.describe(id).await.unwrap(), &ids));
    }
    tick(10);
    b.claim(claim(1)).await.unwrap();
    // The registry and what explain makes of it, while ids[0] runs.
    let workers: Vec<Value> = b
        .workers(&Namespace::new("parity").unwrap(), 10)
        .await
        .unwrap()
        .iter()
        .map(|w| serde_json::to_value(baton_api::WorkerAnswer::from(w)).unwrap())
        .collect();
    let explained = |e: baton_core::Explanation| serde_json::json!({"state": e.snapshot.state, "reason": e.reason, "detail": e.detail});
    let running = explained(b.explain(&ids[0]).await.unwrap());
    let delayed = explained(b.explain(&ids[1]).await.unwrap());
    tick(10);
    seen.push(normalized(&b.revoke(&ids[0]).await.unwrap(), &ids));
    tick(2_000);
    every_partition(b, Pass::PromoteDue).await;
    b.claim(claim(1)).await.unwrap();
    tick(10);
    seen.push(normalized(&b.revoke(&ids[0]).await.unwrap(), &ids));
    b.set_tag(&ids[0], tag("checked"), Some("yes".into()))
        .await
        .unwrap();
    for id in &ids {
        seen.push(normalized(&b.describe(id).await.unwrap(), &ids));
    }
    let attempts: Vec<Value> = b
        .attempts(&ids[0])
        .await
        .unwrap()
        .iter()
        .map(|a| serde_json::to_value(baton_api::Attempt::from(a)).unwrap())
        .collect();
    seen.push(Value::Array(attempts));
    seen.push(Value::Array(workers));
    seen.push(running);
    seen.push(delayed);
    seen.push(events_of(b, &ids).await);
    seen
}

#[tokio::test]
async fn every_backend_describes_the_same_edits_identically() {
    let dir = tempfile::tempdir().unwrap();
    let mut results = Vec::new();
    for (name, backend, clock) in backends(dir.path()).await {
        results.push((name, ops_history(backend.as_ref(), &clock).await));
    }
    let (_, first) = &results[0];
    assert_eq!(first[0]["priority"], 7);
    assert_eq!(first[0]["tags"], serde_json::json!({"team": "ops"}));
    assert_eq!(first[1]["tags"], serde_json::json!({}));
    assert_eq!(first[2]["state"], "delayed", "revoked, backing off");
    assert_eq!(first[3]["state"], "failed", "revoked on its last attempt");
    assert_eq!(first[4]["tags"]["checked"], "yes");
    assert_eq!(first[6][1]["outcome"], "lease_expired");
    assert_eq!(first[7][0]["worker_id"], "parity-worker");
    assert_eq!(first[8]["reason"], "leased");
    assert_eq!(first[9]["reason"], "delayed");
    assert_agree(&results);
}

/// Pause and replay: a tree pause over a running root and its waiting and
/// delayed children (the root's renew answers paused), a paused lane
/// listed and explained, a tree resume, then a cancel and a replay.
async fn pause_history(b: &dyn AdminBackend, clock: &ManualClock) -> Vec<Value> {
    let tick = |ms| clock.advance(Duration::from_millis(ms));
    let ns = Namespace::new("parity").unwrap();
    let main = Lane::new("main").unwrap();
    let root = b.create(vec![exec("root")]).await.unwrap()[0].id.clone();
    let lease = b.claim(claim(1)).await.unwrap()[0].lease.clone();
    let mut ids = vec![root.clone()];
    for c in b
        .create(vec![
            exec("a").with_parent(root.clone()),
            exec("b").with_parent(root.clone()).with_delay_ms(5_000),
        ])
        .await
        .unwrap()
    {
        ids.push(c.id);
    }
    let mut seen = Vec::new();
    tick(10);
    let out = b.pause(&root, baton_core::CancelScope::Tree).await.unwrap();
    seen.push(serde_json::json!({"cascaded": out.cascaded, "pending": out.cascade_pending}));
    for id in &ids {
        seen.push(normalized(&b.describe(id).await.unwrap(), &ids));
    }
    let renewed = b
        .renew(baton_core::RenewRequest {
            worker_id: WorkerId::new("parity-worker").unwrap(),
            lease_ttl: Duration::from_secs(10),
            leases: vec![lease],
        })
        .await
        .unwrap();
    seen.push(serde_json::to_value(renewed[0].status).unwrap());
    tick(10);
    b.pause_lane(&ns, &main).await.unwrap();
    tick(6_000);
    let out = b
        .resume(&root, baton_core::CancelScope::Tree)
        .await
        .unwrap();
    seen.push(serde_json::json!({"cascaded": out.cascaded, "pending": out.cascade_pending}));
    for id in &ids {
        seen.push(normalized(&b.describe(id).await.unwrap(), &ids));
    }
    let lanes: Vec<Value> = b
        .lanes(&ns)
        .await
        .unwrap()
        .iter()
        .map(|l| serde_json::to_value(baton_api::LaneAnswer::from(l)).unwrap())
        .collect();
    seen.push(Value::Array(lanes));
    let e = b.explain(&ids[1]).await.unwrap();
    seen.push(serde_json::json!({"reason": e.reason, "detail": e.detail}));
    b.resume_lane(&ns, &main).await.unwrap();
    tick(10);
    b.cancel(&root, baton_core::CancelRequest::because("stop"))
        .await
        .unwrap();
    tick(10);
    seen.push(normalized(&b.replay(&root).await.unwrap(), &ids));
    let attempts: Vec<Value> = b
        .attempts(&root)
        .await
        .unwrap()
        .iter()
        .map(|a| serde_json::to_value(baton_api::Attempt::from(a)).unwrap())
        .collect();
    seen.push(Value::Array(attempts));
    seen.push(events_of(b, &ids).await);
    seen
}

#[tokio::test]
async fn every_backend_describes_the_same_pauses_identically() {
    let dir = tempfile::tempdir().unwrap();
    let mut results = Vec::new();
    for (name, backend, clock) in backends(dir.path()).await {
        results.push((name, pause_history(backend.as_ref(), &clock).await));
    }
    let (_, first) = &results[0];
    assert_eq!(first[0]["cascaded"], 2);
    assert_eq!(
        first[1]["pause"],
        serde_json::json!({"from": "waiting", "via": null})
    );
    assert_eq!(
        first[2]["pause"],
        serde_json::json!({"from": "waiting", "via": 0})
    );
    assert_eq!(
        first[3]["pause"],
        serde_json::json!({"from": "delayed", "via": 0})
    );
    assert_eq!(first[4], "paused");
    assert_eq!(first[5]["cascaded"], 2);
    assert_eq!(first[6]["state"], "waiting");
    assert_eq!(
        first[8]["state"], "waiting",
        "its run_at passed while paused"
    );
    assert_eq!(first[9][0]["paused"], true);
    assert_eq!(first[10]["reason"], "lane_paused");
    assert_eq!(first[11]["state"], "waiting");
    assert_eq!(first[12][0]["outcome"], "paused");
    assert_agree(&results);
}

/// A scheduler pass the histories run over every partition.
#[derive(Clone, Copy)]
enum Pass {
    PromoteDue,
    ReclaimExpiredLeases,
    ExpireDeadlines,
    TimeoutDue,
}

/// Runs `pass` over every partition of `b` (100 at most each).
async fn every_partition(b: &dyn AdminBackend, pass: Pass) {
    for p in b.partitions().iter() {
        match pass {
            Pass::PromoteDue => b.promote_due(p, 100).await,
            Pass::ReclaimExpiredLeases => b.reclaim_expired_leases(p, 100).await,
            Pass::ExpireDeadlines => b.expire_deadlines(p, 100).await,
            Pass::TimeoutDue => b.timeout_due(p, 100).await,
        }
        .unwrap();
    }
}

/// Deletes: a member its unfinished dependent needs and an unfinished root
/// are refused (with the same texts), a forced delete of the flow reports
/// the same counts, a bulk delete by filter the same answer, and every
/// deleted execution reads `NotFound` afterwards.
async fn delete_history(b: &dyn AdminBackend, clock: &ManualClock) -> Vec<Value> {
    use baton_core::{BulkAction, BulkRequest, ListFilter};
    let tick = |ms| clock.advance(Duration::from_millis(ms));
    let root = b.create(vec![exec("root")]).await.unwrap()[0].id.clone();
    let up = b
        .create(vec![exec("up").with_parent(root.clone())])
        .await
        .unwrap()[0]
        .id
        .clone();
    let down = b
        .create(vec![
            exec("down")
                .with_parent(root.clone())
                .with_dependencies([up.clone()]),
        ])
        .await
        .unwrap()[0]
        .id
        .clone();
    let ids = vec![root.clone(), up.clone(), down.clone()];
    let place = |text: String| {
        let mut text = text;
        for (i, id) in ids.iter().enumerate() {
            text = text.replace(&id.to_string(), &format!("#{i}"));
        }
        Value::from(text)
    };
    let mut seen = Vec::new();
    // The root is claimed first (created first), then the upstream.
    let claims = b.claim(claim(2)).await.unwrap();
    tick(10);
    for c in &claims {
        if c.id == up {
            b.complete(&c.lease, b"1".to_vec()).await.unwrap();
        }
    }
    for (id, force) in [(&up, true), (&root, false)] {
        let err = b.delete(id, force).await.unwrap_err();
        seen.push(place(err.to_string()));
    }
    tick(10);
    let report = b.delete(&root, true).await.unwrap();
    seen.push(serde_json::json!([
        ids.iter().position(|x| *x == report.id),
        report.deleted,
        report.cancelled
    ]));
    for id in &ids {
        seen.push(Value::from(matches!(
            b.describe(id).await,
            Err(baton_core::EngineError::NotFound { .. })
        )));
    }
    let lone = b
        .create(vec![exec("lone"), exec("lone"), exec("lone")])
        .await
        .unwrap();
    b.cancel(&lone[0].id, baton_core::CancelRequest::default())
        .await
        .unwrap();
    let bulk = b
        .bulk(BulkRequest {
            action: BulkAction::Delete { force: false },
            filter: ListFilter::namespace(Namespace::new("parity").unwrap()),
            ids: Vec::new(),
            limit: 100,
            dry_run: false,
            cursor: None,
            actor: None,
        })
        .await
        .unwrap();
    seen.push(serde_json::json!([
        bulk.matched,
        bulk.changed,
        bulk.skipped.len()
    ]));
    seen
}

#[tokio::test]
async fn every_backend_deletes_identically() {
    let dir = tempfile::tempdir().unwrap();
    let mut results = Vec::new();
    for (name, backend, clock) in backends(dir.path()).await {
        results.push((name, delete_history(backend.as_ref(), &clock).await));
    }
    let (_, first) = &results[0];
    assert!(
        first[0].as_str().unwrap().contains("depend on it"),
        "{}",
        first[0]
    );
    assert_eq!(first[2], serde_json::json!([0, 3, true]));
    assert_eq!(first[6], serde_json::json!([3, 1, 2]));
    assert_agree(&results);
}

/// Retention rules and bulk units: the rules listed after sets and a
/// replace (and the refusal text of a bad keep), which executions a trim
/// removes under a namespace rule, a lane rule and the default (with the
/// passes' next due times), and the answers of a bulk tree cancel and of
/// units of cancels and replays.
async fn retention_and_units_history(b: &dyn AdminBackend, clock: &ManualClock) -> Vec<Value> {
    use baton_core::{BulkAction, BulkRequest, CancelPart, ListFilter};
    let minute = Duration::from_secs(60);
    let ns = Namespace::new("parity").unwrap();
    let mail = Lane::new("mail").unwrap();
    let mut seen = Vec::new();
    seen.push(serde_json::json!([
        b.set_retention(&ns, None, 10 * minute)
            .await
            .unwrap()
            .map(|d| d.as_millis() as u64),
        b.set_retention(&ns, Some(&mail), 60 * minute)
            .await
            .unwrap()
            .map(|d| d.as_millis() as u64),
        b.set_retention(&ns, None, 20 * minute)
            .await
            .unwrap()
            .map(|d| d.as_millis() as u64),
    ]));
    seen.push(Value::from(
        b.set_retention(&ns, None, Duration::ZERO)
            .await
            .unwrap_err()
            .to_string(),
    ));
    let rules: Vec<Value> = b
        .retention_rules()
        .await
        .unwrap()
        .iter()
        .map(|r| {
            serde_json::json!([
                r.namespace.as_str(),
                r.lane.as_ref().map(Lane::as_str),
                r.keep.as_millis() as u64
            ])
        })
        .collect();
    seen.push(Value::from(rules));
    let main = b.create(vec![exec("kept")]).await.unwrap()[0].id.clone();
    let mut in_mail = exec("kept");
    in_mail.lane = mail.clone();
    let lane_ruled = b.create(vec![in_mail]).await.unwrap()[0].id.clone();
    for id in [&main, &lane_ruled] {
        b.cancel(id, CancelRequest::default()).await.unwrap();
    }
    // The default (30 min) lies between the two rules.
    for step in [20, 20] {
        clock.advance(step * minute);
        let mut trimmed = 0;
        let mut next = Vec::new();
        for p in b.partitions().iter() {
            let r = b.trim_terminal(p, 30 * minute, 100).await.unwrap();
            trimmed += r.processed;
            next.extend(r.next_due.map(|t| t.to_string()));
        }
        next.sort();
        let mut alive = Vec::new();
        for id in [&main, &lane_ruled] {
            alive.push(b.describe(id).await.is_ok());
        }
        seen.push(serde_json::json!([trimmed, next, alive]));
    }
    // Units: a root with three children, one already cancelled.
    let root = b.create(vec![exec("root")]).await.unwrap()[0].id.clone();
    let mut kids = Vec::new();
    for _ in 0..3 {
        kids.push(
            b.create(vec![exec("kid").with_parent(root.clone())])
                .await
                .unwrap()[0]
                .id
                .clone(),
        );
    }
    b.cancel(&kids[0], CancelRequest::because("early"))
        .await
        .unwrap();
    let parts = b
        .cancel_units(&kids, &CancelRequest::because("unit"))
        .await
        .unwrap();
    seen.push(Value::from(
        parts
            .iter()
            .map(|p| match p {
                Ok(CancelPart::Cancelled) => "cancelled".to_string(),
                Ok(CancelPart::Finished) => "finished".to_string(),
                Ok(CancelPart::NotReached) => "not reached".to_string(),
                Err(e) => e.to_string().replace(&root.to_string(), "#root"),
            })
            .collect::<Vec<_>>(),
    ));
    let mut ids = kids.clone();
    ids.push(root.clone());
    let replays = b.replay_units(&ids).await.unwrap();
    let place = |text: String| {
        let mut text = text;
        for (i, id) in ids.iter().enumerate() {
            text = text.replace(&id.to_string(), &format!("#{i}"));
        }
        text
    };
    seen.push(Value::from(
        replays
            .into_iter()
            .map(|r| r.map_or_else(|e| place(e.to_string()), |()| "replayed".into()))
            .collect::<Vec<_>>(),
    ));
    let bulk = b
        .bulk(BulkRequest {
            action: BulkAction::Cancel(CancelRequest::because("bulk")),
            filter: ListFilter::namespace(ns.clone()).with_state(baton_core::State::Waiting),
            ids: Vec::new(),
            limit: 100,
            dry_run: false,
            cursor: None,
            actor: None,
        })
        .await
        .unwrap();
    seen.push(serde_json::json!([
        bulk.matched,
        bulk.changed,
        bulk.skipped.len()
    ]));
    seen
}

#[tokio::test]
async fn every_backend_retains_and_acts_in_units_identically() {
    let dir = tempfile::tempdir().unwrap();
    let mut results = Vec::new();
    for (name, backend, clock) in backends(dir.path()).await {
        results.push((
            name,
            retention_and_units_history(backend.as_ref(), &clock).await,
        ));
    }
    let (_, first) = &results[0];
    assert_eq!(first[0], serde_json::json!([null, null, 600_000]));
    assert_eq!(
        first[3][0], 1,
        "the namespace rule trims at 20 min: {}",
        first[3]
    );
    assert_eq!(first[3][2], serde_json::json!([false, true]));
    assert_eq!(
        first[4][2],
        serde_json::json!([false, true]),
        "the lane rule keeps 60 min"
    );
    assert_eq!(
        first[5],
        serde_json::json!(["finished", "cancelled", "cancelled"])
    );
    assert_agree(&results);
}

/// Limits: the same limits listed, the same claims taken under a cap per
/// tenant and a rate per kind, the same usage and the same `explain`
/// sentences for held-back work, the same claims after a run ends and
/// after the window moves, and the same answers to a removal.
async fn limits_history(b: &dyn AdminBackend, clock: &ManualClock) -> Vec<Value> {
    use baton_core::{Limit, Rate, TagKey};
    let ns = Namespace::new("parity").unwrap();
    let tenant = TagKey::new("tenant").unwrap();
    let cap = Limit {
        name: "parity-tenants".parse().unwrap(),
        namespace: ns.clone(),
        lane: None,
        key: "tag:tenant".parse().unwrap(),
        max_running: Some(1),
        rate: None,
        fair: false,
    };
    let rate = Limit {
        name: "parity-kinds".parse().unwrap(),
        namespace: ns.clone(),
        lane: Some(Lane::new("main").unwrap()),
        key: "kind".parse().unwrap(),
        max_running: None,
        rate: Some(Rate {
            count: 2,
            per: Duration::from_millis(1_000),
        }),
        fair: false,
    };
    let mut seen = Vec::new();
    for limit in [&cap, &rate] {
        seen.push(Value::from(b.set_limit(limit).await.unwrap().is_some()));
    }
    seen.push(
        serde_json::to_value(
            b.limits(Some(&ns))
                .await
                .unwrap()
                .iter()
                .map(baton_api::LimitAnswer::from)
                .collect::<Vec<_>>(),
        )
        .unwrap(),
    );
    let mut ids = Vec::new();
    for (i, (kind, who)) in [
        ("a", Some("t1")),
        ("a", Some("t1")),
        ("a", Some("t2")),
        ("b", None),
        ("a", None),
    ]
    .into_iter()
    .enumerate()
    {
        let mut e = exec(kind).with_priority(10 - i as i32);
        if let Some(who) = who {
            e = e.with_tag(tenant.clone(), who);
        }
        ids.push(b.create(vec![e]).await.unwrap()[0].id.clone());
    }
    let place = |id: &ExecutionId| ids.iter().position(|x| x == id);
    let claims = b.claim(claim(10)).await.unwrap();
    seen.push(Value::from(
        claims.iter().map(|c| place(&c.id)).collect::<Vec<_>>(),
    ));
    for name in [&cap.name, &rate.name] {
        let usage = b.limit_usage(name, 100).await.unwrap();
        seen.push(serde_json::json!(
            usage
                .iter()
                .map(|u| (u.key_value.clone(), u.running, u.window_claims))
                .collect::<Vec<_>>()
        ));
    }
    for id in &ids {
        let why = b.explain(id).await.unwrap();
        seen.push(serde_json::json!([why.reason, why.detail]));
    }
    clock.advance(Duration::from_millis(10));
    b.complete(&claims[0].lease, b"1".to_vec()).await.unwrap();
    let next = b.claim(claim(10)).await.unwrap();
    seen.push(Value::from(
        next.iter().map(|c| place(&c.id)).collect::<Vec<_>>(),
    ));
    clock.advance(Duration::from_millis(1_000));
    let later = b.claim(claim(10)).await.unwrap();
    seen.push(Value::from(
        later.iter().map(|c| place(&c.id)).collect::<Vec<_>>(),
    ));
    for name in [&cap.name, &rate.name, &cap.name] {
        seen.push(Value::from(b.remove_limit(name).await.unwrap().is_some()));
    }
    seen.push(Value::from(
        b.limit_usage(&cap.name, 10).await.unwrap_err().to_string(),
    ));
    seen
}

#[tokio::test]
async fn every_backend_limits_identically() {
    let dir = tempfile::tempdir().unwrap();
    let mut results = Vec::new();
    for (name, backend, clock) in backends(dir.path()).await {
        results.push((name, limits_history(backend.as_ref(), &clock).await));
    }
    let (_, first) = &results[0];
    // t1's first and t2's (kind a, 2 per second), then b; t1's second waits
    // for its tenant's slot, the untagged a for the window.
    assert_eq!(first[3], serde_json::json!([0, 2, 3]), "{first:?}");
    assert_eq!(first[6 + 1][0], "limited", "{first:?}");
    assert_eq!(first[6 + 4][0], "limited", "{first:?}");
    assert_agree(&results);
}

/// Fairness: the same fair limit answered, and the same rounds of claims
/// over keys of uneven backlog (the kinds of each claim, sorted: ties
/// within a turn are broken by id, which differs between runs). The work
/// shares its root's partition, so Valkey's per-partition turns are the
/// lane's.
async fn fairness_history(b: &dyn AdminBackend) -> Vec<Value> {
    use baton_core::Limit;
    let ns = Namespace::new("parity").unwrap();
    let limit = Limit {
        name: "parity-turns".parse().unwrap(),
        namespace: ns.clone(),
        lane: Some(Lane::new("main").unwrap()),
        key: "kind".parse().unwrap(),
        max_running: None,
        rate: None,
        fair: true,
    };
    let mut seen = vec![Value::from(b.set_limit(&limit).await.unwrap().is_some())];
    seen.push(
        serde_json::to_value(
            b.limits(Some(&ns))
                .await
                .unwrap()
                .iter()
                .map(baton_api::LimitAnswer::from)
                .collect::<Vec<_>>(),
        )
        .unwrap(),
    );
    let root = NewExecution::new(
        ns.clone(),
        Lane::new("roots").unwrap(),
        Kind::new("root").unwrap(),
        b"{}".to_vec(),
    );
    let root = b.create(vec![root]).await.unwrap()[0].id.clone();
    for (kind, n) in [("a", 4), ("b", 2), ("c", 1)] {
        let batch = (0..n)
            .map(|_| exec(kind).with_parent(root.clone()))
            .collect();
        b.create(batch).await.unwrap();
    }
    for _ in 0..3 {
        let mut kinds: Vec<String> = b
            .claim(claim(3))
            .await
            .unwrap()
            .iter()
            .map(|c| c.kind.to_string())
            .collect();
        kinds.sort();
        seen.push(Value::from(kinds));
    }
    seen.push(Value::from(
        b.remove_limit(&limit.name).await.unwrap().is_some(),
    ));
    seen
}

#[tokio::test]
async fn every_backend_takes_fair_turns_identically() {
    let dir = tempfile::tempdir().unwrap();
    let mut results = Vec::new();
    for (name, backend, _clock) in backends(dir.path()).await {
        results.push((name, fairness_history(backend.as_ref()).await));
    }
    let (_, first) = &results[0];
    assert_eq!(first[1][0]["fair"], true, "{first:?}");
    assert_eq!(
        first[2..5].to_vec(),
        vec![
            serde_json::json!(["a", "b", "c"]),
            serde_json::json!(["a", "a", "b"]),
            serde_json::json!(["a"]),
        ],
        "one of each key per round: {first:?}"
    );
    assert_agree(&results);
}

/// Routing: the same claims for workers of two version ranges and for a
/// session held by one of them, the same snapshots' session and version,
/// the same `explain` sentences, the same worker ranges, the same claims
/// once the lock lapses, and the same idempotency answers per session.
async fn routing_history(b: &dyn AdminBackend, clock: &ManualClock) -> Vec<Value> {
    use baton_core::{SessionName, Version, VersionRange};
    let v = |t: &str| t.parse::<Version>().unwrap();
    let s = |t: &str| SessionName::new(t).unwrap();
    let mut ids = Vec::new();
    for (version, session) in [
        (Some("1.5"), None),
        (Some("2.0"), None),
        (None, None),
        (None, Some("s1")),
        (None, Some("s1")),
        (Some("2"), Some("s2")),
    ] {
        let mut e = exec("job");
        if let Some(version) = version {
            e = e.with_version(v(version));
        }
        if let Some(session) = session {
            e = e.with_session(s(session));
        }
        ids.push(b.create(vec![e]).await.unwrap()[0].id.clone());
        clock.advance(Duration::from_millis(1));
    }
    let place = |id: &ExecutionId| ids.iter().position(|x| x == id);
    let as_worker = |who: &str, max: usize, range: VersionRange| {
        ClaimRequest::new(
            Namespace::new("parity").unwrap(),
            Lane::new("main").unwrap(),
            WorkerId::new(who).unwrap(),
            max,
        )
        .with_lease_ttl(Duration::from_secs(10))
        .with_versions(range)
    };
    let mut seen = Vec::new();
    let old = b
        .claim(as_worker(
            "old",
            3,
            VersionRange::between(None, Some(v("1.999"))),
        ))
        .await
        .unwrap();
    let new = b
        .claim(as_worker(
            "new",
            10,
            VersionRange::between(Some(v("2")), None),
        ))
        .await
        .unwrap();
    for claims in [&old, &new] {
        seen.push(serde_json::json!(
            claims
                .iter()
                .map(|c| (
                    place(&c.id),
                    c.session.as_ref().map(|s| s.to_string()),
                    c.version.as_ref().map(|v| v.to_string())
                ))
                .collect::<Vec<_>>()
        ));
    }
    for id in &ids {
        let snap = b.describe(id).await.unwrap();
        let why = b.explain(id).await.unwrap();
        seen.push(serde_json::json!([
            snap.session.map(|s| s.to_string()),
            snap.version.map(|v| v.to_string()),
            why.reason,
            why.detail
        ]));
    }
    let workers = b
        .workers(&Namespace::new("parity").unwrap(), 10)
        .await
        .unwrap();
    seen.push(serde_json::json!(
        workers
            .iter()
            .map(|w| (w.worker_id.to_string(), w.versions.to_string()))
            .collect::<Vec<_>>()
    ));
    for c in &old {
        b.complete(&c.lease, b"1".to_vec()).await.unwrap();
    }
    let held = b
        .claim(as_worker("new", 10, VersionRange::any()))
        .await
        .unwrap();
    seen.push(Value::from(held.len()));
    clock.advance(Duration::from_millis(30_000));
    let taken = b
        .claim(as_worker("new", 10, VersionRange::any()))
        .await
        .unwrap();
    seen.push(Value::from(
        taken.iter().map(|c| place(&c.id)).collect::<Vec<_>>(),
    ));
    let mut created = Vec::new();
    for session in [Some("s1"), Some("s1"), Some("s2"), None, None] {
        let mut e = exec("keyed").with_idempotency_key("k".parse().unwrap());
        if let Some(session) = session {
            e = e.with_session(s(session));
        }
        created.push(b.create(vec![e]).await.unwrap()[0].created);
    }
    seen.push(Value::from(created));
    seen
}

#[tokio::test]
async fn every_backend_routes_identically() {
    let dir = tempfile::tempdir().unwrap();
    let mut results = Vec::new();
    for (name, backend, clock) in backends(dir.path()).await {
        results.push((name, routing_history(backend.as_ref(), &clock).await));
    }
    let (_, first) = &results[0];
    assert_eq!(
        first[0],
        serde_json::json!([[0, null, "1.5"], [2, null, null], [3, "s1", null]]),
        "{first:?}"
    );
    assert_eq!(
        first[1],
        serde_json::json!([[1, null, "2.0"], [5, "s2", "2"]]),
        "s1 is old's: {first:?}"
    );
    assert_eq!(first[2 + 4][2], "session_owned_by", "{first:?}");
    assert_eq!(first[9], Value::from(0), "old keeps s1 for its idle time");
    assert_eq!(first[10], serde_json::json!([4]));
    assert_eq!(
        first[11],
        serde_json::json!([true, false, true, true, false])
    );
    assert_agree(&results);
}
