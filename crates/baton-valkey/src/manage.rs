//! Deletes (one unit of [`AdminBackend::delete_units`](baton_core::AdminBackend::delete_units)
//! in one `baton_delete` call on the partition of its ids), the units of
//! bulk cancels and replays (one `baton_cancel_units` or
//! `baton_replay_units` call each), the history
//! of an execution (the list `ev:<uuid>`, written by the functions that
//! change it; see `lua/common.lua`), the setting of a namespace that
//! turns it on (the field `<ns>` of every partition's hash `hx`, read by
//! `baton_create`) and the retention rules (every partition's hash `ret`,
//! read by `baton_create` and `baton_trim`).

use baton_core::raw::rules::{self, StoredEvent};
use baton_core::{
    CancelPart, CancelRequest, CancelScope, DeletePart, ExecutionEvent, ExecutionId, Result,
};

use std::time::Duration;

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
    let (woken, parts) = unit_parts(b, partition, "delete", ids.len(), b.run(&c).await?)?;
    let out = ids
        .iter()
        .zip(parts)
        .map(|(id, part)| self::part(id, part))
        .collect::<Result<Vec<_>>>()?;
    b.announce(woken).await?;
    Ok(out)
}

/// A unit's reply, `{ woken, part... }`: the lanes the unit woke (each
/// once) and its parts, one per id of the `ids` it was asked (`what` names
/// the unit in the error of a reply this build cannot read).
fn unit_parts(
    b: &ValkeyBackend,
    partition: PartitionId,
    what: &str,
    ids: usize,
    reply: Value,
) -> Result<(Vec<Woken>, Vec<Value>)> {
    let mut reply = array(reply)?.into_iter();
    let woken = reply
        .next()
        .ok_or_else(|| read::corrupt(format_args!("a {what} reply without its woken lanes")))?;
    let mut woken = b.woken_from(partition.get(), woken)?;
    // A lane emptied and woken again within the unit is announced once.
    let mut seen = BTreeSet::new();
    woken.retain(|w| seen.insert((w.lane_id.clone(), w.released.clone())));
    let parts: Vec<Value> = reply.collect();
    if parts.len() != ids {
        return Err(read::corrupt(format_args!(
            "a {what} reply with {} parts for {ids} ids",
            parts.len()
        )));
    }
    Ok((woken, parts))
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

/// The hash of the retention rules in `partition` (`ret`: field
/// `<namespace>/<lane>`, `<namespace>/` for the rule of every lane, →
/// keep ms), read by every `baton_create` (the keep a root is stamped
/// with) and `baton_trim` (the rule in force) of that partition.
fn retention_key(b: &ValkeyBackend, partition: u16) -> String {
    format!("{}:ret", b.base(partition))
}

/// A rule's field in `ret`: `/` is in no namespace or lane, so the field
/// splits back at its first `/`.
fn rule_field(namespace: &Namespace, lane: Option<&Lane>) -> String {
    format!(
        "{}/{}",
        namespace.as_str(),
        lane.map_or(rules::ALL_LANES, Lane::as_str)
    )
}

/// A stored keep read back (`HGET` of a rule's field): `None` when absent.
fn stored_keep(v: &Value) -> Result<Option<Duration>> {
    Ok(opt_int(v)?.map(|ms| Duration::from_millis(u64::try_from(ms).unwrap_or(0))))
}

/// How long a writer holds a [`ControlLock`] at most (a writer that died
/// holding it is passed by after this).
const CONTROL_LOCK_MS: u64 = 30_000;

/// The lock one writer of settings copied to every partition holds while it
/// writes them (`{ctl}:<name>`, `SET NX PX`; `retention-lock` for the
/// retention rules): two writers interleaving their partition-by-partition
/// writes would leave partitions with different copies for good.
struct ControlLock {
    key: String,
    token: String,
}

impl ControlLock {
    /// Takes the lock `name`, or answers `Contention` with `busy` when
    /// another writer holds it (retry shortly).
    async fn take(b: &ValkeyBackend, name: &str, busy: &str) -> Result<ControlLock> {
        let key = format!("{}:{name}", b.ctl());
        let token = uuid::Uuid::new_v4().simple().to_string();
        let mut c = redis::cmd("SET");
        c.arg(&key)
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(CONTROL_LOCK_MS);
        if matches!(b.run(&c).await?, Value::Nil) {
            return Err(EngineError::Contention {
                message: busy.to_owned(),
            });
        }
        Ok(ControlLock { key, token })
    }

    /// Releases the lock if it is still this writer's.
    async fn release(self, b: &ValkeyBackend) -> Result<()> {
        let mut get = redis::cmd("GET");
        get.arg(&self.key);
        if let Value::BulkString(held) = b.run(&get).await?
            && held == self.token.as_bytes()
        {
            let mut del = redis::cmd("DEL");
            del.arg(&self.key);
            b.run(&del).await?;
        }
        Ok(())
    }
}

/// Runs `write` under the retention rules' [`ControlLock`], releasing it
/// after (also when the write failed).
async fn locked<T>(
    b: &ValkeyBackend,
    write: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    locked_by(
        b,
        "retention-lock",
        "another retention rule is being written; try again in a moment",
        write,
    )
    .await
}

/// Runs `write` under the [`ControlLock`] `name` (`busy`: the `Contention`
/// message while another writer holds it), releasing it after (also when
/// the write failed).
pub(crate) async fn locked_by<T>(
    b: &ValkeyBackend,
    name: &str,
    busy: &str,
    write: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    let lock = ControlLock::take(b, name, busy).await?;
    let out = write.await;
    let released = lock.release(b).await;
    let out = out?;
    released?;
    Ok(out)
}

/// Under the retention [`ControlLock`], the rule is checked against the first
/// partition's copy (how many rules it holds, whether it holds this one),
/// then written to every partition's `ret`, one after another in
/// partition order, each with a plain command, as `set_history` writes its
/// flag. A create that runs in a partition before the write lands there
/// stamps the old keep, and a trim there judges by the old rule until the
/// write lands (milliseconds). One that fails part way (`Unavailable`)
/// leaves the partitions written so far changed (`retention_rules` then
/// says so); calling it again completes it.
pub(crate) async fn set_retention(
    b: &ValkeyBackend,
    namespace: &Namespace,
    lane: Option<&Lane>,
    keep: Duration,
) -> Result<Option<Duration>> {
    let keep_ms = rules::check_keep(keep)?;
    locked(b, write_retention(b, namespace, lane, keep_ms)).await
}

async fn write_retention(
    b: &ValkeyBackend,
    namespace: &Namespace,
    lane: Option<&Lane>,
    keep_ms: u64,
) -> Result<Option<Duration>> {
    let field = rule_field(namespace, lane);
    let mut was = None;
    for (i, p) in b.inner.partitions.iter().enumerate() {
        let key = retention_key(b, p.get());
        if i == 0 {
            let mut pipe = redis::pipe();
            pipe.atomic();
            pipe.cmd("HLEN").arg(&key);
            pipe.cmd("HGET").arg(&key).arg(&field);
            let mut replies = b.inner.server.run_pipe(&pipe).await?.into_iter();
            let (Some(held), Some(old)) = (replies.next(), replies.next()) else {
                return Err(read::corrupt(
                    "a retention read with fewer replies than commands",
                ));
            };
            was = stored_keep(&old)?;
            rules::check_rule_room(
                usize::try_from(int(&held)?).unwrap_or(usize::MAX),
                was.is_some(),
                namespace.as_str(),
            )?;
        }
        let mut c = redis::cmd("HSET");
        c.arg(key).arg(&field).arg(keep_ms);
        b.run(&c).await?;
    }
    Ok(was)
}

/// Removes the rule's field from every partition's `ret`, in partition
/// order, under the retention [`ControlLock`] (as [`set_retention`]); answers the
/// keep the first partition that held it had, so a call that completes an
/// earlier one that failed part way still answers it.
pub(crate) async fn remove_retention(
    b: &ValkeyBackend,
    namespace: &Namespace,
    lane: Option<&Lane>,
) -> Result<Option<Duration>> {
    locked(b, erase_retention(b, namespace, lane)).await
}

async fn erase_retention(
    b: &ValkeyBackend,
    namespace: &Namespace,
    lane: Option<&Lane>,
) -> Result<Option<Duration>> {
    let field = rule_field(namespace, lane);
    let mut was = None;
    for p in b.inner.partitions.iter() {
        let key = retention_key(b, p.get());
        let mut pipe = redis::pipe();
        pipe.atomic();
        pipe.cmd("HGET").arg(&key).arg(&field);
        pipe.cmd("HDEL").arg(&key).arg(&field);
        let old = b
            .inner
            .server
            .run_pipe(&pipe)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| read::corrupt("a retention removal without its read"))?;
        if was.is_none() {
            was = stored_keep(&old)?;
        }
    }
    Ok(was)
}

