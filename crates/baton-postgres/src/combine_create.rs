//! Write-combining for `create` calls without keys, parents or
//! dependencies: the submissions of services that submit one or a few
//! executions per call.
//!
//! A create statement costs about a quarter of a millisecond of server
//! time before its first row (routing into the partition children,
//! opening their indexes) and a tenth of one per row, so calls of a few
//! rows each cost several times what the same rows cost in one statement,
//! and a server taking many small calls saturates long before one taking
//! batches. Concurrent such calls of one backend instance are therefore
//! queued to one task, which keeps at most [`IN_FLIGHT`] statements
//! running and sends whatever queued while they ran as the next one: a
//! lone call goes at once, alone, as before; under load the statements
//! grow and their number stays bounded.
//!
//! Each call stays atomic (its rows are in one statement, which commits
//! or not as a whole), keeps its own clock reading (`created_at`), and is
//! answered only after the statement committed. A combined statement that
//! fails with the server unreachable answers every call with that error,
//! as each would have met it alone; one that fails otherwise (a row the
//! database refuses) is retried call by call, so the error reaches the
//! call it belongs to and the others are written.

use std::sync::Arc;

use baton_core::raw::PreparedExecution;
use baton_core::{EngineError, Result, Timestamp};
use sqlx::postgres::PgPool;
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::create::insert_unkeyed;
use crate::errors::map;

/// Most create statements of one instance running at once: two keep one
/// statement running while the next gathers the calls that arrive; more
/// would only split calls that could share a statement (measured: with
/// four, the same steady throughput and slightly more server time per
/// execution at half load).
pub const IN_FLIGHT: usize = 2;

/// Rows past which no further call joins a statement.
const MAX_ROWS: usize = 1_000;

/// One queued call.
#[derive(Debug)]
pub struct Pending {
    /// Its executions, prepared and validated.
    pub rows: Vec<PreparedExecution>,
    /// Its clock reading.
    pub now: Timestamp,
    /// The rows back once written, or why they were not.
    pub reply: oneshot::Sender<Result<Vec<PreparedExecution>>>,
}

/// Starts the combining task on the current runtime; it ends when the
/// returned sender (the backend) is dropped.
pub fn start(pool: PgPool, channel: String) -> mpsc::UnboundedSender<Pending> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Pending>();
    tokio::spawn(async move {
        let running = Arc::new(Semaphore::new(IN_FLIGHT));
        loop {
            // A slot first: calls arriving while every slot is taken wait
            // in the channel and leave together.
            let Ok(slot) = running.clone().acquire_owned().await else {
                return;
            };
            let Some(first) = rx.recv().await else {
                return;
            };
            let mut rows = first.rows.len();
            let mut calls = vec![first];
            while rows < MAX_ROWS {
                match rx.try_recv() {
                    Ok(next) => {
                        rows += next.rows.len();
                        calls.push(next);
                    }
                    Err(_) => break,
                }
            }
            let pool = pool.clone();
            let channel = channel.clone();
            tokio::spawn(async move {
                flush(&pool, &channel, calls).await;
                drop(slot);
            });
        }
    });
    tx
}

/// Writes `calls` in one statement, or call by call when that statement
/// was refused, and answers each.
async fn flush(pool: &PgPool, channel: &str, calls: Vec<Pending>) {
    let together = write(pool, channel, &calls).await;
    match together {
        Ok(()) => {
            for call in calls {
                let _ = call.reply.send(Ok(call.rows));
            }
        }
        Err(err) if calls.len() == 1 || matches!(err, EngineError::Unavailable { .. }) => {
            for call in calls {
                let _ = call.reply.send(Err(err.clone()));
            }
        }
        Err(_) => {
            for call in calls {
                let alone = write(pool, channel, std::slice::from_ref(&call)).await;
                let _ = call.reply.send(alone.map(|()| call.rows));
            }
        }
    }
}

/// One statement for the rows of `calls`.
async fn write(pool: &PgPool, channel: &str, calls: &[Pending]) -> Result<()> {
    let mut conn = pool.acquire().await.map_err(map)?;
    let parts: Vec<(&[PreparedExecution], Timestamp)> =
        calls.iter().map(|c| (c.rows.as_slice(), c.now)).collect();
    insert_unkeyed(&mut conn, channel, &parts).await
}
