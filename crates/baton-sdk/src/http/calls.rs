//! One method per transport operation: its route, body and answer type.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use baton_api::{
    BatchBody, BatchCreated, CancelAnswer, CancelBody, ChildrenQuery, ClaimAnswer, ClaimBody,
    CompleteBody, ExplainAnswer, FailBody, LeaseBody, ListAnswer, ListQuery, PriorityBody,
    ProgressAnswer, ProgressAppended, ProgressBody, ReleaseBody, RenewAnswer, RenewBody, Route,
    SignalAnswer, SignalRequestBody, SignalsAnswer, Snapshot, StateAnswer, StateBody,
    StateEntryAnswer, StatsAnswer, StatusAnswer, StatusBody, StepAnswer, StepBody, StepsAnswer,
    SubmitBody, SuspendAnswer, SuspendBody, TagBody, TreeAnswer, WaitChildrenBody, WorkersAnswer,
    encode_component as encode,
};
use baton_core::{
    CancelRequest, Cancellation, ChangeMark, Claim, ClaimRequest, CreateOutcome, EngineError,
    ExecutionId, ExecutionSnapshot, Explanation, Failure, Lane, LeaseToken, ListFilter, ListPage,
    Namespace, NewExecution, NewSignal, Page, RenewOutcome, RenewRequest, Result, Signal,
    SignalName, SignalOutcome, StateCounts, StateEntry, StateKey, StepName, StepOutcome,
    StepRecord, SuspendOutcome, SuspendRequest, TagKey, Tree, WorkerInfo,
};

use super::{HttpTransport, Op};

impl HttpTransport {
    pub(crate) async fn create(&self, items: Vec<NewExecution>) -> Result<Vec<CreateOutcome>> {
        let op = Op {
            name: "submit",
            id: None,
        };
        let executions = items
            .iter()
            .map(SubmitBody::from_new)
            .collect::<Result<_>>()?;
        let route = Route::SubmitBatch;
        let answer: BatchCreated = self
            .call(route, route.path(), Some(&BatchBody { executions }), op)
            .await?;
        Ok(answer
            .results
            .into_iter()
            .map(CreateOutcome::from)
            .collect())
    }

    pub(crate) async fn describe(&self, id: &ExecutionId) -> Result<ExecutionSnapshot> {
        let op = Op {
            name: "describe",
            id: Some(id),
        };
        let route = Route::Describe;
        let path = route.path_with(&encode(&id.to_string()));
        let snap: Snapshot = self.call(route, &path, None::<&()>, op).await?;
        snap.into_snapshot()
    }

    pub(crate) async fn list(&self, filter: &ListFilter, page: Page) -> Result<ListPage> {
        let op = Op {
            name: "list",
            id: None,
        };
        let route = Route::List;
        let query = ListQuery::from_request(filter, page).to_query_string();
        let path = format!("{}?{query}", route.path());
        let answer: ListAnswer = self.call(route, &path, None::<&()>, op).await?;
        answer.into_page()
    }

    pub(crate) async fn cancel(
        &self,
        id: &ExecutionId,
        request: CancelRequest,
    ) -> Result<Cancellation> {
        let op = Op {
            name: "cancel",
            id: Some(id),
        };
        let route = Route::Cancel;
        let path = route.path_with(&encode(&id.to_string()));
        let body = CancelBody::from_request(&request);
        let answer: CancelAnswer = self.call(route, &path, Some(&body), op).await?;
        answer.into_cancellation()
    }

    pub(crate) async fn children(&self, parent: &ExecutionId, page: Page) -> Result<ListPage> {
        let op = Op {
            name: "children",
            id: Some(parent),
        };
        let route = Route::Children;
        let query = ChildrenQuery::from_page(page).to_query_string();
        let path = format!("{}?{query}", route.path_with(&encode(&parent.to_string())));
        let answer: ListAnswer = self.call(route, &path, None::<&()>, op).await?;
        answer.into_page()
    }

    pub(crate) async fn tree(&self, id: &ExecutionId, limit: usize) -> Result<Tree> {
        let op = Op {
            name: "tree",
            id: Some(id),
        };
        let route = Route::Tree;
        let path = format!(
            "{}?limit={limit}",
            route.path_with(&encode(&id.to_string()))
        );
        let answer: TreeAnswer = self.call(route, &path, None::<&()>, op).await?;
        Ok(answer.into_tree())
    }

