//! # baton-engine
//!
//! The scheduler that keeps time moving for a Baton deployment ("engine"
//! in Baton names the whole service — `EngineBackend`, `EngineError`, the
//! engine processes that `baton serve` runs — and the scheduler is one part
//! of an engine process). It runs the
//! backend's per-partition passes — promote due delayed work, reclaim expired
//! leases, expire deadlines, act on timed-out waits (durable timers), trim
//! old terminal executions, finish the cancels of subtrees too big for one
//! call — on the partitions this process
//! owns. Several engine processes against one backend split the
//! partitions through ownership leases stored in the backend
//! ([`EngineBackend::sync_ownership`]); when one joins, leaves or dies, the
//! others rebalance within about one ownership TTL.
//!
//! ```no_run
//! # async fn demo(backend: std::sync::Arc<dyn baton_core::EngineBackend>) {
//! let engine = baton_engine::Scheduler::start(backend, baton_engine::SchedulerConfig::default());
//! // ... serve requests ...
//! engine.shutdown().await;
//! # }
//! ```

mod ownership;
mod passes;
mod scanner;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use baton_core::{EngineBackend, NodeId, SharedClock, SystemClock};
use tokio::sync::watch;
use tokio::task::JoinSet;

use passes::{
    CascadeDue, ExpireDeadlines, Pass, PromoteDue, ReclaimLeases, TimeoutDue, TrimRetention,
};

/// Scheduler settings.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SchedulerConfig {
    /// This process's identity for partition ownership. Default:
    /// `<hostname>-<pid>-<random>`.
    pub node_id: NodeId,
    /// How long terminal executions are kept before trimming. Default 7 days.
    pub retention: Duration,
    /// Most executions one pass changes before yielding. Default 500.
    pub batch: usize,
    /// Ownership lease length; heartbeats run every third of it. A killed
    /// node's partitions are taken over within about this long. Default 15 s.
    pub ownership_ttl: Duration,
    /// How often promote, reclaim, expire, timeout and cascade pass over every owned
    /// partition even when nothing is known to be due: the bound on how late
    /// work written by another process is noticed. Default 1 s.
    pub sweep: Duration,
    /// The same for the retention trim. Default 60 s.
    pub trim_sweep: Duration,
    /// The clock due times are compared with; the backend's in production.
    pub clock: SharedClock,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            node_id: default_node_id(),
            retention: Duration::from_secs(7 * 24 * 3600),
            batch: 500,
            ownership_ttl: Duration::from_secs(15),
            sweep: Duration::from_secs(1),
            trim_sweep: Duration::from_secs(60),
            clock: SystemClock::shared(),
        }
    }
}

impl SchedulerConfig {
    /// Sets the node id.
    pub fn with_node_id(mut self, node_id: NodeId) -> Self {
        self.node_id = node_id;
        self
    }

    /// Sets the retention.
    pub fn with_retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// Sets the ownership TTL.
    pub fn with_ownership_ttl(mut self, ttl: Duration) -> Self {
        self.ownership_ttl = ttl;
        self
    }

    /// Sets the sweep interval of promote, reclaim, expire, timeout and
    /// cascade.
    pub fn with_sweep(mut self, sweep: Duration) -> Self {
        self.sweep = sweep;
        self
    }

    /// Sets the sweep interval of the retention trim.
    pub fn with_trim_sweep(mut self, sweep: Duration) -> Self {
        self.trim_sweep = sweep;
        self
    }
}

/// `<hostname>-<pid>-<random>`: readable in logs, unique per process.
fn default_node_id() -> NodeId {
    let host: String = std::fs::read_to_string("/etc/hostname")
        .unwrap_or_default()
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        .take(64)
        .collect();
    let nonce = baton_core::LeaseToken::random_nonce() & 0xffff_ffff;
    let host = if host.is_empty() { "node".into() } else { host };
    NodeId::new(format!("{host}-{}-{nonce:08x}", std::process::id()))
        .unwrap_or_else(|_| NodeId::generate())
}

/// Counters of what the engine did, for `/metrics`.
#[derive(Debug, Default)]
pub struct SchedulerMetrics {
    /// Delayed executions promoted to waiting.
    pub promoted: AtomicU64,
    /// Expired leases reclaimed.
    pub reclaimed: AtomicU64,
    /// Executions expired by their deadline.
    pub expired: AtomicU64,
    /// Suspended executions whose wait timed out (resumed, failed or
    /// cancelled as their suspension said).
    pub timed_out: AtomicU64,
    /// Terminal executions trimmed.
    pub trimmed: AtomicU64,
    /// Descendants cancelled by the cascade pass (those a cancel call
    /// reached itself are counted in its answer, not here).
    pub cascaded: AtomicU64,
    /// Passes or heartbeats that failed (backend errors); retried.
    pub errors: AtomicU64,
    /// Partitions this node owns now (a gauge).
    pub owned_partitions: AtomicU64,
    /// Engine nodes alive at the last heartbeat (a gauge).
    pub live_nodes: AtomicU64,
}

/// A running engine.
#[derive(Debug)]
pub struct Scheduler {
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
    metrics: Arc<SchedulerMetrics>,
    node_id: NodeId,
}

impl Scheduler {
    /// Starts ownership heartbeats and the six scanners on the current Tokio
    /// runtime.
    pub fn start(backend: Arc<dyn EngineBackend>, config: SchedulerConfig) -> Scheduler {
        let (stop, stopped) = watch::channel(false);
        let (owned_tx, owned_rx) = watch::channel(Vec::new());
        let metrics = Arc::new(SchedulerMetrics::default());
        let mut tasks = JoinSet::new();
        tasks.spawn(
            ownership::Owner {
                backend: backend.clone(),
                node: config.node_id.clone(),
                ttl: config.ownership_ttl,
                metrics: metrics.clone(),
                owned: owned_tx,
                stop: stopped.clone(),
            }
            .run(),
        );
        let passes: [Box<dyn Pass>; 6] = [
            Box::new(PromoteDue {
                sweep: config.sweep,
            }),
            Box::new(ReclaimLeases {
                sweep: config.sweep,
            }),
            Box::new(ExpireDeadlines {
                sweep: config.sweep,
            }),
            Box::new(TimeoutDue {
                sweep: config.sweep,
            }),
            Box::new(TrimRetention {
                retention: config.retention,
                sweep: config.trim_sweep,
            }),
            Box::new(CascadeDue {
                sweep: config.sweep,
            }),
        ];
        for pass in passes {
            tasks.spawn(
                scanner::Scanner {
                    backend: backend.clone(),
                    pass,
                    clock: config.clock.clone(),
                    batch: config.batch,
                    metrics: metrics.clone(),
                    owned: owned_rx.clone(),
                    stop: stopped.clone(),
                }
                .run(),
            );
        }
        Scheduler {
            stop,
            tasks,
            metrics,
            node_id: config.node_id,
        }
    }

    /// This engine's node id.
    pub fn node_id(&self) -> &NodeId {
        &self.node_id
    }

    /// What the engine did so far.
    pub fn metrics(&self) -> Arc<SchedulerMetrics> {
        self.metrics.clone()
    }

    /// Stops the scanners, waits for their current pass, and releases this
    /// node's partitions so the other nodes take them at once.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}
