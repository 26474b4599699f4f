//! Waiting for children: a running parent hands back its lease until its
//! children have finished, without consuming an attempt.

use super::prelude::*;
use baton_core::{CancelRequest, WaitingOn};

/// The whole cycle: the parent blocks (its attempt closed as `released`,
/// its lease dead at once), is not claimable while blocked, counts its
/// unfinished children down as they finish (completed or failed), and is
/// `waiting` again — eligible at once — in the same call that finishes its
/// last child; its next claim is attempt 2 and sees its children.
pub async fn a_parent_waits_for_its_children_without_a_worker(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let parent = ctx.create_id(ctx.new_exec("parent", b"")).await;
    let first = ctx.claim_one().await;
    assert_eq!(first.id, parent);
    let kids = ctx
        .create(vec![
            ctx.new_exec("child", b"1").with_parent(parent.clone()),
            ctx.new_exec("child", b"2").with_parent(parent.clone()),
        ])
        .await;
    ctx.advance(10);
    let blocked = ok(
        ctx.backend.wait_children(&first.lease).await,
        "wait_children",
    );
    assert_eq!(blocked.state, State::Blocked);
    assert_eq!(blocked.waiting_on, Some(WaitingOn::Children(2)));
    assert_eq!(
        (blocked.worker_id.clone(), blocked.lease_expires_at),
        (None, None)
    );
    assert_eq!((blocked.attempts, blocked.updated_at), (1, ctx.now()));
    assert_eq!(ctx.describe(&parent).await, blocked);
    let attempts = ctx.attempts(&parent).await;
    assert_eq!(
        (attempts[0].outcome, attempts[0].ended_at),
        (Some(AttemptOutcome::Released), Some(ctx.now()))
    );
    assert_eq!(ctx.lane_counts(&ctx.lane()).await.blocked, 1);
    // The old lease is dead; a repeat of the wait answers the same.
    assert_eq!(
        ctx.renew(DEFAULT_WORKER, 30_000, vec![first.lease.clone()])
            .await[0]
            .status,
        RenewStatus::Lost
    );
    expect_lease_lost(
        ctx.backend.complete(&first.lease, b"{}".to_vec()).await,
        &parent,
        "complete after the release",
    );
    assert_eq!(
        ok(ctx.backend.wait_children(&first.lease).await, "replay"),
        blocked
    );
    // Only the children are claimable.
    let claims = ctx.claim(ctx.claim_request(10)).await;
    let claimed: BTreeSet<ExecutionId> = claims.iter().map(|c| c.id.clone()).collect();
    assert_eq!(
        claimed,
        kids.iter().map(|k| k.id.clone()).collect::<BTreeSet<_>>()
    );
    ctx.advance(10);
    ctx.complete(&claims[0].lease, b"\"one\"").await;
    let snap = ctx.describe(&parent).await;
    assert_eq!(
        (snap.state, snap.waiting_on),
        (State::Blocked, Some(WaitingOn::Children(1)))
    );
    ctx.advance(10);
    ctx.fail(&claims[1].lease, Failure::permanent("no")).await;
    let released = ctx.describe(&parent).await;
    assert_eq!(
        (released.state, released.waiting_on, released.updated_at),
        (State::Waiting, None, ctx.now()),
        "released by its last child's failure, in the same call"
    );
    let again = ctx.claim_one().await;
    assert_eq!((again.id.clone(), again.attempt), (parent.clone(), 2));
    let children = ok(
        ctx.backend.children(&parent, Page::first(10)).await,
        "children",
    );
    let states: BTreeSet<State> = children.items.iter().map(|s| s.state).collect();
    assert_eq!(
        states,
        [State::Completed, State::Failed].into_iter().collect()
    );
    let done = ctx.complete(&again.lease, b"\"joined\"").await;
    assert_eq!(done.state, State::Completed);
}

