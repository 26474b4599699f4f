//! Reads: `describe` and the admin surface (`list`, `counts`, `namespaces`,
//! `attempts`).

use std::collections::BTreeMap;

use baton_core::raw::rules;
use baton_core::{
    AttemptRecord, EngineError, ExecutionId, ExecutionSnapshot, Lane, ListFilter, ListPage,
    Namespace, Page, Result, State, StateCounts,
};
use sqlx::{Postgres, QueryBuilder};

use crate::errors::map;
use crate::read::{self, col};
use crate::{PostgresBackend, part};

pub(crate) async fn describe(b: &PostgresBackend, id: &ExecutionId) -> Result<ExecutionSnapshot> {
    b.check_id(id)?;
    let row = sqlx::query("SELECT * FROM executions WHERE partition = $1 AND uuid = $2")
        .bind(part(id.partition()))
        .bind(id.uuid())
        .fetch_optional(&b.inner.pool)
        .await
        .map_err(map)?
        .ok_or_else(|| EngineError::NotFound { id: id.clone() })?;
    b.snapshot(&row)
}

pub(crate) async fn list(b: &PostgresBackend, filter: &ListFilter, page: Page) -> Result<ListPage> {
    filter.check(b.inner.partitions)?;
    page.validate()?;
    // `executions_by_namespace` holds every row but the running ones, in
    // id order; running rows (as many as there are leases) come from
    // `executions_leases`, and the two ordered reads are merged.
    let any_state = filter.states.is_empty();
    let reads: Vec<&str> = [
        (
            any_state || filter.states.iter().any(|s| *s != State::Running),
            "state <> 'running'",
        ),
        (
            any_state || filter.states.contains(&State::Running),
            "state = 'running'",
        ),
    ]
    .into_iter()
    .filter_map(|(wanted, rows)| wanted.then_some(rows))
    .collect();
    let limit = page.limit as i64 + 1;
    let mut qb: QueryBuilder<'_, Postgres> = QueryBuilder::new("");
    for (i, rows) in reads.iter().enumerate() {
        if i > 0 {
            qb.push(" UNION ALL ");
        }
        qb.push("(SELECT * FROM executions WHERE ")
            .push(rows)
            .push(" AND namespace = ")
            .push_bind(filter.namespace.as_str());
        push_filter(&mut qb, filter, &page);
        qb.push(" ORDER BY uuid LIMIT ").push_bind(limit).push(")");
    }
    if reads.len() > 1 {
        qb.push(" ORDER BY uuid LIMIT ").push_bind(limit);
    }
    let rows = qb.build().fetch_all(&b.inner.pool).await.map_err(map)?;
    page_of(b, &rows, page.limit)
}

/// A page of snapshots from rows read one past `limit`.
pub(crate) fn page_of(
    b: &PostgresBackend,
    rows: &[sqlx::postgres::PgRow],
    limit: usize,
) -> Result<ListPage> {
    let items = rows
        .iter()
        .map(|r| b.snapshot(r))
        .collect::<Result<Vec<_>>>()?;
    let (items, next_cursor) = rules::page_from_overfetch(items, limit, |s| &s.id);
    Ok(ListPage { items, next_cursor })
}

/// The list's conditions after the namespace, and the page's cursor.
fn push_filter<'a>(qb: &mut QueryBuilder<'a, Postgres>, filter: &'a ListFilter, page: &Page) {
    if let Some(lane) = &filter.lane {
        qb.push(" AND lane = ").push_bind(lane.as_str());
    }
    if !filter.states.is_empty() {
        let states: Vec<&str> = filter.states.iter().map(|s| s.as_str()).collect();
        qb.push(" AND state = ANY(").push_bind(states).push(")");
    }
    if let Some(key) = &filter.idempotency_key {
        qb.push(" AND idempotency_key = ").push_bind(key.as_str());
    }
    for (column, op, bound) in [
        ("created_at", ">", filter.created_after),
        ("created_at", "<", filter.created_before),
        ("finished_at", ">", filter.finished_after),
        ("finished_at", "<", filter.finished_before),
    ] {
        if let Some(t) = bound {
            qb.push(format!(" AND {column} {op} "))
                .push_bind(t.as_millis());
        }
    }
    if let Some(kind) = &filter.kind {
        qb.push(" AND kind = ").push_bind(kind.as_str());
    }
    if let Some(parent) = &filter.parent {
        // A child lives in its parent's partition.
        qb.push(" AND partition = ")
            .push_bind(crate::part(parent.partition()))
            .push(" AND parent = ")
            .push_bind(parent.to_string());
    }
    if let Some((key, value)) = &filter.tag {
        qb.push(" AND tags @> jsonb_build_object(")
            .push_bind(key.as_str())
            .push("::text, ")
            .push_bind(value.as_str())
            .push("::text)");
    }
    if let Some(cursor) = &page.cursor {
        qb.push(" AND uuid > ").push_bind(cursor.after_uuid());
    }
}

