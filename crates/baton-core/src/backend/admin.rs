//! [`AdminBackend`], the read surface beside the hot path, and the
//! convenience calls of [`EngineBackendExt`].

use super::*;
use crate::model::{CancelScope, Explanation, LaneInfo, PauseOutcome};

/// Reads for operators, dashboards and the CLI. Not on the hot path; may be
/// slower than [`EngineBackend`] methods (for example merging partitions).
#[async_trait]
pub trait AdminBackend: EngineBackend {
    /// Lists executions matching `filter` in ascending id order.
    ///
    /// # Behavior
    /// Walking `next_cursor` until it is `None` visits every execution that
    /// matched throughout the walk exactly once, even while new executions are
    /// created; ones created during the walk may or may not appear.
    ///
    /// # Errors
    /// `InvalidInput` (limit outside `1..=1000`, cursor not from a previous
    /// page), `Unavailable`.
    async fn list(&self, filter: &ListFilter, page: Page) -> Result<ListPage>;

    /// Counts executions per lane and state in `namespace`. Lanes with no
    /// executions are absent.
    async fn counts(&self, namespace: &Namespace) -> Result<BTreeMap<Lane, StateCounts>>;

    /// The namespaces that hold executions (in any state, until trimmed),
    /// ascending, at most `limit` of them: what a dashboard or a metrics
    /// scrape walks without knowing the tenants in advance.
    ///
    /// # Behavior
    /// A read of a moment: a namespace whose first execution is being
    /// created, or whose last one is being trimmed, may or may not appear.
    /// Cost grows with the number of namespaces (and, on Valkey, of
    /// partitions), not with the number of executions.
    ///
    /// # Errors
    /// `InvalidInput` (limit outside `1..=1000`), `Unavailable`.
    async fn namespaces(&self, limit: usize) -> Result<Vec<Namespace>>;

    /// Every partition of the deployment with its current owner, ascending.
    /// A partition whose owner's lease lapsed (or that was never owned) shows
    /// no owner.
    async fn partition_owners(&self) -> Result<Vec<PartitionOwner>>;

    /// The attempts of an execution, oldest first.
    ///
    /// # Errors
    /// `NotFound`, `InvalidInput`, `Corruption`, `Unavailable`.
    async fn attempts(&self, id: &ExecutionId) -> Result<Vec<AttemptRecord>>;

    /// The signals an execution holds, oldest first (at most
    /// [`Limits::max_signals`](crate::Limits::max_signals)): buffered ones
    /// (`wait: None`) and those its waits consumed.
    ///
    /// # Errors
    /// `NotFound`, `InvalidInput`, `Corruption`, `Unavailable`.
    async fn signals(&self, id: &ExecutionId) -> Result<Vec<Signal>>;

    /// The steps an execution recorded, by name.
    ///
    /// # Errors
    /// `NotFound`, `InvalidInput`, `Corruption`, `Unavailable`.
    async fn steps(&self, id: &ExecutionId) -> Result<Vec<StepRecord>>;

    /// The key-value state of an execution, ascending by key.
    ///
    /// # Errors
    /// `NotFound`, `InvalidInput`, `Corruption`, `Unavailable`.
    async fn state(&self, id: &ExecutionId) -> Result<Vec<StateEntry>>;

