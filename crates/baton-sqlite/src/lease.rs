//! Work under a lease: `renew`, `complete`, `fail`.

use baton_core::raw::rules;
use baton_core::{
    AttemptOutcome, ExecutionId, ExecutionSnapshot, Failure, LeaseToken, RenewOutcome,
    RenewRequest, RenewStatus, Result, State, Timestamp,
};
use sqlx::SqliteConnection;

use crate::errors::map;
use crate::read::{self, col};
use crate::{SqliteBackend, blob, combine};

impl SqliteBackend {
    /// Closes the open attempt `number` of `id` with `outcome`. An open
    /// attempt is always the execution's last, kept in its row: whether or
    /// not the lease columns are cleared yet, the statement finds it by its
    /// number.
    pub(crate) async fn close_attempt(
        conn: &mut SqliteConnection,
        id: &ExecutionId,
        number: u32,
        outcome: AttemptOutcome,
        error: Option<&str>,
        now: Timestamp,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE executions SET attempt_ended_at = ?, attempt_outcome = ?, attempt_error = ? \
             WHERE uuid = ? AND attempts = ? AND attempt_started_at IS NOT NULL \
             AND attempt_outcome IS NULL",
        )
        .bind(now.as_millis())
        .bind(outcome.as_str())
        .bind(error)
        .bind(blob(id))
        .bind(i64::from(number))
        .execute(&mut *conn)
        .await
        .map_err(map)?;
        Ok(())
    }

    /// Ends the running attempt of `snap` as a failure and settles it by
    /// the retry policy ([`rules::settle_failure`]): the one code path
    /// shared by `fail` and lease reclaim. Answers the lanes of the parents
    /// and dependents it released (to wake after commit).
    pub(crate) async fn apply_failure(
        &self,
        conn: &mut SqliteConnection,
        snap: &ExecutionSnapshot,
        outcome: AttemptOutcome,
        failure: Failure,
        now: Timestamp,
    ) -> Result<Vec<(String, String)>> {
        // Its dependents flag too: read here once, used if it finishes.
        let (released, has_dependents): (i64, i64) =
            sqlx::query_as("SELECT released, has_dependents FROM executions WHERE uuid = ?")
                .bind(blob(&snap.id))
                .fetch_one(&mut *conn)
                .await
                .map_err(map)?;
        let released = baton_core::raw::stored::in_range("released", "an execution", released)?;
        let settled = rules::settle_failure(snap, released, &failure, &self.inner.limits, now);
        Self::close_attempt(
            conn,
            &snap.id,
            snap.attempts,
            outcome,
            Some(&settled.error),
            now,
        )
        .await?;
        sqlx::query(
            "UPDATE executions SET state = ?, run_at = ?, ready_at = COALESCE(?, ready_at), \
             finished_at = ?, last_error = ?, updated_at = ?, \
             worker_id = NULL, lease_nonce = NULL, lease_expires_at = NULL WHERE uuid = ?",
        )
        .bind(settled.state.as_str())
        .bind(settled.run_at.map(Timestamp::as_millis))
        .bind(settled.ready_at.map(Timestamp::as_millis))
        .bind(settled.finished_at.map(Timestamp::as_millis))
        .bind(&settled.error)
        .bind(now.as_millis())
        .bind(blob(&snap.id))
        .execute(&mut *conn)
        .await
        .map_err(map)?;
        if !settled.state.is_terminal() {
            return Ok(Vec::new());
        }
        let parent = snap.parent.as_ref();
        let has = Some(has_dependents == 1);
        crate::flow::finished(self, conn, &snap.id, parent, settled.state, has, now).await
    }

    /// Reads what `lease` is judged on — the execution, the nonce it holds,
    /// the attempt the lease names — and judges it ([`rules::judge_lease`]).
    pub(crate) async fn check_lease(
        &self,
        conn: &mut SqliteConnection,
        lease: &LeaseToken,
        now: Timestamp,
    ) -> Result<(rules::LeaseVerdict, ExecutionSnapshot)> {
        let id = lease.execution_id();
        self.check_id(id)?;
        let snap = self.snapshot_in(conn, id).await?;
        let row = sqlx::query(
            "SELECT (SELECT lease_nonce FROM executions WHERE uuid = ?1) AS lease_nonce, \
             a.nonce, a.outcome FROM (SELECT 1) LEFT JOIN attempt_history a \
             ON a.execution_uuid = ?1 AND a.number = ?2",
        )
        .bind(blob(id))
        .bind(i64::from(lease.attempt()))
        .fetch_one(&mut *conn)
        .await
        .map_err(map)?;
        let stored_nonce = col::<Option<i64>>(&row, "lease_nonce")?.map(|n| n as u64);
        let attempt = read::attempt_facts(&row, &format!("execution {id}"))?;
        let verdict = rules::judge_lease(lease, &snap, stored_nonce, attempt, now)?;
        Ok((verdict, snap))
    }
}

