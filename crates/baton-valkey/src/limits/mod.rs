//! Limits: `set_limit`, `remove_limit`, `limits`, `limit_usage`, the
//! `limited` fact of `explain`, the limited claim path (`claim`) and the
//! release of slots (`release`). The design, its keys and what it costs are
//! in the crate's documentation ("Limits").

use std::time::Duration;

use baton_core::raw::rules::{self, Admission};
use baton_core::raw::stored;
use baton_core::{
    ExecutionSnapshot, Kind, Lane, Limit, LimitName, LimitUsage, LimitedBy, Namespace, Page,
};
use futures_util::future::join_all;
use serde_json::{Map, Value as Json};

use crate::*;

mod claim;
mod release;

pub(crate) use claim::claim_limited;
pub(crate) use release::{apply_releases, extend_holders};

/// How long after its lease's expiry a run's limit slots lapse when no
/// release freed them (the process that ended the run stopped before it
/// applied the release, and no promote pass handed it out since). Far
/// longer than a call's round trip: a renew made just before its lease
/// expired extends the slots (`baton_limit_renew`, sent right after the
/// renew) before they lapse, unless the calls stall for longer than this
/// (or the clocks of the processes differ by more).
pub const LIMIT_LAPSE_GRACE: Duration = Duration::from_secs(5);

/// How long `set_limit` may take to count what already runs: meanwhile the
/// new limit holds back the work it covers (as a cap of 0 would); a
/// `set_limit` that stops part way leaves it in force after this, counting
/// what it counted, until it is set again.
const ADOPT_MS: i64 = 30_000;

/// The control lock every limit writer holds.
const LOCK: &str = "limit-lock";
const BUSY: &str = "another limit is being written; try again in a moment";

impl ValkeyBackend {
    /// The base of the limit slot of namespace `ns`: every key of its
    /// limits carries the hash tag `{lim:<ns>}`.
    pub(crate) fn limit_base(&self, ns: &str) -> String {
        format!("{}:{{lim:{ns}}}", self.inner.prefix)
    }

    /// The hash naming every limit's namespace (`{ctl}:limits`).
    fn limit_index(&self) -> String {
        format!("{}:limits", self.ctl())
    }
}

/// A limit's definition as its namespace slot stores it (the field of
/// `def`; see `lua/common.lua`), with `ad` while `set_limit` adopts what
/// runs.
fn definition(limit: &Limit, adopting_until: Option<i64>) -> String {
    let mut d = Map::new();
    d.insert(
        "lane".into(),
        Json::from(limit.lane.as_ref().map_or("", Lane::as_str)),
    );
    d.insert("key".into(), Json::from(limit.key.to_string()));
    if let Some(max) = limit.max_running {
        d.insert("max".into(), Json::from(max));
    }
    if let Some(rate) = limit.rate {
        d.insert("rc".into(), Json::from(rate.count));
        d.insert("rp".into(), Json::from(window_ms(rate.per)));
    }
    if limit.fair {
        d.insert("fair".into(), Json::from(true));
    }
    if let Some(until) = adopting_until {
        d.insert("ad".into(), Json::from(until));
    }
    Json::Object(d).to_string()
}

fn window_ms(per: Duration) -> i64 {
    i64::try_from(per.as_millis()).unwrap_or(i64::MAX)
}

/// A stored definition read back: the limit, and until when it adopts
/// what runs (`None` once in force).
fn stored_definition(name: &str, namespace: &str, text: &str) -> Result<(Limit, Option<i64>)> {
    let bad = || EngineError::corruption(format!("limit {name:?}: definition {text:?}"));
    let d: Json = serde_json::from_str(text).map_err(|_| bad())?;
    let d = d.as_object().ok_or_else(bad)?;
    let field = |k: &str| d.get(k).and_then(Json::as_str).ok_or_else(bad);
    let number = |k: &str| -> Result<Option<i64>> {
        d.get(k).map(|v| v.as_i64().ok_or_else(bad)).transpose()
    };
    let limit = rules::stored_limit(
        name,
        namespace,
        field("lane")?,
        field("key")?,
        number("max")?,
        number("rc")?,
        number("rp")?,
        d.get("fair").and_then(Json::as_bool).unwrap_or(false),
    )?;
    Ok((limit, number("ad")?))
}

