//! Limits: `set_limit`, `remove_limit`, `limits`, `limit_usage`, and how
//! claims honour them (a cap under concurrent claimers, a slot freed by
//! every end of a run, rate spacing, no starvation behind a key without
//! room, limits set after submission, two limits at once).

use baton_core::{CancelScope, Lane, Limit, LimitKey, LimitName, LimitUsage, Rate, SuspendRequest};

use super::prelude::*;

/// A limit name no other case uses (names are deployment-wide).
fn limit_name(ctx: &Ctx, suffix: &str) -> LimitName {
    LimitName::new(format!("{}-{suffix}", ctx.ns)).expect("valid limit name")
}

fn cap(ctx: &Ctx, suffix: &str, key: &str, max_running: u32) -> Limit {
    Limit {
        name: limit_name(ctx, suffix),
        namespace: ctx.ns.clone(),
        lane: None,
        key: key.parse().expect("valid limit key"),
        max_running: Some(max_running),
        rate: None,
        fair: false,
    }
}

async fn set(ctx: &Ctx, limit: &Limit) -> Option<Limit> {
    ok(ctx.backend.set_limit(limit).await, "set_limit")
}

fn tagged(ctx: &Ctx, kind_name: &str, tenant: &str) -> NewExecution {
    ctx.new_exec(kind_name, b"").with_tag(tag("tenant"), tenant)
}

async fn claim_ids(ctx: &Ctx, lane: &Lane, max: usize) -> Vec<Claim> {
    ctx.claim(ctx.claim_request(max).with_lane(lane.clone()))
        .await
}

/// A limit is set (answering the one it replaced), listed per namespace
/// and for the deployment, refused when it names neither a cap nor a rate
/// (or values out of range), and removed (answering it; a second removal
/// answers nothing). Usage of an unknown limit is invalid input.
pub async fn limits_are_set_listed_and_removed(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let mut limit = cap(&ctx, "tenants", "tag:tenant", 5);
    assert_eq!(
        set(&ctx, &limit).await,
        None,
        "a new limit replaces nothing"
    );
    assert_eq!(
        set(&ctx, &limit).await,
        Some(limit.clone()),
        "the same again"
    );
    let before = limit.clone();
    limit.lane = Some(lane("emails"));
    limit.rate = Some(Rate {
        count: 10,
        per: Duration::from_secs(1),
    });
    assert_eq!(set(&ctx, &limit).await, Some(before));
    let kinds = Limit {
        name: limit_name(&ctx, "kinds"),
        key: LimitKey::Kind,
        lane: None,
        max_running: None,
        ..limit.clone()
    };
    assert_eq!(set(&ctx, &kinds).await, None);
    assert_eq!(
        ok(ctx.backend.limits(Some(&ctx.ns)).await, "limits"),
        vec![kinds.clone(), limit.clone()],
        "by name within the namespace"
    );
    let all = ok(ctx.backend.limits(None).await, "limits of every namespace");
    assert!(all.contains(&limit) && all.contains(&kinds), "{all:?}");
    let other = ctx.other_namespace();
    assert_eq!(ok(ctx.backend.limits(Some(&other)).await, "limits"), vec![]);

    for (bad, field) in [
        (
            Limit {
                max_running: None,
                rate: None,
                ..limit.clone()
            },
            "max_running",
        ),
        (
            Limit {
                rate: Some(Rate {
                    count: 0,
                    per: Duration::from_secs(1),
                }),
                ..limit.clone()
            },
            "rate.count",
        ),
        (
            Limit {
                rate: Some(Rate {
                    count: 1,
                    per: Duration::ZERO,
                }),
                ..limit.clone()
            },
            "rate.per_ms",
        ),
    ] {
        assert_eq!(
            expect_invalid(ctx.backend.set_limit(&bad).await, "bad limit"),
            field
        );
    }
    assert_eq!(
        ok(ctx.backend.limits(Some(&ctx.ns)).await, "limits"),
        vec![kinds.clone(), limit.clone()],
        "a refused limit changed nothing"
    );

    let unknown = limit_name(&ctx, "unknown");
    assert_eq!(
        expect_invalid(ctx.backend.limit_usage(&unknown, 10).await, "usage"),
        "limit"
    );
    assert_eq!(
        ok(ctx.backend.limit_usage(&limit.name, 10).await, "usage"),
        vec![],
        "nothing runs yet"
    );
    assert_eq!(
        ok(ctx.backend.remove_limit(&limit.name).await, "remove"),
        Some(limit.clone())
    );
    assert_eq!(
        ok(ctx.backend.remove_limit(&limit.name).await, "remove"),
        None
    );
    assert_eq!(
        ok(ctx.backend.remove_limit(&kinds.name).await, "remove"),
        Some(kinds)
    );
    assert_eq!(
        ok(ctx.backend.limits(Some(&ctx.ns)).await, "limits"),
        vec![]
    );
}

