//! `complete`: storing results, replays, conflicts and fencing.

use super::prelude::*;

/// Completing with the current lease makes the execution `completed` with the
/// result, closes the attempt, and answers the same snapshot describe does.
pub async fn complete_stores_result_and_closes_attempt(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let new = ctx.new_exec("email.send", b"{}");
    let id = ctx.create_id(new.clone()).await;
    ctx.advance(10);
    let claim = ctx.claim_one().await;
    let claimed_at = ctx.now();
    ctx.advance(1_000);
    let snap = ctx.complete(&claim.lease, b"\"sent\"").await;
    let mut expected = expected_snapshot(&id, &new, START, State::Completed, None);
    expected.attempts = 1;
    expected.updated_at = ctx.now();
    expected.finished_at = Some(ctx.now());
    expected.result = Some(b"\"sent\"".to_vec());
    assert_eq!(snap, expected, "complete answers the new snapshot");
    assert_eq!(ctx.describe(&id).await, expected);
    assert_eq!(
        ctx.attempts(&id).await,
        vec![AttemptRecord {
            number: 1,
            worker_id: worker(DEFAULT_WORKER),
            started_at: claimed_at,
            ended_at: Some(ctx.now()),
            outcome: Some(AttemptOutcome::Completed),
            error: None,
        }]
    );
    assert_eq!(
        ctx.lane_counts(&ctx.lane()).await,
        StateCounts {
            completed: 1,
            ..StateCounts::default()
        }
    );
    ctx.assert_nothing_to_claim().await;
}

/// An empty result is stored as empty (not absent), and a result of exactly
/// the payload limit is accepted.
pub async fn complete_accepts_empty_and_max_size_results(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    ctx.create_waiting().await;
    ctx.create_waiting().await;
    let claims = ctx.claim(ctx.claim_request(2)).await;
    assert_eq!(claims.len(), 2);
    let empty = ctx.complete(&claims[0].lease, b"").await;
    assert_eq!(empty.result, Some(Vec::new()));
    assert_eq!(ctx.describe(&claims[0].id).await.result, Some(Vec::new()));
    let max = ctx.limits().max_payload_bytes;
    let big: Vec<u8> = (0..max).map(|i| (i % 253) as u8).collect();
    ctx.complete(&claims[1].lease, &big).await;
    let stored = ctx.describe(&claims[1].id).await.result;
    assert!(
        stored.as_deref() == Some(&big[..]),
        "the whole result comes back"
    );
}

/// Completing again with the same lease and result answers the first
/// snapshot and changes nothing, even later.
pub async fn complete_replay_with_same_result_is_ok(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let id = ctx.create_waiting().await;
    let claim = ctx.claim_one().await;
    let first = ctx.complete(&claim.lease, b"42").await;
    let before = ctx.record(&id).await;
    ctx.advance(5_000);
    let again = ctx.complete(&claim.lease, b"42").await;
    assert_eq!(again, first, "a replay answers the same snapshot");
    ctx.assert_unchanged(&id, &before, "a replayed complete")
        .await;
}

/// Completing again with a different result is a `Conflict`; the first result
/// stays.
pub async fn complete_replay_with_different_result_conflicts(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let id = ctx.create_waiting().await;
    let claim = ctx.claim_one().await;
    ctx.complete(&claim.lease, b"42").await;
    let before = ctx.record(&id).await;
    ctx.advance(5_000);
    expect_conflict(
        ctx.backend.complete(&claim.lease, b"43".to_vec()).await,
        &id,
        "complete",
        State::Completed,
        "complete with another result",
    );
    ctx.assert_unchanged(&id, &before, "a conflicting complete")
        .await;
    assert_eq!(ctx.describe(&id).await.result, Some(b"42".to_vec()));
}

/// Completing with a lease whose attempt already failed is a `Conflict`,
/// whether the execution was retried or failed for good.
pub async fn complete_after_fail_conflicts(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let retried = ctx
        .create_id(ctx.new_exec("job", b"").with_priority(1))
        .await;
    let failed = ctx.create_waiting().await;
    let claims = ctx.claim(ctx.claim_request(2)).await;
    assert_eq!(claims[0].id, retried);
    assert_eq!(claims[1].id, failed);
    ctx.fail(&claims[0].lease, Failure::retryable("flaky"))
        .await;
    ctx.fail(&claims[1].lease, Failure::permanent("broken"))
        .await;
    for (claim, state) in [(&claims[0], State::Delayed), (&claims[1], State::Failed)] {
        let before = ctx.record(&claim.id).await;
        assert_eq!(before.0.state, state);
        expect_conflict(
            ctx.backend.complete(&claim.lease, b"late".to_vec()).await,
            &claim.id,
            "complete",
            state,
            "complete after fail",
        );
        ctx.assert_unchanged(&claim.id, &before, "complete after fail")
            .await;
    }
}

