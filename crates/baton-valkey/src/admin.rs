//! Reads: `describe` and the admin surface (`list`, `counts`, `namespaces`,
//! `attempts`).

use crate::*;

impl ValkeyBackend {
    /// Every partition's counters, `<ns>/<lane>/<state>` → count.
    pub(crate) async fn all_counts(&self) -> Result<Vec<(String, i64)>> {
        let calls: Vec<Cmd> = self
            .inner
            .partitions
            .iter()
            .map(|p| {
                let mut c = redis::cmd("HGETALL");
                c.arg(format!("{}:counts", self.base(p.get())));
                c
            })
            .collect();
        let replies = try_join_all(calls.iter().map(|c| self.run(c))).await?;
        let mut out = Vec::new();
        for reply in replies {
            let items = match reply {
                Value::Map(pairs) => pairs.into_iter().flat_map(|(k, v)| [k, v]).collect(),
                other => array(other)?,
            };
            let mut it = items.into_iter();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                out.push((text(&k)?.to_owned(), int(&v)?));
            }
        }
        Ok(out)
    }

    /// The execution record, and with `payload` its payload as field `pl`
    /// (read right after it on the same connection; an execution trimmed in
    /// between is not found).
    pub(crate) async fn read_fields(&self, id: &ExecutionId, payload: bool) -> Result<Fields> {
        self.check_id(id)?;
        let base = self.base(id.partition().get());
        let uuid = id.uuid().simple();
        let mut get = redis::cmd("GET");
        get.arg(format!("{base}:e:{uuid}"));
        let not_found = || EngineError::NotFound { id: id.clone() };
        let record = |v: Value| -> Result<Fields> {
            match v {
                Value::Nil => Err(not_found()),
                other => Fields::from_record(bytes(&other)?),
            }
        };
        if !payload {
            return record(self.run(&get).await?);
        }
        let mut get_payload = redis::cmd("GET");
        get_payload.arg(format!("{base}:p:{uuid}"));
        let (fields, payload) = tokio::try_join!(self.run(&get), self.run(&get_payload))?;
        let mut fields = record(fields)?;
        match payload {
            Value::Nil => return Err(not_found()),
            other => fields.set("pl", bytes(&other)?.to_vec()),
        }
        Ok(fields)
    }
}

pub(crate) async fn describe(b: &ValkeyBackend, id: &ExecutionId) -> Result<ExecutionSnapshot> {
    let fields = b.read_fields(id, true).await?;
    read::snapshot(id.clone(), &fields)
}

