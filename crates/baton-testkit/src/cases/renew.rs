//! `renew`: extending leases, and every way a lease is lost.

use super::prelude::*;

/// Renewing moves the expiry to `now + lease_ttl` and changes nothing else;
/// the execution is then not reclaimed at the original expiry and its worker
/// can still complete.
pub async fn renew_extends_lease(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let id = ctx.create_waiting().await;
    let claim = ctx.claim_one_with("w1", 30_000).await;
    let claimed = ctx.describe(&id).await;
    ctx.advance(20_000);
    let out = ctx.renew("w1", 30_000, vec![claim.lease.clone()]).await;
    let new_expiry = ctx.after(30_000);
    assert_eq!(out[0].status, RenewStatus::Renewed);
    assert_eq!(out[0].expires_at, Some(new_expiry));
    let mut expected = claimed;
    expected.lease_expires_at = Some(new_expiry);
    assert_eq!(
        ctx.describe(&id).await,
        expected,
        "only the expiry moves; a renew is no state change, so updated_at stays"
    );
    ctx.advance(20_000);
    let report = ok(
        ctx.backend
            .reclaim_expired_leases(id.partition(), 100)
            .await,
        "reclaim",
    );
    assert_eq!(
        report.processed, 0,
        "past the original expiry, within the renewed one"
    );
    assert_eq!(
        report.next_due,
        Some(new_expiry),
        "the renewed lease falls due next"
    );
    let done = ctx.complete(&claim.lease, b"ok").await;
    assert_eq!(done.state, State::Completed);
}

/// One renew call answers each lease in request order: renewed, cancelled,
/// or lost (expired, unknown execution, forged nonce), with an expiry only
/// when renewed.
pub async fn renew_batch_answers_mixed_outcomes_in_request_order(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let c = ctx
        .create_id(ctx.new_exec("short", b"").with_priority(10))
        .await;
    let a = ctx.create_waiting().await;
    ctx.advance(1);
    let b = ctx.create_waiting().await;
    let short = ctx.claim_one_with("w1", 1_000).await;
    assert_eq!(short.id, c);
    let long = ctx
        .claim(ctx.claim_request(2).with_lease_ttl(ms(60_000)))
        .await;
    assert_eq!(
        long.iter().map(|c| c.id.clone()).collect::<Vec<_>>(),
        vec![a.clone(), b.clone()]
    );
    let (lease_a, lease_b) = (long[0].lease.clone(), long[1].lease.clone());
    ctx.cancel(&b, Some("not needed")).await;
    ctx.advance(2_000);
    let c_before = ctx.record(&c).await;
    let unknown = LeaseToken::new(ctx.unknown_id(), 1, 42);
    let forged = LeaseToken::new(a.clone(), 1, lease_a.nonce() ^ 1);
    let out = ctx
        .renew(
            "w1",
            30_000,
            vec![
                short.lease.clone(),
                lease_a.clone(),
                unknown,
                lease_b,
                forged,
            ],
        )
        .await;
    let got: Vec<_> = out.iter().map(|o| (o.status, o.expires_at)).collect();
    assert_eq!(
        got,
        vec![
            (RenewStatus::Lost, None),
            (RenewStatus::Renewed, Some(ctx.after(30_000))),
            (RenewStatus::Lost, None),
            (RenewStatus::Cancelled, None),
            (RenewStatus::Lost, None),
        ],
        "expired, live, unknown, cancelled, forged"
    );
    ctx.assert_unchanged(&c, &c_before, "renewing an expired lease")
        .await;
    assert_eq!(
        ctx.describe(&a).await.lease_expires_at,
        Some(ctx.after(30_000))
    );
    assert_eq!(ctx.complete(&lease_a, b"").await.state, State::Completed);
}

/// A lease renewed by a worker that does not hold it is lost and changes
/// nothing; its holder can still renew it.
pub async fn renew_by_another_worker_is_lost(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let id = ctx.create_waiting().await;
    let claim = ctx.claim_one_with("w1", 30_000).await;
    ctx.advance(1_000);
    let before = ctx.record(&id).await;
    let out = ctx.renew("w2", 30_000, vec![claim.lease.clone()]).await;
    assert_eq!(
        (out[0].status, out[0].expires_at),
        (RenewStatus::Lost, None)
    );
    ctx.assert_unchanged(&id, &before, "another worker's renew")
        .await;
    let out = ctx.renew("w1", 30_000, vec![claim.lease.clone()]).await;
    assert_eq!(out[0].status, RenewStatus::Renewed, "the holder still can");
}

/// An expired lease is never revived, even before the scanner reclaims it.
pub async fn renew_cannot_revive_an_expired_lease(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let id = ctx.create_waiting().await;
    let claim = ctx.claim_one_with("w1", 1_000).await;
    ctx.advance(1_001);
    let before = ctx.record(&id).await;
    let out = ctx.renew("w1", 60_000, vec![claim.lease.clone()]).await;
    assert_eq!(
        (out[0].status, out[0].expires_at),
        (RenewStatus::Lost, None)
    );
    ctx.assert_unchanged(&id, &before, "renewing an expired lease")
        .await;
    let report = ok(
        ctx.backend
            .reclaim_expired_leases(id.partition(), 100)
            .await,
        "reclaim",
    );
    assert_eq!(report.processed, 1, "still expired, so reclaimed");
}

/// A lease whose attempt completed is lost, not renewed or cancelled.
pub async fn renew_after_complete_is_lost(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let id = ctx.create_waiting().await;
    let claim = ctx.claim_one().await;
    ctx.complete(&claim.lease, b"done").await;
    let before = ctx.record(&id).await;
    let out = ctx.renew("w1", 30_000, vec![claim.lease.clone()]).await;
    assert_eq!(
        (out[0].status, out[0].expires_at),
        (RenewStatus::Lost, None)
    );
    ctx.assert_unchanged(&id, &before, "renewing a completed attempt")
        .await;
}

/// Bad renew requests are `InvalidInput` and change nothing: no leases, more
/// than the batch limit, a TTL outside the limits.
pub async fn renew_rejects_invalid_requests(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let id = ctx.create_waiting().await;
    let claim = ctx.claim_one().await;
    ctx.advance(1_000);
    let before = ctx.record(&id).await;
    let limits = ctx.limits();
    let request = |ttl: Duration, leases: Vec<LeaseToken>| baton_core::RenewRequest {
        worker_id: worker("w1"),
        lease_ttl: ttl,
        leases,
    };
    let one = vec![claim.lease.clone()];
    let mut bad = vec![
        (request(ms(30_000), vec![]), "no leases"),
        (
            request(ms(30_000), vec![claim.lease.clone(); limits.max_batch + 1]),
            "more leases than max_batch",
        ),
        (
            request(limits.max_lease + ms(1), one.clone()),
            "ttl above max_lease",
        ),
    ];
    if limits.min_lease > Duration::ZERO {
        let short = limits.min_lease - ms(1).min(limits.min_lease);
        bad.push((request(short, one), "ttl below min_lease"));
    }
    for (req, what) in bad {
        expect_invalid(ctx.backend.renew(req).await, what);
    }
    ctx.assert_unchanged(&id, &before, "rejected renews").await;
}
