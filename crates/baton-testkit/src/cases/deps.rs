//! Dependencies: an execution that runs after others of its flow finish,
//! released (or skipped, failed, run anyway) in the call that decides it.

use super::prelude::*;
use baton_core::raw::rules::dependency_failure;
use baton_core::{
    CancelScope, DependencyMode, DependencyPolicy, Lane, Upstream, UpstreamFailure, WaitingOn,
};

fn policy(mode: DependencyMode, on_failure: UpstreamFailure) -> DependencyPolicy {
    DependencyPolicy::new(mode, on_failure)
}

/// Claims everything claimable and answers the claim of `id`, completing
/// nothing; panics when `id` is not among them.
async fn claim_of(ctx: &Ctx, id: &ExecutionId) -> Claim {
    let claims = ctx.claim(ctx.claim_request(100)).await;
    claims
        .into_iter()
        .find(|c| &c.id == id)
        .unwrap_or_else(|| panic!("{id} was not claimable"))
}

/// The lease of `id` among `claims`; panics when it was not claimed.
fn lease_of(claims: &[Claim], id: &ExecutionId) -> LeaseToken {
    claims
        .iter()
        .find(|c| &c.id == id)
        .map(|c| c.lease.clone())
        .unwrap_or_else(|| panic!("{id} was not claimed"))
}

/// A root, claimed (its lease held): a parent that can wait for its
/// children.
async fn running_root(ctx: &Ctx) -> (ExecutionId, Claim) {
    let root = ctx
        .create_id(ctx.new_exec("root", b"").with_priority(9))
        .await;
    let claim = ctx.claim_one().await;
    assert_eq!(claim.id, root, "the root runs first");
    (root, claim)
}

/// The whole cycle of `all_of`: a dependent is created `blocked` (waiting
/// on its 2 upstreams), is not claimable, counts its upstreams down as they
/// complete and is `waiting` — eligible at once — in the call that
/// completes the last one; its claim carries both upstream results, while
/// an execution without dependencies carries none.
pub async fn a_dependent_runs_when_its_upstreams_complete(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let root = ctx.create_waiting().await;
    let child = |name: &str| ctx.new_exec(name, b"").with_parent(root.clone());
    let ups = ctx.create(vec![child("a"), child("b")]).await;
    let (a, b) = (ups[0].id.clone(), ups[1].id.clone());
    let new = child("join").with_dependencies([a.clone(), b.clone()]);
    let join = ctx.create_one(new.clone()).await;
    assert_eq!((join.state, join.created), (State::Blocked, true));
    let blocked = ctx.describe(&join.id).await;
    let mut expected = expected_snapshot(&join.id, &new, START, State::Blocked, None);
    expected.waiting_on = Some(WaitingOn::Dependencies(2));
    assert_eq!(blocked, expected);
    assert_eq!(
        blocked.wait_reason().map(|w| w.reason),
        Some("dependencies")
    );
    assert_eq!(ctx.lane_counts(&ctx.lane()).await.blocked, 1);
    // Only the root and the upstreams are claimable.
    let claims = ctx.claim(ctx.claim_request(10)).await;
    let claimed: BTreeSet<ExecutionId> = claims.iter().map(|c| c.id.clone()).collect();
    assert_eq!(
        claimed,
        BTreeSet::from([root.clone(), a.clone(), b.clone()])
    );
    assert!(
        claims.iter().all(|c| c.upstream.is_empty()),
        "no dependencies, no upstream"
    );
    let lease = |id: &ExecutionId| lease_of(&claims, id);
    ctx.advance(10);
    ctx.complete(&lease(&a), b"\"A\"").await;
    let snap = ctx.describe(&join.id).await;
    assert_eq!(
        (snap.state, snap.waiting_on),
        (State::Blocked, Some(WaitingOn::Dependencies(1)))
    );
    ctx.advance(10);
    ctx.complete(&lease(&b), b"{\"b\":2}").await;
    let released = ctx.describe(&join.id).await;
    assert_eq!(
        (released.state, released.waiting_on, released.updated_at),
        (State::Waiting, None, ctx.now()),
        "released in the call that completed its last upstream"
    );
    let claim = ctx.claim_one().await;
    assert_eq!((claim.id.clone(), claim.attempt), (join.id.clone(), 1));
    assert_eq!(
        claim.upstream,
        BTreeMap::from([
            (
                a,
                Upstream {
                    state: State::Completed,
                    result: Some(b"\"A\"".to_vec())
                }
            ),
            (
                b,
                Upstream {
                    state: State::Completed,
                    result: Some(b"{\"b\":2}".to_vec())
                }
            ),
        ])
    );
}

