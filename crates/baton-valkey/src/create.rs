//! `create`: one transaction per partition (payload keys written beside
//! one `baton_create` call).

use crate::*;
use baton_core::raw::rules::{self, UpstreamFacts};

/// Runs to completion in a task of its own (see [`detached`]).
pub(crate) async fn create(
    b: &ValkeyBackend,
    executions: Vec<NewExecution>,
) -> Result<Vec<CreateOutcome>> {
    let b = b.clone();
    detached(async move { create_now(&b, executions).await }).await
}

async fn create_now(
    b: &ValkeyBackend,
    executions: Vec<NewExecution>,
) -> Result<Vec<CreateOutcome>> {
    let now = b.now();
    let count = b.inner.partitions;
    let mut rows = PreparedExecution::prepare_batch(executions, &b.inner.limits, now, count)?;
    let roots = check_parents(b, &rows).await?;
    let mut upstreams = check_dependencies(b, &rows, &roots).await?;
    // Placement: a child stays in its parent's partition (its id was made
    // there); a submission with a session goes to the session's partition,
    // where its lock lives (so one claim call checks and takes it), and its
    // idempotency key with it; another with an idempotency key goes where
    // its key lives; the rest of the call goes to one partition, the next in this
    // instance's rotation, so a batch is one function call and its
    // executions are claimed and completed together.
    //
    // Except in a lane a fair limit orders: turns are given per partition
    // and claims merge the partitions in turn order, so a key whose work
    // sat in one partition would hold one turn per round against a turn
    // per partition of a key spread over all of them. There the call's
    // executions are dealt over the partitions one by one from the same
    // starting point, so every key's work spreads like the others'.
    let together = b.next_placement();
    let mut fair_views: BTreeMap<String, Arc<Vec<baton_core::Limit>>> = BTreeMap::new();
    for r in &rows {
        let ns = r.new.namespace.as_str();
        if r.new.parent.is_none()
            && r.new.session.is_none()
            && r.new.idempotency_key.is_none()
            && !fair_views.contains_key(ns)
        {
            fair_views.insert(ns.to_owned(), crate::limits::fair_limits(b, ns).await?);
        }
    }
    let fair_lane = |n: &NewExecution| {
        fair_views
            .get(n.namespace.as_str())
            .is_some_and(|fair| rules::fair_limit(fair, &n.lane).is_some())
    };
    let mut dealt: u32 = 0;
    let mut groups: BTreeMap<u16, Vec<usize>> = BTreeMap::new();
    for (i, r) in rows.iter_mut().enumerate() {
        let p = match (&r.new.parent, &r.new.session) {
            (Some(parent), _) => parent.partition().get(),
            (None, Some(s)) => rules::session_partition(&r.new.namespace, s, count).get(),
            (None, None) => match idempotency_partition(&r.new, count) {
                Some(p) => p,
                None if fair_lane(&r.new) => {
                    let p = (u32::from(together) + dealt) % u32::from(count.get());
                    dealt += 1;
                    p as u16
                }
                None => together,
            },
        };
        if r.id.partition().get() != p {
            r.id = ExecutionId::generate_in(PartitionId(p), count)?;
        }
        groups.entry(r.id.partition().get()).or_default().push(i);
    }
    // One transaction per partition: the payloads (one MSET, straight
    // into their keys, never through Lua), then the function call that
    // writes the records and indexes.
    let calls: Vec<(u16, redis::Pipeline)> = groups
        .iter()
        .map(|(p, positions)| {
            let base = b.base(*p);
            let mut c = Server::fcall("baton_create", &base);
            c.arg(positions.len());
            let mut payloads = redis::cmd("MSET");
            for &i in positions {
                let r = &rows[i];
                let n = &r.new;
                let b = &n.retry.backoff;
                let text = |v: &dyn ToString| v.to_string();
                let now_ms = now.as_millis().to_string();
                let pri = text(&n.priority);
                let retry = format!(
                    "{} {} {} {} {}",
                    n.retry.max_attempts,
                    b.initial_ms,
                    b.max_ms,
                    b.multiplier,
                    if b.jitter { 1 } else { 0 }
                );
                let run_at = ms(r.run_at);
                let deadline = ms(n.deadline);
                let ready_at = if run_at.is_empty() {
                    now_ms.clone()
                } else {
                    run_at.clone()
                };
                let parent = n.parent.as_ref().map(|p| p.to_string());
                let mut fields: Vec<(&str, &[u8])> = vec![
                    ("ns", n.namespace.as_str().as_bytes()),
                    ("lane", n.lane.as_str().as_bytes()),
                    ("kind", n.kind.as_str().as_bytes()),
                    ("st", r.state.as_str().as_bytes()),
                    ("pri", pri.as_bytes()),
                    ("att", b"0"),
                    ("rp", retry.as_bytes()),
                    ("ca", now_ms.as_bytes()),
                    ("ua", now_ms.as_bytes()),
                    ("rd", ready_at.as_bytes()),
                    // `hx` and `ev` are the call's to write, when the
                    // history of the namespace is on (see create.lua).
                ];
                // No tags and no capabilities are the absent fields.
                if r.tags_json != "{}" {
                    fields.push(("tags", r.tags_json.as_bytes()));
                }
                if r.caps_json != "[]" {
                    fields.push(("caps", r.caps_json.as_bytes()));
                }
                if let Some(k) = &n.idempotency_key {
                    fields.push(("ik", k.as_str().as_bytes()));
                }
                if let Some(p) = &parent {
                    fields.push(("par", p.as_bytes()));
                    // Counted in its parent's and root's counters (a
                    // child written before generation 3 is not).
                    fields.push(("fl", b"1"));
                }
                if let Some(k) = &n.child_key {
                    fields.push(("ck", k.as_str().as_bytes()));
                }
                let version_key = n.version.as_ref().map(|v| v.sort_key());
                if let Some(s) = &n.session {
                    fields.push(("ses", s.as_str().as_bytes()));
                }
                if let (Some(v), Some(k)) = (&n.version, &version_key) {
                    fields.push(("ver", v.as_str().as_bytes()));
                    fields.push(("vk", k.as_bytes()));
                }
                let root = n
                    .parent
                    .as_ref()
                    .and_then(|p| roots.get(p))
                    .map(|r| r.to_string());
                if let Some(r) = &root {
                    fields.push(("rt", r.as_bytes()));
                }
                if !run_at.is_empty() {
                    fields.push(("ra", run_at.as_bytes()));
                }
                if !deadline.is_empty() {
                    fields.push(("dl", deadline.as_bytes()));
                }
                // The state and counters of a dependent are decided inside
                // the call, from its upstreams' states then.
                let dependencies = (!n.depends_on.is_empty()).then(|| {
                    let uuids: Vec<String> = n
                        .depends_on
                        .iter()
                        .map(|u| u.uuid().simple().to_string())
                        .collect();
                    (
                        n.dependency_policy.to_string(),
                        n.depends_on.len().to_string(),
                        uuids.join(" "),
                    )
                });
                if let Some((policy, total, uuids)) = &dependencies {
                    fields.push(("dp", policy.as_bytes()));
                    fields.push(("dt", total.as_bytes()));
                    fields.push(("deps", uuids.as_bytes()));
                }
                let record = read::encode_record(&fields);
                let uuid = r.id.uuid().simple().to_string();
                let member = if r.state == State::Waiting {
                    claim_member(n.priority, now.as_millis(), &uuid)
                } else {
                    String::new()
                };
                payloads
                    .arg(format!("{base}:p:{uuid}"))
                    .arg(n.payload.as_slice());
                c.arg(uuid)
                    .arg(n.namespace.as_str())
                    .arg(n.lane.as_str())
                    .arg(r.state.as_str())
                    .arg(member)
                    .arg(r.caps_json.as_str())
                    .arg(n.idempotency_key.as_ref().map(|k| k.as_str()).unwrap_or(""))
                    .arg(&run_at)
                    .arg(&deadline)
                    .arg(record)
                    .arg(n.session.as_ref().map(|s| s.as_str()).unwrap_or(""))
                    .arg(version_key.as_deref().unwrap_or(""));
            }
            // The children of the call, after the items (see create.lua).
            let children: Vec<(usize, &ExecutionId)> = positions
                .iter()
                .enumerate()
                .filter_map(|(k, &i)| rows[i].new.parent.as_ref().map(|p| (k, p)))
                .collect();
            c.arg(children.len());
            for (k, parent) in children {
                let n = &rows[positions[k]].new;
                c.arg(k)
                    .arg(parent.uuid().simple().to_string())
                    .arg(n.child_key.as_ref().map(|k| k.as_str()).unwrap_or(""))
                    .arg(
                        roots
                            .get(parent)
                            .map(|r| r.uuid().simple().to_string())
                            .unwrap_or_default(),
                    );
            }
            // The items with dependencies, after the children.
            let dependents: Vec<usize> = positions
                .iter()
                .enumerate()
                .filter(|(_, i)| !rows[**i].new.depends_on.is_empty())
                .map(|(k, _)| k)
                .collect();
            c.arg(dependents.len());
            for k in dependents {
                c.arg(k);
            }
            // The time of every item's first event.
            c.arg(now.as_millis());
            let mut pipe = redis::pipe();
            pipe.atomic().add_command(payloads).add_command(c);
            (*p, pipe)
        })
        .collect();
    let replies = try_join_all(calls.iter().map(|(_, pipe)| async move {
        let mut replies = b.inner.server.run_pipe(pipe).await?;
        replies
            .pop()
            .ok_or_else(|| read::corrupt("a create transaction without its reply"))
    }))
    .await?;
    let mut outcomes: Vec<Option<CreateOutcome>> = vec![None; rows.len()];
    let mut woken = Vec::new();
    let mut refused: Option<EngineError> = None;
    for ((p, _), reply) in calls.iter().zip(replies) {
        let mut items = array(reply)?.into_iter();
        let w = items
            .next()
            .ok_or_else(|| read::corrupt("empty create reply"))?;
        let positions = &groups[p];
        if matches!(&w, Value::BulkString(t) if t.as_slice() == b"parent_missing") {
            // A parent trimmed since it was checked: nothing of this
            // partition's share was written.
            let item = items
                .next()
                .map(|v| int(&v))
                .transpose()?
                .and_then(|i| usize::try_from(i).ok())
                .and_then(|i| positions.get(i).copied())
                .ok_or_else(|| read::corrupt("a parent_missing reply without its item"))?;
            let parent = rows[item]
                .new
                .parent
                .clone()
                .unwrap_or_else(|| rows[item].id.clone());
            // The other partitions' shares were written: their lanes are
            // still announced below before the error is answered.
            refused.get_or_insert(
                EngineError::invalid(
                    "parent",
                    parent,
                    "no such execution; a parent must exist (and not be trimmed) when its child is created",
                )
                .in_batch(item),
            );
            continue;
        }
        if matches!(&w, Value::BulkString(t) if t.as_slice() == b"dependency_refused") {
            // An upstream trimmed since it was checked: nothing of this
            // partition's share was written.
            let refusal: Vec<Value> = items.collect();
            let error = dependency_refused(
                &refusal,
                positions,
                &rows,
                &roots,
                &mut upstreams,
                PartitionId(*p),
                count,
            )?;
            refused.get_or_insert(error);
            continue;
        }
        woken.extend(b.woken_from(*p, w)?);
        let flat: Vec<Value> = items.collect();
        if flat.len() != positions.len() * 3 {
            return Err(read::corrupt("a short create outcome"));
        }
        for (&pos, f) in positions.iter().zip(flat.chunks(3)) {
            let id = read::execution_id(text(&f[0])?, PartitionId(*p), count)?;
            let state: State = text(&f[1])?
                .parse()
                .map_err(|_| EngineError::corruption(format!("execution {id}: stored state")))?;
            outcomes[pos] = Some(CreateOutcome {
                id,
                state,
                created: int(&f[2])? == 1,
            });
        }
    }
    b.announce(woken).await?;
    if let Some(e) = refused {
        return Err(e);
    }
    outcomes
        .into_iter()
        .map(|o| o.ok_or_else(|| read::corrupt("create answered fewer outcomes than items")))
        .collect()
}

