//! `trim_terminal`, and what every scheduler pass shares: terminal
//! executions ignored, empty partitions, invalid arguments.

use baton_core::{CancelScope, Lane, PartitionId, RetentionRule, ScanReport};

use super::prelude::*;
use super::scan::{HOUR_MS, assert_stopped_at_limit, expire, promote, reclaim, trim};

/// `trim_terminal` deletes terminal executions (of all four terminal
/// states) that finished more than `retention` ago, with their attempts;
/// recent terminal and all non-terminal executions stay.
pub async fn trim_removes_only_old_terminal(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let day = 24 * HOUR_MS;
    let completed = ctx
        .create_id(ctx.new_exec("job", b"").with_priority(3))
        .await;
    let failed = ctx
        .create_id(ctx.new_exec("job", b"").with_priority(2))
        .await;
    let running = ctx
        .create_id(ctx.new_exec("job", b"").with_priority(1))
        .await;
    let cancelled = ctx.create_waiting().await;
    let expired = ctx
        .create_id(ctx.new_exec("job", b"").with_deadline(ctx.after(1_000)))
        .await;
    let delayed = ctx
        .create_id(ctx.new_exec("job", b"").with_delay_ms(10 * HOUR_MS as i64))
        .await;
    let claims = ctx
        .claim(ctx.claim_request(3).with_lease_ttl(ms(day)))
        .await;
    let claimed: Vec<_> = claims.iter().map(|c| c.id.clone()).collect();
    assert_eq!(
        claimed,
        vec![completed.clone(), failed.clone(), running.clone()]
    );
    ctx.complete(&claims[0].lease, b"").await;
    ctx.fail(&claims[1].lease, Failure::permanent("no")).await;
    ctx.cancel(&cancelled, None).await;
    ctx.advance(1_001);
    assert_eq!(ctx.expire_all().await, 1);
    let waiting = ctx.create_waiting().await;

    ctx.advance(30 * 60_000);
    let recent = ctx
        .create_id(ctx.new_exec("job", b"").with_priority(10))
        .await;
    let claim = ctx.claim_one().await;
    assert_eq!(claim.id, recent);
    let recent_done = ctx.complete(&claim.lease, b"").await;
    ctx.advance(31 * 60_000);

    assert_eq!(ctx.trim_all(HOUR_MS).await, 4, "the four old terminal ones");
    for id in [&completed, &failed, &cancelled, &expired] {
        expect_not_found(
            ctx.backend.describe(id).await,
            id,
            "describe of a trimmed execution",
        );
        expect_not_found(
            ctx.backend.attempts(id).await,
            id,
            "attempts of a trimmed execution",
        );
    }
    for id in [&running, &delayed, &waiting, &recent] {
        ctx.describe(id).await;
    }
    assert_eq!(
        ctx.lane_counts(&ctx.lane()).await,
        StateCounts {
            waiting: 1,
            delayed: 1,
            running: 1,
            completed: 1,
            ..StateCounts::default()
        }
    );
    assert_eq!(ctx.trim_all(HOUR_MS).await, 0, "idempotent");
    let finished = recent_done.finished_at.expect("finished_at");
    assert_eq!(
        trim(&ctx, recent.partition(), HOUR_MS, 100).await,
        ScanReport {
            processed: 0,
            next_due: Some(finished.saturating_add(ms(HOUR_MS)))
        },
        "the recent one falls due when its retention ends"
    );
}

/// A terminal execution is trimmed once `finished_at + retention <= now`,
/// not a millisecond earlier.
pub async fn trim_at_exact_retention(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let id = ctx.create_waiting().await;
    let finished = ctx.cancel(&id, None).await.finished_at;
    assert_eq!(finished, Some(ctx.now()));
    ctx.advance(HOUR_MS - 1);
    assert_eq!(ctx.trim_all(HOUR_MS).await, 0, "1 ms before retention ends");
    ctx.describe(&id).await;
    ctx.advance(1);
    assert_eq!(
        ctx.trim_all(HOUR_MS).await,
        1,
        "at the instant retention ends"
    );
    expect_not_found(ctx.backend.describe(&id).await, &id, "describe after trim");
}

