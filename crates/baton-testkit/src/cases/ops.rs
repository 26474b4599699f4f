//! Operator control: priority and tag edits, revoking a lease, and the
//! worker registry.

use super::prelude::*;
use baton_core::{CapabilityName, Lane, MAX_TAGS, WorkerInfo};

/// A new priority reorders waiting executions at once and is kept by a
/// delayed one until it is promoted; finished executions refuse it.
pub async fn a_priority_edit_reorders_claims(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let a = ctx.create_id(ctx.new_exec("a", b"")).await;
    let b = ctx.create_id(ctx.new_exec("b", b"")).await;
    let c = ctx.create_id(ctx.new_exec("c", b"")).await;
    let later = ctx
        .create_id(ctx.new_exec("later", b"").with_delay_ms(1_000))
        .await;
    let before = ctx.describe(&c).await;
    ctx.advance(5);
    let edited = ok(ctx.backend.set_priority(&c, 10).await, "set_priority");
    assert_eq!(edited.priority, 10);
    assert_eq!(
        (edited.state, edited.updated_at),
        (State::Waiting, before.updated_at),
        "an edit is no state change"
    );
    assert_eq!(ctx.describe(&c).await, edited);
    // The same priority again changes nothing.
    assert_eq!(
        ok(ctx.backend.set_priority(&c, 10).await, "set_priority"),
        edited
    );
    ok(ctx.backend.set_priority(&later, 20).await, "set_priority");
    ok(ctx.backend.set_priority(&a, -1).await, "set_priority");
    ctx.advance(1_000);
    assert_eq!(ctx.promote_all().await, 1);
    let claimed = ctx.claim(ctx.claim_request(4)).await;
    let order: Vec<ExecutionId> = claimed.iter().map(|cl| cl.id.clone()).collect();
    assert_eq!(
        order,
        vec![later.clone(), c.clone(), b.clone(), a.clone()],
        "priority first (the promoted one kept its edit), then age"
    );
    assert_eq!(ctx.describe(&b).await.state, State::Running);
    // A running execution takes a priority too (for its retries).
    ok(ctx.backend.set_priority(&b, 3).await, "set_priority");
    let lease = &claimed[3].lease;
    ctx.complete(lease, b"{}").await;
    expect_conflict(
        ctx.backend.set_priority(&a, 1).await,
        &a,
        "set_priority",
        State::Completed,
        "a priority edit of a finished execution",
    );
    let unknown = ctx.unknown_id();
    expect_not_found(
        ctx.backend.set_priority(&unknown, 1).await,
        &unknown,
        "set_priority",
    );
}

