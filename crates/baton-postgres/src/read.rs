//! The normalising read adapter: the one place where stored Postgres values
//! become canonical `baton-core` types.
//!
//! Every conversion is total and strict. A value Baton never writes (an
//! unknown state literal, a malformed name, JSON of the wrong shape, a
//! partition that does not match the id's hash, broken cross-field
//! invariants) is a [`Corruption`](EngineError::Corruption) error naming the
//! execution and the column — never a default.
//!
//! Rows are read by column name, so every statement may answer
//! `executions.*` (`RETURNING *`, `SELECT *`).

use std::collections::{BTreeMap, BTreeSet};

use baton_core::raw::rules::StoredEvent;
use baton_core::raw::stored::{in_range, parse as parsed};
use baton_core::{
    AttemptOutcome, AttemptRecord, Backoff, CapabilityName, ChildKey, DependencyPolicy,
    EngineError, ExecutionEvent, ExecutionId, ExecutionSnapshot, IdempotencyKey, Kind, Lane,
    Namespace, PartitionCount, PartitionId, ProgressFrame, RetryPolicy, Signal, SignalName, State,
    StateEntry, StateKey, StepName, StepRecord, StepStatus, Suspension, TagKey, Timestamp,
    TreeNode, WorkerId,
};
use sqlx::Row;
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use uuid::Uuid;

/// Reads one column, turning a missing column or a type mismatch into
/// corruption.
pub fn col<'r, T>(row: &'r PgRow, name: &str) -> Result<T, EngineError>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
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

/// The id stored in a row's partition and uuid columns (named `partition`
/// and `uuid_col`).
pub fn id_from(
    row: &PgRow,
    uuid_col: &str,
    partitions: PartitionCount,
) -> Result<ExecutionId, EngineError> {
    let uuid: Uuid = col(row, uuid_col)?;
    let partition: i16 = col(row, "partition")?;
    let partition = u16::try_from(partition)
        .map_err(|_| EngineError::corruption(format!("execution {uuid}: partition {partition}")))?;
    ExecutionId::from_parts(uuid, PartitionId(partition), partitions)
}

/// The id stored in a row's `partition` and `uuid` columns.
pub fn execution_id(row: &PgRow, partitions: PartitionCount) -> Result<ExecutionId, EngineError> {
    id_from(row, "uuid", partitions)
}

/// Parses a stored state literal.
pub fn state(ctx: &str, raw: &str) -> Result<State, EngineError> {
    parsed("state", ctx, raw)
}

/// Parses a stored attempt outcome.
pub fn outcome(ctx: &str, raw: &str) -> Result<AttemptOutcome, EngineError> {
    parsed("outcome", ctx, raw)
}

/// The `tags` column: a JSON object of strings.
pub fn tags(row: &PgRow, ctx: &str) -> Result<BTreeMap<TagKey, String>, EngineError> {
    let Json(map): Json<BTreeMap<String, String>> = col(row, "tags")?;
    baton_core::raw::stored::tags(ctx, map)
}

/// The `required_caps` column: a JSON array of capability names.
pub fn capabilities(row: &PgRow, ctx: &str) -> Result<BTreeSet<CapabilityName>, EngineError> {
    let Json(list): Json<Vec<String>> = col(row, "required_caps")?;
    baton_core::raw::stored::capabilities(ctx, &list)
}

/// The nonce of the current lease, present exactly while `running`.
pub fn lease_nonce(row: &PgRow) -> Result<Option<u64>, EngineError> {
    Ok(col::<Option<i64>>(row, "lease_nonce")?.map(|n| n as u64))
}