/// After a trim the idempotency key is free: the same key creates a new
/// execution.
pub async fn trim_frees_idempotency_key(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let submit = || {
        ctx.new_exec("job", b"")
            .with_idempotency_key(ikey("nightly"))
    };
    let old = ctx.create_id(submit()).await;
    let claim = ctx.claim_one().await;
    ctx.complete(&claim.lease, b"").await;
    ctx.advance(HOUR_MS + 1);
    assert_eq!(ctx.trim_all(HOUR_MS).await, 1);
    expect_not_found(
        ctx.backend.describe(&old).await,
        &old,
        "describe after trim",
    );
    let again = ctx.create_one(submit()).await;
    assert!(again.created, "the key is reusable after a trim");
    assert_ne!(again.id, old);
    assert_eq!(again.state, State::Waiting);
    assert_eq!(
        ctx.counts().await,
        BTreeMap::from([(
            ctx.lane(),
            StateCounts {
                waiting: 1,
                ..StateCounts::default()
            }
        )])
    );
}

/// `trim_terminal` trims at most `limit` and reports the rest as due at once.
pub async fn trim_respects_limit(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let mut all = Vec::new();
    let (p, group) = ctx
        .create_sharing_partition(|c| c.new_exec("job", b""), &mut all)
        .await;
    for id in &group {
        ctx.cancel(id, None).await;
    }
    ctx.advance(HOUR_MS + 10);
    assert_stopped_at_limit(&ctx, trim(&ctx, p, HOUR_MS, 1).await, 1, "trim limit 1");
    assert_eq!(
        trim(&ctx, p, HOUR_MS, 100).await,
        ScanReport {
            processed: 1,
            next_due: None
        }
    );
    for id in &group {
        expect_not_found(ctx.backend.describe(id).await, id, "describe after trim");
    }
}

/// Terminal executions never change again: no scanner promotes, reclaims or
/// expires them, whatever their run_at, lease or deadline said.
pub async fn terminal_executions_ignore_every_scanner(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let completed = ctx
        .create_id(
            ctx.new_exec("job", b"")
                .with_priority(2)
                .with_deadline(ctx.after(10_000)),
        )
        .await;
    let failed = ctx
        .create_id(
            ctx.new_exec("job", b"")
                .with_priority(1)
                .with_deadline(ctx.after(10_000)),
        )
        .await;
    let cancelled = ctx
        .create_id(
            ctx.new_exec("job", b"")
                .with_delay_ms(5_000)
                .with_deadline(ctx.after(10_000)),
        )
        .await;
    let expired = ctx
        .create_id(ctx.new_exec("job", b"").with_deadline(ctx.after(2_000)))
        .await;
    let claims = ctx
        .claim(ctx.claim_request(2).with_lease_ttl(ms(1_000)))
        .await;
    assert_eq!(claims.len(), 2);
    ctx.complete(&claims[0].lease, b"").await;
    ctx.fail(&claims[1].lease, Failure::permanent("no")).await;
    ctx.cancel(&cancelled, Some("stop")).await;
    ctx.advance(3_000);
    assert_eq!(ctx.expire_all().await, 1, "only the waiting one expires");
    let mut before = Vec::new();
    for id in [&completed, &failed, &cancelled, &expired] {
        before.push(ctx.record(id).await);
    }
    ctx.advance(20_000);
    assert_eq!(ctx.promote_all().await, 0);
    assert_eq!(ctx.reclaim_all().await, 0);
    assert_eq!(ctx.expire_all().await, 0);
    for (id, record) in [&completed, &failed, &cancelled, &expired]
        .into_iter()
        .zip(&before)
    {
        ctx.assert_unchanged(id, record, "scanners over a terminal execution")
            .await;
    }
    ctx.assert_nothing_to_claim().await;
}

