//! Deleting executions (what one atomic unit of a delete did, and what a
//! whole delete did) and how long finished executions are kept.

use std::time::Duration;

use crate::id::ExecutionId;
use crate::names::{Lane, Namespace};

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

/// What one unit of a bulk cancel
/// ([`AdminBackend::cancel_units`](crate::AdminBackend::cancel_units)) did
/// to one execution it was asked to cancel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CancelPart {
    /// It had not finished and is now cancelled (its tree with it, as the
    /// scope says).
    Cancelled,
    /// It had already been cancelled: nothing to do (with scope `tree`,
    /// its unfinished descendants are cancelled all the same). One that
    /// finished otherwise answers `Conflict`, as `cancel` does.
    Finished,
    /// Not reached: the unit spent its cascade budget on the ids before
    /// it; ask again in another unit.
    NotReached,
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

/// How long the finished executions of a namespace, or of one lane of it,
/// are kept before the retention trim removes them (a flow goes with its
/// root, counted from the root's finish). A lane's rule wins over its
/// namespace's, which wins over the deployment's default (`baton serve
/// --retention`). See
/// [`AdminBackend::set_retention`](crate::AdminBackend::set_retention).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetentionRule {
    /// The namespace the rule covers.
    pub namespace: Namespace,
    /// The lane it covers; `None`: every lane of the namespace without a
    /// rule of its own.
    pub lane: Option<Lane>,
    /// How long after its finish an execution is kept.
    pub keep: Duration,
}

impl RetentionRule {
    /// The shortest keep a rule may name: one second.
    pub const MIN_KEEP: Duration = Duration::from_secs(1);
    /// The longest keep a rule may name: a hundred years (36,500 days).
    pub const MAX_KEEP: Duration = Duration::from_secs(36_500 * 86_400);
    /// How many rules a deployment may hold: the retention trim reads
    /// them all on each pass over a partition that has work due.
    pub const MAX_RULES: usize = 1_000;
}
