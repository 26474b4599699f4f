//! The scheduler's per-partition passes: `promote_due`,
//! `reclaim_expired_leases`, `expire_deadlines` and `trim_terminal`, with
//! their `ScanReport`s.

use baton_core::{PartitionId, ScanReport};

use super::prelude::*;

pub(super) const HOUR_MS: u64 = 3_600_000;

pub(super) fn no_jitter(initial_ms: u64) -> Backoff {
    Backoff {
        initial_ms,
        max_ms: 10_000,
        multiplier: 2.0,
        jitter: false,
    }
}

pub(super) async fn promote(ctx: &Ctx, p: PartitionId, limit: usize) -> ScanReport {
    ok(ctx.backend.promote_due(p, limit).await, "promote_due")
}

pub(super) async fn reclaim(ctx: &Ctx, p: PartitionId, limit: usize) -> ScanReport {
    ok(
        ctx.backend.reclaim_expired_leases(p, limit).await,
        "reclaim_expired_leases",
    )
}

pub(super) async fn expire(ctx: &Ctx, p: PartitionId, limit: usize) -> ScanReport {
    ok(
        ctx.backend.expire_deadlines(p, limit).await,
        "expire_deadlines",
    )
}

pub(super) async fn trim(ctx: &Ctx, p: PartitionId, retention_ms: u64, limit: usize) -> ScanReport {
    ok(
        ctx.backend.trim_terminal(p, ms(retention_ms), limit).await,
        "trim_terminal",
    )
}

/// Asserts a pass stopped at its limit: it processed `processed` and reports
/// the next item as already due.
#[track_caller]
pub(super) fn assert_stopped_at_limit(ctx: &Ctx, report: ScanReport, processed: u64, what: &str) {
    assert_eq!(report.processed, processed, "{what}: processed");
    assert!(
        report.next_due.is_some_and(|t| t <= ctx.now()),
        "{what}: stopped at the limit, so next_due must be at or before now, got {:?}",
        report.next_due
    );
}

/// Only delayed executions whose `run_at` has come are promoted, keeping
/// their `run_at`; reports count them and name the next `run_at` of the
/// partition; a second pass promotes nothing.
pub async fn promote_due_promotes_only_due(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let a = ctx
        .create_id(ctx.new_exec("job", b"").with_delay_ms(1_000))
        .await;
    let b = ctx
        .create_id(ctx.new_exec("job", b"").with_delay_ms(5_000))
        .await;
    let (a_run, b_run) = (ctx.after(1_000), ctx.after(5_000));
    assert_eq!(ctx.promote_all().await, 0, "nothing is due yet");
    let report = promote(&ctx, a.partition(), 100).await;
    assert_eq!(
        report,
        ScanReport {
            processed: 0,
            next_due: Some(a_run)
        }
    );
    ctx.advance(1_001);
    let report = promote(&ctx, a.partition(), 100).await;
    let next = (b.partition() == a.partition()).then_some(b_run);
    assert_eq!(
        report,
        ScanReport {
            processed: 1,
            next_due: next
        },
        "one promoted; the partition's next run_at, if any"
    );
    assert_eq!(ctx.promote_all().await, 0, "idempotent");
    let snap = ctx.describe(&a).await;
    assert_eq!(snap.state, State::Waiting);
    assert_eq!(snap.updated_at, ctx.now());
    assert_eq!(snap.run_at, Some(a_run), "run_at is kept after promotion");
    assert_eq!(ctx.state(&b).await, State::Delayed);
    assert_eq!(
        promote(&ctx, b.partition(), 100).await.next_due,
        Some(b_run)
    );
    let claims = ctx.claim(ctx.claim_request(10)).await;
    assert_eq!(
        claims.into_iter().map(|c| c.id).collect::<Vec<_>>(),
        vec![a]
    );
}

/// `promote_due` promotes at most `limit`, oldest due first, and reports the
/// rest as due at once.
pub async fn promote_due_respects_limit(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let mut all = Vec::new();
    let (p, group) = ctx
        .create_sharing_partition(|c| c.new_exec("job", b"").with_delay_ms(1_000), &mut all)
        .await;
    ctx.advance(2_000);
    assert_stopped_at_limit(&ctx, promote(&ctx, p, 1).await, 1, "promote limit 1");
    assert_eq!(
        ctx.state(&group[0]).await,
        State::Waiting,
        "oldest due first"
    );
    assert_eq!(ctx.state(&group[1]).await, State::Delayed);
    assert_eq!(
        promote(&ctx, p, 100).await,
        ScanReport {
            processed: 1,
            next_due: None
        }
    );
    assert_eq!(ctx.state(&group[1]).await, State::Waiting);
}