pub(crate) async fn list(b: &ValkeyBackend, filter: &ListFilter, page: Page) -> Result<ListPage> {
    filter.check(b.inner.partitions)?;
    page.validate()?;
    let after = page
        .cursor
        .map(|c| c.after_uuid().simple().to_string())
        .unwrap_or_default();
    let want = page.limit + 1;
    let parent = filter.parent.as_ref().map(|p| p.to_string());
    let states: Vec<&str> = filter.states.iter().map(|s| s.as_str()).collect();
    let states = states.join(",");
    let ms =
        |t: Option<baton_core::Timestamp>| t.map(|t| t.as_millis().to_string()).unwrap_or_default();
    // A child lives in its parent's partition: only that one is read.
    let calls: Vec<(u16, Cmd)> = b
        .inner
        .partitions
        .iter()
        .filter(|p| {
            filter
                .parent
                .as_ref()
                .is_none_or(|parent| parent.partition() == *p)
        })
        .map(|p| {
            let mut c = Server::fcall("baton_list", &b.base(p.get()));
            c.arg(filter.namespace.as_str())
                .arg(&after)
                .arg(want)
                .arg(LIST_BUDGET.max(want))
                .arg(filter.lane.as_ref().map(|l| l.as_str()).unwrap_or(""))
                .arg(states.as_str())
                .arg(filter.kind.as_ref().map(|k| k.as_str()).unwrap_or(""))
                .arg(filter.tag.as_ref().map(|t| t.0.as_str()).unwrap_or(""))
                .arg(filter.tag.as_ref().map(|t| t.1.as_str()).unwrap_or(""))
                .arg(parent.as_deref().unwrap_or(""))
                .arg(ms(filter.created_after))
                .arg(ms(filter.created_before))
                .arg(ms(filter.finished_after))
                .arg(ms(filter.finished_before))
                .arg(
                    filter
                        .idempotency_key
                        .as_ref()
                        .map(|k| k.as_str())
                        .unwrap_or(""),
                );
            (p.get(), c)
        })
        .collect();
    let replies = try_join_all(calls.iter().map(|(_, c)| b.run(c))).await?;
    // Entries up to the lowest frontier were examined in every
    // partition; beyond it some partition was not looked at yet.
    let mut bound: Option<(Uuid, u16)> = None;
    let mut found: Vec<(Uuid, u16, Fields)> = Vec::new();
    for ((p, _), reply) in calls.iter().zip(replies) {
        let mut items = array(reply)?.into_iter();
        let frontier = text(
            &items
                .next()
                .ok_or_else(|| read::corrupt("empty list reply"))?,
        )?
        .to_owned();
        if !frontier.is_empty() {
            let u = Uuid::try_parse(&frontier)
                .map_err(|_| read::corrupt("a list frontier that is not a uuid"))?;
            if bound.is_none_or(|(bu, _)| u < bu) {
                bound = Some((u, *p));
            }
        }
        while let (Some(uuid), Some(record), Some(payload)) =
            (items.next(), items.next(), items.next())
        {
            let u = Uuid::try_parse(text(&uuid)?).map_err(|_| read::corrupt("a listed uuid"))?;
            let mut fields = Fields::from_record(bytes(&record)?)?;
            fields.set("pl", bytes(&payload)?.to_vec());
            found.push((u, *p, fields));
        }
    }
    found.sort_by_key(|(u, _, _)| *u);
    if let Some((bu, _)) = bound {
        found.retain(|(u, _, _)| *u <= bu);
    }
    let more = found.len() > page.limit;
    let mut items = Vec::with_capacity(page.limit.min(found.len()));
    for (u, p, fields) in found.into_iter().take(page.limit) {
        let id = read::execution_id(&u.simple().to_string(), PartitionId(p), b.inner.partitions)?;
        items.push(read::snapshot(id, &fields)?);
    }
    let next_cursor = if more {
        items.last().map(|s| ListCursor::after(&s.id))
    } else if let Some((bu, p)) = bound {
        let id = read::execution_id(&bu.simple().to_string(), PartitionId(p), b.inner.partitions)?;
        Some(ListCursor::after(&id))
    } else {
        None
    };
    Ok(ListPage { items, next_cursor })
}

pub(crate) async fn counts(
    b: &ValkeyBackend,
    namespace: &Namespace,
) -> Result<BTreeMap<Lane, StateCounts>> {
    let prefix = format!("{namespace}/");
    let mut out: BTreeMap<Lane, StateCounts> = BTreeMap::new();
    for (field, n) in b.all_counts().await? {
        let Some(rest) = field.strip_prefix(&prefix) else {
            continue;
        };
        if n <= 0 {
            continue;
        }
        let (lane, state) = rest
            .split_once('/')
            .ok_or_else(|| EngineError::corruption(format!("count field {field:?}")))?;
        let lane: Lane = lane
            .parse()
            .map_err(|_| EngineError::corruption(format!("count field {field:?}")))?;
        let state: State = state
            .parse()
            .map_err(|_| EngineError::corruption(format!("count field {field:?}")))?;
        *out.entry(lane).or_default().get_mut(state) += n as u64;
    }
    Ok(out)
}

pub(crate) async fn namespaces(b: &ValkeyBackend, limit: usize) -> Result<Vec<Namespace>> {
    Page::first(limit).validate()?;
    let mut names = BTreeSet::new();
    for (field, n) in b.all_counts().await? {
        if n > 0
            && let Some((ns, _)) = field.split_once('/')
        {
            names.insert(ns.to_owned());
        }
    }
    names
        .iter()
        .take(limit)
        .map(|n| baton_core::raw::stored::parse("namespace", "counters", n))
        .collect()
}

pub(crate) async fn attempts(b: &ValkeyBackend, id: &ExecutionId) -> Result<Vec<AttemptRecord>> {
    let fields = b.read_fields(id, false).await?;
    read::attempts(id, &fields)
}

/// One `describe` per id for now (each a single read of the record).
pub(crate) async fn describe_many(
    b: &ValkeyBackend,
    ids: &[ExecutionId],
) -> Result<Vec<Option<ExecutionSnapshot>>> {
    baton_core::raw::describe_each(b, ids).await
}
