//! Verdicts about a deployment as a whole: its partition count, which
//! partitions a node owns, and how reads page, order and tally.

use std::cmp::Reverse;

use crate::error::EngineError;
use crate::id::{ExecutionId, PartitionCount, PartitionId};
use crate::model::{Claim, ListCursor, StateCounts};
use crate::names::Lane;
use crate::state::State;
use crate::time::Timestamp;

// -------------------------------------------------------------- partitions

/// What a backend does with the partition count at open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionsAtOpen {
    /// The count to run with.
    pub count: PartitionCount,
    /// Whether nothing was recorded yet, so `count` must be recorded now.
    pub record: bool,
}

/// Reconciles the partition count a deployment recorded (`recorded`, as
/// stored text; `None` on first start) with the one asked for (`wanted`;
/// `None` takes the recorded one, or the default on first start). A
/// differing request is a configuration error naming both; unreadable
/// stored text is corruption. `store` names the deployment in messages
/// ("database", "schema", "deployment").
pub fn reconcile_partitions(
    recorded: Option<&str>,
    wanted: Option<PartitionCount>,
    store: &str,
) -> Result<PartitionsAtOpen, EngineError> {
    let Some(text) = recorded else {
        return Ok(PartitionsAtOpen {
            count: wanted.unwrap_or_default(),
            record: true,
        });
    };
    let count = text
        .parse::<u16>()
        .ok()
        .and_then(|n| PartitionCount::new(n).ok())
        .ok_or_else(|| EngineError::corruption(format!("recorded partition count {text:?}")))?;
    if let Some(w) = wanted
        && w != count
    {
        return Err(EngineError::Configuration {
            message: format!(
                "this {store} was created with {} partitions but {} were requested; \
                 start with partitions={} (or leave it unset)",
                count.get(),
                w.get(),
                count.get()
            ),
        });
    }
    Ok(PartitionsAtOpen {
        count,
        record: false,
    })
}

// --------------------------------------------------------------- ownership

/// How one node's heartbeat changes the partitions it owns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnershipPlan {
    /// The node's fair share: `ceil(partitions / live nodes)`.
    pub share: usize,
    /// Partitions it owns and keeps (renewed), ascending.
    pub keep: Vec<PartitionId>,
    /// Partitions it owns beyond its share and frees now.
    pub release: Vec<PartitionId>,
    /// How many free or lapsed partitions it takes (lowest first).
    pub take: usize,
}

/// Plans a node's heartbeat: with `live_nodes` nodes alive (itself
/// included; at least one is assumed) each owns at most its fair share;
/// the node keeps the lowest of the partitions it holds (`mine`) up to
/// that share, frees the rest, and takes free ones to fill its share.
pub fn plan_ownership(
    partitions: PartitionCount,
    live_nodes: u64,
    mine: &[PartitionId],
) -> OwnershipPlan {
    let total = u64::from(partitions.get());
    let live = live_nodes.max(1);
    let share = usize::try_from(total.div_ceil(live)).unwrap_or(usize::MAX);
    let mut mine: Vec<PartitionId> = mine
        .iter()
        .copied()
        .filter(|p| u64::from(p.get()) < total)
        .collect();
    mine.sort_unstable();
    mine.dedup();
    let kept = share.min(mine.len());
    let release = mine.split_off(kept);
    OwnershipPlan {
        share,
        take: share - kept,
        keep: mine,
        release,
    }
}

// ------------------------------------------------------------------- reads

/// Ends a page of a listing read with one item more than `limit` (the
/// over-fetch tells whether more follow): answers at most `limit` items and
/// the cursor after the last when more follow.
pub fn page_from_overfetch<T>(
    mut items: Vec<T>,
    limit: usize,
    id_of: impl Fn(&T) -> &ExecutionId,
) -> (Vec<T>, Option<ListCursor>) {
    let more = items.len() > limit;
    items.truncate(limit);
    let next = if more {
        items.last().map(|item| ListCursor::after(id_of(item)))
    } else {
        None
    };
    (items, next)
}

/// Puts claims in the order the contract hands work out: higher priority
/// first, then earlier `ready_at` (when each became claimable), then lower
/// id. `keys` are each claim's `(priority, ready_at in ms)`.
pub fn order_claims(mut claims: Vec<(i64, i64, Claim)>) -> Vec<Claim> {
    claims.sort_by(|a, b| {
        (Reverse(a.0), a.1, a.2.id.uuid()).cmp(&(Reverse(b.0), b.1, b.2.id.uuid()))
    });
    claims.into_iter().map(|(_, _, c)| c).collect()
}

/// Adds `n` executions of `lane` in `state` to a per-lane tally (the
/// answer of [`AdminBackend::counts`](crate::AdminBackend::counts)).
pub fn tally(
    counts: &mut std::collections::BTreeMap<Lane, StateCounts>,
    lane: Lane,
    state: State,
    n: u64,
) {
    *counts.entry(lane).or_default().get_mut(state) += n;
}

/// The per-lane tally of `namespace` from stored `(lane, state, count)`
/// rows (a lane may appear once per state); unreadable lanes or states are
/// corruption.
pub fn tally_rows(
    namespace: &crate::Namespace,
    rows: impl IntoIterator<Item = (String, String, i64)>,
) -> Result<std::collections::BTreeMap<Lane, StateCounts>, EngineError> {
    let mut out = std::collections::BTreeMap::new();
    for (lane, state, n) in rows {
        let ctx = format!("namespace {namespace} lane {lane}");
        let lane: Lane = crate::raw::stored::parse("lane", &ctx, &lane)?;
        let state: State = crate::raw::stored::parse("state", &ctx, &state)?;
        tally(&mut out, lane, state, u64::try_from(n).unwrap_or(0));
    }
    Ok(out)
}

/// Every partition with its live owner, from stored `(partition, owner,
/// expires_at)` rows of the leases that are live at the time of reading;
/// partitions without a row are unowned.
pub fn owners_table(
    partitions: PartitionCount,
    rows: impl IntoIterator<Item = (i64, Option<String>, Option<i64>)>,
) -> Result<Vec<crate::PartitionOwner>, EngineError> {
    let mut live = std::collections::BTreeMap::new();
    for (p, owner, expires) in rows {
        let (Some(owner), Some(expires)) = (owner, expires) else {
            continue;
        };
        let ctx = format!("partition {p}");
        let node: crate::NodeId = crate::raw::stored::parse("owner", &ctx, &owner)?;
        let p: u16 = crate::raw::stored::in_range("partition", &ctx, p)?;
        live.insert(p, (node, Timestamp::from_millis(expires)));
    }
    Ok(partitions
        .iter()
        .map(|p| {
            let held = live.remove(&p.get());
            crate::PartitionOwner {
                partition: p,
                expires_at: held.as_ref().map(|h| h.1),
                owner: held.map(|h| h.0),
            }
        })
        .collect())
}
