//! Statistics that keep up with a growing table.
//!
//! The backend's connections plan each statement once and keep the plan
//! (`plan_cache_mode = force_generic_plan`) until the tables' statistics
//! change. A plan is therefore as good as the statistics of the moment it
//! was made, and autovacuum refreshes those only after a tenth of the table
//! changed and at most once a minute per database. A table analyzed small
//! (a new deployment, or one trimmed down while idle) and then filled by a
//! burst keeps plans made for the small table: the claim's update then
//! reads every child whole for each execution it leases (measured: steady
//! at 5,600 executions/s and claims at 280 ms p99, against 12,700/s and
//! 33 ms on the same server with current statistics).
//!
//! Small statistics are the dangerous ones: from a few pages, reading a
//! child whole looks cheaper than probing its key, and that plan then meets
//! a child a thousand times larger. From [`MIN_PAGES`] up, the key probes
//! win on their own figures, so a plan made from larger statistics is
//! sound however much the table grows after it (the planner scales the row
//! counts by each child's size when it plans). So every [`INTERVAL`] one
//! instance of a deployment looks for `executions` children whose
//! statistics describe fewer than [`MIN_PAGES`] pages (or none) while the
//! child now holds at least that many, and analyzes them; analyzing makes
//! every connection plan its statements again, from the new figures. A
//! child is analyzed here about once in its life (and again if it is
//! trimmed small, analyzed small by autovacuum, and filled again); a table
//! that keeps its size costs one catalog read per interval.
//!
//! Analyzing more often (whenever a child doubled) was measured and left
//! out: it bounds every plan's staleness, but costs a new deployment about
//! a tenth of its throughput in its first seconds (the samples are read
//! while the table grows fastest), where the plans it replaces were sound.
//!
//! One instance at a time does it (a transaction-scoped advisory lock tried,
//! not waited for); a role that may not analyze the tables (not their
//! owner) is told once in the log and the task stops.

use std::time::Duration;

use sqlx::postgres::{PgConnection, PgPool};
use tokio::task::JoinHandle;

/// How often the sizes are compared.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// Statistics of fewer pages than this (8 KB each) are small; a child this
/// large is analyzed if its statistics are small. Measured: the claim's
/// generic plan probes the primary key from 21 pages of 1 KiB rows per
/// child up, and reads the children whole at 2 pages.
pub const MIN_PAGES: i64 = 64;

/// The children whose statistics are small (or missing) while they are
/// not, as names to splice into `ANALYZE`.
const GROWN: &str = "\
SELECT c.oid::regclass::text \
FROM pg_inherits i \
JOIN pg_class c ON c.oid = i.inhrelid \
WHERE i.inhparent = 'executions'::regclass \
  AND c.relpages < $1 \
  AND pg_relation_size(c.oid) / current_setting('block_size')::bigint >= $1";

/// Starts the task on the current runtime; it runs until the handle is
/// aborted. `schema` names the deployment (its advisory lock's key).
pub fn start(pool: PgPool, schema: &str) -> JoinHandle<()> {
    let lock = format!("baton-statistics:{schema}");
    tokio::spawn(async move {
        loop {
            // Waits first: a process that lives for one command (the CLI)
            // never runs a pass.
            tokio::time::sleep(INTERVAL).await;
            match pass(&pool, &lock).await {
                Ok(()) => {}
                Err(sqlx::Error::PoolClosed) => return,
                Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42501") => {
                    tracing::warn!(
                        error = %e,
                        "the Postgres role cannot ANALYZE the executions tables (it does not own \
                         them); plans then follow autovacuum's statistics alone"
                    );
                    return;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "statistics pass failed; trying again later");
                }
            }
        }
    })
}

