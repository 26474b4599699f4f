//! Bad input: typed errors naming the field, and nothing written.

use baton_core::{
    CapabilityName, IdempotencyKey, Kind, Lane, ListCursor, MAX_CAPABILITIES, MAX_TAG_VALUE_LEN,
    MAX_TAGS, TagKey, WorkerId,
};

use super::prelude::*;

/// Asserts the case's namespace holds nothing at all.
async fn assert_nothing_created(ctx: &Ctx, what: &str) {
    assert!(ctx.counts().await.is_empty(), "{what} created something");
    let listed = ctx
        .list_all(&ListFilter::namespace(ctx.ns.clone()), 100)
        .await;
    assert!(listed.is_empty(), "{what} created {listed:?}");
}

/// Asserts every create in `bad` is `InvalidInput` naming `field`, and that
/// nothing was created.
async fn assert_create_rejected(ctx: &Ctx, bad: Vec<(NewExecution, &str, &str)>) {
    for (new, field, what) in bad {
        let got = expect_invalid(ctx.backend.create(vec![new]).await, what);
        assert_eq!(got, field, "{what}: the error must name the field");
    }
    assert_nothing_created(ctx, "a rejected create").await;
}

/// Malformed ids, lease tokens, cursors and names do not parse: each is
/// `InvalidInput`, and so nothing reaches the backend.
pub async fn malformed_ids_and_names_are_rejected(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let good = ctx.unknown_id().to_string();
    let invalid = |r: Result<(), EngineError>, what: &str| {
        assert!(
            matches!(r, Err(EngineError::InvalidInput { .. })),
            "{what}: expected InvalidInput, got {r:?}"
        );
    };
    for bad in [
        "",
        "not-an-id",
        &good[..good.len() - 1],
        &good.to_uppercase(),
        &good.replacen("{p:", "{p:0", 1),
    ] {
        invalid(bad.parse::<ExecutionId>().map(drop), &format!("id {bad:?}"));
    }
    for bad in [
        "nope".to_string(),
        format!("{good}.0.0000000000000001"),
        format!("{good}.1.xyz"),
    ] {
        invalid(
            bad.parse::<LeaseToken>().map(drop),
            &format!("lease {bad:?}"),
        );
    }
    invalid("garbage".parse::<ListCursor>().map(drop), "cursor");
    invalid(Namespace::new("").map(drop), "empty namespace");
    invalid(Namespace::new("x".repeat(65)).map(drop), "long namespace");
    invalid(
        Namespace::new("has space").map(drop),
        "namespace with a space",
    );
    invalid(Lane::new("").map(drop), "empty lane");
    invalid(Lane::new("a/b").map(drop), "lane with a slash");
    invalid(Lane::new("x".repeat(65)).map(drop), "long lane");
    invalid(Kind::new("").map(drop), "empty kind");
    invalid(Kind::new("x".repeat(129)).map(drop), "long kind");
    invalid(WorkerId::new("").map(drop), "empty worker id");
    invalid(TagKey::new("no=way").map(drop), "tag key with =");
    invalid(CapabilityName::new("").map(drop), "empty capability");
    invalid(IdempotencyKey::new("").map(drop), "empty idempotency key");
    invalid(
        IdempotencyKey::new("a\nb").map(drop),
        "idempotency key with a newline",
    );
    invalid(
        IdempotencyKey::new("k".repeat(257)).map(drop),
        "long idempotency key",
    );
    invalid("Waiting".parse::<State>().map(drop), "state");
    invalid(
        "2030-13-01T00:00:00Z".parse::<Timestamp>().map(drop),
        "timestamp",
    );
    assert_nothing_created(&ctx, "parsing").await;
}

/// A valid id naming no execution is `NotFound` for describe, cancel,
/// attempts, complete and fail, and `lost` for renew; nothing is created.
pub async fn unknown_ids_are_not_found(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let unknown = ctx.unknown_id();
    let lease = LeaseToken::new(unknown.clone(), 1, 1);
    expect_not_found(ctx.backend.describe(&unknown).await, &unknown, "describe");
    expect_not_found(
        ctx.backend.cancel(&unknown, CancelRequest::default()).await,
        &unknown,
        "cancel",
    );
    expect_not_found(ctx.backend.attempts(&unknown).await, &unknown, "attempts");
    expect_not_found(
        ctx.backend.complete(&lease, b"x".to_vec()).await,
        &unknown,
        "complete",
    );
    expect_not_found(
        ctx.backend.fail(&lease, Failure::permanent("x")).await,
        &unknown,
        "fail",
    );
    let out = ctx.renew("w1", 30_000, vec![lease]).await;
    assert_eq!(
        (out[0].status, out[0].expires_at),
        (RenewStatus::Lost, None)
    );
    assert_nothing_created(&ctx, "calls with an unknown id").await;
}

