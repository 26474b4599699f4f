//! The writer task: concurrent claims, completes and creates of one
//! instance share transactions, and each call is still judged as it would
//! be alone.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use baton_core::{
    ClaimRequest, EngineBackend, EngineBackendExt, EngineError, ExecutionId, IdempotencyKey, Kind,
    Lane, Namespace, NewExecution, PartitionCount, State, WorkerId,
};
use baton_sqlite::{Location, SqliteBackend, SqliteConfig};

fn exec(ns: &str) -> NewExecution {
    NewExecution::new(
        Namespace::new(ns).unwrap(),
        Lane::new("main").unwrap(),
        Kind::new("job").unwrap(),
        b"{}".to_vec(),
    )
}

async fn open(dir: &tempfile::TempDir) -> SqliteBackend {
    let path = dir.path().join("writer.db");
    SqliteBackend::open(SqliteConfig::new(Location::File(path)))
        .await
        .unwrap()
}

/// Among 40 creates sent at once, the one naming a parent that does not
/// exist is refused (`InvalidInput`, naming it); the 39 others are written and
/// answered with their own executions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_create_leaves_the_creates_queued_with_it_written() {
    let dir = tempfile::tempdir().unwrap();
    let backend = open(&dir).await;
    let missing = ExecutionId::generate(PartitionCount::new(16).unwrap());
    let calls: Vec<_> = (0..40)
        .map(|i| {
            let b = backend.clone();
            let mut e = exec("refused");
            if i == 17 {
                e.parent = Some(missing.clone());
            }
            tokio::spawn(async move { b.create_one(e).await })
        })
        .collect();
    let mut created = std::collections::HashSet::new();
    for (i, call) in calls.into_iter().enumerate() {
        match (i, call.await.unwrap()) {
            (17, Err(EngineError::InvalidInput { field, value, .. })) => {
                assert_eq!(field, "parent");
                assert_eq!(value, missing.to_string());
            }
            (17, other) => panic!("the create naming a missing parent: {other:?}"),
            (_, Ok(o)) => {
                assert!(o.created);
                assert_eq!(backend.describe(&o.id).await.unwrap().state, State::Waiting);
                assert!(created.insert(o.id));
            }
            (_, Err(e)) => panic!("create {i} failed: {e}"),
        }
    }
    assert_eq!(created.len(), 39);
}

/// Concurrent creates of one idempotency key create one execution: every
/// call is answered with it, exactly one as its creator, even when they
/// share a transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_of_one_key_sent_at_once_create_one_execution() {
    let dir = tempfile::tempdir().unwrap();
    let backend = open(&dir).await;
    let calls: Vec<_> = (0..24)
        .map(|_| {
            let b = backend.clone();
            let mut e = exec("keyed");
            e.idempotency_key = Some(IdempotencyKey::new("once").unwrap());
            tokio::spawn(async move { b.create_one(e).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for call in calls {
        outcomes.push(call.await.unwrap().unwrap());
    }
    assert_eq!(outcomes.iter().filter(|o| o.created).count(), 1);
    assert!(outcomes.iter().all(|o| o.id == outcomes[0].id));
}

/// Completes and creates sent at once, sharing the writer: every lease
/// completes, every new execution waits to be claimed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completes_and_creates_sent_at_once_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let backend = open(&dir).await;
    let ns = Namespace::new("mixed").unwrap();
    backend
        .create((0..50).map(|_| exec("mixed")).collect())
        .await
        .unwrap();
    let claims = backend
        .claim(ClaimRequest::new(
            ns.clone(),
            Lane::new("main").unwrap(),
            WorkerId::new("w").unwrap(),
            50,
        ))
        .await
        .unwrap();
    assert_eq!(claims.len(), 50);
    let mut completes = Vec::new();
    let mut creates = Vec::new();
    for claim in claims {
        let b = backend.clone();
        completes.push(tokio::spawn(async move {
            b.complete(&claim.lease, b"done".to_vec()).await
        }));
        let b = backend.clone();
        creates.push(tokio::spawn(
            async move { b.create_one(exec("mixed")).await },
        ));
    }
    for c in completes {
        assert_eq!(c.await.unwrap().unwrap().state, State::Completed);
    }
    for c in creates {
        let o = c.await.unwrap().unwrap();
        assert_eq!(backend.describe(&o.id).await.unwrap().state, State::Waiting);
    }
}

/// Claims sent at once, sharing the writer's transactions, never take one
/// execution twice: 10 claims of up to 10 over 50 waiting executions take
/// the 50 once each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_sent_at_once_take_each_execution_once() {
    let dir = tempfile::tempdir().unwrap();
    let backend = open(&dir).await;
    let mut taken = std::collections::HashSet::new();
    for claim in fifty_claimed_at_once(&backend, "claims").await {
        assert!(taken.insert(claim.id.clone()), "{} claimed twice", claim.id);
        assert_eq!(
            backend.describe(&claim.id).await.unwrap().state,
            State::Running
        );
    }
    assert_eq!(taken.len(), 50);
}

/// 50 executions created in namespace `ns`, then 10 claims of up to 10
/// sent at once by workers `w0`..`w9`: every claim they answered.
async fn fifty_claimed_at_once(backend: &SqliteBackend, ns: &str) -> Vec<baton_core::Claim> {
    backend
        .create((0..50).map(|_| exec(ns)).collect())
        .await
        .unwrap();
    let namespace = Namespace::new(ns).unwrap();
    let calls: Vec<_> = (0..10)
        .map(|i| {
            let b = backend.clone();
            let request = ClaimRequest::new(
                namespace.clone(),
                Lane::new("main").unwrap(),
                WorkerId::new(format!("w{i}")).unwrap(),
                10,
            );
            tokio::spawn(async move { b.claim(request).await })
        })
        .collect();
    let mut claims = Vec::new();
    for call in calls {
        claims.extend(call.await.unwrap().unwrap());
    }
    claims
}

/// The claim gives each execution its own nonce, and the lease and the
/// attempt it opens in the execution row carry the same one: 10 claims
/// sent at once over 50 executions, then every running row read back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_give_the_lease_and_its_attempt_one_nonce_each() {
    use sqlx::Connection;

    let dir = tempfile::tempdir().unwrap();
    let backend = open(&dir).await;
    let mut leases = std::collections::HashMap::new();
    for claim in fifty_claimed_at_once(&backend, "nonces").await {
        leases.insert(claim.id.uuid().as_bytes().to_vec(), claim.lease.nonce());
    }
    assert_eq!(leases.len(), 50);
    let distinct: std::collections::HashSet<u64> = leases.values().copied().collect();
    assert_eq!(distinct.len(), 50, "every lease has a nonce of its own");

    let url = format!("sqlite://{}", dir.path().join("writer.db").display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let rows: Vec<(Vec<u8>, i64, i64, String, i64)> = sqlx::query_as(
        "SELECT uuid, lease_nonce, attempt_nonce, attempt_worker, attempts \
         FROM executions WHERE state = 'running'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(rows.len(), 50);
    for (uuid, lease_nonce, attempt_nonce, worker, attempts) in rows {
        assert_eq!(
            lease_nonce, attempt_nonce,
            "one nonce for lease and attempt"
        );
        assert_eq!(leases[&uuid], lease_nonce as u64, "the claim answered it");
        assert!(worker.starts_with('w'));
        assert_eq!(attempts, 1);
    }
    let archived: i64 = sqlx::query_scalar("SELECT count(*) FROM attempts")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(archived, 0, "a first attempt writes no attempt row");
}
