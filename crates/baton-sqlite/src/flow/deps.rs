//! Dependencies: what a create checks and writes, how a finished execution
//! tells its dependents (in its own transaction, bounded), and the upstream
//! results a claim carries.

use std::collections::{BTreeMap, HashMap, HashSet};

use baton_core::raw::rules::{
    DependencyStart, DependencyVerdict, DependentChange, DependentFacts, UpstreamFacts,
};
use baton_core::raw::{PreparedExecution, stored};
use baton_core::{Claim, EngineError, Upstream};

use super::*;

/// Whether executions depend on `id`.
pub(crate) async fn has_dependents(conn: &mut SqliteConnection, id: &ExecutionId) -> Result<bool> {
    let flag: Option<i64> =
        sqlx::query_scalar("SELECT has_dependents FROM executions WHERE uuid = ?")
            .bind(blob(id))
            .fetch_optional(&mut *conn)
            .await
            .map_err(map)?;
    Ok(flag == Some(1))
}

/// One execution finished in this transaction (in `state`): its parent
/// counts it down, and, when it has dependents (`has_dependents`, read
/// here when the caller does not know), they are told. Answers the lanes
/// to wake after commit.
pub(crate) async fn finished(
    b: &SqliteBackend,
    conn: &mut SqliteConnection,
    id: &ExecutionId,
    parent: Option<&ExecutionId>,
    state: State,
    has: Option<bool>,
    now: Timestamp,
) -> Result<Vec<(String, String)>> {
    let mut wake = Vec::new();
    if let Some(parent) = parent {
        wake.extend(children_finished(conn, parent, 1, now).await?);
    }
    let has = match has {
        Some(has) => has,
        None => has_dependents(conn, id).await?,
    };
    if has {
        let completed = rules::upstream_completed(state);
        wake.extend(tell(b, conn, vec![(id.clone(), completed)], now).await?);
    }
    Ok(wake)
}

/// Executions that finished in this transaction (each with whether it
/// completed) tell their dependents: `cascade_budget` dependents at most,
/// the rest queued for the cascade pass.
pub(crate) async fn tell(
    b: &SqliteBackend,
    conn: &mut SqliteConnection,
    finished: Vec<(ExecutionId, bool)>,
    now: Timestamp,
) -> Result<Vec<(String, String)>> {
    if finished.is_empty() {
        return Ok(Vec::new());
    }
    let start = finished
        .into_iter()
        .map(|(id, completed)| (CascadeItem::below(id), completed))
        .collect();
    let mut store = Store::new(&mut *conn, b, now);
    let told = cascade::dependents(&mut store, start, b.inner.limits.cascade_budget).await?;
    let wake = std::mem::take(&mut store.wake);
    queue(conn, &told.to_queue()).await?;
    Ok(wake)
}

/// Reads the upstreams a create batch names, in its transaction, and
/// checks them ([`rules::check_dependencies`]): how each item starts.
pub(crate) async fn check(
    b: &SqliteBackend,
    conn: &mut SqliteConnection,
    rows: &[PreparedExecution],
    roots: &HashMap<ExecutionId, ExecutionId>,
) -> Result<Vec<Option<DependencyStart>>> {
    let named = rules::upstreams_named(rows);
    let mut found = HashMap::with_capacity(named.len());
    // A chunk of ids stays far below SQLite's variable limit.
    for chunk in named.chunks(5_000) {
        let mut qb: QueryBuilder<'_, Sqlite> = QueryBuilder::new(
            "SELECT uuid, partition, namespace, root, state FROM executions WHERE uuid IN (",
        );
        let mut list = qb.separated(", ");
        for id in chunk {
            list.push_bind(blob(id));
        }
        qb.push(")");
        for row in qb.build().fetch_all(&mut *conn).await.map_err(map)? {
            let id = read::execution_id(&row, b.inner.partitions)?;
            let facts = stored::parent_facts(
                &id,
                &col::<String>(&row, "namespace")?,
                col::<Option<String>>(&row, "root")?.as_deref(),
            )?;
            let state = read::state(&format!("execution {id}"), &col::<String>(&row, "state")?)?;
            found.insert(
                id,
                UpstreamFacts {
                    namespace: facts.namespace,
                    root: facts.root,
                    state,
                },
            );
        }
    }
    rules::check_dependencies(rows, roots, &found)
}

