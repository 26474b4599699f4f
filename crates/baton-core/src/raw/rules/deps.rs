//! Dependency verdicts: whether a dependent runs, waits, or can no longer
//! run; what its create may name; what one finished upstream does to it.

use std::collections::HashMap;

use crate::error::EngineError;
use crate::id::ExecutionId;
use crate::model::{DependencyPolicy, UpstreamFailure, WaitingOn};
use crate::names::Namespace;
use crate::raw::PreparedExecution;
use crate::state::State;

/// What a dependent's counters say.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DependencyVerdict {
    /// Not decided yet: it stays `blocked`.
    Pending,
    /// Met: it becomes `waiting`.
    Release,
    /// Can no longer be met and the policy says skip: `skipped`.
    Skip,
    /// Can no longer be met and the policy says fail: `failed`.
    Fail,
    /// Can no longer be met and the policy says run: `waiting` all the same.
    Run,
}

impl DependencyVerdict {
    /// The state the dependent takes, from `blocked`: `None` while pending.
    pub fn state(self) -> Option<State> {
        match self {
            DependencyVerdict::Pending => None,
            DependencyVerdict::Release | DependencyVerdict::Run => Some(State::Waiting),
            DependencyVerdict::Skip => Some(State::Skipped),
            DependencyVerdict::Fail => Some(State::Failed),
        }
    }

    /// Whether the dependent finishes without running (skipped or failed):
    /// its parent counts it as finished and its own dependents see an
    /// upstream that did not complete.
    pub fn finishes(self) -> bool {
        matches!(self, DependencyVerdict::Skip | DependencyVerdict::Fail)
    }
}

/// Judges a dependent with `total` dependencies of which `done` completed
/// and `bad` finished otherwise (failed, cancelled, expired, skipped —
/// so skips cascade). `all_of` is met at `done == total` and unmeetable at
/// `bad > 0`; `any_of` at `done >= 1` and at `bad == total`; `quorum(k)` at
/// `done >= k` and at `bad > total - k`. Met wins over unmeetable (they
/// cannot both hold for counters that add up). Mirrored by
/// `judge_dependencies` in `lua/common.lua`.
///
/// ```
/// use baton_core::{DependencyMode, DependencyPolicy, UpstreamFailure};
/// use baton_core::raw::rules::{judge_dependencies, DependencyVerdict};
/// let any = DependencyPolicy::new(DependencyMode::AnyOf, UpstreamFailure::Fail);
/// assert_eq!(judge_dependencies(any, 3, 0, 2), DependencyVerdict::Pending);
/// assert_eq!(judge_dependencies(any, 3, 1, 2), DependencyVerdict::Release);
/// assert_eq!(judge_dependencies(any, 3, 0, 3), DependencyVerdict::Fail);
/// ```
pub fn judge_dependencies(
    policy: DependencyPolicy,
    total: u32,
    done: u32,
    bad: u32,
) -> DependencyVerdict {
    let needed = policy.needed(total);
    if done >= needed {
        return DependencyVerdict::Release;
    }
    // The most that can still complete is what has not failed.
    if total.saturating_sub(bad) < needed {
        return match policy.on_upstream_failure {
            UpstreamFailure::Skip => DependencyVerdict::Skip,
            UpstreamFailure::Fail => DependencyVerdict::Fail,
            UpstreamFailure::Run => DependencyVerdict::Run,
        };
    }
    DependencyVerdict::Pending
}

/// Whether an upstream that finished in `state` counts as completed (else
/// it counts against the policy).
pub fn upstream_completed(state: State) -> bool {
    state == State::Completed
}

/// The `last_error` of a dependent that fails because its dependencies can
/// no longer be met.
pub fn dependency_failure(policy: DependencyPolicy, total: u32, bad: u32) -> String {
    format!(
        "its dependencies can no longer be met: {bad} of {total} upstream executions did not \
         complete (policy {policy})"
    )
}

/// What a `blocked` execution waits for, from its stored counters:
/// dependencies while its policy is pending, else its children. `None` in
/// every other state.
pub fn blocked_on(
    state: State,
    open_children: u64,
    deps: Option<(DependencyPolicy, u32, u32, u32)>,
) -> Option<WaitingOn> {
    if state != State::Blocked {
        return None;
    }
    match deps {
        Some((policy, total, done, bad))
            if judge_dependencies(policy, total, done, bad) == DependencyVerdict::Pending =>
        {
            Some(WaitingOn::Dependencies(u64::from(
                total.saturating_sub(done).saturating_sub(bad),
            )))
        }
        _ => Some(WaitingOn::Children(open_children)),
    }
}

/// What a create needs of an upstream execution.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamFacts {
    /// Its namespace.
    pub namespace: Namespace,
    /// Its stored root; `None` when it is a root itself.
    pub root: Option<ExecutionId>,
    /// Its state now.
    pub state: State,
}

/// The distinct upstream executions a create batch names, ascending: what
/// a backend reads (in the create's unit) before [`check_dependencies`].
pub fn upstreams_named(rows: &[PreparedExecution]) -> Vec<&ExecutionId> {
    let mut ids: Vec<&ExecutionId> = rows.iter().flat_map(|r| r.new.depends_on.iter()).collect();
    ids.sort();
    ids.dedup();
    ids
}

/// How a new dependent starts, from its upstreams' states at create.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DependencyStart {
    /// Its dependencies.
    pub total: u32,
    /// How many of them already completed.
    pub done: u32,
    /// How many already finished otherwise.
    pub bad: u32,
    /// What that means now.
    pub verdict: DependencyVerdict,
}