/// An expired lease is reclaimed: the attempt closes as `lease_expired` with
/// an error naming the worker, which becomes `last_error`, and the retry
/// policy schedules the next attempt exactly as `fail` would.
pub async fn reclaim_expired_lease_retries_with_backoff(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let policy = RetryPolicy {
        max_attempts: 3,
        backoff: no_jitter(100),
    };
    let id = ctx
        .create_id(ctx.new_exec("job", b"").with_retry(policy))
        .await;
    ctx.advance(5);
    ctx.claim_one_with("w-crash", 1_000).await;
    let started = ctx.now();
    ctx.advance(1_001);
    assert_eq!(
        reclaim(&ctx, id.partition(), 100).await,
        ScanReport {
            processed: 1,
            next_due: None
        }
    );
    let snap = ctx.describe(&id).await;
    assert_eq!(snap.state, State::Delayed);
    assert_eq!(snap.run_at, Some(ctx.after(100)), "backoff after attempt 1");
    assert_eq!(snap.attempts, 1);
    assert_eq!(snap.updated_at, ctx.now());
    assert_eq!(
        (
            snap.worker_id.clone(),
            snap.lease_expires_at,
            snap.finished_at
        ),
        (None, None, None)
    );
    let attempts = ctx.attempts(&id).await;
    assert_eq!(attempts.len(), 1);
    let a = &attempts[0];
    assert_eq!(
        (a.number, &a.worker_id, a.started_at, a.ended_at, a.outcome),
        (
            1,
            &worker("w-crash"),
            started,
            Some(ctx.now()),
            Some(AttemptOutcome::LeaseExpired)
        )
    );
    let error = a.error.clone().unwrap_or_default();
    assert!(
        error.contains("w-crash"),
        "the error names the worker: {error:?}"
    );
    assert_eq!(snap.last_error, a.error, "it counts as a failed attempt");
    assert_eq!(reclaim(&ctx, id.partition(), 100).await.processed, 0);
    ctx.advance(101);
    assert_eq!(ctx.promote_all().await, 1);
    let again = ctx.claim_one().await;
    assert_eq!((again.id, again.attempt, again.lease.attempt()), (id, 2, 2));
}

/// With zero backoff a reclaimed execution is `waiting` at once.
pub async fn reclaim_with_zero_backoff_is_waiting(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let policy = RetryPolicy {
        max_attempts: 2,
        backoff: Backoff::NONE,
    };
    let id = ctx
        .create_id(ctx.new_exec("job", b"").with_retry(policy))
        .await;
    ctx.claim_one_with("w1", 1_000).await;
    ctx.advance(1_001);
    assert_eq!(ctx.reclaim_all().await, 1);
    assert_eq!(ctx.state(&id).await, State::Waiting);
    let again = ctx.claim_one().await;
    assert_eq!((again.id, again.attempt), (id, 2));
}

/// A reclaimed execution without attempts left is `failed`.
pub async fn reclaim_without_attempts_left_fails(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let id = ctx
        .create_id(
            ctx.new_exec("job", b"")
                .with_retry(RetryPolicy::attempts(1)),
        )
        .await;
    ctx.claim_one_with("w1", 1_000).await;
    ctx.advance(1_001);
    assert_eq!(ctx.reclaim_all().await, 1);
    let snap = ctx.describe(&id).await;
    assert_eq!(snap.state, State::Failed);
    assert_eq!(snap.finished_at, Some(ctx.now()));
    assert_eq!((snap.worker_id, snap.lease_expires_at), (None, None));
    assert!(
        snap.last_error.is_some(),
        "the lease expiry is the last error"
    );
    assert_eq!(
        ctx.attempts(&id).await[0].outcome,
        Some(AttemptOutcome::LeaseExpired)
    );
    ctx.assert_nothing_to_claim().await;
}

/// A live lease is not reclaimed; the report names when it expires.
pub async fn reclaim_ignores_live_leases(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let id = ctx.create_waiting().await;
    let claim = ctx.claim_one_with("w1", 10_000).await;
    ctx.advance(9_999);
    let before = ctx.record(&id).await;
    assert_eq!(
        reclaim(&ctx, id.partition(), 100).await,
        ScanReport {
            processed: 0,
            next_due: Some(claim.lease_expires_at)
        }
    );
    assert_eq!(ctx.reclaim_all().await, 0);
    ctx.assert_unchanged(&id, &before, "reclaiming a live lease")
        .await;
}

/// `reclaim_expired_leases` reclaims at most `limit`, earliest expiry first,
/// and reports the rest as due at once.
pub async fn reclaim_respects_limit(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let mut all = Vec::new();
    let (p, group) = ctx
        .create_sharing_partition(|c| c.new_exec("job", b""), &mut all)
        .await;
    // Claimed one by one, oldest first, 1 ms apart: group[0] expires first.
    let mut expiries = BTreeMap::new();
    for _ in 0..all.len() {
        let claim = ctx.claim_one_with("w1", 1_000).await;
        expiries.insert(claim.id, claim.lease_expires_at);
        ctx.advance(1);
    }
    ctx.assert_nothing_to_claim().await;
    assert!(expiries[&group[0]] < expiries[&group[1]]);
    ctx.advance(1_000);
    assert_stopped_at_limit(&ctx, reclaim(&ctx, p, 1).await, 1, "reclaim limit 1");
    assert_ne!(
        ctx.state(&group[0]).await,
        State::Running,
        "earliest expiry first"
    );
    assert_eq!(ctx.state(&group[1]).await, State::Running);
    assert_eq!(
        reclaim(&ctx, p, 100).await,
        ScanReport {
            processed: 1,
            next_due: None
        }
    );
    assert_ne!(ctx.state(&group[1]).await, State::Running);
}

