//! Routing: handler versions (a claim's range takes only compatible work)
//! and sessions (a session's work goes to the worker holding its lock; the
//! lock renews with the worker's leases, lapses when idle and is taken
//! over when the worker dies).

use baton_core::raw::rules::session_partition;
use baton_core::{SessionName, Version, VersionRange};

use super::prelude::*;

fn version(text: &str) -> Version {
    text.parse().expect("valid version")
}

fn session(name: &str) -> SessionName {
    SessionName::new(name).expect("valid session")
}

fn range(min: Option<&str>, max: Option<&str>) -> VersionRange {
    VersionRange::between(min.map(version), max.map(version))
}

/// A claim of up to `max` from the default lane by `who` with a lease of
/// `lease_ms` and an idle session time of `idle_ms`.
fn claim_as(ctx: &Ctx, who: &str, max: usize, lease_ms: u64, idle_ms: u64) -> ClaimRequest {
    ClaimRequest::new(ctx.ns.clone(), ctx.lane(), worker(who), max)
        .with_lease_ttl(ms(lease_ms))
        .with_session_idle(ms(idle_ms))
}

/// Two executions of session `name`, the second eligible 1 ms after the
/// first (so claim order is theirs); the first retries at once.
async fn two_of_session(ctx: &Ctx, name: &str) -> (SessionName, ExecutionId, ExecutionId) {
    let s = session(name);
    let one = ctx
        .create_id(
            ctx.new_exec("one", b"")
                .with_session(s.clone())
                .with_retry(no_backoff(3)),
        )
        .await;
    ctx.advance(1);
    let two = ctx
        .create_id(ctx.new_exec("two", b"").with_session(s.clone()))
        .await;
    (s, one, two)
}

fn ids(claims: &[Claim]) -> BTreeSet<ExecutionId> {
    claims.iter().map(|c| c.id.clone()).collect()
}

fn set_of(items: &[&ExecutionId]) -> BTreeSet<ExecutionId> {
    items.iter().map(|i| (*i).clone()).collect()
}

/// A claim with a version range takes executions whose version it
/// contains (both ends inclusive, `2` equal to `2.0`) and those without a
/// version, never others; a claim without a range takes every version.
/// Snapshots and claims carry the version as it was given; a range whose
/// lowest end is above its highest is invalid input.
pub async fn versions_route_claims_to_compatible_workers(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let old = ctx
        .create_id(ctx.new_exec("job", b"").with_version(version("1.4")))
        .await;
    let two = ctx
        .create_id(ctx.new_exec("job", b"").with_version(version("2.0")))
        .await;
    let two_ten = ctx
        .create_id(ctx.new_exec("job", b"").with_version(version("2.10")))
        .await;
    let any = ctx.create_id(ctx.new_exec("job", b"")).await;
    let three = ctx
        .create_id(ctx.new_exec("job", b"").with_version(version("3")))
        .await;
    assert_eq!(
        ctx.describe(&two).await.version.map(|v| v.to_string()),
        Some("2.0".to_string()),
        "the version as given"
    );
    assert_eq!(ctx.describe(&any).await.version, None);

    let bad = ctx
        .claim_request(10)
        .with_versions(range(Some("3"), Some("2")));
    assert_eq!(
        expect_invalid(ctx.backend.claim(bad).await, "claim with an empty range"),
        "versions"
    );

    let new_workers = ctx
        .claim(
            ctx.claim_request(10)
                .with_versions(range(Some("2"), Some("2.999"))),
        )
        .await;
    assert_eq!(
        ids(&new_workers),
        set_of(&[&two, &two_ten, &any]),
        "2 ≤ v ≤ 2.999, and the execution without a version"
    );
    let two_claim = new_workers
        .iter()
        .find(|c| c.id == two)
        .expect("claimed above");
    assert_eq!(two_claim.version, Some(version("2")));
    assert_eq!(two_claim.version.as_ref().map(|v| v.as_str()), Some("2.0"));

    let upper = ctx
        .claim(
            ctx.claim_request(10)
                .with_versions(range(None, Some("1.4"))),
        )
        .await;
    assert_eq!(ids(&upper), set_of(&[&old]), "the upper end is inclusive");
    let lower = ctx
        .claim(
            ctx.claim_request(10)
                .with_versions(range(Some("3.0.0.1"), None)),
        )
        .await;
    assert!(lower.is_empty(), "3 is below 3.0.0.1: {lower:?}");
    let open = ctx.claim(ctx.claim_request(10)).await;
    assert_eq!(
        ids(&open),
        set_of(&[&three]),
        "no range takes every version"
    );
}

