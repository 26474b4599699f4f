//! The scheduler's passes: promote, reclaim, expire, trim.

use std::time::Duration;

use baton_core::{AttemptOutcome, Failure, PartitionId, Result, ScanReport, Timestamp};

use crate::SqliteBackend;
use crate::errors::map;
use crate::read::{self};

pub(crate) async fn promote_due(
    b: &SqliteBackend,
    partition: PartitionId,
    limit: usize,
) -> Result<ScanReport> {
    let limit = b.scan_limit(partition, limit)?;
    let now = b.now();
    let mut tx = b.begin().await?;
    let promoted: Vec<(String, String)> = sqlx::query_as(
        "UPDATE executions SET state = 'waiting', updated_at = ?1 WHERE uuid IN \
         (SELECT uuid FROM executions WHERE partition = ?2 AND state = 'delayed' AND run_at <= ?1 \
          ORDER BY run_at, uuid LIMIT ?3) RETURNING namespace, lane",
    )
    .bind(now.as_millis())
    .bind(i64::from(partition.get()))
    .bind(limit)
    .fetch_all(&mut *tx)
    .await
    .map_err(map)?;
    let next: Option<i64> = sqlx::query_scalar(
        "SELECT MIN(run_at) FROM executions WHERE partition = ? AND state = 'delayed'",
    )
    .bind(i64::from(partition.get()))
    .fetch_one(&mut *tx)
    .await
    .map_err(map)?;
    tx.commit().await.map_err(map)?;
    let mut lanes: Vec<&(String, String)> = promoted.iter().collect();
    lanes.sort();
    lanes.dedup();
    for (ns, lane) in lanes {
        b.inner.wake.notify(ns, lane);
    }
    Ok(ScanReport {
        processed: promoted.len() as u64,
        next_due: next.map(Timestamp::from_millis),
    })
}

pub(crate) async fn reclaim_expired_leases(
    b: &SqliteBackend,
    partition: PartitionId,
    limit: usize,
) -> Result<ScanReport> {
    let limit = b.scan_limit(partition, limit)?;
    let now = b.now();
    let mut tx = b.begin().await?;
    let rows = sqlx::query(concat!(
        "SELECT ",
        execution_columns!(),
        " FROM executions WHERE partition = ? AND state = 'running' AND lease_expires_at <= ? \
         ORDER BY lease_expires_at, uuid LIMIT ?"
    ))
    .bind(i64::from(partition.get()))
    .bind(now.as_millis())
    .bind(limit)
    .fetch_all(&mut *tx)
    .await
    .map_err(map)?;
    let mut woken = Vec::new();
    for row in &rows {
        let snap = read::snapshot(row, b.inner.partitions)?;
        let error = format!(
            "lease expired: worker {} did not renew attempt {} before {}",
            snap.worker_id.as_ref().map(|w| w.as_str()).unwrap_or("?"),
            snap.attempts,
            snap.lease_expires_at
                .map(|t| t.to_string())
                .unwrap_or_default()
        );
        b.apply_failure(
            &mut tx,
            &snap,
            AttemptOutcome::LeaseExpired,
            Failure::retryable(error),
            now,
        )
        .await?;
        woken.push((snap.namespace, snap.lane));
    }
    let next: Option<i64> = sqlx::query_scalar(
        "SELECT MIN(lease_expires_at) FROM executions WHERE partition = ? AND state = 'running'",
    )
    .bind(i64::from(partition.get()))
    .fetch_one(&mut *tx)
    .await
    .map_err(map)?;
    tx.commit().await.map_err(map)?;
    for (ns, lane) in &woken {
        b.inner.wake.notify(ns.as_str(), lane.as_str());
    }
    Ok(ScanReport {
        processed: rows.len() as u64,
        next_due: next.map(Timestamp::from_millis),
    })
}

pub(crate) async fn expire_deadlines(
    b: &SqliteBackend,
    partition: PartitionId,
    limit: usize,
) -> Result<ScanReport> {
    let limit = b.scan_limit(partition, limit)?;
    let now = b.now();
    let mut tx = b.begin().await?;
    let rows: Vec<(Vec<u8>, i64, String, i64)> = sqlx::query_as(
        "SELECT uuid, partition, state, attempts FROM executions WHERE partition = ? \
         AND deadline IS NOT NULL AND finished_at IS NULL AND deadline <= ? \
         ORDER BY deadline, uuid LIMIT ?",
    )
    .bind(i64::from(partition.get()))
    .bind(now.as_millis())
    .bind(limit)
    .fetch_all(&mut *tx)
    .await
    .map_err(map)?;
    for (uuid, _, state, attempts) in &rows {
        if state == "running" {
            sqlx::query(
                "UPDATE attempts SET ended_at = ?, outcome = 'expired' \
                 WHERE execution_uuid = ? AND number = ? AND outcome IS NULL",
            )
            .bind(now.as_millis())
            .bind(uuid.as_slice())
            .bind(attempts)
            .execute(&mut *tx)
            .await
            .map_err(map)?;
        }
        sqlx::query(
            "UPDATE executions SET state = 'expired', finished_at = ?1, updated_at = ?1, \
             worker_id = NULL, lease_nonce = NULL, lease_expires_at = NULL WHERE uuid = ?2",
        )
        .bind(now.as_millis())
        .bind(uuid.as_slice())
        .execute(&mut *tx)
        .await
        .map_err(map)?;
    }
    let next: Option<i64> = sqlx::query_scalar(
        "SELECT MIN(deadline) FROM executions WHERE partition = ? \
         AND deadline IS NOT NULL AND finished_at IS NULL",
    )
    .bind(i64::from(partition.get()))
    .fetch_one(&mut *tx)
    .await
    .map_err(map)?;
    tx.commit().await.map_err(map)?;
    Ok(ScanReport {
        processed: rows.len() as u64,
        next_due: next.map(Timestamp::from_millis),
    })
}

pub(crate) async fn trim_terminal(
    b: &SqliteBackend,
    partition: PartitionId,
    retention: Duration,
    limit: usize,
) -> Result<ScanReport> {
    let limit = b.scan_limit(partition, limit)?;
    let now = b.now();
    let cutoff = now.saturating_sub(retention);
    let mut tx = b.begin().await?;
    let doomed: Vec<Vec<u8>> = sqlx::query_scalar(
        "SELECT uuid FROM executions WHERE partition = ? AND finished_at IS NOT NULL \
         AND finished_at <= ? ORDER BY finished_at, uuid LIMIT ?",
    )
    .bind(i64::from(partition.get()))
    .bind(cutoff.as_millis())
    .bind(limit)
    .fetch_all(&mut *tx)
    .await
    .map_err(map)?;
    for table in [
        "DELETE FROM attempts WHERE execution_uuid = ?",
        "DELETE FROM execution_tags WHERE execution_uuid = ?",
        "DELETE FROM executions WHERE uuid = ?",
    ] {
        for uuid in &doomed {
            sqlx::query(table)
                .bind(uuid.as_slice())
                .execute(&mut *tx)
                .await
                .map_err(map)?;
        }
    }
    let oldest: Option<i64> = sqlx::query_scalar(
        "SELECT MIN(finished_at) FROM executions WHERE partition = ? AND finished_at IS NOT NULL",
    )
    .bind(i64::from(partition.get()))
    .fetch_one(&mut *tx)
    .await
    .map_err(map)?;
    tx.commit().await.map_err(map)?;
    Ok(ScanReport {
        processed: doomed.len() as u64,
        next_due: oldest.map(|t| Timestamp::from_millis(t).saturating_add(retention)),
    })
}
