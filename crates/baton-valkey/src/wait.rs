//! Waiting without a worker: `release`, `suspend` and `signal` (one
//! `FCALL` each), the timeout pass (`baton_timeout`), and `signals`, a
//! plain read of an execution's signal list.
//!
//! An execution's signals live in the list `sg:<uuid>` of its partition,
//! one MessagePack map per signal in arrival order (element `seq - 1`): `n`
//! name, `p` payload, `r` received_at (ms), `k` idempotency key and `w` the
//! wait that consumed it (both absent when none).

use baton_core::raw::{rules, stored};
use baton_core::{NewSignal, Signal, SignalOutcome, SuspendOutcome, SuspendRequest};

use crate::*;

/// Runs to completion in a task of its own (see [`detached`]).
pub(crate) async fn release(b: &ValkeyBackend, lease: &LeaseToken) -> Result<ExecutionSnapshot> {
    let (b, lease) = (b.clone(), lease.clone());
    detached(async move {
        let id = lease.execution_id();
        b.check_id(id)?;
        let mut c = Server::fcall("baton_release", &b.base(id.partition().get()));
        c.arg(id.uuid().simple().to_string())
            .arg(lease.attempt())
            .arg(hex_nonce(lease.nonce()))
            .arg(b.now().as_millis());
        let (reply, payload) = b.with_payload(id, c).await?;
        b.outcome(id, "release", reply, payload).await
    })
    .await
}

/// Runs to completion in a task of its own (see [`detached`]).
pub(crate) async fn suspend(
    b: &ValkeyBackend,
    lease: &LeaseToken,
    request: SuspendRequest,
) -> Result<SuspendOutcome> {
    request.validate()?;
    let (b, lease) = (b.clone(), lease.clone());
    detached(async move { suspend_now(&b, &lease, request).await }).await
}

async fn suspend_now(
    b: &ValkeyBackend,
    lease: &LeaseToken,
    request: SuspendRequest,
) -> Result<SuspendOutcome> {
    let id = lease.execution_id();
    b.check_id(id)?;
    let now = b.now();
    let timeout_at = request.timeout.map(|t| now.saturating_add(t));
    let mut c = Server::fcall("baton_suspend", &b.base(id.partition().get()));
    c.arg(id.uuid().simple().to_string())
        .arg(lease.attempt())
        .arg(hex_nonce(lease.nonce()))
        .arg(now.as_millis())
        .arg(rules::format_waitpoints(&request.waitpoints))
        .arg(request.condition.as_str())
        .arg(ms(timeout_at))
        .arg(request.on_timeout.as_str())
        .arg(b.inner.limits.max_waits);
    let (reply, payload) = b.with_payload(id, c).await?;
    // An answer is { 'ok', woken, record, kind, seq, signal, ... }: what
    // follows the record is the suspend's own, the rest reads like every
    // lease operation's.
    let mut items = array(reply)?;
    let mut consumed = None;
    if matches!(items.first().map(text), Some(Ok("ok"))) {
        let mut rest = items.split_off(items.len().min(3)).into_iter();
        let Some(kind) = rest.next() else {
            return Err(read::corrupt("a suspend reply without its kind"));
        };
        match text(&kind)? {
            "suspended" => {}
            "satisfied" => {
                let mut signals = Vec::new();
                while let (Some(seq), Some(raw)) = (rest.next(), rest.next()) {
                    let seq = stored::in_range::<u32>("signal seq", "suspend", int(&seq)?)?;
                    signals.push(decode_signal(id, seq, bytes(&raw)?)?);
                }
                consumed = Some(signals);
            }
            other => return Err(read::corrupt(format_args!("suspend kind {other:?}"))),
        }
    }
    let snapshot = b
        .outcome(id, "suspend", Value::Array(items), payload)
        .await?;
    Ok(match consumed {
        None => SuspendOutcome::Suspended(snapshot),
        Some(signals) => SuspendOutcome::Satisfied { snapshot, signals },
    })
}