    pub(crate) async fn counts(&self, ns: &Namespace) -> Result<BTreeMap<Lane, StateCounts>> {
        let op = Op {
            name: "stats",
            id: None,
        };
        let route = Route::Stats;
        let path = format!("{}?namespace={}", route.path(), encode(ns.as_str()));
        let answer: StatsAnswer = self.call(route, &path, None::<&()>, op).await?;
        Ok(answer.lanes)
    }

    pub(crate) async fn claim(&self, req: &ClaimRequest, wait: Duration) -> Result<Vec<Claim>> {
        let op = Op {
            name: "claim",
            id: None,
        };
        let Some(first) = req.lanes.first() else {
            return Err(EngineError::invalid("lanes", 0, "name at least one lane"));
        };
        // One claim over every lane (the others in the body's `lanes`), so
        // that priority and age decide across lanes as on a backend.
        if req.lanes.len() == 1 || self.lanes_in_body.load(Ordering::Relaxed) {
            let route = Route::Claim;
            let path = route.path_with(&encode(first.as_str()));
            let body = ClaimBody::new(req, req.max, wait);
            match self
                .call::<_, ClaimAnswer>(route, &path, Some(&body), op)
                .await
            {
                Ok(answer) => return answer.claims.into_iter().map(|c| c.into_claim()).collect(),
                // A server older than the body's `lanes` field refuses it
                // as an unknown field (a whole-request error, no field).
                Err(EngineError::InvalidInput {
                    field: "request", ..
                }) if req.lanes.len() > 1 => {
                    tracing::warn!(
                        "the server does not take several lanes in one claim; claiming lane by lane, so priority only orders work within each lane"
                    );
                    self.lanes_in_body.store(false, Ordering::Relaxed);
                }
                Err(e) => return Err(e),
            }
        }
        self.claim_lane_by_lane(req, wait, op).await
    }

    /// The claim against a server that takes one lane per claim: each lane
    /// in turn, until `max` are claimed.
    async fn claim_lane_by_lane(
        &self,
        req: &ClaimRequest,
        wait: Duration,
        op: Op<'_>,
    ) -> Result<Vec<Claim>> {
        let mut out = Vec::new();
        let mut max = req.max;
        for (i, lane) in req.lanes.iter().enumerate() {
            // Only the last lane waits, and only while nothing was claimed,
            // so a worker on several lanes still notices work on the first
            // ones within one long-poll.
            let last = i + 1 == req.lanes.len();
            let wait = if last && out.is_empty() {
                wait
            } else {
                Duration::ZERO
            };
            let route = Route::Claim;
            let path = route.path_with(&encode(lane.as_str()));
            let mut body = ClaimBody::new(req, max, wait);
            body.lanes.clear();
            let answer: ClaimAnswer = self.call(route, &path, Some(&body), op).await?;
            for c in answer.claims {
                out.push(c.into_claim()?);
            }
            max = req.max.saturating_sub(out.len());
            if max == 0 {
                break;
            }
        }
        Ok(out)
    }

    pub(crate) async fn renew(&self, req: RenewRequest) -> Result<Vec<RenewOutcome>> {
        let op = Op {
            name: "renew",
            id: None,
        };
        let route = Route::Renew;
        let answer: RenewAnswer = self
            .call(route, route.path(), Some(&RenewBody::from(&req)), op)
            .await?;
        if answer.leases.len() != req.leases.len() {
            return Err(EngineError::corruption(format!(
                "renew answered {} outcomes for {} leases",
                answer.leases.len(),
                req.leases.len()
            )));
        }
        Ok(req
            .leases
            .into_iter()
            .zip(answer.leases)
            .map(|(lease, d)| RenewOutcome {
                lease,
                status: d.status,
                expires_at: d.expires_at,
            })
            .collect())
    }

    pub(crate) async fn complete(
        &self,
        lease: &LeaseToken,
        result: &[u8],
    ) -> Result<ExecutionSnapshot> {
        let id = lease.execution_id();
        let op = Op {
            name: "complete",
            id: Some(id),
        };
        let route = Route::Complete;
        let path = route.path_with(&encode(&id.to_string()));
        let body = CompleteBody::new(lease, result)?;
        let snap: Snapshot = self.call(route, &path, Some(&body), op).await?;
        snap.into_snapshot()
    }

