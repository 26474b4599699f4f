//! The scheduler's passes: promote, reclaim, expire, trim.

use std::time::Duration;

use baton_core::raw::rules::{self, TrimVerdict};
use baton_core::{
    AttemptOutcome, ExecutionId, Failure, PartitionId, Result, ScanReport, Timestamp,
};
use sqlx::SqliteConnection;

use crate::errors::map;
use crate::read::{self};
use crate::{SqliteBackend, blob};

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
    let mut parents = Vec::new();
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
        // A worker whose lease lapsed is taken for dead: its session goes
        // to the next claimer at once.
        crate::claim::release_session(&mut tx, &snap).await?;
        let released = b
            .apply_failure(
                &mut tx,
                &snap,
                AttemptOutcome::LeaseExpired,
                Failure::retryable(error),
                now,
            )
            .await?;
        parents.extend(released);
        woken.push((snap.namespace, snap.lane));
    }
    // Lapsed session locks of the partition are nobody's: drop them (a
    // claim would replace them anyway; this keeps the table to live ones).
    sqlx::query(
        "DELETE FROM sessions WHERE (namespace, session) IN (SELECT namespace, session \
         FROM sessions WHERE partition = ? AND expires_at <= ? LIMIT ?)",
    )
    .bind(i64::from(partition.get()))
    .bind(now.as_millis())
    .bind(limit)
    .execute(&mut *tx)
    .await
    .map_err(map)?;
    let next: Option<i64> = sqlx::query_scalar(
        "SELECT MIN(lease_expires_at) FROM executions WHERE partition = ? AND state = 'running'",
    )
    .bind(i64::from(partition.get()))
    .fetch_one(&mut *tx)
    .await
    .map_err(map)?;
    tx.commit().await.map_err(map)?;
    b.finished_some();
    for (ns, lane) in &woken {
        b.inner.wake.notify(ns.as_str(), lane.as_str());
    }
    b.wake_all(parents);
    Ok(ScanReport {
        processed: rows.len() as u64,
        next_due: next.map(Timestamp::from_millis),
    })
}

/// An execution whose deadline passed: uuid, partition, state, attempts,
/// parent, has_dependents.
type DueRow = (Vec<u8>, i64, String, i64, Option<String>, i64);

