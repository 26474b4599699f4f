//! Postgres-specific behaviour the shared conformance suite cannot see:
//! wake-ups across backend instances (processes), the recorded partition
//! count, concurrent first starts of one schema, schemas kept apart,
//! concurrent writers of one flow (no deadlock, no lost release),
//! concurrent signals and timeouts of one suspended execution,
//! concurrent step records of one execution, change notifications
//! (sent only for watched executions, heard by other instances),
//! revokes, pauses and forced deletes racing the worker's own complete or
//! fail, lane pauses seen by (and lane resumes waking) other instances,
//! the event history (numbered once under concurrent writers, removed
//! with its execution, nothing written for an execution without it),
//! retention rules (the keep stamped per row of a batch, the count of
//! rules judged alone under concurrent writers), and the units of bulk
//! cancels and replays (ids refused one by one, concurrent cancels and
//! units, a deadlock answered `Contention` for the unit as a whole), and
//! limits (a cap held by claimers of separate instances, a limit set while
//! claims run, migration 13 on a schema at version 12, wake-ups when a
//! limit is removed), and sessions (claimers of separate instances never
//! share one, on the fast and the limited path; a renew extends a lock by
//! its stored idle time; the reclaim pass releases a dead worker's
//! sessions and sweeps lapsed locks within its limit), and fair limits
//! (concurrent creators of one key each given turns that still take
//! turns with another key; work of a namespace without fair limits left
//! in ready order, unstamped; a fair-only limit never taking a claim down
//! the limited path), and combined creates (at most two statements of an
//! instance running, the calls queued behind them sharing one, a refused
//! row's error reaching its own call only), and placement (a call's
//! executions outside flows and sessions in one partition, calls in
//! turn).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use baton_core::{
    AdminBackend, CancelRequest, ChildKey, ClaimRequest, Clock, DependencyMode, DependencyPolicy,
    EngineBackend, EngineBackendExt, EngineError, Kind, Lane, ManualClock, Namespace, NewExecution,
    PartitionCount, State, UpstreamFailure, WorkerId,
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

/// Every schema version this build knows, in order: what a schema it
/// opened has applied.
fn every_version() -> Vec<i64> {
    (1..=baton_postgres::latest_schema_version()).collect()
}

/// A claimer parked on `lane` of `ns` through `b`, with an hour's
/// timeout: it returns only when woken.
fn parked(
    b: &PostgresBackend,
    ns: &str,
    lane: &str,
) -> tokio::task::JoinHandle<baton_core::Result<()>> {
    let (b, ns, lane) = (
        b.clone(),
        Namespace::new(ns).unwrap(),
        Lane::new(lane).unwrap(),
    );
    tokio::spawn(async move {
        b.wait_for_work(&ns, &[lane], Duration::from_secs(3_600))
            .await
    })
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
    let mut waiter = parked(&waiter_side, "wake", "main");
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

/// Delayed work that comes due wakes a claimer of another instance: the
/// scheduler pass that promotes it tells the lane's claimers of every
/// process when it commits. The submissions are delayed, so nothing but
/// the promotion can wake the waiter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promotion_through_one_instance_wakes_claimers_of_another() {
    let Some(server) = servers::postgres().await else {
        return;
    };
    let url = server.schema_url(&PostgresServer::unique_schema());
    let waiter_side = open(&url).await;
    let (scheduler, clock) = open_clocked(&url).await;
    let mut waiter = parked(&waiter_side, "promote", "main");
    for round in 0..600 {
        let due = clock.now().saturating_add(Duration::from_secs(1));
        let made = scheduler
            .create_one(exec("promote", "main").with_run_at(due))
            .await
            .unwrap();
        assert_eq!(made.state, State::Delayed, "round {round}");
        // Nothing but the promotion may wake the waiter: a delayed
        // submission announces nothing.
        assert!(
            tokio::time::timeout(Duration::from_millis(20), &mut waiter)
                .await
                .is_err(),
            "the waiter was woken by a delayed submission (round {round})"
        );
        clock.advance(Duration::from_secs(2));
        let report = scheduler
            .promote_due(made.id.partition(), 100)
            .await
            .unwrap();
        assert_eq!(report.processed, 1, "round {round}");
        if let Ok(joined) = tokio::time::timeout(Duration::from_millis(50), &mut waiter).await {
            joined.unwrap().unwrap();
            return;
        }
    }
    waiter.abort();
    panic!("the waiter was never woken by the other instance's promotions");
}

/// A failure retried at once makes its work `waiting` again and wakes a
/// claimer of another instance once it committed. Each round submits and
/// claims before the waiter starts, so only the failure can wake it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_retried_at_once_wakes_claimers_of_another_instance() {
    let Some(server) = servers::postgres().await else {
        return;
    };
    let url = server.schema_url(&PostgresServer::unique_schema());
    let waiter_side = open(&url).await;
    let worker = open(&url).await;
    let ns = Namespace::new("retry").unwrap();
    let at_once = baton_core::RetryPolicy {
        max_attempts: 2,
        backoff: baton_core::Backoff {
            initial_ms: 0,
            max_ms: 0,
            multiplier: 1.0,
            jitter: false,
        },
    };
    for round in 0..20 {
        worker
            .create_one(exec("retry", "main").with_retry(at_once))
            .await
            .unwrap();
        let request = ClaimRequest::new(
            ns.clone(),
            Lane::new("main").unwrap(),
            WorkerId::new("w").unwrap(),
            1,
        );
        let claim = worker.claim(request).await.unwrap().pop().unwrap();
        let mut waiter = parked(&waiter_side, "retry", "main");
        // The waiter starts listening before it parks; give it the time,
        // and check it is still waiting (nothing else wakes this lane).
        tokio::time::sleep(Duration::from_millis(200)).await;
        if waiter.is_finished() {
            // Woken early (the listener's first connection wakes every
            // waiter): try again.
            continue;
        }
        let failed = worker
            .fail(&claim.lease, baton_core::Failure::retryable("again"))
            .await
            .unwrap();
        assert_eq!(failed.state, State::Waiting, "round {round}");
        match tokio::time::timeout(Duration::from_secs(10), &mut waiter).await {
            Ok(joined) => {
                joined.unwrap().unwrap();
                return;
            }
            Err(_) => {
                waiter.abort();
                panic!("round {round}: the other instance's retried failure woke nobody");
            }
        }
    }
    panic!("the waiter returned early in every round");
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
    assert_eq!(first.applied_migrations().await.unwrap(), every_version());
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
        assert_eq!(backend.applied_migrations().await.unwrap(), every_version());
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

/// Completes and failures of the upstreams of dependents in a three-level
/// flow (dependents under one branch waiting on upstreams under the other,
/// so telling them counts down parents across branches), through two
/// instances, with a tree cancel of one branch in the middle, never
/// deadlock: no call answers `Contention`, and every dependent ends
/// decided (none stays blocked on upstreams that all finished).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finishing_upstreams_and_a_tree_cancel_never_deadlock() {
    let Some(server) = servers::postgres().await else {
        return;
    };
    let url = server.schema_url(&PostgresServer::unique_schema());
    let backends = [open(&url).await, open(&url).await];
    for round in 0..10 {
        let b = &backends[0];
        let lane = format!("r{round}");
        let root = b.create_one(exec("deps", &lane)).await.unwrap().id;
        let branches: Vec<_> = b
            .create(vec![
                exec("deps", &lane).with_parent(root.clone()),
                exec("deps", &lane).with_parent(root.clone()),
            ])
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.id)
            .collect();
        let mut ups = Vec::new();
        for branch in &branches {
            let leaves = (0..8)
                .map(|_| exec("deps", &lane).with_parent(branch.clone()))
                .collect();
            ups.push(
                b.create(leaves)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|o| o.id)
                    .collect::<Vec<_>>(),
            );
        }
        // Dependents under each branch on upstreams under the other, and
        // under the root on all of them.
        let policies = [
            DependencyPolicy::new(DependencyMode::AllOf, UpstreamFailure::Skip),
            DependencyPolicy::new(DependencyMode::AnyOf, UpstreamFailure::Fail),
            DependencyPolicy::new(DependencyMode::Quorum(3), UpstreamFailure::Run),
        ];
        let mut news = Vec::new();
        for (i, branch) in branches.iter().enumerate() {
            let other = &ups[1 - i];
            for (j, policy) in policies.iter().enumerate() {
                news.push(
                    exec("deps", &lane)
                        .with_parent(branch.clone())
                        .with_dependencies(other[j..j + 4].iter().cloned())
                        .with_dependency_policy(*policy),
                );
            }
        }
        news.push(
            exec("deps", &lane)
                .with_parent(root.clone())
                .with_dependencies(ups.concat()),
        );
        let dependents: Vec<_> = b
            .create(news)
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.id)
            .collect();
        let request = ClaimRequest::new(
            Namespace::new("deps").unwrap(),
            Lane::new(&lane).unwrap(),
            WorkerId::new("w").unwrap(),
            100,
        );
        let leaves: std::collections::HashSet<_> = ups.concat().into_iter().collect();
        let claims: Vec<_> = b
            .claim(request)
            .await
            .unwrap()
            .into_iter()
            .filter(|c| leaves.contains(&c.id))
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
            if i == 6 {
                let b = backends[1].clone();
                let branch = branches[0].clone();
                calls.push(tokio::spawn(async move {
                    b.cancel(&branch, CancelRequest::default()).await.map(drop)
                }));
            }
        }
        for call in calls {
            match call.await.unwrap() {
                Ok(()) | Err(EngineError::LeaseLost { .. }) => {}
                Err(e) => panic!("round {round}: {e:?}"),
            }
        }
        for id in &dependents {
            let snap = b.describe(id).await.unwrap();
            assert_ne!(snap.state, State::Blocked, "round {round}: {id} {snap:?}");
        }
    }
}

/// Dependents created while their upstreams complete, through another
/// instance, are never left behind: each is told of every upstream that
/// finishes after it was created, and counts the ones that finished before
/// at create, so each ends `waiting` (every upstream completed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dependents_created_while_upstreams_complete_are_released() {
    let Some(server) = servers::postgres().await else {
        return;
    };
    let url = server.schema_url(&PostgresServer::unique_schema());
    let backends = [open(&url).await, open(&url).await];
    for round in 0..10 {
        let b = &backends[0];
        let lane = format!("r{round}");
        let root = b.create_one(exec("race", &lane)).await.unwrap().id;
        // Upstreams and dependents under different branches: their writers
        // share no parent lock.
        let branches: Vec<_> = b
            .create(vec![
                exec("race", &lane).with_parent(root.clone()),
                exec("race", &lane).with_parent(root.clone()),
            ])
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.id)
            .collect();
        let ups: Vec<_> = b
            .create(
                (0..12)
                    .map(|_| exec("race", &lane).with_parent(branches[0].clone()))
                    .collect(),
            )
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.id)
            .collect();
        let request = ClaimRequest::new(
            Namespace::new("race").unwrap(),
            Lane::new(&lane).unwrap(),
            WorkerId::new("w").unwrap(),
            100,
        );
        let claims: Vec<_> = b
            .claim(request)
            .await
            .unwrap()
            .into_iter()
            .filter(|c| ups.contains(&c.id))
            .collect();
        assert_eq!(claims.len(), 12);
        let completes: Vec<_> = claims
            .into_iter()
            .map(|c| {
                let b = backends[0].clone();
                tokio::spawn(async move { b.complete(&c.lease, b"1".to_vec()).await.map(drop) })
            })
            .collect();
        let creates: Vec<_> = (0..12)
            .map(|i| {
                let b = backends[1].clone();
                let dependent = exec("race", &lane)
                    .with_parent(branches[1].clone())
                    .with_dependencies([ups[i].clone(), ups[(i + 5) % 12].clone()]);
                tokio::spawn(async move { b.create_one(dependent).await.map(|o| o.id) })
            })
            .collect();
        for call in completes {
            call.await.unwrap().unwrap();
        }
        let mut dependents = Vec::new();
        for call in creates {
            dependents.push(call.await.unwrap().unwrap());
        }
        for id in &dependents {
            let snap = b.describe(id).await.unwrap();
            assert_eq!(snap.state, State::Waiting, "round {round}: {id} {snap:?}");
        }
    }
}

/// Cancels of single running children (the parent first, then the child)
/// and their own completes and failures (the same order) at the same time
/// never deadlock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancels_and_completes_of_one_child_never_deadlock() {
    let Some(server) = servers::postgres().await else {
        return;
    };
    let url = server.schema_url(&PostgresServer::unique_schema());
    let backends = [open(&url).await, open(&url).await];
    for round in 0..10 {
        let b = &backends[0];
        let lane = format!("r{round}");
        let parent = b.create_one(exec("one", &lane)).await.unwrap().id;
        let kids = (0..16)
            .map(|_| exec("one", &lane).with_parent(parent.clone()))
            .collect();
        b.create(kids).await.unwrap();
        let request = ClaimRequest::new(
            Namespace::new("one").unwrap(),
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
        let mut calls = Vec::new();
        for (i, c) in claims.into_iter().enumerate() {
            let (finisher, canceller) = (backends[i % 2].clone(), backends[(i + 1) % 2].clone());
            let id = c.id.clone();
            calls.push(tokio::spawn(async move {
                canceller
                    .cancel(
                        &id,
                        CancelRequest::default().with_scope(baton_core::CancelScope::Execution),
                    )
                    .await
                    .map(drop)
            }));
            calls.push(tokio::spawn(async move {
                if i % 2 == 0 {
                    finisher
                        .fail(&c.lease, baton_core::Failure::permanent("x"))
                        .await
                        .map(drop)
                } else {
                    finisher.complete(&c.lease, b"1".to_vec()).await.map(drop)
                }
            }));
        }
        for call in calls {
            match call.await.unwrap() {
                Ok(()) | Err(EngineError::LeaseLost { .. } | EngineError::Conflict { .. }) => {}
                Err(e) => panic!("round {round}: {e:?}"),
            }
        }
    }
}

/// The reclaim pass failing upstreams for good and the expiry pass
/// expiring others (both telling their dependents), with a tree cancel of
/// the flow's root at the same time, never deadlock; every dependent ends
/// decided.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduler_passes_telling_dependents_and_a_tree_cancel_never_deadlock() {
    let Some(server) = servers::postgres().await else {
        return;
    };
    let url = server.schema_url(&PostgresServer::unique_schema());
    let backends = [open(&url).await, open(&url).await];
    for round in 0..8 {
        let b = &backends[0];
        let lane = format!("r{round}");
        let root = b.create_one(exec("pass", &lane)).await.unwrap().id;
        let branch = b
            .create_one(exec("pass", &lane).with_parent(root.clone()))
            .await
            .unwrap()
            .id;
        let soon = baton_core::Timestamp::now_system().saturating_add(Duration::from_millis(100));
        let ups: Vec<_> = b
            .create(
                (0..16)
                    .map(|i| {
                        let up = exec("pass", &lane)
                            .with_parent(branch.clone())
                            .with_retry(baton_core::RetryPolicy::attempts(1));
                        if i % 2 == 0 {
                            up.with_deadline(soon)
                        } else {
                            up
                        }
                    })
                    .collect(),
            )
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.id)
            .collect();
        let dependents: Vec<_> = b
            .create(
                (0..8)
                    .map(|i| {
                        exec("pass", &lane)
                            .with_parent(root.clone())
                            .with_dependencies([ups[i].clone(), ups[i + 8].clone()])
                    })
                    .collect(),
            )
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.id)
            .collect();
        let request = ClaimRequest::new(
            Namespace::new("pass").unwrap(),
            Lane::new(&lane).unwrap(),
            WorkerId::new("w").unwrap(),
            100,
        )
        .with_lease_ttl(Duration::from_millis(100));
        b.claim(request).await.unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
        let p = root.partition();
        let reclaim = {
            let b = backends[0].clone();
            tokio::spawn(async move { b.reclaim_expired_leases(p, 1000).await.map(drop) })
        };
        let expire = {
            let b = backends[1].clone();
            tokio::spawn(async move { b.expire_deadlines(p, 1000).await.map(drop) })
        };
        let cancel = {
            let b = backends[1].clone();
            let branch = branch.clone();
            tokio::spawn(async move { b.cancel(&branch, CancelRequest::default()).await.map(drop) })
        };
        for call in [reclaim, expire, cancel] {
            if let Err(e) = call.await.unwrap() {
                panic!("round {round}: {e:?}");
            }
        }
        // What a pass skipped (rows another one held) is done by the next.
        b.reclaim_expired_leases(p, 1000).await.unwrap();
        b.expire_deadlines(p, 1000).await.unwrap();
        for id in &dependents {
            let snap = b.describe(id).await.unwrap();
            assert_eq!(snap.state, State::Skipped, "round {round}: {id} {snap:?}");
        }
    }
}

