//! Write-combining for `complete`, the one hot-path call the trait takes per
//! execution.
//!
//! With durable commits every transaction costs a WAL flush and a round
//! trip, so completing executions one statement each caps throughput at the
//! commit rate. Concurrent `complete` calls of one backend instance are
//! therefore queued to one task that sends whatever has queued as one
//! statement (`sql/complete_many.sql`): under load a flush carries many
//! completes, and a lone call is sent at once, as before.
//!
//! Only the fast path is combined: a lease that is live completes in the
//! batch; every other lease (and every lease of a batch that failed for any
//! reason) is answered "not done here" and its caller classifies it alone,
//! under a row lock, exactly as without batching. Each complete stays atomic,
//! uses its caller's own clock reading, and is acknowledged only after the
//! statement committed.

use std::collections::{HashMap, HashSet};

use sqlx::Row;
use sqlx::postgres::{PgPool, PgRow};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

/// Most completes in one statement.
const MAX_BATCH: usize = 512;

/// One queued complete.
#[derive(Debug)]
pub struct Pending {
    /// Partition of the execution.
    pub partition: i16,
    /// Its uuid.
    pub uuid: Uuid,
    /// The lease's attempt.
    pub attempt: i32,
    /// The lease's nonce.
    pub nonce: i64,
    /// The caller's clock reading, ms.
    pub now: i64,
    /// The result bytes.
    pub result: Vec<u8>,
    /// The new row when completed here; `None`: classify it alone.
    pub reply: oneshot::Sender<Option<PgRow>>,
}

/// Planner settings of the combiner's connection: every way to read
/// `executions` but by an index's key, and every join but a nested loop,
/// cost more than any plan that probes the primary key once per lease.
///
/// The backend's connections plan each statement once (`plan_cache_mode =
/// force_generic_plan`), from the statistics of that moment: for a new
/// deployment, an empty table. From those, a seq scan hashed against the
/// batch, or the lease index read whole for every lease, looks as cheap as
/// the key probes, and the plan kept for the connection's life was one of
/// them by chance: measured at 40–90 ms a batch once the table held 100,000
/// rows, against 4–6 ms probing the key. The flow path's statements (the
/// lineage read, the parents counted down, the dependents told) join
/// batches of ids to their rows the same way and run on the same
/// connection. Every other statement of the backend plans as before.
pub const PLANNER: [(&str, &str); 4] = [
    ("enable_seqscan", "off"),
    ("enable_bitmapscan", "off"),
    ("enable_hashjoin", "off"),
    ("enable_mergejoin", "off"),
];

/// Starts the combining task on the current runtime; it ends when the
/// returned sender (the backend) is dropped. `pool` holds the combiner's
/// one connection, opened with [`PLANNER`]: one batch is written at a time.
pub fn start(pool: PgPool, flow: Flow) -> mpsc::UnboundedSender<Pending> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Pending>();
    tokio::spawn(async move {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        let mut deferred: Vec<Pending> = Vec::new();
        loop {
            batch.append(&mut deferred);
            if !baton_core::raw::recv_batch(&mut rx, &mut batch, MAX_BATCH).await {
                return;
            }
            // One lease per execution per statement: a second complete of
            // the same execution waits for the next flush, where it finds the
            // execution completed and is classified by its caller.
            let mut seen = HashSet::with_capacity(batch.len());
            let (now, later): (Vec<Pending>, Vec<Pending>) = batch
                .drain(..)
                .partition(|p| seen.insert((p.partition, p.uuid)));
            deferred = later;
            flush(&pool, &flow, now).await;
        }
    });
    tx
}

/// What the transactional phase needs to finish executions in flows.
pub struct Flow {
    /// The wake-up channel.
    pub channel: String,
    /// The deployment's partition count.
    pub partitions: baton_core::PartitionCount,
    /// Dependents visited per finished execution.
    pub budget: usize,
}

