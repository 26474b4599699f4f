//! Memory: `record_step` (one `FCALL` of `baton_record_step`) and `steps`,
//! a plain read of an execution's step hash.
//!
//! An execution's steps live in the hash `st:<uuid>` of its partition, step
//! name → one MessagePack map: `s` status, `o` output (done only), `e` the
//! last failed record's error (absent: none), `a` the attempt that wrote
//! it, `f` failed records so far, `r` recorded_at (ms). The record's `sn`
//! counts them, so a claim reads the hash only for an execution with steps.

use std::str::FromStr;

use baton_core::{StepName, StepOutcome, StepRecord, StepStatus};

use crate::*;

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
    let mut c = Server::fcall("baton_record_step", &b.base(id.partition().get()));
    c.arg(id.uuid().simple().to_string())
        .arg(lease.attempt())
        .arg(hex_nonce(lease.nonce()))
        .arg(b.now().as_millis())
        .arg(name.as_str())
        .arg(status.as_str())
        .arg(value)
        .arg(limits.max_steps);
    // Nothing follows the call (no index, no wake-up), so a caller giving
    // up loses nothing: it runs inline, not detached.
    let mut items = array(b.run(&c).await?)?.into_iter();
    let tag = items
        .next()
        .ok_or_else(|| read::corrupt("an empty record_step reply"))?;
    match text(&tag)? {
        "ok" => {
            let step = items
                .next()
                .ok_or_else(|| read::corrupt("a record_step reply without its step"))?;
            decode_step(id, name, bytes(&step)?)
        }
        other => Err(crate::lease::refusal(id, "record_step", other, items)?),
    }
}

pub(crate) async fn steps(b: &ValkeyBackend, id: &ExecutionId) -> Result<Vec<StepRecord>> {
    b.check_id(id)?;
    let base = b.base(id.partition().get());
    let uuid = id.uuid().simple();
    // The steps first: an execution trimmed after they were read is not
    // found, and a step recorded in between is simply not in the answer.
    let mut all = redis::cmd("HGETALL");
    all.arg(format!("{base}:st:{uuid}"));
    let mut exists = redis::cmd("EXISTS");
    exists.arg(format!("{base}:e:{uuid}"));
    let (all, exists) = b.inner.server.run_two(all, exists).await?;
    if int(&exists)? == 0 {
        return Err(EngineError::NotFound { id: id.clone() });
    }
    let mut out = decode_steps(id, all)?;
    // A hash has no order; every backend answers by name.
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Every step of an `HGETALL` of an execution's step hash, in no order.
pub(crate) fn decode_steps(id: &ExecutionId, all: Value) -> Result<Vec<StepRecord>> {
    // RESP3 answers a map, RESP2 a flat array of name, step pairs.
    let items = match all {
        Value::Map(pairs) => pairs.into_iter().flat_map(|(k, v)| [k, v]).collect(),
        other => array(other)?,
    };
    if items.len() % 2 != 0 {
        return Err(read::corrupt("a step hash answered an odd number of items"));
    }
    let mut out = Vec::with_capacity(items.len() / 2);
    let mut items = items.into_iter();
    while let (Some(name), Some(step)) = (items.next(), items.next()) {
        let name = text(&name)?;
        let name = StepName::from_str(name).map_err(|_| {
            EngineError::corruption(format!("execution {id}: a step named {name:?}"))
        })?;
        out.push(decode_step(id, name, bytes(&step)?)?);
    }
    Ok(out)
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