/// The limits stored in the slot of `namespace` (with whether each is
/// adopting until), unsorted.
async fn read_definitions(b: &ValkeyBackend, namespace: &str) -> Result<Vec<(Limit, Option<i64>)>> {
    let mut c = redis::cmd("HGETALL");
    c.arg(format!("{}:def", b.limit_base(namespace)));
    crate::memory::hash_pairs(b.run(&c).await?, "limit")?
        .into_iter()
        .map(|(name, def)| stored_definition(text(&name)?, namespace, text(&def)?))
        .collect()
}

/// How long an instance trusts its view of a namespace's fair limits when
/// placing submissions: a limit set or removed meanwhile changes only how
/// a few batches spread over the partitions, never their turns.
const FAIR_VIEW_TTL: Duration = Duration::from_secs(1);

/// The fair limits of `namespace`, by name, as read at most
/// [`FAIR_VIEW_TTL`] ago (one `HGETALL` of the namespace's limit slot per
/// namespace and second otherwise).
pub(crate) async fn fair_limits(b: &ValkeyBackend, namespace: &str) -> Result<Arc<Vec<Limit>>> {
    let now = Instant::now();
    if let Ok(views) = b.inner.fair_views.lock()
        && let Some((at, view)) = views.get(namespace)
        && now.duration_since(*at) < FAIR_VIEW_TTL
    {
        return Ok(view.clone());
    }
    let mut fair: Vec<Limit> = read_definitions(b, namespace)
        .await?
        .into_iter()
        .map(|(l, _)| l)
        .filter(|l| l.fair)
        .collect();
    rules::sort_limits(&mut fair);
    let view = Arc::new(fair);
    if let Ok(mut views) = b.inner.fair_views.lock() {
        views.insert(namespace.to_owned(), (now, view.clone()));
    }
    Ok(view)
}

/// The limit `name` of the slot of `namespace`, if stored.
async fn read_definition(
    b: &ValkeyBackend,
    namespace: &str,
    name: &str,
) -> Result<Option<(Limit, Option<i64>)>> {
    let mut c = redis::cmd("HGET");
    c.arg(format!("{}:def", b.limit_base(namespace))).arg(name);
    match b.run(&c).await? {
        Value::Nil => Ok(None),
        v => stored_definition(name, namespace, text(&v)?).map(Some),
    }
}

/// The namespace the index names for limit `name`.
async fn namespace_of(b: &ValkeyBackend, name: &str) -> Result<Option<String>> {
    let mut c = redis::cmd("HGET");
    c.arg(b.limit_index()).arg(name);
    match b.run(&c).await? {
        Value::Nil => Ok(None),
        v => Ok(Some(text(&v)?.to_owned())),
    }
}

/// Writes (or, with `definition` empty, removes) limit `name` in the slot
/// of `namespace`, dropping what its keys counted with `forget`; answers
/// the namespace's limit generation after it.
async fn define(
    b: &ValkeyBackend,
    namespace: &str,
    name: &str,
    definition: &str,
    forget: bool,
) -> Result<i64> {
    let mut c = Server::fcall("baton_limit_define", &b.limit_base(namespace));
    c.arg(name)
        .arg(definition)
        .arg(if forget { "1" } else { "0" });
    int(&b.run(&c).await?)
}