    pub(crate) async fn fail(
        &self,
        lease: &LeaseToken,
        failure: Failure,
    ) -> Result<ExecutionSnapshot> {
        let id = lease.execution_id();
        let op = Op {
            name: "fail",
            id: Some(id),
        };
        let route = Route::Fail;
        let path = route.path_with(&encode(&id.to_string()));
        let body = FailBody::new(lease, failure);
        let snap: Snapshot = self.call(route, &path, Some(&body), op).await?;
        snap.into_snapshot()
    }

    pub(crate) async fn wait_children(&self, lease: &LeaseToken) -> Result<ExecutionSnapshot> {
        let id = lease.execution_id();
        let op = Op {
            name: "wait_children",
            id: Some(id),
        };
        let route = Route::WaitChildren;
        let path = route.path_with(&encode(&id.to_string()));
        let body = WaitChildrenBody {
            lease: lease.clone(),
        };
        let snap: Snapshot = self.call(route, &path, Some(&body), op).await?;
        snap.into_snapshot()
    }

    pub(crate) async fn release(&self, lease: &LeaseToken) -> Result<ExecutionSnapshot> {
        let id = lease.execution_id();
        let op = Op {
            name: "release",
            id: Some(id),
        };
        let route = Route::Release;
        let path = route.path_with(&encode(&id.to_string()));
        let body = ReleaseBody {
            lease: lease.clone(),
        };
        let snap: Snapshot = self.call(route, &path, Some(&body), op).await?;
        snap.into_snapshot()
    }

    /// The outcome, and each waitpoint with its token (when the server
    /// signs them).
    pub(crate) async fn suspend(
        &self,
        lease: &LeaseToken,
        request: &SuspendRequest,
    ) -> Result<(SuspendOutcome, Vec<(SignalName, Option<String>)>)> {
        let id = lease.execution_id();
        let op = Op {
            name: "suspend",
            id: Some(id),
        };
        let route = Route::Suspend;
        let path = route.path_with(&encode(&id.to_string()));
        let body = SuspendBody::new(lease, request);
        let answer: SuspendAnswer = self.call(route, &path, Some(&body), op).await?;
        let snapshot = answer.execution.into_snapshot()?;
        let tokens = answer
            .waitpoints
            .into_iter()
            .map(|w| (w.name, w.token))
            .collect();
        let outcome = match answer.state {
            baton_core::State::Running => SuspendOutcome::Satisfied {
                snapshot,
                signals: answer
                    .signals
                    .into_iter()
                    .map(|s| s.into_signal())
                    .collect(),
            },
            _ => SuspendOutcome::Suspended(snapshot),
        };
        Ok((outcome, tokens))
    }

    pub(crate) async fn signal(
        &self,
        id: &ExecutionId,
        signal: NewSignal,
    ) -> Result<SignalOutcome> {
        let op = Op {
            name: "signal",
            id: Some(id),
        };
        let route = Route::Signal;
        let path = route.path_with_all(&[&encode(&id.to_string()), &encode(signal.name.as_str())]);
        let body = SignalRequestBody::new(&signal.payload, signal.idempotency_key.clone())?;
        let answer: SignalAnswer = self.call(route, &path, Some(&body), op).await?;
        Ok(answer.outcome)
    }

    pub(crate) async fn signals(&self, id: &ExecutionId) -> Result<Vec<Signal>> {
        let op = Op {
            name: "signals",
            id: Some(id),
        };
        let route = Route::Signals;
        let path = route.path_with(&encode(&id.to_string()));
        let answer: SignalsAnswer = self.call(route, &path, None::<&()>, op).await?;
        Ok(answer.items.into_iter().map(|s| s.into_signal()).collect())
    }

    pub(crate) async fn record_step(
        &self,
        lease: &LeaseToken,
        name: &StepName,
        outcome: &StepOutcome,
    ) -> Result<StepRecord> {
        let id = lease.execution_id();
        let op = Op {
            name: "record_step",
            id: Some(id),
        };
        let route = Route::RecordStep;
        let path = route.path_with_all(&[&encode(&id.to_string()), &encode(name.as_str())]);
        let body = StepBody::new(lease, outcome)?;
        let answer: StepAnswer = self.call(route, &path, Some(&body), op).await?;
        Ok(answer.into_record())
    }