/// A dependent given children before it ran stays blocked on its
/// dependencies when those children finish: only its dependencies
/// release it.
#[tokio::test]
async fn children_finishing_do_not_release_a_dependent_before_its_upstreams() {
    let Some(server) = servers::postgres().await else {
        return;
    };
    let b = open(&server.schema_url(&PostgresServer::unique_schema())).await;
    let root = b.create_one(exec("early", "main")).await.unwrap().id;
    let up = b
        .create_one(exec("early", "main").with_parent(root.clone()))
        .await
        .unwrap()
        .id;
    let join = b
        .create_one(
            exec("early", "main")
                .with_parent(root.clone())
                .with_dependencies([up.clone()]),
        )
        .await
        .unwrap()
        .id;
    b.create_one(exec("early", "main").with_parent(join.clone()))
        .await
        .unwrap();
    let request = |max| {
        ClaimRequest::new(
            Namespace::new("early").unwrap(),
            Lane::new("main").unwrap(),
            WorkerId::new("w").unwrap(),
            max,
        )
    };
    for c in b.claim(request(10)).await.unwrap() {
        if c.id != up && c.id != root {
            b.complete(&c.lease, b"1".to_vec()).await.unwrap();
        }
    }
    let snap = b.describe(&join).await.unwrap();
    assert_eq!(
        (snap.state, snap.waiting_on),
        (State::Blocked, Some(baton_core::WaitingOn::Dependencies(1)))
    );
    let up_lease = b.describe(&up).await.unwrap();
    assert_eq!(up_lease.state, State::Running);
}

/// Upstreams under one branch failing (each skipping a dependent under an
/// earlier branch, whose parent is then counted down) while plain children
/// of both branches complete together (combined, their parents locked in
/// id order) never deadlock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skips_across_branches_and_combined_completes_never_deadlock() {
    let Some(server) = servers::postgres().await else {
        return;
    };
    let url = server.schema_url(&PostgresServer::unique_schema());
    let backends = [open(&url).await, open(&url).await];
    for round in 0..10 {
        let b = &backends[0];
        let lane = format!("r{round}");
        let root = b.create_one(exec("cross", &lane)).await.unwrap().id;
        let mut branches = Vec::new();
        for _ in 0..2 {
            let branch = b
                .create_one(exec("cross", &lane).with_parent(root.clone()))
                .await
                .unwrap()
                .id;
            branches.push(branch);
        }
        let (early, late) = (branches[0].clone(), branches[1].clone());
        let ups: Vec<_> = b
            .create(
                (0..8)
                    .map(|_| exec("cross", &lane).with_parent(late.clone()))
                    .collect(),
            )
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.id)
            .collect();
        b.create(
            ups.iter()
                .map(|up| {
                    exec("cross", &lane)
                        .with_parent(early.clone())
                        .with_dependencies([up.clone()])
                })
                .collect(),
        )
        .await
        .unwrap();
        let mut plain = Vec::new();
        for branch in [&early, &late] {
            plain.extend(
                b.create(
                    (0..12)
                        .map(|_| exec("cross", &lane).with_parent(branch.clone()))
                        .collect(),
                )
                .await
                .unwrap()
                .into_iter()
                .map(|o| o.id),
            );
        }
        let request = ClaimRequest::new(
            Namespace::new("cross").unwrap(),
            Lane::new(&lane).unwrap(),
            WorkerId::new("w").unwrap(),
            100,
        );
        let claims = b.claim(request).await.unwrap();
        let mut calls = Vec::new();
        for (i, c) in claims.into_iter().enumerate() {
            if ups.contains(&c.id) {
                let b = backends[1].clone();
                calls.push(tokio::spawn(async move {
                    b.fail(&c.lease, baton_core::Failure::permanent("x"))
                        .await
                        .map(drop)
                }));
            } else if plain.contains(&c.id) {
                let b = backends[i % 2].clone();
                calls.push(tokio::spawn(async move {
                    b.complete(&c.lease, b"1".to_vec()).await.map(drop)
                }));
            }
        }
        for call in calls {
            if let Err(e) = call.await.unwrap() {
                panic!("round {round}: {e:?}");
            }
        }
    }
}

/// Suspends a fresh execution of lane `lane` on `request`; answers its id.
async fn create_suspended(
    b: &PostgresBackend,
    lane: &str,
    request: baton_core::SuspendRequest,
) -> baton_core::ExecutionId {
    let id = b.create_one(exec("wait", lane)).await.unwrap().id;
    let claim = claim_one(b, "wait", lane).await;
    assert_eq!(claim.id, id);
    match b.suspend(&claim.lease, request).await.unwrap() {
        baton_core::SuspendOutcome::Suspended(snap) => assert_eq!(snap.state, State::Suspended),
        other => panic!("expected a suspension, got {other:?}"),
    }
    id
}

async fn claim_one(b: &PostgresBackend, ns: &str, lane: &str) -> baton_core::Claim {
    let request = ClaimRequest::new(
        Namespace::new(ns).unwrap(),
        Lane::new(lane).unwrap(),
        WorkerId::new("w").unwrap(),
        1,
    );
    let mut claims = b.claim(request).await.unwrap();
    assert_eq!(claims.len(), 1, "one execution to claim in {ns}/{lane}");
    claims.remove(0)
}

fn waitpoint(name: &str) -> baton_core::SignalName {
    baton_core::SignalName::new(name).unwrap()
}

/// A claimer waiting through one instance is woken by a signal through
/// another that resumes a suspended execution of its lane.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_that_resumes_wakes_claimers_of_another_instance() {
    let Some(server) = servers::postgres().await else {
        return;
    };
    let url = server.schema_url(&PostgresServer::unique_schema());
    let waiter_side = open(&url).await;
    let signaller = open(&url).await;
    let request = baton_core::SuspendRequest::signals([waitpoint("go")]);
    let mut suspended = Vec::new();
    for _ in 0..100 {
        suspended.push(create_suspended(&signaller, "sig", request.clone()).await);
    }
    let mut waiter = parked(&waiter_side, "wait", "sig");
    // Resume one after the other until the waiter returns, so the test does
    // not depend on when its LISTEN began; the bound is liveness, not
    // timing.
    for id in &suspended {
        let signal = baton_core::NewSignal::new(waitpoint("go"), b"1".to_vec());
        let outcome = signaller.signal(id, signal).await.unwrap();
        assert_eq!(outcome, baton_core::SignalOutcome::Resumed);
        if let Ok(joined) = tokio::time::timeout(Duration::from_millis(50), &mut waiter).await {
            joined.unwrap().unwrap();
            return;
        }
    }
    waiter.abort();
    panic!("the waiter was never woken by the other instance's signals");
}

/// Concurrent signals to one suspended execution are numbered once each,
/// a repeated idempotency key is stored once, and exactly one of them
/// resumes it, consuming one signal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_signals_are_numbered_once_and_resume_once() {
    let Some(server) = servers::postgres().await else {
        return;
    };
    let url = server.schema_url(&PostgresServer::unique_schema());
    let backends = [open(&url).await, open(&url).await];
    let request = baton_core::SuspendRequest::signals([waitpoint("go")]);
    let id = create_suspended(&backends[0], "many", request).await;
    let calls: Vec<_> = (0..24)
        .map(|i| {
            let b = backends[i % 2].clone();
            let id = id.clone();
            tokio::spawn(async move {
                let mut signal = baton_core::NewSignal::new(waitpoint("go"), b"1".to_vec());
                if i % 3 == 0 {
                    let key = baton_core::IdempotencyKey::new(format!("k{}", i % 2)).unwrap();
                    signal = signal.with_idempotency_key(key);
                }
                b.signal(&id, signal).await.unwrap()
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for call in calls {
        outcomes.push(call.await.unwrap());
    }
    let count = |o: baton_core::SignalOutcome| outcomes.iter().filter(|x| **x == o).count();
    assert_eq!(count(baton_core::SignalOutcome::Resumed), 1, "{outcomes:?}");
    assert_eq!(
        count(baton_core::SignalOutcome::Duplicate),
        6,
        "{outcomes:?}"
    );
    assert_eq!(
        count(baton_core::SignalOutcome::Buffered),
        17,
        "{outcomes:?}"
    );
    let held = backends[0].signals(&id).await.unwrap();
    let seqs: Vec<u32> = held.iter().map(|s| s.seq).collect();
    assert_eq!(seqs, (1..=18).collect::<Vec<u32>>());
    let consumed: Vec<u32> = held
        .iter()
        .filter(|s| s.wait.is_some())
        .map(|s| s.seq)
        .collect();
    assert_eq!(consumed, vec![1], "the earliest signal is the one consumed");
    let claim = claim_one(&backends[1], "wait", "many").await;
    assert_eq!(claim.waits, vec![baton_core::WaitEnded::Signalled]);
    assert_eq!(claim.signals, vec![held[0].clone()]);
}

/// A signal and the timeout pass racing for one suspended execution end
/// its wait once: one resumes it, the other finds it no longer suspended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_and_the_timeout_pass_end_a_wait_once() {
    let Some(server) = servers::postgres().await else {
        return;
    };
    let url = server.schema_url(&PostgresServer::unique_schema());
    let backends = [open(&url).await, open(&url).await];
    for round in 0..10 {
        let lane = format!("r{round}");
        let request = baton_core::SuspendRequest::signals([waitpoint("go")])
            .with_timeout(Duration::from_millis(1), baton_core::OnTimeout::Resume);
        let id = create_suspended(&backends[0], &lane, request).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
        let timeout = {
            let b = backends[0].clone();
            let p = id.partition();
            tokio::spawn(async move { b.timeout_due(p, 1000).await.unwrap().processed })
        };
        let signal = {
            let b = backends[1].clone();
            let id = id.clone();
            tokio::spawn(async move {
                let signal = baton_core::NewSignal::new(waitpoint("go"), b"1".to_vec());
                b.signal(&id, signal).await.unwrap()
            })
        };
        let timed_out = timeout.await.unwrap();
        let signalled = signal.await.unwrap();
        let claim = claim_one(&backends[0], "wait", &lane).await;
        if signalled == baton_core::SignalOutcome::Resumed {
            assert_eq!(timed_out, 0, "round {round}");
            assert_eq!(claim.waits, vec![baton_core::WaitEnded::Signalled]);
        } else {
            assert_eq!(signalled, baton_core::SignalOutcome::Buffered);
            assert_eq!(timed_out, 1, "round {round}");
            assert_eq!(claim.waits, vec![baton_core::WaitEnded::TimedOut]);
            // Sent after the wait ended: buffered for a later wait.
            assert!(claim.signals.is_empty(), "round {round}");
        }
    }
}

/// The timeout pass cancelling a suspended parent with its children (its
/// policy `cancel`) and those children's completes and failures running at
/// the same time never deadlock: no call answers `Contention`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_cancel_and_finishing_children_never_deadlock() {
    let Some(server) = servers::postgres().await else {
        return;
    };
    let url = server.schema_url(&PostgresServer::unique_schema());
    let backends = [open(&url).await, open(&url).await];
    for round in 0..10 {
        let b = &backends[0];
        let lane = format!("r{round}");
        let parent = b.create_one(exec("wait", &lane)).await.unwrap().id;
        let lease = claim_one(b, "wait", &lane).await.lease;
        let kids_lane = format!("{lane}-kids");
        let kids = (0..16)
            .map(|_| exec("wait", &kids_lane).with_parent(parent.clone()))
            .collect();
        b.create(kids).await.unwrap();
        let request = ClaimRequest::new(
            Namespace::new("wait").unwrap(),
            Lane::new(&kids_lane).unwrap(),
            WorkerId::new("w").unwrap(),
            100,
        );
        let claims = b.claim(request).await.unwrap();
        assert_eq!(claims.len(), 16);
        let wait = baton_core::SuspendRequest::signals([waitpoint("go")])
            .with_timeout(Duration::from_millis(1), baton_core::OnTimeout::Cancel);
        b.suspend(&lease, wait).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
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
                let p = parent.partition();
                calls.push(tokio::spawn(async move {
                    b.timeout_due(p, 1000).await.map(drop)
                }));
            }
        }
        for call in calls {
            match call.await.unwrap() {
                Ok(()) | Err(EngineError::LeaseLost { .. }) => {}
                Err(e) => panic!("round {round}: {e:?}"),
            }
        }
        // The pass skips a parent a child's count-down holds at that
        // moment; the next pass acts on it.
        backends[0]
            .timeout_due(parent.partition(), 1000)
            .await
            .unwrap();
        let snap = backends[0].describe(&parent).await.unwrap();
        assert_eq!(snap.state, State::Cancelled, "round {round}");
        assert_eq!(
            snap.cancel_reason.as_deref(),
            Some("its wait for signal go timed out")
        );
    }
}

/// A timeout whose policy is `fail` runs the finish hooks of a failure:
/// the dependents of the failed execution learn it did not complete, and
/// its parent, blocked on its children, counts it down.
#[tokio::test]
async fn a_timeout_that_fails_tells_dependents_and_the_parent() {
    let Some(server) = servers::postgres().await else {
        return;
    };
    let b = open(&server.schema_url(&PostgresServer::unique_schema())).await;
    let root = b.create_one(exec("hook", "root")).await.unwrap().id;
    let root_lease = claim_one(&b, "hook", "root").await.lease;
    let up = b
        .create_one(exec("hook", "up").with_parent(root.clone()))
        .await
        .unwrap()
        .id;
    let dep = b
        .create_one(
            exec("hook", "dep")
                .with_parent(root.clone())
                .with_dependencies([up.clone()]),
        )
        .await
        .unwrap()
        .id;
    let blocked = b.wait_children(&root_lease).await.unwrap();
    assert_eq!(blocked.state, State::Blocked);
    let up_lease = claim_one(&b, "hook", "up").await.lease;
    let wait = baton_core::SuspendRequest::signals([waitpoint("go")])
        .with_timeout(Duration::from_millis(1), baton_core::OnTimeout::Fail);
    b.suspend(&up_lease, wait).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let report = b.timeout_due(up.partition(), 100).await.unwrap();
    assert_eq!((report.processed, report.next_due), (1, None));
    let snap = b.describe(&up).await.unwrap();
    assert_eq!(snap.state, State::Failed);
    assert_eq!(
        snap.last_error.as_deref(),
        Some("its wait for signal go timed out")
    );
    assert_eq!(b.describe(&dep).await.unwrap().state, State::Skipped);
    assert_eq!(b.describe(&root).await.unwrap().state, State::Waiting);
}

fn step(name: &str) -> baton_core::StepName {
    baton_core::StepName::new(name).unwrap()
}

/// Concurrent records of one step under one lease, through two instances,
/// act one after the other: every failed record is counted once (the
/// answers number 1 to N), then every done record with one output answers
/// the one stored record; the execution holds one step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_records_of_one_step_are_judged_one_after_the_other() {
    let Some(server) = servers::postgres().await else {
        return;
    };
    let url = server.schema_url(&PostgresServer::unique_schema());
    let backends = [open(&url).await, open(&url).await];
    let id = backends[0]
        .create_one(exec("steps", "one"))
        .await
        .unwrap()
        .id;
    let lease = claim_one(&backends[0], "steps", "one").await.lease;
    let record = |outcome: baton_core::StepOutcome| {
        let calls: Vec<_> = (0..24)
            .map(|i| {
                let b = backends[i % 2].clone();
                let (lease, outcome) = (lease.clone(), outcome.clone());
                tokio::spawn(async move { b.record_step(&lease, step("s"), outcome).await })
            })
            .collect();
        async move {
            let mut answers = Vec::new();
            for call in calls {
                answers.push(call.await.unwrap().unwrap());
            }
            answers
        }
    };
    let failed = record(baton_core::StepOutcome::Failed("boom".into())).await;
    let mut counts: Vec<u32> = failed.iter().map(|r| r.failures).collect();
    counts.sort_unstable();
    assert_eq!(counts, (1..=24).collect::<Vec<u32>>());
    let done = record(baton_core::StepOutcome::Done(b"1".to_vec())).await;
    let stored = backends[1].steps(&id).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert!(done.iter().all(|r| *r == stored[0]), "{done:?}");
    assert_eq!(
        (stored[0].status, stored[0].failures),
        (baton_core::StepStatus::Done, 24)
    );
}

