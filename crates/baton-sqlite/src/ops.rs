//! Operator control: priority and tag edits, revoking a lease, and the
//! worker registry. The decisions are [`rules::check_priority_edit`],
//! [`rules::tag_edit`] and [`rules::check_revoke`] (a revoke settles like
//! a reclaimed lease, [`rules::revoke_failure`]); this module reads the
//! facts and writes the verdict, in one transaction. Claims and renews
//! record their worker when [`baton_core::raw::Sightings`] says so.

use baton_core::raw::rules;
use baton_core::raw::stored::{in_range, parse as parsed};
use baton_core::{
    AttemptOutcome, ClaimRequest, EngineError, ExecutionId, ExecutionSnapshot, Explanation,
    Namespace, Page, QueueFacts, RenewRequest, Result, State, TagKey, Timestamp, WorkerInfo,
};

use crate::errors::map;
use crate::{SqliteBackend, blob};

pub(crate) async fn set_priority(
    b: &SqliteBackend,
    id: &ExecutionId,
    priority: i32,
) -> Result<ExecutionSnapshot> {
    b.check_id(id)?;
    let mut tx = b.begin().await?;
    let snap = b.snapshot_in(&mut tx, id).await?;
    rules::check_priority_edit(id, snap.state)?;
    if snap.priority == priority {
        tx.commit().await.map_err(map)?;
        return Ok(snap);
    }
    sqlx::query("UPDATE executions SET priority = ? WHERE uuid = ?")
        .bind(i64::from(priority))
        .bind(blob(id))
        .execute(&mut *tx)
        .await
        .map_err(map)?;
    let snap = b.snapshot_in(&mut tx, id).await?;
    tx.commit().await.map_err(map)?;
    Ok(snap)
}

pub(crate) async fn set_tag(
    b: &SqliteBackend,
    id: &ExecutionId,
    key: TagKey,
    value: Option<String>,
) -> Result<ExecutionSnapshot> {
    b.check_id(id)?;
    let mut tx = b.begin().await?;
    let snap = b.snapshot_in(&mut tx, id).await?;
    let Some(tags) = rules::tag_edit(id, snap.state, &snap.tags, &key, value.as_deref())? else {
        tx.commit().await.map_err(map)?;
        return Ok(snap);
    };
    let json = serde_json::to_string(&tags).map_err(|e| EngineError::corruption(e.to_string()))?;
    sqlx::query("UPDATE executions SET tags = ? WHERE uuid = ?")
        .bind(json)
        .bind(blob(id))
        .execute(&mut *tx)
        .await
        .map_err(map)?;
    match &value {
        Some(v) => sqlx::query(
            "INSERT INTO execution_tags (execution_uuid, namespace, key, value) VALUES (?, ?, ?, ?) \
             ON CONFLICT (execution_uuid, key) DO UPDATE SET value = excluded.value",
        )
        .bind(blob(id))
        .bind(snap.namespace.as_str())
        .bind(key.as_str())
        .bind(v.as_str()),
        None => sqlx::query("DELETE FROM execution_tags WHERE execution_uuid = ? AND key = ?")
            .bind(blob(id))
            .bind(key.as_str()),
    }
    .execute(&mut *tx)
    .await
    .map_err(map)?;
    let snap = b.snapshot_in(&mut tx, id).await?;
    tx.commit().await.map_err(map)?;
    Ok(snap)
}

pub(crate) async fn revoke(b: &SqliteBackend, id: &ExecutionId) -> Result<ExecutionSnapshot> {
    b.check_id(id)?;
    let now = b.now();
    let mut tx = b.begin().await?;
    let snap = b.snapshot_in(&mut tx, id).await?;
    rules::check_revoke(id, snap.state)?;
    let failure = rules::revoke_failure(&snap);
    let parents = b
        .apply_failure(&mut tx, &snap, AttemptOutcome::LeaseExpired, failure, now)
        .await?;
    let after = b.snapshot_in(&mut tx, id).await?;
    tx.commit().await.map_err(map)?;
    b.wake_all(parents);
    b.finished_some();
    if after.state == State::Waiting {
        b.inner
            .wake
            .notify(after.namespace.as_str(), after.lane.as_str());
    }
    Ok(after)
}

pub(crate) async fn workers(
    b: &SqliteBackend,
    namespace: &Namespace,
    limit: usize,
) -> Result<Vec<WorkerInfo>> {
    Page::first(limit).validate()?;
    let since = b.now().saturating_sub(b.inner.limits.worker_ttl);
    let mut conn = b.inner.reader.acquire().await.map_err(map)?;
    let rows: Vec<(String, String, String, i64, i64)> = sqlx::query_as(
        "SELECT worker_id, lanes, capabilities, last_seen, leases FROM workers \
         WHERE namespace = ? AND last_seen > ? ORDER BY worker_id LIMIT ?",
    )
    .bind(namespace.as_str())
    .bind(since.as_millis())
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(&mut *conn)
    .await
    .map_err(map)?;
    rows.into_iter()
        .map(|(worker, lanes, caps, last_seen, leases)| {
            let ctx = format!("worker {worker}");
            let names = |what: &str, raw: &str| -> Result<Vec<String>> {
                serde_json::from_str(raw)
                    .map_err(|e| EngineError::corruption(format!("{ctx}: {what}: {e}")))
            };
            Ok(WorkerInfo {
                worker_id: parsed("worker_id", &ctx, &worker)?,
                namespace: namespace.clone(),
                lanes: names("lanes", &lanes)?
                    .iter()
                    .map(|l| parsed("lane", &ctx, l))
                    .collect::<Result<_>>()?,
                capabilities: names("capabilities", &caps)?
                    .iter()
                    .map(|c| parsed("capability", &ctx, c))
                    .collect::<Result<_>>()?,
                last_seen: Timestamp::from_millis(last_seen),
                leases: in_range("leases", &ctx, leases)?,
            })
        })
        .collect()
}

