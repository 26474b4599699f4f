//! [`Worker`]: claims executions from lanes and runs their handlers.
//!
//! Three tasks share one `Shared` state:
//! - the claim loop takes a free concurrency slot (or as many as are free),
//!   asks for that many executions, waiting for wake-ups rather than polling,
//!   and spawns one task per claimed execution;
//! - the heartbeat renews every held lease in one batched call per tick and
//!   fires the stop token of executions whose lease was lost or cancelled;
//! - each execution task runs its handler in a task of its own, so a panic is
//!   caught as a `JoinError` and recorded as a failed attempt.
//!
//! Exactly one party reports an execution's outcome: whoever removes it from
//! the `held` map (its task when the handler returns, or shutdown when it
//! releases unfinished work).
//!
//! The builder (settings and start) is in `builder`, the claim loop,
//! execution tasks and heartbeat in `run`.

mod builder;
mod run;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use baton_core::{ExecutionId, WorkerId};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use builder::WorkerBuilder;

use crate::client::Client;
use crate::context::StopReason;
use run::{Held, Outcome, Shared};

/// A running worker: claims executions from its lanes and runs their
/// handlers until [`shutdown`](Self::shutdown).
///
/// # Guarantees
/// - At most `concurrency` handlers run at once; claims ask for as many
///   executions as there are free slots, so nothing claimed waits for a slot.
/// - Idle workers wait for wake-ups (a backend's `wait_for_work`, or the
///   HTTP claim long-poll) instead of polling in a tight loop.
/// - One heartbeat renews every held lease in one call, every third of the
///   lease. When a lease is lost or the execution cancelled, the handler's
///   [`Context::stopped`](crate::Context::stopped) fires; handlers are expected to return soon after
///   (they are not aborted), and their outcome is then not reported, since
///   the backend would refuse it.
/// - A handler's `Ok` completes the execution; its [`HandlerError`](crate::HandlerError) chooses
///   the failure (retry per policy, retry after a delay, fail now); a panic
///   is a retryable failed attempt, and the worker goes on.
/// - [`shutdown`](Self::shutdown) stops claiming, lets running handlers
///   finish within a grace period, then releases the rest for an immediate
///   retry (a retryable failure with no delay, which counts as an attempt).
///
/// Dropping a `Worker` without `shutdown` leaves its tasks running until the
/// runtime stops; executions it held are then reclaimed after their lease.
pub struct Worker {
    shared: Arc<Shared>,
    stop_claiming: watch::Sender<bool>,
    stop_heartbeat: watch::Sender<bool>,
    claim_task: JoinHandle<()>,
    heartbeat_task: JoinHandle<()>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("worker_id", &self.shared.request.worker_id)
            .field("lanes", &self.shared.request.lanes)
            .field("concurrency", &self.shared.concurrency)
            .finish_non_exhaustive()
    }
}

/// What a worker did, as returned by [`Worker::shutdown`] and
/// [`Worker::stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerStats {
    /// Executions claimed.
    pub claimed: u64,
    /// Executions completed by this worker.
    pub completed: u64,
    /// Failed attempts reported (handler errors and panics).
    pub failed: u64,
    /// Of those, handler panics.
    pub panicked: u64,
    /// Executions whose outcome was not reported because their lease was
    /// lost or they were cancelled.
    pub abandoned: u64,
    /// Executions released at shutdown because their handler did not finish
    /// within the grace period.
    pub released: u64,
    /// Attempts that ended by handing the lease back to wait for the
    /// execution's children ([`Context::wait_children`](crate::Context::wait_children)).
    pub waiting: u64,
}

#[derive(Debug, Default)]
struct Counters {
    claimed: AtomicU64,
    completed: AtomicU64,
    failed: AtomicU64,
    panicked: AtomicU64,
    abandoned: AtomicU64,
    released: AtomicU64,
    waiting: AtomicU64,
}

impl Counters {
    fn add(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> WorkerStats {
        WorkerStats {
            claimed: self.claimed.load(Ordering::Relaxed),
            completed: self.completed.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            panicked: self.panicked.load(Ordering::Relaxed),
            abandoned: self.abandoned.load(Ordering::Relaxed),
            released: self.released.load(Ordering::Relaxed),
            waiting: self.waiting.load(Ordering::Relaxed),
        }
    }
}

impl Worker {
    /// A builder for a worker using `client`'s connection, namespace and (if
    /// no lane is named) lane.
    ///
    /// ```no_run
    /// # async fn demo(client: baton_sdk::Client) -> baton_core::Result<()> {
    /// let worker = baton_sdk::Worker::builder(&client)
    ///     .handler("add", |_ctx, (a, b): (i64, i64)| async move { Ok(a + b) })
    ///     .start()?;
    /// # let _ = worker; Ok(()) }
    /// ```
    pub fn builder(client: &Client) -> WorkerBuilder {
        WorkerBuilder::new(client)
    }

    /// The id recorded on this worker's attempts.
    pub fn worker_id(&self) -> &WorkerId {
        &self.shared.request.worker_id
    }

    /// Counts so far.
    pub fn stats(&self) -> WorkerStats {
        self.shared.counters.snapshot()
    }

    /// Handlers running right now.
    pub fn running(&self) -> usize {
        self.shared.held.lock().map(|h| h.len()).unwrap_or(0)
    }

    /// Stops gracefully and answers what the worker did.
    ///
    /// 1. Stops claiming (an HTTP long-poll already sent is awaited, and what
    ///    it brings is run like any other claim).
    /// 2. Waits up to `grace` for running handlers to return and their
    ///    outcomes to be reported.
    /// 3. Fires the stop token of the handlers still running with
    ///    [`StopReason::Shutdown`], aborts them, and releases their
    ///    executions ([`EngineBackend::release`](baton_core::EngineBackend::release)):
    ///    `waiting` again at once for another worker, instead of after the
    ///    lease expires, and no attempt is spent — an execution on its last
    ///    attempt is not failed by a shutdown.
    /// 4. Stops the heartbeat.
    ///
    /// ```no_run
    /// # async fn demo(worker: baton_sdk::Worker) {
    /// let stats = worker.shutdown(std::time::Duration::from_secs(30)).await;
    /// println!("released {} executions", stats.released);
    /// # }
    /// ```
    pub async fn shutdown(self, grace: Duration) -> WorkerStats {
        let _ = self.stop_claiming.send(true);
        let _ = self.claim_task.await;
        let all = u32::try_from(self.shared.concurrency).unwrap_or(u32::MAX);
        let drained = tokio::time::timeout(grace, self.shared.slots.acquire_many(all)).await;
        if !matches!(drained, Ok(Ok(_))) {
            let leftovers: Vec<(ExecutionId, Held)> = match self.shared.held.lock() {
                Ok(mut held) => held.drain().collect(),
                Err(_) => Vec::new(),
            };
            for (id, h) in leftovers {
                h.stop.stop(StopReason::Shutdown);
                h.handler.abort();
                tracing::info!(execution = %id, worker = %self.shared.request.worker_id, "released at shutdown");
                if self.shared.report(&h.lease, Outcome::Release).await {
                    Counters::add(&self.shared.counters.released);
                }
            }
            // The execution tasks now find their entry gone and end at once.
            let _ = self.shared.slots.acquire_many(all).await;
        }
        let _ = self.stop_heartbeat.send(true);
        let _ = self.heartbeat_task.await;
        self.shared.counters.snapshot()
    }
}
