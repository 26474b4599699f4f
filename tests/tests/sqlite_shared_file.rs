//! Several backend instances on one SQLite file, as when `baton serve` and a
//! CLI (or two engine processes) share a database: writers from every
//! instance and many tasks must never see "database is locked", and no
//! execution is claimed twice.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::sync::Arc;

use baton_core::{
    ClaimRequest, EngineBackend, Kind, Lane, Namespace, NewExecution, State, WorkerId,
};
use baton_sqlite::SqliteBackend;

fn new(ns: &str, i: usize) -> NewExecution {
    NewExecution::new(
        Namespace::new(ns).unwrap(),
        Lane::new("shared").unwrap(),
        Kind::new("k").unwrap(),
        i.to_string().into_bytes(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn instances_sharing_a_file_never_surface_lock_errors() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("shared.db").display());
    let mut instances = Vec::new();
    for _ in 0..3 {
        instances.push(Arc::new(SqliteBackend::connect(&url).await.unwrap()));
    }

    // 3 instances x 4 tasks x 25 creates of 4 executions each.
    let mut tasks = Vec::new();
    for (n, b) in instances.iter().enumerate() {
        for t in 0..4 {
            let b = b.clone();
            tasks.push(tokio::spawn(async move {
                for round in 0..25 {
                    let batch = (0..4)
                        .map(|i| new("shared-ns", n * 10_000 + t * 1000 + round * 10 + i))
                        .collect();
                    b.create(batch).await.unwrap();
                }
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }

    // Every instance claims concurrently until the lane is empty.
    let mut tasks = Vec::new();
    for (n, b) in instances.iter().enumerate() {
        for t in 0..3 {
            let b = b.clone();
            tasks.push(tokio::spawn(async move {
                let worker = WorkerId::new(format!("w{n}-{t}")).unwrap();
                let mut got = Vec::new();
                loop {
                    let req = ClaimRequest::new(
                        Namespace::new("shared-ns").unwrap(),
                        Lane::new("shared").unwrap(),
                        worker.clone(),
                        9,
                    );
                    let claims = b.claim(req).await.unwrap();
                    if claims.is_empty() {
                        break;
                    }
                    for c in claims {
                        b.complete(&c.lease, b"true".to_vec()).await.unwrap();
                        got.push(c.id);
                    }
                }
                got
            }));
        }
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let unique: HashSet<_> = all.iter().cloned().collect();
    assert_eq!(all.len(), 1200, "every execution claimed");
    assert_eq!(unique.len(), 1200, "no execution claimed twice");
    let counts = baton_core::AdminBackend::counts(
        instances[0].as_ref(),
        &Namespace::new("shared-ns").unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(
        counts[&Lane::new("shared").unwrap()].get(State::Completed),
        1200
    );
}

#[tokio::test]
async fn a_second_instance_sees_the_first_ones_writes_and_partition_count() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?partitions=8",
        dir.path().join("p.db").display()
    );
    let a = SqliteBackend::connect(&url).await.unwrap();
    let out = a.create(vec![new("seen", 1)]).await.unwrap();
    let plain = format!("sqlite://{}", dir.path().join("p.db").display());
    let b = SqliteBackend::connect(&plain).await.unwrap();
    assert_eq!(b.partitions().get(), 8, "recorded count is reused");
    assert_eq!(b.describe(&out[0].id).await.unwrap().state, State::Waiting);

    let wrong = format!(
        "sqlite://{}?partitions=16",
        dir.path().join("p.db").display()
    );
    let err = SqliteBackend::connect(&wrong).await.unwrap_err();
    assert!(
        matches!(err, baton_core::EngineError::Configuration { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("created with 8 partitions"),
        "{err}"
    );
}
