//! Write-combining for `complete`, the one hot-path call the trait takes per
//! execution.
//!
//! Every write goes through the one writer connection, and every
//! transaction costs a `BEGIN IMMEDIATE`, a `COMMIT` (with `synchronous=FULL`
//! a WAL flush) and the hand-offs to sqlx's connection thread. Concurrent
//! `complete` calls of one backend instance are therefore queued to one
//! task that runs whatever has queued in one transaction: under load a
//! commit carries many completes, and a lone call is run at once. Each
//! complete is judged on its own lease exactly as it would be alone, with its
//! caller's clock reading, and is answered only after the commit.

use std::sync::Weak;

use baton_core::{EngineError, LeaseToken, Result, Timestamp};
use tokio::sync::{mpsc, oneshot};

use crate::{Inner, SqliteBackend};

/// Most completes in one transaction.
const MAX_BATCH: usize = 256;

/// One queued complete.
#[derive(Debug)]
pub struct Pending {
    /// The lease presented.
    pub lease: LeaseToken,
    /// The result bytes.
    pub result: Vec<u8>,
    /// The caller's clock reading.
    pub now: Timestamp,
    /// The answer.
    pub reply: oneshot::Sender<Result<baton_core::ExecutionSnapshot>>,
}

/// Errors after which the transaction may hold half of one complete's
/// writes: the whole batch is rolled back and every caller told.
fn aborts(e: &EngineError) -> bool {
    !matches!(
        e,
        EngineError::NotFound { .. }
            | EngineError::InvalidInput { .. }
            | EngineError::LeaseLost { .. }
            | EngineError::Conflict { .. }
    )
}

/// Starts the combining task; it ends when the backend is dropped (its
/// sender with it).
pub fn start(mut rx: mpsc::UnboundedReceiver<Pending>, backend: Weak<Inner>) {
    tokio::spawn(async move {
        let mut batch: Vec<Pending> = Vec::with_capacity(MAX_BATCH);
        while baton_core::recv_batch(&mut rx, &mut batch, MAX_BATCH).await {
            let Some(inner) = backend.upgrade() else {
                return;
            };
            run(&SqliteBackend { inner }, std::mem::take(&mut batch)).await;
        }
    });
}

async fn run(backend: &SqliteBackend, batch: Vec<Pending>) {
    let fail_all = |batch: Vec<Pending>, e: EngineError| {
        for p in batch {
            let _ = p.reply.send(Err(e.clone()));
        }
    };
    let mut tx = match backend.begin().await {
        Ok(tx) => tx,
        Err(e) => return fail_all(batch, e),
    };
    // Every live lease completes in two statements for the whole batch;
    // the rest (and a second complete of one execution) are classified one
    // by one below, as they would be alone.
    let mut done = match backend.complete_live(&mut tx, &batch).await {
        Ok(done) => done,
        Err(e) => {
            let _ = tx.rollback().await;
            return fail_all(batch, e);
        }
    };
    let mut answers = Vec::with_capacity(batch.len());
    for (i, p) in batch.iter().enumerate() {
        if let Some(snap) = done.remove(&i) {
            answers.push(Ok(snap));
            continue;
        }
        let answer = backend
            .complete_in(&mut tx, &p.lease, &p.result, p.now)
            .await;
        if let Err(e) = &answer
            && aborts(e)
        {
            let e = e.clone();
            let _ = tx.rollback().await;
            return fail_all(batch, e);
        }
        answers.push(answer);
    }
    if let Err(e) = tx.commit().await {
        return fail_all(batch, crate::errors::map(e));
    }
    for (p, answer) in batch.into_iter().zip(answers) {
        let _ = p.reply.send(answer);
    }
}
