//! Due-time scheduling of one pass over the partitions this node owns.
//!
//! Every pass answers when the next item of its kind falls due in the
//! partition it scanned. The scanner keeps that time per partition and sleeps
//! until the earliest one, so an idle engine sleeps and due work is acted on
//! when it falls due. Work written by another process after a pass (a
//! submission with a short delay elsewhere, say) is caught by a sweep of every
//! owned partition each `sweep_every`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use baton_core::{EngineBackend, PartitionId, SharedClock, Timestamp};
use tokio::sync::watch;

use crate::SchedulerMetrics;
use crate::passes::Pass;

/// Back-off after a failed pass, so a down backend is not hammered.
const ERROR_BACKOFF: Duration = Duration::from_millis(500);

pub(crate) struct Scanner {
    pub backend: Arc<dyn EngineBackend>,
    pub pass: Box<dyn Pass>,
    pub clock: SharedClock,
    pub batch: usize,
    pub metrics: Arc<SchedulerMetrics>,
    pub owned: watch::Receiver<Vec<PartitionId>>,
    pub stop: watch::Receiver<bool>,
}

impl Scanner {
    pub async fn run(mut self) {
        // When each owned partition must next be passed over.
        let mut due: BTreeMap<PartitionId, Timestamp> = BTreeMap::new();
        let mut next_sweep = self.clock.now();
        loop {
            if *self.stop.borrow() {
                return;
            }
            let owned = self.owned.borrow_and_update().clone();
            due.retain(|p, _| owned.contains(p));
            let now = self.clock.now();
            let sweep = now >= next_sweep;
            if sweep {
                next_sweep = now.saturating_add(self.pass.sweep_every());
            }
            let mut failed = false;
            for p in &owned {
                let is_due = due.get(p).is_none_or(|t| *t <= now);
                if !(sweep || is_due) {
                    continue;
                }
                match self.pass.run(self.backend.as_ref(), *p, self.batch).await {
                    Ok(report) => {
                        self.pass
                            .counter(&self.metrics)
                            .fetch_add(report.processed, Ordering::Relaxed);
                        match report.next_due {
                            Some(t) => due.insert(*p, t),
                            None => due.insert(*p, Timestamp::from_millis(i64::MAX)),
                        };
                    }
                    Err(e) => {
                        failed = true;
                        self.metrics.errors.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(pass = self.pass.name(), partition = p.get(), error = %e, "scheduler pass failed; will retry");
                        due.insert(*p, now.saturating_add(ERROR_BACKOFF));
                    }
                }
                if *self.stop.borrow() {
                    return;
                }
            }
            let wake_at = due
                .values()
                .copied()
                .chain(std::iter::once(next_sweep))
                .min()
                .unwrap_or(next_sweep);
            let mut sleep = wake_at.duration_since(self.clock.now());
            if failed {
                sleep = sleep.max(Duration::from_millis(10));
            }
            if sleep.is_zero() {
                // Work is due already (a pass stopped at its limit): yield so
                // the other passes and requests get the runtime.
                tokio::task::yield_now().await;
                continue;
            }
            tokio::select! {
                _ = tokio::time::sleep(sleep) => {}
                _ = self.owned.changed() => {}
                _ = self.stop.changed() => {}
            }
        }
    }
}
