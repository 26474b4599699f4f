//! Operator control: priority and tag edits, revoking a lease, pausing and
//! resuming an execution (with its tree) and replaying one (one `FCALL`
//! each on the execution's partition: `baton_set_priority`,
//! `baton_set_tag`, `baton_revoke`, `baton_pause`, `baton_resume`,
//! `baton_replay`), pausing lanes, and the worker registry.
//!
//! The decisions are `check_priority_edit`, `tag_edit`, `check_revoke`,
//! `revoke_failure`, `check_pause`, `check_resume`, `resume_target`,
//! `check_replay` and `replay_deadline` of `baton_core::raw::rules`,
//! mirrored by the Lua helpers the functions call (so judging and writing
//! stay one atomic call); a revoke settles like a reclaimed lease. A tree
//! pause or resume walks the descendants within the cascade budget in the
//! same call and queues the rest for the cascade pass, as a cancel does.
//!
//! A paused lane is a field of the hash `lp:<ns>` of every partition (lane
//! → paused_at), read by each `baton_claim` (and `baton_peek`, and the
//! plain peek of a claim) of its own partition; see [`pause_lane`] for how
//! a claim racing a pause behaves.
//!
//! The registry lives per namespace under a hash tag of its own,
//! `{w:<ns>}`: a hash `workers` (worker id → a MessagePack map `l` lanes and
//! `c` capabilities, comma separated, `s` last seen ms, `n` leases) and a
//! sorted set `seen` (worker id by last seen), written together by one
//! function. A renew names no namespace, so a claim also adds its namespace
//! to the worker's set `{wk:<worker>}:ns`, which a renew reads to reach its
//! entries. Claims and renews write only when [`baton_core::raw::Sightings`]
//! says so, and the registry is advisory: a write that fails is logged and
//! the call goes on.

use baton_core::raw::rules;
use baton_core::raw::stored::parse as parsed;
use baton_core::{
    CancelScope, Explanation, LaneInfo, PauseOutcome, QueueFacts, SessionLock, TagKey, WorkerInfo,
    validate_tag_value,
};

use crate::*;

/// Most stale registry entries one recorded claim removes: the rest go with
/// the next ones.
const FORGET_BATCH: usize = 100;

/// How many worker TTLs an entry outlives its last sighting before a
/// recording removes it (`workers` stops listing it after one).
const FORGET_AFTER_TTLS: u32 = 10;

pub(crate) async fn set_priority(
    b: &ValkeyBackend,
    id: &ExecutionId,
    priority: i32,
) -> Result<ExecutionSnapshot> {
    b.check_id(id)?;
    let mut c = Server::fcall("baton_set_priority", &b.base(id.partition().get()));
    c.arg(id.uuid().simple().to_string())
        .arg(priority)
        .arg(b.now().as_millis())
        .arg(rules::priority_detail(priority));
    let (reply, payload) = b.with_payload(id, c).await?;
    b.outcome(id, "set_priority", reply, payload).await
}

pub(crate) async fn set_tag(
    b: &ValkeyBackend,
    id: &ExecutionId,
    key: TagKey,
    value: Option<String>,
) -> Result<ExecutionSnapshot> {
    b.check_id(id)?;
    // The value is checked here (it needs nothing stored); the count limit
    // and "unchanged" are judged by the function, atomically with the write.
    if let Some(v) = &value {
        validate_tag_value(v)?;
    }
    let detail = rules::tag_detail(key.as_str(), value.as_deref());
    let mut c = Server::fcall("baton_set_tag", &b.base(id.partition().get()));
    c.arg(id.uuid().simple().to_string())
        .arg(key.as_str())
        .arg(if value.is_some() { "1" } else { "0" })
        .arg(value.unwrap_or_default())
        .arg(baton_core::MAX_TAGS)
        .arg(b.now().as_millis())
        .arg(detail);
    let (reply, payload) = b.with_payload(id, c).await?;
    b.outcome(id, "set_tag", reply, payload).await
}

