//! Management at scale: deleting an execution (and its tree), and bulk
//! deletes by filter.

use super::prelude::*;
use baton_core::{BulkAction, BulkRequest, CancelPart, CancelScope, DeletePart, DeleteReport};

async fn delete(ctx: &Ctx, id: &ExecutionId, force: bool) -> DeleteReport {
    ok(ctx.backend.delete(id, force).await, "delete")
}

fn alone() -> CancelRequest {
    CancelRequest::default().with_scope(CancelScope::Execution)
}

/// Asserts every read of `id` answers `NotFound`.
async fn assert_gone(ctx: &Ctx, id: &ExecutionId) {
    expect_not_found(ctx.backend.describe(id).await, id, "describe after delete");
    expect_not_found(ctx.backend.attempts(id).await, id, "attempts after delete");
    expect_not_found(ctx.backend.signals(id).await, id, "signals after delete");
    expect_not_found(ctx.backend.steps(id).await, id, "steps after delete");
}

/// A finished execution is deleted with everything it holds: every read
/// answers `NotFound` afterwards, its idempotency key creates a new
/// execution, a second delete is `NotFound`; unknown and foreign ids are
/// refused.
pub async fn delete_removes_a_finished_execution_and_frees_its_key(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let key = ikey("order-7");
    let id = ctx
        .create_id(ctx.new_exec("pay", b"{}").with_idempotency_key(key.clone()))
        .await;
    let other = ctx.create_waiting().await;
    let claim = ctx.claim_one_pending(&id).await;
    ctx.complete(&claim, b"{\"paid\":true}").await;
    ctx.advance(5);
    let report = delete(&ctx, &id, false).await;
    assert_eq!(
        report,
        DeleteReport {
            id: id.clone(),
            deleted: 1,
            cancelled: false
        }
    );
    assert_gone(&ctx, &id).await;
    let again = ctx
        .create_one(ctx.new_exec("pay", b"{}").with_idempotency_key(key))
        .await;
    assert!(again.created, "the key of a deleted execution is free");
    assert_ne!(again.id, id);
    expect_not_found(ctx.backend.delete(&id, false).await, &id, "a second delete");
    let unknown = ctx.unknown_id();
    expect_not_found(
        ctx.backend.delete(&unknown, true).await,
        &unknown,
        "delete of an unknown id",
    );
    assert_eq!(
        expect_invalid(
            ctx.backend.delete(&ctx.foreign_id(), true).await,
            "a foreign id"
        ),
        "id"
    );
    // What was not asked for is untouched.
    assert_eq!(ctx.state(&other).await, State::Waiting);
}

/// An execution that has not finished is refused without `force` and left
/// as it was; with `force` it is cancelled and deleted in one go, and the
/// worker that ran it is fenced: its renew answers `lost`, its complete
/// `NotFound`.
pub async fn delete_refuses_unfinished_work_unless_forced_and_force_fences_the_worker(
    h: &dyn Harness,
) {
    let ctx = Ctx::new(h).await;
    let running = ctx.create_waiting().await;
    let lease = ctx.claim_one_pending(&running).await;
    let waiting = ctx.create_waiting().await;
    let delayed = ctx
        .create_id(ctx.new_exec("later", b"").with_delay_ms(60_000))
        .await;
    for (id, state) in [
        (&running, State::Running),
        (&waiting, State::Waiting),
        (&delayed, State::Delayed),
    ] {
        let before = ctx.record(id).await;
        expect_conflict(
            ctx.backend.delete(id, false).await,
            id,
            "delete",
            state,
            "a delete without force of unfinished work",
        );
        ctx.assert_unchanged(id, &before, "a refused delete").await;
    }
    for id in [&running, &waiting, &delayed] {
        let report = delete(&ctx, id, true).await;
        assert_eq!((report.deleted, report.cancelled), (1, true), "{id}");
        assert_gone(&ctx, id).await;
    }
    let renewed = ctx.renew(DEFAULT_WORKER, 30_000, vec![lease.clone()]).await;
    assert_eq!(
        renewed[0].status,
        RenewStatus::Lost,
        "the deleted attempt's renew"
    );
    expect_not_found(
        ctx.backend.complete(&lease, b"{}".to_vec()).await,
        &running,
        "complete after a forced delete",
    );
    assert_eq!(ctx.counts().await, BTreeMap::new(), "nothing is left");
    ctx.assert_nothing_to_claim().await;
}

