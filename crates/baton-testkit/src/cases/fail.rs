//! `fail`: the retry schedule, giving up, replays and fencing.

use super::prelude::*;

fn no_jitter(initial_ms: u64, max_ms: u64) -> Backoff {
    Backoff {
        initial_ms,
        max_ms,
        multiplier: 2.0,
        jitter: false,
    }
}

/// Without jitter, retryable failures schedule exactly 100, 200, 400, 800 ms
/// after each failure; the execution is due at `run_at`, not a millisecond
/// earlier; the fifth failure of five allowed attempts fails it.
pub async fn fail_schedules_exact_exponential_backoff(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let policy = RetryPolicy {
        max_attempts: 5,
        backoff: no_jitter(100, 10_000),
    };
    let new = ctx.new_exec("job", b"").with_retry(policy);
    let id = ctx.create_id(new.clone()).await;
    let mut expected = expected_snapshot(&id, &new, START, State::Waiting, None);
    for (n, delay) in [(1u32, 100u64), (2, 200), (3, 400), (4, 800)] {
        let claim = ctx.claim_one().await;
        assert_eq!(claim.attempt, n, "attempt number");
        assert_eq!(claim.lease.attempt(), n, "the lease fences this attempt");
        ctx.advance(7);
        let error = format!("boom {n}");
        let snap = ctx.fail(&claim.lease, Failure::retryable(&error)).await;
        expected.state = State::Delayed;
        expected.attempts = n;
        expected.updated_at = ctx.now();
        expected.run_at = Some(ctx.after(delay));
        expected.last_error = Some(error);
        assert_eq!(snap, expected, "after failure {n}");
        assert_eq!(ctx.describe(&id).await, expected);
        ctx.advance(delay - 1);
        assert_eq!(ctx.promote_all().await, 0, "not due 1 ms early");
        ctx.assert_nothing_to_claim().await;
        ctx.advance(1);
        assert_eq!(ctx.promote_all().await, 1, "due at run_at (run_at <= now)");
        expected.state = State::Waiting;
        expected.updated_at = ctx.now();
        assert_eq!(ctx.describe(&id).await, expected, "promoted, run_at kept");
    }
    let claim = ctx.claim_one().await;
    assert_eq!(claim.attempt, 5);
    let snap = ctx.fail(&claim.lease, Failure::retryable("boom 5")).await;
    expected.state = State::Failed;
    expected.attempts = 5;
    expected.updated_at = ctx.now();
    expected.finished_at = Some(ctx.now());
    expected.last_error = Some("boom 5".into());
    assert_eq!(snap, expected, "the last allowed attempt failed");
    let attempts = ctx.attempts(&id).await;
    let summary: Vec<_> = attempts
        .iter()
        .map(|a| (a.number, a.outcome, a.error.clone()))
        .collect();
    let want: Vec<_> = (1..=5)
        .map(|n| (n, Some(AttemptOutcome::Failed), Some(format!("boom {n}"))))
        .collect();
    assert_eq!(summary, want);
}

/// With jitter, `run_at` is exactly `now + policy.backoff.delay_ms(id, n)`:
/// the schedule is computed once in `baton-core` and every backend uses it.
pub async fn fail_with_jitter_uses_policy_delay(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let policy = RetryPolicy {
        max_attempts: 4,
        backoff: Backoff::default(),
    };
    assert!(policy.backoff.jitter);
    let id = ctx
        .create_id(ctx.new_exec("job", b"").with_retry(policy))
        .await;
    for n in 1..=3u32 {
        let claim = ctx.claim_one().await;
        assert_eq!(claim.attempt, n);
        let snap = ctx.fail(&claim.lease, Failure::retryable("again")).await;
        let delay = policy.backoff.delay_ms(&id, n);
        assert_eq!(
            policy.decide(&id, n, true, None),
            RetryDecision::RetryAfter(ms(delay))
        );
        assert_eq!(snap.state, State::Delayed);
        assert_eq!(
            snap.run_at,
            Some(ctx.after(delay)),
            "attempt {n}: {delay} ms"
        );
        ctx.advance(delay + 1);
        assert_eq!(ctx.promote_all().await, 1);
    }
}

