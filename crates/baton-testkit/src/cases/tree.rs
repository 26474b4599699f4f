//! Flows: child keys, the reads of a flow (children, tree) and cancels
//! that reach a subtree.

use super::prelude::*;
use baton_core::{CancelScope, ChildKey, Tree};

fn ckey(name: &str) -> ChildKey {
    ChildKey::new(name).unwrap_or_else(|e| panic!("child key {name:?}: {e}"))
}

/// A child key deduplicates among one parent's children: a repeat (in a
/// later call or the same batch) answers the first child with
/// `created: false`; the same key under another parent is another child;
/// a child key without a parent is invalid input and writes nothing.
pub async fn a_child_key_dedups_among_one_parents_children(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let (p, q) = (ctx.create_waiting().await, ctx.create_waiting().await);
    let child = |parent: &ExecutionId, key: &str, payload: &[u8]| {
        ctx.new_exec("child", payload)
            .with_parent(parent.clone())
            .with_child_key(ckey(key))
    };
    let first = ctx.create_one(child(&p, "a", b"1")).await;
    assert!(first.created);
    let new = child(&p, "a", b"1");
    assert_eq!(
        ctx.describe(&first.id).await,
        expected_snapshot(&first.id, &new, START, State::Waiting, None),
        "the snapshot names the child key"
    );
    let claim = ctx.claim_one().await;
    assert!(claim.id == first.id || claim.id == p || claim.id == q);
    let state = ctx.state(&first.id).await;
    let again = ctx.create_one(child(&p, "a", b"2")).await;
    assert_eq!(
        (again.id.clone(), again.state, again.created),
        (first.id.clone(), state, false),
        "a repeat answers the first child, as it is now"
    );
    let other_parent = ctx.create_one(child(&q, "a", b"3")).await;
    assert!(other_parent.created, "the same key under another parent");
    let outs = ctx
        .create(vec![
            child(&p, "b", b"4"),
            child(&p, "b", b"5"),
            child(&p, "a", b"6"),
        ])
        .await;
    assert!(outs[0].created);
    assert_eq!(
        (outs[1].id.clone(), outs[1].created),
        (outs[0].id.clone(), false),
        "a repeat within one batch answers the batch's first"
    );
    assert_eq!((outs[2].id.clone(), outs[2].created), (first.id, false));
    let children = ctx
        .list_ids(&ListFilter::namespace(ctx.ns.clone()).with_parent(p.clone()))
        .await;
    assert_eq!(children.len(), 2, "two children of p: keys a and b");
    let orphan = ctx.new_exec("job", b"").with_child_key(ckey("lonely"));
    assert_eq!(
        expect_invalid(ctx.backend.create(vec![orphan]).await, "child key alone"),
        "child_key"
    );
    assert_eq!(ctx.lane_counts(&ctx.lane()).await.total(), 5);
}

