//! The normalising read adapter: the one place where stored SQLite values
//! become canonical `baton-core` types.
//!
//! Every conversion is total and strict. A value Baton never writes (an
//! unknown state literal, a malformed name, a UUID of the wrong length, JSON
//! that is not what the writer produced) is a
//! [`Corruption`](EngineError::Corruption) error naming the execution and the
//! column — never a default.

use std::collections::{BTreeMap, BTreeSet};

use baton_core::raw::rules;
use baton_core::raw::stored::{in_range, parse as parsed};
use baton_core::{
    AttemptOutcome, AttemptRecord, Backoff, CapabilityName, ChildKey, DependencyPolicy,
    EngineError, ExecutionId, ExecutionSnapshot, IdempotencyKey, Kind, Lane, Namespace,
    PartitionCount, PartitionId, RetryPolicy, State, TagKey, Timestamp, TreeNode, WorkerId,
};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use uuid::Uuid;

/// Columns of `executions` that [`snapshot`] reads, as a literal for `concat!`.
macro_rules! execution_columns {
    () => {
        "uuid, partition, namespace, lane, kind, state, priority, payload, \
    tags, required_caps, attempts, max_attempts, backoff_initial_ms, backoff_max_ms, \
    backoff_multiplier, backoff_jitter, idempotency_key, parent, child_key, root, created_at, updated_at, run_at, \
    deadline, finished_at, worker_id, lease_expires_at, result, last_error, cancel_reason, \
    open_children, dep_policy, deps_total, deps_done, deps_bad, has_dependents, \
    wait_points, wait_condition, wait_timeout_at, on_timeout, \
    custom_status, status_version, progress_seq, paused_from, paused_via, session, version"
    };
}

/// Columns of `attempt_history` (and of `attempts`) that [`attempt`] reads,
/// as a literal for `concat!`.
macro_rules! attempt_columns {
    () => {
        "number, worker_id, started_at, ended_at, outcome, error"
    };
}

/// Reads one column, turning a type mismatch into corruption.
pub fn col<'r, T>(row: &'r SqliteRow, name: &str) -> Result<T, EngineError>
where
    T: sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
{
    row.try_get(name)
        .map_err(|e| EngineError::corruption(format!("column {name}: {e}")))
}

fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms)
}

fn opt_ts(ms: Option<i64>) -> Option<Timestamp> {
    ms.map(ts)
}

/// The id stored in a row's `uuid` and `partition` columns.
pub fn execution_id(
    row: &SqliteRow,
    partitions: PartitionCount,
) -> Result<ExecutionId, EngineError> {
    let raw: Vec<u8> = col(row, "uuid")?;
    stored_id(&raw, col(row, "partition")?, partitions)
}

/// The id of a stored `uuid` and `partition`.
pub fn stored_id(
    raw: &[u8],
    partition: i64,
    partitions: PartitionCount,
) -> Result<ExecutionId, EngineError> {
    let uuid = Uuid::from_slice(raw)
        .map_err(|_| EngineError::corruption(format!("stored uuid of {} bytes", raw.len())))?;
    let partition = u16::try_from(partition)
        .map_err(|_| EngineError::corruption(format!("execution {uuid}: partition {partition}")))?;
    ExecutionId::from_parts(uuid, PartitionId(partition), partitions)
}

/// Parses a stored state literal.
pub fn state(ctx: &str, raw: &str) -> Result<State, EngineError> {
    parsed("state", ctx, raw)
}

/// Parses the stored tags JSON object.
pub fn tags(ctx: &str, raw: &str) -> Result<BTreeMap<TagKey, String>, EngineError> {
    baton_core::raw::stored::tags_json(ctx, raw)
}

/// Parses the stored capability JSON array.
pub fn capabilities(ctx: &str, raw: &str) -> Result<BTreeSet<CapabilityName>, EngineError> {
    baton_core::raw::stored::capabilities_json(ctx, raw)
}

