//! A large flow on every backend: one parent with 10,000 children (a flow
//! lives in one partition, so this is the single-partition hot spot at its
//! worst). Three figures per backend, the median of `LARGE_FLOW_RUNS` runs
//! (default 3), each run on a fresh flow:
//!
//! - **create**: the parent's 10,000 children, in create calls of 1,000;
//! - **fan-in**: the parent waits for its children (`wait_children`), then
//!   the children are claimed (1,000 at a time) and completed (each its own
//!   `complete`, 64 in flight) until the last one releases the parent —
//!   measured until the parent is `waiting` again;
//! - **cancel tree**: a cancel of a parent with 10,000 waiting children
//!   (the first `cascade_budget` in its own call), then the cascade pass
//!   (`cascade_due`, 1,000 per step) until nothing is queued;
//! - **release dependents**: the complete of one upstream that 10,000
//!   members of its flow depend on (the first `cascade_budget` released in
//!   its own call), then the cascade pass until nothing is queued and every
//!   dependent is `waiting`.
//!
//! SQLite (a file, `synchronous=FULL`), Postgres and Valkey 9 from the test
//! kit; a backend whose server cannot be started is skipped with a notice.
//! `LARGE_FLOW_DEBUG=1` prints every cascade-pass step and the release's
//! parts on standard error.
//! Run with `cargo bench -p baton-benches --bench large_flow`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use baton_core::{
    AdminBackend, CancelRequest, ClaimRequest, ExecutionId, Kind, Lane, Namespace, NewExecution,
    State, WorkerId,
};
use baton_testkit::servers::{PostgresServer, RedisServer, postgres, valkey};
use futures_util::future::join_all;

const CHILDREN: usize = 10_000;
const BATCH: usize = 1_000;

fn ns() -> Namespace {
    Namespace::new("flow-bench").unwrap()
}

fn new_exec(lane: &Lane, kind: &str) -> NewExecution {
    NewExecution::new(ns(), lane.clone(), Kind::new(kind).unwrap(), b"{}".to_vec())
}

/// Creates a parent and claims it; answers its id and lease.
async fn running_parent(
    b: &Arc<dyn AdminBackend>,
    lane: &Lane,
) -> (ExecutionId, baton_core::Claim) {
    let id = b.create(vec![new_exec(lane, "parent")]).await.unwrap()[0]
        .id
        .clone();
    let claim = b
        .claim(ClaimRequest::new(
            ns(),
            lane.clone(),
            WorkerId::new("w").unwrap(),
            1,
        ))
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(claim.id, id);
    (id, claim)
}

async fn create_children(b: &Arc<dyn AdminBackend>, lane: &Lane, parent: &ExecutionId) {
    for _ in 0..CHILDREN / BATCH {
        let batch = (0..BATCH)
            .map(|_| new_exec(lane, "child").with_parent(parent.clone()))
            .collect();
        b.create(batch).await.unwrap();
    }
}

struct Run {
    create: Duration,
    fan_in: Duration,
    cancel: Duration,
    release: Duration,
}

/// Works the cascade queue of `partition` off, 1,000 a step.
async fn cascade_pass(b: &Arc<dyn AdminBackend>, partition: baton_core::PartitionId) {
    loop {
        let t = Instant::now();
        let step = b.cascade_due(partition, BATCH).await.unwrap();
        if std::env::var("LARGE_FLOW_DEBUG").is_ok() {
            eprintln!("  step {} in {:?}", step.processed, t.elapsed());
        }
        if step.next_due.is_none() {
            break;
        }
    }
}

/// One upstream with 10,000 dependents: answers the time from its
/// complete until every dependent is released.
async fn release_dependents(b: &Arc<dyn AdminBackend>) -> Duration {
    let lane = Lane::new(format!("d{}", uuid::Uuid::new_v4().simple())).unwrap();
    let (root, _) = running_parent(b, &lane).await;
    let up = b
        .create(vec![new_exec(&lane, "up").with_parent(root.clone())])
        .await
        .unwrap()[0]
        .id
        .clone();
    for _ in 0..CHILDREN / BATCH {
        let batch = (0..BATCH)
            .map(|_| {
                new_exec(&lane, "dependent")
                    .with_parent(root.clone())
                    .with_dependencies([up.clone()])
            })
            .collect();
        b.create(batch).await.unwrap();
    }
    let worker = WorkerId::new("w").unwrap();
    let claim = b
        .claim(ClaimRequest::new(ns(), lane.clone(), worker, 1))
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(claim.id, up, "the dependents are blocked");
    let t = Instant::now();
    b.complete(&claim.lease, b"1".to_vec()).await.unwrap();
    let completed = t.elapsed();
    cascade_pass(b, root.partition()).await;
    let release = t.elapsed();
    if std::env::var("LARGE_FLOW_DEBUG").is_ok() {
        eprintln!("release: complete {completed:?}, all {release:?}");
    }
    let counts = b.counts(&ns()).await.unwrap();
    assert_eq!(counts[&lane].waiting as usize, CHILDREN);
    release
}

