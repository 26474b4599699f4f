//! Deletes: one unit of [`AdminBackend::delete_units`](baton_core::AdminBackend::delete_units)
//! in one transaction; the units of bulk cancels and replays
//! ([`AdminBackend::cancel_units`](baton_core::AdminBackend::cancel_units),
//! [`AdminBackend::replay_units`](baton_core::AdminBackend::replay_units));
//! and the event history (its read, and the events of operators' edits;
//! migration 0011's triggers write the others).
//!
//! Units of cancels and replays. One transaction per unit; each id is
//! cancelled or replayed by the body of the single call, in a savepoint of
//! its own, so an id refused (`NotFound`, `Conflict`, a replay's
//! `Contention` while the cascade queue holds work) is rolled back to it,
//! its locks released, and the others go on. Any other error comes from
//! the driver (a deadlock, a serialization failure, a lost connection)
//! and answers the call, the whole unit rolled back: the rows locked for
//! the ids before it stay locked after a rollback to the savepoint, so the
//! wait cycle Postgres broke could close again, and a unit answered
//! `Contention` is asked again by the bulk walk. Before any execution's
//! row, a unit locks every flow root and parent of its ids at once, as a
//! delete unit does (below), so it never holds one id's execution while it
//! waits for another's root.
//!
//! Locks of a delete unit. It first locks the flow's root and the parent of
//! every execution it was asked for, in one statement and the one order every
//! writer of flows locks in (see `flow::deps`), then each execution's own row
//! as it comes to it, before it reads anything it judges by. Holding the root
//! keeps out everything that could change the subtree under the judgement: a
//! create of a member, a replay (which reopens a finished member), a tree
//! cancel, pause or resume, the cascade pass and the retention pass (which
//! locks roots with `SKIP LOCKED`) all lock it first. So work queued for the
//! cascade pass that could reach the subtree is committed, and seen, before
//! the queue is read, and an execution found finished with every descendant
//! finished stays so until commit. A worker's complete or fail of the
//! execution itself waits for its row lock: it either committed first (the
//! delete judges what it left) or finds the execution gone (`NotFound`). The
//! descendants removed are locked in id order (parents before children, as
//! the writers that lock a parent and then its child do) before the removal
//! statement touches what they hold. A cycle of waits left in some corner (a
//! unit naming an execution and a descendant of it, while a late complete
//! locks a member between them) is broken by Postgres: the unit answers
//! `Contention`, nothing written.

use baton_core::raw::rules::{self, DeleteFacts, DeleteVerdict};
use baton_core::{
    CancelPart, CancelScope, DeletePart, EngineError, EventKind, ExecutionEvent, ExecutionId,
    PartitionId, Result, State, Timestamp,
};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::errors::map;
use crate::{PostgresBackend, finish, part};

pub(crate) async fn delete_units(
    b: &PostgresBackend,
    ids: &[ExecutionId],
    force: bool,
) -> Result<Vec<Result<DeletePart>>> {
    let Some(partition) = baton_core::raw::delete::check_unit(ids, b.inner.partitions)? else {
        return Ok(Vec::new());
    };
    let now = b.now();
    let mut tx = b.begin().await?;
    let outcome = units_in(b, &mut tx, partition, ids, force, now).await;
    // Readers waiting on a removed execution are woken by the delete
    // trigger's notification at commit (migration 0008), and lanes whose
    // work a cancel's dependents walk released by the statement's own
    // notification, as for `cancel`.
    finish(tx, outcome).await
}

