//! The running worker's tasks: the claim loop, one task per claimed
//! execution, and the heartbeat, sharing one [`Shared`] state.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use baton_core::{
    Claim, ClaimRequest, ExecutionId, Failure, LeaseToken, RenewRequest, RenewStatus,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::{AbortHandle, JoinHandle};

use super::Counters;
use super::builder::Handler;
use crate::context::{Context, HandlerError, StopReason, StopToken};
use crate::transport::Transport;

/// Pause after a failed claim, doubling up to [`ERROR_PAUSE_MAX`].
const ERROR_PAUSE_MIN: Duration = Duration::from_millis(50);
const ERROR_PAUSE_MAX: Duration = Duration::from_secs(5);
/// How often reporting an outcome is tried when the backend is unavailable.
const REPORT_TRIES: u32 = 6;

pub(super) struct Held {
    pub(super) lease: LeaseToken,
    pub(super) stop: StopToken,
    pub(super) handler: AbortHandle,
}

pub(super) struct Shared {
    pub(super) transport: Transport,
    pub(super) request: ClaimRequest,
    pub(super) max_batch: usize,
    pub(super) slots: Arc<Semaphore>,
    pub(super) concurrency: usize,
    pub(super) held: Mutex<HashMap<ExecutionId, Held>>,
    pub(super) handlers: HashMap<String, Handler>,
    pub(super) fallback: Option<Handler>,
    pub(super) counters: Counters,
}

pub(super) enum Outcome {
    Complete(Vec<u8>),
    Fail(Failure),
    /// Handed back without consuming an attempt.
    Release,
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
    /// (complete, fail and release are fenced by the lease, so repeating is
    /// safe).
    /// True when the backend accepted it.
    pub(super) async fn report(&self, lease: &LeaseToken, outcome: Outcome) -> bool {
        let mut pause = ERROR_PAUSE_MIN;
        for _ in 0..REPORT_TRIES {
            let res = match &outcome {
                Outcome::Complete(bytes) => self.transport.complete(lease, bytes.clone()).await,
                Outcome::Fail(f) => self.transport.fail(lease, f.clone()).await,
                Outcome::Release => self.transport.release(lease).await,
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

pub(super) async fn claim_loop(
    shared: Arc<Shared>,
    wait: Duration,
    mut stop: watch::Receiver<bool>,
) {
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
                            // More than asked for: hand it straight back,
                            // without spending an attempt.
                            shared.report(&claim.lease, Outcome::Release).await;
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
    let ctx = Context::new(&claim, stop.clone(), shared.transport.clone());
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
        // A handler that handed its lease back to wait for children has
        // nothing to report, whatever a renewal of that dead lease said
        // meanwhile.
        if let Ok(Err(e)) = &joined
            && e.is_waiting()
        {
            Counters::add(&shared.counters.waiting);
            return;
        }
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

pub(super) async fn heartbeat(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
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
                            RenewStatus::Paused => shared.signal(&o.lease, StopReason::Paused),
                        }
                    }
                }
                Err(e) => tracing::warn!("lease renewal failed; retrying at the next beat: {e}"),
            }
        }
    }
}
