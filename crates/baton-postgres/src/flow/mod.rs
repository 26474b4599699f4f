//! Flows: `cancel` (with its cascade over a subtree), the cascade pass,
//! and the reads of a flow (`children`, `tree`, in `reads`); waiting for
//! children (`wait_children` and the count-down of a parent, in `wait`).
//!
//! Every member of a flow lives in its root's partition (a child in its
//! parent's), so every statement over one flow names that partition and
//! Postgres reads one child table.

use std::collections::{BTreeMap, HashSet};

use async_trait::async_trait;
use baton_core::raw::cascade::{self, CascadeItem, CascadeStore};
use baton_core::raw::rules::{self, ChildFacts};
use baton_core::{
    CancelRequest, CancelScope, Cancellation, EngineError, ExecutionId, ExecutionSnapshot,
    LeaseToken, ListPage, Page, PartitionCount, PartitionId, Result, ScanReport, Timestamp, Tree,
};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::errors::map;
use crate::read::{self, col};
use crate::{PostgresBackend, finish, part, sql};

mod deps;
mod reads;
mod wait;

pub(crate) use deps::{
    RootsOf, dependents_finished, lock_ancestors, lock_ancestors_in, lock_order, lock_root_of,
};
pub(crate) use reads::{children, tree};
pub(crate) use wait::{children_finished, parents_finished, wait_children};

pub(crate) async fn cancel(
    b: &PostgresBackend,
    id: &ExecutionId,
    request: CancelRequest,
) -> Result<Cancellation> {
    b.check_id(id)?;
    let reason = rules::cancel_reason(&b.inner.limits, request.reason)?;
    let now = b.now();
    let mut tx = b.begin().await?;
    let outcome = cancel_in(b, &mut tx, id, reason, request.scope, now).await;
    finish(tx, outcome).await
}

/// The body of `cancel`, in the caller's transaction (not committed here);
/// also what a timeout whose policy is `cancel` does (see `wait`).
pub(crate) async fn cancel_in(
    b: &PostgresBackend,
    tx: &mut PgConnection,
    id: &ExecutionId,
    reason: Option<String>,
    scope: CancelScope,
    now: Timestamp,
) -> Result<Cancellation> {
    let (cancellation, _acted, _visited) = cancel_acting(b, tx, id, reason, scope, now).await?;
    Ok(cancellation)
}

/// [`cancel_in`], also answering whether it cancelled the execution itself
/// (false: it had already been cancelled), and how many children and
/// dependents it visited (its own dependents told, and with scope tree
/// the walk below: cancelled or not, what a unit of cancels charges).
/// Judged under the execution's row lock, so a concurrent cancel that
/// committed first is seen.
pub(crate) async fn cancel_acting(
    b: &PostgresBackend,
    tx: &mut PgConnection,
    id: &ExecutionId,
    reason: Option<String>,
    scope: CancelScope,
    now: Timestamp,
) -> Result<(Cancellation, bool, u64)> {
    // The flow's root first, then the parent, then the execution (see
    // `deps`): a cancel may tell dependents, and counts its parent down.
    let (p, u) = ([part(id.partition())], [id.uuid()]);
    lock_ancestors(tx, &p, &u, RootsOf::All).await?;
    let row = b.lock_row(tx, id).await?;
    let mut snapshot = b.snapshot(&row)?;
    let mut told = Vec::new();
    let acted = rules::cancel_acts(&snapshot)?;
    if acted {
        if read::has_dependents(&row)? {
            told.push((id.clone(), false, now));
        }
        let row = sqlx::query(sql::CANCEL)
            .bind(part(id.partition()))
            .bind(id.uuid())
            .bind(now.as_millis())
            .bind(reason.as_deref())
            .fetch_one(&mut *tx)
            .await
            .map_err(map)?;
        snapshot = b.snapshot(&row)?;
        if let Some(parent) = &snapshot.parent {
            children_finished(tx, parent, 1, now, &b.inner.channel).await?;
        }
    }
    let budget = b.inner.limits.cascade_budget;
    let channel = &b.inner.channel;
    let told = dependents_finished(tx, b.inner.partitions, budget, channel, told).await?;
    let mut walked = cascade::CascadeWalk::default();
    if scope == CancelScope::Tree {
        walked = cancel_walk(b, tx, id, reason.as_deref(), now).await?;
    }
    let visited = (told + walked.visited) as u64;
    let cancellation = Cancellation {
        snapshot,
        cascaded: walked.cancelled,
        cascade_pending: pending(&walked),
    };
    Ok((cancellation, acted, visited))
}

