//! Operator control: priority and tag edits, revoking a lease, and the
//! worker registry. The decisions are [`rules::check_priority_edit`],
//! [`rules::tag_edit`] and [`rules::check_revoke`] (a revoke settles like
//! a reclaimed lease, [`rules::revoke_failure`]); this module reads the
//! facts under the execution's row lock and writes the verdict, in one
//! transaction. Claims and renews record their worker when
//! [`baton_core::raw::Sightings`] says so.

use baton_core::raw::rules;
use baton_core::raw::stored::{in_range, parse as parsed};
use baton_core::{
    AttemptOutcome, ClaimRequest, EngineError, ExecutionId, ExecutionSnapshot, Explanation,
    Namespace, Page, QueueFacts, RenewRequest, Result, State, TagKey, Timestamp, WorkerInfo,
};
use sqlx::PgConnection;

use crate::errors::map;
use crate::lease::SettleArrays;
use crate::read::{self, col};
use crate::{PostgresBackend, finish, part};

pub(crate) async fn set_priority(
    b: &PostgresBackend,
    id: &ExecutionId,
    priority: i32,
) -> Result<ExecutionSnapshot> {
    b.check_id(id)?;
    let mut tx = b.begin().await?;
    let outcome = set_priority_in(b, &mut tx, id, priority).await;
    finish(tx, outcome).await
}

/// The body of `set_priority`. It locks the execution's row only, and
/// waits for nothing once it holds it, so it needs none of the ancestor
/// locks of the writers that finish executions.
async fn set_priority_in(
    b: &PostgresBackend,
    tx: &mut PgConnection,
    id: &ExecutionId,
    priority: i32,
) -> Result<ExecutionSnapshot> {
    let snap = b.snapshot(&b.lock_row(tx, id).await?)?;
    rules::check_priority_edit(id, snap.state)?;
    if snap.priority == priority {
        return Ok(snap);
    }
    // Claims read `priority` itself (the claim index orders by it), so a
    // waiting execution takes its new place at commit; `ready_at` keeps its
    // place in time within the priority.
    let row = sqlx::query(
        "UPDATE executions SET priority = $3 WHERE partition = $1 AND uuid = $2 RETURNING *",
    )
    .bind(part(id.partition()))
    .bind(id.uuid())
    .bind(priority)
    .fetch_one(&mut *tx)
    .await
    .map_err(map)?;
    b.snapshot(&row)
}

pub(crate) async fn set_tag(
    b: &PostgresBackend,
    id: &ExecutionId,
    key: TagKey,
    value: Option<String>,
) -> Result<ExecutionSnapshot> {
    b.check_id(id)?;
    let mut tx = b.begin().await?;
    let outcome = set_tag_in(b, &mut tx, id, &key, value.as_deref()).await;
    finish(tx, outcome).await
}

/// The body of `set_tag`; locks the execution's row only, like
/// [`set_priority_in`]. List filters read the `tags` column itself, so
/// they see the edit at commit.
async fn set_tag_in(
    b: &PostgresBackend,
    tx: &mut PgConnection,
    id: &ExecutionId,
    key: &TagKey,
    value: Option<&str>,
) -> Result<ExecutionSnapshot> {
    let snap = b.snapshot(&b.lock_row(tx, id).await?)?;
    let Some(tags) = rules::tag_edit(id, snap.state, &snap.tags, key, value)? else {
        return Ok(snap);
    };
    let json = serde_json::to_string(&tags).map_err(|e| EngineError::corruption(e.to_string()))?;
    let row = sqlx::query(
        "UPDATE executions SET tags = $3::jsonb WHERE partition = $1 AND uuid = $2 RETURNING *",
    )
    .bind(part(id.partition()))
    .bind(id.uuid())
    .bind(json)
    .fetch_one(&mut *tx)
    .await
    .map_err(map)?;
    b.snapshot(&row)
}

