//! Memory (rfcs/0008): steps, key-value state, custom status and progress
//! frames, written under the lease, and the reads of them, including
//! `wait_for_change`.
//!
//! An execution's steps are rows of `steps`, one per name; the execution's
//! `step_count` is how many there are. Its state is rows of
//! `execution_state`, one per key, counted by `state_count`; its progress
//! frames are rows of `progress_frames`, numbered by `progress_seq`; its
//! custom status and version are columns of its row. Every writer of an
//! execution's memory holds the execution's row lock first, after judging
//! the lease under it (`check_lease`), so concurrent writes of one
//! execution are judged one after the other on what the previous one left
//! (a done step stays done, every failed record counts, a frame takes the
//! next number), the counts match the rows, and nothing lands after a
//! lease ended. The decisions are [`rules::judge_step`],
//! [`rules::judge_state`], [`rules::status_version`] and
//! [`rules::first_kept_frame`]; each write is one transaction. Memory
//! changes no state and no `updated_at`; the claim reads the done steps
//! (see `sql/claim_tail.sql`), the trim deletes everything with the execution.
//!
//! `wait_for_change` is woken by `NOTIFY` (see [`wait_for_change`]).

use std::time::Duration;

use baton_core::raw::rules::{self, LeaseVerdict, StateWrite, StepFacts, StepWrite};
use baton_core::raw::stored::in_range;
use baton_core::{
    ChangeMark, EngineError, ExecutionId, ExecutionSnapshot, LeaseToken, ProgressFrame, Result,
    StateEntry, StateKey, StepName, StepOutcome, StepRecord, Timestamp,
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
    let snap = live(b, tx, lease, now).await?;
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
    let facts = existing.as_ref().map(StepFacts::of);
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

/// Locks the execution row of `lease` for the rest of the transaction and
/// answers its snapshot if the lease is live. Only the live lease writes
/// an execution's memory: an attempt that ended, however (even completed
/// by this very lease), is no replay here but a lost lease.
async fn live(
    b: &PostgresBackend,
    tx: &mut PgConnection,
    lease: &LeaseToken,
    now: Timestamp,
) -> Result<ExecutionSnapshot> {
    match b.check_lease(tx, lease, now).await? {
        (LeaseVerdict::Live, snap) => Ok(snap),
        (LeaseVerdict::Ended(ended), _) => {
            Err(rules::ended_lease_lost(lease.execution_id(), ended))
        }
    }
}

/// A count or attempt number as Postgres binds it.
fn number(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// A count as Postgres binds a `bigint`.
fn big(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub(crate) async fn set_state(
    b: &PostgresBackend,
    lease: &LeaseToken,
    key: StateKey,
    value: Option<Vec<u8>>,
) -> Result<()> {
    if let Some(v) = &value {
        b.inner.limits.check_value("value", v.len())?;
    }
    b.check_id(lease.execution_id())?;
    let now = b.now();
    let mut tx = b.begin().await?;
    let written = set_state_in(b, &mut tx, lease, &key, value, now).await;
    finish(tx, written).await
}

/// The body of `set_state`, in the caller's transaction.
async fn set_state_in(
    b: &PostgresBackend,
    tx: &mut PgConnection,
    lease: &LeaseToken,
    key: &StateKey,
    value: Option<Vec<u8>>,
    now: Timestamp,
) -> Result<()> {
    let id = lease.execution_id();
    let snap = live(b, tx, lease, now).await?;
    // The count and the key, read under the row lock `check_lease` took.
    let row = sqlx::query(
        "SELECT e.state_count, s.value FROM executions e \
         LEFT JOIN execution_state s ON s.partition = $1 AND s.uuid = $2 AND s.key = $3 \
         WHERE e.partition = $1 AND e.uuid = $2",
    )
    .bind(part(id.partition()))
    .bind(id.uuid())
    .bind(key.as_str())
    .fetch_one(&mut *tx)
    .await
    .map_err(map)?;
    let ctx = format!("execution {id}");
    let held: usize = in_range("state_count", &ctx, col::<i32>(&row, "state_count")?.into())?;
    let existing: Option<Vec<u8>> = col(&row, "value")?;
    let verdict = rules::judge_state(
        id,
        snap.state,
        key,
        existing.as_deref(),
        value.as_deref(),
        held,
        &b.inner.limits,
    )?;
    // Judged under the row lock: a new key is inserted and counted, a held
    // one rewritten in place or deleted and uncounted, so `state_count`
    // matches the rows.
    match (verdict, value) {
        (StateWrite::Set, Some(value)) => {
            let statement = if existing.is_none() {
                "WITH counted AS ( \
                     UPDATE executions SET state_count = state_count + 1 \
                     WHERE partition = $1 AND uuid = $2) \
                 INSERT INTO execution_state (partition, uuid, key, value, attempt, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)"
            } else {
                "UPDATE execution_state SET value = $4, attempt = $5, updated_at = $6 \
                 WHERE partition = $1 AND uuid = $2 AND key = $3"
            };
            sqlx::query(statement)
                .bind(part(id.partition()))
                .bind(id.uuid())
                .bind(key.as_str())
                .bind(value)
                .bind(number(lease.attempt()))
                .bind(now.as_millis())
                .execute(&mut *tx)
                .await
                .map_err(map)?;
        }
        (StateWrite::Clear, _) => {
            sqlx::query(
                "WITH counted AS ( \
                     UPDATE executions SET state_count = state_count - 1 \
                     WHERE partition = $1 AND uuid = $2) \
                 DELETE FROM execution_state WHERE partition = $1 AND uuid = $2 AND key = $3",
            )
            .bind(part(id.partition()))
            .bind(id.uuid())
            .bind(key.as_str())
            .execute(&mut *tx)
            .await
            .map_err(map)?;
        }
        // `judge_state` sets only a value.
        (StateWrite::Unchanged, _) | (StateWrite::Set, None) => {}
    }
    Ok(())
}

/// What the writers of status and progress set `watched_until` to, `$now`
/// being the engine clock: a mark already past is cleared, since its
/// reader's wait ended (see [`watch`]), so a long-running execution that
/// was watched once stops announcing its frames to nobody.
macro_rules! unwatch_stale {
    ($now:literal) => {
        concat!(
            "watched_until = CASE WHEN watched_until < ",
            $now,
            " THEN NULL ELSE watched_until END"
        )
    };
}

pub(crate) async fn set_status(
    b: &PostgresBackend,
    lease: &LeaseToken,
    status: Vec<u8>,
) -> Result<u64> {
    b.inner.limits.check_value("status", status.len())?;
    b.check_id(lease.execution_id())?;
    let now = b.now();
    let mut tx = b.begin().await?;
    let written = set_status_in(b, &mut tx, lease, status, now).await;
    finish(tx, written).await
}

/// The body of `set_status`, in the caller's transaction.
async fn set_status_in(
    b: &PostgresBackend,
    tx: &mut PgConnection,
    lease: &LeaseToken,
    status: Vec<u8>,
    now: Timestamp,
) -> Result<u64> {
    let id = lease.execution_id();
    let snap = live(b, tx, lease, now).await?;
    let (changed, version) =
        rules::status_version(snap.custom_status.as_deref(), snap.status_version, &status);
    if changed {
        // A watched execution announces the new version (migration 0008).
        sqlx::query(concat!(
            "UPDATE executions SET custom_status = $3, status_version = $4, ",
            unwatch_stale!("$5"),
            " WHERE partition = $1 AND uuid = $2"
        ))
        .bind(part(id.partition()))
        .bind(id.uuid())
        .bind(status)
        .bind(big(version))
        .bind(now.as_millis())
        .execute(&mut *tx)
        .await
        .map_err(map)?;
    }
    Ok(version)
}

pub(crate) async fn append_progress(
    b: &PostgresBackend,
    lease: &LeaseToken,
    frame: Vec<u8>,
) -> Result<u64> {
    b.inner.limits.check_value("frame", frame.len())?;
    b.check_id(lease.execution_id())?;
    let now = b.now();
    let mut tx = b.begin().await?;
    let written = append_progress_in(b, &mut tx, lease, frame, now).await;
    finish(tx, written).await
}

/// The body of `append_progress`, in the caller's transaction.
async fn append_progress_in(
    b: &PostgresBackend,
    tx: &mut PgConnection,
    lease: &LeaseToken,
    frame: Vec<u8>,
    now: Timestamp,
) -> Result<u64> {
    let id = lease.execution_id();
    let snap = live(b, tx, lease, now).await?;
    // Numbered from the row read under its lock, so concurrent appends
    // take consecutive numbers.
    let seq = snap.progress_seq.saturating_add(1);
    let first_kept = rules::first_kept_frame(seq, &b.inner.limits);
    // One statement: store the frame, drop those before the first kept one
    // (the new one is never among them: first_kept <= seq), and count it;
    // a watched execution announces it (migration 0008).
    sqlx::query(concat!(
        "WITH added AS ( \
             INSERT INTO progress_frames (partition, uuid, seq, at, attempt, frame) \
             VALUES ($1, $2, $3, $4, $5, $6)), \
         dropped AS ( \
             DELETE FROM progress_frames WHERE partition = $1 AND uuid = $2 AND seq < $7) \
         UPDATE executions SET progress_seq = $3, ",
        unwatch_stale!("$4"),
        " WHERE partition = $1 AND uuid = $2"
    ))
    .bind(part(id.partition()))
    .bind(id.uuid())
    .bind(big(seq))
    .bind(now.as_millis())
    .bind(number(lease.attempt()))
    .bind(frame)
    .bind(big(first_kept))
    .execute(&mut *tx)
    .await
    .map_err(map)?;
    Ok(seq)
}

pub(crate) async fn state(b: &PostgresBackend, id: &ExecutionId) -> Result<Vec<StateEntry>> {
    // Keys collate as bytes (migration 0008), so this is `StateKey`'s
    // order.
    let rows = crate::admin::records_of(
        b,
        id,
        "SELECT s.*, e.uuid IS NOT NULL AS found \
         FROM (SELECT 1) one \
         LEFT JOIN executions e ON e.partition = $1 AND e.uuid = $2 \
         LEFT JOIN execution_state s ON s.partition = $1 AND s.uuid = $2 \
         ORDER BY s.key",
        "key",
    )
    .await?;
    let ctx = format!("execution {id}");
    rows.iter().map(|r| read::state_entry(r, &ctx)).collect()
}

pub(crate) async fn progress(
    b: &PostgresBackend,
    id: &ExecutionId,
    after: u64,
    limit: usize,
) -> Result<Vec<ProgressFrame>> {
    baton_core::Page::first(limit).validate()?;
    let rows = crate::admin::records_with(
        b,
        id,
        "SELECT f.*, e.uuid IS NOT NULL AS found \
         FROM (SELECT 1) one \
         LEFT JOIN executions e ON e.partition = $1 AND e.uuid = $2 \
         LEFT JOIN ( \
             SELECT * FROM progress_frames \
             WHERE partition = $1 AND uuid = $2 AND seq > $3 \
             ORDER BY seq LIMIT $4) f ON true \
         ORDER BY f.seq",
        "seq",
        |q| {
            q.bind(big(after))
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        },
    )
    .await?;
    let ctx = format!("execution {id}");
    rows.iter().map(|r| read::progress_frame(r, &ctx)).collect()
}

/// How much later than its own clock a reader marks an execution watched
/// until: the clocks of the processes sharing the database may differ by
/// this much before a writer clears a mark its reader still relies on.
const WATCH_MARGIN: Duration = Duration::from_secs(5);

/// How much further a reader's mark reaches than it needs, so a reader
/// that waits again and again (a follower polling with short timeouts)
/// writes the row about once per this long rather than once per wait. A
/// mark outlives its last reader by at most this (plus the margin); until
/// then the execution's changes are announced to nobody.
const WATCH_EXTENSION: Duration = Duration::from_secs(30);

/// Waiters are woken by `NOTIFY`, never by polling, and only executions
/// someone waits on are announced: the reader marks the execution watched
/// (`watched_until`) before it reads, and a trigger (migration 0008) sends
/// the execution's id on this schema's change channel from every
/// transaction that changes a watched execution's state, custom status or
/// progress, or trims it. The notification is delivered at commit; this
/// process's change listener wakes the execution's readers
/// ([`baton_core::raw::Watchers`]), whatever instance or process made the
/// change.
pub(crate) async fn wait_for_change(
    b: &PostgresBackend,
    id: &ExecutionId,
    seen: ChangeMark,
    timeout: Duration,
) -> Result<ExecutionSnapshot> {
    b.check_id(id)?;
    baton_core::raw::wait_for_change(
        &b.inner.watchers,
        id,
        seen,
        timeout,
        watch(b, id, timeout),
        || crate::admin::describe(b, id),
    )
    .await
}

/// Makes every change of `id` committed from now on reach this process's
/// watchers for at least `timeout`: the change listener runs (its LISTEN
/// is in place before the mark is), then the row is marked watched. A
/// writer that locked the row before the mark commits is waited for here,
/// so its change is in the read that follows; one that locks it after
/// sees the mark and announces. A mark that reaches far enough already is
/// left as it is, without a write.
async fn watch(b: &PostgresBackend, id: &ExecutionId, timeout: Duration) -> Result<()> {
    b.inner.changes.ensure().await?;
    let needed = b.now().saturating_add(timeout).saturating_add(WATCH_MARGIN);
    let marked = needed.saturating_add(WATCH_EXTENSION);
    let found: bool = sqlx::query_scalar(
        "WITH marked AS ( \
             UPDATE executions SET watched_until = $4 \
             WHERE partition = $1 AND uuid = $2 \
               AND (watched_until IS NULL OR watched_until < $3)) \
         SELECT EXISTS (SELECT 1 FROM executions WHERE partition = $1 AND uuid = $2)",
    )
    .bind(part(id.partition()))
    .bind(id.uuid())
    .bind(needed.as_millis())
    .bind(marked.as_millis())
    .fetch_one(&b.inner.pool)
    .await
    .map_err(map)?;
    if found {
        Ok(())
    } else {
        Err(EngineError::NotFound { id: id.clone() })
    }
}
