//! Fair limits: claims take turns between a limit's keys, within one
//! priority; a key without room loses its turn; a retried execution
//! queues behind its own key's work; a fair limit set later orders the
//! work that comes after it.
//!
//! A backend may give turns per partition (Valkey does: each key's work
//! spreads over the partitions), so the cases that check an exact order
//! make their executions children of one root: a flow lives in its root's
//! partition.

use baton_core::{Lane, Limit, LimitKey, LimitName};

use super::prelude::*;

fn fair(ctx: &Ctx, suffix: &str, key: LimitKey) -> Limit {
    Limit {
        name: LimitName::new(format!("{}-{suffix}", ctx.ns)).expect("valid limit name"),
        namespace: ctx.ns.clone(),
        lane: None,
        key,
        max_running: None,
        rate: None,
        fair: true,
    }
}

fn tenant_key() -> LimitKey {
    "tag:tenant".parse().expect("valid limit key")
}

/// A root in lane `roots` (never claimed by the cases' claims of the
/// default lane) whose children, in the default lane, share its partition.
async fn root(ctx: &Ctx) -> ExecutionId {
    let roots = Lane::new("roots").expect("valid lane");
    ctx.create_id(ctx.new_in(&roots, "root", b"")).await
}

/// A child of `root` tagged `tenant=<tenant>` (no tag for `""`).
fn child(ctx: &Ctx, root: &ExecutionId, tenant: &str) -> NewExecution {
    let new = ctx.new_exec("job", b"").with_parent(root.clone());
    if tenant.is_empty() {
        new
    } else {
        new.with_tag(tag("tenant"), tenant)
    }
}

/// `n` children of `root` for `tenant`, submitted in one call.
async fn submit(ctx: &Ctx, root: &ExecutionId, tenant: &str, n: usize) -> Vec<ExecutionId> {
    let items = (0..n).map(|_| child(ctx, root, tenant)).collect();
    ctx.create(items).await.into_iter().map(|o| o.id).collect()
}

fn tenant_of(claim: &Claim) -> String {
    claim.tags.get(&tag("tenant")).cloned().unwrap_or_default()
}

/// One claim at a time, `n` times: the tenants in the order claimed.
async fn claim_tenants(ctx: &Ctx, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for i in 0..n {
        let claims = ctx.claim(ctx.claim_request(1)).await;
        assert_eq!(claims.len(), 1, "claim {i} of {n} found work");
        out.push(tenant_of(&claims[0]));
    }
    out
}

fn set_of(tenants: &[String]) -> BTreeSet<&str> {
    tenants.iter().map(String::as_str).collect()
}

/// A fair-only limit (no cap, no rate) is stored and listed as fair; a
/// tenant that submitted twelve executions before three others submitted
/// three each (one of them without the tag: the key `""`) is served one
/// per round while the others have work — every four claims hold one of
/// each — and alone after.
pub async fn a_fair_limit_rotates_between_keys(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let limit = fair(&ctx, "turns", tenant_key());
    assert_eq!(ok(ctx.backend.set_limit(&limit).await, "set_limit"), None);
    assert_eq!(
        ok(ctx.backend.limits(Some(&ctx.ns)).await, "limits"),
        vec![limit.clone()],
        "a fair-only limit is kept as given"
    );
    let root = root(&ctx).await;
    submit(&ctx, &root, "big", 12).await;
    for tenant in ["b", "c", ""] {
        submit(&ctx, &root, tenant, 3).await;
    }
    let order = claim_tenants(&ctx, 12).await;
    for round in order.chunks(4) {
        assert_eq!(
            set_of(round),
            BTreeSet::from(["", "b", "big", "c"]),
            "each round serves every key once: {order:?}"
        );
    }
    let rest = claim_tenants(&ctx, 9).await;
    assert!(rest.iter().all(|t| t == "big"), "{rest:?}");
    ctx.assert_nothing_to_claim().await;
}

/// Priority comes first: a later, higher-priority execution of the busy
/// key is claimed before everything; below it, one claim of many takes the
/// keys in turns (the answer is in claim order).
pub async fn fair_turns_order_work_within_a_priority(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    ok(
        ctx.backend
            .set_limit(&fair(&ctx, "kinds", LimitKey::Kind))
            .await,
        "set_limit",
    );
    let root = root(&ctx).await;
    let of = |kind: &str, n: usize| {
        (0..n)
            .map(|_| ctx.new_exec(kind, b"").with_parent(root.clone()))
            .collect::<Vec<_>>()
    };
    ctx.create(of("bulk", 6)).await;
    ctx.create(of("rare", 2)).await;
    let urgent = ctx
        .create_id(
            ctx.new_exec("bulk", b"")
                .with_parent(root.clone())
                .with_priority(5),
        )
        .await;
    let claims = ctx.claim(ctx.claim_request(20)).await;
    let kinds: Vec<&str> = claims.iter().map(|c| c.kind.as_str()).collect();
    assert_eq!(claims.len(), 9, "{kinds:?}");
    assert_eq!(claims[0].id, urgent, "priority first: {kinds:?}");
    for round in [&kinds[1..3], &kinds[3..5]] {
        let round: BTreeSet<&str> = round.iter().copied().collect();
        assert_eq!(round, BTreeSet::from(["bulk", "rare"]), "{kinds:?}");
    }
    assert!(kinds[5..].iter().all(|k| *k == "bulk"), "{kinds:?}");
}

