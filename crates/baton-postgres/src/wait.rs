//! Waiting without a worker (rfcs/0007): `release`, `suspend`, `signal`,
//! the timeout pass (`timeout_due`) and the admin read `signals`.
//!
//! An execution's signals are rows of `signals`, numbered from 1
//! (`seq`); the execution's `signal_count` is the last number given. Every
//! writer of an execution's signals (a signal, a suspend, a timeout) holds
//! the execution's row lock first, so the numbering, the idempotency check
//! and which buffered signals a wait consumes are judged as the previous
//! writer left them, and a signal and a timeout racing for one suspended
//! execution act one after the other on what the first left.
//!
//! Release and suspend close the attempt as `released`, like
//! `wait_children` (no attempt is consumed). A resume (by a signal or a
//! timeout) makes the execution `waiting`, eligible now, and tells the
//! claimers of its lane: `pg_notify` in the transaction (delivered at
//! commit, to every process) and this instance's parked claimers at once.

use baton_core::raw::rules::{self, SignalAdmission, TimeoutVerdict};
use baton_core::raw::stored::in_range;
use baton_core::{
    CancelScope, EngineError, ExecutionId, ExecutionSnapshot, LeaseToken, NewSignal, PartitionId,
    Result, ScanReport, Signal, SignalOutcome, State, SuspendOutcome, SuspendRequest, Timestamp,
    WaitEnded,
};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::errors::map;
use crate::read::{self, col};
use crate::{PostgresBackend, finish, part};

/// A lane to wake once the transaction committed: `(namespace, lane)`.
type WokenLane = (String, String);

pub(crate) async fn release(b: &PostgresBackend, lease: &LeaseToken) -> Result<ExecutionSnapshot> {
    b.check_id(lease.execution_id())?;
    let now = b.now();
    let mut tx = b.begin().await?;
    let outcome = release_in(b, &mut tx, lease, now).await;
    let (snap, woken) = finish(tx, outcome).await?;
    if woken {
        b.inner
            .wake
            .notify(snap.namespace.as_str(), snap.lane.as_str());
    }
    Ok(snap)
}

/// The body of `release`, in the caller's transaction; answers whether the
/// execution became `waiting` here (its lane is to be woken).
async fn release_in(
    b: &PostgresBackend,
    tx: &mut PgConnection,
    lease: &LeaseToken,
    now: Timestamp,
) -> Result<(ExecutionSnapshot, bool)> {
    let id = lease.execution_id();
    match b.check_lease(tx, lease, now).await? {
        (rules::LeaseVerdict::Live, _) => {
            let row = sqlx::query(
                "WITH released AS ( \
                     UPDATE executions SET state = 'waiting', released = released + 1, \
                         ready_at = $3, updated_at = $3, worker_id = NULL, lease_nonce = NULL, \
                         lease_expires_at = NULL, attempt_ended_at = $3, \
                         attempt_outcome = 'released' \
                     WHERE partition = $1 AND uuid = $2 RETURNING *), \
                 woken AS (SELECT pg_notify($4, namespace || ' ' || lane) FROM released) \
                 SELECT released.*, (SELECT count(*) FROM woken) AS woken FROM released",
            )
            .bind(part(id.partition()))
            .bind(id.uuid())
            .bind(now.as_millis())
            .bind(&b.inner.channel)
            .fetch_one(&mut *tx)
            .await
            .map_err(map)?;
            Ok((b.snapshot(&row)?, true))
        }
        (rules::LeaseVerdict::Ended(outcome), snap) => Ok((
            rules::released_replay("release", lease, outcome, snap)?,
            false,
        )),
    }
}

pub(crate) async fn suspend(
    b: &PostgresBackend,
    lease: &LeaseToken,
    request: SuspendRequest,
) -> Result<SuspendOutcome> {
    request.validate()?;
    b.check_id(lease.execution_id())?;
    let now = b.now();
    let mut tx = b.begin().await?;
    let outcome = suspend_in(b, &mut tx, lease, &request, now).await;
    finish(tx, outcome).await
}