/// With a cap of 2 per tenant, eight claimers racing over 50 executions
/// of one tenant take exactly 2; each completion lets exactly one more
/// run; work without the tag is not limited; `limit_usage` counts the
/// runs per key.
pub async fn a_cap_holds_under_concurrent_claimers(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let limit = cap(&ctx, "cap", "tag:tenant", 2);
    set(&ctx, &limit).await;
    ctx.create_chunked((0..50).map(|_| tagged(&ctx, "job", "acme")).collect())
        .await;
    let race = || async {
        let mut tasks = Vec::new();
        for w in 0..8 {
            let ctx = ctx.clone();
            tasks.push(tokio::spawn(async move {
                let request =
                    ClaimRequest::new(ctx.ns.clone(), ctx.lane(), worker(&format!("w{w}")), 5);
                ok(ctx.backend.claim(request).await, "concurrent claim")
            }));
        }
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await.expect("claim task panicked"));
        }
        all
    };
    let first = race().await;
    assert_eq!(first.len(), 2, "the cap holds under 8 concurrent claimers");
    assert_eq!(race().await.len(), 0, "nothing more while both run");
    assert_eq!(
        ok(ctx.backend.limit_usage(&limit.name, 10).await, "usage"),
        vec![LimitUsage {
            name: limit.name.clone(),
            key_value: "acme".into(),
            running: 2,
            window_claims: 0,
        }]
    );
    ctx.complete(&first[0].lease, b"").await;
    let second = race().await;
    assert_eq!(second.len(), 1, "one completion frees one slot");
    ctx.complete(&first[1].lease, b"").await;
    ctx.complete(&second[0].lease, b"").await;
    assert_eq!(race().await.len(), 2);

    let free = ctx
        .create_chunked((0..3).map(|_| ctx.new_exec("job", b"")).collect())
        .await;
    let claimed: BTreeSet<_> = ctx
        .claim(ctx.claim_request(10))
        .await
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(
        claimed,
        free.into_iter().collect(),
        "untagged work is not limited"
    );
}

/// Every way a run ends frees its slot in the same atomic unit: with a
/// cap of 1 per lane, a second execution of the lane is claimable right
/// after the first one's run ends by complete, retry, final failure,
/// cancel, deadline expiry, reclaim, revoke, suspend, release, waiting
/// for children and pause — and never before.
pub async fn every_end_of_a_run_frees_its_slot(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    set(&ctx, &cap(&ctx, "per-lane", "lane", 1)).await;
    let ends = [
        "complete", "retry", "fail", "cancel", "expire", "reclaim", "revoke", "suspend", "release",
        "children", "pause",
    ];
    for end in ends {
        let l = lane(&format!("end-{end}"));
        let mut first = ctx
            .new_in(&l, "job", b"")
            .with_retry(no_backoff(3))
            .with_priority(1);
        if end == "expire" {
            first = first.with_deadline(ctx.after(1_000));
        }
        let first = ctx.create_id(first).await;
        let second = ctx.create_id(ctx.new_in(&l, "job", b"")).await;
        let request = ctx
            .claim_request(10)
            .with_lane(l.clone())
            .with_lease_ttl(ms(if end == "reclaim" { 500 } else { 60_000 }));
        let claims = ctx.claim(request.clone()).await;
        assert_eq!(
            claims.iter().map(|c| &c.id).collect::<Vec<_>>(),
            vec![&first],
            "{end}: the cap of 1 takes the first only"
        );
        let lease = &claims[0].lease;
        assert_eq!(
            claim_ids(&ctx, &l, 10).await.len(),
            0,
            "{end}: no slot before the run ends"
        );
        match end {
            "complete" => {
                ctx.complete(lease, b"").await;
            }
            "retry" => {
                ctx.fail(lease, Failure::retryable("again")).await;
            }
            "fail" => {
                ctx.fail(lease, Failure::permanent("no")).await;
            }
            "cancel" => {
                ctx.cancel(&first, None).await;
            }
            "expire" => {
                ctx.advance(1_001);
                assert_eq!(ctx.expire_all().await, 1, "{end}");
            }
            "reclaim" => {
                ctx.advance(501);
                assert_eq!(ctx.reclaim_all().await, 1, "{end}");
            }
            "revoke" => {
                ok(ctx.backend.revoke(&first).await, "revoke");
            }
            "suspend" => {
                ctx.suspend(lease, SuspendRequest::sleep(ms(60_000))).await;
            }
            "release" => {
                ok(ctx.backend.release(lease).await, "release");
            }
            "children" => {
                ctx.create_id(
                    ctx.new_in(&lane("kids"), "child", b"")
                        .with_parent(first.clone()),
                )
                .await;
                ok(ctx.backend.wait_children(lease).await, "wait_children");
            }
            "pause" => {
                ok(
                    ctx.backend.pause(&first, CancelScope::Execution).await,
                    "pause",
                );
            }
            _ => unreachable!(),
        }
        let next = ctx.claim(request).await;
        assert_eq!(next.len(), 1, "{end}: the ended run's slot is free");
        let expected: BTreeSet<&ExecutionId> =
            if matches!(end, "retry" | "reclaim" | "release" | "revoke") {
                // Back to waiting: either of the two may be next.
                [&first, &second].into_iter().collect()
            } else {
                [&second].into_iter().collect()
            };
        assert!(
            expected.contains(&next[0].id),
            "{end}: claimed {} of {expected:?}",
            next[0].id
        );
    }
}

