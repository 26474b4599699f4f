//! The scheduler's passes: promote, reclaim, expire, trim.

use std::collections::HashSet;
use std::time::Duration;

use baton_core::raw::rules::{self, TrimVerdict};
use baton_core::{
    AttemptOutcome, ExecutionId, Failure, PartitionId, Result, ScanReport, State, Timestamp,
};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::errors::map;
use crate::lease::SettleArrays;
use crate::read::col;
use crate::{PostgresBackend, finish, part, sql};

pub(crate) async fn promote_due(
    b: &PostgresBackend,
    partition: PartitionId,
    limit: usize,
) -> Result<ScanReport> {
    let limit = b.scan_limit(partition, limit)?;
    let now = b.now();
    let row = sqlx::query(sql::PROMOTE)
        .bind(part(partition))
        .bind(now.as_millis())
        .bind(limit)
        .bind(&b.inner.channel)
        .fetch_one(&b.inner.pool)
        .await
        .map_err(map)?;
    let processed: i64 = col(&row, "processed")?;
    for lane in col::<Vec<String>>(&row, "lanes")? {
        if let Some((namespace, lane)) = lane.split_once(' ') {
            b.inner.wake.notify(namespace, lane);
        }
    }
    Ok(ScanReport {
        processed: processed.max(0) as u64,
        next_due: col::<Option<i64>>(&row, "next_due")?.map(Timestamp::from_millis),
    })
}

pub(crate) async fn reclaim_expired_leases(
    b: &PostgresBackend,
    partition: PartitionId,
    limit: usize,
) -> Result<ScanReport> {
    let limit = b.scan_limit(partition, limit)?;
    let now = b.now();
    let mut tx = b.begin().await?;
    // Roots (of those with dependents) and parents first (see
    // `flow::lock_ancestors`): of the executions due, read without a lock,
    // then the due ones themselves under their locks; one that gained
    // dependents since it was read is left to the next pass.
    let due: Vec<Uuid> = sqlx::query_scalar(
        "SELECT uuid FROM executions WHERE partition = $1 AND state = 'running' \
         AND lease_expires_at <= $2 ORDER BY lease_expires_at, uuid LIMIT $3",
    )
    .bind(part(partition))
    .bind(now.as_millis())
    .bind(limit)
    .fetch_all(&mut *tx)
    .await
    .map_err(map)?;
    let roots_of = crate::flow::RootsOf::Dependents;
    let covered = crate::flow::lock_ancestors_in(&mut tx, partition, &due, roots_of).await?;
    let rows = sqlx::query(
        "SELECT * FROM executions WHERE partition = $1 AND state = 'running' \
         AND lease_expires_at <= $2 AND (NOT has_dependents OR uuid = ANY($4)) \
         ORDER BY lease_expires_at, uuid LIMIT $3 FOR UPDATE SKIP LOCKED",
    )
    .bind(part(partition))
    .bind(now.as_millis())
    .bind(limit)
    .bind(&covered)
    .fetch_all(&mut *tx)
    .await
    .map_err(map)?;
    let mut settle = SettleArrays::default();
    let mut released = ReleasedSessions::default();
    for row in &rows {
        let snap = b.snapshot(row)?;
        released.push(&snap);
        let error = format!(
            "lease expired: worker {} did not renew attempt {} before {}",
            snap.worker_id.as_ref().map(|w| w.as_str()).unwrap_or("?"),
            snap.attempts,
            snap.lease_expires_at
                .map(|t| t.to_string())
                .unwrap_or_default()
        );
        let released = u32::try_from(col::<i32>(row, "released")?).unwrap_or(0);
        settle.push(
            &snap,
            released,
            &Failure::retryable(error),
            &b.inner.limits,
            now,
        );
    }
    let mut woken = Vec::new();
    if !rows.is_empty() {
        for row in settle
            .run(b, &mut tx, AttemptOutcome::LeaseExpired, now)
            .await?
        {
            let snap = b.snapshot(&row)?;
            if snap.state == State::Waiting {
                woken.push((snap.namespace, snap.lane));
            }
        }
    }
    // Last in the transaction: the session locks are the only rows it
    // waits for that claimers hold, and they wait for nothing it holds.
    released.run(&mut tx, partition, limit, now).await?;
    let next: Option<i64> = sqlx::query_scalar(
        "SELECT lease_expires_at FROM executions WHERE partition = $1 AND state = 'running' \
         ORDER BY lease_expires_at LIMIT 1",
    )
    .bind(part(partition))
    .fetch_optional(&mut *tx)
    .await
    .map_err(map)?;
    tx.commit().await.map_err(map)?;
    for (ns, lane) in &woken {
        b.inner.wake.notify(ns.as_str(), lane.as_str());
    }
    Ok(ScanReport {
        processed: rows.len() as u64,
        next_due: next.map(Timestamp::from_millis),
    })
}

