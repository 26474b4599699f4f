//! # baton-postgres
//!
//! Baton's Postgres backend (Postgres ≥ 14): the whole [`EngineBackend`]
//! contract over hash-partitioned tables in one schema, with
//! `FOR UPDATE SKIP LOCKED` claims and `LISTEN`/`NOTIFY` wake-ups across
//! processes. The design is recorded in `rfcs/0003-postgres-backend.md`.
//!
//! ```no_run
//! # async fn demo() -> baton_core::Result<()> {
//! use baton_core::{EngineBackendExt, Kind, Lane, Namespace, NewExecution};
//! let backend =
//!     baton_postgres::PostgresBackend::connect("postgres://baton@localhost/baton?schema=baton").await?;
//! let ns = Namespace::new("default")?;
//! let created = backend
//!     .create_one(NewExecution::new(ns, Lane::new("default")?, Kind::new("hello")?, b"{}".to_vec()))
//!     .await?;
//! println!("{} is {}", created.id, created.state);
//! # Ok(()) }
//! ```
//!
//! ## How it stays correct under concurrency
//! - Every operation is one transaction at READ COMMITTED; nothing runs
//!   SERIALIZABLE. Hot-path calls are single statements (claim, create
//!   without idempotency keys, renew, a live complete, promotion), so they
//!   are one round trip and atomic by construction.
//! - Every writer of an execution locks its `executions` row before touching
//!   its attempts. Calls that decide from stored state (fail, cancel, the
//!   slow path of complete, reclaim, expiry, trimming) take that lock with
//!   `SELECT … FOR UPDATE` in a statement of its own, so the statements that
//!   follow read a snapshot taken after every earlier writer committed.
//! - Claims and scheduler passes lock with `SKIP LOCKED`: concurrent
//!   claimers and engine processes never wait for, or hand out, a row another
//!   transaction holds.
//! - Concurrent `complete` calls of one instance are write-combined into one
//!   statement (one commit for many completes); a lease that is not live
//!   falls back to the per-call path, which classifies it under a row lock.
//! - Idempotency keys live in their own table whose primary key is the
//!   dedup scope; `ON CONFLICT DO NOTHING` makes concurrent creates with one
//!   key create exactly one execution.
//!
//! ## Time
//! Every stored instant is BIGINT milliseconds from the injected
//! [`Clock`](baton_core::Clock); the server's `now()` is never used, so
//! `describe` answers exactly what SQLite answers for the same history.

mod coalesce;
mod errors;
mod migrate;
mod read;
mod wake;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use baton_core::{
    AdminBackend, AttemptOutcome, AttemptRecord, Capabilities, Claim, ClaimRequest, CreateOutcome,
    EngineBackend, EngineError, ExecutionId, ExecutionSnapshot, Failure, Lane, LeaseToken, Limits,
    ListCursor, ListFilter, ListPage, Namespace, NewExecution, NodeId, Ownership, Page,
    PartitionCount, PartitionId, PartitionOwner, PreparedExecution, RenewOutcome, RenewRequest,
    RenewStatus, Result, RetryDecision, ScanReport, SharedClock, State, StateCounts, SystemClock,
    Timestamp,
};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{PgConnection, Postgres, QueryBuilder};
use uuid::Uuid;

use errors::map;
pub use migrate::latest_version as latest_schema_version;
use read::col;

/// The statements of this backend, embedded from `sql/`.
mod sql {
    pub const CREATE: &str = include_str!("../sql/create.sql");
    pub const EXISTING_KEYS: &str = include_str!("../sql/existing_keys.sql");
    pub const CLAIM: &str = include_str!("../sql/claim.sql");
    pub const RENEW: &str = include_str!("../sql/renew.sql");
    pub const COMPLETE: &str = include_str!("../sql/complete.sql");
    pub const COMPLETE_MANY: &str = include_str!("../sql/complete_many.sql");
    pub const SETTLE: &str = include_str!("../sql/settle.sql");
    pub const CANCEL: &str = include_str!("../sql/cancel.sql");
    pub const PROMOTE: &str = include_str!("../sql/promote.sql");
    pub const EXPIRE: &str = include_str!("../sql/expire.sql");
    pub const TRIM: &str = include_str!("../sql/trim.sql");
}

/// The schema used when none is configured.
pub const DEFAULT_SCHEMA: &str = "baton";

/// Settings of a [`PostgresBackend`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct PostgresConfig {
    /// Connection URL understood by the driver (`postgres://user:pass@host:port/db`
    /// and libpq options such as `sslmode`), without Baton's own options.
    pub url: String,
    /// The schema holding Baton's tables; created and migrated on open.
    /// Several deployments may share one database in different schemas.
    pub schema: String,
    /// Partition count; `None` uses the recorded one (or the default for a
    /// new schema). A value differing from the recorded one is a
    /// configuration error.
    pub partitions: Option<PartitionCount>,
    /// Request limits.
    pub limits: Limits,
    /// The clock every time decision reads.
    pub clock: SharedClock,
    /// Most connections the pool opens (the `LISTEN` connection comes on top).
    /// Default 10.
    pub max_connections: u32,
    /// How long a call waits for a free connection before answering
    /// [`Unavailable`](EngineError::Unavailable). Default 30 s.
    pub acquire_timeout: Duration,
}

impl PostgresConfig {
    /// Defaults for the database at `url` (taken as is), schema
    /// [`DEFAULT_SCHEMA`].
    pub fn new(url: impl Into<String>) -> Self {
        PostgresConfig {
            url: url.into(),
            schema: DEFAULT_SCHEMA.to_owned(),
            partitions: None,
            limits: Limits::default(),
            clock: SystemClock::shared(),
            max_connections: 10,
            acquire_timeout: Duration::from_secs(30),
        }
    }

