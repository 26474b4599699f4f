//! Work under a lease: claims, renewals and failures.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::EngineError;
use crate::id::{ExecutionId, LeaseToken};
use crate::names::{CapabilityName, Kind, Lane, MAX_CAPABILITIES, Namespace, TagKey, WorkerId};
use crate::policy::Limits;
use crate::time::Timestamp;

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
    /// The handler versions the worker runs: it only receives executions
    /// without a version or with one in this range. Open by default.
    pub versions: crate::model::VersionRange,
    /// How long the worker keeps a session after its last claim or renew
    /// of the session's work, within
    /// [`MIN_SESSION_IDLE`](crate::MIN_SESSION_IDLE)..=[`MAX_SESSION_IDLE`](crate::MAX_SESSION_IDLE);
    /// [`DEFAULT_SESSION_IDLE`](crate::DEFAULT_SESSION_IDLE) unless set.
    pub session_idle: Duration,
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
            versions: crate::model::VersionRange::any(),
            session_idle: crate::model::DEFAULT_SESSION_IDLE,
        }
    }

    /// Sets the accepted handler versions.
    pub fn with_versions(mut self, versions: crate::model::VersionRange) -> Self {
        self.versions = versions;
        self
    }

    /// Sets how long the worker keeps a session once idle.
    pub fn with_session_idle(mut self, idle: Duration) -> Self {
        self.session_idle = idle;
        self
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
        self.versions.check()?;
        let idle = self.session_idle;
        if !(crate::model::MIN_SESSION_IDLE..=crate::model::MAX_SESSION_IDLE).contains(&idle) {
            return Err(EngineError::invalid(
                "session_idle_ms",
                idle.as_millis(),
                "a worker keeps an idle session between 1000 ms and 3600000 ms",
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
    /// The outcomes of the executions it depends on, by id; empty for an
    /// execution without dependencies.
    pub upstream: BTreeMap<ExecutionId, crate::model::Upstream>,
    /// How each of its ended waits (suspensions) ended, oldest first:
    /// the `k`-th entry is wait `k + 1`. Empty for an execution that never
    /// suspended. A handler that replays its waits in order (the SDK's
    /// `wait_for_signal` and `sleep`) finds here which ones are over.
    pub waits: Vec<crate::model::WaitEnded>,
    /// The signals its ended waits consumed, oldest first, each naming its
    /// wait; signals still buffered are not carried.
    pub signals: Vec<crate::model::Signal>,
    /// The outputs of its done steps, by name: what a retried attempt
    /// replays instead of running them again. Empty for an execution that
    /// recorded none.
    pub steps: BTreeMap<crate::names::StepName, Vec<u8>>,
    /// The execution's session, if any: the claiming worker now owns it.
    pub session: Option<crate::names::SessionName>,
    /// The handler version it was written for, if any.
    pub version: Option<crate::model::Version>,
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
    /// An operator paused the execution: stop without reporting; the
    /// attempt counts as no failure and a claim after its resume runs it
    /// again.
    Paused,
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
