//! `create`: submissions, idempotency keys, tags.

use std::collections::HashMap;

use baton_core::raw::{PreparedExecution, rules};
use baton_core::{CreateOutcome, ExecutionId, NewExecution, Result, State, Timestamp};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use crate::errors::map;
use crate::read::{self, col};
use crate::{SqliteBackend, blob};

pub(crate) async fn create(
    b: &SqliteBackend,
    executions: Vec<NewExecution>,
) -> Result<Vec<CreateOutcome>> {
    let limits = &b.inner.limits;
    let now = b.now();
    let rows = PreparedExecution::prepare_batch(executions, limits, now, b.inner.partitions)?;
    // Written by the writer task, in a transaction shared with the writes
    // that queued with it (`combine.rs`).
    crate::combine::through_writer(b, |reply| {
        crate::combine::Job::Create(crate::combine::Submission { rows, now, reply })
    })
    .await
}

/// The body of a create, in the writer task's transaction (not committed
/// here); the lanes that received waiting work go to `wake`, to be woken
/// after the commit.
///
/// Every refusal it answers (`InvalidInput`, `NotFound`, `Conflict`: a
/// parent or upstream that does not allow the call) is found before its
/// first write, so a refused call leaves the shared transaction as it
/// found it; an error after a write is a database error, and the writer
/// task rolls the whole transaction back.
pub(crate) async fn create_in(
    b: &SqliteBackend,
    tx: &mut SqliteConnection,
    rows: &[PreparedExecution],
    now: Timestamp,
    wake: &mut Vec<(String, String)>,
) -> Result<Vec<CreateOutcome>> {
    let roots = check_parents(b, &mut *tx, rows).await?;
    let starts = crate::flow::check_dependencies(b, &mut *tx, rows, &roots).await?;
    // What each new execution starts as: what its dependencies decide, if
    // it has any.
    let start_of: HashMap<&ExecutionId, rules::DependencyStart> = rows
        .iter()
        .zip(&starts)
        .filter_map(|(r, s)| s.map(|s| (&r.id, s)))
        .collect();
    let state_of = |r: &PreparedExecution| start_of.get(&r.id).map_or(r.state, |s| s.state());
    let mut outcomes = Vec::with_capacity(rows.len());
    let mut fresh: Vec<&PreparedExecution> = Vec::with_capacity(rows.len());
    let mut seen: HashMap<(&str, &str, &str, &str), usize> = HashMap::new();
    let mut seen_children: HashMap<(&ExecutionId, &str), usize> = HashMap::new();
    for row in rows {
        if let (Some(parent), Some(key)) = (&row.new.parent, &row.new.child_key) {
            let k = (parent, key.as_str());
            if let Some(&first) = seen_children.get(&k) {
                let first: &CreateOutcome = &outcomes[first];
                outcomes.push(CreateOutcome {
                    created: false,
                    ..first.clone()
                });
                continue;
            }
            seen_children.insert(k, outcomes.len());
            let existing = sqlx::query(
                "SELECT uuid, partition, state FROM executions WHERE parent = ? AND child_key = ?",
            )
            .bind(parent.to_string())
            .bind(key.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(map)?;
            if let Some(existing) = existing {
                outcomes.push(existing_outcome(&existing, b)?);
                continue;
            }
        }
        if let Some(key) = &row.new.idempotency_key {
            let k = (
                row.new.namespace.as_str(),
                row.new.lane.as_str(),
                row.new.session.as_ref().map_or("", |s| s.as_str()),
                key.as_str(),
            );
            if let Some(&first) = seen.get(&k) {
                let first: &CreateOutcome = &outcomes[first];
                outcomes.push(CreateOutcome {
                    created: false,
                    ..first.clone()
                });
                continue;
            }
            let existing = sqlx::query(
                "SELECT uuid, partition, state FROM executions \
                 WHERE namespace = ? AND lane = ? AND COALESCE(session, '') = ? \
                 AND idempotency_key = ?",
            )
            .bind(k.0)
            .bind(k.1)
            .bind(k.2)
            .bind(k.3)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map)?;
            seen.insert(k, outcomes.len());
            if let Some(existing) = existing {
                outcomes.push(existing_outcome(&existing, b)?);
                continue;
            }
        }
        outcomes.push(CreateOutcome {
            id: row.id.clone(),
            state: state_of(row),
            created: true,
        });
        fresh.push(row);
    }

    // The settings of this call's namespaces, in one statement: which keep
    // histories, and their retention rules (usually neither: the history
    // and keep columns keep their defaults and nothing more is bound).
    // Each execution is stamped with the keep of the rule covering it now.
    let mut namespaces: Vec<&str> = fresh.iter().map(|r| r.new.namespace.as_str()).collect();
    namespaces.sort_unstable();
    namespaces.dedup();
    let mut with_history: Vec<String> = Vec::new();
    let mut retention: Vec<(String, String, u64)> = Vec::new();
    if !namespaces.is_empty() {
        let mut qb: QueryBuilder<'_, Sqlite> = QueryBuilder::new(
            "SELECT namespace, NULL AS lane, NULL AS keep_ms FROM namespace_history \
             WHERE namespace IN (",
        );
        let mut list = qb.separated(", ");
        for ns in &namespaces {
            list.push_bind(*ns);
        }
        qb.push(
            ") UNION ALL SELECT namespace, lane, keep_ms FROM retention_rules WHERE namespace IN (",
        );
        let mut list = qb.separated(", ");
        for ns in &namespaces {
            list.push_bind(*ns);
        }
        qb.push(")");
        let rows: Vec<(String, Option<String>, Option<i64>)> =
            qb.build_query_as().fetch_all(&mut *tx).await.map_err(map)?;
        for (ns, lane, keep) in rows {
            match (lane, keep) {
                (Some(lane), Some(keep)) => retention.push((ns, lane, keep.max(0) as u64)),
                _ => with_history.push(ns),
            }
        }
    }
    let keep_of = |n: &baton_core::NewExecution| {
        rules::keep_for(
            retention
                .iter()
                .map(|(ns, lane, keep)| (ns.as_str(), lane.as_str(), *keep)),
            n.namespace.as_str(),
            n.lane.as_str(),
        )
    };
    // 36 bound columns per row; 400 rows stay under SQLite's 32766
    // variable limit with room to spare.
    for chunk in fresh.chunks(400) {
        // The dependency columns only for chunks that hold a dependent: the
        // rest keep their defaults, and a plain submission binds nothing
        // more than before dependencies existed.
        let with_deps = chunk.iter().any(|r| start_of.contains_key(&r.id));
        let mut qb: QueryBuilder<'_, Sqlite> = QueryBuilder::new(
            "INSERT INTO executions (uuid, partition, namespace, lane, kind, state, priority, payload, \
             tags, required_caps, attempts, max_attempts, backoff_initial_ms, backoff_max_ms, \
             backoff_multiplier, backoff_jitter, idempotency_key, parent, child_key, root, created_at, updated_at, \
             run_at, ready_at, deadline, session, version, version_key",
        );
        if with_deps {
            qb.push(", finished_at, last_error, dep_policy, deps_total, deps_done, deps_bad");
        }
        let keeps_history = !with_history.is_empty();
        if keeps_history {
            qb.push(", history");
        }
        let kept = chunk.iter().any(|r| keep_of(&r.new).is_some());
        if kept {
            qb.push(", keep_ms");
        }
        qb.push(") ");
        qb.push_values(chunk, |mut b, r| {
            let n = &r.new;
            let start = start_of.get(&r.id);
            let state = state_of(r);
            b.push_bind(blob(&r.id))
                .push_bind(i64::from(r.id.partition().get()))
                .push_bind(n.namespace.as_str())
                .push_bind(n.lane.as_str())
                .push_bind(n.kind.as_str())
                .push_bind(state.as_str())
                .push_bind(i64::from(n.priority))
                .push_bind(n.payload.as_slice())
                .push_bind(r.tags_json.as_str())
                .push_bind(r.caps_json.as_str())
                .push_bind(0i64)
                .push_bind(i64::from(n.retry.max_attempts))
                .push_bind(n.retry.backoff.initial_ms as i64)
                .push_bind(n.retry.backoff.max_ms as i64)
                .push_bind(n.retry.backoff.multiplier)
                .push_bind(i64::from(n.retry.backoff.jitter))
                .push_bind(n.idempotency_key.as_ref().map(|k| k.as_str()))
                .push_bind(n.parent.as_ref().map(|p| p.to_string()))
                .push_bind(n.child_key.as_ref().map(|k| k.as_str()))
                .push_bind(
                    n.parent
                        .as_ref()
                        .and_then(|p| roots.get(p))
                        .map(|r| r.to_string()),
                )
                .push_bind(now.as_millis())
                .push_bind(now.as_millis())
                .push_bind(r.run_at.map(Timestamp::as_millis))
                .push_bind(r.run_at.unwrap_or(now).as_millis())
                .push_bind(n.deadline.map(Timestamp::as_millis))
                .push_bind(n.session.as_ref().map(|s| s.as_str()))
                .push_bind(n.version.as_ref().map(|v| v.as_str()))
                .push_bind(n.version.as_ref().map(|v| v.sort_key()));
            if with_deps {
                b.push_bind(state.is_terminal().then_some(now.as_millis()))
                    .push_bind(
                        start.filter(|s| s.state() == State::Failed).map(|s| {
                            rules::dependency_failure(n.dependency_policy, s.total, s.bad)
                        }),
                    )
                    .push_bind(start.map(|_| n.dependency_policy.to_string()))
                    .push_bind(start.map_or(0, |s| i64::from(s.total)))
                    .push_bind(start.map_or(0, |s| i64::from(s.done)))
                    .push_bind(start.map_or(0, |s| i64::from(s.bad)));
            }
            if keeps_history {
                b.push_bind(i64::from(
                    with_history.iter().any(|ns| ns == n.namespace.as_str()),
                ));
            }
            if kept {
                b.push_bind(keep_of(n).map(|k| k as i64));
            }
        });
        qb.build().execute(&mut *tx).await.map_err(map)?;
    }
    let tagged: Vec<(&PreparedExecution, &str, &str)> = fresh
        .iter()
        .flat_map(|r| {
            r.new
                .tags
                .iter()
                .map(move |(k, v)| (*r, k.as_str(), v.as_str()))
        })
        .collect();
    for chunk in tagged.chunks(2000) {
        let mut qb: QueryBuilder<'_, Sqlite> = QueryBuilder::new(
            "INSERT INTO execution_tags (execution_uuid, namespace, key, value) ",
        );
        qb.push_values(chunk, |mut b, (r, k, v)| {
            b.push_bind(blob(&r.id))
                .push_bind(r.new.namespace.as_str())
                .push_bind(*k)
                .push_bind(*v);
        });
        qb.build().execute(&mut *tx).await.map_err(map)?;
    }
    let dependents: Vec<&PreparedExecution> = fresh
        .iter()
        .copied()
        .filter(|r| !r.new.depends_on.is_empty())
        .collect();
    crate::flow::write_edges(&mut *tx, &dependents).await?;
    // Every new child is open for its parent until it finishes (one its
    // dependencies finished at create never was).
    let mut parents: std::collections::BTreeMap<&ExecutionId, i64> =
        std::collections::BTreeMap::new();
    for r in &fresh {
        if let Some(parent) = r.new.parent.as_ref().filter(|_| !state_of(r).is_terminal()) {
            *parents.entry(parent).or_default() += 1;
        }
    }
    for (parent, n) in parents {
        sqlx::query("UPDATE executions SET open_children = open_children + ? WHERE uuid = ?")
            .bind(n)
            .bind(blob(parent))
            .execute(&mut *tx)
            .await
            .map_err(map)?;
    }
    for r in &fresh {
        if state_of(r) == State::Waiting {
            wake.push((r.new.namespace.to_string(), r.new.lane.to_string()));
        }
    }
    Ok(outcomes)
}