/// A full snapshot from a row selected with the `execution_columns!()` list.
pub fn snapshot(
    row: &SqliteRow,
    partitions: PartitionCount,
) -> Result<ExecutionSnapshot, EngineError> {
    let id = execution_id(row, partitions)?;
    let ctx = format!("execution {id}");
    let ctx = ctx.as_str();
    let state = state(ctx, &col::<String>(row, "state")?)?;
    let priority: i64 = col(row, "priority")?;
    let priority = i32::try_from(priority)
        .map_err(|_| EngineError::corruption(format!("{ctx}: priority {priority}")))?;
    let jitter: i64 = col(row, "backoff_jitter")?;
    let retry = RetryPolicy {
        max_attempts: in_range::<u32>("max_attempts", ctx, col(row, "max_attempts")?)?,
        backoff: Backoff {
            initial_ms: in_range::<u64>(
                "backoff_initial_ms",
                ctx,
                col(row, "backoff_initial_ms")?,
            )?,
            max_ms: in_range::<u64>("backoff_max_ms", ctx, col(row, "backoff_max_ms")?)?,
            multiplier: col(row, "backoff_multiplier")?,
            jitter: match jitter {
                0 => false,
                1 => true,
                other => {
                    return Err(EngineError::corruption(format!(
                        "{ctx}: backoff_jitter {other}"
                    )));
                }
            },
        },
    };
    let worker_id: Option<String> = col(row, "worker_id")?;
    let snapshot = ExecutionSnapshot {
        session: rules::stored_session(ctx, col::<Option<String>>(row, "session")?.as_deref())?,
        version: rules::stored_version(ctx, col::<Option<String>>(row, "version")?.as_deref())?,
        namespace: parsed::<Namespace>("namespace", ctx, &col::<String>(row, "namespace")?)?,
        lane: parsed::<Lane>("lane", ctx, &col::<String>(row, "lane")?)?,
        kind: parsed::<Kind>("kind", ctx, &col::<String>(row, "kind")?)?,
        state,
        priority,
        payload: col(row, "payload")?,
        tags: tags(ctx, &col::<String>(row, "tags")?)?,
        attempts: in_range::<u32>("attempts", ctx, col(row, "attempts")?)?,
        retry,
        idempotency_key: col::<Option<String>>(row, "idempotency_key")?
            .map(|k| parsed::<IdempotencyKey>("idempotency_key", ctx, &k))
            .transpose()?,
        required_capabilities: capabilities(ctx, &col::<String>(row, "required_caps")?)?,
        parent: col::<Option<String>>(row, "parent")?
            .map(|p| parsed::<ExecutionId>("parent", ctx, &p))
            .transpose()?,
        child_key: col::<Option<String>>(row, "child_key")?
            .map(|k| parsed::<ChildKey>("child_key", ctx, &k))
            .transpose()?,
        root: col::<Option<String>>(row, "root")?
            .map(|r| parsed::<ExecutionId>("root", ctx, &r))
            .transpose()?
            .unwrap_or_else(|| id.clone()),
        created_at: ts(col(row, "created_at")?),
        updated_at: ts(col(row, "updated_at")?),
        run_at: opt_ts(col(row, "run_at")?),
        deadline: opt_ts(col(row, "deadline")?),
        finished_at: opt_ts(col(row, "finished_at")?),
        worker_id: worker_id
            .map(|w| parsed::<WorkerId>("worker_id", ctx, &w))
            .transpose()?,
        lease_expires_at: opt_ts(col(row, "lease_expires_at")?),
        result: col(row, "result")?,
        last_error: col(row, "last_error")?,
        cancel_reason: col(row, "cancel_reason")?,
        waiting_on: rules::blocked_on(
            state,
            in_range("open_children", ctx, col(row, "open_children")?)?,
            dependencies(row, ctx)?,
        ),
        suspension: rules::stored_suspension(
            ctx,
            state,
            col::<Option<String>>(row, "wait_points")?.as_deref(),
            col::<Option<String>>(row, "wait_condition")?.as_deref(),
            col(row, "wait_timeout_at")?,
            col::<Option<String>>(row, "on_timeout")?.as_deref(),
        )?,
        pause: rules::stored_pause(
            ctx,
            state,
            col::<Option<String>>(row, "paused_from")?.as_deref(),
            col::<Option<String>>(row, "paused_via")?.as_deref(),
        )?,
        custom_status: col(row, "custom_status")?,
        status_version: in_range("status_version", ctx, col(row, "status_version")?)?,
        progress_seq: in_range("progress_seq", ctx, col(row, "progress_seq")?)?,
        id,
    };
    snapshot.check_consistent()?;
    Ok(snapshot)
}