/// Rewrites every partition's copy of the limits of `namespace` (with the
/// generation `generation`), from the limits stored now: the lanes its
/// limits with a cap or a rate cover (once this answers, no `baton_claim`
/// takes their work) and the key spec of the fair limit ordering each lane
/// (`rules::fair_limit`: per lane a fair limit of its own names, and `''`
/// for every other lane), which every move into `waiting` there reads.
///
/// Every partition is written even when one fails, and the failed ones are
/// tried once more; an error after that means some partitions still hold
/// the old copy (claims there judge by the old limits, or by none), so it
/// is answered for the caller to repeat the whole call, which rewrites
/// them all.
async fn write_copies(b: &ValkeyBackend, namespace: &str, generation: i64) -> Result<()> {
    let mut limits: Vec<Limit> = read_definitions(b, namespace)
        .await?
        .into_iter()
        .map(|(l, _)| l)
        .collect();
    rules::sort_limits(&mut limits);
    let holding: Vec<&Limit> = limits.iter().filter(|l| l.holds_back()).collect();
    let lanes: BTreeSet<&str> = if holding.iter().any(|l| l.lane.is_none()) {
        [""].into_iter().collect()
    } else {
        holding
            .iter()
            .filter_map(|l| l.lane.as_ref().map(Lane::as_str))
            .collect()
    };
    let fair = fair_specs(&limits);
    let calls: Vec<Cmd> = b
        .inner
        .partitions
        .iter()
        .map(|p| {
            let mut c = Server::fcall("baton_limit_lanes", &b.base(p.get()));
            c.arg(namespace).arg(generation).arg(lanes.len());
            for lane in &lanes {
                c.arg(*lane);
            }
            for (lane, spec) in &fair {
                c.arg(*lane).arg(spec);
            }
            c
        })
        .collect();
    let mut pending: Vec<&Cmd> = calls.iter().collect();
    for attempt in 0..2 {
        let results = join_all(pending.iter().map(|c| b.run(c))).await;
        let mut failed = Vec::new();
        let mut last = None;
        for (c, result) in pending.into_iter().zip(results) {
            if let Err(e) = result {
                failed.push(c);
                last = Some(e);
            }
        }
        match last {
            None => return Ok(()),
            Some(e) if attempt == 1 => {
                return Err(EngineError::unavailable(format!(
                    "the limits of namespace {namespace:?} reached {} of {} partitions ({e}); \
                     repeat the call to write them everywhere",
                    calls.len() - failed.len(),
                    calls.len()
                )));
            }
            Some(_) => pending = failed,
        }
    }
    Ok(())
}

/// The fair key specs of a namespace's `limits` (sorted by name) as its
/// partitions' copies hold them: `("", spec)` of the first fair limit over
/// every lane, if any, for each lane without an entry of its own; and
/// `(lane, spec)` for each lane some fair limit names by itself
/// (`rules::fair_limit` of that lane, which weighs the limits over every
/// lane too).
fn fair_specs(limits: &[Limit]) -> Vec<(&str, String)> {
    let mut out = Vec::new();
    if let Some(all) = limits.iter().find(|l| l.fair && l.lane.is_none()) {
        out.push(("", all.key.to_string()));
    }
    let named: BTreeSet<&Lane> = limits
        .iter()
        .filter(|l| l.fair)
        .filter_map(|l| l.lane.as_ref())
        .collect();
    for lane in named {
        if let Some(l) = rules::fair_limit(limits, lane) {
            out.push((lane.as_str(), l.key.to_string()));
        }
    }
    out
}