/// `all_of` / `skip`: an upstream that fails skips its dependent (terminal,
/// never ran, finished now), the skip reaches the dependent's own
/// dependents, one whose policy says `run` is released with the upstream's
/// outcome in its claim, and one whose policy says `fail` fails without an
/// attempt, saying why. Skipped and failed dependents count as finished
/// children: the parent waiting for them is released.
pub async fn an_unmet_dependency_skips_and_the_skip_cascades(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let (root, parent) = running_root(&ctx).await;
    let child = |name: &str| ctx.new_exec(name, b"").with_parent(root.clone());
    let a = ctx.create_id(child("a")).await;
    let b = ctx
        .create_id(child("b").with_dependencies([a.clone()]))
        .await;
    let c = ctx
        .create_id(child("c").with_dependencies([b.clone()]))
        .await;
    let runs = ctx
        .create_id(
            child("runs")
                .with_dependencies([b.clone()])
                .with_dependency_policy(policy(DependencyMode::AllOf, UpstreamFailure::Run)),
        )
        .await;
    let fails = policy(DependencyMode::AllOf, UpstreamFailure::Fail);
    let failing = ctx
        .create_id(
            child("fails")
                .with_dependencies([a.clone()])
                .with_dependency_policy(fails),
        )
        .await;
    let blocked = ok(ctx.backend.wait_children(&parent.lease).await, "wait");
    assert_eq!(blocked.waiting_on, Some(WaitingOn::Children(5)));
    let up = ctx.claim_one().await;
    assert_eq!(up.id, a);
    ctx.advance(10);
    ctx.fail(&up.lease, Failure::permanent("broken")).await;
    let now = ctx.now();
    for id in [&b, &c] {
        let snap = ctx.describe(id).await;
        assert_eq!(
            (snap.state, snap.finished_at, snap.updated_at, snap.attempts),
            (State::Skipped, Some(now), now, 0),
            "{id} skipped in the failing call"
        );
        assert_eq!((snap.waiting_on, snap.last_error), (None, None));
        assert!(ctx.attempts(id).await.is_empty());
    }
    let failed = ctx.describe(&failing).await;
    assert_eq!(
        (failed.state, failed.finished_at, failed.attempts),
        (State::Failed, Some(now), 0)
    );
    assert_eq!(failed.last_error, Some(dependency_failure(fails, 1, 1)));
    assert_eq!(ctx.state(&runs).await, State::Waiting, "runs anyway");
    let claim = claim_of(&ctx, &runs).await;
    assert_eq!(
        claim.upstream,
        BTreeMap::from([(
            b.clone(),
            Upstream {
                state: State::Skipped,
                result: None
            }
        )])
    );
    let counts = ctx.lane_counts(&ctx.lane()).await;
    assert_eq!((counts.skipped, counts.failed), (2, 2));
    ctx.complete(&claim.lease, b"{}").await;
    assert_eq!(
        ctx.state(&root).await,
        State::Waiting,
        "every child finished: the parent is released"
    );
}