/// Writes the edges of new dependents and marks their upstreams as having
/// dependents.
pub(crate) async fn write_edges(
    conn: &mut SqliteConnection,
    dependents: &[&PreparedExecution],
) -> Result<()> {
    let edges: Vec<(&ExecutionId, &ExecutionId)> = dependents
        .iter()
        .flat_map(|r| r.new.depends_on.iter().map(move |up| (&r.id, up)))
        .collect();
    if edges.is_empty() {
        return Ok(());
    }
    // An upstream already finished was counted by the create (its state is
    // the one `check` read: this transaction holds the writer).
    for chunk in edges.chunks(5_000) {
        let mut qb: QueryBuilder<'_, Sqlite> = QueryBuilder::new(
            "INSERT INTO dependencies (partition, downstream, upstream, counted) \
             SELECT v.column1, v.column2, v.column3, \
             (SELECT finished_at IS NOT NULL FROM executions WHERE uuid = v.column3) FROM (",
        );
        qb.push_values(chunk, |mut b, (down, up)| {
            b.push_bind(i64::from(down.partition().get()))
                .push_bind(blob(down))
                .push_bind(blob(up));
        });
        qb.push(") AS v");
        qb.build().execute(&mut *conn).await.map_err(map)?;
    }
    let mut ups: Vec<&ExecutionId> = edges.iter().map(|(_, up)| *up).collect();
    ups.sort();
    ups.dedup();
    for chunk in ups.chunks(5_000) {
        let mut qb: QueryBuilder<'_, Sqlite> = QueryBuilder::new(
            "UPDATE executions SET has_dependents = 1 WHERE has_dependents = 0 AND uuid IN (",
        );
        let mut list = qb.separated(", ");
        for id in chunk {
            list.push_bind(blob(id));
        }
        qb.push(")");
        qb.build().execute(&mut *conn).await.map_err(map)?;
    }
    Ok(())
}

/// Fills the upstream results of the claims in `with_deps` (those claimed
/// executions that have dependencies), from this transaction.
pub(crate) async fn upstream_results(
    b: &SqliteBackend,
    conn: &mut SqliteConnection,
    claims: &mut [Claim],
    with_deps: &HashSet<ExecutionId>,
) -> Result<()> {
    if with_deps.is_empty() {
        return Ok(());
    }
    let mut qb: QueryBuilder<'_, Sqlite> = QueryBuilder::new(
        "SELECT d.downstream, e.uuid, e.partition, e.state, e.result FROM dependencies d \
         JOIN executions e ON e.uuid = d.upstream WHERE d.downstream IN (",
    );
    let mut list = qb.separated(", ");
    for id in with_deps {
        list.push_bind(blob(id));
    }
    qb.push(")");
    let mut by_claim: HashMap<Vec<u8>, BTreeMap<ExecutionId, Upstream>> = HashMap::new();
    for row in qb.build().fetch_all(&mut *conn).await.map_err(map)? {
        let id = read::execution_id(&row, b.inner.partitions)?;
        let state = read::state(&format!("execution {id}"), &col::<String>(&row, "state")?)?;
        let result: Option<Vec<u8>> = col(&row, "result")?;
        by_claim
            .entry(col::<Vec<u8>>(&row, "downstream")?)
            .or_default()
            .insert(id, Upstream { state, result });
    }
    for claim in claims {
        if let Some(upstream) = by_claim.remove(blob(&claim.id).as_slice()) {
            claim.upstream = upstream;
        }
    }
    Ok(())
}

