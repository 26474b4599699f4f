//! Memory: checkpointed steps, custom status, progress frames and
//! key-value state.

use std::collections::BTreeMap;

use baton_core::{
    EngineError, LeaseToken, ProgressFrame, Result, StateEntry, StateKey, StepName, StepOutcome,
    StepRecord, StepStatus, Timestamp,
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

/// The body of `PUT /v1/executions/{id}/status`: the lease and the custom
/// status (any JSON, stored exactly as sent).
///
/// ```
/// use baton_api::StatusBody;
/// let body: StatusBody = serde_json::from_str(
///     r#"{"lease": "{p:1}-019ab1c2-7d3e-7f00-8a1b-2c3d4e5f6071.1.00000000000000ff", "status": {"stage": "charging"}}"#,
/// ).unwrap();
/// assert_eq!(body.into_parts().unwrap().1, br#"{"stage": "charging"}"#.to_vec());
/// ```
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusBody {
    /// The lease of the running attempt.
    pub lease: LeaseToken,
    /// The status.
    pub status: Box<RawValue>,
}

impl StatusBody {
    /// The body setting `status` (JSON bytes) under `lease`.
    ///
    /// # Errors
    /// `InvalidInput` for a status that [`check_json`] refuses.
    pub fn new(lease: &LeaseToken, status: &[u8]) -> Result<Self> {
        Ok(StatusBody {
            lease: lease.clone(),
            status: json_value("status", status)?,
        })
    }

    /// The lease and the status bytes.
    ///
    /// # Errors
    /// `InvalidInput` for JSON that [`check_json`] refuses.
    pub fn into_parts(self) -> Result<(LeaseToken, Vec<u8>)> {
        check_json("status", self.status.get())?;
        Ok((self.lease, self.status.get().as_bytes().to_vec()))
    }
}

/// The answer of `PUT /v1/executions/{id}/status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusAnswer {
    /// The status version after the call (a repeat keeps it).
    pub version: u64,
}

/// The body of `POST /v1/executions/{id}/progress`: the lease and one
/// frame (any JSON).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProgressBody {
    /// The lease of the running attempt.
    pub lease: LeaseToken,
    /// The frame.
    pub frame: Box<RawValue>,
}

impl ProgressBody {
    /// The body appending `frame` (JSON bytes) under `lease`.
    ///
    /// # Errors
    /// `InvalidInput` for a frame that [`check_json`] refuses.
    pub fn new(lease: &LeaseToken, frame: &[u8]) -> Result<Self> {
        Ok(ProgressBody {
            lease: lease.clone(),
            frame: json_value("frame", frame)?,
        })
    }

    /// The lease and the frame bytes.
    ///
    /// # Errors
    /// `InvalidInput` for JSON that [`check_json`] refuses.
    pub fn into_parts(self) -> Result<(LeaseToken, Vec<u8>)> {
        check_json("frame", self.frame.get())?;
        Ok((self.lease, self.frame.get().as_bytes().to_vec()))
    }
}

/// The answer of `POST /v1/executions/{id}/progress`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgressAppended {
    /// The frame's number.
    pub seq: u64,
}

/// The query of `GET /v1/executions/{id}/progress`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProgressQuery {
    /// Frames numbered above this one (the last `seq` read; 0: from the
    /// first kept).
    #[serde(default)]
    pub after: u64,
    /// Most frames to answer, `1..=1000` (default 100).
    #[serde(default)]
    pub limit: Option<usize>,
    /// With no frame above `after` yet, wait up to this long for one (or
    /// for the execution to finish); 0 answers at once.
    #[serde(default)]
    pub wait_ms: u64,
}

/// One progress frame on the wire.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FrameAnswer {
    /// Its number.
    pub seq: u64,
    /// When it was appended.
    pub at: Timestamp,
    /// The attempt that appended it.
    pub attempt: u32,
    /// The frame.
    pub frame: JsonText,
}

impl From<&ProgressFrame> for FrameAnswer {
    fn from(f: &ProgressFrame) -> Self {
        FrameAnswer {
            seq: f.seq,
            at: f.at,
            attempt: f.attempt,
            frame: JsonText::from_bytes(&f.frame),
        }
    }
}

impl FrameAnswer {
    /// The `baton-core` frame.
    pub fn into_frame(self) -> ProgressFrame {
        ProgressFrame {
            seq: self.seq,
            at: self.at,
            attempt: self.attempt,
            frame: self.frame.into_bytes(),
        }
    }
}

/// The answer of `GET /v1/executions/{id}/progress`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProgressAnswer {
    /// The frames above `after`, ascending.
    pub frames: Vec<FrameAnswer>,
    /// The number of the execution's last frame (the cursor to pass as
    /// `after` once these are read is the last frame's `seq`).
    pub progress_seq: u64,
    /// The execution's state when answered: once it is terminal, no frame
    /// follows.
    pub state: baton_core::State,
}

/// The body of `PUT /v1/executions/{id}/state/{key}`: the lease and the
/// value (any JSON).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateBody {
    /// The lease of the running attempt.
    pub lease: LeaseToken,
    /// The value.
    pub value: Box<RawValue>,
}

impl StateBody {
    /// The body setting a key to `value` (JSON bytes) under `lease`.
    ///
    /// # Errors
    /// `InvalidInput` for a value that [`check_json`] refuses.
    pub fn new(lease: &LeaseToken, value: &[u8]) -> Result<Self> {
        Ok(StateBody {
            lease: lease.clone(),
            value: json_value("value", value)?,
        })
    }

    /// The lease and the value bytes.
    ///
    /// # Errors
    /// `InvalidInput` for JSON that [`check_json`] refuses.
    pub fn into_parts(self) -> Result<(LeaseToken, Vec<u8>)> {
        check_json("value", self.value.get())?;
        Ok((self.lease, self.value.get().as_bytes().to_vec()))
    }
}

/// The body of `DELETE /v1/executions/{id}/state/{key}`: the lease.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseBody {
    /// The lease of the running attempt.
    pub lease: LeaseToken,
}

/// One entry of an execution's state on the wire.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StateEntryAnswer {
    /// Its key.
    pub key: StateKey,
    /// Its value.
    pub value: JsonText,
    /// The attempt that last set it.
    pub attempt: u32,
    /// When it was last set.
    pub updated_at: Timestamp,
}

impl From<&StateEntry> for StateEntryAnswer {
    fn from(e: &StateEntry) -> Self {
        StateEntryAnswer {
            key: e.key.clone(),
            value: JsonText::from_bytes(&e.value),
            attempt: e.attempt,
            updated_at: e.updated_at,
        }
    }
}

impl StateEntryAnswer {
    /// The `baton-core` entry.
    pub fn into_entry(self) -> StateEntry {
        StateEntry {
            key: self.key,
            value: self.value.into_bytes(),
            attempt: self.attempt,
            updated_at: self.updated_at,
        }
    }
}

/// The answer of `GET /v1/executions/{id}/state`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StateAnswer {
    /// The entries, ascending by key.
    pub items: Vec<StateEntryAnswer>,
}

fn json_value(field: &'static str, bytes: &[u8]) -> Result<Box<RawValue>> {
    let text = JsonText::from_bytes(bytes);
    check_json(field, text.get())?;
    Ok(text.into_raw())
}
