//! Dependencies: telling the dependents of an execution that finished, and
//! the lock on a flow's root that every writer telling dependents takes.
//!
//! Lock order. Telling dependents locks members of the flow in no order a
//! caller can foresee (the dependents, their parents, their own
//! dependents…), so every transaction that may tell dependents — a
//! finishing execution with `has_dependents`, every cancel, the expiry of
//! a flow member, the cascade pass — first locks the flow's root (every
//! member shares it, and it is an ancestor of every member, so "root
//! first" keeps "parents before children"). So does every writer that
//! finishes any member of a flow with dependencies (its root's
//! `deps_in_flow`, set by the create of the flow's first dependent):
//! telling dependents counts down parents anywhere in the flow, which
//! would close a cycle with a writer that locks two parents of the flow
//! without the root. Such transactions of one flow run one after the
//! other; a create of a flow member locks the root too, so a dependent is
//! never created while its upstream tells its dependents. Every writer
//! that locks several flows' rows at once locks them in one order: all
//! roots, then the other parents, each by (partition, uuid)
//! (`lock_ancestors`, `lock_order`). In flows without dependencies the
//! other writers (completes and failures) lock only running executions,
//! each after its parent, and a cancel holding the root locks a running
//! execution only after its parent as well, so the two never wait on each
//! other. Parents of dependents that finish are counted down at the end of
//! a walk, in one order (`parents_finished`).

use super::*;
use baton_core::State;
use baton_core::raw::rules::{DependencyVerdict, DependentChange, DependentFacts};
use sqlx::postgres::PgRow;

/// Which executions' roots `lock_ancestors` locks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RootsOf {
    /// Of those that have dependents (a root with dependents is its own),
    /// or are members of a flow with dependencies.
    Dependents,
    /// Of those that have dependents or are members of a flow.
    Members,
    /// Of every one (a root is its own).
    All,
}

/// An execution's `(partition, uuid, parent, root, has_dependents)`, and
/// whether its flow has dependencies (its root's `deps_in_flow`).
type Lineage = (i16, Uuid, Option<String>, Option<String>, bool, bool);

/// Locks, for the rest of the transaction, what a writer that may finish
/// the executions `(partition, uuid)` locks before them: the root of each
/// one `which` names, then the parent of each one (read first without a
/// lock: neither ever changes). One statement, in one order every writer
/// uses: roots first, then the other parents, each by (partition, uuid)
/// (see `lock_order`). Answers the executions whose root is now locked:
/// one that has dependents but is not among them gained its first
/// dependent since it was read, and its caller either leaves it for a
/// later call or locks its root late (`lock_root_of`).
pub(crate) async fn lock_ancestors(
    conn: &mut PgConnection,
    partitions: &[i16],
    uuids: &[Uuid],
    which: RootsOf,
) -> Result<HashSet<Uuid>> {
    let rows: Vec<Lineage> = sqlx::query_as(
        "SELECT e.partition, e.uuid, e.parent, e.root, e.has_dependents, \
                COALESCE(r.deps_in_flow, false) AS deps_in_flow \
         FROM executions e \
         JOIN UNNEST($1::int2[], $2::uuid[]) AS q(partition, uuid) \
         ON e.partition = q.partition AND e.uuid = q.uuid \
         LEFT JOIN executions r ON r.partition = e.partition \
              AND r.uuid = split_part(e.root, '}-', 2)::uuid \
         WHERE e.parent IS NOT NULL OR e.has_dependents OR $3",
    )
    .bind(partitions)
    .bind(uuids)
    .bind(which == RootsOf::All)
    .fetch_all(&mut *conn)
    .await
    .map_err(map)?;
    let mut covered = HashSet::with_capacity(rows.len());
    let mut locks = Vec::with_capacity(rows.len() * 2);
    for (partition, uuid, parent, root, has_dependents, deps_in_flow) in &rows {
        let ctx = format!("execution {uuid}");
        let parse = |what: &str, text: &str| {
            baton_core::raw::stored::parse::<ExecutionId>(what, &ctx, text)
        };
        let root_id = root.as_deref().map(|r| parse("root", r)).transpose()?;
        let wanted = match which {
            RootsOf::Dependents => *has_dependents || *deps_in_flow,
            RootsOf::Members => *has_dependents || root.is_some(),
            RootsOf::All => true,
        };
        if wanted {
            covered.insert(*uuid);
            // A flow lives in its root's partition; a root is its own.
            let root_uuid = root_id.as_ref().map_or(*uuid, ExecutionId::uuid);
            locks.push((true, *partition, root_uuid));
        }
        if let Some(parent) = parent {
            let parent = parse("parent", parent)?;
            let is_root = root_id.as_ref() == Some(&parent);
            locks.push((is_root, part(parent.partition()), parent.uuid()));
        }
    }
    lock_in_order(conn, locks, "FOR UPDATE").await?;
    Ok(covered)
}