/// A failure's `retry_after` replaces the backoff: the exact delay asked for,
/// zero meaning `waiting` at once, and anything beyond the 30-day cap capped.
pub async fn fail_retry_after_overrides_backoff(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let policy = RetryPolicy {
        max_attempts: 10,
        backoff: no_jitter(100, 1_000),
    };
    let id = ctx
        .create_id(ctx.new_exec("job", b"").with_retry(policy))
        .await;
    let claim = ctx.claim_one().await;
    let snap = ctx
        .fail(
            &claim.lease,
            Failure::retry_after("rate limited", ms(7_000)),
        )
        .await;
    assert_eq!(
        (snap.state, snap.run_at),
        (State::Delayed, Some(ctx.after(7_000)))
    );
    ctx.advance(7_001);
    assert_eq!(ctx.promote_all().await, 1);

    let claim = ctx.claim_one().await;
    let snap = ctx
        .fail(&claim.lease, Failure::retry_after("now", Duration::ZERO))
        .await;
    assert_eq!(
        snap.state,
        State::Waiting,
        "a zero retry_after retries at once"
    );

    let claim = ctx.claim_one().await;
    assert_eq!(claim.attempt, 3);
    let snap = ctx
        .fail(
            &claim.lease,
            Failure::retry_after("much later", ms(Backoff::MAX_DELAY_MS * 2)),
        )
        .await;
    assert_eq!(
        (snap.state, snap.run_at),
        (State::Delayed, Some(ctx.after(Backoff::MAX_DELAY_MS))),
        "retry_after is capped at 30 days"
    );
    assert_eq!(ctx.describe(&id).await, snap);
}

/// With zero backoff a retryable failure makes the execution `waiting` at
/// once, claimable without a scheduler pass.
pub async fn fail_with_zero_backoff_is_waiting(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let policy = RetryPolicy {
        max_attempts: 3,
        backoff: Backoff::NONE,
    };
    let id = ctx
        .create_id(ctx.new_exec("job", b"").with_retry(policy))
        .await;
    let claim = ctx.claim_one().await;
    ctx.advance(5);
    let snap = ctx.fail(&claim.lease, Failure::retryable("oops")).await;
    assert_eq!(snap.state, State::Waiting);
    assert_eq!(snap.attempts, 1);
    assert_eq!(snap.last_error.as_deref(), Some("oops"));
    assert_eq!(
        (snap.worker_id.clone(), snap.lease_expires_at),
        (None, None)
    );
    assert_eq!(snap.updated_at, ctx.now());
    assert_eq!(snap.finished_at, None);
    let again = ctx.claim_one().await;
    assert_eq!((again.id, again.attempt), (id, 2));
}

/// A non-retryable failure fails the execution at once, whatever attempts
/// remain.
pub async fn fail_non_retryable_fails_at_once(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let id = ctx
        .create_id(
            ctx.new_exec("job", b"")
                .with_retry(RetryPolicy::attempts(10)),
        )
        .await;
    let claim = ctx.claim_one().await;
    ctx.advance(3);
    let snap = ctx
        .fail(&claim.lease, Failure::permanent("bad input"))
        .await;
    assert_eq!(snap.state, State::Failed);
    assert_eq!(snap.attempts, 1);
    assert_eq!(snap.finished_at, Some(ctx.now()));
    assert_eq!(snap.updated_at, ctx.now());
    assert_eq!(snap.last_error.as_deref(), Some("bad input"));
    assert_eq!(
        (snap.worker_id.clone(), snap.lease_expires_at),
        (None, None)
    );
    assert_eq!(ctx.describe(&id).await, snap);
    let attempts = ctx.attempts(&id).await;
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].outcome, Some(AttemptOutcome::Failed));
    assert_eq!(attempts[0].ended_at, Some(ctx.now()));
    assert_eq!(attempts[0].error.as_deref(), Some("bad input"));
    ctx.assert_nothing_to_claim().await;
}

/// A retryable failure of the only allowed attempt fails the execution.
pub async fn fail_on_last_attempt_fails(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let id = ctx
        .create_id(
            ctx.new_exec("job", b"")
                .with_retry(RetryPolicy::attempts(1)),
        )
        .await;
    let claim = ctx.claim_one().await;
    let snap = ctx.fail(&claim.lease, Failure::retryable("flaky")).await;
    assert_eq!(snap.state, State::Failed);
    assert_eq!(snap.finished_at, Some(ctx.now()));
    assert_eq!(ctx.describe(&id).await, snap);
    assert_eq!(ctx.promote_all().await, 0);
    ctx.assert_nothing_to_claim().await;
}

