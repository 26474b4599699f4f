//! The scheduler's passes: promote, reclaim, expire, trim.

use std::time::Duration;

use baton_core::{AttemptOutcome, Failure, PartitionId, Result, ScanReport, State, Timestamp};
use uuid::Uuid;

use crate::errors::map;
use crate::lease::SettleArrays;
use crate::read::col;
use crate::{PostgresBackend, part, sql};

pub(crate) async fn promote_due(
    b: &PostgresBackend,
    partition: PartitionId,
    limit: usize,
) -> Result<ScanReport> {
    let limit = b.scan_limit(partition, limit)?;
    let now = b.now();
    let row = sqlx::query(sql::PROMOTE)
        .bind(part(partition))
        .bind(now.as_millis())
        .bind(limit)
        .bind(&b.inner.channel)
        .fetch_one(&b.inner.pool)
        .await
        .map_err(map)?;
    let processed: i64 = col(&row, "processed")?;
    for lane in col::<Vec<String>>(&row, "lanes")? {
        if let Some((namespace, lane)) = lane.split_once(' ') {
            b.inner.wake.notify(namespace, lane);
        }
    }
    Ok(ScanReport {
        processed: processed.max(0) as u64,
        next_due: col::<Option<i64>>(&row, "next_due")?.map(Timestamp::from_millis),
    })
}

pub(crate) async fn reclaim_expired_leases(
    b: &PostgresBackend,
    partition: PartitionId,
    limit: usize,
) -> Result<ScanReport> {
    let limit = b.scan_limit(partition, limit)?;
    let now = b.now();
    let mut tx = b.begin().await?;
    let rows = sqlx::query(
        "SELECT * FROM executions WHERE partition = $1 AND state = 'running' \
         AND lease_expires_at <= $2 ORDER BY lease_expires_at, uuid LIMIT $3 \
         FOR UPDATE SKIP LOCKED",
    )
    .bind(part(partition))
    .bind(now.as_millis())
    .bind(limit)
    .fetch_all(&mut *tx)
    .await
    .map_err(map)?;
    let mut settle = SettleArrays::default();
    for row in &rows {
        let snap = b.snapshot(row)?;
        let error = format!(
            "lease expired: worker {} did not renew attempt {} before {}",
            snap.worker_id.as_ref().map(|w| w.as_str()).unwrap_or("?"),
            snap.attempts,
            snap.lease_expires_at
                .map(|t| t.to_string())
                .unwrap_or_default()
        );
        settle.push(&snap, &Failure::retryable(error), &b.inner.limits, now);
    }
    let mut woken = Vec::new();
    if !rows.is_empty() {
        for row in settle
            .run(&mut tx, AttemptOutcome::LeaseExpired, now, &b.inner.channel)
            .await?
        {
            let snap = b.snapshot(&row)?;
            if snap.state == State::Waiting {
                woken.push((snap.namespace, snap.lane));
            }
        }
    }
    let next: Option<i64> = sqlx::query_scalar(
        "SELECT lease_expires_at FROM executions WHERE partition = $1 AND state = 'running' \
         ORDER BY lease_expires_at LIMIT 1",
    )
    .bind(part(partition))
    .fetch_optional(&mut *tx)
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
    b: &PostgresBackend,
    partition: PartitionId,
    limit: usize,
) -> Result<ScanReport> {
    let limit = b.scan_limit(partition, limit)?;
    let now = b.now();
    let mut tx = b.begin().await?;
    let due: Vec<Uuid> = sqlx::query_scalar(
        "SELECT uuid FROM executions WHERE partition = $1 AND deadline IS NOT NULL \
         AND finished_at IS NULL AND deadline <= $2 ORDER BY deadline, uuid LIMIT $3 \
         FOR UPDATE SKIP LOCKED",
    )
    .bind(part(partition))
    .bind(now.as_millis())
    .bind(limit)
    .fetch_all(&mut *tx)
    .await
    .map_err(map)?;
    let row = sqlx::query(sql::EXPIRE)
        .bind(part(partition))
        .bind(&due)
        .bind(now.as_millis())
        .fetch_one(&mut *tx)
        .await
        .map_err(map)?;
    tx.commit().await.map_err(map)?;
    let processed: i64 = col(&row, "processed")?;
    Ok(ScanReport {
        processed: processed.max(0) as u64,
        next_due: col::<Option<i64>>(&row, "next_due")?.map(Timestamp::from_millis),
    })
}

pub(crate) async fn trim_terminal(
    b: &PostgresBackend,
    partition: PartitionId,
    retention: Duration,
    limit: usize,
) -> Result<ScanReport> {
    let limit = b.scan_limit(partition, limit)?;
    let now = b.now();
    let cutoff = now.saturating_sub(retention);
    let mut tx = b.begin().await?;
    let doomed: Vec<Uuid> = sqlx::query_scalar(
        "SELECT uuid FROM executions WHERE partition = $1 AND finished_at IS NOT NULL \
         AND finished_at <= $2 ORDER BY finished_at, uuid LIMIT $3 FOR UPDATE SKIP LOCKED",
    )
    .bind(part(partition))
    .bind(cutoff.as_millis())
    .bind(limit)
    .fetch_all(&mut *tx)
    .await
    .map_err(map)?;
    let row = sqlx::query(sql::TRIM)
        .bind(part(partition))
        .bind(&doomed)
        .fetch_one(&mut *tx)
        .await
        .map_err(map)?;
    tx.commit().await.map_err(map)?;
    let processed: i64 = col(&row, "processed")?;
    Ok(ScanReport {
        processed: processed.max(0) as u64,
        next_due: col::<Option<i64>>(&row, "oldest")?
            .map(|t| Timestamp::from_millis(t).saturating_add(retention)),
    })
}
