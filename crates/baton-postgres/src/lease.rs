//! Work under a lease: `renew`, `complete`, `fail`.

use baton_core::raw::rules;
use baton_core::{
    AttemptOutcome, EngineError, ExecutionId, ExecutionSnapshot, Failure, LeaseToken, Limits,
    RenewOutcome, RenewRequest, RenewStatus, Result, State, Timestamp,
};
use sqlx::PgConnection;
use sqlx::postgres::PgRow;
use uuid::Uuid;

use crate::errors::map;
use crate::read::{self, col};
use crate::{PostgresBackend, combine, finish, part, sql};

impl PostgresBackend {
    /// Locks the execution row of `lease` for the rest of the transaction
    /// and judges the lease: from the row alone when it holds the lease
    /// ([`rules::judge_current_lease`]), else from the attempt the lease
    /// names ([`rules::judge_ended_lease`]).
    pub(crate) async fn check_lease(
        &self,
        conn: &mut PgConnection,
        lease: &LeaseToken,
        now: Timestamp,
    ) -> Result<(rules::LeaseVerdict, ExecutionSnapshot)> {
        let (verdict, snap, _) = self.check_lease_row(conn, lease, now).await?;
        Ok((verdict, snap))
    }

    /// [`check_lease`](Self::check_lease), also answering whether the
    /// execution has dependents (stable from here on: a create of a
    /// dependent waits for the row lock).
    async fn check_lease_row(
        &self,
        conn: &mut PgConnection,
        lease: &LeaseToken,
        now: Timestamp,
    ) -> Result<(rules::LeaseVerdict, ExecutionSnapshot, bool)> {
        let id = lease.execution_id();
        let row = self.lock_row(conn, id).await?;
        let snap = self.snapshot(&row)?;
        let has_dependents = read::has_dependents(&row)?;
        if let Some(verdict) =
            rules::judge_current_lease(lease, &snap, read::lease_nonce(&row)?, now)
        {
            return Ok((verdict?, snap, has_dependents));
        }
        let attempt = sqlx::query(
            "SELECT nonce, outcome FROM attempt_history \
             WHERE partition = $1 AND execution_uuid = $2 AND number = $3",
        )
        .bind(part(id.partition()))
        .bind(id.uuid())
        .bind(i32::try_from(lease.attempt()).unwrap_or(i32::MAX))
        .fetch_optional(&mut *conn)
        .await
        .map_err(map)?;
        let attempt = match attempt {
            Some(row) => Some(read::attempt_facts(&row, &format!("execution {id}"))?),
            None => None,
        };
        let verdict = rules::judge_ended_lease(lease, &snap, attempt)?;
        Ok((verdict, snap, has_dependents))
    }

    /// Locks what a writer that may finish `id` locks before `id`: its
    /// flow's root when it has dependents, then its parent (see
    /// `flow::lock_ancestors`). Answers whether the root is locked.
    async fn lock_ancestors(&self, tx: &mut PgConnection, id: &ExecutionId) -> Result<bool> {
        let (p, u) = ([part(id.partition())], [id.uuid()]);
        let roots_of = crate::flow::RootsOf::Dependents;
        let covered = crate::flow::lock_ancestors(tx, &p, &u, roots_of).await?;
        Ok(!covered.is_empty())
    }
    /// The body of `complete` once the fast path missed, in the caller's
    /// transaction (not committed here).
    pub(crate) async fn complete_locked(
        &self,
        tx: &mut PgConnection,
        lease: &LeaseToken,
        result: &[u8],
        now: Timestamp,
    ) -> Result<ExecutionSnapshot> {
        let id = lease.execution_id();
        let root_locked = self.lock_ancestors(tx, id).await?;
        match self.check_lease_row(tx, lease, now).await? {
            (rules::LeaseVerdict::Live, _, has_dependents) => {
                if has_dependents && !root_locked {
                    crate::flow::lock_root_of(tx, id).await?;
                }
                let snap = self
                    .try_complete(tx, lease, result, now)
                    .await?
                    .ok_or_else(|| {
                        EngineError::corruption(format!(
                            "execution {id}: a live lease could not complete under its row lock"
                        ))
                    })?;
                let channel = &self.inner.channel;
                if let Some(parent) = &snap.parent {
                    crate::flow::children_finished(tx, parent, 1, now, channel).await?;
                }
                if has_dependents {
                    let told = vec![(id.clone(), true, now)];
                    let (partitions, budget) =
                        (self.inner.partitions, self.inner.limits.cascade_budget);
                    crate::flow::dependents_finished(tx, partitions, budget, channel, told).await?;
                }
                Ok(snap)
            }
            (rules::LeaseVerdict::Ended(outcome), snap, _) => {
                rules::complete_replay(lease, outcome, snap, result)
            }
        }
    }

