//! The history of an execution: how stored transition facts are named.

use super::*;
use crate::model::{EventKind, ExecutionEvent};
use crate::names::WorkerId;

/// Names a transition from `from` (`None`: the execution was just
/// created) to `to`, given the outcome of the attempt the transition ended
/// (`outcome`: the attempt numbered as the event's `attempt`, when it has
/// ended). Events that change no state are stored with their kind and are
/// not named here.
///
/// ```
/// use baton_core::{AttemptOutcome, EventKind, State};
/// use baton_core::raw::rules::event_kind;
/// let w = Some(State::Waiting);
/// assert_eq!(event_kind(None, State::Waiting, None), EventKind::Created);
/// assert_eq!(event_kind(w, State::Running, None), EventKind::Claimed);
/// let r = Some(State::Running);
/// assert_eq!(event_kind(r, State::Delayed, Some(AttemptOutcome::Failed)), EventKind::Retried);
/// assert_eq!(event_kind(r, State::Waiting, Some(AttemptOutcome::LeaseExpired)), EventKind::Reclaimed);
/// assert_eq!(event_kind(Some(State::Failed), State::Waiting, None), EventKind::Replayed);
/// ```
pub fn event_kind(from: Option<State>, to: State, outcome: Option<AttemptOutcome>) -> EventKind {
    let Some(from) = from else {
        return EventKind::Created;
    };
    match (from, to) {
        (_, State::Cancelled) => EventKind::Cancelled,
        (_, State::Expired) => EventKind::Expired,
        (_, State::Skipped) => EventKind::Skipped,
        // However it came (a last attempt, a lease lost on the last
        // attempt, a dependency or wait verdict, also while paused).
        (_, State::Failed) => EventKind::Failed,
        (_, State::Paused) => EventKind::Paused,
        (State::Paused, _) => EventKind::Resumed,
        (f, _) if f.is_terminal() => EventKind::Replayed,
        (_, State::Running) => EventKind::Claimed,
        (State::Running, State::Completed) => EventKind::Completed,
        (State::Running, State::Suspended) => EventKind::Suspended,
        (State::Running, State::Blocked) => EventKind::Released,
        (State::Running, State::Waiting | State::Delayed) => match outcome {
            Some(AttemptOutcome::LeaseExpired) => EventKind::Reclaimed,
            Some(AttemptOutcome::Released) => EventKind::Released,
            Some(AttemptOutcome::Failed) => EventKind::Retried,
            _ => EventKind::Changed,
        },
        (State::Delayed, State::Waiting) => EventKind::Promoted,
        (State::Blocked | State::Suspended, State::Waiting | State::Delayed) => EventKind::Woken,
        _ => EventKind::Changed,
    }
}

/// An event as a backend stores it: the facts of a transition (`kind`
/// `None`), or an event that changes no state with its `kind`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEvent {
    /// Its number in the execution's history.
    pub seq: u64,
    /// When (milliseconds).
    pub at: Timestamp,
    /// The stored kind of an event that changes no state
    /// ([`EventKind::as_str`]); `None` for a transition.
    pub kind: Option<String>,
    /// The state before, as stored (`None` at creation).
    pub from: Option<String>,
    /// The state after, as stored.
    pub to: Option<String>,
    /// The attempt count then.
    pub attempt: u32,
    /// The worker, as stored.
    pub worker: Option<String>,
    /// The detail, as stored.
    pub detail: Option<String>,
}

/// The event `stored` records of execution `id` (named `ctx` in errors),
/// with `outcome` the outcome of its attempt numbered `stored.attempt`
/// when that attempt has ended.
///
/// # Errors
/// `Corruption` when a stored value does not parse.
pub fn stored_event(
    ctx: &str,
    stored: StoredEvent,
    outcome: Option<AttemptOutcome>,
) -> Result<ExecutionEvent, EngineError> {
    use crate::raw::stored::parse;
    let from = stored
        .from
        .as_deref()
        .map(|s| parse::<State>("from state", ctx, s))
        .transpose()?;
    let to = stored
        .to
        .as_deref()
        .map(|s| parse::<State>("to state", ctx, s))
        .transpose()?;
    let event = match (&stored.kind, to) {
        (Some(kind), _) => parse::<EventKind>("event", ctx, kind)?,
        (None, Some(to)) => event_kind(from, to, outcome),
        (None, None) => {
            return Err(EngineError::corruption(format!(
                "{ctx}: event {} has neither a kind nor a state",
                stored.seq
            )));
        }
    };
    let worker = stored
        .worker
        .as_deref()
        .map(|w| parse::<WorkerId>("worker", ctx, w))
        .transpose()?;
    Ok(ExecutionEvent {
        seq: stored.seq,
        at: stored.at,
        event,
        from,
        to,
        attempt: stored.attempt,
        worker,
        detail: stored.detail,
    })
}

/// `detail` cut to [`ExecutionEvent::MAX_DETAIL`] characters, as every
/// backend stores it.
pub fn event_detail(detail: &str) -> String {
    detail.chars().take(ExecutionEvent::MAX_DETAIL).collect()
}

/// The detail of a `priority_changed` event: the new priority.
pub fn priority_detail(priority: i32) -> String {
    priority.to_string()
}

/// The detail of a `tag_changed` event: `key=value` when set, `key` when
/// removed.
pub fn tag_detail(key: &str, value: Option<&str>) -> String {
    match value {
        Some(v) => event_detail(&format!("{key}={v}")),
        None => event_detail(key),
    }
}

/// The detail of the audit event a bulk call leaves in the history of
/// each execution it changed: the operation, who asked, the call's counts
/// and its filter.
pub fn audit_detail(
    operation: &str,
    actor: Option<&str>,
    filter: &crate::ListFilter,
    matched: u64,
    changed: u64,
    skipped: usize,
) -> String {
    event_detail(&format!(
        "bulk {operation} by {} (matched {matched}, changed {changed}, skipped {skipped}; {})",
        actor.unwrap_or("unknown"),
        filter.summary()
    ))
}