/// With a cap of two per key on the fair limit, claims still take turns
/// between the keys (not the first key's two, then the next's), and a key
/// whose slots are taken loses its turns to the others until a run ends.
pub async fn a_fair_key_without_room_loses_its_turn(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let limit = Limit {
        max_running: Some(2),
        ..fair(&ctx, "capped", tenant_key())
    };
    ok(ctx.backend.set_limit(&limit).await, "set_limit");
    let root = root(&ctx).await;
    submit(&ctx, &root, "big", 6).await;
    ctx.advance(1);
    submit(&ctx, &root, "mid", 4).await;
    ctx.advance(1);
    submit(&ctx, &root, "small", 4).await;
    let every = BTreeSet::from(["big", "mid", "small"]);
    let mut leases: BTreeMap<String, Vec<LeaseToken>> = BTreeMap::new();
    for round in 0..2 {
        let mut tenants = Vec::new();
        for _ in 0..3 {
            let claims = ctx.claim(ctx.claim_request(1)).await;
            assert_eq!(claims.len(), 1, "round {round} found work");
            let tenant = tenant_of(&claims[0]);
            leases
                .entry(tenant.clone())
                .or_default()
                .push(claims[0].lease.clone());
            tenants.push(tenant);
        }
        assert_eq!(set_of(&tenants), every, "round {round}: {tenants:?}");
    }
    // Every key holds its two slots: nothing is claimable.
    ctx.assert_nothing_to_claim().await;
    let mid = leases["mid"][0].clone();
    ctx.complete(&mid, b"").await;
    assert_eq!(claim_tenants(&ctx, 1).await, vec!["mid".to_owned()]);
    ctx.assert_nothing_to_claim().await;
}

/// A retried execution takes a fresh turn: behind its own key's waiting
/// work, but not behind every other key's.
pub async fn a_retried_execution_queues_behind_its_own_key(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    ok(
        ctx.backend
            .set_limit(&fair(&ctx, "retry", tenant_key()))
            .await,
        "set_limit",
    );
    let root = root(&ctx).await;
    let make = |tenant: &str, n: usize| {
        (0..n)
            .map(|_| child(&ctx, &root, tenant).with_retry(RetryPolicy::attempts(3)))
            .collect::<Vec<_>>()
    };
    ctx.create(make("a", 3)).await;
    ctx.create(make("b", 6)).await;
    ctx.advance(1);
    let pair = ctx.claim(ctx.claim_request(2)).await;
    let pair_tenants: BTreeSet<String> = pair.iter().map(tenant_of).collect();
    assert_eq!(pair_tenants, BTreeSet::from(["a".into(), "b".into()]));
    let retried = pair
        .iter()
        .find(|c| tenant_of(c) == "a")
        .expect("a claim of tenant a");
    let snap = ctx
        .fail(
            &retried.lease,
            Failure::retry_after("again", Duration::ZERO),
        )
        .await;
    assert_eq!(snap.state, State::Waiting);
    let mut order = Vec::new();
    for i in 0..7 {
        let claims = ctx.claim(ctx.claim_request(1)).await;
        assert_eq!(claims.len(), 1, "claim {i} found work");
        order.push((claims[0].id == retried.id, tenant_of(&claims[0])));
    }
    let at = order
        .iter()
        .position(|(is_retried, _)| *is_retried)
        .expect("the retried execution was claimed");
    assert!(
        (4..=5).contains(&at),
        "after tenant a's two waiting, beside b's third turn: {order:?}"
    );
    assert!(
        order[6..].iter().all(|(_, t)| t == "b"),
        "b's last turn comes last: {order:?}"
    );
}

/// Work waiting when a fair limit is set keeps its place, and work that
/// comes after takes turns with it from the lane's head (not behind it);
/// once the limit is removed, new work queues by when it became ready
/// again.
pub async fn a_fair_limit_set_later_orders_new_work(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let root = root(&ctx).await;
    for _ in 0..10 {
        ctx.create_id(child(&ctx, &root, "big")).await;
        ctx.advance(1);
    }
    let limit = fair(&ctx, "later", tenant_key());
    ok(ctx.backend.set_limit(&limit).await, "set_limit");
    submit(&ctx, &root, "small", 2).await;
    let order = claim_tenants(&ctx, 4).await;
    assert_eq!(
        order.iter().filter(|t| *t == "small").count(),
        2,
        "both turns of the newcomer come in the first two rounds: {order:?}"
    );
    ok(ctx.backend.remove_limit(&limit.name).await, "remove_limit");
    submit(&ctx, &root, "late", 1).await;
    let rest = claim_tenants(&ctx, 9).await;
    assert_eq!(
        rest[8], "late",
        "without the limit, by ready time: {rest:?}"
    );
}
