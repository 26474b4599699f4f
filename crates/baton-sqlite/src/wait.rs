//! Waiting without a worker: `release`, `suspend`, `signal`, the timeout
//! pass and the `signals` read. Every decision is a rule of
//! `baton_core::raw::rules` (`waits`); this module reads the facts and
//! writes the verdicts, each call in one transaction.

use baton_core::raw::rules::{self, SignalAdmission, TimeoutVerdict};
use baton_core::raw::stored::{in_range, parse as parsed};
use baton_core::{
    AttemptOutcome, CancelScope, Claim, ExecutionId, ExecutionSnapshot, LeaseToken, NewSignal,
    PartitionId, Result, ScanReport, Signal, SignalOutcome, State, SuspendOutcome, SuspendRequest,
    Timestamp, WaitEnded,
};
use sqlx::SqliteConnection;
use sqlx::sqlite::SqliteRow;

use crate::errors::map;
use crate::read::col;
use crate::{SqliteBackend, blob};

const SIGNAL_COLUMNS: &str = "seq, name, payload, idempotency_key, received_at, wait";

pub(crate) async fn release(b: &SqliteBackend, lease: &LeaseToken) -> Result<ExecutionSnapshot> {
    let now = b.now();
    let id = lease.execution_id();
    let mut tx = b.begin().await?;
    let snap = match b.check_lease(&mut tx, lease, now).await? {
        (rules::LeaseVerdict::Live, snap) => snap,
        (rules::LeaseVerdict::Ended(outcome), snap) => {
            return rules::released_replay("release", lease, outcome, snap);
        }
    };
    SqliteBackend::close_attempt(
        &mut tx,
        id,
        snap.attempts,
        AttemptOutcome::Released,
        None,
        now,
    )
    .await?;
    sqlx::query(
        "UPDATE executions SET state = 'waiting', released = released + 1, ready_at = ?1, \
         updated_at = ?1, worker_id = NULL, lease_nonce = NULL, lease_expires_at = NULL \
         WHERE uuid = ?2",
    )
    .bind(now.as_millis())
    .bind(blob(id))
    .execute(&mut *tx)
    .await
    .map_err(map)?;
    let after = b.snapshot_in(&mut tx, id).await?;
    tx.commit().await.map_err(map)?;
    b.inner
        .wake
        .notify(after.namespace.as_str(), after.lane.as_str());
    Ok(after)
}

pub(crate) async fn suspend(
    b: &SqliteBackend,
    lease: &LeaseToken,
    request: SuspendRequest,
) -> Result<SuspendOutcome> {
    request.validate()?;
    let now = b.now();
    let id = lease.execution_id();
    let mut tx = b.begin().await?;
    let snap = match b.check_lease(&mut tx, lease, now).await? {
        (rules::LeaseVerdict::Live, snap) => snap,
        (rules::LeaseVerdict::Ended(outcome), snap) => {
            return rules::released_replay("suspend", lease, outcome, snap)
                .map(SuspendOutcome::Suspended);
        }
    };
    let log = wait_log(&mut tx, id).await?;
    rules::check_wait_room(id, log.chars().count(), &b.inner.limits)?;
    let buffered = buffered(&mut tx, id).await?;
    let names: Vec<&str> = request.waitpoints.iter().map(|w| w.as_str()).collect();
    let held: Vec<(u32, &str)> = buffered.iter().map(|(s, n)| (*s, n.as_str())).collect();
    if let Some(seqs) = rules::satisfying(&names, request.condition, &held) {
        let wait = end_wait(&mut tx, id, &log, WaitEnded::Signalled, &seqs).await?;
        let signals = consumed_by(&mut tx, id, wait).await?;
        tx.commit().await.map_err(map)?;
        return Ok(SuspendOutcome::Satisfied {
            snapshot: snap,
            signals,
        });
    }
    SqliteBackend::close_attempt(
        &mut tx,
        id,
        snap.attempts,
        AttemptOutcome::Released,
        None,
        now,
    )
    .await?;
    let timeout_at = request.timeout.map(|t| now.saturating_add(t).as_millis());
    sqlx::query(
        "UPDATE executions SET state = 'suspended', released = released + 1, updated_at = ?1, \
         worker_id = NULL, lease_nonce = NULL, lease_expires_at = NULL, wait_points = ?2, \
         wait_condition = ?3, wait_timeout_at = ?4, on_timeout = ?5 WHERE uuid = ?6",
    )
    .bind(now.as_millis())
    .bind(rules::format_waitpoints(&request.waitpoints))
    .bind(request.condition.as_str())
    .bind(timeout_at)
    .bind(request.on_timeout.as_str())
    .bind(blob(id))
    .execute(&mut *tx)
    .await
    .map_err(map)?;
    let after = b.snapshot_in(&mut tx, id).await?;
    tx.commit().await.map_err(map)?;
    Ok(SuspendOutcome::Suspended(after))
}

