//! The engine on real time against SQLite: due work is acted on (cascading
//! cancels included), and engines sharing a database split and hand over
//! partitions. Waits are bounded
//! polls; nothing asserts on elapsed time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use baton_core::{
    AdminBackend, AttemptOutcome, CancelRequest, ClaimRequest, EngineBackend, EngineBackendExt,
    Kind, Lane, Namespace, NewExecution, NodeId, Page, State, Tree, WorkerId,
};
use baton_engine::{Scheduler, SchedulerConfig};
use baton_sqlite::SqliteBackend;

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..400 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("gave up waiting (10 s) for: {what}");
}

fn new(lane: &str) -> NewExecution {
    NewExecution::new(
        Namespace::new("engine-test").unwrap(),
        Lane::new(lane).unwrap(),
        Kind::new("k").unwrap(),
        b"{}".to_vec(),
    )
}

fn config(node: &str) -> SchedulerConfig {
    SchedulerConfig::default()
        .with_node_id(NodeId::new(node).unwrap())
        .with_ownership_ttl(Duration::from_millis(600))
        .with_sweep(Duration::from_millis(100))
}

async fn sqlite(dir: &tempfile::TempDir) -> Arc<SqliteBackend> {
    let url = format!("sqlite://{}", dir.path().join("engine.db").display());
    Arc::new(SqliteBackend::connect(&url).await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promotes_delayed_work_and_reclaims_expired_leases() {
    let dir = tempfile::tempdir().unwrap();
    let backend = sqlite(&dir).await;
    let engine = Scheduler::start(backend.clone(), config("solo"));

    let delayed = backend
        .create_one(new("a").with_delay_ms(300))
        .await
        .unwrap();
    assert_eq!(delayed.state, State::Delayed);
    eventually("the delayed execution is promoted", || async {
        backend.describe(&delayed.id).await.unwrap().state == State::Waiting
    })
    .await;

    let claim = ClaimRequest::new(
        Namespace::new("engine-test").unwrap(),
        Lane::new("a").unwrap(),
        WorkerId::new("w").unwrap(),
        1,
    )
    .with_lease_ttl(Duration::from_millis(200));
    let claims = backend.claim(claim).await.unwrap();
    assert_eq!(claims.len(), 1);
    eventually("the expired lease is reclaimed", || async {
        let attempts = backend.attempts(&delayed.id).await.unwrap();
        attempts[0].outcome == Some(AttemptOutcome::LeaseExpired)
    })
    .await;
    let snap = backend.describe(&delayed.id).await.unwrap();
    assert!(
        matches!(snap.state, State::Waiting | State::Delayed),
        "{snap:?}"
    );
    let m = engine.metrics();
    assert!(m.promoted.load(Ordering::Relaxed) >= 1);
    assert!(m.reclaimed.load(Ordering::Relaxed) >= 1);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engines_split_partitions_and_hand_them_over_on_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let backend = sqlite(&dir).await;
    let total = u64::from(backend.partitions().get());
    let a = Scheduler::start(backend.clone(), config("a"));
    let b = Scheduler::start(backend.clone(), config("b"));
    let (ma, mb) = (a.metrics(), b.metrics());
    eventually("two engines split the partitions", || async {
        let (x, y) = (
            ma.owned_partitions.load(Ordering::Relaxed),
            mb.owned_partitions.load(Ordering::Relaxed),
        );
        x + y == total && x > 0 && y > 0
    })
    .await;
    b.shutdown().await;
    eventually("the survivor owns everything", || async {
        ma.owned_partitions.load(Ordering::Relaxed) == total
    })
    .await;
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expires_deadlines_and_trims_after_retention() {
    let dir = tempfile::tempdir().unwrap();
    let backend = sqlite(&dir).await;
    let mut cfg = config("trimmer").with_retention(Duration::from_millis(200));
    cfg.trim_sweep = Duration::from_millis(100);
    let engine = Scheduler::start(backend.clone(), cfg);
    let deadline = baton_core::Timestamp::now_system().saturating_add(Duration::from_millis(300));
    let doomed = backend
        .create_one(new("d").with_deadline(deadline))
        .await
        .unwrap();
    // Expired at its deadline, then trimmed 200 ms later.
    eventually("the execution expires and is trimmed", || async {
        matches!(
            backend.describe(&doomed.id).await,
            Err(baton_core::EngineError::NotFound { .. })
        )
    })
    .await;
    let m = engine.metrics();
    assert_eq!(m.expired.load(Ordering::Relaxed), 1);
    assert_eq!(m.trimmed.load(Ordering::Relaxed), 1);
    engine.shutdown().await;
}

/// A cancel whose subtree is bigger than the backend's cascade budget
/// cancels what fits and queues the rest; the cascade pass then cancels
/// every remaining descendant, in bounded steps, and counts them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cascade_pass_finishes_a_cancel_too_big_for_one_call() {
    let dir = tempfile::tempdir().unwrap();
    let backend = sqlite(&dir).await;
    let budget = backend.capabilities().limits.cascade_budget;
    let root = backend.create_one(new("flow")).await.unwrap().id;
    // More children than the budget, and grandchildren under the last one
    // (the last visited), so the queue holds places at two depths.
    let kids: Vec<NewExecution> = (0..budget + 100)
        .map(|_| new("flow").with_parent(root.clone()))
        .collect();
    let kids = backend.create(kids).await.unwrap();
    let last = kids.last().unwrap().id.clone();
    let grandkids: Vec<NewExecution> = (0..50)
        .map(|_| new("flow").with_parent(last.clone()))
        .collect();
    backend.create(grandkids).await.unwrap();
    let descendants = (budget + 150) as u64;

    let first = backend
        .cancel(&root, CancelRequest::because("enough"))
        .await
        .unwrap();
    assert_eq!(first.snapshot.state, State::Cancelled);
    assert!(first.cascade_pending, "{first:?}");
    assert!(first.cascaded <= budget as u64, "{first:?}");
    let still = |tree: &Tree| {
        tree.items
            .iter()
            .filter(|n| n.state != State::Cancelled)
            .count()
    };
    let before = backend.tree(&root, Tree::MAX_LIMIT).await.unwrap();
    assert_eq!(before.items.len() as u64, descendants + 1);
    assert_eq!(still(&before) as u64, descendants - first.cascaded);

    let engine = Scheduler::start(backend.clone(), config("cascader"));
    eventually("every descendant is cancelled", || async {
        still(&backend.tree(&root, Tree::MAX_LIMIT).await.unwrap()) == 0
    })
    .await;
    let m = engine.metrics();
    assert_eq!(
        m.cascaded.load(Ordering::Relaxed),
        descendants - first.cascaded
    );
    engine.shutdown().await;
    let grandkid = backend.children(&last, Page::first(1)).await.unwrap();
    assert_eq!(
        grandkid.items[0].cancel_reason,
        Some(format!("cancelled with its ancestor {root}: enough"))
    );
}

/// A durable sleep: the timer is stored in the backend, so an engine
/// stopped while an execution sleeps loses nothing; the next engine's
/// timeout pass resumes it, and its claim says the wait timed out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_sleep_outlives_the_engine_that_saw_it_start() {
    let dir = tempfile::tempdir().unwrap();
    let backend = sqlite(&dir).await;
    let first = Scheduler::start(backend.clone(), config("before"));
    let created = backend.create_one(new("s")).await.unwrap();
    let request = ClaimRequest::new(
        Namespace::new("engine-test").unwrap(),
        Lane::new("s").unwrap(),
        WorkerId::new("w").unwrap(),
        1,
    );
    let claims = backend.claim(request.clone()).await.unwrap();
    let sleep = baton_core::SuspendRequest::sleep(Duration::from_millis(400));
    let out = backend.suspend(&claims[0].lease, sleep).await.unwrap();
    assert_eq!(out.snapshot().state, State::Suspended);
    first.shutdown().await;
    let second = Scheduler::start(backend.clone(), config("after"));
    eventually("the sleeper wakes up", || async {
        backend.describe(&created.id).await.unwrap().state == State::Waiting
    })
    .await;
    let claims = backend.claim(request).await.unwrap();
    assert_eq!(
        (claims[0].attempt, claims[0].waits.clone()),
        (2, vec![baton_core::WaitEnded::TimedOut])
    );
    assert_eq!(second.metrics().timed_out.load(Ordering::Relaxed), 1);
    second.shutdown().await;
}
