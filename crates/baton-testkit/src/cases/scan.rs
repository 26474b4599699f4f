//! The scheduler's per-partition passes: `promote_due`,
//! `reclaim_expired_leases`, `expire_deadlines` and `trim_terminal`, with
//! their `ScanReport`s.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use baton_core::{PartitionId, ScanReport};

use super::prelude::*;

const HOUR_MS: u64 = 3_600_000;

fn no_jitter(initial_ms: u64) -> Backoff {
    Backoff {
        initial_ms,
        max_ms: 10_000,
        multiplier: 2.0,
        jitter: false,
    }
}

async fn promote(ctx: &Ctx, p: PartitionId, limit: usize) -> ScanReport {
    ok(ctx.backend.promote_due(p, limit).await, "promote_due")
}

async fn reclaim(ctx: &Ctx, p: PartitionId, limit: usize) -> ScanReport {
    ok(
        ctx.backend.reclaim_expired_leases(p, limit).await,
        "reclaim_expired_leases",
    )
}

async fn expire(ctx: &Ctx, p: PartitionId, limit: usize) -> ScanReport {
    ok(
        ctx.backend.expire_deadlines(p, limit).await,
        "expire_deadlines",
    )
}

async fn trim(ctx: &Ctx, p: PartitionId, retention_ms: u64, limit: usize) -> ScanReport {
    ok(
        ctx.backend.trim_terminal(p, ms(retention_ms), limit).await,
        "trim_terminal",
    )
}