/// The sessions of the runs a reclaim pass settles, with the workers
/// whose leases lapsed.
#[derive(Default)]
struct ReleasedSessions {
    namespaces: Vec<String>,
    sessions: Vec<String>,
    workers: Vec<String>,
}

impl ReleasedSessions {
    fn push(&mut self, snap: &baton_core::ExecutionSnapshot) {
        if let (Some(session), Some(worker)) = (&snap.session, &snap.worker_id) {
            self.namespaces.push(snap.namespace.to_string());
            self.sessions.push(session.to_string());
            self.workers.push(worker.to_string());
        }
    }

    /// Deletes the locks the reclaimed runs' workers hold on their
    /// sessions (a worker whose lease lapsed is taken for dead), and up to
    /// `limit` locks of `partition` that lapsed by `now`; one statement.
    ///
    /// The rows are locked in session order first, as claims take them.
    /// A lock a claimer took over while this waited is judged again as it
    /// is now by the delete (which re-reads a row changed since its
    /// snapshot), so a lock taken anew is never dropped.
    async fn run(
        self,
        tx: &mut PgConnection,
        partition: PartitionId,
        limit: i64,
        now: Timestamp,
    ) -> Result<()> {
        sqlx::query(
            "WITH dead AS ( \
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[]) \
                     AS d(namespace, session, worker_id)), \
             lapsed AS ( \
                 SELECT namespace, session FROM sessions \
                 WHERE partition = $4 AND expires_at <= $5 \
                 ORDER BY expires_at LIMIT $6), \
             locked AS MATERIALIZED ( \
                 SELECT s.namespace, s.session FROM sessions s \
                 WHERE (s.namespace, s.session) IN ( \
                     SELECT namespace, session FROM dead \
                     UNION SELECT namespace, session FROM lapsed) \
                 ORDER BY s.namespace, s.session FOR UPDATE) \
             DELETE FROM sessions s USING locked l \
             WHERE s.namespace = l.namespace AND s.session = l.session \
               AND (s.expires_at <= $5 OR EXISTS ( \
                   SELECT 1 FROM dead d WHERE d.namespace = s.namespace \
                   AND d.session = s.session AND d.worker_id = s.worker_id))",
        )
        .bind(self.namespaces)
        .bind(self.sessions)
        .bind(self.workers)
        .bind(part(partition))
        .bind(now.as_millis())
        .bind(limit)
        .execute(&mut *tx)
        .await
        .map_err(map)?;
        Ok(())
    }
}

pub(crate) async fn expire_deadlines(
    b: &PostgresBackend,
    partition: PartitionId,
    limit: usize,
) -> Result<ScanReport> {
    let limit = b.scan_limit(partition, limit)?;
    let now = b.now();
    let mut tx = b.begin().await?;
    let outcome = expire_in(b, &mut tx, partition, limit, now).await;
    finish(tx, outcome).await
}