/// Records the worker of a claim, when due. The registry is advisory: a
/// write that fails is logged and the claim goes on.
pub(crate) async fn saw_claim(b: &SqliteBackend, request: &ClaimRequest, now: Timestamp) {
    let ttl = b.inner.limits.worker_ttl;
    if !b.inner.sightings.claim_due(request, now, ttl) {
        return;
    }
    let lanes: std::collections::BTreeSet<&str> =
        request.lanes.iter().map(|l| l.as_str()).collect();
    let caps: Vec<&str> = request.capabilities.iter().map(|c| c.as_str()).collect();
    let written = async {
        let lanes =
            serde_json::to_string(&lanes).map_err(|e| EngineError::corruption(e.to_string()))?;
        let caps =
            serde_json::to_string(&caps).map_err(|e| EngineError::corruption(e.to_string()))?;
        let mut tx = b.begin().await?;
        sqlx::query(
            "INSERT INTO workers (namespace, worker_id, lanes, capabilities, last_seen) \
             VALUES (?, ?, ?, ?, ?) ON CONFLICT (namespace, worker_id) DO UPDATE SET \
             lanes = excluded.lanes, capabilities = excluded.capabilities, \
             last_seen = MAX(last_seen, excluded.last_seen)",
        )
        .bind(request.namespace.as_str())
        .bind(request.worker_id.as_str())
        .bind(lanes)
        .bind(caps)
        .bind(now.as_millis())
        .execute(&mut *tx)
        .await
        .map_err(map)?;
        forget_stale(&mut tx, b, now).await?;
        tx.commit().await.map_err(map)
    };
    if let Err(e) = written.await {
        tracing::debug!(worker = %request.worker_id, error = %e, "worker registry not written");
    }
}

/// Records the worker of a renew (every namespace it claims from), when
/// due; advisory like [`saw_claim`].
pub(crate) async fn saw_renew(b: &SqliteBackend, request: &RenewRequest, now: Timestamp) {
    let ttl = b.inner.limits.worker_ttl;
    if !b.inner.sightings.renew_due(request, now, ttl) {
        return;
    }
    let written = async {
        let mut tx = b.begin().await?;
        sqlx::query(
            "UPDATE workers SET last_seen = MAX(last_seen, ?), leases = ? WHERE worker_id = ?",
        )
        .bind(now.as_millis())
        .bind(i64::try_from(request.leases.len()).unwrap_or(i64::MAX))
        .bind(request.worker_id.as_str())
        .execute(&mut *tx)
        .await
        .map_err(map)?;
        tx.commit().await.map_err(map)
    };
    if let Err(e) = written.await {
        tracing::debug!(worker = %request.worker_id, error = %e, "worker registry not written");
    }
}

/// Removes workers unseen for ten TTLs: long forgotten by `workers`.
async fn forget_stale(
    conn: &mut sqlx::SqliteConnection,
    b: &SqliteBackend,
    now: Timestamp,
) -> Result<()> {
    let before = now.saturating_sub(b.inner.limits.worker_ttl.saturating_mul(10));
    sqlx::query("DELETE FROM workers WHERE last_seen < ?")
        .bind(before.as_millis())
        .execute(&mut *conn)
        .await
        .map_err(map)?;
    Ok(())
}

pub(crate) async fn explain(b: &SqliteBackend, id: &ExecutionId) -> Result<Explanation> {
    b.check_id(id)?;
    let mut conn = b.inner.reader.acquire().await.map_err(map)?;
    let snapshot = b.snapshot_in(&mut conn, id).await?;
    let facts = if snapshot.state == State::Waiting {
        let ahead: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM (SELECT 1 FROM executions e, executions me \
             WHERE me.uuid = ?1 AND e.namespace = me.namespace AND e.lane = me.lane \
             AND e.state = 'waiting' AND e.uuid <> me.uuid \
             AND (e.priority > me.priority OR (e.priority = me.priority \
                  AND (e.ready_at < me.ready_at \
                       OR (e.ready_at = me.ready_at AND e.uuid < me.uuid)))) \
             LIMIT ?2)",
        )
        .bind(blob(id))
        .bind(i64::try_from(QueueFacts::MAX_AHEAD).unwrap_or(i64::MAX))
        .fetch_one(&mut *conn)
        .await
        .map_err(map)?;
        drop(conn);
        QueueFacts {
            workers: workers(b, &snapshot.namespace, Page::MAX_LIMIT).await?,
            ahead: u64::try_from(ahead).unwrap_or(0),
        }
    } else {
        QueueFacts::default()
    };
    Ok(rules::explain(snapshot, &facts))
}
