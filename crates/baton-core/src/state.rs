//! The canonical public states of an execution and outcomes of an attempt.
//!
//! ```text
//!            create                      claim
//!   ┌────────────────┬─► waiting ──────────────────► running ──complete──► completed
//!   │                │      ▲  ▲                      │  │
//!   │                │      │  └─ retry, no backoff ──┘  ├──fail / lease expiry, no attempts left──► failed
//!   │                │  scheduler                        │
//!   └─► delayed ◄────┼──────┴──── retry with backoff ────┘
//!                    │
//!   any non-terminal ├──cancel────► cancelled
//!                    └──deadline──► expired
//! ```
//!
//! A running parent may also hand back its lease until its children have
//! finished (`wait_children`): it is `blocked`, then `waiting` again when
//! its last child finishes; the wait consumes no attempt.
//!
//! A running execution may also suspend to wait for signals or a timer
//! (`suspend`): it is `suspended` without a lease, then `waiting` again when
//! a signal satisfies its wait or its timeout resumes it (or `failed` /
//! `cancelled`, as its timeout policy says); suspending consumes no attempt.
//! A worker shutting down hands its lease back (`release`): `waiting` at
//! once, no attempt consumed.
//!
//! An execution created with dependencies is `blocked` until its policy is
//! met (then `waiting`), or `skipped` (or `failed`, or `waiting` anyway, as
//! its policy says) once it can no longer be.
//!
//! An operator may pause any non-terminal execution that is not finished
//! (`pause`): it is `paused`, remembering the state it left, until
//! `resume` returns it there; a running one's attempt ends `paused` (no
//! attempt consumed) and its worker learns it at its next renew.
//!
//! Terminal states (`completed`, `failed`, `cancelled`, `expired`,
//! `skipped`) never
//! change again. The full machine, with the states later capabilities add,
//! is in `rfcs/0006-durable-states-and-flows.md`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::EngineError;

/// The public state of an execution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Eligible to be claimed now.
    Waiting,
    /// Waiting for `run_at` or a retry backoff to pass; the scheduler promotes
    /// it to `waiting` when it is due.
    Delayed,
    /// Not claimable until what it waits for happens: its children finish
    /// (see `waiting_on` in its snapshot).
    Blocked,
    /// Claimed by a worker under a lease.
    Running,
    /// Its worker suspended it to wait for signals or a timer; no lease is
    /// held and it is not claimable until a signal satisfies its wait or
    /// its timeout passes (see `suspension` in its snapshot).
    Suspended,
    /// An operator paused it: not claimed, promoted or timed out until it
    /// is resumed to the state it left (see `pause` in its snapshot);
    /// cancels and deadlines still reach it.
    Paused,
    /// Finished successfully (terminal).
    Completed,
    /// Failed with no attempts left, or with a non-retryable error (terminal).
    Failed,
    /// Cancelled by a caller (terminal).
    Cancelled,
    /// Its deadline passed before it finished (terminal).
    Expired,
    /// Its dependencies could no longer be met and its policy said skip;
    /// it never ran (terminal).
    Skipped,
}

impl State {
    /// Every state, in lifecycle order.
    pub const ALL: [State; 11] = [
        State::Waiting,
        State::Delayed,
        State::Blocked,
        State::Running,
        State::Suspended,
        State::Paused,
        State::Completed,
        State::Failed,
        State::Cancelled,
        State::Expired,
        State::Skipped,
    ];

    /// True for `completed`, `failed`, `cancelled`, `expired` and `skipped`.
    ///
    /// ```
    /// use baton_core::State;
    /// assert!(State::Cancelled.is_terminal());
    /// assert!(!State::Delayed.is_terminal());
    /// ```
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            State::Completed | State::Failed | State::Cancelled | State::Expired | State::Skipped
        )
    }

    /// The snake_case name used in the API, the CLI and storage.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Waiting => "waiting",
            State::Delayed => "delayed",
            State::Blocked => "blocked",
            State::Running => "running",
            State::Suspended => "suspended",
            State::Paused => "paused",
            State::Completed => "completed",
            State::Failed => "failed",
            State::Cancelled => "cancelled",
            State::Expired => "expired",
            State::Skipped => "skipped",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for State {
    type Err = EngineError;
    fn from_str(s: &str) -> Result<Self, EngineError> {
        State::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                EngineError::invalid(
                    "state",
                    s,
                    "expected one of waiting, delayed, blocked, running, suspended, paused, completed, \
                     failed, cancelled, expired, skipped",
                )
            })
    }
}

/// How one attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    /// The worker completed the execution.
    Completed,
    /// The worker reported a failure.
    Failed,
    /// The lease expired before the worker completed or failed; the engine
    /// reclaimed the execution.
    LeaseExpired,
    /// The execution was cancelled while this attempt ran.
    Cancelled,
    /// The execution's deadline passed while this attempt ran.
    Expired,
    /// The worker handed the lease back to wait (for the execution's
    /// children); the attempt counts as no failure.
    Released,
    /// An operator paused the execution while this attempt ran; the
    /// attempt counts as no failure and its worker stops at its next renew.
    Paused,
}

impl AttemptOutcome {
    /// Every outcome.
    pub const ALL: [AttemptOutcome; 7] = [
        AttemptOutcome::Completed,
        AttemptOutcome::Failed,
        AttemptOutcome::LeaseExpired,
        AttemptOutcome::Cancelled,
        AttemptOutcome::Expired,
        AttemptOutcome::Released,
        AttemptOutcome::Paused,
    ];

    /// The snake_case name used in the API and storage.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Completed => "completed",
            AttemptOutcome::Failed => "failed",
            AttemptOutcome::LeaseExpired => "lease_expired",
            AttemptOutcome::Cancelled => "cancelled",
            AttemptOutcome::Expired => "expired",
            AttemptOutcome::Released => "released",
            AttemptOutcome::Paused => "paused",
        }
    }
}

impl fmt::Display for AttemptOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AttemptOutcome {
    type Err = EngineError;
    fn from_str(s: &str) -> Result<Self, EngineError> {
        AttemptOutcome::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| {
                EngineError::invalid(
                    "outcome",
                    s,
                    "expected one of completed, failed, lease_expired, cancelled, expired, released, \
                     paused",
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_serde() {
        for s in State::ALL {
            assert_eq!(s.as_str().parse::<State>().unwrap(), s);
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
        }
        for o in AttemptOutcome::ALL {
            assert_eq!(o.as_str().parse::<AttemptOutcome>().unwrap(), o);
            assert_eq!(serde_json::to_string(&o).unwrap(), format!("\"{o}\""));
        }
        assert!("Waiting".parse::<State>().is_err());
    }
}
