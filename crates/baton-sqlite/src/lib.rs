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
//!   a few multi-row statements.
//!
//! ## Durability
//! `synchronous=FULL` by default: an acknowledged call survives a crash of
//! the process and of the machine. `?synchronous=normal` trades the last
//! transactions before a power loss for throughput (still safe against a
//! process crash).

#[macro_use]
mod read;
mod combine;
mod errors;
mod migrate;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use baton_core::{
    AdminBackend, AttemptOutcome, AttemptRecord, Capabilities, Claim, ClaimRequest, CreateOutcome,
    EngineError, ExecutionId, ExecutionSnapshot, Failure, LeaseToken, Limits, ListCursor,
    ListFilter, ListPage, Namespace, NewExecution, NodeId, Ownership, Page, PartitionCount,
    PartitionId, PartitionOwner, RenewOutcome, RenewRequest, RenewStatus, Result, RetryDecision,
    ScanReport, SharedClock, State, StateCounts, SystemClock, Timestamp,
};
use baton_core::{EngineBackend, Lane, PreparedExecution};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use errors::map;
pub use migrate::latest_version as latest_schema_version;
use read::col;

/// Where the database lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A file, created if missing.
    File(PathBuf),
    /// A private in-memory database, gone when the backend is dropped.
    Memory,
}

/// Settings of a [`SqliteBackend`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SqliteConfig {
    /// The database.
    pub location: Location,
    /// Partition count; `None` uses the recorded one (or the default for a
    /// new database). A value differing from the recorded one is a
    /// configuration error.
    pub partitions: Option<PartitionCount>,
    /// Request limits.
    pub limits: Limits,
    /// The clock every time decision reads.
    pub clock: SharedClock,
    /// `FULL` (default) fsyncs every commit; `NORMAL` only at checkpoints.
    pub synchronous_full: bool,
    /// How long a writer waits for another process's lock before answering
    /// [`Contention`](EngineError::Contention). Default 10 s.
    pub busy_timeout: Duration,
}

impl SqliteConfig {
    /// Defaults for a database at `location`.
    pub fn new(location: Location) -> Self {
        SqliteConfig {
            location,
            partitions: None,
            limits: Limits::default(),
            clock: SystemClock::shared(),
            synchronous_full: true,
            busy_timeout: Duration::from_secs(10),
        }
    }

    /// Parses a backend URL: `sqlite://PATH` (relative), `sqlite:///ABS/PATH`,
    /// `sqlite::memory:`, with optional `?partitions=N&synchronous=full|normal`.
    ///
    /// ```
    /// use baton_sqlite::{Location, SqliteConfig};
    /// let c = SqliteConfig::from_url("sqlite://data/baton.db?partitions=32").unwrap();
    /// assert_eq!(c.location, Location::File("data/baton.db".into()));
    /// assert_eq!(c.partitions.unwrap().get(), 32);
    /// assert!(SqliteConfig::from_url("postgres://x").is_err());
    /// ```
    pub fn from_url(url: &str) -> Result<Self> {
        let rest = url.strip_prefix("sqlite:").ok_or_else(|| {
            EngineError::invalid(
                "backend",
                url,
                "a SQLite URL starts with sqlite:// (for example sqlite://baton.db or sqlite::memory:)",
            )
        })?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let location = match path {
            ":memory:" | "//:memory:" => Location::Memory,
            _ => {
                let p = path.strip_prefix("//").unwrap_or(path);
                if p.is_empty() {
                    return Err(EngineError::invalid(
                        "backend",
                        url,
                        "the SQLite URL names no file; use sqlite://baton.db",
                    ));
                }
                Location::File(PathBuf::from(p))
            }
        };
        let mut config = SqliteConfig::new(location);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "partitions" => {
                    let n: u16 = v.parse().map_err(|_| {
                        EngineError::invalid("partitions", v, "must be a number between 1 and 1024")
                    })?;
                    config.partitions = Some(PartitionCount::new(n)?);
                }
                "synchronous" => {
                    config.synchronous_full = match v.to_ascii_lowercase().as_str() {
                        "full" => true,
                        "normal" => false,
                        _ => {
                            return Err(EngineError::invalid(
                                "synchronous",
                                v,
                                "must be full or normal",
                            ));
                        }
                    }
                }
                _ => {
                    return Err(EngineError::invalid(
                        "backend",
                        url,
                        format!("unknown SQLite URL option {k:?}; known: partitions, synchronous"),
                    ));
                }
            }
        }
        Ok(config)
    }

    /// Sets the clock.
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Sets the limits.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets the partition count.
    pub fn with_partitions(mut self, partitions: PartitionCount) -> Self {
        self.partitions = Some(partitions);
        self
    }
}

/// The SQLite backend. Cheap to clone; clones share connections.
#[derive(Clone)]
pub struct SqliteBackend {
    inner: Arc<Inner>,
}

struct Inner {
    completer: tokio::sync::mpsc::UnboundedSender<combine::Pending>,
    writer: SqlitePool,
    reader: SqlitePool,
    partitions: PartitionCount,
    limits: Limits,
    clock: SharedClock,
    wake: baton_core::Wakeups,
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
            .connect_with(base.clone())
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
        let (completer, queue) = tokio::sync::mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            completer,
            writer,
            reader,
            partitions,
            limits: config.limits,
            clock: config.clock,
            wake: baton_core::Wakeups::default(),
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