/// A delete takes the execution's descendants with it; a child is deleted
/// alone only once it and its descendants finished (even `force` refuses
/// otherwise), after which its parent no longer lists it; `force` on the
/// root of a flow cancels the unfinished members first.
pub async fn delete_reaches_the_subtree_and_a_child_alone_only_when_finished(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let root = ctx.create_waiting().await;
    let a = ctx
        .create_id(ctx.new_exec("a", b"").with_parent(root.clone()))
        .await;
    let a1 = ctx
        .create_id(ctx.new_exec("a1", b"").with_parent(a.clone()))
        .await;
    let b = ctx
        .create_id(ctx.new_exec("b", b"").with_parent(root.clone()))
        .await;
    expect_conflict(
        ctx.backend.delete(&a1, true).await,
        &a1,
        "delete",
        State::Waiting,
        "force on an unfinished child",
    );
    ctx.cancel_with(&a, alone()).await;
    expect_conflict(
        ctx.backend.delete(&a, false).await,
        &a,
        "delete",
        State::Cancelled,
        "a finished child with an unfinished descendant",
    );
    expect_conflict(
        ctx.backend.delete(&a, true).await,
        &a,
        "delete",
        State::Cancelled,
        "force on a child with an unfinished descendant",
    );
    ctx.cancel_with(&a1, alone()).await;
    let report = delete(&ctx, &a, false).await;
    assert_eq!((report.deleted, report.cancelled), (2, false));
    assert_gone(&ctx, &a).await;
    assert_gone(&ctx, &a1).await;
    let children = ctx
        .list_page(
            &ListFilter::namespace(ctx.ns.clone()).with_parent(root.clone()),
            Page::first(10),
        )
        .await;
    let ids: Vec<_> = children.items.iter().map(|s| s.id.clone()).collect();
    assert_eq!(
        ids,
        vec![b.clone()],
        "the root's children after a child's delete"
    );
    let tree = ok(ctx.backend.tree(&root, 100).await, "tree");
    let members: Vec<_> = tree.items.iter().map(|n| n.id.clone()).collect();
    assert_eq!(members, vec![root.clone(), b.clone()]);
    expect_conflict(
        ctx.backend.delete(&root, false).await,
        &root,
        "delete",
        State::Waiting,
        "an unfinished root without force",
    );
    let report = delete(&ctx, &root, true).await;
    assert_eq!((report.deleted, report.cancelled), (2, true));
    assert_gone(&ctx, &root).await;
    assert_gone(&ctx, &b).await;
}

/// A finished member on which an unfinished member of its flow depends
/// is not deleted (its dependent reads its result when it runs), even with
/// `force`; once the dependent finished, it is.
pub async fn delete_keeps_a_member_its_unfinished_dependents_need(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let root = ctx.create_waiting().await;
    let upstream = ctx
        .create_id(ctx.new_exec("up", b"").with_parent(root.clone()))
        .await;
    let dependent = ctx
        .create_id(
            ctx.new_exec("down", b"")
                .with_parent(root.clone())
                .with_dependencies([upstream.clone()]),
        )
        .await;
    let lease = ctx.claim_one_pending(&upstream).await;
    ctx.complete(&lease, b"{\"n\":1}").await;
    assert_eq!(ctx.state(&dependent).await, State::Waiting);
    for force in [false, true] {
        let err = expect_err(
            ctx.backend.delete(&upstream, force).await,
            "a delete of an upstream its dependent still needs",
        );
        assert!(
            matches!(&err, EngineError::Conflict { id, state: State::Completed, reason, .. }
                if *id == upstream && reason.contains("depend on it")),
            "{err:?}"
        );
    }
    ctx.cancel_with(&dependent, alone()).await;
    let report = delete(&ctx, &upstream, false).await;
    assert_eq!(report.deleted, 1);
    assert_gone(&ctx, &upstream).await;
}