pub(crate) async fn revoke(b: &PostgresBackend, id: &ExecutionId) -> Result<ExecutionSnapshot> {
    b.check_id(id)?;
    let now = b.now();
    let mut tx = b.begin().await?;
    let outcome = revoke_in(b, &mut tx, id, now).await;
    let snap = finish(tx, outcome).await?;
    // The settle statement notifies other processes; waiters of this one
    // are woken here, as `fail` does.
    if snap.state == State::Waiting {
        b.inner
            .wake
            .notify(snap.namespace.as_str(), snap.lane.as_str());
    }
    Ok(snap)
}

/// The body of `revoke`: what `fail` does for a live lease, with the
/// revoke's failure and the outcome of an expired lease, which is what the
/// reclaim pass settles.
async fn revoke_in(
    b: &PostgresBackend,
    tx: &mut PgConnection,
    id: &ExecutionId,
    now: Timestamp,
) -> Result<ExecutionSnapshot> {
    // The flow's root (when it has dependents) and the parent before the
    // execution (see `flow::deps`): a revoke of the last attempt finishes
    // it, which counts its parent down and tells its dependents.
    let (p, u) = ([part(id.partition())], [id.uuid()]);
    let roots_of = crate::flow::RootsOf::Dependents;
    let root_locked = !crate::flow::lock_ancestors(tx, &p, &u, roots_of)
        .await?
        .is_empty();
    let row = b.lock_row(tx, id).await?;
    let snap = b.snapshot(&row)?;
    rules::check_revoke(id, snap.state)?;
    if read::has_dependents(&row)? && !root_locked {
        crate::flow::lock_root_of(tx, id).await?;
    }
    let released = u32::try_from(col::<i32>(&row, "released")?).unwrap_or(0);
    let failure = rules::revoke_failure(&snap);
    let mut settle = SettleArrays::default();
    settle.push(&snap, released, &failure, &b.inner.limits, now);
    let rows = settle.run(b, tx, AttemptOutcome::LeaseExpired, now).await?;
    let row = rows
        .first()
        .ok_or_else(|| EngineError::corruption(format!("execution {id}: a locked row vanished")))?;
    b.snapshot(row)
}

/// A `workers` row: worker id, lanes, capabilities, last seen, leases.
type WorkerRow = (String, Vec<String>, Vec<String>, i64, i32);

pub(crate) async fn workers(
    b: &PostgresBackend,
    namespace: &Namespace,
    limit: usize,
) -> Result<Vec<WorkerInfo>> {
    Page::first(limit).validate()?;
    let since = b.now().saturating_sub(b.inner.limits.worker_ttl);
    let rows: Vec<WorkerRow> = sqlx::query_as(
        "SELECT worker_id, lanes, capabilities, last_seen, leases FROM workers \
         WHERE namespace = $1 AND last_seen > $2 ORDER BY worker_id LIMIT $3",
    )
    .bind(namespace.as_str())
    .bind(since.as_millis())
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(&b.inner.pool)
    .await
    .map_err(map)?;
    rows.into_iter()
        .map(|(worker, lanes, caps, last_seen, leases)| {
            let ctx = format!("worker {worker}");
            Ok(WorkerInfo {
                worker_id: parsed("worker_id", &ctx, &worker)?,
                namespace: namespace.clone(),
                lanes: lanes
                    .iter()
                    .map(|l| parsed("lane", &ctx, l))
                    .collect::<Result<_>>()?,
                capabilities: caps
                    .iter()
                    .map(|c| parsed("capability", &ctx, c))
                    .collect::<Result<_>>()?,
                last_seen: Timestamp::from_millis(last_seen),
                leases: in_range("leases", &ctx, i64::from(leases))?,
            })
        })
        .collect()
}