/// The body of `expire_deadlines`, in the caller's transaction.
async fn expire_in(
    b: &PostgresBackend,
    tx: &mut PgConnection,
    partition: PartitionId,
    limit: i64,
    now: Timestamp,
) -> Result<ScanReport> {
    // The roots of the flows of those that are members, or have
    // dependents, and the parents first (see `flow::lock_ancestors`): an
    // expiry tells dependents and cancels descendants. Of the executions
    // due, read without a lock, then the due ones themselves under their
    // locks; a root is its own, locked there; a member not read here is
    // left to the next pass.
    let candidates: Vec<Uuid> = sqlx::query_scalar(
        "SELECT uuid FROM executions WHERE partition = $1 AND deadline IS NOT NULL \
         AND finished_at IS NULL AND deadline <= $2 ORDER BY deadline, uuid LIMIT $3",
    )
    .bind(part(partition))
    .bind(now.as_millis())
    .bind(limit)
    .fetch_all(&mut *tx)
    .await
    .map_err(map)?;
    let roots_of = crate::flow::RootsOf::Members;
    let covered = crate::flow::lock_ancestors_in(tx, partition, &candidates, roots_of).await?;
    let due: Vec<(Uuid, Option<String>, bool)> = sqlx::query_as(
        "SELECT uuid, parent, has_dependents FROM executions WHERE partition = $1 \
         AND deadline IS NOT NULL AND finished_at IS NULL AND deadline <= $2 \
         AND (root IS NULL OR uuid = ANY($4)) \
         ORDER BY deadline, uuid LIMIT $3 FOR UPDATE SKIP LOCKED",
    )
    .bind(part(partition))
    .bind(now.as_millis())
    .bind(limit)
    .bind(&covered)
    .fetch_all(&mut *tx)
    .await
    .map_err(map)?;
    let uuids: Vec<Uuid> = due.iter().map(|(u, _, _)| *u).collect();
    let row = sqlx::query(sql::EXPIRE)
        .bind(part(partition))
        .bind(&uuids)
        .bind(now.as_millis())
        .fetch_one(&mut *tx)
        .await
        .map_err(map)?;
    let processed: i64 = col(&row, "processed")?;
    let parents = due
        .iter()
        .filter_map(|(_, p, _)| p.clone().map(|p| (p, now)));
    crate::flow::parents_finished(tx, parents, &b.inner.channel).await?;
    let expired = due
        .iter()
        .map(|(u, _, has_dependents)| {
            ExecutionId::from_parts(*u, partition, b.inner.partitions)
                .map(|id| (id, *has_dependents))
        })
        .collect::<Result<Vec<_>>>()?;
    crate::flow::cascade_expired(b, tx, &expired, now).await?;
    let next: Option<i64> = sqlx::query_scalar(
        "SELECT MIN(deadline) FROM executions WHERE partition = $1 \
         AND deadline IS NOT NULL AND finished_at IS NULL",
    )
    .bind(part(partition))
    .fetch_one(&mut *tx)
    .await
    .map_err(map)?;
    Ok(ScanReport {
        processed: processed.max(0) as u64,
        next_due: next.map(Timestamp::from_millis),
    })
}

pub(crate) async fn trim_terminal(
    b: &PostgresBackend,
    partition: PartitionId,
    retention: Duration,
    limit: usize,
) -> Result<ScanReport> {
    let bound = b.scan_limit(partition, limit)?;
    let now = b.now();
    let mut tx = b.begin().await?;
    let outcome = trim_in(b, &mut tx, partition, retention, limit, bound, now).await;
    finish(tx, outcome).await
}

