//! Requests and answers of the [`EngineBackend`](crate::EngineBackend) trait.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::EngineError;
use crate::id::{ExecutionId, LeaseToken, PartitionCount, PartitionId};
use crate::names::{
    CapabilityName, IdempotencyKey, Kind, Lane, MAX_CAPABILITIES, MAX_TAGS, Namespace, TagKey,
    WorkerId, validate_tag_value,
};
use crate::policy::{Limits, RetryPolicy};
use crate::state::{AttemptOutcome, State};
use crate::time::Timestamp;

/// A submission: everything needed to create one execution.
///
/// Built with [`NewExecution::new`] and the `with_*` methods; validated by the
/// backend with [`NewExecution::validate`] before anything is written.
///
/// ```
/// use baton_core::{Kind, Lane, Namespace, NewExecution, RetryPolicy};
/// let new = NewExecution::new(
///     Namespace::new("shop").unwrap(),
///     Lane::new("emails").unwrap(),
///     Kind::new("email.send").unwrap(),
///     br#"{"to":"a@example.com"}"#.to_vec(),
/// )
/// .with_priority(5)
/// .with_delay_ms(30_000)
/// .with_retry(RetryPolicy::attempts(5));
/// assert_eq!(new.priority, 5);
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct NewExecution {
    /// Tenant.
    pub namespace: Namespace,
    /// Queue within the namespace.
    pub lane: Lane,
    /// Handler name.
    pub kind: Kind,
    /// Opaque payload bytes (JSON over HTTP), at most
    /// [`Limits::max_payload_bytes`].
    pub payload: Vec<u8>,
    /// Higher runs first; FIFO within a priority.
    pub priority: i32,
    /// Delay before the execution becomes eligible, in milliseconds; must not
    /// be negative, and must be 0 when `run_at` is set.
    pub delay_ms: i64,
    /// Absolute time before which the execution is not eligible.
    pub run_at: Option<Timestamp>,
    /// Time after which a non-terminal execution becomes `expired`; must be
    /// later than now and than `run_at`.
    pub deadline: Option<Timestamp>,
    /// Attempts and backoff.
    pub retry: RetryPolicy,
    /// Deduplicates submissions within the namespace and lane.
    pub idempotency_key: Option<IdempotencyKey>,
    /// Free-form labels, filterable in `list`.
    pub tags: BTreeMap<TagKey, String>,
    /// Only workers offering all of these may claim the execution.
    pub required_capabilities: BTreeSet<CapabilityName>,
    /// The execution that submitted this one, if any.
    pub parent: Option<ExecutionId>,
}

impl NewExecution {
    /// A submission with defaults: priority 0, eligible now, no deadline,
    /// default retry policy, no tags or requirements.
    pub fn new(namespace: Namespace, lane: Lane, kind: Kind, payload: Vec<u8>) -> Self {
        NewExecution {
            namespace,
            lane,
            kind,
            payload,
            priority: 0,
            delay_ms: 0,
            run_at: None,
            deadline: None,
            retry: RetryPolicy::default(),
            idempotency_key: None,
            tags: BTreeMap::new(),
            required_capabilities: BTreeSet::new(),
            parent: None,
        }
    }

    /// Sets the priority.
    pub fn with_priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    /// Sets a relative delay in milliseconds.
    pub fn with_delay_ms(mut self, delay_ms: i64) -> Self {
        self.delay_ms = delay_ms;
        self
    }

    /// Sets an absolute start time.
    pub fn with_run_at(mut self, run_at: Timestamp) -> Self {
        self.run_at = Some(run_at);
        self
    }

    /// Sets a deadline.
    pub fn with_deadline(mut self, deadline: Timestamp) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Sets the retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Sets the idempotency key.
    pub fn with_idempotency_key(mut self, key: IdempotencyKey) -> Self {
        self.idempotency_key = Some(key);
        self
    }

    /// Adds a tag.
    pub fn with_tag(mut self, key: TagKey, value: impl Into<String>) -> Self {
        self.tags.insert(key, value.into());
        self
    }

