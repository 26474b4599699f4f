//! One set of calls over two ways of reaching Baton: a backend in this
//! process, or a server through the HTTP API.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use baton_core::{
    AdminBackend, CancelRequest, Cancellation, ChangeMark, Claim, ClaimRequest, CreateOutcome,
    ExecutionId, ExecutionSnapshot, Failure, Lane, LeaseToken, Limits, ListFilter, ListPage,
    LongPoll, Namespace, NewExecution, NewSignal, Page, ProgressFrame, RenewOutcome, RenewRequest,
    Result, Signal, SignalName, SignalOutcome, StateCounts, StateEntry, StateKey, StepName,
    StepOutcome, StepRecord, SuspendOutcome, SuspendRequest, TagKey, Tree, WorkerInfo,
    claim_waiting,
};
use tokio::sync::watch;

use crate::http::HttpTransport;

#[derive(Clone, Debug)]
pub(crate) enum Transport {
    Direct(Arc<dyn AdminBackend>),
    Http(Arc<HttpTransport>),
}

impl Transport {
    pub(crate) fn limits(&self) -> Limits {
        match self {
            Transport::Direct(b) => b.capabilities().limits,
            Transport::Http(_) => Limits::default(),
        }
    }

    pub(crate) async fn create(&self, items: Vec<NewExecution>) -> Result<Vec<CreateOutcome>> {
        match self {
            Transport::Direct(b) => b.create(items).await,
            Transport::Http(h) => h.create(items).await,
        }
    }

    pub(crate) async fn describe(&self, id: &ExecutionId) -> Result<ExecutionSnapshot> {
        match self {
            Transport::Direct(b) => b.describe(id).await,
            Transport::Http(h) => h.describe(id).await,
        }
    }

    pub(crate) async fn list(&self, filter: &ListFilter, page: Page) -> Result<ListPage> {
        match self {
            Transport::Direct(b) => b.list(filter, page).await,
            Transport::Http(h) => h.list(filter, page).await,
        }
    }

    pub(crate) async fn cancel(
        &self,
        id: &ExecutionId,
        request: CancelRequest,
    ) -> Result<Cancellation> {
        match self {
            Transport::Direct(b) => b.cancel(id, request).await,
            Transport::Http(h) => h.cancel(id, request).await,
        }
    }

    pub(crate) async fn children(&self, parent: &ExecutionId, page: Page) -> Result<ListPage> {
        match self {
            Transport::Direct(b) => b.children(parent, page).await,
            Transport::Http(h) => h.children(parent, page).await,
        }
    }

    pub(crate) async fn tree(&self, id: &ExecutionId, limit: usize) -> Result<Tree> {
        match self {
            Transport::Direct(b) => b.tree(id, limit).await,
            Transport::Http(h) => h.tree(id, limit).await,
        }
    }

    pub(crate) async fn counts(&self, ns: &Namespace) -> Result<BTreeMap<Lane, StateCounts>> {
        match self {
            Transport::Direct(b) => b.counts(ns).await,
            Transport::Http(h) => h.counts(ns).await,
        }
    }