    /// Parses a backend URL: `postgres://` or `postgresql://`, with Baton's
    /// options `schema=NAME`, `partitions=N` and `max_connections=N` in the
    /// query; every other option is passed to the driver.
    ///
    /// ```
    /// use baton_postgres::PostgresConfig;
    /// let c = PostgresConfig::from_url(
    ///     "postgres://baton@db:5432/jobs?schema=shop&partitions=32&sslmode=prefer",
    /// )
    /// .unwrap();
    /// assert_eq!(c.schema, "shop");
    /// assert_eq!(c.partitions.unwrap().get(), 32);
    /// assert_eq!(c.url, "postgres://baton@db:5432/jobs?sslmode=prefer");
    /// assert!(PostgresConfig::from_url("sqlite://x.db").is_err());
    /// assert!(PostgresConfig::from_url("postgres://db/x?schema=Bad-Name").is_err());
    /// ```
    pub fn from_url(url: &str) -> Result<Self> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(EngineError::invalid(
                "backend",
                url,
                "a Postgres URL starts with postgres:// (for example postgres://user@localhost/db?schema=baton)",
            ));
        }
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut config = PostgresConfig::new(base);
        let mut passed = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "schema" => {
                    migrate::check_schema(v)?;
                    config.schema = v.to_owned();
                }
                "partitions" => {
                    let n: u16 = v.parse().map_err(|_| {
                        EngineError::invalid("partitions", v, "must be a number between 1 and 1024")
                    })?;
                    config.partitions = Some(PartitionCount::new(n)?);
                }
                "max_connections" => {
                    config.max_connections = v
                        .parse()
                        .ok()
                        .filter(|n| (1..=1000).contains(n))
                        .ok_or_else(|| {
                            EngineError::invalid(
                                "max_connections",
                                v,
                                "must be a number between 1 and 1000",
                            )
                        })?;
                }
                _ => passed.push(pair),
            }
        }
        if !passed.is_empty() {
            config.url = format!("{base}?{}", passed.join("&"));
        }
        Ok(config)
    }

    /// Sets the schema.
    pub fn with_schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
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

    /// Sets the pool size.
    pub fn with_max_connections(mut self, max_connections: u32) -> Self {
        self.max_connections = max_connections;
        self
    }
}

/// The Postgres backend. Cheap to clone; clones share the pool.
#[derive(Clone)]
pub struct PostgresBackend {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    schema: String,
    channel: String,
    partitions: PartitionCount,
    limits: Limits,
    clock: SharedClock,
    durable: bool,
    wake: Arc<baton_core::Wakeups>,
    listener: wake::Listener,
    completer: tokio::sync::mpsc::UnboundedSender<coalesce::Pending>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.listener.stop();
    }
}

impl std::fmt::Debug for PostgresBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresBackend")
            .field("schema", &self.inner.schema)
            .field("partitions", &self.inner.partitions.get())
            .finish()
    }
}

type Tx = sqlx::Transaction<'static, Postgres>;

/// The partition as Postgres stores it (`smallint`; partitions are < 1024).
fn part(p: PartitionId) -> i16 {
    p.get() as i16
}

