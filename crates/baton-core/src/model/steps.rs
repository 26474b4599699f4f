//! Memory: the checkpointed steps of an execution, its key-value state and
//! its progress frames.

use serde::{Deserialize, Serialize};

use crate::error::EngineError;
use crate::names::{StateKey, StepName};
use crate::policy::Limits;
use crate::time::Timestamp;

/// What the lease holder records for a step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StepOutcome {
    /// The step finished with this output (JSON bytes): it is done for good,
    /// and every later attempt replays the output instead of running it.
    Done(Vec<u8>),
    /// The step failed with this error: a later record may still finish it
    /// (its `failures` count grows with each failed record).
    Failed(String),
}

impl StepOutcome {
    /// Checks the output size ([`Limits::max_payload_bytes`]) and the error
    /// text ([`Limits::check_text`]).
    pub fn validate(&self, limits: &Limits) -> Result<(), EngineError> {
        match self {
            StepOutcome::Done(output) => limits.check_payload("output", output.len()),
            StepOutcome::Failed(error) => limits.check_text("error", error),
        }
    }
}

/// How a step stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Finished; its output is final.
    Done,
    /// Its last record was a failure.
    Failed,
}

impl StepStatus {
    /// The name used in the API and in storage.
    pub const fn as_str(self) -> &'static str {
        match self {
            StepStatus::Done => "done",
            StepStatus::Failed => "failed",
        }
    }
}

impl std::fmt::Display for StepStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for StepStatus {
    type Err = EngineError;
    fn from_str(s: &str) -> Result<Self, EngineError> {
        match s {
            "done" => Ok(StepStatus::Done),
            "failed" => Ok(StepStatus::Failed),
            other => Err(EngineError::invalid(
                "status",
                other,
                "expected done or failed",
            )),
        }
    }
}

/// One step of an execution, as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepRecord {
    /// Its name, unique within the execution.
    pub name: StepName,
    /// Done or failed.
    pub status: StepStatus,
    /// The output of a done step.
    pub output: Option<Vec<u8>>,
    /// The error of the last failed record (kept once the step is done).
    pub error: Option<String>,
    /// The attempt of the execution that wrote the current status.
    pub attempt: u32,
    /// How many failed records the step has had, over every attempt: what
    /// a retry loop inside the step counts across restarts.
    pub failures: u32,
    /// When the current status was recorded.
    pub recorded_at: Timestamp,
}

/// One entry of an execution's key-value state, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateEntry {
    /// Its key, unique within the execution.
    pub key: StateKey,
    /// Its value (JSON bytes).
    pub value: Vec<u8>,
    /// The attempt of the execution that last set it.
    pub attempt: u32,
    /// When it was last set.
    pub updated_at: Timestamp,
}

/// One progress frame an attempt appended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgressFrame {
    /// Its number: 1 for an execution's first frame, one more for each
    /// frame after it, never reused (frames dropped for the bound keep
    /// their numbers taken).
    pub seq: u64,
    /// When it was appended.
    pub at: Timestamp,
    /// The attempt that appended it.
    pub attempt: u32,
    /// The frame (JSON bytes).
    pub frame: Vec<u8>,
}

/// What a reader following an execution has seen of it: whether it was
/// terminal, its custom status version and its last progress frame.
/// [`AdminBackend::wait_for_change`](crate::AdminBackend::wait_for_change)
/// answers when the execution no longer matches it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ChangeMark {
    /// It was terminal.
    pub terminal: bool,
    /// Its [`status_version`](crate::ExecutionSnapshot::status_version).
    pub status_version: u64,
    /// Its [`progress_seq`](crate::ExecutionSnapshot::progress_seq).
    pub progress_seq: u64,
}

impl ChangeMark {
    /// The mark of a snapshot.
    pub fn of(snapshot: &crate::ExecutionSnapshot) -> Self {
        ChangeMark {
            terminal: snapshot.state.is_terminal(),
            status_version: snapshot.status_version,
            progress_seq: snapshot.progress_seq,
        }
    }
}