/// The body of `delete_units`, in the caller's transaction.
async fn units_in(
    b: &PostgresBackend,
    tx: &mut PgConnection,
    partition: PartitionId,
    ids: &[ExecutionId],
    force: bool,
    now: Timestamp,
) -> Result<Vec<Result<DeletePart>>> {
    let partitions = vec![part(partition); ids.len()];
    let uuids: Vec<Uuid> = ids.iter().map(ExecutionId::uuid).collect();
    crate::flow::lock_ancestors(tx, &partitions, &uuids, crate::flow::RootsOf::All).await?;
    let mut queued: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM cascades WHERE partition = $1)")
            .bind(part(partition))
            .fetch_one(&mut *tx)
            .await
            .map_err(map)?;
    let mut lone = lone_states(tx, partition, &uuids).await?;
    let mut left = b.inner.limits.cascade_budget.max(1);
    let mut out = Vec::with_capacity(ids.len());
    // Executions outside flows (no parent, no members: nothing below them,
    // no dependents) are removed together at the end, in one statement;
    // cancelling one first would change nothing anyone could read.
    let mut lone_removed: Vec<Uuid> = Vec::new();
    for id in ids {
        if left == 0 {
            out.push(Ok(DeletePart::default()));
            continue;
        }
        if lone_removed.contains(&id.uuid()) {
            // Named twice: gone with its first mention.
            out.push(Err(EngineError::NotFound { id: id.clone() }));
            continue;
        }
        if let Some(state) = lone.remove(&id.uuid()) {
            out.push(baton_core::raw::delete::lone_part(id, state, force));
            if out.last().is_some_and(Result::is_ok) {
                lone_removed.push(id.uuid());
                left -= 1;
            }
            continue;
        }
        let snap = match b.lock_row(tx, id).await {
            Ok(row) => b.snapshot(&row)?,
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
        let open_below = !descendants(tx, id, is_root, true, 1).await?.is_empty();
        let open_dependents = DeleteFacts::needs_dependents(snap.state, !is_root, open_below)
            && open_dependents(tx, id).await?;
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
            let pending = if snap.state.is_terminal() {
                crate::flow::cancel_below(b, tx, id, rules::DELETE_REASON, now).await?
            } else {
                let reason = Some(rules::DELETE_REASON.to_owned());
                crate::flow::cancel_in(b, tx, id, reason, CancelScope::Tree, now)
                    .await?
                    .cascade_pending
            };
            cancelled = true;
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
        let members = descendants(tx, id, is_root, false, left + 1).await?;
        let take = members.len().min(left);
        let done = take == members.len() && take < left;
        let mut doomed = members[..take].to_vec();
        if done {
            doomed.push(id.uuid());
        }
        lock_in_id_order(tx, partition, &doomed).await?;
        let removed = crate::scan::remove(tx, partition, &doomed).await?;
        if removed != doomed.len() as u64 {
            return Err(EngineError::corruption(format!(
                "execution {id}: a delete removed {removed} of the {} locked executions of its \
                 subtree",
                doomed.len()
            )));
        }
        left -= doomed.len();
        out.push(Ok(DeletePart {
            removed,
            done,
            cancelled,
        }));
    }
    let removed = crate::scan::remove(tx, partition, &lone_removed).await?;
    if removed != lone_removed.len() as u64 {
        return Err(EngineError::corruption(format!(
            "a delete removed {removed} of the {} locked executions outside flows",
            lone_removed.len()
        )));
    }
    Ok(out)
}

/// The states of those of `uuids` that stand outside any flow (no parent,
/// no members), each locked, in one statement (their roots — themselves —
/// are already locked by `lock_ancestors`).
async fn lone_states(
    conn: &mut PgConnection,
    partition: PartitionId,
    uuids: &[Uuid],
) -> Result<std::collections::HashMap<Uuid, State>> {
    let prefix = format!("{{p:{}}}-", partition.get());
    let rows: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT e.uuid, e.state FROM executions e \
         WHERE e.partition = $1 AND e.uuid = ANY($2) AND e.parent IS NULL \
         AND NOT EXISTS (SELECT 1 FROM executions m \
                         WHERE m.partition = $1 AND m.root = $3 || e.uuid::text) \
         ORDER BY e.uuid FOR UPDATE",
    )
    .bind(part(partition))
    .bind(uuids)
    .bind(prefix)
    .fetch_all(&mut *conn)
    .await
    .map_err(map)?;
    rows.into_iter()
        .map(|(uuid, state)| {
            let state = crate::read::state("an execution", &state)?;
            Ok((uuid, state))
        })
        .collect()
}