    pub(crate) async fn steps(&self, id: &ExecutionId) -> Result<Vec<StepRecord>> {
        let op = Op {
            name: "steps",
            id: Some(id),
        };
        let route = Route::Steps;
        let path = route.path_with(&encode(&id.to_string()));
        let answer: StepsAnswer = self.call(route, &path, None::<&()>, op).await?;
        Ok(answer
            .items
            .into_iter()
            .map(StepAnswer::into_record)
            .collect())
    }

    /// `GET /v1/executions/{id}?wait_ms=` following `seen`: answers when
    /// the execution is terminal or its status version or last frame
    /// differs from `seen`, or after `timeout`. The server caps one wait,
    /// so a longer one is asked again until `timeout` is over; a server
    /// that answers unchanged early (it is shutting down) is asked again
    /// only after a pause, never in a tight loop.
    pub(crate) async fn wait_for_change(
        &self,
        id: &ExecutionId,
        seen: ChangeMark,
        timeout: Duration,
    ) -> Result<ExecutionSnapshot> {
        let deadline = baton_core::raw::deadline_in(timeout);
        let op = Op {
            name: "wait_for_change",
            id: Some(id),
        };
        let route = Route::Describe;
        loop {
            let asked = tokio::time::Instant::now();
            let left = deadline.saturating_duration_since(asked);
            let path = format!(
                "{}?wait_ms={}&status_version={}&progress_seq={}",
                route.path_with(&encode(&id.to_string())),
                wait_ms(left),
                seen.status_version,
                seen.progress_seq
            );
            let snap: Snapshot = self.call(route, &path, None::<&()>, op).await?;
            let snap = snap.into_snapshot()?;
            if ChangeMark::of(&snap) != seen || snap.state.is_terminal() {
                return Ok(snap);
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(snap);
            }
            early_answer_pause(asked, deadline).await;
        }
    }

    pub(crate) async fn set_status(&self, lease: &LeaseToken, status: &[u8]) -> Result<u64> {
        let id = lease.execution_id();
        let op = Op {
            name: "set_status",
            id: Some(id),
        };
        let route = Route::SetStatus;
        let path = route.path_with(&encode(&id.to_string()));
        let body = StatusBody::new(lease, status)?;
        let answer: StatusAnswer = self.call(route, &path, Some(&body), op).await?;
        Ok(answer.version)
    }

    pub(crate) async fn append_progress(&self, lease: &LeaseToken, frame: &[u8]) -> Result<u64> {
        let id = lease.execution_id();
        let op = Op {
            name: "append_progress",
            id: Some(id),
        };
        let route = Route::AppendProgress;
        let path = route.path_with(&encode(&id.to_string()));
        let body = ProgressBody::new(lease, frame)?;
        let answer: ProgressAppended = self.call(route, &path, Some(&body), op).await?;
        Ok(answer.seq)
    }

    /// `GET …/progress`; with `wait`, a long-poll for the next frame,
    /// asked again (the server caps one wait) until a frame comes, the
    /// execution finishes or `wait` is over.
    pub(crate) async fn progress(
        &self,
        id: &ExecutionId,
        after: u64,
        limit: usize,
        wait: Duration,
    ) -> Result<ProgressAnswer> {
        let deadline = baton_core::raw::deadline_in(wait);
        let op = Op {
            name: "progress",
            id: Some(id),
        };
        let route = Route::Progress;
        loop {
            let asked = tokio::time::Instant::now();
            let left = deadline.saturating_duration_since(asked);
            let path = format!(
                "{}?after={after}&limit={limit}&wait_ms={}",
                route.path_with(&encode(&id.to_string())),
                wait_ms(left)
            );
            let answer: ProgressAnswer = self.call(route, &path, None::<&()>, op).await?;
            if !answer.frames.is_empty()
                || answer.state.is_terminal()
                || tokio::time::Instant::now() >= deadline
            {
                return Ok(answer);
            }
            early_answer_pause(asked, deadline).await;
        }
    }

