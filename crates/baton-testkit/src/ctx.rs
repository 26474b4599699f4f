//! The per-case context [`Ctx`] and the small helpers every case shares.
//!
//! Helpers that call the backend unwrap its answer and panic with the
//! operation's name and the error, so a failing case says what it was doing.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use baton_core::{
    AdminBackend, AttemptRecord, CancelRequest, Cancellation, Claim, ClaimRequest, Clock,
    CreateOutcome, EngineBackendExt, ExecutionId, ExecutionSnapshot, Failure, Lane, LeaseToken,
    Limits, ListFilter, ListPage, ManualClock, Namespace, NewExecution, NewSignal, Page,
    PartitionCount, PartitionId, RenewOutcome, RenewRequest, Signal, SignalOutcome, State,
    StateCounts, StepOutcome, StepRecord, SuspendOutcome, SuspendRequest, Timestamp,
};

use crate::Harness;
use crate::expect::*;

/// Where every case's [`ManualClock`] starts: 2030-01-01T00:00:00Z.
pub const START: Timestamp = Timestamp::from_millis(1_893_456_000_000);

/// The lane [`Ctx::new_exec`] submits to and [`Ctx::claim_one`] claims from.
pub const DEFAULT_LANE: &str = "main";

/// The worker [`Ctx::claim_request`] claims as.
pub const DEFAULT_WORKER: &str = "w1";

/// Most pages [`Ctx::list_all`] walks before declaring the walk endless.
const MAX_PAGES: usize = 10_000;

/// One case's world: its own backend, its own clock and its own namespace.
#[derive(Clone, Debug)]
pub struct Ctx {
    /// The backend under test, fresh for this case.
    pub backend: Arc<dyn AdminBackend>,
    /// The clock the backend reads; only the case moves it.
    pub clock: Arc<ManualClock>,
    /// A namespace no other case uses.
    pub ns: Namespace,
}

impl Ctx {
    /// A backend from `harness` reading a [`ManualClock`] at [`START`], and a
    /// fresh random namespace.
    pub async fn new(harness: &dyn Harness) -> Ctx {
        let clock = Arc::new(ManualClock::new(START));
        let backend = harness.backend(clock.clone()).await;
        Ctx {
            backend,
            clock,
            ns: unique_namespace(),
        }
    }

    /// The backend's current time.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Moves the clock `ms` milliseconds forward.
    pub fn advance(&self, ms: u64) {
        self.clock.advance(Duration::from_millis(ms));
    }

    /// The instant `ms` milliseconds from now.
    pub fn after(&self, ms: u64) -> Timestamp {
        self.now().saturating_add(Duration::from_millis(ms))
    }

    /// The limits the backend enforces.
    pub fn limits(&self) -> Limits {
        self.backend.capabilities().limits
    }

    /// The default lane, [`DEFAULT_LANE`].
    pub fn lane(&self) -> Lane {
        lane(DEFAULT_LANE)
    }

    /// Another namespace no other case uses.
    pub fn other_namespace(&self) -> Namespace {
        unique_namespace()
    }

    /// A valid id of this deployment that names no execution.
    pub fn unknown_id(&self) -> ExecutionId {
        ExecutionId::generate(self.backend.partitions())
    }

    /// A well-formed id from a deployment with another partition count: its
    /// partition is not the one this deployment computes for its UUID.
    pub fn foreign_id(&self) -> ExecutionId {
        let ours = self.backend.partitions();
        for _ in 0..10_000 {
            for n in [PartitionCount::MAX, 7, 3] {
                let count = PartitionCount::new(n).expect("valid partition count");
                let id = ExecutionId::generate(count);
                if id.check_partition(ours).is_err() {
                    return id;
                }
            }
        }
        panic!("could not generate an id foreign to a deployment of {ours:?}");
    }

    /// A submission of `kind_name` with `payload` to the default lane.
    pub fn new_exec(&self, kind_name: &str, payload: &[u8]) -> NewExecution {
        self.new_in(&self.lane(), kind_name, payload)
    }

    /// A submission of `kind_name` with `payload` to `lane`.
    pub fn new_in(&self, lane: &Lane, kind_name: &str, payload: &[u8]) -> NewExecution {
        NewExecution::new(
            self.ns.clone(),
            lane.clone(),
            kind(kind_name),
            payload.to_vec(),
        )
    }

    /// Creates a batch, which must succeed.
    pub async fn create(&self, items: Vec<NewExecution>) -> Vec<CreateOutcome> {
        let n = items.len();
        let out = ok(self.backend.create(items).await, "create");
        assert_eq!(
            out.len(),
            n,
            "create answered {} outcomes for {n} items",
            out.len()
        );
        out
    }

