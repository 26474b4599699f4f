//! The verdicts every backend shares, as pure functions over stored facts.
//!
//! Each function states what it decides and which contract method relies on
//! it. A backend reads the facts (in the transaction or function call that
//! will act on the verdict), asks here, and writes what the verdict says.

use crate::error::EngineError;
use crate::id::{ExecutionId, LeaseToken};
use crate::model::{ExecutionSnapshot, Failure};
use crate::policy::{Limits, RetryDecision};
use crate::state::{AttemptOutcome, State};
use crate::time::Timestamp;

// ------------------------------------------------------------------ leases

/// What a lease presented to `complete` or `fail` turned out to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseVerdict {
    /// The lease is the execution's current one and has not expired: the
    /// call acts.
    Live,
    /// The lease's attempt already ended this way: the call is a replay,
    /// judged by [`complete_replay`] or [`fail_replay`].
    Ended(AttemptOutcome),
}

/// The stored attempt a lease names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttemptFacts {
    /// The fencing nonce granted with the attempt.
    pub nonce: u64,
    /// How the attempt ended; `None` while it is open.
    pub outcome: Option<AttemptOutcome>,
}

/// Judges `lease` from the execution alone, when the execution proves it
/// current: running at the lease's attempt under its nonce (`stored_nonce`
/// is the nonce stored on the execution, `None` when it holds no lease).
///
/// Answers `None` when the execution does not hold this lease; the backend
/// then reads the attempt the lease names and asks [`judge_ended_lease`].
/// A current lease past the deadline or past its expiry is lost (the
/// scheduler's passes act on it later; until then it is fenced).
pub fn judge_current_lease(
    lease: &LeaseToken,
    snap: &ExecutionSnapshot,
    stored_nonce: Option<u64>,
    now: Timestamp,
) -> Option<Result<LeaseVerdict, EngineError>> {
    let current = snap.state == State::Running
        && snap.attempts == lease.attempt()
        && stored_nonce == Some(lease.nonce());
    current.then(|| live_or_lost(lease.execution_id(), snap, now))
}

/// Judges `lease` that the execution does not hold (see
/// [`judge_current_lease`]) from the attempt it names: never granted or
/// granted under another nonce is a lost lease; an ended attempt is a
/// replay; an open attempt the execution does not hold is corruption.
pub fn judge_ended_lease(
    lease: &LeaseToken,
    snap: &ExecutionSnapshot,
    attempt: Option<AttemptFacts>,
) -> Result<LeaseVerdict, EngineError> {
    let id = lease.execution_id();
    let Some(attempt) = attempt else {
        return Err(EngineError::lease_lost(
            id,
            format!("attempt {} was never granted", lease.attempt()),
        ));
    };
    if attempt.nonce != lease.nonce() {
        return Err(EngineError::lease_lost(
            id,
            "the lease token does not match the one granted for this attempt",
        ));
    }
    match attempt.outcome {
        Some(outcome) => Ok(LeaseVerdict::Ended(outcome)),
        None => Err(EngineError::corruption(format!(
            "execution {id}: attempt {} is open but the execution is {} at attempt {}",
            lease.attempt(),
            snap.state,
            snap.attempts
        ))),
    }
}

/// [`judge_current_lease`], then [`judge_ended_lease`], for a backend that
/// has read both the execution and the attempt.
pub fn judge_lease(
    lease: &LeaseToken,
    snap: &ExecutionSnapshot,
    stored_nonce: Option<u64>,
    attempt: Option<AttemptFacts>,
    now: Timestamp,
) -> Result<LeaseVerdict, EngineError> {
    match judge_current_lease(lease, snap, stored_nonce, now) {
        Some(verdict) => verdict,
        None => judge_ended_lease(lease, snap, attempt),
    }
}

fn live_or_lost(
    id: &ExecutionId,
    snap: &ExecutionSnapshot,
    now: Timestamp,
) -> Result<LeaseVerdict, EngineError> {
    if let Some(deadline) = snap.deadline
        && deadline <= now
    {
        return Err(EngineError::lease_lost(
            id,
            format!("the execution's deadline {deadline} has passed"),
        ));
    }
    match snap.lease_expires_at {
        Some(expires) if now < expires => Ok(LeaseVerdict::Live),
        expires => Err(EngineError::lease_lost(
            id,
            format!(
                "the lease expired at {}; the engine will reclaim and retry the execution",
                expires.map(|t| t.to_string()).unwrap_or_default()
            ),
        )),
    }
}