/// Every pass rejects a partition outside the deployment and a `limit` of 0
/// with `InvalidInput`, and changes nothing.
pub async fn scans_reject_invalid_partition_and_zero_limit(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let id = ctx
        .create_id(ctx.new_exec("job", b"").with_delay_ms(1_000))
        .await;
    ctx.advance(2_000);
    let before = ctx.record(&id).await;
    let outside = PartitionId(ctx.backend.partitions().get());
    let p = id.partition();
    let b = &ctx.backend;
    for (part, limit, what) in [
        (outside, 10, "partition outside the deployment"),
        (p, 0, "limit 0"),
    ] {
        expect_invalid(
            b.promote_due(part, limit).await,
            &format!("promote_due: {what}"),
        );
        expect_invalid(
            b.reclaim_expired_leases(part, limit).await,
            &format!("reclaim_expired_leases: {what}"),
        );
        expect_invalid(
            b.expire_deadlines(part, limit).await,
            &format!("expire_deadlines: {what}"),
        );
        expect_invalid(
            b.trim_terminal(part, ms(0), limit).await,
            &format!("trim_terminal: {what}"),
        );
    }
    ctx.assert_unchanged(&id, &before, "rejected passes").await;
    assert_eq!(promote(&ctx, p, 10).await.processed, 1, "still due");
}

/// Every pass over a partition with nothing of its kind processes nothing
/// and reports no next item.
pub async fn scans_of_empty_partitions_report_nothing(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let none = ScanReport::default();
    for p in ctx.backend.partitions().iter() {
        assert_eq!(promote(&ctx, p, 10).await, none, "promote_due on {p}");
        assert_eq!(reclaim(&ctx, p, 10).await, none, "reclaim on {p}");
        assert_eq!(expire(&ctx, p, 10).await, none, "expire_deadlines on {p}");
        assert_eq!(trim(&ctx, p, 0, 10).await, none, "trim_terminal on {p}");
    }
    let id = ctx.create_waiting().await;
    let p = id.partition();
    assert_eq!(
        promote(&ctx, p, 10).await,
        none,
        "a waiting execution is not delayed"
    );
    assert_eq!(reclaim(&ctx, p, 10).await, none, "nor leased");
    assert_eq!(expire(&ctx, p, 10).await, none, "nor has a deadline");
    assert_eq!(trim(&ctx, p, 0, 10).await, none, "nor is terminal");
    assert_eq!(ctx.state(&id).await, State::Waiting);
}

const MINUTE_MS: u64 = 60_000;

/// Finishes a new execution of `ns` and `lane` at once (cancelled while
/// waiting) and answers it.
async fn finished_in(ctx: &Ctx, ns: &Namespace, lane: &Lane) -> ExecutionId {
    let mut new = ctx.new_in(lane, "job", b"");
    new.namespace = ns.clone();
    let id = ctx.create_id(new).await;
    ctx.cancel(&id, None).await;
    id
}

/// Asserts each of `ids` is still there.
async fn alive(ctx: &Ctx, ids: &[&ExecutionId]) {
    for id in ids {
        ctx.describe(id).await;
    }
}

/// The rules of `namespaces` (the deployment may hold others).
async fn rules_of(ctx: &Ctx, namespaces: &[&Namespace]) -> Vec<(String, Option<String>, u64)> {
    ok(ctx.backend.retention_rules().await, "retention_rules")
        .into_iter()
        .filter(|r| namespaces.contains(&&r.namespace))
        .map(|r| {
            (
                r.namespace.to_string(),
                r.lane.map(|l| l.to_string()),
                r.keep.as_millis() as u64,
            )
        })
        .collect()
}

