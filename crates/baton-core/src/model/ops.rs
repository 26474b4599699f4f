//! Operator control: what the worker registry records, what explain and
//! pause answer, how a lane stands.

use std::collections::BTreeSet;

use crate::names::{CapabilityName, Lane, Namespace, WorkerId};
use crate::time::Timestamp;

/// A worker as the registry last saw it: recorded by its claims (namespace,
/// lanes, capabilities) and its renews (the leases it held), and listed
/// until it has not been seen for [`Limits::worker_ttl`](crate::Limits::worker_ttl).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerInfo {
    /// Its id.
    pub worker_id: WorkerId,
    /// The namespace it claims from.
    pub namespace: Namespace,
    /// The lanes of its last claim.
    pub lanes: BTreeSet<Lane>,
    /// The capabilities of its last claim.
    pub capabilities: BTreeSet<CapabilityName>,
    /// When a claim or a renew of it was last recorded.
    pub last_seen: Timestamp,
    /// How many leases its last renew presented (0 before any).
    pub leases: u32,
    /// The handler versions of its last claim.
    pub versions: crate::model::VersionRange,
}

/// Why an execution is not running now, for a person: the answer of
/// [`AdminBackend::explain`](crate::AdminBackend::explain).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explanation {
    /// The execution as it is.
    pub snapshot: crate::ExecutionSnapshot,
    /// A stable code: the snapshot's `waiting_on` reasons (`children`,
    /// `dependencies`, `signals`, `timer`, `paused`, `delayed`, `leased`),
    /// and for a waiting execution `lane_paused` (an operator paused its
    /// lane), `no_capable_worker` (no live worker claims its lane with the
    /// capabilities it requires), `no_compatible_worker` (none of those
    /// accepts its version), `limited` (a limit has no room for its key
    /// now), `session_owned_by` (another worker holds its session) or
    /// `queued` (it is next, or behind others of its lane); `None` once it finished.
    pub reason: Option<&'static str>,
    /// The same as a sentence naming the numbers, names and times.
    pub detail: String,
}

/// What [`rules::explain`](crate::raw::rules::explain) needs beyond the
/// snapshot of a waiting execution.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueFacts {
    /// The live workers of its namespace.
    pub workers: Vec<WorkerInfo>,
    /// How many waiting executions of its lane a claim takes before it
    /// (higher priority, or equal priority and eligible earlier), counted
    /// up to [`QueueFacts::MAX_AHEAD`].
    pub ahead: u64,
    /// Whether its lane is paused.
    pub lane_paused: bool,
    /// The limit holding it back now, if any
    /// ([`Admission::check`](crate::raw::rules::Admission::check)).
    pub limited: Option<crate::LimitedBy>,
    /// The live lock of its session, if it has one and a worker holds it.
    pub session_owner: Option<crate::model::SessionLock>,
}

impl QueueFacts {
    /// The most executions ahead an explanation counts ("at least" beyond).
    pub const MAX_AHEAD: u64 = 10_000;
}

/// What a `pause` or `resume` did: the execution as it is after, and how
/// many of its descendants the tree scope changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PauseOutcome {
    /// The execution after the call.
    pub snapshot: crate::ExecutionSnapshot,
    /// Descendants paused (or resumed) in the same atomic unit.
    pub cascaded: u64,
    /// True when more descendants remain: the scheduler's cascade pass
    /// reaches them shortly.
    pub cascade_pending: bool,
}

/// One lane of a namespace, as [`lanes`](crate::AdminBackend::lanes) lists
/// it: every lane that holds executions or is paused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LaneInfo {
    /// The lane.
    pub lane: Lane,
    /// When an operator paused it; `None` while claims take its work.
    pub paused_at: Option<Timestamp>,
    /// How many of its executions are in each state.
    pub counts: crate::StateCounts,
}