    fn check_id(&self, id: &ExecutionId) -> Result<()> {
        id.check_partition(self.inner.partitions)
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

    /// Closes the open attempt `number` of `id` with `outcome`.
    async fn close_attempt(
        conn: &mut SqliteConnection,
        id: &ExecutionId,
        number: u32,
        outcome: AttemptOutcome,
        error: Option<&str>,
        now: Timestamp,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE attempts SET ended_at = ?, outcome = ?, error = ? \
             WHERE execution_uuid = ? AND number = ? AND outcome IS NULL",
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

    /// Ends the running attempt of `snap` as a failure and applies the retry
    /// policy: the one code path shared by `fail` and lease reclaim.
    async fn apply_failure(
        &self,
        conn: &mut SqliteConnection,
        snap: &ExecutionSnapshot,
        outcome: AttemptOutcome,
        failure: Failure,
        now: Timestamp,
    ) -> Result<()> {
        let Failure {
            error,
            retryable,
            retry_after,
        } = failure;
        let error = self.inner.limits.clip_text(error);
        Self::close_attempt(conn, &snap.id, snap.attempts, outcome, Some(&error), now).await?;
        let decision = snap
            .retry
            .decide(&snap.id, snap.attempts, retryable, retry_after);
        let (state, run_at, ready_at, finished_at) = match decision {
            RetryDecision::RetryAfter(d) if d.is_zero() => {
                (State::Waiting, snap.run_at, Some(now), None)
            }
            RetryDecision::RetryAfter(d) => {
                let at = now.saturating_add(d);
                (State::Delayed, Some(at), Some(at), None)
            }
            RetryDecision::GiveUp => (State::Failed, snap.run_at, None, Some(now)),
        };
        sqlx::query(
            "UPDATE executions SET state = ?, run_at = ?, ready_at = COALESCE(?, ready_at), \
             finished_at = ?, last_error = ?, updated_at = ?, \
             worker_id = NULL, lease_nonce = NULL, lease_expires_at = NULL WHERE uuid = ?",
        )
        .bind(state.as_str())
        .bind(run_at.map(Timestamp::as_millis))
        .bind(ready_at.map(Timestamp::as_millis))
        .bind(finished_at.map(Timestamp::as_millis))
        .bind(&error)
        .bind(now.as_millis())
        .bind(blob(&snap.id))
        .execute(&mut *conn)
        .await
        .map_err(map)?;
        Ok(())
    }

    /// Classifies `lease` against the stored state.
    async fn check_lease(
        &self,
        conn: &mut SqliteConnection,
        lease: &LeaseToken,
        now: Timestamp,
    ) -> Result<LeaseCheck> {
        let id = lease.execution_id();
        self.check_id(id)?;
        let snap = self.snapshot_in(conn, id).await?;
        let row = sqlx::query(
            "SELECT nonce, outcome FROM attempts WHERE execution_uuid = ? AND number = ?",
        )
        .bind(blob(id))
        .bind(i64::from(lease.attempt()))
        .fetch_optional(&mut *conn)
        .await
        .map_err(map)?;
        let Some(row) = row else {
            return Err(EngineError::lease_lost(
                id,
                format!("attempt {} was never granted", lease.attempt()),
            ));
        };
        let nonce: i64 = col(&row, "nonce")?;
        if nonce as u64 != lease.nonce() {
            return Err(EngineError::lease_lost(
                id,
                "the lease token does not match the one granted for this attempt",
            ));
        }
        let outcome: Option<String> = col(&row, "outcome")?;
        if let Some(o) = outcome {
            let o = read::outcome(&format!("execution {id}"), &o)?;
            return Ok(LeaseCheck::Ended(o, snap));
        }
        if snap.state != State::Running || snap.attempts != lease.attempt() {
            return Err(EngineError::corruption(format!(
                "execution {id}: attempt {} is open but the execution is {} at attempt {}",
                lease.attempt(),
                snap.state,
                snap.attempts
            )));
        }
        if let Some(deadline) = snap.deadline
            && deadline <= now
        {
            return Err(EngineError::lease_lost(
                id,
                format!("the execution's deadline {deadline} has passed"),
            ));
        }
        match snap.lease_expires_at {
            Some(exp) if now < exp => Ok(LeaseCheck::Live(snap)),
            exp => Err(EngineError::lease_lost(
                id,
                format!(
                    "the lease expired at {}; the engine will reclaim and retry the execution",
                    exp.map(|t| t.to_string()).unwrap_or_default()
                ),
            )),
        }
    }
}

impl SqliteBackend {
    /// Completes, inside the caller's transaction, every queued complete
    /// whose lease is live (the conditions `check_lease` calls live), in
    /// two statements per chunk; answers their snapshots by position in
    /// `batch`. Only the first complete of each execution takes part.
    async fn complete_live(
        &self,
        tx: &mut SqliteConnection,
        batch: &[combine::Pending],
    ) -> Result<HashMap<usize, ExecutionSnapshot>> {
        let mut seen = std::collections::HashSet::new();
        let firsts: Vec<(usize, &combine::Pending)> = batch
            .iter()
            .enumerate()
            .filter(|(_, p)| seen.insert(p.lease.execution_id().uuid()))
            .collect();
        let mut done = HashMap::new();
        // 5 bound values per row stay far below SQLite's variable limit.
        for chunk in firsts.chunks(200) {
            let mut qb: QueryBuilder<'_, Sqlite> = QueryBuilder::new(
                "UPDATE executions SET state = 'completed', result = v.column4, \
                 finished_at = v.column5, updated_at = v.column5, worker_id = NULL, \
                 lease_nonce = NULL, lease_expires_at = NULL FROM (",
            );
            qb.push_values(chunk, |mut b, (_, p)| {
                b.push_bind(blob(p.lease.execution_id()))
                    .push_bind(i64::from(p.lease.attempt()))
                    .push_bind(p.lease.nonce() as i64)
                    .push_bind(p.result.as_slice())
                    .push_bind(p.now.as_millis());
            });
            qb.push(concat!(
                ") AS v WHERE executions.uuid = v.column1 AND executions.state = 'running' \
                 AND executions.attempts = v.column2 AND executions.lease_nonce = v.column3 \
                 AND executions.lease_expires_at > v.column5 \
                 AND (executions.deadline IS NULL OR executions.deadline > v.column5) RETURNING ",
                execution_columns!()
            ));
            let rows = qb.build().fetch_all(&mut *tx).await.map_err(map)?;
            let mut completed: Vec<(usize, &combine::Pending)> = Vec::with_capacity(rows.len());
            for row in &rows {
                let snap = read::snapshot(row, self.inner.partitions)?;
                let Some(&(i, p)) = chunk
                    .iter()
                    .find(|(_, p)| p.lease.execution_id() == &snap.id)
                else {
                    return Err(EngineError::corruption(format!(
                        "completing a batch returned execution {}, which was not in it",
                        snap.id
                    )));
                };
                completed.push((i, p));
                done.insert(i, snap);
            }
            if completed.is_empty() {
                continue;
            }
            let mut qb: QueryBuilder<'_, Sqlite> = QueryBuilder::new(
                "UPDATE attempts SET ended_at = v.column3, outcome = 'completed' FROM (",
            );
            qb.push_values(&completed, |mut b, (_, p)| {
                b.push_bind(blob(p.lease.execution_id()))
                    .push_bind(i64::from(p.lease.attempt()))
                    .push_bind(p.now.as_millis());
            });
            qb.push(
                ") AS v WHERE attempts.execution_uuid = v.column1 AND attempts.number = v.column2 \
                 AND attempts.outcome IS NULL",
            );
            qb.build().execute(&mut *tx).await.map_err(map)?;
        }
        Ok(done)
    }