/// Dependents of `upstream` after `after`, as the walk reads them.
pub(super) async fn dependents_after(
    conn: &mut SqliteConnection,
    partitions: PartitionCount,
    upstream: &ExecutionId,
    after: Option<&ExecutionId>,
    limit: usize,
) -> Result<Vec<DependentFacts>> {
    let after = after.map(blob);
    let after_blob = after.clone();
    let rows = sqlx::query(
        "SELECT e.uuid, e.partition, e.parent, e.state, e.paused_from, e.dep_policy, e.deps_total, \
         e.deps_done, e.deps_bad, e.has_dependents FROM dependencies d JOIN executions e ON e.uuid = d.downstream \
         WHERE d.upstream = ? AND d.counted = 0 AND (? IS NULL OR d.downstream > ?) \
         ORDER BY d.downstream LIMIT ?",
    )
    .bind(blob(upstream))
    .bind(after.clone())
    .bind(after)
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(&mut *conn)
    .await
    .map_err(map)?;
    if let Some(last) = rows.last() {
        // The walk tells every dependent of the page in this transaction:
        // the edges are counted from here on, so a later end of the same
        // upstream (after a replay) tells only dependents created since.
        let last: Vec<u8> = col(last, "uuid")?;
        sqlx::query(
            "UPDATE dependencies SET counted = 1 WHERE upstream = ?1 AND counted = 0 \
             AND (?2 IS NULL OR downstream > ?2) AND downstream <= ?3",
        )
        .bind(blob(upstream))
        .bind(after_blob.clone())
        .bind(last)
        .execute(&mut *conn)
        .await
        .map_err(map)?;
    }
    rows.iter()
        .map(|row| {
            let id = read::execution_id(row, partitions)?;
            let ctx = format!("execution {id}");
            let Some((policy, total, done, bad)) = read::dependencies(row, &ctx)? else {
                return Err(EngineError::corruption(format!(
                    "{ctx}: a dependent of {upstream} without a dependency policy"
                )));
            };
            Ok(DependentFacts {
                parent: col::<Option<String>>(row, "parent")?
                    .map(|p| stored::parse::<ExecutionId>("parent", &ctx, &p))
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
        })
        .collect()
}

/// Writes what a finished upstream did to one page of its dependents, a
/// statement per kind of verdict (and one count-down per parent of those
/// it finished); answers the lanes to wake after commit.
pub(super) async fn settle(
    conn: &mut SqliteConnection,
    settled: &[(&DependentFacts, DependentChange)],
    now: Timestamp,
) -> Result<Vec<(String, String)>> {
    // A paused dependent takes only a verdict that finishes it; a release
    // waits for its resume (its counters are written either way).
    let settles = |d: &DependentFacts, c: &DependentChange| rules::dependency_settles(d, c);
    let pending: Vec<_> = settled
        .iter()
        .filter(|(d, c)| settles(d, c).is_none())
        .collect();
    let released: Vec<_> = settled
        .iter()
        .filter(|(d, c)| settles(d, c) == Some(State::Waiting))
        .collect();
    let finished: Vec<_> = settled
        .iter()
        .filter(|(d, c)| settles(d, c).is_some_and(State::is_terminal))
        .collect();
    let mut wake = Vec::new();
    // Five bound values per row: a page of 1,000 stays far below SQLite's
    // variable limit.
    for chunk in pending.chunks(1_000) {
        let mut qb: QueryBuilder<'_, Sqlite> = QueryBuilder::new(
            "UPDATE executions SET deps_done = v.column2, deps_bad = v.column3 FROM (",
        );
        qb.push_values(chunk, |mut b, (d, c)| {
            b.push_bind(blob(&d.id))
                .push_bind(i64::from(c.done))
                .push_bind(i64::from(c.bad));
        });
        qb.push(") AS v WHERE executions.uuid = v.column1");
        qb.build().execute(&mut *conn).await.map_err(map)?;
    }
    for chunk in released.chunks(1_000) {
        let mut qb: QueryBuilder<'_, Sqlite> = QueryBuilder::new(
            "UPDATE executions SET deps_done = v.column2, deps_bad = v.column3, \
             state = 'waiting', ready_at = ",
        );
        qb.push_bind(now.as_millis())
            .push(", updated_at = ")
            .push_bind(now.as_millis())
            .push(" FROM (");
        qb.push_values(chunk, |mut b, (d, c)| {
            b.push_bind(blob(&d.id))
                .push_bind(i64::from(c.done))
                .push_bind(i64::from(c.bad));
        });
        qb.push(") AS v WHERE executions.uuid = v.column1 RETURNING namespace, lane");
        let lanes: Vec<(String, String)> = qb
            .build_query_as()
            .fetch_all(&mut *conn)
            .await
            .map_err(map)?;
        wake.extend(lanes);
    }
    for chunk in finished.chunks(1_000) {
        let mut qb: QueryBuilder<'_, Sqlite> = QueryBuilder::new(
            "UPDATE executions SET deps_done = v.column2, deps_bad = v.column3, \
             state = v.column4, last_error = v.column5, finished_at = ",
        );
        qb.push_bind(now.as_millis())
            .push(", updated_at = ")
            .push_bind(now.as_millis())
            .push(" FROM (");
        qb.push_values(chunk, |mut b, (d, c)| {
            let state = c.verdict.state().unwrap_or(State::Skipped);
            let error = (c.verdict == DependencyVerdict::Fail)
                .then(|| rules::dependency_failure(d.policy, d.total, c.bad));
            b.push_bind(blob(&d.id))
                .push_bind(i64::from(c.done))
                .push_bind(i64::from(c.bad))
                .push_bind(state.as_str())
                .push_bind(error);
        });
        qb.push(") AS v WHERE executions.uuid = v.column1");
        qb.build().execute(&mut *conn).await.map_err(map)?;
    }
    let mut parents: BTreeMap<&ExecutionId, u64> = BTreeMap::new();
    for (d, _) in &finished {
        if let Some(parent) = &d.parent {
            *parents.entry(parent).or_default() += 1;
        }
    }
    for (parent, count) in parents {
        wake.extend(children_finished(conn, parent, count, now).await?);
    }
    Ok(wake)
}