pub(crate) async fn expire_deadlines(
    b: &SqliteBackend,
    partition: PartitionId,
    limit: usize,
) -> Result<ScanReport> {
    let limit = b.scan_limit(partition, limit)?;
    let now = b.now();
    let mut tx = b.begin().await?;
    let rows: Vec<DueRow> = sqlx::query_as(
        "SELECT uuid, partition, state, attempts, parent, has_dependents FROM executions \
         WHERE partition = ? \
         AND deadline IS NOT NULL AND finished_at IS NULL AND deadline <= ? \
         ORDER BY deadline, uuid LIMIT ?",
    )
    .bind(i64::from(partition.get()))
    .bind(now.as_millis())
    .bind(limit)
    .fetch_all(&mut *tx)
    .await
    .map_err(map)?;
    let mut wake = Vec::new();
    for (uuid, _, state, attempts, parent, _) in &rows {
        if state == "running" {
            sqlx::query(
                "UPDATE executions SET attempt_ended_at = ?, attempt_outcome = 'expired' \
                 WHERE uuid = ? AND attempts = ? AND attempt_started_at IS NOT NULL \
                 AND attempt_outcome IS NULL",
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
        if let Some(parent) = parent {
            let parent = baton_core::raw::stored::parse::<ExecutionId>(
                "parent",
                "an expiring execution",
                parent,
            )?;
            wake.extend(crate::flow::children_finished(&mut tx, &parent, 1, now).await?);
        }
    }
    let expired = rows
        .iter()
        .map(|(uuid, p, _, _, _, has)| {
            Ok((read::stored_id(uuid, *p, b.inner.partitions)?, *has == 1))
        })
        .collect::<Result<Vec<_>>>()?;
    wake.extend(crate::flow::cascade_expired(b, &mut tx, &expired, now).await?);
    let next: Option<i64> = sqlx::query_scalar(
        "SELECT MIN(deadline) FROM executions WHERE partition = ? \
         AND deadline IS NOT NULL AND finished_at IS NULL",
    )
    .bind(i64::from(partition.get()))
    .fetch_one(&mut *tx)
    .await
    .map_err(map)?;
    tx.commit().await.map_err(map)?;
    b.wake_all(wake);
    b.finished_some();
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
    let bound = b.scan_limit(partition, limit)?;
    let now = b.now();
    let default_ms = u64::try_from(retention.as_millis()).unwrap_or(u64::MAX);
    let cutoff = now.saturating_sub(retention);
    let mut tx = b.begin().await?;
    // Roots only (an execution outside flows is its own root): members are
    // trimmed with their root, newest first, so no parent goes before its
    // children, and the root last. Two range reads, each on its index
    // (migration 0012), so only due roots are read: those stamped with a
    // rule's keep, and the rest against the default.
    let mut due: Vec<(i64, TrimRoot)> = Vec::new();
    for (sql, bound_at) in [
        (
            "SELECT uuid, partition, namespace, lane, COALESCE(trim_at, finished_at) AS since, \
             keep_ms FROM executions WHERE partition = ? AND finished_at IS NOT NULL \
             AND root IS NULL AND keep_ms IS NOT NULL \
             AND COALESCE(trim_at, finished_at) + keep_ms <= ? \
             ORDER BY COALESCE(trim_at, finished_at) + keep_ms, uuid LIMIT ?",
            now,
        ),
        (
            "SELECT uuid, partition, namespace, lane, COALESCE(trim_at, finished_at) AS since, \
             keep_ms FROM executions WHERE partition = ? AND finished_at IS NOT NULL \
             AND root IS NULL AND keep_ms IS NULL AND COALESCE(trim_at, finished_at) <= ? \
             ORDER BY COALESCE(trim_at, finished_at), uuid LIMIT ?",
            cutoff,
        ),
    ] {
        let rows = sqlx::query(sql)
            .bind(i64::from(partition.get()))
            .bind(bound_at.as_millis())
            .bind(bound)
            .fetch_all(&mut *tx)
            .await
            .map_err(map)?;
        for row in &rows {
            let root = TrimRoot {
                id: read::execution_id(row, b.inner.partitions)?,
                namespace: read::col(row, "namespace")?,
                lane: read::col(row, "lane")?,
                since: read::col(row, "since")?,
                keep: read::col::<Option<i64>>(row, "keep_ms")?.map(|k| k.max(0) as u64),
            };
            let keep = root.keep.unwrap_or(default_ms);
            due.push((
                root.since
                    .saturating_add(i64::try_from(keep).unwrap_or(i64::MAX)),
                root,
            ));
        }
    }
    due.sort_by(|a, b| (a.0, &a.1.id).cmp(&(b.0, &b.1.id)));
    due.truncate(usize::try_from(bound).unwrap_or(usize::MAX));
    let mut namespaces: Vec<&str> = due.iter().map(|(_, r)| r.namespace.as_str()).collect();
    namespaces.sort_unstable();
    namespaces.dedup();
    let in_force = crate::manage::rules_of(&mut tx, &namespaces).await?;
    let mut processed = 0usize;
    for (_, root) in &due {
        if processed >= limit {
            break;
        }
        let current = rules::keep_for(
            in_force
                .iter()
                .map(|(ns, lane, keep)| (ns.as_str(), lane.as_str(), *keep)),
            &root.namespace,
            &root.lane,
        );
        let uuid = blob(&root.id);
        let mut verdict = rules::trim_verdict(current, default_ms, root.since, now.as_millis());
        let text = root.id.to_string();
        if verdict == TrimVerdict::Trim {
            let open: Option<i64> = sqlx::query_scalar(
                "SELECT 1 FROM executions WHERE root = ? AND finished_at IS NULL LIMIT 1",
            )
            .bind(&text)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map)?;
            if open.is_some() {
                // Its flow is still running: looked at again a keep later.
                verdict = rules::trim_relook(current, now.as_millis());
            }
        }
        if let TrimVerdict::Later { keep, since } = verdict {
            sqlx::query("UPDATE executions SET keep_ms = ?, trim_at = ? WHERE uuid = ?")
                .bind(keep.map(|k| i64::try_from(k).unwrap_or(i64::MAX)))
                .bind(since)
                .bind(uuid.as_slice())
                .execute(&mut *tx)
                .await
                .map_err(map)?;
            continue;
        }
        let asked = limit - processed;
        let members: Vec<Vec<u8>> = sqlx::query_scalar(
            "SELECT uuid FROM executions WHERE root = ? ORDER BY uuid DESC LIMIT ?",
        )
        .bind(&text)
        .bind(asked as i64)
        .fetch_all(&mut *tx)
        .await
        .map_err(map)?;
        for m in &members {
            delete(&mut tx, m).await?;
        }
        processed += members.len();
        let more = members.len() == asked
            && sqlx::query_scalar::<_, i64>("SELECT 1 FROM executions WHERE root = ? LIMIT 1")
                .bind(&text)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map)?
                .is_some();
        if !more && processed < limit {
            delete(&mut tx, &uuid).await?;
            processed += 1;
        }
    }
    // The earliest a root left falls due, from each index's first entry.
    let (plain, kept): (Option<i64>, Option<i64>) = sqlx::query_as(
        "SELECT (SELECT MIN(COALESCE(trim_at, finished_at)) FROM executions \
                 WHERE partition = ?1 AND finished_at IS NOT NULL AND root IS NULL \
                 AND keep_ms IS NULL), \
                (SELECT MIN(COALESCE(trim_at, finished_at) + keep_ms) FROM executions \
                 WHERE partition = ?1 AND finished_at IS NOT NULL AND root IS NULL \
                 AND keep_ms IS NOT NULL)",
    )
    .bind(i64::from(partition.get()))
    .fetch_one(&mut *tx)
    .await
    .map_err(map)?;
    tx.commit().await.map_err(map)?;
    // A reader waiting on a trimmed execution reads NotFound at once.
    if processed > 0 {
        b.finished_some();
    }
    let plain = plain.map(|t| Timestamp::from_millis(t).saturating_add(retention));
    let kept = kept.map(Timestamp::from_millis);
    Ok(ScanReport {
        processed: processed as u64,
        next_due: plain.into_iter().chain(kept).min(),
    })
}