    /// Completes one lease inside the caller's transaction (not committed
    /// here): the body of `complete`, run by the combining task.
    async fn complete_in(
        &self,
        tx: &mut SqliteConnection,
        lease: &LeaseToken,
        result: &[u8],
        now: Timestamp,
    ) -> Result<ExecutionSnapshot> {
        let id = lease.execution_id();
        // Fast path, one statement: the lease is the current, unexpired one
        // (the same conditions `check_lease` calls live), so the execution
        // completes and the new row comes back. Anything else matches no row
        // and is classified below, in the same transaction.
        let done = sqlx::query(concat!(
            "UPDATE executions SET state = 'completed', result = ?1, finished_at = ?2, updated_at = ?2, \
             worker_id = NULL, lease_nonce = NULL, lease_expires_at = NULL \
             WHERE uuid = ?3 AND state = 'running' AND attempts = ?4 AND lease_nonce = ?5 \
             AND lease_expires_at > ?2 AND (deadline IS NULL OR deadline > ?2) RETURNING ",
            execution_columns!()
        ))
        .bind(result)
        .bind(now.as_millis())
        .bind(blob(id))
        .bind(i64::from(lease.attempt()))
        .bind(lease.nonce() as i64)
        .fetch_optional(&mut *tx)
        .await
        .map_err(map)?;
        if let Some(row) = done {
            let snap = read::snapshot(&row, self.inner.partitions)?;
            Self::close_attempt(
                tx,
                id,
                lease.attempt(),
                AttemptOutcome::Completed,
                None,
                now,
            )
            .await?;
            return Ok(snap);
        }
        match self.check_lease(tx, lease, now).await? {
            LeaseCheck::Live(snap) => {
                Self::close_attempt(tx, id, snap.attempts, AttemptOutcome::Completed, None, now)
                    .await?;
                sqlx::query(
                    "UPDATE executions SET state = 'completed', result = ?, finished_at = ?, updated_at = ?, \
                     worker_id = NULL, lease_nonce = NULL, lease_expires_at = NULL WHERE uuid = ?",
                )
                .bind(result)
                .bind(now.as_millis())
                .bind(now.as_millis())
                .bind(blob(id))
                .execute(&mut *tx)
                .await
                .map_err(map)?;
                let snap = self.snapshot_in(tx, id).await?;
                Ok(snap)
            }
            LeaseCheck::Ended(AttemptOutcome::Completed, snap) => {
                if snap.result.as_deref() == Some(result) {
                    Ok(snap)
                } else {
                    Err(EngineError::Conflict {
                        id: id.clone(),
                        operation: "complete",
                        state: snap.state,
                        reason: "this lease already completed it with a different result".into(),
                    })
                }
            }
            LeaseCheck::Ended(AttemptOutcome::Failed, snap) => Err(EngineError::Conflict {
                id: id.clone(),
                operation: "complete",
                state: snap.state,
                reason: format!("attempt {} already failed", lease.attempt()),
            }),
            LeaseCheck::Ended(o, _) => Err(ended_lease_lost(id, o)),
        }
    }
}

enum LeaseCheck {
    /// The lease is current; the snapshot is the running execution.
    Live(ExecutionSnapshot),
    /// The lease's attempt already ended this way.
    Ended(AttemptOutcome, ExecutionSnapshot),
}

fn ended_lease_lost(id: &ExecutionId, outcome: AttemptOutcome) -> EngineError {
    let why = match outcome {
        AttemptOutcome::LeaseExpired => "the lease expired and the execution was reclaimed",
        AttemptOutcome::Cancelled => "the execution was cancelled",
        AttemptOutcome::Expired => "the execution's deadline passed",
        AttemptOutcome::Completed | AttemptOutcome::Failed => "the attempt already ended",
    };
    EngineError::lease_lost(id, why)
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
    let count = match recorded {
        Some(text) => {
            let recorded = text
                .parse::<u16>()
                .ok()
                .and_then(|n| PartitionCount::new(n).ok())
                .ok_or_else(|| {
                    EngineError::corruption(format!("recorded partition count {text:?}"))
                })?;
            if let Some(w) = wanted
                && w != recorded
            {
                return Err(EngineError::Configuration {
                    message: format!(
                        "this database was created with {} partitions but {} were requested; \
                         start with partitions={} (or leave it unset)",
                        recorded.get(),
                        w.get(),
                        recorded.get()
                    ),
                });
            }
            recorded
        }
        None => {
            let count = wanted.unwrap_or_default();
            sqlx::query("INSERT INTO baton_meta (key, value) VALUES ('partitions', ?)")
                .bind(count.get().to_string())
                .execute(&mut *tx)
                .await
                .map_err(map)?;
            count
        }
    };
    tx.commit().await.map_err(map)?;
    Ok(count)
}

#[async_trait]
impl EngineBackend for SqliteBackend {
    fn capabilities(&self) -> Capabilities {
        let mut c = Capabilities::new("sqlite", self.inner.limits);
        let on_disk = matches!(self.inner.location, Location::File(_));
        c.durable = on_disk && self.inner.synchronous_full;
        c.multi_process = on_disk;
        c
    }

    fn partitions(&self) -> PartitionCount {
        self.inner.partitions
    }

