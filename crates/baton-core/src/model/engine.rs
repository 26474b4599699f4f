//! What the scheduler's passes and partition ownership answer.

use crate::id::PartitionId;
use crate::time::Timestamp;

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