/// `any_of` is met by the first upstream that completes; `quorum(2)` of 3
/// by the second, and it can no longer be met once 2 of 3 did not
/// complete.
pub async fn any_of_and_quorum_release_early_or_give_up(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let root = ctx.create_waiting().await;
    let child = |name: &str| ctx.new_exec(name, b"").with_parent(root.clone());
    let ups: Vec<ExecutionId> = ctx
        .create(vec![child("u1"), child("u2"), child("u3")])
        .await
        .into_iter()
        .map(|o| o.id)
        .collect();
    let any = ctx
        .create_id(
            child("any")
                .with_dependencies(ups.clone())
                .with_dependency_policy(policy(DependencyMode::AnyOf, UpstreamFailure::Skip)),
        )
        .await;
    let quorum = ctx
        .create_id(
            child("quorum")
                .with_dependencies(ups.clone())
                .with_dependency_policy(policy(DependencyMode::Quorum(2), UpstreamFailure::Skip)),
        )
        .await;
    let claims = ctx.claim(ctx.claim_request(10)).await;
    let lease = |id: &ExecutionId| lease_of(&claims, id);
    ctx.cancel_with(
        &ups[0],
        CancelRequest::because("not needed").with_scope(CancelScope::Execution),
    )
    .await;
    assert_eq!(
        ctx.describe(&any).await.waiting_on,
        Some(WaitingOn::Dependencies(2)),
        "a cancelled upstream is finished, not completed"
    );
    ctx.complete(&lease(&ups[1]), b"1").await;
    assert_eq!(
        ctx.state(&any).await,
        State::Waiting,
        "any_of: one is enough"
    );
    assert_eq!(
        ctx.describe(&quorum).await.waiting_on,
        Some(WaitingOn::Dependencies(1))
    );
    ctx.fail(&lease(&ups[2]), Failure::permanent("no")).await;
    assert_eq!(
        ctx.state(&quorum).await,
        State::Skipped,
        "quorum(2): only 1 of 3 completed"
    );
    let again = ctx.claim_one().await;
    assert_eq!(again.id, any);
    assert_eq!(again.upstream.len(), 3);
    assert_eq!(again.upstream[&ups[0]].state, State::Cancelled);
    assert_eq!(
        again.upstream[&ups[1]],
        Upstream {
            state: State::Completed,
            result: Some(b"1".to_vec())
        }
    );
}

/// Upstreams that already finished decide at create: completed ones make
/// the dependent `waiting` at once; a failed one makes it `skipped` (a
/// terminal child that the parent does not wait for) or `failed`, as its
/// policy says.
pub async fn finished_upstreams_decide_at_create(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let (root, parent) = running_root(&ctx).await;
    let child = |name: &str| ctx.new_exec(name, b"").with_parent(root.clone());
    let ups = ctx.create(vec![child("ok"), child("bad")]).await;
    let (good, bad) = (ups[0].id.clone(), ups[1].id.clone());
    let claims = ctx.claim(ctx.claim_request(10)).await;
    for c in &claims {
        if c.id == good {
            ctx.complete(&c.lease, b"7").await;
        } else {
            ctx.fail(&c.lease, Failure::permanent("no")).await;
        }
    }
    ctx.advance(10);
    let fails = policy(DependencyMode::AllOf, UpstreamFailure::Fail);
    let outs = ctx
        .create(vec![
            child("ready").with_dependencies([good.clone()]),
            child("skipped").with_dependencies([good.clone(), bad.clone()]),
            child("failed")
                .with_dependencies([bad.clone()])
                .with_dependency_policy(fails),
        ])
        .await;
    let states: Vec<State> = outs.iter().map(|o| o.state).collect();
    assert_eq!(states, [State::Waiting, State::Skipped, State::Failed]);
    let skipped = ctx.describe(&outs[1].id).await;
    assert_eq!(
        (skipped.finished_at, skipped.created_at, skipped.waiting_on),
        (Some(ctx.now()), ctx.now(), None)
    );
    let failed = ctx.describe(&outs[2].id).await;
    assert_eq!(failed.last_error, Some(dependency_failure(fails, 1, 1)));
    let ready = ctx.claim_one().await;
    assert_eq!(ready.id, outs[0].id);
    assert_eq!(ready.upstream[&good].result, Some(b"7".to_vec()));
    ctx.complete(&ready.lease, b"{}").await;
    let snap = ok(ctx.backend.wait_children(&parent.lease).await, "wait");
    assert_eq!(
        snap.state,
        State::Running,
        "every child is finished, the ones created finished too: no wait"
    );
}

