//! Flow verdicts: one step of a cascade, and what its cancels say.

use crate::error::EngineError;
use crate::id::{ExecutionId, LeaseToken};
use crate::model::{DependencyPolicy, ExecutionSnapshot, WaitingOn};
use crate::policy::Limits;
use crate::raw::cascade::CascadeItem;
use crate::state::AttemptOutcome;
use crate::state::State;

/// One child as a cascade reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildFacts {
    /// Its id.
    pub id: ExecutionId,
    /// Its state.
    pub state: State,
    /// Its attempt count (the number of the attempt a running one holds).
    pub attempts: u32,
    /// Whether it has children of its own.
    pub has_children: bool,
    /// Whether executions depend on it: cancelling it tells them.
    pub has_dependents: bool,
}

/// What a cascade does with one page of a node's children.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CascadeStep {
    /// Positions (in the page) of the children the walk changes: for a
    /// cancel the non-terminal ones.
    pub cancel: Vec<usize>,
    /// Places still to visit, in the order they go on the walk's stack (the
    /// last one is visited next): the rest of this node's children when the
    /// page was full, then the subtree of every child that has children.
    pub push: Vec<CascadeItem>,
}

/// One step of a cascade over `item`: `page` is what was read of the
/// node's children after `item.after`, when at most `asked` were asked for.
/// A full page means more children may follow, so the node's place is kept
/// (after the page's last child); every child with children of its own is
/// walked below (depth first, so the walk's stack stays as short as the
/// tree is deep).
pub fn cascade_page(item: &CascadeItem, page: &[ChildFacts], asked: usize) -> CascadeStep {
    tree_page(item, page, asked, |s| !s.is_terminal())
}

/// [`cascade_page`] for any walk over a subtree: `acts` says which
/// children (by state) the walk changes — a cancel the non-terminal ones,
/// a pause [`pause_reaches`], a resume [`resume_reaches`]; every child
/// with children of its own is visited below.
pub fn tree_page(
    item: &CascadeItem,
    page: &[ChildFacts],
    asked: usize,
    acts: impl Fn(State) -> bool,
) -> CascadeStep {
    let mut step = CascadeStep::default();
    if let Some(last) = page.last().filter(|_| page.len() >= asked) {
        step.push.push(CascadeItem {
            node: item.node.clone(),
            after: Some(last.id.clone()),
        });
    }
    for (i, child) in page.iter().enumerate() {
        if acts(child.state) {
            step.cancel.push(i);
        }
        if child.has_children {
            step.push.push(CascadeItem::below(child.id.clone()));
        }
    }
    step
}

/// Whether a tree pause changes a descendant in `state`: every one that
/// has neither finished nor been paused already.
pub fn pause_reaches(state: State) -> bool {
    !state.is_terminal() && state != State::Paused
}

/// Whether a tree resume changes a descendant in `state`: every paused
/// one, whoever paused it.
pub fn resume_reaches(state: State) -> bool {
    state == State::Paused
}

/// The cancel reason a cascade stores on a descendant of `ancestor`:
/// `cancelled with its ancestor <id>`, and `: <reason>` when the cancel
/// gave one, clipped to the limit.
pub fn cascade_reason(limits: &Limits, ancestor: &ExecutionId, reason: Option<&str>) -> String {
    let text = match reason {
        Some(r) => format!("cancelled with its ancestor {ancestor}: {r}"),
        None => format!("cancelled with its ancestor {ancestor}"),
    };
    limits.clip_text(text)
}

/// What a cascade from an execution that expired says after the ancestor's
/// id: its descendants are cancelled with
/// `cancelled with its ancestor <id>: its deadline passed`.
pub const EXPIRED_ANCESTOR: &str = "its deadline passed";

/// Whether a running parent holding a current lease blocks when it asks to
/// wait for its children: only while some are unfinished. Without open
/// children it keeps its lease and runs on, so a child finishing between
/// the worker's check and its wait is never a lost wake-up.
pub fn wait_children_blocks(open_children: u64) -> bool {
    open_children > 0
}

/// `wait_children` under a lease whose attempt already ended `outcome`:
/// after the release it answers the stored snapshot (an idempotent
/// replay) while no later attempt has started — once the execution was
/// claimed again, the old lease is lost like any other; after a complete
/// or a failure it is a conflict; anything else ended the lease.
pub fn wait_children_replay(
    lease: &LeaseToken,
    outcome: AttemptOutcome,
    snap: ExecutionSnapshot,
) -> Result<ExecutionSnapshot, EngineError> {
    let id = lease.execution_id();
    match outcome {
        AttemptOutcome::Released if snap.attempts == lease.attempt() => Ok(snap),
        AttemptOutcome::Completed | AttemptOutcome::Failed => Err(EngineError::Conflict {
            id: id.clone(),
            operation: "wait_children",
            state: snap.state,
            reason: format!("attempt {} already {}", lease.attempt(), outcome),
        }),
        other => Err(super::ended_lease_lost(id, other)),
    }
}

/// What `finished` children that just finished do to their parent: `open`
/// is the parent's count of unfinished children before; `deps` its
/// dependency policy and counters, if it has dependencies. Answers the
/// count after and whether the parent, `blocked` on its children, becomes
/// `waiting` (its last child finished). A parent still blocked on its
/// dependencies stays blocked: children created for it before it ran do
/// not release it.
pub fn children_finished(
    parent_state: State,
    open: u64,
    finished: u64,
    deps: Option<(DependencyPolicy, u32, u32, u32)>,
) -> (u64, bool) {
    let after = open.saturating_sub(finished);
    let on_children = matches!(
        super::blocked_on(parent_state, after, deps),
        Some(WaitingOn::Children(_))
    );
    (after, after == 0 && on_children)
}