/// A session's work goes to the worker that claimed its first execution:
/// other workers pass over it (taking what else is there), the owner takes
/// the rest in claim order; snapshots and claims name the session.
pub async fn a_session_goes_to_the_worker_that_holds_it(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let chat = session("chat-1");
    let mut first = Vec::new();
    for i in 0..3 {
        first.push(
            ctx.create_id(
                ctx.new_exec(&format!("s{i}"), b"")
                    .with_session(chat.clone()),
            )
            .await,
        );
        ctx.advance(1);
    }
    let other = ctx
        .create_id(ctx.new_exec("t", b"").with_session(session("chat-2")))
        .await;
    let plain = ctx.create_id(ctx.new_exec("p", b"")).await;
    assert_eq!(ctx.describe(&first[0]).await.session, Some(chat.clone()));
    assert_eq!(ctx.describe(&plain).await.session, None);

    let a = ctx.claim(claim_as(&ctx, "a", 1, 30_000, 30_000)).await;
    assert_eq!(ids(&a), set_of(&[&first[0]]), "claim order");
    assert_eq!(a[0].session, Some(chat.clone()));
    let b = ctx.claim(claim_as(&ctx, "b", 10, 30_000, 30_000)).await;
    assert_eq!(
        ids(&b),
        set_of(&[&other, &plain]),
        "worker b passes over chat-1, which worker a holds"
    );
    let a_again = ctx.claim(claim_as(&ctx, "a", 10, 30_000, 30_000)).await;
    assert_eq!(ids(&a_again), set_of(&[&first[1], &first[2]]));
    assert!(
        a_again.iter().all(|c| c.session == Some(chat.clone())),
        "{a_again:?}"
    );
    // Its work done, worker a keeps the session until its lock lapses.
    for c in a.iter().chain(&a_again) {
        ctx.complete(&c.lease, b"").await;
    }
    let later = ctx
        .create_id(ctx.new_exec("s3", b"").with_session(chat.clone()))
        .await;
    assert!(
        ctx.claim(claim_as(&ctx, "b", 10, 30_000, 30_000))
            .await
            .is_empty(),
        "a still holds chat-1"
    );
    ctx.advance(30_000);
    let b_takes = ctx.claim(claim_as(&ctx, "b", 10, 30_000, 30_000)).await;
    assert_eq!(ids(&b_takes), set_of(&[&later]), "a's lock lapsed");
    assert!(
        ctx.claim(claim_as(&ctx, "a", 10, 30_000, 30_000))
            .await
            .is_empty(),
        "b holds chat-1 now"
    );
}

/// A session's lock lasts the later of the lease and the claim's idle
/// time; a renew of the session's work extends it the same way; it never
/// shrinks (an early completion keeps it), and once it lapses another
/// worker takes the session.
pub async fn a_session_lock_renews_with_its_worker_and_lapses_when_idle(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let (s, one, two) = two_of_session(&ctx, "renewed").await;
    let t0 = ctx.now();
    let a = ctx.claim(claim_as(&ctx, "a", 1, 10_000, 5_000)).await;
    assert_eq!(ids(&a), set_of(&[&one]));
    // The lock lasts until the lease's end (10 s), later than idle (5 s).
    ctx.advance(8_000);
    let renewed = ctx.renew("a", 10_000, vec![a[0].lease.clone()]).await;
    assert_eq!(renewed[0].status, RenewStatus::Renewed);
    // Now until 18 s: the new lease's end.
    ctx.advance(9_000);
    assert!(
        ctx.claim(claim_as(&ctx, "b", 10, 10_000, 5_000))
            .await
            .is_empty(),
        "17 s after the claim, the renew kept the lock"
    );
    ctx.complete(&a[0].lease, b"").await;
    assert!(
        ctx.claim(claim_as(&ctx, "b", 10, 10_000, 5_000))
            .await
            .is_empty(),
        "a completion does not shorten the lock"
    );
    assert_eq!(ctx.now(), t0.saturating_add(ms(17_000)));
    ctx.advance(1_000);
    let b = ctx.claim(claim_as(&ctx, "b", 10, 10_000, 5_000)).await;
    assert_eq!(ids(&b), set_of(&[&two]), "the lock lapsed at 18 s");

    // Idle longer than the lease: the lock outlives the lease.
    let three = ctx
        .create_id(ctx.new_exec("three", b"").with_session(s.clone()))
        .await;
    ctx.complete(&b[0].lease, b"").await;
    ctx.advance(9_000);
    assert!(
        ctx.claim(claim_as(&ctx, "a", 10, 10_000, 5_000))
            .await
            .is_empty(),
        "b holds the session until its lease's end"
    );
    let b_again = ctx.claim(claim_as(&ctx, "b", 10, 1_000, 60_000)).await;
    assert_eq!(ids(&b_again), set_of(&[&three]));
    ctx.complete(&b_again[0].lease, b"").await;
    let four = ctx
        .create_id(ctx.new_exec("four", b"").with_session(s.clone()))
        .await;
    ctx.advance(59_000);
    assert!(
        ctx.claim(claim_as(&ctx, "a", 10, 10_000, 5_000))
            .await
            .is_empty(),
        "b keeps the session for the 60 s idle time it asked for"
    );
    ctx.advance(1_000);
    let a_takes = ctx.claim(claim_as(&ctx, "a", 10, 10_000, 5_000)).await;
    assert_eq!(ids(&a_takes), set_of(&[&four]));
}

