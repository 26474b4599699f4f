//! Operator control over time: pausing and resuming an execution (and its
//! tree) or a lane, and replaying a dead one.

use super::prelude::*;
use baton_core::{
    CancelRequest, CancelScope, DependencyMode, DependencyPolicy, ExecutionSnapshot, Pause,
    PauseOutcome, SuspendOutcome, SuspendRequest, UpstreamFailure,
};

async fn pause(ctx: &Ctx, id: &ExecutionId, scope: CancelScope) -> PauseOutcome {
    ok(ctx.backend.pause(id, scope).await, "pause")
}

async fn resume(ctx: &Ctx, id: &ExecutionId, scope: CancelScope) -> PauseOutcome {
    ok(ctx.backend.resume(id, scope).await, "resume")
}

fn paused_from(snap: &ExecutionSnapshot) -> Option<State> {
    assert_eq!(
        snap.state == State::Paused,
        snap.pause.is_some(),
        "{}: a pause exactly while paused",
        snap.id
    );
    snap.pause.as_ref().map(|p| p.from)
}

/// A paused waiting or delayed execution is neither claimed nor promoted,
/// remembers the state and `run_at` it left, and resume restores it (a
/// delayed one whose `run_at` passed meanwhile is `waiting`); pausing and
/// resuming again change nothing; finished executions refuse both.
pub async fn pause_holds_waiting_and_delayed_work_and_resume_restores_it(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let waiting = ctx.create_id(ctx.new_exec("waiting", b"")).await;
    let delayed = ctx
        .create_id(ctx.new_exec("delayed", b"").with_delay_ms(1_000))
        .await;
    let later = ctx
        .create_id(ctx.new_exec("later", b"").with_delay_ms(60_000))
        .await;
    let run_at = ctx.describe(&delayed).await.run_at;
    ctx.advance(5);
    let out = pause(&ctx, &waiting, CancelScope::Tree).await;
    assert_eq!((out.cascaded, out.cascade_pending), (0, false));
    let snap = out.snapshot;
    assert_eq!(snap.state, State::Paused);
    assert_eq!(
        snap.pause,
        Some(Pause {
            from: State::Waiting,
            via: None
        })
    );
    assert_eq!(snap.updated_at, ctx.now(), "a pause is a state change");
    assert_eq!(ctx.describe(&waiting).await, snap);
    let why = snap.wait_reason().expect("a paused execution says why");
    assert_eq!(why.reason, "paused");
    assert_eq!(
        ok(ctx.backend.explain(&waiting).await, "explain").reason,
        Some("paused")
    );
    ctx.assert_nothing_to_claim().await;
    // Pausing again changes nothing.
    assert_eq!(
        pause(&ctx, &waiting, CancelScope::Tree).await.snapshot,
        snap
    );
    let held = pause(&ctx, &delayed, CancelScope::Execution).await.snapshot;
    assert_eq!(
        (paused_from(&held), held.run_at),
        (Some(State::Delayed), run_at)
    );
    pause(&ctx, &later, CancelScope::Execution).await;
    assert_eq!(ctx.lane_counts(&ctx.lane()).await.paused, 3);
    let listed = ListFilter::namespace(ctx.ns.clone()).with_state(State::Paused);
    assert_eq!(ctx.list_ids(&listed).await.len(), 3);
    ctx.advance(2_000);
    assert_eq!(
        ctx.promote_all().await,
        0,
        "a paused execution is not promoted"
    );
    ctx.assert_nothing_to_claim().await;
    // Resume: waiting again, eligible from now; a due delayed one too; the
    // one not yet due returns to `delayed` with its `run_at`.
    let snap = resume(&ctx, &delayed, CancelScope::Tree).await.snapshot;
    assert_eq!((snap.state, snap.pause.clone()), (State::Waiting, None));
    assert_eq!(snap.updated_at, ctx.now());
    ctx.advance(1);
    let snap = resume(&ctx, &later, CancelScope::Tree).await.snapshot;
    assert_eq!(snap.state, State::Delayed);
    assert_eq!(snap.run_at, ctx.describe(&later).await.run_at);
    let snap = resume(&ctx, &waiting, CancelScope::Tree).await.snapshot;
    assert_eq!(snap.state, State::Waiting);
    // Resuming what is not paused changes nothing.
    assert_eq!(
        resume(&ctx, &waiting, CancelScope::Tree).await.snapshot,
        snap
    );
    let first = ctx.claim_one().await;
    assert_eq!(first.id, delayed, "resumed earlier, eligible earlier");
    assert_eq!(first.attempt, 1);
    let second = ctx.claim_one().await;
    assert_eq!(second.id, waiting);
    ctx.complete(&second.lease, b"{}").await;
    expect_conflict(
        ctx.backend.pause(&waiting, CancelScope::Execution).await,
        &waiting,
        "pause",
        State::Completed,
        "a pause of a completed execution",
    );
    expect_conflict(
        ctx.backend.resume(&waiting, CancelScope::Execution).await,
        &waiting,
        "resume",
        State::Completed,
        "a resume of a completed execution",
    );
    // With scope tree a finished execution stays as it is.
    let out = pause(&ctx, &waiting, CancelScope::Tree).await;
    assert_eq!((out.snapshot.state, out.cascaded), (State::Completed, 0));
    let unknown = ctx.unknown_id();
    expect_not_found(
        ctx.backend.pause(&unknown, CancelScope::Tree).await,
        &unknown,
        "pause",
    );
    expect_not_found(
        ctx.backend.resume(&unknown, CancelScope::Tree).await,
        &unknown,
        "resume",
    );
}

