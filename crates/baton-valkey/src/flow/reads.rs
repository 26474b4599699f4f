//! The reads of a flow: the children of an execution (the per-parent
//! set) and the tree of a flow (the per-root set), with plain commands.

use super::*;

pub(crate) async fn children(
    b: &ValkeyBackend,
    parent: &ExecutionId,
    page: Page,
) -> Result<ListPage> {
    page.validate()?;
    // The parent must exist: an unknown id is NotFound, not an empty page.
    b.read_fields(parent, false).await?;
    let p = parent.partition().get();
    let base = b.base(p);
    let min = match page.cursor {
        Some(c) => format!("({}", c.after_uuid().simple()),
        None => "-".to_owned(),
    };
    let mut range = redis::cmd("ZRANGEBYLEX");
    range
        .arg(format!("{base}:ch:{}", parent.uuid().simple()))
        .arg(min)
        .arg("+")
        .arg("LIMIT")
        .arg(0)
        .arg(page.limit + 1);
    let uuids = uuids(b.run(&range).await?)?;
    let mut items = Vec::with_capacity(uuids.len());
    for (uuid, fields) in uuids.iter().zip(b.records(p, &uuids, true).await?) {
        // A child trimmed between the two reads is left out.
        if let Some(fields) = fields {
            let id = read::execution_id(uuid, PartitionId(p), b.inner.partitions)?;
            items.push(read::snapshot(id, &fields)?);
        }
    }
    let (items, next_cursor) = rules::page_from_overfetch(items, page.limit, |s| &s.id);
    Ok(ListPage { items, next_cursor })
}

pub(crate) async fn tree(b: &ValkeyBackend, id: &ExecutionId, limit: usize) -> Result<Tree> {
    Tree::check_limit(limit)?;
    let asked = b.read_fields(id, false).await?;
    let root = read::snapshot_root(id, &asked)?;
    let p = root.partition().get();
    let base = b.base(p);
    let mut range = redis::cmd("ZRANGEBYLEX");
    range
        .arg(format!("{base}:tr:{}", root.uuid().simple()))
        .arg("-")
        .arg("+")
        .arg("LIMIT")
        .arg(0)
        .arg(limit + 1);
    // The root first (it was created before every member), then its
    // members in creation order.
    let mut uuids = vec![root.uuid().simple().to_string()];
    uuids.extend(self::uuids(b.run(&range).await?)?);
    let mut items = Vec::with_capacity(uuids.len());
    for (uuid, fields) in uuids.iter().zip(b.records(p, &uuids, false).await?) {
        let Some(f) = fields else { continue };
        let id = read::execution_id(uuid, PartitionId(p), b.inner.partitions)?;
        let ctx = format!("execution {id}");
        let (parent, state, kind) = (
            f.opt_str(&ctx, "par")?,
            f.str(&ctx, "st")?,
            f.str(&ctx, "kind")?,
        );
        items.push(baton_core::raw::stored::tree_node(id, parent, state, kind)?);
    }
    let truncated = items.len() > limit;
    items.truncate(limit);
    Ok(Tree {
        root,
        items,
        truncated,
    })
}

fn uuids(reply: Value) -> Result<Vec<String>> {
    array(reply)?
        .iter()
        .map(|v| text(v).map(str::to_owned))
        .collect()
}

impl ValkeyBackend {
    /// The records of `uuids` in partition `p` (with their payloads as field
    /// `pl` when asked), `None` for one that is gone; one MGET each.
    pub(crate) async fn records(
        &self,
        p: u16,
        uuids: &[String],
        payloads: bool,
    ) -> Result<Vec<Option<Fields>>> {
        if uuids.is_empty() {
            return Ok(Vec::new());
        }
        let base = self.base(p);
        let mut get = redis::cmd("MGET");
        for u in uuids {
            get.arg(format!("{base}:e:{u}"));
        }
        let records = array(self.run(&get).await?)?;
        let payloads = if payloads {
            let mut get = redis::cmd("MGET");
            for u in uuids {
                get.arg(format!("{base}:p:{u}"));
            }
            Some(array(self.run(&get).await?)?)
        } else {
            None
        };
        let mut out = Vec::with_capacity(uuids.len());
        for (i, record) in records.into_iter().enumerate() {
            let Value::BulkString(record) = record else {
                out.push(None);
                continue;
            };
            let mut fields = Fields::from_record(&record)?;
            if let Some(payloads) = &payloads {
                match payloads.get(i) {
                    Some(Value::BulkString(pl)) => fields.set("pl", pl.clone()),
                    _ => {
                        out.push(None);
                        continue;
                    }
                }
            }
            out.push(Some(fields));
        }
        Ok(out)
    }
}
