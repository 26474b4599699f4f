//! Deleting executions: what one atomic unit of a delete did, and what a
//! whole delete did.

use crate::id::ExecutionId;

/// What one atomic unit of a delete
/// ([`AdminBackend::delete_units`](crate::AdminBackend::delete_units)) did
/// to one execution it was asked to delete.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeletePart {
    /// Executions removed in this unit: descendants (leaves first) and, once
    /// they are gone, the execution itself.
    pub removed: u64,
    /// Whether the execution itself is gone. `false`: its subtree did not
    /// fit in the unit's budget (or a cancel of it goes on in the cascade
    /// pass); ask again.
    pub done: bool,
    /// Whether this unit cancelled it first (a delete with `force` of one
    /// that had not finished, or whose descendants had not).
    pub cancelled: bool,
}

/// What [`AdminBackend::delete`](crate::AdminBackend::delete) did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeleteReport {
    /// The execution deleted.
    pub id: ExecutionId,
    /// Executions removed: it and its descendants.
    pub deleted: u64,
    /// Whether it (or its tree) was cancelled first (`force`).
    pub cancelled: bool,
}