/// Reads the parents the batch names and checks them
/// ([`rules::check_parents`](baton_core::raw::rules::check_parents)) before
/// anything is written, for errors that name the item; `baton_create`
/// checks again inside its call, so a parent trimmed in between refuses
/// that partition's share. Answers the root each parent's children belong
/// to.
async fn check_parents(
    b: &ValkeyBackend,
    rows: &[PreparedExecution],
) -> Result<HashMap<ExecutionId, ExecutionId>> {
    let parents = rules::parents_named(rows);
    let mut found = HashMap::with_capacity(parents.len());
    for parent in parents {
        match b.read_fields(parent, false).await {
            Ok(fields) => {
                let ctx = format!("execution {parent}");
                let facts = baton_core::raw::stored::parent_facts(
                    parent,
                    fields.str(&ctx, "ns")?,
                    fields.opt_str(&ctx, "rt")?,
                )?;
                found.insert(parent.clone(), facts);
            }
            Err(EngineError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    rules::check_parents(rows, &found)
}

/// Reads the upstream executions the batch names and checks the batch's
/// dependencies ([`rules::check_dependencies`](baton_core::raw::rules::check_dependencies))
/// before anything is written, for errors that name the item;
/// `baton_create` checks again inside its call, and decides how each
/// dependent starts from its upstreams' states then. Answers what was
/// read.
async fn check_dependencies(
    b: &ValkeyBackend,
    rows: &[PreparedExecution],
    roots: &HashMap<ExecutionId, ExecutionId>,
) -> Result<HashMap<ExecutionId, UpstreamFacts>> {
    let named = rules::upstreams_named(rows);
    let mut found = HashMap::with_capacity(named.len());
    if named.is_empty() {
        return Ok(found);
    }
    // Core placed every upstream in its dependent's parent's partition.
    let mut by_partition: BTreeMap<u16, Vec<&ExecutionId>> = BTreeMap::new();
    for id in named {
        if b.check_id(id).is_ok() {
            by_partition
                .entry(id.partition().get())
                .or_default()
                .push(id);
        }
    }
    for (p, ids) in by_partition {
        let uuids: Vec<String> = ids.iter().map(|i| i.uuid().simple().to_string()).collect();
        for (id, fields) in ids.into_iter().zip(b.records(p, &uuids, false).await?) {
            if let Some(fields) = fields {
                found.insert(id.clone(), upstream_facts(id, &fields)?);
            }
        }
    }
    rules::check_dependencies(rows, roots, &found)?;
    Ok(found)
}

/// What a dependency check needs of a stored upstream execution.
fn upstream_facts(id: &ExecutionId, fields: &Fields) -> Result<UpstreamFacts> {
    let ctx = format!("execution {id}");
    Ok(UpstreamFacts {
        namespace: fields.parsed(&ctx, "ns")?,
        root: fields.opt_parsed(&ctx, "rt")?,
        state: fields.state(&ctx)?,
    })
}

/// The error of a `dependency_refused` reply ({ item, upstream uuid, its
/// namespace or '' when it is gone, its stored root or '' }): the check of
/// [`check_dependencies`] again, with what the call found of that upstream.
fn dependency_refused(
    reply: &[Value],
    positions: &[usize],
    rows: &[PreparedExecution],
    roots: &HashMap<ExecutionId, ExecutionId>,
    found: &mut HashMap<ExecutionId, UpstreamFacts>,
    partition: PartitionId,
    count: PartitionCount,
) -> Result<EngineError> {
    let [item, upstream, namespace, root] = reply else {
        return Err(read::corrupt("a short dependency_refused reply"));
    };
    let item = usize::try_from(int(item)?)
        .ok()
        .and_then(|i| positions.get(i).copied())
        .ok_or_else(|| read::corrupt("a dependency_refused reply without its item"))?;
    let upstream = read::execution_id(text(upstream)?, partition, count)?;
    match text(namespace)? {
        "" => {
            found.remove(&upstream);
        }
        ns => {
            let ctx = format!("execution {upstream}");
            let facts = UpstreamFacts {
                namespace: baton_core::raw::stored::parse("namespace", &ctx, ns)?,
                root: match text(root)? {
                    "" => None,
                    r => Some(baton_core::raw::stored::parse("root", &ctx, r)?),
                },
                // Not what refused it (namespace and flow are checked
                // first): kept as read before the call.
                state: found
                    .get(&upstream)
                    .map(|f| f.state)
                    .unwrap_or(State::Waiting),
            };
            found.insert(upstream.clone(), facts);
        }
    }
    Ok(match rules::check_dependencies(rows, roots, found) {
        Err(e) => e,
        // The call saw what no check refuses: say what it saw.
        Ok(_) => EngineError::invalid(
            "depends_on",
            upstream,
            "this upstream execution changed while the batch was created; create it again",
        )
        .in_batch(item),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_core::{Kind, Limits};

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    /// A refusal of the call reads as the rules' own error for what the
    /// call found: the item's place in the batch, the field, the id.
    #[test]
    fn a_refusal_in_the_call_is_the_rules_error() {
        let count = PartitionCount::new(4).unwrap();
        let p = PartitionId(1);
        let root = ExecutionId::generate_in(p, count).unwrap();
        let up = ExecutionId::generate_in(p, count).unwrap();
        let ns = Namespace::new("n").unwrap();
        let new = |deps: Vec<ExecutionId>| {
            NewExecution::new(
                ns.clone(),
                Lane::new("l").unwrap(),
                Kind::new("k").unwrap(),
                Vec::new(),
            )
            .with_parent(root.clone())
            .with_dependencies(deps)
        };
        let rows = PreparedExecution::prepare_batch(
            vec![new(Vec::new()), new(vec![up.clone()])],
            &Limits::default(),
            Timestamp::from_millis(0),
            count,
        )
        .unwrap();
        let roots = HashMap::from([(root.clone(), root.clone())]);
        let facts = UpstreamFacts {
            namespace: ns.clone(),
            root: Some(root.clone()),
            state: State::Waiting,
        };
        let mut found = HashMap::from([(up.clone(), facts.clone())]);
        rules::check_dependencies(&rows, &roots, &found).unwrap();
        let uuid = up.uuid().simple().to_string();
        let check = |reply: [Value; 4], found: &mut HashMap<ExecutionId, UpstreamFacts>| {
            // The share's item 0 is the batch's item 1.
            dependency_refused(&reply, &[1], &rows, &roots, found, p, count).unwrap()
        };
        let gone = check([Value::Int(0), bulk(&uuid), bulk(""), bulk("")], &mut found);
        let elsewhere = check(
            [Value::Int(0), bulk(&uuid), bulk("other"), bulk("")],
            &mut found.clone(),
        );
        for (e, says) in [(gone, "no such execution"), (elsewhere, "namespace other")] {
            let text = e.to_string();
            assert!(
                matches!(&e, EngineError::InvalidInput { field, .. } if *field == "depends_on"),
                "{e:?}"
            );
            for part in [says, "item 1 of the batch", &up.to_string()] {
                assert!(text.contains(part), "{text} should say {part}");
            }
        }
        let found_again = HashMap::from([(up.clone(), facts)]);
        assert!(
            dependency_refused(
                &[Value::Int(5), bulk(&uuid), bulk(""), bulk("")],
                &[1],
                &rows,
                &roots,
                &mut found_again.clone(),
                p,
                count
            )
            .is_err(),
            "an item the share does not hold is a corrupt reply"
        );
    }
}