    /// Creates `items` in batches of at most `max_batch`.
    pub async fn create_chunked(&self, items: Vec<NewExecution>) -> Vec<ExecutionId> {
        let chunk = self.limits().max_batch.max(1);
        let mut ids = Vec::with_capacity(items.len());
        let mut items = items.into_iter().peekable();
        while items.peek().is_some() {
            let batch: Vec<_> = items.by_ref().take(chunk).collect();
            for out in self.create(batch).await {
                assert!(out.created, "create answered created: false for {}", out.id);
                ids.push(out.id);
            }
        }
        ids
    }

    /// Creates one execution, which must succeed.
    pub async fn create_one(&self, new: NewExecution) -> CreateOutcome {
        ok(self.backend.create_one(new).await, "create")
    }

    /// Creates one execution that must be new, and answers its id.
    pub async fn create_id(&self, new: NewExecution) -> ExecutionId {
        let out = self.create_one(new).await;
        assert!(out.created, "create answered created: false for {}", out.id);
        out.id
    }

    /// Creates a waiting `job` in the default lane.
    pub async fn create_waiting(&self) -> ExecutionId {
        self.create_id(self.new_exec("job", b"{}")).await
    }

    /// Creates executions from `make` one at a time (moving the clock 1 ms
    /// after each) until two share a partition; answers that partition and
    /// those two ids, oldest first. Every execution made lands in
    /// `all_created`.
    pub async fn create_sharing_partition(
        &self,
        mut make: impl FnMut(&Ctx) -> NewExecution,
        all_created: &mut Vec<ExecutionId>,
    ) -> (PartitionId, Vec<ExecutionId>) {
        let mut by_partition: BTreeMap<PartitionId, Vec<ExecutionId>> = BTreeMap::new();
        for _ in 0..5_000 {
            let id = self.create_id(make(self)).await;
            self.advance(1);
            all_created.push(id.clone());
            let group = by_partition.entry(id.partition()).or_default();
            group.push(id.clone());
            if group.len() == 2 {
                return (id.partition(), group.clone());
            }
        }
        panic!("5000 executions never shared a partition");
    }

    /// A claim from the default lane by [`DEFAULT_WORKER`] with a 30 s lease.
    pub fn claim_request(&self, max: usize) -> ClaimRequest {
        ClaimRequest::new(self.ns.clone(), self.lane(), worker(DEFAULT_WORKER), max)
    }

    /// Claims, which must succeed; checks the answer respects `max`.
    pub async fn claim(&self, request: ClaimRequest) -> Vec<Claim> {
        let max = request.max;
        let claims = ok(self.backend.claim(request).await, "claim");
        assert!(
            claims.len() <= max,
            "claim answered {} executions for max {max}",
            claims.len()
        );
        claims
    }

    /// Claims exactly one execution from the default lane.
    pub async fn claim_one(&self) -> Claim {
        self.claim_one_with(DEFAULT_WORKER, 30_000).await
    }

    /// Claims exactly one execution from the default lane as `worker_name`
    /// with a lease of `ttl_ms`.
    pub async fn claim_one_with(&self, worker_name: &str, ttl_ms: u64) -> Claim {
        let request = ClaimRequest::new(self.ns.clone(), self.lane(), worker(worker_name), 1)
            .with_lease_ttl(ms(ttl_ms));
        let mut claims = self.claim(request).await;
        assert_eq!(
            claims.len(),
            1,
            "expected exactly one claim, got {claims:?}"
        );
        claims.remove(0)
    }

    /// Claims from the default lane until `id` is claimed (completing
    /// nothing: earlier claims stay running), answering its lease.
    pub async fn claim_one_pending(&self, id: &ExecutionId) -> LeaseToken {
        for _ in 0..100 {
            let claim = self.claim_one().await;
            if &claim.id == id {
                return claim.lease;
            }
        }
        panic!("execution {id} was never claimed");
    }

