//! Waiting for children: `wait_children`, and the count-down of a parent
//! every finishing child does in its own atomic unit.

use super::*;

/// `count` children of `parent` just finished (in this transaction): its
/// count of unfinished children goes down under its row lock, and a parent
/// blocked on its children whose last child finished becomes `waiting`,
/// eligible now ([`rules::children_finished`]; claimers of every process,
/// this one included, are told on `channel` at commit).
pub(crate) async fn children_finished(
    conn: &mut PgConnection,
    parent: &ExecutionId,
    count: u64,
    now: Timestamp,
    channel: &str,
) -> Result<()> {
    let row = sqlx::query(
        "SELECT state, open_children, namespace, lane, dep_policy, deps_total, deps_done, \
         deps_bad FROM executions WHERE partition = $1 AND uuid = $2 FOR UPDATE",
    )
    .bind(part(parent.partition()))
    .bind(parent.uuid())
    .fetch_optional(&mut *conn)
    .await
    .map_err(map)?;
    // A parent trimmed before its children (an old flow) has nothing to count.
    let Some(row) = row else {
        return Ok(());
    };
    let ctx = format!("execution {parent}");
    let state = read::state(&ctx, &col::<String>(&row, "state")?)?;
    let open = col::<i32>(&row, "open_children")?;
    let open = baton_core::raw::stored::in_range::<u64>("open_children", &ctx, i64::from(open))?;
    let (namespace, lane): (String, String) = (col(&row, "namespace")?, col(&row, "lane")?);
    let deps = read::dependencies(&row, &ctx)?;
    let (after, release) = rules::children_finished(state, open, count, deps);
    let after = i32::try_from(after).unwrap_or(i32::MAX);
    if release {
        sqlx::query(
            "UPDATE executions SET state = 'waiting', open_children = $3, ready_at = $4, \
             updated_at = $4 WHERE partition = $1 AND uuid = $2",
        )
        .bind(part(parent.partition()))
        .bind(parent.uuid())
        .bind(after)
        .bind(now.as_millis())
        .execute(&mut *conn)
        .await
        .map_err(map)?;
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(channel)
            .bind(format!("{namespace} {lane}"))
            .execute(&mut *conn)
            .await
            .map_err(map)?;
        return Ok(());
    }
    sqlx::query("UPDATE executions SET open_children = $3 WHERE partition = $1 AND uuid = $2")
        .bind(part(parent.partition()))
        .bind(parent.uuid())
        .bind(after)
        .execute(&mut *conn)
        .await
        .map_err(map)?;
    Ok(())
}

/// Children that just finished, by their parents' stored ids (`at` is when
/// each group finished): every parent counted down, in one lock order —
/// partition, then uuid, as creates lock parents — so two writers never
/// wait on each other's parents.
pub(crate) async fn parents_finished(
    conn: &mut PgConnection,
    finished: impl IntoIterator<Item = (String, Timestamp)>,
    channel: &str,
) -> Result<()> {
    let mut parents: BTreeMap<(PartitionId, Uuid), (ExecutionId, u64, Timestamp)> = BTreeMap::new();
    for (text, at) in finished {
        let id =
            baton_core::raw::stored::parse::<ExecutionId>("parent", "a finished child", &text)?;
        let entry = parents
            .entry((id.partition(), id.uuid()))
            .or_insert((id, 0, at));
        entry.1 += 1;
        entry.2 = entry.2.max(at);
    }
    for (parent, count, at) in parents.into_values() {
        children_finished(conn, &parent, count, at, channel).await?;
    }
    Ok(())
}

pub(crate) async fn wait_children(
    b: &PostgresBackend,
    lease: &LeaseToken,
) -> Result<ExecutionSnapshot> {
    let id = lease.execution_id();
    b.check_id(id)?;
    let now = b.now();
    let mut tx = b.begin().await?;
    let outcome = wait_children_in(b, &mut tx, lease, now).await;
    finish(tx, outcome).await
}

/// The body of `wait_children`, in the caller's transaction.
async fn wait_children_in(
    b: &PostgresBackend,
    tx: &mut PgConnection,
    lease: &LeaseToken,
    now: Timestamp,
) -> Result<ExecutionSnapshot> {
    let id = lease.execution_id();
    match b.check_lease(tx, lease, now).await? {
        (rules::LeaseVerdict::Live, snap) => {
            let open: i32 = sqlx::query_scalar(
                "SELECT open_children FROM executions WHERE partition = $1 AND uuid = $2",
            )
            .bind(part(id.partition()))
            .bind(id.uuid())
            .fetch_one(&mut *tx)
            .await
            .map_err(map)?;
            let ctx = format!("execution {id}");
            let open =
                baton_core::raw::stored::in_range::<u64>("open_children", &ctx, i64::from(open))?;
            if !rules::wait_children_blocks(open) {
                return Ok(snap);
            }
            let row = sqlx::query(
                "UPDATE executions SET state = 'blocked', released = released + 1, \
                     updated_at = $3, worker_id = NULL, lease_nonce = NULL, \
                     lease_expires_at = NULL, attempt_ended_at = $3, \
                     attempt_outcome = 'released' \
                 WHERE partition = $1 AND uuid = $2 RETURNING *",
            )
            .bind(part(id.partition()))
            .bind(id.uuid())
            .bind(now.as_millis())
            .fetch_one(&mut *tx)
            .await
            .map_err(map)?;
            b.snapshot(&row)
        }
        (rules::LeaseVerdict::Ended(outcome), snap) => {
            rules::wait_children_replay(lease, outcome, snap)
        }
    }
}