/// Asserts a pass stopped at its limit: it processed `processed` and reports
/// the next item as already due.
#[track_caller]
fn assert_stopped_at_limit(ctx: &Ctx, report: ScanReport, processed: u64, what: &str) {
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

/// `trim_terminal` deletes terminal executions (of all four terminal
/// states) that finished more than `retention` ago, with their attempts;
/// recent terminal and all non-terminal executions stay.
pub async fn trim_removes_only_old_terminal(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let day = 24 * HOUR_MS;
    let completed = ctx
        .create_id(ctx.new_exec("job", b"").with_priority(3))
        .await;
    let failed = ctx
        .create_id(ctx.new_exec("job", b"").with_priority(2))
        .await;
    let running = ctx
        .create_id(ctx.new_exec("job", b"").with_priority(1))
        .await;
    let cancelled = ctx.create_waiting().await;
    let expired = ctx
        .create_id(ctx.new_exec("job", b"").with_deadline(ctx.after(1_000)))
        .await;
    let delayed = ctx
        .create_id(ctx.new_exec("job", b"").with_delay_ms(10 * HOUR_MS as i64))
        .await;
    let claims = ctx
        .claim(ctx.claim_request(3).with_lease_ttl(ms(day)))
        .await;
    let claimed: Vec<_> = claims.iter().map(|c| c.id.clone()).collect();
    assert_eq!(
        claimed,
        vec![completed.clone(), failed.clone(), running.clone()]
    );
    ctx.complete(&claims[0].lease, b"").await;
    ctx.fail(&claims[1].lease, Failure::permanent("no")).await;
    ctx.cancel(&cancelled, None).await;
    ctx.advance(1_001);
    assert_eq!(ctx.expire_all().await, 1);
    let waiting = ctx.create_waiting().await;

    ctx.advance(30 * 60_000);
    let recent = ctx
        .create_id(ctx.new_exec("job", b"").with_priority(10))
        .await;
    let claim = ctx.claim_one().await;
    assert_eq!(claim.id, recent);
    let recent_done = ctx.complete(&claim.lease, b"").await;
    ctx.advance(31 * 60_000);

    assert_eq!(ctx.trim_all(HOUR_MS).await, 4, "the four old terminal ones");
    for id in [&completed, &failed, &cancelled, &expired] {
        expect_not_found(
            ctx.backend.describe(id).await,
            id,
            "describe of a trimmed execution",
        );
        expect_not_found(
            ctx.backend.attempts(id).await,
            id,
            "attempts of a trimmed execution",
        );
    }
    for id in [&running, &delayed, &waiting, &recent] {
        ctx.describe(id).await;
    }
    assert_eq!(
        ctx.lane_counts(&ctx.lane()).await,
        StateCounts {
            waiting: 1,
            delayed: 1,
            running: 1,
            completed: 1,
            ..StateCounts::default()
        }
    );
    assert_eq!(ctx.trim_all(HOUR_MS).await, 0, "idempotent");
    let finished = recent_done.finished_at.expect("finished_at");
    assert_eq!(
        trim(&ctx, recent.partition(), HOUR_MS, 100).await,
        ScanReport {
            processed: 0,
            next_due: Some(finished.saturating_add(ms(HOUR_MS)))
        },
        "the recent one falls due when its retention ends"
    );
}

/// A terminal execution is trimmed once `finished_at + retention <= now`,
/// not a millisecond earlier.
pub async fn trim_at_exact_retention(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let id = ctx.create_waiting().await;
    let finished = ctx.cancel(&id, None).await.finished_at;
    assert_eq!(finished, Some(ctx.now()));
    ctx.advance(HOUR_MS - 1);
    assert_eq!(ctx.trim_all(HOUR_MS).await, 0, "1 ms before retention ends");
    ctx.describe(&id).await;
    ctx.advance(1);
    assert_eq!(
        ctx.trim_all(HOUR_MS).await,
        1,
        "at the instant retention ends"
    );
    expect_not_found(ctx.backend.describe(&id).await, &id, "describe after trim");
}

/// After a trim the idempotency key is free: the same key creates a new
/// execution.
pub async fn trim_frees_idempotency_key(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let submit = || {
        ctx.new_exec("job", b"")
            .with_idempotency_key(ikey("nightly"))
    };
    let old = ctx.create_id(submit()).await;
    let claim = ctx.claim_one().await;
    ctx.complete(&claim.lease, b"").await;
    ctx.advance(HOUR_MS + 1);
    assert_eq!(ctx.trim_all(HOUR_MS).await, 1);
    expect_not_found(
        ctx.backend.describe(&old).await,
        &old,
        "describe after trim",
    );
    let again = ctx.create_one(submit()).await;
    assert!(again.created, "the key is reusable after a trim");
    assert_ne!(again.id, old);
    assert_eq!(again.state, State::Waiting);
    assert_eq!(
        ctx.counts().await,
        BTreeMap::from([(
            ctx.lane(),
            StateCounts {
                waiting: 1,
                ..StateCounts::default()
            }
        )])
    );
}

/// `trim_terminal` trims at most `limit` and reports the rest as due at once.
pub async fn trim_respects_limit(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let mut all = Vec::new();
    let (p, group) = ctx
        .create_sharing_partition(|c| c.new_exec("job", b""), &mut all)
        .await;
    for id in &group {
        ctx.cancel(id, None).await;
    }
    ctx.advance(HOUR_MS + 10);
    assert_stopped_at_limit(&ctx, trim(&ctx, p, HOUR_MS, 1).await, 1, "trim limit 1");
    assert_eq!(
        trim(&ctx, p, HOUR_MS, 100).await,
        ScanReport {
            processed: 1,
            next_due: None
        }
    );
    for id in &group {
        expect_not_found(ctx.backend.describe(id).await, id, "describe after trim");
    }
}

/// Terminal executions never change again: no scanner promotes, reclaims or
/// expires them, whatever their run_at, lease or deadline said.
pub async fn terminal_executions_ignore_every_scanner(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let completed = ctx
        .create_id(
            ctx.new_exec("job", b"")
                .with_priority(2)
                .with_deadline(ctx.after(10_000)),
        )
        .await;
    let failed = ctx
        .create_id(
            ctx.new_exec("job", b"")
                .with_priority(1)
                .with_deadline(ctx.after(10_000)),
        )
        .await;
    let cancelled = ctx
        .create_id(
            ctx.new_exec("job", b"")
                .with_delay_ms(5_000)
                .with_deadline(ctx.after(10_000)),
        )
        .await;
    let expired = ctx
        .create_id(ctx.new_exec("job", b"").with_deadline(ctx.after(2_000)))
        .await;
    let claims = ctx
        .claim(ctx.claim_request(2).with_lease_ttl(ms(1_000)))
        .await;
    assert_eq!(claims.len(), 2);
    ctx.complete(&claims[0].lease, b"").await;
    ctx.fail(&claims[1].lease, Failure::permanent("no")).await;
    ctx.cancel(&cancelled, Some("stop")).await;
    ctx.advance(3_000);
    assert_eq!(ctx.expire_all().await, 1, "only the waiting one expires");
    let mut before = Vec::new();
    for id in [&completed, &failed, &cancelled, &expired] {
        before.push(ctx.record(id).await);
    }
    ctx.advance(20_000);
    assert_eq!(ctx.promote_all().await, 0);
    assert_eq!(ctx.reclaim_all().await, 0);
    assert_eq!(ctx.expire_all().await, 0);
    for (id, record) in [&completed, &failed, &cancelled, &expired]
        .into_iter()
        .zip(&before)
    {
        ctx.assert_unchanged(id, record, "scanners over a terminal execution")
            .await;
    }
    ctx.assert_nothing_to_claim().await;
}

/// Every pass rejects a partition outside the deployment and a `limit` of 0
/// with `InvalidInput`, and changes nothing.
pub async fn scans_reject_invalid_partition_and_zero_limit(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let id = ctx
        .create_id(ctx.new_exec("job", b"").with_delay_ms(1_000))
        .await;
    ctx.advance(2_000);
    let before = ctx.record(&id).await;
    let outside = PartitionId(ctx.backend.partitions().get());
    let p = id.partition();
    let b = &ctx.backend;
    for (part, limit, what) in [
        (outside, 10, "partition outside the deployment"),
        (p, 0, "limit 0"),
    ] {
        expect_invalid(
            b.promote_due(part, limit).await,
            &format!("promote_due: {what}"),
        );
        expect_invalid(
            b.reclaim_expired_leases(part, limit).await,
            &format!("reclaim_expired_leases: {what}"),
        );
        expect_invalid(
            b.expire_deadlines(part, limit).await,
            &format!("expire_deadlines: {what}"),
        );
        expect_invalid(
            b.trim_terminal(part, ms(0), limit).await,
            &format!("trim_terminal: {what}"),
        );
    }
    ctx.assert_unchanged(&id, &before, "rejected passes").await;
    assert_eq!(promote(&ctx, p, 10).await.processed, 1, "still due");
}

/// Every pass over a partition with nothing of its kind processes nothing
/// and reports no next item.
pub async fn scans_of_empty_partitions_report_nothing(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let none = ScanReport::default();
    for p in ctx.backend.partitions().iter() {
        assert_eq!(promote(&ctx, p, 10).await, none, "promote_due on {p}");
        assert_eq!(reclaim(&ctx, p, 10).await, none, "reclaim on {p}");
        assert_eq!(expire(&ctx, p, 10).await, none, "expire_deadlines on {p}");
        assert_eq!(trim(&ctx, p, 0, 10).await, none, "trim_terminal on {p}");
    }
    let id = ctx.create_waiting().await;
    let p = id.partition();
    assert_eq!(
        promote(&ctx, p, 10).await,
        none,
        "a waiting execution is not delayed"
    );
    assert_eq!(reclaim(&ctx, p, 10).await, none, "nor leased");
    assert_eq!(expire(&ctx, p, 10).await, none, "nor has a deadline");
    assert_eq!(trim(&ctx, p, 0, 10).await, none, "nor is terminal");
    assert_eq!(ctx.state(&id).await, State::Waiting);
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
