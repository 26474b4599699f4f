//! Concurrent submissions and `wait_for_work`.

use super::prelude::*;
use baton_core::{Lane, Result};

/// Most rounds [`wait_for_work_wakes_on_submission`] submits before giving
/// up: a liveness bound (about 30 s), not a timing assertion.
const WAKE_ROUNDS: usize = 600;
/// How long a waiter with nothing to wake it must still be waiting.
const IDLE_CHECK: Duration = Duration::from_millis(300);
/// Early returns of an idle waiter tolerated before the case fails: wake-ups
/// when the backend's notification channel (re)connects.
const EARLY_RETURNS: usize = 2;

/// Many tasks creating through one shared backend at once all succeed (no
/// storage-level busy error surfaces) and every execution exists once.
pub async fn concurrent_creates_all_succeed(h: &dyn Harness) {
    const TASKS: usize = 8;
    const EACH: usize = 25;
    let ctx = Ctx::new(h).await;
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let ctx = ctx.clone();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..EACH {
                let new = ctx.new_exec("job", format!("{t}/{i}").as_bytes());
                let out = ok(ctx.backend.create(vec![new]).await, "concurrent create");
                assert!(
                    out.len() == 1 && out[0].created,
                    "one created outcome: {out:?}"
                );
                ids.push(out[0].id.clone());
            }
            ids
        }));
    }
    let mut all = BTreeSet::new();
    for task in tasks {
        for id in task.await.expect("create task panicked") {
            assert!(all.insert(id.clone()), "{id} answered twice");
        }
    }
    assert_eq!(all.len(), TASKS * EACH);
    assert_eq!(
        ctx.lane_counts(&ctx.lane()).await,
        StateCounts {
            waiting: (TASKS * EACH) as u64,
            ..StateCounts::default()
        }
    );
    let listed: BTreeSet<_> = ctx
        .list_all(&ListFilter::namespace(ctx.ns.clone()), 50)
        .await
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(listed, all, "list sees every created execution");
}

/// A waiter on a lane blocks while nothing happens, and returns after a
/// submission to that lane through the same backend instance. The test
/// submits repeatedly until the waiter returns, so it does not depend on
/// when the waiter started listening.
pub async fn wait_for_work_wakes_on_submission(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let mut waiter = idle_waiter(&ctx, vec![lane("other"), ctx.lane()]).await;
    for _ in 0..WAKE_ROUNDS {
        ctx.create_waiting().await;
        if let Ok(joined) = tokio::time::timeout(ms(50), &mut waiter).await {
            ok(joined.expect("waiter panicked"), "wait_for_work");
            return;
        }
    }
    waiter.abort();
    panic!("wait_for_work was not woken by {WAKE_ROUNDS} submissions to its lane");
}

/// A waiter on `lanes` with an hour's timeout that is still waiting after
/// [`IDLE_CHECK`] with nothing submitted. A waiter may return early because
/// the backend's notification channel (re)connected; a new one is started
/// then, up to [`EARLY_RETURNS`] times. One that returns every time does not
/// wait at all. (A slow machine only makes this check weaker, never wrong.)
async fn idle_waiter(ctx: &Ctx, lanes: Vec<Lane>) -> tokio::task::JoinHandle<Result<()>> {
    for _ in 0..=EARLY_RETURNS {
        let mut waiter = {
            let ctx = ctx.clone();
            let lanes = lanes.clone();
            tokio::spawn(async move {
                ctx.backend
                    .wait_for_work(&ctx.ns, &lanes, Duration::from_secs(3_600))
                    .await
            })
        };
        match tokio::time::timeout(IDLE_CHECK, &mut waiter).await {
            Err(_) => return waiter,
            Ok(joined) => ok(joined.expect("waiter panicked"), "wait_for_work"),
        }
    }
    panic!(
        "wait_for_work(timeout 1 h) returned at once {} times with no work submitted: it must block until a wake-up or its timeout",
        EARLY_RETURNS + 1
    );
}