    /// Adds a required capability.
    pub fn with_capability(mut self, cap: CapabilityName) -> Self {
        self.required_capabilities.insert(cap);
        self
    }

    /// Sets the parent execution.
    pub fn with_parent(mut self, parent: ExecutionId) -> Self {
        self.parent = Some(parent);
        self
    }

    /// Checks every field against `limits` at time `now` and returns when the
    /// execution becomes eligible (`None`: now).
    ///
    /// Backends call this before writing anything, so every backend rejects
    /// exactly the same submissions with the same errors.
    pub fn validate(
        &self,
        limits: &Limits,
        now: Timestamp,
    ) -> Result<Option<Timestamp>, EngineError> {
        limits.check_payload("payload", self.payload.len())?;
        self.retry.validate()?;
        if self.delay_ms < 0 {
            return Err(EngineError::invalid(
                "delay_ms",
                self.delay_ms,
                "a delay must not be negative",
            ));
        }
        if self.delay_ms > 0 && self.run_at.is_some() {
            return Err(EngineError::invalid(
                "delay_ms",
                self.delay_ms,
                "set either delay_ms or run_at, not both",
            ));
        }
        if self.tags.len() > MAX_TAGS {
            return Err(EngineError::invalid(
                "tags",
                self.tags.len(),
                format!("at most {MAX_TAGS} tags per execution"),
            ));
        }
        for value in self.tags.values() {
            validate_tag_value(value)?;
        }
        if self.required_capabilities.len() > MAX_CAPABILITIES {
            return Err(EngineError::invalid(
                "capabilities",
                self.required_capabilities.len(),
                format!("at most {MAX_CAPABILITIES} capabilities per execution"),
            ));
        }
        let run_at = if self.delay_ms > 0 {
            let delay = Duration::from_millis(self.delay_ms as u64);
            Some(now.saturating_add(delay))
        } else {
            self.run_at.filter(|t| *t > now)
        };
        if let Some(deadline) = self.deadline {
            if deadline <= now {
                return Err(EngineError::invalid(
                    "deadline",
                    deadline,
                    format!("the deadline must be in the future (now is {now})"),
                ));
            }
            if let Some(run_at) = run_at
                && deadline <= run_at
            {
                return Err(EngineError::invalid(
                    "deadline",
                    deadline,
                    format!("the deadline must be later than the start time {run_at}"),
                ));
            }
        }
        Ok(run_at)
    }
}

/// The answer for one submission of a create batch, in request order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateOutcome {
    /// The execution's id; for a repeated idempotency key, the first one.
    pub id: ExecutionId,
    /// Its state right after the call (`waiting` or `delayed` when created;
    /// whatever it is now when deduplicated).
    pub state: State,
    /// False when an existing execution with the same idempotency key was
    /// returned instead.
    pub created: bool,
}

/// A worker's request for work.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClaimRequest {
    /// Namespace to claim from.
    pub namespace: Namespace,
    /// Lanes to claim from (1 to 16); order does not matter, priority and age
    /// decide across them.
    pub lanes: Vec<Lane>,
    /// Identity of the claiming worker, recorded on the attempt.
    pub worker_id: WorkerId,
    /// What the worker offers; it only receives executions whose required
    /// capabilities are a subset.
    pub capabilities: BTreeSet<CapabilityName>,
    /// Most executions to return, `1..=Limits::max_batch`.
    pub max: usize,
    /// Lease length, within [`Limits::min_lease`]..=[`Limits::max_lease`].
    pub lease_ttl: Duration,
}

impl ClaimRequest {
    /// Most lanes one claim may name.
    pub const MAX_LANES: usize = 16;

    /// A claim for up to `max` executions from one lane with a 30 s lease and
    /// no capabilities.
    pub fn new(namespace: Namespace, lane: Lane, worker_id: WorkerId, max: usize) -> Self {
        ClaimRequest {
            namespace,
            lanes: vec![lane],
            worker_id,
            capabilities: BTreeSet::new(),
            max,
            lease_ttl: Duration::from_secs(30),
        }
    }

