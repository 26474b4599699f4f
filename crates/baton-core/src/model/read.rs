//! What reads answer: snapshots, attempts, listings and tallies.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::EngineError;
use crate::id::{ExecutionId, PartitionCount};
use crate::names::{
    CapabilityName, ChildKey, IdempotencyKey, Kind, Lane, Namespace, TagKey, WorkerId,
};
use crate::policy::RetryPolicy;
use crate::state::{AttemptOutcome, State};
use crate::time::Timestamp;

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
    /// Its key among its parent's children, if one was given.
    pub child_key: Option<ChildKey>,
    /// The root of the flow it belongs to: its own id for an execution
    /// without a parent, else its parent's root. Every member of a flow
    /// lives in its root's partition.
    pub root: ExecutionId,
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
    /// What a `blocked` execution waits for; `None` in every other state.
    pub waiting_on: Option<WaitingOn>,
    /// The wait of a `suspended` execution; `None` in every other state.
    pub suspension: Option<crate::model::Suspension>,
    /// The pause of a `paused` execution; `None` in every other state.
    pub pause: Option<Pause>,
    /// The custom status its lease holders last set (JSON bytes), kept
    /// after it finishes.
    pub custom_status: Option<Vec<u8>>,
    /// How many times its custom status changed (0: never set).
    pub status_version: u64,
    /// The number of its last progress frame (0: none appended).
    pub progress_seq: u64,
    /// Its session, if it was given one.
    pub session: Option<crate::names::SessionName>,
    /// The handler version it was written for, if given.
    pub version: Option<crate::model::Version>,
}

/// What keeps a `blocked` execution from running, as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum WaitingOn {
    /// Its children that have not finished yet.
    Children(u64),
    /// Its upstream executions that have not finished yet (its dependency
    /// policy is not met yet).
    Dependencies(u64),
}

/// What a `paused` execution remembers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pause {
    /// The state it left (`waiting` for one that was running). Resume
    /// returns it there, or to `waiting` when what it waited for happened
    /// while it was paused (its children finished, its dependencies were
    /// met, its held signals satisfy its wait, its `run_at` passed): see
    /// [`rules::resume_target`](crate::raw::rules::resume_target).
    pub from: State,
    /// The ancestor whose tree pause reached it; `None` when it was paused
    /// itself.
    pub via: Option<ExecutionId>,
}

impl Pause {
    /// The state a paused execution left, for the waits it kept: what
    /// events that reach it while paused are judged against. `state` for
    /// anything not paused.
    pub fn underlying(state: State, pause: Option<&Pause>) -> State {
        match (state, pause) {
            (State::Paused, Some(p)) => p.from,
            _ => state,
        }
    }
}

/// Why an execution is not running, as a person reads it (the API's
/// `waiting_on`): a stable `reason` code and a sentence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WaitReason {
    /// `children` (blocked until its children finish), `dependencies`
    /// (blocked until its upstream executions finish), `signals`
    /// (suspended until signals arrive), `timer` (suspended in a durable
    /// sleep), `paused` (an operator paused it or its tree), `delayed` (not
    /// eligible before its `run_at`) or `leased` (a worker runs it); later
    /// capabilities add codes.
    pub reason: &'static str,
    /// The same, as a sentence naming the numbers and times.
    pub detail: String,
}

