//! Memory: steps, key-value state, custom status and progress frames, and
//! waiting for an execution to change. The decisions are
//! [`rules::judge_step`], [`rules::judge_state`], [`rules::status_version`]
//! and [`rules::first_kept_frame`]; this module reads the facts and writes
//! the verdict, in one transaction. Waiters are woken in process after the
//! commits that change what they follow.

use std::collections::HashSet;

use baton_core::raw::rules::{self, StateWrite, StepFacts, StepWrite};
use baton_core::raw::stored::{in_range, parse as parsed};
use baton_core::{
    ChangeMark, Claim, EngineError, ExecutionId, ExecutionSnapshot, LeaseToken, ProgressFrame,
    Result, StateEntry, StateKey, StepName, StepOutcome, StepRecord, StepStatus, Timestamp,
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
    let snap = live(b, &mut tx, lease, now).await?;
    let existing = step(&mut tx, id, &name).await?;
    let is_new = existing.is_none();
    let held: i64 = sqlx::query_scalar("SELECT step_count FROM executions WHERE uuid = ?")
        .bind(blob(id))
        .fetch_one(&mut *tx)
        .await
        .map_err(map)?;
    let held: usize = in_range("step_count", &format!("execution {id}"), held)?;
    let facts = existing.as_ref().map(StepFacts::of);
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

/// The running execution `lease` holds, checked live in `tx`.
async fn live(
    b: &SqliteBackend,
    tx: &mut SqliteConnection,
    lease: &LeaseToken,
    now: Timestamp,
) -> Result<ExecutionSnapshot> {
    match b.check_lease(tx, lease, now).await? {
        (rules::LeaseVerdict::Live, snap) => Ok(snap),
        (rules::LeaseVerdict::Ended(outcome), _) => {
            Err(rules::ended_lease_lost(lease.execution_id(), outcome))
        }
    }
}

pub(crate) async fn set_state(
    b: &SqliteBackend,
    lease: &LeaseToken,
    key: StateKey,
    value: Option<Vec<u8>>,
) -> Result<()> {
    let limits = &b.inner.limits;
    if let Some(v) = &value {
        limits.check_value("value", v.len())?;
    }
    let now = b.now();
    let id = lease.execution_id();
    let mut tx = b.begin().await?;
    let snap = live(b, &mut tx, lease, now).await?;
    let existing: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT value FROM execution_state WHERE uuid = ? AND key = ?")
            .bind(blob(id))
            .bind(key.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(map)?;
    let held: i64 = sqlx::query_scalar("SELECT state_count FROM executions WHERE uuid = ?")
        .bind(blob(id))
        .fetch_one(&mut *tx)
        .await
        .map_err(map)?;
    let held: usize = in_range("state_count", &format!("execution {id}"), held)?;
    let verdict = rules::judge_state(
        id,
        snap.state,
        &key,
        existing.as_deref(),
        value.as_deref(),
        held,
        limits,
    )?;
    let count_delta = match (verdict, value) {
        (StateWrite::Unchanged, _) => 0,
        (StateWrite::Clear, _) => {
            sqlx::query("DELETE FROM execution_state WHERE uuid = ? AND key = ?")
                .bind(blob(id))
                .bind(key.as_str())
                .execute(&mut *tx)
                .await
                .map_err(map)?;
            -1
        }
        (StateWrite::Set, value) => {
            sqlx::query(
                "INSERT INTO execution_state (partition, uuid, key, value, attempt, updated_at) \
                 VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (uuid, key) DO UPDATE SET \
                 value = excluded.value, attempt = excluded.attempt, \
                 updated_at = excluded.updated_at",
            )
            .bind(i64::from(id.partition().get()))
            .bind(blob(id))
            .bind(key.as_str())
            .bind(value.unwrap_or_default())
            .bind(i64::from(lease.attempt()))
            .bind(now.as_millis())
            .execute(&mut *tx)
            .await
            .map_err(map)?;
            if existing.is_none() { 1 } else { 0 }
        }
    };
    if count_delta != 0 {
        sqlx::query("UPDATE executions SET state_count = state_count + ? WHERE uuid = ?")
            .bind(count_delta)
            .bind(blob(id))
            .execute(&mut *tx)
            .await
            .map_err(map)?;
    }
    tx.commit().await.map_err(map)?;
    Ok(())
}

pub(crate) async fn set_status(
    b: &SqliteBackend,
    lease: &LeaseToken,
    status: Vec<u8>,
) -> Result<u64> {
    b.inner.limits.check_value("status", status.len())?;
    let now = b.now();
    let id = lease.execution_id();
    let mut tx = b.begin().await?;
    let snap = live(b, &mut tx, lease, now).await?;
    let (changed, version) =
        rules::status_version(snap.custom_status.as_deref(), snap.status_version, &status);
    if changed {
        sqlx::query("UPDATE executions SET custom_status = ?, status_version = ? WHERE uuid = ?")
            .bind(status)
            .bind(i64::try_from(version).unwrap_or(i64::MAX))
            .bind(blob(id))
            .execute(&mut *tx)
            .await
            .map_err(map)?;
    }
    tx.commit().await.map_err(map)?;
    if changed {
        b.inner.watchers.notify(id);
    }
    Ok(version)
}

pub(crate) async fn append_progress(
    b: &SqliteBackend,
    lease: &LeaseToken,
    frame: Vec<u8>,
) -> Result<u64> {
    let limits = &b.inner.limits;
    limits.check_value("frame", frame.len())?;
    let now = b.now();
    let id = lease.execution_id();
    let mut tx = b.begin().await?;
    let snap = live(b, &mut tx, lease, now).await?;
    let seq = snap.progress_seq.saturating_add(1);
    let bind_seq = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    sqlx::query(
        "INSERT INTO progress_frames (partition, uuid, seq, at, attempt, frame) \
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(i64::from(id.partition().get()))
    .bind(blob(id))
    .bind(bind_seq(seq))
    .bind(now.as_millis())
    .bind(i64::from(lease.attempt()))
    .bind(frame)
    .execute(&mut *tx)
    .await
    .map_err(map)?;
    sqlx::query("DELETE FROM progress_frames WHERE uuid = ? AND seq < ?")
        .bind(blob(id))
        .bind(bind_seq(rules::first_kept_frame(seq, limits)))
        .execute(&mut *tx)
        .await
        .map_err(map)?;
    sqlx::query("UPDATE executions SET progress_seq = ? WHERE uuid = ?")
        .bind(bind_seq(seq))
        .bind(blob(id))
        .execute(&mut *tx)
        .await
        .map_err(map)?;
    tx.commit().await.map_err(map)?;
    b.inner.watchers.notify(id);
    Ok(seq)
}

pub(crate) async fn state(b: &SqliteBackend, id: &ExecutionId) -> Result<Vec<StateEntry>> {
    let mut conn = b.read_existing(id).await?;
    let rows: Vec<(String, Vec<u8>, i64, i64)> = sqlx::query_as(
        "SELECT key, value, attempt, updated_at FROM execution_state WHERE uuid = ? ORDER BY key",
    )
    .bind(blob(id))
    .fetch_all(&mut *conn)
    .await
    .map_err(map)?;
    let ctx = format!("execution {id} state");
    rows.into_iter()
        .map(|(key, value, attempt, at)| {
            Ok(StateEntry {
                key: parsed("state key", &ctx, &key)?,
                value,
                attempt: in_range("attempt", &ctx, attempt)?,
                updated_at: Timestamp::from_millis(at),
            })
        })
        .collect()
}

pub(crate) async fn progress(
    b: &SqliteBackend,
    id: &ExecutionId,
    after: u64,
    limit: usize,
) -> Result<Vec<ProgressFrame>> {
    baton_core::Page::first(limit).validate()?;
    let mut conn = b.read_existing(id).await?;
    let rows: Vec<(i64, i64, i64, Vec<u8>)> = sqlx::query_as(
        "SELECT seq, at, attempt, frame FROM progress_frames WHERE uuid = ? AND seq > ? \
         ORDER BY seq LIMIT ?",
    )
    .bind(blob(id))
    .bind(i64::try_from(after).unwrap_or(i64::MAX))
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(&mut *conn)
    .await
    .map_err(map)?;
    let ctx = format!("execution {id} progress");
    rows.into_iter()
        .map(|(seq, at, attempt, frame)| {
            Ok(ProgressFrame {
                seq: in_range("seq", &ctx, seq)?,
                at: Timestamp::from_millis(at),
                attempt: in_range("attempt", &ctx, attempt)?,
                frame,
            })
        })
        .collect()
}

/// Waiters are woken in process: by [`set_status`] and [`append_progress`]
/// for their execution, and after every commit that may finish executions
/// (complete, fail, cancel, the scheduler's passes), which wakes them all
/// to read again, since one such commit may finish many (cascades).
///
/// Another process writing the same file (a CLI beside `baton serve`)
/// cannot wake this one: for a file database the wait reads again every
/// [`OTHER_PROCESSES`], the one bounded re-read SQLite needs; an in-memory
/// database has no other writer and never re-reads.
pub(crate) async fn wait_for_change(
    b: &SqliteBackend,
    id: &ExecutionId,
    seen: ChangeMark,
    timeout: std::time::Duration,
) -> Result<ExecutionSnapshot> {
    b.check_id(id)?;
    let shared = matches!(b.inner.location, crate::Location::File(_));
    let deadline = baton_core::raw::deadline_in(timeout);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let chunk = if shared {
            left.min(OTHER_PROCESSES)
        } else {
            left
        };
        let snap = baton_core::raw::wait_for_change(
            &b.inner.watchers,
            id,
            seen,
            chunk,
            async { Ok(()) },
            || async {
                let mut conn = b.inner.reader.acquire().await.map_err(map)?;
                b.snapshot_in(&mut conn, id).await
            },
        )
        .await?;
        if ChangeMark::of(&snap) != seen || chunk >= left {
            return Ok(snap);
        }
    }
}

/// How often a wait on a file database reads again for changes made by
/// other processes.
const OTHER_PROCESSES: std::time::Duration = std::time::Duration::from_secs(1);