/// An execution's dependency policy and counters (total, completed,
/// finished otherwise); `None` without dependencies.
pub fn dependencies(
    row: &SqliteRow,
    ctx: &str,
) -> Result<Option<(DependencyPolicy, u32, u32, u32)>, EngineError> {
    let Some(policy) = col::<Option<String>>(row, "dep_policy")? else {
        return Ok(None);
    };
    Ok(Some((
        parsed::<DependencyPolicy>("dep_policy", ctx, &policy)?,
        in_range("deps_total", ctx, col(row, "deps_total")?)?,
        in_range("deps_done", ctx, col(row, "deps_done")?)?,
        in_range("deps_bad", ctx, col(row, "deps_bad")?)?,
    )))
}

/// The stored `has_dependents` flag.
pub fn has_dependents(row: &SqliteRow) -> Result<bool, EngineError> {
    match col::<i64>(row, "has_dependents")? {
        0 => Ok(false),
        1 => Ok(true),
        other => Err(EngineError::corruption(format!(
            "column has_dependents: {other} is neither 0 nor 1"
        ))),
    }
}

/// One attempt from a row selected with the `attempt_columns!()` list.
pub fn attempt(row: &SqliteRow, id: &ExecutionId) -> Result<AttemptRecord, EngineError> {
    let ctx = format!("execution {id} attempt");
    let ctx = ctx.as_str();
    let outcome: Option<String> = col(row, "outcome")?;
    Ok(AttemptRecord {
        number: in_range::<u32>("number", ctx, col(row, "number")?)?,
        worker_id: parsed("worker_id", ctx, &col::<String>(row, "worker_id")?)?,
        started_at: ts(col(row, "started_at")?),
        ended_at: opt_ts(col(row, "ended_at")?),
        outcome: outcome
            .map(|o| parsed::<AttemptOutcome>("outcome", ctx, &o))
            .transpose()?,
        error: col(row, "error")?,
    })
}

/// Parses a stored attempt outcome.
pub fn outcome(ctx: &str, raw: &str) -> Result<AttemptOutcome, EngineError> {
    parsed("outcome", ctx, raw)
}

/// The attempt a lease names, from a row with `nonce` and `outcome`
/// columns; a NULL `nonce` (no such attempt) is `None`.
pub fn attempt_facts(
    row: &SqliteRow,
    ctx: &str,
) -> Result<Option<baton_core::raw::rules::AttemptFacts>, EngineError> {
    let Some(nonce) = col::<Option<i64>>(row, "nonce")? else {
        return Ok(None);
    };
    let outcome = col::<Option<String>>(row, "outcome")?
        .map(|o| outcome(ctx, &o))
        .transpose()?;
    Ok(Some(baton_core::raw::rules::AttemptFacts {
        nonce: nonce as u64,
        outcome,
    }))
}

/// A flow member from a row with `uuid`, `partition`, `parent`, `state`
/// and `kind` columns.
pub fn tree_node(row: &SqliteRow, partitions: PartitionCount) -> Result<TreeNode, EngineError> {
    baton_core::raw::stored::tree_node(
        execution_id(row, partitions)?,
        col::<Option<String>>(row, "parent")?.as_deref(),
        &col::<String>(row, "state")?,
        &col::<String>(row, "kind")?,
    )
}

/// What a create needs of a parent, from a row with `namespace` and `root`
/// columns.
pub fn parent_facts(
    row: &SqliteRow,
    id: &ExecutionId,
) -> Result<baton_core::raw::rules::ParentFacts, EngineError> {
    baton_core::raw::stored::parent_facts(
        id,
        &col::<String>(row, "namespace")?,
        col::<Option<String>>(row, "root")?.as_deref(),
    )
}
