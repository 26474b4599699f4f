//! Operator control: priority and tag edits, revoking a lease, the worker
//! registry, pausing and resuming executions and lanes.

use std::collections::BTreeSet;

use baton_core::{
    CancelScope, CapabilityName, Lane, LaneInfo, Namespace, Page, PauseOutcome, Result,
    StateCounts, Timestamp, WorkerId, WorkerInfo,
};
use serde::{Deserialize, Serialize};

use crate::namespace_or_default;

/// The body of `PUT /v1/executions/{id}/priority`.
///
/// ```
/// let body: baton_api::PriorityBody = serde_json::from_str(r#"{"priority": 10}"#).unwrap();
/// assert_eq!(body.priority, 10);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriorityBody {
    /// The new priority: higher runs first.
    pub priority: i32,
}

/// The body of `PUT /v1/executions/{id}/tags/{key}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagBody {
    /// The tag's value.
    pub value: String,
}

/// The query of `GET /v1/workers`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkersQuery {
    /// Namespace; `default` when absent.
    pub namespace: Option<String>,
    /// Most workers to list, `1..=1000` (default 100).
    pub limit: Option<usize>,
}

impl WorkersQuery {
    /// The namespace and the limit asked for.
    ///
    /// # Errors
    /// `InvalidInput` for an invalid namespace or a limit outside `1..=1000`.
    pub fn into_request(self) -> Result<(Namespace, usize)> {
        let ns = namespace_or_default(self.namespace.map(Namespace::new).transpose()?)?;
        let limit = self.limit.unwrap_or(Page::DEFAULT_LIMIT);
        Page::first(limit).validate()?;
        Ok((ns, limit))
    }
}

/// One live worker on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerAnswer {
    /// Its id.
    pub worker_id: WorkerId,
    /// The lanes of its last recorded claim.
    pub lanes: BTreeSet<Lane>,
    /// The capabilities of its last recorded claim.
    pub capabilities: BTreeSet<CapabilityName>,
    /// When a claim or renew of it was last recorded.
    pub last_seen: Timestamp,
    /// How many leases its last recorded renew presented.
    pub leases: u32,
    /// The handler versions of its last recorded claim (`{}`: every
    /// version).
    #[serde(default)]
    pub versions: crate::VersionRangeBody,
}

impl From<&WorkerInfo> for WorkerAnswer {
    fn from(w: &WorkerInfo) -> Self {
        WorkerAnswer {
            worker_id: w.worker_id.clone(),
            lanes: w.lanes.clone(),
            capabilities: w.capabilities.clone(),
            last_seen: w.last_seen,
            leases: w.leases,
            versions: (&w.versions).into(),
        }
    }
}

impl WorkerAnswer {
    /// The `baton-core` record, in `namespace` (the one asked for).
    pub fn into_info(self, namespace: Namespace) -> WorkerInfo {
        WorkerInfo {
            versions: self.versions.into_range(),
            worker_id: self.worker_id,
            namespace,
            lanes: self.lanes,
            capabilities: self.capabilities,
            last_seen: self.last_seen,
            leases: self.leases,
        }
    }
}

/// The answer of `GET /v1/workers`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkersAnswer {
    /// The live workers by id.
    pub workers: Vec<WorkerAnswer>,
}

/// The answer of `GET /v1/executions/{id}/explain`.
///
/// ```
/// let doc = r#"{"id": "{p:1}-019ab1c2-7d3e-7f00-8a1b-2c3d4e5f6071", "state": "waiting",
///              "waiting_on": "queued", "detail": "eligible and next in lane main"}"#;
/// let e: baton_api::ExplainAnswer = serde_json::from_str(doc).unwrap();
/// assert_eq!(e.waiting_on.as_deref(), Some("queued"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExplainAnswer {
    /// The execution.
    pub id: baton_core::ExecutionId,
    /// Its state.
    pub state: baton_core::State,
    /// The reason code (`children`, `dependencies`, `signals`, `timer`,
    /// `paused`, `delayed`, `leased`, `lane_paused`, `no_capable_worker`,
    /// `limited`, `queued`); `null` once it finished.
    pub waiting_on: Option<String>,
    /// The same as a sentence.
    pub detail: String,
}

impl From<&baton_core::Explanation> for ExplainAnswer {
    fn from(e: &baton_core::Explanation) -> Self {
        ExplainAnswer {
            id: e.snapshot.id.clone(),
            state: e.snapshot.state,
            waiting_on: e.reason.map(str::to_owned),
            detail: e.detail.clone(),
        }
    }
}

/// The body of `POST /v1/executions/{id}/pause` and `/resume`; an empty
/// body is scope `tree`.
///
/// ```
/// use baton_core::CancelScope;
/// let body: baton_api::ScopeBody = serde_json::from_str(r#"{"scope": "execution"}"#).unwrap();
/// assert_eq!(body.scope(), CancelScope::Execution);
/// let empty: baton_api::ScopeBody = serde_json::from_str("{}").unwrap();
/// assert_eq!(empty.scope(), CancelScope::Tree);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeBody {
    /// `tree` (the default: its descendants too) or `execution` (it alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<CancelScope>,
}

