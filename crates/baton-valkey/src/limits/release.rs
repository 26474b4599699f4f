//! Releasing limit slots: the releases that ends of runs recorded in their
//! partitions, applied in the namespace's limit slot, and the extension of
//! the slots of runs whose leases a renew extended.

use super::LIMIT_LAPSE_GRACE;
use crate::*;

/// Applies the releases a call's woken reply carried (each `Woken` with
/// `released`): one `baton_limit_release` per namespace; then, at once,
/// their records leave their partitions' `lrel` and the claimers of their
/// lanes are woken (here and in every other process), since a slot is free.
/// A release applied twice (the promote pass may hand out one whose caller
/// is still applying it) frees nothing more.
pub(crate) async fn apply_releases(b: &ValkeyBackend, released: Vec<Woken>) -> Result<()> {
    let mut by_ns: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut by_partition: BTreeMap<u16, Vec<&str>> = BTreeMap::new();
    let mut lanes: BTreeSet<&str> = BTreeSet::new();
    for w in &released {
        let Some(holder) = w.released.as_deref() else {
            continue;
        };
        let (ns, _) = w
            .lane_id
            .split_once('/')
            .ok_or_else(|| read::corrupt(format_args!("a limit release in {:?}", w.lane_id)))?;
        by_ns.entry(ns).or_default().push(holder);
        by_partition.entry(w.partition).or_default().push(holder);
        lanes.insert(&w.lane_id);
    }
    let frees: Vec<Cmd> = by_ns
        .iter()
        .map(|(ns, holders)| {
            let mut c = Server::fcall("baton_limit_release", &b.limit_base(ns));
            c.arg("end").arg(holders);
            c
        })
        .collect();
    try_join_all(frees.iter().map(|c| b.run(c))).await?;
    let mut after: Vec<Cmd> = by_partition
        .iter()
        .map(|(p, holders)| {
            let mut c = redis::cmd("HDEL");
            c.arg(format!("{}:lrel", b.base(*p))).arg(holders);
            c
        })
        .collect();
    after.extend(lanes.iter().map(|lane_id| {
        let mut c = redis::cmd("PUBLISH");
        c.arg(b.channel(lane_id)).arg("");
        c
    }));
    try_join_all(after.iter().map(|c| b.run(c))).await?;
    for lane_id in lanes {
        if let Some((ns, lane)) = lane_id.split_once('/') {
            b.inner.wake.notify(ns, lane);
        }
    }
    Ok(())
}

/// Extends the slots of `held` runs (namespace, holder `<uuid>:<attempt>`)
/// whose leases a renew just extended until `expires`: they lapse the grace
/// after it. One `baton_limit_renew` per namespace.
pub(crate) async fn extend_holders(
    b: &ValkeyBackend,
    held: Vec<(String, String)>,
    expires: Timestamp,
) -> Result<()> {
    let lapse = expires.saturating_add(LIMIT_LAPSE_GRACE).as_millis();
    let mut by_ns: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (ns, holder) in held {
        by_ns.entry(ns).or_default().push(holder);
    }
    let calls: Vec<Cmd> = by_ns
        .iter()
        .map(|(ns, holders)| {
            let mut c = Server::fcall("baton_limit_renew", &b.limit_base(ns));
            c.arg(lapse).arg(holders);
            c
        })
        .collect();
    try_join_all(calls.iter().map(|c| b.run(c))).await?;
    Ok(())
}