async fn flush(pool: &PgPool, flow: &Flow, mut batch: Vec<Pending>) {
    // A stable lock order keeps concurrent multi-row writers from deadlocking.
    batch.sort_by_key(|p| (p.partition, p.uuid));
    // Executions outside flows, without dependents: one statement.
    let rows = match complete_many(pool.acquire().await, &batch, false, &[]).await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::debug!(error = %e, size = batch.len(), "combined complete failed; callers retry alone");
            Vec::new()
        }
    };
    let mut answered = answer(&mut batch, rows);
    // Children and executions with dependents left: completed together in
    // one transaction that also counts their parents down (and releases a
    // parent's last wait) and tells their dependents.
    if !batch.is_empty() {
        match complete_children(pool, flow, &batch).await {
            Ok(rows) => answered.extend(answer(&mut batch, rows)),
            Err(e) => {
                tracing::debug!(error = %e, size = batch.len(), "combined complete of children failed; callers retry alone");
            }
        }
    }
    for (p, row) in answered {
        let _ = p.reply.send(Some(row));
    }
    // The rest were not live (or their statement failed): their callers
    // classify them alone.
    for p in batch {
        let _ = p.reply.send(None);
    }
}

/// Pairs the rows answered with their pending completes, taking both out.
fn answer(batch: &mut Vec<Pending>, rows: Vec<PgRow>) -> Vec<(Pending, PgRow)> {
    // One lookup per complete, not a scan of the rows: batches hold
    // hundreds of completes. A row that names no execution answers nobody.
    let mut by_id: HashMap<(i16, Uuid), PgRow> = HashMap::with_capacity(rows.len());
    for row in rows {
        if let (Ok(partition), Ok(uuid)) = (
            row.try_get::<i16, _>("partition"),
            row.try_get::<Uuid, _>("uuid"),
        ) {
            by_id.insert((partition, uuid), row);
        }
    }
    let mut out = Vec::with_capacity(by_id.len());
    let mut rest = Vec::with_capacity(batch.len());
    for p in batch.drain(..) {
        match by_id.remove(&(p.partition, p.uuid)) {
            Some(row) => out.push((p, row)),
            None => rest.push(p),
        }
    }
    *batch = rest;
    out
}

async fn complete_many(
    conn: Result<sqlx::pool::PoolConnection<sqlx::Postgres>, sqlx::Error>,
    batch: &[Pending],
    children: bool,
    covered: &[Uuid],
) -> Result<Vec<PgRow>, sqlx::Error> {
    let mut conn = conn?;
    run_many(&mut conn, batch, children, covered).await
}

async fn run_many(
    conn: &mut sqlx::PgConnection,
    batch: &[Pending],
    children: bool,
    covered: &[Uuid],
) -> Result<Vec<PgRow>, sqlx::Error> {
    sqlx::query(crate::sql::COMPLETE_MANY)
        .bind(batch.iter().map(|p| p.partition).collect::<Vec<_>>())
        .bind(batch.iter().map(|p| p.uuid).collect::<Vec<_>>())
        .bind(batch.iter().map(|p| p.attempt).collect::<Vec<_>>())
        .bind(batch.iter().map(|p| p.nonce).collect::<Vec<_>>())
        .bind(batch.iter().map(|p| p.now).collect::<Vec<_>>())
        .bind(
            batch
                .iter()
                .map(|p| p.result.as_slice())
                .collect::<Vec<_>>(),
        )
        .bind(children)
        .bind(covered)
        .fetch_all(&mut *conn)
        .await
}

