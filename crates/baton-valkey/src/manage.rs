//! Deletes: one unit of [`AdminBackend::delete_units`](baton_core::AdminBackend::delete_units)
//! in one `baton_delete` call on the partition of its ids.

use baton_core::raw::rules;
use baton_core::{DeletePart, ExecutionId, Result};

use crate::*;

/// Runs to completion in a task of its own (see [`detached`]): a unit
/// whose cancel released a parent still raises the hint of its lane.
pub(crate) async fn delete_units(
    b: &ValkeyBackend,
    ids: &[ExecutionId],
    force: bool,
) -> Result<Vec<Result<DeletePart>>> {
    let Some(partition) = baton_core::raw::delete::check_unit(ids, b.inner.partitions)? else {
        return Ok(Vec::new());
    };
    let (b, ids) = (b.clone(), ids.to_vec());
    detached(async move { unit(&b, partition, &ids, force).await }).await
}

async fn unit(
    b: &ValkeyBackend,
    partition: PartitionId,
    ids: &[ExecutionId],
    force: bool,
) -> Result<Vec<Result<DeletePart>>> {
    let limits = &b.inner.limits;
    let reason = rules::DELETE_REASON;
    let mut c = Server::fcall("baton_delete", &b.base(partition.get()));
    c.arg(b.now().as_millis())
        .arg(if force { "1" } else { "0" })
        .arg(limits.cascade_budget)
        .arg(reason);
    for id in ids {
        c.arg(id.uuid().simple().to_string())
            .arg(rules::cascade_reason(limits, id, Some(reason)));
    }
    let mut reply = array(b.run(&c).await?)?.into_iter();
    let woken = reply
        .next()
        .ok_or_else(|| read::corrupt("a delete reply without its woken lanes"))?;
    let woken = b.woken_from(partition.get(), woken)?;
    let parts: Vec<Value> = reply.collect();
    if parts.len() != ids.len() {
        return Err(read::corrupt(format_args!(
            "a delete reply with {} parts for {} ids",
            parts.len(),
            ids.len()
        )));
    }
    let out = ids
        .iter()
        .zip(parts)
        .map(|(id, part)| self::part(id, part))
        .collect::<Result<Vec<_>>>()?;
    b.announce(woken).await?;
    Ok(out)
}

/// One id's part of a `baton_delete` reply: what the unit did to it, or
/// the error that refused it (the outer `Err` is a reply this build cannot
/// read).
fn part(id: &ExecutionId, part: Value) -> Result<Result<DeletePart>> {
    let mut items = array(part)?.into_iter();
    let tag = items
        .next()
        .ok_or_else(|| read::corrupt(format_args!("an empty delete part for {id}")))?;
    let tag = text(&tag)?;
    if tag != "ok" {
        return Ok(Err(crate::lease::refusal(id, "delete", tag, items)?));
    }
    let (Some(removed), Some(done), Some(cancelled)) = (items.next(), items.next(), items.next())
    else {
        return Err(read::corrupt(format_args!("a short delete part for {id}")));
    };
    let removed = u64::try_from(int(&removed)?)
        .map_err(|_| read::corrupt(format_args!("a negative removed count for {id}")))?;
    Ok(Ok(DeletePart {
        removed,
        done: int(&done)? == 1,
        cancelled: int(&cancelled)? == 1,
    }))
}