    /// The body of `fail`, in the caller's transaction (not committed here).
    pub(crate) async fn fail_locked(
        &self,
        tx: &mut PgConnection,
        lease: &LeaseToken,
        failure: &Failure,
        now: Timestamp,
    ) -> Result<ExecutionSnapshot> {
        let id = lease.execution_id();
        let root_locked = self.lock_ancestors(tx, id).await?;
        match self.check_lease_row(tx, lease, now).await? {
            (rules::LeaseVerdict::Live, snap, has_dependents) => {
                if has_dependents && !root_locked {
                    crate::flow::lock_root_of(tx, id).await?;
                }
                let released: i32 = sqlx::query_scalar(
                    "SELECT released FROM executions WHERE partition = $1 AND uuid = $2",
                )
                .bind(part(id.partition()))
                .bind(id.uuid())
                .fetch_one(&mut *tx)
                .await
                .map_err(map)?;
                let mut settle = SettleArrays::default();
                let released = u32::try_from(released).unwrap_or(0);
                settle.push(&snap, released, failure, &self.inner.limits, now);
                let rows = settle.run(self, tx, AttemptOutcome::Failed, now).await?;
                let row = rows.first().ok_or_else(|| {
                    EngineError::corruption(format!("execution {id}: a locked row vanished"))
                })?;
                self.snapshot(row)
            }
            (rules::LeaseVerdict::Ended(outcome), snap, _) => {
                rules::fail_replay(lease, outcome, snap)
            }
        }
    }

    /// Runs the complete statement; `None` when `lease` is not live.
    pub(crate) async fn try_complete(
        &self,
        conn: &mut PgConnection,
        lease: &LeaseToken,
        result: &[u8],
        now: Timestamp,
    ) -> Result<Option<ExecutionSnapshot>> {
        let id = lease.execution_id();
        let row = sqlx::query(sql::COMPLETE)
            .bind(part(id.partition()))
            .bind(id.uuid())
            .bind(i32::try_from(lease.attempt()).unwrap_or(i32::MAX))
            .bind(lease.nonce() as i64)
            .bind(now.as_millis())
            .bind(result)
            .fetch_optional(&mut *conn)
            .await
            .map_err(map)?;
        row.map(|r| self.snapshot(&r)).transpose()
    }

    /// The fast path of `complete`, combined with concurrent completes of
    /// this instance (see `coalesce`); `None` when `lease` is not live.
    pub(crate) async fn complete_combined(
        &self,
        lease: &LeaseToken,
        result: &[u8],
        now: Timestamp,
    ) -> Result<Option<ExecutionSnapshot>> {
        let id = lease.execution_id();
        let (reply, answer) = tokio::sync::oneshot::channel();
        let queued = self.inner.completer.send(combine::Pending {
            partition: part(id.partition()),
            uuid: id.uuid(),
            attempt: i32::try_from(lease.attempt()).unwrap_or(i32::MAX),
            nonce: lease.nonce() as i64,
            now: now.as_millis(),
            result: result.to_vec(),
            reply,
        });
        if queued.is_ok()
            && let Ok(row) = answer.await
        {
            return row.map(|r| self.snapshot(&r)).transpose();
        }
        // The combining task is gone (its runtime shut down): the caller
        // completes alone, in a transaction.
        Ok(None)
    }
}

pub(crate) async fn renew(b: &PostgresBackend, request: RenewRequest) -> Result<Vec<RenewOutcome>> {
    let limits = &b.inner.limits;
    limits.check_batch("leases", request.leases.len())?;
    limits.check_lease(request.lease_ttl)?;
    let now = b.now();
    let expires = now.saturating_add(request.lease_ttl);
    crate::ops::saw_renew(b, &request, now).await;
    let mut index = Vec::new();
    let (mut partitions, mut uuids, mut numbers, mut nonces) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (i, lease) in request.leases.iter().enumerate() {
        let id = lease.execution_id();
        let Ok(number) = i32::try_from(lease.attempt()) else {
            continue;
        };
        if b.check_id(id).is_err() {
            continue;
        }
        index.push(i);
        partitions.push(part(id.partition()));
        uuids.push(id.uuid());
        numbers.push(number);
        nonces.push(lease.nonce() as i64);
    }
    let mut status = vec![RenewStatus::Lost; request.leases.len()];
    if !index.is_empty() {
        let rows = sqlx::query(sql::RENEW)
            .bind(partitions)
            .bind(uuids)
            .bind(numbers)
            .bind(nonces)
            .bind(request.worker_id.as_str())
            .bind(now.as_millis())
            .bind(expires.as_millis())
            .fetch_all(&b.inner.pool)
            .await
            .map_err(map)?;
        for row in &rows {
            let ord: i64 = col(row, "ord")?;
            let slot = usize::try_from(ord - 1)
                .ok()
                .and_then(|j| index.get(j).copied())
                .ok_or_else(|| EngineError::corruption(format!("renew ordinality {ord}")))?;
            status[slot] = if col::<bool>(row, "renewed")? {
                RenewStatus::Renewed
            } else {
                let lease = &request.leases[slot];
                let attempt = match col::<Option<i64>>(row, "nonce")? {
                    Some(_) => Some(read::attempt_facts(
                        row,
                        &format!("execution {}", lease.execution_id()),
                    )?),
                    None => None,
                };
                rules::renew_refusal(attempt, lease)
            };
        }
    }
    Ok(rules::renew_outcomes(request.leases, status, expires))
}

