//! Claim hints: which partitions may hold a lane's waiting work, raised
//! when work arrives and dropped when a partition is seen empty.

use crate::*;

impl ValkeyBackend {
    /// Raises the hints of woken lanes and wakes their claimers, here and in
    /// every other process, then applies the limit releases among them.
    /// Awaited before the call that woke them answers, so a claim made
    /// after it sees the hint. Every call that announces runs
    /// [`detached`](crate::detached), so announcing is never cut short.
    ///
    /// Applying releases is best effort: the call that recorded them has
    /// committed, and each stays in its partition's `lrel` until applied,
    /// which the next promote pass of that partition hands out again. A
    /// failure there is logged, never answered, and holds back no hint.
    pub(crate) async fn announce(&self, woken: Vec<Woken>) -> Result<()> {
        if woken.is_empty() {
            return Ok(());
        }
        let (released, woken): (Vec<Woken>, Vec<Woken>) =
            woken.into_iter().partition(|w| w.released.is_some());
        let raised = self.raise_hints(&woken).await;
        if !released.is_empty()
            && let Err(e) = crate::limits::apply_releases(self, released).await
        {
            tracing::warn!(
                error = %e,
                "applying limit releases failed; the promote pass applies them"
            );
        }
        raised
    }

    async fn raise_hints(&self, woken: &[Woken]) -> Result<()> {
        if woken.is_empty() {
            return Ok(());
        }
        let mut calls = Vec::with_capacity(woken.len() * 2);
        for w in woken {
            let mut zadd = redis::cmd("ZADD");
            zadd.arg(self.hint_key(&w.lane_id))
                .arg("GT")
                .arg(w.seq)
                .arg(w.partition);
            calls.push(zadd);
            let mut publish = redis::cmd("PUBLISH");
            publish.arg(self.channel(&w.lane_id)).arg("");
            calls.push(publish);
        }
        try_join_all(calls.iter().map(|c| self.inner.server.raw(c))).await?;
        // Local claimers are woken only now: woken earlier, they could read
        // the hint before it is raised and go back to sleep.
        for w in woken {
            if let Some((ns, lane)) = w.lane_id.split_once('/') {
                self.inner.wake.notify(ns, lane);
            }
        }
        Ok(())
    }

    /// Forgets hints of lanes a partition was seen without (in the
    /// background: a stale hint only costs a wasted probe).
    pub(crate) fn drop_hints(&self, partition: u16, seq: i64, lane_ids: Vec<String>) {
        if lane_ids.is_empty() {
            return;
        }
        let server = self.inner.server.clone();
        let keys: Vec<String> = lane_ids.iter().map(|l| self.hint_key(l)).collect();
        tokio::spawn(async move {
            for key in keys {
                let mut c = Server::fcall("baton_hint_drop", &key);
                c.arg(partition).arg(seq);
                if let Err(e) = server.raw(&c).await {
                    tracing::debug!(error = %e, "dropping a claim hint failed");
                    return;
                }
            }
        });
    }

    /// A function's woken reply: lanes, then the limit releases it recorded
    /// (`!<ns>/<lane> <holder>`; no lane id starts with `!`).
    pub(crate) fn woken_from(&self, partition: u16, v: Value) -> Result<Vec<Woken>> {
        let (seq, lanes) = seq_and_lanes(v)?;
        lanes
            .into_iter()
            .map(|entry| match entry.strip_prefix('!') {
                None => Ok(Woken {
                    partition,
                    seq,
                    lane_id: entry,
                    released: None,
                }),
                Some(release) => {
                    let (lane_id, holder) = release
                        .split_once(' ')
                        .ok_or_else(|| read::corrupt(format_args!("a limit release {entry:?}")))?;
                    Ok(Woken {
                        partition,
                        seq,
                        lane_id: lane_id.to_owned(),
                        released: Some(holder.to_owned()),
                    })
                }
            })
            .collect()
    }

    /// Raises the hints of every lane with waiting work in `partition`, at
    /// most every few seconds per partition.
    pub(crate) async fn repair_hints(&self, partition: u16) -> Result<()> {
        let due = {
            let Ok(mut last) = self.inner.hint_repaired.lock() else {
                return Ok(());
            };
            let now = Instant::now();
            match last.get(&partition) {
                Some(t) if now.duration_since(*t) < HINT_REPAIR_EVERY => false,
                _ => {
                    last.insert(partition, now);
                    true
                }
            }
        };
        if !due {
            return Ok(());
        }
        let reply = self
            .run(&Server::fcall("baton_lanes", &self.base(partition)))
            .await?;
        let (seq, lanes) = seq_and_lanes(reply)?;
        let calls: Vec<Cmd> = lanes
            .iter()
            .map(|l| {
                let mut z = redis::cmd("ZADD");
                z.arg(self.hint_key(l)).arg("GT").arg(seq).arg(partition);
                z
            })
            .collect();
        try_join_all(calls.iter().map(|c| self.inner.server.raw(c))).await?;
        Ok(())
    }
}