/// Concurrent records of new steps at the edge of the limit store exactly
/// `max_steps` of them: the count is judged under the row lock, so it
/// never passes the limit nor disagrees with the rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_new_steps_stop_at_the_limit() {
    let Some(server) = servers::postgres().await else {
        return;
    };
    let url = server.schema_url(&PostgresServer::unique_schema());
    let limits = baton_core::Limits {
        max_steps: 10,
        ..baton_core::Limits::default()
    };
    let open_limited = || async {
        PostgresBackend::open(PostgresConfig::from_url(&url).unwrap().with_limits(limits))
            .await
            .unwrap()
    };
    let backends = [open_limited().await, open_limited().await];
    let id = backends[0]
        .create_one(exec("steps", "many"))
        .await
        .unwrap()
        .id;
    let lease = claim_one(&backends[0], "steps", "many").await.lease;
    let calls: Vec<_> = (0..24)
        .map(|i| {
            let b = backends[i % 2].clone();
            let lease = lease.clone();
            tokio::spawn(async move {
                let outcome = baton_core::StepOutcome::Done(b"1".to_vec());
                b.record_step(&lease, step(&format!("s{i:02}")), outcome)
                    .await
            })
        })
        .collect();
    let (mut stored, mut refused) = (0, 0);
    for call in calls {
        match call.await.unwrap() {
            Ok(_) => stored += 1,
            Err(EngineError::Conflict { .. }) => refused += 1,
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!((stored, refused), (10, 14));
    assert_eq!(backends[1].steps(&id).await.unwrap().len(), 10);
}

/// A step recorded while its lease ends (a retryable failure through
/// another instance) either lands before the end, and the next claim
/// replays it, or is refused as a lost lease, and the next claim has
/// nothing: the claim reads steps as the lease's end left them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_racing_the_end_of_its_lease_is_replayed_or_refused() {
    let Some(server) = servers::postgres().await else {
        return;
    };
    let url = server.schema_url(&PostgresServer::unique_schema());
    let backends = [open(&url).await, open(&url).await];
    let retry = baton_core::RetryPolicy {
        max_attempts: 2,
        backoff: baton_core::Backoff::NONE,
    };
    for round in 0..10 {
        let lane = format!("r{round}");
        backends[0]
            .create_one(exec("steps", &lane).with_retry(retry))
            .await
            .unwrap();
        let lease = claim_one(&backends[0], "steps", &lane).await.lease;
        let record = {
            let (b, lease) = (backends[0].clone(), lease.clone());
            tokio::spawn(async move {
                let outcome = baton_core::StepOutcome::Done(b"1".to_vec());
                b.record_step(&lease, step("s"), outcome).await
            })
        };
        let fail = {
            let b = backends[1].clone();
            tokio::spawn(async move {
                b.fail(&lease, baton_core::Failure::retryable("crashed"))
                    .await
            })
        };
        assert_eq!(fail.await.unwrap().unwrap().state, State::Waiting);
        let recorded = match record.await.unwrap() {
            Ok(_) => true,
            Err(EngineError::LeaseLost { .. }) => false,
            Err(e) => panic!("round {round}: unexpected {e:?}"),
        };
        let next = claim_one(&backends[1], "steps", &lane).await;
        assert_eq!(
            next.steps.contains_key(&step("s")),
            recorded,
            "round {round}"
        );
    }
}

/// The deployment in `schema` announces changes of watched executions on
/// this channel (migration 0008).
fn changed_channel(schema: &str) -> String {
    format!("baton_changed_{schema}")
}

/// Nothing arrives on `heard` for a while.
async fn assert_nothing_heard(heard: &mut sqlx::postgres::PgListener, what: &str) {
    if let Ok(n) = tokio::time::timeout(Duration::from_millis(300), heard.recv()).await {
        panic!(
            "{what}: unexpected notification {:?}",
            n.map(|n| n.payload().to_owned())
        );
    }
}

/// The next notification on `heard`, well before any timeout of Baton's.
async fn next_heard(heard: &mut sqlx::postgres::PgListener, what: &str) -> String {
    tokio::time::timeout(Duration::from_secs(10), heard.recv())
        .await
        .unwrap_or_else(|_| panic!("{what}: no notification"))
        .unwrap()
        .payload()
        .to_owned()
}

/// Trims every finished execution of `b` right away.
async fn trim_everything(b: &PostgresBackend) -> u64 {
    let mut trimmed = 0;
    for p in b.partitions().iter() {
        trimmed += b
            .trim_terminal(p, Duration::ZERO, 1_000)
            .await
            .unwrap()
            .processed;
    }
    trimmed
}

/// An execution nobody waits on changes (status, progress, the end, the
/// trim) without a notification; one a reader waited on announces its
/// changes with its id, in the form `ExecutionId` parses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_watched_executions_announce_their_changes() {
    let Some(server) = servers::postgres().await else {
        return;
    };
    let schema = PostgresServer::unique_schema();
    let b = open(&server.schema_url(&schema)).await;
    let mut heard = sqlx::postgres::PgListener::connect(server.url())
        .await
        .unwrap();
    heard.listen(&changed_channel(&schema)).await.unwrap();

    let quiet = b.create_one(exec("memory", "quiet")).await.unwrap().id;
    let lease = claim_one(&b, "memory", "quiet").await.lease;
    b.set_status(&lease, b"1".to_vec()).await.unwrap();
    b.append_progress(&lease, b"1".to_vec()).await.unwrap();
    b.complete(&lease, b"1".to_vec()).await.unwrap();
    assert_nothing_heard(&mut heard, "changes of an unwatched execution").await;

    let watched = b.create_one(exec("memory", "watched")).await.unwrap().id;
    let lease = claim_one(&b, "memory", "watched").await.lease;
    // A reader waits and gives up: the execution stays watched a while.
    let seen = baton_core::ChangeMark::of(&b.describe(&watched).await.unwrap());
    let unchanged = b
        .wait_for_change(&watched, seen, Duration::from_millis(20))
        .await
        .unwrap();
    assert_eq!(baton_core::ChangeMark::of(&unchanged), seen);
    assert_nothing_heard(&mut heard, "a reader's mark is no change").await;
    b.append_progress(&lease, b"1".to_vec()).await.unwrap();
    let payload = next_heard(&mut heard, "a frame of a watched execution").await;
    assert_eq!(payload.parse::<baton_core::ExecutionId>().unwrap(), watched);
    assert_eq!(payload, watched.to_string());
    // A repeated status is no change; a state write is none a reader
    // follows.
    b.set_status(&lease, b"1".to_vec()).await.unwrap();
    assert_eq!(next_heard(&mut heard, "a new status").await, payload);
    b.set_status(&lease, b"1".to_vec()).await.unwrap();
    b.set_state(
        &lease,
        baton_core::StateKey::new("k").unwrap(),
        Some(b"1".to_vec()),
    )
    .await
    .unwrap();
    assert_nothing_heard(&mut heard, "a repeated status and a state write").await;
    b.complete(&lease, b"1".to_vec()).await.unwrap();
    assert_eq!(next_heard(&mut heard, "the end").await, payload);
    assert_nothing_heard(&mut heard, "one notification per change").await;

    // The trim of both announces the watched one only.
    assert_eq!(trim_everything(&b).await, 2);
    assert_eq!(next_heard(&mut heard, "the trim").await, payload);
    assert_nothing_heard(&mut heard, "the trim of an unwatched execution").await;
    assert!(matches!(
        b.describe(&quiet).await,
        Err(EngineError::NotFound { .. })
    ));
}

/// A reader waiting through one instance is woken, well before its
/// timeout, by each change made through another (another process): a
/// status, a frame, the end, and the trim (answered as `NotFound`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_change_wakes_on_changes_of_another_instance() {
    let Some(server) = servers::postgres().await else {
        return;
    };
    let url = server.schema_url(&PostgresServer::unique_schema());
    let reader = open(&url).await;
    let writer = open(&url).await;
    let id = writer
        .create_one(exec("memory", "followed"))
        .await
        .unwrap()
        .id;
    let lease = claim_one(&writer, "memory", "followed").await.lease;
    type Waiting = tokio::task::JoinHandle<baton_core::Result<baton_core::ExecutionSnapshot>>;
    let park = |seen: baton_core::ChangeMark| -> Waiting {
        let (reader, id) = (reader.clone(), id.clone());
        tokio::spawn(async move {
            reader
                .wait_for_change(&id, seen, Duration::from_secs(3_600))
                .await
        })
    };
    // Nothing changes meanwhile, so a reader still waiting after a while
    // is parked (or about to park, and then reads the change anyway).
    let parked = |task: &Waiting| {
        let finished = task.is_finished();
        assert!(!finished, "the reader answered with no change");
    };
    let settle = || tokio::time::sleep(Duration::from_millis(200));
    let woken = |task: Waiting| async move {
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the change through the other instance wakes the reader")
            .unwrap()
    };
    let seen = baton_core::ChangeMark::of(&reader.describe(&id).await.unwrap());
    let task = park(seen);
    settle().await;
    parked(&task);
    writer
        .set_status(&lease, b"\"half\"".to_vec())
        .await
        .unwrap();
    let snap = woken(task).await.unwrap();
    assert_eq!(snap.status_version, 1);

    let task = park(baton_core::ChangeMark::of(&snap));
    settle().await;
    parked(&task);
    writer.append_progress(&lease, b"1".to_vec()).await.unwrap();
    let snap = woken(task).await.unwrap();
    assert_eq!(snap.progress_seq, 1);

    let task = park(baton_core::ChangeMark::of(&snap));
    settle().await;
    parked(&task);
    writer.complete(&lease, b"1".to_vec()).await.unwrap();
    let snap = woken(task).await.unwrap();
    assert_eq!(snap.state, State::Completed);

    let task = park(baton_core::ChangeMark::of(&snap));
    settle().await;
    parked(&task);
    assert_eq!(trim_everything(&writer).await, 1);
    let gone = woken(task).await;
    assert!(
        matches!(gone, Err(EngineError::NotFound { .. })),
        "{gone:?}"
    );
}

/// Revokes racing the worker's completes and fails of the children of one
/// blocked parent, through two instances: for each child exactly one wins
/// (the loser answers `Conflict` or `LeaseLost`), the child ends as the
/// winner left it, and the parent is counted down to none. Every other
/// round a tree cancel of the parent joins in (it locks the parent, then
/// the children, as a revoke does), and nothing deadlocks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoke_and_the_workers_complete_or_fail_settle_once() {
    let Some(server) = servers::postgres().await else {
        return;
    };
    let url = server.schema_url(&PostgresServer::unique_schema());
    let backends = [open(&url).await, open(&url).await];
    let once = baton_core::RetryPolicy {
        max_attempts: 1,
        backoff: baton_core::Backoff::NONE,
    };
    for round in 0..10 {
        let b = &backends[0];
        let (lane, parent_lane) = (format!("r{round}"), format!("p{round}"));
        let parent = b.create_one(exec("revoke", &parent_lane)).await.unwrap().id;
        let parent_lease = claim_one(b, "revoke", &parent_lane).await.lease;
        let kids = (0..16)
            .map(|_| {
                exec("revoke", &lane)
                    .with_parent(parent.clone())
                    .with_retry(once)
            })
            .collect();
        b.create(kids).await.unwrap();
        let blocked = b.wait_children(&parent_lease).await.unwrap();
        assert_eq!(blocked.state, State::Blocked);
        let request = ClaimRequest::new(
            Namespace::new("revoke").unwrap(),
            Lane::new(&lane).unwrap(),
            WorkerId::new("w").unwrap(),
            100,
        );
        let claims = b.claim(request).await.unwrap();
        assert_eq!(claims.len(), 16);
        let cancelling = round % 2 == 1;
        let cancel = cancelling.then(|| {
            let (canceller, parent) = (backends[1].clone(), parent.clone());
            tokio::spawn(async move {
                canceller
                    .cancel(&parent, CancelRequest::default())
                    .await
                    .map(drop)
            })
        });
        let mut races = Vec::new();
        for (i, c) in claims.into_iter().enumerate() {
            let (worker, operator) = (backends[i % 2].clone(), backends[(i + 1) % 2].clone());
            let id = c.id.clone();
            let revoke = tokio::spawn(async move { operator.revoke(&id).await.map(drop) });
            let lease = c.lease.clone();
            let finish = tokio::spawn(async move {
                if i % 2 == 0 {
                    worker
                        .fail(&lease, baton_core::Failure::permanent("x"))
                        .await
                        .map(drop)
                } else {
                    worker.complete(&lease, b"1".to_vec()).await.map(drop)
                }
            });
            races.push((c.id, i, revoke, finish));
        }
        if let Some(cancel) = cancel {
            cancel.await.unwrap().unwrap();
        }
        let lost = |r: &Result<(), EngineError>| {
            matches!(
                r,
                Err(EngineError::LeaseLost { .. } | EngineError::Conflict { .. })
            )
        };
        for (id, i, revoke, finish) in races {
            let (revoked, finished) = (revoke.await.unwrap(), finish.await.unwrap());
            for r in [&revoked, &finished] {
                assert!(r.is_ok() || lost(r), "round {round}: {r:?}");
            }
            let snap = b.describe(&id).await.unwrap();
            if cancelling && snap.state == State::Cancelled {
                assert!(lost(&revoked) && lost(&finished), "round {round}: {snap:?}");
                continue;
            }
            assert!(
                revoked.is_ok() != finished.is_ok(),
                "round {round}: exactly one wins: {revoked:?} / {finished:?}"
            );
            let attempts = b.attempts(&id).await.unwrap();
            assert_eq!(attempts.len(), 1, "round {round}");
            let (state, outcome) = if revoked.is_ok() {
                (State::Failed, baton_core::AttemptOutcome::LeaseExpired)
            } else if i % 2 == 0 {
                (State::Failed, baton_core::AttemptOutcome::Failed)
            } else {
                (State::Completed, baton_core::AttemptOutcome::Completed)
            };
            assert_eq!(
                (snap.state, attempts[0].outcome),
                (state, Some(outcome)),
                "round {round}"
            );
        }
        let parent = b.describe(&parent).await.unwrap();
        let expected = if cancelling {
            State::Cancelled
        } else {
            // Every child finished once: the parent, blocked on them, was
            // counted down to none and is waiting again.
            State::Waiting
        };
        assert_eq!(parent.state, expected, "round {round}");
    }
}

