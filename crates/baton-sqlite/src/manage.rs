//! Deletes (one unit of [`AdminBackend::delete_units`](baton_core::AdminBackend::delete_units)
//! in one transaction) and the history of an execution (written by the
//! triggers of migration 0011, and by [`note`] for edits).

use std::collections::HashMap;

use baton_core::raw::rules::{self, DeleteFacts, DeleteVerdict, StoredEvent};
use baton_core::{
    AttemptOutcome, CancelScope, DeletePart, EngineError, ExecutionEvent, ExecutionId, PartitionId,
    Result, State, Timestamp,
};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use crate::errors::map;
use crate::read;
use crate::{SqliteBackend, blob};

pub(crate) async fn delete_units(
    b: &SqliteBackend,
    ids: &[ExecutionId],
    force: bool,
) -> Result<Vec<Result<DeletePart>>> {
    let Some(partition) = baton_core::raw::delete::check_unit(ids, b.inner.partitions)? else {
        return Ok(Vec::new());
    };
    let now = b.now();
    let mut tx = b.begin().await?;
    let mut queued = queue_holds_work(&mut tx, partition).await?;
    let mut lone = lone_facts(&mut tx, ids).await?;
    let mut left = b.inner.limits.cascade_budget.max(1);
    let mut out = Vec::with_capacity(ids.len());
    let mut wake = Vec::new();
    // Executions outside flows (no parent, no members: nothing below them,
    // no dependents) are removed together at the end, a statement per
    // table; cancelling one first would change nothing anyone could read.
    let mut lone_removed = Vec::new();
    for id in ids {
        if left == 0 {
            out.push(Ok(DeletePart::default()));
            continue;
        }
        if lone_removed.contains(&blob(id)) {
            // Named twice: gone with its first mention.
            out.push(Err(EngineError::NotFound { id: id.clone() }));
            continue;
        }
        if let Some(state) = lone.remove(&blob(id)) {
            out.push(baton_core::raw::delete::lone_part(id, state, force));
            if out.last().is_some_and(Result::is_ok) {
                lone_removed.push(blob(id));
                left -= 1;
            }
            continue;
        }
        let snap = match b.snapshot_in(&mut tx, id).await {
            Ok(snap) => snap,
            Err(e @ EngineError::NotFound { .. }) => {
                out.push(Err(e));
                continue;
            }
            Err(e) => return Err(e),
        };
        if queued {
            out.push(Err(rules::delete_waits_for_cascade(id)));
            continue;
        }
        let is_root = snap.parent.is_none();
        let open_below = !descendants(&mut tx, b, id, is_root, true, 1)
            .await?
            .is_empty();
        let open_dependents = DeleteFacts::needs_dependents(snap.state, !is_root, open_below)
            && open_dependents(&mut tx, b, id).await?;
        let facts = DeleteFacts {
            state: snap.state,
            has_parent: !is_root,
            open_below,
            open_dependents,
            force,
        };
        let verdict = match rules::check_delete(id, facts) {
            Ok(v) => v,
            Err(e) => {
                out.push(Err(e));
                continue;
            }
        };
        let mut cancelled = false;
        if verdict == DeleteVerdict::CancelFirst {
            let reason = rules::DELETE_REASON.to_owned();
            let pending = if snap.state.is_terminal() {
                let (pending, woken) =
                    crate::flow::cancel_below(b, &mut tx, id, &reason, now).await?;
                wake.extend(woken);
                pending
            } else {
                let (c, woken) =
                    crate::flow::cancel_in(b, &mut tx, id, CancelScope::Tree, Some(reason), now)
                        .await?;
                wake.extend(woken);
                c.cascade_pending
            };
            cancelled = true;
            // The cancel's own dependents walk may have been queued too
            // (its answer counts only the walk below it).
            let pending = pending || queue_holds_work(&mut tx, partition).await?;
            if pending {
                // The cancel goes on in the cascade pass; nothing is
                // removed until it is done.
                queued = true;
                out.push(Ok(DeletePart {
                    removed: 0,
                    done: false,
                    cancelled,
                }));
                continue;
            }
        }
        let members = descendants(&mut tx, b, id, is_root, false, left + 1).await?;
        let take = members.len().min(left);
        for m in &members[..take] {
            crate::scan::delete(&mut tx, m).await?;
        }
        left -= take;
        let mut removed = take as u64;
        let done = take == members.len() && left > 0;
        if done {
            crate::scan::delete(&mut tx, &blob(id)).await?;
            left -= 1;
            removed += 1;
        }
        out.push(Ok(DeletePart {
            removed,
            done,
            cancelled,
        }));
    }
    crate::scan::delete_many(&mut tx, &lone_removed).await?;
    tx.commit().await.map_err(map)?;
    b.wake_all(wake);
    // A reader waiting on a deleted execution reads NotFound at once.
    b.finished_some();
    Ok(out)
}