    /// Adds a lane.
    pub fn with_lane(mut self, lane: Lane) -> Self {
        self.lanes.push(lane);
        self
    }

    /// Sets the offered capabilities.
    pub fn with_capabilities(mut self, caps: impl IntoIterator<Item = CapabilityName>) -> Self {
        self.capabilities = caps.into_iter().collect();
        self
    }

    /// Sets the lease TTL.
    pub fn with_lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl;
        self
    }

    /// Checks batch size, lane count and lease TTL against `limits`.
    pub fn validate(&self, limits: &Limits) -> Result<(), EngineError> {
        limits.check_batch("max", self.max)?;
        limits.check_lease(self.lease_ttl)?;
        if self.lanes.is_empty() || self.lanes.len() > Self::MAX_LANES {
            return Err(EngineError::invalid(
                "lanes",
                self.lanes.len(),
                format!("name between 1 and {} lanes", Self::MAX_LANES),
            ));
        }
        if self.capabilities.len() > MAX_CAPABILITIES {
            return Err(EngineError::invalid(
                "capabilities",
                self.capabilities.len(),
                format!("a worker may offer at most {MAX_CAPABILITIES} capabilities"),
            ));
        }
        Ok(())
    }
}

/// One execution handed to a worker by `claim`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    /// The execution.
    pub id: ExecutionId,
    /// Its namespace.
    pub namespace: Namespace,
    /// The lane it was claimed from.
    pub lane: Lane,
    /// Handler name.
    pub kind: Kind,
    /// Payload bytes.
    pub payload: Vec<u8>,
    /// This attempt's number, 1-based.
    pub attempt: u32,
    /// The lease: present it to `renew`, `complete` and `fail`.
    pub lease: LeaseToken,
    /// When the lease runs out unless renewed.
    pub lease_expires_at: Timestamp,
    /// The execution's deadline, if any.
    pub deadline: Option<Timestamp>,
    /// The execution's tags.
    pub tags: BTreeMap<TagKey, String>,
}

/// One heartbeat: renew every lease a worker holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenewRequest {
    /// The worker renewing; a lease held by another worker reports `lost`.
    pub worker_id: WorkerId,
    /// New lease length from now.
    pub lease_ttl: Duration,
    /// The leases to renew, `1..=Limits::max_batch`.
    pub leases: Vec<LeaseToken>,
}

/// What happened to one lease in a renew call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RenewStatus {
    /// The lease is extended; keep working.
    Renewed,
    /// The lease is no longer yours (expired, reclaimed, superseded, unknown
    /// execution, or the deadline passed): stop and do not complete.
    Lost,
    /// The execution was cancelled: stop.
    Cancelled,
}

/// The answer for one lease of a renew call, in request order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenewOutcome {
    /// The lease as presented.
    pub lease: LeaseToken,
    /// Its fate.
    pub status: RenewStatus,
    /// The new expiry when renewed.
    pub expires_at: Option<Timestamp>,
}

/// A worker's report that an attempt failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// What went wrong (stored as `last_error`; truncated to
    /// [`Limits::max_error_bytes`]).
    pub error: String,
    /// False: fail the execution now, whatever attempts remain.
    pub retryable: bool,
    /// Overrides the backoff delay for the next attempt.
    pub retry_after: Option<Duration>,
}

impl Failure {
    /// A retryable failure with the policy's backoff.
    pub fn retryable(error: impl Into<String>) -> Self {
        Failure {
            error: error.into(),
            retryable: true,
            retry_after: None,
        }
    }

    /// A failure that ends the execution at once.
    pub fn permanent(error: impl Into<String>) -> Self {
        Failure {
            error: error.into(),
            retryable: false,
            retry_after: None,
        }
    }

    /// A retryable failure that asks for a specific delay.
    pub fn retry_after(error: impl Into<String>, delay: Duration) -> Self {
        Failure {
            error: error.into(),
            retryable: true,
            retry_after: Some(delay),
        }
    }
}