/// A tree bigger than one unit's budget is removed over several units,
/// leaves first and the execution itself last (each unit whole: a delete
/// that stopped midway leaves a smaller tree, still whole from its top);
/// a unit in a partition whose cascade queue holds work answers
/// `Contention`, and `delete` runs the pass itself and goes on.
pub async fn a_big_tree_is_deleted_in_units_leaves_first(h: &dyn Harness) {
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
    let deep = ctx
        .create_id(
            ctx.new_exec("deep", b"")
                .with_parent(children[n - 1].clone()),
        )
        .await;
    // A big cancel leaves work queued in the partition: a unit refuses.
    let out = ctx.cancel_with(&root, CancelRequest::because("stop")).await;
    assert!(out.cascade_pending);
    let parts = ok(
        ctx.backend
            .delete_units(std::slice::from_ref(&root), false)
            .await,
        "delete_units while the cascade is queued",
    );
    assert_eq!(parts.len(), 1);
    let refused = parts.into_iter().next().and_then(Result::err);
    assert!(
        matches!(refused, Some(EngineError::Contention { .. })),
        "{refused:?}"
    );
    ctx.cascade_all(root.partition()).await;
    // One unit: the budget's worth, newest first; the root stays.
    let parts = ok(
        ctx.backend
            .delete_units(std::slice::from_ref(&root), false)
            .await,
        "one delete unit",
    );
    assert_eq!(
        parts,
        vec![Ok(DeletePart {
            removed: budget as u64,
            done: false,
            cancelled: false
        })]
    );
    assert_eq!(ctx.state(&root).await, State::Cancelled);
    assert_gone(&ctx, &deep).await;
    assert_gone(&ctx, &children[n - 1]).await;
    assert_eq!(ctx.state(&children[0]).await, State::Cancelled);
    let report = delete(&ctx, &root, false).await;
    assert_eq!(report.deleted, (n + 2 - budget) as u64);
    for id in [&root, &children[0], &children[149]] {
        assert_gone(&ctx, id).await;
    }
    assert_eq!(ctx.counts().await, BTreeMap::new());
    // A forced delete of another big tree: cancel, pass and removal all
    // in one call.
    let top = ctx.create_waiting().await;
    let news: Vec<NewExecution> = (0..n)
        .map(|i| {
            ctx.new_exec("child", format!("{i}").as_bytes())
                .with_parent(top.clone())
        })
        .collect();
    ctx.create_chunked(news).await;
    let report = delete(&ctx, &top, true).await;
    assert_eq!((report.deleted, report.cancelled), (n as u64 + 1, true));
    assert_eq!(ctx.counts().await, BTreeMap::new());
    assert_eq!(
        expect_invalid(
            ctx.backend.delete_units(&[ctx.foreign_id()], false).await,
            "a foreign id in a unit"
        ),
        "id"
    );
}

/// Bulk delete by filter: a dry run counts what would go and removes
/// nothing; a call is bounded by its limit and goes on from its cursor;
/// unfinished executions are reported, not deleted, unless `force`; ids
/// name exactly what to delete; other lanes are untouched.
pub async fn bulk_delete_by_filter_with_preview_limit_and_cursor(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let old = lane("old");
    let keep = lane("keep");
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(
            ctx.create_id(ctx.new_in(&old, "r", format!("{i}").as_bytes()))
                .await,
        );
    }
    // Five finished, two still waiting (ids[1] and ids[4]).
    for (i, id) in ids.iter().enumerate() {
        if i != 1 && i != 4 {
            ctx.cancel_with(id, alone()).await;
        }
    }
    let kept = ctx.create_id(ctx.new_in(&keep, "k", b"")).await;
    ctx.cancel_with(&kept, alone()).await;
    let filter = ListFilter::namespace(ctx.ns.clone()).with_lane(old.clone());
    let request = |force: bool, limit: usize| BulkRequest {
        action: BulkAction::Delete { force },
        filter: filter.clone(),
        ids: Vec::new(),
        limit,
        dry_run: false,
        cursor: None,
        actor: None,
    };
    let preview = ok(
        ctx.backend
            .bulk(BulkRequest {
                dry_run: true,
                ..request(false, 100)
            })
            .await,
        "bulk delete dry run",
    );
    assert_eq!((preview.matched, preview.changed), (7, 5));
    assert_eq!(
        ctx.list_ids(&filter).await,
        ids,
        "a dry run deletes nothing"
    );
    let first = ok(ctx.backend.bulk(request(false, 3)).await, "bulk delete");
    assert_eq!((first.matched, first.changed), (3, 2));
    assert_eq!(first.skipped.len(), 1);
    assert_eq!(first.skipped[0].0, ids[1]);
    assert!(first.next_cursor.is_some());
    let rest = ok(
        ctx.backend
            .bulk(BulkRequest {
                cursor: first.next_cursor,
                ..request(false, 100)
            })
            .await,
        "bulk delete, continued",
    );
    assert_eq!((rest.matched, rest.changed, rest.next_cursor), (4, 3, None));
    assert_eq!(
        rest.skipped
            .iter()
            .map(|(id, _)| id.clone())
            .collect::<Vec<_>>(),
        vec![ids[4].clone()]
    );
    assert_eq!(
        ctx.list_ids(&filter).await,
        vec![ids[1].clone(), ids[4].clone()]
    );
    let unknown = ctx.unknown_id();
    let forced = ok(
        ctx.backend
            .bulk(BulkRequest {
                ids: vec![ids[4].clone(), unknown.clone(), kept.clone()],
                ..request(true, 100)
            })
            .await,
        "bulk delete by ids with force",
    );
    assert_eq!((forced.matched, forced.changed), (1, 1));
    assert_eq!(
        forced.skipped,
        vec![
            (unknown, "no such execution".to_owned()),
            (kept.clone(), "it does not match the filter".to_owned()),
        ]
    );
    assert_eq!(ctx.list_ids(&filter).await, vec![ids[1].clone()]);
    assert_eq!(ctx.state(&kept).await, State::Cancelled, "another lane");
}

