//! Operator control: priority and tag edits, revoking a lease, the worker
//! registry, pausing and resuming (executions, trees, lanes) and replay.
//! The decisions are [`rules::check_priority_edit`], [`rules::tag_edit`],
//! [`rules::check_revoke`] (a revoke settles like a reclaimed lease,
//! [`rules::revoke_failure`]), [`rules::check_pause`],
//! [`rules::resume_target`] and [`rules::check_replay`]; this module reads
//! the facts under the execution's row lock and writes the verdict, in one
//! transaction. Claims and renews record their worker when
//! [`baton_core::raw::Sightings`] says so.
//!
//! Locks. A pause or resume of one execution (scope `execution`) locks its
//! row alone and waits for nothing else while it holds it, like a priority
//! edit: it finishes nothing, so it counts no parent down and tells no
//! dependent. With scope `tree` it then locks its descendants page by page
//! (parents before children), which would close a cycle with a writer
//! telling dependents (which holds a dependent and counts its parent down
//! later), so it locks the flow's root and the parent first, as a cancel
//! does (see `flow::deps`). A replay locks the same way: it re-opens its
//! parent and its flow, and holding the root keeps the retention pass
//! (which locks roots with `SKIP LOCKED`) from trimming the flow under it.

use baton_core::raw::cascade::{CascadeWalk, TreeAction};
use baton_core::raw::rules;
use baton_core::raw::stored::{in_range, parse as parsed};
use baton_core::{
    AttemptOutcome, CancelScope, ClaimRequest, EngineError, EventKind, ExecutionId,
    ExecutionSnapshot, Explanation, Lane, LaneInfo, Namespace, Page, PartitionCount, PartitionId,
    PauseOutcome, QueueFacts, RenewRequest, Result, SessionLock, State, TagKey, Timestamp,
    WorkerInfo,
};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::errors::map;
use crate::lease::SettleArrays;
use crate::read::{self, col};
use crate::{PostgresBackend, finish, part, sql};

/// A lane to wake once the transaction committed: `(namespace, lane)`.
pub(crate) type WokenLane = (String, String);

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
    let detail = rules::priority_detail(priority);
    let kind = EventKind::PriorityChanged;
    if crate::manage::keeps_history(&row)? {
        crate::manage::note(tx, id, b.now(), snap.attempts, kind, &detail).await?;
    }
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
    let detail = rules::tag_detail(key.as_str(), value);
    let kind = EventKind::TagChanged;
    if crate::manage::keeps_history(&row)? {
        crate::manage::note(tx, id, b.now(), snap.attempts, kind, &detail).await?;
    }
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
    // As a reclaim does: the revoked worker's session goes to the next
    // claimer (the session row after the execution's, the claim's order).
    if let (Some(session), Some(worker)) = (&snap.session, &snap.worker_id) {
        sqlx::query(
            "DELETE FROM sessions WHERE namespace = $1 AND session = $2 AND worker_id = $3",
        )
        .bind(snap.namespace.as_str())
        .bind(session.as_str())
        .bind(worker.as_str())
        .execute(&mut *tx)
        .await
        .map_err(map)?;
    }
    let row = rows
        .first()
        .ok_or_else(|| EngineError::corruption(format!("execution {id}: a locked row vanished")))?;
    b.snapshot(row)
}

/// A `workers` row: worker id, lanes, capabilities, last seen, leases,
/// versions.
type WorkerRow = (String, Vec<String>, Vec<String>, i64, i32, String);