impl ScopeBody {
    /// The scope asked for; `tree` when absent.
    pub fn scope(self) -> CancelScope {
        self.scope.unwrap_or_default()
    }
}

/// The answer of `POST /v1/executions/{id}/pause` and `/resume`: the
/// snapshot with `cascaded` and `cascade_pending` beside its fields, the
/// shape of a cancel's answer.
pub type PauseAnswer = crate::CancelAnswer;

impl From<&PauseOutcome> for crate::CancelAnswer {
    fn from(p: &PauseOutcome) -> Self {
        crate::CancelAnswer {
            snapshot: crate::Snapshot::from(&p.snapshot),
            cascaded: p.cascaded,
            cascade_pending: p.cascade_pending,
        }
    }
}

impl crate::CancelAnswer {
    /// The `baton-core` answer of a pause or a resume this carries.
    ///
    /// # Errors
    /// As [`Snapshot::into_snapshot`](crate::Snapshot::into_snapshot).
    pub fn into_pause_outcome(self) -> Result<PauseOutcome> {
        Ok(PauseOutcome {
            snapshot: self.snapshot.into_snapshot()?,
            cascaded: self.cascaded,
            cascade_pending: self.cascade_pending,
        })
    }
}

/// The body of `POST /v1/lanes/{lane}/pause` and `/resume`, and the query
/// of `GET /v1/lanes`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LaneBody {
    /// Namespace; `default` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

impl LaneBody {
    /// The namespace asked for.
    ///
    /// # Errors
    /// `InvalidInput` for an invalid namespace name.
    pub fn namespace(self) -> Result<Namespace> {
        namespace_or_default(self.namespace.map(Namespace::new).transpose()?)
    }
}

/// The answer of `POST /v1/lanes/{lane}/pause` and `/resume`.
///
/// ```
/// let doc = r#"{"lane": "email", "paused": true, "changed": true}"#;
/// let a: baton_api::LanePauseAnswer = serde_json::from_str(doc).unwrap();
/// assert!(a.paused && a.changed);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LanePauseAnswer {
    /// The lane.
    pub lane: Lane,
    /// Whether it is paused now.
    pub paused: bool,
    /// Whether this call changed that (false: it already was).
    pub changed: bool,
}

/// One lane on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaneAnswer {
    /// The lane.
    pub lane: Lane,
    /// Whether it is paused.
    pub paused: bool,
    /// When it was paused; `null` while claims take its work.
    #[serde(default)]
    pub paused_at: Option<Timestamp>,
    /// Its executions per state.
    pub counts: StateCounts,
}

impl From<&LaneInfo> for LaneAnswer {
    fn from(l: &LaneInfo) -> Self {
        LaneAnswer {
            lane: l.lane.clone(),
            paused: l.paused_at.is_some(),
            paused_at: l.paused_at,
            counts: l.counts,
        }
    }
}

impl LaneAnswer {
    /// The `baton-core` record.
    pub fn into_info(self) -> LaneInfo {
        LaneInfo {
            lane: self.lane,
            paused_at: self.paused_at,
            counts: self.counts,
        }
    }
}

/// The answer of `GET /v1/lanes`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LanesAnswer {
    /// Every lane with executions or paused, by name.
    pub lanes: Vec<LaneAnswer>,
}

/// The query of `DELETE /v1/executions/{id}`: `?force=true` cancels and
/// deletes an execution that has not finished.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteQuery {
    /// Cancel first what has not finished (default `false`).
    #[serde(default)]
    pub force: bool,
}

/// The answer of `DELETE /v1/executions/{id}`: what was removed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteAnswer {
    /// The execution deleted.
    pub id: String,
    /// Executions removed: it and its descendants.
    pub deleted: u64,
    /// Whether it (or its tree) was cancelled first (`force`).
    pub cancelled: bool,
}

impl From<&baton_core::DeleteReport> for DeleteAnswer {
    fn from(r: &baton_core::DeleteReport) -> Self {
        DeleteAnswer {
            id: r.id.to_string(),
            deleted: r.deleted,
            cancelled: r.cancelled,
        }
    }
}

impl DeleteAnswer {
    /// The report this answer carries.
    ///
    /// # Errors
    /// `InvalidInput` for an id that does not parse.
    pub fn into_report(self) -> Result<baton_core::DeleteReport> {
        Ok(baton_core::DeleteReport {
            id: self.id.parse()?,
            deleted: self.deleted,
            cancelled: self.cancelled,
        })
    }
}