impl PostgresBackend {
    /// Connects to the database named by `url` (see
    /// [`PostgresConfig::from_url`]), creating and migrating the schema when
    /// needed.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::open(PostgresConfig::from_url(url)?).await
    }

    /// Connects with explicit settings, creates and migrates the schema when
    /// needed, and checks the partition count against the recorded one.
    ///
    /// # Errors
    /// `InvalidInput` for a malformed URL or schema name, `Unavailable` when
    /// the server cannot be reached, `Configuration` when the schema is newer
    /// than this build or the partition count differs.
    pub async fn open(config: PostgresConfig) -> Result<Self> {
        migrate::check_schema(&config.schema)?;
        let options = PgConnectOptions::from_str(&config.url)
            .map_err(|e| EngineError::invalid("backend", &config.url, e.to_string()))?
            .application_name("baton")
            .options([
                ("search_path", config.schema.as_str()),
                ("default_transaction_isolation", r"read\ committed"),
                ("plan_cache_mode", "force_generic_plan"),
            ]);
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections.max(1))
            .acquire_timeout(config.acquire_timeout)
            .connect_with(options.clone())
            .await
            .map_err(|e| {
                EngineError::unavailable(format!(
                    "cannot connect to Postgres at {}: {e}",
                    redact(&config.url)
                ))
            })?;
        let mut conn = pool.acquire().await.map_err(map)?;
        migrate::run(&mut conn, &config.schema).await?;
        let partitions = record_partitions(&mut conn, config.partitions).await?;
        let durable: bool = sqlx::query_scalar(
            "SELECT current_setting('fsync') = 'on' AND current_setting('synchronous_commit') <> 'off'",
        )
        .fetch_one(&mut *conn)
        .await
        .map_err(map)?;
        drop(conn);
        let listen_pool = PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_lazy_with(options);
        let channel = format!("baton_work_{}", config.schema);
        Ok(PostgresBackend {
            inner: Arc::new(Inner {
                completer: coalesce::start(pool.clone()),
                pool,
                listener: wake::Listener::new(listen_pool, channel.clone()),
                channel,
                schema: config.schema,
                partitions,
                limits: config.limits,
                clock: config.clock,
                durable,
                wake: Arc::default(),
            }),
        })
    }

    /// The schema holding this backend's tables.
    pub fn schema(&self) -> &str {
        &self.inner.schema
    }

    /// The schema versions applied, oldest first.
    pub async fn applied_migrations(&self) -> Result<Vec<i64>> {
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(&self.inner.pool)
            .await
            .map_err(map)
    }

    /// Closes the connections, waiting for in-flight calls to finish.
    pub async fn close(&self) {
        self.inner.pool.close().await;
    }

    fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    async fn begin(&self) -> Result<Tx> {
        self.inner.pool.begin().await.map_err(map)
    }

    /// Validates a scheduler pass's partition and limit; answers the limit as
    /// Postgres binds it.
    fn scan_limit(&self, partition: PartitionId, limit: usize) -> Result<i64> {
        self.inner.partitions.check_scan(partition, limit)?;
        Ok(i64::try_from(limit).unwrap_or(i64::MAX))
    }

    fn check_id(&self, id: &ExecutionId) -> Result<()> {
        id.check_partition(self.inner.partitions)
    }

    fn snapshot(&self, row: &PgRow) -> Result<ExecutionSnapshot> {
        read::snapshot(row, self.inner.partitions)
    }

    /// Locks the row of `id` for the rest of the transaction and reads it.
    async fn lock_row(&self, conn: &mut PgConnection, id: &ExecutionId) -> Result<PgRow> {
        sqlx::query("SELECT * FROM executions WHERE partition = $1 AND uuid = $2 FOR UPDATE")
            .bind(part(id.partition()))
            .bind(id.uuid())
            .fetch_optional(&mut *conn)
            .await
            .map_err(map)?
            .ok_or_else(|| EngineError::NotFound { id: id.clone() })
    }

    /// Classifies `lease` against the execution row, which the caller's
    /// transaction locks here.
    async fn check_lease(
        &self,
        conn: &mut PgConnection,
        lease: &LeaseToken,
        now: Timestamp,
    ) -> Result<LeaseCheck> {
        let id = lease.execution_id();
        let row = self.lock_row(conn, id).await?;
        let snap = self.snapshot(&row)?;
        if snap.state == State::Running
            && snap.attempts == lease.attempt()
            && read::lease_nonce(&row)? == Some(lease.nonce())
        {
            if let Some(deadline) = snap.deadline
                && deadline <= now
            {
                return Err(EngineError::lease_lost(
                    id,
                    format!("the execution's deadline {deadline} has passed"),
                ));
            }
            return match snap.lease_expires_at {
                Some(exp) if now < exp => Ok(LeaseCheck::Live(snap)),
                exp => Err(EngineError::lease_lost(
                    id,
                    format!(
                        "the lease expired at {}; the engine will reclaim and retry the execution",
                        exp.map(|t| t.to_string()).unwrap_or_default()
                    ),
                )),
            };
        }
        let attempt = sqlx::query(
            "SELECT nonce, outcome FROM attempts \
             WHERE partition = $1 AND execution_uuid = $2 AND number = $3",
        )
        .bind(part(id.partition()))
        .bind(id.uuid())
        .bind(i32::try_from(lease.attempt()).unwrap_or(i32::MAX))
        .fetch_optional(&mut *conn)
        .await
        .map_err(map)?;
        let Some(attempt) = attempt else {
            return Err(EngineError::lease_lost(
                id,
                format!("attempt {} was never granted", lease.attempt()),
            ));
        };
        let nonce: i64 = col(&attempt, "nonce")?;
        if nonce as u64 != lease.nonce() {
            return Err(EngineError::lease_lost(
                id,
                "the lease token does not match the one granted for this attempt",
            ));
        }
        match col::<Option<String>>(&attempt, "outcome")? {
            Some(o) => Ok(LeaseCheck::Ended(
                read::outcome(&format!("execution {id}"), &o)?,
                snap,
            )),
            None => Err(EngineError::corruption(format!(
                "execution {id}: attempt {} is open but the execution is {} at attempt {}",
                lease.attempt(),
                snap.state,
                snap.attempts
            ))),
        }
    }

    /// The body of `complete` once the fast path missed, in the caller's
    /// transaction (not committed here).
    async fn complete_locked(
        &self,
        tx: &mut PgConnection,
        lease: &LeaseToken,
        result: &[u8],
        now: Timestamp,
    ) -> Result<ExecutionSnapshot> {
        let id = lease.execution_id();
        match self.check_lease(tx, lease, now).await? {
            LeaseCheck::Live(_) => {
                self.try_complete(tx, lease, result, now)
                    .await?
                    .ok_or_else(|| {
                        EngineError::corruption(format!(
                            "execution {id}: a live lease could not complete under its row lock"
                        ))
                    })
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

    /// The body of `fail`, in the caller's transaction (not committed here).
    async fn fail_locked(
        &self,
        tx: &mut PgConnection,
        lease: &LeaseToken,
        failure: &Failure,
        now: Timestamp,
    ) -> Result<ExecutionSnapshot> {
        let id = lease.execution_id();
        match self.check_lease(tx, lease, now).await? {
            LeaseCheck::Live(snap) => {
                let error = self.inner.limits.clip_text(failure.error.clone());
                let mut settle = SettleArrays::default();
                settle.push(&snap, error, failure, now);
                let rows = settle
                    .run(tx, AttemptOutcome::Failed, now, &self.inner.channel)
                    .await?;
                let row = rows.first().ok_or_else(|| {
                    EngineError::corruption(format!("execution {id}: a locked row vanished"))
                })?;
                self.snapshot(row)
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

    /// The body of `cancel`, in the caller's transaction (not committed
    /// here).
    async fn cancel_locked(
        &self,
        tx: &mut PgConnection,
        id: &ExecutionId,
        reason: Option<String>,
        now: Timestamp,
    ) -> Result<ExecutionSnapshot> {
        let row = self.lock_row(tx, id).await?;
        let snap = self.snapshot(&row)?;
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
            _ => {}
        }
        let row = sqlx::query(sql::CANCEL)
            .bind(part(id.partition()))
            .bind(id.uuid())
            .bind(now.as_millis())
            .bind(reason)
            .fetch_one(&mut *tx)
            .await
            .map_err(map)?;
        self.snapshot(&row)
    }

    /// Runs the complete statement; `None` when `lease` is not live.
    async fn try_complete(
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
    async fn complete_combined(
        &self,
        lease: &LeaseToken,
        result: &[u8],
        now: Timestamp,
    ) -> Result<Option<ExecutionSnapshot>> {
        let id = lease.execution_id();
        let (reply, answer) = tokio::sync::oneshot::channel();
        let queued = self.inner.completer.send(coalesce::Pending {
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
        // The combining task is gone (its runtime shut down): complete alone.
        let mut conn = self.inner.pool.acquire().await.map_err(map)?;
        self.try_complete(&mut conn, lease, result, now).await
    }

    /// Runs the create statement for `rows`; answers the uuids inserted.
    async fn insert_batch(
        &self,
        conn: &mut PgConnection,
        rows: &[&PreparedExecution],
        now: Timestamp,
    ) -> Result<HashSet<Uuid>> {
        let mut a = CreateArrays::default();
        for r in rows {
            a.push(r, now);
        }
        let inserted: Vec<Uuid> = sqlx::query_scalar(sql::CREATE)
            .bind(a.partition)
            .bind(a.uuid)
            .bind(a.namespace)
            .bind(a.lane)
            .bind(a.kind)
            .bind(a.state)
            .bind(a.priority)
            .bind(a.payload)
            .bind(a.tags)
            .bind(a.caps)
            .bind(a.max_attempts)
            .bind(a.backoff_initial_ms)
            .bind(a.backoff_max_ms)
            .bind(a.backoff_multiplier)
            .bind(a.backoff_jitter)
            .bind(a.idempotency_key)
            .bind(a.parent)
            .bind(a.run_at)
            .bind(a.ready_at)
            .bind(a.deadline)
            .bind(now.as_millis())
            .bind(&self.inner.channel)
            .fetch_one(&mut *conn)
            .await
            .map_err(map)?;
        Ok(inserted.into_iter().collect())
    }

    /// The executions owning the idempotency keys of `rows`, by index into
    /// `rows`; keys whose execution is gone are absent.
    async fn existing_keys(
        &self,
        conn: &mut PgConnection,
        rows: &[&PreparedExecution],
    ) -> Result<HashMap<usize, (ExecutionId, State)>> {
        let mut namespaces = Vec::with_capacity(rows.len());
        let mut lanes = Vec::with_capacity(rows.len());
        let mut keys = Vec::with_capacity(rows.len());
        for r in rows {
            namespaces.push(r.new.namespace.as_str());
            lanes.push(r.new.lane.as_str());
            keys.push(r.new.idempotency_key.as_ref().map_or("", |k| k.as_str()));
        }
        let found = sqlx::query(sql::EXISTING_KEYS)
            .bind(namespaces)
            .bind(lanes)
            .bind(keys)
            .fetch_all(&mut *conn)
            .await
            .map_err(map)?;
        let mut out = HashMap::with_capacity(found.len());
        for row in &found {
            let ord: i64 = col(row, "ord")?;
            let id = read::execution_id(row, self.inner.partitions)?;
            let state = col::<Option<String>>(row, "state")?.ok_or_else(|| {
                EngineError::corruption(format!(
                    "an idempotency key points at execution {id}, which does not exist"
                ))
            })?;
            let state = read::state(&format!("execution {id}"), &state)?;
            let index = usize::try_from(ord - 1)
                .map_err(|_| EngineError::corruption(format!("ordinality {ord}")))?;
            out.insert(index, (id, state));
        }
        Ok(out)
    }
}

/// Ends `tx` the way its body went: commits on success; on an error rolls
/// back before the call answers. (A dropped transaction's rollback is sent
/// only when the pool next tests the connection, in the background, so its
/// row locks would outlive the call and a scan right after it would skip the
/// rows it locked.)
async fn finish<T>(tx: Tx, outcome: Result<T>) -> Result<T> {
    match outcome {
        Ok(value) => {
            tx.commit().await.map_err(map)?;
            Ok(value)
        }
        Err(e) => {
            if let Err(rollback) = tx.rollback().await {
                tracing::debug!(error = %rollback, "rolling back after an error failed; the pool discards the connection");
            }
            Err(e)
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

/// The URL without its password, for error messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Records the partition count on first start; checks it afterwards.
async fn record_partitions(
    conn: &mut PgConnection,
    wanted: Option<PartitionCount>,
) -> Result<PartitionCount> {
    let proposed = wanted.unwrap_or_default();
    sqlx::query(
        "INSERT INTO baton_meta (key, value) VALUES ('partitions', $1) ON CONFLICT (key) DO NOTHING",
    )
    .bind(proposed.get().to_string())
    .execute(&mut *conn)
    .await
    .map_err(map)?;
    let text: String = sqlx::query_scalar("SELECT value FROM baton_meta WHERE key = 'partitions'")
        .fetch_one(&mut *conn)
        .await
        .map_err(map)?;
    let recorded = text
        .parse::<u16>()
        .ok()
        .and_then(|n| PartitionCount::new(n).ok())
        .ok_or_else(|| EngineError::corruption(format!("recorded partition count {text:?}")))?;
    if let Some(w) = wanted
        && w != recorded
    {
        return Err(EngineError::Configuration {
            message: format!(
                "this schema was created with {} partitions but {} were requested; \
                 start with partitions={} (or leave it unset)",
                recorded.get(),
                w.get(),
                recorded.get()
            ),
        });
    }
    Ok(recorded)
}

/// Column arrays of a create batch, bound to `sql/create.sql`.
#[derive(Default)]
struct CreateArrays<'a> {
    partition: Vec<i16>,
    uuid: Vec<Uuid>,
    namespace: Vec<&'a str>,
    lane: Vec<&'a str>,
    kind: Vec<&'a str>,
    state: Vec<&'static str>,
    priority: Vec<i32>,
    payload: Vec<&'a [u8]>,
    tags: Vec<&'a str>,
    caps: Vec<&'a str>,
    max_attempts: Vec<i32>,
    backoff_initial_ms: Vec<i64>,
    backoff_max_ms: Vec<i64>,
    backoff_multiplier: Vec<f64>,
    backoff_jitter: Vec<bool>,
    idempotency_key: Vec<Option<&'a str>>,
    parent: Vec<Option<String>>,
    run_at: Vec<Option<i64>>,
    ready_at: Vec<i64>,
    deadline: Vec<Option<i64>>,
}

impl<'a> CreateArrays<'a> {
    fn push(&mut self, r: &'a PreparedExecution, now: Timestamp) {
        let n = &r.new;
        self.partition.push(part(r.id.partition()));
        self.uuid.push(r.id.uuid());
        self.namespace.push(n.namespace.as_str());
        self.lane.push(n.lane.as_str());
        self.kind.push(n.kind.as_str());
        self.state.push(r.state.as_str());
        self.priority.push(n.priority);
        self.payload.push(&n.payload);
        self.tags.push(&r.tags_json);
        self.caps.push(&r.caps_json);
        self.max_attempts
            .push(i32::try_from(n.retry.max_attempts).unwrap_or(i32::MAX));
        self.backoff_initial_ms
            .push(i64::try_from(n.retry.backoff.initial_ms).unwrap_or(i64::MAX));
        self.backoff_max_ms
            .push(i64::try_from(n.retry.backoff.max_ms).unwrap_or(i64::MAX));
        self.backoff_multiplier.push(n.retry.backoff.multiplier);
        self.backoff_jitter.push(n.retry.backoff.jitter);
        self.idempotency_key
            .push(n.idempotency_key.as_ref().map(|k| k.as_str()));
        self.parent.push(n.parent.as_ref().map(|p| p.to_string()));
        self.run_at.push(r.run_at.map(Timestamp::as_millis));
        // Eligible at once: ready now; else when the start time comes.
        self.ready_at.push(r.run_at.unwrap_or(now).as_millis());
        self.deadline.push(n.deadline.map(Timestamp::as_millis));
    }
}

/// Column arrays of a settle (fail / reclaim) batch, bound to
/// `sql/settle.sql`.
#[derive(Default)]
struct SettleArrays {
    partition: Vec<i16>,
    uuid: Vec<Uuid>,
    state: Vec<&'static str>,
    run_at: Vec<Option<i64>>,
    ready_at: Vec<Option<i64>>,
    finished_at: Vec<Option<i64>>,
    error: Vec<String>,
}

impl SettleArrays {
    /// Adds the failure of `snap`'s running attempt with `error`, applying
    /// the retry policy exactly as every backend does.
    fn push(&mut self, snap: &ExecutionSnapshot, error: String, failure: &Failure, now: Timestamp) {
        let decision = snap.retry.decide(
            &snap.id,
            snap.attempts,
            failure.retryable,
            failure.retry_after,
        );
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
        self.partition.push(part(snap.id.partition()));
        self.uuid.push(snap.id.uuid());
        self.state.push(state.as_str());
        self.run_at.push(run_at.map(Timestamp::as_millis));
        self.ready_at.push(ready_at.map(Timestamp::as_millis));
        self.finished_at.push(finished_at.map(Timestamp::as_millis));
        self.error.push(error);
    }

    async fn run(
        self,
        conn: &mut PgConnection,
        outcome: AttemptOutcome,
        now: Timestamp,
        channel: &str,
    ) -> Result<Vec<PgRow>> {
        sqlx::query(sql::SETTLE)
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
            .map_err(map)
    }
}

#[async_trait]
impl EngineBackend for PostgresBackend {
    fn capabilities(&self) -> Capabilities {
        let mut c = Capabilities::new("postgres", self.inner.limits);
        c.cross_process_wakeups = true;
        c.multi_process = true;
        c.durable = self.inner.durable;
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
        // Repeats of a key within the batch answer the first occurrence.
        let mut first_of: HashMap<(&str, &str, &str), usize> = HashMap::new();
        let mut repeat_of: Vec<Option<usize>> = Vec::with_capacity(rows.len());
        let mut candidates: Vec<usize> = Vec::with_capacity(rows.len());
        for (i, r) in rows.iter().enumerate() {
            let repeat = r.new.idempotency_key.as_ref().and_then(|k| {
                let key = (r.new.namespace.as_str(), r.new.lane.as_str(), k.as_str());
                match first_of.get(&key) {
                    Some(&first) => Some(first),
                    None => {
                        first_of.insert(key, i);
                        None
                    }
                }
            });
            if repeat.is_none() {
                candidates.push(i);
            }
            repeat_of.push(repeat);
        }

        let keyed = first_of.len();
        let mut answers: HashMap<usize, CreateOutcome> = HashMap::with_capacity(rows.len());
        let mut created: Vec<usize> = Vec::new();
        if keyed == 0 {
            let batch: Vec<&PreparedExecution> = candidates.iter().map(|&i| &rows[i]).collect();
            let mut conn = self.inner.pool.acquire().await.map_err(map)?;
            self.insert_batch(&mut conn, &batch, now).await?;
            created = candidates;
        } else {
            let mut tx = self.begin().await?;
            let mut pending = candidates;
            // A key taken by another transaction whose execution is trimmed
            // before we read it is free again: retry those items.
            for _round in 0..4 {
                if pending.is_empty() {
                    break;
                }
                let batch: Vec<&PreparedExecution> = pending.iter().map(|&i| &rows[i]).collect();
                let inserted = self.insert_batch(&mut tx, &batch, now).await?;
                let mut lost = Vec::new();
                for &i in &pending {
                    if inserted.contains(&rows[i].id.uuid()) {
                        created.push(i);
                    } else {
                        lost.push(i);
                    }
                }
                if lost.is_empty() {
                    pending = lost;
                    break;
                }
                let lost_rows: Vec<&PreparedExecution> = lost.iter().map(|&i| &rows[i]).collect();
                let existing = self.existing_keys(&mut tx, &lost_rows).await?;
                let mut again = Vec::new();
                for (j, &i) in lost.iter().enumerate() {
                    match existing.get(&j) {
                        Some((id, state)) => {
                            answers.insert(
                                i,
                                CreateOutcome {
                                    id: id.clone(),
                                    state: *state,
                                    created: false,
                                },
                            );
                        }
                        None => again.push(i),
                    }
                }
                pending = again;
            }
            if !pending.is_empty() {
                return Err(EngineError::Contention {
                    message: "idempotency keys of this batch kept changing owner; retry".into(),
                });
            }
            tx.commit().await.map_err(map)?;
        }
        for &i in &created {
            let r = &rows[i];
            answers.insert(
                i,
                CreateOutcome {
                    id: r.id.clone(),
                    state: r.state,
                    created: true,
                },
            );
            if r.state == State::Waiting {
                self.inner
                    .wake
                    .notify(r.new.namespace.as_str(), r.new.lane.as_str());
            }
        }
        let mut outcomes = Vec::with_capacity(rows.len());
        for (i, repeat) in repeat_of.iter().enumerate() {
            let source = repeat.unwrap_or(i);
            let answer = answers.get(&source).ok_or_else(|| {
                EngineError::corruption(format!(
                    "create left item {source} of the batch unanswered"
                ))
            })?;
            outcomes.push(CreateOutcome {
                created: answer.created && repeat.is_none(),
                ..answer.clone()
            });
        }
        Ok(outcomes)
    }

    async fn claim(&self, request: ClaimRequest) -> Result<Vec<Claim>> {
        request.validate(&self.inner.limits)?;
        let now = self.now();
        let expires = now.saturating_add(request.lease_ttl);
        let mut lanes: Vec<&str> = request.lanes.iter().map(Lane::as_str).collect();
        lanes.sort_unstable();
        lanes.dedup();
        let caps: Vec<&str> = request.capabilities.iter().map(|c| c.as_str()).collect();
        let caps_json =
            serde_json::to_string(&caps).map_err(|e| EngineError::corruption(e.to_string()))?;
        let nonces: Vec<i64> = (0..request.max)
            .map(|_| LeaseToken::random_nonce() as i64)
            .collect();
        let rows = sqlx::query(sql::CLAIM)
            .bind(request.namespace.as_str())
            .bind(lanes)
            .bind(now.as_millis())
            .bind(caps_json)
            .bind(i64::try_from(request.max).unwrap_or(i64::MAX))
            .bind(request.worker_id.as_str())
            .bind(expires.as_millis())
            .bind(nonces)
            .fetch_all(&self.inner.pool)
            .await
            .map_err(map)?;
        let mut claims = Vec::with_capacity(rows.len());
        for row in &rows {
            let snap = self.snapshot(row)?;
            let nonce = read::lease_nonce(row)?.ok_or_else(|| {
                EngineError::corruption(format!("execution {}: claimed without a nonce", snap.id))
            })?;
            let ready_at: i64 = col(row, "ready_at")?;
            let claim = Claim {
                namespace: snap.namespace,
                lane: snap.lane,
                kind: snap.kind,
                payload: snap.payload,
                attempt: snap.attempts,
                lease: LeaseToken::new(snap.id.clone(), snap.attempts, nonce),
                lease_expires_at: expires,
                deadline: snap.deadline,
                tags: snap.tags,
                id: snap.id,
            };
            claims.push(((std::cmp::Reverse(snap.priority), ready_at), claim));
        }
        // RETURNING order is unspecified; hand work out in claim order.
        claims.sort_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| a.1.id.uuid().cmp(&b.1.id.uuid()))
        });
        Ok(claims.into_iter().map(|(_, c)| c).collect())
    }

    async fn renew(&self, request: RenewRequest) -> Result<Vec<RenewOutcome>> {
        let limits = &self.inner.limits;
        limits.check_batch("leases", request.leases.len())?;
        limits.check_lease(request.lease_ttl)?;
        let now = self.now();
        let expires = now.saturating_add(request.lease_ttl);
        let mut index = Vec::new();
        let (mut partitions, mut uuids, mut numbers, mut nonces) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (i, lease) in request.leases.iter().enumerate() {
            let id = lease.execution_id();
            let Ok(number) = i32::try_from(lease.attempt()) else {
                continue;
            };
            if self.check_id(id).is_err() {
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
                .fetch_all(&self.inner.pool)
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
                } else if col::<bool>(row, "cancelled")? {
                    RenewStatus::Cancelled
                } else {
                    RenewStatus::Lost
                };
            }
        }
        Ok(request
            .leases
            .into_iter()
            .zip(status)
            .map(|(lease, status)| RenewOutcome {
                lease,
                expires_at: (status == RenewStatus::Renewed).then_some(expires),
                status,
            })
            .collect())
    }

    async fn complete(&self, lease: &LeaseToken, result: Vec<u8>) -> Result<ExecutionSnapshot> {
        self.inner.limits.check_payload("result", result.len())?;
        let id = lease.execution_id();
        self.check_id(id)?;
        let now = self.now();
        if let Some(snap) = self.complete_combined(lease, &result, now).await? {
            return Ok(snap);
        }
        let mut tx = self.begin().await?;
        let outcome = self.complete_locked(&mut tx, lease, &result, now).await;
        finish(tx, outcome).await
    }

    async fn fail(&self, lease: &LeaseToken, failure: Failure) -> Result<ExecutionSnapshot> {
        let id = lease.execution_id();
        self.check_id(id)?;
        let now = self.now();
        let mut tx = self.begin().await?;
        let outcome = self.fail_locked(&mut tx, lease, &failure, now).await;
        let snap = finish(tx, outcome).await?;
        if snap.state == State::Waiting {
            self.inner
                .wake
                .notify(snap.namespace.as_str(), snap.lane.as_str());
        }
        Ok(snap)
    }

    async fn cancel(&self, id: &ExecutionId, reason: Option<String>) -> Result<ExecutionSnapshot> {
        self.check_id(id)?;
        let reason = reason.map(|r| self.inner.limits.clip_text(r));
        let now = self.now();
        let mut tx = self.begin().await?;
        let outcome = self.cancel_locked(&mut tx, id, reason, now).await;
        finish(tx, outcome).await
    }

    async fn describe(&self, id: &ExecutionId) -> Result<ExecutionSnapshot> {
        self.check_id(id)?;
        let row = sqlx::query("SELECT * FROM executions WHERE partition = $1 AND uuid = $2")
            .bind(part(id.partition()))
            .bind(id.uuid())
            .fetch_optional(&self.inner.pool)
            .await
            .map_err(map)?
            .ok_or_else(|| EngineError::NotFound { id: id.clone() })?;
        self.snapshot(&row)
    }

    async fn wait_for_work(
        &self,
        namespace: &Namespace,
        lanes: &[Lane],
        timeout: Duration,
    ) -> Result<()> {
        self.inner.listener.ensure(&self.inner.wake).await?;
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
        let row = sqlx::query(sql::PROMOTE)
            .bind(part(partition))
            .bind(now.as_millis())
            .bind(limit)
            .bind(&self.inner.channel)
            .fetch_one(&self.inner.pool)
            .await
            .map_err(map)?;
        let processed: i64 = col(&row, "processed")?;
        for lane in col::<Vec<String>>(&row, "lanes")? {
            if let Some((namespace, lane)) = lane.split_once(' ') {
                self.inner.wake.notify(namespace, lane);
            }
        }
        Ok(ScanReport {
            processed: processed.max(0) as u64,
            next_due: col::<Option<i64>>(&row, "next_due")?.map(Timestamp::from_millis),
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
        let rows = sqlx::query(
            "SELECT * FROM executions WHERE partition = $1 AND state = 'running' \
             AND lease_expires_at <= $2 ORDER BY lease_expires_at, uuid LIMIT $3 \
             FOR UPDATE SKIP LOCKED",
        )
        .bind(part(partition))
        .bind(now.as_millis())
        .bind(limit)
        .fetch_all(&mut *tx)
        .await
        .map_err(map)?;
        let mut settle = SettleArrays::default();
        for row in &rows {
            let snap = self.snapshot(row)?;
            let error = format!(
                "lease expired: worker {} did not renew attempt {} before {}",
                snap.worker_id.as_ref().map(|w| w.as_str()).unwrap_or("?"),
                snap.attempts,
                snap.lease_expires_at
                    .map(|t| t.to_string())
                    .unwrap_or_default()
            );
            let failure = Failure::retryable(error);
            let error = self.inner.limits.clip_text(failure.error.clone());
            settle.push(&snap, error, &failure, now);
        }
        let mut woken = Vec::new();
        if !rows.is_empty() {
            for row in settle
                .run(
                    &mut tx,
                    AttemptOutcome::LeaseExpired,
                    now,
                    &self.inner.channel,
                )
                .await?
            {
                let snap = self.snapshot(&row)?;
                if snap.state == State::Waiting {
                    woken.push((snap.namespace, snap.lane));
                }
            }
        }
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
        let due: Vec<Uuid> = sqlx::query_scalar(
            "SELECT uuid FROM executions WHERE partition = $1 AND deadline IS NOT NULL \
             AND finished_at IS NULL AND deadline <= $2 ORDER BY deadline, uuid LIMIT $3 \
             FOR UPDATE SKIP LOCKED",
        )
        .bind(part(partition))
        .bind(now.as_millis())
        .bind(limit)
        .fetch_all(&mut *tx)
        .await
        .map_err(map)?;
        let row = sqlx::query(sql::EXPIRE)
            .bind(part(partition))
            .bind(&due)
            .bind(now.as_millis())
            .fetch_one(&mut *tx)
            .await
            .map_err(map)?;
        tx.commit().await.map_err(map)?;
        let processed: i64 = col(&row, "processed")?;
        Ok(ScanReport {
            processed: processed.max(0) as u64,
            next_due: col::<Option<i64>>(&row, "next_due")?.map(Timestamp::from_millis),
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
        let doomed: Vec<Uuid> = sqlx::query_scalar(
            "SELECT uuid FROM executions WHERE partition = $1 AND finished_at IS NOT NULL \
             AND finished_at <= $2 ORDER BY finished_at, uuid LIMIT $3 FOR UPDATE SKIP LOCKED",
        )
        .bind(part(partition))
        .bind(cutoff.as_millis())
        .bind(limit)
        .fetch_all(&mut *tx)
        .await
        .map_err(map)?;
        let row = sqlx::query(sql::TRIM)
            .bind(part(partition))
            .bind(&doomed)
            .fetch_one(&mut *tx)
            .await
            .map_err(map)?;
        tx.commit().await.map_err(map)?;
        let processed: i64 = col(&row, "processed")?;
        Ok(ScanReport {
            processed: processed.max(0) as u64,
            next_due: col::<Option<i64>>(&row, "oldest")?
                .map(|t| Timestamp::from_millis(t).saturating_add(retention)),
        })
    }
    async fn sync_ownership(&self, node: &NodeId, ttl: Duration) -> Result<Ownership> {
        self.inner.limits.check_lease(ttl)?;
        let now = self.now();
        let expires = now.saturating_add(ttl);
        let count = i64::from(self.inner.partitions.get());
        let mut tx = self.begin().await?;
        // One heartbeat at a time per deployment: the decisions below read
        // other nodes' ownership and must not interleave with theirs.
        sqlx::query("SELECT 1 FROM baton_meta WHERE key = 'partitions' FOR UPDATE")
            .execute(&mut *tx)
            .await
            .map_err(map)?;
        let live: i64 = sqlx::query_scalar(
            "WITH me AS (\
                 INSERT INTO engine_nodes (node, expires_at) VALUES ($1, $2) \
                 ON CONFLICT (node) DO UPDATE SET expires_at = excluded.expires_at), \
             lapsed AS (DELETE FROM engine_nodes WHERE expires_at <= $3 AND node <> $1), \
             slots AS (INSERT INTO partition_owners (partition) \
                 SELECT generate_series(0, $4 - 1) ON CONFLICT (partition) DO NOTHING) \
             SELECT 1 + count(*) FROM engine_nodes WHERE node <> $1 AND expires_at > $3",
        )
        .bind(node.as_str())
        .bind(expires.as_millis())
        .bind(now.as_millis())
        .bind(count as i32)
        .fetch_one(&mut *tx)
        .await
        .map_err(map)?;
        let target = (count + live - 1) / live;
        let mine: Vec<i16> = sqlx::query_scalar(
            "SELECT partition FROM partition_owners WHERE owner = $1 AND expires_at > $2 \
             AND partition < $3 ORDER BY partition",
        )
        .bind(node.as_str())
        .bind(now.as_millis())
        .bind(count as i16)
        .fetch_all(&mut *tx)
        .await
        .map_err(map)?;
        let keep = usize::try_from(target)
            .unwrap_or(usize::MAX)
            .min(mine.len());
        let mut owned: Vec<i16> = mine[..keep].to_vec();
        let surplus: Vec<i16> = mine[keep..].to_vec();
        let want = target - owned.len() as i64;
        if want > 0 {
            let free: Vec<i16> = sqlx::query_scalar(
                "SELECT partition FROM partition_owners WHERE partition < $1 \
                 AND (owner IS NULL OR expires_at <= $2) ORDER BY partition LIMIT $3",
            )
            .bind(count as i16)
            .bind(now.as_millis())
            .bind(want)
            .fetch_all(&mut *tx)
            .await
            .map_err(map)?;
            owned.extend(free);
        }
        sqlx::query(
            "UPDATE partition_owners \
             SET owner = CASE WHEN partition = ANY($1) THEN $3 END, \
                 expires_at = CASE WHEN partition = ANY($1) THEN $4::bigint END \
             WHERE partition = ANY($1) OR partition = ANY($2)",
        )
        .bind(&owned)
        .bind(&surplus)
        .bind(node.as_str())
        .bind(expires.as_millis())
        .execute(&mut *tx)
        .await
        .map_err(map)?;
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
        sqlx::query(
            "WITH freed AS (UPDATE partition_owners SET owner = NULL, expires_at = NULL \
             WHERE owner = $1) DELETE FROM engine_nodes WHERE node = $1",
        )
        .bind(node.as_str())
        .execute(&self.inner.pool)
        .await
        .map_err(map)?;
        Ok(())
    }
}

#[async_trait]
impl AdminBackend for PostgresBackend {
    async fn list(&self, filter: &ListFilter, page: Page) -> Result<ListPage> {
        page.validate()?;
        let mut qb: QueryBuilder<'_, Postgres> =
            QueryBuilder::new("SELECT * FROM executions WHERE namespace = ");
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
            qb.push(" AND tags @> jsonb_build_object(")
                .push_bind(key.as_str())
                .push("::text, ")
                .push_bind(value.as_str())
                .push("::text)");
        }
        if let Some(cursor) = page.cursor {
            qb.push(" AND uuid > ").push_bind(cursor.after_uuid());
        }
        qb.push(" ORDER BY uuid LIMIT ")
            .push_bind(page.limit as i64 + 1);
        let rows = qb.build().fetch_all(&self.inner.pool).await.map_err(map)?;
        let more = rows.len() > page.limit;
        let items = rows
            .iter()
            .take(page.limit)
            .map(|r| self.snapshot(r))
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
            "SELECT lane, state, count(*) FROM executions WHERE namespace = $1 GROUP BY lane, state",
        )
        .bind(namespace.as_str())
        .fetch_all(&self.inner.pool)
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
             ) SELECT name FROM ns WHERE name IS NOT NULL LIMIT $1",
        )
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.inner.pool)
        .await
        .map_err(map)?;
        names
            .iter()
            .map(|(n,)| baton_core::stored::parse("namespace", "executions", n))
            .collect()
    }

    async fn partition_owners(&self) -> Result<Vec<PartitionOwner>> {
        let now = self.now();
        let rows: Vec<(i16, Option<String>, Option<i64>)> = sqlx::query_as(
            "SELECT partition, owner, expires_at FROM partition_owners \
             WHERE owner IS NOT NULL AND expires_at > $1 ORDER BY partition",
        )
        .bind(now.as_millis())
        .fetch_all(&self.inner.pool)
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
        let rows = sqlx::query(
            "SELECT a.*, e.uuid IS NOT NULL AS found \
             FROM (SELECT 1) one \
             LEFT JOIN executions e ON e.partition = $1 AND e.uuid = $2 \
             LEFT JOIN attempts a ON a.partition = $1 AND a.execution_uuid = $2 \
             ORDER BY a.number",
        )
        .bind(part(id.partition()))
        .bind(id.uuid())
        .fetch_all(&self.inner.pool)
        .await
        .map_err(map)?;
        let found = match rows.first() {
            Some(row) => col::<bool>(row, "found")?,
            None => false,
        };
        if !found {
            return Err(EngineError::NotFound { id: id.clone() });
        }
        rows.iter()
            .filter(|r| matches!(col::<Option<i32>>(r, "number"), Ok(Some(_))))
            .map(|r| read::attempt(r, id))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_options_are_split_from_driver_options() {
        let c = PostgresConfig::from_url("postgresql://u@h/db").unwrap();
        assert_eq!(c.schema, DEFAULT_SCHEMA);
        assert_eq!(c.url, "postgresql://u@h/db");
        assert!(c.partitions.is_none());
        let c = PostgresConfig::from_url("postgres://u@h/db?max_connections=4&schema=a_1").unwrap();
        assert_eq!(c.max_connections, 4);
        assert_eq!(c.schema, "a_1");
        for bad in [
            "postgres://h/db?partitions=0",
            "postgres://h/db?partitions=x",
            "postgres://h/db?schema=",
            "postgres://h/db?schema=pg_x",
            "postgres://h/db?schema=9a",
            "postgres://h/db?max_connections=0",
            "redis://x",
        ] {
            assert!(PostgresConfig::from_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    }

    #[test]
    fn migrations_are_numbered_like_sqlite() {
        assert_eq!(latest_schema_version(), 1);
    }
}