pub(crate) async fn workers(
    b: &PostgresBackend,
    namespace: &Namespace,
    limit: usize,
) -> Result<Vec<WorkerInfo>> {
    Page::first(limit).validate()?;
    let since = b.now().saturating_sub(b.inner.limits.worker_ttl);
    let rows: Vec<WorkerRow> = sqlx::query_as(
        "SELECT worker_id, lanes, capabilities, last_seen, leases, versions FROM workers \
         WHERE namespace = $1 AND last_seen > $2 ORDER BY worker_id LIMIT $3",
    )
    .bind(namespace.as_str())
    .bind(since.as_millis())
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(&b.inner.pool)
    .await
    .map_err(map)?;
    rows.into_iter()
        .map(|(worker, lanes, caps, last_seen, leases, versions)| {
            let ctx = format!("worker {worker}");
            Ok(WorkerInfo {
                versions: baton_core::VersionRange::from_stored(&ctx, &versions)?,
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
         INSERT INTO workers (namespace, worker_id, lanes, capabilities, last_seen, versions) \
         VALUES ($1, $2, $3, $4, $5, $7) ON CONFLICT (namespace, worker_id) DO UPDATE SET \
             lanes = excluded.lanes, capabilities = excluded.capabilities, \
             versions = excluded.versions, \
             last_seen = GREATEST(workers.last_seen, excluded.last_seen)",
    )
    .bind(request.namespace.as_str())
    .bind(request.worker_id.as_str())
    .bind(lanes)
    .bind(caps)
    .bind(now.as_millis())
    .bind(stale.as_millis())
    .bind(request.versions.to_stored())
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
            session_owner: session_owner(b, &snapshot).await?,
            workers: workers(b, &snapshot.namespace, Page::MAX_LIMIT).await?,
            ahead: u64::try_from(ahead).unwrap_or(0),
            lane_paused: lane_paused(b, &snapshot.namespace, &snapshot.lane).await?,
            limited: crate::limits::limited(b, &snapshot, b.now()).await?,
        }
    } else {
        QueueFacts::default()
    };
    Ok(rules::explain(snapshot, &facts))
}

/// The live lock of `snap`'s session, whoever holds it (`None` without a
/// session, or when nobody holds it now).
async fn session_owner(
    b: &PostgresBackend,
    snap: &ExecutionSnapshot,
) -> Result<Option<SessionLock>> {
    let Some(session) = &snap.session else {
        return Ok(None);
    };
    let found: Option<(String, i64)> = sqlx::query_as(
        "SELECT worker_id, expires_at FROM sessions \
         WHERE namespace = $1 AND session = $2 AND expires_at > $3",
    )
    .bind(snap.namespace.as_str())
    .bind(session.as_str())
    .bind(b.now().as_millis())
    .fetch_optional(&b.inner.pool)
    .await
    .map_err(map)?;
    found
        .map(|(worker, expires_at)| {
            Ok(SessionLock {
                worker_id: parsed("worker_id", &format!("session {session}"), &worker)?,
                expires_at: Timestamp::from_millis(expires_at),
            })
        })
        .transpose()
}

/// Whether an operator paused `lane` of `namespace`.
async fn lane_paused(b: &PostgresBackend, namespace: &Namespace, lane: &Lane) -> Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM paused_lanes WHERE namespace = $1 AND lane = $2)",
    )
    .bind(namespace.as_str())
    .bind(lane.as_str())
    .fetch_one(&b.inner.pool)
    .await
    .map_err(map)
}

/// Pauses the executions `uuids` of `partition`, locked by the caller and
/// found neither finished nor paused, each remembering the state it
/// leaves (`from`, aligned, as [`rules::check_pause`] answered) and `via`
/// (`sql/pause.sql`).
pub(crate) async fn pause_rows(
    conn: &mut PgConnection,
    partition: PartitionId,
    uuids: &[Uuid],
    from: &[&str],
    via: Option<&ExecutionId>,
    now: Timestamp,
) -> Result<()> {
    if uuids.is_empty() {
        return Ok(());
    }
    let done = sqlx::query(sql::PAUSE)
        .bind(part(partition))
        .bind(uuids)
        .bind(from)
        .bind(now.as_millis())
        .bind(via.map(ToString::to_string))
        .execute(&mut *conn)
        .await
        .map_err(map)?
        .rows_affected();
    if done != uuids.len() as u64 {
        return Err(EngineError::corruption(format!(
            "a pause changed {done} of {} locked executions that were neither finished nor paused \
             (partition {partition})",
            uuids.len()
        )));
    }
    Ok(())
}