/// [`lock_ancestors`] of executions all in `partition` (a scheduler pass's
/// due ones); answers the covered ones as a list, to bind.
pub(crate) async fn lock_ancestors_in(
    conn: &mut PgConnection,
    partition: PartitionId,
    uuids: &[Uuid],
    which: RootsOf,
) -> Result<Vec<Uuid>> {
    let partitions = vec![part(partition); uuids.len()];
    let covered = lock_ancestors(conn, &partitions, uuids, which).await?;
    Ok(covered.into_iter().collect())
}

/// Sorts rows to lock (`(is a flow's root, partition, uuid)`) into the one
/// order every writer of flows locks in — every root first, then the other
/// members, each by (partition, uuid): a root is an ancestor of every
/// member of its flow, so "roots first" keeps "parents before children" —
/// and drops repeats.
pub(crate) fn lock_order(mut locks: Vec<(bool, i16, Uuid)>) -> Vec<(i16, Uuid)> {
    locks.sort_unstable_by_key(|&(is_root, partition, uuid)| (!is_root, partition, uuid));
    let mut seen = HashSet::with_capacity(locks.len());
    locks
        .into_iter()
        .filter(|&(_, partition, uuid)| seen.insert((partition, uuid)))
        .map(|(_, partition, uuid)| (partition, uuid))
        .collect()
}

/// Locks rows `(is a flow's root, partition, uuid)` with `mode` in
/// [`lock_order`], in one statement (rows are locked as the sorted output
/// reaches them).
async fn lock_in_order(
    conn: &mut PgConnection,
    locks: Vec<(bool, i16, Uuid)>,
    mode: &str,
) -> Result<()> {
    if locks.is_empty() {
        return Ok(());
    }
    let order = lock_order(locks);
    sqlx::query(&format!(
        "SELECT 1 FROM executions e \
         JOIN UNNEST($1::int2[], $2::uuid[]) WITH ORDINALITY AS q(partition, uuid, ord) \
         ON e.partition = q.partition AND e.uuid = q.uuid \
         ORDER BY q.ord {mode} OF e"
    ))
    .bind(order.iter().map(|r| r.0).collect::<Vec<i16>>())
    .bind(order.iter().map(|r| r.1).collect::<Vec<Uuid>>())
    .fetch_all(&mut *conn)
    .await
    .map_err(map)?;
    Ok(())
}

/// Locks the root of `id`'s flow (`id` itself when it is a root), for a
/// transaction that found `id` has dependents only after it locked `id`:
/// the dependent was created in between, which is rare, and a wait here
/// that closes a cycle is broken by Postgres (`Contention`, nothing
/// written).
pub(crate) async fn lock_root_of(conn: &mut PgConnection, id: &ExecutionId) -> Result<()> {
    sqlx::query(
        "SELECT 1 FROM executions r WHERE r.partition = $1 AND r.uuid = \
         COALESCE((SELECT split_part(e.root, '}-', 2)::uuid FROM executions e \
                   WHERE e.partition = $1 AND e.uuid = $2), $2) \
         FOR UPDATE",
    )
    .bind(part(id.partition()))
    .bind(id.uuid())
    .fetch_optional(&mut *conn)
    .await
    .map_err(map)?;
    Ok(())
}

/// Executions that just finished in this transaction (each with whether it
/// completed and when it finished), every one with `has_dependents` and
/// its flow's root locked: their dependents are told, `budget` dependents
/// visited for each, and what is left is queued for the cascade pass.
/// Answers how many dependents were visited in all.
pub(crate) async fn dependents_finished(
    conn: &mut PgConnection,
    partitions: PartitionCount,
    budget: usize,
    channel: &str,
    finished: Vec<(ExecutionId, bool, Timestamp)>,
) -> Result<usize> {
    let Some((_, _, first)) = finished.first() else {
        return Ok(0);
    };
    let mut store = Store::new(conn, partitions, *first, channel);
    let mut left = Vec::new();
    let mut visited = 0;
    for (id, completed, at) in finished {
        store.now = at;
        let told = cascade::dependents(
            &mut store,
            vec![(CascadeItem::below(id), completed)],
            budget,
        )
        .await?;
        visited += told.visited;
        left.extend(told.to_queue());
    }
    store.flush().await?;
    queue(conn, &left).await?;
    Ok(visited)
}