/// Runs to completion in a task of its own (see [`detached`]): a revoke
/// that took effect still raises the hint of a lane its retry woke.
pub(crate) async fn revoke(b: &ValkeyBackend, id: &ExecutionId) -> Result<ExecutionSnapshot> {
    let (b, id) = (b.clone(), id.clone());
    detached(async move { revoke_now(&b, &id).await }).await
}

async fn revoke_now(b: &ValkeyBackend, id: &ExecutionId) -> Result<ExecutionSnapshot> {
    b.check_id(id)?;
    let limits = &b.inner.limits;
    let mut c = Server::fcall("baton_revoke", &b.base(id.partition().get()));
    c.arg(id.uuid().simple().to_string())
        .arg(b.now().as_millis())
        .arg(limits.max_error_bytes)
        .arg(limits.cascade_budget);
    let (reply, payload) = b.with_payload(id, c).await?;
    b.outcome(id, "revoke", reply, payload).await
}

pub(crate) async fn workers(
    b: &ValkeyBackend,
    namespace: &Namespace,
    limit: usize,
) -> Result<Vec<WorkerInfo>> {
    Page::first(limit).validate()?;
    let since = b.now().saturating_sub(b.inner.limits.worker_ttl);
    let mut c = Server::fcall("baton_workers", &b.registry(namespace));
    c.arg(since.as_millis());
    let mut items = array(b.run(&c).await?)?.into_iter();
    let mut out = Vec::new();
    while let (Some(worker), Some(entry)) = (items.next(), items.next()) {
        out.push(decode_worker(namespace, text(&worker)?, bytes(&entry)?)?);
    }
    out.sort_by(|a, b| a.worker_id.cmp(&b.worker_id));
    out.truncate(limit);
    Ok(out)
}

/// One registry entry (see the module's docs).
fn decode_worker(namespace: &Namespace, worker: &str, raw: &[u8]) -> Result<WorkerInfo> {
    let ctx = format!("namespace {namespace}: worker {worker}");
    let ctx = ctx.as_str();
    let f = Fields::from_record(raw)?;
    let names = |k: &str| -> Result<Vec<&str>> {
        Ok(f.str(ctx, k)?
            .split(',')
            .filter(|n| !n.is_empty())
            .collect())
    };
    Ok(WorkerInfo {
        versions: baton_core::VersionRange::from_stored(ctx, f.opt_str(ctx, "v")?.unwrap_or(""))?,
        worker_id: parsed("worker_id", ctx, worker)?,
        namespace: namespace.clone(),
        lanes: names("l")?
            .into_iter()
            .map(|l| parsed("lane", ctx, l))
            .collect::<Result<_>>()?,
        capabilities: names("c")?
            .into_iter()
            .map(|c| parsed("capability", ctx, c))
            .collect::<Result<_>>()?,
        last_seen: Timestamp::from_millis(f.parsed(ctx, "s")?),
        leases: f.parsed(ctx, "n")?,
    })
}

impl ValkeyBackend {
    /// The registry base of `namespace`: its keys share a hash tag of their
    /// own, so one function writes them on a cluster too.
    fn registry(&self, namespace: &Namespace) -> String {
        format!("{}:{{w:{namespace}}}", self.inner.prefix)
    }

    /// The set of namespaces `worker` claimed from (what a renew reaches).
    fn worker_namespaces(&self, worker: &str) -> String {
        format!("{}:{{wk:{worker}}}:ns", self.inner.prefix)
    }
}

