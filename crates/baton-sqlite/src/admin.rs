//! Reads: `describe` and the admin surface (`list`, `counts`, `namespaces`,
//! `attempts`).

use std::collections::BTreeMap;

use baton_core::raw::rules;
use baton_core::{
    AttemptRecord, ExecutionId, ExecutionSnapshot, Lane, ListFilter, ListPage, Namespace, Page,
    Result, StateCounts,
};
use sqlx::{QueryBuilder, Sqlite};

use crate::errors::map;
use crate::read::{self};
use crate::{SqliteBackend, blob};

pub(crate) async fn describe(b: &SqliteBackend, id: &ExecutionId) -> Result<ExecutionSnapshot> {
    b.check_id(id)?;
    let mut conn = b.inner.reader.acquire().await.map_err(map)?;
    b.snapshot_in(&mut conn, id).await
}

pub(crate) async fn list(b: &SqliteBackend, filter: &ListFilter, page: Page) -> Result<ListPage> {
    filter.check(b.inner.partitions)?;
    page.validate()?;
    let mut qb: QueryBuilder<'_, Sqlite> = QueryBuilder::new(concat!(
        "SELECT ",
        execution_columns!(),
        " FROM executions WHERE namespace = "
    ));
    qb.push_bind(filter.namespace.as_str());
    if let Some(lane) = &filter.lane {
        qb.push(" AND lane = ").push_bind(lane.as_str());
    }
    if !filter.states.is_empty() {
        qb.push(" AND state IN (");
        let mut list = qb.separated(", ");
        for state in &filter.states {
            list.push_bind(state.as_str());
        }
        qb.push(")");
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
        qb.push(" AND parent = ").push_bind(parent.to_string());
    }
    if let Some((key, value)) = &filter.tag {
        qb.push(" AND uuid IN (SELECT execution_uuid FROM execution_tags WHERE namespace = ")
            .push_bind(filter.namespace.as_str())
            .push(" AND key = ")
            .push_bind(key.as_str())
            .push(" AND value = ")
            .push_bind(value.as_str())
            .push(")");
    }
    if let Some(cursor) = page.cursor {
        qb.push(" AND uuid > ")
            .push_bind(cursor.after_uuid().as_bytes().to_vec());
    }
    qb.push(" ORDER BY uuid LIMIT ")
        .push_bind(page.limit as i64 + 1);
    let rows = qb.build().fetch_all(&b.inner.reader).await.map_err(map)?;
    let items = rows
        .iter()
        .map(|r| read::snapshot(r, b.inner.partitions))
        .collect::<Result<Vec<_>>>()?;
    let (items, next_cursor) = rules::page_from_overfetch(items, page.limit, |s| &s.id);
    Ok(ListPage { items, next_cursor })
}

/// Per lane and state, each from the index that holds those rows:
/// `executions_by_lane_state` holds neither waiting nor running rows (every
/// claim would write it twice), so waiting ones come from
/// `executions_claim` and running ones from `executions_leases`. Named with
/// `INDEXED BY`: the planner would otherwise read a namespace's every row
/// through `executions_by_namespace` to find its running ones.
const COUNTS: &str = "\
    SELECT lane, state, COUNT(*) FROM executions INDEXED BY executions_by_lane_state \
    WHERE namespace = ?1 AND state NOT IN ('waiting', 'running') GROUP BY lane, state \
    UNION ALL \
    SELECT lane, 'waiting', COUNT(*) FROM executions INDEXED BY executions_claim \
    WHERE namespace = ?1 AND state = 'waiting' GROUP BY lane \
    UNION ALL \
    SELECT lane, 'running', COUNT(*) FROM executions INDEXED BY executions_leases \
    WHERE namespace = ?1 AND state = 'running' GROUP BY lane";

pub(crate) async fn counts(
    b: &SqliteBackend,
    namespace: &Namespace,
) -> Result<BTreeMap<Lane, StateCounts>> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(COUNTS)
        .bind(namespace.as_str())
        .fetch_all(&b.inner.reader)
        .await
        .map_err(map)?;
    rules::tally_rows(namespace, rows)
}

