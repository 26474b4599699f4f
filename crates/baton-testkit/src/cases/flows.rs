//! Flows: children and their parents, and retention of a flow.

use super::prelude::*;

/// A child is created in its parent's partition (a flow lives in one
/// partition), names its parent in every read, and so does a grandchild.
pub async fn children_live_in_their_parents_partition(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let root = ctx.create_waiting().await;
    let mut children = Vec::new();
    for i in 0..12 {
        let new = ctx
            .new_exec("child", format!("{i}").as_bytes())
            .with_parent(root.clone());
        let id = ctx.create_id(new.clone()).await;
        assert_eq!(
            id.partition(),
            root.partition(),
            "child {i} must live in its parent's partition"
        );
        assert_eq!(
            ctx.describe(&id).await,
            expected_snapshot(&id, &new, START, State::Waiting, None)
        );
        children.push(id);
    }
    // A batch of children of two parents, and a grandchild.
    let other = ctx.create_waiting().await;
    let batch = vec![
        ctx.new_exec("child", b"a").with_parent(root.clone()),
        ctx.new_exec("child", b"b").with_parent(other.clone()),
        ctx.new_exec("grandchild", b"c")
            .with_parent(children[0].clone()),
    ];
    let outs = ctx.create(batch).await;
    assert_eq!(outs[0].id.partition(), root.partition());
    assert_eq!(outs[1].id.partition(), other.partition());
    assert_eq!(
        outs[2].id.partition(),
        root.partition(),
        "a grandchild lives with its root"
    );
    assert_eq!(
        ctx.describe(&outs[2].id).await.parent,
        Some(children[0].clone())
    );
    // Children are claimed like any other work.
    let claimed: BTreeSet<_> = ctx
        .claim(ctx.claim_request(100))
        .await
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert!(claimed.is_superset(&children.iter().cloned().collect()));
}

/// A parent must exist in the child's namespace: an unknown parent (of this
/// deployment's partitioning) or one of another namespace rejects the whole
/// batch with an error naming the item and the parent, and nothing is
/// written.
pub async fn a_parent_must_exist_in_the_childs_namespace(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let elsewhere = ctx
        .create_id(NewExecution::new(
            ctx.other_namespace(),
            ctx.lane(),
            kind("job"),
            b"".to_vec(),
        ))
        .await;
    let parent = ctx.create_waiting().await;
    for (what, bad) in [
        ("unknown", ctx.unknown_id()),
        ("other namespace", elsewhere),
    ] {
        let batch = vec![
            ctx.new_exec("child", b"ok").with_parent(parent.clone()),
            ctx.new_exec("child", b"bad").with_parent(bad.clone()),
        ];
        let err = expect_err(ctx.backend.create(batch).await, what);
        match &err {
            EngineError::InvalidInput {
                field,
                value,
                reason,
            } => {
                assert_eq!(*field, "parent", "{what}: {err}");
                assert_eq!(value, &bad.to_string(), "{what}: {err}");
                assert!(reason.contains("item 1"), "{what}: names the item: {err}");
            }
            other => panic!("{what}: expected invalid input, got {other:?}"),
        }
    }
    assert_eq!(
        ctx.lane_counts(&ctx.lane()).await,
        StateCounts {
            waiting: 1,
            ..StateCounts::default()
        },
        "only the parent exists: nothing of the refused batches was written"
    );
}

/// An execution with a parent cannot carry an idempotency key (children
/// live in their parent's partition; keys are kept where they hash to).
pub async fn a_child_cannot_have_an_idempotency_key(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let parent = ctx.create_waiting().await;
    let new = ctx
        .new_exec("child", b"")
        .with_parent(parent)
        .with_idempotency_key(ikey("k"));
    assert_eq!(
        expect_invalid(ctx.backend.create(vec![new]).await, "child with a key"),
        "idempotency_key"
    );
    assert_eq!(ctx.lane_counts(&ctx.lane()).await.total(), 1);
}

