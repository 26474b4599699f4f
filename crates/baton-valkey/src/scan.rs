//! The scheduler's passes: promote (and hint repair), reclaim, expire, trim.

use crate::*;

impl ValkeyBackend {
    /// A scheduler pass's `{ processed, next_due, woken? }` reply.
    pub(crate) async fn scan_report(&self, partition: u16, reply: Value) -> Result<ScanReport> {
        let mut items = array(reply)?.into_iter();
        let processed = int(&items
            .next()
            .ok_or_else(|| read::corrupt("empty scan reply"))?)?;
        let next = match items.next() {
            Some(v) => opt_int(&v)?,
            None => None,
        };
        if let Some(w) = items.next() {
            let woken = self.woken_from(partition, w)?;
            self.announce(woken).await?;
        }
        Ok(ScanReport {
            processed: u64::try_from(processed).unwrap_or(0),
            next_due: next.map(Timestamp::from_millis),
        })
    }
}

/// Runs to completion in a task of its own (see [`detached`]).
pub(crate) async fn promote_due(
    b: &ValkeyBackend,
    partition: PartitionId,
    limit: usize,
) -> Result<ScanReport> {
    let b = b.clone();
    detached(async move { promote_due_now(&b, partition, limit).await }).await
}

async fn promote_due_now(
    b: &ValkeyBackend,
    partition: PartitionId,
    limit: usize,
) -> Result<ScanReport> {
    b.inner.partitions.check_scan(partition, limit)?;
    let p = partition.get();
    b.repair_hints(p).await?;
    let mut c = Server::fcall("baton_promote", &b.base(p));
    c.arg(b.now().as_millis()).arg(limit);
    let reply = b.run(&c).await?;
    b.scan_report(p, reply).await
}

/// Runs to completion in a task of its own (see [`detached`]).
pub(crate) async fn reclaim_expired_leases(
    b: &ValkeyBackend,
    partition: PartitionId,
    limit: usize,
) -> Result<ScanReport> {
    let b = b.clone();
    detached(async move { reclaim_expired_leases_now(&b, partition, limit).await }).await
}

async fn reclaim_expired_leases_now(
    b: &ValkeyBackend,
    partition: PartitionId,
    limit: usize,
) -> Result<ScanReport> {
    b.inner.partitions.check_scan(partition, limit)?;
    let p = partition.get();
    let mut c = Server::fcall("baton_reclaim", &b.base(p));
    c.arg(b.now().as_millis())
        .arg(limit)
        .arg(b.inner.limits.max_error_bytes)
        .arg(b.inner.limits.cascade_budget);
    let reply = b.run(&c).await?;
    b.scan_report(p, reply).await
}

/// Runs to completion in a task of its own (see [`detached`]).
pub(crate) async fn expire_deadlines(
    b: &ValkeyBackend,
    partition: PartitionId,
    limit: usize,
) -> Result<ScanReport> {
    let b = b.clone();
    detached(async move { expire_deadlines_now(&b, partition, limit).await }).await
}

async fn expire_deadlines_now(
    b: &ValkeyBackend,
    partition: PartitionId,
    limit: usize,
) -> Result<ScanReport> {
    b.inner.partitions.check_scan(partition, limit)?;
    let p = partition.get();
    let mut c = Server::fcall("baton_expire", &b.base(p));
    c.arg(b.now().as_millis())
        .arg(limit)
        .arg(format!("cancelled with its ancestor {{p:{p}}}-"))
        .arg(format!(": {}", baton_core::raw::rules::EXPIRED_ANCESTOR))
        .arg(b.inner.limits.cascade_budget);
    let reply = b.run(&c).await?;
    b.scan_report(p, reply).await
}

/// Runs to completion in a task of its own (see [`detached`]).
pub(crate) async fn trim_terminal(
    b: &ValkeyBackend,
    partition: PartitionId,
    retention: Duration,
    limit: usize,
) -> Result<ScanReport> {
    let b = b.clone();
    detached(async move { trim_terminal_now(&b, partition, retention, limit).await }).await
}

async fn trim_terminal_now(
    b: &ValkeyBackend,
    partition: PartitionId,
    retention: Duration,
    limit: usize,
) -> Result<ScanReport> {
    b.inner.partitions.check_scan(partition, limit)?;
    let p = partition.get();
    let now = b.now();
    let cutoff = now.saturating_sub(retention);
    let default_ms = u64::try_from(retention.as_millis()).unwrap_or(u64::MAX);
    let mut c = Server::fcall("baton_trim", &b.base(p));
    c.arg(cutoff.as_millis())
        .arg(limit)
        .arg(now.as_millis())
        .arg(default_ms);
    let mut items = array(b.run(&c).await?)?.into_iter();
    let (Some(processed), Some(plain), Some(kept)) = (items.next(), items.next(), items.next())
    else {
        return Err(read::corrupt("a short trim reply"));
    };
    // The earliest a root left falls due: the first of `done` a default
    // later, the first of `kept` at its score.
    let plain = opt_int(&plain)?.map(|t| Timestamp::from_millis(t).saturating_add(retention));
    let kept = opt_int(&kept)?.map(Timestamp::from_millis);
    Ok(ScanReport {
        processed: u64::try_from(int(&processed)?).unwrap_or(0),
        next_due: plain.into_iter().chain(kept).min(),
    })
}
