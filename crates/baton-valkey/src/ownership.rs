//! Partition ownership between engine processes.

use crate::*;

impl ValkeyBackend {
    /// Partition owners, read from the control slot.
    pub(crate) async fn owners(&self) -> Result<Vec<PartitionOwner>> {
        let now = self.now();
        let read = |suffix: &str| {
            let mut c = redis::cmd("HGETALL");
            c.arg(format!("{}:{suffix}", self.ctl()));
            c
        };
        let (owners, expiries) = (read("owners"), read("oexp"));
        let (owners, expiries) = tokio::try_join!(self.run(&owners), self.run(&expiries))?;
        let pairs = |v: Value| -> Result<HashMap<u16, String>> {
            let items = match v {
                Value::Map(pairs) => pairs.into_iter().flat_map(|(k, v)| [k, v]).collect(),
                other => array(other)?,
            };
            let mut map = HashMap::new();
            let mut it = items.into_iter();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                if let Ok(p) = text(&k)?.parse::<u16>() {
                    map.insert(p, text(&v)?.to_owned());
                }
            }
            Ok(map)
        };
        let owners = pairs(owners)?;
        let expiries = pairs(expiries)?;
        self.inner
            .partitions
            .iter()
            .map(|p| {
                let held = match (owners.get(&p.get()), expiries.get(&p.get())) {
                    (Some(o), Some(e)) => {
                        let e: i64 = e.parse().map_err(|_| {
                            EngineError::corruption(format!("partition {p}: expiry {e:?}"))
                        })?;
                        if e > now.as_millis() {
                            let node: NodeId = o.parse().map_err(|_| {
                                EngineError::corruption(format!("partition {p}: owner {o:?}"))
                            })?;
                            Some((node, Timestamp::from_millis(e)))
                        } else {
                            None
                        }
                    }
                    _ => None,
                };
                Ok(PartitionOwner {
                    partition: p,
                    expires_at: held.as_ref().map(|h| h.1),
                    owner: held.map(|h| h.0),
                })
            })
            .collect()
    }
}

pub(crate) async fn sync_ownership(
    b: &ValkeyBackend,
    node: &NodeId,
    ttl: Duration,
) -> Result<Ownership> {
    b.inner.limits.check_lease(ttl)?;
    let now = b.now();
    let expires = now.saturating_add(ttl);
    let mut c = Server::fcall("baton_sync_ownership", &b.ctl());
    c.arg(node.as_str())
        .arg(now.as_millis())
        .arg(expires.as_millis())
        .arg(b.inner.partitions.get());
    let items = array(b.run(&c).await?)?;
    if items.len() < 2 {
        return Err(read::corrupt("a short ownership reply"));
    }
    let live = u32::try_from(int(&items[0])?).unwrap_or(u32::MAX);
    let target = u32::try_from(int(&items[1])?).unwrap_or(u32::MAX);
    let owned = items[2..]
        .iter()
        .map(|v| {
            int(v).and_then(|p| {
                u16::try_from(p)
                    .map(PartitionId)
                    .map_err(|_| read::corrupt("a partition number"))
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Ownership {
        owned,
        live_nodes: live,
        target,
        expires_at: expires,
    })
}

pub(crate) async fn release_ownership(b: &ValkeyBackend, node: &NodeId) -> Result<()> {
    let mut c = Server::fcall("baton_release_ownership", &b.ctl());
    c.arg(node.as_str()).arg(b.inner.partitions.get());
    b.run(&c).await?;
    Ok(())
}

pub(crate) async fn partition_owners(b: &ValkeyBackend) -> Result<Vec<PartitionOwner>> {
    b.owners().await
}
