//! What a handler receives ([`Context`], [`StopToken`]) and what it answers
//! on failure ([`HandlerError`]).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use baton_core::{Claim, ExecutionId, Failure, Kind, Lane, Namespace, TagKey, Timestamp};
use tokio::sync::watch;

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

/// Everything a handler knows about the execution it runs.
///
/// Cheap to clone. See [`StopToken`] for how cancellation and lease loss
/// reach the handler.
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
    stop: StopToken,
}

impl Context {
    pub(crate) fn new(claim: &Claim, stop: StopToken) -> Self {
        Context {
            inner: Arc::new(ContextInner {
                id: claim.id.clone(),
                namespace: claim.namespace.clone(),
                lane: claim.lane.clone(),
                kind: claim.kind.clone(),
                attempt: claim.attempt,
                deadline: claim.deadline,
                tags: claim.tags.clone(),
                stop,
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
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Retry {
    Policy,
    After(Duration),
    Never,
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

    /// The error text, stored as the attempt's error and `last_error`.
    pub fn message(&self) -> &str {
        &self.message
    }

    pub(crate) fn into_failure(self) -> Failure {
        match self.retry {
            Retry::Policy => Failure::retryable(self.message),
            Retry::After(d) => Failure::retry_after(self.message, d),
            Retry::Never => Failure::permanent(self.message),
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
