//! The long-poll claim, written once for the HTTP server's `wait_ms` and the
//! SDK's in-process worker: claim, and while there is nothing, wait for a
//! wake-up and claim again, until work comes, the wait is over or the caller
//! stops.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::backend::EngineBackend;
use crate::error::Result;
use crate::model::{Claim, ClaimRequest};

/// Shortest interval between two claims of one waiting call: a backend may
/// wake waiters early (wake-ups are hints), and this keeps that from turning
/// into a busy loop.
pub const MIN_CLAIM_SPACING: Duration = Duration::from_millis(10);

/// How long a [`claim_waiting`] call may wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LongPoll {
    /// Longest the call waits for work before answering an empty list.
    pub wait: Duration,
    /// Longest one wait for a wake-up lasts before claiming again anyway, so
    /// that work submitted without a wake-up reaching this process (another
    /// process on a backend without cross-process wake-ups, or the instant
    /// before the waiter registered) is still picked up.
    pub recheck: Duration,
}

impl LongPoll {
    /// Waits up to `wait`, re-claiming only when woken or when `wait` ends.
    pub fn new(wait: Duration) -> Self {
        LongPoll {
            wait,
            recheck: wait,
        }
    }

    /// Also claims again at least every `recheck` while waiting.
    pub fn with_recheck(mut self, recheck: Duration) -> Self {
        self.recheck = recheck;
        self
    }
}

/// Claims with `request`, waiting up to `poll.wait` for work when there is
/// none.
///
/// # Behavior
/// - Claims at once; answers as soon as a claim brings anything.
/// - While empty, waits on [`EngineBackend::wait_for_work`] for the request's
///   namespace and lanes, at most `poll.recheck` at a time, then claims
///   again; two claims are at least [`MIN_CLAIM_SPACING`] apart.
/// - Always claims once more after the last wait, so work that arrived
///   without a wake-up is still handed out before answering empty.
/// - `stop` turning true (or its sender going away) ends the wait early:
///   the call answers what its last claim brought (usually nothing). A claim
///   in flight is never abandoned, because its leases would be lost.
///
/// # Errors
/// The first error of `claim` or `wait_for_work`.
///
/// ```
/// # async fn demo(backend: &dyn baton_core::EngineBackend, request: baton_core::ClaimRequest) -> baton_core::Result<()> {
/// use std::time::Duration;
/// use baton_core::{LongPoll, claim_waiting};
/// let (_stop, mut stopped) = tokio::sync::watch::channel(false);
/// let poll = LongPoll::new(Duration::from_secs(30)).with_recheck(Duration::from_secs(1));
/// let claims = claim_waiting(backend, &request, poll, &mut stopped).await?;
/// # let _ = claims; Ok(()) }
/// ```
pub async fn claim_waiting<B: EngineBackend + ?Sized>(
    backend: &B,
    request: &ClaimRequest,
    poll: LongPoll,
    stop: &mut watch::Receiver<bool>,
) -> Result<Vec<Claim>> {
    let until = Instant::now() + poll.wait;
    let mut last_claim: Option<Instant> = None;
    loop {
        if let Some(at) = last_claim {
            tokio::time::sleep_until(at + MIN_CLAIM_SPACING).await;
        }
        last_claim = Some(Instant::now());
        let claims = backend.claim(request.clone()).await?;
        let now = Instant::now();
        if !claims.is_empty() || now >= until || *stop.borrow() {
            return Ok(claims);
        }
        let nap = (until - now).min(poll.recheck);
        tokio::select! {
            woke = backend.wait_for_work(&request.namespace, &request.lanes, nap) => woke?,
            changed = stop.changed() => if changed.is_err() { return Ok(claims) },
        }
    }
}