/// Pauses racing the worker's completes and fails of the children of one
/// blocked parent, through two instances: for each child exactly one wins.
/// A pause that wins ends the attempt `paused` (the worker's late complete
/// or fail answers `LeaseLost`, its renew `paused`) and consumes no
/// attempt; a finish that wins makes the pause a `Conflict`. Every other
/// round a tree pause of the parent joins in (it locks the flow's root,
/// then the children, while the finishing children lock their parent
/// first), and nothing deadlocks. A tree resume of the parent then returns
/// every paused child to `waiting`, and once they complete the parent is
/// counted down to none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_and_the_workers_complete_or_fail_settle_once() {
    use baton_core::{AttemptOutcome, CancelScope, RenewRequest, RenewStatus};
    let Some(server) = servers::postgres().await else {
        return;
    };
    let url = server.schema_url(&PostgresServer::unique_schema());
    let backends = [open(&url).await, open(&url).await];
    let once = baton_core::RetryPolicy {
        max_attempts: 1,
        backoff: baton_core::Backoff::NONE,
    };
    for round in 0..10 {
        let b = &backends[0];
        let (lane, parent_lane) = (format!("r{round}"), format!("p{round}"));
        let parent = b.create_one(exec("pause", &parent_lane)).await.unwrap().id;
        let parent_lease = claim_one(b, "pause", &parent_lane).await.lease;
        let kids = (0..16)
            .map(|_| {
                exec("pause", &lane)
                    .with_parent(parent.clone())
                    .with_retry(once)
            })
            .collect();
        b.create(kids).await.unwrap();
        let blocked = b.wait_children(&parent_lease).await.unwrap();
        assert_eq!(blocked.state, State::Blocked);
        let request = ClaimRequest::new(
            Namespace::new("pause").unwrap(),
            Lane::new(&lane).unwrap(),
            WorkerId::new("w").unwrap(),
            100,
        );
        let claims = b.claim(request.clone()).await.unwrap();
        assert_eq!(claims.len(), 16);
        let tree = round % 2 == 1;
        let tree_pause = tree.then(|| {
            let (operator, parent) = (backends[1].clone(), parent.clone());
            tokio::spawn(async move {
                operator
                    .pause(&parent, CancelScope::Tree)
                    .await
                    .map(|o| o.snapshot)
            })
        });
        let mut races = Vec::new();
        for (i, c) in claims.into_iter().enumerate() {
            let (worker, operator) = (backends[i % 2].clone(), backends[(i + 1) % 2].clone());
            let id = c.id.clone();
            let pause =
                tokio::spawn(
                    async move { operator.pause(&id, CancelScope::Execution).await.map(drop) },
                );
            let lease = c.lease.clone();
            let finish = tokio::spawn(async move {
                if i % 2 == 0 {
                    worker
                        .fail(&lease, baton_core::Failure::permanent("x"))
                        .await
                        .map(drop)
                } else {
                    worker.complete(&lease, b"1".to_vec()).await.map(drop)
                }
            });
            races.push((c, i, pause, finish));
        }
        if let Some(tree_pause) = tree_pause {
            // Blocked on its children, or `waiting` if they all finished
            // before the pause reached it.
            let snap = tree_pause.await.unwrap().unwrap();
            let from = snap.pause.map(|p| p.from);
            assert!(
                matches!(from, Some(State::Blocked | State::Waiting)),
                "round {round}: {from:?}"
            );
        }
        let mut paused = 0;
        for (claim, i, pause, finish) in races {
            let id = claim.id.clone();
            let (paused_it, finished) = (pause.await.unwrap(), finish.await.unwrap());
            assert!(
                paused_it.is_ok() != finished.is_ok(),
                "round {round}: exactly one wins: {paused_it:?} / {finished:?}"
            );
            let snap = b.describe(&id).await.unwrap();
            let attempts = b.attempts(&id).await.unwrap();
            assert_eq!(attempts.len(), 1, "round {round}");
            if paused_it.is_ok() {
                assert!(
                    matches!(finished, Err(EngineError::LeaseLost { .. })),
                    "round {round}: {finished:?}"
                );
                let pause = snap.pause.clone().expect("a paused child");
                assert_eq!(
                    (snap.state, pause.from, snap.worker_id.clone()),
                    (State::Paused, State::Waiting, None),
                    "round {round}"
                );
                assert!(
                    pause.via.is_none() || pause.via.as_ref() == Some(&parent),
                    "round {round}: {pause:?}"
                );
                assert_eq!(
                    attempts[0].outcome,
                    Some(AttemptOutcome::Paused),
                    "round {round}"
                );
                let renewed = backends[i % 2]
                    .renew(RenewRequest {
                        worker_id: WorkerId::new("w").unwrap(),
                        lease_ttl: Duration::from_secs(30),
                        leases: vec![claim.lease.clone()],
                    })
                    .await
                    .unwrap();
                assert_eq!(renewed[0].status, RenewStatus::Paused, "round {round}");
                paused += 1;
            } else {
                assert!(
                    matches!(paused_it, Err(EngineError::Conflict { .. })),
                    "round {round}: {paused_it:?}"
                );
                let (state, outcome) = if i % 2 == 0 {
                    (State::Failed, AttemptOutcome::Failed)
                } else {
                    (State::Completed, AttemptOutcome::Completed)
                };
                assert_eq!(
                    (snap.state, attempts[0].outcome),
                    (state, Some(outcome)),
                    "round {round}"
                );
            }
        }
        // The parent counted the finished children down; the paused ones
        // stay open. A tree resume restores the children (the parent, when
        // it was paused too, returns to `blocked` or, with none open,
        // `waiting`).
        let out = backends[1]
            .resume(&parent, CancelScope::Tree)
            .await
            .unwrap();
        assert_eq!(out.cascaded, paused, "round {round}");
        let expected = if paused == 0 {
            State::Waiting
        } else {
            State::Blocked
        };
        assert_eq!(out.snapshot.state, expected, "round {round}");
        // The paused attempts consumed nothing: each child gets a second
        // attempt under a budget of one.
        let again = b.claim(request).await.unwrap();
        assert_eq!(again.len() as u64, paused, "round {round}");
        for c in again {
            assert_eq!(c.attempt, 2, "round {round}");
            b.complete(&c.lease, b"1".to_vec()).await.unwrap();
        }
        let parent = b.describe(&parent).await.unwrap();
        assert_eq!(parent.state, State::Waiting, "round {round}");
    }
}

/// A lane paused through one instance is skipped by the claims of another
/// from the moment `pause_lane` answered; its resume through the first
/// wakes a claimer parked on the other (the lane's claimers were left
/// waiting while it was paused).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lane_pause_holds_claims_of_another_instance_and_its_resume_wakes_them() {
    let Some(server) = servers::postgres().await else {
        return;
    };
    let url = server.schema_url(&PostgresServer::unique_schema());
    let operator = open(&url).await;
    let claimer = open(&url).await;
    let (ns, lane) = (Namespace::new("lanes").unwrap(), Lane::new("held").unwrap());
    let id = claimer.create_one(exec("lanes", "held")).await.unwrap().id;
    assert!(operator.pause_lane(&ns, &lane).await.unwrap());
    let request = ClaimRequest::new(ns.clone(), lane.clone(), WorkerId::new("w").unwrap(), 10);
    assert!(claimer.claim(request.clone()).await.unwrap().is_empty());
    let mut waiter = parked(&claimer, "lanes", "held");
    // Resume (and pause again) until the waiter returns, so the test does
    // not depend on when its LISTEN began: nothing else wakes the lane.
    for _ in 0..600 {
        assert!(operator.resume_lane(&ns, &lane).await.unwrap());
        if let Ok(joined) = tokio::time::timeout(Duration::from_millis(50), &mut waiter).await {
            joined.unwrap().unwrap();
            let claims = claimer.claim(request).await.unwrap();
            assert_eq!(claims.len(), 1);
            assert_eq!(claims[0].id, id);
            return;
        }
        assert!(operator.pause_lane(&ns, &lane).await.unwrap());
    }
    waiter.abort();
    panic!("the waiter was never woken by the other instance's lane resumes");
}

/// Forced deletes racing the worker's complete, through two instances.
/// Of one running execution exactly one wins: a complete that commits
/// first leaves it completed and the delete removes it without a cancel;
/// a delete that goes first cancels and removes it in one transaction, and
/// the complete answers `NotFound`. Of a flow (a running child with a
/// waiting grandchild), the delete of the root removes all three whichever
/// goes first, and nothing deadlocks. Either way nothing of them is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_delete_and_the_workers_complete_settle_once() {
    let Some(server) = servers::postgres().await else {
        return;
    };
    let url = server.schema_url(&PostgresServer::unique_schema());
    let backends = [open(&url).await, open(&url).await];
    let gone = |r: baton_core::Result<baton_core::ExecutionSnapshot>| {
        assert!(matches!(r, Err(EngineError::NotFound { .. })), "{r:?}");
    };
    for round in 0..10 {
        let b = &backends[0];
        let (lane, kids) = (format!("d{round}"), format!("k{round}"));
        let id = b.create_one(exec("delete", &lane)).await.unwrap().id;
        let lease = claim_one(b, "delete", &lane).await.lease;
        let root = b.create_one(exec("delete", "roots")).await.unwrap().id;
        let child = b
            .create_one(exec("delete", &kids).with_parent(root.clone()))
            .await
            .unwrap()
            .id;
        let grandchild = b
            .create_one(exec("delete", "grandchildren").with_parent(child.clone()))
            .await
            .unwrap()
            .id;
        let child_lease = claim_one(b, "delete", &kids).await.lease;
        let (operator, worker) = (
            backends[round % 2].clone(),
            backends[(round + 1) % 2].clone(),
        );
        let deletes = {
            let (operator, id, root) = (operator.clone(), id.clone(), root.clone());
            tokio::spawn(async move {
                let one = operator.delete(&id, true).await;
                let tree = operator.delete(&root, true).await;
                (one, tree)
            })
        };
        let completes = tokio::spawn(async move {
            let one = worker.complete(&lease, b"1".to_vec()).await;
            let child = worker.complete(&child_lease, b"1".to_vec()).await;
            (one, child)
        });
        let (one, tree) = deletes.await.unwrap();
        let (completed, child_completed) = completes.await.unwrap();
        let one = one.unwrap();
        assert_eq!(one.deleted, 1, "round {round}");
        match &completed {
            Ok(snap) => {
                assert_eq!(snap.state, State::Completed, "round {round}");
                assert!(!one.cancelled, "round {round}: the complete won");
            }
            Err(EngineError::NotFound { .. }) => {
                assert!(one.cancelled, "round {round}: the delete won");
            }
            Err(e) => panic!("round {round}: {e:?}"),
        }
        let tree = tree.unwrap();
        assert_eq!((tree.deleted, tree.cancelled), (3, true), "round {round}");
        assert!(
            matches!(child_completed, Ok(_) | Err(EngineError::NotFound { .. })),
            "round {round}: {child_completed:?}"
        );
        for id in [&id, &root, &child, &grandchild] {
            gone(b.describe(id).await);
            assert!(
                matches!(b.attempts(id).await, Err(EngineError::NotFound { .. })),
                "round {round}"
            );
        }
    }
}

/// The delete of a member of a flow finds its descendants at every depth
/// (walked down the `parent` column) and removes them with it, leaving the
/// rest of the flow.
#[tokio::test]
async fn a_members_delete_reaches_every_depth_below_it() {
    let Some(server) = servers::postgres().await else {
        return;
    };
    let b = open(&server.schema_url(&PostgresServer::unique_schema())).await;
    let root = b.create_one(exec("depth", "l")).await.unwrap().id;
    let mut chain = vec![root.clone()];
    for _ in 0..4 {
        let parent = chain.last().unwrap().clone();
        let id = b
            .create_one(exec("depth", "l").with_parent(parent))
            .await
            .unwrap()
            .id;
        chain.push(id);
    }
    let sibling = b
        .create_one(exec("depth", "l").with_parent(chain[2].clone()))
        .await
        .unwrap()
        .id;
    let alone = CancelRequest::default().with_scope(baton_core::CancelScope::Execution);
    for id in chain.iter().chain([&sibling]) {
        b.cancel(id, alone.clone()).await.unwrap();
    }
    let report = b.delete(&chain[1], false).await.unwrap();
    assert_eq!((report.deleted, report.cancelled), (5, false));
    for id in chain[1..].iter().chain([&sibling]) {
        assert!(matches!(
            b.describe(id).await,
            Err(EngineError::NotFound { .. })
        ));
    }
    assert_eq!(b.describe(&root).await.unwrap().state, State::Cancelled);
}

/// Signals, priority edits, pauses and resumes of one execution sent at
/// once through two instances number its events once each, without a gap:
/// every writer of an event holds the execution's row lock (migration
/// 0011), the signal's included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_events_of_one_execution_are_numbered_once() {
    use baton_core::{CancelScope, EventKind};
    let Some(server) = servers::postgres().await else {
        return;
    };
    let url = server.schema_url(&PostgresServer::unique_schema());
    let backends = [open(&url).await, open(&url).await];
    let ns = Namespace::new("wait").unwrap();
    assert!(!backends[0].set_history(&ns, true).await.unwrap());
    let request = baton_core::SuspendRequest::signals([waitpoint("never")]);
    let id = create_suspended(&backends[0], "events", request).await;
    let rounds = 20;
    let mut calls = Vec::new();
    for i in 0..rounds {
        let (b, signalled) = (backends[i % 2].clone(), id.clone());
        calls.push(tokio::spawn(async move {
            let signal = baton_core::NewSignal::new(waitpoint("x"), b"1".to_vec());
            let outcome = b.signal(&signalled, signal).await.unwrap();
            assert_eq!(outcome, baton_core::SignalOutcome::Buffered);
        }));
        let (b, edited) = (backends[(i + 1) % 2].clone(), id.clone());
        // Every edit sets a priority no other one does, so each changes it.
        let priority = i32::try_from(i).unwrap() + 1;
        calls.push(tokio::spawn(async move {
            b.set_priority(&edited, priority).await.unwrap();
        }));
    }
    let (b, paused) = (backends[1].clone(), id.clone());
    calls.push(tokio::spawn(async move {
        for _ in 0..rounds / 2 {
            b.pause(&paused, CancelScope::Execution).await.unwrap();
            b.resume(&paused, CancelScope::Execution).await.unwrap();
        }
    }));
    for call in calls {
        call.await.unwrap();
    }
    let events = backends[0].events(&id, 0, 1_000).await.unwrap();
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    // Created, claimed, suspended, then the concurrent ones.
    let expected = 3 + 3 * rounds as u64;
    assert_eq!(seqs, (1..=expected).collect::<Vec<u64>>());
    let count = |kind: EventKind| events.iter().filter(|e| e.event == kind).count();
    assert_eq!(count(EventKind::Signalled), rounds);
    assert_eq!(count(EventKind::PriorityChanged), rounds);
    assert_eq!(count(EventKind::Paused), rounds / 2);
    assert_eq!(count(EventKind::Resumed), rounds / 2);
}

/// A trimmed and a deleted execution leave no event behind; the history
/// of one still kept stays.
#[tokio::test]
async fn trims_and_deletes_remove_the_events() {
    let Some(server) = servers::postgres().await else {
        return;
    };
    let schema = PostgresServer::unique_schema();
    let b = open(&server.schema_url(&schema)).await;
    let ns = Namespace::new("events").unwrap();
    assert!(!b.set_history(&ns, true).await.unwrap());
    let kept = b.create_one(exec("events", "l")).await.unwrap().id;
    let deleted = b.create_one(exec("events", "l")).await.unwrap().id;
    b.cancel(&deleted, CancelRequest::default()).await.unwrap();
    b.delete(&deleted, false).await.unwrap();
    let trimmed = b.create_one(exec("events", "l")).await.unwrap().id;
    b.cancel(&trimmed, CancelRequest::default()).await.unwrap();
    assert_eq!(trim_everything(&b).await, 1);
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(server.url())
        .await
        .unwrap();
    let left: Vec<(uuid::Uuid, i64)> = sqlx::query_as(&format!(
        "SELECT uuid, count(*) FROM {schema}.events GROUP BY uuid"
    ))
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(left, vec![(kept.uuid(), 1)]);
}

/// An execution created while the history of its namespace is off writes
/// no event, whatever changes it (a claim, a suspension, a signal, edits,
/// an audit, a cancel); one created while it is on, in the same batches
/// and audits, writes them all. The setting is per namespace and taken at
/// creation: turning it on later changes nothing for one created before.
#[tokio::test]
async fn executions_without_history_write_no_event() {
    use baton_core::{EventKind, TagKey};
    let Some(server) = servers::postgres().await else {
        return;
    };
    let schema = PostgresServer::unique_schema();
    let b = open(&server.schema_url(&schema)).await;
    let (off, on) = (
        Namespace::new("wait").unwrap(),
        Namespace::new("kept").unwrap(),
    );
    assert!(!b.history_enabled(&on).await.unwrap());
    assert!(!b.set_history(&on, true).await.unwrap());
    assert!(b.history_enabled(&on).await.unwrap());
    assert!(!b.history_enabled(&off).await.unwrap());
    let request = baton_core::SuspendRequest::signals([waitpoint("never")]);
    let quiet = create_suspended(&b, "quiet", request).await;
    let created = b
        .create(vec![exec("kept", "l"), exec("wait", "l")])
        .await
        .unwrap();
    let (kept, late) = (created[0].id.clone(), created[1].id.clone());
    // Turned on now: `quiet` and `late` keep the setting they were
    // created with.
    assert!(!b.set_history(&off, true).await.unwrap());
    let signal = baton_core::NewSignal::new(waitpoint("x"), b"1".to_vec());
    b.signal(&quiet, signal).await.unwrap();
    for id in [&quiet, &kept, &late] {
        b.set_priority(id, 7).await.unwrap();
        b.set_tag(id, TagKey::new("k").unwrap(), Some("v".into()))
            .await
            .unwrap();
    }
    b.audit(&[quiet.clone(), kept.clone(), late.clone()], "looked at")
        .await
        .unwrap();
    for id in [&quiet, &kept, &late] {
        b.cancel(id, CancelRequest::default()).await.unwrap();
    }
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(server.url())
        .await
        .unwrap();
    let written: Vec<(uuid::Uuid, i64)> = sqlx::query_as(&format!(
        "SELECT uuid, count(*) FROM {schema}.events GROUP BY uuid"
    ))
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(written, vec![(kept.uuid(), 5)]);
    assert!(b.events(&quiet, 0, 100).await.unwrap().is_empty());
    let kinds: Vec<EventKind> = b
        .events(&kept, 0, 100)
        .await
        .unwrap()
        .iter()
        .map(|e| e.event)
        .collect();
    assert_eq!(
        kinds,
        [
            EventKind::Created,
            EventKind::PriorityChanged,
            EventKind::TagChanged,
            EventKind::Audit,
            EventKind::Cancelled
        ]
    );
    assert!(b.set_history(&on, false).await.unwrap());
    assert!(!b.set_history(&on, false).await.unwrap());
    assert!(!b.history_enabled(&on).await.unwrap());
}