pub(crate) async fn complete(
    b: &PostgresBackend,
    lease: &LeaseToken,
    result: Vec<u8>,
) -> Result<ExecutionSnapshot> {
    b.inner.limits.check_payload("result", result.len())?;
    let id = lease.execution_id();
    b.check_id(id)?;
    let now = b.now();
    if let Some(snap) = b.complete_combined(lease, &result, now).await? {
        return Ok(snap);
    }
    let mut tx = b.begin().await?;
    let outcome = b.complete_locked(&mut tx, lease, &result, now).await;
    finish(tx, outcome).await
}

pub(crate) async fn fail(
    b: &PostgresBackend,
    lease: &LeaseToken,
    failure: Failure,
) -> Result<ExecutionSnapshot> {
    let id = lease.execution_id();
    b.check_id(id)?;
    b.inner.limits.check_text("error", &failure.error)?;
    let now = b.now();
    let mut tx = b.begin().await?;
    let outcome = b.fail_locked(&mut tx, lease, &failure, now).await;
    let snap = finish(tx, outcome).await?;
    if snap.state == State::Waiting {
        b.inner
            .wake
            .notify(snap.namespace.as_str(), snap.lane.as_str());
    }
    Ok(snap)
}

/// Column arrays of a settle (fail / reclaim) batch, bound to
/// `sql/settle.sql`.
#[derive(Default)]
pub(crate) struct SettleArrays {
    partition: Vec<i16>,
    uuid: Vec<Uuid>,
    state: Vec<&'static str>,
    run_at: Vec<Option<i64>>,
    ready_at: Vec<Option<i64>>,
    finished_at: Vec<Option<i64>>,
    error: Vec<String>,
}

impl SettleArrays {
    /// Adds the failure of `snap`'s running attempt, settled by
    /// [`rules::settle_failure`].
    pub(crate) fn push(
        &mut self,
        snap: &ExecutionSnapshot,
        released: u32,
        failure: &Failure,
        limits: &Limits,
        now: Timestamp,
    ) {
        let settled = rules::settle_failure(snap, released, failure, limits, now);
        self.partition.push(part(snap.id.partition()));
        self.uuid.push(snap.id.uuid());
        self.state.push(settled.state.as_str());
        self.run_at.push(settled.run_at.map(Timestamp::as_millis));
        self.ready_at
            .push(settled.ready_at.map(Timestamp::as_millis));
        self.finished_at
            .push(settled.finished_at.map(Timestamp::as_millis));
        self.error.push(settled.error);
    }

    /// Runs the settle statement; every execution that failed for good is
    /// counted down in its parent and tells its dependents (the caller
    /// holds the roots of those with dependents, see `flow::lock_ancestors`).
    pub(crate) async fn run(
        self,
        b: &PostgresBackend,
        conn: &mut PgConnection,
        outcome: AttemptOutcome,
        now: Timestamp,
    ) -> Result<Vec<PgRow>> {
        let channel = b.inner.channel.as_str();
        let rows = sqlx::query(sql::SETTLE)
            .bind(self.partition)
            .bind(self.uuid)
            .bind(self.state)
            .bind(self.run_at)
            .bind(self.ready_at)
            .bind(self.finished_at)
            .bind(self.error)
            .bind(now.as_millis())
            .bind(outcome.as_str())
            .bind(channel)
            .fetch_all(&mut *conn)
            .await
            .map_err(map)?;
        // Executions that failed for good count as finished for their
        // parents, and as not completed for their dependents.
        let mut finished = Vec::new();
        let mut told = Vec::new();
        for row in &rows {
            if col::<Option<i64>>(row, "finished_at")?.is_none() {
                continue;
            }
            if let Some(parent) = col::<Option<String>>(row, "parent")? {
                finished.push((parent, now));
            }
            if read::has_dependents(row)? {
                told.push((read::execution_id(row, b.inner.partitions)?, false, now));
            }
        }
        crate::flow::parents_finished(conn, finished, channel).await?;
        let budget = b.inner.limits.cascade_budget;
        crate::flow::dependents_finished(conn, b.inner.partitions, budget, channel, told).await?;
        Ok(rows)
    }
}