pub(crate) async fn renew(b: &SqliteBackend, request: RenewRequest) -> Result<Vec<RenewOutcome>> {
    let limits = &b.inner.limits;
    limits.check_batch("leases", request.leases.len())?;
    limits.check_lease(request.lease_ttl)?;
    let now = b.now();
    let expires = now.saturating_add(request.lease_ttl);
    crate::ops::saw_renew(b, &request, now).await;
    let mut tx = b.begin().await?;
    let mut statuses = Vec::with_capacity(request.leases.len());
    for lease in &request.leases {
        let id = lease.execution_id();
        if b.check_id(id).is_err() {
            statuses.push(RenewStatus::Lost);
            continue;
        }
        let renewed: Option<(String, Option<String>)> = sqlx::query_as(
            "UPDATE executions SET lease_expires_at = ? \
             WHERE uuid = ? AND state = 'running' AND attempts = ? AND lease_nonce = ? \
             AND worker_id = ? AND lease_expires_at > ? AND (deadline IS NULL OR deadline > ?) \
             RETURNING namespace, session",
        )
        .bind(expires.as_millis())
        .bind(blob(id))
        .bind(i64::from(lease.attempt()))
        .bind(lease.nonce() as i64)
        .bind(request.worker_id.as_str())
        .bind(now.as_millis())
        .bind(now.as_millis())
        .fetch_optional(&mut *tx)
        .await
        .map_err(map)?;
        if let Some((namespace, Some(session))) = &renewed {
            // The worker's lock on the session lasts its idle time past
            // this renew, or the new lease's end if later.
            sqlx::query(
                "UPDATE sessions SET expires_at = MAX(expires_at, ? + idle_ms, ?) \
                 WHERE namespace = ? AND session = ? AND worker_id = ?",
            )
            .bind(now.as_millis())
            .bind(expires.as_millis())
            .bind(namespace)
            .bind(session)
            .bind(request.worker_id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(map)?;
        }
        let renewed = renewed.is_some();
        let status = if renewed {
            RenewStatus::Renewed
        } else {
            let attempt = sqlx::query(
                "SELECT nonce, outcome FROM attempt_history WHERE execution_uuid = ? AND number = ?",
            )
            .bind(blob(id))
            .bind(i64::from(lease.attempt()))
            .fetch_optional(&mut *tx)
            .await
            .map_err(map)?;
            let attempt = match attempt {
                Some(row) => read::attempt_facts(&row, &format!("execution {id}"))?,
                None => None,
            };
            rules::renew_refusal(attempt, lease)
        };
        statuses.push(status);
    }
    tx.commit().await.map_err(map)?;
    Ok(rules::renew_outcomes(request.leases, statuses, expires))
}

pub(crate) async fn complete(
    b: &SqliteBackend,
    lease: &LeaseToken,
    result: Vec<u8>,
) -> Result<ExecutionSnapshot> {
    b.inner.limits.check_payload("result", result.len())?;
    b.check_id(lease.execution_id())?;
    let now = b.now();
    combine::through_writer(b, |reply| {
        combine::Job::Complete(combine::Pending {
            lease: lease.clone(),
            result,
            now,
            reply,
        })
    })
    .await
}

pub(crate) async fn fail(
    b: &SqliteBackend,
    lease: &LeaseToken,
    failure: Failure,
) -> Result<ExecutionSnapshot> {
    b.inner.limits.check_text("error", &failure.error)?;
    let now = b.now();
    let id = lease.execution_id();
    let mut tx = b.begin().await?;
    match b.check_lease(&mut tx, lease, now).await? {
        (rules::LeaseVerdict::Live, snap) => {
            let wake = b
                .apply_failure(&mut tx, &snap, AttemptOutcome::Failed, failure, now)
                .await?;
            let snap = b.snapshot_in(&mut tx, id).await?;
            tx.commit().await.map_err(map)?;
            b.wake_all(wake.into_iter().collect());
            b.finished_some();
            if snap.state == State::Waiting {
                b.inner
                    .wake
                    .notify(snap.namespace.as_str(), snap.lane.as_str());
            }
            Ok(snap)
        }
        (rules::LeaseVerdict::Ended(outcome), snap) => rules::fail_replay(lease, outcome, snap),
    }
}
