//! # baton-sqlite
//!
//! Baton's embedded backend: the whole [`EngineBackend`] contract over one
//! SQLite file in WAL mode. It is the zero-setup default (`baton serve` with no
//! flags), the backend of the test suite, and fine for single-node use.
//!
//! ```no_run
//! # async fn demo() -> baton_core::Result<()> {
//! use baton_core::{EngineBackend, EngineBackendExt, Kind, Lane, Namespace, NewExecution};
//! let backend = baton_sqlite::SqliteBackend::connect("sqlite://baton.db").await?;
//! let ns = Namespace::new("default")?;
//! let created = backend
//!     .create_one(NewExecution::new(ns, Lane::new("default")?, Kind::new("hello")?, b"{}".to_vec()))
//!     .await?;
//! println!("{} is {}", created.id, created.state);
//! # Ok(()) }
//! ```
//!
//! ## How it stays correct under concurrency
//! - All writes go through **one writer connection** and run as
//!   `BEGIN IMMEDIATE` transactions: tasks of this process queue for it instead
//!   of racing for SQLite's lock, so "database is locked" never reaches a
//!   caller; other processes (a CLI next to `baton serve`) wait on the
//!   busy timeout, and a lock held past it surfaces as retryable
//!   [`Contention`](EngineError::Contention).
//! - Reads use a separate pool and see the last committed state (WAL).
//! - One operation is one transaction; claims and creates are batched into
//!   a few multi-row statements. Concurrent claims, completes and creates
//!   of one instance go to one writer task, which runs whatever has queued
//!   in one transaction (each call judged as it would be alone).
//!
//! ## Durability
//! `synchronous=FULL` by default: an acknowledged call survives a crash of
//! the process and of the machine. `?synchronous=normal` trades the last
//! transactions before a power loss for throughput (still safe against a
//! process crash).

#[macro_use]
mod read;
mod admin;
mod backend;
mod claim;
mod combine;
mod config;
mod create;
mod errors;
mod flow;
mod lease;
mod limits;
mod manage;
mod memory;
mod migrate;
mod ops;
mod ownership;
mod scan;
mod wait;

pub use config::{Location, SqliteConfig};

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use baton_core::raw::rules;
use baton_core::{
    EngineError, ExecutionId, ExecutionSnapshot, Limits, PartitionCount, PartitionId, Result,
    SharedClock, Timestamp,
};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, SqliteConnection};

use errors::map;
pub use migrate::latest_version as latest_schema_version;

/// The SQLite backend. Cheap to clone; clones share connections.
#[derive(Clone)]
pub struct SqliteBackend {
    inner: Arc<Inner>,
}

struct Inner {
    /// The writer task's queue (`combine`): claims, completes and creates.
    writes: tokio::sync::mpsc::UnboundedSender<combine::Job>,
    writer: SqlitePool,
    reader: SqlitePool,
    partitions: PartitionCount,
    limits: Limits,
    clock: SharedClock,
    wake: baton_core::raw::Wakeups,
    watchers: baton_core::raw::Watchers,
    sightings: baton_core::raw::Sightings,
    location: Location,
    synchronous_full: bool,
}

impl std::fmt::Debug for SqliteBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteBackend")
            .field("location", &self.inner.location)
            .field("partitions", &self.inner.partitions.get())
            .finish()
    }
}

type Tx = sqlx::Transaction<'static, Sqlite>;

fn blob(id: &ExecutionId) -> Vec<u8> {
    id.uuid().as_bytes().to_vec()
}