/// Pausing a running execution ends its attempt `paused` at once: the lease
/// is dead, its renew answers `paused`, its complete `LeaseLost`, and the
/// attempt does not count against the retry budget after the resume.
pub async fn pausing_a_running_execution_stops_its_worker_without_consuming_an_attempt(
    h: &dyn Harness,
) {
    let ctx = Ctx::new(h).await;
    let id = ctx
        .create_id(ctx.new_exec("job", b"").with_retry(no_backoff(1)))
        .await;
    let first = ctx.claim_one().await;
    ctx.advance(10);
    let snap = pause(&ctx, &id, CancelScope::Tree).await.snapshot;
    assert_eq!(
        (
            snap.state,
            paused_from(&snap),
            snap.worker_id.clone(),
            snap.lease_expires_at
        ),
        (State::Paused, Some(State::Waiting), None, None)
    );
    assert_eq!(snap.attempts, 1);
    let attempts = ctx.attempts(&id).await;
    assert_eq!(
        (attempts[0].outcome, attempts[0].ended_at),
        (Some(AttemptOutcome::Paused), Some(ctx.now()))
    );
    let renewed = ctx
        .renew(DEFAULT_WORKER, 30_000, vec![first.lease.clone()])
        .await;
    assert_eq!(renewed[0].status, RenewStatus::Paused);
    expect_lease_lost(
        ctx.backend.complete(&first.lease, b"{}".to_vec()).await,
        &id,
        "a complete after the pause",
    );
    expect_lease_lost(
        ctx.backend
            .fail(&first.lease, Failure::retryable("late"))
            .await,
        &id,
        "a fail after the pause",
    );
    assert_eq!(ctx.reclaim_all().await, 0, "no lease to reclaim");
    let snap = resume(&ctx, &id, CancelScope::Tree).await.snapshot;
    assert_eq!(snap.state, State::Waiting);
    // One attempt allowed, one used before the pause: it still gets one.
    let second = ctx.claim_one().await;
    assert_eq!(second.attempt, 2);
    let snap = ctx.fail(&second.lease, Failure::retryable("boom")).await;
    assert_eq!(snap.state, State::Failed, "its one counted attempt failed");
}

