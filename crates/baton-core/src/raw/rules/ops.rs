//! Operator control: what an edit or a revoke may do to an execution.

use std::collections::BTreeMap;

use super::*;
use crate::model::Failure;
use crate::names::{MAX_TAGS, TagKey, validate_tag_value};

/// Checks a priority edit (`set_priority`): any execution that has not
/// finished takes it (a waiting one is reordered among its lane at once);
/// a finished one is a conflict.
pub fn check_priority_edit(id: &ExecutionId, state: State) -> Result<(), EngineError> {
    if state.is_terminal() {
        return Err(EngineError::Conflict {
            id: id.clone(),
            operation: "set_priority",
            state,
            reason: "it already finished; its priority no longer decides anything".into(),
        });
    }
    Ok(())
}

/// The tags after setting `key` to `value` (`None`: removing it), or
/// `None` when nothing changes (`set_tag`, any state): the value is checked
/// like a created execution's; a new key beyond [`MAX_TAGS`] is a conflict.
pub fn tag_edit(
    id: &ExecutionId,
    state: State,
    tags: &BTreeMap<TagKey, String>,
    key: &TagKey,
    value: Option<&str>,
) -> Result<Option<BTreeMap<TagKey, String>>, EngineError> {
    if let Some(v) = value {
        validate_tag_value(v)?;
    }
    let held = tags.get(key).map(String::as_str);
    if held == value {
        return Ok(None);
    }
    if held.is_none() && tags.len() >= MAX_TAGS {
        return Err(EngineError::Conflict {
            id: id.clone(),
            operation: "set_tag",
            state,
            reason: format!(
                "it already has {MAX_TAGS} tags, the limit; remove one before adding {key}"
            ),
        });
    }
    let mut next = tags.clone();
    match value {
        Some(v) => next.insert(key.clone(), v.to_owned()),
        None => next.remove(key),
    };
    Ok(Some(next))
}

/// Checks a revoke (`revoke`): only a running execution holds a lease to
/// revoke; any other state is a conflict.
pub fn check_revoke(id: &ExecutionId, state: State) -> Result<(), EngineError> {
    if state != State::Running {
        return Err(EngineError::Conflict {
            id: id.clone(),
            operation: "revoke",
            state,
            reason: "only a running execution holds a lease to revoke".into(),
        });
    }
    Ok(())
}

/// The failure a revoke settles for `snap`'s running attempt: retryable,
/// as a lease that expired, through [`settle_failure`] (the attempt ends
/// `lease_expired`, the retry policy decides what follows).
pub fn revoke_failure(snap: &ExecutionSnapshot) -> Failure {
    Failure::retryable(format!(
        "lease revoked by an operator: worker {} held attempt {}",
        snap.worker_id.as_ref().map_or("?", |w| w.as_str()),
        snap.attempts
    ))
}

/// Explains why `snap` is not running (`explain`): the snapshot's own
/// reason when it has one (blocked, suspended, delayed, running); for a
/// waiting execution, whether a live worker (`facts.workers`) claims its
/// lane offering every capability it requires — `no_capable_worker`
/// otherwise — and else how many are ahead of it (`queued`); nothing for a
/// finished one, only what became of it.
pub fn explain(
    snapshot: ExecutionSnapshot,
    facts: &crate::model::QueueFacts,
) -> crate::model::Explanation {
    let (reason, detail) = reason_of(&snapshot, facts);
    crate::model::Explanation {
        snapshot,
        reason,
        detail,
    }
}

fn reason_of(
    snap: &ExecutionSnapshot,
    facts: &crate::model::QueueFacts,
) -> (Option<&'static str>, String) {
    if let Some(why) = snap.wait_reason() {
        return (Some(why.reason), why.detail);
    }
    if snap.state.is_terminal() {
        let at = snap
            .finished_at
            .map(|t| format!(" at {t}"))
            .unwrap_or_default();
        let why = match snap.state {
            State::Cancelled => snap.cancel_reason.as_deref(),
            State::Failed | State::Expired | State::Skipped => snap.last_error.as_deref(),
            _ => None,
        };
        let why = why.map(|w| format!(": {w}")).unwrap_or_default();
        return (None, format!("it finished {}{at}{why}", snap.state));
    }
    let lane = &snap.lane;
    let serving: Vec<&crate::model::WorkerInfo> = facts
        .workers
        .iter()
        .filter(|w| w.lanes.contains(lane))
        .collect();
    if serving.is_empty() {
        return (
            Some("no_capable_worker"),
            format!("eligible, but no live worker claims lane {lane}; start one for this lane"),
        );
    }
    let missing = |w: &crate::model::WorkerInfo| -> Vec<String> {
        snap.required_capabilities
            .iter()
            .filter(|c| !w.capabilities.contains(*c))
            .map(|c| c.to_string())
            .collect()
    };
    if serving.iter().all(|w| !missing(w).is_empty()) {
        let needed: Vec<&str> = snap
            .required_capabilities
            .iter()
            .map(|c| c.as_str())
            .collect();
        return (
            Some("no_capable_worker"),
            format!(
                "eligible, but none of the {} live worker{} of lane {lane} offers every \
                 capability it requires ({})",
                serving.len(),
                if serving.len() == 1 { "" } else { "s" },
                needed.join(", ")
            ),
        );
    }
    let detail = match facts.ahead {
        0 => format!("eligible and next in lane {lane}; a live worker should claim it soon"),
        n if n >= crate::model::QueueFacts::MAX_AHEAD => format!(
            "eligible; at least {n} executions of lane {lane} are claimed before it (higher \
             priority, or the same priority and eligible earlier)"
        ),
        n => format!(
            "eligible; {n} execution{} of lane {lane} {} claimed before it (higher priority, or \
             the same priority and eligible earlier)",
            if n == 1 { "" } else { "s" },
            if n == 1 { "is" } else { "are" }
        ),
    };
    (Some("queued"), detail)
}
