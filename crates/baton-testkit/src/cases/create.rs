//! `create`: the state a submission starts in and every field it carries.

use super::prelude::*;

/// A submission without delay is `waiting`; describe answers every field as
/// submitted, `created_at = updated_at = now`, and nothing of later states.
pub async fn create_waiting_snapshot(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let new = ctx.new_exec("email.send", br#"{"to":"a@example.com"}"#);
    let out = ctx.create_one(new.clone()).await;
    assert!(out.created, "a first submission must be created");
    assert_eq!(out.state, State::Waiting, "no delay: waiting");
    assert!(
        out.id.check_partition(ctx.backend.partitions()).is_ok(),
        "the id must belong to this deployment's partitioning"
    );
    let expected = expected_snapshot(&out.id, &new, START, State::Waiting, None);
    assert_eq!(ctx.describe(&out.id).await, expected);
    let lane_counts = ctx.lane_counts(&ctx.lane()).await;
    assert_eq!(
        lane_counts,
        StateCounts {
            waiting: 1,
            ..StateCounts::default()
        }
    );
}

/// A positive `delay_ms` makes the execution `delayed` with
/// `run_at = now + delay`; it is not claimable before then.
pub async fn create_with_delay_is_delayed(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let new = ctx.new_exec("job", b"x").with_delay_ms(5_000);
    let out = ctx.create_one(new.clone()).await;
    assert_eq!(out.state, State::Delayed, "a delayed submission");
    let expected = expected_snapshot(&out.id, &new, START, State::Delayed, Some(ctx.after(5_000)));
    assert_eq!(ctx.describe(&out.id).await, expected);
    ctx.assert_nothing_to_claim().await;
}

/// A future `run_at` makes the execution `delayed` until then; once promoted
/// it can be claimed.
pub async fn create_with_future_run_at_is_delayed(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let run_at = ctx.after(60_000);
    let new = ctx.new_exec("job", b"x").with_run_at(run_at);
    let out = ctx.create_one(new.clone()).await;
    assert_eq!(out.state, State::Delayed);
    assert_eq!(
        ctx.describe(&out.id).await,
        expected_snapshot(&out.id, &new, START, State::Delayed, Some(run_at))
    );
    ctx.assert_nothing_to_claim().await;
    ctx.advance(60_001);
    assert_eq!(ctx.promote_all().await, 1, "the due execution is promoted");
    assert_eq!(ctx.claim_one().await.id, out.id);
}

/// A `run_at` in the past or exactly now is eligible at once: `waiting`, with
/// no `run_at` in the snapshot (it was always eligible), and claimable.
pub async fn create_with_past_or_present_run_at_is_waiting(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    ctx.advance(10_000);
    let past = ctx
        .new_exec("job", b"past")
        .with_run_at(START.saturating_add(ms(5_000)));
    let present = ctx.new_exec("job", b"present").with_run_at(ctx.now());
    let outs = ctx.create(vec![past.clone(), present.clone()]).await;
    for (out, new) in outs.iter().zip([&past, &present]) {
        assert_eq!(out.state, State::Waiting, "a start time not in the future");
        assert_eq!(
            ctx.describe(&out.id).await,
            expected_snapshot(&out.id, new, ctx.now(), State::Waiting, None)
        );
    }
    let claimed: BTreeSet<_> = ctx
        .claim(ctx.claim_request(10))
        .await
        .into_iter()
        .map(|c| c.id)
        .collect();
    let created: BTreeSet<_> = outs.into_iter().map(|o| o.id).collect();
    assert_eq!(claimed, created, "both are claimable at once");
}

/// Every field of a submission comes back from describe and list exactly:
/// binary payload, negative priority, tags (unicode and empty values), retry
/// policy with a fractional multiplier, idempotency key, capabilities and
/// deadline. (A parent cannot go with an idempotency key; children have
/// cases of their own in `flows.rs`.)
pub async fn create_roundtrips_every_field(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let retry = RetryPolicy {
        max_attempts: 7,
        backoff: Backoff {
            initial_ms: 250,
            max_ms: 9_000,
            multiplier: 1.5,
            jitter: true,
        },
    };
    let new = NewExecution::new(
        ctx.ns.clone(),
        lane("reports.v2"),
        kind("report:build"),
        vec![0, 1, 2, 0x7f, 0x80, 0xfe, 0xff],
    )
    .with_priority(-7)
    .with_delay_ms(2_500)
    .with_deadline(ctx.after(3_600_000))
    .with_retry(retry)
    .with_idempotency_key(ikey("order 42/ä"))
    .with_tag(tag("customer"), "Zoë ☕")
    .with_tag(tag("tier"), "")
    .with_capability(cap("gpu"))
    .with_capability(cap("region:eu"));
    let id = ctx.create_id(new.clone()).await;
    let expected = expected_snapshot(&id, &new, START, State::Delayed, Some(ctx.after(2_500)));
    assert_eq!(ctx.describe(&id).await, expected);
    let listed = ctx
        .list_all(
            &ListFilter::namespace(ctx.ns.clone()).with_lane(lane("reports.v2")),
            10,
        )
        .await;
    assert_eq!(listed, vec![expected], "list answers the same snapshot");
}

/// A batch answers one outcome per item in request order, each with the
/// state its item asked for; an empty payload is stored as empty.
pub async fn create_batch_answers_in_request_order(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let items = vec![
        ctx.new_exec("a", b""),
        ctx.new_exec("b", b"bb").with_delay_ms(1_000),
        ctx.new_exec("c", b"ccc").with_priority(3),
        ctx.new_exec("d", b"dddd").with_run_at(ctx.after(2_000)),
        ctx.new_exec("e", b"eeeee"),
    ];
    let outs = ctx.create(items.clone()).await;
    let states: Vec<_> = outs.iter().map(|o| o.state).collect();
    assert_eq!(
        states,
        [
            State::Waiting,
            State::Delayed,
            State::Waiting,
            State::Delayed,
            State::Waiting
        ]
    );
    let distinct: BTreeSet<_> = outs.iter().map(|o| o.id.clone()).collect();
    assert_eq!(distinct.len(), 5, "five distinct ids");
    for (out, new) in outs.iter().zip(&items) {
        assert!(out.created);
        let snap = ctx.describe(&out.id).await;
        assert_eq!(
            snap.kind, new.kind,
            "outcome order must follow request order"
        );
        assert_eq!(snap.payload, new.payload);
        assert_eq!(snap.priority, new.priority);
    }
    assert_eq!(
        ctx.lane_counts(&ctx.lane()).await,
        StateCounts {
            waiting: 3,
            delayed: 2,
            ..StateCounts::default()
        }
    );
}

/// A payload of exactly the limit is accepted and stored byte for byte.
pub async fn create_accepts_max_size_payload(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let max = ctx.limits().max_payload_bytes;
    let payload: Vec<u8> = (0..max).map(|i| (i % 251) as u8).collect();
    let id = ctx.create_id(ctx.new_exec("big", &payload)).await;
    let snap = ctx.describe(&id).await;
    assert_eq!(snap.payload.len(), max);
    assert!(
        snap.payload == payload,
        "the payload must come back unchanged"
    );
    let claim = ctx.claim_one().await;
    assert!(
        claim.payload == payload,
        "the claim carries the whole payload"
    );
}