/// Cancels the unfinished descendants of a finished execution `id`, as a
/// tree cancel of it reaches them, in the caller's transaction, which
/// holds the flow's root (see `deps`): answers whether work was left for
/// the cascade pass.
pub(crate) async fn cancel_below(
    b: &PostgresBackend,
    tx: &mut PgConnection,
    id: &ExecutionId,
    reason: &str,
    now: Timestamp,
) -> Result<bool> {
    let walked = cancel_walk(b, tx, id, Some(reason), now).await?;
    Ok(pending(&walked))
}

/// The walk of a tree cancel below `id`: `cascade_budget` children
/// visited, the rest queued for the cascade pass.
async fn cancel_walk(
    b: &PostgresBackend,
    tx: &mut PgConnection,
    id: &ExecutionId,
    reason: Option<&str>,
    now: Timestamp,
) -> Result<cascade::CascadeWalk> {
    let why = rules::cascade_reason(&b.inner.limits, id, reason);
    let mut store = Store::new(tx, b.inner.partitions, now, &b.inner.channel);
    let walked = cascade::walk(
        &mut store,
        vec![CascadeItem::below(id.clone())],
        b.inner.limits.cascade_budget,
        &why,
    )
    .await?;
    store.flush().await?;
    queue(tx, &walked.to_queue(&why)).await?;
    Ok(walked)
}

/// Whether a walk left work for the cascade pass.
fn pending(walked: &cascade::CascadeWalk) -> bool {
    !walked.left.is_empty() || !walked.dependents_left.is_empty()
}

/// Walks the subtree below `id` doing `action` (a pause or a resume) in
/// the caller's transaction, which holds the flow's root (see `ops`):
/// `cascade_budget` children visited, the rest queued for the cascade
/// pass. Answers the walk and the lanes to wake in this instance after
/// commit (every process is notified at commit).
pub(crate) async fn walk_tree(
    b: &PostgresBackend,
    tx: &mut PgConnection,
    id: &ExecutionId,
    action: cascade::TreeAction<'_>,
    now: Timestamp,
) -> Result<(cascade::CascadeWalk, Vec<crate::ops::WokenLane>)> {
    let mut store = Store::new(tx, b.inner.partitions, now, &b.inner.channel);
    let walked = cascade::walk_tree(
        &mut store,
        vec![CascadeItem::below(id.clone())],
        b.inner.limits.cascade_budget,
        action,
    )
    .await?;
    store.flush().await?;
    let woken = std::mem::take(&mut store.woken);
    queue(tx, &walked.to_queue_for(action)).await?;
    Ok((walked, woken))
}

pub(crate) async fn cascade_due(
    b: &PostgresBackend,
    partition: PartitionId,
    limit: usize,
) -> Result<ScanReport> {
    let bound = b.scan_limit(partition, limit)?;
    let now = b.now();
    let mut tx = b.begin().await?;
    let outcome = cascade_step(b, &mut tx, partition, limit, bound, now).await;
    finish(tx, outcome).await
}

