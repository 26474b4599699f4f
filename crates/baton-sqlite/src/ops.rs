//! Operator control: priority and tag edits, revoking a lease, the worker
//! registry, pausing and resuming (executions, trees, lanes) and replay.
//! The decisions are [`rules::check_priority_edit`], [`rules::tag_edit`],
//! [`rules::check_revoke`] (a revoke settles like a reclaimed lease,
//! [`rules::revoke_failure`]), [`rules::check_pause`],
//! [`rules::resume_target`] and [`rules::check_replay`]; this module reads
//! the facts and writes the verdict, in one transaction. Claims and renews
//! record their worker when [`baton_core::raw::Sightings`] says so.

use baton_core::raw::cascade::{CascadeWalk, TreeAction};
use baton_core::raw::rules;
use baton_core::raw::stored::{in_range, parse as parsed};
use baton_core::{
    AttemptOutcome, CancelScope, ClaimRequest, EngineError, EventKind, ExecutionId,
    ExecutionSnapshot, Explanation, Lane, LaneInfo, Namespace, Page, PauseOutcome, QueueFacts,
    RenewRequest, Result, State, TagKey, Timestamp, WorkerInfo,
};
use sqlx::SqliteConnection;

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
    let detail = rules::priority_detail(priority);
    crate::manage::note(&mut tx, id, b.now(), EventKind::PriorityChanged, &detail).await?;
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
    let detail = rules::tag_detail(key.as_str(), value.as_deref());
    crate::manage::note(&mut tx, id, b.now(), EventKind::TagChanged, &detail).await?;
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
    crate::claim::release_session(&mut tx, &snap).await?;
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
    let rows: Vec<(String, String, String, i64, i64, String)> = sqlx::query_as(
        "SELECT worker_id, lanes, capabilities, last_seen, leases, versions FROM workers \
         WHERE namespace = ? AND last_seen > ? ORDER BY worker_id LIMIT ?",
    )
    .bind(namespace.as_str())
    .bind(since.as_millis())
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(&mut *conn)
    .await
    .map_err(map)?;
    rows.into_iter()
        .map(|(worker, lanes, caps, last_seen, leases, versions)| {
            let ctx = format!("worker {worker}");
            let names = |what: &str, raw: &str| -> Result<Vec<String>> {
                serde_json::from_str(raw)
                    .map_err(|e| EngineError::corruption(format!("{ctx}: {what}: {e}")))
            };
            Ok(WorkerInfo {
                versions: baton_core::VersionRange::from_stored(&ctx, &versions)?,
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
            "INSERT INTO workers (namespace, worker_id, lanes, capabilities, last_seen, versions) \
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (namespace, worker_id) DO UPDATE SET \
             lanes = excluded.lanes, capabilities = excluded.capabilities, \
             versions = excluded.versions, \
             last_seen = MAX(last_seen, excluded.last_seen)",
        )
        .bind(request.namespace.as_str())
        .bind(request.worker_id.as_str())
        .bind(lanes)
        .bind(caps)
        .bind(now.as_millis())
        .bind(request.versions.to_stored())
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
        let lane_paused = lane_paused(&mut conn, &snapshot.namespace, &snapshot.lane).await?;
        let limited = crate::limits::limited(&mut conn, &snapshot, b.now()).await?;
        let session_owner = session_owner(&mut conn, &snapshot, b.now()).await?;
        drop(conn);
        QueueFacts {
            session_owner,
            workers: workers(b, &snapshot.namespace, Page::MAX_LIMIT).await?,
            ahead: u64::try_from(ahead).unwrap_or(0),
            lane_paused,
            limited,
        }
    } else {
        QueueFacts::default()
    };
    Ok(rules::explain(snapshot, &facts))
}

async fn lane_paused(
    conn: &mut SqliteConnection,
    namespace: &Namespace,
    lane: &Lane,
) -> Result<bool> {
    let found: Option<i64> =
        sqlx::query_scalar("SELECT 1 FROM paused_lanes WHERE namespace = ? AND lane = ?")
            .bind(namespace.as_str())
            .bind(lane.as_str())
            .fetch_optional(&mut *conn)
            .await
            .map_err(map)?;
    Ok(found.is_some())
}

/// Pauses one execution read in this transaction in `state` at attempt
/// `attempts` (the pair `at`), remembering `from` and `via`: a running
/// one's attempt ends `paused` and counts as no failure (`released`).
pub(crate) async fn pause_one(
    conn: &mut SqliteConnection,
    id: &ExecutionId,
    at: (State, u32),
    from: State,
    via: Option<&ExecutionId>,
    now: Timestamp,
) -> Result<()> {
    let (state, attempts) = at;
    let running = state == State::Running;
    if running {
        SqliteBackend::close_attempt(conn, id, attempts, AttemptOutcome::Paused, None, now).await?;
    }
    sqlx::query(
        "UPDATE executions SET state = 'paused', paused_from = ?, paused_via = ?, updated_at = ?, \
         released = released + ?, worker_id = NULL, lease_nonce = NULL, lease_expires_at = NULL \
         WHERE uuid = ?",
    )
    .bind(from.as_str())
    .bind(via.map(|v| v.to_string()))
    .bind(now.as_millis())
    .bind(i64::from(running))
    .bind(blob(id))
    .execute(&mut *conn)
    .await
    .map_err(map)?;
    Ok(())
}

/// Resumes one paused execution to [`rules::resume_target`], judged on
/// what it holds now. Answers its lane when it is `waiting` (to wake after
/// commit).
pub(crate) async fn resume_one(
    conn: &mut SqliteConnection,
    id: &ExecutionId,
    now: Timestamp,
) -> Result<Option<(String, String)>> {
    let row = sqlx::query(
        "SELECT state, paused_from, run_at, open_children, dep_policy, deps_total, deps_done, \
         deps_bad, namespace, lane FROM executions WHERE uuid = ?",
    )
    .bind(blob(id))
    .fetch_one(&mut *conn)
    .await
    .map_err(map)?;
    let ctx = format!("execution {id}");
    let col = |name: &str| crate::read::col::<Option<String>>(&row, name);
    let state = crate::read::state(&ctx, &crate::read::col::<String>(&row, "state")?)?;
    let Some(pause) = rules::stored_pause(&ctx, state, col("paused_from")?.as_deref(), None)?
    else {
        return Ok(None);
    };
    let signals = if pause.from == State::Suspended {
        crate::wait::satisfied_while_paused(conn, id).await?
    } else {
        None
    };
    let facts = rules::ResumeFacts {
        from: pause.from,
        run_at: crate::read::col::<Option<i64>>(&row, "run_at")?.map(Timestamp::from_millis),
        open_children: in_range(
            "open_children",
            &ctx,
            crate::read::col(&row, "open_children")?,
        )?,
        deps: crate::read::dependencies(&row, &ctx)?,
        signalled: signals.is_some(),
    };
    let target = rules::resume_target(&facts, now);
    if target == State::Waiting
        && let Some(seqs) = &signals
    {
        crate::wait::end_wait_at_resume(conn, id, seqs).await?;
    }
    let waiting = target == State::Waiting;
    sqlx::query(
        "UPDATE executions SET state = ?, paused_from = NULL, paused_via = NULL, updated_at = ?, \
         ready_at = CASE WHEN ? THEN ? ELSE ready_at END WHERE uuid = ?",
    )
    .bind(target.as_str())
    .bind(now.as_millis())
    .bind(waiting)
    .bind(now.as_millis())
    .bind(blob(id))
    .execute(&mut *conn)
    .await
    .map_err(map)?;
    if !waiting {
        return Ok(None);
    }
    Ok(Some((
        crate::read::col(&row, "namespace")?,
        crate::read::col(&row, "lane")?,
    )))
}

pub(crate) async fn pause(
    b: &SqliteBackend,
    id: &ExecutionId,
    scope: CancelScope,
) -> Result<PauseOutcome> {
    b.check_id(id)?;
    let now = b.now();
    let mut tx = b.begin().await?;
    let snap = b.snapshot_in(&mut tx, id).await?;
    if let Some(from) = rules::pause_in_scope(id, snap.state, scope)? {
        pause_one(&mut tx, id, (snap.state, snap.attempts), from, None, now).await?;
    }
    let walked = match scope {
        CancelScope::Tree => {
            crate::flow::walk_tree(b, &mut tx, id, TreeAction::Pause(id), now)
                .await?
                .0
        }
        CancelScope::Execution => CascadeWalk::default(),
    };
    let snapshot = b.snapshot_in(&mut tx, id).await?;
    tx.commit().await.map_err(map)?;
    Ok(walked.pause_outcome(snapshot))
}

pub(crate) async fn resume(
    b: &SqliteBackend,
    id: &ExecutionId,
    scope: CancelScope,
) -> Result<PauseOutcome> {
    b.check_id(id)?;
    let now = b.now();
    let mut tx = b.begin().await?;
    let snap = b.snapshot_in(&mut tx, id).await?;
    let mut wake = Vec::new();
    if rules::resume_in_scope(id, snap.state, scope)? {
        wake.extend(resume_one(&mut tx, id, now).await?);
    }
    let walked = match scope {
        CancelScope::Tree => {
            let (walked, woken) =
                crate::flow::walk_tree(b, &mut tx, id, TreeAction::Resume, now).await?;
            wake.extend(woken);
            walked
        }
        CancelScope::Execution => CascadeWalk::default(),
    };
    let snapshot = b.snapshot_in(&mut tx, id).await?;
    tx.commit().await.map_err(map)?;
    b.wake_all(wake);
    Ok(walked.pause_outcome(snapshot))
}

pub(crate) async fn pause_lane(
    b: &SqliteBackend,
    namespace: &Namespace,
    lane: &Lane,
) -> Result<bool> {
    let mut tx = b.begin().await?;
    let added = sqlx::query(
        "INSERT INTO paused_lanes (namespace, lane, paused_at) VALUES (?, ?, ?) \
         ON CONFLICT (namespace, lane) DO NOTHING",
    )
    .bind(namespace.as_str())
    .bind(lane.as_str())
    .bind(b.now().as_millis())
    .execute(&mut *tx)
    .await
    .map_err(map)?
    .rows_affected();
    tx.commit().await.map_err(map)?;
    Ok(added == 1)
}

pub(crate) async fn resume_lane(
    b: &SqliteBackend,
    namespace: &Namespace,
    lane: &Lane,
) -> Result<bool> {
    let mut tx = b.begin().await?;
    let removed = sqlx::query("DELETE FROM paused_lanes WHERE namespace = ? AND lane = ?")
        .bind(namespace.as_str())
        .bind(lane.as_str())
        .execute(&mut *tx)
        .await
        .map_err(map)?
        .rows_affected();
    tx.commit().await.map_err(map)?;
    if removed == 1 {
        b.inner.wake.notify(namespace.as_str(), lane.as_str());
    }
    Ok(removed == 1)
}

pub(crate) async fn lanes(b: &SqliteBackend, namespace: &Namespace) -> Result<Vec<LaneInfo>> {
    let counts = crate::admin::counts(b, namespace).await?;
    let mut conn = b.inner.reader.acquire().await.map_err(map)?;
    let paused: Vec<(String, i64)> =
        sqlx::query_as("SELECT lane, paused_at FROM paused_lanes WHERE namespace = ?")
            .bind(namespace.as_str())
            .fetch_all(&mut *conn)
            .await
            .map_err(map)?;
    Ok(rules::lane_infos(
        counts,
        rules::stored_paused_lanes(paused)?,
    ))
}

pub(crate) async fn replay(b: &SqliteBackend, id: &ExecutionId) -> Result<ExecutionSnapshot> {
    b.check_id(id)?;
    let now = b.now();
    let mut tx = b.begin().await?;
    let after = replay_in(b, &mut tx, id, now).await?;
    tx.commit().await.map_err(map)?;
    b.inner
        .wake
        .notify(after.namespace.as_str(), after.lane.as_str());
    Ok(after)
}

/// The body of `replay`, in the caller's transaction; the caller wakes
/// the lane after commit.
pub(crate) async fn replay_in(
    b: &SqliteBackend,
    tx: &mut SqliteConnection,
    id: &ExecutionId,
    now: Timestamp,
) -> Result<ExecutionSnapshot> {
    let snap = b.snapshot_in(&mut *tx, id).await?;
    rules::check_replay(id, snap.state)?;
    let queued: Option<i64> =
        sqlx::query_scalar("SELECT 1 FROM cascades WHERE partition = ? LIMIT 1")
            .bind(i64::from(id.partition().get()))
            .fetch_optional(&mut *tx)
            .await
            .map_err(map)?;
    if queued.is_some() {
        return Err(rules::replay_waits_for_cascade(id));
    }
    let deadline = rules::replay_deadline(snap.deadline, now);
    // `released = attempts`: the retry policy counts attempts after this
    // one. Its dependents were told when it finished (the walk marked their
    // edges counted), so its next end tells only dependents created after
    // the replay; clearing the flag spares that walk when none is.
    sqlx::query(
        "UPDATE executions SET state = 'waiting', released = attempts, finished_at = NULL, \
         trim_at = NULL, cancel_reason = NULL, deadline = ?1, ready_at = ?2, updated_at = ?2, \
         has_dependents = 0 WHERE uuid = ?3",
    )
    .bind(deadline.map(Timestamp::as_millis))
    .bind(now.as_millis())
    .bind(blob(id))
    .execute(&mut *tx)
    .await
    .map_err(map)?;
    if let Some(parent) = &snap.parent {
        sqlx::query(
            "UPDATE executions SET open_children = open_children + 1 \
             WHERE uuid = ? AND finished_at IS NULL",
        )
        .bind(blob(parent))
        .execute(&mut *tx)
        .await
        .map_err(map)?;
    }
    b.snapshot_in(&mut *tx, id).await
}

/// The live lock of `snap`'s session, if it has a session someone holds.
async fn session_owner(
    conn: &mut sqlx::SqliteConnection,
    snap: &baton_core::ExecutionSnapshot,
    now: Timestamp,
) -> Result<Option<baton_core::SessionLock>> {
    let Some(session) = &snap.session else {
        return Ok(None);
    };
    let row: Option<(String, i64)> = sqlx::query_as(
        "SELECT worker_id, expires_at FROM sessions \
         WHERE namespace = ? AND session = ? AND expires_at > ?",
    )
    .bind(snap.namespace.as_str())
    .bind(session.as_str())
    .bind(now.as_millis())
    .fetch_optional(&mut *conn)
    .await
    .map_err(map)?;
    row.map(|(worker, until)| {
        Ok(baton_core::SessionLock {
            worker_id: parsed("worker_id", &format!("session {session}"), &worker)?,
            expires_at: Timestamp::from_millis(until),
        })
    })
    .transpose()
}
