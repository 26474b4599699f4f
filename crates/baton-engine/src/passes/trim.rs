//! Deletes terminal executions older than the retention.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use async_trait::async_trait;
use baton_core::{EngineBackend, PartitionId, Result, ScanReport};

use super::Pass;
use crate::SchedulerMetrics;

/// Terminal executions finished at least `retention` ago → deleted.
#[derive(Debug)]
pub struct TrimRetention {
    /// How long terminal executions are kept.
    pub retention: Duration,
    /// Sweep interval.
    pub sweep: Duration,
}

#[async_trait]
impl Pass for TrimRetention {
    fn name(&self) -> &'static str {
        "trim"
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
        backend
            .trim_terminal(partition, self.retention, limit)
            .await
    }

    fn counter<'m>(&self, metrics: &'m SchedulerMetrics) -> &'m AtomicU64 {
        &metrics.trimmed
    }
}