/// Records the worker of a claim, when due, and forgets workers unseen for
/// ten TTLs (long past what `workers` lists). The registry is advisory: a
/// write that fails is logged and the claim goes on.
///
/// One statement outside any transaction, so it holds its row locks only
/// while it runs. The stale rows are taken with `SKIP LOCKED`, so two
/// recordings never wait on each other's deletions (which they could take
/// in different orders); a row skipped is removed by a later recording.
/// The worker's own row is never among them: it is upserted instead.
pub(crate) async fn saw_claim(b: &PostgresBackend, request: &ClaimRequest, now: Timestamp) {
    let ttl = b.inner.limits.worker_ttl;
    if !b.inner.sightings.claim_due(request, now, ttl) {
        return;
    }
    let mut lanes: Vec<&str> = request.lanes.iter().map(|l| l.as_str()).collect();
    lanes.sort_unstable();
    lanes.dedup();
    let caps: Vec<&str> = request.capabilities.iter().map(|c| c.as_str()).collect();
    let stale = now.saturating_sub(ttl.saturating_mul(10));
    let written = sqlx::query(
        "WITH forgotten AS ( \
             DELETE FROM workers WHERE (namespace, worker_id) IN ( \
                 SELECT namespace, worker_id FROM workers \
                 WHERE last_seen < $6 AND NOT (namespace = $1 AND worker_id = $2) \
                 FOR UPDATE SKIP LOCKED) \
         ) \
         INSERT INTO workers (namespace, worker_id, lanes, capabilities, last_seen) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (namespace, worker_id) DO UPDATE SET \
             lanes = excluded.lanes, capabilities = excluded.capabilities, \
             last_seen = GREATEST(workers.last_seen, excluded.last_seen)",
    )
    .bind(request.namespace.as_str())
    .bind(request.worker_id.as_str())
    .bind(lanes)
    .bind(caps)
    .bind(now.as_millis())
    .bind(stale.as_millis())
    .execute(&b.inner.pool)
    .await;
    if let Err(e) = written {
        tracing::debug!(worker = %request.worker_id, error = %e, "worker registry not written");
    }
}

/// Records the worker of a renew (in every namespace it claims from), when
/// due; advisory like [`saw_claim`], and one statement outside any
/// transaction as well.
pub(crate) async fn saw_renew(b: &PostgresBackend, request: &RenewRequest, now: Timestamp) {
    let ttl = b.inner.limits.worker_ttl;
    if !b.inner.sightings.renew_due(request, now, ttl) {
        return;
    }
    let written = sqlx::query(
        "UPDATE workers SET last_seen = GREATEST(last_seen, $1), leases = $2 WHERE worker_id = $3",
    )
    .bind(now.as_millis())
    .bind(i32::try_from(request.leases.len()).unwrap_or(i32::MAX))
    .bind(request.worker_id.as_str())
    .execute(&b.inner.pool)
    .await;
    if let Err(e) = written {
        tracing::debug!(worker = %request.worker_id, error = %e, "worker registry not written");
    }
}

pub(crate) async fn explain(b: &PostgresBackend, id: &ExecutionId) -> Result<Explanation> {
    let snapshot = crate::admin::describe(b, id).await?;
    let facts = if snapshot.state == State::Waiting {
        // The claim order (priority, ready time, uuid) over the lane's
        // waiting executions of every partition: the claim index's order.
        let ahead: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM (SELECT 1 FROM executions e \
             JOIN executions me ON me.partition = $1 AND me.uuid = $2 \
             WHERE e.state = 'waiting' AND e.namespace = me.namespace AND e.lane = me.lane \
             AND (e.priority > me.priority \
                  OR (e.priority = me.priority AND (e.ready_at < me.ready_at \
                      OR (e.ready_at = me.ready_at AND e.uuid < me.uuid)))) \
             LIMIT $3) ahead",
        )
        .bind(part(id.partition()))
        .bind(id.uuid())
        .bind(i64::try_from(QueueFacts::MAX_AHEAD).unwrap_or(i64::MAX))
        .fetch_one(&b.inner.pool)
        .await
        .map_err(map)?;
        QueueFacts {
            workers: workers(b, &snapshot.namespace, Page::MAX_LIMIT).await?,
            ahead: u64::try_from(ahead).unwrap_or(0),
        }
    } else {
        QueueFacts::default()
    };
    Ok(rules::explain(snapshot, &facts))
}
