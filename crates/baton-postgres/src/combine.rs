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
pub fn start(pool: PgPool) -> mpsc::UnboundedSender<Pending> {
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
            flush(&pool, now).await;
        }
    });
    tx
}

async fn flush(pool: &PgPool, mut batch: Vec<Pending>) {
    // A stable lock order keeps concurrent multi-row writers from deadlocking.
    batch.sort_by_key(|p| (p.partition, p.uuid));
    let rows = sqlx::query(crate::sql::COMPLETE_MANY)
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
        .fetch_all(pool)
        .await;
    let mut rows = match rows {
        Ok(rows) => rows,
        Err(e) => {
            tracing::debug!(error = %e, size = batch.len(), "combined complete failed; callers retry alone");
            Vec::new()
        }
    };
    for p in batch {
        let found = rows.iter().position(|r| {
            r.try_get::<i16, _>("partition").ok() == Some(p.partition)
                && r.try_get::<Uuid, _>("uuid").ok() == Some(p.uuid)
        });
        let _ = p.reply.send(found.map(|i| rows.swap_remove(i)));
    }
}