/// Whether an unfinished execution depends on the member `id` or on one of
/// its descendants (dependencies link members of one flow; a dependent
/// reads its upstreams' results when it runs).
async fn open_dependents(
    conn: &mut SqliteConnection,
    b: &SqliteBackend,
    id: &ExecutionId,
) -> Result<bool> {
    let mut ups = descendants(conn, b, id, false, false, usize::MAX).await?;
    ups.push(blob(id));
    for chunk in ups.chunks(500) {
        let mut qb: QueryBuilder<'_, Sqlite> = QueryBuilder::new(
            "SELECT 1 FROM dependencies d JOIN executions e ON e.uuid = d.downstream \
             WHERE e.finished_at IS NULL AND d.upstream IN (",
        );
        let mut list = qb.separated(", ");
        for up in chunk {
            list.push_bind(up.as_slice());
        }
        qb.push(") LIMIT 1");
        if qb
            .build()
            .fetch_optional(&mut *conn)
            .await
            .map_err(map)?
            .is_some()
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether the cascade queue of `partition` holds work.
async fn queue_holds_work(conn: &mut SqliteConnection, partition: PartitionId) -> Result<bool> {
    Ok(
        sqlx::query_scalar::<_, i64>("SELECT 1 FROM cascades WHERE partition = ? LIMIT 1")
            .bind(i64::from(partition.get()))
            .fetch_optional(&mut *conn)
            .await
            .map_err(map)?
            .is_some(),
    )
}

/// The states of those of `ids` that stand outside any flow (no parent,
/// no members), by stored uuid, in two statements.
async fn lone_facts(
    conn: &mut SqliteConnection,
    ids: &[ExecutionId],
) -> Result<HashMap<Vec<u8>, State>> {
    let mut qb: QueryBuilder<'_, Sqlite> =
        QueryBuilder::new("SELECT uuid, state FROM executions WHERE parent IS NULL AND uuid IN (");
    let mut list = qb.separated(", ");
    for id in ids {
        list.push_bind(blob(id));
    }
    qb.push(")");
    let mut found = HashMap::new();
    for row in qb.build().fetch_all(&mut *conn).await.map_err(map)? {
        let uuid: Vec<u8> = read::col(&row, "uuid")?;
        let state = read::state("a deleted execution", &read::col::<String>(&row, "state")?)?;
        found.insert(uuid, state);
    }
    // Roots of flows have members naming them.
    let mut qb: QueryBuilder<'_, Sqlite> =
        QueryBuilder::new("SELECT DISTINCT root FROM executions WHERE root IN (");
    let mut list = qb.separated(", ");
    for id in ids {
        list.push_bind(id.to_string());
    }
    qb.push(")");
    let roots: Vec<String> = qb
        .build_query_scalar()
        .fetch_all(&mut *conn)
        .await
        .map_err(map)?;
    for id in ids {
        if roots.contains(&id.to_string()) {
            found.remove(&blob(id));
        }
    }
    Ok(found)
}

/// Up to `limit` descendants of `id` (only unfinished ones with
/// `open_only`), as stored uuids, newest first: every execution comes
/// after its descendants, so removing them in this order never leaves a
/// child without its parent. A root's descendants are the members of its
/// flow (one index read); below a member they are walked level by level.
async fn descendants(
    conn: &mut SqliteConnection,
    b: &SqliteBackend,
    id: &ExecutionId,
    is_root: bool,
    open_only: bool,
    limit: usize,
) -> Result<Vec<Vec<u8>>> {
    let open = if open_only {
        " AND finished_at IS NULL"
    } else {
        ""
    };
    if is_root {
        let sql =
            format!("SELECT uuid FROM executions WHERE root = ?{open} ORDER BY uuid DESC LIMIT ?");
        return sqlx::query_scalar(&sql)
            .bind(id.to_string())
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&mut *conn)
            .await
            .map_err(map);
    }
    // Every descendant, then the newest `limit` of them.
    let mut found: Vec<(Vec<u8>, bool)> = Vec::new();
    let mut frontier = vec![id.to_string()];
    while let Some(parent) = frontier.pop() {
        let rows = sqlx::query(
            "SELECT uuid, partition, finished_at IS NULL AS open FROM executions WHERE parent = ?",
        )
        .bind(&parent)
        .fetch_all(&mut *conn)
        .await
        .map_err(map)?;
        for row in &rows {
            let child = read::execution_id(row, b.inner.partitions)?;
            let is_open: bool = read::col(row, "open")?;
            found.push((blob(&child), is_open));
            frontier.push(child.to_string());
        }
    }
    found.retain(|(_, is_open)| *is_open || !open_only);
    found.sort_by(|a, b| b.0.cmp(&a.0));
    found.truncate(limit);
    Ok(found.into_iter().map(|(uuid, _)| uuid).collect())
}