/// Every partition's copy, read at once: they agree unless a change
/// failed part way, which is answered as a `Configuration` error naming
/// the rule and how to mend it (set or remove it again).
pub(crate) async fn retention_rules(b: &ValkeyBackend) -> Result<Vec<baton_core::RetentionRule>> {
    let calls: Vec<redis::Cmd> = b
        .inner
        .partitions
        .iter()
        .map(|p| {
            let mut c = redis::cmd("HGETALL");
            c.arg(retention_key(b, p.get()));
            c
        })
        .collect();
    let mut copies = Vec::with_capacity(calls.len());
    for reply in try_join_all(calls.iter().map(|c| b.run(c))).await? {
        let mut copy = std::collections::BTreeMap::new();
        for (field, keep) in crate::memory::hash_pairs(reply, "retention")? {
            copy.insert(text(&field)?.to_string(), int(&keep)?);
        }
        copies.push(copy);
    }
    let Some(first) = copies.first() else {
        return Ok(Vec::new());
    };
    for copy in &copies[1..] {
        let differs = first
            .iter()
            .find(|(f, k)| copy.get(*f) != Some(k))
            .map(|(f, _)| f)
            .or_else(|| copy.keys().find(|f| !first.contains_key(*f)));
        if let Some(field) = differs {
            return Err(EngineError::Configuration {
                message: format!(
                    "the retention rule {field:?} differs between partitions (a change of it \
                     failed part way); set it again (baton retention set) or remove it \
                     (baton retention remove) to write every partition"
                ),
            });
        }
    }
    let mut out = Vec::new();
    for (field, keep) in first {
        let (ns, lane) = field.split_once('/').ok_or_else(|| {
            EngineError::corruption(format!("retention rule field {field:?} without its '/'"))
        })?;
        out.push(rules::stored_retention_rule(ns, lane, *keep)?);
    }
    rules::sort_retention_rules(&mut out);
    Ok(out)
}

