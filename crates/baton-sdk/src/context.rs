//! What a handler receives ([`Context`], [`StopToken`]) and what it answers
//! on failure ([`HandlerError`]).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use baton_core::{
    Claim, CreateOutcome, EngineError, ExecutionId, Failure, Kind, Lane, LeaseToken, ListPage,
    Namespace, NewExecution, OnTimeout, Page, Result, Signal, SignalName, State, StateKey,
    StepName, StepOutcome, SuspendOutcome, SuspendRequest, TagKey, Timestamp, Upstream, WaitEnded,
};
use serde::Serialize;
use tokio::sync::watch;

use crate::transport::Transport;

/// Why a running handler is asked to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StopReason {
    /// The execution was cancelled; its result would be refused.
    Cancelled,
    /// The lease is gone (expired, reclaimed, or the deadline passed); another
    /// worker may already run the execution, and this attempt's result would
    /// be refused.
    LeaseLost,
    /// The worker is shutting down and its grace period ran out; the execution
    /// is released for another attempt.
    Shutdown,
    /// An operator paused the execution; the attempt counts as no failure
    /// and a claim after its resume runs it again, so its result would be
    /// refused.
    Paused,
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StopReason::Cancelled => "cancelled",
            StopReason::LeaseLost => "lease lost",
            StopReason::Shutdown => "worker shutting down",
            StopReason::Paused => "paused by an operator",
        })
    }
}

/// A one-shot signal asking a handler to stop, with the reason.
///
/// The worker fires it; handlers await [`stopped`](Self::stopped) (usually in
/// a `tokio::select!` beside their work) or poll
/// [`is_stopped`](Self::is_stopped) between steps. The first reason wins.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use baton_sdk::{StopReason, StopToken};
/// let token = StopToken::new();
/// assert!(!token.is_stopped());
/// token.stop(StopReason::Cancelled);
/// token.stop(StopReason::Shutdown);
/// assert_eq!(token.stopped().await, StopReason::Cancelled);
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct StopToken {
    tx: Arc<watch::Sender<Option<StopReason>>>,
}

impl Default for StopToken {
    fn default() -> Self {
        Self::new()
    }
}

impl StopToken {
    /// A token that has not fired.
    pub fn new() -> Self {
        StopToken {
            tx: Arc::new(watch::channel(None).0),
        }
    }

    /// Fires the token with `reason`, unless it already fired.
    pub fn stop(&self, reason: StopReason) {
        self.tx.send_if_modified(|current| {
            if current.is_none() {
                *current = Some(reason);
                true
            } else {
                false
            }
        });
    }

    /// The reason, once fired.
    pub fn reason(&self) -> Option<StopReason> {
        *self.tx.borrow()
    }

    /// True once fired.
    pub fn is_stopped(&self) -> bool {
        self.reason().is_some()
    }