/// A finished root the trim pass read as due.
struct TrimRoot {
    id: ExecutionId,
    namespace: String,
    lane: String,
    /// When its keep counts from: its finish, or the last look at its open
    /// flow.
    since: i64,
    /// The keep it is stamped with; `None`: the default.
    keep: Option<u64>,
}

/// Deletes one execution with its attempts, tags, edges, signals, steps,
/// state, progress frames and events.
pub(crate) async fn delete(conn: &mut SqliteConnection, uuid: &[u8]) -> Result<()> {
    delete_many(conn, &[uuid.to_vec()]).await
}

/// Deletes executions (at most a thousand) as [`delete`] does, each table
/// in one statement.
pub(crate) async fn delete_many(conn: &mut SqliteConnection, uuids: &[Vec<u8>]) -> Result<()> {
    if uuids.is_empty() {
        return Ok(());
    }
    for (table, column) in [
        ("attempts", "execution_uuid"),
        ("execution_tags", "execution_uuid"),
        ("dependencies", "downstream"),
        ("dependencies", "upstream"),
        ("signals", "uuid"),
        ("steps", "uuid"),
        ("execution_state", "uuid"),
        ("progress_frames", "uuid"),
        ("executions", "uuid"),
        // After the execution: its delete records no event, but the
        // statements above may have (none do today).
        ("events", "uuid"),
    ] {
        let mut qb: sqlx::QueryBuilder<'_, sqlx::Sqlite> =
            sqlx::QueryBuilder::new(format!("DELETE FROM {table} WHERE {column} IN ("));
        let mut list = qb.separated(", ");
        for uuid in uuids {
            list.push_bind(uuid.as_slice());
        }
        qb.push(")");
        qb.build().execute(&mut *conn).await.map_err(map)?;
    }
    Ok(())
}