/// An id from a deployment with another partition count is `InvalidInput`
/// for describe, cancel, attempts, complete and fail; renew reports such a
/// lease `lost`.
pub async fn ids_of_another_deployment_are_invalid(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let existing = ctx.create_waiting().await;
    let before = ctx.record(&existing).await;
    let foreign = ctx.foreign_id();
    let lease = LeaseToken::new(foreign.clone(), 1, 1);
    expect_invalid(ctx.backend.describe(&foreign).await, "describe");
    expect_invalid(
        ctx.backend.cancel(&foreign, CancelRequest::default()).await,
        "cancel",
    );
    expect_invalid(ctx.backend.attempts(&foreign).await, "attempts");
    expect_invalid(
        ctx.backend.complete(&lease, b"x".to_vec()).await,
        "complete",
    );
    expect_invalid(
        ctx.backend.fail(&lease, Failure::permanent("x")).await,
        "fail",
    );
    let out = ctx.renew("w1", 30_000, vec![lease]).await;
    assert_eq!(
        (out[0].status, out[0].expires_at),
        (RenewStatus::Lost, None),
        "renew answers per lease: a foreign lease is lost, not a failed heartbeat"
    );
    ctx.assert_unchanged(&existing, &before, "calls with a foreign id")
        .await;
    assert_eq!(ctx.lane_counts(&ctx.lane()).await.total(), 1);
}

/// A payload one byte over the limit is `InvalidInput` naming `payload`.
pub async fn create_rejects_oversize_payload(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let too_big = vec![0u8; ctx.limits().max_payload_bytes + 1];
    assert_create_rejected(
        &ctx,
        vec![(ctx.new_exec("job", &too_big), "payload", "oversize payload")],
    )
    .await;
}

/// A negative delay, or a delay together with `run_at`, is `InvalidInput`
/// naming `delay_ms`.
pub async fn create_rejects_negative_delay_and_conflicting_start(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let run_at = ctx.after(5_000);
    assert_create_rejected(
        &ctx,
        vec![
            (
                ctx.new_exec("job", b"").with_delay_ms(-1),
                "delay_ms",
                "negative delay",
            ),
            (
                ctx.new_exec("job", b"").with_delay_ms(i64::MIN),
                "delay_ms",
                "very negative delay",
            ),
            (
                ctx.new_exec("job", b"")
                    .with_delay_ms(1_000)
                    .with_run_at(run_at),
                "delay_ms",
                "delay and run_at",
            ),
        ],
    )
    .await;
}

/// Zero or too many attempts and out-of-range backoff are `InvalidInput`
/// naming the field.
pub async fn create_rejects_invalid_retry_policy(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let with = |max_attempts: u32, backoff: Backoff| {
        ctx.new_exec("job", b"").with_retry(RetryPolicy {
            max_attempts,
            backoff,
        })
    };
    let base = Backoff::default();
    assert_create_rejected(
        &ctx,
        vec![
            (with(0, base), "max_attempts", "zero attempts"),
            (
                with(RetryPolicy::MAX_ATTEMPTS + 1, base),
                "max_attempts",
                "too many attempts",
            ),
            (
                with(
                    3,
                    Backoff {
                        multiplier: 0.5,
                        ..base
                    },
                ),
                "backoff.multiplier",
                "multiplier below 1",
            ),
            (
                with(
                    3,
                    Backoff {
                        multiplier: f64::NAN,
                        ..base
                    },
                ),
                "backoff.multiplier",
                "NaN multiplier",
            ),
            (
                with(
                    3,
                    Backoff {
                        initial_ms: 10,
                        max_ms: 5,
                        ..base
                    },
                ),
                "backoff.initial_ms",
                "initial above max",
            ),
            (
                with(
                    3,
                    Backoff {
                        max_ms: Backoff::MAX_DELAY_MS + 1,
                        ..base
                    },
                ),
                "backoff.max_ms",
                "max above 30 days",
            ),
        ],
    )
    .await;
}

/// A deadline now, in the past, or not after the start time is `InvalidInput`
/// naming `deadline`.
pub async fn create_rejects_deadline_not_in_future(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    ctx.advance(10_000);
    assert_create_rejected(
        &ctx,
        vec![
            (
                ctx.new_exec("job", b"").with_deadline(ctx.now()),
                "deadline",
                "deadline now",
            ),
            (
                ctx.new_exec("job", b"").with_deadline(START),
                "deadline",
                "deadline in the past",
            ),
            (
                ctx.new_exec("job", b"")
                    .with_delay_ms(10_000)
                    .with_deadline(ctx.after(5_000)),
                "deadline",
                "deadline before the delayed start",
            ),
            (
                ctx.new_exec("job", b"")
                    .with_run_at(ctx.after(5_000))
                    .with_deadline(ctx.after(5_000)),
                "deadline",
                "deadline at the start",
            ),
        ],
    )
    .await;
}

