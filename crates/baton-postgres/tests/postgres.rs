//! Postgres-specific behaviour the shared conformance suite cannot see:
//! wake-ups across backend instances (processes), the recorded partition
//! count, concurrent first starts of one schema, and schemas kept apart.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use baton_core::{
    CancelRequest, ChildKey, ClaimRequest, EngineBackend, EngineBackendExt, EngineError, Kind,
    Lane, ManualClock, Namespace, NewExecution, PartitionCount, WorkerId,
};
use baton_postgres::{PostgresBackend, PostgresConfig};
use baton_testkit::servers::{self, PostgresServer};

fn exec(ns: &str, lane: &str) -> NewExecution {
    NewExecution::new(
        Namespace::new(ns).unwrap(),
        Lane::new(lane).unwrap(),
        Kind::new("job").unwrap(),
        b"{}".to_vec(),
    )
}

async fn open(url: &str) -> PostgresBackend {
    PostgresBackend::connect(url).await.unwrap()
}

/// A claimer waiting through one instance is woken by a submission through
/// another: two instances share nothing but the database, like two
/// processes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_work_wakes_on_submissions_of_another_instance() {
    let Some(server) = servers::postgres().await else {
        return;
    };
    let url = server.schema_url(&PostgresServer::unique_schema());
    let waiter_side = open(&url).await;
    let submitter = open(&url).await;
    assert!(waiter_side.capabilities().cross_process_wakeups);
    let ns = Namespace::new("wake").unwrap();
    let mut waiter = {
        let b = waiter_side.clone();
        let ns = ns.clone();
        tokio::spawn(async move {
            b.wait_for_work(
                &ns,
                &[Lane::new("main").unwrap()],
                Duration::from_secs(3_600),
            )
            .await
        })
    };
    // Submit until the waiter returns, so the test does not depend on when
    // its LISTEN began; the bound is liveness, not timing.
    for _ in 0..600 {
        submitter.create_one(exec("wake", "main")).await.unwrap();
        if let Ok(joined) = tokio::time::timeout(Duration::from_millis(50), &mut waiter).await {
            joined.unwrap().unwrap();
            return;
        }
    }
    waiter.abort();
    panic!("the waiter was never woken by the other instance's submissions");
}

/// The first start records the partition count; later starts without one
/// use it, and a different one is a configuration error.
#[tokio::test]
async fn partition_count_is_recorded_and_enforced() {
    let Some(server) = servers::postgres().await else {
        return;
    };
    let schema = PostgresServer::unique_schema();
    let url = server.schema_url(&schema);
    let first = open(&format!("{url}&partitions=32")).await;
    assert_eq!(first.partitions().get(), 32);
    let again = open(&url).await;
    assert_eq!(again.partitions().get(), 32);
    let wrong = PostgresBackend::open(
        PostgresConfig::from_url(&url)
            .unwrap()
            .with_partitions(PartitionCount::new(16).unwrap()),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(wrong, EngineError::Configuration { .. }),
        "{wrong:?}"
    );
    assert_eq!(first.applied_migrations().await.unwrap(), [1, 2, 3, 4]);
}

/// Several instances starting at once on a new schema migrate it once and
/// all come up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_starts_migrate_once() {
    let Some(server) = servers::postgres().await else {
        return;
    };
    let url = server.schema_url(&PostgresServer::unique_schema());
    let starts: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { PostgresBackend::connect(&url).await })
        })
        .collect();
    for start in starts {
        let backend = start.await.unwrap().unwrap();
        assert_eq!(backend.applied_migrations().await.unwrap(), [1, 2, 3, 4]);
    }
}

/// Two schemas of one database are two deployments: ids of one are unknown
/// to the other.
#[tokio::test]
async fn schemas_are_separate_deployments() {
    let Some(server) = servers::postgres().await else {
        return;
    };
    let a = open(&server.schema_url(&PostgresServer::unique_schema())).await;
    let b = open(&server.schema_url(&PostgresServer::unique_schema())).await;
    let created = a.create_one(exec("ns", "main")).await.unwrap();
    assert!(matches!(
        b.describe(&created.id).await,
        Err(EngineError::NotFound { .. })
    ));
    assert_eq!(a.describe(&created.id).await.unwrap().id, created.id);
}

/// Stored instants come from the backend's clock, never the server's.
#[tokio::test]
async fn timestamps_come_from_the_injected_clock() {
    let Some(server) = servers::postgres().await else {
        return;
    };
    let at = "2041-05-06T07:08:09.123Z".parse().unwrap();
    let clock = Arc::new(ManualClock::new(at));
    let backend = PostgresBackend::open(
        PostgresConfig::from_url(&server.schema_url(&PostgresServer::unique_schema()))
            .unwrap()
            .with_clock(clock),
    )
    .await
    .unwrap();
    let created = backend.create_one(exec("ns", "main")).await.unwrap();
    let snap = backend.describe(&created.id).await.unwrap();
    assert_eq!(snap.created_at, at);
    assert_eq!(snap.updated_at, at);
}