/// A full snapshot from a row of `executions` (every column).
pub fn snapshot(row: &PgRow, partitions: PartitionCount) -> Result<ExecutionSnapshot, EngineError> {
    let id = execution_id(row, partitions)?;
    let ctx = format!("execution {id}");
    let ctx = ctx.as_str();
    let retry = RetryPolicy {
        max_attempts: in_range::<u32>(
            "max_attempts",
            ctx,
            col::<i32>(row, "max_attempts")?.into(),
        )?,
        backoff: Backoff {
            initial_ms: in_range::<u64>(
                "backoff_initial_ms",
                ctx,
                col(row, "backoff_initial_ms")?,
            )?,
            max_ms: in_range::<u64>("backoff_max_ms", ctx, col(row, "backoff_max_ms")?)?,
            multiplier: col(row, "backoff_multiplier")?,
            jitter: col(row, "backoff_jitter")?,
        },
    };
    let current = state(ctx, &col::<String>(row, "state")?)?;
    let snapshot = ExecutionSnapshot {
        session: baton_core::raw::rules::stored_session(
            ctx,
            col::<Option<String>>(row, "session")?.as_deref(),
        )?,
        version: baton_core::raw::rules::stored_version(
            ctx,
            col::<Option<String>>(row, "version")?.as_deref(),
        )?,
        namespace: parsed::<Namespace>("namespace", ctx, &col::<String>(row, "namespace")?)?,
        lane: parsed::<Lane>("lane", ctx, &col::<String>(row, "lane")?)?,
        kind: parsed::<Kind>("kind", ctx, &col::<String>(row, "kind")?)?,
        state: current,
        priority: col(row, "priority")?,
        payload: col(row, "payload")?,
        tags: tags(row, ctx)?,
        attempts: in_range::<u32>("attempts", ctx, col::<i32>(row, "attempts")?.into())?,
        retry,
        idempotency_key: col::<Option<String>>(row, "idempotency_key")?
            .map(|k| parsed::<IdempotencyKey>("idempotency_key", ctx, &k))
            .transpose()?,
        required_capabilities: capabilities(row, ctx)?,
        child_key: col::<Option<String>>(row, "child_key")?
            .map(|k| parsed::<ChildKey>("child_key", ctx, &k))
            .transpose()?,
        parent: col::<Option<String>>(row, "parent")?
            .map(|p| parsed::<ExecutionId>("parent", ctx, &p))
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
        worker_id: col::<Option<String>>(row, "worker_id")?
            .map(|w| parsed::<WorkerId>("worker_id", ctx, &w))
            .transpose()?,
        lease_expires_at: opt_ts(col(row, "lease_expires_at")?),
        result: col(row, "result")?,
        last_error: col(row, "last_error")?,
        cancel_reason: col(row, "cancel_reason")?,
        waiting_on: baton_core::raw::rules::blocked_on(
            current,
            in_range::<u64>(
                "open_children",
                ctx,
                col::<i32>(row, "open_children")?.into(),
            )?,
            dependencies(row, ctx)?,
        ),
        suspension: suspension(row, ctx)?,
        pause: baton_core::raw::rules::stored_pause(
            ctx,
            current,
            col::<Option<String>>(row, "paused_from")?.as_deref(),
            col::<Option<String>>(row, "paused_via")?.as_deref(),
        )?,
        custom_status: col(row, "custom_status")?,
        status_version: in_range::<u64>("status_version", ctx, col(row, "status_version")?)?,
        progress_seq: in_range::<u64>("progress_seq", ctx, col(row, "progress_seq")?)?,
        id,
    };
    snapshot.check_consistent()?;
    if (snapshot.state == State::Running) != lease_nonce(row)?.is_some() {
        return Err(EngineError::corruption(format!(
            "execution {}: state {} disagrees with its lease nonce",
            snapshot.id, snapshot.state
        )));
    }
    Ok(snapshot)
}

/// One attempt from a row of `attempt_history` (the columns of `attempts`).
pub fn attempt(row: &PgRow, id: &ExecutionId) -> Result<AttemptRecord, EngineError> {
    let ctx = format!("execution {id} attempt");
    let ctx = ctx.as_str();
    let outcome_raw: Option<String> = col(row, "outcome")?;
    Ok(AttemptRecord {
        number: in_range::<u32>("number", ctx, col::<i32>(row, "number")?.into())?,
        worker_id: parsed("worker_id", ctx, &col::<String>(row, "worker_id")?)?,
        started_at: ts(col(row, "started_at")?),
        ended_at: opt_ts(col(row, "ended_at")?),
        outcome: outcome_raw.map(|o| outcome(ctx, &o)).transpose()?,
        error: col(row, "error")?,
    })
}

