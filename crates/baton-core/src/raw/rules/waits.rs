//! Waiting without a worker: which signals satisfy a suspension, what a
//! signal and a timeout do, and the stored forms of a wait.
//!
//! A signal is *buffered* until a wait consumes it; each wait consumes, per
//! waitpoint, the earliest buffered signal of that name, so one approval
//! never satisfies two waits. The waits an execution ended are its *wait
//! log*, one letter each (`s` signalled, `t` timed out), which its claims
//! carry with the signals each wait consumed.

use super::*;
use crate::model::{OnTimeout, Suspension, WaitCondition, WaitEnded};
use crate::names::SignalName;

/// Which buffered signals satisfy a wait on `waitpoints` under
/// `condition`: per waitpoint, the earliest buffered signal of its name.
/// `buffered` is `(seq, name)` of the signals no wait consumed yet, in any
/// order. Answers their numbers, ascending, when the condition is met
/// (`all`: every waitpoint has one; `any`: at least one has — all that have
/// one are consumed), else `None`. A wait without waitpoints (a sleep) is
/// never satisfied by signals.
///
/// Decides `suspend` (satisfied at once, the lease kept) and `signal`
/// (the suspended execution resumes).
pub fn satisfying(
    waitpoints: &[&str],
    condition: WaitCondition,
    buffered: &[(u32, &str)],
) -> Option<Vec<u32>> {
    if waitpoints.is_empty() {
        return None;
    }
    let found = earliest_per_waitpoint(waitpoints, buffered);
    let met = match condition {
        WaitCondition::All => found.len() == waitpoints.len(),
        WaitCondition::Any => !found.is_empty(),
    };
    met.then_some(found)
}

/// The buffered signals a wait whose timeout passed consumes when it
/// resumes: per waitpoint, the earliest buffered signal of its name (a
/// partial `all`), ascending.
pub fn timed_out_consumes(waitpoints: &[&str], buffered: &[(u32, &str)]) -> Vec<u32> {
    earliest_per_waitpoint(waitpoints, buffered)
}

fn earliest_per_waitpoint(waitpoints: &[&str], buffered: &[(u32, &str)]) -> Vec<u32> {
    let mut found: Vec<u32> = waitpoints
        .iter()
        .filter_map(|w| {
            buffered
                .iter()
                .filter(|(_, name)| name == w)
                .map(|(seq, _)| *seq)
                .min()
        })
        .collect();
    found.sort_unstable();
    found
}

/// What `signal` does before it stores anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignalAdmission {
    /// Store it (then [`satisfying`] decides whether it resumes a
    /// suspended execution).
    Store,
    /// The execution holds a signal with this idempotency key: nothing
    /// changes.
    Duplicate,
    /// The execution is terminal: nothing is stored.
    Ignored,
}

/// Judges a signal for execution `id` in `state` that holds `held`
/// buffered signals (delivered, not yet consumed by a wait); `key_seen`
/// when the signal's idempotency key is among all it holds. A repeated key
/// is a duplicate even after the execution finished; a signal beyond
/// [`Limits::max_signals`] buffered ones is a conflict (consumed signals
/// are bounded by the waits: [`Limits::max_waits`] of at most
/// [`SuspendRequest::MAX_WAITPOINTS`](crate::SuspendRequest::MAX_WAITPOINTS)).
pub fn signal_admission(
    id: &ExecutionId,
    state: State,
    key_seen: bool,
    held: usize,
    limits: &Limits,
) -> Result<SignalAdmission, EngineError> {
    if key_seen {
        return Ok(SignalAdmission::Duplicate);
    }
    if state.is_terminal() {
        return Ok(SignalAdmission::Ignored);
    }
    if held >= limits.max_signals {
        return Err(EngineError::Conflict {
            id: id.clone(),
            operation: "signal",
            state,
            reason: format!(
                "it already holds {held} signals no wait consumed, the limit; a signal \
                 stays buffered until a wait on its name consumes it"
            ),
        });
    }
    Ok(SignalAdmission::Store)
}

/// Checks that an execution that ended `ended` waits may wait again
/// ([`Limits::max_waits`]).
pub fn check_wait_room(id: &ExecutionId, ended: usize, limits: &Limits) -> Result<(), EngineError> {
    if ended >= limits.max_waits {
        return Err(EngineError::Conflict {
            id: id.clone(),
            operation: "suspend",
            state: State::Running,
            reason: format!(
                "it already waited {ended} times, the limit; split the work into child \
                 executions"
            ),
        });
    }
    Ok(())
}