/// Up to `limit` descendants of `id` (only unfinished ones with
/// `open_only`), newest first: every execution comes after its
/// descendants, so removing them in this order never leaves a child
/// without its parent. A root's descendants are the members of its flow
/// (one range of the flow index); below a member they are walked down the
/// `parent` column, which holds a parent's id as `ExecutionId` prints it.
/// Every one lives in `id`'s partition (a flow lives in its root's).
async fn descendants(
    conn: &mut PgConnection,
    id: &ExecutionId,
    is_root: bool,
    open_only: bool,
    limit: usize,
) -> Result<Vec<Uuid>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let partition = part(id.partition());
    if is_root {
        let open = if open_only {
            " AND finished_at IS NULL"
        } else {
            ""
        };
        return sqlx::query_scalar(&format!(
            "SELECT uuid FROM executions WHERE partition = $1 AND root = $2{open} \
             ORDER BY uuid DESC LIMIT $3"
        ))
        .bind(partition)
        .bind(id.to_string())
        .bind(limit)
        .fetch_all(&mut *conn)
        .await
        .map_err(map);
    }
    let open = if open_only { " WHERE open" } else { "" };
    let prefix = format!("{{p:{}}}-", id.partition().get());
    sqlx::query_scalar(&format!(
        "WITH RECURSIVE below (uuid, open) AS ( \
             SELECT uuid, finished_at IS NULL FROM executions \
             WHERE partition = $1 AND parent = $2 \
             UNION ALL \
             SELECT e.uuid, e.finished_at IS NULL FROM below b \
             JOIN executions e ON e.partition = $1 AND e.parent = $4 || b.uuid::text) \
         SELECT uuid FROM below{open} ORDER BY uuid DESC LIMIT $3"
    ))
    .bind(partition)
    .bind(id.to_string())
    .bind(limit)
    .bind(prefix)
    .fetch_all(&mut *conn)
    .await
    .map_err(map)
}

/// Whether an unfinished execution depends on the member `id` or on one of
/// its descendants (dependencies link members of one flow, all in `id`'s
/// partition; a dependent reads its upstreams' results when it runs).
async fn open_dependents(conn: &mut PgConnection, id: &ExecutionId) -> Result<bool> {
    let mut ups = descendants(conn, id, false, false, usize::MAX).await?;
    ups.push(id.uuid());
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM dependencies d JOIN executions e \
         ON e.partition = d.partition AND e.uuid = d.downstream \
         WHERE d.partition = $1 AND d.upstream = ANY($2) AND e.finished_at IS NULL)",
    )
    .bind(part(id.partition()))
    .bind(&ups)
    .fetch_one(&mut *conn)
    .await
    .map_err(map)
}

/// Locks the executions `uuids` of `partition` for the rest of the
/// transaction, in id order: a parent before its children.
async fn lock_in_id_order(
    conn: &mut PgConnection,
    partition: PartitionId,
    uuids: &[Uuid],
) -> Result<()> {
    if uuids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "SELECT 1 FROM executions WHERE partition = $1 AND uuid = ANY($2) \
         ORDER BY uuid FOR UPDATE",
    )
    .bind(part(partition))
    .bind(uuids)
    .fetch_all(&mut *conn)
    .await
    .map_err(map)?;
    Ok(())
}