/// One comparison: a single read while nothing has outgrown its
/// statistics (every pass but a few in a deployment's life). Otherwise the
/// analyzes, in one transaction that holds the deployment's advisory lock
/// (or nothing is done: another instance is at it), compared again under
/// it.
async fn pass(pool: &PgPool, lock: &str) -> Result<(), sqlx::Error> {
    if grown(pool).await?.is_empty() {
        return Ok(());
    }
    let mut tx = pool.begin().await?;
    analyze_grown(&mut tx, lock).await?;
    tx.commit().await
}

async fn grown<'c>(conn: impl sqlx::PgExecutor<'c>) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(GROWN)
        .bind(MIN_PAGES)
        .fetch_all(conn)
        .await
}

async fn analyze_grown(conn: &mut PgConnection, lock: &str) -> Result<(), sqlx::Error> {
    let mine: bool =
        sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(lock)
            .fetch_one(&mut *conn)
            .await?;
    if !mine {
        return Ok(());
    }
    for child in grown(&mut *conn).await? {
        // A name read from the catalog, quoted by `regclass`.
        let analyze = format!("ANALYZE {child}");
        sqlx::query(&analyze).execute(&mut *conn).await?;
        tracing::debug!(child, "analyzed a grown executions child");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;
    use std::time::{Duration, Instant};

    use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions};

    use super::{MIN_PAGES, start};

    /// Each child's pages by its statistics.
    async fn recorded(conn: &mut PgConnection) -> Vec<(String, i32)> {
        sqlx::query_as(
            "SELECT c.relname::text, c.relpages FROM pg_inherits i \
             JOIN pg_class c ON c.oid = i.inhrelid \
             WHERE i.inhparent = 'executions'::regclass ORDER BY 1",
        )
        .fetch_all(conn)
        .await
        .unwrap()
    }

    /// A table analyzed while it held a few hundred small rows, then filled:
    /// the task analyzes every child that outgrew its small statistics.
    #[tokio::test]
    async fn children_analyzed_small_are_analyzed_again_once_they_grew() {
        let Some(server) = baton_testkit::servers::postgres().await else {
            return;
        };
        let (schema, mut conn) = crate::testing::migrated_schema(server).await;
        let insert = crate::testing::finished_rows;
        // Autovacuum left out, so that only the task can analyze them.
        sqlx::raw_sql(
            "DO $$ DECLARE c regclass; BEGIN
                 FOR c IN SELECT inhrelid::regclass FROM pg_inherits
                          WHERE inhparent = 'executions'::regclass LOOP
                     EXECUTE format('ALTER TABLE %s SET (autovacuum_enabled = false)', c);
                 END LOOP;
             END $$",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        sqlx::raw_sql(&format!(
            "{}; ANALYZE executions",
            insert(1, 600, "'\\x00'")
        ))
        .execute(&mut conn)
        .await
        .unwrap();
        let small = recorded(&mut conn).await;
        assert_eq!(small.len(), 8, "{small:?}");
        assert!(
            small.iter().all(|(_, pages)| i64::from(*pages) < MIN_PAGES),
            "{small:?}"
        );
        // About 100 pages of 1 KiB rows per child.
        sqlx::raw_sql(&insert(601, 6_600, "decode(repeat('ab', 1024), 'hex')"))
            .execute(&mut conn)
            .await
            .unwrap();

        let options = PgConnectOptions::from_str(server.url())
            .unwrap()
            .options([("search_path", schema.as_str())]);
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await
            .unwrap();
        let task = start(pool.clone(), &schema);
        let began = Instant::now();
        let grown = loop {
            let now = recorded(&mut conn).await;
            if now.iter().all(|(_, pages)| i64::from(*pages) >= MIN_PAGES)
                || began.elapsed() > Duration::from_secs(10)
            {
                break now;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        task.abort();
        pool.close().await;
        assert!(
            grown
                .iter()
                .all(|(_, pages)| i64::from(*pages) >= MIN_PAGES),
            "every child's statistics describe it as it is now: {grown:?}"
        );
        crate::testing::drop_schema(&mut conn, &schema).await;
    }
}