/// `cancel_units` and `replay_units` act on each id of one partition as
/// the single call would, in one unit: a refused id changes nothing of its
/// own and the others go on; an id after the unit spent its cascade budget
/// is not reached; ids of two partitions or too many are refused whole.
pub async fn cancel_and_replay_units_answer_each_id(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let b = &ctx.backend;
    // Children live in their parent's partition: one unit's worth.
    let root = ctx.create_waiting().await;
    let mut kids = Vec::new();
    for i in 0..4 {
        kids.push(
            ctx.create_id(
                ctx.new_exec("kid", format!("{i}").as_bytes())
                    .with_parent(root.clone()),
            )
            .await,
        );
    }
    let (a, done, gone, c) = (&kids[0], &kids[1], &kids[2], &kids[3]);
    ctx.cancel(done, Some("earlier")).await;
    ctx.cancel(gone, None).await;
    ok(b.delete(gone, false).await, "delete");
    ctx.advance(5);
    let parts = ok(
        b.cancel_units(
            &[a.clone(), done.clone(), gone.clone(), c.clone()],
            &CancelRequest::because("tidy"),
        )
        .await,
        "cancel_units",
    );
    assert_eq!(parts.len(), 4);
    assert_eq!(parts[0].as_ref().ok(), Some(&CancelPart::Cancelled));
    assert_eq!(parts[1].as_ref().ok(), Some(&CancelPart::Finished));
    assert!(
        matches!(parts[2], Err(EngineError::NotFound { .. })),
        "{:?}",
        parts[2]
    );
    assert_eq!(parts[3].as_ref().ok(), Some(&CancelPart::Cancelled));
    for id in [a, c] {
        let snap = ctx.describe(id).await;
        assert_eq!(snap.state, State::Cancelled);
        assert_eq!(snap.cancel_reason.as_deref(), Some("tidy"));
        assert_eq!(snap.finished_at, Some(ctx.now()));
    }
    assert_eq!(
        ctx.describe(done).await.cancel_reason.as_deref(),
        Some("earlier"),
        "a finished one keeps its own end"
    );

    let answers = ok(
        b.replay_units(&[a.clone(), root.clone(), gone.clone(), c.clone()])
            .await,
        "replay_units",
    );
    assert_eq!(answers.len(), 4);
    assert!(answers[0].is_ok(), "{:?}", answers[0]);
    assert!(
        matches!(answers[1], Err(EngineError::Conflict { .. })),
        "a waiting root is not replayed: {:?}",
        answers[1]
    );
    assert!(
        matches!(answers[2], Err(EngineError::NotFound { .. })),
        "{:?}",
        answers[2]
    );
    assert!(answers[3].is_ok(), "{:?}", answers[3]);
    for id in [a, c] {
        let snap = ctx.describe(id).await;
        assert_eq!(snap.state, State::Waiting);
        assert_eq!(snap.finished_at, None);
    }
    assert_eq!(ctx.describe(&root).await.state, State::Waiting);
    assert_eq!(ctx.describe(done).await.state, State::Cancelled);

    // Refused whole: ids of two partitions, or too many.
    let mut elsewhere = ctx.create_waiting().await;
    while elsewhere.partition() == root.partition() {
        elsewhere = ctx.create_waiting().await;
    }
    expect_invalid(
        b.cancel_units(
            &[a.clone(), elsewhere.clone()],
            &CancelRequest::because("x"),
        )
        .await,
        "ids of two partitions",
    );
    expect_invalid(
        b.replay_units(&[a.clone(), elsewhere.clone()]).await,
        "ids of two partitions",
    );
    let many = vec![a.clone(); baton_core::raw::bulk::MAX_UNIT_IDS + 1];
    expect_invalid(
        b.cancel_units(&many, &CancelRequest::because("x")).await,
        "too many ids",
    );
    expect_invalid(b.replay_units(&many).await, "too many ids");
    assert_eq!(
        ctx.describe(a).await.state,
        State::Waiting,
        "nothing changed"
    );

    // A tree cancel that spends the unit's budget leaves the ids after it
    // unreached; asked again, they are cancelled.
    let budget = ctx.limits().cascade_budget;
    // A child of `root`, so every id below shares its partition.
    let big = ctx
        .create_id(ctx.new_exec("big", b"").with_parent(root.clone()))
        .await;
    let news: Vec<NewExecution> = (0..budget + 10)
        .map(|i| {
            ctx.new_exec("leaf", format!("{i}").as_bytes())
                .with_parent(big.clone())
        })
        .collect();
    let leaves = ctx.create_chunked(news).await;
    let other = ctx
        .create_id(ctx.new_exec("other", b"").with_parent(big.clone()))
        .await;
    let parts = ok(
        b.cancel_units(
            &[big.clone(), other.clone()],
            &CancelRequest::because("big"),
        )
        .await,
        "cancel_units over budget",
    );
    assert_eq!(parts[0].as_ref().ok(), Some(&CancelPart::Cancelled));
    assert_eq!(
        parts[1].as_ref().ok(),
        Some(&CancelPart::NotReached),
        "the budget was spent on the big tree"
    );
    ctx.cascade_all(big.partition()).await;
    for leaf in [&leaves[0], &leaves[budget + 9], &other] {
        assert_eq!(ctx.describe(leaf).await.state, State::Cancelled);
    }
    let parts = ok(
        b.cancel_units(
            std::slice::from_ref(&other),
            &CancelRequest::because("again"),
        )
        .await,
        "cancel_units again",
    );
    assert_eq!(parts[0].as_ref().ok(), Some(&CancelPart::Finished));
    // What a walk visits counts, cancelled or not: a tree cancel of the
    // already cancelled `big` visits a budget of finished leaves, so the
    // id after it is not reached in that unit.
    let late = ctx
        .create_id(ctx.new_exec("late", b"").with_parent(root.clone()))
        .await;
    let parts = ok(
        b.cancel_units(
            &[big.clone(), late.clone()],
            &CancelRequest::because("visit"),
        )
        .await,
        "cancel_units of a finished big tree",
    );
    assert_eq!(parts[0].as_ref().ok(), Some(&CancelPart::Finished));
    assert_eq!(
        parts[1].as_ref().ok(),
        Some(&CancelPart::NotReached),
        "the walk over finished leaves spent the budget"
    );
    assert_eq!(ctx.describe(&late).await.state, State::Waiting);

    // A bulk tree cancel of a parent and its child (one page, one unit):
    // the child cancelled by its parent's cascade counts as changed, as
    // the preview counted it, and carries the audit event.
    ok(b.set_history(&ctx.ns, true).await, "set_history");
    let fam = lane("family");
    let parent = ctx.create_id(ctx.new_in(&fam, "p", b"")).await;
    let child = ctx
        .create_id(ctx.new_in(&fam, "c", b"").with_parent(parent.clone()))
        .await;
    let request = BulkRequest {
        action: BulkAction::Cancel(CancelRequest::because("family")),
        filter: ListFilter::namespace(ctx.ns.clone()).with_lane(fam.clone()),
        ids: Vec::new(),
        limit: 100,
        dry_run: true,
        cursor: None,
        actor: Some("ana".into()),
    };
    let preview = ok(b.bulk(request.clone()).await, "bulk dry run");
    assert_eq!((preview.matched, preview.changed), (2, 2));
    let report = ok(
        b.bulk(BulkRequest {
            dry_run: false,
            ..request
        })
        .await,
        "bulk cancel",
    );
    assert_eq!((report.matched, report.changed), (2, 2), "{report:?}");
    assert!(report.skipped.is_empty(), "{report:?}");
    for id in [&parent, &child] {
        assert_eq!(ctx.describe(id).await.state, State::Cancelled);
        let events = ok(b.events(id, 0, 100).await, "events");
        assert_eq!(
            events.last().map(|e| e.event),
            Some(baton_core::EventKind::Audit),
            "{id}: {events:?}"
        );
    }
    ok(b.set_history(&ctx.ns, false).await, "set_history");
}
