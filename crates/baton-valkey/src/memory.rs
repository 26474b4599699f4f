//! Memory: `record_step`, `set_state`, `set_status` and `append_progress`
//! (one fenced `FCALL` each), the plain reads `steps`, `state` and
//! `progress`, and `wait_for_change`.
//!
//! An execution's steps live in the hash `st:<uuid>` of its partition, step
//! name → one MessagePack map: `s` status, `o` output (done only), `e` the
//! last failed record's error (absent: none), `a` the attempt that wrote
//! it, `f` failed records so far, `r` recorded_at (ms). The record's `sn`
//! counts them, so a claim reads the hash only for an execution with steps.
//!
//! Its key-value state lives in the hash `kv:<uuid>`, key → a map `v`
//! value, `a` attempt, `u` updated_at (ms), counted by the record's `kc`;
//! its custom status in the record (`cs`, version `cv`); its progress
//! frames in the sorted set `pg:<uuid>` scored by number, each a map `s`
//! number, `t` appended at (ms), `a` attempt, `f` frame, the record's `pq`
//! holding the last number.
//!
//! A reader waiting for a change marks the execution watched (`watch`, see
//! `lua/watch.lua`); the functions that change what it follows publish the
//! execution's id on `<prefix>:changed` while the mark holds, and the
//! instance's subscription (started by its first reader) wakes its readers.

use std::str::FromStr;
use std::time::Duration;

use baton_core::{
    ChangeMark, ProgressFrame, StateEntry, StateKey, StepName, StepOutcome, StepRecord, StepStatus,
};

use crate::*;

/// How long a watch mark outlives the wait that set it: it covers the time
/// between setting the mark and the wait's start, and clocks of instances
/// that differ by a few seconds. A mark that outlives its reader costs at
/// most an announcement nobody reads.
const WATCH_SLACK: Duration = Duration::from_secs(10);

pub(crate) async fn record_step(
    b: &ValkeyBackend,
    lease: &LeaseToken,
    name: StepName,
    outcome: StepOutcome,
) -> Result<StepRecord> {
    let limits = &b.inner.limits;
    outcome.validate(limits)?;
    let id = lease.execution_id();
    b.check_id(id)?;
    // The error is clipped here rather than in Lua: the Lua helper cuts
    // bytes, which could split a character of a user's text.
    let (status, value) = match outcome {
        StepOutcome::Done(output) => (StepStatus::Done, output),
        StepOutcome::Failed(error) => (StepStatus::Failed, limits.clip_text(error).into_bytes()),
    };
    let mut c = fenced_call(b, "baton_record_step", lease);
    c.arg(name.as_str())
        .arg(status.as_str())
        .arg(value)
        .arg(limits.max_steps);
    let step = answer(b, id, "record_step", &c, "its step").await?;
    decode_step(id, name, bytes(&step)?)
}

/// The call of fenced function `function` under `lease`: its arguments
/// start with uuid, attempt, nonce and now (ms); the caller adds the rest.
fn fenced_call(b: &ValkeyBackend, function: &str, lease: &LeaseToken) -> Cmd {
    let id = lease.execution_id();
    let mut c = Server::fcall(function, &b.base(id.partition().get()));
    c.arg(id.uuid().simple().to_string())
        .arg(lease.attempt())
        .arg(hex_nonce(lease.nonce()))
        .arg(b.now().as_millis());
    c
}

/// Runs a fenced call of `operation` and answers the value of its `ok`
/// reply (`what`, for a corrupt reply without it), or the error its refusal
/// stands for. Nothing follows these calls (no index, no hint), so a caller
/// giving up loses nothing: they run inline, not detached.
async fn answer(
    b: &ValkeyBackend,
    id: &ExecutionId,
    operation: &'static str,
    c: &Cmd,
    what: &str,
) -> Result<Value> {
    let mut items = array(b.run(c).await?)?.into_iter();
    let tag = items
        .next()
        .ok_or_else(|| read::corrupt(format_args!("an empty {operation} reply")))?;
    match text(&tag)? {
        "ok" => items
            .next()
            .ok_or_else(|| read::corrupt(format_args!("a {operation} reply without {what}"))),
        other => Err(crate::lease::refusal(id, operation, other, items)?),
    }
}

/// A number a fenced call answered (a version, a frame number).
fn number(v: &Value, what: &str) -> Result<u64> {
    u64::try_from(int(v)?).map_err(|_| read::corrupt(format_args!("a negative {what}")))
}

