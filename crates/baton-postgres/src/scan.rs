//! The scheduler's passes: promote, reclaim, expire, trim.

use std::time::Duration;

use baton_core::{
    AttemptOutcome, ExecutionId, Failure, PartitionId, Result, ScanReport, State, Timestamp,
};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::errors::map;
use crate::lease::SettleArrays;
use crate::read::col;
use crate::{PostgresBackend, finish, part, sql};

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
    // Roots (of those with dependents) and parents first (see
    // `flow::lock_ancestors`): of the executions due, read without a lock,
    // then the due ones themselves under their locks; one that gained
    // dependents since it was read is left to the next pass.
    let due: Vec<Uuid> = sqlx::query_scalar(
        "SELECT uuid FROM executions WHERE partition = $1 AND state = 'running' \
         AND lease_expires_at <= $2 ORDER BY lease_expires_at, uuid LIMIT $3",
    )
    .bind(part(partition))
    .bind(now.as_millis())
    .bind(limit)
    .fetch_all(&mut *tx)
    .await
    .map_err(map)?;
    let roots_of = crate::flow::RootsOf::Dependents;
    let covered = crate::flow::lock_ancestors_in(&mut tx, partition, &due, roots_of).await?;
    let rows = sqlx::query(
        "SELECT * FROM executions WHERE partition = $1 AND state = 'running' \
         AND lease_expires_at <= $2 AND (NOT has_dependents OR uuid = ANY($4)) \
         ORDER BY lease_expires_at, uuid LIMIT $3 FOR UPDATE SKIP LOCKED",
    )
    .bind(part(partition))
    .bind(now.as_millis())
    .bind(limit)
    .bind(&covered)
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
        let released = u32::try_from(col::<i32>(row, "released")?).unwrap_or(0);
        settle.push(
            &snap,
            released,
            &Failure::retryable(error),
            &b.inner.limits,
            now,
        );
    }
    let mut woken = Vec::new();
    if !rows.is_empty() {
        for row in settle
            .run(b, &mut tx, AttemptOutcome::LeaseExpired, now)
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
    let outcome = expire_in(b, &mut tx, partition, limit, now).await;
    finish(tx, outcome).await
}

/// The body of `expire_deadlines`, in the caller's transaction.
async fn expire_in(
    b: &PostgresBackend,
    tx: &mut PgConnection,
    partition: PartitionId,
    limit: i64,
    now: Timestamp,
) -> Result<ScanReport> {
    // The roots of the flows of those that are members, or have
    // dependents, and the parents first (see `flow::lock_ancestors`): an
    // expiry tells dependents and cancels descendants. Of the executions
    // due, read without a lock, then the due ones themselves under their
    // locks; a root is its own, locked there; a member not read here is
    // left to the next pass.
    let candidates: Vec<Uuid> = sqlx::query_scalar(
        "SELECT uuid FROM executions WHERE partition = $1 AND deadline IS NOT NULL \
         AND finished_at IS NULL AND deadline <= $2 ORDER BY deadline, uuid LIMIT $3",
    )
    .bind(part(partition))
    .bind(now.as_millis())
    .bind(limit)
    .fetch_all(&mut *tx)
    .await
    .map_err(map)?;
    let roots_of = crate::flow::RootsOf::Members;
    let covered = crate::flow::lock_ancestors_in(tx, partition, &candidates, roots_of).await?;
    let due: Vec<(Uuid, Option<String>, bool)> = sqlx::query_as(
        "SELECT uuid, parent, has_dependents FROM executions WHERE partition = $1 \
         AND deadline IS NOT NULL AND finished_at IS NULL AND deadline <= $2 \
         AND (root IS NULL OR uuid = ANY($4)) \
         ORDER BY deadline, uuid LIMIT $3 FOR UPDATE SKIP LOCKED",
    )
    .bind(part(partition))
    .bind(now.as_millis())
    .bind(limit)
    .bind(&covered)
    .fetch_all(&mut *tx)
    .await
    .map_err(map)?;
    let uuids: Vec<Uuid> = due.iter().map(|(u, _, _)| *u).collect();
    let row = sqlx::query(sql::EXPIRE)
        .bind(part(partition))
        .bind(&uuids)
        .bind(now.as_millis())
        .fetch_one(&mut *tx)
        .await
        .map_err(map)?;
    let processed: i64 = col(&row, "processed")?;
    let parents = due
        .iter()
        .filter_map(|(_, p, _)| p.clone().map(|p| (p, now)));
    crate::flow::parents_finished(tx, parents, &b.inner.channel).await?;
    let expired = due
        .iter()
        .map(|(u, _, has_dependents)| {
            ExecutionId::from_parts(*u, partition, b.inner.partitions)
                .map(|id| (id, *has_dependents))
        })
        .collect::<Result<Vec<_>>>()?;
    crate::flow::cascade_expired(b, tx, &expired, now).await?;
    let next: Option<i64> = sqlx::query_scalar(
        "SELECT MIN(deadline) FROM executions WHERE partition = $1 \
         AND deadline IS NOT NULL AND finished_at IS NULL",
    )
    .bind(part(partition))
    .fetch_one(&mut *tx)
    .await
    .map_err(map)?;
    Ok(ScanReport {
        processed: processed.max(0) as u64,
        next_due: next.map(Timestamp::from_millis),
    })
}