/// Bad dependencies are refused with a typed error naming the field, and
/// the batch writes nothing: an unknown id (which is also what naming a
/// later item or oneself would take: dependencies name only executions
/// that exist, so they never form a cycle), an id from another deployment,
/// an execution of another namespace or of another flow, a repeat, a
/// dependent without a parent, a delayed dependent, a quorum out of range,
/// more than the limit.
pub async fn bad_dependencies_are_refused_and_write_nothing(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    // Two roots in one partition: only the flow check tells them apart.
    let mut all = Vec::new();
    let (_, roots) = ctx
        .create_sharing_partition(|c| c.new_exec("root", b""), &mut all)
        .await;
    let (root, other_root) = (roots[0].clone(), roots[1].clone());
    let up = ctx
        .create_id(ctx.new_exec("up", b"").with_parent(root.clone()))
        .await;
    let stranger = ctx
        .create_id(
            ctx.new_exec("stranger", b"")
                .with_parent(other_root.clone()),
        )
        .await;
    let elsewhere_ns = ctx.other_namespace();
    let foreign_ns = ctx
        .create_id(NewExecution::new(
            elsewhere_ns,
            ctx.lane(),
            kind("x"),
            Vec::new(),
        ))
        .await;
    let before = ctx.counts().await;
    let child = || ctx.new_exec("dep", b"").with_parent(root.clone());
    let too_many: Vec<ExecutionId> = (0..=ctx.limits().max_dependencies)
        .map(|_| ctx.unknown_id())
        .collect();
    let cases: Vec<(&str, NewExecution, &str)> = vec![
        (
            "unknown",
            child().with_dependencies([ctx.unknown_id()]),
            "depends_on",
        ),
        (
            "foreign id",
            child().with_dependencies([ctx.foreign_id()]),
            "depends_on",
        ),
        (
            "another namespace",
            child().with_dependencies([foreign_ns.clone()]),
            "depends_on",
        ),
        (
            "another flow",
            child().with_dependencies([stranger.clone()]),
            "depends_on",
        ),
        (
            "another flow's root",
            child().with_dependencies([other_root.clone()]),
            "depends_on",
        ),
        (
            "twice",
            child().with_dependencies([up.clone(), up.clone()]),
            "depends_on",
        ),
        (
            "no parent",
            ctx.new_exec("dep", b"").with_dependencies([up.clone()]),
            "depends_on",
        ),
        (
            "delayed",
            child().with_dependencies([up.clone()]).with_delay_ms(1_000),
            "delay_ms",
        ),
        (
            "starting later",
            child()
                .with_dependencies([up.clone()])
                .with_run_at(ctx.after(1_000)),
            "run_at",
        ),
        (
            "quorum 0",
            child()
                .with_dependencies([up.clone()])
                .with_dependency_policy(policy(DependencyMode::Quorum(0), UpstreamFailure::Skip)),
            "dependency_policy.k",
        ),
        (
            "quorum above n",
            child()
                .with_dependencies([up.clone()])
                .with_dependency_policy(policy(DependencyMode::Quorum(2), UpstreamFailure::Skip)),
            "dependency_policy.k",
        ),
        (
            "too many",
            child().with_dependencies(too_many),
            "depends_on",
        ),
    ];
    for (what, bad, field) in cases {
        // A good item first: the whole batch is refused.
        let batch = vec![child().with_dependencies([up.clone()]), bad];
        let err = expect_err(ctx.backend.create(batch).await, what);
        match &err {
            EngineError::InvalidInput { field: got, .. } => {
                assert_eq!(*got, field, "{what}: {err}")
            }
            other => panic!("{what}: expected InvalidInput, got {other:?}"),
        }
        assert!(
            err.to_string().contains("item 1 of the batch"),
            "{what}: {err}"
        );
    }
    assert_eq!(ctx.counts().await, before, "nothing was written");
}