/// The keep each row of a create batch is stamped with, on both paths of
/// the create statement (one statement without keys, and the transaction
/// of a keyed batch): its lane's rule, else its namespace's, else none (a
/// lane's rule covers no other lane).
#[tokio::test]
async fn create_batches_stamp_each_row_with_its_rule() {
    let Some(server) = servers::postgres().await else {
        return;
    };
    let schema = PostgresServer::unique_schema();
    let b = open(&server.schema_url(&schema)).await;
    let ns = |n: &str| Namespace::new(n).unwrap();
    let lane = |l: &str| Lane::new(l).unwrap();
    let (minute, hour) = (Duration::from_secs(60), Duration::from_secs(3_600));
    b.set_retention(&ns("a"), None, hour).await.unwrap();
    b.set_retention(&ns("a"), Some(&lane("x")), minute)
        .await
        .unwrap();
    b.set_retention(&ns("c"), Some(&lane("y")), minute)
        .await
        .unwrap();
    let batch = || {
        vec![
            exec("a", "x"),
            exec("a", "y"),
            exec("b", "x"),
            exec("c", "x"),
            exec("c", "y"),
        ]
    };
    let plain = b.create(batch()).await.unwrap();
    let keyed = b
        .create(
            batch()
                .into_iter()
                .enumerate()
                .map(|(i, n)| {
                    n.with_idempotency_key(
                        baton_core::IdempotencyKey::new(format!("k{i}")).unwrap(),
                    )
                })
                .collect(),
        )
        .await
        .unwrap();
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(server.url())
        .await
        .unwrap();
    let expected = [Some(60_000), Some(3_600_000), None, None, Some(60_000)];
    for created in [plain, keyed] {
        let mut keeps = Vec::new();
        for c in &created {
            assert!(c.created);
            let keep: Option<i64> = sqlx::query_scalar(&format!(
                "SELECT keep_ms FROM {schema}.executions WHERE partition = $1 AND uuid = $2"
            ))
            .bind(i16::try_from(c.id.partition().get()).unwrap())
            .bind(c.id.uuid())
            .fetch_one(&mut conn)
            .await
            .unwrap();
            keeps.push(keep);
        }
        assert_eq!(keeps, expected);
    }
}

/// Writers adding a rule each when one more fits, round after round: one
/// of them is let in, and the deployment never holds more than the most
/// it may.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_new_rules_stop_at_the_limit() {
    let Some(server) = servers::postgres().await else {
        return;
    };
    let schema = PostgresServer::unique_schema();
    let b = open(&server.schema_url(&schema)).await;
    let most = baton_core::RetentionRule::MAX_RULES;
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(server.url())
        .await
        .unwrap();
    sqlx::query(&format!(
        "INSERT INTO {schema}.retention_rules (namespace, lane, keep_ms) \
         SELECT 'n' || g, '', 60000 FROM generate_series(2, $1) g"
    ))
    .bind(i32::try_from(most).unwrap())
    .execute(&mut conn)
    .await
    .unwrap();
    for round in 0..10 {
        let writers: Vec<_> = (0..6)
            .map(|w| {
                let b = b.clone();
                tokio::spawn(async move {
                    let ns = Namespace::new(format!("late-{round}-{w}")).unwrap();
                    b.set_retention(&ns, None, Duration::from_secs(60))
                        .await
                        .map(|was| (ns, was))
                })
            })
            .collect();
        let mut added = Vec::new();
        for w in writers {
            match w.await.unwrap() {
                Ok((ns, was)) => {
                    assert_eq!(was, None);
                    added.push(ns);
                }
                Err(EngineError::InvalidInput { .. }) => {}
                Err(e) => panic!("unexpected {e}"),
            }
        }
        assert_eq!(added.len(), 1, "round {round}: one new rule fits");
        assert_eq!(b.retention_rules().await.unwrap().len(), most);
        b.remove_retention(&added[0], None).await.unwrap();
    }
    assert_eq!(
        b.set_retention(
            &Namespace::new("n2").unwrap(),
            None,
            Duration::from_secs(90)
        )
        .await
        .unwrap(),
        Some(Duration::from_secs(60)),
        "replacing a rule always fits"
    );
}

/// A direct connection to the test server, outside any backend.
async fn connect_raw(server: &PostgresServer) -> sqlx::PgConnection {
    <sqlx::PgConnection as sqlx::Connection>::connect(server.url())
        .await
        .unwrap()
}

/// Locks the row of `id` in `schema` for the rest of the transaction of
/// `conn`, as a writer would.
async fn lock_execution(conn: &mut sqlx::PgConnection, schema: &str, id: &baton_core::ExecutionId) {
    sqlx::query(&format!(
        "SELECT 1 FROM {schema}.executions WHERE partition = $1 AND uuid = $2 FOR UPDATE"
    ))
    .bind(i16::try_from(id.partition().get()).unwrap())
    .bind(id.uuid())
    .fetch_one(conn)
    .await
    .unwrap();
}

/// Waits until `n` sessions wait, directly or queued behind one another,
/// for a lock the session `holder` holds (read through `watch`, a
/// connection of its own outside any transaction, so every read is new).
async fn await_waiters(watch: &mut sqlx::PgConnection, holder: i32, n: i64) {
    for _ in 0..3_000 {
        let waiting: i64 = sqlx::query_scalar(
            "WITH RECURSIVE blocked (pid) AS ( \
                 SELECT pid FROM pg_stat_activity WHERE $1 = ANY (pg_blocking_pids(pid)) \
                 UNION \
                 SELECT a.pid FROM pg_stat_activity a \
                 JOIN blocked w ON w.pid = ANY (pg_blocking_pids(a.pid))) \
             SELECT count(*) FROM blocked",
        )
        .bind(holder)
        .fetch_one(&mut *watch)
        .await
        .unwrap();
        if waiting >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{n} sessions never waited for the locks of session {holder}");
}

/// How many children of `id` its row counts as unfinished.
async fn open_children(
    conn: &mut sqlx::PgConnection,
    schema: &str,
    id: &baton_core::ExecutionId,
) -> i32 {
    sqlx::query_scalar(&format!(
        "SELECT open_children FROM {schema}.executions WHERE partition = $1 AND uuid = $2"
    ))
    .bind(i16::try_from(id.partition().get()).unwrap())
    .bind(id.uuid())
    .fetch_one(conn)
    .await
    .unwrap()
}

/// The snapshots and histories of `ids`.
async fn snaps(
    b: &PostgresBackend,
    ids: [&baton_core::ExecutionId; 3],
) -> Vec<(
    baton_core::ExecutionSnapshot,
    Vec<baton_core::ExecutionEvent>,
)> {
    let mut out = Vec::new();
    for id in ids {
        let snap = b.describe(id).await.unwrap();
        let events = b.events(id, 0, 1_000).await.unwrap();
        out.push((snap, events));
    }
    out
}

/// A unit of replays answers each refused id on its own and replays the
/// others: while the partition's cascade queue holds work, the finished
/// ids answer `Contention` and an unfinished one `Conflict`, the call
/// itself succeeding; once the queue is empty, the finished ones are
/// replayed (their parent counts them again, their history tells it, a
/// claimer of their lane waiting on this instance is woken) while the
/// unfinished one and a gone one are refused, each left exactly as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unit_of_replays_refuses_ids_one_by_one() {
    use baton_core::{CancelScope, EventKind};
    let Some(server) = servers::postgres().await else {
        return;
    };
    let schema = PostgresServer::unique_schema();
    let limits = baton_core::Limits {
        cascade_budget: 2,
        ..baton_core::Limits::default()
    };
    let b = PostgresBackend::open(
        PostgresConfig::from_url(&server.schema_url(&schema))
            .unwrap()
            .with_limits(limits),
    )
    .await
    .unwrap();
    let ns = Namespace::new("units").unwrap();
    assert!(!b.set_history(&ns, true).await.unwrap());
    let child = |lane: &'static str, parent: &baton_core::ExecutionId| {
        let (b, parent) = (b.clone(), parent.clone());
        async move {
            b.create_one(exec("units", lane).with_parent(parent))
                .await
                .unwrap()
                .id
        }
    };
    let root = b.create_one(exec("units", "roots")).await.unwrap().id;
    let (a, open, c, gone, big) = (
        child("replayed", &root).await,
        child("kids", &root).await,
        child("replayed", &root).await,
        child("kids", &root).await,
        child("kids", &root).await,
    );
    for _ in 0..5 {
        child("leaves", &big).await;
    }
    let alone = CancelRequest::because("first").with_scope(CancelScope::Execution);
    for id in [&a, &c, &gone] {
        b.cancel(id, alone.clone()).await.unwrap();
    }
    b.delete(&gone, false).await.unwrap();
    // A tree cancel bigger than the budget leaves work queued in the
    // partition the flow lives in.
    let cancelled = b.cancel(&big, CancelRequest::because("big")).await.unwrap();
    assert!(cancelled.cascade_pending);
    let mut raw = connect_raw(server).await;
    let before = snaps(&b, [&a, &open, &c]).await;
    let counted = open_children(&mut raw, &schema, &root).await;
    assert_eq!(counted, 1, "only `open` is unfinished");

    let answers = b
        .replay_units(&[a.clone(), open.clone(), c.clone()])
        .await
        .unwrap();
    assert!(
        matches!(answers[0], Err(EngineError::Contention { .. })),
        "{:?}",
        answers[0]
    );
    assert!(
        matches!(answers[1], Err(EngineError::Conflict { .. })),
        "{:?}",
        answers[1]
    );
    assert!(
        matches!(answers[2], Err(EngineError::Contention { .. })),
        "{:?}",
        answers[2]
    );
    assert_eq!(snaps(&b, [&a, &open, &c]).await, before, "nothing changed");
    assert_eq!(open_children(&mut raw, &schema, &root).await, 1);

    while b
        .cascade_due(root.partition(), 1_000)
        .await
        .unwrap()
        .next_due
        .is_some()
    {}
    // A claimer of the replayed ones' lane parks on this instance before
    // the unit runs: `join!` polls it first, and with the listener already
    // connected its first poll registers it.
    let replayed = [Lane::new("replayed").unwrap()];
    b.wait_for_work(&ns, &replayed, Duration::from_millis(1))
        .await
        .unwrap();
    let parked = async {
        let start = std::time::Instant::now();
        b.wait_for_work(&ns, &replayed, Duration::from_secs(30))
            .await
            .unwrap();
        start.elapsed()
    };
    let unit = [a.clone(), open.clone(), gone.clone(), c.clone()];
    let unit = b.replay_units(&unit);
    let (waited, answers) = tokio::join!(parked, unit);
    assert!(
        waited < Duration::from_secs(20),
        "the claimer was woken, not timed out"
    );
    let answers = answers.unwrap();
    assert_eq!(answers.len(), 4);
    assert!(answers[0].is_ok(), "{:?}", answers[0]);
    assert!(
        matches!(answers[1], Err(EngineError::Conflict { .. })),
        "{:?}",
        answers[1]
    );
    assert!(
        matches!(answers[2], Err(EngineError::NotFound { .. })),
        "{:?}",
        answers[2]
    );
    assert!(answers[3].is_ok(), "{:?}", answers[3]);
    let after = snaps(&b, [&a, &open, &c]).await;
    assert_eq!(after[1], before[1], "the refused one is untouched");
    for (i, id) in [(0, &a), (2, &c)] {
        let (snap, events) = &after[i];
        assert_eq!(snap.state, State::Waiting, "{id}");
        assert_eq!(
            (snap.finished_at, snap.cancel_reason.as_deref()),
            (None, None)
        );
        assert_eq!(events.len(), before[i].1.len() + 1, "{id}");
        assert_eq!(events.last().unwrap().event, EventKind::Replayed);
    }
    assert_eq!(
        open_children(&mut raw, &schema, &root).await,
        3,
        "the parent counts the replayed ones again, and only them"
    );
}

/// A single cancel of an execution racing a unit of cancels that names it
/// (both queued on its flow's root, held by another writer, each queued
/// first in turn) fails neither: whichever goes first cancels it, and the
/// other finds it cancelled — the single cancel answers it as it is, the
/// unit answers `Finished` for it and cancels the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_cancel_racing_a_unit_fails_neither() {
    use baton_core::{CancelPart, CancelScope};
    let Some(server) = servers::postgres().await else {
        return;
    };
    let schema = PostgresServer::unique_schema();
    let url = server.schema_url(&schema);
    let backends = [open(&url).await, open(&url).await];
    let b = &backends[0];
    let root = b.create_one(exec("race", "roots")).await.unwrap().id;
    let mut kids = Vec::new();
    for _ in 0..6 {
        let kid = exec("race", "kids").with_parent(root.clone());
        kids.push(b.create_one(kid).await.unwrap().id);
    }
    let raced = kids[3].clone();
    let mut watch = connect_raw(server).await;
    let mut holder = connect_raw(server).await;
    for round in 0..4 {
        let mut held = sqlx::Connection::begin(&mut holder).await.unwrap();
        let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut *held)
            .await
            .unwrap();
        lock_execution(&mut held, &schema, &root).await;
        let single = {
            let (b, id) = (backends[1].clone(), raced.clone());
            let request = CancelRequest::because("single").with_scope(CancelScope::Execution);
            async move { b.cancel(&id, request).await }
        };
        let unit = {
            let (b, ids) = (backends[0].clone(), kids.clone());
            async move { b.cancel_units(&ids, &CancelRequest::because("bulk")).await }
        };
        let (single, unit) = if round % 2 == 0 {
            let single = tokio::spawn(single);
            await_waiters(&mut watch, pid, 1).await;
            let unit = tokio::spawn(unit);
            await_waiters(&mut watch, pid, 2).await;
            (single, unit)
        } else {
            let unit = tokio::spawn(unit);
            await_waiters(&mut watch, pid, 1).await;
            let single = tokio::spawn(single);
            await_waiters(&mut watch, pid, 2).await;
            (single, unit)
        };
        held.rollback().await.unwrap();
        let single = single.await.unwrap().unwrap();
        let parts = unit.await.unwrap().unwrap();
        let stored = b.describe(&raced).await.unwrap();
        assert_eq!(stored.state, State::Cancelled);
        assert_eq!(single.snapshot, stored, "round {round}");
        let expected = match stored.cancel_reason.as_deref() {
            Some("bulk") => CancelPart::Cancelled,
            Some("single") => CancelPart::Finished,
            other => panic!("round {round}: cancelled for {other:?}"),
        };
        // Postgres hands a row to its waiters in the order they queued, so
        // each round covers the side it set going first.
        let first = if round % 2 == 0 {
            CancelPart::Finished
        } else {
            CancelPart::Cancelled
        };
        assert_eq!(expected, first, "round {round}");
        for (id, part) in kids.iter().zip(&parts) {
            let want = if *id == raced {
                expected
            } else {
                CancelPart::Cancelled
            };
            assert_eq!(part.as_ref().ok(), Some(&want), "round {round}: {id}");
        }
        let replayed = b.replay_units(&kids).await.unwrap();
        assert!(replayed.iter().all(Result::is_ok), "{replayed:?}");
    }
}

/// A unit of tree cancels charges each id what its walk visited, not only
/// what it cancelled: its first id, a root already cancelled with more
/// finished children than the budget, cancels nothing, yet its walk visits
/// a whole budget, so the second id is not reached (as a single cancel, a
/// unit visits at most about one budget).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unit_charges_the_children_a_walk_visits() {
    use baton_core::{CancelPart, CancelScope};
    let Some(server) = servers::postgres().await else {
        return;
    };
    let schema = PostgresServer::unique_schema();
    let limits = baton_core::Limits {
        cascade_budget: 3,
        ..baton_core::Limits::default()
    };
    let b = PostgresBackend::open(
        PostgresConfig::from_url(&server.schema_url(&schema))
            .unwrap()
            .with_limits(limits)
            .with_partitions(PartitionCount::new(1).unwrap()),
    )
    .await
    .unwrap();
    let budget = b.capabilities().limits.cascade_budget;
    let root = b.create_one(exec("visits", "roots")).await.unwrap().id;
    let kids: Vec<_> = (0..=budget)
        .map(|_| exec("visits", "kids").with_parent(root.clone()))
        .collect();
    let alone = CancelRequest::because("first").with_scope(CancelScope::Execution);
    for kid in b.create(kids).await.unwrap() {
        b.cancel(&kid.id, alone.clone()).await.unwrap();
    }
    b.cancel(&root, alone).await.unwrap();
    let other = b.create_one(exec("visits", "roots")).await.unwrap().id;
    assert_eq!(root.partition(), other.partition());

    let parts = b
        .cancel_units(
            &[root.clone(), other.clone()],
            &CancelRequest::because("bulk"),
        )
        .await
        .unwrap();
    assert_eq!(parts[0].as_ref().ok(), Some(&CancelPart::Finished));
    assert_eq!(parts[1].as_ref().ok(), Some(&CancelPart::NotReached));
    assert_eq!(b.describe(&other).await.unwrap().state, State::Waiting);
}

