//! The writer task: the hot-path writes of one backend instance (`claim`,
//! `complete`, `create`) run by one task, whatever has queued in one
//! transaction.
//!
//! Every write goes through the one writer connection, and every
//! transaction costs a `BEGIN IMMEDIATE`, a `COMMIT` (with `synchronous=FULL`
//! a WAL flush) and the hand-offs to sqlx's connection thread. Concurrent
//! claims, completes and creates are therefore queued to this task, which
//! runs each batch in one transaction: under load a commit carries many
//! calls, and a lone call is run at once.
//!
//! Within a batch the completes run first (every live lease in one
//! statement, the rest one by one), then the creates in queue order, then
//! the claims in queue order (so they can take work created just before).
//! The calls were concurrent, so this is an order they could have had;
//! each is judged on its own as it would be alone (its lease, its keys,
//! parents and upstreams, its limits), with its caller's clock reading,
//! and answered only after the commit. A call refused for what it asked (a
//! stale lease, a missing parent…) is answered so and wrote nothing; a
//! database error rolls the whole transaction back and every caller is
//! told, to retry.

use std::collections::HashMap;
use std::sync::Weak;

use baton_core::raw::{PreparedExecution, rules};
use baton_core::{
    AttemptOutcome, CreateOutcome, EngineError, ExecutionSnapshot, LeaseToken, Result, Timestamp,
};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};
use tokio::sync::{mpsc, oneshot};

use crate::errors::map;
use crate::read;
use crate::{Inner, SqliteBackend, blob};

/// Most calls in one transaction.
const MAX_BATCH: usize = 256;

/// One queued write.
#[derive(Debug)]
pub enum Job {
    /// A `complete`.
    Complete(Pending),
    /// A `create`.
    Create(Submission),
    /// A `claim`.
    Claim(ClaimJob),
}

/// One queued claim.
#[derive(Debug)]
pub struct ClaimJob {
    /// The request, validated.
    pub request: baton_core::ClaimRequest,
    /// The caller's clock reading.
    pub now: Timestamp,
    /// When the leases it takes expire.
    pub expires: Timestamp,
    /// The request's capabilities as a JSON array.
    pub caps_json: String,
    /// The answer.
    pub reply: oneshot::Sender<Result<Vec<baton_core::Claim>>>,
}

/// One queued create.
#[derive(Debug)]
pub struct Submission {
    /// Its executions, prepared and validated.
    pub rows: Vec<PreparedExecution>,
    /// The caller's clock reading.
    pub now: Timestamp,
    /// The answer.
    pub reply: oneshot::Sender<Result<Vec<CreateOutcome>>>,
}

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

/// Errors after which the transaction may hold half of one call's writes:
/// the whole batch is rolled back and every caller told. The others are
/// refusals, answered before the call wrote anything.
fn aborts(e: &EngineError) -> bool {
    !matches!(
        e,
        EngineError::NotFound { .. }
            | EngineError::InvalidInput { .. }
            | EngineError::LeaseLost { .. }
            | EngineError::Conflict { .. }
    )
}

/// Queues the job `make` builds around its reply channel to the writer
/// task of `backend`, and waits for the answer.
pub(crate) async fn through_writer<T>(
    backend: &SqliteBackend,
    make: impl FnOnce(oneshot::Sender<Result<T>>) -> Job,
) -> Result<T> {
    let (reply, answer) = oneshot::channel();
    let closed = || EngineError::unavailable("the SQLite backend is closing");
    backend
        .inner
        .writes
        .send(make(reply))
        .map_err(|_| closed())?;
    answer.await.map_err(|_| closed())?
}

/// The error to roll the whole batch back with, when `answer` is one.
fn aborting<T>(answer: &Result<T>) -> Option<EngineError> {
    answer.as_ref().err().filter(|e| aborts(e)).cloned()
}

/// Starts the combining task; it ends when the backend is dropped (its
/// sender with it).
pub fn start(mut rx: mpsc::UnboundedReceiver<Job>, backend: Weak<Inner>) {
    tokio::spawn(async move {
        let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
        while baton_core::raw::recv_batch(&mut rx, &mut batch, MAX_BATCH).await {
            let Some(inner) = backend.upgrade() else {
                return;
            };
            run(&SqliteBackend { inner }, std::mem::take(&mut batch)).await;
        }
    });
}