pub(crate) async fn steps(b: &ValkeyBackend, id: &ExecutionId) -> Result<Vec<StepRecord>> {
    let all = read_existing(b, id, "HGETALL", "st", &[]).await?;
    let mut out = decode_steps(id, all)?;
    // A hash has no order; every backend answers by name.
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Runs `command` on key `<what>:<uuid>` of execution `id`, with `args`
/// after the key, then checks the execution exists, in one pipeline. The
/// read goes first: an execution trimmed after it is not found, and a
/// write landing in between is simply not in the answer.
async fn read_existing(
    b: &ValkeyBackend,
    id: &ExecutionId,
    command: &str,
    what: &str,
    args: &[&str],
) -> Result<Value> {
    b.check_id(id)?;
    let base = b.base(id.partition().get());
    let uuid = id.uuid().simple();
    let mut read = redis::cmd(command);
    read.arg(format!("{base}:{what}:{uuid}"));
    for a in args {
        read.arg(*a);
    }
    let mut exists = redis::cmd("EXISTS");
    exists.arg(format!("{base}:e:{uuid}"));
    let (read, exists) = b.inner.server.run_two(read, exists).await?;
    if int(&exists)? == 0 {
        return Err(EngineError::NotFound { id: id.clone() });
    }
    Ok(read)
}

/// The field, value pairs of an `HGETALL` reply: RESP3 answers a map,
/// RESP2 a flat array of pairs.
pub(crate) fn hash_pairs(all: Value, what: &str) -> Result<Vec<(Value, Value)>> {
    if let Value::Map(pairs) = all {
        return Ok(pairs);
    }
    let items = array(all)?;
    if items.len() % 2 != 0 {
        return Err(read::corrupt(format_args!(
            "a {what} hash answered an odd number of items"
        )));
    }
    let mut out = Vec::with_capacity(items.len() / 2);
    let mut items = items.into_iter();
    while let (Some(k), Some(v)) = (items.next(), items.next()) {
        out.push((k, v));
    }
    Ok(out)
}

/// Every step of an `HGETALL` of an execution's step hash, in no order.
pub(crate) fn decode_steps(id: &ExecutionId, all: Value) -> Result<Vec<StepRecord>> {
    hash_pairs(all, "step")?
        .into_iter()
        .map(|(name, step)| {
            let name = text(&name)?;
            let name = StepName::from_str(name).map_err(|_| {
                EngineError::corruption(format!("execution {id}: a step named {name:?}"))
            })?;
            decode_step(id, name, bytes(&step)?)
        })
        .collect()
}

/// One stored step (its map, see the module's docs).
fn decode_step(id: &ExecutionId, name: StepName, raw: &[u8]) -> Result<StepRecord> {
    let ctx = format!("execution {id}: step {name}");
    let ctx = ctx.as_str();
    let f = Fields::from_record(raw)?;
    let status: StepStatus = f.parsed(ctx, "s")?;
    let output = f.raw("o").map(<[u8]>::to_vec);
    if (status == StepStatus::Done) != output.is_some() {
        return Err(EngineError::corruption(format!(
            "{ctx}: a {status} step {} an output",
            if output.is_some() { "with" } else { "without" }
        )));
    }
    Ok(StepRecord {
        status,
        output,
        error: f.opt_str(ctx, "e")?.map(str::to_owned),
        attempt: f.parsed(ctx, "a")?,
        failures: f.parsed(ctx, "f")?,
        recorded_at: Timestamp::from_millis(f.parsed(ctx, "r")?),
        name,
    })
}

pub(crate) async fn set_state(
    b: &ValkeyBackend,
    lease: &LeaseToken,
    key: StateKey,
    value: Option<Vec<u8>>,
) -> Result<()> {
    let limits = &b.inner.limits;
    if let Some(v) = &value {
        limits.check_value("value", v.len())?;
    }
    let id = lease.execution_id();
    b.check_id(id)?;
    let (op, value) = match value {
        Some(v) => ("set", v),
        None => ("clear", Vec::new()),
    };
    let mut c = fenced_call(b, "baton_set_state", lease);
    c.arg(key.as_str())
        .arg(op)
        .arg(value)
        .arg(limits.max_state_keys);
    let mut items = array(b.run(&c).await?)?.into_iter();
    let tag = items
        .next()
        .ok_or_else(|| read::corrupt("an empty set_state reply"))?;
    match text(&tag)? {
        "ok" => Ok(()),
        other => Err(crate::lease::refusal(id, "set_state", other, items)?),
    }
}

pub(crate) async fn set_status(
    b: &ValkeyBackend,
    lease: &LeaseToken,
    status: Vec<u8>,
) -> Result<u64> {
    b.inner.limits.check_value("status", status.len())?;
    let id = lease.execution_id();
    b.check_id(id)?;
    let mut c = fenced_call(b, "baton_set_status", lease);
    c.arg(status);
    let version = answer(b, id, "set_status", &c, "its version").await?;
    number(&version, "status version")
}

pub(crate) async fn append_progress(
    b: &ValkeyBackend,
    lease: &LeaseToken,
    frame: Vec<u8>,
) -> Result<u64> {
    let limits = &b.inner.limits;
    limits.check_value("frame", frame.len())?;
    let id = lease.execution_id();
    b.check_id(id)?;
    let mut c = fenced_call(b, "baton_append_progress", lease);
    c.arg(frame).arg(limits.max_progress_frames);
    let seq = answer(b, id, "append_progress", &c, "its number").await?;
    number(&seq, "progress frame number")
}

pub(crate) async fn state(b: &ValkeyBackend, id: &ExecutionId) -> Result<Vec<StateEntry>> {
    let all = read_existing(b, id, "HGETALL", "kv", &[]).await?;
    let mut out = hash_pairs(all, "state")?
        .into_iter()
        .map(|(key, entry)| {
            let key = text(&key)?;
            let key = StateKey::from_str(key).map_err(|_| {
                EngineError::corruption(format!("execution {id}: a state key {key:?}"))
            })?;
            let ctx = format!("execution {id}: state key {key}");
            let ctx = ctx.as_str();
            let f = Fields::from_record(bytes(&entry)?)?;
            Ok(StateEntry {
                value: f
                    .raw("v")
                    .map(<[u8]>::to_vec)
                    .ok_or_else(|| EngineError::corruption(format!("{ctx}: field v is missing")))?,
                attempt: f.parsed(ctx, "a")?,
                updated_at: Timestamp::from_millis(f.parsed(ctx, "u")?),
                key,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    // A hash has no order; every backend answers by key.
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

pub(crate) async fn progress(
    b: &ValkeyBackend,
    id: &ExecutionId,
    after: u64,
    limit: usize,
) -> Result<Vec<ProgressFrame>> {
    Page::first(limit).validate()?;
    let min = format!("({after}");
    let count = limit.to_string();
    let args = [
        min.as_str(),
        "+inf",
        "BYSCORE",
        "LIMIT",
        "0",
        count.as_str(),
    ];
    let frames = read_existing(b, id, "ZRANGE", "pg", &args).await?;
    let ctx = format!("execution {id}: a progress frame");
    let ctx = ctx.as_str();
    array(frames)?
        .iter()
        .map(|frame| {
            let f = Fields::from_record(bytes(frame)?)?;
            Ok(ProgressFrame {
                seq: f.parsed(ctx, "s")?,
                at: Timestamp::from_millis(f.parsed(ctx, "t")?),
                attempt: f.parsed(ctx, "a")?,
                frame: f
                    .raw("f")
                    .map(<[u8]>::to_vec)
                    .ok_or_else(|| EngineError::corruption(format!("{ctx}: field f is missing")))?,
            })
        })
        .collect()
}

pub(crate) async fn wait_for_change(
    b: &ValkeyBackend,
    id: &ExecutionId,
    seen: ChangeMark,
    timeout: Duration,
) -> Result<ExecutionSnapshot> {
    b.check_id(id)?;
    let arm = async {
        // Subscribed before (or while) the mark is set; announcements made
        // before the subscription holds are covered by the wake-up of every
        // reader that follows it (see `spawn_change_listener`).
        // Started again if it ended (the runtime that spawned it is gone).
        if let Ok(mut task) = b.inner.change_listener.lock()
            && task.as_ref().is_none_or(|t| t.is_finished())
        {
            *task = Some(wake::spawn_change_listener(
                b.inner.listen_node.clone(),
                b.change_channel(),
                Arc::clone(&b.inner.watchers),
            ));
        }
        let until = b.now().saturating_add(timeout).saturating_add(WATCH_SLACK);
        let mut c = Server::fcall("baton_watch", &b.base(id.partition().get()));
        c.arg(id.uuid().simple().to_string()).arg(until.as_millis());
        if int(&b.run(&c).await?)? == 0 {
            return Err(EngineError::NotFound { id: id.clone() });
        }
        Ok(())
    };
    baton_core::raw::wait_for_change(&b.inner.watchers, id, seen, timeout, arm, || {
        crate::admin::describe(b, id)
    })
    .await
}