/// Records the worker of a claim, when due. The registry is advisory: a
/// write that fails is logged and the claim goes on.
pub(crate) async fn saw_claim(b: &ValkeyBackend, request: &ClaimRequest, now: Timestamp) {
    let ttl = b.inner.limits.worker_ttl;
    if !b.inner.sightings.claim_due(request, now, ttl) {
        return;
    }
    let lanes: BTreeSet<&str> = request.lanes.iter().map(Lane::as_str).collect();
    let caps: BTreeSet<&str> = request.capabilities.iter().map(|c| c.as_str()).collect();
    let forget = ttl.saturating_mul(FORGET_AFTER_TTLS);
    let mut record = Server::fcall("baton_saw_claim", &b.registry(&request.namespace));
    record
        .arg(request.worker_id.as_str())
        .arg(lanes.into_iter().collect::<Vec<_>>().join(","))
        .arg(caps.into_iter().collect::<Vec<_>>().join(","))
        .arg(now.as_millis())
        .arg(now.saturating_sub(forget).as_millis())
        .arg(FORGET_BATCH)
        .arg(request.versions.to_stored());
    // The worker's namespaces live as long as its entries may.
    let set = b.worker_namespaces(request.worker_id.as_str());
    let mut remember = redis::pipe();
    remember
        .cmd("SADD")
        .arg(&set)
        .arg(request.namespace.as_str())
        .cmd("PEXPIRE")
        .arg(&set)
        .arg(forget_ms(forget));
    let expiry = registry_expiry(b, &request.namespace, forget);
    let written = tokio::try_join!(
        b.run(&record),
        b.inner.server.raw_pipe(&remember),
        b.inner.server.raw_pipe(&expiry)
    );
    if let Err(e) = written {
        tracing::debug!(worker = %request.worker_id, error = %e, "worker registry not written");
    }
}

/// Records the worker of a renew in every namespace it claimed from, when
/// due; advisory like [`saw_claim`].
pub(crate) async fn saw_renew(b: &ValkeyBackend, request: &RenewRequest, now: Timestamp) {
    let ttl = b.inner.limits.worker_ttl;
    if !b.inner.sightings.renew_due(request, now, ttl) {
        return;
    }
    let worker = request.worker_id.as_str();
    let set = b.worker_namespaces(worker);
    let forget = ttl.saturating_mul(FORGET_AFTER_TTLS);
    let written = async {
        // A worker busy with long jobs claims rarely and renews often: its
        // renews keep its namespaces (and their registries) alive.
        let mut members = redis::cmd("SMEMBERS");
        members.arg(&set);
        let mut extend = redis::cmd("PEXPIRE");
        extend.arg(&set).arg(forget_ms(forget));
        let (listed, _) =
            tokio::try_join!(b.inner.server.raw(&members), b.inner.server.raw(&extend))?;
        let namespaces: Vec<String> = array(listed)?
            .iter()
            .map(|n| text(n).map(str::to_owned))
            .collect::<Result<_>>()?;
        let expiries: Vec<redis::Pipeline> = namespaces
            .iter()
            .filter_map(|raw| raw.parse::<Namespace>().ok())
            .map(|ns| registry_expiry(b, &ns, forget))
            .collect();
        try_join_all(expiries.iter().map(|p| b.inner.server.raw_pipe(p))).await?;
        let calls: Vec<(&String, Cmd)> = namespaces
            .iter()
            .filter_map(|raw| {
                // A member that is no namespace was not written by a claim.
                let ns: Namespace = raw.parse().ok()?;
                let mut c = Server::fcall("baton_saw_renew", &b.registry(&ns));
                c.arg(worker).arg(request.leases.len()).arg(now.as_millis());
                Some((raw, c))
            })
            .collect();
        let replies = try_join_all(calls.iter().map(|(_, c)| b.run(c))).await?;
        // A namespace whose registry forgot the worker is no longer reached.
        let gone: Vec<&String> = calls
            .iter()
            .zip(&replies)
            .filter(|(_, r)| matches!(int(r), Ok(0)))
            .map(|((ns, _), _)| *ns)
            .collect();
        if !gone.is_empty() {
            let mut srem = redis::cmd("SREM");
            srem.arg(&set).arg(gone);
            b.inner.server.raw(&srem).await?;
        }
        Ok::<_, EngineError>(())
    };
    if let Err(e) = written.await {
        tracing::debug!(worker = %request.worker_id, error = %e, "worker registry not written");
    }
}

