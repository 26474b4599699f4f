//! `expire_deadlines`: deadlines reach every state, and fence leases before
//! the pass runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use baton_core::ScanReport;

use super::prelude::*;
use super::scan::{assert_stopped_at_limit, expire};

/// A waiting execution past its deadline becomes `expired`; reports name the
/// deadline before and nothing after.
pub async fn expire_deadline_of_waiting(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let deadline = ctx.after(10_000);
    let new = ctx.new_exec("job", b"").with_deadline(deadline);
    let id = ctx.create_id(new.clone()).await;
    assert_eq!(
        expire(&ctx, id.partition(), 100).await,
        ScanReport {
            processed: 0,
            next_due: Some(deadline)
        }
    );
    ctx.advance(10_001);
    assert_eq!(
        expire(&ctx, id.partition(), 100).await,
        ScanReport {
            processed: 1,
            next_due: None
        }
    );
    let mut expected = expected_snapshot(&id, &new, START, State::Expired, None);
    expected.updated_at = ctx.now();
    expected.finished_at = Some(ctx.now());
    assert_eq!(ctx.describe(&id).await, expected);
    assert!(ctx.attempts(&id).await.is_empty());
    ctx.assert_nothing_to_claim().await;
    assert_eq!(ctx.expire_all().await, 0);
}

/// A delayed execution past its deadline becomes `expired` and is never
/// promoted.
pub async fn expire_deadline_of_delayed(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let id = ctx
        .create_id(
            ctx.new_exec("job", b"")
                .with_delay_ms(5_000)
                .with_deadline(ctx.after(10_000)),
        )
        .await;
    ctx.advance(10_001);
    assert_eq!(ctx.expire_all().await, 1);
    let snap = ctx.describe(&id).await;
    assert_eq!(snap.state, State::Expired);
    assert_eq!(snap.finished_at, Some(ctx.now()));
    assert_eq!(snap.run_at, Some(START.saturating_add(ms(5_000))));
    assert_eq!(ctx.promote_all().await, 0);
    ctx.assert_nothing_to_claim().await;
}

/// A running execution past its deadline becomes `expired`: the attempt
/// closes as `expired`, the lease is lost (renew says lost, complete and
/// fail are `LeaseLost`) and later lease expiry reclaims nothing.
pub async fn expire_deadline_of_running_loses_lease(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let id = ctx
        .create_id(ctx.new_exec("job", b"").with_deadline(ctx.after(10_000)))
        .await;
    let claim = ctx.claim_one_with("w1", 60_000).await;
    ctx.advance(10_001);
    assert_eq!(ctx.expire_all().await, 1);
    let snap = ctx.describe(&id).await;
    assert_eq!(snap.state, State::Expired);
    assert_eq!(snap.attempts, 1);
    assert_eq!(snap.finished_at, Some(ctx.now()));
    assert_eq!(snap.updated_at, ctx.now());
    assert_eq!(
        (snap.worker_id.clone(), snap.lease_expires_at),
        (None, None)
    );
    let attempts = ctx.attempts(&id).await;
    assert_eq!(
        (attempts[0].outcome, attempts[0].ended_at),
        (Some(AttemptOutcome::Expired), Some(ctx.now()))
    );
    let before = ctx.record(&id).await;
    let out = ctx.renew("w1", 30_000, vec![claim.lease.clone()]).await;
    assert_eq!(
        out[0].status,
        RenewStatus::Lost,
        "the deadline passed: lost"
    );
    expect_lease_lost(
        ctx.backend.complete(&claim.lease, b"late".to_vec()).await,
        &id,
        "complete after the deadline",
    );
    expect_lease_lost(
        ctx.backend
            .fail(&claim.lease, Failure::retryable("late"))
            .await,
        &id,
        "fail after the deadline",
    );
    ctx.advance(60_000);
    assert_eq!(ctx.reclaim_all().await, 0, "no lease left to reclaim");
    ctx.assert_unchanged(&id, &before, "the expired worker's calls")
        .await;
}

/// A deadline has passed when `deadline <= now`: at that instant the
/// execution is no longer claimable and `expire_deadlines` expires it; a
/// millisecond earlier it is claimable.
pub async fn deadline_passes_at_its_instant(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let deadline = ctx.after(1_000);
    let early = ctx
        .create_id(ctx.new_exec("job", b"").with_deadline(deadline))
        .await;
    let late = ctx
        .create_id(ctx.new_exec("job", b"").with_deadline(deadline))
        .await;
    ctx.advance(999);
    assert_eq!(ctx.expire_all().await, 0, "1 ms before the deadline");
    assert_eq!(
        ctx.claim_one().await.id,
        early,
        "claimable before the deadline"
    );
    ctx.advance(1);
    ctx.assert_nothing_to_claim().await;
    assert_eq!(
        ctx.state(&late).await,
        State::Waiting,
        "not expired until the pass"
    );
    assert_eq!(
        ctx.expire_all().await,
        2,
        "both expire at the deadline instant"
    );
    assert_eq!(ctx.state(&early).await, State::Expired);
    assert_eq!(ctx.state(&late).await, State::Expired);
}

