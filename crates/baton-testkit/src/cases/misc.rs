//! Concurrent submissions and `wait_for_work`.

use super::prelude::*;

/// Most rounds [`wait_for_work_wakes_on_submission`] submits before giving
/// up: a liveness bound (about 30 s), not a timing assertion.
const WAKE_ROUNDS: usize = 600;

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

/// A waiter on a lane returns after a submission to that lane through the
/// same backend instance. The test submits repeatedly until the waiter
/// returns, so it does not depend on when the waiter started listening.
pub async fn wait_for_work_wakes_on_submission(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let mut waiter = {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            ctx.backend
                .wait_for_work(
                    &ctx.ns,
                    &[lane("other"), ctx.lane()],
                    Duration::from_secs(3_600),
                )
                .await
        })
    };
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

/// With no work, `wait_for_work` returns `Ok` once its (real-time) timeout
/// passes.
pub async fn wait_for_work_times_out_without_work(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let waited = tokio::time::timeout(
        Duration::from_secs(60),
        ctx.backend.wait_for_work(&ctx.ns, &[ctx.lane()], ms(20)),
    )
    .await;
    match waited {
        Ok(result) => ok(result, "wait_for_work"),
        Err(_) => panic!("wait_for_work(timeout 20 ms) did not return within 60 s"),
    }
    ctx.assert_nothing_to_claim().await;
}