/// The body of `trim_terminal`, in the caller's transaction. Roots only (an
/// execution outside flows is its own root): members are trimmed with
/// their root, newest first (no parent before its children), the root
/// last. Two range reads, each on its index (migration 0012), take only
/// due roots: those stamped with a rule's keep, and the rest against the
/// default; so roots kept long never stand in the way of the ones due.
/// Each is judged by the rules in force now (`rules::trim_verdict`): one a
/// newer rule keeps longer is re-stamped where the pass reads it when it is
/// due, one whose flow still runs is looked at again a keep later.
async fn trim_in(
    b: &PostgresBackend,
    tx: &mut PgConnection,
    partition: PartitionId,
    retention: Duration,
    limit: usize,
    bound: i64,
    now: Timestamp,
) -> Result<ScanReport> {
    let default_ms = u64::try_from(retention.as_millis()).unwrap_or(u64::MAX);
    let cutoff = now.saturating_sub(retention);
    let mut due: Vec<(i64, TrimRoot)> = Vec::new();
    for (sql, bound_at) in [
        (
            "SELECT uuid, namespace, lane, COALESCE(trim_at, finished_at) AS since, keep_ms \
             FROM executions WHERE partition = $1 AND finished_at IS NOT NULL \
             AND root IS NULL AND keep_ms IS NOT NULL \
             AND COALESCE(trim_at, finished_at) + keep_ms <= $2 \
             ORDER BY COALESCE(trim_at, finished_at) + keep_ms, uuid LIMIT $3 \
             FOR UPDATE SKIP LOCKED",
            now,
        ),
        (
            "SELECT uuid, namespace, lane, COALESCE(trim_at, finished_at) AS since, keep_ms \
             FROM executions WHERE partition = $1 AND finished_at IS NOT NULL \
             AND root IS NULL AND keep_ms IS NULL AND COALESCE(trim_at, finished_at) <= $2 \
             ORDER BY COALESCE(trim_at, finished_at), uuid LIMIT $3 FOR UPDATE SKIP LOCKED",
            cutoff,
        ),
    ] {
        let rows: Vec<(Uuid, String, String, i64, Option<i64>)> = sqlx::query_as(sql)
            .bind(part(partition))
            .bind(bound_at.as_millis())
            .bind(bound)
            .fetch_all(&mut *tx)
            .await
            .map_err(map)?;
        for (uuid, namespace, lane, since, keep) in rows {
            let keep = keep.map_or(default_ms, |k| u64::try_from(k).unwrap_or(0));
            let at = since.saturating_add(i64::try_from(keep).unwrap_or(i64::MAX));
            let id = ExecutionId::from_parts(uuid, partition, b.inner.partitions)?.to_string();
            due.push((
                at,
                TrimRoot {
                    uuid,
                    id,
                    namespace,
                    lane,
                    since,
                },
            ));
        }
    }
    // Merged by when each fell due; those past the bound stay locked until
    // commit and are read again by the next pass.
    due.sort_by_key(|(at, root)| (*at, root.uuid));
    due.truncate(usize::try_from(bound).unwrap_or(usize::MAX));
    let mut namespaces: Vec<&str> = due.iter().map(|(_, r)| r.namespace.as_str()).collect();
    namespaces.sort_unstable();
    namespaces.dedup();
    let in_force = crate::manage::rules_of(tx, &namespaces).await?;
    let now_ms = now.as_millis();
    let judged: Vec<(&TrimRoot, Option<u64>, TrimVerdict)> = due
        .iter()
        .map(|(_, root)| {
            let current = rules::keep_for(
                in_force
                    .iter()
                    .map(|(ns, lane, keep)| (ns.as_str(), lane.as_str(), *keep)),
                &root.namespace,
                &root.lane,
            );
            let verdict = rules::trim_verdict(current, default_ms, root.since, now_ms);
            (root, current, verdict)
        })
        .collect();
    // The flows among those due that still have an unfinished member, in
    // one read (their roots are locked, and every writer that adds or
    // reopens a member locks the root first).
    let trimmed: Vec<&str> = judged
        .iter()
        .filter(|(_, _, verdict)| *verdict == TrimVerdict::Trim)
        .map(|(root, _, _)| root.id.as_str())
        .collect();
    let open: HashSet<String> = if trimmed.is_empty() {
        HashSet::new()
    } else {
        sqlx::query_scalar::<_, String>(
            "SELECT DISTINCT root FROM executions WHERE partition = $1 AND root = ANY($2) \
             AND finished_at IS NULL",
        )
        .bind(part(partition))
        .bind(&trimmed)
        .fetch_all(&mut *tx)
        .await
        .map_err(map)?
        .into_iter()
        .collect()
    };
    let mut later = Restamp::default();
    let mut processed = 0usize;
    for (root, current, verdict) in judged {
        if processed >= limit {
            break;
        }
        let verdict = if verdict == TrimVerdict::Trim && open.contains(&root.id) {
            rules::trim_relook(current, now_ms)
        } else {
            verdict
        };
        if let TrimVerdict::Later { keep, since } = verdict {
            later.uuid.push(root.uuid);
            later
                .keep
                .push(keep.map(|k| i64::try_from(k).unwrap_or(i64::MAX)));
            later.since.push(since);
            continue;
        }
        let asked = limit - processed;
        let mut doomed: Vec<Uuid> = sqlx::query_scalar(
            "SELECT uuid FROM executions WHERE partition = $1 AND root = $2 \
             ORDER BY uuid DESC LIMIT $3 FOR UPDATE",
        )
        .bind(part(partition))
        .bind(&root.id)
        .bind(asked as i64)
        .fetch_all(&mut *tx)
        .await
        .map_err(map)?;
        let members = doomed.len();
        let more = members == asked
            && sqlx::query_scalar::<_, i32>(
                "SELECT 1 FROM executions WHERE partition = $1 AND root = $2 \
                 AND uuid <> ALL($3::uuid[]) LIMIT 1",
            )
            .bind(part(partition))
            .bind(&root.id)
            .bind(&doomed)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map)?
            .is_some();
        if !more && members < asked {
            doomed.push(root.uuid);
        }
        let gone = remove(tx, partition, &doomed).await?;
        processed += usize::try_from(gone).unwrap_or(usize::MAX);
    }
    if !later.uuid.is_empty() {
        sqlx::query(
            "UPDATE executions e SET keep_ms = v.keep, trim_at = v.since \
             FROM UNNEST($2::uuid[], $3::bigint[], $4::bigint[]) AS v(uuid, keep, since) \
             WHERE e.partition = $1 AND e.uuid = v.uuid",
        )
        .bind(part(partition))
        .bind(&later.uuid)
        .bind(&later.keep)
        .bind(&later.since)
        .execute(&mut *tx)
        .await
        .map_err(map)?;
    }
    // The earliest a root left falls due, from each index's first entry.
    let (plain, kept): (Option<i64>, Option<i64>) = sqlx::query_as(
        "SELECT (SELECT MIN(COALESCE(trim_at, finished_at)) FROM executions \
                 WHERE partition = $1 AND finished_at IS NOT NULL AND root IS NULL \
                 AND keep_ms IS NULL), \
                (SELECT MIN(COALESCE(trim_at, finished_at) + keep_ms) FROM executions \
                 WHERE partition = $1 AND finished_at IS NOT NULL AND root IS NULL \
                 AND keep_ms IS NOT NULL)",
    )
    .bind(part(partition))
    .fetch_one(&mut *tx)
    .await
    .map_err(map)?;
    let plain = plain.map(|t| Timestamp::from_millis(t).saturating_add(retention));
    let kept = kept.map(Timestamp::from_millis);
    Ok(ScanReport {
        processed: processed as u64,
        next_due: plain.into_iter().chain(kept).min(),
    })
}

