//! The six scheduler passes, one small module each. A pass knows which
//! backend operation it drives and which counter it feeds; the scheduling
//! (when to run it, on which partitions) lives in `scanner.rs`.

mod cascade;
mod expire;
mod promote;
mod reclaim;
mod timeout;
mod trim;

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use async_trait::async_trait;
use baton_core::{EngineBackend, PartitionId, Result, ScanReport};

use crate::SchedulerMetrics;

pub use cascade::CascadeDue;
pub use expire::ExpireDeadlines;
pub use promote::PromoteDue;
pub use reclaim::ReclaimLeases;
pub use timeout::TimeoutDue;
pub use trim::TrimRetention;

/// One kind of per-partition pass.
#[async_trait]
pub trait Pass: Send + Sync + 'static {
    /// Name for logs.
    fn name(&self) -> &'static str;

    /// How often every owned partition is passed over even when nothing is
    /// known to be due there: the bound on how late the engine notices work
    /// written by another process.
    fn sweep_every(&self) -> Duration;

    /// Runs the pass on one partition.
    async fn run(
        &self,
        backend: &dyn EngineBackend,
        partition: PartitionId,
        limit: usize,
    ) -> Result<ScanReport>;

    /// The counter fed with what the pass processed.
    fn counter<'m>(&self, metrics: &'m SchedulerMetrics) -> &'m AtomicU64;
}
