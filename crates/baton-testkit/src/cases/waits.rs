//! Waiting without a worker: release, suspend, signals and durable timers.

use super::prelude::*;
use baton_core::{
    OnTimeout, Signal, SignalOutcome, SuspendOutcome, SuspendRequest, WaitCondition, WaitEnded,
};

fn wait_on(names: &[&str]) -> SuspendRequest {
    SuspendRequest::signals(names.iter().map(|n| signal_name(n)))
}

fn suspended(outcome: SuspendOutcome, what: &str) -> baton_core::ExecutionSnapshot {
    match outcome {
        SuspendOutcome::Suspended(snap) => snap,
        other => panic!("{what}: expected the execution suspended, got {other:?}"),
    }
}

fn satisfied(outcome: SuspendOutcome, what: &str) -> (baton_core::ExecutionSnapshot, Vec<Signal>) {
    match outcome {
        SuspendOutcome::Satisfied { snapshot, signals } => (snapshot, signals),
        other => panic!("{what}: expected the suspend satisfied at once, got {other:?}"),
    }
}

/// Renewing `lease` answers `lost`: it died with the release.
async fn assert_renew_lost(ctx: &Ctx, lease: &LeaseToken) {
    let out = ctx.renew(DEFAULT_WORKER, 30_000, vec![lease.clone()]).await;
    assert_eq!(out[0].status, RenewStatus::Lost, "{lease}");
}

/// A signal as `signals` must list it.
fn held(seq: u32, name: &str, payload: &[u8], at: Timestamp, wait: Option<u32>) -> Signal {
    Signal {
        seq,
        name: signal_name(name),
        payload: payload.to_vec(),
        idempotency_key: None,
        received_at: at,
        wait,
    }
}

/// `release` hands the lease back: the attempt closes `released`, the
/// lease is dead at once, the execution is `waiting` and eligible now, and
/// no attempt is consumed — a release on the last attempt leaves it
/// `waiting`, never `failed`. A repeat answers the same.
pub async fn release_hands_work_back_without_consuming_an_attempt(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let id = ctx
        .create_id(ctx.new_exec("job", b"").with_retry(no_backoff(1)))
        .await;
    let first = ctx.claim_one().await;
    ctx.advance(25);
    let snap = ok(ctx.backend.release(&first.lease).await, "release");
    assert_eq!(snap.state, State::Waiting, "released on its last attempt");
    assert_eq!(
        (
            snap.attempts,
            snap.updated_at,
            snap.worker_id.clone(),
            snap.lease_expires_at
        ),
        (1, ctx.now(), None, None)
    );
    assert_eq!(snap.last_error, None);
    assert_eq!(ctx.describe(&id).await, snap);
    let attempts = ctx.attempts(&id).await;
    assert_eq!(
        (attempts[0].outcome, attempts[0].ended_at),
        (Some(AttemptOutcome::Released), Some(ctx.now()))
    );
    assert_renew_lost(&ctx, &first.lease).await;
    expect_lease_lost(
        ctx.backend.complete(&first.lease, b"{}".to_vec()).await,
        &id,
        "complete after the release",
    );
    assert_eq!(ok(ctx.backend.release(&first.lease).await, "replay"), snap);
    let second = ctx.claim_one().await;
    assert_eq!((second.id.clone(), second.attempt), (id.clone(), 2));
    expect_lease_lost(
        ctx.backend.release(&first.lease).await,
        &id,
        "a replay after the next claim",
    );
    let done = ctx.fail(&second.lease, Failure::retryable("boom")).await;
    assert_eq!(done.state, State::Failed, "one failure of one");
    expect_conflict(
        ctx.backend.release(&second.lease).await,
        &id,
        "release",
        State::Failed,
        "release after a failure",
    );
}