/// Counts the runs of `limit`'s namespace (and lane) that already run
/// under it, partition by partition: read them, hold their slots until
/// their lease's expiry (plus the grace), mark them so their ends release
/// the slots (and their renews extend them), free those that ended before
/// they were marked (nothing else would release them), and extend those
/// renewed before they were marked.
async fn adopt(b: &ValkeyBackend, limit: &Limit) -> Result<()> {
    let lim = b.limit_base(limit.namespace.as_str());
    let lane = limit.lane.as_ref().map_or("", Lane::as_str);
    let grace = i64::try_from(LIMIT_LAPSE_GRACE.as_millis()).unwrap_or(i64::MAX);
    try_join_all(b.inner.partitions.iter().map(|p| {
        let lim = lim.clone();
        async move {
            let p = p.get();
            let mut c = Server::fcall("baton_limit_running", &b.base(p));
            c.arg(limit.namespace.as_str()).arg(lane);
            let found = array(b.run(&c).await?)?;
            if found.len() % 6 != 0 {
                return Err(read::corrupt("a short running entry"));
            }
            let mut counted = Server::fcall("baton_limit_adopt", &lim);
            counted.arg(limit.name.as_str());
            let mut mark = Server::fcall("baton_limit_mark", &b.base(p));
            let mut read_expiry: HashMap<String, i64> = HashMap::new();
            for run in found.chunks(6) {
                let uuid = text(&run[0])?;
                let attempt = text(&run[1])?;
                let ctx = format!("running execution {uuid} of partition {p}");
                let lane: Lane = text(&run[2])?
                    .parse()
                    .map_err(|_| EngineError::corruption(format!("{ctx}: lane")))?;
                let kind: Kind = text(&run[3])?
                    .parse()
                    .map_err(|_| EngineError::corruption(format!("{ctx}: kind")))?;
                let tags = stored::tags_json(&ctx, text(&run[4])?)?;
                let expires: i64 = text(&run[5])?
                    .parse()
                    .map_err(|_| EngineError::corruption(format!("{ctx}: lease expiry")))?;
                let Some(value) = rules::limit_key_value(limit, &lane, &kind, &tags) else {
                    continue;
                };
                let holder = format!("{uuid}:{attempt}");
                counted
                    .arg(&holder)
                    .arg(expires.saturating_add(grace))
                    .arg(value);
                mark.arg(uuid).arg(attempt);
                read_expiry.insert(holder, expires);
            }
            if read_expiry.is_empty() {
                return Ok(());
            }
            b.run(&counted).await?;
            let mut marked = array(b.run(&mark).await?)?.into_iter();
            let (Some(gone), Some(marked)) = (marked.next(), marked.next()) else {
                return Err(read::corrupt("a short mark reply"));
            };
            let gone = array(gone)?;
            if !gone.is_empty() {
                let mut free = Server::fcall("baton_limit_release", &lim);
                free.arg("end");
                for holder in &gone {
                    free.arg(text(holder)?);
                }
                b.run(&free).await?;
            }
            // A renew that landed between the read and the mark extended
            // its lease but not the slots (the run held none yet, so its
            // renewer sent no baton_limit_renew): extend them to the lease
            // the mark saw. The renew's GT never moves a lapse earlier.
            let marked = array(marked)?;
            if !marked.len().is_multiple_of(2) {
                return Err(read::corrupt("a short marked entry"));
            }
            let mut by_lapse: BTreeMap<i64, Vec<String>> = BTreeMap::new();
            for pair in marked.chunks(2) {
                let holder = text(&pair[0])?;
                let expires: i64 = text(&pair[1])?.parse().map_err(|_| {
                    EngineError::corruption(format!("marked holder {holder}: lease expiry"))
                })?;
                if read_expiry.get(holder).is_some_and(|e| expires > *e) {
                    by_lapse
                        .entry(expires.saturating_add(grace))
                        .or_default()
                        .push(holder.to_owned());
                }
            }
            for (lapse, holders) in by_lapse {
                let mut renew = Server::fcall("baton_limit_renew", &lim);
                renew.arg(lapse).arg(holders);
                b.run(&renew).await?;
            }
            Ok(())
        }
    }))
    .await?;
    Ok(())
}

/// Wakes the claimers of the lanes of `namespace` a limit change may let
/// claim more (`lane`, or every lane holding waiting work), here and in
/// every other process.
async fn wake(b: &ValkeyBackend, namespace: &Namespace, lane: Option<&Lane>) -> Result<()> {
    let lanes: Vec<Lane> = match lane {
        Some(lane) => vec![lane.clone()],
        None => crate::admin::counts(b, namespace)
            .await?
            .into_iter()
            .filter(|(_, c)| c.waiting > 0)
            .map(|(lane, _)| lane)
            .collect(),
    };
    let calls: Vec<Cmd> = lanes
        .iter()
        .map(|lane| {
            let mut c = redis::cmd("PUBLISH");
            c.arg(b.channel(&format!("{namespace}/{lane}"))).arg("");
            c
        })
        .collect();
    try_join_all(calls.iter().map(|c| b.inner.server.raw(c))).await?;
    for lane in &lanes {
        b.inner.wake.notify(namespace.as_str(), lane.as_str());
    }
    Ok(())
}

