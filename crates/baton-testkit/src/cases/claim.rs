//! `claim`: what a claim hands out, in which order, to whom, and that no
//! execution is handed to two claimers.

use super::prelude::*;

fn ids(claims: &[Claim]) -> Vec<ExecutionId> {
    claims.iter().map(|c| c.id.clone()).collect()
}

/// A claim answers the execution's kind, payload, tags, deadline, attempt 1
/// and a lease fencing attempt 1 until `now + lease_ttl`; the execution
/// becomes `running` under the worker, with an open attempt record.
pub async fn claim_returns_claim_fields(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let deadline = ctx.after(3_600_000);
    let new = ctx
        .new_exec("image.resize", br#"{"w":64}"#)
        .with_tag(tag("customer"), "acme")
        .with_deadline(deadline);
    let id = ctx.create_id(new.clone()).await;
    ctx.advance(25);
    let request = ClaimRequest::new(ctx.ns.clone(), ctx.lane(), worker("worker-a/1"), 5)
        .with_lease_ttl(ms(45_000));
    let claims = ctx.claim(request).await;
    assert_eq!(claims.len(), 1, "one waiting execution: {claims:?}");
    let claim = &claims[0];
    let expires = ctx.after(45_000);
    let expected = Claim {
        session: None,
        version: None,
        id: id.clone(),
        namespace: ctx.ns.clone(),
        lane: ctx.lane(),
        kind: kind("image.resize"),
        payload: br#"{"w":64}"#.to_vec(),
        attempt: 1,
        lease: claim.lease.clone(),
        lease_expires_at: expires,
        deadline: Some(deadline),
        tags: new.tags.clone(),
        upstream: BTreeMap::new(),
        waits: Vec::new(),
        signals: Vec::new(),
        steps: BTreeMap::new(),
    };
    assert_eq!(claim, &expected);
    assert_eq!(
        claim.lease.execution_id(),
        &id,
        "the lease names the execution"
    );
    assert_eq!(claim.lease.attempt(), 1, "the lease fences attempt 1");

    let mut snap = expected_snapshot(&id, &new, START, State::Running, None);
    snap.attempts = 1;
    snap.updated_at = ctx.now();
    snap.worker_id = Some(worker("worker-a/1"));
    snap.lease_expires_at = Some(expires);
    assert_eq!(ctx.describe(&id).await, snap);
    assert_eq!(
        ctx.attempts(&id).await,
        vec![AttemptRecord {
            number: 1,
            worker_id: worker("worker-a/1"),
            started_at: ctx.now(),
            ended_at: None,
            outcome: None,
            error: None,
        }]
    );
}

/// Nothing eligible answers an empty list at once: an empty lane, a delayed
/// execution that is not due, work in another lane.
pub async fn claim_without_eligible_work_is_empty(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    ctx.assert_nothing_to_claim().await;
    let delayed = ctx
        .create_id(ctx.new_exec("job", b"").with_delay_ms(1_000))
        .await;
    ctx.create_id(ctx.new_in(&lane("elsewhere"), "job", b""))
        .await;
    ctx.assert_nothing_to_claim().await;
    assert_eq!(ctx.state(&delayed).await, State::Delayed);
}

/// Higher priority first, then the one eligible earliest; exact for one
/// claimer, across calls and within one batch.
pub async fn claim_orders_by_priority_then_age(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let mut by_name = BTreeMap::new();
    for (name, priority) in [("a", 0), ("b", 5), ("c", 0), ("d", 10), ("e", 5), ("f", -5)] {
        let id = ctx
            .create_id(ctx.new_exec(name, b"").with_priority(priority))
            .await;
        by_name.insert(name, id);
        ctx.advance(1);
    }
    let pick =
        |names: &[&str]| -> Vec<ExecutionId> { names.iter().map(|n| by_name[n].clone()).collect() };
    let first = ctx.claim(ctx.claim_request(3)).await;
    assert_eq!(ids(&first), pick(&["d", "b", "e"]), "priority, then age");
    let rest = ctx.claim(ctx.claim_request(10)).await;
    assert_eq!(ids(&rest), pick(&["a", "c", "f"]), "priority, then age");
}

/// Within a priority, the execution that became eligible first is claimed
/// first even when another one has the lower (older) id.
pub async fn claim_prefers_earliest_eligible_over_lower_id(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let delayed = ctx
        .create_id(ctx.new_exec("late", b"").with_delay_ms(1_000))
        .await;
    ctx.advance(500);
    let waiting = ctx.create_waiting().await;
    assert!(delayed < waiting, "ids grow with creation");
    ctx.advance(1_500);
    assert_eq!(ctx.promote_all().await, 1);
    // One at a time, so the choice itself is checked, not only the order of
    // a batch.
    let first = ctx.claim(ctx.claim_request(1)).await;
    assert_eq!(
        ids(&first),
        vec![waiting],
        "eligible at +0.5 s beats eligible at +1 s"
    );
    let second = ctx.claim(ctx.claim_request(1)).await;
    assert_eq!(ids(&second), vec![delayed]);
}

/// One claimer gets exact priority-then-age order over many executions even
/// when the urgent ones are bunched in a few partitions (a backend that
/// looks at partitions separately must still merge them exactly).
pub async fn claim_order_is_exact_when_work_is_uneven_across_partitions(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let mut expected: Vec<(i32, Timestamp, ExecutionId)> = Vec::new();
    for i in 0..240 {
        // An id's partition is known only once it exists: a probe decides
        // whether this execution is one of the urgent ones.
        let probe = ctx.create_id(ctx.new_exec("probe", b"")).await;
        let urgent = probe.partition().get() < 3;
        ctx.cancel(&probe, None).await;
        let priority = if urgent { 9 } else { i % 3 };
        let id = ctx
            .create_id(ctx.new_exec("job", b"").with_priority(priority))
            .await;
        expected.push((-priority, ctx.now(), id));
        ctx.advance(1);
    }
    expected.sort();
    let mut claimed = Vec::new();
    loop {
        let batch = ctx.claim(ctx.claim_request(40)).await;
        if batch.is_empty() {
            break;
        }
        claimed.extend(ids(&batch));
    }
    let want: Vec<ExecutionId> = expected.into_iter().map(|(_, _, id)| id).collect();
    assert_eq!(
        claimed, want,
        "priority, then age, then id, across partitions"
    );
}

/// A claim never answers more than `max`; repeated claims drain the lane,
/// each execution once.
pub async fn claim_respects_max(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let created: BTreeSet<_> = ctx
        .create_chunked((0..10).map(|_| ctx.new_exec("job", b"")).collect())
        .await
        .into_iter()
        .collect();
    let first = ctx.claim(ctx.claim_request(3)).await;
    assert_eq!(first.len(), 3);
    let second = ctx.claim(ctx.claim_request(100)).await;
    assert_eq!(second.len(), 7, "the remaining seven");
    ctx.assert_nothing_to_claim().await;
    let claimed: BTreeSet<_> = first.iter().chain(&second).map(|c| c.id.clone()).collect();
    assert_eq!(claimed, created, "each execution claimed once");
    assert_eq!(ctx.lane_counts(&ctx.lane()).await.running, 10);
}

/// One claim may name several lanes; priority and age decide across them and
/// lanes not named are left alone.
pub async fn claim_across_multiple_lanes(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let (a, b, c) = (lane("a"), lane("b"), lane("c"));
    let a1 = ctx.create_id(ctx.new_in(&a, "job", b"")).await;
    ctx.advance(1);
    let b1 = ctx.create_id(ctx.new_in(&b, "job", b"")).await;
    ctx.advance(1);
    let b2 = ctx
        .create_id(ctx.new_in(&b, "job", b"").with_priority(5))
        .await;
    ctx.advance(1);
    let c1 = ctx
        .create_id(ctx.new_in(&c, "job", b"").with_priority(9))
        .await;
    let request =
        ClaimRequest::new(ctx.ns.clone(), a.clone(), worker("w1"), 10).with_lane(b.clone());
    let claims = ctx.claim(request).await;
    assert_eq!(ids(&claims), vec![b2.clone(), a1.clone(), b1.clone()]);
    let lanes: Vec<_> = claims.iter().map(|c| c.lane.clone()).collect();
    assert_eq!(lanes, vec![b.clone(), a, b], "each claim names its lane");
    assert_eq!(
        ctx.state(&c1).await,
        State::Waiting,
        "lane c was not asked for"
    );
}

/// A claim sees only its namespace and its lanes.
pub async fn claim_is_scoped_by_namespace_and_lane(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let ns2 = ctx.other_namespace();
    let foreign = ctx
        .create_id(NewExecution::new(
            ns2.clone(),
            ctx.lane(),
            kind("job"),
            vec![],
        ))
        .await;
    let other_lane = ctx.create_id(ctx.new_in(&lane("other"), "job", b"")).await;
    ctx.assert_nothing_to_claim().await;
    assert_eq!(ctx.state(&foreign).await, State::Waiting);
    assert_eq!(ctx.state(&other_lane).await, State::Waiting);
    let claims = ctx
        .claim(ClaimRequest::new(ns2.clone(), ctx.lane(), worker("w1"), 10))
        .await;
    assert_eq!(
        ids(&claims),
        vec![foreign],
        "the other namespace's own claim"
    );
    assert_eq!(claims[0].namespace, ns2);
}

/// An execution is handed only to workers offering every capability it
/// requires; one that nobody here can run does not block others.
pub async fn claim_requires_capability_subset(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let gpu = ctx
        .create_id(
            ctx.new_exec("train", b"")
                .with_priority(10)
                .with_capability(cap("gpu")),
        )
        .await;
    let gpu_ssd = ctx
        .create_id(
            ctx.new_exec("train", b"")
                .with_priority(9)
                .with_capability(cap("gpu"))
                .with_capability(cap("ssd")),
        )
        .await;
    let plain = ctx.create_waiting().await;
    let claim_with = |offered: &[&str]| ctx.claim_request(10).with_capabilities(caps(offered));

    let got = ctx.claim(claim_with(&[])).await;
    assert_eq!(
        ids(&got),
        vec![plain],
        "no capabilities: only the plain one"
    );
    let got = ctx.claim(claim_with(&["cpu"])).await;
    assert!(got.is_empty(), "cpu satisfies neither: {got:?}");
    let got = ctx.claim(claim_with(&["gpu", "cpu"])).await;
    assert_eq!(ids(&got), vec![gpu], "gpu alone does not satisfy gpu+ssd");
    let got = ctx.claim(claim_with(&["ssd", "gpu", "fpga"])).await;
    assert_eq!(ids(&got), vec![gpu_ssd], "a superset satisfies");
}

/// Bad claim requests are `InvalidInput` naming the field, and change
/// nothing: max 0 or over the batch limit, lease TTL outside the limits, no
/// lanes or too many. The limits themselves are valid.
pub async fn claim_rejects_invalid_requests(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let id = ctx.create_waiting().await;
    let before = ctx.record(&id).await;
    let limits = ctx.limits();
    let mut bad: Vec<(ClaimRequest, &str, &str)> = Vec::new();
    let mut r = ctx.claim_request(1);
    r.max = 0;
    bad.push((r, "max", "max 0"));
    let mut r = ctx.claim_request(1);
    r.max = limits.max_batch + 1;
    bad.push((r, "max", "max over the batch limit"));
    if limits.min_lease > Duration::ZERO {
        let r = ctx
            .claim_request(1)
            .with_lease_ttl(limits.min_lease - ms(1).min(limits.min_lease));
        bad.push((r, "lease_ms", "lease below min_lease"));
    }
    let r = ctx
        .claim_request(1)
        .with_lease_ttl(limits.max_lease + ms(1));
    bad.push((r, "lease_ms", "lease above max_lease"));
    let mut r = ctx.claim_request(1);
    r.lanes.clear();
    bad.push((r, "lanes", "no lanes"));
    let mut r = ctx.claim_request(1);
    r.lanes = (0..=ClaimRequest::MAX_LANES)
        .map(|i| lane(&format!("l{i}")))
        .collect();
    r.lanes[0] = ctx.lane();
    bad.push((r, "lanes", "too many lanes"));
    for (request, field, what) in bad {
        let got = expect_invalid(ctx.backend.claim(request).await, what);
        assert_eq!(got, field, "{what}: the error must name the field");
    }
    ctx.assert_unchanged(&id, &before, "rejected claims").await;
    let edge = ctx
        .claim(
            ctx.claim_request(limits.max_batch)
                .with_lease_ttl(limits.max_lease),
        )
        .await;
    assert_eq!(
        edge.len(),
        1,
        "max = max_batch and ttl = max_lease are valid"
    );
    assert_eq!(
        edge[0].lease_expires_at,
        ctx.now().saturating_add(limits.max_lease)
    );
    let out = ctx
        .renew(
            DEFAULT_WORKER,
            limits.min_lease.as_millis() as u64,
            vec![edge[0].lease.clone()],
        )
        .await;
    assert_eq!(
        out[0].status,
        RenewStatus::Renewed,
        "ttl = min_lease is valid"
    );
}

/// Eight tasks claiming through one shared backend in batches of at most
/// seven never receive the same execution, and together claim all of them.
pub async fn concurrent_claimers_never_share_an_execution(h: &dyn Harness) {
    const TOTAL: usize = 200;
    let ctx = Ctx::new(h).await;
    let created: BTreeSet<_> = ctx
        .create_chunked((0..TOTAL).map(|_| ctx.new_exec("job", b"")).collect())
        .await
        .into_iter()
        .collect();
    assert_eq!(created.len(), TOTAL);
    let mut tasks = Vec::new();
    for w in 0..8 {
        let ctx = ctx.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let request =
                    ClaimRequest::new(ctx.ns.clone(), ctx.lane(), worker(&format!("w{w}")), 7);
                let claims = ok(ctx.backend.claim(request).await, "concurrent claim");
                assert!(claims.len() <= 7, "max respected under concurrency");
                if claims.is_empty() {
                    return got;
                }
                got.extend(claims.into_iter().map(|c| (c.id, c.attempt)));
            }
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("claim task panicked"));
    }
    // Whatever a claimer skipped while others held it must still be there.
    for c in ctx.claim(ctx.claim_request(1_000)).await {
        all.push((c.id, c.attempt));
    }
    let mut seen = BTreeSet::new();
    for (id, attempt) in &all {
        assert!(seen.insert(id.clone()), "{id} was handed to two claimers");
        assert_eq!(*attempt, 1, "{id}: first attempt");
    }
    assert_eq!(seen, created, "every execution claimed exactly once");
    assert_eq!(
        ctx.lane_counts(&ctx.lane()).await,
        StateCounts {
            running: TOTAL as u64,
            ..StateCounts::default()
        }
    );
}