/// The body of `suspend`, in the caller's transaction.
async fn suspend_in(
    b: &PostgresBackend,
    tx: &mut PgConnection,
    lease: &LeaseToken,
    request: &SuspendRequest,
    now: Timestamp,
) -> Result<SuspendOutcome> {
    let id = lease.execution_id();
    let snap = match b.check_lease(tx, lease, now).await? {
        (rules::LeaseVerdict::Live, snap) => snap,
        (rules::LeaseVerdict::Ended(outcome), snap) => {
            return rules::released_replay("suspend", lease, outcome, snap)
                .map(SuspendOutcome::Suspended);
        }
    };
    let ctx = format!("execution {id}");
    let (log, held): (String, i32) = sqlx::query_as(
        "SELECT wait_log, signal_count FROM executions WHERE partition = $1 AND uuid = $2",
    )
    .bind(part(id.partition()))
    .bind(id.uuid())
    .fetch_one(&mut *tx)
    .await
    .map_err(map)?;
    rules::check_wait_room(id, log.len(), &b.inner.limits)?;
    let names: Vec<&str> = request.waitpoints.iter().map(|w| w.as_str()).collect();
    // Without signals held or waitpoints named, nothing can satisfy the
    // wait at once (`rules::satisfying` answers `None`): no read.
    if held > 0 && !names.is_empty() {
        let buffered = buffered(tx, id).await?;
        let pairs: Vec<(u32, &str)> = buffered.iter().map(|(s, n)| (*s, n.as_str())).collect();
        if let Some(seqs) = rules::satisfying(&names, request.condition, &pairs) {
            // The wait ends at once and the lease is kept: no state
            // changes, so `updated_at` stays.
            let signals = consume(tx, id, &ctx, &seqs, next_wait(&ctx, &log)?).await?;
            sqlx::query(
                "UPDATE executions SET wait_log = wait_log || $3 \
                 WHERE partition = $1 AND uuid = $2",
            )
            .bind(part(id.partition()))
            .bind(id.uuid())
            .bind(rules::wait_log_letter(WaitEnded::Signalled).to_string())
            .execute(&mut *tx)
            .await
            .map_err(map)?;
            return Ok(SuspendOutcome::Satisfied {
                snapshot: snap,
                signals,
            });
        }
    }
    let row = sqlx::query(
        "UPDATE executions SET state = 'suspended', released = released + 1, \
             updated_at = $3, worker_id = NULL, lease_nonce = NULL, lease_expires_at = NULL, \
             attempt_ended_at = $3, attempt_outcome = 'released', \
             wait_points = $4, wait_condition = $5, wait_timeout_at = $6, on_timeout = $7 \
         WHERE partition = $1 AND uuid = $2 RETURNING *",
    )
    .bind(part(id.partition()))
    .bind(id.uuid())
    .bind(now.as_millis())
    .bind(rules::format_waitpoints(&request.waitpoints))
    .bind(request.condition.as_str())
    .bind(request.timeout.map(|t| now.saturating_add(t).as_millis()))
    .bind(request.on_timeout.as_str())
    .fetch_one(&mut *tx)
    .await
    .map_err(map)?;
    Ok(SuspendOutcome::Suspended(b.snapshot(&row)?))
}

pub(crate) async fn signal(
    b: &PostgresBackend,
    id: &ExecutionId,
    signal: NewSignal,
) -> Result<SignalOutcome> {
    b.check_id(id)?;
    signal.validate(&b.inner.limits)?;
    let now = b.now();
    let mut tx = b.begin().await?;
    let outcome = signal_in(b, &mut tx, id, &signal, now).await;
    let (answer, woken) = finish(tx, outcome).await?;
    if let Some((namespace, lane)) = woken {
        b.inner.wake.notify(&namespace, &lane);
    }
    Ok(answer)
}