/// The dependents of `upstream` above `after`, as `dependents_after`
/// answers them: their ids from the edges' index (a range scan from
/// `after`, so a walk's later pages cost what its first did), their rows
/// read by primary key, then the ones still `blocked`, or paused from
/// there — the only ones a finished upstream changes — locked and read
/// again, so they are judged as their last writer left them.
pub(super) async fn dependents_after(
    store: &mut Store<'_>,
    upstream: &ExecutionId,
    after: Option<&ExecutionId>,
    limit: usize,
) -> Result<Vec<DependentFacts>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let partition = part(upstream.partition());
    // Two statements rather than `($3 IS NULL OR …)`, as for children.
    let ids: Vec<Uuid> = match after {
        Some(after) => {
            sqlx::query_scalar(
                "SELECT downstream FROM dependencies WHERE partition = $1 AND upstream = $2 AND NOT counted \
                 AND downstream > $3 ORDER BY downstream LIMIT $4",
            )
            .bind(partition)
            .bind(upstream.uuid())
            .bind(after.uuid())
            .bind(limit)
            .fetch_all(&mut *store.conn)
            .await
        }
        None => {
            sqlx::query_scalar(
                "SELECT downstream FROM dependencies WHERE partition = $1 AND upstream = $2 AND NOT counted \
                 ORDER BY downstream LIMIT $3",
            )
            .bind(partition)
            .bind(upstream.uuid())
            .bind(limit)
            .fetch_all(&mut *store.conn)
            .await
        }
    }
    .map_err(map)?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    // The walk tells every dependent of the page in this transaction: the
    // edges are counted from here on, so a later end of the same upstream
    // (after a replay) tells only dependents created since.
    sqlx::query(
        "UPDATE dependencies SET counted = true \
         WHERE partition = $1 AND upstream = $2 AND downstream = ANY($3)",
    )
    .bind(partition)
    .bind(upstream.uuid())
    .bind(&ids)
    .execute(&mut *store.conn)
    .await
    .map_err(map)?;
    let columns = "e.uuid, e.partition, e.parent, e.state, e.paused_from, e.dep_policy, \
                   e.deps_total, e.deps_done, e.deps_bad, e.has_dependents";
    let rows = sqlx::query(&format!(
        "SELECT {columns} FROM executions e WHERE e.partition = $1 AND e.uuid = ANY($2) \
         ORDER BY e.uuid"
    ))
    .bind(partition)
    .bind(&ids)
    .fetch_all(&mut *store.conn)
    .await
    .map_err(map)?;
    let mut facts = rows
        .iter()
        .map(|row| dependent_facts(row, store.partitions))
        .collect::<Result<Vec<_>>>()?;
    let blocked: Vec<Uuid> = facts
        .iter()
        .filter(|f| blocked_or_paused_from_there(f))
        .map(|f| f.id.uuid())
        .collect();
    if blocked.is_empty() {
        return Ok(facts);
    }
    let locked = sqlx::query(&format!(
        "SELECT {columns} FROM executions e WHERE e.partition = $1 AND e.uuid = ANY($2) \
         ORDER BY e.uuid FOR UPDATE"
    ))
    .bind(partition)
    .bind(&blocked)
    .fetch_all(&mut *store.conn)
    .await
    .map_err(map)?;
    for row in &locked {
        let fresh = dependent_facts(row, store.partitions)?;
        if let Some(f) = facts.iter_mut().find(|f| f.id == fresh.id) {
            *f = fresh;
        }
    }
    Ok(facts)
}

/// Whether a dependent is `blocked`, or paused from there: the only ones a
/// finished upstream may change.
fn blocked_or_paused_from_there(f: &DependentFacts) -> bool {
    match f.state {
        State::Paused => f.paused_from == Some(State::Blocked),
        state => state == State::Blocked,
    }
}

fn dependent_facts(row: &PgRow, partitions: PartitionCount) -> Result<DependentFacts> {
    let id = read::execution_id(row, partitions)?;
    let ctx = format!("execution {id}");
    let (policy, total, done, bad) = read::dependencies(row, &ctx)?.ok_or_else(|| {
        EngineError::corruption(format!(
            "{ctx} is named as a dependent but has no dependency policy"
        ))
    })?;
    Ok(DependentFacts {
        parent: col::<Option<String>>(row, "parent")?
            .map(|p| baton_core::raw::stored::parse::<ExecutionId>("parent", &ctx, &p))
            .transpose()?,
        state: read::state(&ctx, &col::<String>(row, "state")?)?,
        paused_from: col::<Option<String>>(row, "paused_from")?
            .map(|s| read::state(&ctx, &s))
            .transpose()?,
        policy,
        total,
        done,
        bad,
        has_dependents: read::has_dependents(row)?,
        id,
    })
}

