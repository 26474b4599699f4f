//! The contract every backend satisfies: [`EngineBackend`] (the hot path and
//! the scheduler's per-partition passes) and [`AdminBackend`] (reads for
//! operators and dashboards).
//!
//! # Contract shared by every method
//!
//! - **Validation first.** Input is checked before anything is written; a call
//!   that returns [`InvalidInput`](EngineError::InvalidInput) changed nothing.
//!   Ids are checked against the deployment's partition count; the scheduler
//!   passes reject a partition outside it and a `limit` of 0.
//! - **Atomicity.** Each method documents its unit of atomicity. On SQL
//!   backends it is one transaction; on Valkey it is one `FCALL` on the keys of
//!   one partition. An operation on one execution is always atomic.
//! - **Time.** Every decision reads the backend's [`Clock`](crate::Clock).
//! - **Fencing.** Operations that take a [`LeaseToken`] act only if the token is
//!   the current, unexpired lease of a running execution; otherwise they fail
//!   with [`LeaseLost`](EngineError::LeaseLost) (or, for replays of a finished
//!   attempt, answer as described per method) and change nothing.
//! - **Terminal states never change.** Repeating a terminal operation with the
//!   same outcome succeeds and changes nothing; asking for a different outcome
//!   is a [`Conflict`](EngineError::Conflict).
//! - **Retryable errors.** [`Unavailable`](EngineError::Unavailable) and
//!   [`Contention`](EngineError::Contention) may be retried. `complete`,
//!   `fail`, `release`, `cancel`, `renew` and the scheduler passes are safe
//!   to repeat (`signal` when it carries an idempotency key; `suspend` once
//!   it suspended — a suspend satisfied at once keeps the lease, and a
//!   repeat is a new wait);
//!   `create` is when its items carry idempotency keys; `claim` is not
//!   idempotent (leases granted by a lost answer expire and are reclaimed).
//! - **Deadlines.** Once `deadline <= now` an execution is as good as
//!   expired: it is not claimed, its lease is not renewed, and `complete` /
//!   `fail` answer `LeaseLost`, even before `expire_deadlines` has run.
//!
//! # Using a backend
//!
//! ```no_run
//! # async fn demo(backend: std::sync::Arc<dyn baton_core::EngineBackend>) -> baton_core::Result<()> {
//! use baton_core::*;
//! let ns = Namespace::new("shop")?;
//! let lane = Lane::new("emails")?;
//! let created = backend
//!     .create(vec![NewExecution::new(ns.clone(), lane.clone(), Kind::new("email.send")?, b"{}".to_vec())])
//!     .await?;
//! let claims = backend.claim(ClaimRequest::new(ns, lane, WorkerId::new("w1")?, 10)).await?;
//! for c in claims {
//!     backend.complete(&c.lease, b"\"sent\"".to_vec()).await?;
//! }
//! # let _ = created;
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::Result;
use crate::id::{ExecutionId, LeaseToken, PartitionCount, PartitionId};
use crate::model::{
    AttemptRecord, CancelRequest, Cancellation, ChangeMark, Claim, ClaimRequest, CreateOutcome,
    ExecutionSnapshot, Failure, ListFilter, ListPage, NewExecution, NewSignal, Ownership, Page,
    PartitionOwner, ProgressFrame, RenewOutcome, RenewRequest, ScanReport, Signal, SignalOutcome,
    StateCounts, StateEntry, StepOutcome, StepRecord, SuspendOutcome, SuspendRequest, Tree,
    WorkerInfo,
};
use crate::names::{Lane, Namespace, NodeId, StateKey, StepName, TagKey};
use crate::policy::Limits;

mod admin;
pub use admin::{AdminBackend, EngineBackendExt};

/// Which kind of backend a deployment runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum BackendKind {
    /// The embedded SQLite backend (`sqlite://PATH`, `sqlite::memory:`).
    Sqlite,
    /// Postgres (`postgres://…`, `postgresql://…`).
    Postgres,
    /// Valkey or Redis, standalone or cluster (`redis://…`, `valkey://…`,
    /// `redis+cluster://…`, `valkey+cluster://…`).
    Valkey,
}

impl BackendKind {
    /// Every kind.
    pub const ALL: [BackendKind; 3] = [
        BackendKind::Sqlite,
        BackendKind::Postgres,
        BackendKind::Valkey,
    ];

