//! Partition ownership between engine processes.

use std::time::Duration;

use baton_core::raw::rules;
use baton_core::{NodeId, Ownership, PartitionId, PartitionOwner, Result};

use crate::SqliteBackend;
use crate::errors::map;

pub(crate) async fn sync_ownership(
    b: &SqliteBackend,
    node: &NodeId,
    ttl: Duration,
) -> Result<Ownership> {
    b.inner.limits.check_lease(ttl)?;
    let now = b.now();
    let expires = now.saturating_add(ttl);
    let count = i64::from(b.inner.partitions.get());
    let mut tx = b.begin().await?;
    sqlx::query(
        "INSERT INTO engine_nodes (node, expires_at) VALUES (?1, ?2) \
         ON CONFLICT (node) DO UPDATE SET expires_at = excluded.expires_at",
    )
    .bind(node.as_str())
    .bind(expires.as_millis())
    .execute(&mut *tx)
    .await
    .map_err(map)?;
    sqlx::query("DELETE FROM engine_nodes WHERE expires_at <= ?")
        .bind(now.as_millis())
        .execute(&mut *tx)
        .await
        .map_err(map)?;
    let live: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM engine_nodes")
        .fetch_one(&mut *tx)
        .await
        .map_err(map)?;
    sqlx::query(
        "WITH RECURSIVE p(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM p WHERE n + 1 < ?) \
         INSERT INTO partition_owners (partition) SELECT n FROM p WHERE true \
         ON CONFLICT (partition) DO NOTHING",
    )
    .bind(count)
    .execute(&mut *tx)
    .await
    .map_err(map)?;
    let mine: Vec<i64> = sqlx::query_scalar(
        "SELECT partition FROM partition_owners WHERE owner = ? AND expires_at > ? \
         AND partition < ? ORDER BY partition",
    )
    .bind(node.as_str())
    .bind(now.as_millis())
    .bind(count)
    .fetch_all(&mut *tx)
    .await
    .map_err(map)?;
    let mine: Vec<PartitionId> = mine.iter().map(|&p| partition_id(p)).collect();
    let plan = rules::plan_ownership(b.inner.partitions, live.max(0) as u64, &mine);
    for surplus in &plan.release {
        sqlx::query(
            "UPDATE partition_owners SET owner = NULL, expires_at = NULL WHERE partition = ?",
        )
        .bind(i64::from(surplus.get()))
        .execute(&mut *tx)
        .await
        .map_err(map)?;
    }
    let mut owned = plan.keep.clone();
    if plan.take > 0 {
        let free: Vec<i64> = sqlx::query_scalar(
            "SELECT partition FROM partition_owners WHERE partition < ?1 \
             AND (owner IS NULL OR expires_at <= ?2) ORDER BY partition LIMIT ?3",
        )
        .bind(count)
        .bind(now.as_millis())
        .bind(i64::try_from(plan.take).unwrap_or(i64::MAX))
        .fetch_all(&mut *tx)
        .await
        .map_err(map)?;
        owned.extend(free.into_iter().map(partition_id));
    }
    for p in &owned {
        sqlx::query("UPDATE partition_owners SET owner = ?, expires_at = ? WHERE partition = ?")
            .bind(node.as_str())
            .bind(expires.as_millis())
            .bind(i64::from(p.get()))
            .execute(&mut *tx)
            .await
            .map_err(map)?;
    }
    tx.commit().await.map_err(map)?;
    owned.sort_unstable();
    Ok(Ownership {
        owned,
        live_nodes: u32::try_from(live.max(1)).unwrap_or(u32::MAX),
        target: u32::try_from(plan.share).unwrap_or(u32::MAX),
        expires_at: expires,
    })
}

pub(crate) async fn release_ownership(b: &SqliteBackend, node: &NodeId) -> Result<()> {
    let mut tx = b.begin().await?;
    sqlx::query("UPDATE partition_owners SET owner = NULL, expires_at = NULL WHERE owner = ?")
        .bind(node.as_str())
        .execute(&mut *tx)
        .await
        .map_err(map)?;
    sqlx::query("DELETE FROM engine_nodes WHERE node = ?")
        .bind(node.as_str())
        .execute(&mut *tx)
        .await
        .map_err(map)?;
    tx.commit().await.map_err(map)?;
    Ok(())
}

pub(crate) async fn partition_owners(b: &SqliteBackend) -> Result<Vec<PartitionOwner>> {
    let now = b.now();
    let rows: Vec<(i64, Option<String>, Option<i64>)> = sqlx::query_as(
        "SELECT partition, owner, expires_at FROM partition_owners \
         WHERE owner IS NOT NULL AND expires_at > ? ORDER BY partition",
    )
    .bind(now.as_millis())
    .fetch_all(&b.inner.reader)
    .await
    .map_err(map)?;
    rules::owners_table(b.inner.partitions, rows)
}

/// A stored partition number (the table's CHECK keeps it in range).
fn partition_id(stored: i64) -> PartitionId {
    PartitionId(u16::try_from(stored).unwrap_or(u16::MAX))
}