    pub(crate) async fn set_state(
        &self,
        lease: &LeaseToken,
        key: &StateKey,
        value: Option<&[u8]>,
    ) -> Result<()> {
        let id = lease.execution_id();
        let op = Op {
            name: "set_state",
            id: Some(id),
        };
        let path_of =
            |route: Route| route.path_with_all(&[&encode(&id.to_string()), &encode(key.as_str())]);
        match value {
            Some(value) => {
                let route = Route::SetState;
                let body = StateBody::new(lease, value)?;
                self.call(route, &path_of(route), Some(&body), op).await
            }
            None => {
                let route = Route::ClearState;
                let body = LeaseBody {
                    lease: lease.clone(),
                };
                self.call(route, &path_of(route), Some(&body), op).await
            }
        }
    }

    pub(crate) async fn state(&self, id: &ExecutionId) -> Result<Vec<StateEntry>> {
        let op = Op {
            name: "state",
            id: Some(id),
        };
        let route = Route::State;
        let path = route.path_with(&encode(&id.to_string()));
        let answer: StateAnswer = self.call(route, &path, None::<&()>, op).await?;
        Ok(answer
            .items
            .into_iter()
            .map(StateEntryAnswer::into_entry)
            .collect())
    }

    pub(crate) async fn set_priority(
        &self,
        id: &ExecutionId,
        priority: i32,
    ) -> Result<ExecutionSnapshot> {
        let op = Op {
            name: "set_priority",
            id: Some(id),
        };
        let route = Route::SetPriority;
        let path = route.path_with(&encode(&id.to_string()));
        let snap: Snapshot = self
            .call(route, &path, Some(&PriorityBody { priority }), op)
            .await?;
        snap.into_snapshot()
    }

    pub(crate) async fn set_tag(
        &self,
        id: &ExecutionId,
        key: &TagKey,
        value: Option<&str>,
    ) -> Result<ExecutionSnapshot> {
        let op = Op {
            name: "set_tag",
            id: Some(id),
        };
        let path_of =
            |route: Route| route.path_with_all(&[&encode(&id.to_string()), &encode(key.as_str())]);
        let snap: Snapshot = match value {
            Some(v) => {
                let route = Route::SetTag;
                let body = TagBody {
                    value: v.to_owned(),
                };
                self.call(route, &path_of(route), Some(&body), op).await?
            }
            None => {
                let route = Route::RemoveTag;
                self.call(route, &path_of(route), None::<&()>, op).await?
            }
        };
        snap.into_snapshot()
    }

    /// `GET …/explain`, with the snapshot read beside it (the answer
    /// carries only the id and state).
    pub(crate) async fn explain(&self, id: &ExecutionId) -> Result<Explanation> {
        let op = Op {
            name: "explain",
            id: Some(id),
        };
        let route = Route::Explain;
        let path = route.path_with(&encode(&id.to_string()));
        let answer: ExplainAnswer = self.call(route, &path, None::<&()>, op).await?;
        let snapshot = self.describe(id).await?;
        Ok(Explanation {
            snapshot,
            reason: answer.waiting_on.as_deref().and_then(known_reason),
            detail: answer.detail,
        })
    }

    pub(crate) async fn revoke(&self, id: &ExecutionId) -> Result<ExecutionSnapshot> {
        let op = Op {
            name: "revoke",
            id: Some(id),
        };
        let route = Route::Revoke;
        let path = route.path_with(&encode(&id.to_string()));
        let snap: Snapshot = self.call(route, &path, None::<&()>, op).await?;
        snap.into_snapshot()
    }

    pub(crate) async fn workers(
        &self,
        namespace: &Namespace,
        limit: usize,
    ) -> Result<Vec<WorkerInfo>> {
        let op = Op {
            name: "workers",
            id: None,
        };
        let route = Route::Workers;
        let path = format!(
            "{}?namespace={}&limit={limit}",
            route.path(),
            encode(namespace.as_str())
        );
        let answer: WorkersAnswer = self.call(route, &path, None::<&()>, op).await?;
        Ok(answer
            .workers
            .into_iter()
            .map(|w| w.into_info(namespace.clone()))
            .collect())
    }

