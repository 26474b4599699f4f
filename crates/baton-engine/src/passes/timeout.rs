//! Acts on suspended executions whose wait timed out: resumes, fails or
//! cancels them as their suspension says. Timers live in the backend, so a
//! restarted engine loses none.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use async_trait::async_trait;
use baton_core::{EngineBackend, PartitionId, Result, ScanReport};

use super::Pass;
use crate::SchedulerMetrics;

/// `suspended` → `waiting`, `failed` or `cancelled` when the wait times
/// out (durable timers and sleeps).
#[derive(Debug)]
pub struct TimeoutDue {
    /// Sweep interval.
    pub sweep: Duration,
}

#[async_trait]
impl Pass for TimeoutDue {
    fn name(&self) -> &'static str {
        "timeout"
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
        backend.timeout_due(partition, limit).await
    }

    fn counter<'m>(&self, metrics: &'m SchedulerMetrics) -> &'m AtomicU64 {
        &metrics.timed_out
    }
}
