//! Memory: what a state write, a custom status and a progress frame do to
//! what an execution holds.

use super::*;
use crate::names::StateKey;

/// What a state write does to the key it names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateWrite {
    /// Store the value (a new key, or a new value for a held one).
    Set,
    /// Remove the key.
    Clear,
    /// Nothing changes: the key already holds this value, or a cleared key
    /// is not held.
    Unchanged,
}

/// Judges a write of `value` (`None`: clear) to `key` of execution `id`,
/// which holds `held` keys, `existing` being this key's value if held
/// (`set_state`, under a live lease):
/// - the same value again, or clearing a key not held, is
///   [`Unchanged`](StateWrite::Unchanged);
/// - a new key beyond [`Limits::max_state_keys`] is a conflict;
/// - otherwise the value is set or the key cleared.
///
/// The value's size is checked before (see [`Limits::check_value`]).
pub fn judge_state(
    id: &ExecutionId,
    state: State,
    key: &StateKey,
    existing: Option<&[u8]>,
    value: Option<&[u8]>,
    held: usize,
    limits: &Limits,
) -> Result<StateWrite, EngineError> {
    Ok(match (existing, value) {
        (None, None) => StateWrite::Unchanged,
        (Some(_), None) => StateWrite::Clear,
        (Some(old), Some(new)) if old == new => StateWrite::Unchanged,
        (Some(_), Some(_)) => StateWrite::Set,
        (None, Some(_)) if held >= limits.max_state_keys => {
            return Err(EngineError::Conflict {
                id: id.clone(),
                operation: "set_state",
                state,
                reason: format!(
                    "it already holds {held} state keys, the limit; clear keys it no longer \
                     needs before setting {key}"
                ),
            });
        }
        (None, Some(_)) => StateWrite::Set,
    })
}

/// The version a custom status write leaves (`set_status`, under a live
/// lease): the same status as the stored one keeps `version`; any other
/// takes `version + 1`. Answers `(changed, version)`.
pub fn status_version(current: Option<&[u8]>, version: u64, new: &[u8]) -> (bool, u64) {
    if current == Some(new) {
        (false, version)
    } else {
        (true, version.saturating_add(1))
    }
}

/// The progress frames kept after frame `seq` is appended: every frame
/// numbered `>= first_kept_frame(seq, limits)`; older ones are dropped in
/// the same atomic unit (`append_progress`).
pub fn first_kept_frame(seq: u64, limits: &Limits) -> u64 {
    let kept = u64::try_from(limits.max_progress_frames.max(1)).unwrap_or(u64::MAX);
    seq.saturating_sub(kept).saturating_add(1)
}
