//! Promotes delayed executions whose start time has come.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use async_trait::async_trait;
use baton_core::{EngineBackend, PartitionId, Result, ScanReport};

use super::Pass;
use crate::SchedulerMetrics;

/// `delayed` → `waiting` when `run_at` comes.
#[derive(Debug)]
pub struct PromoteDue {
    /// Sweep interval.
    pub sweep: Duration,
}

#[async_trait]
impl Pass for PromoteDue {
    fn name(&self) -> &'static str {
        "promote"
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
        backend.promote_due(partition, limit).await
    }

    fn counter<'m>(&self, metrics: &'m SchedulerMetrics) -> &'m AtomicU64 {
        &metrics.promoted
    }
}