/// Completes the live children and executions with dependents among
/// `batch`, counts their parents down and tells their dependents, in one
/// transaction; answers their new rows.
async fn complete_children(
    pool: &PgPool,
    flow: &Flow,
    batch: &[Pending],
) -> baton_core::Result<Vec<PgRow>> {
    let mut tx = pool.begin().await.map_err(crate::errors::map)?;
    let outcome = async {
        let partitions: Vec<i16> = batch.iter().map(|p| p.partition).collect();
        let uuids: Vec<Uuid> = batch.iter().map(|p| p.uuid).collect();
        // Roots (of those with dependents), then parents, then the
        // executions: see `flow::lock_ancestors`.
        let roots_of = crate::flow::RootsOf::Dependents;
        let covered: Vec<Uuid> =
            crate::flow::lock_ancestors(&mut tx, &partitions, &uuids, roots_of)
                .await?
                .into_iter()
                .collect();
        let rows = run_many(&mut tx, batch, true, &covered)
            .await
            .map_err(crate::errors::map)?;
        let mut finished = Vec::new();
        let mut told = Vec::new();
        for row in &rows {
            let parent: Option<String> = crate::read::col(row, "parent")?;
            let at: i64 = crate::read::col(row, "finished_at")?;
            let at = baton_core::Timestamp::from_millis(at);
            if let Some(parent) = parent {
                finished.push((parent, at));
            }
            if crate::read::has_dependents(row)? {
                told.push((crate::read::execution_id(row, flow.partitions)?, true, at));
            }
        }
        crate::flow::parents_finished(&mut tx, finished, &flow.channel).await?;
        crate::flow::dependents_finished(
            &mut tx,
            flow.partitions,
            flow.budget,
            &flow.channel,
            told,
        )
        .await?;
        Ok(rows)
    }
    .await;
    crate::finish(tx, outcome).await
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use sqlx::Connection;
    use sqlx::postgres::{PgConnectOptions, PgConnection};

    use super::PLANNER;

    /// Every scan of `executions` in the batch statement's plan, as
    /// (node type, index), and every join's node type.
    async fn batch_plan(
        url: &str,
        schema: &str,
        planner: &[(&str, &str)],
    ) -> (Vec<(String, String)>, Vec<String>) {
        let options = PgConnectOptions::from_str(url)
            .unwrap()
            .options([
                ("search_path", schema),
                ("plan_cache_mode", "force_generic_plan"),
            ])
            .options(planner.iter().copied());
        let mut conn = PgConnection::connect_with(&options).await.unwrap();
        sqlx::raw_sql(&format!("PREPARE batch AS {}", crate::sql::COMPLETE_MANY))
            .execute(&mut conn)
            .await
            .unwrap();
        let plan: serde_json::Value = sqlx::query_scalar(
            "EXPLAIN (FORMAT JSON) EXECUTE batch('{}', '{}', '{}', '{}', '{}', '{}', false, '{}')",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        let (mut scans, mut joins) = (Vec::new(), Vec::new());
        let mut stack = vec![plan[0]["Plan"].clone()];
        while let Some(node) = stack.pop() {
            let kind = node["Node Type"].as_str().unwrap_or_default().to_owned();
            let relation = node["Relation Name"].as_str().unwrap_or_default();
            if relation.starts_with("executions") && kind != "ModifyTable" {
                let index = node["Index Name"].as_str().unwrap_or_default().to_owned();
                scans.push((kind.clone(), index));
            }
            if kind.ends_with("Join") || kind == "Nested Loop" {
                joins.push(kind);
            }
            if let Some(children) = node["Plans"].as_array() {
                stack.extend(children.iter().cloned());
            }
        }
        (scans, joins)
    }

    /// The batch statement is planned once per connection, from the
    /// statistics of that moment. Here they describe a small table (a few
    /// hundred finished rows, analyzed): on a connection without the
    /// combiner's settings that plan reads the table whole; on the
    /// combiner's, it probes each child's primary key, in a nested loop
    /// over the batch.
    #[tokio::test]
    async fn a_batch_probes_the_primary_key_however_small_the_table_looked() {
        let Some(server) = baton_testkit::servers::postgres().await else {
            return;
        };
        let (schema, mut conn) = crate::testing::migrated_schema(server).await;
        let rows = crate::testing::finished_rows(1, 600, "'\\x00'");
        sqlx::raw_sql(&format!("{rows}; ANALYZE executions"))
            .execute(&mut conn)
            .await
            .unwrap();

        let (scans, _) = batch_plan(server.url(), &schema, &[]).await;
        assert!(
            scans.iter().any(|(kind, _)| kind == "Seq Scan"),
            "without the settings, this table's statistics plan a seq scan: {scans:?}"
        );

        let (scans, joins) = batch_plan(server.url(), &schema, &PLANNER).await;
        assert_eq!(scans.len(), 8, "one scan per child: {scans:?}");
        for (kind, index) in &scans {
            assert_eq!(kind, "Index Scan", "{scans:?}");
            assert!(index.ends_with("_pkey"), "the primary key, not {index}");
        }
        assert_eq!(joins, ["Nested Loop"], "{joins:?}");

        crate::testing::drop_schema(&mut conn, &schema).await;
    }
}