impl ExecutionSnapshot {
    /// Why it is not running now; `None` for a `waiting` execution (it is
    /// eligible) and a terminal one.
    ///
    /// ```
    /// # use baton_core::*;
    /// # fn demo(snap: ExecutionSnapshot) {
    /// if let Some(why) = snap.wait_reason() {
    ///     println!("{}: {}", why.reason, why.detail);
    /// }
    /// # }
    /// ```
    pub fn wait_reason(&self) -> Option<WaitReason> {
        match (self.state, self.waiting_on) {
            (State::Blocked, Some(WaitingOn::Children(n))) => Some(WaitReason {
                reason: "children",
                detail: format!(
                    "waiting for {n} unfinished child{}; it runs again when the last one finishes",
                    if n == 1 { "" } else { "ren" }
                ),
            }),
            (State::Blocked, Some(WaitingOn::Dependencies(n))) => Some(WaitReason {
                reason: "dependencies",
                detail: format!(
                    "waiting for {n} unfinished upstream execution{}; it runs once its \
                     dependency policy is met",
                    if n == 1 { "" } else { "s" }
                ),
            }),
            (State::Suspended, _) => Some(match &self.suspension {
                Some(s) if s.waitpoints.is_empty() => WaitReason {
                    reason: "timer",
                    detail: s.describe(),
                },
                Some(s) => WaitReason {
                    reason: "signals",
                    detail: s.describe(),
                },
                None => WaitReason {
                    reason: "signals",
                    detail: "suspended".into(),
                },
            }),
            (State::Paused, _) => Some(WaitReason {
                reason: "paused",
                detail: match &self.pause {
                    Some(Pause { from, via: None }) => {
                        format!("paused by an operator while {from}; resume continues it")
                    }
                    Some(Pause {
                        from,
                        via: Some(ancestor),
                    }) => format!(
                        "paused with the tree of its ancestor {ancestor} while {from}; resume \
                         continues it"
                    ),
                    None => "paused by an operator".into(),
                },
            }),
            (State::Delayed, _) => Some(WaitReason {
                reason: "delayed",
                detail: match self.run_at {
                    Some(at) => format!("not eligible before {at}"),
                    None => "not eligible yet".into(),
                },
            }),
            (State::Running, _) => Some(WaitReason {
                reason: "leased",
                detail: match (&self.worker_id, self.lease_expires_at) {
                    (Some(w), Some(until)) => {
                        format!("running on worker {w} under a lease until {until}")
                    }
                    _ => "running under a lease".into(),
                },
            }),
            _ => None,
        }
    }