/// The error for a lease whose attempt ended `outcome` by something other
/// than the lease holder's own `complete` or `fail`.
pub fn ended_lease_lost(id: &ExecutionId, outcome: AttemptOutcome) -> EngineError {
    let why = match outcome {
        AttemptOutcome::LeaseExpired => "the lease expired and the execution was reclaimed",
        AttemptOutcome::Cancelled => "the execution was cancelled",
        AttemptOutcome::Expired => "the execution's deadline passed",
        AttemptOutcome::Released => {
            "the lease was handed back to wait; a later claim runs it again"
        }
        AttemptOutcome::Paused => {
            "an operator paused the execution; a claim after its resume runs it again"
        }
        AttemptOutcome::Completed | AttemptOutcome::Failed => "the attempt already ended",
    };
    EngineError::lease_lost(id, why)
}

/// `complete` under a lease whose attempt already ended `outcome`: the same
/// result again answers the stored snapshot (an idempotent replay); another
/// result, or an attempt that failed, is a conflict; anything else ended
/// the lease.
pub fn complete_replay(
    lease: &LeaseToken,
    outcome: AttemptOutcome,
    snap: ExecutionSnapshot,
    result: &[u8],
) -> Result<ExecutionSnapshot, EngineError> {
    let id = lease.execution_id();
    match outcome {
        AttemptOutcome::Completed if snap.result.as_deref() == Some(result) => Ok(snap),
        AttemptOutcome::Completed => Err(EngineError::Conflict {
            id: id.clone(),
            operation: "complete",
            state: snap.state,
            reason: "this lease already completed it with a different result".into(),
        }),
        AttemptOutcome::Failed => Err(EngineError::Conflict {
            id: id.clone(),
            operation: "complete",
            state: snap.state,
            reason: format!("attempt {} already failed", lease.attempt()),
        }),
        other => Err(ended_lease_lost(id, other)),
    }
}

/// `fail` under a lease whose attempt already ended `outcome`: after a
/// failure it answers the stored snapshot (an idempotent replay, whatever
/// the error text); after a complete it is a conflict; anything else ended
/// the lease.
pub fn fail_replay(
    lease: &LeaseToken,
    outcome: AttemptOutcome,
    snap: ExecutionSnapshot,
) -> Result<ExecutionSnapshot, EngineError> {
    let id = lease.execution_id();
    match outcome {
        AttemptOutcome::Failed => Ok(snap),
        AttemptOutcome::Completed => Err(EngineError::Conflict {
            id: id.clone(),
            operation: "fail",
            state: snap.state,
            reason: format!("attempt {} already completed", lease.attempt()),
        }),
        other => Err(ended_lease_lost(id, other)),
    }
}

/// How `renew` answers a lease it could not extend: `cancelled` when the
/// lease's own attempt was ended by a cancel, `paused` when by a pause (the
/// worker should stop either way), `lost` otherwise.
pub fn renew_refusal(attempt: Option<AttemptFacts>, lease: &LeaseToken) -> crate::RenewStatus {
    match attempt {
        Some(AttemptFacts {
            nonce,
            outcome: Some(AttemptOutcome::Cancelled),
        }) if nonce == lease.nonce() => crate::RenewStatus::Cancelled,
        Some(AttemptFacts {
            nonce,
            outcome: Some(AttemptOutcome::Paused),
        }) if nonce == lease.nonce() => crate::RenewStatus::Paused,
        _ => crate::RenewStatus::Lost,
    }
}

/// The answers of a `renew` call: each lease with its status, in request
/// order, and the new expiry for those renewed.
pub fn renew_outcomes(
    leases: Vec<LeaseToken>,
    statuses: impl IntoIterator<Item = crate::RenewStatus>,
    expires: Timestamp,
) -> Vec<crate::RenewOutcome> {
    leases
        .into_iter()
        .zip(statuses)
        .map(|(lease, status)| crate::RenewOutcome {
            lease,
            expires_at: (status == crate::RenewStatus::Renewed).then_some(expires),
            status,
        })
        .collect()
}

// ---------------------------------------------------------------- failures

/// What a failed attempt turns the execution into.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settlement {
    /// `waiting` (retry now), `delayed` (retry later) or `failed`.
    pub state: State,
    /// The execution's `run_at` afterwards.
    pub run_at: Option<Timestamp>,
    /// When it becomes claimable again (its place in claim order); `None`
    /// keeps the stored value (a failed execution is never claimed).
    pub ready_at: Option<Timestamp>,
    /// Set when the execution failed for good.
    pub finished_at: Option<Timestamp>,
    /// The error text as stored (clipped to the limit).
    pub error: String,
}