impl SqliteBackend {
    /// Opens the database named by `url` (see [`SqliteConfig::from_url`]),
    /// creating and migrating it when needed.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::open(SqliteConfig::from_url(url)?).await
    }

    /// Opens a database with explicit settings, creating and migrating it
    /// when needed, and checks the partition count against the recorded one.
    ///
    /// # Errors
    /// `Unavailable` when the file cannot be opened, `Configuration` when the
    /// schema is newer than this build or the partition count differs.
    pub async fn open(config: SqliteConfig) -> Result<Self> {
        let base = match &config.location {
            Location::File(path) => SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(true),
            Location::Memory => SqliteConnectOptions::from_str("sqlite::memory:").map_err(map)?,
        };
        let base = base
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(if config.synchronous_full {
                SqliteSynchronous::Full
            } else {
                SqliteSynchronous::Normal
            })
            .busy_timeout(config.busy_timeout)
            .foreign_keys(true);
        let describe_location = match &config.location {
            Location::File(p) => p.display().to_string(),
            Location::Memory => ":memory:".into(),
        };
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(60))
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(
                base.clone()
                    // A multi-row statement inside the writer's batch
                    // transaction keeps a statement journal of the pages it
                    // changes (so it can be undone alone); past 64 KiB SQLite
                    // spills that journal to a temporary file, which was a
                    // tenth of the writer's time in steady. In memory it
                    // stays a copy.
                    .pragma("temp_store", "memory"),
            )
            .await
            .map_err(|e| {
                EngineError::unavailable(format!(
                    "cannot open SQLite database {describe_location}: {e}; check the path exists and is writable"
                ))
            })?;
        migrate::migrator()
            .await
            .map_err(errors::map_migrate)?
            .run(&writer)
            .await
            .map_err(errors::map_migrate)?;
        let reader = match config.location {
            // A second connection to ":memory:" would open a different database.
            Location::Memory => writer.clone(),
            Location::File(_) => SqlitePoolOptions::new()
                .max_connections(4)
                .acquire_timeout(Duration::from_secs(60))
                .connect_with(base)
                .await
                .map_err(map)?,
        };
        let partitions = record_partitions(&writer, config.partitions).await?;
        let (writes, queue) = tokio::sync::mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            writes,
            writer,
            reader,
            partitions,
            limits: config.limits,
            clock: config.clock,
            wake: baton_core::raw::Wakeups::default(),
            watchers: baton_core::raw::Watchers::default(),
            sightings: baton_core::raw::Sightings::default(),
            location: config.location,
            synchronous_full: config.synchronous_full,
        });
        combine::start(queue, Arc::downgrade(&inner));
        Ok(SqliteBackend { inner })
    }

    /// Where this backend's database lives.
    pub fn location(&self) -> &Location {
        &self.inner.location
    }

    /// The schema versions applied to this database, oldest first.
    pub async fn applied_migrations(&self) -> Result<Vec<i64>> {
        let rows: Vec<i64> = sqlx::query_scalar(
            "SELECT version FROM _sqlx_migrations WHERE success = 1 ORDER BY version",
        )
        .fetch_all(&self.inner.reader)
        .await
        .map_err(map)?;
        Ok(rows)
    }

    /// Closes the connections, waiting for in-flight calls to finish.
    pub async fn close(&self) {
        self.inner.reader.close().await;
        self.inner.writer.close().await;
    }

    fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    async fn begin(&self) -> Result<Tx> {
        begin_immediate(&self.inner.writer).await
    }

    /// Validates a scheduler pass's partition and limit; answers the limit as
    /// SQLite binds it.
    fn scan_limit(&self, partition: PartitionId, limit: usize) -> Result<i64> {
        self.inner.partitions.check_scan(partition, limit)?;
        Ok(i64::try_from(limit).unwrap_or(i64::MAX))
    }

    /// Wakes the claimers of each `(namespace, lane)`: after a commit that
    /// made work `waiting` there.
    fn wake_all(&self, lanes: Vec<(String, String)>) {
        for (namespace, lane) in lanes {
            self.inner.wake.notify(&namespace, &lane);
        }
    }

    /// Wakes every reader waiting for an execution to change: after a
    /// commit that may have finished executions.
    fn finished_some(&self) {
        if self.inner.watchers.any() {
            self.inner.watchers.notify_all();
        }
    }

    fn check_id(&self, id: &ExecutionId) -> Result<()> {
        id.check_partition(self.inner.partitions)
    }

    /// A reader connection, once `id` is known to exist: the start of every
    /// read of an execution's records (attempts, signals, steps), which
    /// answer `NotFound` for an unknown execution rather than an empty list.
    async fn read_existing(&self, id: &ExecutionId) -> Result<sqlx::pool::PoolConnection<Sqlite>> {
        self.check_id(id)?;
        let mut conn = self.inner.reader.acquire().await.map_err(map)?;
        let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM executions WHERE uuid = ?")
            .bind(blob(id))
            .fetch_optional(&mut *conn)
            .await
            .map_err(map)?;
        if exists.is_none() {
            return Err(EngineError::NotFound { id: id.clone() });
        }
        Ok(conn)
    }

    async fn snapshot_in(
        &self,
        conn: &mut SqliteConnection,
        id: &ExecutionId,
    ) -> Result<ExecutionSnapshot> {
        let row = sqlx::query(concat!(
            "SELECT ",
            execution_columns!(),
            " FROM executions WHERE uuid = ?"
        ))
        .bind(blob(id))
        .fetch_optional(&mut *conn)
        .await
        .map_err(map)?
        .ok_or_else(|| EngineError::NotFound { id: id.clone() })?;
        read::snapshot(&row, self.inner.partitions)
    }
}

