//! Memory: checkpointed steps, recorded under the lease and replayed by
//! every later attempt.

use super::prelude::*;
use baton_core::{StepOutcome, StepRecord, StepStatus};

fn done(output: &[u8]) -> StepOutcome {
    StepOutcome::Done(output.to_vec())
}

fn failed(error: &str) -> StepOutcome {
    StepOutcome::Failed(error.to_owned())
}

/// Done and failed records, what `steps` lists, the replay in the next
/// attempt's claim, a failed step finished later (its failures kept), and
/// a done step that never changes.
pub async fn steps_are_recorded_and_replayed_by_the_next_attempt(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let id = ctx
        .create_id(ctx.new_exec("workflow", b"").with_retry(no_backoff(3)))
        .await;
    let first = ctx.claim_one().await;
    assert!(first.steps.is_empty());
    ctx.advance(10);
    let a = ctx.record_step(&first.lease, "a", done(b"{\"x\":1}")).await;
    assert_eq!(
        a,
        StepRecord {
            name: step_name("a"),
            status: StepStatus::Done,
            output: Some(b"{\"x\":1}".to_vec()),
            error: None,
            attempt: 1,
            failures: 0,
            recorded_at: ctx.now(),
        }
    );
    let at = ctx.now();
    ctx.advance(10);
    let b = ctx.record_step(&first.lease, "b", failed("boom")).await;
    assert_eq!(
        (b.status, b.output.clone(), b.error.clone(), b.failures),
        (StepStatus::Failed, None, Some("boom".to_owned()), 1)
    );
    let b = ctx
        .record_step(&first.lease, "b", failed("boom again"))
        .await;
    assert_eq!((b.failures, b.error.as_deref()), (2, Some("boom again")));
    assert_eq!(ctx.steps(&id).await, vec![a.clone(), b.clone()]);
    ctx.fail(&first.lease, Failure::retryable("crashed")).await;

    let second = ctx.claim_one().await;
    assert_eq!(second.attempt, 2);
    assert_eq!(
        second.steps,
        BTreeMap::from([(step_name("a"), b"{\"x\":1}".to_vec())]),
        "only done steps are replayed"
    );
    ctx.advance(10);
    let b = ctx.record_step(&second.lease, "b", done(b"2")).await;
    assert_eq!(
        (
            b.status,
            b.output.clone(),
            b.error.as_deref(),
            b.attempt,
            b.failures
        ),
        (
            StepStatus::Done,
            Some(b"2".to_vec()),
            Some("boom again"),
            2,
            2
        )
    );
    assert_eq!(b.recorded_at, ctx.now());
    // A done step is final: the same output is a no-op, anything else a
    // conflict.
    ctx.advance(10);
    assert_eq!(
        ctx.record_step(&second.lease, "a", done(b"{\"x\":1}"))
            .await,
        a
    );
    assert_eq!(a.recorded_at, at);
    for outcome in [done(b"{\"x\":2}"), failed("late")] {
        expect_conflict(
            ctx.backend
                .record_step(&second.lease, step_name("a"), outcome)
                .await,
            &id,
            "record_step",
            State::Running,
            "a different record for a done step",
        );
    }
    assert_eq!(ctx.steps(&id).await, vec![a, b]);
    assert_eq!(ctx.describe(&id).await.attempts, 2, "steps change no state");
}

/// Only the current live lease records steps; bad records are refused and
/// change nothing.
pub async fn step_records_are_fenced_and_checked(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    // No backoff: the reclaimed execution is claimed again at once.
    let id = ctx
        .create_id(ctx.new_exec("fenced", b"").with_retry(no_backoff(3)))
        .await;
    let short = ctx.claim_one_with(DEFAULT_WORKER, 1_000).await;
    let too_big = vec![b'1'; ctx.limits().max_payload_bytes + 1];
    assert_eq!(
        expect_invalid(
            ctx.backend
                .record_step(&short.lease, step_name("big"), StepOutcome::Done(too_big))
                .await,
            "an output over the limit",
        ),
        "output"
    );
    assert_eq!(
        expect_invalid(
            ctx.backend
                .record_step(&short.lease, step_name("nul"), failed("a\0b"))
                .await,
            "an error with NUL",
        ),
        "error"
    );
    ctx.advance(1_000);
    expect_lease_lost(
        ctx.backend
            .record_step(&short.lease, step_name("late"), done(b"1"))
            .await,
        &id,
        "a record after the lease expired",
    );
    assert!(ctx.steps(&id).await.is_empty());
    assert_eq!(ctx.reclaim_all().await, 1);
    let next = ctx.claim_one().await;
    ctx.complete(&next.lease, b"{}").await;
    expect_lease_lost(
        ctx.backend
            .record_step(&next.lease, step_name("after"), done(b"1"))
            .await,
        &id,
        "a record after complete",
    );
    let unknown = ctx.unknown_id();
    expect_not_found(ctx.backend.steps(&unknown).await, &unknown, "steps");
    assert!(ctx.steps(&id).await.is_empty());
}

/// Steps survive a reclaim (the next attempt replays them) and are trimmed
/// with their execution; at most `max_steps` per execution.
pub async fn steps_survive_reclaim_are_trimmed_and_bounded(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    // No backoff: the reclaimed execution is claimed again at once.
    let id = ctx
        .create_id(ctx.new_exec("bounded", b"").with_retry(no_backoff(3)))
        .await;
    let first = ctx.claim_one_with(DEFAULT_WORKER, 1_000).await;
    let max = ctx.limits().max_steps;
    for n in 0..max {
        ctx.record_step(
            &first.lease,
            &format!("s{n:05}"),
            done(n.to_string().as_bytes()),
        )
        .await;
    }
    expect_conflict(
        ctx.backend
            .record_step(&first.lease, step_name("one-more"), done(b"1"))
            .await,
        &id,
        "record_step",
        State::Running,
        "a step beyond the limit",
    );
    // A recorded step may still be written at the limit.
    ctx.record_step(&first.lease, "s00000", done(b"0")).await;
    ctx.advance(1_000);
    assert_eq!(ctx.reclaim_all().await, 1);
    let second = ctx.claim_one().await;
    assert_eq!(second.steps.len(), max);
    assert_eq!(
        second.steps.get(&step_name("s00007")).map(Vec::as_slice),
        Some(&b"7"[..])
    );
    ctx.complete(&second.lease, b"{}").await;
    ctx.advance(1_000);
    assert_eq!(ctx.trim_all(1_000).await, 1);
    expect_not_found(ctx.backend.steps(&id).await, &id, "steps after the trim");
}