/// Why `id` is not running (`rules::explain`). For a waiting execution the
/// queue ahead of it is counted from its lane's waiting sets with plain
/// reads rather than a library function, so the library (shared by every
/// deployment on the server) stays as it is: members sort in claim order,
/// so those before its own member are the ones a claim takes first.
pub(crate) async fn explain(b: &ValkeyBackend, id: &ExecutionId) -> Result<Explanation> {
    let fields = b.read_fields(id, true).await?;
    let snapshot = read::snapshot(id.clone(), &fields)?;
    let facts = if snapshot.state == State::Waiting {
        let ctx = format!("execution {id}");
        let ready_at: i64 = fields.parsed(&ctx, "rd")?;
        let own = claim_member(snapshot.priority, ready_at, &id.uuid().simple().to_string());
        // Paused as the claims of its own partition see it.
        let mut paused = redis::cmd("HEXISTS");
        paused
            .arg(lane_flags(b, id.partition().get(), &snapshot.namespace))
            .arg(snapshot.lane.as_str());
        let now = b.now();
        let (workers, ahead, paused, limited, session_owner) = tokio::try_join!(
            workers(b, &snapshot.namespace, Page::MAX_LIMIT),
            queued_before(b, &snapshot.namespace, &snapshot.lane, &own),
            b.run(&paused),
            crate::limits::limited(b, &snapshot, now),
            session_owner(b, id, &snapshot, now),
        )?;
        QueueFacts {
            session_owner,
            workers,
            ahead: ahead.min(QueueFacts::MAX_AHEAD),
            lane_paused: int(&paused)? == 1,
            limited,
        }
    } else {
        QueueFacts::default()
    };
    Ok(rules::explain(snapshot, &facts))
}

/// The live lock of the session of `snapshot` (execution `id`), whoever
/// holds it: it lives in the execution's own partition (the session's).
async fn session_owner(
    b: &ValkeyBackend,
    id: &ExecutionId,
    snapshot: &ExecutionSnapshot,
    now: Timestamp,
) -> Result<Option<SessionLock>> {
    let Some(session) = &snapshot.session else {
        return Ok(None);
    };
    let mut c = redis::cmd("HGET");
    c.arg(format!("{}:ses", b.base(id.partition().get())))
        .arg(format!("{}/{session}", snapshot.namespace));
    let raw = b.inner.server.raw(&c).await?;
    if raw == Value::Nil {
        return Ok(None);
    }
    let lock = decode_session_lock(&format!("session {session}"), text(&raw)?)?;
    Ok((lock.expires_at > now).then_some(lock))
}

