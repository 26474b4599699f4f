//! Expires executions whose deadline passed.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use async_trait::async_trait;
use baton_core::{EngineBackend, PartitionId, Result, ScanReport};

use super::Pass;
use crate::SchedulerMetrics;

/// any non-terminal state → `expired` at the deadline.
#[derive(Debug)]
pub struct ExpireDeadlines {
    /// Sweep interval.
    pub sweep: Duration,
}

#[async_trait]
impl Pass for ExpireDeadlines {
    fn name(&self) -> &'static str {
        "expire"
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
        backend.expire_deadlines(partition, limit).await
    }

    fn counter<'m>(&self, metrics: &'m SchedulerMetrics) -> &'m AtomicU64 {
        &metrics.expired
    }
}