/// `children` pages through exactly one parent's children (not
/// grandchildren) in creation order; a parent without children answers an
/// empty page; an unknown parent is NotFound, a foreign one invalid.
pub async fn children_are_paged_in_creation_order(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let parent = ctx.create_waiting().await;
    let mut children = Vec::new();
    for i in 0..7 {
        let new = ctx
            .new_exec("child", format!("{i}").as_bytes())
            .with_parent(parent.clone());
        children.push(ctx.create_id(new).await);
    }
    let grandchild = ctx
        .create_id(
            ctx.new_exec("grandchild", b"")
                .with_parent(children[2].clone()),
        )
        .await;
    let mut seen = Vec::new();
    let mut page = Page::first(3);
    loop {
        let got = ok(ctx.backend.children(&parent, page).await, "children");
        assert!(got.items.len() <= 3);
        for s in &got.items {
            assert_eq!(s.parent.as_ref(), Some(&parent));
            assert_eq!(s.root, parent, "a direct child's root is its parent");
        }
        seen.extend(got.items.into_iter().map(|s| s.id));
        match got.next_cursor {
            Some(c) => page.cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen, children, "every child once, in creation order");
    let below = ok(
        ctx.backend.children(&children[2], Page::first(10)).await,
        "children of a child",
    );
    assert_eq!(
        below.items.iter().map(|s| s.id.clone()).collect::<Vec<_>>(),
        vec![grandchild.clone()]
    );
    assert_eq!(
        below.items[0].root, parent,
        "a grandchild's root is the root"
    );
    let leaf = ok(
        ctx.backend.children(&grandchild, Page::first(10)).await,
        "leaf",
    );
    assert!(leaf.items.is_empty() && leaf.next_cursor.is_none());
    let unknown = ctx.unknown_id();
    expect_not_found(
        ctx.backend.children(&unknown, Page::first(10)).await,
        &unknown,
        "children of an unknown parent",
    );
    assert_eq!(
        expect_invalid(
            ctx.backend
                .children(&ctx.foreign_id(), Page::first(10))
                .await,
            "children of a foreign id"
        ),
        "id"
    );
    assert_eq!(
        expect_invalid(
            ctx.backend.children(&parent, Page::first(0)).await,
            "limit 0"
        ),
        "limit"
    );
}

/// `tree` answers a flow from its root in creation order (every parent
/// before its children), whichever member it is asked with; a limit below
/// the flow's size answers that many and says `truncated`.
pub async fn the_tree_of_a_flow_lists_its_members_from_the_root(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let root = ctx.create_id(ctx.new_exec("root", b"")).await;
    let c1 = ctx
        .create_id(ctx.new_exec("c1", b"").with_parent(root.clone()))
        .await;
    let c2 = ctx
        .create_id(ctx.new_exec("c2", b"").with_parent(root.clone()))
        .await;
    let g = ctx
        .create_id(ctx.new_exec("g", b"").with_parent(c1.clone()))
        .await;
    ctx.cancel_with(&c2, CancelRequest::default()).await;
    let lone = ctx.create_waiting().await;
    let want = [
        (root.clone(), None, State::Waiting, "root"),
        (c1.clone(), Some(root.clone()), State::Waiting, "c1"),
        (c2.clone(), Some(root.clone()), State::Cancelled, "c2"),
        (g.clone(), Some(c1.clone()), State::Waiting, "g"),
    ];
    for asked in [&root, &c1, &g] {
        let tree = ok(ctx.backend.tree(asked, 100).await, "tree");
        assert_eq!(tree.root, root, "asked with {asked}");
        assert!(!tree.truncated);
        let got: Vec<_> = tree
            .items
            .into_iter()
            .map(|n| (n.id, n.parent, n.state, n.kind.as_str().to_owned()))
            .collect();
        let want: Vec<_> = want
            .iter()
            .map(|(id, p, s, k)| (id.clone(), p.clone(), *s, (*k).to_owned()))
            .collect();
        assert_eq!(got, want, "asked with {asked}");
    }
    let short = ok(ctx.backend.tree(&g, 2).await, "tree limited");
    assert!(short.truncated);
    assert_eq!(
        short.items.iter().map(|n| n.id.clone()).collect::<Vec<_>>(),
        vec![root.clone(), c1.clone()]
    );
    let exact = ok(
        ctx.backend.tree(&root, 4).await,
        "tree of exactly the limit",
    );
    assert!(!exact.truncated && exact.items.len() == 4);
    let alone = ok(ctx.backend.tree(&lone, 10).await, "a lone execution");
    assert_eq!(
        (alone.root.clone(), alone.items.len(), alone.truncated),
        (lone, 1, false)
    );
    let unknown = ctx.unknown_id();
    expect_not_found(
        ctx.backend.tree(&unknown, 10).await,
        &unknown,
        "tree of unknown",
    );
    for bad in [0, Tree::MAX_LIMIT + 1] {
        assert_eq!(
            expect_invalid(ctx.backend.tree(&root, bad).await, "tree limit"),
            "limit"
        );
    }
}

/// A cancel reaches every non-terminal descendant by default, in the same
/// call: waiting ones, running ones (fenced: their renew answers
/// `cancelled`), grandchildren below a finished child; finished ones and
/// other flows stay as they are; the answer counts what it cancelled.
pub async fn cancel_reaches_the_whole_subtree(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let root = ctx.create_id(ctx.new_exec("root", b"")).await;
    let finished = ctx
        .create_id(ctx.new_exec("done", b"").with_parent(root.clone()))
        .await;
    let claim = ctx.claim_one().await;
    let done = if claim.id == finished {
        ctx.complete(&claim.lease, b"{}").await;
        ctx.claim_one().await
    } else {
        let second = ctx.claim_one().await;
        ctx.complete(&second.lease, b"{}").await;
        claim
    };
    // `done` now holds the root's lease (the root runs), the child finished.
    assert_eq!(done.id, root);
    let running = ctx
        .create_id(ctx.new_exec("running", b"").with_parent(root.clone()))
        .await;
    let lease = ctx.claim_one().await;
    assert_eq!(lease.id, running);
    let waiting = ctx
        .create_id(ctx.new_exec("waiting", b"").with_parent(root.clone()))
        .await;
    let below_finished = ctx
        .create_id(
            ctx.new_exec("grandchild", b"")
                .with_parent(finished.clone()),
        )
        .await;
    let delayed = ctx
        .create_id(
            ctx.new_exec("later", b"")
                .with_parent(running.clone())
                .with_delay_ms(60_000),
        )
        .await;
    let other = ctx.create_waiting().await;
    ctx.advance(10);
    let out = ctx.cancel_with(&root, CancelRequest::because("stop")).await;
    assert_eq!(out.snapshot.state, State::Cancelled);
    assert_eq!(out.snapshot.cancel_reason.as_deref(), Some("stop"));
    assert_eq!((out.cascaded, out.cascade_pending), (4, false));
    let why = format!("cancelled with its ancestor {root}: stop");
    for id in [&running, &waiting, &below_finished, &delayed] {
        let snap = ctx.describe(id).await;
        assert_eq!(snap.state, State::Cancelled, "{id}");
        assert_eq!(snap.cancel_reason.as_deref(), Some(why.as_str()), "{id}");
        assert_eq!(snap.finished_at, Some(ctx.now()), "{id}");
    }
    assert_eq!(ctx.state(&finished).await, State::Completed);
    assert_eq!(ctx.state(&other).await, State::Waiting);
    let renewed = ctx
        .renew(
            DEFAULT_WORKER,
            30_000,
            vec![lease.lease.clone(), done.lease.clone()],
        )
        .await;
    assert_eq!(
        renewed[0].status,
        RenewStatus::Cancelled,
        "the running child is fenced"
    );
    assert_eq!(renewed[1].status, RenewStatus::Cancelled, "so is the root");
    assert_eq!(
        ctx.attempts(&running).await[0].outcome,
        Some(AttemptOutcome::Cancelled)
    );
    // A repeat finds nothing left to cancel.
    let again = ctx
        .cancel_with(&root, CancelRequest::because("again"))
        .await;
    assert_eq!((again.cascaded, again.cascade_pending), (0, false));
    assert_eq!(again.snapshot.cancel_reason.as_deref(), Some("stop"));
    // Without a reason, the descendants' reason names the ancestor alone.
    let r2 = ctx.create_waiting().await;
    let c = ctx
        .create_id(ctx.new_exec("c", b"").with_parent(r2.clone()))
        .await;
    assert_eq!(
        ctx.cancel_with(&r2, CancelRequest::default())
            .await
            .cascaded,
        1
    );
    assert_eq!(
        ctx.describe(&c).await.cancel_reason,
        Some(format!("cancelled with its ancestor {r2}"))
    );
}

/// Scope `execution` cancels the execution alone; a later cancel with the
/// default scope still reaches the descendants (and keeps the first
/// reason). A cancel of a child leaves its parent and siblings alone.
pub async fn cancel_scope_execution_leaves_descendants(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let root = ctx.create_waiting().await;
    let a = ctx
        .create_id(ctx.new_exec("a", b"").with_parent(root.clone()))
        .await;
    let b = ctx
        .create_id(ctx.new_exec("b", b"").with_parent(root.clone()))
        .await;
    let a1 = ctx
        .create_id(ctx.new_exec("a1", b"").with_parent(a.clone()))
        .await;
    let out = ctx.cancel_with(&a, CancelRequest::because("only a")).await;
    assert_eq!((out.cascaded, out.snapshot.state), (1, State::Cancelled));
    assert_eq!(ctx.state(&a1).await, State::Cancelled);
    assert_eq!(ctx.state(&root).await, State::Waiting, "the parent stays");
    assert_eq!(ctx.state(&b).await, State::Waiting, "a sibling stays");
    let only = CancelRequest::because("first").with_scope(CancelScope::Execution);
    let out = ctx.cancel_with(&root, only).await;
    assert_eq!((out.cascaded, out.cascade_pending), (0, false));
    assert_eq!(out.snapshot.state, State::Cancelled);
    assert_eq!(ctx.state(&b).await, State::Waiting, "scope execution");
    let out = ctx
        .cancel_with(&root, CancelRequest::because("second"))
        .await;
    assert_eq!(out.cascaded, 1, "the widened cancel reaches b");
    assert_eq!(out.snapshot.cancel_reason.as_deref(), Some("first"));
    assert_eq!(
        ctx.describe(&b).await.cancel_reason,
        Some(format!("cancelled with its ancestor {root}: second"))
    );
}

/// A subtree bigger than the cascade budget: the cancel handles the budget
/// in its own call and says `cascade_pending`; the cascade pass finishes the
/// rest in bounded steps, and answers `next_due: None` once nothing is
/// queued.
pub async fn a_big_subtree_is_finished_by_the_cascade_pass(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let budget = ctx.limits().cascade_budget;
    let root = ctx.create_waiting().await;
    let n = budget + 150;
    let news: Vec<NewExecution> = (0..n)
        .map(|i| {
            ctx.new_exec("child", format!("{i}").as_bytes())
                .with_parent(root.clone())
        })
        .collect();
    let children = ctx.create_chunked(news).await;
    // A grandchild under the last child: reached only by the pass.
    let deep = ctx
        .create_id(
            ctx.new_exec("deep", b"")
                .with_parent(children[n - 1].clone()),
        )
        .await;
    let p = root.partition();
    let idle = ok(ctx.backend.cascade_due(p, 100).await, "cascade_due idle");
    assert_eq!((idle.processed, idle.next_due), (0, None));
    let out = ctx.cancel_with(&root, CancelRequest::default()).await;
    assert_eq!((out.cascaded, out.cascade_pending), (budget as u64, true));
    assert_eq!(ctx.state(&children[budget - 1]).await, State::Cancelled);
    assert_eq!(ctx.state(&children[budget]).await, State::Waiting);
    // A replay waits while the queued walk could still act on it.
    let err = expect_err(
        ctx.backend.replay(&children[0]).await,
        "a replay while a cascade of its partition is queued",
    );
    assert!(matches!(err, EngineError::Contention { .. }), "{err}");
    let step = ok(ctx.backend.cascade_due(p, 100).await, "cascade_due step");
    assert_eq!((step.processed, step.next_due), (100, Some(ctx.now())));
    let last = ok(ctx.backend.cascade_due(p, 1_000).await, "cascade_due rest");
    assert_eq!((last.processed, last.next_due), (51, None));
    for id in children.iter().chain([&deep]) {
        assert_eq!(ctx.state(id).await, State::Cancelled, "{id}");
    }
    assert_eq!(
        ctx.lane_counts(&ctx.lane()).await,
        StateCounts {
            cancelled: n as u64 + 2,
            ..StateCounts::default()
        }
    );
    assert_eq!(
        expect_invalid(ctx.backend.cascade_due(p, 0).await, "limit 0"),
        "limit"
    );
    let snap = ok(
        ctx.backend.replay(&children[0]).await,
        "replay after the pass",
    );
    assert_eq!(snap.state, State::Waiting);
}

/// A tree pause and a tree resume of a subtree bigger than the cascade
/// budget: each call handles the budget and says `cascade_pending`; the
/// cascade pass finishes the rest.
pub async fn a_big_tree_pause_and_resume_are_finished_by_the_cascade_pass(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let budget = ctx.limits().cascade_budget;
    let root = ctx.create_waiting().await;
    let n = budget + 40;
    let news: Vec<NewExecution> = (0..n)
        .map(|i| {
            ctx.new_exec("child", format!("{i}").as_bytes())
                .with_parent(root.clone())
        })
        .collect();
    let children = ctx.create_chunked(news).await;
    let p = root.partition();
    let drain = || async {
        loop {
            let step = ok(ctx.backend.cascade_due(p, 1_000).await, "cascade_due");
            if step.next_due.is_none() {
                break;
            }
        }
    };
    let out = ok(
        ctx.backend
            .pause(&root, baton_core::CancelScope::Tree)
            .await,
        "pause",
    );
    assert_eq!((out.cascaded, out.cascade_pending), (budget as u64, true));
    assert_eq!(ctx.state(&children[n - 1]).await, State::Waiting);
    drain().await;
    assert_eq!(ctx.lane_counts(&ctx.lane()).await.paused, n as u64 + 1);
    let snap = ctx.describe(&children[n - 1]).await;
    assert_eq!(snap.pause.and_then(|p| p.via), Some(root.clone()));
    let out = ok(
        ctx.backend
            .resume(&root, baton_core::CancelScope::Tree)
            .await,
        "resume",
    );
    assert_eq!((out.cascaded, out.cascade_pending), (budget as u64, true));
    drain().await;
    assert_eq!(
        ctx.lane_counts(&ctx.lane()).await,
        StateCounts {
            waiting: n as u64 + 1,
            ..StateCounts::default()
        }
    );
}

/// Deadlines work on trees: when an execution expires, its non-terminal
/// descendants are cancelled in the same pass, saying why; finished ones
/// stay as they are.
pub async fn an_expired_execution_cancels_its_descendants(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let root = ctx
        .create_id(ctx.new_exec("root", b"").with_deadline(ctx.after(5_000)))
        .await;
    let running = ctx
        .create_id(ctx.new_exec("running", b"").with_parent(root.clone()))
        .await;
    let first = ctx.claim_one().await;
    let lease = if first.id == running {
        first
    } else {
        ctx.claim_one().await
    };
    assert_eq!(lease.id, running);
    let done = ctx
        .create_id(ctx.new_exec("done", b"").with_parent(root.clone()))
        .await;
    ctx.cancel_with(&done, CancelRequest::because("early"))
        .await;
    let grandchild = ctx
        .create_id(
            ctx.new_exec("grandchild", b"")
                .with_parent(running.clone())
                .with_deadline(ctx.after(60_000)),
        )
        .await;
    ctx.advance(5_000);
    assert_eq!(
        ctx.expire_all().await,
        1,
        "the root alone has passed its deadline"
    );
    assert_eq!(ctx.state(&root).await, State::Expired);
    let why = format!("cancelled with its ancestor {root}: its deadline passed");
    for id in [&running, &grandchild] {
        let snap = ctx.describe(id).await;
        assert_eq!(
            (snap.state, snap.cancel_reason.as_deref()),
            (State::Cancelled, Some(why.as_str())),
            "{id}"
        );
    }
    assert_eq!(
        ctx.describe(&done).await.cancel_reason.as_deref(),
        Some("early")
    );
    let renewed = ctx
        .renew(DEFAULT_WORKER, 30_000, vec![lease.lease.clone()])
        .await;
    assert_eq!(renewed[0].status, RenewStatus::Cancelled);
    ctx.advance(60_000);
    assert_eq!(
        ctx.expire_all().await,
        0,
        "a cancelled grandchild never expires"
    );
}