pub(crate) async fn counts(
    b: &PostgresBackend,
    namespace: &Namespace,
) -> Result<BTreeMap<Lane, StateCounts>> {
    // Every state but running from `executions_by_namespace` (it carries
    // lane and state), running from `executions_leases`.
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT lane, state, count(*) FROM executions \
         WHERE namespace = $1 AND state <> 'running' GROUP BY lane, state \
         UNION ALL \
         SELECT lane, state, count(*) FROM executions \
         WHERE namespace = $1 AND state = 'running' GROUP BY lane, state",
    )
    .bind(namespace.as_str())
    .fetch_all(&b.inner.pool)
    .await
    .map_err(map)?;
    rules::tally_rows(namespace, rows)
}

pub(crate) async fn namespaces(b: &PostgresBackend, limit: usize) -> Result<Vec<Namespace>> {
    Page::first(limit).validate()?;
    // One probe of `executions_by_namespace` per namespace, not a scan of
    // every execution: each step asks for the next name up. That index
    // holds no running rows, so the namespaces of running executions (as
    // many as there are leases) are added from `executions_leases`.
    let names: Vec<(String,)> = sqlx::query_as(
        "WITH RECURSIVE ns(name) AS ( \
           SELECT MIN(namespace) FROM executions WHERE state <> 'running' \
           UNION ALL \
           SELECT (SELECT MIN(namespace) FROM executions \
                   WHERE state <> 'running' AND namespace > ns.name) \
           FROM ns WHERE ns.name IS NOT NULL \
         ) \
         SELECT name FROM ( \
           (SELECT name FROM ns WHERE name IS NOT NULL LIMIT $1) \
           UNION \
           SELECT namespace FROM executions WHERE state = 'running' \
         ) n ORDER BY name LIMIT $1",
    )
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(&b.inner.pool)
    .await
    .map_err(map)?;
    names
        .iter()
        .map(|(n,)| baton_core::raw::stored::parse("namespace", "executions", n))
        .collect()
}

pub(crate) async fn attempts(b: &PostgresBackend, id: &ExecutionId) -> Result<Vec<AttemptRecord>> {
    let rows = records_of(
        b,
        id,
        "SELECT a.*, e.uuid IS NOT NULL AS found \
         FROM (SELECT 1) one \
         LEFT JOIN executions e ON e.partition = $1 AND e.uuid = $2 \
         LEFT JOIN attempt_history a ON a.partition = $1 AND a.execution_uuid = $2 \
         ORDER BY a.number",
        "number",
    )
    .await?;
    rows.iter().map(|r| read::attempt(r, id)).collect()
}

/// The rows of one of an execution's record tables (attempts, signals,
/// steps) that `sql` reads: the execution left-joined to the table, so one
/// statement tells an execution without records (one row whose `present`
/// column is NULL) from an unknown one (`found` false: `NotFound`).
/// Answers the rows that hold a record.
pub(crate) async fn records_of(
    b: &PostgresBackend,
    id: &ExecutionId,
    sql: &'static str,
    present: &str,
) -> Result<Vec<sqlx::postgres::PgRow>> {
    records_with(b, id, sql, present, |q| q).await
}

/// A statement with its parameters bound.
type Bound<'q> = sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>;

/// [`records_of`] for a statement with parameters of its own after the
/// partition (`$1`) and uuid (`$2`), which `more` binds.
pub(crate) async fn records_with<'q>(
    b: &PostgresBackend,
    id: &ExecutionId,
    sql: &'q str,
    present: &str,
    more: impl FnOnce(Bound<'q>) -> Bound<'q>,
) -> Result<Vec<sqlx::postgres::PgRow>> {
    use sqlx::{Row, ValueRef};
    b.check_id(id)?;
    let query = sqlx::query(sql).bind(part(id.partition())).bind(id.uuid());
    let rows = more(query).fetch_all(&b.inner.pool).await.map_err(map)?;
    let found = match rows.first() {
        Some(row) => col::<bool>(row, "found")?,
        None => false,
    };
    if !found {
        return Err(EngineError::NotFound { id: id.clone() });
    }
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let null = row
            .try_get_raw(present)
            .map_err(|e| EngineError::corruption(format!("column {present}: {e}")))?
            .is_null();
        if !null {
            out.push(row);
        }
    }
    Ok(out)
}

/// One statement for all ids.
pub(crate) async fn describe_many(
    b: &PostgresBackend,
    ids: &[ExecutionId],
) -> Result<Vec<Option<ExecutionSnapshot>>> {
    baton_core::raw::check_describe_many(ids)?;
    for id in ids {
        b.check_id(id)?;
    }
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let parts: Vec<i16> = ids.iter().map(|id| part(id.partition())).collect();
    let uuids: Vec<uuid::Uuid> = ids.iter().map(|id| id.uuid()).collect();
    let rows = sqlx::query(
        "SELECT e.* FROM executions e \
         JOIN UNNEST($1::int2[], $2::uuid[]) AS k(partition, uuid) \
           ON e.partition = k.partition AND e.uuid = k.uuid",
    )
    .bind(&parts)
    .bind(&uuids)
    .fetch_all(&b.inner.pool)
    .await
    .map_err(map)?;
    let found = rows
        .iter()
        .map(|r| b.snapshot(r))
        .collect::<Result<Vec<_>>>()?;
    Ok(baton_core::raw::in_order_of(ids, found))
}