    async fn create(&self, executions: Vec<NewExecution>) -> Result<Vec<CreateOutcome>> {
        let limits = &self.inner.limits;
        let now = self.now();
        let rows =
            PreparedExecution::prepare_batch(executions, limits, now, self.inner.partitions)?;

        let mut tx = self.begin().await?;
        let mut outcomes = Vec::with_capacity(rows.len());
        let mut fresh: Vec<&PreparedExecution> = Vec::with_capacity(rows.len());
        let mut seen: HashMap<(&str, &str, &str), usize> = HashMap::new();
        for row in &rows {
            if let Some(key) = &row.new.idempotency_key {
                let k = (
                    row.new.namespace.as_str(),
                    row.new.lane.as_str(),
                    key.as_str(),
                );
                if let Some(&first) = seen.get(&k) {
                    let first: &CreateOutcome = &outcomes[first];
                    outcomes.push(CreateOutcome {
                        created: false,
                        ..first.clone()
                    });
                    continue;
                }
                let existing = sqlx::query(
                    "SELECT uuid, partition, state FROM executions \
                     WHERE namespace = ? AND lane = ? AND idempotency_key = ?",
                )
                .bind(k.0)
                .bind(k.1)
                .bind(k.2)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map)?;
                seen.insert(k, outcomes.len());
                if let Some(existing) = existing {
                    let id = read::execution_id(&existing, self.inner.partitions)?;
                    let state = read::state(
                        &format!("execution {id}"),
                        &col::<String>(&existing, "state")?,
                    )?;
                    outcomes.push(CreateOutcome {
                        id,
                        state,
                        created: false,
                    });
                    continue;
                }
            }
            outcomes.push(CreateOutcome {
                id: row.id.clone(),
                state: row.state,
                created: true,
            });
            fresh.push(row);
        }

