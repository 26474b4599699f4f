//! Flows: the tree of a root, and cancels that reach a subtree.

use serde::{Deserialize, Serialize};

use crate::error::EngineError;
use crate::id::ExecutionId;
use crate::names::Kind;
use crate::state::State;

use super::ExecutionSnapshot;

/// One member of a flow, as [`tree`](crate::AdminBackend::tree) lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeNode {
    /// Its id.
    pub id: ExecutionId,
    /// Its parent; `None` for the root.
    pub parent: Option<ExecutionId>,
    /// Its state.
    pub state: State,
    /// Its handler name.
    pub kind: Kind,
}

/// A flow: its root and members, in creation order (every parent before its
/// children), at most the limit asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tree {
    /// The flow's root (also when the tree was asked for by a member's id).
    pub root: ExecutionId,
    /// The root (unless it was already trimmed) and its descendants,
    /// ascending by id, which is creation order.
    pub items: Vec<TreeNode>,
    /// True when the flow has more members than were answered.
    pub truncated: bool,
}

impl Tree {
    /// Most members one `tree` call answers.
    pub const MAX_LIMIT: usize = 10_000;
    /// Members answered when no limit is given.
    pub const DEFAULT_LIMIT: usize = 1_000;

    /// Checks `1 <= limit <= 10,000`.
    pub fn check_limit(limit: usize) -> Result<(), EngineError> {
        if limit == 0 || limit > Self::MAX_LIMIT {
            return Err(EngineError::invalid(
                "limit",
                limit,
                format!(
                    "must be between 1 and {}; page a bigger flow with `children`",
                    Self::MAX_LIMIT
                ),
            ));
        }
        Ok(())
    }
}

/// What a cancel reaches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelScope {
    /// The execution and every non-terminal descendant (the default).
    #[default]
    Tree,
    /// The execution alone; its descendants keep running.
    Execution,
}

impl CancelScope {
    /// The scope's name on the wire: `tree` or `execution`.
    pub const fn as_str(self) -> &'static str {
        match self {
            CancelScope::Tree => "tree",
            CancelScope::Execution => "execution",
        }
    }
}

impl std::fmt::Display for CancelScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for CancelScope {
    type Err = EngineError;
    fn from_str(s: &str) -> Result<Self, EngineError> {
        match s {
            "tree" => Ok(CancelScope::Tree),
            "execution" => Ok(CancelScope::Execution),
            _ => Err(EngineError::invalid(
                "scope",
                s,
                "must be `tree` (the execution and its descendants) or `execution` (it alone)",
            )),
        }
    }
}

/// A cancel: why, and how far it reaches.
///
/// ```
/// use baton_core::{CancelRequest, CancelScope};
/// let only = CancelRequest::because("superseded").with_scope(CancelScope::Execution);
/// assert_eq!(only.reason.as_deref(), Some("superseded"));
/// assert_eq!(CancelRequest::default().scope, CancelScope::Tree);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CancelRequest {
    /// Stored as the execution's `cancel_reason`.
    pub reason: Option<String>,
    /// Whether descendants are cancelled too.
    pub scope: CancelScope,
}

impl CancelRequest {
    /// A cancel of the whole subtree with `reason`.
    pub fn because(reason: impl Into<String>) -> Self {
        CancelRequest {
            reason: Some(reason.into()),
            scope: CancelScope::Tree,
        }
    }

    /// A cancel of the whole subtree with `reason`, if any.
    pub fn with_reason(reason: Option<String>) -> Self {
        CancelRequest {
            reason,
            scope: CancelScope::Tree,
        }
    }

    /// Sets the scope.
    pub fn with_scope(mut self, scope: CancelScope) -> Self {
        self.scope = scope;
        self
    }
}

/// The answer of `cancel`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cancellation {
    /// The execution after the call.
    pub snapshot: ExecutionSnapshot,
    /// Descendants this call cancelled.
    pub cascaded: u64,
    /// True when the subtree was too big for one call: the scheduler's
    /// cascade pass cancels the rest in bounded steps.
    pub cascade_pending: bool,
}
