//! Reading and cancelling: the snapshot of describe, cancel, complete and
//! fail, stats, and the health answer.

use std::collections::{BTreeMap, BTreeSet};

use crate::{JsonText, namespace_or_default};
use baton_core::{
    AttemptOutcome, AttemptRecord, Backoff, CancelRequest, CancelScope, CapabilityName, ChildKey,
    ExecutionId, ExecutionSnapshot, IdempotencyKey, Kind, Lane, Namespace, Result, RetryPolicy,
    State, StateCounts, TagKey, Timestamp, WaitingOn, WorkerId,
};
use serde::{Deserialize, Serialize};

/// Everything known about one execution: the answer of
/// `GET /v1/executions/{id}`, of cancel, complete and fail, and the items of
/// a list.
///
/// Every field the contract names, plus `finished_at`, `worker_id`,
/// `lease_expires_at`, `idempotency_key`, `capabilities`, `backoff`,
/// `parent`, `child_key`, `root`, and `attempt_history` when asked for with
/// `?attempts=true`.
/// `payload` and `result` are JSON values, written as the text stored
/// ([`JsonText`]); `result` is `null` until the execution completes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Id.
    pub id: ExecutionId,
    /// Namespace.
    pub namespace: Namespace,
    /// Lane.
    pub lane: Lane,
    /// Handler name.
    pub kind: Kind,
    /// Public state.
    pub state: State,
    /// Priority.
    pub priority: i32,
    /// The payload.
    pub payload: JsonText,
    /// Tags.
    #[serde(default)]
    pub tags: BTreeMap<TagKey, String>,
    /// Attempts started so far.
    pub attempts: u32,
    /// Attempts allowed in total.
    pub max_attempts: u32,
    /// Creation time.
    pub created_at: Timestamp,
    /// Time of the last state change.
    pub updated_at: Timestamp,
    /// When it is (or was last) scheduled to become eligible.
    pub run_at: Option<Timestamp>,
    /// Deadline.
    pub deadline: Option<Timestamp>,
    /// The result of a completed execution, else `null`.
    pub result: Option<JsonText>,
    /// Error of the most recent failed attempt.
    pub last_error: Option<String>,
    /// Reason given when cancelled.
    pub cancel_reason: Option<String>,
    /// When it reached a terminal state.
    #[serde(default)]
    pub finished_at: Option<Timestamp>,
    /// The worker holding the lease while `running`.
    #[serde(default)]
    pub worker_id: Option<WorkerId>,
    /// The lease expiry while `running`.
    #[serde(default)]
    pub lease_expires_at: Option<Timestamp>,
    /// Idempotency key, if one was given.
    #[serde(default)]
    pub idempotency_key: Option<IdempotencyKey>,
    /// Capabilities a worker must offer.
    #[serde(default)]
    pub capabilities: BTreeSet<CapabilityName>,
    /// Delays between attempts; [`Backoff::default`] when absent.
    #[serde(default)]
    pub backoff: Option<Backoff>,
    /// Parent execution.
    #[serde(default)]
    pub parent: Option<ExecutionId>,
    /// Its key among its parent's children, if one was given (`null`
    /// otherwise, like the other optional fields).
    #[serde(default)]
    pub child_key: Option<ChildKey>,
    /// The root of its flow (its own id when it has no parent); absent in
    /// answers of servers older than flows, read as the execution's own id.
    #[serde(default)]
    pub root: Option<ExecutionId>,
    /// Why it is not running: `{"reason": "<code>", "detail": "<sentence>"}`
    /// (with `children` or `dependencies`, the count, for those reasons);
    /// `null` for a
    /// waiting or finished execution.
    #[serde(default)]
    pub waiting_on: Option<WaitingOnBody>,
    /// The wait of a `suspended` execution (waitpoints, condition,
    /// `timeout_at`, `on_timeout`); `null` in every other state.
    #[serde(default)]
    pub suspension: Option<crate::SuspensionBody>,
    /// The pause of a `paused` execution: `{"from": "<the state it left>",
    /// "via": "<id of the ancestor whose tree pause reached it>" | null}`;
    /// `null` in every other state.
    #[serde(default)]
    pub pause: Option<PauseBody>,
    /// The custom status its lease holders last set (any JSON); `null`
    /// when never set.
    #[serde(default)]
    pub custom_status: Option<JsonText>,
    /// How many times the custom status changed (0: never set).
    #[serde(default)]
    pub status_version: u64,
    /// The number of its last progress frame (0: none).
    #[serde(default)]
    pub progress_seq: u64,
    /// Its session; `null` when none.
    #[serde(default)]
    pub session: Option<baton_core::SessionName>,
    /// The handler version it was written for; `null` when none.
    #[serde(default)]
    pub version: Option<baton_core::Version>,
    /// The attempts, oldest first; only with `?attempts=true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt_history: Option<Vec<Attempt>>,
}