/// Resumes the paused executions `uuids` of `partition`, locked by the
/// caller, each to [`rules::resume_target`] judged on what it holds now: a
/// suspended one whose buffered signals satisfy its wait consumes them and
/// is `waiting`; a `waiting` one is eligible from now, its lane notified
/// at commit. Answers the lanes to wake in this instance after commit.
pub(crate) async fn resume_rows(
    conn: &mut PgConnection,
    partitions: PartitionCount,
    partition: PartitionId,
    uuids: &[Uuid],
    now: Timestamp,
    channel: &str,
) -> Result<Vec<WokenLane>> {
    if uuids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(
        "SELECT * FROM executions WHERE partition = $1 AND uuid = ANY($2) AND state = 'paused' \
         ORDER BY uuid",
    )
    .bind(part(partition))
    .bind(uuids)
    .fetch_all(&mut *conn)
    .await
    .map_err(map)?;
    if rows.len() != uuids.len() {
        return Err(EngineError::corruption(format!(
            "{} of {} locked executions to resume are paused (partition {partition})",
            rows.len(),
            uuids.len()
        )));
    }
    let mut resumed = Vec::with_capacity(rows.len());
    let mut targets = Vec::with_capacity(rows.len());
    for row in &rows {
        let id = read::execution_id(row, partitions)?;
        let ctx = format!("execution {id}");
        let from = col::<Option<String>>(row, "paused_from")?;
        let pause = rules::stored_pause(&ctx, State::Paused, from.as_deref(), None)?
            .ok_or_else(|| EngineError::corruption(format!("{ctx}: paused without a pause")))?;
        let signals = if pause.from == State::Suspended {
            crate::wait::satisfied_while_paused(conn, &id, row).await?
        } else {
            None
        };
        let facts = rules::ResumeFacts {
            from: pause.from,
            run_at: col::<Option<i64>>(row, "run_at")?.map(Timestamp::from_millis),
            open_children: in_range(
                "open_children",
                &ctx,
                col::<i32>(row, "open_children")?.into(),
            )?,
            deps: read::dependencies(row, &ctx)?,
            signalled: signals.is_some(),
        };
        let target = rules::resume_target(&facts, now);
        if target == State::Waiting
            && let Some(seqs) = &signals
        {
            crate::wait::end_wait_at_resume(conn, &id, &read::wait_log(row)?, seqs).await?;
        }
        resumed.push(id.uuid());
        targets.push(target.as_str());
    }
    let row = sqlx::query(
        "WITH resumed AS ( \
             UPDATE executions e SET state = v.state, paused_from = NULL, paused_via = NULL, \
                 updated_at = $3, ready_at = CASE WHEN v.state = 'waiting' THEN $3 \
                                                  ELSE e.ready_at END \
             FROM UNNEST($2::uuid[], $4::text[]) AS v(uuid, state) \
             WHERE e.partition = $1 AND e.uuid = ANY($2::uuid[]) AND e.uuid = v.uuid \
               AND e.state = 'paused' \
             RETURNING e.namespace, e.lane, e.state), \
         lanes AS (SELECT DISTINCT namespace, lane FROM resumed WHERE state = 'waiting'), \
         woken AS (SELECT pg_notify($5, namespace || ' ' || lane) FROM lanes) \
         SELECT (SELECT count(*) FROM resumed) AS resumed, \
                (SELECT count(*) FROM woken) AS woken, \
                ARRAY(SELECT namespace || ' ' || lane FROM lanes) AS lanes",
    )
    .bind(part(partition))
    .bind(&resumed)
    .bind(now.as_millis())
    .bind(&targets)
    .bind(channel)
    .fetch_one(&mut *conn)
    .await
    .map_err(map)?;
    let count: i64 = col(&row, "resumed")?;
    if usize::try_from(count).ok() != Some(resumed.len()) {
        return Err(EngineError::corruption(format!(
            "a resume changed {count} of {} locked, paused executions (partition {partition})",
            resumed.len()
        )));
    }
    Ok(col::<Vec<String>>(&row, "lanes")?
        .into_iter()
        .filter_map(|l| {
            l.split_once(' ')
                .map(|(namespace, lane)| (namespace.to_owned(), lane.to_owned()))
        })
        .collect())
}

/// Locks what a tree pause, a tree resume or a replay of `id` locks before
/// `id`: its flow's root, then its parent (see the module's notes). A
/// scope `execution` pause or resume locks nothing before the row.
async fn lock_flow_of(tx: &mut PgConnection, id: &ExecutionId) -> Result<()> {
    let (p, u) = ([part(id.partition())], [id.uuid()]);
    crate::flow::lock_ancestors(tx, &p, &u, crate::flow::RootsOf::All).await?;
    Ok(())
}

