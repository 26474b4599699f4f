//! Memory: `record_step` and the `steps` read. The decision is
//! [`rules::judge_step`]; this module reads the facts and writes the
//! verdict, in one transaction.

use std::collections::HashSet;

use baton_core::raw::rules::{self, StepFacts, StepWrite};
use baton_core::raw::stored::{in_range, parse as parsed};
use baton_core::{
    Claim, EngineError, ExecutionId, LeaseToken, Result, StepName, StepOutcome, StepRecord,
    StepStatus, Timestamp,
};
use sqlx::SqliteConnection;
use sqlx::sqlite::SqliteRow;

use crate::errors::map;
use crate::read::col;
use crate::{SqliteBackend, blob};

const STEP_COLUMNS: &str = "name, status, output, error, attempt, failures, recorded_at";

pub(crate) async fn record_step(
    b: &SqliteBackend,
    lease: &LeaseToken,
    name: StepName,
    outcome: StepOutcome,
) -> Result<StepRecord> {
    outcome.validate(&b.inner.limits)?;
    let now = b.now();
    let id = lease.execution_id();
    let mut tx = b.begin().await?;
    let snap = match b.check_lease(&mut tx, lease, now).await? {
        (rules::LeaseVerdict::Live, snap) => snap,
        (rules::LeaseVerdict::Ended(outcome), _) => {
            return Err(rules::ended_lease_lost(id, outcome));
        }
    };
    let existing = step(&mut tx, id, &name).await?;
    let is_new = existing.is_none();
    let held: i64 = sqlx::query_scalar("SELECT step_count FROM executions WHERE uuid = ?")
        .bind(blob(id))
        .fetch_one(&mut *tx)
        .await
        .map_err(map)?;
    let held: usize = in_range("step_count", &format!("execution {id}"), held)?;
    let facts = existing.as_ref().map(|s| StepFacts {
        status: s.status,
        output: s.output.as_deref(),
        failures: s.failures,
    });
    let limits = &b.inner.limits;
    let (status, failures) =
        match rules::judge_step(id, snap.state, &name, facts, &outcome, held, limits)? {
            StepWrite::Unchanged => {
                tx.commit().await.map_err(map)?;
                return existing.ok_or_else(|| {
                    EngineError::corruption(format!("execution {id}: step {name} vanished"))
                });
            }
            StepWrite::Write { status, failures } => (status, failures),
        };
    let (output, error) = match outcome {
        StepOutcome::Done(output) => (Some(output), existing.and_then(|s| s.error)),
        StepOutcome::Failed(error) => (None, Some(limits.clip_text(error))),
    };
    let record = StepRecord {
        name,
        status,
        output,
        error,
        attempt: lease.attempt(),
        failures,
        recorded_at: now,
    };
    let new = sqlx::query(
        "INSERT INTO steps (partition, uuid, name, status, output, error, attempt, failures, \
         recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (uuid, name) DO UPDATE SET status = excluded.status, \
         output = excluded.output, error = excluded.error, attempt = excluded.attempt, \
         failures = excluded.failures, recorded_at = excluded.recorded_at",
    )
    .bind(i64::from(id.partition().get()))
    .bind(blob(id))
    .bind(record.name.as_str())
    .bind(record.status.as_str())
    .bind(record.output.as_deref())
    .bind(record.error.as_deref())
    .bind(i64::from(record.attempt))
    .bind(i64::from(record.failures))
    .bind(now.as_millis());
    new.execute(&mut *tx).await.map_err(map)?;
    if is_new {
        sqlx::query("UPDATE executions SET step_count = step_count + 1 WHERE uuid = ?")
            .bind(blob(id))
            .execute(&mut *tx)
            .await
            .map_err(map)?;
    }
    tx.commit().await.map_err(map)?;
    Ok(record)
}

pub(crate) async fn steps(b: &SqliteBackend, id: &ExecutionId) -> Result<Vec<StepRecord>> {
    let mut conn = b.read_existing(id).await?;
    let rows = sqlx::query(&format!(
        "SELECT {STEP_COLUMNS} FROM steps WHERE uuid = ? ORDER BY name"
    ))
    .bind(blob(id))
    .fetch_all(&mut *conn)
    .await
    .map_err(map)?;
    rows.iter().map(|r| stored_step(r, id)).collect()
}

/// Fills `steps` of the claims of executions that recorded some, in the
/// claim's transaction.
pub(crate) async fn claimed_steps(
    conn: &mut SqliteConnection,
    claims: &mut [Claim],
    with_steps: &HashSet<ExecutionId>,
) -> Result<()> {
    for claim in claims.iter_mut().filter(|c| with_steps.contains(&c.id)) {
        let rows: Vec<(String, Vec<u8>)> = sqlx::query_as(
            "SELECT name, output FROM steps WHERE uuid = ? AND status = 'done' ORDER BY name",
        )
        .bind(blob(&claim.id))
        .fetch_all(&mut *conn)
        .await
        .map_err(map)?;
        let ctx = format!("execution {} step", claim.id);
        claim.steps = rows
            .into_iter()
            .map(|(name, output)| Ok((parsed("step name", &ctx, &name)?, output)))
            .collect::<Result<_>>()?;
    }
    Ok(())
}

async fn step(
    conn: &mut SqliteConnection,
    id: &ExecutionId,
    name: &StepName,
) -> Result<Option<StepRecord>> {
    let row = sqlx::query(&format!(
        "SELECT {STEP_COLUMNS} FROM steps WHERE uuid = ? AND name = ?"
    ))
    .bind(blob(id))
    .bind(name.as_str())
    .fetch_optional(&mut *conn)
    .await
    .map_err(map)?;
    row.map(|r| stored_step(&r, id)).transpose()
}

fn stored_step(row: &SqliteRow, id: &ExecutionId) -> Result<StepRecord> {
    let ctx = format!("execution {id} step");
    let status: StepStatus = parsed("step status", &ctx, &col::<String>(row, "status")?)?;
    Ok(StepRecord {
        name: parsed("step name", &ctx, &col::<String>(row, "name")?)?,
        status,
        output: col(row, "output")?,
        error: col(row, "error")?,
        attempt: in_range("attempt", &ctx, col(row, "attempt")?)?,
        failures: in_range("failures", &ctx, col(row, "failures")?)?,
        recorded_at: Timestamp::from_millis(col(row, "recorded_at")?),
    })
}