pub(crate) async fn namespaces(b: &SqliteBackend, limit: usize) -> Result<Vec<Namespace>> {
    Page::first(limit).validate()?;
    // One index probe per namespace (executions_by_namespace), not a
    // scan of every execution: each step asks for the next name up.
    let names: Vec<(String,)> = sqlx::query_as(
        "WITH RECURSIVE ns(name) AS ( \
           SELECT MIN(namespace) FROM executions \
           UNION ALL \
           SELECT (SELECT MIN(namespace) FROM executions WHERE namespace > ns.name) \
           FROM ns WHERE ns.name IS NOT NULL \
         ) SELECT name FROM ns WHERE name IS NOT NULL LIMIT ?",
    )
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(&b.inner.reader)
    .await
    .map_err(map)?;
    names
        .iter()
        .map(|(n,)| baton_core::raw::stored::parse("namespace", "executions", n))
        .collect()
}

pub(crate) async fn attempts(b: &SqliteBackend, id: &ExecutionId) -> Result<Vec<AttemptRecord>> {
    let mut conn = b.read_existing(id).await?;
    let rows = sqlx::query(concat!(
        "SELECT ",
        attempt_columns!(),
        " FROM attempt_history WHERE execution_uuid = ? ORDER BY number"
    ))
    .bind(blob(id))
    .fetch_all(&mut *conn)
    .await
    .map_err(map)?;
    rows.iter().map(|r| read::attempt(r, id)).collect()
}

/// One read for all ids (the reader connection, one statement).
pub(crate) async fn describe_many(
    b: &SqliteBackend,
    ids: &[ExecutionId],
) -> Result<Vec<Option<ExecutionSnapshot>>> {
    baton_core::raw::check_describe_many(ids)?;
    for id in ids {
        b.check_id(id)?;
    }
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut qb: QueryBuilder<'_, Sqlite> = QueryBuilder::new(concat!(
        "SELECT ",
        execution_columns!(),
        " FROM executions WHERE uuid IN ("
    ));
    let mut list = qb.separated(", ");
    for id in ids {
        list.push_bind(blob(id));
    }
    qb.push(")");
    let rows = qb.build().fetch_all(&b.inner.reader).await.map_err(map)?;
    let found = rows
        .iter()
        .map(|r| read::snapshot(r, b.inner.partitions))
        .collect::<Result<Vec<_>>>()?;
    Ok(baton_core::raw::in_order_of(ids, found))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use sqlx::{Connection, SqliteConnection};

    /// `counts` reads each state's rows from an index that holds only
    /// those: waiting from the claim index, running from the leases
    /// index, the rest from `executions_by_lane_state`, which holds
    /// neither waiting nor running rows.
    #[tokio::test]
    async fn counts_reads_the_index_of_each_state() {
        let mut conn = SqliteConnection::connect("sqlite::memory:").await.unwrap();
        for (version, _, sql) in crate::migrate::MIGRATIONS.iter() {
            sqlx::raw_sql(sql)
                .execute(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("migration {version}: {e}"));
        }
        let plan: Vec<(i64, i64, i64, String)> =
            sqlx::query_as(&format!("EXPLAIN QUERY PLAN {}", super::COUNTS))
                .bind("n")
                .fetch_all(&mut conn)
                .await
                .unwrap();
        let plan: Vec<String> = plan.into_iter().map(|r| r.3).collect();
        let reads: Vec<&String> = plan.iter().filter(|l| l.contains(" executions")).collect();
        assert_eq!(reads.len(), 3, "{plan:#?}");
        for (line, index) in reads.iter().zip([
            "COVERING INDEX executions_by_lane_state",
            "COVERING INDEX executions_claim",
            "INDEX executions_leases",
        ]) {
            assert!(
                line.ends_with(index) || line.contains(&format!("{index} ")),
                "{plan:#?}"
            );
        }
    }
}