/// Runs to completion in a task of its own (see [`detached`]), under the
/// limit lock: the definition is written with `ad` (the limit holds its
/// work back), then every partition's copy of the limited lanes (from then
/// on only the limited path claims their work), then what already runs is
/// counted ([`adopt`]), and only then `ad` goes (if the definition is still
/// the one written: else `Contention`): so from the moment it holds work
/// back, no claim takes the limit's work beyond its cap. An error part way
/// may leave some partitions' copies unwritten: repeating the call
/// rewrites them.
pub(crate) async fn set_limit(b: &ValkeyBackend, limit: &Limit) -> Result<Option<Limit>> {
    limit.check()?;
    let (b, limit) = (b.clone(), limit.clone());
    detached(async move { crate::manage::locked_by(&b, LOCK, BUSY, write(&b, &limit)).await }).await
}

async fn write(b: &ValkeyBackend, limit: &Limit) -> Result<Option<Limit>> {
    let name = limit.name.as_str();
    let ns = limit.namespace.as_str();
    let mut pipe = redis::pipe();
    pipe.cmd("HGET").arg(b.limit_index()).arg(name);
    pipe.cmd("HLEN").arg(b.limit_index());
    let mut replies = b.inner.server.run_pipe(&pipe).await?.into_iter();
    let (Some(was_in), Some(held)) = (replies.next(), replies.next()) else {
        return Err(read::corrupt(
            "a limit read with fewer replies than commands",
        ));
    };
    let was_in = match was_in {
        Value::Nil => None,
        v => Some(text(&v)?.to_owned()),
    };
    let previous = match &was_in {
        Some(old) => read_definition(b, old, name).await?,
        None => None,
    };
    rules::check_limit_room(
        usize::try_from(int(&held)?).unwrap_or(usize::MAX),
        was_in.is_some(),
        &limit.name,
    )?;
    if let Some((p, adopting)) = &previous
        && p == limit
        && adopting.is_none()
    {
        return Ok(previous.map(|(p, _)| p));
    }
    if let Some(old) = was_in.as_deref().filter(|old| *old != ns) {
        // It moves to another namespace: it leaves the old one first.
        let generation = define(b, old, name, "", true).await?;
        write_copies(b, old, generation).await?;
    }
    // Keys counted under another key or lane mean something else now, and
    // a limit that no longer holds back counts nothing.
    let forget = previous.as_ref().is_some_and(|(p, _)| {
        p.namespace == limit.namespace
            && (p.key != limit.key || p.lane != limit.lane || !limit.holds_back())
    });
    if !limit.holds_back() {
        // Fair only: nothing to count, nothing to hold back meanwhile.
        let generation = define(b, ns, name, &definition(limit, None), forget).await?;
        let mut index = redis::cmd("HSET");
        index.arg(b.limit_index()).arg(name).arg(ns);
        b.run(&index).await?;
        write_copies(b, ns, generation).await?;
        wake(b, &limit.namespace, limit.lane.as_ref()).await?;
        return Ok(previous.map(|(p, _)| p));
    }
    let until = b.now().as_millis().saturating_add(ADOPT_MS);
    let adopting = definition(limit, Some(until));
    let generation = define(b, ns, name, &adopting, forget).await?;
    let mut index = redis::cmd("HSET");
    index.arg(b.limit_index()).arg(name).arg(ns);
    b.run(&index).await?;
    write_copies(b, ns, generation).await?;
    adopt(b, limit).await?;
    // In force, only if nobody changed the limit meanwhile (a writer slower
    // than its lock must not bring back a limit removed since).
    let mut in_force = Server::fcall("baton_limit_enforce", &b.limit_base(ns));
    in_force
        .arg(name)
        .arg(&adopting)
        .arg(generation)
        .arg(definition(limit, None));
    if int(&b.run(&in_force).await?)? != 1 {
        return Err(EngineError::Contention {
            message: format!(
                "limit {name:?} was changed by another writer while this one counted its runs"
            ),
        });
    }
    wake(b, &limit.namespace, limit.lane.as_ref()).await?;
    Ok(previous.map(|(p, _)| p))
}