/// One event of an execution's history, from a row with the columns of
/// `events` and the `outcome` of the attempt numbered as its `attempt`
/// (NULL when that attempt has not ended or does not exist).
pub fn event(row: &PgRow, ctx: &str) -> Result<ExecutionEvent, EngineError> {
    let ctx = format!("{ctx} events");
    let ctx = ctx.as_str();
    let outcome = col::<Option<String>>(row, "outcome")?
        .map(|o| outcome(ctx, &o))
        .transpose()?;
    let stored = StoredEvent {
        seq: in_range::<u64>("seq", ctx, col::<i64>(row, "seq")?)?,
        at: ts(col(row, "at")?),
        kind: col(row, "kind")?,
        from: col(row, "from_state")?,
        to: col(row, "to_state")?,
        attempt: in_range::<u32>("attempt", ctx, col::<i32>(row, "attempt")?.into())?,
        worker: col(row, "worker_id")?,
        detail: col(row, "detail")?,
    };
    baton_core::raw::rules::stored_event(ctx, stored, outcome)
}

/// The attempt a lease names, from a row with `nonce` and `outcome`
/// columns.
pub fn attempt_facts(
    row: &PgRow,
    ctx: &str,
) -> Result<baton_core::raw::rules::AttemptFacts, EngineError> {
    let outcome = col::<Option<String>>(row, "outcome")?
        .map(|o| outcome(ctx, &o))
        .transpose()?;
    Ok(baton_core::raw::rules::AttemptFacts {
        nonce: col::<i64>(row, "nonce")? as u64,
        outcome,
    })
}

/// A flow member from a row with `uuid`, `partition`, `parent`, `state`
/// and `kind` columns.
pub fn tree_node(row: &PgRow, partitions: PartitionCount) -> Result<TreeNode, EngineError> {
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
    row: &PgRow,
    id: &ExecutionId,
) -> Result<baton_core::raw::rules::ParentFacts, EngineError> {
    baton_core::raw::stored::parent_facts(
        id,
        &col::<String>(row, "namespace")?,
        col::<Option<String>>(row, "root")?.as_deref(),
    )
}

/// A dependent's policy and counters (total, completed, finished
/// otherwise), from a row with `dep_policy`, `deps_total`, `deps_done` and
/// `deps_bad` columns; `None` for an execution without dependencies.
pub fn dependencies(
    row: &PgRow,
    ctx: &str,
) -> Result<Option<(DependencyPolicy, u32, u32, u32)>, EngineError> {
    let Some(policy) = col::<Option<String>>(row, "dep_policy")? else {
        return Ok(None);
    };
    let policy = parsed::<DependencyPolicy>("dep_policy", ctx, &policy)?;
    let count = |name: &str| -> Result<u32, EngineError> {
        in_range::<u32>(name, ctx, col::<i32>(row, name)?.into())
    };
    Ok(Some((
        policy,
        count("deps_total")?,
        count("deps_done")?,
        count("deps_bad")?,
    )))
}

/// The `has_dependents` column: whether executions depend on this one.
pub fn has_dependents(row: &PgRow) -> Result<bool, EngineError> {
    col(row, "has_dependents")
}

/// The wait of a `suspended` execution from its wait columns; `None` in
/// every other state (the columns of an ended wait may remain).
pub fn suspension(row: &PgRow, ctx: &str) -> Result<Option<Suspension>, EngineError> {
    baton_core::raw::rules::stored_suspension(
        ctx,
        state(ctx, &col::<String>(row, "state")?)?,
        col::<Option<String>>(row, "wait_points")?.as_deref(),
        col::<Option<String>>(row, "wait_condition")?.as_deref(),
        col(row, "wait_timeout_at")?,
        col::<Option<String>>(row, "on_timeout")?.as_deref(),
    )
}