    /// Completes when the token fires, with the reason.
    pub async fn stopped(&self) -> StopReason {
        let mut rx = self.tx.subscribe();
        loop {
            if let Some(reason) = *rx.borrow_and_update() {
                return reason;
            }
            // The sender lives in `self`, so `changed` cannot fail while we
            // hold it; park forever rather than spin if it ever did.
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

/// Everything a handler knows about the execution it runs, and how it
/// starts children of it.
///
/// Cheap to clone. See [`StopToken`] for how cancellation and lease loss
/// reach the handler, and [`submit_child`](Self::submit_child) for flows.
///
/// ```no_run
/// use baton_sdk::{Context, HandlerError};
/// async fn resize(ctx: Context, url: String) -> Result<String, HandlerError> {
///     tokio::select! {
///         reason = ctx.stopped() => Err(HandlerError::retry(format!("stopped: {reason}"))),
///         done = async { format!("resized {url} on attempt {}", ctx.attempt()) } => Ok(done),
///     }
/// }
/// ```
#[derive(Clone, Debug)]
pub struct Context {
    inner: Arc<ContextInner>,
}

#[derive(Debug)]
struct ContextInner {
    id: ExecutionId,
    namespace: Namespace,
    lane: Lane,
    kind: Kind,
    attempt: u32,
    deadline: Option<Timestamp>,
    tags: BTreeMap<TagKey, String>,
    session: Option<baton_core::SessionName>,
    version: Option<baton_core::Version>,
    upstream: BTreeMap<ExecutionId, Upstream>,
    lease: LeaseToken,
    stop: StopToken,
    transport: Transport,
    /// The waits ended so far and the signals they consumed: the claim's,
    /// plus those a suspend satisfied at once during this run.
    waits: std::sync::Mutex<Waits>,
    /// The outputs of done steps: the claim's, plus those done in this run.
    steps: std::sync::Mutex<BTreeMap<StepName, Vec<u8>>>,
    /// The failure count a failed step record answered, until
    /// `step_with_retry` takes it.
    failures: std::sync::Mutex<BTreeMap<StepName, u32>>,
}

/// The replay state of a run's waits.
#[derive(Debug, Default)]
struct Waits {
    ended: Vec<WaitEnded>,
    signals: Vec<Signal>,
    /// How many waits this run has made so far.
    made: usize,
}

impl Context {
    pub(crate) fn new(claim: &Claim, stop: StopToken, transport: Transport) -> Self {
        Context {
            inner: Arc::new(ContextInner {
                id: claim.id.clone(),
                namespace: claim.namespace.clone(),
                lane: claim.lane.clone(),
                kind: claim.kind.clone(),
                attempt: claim.attempt,
                deadline: claim.deadline,
                tags: claim.tags.clone(),
                session: claim.session.clone(),
                version: claim.version.clone(),
                upstream: claim.upstream.clone(),
                lease: claim.lease.clone(),
                stop,
                transport,
                waits: std::sync::Mutex::new(Waits {
                    ended: claim.waits.clone(),
                    signals: claim.signals.clone(),
                    made: 0,
                }),
                steps: std::sync::Mutex::new(claim.steps.clone()),
                failures: std::sync::Mutex::new(BTreeMap::new()),
            }),
        }
    }

    /// The execution's id.
    pub fn id(&self) -> &ExecutionId {
        &self.inner.id
    }

    /// The execution's namespace.
    pub fn namespace(&self) -> &Namespace {
        &self.inner.namespace
    }

    /// The lane it was claimed from.
    pub fn lane(&self) -> &Lane {
        &self.inner.lane
    }

    /// Its kind (the handler name).
    pub fn kind(&self) -> &Kind {
        &self.inner.kind
    }

    /// This attempt's number, from 1.
    pub fn attempt(&self) -> u32 {
        self.inner.attempt
    }

    /// The execution's deadline, if any.
    pub fn deadline(&self) -> Option<Timestamp> {
        self.inner.deadline
    }

    /// The execution's tags.
    pub fn tags(&self) -> &BTreeMap<TagKey, String> {
        &self.inner.tags
    }

    /// The execution's session, if it has one: this worker holds the
    /// session while it runs (and for its idle time after), so state kept
    /// in memory per session sees the session's next work too.
    pub fn session(&self) -> Option<&baton_core::SessionName> {
        self.inner.session.as_ref()
    }

    /// The handler version the execution was written for, if given.
    pub fn version(&self) -> Option<&baton_core::Version> {
        self.inner.version.as_ref()
    }

    /// The outcomes of the executions this one depends on (state and
    /// result bytes, by id); empty without dependencies. A handler reads
    /// its inputs from here:
    ///
    /// ```no_run
    /// # fn demo(ctx: baton_sdk::Context) {
    /// for (id, up) in ctx.upstream() {
    ///     if let Some(result) = &up.result {
    ///         println!("{id} ({}) said {}", up.state, String::from_utf8_lossy(result));
    ///     }
    /// }
    /// # }
    /// ```
    pub fn upstream(&self) -> &BTreeMap<ExecutionId, Upstream> {
        &self.inner.upstream
    }

    /// The token fired on cancellation, lease loss or forced shutdown.
    pub fn stop_token(&self) -> &StopToken {
        &self.inner.stop
    }

    /// Completes when the handler should stop; see [`StopToken::stopped`].
    pub async fn stopped(&self) -> StopReason {
        self.inner.stop.stopped().await
    }

    /// True once the handler should stop.
    pub fn is_stopped(&self) -> bool {
        self.inner.stop.is_stopped()
    }

    /// A child of this execution: `kind` with `payload` encoded as JSON, in
    /// this execution's namespace and lane, with the default policies and
    /// the parent set. Adjust it with the `with_*` methods of
    /// [`NewExecution`] (another lane, a [child
    /// key](NewExecution::with_child_key)…) and pass it to
    /// [`submit_child`](Self::submit_child).
    ///
    /// # Errors
    /// `InvalidInput` for an invalid kind or a payload that does not encode
    /// as JSON.
    ///
    /// ```no_run
    /// # async fn demo(ctx: baton_sdk::Context) -> baton_core::Result<()> {
    /// use baton_core::ChildKey;
    /// let child = ctx.child("thumbnail", &"a.png")?.with_child_key(ChildKey::new("a.png")?);
    /// ctx.submit_child(child).await?;
    /// # Ok(()) }
    /// ```
    pub fn child<P: Serialize + ?Sized>(&self, kind: &str, payload: &P) -> Result<NewExecution> {
        let payload = serde_json::to_vec(payload).map_err(|e| {
            EngineError::invalid("payload", kind, format!("cannot encode as JSON: {e}"))
        })?;
        Ok(NewExecution::new(
            self.inner.namespace.clone(),
            self.inner.lane.clone(),
            Kind::new(kind)?,
            payload,
        )
        .with_parent(self.inner.id.clone()))
    }

    /// Submits `execution` as a child of this execution: its parent is set
    /// to [`id`](Self::id) (whatever it was), so it joins this execution's
    /// flow, lives in its partition, and is cancelled with it. It must be in
    /// this execution's namespace.
    ///
    /// A retried attempt runs the handler again; give each child a [child
    /// key](NewExecution::with_child_key) so that the repeat answers the
    /// child the earlier attempt created (`created: false`) instead of
    /// creating another.
    ///
    /// # Errors
    /// `InvalidInput` for another namespace or an invalid field (naming
    /// it), `Unavailable` when the backend or server cannot be reached
    /// (retry; with a child key the retry cannot create a second child).
    ///
    /// ```no_run
    /// use baton_core::ChildKey;
    /// use baton_sdk::{Context, HandlerError};
    /// async fn fan_out(ctx: Context, files: Vec<String>) -> Result<usize, HandlerError> {
    ///     for f in &files {
    ///         let key = ChildKey::new(f.as_str())?;
    ///         let child = ctx.child("thumbnail", f)?.with_child_key(key);
    ///         ctx.submit_child(child).await?;
    ///     }
    ///     Ok(files.len())
    /// }
    /// ```
    pub async fn submit_child(&self, execution: NewExecution) -> Result<CreateOutcome> {
        let execution = execution.with_parent(self.inner.id.clone());
        let mut out = self.inner.transport.create(vec![execution]).await?;
        out.pop()
            .ok_or_else(|| EngineError::corruption("submit answered no outcome for one execution"))
    }

    /// Waits for this execution's children without holding a worker slot.
    ///
    /// When every child has finished (or there are none) it answers `Ok(())`
    /// at once and the handler goes on, with its lease. Otherwise the lease
    /// is handed back (the execution is `blocked`, no attempt is spent) and
    /// it answers [`HandlerError::waiting`]: return it from the handler
    /// (`?` does) — the worker reports nothing for this attempt. Once the
    /// last child finishes the execution is claimed again and the handler
    /// runs from the start as a new attempt, where this call answers
    /// `Ok(())`: submit children with [child
    /// keys](NewExecution::with_child_key) so the rerun finds the ones it
    /// made instead of making more, then read their outcomes with
    /// [`children`](Self::children).
    ///
    /// # Errors
    /// [`HandlerError::waiting`] as above; a retryable `HandlerError` when
    /// the backend cannot be reached or the lease was lost.
    ///
    /// ```no_run
    /// use baton_core::{ChildKey, Page, State};
    /// use baton_sdk::{Context, HandlerError};
    /// async fn join(ctx: Context, parts: u32) -> Result<u32, HandlerError> {
    ///     for i in 0..parts {
    ///         let key = ChildKey::new(format!("part-{i}"))?;
    ///         ctx.submit_child(ctx.child("part", &i)?.with_child_key(key)).await?;
    ///     }
    ///     ctx.wait_children().await?;
    ///     let done = ctx.children(Page::first(1000)).await?;
    ///     Ok(done.items.iter().filter(|c| c.state == State::Completed).count() as u32)
    /// }
    /// ```
    pub async fn wait_children(&self) -> std::result::Result<(), HandlerError> {
        let snap = self
            .inner
            .transport
            .wait_children(&self.inner.lease)
            .await
            .map_err(|e| HandlerError::retry(format!("waiting for children: {e}")))?;
        match snap.state {
            State::Running => Ok(()),
            _ => Err(HandlerError::waiting()),
        }
    }

    /// Runs `body` as the checkpointed step `name`, once per execution:
    /// when an earlier attempt (or this run) finished the step, its saved
    /// output is answered without running `body` again; otherwise `body`
    /// runs and its output is recorded (`done`, encoded as JSON) before it
    /// is answered. A failure of `body` is recorded as a failed step (its
    /// count of failures survives restarts; see [`steps`](crate::Client::steps))
    /// and answered as is.
    ///
    /// This is how a handler becomes a durable workflow: a worker that
    /// crashes after step 2 of 4 has a retry that skips steps 1 and 2.
    /// Make each step's effects idempotent anyway: a crash after the work
    /// but before the record runs it again.
    ///
    /// # Errors
    /// The error of `body`; a retryable `HandlerError` when the record
    /// cannot be written (backend unreachable, lease lost); a permanent one
    /// when the step's output does not decode as `T`, or when the record
    /// conflicts with another recorded first.
    ///
    /// ```no_run
    /// use baton_sdk::{Context, HandlerError};
    /// async fn order(ctx: Context, id: u64) -> Result<String, HandlerError> {
    ///     let charge: String = ctx.step("charge", || async { Ok(format!("ch_{id}")) }).await?;
    ///     let shipment: u32 = ctx.step("ship", || async { Ok(7) }).await?;
    ///     Ok(format!("{charge} shipped as {shipment}"))
    /// }
    /// ```
    pub async fn step<T, F, Fut>(&self, name: &str, body: F) -> std::result::Result<T, HandlerError>
    where
        T: Serialize + serde::de::DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, HandlerError>>,
    {
        let name = StepName::new(name).map_err(|e| HandlerError::permanent(e.to_string()))?;
        if let Some(saved) = self.lock_steps().get(&name).cloned() {
            return serde_json::from_slice(&saved).map_err(|e| {
                HandlerError::permanent(format!(
                    "the saved output of step {name} is not a {}: {e}",
                    std::any::type_name::<T>()
                ))
            });
        }
        match body().await {
            Ok(value) => {
                let output = serde_json::to_vec(&value).map_err(|e| {
                    HandlerError::permanent(format!(
                        "the output of step {name} does not encode as JSON: {e}"
                    ))
                })?;
                self.save_step(&name, StepOutcome::Done(output.clone()))
                    .await?;
                self.lock_steps().insert(name, output);
                Ok(value)
            }
            Err(e) => {
                // The failure counts across restarts; losing the record only
                // loses the count, never the handler's own error.
                match self
                    .save_step(&name, StepOutcome::Failed(e.message().to_owned()))
                    .await
                {
                    Ok(record) => {
                        self.lock_failures().insert(name, record.failures);
                    }
                    Err(record) => {
                        tracing::warn!(execution = %self.inner.id, step = %name, "failed step not recorded: {record}");
                    }
                }
                Err(e)
            }
        }
    }

    /// [`step`](Self::step), retried in this process when `body` fails:
    /// after each failure the step's failure count — kept by Baton across
    /// attempts, workers and restarts — decides what comes next from
    /// `retry` (the count is the one the failed record answers): another
    /// try after the policy's delay, or, once the count
    /// reaches `retry.max_tries`, a permanent error (the execution fails
    /// for good; its own retry policy is for the whole handler). A worker
    /// that dies between tries resumes the count in the next attempt. A
    /// permanent error of `body` is not retried.
    ///
    /// # Errors
    /// As [`step`](Self::step); a permanent `HandlerError` naming the step
    /// and its last error when the tries are used up.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use baton_sdk::{Context, HandlerError, StepRetry};
    /// async fn label(ctx: Context, _: ()) -> Result<u32, HandlerError> {
    ///     let retry = StepRetry::exponential(5, Duration::from_millis(200), Duration::from_secs(5));
    ///     ctx.step_with_retry("label", retry, || async { Ok(7) }).await
    /// }
    /// ```
    pub async fn step_with_retry<T, F, Fut>(
        &self,
        name: &str,
        retry: StepRetry,
        mut body: F,
    ) -> std::result::Result<T, HandlerError>
    where
        T: Serialize + serde::de::DeserializeOwned,
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, HandlerError>>,
    {
        let step = StepName::new(name).map_err(|e| HandlerError::permanent(e.to_string()))?;
        loop {
            match self.step(name, &mut body).await {
                Ok(value) => return Ok(value),
                Err(e) if e.is_waiting() || e.is_permanent() => return Err(e),
                Err(e) => {
                    // The count as stored (over every attempt), which the
                    // failed record answered; when it was not recorded, this
                    // failure is the first known.
                    let failures = self.lock_failures().remove(&step).unwrap_or(1);
                    if failures >= retry.max_tries {
                        return Err(HandlerError::permanent(format!(
                            "step {step} failed {failures} times, the most its retry allows: {}",
                            e.message()
                        )));
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(retry.delay(failures)) => {}
                        reason = self.stopped() => {
                            return Err(HandlerError::retry(format!("step {step}: stopped ({reason})")));
                        }
                    }
                }
            }
        }
    }

    async fn save_step(
        &self,
        name: &StepName,
        outcome: StepOutcome,
    ) -> std::result::Result<baton_core::StepRecord, HandlerError> {
        self.inner
            .transport
            .record_step(&self.inner.lease, name.clone(), outcome)
            .await
            .map_err(|e| match e {
                EngineError::Conflict { .. } | EngineError::InvalidInput { .. } => {
                    HandlerError::permanent(format!("recording step {name}: {e}"))
                }
                _ => HandlerError::retry(format!("recording step {name}: {e}")),
            })
    }

    /// The outputs of the done steps (the claim's and this run's), by name.
    pub fn steps(&self) -> BTreeMap<StepName, Vec<u8>> {
        self.lock_steps().clone()
    }

    fn lock_failures(&self) -> std::sync::MutexGuard<'_, BTreeMap<StepName, u32>> {
        // Every critical section is one insert or one removal.
        match self.inner.failures.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn lock_steps(&self) -> std::sync::MutexGuard<'_, BTreeMap<StepName, Vec<u8>>> {
        // Every critical section is one insert or one read.
        match self.inner.steps.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Waits for a signal named `name`, without holding a worker slot, at
    /// most `timeout` (`None`: as long as it takes).
    ///
    /// Waits are *replayed*: the handler runs again from the start after
    /// each one, so `wait_for_signal` and [`sleep`](Self::sleep) number the
    /// waits a run makes, in order. A wait that already ended in an earlier
    /// run answers at once — the payload of the signal it consumed, or
    /// `None` when its timeout passed first. The first wait past those
    /// suspends the execution: when a signal `name` is already buffered it
    /// is consumed and answered at once with the lease kept; otherwise the
    /// lease is handed back (no attempt is spent) and it answers
    /// [`HandlerError::suspended`] — return it (`?` does). The execution runs
    /// again when the signal arrives (or the timeout passes). Keep the
    /// order of waits the same on every run, and make work before a wait
    /// idempotent (it runs again).
    ///
    /// # Errors
    /// [`HandlerError::suspended`] as above; a retryable `HandlerError`
    /// when the backend cannot be reached or the lease was lost; a
    /// permanent one when an earlier run's wait at this place waited for
    /// something else (the handler's waits changed order).
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use baton_sdk::{Context, HandlerError};
    /// async fn refund(ctx: Context, amount: u64) -> Result<String, HandlerError> {
    ///     let approval = ctx
    ///         .wait_for_signal("approval", Some(Duration::from_secs(48 * 3600)))
    ///         .await?;
    ///     match approval {
    ///         Some(by) => Ok(format!("refunded {amount}, approved by {}", String::from_utf8_lossy(&by))),
    ///         None => Err(HandlerError::permanent("nobody approved the refund in time")),
    ///     }
    /// }
    /// ```
    pub async fn wait_for_signal(
        &self,
        name: &str,
        timeout: Option<Duration>,
    ) -> std::result::Result<Option<Vec<u8>>, HandlerError> {
        let name = SignalName::new(name).map_err(|e| HandlerError::permanent(e.to_string()))?;
        let wait = match self.next_wait() {
            Replay::Ended(number, how) => {
                return match (self.consumed(number, &name), how) {
                    (Some(payload), _) => Ok(Some(payload)),
                    (None, WaitEnded::TimedOut) => Ok(None),
                    (None, WaitEnded::Signalled) => Err(HandlerError::permanent(format!(
                        "wait {number} of this execution ended without a signal {name}: \
                         its handler must make its waits in the same order on every run"
                    ))),
                };
            }
            Replay::New(number) => number,
        };
        let mut request = SuspendRequest::signals([name.clone()]);
        if let Some(t) = timeout {
            request = request.with_timeout(t, OnTimeout::Resume);
        }
        match self.suspend_now(request).await? {
            Ok(signals) => {
                let payload = signals
                    .iter()
                    .find(|s| s.name == name)
                    .map(|s| s.payload.clone());
                self.record(wait, WaitEnded::Signalled, signals);
                Ok(payload)
            }
            Err(suspended) => Err(suspended),
        }
    }

    /// Sleeps for `duration` without holding a worker slot: a durable
    /// timer, kept by the backend across restarts of workers and engines.
    ///
    /// Replayed like [`wait_for_signal`](Self::wait_for_signal): a sleep
    /// that ended in an earlier run answers `Ok(())` at once; the first
    /// one past those hands the lease back (no attempt is spent) and
    /// answers [`HandlerError::suspended`] — return it; the execution runs
    /// again once `duration` has passed (to the scheduler's pass interval).
    ///
    /// # Errors
    /// [`HandlerError::suspended`] as above; a retryable `HandlerError`
    /// when the backend cannot be reached or the lease was lost.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use baton_sdk::{Context, HandlerError};
    /// async fn remind(ctx: Context, user: String) -> Result<(), HandlerError> {
    ///     ctx.sleep(Duration::from_secs(24 * 3600)).await?;
    ///     println!("a day later: remind {user}");
    ///     Ok(())
    /// }
    /// ```
    pub async fn sleep(&self, duration: Duration) -> std::result::Result<(), HandlerError> {
        match self.next_wait() {
            Replay::Ended(_, WaitEnded::TimedOut) => return Ok(()),
            Replay::Ended(number, WaitEnded::Signalled) => {
                return Err(HandlerError::permanent(format!(
                    "wait {number} of this execution ended by a signal, not as a sleep: \
                     its handler must make its waits in the same order on every run"
                )));
            }
            Replay::New(_) => {}
        }
        match self.suspend_now(SuspendRequest::sleep(duration)).await? {
            // A sleep has no waitpoints, so signals never end it early.
            Ok(_) => Ok(()),
            Err(suspended) => Err(suspended),
        }
    }

    /// How the execution's waits ended so far, oldest first (the claim's
    /// and this run's).
    pub fn waits(&self) -> Vec<WaitEnded> {
        self.lock_waits().ended.clone()
    }

    /// The signals the execution's ended waits consumed, oldest first.
    pub fn signals(&self) -> Vec<Signal> {
        self.lock_waits().signals.clone()
    }

    fn lock_waits(&self) -> std::sync::MutexGuard<'_, Waits> {
        // A panic while holding it cannot leave it half-written: every
        // critical section is a push or an increment.
        match self.inner.waits.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The next wait of this run: one that ended already (its 1-based
    /// number and how), or a new one with its number.
    fn next_wait(&self) -> Replay {
        let mut w = self.lock_waits();
        w.made += 1;
        match w.ended.get(w.made - 1) {
            Some(how) => Replay::Ended(w.made, *how),
            None => Replay::New(w.made),
        }
    }

    /// The payload of the signal `name` wait `number` consumed.
    fn consumed(&self, number: usize, name: &SignalName) -> Option<Vec<u8>> {
        let w = self.lock_waits();
        w.signals
            .iter()
            .find(|s| s.wait.map(|n| n as usize) == Some(number) && &s.name == name)
            .map(|s| s.payload.clone())
    }

    fn record(&self, number: usize, how: WaitEnded, signals: Vec<Signal>) {
        let mut w = self.lock_waits();
        if w.ended.len() + 1 == number {
            w.ended.push(how);
            w.signals.extend(signals);
        }
    }

    /// Suspends now: `Ok(signals)` when they satisfied the wait at once
    /// (the lease is kept), `Err(`[`HandlerError::suspended`]`)` carrying
    /// the waitpoint tokens when the execution is suspended.
    async fn suspend_now(
        &self,
        request: SuspendRequest,
    ) -> std::result::Result<std::result::Result<Vec<Signal>, HandlerError>, HandlerError> {
        let (out, tokens) = match self
            .inner
            .transport
            .suspend(&self.inner.lease, request)
            .await
        {
            Ok(answer) => answer,
            Err(e) => {
                // No wait was made: a retry in this run is the same wait.
                self.lock_waits().made -= 1;
                let message = format!("suspending: {e}");
                return Err(match e {
                    // Never succeeds on a retry: a bad request, or the most
                    // waits allowed.
                    EngineError::InvalidInput { .. } | EngineError::Conflict { .. } => {
                        HandlerError::permanent(message)
                    }
                    _ => HandlerError::retry(message),
                });
            }
        };
        Ok(match out {
            SuspendOutcome::Satisfied { signals, .. } => Ok(signals),
            SuspendOutcome::Suspended(_) => {
                let mut e = HandlerError::suspended();
                e.waitpoints = tokens;
                Err(e)
            }
        })
    }

    /// One page of this execution's children (see
    /// [`Client::children`](crate::Client::children)), oldest first: what
    /// a parent reads after [`wait_children`](Self::wait_children).
    ///
    /// # Errors
    /// `InvalidInput` for a bad page, `Unavailable` when the backend cannot
    /// be reached.
    pub async fn children(&self, page: Page) -> Result<ListPage> {
        self.inner.transport.children(&self.inner.id, page).await
    }

    /// Sets the custom status of this execution (any serializable value,
    /// stored as JSON): what `describe`, the dashboard and `baton watch`
    /// show while it runs, kept after it finishes. Answers the status
    /// version (the same status again keeps it).
    ///
    /// # Errors
    /// A permanent `HandlerError` for a status that does not encode or is
    /// over the size limit; a retryable one when the backend cannot be
    /// reached or the lease was lost.
    ///
    /// ```no_run
    /// use baton_sdk::{Context, HandlerError};
    /// async fn import(ctx: Context, rows: u32) -> Result<(), HandlerError> {
    ///     ctx.set_status(&serde_json::json!({"stage": "importing", "rows": rows})).await?;
    ///     Ok(())
    /// }
    /// ```
    pub async fn set_status<S: Serialize + ?Sized>(
        &self,
        status: &S,
    ) -> std::result::Result<u64, HandlerError> {
        let status = to_json("status", status)?;
        let out = self
            .inner
            .transport
            .set_status(&self.inner.lease, status)
            .await;
        out.map_err(|e| memory_error("setting the status", e))
    }

    /// Appends a progress frame (any serializable value) to this execution:
    /// followers read frames in order (`baton watch`, the progress
    /// long-poll). Only the newest frames are kept (1000 by default).
    /// Answers the frame's number.
    ///
    /// # Errors
    /// As [`set_status`](Self::set_status).
    pub async fn progress<F: Serialize + ?Sized>(
        &self,
        frame: &F,
    ) -> std::result::Result<u64, HandlerError> {
        let frame = to_json("frame", frame)?;
        let out = self
            .inner
            .transport
            .append_progress(&self.inner.lease, frame)
            .await;
        out.map_err(|e| memory_error("appending progress", e))
    }

    /// Sets key `key` of this execution's key-value state (kept across
    /// attempts, read by anyone, trimmed with the execution).
    ///
    /// # Errors
    /// As [`set_status`](Self::set_status); also permanent past the most
    /// keys allowed (100 by default).
    ///
    /// ```no_run
    /// use baton_sdk::{Context, HandlerError};
    /// async fn crawl(ctx: Context, _: ()) -> Result<(), HandlerError> {
    ///     let mut page: u32 = ctx.get_state("page").await?.unwrap_or(0);
    ///     while page < 10 {
    ///         page += 1; // fetch it…
    ///         ctx.set_state("page", &page).await?;
    ///     }
    ///     Ok(())
    /// }
    /// ```
    pub async fn set_state<V: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &V,
    ) -> std::result::Result<(), HandlerError> {
        let key = StateKey::new(key).map_err(|e| HandlerError::permanent(e.to_string()))?;
        let value = to_json("value", value)?;
        let out = self
            .inner
            .transport
            .set_state(&self.inner.lease, key, Some(value))
            .await;
        out.map_err(|e| memory_error("setting state", e))
    }

    /// Clears key `key` of this execution's state (a key not held is fine).
    ///
    /// # Errors
    /// As [`set_status`](Self::set_status).
    pub async fn clear_state(&self, key: &str) -> std::result::Result<(), HandlerError> {
        let key = StateKey::new(key).map_err(|e| HandlerError::permanent(e.to_string()))?;
        let out = self
            .inner
            .transport
            .set_state(&self.inner.lease, key, None)
            .await;
        out.map_err(|e| memory_error("clearing state", e))
    }

    /// The value of key `key` of this execution's state, decoded as `T`;
    /// `None` when it is not held. Reads the stored state (what an earlier
    /// attempt left included).
    ///
    /// # Errors
    /// A permanent `HandlerError` when the stored value does not decode as
    /// `T`; a retryable one when the backend cannot be reached.
    pub async fn get_state<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
    ) -> std::result::Result<Option<T>, HandlerError> {
        let key = StateKey::new(key).map_err(|e| HandlerError::permanent(e.to_string()))?;
        let entries = self
            .inner
            .transport
            .state(&self.inner.id)
            .await
            .map_err(|e| memory_error("reading state", e))?;
        let Some(entry) = entries.into_iter().find(|e| e.key == key) else {
            return Ok(None);
        };
        serde_json::from_slice(&entry.value).map(Some).map_err(|e| {
            HandlerError::permanent(format!(
                "state key {key} does not hold a {}: {e}",
                std::any::type_name::<T>()
            ))
        })
    }
}

/// `value` as JSON bytes, or a permanent error naming `field`.
fn to_json<V: Serialize + ?Sized>(
    field: &str,
    value: &V,
) -> std::result::Result<Vec<u8>, HandlerError> {
    serde_json::to_vec(value)
        .map_err(|e| HandlerError::permanent(format!("the {field} does not encode as JSON: {e}")))
}

/// A memory write's error as the handler sees it: a request that can
/// never succeed is permanent, anything else (lease lost, backend
/// unreachable) retryable.
fn memory_error(what: &str, e: EngineError) -> HandlerError {
    let message = format!("{what}: {e}");
    match e {
        EngineError::InvalidInput { .. } | EngineError::Conflict { .. } => {
            HandlerError::permanent(message)
        }
        _ => HandlerError::retry(message),
    }
}

/// How [`Context::step_with_retry`] retries a failing step in process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StepRetry {
    /// Most tries in all (failed records, over every attempt).
    pub max_tries: u32,
    /// The delay after the first failure.
    pub initial: Duration,
    /// Each later delay is the previous one times this (1: fixed).
    pub multiplier: u32,
    /// The longest delay.
    pub max_delay: Duration,
}

impl StepRetry {
    /// One try: no retry.
    pub const NONE: StepRetry = StepRetry {
        max_tries: 1,
        initial: Duration::ZERO,
        multiplier: 1,
        max_delay: Duration::ZERO,
    };