/// Writes what one finished upstream did to one page of locked, still
/// blocked dependents (or paused from there), a statement per state they
/// take ([`rules::dependency_settles`]): their counters only (pending, or
/// a paused one released, which waits for its resume), their counters
/// and `waiting` (lanes notified at commit), `skipped` or `failed`
/// (finished now, paused or not; their parents counted down when the walk
/// is done).
pub(super) async fn settle_dependents(
    store: &mut Store<'_>,
    settled: &[(&DependentFacts, DependentChange)],
) -> Result<()> {
    let now = store.now.as_millis();
    let counter = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
    let mut expected = 0u64;
    let mut updated = 0u64;
    let groups = [
        |s: Option<State>| s.is_none(),
        |s: Option<State>| s == Some(State::Waiting),
        |s: Option<State>| s.is_some_and(State::is_terminal),
    ];
    for (kind, pick) in groups.iter().enumerate() {
        let group: Vec<&(&DependentFacts, DependentChange)> = settled
            .iter()
            .filter(|(d, c)| pick(rules::dependency_settles(d, c)))
            .collect();
        if group.is_empty() {
            continue;
        }
        expected += group.len() as u64;
        let partition = part(group[0].0.id.partition());
        if group
            .iter()
            .any(|(d, _)| part(d.id.partition()) != partition)
        {
            return Err(EngineError::corruption(format!(
                "dependents of one upstream in more than one partition (execution {})",
                group[0].0.id
            )));
        }
        let uuids: Vec<Uuid> = group.iter().map(|(d, _)| d.id.uuid()).collect();
        let done: Vec<i32> = group.iter().map(|(_, c)| counter(c.done)).collect();
        let bad: Vec<i32> = group.iter().map(|(_, c)| counter(c.bad)).collect();
        // One partition per page (a flow lives in one), bound as a scalar so
        // the statement touches that partition only.
        const INPUT: &str = "UNNEST($2::uuid[], $3::int4[], $4::int4[], $5::text[], $6::text[]) \
                             AS v(uuid, done, bad, state, error)";
        // `uuid = ANY` beside the join: the rows are found by primary key
        // whatever the planner estimates for the UNNEST.
        const MATCH: &str = "e.partition = $1 AND e.uuid = ANY($2::uuid[]) AND e.uuid = v.uuid \
                             AND (e.state = 'blocked' \
                                  OR (e.state = 'paused' AND e.paused_from = 'blocked'))";
        let (states, errors): (Vec<&str>, Vec<Option<String>>) = group
            .iter()
            .map(|(d, c)| {
                let state = rules::dependency_settles(d, c).unwrap_or(d.state).as_str();
                let error = (c.verdict == DependencyVerdict::Fail)
                    .then(|| rules::dependency_failure(d.policy, d.total, c.bad));
                (state, error)
            })
            .unzip();
        let sql = match kind {
            0 => format!(
                "UPDATE executions e SET deps_done = v.done, deps_bad = v.bad FROM {INPUT} \
                 WHERE {MATCH}"
            ),
            1 => format!(
                "WITH released AS ( \
                     UPDATE executions e SET deps_done = v.done, deps_bad = v.bad, \
                         state = 'waiting', ready_at = $7, updated_at = $7 \
                     FROM {INPUT} WHERE {MATCH} RETURNING e.namespace, e.lane), \
                 woken AS (SELECT pg_notify($8, namespace || ' ' || lane) \
                     FROM (SELECT DISTINCT namespace, lane FROM released) l) \
                 SELECT (SELECT count(*) FROM released) AS n, (SELECT count(*) FROM woken) AS w"
            ),
            _ => format!(
                "UPDATE executions e SET deps_done = v.done, deps_bad = v.bad, state = v.state, \
                     last_error = v.error, finished_at = $7, updated_at = $7 \
                 FROM {INPUT} WHERE {MATCH}"
            ),
        };
        let query = sqlx::query(&sql)
            .bind(partition)
            .bind(uuids)
            .bind(done)
            .bind(bad)
            .bind(states)
            .bind(errors);
        updated += match kind {
            0 => query
                .execute(&mut *store.conn)
                .await
                .map_err(map)?
                .rows_affected(),
            1 => {
                let row = query
                    .bind(now)
                    .bind(store.channel)
                    .fetch_one(&mut *store.conn)
                    .await
                    .map_err(map)?;
                u64::try_from(col::<i64>(&row, "n")?).unwrap_or(0)
            }
            _ => {
                let n = query
                    .bind(now)
                    .execute(&mut *store.conn)
                    .await
                    .map_err(map)?
                    .rows_affected();
                for (d, _) in &group {
                    if let Some(parent) = &d.parent {
                        store.finished.push((parent.to_string(), store.now));
                    }
                }
                n
            }
        };
    }
    if updated != expected {
        return Err(EngineError::corruption(format!(
            "{expected} locked dependents, blocked or paused from there, were settled as \
             {updated} rows"
        )));
    }
    Ok(())
}
