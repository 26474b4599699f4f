//! Keeps this node's share of the partitions: heartbeats `sync_ownership`,
//! publishes the owned set to the scanners, and releases it on shutdown.
//!
//! If heartbeats fail, the node keeps scanning what it owns only until its
//! lease would lapse (measured on its own monotonic clock, so a backend that
//! cannot be reached never makes two nodes scan one partition for long);
//! then it scans nothing until a heartbeat succeeds again. Every pass is
//! atomic and idempotent, so the short overlap a paused process can cause is
//! harmless.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use baton_core::{EngineBackend, NodeId, PartitionId};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::SchedulerMetrics;

pub(crate) struct Owner {
    pub backend: Arc<dyn EngineBackend>,
    pub node: NodeId,
    pub ttl: Duration,
    pub metrics: Arc<SchedulerMetrics>,
    pub owned: watch::Sender<Vec<PartitionId>>,
    pub stop: watch::Receiver<bool>,
}

impl Owner {
    pub async fn run(mut self) {
        let heartbeat = self.ttl / 3;
        let mut valid_until: Option<Instant> = None;
        loop {
            let sent = Instant::now();
            match self.backend.sync_ownership(&self.node, self.ttl).await {
                Ok(o) => {
                    valid_until = Some(sent + self.ttl);
                    self.metrics
                        .owned_partitions
                        .store(o.owned.len() as u64, Ordering::Relaxed);
                    self.metrics
                        .live_nodes
                        .store(u64::from(o.live_nodes), Ordering::Relaxed);
                    self.owned.send_if_modified(|cur| {
                        if *cur == o.owned {
                            false
                        } else {
                            tracing::info!(node = %self.node, owned = o.owned.len(), live_nodes = o.live_nodes, "partition ownership changed");
                            *cur = o.owned;
                            true
                        }
                    });
                }
                Err(e) => {
                    self.metrics.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(node = %self.node, error = %e, "partition ownership heartbeat failed; will retry");
                    if valid_until.is_none_or(|t| Instant::now() >= t) {
                        self.drop_all();
                    }
                }
            }
            // Wake at the next heartbeat, or when the lease would lapse.
            let next = match valid_until {
                Some(t) if t > Instant::now() => (Instant::now() + heartbeat).min(t),
                _ => Instant::now() + heartbeat,
            };
            tokio::select! {
                _ = tokio::time::sleep_until(next) => {}
                _ = self.stop.changed() => break,
            }
            if valid_until.is_some_and(|t| Instant::now() >= t) {
                self.drop_all();
            }
        }
        self.drop_all();
        if let Err(e) = self.backend.release_ownership(&self.node).await {
            tracing::warn!(node = %self.node, error = %e, "could not release partitions; they free up when the lease lapses");
        }
    }

    fn drop_all(&self) {
        self.metrics.owned_partitions.store(0, Ordering::Relaxed);
        self.owned.send_if_modified(|cur| {
            let changed = !cur.is_empty();
            cur.clear();
            changed
        });
    }
}