    /// Asserts that the default lane has nothing to claim for a worker
    /// offering no capabilities.
    #[track_caller]
    pub fn assert_nothing_to_claim(&self) -> impl Future<Output = ()> + '_ {
        let caller = std::panic::Location::caller();
        async move {
            let claims = self.claim(self.claim_request(100)).await;
            assert!(
                claims.is_empty(),
                "{caller}: expected nothing to claim, got {:?}",
                claims.iter().map(|c| &c.id).collect::<Vec<_>>()
            );
        }
    }

    /// Describes an execution, which must exist.
    pub async fn describe(&self, id: &ExecutionId) -> ExecutionSnapshot {
        ok(self.backend.describe(id).await, "describe")
    }

    /// The attempts of an execution, which must exist.
    pub async fn attempts(&self, id: &ExecutionId) -> Vec<AttemptRecord> {
        ok(self.backend.attempts(id).await, "attempts")
    }

    /// The state of an execution.
    pub async fn state(&self, id: &ExecutionId) -> State {
        self.describe(id).await.state
    }

    /// Describe and attempts together: what "nothing changed" compares.
    pub async fn record(&self, id: &ExecutionId) -> (ExecutionSnapshot, Vec<AttemptRecord>) {
        (self.describe(id).await, self.attempts(id).await)
    }

    /// Asserts the execution's snapshot and attempts equal `before`.
    pub async fn assert_unchanged(
        &self,
        id: &ExecutionId,
        before: &(ExecutionSnapshot, Vec<AttemptRecord>),
        what: &str,
    ) {
        let now = self.record(id).await;
        assert_eq!(&now.0, &before.0, "{what} changed the snapshot");
        assert_eq!(&now.1, &before.1, "{what} changed the attempts");
    }

    /// Completes, which must succeed.
    pub async fn complete(&self, lease: &LeaseToken, result: &[u8]) -> ExecutionSnapshot {
        ok(
            self.backend.complete(lease, result.to_vec()).await,
            "complete",
        )
    }

    /// Fails, which must succeed.
    pub async fn fail(&self, lease: &LeaseToken, failure: Failure) -> ExecutionSnapshot {
        ok(self.backend.fail(lease, failure).await, "fail")
    }

    /// Cancels (the default scope: the whole subtree), which must succeed;
    /// answers the execution's snapshot.
    pub async fn cancel(&self, id: &ExecutionId, reason: Option<&str>) -> ExecutionSnapshot {
        let request = CancelRequest::with_reason(reason.map(str::to_owned));
        self.cancel_with(id, request).await.snapshot
    }

    /// Cancels with `request`, which must succeed.
    pub async fn cancel_with(&self, id: &ExecutionId, request: CancelRequest) -> Cancellation {
        ok(self.backend.cancel(id, request).await, "cancel")
    }

    /// Renews `leases` as `worker_name` for `ttl_ms`, which must succeed;
    /// checks one outcome per lease, echoing it, in request order.
    pub async fn renew(
        &self,
        worker_name: &str,
        ttl_ms: u64,
        leases: Vec<LeaseToken>,
    ) -> Vec<RenewOutcome> {
        let request = RenewRequest {
            worker_id: worker(worker_name),
            lease_ttl: ms(ttl_ms),
            leases: leases.clone(),
        };
        let out = ok(self.backend.renew(request).await, "renew");
        let echoed: Vec<_> = out.iter().map(|o| o.lease.clone()).collect();
        assert_eq!(
            echoed, leases,
            "renew must answer each lease in request order"
        );
        out
    }

    /// Counts of this case's namespace.
    pub async fn counts(&self) -> BTreeMap<Lane, StateCounts> {
        ok(self.backend.counts(&self.ns).await, "counts")
    }

    /// Counts of one lane of this case's namespace (all zero when absent).
    pub async fn lane_counts(&self, lane: &Lane) -> StateCounts {
        self.counts().await.get(lane).copied().unwrap_or_default()
    }

    /// One page of `list`, which must succeed.
    pub async fn list_page(&self, filter: &ListFilter, page: Page) -> ListPage {
        let limit = page.limit;
        let out = ok(self.backend.list(filter, page).await, "list");
        assert!(
            out.items.len() <= limit,
            "list answered {} items for limit {limit}",
            out.items.len()
        );
        out
    }

    /// Walks `list` with pages of `page_size` until `next_cursor` is `None`.
    pub async fn list_all(&self, filter: &ListFilter, page_size: usize) -> Vec<ExecutionSnapshot> {
        let mut items = Vec::new();
        let mut page = Page::first(page_size);
        for _ in 0..MAX_PAGES {
            let out = self.list_page(filter, page).await;
            items.extend(out.items);
            match out.next_cursor {
                Some(cursor) => page.cursor = Some(cursor),
                None => return items,
            }
        }
        panic!("list walk did not end after {MAX_PAGES} pages");
    }

    /// Ids of every execution matching `filter`, in list order.
    pub async fn list_ids(&self, filter: &ListFilter) -> Vec<ExecutionId> {
        self.list_all(filter, 2)
            .await
            .into_iter()
            .map(|s| s.id)
            .collect()
    }

    /// Runs `cascade_due` on `partition` until its queue is empty.
    pub async fn cascade_all(&self, partition: PartitionId) {
        for _ in 0..1_000 {
            let step = ok(
                self.backend.cascade_due(partition, 1_000).await,
                "cascade_due",
            );
            if step.next_due.is_none() {
                return;
            }
        }
        panic!("the cascade queue of partition {partition} did not empty");
    }

    /// Runs `promote_due` over every partition; answers the total processed.
    pub async fn promote_all(&self) -> u64 {
        let mut total = 0;
        for p in self.backend.partitions().iter() {
            total += ok(self.backend.promote_due(p, 1_000).await, "promote_due").processed;
        }
        total
    }

    /// Runs `reclaim_expired_leases` over every partition; answers the total
    /// processed.
    pub async fn reclaim_all(&self) -> u64 {
        let mut total = 0;
        for p in self.backend.partitions().iter() {
            total += ok(
                self.backend.reclaim_expired_leases(p, 1_000).await,
                "reclaim_expired_leases",
            )
            .processed;
        }
        total
    }

    /// Runs `expire_deadlines` over every partition; answers the total
    /// processed.
    pub async fn expire_all(&self) -> u64 {
        let mut total = 0;
        for p in self.backend.partitions().iter() {
            total += ok(
                self.backend.expire_deadlines(p, 1_000).await,
                "expire_deadlines",
            )
            .processed;
        }
        total
    }

    /// Runs `timeout_due` over every partition; answers the total processed.
    pub async fn timeout_all(&self) -> u64 {
        let mut total = 0;
        for p in self.backend.partitions().iter() {
            total += ok(self.backend.timeout_due(p, 1_000).await, "timeout_due").processed;
        }
        total
    }

    /// Suspends under `lease`, panicking on an error.
    pub async fn suspend(&self, lease: &LeaseToken, request: SuspendRequest) -> SuspendOutcome {
        ok(self.backend.suspend(lease, request).await, "suspend")
    }

    /// Delivers a signal `name` with `payload` (and `key`), panicking on an
    /// error.
    pub async fn signal(
        &self,
        id: &ExecutionId,
        name: &str,
        payload: &[u8],
        key: Option<&str>,
    ) -> SignalOutcome {
        let mut signal = NewSignal::new(signal_name(name), payload.to_vec());
        if let Some(key) = key {
            signal = signal.with_idempotency_key(ikey(key));
        }
        ok(self.backend.signal(id, signal).await, "signal")
    }

    /// Records step `name` under `lease`, panicking on an error.
    pub async fn record_step(
        &self,
        lease: &LeaseToken,
        name: &str,
        outcome: StepOutcome,
    ) -> StepRecord {
        ok(
            self.backend
                .record_step(lease, step_name(name), outcome)
                .await,
            "record_step",
        )
    }

    /// The steps `id` recorded, panicking on an error.
    pub async fn steps(&self, id: &ExecutionId) -> Vec<StepRecord> {
        ok(self.backend.steps(id).await, "steps")
    }

    /// The signals `id` holds, panicking on an error.
    pub async fn signals(&self, id: &ExecutionId) -> Vec<Signal> {
        ok(self.backend.signals(id).await, "signals")
    }

    /// Runs `trim_terminal` over every partition; answers the total processed.
    pub async fn trim_all(&self, retention_ms: u64) -> u64 {
        let mut total = 0;
        for p in self.backend.partitions().iter() {
            total += ok(
                self.backend.trim_terminal(p, ms(retention_ms), 1_000).await,
                "trim_terminal",
            )
            .processed;
        }
        total
    }
}