pub(crate) async fn signal(
    b: &SqliteBackend,
    id: &ExecutionId,
    signal: NewSignal,
) -> Result<SignalOutcome> {
    b.check_id(id)?;
    signal.validate(&b.inner.limits)?;
    let now = b.now();
    let mut tx = b.begin().await?;
    let snap = b.snapshot_in(&mut tx, id).await?;
    let key_seen = match &signal.idempotency_key {
        Some(key) => sqlx::query_scalar::<_, i64>(
            "SELECT 1 FROM signals WHERE uuid = ? AND idempotency_key = ?",
        )
        .bind(blob(id))
        .bind(key.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(map)?
        .is_some(),
        None => false,
    };
    let (count, held): (i64, i64) = sqlx::query_as(
        "SELECT signal_count, (SELECT COUNT(*) FROM signals WHERE uuid = ?1 AND wait IS NULL) \
         FROM executions WHERE uuid = ?1",
    )
    .bind(blob(id))
    .fetch_one(&mut *tx)
    .await
    .map_err(map)?;
    let ctx = format!("execution {id}");
    let count: usize = in_range("signal_count", &ctx, count)?;
    let held: usize = in_range("buffered signals", &ctx, held)?;
    match rules::signal_admission(id, snap.state, key_seen, held, &b.inner.limits)? {
        SignalAdmission::Duplicate => return Ok(SignalOutcome::Duplicate),
        SignalAdmission::Ignored => return Ok(SignalOutcome::Ignored),
        SignalAdmission::Store => {}
    }
    let seq = i64::try_from(count + 1).unwrap_or(i64::MAX);
    sqlx::query(
        "INSERT INTO signals (partition, uuid, seq, name, payload, idempotency_key, received_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(i64::from(id.partition().get()))
    .bind(blob(id))
    .bind(seq)
    .bind(signal.name.as_str())
    .bind(&signal.payload)
    .bind(signal.idempotency_key.as_ref().map(|k| k.as_str()))
    .bind(now.as_millis())
    .execute(&mut *tx)
    .await
    .map_err(map)?;
    sqlx::query("UPDATE executions SET signal_count = ? WHERE uuid = ?")
        .bind(seq)
        .bind(blob(id))
        .execute(&mut *tx)
        .await
        .map_err(map)?;
    let Some(wait) = snap
        .suspension
        .as_ref()
        .filter(|_| snap.state == State::Suspended)
    else {
        tx.commit().await.map_err(map)?;
        return Ok(SignalOutcome::Buffered);
    };
    let buffered = buffered(&mut tx, id).await?;
    let names: Vec<&str> = wait.waitpoints.iter().map(|w| w.as_str()).collect();
    let held: Vec<(u32, &str)> = buffered.iter().map(|(s, n)| (*s, n.as_str())).collect();
    let Some(seqs) = rules::satisfying(&names, wait.condition, &held) else {
        tx.commit().await.map_err(map)?;
        return Ok(SignalOutcome::Buffered);
    };
    let log = wait_log(&mut tx, id).await?;
    end_wait(&mut tx, id, &log, WaitEnded::Signalled, &seqs).await?;
    resume(&mut tx, id, now).await?;
    tx.commit().await.map_err(map)?;
    b.inner
        .wake
        .notify(snap.namespace.as_str(), snap.lane.as_str());
    Ok(SignalOutcome::Resumed)
}

pub(crate) async fn timeout_due(
    b: &SqliteBackend,
    partition: PartitionId,
    limit: usize,
) -> Result<ScanReport> {
    let limit = b.scan_limit(partition, limit)?;
    let now = b.now();
    let mut tx = b.begin().await?;
    let due: Vec<(Vec<u8>, i64)> = sqlx::query_as(
        "SELECT uuid, partition FROM executions WHERE partition = ? AND state = 'suspended' \
         AND wait_timeout_at IS NOT NULL AND wait_timeout_at <= ? \
         ORDER BY wait_timeout_at, uuid LIMIT ?",
    )
    .bind(i64::from(partition.get()))
    .bind(now.as_millis())
    .bind(limit)
    .fetch_all(&mut *tx)
    .await
    .map_err(map)?;
    let mut wake = Vec::new();
    let mut processed = 0u64;
    for (uuid, p) in &due {
        let id = crate::read::stored_id(uuid, *p, b.inner.partitions)?;
        let snap = b.snapshot_in(&mut tx, &id).await?;
        // A cancel earlier in this pass (of an ancestor) may have reached it.
        let Some(wait) = snap.suspension.as_ref() else {
            continue;
        };
        processed += 1;
        match rules::timeout_verdict(wait) {
            TimeoutVerdict::Resume => {
                let buffered = buffered(&mut tx, &id).await?;
                let names: Vec<&str> = wait.waitpoints.iter().map(|w| w.as_str()).collect();
                let held: Vec<(u32, &str)> =
                    buffered.iter().map(|(s, n)| (*s, n.as_str())).collect();
                let seqs = rules::timed_out_consumes(&names, &held);
                let log = wait_log(&mut tx, &id).await?;
                end_wait(&mut tx, &id, &log, WaitEnded::TimedOut, &seqs).await?;
                resume(&mut tx, &id, now).await?;
                wake.push((snap.namespace.to_string(), snap.lane.to_string()));
            }
            TimeoutVerdict::Fail(error) => {
                let error = b.inner.limits.clip_text(error);
                sqlx::query(
                    "UPDATE executions SET state = 'failed', last_error = ?1, finished_at = ?2, \
                     updated_at = ?2 WHERE uuid = ?3",
                )
                .bind(&error)
                .bind(now.as_millis())
                .bind(uuid.as_slice())
                .execute(&mut *tx)
                .await
                .map_err(map)?;
                let has = crate::flow::has_dependents(&mut tx, &id).await?;
                let parent = snap.parent.as_ref();
                wake.extend(
                    crate::flow::finished(b, &mut tx, &id, parent, State::Failed, Some(has), now)
                        .await?,
                );
            }
            TimeoutVerdict::Cancel(reason) => {
                let reason = rules::cancel_reason(&b.inner.limits, Some(reason))?;
                let (_, woken) =
                    crate::flow::cancel_in(b, &mut tx, &id, CancelScope::Tree, reason, now).await?;
                wake.extend(woken);
            }
        }
    }
    let next: Option<i64> = sqlx::query_scalar(
        "SELECT MIN(wait_timeout_at) FROM executions WHERE partition = ? AND state = 'suspended' \
         AND wait_timeout_at IS NOT NULL",
    )
    .bind(i64::from(partition.get()))
    .fetch_one(&mut *tx)
    .await
    .map_err(map)?;
    tx.commit().await.map_err(map)?;
    b.wake_all(wake);
    b.finished_some();
    Ok(ScanReport {
        processed,
        next_due: next.map(Timestamp::from_millis),
    })
}

pub(crate) async fn signals(b: &SqliteBackend, id: &ExecutionId) -> Result<Vec<Signal>> {
    let mut conn = b.read_existing(id).await?;
    let rows = sqlx::query(&format!(
        "SELECT {SIGNAL_COLUMNS} FROM signals WHERE uuid = ? ORDER BY seq"
    ))
    .bind(blob(id))
    .fetch_all(&mut *conn)
    .await
    .map_err(map)?;
    rows.iter().map(|r| stored_signal(r, id)).collect()
}

/// Fills `waits` and `signals` of claims whose wait log (`logs`, by claim
/// index) is not empty, in the claim's transaction.
pub(crate) async fn claimed_waits(
    conn: &mut SqliteConnection,
    claims: &mut [Claim],
    logs: &std::collections::HashMap<ExecutionId, String>,
) -> Result<()> {
    for claim in claims.iter_mut() {
        let Some(log) = logs.get(&claim.id) else {
            continue;
        };
        let ctx = format!("execution {}", claim.id);
        claim.waits = rules::parse_wait_log(&ctx, log)?;
        let rows = sqlx::query(&format!(
            "SELECT {SIGNAL_COLUMNS} FROM signals WHERE uuid = ? AND wait IS NOT NULL ORDER BY seq"
        ))
        .bind(blob(&claim.id))
        .fetch_all(&mut *conn)
        .await
        .map_err(map)?;
        claim.signals = rows
            .iter()
            .map(|r| stored_signal(r, &claim.id))
            .collect::<Result<_>>()?;
    }
    Ok(())
}

async fn wait_log(conn: &mut SqliteConnection, id: &ExecutionId) -> Result<String> {
    sqlx::query_scalar("SELECT wait_log FROM executions WHERE uuid = ?")
        .bind(blob(id))
        .fetch_one(&mut *conn)
        .await
        .map_err(map)
}

/// For a paused execution that left `suspended`: the buffered signals
/// that satisfy its stored wait now ([`rules::satisfying`]), if any.
pub(crate) async fn satisfied_while_paused(
    conn: &mut SqliteConnection,
    id: &ExecutionId,
) -> Result<Option<Vec<u32>>> {
    let row = sqlx::query(
        "SELECT wait_points, wait_condition, wait_timeout_at, on_timeout FROM executions \
         WHERE uuid = ?",
    )
    .bind(blob(id))
    .fetch_one(&mut *conn)
    .await
    .map_err(map)?;
    let ctx = format!("execution {id}");
    let Some(wait) = rules::stored_suspension(
        &ctx,
        State::Suspended,
        col::<Option<String>>(&row, "wait_points")?.as_deref(),
        col::<Option<String>>(&row, "wait_condition")?.as_deref(),
        col(&row, "wait_timeout_at")?,
        col::<Option<String>>(&row, "on_timeout")?.as_deref(),
    )?
    else {
        return Ok(None);
    };
    let buffered = buffered(conn, id).await?;
    let names: Vec<&str> = wait.waitpoints.iter().map(|w| w.as_str()).collect();
    let held: Vec<(u32, &str)> = buffered.iter().map(|(s, n)| (*s, n.as_str())).collect();
    Ok(rules::satisfying(&names, wait.condition, &held))
}

/// Ends the wait of an execution resumed from a pause whose held signals
/// satisfy it, consuming `seqs` (its state is written by the caller).
pub(crate) async fn end_wait_at_resume(
    conn: &mut SqliteConnection,
    id: &ExecutionId,
    seqs: &[u32],
) -> Result<()> {
    let log = wait_log(conn, id).await?;
    end_wait(conn, id, &log, WaitEnded::Signalled, seqs).await?;
    Ok(())
}

/// `(seq, name)` of the signals no wait consumed yet.
async fn buffered(conn: &mut SqliteConnection, id: &ExecutionId) -> Result<Vec<(u32, String)>> {
    let rows: Vec<(i64, String)> =
        sqlx::query_as("SELECT seq, name FROM signals WHERE uuid = ? AND wait IS NULL")
            .bind(blob(id))
            .fetch_all(&mut *conn)
            .await
            .map_err(map)?;
    let ctx = format!("execution {id}");
    rows.into_iter()
        .map(|(seq, name)| Ok((in_range("signal seq", &ctx, seq)?, name)))
        .collect()
}

/// Ends the execution's next wait `how`, consuming the signals `seqs`:
/// they are tagged with the wait's number and the log grows by one
/// letter. Answers the wait's number.
async fn end_wait(
    conn: &mut SqliteConnection,
    id: &ExecutionId,
    log: &str,
    how: WaitEnded,
    seqs: &[u32],
) -> Result<i64> {
    let wait = i64::try_from(log.chars().count() + 1).unwrap_or(i64::MAX);
    for seq in seqs {
        sqlx::query("UPDATE signals SET wait = ? WHERE uuid = ? AND seq = ?")
            .bind(wait)
            .bind(blob(id))
            .bind(i64::from(*seq))
            .execute(&mut *conn)
            .await
            .map_err(map)?;
    }
    let mut log = log.to_string();
    log.push(rules::wait_log_letter(how));
    sqlx::query("UPDATE executions SET wait_log = ? WHERE uuid = ?")
        .bind(log)
        .bind(blob(id))
        .execute(&mut *conn)
        .await
        .map_err(map)?;
    Ok(wait)
}

/// A suspended execution whose wait ended becomes `waiting`, eligible now.
async fn resume(conn: &mut SqliteConnection, id: &ExecutionId, now: Timestamp) -> Result<()> {
    sqlx::query(
        "UPDATE executions SET state = 'waiting', ready_at = ?1, updated_at = ?1 WHERE uuid = ?2",
    )
    .bind(now.as_millis())
    .bind(blob(id))
    .execute(&mut *conn)
    .await
    .map_err(map)?;
    Ok(())
}

async fn consumed_by(
    conn: &mut SqliteConnection,
    id: &ExecutionId,
    wait: i64,
) -> Result<Vec<Signal>> {
    let rows = sqlx::query(&format!(
        "SELECT {SIGNAL_COLUMNS} FROM signals WHERE uuid = ? AND wait = ? ORDER BY seq"
    ))
    .bind(blob(id))
    .bind(wait)
    .fetch_all(&mut *conn)
    .await
    .map_err(map)?;
    rows.iter().map(|r| stored_signal(r, id)).collect()
}

fn stored_signal(row: &SqliteRow, id: &ExecutionId) -> Result<Signal> {
    let ctx = format!("execution {id} signal");
    Ok(Signal {
        seq: in_range("seq", &ctx, col(row, "seq")?)?,
        name: parsed("signal name", &ctx, &col::<String>(row, "name")?)?,
        payload: col(row, "payload")?,
        idempotency_key: col::<Option<String>>(row, "idempotency_key")?
            .map(|k| parsed("idempotency_key", &ctx, &k))
            .transpose()?,
        received_at: Timestamp::from_millis(col(row, "received_at")?),
        wait: col::<Option<i64>>(row, "wait")?
            .map(|w| in_range("wait", &ctx, w))
            .transpose()?,
    })
}