/// A snapshot's `waiting_on`: why the execution is not running.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitingOnBody {
    /// A stable code: `children`, `dependencies`, `delayed`, `leased`
    /// (later capabilities add `signals`, `timer`, `paused`, …).
    pub reason: String,
    /// The same as a sentence for people.
    pub detail: String,
    /// For reason `children`: how many have not finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub children: Option<u64>,
    /// For reason `dependencies`: how many upstream executions have not
    /// finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dependencies: Option<u64>,
    /// For reason `signals`: the waitpoints it waits on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signals: Option<Vec<baton_core::SignalName>>,
    /// For reasons `signals` and `timer`: when the wait times out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<Timestamp>,
}

/// A snapshot's `pause`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PauseBody {
    /// The state it left (`waiting` for one that was running); resume
    /// returns it there, or to `waiting` when what it waited for happened
    /// meanwhile.
    pub from: State,
    /// The ancestor whose tree pause reached it; `null` when it was paused
    /// itself.
    #[serde(default)]
    pub via: Option<ExecutionId>,
}

impl From<&ExecutionSnapshot> for Snapshot {
    fn from(s: &ExecutionSnapshot) -> Self {
        Snapshot {
            id: s.id.clone(),
            namespace: s.namespace.clone(),
            lane: s.lane.clone(),
            kind: s.kind.clone(),
            state: s.state,
            priority: s.priority,
            payload: JsonText::from_bytes(&s.payload),
            tags: s.tags.clone(),
            attempts: s.attempts,
            max_attempts: s.retry.max_attempts,
            created_at: s.created_at,
            updated_at: s.updated_at,
            run_at: s.run_at,
            deadline: s.deadline,
            result: s.result.as_deref().map(JsonText::from_bytes),
            last_error: s.last_error.clone(),
            cancel_reason: s.cancel_reason.clone(),
            finished_at: s.finished_at,
            worker_id: s.worker_id.clone(),
            lease_expires_at: s.lease_expires_at,
            idempotency_key: s.idempotency_key.clone(),
            capabilities: s.required_capabilities.clone(),
            backoff: Some(s.retry.backoff),
            parent: s.parent.clone(),
            child_key: s.child_key.clone(),
            root: Some(s.root.clone()),
            waiting_on: s.wait_reason().map(|w| WaitingOnBody {
                reason: w.reason.to_owned(),
                detail: w.detail,
                children: match s.waiting_on {
                    Some(WaitingOn::Children(n)) => Some(n),
                    _ => None,
                },
                dependencies: match s.waiting_on {
                    Some(WaitingOn::Dependencies(n)) => Some(n),
                    _ => None,
                },
                signals: s
                    .suspension
                    .as_ref()
                    .filter(|w| !w.waitpoints.is_empty())
                    .map(|w| w.waitpoints.clone()),
                until: s.suspension.as_ref().and_then(|w| w.timeout_at),
            }),
            suspension: crate::wait::suspension_of(s),
            pause: s.pause.as_ref().map(|p| PauseBody {
                from: p.from,
                via: p.via.clone(),
            }),
            custom_status: s.custom_status.as_deref().map(JsonText::from_bytes),
            status_version: s.status_version,
            progress_seq: s.progress_seq,
            session: s.session.clone(),
            version: s.version.clone(),
            attempt_history: None,
        }
    }
}

impl Snapshot {
    /// The snapshot with `attempt_history`, the attempts oldest first.
    pub fn with_attempts(mut self, attempts: &[AttemptRecord]) -> Self {
        self.attempt_history = Some(attempts.iter().map(Attempt::from).collect());
        self
    }

