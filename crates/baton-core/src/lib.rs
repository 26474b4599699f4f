//! # baton-core
//!
//! The contract of Baton, a durable distributed execution engine: ids,
//! validated names, states, policies, errors and the [`EngineBackend`] trait
//! that every storage backend (SQLite, Postgres, Valkey/Redis) implements.
//! This crate does no I/O.
//!
//! Start at [`EngineBackend`]: its documentation is the behaviour every backend
//! guarantees, and `baton-testkit` runs the same conformance suite against each
//! of them.

mod backend;
mod error;
mod id;
mod long_poll;
mod model;
mod names;
mod policy;
pub mod raw;
mod state;
mod time;
mod wake;

pub use backend::{AdminBackend, BackendKind, Capabilities, EngineBackend, EngineBackendExt};
pub use error::{EngineError, Result};
pub use id::{ExecutionId, LeaseToken, PartitionCount, PartitionId};
pub use long_poll::{LongPoll, MIN_CLAIM_SPACING, claim_waiting};
pub use model::{
    AttemptRecord, BulkAction, BulkReport, BulkRequest, CancelPart, CancelRequest, CancelScope,
    Cancellation, ChangeMark, Claim, ClaimRequest, CreateOutcome, DEFAULT_SESSION_IDLE, DeletePart,
    DeleteReport, DependencyMode, DependencyPolicy, EventKind, ExecutionEvent, ExecutionSnapshot,
    Explanation, Failure, LaneInfo, Limit, LimitKey, LimitUsage, LimitedBy, ListCursor, ListFilter,
    ListPage, MAX_SESSION_IDLE, MIN_SESSION_IDLE, NewExecution, NewSignal, OnTimeout, Ownership,
    Page, PartitionOwner, Pause, PauseOutcome, ProgressFrame, QueueFacts, Rate, RenewOutcome,
    RenewRequest, RenewStatus, RetentionRule, ScanReport, SessionLock, Signal, SignalOutcome,
    StateCounts, StateEntry, StepOutcome, StepRecord, StepStatus, SuspendOutcome, SuspendRequest,
    Suspension, Tree, TreeNode, Upstream, UpstreamFailure, Version, VersionRange, WaitCondition,
    WaitEnded, WaitReason, WaitingOn, WorkerInfo,
};
pub use names::{
    CapabilityName, ChildKey, IdempotencyKey, Kind, Lane, LimitName, MAX_CAPABILITIES,
    MAX_TAG_VALUE_LEN, MAX_TAGS, Namespace, NodeId, SessionName, SignalName, StateKey, StepName,
    TagKey, WorkerId, validate_tag_value,
};
pub use policy::{Backoff, Limits, RetryDecision, RetryPolicy};
pub use state::{AttemptOutcome, State};
pub use time::{
    Clock, ManualClock, SharedClock, SystemClock, Timestamp, format_duration, parse_duration,
};
