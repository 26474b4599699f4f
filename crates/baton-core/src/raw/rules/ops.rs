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