    /// `POST …/pause` or `…/resume` (`route`) with `scope`.
    pub(crate) async fn pause_or_resume(
        &self,
        route: Route,
        id: &ExecutionId,
        scope: baton_core::CancelScope,
    ) -> Result<baton_core::PauseOutcome> {
        let op = Op {
            name: route.operation_id(),
            id: Some(id),
        };
        let path = route.path_with(&encode(&id.to_string()));
        let body = baton_api::ScopeBody { scope: Some(scope) };
        let answer: baton_api::PauseAnswer = self.call(route, &path, Some(&body), op).await?;
        answer.into_pause_outcome()
    }

    pub(crate) async fn describe_many(
        &self,
        ids: &[ExecutionId],
    ) -> Result<Vec<Option<ExecutionSnapshot>>> {
        let op = Op {
            name: "describe_many",
            id: None,
        };
        let route = Route::DescribeMany;
        let body = baton_api::DescribeManyBody {
            ids: ids.iter().map(|id| id.to_string()).collect(),
        };
        let answer: baton_api::DescribeManyAnswer =
            self.call(route, route.path(), Some(&body), op).await?;
        answer
            .items
            .into_iter()
            .map(|item| item.map(|s| s.into_snapshot()).transpose())
            .collect()
    }

    pub(crate) async fn bulk(
        &self,
        request: baton_core::BulkRequest,
    ) -> Result<baton_core::BulkReport> {
        let (route, reason, scope, force) = match &request.action {
            baton_core::BulkAction::Cancel(c) => {
                (Route::BulkCancel, c.reason.clone(), Some(c.scope), false)
            }
            baton_core::BulkAction::Replay => (Route::BulkReplay, None, None, false),
            baton_core::BulkAction::Delete { force } => (Route::BulkDelete, None, None, *force),
            other => {
                return Err(baton_core::EngineError::invalid(
                    "action",
                    other.name(),
                    "this SDK does not know how to send it; upgrade the SDK",
                ));
            }
        };
        let op = Op {
            name: route.operation_id(),
            id: None,
        };
        let q = baton_api::ListQuery::from_request(&request.filter, baton_core::Page::first(1));
        let body = baton_api::BulkBody {
            filter: baton_api::BulkFilterBody {
                namespace: q.namespace,
                lane: q.lane,
                state: q.state,
                kind: q.kind,
                tag: q.tag,
                tag_key: q.tag_key,
                tag_value: q.tag_value,
                parent: q.parent,
                created_after: q.created_after,
                created_before: q.created_before,
                finished_after: q.finished_after,
                finished_before: q.finished_before,
                idempotency_key: q.idempotency_key,
                ids: request.ids.iter().map(|id| id.to_string()).collect(),
            },
            limit: Some(request.limit),
            dry_run: request.dry_run,
            cursor: request.cursor.map(|c| c.to_string()),
            reason,
            scope,
            force,
            // The SDK caller chose the filter in code: a namespace-wide one
            // is meant.
            all: true,
        };
        let answer: baton_api::BulkAnswer = self
            .call_as(
                route,
                route.path(),
                Some(&body),
                op,
                request.actor.as_deref(),
            )
            .await?;
        answer.into_report()
    }

    /// `PUT` (with `enabled`) or `GET /v1/namespaces/{namespace}/history`.
    pub(crate) async fn history(
        &self,
        namespace: &baton_core::Namespace,
        enabled: Option<bool>,
    ) -> Result<bool> {
        let op = Op {
            name: "history",
            id: None,
        };
        let ns = encode(namespace.as_str());
        let answer: baton_api::HistoryAnswer = match enabled {
            Some(enabled) => {
                let route = Route::SetHistory;
                let body = baton_api::HistoryBody { enabled };
                self.call(route, &route.path_with(&ns), Some(&body), op)
                    .await?
            }
            None => {
                let route = Route::History;
                self.call(route, &route.path_with(&ns), None::<&()>, op)
                    .await?
            }
        };
        Ok(match enabled {
            Some(_) => answer.was.unwrap_or(false),
            None => answer.enabled,
        })
    }