/// Once `deadline <= now` a running execution's lease is as good as lost,
/// even before `expire_deadlines` runs: renew says lost, complete and fail
/// are `LeaseLost`, and nothing changes until the pass expires it.
pub async fn deadline_fences_the_lease_before_the_expiry_pass(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let id = ctx
        .create_id(ctx.new_exec("job", b"").with_deadline(ctx.after(1_000)))
        .await;
    let claim = ctx.claim_one_with("w1", 60_000).await;
    ctx.advance(1_000);
    let before = ctx.record(&id).await;
    assert_eq!(before.0.state, State::Running, "the pass has not run yet");
    let out = ctx.renew("w1", 30_000, vec![claim.lease.clone()]).await;
    assert_eq!(out[0].status, RenewStatus::Lost, "renew past the deadline");
    expect_lease_lost(
        ctx.backend.complete(&claim.lease, b"late".to_vec()).await,
        &id,
        "complete past the deadline",
    );
    expect_lease_lost(
        ctx.backend
            .fail(&claim.lease, Failure::retryable("late"))
            .await,
        &id,
        "fail past the deadline",
    );
    ctx.assert_unchanged(&id, &before, "calls past the deadline")
        .await;
    assert_eq!(ctx.expire_all().await, 1);
    assert_eq!(ctx.state(&id).await, State::Expired);
}

/// `expire_deadlines` expires at most `limit` and reports the rest as due at
/// once.
pub async fn expire_deadlines_respects_limit(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let mut all = Vec::new();
    let (p, group) = ctx
        .create_sharing_partition(
            |c| c.new_exec("job", b"").with_deadline(c.after(1_000)),
            &mut all,
        )
        .await;
    ctx.advance(10_000);
    assert_stopped_at_limit(&ctx, expire(&ctx, p, 1).await, 1, "expire limit 1");
    assert_eq!(
        expire(&ctx, p, 100).await,
        ScanReport {
            processed: 1,
            next_due: None
        }
    );
    for id in &group {
        assert_eq!(ctx.state(id).await, State::Expired);
    }
}

/// A call refused under a lease (past the deadline) holds nothing once it
/// has answered: the expiry pass run right after it expires the execution
/// every time (a backend that leaves the refused call's row locks behind
/// until later makes the pass skip the row).
pub async fn refused_calls_leave_nothing_locked_for_the_next_pass(h: &dyn Harness) {
    const ROUNDS: usize = 30;
    let ctx = Ctx::new(h).await;
    // Other calls keep the backend busy meanwhile, as in a real deployment,
    // so that whatever a refused call leaves to finish in the background
    // has to wait.
    let stop = Arc::new(AtomicBool::new(false));
    let busy: Vec<_> = (0..4)
        .map(|_| {
            let (ctx, stop) = (ctx.clone(), Arc::clone(&stop));
            tokio::spawn(async move {
                let id = ctx.create_id(ctx.new_in(&lane("busy"), "job", b"")).await;
                while !stop.load(Ordering::Relaxed) {
                    ok(ctx.backend.describe(&id).await, "describe");
                }
            })
        })
        .collect();
    for round in 0..ROUNDS {
        let id = ctx
            .create_id(ctx.new_exec("job", b"").with_deadline(ctx.after(1_000)))
            .await;
        let claim = ctx.claim_one_with("w1", 60_000).await;
        assert_eq!(claim.id, id);
        ctx.advance(1_000);
        if round % 2 == 0 {
            expect_lease_lost(
                ctx.backend
                    .fail(&claim.lease, Failure::retryable("late"))
                    .await,
                &id,
                "fail past the deadline",
            );
        } else {
            expect_lease_lost(
                ctx.backend.complete(&claim.lease, b"late".to_vec()).await,
                &id,
                "complete past the deadline",
            );
        }
        let report = ok(
            ctx.backend.expire_deadlines(id.partition(), 100).await,
            "expire_deadlines",
        );
        assert_eq!(
            report.processed, 1,
            "round {round}: the pass right after the refused call must expire {id}"
        );
        assert_eq!(ctx.state(&id).await, State::Expired);
    }
    stop.store(true, Ordering::Relaxed);
    for task in busy {
        task.await.expect("a busy task panicked");
    }
}