/// The snapshot `describe` must answer right after `new` was created as `id`
/// at `created_at` in `state` with start time `run_at`.
pub fn expected_snapshot(
    id: &ExecutionId,
    new: &NewExecution,
    created_at: Timestamp,
    state: State,
    run_at: Option<Timestamp>,
) -> ExecutionSnapshot {
    ExecutionSnapshot {
        session: new.session.clone(),
        version: new.version.clone(),
        id: id.clone(),
        namespace: new.namespace.clone(),
        lane: new.lane.clone(),
        kind: new.kind.clone(),
        state,
        priority: new.priority,
        payload: new.payload.clone(),
        tags: new.tags.clone(),
        attempts: 0,
        retry: new.retry,
        idempotency_key: new.idempotency_key.clone(),
        required_capabilities: new.required_capabilities.clone(),
        parent: new.parent.clone(),
        child_key: new.child_key.clone(),
        // A direct child's root is its parent (cases check deeper roots
        // themselves).
        root: new.parent.clone().unwrap_or_else(|| id.clone()),
        created_at,
        updated_at: created_at,
        run_at,
        deadline: new.deadline,
        finished_at: None,
        worker_id: None,
        lease_expires_at: None,
        result: None,
        last_error: None,
        cancel_reason: None,
        waiting_on: None,
        suspension: None,
        pause: None,
        custom_status: None,
        status_version: 0,
        progress_seq: 0,
    }
}

fn unique_namespace() -> Namespace {
    Namespace::new(format!("t-{}", uuid::Uuid::new_v4().simple())).expect("valid namespace")
}