    /// The progress frames of an execution numbered above `after`,
    /// ascending, at most `limit` of them. Frames dropped for the bound are
    /// skipped (numbers are never reused, so a reader's cursor stays valid).
    ///
    /// # Errors
    /// `NotFound`, `InvalidInput` (limit outside `1..=1000`),
    /// `Corruption`, `Unavailable`.
    async fn progress(
        &self,
        id: &ExecutionId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<ProgressFrame>>;

    /// Waits until execution `id` no longer matches `seen` — it became
    /// terminal, its custom status changed or a progress frame was appended
    /// — or `timeout` passes, and answers its snapshot then.
    ///
    /// # Behavior
    /// Answers at once when the stored execution already differs from
    /// `seen`. Otherwise it is woken by the change itself, never by
    /// polling: in process on SQLite, by a `NOTIFY` sent in the changing
    /// transaction on Postgres, by a `PUBLISH` from the changing `FCALL` on
    /// Valkey. Only executions someone waits on are announced, so a change
    /// nobody follows costs no message, and a waiter costs nothing while
    /// nothing changes. A lost notification (a dropped connection) wakes
    /// every waiter of the process, which reads again. After `timeout` the
    /// answer is the current snapshot, unchanged from `seen`.
    ///
    /// # Errors
    /// `NotFound` (no such execution, or trimmed while waited on),
    /// `InvalidInput`, `Unavailable`.
    async fn wait_for_change(
        &self,
        id: &ExecutionId,
        seen: ChangeMark,
        timeout: Duration,
    ) -> Result<ExecutionSnapshot>;

    /// Changes the priority of an execution that has not finished.
    ///
    /// # Behavior
    /// Checked by [`rules::check_priority_edit`](crate::raw::rules::check_priority_edit):
    /// a finished execution is a `Conflict`. A waiting execution is
    /// reordered among its lane at once (the next claim follows the new
    /// priority; FIFO within a priority keeps its original place in time);
    /// any other takes it when it becomes waiting. `updated_at` (the time
    /// of the last state change) does not move.
    ///
    /// # Atomicity
    /// One transaction / one `FCALL`.
    ///
    /// # Idempotency
    /// Setting the priority it has changes nothing.
    ///
    /// # Errors
    /// `NotFound`, `InvalidInput`, `Conflict`, `Unavailable`.
    async fn set_priority(&self, id: &ExecutionId, priority: i32) -> Result<ExecutionSnapshot>;

    /// Sets tag `key` of an execution to `value`, or removes it (`None`),
    /// in any state; list filters see the change at once.
    ///
    /// # Behavior
    /// Judged by [`rules::tag_edit`](crate::raw::rules::tag_edit): the
    /// value is checked like a created execution's (`InvalidInput`); a new
    /// key beyond [`MAX_TAGS`](crate::MAX_TAGS) is a `Conflict`; the same
    /// value again, or removing a key it does not have, changes nothing.
    ///
    /// # Atomicity
    /// One transaction / one `FCALL`.
    ///
    /// # Errors
    /// `NotFound`, `InvalidInput`, `Conflict`, `Unavailable`.
    async fn set_tag(
        &self,
        id: &ExecutionId,
        key: TagKey,
        value: Option<String>,
    ) -> Result<ExecutionSnapshot>;

    /// Revokes the lease of a running execution: its attempt ends at once
    /// as a lease that expired would (`lease_expired`, a retryable failure
    /// whose error names the revoke), and the retry policy decides what
    /// follows — `waiting` or `delayed` for a retry, `failed` on the last
    /// attempt — exactly as the reclaim pass would. The worker learns it at
    /// its next renew (`lost`); its complete or fail answers `LeaseLost`.
    ///
    /// # Behavior
    /// Checked by [`rules::check_revoke`](crate::raw::rules::check_revoke):
    /// an execution that is not running is a `Conflict`. A revoked run of a
    /// session releases the session's lock when the run's worker holds it,
    /// as a reclaim does: an operator revokes a wedged worker's lease, and
    /// the session goes to the next claimer rather than back to it.
    ///
    /// # Atomicity
    /// One transaction / one `FCALL`, with everything a failed attempt
    /// settles (a parent told, dependents decided).
    ///
    /// # Errors
    /// `NotFound`, `InvalidInput`, `Conflict`, `Unavailable`.
    async fn revoke(&self, id: &ExecutionId) -> Result<ExecutionSnapshot>;

    /// The live workers of `namespace` by id: those whose claims or renews
    /// were recorded within [`Limits::worker_ttl`](crate::Limits::worker_ttl).
    ///
    /// # Behavior
    /// Every claim records its worker (namespace, lanes, capabilities) and
    /// every renew its worker's lease count, but a backend writes a
    /// sighting only when it is new, changed, or a sixth of the TTL after
    /// the last one it wrote ([`raw::Sightings`](crate::raw::Sightings)),
    /// so `last_seen` may lag the last call by that much. Workers past the
    /// TTL are not listed, and their records are removed by later writes.
    ///
    /// # Errors
    /// `InvalidInput` (limit outside `1..=1000`), `Unavailable`.
    async fn workers(&self, namespace: &Namespace, limit: usize) -> Result<Vec<WorkerInfo>>;

    /// Why an execution is not running now, in words
    /// ([`rules::explain`](crate::raw::rules::explain)): for a waiting one
    /// it reads the live workers of its namespace and counts the waiting
    /// executions of its lane that a claim takes before it (up to
    /// [`QueueFacts::MAX_AHEAD`](crate::QueueFacts::MAX_AHEAD)).
    ///
    /// # Behavior
    /// A read of a moment, never a write: the facts may change as soon as
    /// it answers.
    ///
    /// # Errors
    /// `NotFound`, `InvalidInput`, `Corruption`, `Unavailable`.
    async fn explain(&self, id: &ExecutionId) -> Result<Explanation>;

    /// Pauses an execution, and with scope `tree` (the default) every
    /// descendant that has neither finished nor been paused: a paused
    /// execution is not claimed, promoted or timed out until it is resumed,
    /// and remembers the state it left ([`Pause`](crate::Pause)).
    ///
    /// # Behavior
    /// Judged by [`rules::pause_in_scope`](crate::raw::rules::pause_in_scope):
    /// a finished execution is a `Conflict` with scope `execution`; with
    /// scope `tree` it stays as it is and its descendants are reached. A running one's attempt ends
    /// `paused` at once — no attempt consumed, the lease dead — and its
    /// worker learns it at its next renew ([`RenewStatus::Paused`](crate::RenewStatus::Paused));
    /// its complete or fail answers `LeaseLost`. Cancels and deadlines
    /// still reach a paused execution; what it waited for goes on being
    /// counted (children and upstreams finishing, signals buffered) and is
    /// judged at resume, except an upstream verdict that finishes it
    /// (skip, fail), which acts at once. Descendants beyond
    /// `Limits::cascade_budget` are paused by the cascade pass shortly
    /// after (`cascade_pending`).
    ///
    /// # Atomicity
    /// One transaction / one `FCALL` for the execution and the descendants
    /// within the budget.
    ///
    /// # Idempotency
    /// Pausing a paused execution changes nothing about it (its descendants
    /// are still visited with scope `tree`).
    ///
    /// # Errors
    /// `NotFound`, `InvalidInput`, `Conflict`, `Unavailable`.
    async fn pause(&self, id: &ExecutionId, scope: CancelScope) -> Result<PauseOutcome>;

    /// Resumes a paused execution, and with scope `tree` (the default)
    /// every paused descendant, whoever paused it: each returns to
    /// [`rules::resume_target`](crate::raw::rules::resume_target) — the
    /// state it left, or `waiting` when what it waited for happened
    /// meanwhile (a `waiting` one is eligible from the resume on).
    ///
    /// # Behavior
    /// Judged by [`rules::resume_in_scope`](crate::raw::rules::resume_in_scope):
    /// a finished execution is a `Conflict` with scope `execution`; with
    /// scope `tree` it stays as it is and its paused descendants are
    /// resumed (a tree paused, then cancelled alone, is resumed from its
    /// top). One that is not paused is left as it is. A resumed `suspended` execution whose held signals
    /// satisfy its wait consumes them and is `waiting`.
    ///
    /// # Atomicity
    /// As [`pause`](Self::pause).
    ///
    /// # Idempotency
    /// Resuming an execution that is not paused changes nothing about it.
    ///
    /// # Errors
    /// `NotFound`, `InvalidInput`, `Conflict`, `Unavailable`.
    async fn resume(&self, id: &ExecutionId, scope: CancelScope) -> Result<PauseOutcome>;

    /// Pauses a lane of a namespace: from the moment this answers, no claim
    /// takes its work (on every partition) until it is resumed; everything
    /// else about its executions goes on (promotions, deadlines, running
    /// attempts). Answers `true` when it was not paused before.
    ///
    /// # Behavior
    /// A claim that was already running when the pause was written may
    /// still take work. Long-polling claims of the lane wait on.
    ///
    /// # Atomicity
    /// One statement on SQL; on Valkey one write per partition, in order.
    ///
    /// # Errors
    /// `InvalidInput`, `Unavailable`.
    async fn pause_lane(&self, namespace: &Namespace, lane: &Lane) -> Result<bool>;

    /// Resumes a paused lane: claims take its work again (waiting claims
    /// are woken). Answers `true` when it was paused.
    ///
    /// # Errors
    /// `InvalidInput`, `Unavailable`.
    async fn resume_lane(&self, namespace: &Namespace, lane: &Lane) -> Result<bool>;

    /// The lanes of a namespace, by name: every lane that holds
    /// executions or is paused, with whether it is paused and its counts
    /// per state.
    ///
    /// # Errors
    /// `InvalidInput`, `Unavailable`.
    async fn lanes(&self, namespace: &Namespace) -> Result<Vec<LaneInfo>>;

    /// Replays a `failed`, `cancelled`, `expired` or `skipped` execution
    /// (a dead-letter requeue): it is `waiting` again, eligible now, with
    /// a fresh attempt budget; its attempts, signals, steps and state stay
    /// as history.
    ///
    /// # Behavior
    /// Checked by [`rules::check_replay`](crate::raw::rules::check_replay):
    /// any other state is a `Conflict`. The retry policy counts only the
    /// attempts after the replay; the attempt numbers go on. A deadline
    /// that passed is removed ([`rules::replay_deadline`](crate::raw::rules::replay_deadline)),
    /// as are the finish time and the cancel reason (`last_error` stays
    /// until a later attempt replaces it). A flow member re-opens its flow:
    /// a parent that has not finished counts it as unfinished again, and
    /// the flow is not trimmed while it runs. Its dependents were decided
    /// when it finished and are not decided again. While the cascade pass
    /// still has work queued in its partition (a cancel or a finish bigger
    /// than `Limits::cascade_budget`, for seconds), the replay answers
    /// `Contention` ([`rules::replay_waits_for_cascade`](crate::raw::rules::replay_waits_for_cascade)):
    /// retry it in a moment.
    ///
    /// # Atomicity
    /// One transaction / one `FCALL`.
    ///
    /// # Errors
    /// `NotFound`, `InvalidInput`, `Conflict`, `Contention`, `Unavailable`.
    async fn replay(&self, id: &ExecutionId) -> Result<ExecutionSnapshot>;

    /// The children of `parent` (its direct descendants), ascending by id
    /// (creation order), one page at a time.
    ///
    /// # Behavior
    /// Walking `next_cursor` visits every child once, as `list` does; the
    /// cost of a page grows with the page, not with the flow. A parent
    /// without children answers an empty page.
    ///
    /// # Errors
    /// `NotFound` (no such parent), `InvalidInput` (limit outside
    /// `1..=1000`, bad cursor, id of another deployment), `Unavailable`.
    async fn children(&self, parent: &ExecutionId, page: Page) -> Result<ListPage>;

    /// The flow `id` belongs to: its root and at most `limit` members in
    /// creation order (every parent before its children), `truncated` when
    /// there are more. Asked with any member's id, it answers the whole flow
    /// from its root.
    ///
    /// # Errors
    /// `NotFound`, `InvalidInput` (limit outside `1..=10,000`, id of another
    /// deployment), `Unavailable`.
    async fn tree(&self, id: &ExecutionId, limit: usize) -> Result<Tree>;

    /// Deletes an execution and its descendants, with everything they
    /// hold: attempts, results and errors, signals, steps, state, progress
    /// frames, tags, dependency edges and the idempotency key (which may
    /// be used again). Afterwards every read answers `NotFound`, and the
    /// worker of an attempt it ended answers `lost` at its next renew
    /// (its complete or fail `NotFound`).
    ///
    /// # Behavior
    /// Judged by [`rules::check_delete`](crate::raw::rules::check_delete):
    /// an execution whose whole subtree finished is deleted; one that has
    /// not finished, or has unfinished descendants, is a `Conflict` unless
    /// `force`, which cancels its tree first (reason
    /// [`DELETE_REASON`](crate::raw::rules::DELETE_REASON): running
    /// attempts end `cancelled`, a parent and dependents are told as for
    /// any cancel) and then deletes it; a child is deleted alone only when
    /// it and its descendants finished, even with `force`. A deleted child
    /// is no longer among its parent's children.
    ///
    /// # Atomicity
    /// Written once ([`raw::delete`](crate::raw::delete)) over
    /// [`delete_units`](Self::delete_units): a tree within
    /// `Limits::cascade_budget` is cancelled and deleted in one
    /// transaction / `FCALL`; a bigger one in several, leaves first and the
    /// execution last (a call that stops midway leaves a smaller tree, whole
    /// from its top, and calling again goes on).
    ///
    /// # Errors
    /// `NotFound`, `InvalidInput`, `Conflict`, `Contention` (the cascade
    /// pass of its partition did not empty for a while: retry),
    /// `Unavailable`.
    async fn delete(&self, id: &ExecutionId, force: bool) -> Result<crate::DeleteReport> {
        crate::raw::delete::one(self, id, force).await
    }

    /// The history of an execution: its events numbered above `after`,
    /// oldest first, at most `limit` of them. Empty for an execution
    /// created while the history of its namespace was off
    /// ([`set_history`](Self::set_history)).
    ///
    /// # Behavior
    /// Every change of state is recorded in the transaction / `FCALL` that
    /// makes it (with the time, the states before and after, the attempt
    /// count, the worker, and the cancel reason or error it wrote), and so
    /// are signals delivered and operators' priority and tag edits. The
    /// event names are decided by
    /// [`rules::event_kind`](crate::raw::rules::event_kind). An execution
    /// keeps its first event and its latest ones up to
    /// [`ExecutionEvent::MAX_KEPT`](crate::ExecutionEvent::MAX_KEPT) (numbers
    /// are never reused, so a reader's `after` stays valid); its history
    /// goes when it is trimmed or deleted.
    ///
    /// # Errors
    /// `NotFound`, `InvalidInput` (limit outside `1..=1000`), `Corruption`,
    /// `Unavailable`.
    async fn events(
        &self,
        id: &ExecutionId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<crate::ExecutionEvent>>;

    /// Turns the event history of `namespace` on or off for the
    /// executions created from now on (each keeps the setting it was
    /// created with); answers whether it was on before. Off by default:
    /// the history costs a write per transition (a fifth to a third of
    /// the steady throughput, see `benches/RESULTS.md`), and a namespace
    /// with it off pays nothing for it.
    ///
    /// # Atomicity
    /// One statement on SQL; on Valkey one write per partition, in order
    /// (an execution created meanwhile on a partition not yet written has
    /// the old setting).
    ///
    /// # Errors
    /// `InvalidInput`, `Unavailable`.
    async fn set_history(&self, namespace: &Namespace, enabled: bool) -> Result<bool>;

    /// Whether executions created in `namespace` now record their history.
    ///
    /// # Errors
    /// `InvalidInput`, `Unavailable`.
    async fn history_enabled(&self, namespace: &Namespace) -> Result<bool>;

    /// Keeps the finished executions of `namespace` (of `lane` only, when
    /// given) for `keep` after they finish, instead of the deployment's
    /// default retention; answers the keep the rule replaced, if any. A
    /// lane's rule wins over its namespace's
    /// ([`rules::keep_for`](crate::raw::rules::keep_for)).
    ///
    /// Executions carry the keep in force when they are created; the
    /// retention trim reads each finished root when it is due by that
    /// keep and trims it only if the rule in force then agrees
    /// ([`rules::trim_verdict`](crate::raw::rules::trim_verdict)). So a
    /// rule that lengthens the keep protects every execution at once; one
    /// that shortens it applies to executions created after it (`baton
    /// purge` removes older ones sooner).
    ///
    /// # Atomicity
    /// One transaction on SQL (Postgres locks the rules table against
    /// other rule writers, so the limit holds); on Valkey one write per
    /// partition, in order (an execution created meanwhile on a partition
    /// not yet written carries the old keep; the trim still never removes
    /// it earlier than the new rule says; two concurrent new rules may
    /// pass the limit by one each).
    ///
    /// # Idempotency
    /// Setting the same rule again changes nothing.
    ///
    /// # Errors
    /// `InvalidInput` (keep outside
    /// [`RetentionRule::MIN_KEEP`](crate::RetentionRule::MIN_KEEP)`..=`[`MAX_KEEP`](crate::RetentionRule::MAX_KEEP)
    /// ([`rules::check_keep`](crate::raw::rules::check_keep)), or a new
    /// rule beyond [`RetentionRule::MAX_RULES`](crate::RetentionRule::MAX_RULES)
    /// ([`rules::check_rule_room`](crate::raw::rules::check_rule_room))),
    /// `Unavailable`.
    async fn set_retention(
        &self,
        namespace: &Namespace,
        lane: Option<&Lane>,
        keep: Duration,
    ) -> Result<Option<Duration>>;

    /// Removes the rule of `namespace` (of `lane` only, when given; the
    /// namespace's rule for every lane otherwise); answers the keep it
    /// had, `None` when there was no such rule. Executions it covered are
    /// kept as long as the rules left (or the default) say, never less
    /// than the keep they were stamped with.
    ///
    /// # Atomicity
    /// As [`set_retention`](Self::set_retention).
    ///
    /// # Errors
    /// `Unavailable`.
    async fn remove_retention(
        &self,
        namespace: &Namespace,
        lane: Option<&Lane>,
    ) -> Result<Option<Duration>>;

    /// Every retention rule, by namespace, its all-lanes rule first, then
    /// by lane
    /// ([`rules::sort_retention_rules`](crate::raw::rules::sort_retention_rules)).
    ///
    /// # Errors
    /// `Corruption`, `Unavailable`.
    async fn retention_rules(&self) -> Result<Vec<crate::RetentionRule>>;

    /// Sets `limit` (replacing the limit of that name, which may have
    /// belonged to another namespace); answers the limit it replaced.
    /// Claims judge waiting work against the limits in force when they
    /// run, from its stored lane, kind and tags: a limit applies at once
    /// to work already waiting and counts what already runs (a cap below
    /// what runs lets the runs finish and claims nothing of the key until
    /// it has room).
    ///
    /// A claim in a lane a limit covers takes an execution only while
    /// every limit covering it has room for its key
    /// ([`rules::Admission`](crate::raw::rules::Admission)); it reads past
    /// skipped work, so a key without room never holds back another key's.
    /// A run's slot is free as the run leaves `running`, in the same
    /// transaction or `FCALL` as every way a run ends
    /// ([`rules::release_on`](crate::raw::rules::release_on)); see the
    /// backend's documentation for how Valkey keeps the count.
    ///
    /// # Atomicity
    /// One transaction on SQL, which waits for claims in progress (the
    /// claims after it judge by the new limit). Valkey: see its crate
    /// documentation.
    ///
    /// # Idempotency
    /// Setting the same limit again changes nothing.
    ///
    /// # Errors
    /// `InvalidInput` ([`Limit::check`](crate::Limit::check), or a new
    /// limit beyond [`Limit::MAX_LIMITS`](crate::Limit::MAX_LIMITS)),
    /// `Contention` (another writer of limits, or claims, held what it
    /// needed for too long: nothing changed, retry), `Unavailable`.
    async fn set_limit(&self, limit: &crate::Limit) -> Result<Option<crate::Limit>>;

    /// Removes the limit named `name`; answers it, `None` when there was
    /// none. Its keys' work is claimed as the other limits allow at once.
    ///
    /// # Atomicity
    /// As [`set_limit`](Self::set_limit).
    ///
    /// # Errors
    /// `Contention` (as for `set_limit`), `Unavailable`.
    async fn remove_limit(&self, name: &crate::LimitName) -> Result<Option<crate::Limit>>;

    /// The limits of `namespace` (every namespace's when `None`), by
    /// namespace then name
    /// ([`rules::sort_limits`](crate::raw::rules::sort_limits)).
    ///
    /// # Errors
    /// `Corruption`, `Unavailable`.
    async fn limits(&self, namespace: Option<&Namespace>) -> Result<Vec<crate::Limit>>;

    /// How the keys of the limit named `name` stand now: each key with
    /// executions running or claims in the rate's window, by key value, at
    /// most `limit` of them (up to [`Page::MAX_LIMIT`](crate::Page::MAX_LIMIT)).
    ///
    /// # Errors
    /// `InvalidInput` (no limit has this name; `limit` out of range),
    /// `Corruption`, `Unavailable`.
    async fn limit_usage(
        &self,
        name: &crate::LimitName,
        limit: usize,
    ) -> Result<Vec<crate::LimitUsage>>;

    /// Records an `audit` event with `detail` in the history of each of
    /// `ids` (at most [`Page::MAX_LIMIT`](crate::Page::MAX_LIMIT), any
    /// partitions; an id that names no execution any more is passed
    /// over). Bulk calls leave one per execution they changed.
    ///
    /// # Atomicity
    /// One transaction / one `FCALL` per partition of the ids.
    ///
    /// # Errors
    /// `InvalidInput` (too many ids, an id of another deployment),
    /// `Unavailable`.
    async fn audit(&self, ids: &[ExecutionId], detail: &str) -> Result<()>;

    /// One atomic unit of a bulk cancel: each of `ids` (all of one
    /// partition, at most
    /// [`raw::bulk::MAX_UNIT_IDS`](crate::raw::bulk::MAX_UNIT_IDS)), in
    /// order, is cancelled exactly as [`cancel`](Self::cancel) with
    /// `request` would (fenced worker, cascade by scope, wake-ups, history),
    /// until the unit's cancels and cascades have changed
    /// `Limits::cascade_budget` executions; ids after that answer
    /// [`CancelPart::NotReached`](crate::CancelPart::NotReached). An id
    /// refused leaves nothing of its own changed and the others go on.
    ///
    /// # Atomicity
    /// One transaction / one `FCALL` (each id in a savepoint on SQL).
    ///
    /// # Errors
    /// The call: `InvalidInput` (ids of several partitions, too many, of
    /// another deployment, a reason too long), `Contention` (the unit as a
    /// whole met a conflicting writer: ask again), `Unavailable`. Per id:
    /// `NotFound`, `Conflict`.
    async fn cancel_units(
        &self,
        ids: &[ExecutionId],
        request: &crate::CancelRequest,
    ) -> Result<Vec<Result<crate::CancelPart>>>;

    /// One atomic unit of a bulk replay: each of `ids` (all of one
    /// partition, at most
    /// [`raw::bulk::MAX_UNIT_IDS`](crate::raw::bulk::MAX_UNIT_IDS)), in
    /// order, is replayed exactly as [`replay`](Self::replay) would. An id
    /// refused leaves nothing of its own changed and the others go on.
    ///
    /// # Atomicity
    /// One transaction / one `FCALL` (each id in a savepoint on SQL).
    ///
    /// # Errors
    /// The call: `InvalidInput` (ids of several partitions, too many, of
    /// another deployment), `Contention` (ask again), `Unavailable`. Per
    /// id: `NotFound`, `Conflict` (not failed, cancelled, expired or
    /// skipped), `Contention` (the partition's cascade queue holds work).
    async fn replay_units(&self, ids: &[ExecutionId]) -> Result<Vec<Result<()>>>;

    /// One atomic unit of deletes, for [`delete`](Self::delete) and bulk
    /// deletes: for each of `ids` (all of one partition, at most
    /// [`raw::delete::MAX_UNIT_IDS`](crate::raw::delete::MAX_UNIT_IDS)), in
    /// order, the execution is judged by
    /// [`rules::check_delete`](crate::raw::rules::check_delete), cancelled
    /// first when the verdict says so, and its subtree removed leaves first
    /// (descending id) and itself last, until the unit has removed
    /// `Limits::cascade_budget` executions; ids after that answer a part
    /// with nothing done. A cancel whose cascade did not fit answers
    /// `done: false` with `cancelled`, and nothing removed.
    ///
    /// # Atomicity
    /// One transaction / one `FCALL`.
    ///
    /// # Errors
    /// The call: `InvalidInput` (ids of several partitions, too many, of
    /// another deployment), `Unavailable`. Per id: `NotFound`, `Conflict`,
    /// `Contention` (the partition's cascade queue holds work, as for
    /// [`replay`](Self::replay): run the pass, then ask again).
    async fn delete_units(
        &self,
        ids: &[ExecutionId],
        force: bool,
    ) -> Result<Vec<Result<crate::DeletePart>>>;

    /// Cancels, deletes or replays what a filter matches, at most `limit` per call,
    /// resumable by cursor ([`raw::bulk::run`](crate::raw::bulk::run)):
    /// `matched` counts the executions the call reached, `changed` those it
    /// changed (with `dry_run`, those it would change, judged by their
    /// state now, nothing written), `skipped` the matched ones it could not
    /// change and why.
    ///
    /// # Atomicity
    /// The page's executions of one partition share units: cancels and
    /// replays through [`cancel_units`](Self::cancel_units) and
    /// [`replay_units`](Self::replay_units) (at most
    /// [`raw::bulk::MAX_UNIT_IDS`](crate::raw::bulk::MAX_UNIT_IDS) each,
    /// each execution changed as the single call would), deletes through
    /// [`delete_units`](Self::delete_units). Not atomic across units. Walking `next_cursor` reaches every
    /// execution that matched throughout.
    ///
    /// # Errors
    /// `InvalidInput` (limit outside `1..=1000`, too many ids, a bad
    /// cursor), `Unavailable` (the call stops; what it changed stays
    /// changed, and calling again from the same cursor goes on).
    async fn bulk(&self, request: crate::BulkRequest) -> Result<crate::BulkReport> {
        crate::raw::bulk::run(self, request).await
    }

    /// The snapshots of `ids`, in order: `None` for an id that names no
    /// execution (never created, or trimmed). At most
    /// [`Page::MAX_LIMIT`](crate::Page::MAX_LIMIT) ids.
    ///
    /// # Behavior
    /// Each snapshot is read on its own (as `describe`); the answer is not
    /// one moment of the whole set.
    ///
    /// # Errors
    /// `InvalidInput` (too many ids, an id of another deployment),
    /// `Unavailable`.
    async fn describe_many(&self, ids: &[ExecutionId]) -> Result<Vec<Option<ExecutionSnapshot>>> {
        crate::raw::describe_each(self, ids).await
    }
}

/// Convenience calls over [`EngineBackend`], implemented once for every
/// backend.
#[async_trait]
pub trait EngineBackendExt: EngineBackend {
    /// Creates one execution; see [`EngineBackend::create`].
    async fn create_one(&self, execution: NewExecution) -> Result<CreateOutcome> {
        let mut out = self.create(vec![execution]).await?;
        out.pop().ok_or_else(|| {
            crate::EngineError::corruption("create answered no outcome for a batch of one")
        })
    }
}

impl<T: EngineBackend + ?Sized> EngineBackendExt for T {}