/// A suspended execution holds no lease, is not claimable and says what it
/// waits for; the signal that satisfies it makes it `waiting` in the same
/// call, and the claim that follows is a new attempt carrying the signal.
pub async fn a_suspended_execution_waits_without_a_lease(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let id = ctx
        .create_id(ctx.new_exec("approve", b"").with_retry(no_backoff(2)))
        .await;
    let first = ctx.claim_one().await;
    ctx.advance(10);
    let request = wait_on(&["approval"]).with_timeout(ms(60_000), OnTimeout::Fail);
    let snap = suspended(ctx.suspend(&first.lease, request.clone()).await, "suspend");
    assert_eq!(snap.state, State::Suspended);
    assert_eq!(
        (
            snap.attempts,
            snap.updated_at,
            snap.worker_id.clone(),
            snap.lease_expires_at
        ),
        (1, ctx.now(), None, None)
    );
    let wait = snap
        .suspension
        .clone()
        .expect("a suspended snapshot shows its wait");
    assert_eq!(wait.waitpoints, vec![signal_name("approval")]);
    assert_eq!(
        (wait.condition, wait.timeout_at, wait.on_timeout),
        (WaitCondition::All, Some(ctx.after(60_000)), OnTimeout::Fail)
    );
    assert_eq!(snap.wait_reason().map(|w| w.reason), Some("signals"));
    assert_eq!(ctx.describe(&id).await, snap);
    assert_eq!(ctx.lane_counts(&ctx.lane()).await.suspended, 1);
    assert_eq!(
        ctx.attempts(&id).await[0].outcome,
        Some(AttemptOutcome::Released)
    );
    // Fenced at once; a repeat answers the same.
    assert_renew_lost(&ctx, &first.lease).await;
    expect_lease_lost(
        ctx.backend.complete(&first.lease, b"{}".to_vec()).await,
        &id,
        "complete after the suspend",
    );
    assert_eq!(
        suspended(ctx.suspend(&first.lease, request).await, "replay"),
        snap
    );
    ctx.assert_nothing_to_claim().await;
    // A signal for another waitpoint is buffered; the awaited one resumes.
    ctx.advance(5);
    assert_eq!(
        ctx.signal(&id, "comment", b"\"hi\"", None).await,
        SignalOutcome::Buffered
    );
    assert_eq!(ctx.state(&id).await, State::Suspended);
    ctx.advance(5);
    assert_eq!(
        ctx.signal(&id, "approval", b"{\"by\":\"ana\"}", None).await,
        SignalOutcome::Resumed
    );
    let resumed = ctx.describe(&id).await;
    assert_eq!(
        (
            resumed.state,
            resumed.updated_at,
            resumed.suspension.clone()
        ),
        (State::Waiting, ctx.now(), None)
    );
    assert_eq!(resumed.wait_reason(), None);
    let second = ctx.claim_one().await;
    assert_eq!((second.id.clone(), second.attempt), (id.clone(), 2));
    assert_eq!(second.waits, vec![WaitEnded::Signalled]);
    let approval = held(2, "approval", b"{\"by\":\"ana\"}", ctx.now(), Some(1));
    assert_eq!(second.signals, vec![approval.clone()]);
    assert_eq!(
        ctx.signals(&id).await,
        vec![
            held(
                1,
                "comment",
                b"\"hi\"",
                ctx.after(0).saturating_sub(ms(5)),
                None
            ),
            approval
        ]
    );
    // The wait consumed no attempt: one failure of two allowed.
    let after = ctx.fail(&second.lease, Failure::retryable("boom")).await;
    assert_eq!(after.state, State::Waiting);
}

/// A signal delivered before the suspend is buffered and satisfies it at
/// once: the lease is kept and the signal answered. It is consumed: the
/// next wait on the same waitpoint needs a new signal.
pub async fn a_signal_before_the_suspend_satisfies_it_at_once(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let id = ctx.create_id(ctx.new_exec("early", b"")).await;
    let first = ctx.claim_one().await;
    assert!(first.waits.is_empty() && first.signals.is_empty());
    assert_eq!(
        ctx.signal(&id, "approval", b"1", None).await,
        SignalOutcome::Buffered
    );
    let at = ctx.now();
    ctx.advance(10);
    let (snap, signals) = satisfied(
        ctx.suspend(&first.lease, wait_on(&["approval"])).await,
        "suspend after the signal",
    );
    assert_eq!(signals, vec![held(1, "approval", b"1", at, Some(1))]);
    assert_eq!(snap.state, State::Running);
    assert_eq!(snap.suspension, None);
    assert_eq!(ctx.describe(&id).await, snap);
    assert_eq!(
        ctx.renew(DEFAULT_WORKER, 30_000, vec![first.lease.clone()])
            .await[0]
            .status,
        RenewStatus::Renewed,
        "the lease is kept"
    );
    // The same waitpoint again: the first signal is spent.
    let snap = suspended(
        ctx.suspend(&first.lease, wait_on(&["approval"])).await,
        "a second wait",
    );
    assert_eq!(snap.state, State::Suspended);
    ctx.advance(10);
    assert_eq!(
        ctx.signal(&id, "approval", b"2", None).await,
        SignalOutcome::Resumed
    );
    let second = ctx.claim_one().await;
    assert_eq!(second.attempt, 2);
    assert_eq!(
        second.waits,
        vec![WaitEnded::Signalled, WaitEnded::Signalled]
    );
    assert_eq!(
        second.signals,
        vec![
            held(1, "approval", b"1", at, Some(1)),
            held(2, "approval", b"2", ctx.now(), Some(2)),
        ]
    );
}