/// Deadlines and cancels reach a paused execution.
pub async fn paused_executions_still_expire_and_cancel(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let due = ctx
        .create_id(ctx.new_exec("due", b"").with_deadline(ctx.after(1_000)))
        .await;
    let doomed = ctx.create_id(ctx.new_exec("doomed", b"")).await;
    pause(&ctx, &due, CancelScope::Tree).await;
    pause(&ctx, &doomed, CancelScope::Tree).await;
    let snap = ctx.cancel(&doomed, Some("not needed")).await;
    assert_eq!((snap.state, snap.pause), (State::Cancelled, None));
    ctx.advance(1_000);
    assert_eq!(ctx.expire_all().await, 1);
    let snap = ctx.describe(&due).await;
    assert_eq!((snap.state, snap.pause), (State::Expired, None));
    assert_eq!(snap.finished_at, Some(ctx.now()));
}

/// A tree pause reaches every live descendant (a running one's worker is
/// stopped), remembering whose pause it was; what happens below a paused
/// parent goes on being counted and is judged at resume; scope `execution`
/// leaves the descendants alone; a tree resume restores them all.
pub async fn a_tree_pause_reaches_descendants_and_resume_judges_what_happened(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let root = ctx.create_id(ctx.new_exec("root", b"")).await;
    let parent = ctx.claim_one_pending(&root).await;
    let child = |name: &str| ctx.new_exec(name, b"").with_parent(root.clone());
    // b first: the claim below takes it before a.
    let b = ctx.create_id(child("b")).await;
    let a = ctx.create_id(child("a")).await;
    let grand = ctx
        .create_id(ctx.new_exec("grand", b"").with_parent(a.clone()))
        .await;
    let blocked = ok(ctx.backend.wait_children(&parent).await, "wait_children");
    assert_eq!(blocked.state, State::Blocked);
    let running_b = ctx.claim_one_pending(&b).await;
    // Scope `execution`: the root alone.
    let out = pause(&ctx, &root, CancelScope::Execution).await;
    assert_eq!((out.snapshot.state, out.cascaded), (State::Paused, 0));
    assert_eq!(paused_from(&out.snapshot), Some(State::Blocked));
    assert_eq!(ctx.state(&a).await, State::Waiting);
    // Scope `tree`: every live descendant, through the root.
    ctx.advance(3);
    let out = pause(&ctx, &root, CancelScope::Tree).await;
    assert_eq!(out.cascaded, 3, "a, b and grand");
    for (id, from) in [
        (&a, State::Waiting),
        (&b, State::Waiting),
        (&grand, State::Waiting),
    ] {
        let snap = ctx.describe(id).await;
        assert_eq!(
            snap.pause,
            Some(Pause {
                from,
                via: Some(root.clone())
            }),
            "{id}"
        );
        assert_eq!(snap.updated_at, ctx.now());
    }
    let renewed = ctx
        .renew(DEFAULT_WORKER, 30_000, vec![running_b.clone()])
        .await;
    assert_eq!(renewed[0].status, RenewStatus::Paused);
    ctx.assert_nothing_to_claim().await;
    // A child finishing meanwhile (cancelled) is counted by its paused
    // parent, which does not move until resumed.
    ctx.cancel_with(
        &b,
        CancelRequest::because("gone").with_scope(CancelScope::Execution),
    )
    .await;
    assert_eq!(ctx.state(&root).await, State::Paused);
    // A tree resume restores every paused descendant.
    let out = resume(&ctx, &a, CancelScope::Tree).await;
    assert_eq!(
        (out.snapshot.state, out.cascaded),
        (State::Waiting, 1),
        "a and grand"
    );
    assert_eq!(ctx.state(&grand).await, State::Waiting);
    assert_eq!(ctx.state(&root).await, State::Paused, "above a: untouched");
    for id in [&a, &grand] {
        let lease = ctx.claim_one_pending(id).await;
        ctx.complete(&lease, b"{}").await;
    }
    assert_eq!(ctx.state(&root).await, State::Paused);
    // Its children all finished while it was paused: resume releases it.
    let out = resume(&ctx, &root, CancelScope::Tree).await;
    assert_eq!(out.snapshot.state, State::Waiting);
    assert_eq!(out.snapshot.waiting_on, None);
    let again = ctx.claim_one().await;
    assert_eq!((again.id.clone(), again.attempt), (root.clone(), 2));
    // A tree paused, then its top cancelled alone, resumes from its top.
    let top = ctx.create_id(ctx.new_exec("top", b"")).await;
    let below = ctx
        .create_id(ctx.new_exec("below", b"").with_parent(top.clone()))
        .await;
    pause(&ctx, &top, CancelScope::Tree).await;
    ctx.cancel_with(
        &top,
        CancelRequest::because("top only").with_scope(CancelScope::Execution),
    )
    .await;
    assert_eq!(ctx.state(&below).await, State::Paused);
    let out = resume(&ctx, &top, CancelScope::Tree).await;
    assert_eq!((out.snapshot.state, out.cascaded), (State::Cancelled, 1));
    assert_eq!(ctx.state(&below).await, State::Waiting);
}

