//! Submissions: [`NewExecution`] and what `create` answers.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::deps::DependencyPolicy;
use crate::error::EngineError;
use crate::id::ExecutionId;
use crate::names::{
    CapabilityName, ChildKey, IdempotencyKey, Kind, Lane, MAX_CAPABILITIES, MAX_TAGS, Namespace,
    SessionName, TagKey, validate_tag_value,
};
use crate::policy::{Limits, RetryPolicy};
use crate::state::State;
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
    /// Deduplicates submissions within the namespace and lane (and the
    /// session, for one with a `session`: the same key in two sessions
    /// names two executions).
    pub idempotency_key: Option<IdempotencyKey>,
    /// Free-form labels, filterable in `list`.
    pub tags: BTreeMap<TagKey, String>,
    /// Only workers offering all of these may claim the execution.
    pub required_capabilities: BTreeSet<CapabilityName>,
    /// The execution that submitted this one, if any. It must exist in the
    /// same namespace; the child is created in its partition (a flow lives
    /// in its root's partition).
    pub parent: Option<ExecutionId>,
    /// Deduplicates among one parent's children: a second child of the same
    /// parent with the same key creates nothing and answers the first
    /// (`created: false`). Needs a `parent`.
    pub child_key: Option<ChildKey>,
    /// Executions of the same flow this one runs after (at most
    /// [`Limits::max_dependencies`], no repeats). Each must exist, in the
    /// same namespace and under the same root, so a dependent needs a
    /// `parent` in that flow. Because only executions that already exist
    /// can be named, the dependencies never form a cycle. Until its
    /// [`dependency_policy`](Self::dependency_policy) is met the execution
    /// is `blocked`.
    pub depends_on: Vec<ExecutionId>,
    /// When the dependencies count as met, and what happens when they no
    /// longer can be. Ignored without `depends_on`.
    pub dependency_policy: DependencyPolicy,
    /// The session it belongs to: while a worker holds the session's lock,
    /// only that worker's claims take it (see [`SessionName`]). A child
    /// runs in its flow's partition, so a child takes no session.
    pub session: Option<SessionName>,
    /// The handler version it was written for: only claims whose
    /// [`VersionRange`](crate::VersionRange) accepts it take it; without
    /// one, every claim may.
    pub version: Option<crate::model::Version>,
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
            child_key: None,
            depends_on: Vec::new(),
            dependency_policy: DependencyPolicy::default(),
            session: None,
            version: None,
        }
    }

    /// Sets the session (see [`session`](Self::session)).
    pub fn with_session(mut self, session: SessionName) -> Self {
        self.session = Some(session);
        self
    }

    /// Sets the handler version (see [`version`](Self::version)).
    pub fn with_version(mut self, version: crate::model::Version) -> Self {
        self.version = Some(version);
        self
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

    /// Sets the child key (see [`child_key`](Self::child_key)).
    pub fn with_child_key(mut self, key: ChildKey) -> Self {
        self.child_key = Some(key);
        self
    }

    /// Sets the executions this one runs after (see
    /// [`depends_on`](Self::depends_on)).
    pub fn with_dependencies(mut self, upstream: impl IntoIterator<Item = ExecutionId>) -> Self {
        self.depends_on = upstream.into_iter().collect();
        self
    }

    /// Sets the dependency policy.
    pub fn with_dependency_policy(mut self, policy: DependencyPolicy) -> Self {
        self.dependency_policy = policy;
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
        if let (Some(key), None) = (&self.child_key, &self.parent) {
            return Err(EngineError::invalid(
                "child_key",
                key,
                "a child key deduplicates among one parent's children; set a parent too, \
                 or use an idempotency key for an execution without one",
            ));
        }
        self.validate_dependencies(limits)?;
        if let (Some(session), Some(_)) = (&self.session, &self.parent) {
            return Err(EngineError::invalid(
                "session",
                session,
                "a child runs in its flow's partition and cannot join a session; set the \
                 session on the flow's root, or submit the work without a parent",
            ));
        }
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

    fn validate_dependencies(&self, limits: &Limits) -> Result<(), EngineError> {
        if self.depends_on.is_empty() {
            return Ok(());
        }
        if self.depends_on.len() > limits.max_dependencies {
            return Err(EngineError::invalid(
                "depends_on",
                self.depends_on.len(),
                format!(
                    "at most {} dependencies per execution; join bigger fan-ins through a \
                     parent that waits for its children",
                    limits.max_dependencies
                ),
            ));
        }
        let mut seen = BTreeSet::new();
        for id in &self.depends_on {
            if !seen.insert(id) {
                return Err(EngineError::invalid(
                    "depends_on",
                    id,
                    "named twice; name each upstream execution once",
                ));
            }
        }
        if self.parent.is_none() {
            return Err(EngineError::invalid(
                "depends_on",
                &self.depends_on[0],
                "dependencies link members of one flow: set a parent in the flow of the \
                 upstream executions (the flow's root, or any member)",
            ));
        }
        let delayed = "an execution with dependencies starts when they are met; it cannot also \
                       be delayed (leave delay_ms and run_at unset)";
        if self.delay_ms > 0 {
            return Err(EngineError::invalid("delay_ms", self.delay_ms, delayed));
        }
        if let Some(run_at) = self.run_at {
            return Err(EngineError::invalid("run_at", run_at, delayed));
        }
        self.dependency_policy.check(self.depends_on.len())
    }
}

/// The answer for one submission of a create batch, in request order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateOutcome {
    /// The execution's id; for a repeated idempotency key, the first one.
    pub id: ExecutionId,
    /// Its state right after the call when created: `waiting` or
    /// `delayed`, `blocked` for unmet dependencies, or `skipped`/`failed`
    /// when its dependencies could already not be met; whatever it is now
    /// when deduplicated.
    pub state: State,
    /// False when an existing execution with the same idempotency key (or
    /// the same parent and child key) was returned instead.
    pub created: bool,
}