    /// The kind's name: `sqlite`, `postgres`, `valkey`.
    pub const fn as_str(self) -> &'static str {
        match self {
            BackendKind::Sqlite => "sqlite",
            BackendKind::Postgres => "postgres",
            BackendKind::Valkey => "valkey",
        }
    }

    /// The kind a backend URL names by its scheme; `None` for a URL that
    /// names no backend (`http://` names a server, not a backend).
    ///
    /// ```
    /// use baton_core::BackendKind;
    /// assert_eq!(BackendKind::of_url("sqlite::memory:"), Some(BackendKind::Sqlite));
    /// assert_eq!(BackendKind::of_url("postgresql://db/baton"), Some(BackendKind::Postgres));
    /// assert_eq!(BackendKind::of_url("valkey+cluster://h1:7000,h2:7000"), Some(BackendKind::Valkey));
    /// assert_eq!(BackendKind::of_url("http://127.0.0.1:7420"), None);
    /// ```
    pub fn of_url(url: &str) -> Option<BackendKind> {
        match url.split(':').next().unwrap_or_default() {
            "sqlite" => Some(BackendKind::Sqlite),
            "postgres" | "postgresql" => Some(BackendKind::Postgres),
            "redis" | "valkey" | "redis+cluster" | "valkey+cluster" => Some(BackendKind::Valkey),
            _ => None,
        }
    }
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a backend supports, so callers ask instead of being surprised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// Which backend this is.
    pub backend: BackendKind,
    /// [`EngineBackend::wait_for_work`] is woken by submissions from *other*
    /// processes too (not only from this one).
    pub cross_process_wakeups: bool,
    /// Several engine processes may share this backend.
    pub multi_process: bool,
    /// Acknowledged writes survive a crash of the backend's host (depends on
    /// configuration: fsync, AOF).
    pub durable: bool,
    /// The limits this backend enforces.
    pub limits: Limits,
}

impl Capabilities {
    /// Capabilities of a backend of kind `backend` with `limits`; every flag
    /// false until set.
    pub fn new(backend: BackendKind, limits: Limits) -> Self {
        Capabilities {
            backend,
            cross_process_wakeups: false,
            multi_process: false,
            durable: false,
            limits,
        }
    }
}