/// What a suspended or dependent execution waited for is judged at its
/// resume: signals delivered while paused are buffered and then satisfy
/// the wait; an upstream that completes counts; an upstream verdict that
/// finishes the dependent (skip) acts at once, pause or not.
pub async fn waits_kept_through_a_pause_are_judged_at_resume(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let waiter = ctx.create_id(ctx.new_exec("waiter", b"")).await;
    let lease = ctx.claim_one_pending(&waiter).await;
    let wait = SuspendRequest::signals([signal_name("approve")]);
    assert!(matches!(
        ctx.suspend(&lease, wait).await,
        SuspendOutcome::Suspended(_)
    ));
    let snap = pause(&ctx, &waiter, CancelScope::Tree).await.snapshot;
    assert_eq!(paused_from(&snap), Some(State::Suspended));
    assert_eq!(snap.suspension, None, "a suspension only while suspended");
    assert_eq!(
        ctx.signal(&waiter, "approve", b"yes", None).await,
        baton_core::SignalOutcome::Buffered
    );
    assert_eq!(ctx.state(&waiter).await, State::Paused);
    let snap = resume(&ctx, &waiter, CancelScope::Tree).await.snapshot;
    assert_eq!(
        snap.state,
        State::Waiting,
        "the buffered signal satisfied its wait"
    );
    let claim = ctx.claim_one().await;
    assert_eq!(claim.id, waiter);
    assert_eq!(
        claim.signals.len(),
        1,
        "the claim carries the signal it consumed"
    );
    ctx.complete(&claim.lease, b"{}").await;
    // A suspended one whose signal did not come stays suspended.
    let lonely = ctx.create_id(ctx.new_exec("lonely", b"")).await;
    let lease = ctx.claim_one_pending(&lonely).await;
    ctx.suspend(&lease, SuspendRequest::signals([signal_name("never")]))
        .await;
    pause(&ctx, &lonely, CancelScope::Tree).await;
    let snap = resume(&ctx, &lonely, CancelScope::Tree).await.snapshot;
    assert_eq!(snap.state, State::Suspended);
    assert!(snap.suspension.is_some());

    // Dependencies.
    let root = ctx.create_id(ctx.new_exec("root", b"")).await;
    let child = |name: &str| ctx.new_exec(name, b"").with_parent(root.clone());
    let up = ctx.create_id(child("up")).await;
    let bad_up = ctx.create_id(child("bad-up")).await;
    let skip = DependencyPolicy::new(DependencyMode::AllOf, UpstreamFailure::Skip);
    let down = ctx
        .create_id(
            child("down")
                .with_dependencies([up.clone()])
                .with_dependency_policy(skip),
        )
        .await;
    let doomed = ctx
        .create_id(
            child("doomed")
                .with_dependencies([bad_up.clone()])
                .with_dependency_policy(skip),
        )
        .await;
    pause(&ctx, &down, CancelScope::Tree).await;
    pause(&ctx, &doomed, CancelScope::Tree).await;
    let lease = ctx.claim_one_pending(&up).await;
    ctx.complete(&lease, b"{}").await;
    assert_eq!(ctx.state(&down).await, State::Paused, "met, but paused");
    ctx.cancel(&bad_up, None).await;
    let snap = ctx.describe(&doomed).await;
    assert_eq!(
        (snap.state, snap.pause),
        (State::Skipped, None),
        "a skip acts at once"
    );
    let snap = resume(&ctx, &down, CancelScope::Tree).await.snapshot;
    assert_eq!(
        snap.state,
        State::Waiting,
        "its dependency completed while paused"
    );
}