/// Units of cancels and replays naming the executions of two flows in
/// opposite orders, run at once through two instances, never deadlock:
/// each locks every root first, in one order. Each execution is changed
/// by exactly one of them, and the other answers what it found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn units_in_opposite_orders_never_deadlock() {
    use baton_core::CancelPart;
    let Some(server) = servers::postgres().await else {
        return;
    };
    let schema = PostgresServer::unique_schema();
    let url = server.schema_url(&schema);
    let backends = [open(&url).await, open(&url).await];
    let b = &backends[0];
    let first = b.create_one(exec("order", "roots")).await.unwrap().id;
    let mut second = b.create_one(exec("order", "roots")).await.unwrap().id;
    while second.partition() != first.partition() {
        second = b.create_one(exec("order", "roots")).await.unwrap().id;
    }
    let mut ids = Vec::new();
    for _ in 0..5 {
        for root in [&first, &second] {
            let kid = exec("order", "kids").with_parent(root.clone());
            ids.push(b.create_one(kid).await.unwrap().id);
        }
    }
    let reversed: Vec<_> = ids.iter().rev().cloned().collect();
    for round in 0..10 {
        let calls: Vec<_> = [(0, ids.clone(), "one"), (1, reversed.clone(), "two")]
            .into_iter()
            .map(|(i, unit, reason)| {
                let b = backends[i].clone();
                tokio::spawn(async move {
                    let parts = b
                        .cancel_units(&unit, &CancelRequest::because(reason))
                        .await
                        .unwrap();
                    unit.into_iter().zip(parts).collect::<Vec<_>>()
                })
            })
            .collect();
        let mut cancelled = std::collections::HashMap::new();
        for (call, reason) in calls.into_iter().zip(["one", "two"]) {
            for (id, part) in call.await.unwrap() {
                match part.unwrap() {
                    CancelPart::Cancelled => assert!(
                        cancelled.insert(id, reason).is_none(),
                        "round {round}: cancelled twice"
                    ),
                    CancelPart::Finished => {}
                    CancelPart::NotReached => panic!("round {round}: within the budget"),
                }
            }
        }
        assert_eq!(cancelled.len(), ids.len(), "round {round}");
        for (id, reason) in &cancelled {
            let snap = b.describe(id).await.unwrap();
            assert_eq!(
                snap.cancel_reason.as_deref(),
                Some(*reason),
                "round {round}"
            );
        }
        let calls: Vec<_> = [(0, ids.clone()), (1, reversed.clone())]
            .into_iter()
            .map(|(i, unit)| {
                let b = backends[i].clone();
                tokio::spawn(async move {
                    let answers = b.replay_units(&unit).await.unwrap();
                    unit.into_iter().zip(answers).collect::<Vec<_>>()
                })
            })
            .collect();
        let mut replayed = std::collections::HashSet::new();
        for call in calls {
            for (id, answer) in call.await.unwrap() {
                match answer {
                    Ok(()) => assert!(replayed.insert(id), "round {round}: replayed twice"),
                    Err(EngineError::Conflict { .. }) => {}
                    Err(e) => panic!("round {round}: {e:?}"),
                }
            }
        }
        assert_eq!(replayed.len(), ids.len(), "round {round}");
    }
    let mut raw = connect_raw(server).await;
    for root in [&first, &second] {
        assert_eq!(open_children(&mut raw, &schema, root).await, 5);
    }
}

/// A unit that Postgres picks to break a cycle of waits (closed here by
/// hand: a writer holding one of its executions then locking the flow's
/// root, which the unit holds) answers `Contention` as a whole, with
/// nothing of it written, not an error of one id; a bulk cancel meeting
/// the same cycle asks the unit again and cancels both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadlocked_unit_answers_contention_and_is_asked_again() {
    use baton_core::{BulkAction, BulkRequest, ListFilter};
    let Some(server) = servers::postgres().await else {
        return;
    };
    let schema = PostgresServer::unique_schema();
    let b = open(&server.schema_url(&schema)).await;
    let root = b.create_one(exec("cycle", "roots")).await.unwrap().id;
    let mut kids = Vec::new();
    for _ in 0..2 {
        let kid = exec("cycle", "kids").with_parent(root.clone());
        kids.push(b.create_one(kid).await.unwrap().id);
    }
    let mut watch = connect_raw(server).await;
    let mut holder = connect_raw(server).await;
    let request = CancelRequest::because("bulk");
    for via_bulk in [false, true] {
        let mut held = sqlx::Connection::begin(&mut holder).await.unwrap();
        let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut *held)
            .await
            .unwrap();
        lock_execution(&mut held, &schema, &kids[1]).await;
        let call = {
            let (b, ids, request) = (b.clone(), kids.clone(), request.clone());
            tokio::spawn(async move {
                if via_bulk {
                    let report = b
                        .bulk(BulkRequest {
                            action: BulkAction::Cancel(request),
                            filter: ListFilter::namespace(Namespace::new("cycle").unwrap()),
                            ids,
                            limit: 10,
                            dry_run: false,
                            cursor: None,
                            actor: None,
                        })
                        .await
                        .unwrap();
                    assert_eq!((report.changed, report.skipped), (2, Vec::new()));
                    None
                } else {
                    Some(b.cancel_units(&ids, &request).await)
                }
            })
        };
        await_waiters(&mut watch, pid, 1).await;
        // The unit waits for the held execution, holding the root; waiting
        // for the root now closes the cycle. The unit began waiting first,
        // so its deadlock check runs first and picks it.
        tokio::time::sleep(Duration::from_millis(300)).await;
        lock_execution(&mut held, &schema, &root).await;
        if !via_bulk {
            assert_eq!(b.describe(&kids[0]).await.unwrap().state, State::Waiting);
        }
        held.rollback().await.unwrap();
        match call.await.unwrap() {
            Some(answer) => {
                assert!(
                    matches!(answer, Err(EngineError::Contention { .. })),
                    "{answer:?}"
                );
                for kid in &kids {
                    assert_eq!(b.describe(kid).await.unwrap().state, State::Waiting);
                }
            }
            None => {
                for kid in &kids {
                    let snap = b.describe(kid).await.unwrap();
                    assert_eq!(snap.state, State::Cancelled);
                    assert_eq!(snap.cancel_reason.as_deref(), Some("bulk"));
                }
            }
        }
    }
}

/// A limit of `namespace` capping every lane's executions at `cap` per
/// `tenant` tag.
fn tenant_cap(name: &str, namespace: &str, cap: u32) -> baton_core::Limit {
    baton_core::Limit {
        name: baton_core::LimitName::new(name).unwrap(),
        namespace: Namespace::new(namespace).unwrap(),
        lane: None,
        key: "tag:tenant".parse().unwrap(),
        max_running: Some(cap),
        rate: None,
        fair: false,
    }
}

fn tenant_exec(ns: &str, lane: &str, tenant: &str) -> NewExecution {
    exec(ns, lane).with_tag(baton_core::TagKey::new("tenant").unwrap(), tenant)
}

/// How many executions of `tenant` run now under the limit `name`.
async fn running_of(b: &PostgresBackend, name: &baton_core::LimitName, tenant: &str) -> u64 {
    b.limit_usage(name, 100)
        .await
        .unwrap()
        .into_iter()
        .find(|u| u.key_value == tenant)
        .map_or(0, |u| u.running)
}

/// Eight claimers, each through an instance (and pool) of its own, over
/// two lanes one limit covers, start together round after round: together
/// they never run more of the key than its cap, and each round takes
/// exactly the slots the completions before it freed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cap_holds_for_claimers_of_separate_instances() {
    let Some(server) = servers::postgres().await else {
        return;
    };
    let url = server.schema_url(&PostgresServer::unique_schema());
    let mut instances = Vec::new();
    for _ in 0..8 {
        instances.push(open(&url).await);
    }
    let limit = tenant_cap("racing-cap", "racing", 3);
    assert_eq!(instances[0].set_limit(&limit).await.unwrap(), None);
    let batch = (0..60)
        .map(|i| tenant_exec("racing", if i % 2 == 0 { "a" } else { "b" }, "acme"))
        .collect();
    instances[0].create(batch).await.unwrap();
    let mut running: Vec<baton_core::Claim> = Vec::new();
    for round in 0..6 {
        let start = Arc::new(tokio::sync::Barrier::new(instances.len()));
        let claimers: Vec<_> = instances
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let (b, start) = (b.clone(), start.clone());
                tokio::spawn(async move {
                    let request = ClaimRequest::new(
                        Namespace::new("racing").unwrap(),
                        Lane::new(if i % 2 == 0 { "a" } else { "b" }).unwrap(),
                        WorkerId::new(format!("w{i}")).unwrap(),
                        3,
                    );
                    start.wait().await;
                    b.claim(request).await.unwrap()
                })
            })
            .collect();
        for claimer in claimers {
            running.extend(claimer.await.unwrap());
        }
        assert_eq!(running.len(), 3, "round {round}: the cap holds");
        assert_eq!(running_of(&instances[0], &limit.name, "acme").await, 3);
        for claim in running.drain(..round % 3 + 1) {
            instances[round % 8]
                .complete(&claim.lease, Vec::new())
                .await
                .unwrap();
        }
    }
}

/// A limit set while claimers of another instance keep claiming applies
/// from the moment `set_limit` answered: the key already runs more than
/// the cap, and nothing more of it is claimed afterwards; once those runs
/// ended, the claimers take exactly the cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_set_while_claims_run_applies_once_it_answered() {
    let Some(server) = servers::postgres().await else {
        return;
    };
    let url = server.schema_url(&PostgresServer::unique_schema());
    let operator = open(&url).await;
    let claimer = open(&url).await;
    operator
        .create(
            (0..200)
                .map(|_| tenant_exec("late", "main", "acme"))
                .collect(),
        )
        .await
        .unwrap();
    let claimed = Arc::new(std::sync::Mutex::new(Vec::<baton_core::Claim>::new()));
    let start_claimers = |stop: Arc<std::sync::atomic::AtomicBool>| {
        (0..4)
            .map(|i| {
                let (b, claimed, stop) = (claimer.clone(), claimed.clone(), stop.clone());
                tokio::spawn(async move {
                    let request = ClaimRequest::new(
                        Namespace::new("late").unwrap(),
                        Lane::new("main").unwrap(),
                        WorkerId::new(format!("w{i}")).unwrap(),
                        2,
                    );
                    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                        let claims = b.claim(request.clone()).await.unwrap();
                        claimed.lock().unwrap().extend(claims);
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                })
            })
            .collect::<Vec<_>>()
    };
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let claimers = start_claimers(stop.clone());
    for _ in 0..3_000 {
        if claimed.lock().unwrap().len() >= 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let limit = tenant_cap("late-cap", "late", 2);
    assert_eq!(operator.set_limit(&limit).await.unwrap(), None);
    let at_set = running_of(&operator, &limit.name, "acme").await;
    assert!(at_set >= 6, "claims ran before the limit: {at_set}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        running_of(&operator, &limit.name, "acme").await,
        at_set,
        "nothing claimed once set_limit answered"
    );
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for c in claimers {
        c.await.unwrap();
    }
    let before: Vec<_> = std::mem::take(&mut *claimed.lock().unwrap());
    assert_eq!(before.len() as u64, at_set, "every run was claimed before");
    for claim in &before {
        operator.complete(&claim.lease, Vec::new()).await.unwrap();
    }
    assert_eq!(running_of(&operator, &limit.name, "acme").await, 0);

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let claimers = start_claimers(stop.clone());
    for _ in 0..3_000 {
        if claimed.lock().unwrap().len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for c in claimers {
        c.await.unwrap();
    }
    assert_eq!(claimed.lock().unwrap().len(), 2, "exactly the cap");
    assert_eq!(running_of(&operator, &limit.name, "acme").await, 2);
}

/// Migration 13 on a schema at version 12 (its tables dropped and its
/// record removed, as sqlx's bookkeeping would hold it before the
/// upgrade; migration 15, which adds to its table, undone the same way):
/// the next start applies them alone, no limit exists, and a limit set
/// then counts the executions that ran before.
#[tokio::test]
async fn version_13_applies_on_a_schema_at_version_12() {
    let Some(server) = servers::postgres().await else {
        return;
    };
    let schema = PostgresServer::unique_schema();
    let url = server.schema_url(&schema);
    let before = open(&url).await;
    before
        .create(vec![
            tenant_exec("upgrade", "main", "acme"),
            tenant_exec("upgrade", "main", "acme"),
        ])
        .await
        .unwrap();
    let ran = claim_one(&before, "upgrade", "main").await;
    before.close().await;
    let mut conn = connect_raw(server).await;
    sqlx::raw_sql(&format!(
        "DROP TABLE {schema}.limit_windows; DROP TABLE {schema}.limits; \
         DROP TRIGGER executions_fair_created ON {schema}.executions; \
         DROP TRIGGER executions_fair_moved ON {schema}.executions; \
         DROP FUNCTION {schema}.baton_fair_turn(); \
         ALTER TABLE {schema}.executions DROP COLUMN fair_key; \
         DELETE FROM {schema}._sqlx_migrations WHERE version IN (13, 15, 16)"
    ))
    .execute(&mut conn)
    .await
    .unwrap();

    let after = open(&url).await;
    assert_eq!(after.applied_migrations().await.unwrap(), every_version());
    assert_eq!(after.limits(None).await.unwrap(), vec![]);
    let limit = tenant_cap("upgrade-cap", "upgrade", 1);
    assert_eq!(after.set_limit(&limit).await.unwrap(), None);
    let request = ClaimRequest::new(
        Namespace::new("upgrade").unwrap(),
        Lane::new("main").unwrap(),
        WorkerId::new("w").unwrap(),
        5,
    );
    assert!(after.claim(request.clone()).await.unwrap().is_empty());
    assert_eq!(running_of(&after, &limit.name, "acme").await, 1);
    after.complete(&ran.lease, Vec::new()).await.unwrap();
    assert_eq!(after.claim(request).await.unwrap().len(), 1);
}

/// Migration 19 on a schema at version 18 (the attempts moved back into
/// `attempts`, the row's columns and the view dropped, its record
/// removed): every attempt reads as before the upgrade; a run in flight
/// then completes through its lease; a failed execution replayed later
/// keeps its first attempt in `attempts` and its second in its row, and
/// its history reads both in order.
#[tokio::test]
async fn version_19_applies_on_a_schema_at_version_18() {
    let Some(server) = servers::postgres().await else {
        return;
    };
    let schema = PostgresServer::unique_schema();
    let url = server.schema_url(&schema);
    let before = open(&url).await;
    let wrote = baton_testkit::upgrade::attempts_before_an_upgrade(&before, "upgrade").await;
    before.close().await;
    let mut conn = connect_raw(server).await;
    sqlx::raw_sql(&format!(
        "SET search_path = {schema}; \
         INSERT INTO attempts (partition, execution_uuid, number, worker_id, nonce, \
             started_at, ended_at, outcome, error) \
         SELECT partition, uuid, attempts, attempt_worker, attempt_nonce, attempt_started_at, \
             attempt_ended_at, attempt_outcome, attempt_error \
         FROM executions WHERE attempt_started_at IS NOT NULL; \
         DROP VIEW attempt_history; \
         ALTER TABLE executions DROP COLUMN attempt_worker, DROP COLUMN attempt_nonce, \
             DROP COLUMN attempt_started_at, DROP COLUMN attempt_ended_at, \
             DROP COLUMN attempt_outcome, DROP COLUMN attempt_error; \
         DELETE FROM _sqlx_migrations WHERE version = 19"
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    let in_table: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {schema}.attempts"))
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        in_table, 2,
        "at version 18 every attempt is a row of attempts"
    );

    let after = open(&url).await;
    assert_eq!(after.applied_migrations().await.unwrap(), every_version());
    let kept: Vec<uuid::Uuid> =
        sqlx::query_scalar(&format!("SELECT execution_uuid FROM {schema}.attempts"))
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(
        kept,
        vec![wrote.failed.id.uuid()],
        "the failed execution keeps its attempt apart; the running one's moved to its row"
    );
    baton_testkit::upgrade::attempts_after_an_upgrade(&after, &wrote).await;
}

/// A limit of every lane removed through one instance wakes a claimer
/// parked on another (the notification names the namespace alone).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_removed_wakes_claimers_of_another_instance() {
    let Some(server) = servers::postgres().await else {
        return;
    };
    let url = server.schema_url(&PostgresServer::unique_schema());
    let operator = open(&url).await;
    let claimer = open(&url).await;
    let (ns, lane) = (Namespace::new("held").unwrap(), Lane::new("main").unwrap());
    let limit = tenant_cap("held-cap", "held", 0);
    operator.set_limit(&limit).await.unwrap();
    let id = claimer
        .create_one(tenant_exec("held", "main", "acme"))
        .await
        .unwrap()
        .id;
    let request = ClaimRequest::new(ns.clone(), lane.clone(), WorkerId::new("w").unwrap(), 10);
    assert!(claimer.claim(request.clone()).await.unwrap().is_empty());
    let mut waiter = parked(&claimer, "held", "main");
    // Remove (and set again) until the waiter returns, so the test does
    // not depend on when its LISTEN began: nothing else wakes the lane.
    for _ in 0..600 {
        assert!(operator.remove_limit(&limit.name).await.unwrap().is_some());
        if let Ok(joined) = tokio::time::timeout(Duration::from_millis(50), &mut waiter).await {
            joined.unwrap().unwrap();
            let claims = claimer.claim(request).await.unwrap();
            assert_eq!(claims.len(), 1);
            assert_eq!(claims[0].id, id);
            return;
        }
        operator.set_limit(&limit).await.unwrap();
    }
    waiter.abort();
    panic!("the waiter was never woken by the other instance's limit removals");
}

/// `set_limit` waits for a claim statement in flight that read no limit:
/// a claim held up inside its statement (its session lock waits for another
/// connection's uncommitted one) keeps `set_limit` from answering until it committed, so once
/// `set_limit` answered every run it did not judge is already counted, and
/// nothing more of the key is claimed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_limit_waits_for_a_claim_in_flight() {
    let Some(server) = servers::postgres().await else {
        return;
    };
    let schema = PostgresServer::unique_schema();
    let url = server.schema_url(&schema);
    let operator = open(&url).await;
    let claimer = open(&url).await;
    operator
        .create(
            (0..3)
                .map(|_| tenant_exec("inflight", "main", "acme"))
                .collect(),
        )
        .await
        .unwrap();
    let request = ClaimRequest::new(
        Namespace::new("inflight").unwrap(),
        Lane::new("main").unwrap(),
        WorkerId::new("w").unwrap(),
        3,
    );
    assert_eq!(claimer.claim(request.clone()).await.unwrap().len(), 3);
    let next = operator
        .create_one(
            tenant_exec("inflight", "main", "acme")
                .with_session(baton_core::SessionName::new("held").unwrap()),
        )
        .await
        .unwrap()
        .id;
    operator
        .create_one(tenant_exec("inflight", "main", "acme"))
        .await
        .unwrap();
    let mut watch = connect_raw(server).await;
    let mut holder = connect_raw(server).await;
    let mut held = sqlx::Connection::begin(&mut holder).await.unwrap();
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *held)
        .await
        .unwrap();
    // The lock of `next`'s session, taken first and not committed: the
    // claim (which cannot see it yet, so picks `next`) waits inside its
    // statement for this connection when it takes the lock.
    sqlx::query(&format!(
        "INSERT INTO {schema}.sessions (namespace, session, partition, worker_id, \
         expires_at, idle_ms) VALUES ('inflight', 'held', $1, 'holder', 0, 1)"
    ))
    .bind(i16::try_from(next.partition().get()).unwrap())
    .execute(&mut *held)
    .await
    .unwrap();
    let claim = {
        let (b, mut one) = (claimer.clone(), request.clone());
        one.max = 1;
        tokio::spawn(async move { b.claim(one).await })
    };
    await_waiters(&mut watch, pid, 1).await;
    let limit = tenant_cap("inflight-cap", "inflight", 2);
    let mut set = {
        let (b, limit) = (operator.clone(), limit.clone());
        tokio::spawn(async move { b.set_limit(&limit).await })
    };
    await_waiters(&mut watch, pid, 2).await;
    assert!(
        tokio::time::timeout(Duration::from_millis(200), &mut set)
            .await
            .is_err(),
        "set_limit answered while a claim that read no limit was in flight"
    );
    held.rollback().await.unwrap();
    let taken = claim.await.unwrap().unwrap();
    assert_eq!(
        taken.len(),
        1,
        "the claim in flight judged without the limit"
    );
    assert_eq!(taken[0].id, next);
    assert_eq!(set.await.unwrap().unwrap(), None);
    assert_eq!(running_of(&operator, &limit.name, "acme").await, 4);
    assert!(claimer.claim(request).await.unwrap().is_empty());
}