/// One step of the cascade pass, in the caller's transaction (not
/// committed here): the queued places of `partition`, oldest first, read
/// once, each walked with what is left of `limit`.
async fn cascade_step(
    b: &PostgresBackend,
    tx: &mut PgConnection,
    partition: PartitionId,
    limit: usize,
    bound: i64,
    now: Timestamp,
) -> Result<ScanReport> {
    // A concurrent pass of the same partition (an ownership handover) skips
    // the places this one works on instead of walking them twice.
    let queued: Vec<(i64, String, Option<String>, String, String)> = sqlx::query_as(
        "SELECT seq, node, after, kind, reason FROM cascades WHERE partition = $1 \
         ORDER BY seq LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind(part(partition))
    .bind(bound)
    .fetch_all(&mut *tx)
    .await
    .map_err(map)?;
    let places = queued
        .iter()
        .map(|(seq, node, after, kind, reason)| {
            Ok(cascade::Queued {
                item: stored_item(*seq, node, after.as_deref(), b.inner.partitions)?,
                work: cascade::QueuedWork::from_stored(kind, reason)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    // The roots of the flows the step walks, first, then the parents of
    // the queued nodes, then the nodes (see `deps`): a walk locks a node's
    // children before it counts the node down.
    let nodes: Vec<Uuid> = places.iter().map(|q| q.item.node.uuid()).collect();
    lock_ancestors_in(tx, partition, &nodes, RootsOf::All).await?;
    let mut sorted = nodes.clone();
    sorted.sort_unstable();
    sqlx::query(
        "SELECT 1 FROM executions WHERE partition = $1 AND uuid = ANY($2) \
         ORDER BY uuid FOR UPDATE",
    )
    .bind(part(partition))
    .bind(&sorted)
    .fetch_all(&mut *tx)
    .await
    .map_err(map)?;
    let mut store = Store::new(tx, b.inner.partitions, now, &b.inner.channel);
    let step = cascade::pass_step(&mut store, &places, limit).await?;
    store.flush().await?;
    let worked: Vec<i64> = queued[..step.worked].iter().map(|q| q.0).collect();
    sqlx::query("DELETE FROM cascades WHERE seq = ANY($1)")
        .bind(&worked)
        .execute(&mut *tx)
        .await
        .map_err(map)?;
    queue(tx, &step.left).await?;
    let cancelled = step.cancelled;
    let more: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM cascades WHERE partition = $1)")
            .bind(part(partition))
            .fetch_one(&mut *tx)
            .await
            .map_err(map)?;
    Ok(ScanReport {
        processed: cancelled,
        next_due: more.then_some(now),
    })
}

/// Tells the dependents of executions that just expired (each with whether
/// it has dependents) and cancels their non-terminal descendants, inside
/// the expiring transaction (which holds their flows' roots):
/// `cascade_budget` children and dependents visited in all, the rest
/// queued for the cascade pass.
pub(crate) async fn cascade_expired(
    b: &PostgresBackend,
    tx: &mut PgConnection,
    expired: &[(ExecutionId, bool)],
    now: Timestamp,
) -> Result<()> {
    if expired.is_empty() {
        return Ok(());
    }
    let mut store = Store::new(tx, b.inner.partitions, now, &b.inner.channel);
    let left = cascade::expired(&mut store, expired, &b.inner.limits).await?;
    store.flush().await?;
    queue(tx, &left).await
}

/// Queues the places a walk did not reach, for the cascade pass, in the
/// walk's order (the cascade pass works them off in `seq` order).
async fn queue(conn: &mut PgConnection, left: &[cascade::Queued]) -> Result<()> {
    if left.is_empty() {
        return Ok(());
    }
    // A place lives in its node's partition (the partition of its flow).
    let partitions: Vec<i16> = left.iter().map(|q| part(q.item.node.partition())).collect();
    let nodes: Vec<String> = left.iter().map(|q| q.item.node.to_string()).collect();
    let afters: Vec<Option<String>> = left
        .iter()
        .map(|q| q.item.after.as_ref().map(ToString::to_string))
        .collect();
    let kinds: Vec<&str> = left.iter().map(|q| q.work.kind()).collect();
    let reasons: Vec<String> = left.iter().map(|q| q.work.text()).collect();
    sqlx::query(
        "INSERT INTO cascades (partition, node, after, kind, reason) \
         SELECT q.partition, q.node, q.after, q.kind, q.reason \
         FROM UNNEST($1::int2[], $2::text[], $3::text[], $4::text[], $5::text[]) \
              WITH ORDINALITY AS q(partition, node, after, kind, reason, ord) \
         ORDER BY q.ord",
    )
    .bind(partitions)
    .bind(nodes)
    .bind(afters)
    .bind(kinds)
    .bind(reasons)
    .execute(&mut *conn)
    .await
    .map_err(map)?;
    Ok(())
}

/// A queued place, read back: both ids must be ids of this deployment.
fn stored_item(
    seq: i64,
    node: &str,
    after: Option<&str>,
    partitions: PartitionCount,
) -> Result<CascadeItem> {
    let ctx = format!("queued cascade {seq}");
    let id = |what: &str, text: &str| {
        baton_core::raw::stored::parse::<ExecutionId>(what, &ctx, text).and_then(|id| {
            id.check_partition(partitions)
                .map(|()| id)
                .map_err(|e| EngineError::corruption(format!("{ctx}: stored {what} {text}: {e}")))
        })
    };
    Ok(CascadeItem {
        node: id("node", node)?,
        after: after.map(|a| id("after", a)).transpose()?,
    })
}

/// A cascade's reads and writes inside one Postgres transaction.
struct Store<'c> {
    conn: &'c mut PgConnection,
    partitions: PartitionCount,
    now: Timestamp,
    channel: &'c str,
    /// Parents of dependents the walk finished (skipped or failed), with
    /// when: counted down by `flush`, in one lock order.
    finished: Vec<(String, Timestamp)>,
    /// Lanes a resume made work `waiting` in (notified at commit), to wake
    /// this instance's claimers after commit.
    woken: Vec<crate::ops::WokenLane>,
}

impl<'c> Store<'c> {
    fn new(
        conn: &'c mut PgConnection,
        partitions: PartitionCount,
        now: Timestamp,
        channel: &'c str,
    ) -> Self {
        Store {
            conn,
            partitions,
            now,
            channel,
            finished: Vec::new(),
            woken: Vec::new(),
        }
    }

    /// Counts down the parents of the dependents the walk finished.
    async fn flush(&mut self) -> Result<()> {
        let finished = std::mem::take(&mut self.finished);
        parents_finished(self.conn, finished, self.channel).await
    }
}

#[async_trait]
impl CascadeStore for Store<'_> {
    async fn children_after(
        &mut self,
        node: &ExecutionId,
        after: Option<&ExecutionId>,
        limit: usize,
    ) -> Result<Vec<ChildFacts>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        // The children are locked, as every writer that decides from stored
        // state locks its rows: a child completed or claimed concurrently is
        // read as it is once that writer committed, and nothing changes it
        // before this transaction ends. Two statements rather than
        // `($3 IS NULL OR uuid > $3)`, so that a resumed walk starts the
        // index range at `after` under the generic plans this backend forces.
        let rows = match after {
            Some(after) => {
                sqlx::query(
                    "SELECT uuid, partition, state, attempts, has_dependents FROM executions \
                     WHERE partition = $1 AND parent = $2 AND uuid > $3 \
                     ORDER BY uuid LIMIT $4 FOR UPDATE",
                )
                .bind(part(node.partition()))
                .bind(node.to_string())
                .bind(after.uuid())
                .bind(limit)
                .fetch_all(&mut *self.conn)
                .await
            }
            None => {
                sqlx::query(
                    "SELECT uuid, partition, state, attempts, has_dependents FROM executions \
                     WHERE partition = $1 AND parent = $2 \
                     ORDER BY uuid LIMIT $3 FOR UPDATE",
                )
                .bind(part(node.partition()))
                .bind(node.to_string())
                .bind(limit)
                .fetch_all(&mut *self.conn)
                .await
            }
        }
        .map_err(map)?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let mut facts = Vec::with_capacity(rows.len());
        for row in &rows {
            let id = read::execution_id(row, self.partitions)?;
            let ctx = format!("execution {id}");
            let state = read::state(&ctx, &col::<String>(row, "state")?)?;
            let attempts = baton_core::raw::stored::in_range(
                "attempts",
                &ctx,
                col::<i32>(row, "attempts")?.into(),
            )?;
            facts.push(ChildFacts {
                id,
                state,
                attempts,
                has_children: false,
                has_dependents: read::has_dependents(row)?,
            });
        }
        // Which of them are parents themselves: one statement per page,
        // which stops at the first child of each (a `SELECT DISTINCT
        // parent` would read every grandchild of the page).
        let ids: Vec<String> = facts.iter().map(|f| f.id.to_string()).collect();
        let parents: HashSet<String> = sqlx::query_scalar::<_, String>(
            "SELECT p.id FROM UNNEST($2::text[]) AS p(id) WHERE EXISTS \
             (SELECT 1 FROM executions e WHERE e.partition = $1 AND e.parent = p.id)",
        )
        .bind(part(node.partition()))
        .bind(&ids)
        .fetch_all(&mut *self.conn)
        .await
        .map_err(map)?
        .into_iter()
        .collect();
        for (f, text) in facts.iter_mut().zip(&ids) {
            f.has_children = parents.contains(text);
        }
        Ok(facts)
    }

    async fn cancel_members(
        &mut self,
        parent: &ExecutionId,
        members: &[&ChildFacts],
        reason: &str,
    ) -> Result<()> {
        // One statement per partition; a page of one node's children is
        // always one.
        let mut by_partition: BTreeMap<PartitionId, Vec<Uuid>> = BTreeMap::new();
        for m in members {
            by_partition
                .entry(m.id.partition())
                .or_default()
                .push(m.id.uuid());
        }
        for (partition, uuids) in by_partition {
            let wanted = uuids.len() as u64;
            let done = sqlx::query(sql::CASCADE_CANCEL)
                .bind(part(partition))
                .bind(&uuids)
                .bind(self.now.as_millis())
                .bind(reason)
                .execute(&mut *self.conn)
                .await
                .map_err(map)?
                .rows_affected();
            if done != wanted {
                let names: Vec<String> = members
                    .iter()
                    .filter(|m| m.id.partition() == partition)
                    .map(|m| m.id.to_string())
                    .collect();
                return Err(EngineError::corruption(format!(
                    "a cascade cancelled {done} of the {wanted} locked, unfinished executions {}",
                    names.join(", ")
                )));
            }
        }
        let count = members.len() as u64;
        children_finished(self.conn, parent, count, self.now, self.channel).await
    }

    async fn pause_members(&mut self, members: &[&ChildFacts], via: &ExecutionId) -> Result<()> {
        // Locked by `children_after`; one statement per partition (a page
        // of one node's children is always one).
        let mut by_partition: BTreeMap<PartitionId, (Vec<Uuid>, Vec<&'static str>)> =
            BTreeMap::new();
        for m in members {
            if let Some(from) = rules::check_pause(&m.id, m.state)? {
                let (uuids, froms) = by_partition.entry(m.id.partition()).or_default();
                uuids.push(m.id.uuid());
                froms.push(from.as_str());
            }
        }
        for (partition, (uuids, froms)) in by_partition {
            crate::ops::pause_rows(self.conn, partition, &uuids, &froms, Some(via), self.now)
                .await?;
        }
        Ok(())
    }

    async fn resume_members(&mut self, members: &[&ChildFacts]) -> Result<()> {
        let mut by_partition: BTreeMap<PartitionId, Vec<Uuid>> = BTreeMap::new();
        for m in members {
            by_partition
                .entry(m.id.partition())
                .or_default()
                .push(m.id.uuid());
        }
        for (partition, uuids) in by_partition {
            let woken = crate::ops::resume_rows(
                self.conn,
                self.partitions,
                partition,
                &uuids,
                self.now,
                self.channel,
            )
            .await?;
            self.woken.extend(woken);
        }
        Ok(())
    }

    async fn dependents_after(
        &mut self,
        upstream: &ExecutionId,
        after: Option<&ExecutionId>,
        limit: usize,
    ) -> Result<Vec<rules::DependentFacts>> {
        deps::dependents_after(self, upstream, after, limit).await
    }

    async fn settle_dependents(
        &mut self,
        settled: &[(&rules::DependentFacts, rules::DependentChange)],
    ) -> Result<()> {
        deps::settle_dependents(self, settled).await
    }
}
