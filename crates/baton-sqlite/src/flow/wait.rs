//! Waiting for children: `wait_children`, and the count-down of a parent
//! every finishing child does in its own atomic unit.

use super::*;

/// `count` children of `parent` just finished (in this transaction): its
/// count of unfinished children goes down, and a parent blocked on its
/// children whose last child finished becomes `waiting`, eligible now
/// ([`rules::children_finished`]). Answers the lane to wake after commit.
pub(crate) async fn children_finished(
    conn: &mut SqliteConnection,
    parent: &ExecutionId,
    count: u64,
    now: Timestamp,
) -> Result<Option<(String, String)>> {
    let row = sqlx::query(
        "SELECT state, open_children, namespace, lane, dep_policy, deps_total, deps_done, \
         deps_bad FROM executions WHERE uuid = ?",
    )
    .bind(blob(parent))
    .fetch_optional(&mut *conn)
    .await
    .map_err(map)?;
    // A parent trimmed before its children (an old flow) has nothing to count.
    let Some(row) = row else {
        return Ok(None);
    };
    let ctx = format!("execution {parent}");
    let state = read::state(&ctx, &col::<String>(&row, "state")?)?;
    let open = col::<i64>(&row, "open_children")?;
    let open: u64 = baton_core::raw::stored::in_range("open_children", &ctx, open)?;
    let (namespace, lane): (String, String) = (col(&row, "namespace")?, col(&row, "lane")?);
    let deps = read::dependencies(&row, &ctx)?;
    let (after, release) = rules::children_finished(state, open, count, deps);
    let after = i64::try_from(after).unwrap_or(i64::MAX);
    if release {
        sqlx::query(
            "UPDATE executions SET state = 'waiting', open_children = ?1, ready_at = ?2, \
             updated_at = ?2 WHERE uuid = ?3",
        )
        .bind(after)
        .bind(now.as_millis())
        .bind(blob(parent))
        .execute(&mut *conn)
        .await
        .map_err(map)?;
        return Ok(Some((namespace, lane)));
    }
    sqlx::query("UPDATE executions SET open_children = ? WHERE uuid = ?")
        .bind(after)
        .bind(blob(parent))
        .execute(&mut *conn)
        .await
        .map_err(map)?;
    Ok(None)
}

pub(crate) async fn wait_children(
    b: &SqliteBackend,
    lease: &LeaseToken,
) -> Result<ExecutionSnapshot> {
    let now = b.now();
    let id = lease.execution_id();
    let mut tx = b.begin().await?;
    match b.check_lease(&mut tx, lease, now).await? {
        (rules::LeaseVerdict::Live, snap) => {
            let open: i64 =
                sqlx::query_scalar("SELECT open_children FROM executions WHERE uuid = ?")
                    .bind(blob(id))
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(map)?;
            let ctx = format!("execution {id}");
            let open: u64 = baton_core::raw::stored::in_range("open_children", &ctx, open)?;
            if !rules::wait_children_blocks(open) {
                tx.commit().await.map_err(map)?;
                return Ok(snap);
            }
            let attempt = snap.attempts;
            SqliteBackend::close_attempt(&mut tx, id, attempt, AttemptOutcome::Released, None, now)
                .await?;
            sqlx::query(
                "UPDATE executions SET state = 'blocked', released = released + 1, updated_at = ?, \
                 worker_id = NULL, lease_nonce = NULL, lease_expires_at = NULL WHERE uuid = ?",
            )
            .bind(now.as_millis())
            .bind(blob(id))
            .execute(&mut *tx)
            .await
            .map_err(map)?;
            let snap = b.snapshot_in(&mut tx, id).await?;
            tx.commit().await.map_err(map)?;
            Ok(snap)
        }
        (rules::LeaseVerdict::Ended(outcome), snap) => {
            rules::wait_children_replay(lease, outcome, snap)
        }
    }
}