/// A worker whose lease lapsed is taken for dead: reclaiming its run of a
/// session releases the session's lock at once (even before the idle time
/// it asked for ends), and another worker takes the session over; a
/// reclaim of another worker's run leaves the lock alone.
pub async fn a_dead_workers_session_is_taken_over(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let (s, one, two) = two_of_session(&ctx, "orphan").await;
    let a = ctx.claim(claim_as(&ctx, "a", 1, 5_000, 60_000)).await;
    assert_eq!(ids(&a), set_of(&[&one]));
    ctx.advance(6_000);
    assert!(
        ctx.claim(claim_as(&ctx, "b", 10, 5_000, 60_000))
            .await
            .is_empty(),
        "the lock stands until the lease is reclaimed"
    );
    assert_eq!(ctx.reclaim_all().await, 1);
    let b = ctx.claim(claim_as(&ctx, "b", 10, 30_000, 30_000)).await;
    assert_eq!(
        ids(&b),
        set_of(&[&one, &two]),
        "b takes the session over, with the retried run"
    );
    assert!(b.iter().all(|c| c.session == Some(s.clone())));
    assert!(
        ctx.claim(claim_as(&ctx, "a", 10, 30_000, 30_000))
            .await
            .is_empty(),
        "b holds the session now"
    );
    // b dies too; its lock lapses with its leases and c takes the session
    // before the pass reclaims b's runs: that reclaim leaves c's lock.
    let three = ctx
        .create_id(ctx.new_exec("three", b"").with_session(s.clone()))
        .await;
    ctx.advance(30_000);
    let c = ctx.claim(claim_as(&ctx, "c", 1, 30_000, 30_000)).await;
    assert_eq!(ids(&c), set_of(&[&three]));
    assert_eq!(ctx.reclaim_all().await, 2, "b's two runs");
    assert!(
        ctx.claim(claim_as(&ctx, "d", 10, 30_000, 30_000))
            .await
            .is_empty(),
        "reclaiming b's runs left c's lock"
    );
    let c_again = ctx.claim(claim_as(&ctx, "c", 10, 30_000, 30_000)).await;
    assert!(
        c_again.iter().any(|x| x.id == one),
        "c takes the retried run: {c_again:?}"
    );
}

/// Two of eight workers claiming at once never hold one session: every
/// session's running work belongs to one worker.
pub async fn concurrent_claimers_never_share_a_session(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let mut items = Vec::new();
    for k in 0..4 {
        for s in 0..12 {
            items.push(
                ctx.new_exec(&format!("k{k}"), b"")
                    .with_session(session(&format!("s{s}"))),
            );
        }
    }
    ctx.create_chunked(items).await;
    let mut owners: BTreeMap<SessionName, BTreeSet<String>> = BTreeMap::new();
    let mut claimed = 0;
    for _round in 0..3 {
        let mut tasks = Vec::new();
        for w in 0..8 {
            let ctx = ctx.clone();
            tasks.push(tokio::spawn(async move {
                let who = format!("w{w}");
                let request = claim_as(&ctx, &who, 3, 30_000, 30_000);
                (
                    who,
                    ok(ctx.backend.claim(request).await, "concurrent claim"),
                )
            }));
        }
        for task in tasks {
            let (who, claims) = task.await.expect("claim task panicked");
            claimed += claims.len();
            for c in claims {
                let s = c.session.expect("every execution has a session");
                owners.entry(s).or_default().insert(who.clone());
            }
        }
    }
    assert!(claimed > 0, "the workers claimed something");
    assert!(claimed <= 48);
    for (s, workers) in &owners {
        assert_eq!(workers.len(), 1, "session {s} went to {workers:?}");
    }
    // Each running execution's worker is its session's one owner.
    let running = ctx
        .list_all(
            &ListFilter::namespace(ctx.ns.clone()).with_state(State::Running),
            100,
        )
        .await;
    assert_eq!(running.len(), claimed);
    for snap in running {
        let s = snap.session.clone().expect("a session");
        let who = snap.worker_id.expect("a running execution has a worker");
        assert!(owners[&s].contains(who.as_str()), "{s}: {who}");
    }
}