impl DependencyStart {
    /// The state the new execution is written in: `blocked` while pending,
    /// else what the verdict says.
    pub fn state(&self) -> State {
        self.verdict.state().unwrap_or(State::Blocked)
    }
}

/// Checks the dependencies of a create batch against what the backend
/// found (`found`: the facts of each named upstream that exists; `roots`:
/// what [`check_parents`](super::check_parents) answered). An upstream
/// that does not exist, lives in another namespace or belongs to another
/// flow than the new execution rejects the batch with an error naming the
/// item and the id; nothing is written. Answers, per item, how a dependent
/// starts (`None` for an item without dependencies).
pub fn check_dependencies(
    rows: &[PreparedExecution],
    roots: &HashMap<ExecutionId, ExecutionId>,
    found: &HashMap<ExecutionId, UpstreamFacts>,
) -> Result<Vec<Option<DependencyStart>>, EngineError> {
    let mut out = Vec::with_capacity(rows.len());
    for (i, r) in rows.iter().enumerate() {
        let new = &r.new;
        if new.depends_on.is_empty() {
            out.push(None);
            continue;
        }
        let root = new.parent.as_ref().and_then(|p| roots.get(p));
        let (mut done, mut bad) = (0u32, 0u32);
        for up in &new.depends_on {
            let facts = found.get(up).ok_or_else(|| {
                EngineError::invalid(
                    "depends_on",
                    up,
                    "no such execution; an upstream must exist when its dependent is created \
                     (create upstream executions first: that is also why dependencies never \
                     form a cycle)",
                )
                .in_batch(i)
            })?;
            if facts.namespace != new.namespace {
                return Err(EngineError::invalid(
                    "depends_on",
                    up,
                    format!(
                        "it belongs to namespace {}, not {}; dependencies stay in one flow",
                        facts.namespace, new.namespace
                    ),
                )
                .in_batch(i));
            }
            let up_root = facts.root.as_ref().unwrap_or(up);
            if Some(up_root) != root {
                return Err(EngineError::invalid(
                    "depends_on",
                    up,
                    format!(
                        "it belongs to the flow of root {up_root}, not to the flow of this \
                         execution's parent; dependencies link members of one flow"
                    ),
                )
                .in_batch(i));
            }
            if facts.state.is_terminal() {
                if upstream_completed(facts.state) {
                    done += 1;
                } else {
                    bad += 1;
                }
            }
        }
        let total = u32::try_from(new.depends_on.len()).unwrap_or(u32::MAX);
        out.push(Some(DependencyStart {
            total,
            done,
            bad,
            verdict: judge_dependencies(new.dependency_policy, total, done, bad),
        }));
    }
    Ok(out)
}

/// One dependent as the propagation of a finished upstream reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DependentFacts {
    /// Its id.
    pub id: ExecutionId,
    /// Its parent (every dependent has one).
    pub parent: Option<ExecutionId>,
    /// Its state.
    pub state: State,
    /// For a `paused` one, the state it left
    /// ([`Pause::from`](crate::Pause::from)).
    pub paused_from: Option<State>,
    /// Its policy.
    pub policy: DependencyPolicy,
    /// Its dependencies.
    pub total: u32,
    /// How many completed so far.
    pub done: u32,
    /// How many finished otherwise so far.
    pub bad: u32,
    /// Whether executions depend on it in turn.
    pub has_dependents: bool,
}

/// What one finished upstream does to one of its dependents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DependentChange {
    /// Its completed count after.
    pub done: u32,
    /// Its other-finished count after.
    pub bad: u32,
    /// What that means.
    pub verdict: DependencyVerdict,
}

/// An upstream of `dependent` finished (`completed`: whether it
/// completed). A dependent still waiting on its dependencies (`blocked`
/// with a pending policy, or paused from there) counts it and is judged
/// again; any other one (already released, running, finished, or blocked
/// on its children after its release) is left alone: `None`. A paused
/// dependent only counts unless the verdict finishes it
/// ([`dependency_settles`]). Mirrored by `dependency_finished` in
/// `lua/common.lua`.
pub fn dependency_finished(dependent: &DependentFacts, completed: bool) -> Option<DependentChange> {
    let (total, done, bad) = (dependent.total, dependent.done, dependent.bad);
    let state = match (dependent.state, dependent.paused_from) {
        (State::Paused, Some(from)) => from,
        (state, _) => state,
    };
    if state != State::Blocked
        || judge_dependencies(dependent.policy, total, done, bad) != DependencyVerdict::Pending
    {
        return None;
    }
    let (done, bad) = if completed {
        (done + 1, bad)
    } else {
        (done, bad + 1)
    };
    Some(DependentChange {
        done,
        bad,
        verdict: judge_dependencies(dependent.policy, total, done, bad),
    })
}

/// The state a settled dependent takes (`None`: it keeps its state and
/// only its counters change): a `blocked` one the verdict's state; a
/// `paused` one only a state that finishes it (a skip or a failure reaches
/// it as a cancel would), while a release waits for its resume, which
/// judges its counters again ([`resume_target`](super::resume_target)).
/// Mirrored in `lua/common.lua`.
pub fn dependency_settles(dependent: &DependentFacts, change: &DependentChange) -> Option<State> {
    match dependent.state {
        State::Paused if !change.verdict.finishes() => None,
        _ => change.verdict.state(),
    }
}