/// A parent whose children have all finished (or that has none) keeps its
/// lease and keeps running: no lost wake-up between looking and waiting.
pub async fn waiting_for_finished_children_keeps_the_lease(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let parent = ctx.create_id(ctx.new_exec("parent", b"")).await;
    let lease = ctx.claim_one().await;
    let running = ctx.describe(&parent).await;
    assert_eq!(
        ok(ctx.backend.wait_children(&lease.lease).await, "no children"),
        running
    );
    let child = ctx
        .create_id(ctx.new_exec("child", b"").with_parent(parent.clone()))
        .await;
    let c = ctx.claim_one().await;
    assert_eq!(c.id, child);
    ctx.complete(&c.lease, b"{}").await;
    let snap = ok(
        ctx.backend.wait_children(&lease.lease).await,
        "finished children",
    );
    assert_eq!((snap.state, snap.attempts), (State::Running, 1));
    assert_eq!(
        ctx.renew(DEFAULT_WORKER, 30_000, vec![lease.lease.clone()])
            .await[0]
            .status,
        RenewStatus::Renewed,
        "the lease is still valid"
    );
    ctx.complete(&lease.lease, b"{}").await;
    assert_eq!(
        expect_err(
            ctx.backend.wait_children(&lease.lease).await,
            "after complete"
        ),
        expect_err(
            ctx.backend.wait_children(&lease.lease).await,
            "after complete, again"
        )
    );
    assert!(matches!(
        ctx.backend.wait_children(&lease.lease).await,
        Err(EngineError::Conflict { .. })
    ));
}

/// Attempts count failures, not waits: a parent allowed two attempts that
/// waits once still has both failures to spend.
pub async fn waits_consume_no_attempts(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let parent = ctx
        .create_id(ctx.new_exec("parent", b"").with_retry(no_backoff(2)))
        .await;
    let lease = ctx.claim_one().await;
    let child = ctx
        .create_id(ctx.new_exec("child", b"").with_parent(parent.clone()))
        .await;
    ok(ctx.backend.wait_children(&lease.lease).await, "wait");
    ctx.cancel_with(&child, CancelRequest::because("not needed"))
        .await;
    assert_eq!(
        ctx.state(&parent).await,
        State::Waiting,
        "a cancelled child finishes too"
    );
    let second = ctx.claim_one().await;
    assert_eq!(second.attempt, 2);
    let snap = ctx
        .fail(&second.lease, Failure::retryable("first failure"))
        .await;
    assert_eq!(snap.state, State::Waiting, "one failure of two");
    let third = ctx.claim_one().await;
    assert_eq!(third.attempt, 3);
    let snap = ctx
        .fail(&third.lease, Failure::retryable("second failure"))
        .await;
    assert_eq!(snap.state, State::Failed, "two failures of two");
    let outcomes: Vec<_> = ctx
        .attempts(&parent)
        .await
        .into_iter()
        .map(|a| a.outcome)
        .collect();
    assert_eq!(
        outcomes,
        vec![
            Some(AttemptOutcome::Released),
            Some(AttemptOutcome::Failed),
            Some(AttemptOutcome::Failed)
        ]
    );
}

