//! What a handler receives ([`Context`], [`StopToken`]) and what it answers
//! on failure ([`HandlerError`]).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use baton_core::{
    Claim, CreateOutcome, EngineError, ExecutionId, Failure, Kind, Lane, LeaseToken, ListPage,
    Namespace, NewExecution, Page, Result, State, TagKey, Timestamp, Upstream,
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
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StopReason::Cancelled => "cancelled",
            StopReason::LeaseLost => "lease lost",
            StopReason::Shutdown => "worker shutting down",
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
    upstream: BTreeMap<ExecutionId, Upstream>,
    lease: LeaseToken,
    stop: StopToken,
    transport: Transport,
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
                upstream: claim.upstream.clone(),
                lease: claim.lease.clone(),
                stop,
                transport,
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
}

impl HandlerError {
    /// Retry per the execution's policy.
    pub fn retry(message: impl Into<String>) -> Self {
        HandlerError {
            message: message.into(),
            retry: Retry::Policy,
        }
    }

    /// Retry after `delay` instead of the policy's backoff (attempts still
    /// count).
    pub fn retry_after(message: impl Into<String>, delay: Duration) -> Self {
        HandlerError {
            message: message.into(),
            retry: Retry::After(delay),
        }
    }

    /// Fail the execution now, whatever attempts remain.
    pub fn permanent(message: impl Into<String>) -> Self {
        HandlerError {
            message: message.into(),
            retry: Retry::Never,
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
        }
    }

    /// True for [`waiting`](Self::waiting).
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