/// The body of `signal`, in the caller's transaction; answers the lane to
/// wake when the signal resumed the execution.
async fn signal_in(
    b: &PostgresBackend,
    tx: &mut PgConnection,
    id: &ExecutionId,
    signal: &NewSignal,
    now: Timestamp,
) -> Result<(SignalOutcome, Option<WokenLane>)> {
    let row = b.lock_row(tx, id).await?;
    let ctx = format!("execution {id}");
    let state = read::state(&ctx, &col::<String>(&row, "state")?)?;
    let count: usize = in_range(
        "signal_count",
        &ctx,
        col::<i32>(&row, "signal_count")?.into(),
    )?;
    // Whether the key was seen, and how many signals no wait consumed.
    let (key_seen, held): (bool, i64) = sqlx::query_as(
        "SELECT COALESCE(bool_or(idempotency_key = $3), false), \
                COUNT(*) FILTER (WHERE wait IS NULL) \
         FROM signals WHERE partition = $1 AND uuid = $2",
    )
    .bind(part(id.partition()))
    .bind(id.uuid())
    .bind(signal.idempotency_key.as_ref().map(|k| k.as_str()))
    .fetch_one(&mut *tx)
    .await
    .map_err(map)?;
    let held: usize = in_range("buffered signals", &ctx, held)?;
    match rules::signal_admission(id, state, key_seen, held, &b.inner.limits)? {
        SignalAdmission::Duplicate => return Ok((SignalOutcome::Duplicate, None)),
        SignalAdmission::Ignored => return Ok((SignalOutcome::Ignored, None)),
        SignalAdmission::Store => {}
    }
    let seq = i32::try_from(count + 1).map_err(|_| {
        EngineError::corruption(format!("{ctx}: signal_count {count} out of range"))
    })?;
    sqlx::query(
        "WITH stored AS ( \
             INSERT INTO signals (partition, uuid, seq, name, payload, idempotency_key, \
                                  received_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)) \
         UPDATE executions SET signal_count = $3 WHERE partition = $1 AND uuid = $2",
    )
    .bind(part(id.partition()))
    .bind(id.uuid())
    .bind(seq)
    .bind(signal.name.as_str())
    .bind(&signal.payload)
    .bind(signal.idempotency_key.as_ref().map(|k| k.as_str()))
    .bind(now.as_millis())
    .execute(&mut *tx)
    .await
    .map_err(map)?;
    if state != State::Suspended {
        return Ok((SignalOutcome::Buffered, None));
    }
    let suspension = read::suspension(&row, &ctx)?
        .ok_or_else(|| EngineError::corruption(format!("{ctx}: suspended without a wait")))?;
    let names: Vec<&str> = suspension.waitpoints.iter().map(|w| w.as_str()).collect();
    let buffered = buffered(tx, id).await?;
    let pairs: Vec<(u32, &str)> = buffered.iter().map(|(s, n)| (*s, n.as_str())).collect();
    let Some(seqs) = rules::satisfying(&names, suspension.condition, &pairs) else {
        return Ok((SignalOutcome::Buffered, None));
    };
    let log = read::wait_log(&row)?;
    consume(tx, id, &ctx, &seqs, next_wait(&ctx, &log)?).await?;
    let lane = resume(b, tx, id, WaitEnded::Signalled, now).await?;
    Ok((SignalOutcome::Resumed, Some(lane)))
}

pub(crate) async fn timeout_due(
    b: &PostgresBackend,
    partition: PartitionId,
    limit: usize,
) -> Result<ScanReport> {
    let bound = b.scan_limit(partition, limit)?;
    let now = b.now();
    let mut tx = b.begin().await?;
    let outcome = timeout_in(b, &mut tx, partition, bound, now).await;
    let (report, woken) = finish(tx, outcome).await?;
    for (namespace, lane) in &woken {
        b.inner.wake.notify(namespace, lane);
    }
    Ok(report)
}