/// Runs to completion in a task of its own (see [`detached`]).
pub(crate) async fn signal(
    b: &ValkeyBackend,
    id: &ExecutionId,
    signal: NewSignal,
) -> Result<SignalOutcome> {
    b.check_id(id)?;
    signal.validate(&b.inner.limits)?;
    let (b, id) = (b.clone(), id.clone());
    detached(async move {
        let mut c = Server::fcall("baton_signal", &b.base(id.partition().get()));
        c.arg(id.uuid().simple().to_string())
            .arg(signal.name.as_str())
            .arg(signal.payload)
            .arg(
                signal
                    .idempotency_key
                    .as_ref()
                    .map(|k| k.as_str())
                    .unwrap_or(""),
            )
            .arg(b.now().as_millis())
            .arg(b.inner.limits.max_signals);
        let mut items = array(b.run(&c).await?)?.into_iter();
        let tag = items
            .next()
            .ok_or_else(|| read::corrupt("an empty signal reply"))?;
        match text(&tag)? {
            "ok" => {
                let (Some(outcome), Some(woken)) = (items.next(), items.next()) else {
                    return Err(read::corrupt("a short signal reply"));
                };
                let outcome: SignalOutcome = text(&outcome)?
                    .parse()
                    .map_err(|_| read::corrupt("a signal outcome Baton does not know"))?;
                let woken = b.woken_from(id.partition().get(), woken)?;
                b.announce(woken).await?;
                Ok(outcome)
            }
            "not_found" => Err(EngineError::NotFound { id }),
            "conflict" => {
                let (Some(state), Some(reason)) = (items.next(), items.next()) else {
                    return Err(read::corrupt("a short signal conflict"));
                };
                Err(EngineError::Conflict {
                    state: text(&state)?
                        .parse()
                        .map_err(|_| read::corrupt("a conflict naming an unknown state"))?,
                    reason: text(&reason)?.to_owned(),
                    operation: "signal",
                    id,
                })
            }
            other => Err(read::corrupt(format_args!("signal reply tag {other:?}"))),
        }
    })
    .await
}

/// Runs to completion in a task of its own (see [`detached`]).
pub(crate) async fn timeout_due(
    b: &ValkeyBackend,
    partition: PartitionId,
    limit: usize,
) -> Result<ScanReport> {
    let b = b.clone();
    detached(async move {
        b.inner.partitions.check_scan(partition, limit)?;
        let p = partition.get();
        let mut c = Server::fcall("baton_timeout", &b.base(p));
        c.arg(b.now().as_millis())
            .arg(limit)
            .arg(b.inner.limits.max_error_bytes)
            .arg(b.inner.limits.cascade_budget)
            .arg(format!("cancelled with its ancestor {{p:{p}}}-"));
        let reply = b.run(&c).await?;
        b.scan_report(p, reply).await
    })
    .await
}

pub(crate) async fn signals(b: &ValkeyBackend, id: &ExecutionId) -> Result<Vec<Signal>> {
    b.check_id(id)?;
    let base = b.base(id.partition().get());
    let uuid = id.uuid().simple();
    // The list first: an execution trimmed after it was read is not found,
    // and one that receives a signal in between answers without it.
    let mut list = redis::cmd("LRANGE");
    list.arg(format!("{base}:sg:{uuid}")).arg(0).arg(-1);
    let mut exists = redis::cmd("EXISTS");
    exists.arg(format!("{base}:e:{uuid}"));
    let (list, exists) = b.inner.server.run_two(list, exists).await?;
    if int(&exists)? == 0 {
        return Err(EngineError::NotFound { id: id.clone() });
    }
    decode_signals(id, list, false)
}

/// The signals of a `LRANGE` of an execution's whole signal list, by seq;
/// with `consumed_only` only those a wait consumed.
pub(crate) fn decode_signals(
    id: &ExecutionId,
    list: Value,
    consumed_only: bool,
) -> Result<Vec<Signal>> {
    let mut out = Vec::new();
    for (i, raw) in array(list)?.into_iter().enumerate() {
        let seq = u32::try_from(i + 1)
            .map_err(|_| EngineError::corruption(format!("execution {id}: too many signals")))?;
        let signal = decode_signal(id, seq, bytes(&raw)?)?;
        if !consumed_only || signal.wait.is_some() {
            out.push(signal);
        }
    }
    Ok(out)
}

/// One stored signal (its map, see the module's docs).
fn decode_signal(id: &ExecutionId, seq: u32, raw: &[u8]) -> Result<Signal> {
    let ctx = format!("execution {id}: signal {seq}");
    let ctx = ctx.as_str();
    let f = Fields::from_record(raw)?;
    Ok(Signal {
        seq,
        name: f.parsed(ctx, "n")?,
        payload: f.raw("p").map(<[u8]>::to_vec).unwrap_or_default(),
        idempotency_key: f.opt_parsed(ctx, "k")?,
        received_at: Timestamp::from_millis(f.parsed(ctx, "r")?),
        wait: f.opt_parsed(ctx, "w")?,
    })
}