/// The history of `id`: one statement reads the execution (`NotFound`
/// without it) left-joined to its page of events, each joined to the
/// outcome of the attempt numbered as its `attempt`, which names the
/// transitions that ended an attempt.
pub(crate) async fn events(
    b: &PostgresBackend,
    id: &ExecutionId,
    after: u64,
    limit: usize,
) -> Result<Vec<ExecutionEvent>> {
    baton_core::Page::first(limit).validate()?;
    let rows = crate::admin::records_with(
        b,
        id,
        "SELECT v.*, e.uuid IS NOT NULL AS found \
         FROM (SELECT 1) one \
         LEFT JOIN executions e ON e.partition = $1 AND e.uuid = $2 \
         LEFT JOIN ( \
             SELECT ev.seq, ev.at, ev.kind, ev.from_state, ev.to_state, ev.attempt, \
                    ev.worker_id, ev.detail, a.outcome \
             FROM events ev \
             LEFT JOIN attempt_history a ON a.partition = $1 AND a.execution_uuid = $2 \
                                 AND a.number = ev.attempt \
             WHERE ev.partition = $1 AND ev.uuid = $2 AND ev.seq > $3 \
             ORDER BY ev.seq LIMIT $4) v ON true \
         ORDER BY v.seq",
        "seq",
        |q| {
            q.bind(i64::try_from(after).unwrap_or(i64::MAX))
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        },
    )
    .await?;
    let ctx = format!("execution {id}");
    rows.iter().map(|r| crate::read::event(r, &ctx)).collect()
}

/// Records an event that changes no state (an operator's edit) of `id`,
/// whose attempt count is `attempt`, at `now`, in the caller's transaction,
/// which holds the execution's row lock (so no other event of it is being
/// numbered; see migration 0011); nothing for an execution that keeps no
/// history (a caller holding the row may skip the call then, see
/// [`keeps_history`]). The bound is kept by the migration's trigger on
/// `events`.
pub(crate) async fn note(
    conn: &mut PgConnection,
    id: &ExecutionId,
    now: Timestamp,
    attempt: u32,
    kind: EventKind,
    detail: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO events (partition, uuid, seq, at, kind, attempt, detail) \
         SELECT x.partition, x.uuid, \
                (SELECT COALESCE(MAX(e.seq), 0) + 1 FROM events e \
                 WHERE e.partition = $1 AND e.uuid = $2), \
                $3, $4, $5, $6 \
         FROM executions x WHERE x.partition = $1 AND x.uuid = $2 AND x.history",
    )
    .bind(part(id.partition()))
    .bind(id.uuid())
    .bind(now.as_millis())
    .bind(kind.as_str())
    .bind(i32::try_from(attempt).unwrap_or(i32::MAX))
    .bind(rules::event_detail(detail))
    .execute(&mut *conn)
    .await
    .map_err(map)?;
    Ok(())
}

/// Whether the execution of `row` (a whole `executions` row) keeps its
/// history, so [`note`] has something to write.
pub(crate) fn keeps_history(row: &sqlx::postgres::PgRow) -> Result<bool> {
    crate::read::col(row, "history")
}

pub(crate) async fn audit(b: &PostgresBackend, ids: &[ExecutionId], detail: &str) -> Result<()> {
    baton_core::raw::check_describe_many(ids)?;
    let mut by_partition: std::collections::BTreeMap<PartitionId, Vec<Uuid>> =
        std::collections::BTreeMap::new();
    for id in ids {
        id.check_partition(b.inner.partitions)?;
        by_partition
            .entry(id.partition())
            .or_default()
            .push(id.uuid());
    }
    let now = b.now();
    for (partition, uuids) in by_partition {
        let mut tx = b.begin().await?;
        let outcome = audit_in(&mut tx, partition, &uuids, now, detail).await;
        finish(tx, outcome).await?;
    }
    Ok(())
}

