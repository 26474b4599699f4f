//! Finishes cancels whose subtree was too big for the cancel call itself.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use async_trait::async_trait;
use baton_core::{EngineBackend, PartitionId, Result, ScanReport};

use super::Pass;
use crate::SchedulerMetrics;

/// Queued descendants of a cancelled execution → `cancelled`, a bounded
/// step at a time. While a partition has queued work the backend answers
/// `next_due = now`, so the scanner keeps stepping until the queue is empty.
#[derive(Debug)]
pub struct CascadeDue {
    /// Sweep interval.
    pub sweep: Duration,
}

#[async_trait]
impl Pass for CascadeDue {
    fn name(&self) -> &'static str {
        "cascade"
    }

    fn sweep_every(&self) -> Duration {
        self.sweep
    }

    async fn run(
        &self,
        backend: &dyn EngineBackend,
        partition: PartitionId,
        limit: usize,
    ) -> Result<ScanReport> {
        backend.cascade_due(partition, limit).await
    }

    fn counter<'m>(&self, metrics: &'m SchedulerMetrics) -> &'m AtomicU64 {
        &metrics.cascaded
    }
}
