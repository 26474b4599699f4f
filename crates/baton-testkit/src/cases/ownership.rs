//! Partition ownership between engine processes: `sync_ownership` and
//! `release_ownership`.

use baton_core::{NodeId, Ownership, PartitionId};

use super::prelude::*;

const TTL_MS: u64 = 30_000;

fn node(name: &str) -> NodeId {
    NodeId::new(name).expect("valid node id")
}

async fn sync(ctx: &Ctx, name: &str) -> Ownership {
    ok(
        ctx.backend.sync_ownership(&node(name), ms(TTL_MS)).await,
        &format!("sync_ownership({name})"),
    )
}

fn all_partitions(ctx: &Ctx) -> Vec<PartitionId> {
    ctx.backend.partitions().iter().collect()
}

/// Asserts the owners' sets are disjoint and together cover every partition.
fn assert_exact_cover(ctx: &Ctx, sets: &[&Ownership]) {
    let mut seen = BTreeSet::new();
    for o in sets {
        for p in &o.owned {
            assert!(seen.insert(*p), "partition {p} owned twice: {sets:?}");
        }
    }
    let all: BTreeSet<PartitionId> = all_partitions(ctx).into_iter().collect();
    assert_eq!(seen, all, "every partition owned exactly once");
}

/// A lone engine owns every partition, in ascending order, until `now + ttl`.
pub async fn ownership_single_node_owns_everything(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let o = sync(&ctx, "a").await;
    assert_eq!(o.owned, all_partitions(&ctx));
    assert_eq!(o.live_nodes, 1);
    assert_eq!(o.target, u32::from(ctx.backend.partitions().get()));
    assert_eq!(o.expires_at, ctx.after(TTL_MS));
    ctx.advance(10_000);
    let again = sync(&ctx, "a").await;
    assert_eq!(again.owned, o.owned, "renewal keeps the same partitions");
    assert_eq!(again.expires_at, ctx.after(TTL_MS));
}

/// A joining node gets nothing while the first holds everything; after the
/// first node's next heartbeat releases its surplus, the newcomer takes it,
/// and the two split the partitions exactly.
pub async fn ownership_rebalances_when_a_node_joins(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let count = u32::from(ctx.backend.partitions().get());
    sync(&ctx, "a").await;
    let b = sync(&ctx, "b").await;
    assert_eq!(b.live_nodes, 2);
    assert_eq!(b.target, count.div_ceil(2));
    assert!(
        b.owned.is_empty() || count == 1,
        "nothing is free yet: {b:?}"
    );
    let a = sync(&ctx, "a").await;
    assert_eq!(a.owned.len() as u32, count.div_ceil(2), "a keeps its share");
    let b = sync(&ctx, "b").await;
    assert_exact_cover(&ctx, &[&a, &b]);
    assert!(b.owned.len() as u32 <= b.target);
}

/// Three nodes converge to an exact cover with nobody above its share.
pub async fn ownership_three_nodes_converge(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let names = ["a", "b", "c"];
    let mut last = Vec::new();
    for _round in 0..3 {
        last.clear();
        for n in names {
            last.push(sync(&ctx, n).await);
        }
    }
    let refs: Vec<&Ownership> = last.iter().collect();
    assert_exact_cover(&ctx, &refs);
    for o in &last {
        assert_eq!(o.live_nodes, 3);
        assert!(o.owned.len() as u32 <= o.target, "{o:?} above its share");
    }
}

/// A node that stops heartbeating loses its partitions once its lease lapses
/// (not before), and the survivor takes them over.
pub async fn ownership_takes_over_a_dead_nodes_partitions(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    sync(&ctx, "a").await;
    sync(&ctx, "b").await;
    let a = sync(&ctx, "a").await;
    let b = sync(&ctx, "b").await;
    assert_exact_cover(&ctx, &[&a, &b]);
    // "a" dies. Just before its lease lapses, "b" still cannot take them.
    ctx.advance(TTL_MS - 1);
    let b = sync(&ctx, "b").await;
    assert!(
        b.owned.iter().all(|p| !a.owned.contains(p)),
        "took {b:?} while a's lease was live"
    );
    ctx.advance(1);
    let b = sync(&ctx, "b").await;
    assert_eq!(b.live_nodes, 1, "the dead node is forgotten");
    assert_eq!(b.owned, all_partitions(&ctx));
}

/// A node that leaves frees its partitions at once: the survivor takes them
/// at its next heartbeat without waiting for the lease to lapse.
pub async fn ownership_release_frees_partitions_at_once(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    sync(&ctx, "a").await;
    sync(&ctx, "b").await;
    sync(&ctx, "a").await;
    sync(&ctx, "b").await;
    ok(ctx.backend.release_ownership(&node("a")).await, "release a");
    let b = sync(&ctx, "b").await;
    assert_eq!(b.live_nodes, 1);
    assert_eq!(b.owned, all_partitions(&ctx));
    // Releasing again, or an unknown node, succeeds.
    ok(
        ctx.backend.release_ownership(&node("a")).await,
        "release a again",
    );
    ok(
        ctx.backend.release_ownership(&node("never-seen")).await,
        "release unknown",
    );
}

/// A ttl outside the lease limits is rejected and records nothing.
pub async fn ownership_rejects_invalid_ttl(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let limits = ctx.limits();
    for ttl in [Duration::ZERO, limits.max_lease + ms(1)] {
        expect_invalid(
            ctx.backend.sync_ownership(&node("a"), ttl).await,
            "sync_ownership with a bad ttl",
        );
    }
    let o = sync(&ctx, "b").await;
    assert_eq!(o.live_nodes, 1, "the rejected node was not recorded");
    assert_eq!(o.owned, all_partitions(&ctx));
}

/// `partition_owners` lists every partition with its live owner, and stops
/// naming an owner once its lease lapses.
pub async fn ownership_is_listed_per_partition(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let before = ok(ctx.backend.partition_owners().await, "partition_owners");
    assert_eq!(
        before.iter().map(|o| o.partition).collect::<Vec<_>>(),
        all_partitions(&ctx)
    );
    assert!(
        before
            .iter()
            .all(|o| o.owner.is_none() && o.expires_at.is_none())
    );
    sync(&ctx, "a").await;
    sync(&ctx, "b").await;
    let a = sync(&ctx, "a").await;
    let b = sync(&ctx, "b").await;
    let listed = ok(ctx.backend.partition_owners().await, "partition_owners");
    for o in &listed {
        let expected = if a.owned.contains(&o.partition) {
            Some(node("a"))
        } else if b.owned.contains(&o.partition) {
            Some(node("b"))
        } else {
            None
        };
        assert_eq!(o.owner, expected, "owner of partition {}", o.partition);
        assert!(o.owner.is_none() || o.expires_at == Some(ctx.now().saturating_add(ms(TTL_MS))));
    }
    ctx.advance(TTL_MS);
    let lapsed = ok(ctx.backend.partition_owners().await, "partition_owners");
    assert!(lapsed.iter().all(|o| o.owner.is_none()), "{lapsed:?}");
}