/// Runs to completion in a task of its own (see [`detached`]), under the
/// limit lock: the definition goes with what its keys counted, then every
/// partition's copy of the limited lanes is rewritten (an error part way:
/// repeat the call).
pub(crate) async fn remove_limit(b: &ValkeyBackend, name: &LimitName) -> Result<Option<Limit>> {
    let (b, name) = (b.clone(), name.clone());
    detached(async move { crate::manage::locked_by(&b, LOCK, BUSY, erase(&b, &name)).await }).await
}

async fn erase(b: &ValkeyBackend, name: &LimitName) -> Result<Option<Limit>> {
    let Some(ns) = namespace_of(b, name.as_str()).await? else {
        return Ok(None);
    };
    let previous = read_definition(b, &ns, name.as_str()).await?;
    let generation = define(b, &ns, name.as_str(), "", true).await?;
    write_copies(b, &ns, generation).await?;
    // Named until every copy is rewritten, so a repeat after an error
    // finds the namespace whose copies to rewrite.
    let mut index = redis::cmd("HDEL");
    index.arg(b.limit_index()).arg(name.as_str());
    b.run(&index).await?;
    if let Some((limit, _)) = &previous {
        wake(b, &limit.namespace, limit.lane.as_ref()).await?;
    }
    Ok(previous.map(|(p, _)| p))
}

pub(crate) async fn limits(b: &ValkeyBackend, namespace: Option<&Namespace>) -> Result<Vec<Limit>> {
    let namespaces: BTreeSet<String> = match namespace {
        Some(ns) => [ns.to_string()].into_iter().collect(),
        None => {
            let mut c = redis::cmd("HGETALL");
            c.arg(b.limit_index());
            crate::memory::hash_pairs(b.run(&c).await?, "limit index")?
                .into_iter()
                .map(|(_, ns)| text(&ns).map(str::to_owned))
                .collect::<Result<_>>()?
        }
    };
    let read = try_join_all(namespaces.iter().map(|ns| read_definitions(b, ns))).await?;
    let mut out: Vec<Limit> = read.into_iter().flatten().map(|(l, _)| l).collect();
    rules::sort_limits(&mut out);
    Ok(out)
}

pub(crate) async fn limit_usage(
    b: &ValkeyBackend,
    name: &LimitName,
    limit: usize,
) -> Result<Vec<LimitUsage>> {
    Page::first(limit).validate()?;
    let now = b.now().as_millis();
    let found = match namespace_of(b, name.as_str()).await? {
        Some(ns) => read_definition(b, &ns, name.as_str()).await?,
        None => None,
    };
    let Some((found, _)) = found else {
        return Err(rules::no_such_limit(name));
    };
    let lim = b.limit_base(found.namespace.as_str());
    // The values that may have runs or window claims now.
    let mut values = redis::cmd("ZRANGEBYSCORE");
    values
        .arg(format!("{lim}:v:{name}"))
        .arg(format!("({now}"))
        .arg("+inf");
    let values: Vec<String> = array(b.run(&values).await?)?
        .iter()
        .map(|v| text(v).map(str::to_owned))
        .collect::<Result<_>>()?;
    if values.is_empty() {
        return Ok(Vec::new());
    }
    let per = found.rate.map(|r| window_ms(r.per));
    let mut pipe = redis::pipe();
    for v in &values {
        pipe.cmd("ZCOUNT")
            .arg(format!("{lim}:r:{name}/{v}"))
            .arg(format!("({now}"))
            .arg("+inf");
        if let Some(per) = per {
            pipe.cmd("ZCOUNT")
                .arg(format!("{lim}:q:{name}/{v}"))
                .arg(format!("({}", now.saturating_sub(per)))
                .arg("+inf");
        }
    }
    let mut replies = b.inner.server.run_pipe(&pipe).await?.into_iter();
    let mut next = || {
        replies
            .next()
            .ok_or_else(|| read::corrupt("a usage read with fewer replies than commands"))
    };
    let mut out = Vec::new();
    for v in values {
        let running = u64::try_from(int(&next()?)?).unwrap_or(0);
        let window_claims = match per {
            Some(_) => u32::try_from(int(&next()?)?).unwrap_or(u32::MAX),
            None => 0,
        };
        if running > 0 || window_claims > 0 {
            out.push(LimitUsage {
                name: name.clone(),
                key_value: v,
                running,
                window_claims,
            });
        }
    }
    out.sort_by(|a, b| a.key_value.cmp(&b.key_value));
    out.truncate(limit);
    Ok(out)
}