/// The engine's contract with a storage backend.
///
/// Object safe: held as `Arc<dyn EngineBackend>` by the engine, the server and
/// the SDK. Implementations are cheap to share across tasks.
#[async_trait]
pub trait EngineBackend: Send + Sync + std::fmt::Debug + 'static {
    /// What this backend supports.
    fn capabilities(&self) -> Capabilities;

    /// The deployment's partition count, as recorded in the backend.
    fn partitions(&self) -> PartitionCount;

    /// Creates executions.
    ///
    /// # Behavior
    /// - Every item is validated first ([`NewExecution::validate`]); one bad
    ///   item rejects the whole batch with an error naming it, and nothing is
    ///   written.
    /// - A new execution is `delayed` when its start time is in the future,
    ///   else `waiting`.
    /// - An item whose `idempotency_key` already exists in the same namespace,
    ///   lane and session (no session counts as one; including earlier in the
    ///   same batch) creates nothing and answers the existing id with
    ///   `created: false` and its current state. Dedup lasts as long as the
    ///   first execution is retained.
    /// - An execution with a session is created in the session's partition
    ///   ([`rules::session_partition`](crate::raw::rules::session_partition)),
    ///   where its lock lives.
    /// - Answers one [`CreateOutcome`] per item, in request order.
    ///
    /// # Atomicity
    /// SQL backends: the batch is one transaction. Valkey: each partition's
    /// share of the batch is one `FCALL`; if the call fails midway some items
    /// may exist, and repeating it with idempotency keys is safe.
    ///
    /// # Errors
    /// `InvalidInput` (batch size outside `1..=max_batch`, payload over the
    /// limit, negative delay, zero attempts, deadline in the past, …),
    /// `Unavailable`, `Contention`.
    async fn create(&self, executions: Vec<NewExecution>) -> Result<Vec<CreateOutcome>>;

    /// Claims up to `max` `waiting` executions from the request's lanes.
    ///
    /// # Behavior
    /// - Only executions of the request's namespace and lanes, in state
    ///   `waiting`, whose required capabilities are a subset of the worker's,
    ///   and whose deadline (if any) is still in the future (`deadline > now`).
    /// - Order: higher priority first, then the one that became eligible
    ///   earliest, then the lower id. Exact for a single claimer; concurrent
    ///   claimers may interleave, but no eligible execution is skipped forever.
    /// - Each claimed execution becomes `running`: its attempt count grows by
    ///   one, an attempt record is opened for `worker_id`, and a fresh lease
    ///   expiring at `now + lease_ttl` is returned.
    /// - An execution is handed to at most one claimer at a time.
    /// - Versions: an execution with a version is taken only by a claim
    ///   whose `versions` range accepts it; one without, by every claim.
    /// - Sessions: an execution with a session is taken only while nobody
    ///   holds the session's lock, the lock lapsed, or the claiming worker
    ///   holds it ([`rules::session_claimable`](crate::raw::rules::session_claimable)).
    ///   Claiming it takes the lock for the worker until
    ///   [`rules::session_lock_until`](crate::raw::rules::session_lock_until)
    ///   (the lease expiry or `session_idle` from now, whichever is later),
    ///   in the claim's atomic unit: two workers never hold one session.
    ///   Work of a session another worker holds is passed over, never
    ///   waited for.
    /// - No eligible work answers an empty list at once (see
    ///   [`wait_for_work`](Self::wait_for_work) for waiting).
    ///
    /// # Atomicity
    /// SQL: one transaction with row locks that concurrent claimers skip.
    /// Valkey: one `FCALL` per partition visited.
    ///
    /// # Idempotency
    /// Not idempotent: each call grants new leases. A claim whose answer was
    /// lost leaves leases that expire and are reclaimed.
    ///
    /// # Errors
    /// `InvalidInput` (max, lanes, lease ttl out of range), `Unavailable`,
    /// `Contention`.
    async fn claim(&self, request: ClaimRequest) -> Result<Vec<Claim>>;

    /// Renews every lease a worker holds, in one call.
    ///
    /// # Behavior
    /// Per lease, in request order:
    /// - `renewed` with the new expiry `now + lease_ttl` when the token is the
    ///   current unexpired lease of a `running` execution held by `worker_id`;
    /// - `cancelled` when the token's attempt was ended by a cancel;
    /// - `lost` otherwise (expired, reclaimed, superseded, another worker's,
    ///   unknown or trimmed execution, deadline passed). A lost lease is never
    ///   revived: an expired lease cannot be renewed even before the scanner
    ///   reclaims it.
    ///
    /// # Atomicity
    /// Each lease is renewed atomically; the batch is one transaction on SQL
    /// backends and pipelined per partition on Valkey.
    ///
    /// Renewing changes only the lease expiry; `updated_at` (the time of the
    /// last state change) stays. A renewed run of a session extends the
    /// session's lock its worker holds, in the same unit, to
    /// [`rules::session_lock_until`](crate::raw::rules::session_lock_until)
    /// with the idle time of the worker's latest claim of the session's work.
    ///
    /// # Idempotency
    /// Repeating a renew moves the expiry again; harmless.
    ///
    /// # Errors
    /// `InvalidInput` (batch size, lease ttl), `Unavailable`, `Contention`.
    /// Malformed or foreign tokens are not errors: they report `lost`.
    async fn renew(&self, request: RenewRequest) -> Result<Vec<RenewOutcome>>;

    /// Completes the attempt fenced by `lease` with `result`.
    ///
    /// # Behavior
    /// - With the current unexpired lease: the execution becomes `completed`,
    ///   the result is stored, the attempt is closed as `completed`; answers the
    ///   new snapshot.
    /// - Replay: if this lease's attempt already completed the execution with
    ///   the same result, answers the snapshot and changes nothing; with a
    ///   different result, `Conflict`.
    /// - If this lease's attempt ended as `failed`, `Conflict`.
    /// - Any other stale lease (expired, reclaimed, cancelled, deadline
    ///   passed, superseded, forged nonce): `LeaseLost`, nothing changes.
    ///
    /// # Atomicity
    /// Each complete is atomic and acknowledged only after it is durable. A
    /// backend may commit several concurrent completes in one transaction /
    /// one `FCALL` (each judged on its own lease as above).
    ///
    /// # Errors
    /// `NotFound`, `InvalidInput` (result over the limit, id of another
    /// deployment), `LeaseLost`, `Conflict`, `Unavailable`.
    async fn complete(&self, lease: &LeaseToken, result: Vec<u8>) -> Result<ExecutionSnapshot>;

    /// Records a failed attempt and decides what comes next from the stored
    /// retry policy.
    ///
    /// # Behavior
    /// - With the current unexpired lease: the attempt is closed as `failed`
    ///   with the error, which also becomes `last_error`. Then
    ///   [`RetryPolicy::decide`](crate::RetryPolicy::decide) runs with the
    ///   attempt number: a retry with zero delay makes the execution `waiting`
    ///   (leaving `run_at` as it was), a positive delay makes it `delayed`
    ///   with `run_at = now + delay`; giving up makes it `failed`. Answers the
    ///   new snapshot.
    /// - Replay: if this lease's attempt already ended as `failed`, answers the
    ///   current snapshot and changes nothing.
    /// - If this lease's attempt completed the execution, `Conflict`.
    /// - Any other stale lease: `LeaseLost`, nothing changes.
    ///
    /// # Atomicity
    /// One transaction / one `FCALL`.
    ///
    /// # Errors
    /// `NotFound`, `InvalidInput`, `LeaseLost`, `Conflict`, `Unavailable`.
    async fn fail(&self, lease: &LeaseToken, failure: Failure) -> Result<ExecutionSnapshot>;

    /// Hands back the lease of a running parent until its children have
    /// finished: the parent waits without a worker and runs again later.
    ///
    /// # Behavior
    /// - With a current lease and unfinished children: the attempt is
    ///   closed as `released` (the lease is dead at once: renew answers
    ///   `lost`, complete and fail `LeaseLost`), the execution becomes
    ///   `blocked` with `waiting_on: children(n)`. When its last child
    ///   finishes (any terminal state), in that child's own atomic unit, it
    ///   becomes `waiting` again (eligible at once, claimed like new work)
    ///   and its next claim is a new attempt. A wait consumes no attempt:
    ///   the retry policy counts failures only.
    /// - With a current lease and no unfinished children: nothing changes,
    ///   the answer is the running snapshot and the lease stays valid (a
    ///   child that finished before the call is never a lost wake-up).
    /// - Replay: if this lease's attempt already ended `released`, answers
    ///   the current snapshot and changes nothing.
    /// - Cancel and deadlines reach a blocked execution as any other.
    ///
    /// # Atomicity
    /// One transaction / one `FCALL` (children live in their parent's
    /// partition).
    ///
    /// # Errors
    /// `NotFound`, `InvalidInput`, `LeaseLost`, `Conflict` (the attempt
    /// already completed or failed), `Unavailable`.
    async fn wait_children(&self, lease: &LeaseToken) -> Result<ExecutionSnapshot>;

    /// Hands back the lease without consuming an attempt: what a worker
    /// shutting down does with work it will not finish.
    ///
    /// # Behavior
    /// - With a current lease: the attempt is closed as `released` (the
    ///   lease is dead at once), the execution is `waiting` again, eligible
    ///   now, and its next claim is a new attempt. The retry policy counts
    ///   failures only, so a release on the last attempt leaves the
    ///   execution `waiting`, never `failed`.
    /// - Replay: if this lease's attempt already ended `released`, answers
    ///   the current snapshot while no later attempt started.
    ///
    /// # Atomicity
    /// One transaction / one `FCALL`.
    ///
    /// # Errors
    /// `NotFound`, `InvalidInput`, `LeaseLost`, `Conflict` (the attempt
    /// already completed or failed), `Unavailable`.
    async fn release(&self, lease: &LeaseToken) -> Result<ExecutionSnapshot>;

    /// Suspends a running execution until signals arrive or a timer passes,
    /// without a worker.
    ///
    /// # Behavior
    /// - The request is validated first ([`SuspendRequest::validate`]).
    /// - With a current lease, when the signals the execution holds and no
    ///   earlier wait consumed already satisfy the request
    ///   ([`rules::satisfying`](crate::raw::rules::satisfying)): those
    ///   signals are consumed by this wait, which ends `signalled` at once;
    ///   the execution stays `running`, the lease stays valid, and the
    ///   answer is [`SuspendOutcome::Satisfied`] with them. No wake-up is
    ///   lost between a worker's check and its suspend.
    /// - Otherwise the attempt is closed as `released` (the lease is dead at
    ///   once), the execution is `suspended` with the wait in its snapshot
    ///   (`suspension`: waitpoints, condition, `timeout_at = now +
    ///   timeout`, `on_timeout`) and is not claimable. No attempt is
    ///   consumed. A signal that satisfies the wait makes it `waiting` (see
    ///   [`signal`](Self::signal)); its timeout is acted on by
    ///   [`timeout_due`](Self::timeout_due).
    /// - The claim after a wait is a new attempt; it carries how every
    ///   ended wait ended and the signals they consumed
    ///   ([`Claim::waits`](crate::Claim::waits), [`Claim::signals`](crate::Claim::signals)).
    /// - Replay: if this lease's attempt already ended `released`, answers
    ///   `Suspended` with the current snapshot while no later attempt
    ///   started. A suspend answered `Satisfied` kept the lease: calling
    ///   again is a new wait, not a replay.
    /// - Cancel, deadlines and retention reach a suspended execution as any
    ///   other.
    ///
    /// # Atomicity
    /// One transaction / one `FCALL`: the lease is judged, the held signals
    /// read, the verdict written.
    ///
    /// # Errors
    /// `NotFound`, `InvalidInput`, `LeaseLost`, `Conflict` (the attempt
    /// already completed or failed; more than [`Limits::max_waits`] waits),
    /// `Unavailable`.
    async fn suspend(&self, lease: &LeaseToken, request: SuspendRequest) -> Result<SuspendOutcome>;

    /// Delivers a signal to an execution.
    ///
    /// # Behavior
    /// Judged by [`rules::signal_admission`](crate::raw::rules::signal_admission):
    /// - a signal whose idempotency key the execution already holds is
    ///   `duplicate` and changes nothing;
    /// - a terminal execution answers `ignored` and stores nothing;
    /// - otherwise the signal is stored with the next number (`seq`) and
    ///   `received_at = now`. If the execution is `suspended` and its
    ///   buffered signals now satisfy its wait, those signals are consumed
    ///   by the wait, which ends `signalled`, and the execution becomes
    ///   `waiting`, eligible now: `resumed`. Else `buffered`: a later (or
    ///   the current, unsatisfied) wait consumes it.
    ///
    /// # Atomicity
    /// One transaction / one `FCALL`: store, evaluate and transition.
    ///
    /// # Idempotency
    /// With an idempotency key, repeating it answers `duplicate`; without
    /// one every call stores a signal.
    ///
    /// # Errors
    /// `NotFound`, `InvalidInput` (payload over the limit), `Conflict`
    /// ([`Limits::max_signals`] buffered signals held already),
    /// `Unavailable`.
    async fn signal(&self, id: &ExecutionId, signal: NewSignal) -> Result<SignalOutcome>;

    /// Records the outcome of a named step of the running attempt fenced
    /// by `lease`: the memory a retried attempt replays.
    ///
    /// # Behavior
    /// Judged by [`rules::judge_step`](crate::raw::rules::judge_step):
    /// - a new step is stored (`done` with its output, or `failed` with its
    ///   error and `failures: 1`), with the lease's attempt and `now`;
    /// - a done step is final: the same output again changes nothing and
    ///   answers the stored record; another output or a failure is a
    ///   `Conflict`;
    /// - a failed step takes the new record: `done`, or `failed` again with
    ///   `failures + 1` (a retry loop inside a step counts across
    ///   attempts).
    ///
    /// Every later claim of the execution carries the done steps' outputs
    /// ([`Claim::steps`](crate::Claim::steps)); steps survive reclaim,
    /// retry and waits, and are trimmed with the execution.
    ///
    /// # Atomicity
    /// One transaction / one `FCALL`.
    ///
    /// # Idempotency
    /// Repeating a done record with the same output is a no-op; repeating
    /// a failed record counts one more failure.
    ///
    /// # Errors
    /// `NotFound`, `InvalidInput` (output over the payload limit, error
    /// text with NUL), `LeaseLost` (the lease is not the current live one),
    /// `Conflict` (a done step, or [`Limits::max_steps`] steps already),
    /// `Unavailable`.
    async fn record_step(
        &self,
        lease: &LeaseToken,
        name: StepName,
        outcome: StepOutcome,
    ) -> Result<StepRecord>;

    /// Sets (`Some`) or clears (`None`) entry `key` of the key-value state
    /// of the running attempt's execution, fenced by `lease`.
    ///
    /// # Behavior
    /// Judged by [`rules::judge_state`](crate::raw::rules::judge_state):
    /// the same value again, or clearing a key not held, changes nothing; a
    /// new key beyond [`Limits::max_state_keys`] is a `Conflict`; otherwise
    /// the value is stored with the lease's attempt and `now` (or the key
    /// removed). The state is read by anyone
    /// ([`AdminBackend::state`](crate::AdminBackend::state)), survives
    /// reclaim, retry and waits, and is trimmed with the execution.
    ///
    /// # Atomicity
    /// One transaction / one `FCALL`.
    ///
    /// # Idempotency
    /// Repeating a write leaves the same state.
    ///
    /// # Errors
    /// `NotFound`, `InvalidInput` (value over
    /// [`Limits::max_value_bytes`]), `LeaseLost`, `Conflict` (a new key
    /// beyond the limit), `Unavailable`.
    async fn set_state(
        &self,
        lease: &LeaseToken,
        key: StateKey,
        value: Option<Vec<u8>>,
    ) -> Result<()>;

    /// Sets the custom status (any JSON, as bytes) of the running attempt's
    /// execution, fenced by `lease`, and answers its version.
    ///
    /// # Behavior
    /// Judged by [`rules::status_version`](crate::raw::rules::status_version):
    /// a status other than the stored one takes the next version (the
    /// first is 1); the same status again keeps the version. The snapshot
    /// carries both ([`custom_status`](crate::ExecutionSnapshot::custom_status),
    /// [`status_version`](crate::ExecutionSnapshot::status_version)); they
    /// stay after the execution finishes, until it is trimmed. A change
    /// wakes [`AdminBackend::wait_for_change`](crate::AdminBackend::wait_for_change).
    ///
    /// # Atomicity
    /// One transaction / one `FCALL`.
    ///
    /// # Idempotency
    /// Repeating a status answers the same version.
    ///
    /// # Errors
    /// `NotFound`, `InvalidInput` (status over
    /// [`Limits::max_value_bytes`]), `LeaseLost`, `Unavailable`.
    async fn set_status(&self, lease: &LeaseToken, status: Vec<u8>) -> Result<u64>;

    /// Appends a progress frame (any JSON, as bytes) to the running
    /// attempt's execution, fenced by `lease`, and answers its number.
    ///
    /// # Behavior
    /// The frame takes the execution's next number (the first is 1; the
    /// snapshot's [`progress_seq`](crate::ExecutionSnapshot::progress_seq)
    /// is the last), with the lease's attempt and `now`. At most
    /// [`Limits::max_progress_frames`] are kept: the append drops the
    /// oldest beyond it ([`rules::first_kept_frame`](crate::raw::rules::first_kept_frame)).
    /// Frames are read in order with
    /// [`AdminBackend::progress`](crate::AdminBackend::progress) and
    /// trimmed with the execution. An append wakes
    /// [`AdminBackend::wait_for_change`](crate::AdminBackend::wait_for_change).
    ///
    /// # Atomicity
    /// One transaction / one `FCALL`: number, store, drop.
    ///
    /// # Idempotency
    /// None: every call appends a frame.
    ///
    /// # Errors
    /// `NotFound`, `InvalidInput` (frame over
    /// [`Limits::max_value_bytes`]), `LeaseLost`, `Unavailable`.
    async fn append_progress(&self, lease: &LeaseToken, frame: Vec<u8>) -> Result<u64>;

    /// Cancels an execution and, unless the scope is
    /// [`Execution`](crate::CancelScope::Execution), its non-terminal descendants.
    ///
    /// # Behavior
    /// - Any non-terminal execution becomes `cancelled` with `reason`. A
    ///   running attempt is closed as `cancelled`; its worker learns it at its
    ///   next renew (`cancelled`) and its complete/fail answer `LeaseLost`.
    /// - Cancelling a `cancelled` execution keeps its snapshot (the first
    ///   reason stays); with scope `tree` it still reaches descendants that
    ///   are not terminal (so a cancel of one execution can be widened later).
    /// - Cancelling an execution in another terminal state is a `Conflict`.
    /// - Scope `tree` (the default): descendants are visited in the same
    ///   atomic unit, up to [`Limits::cascade_budget`](crate::Limits) of them;
    ///   every non-terminal one becomes `cancelled` with the reason
    ///   `cancelled with its ancestor <id>` (and `: <reason>` when one was
    ///   given), running ones as above. The answer counts them (`cascaded`).
    ///   A bigger subtree is queued: [`cascade_due`](Self::cascade_due)
    ///   finishes it in bounded steps and the answer says
    ///   `cascade_pending`.
    ///
    /// # Atomicity
    /// One transaction / one `FCALL` (a flow lives in one partition).
    ///
    /// # Errors
    /// `NotFound`, `InvalidInput` (id of another deployment, NUL in the
    /// reason), `Conflict`, `Unavailable`.
    async fn cancel(&self, id: &ExecutionId, request: CancelRequest) -> Result<Cancellation>;

    /// The current snapshot of an execution.
    ///
    /// # Behavior
    /// A pure read; identical, field for field, on every backend for the same
    /// history. Stored values outside Baton's vocabulary are `Corruption`,
    /// never defaulted.
    ///
    /// # Errors
    /// `NotFound`, `InvalidInput`, `Corruption`, `Unavailable`.
    async fn describe(&self, id: &ExecutionId) -> Result<ExecutionSnapshot>;

    /// Waits until work may be available in one of `lanes`, or `timeout`.
    ///
    /// # Behavior
    /// A hint, never a guarantee: correctness never depends on it (callers
    /// claim after it returns and treat an empty claim as normal). But it
    /// really waits, so that idle workers do not poll in a loop:
    /// - **It blocks.** It returns before `timeout` only after a wake-up: a
    ///   change that may have made work `waiting` (a submission, promotion,
    ///   retry or reclaim; a backend may wake more waiters than concerned),
    ///   or a (re)connection of its notification channel, which may have
    ///   missed such changes. With none of these it waits out the whole `timeout`;
    ///   returning at once is not a valid implementation.
    /// - **It wakes.** It returns promptly after a submission to one of
    ///   `lanes` made through this backend instance, even when that
    ///   submission raced with the start of the wait; see
    ///   [`Capabilities::cross_process_wakeups`] for other processes.
    ///
    /// The timeout is real time, not the backend's [`Clock`](crate::Clock).
    ///
    /// # Errors
    /// `Unavailable` when the backend's notification channel is broken.
    async fn wait_for_work(
        &self,
        namespace: &Namespace,
        lanes: &[Lane],
        timeout: Duration,
    ) -> Result<()>;

    /// Scheduler pass: promotes `delayed` executions of `partition` whose
    /// `run_at` has come (`run_at <= now`) to `waiting`, at most `limit` of
    /// them, earliest `run_at` first. `run_at` is kept in the snapshot.
    ///
    /// # Atomicity
    /// One transaction / one `FCALL`; each promotion is all-or-nothing.
    ///
    /// # Idempotency
    /// Running it twice promotes nothing the second time.
    async fn promote_due(&self, partition: PartitionId, limit: usize) -> Result<ScanReport>;

    /// Scheduler pass: reclaims `running` executions of `partition` whose lease
    /// expired (`lease_expires_at <= now`; a lease is valid while
    /// `now < lease_expires_at`), at most `limit`, earliest expiry first.
    ///
    /// # Behavior
    /// The attempt is closed as `lease_expired` with an error naming the
    /// worker; it counts as a failed, retryable attempt: the retry policy
    /// decides `waiting`, `delayed` or `failed`, exactly as
    /// [`fail`](Self::fail) would. A reclaimed run of a session releases
    /// the session's lock when the run's worker holds it (a worker whose
    /// lease lapsed is taken for dead: another takes the session over), and
    /// the pass drops the partition's lapsed session locks.
    ///
    /// # Atomicity
    /// One transaction / one `FCALL`.
    async fn reclaim_expired_leases(
        &self,
        partition: PartitionId,
        limit: usize,
    ) -> Result<ScanReport>;

    /// Scheduler pass: moves non-terminal executions of `partition` whose
    /// deadline has passed (`deadline <= now`) to `expired`, at most `limit`,
    /// earliest deadline first. A running attempt is
    /// closed as `expired` and its lease is lost.
    ///
    /// # Atomicity
    /// One transaction / one `FCALL`.
    async fn expire_deadlines(&self, partition: PartitionId, limit: usize) -> Result<ScanReport>;

    /// Scheduler pass: deletes finished flows of `partition` (an execution
    /// outside flows is a flow of one) whose root is due: `finished_at +
    /// keep <= now` both for the keep the root was stamped with at create
    /// and for the rule in force now, each being a retention rule covering
    /// the root
    /// ([`AdminBackend::set_retention`](crate::AdminBackend::set_retention))
    /// or else `retention`, the deployment's default (so a rule shortened
    /// after a root was created does not shorten its keep). Removed with
    /// everything they hold (attempts, results, idempotency keys, signals,
    /// steps, events), members newest first and the root last, at most
    /// `limit`, earliest due first. Afterwards `describe` answers
    /// `NotFound` and the idempotency key may be reused.
    ///
    /// Only due roots are read: one range read of the roots stamped with a
    /// rule's keep (`since + keep <= now`) and one of the rest (`since <=
    /// now - retention`), `since` being the finish or the last look at an
    /// open flow. Each is judged by
    /// [`rules::trim_verdict`](crate::raw::rules::trim_verdict) against the
    /// rules in force (one not due is re-stamped, where it is read when
    /// due); a root whose flow still has an unfinished member is looked at
    /// again a keep later ([`rules::trim_relook`](crate::raw::rules::trim_relook)).
    /// `next_due` is the earliest time a root left becomes due.
    ///
    /// # Atomicity
    /// One transaction / one `FCALL`.
    async fn trim_terminal(
        &self,
        partition: PartitionId,
        retention: Duration,
        limit: usize,
    ) -> Result<ScanReport>;

    /// Scheduler pass: acts on `suspended` executions of `partition` whose
    /// wait timed out (`timeout_at <= now`), at most `limit`, earliest
    /// first, as their `on_timeout` says
    /// ([`rules::timeout_verdict`](crate::raw::rules::timeout_verdict)):
    /// `resume` makes it `waiting`, eligible now (the wait ends `timed_out`
    /// and consumes the buffered signals of its waitpoints); `fail` makes
    /// it `failed` with an error naming the waitpoints (no attempt is
    /// consumed, no retry); `cancel` cancels it and its descendants as a
    /// cancel of scope `tree` would.
    ///
    /// # Atomicity
    /// One transaction / one `FCALL`.
    ///
    /// # Idempotency
    /// Running it twice acts on nothing the second time.
    async fn timeout_due(&self, partition: PartitionId, limit: usize) -> Result<ScanReport>;

    /// Scheduler pass: continues cancels whose subtree did not fit in their
    /// own call (see [`cancel`](Self::cancel)), visiting at most `limit`
    /// descendants of `partition`'s queued cascades, oldest queued first.
    /// `processed` counts the executions it cancelled; `next_due` is `now`
    /// while queued work remains, else `None`.
    ///
    /// # Atomicity
    /// One transaction / one `FCALL`; a step that fails leaves the queue as
    /// it was, and the next step repeats it.
    async fn cascade_due(&self, partition: PartitionId, limit: usize) -> Result<ScanReport>;

    /// Partition ownership: one heartbeat of engine process `node`.
    ///
    /// Several engine processes share a backend by splitting its partitions
    /// through leases stored in the backend. Each process calls this every
    /// `ttl / 3` or so and scans only the partitions it is answered.
    ///
    /// # Behavior
    /// In order, at one instant `now`:
    /// 1. `node` is recorded alive until `now + ttl`; nodes whose record
    ///    lapsed (`expires_at <= now`) are forgotten.
    /// 2. `target = ceil(partitions / live nodes)`.
    /// 3. The partitions `node` still owns (`expires_at > now`) are kept, up
    ///    to `target`; beyond it the highest-numbered ones are released at
    ///    once so that a joining node can take them.
    /// 4. While below `target`, `node` takes free partitions (never owned,
    ///    released, or whose owner's lease lapsed), lowest number first.
    /// 5. Every partition `node` owns now expires at `now + ttl`.
    ///
    /// A partition has at most one owner at any instant. Because every node's
    /// target covers its share, no partition stays unowned longer than one
    /// heartbeat of a node below target; a killed node's partitions are
    /// taken over at most `ttl` plus one heartbeat after its last call.
    ///
    /// # Atomicity
    /// One transaction / one `FCALL`.
    ///
    /// # Errors
    /// `InvalidInput` (ttl outside the lease limits), `Unavailable`,
    /// `Contention`.
    async fn sync_ownership(&self, node: &NodeId, ttl: Duration) -> Result<Ownership>;

    /// Partition ownership: `node` leaves. Its liveness record is deleted
    /// and its partitions are freed at once, so the remaining nodes take them
    /// at their next heartbeat instead of after the lease lapses.
    ///
    /// # Idempotency
    /// Releasing an unknown or already released node succeeds.
    async fn release_ownership(&self, node: &NodeId) -> Result<()>;
}
