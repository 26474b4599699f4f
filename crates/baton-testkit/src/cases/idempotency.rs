//! Idempotency keys: dedup within a namespace and lane, inside one batch,
//! under concurrency, and answering the execution's current state.

use super::prelude::*;

/// A second submission with the same key creates nothing: it answers the
/// first id with `created: false`, and the first execution is untouched.
pub async fn idempotency_key_dedups_across_calls(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let first = ctx
        .create_one(
            ctx.new_exec("job", b"first")
                .with_idempotency_key(ikey("k-1")),
        )
        .await;
    assert!(first.created);
    let before = ctx.record(&first.id).await;
    ctx.advance(10);
    let second = ctx
        .create_one(
            ctx.new_exec("other.kind", b"second")
                .with_idempotency_key(ikey("k-1"))
                .with_delay_ms(1_000),
        )
        .await;
    assert!(!second.created, "a repeated key must not create");
    assert_eq!(second.id, first.id, "a repeated key answers the first id");
    assert_eq!(second.state, State::Waiting, "the first execution's state");
    ctx.assert_unchanged(&first.id, &before, "a deduplicated create")
        .await;
    assert_eq!(ctx.lane_counts(&ctx.lane()).await.total(), 1);
}

/// Within one batch, a later item repeating an earlier item's key answers the
/// earlier item's id.
pub async fn idempotency_key_dedups_within_one_batch(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let outs = ctx
        .create(vec![
            ctx.new_exec("a", b"1").with_idempotency_key(ikey("k")),
            ctx.new_exec("b", b"2"),
            ctx.new_exec("c", b"3").with_idempotency_key(ikey("k")),
            ctx.new_exec("d", b"4").with_idempotency_key(ikey("k2")),
            ctx.new_exec("e", b"5")
                .with_idempotency_key(ikey("k2"))
                .with_delay_ms(500),
        ])
        .await;
    let created: Vec<_> = outs.iter().map(|o| o.created).collect();
    assert_eq!(created, [true, true, false, true, false]);
    assert_eq!(outs[2].id, outs[0].id, "item 3 repeats item 1's key");
    assert_eq!(outs[4].id, outs[3].id, "item 5 repeats item 4's key");
    assert_eq!(outs[2].state, State::Waiting);
    assert_eq!(outs[4].state, State::Waiting);
    assert_ne!(outs[0].id, outs[1].id);
    assert_ne!(outs[0].id, outs[3].id);
    assert_eq!(ctx.describe(&outs[0].id).await.payload, b"1");
    assert_eq!(ctx.describe(&outs[3].id).await.payload, b"4");
    assert_eq!(
        ctx.lane_counts(&ctx.lane()).await,
        StateCounts {
            waiting: 3,
            ..StateCounts::default()
        }
    );
}

/// The same key in another lane is another execution.
pub async fn idempotency_key_is_scoped_by_lane(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let other = lane("other");
    let a = ctx
        .create_one(ctx.new_exec("job", b"a").with_idempotency_key(ikey("k")))
        .await;
    let b = ctx
        .create_one(
            ctx.new_in(&other, "job", b"b")
                .with_idempotency_key(ikey("k")),
        )
        .await;
    assert!(a.created && b.created, "one key, two lanes: two executions");
    assert_ne!(a.id, b.id);
    let again = ctx
        .create_one(
            ctx.new_in(&other, "job", b"c")
                .with_idempotency_key(ikey("k")),
        )
        .await;
    assert!(!again.created);
    assert_eq!(again.id, b.id, "dedup within the other lane");
    assert_eq!(ctx.describe(&b.id).await.lane, other);
    assert_eq!(ctx.lane_counts(&ctx.lane()).await.total(), 1);
    assert_eq!(ctx.lane_counts(&other).await.total(), 1);
}

/// The same key and lane in another namespace is another execution.
pub async fn idempotency_key_is_scoped_by_namespace(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let ns2 = ctx.other_namespace();
    let a = ctx
        .create_one(ctx.new_exec("job", b"a").with_idempotency_key(ikey("k")))
        .await;
    let b = ctx
        .create_one(
            NewExecution::new(ns2.clone(), ctx.lane(), kind("job"), b"b".to_vec())
                .with_idempotency_key(ikey("k")),
        )
        .await;
    assert!(a.created && b.created, "one key, two namespaces");
    assert_ne!(a.id, b.id);
    assert_eq!(ctx.describe(&b.id).await.namespace, ns2);
    assert_eq!(ctx.describe(&a.id).await.payload, b"a");
}

/// A deduplicated submission answers the existing execution's current state:
/// `running` while claimed, `completed` afterwards; the key keeps
/// deduplicating after the execution finished.
pub async fn idempotency_dedup_reports_current_state(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let submit = || {
        ctx.new_exec("job", b"{}")
            .with_idempotency_key(ikey("once"))
    };
    let id = ctx.create_id(submit()).await;
    let claim = ctx.claim_one().await;
    let again = ctx.create_one(submit()).await;
    assert_eq!(
        (again.id.clone(), again.state, again.created),
        (id.clone(), State::Running, false)
    );
    ctx.complete(&claim.lease, b"done").await;
    let again = ctx.create_one(submit()).await;
    assert_eq!(
        (again.id.clone(), again.state, again.created),
        (id.clone(), State::Completed, false)
    );
    assert_eq!(
        ctx.lane_counts(&ctx.lane()).await,
        StateCounts {
            completed: 1,
            ..StateCounts::default()
        },
        "a finished execution still owns its key"
    );
}

/// Many tasks submitting one key at the same time create exactly one
/// execution and all learn its id.
pub async fn concurrent_creates_with_one_idempotency_key_create_one(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let mut tasks = Vec::new();
    for i in 0..16u8 {
        let ctx = ctx.clone();
        tasks.push(tokio::spawn(async move {
            let new = ctx.new_exec("job", &[i]).with_idempotency_key(ikey("race"));
            ok(ctx.backend.create(vec![new]).await, "concurrent create")
                .pop()
                .expect("one outcome")
        }));
    }
    let mut outs = Vec::new();
    for task in tasks {
        outs.push(task.await.expect("create task panicked"));
    }
    let created = outs.iter().filter(|o| o.created).count();
    assert_eq!(created, 1, "exactly one submission creates: {outs:?}");
    let ids: BTreeSet<_> = outs.iter().map(|o| o.id.clone()).collect();
    assert_eq!(ids.len(), 1, "every submission learns the same id");
    assert_eq!(ctx.lane_counts(&ctx.lane()).await.total(), 1);
}
