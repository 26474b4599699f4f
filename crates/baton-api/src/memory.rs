//! Memory: checkpointed steps.

use std::collections::BTreeMap;

use baton_core::{
    EngineError, LeaseToken, Result, StepName, StepOutcome, StepRecord, StepStatus, Timestamp,
};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::{JsonText, check_json};

/// The body of `POST /v1/executions/{id}/steps/{name}`: the lease and
/// exactly one of `output` (the step is done) or `error` (it failed).
///
/// ```
/// use baton_api::StepBody;
/// let body: StepBody = serde_json::from_str(
///     r#"{"lease": "{p:1}-019ab1c2-7d3e-7f00-8a1b-2c3d4e5f6071.1.00000000000000ff", "output": {"charged": 25}}"#,
/// ).unwrap();
/// let (_, outcome) = body.into_outcome().unwrap();
/// assert_eq!(outcome, baton_core::StepOutcome::Done(br#"{"charged": 25}"#.to_vec()));
/// ```
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepBody {
    /// The lease of the running attempt.
    pub lease: LeaseToken,
    /// The step's output (any JSON), stored exactly as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Box<RawValue>>,
    /// The step's error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl StepBody {
    /// The body recording `outcome` under `lease`.
    ///
    /// # Errors
    /// `InvalidInput` for an output that [`check_json`] refuses.
    pub fn new(lease: &LeaseToken, outcome: &StepOutcome) -> Result<Self> {
        let (output, error) = match outcome {
            StepOutcome::Done(bytes) => {
                let text = JsonText::from_bytes(bytes);
                check_json("output", text.get())?;
                (Some(text.into_raw()), None)
            }
            StepOutcome::Failed(e) => (None, Some(e.clone())),
        };
        Ok(StepBody {
            lease: lease.clone(),
            output,
            error,
        })
    }

    /// The lease and the outcome.
    ///
    /// # Errors
    /// `InvalidInput` when both or neither of `output` and `error` are
    /// given, or the output is JSON that [`check_json`] refuses.
    pub fn into_outcome(self) -> Result<(LeaseToken, StepOutcome)> {
        let outcome = match (self.output, self.error) {
            (Some(output), None) => {
                check_json("output", output.get())?;
                StepOutcome::Done(output.get().as_bytes().to_vec())
            }
            (None, Some(error)) => StepOutcome::Failed(error),
            _ => {
                return Err(EngineError::invalid(
                    "output",
                    "both or neither",
                    "send exactly one of output (the step is done) and error (it failed)",
                ));
            }
        };
        Ok((self.lease, outcome))
    }
}

/// A step as answered by a record and listed by `GET …/steps`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepAnswer {
    /// Its name.
    pub name: StepName,
    /// `done` or `failed`.
    pub status: StepStatus,
    /// The output of a done step; `null` otherwise.
    #[serde(default)]
    pub output: Option<JsonText>,
    /// The last error it failed with; `null` if it never failed.
    #[serde(default)]
    pub error: Option<String>,
    /// The attempt that recorded its current status.
    pub attempt: u32,
    /// How many failed records it had, over every attempt.
    #[serde(default)]
    pub failures: u32,
    /// When its current status was recorded.
    pub recorded_at: Timestamp,
}

impl From<&StepRecord> for StepAnswer {
    fn from(s: &StepRecord) -> Self {
        StepAnswer {
            name: s.name.clone(),
            status: s.status,
            output: s.output.as_deref().map(JsonText::from_bytes),
            error: s.error.clone(),
            attempt: s.attempt,
            failures: s.failures,
            recorded_at: s.recorded_at,
        }
    }
}

impl StepAnswer {
    /// The `baton-core` record.
    pub fn into_record(self) -> StepRecord {
        StepRecord {
            name: self.name,
            status: self.status,
            output: self.output.map(JsonText::into_bytes),
            error: self.error,
            attempt: self.attempt,
            failures: self.failures,
            recorded_at: self.recorded_at,
        }
    }
}

/// The answer of `GET /v1/executions/{id}/steps`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepsAnswer {
    /// The steps, by name.
    pub items: Vec<StepAnswer>,
}

/// The done steps of a claim on the wire: name → output.
pub(crate) fn steps_json(steps: &BTreeMap<StepName, Vec<u8>>) -> BTreeMap<StepName, JsonText> {
    steps
        .iter()
        .map(|(k, v)| (k.clone(), JsonText::from_bytes(v)))
        .collect()
}
