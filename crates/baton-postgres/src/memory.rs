//! Memory (rfcs/0008): `record_step` and the admin read `steps`.
//!
//! An execution's steps are rows of `steps`, one per name; the execution's
//! `step_count` is how many there are. Every writer of an execution's steps
//! (`record_step`) holds the execution's row lock first, after judging the
//! lease under it, so concurrent records of one step are judged one after
//! the other on what the previous one left (a done step stays done, every
//! failed record counts), the count matches the rows, and no record lands
//! after a lease ended. Steps change no state and no `updated_at`; the
//! claim reads the done ones (see `sql/claim.sql`), the trim deletes them.

use baton_core::raw::rules::{self, LeaseVerdict, StepFacts, StepWrite};
use baton_core::raw::stored::in_range;
use baton_core::{
    EngineError, ExecutionId, LeaseToken, Result, StepName, StepOutcome, StepRecord, Timestamp,
};
use sqlx::PgConnection;

use crate::errors::map;
use crate::read::{self, col};
use crate::{PostgresBackend, finish, part};

pub(crate) async fn record_step(
    b: &PostgresBackend,
    lease: &LeaseToken,
    name: StepName,
    outcome: StepOutcome,
) -> Result<StepRecord> {
    outcome.validate(&b.inner.limits)?;
    b.check_id(lease.execution_id())?;
    let now = b.now();
    let mut tx = b.begin().await?;
    let written = record_in(b, &mut tx, lease, &name, outcome, now).await;
    finish(tx, written).await
}

/// The body of `record_step`, in the caller's transaction.
async fn record_in(
    b: &PostgresBackend,
    tx: &mut PgConnection,
    lease: &LeaseToken,
    name: &StepName,
    outcome: StepOutcome,
    now: Timestamp,
) -> Result<StepRecord> {
    let id = lease.execution_id();
    // Only the live lease records: an attempt that ended, however (even
    // completed by this very lease), is no replay here but a lost lease.
    let snap = match b.check_lease(tx, lease, now).await? {
        (LeaseVerdict::Live, snap) => snap,
        (LeaseVerdict::Ended(ended), _) => return Err(rules::ended_lease_lost(id, ended)),
    };
    let ctx = format!("execution {id}");
    // The count and the step, read under the row lock `check_lease` took.
    let row = sqlx::query(
        "SELECT e.step_count, s.* FROM executions e \
         LEFT JOIN steps s ON s.partition = $1 AND s.uuid = $2 AND s.name = $3 \
         WHERE e.partition = $1 AND e.uuid = $2",
    )
    .bind(part(id.partition()))
    .bind(id.uuid())
    .bind(name.as_str())
    .fetch_one(&mut *tx)
    .await
    .map_err(map)?;
    let held: usize = in_range("step_count", &ctx, col::<i32>(&row, "step_count")?.into())?;
    let existing = match col::<Option<String>>(&row, "name")? {
        Some(_) => Some(read::step(&row, &ctx)?),
        None => None,
    };
    let facts = existing.as_ref().map(|s| StepFacts {
        status: s.status,
        output: s.output.as_deref(),
        failures: s.failures,
    });
    let limits = &b.inner.limits;
    let (status, failures) =
        match rules::judge_step(id, snap.state, name, facts, &outcome, held, limits)? {
            StepWrite::Unchanged => {
                return existing.ok_or_else(|| {
                    EngineError::corruption(format!(
                        "{ctx}: step {name} judged unchanged but not recorded"
                    ))
                });
            }
            StepWrite::Write { status, failures } => (status, failures),
        };
    let is_new = existing.is_none();
    let (output, error) = match outcome {
        StepOutcome::Done(output) => (Some(output), existing.and_then(|s| s.error)),
        StepOutcome::Failed(error) => (None, Some(limits.clip_text(error))),
    };
    // Judged under the row lock: a new step is inserted and counted, a
    // recorded one rewritten in place, so `step_count` matches the rows.
    let statement = if is_new {
        "WITH counted AS ( \
             UPDATE executions SET step_count = step_count + 1 \
             WHERE partition = $1 AND uuid = $2) \
         INSERT INTO steps (partition, uuid, name, status, output, error, attempt, failures, \
                            recorded_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING *"
    } else {
        "UPDATE steps SET status = $4, output = $5, error = $6, attempt = $7, failures = $8, \
             recorded_at = $9 \
         WHERE partition = $1 AND uuid = $2 AND name = $3 RETURNING *"
    };
    let written = sqlx::query(statement)
        .bind(part(id.partition()))
        .bind(id.uuid())
        .bind(name.as_str())
        .bind(status.as_str())
        .bind(output)
        .bind(error)
        .bind(number(lease.attempt()))
        .bind(number(failures))
        .bind(now.as_millis())
        .fetch_one(&mut *tx)
        .await
        .map_err(map)?;
    read::step(&written, &ctx)
}

pub(crate) async fn steps(b: &PostgresBackend, id: &ExecutionId) -> Result<Vec<StepRecord>> {
    // Names collate as bytes (migration 0007), so this is `StepName`'s
    // order.
    let rows = crate::admin::records_of(
        b,
        id,
        "SELECT s.*, e.uuid IS NOT NULL AS found \
         FROM (SELECT 1) one \
         LEFT JOIN executions e ON e.partition = $1 AND e.uuid = $2 \
         LEFT JOIN steps s ON s.partition = $1 AND s.uuid = $2 \
         ORDER BY s.name",
        "name",
    )
    .await?;
    let ctx = format!("execution {id}");
    rows.iter().map(|r| read::step(r, &ctx)).collect()
}

/// A count or attempt number as Postgres binds it.
fn number(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}