/// `all` needs a signal on every waitpoint, `any` on one; `any` consumes
/// only the waitpoints that have one, the rest stay buffered.
pub async fn all_and_any_conditions(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let both = ctx.create_id(ctx.new_exec("both", b"")).await;
    let lease = ctx.claim_one().await;
    suspended(ctx.suspend(&lease.lease, wait_on(&["a", "b"])).await, "all");
    assert_eq!(
        ctx.signal(&both, "a", b"1", None).await,
        SignalOutcome::Buffered
    );
    assert_eq!(ctx.state(&both).await, State::Suspended);
    assert_eq!(
        ctx.signal(&both, "a", b"2", None).await,
        SignalOutcome::Buffered
    );
    assert_eq!(
        ctx.signal(&both, "b", b"3", None).await,
        SignalOutcome::Resumed
    );
    let claim = ctx.claim_one().await;
    let consumed: Vec<(u32, Option<u32>)> = claim.signals.iter().map(|s| (s.seq, s.wait)).collect();
    assert_eq!(
        consumed,
        vec![(1, Some(1)), (3, Some(1))],
        "the earliest a and b"
    );
    let held: Vec<(u32, Option<u32>)> = ctx
        .signals(&both)
        .await
        .iter()
        .map(|s| (s.seq, s.wait))
        .collect();
    assert_eq!(held, vec![(1, Some(1)), (2, None), (3, Some(1))]);
    ctx.complete(&claim.lease, b"{}").await;

    let either = ctx.create_id(ctx.new_exec("either", b"")).await;
    let lease = ctx.claim_one().await;
    let request = wait_on(&["a", "b"]).with_condition(WaitCondition::Any);
    let snap = suspended(ctx.suspend(&lease.lease, request).await, "any");
    assert_eq!(
        snap.suspension.map(|s| s.condition),
        Some(WaitCondition::Any)
    );
    assert_eq!(
        ctx.signal(&either, "b", b"9", None).await,
        SignalOutcome::Resumed
    );
    assert_eq!(
        ctx.signal(&either, "a", b"8", None).await,
        SignalOutcome::Buffered
    );
    let claim = ctx.claim_one().await;
    let names: Vec<&str> = claim.signals.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, vec!["b"]);
    // The buffered `a` satisfies the next wait at once.
    let (_, signals) = satisfied(
        ctx.suspend(&claim.lease, wait_on(&["a"])).await,
        "the buffered a",
    );
    assert_eq!((signals[0].seq, signals[0].wait), (2, Some(2)));
}

/// Idempotency keys make delivery a duplicate, even after the execution
/// finished; a terminal execution ignores new signals and stores nothing;
/// bad deliveries are refused and change nothing; at most `max_signals`
/// buffered signals.
pub async fn signals_are_deduplicated_ignored_and_bounded(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let id = ctx.create_id(ctx.new_exec("keyed", b"")).await;
    assert_eq!(
        ctx.signal(&id, "paid", b"1", Some("evt-1")).await,
        SignalOutcome::Buffered,
        "a waiting execution buffers"
    );
    assert_eq!(
        ctx.signal(&id, "paid", b"other", Some("evt-1")).await,
        SignalOutcome::Duplicate
    );
    let listed = ctx.signals(&id).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].idempotency_key.clone(), listed[0].payload.clone()),
        (Some(ikey("evt-1")), b"1".to_vec())
    );
    let lease = ctx.claim_one().await;
    ctx.complete(&lease.lease, b"{}").await;
    assert_eq!(
        ctx.signal(&id, "paid", b"2", None).await,
        SignalOutcome::Ignored
    );
    assert_eq!(
        ctx.signal(&id, "paid", b"3", Some("evt-1")).await,
        SignalOutcome::Duplicate
    );
    assert_eq!(
        ctx.signals(&id).await.len(),
        1,
        "nothing stored once terminal"
    );
    let unknown = ctx.unknown_id();
    expect_not_found(
        ctx.backend
            .signal(
                &unknown,
                baton_core::NewSignal::new(signal_name("x"), b"1".to_vec()),
            )
            .await,
        &unknown,
        "signal to an unknown execution",
    );
    expect_not_found(
        ctx.backend.signals(&unknown).await,
        &unknown,
        "signals of an unknown execution",
    );
    expect_invalid(
        ctx.backend
            .signal(
                &ctx.foreign_id(),
                baton_core::NewSignal::new(signal_name("x"), b"1".to_vec()),
            )
            .await,
        "signal to an id of another deployment",
    );
    let big = ctx.create_waiting().await;
    let too_big = vec![b'1'; ctx.limits().max_payload_bytes + 1];
    assert_eq!(
        expect_invalid(
            ctx.backend
                .signal(&big, baton_core::NewSignal::new(signal_name("x"), too_big))
                .await,
            "an oversized payload",
        ),
        "payload"
    );
    // At most `max_signals` per execution.
    for n in 0..ctx.limits().max_signals {
        assert_eq!(
            ctx.signal(&big, "tick", n.to_string().as_bytes(), None)
                .await,
            SignalOutcome::Buffered
        );
    }
    expect_conflict(
        ctx.backend
            .signal(
                &big,
                baton_core::NewSignal::new(signal_name("tick"), b"1".to_vec()),
            )
            .await,
        &big,
        "signal",
        State::Waiting,
        "a signal beyond the limit",
    );
    assert_eq!(ctx.signals(&big).await.len(), ctx.limits().max_signals);
    // The limit counts buffered signals: one consumed by a wait makes room.
    let lease = ctx.claim_one().await;
    assert_eq!(lease.id, big);
    let (_, consumed) = satisfied(
        ctx.suspend(&lease.lease, wait_on(&["tick"])).await,
        "a wait on the buffered ticks",
    );
    assert_eq!((consumed.len(), consumed[0].seq), (1, 1));
    assert_eq!(
        ctx.signal(&big, "tick", b"1", None).await,
        SignalOutcome::Buffered
    );
    let listed = ctx.signals(&big).await;
    assert_eq!(listed.len(), ctx.limits().max_signals + 1);
    assert_eq!(listed.last().map(|s| s.seq), Some(101));
}

