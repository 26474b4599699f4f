//! Flows: `cancel` (with its cascade over a subtree), the cascade pass,
//! and the reads of a flow (`children`, `tree`, in `reads`); waiting for
//! children (`wait_children` and the count-down of a parent, in `wait`).

use async_trait::async_trait;
use baton_core::raw::cascade::{self, CascadeItem, CascadeStore};
use baton_core::raw::rules::{self, ChildFacts};
use baton_core::{
    AttemptOutcome, CancelRequest, CancelScope, Cancellation, ExecutionId, ExecutionSnapshot,
    LeaseToken, ListPage, Page, PartitionCount, PartitionId, Result, ScanReport, State, Timestamp,
    Tree,
};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use crate::errors::map;
use crate::read::{self, col};
use crate::{SqliteBackend, blob};

mod deps;
mod reads;
mod wait;

pub(crate) use deps::{
    check as check_dependencies, finished, has_dependents, tell, upstream_results, write_edges,
};
pub(crate) use reads::{children, tree};
pub(crate) use wait::{children_finished, wait_children};

pub(crate) async fn cancel(
    b: &SqliteBackend,
    id: &ExecutionId,
    request: CancelRequest,
) -> Result<Cancellation> {
    b.check_id(id)?;
    let reason = rules::cancel_reason(&b.inner.limits, request.reason.clone())?;
    let now = b.now();
    let mut tx = b.begin().await?;
    let (cancellation, wake) = cancel_in(b, &mut tx, id, request.scope, reason, now).await?;
    tx.commit().await.map_err(map)?;
    b.wake_all(wake);
    b.finished_some();
    Ok(cancellation)
}

/// The body of `cancel` with a checked `reason`, in the caller's
/// transaction (a timed-out wait cancels this way too). Answers the lanes
/// to wake after commit.
pub(crate) async fn cancel_in(
    b: &SqliteBackend,
    tx: &mut SqliteConnection,
    id: &ExecutionId,
    scope: CancelScope,
    reason: Option<String>,
    now: Timestamp,
) -> Result<(Cancellation, Vec<(String, String)>)> {
    let (cancellation, wake, _) = cancel_walked(b, tx, id, scope, reason, now).await?;
    Ok((cancellation, wake))
}

/// [`cancel_in`], also answering how many children and dependents its
/// tree walk visited (what a unit of cancels charges against its budget).
pub(crate) async fn cancel_walked(
    b: &SqliteBackend,
    tx: &mut SqliteConnection,
    id: &ExecutionId,
    scope: CancelScope,
    reason: Option<String>,
    now: Timestamp,
) -> Result<(Cancellation, Vec<(String, String)>, usize)> {
    let snap = b.snapshot_in(tx, id).await?;
    let mut wake = Vec::new();
    if rules::cancel_acts(&snap)? {
        let why = reason.as_deref();
        cancel_one(tx, id, snap.state, snap.attempts, why, now).await?;
        let parent = snap.parent.as_ref();
        wake.extend(finished(b, tx, id, parent, State::Cancelled, None, now).await?);
    }
    let mut walked = cascade::CascadeWalk::default();
    if scope == CancelScope::Tree {
        let why = rules::cascade_reason(&b.inner.limits, id, reason.as_deref());
        let mut store = Store::new(tx, b, now);
        walked = cascade::walk(
            &mut store,
            vec![CascadeItem::below(id.clone())],
            b.inner.limits.cascade_budget,
            &why,
        )
        .await?;
        wake.append(&mut store.wake);
        queue(tx, &walked.to_queue(&why)).await?;
    }
    let snapshot = b.snapshot_in(tx, id).await?;
    let cancellation = Cancellation {
        snapshot,
        cascaded: walked.cancelled,
        cascade_pending: !walked.left.is_empty() || !walked.dependents_left.is_empty(),
    };
    Ok((cancellation, wake, walked.visited))
}