/// The audit events of `uuids` (all of `partition`), in the caller's
/// transaction: the executions' rows are locked in the order every writer
/// of flows locks (their roots first), so their events are numbered
/// alone, then one statement writes an event for each of them that keeps
/// its history (one gone meanwhile is passed over), numbered one past its
/// highest. The insert is a statement of its own, after the locks: at read
/// committed it then sees the events of every writer it waited for.
async fn audit_in(
    tx: &mut PgConnection,
    partition: PartitionId,
    uuids: &[Uuid],
    now: Timestamp,
    detail: &str,
) -> Result<()> {
    let partitions = vec![part(partition); uuids.len()];
    crate::flow::lock_ancestors(tx, &partitions, uuids, crate::flow::RootsOf::All).await?;
    // Only the executions that keep their history (a setting that never
    // changes) need locking: nothing is written for the others.
    let locked: Vec<Uuid> = sqlx::query_scalar(
        "SELECT uuid FROM executions WHERE partition = $1 AND uuid = ANY($2) AND history \
         ORDER BY uuid FOR UPDATE",
    )
    .bind(part(partition))
    .bind(uuids)
    .fetch_all(&mut *tx)
    .await
    .map_err(map)?;
    if locked.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO events (partition, uuid, seq, at, kind, attempt, detail) \
         SELECT x.partition, x.uuid, \
                (SELECT COALESCE(MAX(e.seq), 0) + 1 FROM events e \
                 WHERE e.partition = x.partition AND e.uuid = x.uuid), \
                $3, $4, x.attempts, $5 \
         FROM executions x WHERE x.partition = $1 AND x.uuid = ANY($2)",
    )
    .bind(part(partition))
    .bind(&locked)
    .bind(now.as_millis())
    .bind(EventKind::Audit.as_str())
    .bind(rules::event_detail(detail))
    .execute(&mut *tx)
    .await
    .map_err(map)?;
    Ok(())
}

/// One statement: the insert or delete of the namespace's row answers
/// whether it was there (an insert that found it inserts nothing, a delete
/// that found it returns it), in the order concurrent calls commit.
pub(crate) async fn set_history(
    b: &PostgresBackend,
    namespace: &baton_core::Namespace,
    enabled: bool,
) -> Result<bool> {
    sqlx::query_scalar(
        "WITH added AS ( \
             INSERT INTO namespace_history (namespace) SELECT $1 WHERE $2 \
             ON CONFLICT DO NOTHING RETURNING 1), \
         removed AS ( \
             DELETE FROM namespace_history WHERE namespace = $1 AND NOT $2 RETURNING 1) \
         SELECT CASE WHEN $2 THEN NOT EXISTS (SELECT 1 FROM added) \
                     ELSE EXISTS (SELECT 1 FROM removed) END",
    )
    .bind(namespace.as_str())
    .bind(enabled)
    .fetch_one(&b.inner.pool)
    .await
    .map_err(map)
}

pub(crate) async fn history_enabled(
    b: &PostgresBackend,
    namespace: &baton_core::Namespace,
) -> Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM namespace_history WHERE namespace = $1)")
        .bind(namespace.as_str())
        .fetch_one(&b.inner.pool)
        .await
        .map_err(map)
}

/// The stored lane of a rule: the lane, or [`rules::ALL_LANES`].
fn rule_lane(lane: Option<&baton_core::Lane>) -> &str {
    lane.map_or(rules::ALL_LANES, baton_core::Lane::as_str)
}

