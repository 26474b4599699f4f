//! The conformance cases. Each is `pub async fn <name>(harness: &dyn Harness)`,
//! builds its own [`Ctx`](crate::Ctx) and panics with a message naming what
//! differed from the contract in `baton_core::EngineBackend`.
//!
//! Backends do not call these directly; [`conformance_suite!`](crate::conformance_suite)
//! emits one test per case.

mod admin;
mod cancel;
mod claim;
mod complete;
mod create;
mod deadline;
mod deps;
mod events;
mod fail;
mod fairness;
mod flows;
mod idempotency;
mod input;
mod limits;
mod manage;
mod memory;
mod misc;
mod ops;
mod ownership;
mod pause;
mod renew;
mod routing;
mod scan;
mod steps;
mod tree;
mod trim;
mod wait;
mod waits;

pub use admin::*;
pub use cancel::*;
pub use claim::*;
pub use complete::*;
pub use create::*;
pub use deadline::*;
pub use deps::*;
pub use events::*;
pub use fail::*;
pub use fairness::*;
pub use flows::*;
pub use idempotency::*;
pub use input::*;
pub use limits::*;
pub use manage::*;
pub use memory::*;
pub use misc::*;
pub use ops::*;
pub use ownership::*;
pub use pause::*;
pub use renew::*;
pub use routing::*;
pub use scan::*;
pub use steps::*;
pub use tree::*;
pub use trim::*;
pub use wait::*;
pub use waits::*;

/// The source of every case file, so the crate's own tests can check that
/// every case is listed in the macro.
#[cfg(test)]
pub(crate) const SOURCES: &[&str] = &[
    include_str!("admin.rs"),
    include_str!("cancel.rs"),
    include_str!("claim.rs"),
    include_str!("complete.rs"),
    include_str!("create.rs"),
    include_str!("deadline.rs"),
    include_str!("deps.rs"),
    include_str!("events.rs"),
    include_str!("fail.rs"),
    include_str!("flows.rs"),
    include_str!("idempotency.rs"),
    include_str!("input.rs"),
    include_str!("fairness.rs"),
    include_str!("limits.rs"),
    include_str!("manage.rs"),
    include_str!("memory.rs"),
    include_str!("misc.rs"),
    include_str!("ops.rs"),
    include_str!("ownership.rs"),
    include_str!("pause.rs"),
    include_str!("renew.rs"),
    include_str!("routing.rs"),
    include_str!("scan.rs"),
    include_str!("steps.rs"),
    include_str!("tree.rs"),
    include_str!("trim.rs"),
    include_str!("wait.rs"),
    include_str!("waits.rs"),
];

/// What every case file imports.
mod prelude {
    pub(crate) use std::collections::{BTreeMap, BTreeSet};
    pub(crate) use std::time::Duration;

    pub(crate) use baton_core::{
        AttemptOutcome, AttemptRecord, Backoff, CancelRequest, Claim, ClaimRequest, EngineError,
        ExecutionId, Failure, LeaseToken, ListFilter, Namespace, NewExecution, Page, RenewStatus,
        RetryDecision, RetryPolicy, State, StateCounts, Timestamp,
    };

    pub(crate) use crate::Harness;
    pub(crate) use crate::ctx::*;
    pub(crate) use crate::expect::*;
}