    /// Cross-field rules every backend's writer upholds: `running` exactly
    /// when a worker holds a lease, terminal exactly when `finished_at` is
    /// set. A stored execution breaking them was not written by Baton, so
    /// backends report it as [`Corruption`](EngineError::Corruption).
    pub fn check_consistent(&self) -> Result<(), EngineError> {
        if self.root.partition() != self.id.partition() {
            return Err(EngineError::corruption(format!(
                "execution {}: its root {} lives in another partition",
                self.id, self.root
            )));
        }
        let running = self.state == State::Running;
        if running != (self.worker_id.is_some() && self.lease_expires_at.is_some()) {
            return Err(EngineError::corruption(format!(
                "execution {}: state {} disagrees with its lease fields",
                self.id, self.state
            )));
        }
        if (self.state == State::Blocked) != self.waiting_on.is_some() {
            return Err(EngineError::corruption(format!(
                "execution {}: state {} disagrees with what it waits on",
                self.id, self.state
            )));
        }
        if (self.state == State::Paused) != self.pause.is_some() {
            return Err(EngineError::corruption(format!(
                "execution {}: state {} disagrees with its pause",
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

/// Filters for `list`. Only `namespace` is required; every filter given
/// must hold ([`ListFilter::matches`] is the definition every backend
/// follows).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListFilter {
    /// Namespace to list.
    pub namespace: Namespace,
    /// Only this lane.
    pub lane: Option<Lane>,
    /// Only these states (empty: any).
    pub states: BTreeSet<State>,
    /// Only this kind.
    pub kind: Option<Kind>,
    /// Only executions carrying this tag with this value.
    pub tag: Option<(TagKey, String)>,
    /// Only children of this execution.
    pub parent: Option<ExecutionId>,
    /// Only executions created strictly after this instant.
    pub created_after: Option<Timestamp>,
    /// Only executions created strictly before this instant.
    pub created_before: Option<Timestamp>,
    /// Only executions that finished strictly after this instant.
    pub finished_after: Option<Timestamp>,
    /// Only executions that finished strictly before this instant (an
    /// unfinished execution matches neither finished bound).
    pub finished_before: Option<Timestamp>,
    /// Only the execution submitted with this idempotency key (one per
    /// lane: with `lane`, at most one matches).
    pub idempotency_key: Option<IdempotencyKey>,
}

impl ListFilter {
    /// The filter in words for logs and audit events: `namespace=default
    /// lane=reports state=failed,expired finished_before=…`, the fields
    /// given only.
    ///
    /// ```
    /// use baton_core::{ListFilter, Namespace, State};
    /// let f = ListFilter::namespace(Namespace::new("acme").unwrap())
    ///     .with_states([State::Failed, State::Expired]);
    /// assert_eq!(f.summary(), "namespace=acme state=failed,expired");
    /// ```
    pub fn summary(&self) -> String {
        let mut parts = vec![format!("namespace={}", self.namespace)];
        if let Some(lane) = &self.lane {
            parts.push(format!("lane={lane}"));
        }
        if !self.states.is_empty() {
            let states: Vec<&str> = self.states.iter().map(|s| s.as_str()).collect();
            parts.push(format!("state={}", states.join(",")));
        }
        if let Some(kind) = &self.kind {
            parts.push(format!("kind={kind}"));
        }
        if let Some((key, value)) = &self.tag {
            parts.push(format!("tag={key}:{value}"));
        }
        if let Some(parent) = &self.parent {
            parts.push(format!("parent={parent}"));
        }
        for (name, t) in [
            ("created_after", self.created_after),
            ("created_before", self.created_before),
            ("finished_after", self.finished_after),
            ("finished_before", self.finished_before),
        ] {
            if let Some(t) = t {
                parts.push(format!("{name}={t}"));
            }
        }
        if let Some(key) = &self.idempotency_key {
            parts.push(format!("idempotency_key={key}"));
        }
        parts.join(" ")
    }

    /// Every execution of a namespace.
    pub fn namespace(namespace: Namespace) -> Self {
        ListFilter {
            namespace,
            lane: None,
            states: BTreeSet::new(),
            kind: None,
            tag: None,
            parent: None,
            created_after: None,
            created_before: None,
            finished_after: None,
            finished_before: None,
            idempotency_key: None,
        }
    }

    /// Only this lane.
    pub fn with_lane(mut self, lane: Lane) -> Self {
        self.lane = Some(lane);
        self
    }

    /// Also this state: a filter given several states matches any of them.
    pub fn with_state(mut self, state: State) -> Self {
        self.states.insert(state);
        self
    }

    /// Any of these states.
    pub fn with_states(mut self, states: impl IntoIterator<Item = State>) -> Self {
        self.states.extend(states);
        self
    }

    /// Only executions created strictly between `after` and `before`
    /// (either bound may be absent).
    pub fn with_created(mut self, after: Option<Timestamp>, before: Option<Timestamp>) -> Self {
        self.created_after = after;
        self.created_before = before;
        self
    }

    /// Only executions that finished strictly between `after` and
    /// `before` (either bound may be absent).
    pub fn with_finished(mut self, after: Option<Timestamp>, before: Option<Timestamp>) -> Self {
        self.finished_after = after;
        self.finished_before = before;
        self
    }

    /// Only the execution submitted with idempotency key `key`.
    pub fn with_idempotency_key(mut self, key: IdempotencyKey) -> Self {
        self.idempotency_key = Some(key);
        self
    }

    /// Whether any filter beyond the namespace is given (bulk calls ask for
    /// an explicit `all` otherwise).
    pub fn narrows(&self) -> bool {
        self.lane.is_some()
            || !self.states.is_empty()
            || self.kind.is_some()
            || self.tag.is_some()
            || self.parent.is_some()
            || self.created_after.is_some()
            || self.created_before.is_some()
            || self.finished_after.is_some()
            || self.finished_before.is_some()
            || self.idempotency_key.is_some()
    }

    /// Whether `snap` matches every filter given: the definition each
    /// backend's `list` implements in its own query language.
    ///
    /// ```
    /// # use baton_core::*;
    /// # fn demo(snap: ExecutionSnapshot) {
    /// let filter = ListFilter::namespace(snap.namespace.clone())
    ///     .with_states([State::Failed, State::Expired]);
    /// assert_eq!(filter.matches(&snap), matches!(snap.state, State::Failed | State::Expired));
    /// # }
    /// ```
    pub fn matches(&self, snap: &ExecutionSnapshot) -> bool {
        let finished = |bound: Option<Timestamp>, holds: fn(Timestamp, Timestamp) -> bool| {
            bound.is_none_or(|b| snap.finished_at.is_some_and(|f| holds(f, b)))
        };
        snap.namespace == self.namespace
            && self.lane.as_ref().is_none_or(|l| *l == snap.lane)
            && (self.states.is_empty() || self.states.contains(&snap.state))
            && self.kind.as_ref().is_none_or(|k| *k == snap.kind)
            && self
                .tag
                .as_ref()
                .is_none_or(|(k, v)| snap.tags.get(k) == Some(v))
            && self
                .parent
                .as_ref()
                .is_none_or(|p| snap.parent.as_ref() == Some(p))
            && self.created_after.is_none_or(|t| snap.created_at > t)
            && self.created_before.is_none_or(|t| snap.created_at < t)
            && finished(self.finished_after, |f, b| f > b)
            && finished(self.finished_before, |f, b| f < b)
            && self
                .idempotency_key
                .as_ref()
                .is_none_or(|k| snap.idempotency_key.as_ref() == Some(k))
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

    /// Only children of `parent`.
    pub fn with_parent(mut self, parent: ExecutionId) -> Self {
        self.parent = Some(parent);
        self
    }

    /// Checks the ids the filter names against the deployment's
    /// partitioning (an id of another deployment is invalid input).
    pub fn check(&self, partitions: PartitionCount) -> Result<(), EngineError> {
        match &self.parent {
            Some(parent) => parent.check_partition(partitions),
            None => Ok(()),
        }
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
    /// `blocked`
    #[serde(default)]
    pub blocked: u64,
    /// `running`
    pub running: u64,
    /// `suspended`
    #[serde(default)]
    pub suspended: u64,
    /// `paused`
    #[serde(default)]
    pub paused: u64,
    /// `completed`
    pub completed: u64,
    /// `failed`
    pub failed: u64,
    /// `cancelled`
    pub cancelled: u64,
    /// `expired`
    pub expired: u64,
    /// `skipped`
    #[serde(default)]
    pub skipped: u64,
}

impl StateCounts {
    /// The count for `state`.
    pub fn get(&self, state: State) -> u64 {
        match state {
            State::Waiting => self.waiting,
            State::Delayed => self.delayed,
            State::Blocked => self.blocked,
            State::Running => self.running,
            State::Suspended => self.suspended,
            State::Paused => self.paused,
            State::Completed => self.completed,
            State::Failed => self.failed,
            State::Cancelled => self.cancelled,
            State::Expired => self.expired,
            State::Skipped => self.skipped,
        }
    }

    /// Mutable access to the count for `state`.
    pub fn get_mut(&mut self, state: State) -> &mut u64 {
        match state {
            State::Waiting => &mut self.waiting,
            State::Delayed => &mut self.delayed,
            State::Blocked => &mut self.blocked,
            State::Running => &mut self.running,
            State::Suspended => &mut self.suspended,
            State::Paused => &mut self.paused,
            State::Completed => &mut self.completed,
            State::Failed => &mut self.failed,
            State::Cancelled => &mut self.cancelled,
            State::Expired => &mut self.expired,
            State::Skipped => &mut self.skipped,
        }
    }

    /// Sum over all states.
    pub fn total(&self) -> u64 {
        State::ALL.iter().map(|s| self.get(*s)).sum()
    }
}