/// Tags are set, overwritten and removed after create, in any state; list
/// filters see each change; the tag limit and the value rules hold.
pub async fn tags_are_edited_after_create_and_filters_see_them(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let id = ctx.create_id(ctx.new_exec("tagged", b"")).await;
    let other = ctx.create_id(ctx.new_exec("other", b"")).await;
    let key = tag("team");
    let filter = |v: &str| ListFilter::namespace(ctx.ns.clone()).with_tag(key.clone(), v);
    let snap = ok(
        ctx.backend
            .set_tag(&id, key.clone(), Some("payments".into()))
            .await,
        "set_tag",
    );
    assert_eq!(snap.tags.get(&key).map(String::as_str), Some("payments"));
    assert_eq!(ctx.list_ids(&filter("payments")).await, vec![id.clone()]);
    ok(
        ctx.backend
            .set_tag(&id, key.clone(), Some("billing".into()))
            .await,
        "set_tag",
    );
    assert!(ctx.list_ids(&filter("payments")).await.is_empty());
    assert_eq!(ctx.list_ids(&filter("billing")).await, vec![id.clone()]);
    // Removing it, and removing a tag it does not have.
    let snap = ok(ctx.backend.set_tag(&id, key.clone(), None).await, "set_tag");
    assert!(snap.tags.is_empty());
    assert!(ctx.list_ids(&filter("billing")).await.is_empty());
    assert_eq!(
        ok(ctx.backend.set_tag(&id, key.clone(), None).await, "set_tag"),
        snap
    );
    assert_eq!(
        expect_invalid(
            ctx.backend
                .set_tag(&id, key.clone(), Some("x".repeat(10_000)))
                .await,
            "a tag value over the limit",
        ),
        "tag value"
    );
    // At most MAX_TAGS; a held key still changes at the limit.
    for n in 0..MAX_TAGS {
        ok(
            ctx.backend
                .set_tag(&other, tag(&format!("k{n:02}")), Some("1".into()))
                .await,
            "set_tag",
        );
    }
    expect_conflict(
        ctx.backend
            .set_tag(&other, tag("one-more"), Some("1".into()))
            .await,
        &other,
        "set_tag",
        State::Waiting,
        "a tag beyond the limit",
    );
    ok(
        ctx.backend
            .set_tag(&other, tag("k00"), Some("2".into()))
            .await,
        "set_tag",
    );
    // A finished execution is tagged too (an operator marking it).
    let claim = ctx.claim_one_pending(&id).await;
    ctx.complete(&claim, b"{}").await;
    ok(
        ctx.backend
            .set_tag(&id, key.clone(), Some("checked".into()))
            .await,
        "set_tag",
    );
    assert_eq!(ctx.list_ids(&filter("checked")).await, vec![id.clone()]);
    let unknown = ctx.unknown_id();
    expect_not_found(
        ctx.backend.set_tag(&unknown, key, Some("1".into())).await,
        &unknown,
        "set_tag",
    );
}

/// A revoked lease ends its attempt as an expired one would: the execution
/// is retried (or fails on its last attempt), the old lease is dead.
pub async fn revoke_reclaims_and_retries_at_once(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let id = ctx
        .create_id(ctx.new_exec("revoked", b"").with_retry(no_backoff(2)))
        .await;
    expect_conflict(
        ctx.backend.revoke(&id).await,
        &id,
        "revoke",
        State::Waiting,
        "a revoke of a waiting execution",
    );
    let first = ctx.claim_one().await;
    ctx.advance(5);
    let snap = ok(ctx.backend.revoke(&id).await, "revoke");
    assert_eq!(snap.state, State::Waiting, "retried at once (no backoff)");
    assert_eq!((snap.worker_id, snap.lease_expires_at), (None, None));
    let attempts = ctx.attempts(&id).await;
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].outcome, Some(AttemptOutcome::LeaseExpired));
    assert_eq!(attempts[0].ended_at, Some(ctx.now()));
    let error = attempts[0].error.clone().unwrap_or_default();
    assert!(error.contains("revoked"), "{error}");
    assert_eq!(snap.last_error.as_deref(), Some(error.as_str()));
    let renewed = ctx
        .renew(DEFAULT_WORKER, 30_000, vec![first.lease.clone()])
        .await;
    assert_eq!(renewed[0].status, RenewStatus::Lost);
    expect_lease_lost(
        ctx.backend.complete(&first.lease, b"{}".to_vec()).await,
        &id,
        "a complete after the revoke",
    );
    // The last attempt: revoking it fails the execution for good.
    let second = ctx.claim_one().await;
    assert_eq!(second.attempt, 2);
    let snap = ok(ctx.backend.revoke(&id).await, "revoke");
    assert_eq!(snap.state, State::Failed);
    assert_eq!(snap.finished_at, Some(ctx.now()));
    expect_conflict(
        ctx.backend.revoke(&id).await,
        &id,
        "revoke",
        State::Failed,
        "a revoke of a failed execution",
    );
    let unknown = ctx.unknown_id();
    expect_not_found(ctx.backend.revoke(&unknown).await, &unknown, "revoke");
}