/// A timeout acts as the suspension says, once, at its instant: `resume`
/// (`waiting`, the wait ended `timed_out`, consuming the signals of its
/// waitpoints that arrived), `fail` (`failed`, no attempt consumed), or
/// `cancel` (`cancelled` with its descendants). A sleep is a suspension
/// with only a timeout.
pub async fn timeouts_resume_fail_or_cancel(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let resume = ctx.create_id(ctx.new_exec("resume", b"")).await;
    let l = ctx.claim_one().await;
    let request = wait_on(&["a", "b"]).with_timeout(ms(1_000), OnTimeout::Resume);
    suspended(ctx.suspend(&l.lease, request).await, "resume");
    assert_eq!(
        ctx.signal(&resume, "a", b"1", None).await,
        SignalOutcome::Buffered
    );

    let fail = ctx
        .create_id(ctx.new_exec("fail", b"").with_retry(no_backoff(3)))
        .await;
    let l = ctx.claim_one().await;
    let request = wait_on(&["approval"]).with_timeout(ms(1_000), OnTimeout::Fail);
    suspended(ctx.suspend(&l.lease, request).await, "fail");

    let cancel = ctx.create_id(ctx.new_exec("cancel", b"")).await;
    let l = ctx.claim_one().await;
    let child = ctx
        .create_id(
            ctx.new_in(&lane("kids"), "child", b"")
                .with_parent(cancel.clone()),
        )
        .await;
    let request = wait_on(&["approval"]).with_timeout(ms(1_000), OnTimeout::Cancel);
    suspended(ctx.suspend(&l.lease, request).await, "cancel");

    let sleeper = ctx.create_id(ctx.new_exec("sleep", b"")).await;
    let l = ctx.claim_one().await;
    assert_eq!(l.id, sleeper);
    let snap = suspended(
        ctx.suspend(&l.lease, SuspendRequest::sleep(ms(1_000)))
            .await,
        "sleep",
    );
    assert_eq!(snap.wait_reason().map(|w| w.reason), Some("timer"));
    assert_eq!(snap.suspension.map(|s| s.waitpoints), Some(Vec::new()));

    ctx.advance(999);
    assert_eq!(ctx.timeout_all().await, 0, "not before the instant");
    ctx.assert_nothing_to_claim().await;
    ctx.advance(1);
    assert_eq!(ctx.timeout_all().await, 4);
    assert_eq!(ctx.timeout_all().await, 0, "once");

    let snap = ctx.describe(&resume).await;
    assert_eq!((snap.state, snap.updated_at), (State::Waiting, ctx.now()));
    let snap = ctx.describe(&fail).await;
    assert_eq!(
        (snap.state, snap.finished_at, snap.attempts),
        (State::Failed, Some(ctx.now()), 1)
    );
    assert_eq!(
        snap.last_error.as_deref(),
        Some("its wait for signal approval timed out")
    );
    let snap = ctx.describe(&cancel).await;
    assert_eq!(snap.state, State::Cancelled);
    assert_eq!(
        snap.cancel_reason.as_deref(),
        Some("its wait for signal approval timed out")
    );
    assert_eq!(
        ctx.state(&child).await,
        State::Cancelled,
        "with its descendants"
    );

    let mut claims = ctx.claim(ctx.claim_request(10)).await;
    claims.sort_by_key(|c| c.id == sleeper);
    let ids: Vec<ExecutionId> = claims.iter().map(|c| c.id.clone()).collect();
    assert_eq!(ids, vec![resume.clone(), sleeper.clone()]);
    for c in &claims {
        assert_eq!((c.attempt, c.waits.clone()), (2, vec![WaitEnded::TimedOut]));
    }
    let consumed: Vec<(&str, Option<u32>)> = claims[0]
        .signals
        .iter()
        .map(|s| (s.name.as_str(), s.wait))
        .collect();
    assert_eq!(
        consumed,
        vec![("a", Some(1))],
        "a partial all consumes what came"
    );
    assert!(claims[1].signals.is_empty());
}