const CLOCK_START_MS: i64 = 2_251_000_000_000;

fn session_exec(ns: &str, session: &str) -> NewExecution {
    exec(ns, "main").with_session(baton_core::SessionName::new(session).unwrap())
}

/// A backend on its own schema whose clock the test moves, from the
/// instant `CLOCK_START_MS`.
async fn open_clocked(url: &str) -> (PostgresBackend, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(baton_core::Timestamp::from_millis(
        CLOCK_START_MS,
    )));
    let backend = PostgresBackend::open(
        PostgresConfig::from_url(url)
            .unwrap()
            .with_clock(clock.clone()),
    )
    .await
    .unwrap();
    (backend, clock)
}

/// The stored lock of `session` in namespace `ns`: (worker, expiry, idle).
async fn session_row(
    server: &PostgresServer,
    schema: &str,
    ns: &str,
    session: &str,
) -> Option<(String, i64, i64)> {
    let mut conn = connect_raw(server).await;
    sqlx::query_as(&format!(
        "SELECT worker_id, expires_at, idle_ms FROM {schema}.sessions \
         WHERE namespace = $1 AND session = $2"
    ))
    .bind(ns)
    .bind(session)
    .fetch_optional(&mut conn)
    .await
    .unwrap()
}

/// Session names of namespace `ns` whose work and locks live in
/// `partition`.
fn sessions_in(
    ns: &str,
    partition: baton_core::PartitionId,
    count: PartitionCount,
    n: usize,
) -> Vec<String> {
    let namespace = Namespace::new(ns).unwrap();
    (0..)
        .map(|i| format!("s{i}"))
        .filter(|s| {
            let session = baton_core::SessionName::new(s).unwrap();
            baton_core::raw::rules::session_partition(&namespace, &session, count) == partition
        })
        .take(n)
        .collect()
}

/// Eight claimers, each through an instance (and pool) of its own, start
/// together round after round over 30 sessions of 4 executions, none
/// completing, then take what is left one after the other: every
/// execution is claimed once, every session's runs belong to one worker,
/// and that worker holds the session's lock. With `limited`, a limit
/// covering the namespace (with room for everything) sends every claim
/// through the limited path.
async fn claimers_of_separate_instances_never_share_a_session(limited: bool) {
    let Some(server) = servers::postgres().await else {
        return;
    };
    let schema = PostgresServer::unique_schema();
    let url = server.schema_url(&schema);
    let mut instances = Vec::new();
    for _ in 0..8 {
        instances.push(open(&url).await);
    }
    if limited {
        let limit = tenant_cap("roomy", "sessions", 1_000);
        instances[0].set_limit(&limit).await.unwrap();
    }
    // A session's executions next to each other in claim order, so
    // claimers starting together pick executions of one session that
    // nobody holds yet.
    let batch = (0..30)
        .flat_map(|s| (0..4).map(move |_| session_exec("sessions", &format!("chat-{s}"))))
        .map(|e| e.with_tag(baton_core::TagKey::new("tenant").unwrap(), "acme"))
        .collect();
    instances[0].create(batch).await.unwrap();
    let request = |i: usize| {
        ClaimRequest::new(
            Namespace::new("sessions").unwrap(),
            Lane::new("main").unwrap(),
            WorkerId::new(format!("w{i}")).unwrap(),
            3,
        )
    };
    let mut claims: Vec<(usize, baton_core::Claim)> = Vec::new();
    for _round in 0..6 {
        let start = Arc::new(tokio::sync::Barrier::new(instances.len()));
        let claimers: Vec<_> = instances
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let (b, start, request) = (b.clone(), start.clone(), request(i));
                tokio::spawn(async move {
                    start.wait().await;
                    (i, b.claim(request).await.unwrap())
                })
            })
            .collect();
        for claimer in claimers {
            let (i, taken) = claimer.await.unwrap();
            claims.extend(taken.into_iter().map(|c| (i, c)));
        }
    }
    for (i, b) in instances.iter().enumerate() {
        loop {
            let taken = b.claim(request(i)).await.unwrap();
            if taken.is_empty() {
                break;
            }
            claims.extend(taken.into_iter().map(|c| (i, c)));
        }
    }
    let ids: std::collections::BTreeSet<_> = claims.iter().map(|(_, c)| c.id.clone()).collect();
    assert_eq!(ids.len(), claims.len(), "an execution was claimed twice");
    assert_eq!(claims.len(), 120, "every execution was claimed");
    let mut owners: std::collections::BTreeMap<String, std::collections::BTreeSet<usize>> =
        std::collections::BTreeMap::new();
    for (i, c) in &claims {
        let session = c.session.as_ref().expect("a claim names its session");
        owners.entry(session.to_string()).or_default().insert(*i);
    }
    assert_eq!(owners.len(), 30);
    for (session, workers) in &owners {
        assert_eq!(workers.len(), 1, "session {session} ran on {workers:?}");
        let holder = workers.iter().next().map(|i| format!("w{i}"));
        let (worker, _, _) = session_row(server, &schema, "sessions", session)
            .await
            .unwrap();
        assert_eq!(Some(worker), holder, "session {session}'s lock");
    }
    let mut conn = connect_raw(server).await;
    let shared: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM (SELECT session FROM {schema}.executions \
         WHERE state = 'running' GROUP BY session HAVING count(DISTINCT worker_id) > 1) s"
    ))
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(shared, 0, "no session runs on two workers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claimers_of_separate_instances_never_share_a_session_on_the_fast_path() {
    claimers_of_separate_instances_never_share_a_session(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claimers_of_separate_instances_never_share_a_session_under_a_limit() {
    claimers_of_separate_instances_never_share_a_session(true).await;
}

/// A claim stores the session's lock until the later of the lease and the
/// idle time, with the idle time; a renew extends it to the later of the
/// lock, the stored idle time from now and the new lease, and never
/// shrinks it; a renew of another worker's lease leaves the lock alone.
#[tokio::test]
async fn a_renew_extends_the_session_lock_by_its_stored_idle_time() {
    let Some(server) = servers::postgres().await else {
        return;
    };
    let schema = PostgresServer::unique_schema();
    let (b, clock) = open_clocked(&server.schema_url(&schema)).await;
    let t0 = CLOCK_START_MS;
    b.create(vec![
        session_exec("renew", "long"),
        session_exec("renew", "short"),
    ])
    .await
    .unwrap();
    let claim = |session_idle_ms: u64| {
        ClaimRequest::new(
            Namespace::new("renew").unwrap(),
            Lane::new("main").unwrap(),
            WorkerId::new("w").unwrap(),
            2,
        )
        .with_lease_ttl(Duration::from_secs(10))
        .with_session_idle(Duration::from_millis(session_idle_ms))
    };
    let taken = b.claim(claim(60_000)).await.unwrap();
    assert_eq!(taken.len(), 2);
    for session in ["long", "short"] {
        assert_eq!(
            session_row(server, &schema, "renew", session).await,
            Some(("w".to_owned(), t0 + 60_000, 60_000))
        );
    }
    // The short session's lock as a claim with a 1 s idle time took it.
    let mut conn = connect_raw(server).await;
    sqlx::query(&format!(
        "UPDATE {schema}.sessions SET expires_at = $1, idle_ms = 1000 WHERE session = 'short'"
    ))
    .bind(t0 + 10_000)
    .execute(&mut conn)
    .await
    .unwrap();
    clock.advance(Duration::from_secs(8));
    let leases: Vec<_> = taken.iter().map(|c| c.lease.clone()).collect();
    let renewed = b
        .renew(baton_core::RenewRequest {
            worker_id: WorkerId::new("w").unwrap(),
            lease_ttl: Duration::from_secs(10),
            leases: leases.clone(),
        })
        .await
        .unwrap();
    assert!(
        renewed
            .iter()
            .all(|r| r.status == baton_core::RenewStatus::Renewed)
    );
    assert_eq!(
        session_row(server, &schema, "renew", "long").await,
        Some(("w".to_owned(), t0 + 68_000, 60_000)),
        "now + the stored idle time"
    );
    assert_eq!(
        session_row(server, &schema, "renew", "short").await,
        Some(("w".to_owned(), t0 + 18_000, 1_000)),
        "the new lease"
    );
    // Another worker presenting the leases renews nothing and moves no lock.
    clock.advance(Duration::from_secs(1));
    b.renew(baton_core::RenewRequest {
        worker_id: WorkerId::new("other").unwrap(),
        lease_ttl: Duration::from_secs(600),
        leases,
    })
    .await
    .unwrap();
    assert_eq!(
        session_row(server, &schema, "renew", "short").await,
        Some(("w".to_owned(), t0 + 18_000, 1_000))
    );
}

/// The reclaim pass of a session's partition drops the lock of a worker
/// whose lease lapsed, however long its idle time, and the partition's
/// lapsed locks, at most as many as the pass's limit; a live lock and the
/// lapsed locks of other partitions stay.
#[tokio::test]
async fn the_reclaim_pass_releases_dead_workers_sessions_and_sweeps_lapsed_locks() {
    let Some(server) = servers::postgres().await else {
        return;
    };
    let schema = PostgresServer::unique_schema();
    let (b, clock) = open_clocked(&server.schema_url(&schema)).await;
    let count = b.partitions();
    let (home, away) = (
        baton_core::PartitionId(1),
        baton_core::PartitionId(2 % count.get()),
    );
    let here = sessions_in("sweep", home, count, 5);
    let there = sessions_in("sweep", away, count, 1);
    let claim = |worker: &str, lease_s: u64, idle_s: u64| {
        ClaimRequest::new(
            Namespace::new("sweep").unwrap(),
            Lane::new("main").unwrap(),
            WorkerId::new(worker).unwrap(),
            1,
        )
        .with_lease_ttl(Duration::from_secs(lease_s))
        .with_session_idle(Duration::from_secs(idle_s))
    };
    // Three short locks of finished work here and one there; a live lock
    // here (idle an hour); a dead worker's run here (idle an hour too).
    for s in here[..3].iter().chain(&there) {
        b.create_one(session_exec("sweep", s)).await.unwrap();
        let taken = b.claim(claim("done", 5, 1)).await.unwrap();
        b.complete(&taken[0].lease, Vec::new()).await.unwrap();
    }
    b.create_one(session_exec("sweep", &here[3])).await.unwrap();
    let live = b.claim(claim("live", 3_600, 3_600)).await.unwrap();
    b.create_one(session_exec("sweep", &here[4])).await.unwrap();
    let dead = b.claim(claim("dead", 5, 3_600)).await.unwrap();
    assert_eq!(dead[0].session.as_ref().unwrap().as_str(), here[4]);
    clock.advance(Duration::from_secs(10));

    let report = b.reclaim_expired_leases(home, 2).await.unwrap();
    assert_eq!(report.processed, 1, "the dead worker's run");
    assert_eq!(session_row(server, &schema, "sweep", &here[4]).await, None);
    let lapsed_left = {
        let mut left = 0;
        for s in &here[..3] {
            left += usize::from(session_row(server, &schema, "sweep", s).await.is_some());
        }
        left
    };
    assert_eq!(
        lapsed_left, 1,
        "two lapsed locks swept, as the limit allows"
    );
    b.reclaim_expired_leases(home, 2).await.unwrap();
    for s in &here[..3] {
        assert_eq!(session_row(server, &schema, "sweep", s).await, None);
    }
    assert_eq!(
        session_row(server, &schema, "sweep", &here[3])
            .await
            .map(|r| r.0),
        Some("live".to_owned())
    );
    assert!(
        session_row(server, &schema, "sweep", &there[0])
            .await
            .is_some(),
        "another partition's lock waits for its own pass"
    );
    // The dead worker's session is free: another worker takes its work
    // once the retry is due.
    clock.advance(Duration::from_secs(600));
    b.promote_due(home, 100).await.unwrap();
    let taken = b.claim(claim("heir", 60, 60)).await.unwrap();
    assert_eq!(taken[0].id, dead[0].id);
    assert_eq!(
        session_row(server, &schema, "sweep", &here[4])
            .await
            .map(|r| r.0),
        Some("heir".to_owned())
    );
    assert!(live[0].session.is_some());
}

/// A fair-only limit of `namespace` taking turns by the `tenant` tag.
fn tenant_turns(name: &str, namespace: &str) -> baton_core::Limit {
    baton_core::Limit {
        max_running: None,
        fair: true,
        ..tenant_cap(name, namespace, 0)
    }
}

/// The stored turn (`ready_at`) and fair key of every execution of
/// namespace `ns`, by id.
async fn turns_of(
    server: &PostgresServer,
    schema: &str,
    ns: &str,
) -> std::collections::BTreeMap<uuid::Uuid, (i64, Option<String>)> {
    let mut conn = connect_raw(server).await;
    let rows: Vec<(uuid::Uuid, i64, Option<String>)> = sqlx::query_as(&format!(
        "SELECT uuid, ready_at, fair_key FROM {schema}.executions WHERE namespace = $1"
    ))
    .bind(ns)
    .fetch_all(&mut conn)
    .await
    .unwrap();
    rows.into_iter().map(|(u, r, k)| (u, (r, k))).collect()
}

/// Eight creators, each through an instance of its own, submit batches of
/// one key into a fair lane at once: none fails, every execution is
/// stamped with the key, and each batch holds turns of its own (a
/// statement sees the rows it wrote before); concurrent batches may share
/// turns (ties go by id). A key that comes after them starts at the head
/// and takes turns with them: its three executions are claimed within the
/// first rounds, not after the eighty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creators_of_one_key_each_get_turns() {
    let Some(server) = servers::postgres().await else {
        return;
    };
    let schema = PostgresServer::unique_schema();
    let url = server.schema_url(&schema);
    let mut instances = Vec::new();
    for _ in 0..8 {
        instances.push(open(&url).await);
    }
    let limit = tenant_turns("racing-turns", "racing");
    assert_eq!(instances[0].set_limit(&limit).await.unwrap(), None);
    let start = Arc::new(tokio::sync::Barrier::new(instances.len()));
    let creators: Vec<_> = instances
        .iter()
        .map(|b| {
            let (b, start) = (b.clone(), start.clone());
            tokio::spawn(async move {
                let batch = (0..10)
                    .map(|_| tenant_exec("racing", "main", "big"))
                    .collect();
                start.wait().await;
                b.create(batch).await.unwrap()
            })
        })
        .collect();
    let mut batches = Vec::new();
    for creator in creators {
        let created = creator.await.unwrap();
        assert_eq!(created.len(), 10);
        batches.push(created.into_iter().map(|o| o.id).collect::<Vec<_>>());
    }
    let turns = turns_of(server, &schema, "racing").await;
    assert_eq!(turns.len(), 80);
    for batch in &batches {
        let mut own: Vec<i64> = batch
            .iter()
            .map(|id| {
                let (turn, key) = &turns[&id.uuid()];
                assert_eq!(key.as_deref(), Some("big"), "{id} is stamped");
                *turn
            })
            .collect();
        own.sort_unstable();
        own.dedup();
        assert_eq!(own.len(), 10, "one batch, ten turns: {own:?}");
    }
    let head = turns.values().map(|t| t.0).min().unwrap();

    let small: Vec<uuid::Uuid> = instances[1]
        .create(
            (0..3)
                .map(|_| tenant_exec("racing", "main", "small"))
                .collect(),
        )
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.id.uuid())
        .collect();
    let turns = turns_of(server, &schema, "racing").await;
    let mut small_turns: Vec<i64> = small.iter().map(|u| turns[u].0).collect();
    small_turns.sort_unstable();
    assert_eq!(small_turns, vec![head, head + 1, head + 2]);

    let request = ClaimRequest::new(
        Namespace::new("racing").unwrap(),
        Lane::new("main").unwrap(),
        WorkerId::new("w").unwrap(),
        100,
    );
    let claims = instances[2].claim(request).await.unwrap();
    assert_eq!(claims.len(), 83);
    let at: Vec<usize> = claims
        .iter()
        .enumerate()
        .filter(|(_, c)| small.contains(&c.id.uuid()))
        .map(|(i, _)| i)
        .collect();
    // At most eight executions of `big` (one per batch) share a turn.
    assert!(
        at.len() == 3 && at.iter().all(|i| *i < 27),
        "the newcomer is served in the first rounds: {at:?}"
    );
}