/// Cancel and deadlines reach a blocked parent; an expired lease is not
/// a wait (it stays lost); a child that expires or is reclaimed without
/// attempts left finishes for its parent too.
pub async fn blocked_parents_are_cancelled_expired_and_released_like_any(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    // Cancel: the blocked parent and its children.
    let p1 = ctx.create_id(ctx.new_exec("p1", b"")).await;
    let l1 = ctx.claim_one().await;
    let c1 = ctx
        .create_id(ctx.new_exec("c", b"").with_parent(p1.clone()))
        .await;
    ok(ctx.backend.wait_children(&l1.lease).await, "wait");
    let out = ctx.cancel_with(&p1, CancelRequest::because("stop")).await;
    assert_eq!(
        (out.snapshot.state, out.snapshot.waiting_on),
        (State::Cancelled, None)
    );
    assert_eq!((out.cascaded, ctx.state(&c1).await), (1, State::Cancelled));
    // Deadline: a blocked parent expires.
    let p2 = ctx
        .create_id(ctx.new_exec("p2", b"").with_deadline(ctx.after(1_000)))
        .await;
    let l2 = ctx.claim_one().await;
    assert_eq!(l2.id, p2);
    let c2 = ctx
        .create_id(
            ctx.new_exec("c", b"")
                .with_parent(p2.clone())
                .with_delay_ms(60_000),
        )
        .await;
    ok(ctx.backend.wait_children(&l2.lease).await, "wait");
    ctx.advance(1_000);
    assert_eq!(ctx.expire_all().await, 1);
    assert_eq!(ctx.state(&p2).await, State::Expired);
    assert_eq!(ctx.state(&c2).await, State::Cancelled);
    // A child reclaimed without attempts left releases its parent.
    let p3 = ctx.create_id(ctx.new_exec("p3", b"")).await;
    let l3 = ctx.claim_one().await;
    assert_eq!(l3.id, p3);
    let c3 = ctx
        .create_id(
            ctx.new_exec("c", b"")
                .with_parent(p3.clone())
                .with_retry(no_backoff(1)),
        )
        .await;
    ok(ctx.backend.wait_children(&l3.lease).await, "wait");
    let lc = ctx.claim_one_with(DEFAULT_WORKER, 1_000).await;
    assert_eq!(lc.id, c3);
    ctx.advance(1_000);
    assert_eq!(ctx.reclaim_all().await, 1);
    assert_eq!(ctx.state(&c3).await, State::Failed);
    assert_eq!(ctx.state(&p3).await, State::Waiting);
    // A wait under an expired lease is lost, not a release.
    let l4 = ctx.claim_one_with(DEFAULT_WORKER, 1_000).await;
    assert_eq!(l4.id, p3);
    ctx.create_id(ctx.new_exec("c", b"").with_parent(p3.clone()))
        .await;
    ctx.advance(1_000);
    expect_lease_lost(
        ctx.backend.wait_children(&l4.lease).await,
        &p3,
        "wait under an expired lease",
    );
    assert_eq!(ctx.state(&p3).await, State::Running);
}

/// A parent whose last child is cancelled (directly, by the cascade pass,
/// or by an expiry) is claimable at once from its own lane, even when its
/// children run in another lane.
pub async fn a_parent_released_by_a_cancel_or_an_expiry_is_claimable_at_once(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let work = lane("work");
    let child_of = |parent: &ExecutionId| {
        ctx.new_in(&work, "child", b"")
            .with_parent(parent.clone())
            .with_deadline(ctx.after(60_000))
    };
    for how in ["cancel", "cancel with a subtree", "expiry"] {
        let parent = ctx.create_id(ctx.new_exec("parent", b"")).await;
        let lease = ctx.claim_one().await;
        assert_eq!(lease.id, parent, "{how}");
        let child = ctx.create_id(child_of(&parent)).await;
        ok(ctx.backend.wait_children(&lease.lease).await, "wait");
        match how {
            "cancel" => {
                ctx.cancel_with(&child, CancelRequest::because("no")).await;
            }
            "cancel with a subtree" => {
                // The child's own subtree is cancelled by its cascade.
                let middle = ctx
                    .create_id(
                        ctx.new_in(&work, "grandchild", b"")
                            .with_parent(child.clone()),
                    )
                    .await;
                ctx.cancel_with(&child, CancelRequest::because("no")).await;
                assert_eq!(ctx.state(&middle).await, State::Cancelled);
            }
            _ => {
                ctx.advance(60_000);
                assert_eq!(ctx.expire_all().await, 1, "the child expires");
            }
        }
        let again = ctx.claim(ctx.claim_request(10)).await;
        assert_eq!(
            again.iter().map(|c| c.id.clone()).collect::<Vec<_>>(),
            vec![parent.clone()],
            "{how}: released and claimable from its lane at once"
        );
        ctx.complete(&again[0].lease, b"{}").await;
    }
}
