//! Reads: `describe` over a whole lifecycle, `attempts`, `list`, `counts`,
//! `capabilities` and `partitions`.

use super::prelude::*;

/// Describe after every step of a full lifecycle — delayed, promoted,
/// claimed, failed, retried, claimed by another worker, completed — answers
/// exactly the expected snapshot, and `attempts` the full history.
pub async fn describe_full_lifecycle(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let policy = RetryPolicy {
        max_attempts: 3,
        backoff: Backoff {
            initial_ms: 500,
            max_ms: 10_000,
            multiplier: 2.0,
            jitter: false,
        },
    };
    let new = ctx
        .new_exec("report.build", br#"{"day":1}"#)
        .with_delay_ms(1_000)
        .with_priority(4)
        .with_tag(tag("team"), "data")
        .with_retry(policy);
    let id = ctx.create_id(new.clone()).await;
    let mut expected = expected_snapshot(
        &id,
        &new,
        START,
        State::Delayed,
        Some(START.saturating_add(ms(1_000))),
    );
    assert_eq!(ctx.describe(&id).await, expected, "created");
    assert!(ctx.attempts(&id).await.is_empty());

    ctx.advance(1_001);
    assert_eq!(ctx.promote_all().await, 1);
    expected.state = State::Waiting;
    expected.updated_at = ctx.now();
    assert_eq!(ctx.describe(&id).await, expected, "promoted");

    ctx.advance(999);
    let first = ctx.claim_one_with("w1", 10_000).await;
    let first_started = ctx.now();
    expected.state = State::Running;
    expected.attempts = 1;
    expected.updated_at = ctx.now();
    expected.worker_id = Some(worker("w1"));
    expected.lease_expires_at = Some(ctx.after(10_000));
    assert_eq!(ctx.describe(&id).await, expected, "claimed by w1");

    ctx.advance(1_000);
    let snap = ctx.fail(&first.lease, Failure::retryable("boom")).await;
    let first_ended = ctx.now();
    expected.state = State::Delayed;
    expected.updated_at = ctx.now();
    expected.run_at = Some(ctx.after(500));
    expected.worker_id = None;
    expected.lease_expires_at = None;
    expected.last_error = Some("boom".into());
    assert_eq!(snap, expected, "failed, retry scheduled");
    assert_eq!(ctx.describe(&id).await, expected, "failed, retry scheduled");

    ctx.advance(501);
    assert_eq!(ctx.promote_all().await, 1);
    expected.state = State::Waiting;
    expected.updated_at = ctx.now();
    assert_eq!(ctx.describe(&id).await, expected, "retry promoted");

    ctx.advance(499);
    let second = ctx.claim_one_with("w2", 10_000).await;
    assert_eq!(second.attempt, 2);
    let second_started = ctx.now();
    expected.state = State::Running;
    expected.attempts = 2;
    expected.updated_at = ctx.now();
    expected.worker_id = Some(worker("w2"));
    expected.lease_expires_at = Some(ctx.after(10_000));
    assert_eq!(ctx.describe(&id).await, expected, "claimed by w2");

    ctx.advance(1_000);
    let snap = ctx.complete(&second.lease, b"done").await;
    expected.state = State::Completed;
    expected.updated_at = ctx.now();
    expected.finished_at = Some(ctx.now());
    expected.worker_id = None;
    expected.lease_expires_at = None;
    expected.result = Some(b"done".to_vec());
    assert_eq!(snap, expected, "completed; last_error and run_at are kept");
    assert_eq!(ctx.describe(&id).await, expected, "completed");
    assert_eq!(
        ctx.attempts(&id).await,
        vec![
            AttemptRecord {
                number: 1,
                worker_id: worker("w1"),
                started_at: first_started,
                ended_at: Some(first_ended),
                outcome: Some(AttemptOutcome::Failed),
                error: Some("boom".into()),
            },
            AttemptRecord {
                number: 2,
                worker_id: worker("w2"),
                started_at: second_started,
                ended_at: Some(ctx.now()),
                outcome: Some(AttemptOutcome::Completed),
                error: None,
            },
        ]
    );
    let listed = ctx
        .list_all(&ListFilter::namespace(ctx.ns.clone()), 10)
        .await;
    assert_eq!(listed, vec![expected], "list answers the same snapshot");
}

/// An execution has no attempts until claimed, and a cancel before any claim
/// records none; a claim opens exactly one.
pub async fn attempts_empty_before_first_claim(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let waiting = ctx
        .create_id(ctx.new_exec("job", b"").with_priority(1))
        .await;
    let delayed = ctx
        .create_id(ctx.new_exec("job", b"").with_delay_ms(1_000))
        .await;
    let cancelled = ctx.create_waiting().await;
    ctx.cancel(&cancelled, None).await;
    for id in [&waiting, &delayed, &cancelled] {
        assert_eq!(ctx.attempts(id).await, vec![], "{id}: no attempts yet");
    }
    ctx.claim_one().await;
    let attempts = ctx.attempts(&waiting).await;
    assert_eq!(attempts.len(), 1);
    assert_eq!((attempts[0].number, attempts[0].outcome), (1, None));
}

/// `list` filters by lane, state, kind and tag (and their combinations),
/// never leaves its namespace, and answers ascending ids with the same
/// snapshots as describe.
pub async fn list_filters_by_lane_state_kind_and_tag(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let (a, b) = (lane("a"), lane("b"));
    let color = tag("color");
    let a_red = ctx
        .create_id(ctx.new_in(&a, "k1", b"").with_tag(color.clone(), "red"))
        .await;
    let a_k2 = ctx.create_id(ctx.new_in(&a, "k2", b"")).await;
    let b_blue = ctx
        .create_id(ctx.new_in(&b, "k1", b"").with_tag(color.clone(), "blue"))
        .await;
    let b_red = ctx
        .create_id(
            ctx.new_in(&b, "k1", b"")
                .with_tag(color.clone(), "red")
                .with_priority(5),
        )
        .await;
    let b_delayed = ctx
        .create_id(ctx.new_in(&b, "k2", b"").with_delay_ms(1_000))
        .await;
    let ns2 = ctx.other_namespace();
    let foreign = ctx
        .create_id(
            NewExecution::new(ns2.clone(), a.clone(), kind("k1"), vec![])
                .with_tag(color.clone(), "red"),
        )
        .await;
    let claims = ctx
        .claim(ClaimRequest::new(
            ctx.ns.clone(),
            b.clone(),
            worker("w1"),
            1,
        ))
        .await;
    assert_eq!(claims[0].id, b_red);

    let all = ListFilter::namespace(ctx.ns.clone());
    let cases: Vec<(ListFilter, Vec<&ExecutionId>, &str)> = vec![
        (
            all.clone(),
            vec![&a_red, &a_k2, &b_blue, &b_red, &b_delayed],
            "namespace",
        ),
        (
            all.clone().with_lane(a.clone()),
            vec![&a_red, &a_k2],
            "lane a",
        ),
        (
            all.clone().with_lane(b.clone()),
            vec![&b_blue, &b_red, &b_delayed],
            "lane b",
        ),
        (all.clone().with_lane(lane("c")), vec![], "empty lane"),
        (
            all.clone().with_state(State::Running),
            vec![&b_red],
            "running",
        ),
        (
            all.clone().with_state(State::Delayed),
            vec![&b_delayed],
            "delayed",
        ),
        (
            all.clone().with_state(State::Waiting),
            vec![&a_red, &a_k2, &b_blue],
            "waiting",
        ),
        (
            all.clone().with_state(State::Completed),
            vec![],
            "completed",
        ),
        (
            all.clone().with_kind(kind("k1")),
            vec![&a_red, &b_blue, &b_red],
            "kind k1",
        ),
        (
            all.clone().with_tag(color.clone(), "red"),
            vec![&a_red, &b_red],
            "tag red",
        ),
        (
            all.clone().with_tag(color.clone(), "blue"),
            vec![&b_blue],
            "tag blue",
        ),
        (
            all.clone().with_tag(color.clone(), "green"),
            vec![],
            "tag green",
        ),
        (
            all.clone().with_tag(tag("shape"), "red"),
            vec![],
            "other tag key",
        ),
        (
            all.clone()
                .with_lane(b.clone())
                .with_tag(color.clone(), "red"),
            vec![&b_red],
            "lane b, red",
        ),
        (
            all.clone()
                .with_lane(b.clone())
                .with_state(State::Waiting)
                .with_kind(kind("k1")),
            vec![&b_blue],
            "lane b, waiting, k1",
        ),
        (
            ListFilter::namespace(ns2.clone()),
            vec![&foreign],
            "other namespace",
        ),
    ];
    for (filter, want, what) in cases {
        let mut want: Vec<ExecutionId> = want.into_iter().cloned().collect();
        want.sort();
        assert_eq!(ctx.list_ids(&filter).await, want, "list filtered by {what}");
    }
    for snap in ctx.list_all(&all, 100).await {
        assert_eq!(
            snap,
            ctx.describe(&snap.id).await,
            "list item equals describe"
        );
    }
}

/// Walking `list` with a small page while executions are created and claimed
/// between pages visits every execution that existed before the walk exactly
/// once, never repeats one, and keeps ascending id order.
pub async fn list_paginates_without_gaps_or_duplicates_during_inserts(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let originals: BTreeSet<_> = ctx
        .create_chunked((0..25).map(|i| ctx.new_exec("job", &[i])).collect())
        .await
        .into_iter()
        .collect();
    let filter = ListFilter::namespace(ctx.ns.clone());
    let mut during = BTreeSet::new();
    let mut seen: Vec<ExecutionId> = Vec::new();
    let mut page = Page::first(4);
    let mut pages = 0;
    loop {
        pages += 1;
        assert!(pages < 1_000, "the walk must end");
        let out = ctx.list_page(&filter, page).await;
        seen.extend(out.items.into_iter().map(|s| s.id));
        if pages <= 10 {
            for _ in 0..2 {
                during.insert(ctx.create_waiting().await);
            }
            ctx.claim(ctx.claim_request(3)).await;
        }
        match out.next_cursor {
            Some(cursor) => page.cursor = Some(cursor),
            None => break,
        }
    }
    for pair in seen.windows(2) {
        assert!(
            pair[0] < pair[1],
            "ascending ids without repeats: {} then {}",
            pair[0],
            pair[1]
        );
    }
    let seen_set: BTreeSet<_> = seen.iter().cloned().collect();
    let missing: Vec<_> = originals.difference(&seen_set).collect();
    assert!(
        missing.is_empty(),
        "executions skipped by the walk: {missing:?}"
    );
    for id in seen_set.difference(&originals) {
        assert!(
            during.contains(id),
            "{id} was never created in this namespace"
        );
    }
}

/// A page limit of 0 or above 1000 is `InvalidInput`.
pub async fn list_rejects_invalid_page(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    ctx.create_waiting().await;
    let filter = ListFilter::namespace(ctx.ns.clone());
    for limit in [0, Page::MAX_LIMIT + 1] {
        expect_invalid(
            ctx.backend.list(&filter, Page::first(limit)).await,
            &format!("list with limit {limit}"),
        );
    }
    assert_eq!(
        ctx.list_page(&filter, Page::first(Page::MAX_LIMIT))
            .await
            .items
            .len(),
        1
    );
}

/// `counts` answers exact counts per lane and state of one namespace; lanes
/// without executions and other namespaces are absent.
pub async fn counts_per_lane_and_state(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let (a, b) = (lane("a"), lane("b"));
    assert!(
        ctx.counts().await.is_empty(),
        "an empty namespace has no lanes"
    );
    let a_completed = ctx
        .create_id(ctx.new_in(&a, "job", b"").with_priority(2))
        .await;
    ctx.create_id(ctx.new_in(&a, "job", b"").with_priority(1))
        .await;
    ctx.create_id(ctx.new_in(&a, "job", b"")).await;
    ctx.create_id(ctx.new_in(&a, "job", b"")).await;
    let b_failed = ctx
        .create_id(ctx.new_in(&b, "job", b"").with_priority(1))
        .await;
    let b_cancelled = ctx.create_id(ctx.new_in(&b, "job", b"")).await;
    ctx.create_id(ctx.new_in(&b, "job", b"").with_deadline(ctx.after(1_000)))
        .await;
    ctx.create_id(ctx.new_in(&b, "job", b"").with_delay_ms(3_600_000))
        .await;
    let ns2 = ctx.other_namespace();
    ctx.create_id(NewExecution::new(
        ns2.clone(),
        a.clone(),
        kind("job"),
        vec![],
    ))
    .await;

    let claims = ctx
        .claim(ClaimRequest::new(
            ctx.ns.clone(),
            a.clone(),
            worker("w1"),
            2,
        ))
        .await;
    assert_eq!(claims[0].id, a_completed);
    ctx.complete(&claims[0].lease, b"").await;
    let claims = ctx
        .claim(ClaimRequest::new(
            ctx.ns.clone(),
            b.clone(),
            worker("w1"),
            1,
        ))
        .await;
    assert_eq!(claims[0].id, b_failed);
    ctx.fail(&claims[0].lease, Failure::permanent("no")).await;
    ctx.cancel(&b_cancelled, None).await;
    ctx.advance(1_001);
    assert_eq!(ctx.expire_all().await, 1);

    let expected = BTreeMap::from([
        (
            a.clone(),
            StateCounts {
                waiting: 2,
                running: 1,
                completed: 1,
                ..StateCounts::default()
            },
        ),
        (
            b,
            StateCounts {
                delayed: 1,
                failed: 1,
                cancelled: 1,
                expired: 1,
                ..StateCounts::default()
            },
        ),
    ]);
    assert_eq!(ctx.counts().await, expected);
    assert_eq!(
        ok(ctx.backend.counts(&ns2).await, "counts"),
        BTreeMap::from([(
            a,
            StateCounts {
                waiting: 1,
                ..StateCounts::default()
            }
        )])
    );
    let empty = ctx.other_namespace();
    assert!(ok(ctx.backend.counts(&empty).await, "counts").is_empty());
}

/// Capabilities and the partition count are stable and sane, and every id
/// the backend hands out routes to one of its partitions.
pub async fn capabilities_and_partitions_are_consistent(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let caps = ctx.backend.capabilities();
    assert_eq!(caps, ctx.backend.capabilities(), "capabilities are stable");
    assert!(
        baton_core::BackendKind::ALL.contains(&caps.backend),
        "the backend names its kind"
    );
    let limits = caps.limits;
    assert!(limits.max_payload_bytes >= 1);
    assert!(limits.max_batch >= 1);
    assert!(limits.max_error_bytes >= 1);
    assert!(limits.min_lease <= limits.max_lease);
    assert!(limits.max_lease > Duration::ZERO);
    let partitions = ctx.backend.partitions();
    assert_eq!(
        partitions,
        ctx.backend.partitions(),
        "the partition count is stable"
    );
    let ids = ctx
        .create_chunked((0..20).map(|_| ctx.new_exec("job", b"")).collect())
        .await;
    for id in ids {
        assert!(
            id.partition().get() < partitions.get(),
            "{id}: partition in range"
        );
        assert!(
            id.check_partition(partitions).is_ok(),
            "{id}: hashes to its partition"
        );
        let parsed: ExecutionId = id.to_string().parse().expect("an id round-trips");
        assert_eq!(parsed, id);
    }
}

/// `namespaces` names the namespaces holding executions, ascending and
/// without repeats, up to its limit; one whose executions were all trimmed
/// is gone, and a bad limit is invalid input.
pub async fn namespaces_hold_their_executions_until_trimmed(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    assert_eq!(
        ok(ctx.backend.namespaces(10).await, "namespaces"),
        Vec::<Namespace>::new(),
        "a new deployment has no namespaces"
    );
    let ns2 = ctx.other_namespace();
    let never = ctx.other_namespace();
    ctx.create_id(ctx.new_exec("job", b"")).await;
    ctx.create_id(ctx.new_exec("job", b"")).await;
    let gone = ctx
        .create_id(NewExecution::new(
            ns2.clone(),
            ctx.lane(),
            kind("job"),
            vec![],
        ))
        .await;
    let mut both = vec![ctx.ns.clone(), ns2.clone()];
    both.sort();
    let all = ok(ctx.backend.namespaces(1000).await, "namespaces");
    assert_eq!(all, both, "ascending, once each");
    assert!(!all.contains(&never));
    assert_eq!(
        ok(ctx.backend.namespaces(1).await, "namespaces"),
        vec![both[0].clone()],
        "a limit keeps the first"
    );
    for bad in [0, Page::MAX_LIMIT + 1] {
        let field = expect_invalid(ctx.backend.namespaces(bad).await, "namespaces");
        assert_eq!(field, "limit", "limit {bad}");
    }

    ctx.cancel(&gone, None).await;
    ctx.advance(10_000);
    ctx.trim_all(1_000).await;
    assert_eq!(
        ok(ctx.backend.namespaces(1000).await, "namespaces"),
        vec![ctx.ns.clone()],
        "a namespace whose executions were all trimmed is gone"
    );
}

/// Running executions are read like any other: a namespace whose only
/// execution runs is among `namespaces`; `list` walks running and other
/// executions together in id order with pages of one, under no state
/// filter, running only, and running with another state; `counts` counts
/// them in their lane.
pub async fn reads_include_running_executions(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let busy = ctx.other_namespace();
    let only = ctx
        .create_id(NewExecution::new(
            busy.clone(),
            ctx.lane(),
            kind("job"),
            vec![],
        ))
        .await;
    let taken = ctx
        .claim(ClaimRequest::new(busy.clone(), ctx.lane(), worker("w1"), 1))
        .await;
    assert_eq!(taken[0].id, only);
    let names = ok(ctx.backend.namespaces(1000).await, "namespaces");
    assert!(
        names.contains(&busy),
        "a namespace whose only execution runs is listed: {names:?}"
    );
    let mut sorted = names.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(names, sorted, "ascending, once each");
    assert_eq!(
        ctx.list_ids(&ListFilter::namespace(busy.clone())).await,
        vec![only.clone()]
    );

    let mut ids = Vec::new();
    for _ in 0..6 {
        ids.push(ctx.create_id(ctx.new_exec("job", b"")).await);
    }
    let running: Vec<ExecutionId> = ctx
        .claim(ClaimRequest::new(
            ctx.ns.clone(),
            ctx.lane(),
            worker("w1"),
            3,
        ))
        .await
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(running.len(), 3);
    ids.sort();
    let mut waiting: Vec<ExecutionId> = ids
        .iter()
        .filter(|i| !running.contains(i))
        .cloned()
        .collect();
    waiting.sort();
    let mut running_sorted = running.clone();
    running_sorted.sort();
    let all = ListFilter::namespace(ctx.ns.clone());
    let walked: Vec<ExecutionId> = ctx
        .list_all(&all, 1)
        .await
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(
        walked, ids,
        "every execution once, in id order, pages of one"
    );
    let walked: Vec<ExecutionId> = ctx
        .list_all(&all.clone().with_state(State::Running), 1)
        .await
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(walked, running_sorted, "running only");
    assert_eq!(
        ctx.list_ids(&all.clone().with_states([State::Running, State::Waiting]))
            .await,
        ids,
        "running and waiting"
    );
    assert_eq!(
        ctx.list_ids(&all.clone().with_state(State::Waiting)).await,
        waiting,
        "waiting only"
    );
    assert_eq!(
        ctx.counts().await,
        BTreeMap::from([(
            ctx.lane(),
            StateCounts {
                waiting: 3,
                running: 3,
                ..StateCounts::default()
            }
        )])
    );
}

/// Lists `filter`, expecting `expected` in order, and checks
/// `ListFilter::matches` agrees on each of `all`.
async fn check_filter(
    ctx: &Ctx,
    all: &[&ExecutionId],
    filter: ListFilter,
    expected: Vec<&ExecutionId>,
) {
    let got = ctx.list_ids(&filter).await;
    let want: Vec<ExecutionId> = expected.into_iter().cloned().collect();
    assert_eq!(got, want, "{filter:?}");
    for id in all {
        let snap = ctx.describe(id).await;
        assert_eq!(
            filter.matches(&snap),
            got.contains(id),
            "{filter:?} on {id}"
        );
    }
}

/// `list` filters by several states at once, by created and finished
/// ranges (bounds exclusive; an unfinished execution matches no finished
/// bound) and by idempotency key; every answer is what
/// `ListFilter::matches` says. `describe_many` answers in order, `None`
/// for unknown ids.
pub async fn list_filters_by_states_ranges_and_key_and_describe_many(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let t0 = ctx.now();
    let early = ctx
        .create_id(
            ctx.new_in(&lane("early"), "early", b"")
                .with_idempotency_key(ikey("order-1")),
        )
        .await;
    ctx.advance(10);
    let t1 = ctx.now();
    let failed = ctx
        .create_id(ctx.new_exec("failed", b"").with_retry(no_backoff(1)))
        .await;
    let doomed = ctx.create_id(ctx.new_exec("doomed", b"")).await;
    let other_lane = ctx
        .create_id(
            ctx.new_in(&lane("side"), "other", b"")
                .with_idempotency_key(ikey("order-1")),
        )
        .await;
    ctx.advance(10);
    let lease = ctx.claim_one_pending(&failed).await;
    ctx.fail(&lease, Failure::permanent("no")).await;
    let t2 = ctx.now();
    ctx.advance(10);
    ctx.cancel(&doomed, None).await;
    let t3 = ctx.now();
    let all = [&early, &failed, &doomed, &other_lane];
    let ns = || ListFilter::namespace(ctx.ns.clone());
    check_filter(
        &ctx,
        &all,
        ns().with_states([State::Failed, State::Cancelled]),
        vec![&failed, &doomed],
    )
    .await;
    check_filter(
        &ctx,
        &all,
        ns().with_state(State::Waiting).with_state(State::Failed),
        vec![&early, &failed, &other_lane],
    )
    .await;
    check_filter(
        &ctx,
        &all,
        ns().with_created(Some(t0), None),
        vec![&failed, &doomed, &other_lane],
    )
    .await;
    check_filter(&ctx, &all, ns().with_created(None, Some(t1)), vec![&early]).await;
    check_filter(&ctx, &all, ns().with_created(Some(t0), Some(t1)), vec![]).await;
    check_filter(
        &ctx,
        &all,
        ns().with_finished(None, Some(t3)),
        vec![&failed],
    )
    .await;
    check_filter(
        &ctx,
        &all,
        ns().with_finished(Some(t2), None),
        vec![&doomed],
    )
    .await;
    check_filter(&ctx, &all, ns().with_finished(None, None), all.to_vec()).await;
    check_filter(
        &ctx,
        &all,
        ns().with_idempotency_key(ikey("order-1")),
        vec![&early, &other_lane],
    )
    .await;
    check_filter(
        &ctx,
        &all,
        ns().with_idempotency_key(ikey("order-1"))
            .with_lane(lane("side")),
        vec![&other_lane],
    )
    .await;
    check_filter(
        &ctx,
        &all,
        ns().with_idempotency_key(ikey("order-2")),
        vec![],
    )
    .await;
    // Paging a multi-state filter visits each match once.
    let paged = ctx
        .list_all(&ns().with_states([State::Waiting, State::Failed]), 1)
        .await;
    assert_eq!(paged.len(), 3);

    let unknown = ctx.unknown_id();
    let many = ok(
        ctx.backend
            .describe_many(&[doomed.clone(), unknown, early.clone()])
            .await,
        "describe_many",
    );
    assert_eq!(many.len(), 3);
    assert_eq!(many[0].as_ref().map(|s| s.id.clone()), Some(doomed.clone()));
    assert_eq!(many[1], None);
    assert_eq!(many[2], Some(ctx.describe(&early).await));
    let twice = ok(
        ctx.backend
            .describe_many(&[early.clone(), early.clone()])
            .await,
        "describe_many with a repeated id",
    );
    assert_eq!(twice[0], twice[1]);
    assert!(twice[0].is_some());
    assert!(
        ok(
            ctx.backend.describe_many(&[]).await,
            "describe_many of none"
        )
        .is_empty()
    );
    expect_invalid(
        ctx.backend.describe_many(&[ctx.foreign_id()]).await,
        "an id of another deployment",
    );
    let too_many = vec![early.clone(); Page::MAX_LIMIT + 1];
    expect_invalid(
        ctx.backend.describe_many(&too_many).await,
        "more ids than one call takes",
    );
}