/// In a deployment where another namespace has a fair limit, work of a
/// namespace with only a cap is never stamped and keeps the order it
/// became ready in: created and retried work keeps the time of its move
/// as `ready_at`, reprioritised work keeps its own, and claims take it in
/// that order. The fair
/// namespace's work, created at the same instant, is stamped and takes
/// successive turns.
#[tokio::test]
async fn a_namespace_without_fair_limits_keeps_ready_order() {
    let Some(server) = servers::postgres().await else {
        return;
    };
    let schema = PostgresServer::unique_schema();
    let (b, clock) = open_clocked(&server.schema_url(&schema)).await;
    b.set_limit(&tenant_turns("fair-turns", "fairns"))
        .await
        .unwrap();
    b.set_limit(&tenant_cap("plain-cap", "plain", 10))
        .await
        .unwrap();
    let retry = baton_core::RetryPolicy::attempts(3);
    let t0 = CLOCK_START_MS;
    let first: Vec<baton_core::ExecutionId> = b
        .create(
            (0..3)
                .map(|_| tenant_exec("plain", "main", "acme").with_retry(retry))
                .collect(),
        )
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.id)
        .collect();
    let fair: Vec<_> = b
        .create(
            (0..2)
                .map(|_| tenant_exec("fairns", "main", "acme"))
                .collect(),
        )
        .await
        .unwrap();
    clock.advance(Duration::from_millis(5));
    let second = b
        .create_one(tenant_exec("plain", "main", "acme"))
        .await
        .unwrap()
        .id;
    let turns = turns_of(server, &schema, "plain").await;
    assert_eq!(turns.len(), 4);
    assert!(turns.values().all(|(_, key)| key.is_none()), "{turns:?}");
    for id in &first {
        assert_eq!(turns[&id.uuid()].0, t0);
    }
    assert_eq!(turns[&second.uuid()].0, t0 + 5);
    let fair_turns = turns_of(server, &schema, "fairns").await;
    let mut stamped: Vec<(i64, Option<String>)> = fair
        .iter()
        .map(|o| fair_turns[&o.id.uuid()].clone())
        .collect();
    stamped.sort();
    let acme = Some("acme".to_owned());
    assert_eq!(stamped, vec![(t0, acme.clone()), (t0 + 1, acme)]);

    // A retry at t0 + 10 stamps the time of its move; a change of
    // priority at t0 + 12 keeps the time the execution became ready.
    clock.advance(Duration::from_millis(5));
    let claimed = claim_one(&b, "plain", "main").await;
    let retried = b
        .fail(
            &claimed.lease,
            baton_core::Failure::retry_after("again", Duration::ZERO),
        )
        .await
        .unwrap();
    assert_eq!(retried.state, State::Waiting);
    clock.advance(Duration::from_millis(2));
    let raised = first.iter().find(|id| **id != claimed.id).unwrap().clone();
    b.set_priority(&raised, 1).await.unwrap();
    let turns = turns_of(server, &schema, "plain").await;
    assert!(turns.values().all(|(_, key)| key.is_none()), "{turns:?}");
    assert_eq!(turns[&claimed.id.uuid()].0, t0 + 10, "{turns:?}");
    assert_eq!(turns[&raised.uuid()].0, t0, "{turns:?}");
    let request = ClaimRequest::new(
        Namespace::new("plain").unwrap(),
        Lane::new("main").unwrap(),
        WorkerId::new("w").unwrap(),
        10,
    );
    let order: Vec<uuid::Uuid> = b
        .claim(request)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id.uuid())
        .collect();
    let mut rest: Vec<(i64, uuid::Uuid)> = turns
        .iter()
        .filter(|(u, _)| **u != raised.uuid())
        .map(|(u, t)| (t.0, *u))
        .collect();
    rest.sort();
    let expected: Vec<uuid::Uuid> = std::iter::once(raised.uuid())
        .chain(rest.into_iter().map(|(_, u)| u))
        .collect();
    assert_eq!(order, expected, "by priority, then ready time, then id");
    assert_eq!(order.last(), Some(&claimed.id.uuid()), "the retry is last");
}

/// A fair-only limit orders work but never holds it back, so claims of the
/// lanes it covers take the path of claims without limits: they take work
/// while another transaction holds the limit's row (a limited claim would
/// wait for it), and `explain` never names the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fair_only_limit_never_takes_claims_down_the_limited_path() {
    let Some(server) = servers::postgres().await else {
        return;
    };
    let schema = PostgresServer::unique_schema();
    let b = open(&server.schema_url(&schema)).await;
    let limit = tenant_turns("only-turns", "onlyfair");
    b.set_limit(&limit).await.unwrap();
    assert_eq!(b.limits(None).await.unwrap(), vec![limit.clone()]);
    let id = b
        .create_one(tenant_exec("onlyfair", "main", "acme"))
        .await
        .unwrap()
        .id;
    let explained = b.explain(&id).await.unwrap();
    assert_ne!(explained.reason, Some("limited"), "{explained:?}");
    let mut holder = connect_raw(server).await;
    sqlx::raw_sql(&format!(
        "BEGIN; SELECT 1 FROM {schema}.limits WHERE name = 'only-turns' FOR UPDATE"
    ))
    .execute(&mut holder)
    .await
    .unwrap();
    let claim = tokio::time::timeout(Duration::from_secs(10), claim_one(&b, "onlyfair", "main"))
        .await
        .expect("the claim does not wait for the limit's row");
    assert_eq!(claim.id, id);
    sqlx::raw_sql("ROLLBACK")
        .execute(&mut holder)
        .await
        .unwrap();
}

/// Runs one `create` per kind of `kinds` while another transaction holds
/// `retention_rules` (every create statement reads it, so statements wait
/// for the lock): the first two calls one by one until each statement
/// waits, which takes every running slot of the instance, then the rest
/// at once, which queue; releases the lock once they have had time to
/// queue, and answers each call's outcome, in order.
async fn creates_behind_a_lock(
    backend: &PostgresBackend,
    server: &PostgresServer,
    schema: &str,
    ns: &str,
    kinds: &[&str],
) -> Vec<Result<baton_core::CreateOutcome, EngineError>> {
    let mut holder = <sqlx::PgConnection as sqlx::Connection>::connect(server.url())
        .await
        .unwrap();
    sqlx::raw_sql(&format!(
        "BEGIN; LOCK TABLE {schema}.retention_rules IN ACCESS EXCLUSIVE MODE"
    ))
    .execute(&mut holder)
    .await
    .unwrap();
    // Another connection watches: in the holder's transaction the activity
    // view would stay the snapshot of its first read.
    let mut watcher = <sqlx::PgConnection as sqlx::Connection>::connect(server.url())
        .await
        .unwrap();
    // The statements waiting for this lock: other tests share the server.
    let waiting_sql = format!(
        "SELECT count(DISTINCT pid) FROM pg_locks \
         WHERE NOT granted AND relation = '{schema}.retention_rules'::regclass"
    );
    let spawn = |kind: &str| {
        let b = backend.clone();
        let e = NewExecution::new(
            Namespace::new(ns).unwrap(),
            Lane::new("main").unwrap(),
            Kind::new(kind).unwrap(),
            b"{}".to_vec(),
        );
        tokio::spawn(async move { b.create_one(e).await })
    };
    let mut calls = Vec::new();
    for (i, kind) in kinds.iter().enumerate() {
        calls.push(spawn(kind));
        if i >= 2 {
            continue;
        }
        // Liveness bound, not timing: a statement waits at once.
        let mut waiting = 0;
        for _ in 0..600 {
            waiting = sqlx::query_scalar::<_, i64>(&waiting_sql)
                .fetch_one(&mut watcher)
                .await
                .unwrap();
            if waiting > i as i64 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            waiting,
            i as i64 + 1,
            "call {i}'s statement waits for the lock"
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let waiting: i64 = sqlx::query_scalar(&waiting_sql)
        .fetch_one(&mut watcher)
        .await
        .unwrap();
    assert_eq!(
        waiting, 2,
        "at most two create statements of one instance run at once"
    );
    sqlx::raw_sql("COMMIT").execute(&mut holder).await.unwrap();
    let mut out = Vec::new();
    for call in calls {
        out.push(call.await.unwrap());
    }
    out
}

/// Concurrent creates without keys share statements once two are
/// running: 24 one-execution calls queued behind a lock are written by a
/// few statements (two alone, then the 22 that queued: one, or a few if
/// some calls reached the queue late on a loaded machine), and every call is answered with its own
/// execution. A call whose row the database refuses, among calls that
/// queued with it, gets the error; the others are written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_creates_share_statements_and_keep_their_own_errors() {
    let Some(server) = servers::postgres().await else {
        return;
    };
    let schema = PostgresServer::unique_schema();
    let backend = open(&server.schema_url(&schema)).await;
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(server.url())
        .await
        .unwrap();
    sqlx::raw_sql(&format!(
        "SET search_path = {schema}; \
         CREATE TABLE create_statements (n integer NOT NULL); \
         INSERT INTO create_statements VALUES (0); \
         CREATE FUNCTION count_create() RETURNS trigger LANGUAGE plpgsql AS \
           $$ BEGIN UPDATE create_statements SET n = n + 1; RETURN NULL; END $$; \
         CREATE TRIGGER count_create AFTER INSERT ON executions \
           FOR EACH STATEMENT EXECUTE FUNCTION count_create(); \
         CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS \
           $$ BEGIN IF NEW.kind = 'poison' THEN \
                RAISE EXCEPTION 'poison' USING ERRCODE = 'check_violation'; \
              END IF; RETURN NEW; END $$; \
         CREATE TRIGGER refuse_poison BEFORE INSERT ON executions \
           FOR EACH ROW EXECUTE FUNCTION refuse_poison()"
    ))
    .execute(&mut conn)
    .await
    .unwrap();

    let kinds = vec!["job"; 24];
    let outcomes = creates_behind_a_lock(&backend, server, &schema, "shared", &kinds).await;
    let mut ids = std::collections::HashSet::new();
    for o in &outcomes {
        let o = o.as_ref().unwrap();
        assert!(o.created);
        assert_eq!(o.state, State::Waiting);
        assert!(ids.insert(o.id.clone()), "one execution per call");
    }
    for id in &ids {
        assert_eq!(backend.describe(id).await.unwrap().state, State::Waiting);
    }
    let statements: i32 = sqlx::query_scalar("SELECT n FROM create_statements")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(
        (3..=6).contains(&statements),
        "24 queued calls took {statements} statements"
    );

    let mut kinds = vec!["job"; 24];
    kinds[20] = "poison";
    // The poisoned call queues with 21 others behind the two running.
    let outcomes = creates_behind_a_lock(&backend, server, &schema, "poisoned", &kinds).await;
    for (i, o) in outcomes.iter().enumerate() {
        match (i, o) {
            (20, Err(EngineError::Corruption { message })) => {
                assert!(message.contains("poison"), "{message}")
            }
            (20, other) => panic!("the refused call must get its error: {other:?}"),
            (_, Ok(o)) => assert!(o.created),
            (_, Err(e)) => panic!("call {i} was not refused but failed: {e}"),
        }
    }
    let written: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM executions WHERE namespace = 'poisoned' AND kind = 'job'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(written, 23);
}

/// A create call's executions outside flows and sessions land in one
/// partition, and the next call's in the next partition; a child stays in
/// its parent's partition and a session's work in the session's.
#[tokio::test]
async fn a_call_places_its_executions_in_one_partition_in_turn() {
    let Some(server) = servers::postgres().await else {
        return;
    };
    let backend = open(&server.schema_url(&PostgresServer::unique_schema())).await;
    // The default partition count, recorded by the first start.
    let count = PartitionCount::new(16).unwrap();
    let mut previous: Option<u16> = None;
    for _ in 0..3 {
        let created = backend
            .create((0..20).map(|_| exec("placed", "main")).collect())
            .await
            .unwrap();
        let p = created[0].id.partition().get();
        assert!(
            created.iter().all(|c| c.id.partition().get() == p),
            "one partition per call"
        );
        if let Some(before) = previous {
            assert_eq!(
                p,
                (before + 1) % count.get(),
                "the next call takes the next partition"
            );
        }
        previous = Some(p);
    }
    let parent = backend.create_one(exec("placed", "main")).await.unwrap().id;
    let session = baton_core::SessionName::new("s-1").unwrap();
    let ns = Namespace::new("placed").unwrap();
    let mixed = backend
        .create(vec![
            exec("placed", "main").with_parent(parent.clone()),
            exec("placed", "main").with_session(session.clone()),
            exec("placed", "main"),
        ])
        .await
        .unwrap();
    assert_eq!(mixed[0].id.partition(), parent.partition());
    assert_eq!(
        mixed[1].id.partition(),
        baton_core::raw::rules::session_partition(&ns, &session, count)
    );
}