    /// Up to `max_tries` tries, `delay` apart.
    pub fn fixed(max_tries: u32, delay: Duration) -> Self {
        StepRetry {
            max_tries,
            initial: delay,
            multiplier: 1,
            max_delay: delay,
        }
    }

    /// Up to `max_tries` tries, the delay doubling from `initial` up to
    /// `max_delay`.
    pub fn exponential(max_tries: u32, initial: Duration, max_delay: Duration) -> Self {
        StepRetry {
            max_tries,
            initial,
            multiplier: 2,
            max_delay,
        }
    }

    /// The delay after the `failures`-th failure (from 1).
    ///
    /// ```
    /// use std::time::Duration;
    /// use baton_sdk::StepRetry;
    /// let r = StepRetry::exponential(5, Duration::from_millis(100), Duration::from_millis(300));
    /// assert_eq!(r.delay(1), Duration::from_millis(100));
    /// assert_eq!(r.delay(2), Duration::from_millis(200));
    /// assert_eq!(r.delay(3), Duration::from_millis(300));
    /// ```
    pub fn delay(&self, failures: u32) -> Duration {
        let factor = self
            .multiplier
            .max(1)
            .saturating_pow(failures.saturating_sub(1).min(31));
        self.initial.saturating_mul(factor).min(self.max_delay)
    }
}

/// Where a run's next wait stands in the execution's wait log.
enum Replay {
    Ended(usize, WaitEnded),
    New(usize),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Retry {
    Policy,
    After(Duration),
    Never,
    /// The lease was handed back to wait: nothing to report.
    Waiting,
}

/// A handler's failure, and what should happen next.
///
/// - [`retry`](Self::retry): another attempt after the execution's backoff,
///   if attempts remain;
/// - [`retry_after`](Self::retry_after): another attempt after this delay,
///   if attempts remain;
/// - [`permanent`](Self::permanent): fail the execution now.
///
/// Any `std::error::Error` converts into a retryable `HandlerError`, so `?`
/// works inside handlers.
///
/// ```
/// use std::time::Duration;
/// use baton_sdk::HandlerError;
/// let e = HandlerError::retry_after("rate limited", Duration::from_secs(5));
/// assert_eq!(e.message(), "rate limited");
/// let parsed: Result<u32, HandlerError> = "x".parse::<u32>().map_err(HandlerError::from);
/// assert!(parsed.is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandlerError {
    message: String,
    retry: Retry,
    waitpoints: Vec<(SignalName, Option<String>)>,
}

impl HandlerError {
    /// Retry per the execution's policy.
    pub fn retry(message: impl Into<String>) -> Self {
        HandlerError {
            message: message.into(),
            retry: Retry::Policy,
            waitpoints: Vec::new(),
        }
    }

