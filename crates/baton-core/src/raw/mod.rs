//! For backend implementors only: the parts every backend shares.
//!
//! A backend stores facts; what those facts *mean* — whether a lease is
//! current, what a failure turns into, which partitions a node should own,
//! where a page ends — is decided here, once, as pure functions over stored
//! facts. The SQL backends call these functions; the Valkey function library
//! (`lua/`) mirrors some of them inside its atomic calls, each mirroring
//! function naming the Rust function it follows, and the Valkey tests run
//! tables of cases through both and compare.
//!
//! Applications never need this module: they use [`EngineBackend`] and
//! [`AdminBackend`].
//!
//! [`EngineBackend`]: crate::EngineBackend
//! [`AdminBackend`]: crate::AdminBackend

pub mod bulk;
pub mod cascade;
pub mod counters;
pub mod delete;
mod layout;
mod placement;
pub mod rules;
mod sightings;
pub mod stored;
pub mod url;

pub use crate::model::PreparedExecution;
pub use crate::wake::{Wakeups, Watch, Watchers, deadline_in, recv_batch, wait_for_change};
pub use placement::Placement;
pub use sightings::Sightings;

/// `describe_many` as a loop of `describe` (the provided method): checks
/// the count, answers `None` for an id that names no execution.
pub async fn describe_each<B: crate::AdminBackend + ?Sized>(
    b: &B,
    ids: &[crate::ExecutionId],
) -> crate::Result<Vec<Option<crate::ExecutionSnapshot>>> {
    check_describe_many(ids)?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        out.push(match b.describe(id).await {
            Ok(snap) => Some(snap),
            Err(crate::EngineError::NotFound { .. }) => None,
            Err(e) => return Err(e),
        });
    }
    Ok(out)
}

/// Checks a `describe_many` call: at most
/// [`Page::MAX_LIMIT`](crate::Page::MAX_LIMIT) ids.
pub fn check_describe_many(ids: &[crate::ExecutionId]) -> crate::Result<()> {
    if ids.len() > crate::Page::MAX_LIMIT {
        return Err(crate::EngineError::invalid(
            "ids",
            ids.len(),
            format!("at most {} ids per call", crate::Page::MAX_LIMIT),
        ));
    }
    Ok(())
}

/// The answer of `describe_many` from the snapshots a backend read in one
/// go (any order): in the order of `ids`, `None` where none was read.
pub fn in_order_of(
    ids: &[crate::ExecutionId],
    found: Vec<crate::ExecutionSnapshot>,
) -> Vec<Option<crate::ExecutionSnapshot>> {
    let by_id: std::collections::HashMap<crate::ExecutionId, crate::ExecutionSnapshot> =
        found.into_iter().map(|s| (s.id.clone(), s)).collect();
    ids.iter().map(|id| by_id.get(id).cloned()).collect()
}