/// `set_retention`, `remove_retention` and `retention_rules`: a rule
/// replaced answers the keep it had, one removed too (`None` when there was
/// none); rules are listed by namespace, the all-lanes rule first; keeps
/// outside 1 s..=36500 d are refused.
pub async fn retention_rules_are_set_listed_and_removed(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let ns = ctx.ns.clone();
    let bulk = lane("bulk");
    let mail = lane("mail");
    let b = &ctx.backend;
    assert_eq!(rules_of(&ctx, &[&ns]).await, vec![]);
    assert_eq!(
        ok(
            b.set_retention(&ns, Some(&mail), ms(5 * MINUTE_MS)).await,
            "set"
        ),
        None
    );
    assert_eq!(
        ok(b.set_retention(&ns, None, ms(10 * MINUTE_MS)).await, "set"),
        None
    );
    assert_eq!(
        ok(
            b.set_retention(&ns, Some(&bulk), ms(3 * HOUR_MS)).await,
            "set"
        ),
        None
    );
    assert_eq!(
        ok(
            b.set_retention(&ns, None, ms(20 * MINUTE_MS)).await,
            "replace"
        ),
        Some(ms(10 * MINUTE_MS)),
        "a replaced rule answers the keep it had"
    );
    assert_eq!(
        ok(
            b.set_retention(&ns, None, ms(20 * MINUTE_MS)).await,
            "again"
        ),
        Some(ms(20 * MINUTE_MS)),
        "setting the same rule again changes nothing"
    );
    let text = ns.to_string();
    assert_eq!(
        rules_of(&ctx, &[&ns]).await,
        vec![
            (text.clone(), None, 20 * MINUTE_MS),
            (text.clone(), Some("bulk".into()), 3 * HOUR_MS),
            (text.clone(), Some("mail".into()), 5 * MINUTE_MS),
        ]
    );
    for keep in [
        Duration::ZERO,
        Duration::from_millis(999),
        RetentionRule::MAX_KEEP + Duration::from_secs(1),
    ] {
        assert_eq!(
            expect_invalid(b.set_retention(&ns, None, keep).await, "keep out of range"),
            "keep"
        );
    }
    assert_eq!(
        ok(b.remove_retention(&ns, Some(&mail)).await, "remove"),
        Some(ms(5 * MINUTE_MS))
    );
    assert_eq!(
        ok(b.remove_retention(&ns, Some(&mail)).await, "remove again"),
        None,
        "removing a rule that is not there answers None"
    );
    assert_eq!(
        ok(b.remove_retention(&ns, None).await, "remove all-lanes"),
        Some(ms(20 * MINUTE_MS))
    );
    assert_eq!(
        rules_of(&ctx, &[&ns]).await,
        vec![(text, Some("bulk".into()), 3 * HOUR_MS)],
        "a lane's rule outlives its namespace's"
    );
}

