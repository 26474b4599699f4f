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
mod layout;
pub mod rules;
mod sightings;
pub mod stored;
pub mod url;

pub use crate::model::PreparedExecution;
pub use crate::wake::{Wakeups, Watch, Watchers, deadline_in, recv_batch, wait_for_change};
pub use sightings::Sightings;