pub(crate) async fn events(
    b: &SqliteBackend,
    id: &ExecutionId,
    after: u64,
    limit: usize,
) -> Result<Vec<ExecutionEvent>> {
    baton_core::Page::first(limit).validate()?;
    let mut conn = b.read_existing(id).await?;
    type Row = (
        i64,
        i64,
        Option<String>,
        Option<String>,
        Option<String>,
        i64,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    // The view is joined on the execution's id as a constant: SQLite then
    // reads it with a key probe per half; joined on `e.uuid` it would build
    // the whole view first.
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT e.seq, e.at, e.kind, e.from_state, e.to_state, e.attempt, e.worker_id, \
         e.detail, a.outcome FROM events e LEFT JOIN attempt_history a \
         ON a.execution_uuid = ?1 AND a.number = e.attempt \
         WHERE e.uuid = ?1 AND e.seq > ?2 ORDER BY e.seq LIMIT ?3",
    )
    .bind(blob(id))
    .bind(i64::try_from(after).unwrap_or(i64::MAX))
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(&mut *conn)
    .await
    .map_err(map)?;
    let ctx = format!("execution {id} events");
    rows.into_iter()
        .map(
            |(seq, at, kind, from, to, attempt, worker, detail, outcome)| {
                let outcome = outcome
                    .as_deref()
                    .map(|o| baton_core::raw::stored::parse::<AttemptOutcome>("outcome", &ctx, o))
                    .transpose()?;
                let stored = StoredEvent {
                    seq: baton_core::raw::stored::in_range("seq", &ctx, seq)?,
                    at: Timestamp::from_millis(at),
                    kind,
                    from,
                    to,
                    attempt: baton_core::raw::stored::in_range("attempt", &ctx, attempt)?,
                    worker,
                    detail,
                };
                rules::stored_event(&ctx, stored, outcome)
            },
        )
        .collect()
}

/// Records an event that changes no state (an operator's edit, an audit)
/// for `id` at `now`, in the caller's transaction.
pub(crate) async fn note(
    conn: &mut SqliteConnection,
    id: &ExecutionId,
    now: Timestamp,
    kind: baton_core::EventKind,
    detail: &str,
) -> Result<()> {
    // Nothing for an execution that is gone (an audit of one deleted
    // meanwhile) or keeps no history.
    sqlx::query(
        "INSERT INTO events (uuid, seq, at, kind, attempt, detail) \
         SELECT ?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM events WHERE uuid = ?1), ?2, ?3, \
         attempts, ?4 FROM executions WHERE uuid = ?1 AND history = 1",
    )
    .bind(blob(id))
    .bind(now.as_millis())
    .bind(kind.as_str())
    .bind(rules::event_detail(detail))
    .execute(&mut *conn)
    .await
    .map_err(map)?;
    Ok(())
}

pub(crate) async fn audit(b: &SqliteBackend, ids: &[ExecutionId], detail: &str) -> Result<()> {
    baton_core::raw::check_describe_many(ids)?;
    for id in ids {
        b.check_id(id)?;
    }
    if ids.is_empty() {
        return Ok(());
    }
    let now = b.now();
    let mut tx = b.begin().await?;
    for id in ids {
        note(&mut tx, id, now, baton_core::EventKind::Audit, detail).await?;
    }
    tx.commit().await.map_err(map)?;
    Ok(())
}