    /// Retry after `delay` instead of the policy's backoff (attempts still
    /// count).
    pub fn retry_after(message: impl Into<String>, delay: Duration) -> Self {
        HandlerError {
            message: message.into(),
            retry: Retry::After(delay),
            waitpoints: Vec::new(),
        }
    }

    /// Fail the execution now, whatever attempts remain.
    pub fn permanent(message: impl Into<String>) -> Self {
        HandlerError {
            message: message.into(),
            retry: Retry::Never,
            waitpoints: Vec::new(),
        }
    }

    /// The answer of [`Context::wait_children`] when the execution now
    /// waits for its children: not a failure — returned from the handler,
    /// it ends this attempt without a report (its lease is already handed
    /// back).
    pub fn waiting() -> Self {
        HandlerError {
            message: "waiting for children".into(),
            retry: Retry::Waiting,
            waitpoints: Vec::new(),
        }
    }

    /// The answer of [`Context::wait_for_signal`] and [`Context::sleep`]
    /// when the execution is now suspended: not a failure — returned from
    /// the handler, it ends this attempt without a report (its lease is
    /// already handed back).
    pub fn suspended() -> Self {
        HandlerError {
            message: "suspended".into(),
            retry: Retry::Waiting,
            waitpoints: Vec::new(),
        }
    }