/// Failing again with the same lease answers the current snapshot and
/// changes nothing, whatever the repeated failure says — also after the
/// execution moved on to another attempt.
pub async fn fail_replay_is_ok_and_changes_nothing(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let policy = RetryPolicy {
        max_attempts: 3,
        backoff: no_jitter(1_000, 1_000),
    };
    let id = ctx
        .create_id(ctx.new_exec("job", b"").with_retry(policy))
        .await;
    let claim = ctx.claim_one().await;
    let first = ctx.fail(&claim.lease, Failure::retryable("boom")).await;
    assert_eq!(first.state, State::Delayed);
    let before = ctx.record(&id).await;
    ctx.advance(100);
    for replay in [
        Failure::retryable("boom"),
        Failure::retryable("another error"),
        Failure::permanent("give up"),
    ] {
        let again = ctx.fail(&claim.lease, replay).await;
        assert_eq!(again, first, "a replayed fail answers the current snapshot");
    }
    ctx.assert_unchanged(&id, &before, "replayed fails").await;

    ctx.advance(1_000);
    assert_eq!(ctx.promote_all().await, 1);
    let second = ctx.claim_one().await;
    assert_eq!(second.attempt, 2);
    let running = ctx.record(&id).await;
    let again = ctx.fail(&claim.lease, Failure::retryable("boom")).await;
    assert_eq!(again, running.0, "the current snapshot: attempt 2 running");
    ctx.assert_unchanged(&id, &running, "a late replay of attempt 1")
        .await;
}

/// Failing with a lease whose attempt completed the execution is a
/// `Conflict`; nothing changes.
pub async fn fail_after_complete_conflicts(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let id = ctx.create_waiting().await;
    let claim = ctx.claim_one().await;
    ctx.complete(&claim.lease, b"done").await;
    let before = ctx.record(&id).await;
    for failure in [Failure::retryable("late"), Failure::permanent("late")] {
        expect_conflict(
            ctx.backend.fail(&claim.lease, failure).await,
            &id,
            "fail",
            State::Completed,
            "fail after complete",
        );
    }
    ctx.assert_unchanged(&id, &before, "fail after complete")
        .await;
}

/// An error longer than `max_error_bytes` is stored truncated at a character
/// boundary, in `last_error` and in the attempt record.
pub async fn fail_truncates_long_error(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let limits = ctx.limits();
    let id = ctx
        .create_id(
            ctx.new_exec("job", b"")
                .with_retry(RetryPolicy::attempts(1)),
        )
        .await;
    let claim = ctx.claim_one().await;
    let long = format!("x{}", "é".repeat(limits.max_error_bytes));
    let clipped = limits.clip_text(long.clone());
    assert!(clipped.len() < long.len());
    let snap = ctx.fail(&claim.lease, Failure::retryable(long)).await;
    assert_eq!(snap.last_error.as_deref(), Some(clipped.as_str()));
    assert_eq!(
        ctx.attempts(&id).await[0].error.as_deref(),
        Some(clipped.as_str())
    );
}

/// Failing with a forged nonce or attempt number is `LeaseLost` and changes
/// nothing; the real lease still works afterwards.
pub async fn fail_with_forged_lease_is_lease_lost(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let id = ctx.create_waiting().await;
    let claim = ctx.claim_one().await;
    let before = ctx.record(&id).await;
    for forged in [
        LeaseToken::new(id.clone(), 1, claim.lease.nonce() ^ 0xff),
        LeaseToken::new(id.clone(), 2, claim.lease.nonce()),
    ] {
        expect_lease_lost(
            ctx.backend.fail(&forged, Failure::permanent("x")).await,
            &id,
            "fail with a forged lease",
        );
    }
    ctx.assert_unchanged(&id, &before, "forged fails").await;
    let snap = ctx.fail(&claim.lease, Failure::permanent("real")).await;
    assert_eq!(snap.state, State::Failed);
}