pub(crate) async fn set_history(
    b: &SqliteBackend,
    namespace: &baton_core::Namespace,
    enabled: bool,
) -> Result<bool> {
    let mut tx = b.begin().await?;
    let was = sqlx::query_scalar::<_, i64>("SELECT 1 FROM namespace_history WHERE namespace = ?")
        .bind(namespace.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(map)?
        .is_some();
    let statement = if enabled {
        "INSERT INTO namespace_history (namespace) VALUES (?) ON CONFLICT DO NOTHING"
    } else {
        "DELETE FROM namespace_history WHERE namespace = ?"
    };
    sqlx::query(statement)
        .bind(namespace.as_str())
        .execute(&mut *tx)
        .await
        .map_err(map)?;
    tx.commit().await.map_err(map)?;
    Ok(was)
}

pub(crate) async fn history_enabled(
    b: &SqliteBackend,
    namespace: &baton_core::Namespace,
) -> Result<bool> {
    let mut conn = b.inner.reader.acquire().await.map_err(map)?;
    Ok(
        sqlx::query_scalar::<_, i64>("SELECT 1 FROM namespace_history WHERE namespace = ?")
            .bind(namespace.as_str())
            .fetch_optional(&mut *conn)
            .await
            .map_err(map)?
            .is_some(),
    )
}

/// The stored lane of a rule: the lane, or [`rules::ALL_LANES`].
fn rule_lane(lane: Option<&baton_core::Lane>) -> &str {
    lane.map_or(rules::ALL_LANES, baton_core::Lane::as_str)
}

pub(crate) async fn set_retention(
    b: &SqliteBackend,
    namespace: &baton_core::Namespace,
    lane: Option<&baton_core::Lane>,
    keep: std::time::Duration,
) -> Result<Option<std::time::Duration>> {
    let keep_ms = rules::check_keep(keep)?;
    let mut tx = b.begin().await?;
    let was: Option<i64> =
        sqlx::query_scalar("SELECT keep_ms FROM retention_rules WHERE namespace = ? AND lane = ?")
            .bind(namespace.as_str())
            .bind(rule_lane(lane))
            .fetch_optional(&mut *tx)
            .await
            .map_err(map)?;
    let held: i64 = sqlx::query_scalar("SELECT count(*) FROM retention_rules")
        .fetch_one(&mut *tx)
        .await
        .map_err(map)?;
    rules::check_rule_room(
        usize::try_from(held).unwrap_or(usize::MAX),
        was.is_some(),
        namespace.as_str(),
    )?;
    sqlx::query(
        "INSERT INTO retention_rules (namespace, lane, keep_ms) VALUES (?, ?, ?) \
         ON CONFLICT (namespace, lane) DO UPDATE SET keep_ms = excluded.keep_ms",
    )
    .bind(namespace.as_str())
    .bind(rule_lane(lane))
    .bind(keep_ms as i64)
    .execute(&mut *tx)
    .await
    .map_err(map)?;
    tx.commit().await.map_err(map)?;
    Ok(was.map(|ms| std::time::Duration::from_millis(ms.max(0) as u64)))
}

pub(crate) async fn remove_retention(
    b: &SqliteBackend,
    namespace: &baton_core::Namespace,
    lane: Option<&baton_core::Lane>,
) -> Result<Option<std::time::Duration>> {
    let mut tx = b.begin().await?;
    let was: Option<i64> = sqlx::query_scalar(
        "DELETE FROM retention_rules WHERE namespace = ? AND lane = ? RETURNING keep_ms",
    )
    .bind(namespace.as_str())
    .bind(rule_lane(lane))
    .fetch_optional(&mut *tx)
    .await
    .map_err(map)?;
    tx.commit().await.map_err(map)?;
    Ok(was.map(|ms| std::time::Duration::from_millis(ms.max(0) as u64)))
}

pub(crate) async fn retention_rules(b: &SqliteBackend) -> Result<Vec<baton_core::RetentionRule>> {
    let mut conn = b.inner.reader.acquire().await.map_err(map)?;
    let rows: Vec<(String, String, i64)> =
        sqlx::query_as("SELECT namespace, lane, keep_ms FROM retention_rules")
            .fetch_all(&mut *conn)
            .await
            .map_err(map)?;
    let mut out = rows
        .iter()
        .map(|(ns, lane, keep)| rules::stored_retention_rule(ns, lane, *keep))
        .collect::<Result<Vec<_>>>()?;
    rules::sort_retention_rules(&mut out);
    Ok(out)
}

/// The rules of `namespaces` as `(namespace, lane, keep_ms)`, for
/// [`rules::keep_for`]; empty without any.
pub(crate) async fn rules_of(
    conn: &mut SqliteConnection,
    namespaces: &[&str],
) -> Result<Vec<(String, String, u64)>> {
    if namespaces.is_empty() {
        return Ok(Vec::new());
    }
    let mut qb: QueryBuilder<'_, Sqlite> = QueryBuilder::new(
        "SELECT namespace, lane, keep_ms FROM retention_rules WHERE namespace IN (",
    );
    let mut list = qb.separated(", ");
    for ns in namespaces {
        list.push_bind(*ns);
    }
    qb.push(")");
    let rows: Vec<(String, String, i64)> = qb
        .build_query_as()
        .fetch_all(&mut *conn)
        .await
        .map_err(map)?;
    Ok(rows
        .into_iter()
        .map(|(ns, lane, keep)| (ns, lane, keep.max(0) as u64))
        .collect())
}