/// Everything known about one execution: the answer of `describe`.
///
/// Every backend returns the same snapshot, field for field, for the same
/// history of operations at the same clock readings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecutionSnapshot {
    /// Id.
    pub id: ExecutionId,
    /// Namespace.
    pub namespace: Namespace,
    /// Lane.
    pub lane: Lane,
    /// Handler name.
    pub kind: Kind,
    /// Public state.
    pub state: State,
    /// Priority.
    pub priority: i32,
    /// Payload bytes.
    pub payload: Vec<u8>,
    /// Tags.
    pub tags: BTreeMap<TagKey, String>,
    /// Attempts started so far.
    pub attempts: u32,
    /// Retry policy (its `max_attempts` is the API's `max_attempts`).
    pub retry: RetryPolicy,
    /// Idempotency key, if one was given.
    pub idempotency_key: Option<IdempotencyKey>,
    /// Capabilities a worker must offer.
    pub required_capabilities: BTreeSet<CapabilityName>,
    /// Parent execution.
    pub parent: Option<ExecutionId>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Time of the last state change.
    pub updated_at: Timestamp,
    /// When the execution is (or was last) scheduled to become eligible:
    /// the requested start time or a retry's backoff end; `None` if it was
    /// always eligible at once.
    pub run_at: Option<Timestamp>,
    /// Deadline.
    pub deadline: Option<Timestamp>,
    /// When it reached a terminal state.
    pub finished_at: Option<Timestamp>,
    /// The worker holding the lease while `running`.
    pub worker_id: Option<WorkerId>,
    /// The lease expiry while `running`.
    pub lease_expires_at: Option<Timestamp>,
    /// Result bytes of a completed execution.
    pub result: Option<Vec<u8>>,
    /// Error of the most recent failed attempt.
    pub last_error: Option<String>,
    /// Reason given when cancelled.
    pub cancel_reason: Option<String>,
}

impl ExecutionSnapshot {
    /// Cross-field rules every backend's writer upholds: `running` exactly
    /// when a worker holds a lease, terminal exactly when `finished_at` is
    /// set. A stored execution breaking them was not written by Baton, so
    /// backends report it as [`Corruption`](EngineError::Corruption).
    pub fn check_consistent(&self) -> Result<(), EngineError> {
        let running = self.state == State::Running;
        if running != (self.worker_id.is_some() && self.lease_expires_at.is_some()) {
            return Err(EngineError::corruption(format!(
                "execution {}: state {} disagrees with its lease fields",
                self.id, self.state
            )));
        }
        if self.state.is_terminal() != self.finished_at.is_some() {
            return Err(EngineError::corruption(format!(
                "execution {}: state {} disagrees with finished_at",
                self.id, self.state
            )));
        }
        Ok(())
    }
}

/// One attempt of an execution, as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptRecord {
    /// Attempt number, 1-based.
    pub number: u32,
    /// Worker that claimed it.
    pub worker_id: WorkerId,
    /// When it was claimed.
    pub started_at: Timestamp,
    /// When it ended; `None` while running.
    pub ended_at: Option<Timestamp>,
    /// How it ended; `None` while running.
    pub outcome: Option<AttemptOutcome>,
    /// The error reported (or recorded by the engine) when it did not complete.
    pub error: Option<String>,
}

/// Filters for `list`. Only `namespace` is required.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListFilter {
    /// Namespace to list.
    pub namespace: Namespace,
    /// Only this lane.
    pub lane: Option<Lane>,
    /// Only this state.
    pub state: Option<State>,
    /// Only this kind.
    pub kind: Option<Kind>,
    /// Only executions carrying this tag with this value.
    pub tag: Option<(TagKey, String)>,
}

impl ListFilter {
    /// Every execution of a namespace.
    pub fn namespace(namespace: Namespace) -> Self {
        ListFilter {
            namespace,
            lane: None,
            state: None,
            kind: None,
            tag: None,
        }
    }

    /// Only this lane.
    pub fn with_lane(mut self, lane: Lane) -> Self {
        self.lane = Some(lane);
        self
    }