/// Every way an upstream finishes reaches its dependents: a cancel of the
/// upstream alone, a tree cancel that reaches an upstream outside the
/// dependent's subtree, and an expiry — each skips the dependent in the
/// same call.
pub async fn cancels_and_expiries_of_upstreams_reach_their_dependents(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let root = ctx.create_waiting().await;
    let child = |name: &str| ctx.new_exec(name, b"").with_parent(root.clone());
    let alone = ctx.create_id(child("alone")).await;
    let branch = ctx.create_id(child("branch")).await;
    let leaf = ctx
        .create_id(ctx.new_exec("leaf", b"").with_parent(branch.clone()))
        .await;
    let timed = ctx
        .create_id(child("timed").with_deadline(ctx.after(5_000)))
        .await;
    let on_alone = ctx
        .create_id(child("on-alone").with_dependencies([alone.clone()]))
        .await;
    let on_leaf = ctx
        .create_id(child("on-leaf").with_dependencies([leaf.clone()]))
        .await;
    let on_timed = ctx
        .create_id(child("on-timed").with_dependencies([timed.clone()]))
        .await;
    ctx.cancel_with(
        &alone,
        CancelRequest::because("x").with_scope(CancelScope::Execution),
    )
    .await;
    assert_eq!(ctx.state(&on_alone).await, State::Skipped);
    let out = ctx.cancel_with(&branch, CancelRequest::because("y")).await;
    assert_eq!((out.cascaded, out.cascade_pending), (1, false));
    assert_eq!(
        ctx.state(&on_leaf).await,
        State::Skipped,
        "the tree cancel reached the leaf, and the leaf its dependent"
    );
    ctx.advance(5_000);
    assert_eq!(ctx.expire_all().await, 1);
    assert_eq!(ctx.state(&on_timed).await, State::Skipped);
    assert_eq!(ctx.lane_counts(&ctx.lane()).await.skipped, 3);
}

/// A skip that reaches more dependents than one call's budget skips the
/// budget's worth at once and leaves the rest to the cascade pass, which
/// works it off in bounded steps; a dependent created in between, which
/// counted the finished upstream itself, is not counted twice.
pub async fn a_wide_fan_of_dependents_is_finished_by_the_cascade_pass(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let budget = ctx.limits().cascade_budget;
    let root = ctx.create_waiting().await;
    let up = ctx
        .create_id(ctx.new_exec("up", b"").with_parent(root.clone()))
        .await;
    // A lane of its own for the late dependent and its other upstream, so
    // the default lane's counts are the fan's.
    let quiet = Lane::new("quiet").unwrap_or_else(|e| panic!("lane: {e}"));
    let n = budget + 120;
    let news: Vec<NewExecution> = (0..n)
        .map(|i| {
            ctx.new_exec("dep", format!("{i}").as_bytes())
                .with_parent(root.clone())
                .with_dependencies([up.clone()])
        })
        .collect();
    let deps = ctx.create_chunked(news).await;
    let other = ctx
        .create_id(ctx.new_in(&quiet, "other", b"").with_parent(root.clone()))
        .await;
    ctx.cancel_with(
        &up,
        CancelRequest::because("gone").with_scope(CancelScope::Execution),
    )
    .await;
    let counts = ctx.lane_counts(&ctx.lane()).await;
    assert_eq!(
        (counts.skipped, counts.blocked),
        (budget as u64, 120),
        "the budget's worth at once"
    );
    // Created while the rest is queued: it counts the cancelled upstream
    // itself, and the pass must not count it again.
    let any = DependencyPolicy::new(DependencyMode::AnyOf, UpstreamFailure::Skip);
    let late = ctx
        .create_id(
            ctx.new_in(&quiet, "late", b"")
                .with_parent(root.clone())
                .with_dependencies([up.clone(), other.clone()])
                .with_dependency_policy(any),
        )
        .await;
    let p = root.partition();
    let step = ok(ctx.backend.cascade_due(p, 100).await, "cascade_due step");
    assert_eq!((step.processed, step.next_due), (100, Some(ctx.now())));
    let last = ok(ctx.backend.cascade_due(p, 1_000).await, "cascade_due rest");
    assert_eq!((last.processed, last.next_due), (20, None));
    for id in &deps {
        assert_eq!(ctx.state(id).await, State::Skipped, "{id}");
    }
    let snap = ctx.describe(&late).await;
    assert_eq!(
        (snap.state, snap.waiting_on),
        (State::Blocked, Some(WaitingOn::Dependencies(1))),
        "the cancelled upstream counted once: `other` may still complete"
    );
    let mut request = ctx.claim_request(1);
    request.lanes = vec![quiet];
    let claim = ctx.claim(request).await.pop().expect("other is claimable");
    assert_eq!(claim.id, other);
    ctx.complete(&claim.lease, b"{}").await;
    assert_eq!(ctx.state(&late).await, State::Waiting);
}