/// A stored session lock, `<worker>|<expires ms>|<idle ms>` (see
/// common.lua).
pub(crate) fn decode_session_lock(ctx: &str, raw: &str) -> Result<SessionLock> {
    let bad = || EngineError::corruption(format!("{ctx}: lock {raw:?}"));
    let mut parts = raw.rsplitn(3, '|');
    let (Some(_idle), Some(expires), Some(worker)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    Ok(SessionLock {
        worker_id: parsed("worker_id", ctx, worker)?,
        expires_at: Timestamp::from_millis(expires.parse().map_err(|_| bad())?),
    })
}

/// How many members of the lane's waiting sets, plain and conditional, of
/// every partition sort before `member` (a claim merges the partitions
/// and both sets by these bytes). `ZLEXCOUNT` counts without reading the
/// members, so no cap is needed while counting.
async fn queued_before(
    b: &ValkeyBackend,
    ns: &Namespace,
    lane: &Lane,
    member: &str,
) -> Result<u64> {
    let below = format!("({member}");
    let pipes: Vec<redis::Pipeline> = b
        .inner
        .partitions
        .iter()
        .map(|p| {
            let base = b.base(p.get());
            let mut pipe = redis::pipe();
            for set in ["w", "wx"] {
                pipe.cmd("ZLEXCOUNT")
                    .arg(format!("{base}:{set}:{ns}/{lane}"))
                    .arg("-")
                    .arg(&below);
            }
            pipe
        })
        .collect();
    let replies = try_join_all(pipes.iter().map(|p| b.inner.server.raw_pipe(p))).await?;
    let mut total: u64 = 0;
    for reply in replies.iter().flatten() {
        total = total.saturating_add(u64::try_from(int(reply)?).unwrap_or(0));
    }
    Ok(total)
}

/// A key lifetime of `forget`, in milliseconds; never 0, which would delete
/// the key at once.
fn forget_ms(forget: Duration) -> u64 {
    u64::try_from(forget.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// Expiries of a namespace's registry keys, renewed by every recorded
/// sighting: a namespace whose workers all stopped loses its registry after
/// ten TTLs even if nobody claims there again.
fn registry_expiry(b: &ValkeyBackend, namespace: &Namespace, forget: Duration) -> redis::Pipeline {
    let base = b.registry(namespace);
    let mut pipe = redis::pipe();
    for key in [format!("{base}:workers"), format!("{base}:seen")] {
        pipe.cmd("PEXPIRE").arg(key).arg(forget_ms(forget));
    }
    pipe
}

/// Runs to completion in a task of its own (see [`detached`]): a tree
/// pause never wakes a lane, but its cascade must not be cut in two.
pub(crate) async fn pause(
    b: &ValkeyBackend,
    id: &ExecutionId,
    scope: CancelScope,
) -> Result<PauseOutcome> {
    let (b, id) = (b.clone(), id.clone());
    detached(async move {
        b.check_id(&id)?;
        let mut c = Server::fcall("baton_pause", &b.base(id.partition().get()));
        c.arg(id.uuid().simple().to_string())
            .arg(b.now().as_millis())
            .arg(id.to_string())
            .arg(tree_flag(scope))
            .arg(b.inner.limits.cascade_budget);
        tree_outcome(&b, &id, "pause", c).await
    })
    .await
}

/// Runs to completion in a task of its own (see [`detached`]): a resume
/// that took effect still raises the hints of the lanes it woke.
pub(crate) async fn resume(
    b: &ValkeyBackend,
    id: &ExecutionId,
    scope: CancelScope,
) -> Result<PauseOutcome> {
    let (b, id) = (b.clone(), id.clone());
    detached(async move {
        b.check_id(&id)?;
        let mut c = Server::fcall("baton_resume", &b.base(id.partition().get()));
        c.arg(id.uuid().simple().to_string())
            .arg(b.now().as_millis())
            .arg(tree_flag(scope))
            .arg(b.inner.limits.cascade_budget);
        tree_outcome(&b, &id, "resume", c).await
    })
    .await
}

fn tree_flag(scope: CancelScope) -> &'static str {
    match scope {
        CancelScope::Tree => "1",
        CancelScope::Execution => "0",
    }
}

/// Runs `call` (`baton_pause` or `baton_resume` of `id`) and reads its
/// answer `{ 'ok', woken, record, cascaded, pending }`: the last two are
/// the tree walk's, the rest reads like every lease operation's.
async fn tree_outcome(
    b: &ValkeyBackend,
    id: &ExecutionId,
    operation: &'static str,
    call: Cmd,
) -> Result<PauseOutcome> {
    let (reply, payload) = b.with_payload(id, call).await?;
    let mut items = array(reply)?;
    let (mut cascaded, mut cascade_pending) = (0, false);
    if items.len() == 5 {
        cascade_pending = int(&items[4])? == 1;
        cascaded = u64::try_from(int(&items[3])?)
            .map_err(|_| read::corrupt("a negative cascade count"))?;
        items.truncate(3);
    }
    let snapshot = b
        .outcome(id, operation, Value::Array(items), payload)
        .await?;
    Ok(PauseOutcome {
        snapshot,
        cascaded,
        cascade_pending,
    })
}

/// The paused-lane hash of `namespace` in `partition` (`lp:<ns>`: lane →
/// paused_at ms), read by every claim of that partition.
fn lane_flags(b: &ValkeyBackend, partition: u16, namespace: &Namespace) -> String {
    format!("{}:lp:{namespace}", b.base(partition))
}

/// Pauses a lane: its flag is written to every partition, one after
/// another in partition order, each with a plain `HSETNX` (keeping the
/// first pause time of a partition that already holds it).
///
/// # How a claim racing a pause behaves
/// A claim is one `baton_claim` per partition, and each reads the flag of
/// its own partition in the same atomic call that takes work. A claim
/// that runs in a partition before the flag's write lands there may still
/// take the lane's work from it; one that runs after it takes none. The
/// writes reach every partition before this answers, so once it answers no
/// claim takes the lane's work anywhere (a claim's peek is only a plan:
/// the claim call judges the flag again). A pause that fails part way
/// (`Unavailable`) leaves the lane paused in the partitions written so far;
/// calling it again completes it, and `lanes` shows the lane paused while
/// any partition holds the flag.
pub(crate) async fn pause_lane(
    b: &ValkeyBackend,
    namespace: &Namespace,
    lane: &Lane,
) -> Result<bool> {
    let now = b.now().as_millis();
    let mut added = false;
    for p in b.inner.partitions.iter() {
        let mut c = redis::cmd("HSETNX");
        c.arg(lane_flags(b, p.get(), namespace))
            .arg(lane.as_str())
            .arg(now);
        added |= int(&b.run(&c).await?)? == 1;
    }
    Ok(added)
}

/// Resumes a lane: its flag leaves every partition, in partition order (a
/// claim in a partition already cleared takes its work again while later
/// ones are still being cleared), then its claimers are woken here and in
/// every other process. Its hints were kept while it was paused (a claim
/// never reports a paused lane empty), so claims find its partitions.
pub(crate) async fn resume_lane(
    b: &ValkeyBackend,
    namespace: &Namespace,
    lane: &Lane,
) -> Result<bool> {
    let mut removed = false;
    for p in b.inner.partitions.iter() {
        let mut c = redis::cmd("HDEL");
        c.arg(lane_flags(b, p.get(), namespace)).arg(lane.as_str());
        removed |= int(&b.run(&c).await?)? == 1;
    }
    if removed {
        let mut publish = redis::cmd("PUBLISH");
        publish
            .arg(b.channel(&format!("{namespace}/{lane}")))
            .arg("");
        b.inner.server.raw(&publish).await?;
        b.inner.wake.notify(namespace.as_str(), lane.as_str());
    }
    Ok(removed)
}

pub(crate) async fn lanes(b: &ValkeyBackend, namespace: &Namespace) -> Result<Vec<LaneInfo>> {
    let calls: Vec<Cmd> = b
        .inner
        .partitions
        .iter()
        .map(|p| {
            let mut c = redis::cmd("HGETALL");
            c.arg(lane_flags(b, p.get(), namespace));
            c
        })
        .collect();
    let (counts, flags) = tokio::try_join!(
        crate::admin::counts(b, namespace),
        try_join_all(calls.iter().map(|c| b.run(c)))
    )?;
    // Paused while any partition holds the flag (a pause or resume that
    // failed part way), since the earliest time written.
    let mut paused: BTreeMap<Lane, Timestamp> = BTreeMap::new();
    for reply in flags {
        let items = match reply {
            Value::Map(pairs) => pairs.into_iter().flat_map(|(k, v)| [k, v]).collect(),
            other => array(other)?,
        };
        let mut it = items.into_iter();
        while let (Some(lane), Some(at)) = (it.next(), it.next()) {
            let lane: Lane = parsed("lane", "a paused lane", text(&lane)?)?;
            let at = Timestamp::from_millis(int(&at)?);
            paused
                .entry(lane)
                .and_modify(|t| *t = (*t).min(at))
                .or_insert(at);
        }
    }
    Ok(rules::lane_infos(counts, paused.into_iter().collect()))
}

/// Runs to completion in a task of its own (see [`detached`]): a replay
/// that took effect still raises the hint of the lane it woke.
pub(crate) async fn replay(b: &ValkeyBackend, id: &ExecutionId) -> Result<ExecutionSnapshot> {
    let (b, id) = (b.clone(), id.clone());
    detached(async move {
        b.check_id(&id)?;
        let mut c = Server::fcall("baton_replay", &b.base(id.partition().get()));
        c.arg(id.uuid().simple().to_string())
            .arg(b.now().as_millis());
        let (reply, payload) = b.with_payload(&id, c).await?;
        b.outcome(&id, "replay", reply, payload).await
    })
    .await
}