    /// `PUT /v1/retention/{namespace}` or, without `keep`, `DELETE
    /// /v1/retention/{namespace}?lane=`; answers the keep before.
    pub(crate) async fn change_retention(
        &self,
        namespace: &baton_core::Namespace,
        lane: Option<&baton_core::Lane>,
        keep: Option<Duration>,
    ) -> Result<Option<Duration>> {
        let op = Op {
            name: if keep.is_some() {
                "set_retention"
            } else {
                "remove_retention"
            },
            id: None,
        };
        let ns = encode(namespace.as_str());
        let answer: baton_api::RetentionChangeAnswer = match keep {
            Some(keep) => {
                let route = Route::SetRetention;
                let body = baton_api::RetentionBody {
                    lane: lane.map(ToString::to_string),
                    keep: None,
                    keep_ms: Some(u64::try_from(keep.as_millis()).unwrap_or(u64::MAX)),
                };
                self.call(route, &route.path_with(&ns), Some(&body), op)
                    .await?
            }
            None => {
                let route = Route::RemoveRetention;
                let mut path = route.path_with(&ns);
                if let Some(lane) = lane {
                    path = format!("{path}?lane={}", encode(lane.as_str()));
                }
                self.call(route, &path, None::<&()>, op).await?
            }
        };
        Ok(answer.previous_ms.map(Duration::from_millis))
    }

    /// `GET /v1/retention`.
    pub(crate) async fn retention_rules(&self) -> Result<Vec<baton_core::RetentionRule>> {
        let op = Op {
            name: "retention_rules",
            id: None,
        };
        let route = Route::Retention;
        let answer: baton_api::RetentionRulesAnswer =
            self.call(route, route.path(), None::<&()>, op).await?;
        answer
            .items
            .iter()
            .map(baton_api::RetentionAnswer::rule)
            .collect()
    }

    /// `PUT /v1/limits/{name}`; answers the limit replaced.
    pub(crate) async fn set_limit(
        &self,
        limit: &baton_core::Limit,
    ) -> Result<Option<baton_core::Limit>> {
        let op = Op {
            name: "set_limit",
            id: None,
        };
        let route = Route::SetLimit;
        let answer = baton_api::LimitAnswer::from(limit);
        let body = baton_api::LimitBody {
            namespace: answer.namespace,
            lane: answer.lane,
            key: answer.key,
            max_running: answer.max_running,
            rate: answer.rate,
            fair: answer.fair,
        };
        let answer: baton_api::LimitChangeAnswer = self
            .call(
                route,
                &route.path_with(&encode(limit.name.as_str())),
                Some(&body),
                op,
            )
            .await?;
        answer
            .previous
            .as_ref()
            .map(baton_api::LimitAnswer::limit)
            .transpose()
    }

    /// `DELETE /v1/limits/{name}`; answers the limit removed.
    pub(crate) async fn remove_limit(
        &self,
        name: &baton_core::LimitName,
    ) -> Result<Option<baton_core::Limit>> {
        let op = Op {
            name: "remove_limit",
            id: None,
        };
        let route = Route::RemoveLimit;
        let answer: baton_api::LimitChangeAnswer = self
            .call(
                route,
                &route.path_with(&encode(name.as_str())),
                None::<&()>,
                op,
            )
            .await?;
        answer
            .previous
            .as_ref()
            .map(baton_api::LimitAnswer::limit)
            .transpose()
    }

    /// `GET /v1/limits?namespace=`.
    pub(crate) async fn limits(
        &self,
        namespace: Option<&baton_core::Namespace>,
    ) -> Result<Vec<baton_core::Limit>> {
        let op = Op {
            name: "limits",
            id: None,
        };
        let route = Route::Limits;
        let path = match namespace {
            Some(ns) => format!("{}?namespace={}", route.path(), encode(ns.as_str())),
            None => route.path().to_owned(),
        };
        let answer: baton_api::LimitsAnswer = self.call(route, &path, None::<&()>, op).await?;
        answer
            .items
            .iter()
            .map(baton_api::LimitAnswer::limit)
            .collect()
    }

    /// `GET /v1/limits/{name}/usage?limit=`.
    pub(crate) async fn limit_usage(
        &self,
        name: &baton_core::LimitName,
        limit: usize,
    ) -> Result<Vec<baton_core::LimitUsage>> {
        let op = Op {
            name: "limit_usage",
            id: None,
        };
        let route = Route::LimitUsage;
        let path = format!("{}?limit={limit}", route.path_with(&encode(name.as_str())));
        let answer: baton_api::LimitUsageAnswer = self.call(route, &path, None::<&()>, op).await?;
        Ok(answer
            .items
            .into_iter()
            .map(|k| baton_core::LimitUsage {
                name: name.clone(),
                key_value: k.key_value,
                running: k.running,
                window_claims: k.window_claims,
            })
            .collect())
    }

