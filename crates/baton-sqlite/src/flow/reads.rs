//! The reads of a flow: the children of an execution, the tree of a flow.

use super::*;

pub(crate) async fn children(
    b: &SqliteBackend,
    parent: &ExecutionId,
    page: Page,
) -> Result<ListPage> {
    b.check_id(parent)?;
    page.validate()?;
    let mut conn = b.inner.reader.acquire().await.map_err(map)?;
    // The parent must exist: an unknown id is NotFound, not an empty page.
    b.snapshot_in(&mut conn, parent).await?;
    let after = page.cursor.map(|c| c.after_uuid().as_bytes().to_vec());
    let rows = sqlx::query(concat!(
        "SELECT ",
        execution_columns!(),
        " FROM executions WHERE parent = ? AND (? IS NULL OR uuid > ?) ORDER BY uuid LIMIT ?"
    ))
    .bind(parent.to_string())
    .bind(after.clone())
    .bind(after)
    .bind(page.limit as i64 + 1)
    .fetch_all(&mut *conn)
    .await
    .map_err(map)?;
    let items = rows
        .iter()
        .map(|r| read::snapshot(r, b.inner.partitions))
        .collect::<Result<Vec<_>>>()?;
    let (items, next_cursor) = rules::page_from_overfetch(items, page.limit, |s| &s.id);
    Ok(ListPage { items, next_cursor })
}

pub(crate) async fn tree(b: &SqliteBackend, id: &ExecutionId, limit: usize) -> Result<Tree> {
    b.check_id(id)?;
    Tree::check_limit(limit)?;
    let mut conn = b.inner.reader.acquire().await.map_err(map)?;
    let root = b.snapshot_in(&mut conn, id).await?.root;
    // The root first (it was created before every member), then its
    // members in creation order: one range of the flow index.
    let mut items = Vec::new();
    let head =
        sqlx::query("SELECT uuid, partition, parent, state, kind FROM executions WHERE uuid = ?")
            .bind(blob(&root))
            .fetch_optional(&mut *conn)
            .await
            .map_err(map)?;
    if let Some(row) = head {
        items.push(read::tree_node(&row, b.inner.partitions)?);
    }
    let rows = sqlx::query(
        "SELECT uuid, partition, parent, state, kind FROM executions \
         WHERE root = ? ORDER BY uuid LIMIT ?",
    )
    .bind(root.to_string())
    .bind((limit + 1 - items.len()) as i64)
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