/// The trim pass keeps each finished execution as the rules say: a lane's
/// rule over its namespace's over the deployment's default; a rule that
/// lengthens the keep after an execution was created protects it, one
/// removed hands it back to the default, and one that shortens the keep
/// applies only to executions created after it (never trimmed earlier
/// than promised).
pub async fn retention_per_namespace_and_lane(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let b = &ctx.backend;
    let main = ctx.lane();
    let bulk = lane("bulk");
    let ns = ctx.ns.clone();
    let (plain, longer, removed, shorter) = (
        ctx.other_namespace(),
        ctx.other_namespace(),
        ctx.other_namespace(),
        ctx.other_namespace(),
    );
    ok(b.set_retention(&ns, None, ms(20 * MINUTE_MS)).await, "set");
    ok(
        b.set_retention(&ns, Some(&bulk), ms(3 * HOUR_MS)).await,
        "set",
    );
    ok(
        b.set_retention(&removed, None, ms(20 * MINUTE_MS)).await,
        "set",
    );

    let a = finished_in(&ctx, &ns, &main).await; // 20 min, its namespace's rule
    let bk = finished_in(&ctx, &ns, &bulk).await; // 3 h, its lane's rule
    let c = finished_in(&ctx, &plain, &main).await; // 1 h, the default
    let d = finished_in(&ctx, &longer, &main).await; // 2 h, a rule set after
    let e = finished_in(&ctx, &removed, &main).await; // 1 h, its rule removed
    let f = finished_in(&ctx, &shorter, &main).await; // 1 h, a shorter rule after
    ok(
        b.set_retention(&longer, None, ms(2 * HOUR_MS)).await,
        "lengthen",
    );
    ok(b.remove_retention(&removed, None).await, "remove");
    ok(
        b.set_retention(&shorter, None, ms(10 * MINUTE_MS)).await,
        "shorten",
    );

    ctx.advance(20 * MINUTE_MS - 1);
    assert_eq!(
        ctx.trim_all(HOUR_MS).await,
        0,
        "a millisecond before the first keep"
    );
    ctx.advance(1);
    assert_eq!(
        ctx.trim_all(HOUR_MS).await,
        1,
        "the namespace's rule: 20 min; the removed rule's and the shorter rule's executions stay"
    );
    expect_not_found(b.describe(&a).await, &a, "kept by its namespace's rule");
    alive(&ctx, &[&bk, &c, &d, &e, &f]).await;

    ctx.advance(40 * MINUTE_MS - 1);
    assert_eq!(
        ctx.trim_all(HOUR_MS).await,
        0,
        "a millisecond before the default"
    );
    ctx.advance(1);
    assert_eq!(
        ctx.trim_all(HOUR_MS).await,
        3,
        "the default: no rule, a rule removed, a rule shortened after create"
    );
    for id in [&c, &e, &f] {
        expect_not_found(b.describe(id).await, id, "kept by the default");
    }
    alive(&ctx, &[&bk, &d]).await;
    assert_eq!(
        trim(&ctx, d.partition(), HOUR_MS, 100)
            .await
            .next_due
            .map(|t| t <= ctx.after(HOUR_MS)),
        Some(true),
        "the lengthened execution is due again by its new keep"
    );

    ctx.advance(HOUR_MS);
    assert_eq!(
        ctx.trim_all(HOUR_MS).await,
        1,
        "the rule set after create: 2 h"
    );
    expect_not_found(b.describe(&d).await, &d, "kept by a later, longer rule");
    alive(&ctx, &[&bk]).await;
    assert_eq!(
        trim(&ctx, bk.partition(), HOUR_MS, 100).await,
        ScanReport {
            processed: 0,
            next_due: Some(ctx.after(HOUR_MS))
        },
        "the lane's rule says when it is due"
    );

    ctx.advance(HOUR_MS - 1);
    assert_eq!(ctx.trim_all(HOUR_MS).await, 0);
    ctx.advance(1);
    assert_eq!(ctx.trim_all(HOUR_MS).await, 1, "the lane's rule: 3 h");
    expect_not_found(b.describe(&bk).await, &bk, "kept by its lane's rule");
    for ns in [&ns, &longer, &shorter] {
        ok(b.remove_retention(ns, None).await, "clean up");
    }
    ok(b.remove_retention(&ns, Some(&bulk)).await, "clean up");
}

/// A root kept by a rule whose flow still runs when it is due is looked at
/// again a keep later, and trimmed with its flow once all of it finished.
pub async fn retention_rule_waits_for_an_open_flow(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let b = &ctx.backend;
    ok(
        b.set_retention(&ctx.ns, None, ms(10 * MINUTE_MS)).await,
        "set",
    );
    let root = ctx.create_id(ctx.new_exec("root", b"")).await;
    let child = ctx
        .create_id(ctx.new_exec("child", b"").with_parent(root.clone()))
        .await;
    let cancelled = ok(
        b.cancel(
            &root,
            CancelRequest::because("root only").with_scope(CancelScope::Execution),
        )
        .await,
        "cancel the root alone",
    );
    assert_eq!(cancelled.snapshot.state, State::Cancelled);
    ctx.describe(&child).await;

    ctx.advance(10 * MINUTE_MS);
    assert_eq!(ctx.trim_all(HOUR_MS).await, 0, "its flow still runs");
    ctx.describe(&root).await;
    assert_eq!(
        trim(&ctx, root.partition(), HOUR_MS, 100).await.next_due,
        Some(ctx.after(10 * MINUTE_MS)),
        "looked at again a keep later"
    );
    ctx.cancel(&child, None).await;
    ctx.advance(10 * MINUTE_MS - 1);
    assert_eq!(ctx.trim_all(HOUR_MS).await, 0);
    ctx.advance(1);
    assert_eq!(ctx.trim_all(HOUR_MS).await, 2, "the root and its child");
    expect_not_found(b.describe(&root).await, &root, "trimmed root");
    expect_not_found(b.describe(&child).await, &child, "trimmed child");
    ok(b.remove_retention(&ctx.ns, None).await, "clean up");
}