/// `list` with a parent answers exactly that parent's children (not
/// grandchildren, not other executions), page by page in id order; a parent
/// of another deployment is invalid input.
pub async fn list_filters_by_parent(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let parent = ctx.create_waiting().await;
    let other = ctx.create_waiting().await;
    let mut children = BTreeSet::new();
    for i in 0..7 {
        let new = ctx
            .new_exec("child", format!("{i}").as_bytes())
            .with_parent(parent.clone());
        children.insert(ctx.create_id(new).await);
    }
    let first = children
        .iter()
        .next()
        .cloned()
        .unwrap_or_else(|| panic!("children"));
    ctx.create_id(ctx.new_exec("grandchild", b"").with_parent(first))
        .await;
    ctx.create_id(ctx.new_exec("other.child", b"").with_parent(other))
        .await;
    let filter = ListFilter::namespace(ctx.ns.clone()).with_parent(parent.clone());
    let listed: Vec<ExecutionId> = ctx
        .list_all(&filter, 3)
        .await
        .into_iter()
        .map(|s| {
            assert_eq!(s.parent.as_ref(), Some(&parent), "{}", s.id);
            s.id
        })
        .collect();
    assert_eq!(
        listed,
        children.iter().cloned().collect::<Vec<_>>(),
        "exactly the children, in id order"
    );
    let foreign = ListFilter::namespace(ctx.ns.clone()).with_parent(ctx.foreign_id());
    assert_eq!(
        expect_invalid(
            ctx.backend.list(&foreign, Page::first(10)).await,
            "list by a foreign parent"
        ),
        "id"
    );
}

/// Retention works on flows: a member is never trimmed before its root,
/// even long after it finished; a root whose flow still runs is looked at
/// again a retention later; a finished flow is trimmed newest member first
/// (no parent before its children), its root last, `limit` at a time.
pub async fn a_flow_is_trimmed_with_its_root_never_before(h: &dyn Harness) {
    const RETAIN: u64 = 1_000;
    let ctx = Ctx::new(h).await;
    let root = ctx.create_id(ctx.new_exec("root", b"")).await;
    let child = |parent: &ExecutionId| ctx.new_exec("child", b"").with_parent(parent.clone());
    let c1 = ctx.create_id(child(&root)).await;
    let c2 = ctx.create_id(child(&root)).await;
    let g = ctx.create_id(child(&c1)).await;
    let p = root.partition();
    let only = CancelRequest::default().with_scope(baton_core::CancelScope::Execution);
    for id in [&g, &c1] {
        ctx.cancel_with(id, only.clone()).await;
    }
    ctx.advance(RETAIN * 10);
    let report = ok(ctx.backend.trim_terminal(p, ms(RETAIN), 100).await, "trim");
    assert_eq!(
        (report.processed, report.next_due),
        (0, None),
        "finished members wait for their root"
    );
    for id in [&root, &c1, &c2, &g] {
        ctx.describe(id).await;
    }
    // The root finishes first; one member still runs: deferred.
    ctx.cancel_with(&root, only.clone()).await;
    ctx.advance(RETAIN);
    let report = ok(ctx.backend.trim_terminal(p, ms(RETAIN), 100).await, "trim");
    assert_eq!(
        (report.processed, report.next_due),
        (0, Some(ctx.after(RETAIN))),
        "a root whose flow runs is looked at again a retention later"
    );
    ctx.cancel_with(&c2, only).await;
    ctx.advance(RETAIN - 1);
    let report = ok(ctx.backend.trim_terminal(p, ms(RETAIN), 100).await, "trim");
    assert_eq!((report.processed, report.next_due), (0, Some(ctx.after(1))));
    ctx.advance(1);
    // Two at a time: newest members first, the root last.
    let report = ok(ctx.backend.trim_terminal(p, ms(RETAIN), 2).await, "trim 2");
    assert_eq!(report.processed, 2);
    for id in [&g, &c2] {
        expect_not_found(ctx.backend.describe(id).await, id, "trimmed first");
    }
    let tree = ok(ctx.backend.tree(&root, 10).await, "tree while trimming");
    assert_eq!(
        tree.items.iter().map(|n| n.id.clone()).collect::<Vec<_>>(),
        vec![root.clone(), c1.clone()]
    );
    let report = ok(
        ctx.backend.trim_terminal(p, ms(RETAIN), 2).await,
        "trim rest",
    );
    assert_eq!((report.processed, report.next_due), (2, None));
    for id in [&root, &c1] {
        expect_not_found(ctx.backend.describe(id).await, id, "trimmed with the flow");
    }
}