/// The query of `GET /v1/executions/{id}/events`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Events numbered above this one (the last `seq` read; 0: from the
    /// first kept).
    #[serde(default)]
    pub after: u64,
    /// Most events to answer, `1..=1000` (default 100).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// One event of an execution's history on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventAnswer {
    /// Its number in the history.
    pub seq: u64,
    /// When it happened.
    pub at: Timestamp,
    /// What happened: `created`, `claimed`, `retried`, `cancelled`, …
    pub event: String,
    /// The state before (`null` at creation and for events that change no
    /// state).
    pub from: Option<baton_core::State>,
    /// The state after (`null` for events that change no state).
    pub to: Option<baton_core::State>,
    /// The attempt count then.
    pub attempt: u32,
    /// The worker that held or took the lease.
    pub worker_id: Option<String>,
    /// A cancel reason, an error, a signal's name, an edit.
    pub detail: Option<String>,
}

impl From<&baton_core::ExecutionEvent> for EventAnswer {
    fn from(e: &baton_core::ExecutionEvent) -> Self {
        EventAnswer {
            seq: e.seq,
            at: e.at,
            event: e.event.as_str().to_owned(),
            from: e.from,
            to: e.to,
            attempt: e.attempt,
            worker_id: e.worker.as_ref().map(|w| w.as_str().to_owned()),
            detail: e.detail.clone(),
        }
    }
}

impl EventAnswer {
    /// The event this answer carries.
    ///
    /// # Errors
    /// `InvalidInput` for a worker id that does not parse.
    pub fn into_event(self) -> Result<baton_core::ExecutionEvent> {
        Ok(baton_core::ExecutionEvent {
            seq: self.seq,
            at: self.at,
            // A name this build does not know (a newer server) reads as
            // `changed` rather than failing the page.
            event: self.event.parse().unwrap_or(baton_core::EventKind::Changed),
            from: self.from,
            to: self.to,
            attempt: self.attempt,
            worker: self.worker_id.map(|w| w.parse()).transpose()?,
            detail: self.detail,
        })
    }
}

/// The answer of `GET /v1/executions/{id}/events`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventsAnswer {
    /// The events, oldest first.
    pub items: Vec<EventAnswer>,
    /// Pass as `after` for the next page; `null` when this page was the
    /// last (fewer than `limit` events).
    pub next_after: Option<u64>,
}

/// The body of `PUT /v1/namespaces/{namespace}/history`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryBody {
    /// Record the history of executions created from now on.
    pub enabled: bool,
}

/// The answer of `GET` and `PUT /v1/namespaces/{namespace}/history`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryAnswer {
    /// The namespace.
    pub namespace: String,
    /// Whether executions created in it now record their history.
    pub enabled: bool,
    /// For a `PUT`: whether it was on before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub was: Option<bool>,
}

/// The body of `PUT /v1/retention/{namespace}`: how long the namespace's
/// finished executions (of `lane` only, when given) are kept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionBody {
    /// The lane the rule covers; absent or `null`: every lane of the
    /// namespace without a rule of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lane: Option<String>,
    /// The keep as people write it: `30d`, `36h`, `90m`, `45s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep: Option<String>,
    /// The keep in milliseconds (instead of `keep`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_ms: Option<u64>,
}

/// A retention rule: an item of `GET /v1/retention`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionAnswer {
    /// The namespace it covers.
    pub namespace: String,
    /// The lane it covers; `null`: every lane without a rule of its own.
    pub lane: Option<String>,
    /// The keep, written as people write it (`30d`).
    pub keep: String,
    /// The keep in milliseconds.
    pub keep_ms: u64,
}

impl From<&baton_core::RetentionRule> for RetentionAnswer {
    fn from(rule: &baton_core::RetentionRule) -> Self {
        RetentionAnswer {
            namespace: rule.namespace.to_string(),
            lane: rule.lane.as_ref().map(ToString::to_string),
            keep: baton_core::format_duration(rule.keep),
            keep_ms: rule.keep.as_millis() as u64,
        }
    }
}

impl RetentionAnswer {
    /// The rule it names; `InvalidInput` for a name or keep Baton would
    /// not accept.
    pub fn rule(&self) -> Result<baton_core::RetentionRule, baton_core::EngineError> {
        Ok(baton_core::RetentionRule {
            namespace: self.namespace.parse()?,
            lane: self.lane.as_deref().map(str::parse).transpose()?,
            keep: std::time::Duration::from_millis(self.keep_ms),
        })
    }
}

/// The answer of `GET /v1/retention`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionRulesAnswer {
    /// Every rule, by namespace, its all-lanes rule first, then by lane.
    pub items: Vec<RetentionAnswer>,
}

/// The answer of `PUT` and `DELETE /v1/retention/{namespace}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionChangeAnswer {
    /// The namespace.
    pub namespace: String,
    /// The lane; `null`: the namespace's rule for every lane.
    pub lane: Option<String>,
    /// The keep now, ms; `null` after a `DELETE` (the rules left or the
    /// deployment's default apply).
    pub keep_ms: Option<u64>,
    /// The keep the rule had before, ms; `null` when there was none.
    pub previous_ms: Option<u64>,
}

/// The query of `DELETE /v1/retention/{namespace}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionQuery {
    /// The lane whose rule goes; absent: the namespace's rule for every
    /// lane.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lane: Option<String>,
}
