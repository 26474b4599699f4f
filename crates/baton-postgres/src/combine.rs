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

use std::collections::HashSet;

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

/// Starts the combining task on the current runtime; it ends when the
/// returned sender (the backend) is dropped.
pub fn start(pool: PgPool, channel: String) -> mpsc::UnboundedSender<Pending> {
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
            flush(&pool, &channel, now).await;
        }
    });
    tx
}

async fn flush(pool: &PgPool, channel: &str, mut batch: Vec<Pending>) {
    // A stable lock order keeps concurrent multi-row writers from deadlocking.
    batch.sort_by_key(|p| (p.partition, p.uuid));
    // Executions outside flows: one statement.
    let mut rows = match complete_many(pool.acquire().await, &batch, false).await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::debug!(error = %e, size = batch.len(), "combined complete failed; callers retry alone");
            Vec::new()
        }
    };
    let mut answered = answer(&mut batch, &mut rows);
    // Children left: completed together in one transaction that also
    // counts their parents down (and releases a parent's last wait).
    if !batch.is_empty() {
        match complete_children(pool, channel, &batch).await {
            Ok(mut rows) => answered.extend(answer(&mut batch, &mut rows)),
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
fn answer(batch: &mut Vec<Pending>, rows: &mut Vec<PgRow>) -> Vec<(Pending, PgRow)> {
    let mut out = Vec::with_capacity(rows.len());
    let mut rest = Vec::with_capacity(batch.len());
    for p in batch.drain(..) {
        let found = rows.iter().position(|r| {
            r.try_get::<i16, _>("partition").ok() == Some(p.partition)
                && r.try_get::<Uuid, _>("uuid").ok() == Some(p.uuid)
        });
        match found {
            Some(i) => out.push((p, rows.swap_remove(i))),
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
) -> Result<Vec<PgRow>, sqlx::Error> {
    let mut conn = conn?;
    run_many(&mut conn, batch, children).await
}

async fn run_many(
    conn: &mut sqlx::PgConnection,
    batch: &[Pending],
    children: bool,
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
        .fetch_all(&mut *conn)
        .await
}

/// Completes the live children among `batch` and counts their parents
/// down, in one transaction; answers the children's new rows.
async fn complete_children(
    pool: &PgPool,
    channel: &str,
    batch: &[Pending],
) -> baton_core::Result<Vec<PgRow>> {
    let mut tx = pool.begin().await.map_err(crate::errors::map)?;
    let outcome = async {
        let partitions: Vec<i16> = batch.iter().map(|p| p.partition).collect();
        let uuids: Vec<Uuid> = batch.iter().map(|p| p.uuid).collect();
        crate::flow::lock_parents_of(&mut tx, &partitions, &uuids).await?;
        let rows = run_many(&mut tx, batch, true)
            .await
            .map_err(crate::errors::map)?;
        let mut finished = Vec::new();
        for row in &rows {
            let parent: Option<String> = crate::read::col(row, "parent")?;
            let at: Option<i64> = crate::read::col(row, "finished_at")?;
            if let (Some(parent), Some(at)) = (parent, at) {
                finished.push((parent, baton_core::Timestamp::from_millis(at)));
            }
        }
        crate::flow::parents_finished(&mut tx, finished, channel).await?;
        Ok(rows)
    }
    .await;
    crate::finish(tx, outcome).await
}
