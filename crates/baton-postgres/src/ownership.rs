//! Partition ownership between engine processes.

use std::time::Duration;

use baton_core::raw::rules;
use baton_core::{NodeId, Ownership, PartitionId, PartitionOwner, Result};

use crate::errors::map;
use crate::{PostgresBackend, part};

pub(crate) async fn sync_ownership(
    b: &PostgresBackend,
    node: &NodeId,
    ttl: Duration,
) -> Result<Ownership> {
    b.inner.limits.check_lease(ttl)?;
    let now = b.now();
    let expires = now.saturating_add(ttl);
    let count = i64::from(b.inner.partitions.get());
    let mut tx = b.begin().await?;
    // One heartbeat at a time per deployment: the decisions below read
    // other nodes' ownership and must not interleave with theirs.
    sqlx::query("SELECT 1 FROM baton_meta WHERE key = 'partitions' FOR UPDATE")
        .execute(&mut *tx)
        .await
        .map_err(map)?;
    let live: i64 = sqlx::query_scalar(
        "WITH me AS (\
             INSERT INTO engine_nodes (node, expires_at) VALUES ($1, $2) \
             ON CONFLICT (node) DO UPDATE SET expires_at = excluded.expires_at), \
         lapsed AS (DELETE FROM engine_nodes WHERE expires_at <= $3 AND node <> $1), \
         slots AS (INSERT INTO partition_owners (partition) \
             SELECT generate_series(0, $4 - 1) ON CONFLICT (partition) DO NOTHING) \
         SELECT 1 + count(*) FROM engine_nodes WHERE node <> $1 AND expires_at > $3",
    )
    .bind(node.as_str())
    .bind(expires.as_millis())
    .bind(now.as_millis())
    .bind(count as i32)
    .fetch_one(&mut *tx)
    .await
    .map_err(map)?;
    let mine: Vec<i16> = sqlx::query_scalar(
        "SELECT partition FROM partition_owners WHERE owner = $1 AND expires_at > $2 \
         AND partition < $3 ORDER BY partition",
    )
    .bind(node.as_str())
    .bind(now.as_millis())
    .bind(count as i16)
    .fetch_all(&mut *tx)
    .await
    .map_err(map)?;
    let mine: Vec<PartitionId> = mine.iter().map(|&p| partition_id(p)).collect();
    let plan = rules::plan_ownership(b.inner.partitions, live.max(0) as u64, &mine);
    let mut owned: Vec<i16> = plan.keep.iter().map(|p| part(*p)).collect();
    let surplus: Vec<i16> = plan.release.iter().map(|p| part(*p)).collect();
    if plan.take > 0 {
        let free: Vec<i16> = sqlx::query_scalar(
            "SELECT partition FROM partition_owners WHERE partition < $1 \
             AND (owner IS NULL OR expires_at <= $2) ORDER BY partition LIMIT $3",
        )
        .bind(count as i16)
        .bind(now.as_millis())
        .bind(i64::try_from(plan.take).unwrap_or(i64::MAX))
        .fetch_all(&mut *tx)
        .await
        .map_err(map)?;
        owned.extend(free);
    }
    sqlx::query(
        "UPDATE partition_owners \
         SET owner = CASE WHEN partition = ANY($1) THEN $3 END, \
             expires_at = CASE WHEN partition = ANY($1) THEN $4::bigint END \
         WHERE partition = ANY($1) OR partition = ANY($2)",
    )
    .bind(&owned)
    .bind(&surplus)
    .bind(node.as_str())
    .bind(expires.as_millis())
    .execute(&mut *tx)
    .await
    .map_err(map)?;
    tx.commit().await.map_err(map)?;
    owned.sort_unstable();
    Ok(Ownership {
        owned: owned.into_iter().map(partition_id).collect(),
        live_nodes: u32::try_from(live).unwrap_or(u32::MAX),
        target: u32::try_from(plan.share).unwrap_or(u32::MAX),
        expires_at: expires,
    })
}

pub(crate) async fn release_ownership(b: &PostgresBackend, node: &NodeId) -> Result<()> {
    sqlx::query(
        "WITH freed AS (UPDATE partition_owners SET owner = NULL, expires_at = NULL \
         WHERE owner = $1) DELETE FROM engine_nodes WHERE node = $1",
    )
    .bind(node.as_str())
    .execute(&b.inner.pool)
    .await
    .map_err(map)?;
    Ok(())
}

pub(crate) async fn partition_owners(b: &PostgresBackend) -> Result<Vec<PartitionOwner>> {
    let now = b.now();
    let rows: Vec<(i16, Option<String>, Option<i64>)> = sqlx::query_as(
        "SELECT partition, owner, expires_at FROM partition_owners \
         WHERE owner IS NOT NULL AND expires_at > $1 ORDER BY partition",
    )
    .bind(now.as_millis())
    .fetch_all(&b.inner.pool)
    .await
    .map_err(map)?;
    rules::owners_table(
        b.inner.partitions,
        rows.into_iter()
            .map(|(p, owner, expires)| (i64::from(p), owner, expires)),
    )
}

/// A stored partition number (the table's CHECK keeps it in range).
fn partition_id(stored: i16) -> PartitionId {
    PartitionId(u16::try_from(stored).unwrap_or(u16::MAX))
}
