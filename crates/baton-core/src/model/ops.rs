//! Operator control: what the worker registry records.

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
}