/// A rate of 3 per second: a claim takes 3, then nothing until the oldest
/// leaves the window (exactly a second later); `explain` says `limited`
/// meanwhile and `limit_usage` counts the window.
pub async fn a_rate_spaces_claims(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let limit = Limit {
        name: limit_name(&ctx, "rate"),
        namespace: ctx.ns.clone(),
        lane: Some(ctx.lane()),
        key: LimitKey::Lane,
        max_running: None,
        rate: Some(Rate {
            count: 3,
            per: Duration::from_secs(1),
        }),
        fair: false,
    };
    set(&ctx, &limit).await;
    let ids = ctx
        .create_chunked((0..10).map(|_| ctx.new_exec("job", b"")).collect())
        .await;
    assert_eq!(ctx.claim(ctx.claim_request(10)).await.len(), 3);
    ctx.advance(400);
    assert_eq!(ctx.claim(ctx.claim_request(10)).await.len(), 0);
    let waiting = {
        let mut left = Vec::new();
        for id in &ids {
            if ctx.state(id).await == State::Waiting {
                left.push(id.clone());
            }
        }
        left
    };
    assert_eq!(waiting.len(), 7);
    let why = ok(ctx.backend.explain(&waiting[0]).await, "explain");
    assert_eq!(why.reason, Some("limited"), "{}", why.detail);
    assert!(
        why.detail.contains(limit.name.as_str()),
        "the sentence names the limit: {}",
        why.detail
    );
    assert_eq!(
        ok(ctx.backend.limit_usage(&limit.name, 10).await, "usage"),
        vec![LimitUsage {
            name: limit.name.clone(),
            key_value: "main".into(),
            running: 3,
            window_claims: 3,
        }]
    );
    ctx.advance(599);
    assert_eq!(
        ctx.claim(ctx.claim_request(10)).await.len(),
        0,
        "999 ms later"
    );
    ctx.advance(1);
    assert_eq!(
        ctx.claim(ctx.claim_request(10)).await.len(),
        3,
        "a second later"
    );
    ctx.advance(1_000);
    assert_eq!(ctx.claim(ctx.claim_request(2)).await.len(), 2);
    ctx.advance(500);
    assert_eq!(
        ctx.claim(ctx.claim_request(10)).await.len(),
        1,
        "the window's third"
    );
    assert_eq!(ctx.claim(ctx.claim_request(10)).await.len(), 0);
}

/// A key at its cap never holds back another key's work behind it: a
/// thousand executions of one tenant ahead (higher priority, earlier), a
/// cap of 1, and one of another tenant behind is taken by the very next
/// claim; so is untagged work.
pub async fn a_key_without_room_never_holds_back_another(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    set(&ctx, &cap(&ctx, "noisy", "tag:tenant", 1)).await;
    ctx.create_chunked(
        (0..1_000)
            .map(|_| tagged(&ctx, "job", "noisy").with_priority(5))
            .collect(),
    )
    .await;
    let quiet = ctx.create_id(tagged(&ctx, "job", "quiet")).await;
    let first = ctx.claim(ctx.claim_request(1)).await;
    assert_eq!(first.len(), 1);
    assert_eq!(
        first[0].tags.get(&tag("tenant")).map(String::as_str),
        Some("noisy")
    );
    let next = ctx.claim(ctx.claim_request(1)).await;
    assert_eq!(
        next.iter().map(|c| &c.id).collect::<Vec<_>>(),
        vec![&quiet],
        "the quiet tenant's work behind the noisy backlog"
    );
    let free = ctx.create_id(ctx.new_exec("job", b"")).await;
    let after = ctx.claim(ctx.claim_request(5)).await;
    assert_eq!(after.iter().map(|c| &c.id).collect::<Vec<_>>(), vec![&free]);
}