pub(crate) async fn pause(
    b: &PostgresBackend,
    id: &ExecutionId,
    scope: CancelScope,
) -> Result<PauseOutcome> {
    b.check_id(id)?;
    let now = b.now();
    let mut tx = b.begin().await?;
    let outcome = pause_in(b, &mut tx, id, scope, now).await;
    finish(tx, outcome).await
}

/// The body of `pause`, in the caller's transaction.
async fn pause_in(
    b: &PostgresBackend,
    tx: &mut PgConnection,
    id: &ExecutionId,
    scope: CancelScope,
    now: Timestamp,
) -> Result<PauseOutcome> {
    if scope == CancelScope::Tree {
        lock_flow_of(tx, id).await?;
    }
    let snap = b.snapshot(&b.lock_row(tx, id).await?)?;
    let mut snapshot = snap.clone();
    if let Some(from) = rules::pause_in_scope(id, snap.state, scope)? {
        pause_rows(
            tx,
            id.partition(),
            &[id.uuid()],
            &[from.as_str()],
            None,
            now,
        )
        .await?;
        snapshot = b.snapshot(&b.lock_row(tx, id).await?)?;
    }
    let walked = match scope {
        CancelScope::Tree => {
            crate::flow::walk_tree(b, tx, id, TreeAction::Pause(id), now)
                .await?
                .0
        }
        CancelScope::Execution => CascadeWalk::default(),
    };
    Ok(walked.pause_outcome(snapshot))
}

pub(crate) async fn resume(
    b: &PostgresBackend,
    id: &ExecutionId,
    scope: CancelScope,
) -> Result<PauseOutcome> {
    b.check_id(id)?;
    let now = b.now();
    let mut tx = b.begin().await?;
    let outcome = resume_in(b, &mut tx, id, scope, now).await;
    let (out, woken) = finish(tx, outcome).await?;
    // The resumes notified every process at commit; this one's parked
    // claimers are woken here at once.
    for (namespace, lane) in &woken {
        b.inner.wake.notify(namespace, lane);
    }
    Ok(out)
}

/// The body of `resume`, in the caller's transaction; answers the lanes
/// to wake after commit.
async fn resume_in(
    b: &PostgresBackend,
    tx: &mut PgConnection,
    id: &ExecutionId,
    scope: CancelScope,
    now: Timestamp,
) -> Result<(PauseOutcome, Vec<WokenLane>)> {
    if scope == CancelScope::Tree {
        lock_flow_of(tx, id).await?;
    }
    let snap = b.snapshot(&b.lock_row(tx, id).await?)?;
    let mut snapshot = snap.clone();
    let mut woken = Vec::new();
    if rules::resume_in_scope(id, snap.state, scope)? {
        let (partitions, channel) = (b.inner.partitions, b.inner.channel.as_str());
        let lanes = resume_rows(tx, partitions, id.partition(), &[id.uuid()], now, channel).await?;
        woken.extend(lanes);
        snapshot = b.snapshot(&b.lock_row(tx, id).await?)?;
    }
    let walked = match scope {
        CancelScope::Tree => {
            let (walked, lanes) =
                crate::flow::walk_tree(b, tx, id, TreeAction::Resume, now).await?;
            woken.extend(lanes);
            walked
        }
        CancelScope::Execution => CascadeWalk::default(),
    };
    let out = walked.pause_outcome(snapshot);
    Ok((out, woken))
}

/// One statement: the pause is in force once it commits, that is before
/// this answers. The claim statement reads `paused_lanes` in its own
/// snapshot, so a claim whose statement started before the commit may
/// still take work of the lane; every claim that starts after this
/// answered skips it (see `sql/claim.sql`).
pub(crate) async fn pause_lane(
    b: &PostgresBackend,
    namespace: &Namespace,
    lane: &Lane,
) -> Result<bool> {
    let added = sqlx::query(
        "INSERT INTO paused_lanes (namespace, lane, paused_at) VALUES ($1, $2, $3) \
         ON CONFLICT (namespace, lane) DO NOTHING",
    )
    .bind(namespace.as_str())
    .bind(lane.as_str())
    .bind(b.now().as_millis())
    .execute(&b.inner.pool)
    .await
    .map_err(map)?
    .rows_affected();
    Ok(added == 1)
}