    /// Only this state.
    pub fn with_state(mut self, state: State) -> Self {
        self.state = Some(state);
        self
    }

    /// Only this kind.
    pub fn with_kind(mut self, kind: Kind) -> Self {
        self.kind = Some(kind);
        self
    }

    /// Only this tag.
    pub fn with_tag(mut self, key: TagKey, value: impl Into<String>) -> Self {
        self.tag = Some((key, value.into()));
        self
    }
}

/// Position in a `list` walk. Opaque to callers; its text form is what the
/// API hands out as `next_cursor`.
///
/// ```
/// use baton_core::ListCursor;
/// assert!("garbage".parse::<ListCursor>().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ListCursor {
    after: Uuid,
}

impl ListCursor {
    /// A cursor positioned after `id`.
    pub fn after(id: &ExecutionId) -> Self {
        ListCursor { after: id.uuid() }
    }

    /// The UUID of the last item already returned; the next page starts after
    /// it in ascending UUID order.
    pub fn after_uuid(&self) -> Uuid {
        self.after
    }
}

impl std::fmt::Display for ListCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "c1.{}", self.after.simple())
    }
}

impl std::str::FromStr for ListCursor {
    type Err = EngineError;
    fn from_str(s: &str) -> Result<Self, EngineError> {
        s.strip_prefix("c1.")
            .filter(|hex| hex.len() == 32)
            .and_then(|hex| Uuid::try_parse(hex).ok())
            .map(|after| ListCursor { after })
            .ok_or_else(|| {
                EngineError::invalid(
                    "cursor",
                    s,
                    "pass back the next_cursor value of the previous page unchanged",
                )
            })
    }
}

/// A page request for `list`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    /// Most items to return, `1..=1000`.
    pub limit: usize,
    /// Where the previous page ended.
    pub cursor: Option<ListCursor>,
}

impl Page {
    /// Largest page.
    pub const MAX_LIMIT: usize = 1000;
    /// Page size when none is given.
    pub const DEFAULT_LIMIT: usize = 100;

    /// The first page of `limit` items.
    pub fn first(limit: usize) -> Self {
        Page {
            limit,
            cursor: None,
        }
    }

    /// Checks `1 <= limit <= 1000`.
    pub fn validate(&self) -> Result<(), EngineError> {
        if self.limit == 0 || self.limit > Self::MAX_LIMIT {
            return Err(EngineError::invalid(
                "limit",
                self.limit,
                format!("must be between 1 and {}", Self::MAX_LIMIT),
            ));
        }
        Ok(())
    }
}

impl Default for Page {
    fn default() -> Self {
        Page::first(Self::DEFAULT_LIMIT)
    }
}

/// One page of `list`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListPage {
    /// Matching executions in ascending id (creation) order.
    pub items: Vec<ExecutionSnapshot>,
    /// Present when more items may follow.
    pub next_cursor: Option<ListCursor>,
}

/// How many executions of one lane are in each state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateCounts {
    /// `waiting`
    pub waiting: u64,
    /// `delayed`
    pub delayed: u64,
    /// `running`
    pub running: u64,
    /// `completed`
    pub completed: u64,
    /// `failed`
    pub failed: u64,
    /// `cancelled`
    pub cancelled: u64,
    /// `expired`
    pub expired: u64,
}

impl StateCounts {
    /// The count for `state`.
    pub fn get(&self, state: State) -> u64 {
        match state {
            State::Waiting => self.waiting,
            State::Delayed => self.delayed,
            State::Running => self.running,
            State::Completed => self.completed,
            State::Failed => self.failed,
            State::Cancelled => self.cancelled,
            State::Expired => self.expired,
        }
    }

    /// Mutable access to the count for `state`.
    pub fn get_mut(&mut self, state: State) -> &mut u64 {
        match state {
            State::Waiting => &mut self.waiting,
            State::Delayed => &mut self.delayed,
            State::Running => &mut self.running,
            State::Completed => &mut self.completed,
            State::Failed => &mut self.failed,
            State::Cancelled => &mut self.cancelled,
            State::Expired => &mut self.expired,
        }
    }

