//! Requests and answers of the [`EngineBackend`](crate::EngineBackend) trait.

mod bulk;
mod deps;
mod engine;
mod events;
mod flow;
mod limits;
mod manage;
mod ops;
mod prepare;
mod read;
mod routing;
mod steps;
mod submit;
mod wait;
mod work;

pub use bulk::{BulkAction, BulkReport, BulkRequest};
pub use deps::{DependencyMode, DependencyPolicy, Upstream, UpstreamFailure};
pub use engine::{Ownership, PartitionOwner, ScanReport};
pub use events::{EventKind, ExecutionEvent};
pub use flow::{CancelRequest, CancelScope, Cancellation, Tree, TreeNode};
pub use limits::{Limit, LimitKey, LimitUsage, LimitedBy, Rate};
pub use manage::{CancelPart, DeletePart, DeleteReport, RetentionRule};
pub use ops::{Explanation, LaneInfo, PauseOutcome, QueueFacts, WorkerInfo};
pub use prepare::PreparedExecution;
pub use read::{
    AttemptRecord, ExecutionSnapshot, ListCursor, ListFilter, ListPage, Page, Pause, StateCounts,
    WaitReason, WaitingOn,
};
pub use routing::{
    DEFAULT_SESSION_IDLE, MAX_SESSION_IDLE, MIN_SESSION_IDLE, SessionLock, Version, VersionRange,
};
pub use steps::{ChangeMark, ProgressFrame, StateEntry, StepOutcome, StepRecord, StepStatus};
pub use submit::{CreateOutcome, NewExecution};
pub use wait::{
    NewSignal, OnTimeout, Signal, SignalOutcome, SuspendOutcome, SuspendRequest, Suspension,
    WaitCondition, WaitEnded,
};
pub use work::{Claim, ClaimRequest, Failure, RenewOutcome, RenewRequest, RenewStatus};