/// A paused lane is skipped by every claim (other lanes are not) until it
/// is resumed; `lanes` lists it paused; `explain` says so.
pub async fn a_paused_lane_is_skipped_by_claims_until_resumed(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let main = ctx.lane();
    let other = lane("other");
    let id = ctx.create_id(ctx.new_exec("held", b"")).await;
    let free = ctx.create_id(ctx.new_in(&other, "free", b"")).await;
    ctx.advance(7);
    assert!(ok(
        ctx.backend.pause_lane(&ctx.ns, &main).await,
        "pause_lane"
    ));
    assert!(
        !ok(ctx.backend.pause_lane(&ctx.ns, &main).await, "pause_lane"),
        "already paused"
    );
    let paused_at = ctx.now();
    let both = ctx.claim_request(10).with_lane(other.clone());
    let claims = ctx.claim(both).await;
    assert_eq!(
        claims.iter().map(|c| c.id.clone()).collect::<Vec<_>>(),
        vec![free.clone()],
        "only the lane that is not paused"
    );
    assert_eq!(
        ctx.state(&id).await,
        State::Waiting,
        "the execution is not paused"
    );
    let e = ok(ctx.backend.explain(&id).await, "explain");
    assert_eq!(e.reason, Some("lane_paused"), "{}", e.detail);
    let lanes = ok(ctx.backend.lanes(&ctx.ns).await, "lanes");
    let names: Vec<(&str, Option<Timestamp>)> = lanes
        .iter()
        .map(|l| (l.lane.as_str(), l.paused_at))
        .collect();
    assert_eq!(
        names,
        vec![(main.as_str(), Some(paused_at)), ("other", None)]
    );
    assert_eq!(lanes[0].counts.waiting, 1);
    assert_eq!(lanes[1].counts.running, 1);
    // Another namespace's lane of the same name is not paused.
    let their_ns = ctx.other_namespace();
    let theirs = NewExecution::new(their_ns.clone(), main.clone(), kind("x"), Vec::new());
    ctx.create_one(theirs).await;
    let request = ClaimRequest::new(their_ns, main.clone(), worker("w"), 1);
    assert_eq!(ctx.claim(request).await.len(), 1);
    // A lane with nothing in it may be paused too, and is listed.
    let empty = lane("empty");
    assert!(ok(
        ctx.backend.pause_lane(&ctx.ns, &empty).await,
        "pause_lane"
    ));
    assert_eq!(ok(ctx.backend.lanes(&ctx.ns).await, "lanes").len(), 3);
    assert!(ok(
        ctx.backend.resume_lane(&ctx.ns, &empty).await,
        "resume_lane"
    ));
    assert_eq!(ok(ctx.backend.lanes(&ctx.ns).await, "lanes").len(), 2);
    assert!(ok(
        ctx.backend.resume_lane(&ctx.ns, &main).await,
        "resume_lane"
    ));
    assert!(
        !ok(ctx.backend.resume_lane(&ctx.ns, &main).await, "resume_lane"),
        "not paused any more"
    );
    assert_eq!(ctx.claim_one().await.id, id);
}