/// What a timeout that passed does to a suspended execution.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TimeoutVerdict {
    /// `waiting` again, eligible now; the wait ends `timed_out` and
    /// consumes [`timed_out_consumes`].
    Resume,
    /// `failed` for good with this error as `last_error` (no attempt is
    /// consumed; the retry policy does not run).
    Fail(String),
    /// `cancelled` with this reason, cascading to its descendants as a
    /// cancel of scope `tree` does.
    Cancel(String),
}

/// Decides what the passed timeout of `suspension` does.
pub fn timeout_verdict(suspension: &Suspension) -> TimeoutVerdict {
    let what = timed_out_text(suspension);
    match suspension.on_timeout {
        OnTimeout::Resume => TimeoutVerdict::Resume,
        OnTimeout::Fail => TimeoutVerdict::Fail(what),
        OnTimeout::Cancel => TimeoutVerdict::Cancel(what),
    }
}

fn timed_out_text(s: &Suspension) -> String {
    let names: Vec<&str> = s.waitpoints.iter().map(|w| w.as_str()).collect();
    match names.len() {
        0 => "its sleep ended".to_string(),
        1 => format!("its wait for signal {} timed out", names[0]),
        _ => format!(
            "its wait for signals {} ({} of them) timed out",
            names.join(", "),
            s.condition
        ),
    }
}

/// `suspend` or `release` (`operation`) under a lease whose attempt
/// already ended `outcome`: like [`wait_children_replay`], the stored
/// snapshot while no later attempt started, a conflict after a complete or
/// a failure, a lost lease otherwise.
pub fn released_replay(
    operation: &'static str,
    lease: &LeaseToken,
    outcome: AttemptOutcome,
    snap: ExecutionSnapshot,
) -> Result<ExecutionSnapshot, EngineError> {
    let id = lease.execution_id();
    match outcome {
        AttemptOutcome::Released if snap.attempts == lease.attempt() => Ok(snap),
        AttemptOutcome::Completed | AttemptOutcome::Failed => Err(EngineError::Conflict {
            id: id.clone(),
            operation,
            state: snap.state,
            reason: format!("attempt {} already {}", lease.attempt(), outcome),
        }),
        other => Err(super::ended_lease_lost(id, other)),
    }
}

/// The letter a wait that ended `how` adds to the stored wait log.
pub fn wait_log_letter(how: WaitEnded) -> char {
    match how {
        WaitEnded::Signalled => 's',
        WaitEnded::TimedOut => 't',
    }
}

/// The stored wait log, one letter per ended wait, as the claim carries it.
pub fn parse_wait_log(ctx: &str, log: &str) -> Result<Vec<WaitEnded>, EngineError> {
    log.chars()
        .map(|c| match c {
            's' => Ok(WaitEnded::Signalled),
            't' => Ok(WaitEnded::TimedOut),
            other => Err(EngineError::corruption(format!(
                "{ctx}: stored wait log {log:?} holds {other:?}"
            ))),
        })
        .collect()
}

/// The stored form of waitpoints: their names joined by commas (a name
/// holds no comma); empty for a sleep.
pub fn format_waitpoints(waitpoints: &[SignalName]) -> String {
    let names: Vec<&str> = waitpoints.iter().map(|w| w.as_str()).collect();
    names.join(",")
}

/// The suspension of an execution in `state` from its stored columns: `None`
/// unless it is `suspended` (the columns of an earlier wait may remain).
pub fn stored_suspension(
    ctx: &str,
    state: State,
    waitpoints: Option<&str>,
    condition: Option<&str>,
    timeout_at: Option<i64>,
    on_timeout: Option<&str>,
) -> Result<Option<Suspension>, EngineError> {
    if state != State::Suspended {
        return Ok(None);
    }
    let (Some(waitpoints), Some(condition), Some(on_timeout)) = (waitpoints, condition, on_timeout)
    else {
        return Err(EngineError::corruption(format!(
            "{ctx}: suspended without a stored wait"
        )));
    };
    let waitpoints = if waitpoints.is_empty() {
        Vec::new()
    } else {
        waitpoints
            .split(',')
            .map(|w| crate::raw::stored::parse("waitpoint", ctx, w))
            .collect::<Result<_, _>>()?
    };
    Ok(Some(Suspension {
        waitpoints,
        condition: crate::raw::stored::parse("wait condition", ctx, condition)?,
        timeout_at: timeout_at.map(Timestamp::from_millis),
        on_timeout: crate::raw::stored::parse("on_timeout", ctx, on_timeout)?,
    }))
}