/// An idempotency key deduplicates within its session (no session counts
/// as one); a sessioned execution lives in its session's partition; a
/// child cannot join a session.
pub async fn idempotency_keys_dedupe_within_a_session(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let keyed = |s: Option<&str>| {
        let new = ctx.new_exec("job", b"").with_idempotency_key(ikey("k"));
        match s {
            Some(s) => new.with_session(session(s)),
            None => new,
        }
    };
    let plain = ctx.create_one(keyed(None)).await;
    let in_a = ctx.create_one(keyed(Some("a"))).await;
    assert!(plain.created && in_a.created, "one key, two sessions");
    assert_ne!(plain.id, in_a.id);
    let again = ctx.create_one(keyed(Some("a"))).await;
    assert!(!again.created);
    assert_eq!(again.id, in_a.id);
    let in_b = ctx.create_one(keyed(Some("b"))).await;
    assert!(in_b.created);
    let plain_again = ctx.create_one(keyed(None)).await;
    assert!(!plain_again.created);
    assert_eq!(plain_again.id, plain.id);
    let partitions = ctx.backend.partitions();
    for (id, s) in [(&in_a.id, "a"), (&in_b.id, "b")] {
        assert_eq!(
            id.partition(),
            session_partition(&ctx.ns, &session(s), partitions),
            "a session's work lives in its partition"
        );
    }

    let parent = ctx.create_id(ctx.new_exec("parent", b"")).await;
    let child = ctx
        .new_exec("child", b"")
        .with_parent(parent)
        .with_session(session("a"));
    assert_eq!(
        expect_invalid(
            ctx.backend.create(vec![child]).await,
            "a child in a session"
        ),
        "session"
    );
}

/// `explain` says `no_compatible_worker` when no live worker of the lane
/// accepts the execution's version, and `session_owned_by` naming the
/// worker holding its session.
pub async fn explain_names_session_owners_and_incompatible_versions(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let explain = |id: ExecutionId| {
        let backend = ctx.backend.clone();
        async move { ok(backend.explain(&id).await, "explain") }
    };
    let newer = ctx
        .create_id(ctx.new_exec("job", b"").with_version(version("2.1")))
        .await;
    let old_workers = ctx
        .claim_request(1)
        .with_versions(range(Some("1"), Some("1.999")));
    assert!(ctx.claim(old_workers).await.is_empty());
    let e = explain(newer.clone()).await;
    assert_eq!(e.reason, Some("no_compatible_worker"), "{}", e.detail);
    assert!(
        e.detail.contains("2.1") && e.detail.contains("1..1.999"),
        "{}",
        e.detail
    );
    let listed = ok(ctx.backend.workers(&ctx.ns, 10).await, "workers");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].versions, range(Some("1"), Some("1.999")));
    let taken = ctx.claim(ctx.claim_request(1)).await;
    assert_eq!(ids(&taken), set_of(&[&newer]));
    assert_eq!(
        ok(ctx.backend.workers(&ctx.ns, 10).await, "workers")[0].versions,
        VersionRange::any()
    );

    let (_, one, two) = two_of_session(&ctx, "owned").await;
    let a = ctx.claim(claim_as(&ctx, "holder", 1, 30_000, 30_000)).await;
    assert_eq!(ids(&a), set_of(&[&one]));
    let e = explain(two.clone()).await;
    assert_eq!(e.reason, Some("session_owned_by"), "{}", e.detail);
    assert!(
        e.detail.contains("holder") && e.detail.contains("owned"),
        "{}",
        e.detail
    );
}

/// An operator's revoke of a session's run releases the session when the
/// run's worker holds it, as a reclaim does: the next claimer takes the
/// session (the wedged worker does not get it back).
pub async fn a_revoked_run_hands_its_session_over(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let (_, one, two) = two_of_session(&ctx, "wedged").await;
    let a = ctx.claim(claim_as(&ctx, "a", 1, 30_000, 60_000)).await;
    assert_eq!(ids(&a), set_of(&[&one]));
    assert!(
        ctx.claim(claim_as(&ctx, "b", 10, 30_000, 30_000))
            .await
            .is_empty(),
        "a holds the session"
    );
    let revoked = ok(ctx.backend.revoke(&one).await, "revoke");
    assert_eq!(revoked.state, State::Waiting);
    let b = ctx.claim(claim_as(&ctx, "b", 10, 30_000, 30_000)).await;
    assert_eq!(ids(&b), set_of(&[&one, &two]), "b takes the session over");
    assert!(
        ctx.claim(claim_as(&ctx, "a", 10, 30_000, 30_000))
            .await
            .is_empty(),
        "b holds it now"
    );
}