/// An upstream may be any member of the flow: the root itself (here the
/// dependent's parent, which completes without waiting for its children)
/// and a grandchild under another branch; the dependent runs once both
/// completed, its claim naming both.
pub async fn upstreams_may_be_any_member_of_the_flow(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let root = ctx
        .create_id(ctx.new_exec("root", b"").with_priority(9))
        .await;
    let branch = ctx
        .create_id(ctx.new_exec("branch", b"").with_parent(root.clone()))
        .await;
    let leaf = ctx
        .create_id(ctx.new_exec("leaf", b"").with_parent(branch.clone()))
        .await;
    let dependent = ctx
        .create_id(
            ctx.new_exec("dependent", b"")
                .with_parent(root.clone())
                .with_dependencies([root.clone(), leaf.clone()]),
        )
        .await;
    let first = ctx.claim_one().await;
    assert_eq!(first.id, root);
    ctx.complete(&first.lease, b"\"r\"").await;
    assert_eq!(
        ctx.describe(&dependent).await.waiting_on,
        Some(WaitingOn::Dependencies(1))
    );
    let leaf_claim = claim_of(&ctx, &leaf).await;
    ctx.complete(&leaf_claim.lease, b"\"l\"").await;
    assert_eq!(ctx.state(&dependent).await, State::Waiting);
    let claim = claim_of(&ctx, &dependent).await;
    let named: Vec<(ExecutionId, Option<Vec<u8>>)> = claim
        .upstream
        .into_iter()
        .map(|(id, u)| (id, u.result))
        .collect();
    assert_eq!(
        named,
        vec![
            (root, Some(b"\"r\"".to_vec())),
            (leaf, Some(b"\"l\"".to_vec()))
        ]
    );
}

/// A dependent may get children before it runs (any client can submit
/// them): their finishing does not release it while its dependencies are
/// unmet; its last upstream does.
pub async fn children_do_not_release_a_dependent_before_its_upstreams(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let root = ctx.create_waiting().await;
    let up = ctx
        .create_id(ctx.new_exec("up", b"").with_parent(root.clone()))
        .await;
    let dependent = ctx
        .create_id(
            ctx.new_exec("dependent", b"")
                .with_parent(root.clone())
                .with_dependencies([up.clone()]),
        )
        .await;
    let early = ctx
        .create_id(ctx.new_exec("early", b"").with_parent(dependent.clone()))
        .await;
    let claims = ctx.claim(ctx.claim_request(10)).await;
    let lease = |id: &ExecutionId| lease_of(&claims, id);
    ctx.complete(&lease(&early), b"{}").await;
    let snap = ctx.describe(&dependent).await;
    assert_eq!(
        (snap.state, snap.waiting_on),
        (State::Blocked, Some(WaitingOn::Dependencies(1))),
        "its child finished, its upstream did not"
    );
    ctx.complete(&lease(&up), b"{}").await;
    assert_eq!(ctx.state(&dependent).await, State::Waiting);
}