/// A stored keep as a duration (the table's check keeps it positive).
fn stored_keep(ms: i64) -> std::time::Duration {
    std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// Writers of rules take the table's lock first (one that conflicts with
/// itself and with every write, never with a read, so creates and the
/// trim pass go on), so the count the room is judged by is not raced by
/// another writer; then one statement writes the rule and answers, from
/// the snapshot before it, the keep it replaces and how many rules there
/// were. A rule that does not fit rolls the write back.
pub(crate) async fn set_retention(
    b: &PostgresBackend,
    namespace: &baton_core::Namespace,
    lane: Option<&baton_core::Lane>,
    keep: std::time::Duration,
) -> Result<Option<std::time::Duration>> {
    let keep_ms = i64::try_from(rules::check_keep(keep)?).unwrap_or(i64::MAX);
    let mut tx = b.begin().await?;
    let outcome = async {
        sqlx::query("LOCK TABLE retention_rules IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await
            .map_err(map)?;
        let (was, held): (Option<i64>, i64) = sqlx::query_as(
            "WITH put AS ( \
                 INSERT INTO retention_rules (namespace, lane, keep_ms) VALUES ($1, $2, $3) \
                 ON CONFLICT (namespace, lane) DO UPDATE SET keep_ms = excluded.keep_ms) \
             SELECT (SELECT keep_ms FROM retention_rules WHERE namespace = $1 AND lane = $2), \
                    (SELECT count(*) FROM retention_rules)",
        )
        .bind(namespace.as_str())
        .bind(rule_lane(lane))
        .bind(keep_ms)
        .fetch_one(&mut *tx)
        .await
        .map_err(map)?;
        rules::check_rule_room(
            usize::try_from(held).unwrap_or(usize::MAX),
            was.is_some(),
            namespace.as_str(),
        )?;
        Ok(was.map(stored_keep))
    }
    .await;
    finish(tx, outcome).await
}

/// One statement (a write of the table waits for a `set_retention` that
/// holds it).
pub(crate) async fn remove_retention(
    b: &PostgresBackend,
    namespace: &baton_core::Namespace,
    lane: Option<&baton_core::Lane>,
) -> Result<Option<std::time::Duration>> {
    let was: Option<i64> = sqlx::query_scalar(
        "DELETE FROM retention_rules WHERE namespace = $1 AND lane = $2 RETURNING keep_ms",
    )
    .bind(namespace.as_str())
    .bind(rule_lane(lane))
    .fetch_optional(&b.inner.pool)
    .await
    .map_err(map)?;
    Ok(was.map(stored_keep))
}

pub(crate) async fn retention_rules(b: &PostgresBackend) -> Result<Vec<baton_core::RetentionRule>> {
    let rows: Vec<(String, String, i64)> =
        sqlx::query_as("SELECT namespace, lane, keep_ms FROM retention_rules")
            .fetch_all(&b.inner.pool)
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
    conn: &mut PgConnection,
    namespaces: &[&str],
) -> Result<Vec<(String, String, u64)>> {
    if namespaces.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT namespace, lane, keep_ms FROM retention_rules WHERE namespace = ANY($1)",
    )
    .bind(namespaces)
    .fetch_all(&mut *conn)
    .await
    .map_err(map)?;
    Ok(rows
        .into_iter()
        .map(|(ns, lane, keep)| (ns, lane, u64::try_from(keep).unwrap_or(0)))
        .collect())
}

pub(crate) async fn cancel_units(
    b: &PostgresBackend,
    ids: &[ExecutionId],
    request: &baton_core::CancelRequest,
) -> Result<Vec<Result<CancelPart>>> {
    let Some(partition) = baton_core::raw::bulk::check_unit(ids, b.inner.partitions)? else {
        return Ok(Vec::new());
    };
    let reason = rules::cancel_reason(&b.inner.limits, request.reason.clone())?;
    let now = b.now();
    let mut tx = b.begin().await?;
    let outcome = cancel_units_in(b, &mut tx, partition, ids, request.scope, reason, now).await;
    // Nothing to wake here: as for `cancel`, the statements notify the
    // lanes of dependents they released, and readers watching what
    // finished, at commit.
    finish(tx, outcome).await
}

/// The body of `cancel_units`, in the caller's transaction.
async fn cancel_units_in(
    b: &PostgresBackend,
    tx: &mut PgConnection,
    partition: PartitionId,
    ids: &[ExecutionId],
    scope: CancelScope,
    reason: Option<String>,
    now: Timestamp,
) -> Result<Vec<Result<CancelPart>>> {
    lock_unit(tx, partition, ids).await?;
    let budget = b.inner.limits.cascade_budget.max(1) as u64;
    let mut spent = 0u64;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if spent >= budget {
            out.push(Ok(CancelPart::NotReached));
            continue;
        }
        let mut one = sqlx::Connection::begin(&mut *tx).await.map_err(map)?;
        match crate::flow::cancel_acting(b, &mut one, id, reason.clone(), scope, now).await {
            Ok((_, acted, visited)) => {
                one.commit().await.map_err(map)?;
                // Each id is charged what its walks visited, cancelled or
                // not (a finished subtree, an already-cancelled root), so
                // a unit is bounded as a single cancel is.
                spent += u64::from(acted) + visited;
                out.push(Ok(if acted {
                    CancelPart::Cancelled
                } else {
                    CancelPart::Finished
                }));
            }
            Err(e @ (EngineError::NotFound { .. } | EngineError::Conflict { .. })) => {
                one.rollback().await.map_err(map)?;
                out.push(Err(e));
            }
            // A driver's error: see the module's comment on units.
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

pub(crate) async fn replay_units(
    b: &PostgresBackend,
    ids: &[ExecutionId],
) -> Result<Vec<Result<()>>> {
    let Some(partition) = baton_core::raw::bulk::check_unit(ids, b.inner.partitions)? else {
        return Ok(Vec::new());
    };
    let now = b.now();
    let mut tx = b.begin().await?;
    let outcome = replay_units_in(b, &mut tx, partition, ids, now).await;
    let (out, lanes) = finish(tx, outcome).await?;
    // The statements notified every process at commit; this one's parked
    // claimers are woken here at once, as after `replay`.
    for (namespace, lane) in lanes {
        b.inner.wake.notify(namespace.as_str(), lane.as_str());
    }
    Ok(out)
}

/// The lanes of a unit's replayed executions, each once.
type ReplayedLanes = std::collections::BTreeSet<(baton_core::Namespace, baton_core::Lane)>;

/// The body of `replay_units`, in the caller's transaction: the answers,
/// and the lanes to wake after commit.
async fn replay_units_in(
    b: &PostgresBackend,
    tx: &mut PgConnection,
    partition: PartitionId,
    ids: &[ExecutionId],
    now: Timestamp,
) -> Result<(Vec<Result<()>>, ReplayedLanes)> {
    lock_unit(tx, partition, ids).await?;
    let mut out = Vec::with_capacity(ids.len());
    let mut lanes = ReplayedLanes::new();
    for id in ids {
        let mut one = sqlx::Connection::begin(&mut *tx).await.map_err(map)?;
        match crate::ops::replay_in(b, &mut one, id, now).await {
            Ok(after) => {
                one.commit().await.map_err(map)?;
                lanes.insert((after.namespace, after.lane));
                out.push(Ok(()));
            }
            Err(e) if refuses_one(id, &e) => {
                one.rollback().await.map_err(map)?;
                out.push(Err(e));
            }
            // A driver's error: see the module's comment on units.
            Err(e) => return Err(e),
        }
    }
    Ok((out, lanes))
}

/// Whether `e`, met by the replay of `id` in a unit, refuses that id alone:
/// `NotFound`, `Conflict`, or the `Contention` `replay_in` answers while
/// the partition's cascade queue holds work (told apart from a driver's
/// `Contention` by being that very error).
fn refuses_one(id: &ExecutionId, e: &EngineError) -> bool {
    matches!(
        e,
        EngineError::NotFound { .. } | EngineError::Conflict { .. }
    ) || *e == rules::replay_waits_for_cascade(id)
}

/// Locks, for the rest of a unit's transaction, the flows' roots and the
/// parents of every one of `ids`, in one statement and the one order every
/// writer of flows locks in (see `flow::deps`), before any execution is
/// locked. Each id's cancel or replay locks its own root and parent again,
/// which then waits for nothing; taken one id after another, in list
/// order, they could close wait cycles with another unit or a single call
/// on the same flows. What is left to wait for are the executions' own
/// rows, locked in list order, each after its root and parent, as every
/// writer locks them.
async fn lock_unit(
    conn: &mut PgConnection,
    partition: PartitionId,
    ids: &[ExecutionId],
) -> Result<()> {
    let partitions = vec![part(partition); ids.len()];
    let uuids: Vec<Uuid> = ids.iter().map(ExecutionId::uuid).collect();
    crate::flow::lock_ancestors(conn, &partitions, &uuids, crate::flow::RootsOf::All).await?;
    Ok(())
}