    /// For [`suspended`](Self::suspended): each waitpoint the execution
    /// now waits on, with the token a third party presents to signal it
    /// without the API token (`None` when the worker talks to a backend
    /// directly, or the server has no waitpoint secret). Send it where the
    /// signal will come from — an approval link, a webhook registration —
    /// before returning the error:
    ///
    /// ```no_run
    /// use baton_sdk::{Context, HandlerError};
    /// async fn approve(ctx: Context, _: ()) -> Result<(), HandlerError> {
    ///     let approval = match ctx.wait_for_signal("approval", None).await {
    ///         Err(e) if e.is_waiting() => {
    ///             for (name, token) in e.waitpoint_tokens() {
    ///                 println!("POST /v1/executions/{}/signals/{name} with token {token:?}", ctx.id());
    ///             }
    ///             return Err(e);
    ///         }
    ///         other => other?,
    ///     };
    ///     println!("approved: {approval:?}");
    ///     Ok(())
    /// }
    /// ```
    pub fn waitpoint_tokens(&self) -> &[(SignalName, Option<String>)] {
        &self.waitpoints
    }

    /// True for [`permanent`](Self::permanent): no retry helps.
    pub fn is_permanent(&self) -> bool {
        self.retry == Retry::Never
    }

    /// True for [`waiting`](Self::waiting) and [`suspended`](Self::suspended).
    pub fn is_waiting(&self) -> bool {
        self.retry == Retry::Waiting
    }

    /// The error text, stored as the attempt's error and `last_error`.
    pub fn message(&self) -> &str {
        &self.message
    }

    pub(crate) fn into_failure(self) -> Failure {
        match self.retry {
            Retry::Policy => Failure::retryable(self.message),
            Retry::After(d) => Failure::retry_after(self.message, d),
            Retry::Never => Failure::permanent(self.message),
            // Never reported (the worker checks `is_waiting` first); were it
            // reported, the lease is gone and the call would be refused.
            Retry::Waiting => Failure::retryable(self.message),
        }
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl<E: std::error::Error> From<E> for HandlerError {
    fn from(e: E) -> Self {
        let mut message = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        HandlerError::retry(message)
    }
}