    /// The `baton-core` snapshot this answer describes.
    ///
    /// JSON `null` and "no result" look the same on the wire; a completed
    /// execution always has a result, so its `null` result is the bytes
    /// `null`.
    ///
    /// # Errors
    /// None today; kept fallible for fields that may need checking.
    pub fn into_snapshot(self) -> Result<ExecutionSnapshot> {
        let result = match (self.result, self.state) {
            (Some(r), _) => Some(r.into_bytes()),
            (None, State::Completed) => Some(b"null".to_vec()),
            (None, _) => None,
        };
        let root = self.root.unwrap_or_else(|| self.id.clone());
        Ok(ExecutionSnapshot {
            session: self.session,
            version: self.version,
            root,
            id: self.id,
            namespace: self.namespace,
            lane: self.lane,
            kind: self.kind,
            state: self.state,
            priority: self.priority,
            payload: self.payload.into_bytes(),
            tags: self.tags,
            attempts: self.attempts,
            retry: RetryPolicy {
                max_attempts: self.max_attempts,
                backoff: self.backoff.unwrap_or_default(),
            },
            idempotency_key: self.idempotency_key,
            required_capabilities: self.capabilities,
            parent: self.parent,
            child_key: self.child_key,
            waiting_on: match (self.state, self.waiting_on) {
                (State::Blocked, Some(w)) => Some(match w.dependencies {
                    Some(n) => WaitingOn::Dependencies(n),
                    None => WaitingOn::Children(w.children.unwrap_or(0)),
                }),
                (State::Blocked, None) => Some(WaitingOn::Children(0)),
                _ => None,
            },
            created_at: self.created_at,
            updated_at: self.updated_at,
            run_at: self.run_at,
            deadline: self.deadline,
            finished_at: self.finished_at,
            worker_id: self.worker_id,
            lease_expires_at: self.lease_expires_at,
            result,
            last_error: self.last_error,
            cancel_reason: self.cancel_reason,
            suspension: match self.state {
                State::Suspended => self.suspension.map(crate::SuspensionBody::into_suspension),
                _ => None,
            },
            pause: match self.state {
                State::Paused => Some(baton_core::Pause {
                    from: self.pause.as_ref().map_or(State::Waiting, |p| p.from),
                    via: self.pause.and_then(|p| p.via),
                }),
                _ => None,
            },
            custom_status: self.custom_status.map(JsonText::into_bytes),
            status_version: self.status_version,
            progress_seq: self.progress_seq,
        })
    }
}

/// One attempt in a snapshot's `attempt_history`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// Attempt number, 1-based.
    pub number: u32,
    /// Worker that claimed it.
    pub worker_id: WorkerId,
    /// When it was claimed.
    pub started_at: Timestamp,
    /// When it ended; `null` while running.
    pub ended_at: Option<Timestamp>,
    /// How it ended; `null` while running.
    pub outcome: Option<AttemptOutcome>,
    /// The error reported when it did not complete.
    pub error: Option<String>,
}

impl From<&AttemptRecord> for Attempt {
    fn from(a: &AttemptRecord) -> Self {
        Attempt {
            number: a.number,
            worker_id: a.worker_id.clone(),
            started_at: a.started_at,
            ended_at: a.ended_at,
            outcome: a.outcome,
            error: a.error.clone(),
        }
    }
}

/// The query of `GET /v1/executions/{id}`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DescribeQuery {
    /// `true`: add `attempt_history` to the snapshot.
    #[serde(default)]
    pub attempts: bool,
    /// Wait up to this long for the execution to be terminal (answer at
    /// once if it is); 0 answers at once.
    #[serde(default)]
    pub wait_ms: u64,
    /// With `wait_ms`: also answer as soon as the status version differs
    /// from this one.
    #[serde(default)]
    pub status_version: Option<u64>,
    /// With `wait_ms`: also answer as soon as the last progress frame's
    /// number differs from this one.
    #[serde(default)]
    pub progress_seq: Option<u64>,
}

/// The body of `POST /v1/executions/{id}/cancel`; may be empty.
///
/// ```
/// use baton_api::CancelBody;
/// use baton_core::CancelScope;
/// let body: CancelBody = serde_json::from_str(r#"{"reason": "superseded", "scope": "execution"}"#).unwrap();
/// let request = body.into_request();
/// assert_eq!(request.scope, CancelScope::Execution);
/// // An empty body cancels the whole subtree, without a reason.
/// let empty: CancelBody = serde_json::from_str("{}").unwrap();
/// assert_eq!(empty.into_request().scope, CancelScope::Tree);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelBody {
    /// Why it is cancelled; shown in the snapshot.
    #[serde(default)]
    pub reason: Option<String>,
    /// `tree` (the default: non-terminal descendants are cancelled too) or
    /// `execution` (it alone). Left out of the body when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<CancelScope>,
}