/// Claims and renews record their worker; the registry lists live workers
/// of a namespace by id and forgets them after the TTL.
pub async fn workers_are_registered_by_claims_and_renews(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    assert!(ok(ctx.backend.workers(&ctx.ns, 100).await, "workers").is_empty());
    for bad in [0, 1001] {
        expect_invalid(
            ctx.backend.workers(&ctx.ns, bad).await,
            "a page outside 1..=1000",
        );
    }
    ctx.create_id(ctx.new_exec("work", b"")).await;
    let gpu = CapabilityName::new("gpu").unwrap();
    let other_lane = Lane::new("other").unwrap();
    let request = ctx
        .claim_request(1)
        .with_lane(other_lane.clone())
        .with_capabilities([gpu.clone()]);
    let claims = ctx.claim(request).await;
    assert_eq!(claims.len(), 1);
    // A second worker that found nothing is a live worker too.
    let idle = ClaimRequest::new(ctx.ns.clone(), ctx.lane(), worker("w2-idle"), 1);
    assert!(ctx.claim(idle).await.is_empty());
    let listed = ok(ctx.backend.workers(&ctx.ns, 100).await, "workers");
    assert_eq!(
        listed,
        vec![
            WorkerInfo {
                versions: baton_core::VersionRange::any(),
                worker_id: worker(DEFAULT_WORKER),
                namespace: ctx.ns.clone(),
                lanes: [ctx.lane(), other_lane].into_iter().collect(),
                capabilities: [gpu].into_iter().collect(),
                last_seen: ctx.now(),
                leases: 0,
            },
            WorkerInfo {
                versions: baton_core::VersionRange::any(),
                worker_id: worker("w2-idle"),
                namespace: ctx.ns.clone(),
                lanes: [ctx.lane()].into_iter().collect(),
                capabilities: Default::default(),
                last_seen: ctx.now(),
                leases: 0,
            },
        ]
    );
    assert!(
        ok(
            ctx.backend.workers(&ctx.other_namespace(), 100).await,
            "workers"
        )
        .is_empty(),
        "listed in its namespace only"
    );
    assert_eq!(
        ok(ctx.backend.workers(&ctx.ns, 1).await, "workers").len(),
        1
    );
    // Renews keep the busy worker alive and count its leases; the idle one
    // is forgotten after the TTL.
    let ttl = ctx.limits().worker_ttl.as_millis() as u64;
    ctx.advance(ttl / 2);
    ctx.renew(DEFAULT_WORKER, 30_000, vec![claims[0].lease.clone()])
        .await;
    let seen_at = ctx.now();
    ctx.advance(ttl / 2 + 1);
    let listed = ok(ctx.backend.workers(&ctx.ns, 100).await, "workers");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].worker_id, worker(DEFAULT_WORKER));
    assert_eq!((listed[0].last_seen, listed[0].leases), (seen_at, 1));
    ctx.advance(ttl);
    assert!(ok(ctx.backend.workers(&ctx.ns, 100).await, "workers").is_empty());
}