/// With no work, `wait_for_work` waits out its (real-time) timeout, then
/// returns `Ok`. As for the idle waiter of
/// [`wait_for_work_wakes_on_submission`], a few early returns (a notification
/// channel that (re)connected) are tolerated, but not one every time.
pub async fn wait_for_work_times_out_without_work(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let timeout = ms(300);
    let mut early = Vec::new();
    for _ in 0..=EARLY_RETURNS {
        let started = std::time::Instant::now();
        let waited = tokio::time::timeout(
            Duration::from_secs(60),
            ctx.backend.wait_for_work(&ctx.ns, &[ctx.lane()], timeout),
        )
        .await;
        let elapsed = started.elapsed();
        match waited {
            Ok(result) => ok(result, "wait_for_work"),
            Err(_) => panic!("wait_for_work(timeout 300 ms) did not return within 60 s"),
        }
        // A lower bound only: unless something woke it, it cannot have
        // returned before its timeout, however fast or slow the machine.
        if elapsed >= timeout {
            ctx.assert_nothing_to_claim().await;
            return;
        }
        early.push(elapsed);
    }
    panic!(
        "wait_for_work(timeout 300 ms) returned early every time with no work ({early:?}): it must wait out its timeout"
    );
}

/// Calls abandoned part-way (a client that hangs up, a request timeout) leave
/// the backend usable: every write afterwards succeeds, nothing abandoned is
/// half-applied, and the scheduler passes still run. Calls are dropped after
/// varied short delays from several tasks at once, so some are dropped while
/// they wait for a connection, some while their transaction begins and some
/// mid-statement.
pub async fn abandoned_calls_leave_the_backend_usable(h: &dyn Harness) {
    const TASKS: u64 = 4;
    const ROUNDS: u64 = 150;
    let ctx = Ctx::new(h).await;
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let ctx = ctx.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..ROUNDS {
                // 0 µs to ~1.5 ms, spread so that every task covers the range.
                let after = Duration::from_micros((i * 211 + t * 97) % 1_500);
                let payload = format!("{t}/{i}");
                let new = ctx.new_exec("abandoned", payload.as_bytes());
                let call = ctx.backend.create(vec![new]);
                let _ = tokio::time::timeout(after, call).await;
                if i % 3 == 0 {
                    let claim = ctx.backend.claim(ctx.claim_request(2));
                    if let Ok(Ok(claims)) = tokio::time::timeout(after, claim).await {
                        for c in claims {
                            let done = ctx.backend.complete(&c.lease, b"r".to_vec());
                            let _ = tokio::time::timeout(after, done).await;
                        }
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("abandoning task panicked");
    }
    // Every write path still answers, at once and correctly.
    let id = ctx.create_waiting().await;
    assert_eq!(ctx.state(&id).await, State::Waiting);
    let cancelled = ctx.cancel(&id, Some("after the storm")).await;
    assert_eq!(cancelled.state, State::Cancelled);
    let id = ctx.create_waiting().await;
    let mut claims = Vec::new();
    for _ in 0..100 {
        let batch = ctx.claim(ctx.claim_request(100)).await;
        let empty = batch.is_empty();
        claims.extend(batch);
        if empty || claims.iter().any(|c| c.id == id) {
            break;
        }
    }
    let mine = claims
        .iter()
        .find(|c| c.id == id)
        .cloned()
        .unwrap_or_else(|| panic!("{id} was not claimable after abandoned calls"));
    let done = ctx.complete(&mine.lease, b"ok").await;
    assert_eq!(done.state, State::Completed);
    for c in claims.iter().filter(|c| c.id != id) {
        let snap = ctx.complete(&c.lease, b"r").await;
        assert_eq!(
            snap.state,
            State::Completed,
            "{} after abandoned calls",
            c.id
        );
    }
    // Every execution that exists is in a consistent, listed state and the
    // scheduler passes run over them.
    ctx.advance(3_600_000);
    ctx.reclaim_all().await;
    ctx.promote_all().await;
    let all = ctx
        .list_all(&ListFilter::namespace(ctx.ns.clone()), 100)
        .await;
    for snap in &all {
        assert!(
            snap.check_consistent().is_ok(),
            "{} is inconsistent after abandoned calls: {snap:?}",
            snap.id
        );
    }
    let waiting = all.iter().filter(|s| s.state == State::Waiting).count();
    let claimed = ctx.claim(ctx.claim_request(1_000)).await.len();
    assert!(
        claimed >= waiting.min(1_000),
        "{claimed} claimed of {waiting} waiting after abandoned calls"
    );
}