/// A lease is valid while `now < lease_expires_at`: at the expiry instant it
/// can no longer complete or renew, and the scanner reclaims it; a
/// millisecond earlier it is left alone.
pub async fn lease_expires_at_its_expiry_instant(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let id = ctx.create_waiting().await;
    let claim = ctx.claim_one_with("w1", 1_000).await;
    ctx.advance(999);
    assert_eq!(
        reclaim(&ctx, id.partition(), 10).await.processed,
        0,
        "1 ms before expiry"
    );
    ctx.advance(1);
    assert_eq!(ctx.now(), claim.lease_expires_at);
    let before = ctx.record(&id).await;
    expect_lease_lost(
        ctx.backend.complete(&claim.lease, b"".to_vec()).await,
        &id,
        "complete at the expiry instant",
    );
    let out = ctx.renew("w1", 30_000, vec![claim.lease.clone()]).await;
    assert_eq!(
        out[0].status,
        RenewStatus::Lost,
        "renew at the expiry instant"
    );
    ctx.assert_unchanged(&id, &before, "calls at the expiry instant")
        .await;
    assert_eq!(
        reclaim(&ctx, id.partition(), 10).await.processed,
        1,
        "expired at the instant"
    );
}

/// Before the scanner runs, an expired lease can neither complete, fail nor
/// renew, and changes nothing; the execution still reads as `running` and is
/// not claimable until reclaimed.
pub async fn expired_lease_is_fenced_before_reclaim(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let id = ctx.create_waiting().await;
    let claim = ctx.claim_one_with("w1", 1_000).await;
    ctx.advance(1_001);
    let before = ctx.record(&id).await;
    assert_eq!(before.0.state, State::Running, "not reclaimed yet");
    expect_lease_lost(
        ctx.backend.complete(&claim.lease, b"late".to_vec()).await,
        &id,
        "complete with an expired lease",
    );
    expect_lease_lost(
        ctx.backend
            .fail(&claim.lease, Failure::retryable("late"))
            .await,
        &id,
        "fail with an expired lease",
    );
    let out = ctx.renew("w1", 30_000, vec![claim.lease.clone()]).await;
    assert_eq!(out[0].status, RenewStatus::Lost);
    ctx.assert_unchanged(&id, &before, "calls with an expired lease")
        .await;
    ctx.assert_nothing_to_claim().await;
    assert_eq!(ctx.reclaim_all().await, 1);
}

/// After a reclaim and a new claim, the first lease is fenced: complete and
/// fail are `LeaseLost` (its attempt did not fail, so no replay), renew is
/// lost; nothing changes, before and after the new attempt completes.
pub async fn reclaimed_lease_is_fenced_after_reclaim(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let policy = RetryPolicy {
        max_attempts: 3,
        backoff: Backoff::NONE,
    };
    let id = ctx
        .create_id(ctx.new_exec("job", b"").with_retry(policy))
        .await;
    let first = ctx.claim_one_with("w1", 1_000).await;
    ctx.advance(1_001);
    assert_eq!(ctx.reclaim_all().await, 1);
    let second = ctx.claim_one_with("w2", 30_000).await;
    assert_eq!(second.attempt, 2);
    let stale = &first.lease;
    for phase in ["while attempt 2 runs", "after attempt 2 completed"] {
        let before = ctx.record(&id).await;
        expect_lease_lost(
            ctx.backend.complete(stale, b"stale".to_vec()).await,
            &id,
            &format!("stale complete {phase}"),
        );
        expect_lease_lost(
            ctx.backend.fail(stale, Failure::retryable("stale")).await,
            &id,
            &format!("stale fail {phase}"),
        );
        let out = ctx.renew("w1", 30_000, vec![stale.clone()]).await;
        assert_eq!(out[0].status, RenewStatus::Lost, "stale renew {phase}");
        ctx.assert_unchanged(&id, &before, &format!("stale calls {phase}"))
            .await;
        if ctx.state(&id).await == State::Running {
            ctx.complete(&second.lease, b"ok").await;
        }
    }
    let outcomes: Vec<_> = ctx
        .attempts(&id)
        .await
        .into_iter()
        .map(|a| (a.number, a.worker_id, a.outcome))
        .collect();
    assert_eq!(
        outcomes,
        vec![
            (1, worker("w1"), Some(AttemptOutcome::LeaseExpired)),
            (2, worker("w2"), Some(AttemptOutcome::Completed)),
        ]
    );
}