/// The body of `timeout_due`, in the caller's transaction; answers the
/// lanes to wake.
async fn timeout_in(
    b: &PostgresBackend,
    tx: &mut PgConnection,
    partition: PartitionId,
    bound: i64,
    now: Timestamp,
) -> Result<(ScanReport, Vec<WokenLane>)> {
    // A timeout that fails or cancels finishes the execution: its flow's
    // root (of a member, or of one with dependents) and its parent are
    // locked first (see `flow::lock_ancestors`), as the expiry pass does.
    // Of the executions due, read without a lock, then the due ones
    // themselves under their locks; a root is its own, locked there; a
    // member that would finish and was not read here is left to the next
    // pass. A resume finishes nothing and needs no ancestor.
    let candidates: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT uuid, on_timeout FROM executions WHERE partition = $1 AND state = 'suspended' \
         AND wait_timeout_at IS NOT NULL AND wait_timeout_at <= $2 \
         ORDER BY wait_timeout_at, uuid LIMIT $3",
    )
    .bind(part(partition))
    .bind(now.as_millis())
    .bind(bound)
    .fetch_all(&mut *tx)
    .await
    .map_err(map)?;
    let finishing: Vec<Uuid> = candidates
        .iter()
        .filter(|(_, on_timeout)| on_timeout != "resume")
        .map(|(u, _)| *u)
        .collect();
    let roots_of = crate::flow::RootsOf::Members;
    let covered = crate::flow::lock_ancestors_in(tx, partition, &finishing, roots_of).await?;
    let due = sqlx::query(
        "SELECT * FROM executions WHERE partition = $1 AND state = 'suspended' \
         AND wait_timeout_at IS NOT NULL AND wait_timeout_at <= $2 \
         AND (on_timeout = 'resume' OR root IS NULL OR uuid = ANY($4)) \
         ORDER BY wait_timeout_at, uuid LIMIT $3 FOR UPDATE SKIP LOCKED",
    )
    .bind(part(partition))
    .bind(now.as_millis())
    .bind(bound)
    .bind(&covered)
    .fetch_all(&mut *tx)
    .await
    .map_err(map)?;
    let mut processed = 0u64;
    let mut woken = Vec::new();
    let mut cancelled = false;
    for locked in due {
        // After a cancel verdict, read again under the lock this
        // transaction holds: the cancel may have reached it as a
        // descendant.
        let row = if cancelled {
            sqlx::query("SELECT * FROM executions WHERE partition = $1 AND uuid = $2")
                .bind(part(partition))
                .bind(col::<Uuid>(&locked, "uuid")?)
                .fetch_one(&mut *tx)
                .await
                .map_err(map)?
        } else {
            locked
        };
        let snap = b.snapshot(&row)?;
        let Some(suspension) = snap.suspension.as_ref() else {
            continue;
        };
        let id = &snap.id;
        let ctx = format!("execution {id}");
        match rules::timeout_verdict(suspension) {
            TimeoutVerdict::Resume => {
                let names: Vec<&str> = suspension.waitpoints.iter().map(|w| w.as_str()).collect();
                if !names.is_empty() && col::<i32>(&row, "signal_count")? > 0 {
                    let buffered = buffered(tx, id).await?;
                    let pairs: Vec<(u32, &str)> =
                        buffered.iter().map(|(s, n)| (*s, n.as_str())).collect();
                    let seqs = rules::timed_out_consumes(&names, &pairs);
                    let log = read::wait_log(&row)?;
                    consume(tx, id, &ctx, &seqs, next_wait(&ctx, &log)?).await?;
                }
                woken.push(resume(b, tx, id, WaitEnded::TimedOut, now).await?);
            }
            TimeoutVerdict::Fail(error) => {
                let error = b.inner.limits.clip_text(error);
                sqlx::query(
                    "UPDATE executions SET state = 'failed', last_error = $3, finished_at = $4, \
                     updated_at = $4 WHERE partition = $1 AND uuid = $2",
                )
                .bind(part(partition))
                .bind(id.uuid())
                .bind(error)
                .bind(now.as_millis())
                .execute(&mut *tx)
                .await
                .map_err(map)?;
                // The finish hooks of a failure (see `SettleArrays::run`):
                // its parent counts it down, its dependents learn it did
                // not complete; its descendants run on.
                let channel = &b.inner.channel;
                if let Some(parent) = &snap.parent {
                    crate::flow::children_finished(tx, parent, 1, now, channel).await?;
                }
                if read::has_dependents(&row)? {
                    let told = vec![(id.clone(), false, now)];
                    let (partitions, budget) = (b.inner.partitions, b.inner.limits.cascade_budget);
                    crate::flow::dependents_finished(tx, partitions, budget, channel, told).await?;
                }
            }
            TimeoutVerdict::Cancel(reason) => {
                let reason = rules::cancel_reason(&b.inner.limits, Some(reason))?;
                crate::flow::cancel_in(b, tx, id, reason, CancelScope::Tree, now).await?;
                cancelled = true;
            }
        }
        processed += 1;
    }
    let next: Option<i64> = sqlx::query_scalar(
        "SELECT MIN(wait_timeout_at) FROM executions WHERE partition = $1 \
         AND state = 'suspended' AND wait_timeout_at IS NOT NULL",
    )
    .bind(part(partition))
    .fetch_one(&mut *tx)
    .await
    .map_err(map)?;
    Ok((
        ScanReport {
            processed,
            next_due: next.map(Timestamp::from_millis),
        },
        woken,
    ))
}

