//! The history of an execution: one event per transition, and a few that
//! change no state (a signal delivered, an operator's edit).

use std::fmt;
use std::str::FromStr;

use crate::error::EngineError;
use crate::names::WorkerId;
use crate::state::State;
use crate::time::Timestamp;

/// What happened to an execution, as its history names it.
///
/// Backends store the facts of a transition (the state before and after,
/// the attempt, the worker); the name is decided when the history is read
/// by [`rules::event_kind`](crate::raw::rules::event_kind), from those
/// facts and the outcome of the attempt the transition ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum EventKind {
    /// It was submitted (`to`: its first state).
    Created,
    /// Its `run_at` or retry backoff passed: `delayed` → `waiting`.
    Promoted,
    /// A worker claimed it.
    Claimed,
    /// Its worker completed it.
    Completed,
    /// An attempt failed and the retry policy runs it again.
    Retried,
    /// It failed for good (no attempts left — also a lease lost on its
    /// last attempt —, a non-retryable error, a dependency or wait
    /// verdict).
    Failed,
    /// Its lease expired (or was revoked) and the engine took it back to
    /// run it again.
    Reclaimed,
    /// Its worker handed the lease back: to wait for its children, or
    /// when the worker shut down.
    Released,
    /// Its worker suspended it to wait for signals or a timer.
    Suspended,
    /// What it waited for happened (a signal, a timer, its children, its
    /// dependencies): it is `waiting` again.
    Woken,
    /// It was cancelled.
    Cancelled,
    /// Its deadline passed.
    Expired,
    /// Its dependencies could no longer be met.
    Skipped,
    /// An operator paused it.
    Paused,
    /// An operator resumed it.
    Resumed,
    /// An operator replayed it after it finished.
    Replayed,
    /// A signal was delivered to it (`detail`: the signal's name).
    Signalled,
    /// An operator changed its priority (`detail`: the new priority).
    PriorityChanged,
    /// An operator set or removed a tag (`detail`: `key=value` or `key`).
    TagChanged,
    /// A bulk call acted on it (`detail`: the operation, who asked, the
    /// filter and the call's counts).
    Audit,
    /// Another change of state (kept so no transition goes unrecorded).
    Changed,
}

impl EventKind {
    /// Every kind, in declaration order.
    pub const ALL: [EventKind; 21] = [
        EventKind::Created,
        EventKind::Promoted,
        EventKind::Claimed,
        EventKind::Completed,
        EventKind::Retried,
        EventKind::Failed,
        EventKind::Reclaimed,
        EventKind::Released,
        EventKind::Suspended,
        EventKind::Woken,
        EventKind::Cancelled,
        EventKind::Expired,
        EventKind::Skipped,
        EventKind::Paused,
        EventKind::Resumed,
        EventKind::Replayed,
        EventKind::Signalled,
        EventKind::PriorityChanged,
        EventKind::TagChanged,
        EventKind::Audit,
        EventKind::Changed,
    ];

    /// The name in answers and storage: `created`, `claimed`,
    /// `priority_changed`, …
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Created => "created",
            EventKind::Promoted => "promoted",
            EventKind::Claimed => "claimed",
            EventKind::Completed => "completed",
            EventKind::Retried => "retried",
            EventKind::Failed => "failed",
            EventKind::Reclaimed => "reclaimed",
            EventKind::Released => "released",
            EventKind::Suspended => "suspended",
            EventKind::Woken => "woken",
            EventKind::Cancelled => "cancelled",
            EventKind::Expired => "expired",
            EventKind::Skipped => "skipped",
            EventKind::Paused => "paused",
            EventKind::Resumed => "resumed",
            EventKind::Replayed => "replayed",
            EventKind::Signalled => "signalled",
            EventKind::PriorityChanged => "priority_changed",
            EventKind::TagChanged => "tag_changed",
            EventKind::Audit => "audit",
            EventKind::Changed => "changed",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventKind {
    type Err = EngineError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| EngineError::invalid("event", s, "not an event kind"))
    }
}

/// One event of an execution's history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecutionEvent {
    /// Its number in the execution's history, from 1, without gaps except
    /// where old events were dropped for the bound.
    pub seq: u64,
    /// When it happened (the backend's clock).
    pub at: Timestamp,
    /// What happened.
    pub event: EventKind,
    /// The state before (`None` for `created` and for events that change
    /// no state).
    pub from: Option<State>,
    /// The state after (`None` for events that change no state).
    pub to: Option<State>,
    /// The execution's attempt count at that moment.
    pub attempt: u32,
    /// The worker that held or took the lease, when one did.
    pub worker: Option<WorkerId>,
    /// What else the event says: a cancel reason, an error, a signal's
    /// name, an edit.
    pub detail: Option<String>,
}

impl ExecutionEvent {
    /// Most events kept per execution: beyond it the oldest are dropped,
    /// except the first (`created`).
    pub const MAX_KEPT: u64 = 200;

    /// Most characters of `detail` kept (a longer error or reason is cut).
    pub const MAX_DETAIL: usize = 1024;
}