    /// Claims, waiting up to `wait` for work when there is none. A direct
    /// backend's wait ends early when `stop` turns true; an HTTP long-poll
    /// is never abandoned midway, because the server may already have
    /// granted leases that the answer carries.
    pub(crate) async fn claim(
        &self,
        req: &ClaimRequest,
        wait: Duration,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<Vec<Claim>> {
        match self {
            Transport::Http(h) => h.claim(req, wait).await,
            Transport::Direct(b) => claim_waiting(b.as_ref(), req, LongPoll::new(wait), stop).await,
        }
    }

    pub(crate) async fn renew(&self, req: RenewRequest) -> Result<Vec<RenewOutcome>> {
        match self {
            Transport::Direct(b) => b.renew(req).await,
            Transport::Http(h) => h.renew(req).await,
        }
    }

    pub(crate) async fn complete(&self, lease: &LeaseToken, result: Vec<u8>) -> Result<()> {
        match self {
            Transport::Direct(b) => b.complete(lease, result).await.map(drop),
            Transport::Http(h) => h.complete(lease, &result).await.map(drop),
        }
    }

    pub(crate) async fn fail(&self, lease: &LeaseToken, failure: Failure) -> Result<()> {
        match self {
            Transport::Direct(b) => b.fail(lease, failure).await.map(drop),
            Transport::Http(h) => h.fail(lease, failure).await.map(drop),
        }
    }

    pub(crate) async fn wait_children(&self, lease: &LeaseToken) -> Result<ExecutionSnapshot> {
        match self {
            Transport::Direct(b) => b.wait_children(lease).await,
            Transport::Http(h) => h.wait_children(lease).await,
        }
    }

    pub(crate) async fn release(&self, lease: &LeaseToken) -> Result<()> {
        match self {
            Transport::Direct(b) => b.release(lease).await.map(drop),
            Transport::Http(h) => h.release(lease).await.map(drop),
        }
    }

    /// The outcome, and each waitpoint with its token: only a server
    /// signs tokens, so a backend in this process answers none.
    pub(crate) async fn suspend(
        &self,
        lease: &LeaseToken,
        request: SuspendRequest,
    ) -> Result<(SuspendOutcome, Vec<(SignalName, Option<String>)>)> {
        match self {
            Transport::Direct(b) => {
                let names = request.waitpoints.clone();
                let out = b.suspend(lease, request).await?;
                Ok((out, names.into_iter().map(|n| (n, None)).collect()))
            }
            Transport::Http(h) => h.suspend(lease, &request).await,
        }
    }

    pub(crate) async fn signal(
        &self,
        id: &ExecutionId,
        signal: NewSignal,
    ) -> Result<SignalOutcome> {
        match self {
            Transport::Direct(b) => b.signal(id, signal).await,
            Transport::Http(h) => h.signal(id, signal).await,
        }
    }

    pub(crate) async fn signals(&self, id: &ExecutionId) -> Result<Vec<Signal>> {
        match self {
            Transport::Direct(b) => b.signals(id).await,
            Transport::Http(h) => h.signals(id).await,
        }
    }

    pub(crate) async fn record_step(
        &self,
        lease: &LeaseToken,
        name: StepName,
        outcome: StepOutcome,
    ) -> Result<StepRecord> {
        match self {
            Transport::Direct(b) => b.record_step(lease, name, outcome).await,
            Transport::Http(h) => h.record_step(lease, &name, &outcome).await,
        }
    }

    pub(crate) async fn steps(&self, id: &ExecutionId) -> Result<Vec<StepRecord>> {
        match self {
            Transport::Direct(b) => b.steps(id).await,
            Transport::Http(h) => h.steps(id).await,
        }
    }

    pub(crate) async fn set_state(
        &self,
        lease: &LeaseToken,
        key: StateKey,
        value: Option<Vec<u8>>,
    ) -> Result<()> {
        match self {
            Transport::Direct(b) => b.set_state(lease, key, value).await,
            Transport::Http(h) => h.set_state(lease, &key, value.as_deref()).await,
        }
    }

    pub(crate) async fn state(&self, id: &ExecutionId) -> Result<Vec<StateEntry>> {
        match self {
            Transport::Direct(b) => b.state(id).await,
            Transport::Http(h) => h.state(id).await,
        }
    }

    pub(crate) async fn set_status(&self, lease: &LeaseToken, status: Vec<u8>) -> Result<u64> {
        match self {
            Transport::Direct(b) => b.set_status(lease, status).await,
            Transport::Http(h) => h.set_status(lease, &status).await,
        }
    }

    pub(crate) async fn append_progress(&self, lease: &LeaseToken, frame: Vec<u8>) -> Result<u64> {
        match self {
            Transport::Direct(b) => b.append_progress(lease, frame).await,
            Transport::Http(h) => h.append_progress(lease, &frame).await,
        }
    }

    /// The frames above `after`; with `wait`, waits for the next one (or
    /// the end of the execution) when there is none yet. Answers the frames
    /// and the execution's state then.
    pub(crate) async fn progress(
        &self,
        id: &ExecutionId,
        after: u64,
        limit: usize,
        wait: Duration,
    ) -> Result<(Vec<ProgressFrame>, baton_core::State)> {
        match self {
            Transport::Direct(b) => {
                let frames = b.progress(id, after, limit).await?;
                if !frames.is_empty() {
                    return Ok((frames, b.describe(id).await?.state));
                }
                let deadline = baton_core::raw::deadline_in(wait);
                let mut snap = b.describe(id).await?;
                loop {
                    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                    if snap.progress_seq > after {
                        return Ok((b.progress(id, after, limit).await?, snap.state));
                    }
                    if snap.state.is_terminal() || left.is_zero() {
                        return Ok((Vec::new(), snap.state));
                    }
                    let piece = left.min(crate::client::WAIT_PIECE);
                    snap = b.wait_for_change(id, ChangeMark::of(&snap), piece).await?;
                }
            }
            Transport::Http(h) => {
                let answer = h.progress(id, after, limit, wait).await?;
                Ok((
                    answer
                        .frames
                        .into_iter()
                        .map(baton_api::FrameAnswer::into_frame)
                        .collect(),
                    answer.state,
                ))
            }
        }
    }

    pub(crate) async fn wait_for_change(
        &self,
        id: &ExecutionId,
        seen: ChangeMark,
        timeout: Duration,
    ) -> Result<ExecutionSnapshot> {
        match self {
            Transport::Direct(b) => b.wait_for_change(id, seen, timeout).await,
            Transport::Http(h) => h.wait_for_change(id, seen, timeout).await,
        }
    }

    pub(crate) async fn set_priority(
        &self,
        id: &ExecutionId,
        priority: i32,
    ) -> Result<ExecutionSnapshot> {
        match self {
            Transport::Direct(b) => b.set_priority(id, priority).await,
            Transport::Http(h) => h.set_priority(id, priority).await,
        }
    }

    pub(crate) async fn set_tag(
        &self,
        id: &ExecutionId,
        key: TagKey,
        value: Option<String>,
    ) -> Result<ExecutionSnapshot> {
        match self {
            Transport::Direct(b) => b.set_tag(id, key, value).await,
            Transport::Http(h) => h.set_tag(id, &key, value.as_deref()).await,
        }
    }

    pub(crate) async fn explain(&self, id: &ExecutionId) -> Result<baton_core::Explanation> {
        match self {
            Transport::Direct(b) => b.explain(id).await,
            Transport::Http(h) => h.explain(id).await,
        }
    }

    pub(crate) async fn revoke(&self, id: &ExecutionId) -> Result<ExecutionSnapshot> {
        match self {
            Transport::Direct(b) => b.revoke(id).await,
            Transport::Http(h) => h.revoke(id).await,
        }
    }

    pub(crate) async fn workers(
        &self,
        namespace: &Namespace,
        limit: usize,
    ) -> Result<Vec<WorkerInfo>> {
        match self {
            Transport::Direct(b) => b.workers(namespace, limit).await,
            Transport::Http(h) => h.workers(namespace, limit).await,
        }
    }

    pub(crate) async fn pause(
        &self,
        id: &ExecutionId,
        scope: baton_core::CancelScope,
    ) -> Result<baton_core::PauseOutcome> {
        match self {
            Transport::Direct(b) => b.pause(id, scope).await,
            Transport::Http(h) => h.pause_or_resume(baton_api::Route::Pause, id, scope).await,
        }
    }

    pub(crate) async fn resume(
        &self,
        id: &ExecutionId,
        scope: baton_core::CancelScope,
    ) -> Result<baton_core::PauseOutcome> {
        match self {
            Transport::Direct(b) => b.resume(id, scope).await,
            Transport::Http(h) => h.pause_or_resume(baton_api::Route::Resume, id, scope).await,
        }
    }

    pub(crate) async fn set_history(&self, namespace: &Namespace, enabled: bool) -> Result<bool> {
        match self {
            Transport::Direct(b) => b.set_history(namespace, enabled).await,
            Transport::Http(h) => h.history(namespace, Some(enabled)).await,
        }
    }

    pub(crate) async fn set_retention(
        &self,
        namespace: &Namespace,
        lane: Option<&baton_core::Lane>,
        keep: std::time::Duration,
    ) -> Result<Option<std::time::Duration>> {
        match self {
            Transport::Direct(b) => b.set_retention(namespace, lane, keep).await,
            Transport::Http(h) => h.change_retention(namespace, lane, Some(keep)).await,
        }
    }

    pub(crate) async fn remove_retention(
        &self,
        namespace: &Namespace,
        lane: Option<&baton_core::Lane>,
    ) -> Result<Option<std::time::Duration>> {
        match self {
            Transport::Direct(b) => b.remove_retention(namespace, lane).await,
            Transport::Http(h) => h.change_retention(namespace, lane, None).await,
        }
    }

    pub(crate) async fn retention_rules(&self) -> Result<Vec<baton_core::RetentionRule>> {
        match self {
            Transport::Direct(b) => b.retention_rules().await,
            Transport::Http(h) => h.retention_rules().await,
        }
    }

    pub(crate) async fn set_limit(
        &self,
        limit: &baton_core::Limit,
    ) -> Result<Option<baton_core::Limit>> {
        match self {
            Transport::Direct(b) => b.set_limit(limit).await,
            Transport::Http(h) => h.set_limit(limit).await,
        }
    }

    pub(crate) async fn remove_limit(
        &self,
        name: &baton_core::LimitName,
    ) -> Result<Option<baton_core::Limit>> {
        match self {
            Transport::Direct(b) => b.remove_limit(name).await,
            Transport::Http(h) => h.remove_limit(name).await,
        }
    }

    pub(crate) async fn limits_of(
        &self,
        namespace: Option<&Namespace>,
    ) -> Result<Vec<baton_core::Limit>> {
        match self {
            Transport::Direct(b) => b.limits(namespace).await,
            Transport::Http(h) => h.limits(namespace).await,
        }
    }

    pub(crate) async fn limit_usage(
        &self,
        name: &baton_core::LimitName,
        limit: usize,
    ) -> Result<Vec<baton_core::LimitUsage>> {
        match self {
            Transport::Direct(b) => b.limit_usage(name, limit).await,
            Transport::Http(h) => h.limit_usage(name, limit).await,
        }
    }

    pub(crate) async fn history_enabled(&self, namespace: &Namespace) -> Result<bool> {
        match self {
            Transport::Direct(b) => b.history_enabled(namespace).await,
            Transport::Http(h) => h.history(namespace, None).await,
        }
    }

    pub(crate) async fn events(
        &self,
        id: &ExecutionId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<baton_core::ExecutionEvent>> {
        match self {
            Transport::Direct(b) => b.events(id, after, limit).await,
            Transport::Http(h) => h.events(id, after, limit).await,
        }
    }

    pub(crate) async fn delete(
        &self,
        id: &ExecutionId,
        force: bool,
    ) -> Result<baton_core::DeleteReport> {
        match self {
            Transport::Direct(b) => b.delete(id, force).await,
            Transport::Http(h) => h.delete(id, force).await,
        }
    }

    pub(crate) async fn replay(&self, id: &ExecutionId) -> Result<ExecutionSnapshot> {
        match self {
            Transport::Direct(b) => b.replay(id).await,
            Transport::Http(h) => h.replay(id).await,
        }
    }

    pub(crate) async fn set_lane_paused(
        &self,
        namespace: &Namespace,
        lane: &Lane,
        paused: bool,
    ) -> Result<bool> {
        match self {
            Transport::Direct(b) if paused => b.pause_lane(namespace, lane).await,
            Transport::Direct(b) => b.resume_lane(namespace, lane).await,
            Transport::Http(h) => h.set_lane_paused(namespace, lane, paused).await,
        }
    }

    pub(crate) async fn lanes(&self, namespace: &Namespace) -> Result<Vec<baton_core::LaneInfo>> {
        match self {
            Transport::Direct(b) => b.lanes(namespace).await,
            Transport::Http(h) => h.lanes(namespace).await,
        }
    }

    pub(crate) async fn describe_many(
        &self,
        ids: &[ExecutionId],
    ) -> Result<Vec<Option<ExecutionSnapshot>>> {
        match self {
            Transport::Direct(b) => b.describe_many(ids).await,
            Transport::Http(h) => h.describe_many(ids).await,
        }
    }

    pub(crate) async fn bulk(
        &self,
        request: baton_core::BulkRequest,
    ) -> Result<baton_core::BulkReport> {
        match self {
            Transport::Direct(b) => b.bulk(request).await,
            Transport::Http(h) => h.bulk(request).await,
        }
    }
}