impl CancelBody {
    /// The body asking for `request`, its scope always written out.
    pub fn from_request(request: &CancelRequest) -> Self {
        CancelBody {
            reason: request.reason.clone(),
            scope: Some(request.scope),
        }
    }

    /// The cancel asked for; an absent scope is `tree`.
    pub fn into_request(self) -> CancelRequest {
        CancelRequest::with_reason(self.reason).with_scope(self.scope.unwrap_or_default())
    }
}

/// The query of `GET /v1/stats`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsQuery {
    /// Namespace to count; `default` when absent.
    pub namespace: Option<String>,
}

impl StatsQuery {
    /// The namespace asked for.
    ///
    /// # Errors
    /// `InvalidInput` for an invalid namespace name.
    pub fn namespace(self) -> Result<Namespace> {
        namespace_or_default(self.namespace.map(Namespace::new).transpose()?)
    }
}

/// The answer of `GET /v1/stats`: per lane, the count of executions in each
/// state, every state present.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsAnswer {
    /// Counts per lane.
    pub lanes: BTreeMap<Lane, StateCounts>,
}

/// The answer of `GET /healthz`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// Always `ok`: the process is up.
    pub status: String,
    /// The backend served: `sqlite`, `postgres` or `valkey`.
    pub backend: String,
    /// The backend's partition count.
    pub partitions: u16,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use baton_core::PartitionCount;

    fn snapshot(state: State, result: Option<&[u8]>) -> ExecutionSnapshot {
        let at: Timestamp = "2030-01-01T00:00:00Z".parse().unwrap();
        let id = ExecutionId::generate(PartitionCount::DEFAULT);
        ExecutionSnapshot {
            session: None,
            version: None,
            id: id.clone(),
            namespace: Namespace::new("ns").unwrap(),
            lane: Lane::new("l").unwrap(),
            kind: Kind::new("k").unwrap(),
            state,
            priority: 2,
            payload: b"plain".to_vec(),
            tags: BTreeMap::from([(TagKey::new("t").unwrap(), "v".to_owned())]),
            attempts: 1,
            retry: RetryPolicy::default(),
            idempotency_key: None,
            required_capabilities: BTreeSet::new(),
            parent: None,
            child_key: None,
            root: id.clone(),
            created_at: at,
            updated_at: at,
            run_at: None,
            deadline: None,
            finished_at: state.is_terminal().then_some(at),
            worker_id: None,
            lease_expires_at: None,
            result: result.map(<[u8]>::to_vec),
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

    #[test]
    fn a_snapshot_has_every_field_of_the_contract() {
        let s =
            serde_json::to_value(Snapshot::from(&snapshot(State::Completed, Some(b"7")))).unwrap();
        for field in [
            "id",
            "namespace",
            "lane",
            "kind",
            "state",
            "priority",
            "payload",
            "tags",
            "attempts",
            "max_attempts",
            "created_at",
            "updated_at",
            "run_at",
            "deadline",
            "result",
            "last_error",
            "cancel_reason",
            "finished_at",
            "worker_id",
            "lease_expires_at",
            "idempotency_key",
            "capabilities",
            "backoff",
            "parent",
            "child_key",
            "root",
        ] {
            assert!(s.get(field).is_some(), "no {field} in {s}");
        }
        assert!(s.get("attempt_history").is_none());
        assert_eq!(s["payload"], "plain");
        assert_eq!(s["result"], 7);
        assert_eq!(s["created_at"], "2030-01-01T00:00:00.000Z");
    }

    #[test]
    fn a_completed_null_result_survives_the_round_trip() {
        for (state, result) in [
            (State::Completed, Some(&b"null"[..])),
            (State::Waiting, None),
            (State::Completed, Some(&b"[1]"[..])),
        ] {
            let mut snap = snapshot(state, result);
            snap.payload = b"\"plain\"".to_vec();
            let wire = serde_json::to_string(&Snapshot::from(&snap)).unwrap();
            let back: Snapshot = serde_json::from_str(&wire).unwrap();
            assert_eq!(back.into_snapshot().unwrap(), snap);
        }
    }
}