        // 24 bound columns per row; 400 rows stay under SQLite's 32766
        // variable limit with room to spare.
        for chunk in fresh.chunks(400) {
            let mut qb: QueryBuilder<'_, Sqlite> = QueryBuilder::new(
                "INSERT INTO executions (uuid, partition, namespace, lane, kind, state, priority, payload, \
                 tags, required_caps, attempts, max_attempts, backoff_initial_ms, backoff_max_ms, \
                 backoff_multiplier, backoff_jitter, idempotency_key, parent, created_at, updated_at, \
                 run_at, ready_at, deadline) ",
            );
            qb.push_values(chunk, |mut b, r| {
                let n = &r.new;
                b.push_bind(blob(&r.id))
                    .push_bind(i64::from(r.id.partition().get()))
                    .push_bind(n.namespace.as_str())
                    .push_bind(n.lane.as_str())
                    .push_bind(n.kind.as_str())
                    .push_bind(r.state.as_str())
                    .push_bind(i64::from(n.priority))
                    .push_bind(n.payload.as_slice())
                    .push_bind(r.tags_json.as_str())
                    .push_bind(r.caps_json.as_str())
                    .push_bind(0i64)
                    .push_bind(i64::from(n.retry.max_attempts))
                    .push_bind(n.retry.backoff.initial_ms as i64)
                    .push_bind(n.retry.backoff.max_ms as i64)
                    .push_bind(n.retry.backoff.multiplier)
                    .push_bind(i64::from(n.retry.backoff.jitter))
                    .push_bind(n.idempotency_key.as_ref().map(|k| k.as_str()))
                    .push_bind(n.parent.as_ref().map(|p| p.to_string()))
                    .push_bind(now.as_millis())
                    .push_bind(now.as_millis())
                    .push_bind(r.run_at.map(Timestamp::as_millis))
                    .push_bind(r.run_at.unwrap_or(now).as_millis())
                    .push_bind(n.deadline.map(Timestamp::as_millis));
            });
            qb.build().execute(&mut *tx).await.map_err(map)?;
        }
        let tagged: Vec<(&PreparedExecution, &str, &str)> = fresh
            .iter()
            .flat_map(|r| {
                r.new
                    .tags
                    .iter()
                    .map(move |(k, v)| (*r, k.as_str(), v.as_str()))
            })
            .collect();
        for chunk in tagged.chunks(2000) {
            let mut qb: QueryBuilder<'_, Sqlite> = QueryBuilder::new(
                "INSERT INTO execution_tags (execution_uuid, namespace, key, value) ",
            );
            qb.push_values(chunk, |mut b, (r, k, v)| {
                b.push_bind(blob(&r.id))
                    .push_bind(r.new.namespace.as_str())
                    .push_bind(*k)
                    .push_bind(*v);
            });
            qb.build().execute(&mut *tx).await.map_err(map)?;
        }
        tx.commit().await.map_err(map)?;
        for r in &fresh {
            if r.state == State::Waiting {
                self.inner
                    .wake
                    .notify(r.new.namespace.as_str(), r.new.lane.as_str());
            }
        }
        Ok(outcomes)
    }

    async fn claim(&self, request: ClaimRequest) -> Result<Vec<Claim>> {
        request.validate(&self.inner.limits)?;
        let now = self.now();
        let expires = now.saturating_add(request.lease_ttl);
        let caps: Vec<&str> = request.capabilities.iter().map(|c| c.as_str()).collect();
        let caps_json =
            serde_json::to_string(&caps).map_err(|e| EngineError::corruption(e.to_string()))?;

        let mut qb: QueryBuilder<'_, Sqlite> = QueryBuilder::new(
            "UPDATE executions SET state = 'running', attempts = attempts + 1, lease_nonce = random(), worker_id = ",
        );
        qb.push_bind(request.worker_id.as_str())
            .push(", lease_expires_at = ")
            .push_bind(expires.as_millis())
            .push(", updated_at = ")
            .push_bind(now.as_millis())
            .push(" WHERE uuid IN (SELECT e.uuid FROM executions e WHERE e.state = 'waiting' AND e.namespace = ")
            .push_bind(request.namespace.as_str())
            .push(" AND e.lane IN (");
        let mut lanes = qb.separated(", ");
        for lane in &request.lanes {
            lanes.push_bind(lane.as_str());
        }
        qb.push(") AND (e.deadline IS NULL OR e.deadline > ")
            .push_bind(now.as_millis())
            .push(
                ") AND (e.required_caps = '[]' OR NOT EXISTS (SELECT 1 FROM json_each(e.required_caps) r \
                 WHERE r.value NOT IN (SELECT value FROM json_each(",
            )
            .push_bind(caps_json.as_str())
            .push(")))) ORDER BY e.priority DESC, e.ready_at, e.uuid LIMIT ")
            .push_bind(request.max as i64)
            .push(
                ") RETURNING uuid, partition, namespace, lane, kind, payload, attempts, lease_nonce, \
                 deadline, tags, priority, ready_at",
            );

        let mut tx = self.begin().await?;
        let rows: Vec<SqliteRow> = qb.build().fetch_all(&mut *tx).await.map_err(map)?;
        if rows.is_empty() {
            tx.commit().await.map_err(map)?;
            return Ok(Vec::new());
        }
        let mut claims = Vec::with_capacity(rows.len());
        for row in &rows {
            let id = read::execution_id(row, self.inner.partitions)?;
            let ctx = format!("execution {id}");
            let attempt: i64 = col(row, "attempts")?;
            let attempt = u32::try_from(attempt)
                .map_err(|_| EngineError::corruption(format!("{ctx}: attempts {attempt}")))?;
            let nonce: i64 = col(row, "lease_nonce")?;
            let priority: i64 = col(row, "priority")?;
            let ready_at: i64 = col(row, "ready_at")?;
            let claim = Claim {
                namespace: request.namespace.clone(),
                lane: col::<String>(row, "lane")?
                    .parse()
                    .map_err(|_| EngineError::corruption(format!("{ctx}: lane")))?,
                kind: col::<String>(row, "kind")?
                    .parse()
                    .map_err(|_| EngineError::corruption(format!("{ctx}: kind")))?,
                payload: col(row, "payload")?,
                attempt,
                lease: LeaseToken::new(id.clone(), attempt, nonce as u64),
                lease_expires_at: expires,
                deadline: col::<Option<i64>>(row, "deadline")?.map(Timestamp::from_millis),
                tags: read::tags(&ctx, &col::<String>(row, "tags")?)?,
                id,
            };
            claims.push(((std::cmp::Reverse(priority), ready_at), claim));
        }
        // RETURNING order is unspecified; hand work out in claim order.
        claims.sort_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| a.1.id.uuid().cmp(&b.1.id.uuid()))
        });
        let claims: Vec<Claim> = claims.into_iter().map(|(_, c)| c).collect();

        let mut qb: QueryBuilder<'_, Sqlite> = QueryBuilder::new(
            "INSERT INTO attempts (execution_uuid, number, worker_id, nonce, started_at) ",
        );
        qb.push_values(&claims, |mut b, c| {
            b.push_bind(blob(&c.id))
                .push_bind(i64::from(c.attempt))
                .push_bind(request.worker_id.as_str())
                .push_bind(c.lease.nonce() as i64)
                .push_bind(now.as_millis());
        });
        qb.build().execute(&mut *tx).await.map_err(map)?;
        tx.commit().await.map_err(map)?;
        Ok(claims)
    }

    async fn renew(&self, request: RenewRequest) -> Result<Vec<RenewOutcome>> {
        let limits = &self.inner.limits;
        limits.check_batch("leases", request.leases.len())?;
        limits.check_lease(request.lease_ttl)?;
        let now = self.now();
        let expires = now.saturating_add(request.lease_ttl);
        let mut tx = self.begin().await?;
        let mut out = Vec::with_capacity(request.leases.len());
        for lease in request.leases {
            let id = lease.execution_id();
            if self.check_id(id).is_err() {
                out.push(RenewOutcome {
                    lease,
                    status: RenewStatus::Lost,
                    expires_at: None,
                });
                continue;
            }
            let renewed = sqlx::query(
                "UPDATE executions SET lease_expires_at = ? \
                 WHERE uuid = ? AND state = 'running' AND attempts = ? AND lease_nonce = ? \
                 AND worker_id = ? AND lease_expires_at > ? AND (deadline IS NULL OR deadline > ?)",
            )
            .bind(expires.as_millis())
            .bind(blob(id))
            .bind(i64::from(lease.attempt()))
            .bind(lease.nonce() as i64)
            .bind(request.worker_id.as_str())
            .bind(now.as_millis())
            .bind(now.as_millis())
            .execute(&mut *tx)
            .await
            .map_err(map)?
            .rows_affected()
                == 1;
            let status = if renewed {
                RenewStatus::Renewed
            } else {
                let cancelled: Option<i64> = sqlx::query_scalar(
                    "SELECT 1 FROM attempts WHERE execution_uuid = ? AND number = ? AND nonce = ? \
                     AND outcome = 'cancelled'",
                )
                .bind(blob(id))
                .bind(i64::from(lease.attempt()))
                .bind(lease.nonce() as i64)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map)?;
                if cancelled.is_some() {
                    RenewStatus::Cancelled
                } else {
                    RenewStatus::Lost
                }
            };
            out.push(RenewOutcome {
                lease,
                expires_at: (status == RenewStatus::Renewed).then_some(expires),
                status,
            });
        }
        tx.commit().await.map_err(map)?;
        Ok(out)
    }

    async fn complete(&self, lease: &LeaseToken, result: Vec<u8>) -> Result<ExecutionSnapshot> {
        self.inner.limits.check_payload("result", result.len())?;
        self.check_id(lease.execution_id())?;
        let (reply, answer) = tokio::sync::oneshot::channel();
        let pending = combine::Pending {
            lease: lease.clone(),
            result,
            now: self.now(),
            reply,
        };
        let closed = || EngineError::unavailable("the SQLite backend is closing");
        self.inner.completer.send(pending).map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }

    async fn fail(&self, lease: &LeaseToken, failure: Failure) -> Result<ExecutionSnapshot> {
        let now = self.now();
        let id = lease.execution_id();
        let mut tx = self.begin().await?;
        match self.check_lease(&mut tx, lease, now).await? {
            LeaseCheck::Live(snap) => {
                self.apply_failure(&mut tx, &snap, AttemptOutcome::Failed, failure, now)
                    .await?;
                let snap = self.snapshot_in(&mut tx, id).await?;
                tx.commit().await.map_err(map)?;
                if snap.state == State::Waiting {
                    self.inner
                        .wake
                        .notify(snap.namespace.as_str(), snap.lane.as_str());
                }
                Ok(snap)
            }
            LeaseCheck::Ended(AttemptOutcome::Failed, snap) => Ok(snap),
            LeaseCheck::Ended(AttemptOutcome::Completed, snap) => Err(EngineError::Conflict {
                id: id.clone(),
                operation: "fail",
                state: snap.state,
                reason: format!("attempt {} already completed", lease.attempt()),
            }),
            LeaseCheck::Ended(o, _) => Err(ended_lease_lost(id, o)),
        }
    }

    async fn cancel(&self, id: &ExecutionId, reason: Option<String>) -> Result<ExecutionSnapshot> {
        self.check_id(id)?;
        let reason = reason.map(|r| self.inner.limits.clip_text(r));
        let now = self.now();
        let mut tx = self.begin().await?;
        let snap = self.snapshot_in(&mut tx, id).await?;
        match snap.state {
            State::Cancelled => return Ok(snap),
            s if s.is_terminal() => {
                return Err(EngineError::Conflict {
                    id: id.clone(),
                    operation: "cancel",
                    state: s,
                    reason: "it already finished".into(),
                });
            }
            State::Running => {
                Self::close_attempt(
                    &mut tx,
                    id,
                    snap.attempts,
                    AttemptOutcome::Cancelled,
                    None,
                    now,
                )
                .await?;
            }
            _ => {}
        }
        sqlx::query(
            "UPDATE executions SET state = 'cancelled', cancel_reason = ?, finished_at = ?, updated_at = ?, \
             worker_id = NULL, lease_nonce = NULL, lease_expires_at = NULL WHERE uuid = ?",
        )
        .bind(reason)
        .bind(now.as_millis())
        .bind(now.as_millis())
        .bind(blob(id))
        .execute(&mut *tx)
        .await
        .map_err(map)?;
        let snap = self.snapshot_in(&mut tx, id).await?;
        tx.commit().await.map_err(map)?;
        Ok(snap)
    }

    async fn describe(&self, id: &ExecutionId) -> Result<ExecutionSnapshot> {
        self.check_id(id)?;
        let mut conn = self.inner.reader.acquire().await.map_err(map)?;
        self.snapshot_in(&mut conn, id).await
    }

    async fn wait_for_work(
        &self,
        namespace: &Namespace,
        lanes: &[Lane],
        timeout: Duration,
    ) -> Result<()> {
        let lanes: Vec<&str> = lanes.iter().map(Lane::as_str).collect();
        self.inner
            .wake
            .wait(namespace.as_str(), &lanes, timeout)
            .await;
        Ok(())
    }

    async fn promote_due(&self, partition: PartitionId, limit: usize) -> Result<ScanReport> {
        let limit = self.scan_limit(partition, limit)?;
        let now = self.now();
        let mut tx = self.begin().await?;
        let promoted: Vec<(String, String)> = sqlx::query_as(
            "UPDATE executions SET state = 'waiting', updated_at = ?1 WHERE uuid IN \
             (SELECT uuid FROM executions WHERE partition = ?2 AND state = 'delayed' AND run_at <= ?1 \
              ORDER BY run_at, uuid LIMIT ?3) RETURNING namespace, lane",
        )
        .bind(now.as_millis())
        .bind(i64::from(partition.get()))
        .bind(limit)
        .fetch_all(&mut *tx)
        .await
        .map_err(map)?;
        let next: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(run_at) FROM executions WHERE partition = ? AND state = 'delayed'",
        )
        .bind(i64::from(partition.get()))
        .fetch_one(&mut *tx)
        .await
        .map_err(map)?;
        tx.commit().await.map_err(map)?;
        let mut lanes: Vec<&(String, String)> = promoted.iter().collect();
        lanes.sort();
        lanes.dedup();
        for (ns, lane) in lanes {
            self.inner.wake.notify(ns, lane);
        }
        Ok(ScanReport {
            processed: promoted.len() as u64,
            next_due: next.map(Timestamp::from_millis),
        })
    }

    async fn reclaim_expired_leases(
        &self,
        partition: PartitionId,
        limit: usize,
    ) -> Result<ScanReport> {
        let limit = self.scan_limit(partition, limit)?;
        let now = self.now();
        let mut tx = self.begin().await?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            execution_columns!(),
            " FROM executions WHERE partition = ? AND state = 'running' AND lease_expires_at <= ? \
             ORDER BY lease_expires_at, uuid LIMIT ?"
        ))
        .bind(i64::from(partition.get()))
        .bind(now.as_millis())
        .bind(limit)
        .fetch_all(&mut *tx)
        .await
        .map_err(map)?;
        let mut woken = Vec::new();
        for row in &rows {
            let snap = read::snapshot(row, self.inner.partitions)?;
            let error = format!(
                "lease expired: worker {} did not renew attempt {} before {}",
                snap.worker_id.as_ref().map(|w| w.as_str()).unwrap_or("?"),
                snap.attempts,
                snap.lease_expires_at
                    .map(|t| t.to_string())
                    .unwrap_or_default()
            );
            self.apply_failure(
                &mut tx,
                &snap,
                AttemptOutcome::LeaseExpired,
                Failure::retryable(error),
                now,
            )
            .await?;
            woken.push((snap.namespace, snap.lane));
        }
        let next: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(lease_expires_at) FROM executions WHERE partition = ? AND state = 'running'",
        )
        .bind(i64::from(partition.get()))
        .fetch_one(&mut *tx)
        .await
        .map_err(map)?;
        tx.commit().await.map_err(map)?;
        for (ns, lane) in &woken {
            self.inner.wake.notify(ns.as_str(), lane.as_str());
        }
        Ok(ScanReport {
            processed: rows.len() as u64,
            next_due: next.map(Timestamp::from_millis),
        })
    }

    async fn expire_deadlines(&self, partition: PartitionId, limit: usize) -> Result<ScanReport> {
        let limit = self.scan_limit(partition, limit)?;
        let now = self.now();
        let mut tx = self.begin().await?;
        let rows: Vec<(Vec<u8>, i64, String, i64)> = sqlx::query_as(
            "SELECT uuid, partition, state, attempts FROM executions WHERE partition = ? \
             AND deadline IS NOT NULL AND finished_at IS NULL AND deadline <= ? \
             ORDER BY deadline, uuid LIMIT ?",
        )
        .bind(i64::from(partition.get()))
        .bind(now.as_millis())
        .bind(limit)
        .fetch_all(&mut *tx)
        .await
        .map_err(map)?;
        for (uuid, _, state, attempts) in &rows {
            if state == "running" {
                sqlx::query(
                    "UPDATE attempts SET ended_at = ?, outcome = 'expired' \
                     WHERE execution_uuid = ? AND number = ? AND outcome IS NULL",
                )
                .bind(now.as_millis())
                .bind(uuid.as_slice())
                .bind(attempts)
                .execute(&mut *tx)
                .await
                .map_err(map)?;
            }
            sqlx::query(
                "UPDATE executions SET state = 'expired', finished_at = ?1, updated_at = ?1, \
                 worker_id = NULL, lease_nonce = NULL, lease_expires_at = NULL WHERE uuid = ?2",
            )
            .bind(now.as_millis())
            .bind(uuid.as_slice())
            .execute(&mut *tx)
            .await
            .map_err(map)?;
        }
        let next: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(deadline) FROM executions WHERE partition = ? \
             AND deadline IS NOT NULL AND finished_at IS NULL",
        )
        .bind(i64::from(partition.get()))
        .fetch_one(&mut *tx)
        .await
        .map_err(map)?;
        tx.commit().await.map_err(map)?;
        Ok(ScanReport {
            processed: rows.len() as u64,
            next_due: next.map(Timestamp::from_millis),
        })
    }

    async fn trim_terminal(
        &self,
        partition: PartitionId,
        retention: Duration,
        limit: usize,
    ) -> Result<ScanReport> {
        let limit = self.scan_limit(partition, limit)?;
        let now = self.now();
        let cutoff = now.saturating_sub(retention);
        let mut tx = self.begin().await?;
        let doomed: Vec<Vec<u8>> = sqlx::query_scalar(
            "SELECT uuid FROM executions WHERE partition = ? AND finished_at IS NOT NULL \
             AND finished_at <= ? ORDER BY finished_at, uuid LIMIT ?",
        )
        .bind(i64::from(partition.get()))
        .bind(cutoff.as_millis())
        .bind(limit)
        .fetch_all(&mut *tx)
        .await
        .map_err(map)?;
        for table in [
            "DELETE FROM attempts WHERE execution_uuid = ?",
            "DELETE FROM execution_tags WHERE execution_uuid = ?",
            "DELETE FROM executions WHERE uuid = ?",
        ] {
            for uuid in &doomed {
                sqlx::query(table)
                    .bind(uuid.as_slice())
                    .execute(&mut *tx)
                    .await
                    .map_err(map)?;
            }
        }
        let oldest: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(finished_at) FROM executions WHERE partition = ? AND finished_at IS NOT NULL",
        )
        .bind(i64::from(partition.get()))
        .fetch_one(&mut *tx)
        .await
        .map_err(map)?;
        tx.commit().await.map_err(map)?;
        Ok(ScanReport {
            processed: doomed.len() as u64,
            next_due: oldest.map(|t| Timestamp::from_millis(t).saturating_add(retention)),
        })
    }

    async fn sync_ownership(&self, node: &NodeId, ttl: Duration) -> Result<Ownership> {
        self.inner.limits.check_lease(ttl)?;
        let now = self.now();
        let expires = now.saturating_add(ttl);
        let count = i64::from(self.inner.partitions.get());
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO engine_nodes (node, expires_at) VALUES (?1, ?2) \
             ON CONFLICT (node) DO UPDATE SET expires_at = excluded.expires_at",
        )
        .bind(node.as_str())
        .bind(expires.as_millis())
        .execute(&mut *tx)
        .await
        .map_err(map)?;
        sqlx::query("DELETE FROM engine_nodes WHERE expires_at <= ?")
            .bind(now.as_millis())
            .execute(&mut *tx)
            .await
            .map_err(map)?;
        let live: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM engine_nodes")
            .fetch_one(&mut *tx)
            .await
            .map_err(map)?;
        let live = live.max(1);
        let target = (count + live - 1) / live;
        sqlx::query(
            "WITH RECURSIVE p(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM p WHERE n + 1 < ?) \
             INSERT INTO partition_owners (partition) SELECT n FROM p WHERE true \
             ON CONFLICT (partition) DO NOTHING",
        )
        .bind(count)
        .execute(&mut *tx)
        .await
        .map_err(map)?;
        let mine: Vec<i64> = sqlx::query_scalar(
            "SELECT partition FROM partition_owners WHERE owner = ? AND expires_at > ? \
             AND partition < ? ORDER BY partition",
        )
        .bind(node.as_str())
        .bind(now.as_millis())
        .bind(count)
        .fetch_all(&mut *tx)
        .await
        .map_err(map)?;
        let keep = usize::try_from(target)
            .unwrap_or(usize::MAX)
            .min(mine.len());
        for surplus in &mine[keep..] {
            sqlx::query(
                "UPDATE partition_owners SET owner = NULL, expires_at = NULL WHERE partition = ?",
            )
            .bind(surplus)
            .execute(&mut *tx)
            .await
            .map_err(map)?;
        }
        let mut owned: Vec<i64> = mine[..keep].to_vec();
        let want = target - owned.len() as i64;
        if want > 0 {
            let free: Vec<i64> = sqlx::query_scalar(
                "SELECT partition FROM partition_owners WHERE partition < ?1 \
                 AND (owner IS NULL OR expires_at <= ?2) ORDER BY partition LIMIT ?3",
            )
            .bind(count)
            .bind(now.as_millis())
            .bind(want)
            .fetch_all(&mut *tx)
            .await
            .map_err(map)?;
            owned.extend(free);
        }
        for p in &owned {
            sqlx::query(
                "UPDATE partition_owners SET owner = ?, expires_at = ? WHERE partition = ?",
            )
            .bind(node.as_str())
            .bind(expires.as_millis())
            .bind(p)
            .execute(&mut *tx)
            .await
            .map_err(map)?;
        }
        tx.commit().await.map_err(map)?;
        owned.sort_unstable();
        Ok(Ownership {
            owned: owned
                .into_iter()
                .map(|p| PartitionId(u16::try_from(p).unwrap_or(u16::MAX)))
                .collect(),
            live_nodes: u32::try_from(live).unwrap_or(u32::MAX),
            target: u32::try_from(target).unwrap_or(u32::MAX),
            expires_at: expires,
        })
    }

    async fn release_ownership(&self, node: &NodeId) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE partition_owners SET owner = NULL, expires_at = NULL WHERE owner = ?")
            .bind(node.as_str())
            .execute(&mut *tx)
            .await
            .map_err(map)?;
        sqlx::query("DELETE FROM engine_nodes WHERE node = ?")
            .bind(node.as_str())
            .execute(&mut *tx)
            .await
            .map_err(map)?;
        tx.commit().await.map_err(map)?;
        Ok(())
    }
}

