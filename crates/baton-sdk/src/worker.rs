//! [`Worker`]: claims executions from lanes and runs their handlers.
//!
//! Three tasks share one [`Shared`] state:
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

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use baton_core::{
    CapabilityName, Claim, ClaimRequest, EngineError, ExecutionId, Failure, Lane, LeaseToken,
    Namespace, RenewRequest, RenewStatus, Result, WorkerId,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::{AbortHandle, JoinHandle};

use crate::client::Client;
use crate::context::{Context, HandlerError, StopReason, StopToken};
use crate::transport::Transport;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;
type Handler = Arc<
    dyn Fn(Context, Vec<u8>) -> BoxFuture<std::result::Result<Vec<u8>, HandlerError>> + Send + Sync,
>;

/// How long one claim waits for work on a backend in this process before
/// claiming again; bounds how late work submitted by another process is seen
/// on backends without cross-process wake-ups.
const DIRECT_CLAIM_WAIT: Duration = Duration::from_millis(500);
/// How long one HTTP claim long-polls. Shutdown waits for an outstanding
/// long-poll to answer (its leases must not be dropped), so this also bounds
/// how long stopping to claim may take.
const HTTP_CLAIM_WAIT: Duration = Duration::from_secs(2);
/// Pause after a failed claim, doubling up to [`ERROR_PAUSE_MAX`].
const ERROR_PAUSE_MIN: Duration = Duration::from_millis(50);
const ERROR_PAUSE_MAX: Duration = Duration::from_secs(5);
/// How often reporting an outcome is tried when the backend is unavailable.
const REPORT_TRIES: u32 = 6;

/// Configures and starts a [`Worker`].
///
/// ```no_run
/// # async fn demo(client: baton_sdk::Client) -> baton_core::Result<()> {
/// use std::time::Duration;
/// use baton_sdk::{Context, HandlerError, Worker};
///
/// #[derive(serde::Deserialize)]
/// struct Email { to: String }
///
/// async fn send(_ctx: Context, email: Email) -> Result<String, HandlerError> {
///     Ok(format!("sent to {}", email.to))
/// }
///
/// let worker = Worker::builder(&client)
///     .lane("emails")
///     .concurrency(16)
///     .lease(Duration::from_secs(30))
///     .handler("email.send", send)
///     .start()?;
/// // … until the application stops:
/// worker.shutdown(Duration::from_secs(10)).await;
/// # Ok(()) }
/// ```
pub struct WorkerBuilder {
    transport: Transport,
    namespace: String,
    lanes: Vec<String>,
    worker_id: Option<String>,
    capabilities: Vec<String>,
    concurrency: usize,
    lease: Duration,
    claim_wait: Option<Duration>,
    handlers: HashMap<String, Handler>,
    fallback: Option<Handler>,
    default_lane: String,
}

impl std::fmt::Debug for WorkerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerBuilder")
            .field("namespace", &self.namespace)
            .field("lanes", &self.lanes)
            .field("concurrency", &self.concurrency)
            .field("lease", &self.lease)
            .field("kinds", &self.handlers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl WorkerBuilder {
    /// Claims from `namespace` instead of the client's.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Adds a lane to claim from (up to 16); the client's lane when none is
    /// named.
    pub fn lane(mut self, lane: impl Into<String>) -> Self {
        self.lanes.push(lane.into());
        self
    }

    /// The id recorded on attempts; default `<host>-<pid>-<random>`.
    pub fn worker_id(mut self, id: impl Into<String>) -> Self {
        self.worker_id = Some(id.into());
        self
    }

    /// Offers a capability: executions requiring it may be claimed.
    pub fn capability(mut self, capability: impl Into<String>) -> Self {
        self.capabilities.push(capability.into());
        self
    }

    /// Most handlers running at once (default 1, at least 1).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Lease length asked for at claim and at every renewal (default 30 s).
    /// The heartbeat renews every third of it, so a crashed worker's work is
    /// reclaimed within about one lease.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// How long one claim waits for work before asking again (default 500 ms
    /// on a backend URL, 2 s over HTTP).
    pub fn claim_wait(mut self, wait: Duration) -> Self {
        self.claim_wait = Some(wait);
        self
    }

    /// Registers a typed handler for `kind`: the payload is decoded from JSON
    /// as `P` (a payload that does not decode fails the execution
    /// permanently) and the output encoded as the JSON result.
    pub fn handler<P, O, F, Fut>(mut self, kind: impl Into<String>, handler: F) -> Self
    where
        P: DeserializeOwned + Send + 'static,
        O: Serialize + Send + 'static,
        F: Fn(Context, P) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<O, HandlerError>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let erased: Handler = Arc::new(move |ctx: Context, bytes: Vec<u8>| {
            let handler = handler.clone();
            Box::pin(async move {
                let payload: P = serde_json::from_slice(&bytes).map_err(|e| {
                    HandlerError::permanent(format!(
                        "the payload does not decode as this handler's input ({e})"
                    ))
                })?;
                let out = handler(ctx, payload).await?;
                serde_json::to_vec(&out).map_err(|e| {
                    HandlerError::permanent(format!("the handler's output is not JSON ({e})"))
                })
            }) as BoxFuture<_>
        });
        self.handlers.insert(kind.into(), erased);
        self
    }

    /// Registers a handler for `kind` that takes and returns raw bytes (JSON
    /// for HTTP clients).
    pub fn raw_handler<F, Fut>(mut self, kind: impl Into<String>, handler: F) -> Self
    where
        F: Fn(Context, Vec<u8>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<Vec<u8>, HandlerError>> + Send + 'static,
    {
        self.handlers.insert(kind.into(), erase_raw(handler));
        self
    }

    /// Runs `handler` for every kind without a handler of its own. Without a
    /// fallback such executions fail retryably, so a worker that has the
    /// handler can take them.
    pub fn fallback<F, Fut>(mut self, handler: F) -> Self
    where
        F: Fn(Context, Vec<u8>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<Vec<u8>, HandlerError>> + Send + 'static,
    {
        self.fallback = Some(erase_raw(handler));
        self
    }

    /// Validates the settings and starts claiming. Must be called inside a
    /// Tokio runtime.
    ///
    /// # Errors
    /// `InvalidInput` for a malformed namespace, lane, worker id or
    /// capability, too many lanes, or a lease outside the backend's limits.
    pub fn start(self) -> Result<Worker> {
        let namespace = Namespace::new(self.namespace)?;
        let mut names = self.lanes;
        if names.is_empty() {
            names.push(self.default_lane);
        }
        let mut lanes = names
            .into_iter()
            .map(Lane::new)
            .collect::<Result<Vec<_>>>()?;
        lanes.dedup();
        let worker_id = match self.worker_id {
            Some(id) => WorkerId::new(id)?,
            None => default_worker_id()?,
        };
        let capabilities = self
            .capabilities
            .into_iter()
            .map(CapabilityName::new)
            .collect::<Result<BTreeSet<_>>>()?;
        let limits = self.transport.limits();
        let batch = self.concurrency.min(limits.max_batch);
        let Some(first) = lanes.first().cloned() else {
            return Err(EngineError::invalid("lanes", 0, "name at least one lane"));
        };
        let mut request = ClaimRequest::new(namespace, first, worker_id.clone(), batch)
            .with_capabilities(capabilities)
            .with_lease_ttl(self.lease);
        for lane in lanes.into_iter().skip(1) {
            request = request.with_lane(lane);
        }
        request.validate(&limits)?;
        let claim_wait = self.claim_wait.unwrap_or(match self.transport {
            Transport::Direct(_) => DIRECT_CLAIM_WAIT,
            Transport::Http(_) => HTTP_CLAIM_WAIT,
        });
        let shared = Arc::new(Shared {
            transport: self.transport,
            request,
            max_batch: limits.max_batch,
            slots: Arc::new(Semaphore::new(self.concurrency)),
            concurrency: self.concurrency,
            held: Mutex::new(HashMap::new()),
            handlers: self.handlers,
            fallback: self.fallback,
            counters: Counters::default(),
        });
        let (stop_claiming, claim_rx) = watch::channel(false);
        let (stop_heartbeat, heartbeat_rx) = watch::channel(false);
        let claim_task = tokio::spawn(claim_loop(shared.clone(), claim_wait, claim_rx));
        let heartbeat_task = tokio::spawn(heartbeat(shared.clone(), heartbeat_rx));
        Ok(Worker {
            shared,
            stop_claiming,
            stop_heartbeat,
            claim_task,
            heartbeat_task,
        })
    }
}

fn erase_raw<F, Fut>(handler: F) -> Handler
where
    F: Fn(Context, Vec<u8>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = std::result::Result<Vec<u8>, HandlerError>> + Send + 'static,
{
    Arc::new(move |ctx, bytes| Box::pin(handler(ctx, bytes)) as BoxFuture<_>)
}

fn default_worker_id() -> Result<WorkerId> {
    let host: String = std::fs::read_to_string("/etc/hostname")
        .unwrap_or_default()
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        .take(64)
        .collect();
    let host = if host.is_empty() {
        "worker".into()
    } else {
        host
    };
    let nonce = LeaseToken::random_nonce() & 0xffff_ffff;
    WorkerId::new(format!("{host}-{}-{nonce:08x}", std::process::id()))
}

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
///   [`Context::stopped`] fires; handlers are expected to return soon after
///   (they are not aborted), and their outcome is then not reported, since
///   the backend would refuse it.
/// - A handler's `Ok` completes the execution; its [`HandlerError`] chooses
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
}

#[derive(Debug, Default)]
struct Counters {
    claimed: AtomicU64,
    completed: AtomicU64,
    failed: AtomicU64,
    panicked: AtomicU64,
    abandoned: AtomicU64,
    released: AtomicU64,
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
        WorkerBuilder {
            transport: client.transport.clone(),
            namespace: client.namespace().to_string(),
            lanes: Vec::new(),
            worker_id: None,
            capabilities: Vec::new(),
            concurrency: 1,
            lease: Duration::from_secs(30),
            claim_wait: None,
            handlers: HashMap::new(),
            fallback: None,
            default_lane: client.lane().to_string(),
        }
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
    ///    executions: a retryable failure with no delay, so another worker
    ///    retries them at once instead of after the lease expires.
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
                let failure = Failure::retry_after(
                    format!(
                        "worker {} shut down before the handler finished; released for another attempt",
                        self.shared.request.worker_id
                    ),
                    Duration::ZERO,
                );
                tracing::info!(execution = %id, "released at shutdown");
                if self.shared.report(&h.lease, Outcome::Fail(failure)).await {
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

struct Held {
    lease: LeaseToken,
    stop: StopToken,
    handler: AbortHandle,
}

struct Shared {
    transport: Transport,
    request: ClaimRequest,
    max_batch: usize,
    slots: Arc<Semaphore>,
    concurrency: usize,
    held: Mutex<HashMap<ExecutionId, Held>>,
    handlers: HashMap<String, Handler>,
    fallback: Option<Handler>,
    counters: Counters,
}

enum Outcome {
    Complete(Vec<u8>),
    Fail(Failure),
}

impl Shared {
    fn take(&self, id: &ExecutionId) -> Option<Held> {
        self.held.lock().ok()?.remove(id)
    }

    fn signal(&self, lease: &LeaseToken, reason: StopReason) {
        if let Ok(held) = self.held.lock()
            && let Some(h) = held.get(lease.execution_id())
            && &h.lease == lease
        {
            h.stop.stop(reason);
        }
    }

    /// Reports an outcome, retrying while the backend is unavailable
    /// (complete and fail are fenced by the lease, so repeating is safe).
    /// True when the backend accepted it.
    async fn report(&self, lease: &LeaseToken, outcome: Outcome) -> bool {
        let mut pause = ERROR_PAUSE_MIN;
        for _ in 0..REPORT_TRIES {
            let res = match &outcome {
                Outcome::Complete(bytes) => self.transport.complete(lease, bytes.clone()).await,
                Outcome::Fail(f) => self.transport.fail(lease, f.clone()).await,
            };
            match res {
                Ok(()) => return true,
                Err(e) if e.is_retryable() => {
                    tracing::warn!(execution = %lease.execution_id(), "reporting failed, retrying: {e}");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(ERROR_PAUSE_MAX);
                }
                Err(e) => {
                    tracing::warn!(execution = %lease.execution_id(), "outcome not recorded: {e}");
                    Counters::add(&self.counters.abandoned);
                    return false;
                }
            }
        }
        Counters::add(&self.counters.abandoned);
        false
    }
}

async fn claim_loop(shared: Arc<Shared>, wait: Duration, mut stop: watch::Receiver<bool>) {
    let mut pause = ERROR_PAUSE_MIN;
    loop {
        if *stop.borrow() {
            return;
        }
        let first = tokio::select! {
            permit = shared.slots.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => return,
            },
            changed = stop.changed() => {
                if changed.is_err() {
                    return;
                }
                continue;
            }
        };
        let mut permits = vec![first];
        while permits.len() < shared.max_batch {
            match shared.slots.clone().try_acquire_owned() {
                Ok(p) => permits.push(p),
                Err(_) => break,
            }
        }
        let mut request = shared.request.clone();
        request.max = permits.len();
        match shared.transport.claim(&request, wait, &mut stop).await {
            Ok(claims) => {
                pause = ERROR_PAUSE_MIN;
                for claim in claims {
                    Counters::add(&shared.counters.claimed);
                    match permits.pop() {
                        Some(permit) => spawn_execution(&shared, claim, permit),
                        None => {
                            // More than asked for: hand it straight back.
                            let failure = Failure::retry_after(
                                "claimed beyond the worker's free slots",
                                Duration::ZERO,
                            );
                            shared.report(&claim.lease, Outcome::Fail(failure)).await;
                        }
                    }
                }
            }
            Err(e) => {
                drop(permits);
                tracing::warn!("claim failed, retrying in {pause:?}: {e}");
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = stop.changed() => {}
                }
                pause = (pause * 2).min(ERROR_PAUSE_MAX);
            }
        }
    }
}

fn spawn_execution(shared: &Arc<Shared>, claim: Claim, permit: OwnedSemaphorePermit) {
    let stop = StopToken::new();
    let ctx = Context::new(&claim, stop.clone());
    let handler = shared
        .handlers
        .get(claim.kind.as_str())
        .or(shared.fallback.as_ref())
        .cloned();
    let kind = claim.kind.clone();
    let worker = shared.request.worker_id.clone();
    let payload = claim.payload;
    let inner: JoinHandle<std::result::Result<Vec<u8>, HandlerError>> = tokio::spawn(async move {
        match handler {
            Some(h) => h(ctx, payload).await,
            None => Err(HandlerError::retry(format!(
                "worker {worker} has no handler for kind {kind}"
            ))),
        }
    });
    let id = claim.id;
    if let Ok(mut held) = shared.held.lock() {
        held.insert(
            id.clone(),
            Held {
                lease: claim.lease,
                stop,
                handler: inner.abort_handle(),
            },
        );
    }
    let shared = shared.clone();
    tokio::spawn(async move {
        let _permit = permit;
        let joined = inner.await;
        let Some(held) = shared.take(&id) else {
            return;
        };
        if let Some(reason) = held.stop.reason() {
            tracing::debug!(execution = %id, "handler ended after being stopped ({reason}); outcome not reported");
            Counters::add(&shared.counters.abandoned);
            return;
        }
        let outcome = match joined {
            Ok(Ok(result)) => Outcome::Complete(result),
            Ok(Err(e)) => Outcome::Fail(e.into_failure()),
            Err(e) if e.is_panic() => {
                Counters::add(&shared.counters.panicked);
                let payload = e.into_panic();
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a non-text panic payload".into());
                Outcome::Fail(Failure::retryable(format!("handler panicked: {message}")))
            }
            Err(_) => return,
        };
        let completed = matches!(outcome, Outcome::Complete(_));
        if shared.report(&held.lease, outcome).await {
            if completed {
                Counters::add(&shared.counters.completed);
            } else {
                Counters::add(&shared.counters.failed);
            }
        }
    });
}

async fn heartbeat(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let period = (shared.request.lease_ttl / 3).max(Duration::from_millis(1));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let leases: Vec<LeaseToken> = match shared.held.lock() {
            Ok(held) => held.values().map(|h| h.lease.clone()).collect(),
            Err(_) => return,
        };
        for chunk in leases.chunks(shared.max_batch) {
            let request = RenewRequest {
                worker_id: shared.request.worker_id.clone(),
                lease_ttl: shared.request.lease_ttl,
                leases: chunk.to_vec(),
            };
            match shared.transport.renew(request).await {
                Ok(outcomes) => {
                    for o in outcomes {
                        match o.status {
                            RenewStatus::Renewed => {}
                            RenewStatus::Lost => shared.signal(&o.lease, StopReason::LeaseLost),
                            RenewStatus::Cancelled => {
                                shared.signal(&o.lease, StopReason::Cancelled)
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!("lease renewal failed; retrying at the next beat: {e}"),
            }
        }
    }
}