/// Whether a unit's error is the answer for one id (the single call's
/// refusal) rather than a failure of the unit: not found, a conflict, or a
/// replay waiting for the partition's cascade queue.
fn is_refusal(e: &EngineError, id: &ExecutionId) -> bool {
    matches!(
        e,
        EngineError::NotFound { .. } | EngineError::Conflict { .. }
    ) || *e == rules::replay_waits_for_cascade(id)
}

/// Whether `id` had not finished, read in the unit's transaction before
/// its cancel (`None`: no such execution; the cancel answers `NotFound`).
async fn unfinished(conn: &mut SqliteConnection, id: &ExecutionId) -> Result<Option<bool>> {
    let finished: Option<Option<i64>> =
        sqlx::query_scalar("SELECT finished_at FROM executions WHERE uuid = ?")
            .bind(blob(id))
            .fetch_optional(&mut *conn)
            .await
            .map_err(map)?;
    Ok(finished.map(|f| f.is_none()))
}

pub(crate) async fn cancel_units(
    b: &SqliteBackend,
    ids: &[ExecutionId],
    request: &baton_core::CancelRequest,
) -> Result<Vec<Result<baton_core::CancelPart>>> {
    use baton_core::CancelPart;
    if baton_core::raw::bulk::check_unit(ids, b.inner.partitions)?.is_none() {
        return Ok(Vec::new());
    }
    let reason = rules::cancel_reason(&b.inner.limits, request.reason.clone())?;
    let now = b.now();
    let budget = b.inner.limits.cascade_budget.max(1) as u64;
    let mut tx = b.begin().await?;
    let mut out = Vec::with_capacity(ids.len());
    let mut wake = Vec::new();
    let mut spent = 0u64;
    for id in ids {
        if spent >= budget {
            out.push(Ok(CancelPart::NotReached));
            continue;
        }
        // Each id in its own savepoint: one refused leaves nothing of its
        // own behind, and the others go on.
        let mut one = sqlx::Connection::begin(&mut *tx).await.map_err(map)?;
        let was_open = unfinished(&mut one, id).await?;
        let scope = request.scope;
        match crate::flow::cancel_walked(b, &mut one, id, scope, reason.clone(), now).await {
            Ok((_, lanes, visited)) => {
                one.commit().await.map_err(map)?;
                wake.extend(lanes);
                let acted = was_open == Some(true);
                // What its walk visited, cancelled or not: the unit is
                // bounded as one cancel is.
                spent += u64::from(acted) + visited as u64;
                out.push(Ok(if acted {
                    CancelPart::Cancelled
                } else {
                    CancelPart::Finished
                }));
            }
            // A refusal is this id's answer; anything else (an I/O error)
            // fails the unit whole, nothing of it committed.
            Err(e) if is_refusal(&e, id) => {
                one.rollback().await.map_err(map)?;
                out.push(Err(e));
            }
            Err(e) => return Err(e),
        }
    }
    tx.commit().await.map_err(map)?;
    b.wake_all(wake);
    b.finished_some();
    Ok(out)
}

pub(crate) async fn replay_units(
    b: &SqliteBackend,
    ids: &[ExecutionId],
) -> Result<Vec<Result<()>>> {
    if baton_core::raw::bulk::check_unit(ids, b.inner.partitions)?.is_none() {
        return Ok(Vec::new());
    }
    let now = b.now();
    let mut tx = b.begin().await?;
    let mut out = Vec::with_capacity(ids.len());
    let mut lanes = std::collections::BTreeSet::new();
    for id in ids {
        let mut one = sqlx::Connection::begin(&mut *tx).await.map_err(map)?;
        match crate::ops::replay_in(b, &mut one, id, now).await {
            Ok(after) => {
                one.commit().await.map_err(map)?;
                lanes.insert((after.namespace.to_string(), after.lane.to_string()));
                out.push(Ok(()));
            }
            // A refusal is this id's answer; anything else (an I/O error)
            // fails the unit whole, nothing of it committed.
            Err(e) if is_refusal(&e, id) => {
                one.rollback().await.map_err(map)?;
                out.push(Err(e));
            }
            Err(e) => return Err(e),
        }
    }
    tx.commit().await.map_err(map)?;
    for (ns, lane) in lanes {
        b.inner.wake.notify(&ns, &lane);
    }
    Ok(out)
}