pub(crate) async fn signals(b: &PostgresBackend, id: &ExecutionId) -> Result<Vec<Signal>> {
    let rows = crate::admin::records_of(
        b,
        id,
        "SELECT s.*, e.uuid IS NOT NULL AS found \
         FROM (SELECT 1) one \
         LEFT JOIN executions e ON e.partition = $1 AND e.uuid = $2 \
         LEFT JOIN signals s ON s.partition = $1 AND s.uuid = $2 \
         ORDER BY s.seq",
        "seq",
    )
    .await?;
    let ctx = format!("execution {id}");
    rows.iter().map(|r| read::signal(r, &ctx)).collect()
}

/// For a paused execution that left `suspended` (`row`, locked by the
/// caller and read in this transaction): the buffered signals that
/// satisfy its stored wait now ([`rules::satisfying`]), if any.
pub(crate) async fn satisfied_while_paused(
    conn: &mut PgConnection,
    id: &ExecutionId,
    row: &sqlx::postgres::PgRow,
) -> Result<Option<Vec<u32>>> {
    let ctx = format!("execution {id}");
    // The wait columns are the ones its suspend wrote, read as the
    // suspended state they belong to.
    let Some(wait) = rules::stored_suspension(
        &ctx,
        State::Suspended,
        col::<Option<String>>(row, "wait_points")?.as_deref(),
        col::<Option<String>>(row, "wait_condition")?.as_deref(),
        col(row, "wait_timeout_at")?,
        col::<Option<String>>(row, "on_timeout")?.as_deref(),
    )?
    else {
        return Ok(None);
    };
    let names: Vec<&str> = wait.waitpoints.iter().map(|w| w.as_str()).collect();
    // Without signals held or waitpoints named nothing can satisfy it: no
    // read.
    if names.is_empty() || col::<i32>(row, "signal_count")? == 0 {
        return Ok(None);
    }
    let buffered = buffered(conn, id).await?;
    let pairs: Vec<(u32, &str)> = buffered.iter().map(|(s, n)| (*s, n.as_str())).collect();
    Ok(rules::satisfying(&names, wait.condition, &pairs))
}

/// Ends the wait of a paused execution (wait log `log`) whose held signals
/// `seqs` satisfy it, as a signal would have: they are consumed by it and
/// the log grows by one letter. Its state is written by the caller, which
/// holds its row lock.
pub(crate) async fn end_wait_at_resume(
    conn: &mut PgConnection,
    id: &ExecutionId,
    log: &str,
    seqs: &[u32],
) -> Result<()> {
    let ctx = format!("execution {id}");
    consume(conn, id, &ctx, seqs, next_wait(&ctx, log)?).await?;
    sqlx::query(
        "UPDATE executions SET wait_log = wait_log || $3 WHERE partition = $1 AND uuid = $2",
    )
    .bind(part(id.partition()))
    .bind(id.uuid())
    .bind(rules::wait_log_letter(WaitEnded::Signalled).to_string())
    .execute(&mut *conn)
    .await
    .map_err(map)?;
    Ok(())
}