/// Runs to completion in a task of its own (see [`detached`]): a unit
/// that took effect still raises the hints of the lanes it woke.
pub(crate) async fn cancel_units(
    b: &ValkeyBackend,
    ids: &[ExecutionId],
    request: &CancelRequest,
) -> Result<Vec<Result<CancelPart>>> {
    let Some(partition) = baton_core::raw::bulk::check_unit(ids, b.inner.partitions)? else {
        return Ok(Vec::new());
    };
    let reason = rules::cancel_reason(&b.inner.limits, request.reason.clone())?;
    let (b, ids, scope) = (b.clone(), ids.to_vec(), request.scope);
    detached(async move { cancel_unit(&b, partition, &ids, reason, scope).await }).await
}

async fn cancel_unit(
    b: &ValkeyBackend,
    partition: PartitionId,
    ids: &[ExecutionId],
    reason: Option<String>,
    scope: CancelScope,
) -> Result<Vec<Result<CancelPart>>> {
    let limits = &b.inner.limits;
    let mut c = Server::fcall("baton_cancel_units", &b.base(partition.get()));
    c.arg(b.now().as_millis())
        .arg(if reason.is_some() { "1" } else { "0" })
        .arg(reason.as_deref().unwrap_or_default())
        .arg(if scope == CancelScope::Tree { "1" } else { "0" })
        .arg(limits.cascade_budget);
    for id in ids {
        c.arg(id.uuid().simple().to_string())
            .arg(rules::cascade_reason(limits, id, reason.as_deref()));
    }
    let (woken, parts) = unit_parts(b, partition, "cancel unit", ids.len(), b.run(&c).await?)?;
    let out = ids
        .iter()
        .zip(parts)
        .map(|(id, part)| cancel_part(id, part))
        .collect::<Result<Vec<_>>>()?;
    b.announce(woken).await?;
    Ok(out)
}

