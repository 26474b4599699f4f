//! Deletes (one unit of [`AdminBackend::delete_units`](baton_core::AdminBackend::delete_units)
//! in one `baton_delete` call on the partition of its ids), the history
//! of an execution (the list `ev:<uuid>`, written by the functions that
//! change it; see `lua/common.lua`) and the setting of a namespace that
//! turns it on (the field `<ns>` of every partition's hash `hx`, read by
//! `baton_create`).

use baton_core::raw::rules::{self, StoredEvent};
use baton_core::{DeletePart, ExecutionEvent, ExecutionId, Result};

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

/// The history and the record in one transaction, so every attempt an
/// event names is the record's as it was then; the list holds at most
/// `ExecutionEvent::MAX_KEPT` events, so it is read whole.
pub(crate) async fn events(
    b: &ValkeyBackend,
    id: &ExecutionId,
    after: u64,
    limit: usize,
) -> Result<Vec<ExecutionEvent>> {
    Page::first(limit).validate()?;
    b.check_id(id)?;
    let base = b.base(id.partition().get());
    let uuid = id.uuid().simple();
    let mut pipe = redis::pipe();
    pipe.atomic();
    pipe.cmd("LRANGE")
        .arg(format!("{base}:ev:{uuid}"))
        .arg(0)
        .arg(-1);
    pipe.cmd("GET").arg(format!("{base}:e:{uuid}"));
    let mut replies = b.inner.server.run_pipe(&pipe).await?.into_iter();
    let (Some(list), Some(record)) = (replies.next(), replies.next()) else {
        return Err(read::corrupt(
            "a history read with fewer replies than commands",
        ));
    };
    let fields = match record {
        Value::Nil => return Err(EngineError::NotFound { id: id.clone() }),
        other => Fields::from_record(bytes(&other)?)?,
    };
    let attempts = read::attempts(id, &fields)?;
    let ctx = format!("execution {id} events");
    let mut out = Vec::new();
    for raw in array(list)? {
        if out.len() >= limit {
            break;
        }
        let f = Fields::from_record(bytes(&raw)?)?;
        let seq: u64 = f.parsed(&ctx, "s")?;
        if seq <= after {
            continue;
        }
        let attempt: u32 = f.parsed(&ctx, "a")?;
        let outcome = attempts
            .iter()
            .find(|a| a.number == attempt)
            .and_then(|a| a.outcome);
        let text =
            |k: &str| -> Result<Option<String>> { Ok(f.opt_str(&ctx, k)?.map(str::to_owned)) };
        let stored = StoredEvent {
            seq,
            at: Timestamp::from_millis(f.parsed(&ctx, "t")?),
            kind: text("k")?,
            from: text("f")?,
            to: text("o")?,
            attempt,
            worker: text("w")?,
            detail: text("d")?,
        };
        out.push(rules::stored_event(&ctx, stored, outcome)?);
    }
    Ok(out)
}

/// One `baton_audit` call per partition of `ids`.
pub(crate) async fn audit(b: &ValkeyBackend, ids: &[ExecutionId], detail: &str) -> Result<()> {
    baton_core::raw::check_describe_many(ids)?;
    let mut by_partition: std::collections::BTreeMap<u16, Vec<&ExecutionId>> =
        std::collections::BTreeMap::new();
    for id in ids {
        id.check_partition(b.inner.partitions)?;
        by_partition
            .entry(id.partition().get())
            .or_default()
            .push(id);
    }
    let now = b.now().as_millis();
    let detail = rules::event_detail(detail);
    for (partition, ids) in by_partition {
        let mut c = Server::fcall("baton_audit", &b.base(partition));
        c.arg(now).arg(&detail);
        for id in ids {
            c.arg(id.uuid().simple().to_string());
        }
        b.run(&c).await?;
    }
    Ok(())
}

/// The hash of the namespaces whose history is on in `partition` (`hx`:
/// namespace → `1`), read by every `baton_create` of that partition.
fn history_flags(b: &ValkeyBackend, partition: u16) -> String {
    format!("{}:hx", b.base(partition))
}

/// Turns the history of `namespace` on or off: its field is written to
/// (or removed from) every partition's `hx`, one after another in
/// partition order, each with a plain command. A create that runs in a
/// partition before the write lands there keeps the old setting; once this
/// answers, every create has the new one. One that fails part way
/// (`Unavailable`) leaves the partitions written so far changed; calling it
/// again completes it. Answers whether it was on before in any partition.
pub(crate) async fn set_history(
    b: &ValkeyBackend,
    namespace: &Namespace,
    enabled: bool,
) -> Result<bool> {
    let mut was = false;
    for p in b.inner.partitions.iter() {
        let key = history_flags(b, p.get());
        let mut c = redis::cmd(if enabled { "HSETNX" } else { "HDEL" });
        c.arg(key).arg(namespace.as_str());
        if enabled {
            c.arg("1");
        }
        // HSETNX answers 1 when it added the field; HDEL when it removed it.
        let changed = int(&b.run(&c).await?)? == 1;
        was |= if enabled { !changed } else { changed };
    }
    Ok(was)
}

/// On while any partition holds the flag (a `set_history` that failed part
/// way), as `lanes` reads a paused lane.
pub(crate) async fn history_enabled(b: &ValkeyBackend, namespace: &Namespace) -> Result<bool> {
    let calls: Vec<Cmd> = b
        .inner
        .partitions
        .iter()
        .map(|p| {
            let mut c = redis::cmd("HEXISTS");
            c.arg(history_flags(b, p.get())).arg(namespace.as_str());
            c
        })
        .collect();
    for reply in try_join_all(calls.iter().map(|c| b.run(c))).await? {
        if int(&reply)? == 1 {
            return Ok(true);
        }
    }
    Ok(false)
}