/// `explain` names the one reason an execution is not running: its own
/// (delayed, leased, children), no live worker for its lane or its
/// capabilities, or how many of its lane are claimed before it.
pub async fn explain_names_why_an_execution_is_not_running(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let explain = |id: ExecutionId| {
        let backend = ctx.backend.clone();
        async move { ok(backend.explain(&id).await, "explain") }
    };
    let first = ctx.create_id(ctx.new_exec("first", b"")).await;
    let e = explain(first.clone()).await;
    assert_eq!(e.reason, Some("no_capable_worker"), "{}", e.detail);
    assert!(e.detail.contains("lane main"), "{}", e.detail);
    assert_eq!(e.snapshot, ctx.describe(&first).await);
    // A worker claims the lane (and takes `first`): the rest queue.
    let claimed = ctx.claim_one().await;
    assert_eq!(claimed.id, first);
    let e = explain(first.clone()).await;
    assert_eq!(e.reason, Some("leased"));
    assert!(e.detail.contains(DEFAULT_WORKER), "{}", e.detail);
    let low = ctx.create_id(ctx.new_exec("low", b"")).await;
    let e = explain(low.clone()).await;
    assert_eq!(e.reason, Some("queued"));
    assert!(e.detail.contains("next in lane main"), "{}", e.detail);
    ctx.advance(5);
    let high = ctx
        .create_id(ctx.new_exec("high", b"").with_priority(5))
        .await;
    let same = ctx.create_id(ctx.new_exec("same", b"")).await;
    let e = explain(low.clone()).await;
    assert!(
        e.detail.contains("1 execution of lane main is"),
        "{}",
        e.detail
    );
    let e = explain(same.clone()).await;
    assert!(
        e.detail.contains("2 executions of lane main are"),
        "{}",
        e.detail
    );
    assert!(explain(high.clone()).await.detail.contains("next in lane"));
    // Capabilities no live worker of the lane offers.
    let gpu = ctx
        .create_id(ctx.new_exec("gpu", b"").with_capability(cap("gpu")))
        .await;
    let e = explain(gpu).await;
    assert_eq!(e.reason, Some("no_capable_worker"));
    assert!(e.detail.contains("gpu"), "{}", e.detail);
    let later = ctx
        .create_id(ctx.new_exec("later", b"").with_delay_ms(60_000))
        .await;
    assert_eq!(explain(later).await.reason, Some("delayed"));
    ctx.complete(&claimed.lease, b"{}").await;
    let e = explain(first).await;
    assert_eq!(e.reason, None);
    assert!(
        e.detail.starts_with("it finished completed"),
        "{}",
        e.detail
    );
    let unknown = ctx.unknown_id();
    expect_not_found(ctx.backend.explain(&unknown).await, &unknown, "explain");
}

/// `explain` names each reason a blocked or suspended execution waits
/// for: its children, its dependencies, signals, a timer.
pub async fn explain_names_every_wait_reason(h: &dyn Harness) {
    use baton_core::{SuspendOutcome, SuspendRequest};
    let ctx = Ctx::new(h).await;
    let explain = |id: ExecutionId| {
        let backend = ctx.backend.clone();
        async move { ok(backend.explain(&id).await, "explain") }
    };
    let root = ctx.create_id(ctx.new_exec("root", b"")).await;
    let parent = ctx.claim_one_pending(&root).await;
    let child = |name: &str| ctx.new_exec(name, b"").with_parent(root.clone());
    let up = ctx.create_id(child("up")).await;
    let down = ctx
        .create_id(child("down").with_dependencies([up.clone()]))
        .await;
    let e = explain(down.clone()).await;
    assert_eq!(e.reason, Some("dependencies"), "{}", e.detail);
    assert!(e.detail.contains("1 unfinished upstream"), "{}", e.detail);
    ok(ctx.backend.wait_children(&parent).await, "wait_children");
    let e = explain(root.clone()).await;
    assert_eq!(e.reason, Some("children"), "{}", e.detail);
    assert!(e.detail.contains("2 unfinished children"), "{}", e.detail);
    let lease = ctx.claim_one_pending(&up).await;
    let wait = SuspendRequest::signals([signal_name("approve")]);
    assert!(matches!(
        ctx.suspend(&lease, wait).await,
        SuspendOutcome::Suspended(_)
    ));
    let e = explain(up.clone()).await;
    assert_eq!(e.reason, Some("signals"), "{}", e.detail);
    assert!(e.detail.contains("approve"), "{}", e.detail);
    let sleeper = ctx.create_id(ctx.new_exec("sleeper", b"")).await;
    let lease = ctx.claim_one_pending(&sleeper).await;
    ctx.suspend(&lease, SuspendRequest::sleep(ms(60_000))).await;
    let e = explain(sleeper).await;
    assert_eq!(e.reason, Some("timer"), "{}", e.detail);
}