/// One id's part of a `baton_cancel_units` reply (the outer `Err` is a
/// reply this build cannot read).
fn cancel_part(id: &ExecutionId, part: Value) -> Result<Result<CancelPart>> {
    let mut items = array(part)?.into_iter();
    let tag = items
        .next()
        .ok_or_else(|| read::corrupt(format_args!("an empty cancel part for {id}")))?;
    match text(&tag)? {
        "ok" => {
            let acted = items
                .next()
                .ok_or_else(|| read::corrupt(format_args!("a short cancel part for {id}")))?;
            match int(&acted)? {
                1 => Ok(Ok(CancelPart::Cancelled)),
                0 => Ok(Ok(CancelPart::Finished)),
                other => Err(read::corrupt(format_args!(
                    "a cancel part for {id} that acted {other}"
                ))),
            }
        }
        "not_reached" => Ok(Ok(CancelPart::NotReached)),
        tag => Ok(Err(crate::lease::refusal(id, "cancel", tag, items)?)),
    }
}

/// Runs to completion in a task of its own (see [`detached`]): a unit
/// that took effect still raises the hints of the lanes it woke.
pub(crate) async fn replay_units(
    b: &ValkeyBackend,
    ids: &[ExecutionId],
) -> Result<Vec<Result<()>>> {
    let Some(partition) = baton_core::raw::bulk::check_unit(ids, b.inner.partitions)? else {
        return Ok(Vec::new());
    };
    let (b, ids) = (b.clone(), ids.to_vec());
    detached(async move { replay_unit(&b, partition, &ids).await }).await
}

async fn replay_unit(
    b: &ValkeyBackend,
    partition: PartitionId,
    ids: &[ExecutionId],
) -> Result<Vec<Result<()>>> {
    let mut c = Server::fcall("baton_replay_units", &b.base(partition.get()));
    c.arg(b.now().as_millis());
    for id in ids {
        c.arg(id.uuid().simple().to_string());
    }
    let (woken, parts) = unit_parts(b, partition, "replay unit", ids.len(), b.run(&c).await?)?;
    let out = ids
        .iter()
        .zip(parts)
        .map(|(id, part)| replay_part(id, part))
        .collect::<Result<Vec<_>>>()?;
    b.announce(woken).await?;
    Ok(out)
}

/// One id's part of a `baton_replay_units` reply (the outer `Err` is a
/// reply this build cannot read).
fn replay_part(id: &ExecutionId, part: Value) -> Result<Result<()>> {
    let mut items = array(part)?.into_iter();
    let tag = items
        .next()
        .ok_or_else(|| read::corrupt(format_args!("an empty replay part for {id}")))?;
    match text(&tag)? {
        "ok" => Ok(Ok(())),
        tag => Ok(Err(crate::lease::refusal(id, "replay", tag, items)?)),
    }
}
