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
//! - Concurrent `create` calls without keys, parents or dependencies are
//!   combined too, with at most two statements running per instance: a
//!   lone call is written at once, and calls arriving under load share the
//!   next statement. A call's executions outside flows and sessions are
//!   placed in one partition (calls take the partitions in turn), so its
//!   statements, and the claims and completes of its work, write one
//!   partition child rather than all eight.
//! - Idempotency keys live in their own table whose primary key is the
//!   dedup scope; `ON CONFLICT DO NOTHING` makes concurrent creates with one
//!   key create exactly one execution.
//! - Child keys are unique per parent by a partial unique index; a create
//!   takes a transaction-scoped advisory lock per (parent, child key) before
//!   it looks the key up, so concurrent creates of one child create it once
//!   and the others answer it.
//! - A cancel's cascade locks each page of children it reads (`FOR UPDATE`,
//!   in id order) before it cancels the unfinished ones, so a child
//!   completed, failed or claimed concurrently is judged as that writer left
//!   it.
//! - A create of a dependent locks its upstreams while it reads their
//!   states and marks them as having dependents; every writer that finishes
//!   an execution reads `has_dependents` under the execution's row lock, so
//!   an upstream finishing concurrently is either counted at create or tells
//!   the new dependent. Writers that tell dependents lock the flow's root
//!   first (see `flow::deps`).
//! - Signals are rows of their own table, numbered per execution; every
//!   writer of an execution's signals (`signal`, `suspend`, the timeout
//!   pass) holds the execution's row lock first, so numbering, idempotency
//!   keys and which buffered signals a wait consumes are judged as the
//!   previous writer left them (see `wait`). The timeout pass locks with
//!   `SKIP LOCKED`; a timeout that fails or cancels locks the flow's root
//!   and the parent first, as the expiry pass does.
//! - Steps are rows of their own table, one per name; `record_step` judges
//!   the lease and the stored step under the execution's row lock, so
//!   concurrent records of one step act one after the other and the step
//!   count matches the rows (see `memory`). A claim reads the done steps in
//!   its own statement, only for executions that recorded some.
//! - Key-value state, custom status and progress frames are written the
//!   same way: judged under the execution's row lock, one transaction per
//!   write, so state keys stay within their count and frames take
//!   consecutive numbers.
//! - `wait_for_change` marks the execution watched (after its `LISTEN` is
//!   in place) before it reads; a trigger announces the changes of watched
//!   executions with a `NOTIFY` sent at commit, so a change either is in
//!   the reader's read or wakes it, and executions nobody watches send
//!   nothing (see `memory::wait_for_change` and migration 0008).
//! - Operator edits of priority and tags lock the execution's row alone
//!   and wait for nothing else while they hold it. A revoke locks as
//!   `fail` does (the flow's root when it has dependents, the parent, then
//!   the execution) and settles through the reclaim pass's statement. The
//!   worker registry is written by single statements outside any
//!   transaction, its stale rows taken with `SKIP LOCKED` (see `ops`).
//! - A pause or resume of one execution locks its row alone, as an edit
//!   does; a pause of a running one ends its attempt under that lock, so
//!   the worker's complete (whose statement requires `running`) either
//!   committed first or finds the lease dead. Tree pauses and resumes, and
//!   replays, lock the flow's root and the parent first, as a cancel does;
//!   their walks lock each page of children before changing it, and what
//!   they do not reach is queued for the cascade pass. A paused dependent
//!   is locked and judged like a blocked one; a verdict that finishes it
//!   acts at once, a release waits for its resume.
//! - A delete locks the flow's root and the parent first, as a cancel
//!   does, then the execution, so nothing reopens or adds to the subtree
//!   it judges; a worker's complete either committed first or finds the
//!   execution gone. Deleting and trimming remove an execution through one
//!   statement (see `manage`).
//! - Paused lanes are rows of `paused_lanes`, read by the claim statement
//!   in its own snapshot: a claim that started before a `pause_lane`
//!   committed may still take work of the lane, none that starts after
//!   does (see `sql/claim.sql`).
//! - Retention rules are rows of `retention_rules`; their writers take the
//!   table's lock (no reader waits for it), so the count of rules is judged
//!   alone. A create stamps each execution with the keep of the rule that
//!   covers it in the create statement's snapshot; the trim pass locks the
//!   due roots with `SKIP LOCKED` and judges each by the rules it reads
//!   after them, so a rule that lengthens the keep protects an execution
//!   whatever keep it was stamped with (see `scan::trim_in`).
//!
//! ## Limits
//! Limits are rows of `limits`; a key's running count is the number of
//! `running` executions counted under it, read when a claim needs it (no
//! counter, no trigger), so a run's slot is free in the transaction that
//! moves it out of `running`, however it ends. The claim statement probes
//! `limits` for its namespace and lanes: a claim no limit covers stays that
//! one statement; one a limit covers takes nothing there and goes through
//! one transaction that locks the covering limits `FOR UPDATE` in name
//! order (limited claimers sharing a limit serialise there, which makes a
//! cap exact under concurrent claimers and processes), counts, reads
//! candidates in claim order past the keys without room, and claims what
//! the limits admit through the statement's shared tail. `set_limit` and
//! `remove_limit` take the table in ACCESS EXCLUSIVE mode, so they wait
//! for the claims in flight and every claim after them judges by the new
//! limits; claims of the whole deployment pause for that short
//! transaction (see `limits`).
//!
//! ## Time
//! Every stored instant is BIGINT milliseconds from the injected
//! [`Clock`](baton_core::Clock); the server's `now()` is never used, so
//! `describe` answers exactly what SQLite answers for the same history.

