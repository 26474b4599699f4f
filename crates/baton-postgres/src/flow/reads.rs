//! The reads of a flow: the children of an execution, the tree of a flow.

use super::*;

pub(crate) async fn children(
    b: &PostgresBackend,
    parent: &ExecutionId,
    page: Page,
) -> Result<ListPage> {
    b.check_id(parent)?;
    page.validate()?;
    let mut conn = b.inner.pool.acquire().await.map_err(map)?;
    // The parent must exist: an unknown id is NotFound, not an empty page.
    let found: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM executions WHERE partition = $1 AND uuid = $2)",
    )
    .bind(part(parent.partition()))
    .bind(parent.uuid())
    .fetch_one(&mut *conn)
    .await
    .map_err(map)?;
    if !found {
        return Err(EngineError::NotFound { id: parent.clone() });
    }
    let limit = i64::try_from(page.limit)
        .unwrap_or(i64::MAX)
        .saturating_add(1);
    // Two statements rather than `($3 IS NULL OR uuid > $3)`: under the
    // generic plans this backend forces, only a plain `uuid > $3` starts
    // the index range at the cursor.
    let rows = match page.cursor {
        Some(cursor) => {
            sqlx::query(
                "SELECT * FROM executions WHERE partition = $1 AND parent = $2 AND uuid > $3 \
                 ORDER BY uuid LIMIT $4",
            )
            .bind(part(parent.partition()))
            .bind(parent.to_string())
            .bind(cursor.after_uuid())
            .bind(limit)
            .fetch_all(&mut *conn)
            .await
        }
        None => {
            sqlx::query(
                "SELECT * FROM executions WHERE partition = $1 AND parent = $2 \
                 ORDER BY uuid LIMIT $3",
            )
            .bind(part(parent.partition()))
            .bind(parent.to_string())
            .bind(limit)
            .fetch_all(&mut *conn)
            .await
        }
    }
    .map_err(map)?;
    crate::admin::page_of(b, &rows, page.limit)
}

pub(crate) async fn tree(b: &PostgresBackend, id: &ExecutionId, limit: usize) -> Result<Tree> {
    b.check_id(id)?;
    Tree::check_limit(limit)?;
    let mut conn = b.inner.pool.acquire().await.map_err(map)?;
    let asked = sqlx::query(
        "SELECT uuid, partition, parent, state, kind, root FROM executions \
         WHERE partition = $1 AND uuid = $2",
    )
    .bind(part(id.partition()))
    .bind(id.uuid())
    .fetch_optional(&mut *conn)
    .await
    .map_err(map)?
    .ok_or_else(|| EngineError::NotFound { id: id.clone() })?;
    let stored_root = col::<Option<String>>(&asked, "root")?
        .map(|r| {
            baton_core::raw::stored::parse::<ExecutionId>("root", &format!("execution {id}"), &r)
        })
        .transpose()?;
    // The root first (it was created before every member), then its
    // members in creation order: one range of the flow index, in the
    // root's partition.
    let mut items = Vec::new();
    let root = match stored_root {
        None => {
            items.push(read::tree_node(&asked, b.inner.partitions)?);
            id.clone()
        }
        Some(root) => {
            let head = sqlx::query(
                "SELECT uuid, partition, parent, state, kind FROM executions \
                 WHERE partition = $1 AND uuid = $2",
            )
            .bind(part(root.partition()))
            .bind(root.uuid())
            .fetch_optional(&mut *conn)
            .await
            .map_err(map)?;
            if let Some(row) = head {
                items.push(read::tree_node(&row, b.inner.partitions)?);
            }
            root
        }
    };
    let rest = i64::try_from(limit + 1 - items.len()).unwrap_or(i64::MAX);
    let rows = sqlx::query(
        "SELECT uuid, partition, parent, state, kind FROM executions \
         WHERE partition = $1 AND root = $2 ORDER BY uuid LIMIT $3",
    )
    .bind(part(root.partition()))
    .bind(root.to_string())
    .bind(rest)
    .fetch_all(&mut *conn)
    .await
    .map_err(map)?;
    for row in &rows {
        items.push(read::tree_node(row, b.inner.partitions)?);
    }
    let truncated = items.len() > limit;
    items.truncate(limit);
    Ok(Tree {
        root,
        items,
        truncated,
    })
}
