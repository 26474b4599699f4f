//! `cancel`: from every non-terminal state, idempotent on cancelled, a
//! conflict on other terminal states.

use super::prelude::*;

/// Cancelling a waiting execution makes it `cancelled` with the reason and
/// `finished_at`; it is never claimed.
pub async fn cancel_waiting(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let new = ctx.new_exec("job", b"{}");
    let id = ctx.create_id(new.clone()).await;
    ctx.advance(50);
    let snap = ctx.cancel(&id, Some("not needed")).await;
    let mut expected = expected_snapshot(&id, &new, START, State::Cancelled, None);
    expected.updated_at = ctx.now();
    expected.finished_at = Some(ctx.now());
    expected.cancel_reason = Some("not needed".into());
    assert_eq!(snap, expected);
    assert_eq!(ctx.describe(&id).await, expected);
    assert!(ctx.attempts(&id).await.is_empty(), "never attempted");
    ctx.assert_nothing_to_claim().await;
    assert_eq!(
        ctx.lane_counts(&ctx.lane()).await,
        StateCounts {
            cancelled: 1,
            ..StateCounts::default()
        }
    );
}

/// Cancelling a delayed execution (without a reason) keeps it from ever
/// being promoted.
pub async fn cancel_delayed_is_never_promoted(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let new = ctx.new_exec("job", b"").with_delay_ms(1_000);
    let id = ctx.create_id(new.clone()).await;
    ctx.advance(10);
    let snap = ctx.cancel(&id, None).await;
    let mut expected = expected_snapshot(
        &id,
        &new,
        START,
        State::Cancelled,
        Some(START.saturating_add(ms(1_000))),
    );
    expected.updated_at = ctx.now();
    expected.finished_at = Some(ctx.now());
    assert_eq!(snap, expected, "no reason given: none stored");
    ctx.advance(2_000);
    assert_eq!(
        ctx.promote_all().await,
        0,
        "a cancelled execution is not due"
    );
    assert_eq!(ctx.describe(&id).await, expected);
    ctx.assert_nothing_to_claim().await;
}

/// Cancelling a running execution closes its attempt as `cancelled`; its
/// worker then learns `cancelled` from renew and `LeaseLost` from complete
/// and fail, none of which changes anything.
pub async fn cancel_running_fences_the_worker(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let id = ctx.create_waiting().await;
    let claim = ctx.claim_one().await;
    let claimed_at = ctx.now();
    ctx.advance(100);
    let snap = ctx.cancel(&id, Some("operator")).await;
    assert_eq!(snap.state, State::Cancelled);
    assert_eq!(snap.attempts, 1);
    assert_eq!(snap.cancel_reason.as_deref(), Some("operator"));
    assert_eq!(snap.finished_at, Some(ctx.now()));
    assert_eq!(snap.updated_at, ctx.now());
    assert_eq!(
        (snap.worker_id.clone(), snap.lease_expires_at),
        (None, None)
    );
    let attempts = ctx.attempts(&id).await;
    assert_eq!(attempts.len(), 1);
    let a = &attempts[0];
    assert_eq!(
        (a.number, &a.worker_id, a.started_at, a.ended_at, a.outcome),
        (
            1,
            &worker(DEFAULT_WORKER),
            claimed_at,
            Some(ctx.now()),
            Some(AttemptOutcome::Cancelled)
        ),
        "the running attempt is closed as cancelled"
    );
    ctx.advance(100);
    let before = ctx.record(&id).await;
    let out = ctx
        .renew(DEFAULT_WORKER, 30_000, vec![claim.lease.clone()])
        .await;
    assert_eq!(
        (out[0].status, out[0].expires_at),
        (RenewStatus::Cancelled, None)
    );
    expect_lease_lost(
        ctx.backend.complete(&claim.lease, b"late".to_vec()).await,
        &id,
        "complete after cancel",
    );
    expect_lease_lost(
        ctx.backend
            .fail(&claim.lease, Failure::retryable("late"))
            .await,
        &id,
        "fail after cancel",
    );
    ctx.assert_unchanged(&id, &before, "the cancelled worker's calls")
        .await;
}

/// Cancelling a cancelled execution answers its snapshot unchanged; the
/// first reason stays.
pub async fn cancel_of_cancelled_keeps_first_reason(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let id = ctx.create_waiting().await;
    let first = ctx.cancel(&id, Some("first")).await;
    let before = ctx.record(&id).await;
    ctx.advance(1_000);
    assert_eq!(ctx.cancel(&id, Some("second")).await, first);
    assert_eq!(ctx.cancel(&id, None).await, first);
    ctx.assert_unchanged(&id, &before, "repeated cancels").await;
}

/// Cancelling a completed, failed or expired execution is a `Conflict` naming
/// its state; nothing changes.
pub async fn cancel_of_other_terminal_conflicts(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let completed = ctx
        .create_id(ctx.new_exec("job", b"").with_priority(2))
        .await;
    let failed = ctx
        .create_id(ctx.new_exec("job", b"").with_priority(1))
        .await;
    let expired = ctx
        .create_id(ctx.new_exec("job", b"").with_deadline(ctx.after(1_000)))
        .await;
    let claims = ctx.claim(ctx.claim_request(2)).await;
    assert_eq!(claims[0].id, completed);
    assert_eq!(claims[1].id, failed);
    ctx.complete(&claims[0].lease, b"").await;
    ctx.fail(&claims[1].lease, Failure::permanent("no")).await;
    ctx.advance(1_001);
    assert_eq!(ctx.expire_all().await, 1);
    for (id, state) in [
        (&completed, State::Completed),
        (&failed, State::Failed),
        (&expired, State::Expired),
    ] {
        let before = ctx.record(id).await;
        assert_eq!(before.0.state, state);
        expect_conflict(
            ctx.backend
                .cancel(id, CancelRequest::because("too late"))
                .await,
            id,
            "cancel",
            state,
            "cancel of a finished execution",
        );
        ctx.assert_unchanged(id, &before, "a refused cancel").await;
    }
}

/// A reason longer than `max_error_bytes` is stored truncated at a character
/// boundary.
pub async fn cancel_truncates_long_reason(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let limits = ctx.limits();
    let id = ctx.create_waiting().await;
    let long = format!("x{}", "ü".repeat(limits.max_error_bytes));
    let clipped = limits.clip_text(long.clone());
    let snap = ctx.cancel(&id, Some(&long)).await;
    assert_eq!(snap.cancel_reason.as_deref(), Some(clipped.as_str()));
    assert_eq!(
        ctx.describe(&id).await.cancel_reason.as_deref(),
        Some(clipped.as_str())
    );
}