#[async_trait]
impl AdminBackend for SqliteBackend {
    async fn list(&self, filter: &ListFilter, page: Page) -> Result<ListPage> {
        page.validate()?;
        let mut qb: QueryBuilder<'_, Sqlite> = QueryBuilder::new(concat!(
            "SELECT ",
            execution_columns!(),
            " FROM executions WHERE namespace = "
        ));
        qb.push_bind(filter.namespace.as_str());
        if let Some(lane) = &filter.lane {
            qb.push(" AND lane = ").push_bind(lane.as_str());
        }
        if let Some(state) = filter.state {
            qb.push(" AND state = ").push_bind(state.as_str());
        }
        if let Some(kind) = &filter.kind {
            qb.push(" AND kind = ").push_bind(kind.as_str());
        }
        if let Some((key, value)) = &filter.tag {
            qb.push(" AND uuid IN (SELECT execution_uuid FROM execution_tags WHERE namespace = ")
                .push_bind(filter.namespace.as_str())
                .push(" AND key = ")
                .push_bind(key.as_str())
                .push(" AND value = ")
                .push_bind(value.as_str())
                .push(")");
        }
        if let Some(cursor) = page.cursor {
            qb.push(" AND uuid > ")
                .push_bind(cursor.after_uuid().as_bytes().to_vec());
        }
        qb.push(" ORDER BY uuid LIMIT ")
            .push_bind(page.limit as i64 + 1);
        let rows = qb
            .build()
            .fetch_all(&self.inner.reader)
            .await
            .map_err(map)?;
        let more = rows.len() > page.limit;
        let items = rows
            .iter()
            .take(page.limit)
            .map(|r| read::snapshot(r, self.inner.partitions))
            .collect::<Result<Vec<_>>>()?;
        let next_cursor = if more {
            items.last().map(|s| ListCursor::after(&s.id))
        } else {
            None
        };
        Ok(ListPage { items, next_cursor })
    }

    async fn counts(&self, namespace: &Namespace) -> Result<BTreeMap<Lane, StateCounts>> {
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT lane, state, COUNT(*) FROM executions WHERE namespace = ? GROUP BY lane, state",
        )
        .bind(namespace.as_str())
        .fetch_all(&self.inner.reader)
        .await
        .map_err(map)?;
        let mut out: BTreeMap<Lane, StateCounts> = BTreeMap::new();
        for (lane, state, n) in rows {
            let ctx = format!("namespace {namespace} lane {lane}");
            let lane: Lane = lane
                .parse()
                .map_err(|_| EngineError::corruption(format!("{ctx}: stored lane is invalid")))?;
            let state = read::state(&ctx, &state)?;
            *out.entry(lane).or_default().get_mut(state) += n.max(0) as u64;
        }
        Ok(out)
    }

    async fn namespaces(&self, limit: usize) -> Result<Vec<Namespace>> {
        Page::first(limit).validate()?;
        // One index probe per namespace (executions_by_namespace), not a
        // scan of every execution: each step asks for the next name up.
        let names: Vec<(String,)> = sqlx::query_as(
            "WITH RECURSIVE ns(name) AS ( \
               SELECT MIN(namespace) FROM executions \
               UNION ALL \
               SELECT (SELECT MIN(namespace) FROM executions WHERE namespace > ns.name) \
               FROM ns WHERE ns.name IS NOT NULL \
             ) SELECT name FROM ns WHERE name IS NOT NULL LIMIT ?",
        )
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.inner.reader)
        .await
        .map_err(map)?;
        names
            .iter()
            .map(|(n,)| baton_core::stored::parse("namespace", "executions", n))
            .collect()
    }

    async fn partition_owners(&self) -> Result<Vec<PartitionOwner>> {
        let now = self.now();
        let rows: Vec<(i64, Option<String>, Option<i64>)> = sqlx::query_as(
            "SELECT partition, owner, expires_at FROM partition_owners \
             WHERE owner IS NOT NULL AND expires_at > ? ORDER BY partition",
        )
        .bind(now.as_millis())
        .fetch_all(&self.inner.reader)
        .await
        .map_err(map)?;
        let mut live: BTreeMap<u16, (NodeId, Timestamp)> = BTreeMap::new();
        for (p, owner, expires) in rows {
            let (Some(owner), Some(expires)) = (owner, expires) else {
                continue;
            };
            let node = owner
                .parse::<NodeId>()
                .map_err(|_| EngineError::corruption(format!("partition {p}: owner {owner:?}")))?;
            let p = u16::try_from(p)
                .map_err(|_| EngineError::corruption(format!("partition number {p}")))?;
            live.insert(p, (node, Timestamp::from_millis(expires)));
        }
        Ok(self
            .inner
            .partitions
            .iter()
            .map(|p| {
                let held = live.remove(&p.get());
                PartitionOwner {
                    partition: p,
                    expires_at: held.as_ref().map(|h| h.1),
                    owner: held.map(|h| h.0),
                }
            })
            .collect())
    }

    async fn attempts(&self, id: &ExecutionId) -> Result<Vec<AttemptRecord>> {
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
        let rows = sqlx::query(concat!(
            "SELECT ",
            attempt_columns!(),
            " FROM attempts WHERE execution_uuid = ? ORDER BY number"
        ))
        .bind(blob(id))
        .fetch_all(&mut *conn)
        .await
        .map_err(map)?;
        rows.iter().map(|r| read::attempt(r, id)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_forms() {
        assert_eq!(
            SqliteConfig::from_url("sqlite::memory:").unwrap().location,
            Location::Memory
        );
        assert_eq!(
            SqliteConfig::from_url("sqlite:///var/lib/baton.db")
                .unwrap()
                .location,
            Location::File("/var/lib/baton.db".into())
        );
        assert!(
            !SqliteConfig::from_url("sqlite://x.db?synchronous=normal")
                .unwrap()
                .synchronous_full
        );
        for bad in [
            "sqlite://",
            "sqlite://x.db?nope=1",
            "sqlite://x.db?partitions=0",
            "redis://x",
        ] {
            assert!(SqliteConfig::from_url(bad).is_err(), "{bad}");
        }
    }
}