/// A result over the limit is `InvalidInput`; the execution stays `running`
/// under the same lease, which can then complete with a valid result.
pub async fn complete_rejects_oversize_result_and_keeps_running(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let id = ctx.create_waiting().await;
    let claim = ctx.claim_one().await;
    let before = ctx.record(&id).await;
    let too_big = vec![b'x'; ctx.limits().max_payload_bytes + 1];
    expect_invalid(
        ctx.backend.complete(&claim.lease, too_big).await,
        "complete with an oversize result",
    );
    ctx.assert_unchanged(&id, &before, "a rejected complete")
        .await;
    assert_eq!(
        ctx.complete(&claim.lease, b"ok").await.state,
        State::Completed
    );
}

/// A lease with a forged nonce or attempt number is `LeaseLost` and changes
/// nothing — before completion, and after it (a forged token is no replay).
pub async fn complete_with_forged_lease_is_lease_lost(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let id = ctx
        .create_id(ctx.new_exec("job", b"").with_priority(1))
        .await;
    let never_claimed = ctx.create_waiting().await;
    let claim = ctx.claim_one().await;
    assert_eq!(claim.id, id);
    let lease = &claim.lease;
    let forged_nonce = LeaseToken::new(id.clone(), 1, lease.nonce() ^ 1);
    let forged_attempt = LeaseToken::new(id.clone(), 2, lease.nonce());
    let before = ctx.record(&id).await;
    for forged in [&forged_nonce, &forged_attempt] {
        expect_lease_lost(
            ctx.backend.complete(forged, b"x".to_vec()).await,
            &id,
            "complete with a forged lease",
        );
    }
    ctx.assert_unchanged(&id, &before, "forged completes").await;

    let waiting_before = ctx.record(&never_claimed).await;
    expect_lease_lost(
        ctx.backend
            .complete(&LeaseToken::new(never_claimed.clone(), 1, 7), b"x".to_vec())
            .await,
        &never_claimed,
        "complete of a waiting execution",
    );
    ctx.assert_unchanged(&never_claimed, &waiting_before, "a forged complete")
        .await;

    ctx.complete(lease, b"x").await;
    let done = ctx.record(&id).await;
    expect_lease_lost(
        ctx.backend.complete(&forged_nonce, b"x".to_vec()).await,
        &id,
        "a forged replay of complete",
    );
    ctx.assert_unchanged(&id, &done, "a forged replay").await;
}

/// Eight tasks completing with the same lease and result at once all succeed
/// and all see the same snapshot.
pub async fn concurrent_completes_of_one_lease_agree(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let id = ctx.create_waiting().await;
    let claim = ctx.claim_one().await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let ctx = ctx.clone();
        let lease = claim.lease.clone();
        tasks.push(tokio::spawn(async move {
            ok(
                ctx.backend.complete(&lease, b"same".to_vec()).await,
                "concurrent complete",
            )
        }));
    }
    let mut snaps = Vec::new();
    for task in tasks {
        snaps.push(task.await.expect("complete task panicked"));
    }
    let described = ctx.describe(&id).await;
    assert_eq!(described.state, State::Completed);
    for snap in snaps {
        assert_eq!(snap, described, "every complete answers the one outcome");
    }
    assert_eq!(ctx.attempts(&id).await.len(), 1);
}

/// A complete racing a cancel: exactly one wins, the loser gets the error its
/// contract names (`Conflict` for the cancel, `LeaseLost` for the complete),
/// and describe shows the winner's outcome.
pub async fn complete_and_cancel_race_has_one_winner(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    ctx.create_chunked((0..10).map(|_| ctx.new_exec("job", b"")).collect())
        .await;
    let claims = ctx.claim(ctx.claim_request(10)).await;
    assert_eq!(claims.len(), 10);
    for claim in claims {
        let completer = {
            let ctx = ctx.clone();
            let lease = claim.lease.clone();
            tokio::spawn(async move { ctx.backend.complete(&lease, b"won".to_vec()).await })
        };
        let canceller = {
            let ctx = ctx.clone();
            let id = claim.id.clone();
            tokio::spawn(async move {
                ctx.backend
                    .cancel(&id, CancelRequest::because("race"))
                    .await
                    .map(|c| c.snapshot)
            })
        };
        let completed = completer.await.expect("complete task panicked");
        let cancelled = canceller.await.expect("cancel task panicked");
        let snap = ctx.describe(&claim.id).await;
        match (completed, cancelled) {
            (Ok(done), Err(err)) => {
                assert!(
                    matches!(
                        err,
                        EngineError::Conflict {
                            state: State::Completed,
                            ..
                        }
                    ),
                    "the losing cancel must be a Conflict, got {err:?}"
                );
                assert_eq!(done, snap);
                assert_eq!(snap.state, State::Completed);
            }
            (Err(err), Ok(cancelled)) => {
                assert!(
                    matches!(err, EngineError::LeaseLost { .. }),
                    "the losing complete must be LeaseLost, got {err:?}"
                );
                assert_eq!(cancelled, snap);
                assert_eq!(snap.state, State::Cancelled);
            }
            (a, b) => panic!("exactly one must win: complete {a:?}, cancel {b:?}"),
        }
    }
}