/// Settles the failure of `snap`'s running attempt at `now`: the retry
/// policy decides between retrying now, after a backoff, or giving up. The
/// one rule behind `fail` and the reclaim of expired leases (which settles a
/// retryable failure).
///
/// Attempts count failures, not waits: `released` is how many of the
/// execution's attempts ended by handing the lease back (to wait for its
/// children), so this failure is number `attempts - released` of the
/// policy's `max_attempts`.
pub fn settle_failure(
    snap: &ExecutionSnapshot,
    released: u32,
    failure: &Failure,
    limits: &Limits,
    now: Timestamp,
) -> Settlement {
    let error = limits.clip_text(failure.error.clone());
    let decision = snap.retry.decide(
        &snap.id,
        snap.attempts.saturating_sub(released).max(1),
        failure.retryable,
        failure.retry_after,
    );
    let (state, run_at, ready_at, finished_at) = match decision {
        RetryDecision::RetryAfter(d) if d.is_zero() => {
            (State::Waiting, snap.run_at, Some(now), None)
        }
        RetryDecision::RetryAfter(d) => {
            let at = now.saturating_add(d);
            (State::Delayed, Some(at), Some(at), None)
        }
        RetryDecision::GiveUp => (State::Failed, snap.run_at, None, Some(now)),
    };
    Settlement {
        state,
        run_at,
        ready_at,
        finished_at,
        error,
    }
}

// ------------------------------------------------------------------ flows

/// What a backend read about one parent named by a create batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParentFacts {
    /// Its namespace.
    pub namespace: crate::Namespace,
    /// Its stored root; `None` when it is a root itself.
    pub root: Option<ExecutionId>,
}

/// The distinct parents a create batch names, ascending: what a backend
/// reads before [`check_parents`].
pub fn parents_named(rows: &[crate::raw::PreparedExecution]) -> Vec<&ExecutionId> {
    let mut parents: Vec<&ExecutionId> =
        rows.iter().filter_map(|r| r.new.parent.as_ref()).collect();
    parents.sort();
    parents.dedup();
    parents
}

/// Checks the parents named by a create batch against what the backend
/// found (`found`: the facts of each parent that exists). A parent that does
/// not exist, or lives in another namespace, rejects the batch with an error
/// naming the item and the parent. Answers, for each parent, the root its
/// children belong to: the parent's own root, or the parent when it is a
/// root.
pub fn check_parents(
    rows: &[crate::raw::PreparedExecution],
    found: &std::collections::HashMap<ExecutionId, ParentFacts>,
) -> Result<std::collections::HashMap<ExecutionId, ExecutionId>, EngineError> {
    let mut roots = std::collections::HashMap::new();
    for (i, r) in rows.iter().enumerate() {
        let Some(parent) = &r.new.parent else {
            continue;
        };
        let namespace = &r.new.namespace;
        match found.get(parent) {
            None => {
                return Err(EngineError::invalid(
                    "parent",
                    parent,
                    "no such execution; a parent must exist (and not be trimmed) when its child is created",
                )
                .in_batch(i));
            }
            Some(facts) if &facts.namespace != namespace => {
                return Err(EngineError::invalid(
                    "parent",
                    parent,
                    format!(
                        "it belongs to namespace {}, not {namespace}; a child lives in its parent's namespace",
                        facts.namespace
                    ),
                )
                .in_batch(i));
            }
            Some(facts) => {
                let root = facts.root.clone().unwrap_or_else(|| parent.clone());
                roots.insert(parent.clone(), root);
            }
        }
    }
    Ok(roots)
}

// ------------------------------------------------------------------ cancel

/// A cancel reason as stored: refused when it holds a NUL byte, clipped to
/// the limit.
pub fn cancel_reason(
    limits: &Limits,
    reason: Option<String>,
) -> Result<Option<String>, EngineError> {
    match reason {
        Some(r) => {
            limits.check_text("reason", &r)?;
            Ok(Some(limits.clip_text(r)))
        }
        None => Ok(None),
    }
}

/// Whether `cancel` acts on an execution in `snap`'s state: `Ok(true)` for
/// a non-terminal execution; `Ok(false)` when it is already cancelled (an
/// idempotent repeat: answer the stored snapshot, first reason kept); a
/// conflict for any other terminal state.
pub fn cancel_acts(snap: &ExecutionSnapshot) -> Result<bool, EngineError> {
    match snap.state {
        State::Cancelled => Ok(false),
        s if s.is_terminal() => Err(EngineError::Conflict {
            id: snap.id.clone(),
            operation: "cancel",
            state: s,
            reason: "it already finished".into(),
        }),
        _ => Ok(true),
    }
}

mod deployment;
mod deps;
mod events;
mod flows;
mod limits;
mod memory;
mod ops;
mod retention;
mod routing;
mod steps;
mod waits;
pub use deployment::*;
pub use deps::*;
pub use events::*;
pub use flows::*;
pub use limits::*;
pub use memory::*;
pub use ops::*;
pub use retention::*;
pub use routing::*;
pub use steps::*;
pub use waits::*;

#[cfg(test)]
mod tests;