/// A tree cancel (the execution, then its children) and its children's
/// completes and failures (each child's parent first) running at the same
/// time never deadlock: no call answers `Contention`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tree_cancel_and_its_finishing_children_never_deadlock() {
    let Some(server) = servers::postgres().await else {
        return;
    };
    let url = server.schema_url(&PostgresServer::unique_schema());
    let backends = [open(&url).await, open(&url).await];
    for round in 0..15 {
        let b = &backends[0];
        let lane = format!("r{round}");
        let parent = b.create_one(exec("flow", &lane)).await.unwrap().id;
        let kids = (0..16)
            .map(|_| exec("flow", &lane).with_parent(parent.clone()))
            .collect();
        b.create(kids).await.unwrap();
        let request = ClaimRequest::new(
            Namespace::new("flow").unwrap(),
            Lane::new(&lane).unwrap(),
            WorkerId::new("w").unwrap(),
            100,
        );
        let claims: Vec<_> = b
            .claim(request)
            .await
            .unwrap()
            .into_iter()
            .filter(|c| c.id != parent)
            .collect();
        assert_eq!(claims.len(), 16);
        let mut calls = Vec::new();
        for (i, c) in claims.into_iter().enumerate() {
            let b = backends[i % 2].clone();
            calls.push(tokio::spawn(async move {
                if i % 3 == 0 {
                    b.fail(&c.lease, baton_core::Failure::permanent("x"))
                        .await
                        .map(drop)
                } else {
                    b.complete(&c.lease, b"1".to_vec()).await.map(drop)
                }
            }));
            if i == 8 {
                let b = backends[1].clone();
                let parent = parent.clone();
                calls.push(tokio::spawn(async move {
                    b.cancel(&parent, CancelRequest::default()).await.map(drop)
                }));
            }
        }
        for call in calls {
            match call.await.unwrap() {
                Ok(()) | Err(EngineError::LeaseLost { .. }) => {}
                Err(e) => panic!("round {round}: {e:?}"),
            }
        }
    }
}

/// The reclaim pass failing children for good (their parents counted
/// down) and a tree cancel of their parent at the same time never
/// deadlock either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tree_cancel_and_the_reclaim_pass_never_deadlock() {
    let Some(server) = servers::postgres().await else {
        return;
    };
    let url = server.schema_url(&PostgresServer::unique_schema());
    let backends = [open(&url).await, open(&url).await];
    for round in 0..10 {
        let b = &backends[0];
        let lane = format!("r{round}");
        let parent = b.create_one(exec("flow", &lane)).await.unwrap().id;
        let kids = (0..16)
            .map(|_| {
                exec("flow", &lane)
                    .with_parent(parent.clone())
                    .with_retry(baton_core::RetryPolicy::attempts(1))
            })
            .collect();
        b.create(kids).await.unwrap();
        let request = ClaimRequest::new(
            Namespace::new("flow").unwrap(),
            Lane::new(&lane).unwrap(),
            WorkerId::new("w").unwrap(),
            100,
        )
        .with_lease_ttl(Duration::from_millis(100));
        b.claim(request).await.unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
        let reclaim = {
            let b = backends[0].clone();
            let p = parent.partition();
            tokio::spawn(async move { b.reclaim_expired_leases(p, 1000).await.map(drop) })
        };
        let cancel = {
            let b = backends[1].clone();
            let parent = parent.clone();
            tokio::spawn(async move { b.cancel(&parent, CancelRequest::default()).await.map(drop) })
        };
        for call in [reclaim, cancel] {
            if let Err(e) = call.await.unwrap() {
                panic!("round {round}: {e:?}");
            }
        }
    }
}

/// Concurrent creates of one parent's child with one child key, through
/// several instances (processes), create exactly one child; every other
/// call answers it with `created: false` (none fails on the unique index).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_of_one_child_key_create_one_child() {
    let Some(server) = servers::postgres().await else {
        return;
    };
    let url = server.schema_url(&PostgresServer::unique_schema());
    let first = open(&url).await;
    let parent = first.create_one(exec("flow", "main")).await.unwrap().id;
    let mut backends = vec![first];
    for _ in 0..3 {
        backends.push(open(&url).await);
    }
    for round in 0..20 {
        let key = ChildKey::new(format!("shard-{round}")).unwrap();
        let calls: Vec<_> = (0..8)
            .map(|i| {
                let b = backends[i % backends.len()].clone();
                let child = exec("flow", "main")
                    .with_parent(parent.clone())
                    .with_child_key(key.clone());
                tokio::spawn(async move { b.create(vec![child]).await })
            })
            .collect();
        let mut outcomes = Vec::new();
        for call in calls {
            outcomes.extend(call.await.unwrap().unwrap());
        }
        assert_eq!(
            outcomes.iter().filter(|o| o.created).count(),
            1,
            "round {round}: {outcomes:?}"
        );
        assert!(
            outcomes.iter().all(|o| o.id == outcomes[0].id),
            "round {round}: {outcomes:?}"
        );
    }
}