/// The answer for a submission that found its execution already there.
fn existing_outcome(row: &sqlx::sqlite::SqliteRow, b: &SqliteBackend) -> Result<CreateOutcome> {
    let id = read::execution_id(row, b.inner.partitions)?;
    let state = read::state(&format!("execution {id}"), &col::<String>(row, "state")?)?;
    Ok(CreateOutcome {
        id,
        state,
        created: false,
    })
}

/// Reads, inside the create's transaction, the parents the batch names
/// and checks them ([`rules::check_parents`]); answers the root each
/// parent's children belong to.
async fn check_parents(
    b: &SqliteBackend,
    tx: &mut SqliteConnection,
    rows: &[PreparedExecution],
) -> Result<HashMap<ExecutionId, ExecutionId>> {
    let parents = rules::parents_named(rows);
    if parents.is_empty() {
        return Ok(HashMap::new());
    }
    // One bound value per parent stays far below SQLite's variable limit
    // (a batch is at most `Limits::max_batch` items).
    let mut qb: QueryBuilder<'_, Sqlite> = QueryBuilder::new(
        "SELECT uuid, partition, namespace, root FROM executions WHERE uuid IN (",
    );
    let mut list = qb.separated(", ");
    for p in &parents {
        list.push_bind(blob(p));
    }
    qb.push(")");
    let mut found = HashMap::with_capacity(parents.len());
    for row in qb.build().fetch_all(&mut *tx).await.map_err(map)? {
        let id = read::execution_id(&row, b.inner.partitions)?;
        let facts = read::parent_facts(&row, &id)?;
        found.insert(id, facts);
    }
    rules::check_parents(rows, &found)
}