    /// `GET /v1/executions/{id}/events?after=&limit=`.
    pub(crate) async fn events(
        &self,
        id: &ExecutionId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<baton_core::ExecutionEvent>> {
        let op = Op {
            name: "events",
            id: Some(id),
        };
        let route = Route::Events;
        let path = format!(
            "{}?after={after}&limit={limit}",
            route.path_with(&encode(&id.to_string()))
        );
        let answer: baton_api::EventsAnswer = self.call(route, &path, None::<&()>, op).await?;
        answer
            .items
            .into_iter()
            .map(baton_api::EventAnswer::into_event)
            .collect()
    }

    /// `DELETE /v1/executions/{id}?force=`.
    pub(crate) async fn delete(
        &self,
        id: &ExecutionId,
        force: bool,
    ) -> Result<baton_core::DeleteReport> {
        let op = Op {
            name: "delete",
            id: Some(id),
        };
        let route = Route::Delete;
        let path = format!(
            "{}?force={force}",
            route.path_with(&encode(&id.to_string()))
        );
        let answer: baton_api::DeleteAnswer = self.call(route, &path, None::<&()>, op).await?;
        answer.into_report()
    }

    pub(crate) async fn replay(&self, id: &ExecutionId) -> Result<ExecutionSnapshot> {
        let op = Op {
            name: "replay",
            id: Some(id),
        };
        let route = Route::Replay;
        let path = route.path_with(&encode(&id.to_string()));
        let snap: Snapshot = self.call(route, &path, None::<&()>, op).await?;
        snap.into_snapshot()
    }

    /// `POST /v1/lanes/{lane}/pause` or `/resume`: whether the call
    /// changed the lane.
    pub(crate) async fn set_lane_paused(
        &self,
        namespace: &Namespace,
        lane: &baton_core::Lane,
        paused: bool,
    ) -> Result<bool> {
        let route = if paused {
            Route::PauseLane
        } else {
            Route::ResumeLane
        };
        let op = Op {
            name: route.operation_id(),
            id: None,
        };
        let path = route.path_with(&encode(lane.as_str()));
        let body = baton_api::LaneBody {
            namespace: Some(namespace.as_str().to_owned()),
        };
        let answer: baton_api::LanePauseAnswer = self.call(route, &path, Some(&body), op).await?;
        Ok(answer.changed)
    }

    pub(crate) async fn lanes(&self, namespace: &Namespace) -> Result<Vec<baton_core::LaneInfo>> {
        let op = Op {
            name: "lanes",
            id: None,
        };
        let route = Route::Lanes;
        let path = format!("{}?namespace={}", route.path(), encode(namespace.as_str()));
        let answer: baton_api::LanesAnswer = self.call(route, &path, None::<&()>, op).await?;
        Ok(answer.lanes.into_iter().map(|l| l.into_info()).collect())
    }
}

/// A wait as the query's `wait_ms`, at most a day (the server caps it far
/// lower anyway).
fn wait_ms(wait: Duration) -> u64 {
    u64::try_from(wait.as_millis())
        .unwrap_or(u64::MAX)
        .min(24 * 3600 * 1000)
}

/// After a long-poll answered with nothing new: if it came back long
/// before the wait asked for (a server shutting down answers at once),
/// pause before asking again, so a client never loops tightly on it.
async fn early_answer_pause(asked: tokio::time::Instant, deadline: tokio::time::Instant) {
    let took = asked.elapsed();
    let asked_for = deadline.saturating_duration_since(asked);
    if took < asked_for / 2 && took < Duration::from_secs(1) {
        tokio::time::sleep_until(
            deadline.min(tokio::time::Instant::now() + Duration::from_secs(1)),
        )
        .await;
    }
}

/// A reason code as `baton-core` names it; a code this client does not
/// know (a newer server) is kept out rather than invented.
fn known_reason(code: &str) -> Option<&'static str> {
    [
        "children",
        "dependencies",
        "signals",
        "timer",
        "paused",
        "delayed",
        "leased",
        "lane_paused",
        "no_capable_worker",
        "queued",
    ]
    .into_iter()
    .find(|known| *known == code)
}
