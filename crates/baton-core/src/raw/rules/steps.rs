//! Memory: what a step record does to the step it names.

use super::*;
use crate::model::{StepOutcome, StepStatus};
use crate::names::StepName;

/// A stored step, as [`judge_step`] reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StepFacts<'a> {
    /// Done or failed.
    pub status: StepStatus,
    /// The output of a done step.
    pub output: Option<&'a [u8]>,
    /// Failed records so far.
    pub failures: u32,
}

impl<'a> StepFacts<'a> {
    /// The facts of a stored record.
    pub fn of(record: &'a crate::model::StepRecord) -> Self {
        StepFacts {
            status: record.status,
            output: record.output.as_deref(),
            failures: record.failures,
        }
    }
}

/// What a step record writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepWrite {
    /// The same output for a done step: nothing changes, the stored record
    /// is the answer.
    Unchanged,
    /// Write the step with this status and failure count (the output of a
    /// done record, the error of a failed one; a done record after failures
    /// keeps the last error).
    Write {
        /// The new status.
        status: StepStatus,
        /// The new count of failed records.
        failures: u32,
    },
}

/// Judges `outcome` for step `name` of execution `id`, which holds `held`
/// steps, `existing` being this one if recorded before
/// (`record_step`, under a live lease):
/// - a new step beyond [`Limits::max_steps`] is a conflict;
/// - a done step is final: the same output again is
///   [`Unchanged`](StepWrite::Unchanged), another output or a failure is a
///   conflict;
/// - a failed (or new) step takes the record: done, or failed with one more
///   failure.
pub fn judge_step(
    id: &ExecutionId,
    state: State,
    name: &StepName,
    existing: Option<StepFacts<'_>>,
    outcome: &StepOutcome,
    held: usize,
    limits: &Limits,
) -> Result<StepWrite, EngineError> {
    let conflict = |reason: String| EngineError::Conflict {
        id: id.clone(),
        operation: "record_step",
        state,
        reason,
    };
    let failures = match existing {
        None if held >= limits.max_steps => {
            return Err(conflict(format!(
                "it already recorded {held} steps, the limit; split the work into child \
                 executions"
            )));
        }
        None => 0,
        Some(StepFacts {
            status: StepStatus::Done,
            output,
            ..
        }) => {
            return match outcome {
                StepOutcome::Done(new) if Some(new.as_slice()) == output => {
                    Ok(StepWrite::Unchanged)
                }
                StepOutcome::Done(_) => Err(conflict(format!(
                    "step {name} is done with another output; a done step never changes"
                ))),
                StepOutcome::Failed(_) => Err(conflict(format!(
                    "step {name} is done; a done step never changes"
                ))),
            };
        }
        Some(StepFacts { failures, .. }) => failures,
    };
    Ok(match outcome {
        StepOutcome::Done(_) => StepWrite::Write {
            status: StepStatus::Done,
            failures,
        },
        StepOutcome::Failed(_) => StepWrite::Write {
            status: StepStatus::Failed,
            failures: failures.saturating_add(1),
        },
    })
}