/// A limit set after work was submitted and claimed applies at once: what
/// already runs counts (a cap of 2 with 2 running claims nothing more),
/// waiting work is explained `limited`; raising the cap lets one more in;
/// removing the limit frees everything.
pub async fn a_limit_set_later_counts_what_runs_and_removal_frees(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let ids = ctx
        .create_chunked((0..6).map(|_| tagged(&ctx, "job", "acme")).collect())
        .await;
    assert_eq!(ctx.claim(ctx.claim_request(2)).await.len(), 2);
    let mut limit = cap(&ctx, "later", "tag:tenant", 2);
    set(&ctx, &limit).await;
    ctx.assert_nothing_to_claim().await;
    let mut waiting = Vec::new();
    for id in &ids {
        if ctx.state(id).await == State::Waiting {
            waiting.push(id.clone());
        }
    }
    let why = ok(ctx.backend.explain(&waiting[0]).await, "explain");
    assert_eq!(why.reason, Some("limited"), "{}", why.detail);
    limit.max_running = Some(3);
    set(&ctx, &limit).await;
    assert_eq!(
        ctx.claim(ctx.claim_request(10)).await.len(),
        1,
        "raised to 3"
    );
    ctx.assert_nothing_to_claim().await;
    assert!(ok(ctx.backend.remove_limit(&limit.name).await, "remove").is_some());
    assert_eq!(ctx.claim(ctx.claim_request(10)).await.len(), 3, "removed");
    let why = ok(ctx.backend.explain(&waiting[0]).await, "explain");
    assert_ne!(why.reason, Some("limited"));
}

/// Two limits on one execution both hold (a cap of 2 per tenant and of 1
/// per kind), each in claim order; a limit of one lane leaves other lanes
/// alone; a cap of 0 holds its key's work back entirely.
pub async fn two_limits_on_one_execution_both_hold(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    set(&ctx, &cap(&ctx, "tenant", "tag:tenant", 2)).await;
    set(&ctx, &cap(&ctx, "kind", "kind", 1)).await;
    let mut ids = Vec::new();
    for (i, (k, t)) in [("x", "a"), ("x", "a"), ("y", "a"), ("y", "a"), ("x", "b")]
        .into_iter()
        .enumerate()
    {
        let priority = 10 - i32::try_from(i).expect("small");
        ids.push(
            ctx.create_id(tagged(&ctx, k, t).with_priority(priority))
                .await,
        );
    }
    let first: Vec<_> = ctx.claim(ctx.claim_request(10)).await;
    assert_eq!(
        first.iter().map(|c| &c.id).collect::<Vec<_>>(),
        vec![&ids[0], &ids[2]],
        "a/x, then a/y (kind x full for the second a/x and for b/x)"
    );
    ctx.complete(&first[0].lease, b"").await;
    let second = ctx.claim(ctx.claim_request(10)).await;
    assert_eq!(
        second.iter().map(|c| &c.id).collect::<Vec<_>>(),
        vec![&ids[1]],
        "kind x has room again; tenant a has 2 running after it"
    );

    let other = lane("other");
    let mut per_lane = cap(&ctx, "only-main", "kind", 0);
    per_lane.lane = Some(ctx.lane());
    set(&ctx, &per_lane).await;
    let elsewhere = ctx.create_id(ctx.new_in(&other, "w", b"")).await;
    let held = ctx.create_id(ctx.new_exec("z", b"")).await;
    assert_eq!(
        claim_ids(&ctx, &ctx.lane(), 10).await.len(),
        0,
        "cap 0 holds main"
    );
    let why = ok(ctx.backend.explain(&held).await, "explain");
    assert_eq!(why.reason, Some("limited"), "{}", why.detail);
    let taken = claim_ids(&ctx, &other, 10).await;
    assert_eq!(
        taken.iter().map(|c| &c.id).collect::<Vec<_>>(),
        vec![&elsewhere],
        "the limit of lane main leaves lane other alone"
    );
}