/// Starts a `BEGIN IMMEDIATE` transaction on the writer, in a task of its
/// own: a caller that gives up (a client hanging up, a timeout) drops only
/// its wait for the answer, never the begin itself, so the connection
/// cannot be left inside a transaction nobody owns (the driver acknowledges
/// a custom `BEGIN` before it checks its effect, and a caller dropped
/// between the two would strand it). A connection found inside such a
/// transaction anyway is rolled back and used again.
async fn begin_immediate(pool: &SqlitePool) -> Result<Tx> {
    let pool = pool.clone();
    let task = tokio::spawn(async move {
        match pool.begin_with("BEGIN IMMEDIATE").await {
            Err(sqlx::Error::InvalidSavePointStatement) => {
                heal_writer(&pool).await?;
                pool.begin_with("BEGIN IMMEDIATE").await.map_err(map)
            }
            other => other.map_err(map),
        }
    });
    task.await.map_err(|e| {
        EngineError::unavailable(format!(
            "the SQLite writer task stopped before its transaction began ({e}); retry"
        ))
    })?
}

/// Rolls back a transaction the writer connection was left in; if that
/// fails, closes the connection so that the pool opens a fresh one.
async fn heal_writer(pool: &SqlitePool) -> Result<()> {
    use sqlx::{Connection, TransactionManager};
    let mut conn = pool.acquire().await.map_err(map)?;
    if !conn.is_in_transaction() {
        return Ok(());
    }
    tracing::warn!("the SQLite writer was inside a transaction nobody owned; rolling it back");
    while conn.is_in_transaction() {
        if let Err(e) = sqlx::sqlite::SqliteTransactionManager::rollback(&mut conn).await {
            tracing::warn!(error = %e, "rolling back the stranded transaction failed; reopening the writer connection");
            conn.close_on_drop();
            break;
        }
    }
    Ok(())
}

async fn record_partitions(
    pool: &SqlitePool,
    wanted: Option<PartitionCount>,
) -> Result<PartitionCount> {
    let mut tx = begin_immediate(pool).await?;
    let recorded: Option<String> =
        sqlx::query_scalar("SELECT value FROM baton_meta WHERE key = 'partitions'")
            .fetch_optional(&mut *tx)
            .await
            .map_err(map)?;
    let at_open = rules::reconcile_partitions(recorded.as_deref(), wanted, "database")?;
    if at_open.record {
        sqlx::query("INSERT INTO baton_meta (key, value) VALUES ('partitions', ?)")
            .bind(at_open.count.get().to_string())
            .execute(&mut *tx)
            .await
            .map_err(map)?;
    }
    tx.commit().await.map_err(map)?;
    Ok(at_open.count)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// The writer keeps statement journals and other temporary data in
    /// memory; the readers keep SQLite's default (files), so a large sort
    /// of an admin read does not grow the process.
    #[tokio::test]
    async fn the_writer_keeps_temporary_data_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let backend = SqliteBackend::open(SqliteConfig::new(Location::File(
            dir.path().join("temp.db"),
        )))
        .await
        .unwrap();
        let writer: i64 = sqlx::query_scalar("PRAGMA temp_store")
            .fetch_one(&backend.inner.writer)
            .await
            .unwrap();
        let reader: i64 = sqlx::query_scalar("PRAGMA temp_store")
            .fetch_one(&backend.inner.reader)
            .await
            .unwrap();
        assert_eq!((writer, reader), (2, 0), "2 is MEMORY, 0 the default");
    }
}