    /// Sum over all states.
    pub fn total(&self) -> u64 {
        State::ALL.iter().map(|s| self.get(*s)).sum()
    }
}

/// What one scheduler pass over a partition did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScanReport {
    /// Executions changed (promoted, reclaimed, expired or trimmed).
    pub processed: u64,
    /// When the next item of this kind in this partition falls due, if any
    /// remains; a time at or before now means "call again at once" (the pass
    /// stopped at its limit).
    pub next_due: Option<Timestamp>,
}

/// The answer of a partition-ownership heartbeat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ownership {
    /// Partitions this node owns after the call, ascending. It may scan them
    /// until `expires_at` unless it renews.
    pub owned: Vec<PartitionId>,
    /// Engine nodes alive after the call, this one included.
    pub live_nodes: u32,
    /// This node's fair share: `ceil(partitions / live_nodes)`.
    pub target: u32,
    /// When this node's ownership (and its liveness record) lapses unless
    /// renewed.
    pub expires_at: Timestamp,
}

/// Who scans one partition, as recorded by partition ownership.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionOwner {
    /// The partition.
    pub partition: PartitionId,
    /// The engine node holding it, if its lease is live.
    pub owner: Option<crate::NodeId>,
    /// When that lease lapses unless renewed.
    pub expires_at: Option<Timestamp>,
}

/// A submission that passed validation, with its id and starting state
/// decided: what every backend writes for one item of a `create` batch.
#[derive(Clone, Debug, PartialEq)]
pub struct PreparedExecution {
    /// The id the new execution gets.
    pub id: ExecutionId,
    /// `delayed` when it starts later, else `waiting`.
    pub state: State,
    /// When it becomes eligible, if later than now.
    pub run_at: Option<Timestamp>,
    /// Its tags as a JSON object, keys sorted (the stored form).
    pub tags_json: String,
    /// Its required capabilities as a sorted JSON array (the stored form).
    pub caps_json: String,
    /// The submission itself.
    pub new: NewExecution,
}

impl PreparedExecution {
    /// Validates every item of a create batch before anything is written and
    /// gives each its id, starting state and stored tag/capability forms. One
    /// bad item rejects the batch with an error naming its position, so every
    /// backend rejects exactly the same batches.
    ///
    /// ```
    /// use baton_core::*;
    /// let new = NewExecution::new(
    ///     Namespace::new("n").unwrap(), Lane::new("l").unwrap(), Kind::new("k").unwrap(), vec![],
    /// ).with_delay_ms(-1);
    /// let err = PreparedExecution::prepare_batch(
    ///     vec![new], &Limits::default(), Timestamp::EPOCH, PartitionCount::DEFAULT,
    /// ).unwrap_err();
    /// assert!(err.to_string().contains("item 0 of the batch"));
    /// ```
    pub fn prepare_batch(
        executions: Vec<NewExecution>,
        limits: &Limits,
        now: Timestamp,
        partitions: PartitionCount,
    ) -> Result<Vec<PreparedExecution>, EngineError> {
        limits.check_batch("executions", executions.len())?;
        let mut out = Vec::with_capacity(executions.len());
        for (i, new) in executions.into_iter().enumerate() {
            let run_at = new
                .validate(limits, now)
                .and_then(|run_at| {
                    if let Some(parent) = &new.parent {
                        parent.check_partition(partitions)?;
                    }
                    Ok(run_at)
                })
                .map_err(|e| e.in_batch(i))?;
            let json = |r: serde_json::Result<String>| {
                r.map_err(|e| EngineError::corruption(format!("encoding item {i}: {e}")))
            };
            out.push(PreparedExecution {
                id: ExecutionId::generate(partitions),
                state: if run_at.is_some() {
                    State::Delayed
                } else {
                    State::Waiting
                },
                run_at,
                tags_json: json(serde_json::to_string(&new.tags))?,
                caps_json: json(serde_json::to_string(&new.required_capabilities))?,
                new,
            });
        }
        Ok(out)
    }
}