/// The signals of `id` no wait consumed yet, as `(seq, name)`, oldest
/// first; the caller holds the execution's row lock.
async fn buffered(conn: &mut PgConnection, id: &ExecutionId) -> Result<Vec<(u32, String)>> {
    let rows: Vec<(i32, String)> = sqlx::query_as(
        "SELECT seq, name FROM signals WHERE partition = $1 AND uuid = $2 AND wait IS NULL \
         ORDER BY seq",
    )
    .bind(part(id.partition()))
    .bind(id.uuid())
    .fetch_all(&mut *conn)
    .await
    .map_err(map)?;
    let ctx = format!("execution {id} signal");
    rows.into_iter()
        .map(|(seq, name)| Ok((in_range::<u32>("seq", &ctx, seq.into())?, name)))
        .collect()
}

/// Tags the buffered signals `seqs` of `id` as consumed by wait `wait`;
/// answers them, oldest first. The caller holds the execution's row lock
/// and read them buffered under it.
async fn consume(
    conn: &mut PgConnection,
    id: &ExecutionId,
    ctx: &str,
    seqs: &[u32],
    wait: i32,
) -> Result<Vec<Signal>> {
    if seqs.is_empty() {
        return Ok(Vec::new());
    }
    let numbers: Vec<i32> = seqs
        .iter()
        .map(|s| i32::try_from(*s).unwrap_or(i32::MAX))
        .collect();
    let rows = sqlx::query(
        "WITH tagged AS ( \
             UPDATE signals SET wait = $3 \
             WHERE partition = $1 AND uuid = $2 AND seq = ANY($4) AND wait IS NULL \
             RETURNING *) \
         SELECT * FROM tagged ORDER BY seq",
    )
    .bind(part(id.partition()))
    .bind(id.uuid())
    .bind(wait)
    .bind(&numbers)
    .fetch_all(&mut *conn)
    .await
    .map_err(map)?;
    if rows.len() != seqs.len() {
        return Err(EngineError::corruption(format!(
            "{ctx}: wait {wait} consumed {} of the {} buffered signals it was given",
            rows.len(),
            seqs.len()
        )));
    }
    rows.iter().map(|row| read::signal(row, ctx)).collect()
}

/// Ends the wait of suspended `id` (`how`, logged) and makes it `waiting`,
/// eligible now; its lane is notified at commit and answered, to wake this
/// instance's claimers after the commit.
async fn resume(
    b: &PostgresBackend,
    conn: &mut PgConnection,
    id: &ExecutionId,
    how: WaitEnded,
    now: Timestamp,
) -> Result<WokenLane> {
    let row: Option<(String, String, i64)> = sqlx::query_as(
        "WITH resumed AS ( \
             UPDATE executions SET state = 'waiting', wait_log = wait_log || $3, \
                 ready_at = $4, updated_at = $4 \
             WHERE partition = $1 AND uuid = $2 AND state = 'suspended' \
             RETURNING namespace, lane), \
         woken AS (SELECT pg_notify($5, namespace || ' ' || lane) FROM resumed) \
         SELECT namespace, lane, (SELECT count(*) FROM woken) FROM resumed",
    )
    .bind(part(id.partition()))
    .bind(id.uuid())
    .bind(rules::wait_log_letter(how).to_string())
    .bind(now.as_millis())
    .bind(&b.inner.channel)
    .fetch_optional(&mut *conn)
    .await
    .map_err(map)?;
    let (namespace, lane, _) = row.ok_or_else(|| {
        EngineError::corruption(format!(
            "execution {id}: a locked, suspended execution could not resume"
        ))
    })?;
    Ok((namespace, lane))
}

/// The number of the wait an execution whose wait log is `log` ends next.
fn next_wait(ctx: &str, log: &str) -> Result<i32> {
    i32::try_from(log.len() + 1)
        .map_err(|_| EngineError::corruption(format!("{ctx}: a wait log of {} waits", log.len())))
}