async fn run(backend: &SqliteBackend, jobs: Vec<Job>) {
    let mut batch = Vec::new();
    let mut creates = Vec::new();
    let mut claims = Vec::new();
    for job in jobs {
        match job {
            Job::Complete(p) => batch.push(p),
            Job::Create(s) => creates.push(s),
            Job::Claim(c) => claims.push(c),
        }
    }
    let fail_all =
        |batch: Vec<Pending>, creates: Vec<Submission>, claims: Vec<ClaimJob>, e: EngineError| {
            for p in batch {
                let _ = p.reply.send(Err(e.clone()));
            }
            for s in creates {
                let _ = s.reply.send(Err(e.clone()));
            }
            for c in claims {
                let _ = c.reply.send(Err(e.clone()));
            }
        };
    let mut tx = match backend.begin().await {
        Ok(tx) => tx,
        Err(e) => return fail_all(batch, creates, claims, e),
    };
    // Every live lease completes in one statement for the whole batch;
    // the rest (and a second complete of one execution) are classified one
    // by one below, as they would be alone.
    // Lanes of parents whose last child completed, and lanes that received
    // new work, woken after commit.
    let mut wake = Vec::new();
    let mut done = match backend.complete_live(&mut tx, &batch, &mut wake).await {
        Ok(done) => done,
        Err(e) => {
            let _ = tx.rollback().await;
            return fail_all(batch, creates, claims, e);
        }
    };
    let mut answers = Vec::with_capacity(batch.len());
    for (i, p) in batch.iter().enumerate() {
        if let Some(snap) = done.remove(&i) {
            answers.push(Ok(snap));
            continue;
        }
        let answer = backend
            .complete_in(&mut tx, &p.lease, &p.result, p.now, &mut wake)
            .await;
        if let Some(e) = aborting(&answer) {
            let _ = tx.rollback().await;
            return fail_all(batch, creates, claims, e);
        }
        answers.push(answer);
    }
    let mut created = Vec::with_capacity(creates.len());
    for s in &creates {
        let answer = crate::create::create_in(backend, &mut tx, &s.rows, s.now, &mut wake).await;
        if let Some(e) = aborting(&answer) {
            let _ = tx.rollback().await;
            return fail_all(batch, creates, claims, e);
        }
        created.push(answer);
    }
    // Claims last: they can take work created in this transaction.
    let mut claimed = Vec::with_capacity(claims.len());
    for c in &claims {
        let answer =
            crate::claim::claim_in(backend, &mut tx, &c.request, c.now, c.expires, &c.caps_json)
                .await;
        if let Some(e) = aborting(&answer) {
            let _ = tx.rollback().await;
            return fail_all(batch, creates, claims, e);
        }
        claimed.push(answer);
    }
    if let Err(e) = tx.commit().await {
        return fail_all(batch, creates, claims, crate::errors::map(e));
    }
    backend.wake_all(wake);
    backend.finished_some();
    for (p, answer) in batch.into_iter().zip(answers) {
        let _ = p.reply.send(answer);
    }
    for (s, answer) in creates.into_iter().zip(created) {
        let _ = s.reply.send(answer);
    }
    for (c, answer) in claims.into_iter().zip(claimed) {
        let _ = c.reply.send(answer);
    }
}