pub(crate) async fn trim_terminal(
    b: &PostgresBackend,
    partition: PartitionId,
    retention: Duration,
    limit: usize,
) -> Result<ScanReport> {
    let bound = b.scan_limit(partition, limit)?;
    let now = b.now();
    let mut tx = b.begin().await?;
    let outcome = trim_in(b, &mut tx, partition, retention, limit, bound, now).await;
    finish(tx, outcome).await
}

/// The body of `trim_terminal`, in the caller's transaction. Roots only (an
/// execution outside flows is its own root): members are trimmed with
/// their root, newest first (no parent before its children), the root
/// last; a root whose flow still runs is looked at again a retention
/// later.
async fn trim_in(
    b: &PostgresBackend,
    tx: &mut PgConnection,
    partition: PartitionId,
    retention: Duration,
    limit: usize,
    bound: i64,
    now: Timestamp,
) -> Result<ScanReport> {
    let cutoff = now.saturating_sub(retention);
    let roots: Vec<Uuid> = sqlx::query_scalar(
        "SELECT uuid FROM executions WHERE partition = $1 AND finished_at IS NOT NULL \
         AND root IS NULL AND COALESCE(trim_at, finished_at) <= $2 \
         ORDER BY COALESCE(trim_at, finished_at), uuid LIMIT $3 FOR UPDATE SKIP LOCKED",
    )
    .bind(part(partition))
    .bind(cutoff.as_millis())
    .bind(bound)
    .fetch_all(&mut *tx)
    .await
    .map_err(map)?;
    let mut processed = 0usize;
    for uuid in roots {
        if processed >= limit {
            break;
        }
        let root = ExecutionId::from_parts(uuid, partition, b.inner.partitions)?.to_string();
        let open: Option<i32> = sqlx::query_scalar(
            "SELECT 1 FROM executions WHERE partition = $1 AND root = $2 \
             AND finished_at IS NULL LIMIT 1",
        )
        .bind(part(partition))
        .bind(&root)
        .fetch_optional(&mut *tx)
        .await
        .map_err(map)?;
        if open.is_some() {
            sqlx::query("UPDATE executions SET trim_at = $3 WHERE partition = $1 AND uuid = $2")
                .bind(part(partition))
                .bind(uuid)
                .bind(now.as_millis())
                .execute(&mut *tx)
                .await
                .map_err(map)?;
            continue;
        }
        let asked = limit - processed;
        let mut doomed: Vec<Uuid> = sqlx::query_scalar(
            "SELECT uuid FROM executions WHERE partition = $1 AND root = $2 \
             ORDER BY uuid DESC LIMIT $3 FOR UPDATE",
        )
        .bind(part(partition))
        .bind(&root)
        .bind(asked as i64)
        .fetch_all(&mut *tx)
        .await
        .map_err(map)?;
        let members = doomed.len();
        let more = members == asked
            && sqlx::query_scalar::<_, i32>(
                "SELECT 1 FROM executions WHERE partition = $1 AND root = $2 \
                 AND uuid <> ALL($3::uuid[]) LIMIT 1",
            )
            .bind(part(partition))
            .bind(&root)
            .bind(&doomed)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map)?
            .is_some();
        if !more && members < asked {
            doomed.push(uuid);
        }
        let gone = remove(tx, partition, &doomed).await?;
        processed += usize::try_from(gone).unwrap_or(usize::MAX);
    }
    let oldest: Option<i64> = sqlx::query_scalar(
        "SELECT MIN(COALESCE(trim_at, finished_at)) FROM executions WHERE partition = $1 \
         AND finished_at IS NOT NULL AND root IS NULL",
    )
    .bind(part(partition))
    .fetch_one(&mut *tx)
    .await
    .map_err(map)?;
    Ok(ScanReport {
        processed: processed as u64,
        next_due: oldest.map(|t| Timestamp::from_millis(t).saturating_add(retention)),
    })
}

/// Deletes the executions `uuids` of `partition`, which the caller locked
/// earlier in its transaction, with everything they hold (`sql/trim.sql`);
/// answers how many went. Trimming and deleting remove executions through
/// this one statement.
pub(crate) async fn remove(
    conn: &mut PgConnection,
    partition: PartitionId,
    uuids: &[Uuid],
) -> Result<u64> {
    if uuids.is_empty() {
        return Ok(0);
    }
    let row = sqlx::query(sql::TRIM)
        .bind(part(partition))
        .bind(uuids)
        .fetch_one(&mut *conn)
        .await
        .map_err(map)?;
    let gone: i64 = col(&row, "processed")?;
    Ok(u64::try_from(gone).unwrap_or(0))
}