/// Replay requeues a failed, cancelled, expired or skipped execution with
/// a fresh attempt budget, keeping its history; anything else is a
/// conflict; a replayed child re-opens its parent's wait.
pub async fn replay_requeues_dead_executions_with_a_fresh_budget(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let failed = ctx
        .create_id(ctx.new_exec("failed", b"").with_retry(no_backoff(1)))
        .await;
    let lease = ctx.claim_one_pending(&failed).await;
    ctx.fail(&lease, Failure::retryable("first")).await;
    ctx.advance(5);
    let snap = ok(ctx.backend.replay(&failed).await, "replay");
    assert_eq!(
        (snap.state, snap.attempts, snap.finished_at, snap.updated_at),
        (State::Waiting, 1, None, ctx.now())
    );
    assert_eq!(snap.last_error.as_deref(), Some("first"), "history kept");
    assert_eq!(ctx.describe(&failed).await, snap);
    let again = ctx.claim_one().await;
    assert_eq!((again.id.clone(), again.attempt), (failed.clone(), 2));
    let snap = ctx.fail(&again.lease, Failure::retryable("second")).await;
    assert_eq!(snap.state, State::Failed, "a fresh budget of one attempt");
    assert_eq!(ctx.attempts(&failed).await.len(), 2);

    let cancelled = ctx.create_id(ctx.new_exec("cancelled", b"")).await;
    ctx.cancel(&cancelled, Some("oops")).await;
    let snap = ok(ctx.backend.replay(&cancelled).await, "replay");
    assert_eq!((snap.state, snap.cancel_reason), (State::Waiting, None));

    let expired = ctx
        .create_id(ctx.new_exec("expired", b"").with_deadline(ctx.after(100)))
        .await;
    let kept = ctx
        .create_id(ctx.new_exec("kept", b"").with_deadline(ctx.after(60_000)))
        .await;
    ctx.cancel(&kept, None).await;
    ctx.advance(100);
    assert_eq!(ctx.expire_all().await, 1);
    let snap = ok(ctx.backend.replay(&expired).await, "replay");
    assert_eq!(
        (snap.state, snap.deadline),
        (State::Waiting, None),
        "a passed deadline goes"
    );
    let snap = ok(ctx.backend.replay(&kept).await, "replay");
    assert_eq!(
        snap.deadline,
        Some(ctx.after(59_900)),
        "one still ahead stays"
    );

    // A skipped dependent, in a flow whose parent waits for it again.
    let root = ctx.create_id(ctx.new_exec("root", b"")).await;
    let child = |name: &str| ctx.new_exec(name, b"").with_parent(root.clone());
    let up = ctx.create_id(child("up")).await;
    let skip = DependencyPolicy::new(DependencyMode::AllOf, UpstreamFailure::Skip);
    let down = ctx
        .create_id(
            child("down")
                .with_dependencies([up.clone()])
                .with_dependency_policy(skip),
        )
        .await;
    ctx.cancel(&up, None).await;
    assert_eq!(ctx.state(&down).await, State::Skipped);
    let parent = ctx.claim_one_pending(&root).await;
    let snap = ok(ctx.backend.wait_children(&parent).await, "wait_children");
    assert_eq!(snap.state, State::Running, "no open child: it runs on");
    let snap = ok(ctx.backend.replay(&down).await, "replay");
    assert_eq!(snap.state, State::Waiting);
    let snap = ok(ctx.backend.wait_children(&parent).await, "wait_children");
    assert_eq!(
        snap.state,
        State::Blocked,
        "the replayed child is open again"
    );
    // The replayed upstream is not told to its dependents again: `down`
    // runs on its own.
    ctx.advance(1);
    ok(ctx.backend.replay(&up).await, "replay");
    assert_eq!(ctx.state(&down).await, State::Waiting);
    let lease = ctx.claim_one_pending(&down).await;
    ctx.complete(&lease, b"{}").await;
    assert_eq!(ctx.state(&root).await, State::Blocked, "up is open too");
    let lease = ctx.claim_one_pending(&up).await;
    ctx.complete(&lease, b"{}").await;
    assert_eq!(ctx.state(&root).await, State::Waiting);

    for (id, state) in [(&down, State::Completed), (&root, State::Waiting)] {
        expect_conflict(
            ctx.backend.replay(id).await,
            id,
            "replay",
            state,
            "a replay of an execution that did not die",
        );
    }

    // A dependent still pending does not count a replayed upstream twice:
    // the upstream's first end was told, its second is not.
    let root2 = ctx.create_id(ctx.new_exec("root2", b"")).await;
    let child2 = |name: &str| ctx.new_exec(name, b"").with_parent(root2.clone());
    let x = ctx.create_id(child2("x")).await;
    let y = ctx.create_id(child2("y")).await;
    let any = DependencyPolicy::new(DependencyMode::AnyOf, UpstreamFailure::Skip);
    let join = ctx
        .create_id(
            child2("join")
                .with_dependencies([x.clone(), y.clone()])
                .with_dependency_policy(any),
        )
        .await;
    ctx.cancel(&x, None).await;
    assert_eq!(ctx.state(&join).await, State::Blocked);
    ok(ctx.backend.replay(&x).await, "replay");
    // A dependent created after the replay is told of its next end.
    let late = ctx
        .create_id(child2("late").with_dependencies([x.clone()]))
        .await;
    assert_eq!(ctx.state(&late).await, State::Blocked);
    let lease = ctx.claim_one_pending(&x).await;
    ctx.complete(&lease, b"{}").await;
    assert_eq!(
        ctx.state(&join).await,
        State::Blocked,
        "its dependents were decided by its first end"
    );
    assert_eq!(ctx.state(&late).await, State::Waiting);
    ctx.cancel(&y, None).await;
    assert_eq!(ctx.state(&join).await, State::Skipped);

    let unknown = ctx.unknown_id();
    expect_not_found(ctx.backend.replay(&unknown).await, &unknown, "replay");
}