/// A finished root the trim pass read as due.
struct TrimRoot {
    uuid: Uuid,
    /// Its id as the `root` column of its members holds it.
    id: String,
    namespace: String,
    lane: String,
    /// When its keep counts from: its finish, or the last look at its open
    /// flow.
    since: i64,
}

/// The roots a trim pass re-stamps (not due under the rule in force, or
/// their flow still runs), as one column array each.
#[derive(Default)]
struct Restamp {
    uuid: Vec<Uuid>,
    keep: Vec<Option<i64>>,
    since: Vec<i64>,
}

/// Deletes the executions `uuids` of `partition`, which the caller locked
/// earlier in its transaction, with everything they hold (`sql/trim.sql`);
/// answers how many went. Trimming and deleting remove executions through
/// this one statement.
pub(crate) async fn remove(
    conn: &mut PgConnection,
    partition: PartitionId,
    uuids: &[Uuid],
) -> Result<u64> {
    if uuids.is_empty() {
        return Ok(0);
    }
    let row = sqlx::query(sql::TRIM)
        .bind(part(partition))
        .bind(uuids)
        .fetch_one(&mut *conn)
        .await
        .map_err(map)?;
    let gone: i64 = col(&row, "processed")?;
    Ok(u64::try_from(gone).unwrap_or(0))
}