/// One statement, which also notifies the lane's claimers of every
/// process at commit (they were left parked while it was paused).
pub(crate) async fn resume_lane(
    b: &PostgresBackend,
    namespace: &Namespace,
    lane: &Lane,
) -> Result<bool> {
    let (removed, _woken): (i64, i64) = sqlx::query_as(
        "WITH gone AS ( \
             DELETE FROM paused_lanes WHERE namespace = $1 AND lane = $2 \
             RETURNING namespace, lane), \
         woken AS (SELECT pg_notify($3, namespace || ' ' || lane) FROM gone) \
         SELECT (SELECT count(*) FROM gone), (SELECT count(*) FROM woken)",
    )
    .bind(namespace.as_str())
    .bind(lane.as_str())
    .bind(&b.inner.channel)
    .fetch_one(&b.inner.pool)
    .await
    .map_err(map)?;
    if removed == 1 {
        b.inner.wake.notify(namespace.as_str(), lane.as_str());
    }
    Ok(removed == 1)
}

pub(crate) async fn lanes(b: &PostgresBackend, namespace: &Namespace) -> Result<Vec<LaneInfo>> {
    let counts = crate::admin::counts(b, namespace).await?;
    let paused: Vec<(String, i64)> = sqlx::query_as(
        "SELECT lane, paused_at FROM paused_lanes WHERE namespace = $1 ORDER BY lane",
    )
    .bind(namespace.as_str())
    .fetch_all(&b.inner.pool)
    .await
    .map_err(map)?;
    Ok(rules::lane_infos(
        counts,
        rules::stored_paused_lanes(paused)?,
    ))
}

pub(crate) async fn replay(b: &PostgresBackend, id: &ExecutionId) -> Result<ExecutionSnapshot> {
    b.check_id(id)?;
    let now = b.now();
    let mut tx = b.begin().await?;
    let outcome = replay_in(b, &mut tx, id, now).await;
    let snap = finish(tx, outcome).await?;
    // The statement notified every process at commit; this one's parked
    // claimers are woken here at once.
    b.inner
        .wake
        .notify(snap.namespace.as_str(), snap.lane.as_str());
    Ok(snap)
}

/// The body of `replay`, in the caller's transaction.
pub(crate) async fn replay_in(
    b: &PostgresBackend,
    tx: &mut PgConnection,
    id: &ExecutionId,
    now: Timestamp,
) -> Result<ExecutionSnapshot> {
    lock_flow_of(tx, id).await?;
    let snap = b.snapshot(&b.lock_row(tx, id).await?)?;
    rules::check_replay(id, snap.state)?;
    let queued: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM cascades WHERE partition = $1)")
            .bind(part(id.partition()))
            .fetch_one(&mut *tx)
            .await
            .map_err(map)?;
    if queued {
        return Err(rules::replay_waits_for_cascade(id));
    }
    let deadline = rules::replay_deadline(snap.deadline, now);
    // `released = attempts`: the retry policy counts the attempts after
    // this one. Its dependents were told when it finished (the walk marked
    // their edges counted), so its next end tells only dependents created
    // after the replay; clearing the flag spares that walk when none is.
    let row = sqlx::query(
        "WITH replayed AS ( \
             UPDATE executions SET state = 'waiting', released = attempts, finished_at = NULL, \
                 trim_at = NULL, cancel_reason = NULL, deadline = $3, ready_at = $4, \
                 updated_at = $4, has_dependents = false \
             WHERE partition = $1 AND uuid = $2 RETURNING *), \
         woken AS (SELECT pg_notify($5, namespace || ' ' || lane) FROM replayed) \
         SELECT replayed.*, (SELECT count(*) FROM woken) AS woken FROM replayed",
    )
    .bind(part(id.partition()))
    .bind(id.uuid())
    .bind(deadline.map(Timestamp::as_millis))
    .bind(now.as_millis())
    .bind(&b.inner.channel)
    .fetch_one(&mut *tx)
    .await
    .map_err(map)?;
    if let Some(parent) = &snap.parent {
        // A parent that has not finished counts it as unfinished again
        // (locked above, before the execution).
        sqlx::query(
            "UPDATE executions SET open_children = open_children + 1 \
             WHERE partition = $1 AND uuid = $2 AND finished_at IS NULL",
        )
        .bind(part(parent.partition()))
        .bind(parent.uuid())
        .execute(&mut *tx)
        .await
        .map_err(map)?;
    }
    b.snapshot(&row)
}