/// Bulk cancel and replay by filter: a dry run counts and changes nothing;
/// a call changes at most its limit and its cursor goes on; executions it
/// cannot change are reported; `ids` narrows the filter.
pub async fn bulk_cancel_and_replay_by_filter_with_preview_and_cursor(h: &dyn Harness) {
    use baton_core::{BulkAction, BulkRequest};
    let ctx = Ctx::new(h).await;
    ok(ctx.backend.set_history(&ctx.ns, true).await, "set_history");
    let reports = lane("reports");
    // Many executions the filter does not match, listed before the ones it
    // does: a walk must go on over pages that hold none of them.
    let noise: Vec<NewExecution> = (0..2_100)
        .map(|i| ctx.new_in(&lane("noise"), "n", format!("{i}").as_bytes()))
        .collect();
    ctx.create_chunked(noise).await;
    let mut waiting = Vec::new();
    for i in 0..5 {
        waiting.push(
            ctx.create_id(ctx.new_in(&reports, "r", format!("{i}").as_bytes()))
                .await,
        );
    }
    let other = ctx.create_id(ctx.new_exec("other", b"")).await;
    let filter = ListFilter::namespace(ctx.ns.clone()).with_lane(reports.clone());
    let request = |action: BulkAction, limit: usize| BulkRequest {
        action,
        filter: filter.clone(),
        ids: Vec::new(),
        limit,
        dry_run: false,
        cursor: None,
        actor: Some("ana".into()),
    };
    let cancel = || BulkAction::Cancel(CancelRequest::because("bulk"));
    let preview = ok(
        ctx.backend
            .bulk(BulkRequest {
                dry_run: true,
                ..request(cancel(), 100)
            })
            .await,
        "bulk dry run",
    );
    assert_eq!((preview.matched, preview.changed), (5, 5));
    assert_eq!(preview.next_cursor, None);
    assert_eq!(
        ctx.list_ids(&filter.clone().with_state(State::Waiting))
            .await,
        waiting,
        "a dry run changes nothing"
    );
    // Three, then the rest from the cursor.
    let first = ok(ctx.backend.bulk(request(cancel(), 3)).await, "bulk cancel");
    assert_eq!((first.matched, first.changed), (3, 3));
    assert!(first.next_cursor.is_some());
    for id in &waiting[..3] {
        assert_eq!(
            ctx.describe(id).await.cancel_reason.as_deref(),
            Some("bulk")
        );
    }
    // Each execution the call changed carries its audit event.
    let audit = baton_core::raw::rules::audit_detail("cancel", Some("ana"), &filter, 3, 3, 0);
    for id in &waiting[..3] {
        let events = ok(ctx.backend.events(id, 0, 100).await, "events");
        let last = events.last().map(|e| (e.event, e.detail.clone()));
        assert_eq!(
            last,
            Some((baton_core::EventKind::Audit, Some(audit.clone())))
        );
    }
    let untouched = ok(ctx.backend.events(&waiting[3], 0, 100).await, "events");
    assert!(
        untouched
            .iter()
            .all(|e| e.event != baton_core::EventKind::Audit)
    );
    assert_eq!(ctx.state(&waiting[3]).await, State::Waiting);
    let rest = ok(
        ctx.backend
            .bulk(BulkRequest {
                cursor: first.next_cursor,
                ..request(cancel(), 3)
            })
            .await,
        "bulk cancel, continued",
    );
    assert_eq!((rest.matched, rest.changed, rest.next_cursor), (2, 2, None));
    assert_eq!(
        ctx.state(&other).await,
        State::Waiting,
        "outside the filter"
    );
    // Replay two of them by id; a cancel of cancelled ones changes nothing.
    let by_ids = ok(
        ctx.backend
            .bulk(BulkRequest {
                ids: vec![waiting[4].clone(), other.clone(), waiting[0].clone()],
                ..request(BulkAction::Replay, 100)
            })
            .await,
        "bulk replay by ids",
    );
    assert_eq!(
        (by_ids.matched, by_ids.changed),
        (2, 2),
        "other is not in the lane"
    );
    assert_eq!(
        by_ids.skipped,
        vec![(other.clone(), "it does not match the filter".to_owned())]
    );
    let unknown = ctx.unknown_id();
    let odd = ok(
        ctx.backend
            .bulk(BulkRequest {
                ids: vec![unknown.clone(), waiting[1].clone(), waiting[1].clone()],
                dry_run: true,
                ..request(BulkAction::Replay, 100)
            })
            .await,
        "bulk by ids with an unknown and a repeated one",
    );
    assert_eq!((odd.matched, odd.changed), (1, 1), "each id once");
    assert_eq!(odd.skipped, vec![(unknown, "no such execution".to_owned())]);
    expect_invalid(
        ctx.backend
            .bulk(BulkRequest {
                ids: waiting.clone(),
                ..request(BulkAction::Replay, 2)
            })
            .await,
        "more ids than the limit",
    );
    assert_eq!(ctx.state(&waiting[0]).await, State::Waiting);
    let again = ok(
        ctx.backend.bulk(request(BulkAction::Replay, 100)).await,
        "bulk replay",
    );
    assert_eq!((again.matched, again.changed), (5, 3));
    assert_eq!(again.skipped.len(), 2, "the two waiting ones are reported");
    assert!(
        again
            .skipped
            .iter()
            .all(|(_, why)| why.contains("conflict") || why.contains("not finished")),
        "{:?}",
        again.skipped
    );
    expect_invalid(ctx.backend.bulk(request(cancel(), 0)).await, "a limit of 0");
}
