//! Reclaims running executions whose lease expired; the retry policy decides what follows.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use async_trait::async_trait;
use baton_core::{EngineBackend, PartitionId, Result, ScanReport};

use super::Pass;
use crate::SchedulerMetrics;

/// `running` with an expired lease → retried or `failed`.
#[derive(Debug)]
pub struct ReclaimLeases {
    /// Sweep interval.
    pub sweep: Duration,
}

#[async_trait]
impl Pass for ReclaimLeases {
    fn name(&self) -> &'static str {
        "reclaim"
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
        backend.reclaim_expired_leases(partition, limit).await
    }

    fn counter<'m>(&self, metrics: &'m SchedulerMetrics) -> &'m AtomicU64 {
        &metrics.reclaimed
    }
}