/// The wait log of an execution (`wait_log`: one letter per ended wait).
pub fn wait_log(row: &PgRow) -> Result<String, EngineError> {
    col(row, "wait_log")
}

/// One signal from a row of `signals`.
pub fn signal(row: &PgRow, ctx: &str) -> Result<Signal, EngineError> {
    let ctx = format!("{ctx} signal");
    let ctx = ctx.as_str();
    Ok(Signal {
        seq: in_range::<u32>("seq", ctx, col::<i32>(row, "seq")?.into())?,
        name: parsed::<SignalName>("name", ctx, &col::<String>(row, "name")?)?,
        payload: col(row, "payload")?,
        idempotency_key: col::<Option<String>>(row, "idempotency_key")?
            .map(|k| parsed::<IdempotencyKey>("idempotency_key", ctx, &k))
            .transpose()?,
        received_at: ts(col(row, "received_at")?),
        wait: col::<Option<i32>>(row, "wait")?
            .map(|w| in_range::<u32>("wait", ctx, w.into()))
            .transpose()?,
    })
}

/// One step from a row of `steps`.
pub fn step(row: &PgRow, ctx: &str) -> Result<StepRecord, EngineError> {
    let ctx = format!("{ctx} step");
    let ctx = ctx.as_str();
    Ok(StepRecord {
        name: parsed::<StepName>("name", ctx, &col::<String>(row, "name")?)?,
        status: parsed::<StepStatus>("status", ctx, &col::<String>(row, "status")?)?,
        output: col(row, "output")?,
        error: col(row, "error")?,
        attempt: in_range::<u32>("attempt", ctx, col::<i32>(row, "attempt")?.into())?,
        failures: in_range::<u32>("failures", ctx, col::<i32>(row, "failures")?.into())?,
        recorded_at: ts(col(row, "recorded_at")?),
    })
}

/// One entry of the key-value state from a row of `execution_state`.
pub fn state_entry(row: &PgRow, ctx: &str) -> Result<StateEntry, EngineError> {
    let ctx = format!("{ctx} state");
    let ctx = ctx.as_str();
    Ok(StateEntry {
        key: parsed::<StateKey>("key", ctx, &col::<String>(row, "key")?)?,
        value: col(row, "value")?,
        attempt: in_range::<u32>("attempt", ctx, col::<i32>(row, "attempt")?.into())?,
        updated_at: ts(col(row, "updated_at")?),
    })
}

/// One progress frame from a row of `progress_frames`.
pub fn progress_frame(row: &PgRow, ctx: &str) -> Result<ProgressFrame, EngineError> {
    let ctx = format!("{ctx} progress");
    let ctx = ctx.as_str();
    Ok(ProgressFrame {
        seq: in_range::<u64>("seq", ctx, col(row, "seq")?)?,
        at: ts(col(row, "at")?),
        attempt: in_range::<u32>("attempt", ctx, col::<i32>(row, "attempt")?.into())?,
        frame: col(row, "frame")?,
    })
}

/// The done steps' outputs a claimed row carries (`step_names` and
/// `step_outputs`, aligned; both NULL for an execution without any).
pub fn claimed_steps(row: &PgRow, ctx: &str) -> Result<BTreeMap<StepName, Vec<u8>>, EngineError> {
    let names: Option<Vec<String>> = col(row, "step_names")?;
    let outputs: Option<Vec<Option<Vec<u8>>>> = col(row, "step_outputs")?;
    let (names, outputs) = (names.unwrap_or_default(), outputs.unwrap_or_default());
    if names.len() != outputs.len() {
        return Err(EngineError::corruption(format!(
            "{ctx}: {} done step names but {} outputs",
            names.len(),
            outputs.len()
        )));
    }
    let ctx = format!("{ctx} step");
    names
        .into_iter()
        .zip(outputs)
        .map(|(name, output)| {
            let name = parsed::<StepName>("name", &ctx, &name)?;
            let output = output.ok_or_else(|| {
                EngineError::corruption(format!("{ctx} {name}: done without an output"))
            })?;
            Ok((name, output))
        })
        .collect()
}