/// Cancel, deadlines and retention reach a suspended execution; a cancelled
/// one ignores its signals and its timeout.
pub async fn suspended_executions_are_cancelled_expired_and_trimmed(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let cancelled = ctx.create_id(ctx.new_exec("c", b"")).await;
    let l = ctx.claim_one().await;
    let request = wait_on(&["go"]).with_timeout(ms(500), OnTimeout::Resume);
    suspended(ctx.suspend(&l.lease, request).await, "suspend");
    let snap = ctx.cancel(&cancelled, Some("not needed")).await;
    assert_eq!((snap.state, snap.suspension), (State::Cancelled, None));
    assert_eq!(
        ctx.signal(&cancelled, "go", b"1", None).await,
        SignalOutcome::Ignored
    );

    let expiring = ctx
        .create_id(ctx.new_exec("e", b"").with_deadline(ctx.after(300)))
        .await;
    let l = ctx.claim_one().await;
    suspended(ctx.suspend(&l.lease, wait_on(&["go"])).await, "suspend");
    ctx.advance(300);
    assert_eq!(ctx.expire_all().await, 1);
    assert_eq!(ctx.state(&expiring).await, State::Expired);

    ctx.advance(200);
    assert_eq!(
        ctx.timeout_all().await,
        0,
        "the cancelled one's timer is void"
    );
    assert_eq!(ctx.state(&cancelled).await, State::Cancelled);
    ctx.advance(1_000);
    assert_eq!(ctx.trim_all(1_000).await, 2);
    expect_not_found(
        ctx.backend.signals(&cancelled).await,
        &cancelled,
        "signals after the trim",
    );
}

/// Suspend checks its request before anything, and its lease like every
/// call under a lease.
pub async fn suspend_is_validated_and_fenced(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let id = ctx.create_id(ctx.new_exec("v", b"")).await;
    let l = ctx.claim_one().await;
    let before = ctx.record(&id).await;
    let mut no_timeout = SuspendRequest::sleep(ms(1));
    no_timeout.timeout = None;
    assert_eq!(
        expect_invalid(
            ctx.backend.suspend(&l.lease, no_timeout).await,
            "a sleep without timeout"
        ),
        "timeout_ms"
    );
    assert_eq!(
        expect_invalid(
            ctx.backend.suspend(&l.lease, wait_on(&["a", "a"])).await,
            "a waitpoint twice"
        ),
        "waitpoints"
    );
    assert_eq!(
        expect_invalid(
            ctx.backend
                .suspend(
                    &l.lease,
                    wait_on(&["a"]).with_timeout(ms(0), OnTimeout::Fail)
                )
                .await,
            "a zero timeout"
        ),
        "timeout_ms"
    );
    ctx.assert_unchanged(&id, &before, "invalid suspends").await;
    ctx.complete(&l.lease, b"{}").await;
    expect_conflict(
        ctx.backend.suspend(&l.lease, wait_on(&["a"])).await,
        &id,
        "suspend",
        State::Completed,
        "suspend after complete",
    );
    let other = ctx.create_id(ctx.new_exec("w", b"")).await;
    let short = ctx.claim_one_with(DEFAULT_WORKER, 1_000).await;
    ctx.advance(1_000);
    expect_lease_lost(
        ctx.backend.suspend(&short.lease, wait_on(&["a"])).await,
        &other,
        "suspend with an expired lease",
    );
    expect_lease_lost(
        ctx.backend.release(&short.lease).await,
        &other,
        "release with an expired lease",
    );
    assert_eq!(ctx.state(&other).await, State::Running);
}