async fn one_run(b: &Arc<dyn AdminBackend>) -> Run {
    let lane = Lane::new(format!("l{}", uuid::Uuid::new_v4().simple())).unwrap();
    let (parent, lease) = running_parent(b, &lane).await;
    let t = Instant::now();
    create_children(b, &lane, &parent).await;
    let create = t.elapsed();

    let t = Instant::now();
    let blocked = b.wait_children(&lease.lease).await.unwrap();
    assert_eq!(blocked.state, State::Blocked);
    let worker = WorkerId::new("w").unwrap();
    loop {
        let claims = b
            .claim(ClaimRequest::new(ns(), lane.clone(), worker.clone(), BATCH))
            .await
            .unwrap();
        if claims.is_empty() {
            break;
        }
        for chunk in claims.chunks(64) {
            join_all(chunk.iter().map(|c| b.complete(&c.lease, b"1".to_vec())))
                .await
                .into_iter()
                .for_each(|r| {
                    r.unwrap();
                });
        }
        if b.describe(&parent).await.unwrap().state == State::Waiting {
            break;
        }
    }
    assert_eq!(b.describe(&parent).await.unwrap().state, State::Waiting);
    let fan_in = t.elapsed();

    let lane = Lane::new(format!("c{}", uuid::Uuid::new_v4().simple())).unwrap();
    let root = b.create(vec![new_exec(&lane, "root")]).await.unwrap()[0]
        .id
        .clone();
    create_children(b, &lane, &root).await;
    let t = Instant::now();
    let out = b.cancel(&root, CancelRequest::default()).await.unwrap();
    if out.cascade_pending {
        cascade_pass(b, root.partition()).await;
    }
    let cancel = t.elapsed();
    let counts = b.counts(&ns()).await.unwrap();
    assert_eq!(counts[&lane].cancelled as usize, CHILDREN + 1);
    Run {
        create,
        fan_in,
        cancel,
        release: release_dependents(b).await,
    }
}

fn median(mut v: Vec<Duration>) -> (Duration, Duration, Duration) {
    v.sort();
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn show(name: &str, runs: &[Run]) {
    let fmt = |(m, lo, hi): (Duration, Duration, Duration)| {
        format!(
            "{:>7.0} ms [{:.0}–{:.0}]",
            m.as_secs_f64() * 1e3,
            lo.as_secs_f64() * 1e3,
            hi.as_secs_f64() * 1e3
        )
    };
    println!(
        "| {name} | {} | {} | {} | {} |",
        fmt(median(runs.iter().map(|r| r.create).collect())),
        fmt(median(runs.iter().map(|r| r.fan_in).collect())),
        fmt(median(runs.iter().map(|r| r.cancel).collect())),
        fmt(median(runs.iter().map(|r| r.release).collect())),
    );
}

async fn measure(name: &str, b: Arc<dyn AdminBackend>, runs: usize) {
    let mut all = Vec::with_capacity(runs);
    for _ in 0..runs {
        all.push(one_run(&b).await);
    }
    show(name, &all);
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is understood.
    let runs: usize = std::env::var("LARGE_FLOW_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        println!(
            "| backend | create 10,000 children | fan-in: 10,000 completes until the join is released \
             | cancel a 10,000-child tree | release 10,000 dependents of one upstream |"
        );
        println!("|---|---|---|---|---|");
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("flow.db").display());
        let sqlite = baton_sqlite::SqliteBackend::connect(&url).await.unwrap();
        measure("SQLite FULL", Arc::new(sqlite), runs).await;
        match postgres().await {
            Some(server) => {
                let url = server.schema_url(&PostgresServer::unique_schema());
                let pg = baton_postgres::PostgresBackend::connect(&url).await.unwrap();
                measure("Postgres", Arc::new(pg), runs).await;
            }
            None => eprintln!("large_flow: no Postgres server available; skipping"),
        }
        match valkey().await {
            Some(server) => {
                let url = format!("{}?prefix={}", server.url(), RedisServer::unique_prefix());
                let vk = baton_valkey::ValkeyBackend::connect(&url).await.unwrap();
                measure("Valkey 9", Arc::new(vk), runs).await;
            }
            None => eprintln!("large_flow: no Valkey server available; skipping"),
        }
    });
}