mod admin;
mod backend;
mod claim;
mod combine;
mod combine_create;
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
mod read;
mod scan;
mod stats;
#[cfg(test)]
mod testing;
mod wait;
mod wake;

pub use config::PostgresConfig;

use std::str::FromStr;
use std::sync::Arc;

use baton_core::{
    EngineError, ExecutionId, ExecutionSnapshot, Limits, PartitionCount, PartitionId, Result,
    SharedClock, Timestamp,
};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{PgConnection, Postgres};

use errors::map;
pub use migrate::latest_version as latest_schema_version;

/// The statements of this backend, embedded from `sql/`.
mod sql {
    pub const CREATE: &str = include_str!("../sql/create.sql");
    pub const EXISTING_KEYS: &str = include_str!("../sql/existing_keys.sql");
    /// The claim statement: its head picks the work, the shared tail
    /// leases it.
    pub const CLAIM: &str = concat!(
        include_str!("../sql/claim.sql"),
        include_str!("../sql/claim_tail.sql")
    );
    /// The claim of the executions a limited claim chose, ending as
    /// [`CLAIM`] does.
    pub const CLAIM_CHOSEN: &str = concat!(
        include_str!("../sql/claim_chosen.sql"),
        include_str!("../sql/claim_tail.sql")
    );
    pub const RENEW: &str = include_str!("../sql/renew.sql");
    pub const COMPLETE: &str = include_str!("../sql/complete.sql");
    pub const COMPLETE_MANY: &str = include_str!("../sql/complete_many.sql");
    pub const SETTLE: &str = include_str!("../sql/settle.sql");
    pub const CANCEL: &str = include_str!("../sql/cancel.sql");
    pub const CASCADE_CANCEL: &str = include_str!("../sql/cascade_cancel.sql");
    pub const PAUSE: &str = include_str!("../sql/pause.sql");
    pub const PROMOTE: &str = include_str!("../sql/promote.sql");
    pub const EXPIRE: &str = include_str!("../sql/expire.sql");
    pub const TRIM: &str = include_str!("../sql/trim.sql");
}

/// The schema used when none is configured.
pub const DEFAULT_SCHEMA: &str = "baton";

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
    wake: Arc<baton_core::raw::Wakeups>,
    listener: wake::Listener,
    /// Readers waiting for executions to change (`wait_for_change`), woken
    /// by `changes`.
    watchers: Arc<baton_core::raw::Watchers>,
    changes: wake::Listener,
    /// The worker registry writes this process made (see `ops`).
    sightings: baton_core::raw::Sightings,
    completer: tokio::sync::mpsc::UnboundedSender<combine::Pending>,
    /// Queue of the combined creates (`combine_create`).
    creator: tokio::sync::mpsc::UnboundedSender<combine_create::Pending>,
    /// The rotation of partitions that create calls place their
    /// executions in (`create::place`).
    placement: baton_core::raw::Placement,
    /// The task keeping the statistics of a growing `executions` current
    /// (`stats`).
    statistics: tokio::task::JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.listener.stop();
        self.changes.stop();
        self.statistics.abort();
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
                    baton_core::raw::url::redact(&config.url)
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
        // Each listener holds one connection of its own for as long as it
        // runs, opened when it starts.
        let listen_pool = || {
            PgPoolOptions::new()
                .max_connections(1)
                .min_connections(0)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_lazy_with(options.clone())
        };
        // The complete combiner writes on a connection of its own, planned
        // with `combine::PLANNER` (one batch at a time, so one connection).
        let completer_pool = PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .acquire_timeout(config.acquire_timeout)
            .connect_lazy_with(options.clone().options(combine::PLANNER));
        let channel = format!("baton_work_{}", config.schema);
        // The name migration 0008's trigger sends on: derived from the
        // schema it fires in (at most 14 + 48 characters, within the 63 a
        // channel name may hold).
        let changed_channel = format!("baton_changed_{}", config.schema);
        let wake: Arc<baton_core::raw::Wakeups> = Arc::default();
        let watchers: Arc<baton_core::raw::Watchers> = Arc::default();
        Ok(PostgresBackend {
            inner: Arc::new(Inner {
                completer: combine::start(
                    completer_pool,
                    combine::Flow {
                        channel: channel.clone(),
                        partitions,
                        budget: config.limits.cascade_budget,
                    },
                ),
                creator: combine_create::start(pool.clone(), channel.clone()),
                placement: baton_core::raw::Placement::default(),
                statistics: stats::start(pool.clone(), &config.schema),
                pool,
                listener: wake::Listener::new(listen_pool(), channel.clone(), wake.clone()),
                changes: wake::Listener::new(listen_pool(), changed_channel, watchers.clone()),
                channel,
                schema: config.schema,
                partitions,
                limits: config.limits,
                clock: config.clock,
                durable,
                wake,
                watchers,
                sightings: baton_core::raw::Sightings::default(),
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
    // The row exists by now (inserted above or earlier), so nothing is left
    // to record whatever the verdict says.
    Ok(baton_core::raw::rules::reconcile_partitions(Some(&text), wanted, "schema")?.count)
}