impl SqliteBackend {
    /// Completes, inside the caller's transaction, every queued complete
    /// whose lease is live (the conditions `check_lease` calls live), in
    /// one statement per chunk (the attempt closes in the execution row it
    /// rewrites); answers their snapshots by position in
    /// `batch`. Only the first complete of each execution takes part.
    pub(crate) async fn complete_live(
        &self,
        tx: &mut SqliteConnection,
        batch: &[Pending],
        wake: &mut Vec<(String, String)>,
    ) -> Result<HashMap<usize, ExecutionSnapshot>> {
        let mut seen = std::collections::HashSet::new();
        let firsts: Vec<(usize, &Pending)> = batch
            .iter()
            .enumerate()
            .filter(|(_, p)| seen.insert(p.lease.execution_id().uuid()))
            .collect();
        let mut done = HashMap::new();
        let mut upstreams = Vec::new();
        // 5 bound values per row stay far below SQLite's variable limit.
        for chunk in firsts.chunks(200) {
            let mut qb: QueryBuilder<'_, Sqlite> = QueryBuilder::new(
                "UPDATE executions SET state = 'completed', result = v.column4, \
                 finished_at = v.column5, updated_at = v.column5, worker_id = NULL, \
                 lease_nonce = NULL, lease_expires_at = NULL, attempt_ended_at = v.column5, \
                 attempt_outcome = 'completed' FROM (",
            );
            qb.push_values(chunk, |mut b, (_, p)| {
                b.push_bind(blob(p.lease.execution_id()))
                    .push_bind(i64::from(p.lease.attempt()))
                    .push_bind(p.lease.nonce() as i64)
                    .push_bind(p.result.as_slice())
                    .push_bind(p.now.as_millis());
            });
            qb.push(concat!(
                ") AS v WHERE executions.uuid = v.column1 AND executions.state = 'running' \
                 AND executions.attempts = v.column2 AND executions.lease_nonce = v.column3 \
                 AND executions.lease_expires_at > v.column5 \
                 AND (executions.deadline IS NULL OR executions.deadline > v.column5) RETURNING ",
                execution_columns!()
            ));
            let rows = qb.build().fetch_all(&mut *tx).await.map_err(map)?;
            for row in &rows {
                let snap = read::snapshot(row, self.inner.partitions)?;
                if read::has_dependents(row)? {
                    upstreams.push((snap.id.clone(), true));
                }
                let Some(&(i, _)) = chunk
                    .iter()
                    .find(|(_, p)| p.lease.execution_id() == &snap.id)
                else {
                    return Err(EngineError::corruption(format!(
                        "completing a batch returned execution {}, which was not in it",
                        snap.id
                    )));
                };
                done.insert(i, snap);
            }
        }
        // Children that completed count as finished for their parents, one
        // update per parent.
        let mut parents: std::collections::BTreeMap<&baton_core::ExecutionId, (u64, Timestamp)> =
            std::collections::BTreeMap::new();
        for (i, snap) in &done {
            if let Some(parent) = &snap.parent {
                let entry = parents.entry(parent).or_insert((0, batch[*i].now));
                entry.0 += 1;
                entry.1 = entry.1.max(batch[*i].now);
            }
        }
        for (parent, (count, now)) in parents {
            wake.extend(crate::flow::children_finished(tx, parent, count, now).await?);
        }
        if !upstreams.is_empty() {
            let now = batch
                .iter()
                .map(|p| p.now)
                .max()
                .unwrap_or_else(|| self.now());
            wake.extend(crate::flow::tell(self, tx, upstreams, now).await?);
        }
        Ok(done)
    }

    /// Completes one lease inside the caller's transaction (not committed
    /// here): the body of `complete`, run by the combining task.
    pub(crate) async fn complete_in(
        &self,
        tx: &mut SqliteConnection,
        lease: &LeaseToken,
        result: &[u8],
        now: Timestamp,
        wake: &mut Vec<(String, String)>,
    ) -> Result<ExecutionSnapshot> {
        let id = lease.execution_id();
        // Fast path, one statement: the lease is the current, unexpired one
        // (the same conditions `check_lease` calls live), so the execution
        // completes and the new row comes back. Anything else matches no row
        // and is classified below, in the same transaction.
        let done = sqlx::query(concat!(
            "UPDATE executions SET state = 'completed', result = ?1, finished_at = ?2, updated_at = ?2, \
             worker_id = NULL, lease_nonce = NULL, lease_expires_at = NULL, \
             attempt_ended_at = ?2, attempt_outcome = 'completed' \
             WHERE uuid = ?3 AND state = 'running' AND attempts = ?4 AND lease_nonce = ?5 \
             AND lease_expires_at > ?2 AND (deadline IS NULL OR deadline > ?2) RETURNING ",
            execution_columns!()
        ))
        .bind(result)
        .bind(now.as_millis())
        .bind(blob(id))
        .bind(i64::from(lease.attempt()))
        .bind(lease.nonce() as i64)
        .fetch_optional(&mut *tx)
        .await
        .map_err(map)?;
        if let Some(row) = done {
            let snap = read::snapshot(&row, self.inner.partitions)?;
            let has = read::has_dependents(&row)?;
            let parent = snap.parent.as_ref();
            let state = baton_core::State::Completed;
            wake.extend(crate::flow::finished(self, tx, id, parent, state, Some(has), now).await?);
            return Ok(snap);
        }
        match self.check_lease(tx, lease, now).await? {
            (rules::LeaseVerdict::Live, snap) => {
                Self::close_attempt(tx, id, snap.attempts, AttemptOutcome::Completed, None, now)
                    .await?;
                sqlx::query(
                    "UPDATE executions SET state = 'completed', result = ?, finished_at = ?, updated_at = ?, \
                     worker_id = NULL, lease_nonce = NULL, lease_expires_at = NULL WHERE uuid = ?",
                )
                .bind(result)
                .bind(now.as_millis())
                .bind(now.as_millis())
                .bind(blob(id))
                .execute(&mut *tx)
                .await
                .map_err(map)?;
                let parent = snap.parent.as_ref();
                let state = baton_core::State::Completed;
                wake.extend(crate::flow::finished(self, tx, id, parent, state, None, now).await?);
                self.snapshot_in(tx, id).await
            }
            (rules::LeaseVerdict::Ended(outcome), snap) => {
                rules::complete_replay(lease, outcome, snap, result)
            }
        }
    }
}