/// The limit holding the waiting execution `snap` back now, if any
/// (`explain`): the admission of a claim of its lane, over what its keys
/// hold in its namespace's limit slot.
pub(crate) async fn limited(
    b: &ValkeyBackend,
    snap: &ExecutionSnapshot,
    now: Timestamp,
) -> Result<Option<LimitedBy>> {
    let limits = read_definitions(b, snap.namespace.as_str()).await?;
    let lanes = [snap.lane.clone()];
    let now_ms = now.as_millis();
    // A limit still counting what runs holds its work back as a cap of 0
    // does (as `stored_limits` of the admission reads it).
    let mut counting: BTreeSet<LimitName> = BTreeSet::new();
    let limits = limits.into_iter().map(|(mut l, adopting)| {
        if l.holds_back() && adopting.is_some_and(|until| until > now_ms) {
            l.max_running = Some(0);
            counting.insert(l.name.clone());
        }
        l
    });
    let mut admission = Admission::new(limits, &snap.namespace, &lanes, now);
    if admission.is_empty() {
        return Ok(None);
    }
    let lim = b.limit_base(snap.namespace.as_str());
    let keys: Vec<(LimitName, String, Option<i64>)> = admission
        .limits()
        .iter()
        .filter_map(|l| {
            rules::limit_key_value(l, &snap.lane, &snap.kind, &snap.tags).map(|v| {
                (
                    l.name.clone(),
                    v.to_owned(),
                    l.rate.map(|r| window_ms(r.per)),
                )
            })
        })
        .collect();
    if keys.is_empty() {
        return Ok(None);
    }
    let mut pipe = redis::pipe();
    for (name, value, per) in &keys {
        pipe.cmd("ZCOUNT")
            .arg(format!("{lim}:r:{name}/{value}"))
            .arg(format!("({now_ms}"))
            .arg("+inf");
        if let Some(per) = per {
            pipe.cmd("ZRANGEBYSCORE")
                .arg(format!("{lim}:q:{name}/{value}"))
                .arg(format!("({}", now_ms.saturating_sub(*per)))
                .arg("+inf")
                .arg("WITHSCORES");
        }
    }
    let mut replies = b.inner.server.run_pipe(&pipe).await?.into_iter();
    let mut next = || {
        replies
            .next()
            .ok_or_else(|| read::corrupt("a limit read with fewer replies than commands"))
    };
    for (name, value, per) in &keys {
        let running = u64::try_from(int(&next()?)?).unwrap_or(0);
        admission.set_running(name, value, running);
        if per.is_some() {
            let window = scored(next()?)?.into_iter().map(|(_, at)| at).collect();
            admission.set_window(name, value, window);
        }
    }
    Ok(admission
        .check(&snap.lane, &snap.kind, &snap.tags)
        .map(|mut why| {
            // Not a cap of 0: held back until set_limit counted what runs.
            if counting.contains(&why.limit) {
                why.max_running = None;
            }
            why
        }))
}

/// The members and integer scores of a `WITHSCORES` reply (flat pairs, or
/// pairs under RESP3).
fn scored(v: Value) -> Result<Vec<(String, i64)>> {
    let mut flat = Vec::new();
    for item in array(v)? {
        match item {
            Value::Array(pair) => flat.extend(pair),
            other => flat.push(other),
        }
    }
    let mut out = Vec::with_capacity(flat.len() / 2);
    let mut it = flat.into_iter();
    while let (Some(m), Some(score)) = (it.next(), it.next()) {
        let score = match score {
            // Scores written here are whole milliseconds.
            Value::Double(d) => int(&Value::SimpleString(format!("{d}")))?,
            other => int(&other)?,
        };
        out.push((text(&m)?.to_owned(), score));
    }
    Ok(out)
}