/// An empty batch and a batch over `max_batch` are `InvalidInput`.
pub async fn create_rejects_empty_and_oversize_batch(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    expect_invalid(ctx.backend.create(vec![]).await, "empty batch");
    let oversize: Vec<_> = (0..=ctx.limits().max_batch)
        .map(|_| ctx.new_exec("job", b""))
        .collect();
    expect_invalid(ctx.backend.create(oversize).await, "oversize batch");
    assert_nothing_created(&ctx, "a rejected batch").await;
}

/// One invalid item rejects the whole batch: nothing is created, not even
/// the valid items before it, and their idempotency keys stay free.
pub async fn create_invalid_item_rejects_whole_batch(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let too_big = vec![0u8; ctx.limits().max_payload_bytes + 1];
    let good = |i: u8| {
        ctx.new_exec("job", &[i])
            .with_idempotency_key(ikey(&format!("key-{i}")))
    };
    let batches = [
        vec![good(1), good(2), ctx.new_exec("job", &too_big), good(3)],
        vec![ctx.new_exec("job", b"").with_delay_ms(-5), good(1)],
        vec![
            good(1),
            good(2),
            good(3),
            ctx.new_exec("job", b"")
                .with_retry(RetryPolicy::attempts(0)),
        ],
    ];
    for (i, batch) in batches.into_iter().enumerate() {
        expect_invalid(ctx.backend.create(batch).await, &format!("batch {i}"));
    }
    assert_nothing_created(&ctx, "batches with an invalid item").await;
    let out = ctx.create_one(good(1)).await;
    assert!(out.created, "the key of a rejected batch was never taken");
}

/// Too many tags, an oversize or control-character tag value, and too many
/// capabilities are `InvalidInput` naming the field.
pub async fn create_rejects_invalid_tags_and_capabilities(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let mut many_tags = ctx.new_exec("job", b"");
    for i in 0..=MAX_TAGS {
        many_tags = many_tags.with_tag(tag(&format!("t{i}")), "v");
    }
    let mut many_caps = ctx.new_exec("job", b"");
    for i in 0..=MAX_CAPABILITIES {
        many_caps = many_caps.with_capability(cap(&format!("c{i}")));
    }
    assert_create_rejected(
        &ctx,
        vec![
            (many_tags, "tags", "too many tags"),
            (
                ctx.new_exec("job", b"")
                    .with_tag(tag("t"), "v".repeat(MAX_TAG_VALUE_LEN + 1)),
                "tag value",
                "oversize tag value",
            ),
            (
                ctx.new_exec("job", b"").with_tag(tag("t"), "a\u{0}b"),
                "tag value",
                "tag value with a control character",
            ),
            (many_caps, "capabilities", "too many capabilities"),
        ],
    )
    .await;
}

/// A parent id from a deployment with another partition count is
/// `InvalidInput`: every id a call carries is checked.
pub async fn create_rejects_parent_of_another_deployment(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let new = ctx.new_exec("child", b"").with_parent(ctx.foreign_id());
    expect_invalid(ctx.backend.create(vec![new]).await, "foreign parent");
    assert_nothing_created(&ctx, "a create with a foreign parent").await;
}

/// A NUL character in free text (a failure's error, a cancel reason) is
/// `InvalidInput` naming the field on every backend, and changes nothing:
/// the execution keeps running under the same lease, and can then be
/// failed and cancelled with clean text.
pub async fn text_with_nul_is_rejected(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let id = ctx.create_waiting().await;
    let claim = ctx.claim_one().await;
    for text in ["\0", "disk\0full", "trailing\0"] {
        let got = expect_invalid(
            ctx.backend
                .fail(&claim.lease, Failure::permanent(text))
                .await,
            "fail with a NUL in its error",
        );
        assert_eq!(got, "error");
        let got = expect_invalid(
            ctx.backend.cancel(&id, CancelRequest::because(text)).await,
            "cancel with a NUL in its reason",
        );
        assert_eq!(got, "reason");
    }
    let snap = ctx.describe(&id).await;
    assert_eq!(snap.state, State::Running);
    assert_eq!((snap.last_error, snap.cancel_reason), (None, None));
    assert_eq!(ctx.attempts(&id).await[0].outcome, None);
    let snap = ctx
        .fail(&claim.lease, Failure::retryable("disk full"))
        .await;
    assert_eq!(snap.last_error.as_deref(), Some("disk full"));
    let snap = ctx.cancel(&id, Some("not needed")).await;
    assert_eq!(snap.cancel_reason.as_deref(), Some("not needed"));
}