/// Cancels the unfinished descendants of a finished execution `id`, as a
/// tree cancel of it would reach them, in the caller's transaction:
/// answers whether work was left for the cascade pass, and the lanes to
/// wake after commit.
pub(crate) async fn cancel_below(
    b: &SqliteBackend,
    tx: &mut SqliteConnection,
    id: &ExecutionId,
    reason: &str,
    now: Timestamp,
) -> Result<(bool, Vec<(String, String)>)> {
    let why = rules::cascade_reason(&b.inner.limits, id, Some(reason));
    let mut store = Store::new(tx, b, now);
    let walked = cascade::walk(
        &mut store,
        vec![CascadeItem::below(id.clone())],
        b.inner.limits.cascade_budget,
        &why,
    )
    .await?;
    let wake = std::mem::take(&mut store.wake);
    queue(tx, &walked.to_queue(&why)).await?;
    Ok((
        !walked.left.is_empty() || !walked.dependents_left.is_empty(),
        wake,
    ))
}

pub(crate) async fn cascade_due(
    b: &SqliteBackend,
    partition: PartitionId,
    limit: usize,
) -> Result<ScanReport> {
    let bound = b.scan_limit(partition, limit)?;
    let now = b.now();
    let mut tx = b.begin().await?;
    let queued: Vec<(i64, String, Option<String>, String, String)> = sqlx::query_as(
        "SELECT seq, node, after, kind, reason FROM cascades WHERE partition = ? ORDER BY seq LIMIT ?",
    )
    .bind(i64::from(partition.get()))
    .bind(bound)
    .fetch_all(&mut *tx)
    .await
    .map_err(map)?;
    let places = queued
        .iter()
        .map(|(_, node, after, kind, reason)| {
            Ok(cascade::Queued {
                item: stored_item(node, after.as_deref(), b.inner.partitions)?,
                work: cascade::QueuedWork::from_stored(kind, reason)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let mut store = Store::new(&mut tx, b, now);
    let step = cascade::pass_step(&mut store, &places, limit).await?;
    let wake = std::mem::take(&mut store.wake);
    for (seq, ..) in &queued[..step.worked] {
        sqlx::query("DELETE FROM cascades WHERE seq = ?")
            .bind(seq)
            .execute(&mut *tx)
            .await
            .map_err(map)?;
    }
    queue(&mut tx, &step.left).await?;
    let cancelled = step.cancelled;
    let more: Option<i64> =
        sqlx::query_scalar("SELECT 1 FROM cascades WHERE partition = ? LIMIT 1")
            .bind(i64::from(partition.get()))
            .fetch_optional(&mut *tx)
            .await
            .map_err(map)?;
    tx.commit().await.map_err(map)?;
    b.wake_all(wake);
    b.finished_some();
    Ok(ScanReport {
        processed: cancelled,
        next_due: more.map(|_| now),
    })
}

/// Tells the dependents of executions that just expired (each with whether
/// it has dependents) and cancels their non-terminal descendants, inside
/// the expiring transaction: `budget` visited in all, the rest queued for
/// the cascade pass.
pub(crate) async fn cascade_expired(
    b: &SqliteBackend,
    conn: &mut SqliteConnection,
    expired: &[(ExecutionId, bool)],
    now: Timestamp,
) -> Result<Vec<(String, String)>> {
    if expired.is_empty() {
        return Ok(Vec::new());
    }
    let mut store = Store::new(&mut *conn, b, now);
    let left = cascade::expired(&mut store, expired, &b.inner.limits).await?;
    let wake = std::mem::take(&mut store.wake);
    queue(conn, &left).await?;
    Ok(wake)
}

/// Cancels one non-terminal execution read in this transaction.
async fn cancel_one(
    conn: &mut SqliteConnection,
    id: &ExecutionId,
    state: State,
    attempts: u32,
    reason: Option<&str>,
    now: Timestamp,
) -> Result<()> {
    if state == State::Running {
        SqliteBackend::close_attempt(conn, id, attempts, AttemptOutcome::Cancelled, None, now)
            .await?;
    }
    sqlx::query(
        "UPDATE executions SET state = 'cancelled', cancel_reason = ?, finished_at = ?, updated_at = ?, \
         worker_id = NULL, lease_nonce = NULL, lease_expires_at = NULL WHERE uuid = ?",
    )
    .bind(reason)
    .bind(now.as_millis())
    .bind(now.as_millis())
    .bind(blob(id))
    .execute(&mut *conn)
    .await
    .map_err(map)?;
    Ok(())
}

/// Walks the subtree below `id` doing `action` (a pause or a resume) in
/// the caller's transaction: `cascade_budget` children visited, the rest
/// queued for the cascade pass. Answers the walk and the lanes to wake
/// after commit.
pub(crate) async fn walk_tree(
    b: &SqliteBackend,
    tx: &mut SqliteConnection,
    id: &ExecutionId,
    action: cascade::TreeAction<'_>,
    now: Timestamp,
) -> Result<(cascade::CascadeWalk, Vec<(String, String)>)> {
    let mut store = Store::new(tx, b, now);
    let walked = cascade::walk_tree(
        &mut store,
        vec![CascadeItem::below(id.clone())],
        b.inner.limits.cascade_budget,
        action,
    )
    .await?;
    let wake = std::mem::take(&mut store.wake);
    queue(tx, &walked.to_queue_for(action)).await?;
    Ok((walked, wake))
}

/// Queues the places a walk did not reach, for the cascade pass of their
/// partition, in order.
async fn queue(conn: &mut SqliteConnection, left: &[cascade::Queued]) -> Result<()> {
    for q in left {
        sqlx::query(
            "INSERT INTO cascades (partition, node, after, kind, reason) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(i64::from(q.item.node.partition().get()))
        .bind(q.item.node.to_string())
        .bind(q.item.after.as_ref().map(|a| a.to_string()))
        .bind(q.work.kind())
        .bind(q.work.text())
        .execute(&mut *conn)
        .await
        .map_err(map)?;
    }
    Ok(())
}

fn stored_item(node: &str, after: Option<&str>, partitions: PartitionCount) -> Result<CascadeItem> {
    let id = |text: &str| {
        baton_core::raw::stored::parse::<ExecutionId>("node", "a queued cascade", text)
            .and_then(|id| id.check_partition(partitions).map(|()| id))
    };
    Ok(CascadeItem {
        node: id(node)?,
        after: after.map(id).transpose()?,
    })
}

/// A cascade's reads and writes inside one SQLite transaction.
struct Store<'c> {
    conn: &'c mut SqliteConnection,
    partitions: PartitionCount,
    now: Timestamp,
    /// Lanes of parents released by the cascade, to wake after commit.
    wake: Vec<(String, String)>,
}

impl<'c> Store<'c> {
    fn new(conn: &'c mut SqliteConnection, b: &SqliteBackend, now: Timestamp) -> Self {
        Store {
            conn,
            partitions: b.inner.partitions,
            now,
            wake: Vec::new(),
        }
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
        let after = after.map(blob);
        let rows = sqlx::query(
            "SELECT uuid, partition, state, attempts, has_dependents FROM executions \
             WHERE parent = ? AND (? IS NULL OR uuid > ?) ORDER BY uuid LIMIT ?",
        )
        .bind(node.to_string())
        .bind(after.clone())
        .bind(after)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&mut *self.conn)
        .await
        .map_err(map)?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let mut facts = Vec::with_capacity(rows.len());
        for row in &rows {
            let id = read::execution_id(row, self.partitions)?;
            let state = read::state(&format!("execution {id}"), &col::<String>(row, "state")?)?;
            let attempts = col::<i64>(row, "attempts")?;
            facts.push(ChildFacts {
                id,
                state,
                attempts: baton_core::raw::stored::in_range("attempts", "a child", attempts)?,
                has_children: false,
                has_dependents: read::has_dependents(row)?,
            });
        }
        // Which of them are parents themselves: one indexed probe per page.
        let mut qb: QueryBuilder<'_, Sqlite> =
            QueryBuilder::new("SELECT DISTINCT parent FROM executions WHERE parent IN (");
        let mut list = qb.separated(", ");
        for f in &facts {
            list.push_bind(f.id.to_string());
        }
        qb.push(")");
        let parents: std::collections::HashSet<String> = qb
            .build_query_scalar::<String>()
            .fetch_all(&mut *self.conn)
            .await
            .map_err(map)?
            .into_iter()
            .collect();
        for f in &mut facts {
            f.has_children = parents.contains(&f.id.to_string());
        }
        Ok(facts)
    }

    async fn cancel_members(
        &mut self,
        parent: &ExecutionId,
        members: &[&ChildFacts],
        reason: &str,
    ) -> Result<()> {
        // One statement for the page (a page is at most the cascade budget,
        // far below SQLite's variable limit), one for the running ones'
        // open attempts.
        let now = self.now.as_millis();
        let running: Vec<&&ChildFacts> = members
            .iter()
            .filter(|m| m.state == State::Running)
            .collect();
        if !running.is_empty() {
            let mut qb: QueryBuilder<'_, Sqlite> =
                QueryBuilder::new("UPDATE executions SET attempt_ended_at = ");
            qb.push_bind(now).push(
                ", attempt_outcome = 'cancelled' WHERE attempt_started_at IS NOT NULL \
                 AND attempt_outcome IS NULL AND uuid IN (",
            );
            let mut list = qb.separated(", ");
            for m in &running {
                list.push_bind(blob(&m.id));
            }
            qb.push(")");
            qb.build().execute(&mut *self.conn).await.map_err(map)?;
        }
        let mut qb: QueryBuilder<'_, Sqlite> =
            QueryBuilder::new("UPDATE executions SET state = 'cancelled', cancel_reason = ");
        qb.push_bind(reason)
            .push(", finished_at = ")
            .push_bind(now)
            .push(", updated_at = ")
            .push_bind(now)
            .push(
                ", worker_id = NULL, lease_nonce = NULL, lease_expires_at = NULL \
                 WHERE finished_at IS NULL AND uuid IN (",
            );
        let mut list = qb.separated(", ");
        for m in members {
            list.push_bind(blob(&m.id));
        }
        qb.push(")");
        qb.build().execute(&mut *self.conn).await.map_err(map)?;
        let count = members.len() as u64;
        let wake = children_finished(self.conn, parent, count, self.now).await?;
        self.wake.extend(wake);
        Ok(())
    }

    async fn pause_members(&mut self, members: &[&ChildFacts], via: &ExecutionId) -> Result<()> {
        for m in members {
            if let Some(from) = rules::check_pause(&m.id, m.state)? {
                let at = (m.state, m.attempts);
                crate::ops::pause_one(self.conn, &m.id, at, from, Some(via), self.now).await?;
            }
        }
        Ok(())
    }

    async fn resume_members(&mut self, members: &[&ChildFacts]) -> Result<()> {
        for m in members {
            let wake = crate::ops::resume_one(self.conn, &m.id, self.now).await?;
            self.wake.extend(wake);
        }
        Ok(())
    }

    async fn dependents_after(
        &mut self,
        upstream: &ExecutionId,
        after: Option<&ExecutionId>,
        limit: usize,
    ) -> Result<Vec<rules::DependentFacts>> {
        deps::dependents_after(self.conn, self.partitions, upstream, after, limit).await
    }

    async fn settle_dependents(
        &mut self,
        settled: &[(&rules::DependentFacts, rules::DependentChange)],
    ) -> Result<()> {
        let wake = deps::settle(self.conn, settled, self.now).await?;
        self.wake.extend(wake);
        Ok(())
    }
}
