//! # baton-engine
//!
//! The scheduler that keeps time moving for a Baton deployment: it runs the
//! backend's per-partition passes (promote due delayed work, reclaim expired
//! leases, expire deadlines, trim old terminal executions).
//!
//! ```no_run
//! # async fn demo(backend: std::sync::Arc<dyn baton_core::EngineBackend>) {
//! let engine = baton_engine::Engine::start(backend, baton_engine::EngineConfig::default());
//! // ... serve requests ...
//! engine.shutdown().await;
//! # }
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use baton_core::EngineBackend;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Engine settings.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct EngineConfig {
    /// How long terminal executions are kept before trimming. Default 7 days.
    pub retention: Duration,
    /// Most executions one pass changes before yielding. Default 500.
    pub batch: usize,
    /// Longest sleep between passes when nothing is known to be due.
    /// Default 100 ms.
    pub max_idle: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            retention: Duration::from_secs(7 * 24 * 3600),
            batch: 500,
            max_idle: Duration::from_millis(100),
        }
    }
}

/// Counters of what the engine's passes did, for `/metrics`.
#[derive(Debug, Default)]
pub struct EngineMetrics {
    /// Delayed executions promoted to waiting.
    pub promoted: AtomicU64,
    /// Expired leases reclaimed.
    pub reclaimed: AtomicU64,
    /// Executions expired by their deadline.
    pub expired: AtomicU64,
    /// Terminal executions trimmed.
    pub trimmed: AtomicU64,
    /// Passes that failed (backend errors); the engine retries them.
    pub errors: AtomicU64,
}

/// A running engine. Dropping it without [`shutdown`](Engine::shutdown)
/// stops the loops at their next await.
#[derive(Debug)]
pub struct Engine {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    metrics: Arc<EngineMetrics>,
}

impl Engine {
    /// Starts the scanners on the current Tokio runtime.
    pub fn start(backend: Arc<dyn EngineBackend>, config: EngineConfig) -> Engine {
        let (stop, mut stopped) = watch::channel(false);
        let metrics = Arc::new(EngineMetrics::default());
        let m = metrics.clone();
        let task = tokio::spawn(async move {
            loop {
                for p in backend.partitions().iter() {
                    let passes = [
                        (backend.promote_due(p, config.batch).await, &m.promoted),
                        (backend.reclaim_expired_leases(p, config.batch).await, &m.reclaimed),
                        (backend.expire_deadlines(p, config.batch).await, &m.expired),
                        (
                            backend.trim_terminal(p, config.retention, config.batch).await,
                            &m.trimmed,
                        ),
                    ];
                    for (result, counter) in passes {
                        match result {
                            Ok(r) => {
                                counter.fetch_add(r.processed, Ordering::Relaxed);
                            }
                            Err(e) => {
                                m.errors.fetch_add(1, Ordering::Relaxed);
                                tracing::warn!(partition = p.get(), error = %e, "scheduler pass failed; retrying");
                            }
                        }
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(config.max_idle) => {}
                    _ = stopped.changed() => break,
                }
            }
        });
        Engine {
            stop,
            task,
            metrics,
        }
    }

    /// What the passes did so far.
    pub fn metrics(&self) -> Arc<EngineMetrics> {
        self.metrics.clone()
    }

    /// Stops the scanners and waits for the current pass to finish.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}
